/*
 * unix_pair - socketpairs (stream, datagram, seqpacket) must come back with
 * their data, boundaries, options, shutdown state and peer credentials.
 *
 *   unix_pair OUTFILE MODE
 *
 *   stream     3000 bytes queued a->b in several writes, 500 b->a
 *   dgram      datagram pair: 6 messages a->b of different sizes (one empty,
 *              one of 60000 bytes), 2 b->a; boundaries kept
 *   seqpacket  the same with SOCK_SEQPACKET
 *   empty      nothing queued either way (reads give EAGAIN)
 *   opts       SO_PASSCRED, SO_RCVBUF/SO_SNDBUF, SO_PEEK_OFF (advanced by a
 *              peek), O_NONBLOCK, SO_RCVTIMEO/SO_SNDTIMEO, SO_RCVLOWAT,
 *              SO_PRIORITY, SO_KEEPALIVE, SO_OOBINLINE: all the same after restore
 *   full       a->b filled until the socket takes no more (non-blocking)
 *   dgramfull  a datagram pair filled until the queue takes no more
 *   shutwr     a shut down for writing after 100 bytes: b reads them, then
 *              end of file; b still writes to a
 *   shutrd     a shut down for reading: a reads end of file, b's writes fail
 *              with EPIPE
 *   shutboth   a shut down both ways, with 50 bytes queued for b
 *   peerclosed 200 bytes sent a->b, then a closed: b reads them, then end of
 *              file; writes fail with EPIPE
 *   peerreset  as peerclosed, but a is closed with 10 bytes from b unread: b
 *              reads the 200 bytes, then ECONNRESET, then end of file
 *   seqreset   the same with seqpacket messages: ECONNRESET comes first
 *   seqclosed  seqpacket: 3 messages sent a->b, then a closed: b reads them,
 *              then end of file
 *   fork       a in this process, b in a child; data queued both ways; after
 *              restore more both ways
 *   creds      SO_PASSCRED on b: messages queued before the dump come with the
 *              sender's credentials; SO_PEERCRED of both ends is this pid
 *   childpair  the pair made by a child (SO_PEERCRED names the child) which
 *              hands it to this process over another pair and waits
 *   uidpair    the same, the child making it with effective uid 1000 and gid
 *              1001 (SO_PEERCRED names them), then going back to root
 *
 * After SIGTERM each mode checks itself and reports PASS or FAIL.
 */
#include "subject.h"
#include "unixsk.h"
#include <grp.h>

static int type_of(const char *m)
{
	if (!strcmp(m, "dgram") || !strcmp(m, "dgramfull") || !strcmp(m, "creds")) return SOCK_DGRAM;
	if (!strcmp(m, "seqpacket") || !strcmp(m, "seqclosed") || !strcmp(m, "seqreset")) return SOCK_SEQPACKET;
	return SOCK_STREAM;
}

static const size_t sizes[] = { 10, 0, 1, 4096, 60000, 333 };

