/*
 * rawnl.h - helpers shared by the raw, ping, packet and netlink socket subjects.
 */
#ifndef CKPT_RAWNL_H
#define CKPT_RAWNL_H
#include "subject.h"
#include <poll.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

static SUBJ_UNUSED void wait_term(void)
{
	sigset_t none;

	sigemptyset(&none);
	while (!got_term)
		sigsuspend(&none);
}

/* Wait up to ms for fd to be readable: 1 readable, 0 not. */
static SUBJ_UNUSED int readable(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int r;

	do
		r = poll(&p, 1, ms);
	while (r < 0 && errno == EINTR);
	return r > 0 && (p.revents & POLLIN);
}

static SUBJ_UNUSED uint16_t csum16(const void *data, size_t len)
{
	const uint8_t *p = data;
	uint32_t s = 0;

	while (len > 1) {
		s += (uint32_t)p[0] << 8 | p[1];
		p += 2;
		len -= 2;
	}
	if (len)
		s += (uint32_t)p[0] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return htons((uint16_t)~s);
}

static SUBJ_UNUSED int getint(int fd, int level, int opt)
{
	int v = -12345;
	socklen_t l = sizeof(v);

	if (getsockopt(fd, level, opt, &v, &l) < 0)
		return -12345;
	return v;
}

#define SETINT(fd, level, opt, v) do { int v_ = (v); if (setsockopt(fd, level, opt, &v_, sizeof(v_)) < 0) { perror(#opt); exit(2); } } while (0)
#define TRY(x) do { if ((x) < 0) { perror(#x); exit(2); } } while (0)
#define EXPECT_INT(fd, level, opt, want) do { int g_ = getint(fd, level, opt); CHECK(g_ == (want), "%s is %d, not %d", #opt, g_, (int)(want)); } while (0)

#endif
