/*
 * pipes - pipes must come back with their data, capacity, flags and sharing.
 *
 *   pipes OUTFILE MODE
 *
 *   data      one pipe, both ends here, 3000 bytes buffered
 *   full      a pipe grown to 256 KiB (F_SETPIPE_SZ) and filled to the brim
 *   shared    parent holds the write end, child the read end; 500 bytes in
 *             flight; after restore the parent writes more and the child
 *             checks it reads everything, in order
 *   halfclosed the write end closed after 100 bytes: the reader gets the
 *             data, then end of file
 *   noreader  the read end closed: a write fails with EPIPE (SIGPIPE ignored)
 *   nonblock  O_NONBLOCK on the read end only, the pipe empty: read gives
 *             EAGAIN; the write end is blocking
 *   leaverun  data buffered, checked while still running after a dump
 *             with --leave-running (the data must not have been consumed)
 *
 * After SIGTERM each mode checks its pipe and reports PASS or FAIL.
 */
#include "subject.h"
#include "pipedata.h"
#include <sys/wait.h>

int main(int argc, char **argv)
{
	subject_init(argc, argv, 2, "MODE");
	install_term_handler(0);
	const char *mode = argv[2];
	int p[2];
	CHECK(pipe(p) == 0, "pipe: %s", strerror(errno));
	pid_t kid = -1;

	if (!strcmp(mode, "data") || !strcmp(mode, "leaverun")) {
		pd_fill(p[1], 3000, 0);
	} else if (!strcmp(mode, "full")) {
		CHECK(fcntl(p[1], F_SETPIPE_SZ, 256 << 10) == 256 << 10, "F_SETPIPE_SZ: %s", strerror(errno));
		fcntl(p[1], F_SETFL, O_NONBLOCK);
		size_t n = 0;
		for (;;) {
			unsigned char c = pd_pat(n);
			if (write(p[1], &c, 1) != 1) { CHECK(errno == EAGAIN, "filling: %s", strerror(errno)); break; }
			n++;
		}
		CHECK(n == 256 << 10, "the pipe took %zu bytes", n);
		fcntl(p[1], F_SETFL, 0);
	} else if (!strcmp(mode, "shared")) {
		kid = fork();
		if (kid == 0) {
			close(p[1]);
			while (!got_term) pause();
			/* 500 bytes from before the dump, then 700 written after restore, then EOF. */
			pd_expect(p[0], 1200, 0, "child");
			char c;
			_exit(read(p[0], &c, 1) == 0 ? 0 : 3);
		}
		close(p[0]);
		pd_fill(p[1], 500, 0);
	} else if (!strcmp(mode, "halfclosed")) {
		pd_fill(p[1], 100, 0);
		close(p[1]);
	} else if (!strcmp(mode, "noreader")) {
		close(p[0]);
		signal(SIGPIPE, SIG_IGN);
	} else if (!strcmp(mode, "nonblock")) {
		CHECK(fcntl(p[0], F_SETFL, O_NONBLOCK) == 0, "F_SETFL: %s", strerror(errno));
	} else {
		fprintf(stderr, "pipes: unknown MODE '%s'\n", mode);
		return 2;
	}
	subject_ready(NULL);
	while (!got_term) pause();

	if (!strcmp(mode, "data") || !strcmp(mode, "leaverun")) {
		CHECK(pd_queued(p[0]) == 3000, "%d bytes queued, expected 3000", pd_queued(p[0]));
		pd_expect(p[0], 3000, 0, "data");
		pd_fill(p[1], 10, 3000);
		pd_expect(p[0], 10, 3000, "after");
	} else if (!strcmp(mode, "full")) {
		CHECK(fcntl(p[0], F_GETPIPE_SZ) == 256 << 10, "capacity %d, expected %d", fcntl(p[0], F_GETPIPE_SZ), 256 << 10);
		CHECK(pd_queued(p[0]) == 256 << 10, "%d bytes queued", pd_queued(p[0]));
		pd_expect(p[0], 256 << 10, 0, "full");
	} else if (!strcmp(mode, "shared")) {
		kill(kid, SIGTERM);
		pd_fill(p[1], 700, 500);
		close(p[1]);
		int st;
		CHECK(waitpid(kid, &st, 0) == kid, "waitpid: %s", strerror(errno));
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child's reading failed (status %#x)", st);
	} else if (!strcmp(mode, "halfclosed")) {
		pd_expect(p[0], 100, 0, "halfclosed");
		char c;
		CHECK(read(p[0], &c, 1) == 0, "no end of file after the data");
	} else if (!strcmp(mode, "noreader")) {
		CHECK(write(p[1], "x", 1) == -1 && errno == EPIPE, "a write without readers did not fail with EPIPE");
	} else if (!strcmp(mode, "nonblock")) {
		CHECK(fcntl(p[0], F_GETFL) & O_NONBLOCK, "the read end lost O_NONBLOCK");
		CHECK(!(fcntl(p[1], F_GETFL) & O_NONBLOCK), "the write end got O_NONBLOCK");
		char c;
		CHECK(read(p[0], &c, 1) == -1 && errno == EAGAIN, "read of the empty pipe: not EAGAIN");
		CHECK(write(p[1], "y", 1) == 1 && read(p[0], &c, 1) == 1 && c == 'y', "the pipe does not pass data");
	}
	subject_pass();
}
