/*
 * tcp - TCP sockets in the states a program can hold them in.
 *
 *   tcp OUTFILE MODE [ARG]
 *
 * MODE:
 *   listen4   a listener on 127.0.0.1 (SO_REUSEADDR, backlog 7, TCP_DEFER_ACCEPT)
 *   listen6   a listener on [::1], IPV6_V6ONLY, SO_REUSEPORT, TCP_FASTOPEN
 *   dual      a listener on [::] (not v6only) that accepts an IPv4 client
 *   bound     a socket bound to 127.0.0.1:port, not listening
 *   unbound   a socket never bound
 *   pair      both ends of a loopback connection, data queued both ways,
 *             connection options (TCP_NODELAY, keepalive timers, user
 *             timeout, SO_MARK, IP_TOS, SO_LINGER, fixed buffers)
 *   full      both ends, one side's send queue full (the peer reads nothing:
 *             data sent and never sent, a window of zero)
 *   pair6     both ends over ::1; mapped: an IPv6 socket to ::ffff:127.0.0.1
 *   shared    a connection's end shared by the process and its child
 *   accepted  a listener and two connections accepted from it (same port),
 *             data queued both ways; the listener accepts a third after restore
 *   pending   a listener holding a connection not yet accepted (ARG "skipped":
 *             after --skip-in-flight its client must see a reset)
 *   client    ARG = a port on 127.0.0.1: a connection to a peer outside the
 *             tree; after restore it reads "ping N" lines and answers "pong N"
 *   connecting ARG = a port on 127.0.0.1 whose listener drops SYNs (its queue
 *             is full): a non-blocking connect under way (SYN_SENT); after
 *             restore it completes once the listener takes it, and echoes
 *   halfwr    both ends; one end shut down for writing (FIN_WAIT2 / CLOSE_WAIT)
 *   shutrd    a connection shut down for reading on one end
 *   inflight  one end of a connection held only in flight (SCM_RIGHTS) in a
 *             unix socketpair's queue, with data queued to it
 *   closed    a connection whose peer closed and that read the end (CLOSE_WAIT, EOF read)
 *
 * After restore (SIGTERM) each checks addresses, options, queued data, and
 * that the sockets still work.
 */
#include "subject.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <linux/sockios.h>

static int geti(int fd, int level, int opt)
{
	int v = -1;
	socklen_t l = sizeof(v);

	if (getsockopt(fd, level, opt, &v, &l) != 0)
		subject_fail("getsockopt(%d, %d): %s", level, opt, strerror(errno));
	return v;
}

static void seti(int fd, int level, int opt, int v)
{
	if (setsockopt(fd, level, opt, &v, sizeof(v)) != 0)
		subject_fail("setsockopt(%d, %d, %d): %s", level, opt, v, strerror(errno));
}

static struct sockaddr_in lo4(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return a;
}

static int port_of(int fd)
{
	struct sockaddr_storage a;
	socklen_t l = sizeof(a);

	if (getsockname(fd, (struct sockaddr *)&a, &l) != 0)
		subject_fail("getsockname: %s", strerror(errno));
	return ntohs(((struct sockaddr_in *)&a)->sin_port);
}

static int peer_port(int fd)
{
	struct sockaddr_storage a;
	socklen_t l = sizeof(a);

	if (getpeername(fd, (struct sockaddr *)&a, &l) != 0)
		subject_fail("getpeername: %s", strerror(errno));
	return ntohs(((struct sockaddr_in *)&a)->sin_port);
}

static int listener4(int backlog)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = lo4(0);

	seti(fd, SOL_SOCKET, SO_REUSEADDR, 1);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, backlog))
		subject_fail("listen: %s", strerror(errno));
	return fd;
}

static int connect4(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = lo4(port);

	if (connect(fd, (struct sockaddr *)&a, sizeof(a)))
		subject_fail("connect to %d: %s", port, strerror(errno));
	return fd;
}

