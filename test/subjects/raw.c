/*
 * raw.c - raw inet sockets.
 *   raw OUTFILE MODE
 * MODE:
 *   icmp      raw IPv4 ICMP socket bound to 127.0.0.1 with an ICMP_FILTER that
 *             passes only echo replies; after restore it sends an echo request
 *             to 127.0.0.1 and must see the kernel's reply (and only that)
 *   icmp6     raw ICMPv6 socket with an ICMPV6_FILTER passing only echo
 *             replies, connected to ::1; echo request, reply seen
 *   hdrincl   raw IPv4 UDP socket with IP_HDRINCL, connected to 127.0.0.1, and
 *             an IPPROTO_RAW socket; after restore each sends a hand-made
 *             IP/UDP packet to a UDP socket of the subject, which gets both
 *   opts      raw IPv4 protocol 253 with IP_TOS, SO_MARK, IP_ROUTER_ALERT,
 *             SO_RCVBUF, shut down for reading, non-blocking; raw IPv6
 *             protocol 253 with IPV6_CHECKSUM 6 and IPV6_HDRINCL; values read
 *             back after restore
 *   queued    (refused) raw ICMP socket with an echo reply waiting to be read
 *   ra6       (refused) IPv6 IPPROTO_RAW socket with IPV6_ROUTER_ALERT
 *   mcast     (refused) raw IPv4 protocol 253 socket that joined 239.1.2.3 on lo
 *   mcast6    (refused) raw IPv6 protocol 253 socket that joined ff05::4242 on lo
 * Refused modes check after the failed dump that the socket still works.
 */
#include "rawnl.h"
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <fcntl.h>
#include <netinet/icmp6.h>
#include <netinet/udp.h>
#ifndef ICMP_FILTER
#define ICMP_FILTER 1
struct icmp_filter { uint32_t data; };
#endif

static int send_echo4(int fd, const char *to, uint16_t id, uint16_t seq, int connected)
{
	unsigned char b[64];
	struct icmphdr *h = (struct icmphdr *)b;
	struct sockaddr_in a = { .sin_family = AF_INET };

	memset(b, 0, sizeof(b));
	h->type = ICMP_ECHO;
	h->un.echo.id = htons(id);
	h->un.echo.sequence = htons(seq);
	memcpy(b + 8, "ckpt-raw-echo", 13);
	h->checksum = csum16(b, sizeof(b));
	inet_pton(AF_INET, to, &a.sin_addr);
	if (connected)
		return (int)send(fd, b, sizeof(b), 0);
	return (int)sendto(fd, b, sizeof(b), 0, (struct sockaddr *)&a, sizeof(a));
}

/* Read ICMPv4 packets (with their IP header) until an echo reply of id/seq: 1 found, 0 not; *other counts other types seen. */
static int get_reply4(int fd, uint16_t id, uint16_t seq, int *other)
{
	unsigned char b[2048];

	while (readable(fd, 3000)) {
		ssize_t n = recv(fd, b, sizeof(b), MSG_DONTWAIT);
		if (n < 0)
			return 0;
		struct iphdr *ip = (struct iphdr *)b;
		struct icmphdr *h = (struct icmphdr *)(b + ip->ihl * 4);
		if (h->type == ICMP_ECHOREPLY && ntohs(h->un.echo.id) == id && ntohs(h->un.echo.sequence) == seq)
			return 1;
		(*other)++;
	}
	return 0;
}

static int send_echo6(int fd, uint16_t id, uint16_t seq)
{
	struct icmp6_hdr h;

	memset(&h, 0, sizeof(h));
	h.icmp6_type = ICMP6_ECHO_REQUEST;
	h.icmp6_id = htons(id);
	h.icmp6_seq = htons(seq);
	return (int)send(fd, &h, sizeof(h), 0);
}

static int get_reply6(int fd, uint16_t id, uint16_t seq, int *other)
{
	unsigned char b[2048];

	while (readable(fd, 3000)) {
		ssize_t n = recv(fd, b, sizeof(b), MSG_DONTWAIT);
		if (n < 0)
			return 0;
		struct icmp6_hdr *h = (struct icmp6_hdr *)b;
		if (h->icmp6_type == ICMP6_ECHO_REPLY && ntohs(h->icmp6_id) == id && ntohs(h->icmp6_seq) == seq)
			return 1;
		(*other)++;
	}
	return 0;
}

/* A hand-made IPv4/UDP packet from 127.0.0.1:sport to 127.0.0.1:dport. */
static size_t make_udp(unsigned char *b, uint16_t sport, uint16_t dport, const char *payload)
{
	struct iphdr *ip = (struct iphdr *)b;
	struct udphdr *u = (struct udphdr *)(b + 20);
	size_t pl = strlen(payload), len = 20 + 8 + pl;

	memset(b, 0, len);
	ip->version = 4;
	ip->ihl = 5;
	ip->ttl = 64;
	ip->protocol = IPPROTO_UDP;
	ip->tot_len = htons((uint16_t)len);
	ip->saddr = htonl(INADDR_LOOPBACK);
	ip->daddr = htonl(INADDR_LOOPBACK);
	ip->check = csum16(ip, 20);
	u->source = htons(sport);
	u->dest = htons(dport);
	u->len = htons((uint16_t)(8 + pl));
	memcpy(b + 28, payload, pl);
	return len;
}

