/*
 * unix_listen - listening unix sockets, their names and backlog, the
 * connections waiting to be accepted, and connections already accepted.
 *
 *   unix_listen OUTFILE MODE
 *
 *   listen     a stream listener bound to a path, backlog 7, nothing waiting:
 *              after restore its name and SO_ACCEPTCONN are the same, the file
 *              is there (mode 0600 as set), a new client connects and is
 *              accepted, and they talk both ways
 *   backlog    three clients wait in the listener's queue (not accepted); the
 *              second is bound to an abstract name, the third to a path; after
 *              restore they are accepted in their order, each end names the
 *              other as before, and each pair talks both ways
 *   seqbacklog the same with SOCK_SEQPACKET
 *   accepted   a client connected and accepted, with data queued both ways;
 *              names (getsockname/getpeername) of both ends, SO_PEERCRED of
 *              both ends (this pid), then more data both ways
 *   abstract   the same with a listener bound to an abstract name
 *   clientbound the client bound to a path of its own before connecting
 *   child      the listener and the accepted end here, the client in a child
 *              (SO_PEERCRED of the accepted end names the child)
 *   deleted    a listener whose path was unlinked, with one accepted
 *              connection: after restore the path is still absent, the name
 *              is the same, the connection works
 *   srvclosed  the accepted end closed after sending 300 bytes (having read
 *              what the client sent): the client reads them, then end of
 *              file; its peer name is the listener's
 *   srvreset   the same, but the accepted end is closed with the client's data
 *              unread: the client reads the 1200 bytes, then ECONNRESET, then
 *              end of file
 *   relative   the listener bound to the relative name "rel.sock", with one
 *              connection accepted and one waiting from a client bound to the
 *              relative name "relc.sock": the names stay relative, the files
 *              are in the working directory, a new client connects by the
 *              relative name
 *   pendingdata a client waiting in the queue has already sent data (ckpt
 *              refuses this case: it cannot read it without accepting)
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
	char cwd[1024], path[1200], cpath[1200], abs[64];
	CHECK(getcwd(cwd, sizeof(cwd)), "getcwd: %s", strerror(errno));
	snprintf(path, sizeof(path), "%s/listen.sock", cwd);
	snprintf(cpath, sizeof(cpath), "%s/client.sock", cwd);
	snprintf(abs, sizeof(abs), "ckpt-test-%d", (int)me);
	int type = !strcmp(mode, "seqbacklog") ? SOCK_SEQPACKET : SOCK_STREAM;
	struct sockaddr_un la, ca, aa;
	int abstract = !strcmp(mode, "abstract"), relative = !strcmp(mode, "relative");
	socklen_t ll = us_addr(&la, abstract ? abs : relative ? "rel.sock" : path, abstract);
	socklen_t cl = us_addr(&ca, relative ? "relc.sock" : cpath, 0);
	char an[80];
	snprintf(an, sizeof(an), "%s-c2", abs);
	socklen_t al = us_addr(&aa, an, 1);
	int l = us_socket(type);
	us_bind(l, &la, ll);
	if (!strcmp(mode, "listen")) chmod(path, 0600);
	CHECK(listen(l, 7) == 0, "listen: %s", strerror(errno));
	struct us_name lname = us_sockname(l, 0);
	int c[3] = { -1, -1, -1 }, s = -1;
	struct us_name cn[3], cpeer[3];
	int sp[2];

	if (!strcmp(mode, "listen")) {
		/* nothing waiting */
	} else if (!strcmp(mode, "backlog") || !strcmp(mode, "seqbacklog") || !strcmp(mode, "pendingdata")) {
		for (int i = 0; i < 3; i++) {
			c[i] = us_socket(type);
			if (i == 1) us_bind(c[i], &aa, al);
			if (i == 2) us_bind(c[i], &ca, cl);
			CHECK(connect(c[i], (struct sockaddr *)&la, ll) == 0, "connect %d: %s", i, strerror(errno));
			cn[i] = us_sockname(c[i], 0);
			cpeer[i] = us_sockname(c[i], 1);
		}
		if (!strcmp(mode, "pendingdata")) us_fill(c[1], 10, 0, 1, 10);
	} else if (!strcmp(mode, "accepted") || !strcmp(mode, "abstract") || !strcmp(mode, "clientbound") || !strcmp(mode, "deleted") || !strcmp(mode, "srvclosed") || !strcmp(mode, "srvreset")) {
		c[0] = us_socket(type);
		if (!strcmp(mode, "clientbound")) us_bind(c[0], &ca, cl);
		CHECK(connect(c[0], (struct sockaddr *)&la, ll) == 0, "connect: %s", strerror(errno));
		s = accept(l, NULL, NULL);
		CHECK(s >= 0, "accept: %s", strerror(errno));
		us_fill(c[0], 1500, 0, 2, 400);
		us_fill(s, 900, 0, 3, 900);
		cn[0] = us_sockname(c[0], 0);
		cpeer[0] = us_sockname(c[0], 1);
		if (!strcmp(mode, "deleted")) CHECK(unlink(path) == 0, "unlink: %s", strerror(errno));
		if (!strcmp(mode, "srvclosed")) us_expect(s, 1500, 0, 2, "server, before closing");
		if (!strcmp(mode, "srvclosed") || !strcmp(mode, "srvreset")) { us_fill(s, 300, 900, 3, 300); close(s); s = -1; }
	} else if (relative) {
		c[0] = us_socket(type);
		CHECK(connect(c[0], (struct sockaddr *)&la, ll) == 0, "connect: %s", strerror(errno));
		s = accept(l, NULL, NULL);
		CHECK(s >= 0, "accept: %s", strerror(errno));
		us_fill(c[0], 100, 0, 2, 100);
		c[1] = us_socket(type);
		us_bind(c[1], &ca, cl);
		CHECK(connect(c[1], (struct sockaddr *)&la, ll) == 0, "connect 2: %s", strerror(errno));
		cn[0] = us_sockname(c[0], 0); cpeer[0] = us_sockname(c[0], 1);
		cn[1] = us_sockname(c[1], 0); cpeer[1] = us_sockname(c[1], 1);
	} else if (!strcmp(mode, "child")) {
		CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == 0, "socketpair: %s", strerror(errno));
		kid = fork();
		if (kid == 0) {
			close(l); close(sp[0]);
			int k = us_socket(SOCK_STREAM);
			CHECK(connect(k, (struct sockaddr *)&la, ll) == 0, "child connect: %s", strerror(errno));
			us_fill(k, 100, 0, 4, 100);
			CHECK(write(sp[1], "c", 1) == 1, "child: write");
			us_wait();
			us_expect(k, 50, 0, 5, "child: from the server");
			us_peercred(k, getppid(), "child");
			us_fill(k, 10, 100, 4, 10);
			_exit(0);
		}
		close(sp[1]);
		char x;
		CHECK(read(sp[0], &x, 1) == 1, "waiting for the child");
		s = accept(l, NULL, NULL);
		CHECK(s >= 0, "accept: %s", strerror(errno));
		us_fill(s, 50, 0, 5, 50);
	} else {
		fprintf(stderr, "unix_listen: unknown MODE %s\n", mode);
		return 2;
	}
	struct us_name sname = s >= 0 ? us_sockname(s, 0) : lname, speer = s >= 0 ? us_sockname(s, 1) : lname;

	subject_ready(argv[1]);
	us_wait();

	us_same_name(lname, us_sockname(l, 0), "the listener");
	CHECK(us_opt(l, SO_ACCEPTCONN) == 1, "the listener is not listening");
	CHECK(us_opt(l, SO_TYPE) == type, "the listener's type changed");
	if (!strcmp(mode, "listen")) {
		struct stat st;
		CHECK(stat(path, &st) == 0 && S_ISSOCK(st.st_mode), "the socket file %s is not there", path);
		CHECK((st.st_mode & 0777) == 0600, "the socket file has mode %o", st.st_mode & 0777);
		us_peercred(l, me, "listener");
		fcntl(l, F_SETFL, O_NONBLOCK);
		CHECK(accept(l, NULL, NULL) < 0 && errno == EAGAIN, "something was waiting in the queue");
		fcntl(l, F_SETFL, 0);
		int k = us_socket(SOCK_STREAM);
		CHECK(connect(k, (struct sockaddr *)&la, ll) == 0, "connect after restore: %s", strerror(errno));
		int a = accept(l, NULL, NULL);
		CHECK(a >= 0, "accept after restore: %s", strerror(errno));
		us_pingpong(k, a, "new connection");
		us_peercred(k, me, "new client");
	} else if (!strcmp(mode, "backlog") || !strcmp(mode, "seqbacklog")) {
		for (int i = 0; i < 3; i++) {
			us_same_name(cn[i], us_sockname(c[i], 0), "a client's name");
			us_same_name(cpeer[i], us_sockname(c[i], 1), "a client's peer name");
		}
		fcntl(l, F_SETFL, O_NONBLOCK);
		for (int i = 0; i < 3; i++) {
			int a = accept(l, NULL, NULL);
			CHECK(a >= 0, "accept %d: %s", i, strerror(errno));
			us_same_name(cn[i], us_sockname(a, 1), "the accepted end's peer (the order of the queue)");
			us_same_name(lname, us_sockname(a, 0), "the accepted end's name");
			us_pingpong(c[i], a, "a connection from the queue");
			us_peercred(c[i], me, "a client");
			us_peercred(a, me, "an accepted end");
		}
		CHECK(accept(l, NULL, NULL) < 0 && errno == EAGAIN, "a fourth connection was waiting");
	} else if (!strcmp(mode, "accepted") || !strcmp(mode, "abstract") || !strcmp(mode, "clientbound") || !strcmp(mode, "deleted")) {
		us_same_name(cn[0], us_sockname(c[0], 0), "the client's name");
		us_same_name(cpeer[0], us_sockname(c[0], 1), "the client's peer name");
		us_same_name(sname, us_sockname(s, 0), "the accepted end's name");
		us_same_name(speer, us_sockname(s, 1), "the accepted end's peer name");
		us_expect(s, 1500, 0, 2, "server");
		us_expect(c[0], 900, 0, 3, "client");
		us_peercred(c[0], me, "client");
		us_peercred(s, me, "server");
		us_pingpong(c[0], s, "after");
		if (!strcmp(mode, "deleted")) {
			CHECK(access(path, F_OK) != 0, "the deleted path %s is back", path);
			int k = us_socket(SOCK_STREAM);
			CHECK(connect(k, (struct sockaddr *)&la, ll) < 0, "a connect to the deleted path worked");
		}
		if (!strcmp(mode, "clientbound")) CHECK(access(cpath, F_OK) == 0, "the client's socket file is not there");
	} else if (relative) {
		CHECK(lname.len == offsetof(struct sockaddr_un, sun_path) + 9 && !strcmp(lname.path, "rel.sock"), "the listener's name is not the relative rel.sock");
		for (int i = 0; i < 2; i++) {
			us_same_name(cn[i], us_sockname(c[i], 0), "a client's name");
			us_same_name(cpeer[i], us_sockname(c[i], 1), "a client's peer name");
		}
		us_same_name(sname, us_sockname(s, 0), "the accepted end's name");
		us_expect(s, 100, 0, 2, "server");
		us_pingpong(c[0], s, "the accepted connection");
		struct stat st;
		CHECK(stat("rel.sock", &st) == 0 && S_ISSOCK(st.st_mode), "rel.sock is not in the working directory");
		CHECK(stat("relc.sock", &st) == 0 && S_ISSOCK(st.st_mode), "relc.sock is not in the working directory");
		int a = accept(l, NULL, NULL);
		CHECK(a >= 0, "accept of the waiting one: %s", strerror(errno));
		us_same_name(cn[1], us_sockname(a, 1), "the waiting client's name seen by the server");
		us_pingpong(c[1], a, "the waiting connection");
		int k = us_socket(SOCK_STREAM);
		CHECK(connect(k, (struct sockaddr *)&la, ll) == 0, "connect by the relative name after restore: %s", strerror(errno));
	} else if (!strcmp(mode, "srvclosed") || !strcmp(mode, "srvreset")) {
		us_expect(c[0], 900, 0, 3, "client");
		us_expect(c[0], 300, 900, 3, "client");
		char x;
		if (!strcmp(mode, "srvreset")) CHECK(recv(c[0], &x, 1, 0) < 0 && errno == ECONNRESET, "the client: no ECONNRESET after the data (%s)", strerror(errno));
		CHECK(recv(c[0], &x, 1, 0) == 0, "the client: no end of file");
		us_same_name(cpeer[0], us_sockname(c[0], 1), "the client's peer name");
		CHECK(send(c[0], "z", 1, MSG_NOSIGNAL) < 0 && errno == EPIPE, "the client could still send");
	} else if (!strcmp(mode, "child")) {
		us_expect(s, 100, 0, 4, "server");
		us_peercred(s, kid, "server");
		kill(kid, SIGTERM);
		us_expect(s, 10, 100, 4, "server after");
		us_reap(kid, "child");
	}
	subject_pass();
}
