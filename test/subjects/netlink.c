/*
 * netlink.c - netlink sockets that a program holds.
 *   netlink OUTFILE MODE
 * MODE:
 *   route     NETLINK_ROUTE socket whose port id the kernel chose, with
 *             RTMGRP_LINK | RTMGRP_IPV4_IFADDR from bind and groups 9 and 33
 *             added (NETLINK_ADD_MEMBERSHIP: beyond the first 32), with
 *             NETLINK_PKTINFO, NETLINK_EXT_ACK, NETLINK_NO_ENOBUFS and
 *             NETLINK_GET_STRICT_CHK; after restore: the same port id and
 *             groups, and adding 127.0.0.42/32 to lo brings an RTM_NEWADDR
 *             with the group as its pktinfo
 *   explicit  NETLINK_KOBJECT_UEVENT bound to port id 0x7ff00001 and group 1,
 *             NETLINK_BROADCAST_ERROR, NETLINK_CAP_ACK, SO_RCVBUF; a
 *             NETLINK_GENERIC socket never bound; a NETLINK_SOCK_DIAG socket
 *             that did a request and read the answer; a NETLINK_AUDIT socket
 *             bound (not the audit daemon)
 *   connected two NETLINK_USERSOCK sockets: A bound to 0x6000abcd, B (port id
 *             from the kernel) connected to A; after restore B's send()
 *             arrives at A from B's port id
 *   queued    (refused) a route socket with the answer to RTM_GETLINK of lo
 *             (not a dump) unread
 *   connector (refused) a NETLINK_CONNECTOR socket (the proc connector keeps
 *             per-socket state that cannot be read back)
 *   dumping   (refused) a route socket in the middle of an address dump
 *             (200 addresses on lo, a small receive buffer)
 */
#include "rawnl.h"
#include <net/if.h>
#include <fcntl.h>

#ifndef NETLINK_EXT_ACK
#define NETLINK_EXT_ACK 11
#endif
#ifndef NETLINK_GET_STRICT_CHK
#define NETLINK_GET_STRICT_CHK 12
#endif

static uint32_t portid_of(int fd)
{
	struct sockaddr_nl a;
	socklen_t l = sizeof(a);

	if (getsockname(fd, (struct sockaddr *)&a, &l) < 0)
		return 0xffffffff;
	return a.nl_pid;
}

/* The membership bitmap (NETLINK_LIST_MEMBERSHIPS) as text. */
static void groups_of(int fd, char *out, size_t cap)
{
	uint32_t g[8] = { 0 };
	socklen_t l = sizeof(g);
	size_t o = 0;

	out[0] = 0;
	if (getsockopt(fd, SOL_NETLINK, NETLINK_LIST_MEMBERSHIPS, g, &l) < 0) {
		snprintf(out, cap, "error %d", errno);
		return;
	}
	for (unsigned i = 0; i < l / 4 && o + 12 < cap; i++)
		o += (size_t)snprintf(out + o, cap - o, "%08x ", g[i]);
}

/* Add (RTM_NEWADDR) or remove (RTM_DELADDR) an IPv4 address on lo; 0 or -errno. */
static int lo_addr(int type, uint32_t addr, int plen)
{
	struct {
		struct nlmsghdr h;
		struct ifaddrmsg a;
		struct rtattr r1; uint32_t local;
		struct rtattr r2; uint32_t address;
	} req;
	char buf[4096];
	int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE), err = -EIO;

	memset(&req, 0, sizeof(req));
	req.h.nlmsg_len = sizeof(req);
	req.h.nlmsg_type = (unsigned short)type;
	req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | (type == RTM_NEWADDR ? NLM_F_CREATE | NLM_F_EXCL : 0);
	req.a.ifa_family = AF_INET;
	req.a.ifa_prefixlen = (unsigned char)plen;
	req.a.ifa_index = if_nametoindex("lo");
	req.r1.rta_len = RTA_LENGTH(4); req.r1.rta_type = IFA_LOCAL; req.local = htonl(addr);
	req.r2.rta_len = RTA_LENGTH(4); req.r2.rta_type = IFA_ADDRESS; req.address = htonl(addr);
	if (send(s, &req, sizeof(req), 0) == sizeof(req) && recv(s, buf, sizeof(buf), 0) > 0) {
		struct nlmsghdr *h = (struct nlmsghdr *)buf;
		if (h->nlmsg_type == NLMSG_ERROR)
			err = ((struct nlmsgerr *)NLMSG_DATA(h))->error;
	}
	close(s);
	return err;
}

