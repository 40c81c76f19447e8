/*
 * unix_rights - files in flight (SCM_RIGHTS in a unix socket's queue) come
 * back as the same objects.
 *
 *   unix_rights OUTFILE MODE
 *
 *   pipe       the read end of a pipe with 100 bytes in it, in flight a->b and
 *              closed here; the write end kept: after restore b receives the
 *              read end, reads the data, and what is written afterwards
 *   file       a file at offset 6, in flight and closed here: received, it
 *              reads from offset 6
 *   socket     one end of another socketpair, in flight and closed here: the
 *              received end talks with the other end both ways
 *   self       b's own fd in b's queue: received, it is b (same inode, and a
 *              flag set on one shows on the other)
 *   same       a pipe's read end in flight twice, and held here too: all
 *              three are one description
 *   dgram      a datagram pair: 3 messages, the second with 2 fds (both ends
 *              of a pipe): boundaries kept, the fds work
 *   nested     a socket in flight, closed here, whose own queue holds data
 *              and a pipe in flight: everything comes back
 *   creds      a stream pair with SO_PASSCRED on b: a message with a fd and
 *              the sender's credentials
 *
 * After SIGTERM each mode checks itself and reports PASS or FAIL.
 */
#include "subject.h"
#include "unixsk.h"

static void send_fds(int s, const int *fds, int n, char tag)
{
	struct iovec io = { &tag, 1 };
	char ctl[CMSG_SPACE(8 * sizeof(int))];
	struct msghdr m = { .msg_iov = &io, .msg_iovlen = 1, .msg_control = n ? ctl : NULL, .msg_controllen = n ? CMSG_SPACE(n * sizeof(int)) : 0 };
	if (n) {
		struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
		cm->cmsg_level = SOL_SOCKET; cm->cmsg_type = SCM_RIGHTS; cm->cmsg_len = CMSG_LEN(n * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, n * sizeof(int));
	}
	CHECK(sendmsg(s, &m, MSG_NOSIGNAL) == 1, "sendmsg: %s", strerror(errno));
}

/* Receive one message of 1 byte (tag) with exactly n fds. */
static void recv_fds(int s, int *fds, int n, char tag, const char *what)
{
	char c = 0;
	struct iovec io = { &c, 1 };
	char ctl[CMSG_SPACE(8 * sizeof(int)) + CMSG_SPACE(sizeof(struct ucred))];
	struct msghdr m = { .msg_iov = &io, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl) };
	ssize_t r = recvmsg(s, &m, MSG_DONTWAIT);
	CHECK(r == 1 && c == tag, "%s: recvmsg gave %zd (%s), tag %c for %c", what, r, r < 0 ? strerror(errno) : "", c, tag);
	int got = 0;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&m); cm; cm = CMSG_NXTHDR(&m, cm)) {
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
			got = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			memcpy(fds, CMSG_DATA(cm), got * sizeof(int));
		}
	}
	CHECK(got == n && !(m.msg_flags & MSG_CTRUNC), "%s: %d fds received, expected %d", what, got, n);
}

