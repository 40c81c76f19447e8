/*
 * pipedata.h - data through pipes and FIFOs for the subjects that check it
 * (pipes.c, fifo_data.c): bytes patterned by their position in the stream,
 * written, read back and checked, and the count of bytes queued.
 */
#ifndef CKPT_PIPEDATA_H
#define CKPT_PIPEDATA_H
#include <sys/ioctl.h>

static unsigned char pd_pat(size_t i) { return (unsigned char)(i * 7 + 3); }

/* Write bytes [from, from + n) of the stream. */
static SUBJ_UNUSED void pd_fill(int fd, size_t n, size_t from)
{
	unsigned char buf[4096];
	while (n) {
		size_t k = n < sizeof(buf) ? n : sizeof(buf);
		for (size_t i = 0; i < k; i++) buf[i] = pd_pat(from + i);
		ssize_t w = write(fd, buf, k);
		CHECK(w == (ssize_t)k, "write %zu: %zd %s", k, w, strerror(errno));
		n -= k;
		from += k;
	}
}

/* Read exactly bytes [from, from + n) of the stream (waiting on a non-blocking fd) and check them. */
static SUBJ_UNUSED void pd_expect(int fd, size_t n, size_t from, const char *what)
{
	unsigned char buf[4096];
	size_t got = 0;
	while (got < n) {
		size_t k = n - got < sizeof(buf) ? n - got : sizeof(buf);
		ssize_t r = read(fd, buf, k);
		if (r < 0 && errno == EAGAIN) { usleep(1000); continue; }
		CHECK(r > 0, "%s: read after %zu of %zu bytes: %zd %s", what, got, n, r, strerror(errno));
		for (ssize_t i = 0; i < r; i++) CHECK(buf[i] == pd_pat(from + got + i), "%s: byte %zu differs", what, got + i);
		got += r;
	}
}

/* Bytes queued in a pipe or FIFO (FIONREAD). */
static SUBJ_UNUSED int pd_queued(int fd)
{
	int n = -1;
	CHECK(ioctl(fd, FIONREAD, &n) == 0, "FIONREAD: %s", strerror(errno));
	return n;
}
#endif