int main(int argc, char **argv)
{
	subject_init(argc, argv, 2, "MODE");
	install_term_handler(0);
	const char *mode = argv[2];
	int sv[2];
	pid_t kid = -1, me = getpid();
	CHECK(socketpair(AF_UNIX, type_of(mode), 0, sv) == 0, "socketpair: %s", strerror(errno));
	int a = sv[0], b = sv[1];
	int sent = 0;
	struct { int passcred, rcvbuf, sndbuf, peekoff, lowat, prio; struct timeval rt, st; } before;
	int other[2] = { -1, -1 };

	if (!strcmp(mode, "stream")) {
		us_fill(a, 3000, 0, 1, 700);
		us_fill(b, 500, 0, 2, 500);
	} else if (!strcmp(mode, "dgram") || !strcmp(mode, "seqpacket")) {
		for (int i = 0; i < 6; i++) us_send_msg(a, i, sizes[i], NULL, 0);
		us_send_msg(b, 10, 5, NULL, 0);
		us_send_msg(b, 11, 7, NULL, 0);
	} else if (!strcmp(mode, "empty")) {
		/* nothing */
	} else if (!strcmp(mode, "opts")) {
		int one = 1, rb = 50000, sb = 70000, lw = 3, pr = 4;
		struct timeval rt = { 3, 250000 }, st = { 7, 0 };
		CHECK(setsockopt(a, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) == 0, "SO_PASSCRED: %s", strerror(errno));
		CHECK(setsockopt(a, SOL_SOCKET, SO_RCVBUF, &rb, sizeof(rb)) == 0, "SO_RCVBUF: %s", strerror(errno));
		CHECK(setsockopt(a, SOL_SOCKET, SO_SNDBUF, &sb, sizeof(sb)) == 0, "SO_SNDBUF: %s", strerror(errno));
		CHECK(setsockopt(a, SOL_SOCKET, SO_RCVLOWAT, &lw, sizeof(lw)) == 0, "SO_RCVLOWAT: %s", strerror(errno));
		CHECK(setsockopt(a, SOL_SOCKET, SO_PRIORITY, &pr, sizeof(pr)) == 0, "SO_PRIORITY: %s", strerror(errno));
		CHECK(setsockopt(a, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one)) == 0, "SO_KEEPALIVE: %s", strerror(errno));
		CHECK(setsockopt(b, SOL_SOCKET, SO_OOBINLINE, &one, sizeof(one)) == 0, "SO_OOBINLINE: %s", strerror(errno));
		CHECK(setsockopt(a, SOL_SOCKET, SO_RCVTIMEO, &rt, sizeof(rt)) == 0, "SO_RCVTIMEO: %s", strerror(errno));
		CHECK(setsockopt(a, SOL_SOCKET, SO_SNDTIMEO, &st, sizeof(st)) == 0, "SO_SNDTIMEO: %s", strerror(errno));
		fcntl(a, F_SETFL, O_NONBLOCK);
		/* b peeks with an offset: 10 bytes peeked of the 40 queued, the offset is at 10 */
		int zero = 0;
		CHECK(setsockopt(b, SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof(zero)) == 0, "SO_PEEK_OFF: %s", strerror(errno));
		us_fill(a, 40, 0, 3, 40);
		char buf[10];
		CHECK(recv(b, buf, 10, MSG_PEEK) == 10, "peek: %s", strerror(errno));
		before.passcred = us_opt(a, SO_PASSCRED); before.rcvbuf = us_opt(a, SO_RCVBUF); before.sndbuf = us_opt(a, SO_SNDBUF);
		before.peekoff = us_opt(b, SO_PEEK_OFF); before.lowat = us_opt(a, SO_RCVLOWAT); before.prio = us_opt(a, SO_PRIORITY);
		CHECK(before.peekoff == 10, "SO_PEEK_OFF is %d after a peek of 10", before.peekoff);
		socklen_t l = sizeof(struct timeval);
		getsockopt(a, SOL_SOCKET, SO_RCVTIMEO, &before.rt, &l);
		l = sizeof(struct timeval);
		getsockopt(a, SOL_SOCKET, SO_SNDTIMEO, &before.st, &l);
	} else if (!strcmp(mode, "full") || !strcmp(mode, "dgramfull")) {
		fcntl(a, F_SETFL, O_NONBLOCK);
		int dg = !strcmp(mode, "dgramfull");
		for (;;) {
			unsigned char buf[1000];
			for (int i = 0; i < 1000; i++) buf[i] = us_pat(sent * 1000 + i, 4);
			ssize_t w = send(a, buf, dg ? 100 + sent : 1000, 0);
			if (w < 0) { CHECK(errno == EAGAIN, "filling: %s", strerror(errno)); break; }
			CHECK(w == (dg ? 100 + sent : 1000), "a short send of %zd", w);
			sent++;
		}
		CHECK(sent > 5, "the socket took only %d sends", sent);
	} else if (!strcmp(mode, "shutwr")) {
		us_fill(a, 100, 0, 5, 100);
		CHECK(shutdown(a, SHUT_WR) == 0, "shutdown: %s", strerror(errno));
	} else if (!strcmp(mode, "shutrd")) {
		CHECK(shutdown(a, SHUT_RD) == 0, "shutdown: %s", strerror(errno));
	} else if (!strcmp(mode, "shutboth")) {
		us_fill(a, 50, 0, 6, 50);
		CHECK(shutdown(a, SHUT_RDWR) == 0, "shutdown: %s", strerror(errno));
	} else if (!strcmp(mode, "peerclosed")) {
		us_fill(a, 200, 0, 7, 64);
		close(a);
	} else if (!strcmp(mode, "seqclosed")) {
		for (int i = 0; i < 3; i++) us_send_msg(a, i, 100 + i, NULL, 0);
		close(a);
	} else if (!strcmp(mode, "peerreset")) {
		us_fill(b, 10, 0, 7, 10);
		us_fill(a, 200, 0, 7, 64);
		close(a);
	} else if (!strcmp(mode, "seqreset")) {
		us_send_msg(b, 9, 10, NULL, 0);
		for (int i = 0; i < 3; i++) us_send_msg(a, i, 100 + i, NULL, 0);
		close(a);
	} else if (!strcmp(mode, "fork")) {
		us_fill(a, 1000, 0, 8, 300);
		kid = fork();
		if (kid == 0) {
			close(a);
			us_fill(b, 2000, 0, 9, 1000);
			us_wait();
			us_expect(b, 1000, 0, 8, "child: from the parent, before");
			us_expect(b, 10, 1000, 8, "child: from the parent, after");
			us_fill(b, 20, 2000, 9, 20);
			_exit(0);
		}
		close(b);
	} else if (!strcmp(mode, "creds")) {
		int one = 1;
		CHECK(setsockopt(b, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) == 0, "SO_PASSCRED: %s", strerror(errno));
		us_send_msg(a, 1, 30, NULL, 0);
		us_send_msg(a, 2, 40, NULL, 0);
	} else if (!strcmp(mode, "childpair") || !strcmp(mode, "uidpair")) {
		close(a); close(b);
		CHECK(socketpair(AF_UNIX, SOCK_DGRAM, 0, other) == 0, "socketpair: %s", strerror(errno));
		kid = fork();
		if (kid == 0) {
			int p[2];
			if (!strcmp(mode, "uidpair")) {
				CHECK(setresgid(-1, 1001, -1) == 0 && setresuid(-1, 1000, -1) == 0, "child: setresuid: %s", strerror(errno));
			}
			CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, p) == 0, "child socketpair: %s", strerror(errno));
			if (!strcmp(mode, "uidpair")) {
				CHECK(setresuid(-1, 0, -1) == 0 && setresgid(-1, 0, -1) == 0, "child: back to root: %s", strerror(errno));
			}
			char c = 'p';
			struct iovec io = { &c, 1 };
			char ctl[CMSG_SPACE(2 * sizeof(int))];
			struct msghdr m = { .msg_iov = &io, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl) };
			struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
			cm->cmsg_level = SOL_SOCKET; cm->cmsg_type = SCM_RIGHTS; cm->cmsg_len = CMSG_LEN(2 * sizeof(int));
			memcpy(CMSG_DATA(cm), p, sizeof(p));
			CHECK(sendmsg(other[1], &m, 0) == 1, "child: sendmsg: %s", strerror(errno));
			close(p[0]); close(p[1]);
			us_wait();
			_exit(0);
		}
		char c;
		struct iovec io = { &c, 1 };
		char ctl[CMSG_SPACE(2 * sizeof(int))];
		struct msghdr m = { .msg_iov = &io, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl) };
		CHECK(recvmsg(other[0], &m, 0) == 1, "recvmsg: %s", strerror(errno));
		memcpy(sv, CMSG_DATA(CMSG_FIRSTHDR(&m)), sizeof(sv));
		a = sv[0]; b = sv[1];
		us_fill(a, 77, 0, 12, 77);
	} else {
		fprintf(stderr, "unix_pair: unknown MODE %s\n", mode);
		return 2;
	}

	subject_ready(argv[1]);
	us_wait();

	if (!strcmp(mode, "stream")) {
		us_expect(b, 3000, 0, 1, "b");
		us_expect(a, 500, 0, 2, "a");
		us_empty(a, "a"); us_empty(b, "b");
		us_fill(a, 10, 3000, 1, 10); us_expect(b, 10, 3000, 1, "b after");
		us_fill(b, 10, 500, 2, 10); us_expect(a, 10, 500, 2, "a after");
		us_peercred(a, me, "a"); us_peercred(b, me, "b");
	} else if (!strcmp(mode, "dgram") || !strcmp(mode, "seqpacket")) {
		for (int i = 0; i < 6; i++) us_recv_msg(b, i, sizes[i], NULL, NULL, "b");
		us_recv_msg(a, 10, 5, NULL, NULL, "a");
		us_recv_msg(a, 11, 7, NULL, NULL, "a");
		us_empty(a, "a"); us_empty(b, "b");
		us_pingpong(a, b, "after");
		us_peercred(a, me, "a"); us_peercred(b, me, "b");
	} else if (!strcmp(mode, "empty")) {
		us_empty(a, "a"); us_empty(b, "b");
		us_pingpong(a, b, "after");
		CHECK(us_opt(a, SO_TYPE) == SOCK_STREAM, "the type changed");
	} else if (!strcmp(mode, "opts")) {
		CHECK(us_opt(a, SO_PASSCRED) == before.passcred, "SO_PASSCRED %d, was %d", us_opt(a, SO_PASSCRED), before.passcred);
		CHECK(us_opt(a, SO_RCVBUF) == before.rcvbuf, "SO_RCVBUF %d, was %d", us_opt(a, SO_RCVBUF), before.rcvbuf);
		CHECK(us_opt(a, SO_SNDBUF) == before.sndbuf, "SO_SNDBUF %d, was %d", us_opt(a, SO_SNDBUF), before.sndbuf);
		CHECK(us_opt(b, SO_PEEK_OFF) == before.peekoff, "SO_PEEK_OFF %d, was %d", us_opt(b, SO_PEEK_OFF), before.peekoff);
		CHECK(us_opt(a, SO_RCVLOWAT) == before.lowat, "SO_RCVLOWAT %d, was %d", us_opt(a, SO_RCVLOWAT), before.lowat);
		CHECK(us_opt(a, SO_PRIORITY) == before.prio, "SO_PRIORITY %d, was %d", us_opt(a, SO_PRIORITY), before.prio);
		CHECK(us_opt(b, SO_PASSCRED) == 0, "SO_PASSCRED of b is on");
		CHECK(us_opt(a, SO_KEEPALIVE) == 1 && us_opt(b, SO_KEEPALIVE) == 0, "SO_KEEPALIVE changed");
		CHECK(us_opt(b, SO_OOBINLINE) == 1 && us_opt(a, SO_OOBINLINE) == 0, "SO_OOBINLINE changed");
		struct timeval rt, st;
		socklen_t l = sizeof(rt);
		getsockopt(a, SOL_SOCKET, SO_RCVTIMEO, &rt, &l);
		l = sizeof(st);
		getsockopt(a, SOL_SOCKET, SO_SNDTIMEO, &st, &l);
		CHECK(rt.tv_sec == before.rt.tv_sec && rt.tv_usec == before.rt.tv_usec, "SO_RCVTIMEO %ld.%06ld", (long)rt.tv_sec, (long)rt.tv_usec);
		CHECK(st.tv_sec == before.st.tv_sec && st.tv_usec == before.st.tv_usec, "SO_SNDTIMEO %ld.%06ld", (long)st.tv_sec, (long)st.tv_usec);
		CHECK(fcntl(a, F_GETFL) & O_NONBLOCK, "a lost O_NONBLOCK");
		CHECK(!(fcntl(b, F_GETFL) & O_NONBLOCK), "b got O_NONBLOCK");
		/* the next peek starts at the offset: bytes 10..19 */
		unsigned char buf[10];
		CHECK(recv(b, buf, 10, MSG_PEEK) == 10, "peek: %s", strerror(errno));
		for (int i = 0; i < 10; i++) CHECK(buf[i] == us_pat(10 + i, 3), "the peek after restore did not start at offset 10 (byte %d)", i);
		int off0 = 0;
		setsockopt(b, SOL_SOCKET, SO_PEEK_OFF, &off0, sizeof(off0));
		us_expect(b, 40, 0, 3, "b");
	} else if (!strcmp(mode, "full") || !strcmp(mode, "dgramfull")) {
		int dg = !strcmp(mode, "dgramfull");
		if (dg) {
			for (int i = 0; i < sent; i++) {
				unsigned char buf[2000];
				ssize_t r = recv(b, buf, sizeof(buf), MSG_DONTWAIT);
				CHECK(r == 100 + i, "message %d of %d: %zd bytes (%s)", i, sent, r, r < 0 ? strerror(errno) : "");
				for (int j = 0; j < r; j++) CHECK(buf[j] == us_pat(i * 1000 + j, 4), "message %d byte %d differs", i, j);
			}
		} else {
			for (int i = 0; i < sent; i++) {
				unsigned char buf[1000];
				size_t got = 0;
				while (got < 1000) {
					ssize_t r = recv(b, buf + got, 1000 - got, MSG_DONTWAIT);
					CHECK(r > 0, "chunk %d of %d: %zd (%s)", i, sent, r, r < 0 ? strerror(errno) : "eof");
					got += r;
				}
				for (int j = 0; j < 1000; j++) CHECK(buf[j] == us_pat(i * 1000 + j, 4), "chunk %d byte %d differs", i, j);
			}
		}
		us_empty(b, "b");
		us_pingpong(a, b, "after");
	} else if (!strcmp(mode, "shutwr")) {
		us_expect(b, 100, 0, 5, "b");
		char c;
		CHECK(recv(b, &c, 1, 0) == 0, "b: no end of file after the data");
		CHECK(send(a, "z", 1, MSG_NOSIGNAL) < 0 && errno == EPIPE, "a could still send");
		CHECK(send(b, "w", 1, MSG_NOSIGNAL) == 1, "b could not send: %s", strerror(errno));
		CHECK(recv(a, &c, 1, 0) == 1 && c == 'w', "a did not receive");
	} else if (!strcmp(mode, "shutrd")) {
		char c;
		CHECK(recv(a, &c, 1, MSG_DONTWAIT) == 0, "a: reading is not at end of file");
		CHECK(send(b, "z", 1, MSG_NOSIGNAL) < 0 && errno == EPIPE, "b could still send to a (%s)", strerror(errno));
		CHECK(send(a, "w", 1, MSG_NOSIGNAL) == 1, "a could not send: %s", strerror(errno));
		CHECK(recv(b, &c, 1, 0) == 1 && c == 'w', "b did not receive");
	} else if (!strcmp(mode, "shutboth")) {
		us_expect(b, 50, 0, 6, "b");
		char c;
		CHECK(recv(b, &c, 1, 0) == 0, "b: no end of file");
		CHECK(recv(a, &c, 1, MSG_DONTWAIT) == 0, "a: no end of file");
		CHECK(send(a, "z", 1, MSG_NOSIGNAL) < 0 && errno == EPIPE, "a could still send");
		CHECK(send(b, "z", 1, MSG_NOSIGNAL) < 0 && errno == EPIPE, "b could still send");
	} else if (!strcmp(mode, "peerclosed")) {
		us_expect(b, 200, 0, 7, "b");
		char c;
		CHECK(recv(b, &c, 1, 0) == 0, "b: no end of file after the data");
		CHECK(send(b, "z", 1, MSG_NOSIGNAL) < 0 && errno == EPIPE, "b could still send (%s)", strerror(errno));
	} else if (!strcmp(mode, "peerreset")) {
		us_expect(b, 200, 0, 7, "b");
		char c;
		CHECK(recv(b, &c, 1, 0) < 0 && errno == ECONNRESET, "b: no ECONNRESET after the data (%s)", strerror(errno));
		CHECK(recv(b, &c, 1, 0) == 0, "b: no end of file after the error");
	} else if (!strcmp(mode, "seqreset")) {
		char c;
		CHECK(recv(b, &c, 1, 0) < 0 && errno == ECONNRESET, "b: no ECONNRESET first (%s)", strerror(errno));
		for (int i = 0; i < 3; i++) us_recv_msg(b, i, 100 + i, NULL, NULL, "b");
		CHECK(recv(b, &c, 1, 0) == 0, "b: no end of file after the messages");
	} else if (!strcmp(mode, "seqclosed")) {
		for (int i = 0; i < 3; i++) us_recv_msg(b, i, 100 + i, NULL, NULL, "b");
		char c;
		CHECK(recv(b, &c, 1, 0) == 0, "b: no end of file after the messages");
	} else if (!strcmp(mode, "fork")) {
		us_expect(a, 2000, 0, 9, "parent: from the child, before");
		us_fill(a, 10, 1000, 8, 10);
		kill(kid, SIGTERM);
		us_expect(a, 20, 2000, 9, "parent: from the child, after");
		us_reap(kid, "fork");
	} else if (!strcmp(mode, "creds")) {
		for (int k = 1; k <= 2; k++) {
			char buf[100], ctl[CMSG_SPACE(sizeof(struct ucred))];
			struct iovec io = { buf, sizeof(buf) };
			struct msghdr m = { .msg_iov = &io, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl) };
			ssize_t r = recvmsg(b, &m, 0);
			CHECK(r == (k == 1 ? 30 : 40), "message %d: %zd bytes", k, r);
			struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
			CHECK(cm && cm->cmsg_type == SCM_CREDENTIALS, "message %d without credentials", k);
			struct ucred u;
			memcpy(&u, CMSG_DATA(cm), sizeof(u));
			CHECK(u.pid == me && u.uid == geteuid() && u.gid == getegid(), "message %d: credentials pid %d uid %d gid %d", k, u.pid, u.uid, u.gid);
		}
		us_peercred(a, me, "a"); us_peercred(b, me, "b");
		us_pingpong(a, b, "after");
	} else if (!strcmp(mode, "uidpair")) {
		us_expect(b, 77, 0, 12, "b");
		for (int i = 0; i < 2; i++) {
			struct ucred c;
			socklen_t l = sizeof(c);
			CHECK(getsockopt(sv[i], SOL_SOCKET, SO_PEERCRED, &c, &l) == 0, "SO_PEERCRED: %s", strerror(errno));
			CHECK(c.pid == kid && c.uid == 1000 && c.gid == 1001, "end %d: SO_PEERCRED is pid %d uid %d gid %d, expected pid %d uid 1000 gid 1001", i, c.pid, c.uid, c.gid, kid);
		}
		us_pingpong(a, b, "after");
		kill(kid, SIGTERM);
		us_reap(kid, "uidpair");
	} else if (!strcmp(mode, "childpair")) {
		us_expect(b, 77, 0, 12, "b");
		us_peercred(a, kid, "a"); us_peercred(b, kid, "b");
		us_pingpong(a, b, "after");
		kill(kid, SIGTERM);
		us_reap(kid, "childpair");
	}
	subject_pass();
}
