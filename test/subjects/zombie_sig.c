/*
 * zombie_sig - zombies must keep exactly how they ended: killed by SIGKILL,
 * killed by SIGTERM (default action), exited 7; none reaped before READY.
 *
 *   zombie_sig OUTFILE [core]
 *
 * core: one more child, killed by SIGSEGV (default action) with RLIMIT_CORE
 * 0 (core_pattern is a file), so no core was dumped: WCOREDUMP must be false.
 * On SIGTERM each must still be a zombie; waitpid on each must give exactly
 * the raw status it gave before (checked with waitid(WNOWAIT) before READY),
 * and then there must be no child left.
 */
#include "subject.h"
#include <sys/resource.h>
#include <sys/wait.h>

#define MAXK 4
static pid_t kid[MAXK];
static int want[MAXK]; /* raw wait status */
static const char *how[MAXK] = { "SIGKILL", "SIGTERM", "exit 7", "SIGSEGV" };

static pid_t spawn(int k)
{
	pid_t c = fork();
	CHECK(c >= 0, "fork: %s", strerror(errno));
	if (c == 0) {
		signal(SIGTERM, SIG_DFL);
		if (k == 2) _exit(7);
		if (k == 3) {
			struct rlimit rl = { 0, 0 };
			setrlimit(RLIMIT_CORE, &rl);
			signal(SIGSEGV, SIG_DFL);
			raise(SIGSEGV);
			_exit(99);
		}
		for (;;) pause();
	}
	return c;
}

int main(int argc, char **argv)
{
	subject_init(argc, argv, 1, "[core]");
	int n = argc > 2 && strcmp(argv[2], "core") == 0 ? 4 : 3;
	want[0] = SIGKILL;
	want[1] = SIGTERM;
	want[2] = 7 << 8;
	want[3] = SIGSEGV;
	/* before the SIGTERM handler is installed, so the children have SIGTERM's default action */
	for (int k = 0; k < n; k++) kid[k] = spawn(k);
	install_term_handler(0);
	kill(kid[0], SIGKILL);
	kill(kid[1], SIGTERM);
	for (int k = 0; k < n; k++) {
		siginfo_t si;
		memset(&si, 0, sizeof(si));
		CHECK(waitid(P_PID, kid[k], &si, WEXITED | WNOWAIT) == 0, "waitid(%d): %s", kid[k], strerror(errno));
		int code = k == 2 ? CLD_EXITED : CLD_KILLED, status = k == 2 ? 7 : want[k];
		CHECK(si.si_code == code && si.si_status == status, "child %d (%s) ended with code %d status %d before the checkpoint",
		      kid[k], how[k], si.si_code, si.si_status);
		while (proc_state(kid[k]) != 'Z') usleep(1000);
	}
	subject_ready(NULL);
	while (!got_term) {
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	for (int k = 0; k < n; k++)
		CHECK(proc_state(kid[k]) == 'Z', "child %d (%s) is no longer a zombie (state %c)", kid[k], how[k], proc_state(kid[k]));
	for (int k = 0; k < n; k++) {
		int st = -1;
		CHECK(waitpid(kid[k], &st, WNOHANG) == kid[k], "waitpid(%d): %s", kid[k], strerror(errno));
		CHECK(st == want[k], "child %d (%s): raw status %#x (signaled %d sig %d core %d exited %d code %d), expected %#x",
		      kid[k], how[k], st, WIFSIGNALED(st), WIFSIGNALED(st) ? WTERMSIG(st) : 0, WIFSIGNALED(st) ? !!WCOREDUMP(st) : 0,
		      WIFEXITED(st), WIFEXITED(st) ? WEXITSTATUS(st) : 0, want[k]);
	}
	errno = 0;
	CHECK(waitpid(-1, NULL, WNOHANG) == -1 && errno == ECHILD, "a child is left after reaping all: %s", strerror(errno));
	subject_pass();
}
