/*
 * unix_dgram - datagram sockets with names: messages from several senders
 * keep their sender's name, sockets connected by name, a socket connected to
 * itself, autobound names, credentials, deleted paths.
 *
 *   unix_dgram OUTFILE MODE
 *
 *   senders    a server bound to a path gets messages from three senders (one
 *              bound to a path, one to an abstract name, one unnamed),
 *              interleaved; after restore each comes with its sender's name,
 *              in order, and the server answers the named senders
 *   abstract   the same with the server bound to an abstract name
 *   self       a socket bound to an abstract name and connected to itself,
 *              with 3 messages to itself queued; getpeername is its own name
 *   connected  a client connected to the server's path, messages queued at the
 *              server; after restore the client sends without an address and
 *              the server gets them from the client's name
 *   autobind   a socket autobound (bind with only the family), another sends
 *              to it; the autobound name is the same after restore and takes
 *              messages
 *   creds      SO_PASSCRED on the server: the queued messages come with the
 *              credentials of their sender (this process and a child)
 *   deleted    the server's path unlinked after a client connected to it, with
 *              messages queued: the path stays absent, the name is the same,
 *              the client still sends to it
 *   gone       a message from a sender that was closed since (bound to a path
 *              that was unlinked): it comes with that name
 *   empty      a bound server with nothing queued (reads give EAGAIN)
 *   extserver PATH  (for --ext-unix-sk) a server bound to PATH: on SIGTERM it
 *              checks it got messages 1, 2 (before) and 3 (after restore)
 *              from the client's name
 *   extclient PATH  a client bound to PATH.client, connected to the server at
 *              PATH, which sent messages 1 and 2; on SIGTERM it sends 3
 *
 * After SIGTERM each mode checks itself and reports PASS or FAIL.
 */
#include "subject.h"
#include "unixsk.h"

