/*
 * seccomp - a sandboxed program stays sandboxed across a checkpoint.
 *
 *   seccomp OUTFILE MODE
 *
 * Filters are classic BPF programs that match one syscall number (after
 * checking the architecture) and return an action; everything else is
 * allowed. no_new_privs is set first, as unprivileged programs must.
 *
 *   eperm     uname fails with EPERM; getppid and write still work
 *   kill      mkdir kills the process (SECCOMP_RET_KILL_PROCESS): a forked
 *             child that tries it dies of SIGSYS; the parent goes on
 *   killmmap  mmap kills the process: ckpt's own calls in it (it maps its
 *             scratch area with mmap) must not be filtered; a child that
 *             tries mmap dies of SIGSYS
 *   stacked   two filters: the older makes uname fail with EPERM, the newer
 *             with ENOENT (the newer wins between equal actions) and getcwd
 *             with EACCES: the order of the stack must come back
 *   threads   the main thread has filter A (uname: EPERM), thread 1 has A
 *             and its own B (getcwd: ENOENT), thread 2 has none
 *   tsync     a filter given to every thread with SECCOMP_FILTER_FLAG_TSYNC;
 *             after restore another TSYNC filter must still be accepted
 *             (the threads' filters are shared, not copies)
 *   strict    a child in strict mode (SECCOMP_MODE_STRICT) blocked in read()
 *             on a pipe: after restore it answers with write(), then dies
 *             of SIGKILL when it tries getpid
 *   trap      uname raises SIGSYS (SECCOMP_RET_TRAP; the handler sees the
 *             syscall number), getcwd fails with errno 1234 (RET_ERRNO)
 *   notify    a filter that hands uname to a supervisor (SECCOMP_RET_USER_NOTIF,
 *             its listener closed): the dump is refused, the process runs on
 *   log       a filter installed with SECCOMP_FILTER_FLAG_LOG whose action
 *             for uname is SECCOMP_RET_LOG (allowed, logged) and for
 *             getcwd RET_ERRNO(EPERM)
 */
#include "subject.h"
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>

static const char *mode;

static long install(int nr, unsigned action, unsigned flags)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, action),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };

	return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
}

static void must_install(int nr, unsigned action, unsigned flags)
{
	long r = install(nr, action, flags);

	if (r != 0)
		subject_fail("seccomp(SET_MODE_FILTER, nr %d): %ld, %s", nr, r, strerror(errno));
}

/* The errno of a syscall (0 if it worked). */
static int err_uname(void) { struct utsname u; return syscall(SYS_uname, &u) == 0 ? 0 : errno; }
static int err_getcwd(void) { char b[512]; return syscall(SYS_getcwd, b, sizeof(b)) >= 0 ? 0 : errno; }

static void wait_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* /proc/self/task/TID/status: Seccomp and Seccomp_filters. */
static void status_of(pid_t tid, int *mode_out, int *filters)
{
	char path[64], buf[8192];
	const char *p;

	snprintf(path, sizeof(path), "/proc/self/task/%d/status", (int)tid);
	snap_file(path, buf, sizeof(buf));
	p = strstr(buf, "\nSeccomp:");
	*mode_out = p ? atoi(p + 9) : -1;
	p = strstr(buf, "\nSeccomp_filters:");
	*filters = p ? atoi(p + 17) : -1;
}

/* A child that makes one syscall, which must kill it with SIGSYS. */
static void child_dies_of(int nr)
{
	int st;
	pid_t c = fork();

	if (c == 0) {
		syscall(nr, 0, 4096, 3, 0x22, -1, 0);
		_exit(0);
	}
	CHECK(c > 0, "fork: %s", strerror(errno));
	CHECK(waitpid(c, &st, 0) == c, "waitpid: %s", strerror(errno));
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS, "the child that made syscall %d was not killed by SIGSYS (status 0x%x)", nr, st);
}

/* ---- threads ---- */
static volatile int go, done[3];
static volatile pid_t tids[3];
static volatile int res_uname[3], res_getcwd[3], res_mode[3], res_filters[3];

static void thread_check(int i)
{
	int m, f;

	res_uname[i] = err_uname();
	res_getcwd[i] = err_getcwd();
	status_of(tids[i], &m, &f);
	res_mode[i] = m;
	res_filters[i] = f;
}

static void *thread_main(void *arg)
{
	int i = (int)(long)arg;

	tids[i] = (pid_t)syscall(SYS_gettid);
	if (i == 1 && strcmp(mode, "threads") == 0 && install(SYS_getcwd, SECCOMP_RET_ERRNO | ENOENT, 0) != 0)
		res_uname[i] = -1;
	done[i] = 1;
	while (go < 1)
		wait_ms(5);
	thread_check(i);
	done[i] = 2;
	for (;;)
		wait_ms(1000);
	return NULL;
}

