/*
 * ping.c - ICMP "ping" sockets (SOCK_DGRAM, IPPROTO_ICMP / IPPROTO_ICMPV6).
 *   ping OUTFILE MODE
 * MODE:
 *   bound     IPv4 ping socket bound to 0.0.0.0 with ident 0x1234; after
 *             restore the ident is the same and an echo to 127.0.0.1 is answered
 *   auto      IPv4 ping socket whose ident the kernel chose at its first send
 *             (the reply read before READY), connected to 127.0.0.1; after
 *             restore: same ident, send() without an address is answered
 *   v6        IPv6 ping socket bound to ::1 with ident 0x2345, connected
 *   opts      IPv4 ping socket with IP_RECVTTL, IP_TOS, SO_RCVTIMEO, bound to
 *             127.0.0.1, non-blocking; the TTL arrives as a control message
 *   unbound   IPv4 ping socket never used: no ident until its first send
 *   gid       the process runs with effective group 1000 (the only group the
 *             test lets make ping sockets): a bound IPv4 ping socket
 *   queued    (refused) an echo reply waiting to be read
 *   connfirst connected before its first send (connect autobinds: an ident)
 */
#include "rawnl.h"
#include <netinet/ip_icmp.h>
#include <netinet/icmp6.h>
#include <fcntl.h>
#include <sys/time.h>

static int echo(int fd, int fam, const char *to, uint16_t seq)
{
	unsigned char b[32];

	memset(b, 0, sizeof(b));
	b[0] = fam == AF_INET ? ICMP_ECHO : ICMP6_ECHO_REQUEST;
	b[6] = (unsigned char)(seq >> 8);
	b[7] = (unsigned char)seq;
	memcpy(b + 8, "ckpt-ping", 9);
	if (!to)
		return (int)send(fd, b, sizeof(b), 0);
	if (fam == AF_INET) {
		struct sockaddr_in a = { .sin_family = AF_INET };
		inet_pton(AF_INET, to, &a.sin_addr);
		return (int)sendto(fd, b, sizeof(b), 0, (struct sockaddr *)&a, sizeof(a));
	}
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6 };
	inet_pton(AF_INET6, to, &a6.sin6_addr);
	return (int)sendto(fd, b, sizeof(b), 0, (struct sockaddr *)&a6, sizeof(a6));
}

/* An echo reply of sequence seq (the kernel fills in the ident): 1 got it. */
static int reply(int fd, int fam, uint16_t seq, uint16_t ident, int *ttl)
{
	unsigned char b[256];
	char cbuf[256];

	while (readable(fd, 3000)) {
		struct iovec iov = { b, sizeof(b) };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
		ssize_t n = recvmsg(fd, &m, MSG_DONTWAIT);
		if (n < 8)
			return 0;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
			if (ttl && c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TTL)
				memcpy(ttl, CMSG_DATA(c), sizeof(int));
		if (b[0] == (fam == AF_INET ? ICMP_ECHOREPLY : ICMP6_ECHO_REPLY) && ((b[6] << 8) | b[7]) == seq
		    && ((b[4] << 8) | b[5]) == ident && !memcmp(b + 8, "ckpt-ping", 9))
			return 1;
	}
	return 0;
}

static uint16_t ident_of(int fd)
{
	struct sockaddr_storage s;
	socklen_t l = sizeof(s);

	if (getsockname(fd, (struct sockaddr *)&s, &l) < 0)
		return 0;
	return ntohs(s.ss_family == AF_INET ? ((struct sockaddr_in *)&s)->sin_port : ((struct sockaddr_in6 *)&s)->sin6_port);
}

