/*
 * zombie_pgrp - a zombie whose process group's leader is gone must come back
 * as a zombie in that group.
 *
 *   zombie_pgrp OUTFILE
 *
 * The parent forks A, which leads a new group (setpgid(A, A)), and C, which
 * it puts into A's group (setpgid(C, A)). A exits and is reaped; C then
 * exits 9 and is not reaped. Before READY and on SIGTERM: C is a zombie, its
 * group (/proc/C/stat field 5) is A's number and its session the parent's,
 * and there is no process A. Then waitpid(C) must report exit 9, and no
 * other child may be left.
 */
#include "subject.h"
#include <sys/wait.h>

static volatile sig_atomic_t got_usr1;
static void on_usr1(int s) { (void)s; got_usr1 = 1; }

/* Fields 5 (pgrp) and 6 (session) of /proc/PID/stat; -1 if unreadable. */
static int stat_ids(pid_t pid, int *pgrp, int *sid)
{
	char path[64], text[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if (read_file(path, text, sizeof(text)) <= 0) return -1;
	char *p = strrchr(text, ')');
	return p && sscanf(p + 2, "%*c %*d %d %d", pgrp, sid) == 2 ? 0 : -1;
}

static void check_state(pid_t a, pid_t c, const char *when)
{
	int pgrp = -1, sid = -1;
	CHECK(proc_state(c) == 'Z', "%s: C (%d) is not a zombie (state %c)", when, c, proc_state(c));
	CHECK(stat_ids(c, &pgrp, &sid) == 0, "%s: cannot read /proc/%d/stat", when, c);
	CHECK(pgrp == a, "%s: C (%d) is in group %d, expected %d (the exited leader A)", when, c, pgrp, a);
	CHECK(sid == getsid(0), "%s: C (%d) is in session %d, expected %d", when, c, sid, getsid(0));
	CHECK(proc_state(a) == '?', "%s: there is a process %d (A, the group leader that exited), state %c", when, a, proc_state(a));
}

int main(int argc, char **argv)
{
	subject_init(argc, argv, 1, "");
	signal(SIGUSR1, on_usr1);
	sigset_t usr1, old;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_BLOCK, &usr1, &old); /* children wait for SIGUSR1 with sigsuspend */
	install_term_handler(0);
	pid_t a = fork();
	CHECK(a >= 0, "fork: %s", strerror(errno));
	if (a == 0) { setpgid(0, 0); while (!got_usr1) sigsuspend(&old); _exit(0); }
	CHECK(setpgid(a, a) == 0 || errno == EACCES, "setpgid(A): %s", strerror(errno));
	pid_t c = fork();
	CHECK(c >= 0, "fork: %s", strerror(errno));
	if (c == 0) { while (!got_usr1) sigsuspend(&old); _exit(9); }
	CHECK(setpgid(c, a) == 0, "setpgid(C, A): %s", strerror(errno));
	sigprocmask(SIG_SETMASK, &old, NULL);
	int st = 0;
	kill(a, SIGUSR1);
	CHECK(waitpid(a, &st, 0) == a && WIFEXITED(st) && WEXITSTATUS(st) == 0, "A ended with %#x", st);
	CHECK(getpgid(c) == a, "C is in group %d, expected %d", getpgid(c), a);
	kill(c, SIGUSR1);
	siginfo_t si;
	CHECK(waitid(P_PID, c, &si, WEXITED | WNOWAIT) == 0, "waitid(C): %s", strerror(errno));
	while (proc_state(c) != 'Z') usleep(1000);
	check_state(a, c, "before the checkpoint");
	subject_ready(NULL);
	while (!got_term) {
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	check_state(a, c, "after");
	CHECK(waitpid(c, &st, WNOHANG) == c, "waitpid(C): %s", strerror(errno));
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 9, "C: status %#x, expected exit 9", st);
	errno = 0;
	CHECK(waitpid(-1, NULL, WNOHANG) == -1 && errno == ECHILD, "a child is left: %s", strerror(errno));
	subject_pass();
}
