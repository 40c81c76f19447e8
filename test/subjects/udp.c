/*
 * udp - UDP and UDP-Lite sockets, IPv4 and IPv6, in the states a program
 * leaves them in: bound, connected, autobound, unbound, with datagrams
 * queued, corked, shut down, members of multicast groups, with options set,
 * shared between processes, in flight in a unix socket.
 *
 *   udp OUTFILE MODE
 *
 *   bound4     bound to 127.0.0.1:P; then receives and sends
 *   bound6     IPv6, IPV6_V6ONLY, bound to [::1]:P
 *   dual       IPv6, V6ONLY off, bound to [::]:P; an IPv4 datagram queued
 *              (its sender v4-mapped); a new IPv4 datagram arrives after
 *   conn4 / conn6  bound and connected to a peer socket; only the peer's
 *              datagrams arrive (another sender's do not)
 *   connauto   connect() without bind (the kernel chose address and port);
 *              after restore connect(AF_UNSPEC) gives the port back, as it
 *              did before (the socket was not bound by the program)
 *   disconn    bound to 127.0.0.1:P, connected, then disconnected (AF_UNSPEC)
 *   autobound  never bound, only sent: the port the kernel picked stays
 *   unbound    socket() only: not bound after restore, and bind() works
 *   unboundshut  the same, shut down for reading (ENOTCONN, but it is)
 *   queue      bound server with datagrams queued: from two senders
 *              (127.0.0.1 and 127.0.0.2), an empty one, one of 60 KiB
 *   queue6     IPv6 dual-stack server with datagrams from ::1 and from
 *              127.0.0.1 (v4-mapped), and IPV6_RECVPKTINFO set by the program
 *   queueconn  datagrams queued on a connected socket
 *   queuepre   the same, and before connect() a datagram from another sender
 *              and one from the socket itself were queued
 *   cork       UDP_CORK set, nothing written: stays corked, then sends
 *   corkdata   UDP_CORK set and 100 bytes written: ckpt must refuse
 *   shutrd / shutwr  a connected socket shut down for reading / writing
 *   shutunconn an unconnected bound socket shut down for reading
 *   mcast      IPv4 memberships on lo: a group (any source), a group with a
 *              source filter (include one source), one excluding a source;
 *              an IPv6 group on lo; multicast TTL, loop, IPV6 hops
 *   opts       options: TOS, TTL, SO_MARK, SO_PRIORITY, fixed buffers,
 *              SO_REUSEADDR, IP_RECVTTL, SO_TIMESTAMP, UDP_SEGMENT, UDP_GRO,
 *              IPv6 traffic class, UDP_NO_CHECK6_TX, IPV6_RECVPKTINFO
 *   reuseport  two processes with SO_REUSEPORT sockets on one port, each with
 *              its own datagrams queued (steered there with a reuseport
 *              program, taken away before READY), and two SO_REUSEADDR
 *              sockets of this process on another port
 *   lite       UDP-Lite, send and receive checksum coverage, a datagram queued
 *   lite6      the same over IPv6
 *   shared     a socket shared with a child (fork), a datagram queued
 *   inflight   a socket in flight in a unix socket's queue (SCM_RIGHTS), with
 *              a datagram queued
 *   encap      UDP_ENCAP (ESP-in-UDP) set: ckpt must refuse
 *   mapped     IPv6, bound to the v4-mapped ::ffff:127.0.0.1:P, an IPv4
 *              datagram queued
 *   device     bound to lo (SO_BINDTODEVICE) and 127.0.0.1:P, datagrams queued
 *   peekoff    SO_PEEK_OFF used by the program: one of three datagrams
 *              peeked at already; the next peek gives the second
 *   connrefused  a connected socket that got ICMP port unreachable: its
 *              pending error (ECONNREFUSED) is there after restore, once,
 *              and a datagram from the peer queued after it
 *   connrefused6  the same over IPv6
 *   recverr    the same with IP_RECVERR on (an error queue): ckpt must refuse
 *
 * After SIGTERM each mode checks itself and reports PASS or FAIL.
 */
#include "subject.h"
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <linux/filter.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#ifndef UDP_CORK
#define UDP_CORK 1
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif
#ifndef UDP_NO_CHECK6_TX
#define UDP_NO_CHECK6_TX 101
#endif
#ifndef IPPROTO_UDPLITE
#define IPPROTO_UDPLITE 136
#endif
#define UDPLITE_SEND_CSCOV 10
#define UDPLITE_RECV_CSCOV 11

typedef union { struct sockaddr sa; struct sockaddr_in v4; struct sockaddr_in6 v6; struct sockaddr_storage ss; } addr_t;

static int port_base;

