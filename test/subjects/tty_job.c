/*
 * tty_job - a shell job: a process whose stdin, stdout and stderr are a
 * terminal, checkpointed with --shell-job and restored (with --shell-job) by a
 * ckpt that runs on another terminal.
 *
 *   tty_job OUTFILE
 *
 * Expects fds 0, 1 and 2 to be a terminal (it exits 2 otherwise). Before READY
 * it records isatty() of fds 0-2, ttyname(0) and the file status flags
 * (F_GETFL) of each, and writes "tty_job says hello" to fd 1. Then it waits in
 * a nanosleep loop (SIGTERM handler without SA_RESTART: an EINTR without a
 * signal of ours is a spurious EINTR and fails).
 *
 * On SIGTERM it passes if fds 0-2 are still terminals and a line written to
 * fd 1 goes through in full. The terminal itself may differ after restore
 * (restore hands the process the terminal ckpt runs on), so ttyname is only
 * reported, not compared; the access mode and O_NONBLOCK/O_APPEND of each fd
 * must be unchanged (a tty turned non-blocking behind the program's back makes
 * its writes fail with EAGAIN). A SIGHUP (its terminal hung up) fails at once.
 * Sharing of open file descriptions between fds 0-2 is not checked.
 */
#include "subject.h"

#define STATUS_FLAGS (O_ACCMODE | O_NONBLOCK | O_APPEND)

static volatile sig_atomic_t got_hup;

static void hup_handler(int sig)
{
	(void)sig;
	got_hup = 1;
}

/* Write all of s to fd; returns 0 or the errno of the failing write. */
static int write_all(int fd, const char *s)
{
	size_t n = strlen(s);

	while (n > 0) {
		ssize_t w = write(fd, s, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return errno;
		if (w == 0)
			return EIO;
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

/* "fd N: tty yes|no (errno E), flags 0x..": the state of fds 0-2 now. */
static void describe_fds(char *out, size_t cap)
{
	size_t o = 0;
	int fd, w;

	out[0] = 0;
	for (fd = 0; fd <= 2; fd++) {
		int tty = isatty(fd);
		int e = tty ? 0 : errno;
		int fl = fcntl(fd, F_GETFL);
		char path[64], link[256];
		ssize_t l;

		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		l = readlink(path, link, sizeof(link) - 1);
		link[l > 0 ? l : 0] = 0;
		w = snprintf(out + o, cap - o, "%sfd %d -> %s: isatty %d%s%s, F_GETFL 0x%x",
			     fd ? "; " : "", fd, link, tty,
			     tty ? "" : " errno ", tty ? "" : strerror(e), fl);
		if (w < 0 || (size_t)w >= cap - o)
			break;
		o += (size_t)w;
	}
}

int main(int argc, char **argv)
{
	struct timespec ts = { 0, 100 * 1000 * 1000 };
	struct sigaction sa;
	char name0[256], now[1024];
	int tty0[3], fl0[3], fd, e;

	subject_init(argc, argv, 1, "");
	for (fd = 0; fd <= 2; fd++) {
		tty0[fd] = isatty(fd);
		fl0[fd] = fcntl(fd, F_GETFL);
		if (!tty0[fd] || fl0[fd] < 0) {
			fprintf(stderr, "tty_job: fd %d is not a terminal\n", fd);
			exit(2);
		}
	}
	if (ttyname_r(0, name0, sizeof(name0)) != 0)
		snprintf(name0, sizeof(name0), "?");

	install_term_handler(0);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = hup_handler;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGHUP, &sa, NULL) != 0) {
		perror("sigaction SIGHUP");
		exit(2);
	}

	e = write_all(1, "tty_job says hello\n");
	if (e)
		subject_fail("writing hello to fd 1 (%s) failed: %s", name0, strerror(e));
	subject_ready(NULL);

	while (!got_term) {
		int r = nanosleep(&ts, NULL);

		e = errno;
		if (got_hup) {
			describe_fds(now, sizeof(now));
			subject_fail("got SIGHUP (the terminal was %s when started): %s", name0, now);
		}
		if (r != 0 && !(e == EINTR && got_term))
			subject_fail("nanosleep returned %d errno %d (%s) without SIGTERM", r, e,
				     e == EINTR ? "spurious EINTR" : strerror(e));
	}

	describe_fds(now, sizeof(now));
	for (fd = 0; fd <= 2; fd++) {
		int fl = fcntl(fd, F_GETFL);

		CHECK(isatty(fd), "fd %d is no longer a terminal (it was %s): %s", fd, name0, now);
		CHECK(fl >= 0 && (fl & STATUS_FLAGS) == (fl0[fd] & STATUS_FLAGS),
		      "fd %d: F_GETFL was 0x%x, now 0x%x (compared bits 0x%x): %s",
		      fd, fl0[fd], fl, STATUS_FLAGS, now);
	}
	e = write_all(1, "tty_job says goodbye\n");
	CHECK(e == 0, "writing to fd 1 failed: %s (the terminal was %s when started): %s",
	      strerror(e), name0, now);
	subject_pass();
}
