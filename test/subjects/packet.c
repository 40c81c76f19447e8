/*
 * packet.c - packet sockets (AF_PACKET).
 *   packet OUTFILE MODE
 * MODE:
 *   lo        SOCK_RAW, ETH_P_ALL, bound to lo, PACKET_AUXDATA, a classic BPF
 *             filter (UDP to port 47999 only), and a promiscuous and an
 *             all-multicast membership on lo (lo shows IFF_PROMISC and
 *             IFF_ALLMULTI while it holds them); after restore the flags are
 *             back and a UDP datagram to 127.0.0.1:47999 arrives as a frame,
 *             with its auxdata, while one to another port does not pass
 *   dgram     SOCK_DGRAM, ETH_P_IP, every device, PACKET_VERSION TPACKET_V3,
 *             PACKET_RESERVE, PACKET_ORIGDEV, PACKET_IGNORE_OUTGOING,
 *             PACKET_QDISC_BYPASS, PACKET_TIMESTAMP, PACKET_COPY_THRESH,
 *             non-blocking; values read back; a multicast membership twice
 *   none      SOCK_RAW with protocol 0 (receives nothing) bound to lo
 *   fanout    two processes, each with a SOCK_RAW ETH_P_IP socket on lo in
 *             fanout group 4242 (hash, with the rollover and defrag flags);
 *             after restore both are in it and a third socket joins it
 *   ring      (refused) a PACKET_RX_RING
 *   queued    (refused) a frame waiting to be read
 *   packet    (refused) a SOCK_PACKET socket
 */
#include "rawnl.h"
#include <fcntl.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <linux/if_packet.h>
#include <linux/if_ether.h>
#include <linux/filter.h>
#include <linux/net_tstamp.h>

static int lo_index(void)
{
	return (int)if_nametoindex("lo");
}

#ifndef IFLA_ALLMULTI
#define IFLA_ALLMULTI 61
#endif

/* Is the multicast address (6 bytes) in lo's list (/proc/net/dev_mcast, of this network namespace)? */
static int lo_has_mcast(const unsigned char *mc)
{
	char buf[16384], want[13];
	ssize_t n = read_file("/proc/net/dev_mcast", buf, sizeof(buf));

	snprintf(want, sizeof(want), "%02x%02x%02x%02x%02x%02x", mc[0], mc[1], mc[2], mc[3], mc[4], mc[5]);
	return n > 0 && strstr(buf, want) != NULL;
}

static void bind_ll(int fd, int ifindex, int proto)
{
	struct sockaddr_ll a = { .sll_family = AF_PACKET, .sll_protocol = htons(proto), .sll_ifindex = ifindex };

	TRY(bind(fd, (struct sockaddr *)&a, sizeof(a)));
}

static void membership(int fd, int type, const unsigned char *addr, int alen)
{
	struct packet_mreq m = { .mr_ifindex = lo_index(), .mr_type = type, .mr_alen = alen };

	if (addr)
		memcpy(m.mr_address, addr, alen);
	TRY(setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &m, sizeof(m)));
}

static void udp_to(int port, const char *msg)
{
	int u = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = htons(port) };

	TRY(u);
	TRY(sendto(u, msg, strlen(msg), 0, (struct sockaddr *)&a, sizeof(a)));
	close(u);
}