static void start_thread(int i)
{
	pthread_t th;

	done[i] = 0;
	pthread_create(&th, NULL, thread_main, (void *)(long)i);
	while (!done[i])
		wait_ms(1);
}

/* ---- trap ---- */
static volatile int sigsys_hits, sigsys_nr;

static void on_sigsys(int sig, siginfo_t *si, void *uc)
{
	(void)sig; (void)uc;
	sigsys_hits++;
	sigsys_nr = si->si_syscall;
}

int main(int argc, char **argv)
{
	int pin[2], pout[2];
	pid_t child = -1;
	int m, f;

	if (argc < 3) {
		fprintf(stderr, "usage: %s OUTFILE MODE\n", argv[0]);
		return 2;
	}
	mode = argv[2];
	subject_outfile = argv[1];
	install_term_handler(0);
	tids[0] = getpid();
	CHECK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0, "PR_SET_NO_NEW_PRIVS: %s", strerror(errno));

	if (strcmp(mode, "eperm") == 0) {
		must_install(SYS_uname, SECCOMP_RET_ERRNO | EPERM, 0);
	} else if (strcmp(mode, "kill") == 0) {
		must_install(SYS_mkdir, SECCOMP_RET_KILL_PROCESS, 0);
	} else if (strcmp(mode, "killmmap") == 0) {
		must_install(SYS_mmap, SECCOMP_RET_KILL_PROCESS, 0);
	} else if (strcmp(mode, "stacked") == 0) {
		must_install(SYS_uname, SECCOMP_RET_ERRNO | EPERM, 0);
		{
			/* the newer: uname -> ENOENT, getcwd -> EACCES */
			struct sock_filter fl[] = {
				BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
				BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_uname, 0, 1),
				BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOENT),
				BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getcwd, 0, 1),
				BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EACCES),
				BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
			};
			struct sock_fprog prog = { .len = sizeof(fl) / sizeof(fl[0]), .filter = fl };
			CHECK(syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) == 0, "second filter: %s", strerror(errno));
		}
	} else if (strcmp(mode, "threads") == 0) {
		start_thread(2);                                        /* before any filter: none */
		must_install(SYS_uname, SECCOMP_RET_ERRNO | EPERM, 0); /* A, main */
		start_thread(1);                                        /* inherits A, adds B */
		CHECK(res_uname[1] == 0, "thread 1 could not install its filter");
	} else if (strcmp(mode, "tsync") == 0) {
		start_thread(1);
		start_thread(2);
		must_install(SYS_uname, SECCOMP_RET_ERRNO | EPERM, SECCOMP_FILTER_FLAG_TSYNC);
	} else if (strcmp(mode, "strict") == 0) {
		CHECK(pipe(pin) == 0 && pipe(pout) == 0, "pipe: %s", strerror(errno));
		child = fork();
		if (child == 0) {
			char c;
			close(pin[1]);
			close(pout[0]);
			if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT) != 0)
				syscall(SYS_exit, 3);
			(void)!write(pout[1], "R", 1);
			while (syscall(SYS_read, pin[0], &c, 1) != 1)
				;
			(void)!write(pout[1], &c, 1);
			syscall(SYS_getpid); /* not allowed in strict mode: SIGKILL */
			syscall(SYS_exit, 0);
		}
		CHECK(child > 0, "fork: %s", strerror(errno));
		close(pin[0]);
		close(pout[1]);
		{
			char c = 0;
			CHECK(read(pout[0], &c, 1) == 1 && c == 'R', "the strict child did not start");
		}
	} else if (strcmp(mode, "trap") == 0) {
		struct sigaction sa;
		memset(&sa, 0, sizeof(sa));
		sa.sa_sigaction = on_sigsys;
		sa.sa_flags = SA_SIGINFO;
		sigaction(SIGSYS, &sa, NULL);
		must_install(SYS_uname, SECCOMP_RET_TRAP | 77, 0);
		must_install(SYS_getcwd, SECCOMP_RET_ERRNO | 1234, 0);
	} else if (strcmp(mode, "notify") == 0) {
		long fd = install(SYS_uname, SECCOMP_RET_USER_NOTIF, SECCOMP_FILTER_FLAG_NEW_LISTENER);
		CHECK(fd >= 0, "seccomp(NEW_LISTENER): %s", strerror(errno));
		close((int)fd);
	} else if (strcmp(mode, "log") == 0) {
		must_install(SYS_uname, SECCOMP_RET_LOG, SECCOMP_FILTER_FLAG_LOG);
		must_install(SYS_getcwd, SECCOMP_RET_ERRNO | EPERM, SECCOMP_FILTER_FLAG_LOG);
	} else {
		subject_fail("unknown mode %s", mode);
	}
	subject_ready(argv[1]);

	while (!got_term)
		wait_ms(50);

	status_of(getpid(), &m, &f);
	CHECK(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1, "no_new_privs was lost");
	if (strcmp(mode, "eperm") == 0) {
		CHECK(m == 2 && f == 1, "Seccomp %d, %d filters", m, f);
		CHECK(err_uname() == EPERM, "uname: errno %d, not EPERM", err_uname());
		CHECK(getppid() > 0 && err_getcwd() == 0, "other syscalls fail");
	} else if (strcmp(mode, "kill") == 0) {
		CHECK(m == 2 && f == 1, "Seccomp %d, %d filters", m, f);
		child_dies_of(SYS_mkdir);
		CHECK(err_uname() == 0, "uname fails");
	} else if (strcmp(mode, "killmmap") == 0) {
		CHECK(m == 2 && f == 1, "Seccomp %d, %d filters", m, f);
		child_dies_of(SYS_mmap);
	} else if (strcmp(mode, "stacked") == 0) {
		CHECK(m == 2 && f == 2, "Seccomp %d, %d filters", m, f);
		CHECK(err_uname() == ENOENT, "uname: errno %d, not ENOENT (the newer filter's)", err_uname());
		CHECK(err_getcwd() == EACCES, "getcwd: errno %d, not EACCES", err_getcwd());
	} else if (strcmp(mode, "threads") == 0) {
		go = 1;
		while (done[1] != 2 || done[2] != 2)
			wait_ms(5);
		CHECK(m == 2 && f == 1 && err_uname() == EPERM && err_getcwd() == 0, "main thread: Seccomp %d, %d filters, uname %d, getcwd %d", m, f, err_uname(), err_getcwd());
		CHECK(res_mode[1] == 2 && res_filters[1] == 2 && res_uname[1] == EPERM && res_getcwd[1] == ENOENT, "thread 1: Seccomp %d, %d filters, uname %d, getcwd %d", res_mode[1], res_filters[1], res_uname[1], res_getcwd[1]);
		CHECK(res_mode[2] == 0 && res_filters[2] == 0 && res_uname[2] == 0 && res_getcwd[2] == 0, "thread 2: Seccomp %d, %d filters, uname %d, getcwd %d", res_mode[2], res_filters[2], res_uname[2], res_getcwd[2]);
	} else if (strcmp(mode, "tsync") == 0) {
		long r;
		go = 1;
		while (done[1] != 2 || done[2] != 2)
			wait_ms(5);
		CHECK(res_uname[1] == EPERM && res_uname[2] == EPERM && err_uname() == EPERM, "uname in the threads: %d %d %d", err_uname(), res_uname[1], res_uname[2]);
		r = install(SYS_getcwd, SECCOMP_RET_ERRNO | EACCES, SECCOMP_FILTER_FLAG_TSYNC);
		CHECK(r == 0, "a second TSYNC filter was refused (%ld: thread %ld has filters of its own)", r, r);
		status_of(tids[1], &m, &f);
		CHECK(m == 2 && f == 2, "thread 1 after the second TSYNC: Seccomp %d, %d filters", m, f);
	} else if (strcmp(mode, "strict") == 0) {
		char c = 0, path[64], buf[4096];
		const char *p;
		int st;
		snprintf(path, sizeof(path), "/proc/%d/status", (int)child);
		snap_file(path, buf, sizeof(buf));
		p = strstr(buf, "\nSeccomp:");
		CHECK(p && atoi(p + 9) == 1, "the child is not in strict mode after restore");
		CHECK(write(pin[1], "Q", 1) == 1, "write to the child: %s", strerror(errno));
		CHECK(read(pout[0], &c, 1) == 1 && c == 'Q', "the strict child did not answer");
		CHECK(waitpid(child, &st, 0) == child, "waitpid: %s", strerror(errno));
		CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "the strict child was not killed for its getpid (status 0x%x)", st);
	} else if (strcmp(mode, "trap") == 0) {
		CHECK(m == 2 && f == 2, "Seccomp %d, %d filters", m, f);
		(void)err_uname();
		CHECK(sigsys_hits == 1 && sigsys_nr == SYS_uname, "uname raised %d SIGSYS (syscall %d)", sigsys_hits, sigsys_nr);
		CHECK(err_getcwd() == 1234, "getcwd: errno %d, not 1234", err_getcwd());
	} else if (strcmp(mode, "notify") == 0) {
		CHECK(m == 2 && f == 1, "Seccomp %d, %d filters", m, f);
		CHECK(err_uname() == ENOSYS, "uname: errno %d, not ENOSYS (no supervisor)", err_uname());
	} else if (strcmp(mode, "log") == 0) {
		CHECK(m == 2 && f == 2, "Seccomp %d, %d filters", m, f);
		CHECK(err_uname() == 0, "uname fails (it is only logged)");
		CHECK(err_getcwd() == EPERM, "getcwd: errno %d, not EPERM", err_getcwd());
	}
	subject_pass();
}