/* Wait for an RTM_NEWADDR of addr on fd; returns the pktinfo group seen (0 if none), -1 if it never came. */
static int wait_newaddr(int fd, uint32_t addr)
{
	static char buf[65536];
	char cbuf[256];

	while (readable(fd, 3000)) {
		struct iovec iov = { buf, sizeof(buf) };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
		ssize_t n = recvmsg(fd, &m, MSG_DONTWAIT);
		int group = 0;

		if (n <= 0)
			return -1;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
			if (c->cmsg_level == SOL_NETLINK && c->cmsg_type == NETLINK_PKTINFO)
				group = (int)((struct nl_pktinfo *)CMSG_DATA(c))->group;
		for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
			if (h->nlmsg_type != RTM_NEWADDR)
				continue;
			struct ifaddrmsg *a = NLMSG_DATA(h);
			int len = (int)IFA_PAYLOAD(h);
			for (struct rtattr *r = IFA_RTA(a); RTA_OK(r, len); r = RTA_NEXT(r, len))
				if (r->rta_type == IFA_LOCAL && *(uint32_t *)RTA_DATA(r) == htonl(addr))
					return group;
		}
	}
	return -1;
}

static void dump_request(int fd, int type)
{
	struct { struct nlmsghdr h; struct ifaddrmsg a; } req;

	memset(&req, 0, sizeof(req));
	req.h.nlmsg_len = sizeof(req);
	req.h.nlmsg_type = (unsigned short)type;
	req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	req.h.nlmsg_seq = 77;
	req.a.ifa_family = AF_INET;
	TRY(send(fd, &req, sizeof(req), 0));
}

/* Read a dump's answer to its end: the number of messages of `type`, -1 if it ended badly. */
static int read_dump(int fd, int type)
{
	static char buf[65536];
	int count = 0;

	for (;;) {
		if (!readable(fd, 3000))
			return -1;
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n <= 0)
			return -1;
		for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
			if (h->nlmsg_type == NLMSG_DONE)
				return count;
			if (h->nlmsg_type == NLMSG_ERROR)
				return -1;
			if (h->nlmsg_type == type)
				count++;
		}
	}
}