int main(int argc, char **argv)
{
	const char *mode;

	if (argc < 3) {
		fprintf(stderr, "usage: ping OUTFILE MODE\n");
		return 2;
	}
	mode = argv[2];
	subject_outfile = argv[1];
	install_term_handler(0);

	if (!strcmp(mode, "gid"))
		TRY(setresgid((gid_t)-1, 1000, (gid_t)-1));
	if (!strcmp(mode, "bound") || !strcmp(mode, "queued") || !strcmp(mode, "unbound") || !strcmp(mode, "gid")) {
		int fd = socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP);
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(0x1234) };

		TRY(fd);
		if (strcmp(mode, "unbound"))
			TRY(bind(fd, (struct sockaddr *)&a, sizeof(a)));
		if (!strcmp(mode, "queued")) {
			TRY(echo(fd, AF_INET, "127.0.0.1", 7));
			CHECK(readable(fd, 3000), "no echo reply before READY");
		}
		subject_ready(argv[1]);
		wait_term();
		if (!strcmp(mode, "unbound")) {
			CHECK(ident_of(fd) == 0, "an ident %#x before any send", ident_of(fd));
			TRY(echo(fd, AF_INET, "127.0.0.1", 8));
			CHECK(ident_of(fd) != 0, "no ident after a send");
			CHECK(reply(fd, AF_INET, 8, ident_of(fd), NULL), "no echo reply after restore");
			subject_pass();
		}
		CHECK(ident_of(fd) == 0x1234, "ident %#x, not 0x1234", ident_of(fd));
		CHECK(getegid() == (!strcmp(mode, "gid") ? 1000 : 0), "effective group %d", (int)getegid());
		if (!strcmp(mode, "queued"))
			CHECK(reply(fd, AF_INET, 7, 0x1234, NULL), "the queued reply is gone");
		TRY(echo(fd, AF_INET, "127.0.0.1", 9));
		CHECK(reply(fd, AF_INET, 9, 0x1234, NULL), "no echo reply after restore");
		subject_pass();
	}
	if (!strcmp(mode, "connfirst")) {
		int fd = socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP);
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		uint16_t id;

		TRY(fd);
		TRY(connect(fd, (struct sockaddr *)&a, sizeof(a)));
		id = ident_of(fd);
		subject_ready(argv[1]);
		wait_term();
		CHECK(ident_of(fd) == id, "ident %#x, not %#x", ident_of(fd), id);
		TRY(echo(fd, AF_INET, NULL, 5));
		CHECK(reply(fd, AF_INET, 5, ident_of(fd), NULL), "no echo reply");
		subject_pass();
	}
	if (!strcmp(mode, "auto")) {
		int fd = socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP);
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		uint16_t id;

		TRY(fd);
		TRY(connect(fd, (struct sockaddr *)&a, sizeof(a)));
		TRY(echo(fd, AF_INET, NULL, 1));
		id = ident_of(fd);
		CHECK(id != 0 && reply(fd, AF_INET, 1, id, NULL), "no reply before READY");
		subject_ready(argv[1]);
		wait_term();
		CHECK(ident_of(fd) == id, "ident %#x, not %#x", ident_of(fd), id);
		TRY(echo(fd, AF_INET, NULL, 2));
		CHECK(reply(fd, AF_INET, 2, id, NULL), "no echo reply after restore (still connected?)");
		subject_pass();
	}
	if (!strcmp(mode, "v6")) {
		int fd = socket(AF_INET6, SOCK_DGRAM, IPPROTO_ICMPV6);
		struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT, .sin6_port = htons(0x2345) };

		TRY(fd);
		TRY(bind(fd, (struct sockaddr *)&a, sizeof(a)));
		a.sin6_port = 0;
		TRY(connect(fd, (struct sockaddr *)&a, sizeof(a)));
		SETINT(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, 17);
		subject_ready(argv[1]);
		wait_term();
		CHECK(ident_of(fd) == 0x2345, "ident %#x, not 0x2345", ident_of(fd));
		EXPECT_INT(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, 17);
		TRY(echo(fd, AF_INET6, NULL, 3));
		CHECK(reply(fd, AF_INET6, 3, 0x2345, NULL), "no ICMPv6 echo reply after restore");
		subject_pass();
	}
	if (!strcmp(mode, "opts")) {
		int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, IPPROTO_ICMP);
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = htons(0x3456) };
		struct timeval tv = { 3, 500000 }, got;
		socklen_t gl = sizeof(got);
		int ttl = -1;

		TRY(fd);
		TRY(bind(fd, (struct sockaddr *)&a, sizeof(a)));
		SETINT(fd, IPPROTO_IP, IP_RECVTTL, 1);
		SETINT(fd, IPPROTO_IP, IP_TOS, 0x10);
		SETINT(fd, IPPROTO_IP, IP_TTL, 33);
		TRY(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)));
		subject_ready(argv[1]);
		wait_term();
		EXPECT_INT(fd, IPPROTO_IP, IP_TOS, 0x10);
		EXPECT_INT(fd, IPPROTO_IP, IP_TTL, 33);
		TRY(getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &got, &gl));
		CHECK(got.tv_sec == 3 && got.tv_usec == 500000, "SO_RCVTIMEO %ld.%06ld", (long)got.tv_sec, (long)got.tv_usec);
		CHECK(fcntl(fd, F_GETFL) & O_NONBLOCK, "no longer non-blocking");
		TRY(echo(fd, AF_INET, "127.0.0.1", 4));
		CHECK(reply(fd, AF_INET, 4, 0x3456, &ttl), "no echo reply after restore");
		CHECK(ttl == 64, "the reply came with TTL %d (IP_RECVTTL lost?)", ttl);
		subject_pass();
	}
	fprintf(stderr, "ping: unknown mode %s\n", mode);
	return 2;
}
