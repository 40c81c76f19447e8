/*
 * unixsk.h - helpers for the unix socket subjects (unix_pair.c, unix_named.c,
 * unix_dgram.c, unix_listen.c, unix_rights.c): patterned data, messages with
 * their boundaries, names, and the checks every mode does after restore.
 */
#ifndef CKPT_UNIXSK_H
#define CKPT_UNIXSK_H
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <poll.h>
#include <stddef.h>

static unsigned char us_pat(size_t i, int seed) { return (unsigned char)(i * 13 + seed * 31 + 5); }

/* Write n patterned bytes (stream position from) with one write each of at most chunk bytes. */
static SUBJ_UNUSED void us_fill(int fd, size_t n, size_t from, int seed, size_t chunk)
{
	unsigned char buf[8192];
	while (n) {
		size_t k = n < chunk ? n : chunk;
		if (k > sizeof(buf)) k = sizeof(buf);
		for (size_t i = 0; i < k; i++) buf[i] = us_pat(from + i, seed);
		ssize_t w = send(fd, buf, k, MSG_NOSIGNAL);
		CHECK(w == (ssize_t)k, "send %zu: %zd %s", k, w, strerror(errno));
		n -= k;
		from += k;
	}
}

/* Read exactly n patterned bytes (a stream), waiting when the socket is non-blocking. */
static SUBJ_UNUSED void us_expect(int fd, size_t n, size_t from, int seed, const char *what)
{
	unsigned char buf[8192];
	size_t got = 0;
	while (got < n) {
		size_t k = n - got < sizeof(buf) ? n - got : sizeof(buf);
		ssize_t r = recv(fd, buf, k, 0);
		if (r < 0 && errno == EAGAIN) { usleep(1000); continue; }
		CHECK(r > 0, "%s: read after %zu of %zu bytes: %zd %s", what, got, n, r, strerror(errno));
		for (ssize_t i = 0; i < r; i++) CHECK(buf[i] == us_pat(from + got + i, seed), "%s: byte %zu differs", what, got + i);
		got += r;
	}
}

/* Nothing more to read now (EAGAIN on a non-blocking read). */
static SUBJ_UNUSED void us_empty(int fd, const char *what)
{
	char c;
	ssize_t r = recv(fd, &c, 1, MSG_DONTWAIT);
	CHECK(r < 0 && errno == EAGAIN, "%s: expected an empty queue, recv gave %zd (%s)", what, r, r < 0 ? strerror(errno) : "data");
}

/* A message of n bytes numbered k (its bytes say which). */
static SUBJ_UNUSED void us_send_msg(int fd, int k, size_t n, const struct sockaddr_un *to, socklen_t tolen)
{
	unsigned char buf[70000];
	for (size_t i = 0; i < n; i++) buf[i] = us_pat(i, k);
	ssize_t w = sendto(fd, buf, n, MSG_NOSIGNAL, (const struct sockaddr *)to, to ? tolen : 0);
	CHECK(w == (ssize_t)n, "sendto message %d (%zu bytes): %zd %s", k, n, w, strerror(errno));
}

/* Receive message k of n bytes, whole (its boundary kept); the sender's name in from/fromlen if asked. */
static SUBJ_UNUSED void us_recv_msg(int fd, int k, size_t n, struct sockaddr_un *from, socklen_t *fromlen, const char *what)
{
	static unsigned char buf[140000];
	struct sockaddr_un dummy;
	socklen_t dl = sizeof(dummy);
	if (!from) { from = &dummy; fromlen = &dl; } else *fromlen = sizeof(*from);
	ssize_t r;
	for (;;) {
		r = recvfrom(fd, buf, sizeof(buf), MSG_TRUNC, (struct sockaddr *)from, fromlen);
		if (r < 0 && errno == EAGAIN) { usleep(1000); continue; }
		break;
	}
	CHECK(r == (ssize_t)n, "%s: message %d: %zd bytes (%s), expected %zu", what, k, r, r < 0 ? strerror(errno) : "", n);
	for (size_t i = 0; i < n; i++) CHECK(buf[i] == us_pat(i, k), "%s: message %d byte %zu differs", what, k, i);
}