/* A connected pair over loopback: *a the client, *b the accepted end. */
static void pair4(int *a, int *b)
{
	int l = listener4(1);

	*a = connect4(port_of(l));
	*b = accept(l, NULL, NULL);
	if (*b < 0)
		subject_fail("accept: %s", strerror(errno));
	close(l);
}

static void pattern(unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(seed + i * 7 + (i >> 8));
}

static void send_all(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n) {
		ssize_t w = send(fd, c, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			subject_fail("send: %s", strerror(errno));
		c += w;
		n -= (size_t)w;
	}
}

static void recv_all(int fd, void *p, size_t n, const char *what)
{
	char *c = p;

	while (n) {
		ssize_t r = recv(fd, c, n, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0)
			subject_fail("%s: end of stream with %zu bytes still expected", what, n);
		if (r < 0)
			subject_fail("%s: recv: %s", what, strerror(errno));
		c += r;
		n -= (size_t)r;
	}
}

/* Expect exactly n pattern bytes (seed) and then nothing more right now. */
static void expect_pattern(int fd, size_t n, unsigned seed, const char *what)
{
	static unsigned char want[1 << 21], got[1 << 21];
	int avail;

	pattern(want, n, seed);
	recv_all(fd, got, n, what);
	for (size_t i = 0; i < n; i++)
		if (got[i] != want[i])
			subject_fail("%s: byte %zu is 0x%02x, expected 0x%02x", what, i, got[i], want[i]);
	if (ioctl(fd, FIONREAD, &avail) == 0 && avail != 0)
		subject_fail("%s: %d bytes more than expected are queued", what, avail);
}

static void exchange(int a, int b, const char *what)
{
	char buf[64];

	send_all(a, "after-a", 7);
	send_all(b, "after-b!", 8);
	recv_all(b, buf, 7, what);
	if (memcmp(buf, "after-a", 7))
		subject_fail("%s: the connection carried the wrong bytes one way", what);
	recv_all(a, buf, 8, what);
	if (memcmp(buf, "after-b!", 8))
		subject_fail("%s: the connection carried the wrong bytes the other way", what);
}

static int tcp_state(int fd)
{
	struct tcp_info ti;
	socklen_t l = sizeof(ti);

	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &l))
		subject_fail("TCP_INFO: %s", strerror(errno));
	return ti.tcpi_state;
}

static void wait_term(void)
{
	while (!got_term)
		pause();
}