static socklen_t mk4(addr_t *a, const char *ip, int port)
{
	memset(a, 0, sizeof(*a));
	a->v4.sin_family = AF_INET;
	a->v4.sin_port = htons(port);
	CHECK(inet_pton(AF_INET, ip, &a->v4.sin_addr) == 1, "inet_pton %s", ip);
	return sizeof(a->v4);
}
static socklen_t mk6(addr_t *a, const char *ip, int port)
{
	memset(a, 0, sizeof(*a));
	a->v6.sin6_family = AF_INET6;
	a->v6.sin6_port = htons(port);
	CHECK(inet_pton(AF_INET6, ip, &a->v6.sin6_addr) == 1, "inet_pton %s", ip);
	return sizeof(a->v6);
}
static const char *show(const addr_t *a)
{
	static char bufs[4][80];
	static int k;
	char *b = bufs[k++ % 4], ip[64] = "?";
	if (a->sa.sa_family == AF_INET) { inet_ntop(AF_INET, &a->v4.sin_addr, ip, sizeof(ip)); snprintf(b, 80, "%s:%d", ip, ntohs(a->v4.sin_port)); }
	else if (a->sa.sa_family == AF_INET6) { inet_ntop(AF_INET6, &a->v6.sin6_addr, ip, sizeof(ip)); snprintf(b, 80, "[%s]:%d", ip, ntohs(a->v6.sin6_port)); }
	else snprintf(b, 80, "(family %d)", a->sa.sa_family);
	return b;
}
static int same(const addr_t *a, const addr_t *b)
{
	if (a->sa.sa_family != b->sa.sa_family) return 0;
	if (a->sa.sa_family == AF_INET) return a->v4.sin_port == b->v4.sin_port && a->v4.sin_addr.s_addr == b->v4.sin_addr.s_addr;
	if (a->sa.sa_family == AF_INET6) return a->v6.sin6_port == b->v6.sin6_port && !memcmp(&a->v6.sin6_addr, &b->v6.sin6_addr, 16);
	return 1;
}
static int sock(int fam, int proto)
{
	int s = socket(fam, SOCK_DGRAM, proto);
	CHECK(s >= 0, "socket: %s", strerror(errno));
	return s;
}
static void do_bind(int s, const addr_t *a, socklen_t l)
{
	CHECK(bind(s, &a->sa, l) == 0, "bind %s: %s", show(a), strerror(errno));
}
static addr_t name_of(int s, int peer)
{
	addr_t a;
	socklen_t l = sizeof(a);
	memset(&a, 0, sizeof(a));
	int r = peer ? getpeername(s, &a.sa, &l) : getsockname(s, &a.sa, &l);
	if (r != 0) { CHECK(peer && errno == ENOTCONN, "%s: %s", peer ? "getpeername" : "getsockname", strerror(errno)); a.sa.sa_family = AF_UNSPEC; }
	return a;
}
static void same_name(int s, const addr_t *before, int peer, const char *what)
{
	addr_t now = name_of(s, peer);
	CHECK(same(&now, before), "%s: %s was %s, now %s", what, peer ? "peer" : "address", show(before), show(&now));
}
static int iopt(int s, int level, int opt)
{
	int v = 0;
	socklen_t l = sizeof(v);
	CHECK(getsockopt(s, level, opt, &v, &l) == 0, "getsockopt %d/%d: %s", level, opt, strerror(errno));
	return v;
}
static void setopt(int s, int level, int opt, int v)
{
	CHECK(setsockopt(s, level, opt, &v, sizeof(v)) == 0, "setsockopt %d/%d=%d: %s", level, opt, v, strerror(errno));
}
static unsigned char pat(size_t i, int k) { return (unsigned char)(i * 7 + k * 29 + 3); }
static void send_dg(int s, int k, size_t n, const addr_t *to, socklen_t tl)
{
	static unsigned char buf[70000];
	for (size_t i = 0; i < n; i++) buf[i] = pat(i, k);
	ssize_t w = sendto(s, buf, n, 0, to ? &to->sa : NULL, to ? tl : 0);
	CHECK(w == (ssize_t)n, "sendto datagram %d (%zu bytes) to %s: %zd %s", k, n, to ? show(to) : "peer", w, strerror(errno));
}
/* Receive datagram k of n bytes, whole; its sender must be `from` when given. Waits up to 2 s. */
static void recv_dg(int s, int k, size_t n, const addr_t *from, const char *what)
{
	static unsigned char buf[70000];
	addr_t f;
	socklen_t fl = sizeof(f);
	struct pollfd p = { s, POLLIN, 0 };
	CHECK(poll(&p, 1, 2000) == 1, "%s: datagram %d did not come", what, k);
	ssize_t r = recvfrom(s, buf, sizeof(buf), MSG_TRUNC | MSG_DONTWAIT, &f.sa, &fl);
	CHECK(r == (ssize_t)n, "%s: datagram %d: %zd bytes (%s), expected %zu", what, k, r, r < 0 ? strerror(errno) : "", n);
	for (size_t i = 0; i < n; i++) CHECK(buf[i] == pat(i, k), "%s: datagram %d byte %zu differs", what, k, i);
	if (from) CHECK(same(&f, from), "%s: datagram %d from %s, expected %s", what, k, show(&f), show(from));
}
static void nothing(int s, const char *what)
{
	char c;
	ssize_t r = recv(s, &c, 1, MSG_DONTWAIT);
	CHECK(r < 0 && errno == EAGAIN, "%s: expected an empty queue, recv gave %zd (%s)", what, r, r < 0 ? strerror(errno) : "data");
}
/* Shut down for reading: poll says POLLRDHUP, a (blocking) read answers 0 at once. */
static void shut_rd_check(int s)
{
	struct pollfd p = { s, POLLIN | POLLRDHUP, 0 };
	CHECK(poll(&p, 1, 0) == 1 && (p.revents & POLLRDHUP), "shut down for reading, but poll does not say POLLRDHUP (0x%x)", p.revents);
	char ch;
	CHECK(recv(s, &ch, 1, 0) == 0, "shut down for reading, but recv did not answer 0: %s", strerror(errno));
}
static void wait_term(void) { while (!got_term) pause(); }
static void reap(pid_t k, const char *what)
{
	int st;
	while (waitpid(k, &st, 0) < 0 && errno == EINTR) {}
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: the child failed (status 0x%x)", what, st);
}
/* A round trip between a and b (bound sockets). */
static void pingpong(int a, int b, const char *what)
{
	addr_t na = name_of(a, 0), nb = name_of(b, 0);
	socklen_t la = na.sa.sa_family == AF_INET ? sizeof(na.v4) : sizeof(na.v6);
	socklen_t lb = nb.sa.sa_family == AF_INET ? sizeof(nb.v4) : sizeof(nb.v6);
	send_dg(a, 90, 33, &nb, lb);
	recv_dg(b, 90, 33, &na, what);
	send_dg(b, 91, 44, &na, la);
	recv_dg(a, 91, 44, &nb, what);
}

struct msf { uint32_t ifi; struct sockaddr_storage grp; uint32_t fmode, nsrc; struct sockaddr_storage src[8]; };
static void join(int s, int level, int fam, const char *grp, const char *src, int ifi)
{
	struct group_source_req r;
	memset(&r, 0, sizeof(r));
	r.gsr_interface = ifi;
	addr_t g, so;
	if (fam == AF_INET) { mk4(&g, grp, 0); if (src) mk4(&so, src, 0); } else { mk6(&g, grp, 0); if (src) mk6(&so, src, 0); }
	memcpy(&r.gsr_group, &g, sizeof(g.ss));
	if (src) {
		memcpy(&r.gsr_source, &so, sizeof(so.ss));
		CHECK(setsockopt(s, level, MCAST_JOIN_SOURCE_GROUP, &r, sizeof(r)) == 0, "join %s source %s: %s", grp, src, strerror(errno));
	} else {
		struct group_req q;
		memset(&q, 0, sizeof(q));
		q.gr_interface = ifi;
		memcpy(&q.gr_group, &g, sizeof(g.ss));
		CHECK(setsockopt(s, level, MCAST_JOIN_GROUP, &q, sizeof(q)) == 0, "join %s: %s", grp, strerror(errno));
	}
}
static void block(int s, int level, int fam, const char *grp, const char *src, int ifi)
{
	struct group_source_req r;
	memset(&r, 0, sizeof(r));
	r.gsr_interface = ifi;
	addr_t g, so;
	if (fam == AF_INET) { mk4(&g, grp, 0); mk4(&so, src, 0); } else { mk6(&g, grp, 0); mk6(&so, src, 0); }
	memcpy(&r.gsr_group, &g, sizeof(g.ss));
	memcpy(&r.gsr_source, &so, sizeof(so.ss));
	CHECK(setsockopt(s, level, MCAST_BLOCK_SOURCE, &r, sizeof(r)) == 0, "block %s in %s: %s", src, grp, strerror(errno));
}
/* "mode n src..." of a membership, or "none". */
static void filter_of(int s, int level, int fam, const char *grp, int ifi, char *out, size_t n)
{
	struct msf f;
	socklen_t l = sizeof(f);
	memset(&f, 0, sizeof(f));
	f.ifi = ifi;
	addr_t g;
	if (fam == AF_INET) mk4(&g, grp, 0); else mk6(&g, grp, 0);
	memcpy(&f.grp, &g, sizeof(g.ss));
	f.nsrc = 8;
	if (getsockopt(s, level, MCAST_MSFILTER, &f, &l) != 0) { snprintf(out, n, "none (%s)", strerror(errno)); return; }
	size_t o = snprintf(out, n, "%s %u", f.fmode == MCAST_INCLUDE ? "include" : "exclude", f.nsrc);
	for (uint32_t i = 0; i < f.nsrc && i < 8; i++) o += snprintf(out + o, n - o, " %s", show((addr_t *)&f.src[i]));
}

