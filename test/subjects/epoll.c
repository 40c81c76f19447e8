/*
 * epoll - epoll instances must come back with their interest list and what
 * the program can observe of it: which registrations report, with which
 * events and data.
 *
 *   epoll OUTFILE MODE
 *
 *   empty      an epoll instance with no registration
 *   lt         a pipe's read end, level-triggered, data buffered: reported
 *              on every wait
 *   et         edge-triggered, the data's event already collected: nothing
 *              is reported after restore until new data comes
 *   etpending  edge-triggered, data written but its event not collected:
 *              reported once after restore, then not again
 *   oneshot    EPOLLONESHOT that fired (disabled), its data still buffered:
 *              nothing reported until EPOLL_CTL_MOD re-arms it
 *   rearmed    EPOLLONESHOT that fired and was re-armed: reported once
 *   oneshotempty  EPOLLONESHOT that fired, its data read out (refused)
 *   many       several pipes and a FIFO, read and write ends, distinct
 *              events (IN, OUT, RDHUP, PRI, EXCLUSIVE, ET) and data values
 *   nested     an epoll in an epoll in an epoll (the outer at the lowest fd)
 *   closed     the registered fd closed, the file alive through a dup at
 *              another number, and another file at the old number
 *   twofd      one file registered under two fd numbers, distinct data and events
 *   shared     an epoll and its pipe shared between parent and child
 *   child      an epoll shared with a child that registered a pipe only
 *              the child holds
 *   events     other kinds of files as targets: an eventfd with a count
 *              (level-triggered), an eventfd at zero (edge-triggered), a
 *              timerfd that expired (level-triggered) and one that did not
 *   blocked    blocked in epoll_wait (no timeout) on an empty pipe: it must
 *              not see a spurious EINTR, and data written later is reported
 *
 * After SIGTERM each mode checks the interest list (/proc/self/fdinfo:
 * numbers, events and data), what epoll_wait reports, and that the
 * registrations still work (new data, re-arming, deleting).
 */
#include "subject.h"
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <sys/wait.h>

#define DATA(n) (0x1122334455660000ull + 0x##n)

/* The registrations of epoll fd `ep` (tfd, events, data), one per line, sorted. */
static void interest(int ep, char *out, size_t cap)
{
	char path[64], text[8192], lines[64][128];
	int n = 0;
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", ep);
	snap_file(path, text, sizeof(text));
	for (char *p = text; *p; ) {
		char *nl = strchr(p, '\n');
		if (!strncmp(p, "tfd:", 4) && n < 64) {
			int tfd; unsigned ev; unsigned long long data;
			CHECK(sscanf(p, "tfd: %d events: %x data: %llx", &tfd, &ev, &data) == 3, "bad fdinfo line");
			snprintf(lines[n++], 128, "tfd %d events %x data %llx", tfd, ev, data);
		}
		if (!nl) break;
		p = nl + 1;
	}
	for (int i = 0; i < n; i++)
		for (int j = i + 1; j < n; j++)
			if (strcmp(lines[i], lines[j]) > 0) { char t[128]; strcpy(t, lines[i]); strcpy(lines[i], lines[j]); strcpy(lines[j], t); }
	size_t o = 0;
	out[0] = 0;
	for (int i = 0; i < n; i++) o += snprintf(out + o, cap - o, "%s\n", lines[i]);
}

/* What epoll_wait reports now (data:events, sorted), and how many. */
static int reported(int ep, char *out, size_t cap)
{
	struct epoll_event ev[32];
	int n = epoll_wait(ep, ev, 32, 0);
	CHECK(n >= 0, "epoll_wait: %s", strerror(errno));
	for (int i = 0; i < n; i++)
		for (int j = i + 1; j < n; j++)
			if (ev[i].data.u64 > ev[j].data.u64) { struct epoll_event t = ev[i]; ev[i] = ev[j]; ev[j] = t; }
	size_t o = 0;
	out[0] = 0;
	for (int i = 0; i < n; i++) o += snprintf(out + o, cap - o, "%llx:%x ", (unsigned long long)ev[i].data.u64, ev[i].events);
	return n;
}

