/*
 * pidfd - pidfds come back referring to the same (restored) process.
 *
 *   pidfd OUTFILE MODE
 *
 *   child    pidfds of a child (blocking, and PIDFD_NONBLOCK) and of the
 *            process itself: after restore fdinfo names the same PIDs,
 *            waitid on the non-blocking one gives EAGAIN while the child
 *            lives, pidfd_send_signal through the other kills the child,
 *            and the pidfd then reports its exit
 *   thread   a PIDFD_THREAD pidfd of a second thread: after restore a
 *            signal sent through it is taken by that thread
 *   exited   a pidfd of a child that exited and was reaped (the dump is
 *            refused): the pidfd still reports the exit
 *   outside  a pidfd of the parent, outside the tree (the dump is refused)
 */
#include "subject.h"
#include <poll.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#ifndef PIDFD_NONBLOCK
#define PIDFD_NONBLOCK O_NONBLOCK
#endif
#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

static int pidfd_open(pid_t pid, unsigned flags) { return (int)syscall(SYS_pidfd_open, pid, flags); }
static int pidfd_send_signal(int fd, int sig) { return (int)syscall(SYS_pidfd_send_signal, fd, sig, NULL, 0); }

static int info_pid(int fd)
{
	char path[64], text[1024], line[128];
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	snap_file(path, text, sizeof(text));
	if (status_line(text, "Pid", line, sizeof(line)) != 0) return -100;
	return atoi(line + 4);
}

static volatile pid_t thread_tid, got_sig_tid;
static void on_usr1(int s) { (void)s; got_sig_tid = (pid_t)syscall(SYS_gettid); }
static void *thread_main(void *a)
{
	(void)a;
	thread_tid = (pid_t)syscall(SYS_gettid);
	while (!got_sig_tid) pause();
	return NULL;
}

int main(int argc, char **argv)
{
	subject_init(argc, argv, 2, "MODE");
	install_term_handler(0);
	const char *mode = argv[2];
	int a = -1, b = -1, self = -1;
	pid_t kid = -1;
	pthread_t th;

	if (!strcmp(mode, "child")) {
		kid = fork();
		if (kid == 0) { for (;;) pause(); }
		a = pidfd_open(kid, 0);
		b = pidfd_open(kid, PIDFD_NONBLOCK);
		self = pidfd_open(getpid(), 0);
		CHECK(a >= 0 && b >= 0 && self >= 0, "pidfd_open: %s", strerror(errno));
	} else if (!strcmp(mode, "thread")) {
		struct sigaction sa;
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_usr1;
		sigaction(SIGUSR1, &sa, NULL);
		pthread_create(&th, NULL, thread_main, NULL);
		while (!thread_tid) usleep(1000);
		a = pidfd_open(thread_tid, PIDFD_THREAD);
		CHECK(a >= 0, "pidfd_open(PIDFD_THREAD): %s", strerror(errno));
		/* the main thread takes no SIGUSR1: only the thread can */
		sigset_t m;
		sigemptyset(&m);
		sigaddset(&m, SIGUSR1);
		sigprocmask(SIG_BLOCK, &m, NULL);
	} else if (!strcmp(mode, "exited")) {
		kid = fork();
		if (kid == 0) _exit(7);
		a = pidfd_open(kid, 0);
		CHECK(a >= 0, "pidfd_open: %s", strerror(errno));
		CHECK(waitpid(kid, NULL, 0) == kid, "waitpid");
	} else if (!strcmp(mode, "outside")) {
		a = pidfd_open(getppid(), PIDFD_NONBLOCK);
		CHECK(a >= 0, "pidfd_open: %s", strerror(errno));
	} else {
		fprintf(stderr, "pidfd: unknown MODE '%s'\n", mode);
		return 2;
	}
	int before_a = info_pid(a), before_b = b >= 0 ? info_pid(b) : 0;
	subject_ready(NULL);
	while (!got_term) pause();

	CHECK(info_pid(a) == before_a, "the pidfd names pid %d, before %d", info_pid(a), before_a);
	if (!strcmp(mode, "child")) {
		CHECK(before_a == kid && info_pid(b) == before_b && info_pid(self) == getpid(), "the pidfds name other processes");
		CHECK(!(fcntl(a, F_GETFL) & O_NONBLOCK) && (fcntl(b, F_GETFL) & O_NONBLOCK), "PIDFD_NONBLOCK not as it was");
		siginfo_t si;
		memset(&si, 0, sizeof(si));
		CHECK(waitid(P_PIDFD, b, &si, WEXITED) == -1 && errno == EAGAIN, "waitid on a live child through a non-blocking pidfd: not EAGAIN");
		struct pollfd p = { a, POLLIN, 0 };
		CHECK(poll(&p, 1, 0) == 0, "the pidfd reports an exit of a live child");
		CHECK(pidfd_send_signal(a, SIGKILL) == 0, "pidfd_send_signal: %s", strerror(errno));
		CHECK(poll(&p, 1, 5000) == 1, "the pidfd does not report the child's exit");
		memset(&si, 0, sizeof(si));
		CHECK(waitid(P_PIDFD, b, &si, WEXITED) == 0 && si.si_pid == kid && si.si_code == CLD_KILLED, "waitid through the pidfd: %s", strerror(errno));
		CHECK(pidfd_send_signal(self, 0) == 0, "the pidfd of the process itself does not work: %s", strerror(errno));
	} else if (!strcmp(mode, "thread")) {
		CHECK(before_a == thread_tid, "the thread pidfd names %d, the thread is %d", before_a, thread_tid);
		CHECK(fcntl(a, F_GETFL) & PIDFD_THREAD, "PIDFD_THREAD lost");
		CHECK(pidfd_send_signal(a, SIGUSR1) == 0, "pidfd_send_signal: %s", strerror(errno));
		pthread_join(th, NULL);
		CHECK(got_sig_tid == thread_tid, "SIGUSR1 taken by %d, not the thread %d", got_sig_tid, thread_tid);
	} else if (!strcmp(mode, "exited")) {
		struct pollfd p = { a, POLLIN, 0 };
		CHECK(poll(&p, 1, 0) == 1, "the pidfd does not report the exit");
	} else if (!strcmp(mode, "outside")) {
		CHECK(before_a == getppid(), "names %d, the parent is %d", before_a, getppid());
	}
	subject_pass();
}