int main(int argc, char **argv)
{
	const char *mode;
	int other = 0;

	if (argc < 3) {
		fprintf(stderr, "usage: raw OUTFILE MODE\n");
		return 2;
	}
	mode = argv[2];
	subject_outfile = argv[1];
	install_term_handler(0);

	if (!strcmp(mode, "icmp") || !strcmp(mode, "queued")) {
		int fd = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		struct icmp_filter f = { .data = ~(1U << ICMP_ECHOREPLY) };
		struct icmp_filter g;
		socklen_t gl = sizeof(g);
		struct sockaddr_in n;
		socklen_t nl = sizeof(n);

		TRY(fd);
		TRY(bind(fd, (struct sockaddr *)&a, sizeof(a)));
		TRY(setsockopt(fd, SOL_RAW, ICMP_FILTER, &f, sizeof(f)));
		if (!strcmp(mode, "queued")) {
			TRY(send_echo4(fd, "127.0.0.1", 0x4242, 1, 0));
			for (int i = 0; i < 300; i++) {
				if (readable(fd, 10))
					break;
			}
			CHECK(readable(fd, 0), "no echo reply queued before READY");
		}
		subject_ready(argv[1]);
		wait_term();
		gl = sizeof(g);
		TRY(getsockopt(fd, SOL_RAW, ICMP_FILTER, &g, &gl));
		CHECK(g.data == f.data, "ICMP_FILTER is %#x, not %#x", g.data, f.data);
		TRY(getsockname(fd, (struct sockaddr *)&n, &nl));
		CHECK(n.sin_addr.s_addr == htonl(INADDR_LOOPBACK), "bound to %s, not 127.0.0.1", inet_ntoa(n.sin_addr));
		if (!strcmp(mode, "queued"))
			CHECK(get_reply4(fd, 0x4242, 1, &other), "the queued echo reply is gone");
		TRY(send_echo4(fd, "127.0.0.1", 0x4243, 2, 0));
		CHECK(get_reply4(fd, 0x4243, 2, &other), "no echo reply after restore");
		CHECK(other == 0, "%d packets the filter should have dropped", other);
		subject_pass();
	}
	if (!strcmp(mode, "icmp6")) {
		int fd = socket(AF_INET6, SOCK_RAW, IPPROTO_ICMPV6);
		struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
		struct icmp6_filter f, g;
		socklen_t gl = sizeof(g);

		TRY(fd);
		ICMP6_FILTER_SETBLOCKALL(&f);
		ICMP6_FILTER_SETPASS(ICMP6_ECHO_REPLY, &f);
		TRY(setsockopt(fd, IPPROTO_ICMPV6, ICMP6_FILTER, &f, sizeof(f)));
		TRY(connect(fd, (struct sockaddr *)&a, sizeof(a)));
		subject_ready(argv[1]);
		wait_term();
		TRY(getsockopt(fd, IPPROTO_ICMPV6, ICMP6_FILTER, &g, &gl));
		CHECK(!memcmp(&f, &g, sizeof(f)), "ICMP6_FILTER changed");
		EXPECT_INT(fd, SOL_RAW, IPV6_CHECKSUM, 2);
		TRY(send_echo6(fd, 0x6161, 3));
		CHECK(get_reply6(fd, 0x6161, 3, &other), "no ICMPv6 echo reply after restore (still connected to ::1?)");
		CHECK(other == 0, "%d ICMPv6 packets the filter should have dropped", other);
		subject_pass();
	}
	if (!strcmp(mode, "hdrincl")) {
		int fd = socket(AF_INET, SOCK_RAW, IPPROTO_UDP);
		int rawfd = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
		/* the receiver: a raw UDP socket too (it gets a copy of every UDP packet) */
		int u = socket(AF_INET, SOCK_RAW, IPPROTO_UDP);
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		unsigned char pkt[128], got[256];
		size_t len;

		TRY(fd); TRY(rawfd); TRY(u);
		SETINT(fd, IPPROTO_IP, IP_HDRINCL, 1);
		TRY(connect(fd, (struct sockaddr *)&a, sizeof(a)));
		shutdown(fd, SHUT_RD); /* (it would see the packets too) */
		subject_ready(argv[1]);
		wait_term();
		EXPECT_INT(fd, IPPROTO_IP, IP_HDRINCL, 1);
		EXPECT_INT(rawfd, IPPROTO_IP, IP_HDRINCL, 1);
		len = make_udp(pkt, 40000, 47123, "via-hdrincl");
		CHECK(send(fd, pkt, len, 0) == (ssize_t)len, "send on the connected IP_HDRINCL socket: %s", strerror(errno));
		CHECK(readable(u, 3000), "the hand-made packet did not arrive");
		CHECK(recv(u, got, sizeof(got), 0) == 28 + 11 && !memcmp(got + 28, "via-hdrincl", 11), "another packet arrived");
		len = make_udp(pkt, 40001, 47123, "via-ipproto-raw");
		CHECK(sendto(rawfd, pkt, len, 0, (struct sockaddr *)&a, sizeof(a)) == (ssize_t)len, "sendto on IPPROTO_RAW: %s", strerror(errno));
		CHECK(readable(u, 3000), "the IPPROTO_RAW packet did not arrive");
		CHECK(recv(u, got, sizeof(got), 0) == 28 + 15 && !memcmp(got + 28, "via-ipproto-raw", 15), "another packet arrived (2)");
		subject_pass();
	}
	if (!strcmp(mode, "opts")) {
		int fd = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK, 253);
		int fd6 = socket(AF_INET6, SOCK_RAW, 253);
		int rcv;

		TRY(fd); TRY(fd6);
		SETINT(fd, IPPROTO_IP, IP_TOS, 0x28);
		SETINT(fd, SOL_SOCKET, SO_MARK, 0x77);
		SETINT(fd, IPPROTO_IP, IP_ROUTER_ALERT, 1);
		SETINT(fd, SOL_SOCKET, SO_RCVBUF, 65536);
		SETINT(fd, IPPROTO_IP, IP_RECVTTL, 1);
		rcv = getint(fd, SOL_SOCKET, SO_RCVBUF);
		shutdown(fd, SHUT_RD);
		SETINT(fd6, SOL_RAW, IPV6_CHECKSUM, 6);
		SETINT(fd6, IPPROTO_IPV6, IPV6_HDRINCL, 1);
		SETINT(fd6, IPPROTO_IPV6, IPV6_UNICAST_HOPS, 9);
		subject_ready(argv[1]);
		wait_term();
		EXPECT_INT(fd, IPPROTO_IP, IP_TOS, 0x28);
		EXPECT_INT(fd, SOL_SOCKET, SO_MARK, 0x77);
		EXPECT_INT(fd, IPPROTO_IP, IP_ROUTER_ALERT, 1);
		EXPECT_INT(fd, SOL_SOCKET, SO_RCVBUF, rcv);
		EXPECT_INT(fd, IPPROTO_IP, IP_RECVTTL, 1);
		EXPECT_INT(fd, IPPROTO_IP, IP_HDRINCL, 0);
		EXPECT_INT(fd, SOL_SOCKET, SO_PROTOCOL, 253);
		CHECK(fcntl(fd, F_GETFL) & O_NONBLOCK, "no longer non-blocking");
		{
			struct pollfd p = { .fd = fd, .events = POLLIN | POLLRDHUP };
			CHECK(poll(&p, 1, 0) == 1 && (p.revents & POLLRDHUP), "no longer shut down for reading");
		}
		EXPECT_INT(fd6, SOL_RAW, IPV6_CHECKSUM, 6);
		EXPECT_INT(fd6, IPPROTO_IPV6, IPV6_HDRINCL, 1);
		EXPECT_INT(fd6, IPPROTO_IPV6, IPV6_UNICAST_HOPS, 9);
		subject_pass();
	}
	if (!strcmp(mode, "ra6")) {
		int fd = socket(AF_INET6, SOCK_RAW, IPPROTO_RAW);

		TRY(fd);
		SETINT(fd, IPPROTO_IPV6, IPV6_ROUTER_ALERT, 1); /* RSVP (a value of 0, MLD, reads back as 0) */
		subject_ready(argv[1]);
		wait_term();
		EXPECT_INT(fd, IPPROTO_IPV6, IPV6_ROUTER_ALERT, 1);
		subject_pass();
	}
	if (!strcmp(mode, "mcast")) {
		int fd = socket(AF_INET, SOCK_RAW, 253);
		struct ip_mreqn m = { .imr_ifindex = 1 };

		TRY(fd);
		inet_pton(AF_INET, "239.1.2.3", &m.imr_multiaddr);
		TRY(setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &m, sizeof(m)));
		subject_ready(argv[1]);
		wait_term();
		CHECK(setsockopt(fd, IPPROTO_IP, IP_DROP_MEMBERSHIP, &m, sizeof(m)) == 0, "not a member of 239.1.2.3 any more: %s", strerror(errno));
		subject_pass();
	}
	if (!strcmp(mode, "mcast6")) {
		int fd = socket(AF_INET6, SOCK_RAW, 253);
		struct ipv6_mreq m = { .ipv6mr_interface = 1 };

		TRY(fd);
		inet_pton(AF_INET6, "ff05::4242", &m.ipv6mr_multiaddr);
		TRY(setsockopt(fd, IPPROTO_IPV6, IPV6_JOIN_GROUP, &m, sizeof(m)));
		subject_ready(argv[1]);
		wait_term();
		CHECK(setsockopt(fd, IPPROTO_IPV6, IPV6_LEAVE_GROUP, &m, sizeof(m)) == 0, "not a member of ff05::4242 any more: %s", strerror(errno));
		subject_pass();
	}
	fprintf(stderr, "raw: unknown mode %s\n", mode);
	return 2;
}