int main(int argc, char **argv)
{
	const char *mode;
	char g1[128], g2[128];

	if (argc < 3) {
		fprintf(stderr, "usage: netlink OUTFILE MODE\n");
		return 2;
	}
	mode = argv[2];
	subject_outfile = argv[1];
	install_term_handler(0);

	if (!strcmp(mode, "route")) {
		int fd = socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE);
		struct sockaddr_nl a = { .nl_family = AF_NETLINK, .nl_groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR };
		uint32_t pid;
		int group, r;

		TRY(fd);
		TRY(bind(fd, (struct sockaddr *)&a, sizeof(a)));
		SETINT(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, RTNLGRP_IPV6_IFADDR);
		SETINT(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, 33);
		SETINT(fd, SOL_NETLINK, NETLINK_PKTINFO, 1);
		SETINT(fd, SOL_NETLINK, NETLINK_EXT_ACK, 1);
		SETINT(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, 1);
		SETINT(fd, SOL_NETLINK, NETLINK_GET_STRICT_CHK, 1);
		pid = portid_of(fd);
		groups_of(fd, g1, sizeof(g1));
		subject_ready(argv[1]);
		wait_term();
		CHECK(portid_of(fd) == pid, "port id %u, not %u", portid_of(fd), pid);
		groups_of(fd, g2, sizeof(g2));
		CHECK(!strcmp(g1, g2), "groups %s, not %s", g2, g1);
		EXPECT_INT(fd, SOL_NETLINK, NETLINK_PKTINFO, 1);
		EXPECT_INT(fd, SOL_NETLINK, NETLINK_EXT_ACK, 1);
		EXPECT_INT(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, 1);
		EXPECT_INT(fd, SOL_NETLINK, NETLINK_GET_STRICT_CHK, 1);
		EXPECT_INT(fd, SOL_NETLINK, NETLINK_BROADCAST_ERROR, 0);
		r = lo_addr(RTM_NEWADDR, 0x7f00002a, 32);
		CHECK(r == 0, "adding 127.0.0.42/32 to lo: %s", strerror(-r));
		group = wait_newaddr(fd, 0x7f00002a);
		lo_addr(RTM_DELADDR, 0x7f00002a, 32);
		CHECK(group >= 0, "no RTM_NEWADDR notification after restore");
		CHECK(group == RTNLGRP_IPV4_IFADDR, "the notification came with pktinfo group %d, not %d", group, RTNLGRP_IPV4_IFADDR);
		subject_pass();
	}
	if (!strcmp(mode, "explicit")) {
		int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_NONBLOCK, NETLINK_KOBJECT_UEVENT);
		int gen = socket(AF_NETLINK, SOCK_RAW, NETLINK_GENERIC);
		int diag = socket(AF_NETLINK, SOCK_RAW, NETLINK_SOCK_DIAG);
		int audit = socket(AF_NETLINK, SOCK_RAW, NETLINK_AUDIT);
		struct sockaddr_nl a = { .nl_family = AF_NETLINK, .nl_pid = 0x7ff00001, .nl_groups = 1 };
		struct sockaddr_nl a0 = { .nl_family = AF_NETLINK };
		int rcv;
		uint32_t dpid;

		TRY(fd); TRY(gen); TRY(diag); TRY(audit);
		TRY(bind(fd, (struct sockaddr *)&a, sizeof(a)));
		TRY(bind(audit, (struct sockaddr *)&a0, sizeof(a0)));
		a0.nl_pid = portid_of(audit);
		SETINT(fd, SOL_NETLINK, NETLINK_BROADCAST_ERROR, 1);
		SETINT(fd, SOL_NETLINK, NETLINK_CAP_ACK, 1);
		SETINT(fd, SOL_SOCKET, SO_RCVBUF, 1 << 20);
		rcv = getint(fd, SOL_SOCKET, SO_RCVBUF);
		{
			/* a sock_diag request for netlink sockets, answered and read */
			struct { struct nlmsghdr h; unsigned char req[20]; } q;
			memset(&q, 0, sizeof(q));
			q.h.nlmsg_len = sizeof(q);
			q.h.nlmsg_type = 20; /* SOCK_DIAG_BY_FAMILY */
			q.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
			q.req[0] = AF_NETLINK;
			q.req[1] = 255;
			TRY(send(diag, &q, sizeof(q), 0));
			CHECK(read_dump(diag, 20) > 0, "sock_diag answered nothing");
		}
		dpid = portid_of(diag);
		subject_ready(argv[1]);
		wait_term();
		CHECK(portid_of(fd) == 0x7ff00001, "port id %#x, not 0x7ff00001", portid_of(fd));
		groups_of(fd, g1, sizeof(g1));
		CHECK(!strncmp(g1, "00000001", 8), "uevent groups %s", g1);
		EXPECT_INT(fd, SOL_NETLINK, NETLINK_BROADCAST_ERROR, 1);
		EXPECT_INT(fd, SOL_NETLINK, NETLINK_CAP_ACK, 1);
		EXPECT_INT(fd, SOL_SOCKET, SO_RCVBUF, rcv);
		EXPECT_INT(fd, SOL_SOCKET, SO_TYPE, SOCK_DGRAM);
		EXPECT_INT(gen, SOL_SOCKET, SO_PROTOCOL, NETLINK_GENERIC);
		CHECK(portid_of(gen) == 0, "the generic socket got port id %u", portid_of(gen));
		CHECK(portid_of(audit) == a0.nl_pid, "the audit socket's port id is %u, not %u", portid_of(audit), a0.nl_pid);
		CHECK(portid_of(diag) == dpid, "the sock_diag socket's port id is %u, not %u", portid_of(diag), dpid);
		CHECK(fcntl(fd, F_GETFL) & O_NONBLOCK, "no longer non-blocking");
		subject_pass();
	}
	if (!strcmp(mode, "connected")) {
		int A = socket(AF_NETLINK, SOCK_RAW, NETLINK_USERSOCK);
		int B = socket(AF_NETLINK, SOCK_RAW, NETLINK_USERSOCK);
		struct sockaddr_nl a = { .nl_family = AF_NETLINK, .nl_pid = 0x6000abcd };
		struct sockaddr_nl from;
		socklen_t fl = sizeof(from);
		char buf[256];
		struct nlmsghdr h = { .nlmsg_len = sizeof(h), .nlmsg_type = 0x42, .nlmsg_seq = 9 };
		uint32_t bpid;
		ssize_t n;

		TRY(A); TRY(B);
		TRY(bind(A, (struct sockaddr *)&a, sizeof(a)));
		TRY(connect(B, (struct sockaddr *)&a, sizeof(a)));
		bpid = portid_of(B);
		subject_ready(argv[1]);
		wait_term();
		CHECK(portid_of(B) == bpid, "B's port id %u, not %u", portid_of(B), bpid);
		CHECK(send(B, &h, sizeof(h), 0) == sizeof(h), "send on B: %s", strerror(errno));
		CHECK(readable(A, 3000), "A got nothing");
		n = recvfrom(A, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);
		CHECK(n == sizeof(h) && ((struct nlmsghdr *)buf)->nlmsg_type == 0x42, "A got %zd bytes", n);
		CHECK(from.nl_pid == bpid, "A got it from %u, not B (%u)", from.nl_pid, bpid);
		subject_pass();
	}
	if (!strcmp(mode, "queued")) {
		int fd = socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE);

		struct { struct nlmsghdr h; struct ifinfomsg i; } req;
		char buf[8192];
		ssize_t n;

		TRY(fd);
		memset(&req, 0, sizeof(req));
		req.h.nlmsg_len = sizeof(req);
		req.h.nlmsg_type = RTM_GETLINK;
		req.h.nlmsg_flags = NLM_F_REQUEST;
		req.i.ifi_index = (int)if_nametoindex("lo");
		TRY(send(fd, &req, sizeof(req), 0));
		CHECK(readable(fd, 3000), "no answer before READY");
		subject_ready(argv[1]);
		wait_term();
		n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		CHECK(n > 0 && ((struct nlmsghdr *)buf)->nlmsg_type == RTM_NEWLINK, "the answer is gone (%zd)", n);
		subject_pass();
	}
	if (!strcmp(mode, "connector")) {
		int fd = socket(AF_NETLINK, SOCK_DGRAM, 11 /* NETLINK_CONNECTOR */);
		struct sockaddr_nl a = { .nl_family = AF_NETLINK, .nl_groups = 1 /* CN_IDX_PROC */ };

		TRY(fd);
		TRY(bind(fd, (struct sockaddr *)&a, sizeof(a)));
		subject_ready(argv[1]);
		wait_term();
		EXPECT_INT(fd, SOL_SOCKET, SO_PROTOCOL, 11);
		subject_pass();
	}
	if (!strcmp(mode, "dumping")) {
		int fd = socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE), r, n;

		TRY(fd);
		for (int i = 1; i <= 200; i++) {
			r = lo_addr(RTM_NEWADDR, 0x7f010000 + (uint32_t)i, 32);
			CHECK(r == 0 || r == -EEXIST, "adding 127.1.0.%d: %s", i, strerror(-r));
		}
		SETINT(fd, SOL_SOCKET, SO_RCVBUF, 1024);
		dump_request(fd, RTM_GETADDR);
		CHECK(readable(fd, 3000), "no answer before READY");
		subject_ready(argv[1]);
		wait_term();
		n = read_dump(fd, RTM_NEWADDR);
		for (int i = 1; i <= 200; i++)
			lo_addr(RTM_DELADDR, 0x7f010000 + (uint32_t)i, 32);
		CHECK(n >= 200, "the address dump ended after %d addresses", n);
		subject_pass();
	}
	fprintf(stderr, "netlink: unknown mode %s\n", mode);
	return 2;
}