int main(int argc, char **argv)
{
	subject_init(argc, argv, 2, "MODE");
	install_term_handler(0);
	const char *mode = argv[2];
	port_base = 10000 + (getpid() % 2000) * 10;
	int P = port_base, Q = port_base + 1, R = port_base + 2;
	addr_t a, b, c, before, peer;
	socklen_t al, bl, cl;
	int s = -1, t = -1, u = -1;
	char buf[256];

	if (!strcmp(mode, "bound4") || !strcmp(mode, "conn4") || !strcmp(mode, "disconn") || !strcmp(mode, "shutrd") || !strcmp(mode, "shutwr")
	    || !strcmp(mode, "queueconn") || !strcmp(mode, "queuepre") || !strcmp(mode, "cork")) {
		s = sock(AF_INET, 0); t = sock(AF_INET, 0);
		al = mk4(&a, "127.0.0.1", P); bl = mk4(&b, "127.0.0.1", Q);
		do_bind(s, &a, al); do_bind(t, &b, bl);
		int conn = strcmp(mode, "bound4") != 0;
		if (!strcmp(mode, "queuepre")) {
			/* queued from another sender before connect(): still read first after it */
			u = sock(AF_INET, 0); cl = mk4(&c, "127.0.0.2", R); do_bind(u, &c, cl);
			send_dg(u, 10, 77, &a, al);
			send_dg(s, 11, 88, &a, al);
		}
		if (conn) {
			CHECK(connect(s, &b.sa, bl) == 0, "connect: %s", strerror(errno));
			CHECK(connect(t, &a.sa, al) == 0, "connect back: %s", strerror(errno));
		}
		if (!strcmp(mode, "disconn")) {
			addr_t un = { 0 };
			un.sa.sa_family = AF_UNSPEC;
			CHECK(connect(s, &un.sa, sizeof(un.v4)) == 0, "disconnect: %s", strerror(errno));
		}
		if (!strcmp(mode, "queueconn") || !strcmp(mode, "queuepre")) for (int k = 0; k < 3; k++) send_dg(t, k, 100 + k, NULL, 0);
		if (!strcmp(mode, "shutrd")) CHECK(shutdown(s, SHUT_RD) == 0, "shutdown: %s", strerror(errno));
		if (!strcmp(mode, "shutwr")) CHECK(shutdown(s, SHUT_WR) == 0, "shutdown: %s", strerror(errno));
		if (!strcmp(mode, "cork")) setopt(s, IPPROTO_UDP, UDP_CORK, 1);
		before = name_of(s, 0); peer = name_of(s, 1);
		subject_ready(argv[1]);
		wait_term();
		same_name(s, &before, 0, "the socket"); same_name(s, &peer, 1, "the socket");
		if (!strcmp(mode, "bound4")) { pingpong(s, t, "bound4"); subject_pass(); }
		if (!strcmp(mode, "disconn")) {
			CHECK(peer.sa.sa_family == AF_UNSPEC, "disconnected before, but has a peer");
			u = sock(AF_INET, 0); cl = mk4(&c, "127.0.0.1", R); do_bind(u, &c, cl);
			pingpong(s, u, "disconn");
			/* (bound by the program: a second disconnect keeps the port) */
			addr_t un = { 0 };
			un.sa.sa_family = AF_UNSPEC;
			CHECK(connect(s, &un.sa, sizeof(un.v4)) == 0, "disconnect: %s", strerror(errno));
			same_name(s, &before, 0, "after another disconnect");
			subject_pass();
		}
		if (!strcmp(mode, "queuepre")) { recv_dg(s, 10, 77, &c, "queuepre: from another sender"); recv_dg(s, 11, 88, &a, "queuepre: from itself"); }
		if (!strcmp(mode, "queueconn") || !strcmp(mode, "queuepre")) { for (int k = 0; k < 3; k++) recv_dg(s, k, 100 + k, &b, mode); nothing(s, mode); }
		if (!strcmp(mode, "shutrd")) {
			shut_rd_check(s);
			send_dg(s, 5, 10, NULL, 0);
			recv_dg(t, 5, 10, &a, "shutrd: sending still works");
			subject_pass();
		}
		if (!strcmp(mode, "shutwr")) {
			CHECK(send(s, "x", 1, MSG_NOSIGNAL) < 0 && errno == EPIPE, "shut down for writing, but send did not fail with EPIPE: %s", strerror(errno));
			send_dg(t, 6, 10, NULL, 0);
			recv_dg(s, 6, 10, &b, "shutwr: receiving still works");
			subject_pass();
		}
		if (!strcmp(mode, "cork")) {
			CHECK(iopt(s, IPPROTO_UDP, UDP_CORK) == 1, "UDP_CORK is off");
			send(s, "abc", 3, 0);
			send(s, "defg", 4, 0);
			nothing(t, "corked: nothing sent yet");
			setopt(s, IPPROTO_UDP, UDP_CORK, 0);
			char r7[16];
			struct pollfd p = { t, POLLIN, 0 };
			CHECK(poll(&p, 1, 2000) == 1, "the corked datagram did not come");
			CHECK(recv(t, r7, sizeof(r7), 0) == 7 && !memcmp(r7, "abcdefg", 7), "the corked datagram is not abcdefg");
			subject_pass();
		}
		/* conn4: the peer's datagrams arrive, another sender's do not */
		u = sock(AF_INET, 0); cl = mk4(&c, "127.0.0.1", R); do_bind(u, &c, cl);
		send_dg(u, 7, 10, &a, al);
		send_dg(t, 8, 20, NULL, 0);
		recv_dg(s, 8, 20, &b, "conn4: from the peer");
		nothing(s, "conn4: another sender's datagram");
		send_dg(s, 9, 30, NULL, 0);
		recv_dg(t, 9, 30, &a, "conn4: to the peer");
		subject_pass();
	}
	if (!strcmp(mode, "bound6") || !strcmp(mode, "conn6")) {
		s = sock(AF_INET6, 0); t = sock(AF_INET6, 0);
		setopt(s, IPPROTO_IPV6, IPV6_V6ONLY, 1);
		al = mk6(&a, "::1", P); bl = mk6(&b, "::1", Q);
		do_bind(s, &a, al); do_bind(t, &b, bl);
		if (!strcmp(mode, "conn6")) { CHECK(connect(s, &b.sa, bl) == 0, "connect: %s", strerror(errno)); CHECK(connect(t, &a.sa, al) == 0, "connect back"); }
		before = name_of(s, 0); peer = name_of(s, 1);
		subject_ready(argv[1]);
		wait_term();
		same_name(s, &before, 0, "the socket"); same_name(s, &peer, 1, "the socket");
		CHECK(iopt(s, IPPROTO_IPV6, IPV6_V6ONLY) == 1, "IPV6_V6ONLY is off");
		if (!strcmp(mode, "bound6")) pingpong(s, t, "bound6");
		else { send_dg(t, 1, 10, NULL, 0); recv_dg(s, 1, 10, &b, "conn6"); send_dg(s, 2, 20, NULL, 0); recv_dg(t, 2, 20, &a, "conn6"); }
		subject_pass();
	}
	if (!strcmp(mode, "dual") || !strcmp(mode, "queue6")) {
		s = sock(AF_INET6, 0);
		setopt(s, IPPROTO_IPV6, IPV6_V6ONLY, 0);
		al = mk6(&a, "::", P);
		do_bind(s, &a, al);
		if (!strcmp(mode, "queue6")) setopt(s, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1);
		t = sock(AF_INET, 0); bl = mk4(&b, "127.0.0.1", Q); do_bind(t, &b, bl);
		u = sock(AF_INET6, 0); cl = mk6(&c, "::1", R); do_bind(u, &c, cl);
		addr_t to4, to6, mapped;
		socklen_t l4 = mk4(&to4, "127.0.0.1", P), l6 = mk6(&to6, "::1", P);
		mk6(&mapped, "::ffff:127.0.0.1", Q);
		send_dg(t, 1, 111, &to4, l4);
		if (!strcmp(mode, "queue6")) { send_dg(u, 2, 222, &to6, l6); send_dg(t, 3, 0, &to4, l4); send_dg(u, 4, 40000, &to6, l6); }
		before = name_of(s, 0);
		subject_ready(argv[1]);
		wait_term();
		same_name(s, &before, 0, "the socket");
		CHECK(iopt(s, IPPROTO_IPV6, IPV6_V6ONLY) == 0, "IPV6_V6ONLY is on");
		if (!strcmp(mode, "dual")) {
			recv_dg(s, 1, 111, &mapped, "dual: queued from IPv4");
			send_dg(t, 5, 55, &to4, l4);
			recv_dg(s, 5, 55, &mapped, "dual: new from IPv4");
			subject_pass();
		}
		/* queue6: in order, each with its destination (IPV6_PKTINFO) */
		const char *dst[] = { "::ffff:127.0.0.1", "::1", "::ffff:127.0.0.1", "::1" };
		int ks[] = { 1, 2, 3, 4 };
		size_t ns[] = { 111, 222, 0, 40000 };
		for (int i = 0; i < 4; i++) {
			static unsigned char big[70000];
			char cbuf[256], want[64];
			addr_t f;
			struct iovec iov = { big, sizeof(big) };
			struct msghdr m = { .msg_name = &f, .msg_namelen = sizeof(f), .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
			ssize_t r = recvmsg(s, &m, MSG_DONTWAIT);
			CHECK(r == (ssize_t)ns[i], "queue6: datagram %d: %zd bytes (%s), expected %zu", ks[i], r, r < 0 ? strerror(errno) : "", ns[i]);
			for (size_t j = 0; j < ns[i]; j++) CHECK(big[j] == pat(j, ks[i]), "queue6: datagram %d byte %zu differs", ks[i], j);
			CHECK(same(&f, i % 2 ? &c : &mapped), "queue6: datagram %d from %s", ks[i], show(&f));
			struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
			int found = 0;
			for (; cm; cm = CMSG_NXTHDR(&m, cm)) {
				if (cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_PKTINFO) {
					struct in6_pktinfo *pi = (struct in6_pktinfo *)CMSG_DATA(cm);
					inet_ntop(AF_INET6, &pi->ipi6_addr, want, sizeof(want));
					CHECK(!strcmp(want, dst[i]), "queue6: datagram %d was to %s, now %s", ks[i], dst[i], want);
					found = 1;
				}
			}
			CHECK(found, "queue6: datagram %d came without IPV6_PKTINFO", ks[i]);
		}
		nothing(s, "queue6");
		subject_pass();
	}
	if (!strcmp(mode, "connauto")) {
		s = sock(AF_INET, 0); t = sock(AF_INET, 0);
		bl = mk4(&b, "127.0.0.1", Q); do_bind(t, &b, bl);
		CHECK(connect(s, &b.sa, bl) == 0, "connect: %s", strerror(errno));
		before = name_of(s, 0);
		subject_ready(argv[1]);
		wait_term();
		same_name(s, &before, 0, "the socket");
		send_dg(s, 1, 10, NULL, 0);
		recv_dg(t, 1, 10, &before, "connauto");
		addr_t un = { 0 };
		un.sa.sa_family = AF_UNSPEC;
		CHECK(connect(s, &un.sa, sizeof(un.v4)) == 0, "disconnect: %s", strerror(errno));
		addr_t now = name_of(s, 0);
		CHECK(now.v4.sin_port == 0 && now.v4.sin_addr.s_addr == 0, "disconnected, the socket kept %s: it was not bound by the program", show(&now));
		subject_pass();
	}
	if (!strcmp(mode, "autobound")) {
		s = sock(AF_INET, 0); t = sock(AF_INET, 0);
		bl = mk4(&b, "127.0.0.1", Q); do_bind(t, &b, bl);
		send_dg(s, 1, 10, &b, bl);
		recv_dg(t, 1, 10, NULL, "autobound: before");
		before = name_of(s, 0);
		CHECK(before.v4.sin_port != 0, "not autobound");
		subject_ready(argv[1]);
		wait_term();
		same_name(s, &before, 0, "the socket");
		addr_t to;
		socklen_t tl = mk4(&to, "127.0.0.1", ntohs(before.v4.sin_port));
		send_dg(t, 2, 20, &to, tl);
		recv_dg(s, 2, 20, &b, "autobound: to the picked port");
		subject_pass();
	}
	if (!strcmp(mode, "unbound") || !strcmp(mode, "unboundshut")) {
		s = sock(AF_INET6, 0);
		if (!strcmp(mode, "unboundshut")) CHECK(shutdown(s, SHUT_RD) < 0 && errno == ENOTCONN, "shutdown of an unbound socket did not say ENOTCONN");
		subject_ready(argv[1]);
		wait_term();
		if (!strcmp(mode, "unboundshut")) shut_rd_check(s);
		addr_t now = name_of(s, 0);
		CHECK(now.sa.sa_family == AF_INET6 && now.v6.sin6_port == 0, "an unbound socket is now %s", show(&now));
		al = mk6(&a, "::1", P);
		do_bind(s, &a, al);
		subject_pass();
	}
	if (!strcmp(mode, "queue")) {
		s = sock(AF_INET, 0); t = sock(AF_INET, 0); u = sock(AF_INET, 0);
		al = mk4(&a, "127.0.0.1", P); bl = mk4(&b, "127.0.0.1", Q); cl = mk4(&c, "127.0.0.2", R);
		do_bind(s, &a, al); do_bind(t, &b, bl); do_bind(u, &c, cl);
		setopt(s, SOL_SOCKET, SO_RCVBUF, 1 << 20);
		send_dg(t, 1, 10, &a, al);
		send_dg(u, 2, 20, &a, al);
		send_dg(t, 3, 0, &a, al);
		send_dg(u, 4, 60 * 1024, &a, al);
		send_dg(t, 5, 50, &a, al);
		send_dg(u, 6, 0, &a, al);
		before = name_of(s, 0);
		subject_ready(argv[1]);
		wait_term();
		same_name(s, &before, 0, "the socket");
		size_t ns[] = { 10, 20, 0, 60 * 1024, 50, 0 };
		for (int k = 1; k <= 6; k++) recv_dg(s, k, ns[k - 1], k % 2 ? &b : &c, "queue");
		nothing(s, "queue");
		pingpong(s, t, "queue: after");
		subject_pass();
	}
	if (!strcmp(mode, "corkdata")) {
		s = sock(AF_INET, 0); t = sock(AF_INET, 0);
		bl = mk4(&b, "127.0.0.1", Q); do_bind(t, &b, bl);
		CHECK(connect(s, &b.sa, bl) == 0, "connect: %s", strerror(errno));
		setopt(s, IPPROTO_UDP, UDP_CORK, 1);
		send_dg(s, 1, 100, NULL, 0);
		subject_ready(argv[1]);
		wait_term();
		nothing(t, "still corked");
		setopt(s, IPPROTO_UDP, UDP_CORK, 0);
		recv_dg(t, 1, 100, NULL, "corkdata: sent once uncorked");
		subject_pass();
	}
	if (!strcmp(mode, "encap")) {
		s = sock(AF_INET, 0);
		al = mk4(&a, "127.0.0.1", P); do_bind(s, &a, al);
		setopt(s, IPPROTO_UDP, 100 /* UDP_ENCAP */, 2 /* UDP_ENCAP_ESPINUDP */);
		subject_ready(argv[1]);
		wait_term();
		CHECK(iopt(s, IPPROTO_UDP, 100) == 2, "UDP_ENCAP changed");
		subject_pass();
	}
	if (!strcmp(mode, "mapped")) {
		s = sock(AF_INET6, 0);
		al = mk6(&a, "::ffff:127.0.0.1", P); do_bind(s, &a, al);
		t = sock(AF_INET, 0); bl = mk4(&b, "127.0.0.1", Q); do_bind(t, &b, bl);
		addr_t to4, mapped;
		socklen_t l4 = mk4(&to4, "127.0.0.1", P);
		mk6(&mapped, "::ffff:127.0.0.1", Q);
		send_dg(t, 1, 123, &to4, l4);
		before = name_of(s, 0);
		subject_ready(argv[1]);
		wait_term();
		same_name(s, &before, 0, "the socket");
		recv_dg(s, 1, 123, &mapped, "mapped: queued");
		send_dg(t, 2, 45, &to4, l4);
		recv_dg(s, 2, 45, &mapped, "mapped: new");
		subject_pass();
	}
	if (!strcmp(mode, "device")) {
		s = sock(AF_INET, 0); t = sock(AF_INET, 0);
		CHECK(setsockopt(s, SOL_SOCKET, SO_BINDTODEVICE, "lo", 3) == 0, "SO_BINDTODEVICE: %s", strerror(errno));
		al = mk4(&a, "127.0.0.1", P); bl = mk4(&b, "127.0.0.1", Q);
		do_bind(s, &a, al); do_bind(t, &b, bl);
		for (int k = 0; k < 3; k++) send_dg(t, k, 10 * k, &a, al);
		subject_ready(argv[1]);
		wait_term();
		char dev[16] = { 0 };
		socklen_t dl = sizeof(dev);
		CHECK(getsockopt(s, SOL_SOCKET, SO_BINDTODEVICE, dev, &dl) == 0 && !strcmp(dev, "lo"), "bound to '%s', not lo", dev);
		for (int k = 0; k < 3; k++) recv_dg(s, k, 10 * k, &b, "device");
		pingpong(s, t, "device");
		subject_pass();
	}
	if (!strcmp(mode, "peekoff")) {
		s = sock(AF_INET, 0); t = sock(AF_INET, 0);
		al = mk4(&a, "127.0.0.1", P); bl = mk4(&b, "127.0.0.1", Q);
		do_bind(s, &a, al); do_bind(t, &b, bl);
		for (int k = 1; k <= 3; k++) send_dg(t, k, 10 * k, &a, al);
		setopt(s, SOL_SOCKET, SO_PEEK_OFF, 0);
		char pb[64];
		CHECK(recv(s, pb, sizeof(pb), MSG_PEEK | MSG_DONTWAIT) == 10, "the first peek");
		int off = iopt(s, SOL_SOCKET, SO_PEEK_OFF);
		CHECK(off == 10, "SO_PEEK_OFF after a peek is %d", off);
		subject_ready(argv[1]);
		wait_term();
		CHECK(iopt(s, SOL_SOCKET, SO_PEEK_OFF) == off, "SO_PEEK_OFF was %d, now %d", off, iopt(s, SOL_SOCKET, SO_PEEK_OFF));
		ssize_t r = recv(s, pb, sizeof(pb), MSG_PEEK | MSG_DONTWAIT);
		CHECK(r == 20 && pb[0] == (char)pat(0, 2), "the next peek gave %zd bytes, not the second datagram", r);
		setopt(s, SOL_SOCKET, SO_PEEK_OFF, -1);
		for (int k = 1; k <= 3; k++) recv_dg(s, k, 10 * k, &b, "peekoff");
		subject_pass();
	}
	if (!strcmp(mode, "connrefused") || !strcmp(mode, "connrefused6") || !strcmp(mode, "recverr")) {
		int v6 = !strcmp(mode, "connrefused6");
		s = sock(v6 ? AF_INET6 : AF_INET, 0);
		bl = v6 ? mk6(&b, "::1", Q) : mk4(&b, "127.0.0.1", Q);
		if (!strcmp(mode, "recverr")) setopt(s, IPPROTO_IP, IP_RECVERR, 1);
		CHECK(connect(s, &b.sa, bl) == 0, "connect: %s", strerror(errno));
		send_dg(s, 1, 10, NULL, 0);
		struct pollfd p = { s, 0, 0 };
		CHECK(poll(&p, 1, 2000) == 1 && (p.revents & POLLERR), "no error came");
		/* and a datagram from the peer queued behind the error */
		t = sock(v6 ? AF_INET6 : AF_INET, 0); do_bind(t, &b, bl);
		addr_t me = name_of(s, 0);
		send_dg(t, 2, 22, &me, bl);
		usleep(20000);
		subject_ready(argv[1]);
		wait_term();
		CHECK(iopt(s, SOL_SOCKET, SO_ERROR) == ECONNREFUSED, "the pending error is gone");
		CHECK(iopt(s, SOL_SOCKET, SO_ERROR) == 0, "the pending error came twice");
		same_name(s, &b, 1, "the socket");
		if (strcmp(mode, "recverr")) recv_dg(s, 2, 22, &b, "the datagram behind the error");
		subject_pass();
	}
	if (!strcmp(mode, "shutunconn")) {
		s = sock(AF_INET, 0);
		al = mk4(&a, "127.0.0.1", P); do_bind(s, &a, al);
		CHECK(shutdown(s, SHUT_RD) < 0 && errno == ENOTCONN, "shutdown of an unconnected socket did not say ENOTCONN");
		subject_ready(argv[1]);
		wait_term();
		shut_rd_check(s);
		subject_pass();
	}
	if (!strcmp(mode, "mcast")) {
		int lo = if_nametoindex("lo");
		CHECK(lo > 0, "no lo");
		s = sock(AF_INET, 0);
		setopt(s, SOL_SOCKET, SO_REUSEADDR, 1);
		al = mk4(&a, "0.0.0.0", P); do_bind(s, &a, al);
		join(s, IPPROTO_IP, AF_INET, "239.1.2.3", NULL, lo);
		join(s, IPPROTO_IP, AF_INET, "239.1.2.4", "127.0.0.1", lo);
		join(s, IPPROTO_IP, AF_INET, "239.1.2.5", NULL, lo);
		block(s, IPPROTO_IP, AF_INET, "239.1.2.5", "127.0.0.9", lo);
		setopt(s, IPPROTO_IP, IP_MULTICAST_TTL, 3);
		setopt(s, IPPROTO_IP, IP_MULTICAST_LOOP, 0);
		t = sock(AF_INET6, 0);
		setopt(t, IPPROTO_IPV6, IPV6_V6ONLY, 1);
		bl = mk6(&b, "::", P); do_bind(t, &b, bl);
		join(t, IPPROTO_IPV6, AF_INET6, "ff12::1234", NULL, lo);
		join(t, IPPROTO_IPV6, AF_INET6, "ff12::1235", "::1", lo);
		setopt(t, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, 7);
		setopt(t, IPPROTO_IPV6, IPV6_MULTICAST_IF, lo);
		char f1[4][512], f2[4][512];
		const char *g4[] = { "239.1.2.3", "239.1.2.4", "239.1.2.5", "239.1.2.6" };
		for (int i = 0; i < 4; i++) filter_of(s, IPPROTO_IP, AF_INET, g4[i], lo, f1[i], sizeof(f1[i]));
		filter_of(t, IPPROTO_IPV6, AF_INET6, "ff12::1234", lo, f2[0], sizeof(f2[0]));
		filter_of(t, IPPROTO_IPV6, AF_INET6, "ff12::1235", lo, f2[1], sizeof(f2[1]));
		subject_ready(argv[1]);
		wait_term();
		for (int i = 0; i < 4; i++) {
			filter_of(s, IPPROTO_IP, AF_INET, g4[i], lo, buf, sizeof(buf));
			CHECK(!strcmp(buf, f1[i]), "IPv4 group %s: was '%s', now '%s'", g4[i], f1[i], buf);
		}
		filter_of(t, IPPROTO_IPV6, AF_INET6, "ff12::1234", lo, buf, sizeof(buf));
		CHECK(!strcmp(buf, f2[0]), "IPv6 group ff12::1234: was '%s', now '%s'", f2[0], buf);
		filter_of(t, IPPROTO_IPV6, AF_INET6, "ff12::1235", lo, buf, sizeof(buf));
		CHECK(!strcmp(buf, f2[1]), "IPv6 group ff12::1235: was '%s', now '%s'", f2[1], buf);
		CHECK(iopt(s, IPPROTO_IP, IP_MULTICAST_TTL) == 3, "IP_MULTICAST_TTL");
		CHECK(iopt(s, IPPROTO_IP, IP_MULTICAST_LOOP) == 0, "IP_MULTICAST_LOOP");
		CHECK(iopt(t, IPPROTO_IPV6, IPV6_MULTICAST_HOPS) == 7, "IPV6_MULTICAST_HOPS");
		CHECK(iopt(t, IPPROTO_IPV6, IPV6_MULTICAST_IF) == lo, "IPV6_MULTICAST_IF");
		/* a datagram to the group arrives */
		u = sock(AF_INET, 0);
		struct ip_mreqn mi = { .imr_ifindex = lo };
		CHECK(setsockopt(u, IPPROTO_IP, IP_MULTICAST_IF, &mi, sizeof(mi)) == 0, "IP_MULTICAST_IF: %s", strerror(errno));
		addr_t g;
		socklen_t gl = mk4(&g, "239.1.2.3", P);
		send_dg(u, 1, 10, &g, gl);
		recv_dg(s, 1, 10, NULL, "mcast: to 239.1.2.3");
		subject_pass();
	}
	if (!strcmp(mode, "opts")) {
		s = sock(AF_INET, 0);
		setopt(s, SOL_SOCKET, SO_REUSEADDR, 1);
		setopt(s, IPPROTO_IP, IP_TOS, 0x28);
		setopt(s, IPPROTO_IP, IP_TTL, 17);
		setopt(s, SOL_SOCKET, SO_MARK, 0x1234);
		setopt(s, SOL_SOCKET, SO_PRIORITY, 5);
		setopt(s, SOL_SOCKET, SO_RCVBUF, 200000);
		setopt(s, SOL_SOCKET, SO_SNDBUF, 100000);
		setopt(s, IPPROTO_IP, IP_RECVTTL, 1);
		setopt(s, SOL_SOCKET, SO_TIMESTAMP, 1);
		setopt(s, IPPROTO_UDP, UDP_SEGMENT, 1000);
		setopt(s, IPPROTO_UDP, UDP_GRO, 1);
		setopt(s, IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DO);
		al = mk4(&a, "127.0.0.1", P); do_bind(s, &a, al);
		t = sock(AF_INET6, 0);
		setopt(t, IPPROTO_IPV6, IPV6_TCLASS, 0x48);
		setopt(t, IPPROTO_UDP, UDP_NO_CHECK6_TX, 1);
		setopt(t, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1);
		setopt(t, IPPROTO_IPV6, IPV6_UNICAST_HOPS, 9);
		bl = mk6(&b, "::1", Q); do_bind(t, &b, bl);
		int rcv = iopt(s, SOL_SOCKET, SO_RCVBUF), snd = iopt(s, SOL_SOCKET, SO_SNDBUF);
		subject_ready(argv[1]);
		wait_term();
		struct { int level, opt, want; const char *name; } o[] = {
			{ SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR" }, { IPPROTO_IP, IP_TOS, 0x28, "IP_TOS" }, { IPPROTO_IP, IP_TTL, 17, "IP_TTL" },
			{ SOL_SOCKET, SO_MARK, 0x1234, "SO_MARK" }, { SOL_SOCKET, SO_PRIORITY, 5, "SO_PRIORITY" }, { SOL_SOCKET, SO_RCVBUF, rcv, "SO_RCVBUF" },
			{ SOL_SOCKET, SO_SNDBUF, snd, "SO_SNDBUF" }, { IPPROTO_IP, IP_RECVTTL, 1, "IP_RECVTTL" }, { SOL_SOCKET, SO_TIMESTAMP, 1, "SO_TIMESTAMP" },
			{ IPPROTO_UDP, UDP_SEGMENT, 1000, "UDP_SEGMENT" }, { IPPROTO_UDP, UDP_GRO, 1, "UDP_GRO" }, { IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DO, "IP_MTU_DISCOVER" },
		};
		for (size_t i = 0; i < sizeof(o) / sizeof(o[0]); i++) {
			int v = iopt(s, o[i].level, o[i].opt);
			CHECK(v == o[i].want, "%s is %d, expected %d", o[i].name, v, o[i].want);
		}
		CHECK(iopt(t, IPPROTO_IPV6, IPV6_TCLASS) == 0x48, "IPV6_TCLASS");
		CHECK(iopt(t, IPPROTO_UDP, UDP_NO_CHECK6_TX) == 1, "UDP_NO_CHECK6_TX");
		CHECK(iopt(t, IPPROTO_IPV6, IPV6_RECVPKTINFO) == 1, "IPV6_RECVPKTINFO");
		CHECK(iopt(t, IPPROTO_IPV6, IPV6_UNICAST_HOPS) == 9, "IPV6_UNICAST_HOPS");
		subject_pass();
	}
	if (!strcmp(mode, "reuseport")) {
		al = mk4(&a, "127.0.0.1", P);
		int sync[2];
		CHECK(pipe(sync) == 0, "pipe");
		int go[2];
		CHECK(pipe(go) == 0, "pipe");
		cl = mk4(&c, "127.0.0.1", R);
		pid_t kid = fork();
		if (kid == 0) {
			int k = sock(AF_INET, 0);
			setopt(k, SOL_SOCKET, SO_REUSEPORT, 1);
			do_bind(k, &a, al);
			CHECK(write(sync[1], "k", 1) == 1, "child: write");
			char g;
			CHECK(read(go[0], &g, 1) == 1, "child: waiting");
			wait_term();
			same_name(k, &a, 0, "the child's socket");
			CHECK(iopt(k, SOL_SOCKET, SO_REUSEPORT) == 1, "child: SO_REUSEPORT is off");
			for (int i = 1; i <= 2; i++) recv_dg(k, i, 10 * i, &c, "the child's queue");
			nothing(k, "the child's queue");
			subject_pass();
		}
		char ch;
		CHECK(read(sync[0], &ch, 1) == 1, "waiting for the child");
		s = sock(AF_INET, 0);
		setopt(s, SOL_SOCKET, SO_REUSEPORT, 1);
		do_bind(s, &a, al);
		/* datagrams steered for the moment: two to the child's socket (member 0), three to this one (member 1) */
		u = sock(AF_INET, 0); do_bind(u, &c, cl);
		for (int m = 0; m < 2; m++) {
			struct sock_filter ret = { 0x06, 0, 0, (unsigned)m };
			struct sock_fprog fp = { 1, &ret };
			CHECK(setsockopt(s, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &fp, sizeof(fp)) == 0, "SO_ATTACH_REUSEPORT_CBPF: %s", strerror(errno));
			for (int i = 1; i <= 2 + m; i++) send_dg(u, m * 10 + i, m * 100 + 10 * i, &a, al);
		}
		int zero = 0;
		CHECK(setsockopt(s, SOL_SOCKET, SO_DETACH_REUSEPORT_BPF, &zero, sizeof(zero)) == 0, "SO_DETACH_REUSEPORT_BPF: %s", strerror(errno));
		CHECK(write(go[1], "g", 1) == 1, "write");
		t = sock(AF_INET, 0); int v = sock(AF_INET, 0);
		setopt(t, SOL_SOCKET, SO_REUSEADDR, 1); setopt(v, SOL_SOCKET, SO_REUSEADDR, 1);
		bl = mk4(&b, "0.0.0.0", Q); do_bind(t, &b, bl); do_bind(v, &b, bl);
		/* the kernel gives the port's datagrams to one of the two: it must be the same one after restore */
		addr_t toq;
		socklen_t tql = mk4(&toq, "127.0.0.1", Q);
		send_dg(u, 30, 30, &toq, tql);
		struct pollfd pw[2] = { { t, POLLIN, 0 }, { v, POLLIN, 0 } };
		CHECK(poll(pw, 2, 2000) == 1, "the datagram to the SO_REUSEADDR pair came to %s", "none or both");
		int winner = pw[0].revents & POLLIN ? t : v, loser = winner == t ? v : t;
		subject_ready(argv[1]);
		wait_term();
		kill(kid, SIGTERM);
		reap(kid, "reuseport");
		same_name(s, &a, 0, "the socket");
		same_name(t, &b, 0, "the first SO_REUSEADDR socket");
		same_name(v, &b, 0, "the second SO_REUSEADDR socket");
		CHECK(iopt(s, SOL_SOCKET, SO_REUSEPORT) == 1, "SO_REUSEPORT is off");
		CHECK(iopt(t, SOL_SOCKET, SO_REUSEADDR) == 1 && iopt(v, SOL_SOCKET, SO_REUSEADDR) == 1, "SO_REUSEADDR is off");
		recv_dg(winner, 30, 30, &c, "the SO_REUSEADDR socket that got the datagram");
		nothing(loser, "the other SO_REUSEADDR socket");
		send_dg(u, 31, 31, &toq, tql);
		recv_dg(winner, 31, 31, &c, "the SO_REUSEADDR socket that got the first datagram, for the next");
		nothing(loser, "the other SO_REUSEADDR socket, for the next");
		for (int i = 1; i <= 3; i++) recv_dg(s, 10 + i, 100 + 10 * i, &c, "the parent's queue");
		nothing(s, "the parent's queue");
		subject_pass();
	}
	if (!strcmp(mode, "lite") || !strcmp(mode, "lite6")) {
		int v6 = !strcmp(mode, "lite6");
		s = sock(v6 ? AF_INET6 : AF_INET, IPPROTO_UDPLITE); t = sock(v6 ? AF_INET6 : AF_INET, IPPROTO_UDPLITE);
		setopt(s, IPPROTO_UDPLITE, UDPLITE_SEND_CSCOV, 20);
		setopt(s, IPPROTO_UDPLITE, UDPLITE_RECV_CSCOV, 12);
		setopt(t, IPPROTO_UDPLITE, UDPLITE_SEND_CSCOV, 16);
		if (v6) { al = mk6(&a, "::1", P); bl = mk6(&b, "::1", Q); } else { al = mk4(&a, "127.0.0.1", P); bl = mk4(&b, "127.0.0.1", Q); }
		do_bind(s, &a, al); do_bind(t, &b, bl);
		send_dg(t, 1, 300, &a, al);
		subject_ready(argv[1]);
		wait_term();
		CHECK(iopt(s, SOL_SOCKET, SO_PROTOCOL) == IPPROTO_UDPLITE, "not UDP-Lite");
		CHECK(iopt(s, IPPROTO_UDPLITE, UDPLITE_SEND_CSCOV) == 20, "UDPLITE_SEND_CSCOV");
		CHECK(iopt(s, IPPROTO_UDPLITE, UDPLITE_RECV_CSCOV) == 12, "UDPLITE_RECV_CSCOV");
		recv_dg(s, 1, 300, &b, "lite: queued");
		pingpong(s, t, "lite");
		subject_pass();
	}
	if (!strcmp(mode, "shared")) {
		s = sock(AF_INET, 0); t = sock(AF_INET, 0);
		al = mk4(&a, "127.0.0.1", P); bl = mk4(&b, "127.0.0.1", Q);
		do_bind(s, &a, al); do_bind(t, &b, bl);
		send_dg(t, 1, 10, &a, al);
		struct stat st0;
		CHECK(fstat(s, &st0) == 0, "fstat");
		int sync[2];
		CHECK(pipe(sync) == 0, "pipe");
		pid_t kid = fork();
		if (kid == 0) {
			wait_term();
			struct stat st1;
			CHECK(fstat(s, &st1) == 0, "child: fstat");
			same_name(s, &a, 0, "the child's copy");
			/* the same description: an option set here is seen by the parent */
			setopt(s, SOL_SOCKET, SO_MARK, 77);
			CHECK(write(sync[1], "k", 1) == 1, "child: write");
			subject_pass();
		}
		subject_ready(argv[1]);
		wait_term();
		kill(kid, SIGTERM);
		char ch;
		CHECK(read(sync[0], &ch, 1) == 1, "waiting for the child");
		reap(kid, "shared");
		CHECK(iopt(s, SOL_SOCKET, SO_MARK) == 77, "the child's socket is not the parent's");
		recv_dg(s, 1, 10, &b, "shared: queued");
		subject_pass();
	}
	if (!strcmp(mode, "inflight")) {
		int sp[2];
		CHECK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sp) == 0, "socketpair");
		s = sock(AF_INET, 0); t = sock(AF_INET, 0);
		al = mk4(&a, "127.0.0.1", P); bl = mk4(&b, "127.0.0.1", Q);
		do_bind(s, &a, al); do_bind(t, &b, bl);
		send_dg(t, 1, 10, &a, al);
		char cbuf[CMSG_SPACE(sizeof(int))], x = 'x';
		struct iovec iov = { &x, 1 };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
		struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
		cm->cmsg_level = SOL_SOCKET; cm->cmsg_type = SCM_RIGHTS; cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &s, sizeof(int));
		CHECK(sendmsg(sp[0], &m, 0) == 1, "sendmsg: %s", strerror(errno));
		close(s);
		subject_ready(argv[1]);
		wait_term();
		memset(cbuf, 0, sizeof(cbuf));
		m.msg_controllen = sizeof(cbuf);
		CHECK(recvmsg(sp[1], &m, MSG_DONTWAIT) == 1, "recvmsg: %s", strerror(errno));
		cm = CMSG_FIRSTHDR(&m);
		CHECK(cm && cm->cmsg_type == SCM_RIGHTS, "no socket in flight");
		memcpy(&s, CMSG_DATA(cm), sizeof(int));
		same_name(s, &a, 0, "the socket in flight");
		recv_dg(s, 1, 10, &b, "inflight: queued");
		subject_pass();
	}
	fprintf(stderr, "udp: unknown MODE %s\n", mode);
	return 2;
}
