/*
 * fifo_data - FIFOs (named pipes) with data buffered in them must come back
 * with that data, their capacity and their ends.
 *
 *   fifo_data OUTFILE MODE
 *
 *   rw      read end (O_RDONLY|O_NONBLOCK) and write end (O_WRONLY) in this
 *           process, 2000 bytes buffered
 *   rdwr    one O_RDWR fd, 1000 bytes buffered
 *   shared  the parent holds the write end, its child the read end, 500
 *           bytes in flight; after restore the parent writes 700 more and
 *           the child checks it reads all 1200, then end of file
 *   size    capacity grown to 128 KiB, 100 KiB buffered
 */
#include "subject.h"
#include "pipedata.h"
#include <sys/wait.h>

int main(int argc, char **argv)
{
	subject_init(argc, argv, 2, "MODE");
	install_term_handler(0);
	const char *mode = argv[2];
	CHECK(mkfifo("f", 0600) == 0, "mkfifo: %s", strerror(errno));
	int r = -1, w = -1;
	pid_t kid = -1;
	if (!strcmp(mode, "rw") || !strcmp(mode, "size")) {
		r = open("f", O_RDONLY | O_NONBLOCK);
		w = open("f", O_WRONLY);
		CHECK(r >= 0 && w >= 0, "open: %s", strerror(errno));
		if (!strcmp(mode, "size")) {
			CHECK(fcntl(w, F_SETPIPE_SZ, 128 << 10) == 128 << 10, "F_SETPIPE_SZ: %s", strerror(errno));
			pd_fill(w, 100 << 10, 0);
		} else pd_fill(w, 2000, 0);
	} else if (!strcmp(mode, "rdwr")) {
		r = w = open("f", O_RDWR);
		CHECK(r >= 0, "open: %s", strerror(errno));
		pd_fill(w, 1000, 0);
	} else if (!strcmp(mode, "shared")) {
		kid = fork();
		if (kid == 0) {
			int rr = open("f", O_RDONLY);
			if (rr < 0) _exit(4);
			while (!got_term) pause();
			pd_expect(rr, 1200, 0, "child");
			char c;
			_exit(read(rr, &c, 1) == 0 ? 0 : 3);
		}
		w = open("f", O_WRONLY);
		CHECK(w >= 0, "open: %s", strerror(errno));
		pd_fill(w, 500, 0);
	} else {
		fprintf(stderr, "fifo_data: unknown MODE '%s'\n", mode);
		return 2;
	}
	subject_ready(NULL);
	while (!got_term) pause();

	if (!strcmp(mode, "rw")) {
		CHECK(pd_queued(r) == 2000, "%d bytes queued, expected 2000", pd_queued(r));
		pd_expect(r, 2000, 0, "rw");
	} else if (!strcmp(mode, "size")) {
		CHECK(fcntl(r, F_GETPIPE_SZ) == 128 << 10, "capacity %d", fcntl(r, F_GETPIPE_SZ));
		CHECK(pd_queued(r) == 100 << 10, "%d bytes queued", pd_queued(r));
		pd_expect(r, 100 << 10, 0, "size");
	} else if (!strcmp(mode, "rdwr")) {
		CHECK(pd_queued(r) == 1000, "%d bytes queued, expected 1000", pd_queued(r));
		pd_expect(r, 1000, 0, "rdwr");
	} else {
		kill(kid, SIGTERM);
		pd_fill(w, 700, 500);
		close(w);
		int st;
		CHECK(waitpid(kid, &st, 0) == kid, "waitpid: %s", strerror(errno));
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child's reading failed (status %#x)", st);
	}
	subject_pass();
}