int main(int argc, char **argv)
{
	const char *mode;
	int a = -1, b = -1, l = -1, port = 0;

	if (argc < 3) {
		fprintf(stderr, "usage: tcp OUTFILE MODE [ARG]\n");
		return 2;
	}
	mode = argv[2];
	install_term_handler(0);
	signal(SIGPIPE, SIG_IGN);

	if (!strcmp(mode, "listen4")) {
		l = listener4(7);
		seti(l, IPPROTO_TCP, TCP_DEFER_ACCEPT, 7); /* (kept as retransmissions: 7 s reads back as 7) */
		port = port_of(l);
		subject_ready(argv[1]);
		wait_term();
		CHECK(port_of(l) == port, "the listener's port is %d, not %d", port_of(l), port);
		CHECK(geti(l, SOL_SOCKET, SO_ACCEPTCONN) == 1, "not listening");
		CHECK(geti(l, SOL_SOCKET, SO_REUSEADDR) == 1, "SO_REUSEADDR lost");
		CHECK(geti(l, IPPROTO_TCP, TCP_DEFER_ACCEPT) == 7, "TCP_DEFER_ACCEPT is %d", geti(l, IPPROTO_TCP, TCP_DEFER_ACCEPT));
		a = connect4(port);
		send_all(a, "x", 1); /* (deferred accept: data first) */
		b = accept(l, NULL, NULL);
		CHECK(b >= 0, "accept after restore: %s", strerror(errno));
		{
			char x;

			recv_all(b, &x, 1, "the first byte");
		}
		exchange(a, b, "a connection accepted after restore");
		subject_pass();
	}
	if (!strcmp(mode, "listen6") || !strcmp(mode, "dual")) {
		int dual = !strcmp(mode, "dual");
		struct sockaddr_in6 s6 = { .sin6_family = AF_INET6, .sin6_addr = dual ? in6addr_any : in6addr_loopback };

		l = socket(AF_INET6, SOCK_STREAM, 0);
		seti(l, IPPROTO_IPV6, IPV6_V6ONLY, dual ? 0 : 1);
		if (!dual)
			seti(l, SOL_SOCKET, SO_REUSEPORT, 1);
		if (bind(l, (struct sockaddr *)&s6, sizeof(s6)) || listen(l, 3))
			subject_fail("listen6: %s", strerror(errno));
		if (!dual)
			seti(l, IPPROTO_TCP, TCP_FASTOPEN, 4);
		port = port_of(l);
		subject_ready(argv[1]);
		wait_term();
		CHECK(port_of(l) == port, "the listener's port is %d, not %d", port_of(l), port);
		CHECK(geti(l, IPPROTO_IPV6, IPV6_V6ONLY) == !dual, "IPV6_V6ONLY is %d", geti(l, IPPROTO_IPV6, IPV6_V6ONLY));
		if (dual) {
			a = connect4(port);
		} else {
			CHECK(geti(l, SOL_SOCKET, SO_REUSEPORT) == 1, "SO_REUSEPORT lost");
			CHECK(geti(l, IPPROTO_TCP, TCP_FASTOPEN) == 4, "TCP_FASTOPEN is %d", geti(l, IPPROTO_TCP, TCP_FASTOPEN));
			a = socket(AF_INET6, SOCK_STREAM, 0);
			s6.sin6_port = htons(port);
			if (connect(a, (struct sockaddr *)&s6, sizeof(s6)))
				subject_fail("connect [::1]: %s", strerror(errno));
		}
		b = accept(l, NULL, NULL);
		CHECK(b >= 0, "accept after restore: %s", strerror(errno));
		exchange(a, b, "a connection accepted after restore");
		subject_pass();
	}
	if (!strcmp(mode, "bound") || !strcmp(mode, "unbound")) {
		int bound = !strcmp(mode, "bound");

		l = socket(AF_INET, SOCK_STREAM, 0);
		seti(l, IPPROTO_TCP, TCP_NODELAY, 1);
		if (bound) {
			struct sockaddr_in s = lo4(0);

			if (bind(l, (struct sockaddr *)&s, sizeof(s)))
				subject_fail("bind: %s", strerror(errno));
			port = port_of(l);
		}
		subject_ready(argv[1]);
		wait_term();
		CHECK(port_of(l) == port, "the socket's port is %d, not %d", port_of(l), port);
		CHECK(geti(l, IPPROTO_TCP, TCP_NODELAY) == 1, "TCP_NODELAY lost");
		CHECK(geti(l, SOL_SOCKET, SO_ACCEPTCONN) == 0, "listening");
		CHECK(tcp_state(l) == TCP_CLOSE, "state %d", tcp_state(l));
		if (listen(l, 1))
			subject_fail("listen after restore: %s", strerror(errno));
		a = connect4(port_of(l));
		b = accept(l, NULL, NULL);
		exchange(a, b, "the socket, listening after restore");
		subject_pass();
	}
	if (!strcmp(mode, "pair") || !strcmp(mode, "pair6") || !strcmp(mode, "mapped")) {
		static unsigned char buf[200000];
		struct linger lg = { 1, 7 };

		if (!strcmp(mode, "pair")) {
			pair4(&a, &b);
		} else {
			int v6only = !strcmp(mode, "pair6");
			struct sockaddr_in6 s6 = { .sin6_family = AF_INET6, .sin6_addr = in6addr_loopback };

			l = socket(AF_INET6, SOCK_STREAM, 0);
			seti(l, IPPROTO_IPV6, IPV6_V6ONLY, 0);
			if (!v6only)
				s6.sin6_addr = in6addr_any;
			if (bind(l, (struct sockaddr *)&s6, sizeof(s6)) || listen(l, 1))
				subject_fail("listen: %s", strerror(errno));
			a = socket(AF_INET6, SOCK_STREAM, 0);
			s6.sin6_port = htons(port_of(l));
			if (!v6only)
				inet_pton(AF_INET6, "::ffff:127.0.0.1", &s6.sin6_addr);
			if (connect(a, (struct sockaddr *)&s6, sizeof(s6)))
				subject_fail("connect: %s", strerror(errno));
			b = accept(l, NULL, NULL);
			close(l);
		}
		seti(a, IPPROTO_TCP, TCP_NODELAY, 1);
		seti(a, SOL_SOCKET, SO_KEEPALIVE, 1);
		seti(a, IPPROTO_TCP, TCP_KEEPIDLE, 77);
		seti(a, IPPROTO_TCP, TCP_KEEPINTVL, 11);
		seti(a, IPPROTO_TCP, TCP_KEEPCNT, 4);
		seti(a, IPPROTO_TCP, TCP_USER_TIMEOUT, 12345);
		seti(a, SOL_SOCKET, SO_MARK, 42);
		seti(b, SOL_SOCKET, SO_SNDBUF, 300000);
		if (!strcmp(mode, "pair"))
			seti(a, IPPROTO_IP, IP_TOS, 0x10);
		else
			seti(a, IPPROTO_IPV6, IPV6_TCLASS, 0x20);
		if (setsockopt(b, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)))
			subject_fail("SO_LINGER: %s", strerror(errno));
		pattern(buf, 1000, 1);
		send_all(a, buf, 1000);
		pattern(buf, 150000, 2);
		send_all(b, buf, 150000);
		usleep(100000);
		subject_ready(argv[1]);
		wait_term();
		CHECK(geti(a, IPPROTO_TCP, TCP_NODELAY) == 1, "TCP_NODELAY lost");
		CHECK(geti(a, SOL_SOCKET, SO_KEEPALIVE) == 1, "SO_KEEPALIVE lost");
		CHECK(geti(a, IPPROTO_TCP, TCP_KEEPIDLE) == 77, "TCP_KEEPIDLE is %d", geti(a, IPPROTO_TCP, TCP_KEEPIDLE));
		CHECK(geti(a, IPPROTO_TCP, TCP_KEEPINTVL) == 11, "TCP_KEEPINTVL is %d", geti(a, IPPROTO_TCP, TCP_KEEPINTVL));
		CHECK(geti(a, IPPROTO_TCP, TCP_KEEPCNT) == 4, "TCP_KEEPCNT is %d", geti(a, IPPROTO_TCP, TCP_KEEPCNT));
		CHECK(geti(a, IPPROTO_TCP, TCP_USER_TIMEOUT) == 12345, "TCP_USER_TIMEOUT is %d", geti(a, IPPROTO_TCP, TCP_USER_TIMEOUT));
		CHECK(geti(a, SOL_SOCKET, SO_MARK) == 42, "SO_MARK is %d", geti(a, SOL_SOCKET, SO_MARK));
		CHECK(geti(b, SOL_SOCKET, SO_SNDBUF) == 600000, "SO_SNDBUF is %d", geti(b, SOL_SOCKET, SO_SNDBUF));
		if (!strcmp(mode, "pair"))
			CHECK(geti(a, IPPROTO_IP, IP_TOS) == 0x10, "IP_TOS is %d", geti(a, IPPROTO_IP, IP_TOS));
		else
			CHECK(geti(a, IPPROTO_IPV6, IPV6_TCLASS) == 0x20, "IPV6_TCLASS is %d", geti(a, IPPROTO_IPV6, IPV6_TCLASS));
		{
			struct linger g;
			socklen_t gl = sizeof(g);

			getsockopt(b, SOL_SOCKET, SO_LINGER, &g, &gl);
			CHECK(g.l_onoff == 1 && g.l_linger == 7, "SO_LINGER is %d/%d", g.l_onoff, g.l_linger);
		}
		CHECK(tcp_state(a) == TCP_ESTABLISHED && tcp_state(b) == TCP_ESTABLISHED, "states %d %d", tcp_state(a), tcp_state(b));
		expect_pattern(b, 1000, 1, "the bytes queued one way");
		expect_pattern(a, 150000, 2, "the bytes queued the other way");
		exchange(a, b, "the connection");
		subject_pass();
	}
	if (!strcmp(mode, "full")) {
		static unsigned char buf[1 << 21];
		size_t sent = 0;

		pair4(&a, &b);
		seti(b, SOL_SOCKET, SO_RCVBUF, 65536);
		seti(a, SOL_SOCKET, SO_SNDBUF, 131072);
		fcntl(a, F_SETFL, O_NONBLOCK);
		pattern(buf, sizeof(buf), 3);
		for (;;) {
			ssize_t w = send(a, buf + sent, sizeof(buf) - sent, MSG_NOSIGNAL);

			if (w < 0 && errno == EAGAIN) {
				usleep(100000);
				w = send(a, buf + sent, sizeof(buf) - sent, MSG_NOSIGNAL);
				if (w < 0 && errno == EAGAIN)
					break;
			}
			if (w <= 0)
				subject_fail("send: %s", strerror(errno));
			sent += (size_t)w;
			if (sent == sizeof(buf))
				subject_fail("2 MiB went without the queue filling");
		}
		{
			int unsent = 0;

			ioctl(a, SIOCOUTQNSD, &unsent);
			CHECK(unsent > 0, "nothing is left unsent: the state to test was not reached");
		}
		subject_ready(argv[1]);
		wait_term();
		{
			static unsigned char got[1 << 21];
			size_t n = 0;

			fcntl(a, F_SETFL, 0);
			while (n < sent) {
				ssize_t r = recv(b, got + n, sent - n, 0);

				if (r <= 0)
					subject_fail("reading the %zu bytes sent: %s after %zu", sent, r ? strerror(errno) : "end", n);
				n += (size_t)r;
			}
			for (size_t i = 0; i < sent; i++)
				if (got[i] != buf[i])
					subject_fail("byte %zu of %zu is wrong", i, sent);
		}
		exchange(a, b, "the connection");
		subject_pass();
	}
	if (!strcmp(mode, "shared")) {
		pid_t child;
		int st;

		pair4(&a, &b);
		send_all(a, "12345", 5);
		child = fork();
		if (child == 0) {
			while (!got_term)
				pause();
			send_all(b, "child", 5);
			_exit(0);
		}
		usleep(50000);
		subject_ready(argv[1]);
		wait_term();
		kill(child, SIGTERM);
		waitpid(child, &st, 0);
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child failed");
		{
			char buf[16];

			recv_all(a, buf, 5, "the child's bytes");
			CHECK(!memcmp(buf, "child", 5), "the child's bytes are wrong");
			recv_all(b, buf, 5, "the queued bytes");
			CHECK(!memcmp(buf, "12345", 5), "the queued bytes are wrong");
		}
		exchange(a, b, "the connection");
		subject_pass();
	}
	if (!strcmp(mode, "accepted")) {
		int a2, b2;

		l = listener4(4);
		port = port_of(l);
		a = connect4(port);
		b = accept(l, NULL, NULL);
		a2 = connect4(port);
		b2 = accept(l, NULL, NULL);
		send_all(a, "one", 3);
		send_all(b, "uno", 3); /* (the first connection: data queued both ways) */
		send_all(b2, "two", 3);
		usleep(50000);
		subject_ready(argv[1]);
		wait_term();
		CHECK(port_of(b) == port && port_of(b2) == port, "accepted sockets are on ports %d %d, not %d", port_of(b), port_of(b2), port);
		CHECK(peer_port(b) == port_of(a) && peer_port(b2) == port_of(a2), "the peers are wrong");
		{
			char buf[8];

			recv_all(b, buf, 3, "one");
			CHECK(!memcmp(buf, "one", 3), "wrong bytes");
			recv_all(a, buf, 3, "uno");
			CHECK(!memcmp(buf, "uno", 3), "wrong bytes");
			recv_all(a2, buf, 3, "two");
			CHECK(!memcmp(buf, "two", 3), "wrong bytes");
		}
		exchange(a, b, "the first connection");
		exchange(a2, b2, "the second connection");
		{
			int a3 = connect4(port), b3 = accept(l, NULL, NULL);

			CHECK(b3 >= 0, "accept after restore: %s", strerror(errno));
			exchange(a3, b3, "a third connection, after restore");
		}
		subject_pass();
	}
	if (!strcmp(mode, "pending")) {
		/* ARG "skipped": restored with --skip-in-flight, so the connection
		 * not yet accepted is gone: its client sees a reset, the listener
		 * accepts new ones. Without it: the connection is still there. */
		int skipped = argc > 3 && !strcmp(argv[3], "skipped");
		char x;

		l = listener4(4);
		port = port_of(l);
		a = connect4(port);
		usleep(50000);
		subject_ready(argv[1]);
		wait_term();
		CHECK(port_of(l) == port, "the listener's port is %d, not %d", port_of(l), port);
		if (skipped) {
			struct pollfd p = { a, POLLIN, 0 };
			ssize_t r;

			send_all(a, "x", 1);
			CHECK(poll(&p, 1, 10000) == 1, "the client of the connection left out saw nothing");
			r = recv(a, &x, 1, 0);
			CHECK(r < 0 && errno == ECONNRESET, "the client of the connection left out read %zd (%s), not a reset", r, r < 0 ? strerror(errno) : "data");
			close(a);
			a = connect4(port);
		}
		b = accept(l, NULL, NULL);
		CHECK(b >= 0, "accept: %s", strerror(errno));
		exchange(a, b, "a connection to the listener");
		subject_pass();
	}
	if (!strcmp(mode, "client")) {
		char line[64], want[64];

		if (argc < 4)
			subject_fail("client needs a port");
		a = connect4(atoi(argv[3]));
		send_all(a, "hello\n", 6);
		subject_ready(argv[1]);
		/* Answer "ping N" with "pong N" until SIGTERM, then check one more. */
		for (int n = 0; !got_term; n++) {
			size_t k = 0;
			struct pollfd p = { a, POLLIN, 0 };

			if (poll(&p, 1, -1) < 0) {
				if (errno == EINTR)
					break;
				subject_fail("poll: %s", strerror(errno));
			}
			while (k < sizeof(line) - 1) {
				ssize_t r = recv(a, line + k, 1, 0);

				if (r < 0 && errno == EINTR && got_term)
					break;
				if (r <= 0)
					subject_fail("the connection ended (%s) after %d pings", r ? strerror(errno) : "EOF", n);
				if (line[k++] == '\n')
					break;
			}
			if (got_term)
				break;
			line[k] = 0;
			snprintf(want, sizeof(want), "ping %d\n", n);
			CHECK(!strcmp(line, want), "got %s instead of %s", line, want);
			snprintf(want, sizeof(want), "pong %d\n", n);
			send_all(a, want, strlen(want));
		}
		CHECK(tcp_state(a) == TCP_ESTABLISHED, "state %d", tcp_state(a));
		subject_pass();
	}
	if (!strcmp(mode, "connecting")) {
		struct sockaddr_in s;
		struct pollfd p;
		char buf[8];
		int err = -1;
		socklen_t el = sizeof(err);

		if (argc < 4)
			subject_fail("connecting needs a port");
		s = lo4(atoi(argv[3]));
		a = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		CHECK(connect(a, (struct sockaddr *)&s, sizeof(s)) < 0 && errno == EINPROGRESS, "connect: %s", strerror(errno));
		usleep(100000);
		CHECK(tcp_state(a) == TCP_SYN_SENT, "not under way: state %d", tcp_state(a));
		port = port_of(a);
		subject_ready(argv[1]);
		wait_term();
		CHECK(port_of(a) == port, "connecting from port %d, not %d", port_of(a), port);
		p.fd = a;
		p.events = POLLOUT;
		CHECK(poll(&p, 1, 30000) == 1, "the connection was not made within 30 s (state %d)", tcp_state(a));
		getsockopt(a, SOL_SOCKET, SO_ERROR, &err, &el);
		CHECK(err == 0, "the connection failed: %s", strerror(err));
		CHECK(peer_port(a) == atoi(argv[3]), "connected to port %d", peer_port(a));
		fcntl(a, F_SETFL, 0);
		send_all(a, "echo", 4);
		recv_all(a, buf, 4, "the echo");
		CHECK(!memcmp(buf, "echo", 4), "wrong echo");
		subject_pass();
	}
	if (!strcmp(mode, "halfwr") || !strcmp(mode, "closed")) {
		char buf[8];

		pair4(&a, &b);
		send_all(a, "tail", 4);
		shutdown(a, SHUT_WR);
		usleep(50000);
		if (!strcmp(mode, "closed")) {
			recv_all(b, buf, 4, "the bytes before the FIN");
			CHECK(recv(b, buf, 1, 0) == 0, "no end of stream");
		}
		subject_ready(argv[1]);
		wait_term();
		CHECK(tcp_state(a) == TCP_FIN_WAIT2 || tcp_state(a) == TCP_FIN_WAIT1, "the closing end is in state %d", tcp_state(a));
		CHECK(tcp_state(b) == TCP_CLOSE_WAIT, "the other end is in state %d", tcp_state(b));
		if (strcmp(mode, "closed")) {
			recv_all(b, buf, 4, "the bytes before the FIN");
			CHECK(!memcmp(buf, "tail", 4), "wrong bytes before the FIN");
		}
		CHECK(recv(b, buf, 1, 0) == 0, "no end of stream after restore");
		send_all(b, "back", 4);
		recv_all(a, buf, 4, "the bytes sent back");
		CHECK(!memcmp(buf, "back", 4), "wrong bytes back");
		close(b);
		CHECK(recv(a, buf, 1, 0) == 0, "no end of stream on the closing end");
		subject_pass();
	}
	if (!strcmp(mode, "inflight")) {
		int sp[2];
		char cbuf[CMSG_SPACE(sizeof(int))], buf[8], one = 'F';
		struct iovec iov = { &one, 1 };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
		struct cmsghdr *c;

		pair4(&a, &b);
		send_all(a, "queued", 6);
		if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sp))
			subject_fail("socketpair: %s", strerror(errno));
		c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &b, sizeof(int));
		if (sendmsg(sp[0], &m, 0) != 1)
			subject_fail("sendmsg: %s", strerror(errno));
		close(b);
		usleep(50000);
		subject_ready(argv[1]);
		wait_term();
		m.msg_controllen = sizeof(cbuf);
		if (recvmsg(sp[1], &m, 0) != 1 || !(c = CMSG_FIRSTHDR(&m)) || c->cmsg_type != SCM_RIGHTS)
			subject_fail("the socket in flight did not arrive: %s", strerror(errno));
		memcpy(&b, CMSG_DATA(c), sizeof(int));
		CHECK(tcp_state(b) == TCP_ESTABLISHED, "the socket in flight is in state %d", tcp_state(b));
		recv_all(b, buf, 6, "the bytes queued to the socket in flight");
		CHECK(!memcmp(buf, "queued", 6), "wrong bytes queued to the socket in flight");
		exchange(a, b, "the connection held in flight");
		subject_pass();
	}
	if (!strcmp(mode, "shutrd")) {
		char buf[8];

		pair4(&a, &b);
		shutdown(b, SHUT_RD);
		subject_ready(argv[1]);
		wait_term();
		CHECK(recv(b, buf, 1, MSG_DONTWAIT) == 0, "a read of the end shut for reading did not give end of stream");
		send_all(b, "data", 4);
		recv_all(a, buf, 4, "the bytes of the end shut for reading");
		subject_pass();
	}
	subject_fail("unknown mode %s", mode);
}