int main(int argc, char **argv)
{
	subject_init(argc, argv, 2, "MODE");
	install_term_handler(0);
	const char *mode = argv[2];
	pid_t me = getpid(), kid = -1;
	char cwd[1024], spath[1200], p1[1200], a2[64], sabs[64];
	CHECK(getcwd(cwd, sizeof(cwd)), "getcwd: %s", strerror(errno));
	snprintf(spath, sizeof(spath), "%s/server.sock", cwd);
	snprintf(p1, sizeof(p1), "%s/sender1.sock", cwd);
	snprintf(a2, sizeof(a2), "ckpt-dgram-%d-s2", (int)me);
	snprintf(sabs, sizeof(sabs), "ckpt-dgram-%d-srv", (int)me);
	struct sockaddr_un sa, a1, aa2;
	int sabstract = !strcmp(mode, "abstract") || !strcmp(mode, "self");
	socklen_t sl = us_addr(&sa, sabstract ? sabs : spath, sabstract);
	socklen_t l1 = us_addr(&a1, p1, 0);
	socklen_t l2 = us_addr(&aa2, a2, 1);
	int srv = us_socket(SOCK_DGRAM);
	int s1 = -1, s2 = -1, s3 = -1;
	struct us_name n1 = { 0 }, n2 = { 0 }, n3 = { 0 }, nsrv;
	struct sockaddr_un from;
	socklen_t fl;
	int one = 1;

	if (!strcmp(mode, "extserver") || !strcmp(mode, "extclient")) {
		CHECK(argc > 3, "%s needs a PATH", mode);
		char cp[1200];
		snprintf(cp, sizeof(cp), "%s.client", argv[3]);
		struct sockaddr_un ea, eca;
		socklen_t el = us_addr(&ea, argv[3], 0), ecl = us_addr(&eca, cp, 0);
		if (!strcmp(mode, "extserver")) {
			us_bind(srv, &ea, el);
			subject_ready(argv[1]);
			us_wait();
			for (int k = 1; k <= 3; k++) {
				us_recv_msg(srv, k, 10 * k, &from, &fl, "the server outside");
				CHECK(fl > 2 && !strcmp(from.sun_path, cp), "message %d from '%s', not the client", k, from.sun_path);
			}
			us_empty(srv, "the server outside");
			subject_pass();
		}
		us_bind(srv, &eca, ecl);
		CHECK(connect(srv, (struct sockaddr *)&ea, el) == 0, "connect to the server outside: %s", strerror(errno));
		us_send_msg(srv, 1, 10, NULL, 0);
		us_send_msg(srv, 2, 20, NULL, 0);
		struct us_name peer = us_sockname(srv, 1);
		subject_ready(argv[1]);
		us_wait();
		us_same_name(peer, us_sockname(srv, 1), "the client's peer");
		us_send_msg(srv, 3, 30, NULL, 0);
		subject_pass();
	}
	if (!strcmp(mode, "autobind")) {
		struct sockaddr_un fam = { .sun_family = AF_UNIX };
		CHECK(bind(srv, (struct sockaddr *)&fam, sizeof(sa_family_t)) == 0, "autobind: %s", strerror(errno));
	} else {
		us_bind(srv, &sa, sl);
	}
	nsrv = us_sockname(srv, 0);
	if (!strcmp(mode, "creds")) CHECK(setsockopt(srv, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) == 0, "SO_PASSCRED: %s", strerror(errno));

	if (!strcmp(mode, "senders") || !strcmp(mode, "abstract")) {
		s1 = us_socket(SOCK_DGRAM); us_bind(s1, &a1, l1);
		s2 = us_socket(SOCK_DGRAM); us_bind(s2, &aa2, l2);
		s3 = us_socket(SOCK_DGRAM);
		for (int k = 0; k < 6; k++) us_send_msg(k % 3 == 0 ? s1 : k % 3 == 1 ? s2 : s3, k, 20 + k * 7, &sa, sl);
		n1 = us_sockname(s1, 0); n2 = us_sockname(s2, 0); n3 = us_sockname(s3, 0);
	} else if (!strcmp(mode, "self")) {
		CHECK(connect(srv, (struct sockaddr *)&sa, sl) == 0, "connect to itself: %s", strerror(errno));
		for (int k = 0; k < 3; k++) us_send_msg(srv, k, 10 + k, NULL, 0);
	} else if (!strcmp(mode, "connected") || !strcmp(mode, "deleted")) {
		s1 = us_socket(SOCK_DGRAM); us_bind(s1, &a1, l1);
		CHECK(connect(s1, (struct sockaddr *)&sa, sl) == 0, "connect: %s", strerror(errno));
		for (int k = 0; k < 3; k++) us_send_msg(s1, k, 100 + k, NULL, 0);
		n1 = us_sockname(s1, 0);
		if (!strcmp(mode, "deleted")) CHECK(unlink(spath) == 0, "unlink: %s", strerror(errno));
	} else if (!strcmp(mode, "autobind")) {
		s1 = us_socket(SOCK_DGRAM);
		struct sockaddr_un to;
		memcpy(&to, &sa, sizeof(to));
		memset(&to, 0, sizeof(to));
		to.sun_family = AF_UNIX;
		memcpy(to.sun_path, nsrv.path, nsrv.len - offsetof(struct sockaddr_un, sun_path));
		us_send_msg(s1, 1, 50, &to, nsrv.len);
	} else if (!strcmp(mode, "creds")) {
		s1 = us_socket(SOCK_DGRAM);
		us_send_msg(s1, 1, 30, &sa, sl);
		int p[2];
		CHECK(pipe(p) == 0, "pipe");
		kid = fork();
		if (kid == 0) {
			int k = us_socket(SOCK_DGRAM);
			us_send_msg(k, 2, 40, &sa, sl);
			CHECK(write(p[1], "s", 1) == 1, "child: write");
			us_wait();
			_exit(0);
		}
		/* the child's message is queued before READY */
		char b;
		CHECK(read(p[0], &b, 1) == 1, "waiting for the child");
		close(p[0]); close(p[1]);
	} else if (!strcmp(mode, "gone")) {
		s1 = us_socket(SOCK_DGRAM); us_bind(s1, &a1, l1);
		us_send_msg(s1, 7, 70, &sa, sl);
		n1 = us_sockname(s1, 0);
		close(s1); s1 = -1;
		unlink(p1);
	} else if (!strcmp(mode, "empty")) {
	} else {
		fprintf(stderr, "unix_dgram: unknown MODE %s\n", mode);
		return 2;
	}

	subject_ready(argv[1]);
	us_wait();

	us_same_name(nsrv, us_sockname(srv, 0), "the server");
	if (!strcmp(mode, "senders") || !strcmp(mode, "abstract")) {
		for (int k = 0; k < 6; k++) {
			us_recv_msg(srv, k, 20 + k * 7, &from, &fl, "server");
			struct us_name want = k % 3 == 0 ? n1 : k % 3 == 1 ? n2 : n3, got = { fl, { 0 } };
			if (k % 3 == 2) want.len = 0; /* (an unnamed sender: no address at all) */
			memcpy(got.path, from.sun_path, fl > offsetof(struct sockaddr_un, sun_path) ? fl - offsetof(struct sockaddr_un, sun_path) : 0);
			us_same_name(want, got, "a sender's name");
		}
		us_empty(srv, "server");
		us_send_msg(srv, 20, 5, &a1, l1);
		us_recv_msg(s1, 20, 5, NULL, NULL, "sender 1");
		us_send_msg(srv, 21, 6, &aa2, l2);
		us_recv_msg(s2, 21, 6, NULL, NULL, "sender 2");
		us_same_name(n1, us_sockname(s1, 0), "sender 1");
		us_same_name(n2, us_sockname(s2, 0), "sender 2");
	} else if (!strcmp(mode, "self")) {
		for (int k = 0; k < 3; k++) us_recv_msg(srv, k, 10 + k, NULL, NULL, "self");
		us_empty(srv, "self");
		us_same_name(nsrv, us_sockname(srv, 1), "its peer (itself)");
		us_send_msg(srv, 5, 9, NULL, 0);
		us_recv_msg(srv, 5, 9, NULL, NULL, "self after");
	} else if (!strcmp(mode, "connected") || !strcmp(mode, "deleted")) {
		for (int k = 0; k < 3; k++) {
			us_recv_msg(srv, k, 100 + k, &from, &fl, "server");
			struct us_name got = { fl, { 0 } };
			memcpy(got.path, from.sun_path, fl - offsetof(struct sockaddr_un, sun_path));
			us_same_name(n1, got, "the client's name");
		}
		us_same_name(nsrv, us_sockname(s1, 1), "the client's peer");
		us_send_msg(s1, 9, 33, NULL, 0);
		us_recv_msg(srv, 9, 33, NULL, NULL, "server after");
		if (!strcmp(mode, "deleted")) CHECK(access(spath, F_OK) != 0, "the deleted path is back");
		else CHECK(access(spath, F_OK) == 0, "the server's path is gone");
	} else if (!strcmp(mode, "autobind")) {
		us_recv_msg(srv, 1, 50, NULL, NULL, "autobound");
		CHECK(nsrv.len == offsetof(struct sockaddr_un, sun_path) + 6 && nsrv.path[0] == 0, "not an autobound name (%d bytes)", (int)nsrv.len);
		struct sockaddr_un to;
		memset(&to, 0, sizeof(to));
		to.sun_family = AF_UNIX;
		memcpy(to.sun_path, nsrv.path, 6);
		us_send_msg(s1, 2, 8, &to, nsrv.len);
		us_recv_msg(srv, 2, 8, NULL, NULL, "autobound after");
	} else if (!strcmp(mode, "creds")) {
		for (int k = 1; k <= 2; k++) {
			char buf[100], ctl[CMSG_SPACE(sizeof(struct ucred))];
			struct iovec io = { buf, sizeof(buf) };
			struct msghdr m = { .msg_iov = &io, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl) };
			ssize_t r = recvmsg(srv, &m, 0);
			CHECK(r == (k == 1 ? 30 : 40), "message %d: %zd bytes", k, r);
			struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
			CHECK(cm && cm->cmsg_type == SCM_CREDENTIALS, "message %d without credentials", k);
			struct ucred u;
			memcpy(&u, CMSG_DATA(cm), sizeof(u));
			pid_t want = k == 1 ? me : kid;
			CHECK(u.pid == want && u.uid == geteuid() && u.gid == getegid(), "message %d: credentials pid %d uid %d gid %d, expected pid %d", k, u.pid, u.uid, u.gid, want);
		}
		kill(kid, SIGTERM);
		us_reap(kid, "creds");
	} else if (!strcmp(mode, "gone")) {
		us_recv_msg(srv, 7, 70, &from, &fl, "server");
		struct us_name got = { fl, { 0 } };
		memcpy(got.path, from.sun_path, fl - offsetof(struct sockaddr_un, sun_path));
		us_same_name(n1, got, "the closed sender's name");
		CHECK(access(p1, F_OK) != 0, "the closed sender's path is back");
	} else if (!strcmp(mode, "empty")) {
		us_empty(srv, "server");
	}
	subject_pass();
}