/* A frame holding msg: 1 found (with auxdata if want_aux), 0 none within the wait. */
static int frame_with(int fd, const char *msg, int want_aux, int wait_ms)
{
	unsigned char b[4096];
	char cbuf[512];

	while (readable(fd, wait_ms)) {
		struct iovec iov = { b, sizeof(b) };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
		ssize_t n = recvmsg(fd, &m, MSG_DONTWAIT);
		int aux = 0;

		if (n <= 0)
			return 0;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
			if (c->cmsg_level == SOL_PACKET && c->cmsg_type == PACKET_AUXDATA)
				aux = 1;
		if (memmem(b, (size_t)n, msg, strlen(msg)) && (!want_aux || aux))
			return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *mode;

	if (argc < 3) {
		fprintf(stderr, "usage: packet OUTFILE MODE\n");
		return 2;
	}
	mode = argv[2];
	subject_outfile = argv[1];
	install_term_handler(0);

	if (!strcmp(mode, "lo") || !strcmp(mode, "queued")) {
		int fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
		/* ip[9] == UDP && udp dport == 47999 (lo frames: a 14-byte ethernet header, IP without options) */
		struct sock_filter code[] = {
			BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 14 + 9),
			BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, IPPROTO_UDP, 0, 3),
			BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 14 + 20 + 2),
			BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 47999, 0, 1),
			BPF_STMT(BPF_RET | BPF_K, 0xffff),
			BPF_STMT(BPF_RET | BPF_K, 0),
		};
		struct sock_fprog prog = { .len = sizeof(code) / sizeof(code[0]), .filter = code };
		TRY(fd);
		TRY(setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)));
		bind_ll(fd, lo_index(), ETH_P_ALL);
		SETINT(fd, SOL_PACKET, PACKET_AUXDATA, 1);
		membership(fd, PACKET_MR_PROMISC, NULL, 0);
		membership(fd, PACKET_MR_ALLMULTI, NULL, 0);
		CHECK(link_u32(lo_index(), IFLA_PROMISCUITY) == 1 && link_u32(lo_index(), IFLA_ALLMULTI) == 1, "lo's promiscuity and allmulti counts are %ld and %ld, not 1",
		      link_u32(lo_index(), IFLA_PROMISCUITY), link_u32(lo_index(), IFLA_ALLMULTI));
		if (!strcmp(mode, "queued")) {
			udp_to(47999, "queued-frame");
			for (int i = 0; i < 300 && !readable(fd, 10); i++)
				;
			CHECK(readable(fd, 0), "no frame queued before READY");
		}
		subject_ready(argv[1]);
		wait_term();
		CHECK(link_u32(lo_index(), IFLA_PROMISCUITY) == 1 && link_u32(lo_index(), IFLA_ALLMULTI) == 1, "lo's promiscuity and allmulti counts are %ld and %ld, not 1: memberships lost",
		      link_u32(lo_index(), IFLA_PROMISCUITY), link_u32(lo_index(), IFLA_ALLMULTI));
		EXPECT_INT(fd, SOL_PACKET, PACKET_AUXDATA, 1);
		if (!strcmp(mode, "queued"))
			CHECK(frame_with(fd, "queued-frame", 1, 1000), "the queued frame is gone");
		udp_to(47998, "filtered-out");
		udp_to(47999, "after-restore");
		CHECK(frame_with(fd, "after-restore", 1, 3000), "no frame with auxdata after restore");
		udp_to(47998, "filtered-out");
		CHECK(!frame_with(fd, "filtered-out", 0, 300), "a frame the filter should have dropped arrived");
		subject_pass();
	}
	if (!strcmp(mode, "dgram")) {
		int fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_NONBLOCK, htons(ETH_P_IP));
		unsigned char mc[6] = { 0x01, 0x00, 0x5e, 0x00, 0x00, 0x42 };

		TRY(fd);
		SETINT(fd, SOL_PACKET, PACKET_VERSION, TPACKET_V3);
		SETINT(fd, SOL_PACKET, PACKET_RESERVE, 64);
		SETINT(fd, SOL_PACKET, PACKET_ORIGDEV, 1);
		SETINT(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, 1);
		SETINT(fd, SOL_PACKET, PACKET_QDISC_BYPASS, 1);
		SETINT(fd, SOL_PACKET, PACKET_TIMESTAMP, SOF_TIMESTAMPING_SOFTWARE);
		SETINT(fd, SOL_PACKET, PACKET_COPY_THRESH, 128);
		SETINT(fd, SOL_PACKET, PACKET_LOSS, 1);
		membership(fd, PACKET_MR_MULTICAST, mc, 6);
		membership(fd, PACKET_MR_MULTICAST, mc, 6);
		subject_ready(argv[1]);
		wait_term();
		EXPECT_INT(fd, SOL_PACKET, PACKET_VERSION, TPACKET_V3);
		EXPECT_INT(fd, SOL_PACKET, PACKET_RESERVE, 64);
		EXPECT_INT(fd, SOL_PACKET, PACKET_ORIGDEV, 1);
		EXPECT_INT(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, 1);
		EXPECT_INT(fd, SOL_PACKET, PACKET_QDISC_BYPASS, 1);
		EXPECT_INT(fd, SOL_PACKET, PACKET_TIMESTAMP, SOF_TIMESTAMPING_SOFTWARE);
		EXPECT_INT(fd, SOL_PACKET, PACKET_LOSS, 1);
		CHECK(fcntl(fd, F_GETFL) & O_NONBLOCK, "no longer non-blocking");
		/* the membership was added twice: one drop leaves the address on lo, the second takes it off */
		{
			struct packet_mreq m = { .mr_ifindex = lo_index(), .mr_type = PACKET_MR_MULTICAST, .mr_alen = 6 };
			memcpy(m.mr_address, mc, 6);
			CHECK(lo_has_mcast(mc), "the multicast address is not on lo");
			TRY(setsockopt(fd, SOL_PACKET, PACKET_DROP_MEMBERSHIP, &m, sizeof(m)));
			CHECK(lo_has_mcast(mc), "the multicast address went from lo at the first drop: the membership's count was lost");
			TRY(setsockopt(fd, SOL_PACKET, PACKET_DROP_MEMBERSHIP, &m, sizeof(m)));
			CHECK(!lo_has_mcast(mc), "the multicast address is still on lo after two drops");
		}
		udp_to(47999, "dgram-frame");
		CHECK(frame_with(fd, "dgram-frame", 0, 3000), "no IP packet received (the protocol or the device lost?)");
		subject_pass();
	}
	if (!strcmp(mode, "none")) {
		int fd = socket(AF_PACKET, SOCK_RAW, 0);

		TRY(fd);
		bind_ll(fd, lo_index(), 0);
		subject_ready(argv[1]);
		wait_term();
		udp_to(47999, "none-frame");
		CHECK(!frame_with(fd, "none-frame", 0, 300), "a socket of protocol 0 received a frame");
		{
			struct sockaddr_ll a;
			socklen_t l = sizeof(a);
			TRY(getsockname(fd, (struct sockaddr *)&a, &l));
			CHECK(a.sll_ifindex == lo_index() && a.sll_protocol == 0, "bound to %d protocol %#x", a.sll_ifindex, ntohs(a.sll_protocol));
		}
		subject_pass();
	}
	if (!strcmp(mode, "fanout")) {
		int want = 4242 | ((PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_ROLLOVER | PACKET_FANOUT_FLAG_DEFRAG) << 16);
		int fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_IP));
		pid_t child;
		int st;

		TRY(fd);
		bind_ll(fd, lo_index(), ETH_P_IP);
		TRY(setsockopt(fd, SOL_PACKET, PACKET_FANOUT, &want, sizeof(want)));
		child = fork();
		if (child == 0) {
			int c = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_IP));
			bind_ll(c, lo_index(), ETH_P_IP);
			TRY(setsockopt(c, SOL_PACKET, PACKET_FANOUT, &want, sizeof(want)));
			close(fd);
			wait_term();
			_exit(getint(c, SOL_PACKET, PACKET_FANOUT) == want ? 0 : 1);
		}
		subject_ready(argv[1]);
		wait_term();
		kill(child, SIGTERM);
		CHECK(waitpid(child, &st, 0) == child && WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child's socket is no longer in the fanout group");
		EXPECT_INT(fd, SOL_PACKET, PACKET_FANOUT, want);
		{
			int third = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_IP));
			int other = 4242 | (PACKET_FANOUT_LB << 16);
			bind_ll(third, lo_index(), ETH_P_IP);
			CHECK(setsockopt(third, SOL_PACKET, PACKET_FANOUT, &other, sizeof(other)) < 0, "a socket joined group 4242 with another mode: the group is not the one it was");
			CHECK(setsockopt(third, SOL_PACKET, PACKET_FANOUT, &want, sizeof(want)) == 0, "a third socket cannot join group 4242: %s", strerror(errno));
		}
		subject_pass();
	}
	if (!strcmp(mode, "ring")) {
		int fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
		struct tpacket_req r = { .tp_block_size = 4096, .tp_block_nr = 4, .tp_frame_size = 2048, .tp_frame_nr = 8 };

		TRY(fd);
		TRY(setsockopt(fd, SOL_PACKET, PACKET_RX_RING, &r, sizeof(r)));
		subject_ready(argv[1]);
		wait_term();
		EXPECT_INT(fd, SOL_PACKET, PACKET_VERSION, TPACKET_V1);
		subject_pass();
	}
	if (!strcmp(mode, "packet")) {
		int fd = socket(AF_PACKET, SOCK_PACKET, htons(ETH_P_ALL));

		TRY(fd);
		subject_ready(argv[1]);
		wait_term();
		EXPECT_INT(fd, SOL_SOCKET, SO_TYPE, SOCK_PACKET);
		subject_pass();
	}
	fprintf(stderr, "packet: unknown mode %s\n", mode);
	return 2;
}