static void add(int ep, int fd, unsigned events, uint64_t data)
{
	struct epoll_event e = { .events = events, .data.u64 = data };
	CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) == 0, "epoll_ctl ADD %d: %s", fd, strerror(errno));
}

static void expect(int ep, const char *want, const char *when)
{
	char got[1024];
	reported(ep, got, sizeof(got));
	CHECK(!strcmp(got, want), "%s: epoll_wait reported '%s', expected '%s'", when, got, want);
}

static void put(int fd, const char *s)
{
	CHECK(write(fd, s, strlen(s)) == (ssize_t)strlen(s), "write: %s", strerror(errno));
}

int main(int argc, char **argv)
{
	subject_init(argc, argv, 2, "MODE");
	install_term_handler(0);
	signal(SIGPIPE, SIG_IGN);
	const char *mode = argv[2];
	char before[4096], after[4096], want[1024];
	int ep = -1, p[2] = { -1, -1 }, q[2] = { -1, -1 }, r[2] = { -1, -1 };
	int e1 = -1, e2 = -1, keep = -1, moved = -1;
	pid_t kid = -1;

	if (!strcmp(mode, "nested")) {
		/* outer first, so it has the lowest number: the dump meets it before the ones inside */
		ep = epoll_create1(EPOLL_CLOEXEC);
		e2 = epoll_create1(0);
		e1 = epoll_create1(0);
	} else {
		ep = epoll_create1(EPOLL_CLOEXEC);
	}
	CHECK(ep >= 0, "epoll_create1: %s", strerror(errno));
	CHECK(pipe(p) == 0 && pipe(q) == 0 && pipe(r) == 0, "pipe: %s", strerror(errno));

	if (!strcmp(mode, "empty")) {
	} else if (!strcmp(mode, "lt")) {
		add(ep, p[0], EPOLLIN, DATA(1));
		put(p[1], "hello");
		expect(ep, "1122334455660001:1 ", "before");
	} else if (!strcmp(mode, "et")) {
		add(ep, p[0], EPOLLIN | EPOLLET, DATA(2));
		put(p[1], "abc");
		expect(ep, "1122334455660002:1 ", "before");
		expect(ep, "", "before, again");
	} else if (!strcmp(mode, "etpending")) {
		add(ep, p[0], EPOLLIN | EPOLLET | EPOLLRDHUP, DATA(3));
		put(p[1], "abc");
	} else if (!strcmp(mode, "oneshot") || !strcmp(mode, "oneshotempty")) {
		add(ep, p[0], EPOLLIN | EPOLLONESHOT, DATA(4));
		put(p[1], "x");
		expect(ep, "1122334455660004:1 ", "before");
		expect(ep, "", "before, fired");
		if (!strcmp(mode, "oneshotempty")) { char c; CHECK(read(p[0], &c, 1) == 1, "read"); }
	} else if (!strcmp(mode, "rearmed")) {
		add(ep, p[0], EPOLLIN | EPOLLONESHOT, DATA(5));
		put(p[1], "x");
		expect(ep, "1122334455660005:1 ", "before");
		struct epoll_event e = { .events = EPOLLIN | EPOLLONESHOT | EPOLLET, .data.u64 = DATA(6) };
		CHECK(epoll_ctl(ep, EPOLL_CTL_MOD, p[0], &e) == 0, "MOD: %s", strerror(errno));
	} else if (!strcmp(mode, "many")) {
		/* (in the working directory, a fresh one of the harness's) */
		unlink("epoll-fifo");
		CHECK(mkfifo("epoll-fifo", 0600) == 0, "mkfifo: %s", strerror(errno));
		int f = open("epoll-fifo", O_RDWR | O_NONBLOCK);
		CHECK(f >= 0, "open fifo: %s", strerror(errno));
		add(ep, p[0], EPOLLIN | EPOLLRDHUP | EPOLLPRI, DATA(10));
		add(ep, p[1], EPOLLOUT, DATA(11));
		add(ep, q[0], EPOLLIN | EPOLLEXCLUSIVE, DATA(12));
		add(ep, q[1], EPOLLOUT | EPOLLET, 0xffffffffffffffffull);
		add(ep, r[0], EPOLLIN | EPOLLWAKEUP, 0);
		add(ep, f, EPOLLIN | EPOLLOUT, DATA(15));
		put(p[1], "data");
		close(r[1]); /* r's reader sees HUP */
		r[1] = -1;
		/* the FIFO's fd is not closed: it is a registered file (pid's fd f) */
		keep = f;
	} else if (!strcmp(mode, "nested")) {
		add(e1, p[0], EPOLLIN, DATA(21));
		add(e2, e1, EPOLLIN, DATA(22));
		add(ep, e2, EPOLLIN | EPOLLET, DATA(23));
		add(ep, q[0], EPOLLIN, DATA(24));
		put(p[1], "n");
	} else if (!strcmp(mode, "closed")) {
		add(ep, p[0], EPOLLIN, DATA(31));
		moved = fcntl(p[0], F_DUPFD, 40);
		CHECK(moved >= 40, "dup: %s", strerror(errno));
		keep = p[0];
		close(p[0]);
		/* another file at the old number */
		CHECK(dup2(q[1], keep) == keep, "dup2: %s", strerror(errno));
		p[0] = moved;
		put(p[1], "c");
	} else if (!strcmp(mode, "twofd")) {
		moved = dup(p[0]);
		add(ep, p[0], EPOLLIN, DATA(41));
		add(ep, moved, EPOLLIN | EPOLLRDHUP, DATA(42));
		put(p[1], "t");
		expect(ep, "1122334455660041:1 1122334455660042:1 ", "before");
	} else if (!strcmp(mode, "shared")) {
		add(ep, p[0], EPOLLIN, DATA(51));
		kid = fork();
		if (kid == 0) {
			while (!got_term) pause();
			char got[256];
			reported(ep, got, sizeof(got));
			if (strcmp(got, "1122334455660051:1 ")) _exit(3);
			char c;
			_exit(read(p[0], &c, 1) == 1 && c == 's' ? 0 : 4);
		}
		put(p[1], "s");
	} else if (!strcmp(mode, "blocked")) {
		add(ep, p[0], EPOLLIN, DATA(71));
	} else if (!strcmp(mode, "events")) {
		e1 = eventfd(3, EFD_NONBLOCK);
		e2 = eventfd(0, EFD_NONBLOCK);
		int t1 = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
		int t2 = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
		CHECK(e1 >= 0 && e2 >= 0 && t1 >= 0 && t2 >= 0, "eventfd/timerfd: %s", strerror(errno));
		struct itimerspec soon = { .it_value = { 0, 1000 } }, late = { .it_value = { 3600, 0 } };
		CHECK(timerfd_settime(t1, 0, &soon, NULL) == 0 && timerfd_settime(t2, 0, &late, NULL) == 0, "timerfd_settime");
		usleep(10000);
		add(ep, e1, EPOLLIN, DATA(81));
		add(ep, e2, EPOLLIN | EPOLLET, DATA(82));
		add(ep, t1, EPOLLIN, DATA(83));
		add(ep, t2, EPOLLIN, DATA(84));
		keep = t1; moved = t2;
	} else if (!strcmp(mode, "child")) {
		int sync[2];
		CHECK(pipe(sync) == 0, "pipe");
		close(p[0]); close(p[1]);
		kid = fork();
		if (kid == 0) {
			int c[2];
			CHECK(pipe(c) == 0, "pipe");
			/* at a number of its own, which the parent uses for something else */
			int hi = fcntl(c[0], F_DUPFD, 50);
			close(c[0]);
			add(ep, hi, EPOLLIN, DATA(61));
			put(c[1], "k");
			put(sync[1], "r");
			while (!got_term) pause();
			char got[256];
			reported(ep, got, sizeof(got));
			if (strcmp(got, "1122334455660061:1 ")) _exit(3);
			char ch;
			_exit(read(hi, &ch, 1) == 1 && ch == 'k' ? 0 : 4);
		}
		char ch;
		CHECK(read(sync[0], &ch, 1) == 1, "sync");
		close(sync[0]); close(sync[1]);
		CHECK(dup2(q[0], 50) == 50, "dup2");
	} else {
		fprintf(stderr, "epoll: unknown MODE '%s'\n", mode);
		return 2;
	}
	interest(ep, before, sizeof(before));
	subject_ready(NULL);
	if (!strcmp(mode, "blocked")) {
		struct epoll_event ev[4];
		int n = epoll_wait(ep, ev, 4, -1);
		CHECK(n < 0 && errno == EINTR && got_term, "epoll_wait returned %d (%s) before SIGTERM", n, n < 0 ? strerror(errno) : "events");
	}
	while (!got_term) pause();

	interest(ep, after, sizeof(after));
	compare_text("interest list", before, after);
	char link[64], target[64];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", ep);
	ssize_t ln = readlink(link, target, sizeof(target) - 1);
	target[ln > 0 ? ln : 0] = 0;
	CHECK(!strcmp(target, "anon_inode:[eventpoll]"), "fd %d is %s", ep, target);
	CHECK(fcntl(ep, F_GETFD) == FD_CLOEXEC, "the epoll fd lost its close-on-exec flag");

	if (!strcmp(mode, "empty")) {
		CHECK(before[0] == 0, "registrations: %s", before);
		expect(ep, "", "after");
		add(ep, p[0], EPOLLIN, 7);
		put(p[1], "e");
		expect(ep, "7:1 ", "after adding");
	} else if (!strcmp(mode, "lt")) {
		expect(ep, "1122334455660001:1 ", "after");
		expect(ep, "1122334455660001:1 ", "after, again (level-triggered)");
		char b[16];
		CHECK(read(p[0], b, sizeof(b)) == 5, "read");
		expect(ep, "", "after reading");
	} else if (!strcmp(mode, "et")) {
		expect(ep, "", "after (the edge was collected before)");
		put(p[1], "d");
		expect(ep, "1122334455660002:1 ", "after new data");
		expect(ep, "", "after new data, again");
	} else if (!strcmp(mode, "etpending")) {
		expect(ep, "1122334455660003:1 ", "after (pending)");
		expect(ep, "", "after, again");
		put(p[1], "d");
		expect(ep, "1122334455660003:1 ", "after new data");
	} else if (!strcmp(mode, "oneshot")) {
		expect(ep, "", "after (disabled)");
		close(p[1]);  /* a hangup must not be reported either */
		expect(ep, "", "after the writer closed (disabled)");
		struct epoll_event e = { .events = EPOLLIN | EPOLLONESHOT, .data.u64 = DATA(8) };
		CHECK(epoll_ctl(ep, EPOLL_CTL_MOD, p[0], &e) == 0, "MOD: %s", strerror(errno));
		expect(ep, "1122334455660008:11 ", "after re-arming");
		expect(ep, "", "after re-arming, fired again");
	} else if (!strcmp(mode, "oneshotempty")) {
		/* (refused at dump: the process runs on unchanged) */
		expect(ep, "", "still disabled");
	} else if (!strcmp(mode, "rearmed")) {
		expect(ep, "1122334455660006:1 ", "after (armed)");
		expect(ep, "", "after, fired");
	} else if (!strcmp(mode, "many")) {
		expect(ep, "0:10 1122334455660010:1 1122334455660011:4 1122334455660015:4 ffffffffffffffff:4 ", "after");
		expect(ep, "0:10 1122334455660010:1 1122334455660011:4 1122334455660015:4 ", "after, again (q's write end is edge-triggered)");
		close(p[1]);
		char b[16];
		CHECK(read(p[0], b, sizeof(b)) == 4, "read");
		expect(ep, "0:10 1122334455660010:10 1122334455660015:4 ", "after closing p's writer");
		put(q[1], "w");
		expect(ep, "0:10 1122334455660010:10 1122334455660012:1 1122334455660015:4 ", "after writing to q (the edge-triggered write end has no new edge)");
		struct epoll_event e;
		CHECK(epoll_ctl(ep, EPOLL_CTL_DEL, keep, &e) == 0, "DEL fifo: %s", strerror(errno));
		unlink("epoll-fifo");
	} else if (!strcmp(mode, "nested")) {
		expect(e1, "1122334455660021:1 ", "inner");
		expect(e2, "1122334455660022:1 ", "middle");
		expect(ep, "1122334455660023:1 ", "outer");
		expect(ep, "", "outer again (edge-triggered)");
		char b[4];
		CHECK(read(p[0], b, 1) == 1, "read");
		expect(e2, "", "middle after reading");
		put(p[1], "m");
		expect(ep, "1122334455660023:1 ", "outer after new data");
		put(q[1], "q");
		expect(ep, "1122334455660024:1 ", "outer after data on q");
		struct epoll_event e;
		CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, ep, &e) < 0 && errno == EINVAL, "an epoll could be added to itself");
	} else if (!strcmp(mode, "closed")) {
		expect(ep, "1122334455660031:1 ", "after");
		struct epoll_event e;
		/* fd `keep` is q's write end now: not registered */
		CHECK(epoll_ctl(ep, EPOLL_CTL_DEL, keep, &e) < 0 && errno == ENOENT, "DEL of the other file at %d: %s", keep, strerror(errno));
		/* the registration is (pipe, keep): with the pipe back at that number, it can be deleted */
		CHECK(dup2(moved, keep) == keep, "dup2");
		CHECK(epoll_ctl(ep, EPOLL_CTL_DEL, keep, &e) == 0, "DEL of (pipe, %d): %s", keep, strerror(errno));
		expect(ep, "", "after deleting");
	} else if (!strcmp(mode, "twofd")) {
		expect(ep, "1122334455660041:1 1122334455660042:1 ", "after");
		struct epoll_event e;
		CHECK(epoll_ctl(ep, EPOLL_CTL_DEL, moved, &e) == 0, "DEL %d: %s", moved, strerror(errno));
		expect(ep, "1122334455660041:1 ", "after deleting one");
	} else if (!strcmp(mode, "events")) {
		expect(ep, "1122334455660081:1 1122334455660083:1 ", "after");
		uint64_t v;
		CHECK(read(e1, &v, 8) == 8 && v == 3, "eventfd count %llu", (unsigned long long)v);
		CHECK(read(keep, &v, 8) == 8 && v == 1, "timerfd expirations %llu", (unsigned long long)v);
		expect(ep, "", "after reading");
		v = 2;
		CHECK(write(e2, &v, 8) == 8, "eventfd write");
		expect(ep, "1122334455660082:1 ", "after adding to the edge-triggered eventfd");
		expect(ep, "", "again");
	} else if (!strcmp(mode, "blocked")) {
		expect(ep, "", "after");
		put(p[1], "b");
		expect(ep, "1122334455660071:1 ", "after new data");
	} else if (!strcmp(mode, "shared") || !strcmp(mode, "child")) {
		if (!strcmp(mode, "shared")) expect(ep, "1122334455660051:1 ", "parent");
		else expect(ep, "1122334455660061:1 ", "parent");
		kill(kid, SIGTERM);
		int st;
		CHECK(waitpid(kid, &st, 0) == kid, "waitpid: %s", strerror(errno));
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child: status %x", st);
	}
	(void)want; (void)e2;
	subject_pass();
}