static SUBJ_UNUSED socklen_t us_addr(struct sockaddr_un *a, const char *name, int abstract)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	size_t n = strlen(name);
	if (abstract) {
		memcpy(a->sun_path + 1, name, n);
		return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
	}
	memcpy(a->sun_path, name, n + 1);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
}

static SUBJ_UNUSED int us_socket(int type) { int s = socket(AF_UNIX, type, 0); CHECK(s >= 0, "socket: %s", strerror(errno)); return s; }

static SUBJ_UNUSED void us_bind(int s, const struct sockaddr_un *a, socklen_t l)
{
	CHECK(bind(s, (const struct sockaddr *)a, l) == 0, "bind: %s", strerror(errno));
}

/* The name of a socket (or its peer) as bytes; *len gets the address length. */
struct us_name { socklen_t len; char path[sizeof(((struct sockaddr_un *)0)->sun_path)]; };
static SUBJ_UNUSED struct us_name us_sockname(int s, int peer)
{
	struct sockaddr_un a;
	socklen_t l = sizeof(a);
	struct us_name n;
	memset(&a, 0, sizeof(a));
	memset(&n, 0, sizeof(n));
	int r = peer ? getpeername(s, (struct sockaddr *)&a, &l) : getsockname(s, (struct sockaddr *)&a, &l);
	CHECK(r == 0, "%s: %s", peer ? "getpeername" : "getsockname", strerror(errno));
	n.len = l;
	memcpy(n.path, a.sun_path, l > offsetof(struct sockaddr_un, sun_path) ? l - offsetof(struct sockaddr_un, sun_path) : 0);
	return n;
}
static SUBJ_UNUSED void us_same_name(struct us_name a, struct us_name b, const char *what)
{
	CHECK(a.len == b.len && memcmp(a.path, b.path, sizeof(a.path)) == 0,
	      "%s: name changed: %d bytes '%s%s' then %d bytes '%s%s'", what, (int)a.len, a.path[0] ? "" : "@", a.path[0] ? a.path : a.path + 1,
	      (int)b.len, b.path[0] ? "" : "@", b.path[0] ? b.path : b.path + 1);
}

static SUBJ_UNUSED int us_opt(int s, int opt)
{
	int v = 0;
	socklen_t l = sizeof(v);
	CHECK(getsockopt(s, SOL_SOCKET, opt, &v, &l) == 0, "getsockopt %d: %s", opt, strerror(errno));
	return v;
}

/* Send and receive both ways on a connected pair (one byte, then a short message). */
static SUBJ_UNUSED void us_pingpong(int a, int b, const char *what)
{
	char c = 'x', d = 0;
	CHECK(send(a, &c, 1, MSG_NOSIGNAL) == 1, "%s: send a->b: %s", what, strerror(errno));
	CHECK(recv(b, &d, 1, 0) == 1 && d == 'x', "%s: recv at b: %s", what, strerror(errno));
	c = 'y';
	CHECK(send(b, &c, 1, MSG_NOSIGNAL) == 1, "%s: send b->a: %s", what, strerror(errno));
	CHECK(recv(a, &d, 1, 0) == 1 && d == 'y', "%s: recv at a: %s", what, strerror(errno));
}

/* SO_PEERCRED of s names pid, with our uid and gid. */
static SUBJ_UNUSED void us_peercred(int s, pid_t pid, const char *what)
{
	struct ucred c;
	socklen_t l = sizeof(c);
	CHECK(getsockopt(s, SOL_SOCKET, SO_PEERCRED, &c, &l) == 0, "%s: SO_PEERCRED: %s", what, strerror(errno));
	CHECK(c.pid == pid && c.uid == geteuid() && c.gid == getegid(), "%s: SO_PEERCRED is pid %d uid %d gid %d, expected pid %d uid %d gid %d",
	      what, c.pid, c.uid, c.gid, pid, geteuid(), getegid());
}

/* Wait for SIGTERM, the subject protocol's "check now". */
static SUBJ_UNUSED void us_wait(void)
{
	while (!got_term) pause();
}

/* Wait for child k and fail unless it exited 0 (its failures are reported as exit codes). */
static SUBJ_UNUSED void us_reap(pid_t k, const char *what)
{
	int st;
	while (waitpid(k, &st, 0) < 0 && errno == EINTR) {}
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: the child failed (status 0x%x; its FAIL line is above)", what, st);
}
#endif