static void same_desc(int x, int y, const char *what)
{
	struct stat a, b;
	CHECK(fstat(x, &a) == 0 && fstat(y, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev, "%s: not the same object", what);
	int fl = fcntl(x, F_GETFL);
	fcntl(x, F_SETFL, fl ^ O_NONBLOCK);
	CHECK((fcntl(y, F_GETFL) & O_NONBLOCK) == ((fl ^ O_NONBLOCK) & O_NONBLOCK), "%s: not the same open file description", what);
	fcntl(x, F_SETFL, fl);
}

int main(int argc, char **argv)
{
	subject_init(argc, argv, 2, "MODE");
	install_term_handler(0);
	const char *mode = argv[2];
	int sv[2], p[2] = { -1, -1 }, q[2] = { -1, -1 }, o[2] = { -1, -1 };
	int dg = !strcmp(mode, "dgram");
	CHECK(socketpair(AF_UNIX, dg ? SOCK_DGRAM : SOCK_STREAM, 0, sv) == 0, "socketpair: %s", strerror(errno));
	int a = sv[0], b = sv[1], one = 1;
	char cwd[1024], path[1100];
	CHECK(getcwd(cwd, sizeof(cwd)), "getcwd: %s", strerror(errno));
	snprintf(path, sizeof(path), "%s/data.txt", cwd);

	if (!strcmp(mode, "pipe")) {
		CHECK(pipe(p) == 0, "pipe");
		CHECK(write(p[1], "0123456789", 10) == 10, "write");
		send_fds(a, &p[0], 1, 'p');
		close(p[0]);
	} else if (!strcmp(mode, "file")) {
		int f = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
		CHECK(f >= 0 && write(f, "hello world", 11) == 11, "file: %s", strerror(errno));
		lseek(f, 6, SEEK_SET);
		send_fds(a, &f, 1, 'f');
		close(f);
	} else if (!strcmp(mode, "socket") || !strcmp(mode, "nested")) {
		CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, o) == 0, "socketpair");
		if (!strcmp(mode, "nested")) {
			us_fill(o[1], 50, 0, 3, 50);
			CHECK(pipe(p) == 0, "pipe");
			CHECK(write(p[1], "abc", 3) == 3, "write");
			send_fds(o[1], &p[0], 1, 'n');
			close(p[0]); close(p[1]); p[0] = p[1] = -1;
		}
		send_fds(a, &o[0], 1, 's');
		close(o[0]);
	} else if (!strcmp(mode, "self")) {
		send_fds(a, &b, 1, 'b');
	} else if (!strcmp(mode, "same")) {
		CHECK(pipe(p) == 0, "pipe");
		send_fds(a, &p[0], 1, '1');
		send_fds(a, &p[0], 1, '2');
	} else if (!strcmp(mode, "dgram")) {
		CHECK(pipe(p) == 0, "pipe");
		send_fds(a, NULL, 0, 'x');
		send_fds(a, p, 2, 'y');
		send_fds(a, NULL, 0, 'z');
		close(p[0]); close(p[1]);
	} else if (!strcmp(mode, "creds")) {
		CHECK(setsockopt(b, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) == 0, "SO_PASSCRED");
		CHECK(pipe(q) == 0, "pipe");
		send_fds(a, &q[1], 1, 'c');
		close(q[1]);
	} else {
		fprintf(stderr, "unix_rights: unknown MODE %s\n", mode);
		return 2;
	}

	subject_ready(argv[1]);
	us_wait();

	int r[2];
	char buf[64];
	if (!strcmp(mode, "pipe")) {
		recv_fds(b, r, 1, 'p', "b");
		CHECK(read(r[0], buf, 10) == 10 && !memcmp(buf, "0123456789", 10), "the pipe's data");
		CHECK(write(p[1], "xy", 2) == 2, "write after");
		CHECK(read(r[0], buf, 2) == 2 && !memcmp(buf, "xy", 2), "the pipe after restore");
	} else if (!strcmp(mode, "file")) {
		recv_fds(b, r, 1, 'f', "b");
		memset(buf, 0, sizeof(buf));
		CHECK(read(r[0], buf, 10) == 5 && !memcmp(buf, "world", 5), "the file read '%s' (not from offset 6)", buf);
	} else if (!strcmp(mode, "socket")) {
		recv_fds(b, r, 1, 's', "b");
		us_pingpong(r[0], o[1], "the socket in flight");
	} else if (!strcmp(mode, "nested")) {
		recv_fds(b, r, 1, 's', "b");
		us_expect(r[0], 50, 0, 3, "the socket in flight");
		int n[1];
		recv_fds(r[0], n, 1, 'n', "the socket in flight");
		CHECK(read(n[0], buf, 3) == 3 && !memcmp(buf, "abc", 3), "the nested pipe's data");
		us_pingpong(r[0], o[1], "the socket in flight");
	} else if (!strcmp(mode, "self")) {
		recv_fds(b, r, 1, 'b', "b");
		same_desc(r[0], b, "b and the fd it received");
		us_pingpong(a, r[0], "through the received b");
	} else if (!strcmp(mode, "same")) {
		int r2[1];
		recv_fds(b, r, 1, '1', "b");
		recv_fds(b, r2, 1, '2', "b");
		same_desc(r[0], r2[0], "the two fds in flight");
		same_desc(r[0], p[0], "an fd in flight and the fd held");
		CHECK(write(p[1], "q", 1) == 1 && read(r2[0], buf, 1) == 1 && buf[0] == 'q', "the pipe through the received fd");
	} else if (!strcmp(mode, "dgram")) {
		recv_fds(b, r, 0, 'x', "message 1");
		recv_fds(b, r, 2, 'y', "message 2");
		recv_fds(b, r, 0, 'z', "message 3");
		CHECK(write(r[1], "k", 1) == 1 && read(r[0], buf, 1) == 1 && buf[0] == 'k', "the pipe received");
	} else if (!strcmp(mode, "creds")) {
		char c = 0, ctl[CMSG_SPACE(sizeof(int)) + CMSG_SPACE(sizeof(struct ucred))];
		struct iovec io = { &c, 1 };
		struct msghdr m = { .msg_iov = &io, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl) };
		CHECK(recvmsg(b, &m, 0) == 1 && c == 'c', "recvmsg: %s", strerror(errno));
		int fd = -1, gotcred = 0;
		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&m); cm; cm = CMSG_NXTHDR(&m, cm)) {
			if (cm->cmsg_type == SCM_RIGHTS) memcpy(&fd, CMSG_DATA(cm), sizeof(int));
			if (cm->cmsg_type == SCM_CREDENTIALS) {
				struct ucred u;
				memcpy(&u, CMSG_DATA(cm), sizeof(u));
				CHECK(u.pid == getpid(), "credentials of pid %d", u.pid);
				gotcred = 1;
			}
		}
		CHECK(fd >= 0 && gotcred, "fd %d, credentials %d", fd, gotcred);
		CHECK(write(fd, "w", 1) == 1 && read(q[0], buf, 1) == 1 && buf[0] == 'w', "the pipe's write end received");
	}
	subject_pass();
}
