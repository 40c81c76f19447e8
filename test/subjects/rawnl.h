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

#include <linux/netlink.h>
#include <linux/rtnetlink.h>

/* A u32 attribute (IFLA_*) of link ifindex, asked with RTM_GETLINK; -1 if it has none. */
static SUBJ_UNUSED long link_u32(int ifindex, unsigned short attr)
{
	struct { struct nlmsghdr h; struct ifinfomsg i; } req;
	static char buf[65536];
	int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	long out = -1;
	ssize_t n;

	if (s < 0)
		return -1;
	memset(&req, 0, sizeof(req));
	req.h.nlmsg_len = sizeof(req);
	req.h.nlmsg_type = RTM_GETLINK;
	req.h.nlmsg_flags = NLM_F_REQUEST;
	req.i.ifi_family = AF_UNSPEC;
	req.i.ifi_index = ifindex;
	if (send(s, &req, sizeof(req), 0) < 0 || (n = recv(s, buf, sizeof(buf), 0)) <= 0) {
		close(s);
		return -1;
	}
	for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
		if (h->nlmsg_type != RTM_NEWLINK)
			continue;
		struct ifinfomsg *i = NLMSG_DATA(h);
		int len = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof(*i)));
		for (struct rtattr *a = IFLA_RTA(i); RTA_OK(a, len); a = RTA_NEXT(a, len))
			if (a->rta_type == attr)
				memcpy(&out, RTA_DATA(a), 4), out &= 0xffffffffL;
	}
	close(s);
	return out;
}
