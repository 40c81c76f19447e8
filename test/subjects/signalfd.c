/*
 * signalfd - signalfds come back with their mask and flags.
 *
 *   signalfd OUTFILE MODE
 *
 *   mask     a non-blocking signalfd for SIGUSR1, SIGUSR2 and SIGRTMIN+3
 *            (all blocked); SIGUSR2 and two SIGRTMIN+3 with values pending.
 *            After restore: the mask in fdinfo is the same, reads give
 *            SIGUSR2, then both real-time signals in order with their
 *            values, then EAGAIN; SIGUSR1 sent then is read too
 *   block    a blocking signalfd for SIGUSR1 only, shared with a child that
 *            blocks reading it; after restore the parent sends SIGUSR1 to
 *            the child, which reads it
 */
#include "subject.h"
#include <sys/signalfd.h>
#include <sys/wait.h>

static char mask_line(int fd, char *out, size_t n)
{
	char path[64], text[1024];
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	snap_file(path, text, sizeof(text));
	return status_line(text, "sigmask", out, n) == 0;
}

int main(int argc, char **argv)
{
	subject_init(argc, argv, 2, "MODE");
	install_term_handler(0);
	const char *mode = argv[2];
	sigset_t m;
	int fd;
	pid_t kid = -1;
	char before[128], after[128];
	struct signalfd_siginfo si;

	sigemptyset(&m);
	if (!strcmp(mode, "mask")) {
		sigaddset(&m, SIGUSR1);
		sigaddset(&m, SIGUSR2);
		sigaddset(&m, SIGRTMIN + 3);
		sigprocmask(SIG_BLOCK, &m, NULL);
		fd = signalfd(-1, &m, SFD_NONBLOCK | SFD_CLOEXEC);
		CHECK(fd >= 0, "signalfd: %s", strerror(errno));
		union sigval v1 = { .sival_int = 111 }, v2 = { .sival_int = 222 };
		kill(getpid(), SIGUSR2);
		sigqueue(getpid(), SIGRTMIN + 3, v1);
		sigqueue(getpid(), SIGRTMIN + 3, v2);
	} else if (!strcmp(mode, "block")) {
		sigaddset(&m, SIGUSR1);
		sigprocmask(SIG_BLOCK, &m, NULL);
		fd = signalfd(-1, &m, 0);
		CHECK(fd >= 0, "signalfd: %s", strerror(errno));
		kid = fork();
		if (kid == 0) {
			ssize_t r;
			do r = read(fd, &si, sizeof(si)); while (r < 0 && errno == EINTR);
			_exit(r == sizeof(si) && si.ssi_signo == SIGUSR1 && si.ssi_pid == (uint32_t)getppid() ? 0 : 3);
		}
	} else {
		fprintf(stderr, "signalfd: unknown MODE '%s'\n", mode);
		return 2;
	}
	CHECK(mask_line(fd, before, sizeof(before)), "no sigmask in fdinfo");
	subject_ready(NULL);
	while (!got_term) pause();

	CHECK(mask_line(fd, after, sizeof(after)), "no sigmask in fdinfo after");
	CHECK(!strcmp(before, after), "mask was '%s', now '%s'", before, after);
	if (!strcmp(mode, "mask")) {
		CHECK(fcntl(fd, F_GETFL) & O_NONBLOCK, "O_NONBLOCK lost");
		CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC, "FD_CLOEXEC lost");
		CHECK(read(fd, &si, sizeof(si)) == sizeof(si), "read 1: %s", strerror(errno));
		CHECK(si.ssi_signo == SIGUSR2, "first signal %u, expected SIGUSR2", si.ssi_signo);
		CHECK(read(fd, &si, sizeof(si)) == sizeof(si), "read 2: %s", strerror(errno));
		CHECK(si.ssi_signo == (uint32_t)SIGRTMIN + 3 && si.ssi_int == 111, "second: signal %u value %d", si.ssi_signo, si.ssi_int);
		CHECK(read(fd, &si, sizeof(si)) == sizeof(si), "read 3: %s", strerror(errno));
		CHECK(si.ssi_signo == (uint32_t)SIGRTMIN + 3 && si.ssi_int == 222, "third: signal %u value %d", si.ssi_signo, si.ssi_int);
		CHECK(read(fd, &si, sizeof(si)) == -1 && errno == EAGAIN, "a fourth read did not give EAGAIN");
		kill(getpid(), SIGUSR1);
		CHECK(read(fd, &si, sizeof(si)) == sizeof(si) && si.ssi_signo == SIGUSR1, "SIGUSR1 sent after restore not read");
	} else {
		CHECK(!(fcntl(fd, F_GETFL) & O_NONBLOCK), "got O_NONBLOCK");
		kill(kid, SIGUSR1);
		int st;
		CHECK(waitpid(kid, &st, 0) == kid, "waitpid: %s", strerror(errno));
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child did not read SIGUSR1 (status %#x)", st);
	}
	subject_pass();
}
