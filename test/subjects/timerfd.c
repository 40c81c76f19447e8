/*
 * timerfd - timerfds come back with their clock, setting and expirations.
 *
 *   timerfd OUTFILE MODE
 *
 *   oneshot   MONOTONIC, relative, 1.5 s left: after restore it has at most
 *             1.5 s left and fires once within 3 s
 *   soon      MONOTONIC, relative, 30 ms: about to fire at dump; after
 *             restore one expiration is read within 2 s
 *   fired     one-shot that fired and was not read: after restore a
 *             non-blocking read gives 1 at once, then EAGAIN; disarmed
 *   periodic  MONOTONIC every 100 ms, fired about 3 times unread: after
 *             restore the first read gives at least 3 (and no more than the
 *             periods that passed), the next read 1 within 1 s, period kept
 *   abs       REALTIME absolute (TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET),
 *             one-shot 2 s ahead: after restore it fires once, never before
 *             its time
 *   absperiodic REALTIME absolute, first expiry 100 ms ahead, every 200 ms,
 *             never read: after restore a read gives every expiration since
 *             the first (those while checkpointed too)
 *   monoabs   MONOTONIC absolute one-shot 1 s ahead
 *   shared    MONOTONIC one-shot, 1.5 s, shared with a child blocked in read():
 *             after restore the child reads the expiration, and then the
 *             parent finds none left (one timer, not two)
 *   cancelfired REALTIME absolute with TFD_TIMER_CANCEL_ON_SET that fired
 *             and was not read (the dump is refused): a read gives 1
 *   disarmed  disarmed timers with a period set: MONOTONIC and BOOTTIME_ALARM;
 *             after restore still disarmed, period kept, reads give EAGAIN
 *   clocks    one armed timer on each clock (REALTIME, MONOTONIC, BOOTTIME,
 *             REALTIME_ALARM, BOOTTIME_ALARM): each keeps its clock (fdinfo)
 *             and fires within 3 s
 *
 * Every mode also checks the settime flags and the clock in fdinfo.
 */
#include "subject.h"
#include <poll.h>
#include <sys/timerfd.h>
#include <sys/wait.h>

#define MS 1000000ll
#define NS 1000000000ll

static int64_t ts_ns(struct timespec t) { return (int64_t)t.tv_sec * NS + t.tv_nsec; }
static struct timespec ns_ts(int64_t v) { struct timespec t = { v / NS, v % NS }; return t; }
static int64_t now_ns(clockid_t c) { struct timespec t; clock_gettime(c, &t); return ts_ns(t); }

static int mk(clockid_t c, int flags, int sflags, int64_t value, int64_t interval)
{
	int fd = timerfd_create(c, flags);
	CHECK(fd >= 0, "timerfd_create(%d): %s", c, strerror(errno));
	struct itimerspec its = { ns_ts(interval), ns_ts(value) };
	CHECK(timerfd_settime(fd, sflags, &its, NULL) == 0, "timerfd_settime: %s", strerror(errno));
	return fd;
}

/* The "clockid" and "settime flags" lines of fdinfo. */
static void info(int fd, char *out, size_t n)
{
	char path[64], text[1024], a[128], b[128];
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	snap_file(path, text, sizeof(text));
	status_line(text, "clockid", a, sizeof(a));
	status_line(text, "settime flags", b, sizeof(b));
	snprintf(out, n, "%s; %s", a, b);
}

static struct itimerspec get(int fd)
{
	struct itimerspec its;
	CHECK(timerfd_gettime(fd, &its) == 0, "timerfd_gettime: %s", strerror(errno));
	return its;
}

/* Wait up to `ms` for the timer to be readable, then read it (0 if it did not fire). */
static uint64_t wait_read(int fd, int ms)
{
	struct pollfd p = { fd, POLLIN, 0 };
	int64_t end = mono_ns() + ms * MS;
	for (;;) {
		int left = (int)((end - mono_ns()) / MS);
		if (left < 0) left = 0;
		int r = poll(&p, 1, left);
		if (r < 0 && errno == EINTR) continue;
		if (r <= 0) return 0;
		uint64_t v;
		CHECK(read(fd, &v, 8) == 8, "read: %s", strerror(errno));
		return v;
	}
}

static uint64_t read_nb(int fd, int *err)
{
	uint64_t v = 0;
	int fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	*err = read(fd, &v, 8) == 8 ? 0 : errno;
	fcntl(fd, F_SETFL, fl);
	return v;
}

int main(int argc, char **argv)
{
	subject_init(argc, argv, 2, "MODE");
	install_term_handler(0);
	const char *mode = argv[2];
	int fds[5], n = 0, err;
	char before[5][256], after[256];
	int64_t t0 = 0, first = 0;
	pid_t kid = -1;
	uint64_t v;
	static const clockid_t clocks[5] = { CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_BOOTTIME, CLOCK_REALTIME_ALARM, CLOCK_BOOTTIME_ALARM };

	if (!strcmp(mode, "oneshot")) {
		fds[n++] = mk(CLOCK_MONOTONIC, 0, 0, 1500 * MS, 0);
	} else if (!strcmp(mode, "soon")) {
		fds[n++] = mk(CLOCK_MONOTONIC, TFD_NONBLOCK, 0, 30 * MS, 0);
	} else if (!strcmp(mode, "fired")) {
		fds[n++] = mk(CLOCK_MONOTONIC, TFD_CLOEXEC, 0, 1 * MS, 0);
		struct pollfd p = { fds[0], POLLIN, 0 };
		CHECK(poll(&p, 1, 2000) == 1, "the timer did not fire");
	} else if (!strcmp(mode, "periodic")) {
		t0 = mono_ns();
		fds[n++] = mk(CLOCK_MONOTONIC, 0, 0, 100 * MS, 100 * MS);
		usleep(350000);
	} else if (!strcmp(mode, "abs")) {
		first = now_ns(CLOCK_REALTIME) + 2000 * MS;
		fds[n++] = mk(CLOCK_REALTIME, 0, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, first, 0);
	} else if (!strcmp(mode, "absperiodic")) {
		first = now_ns(CLOCK_REALTIME) + 100 * MS;
		fds[n++] = mk(CLOCK_REALTIME, 0, TFD_TIMER_ABSTIME, first, 200 * MS);
	} else if (!strcmp(mode, "monoabs")) {
		first = now_ns(CLOCK_MONOTONIC) + 1000 * MS;
		fds[n++] = mk(CLOCK_MONOTONIC, 0, TFD_TIMER_ABSTIME, first, 0);
	} else if (!strcmp(mode, "shared")) {
		fds[n++] = mk(CLOCK_MONOTONIC, 0, 0, 1500 * MS, 0);
		kid = fork();
		if (kid == 0) {
			ssize_t r;
			do r = read(fds[0], &v, 8); while (r < 0 && errno == EINTR);
			_exit(r == 8 && v == 1 ? 0 : 3);
		}
	} else if (!strcmp(mode, "cancelfired")) {
		fds[n++] = mk(CLOCK_REALTIME, 0, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, now_ns(CLOCK_REALTIME) + 1 * MS, 0);
		struct pollfd p = { fds[0], POLLIN, 0 };
		CHECK(poll(&p, 1, 2000) == 1, "the timer did not fire");
	} else if (!strcmp(mode, "disarmed")) {
		fds[n++] = mk(CLOCK_MONOTONIC, TFD_NONBLOCK, 0, 0, 1 * NS);
		fds[n++] = mk(CLOCK_BOOTTIME_ALARM, 0, 0, 0, 0);
	} else if (!strcmp(mode, "clocks")) {
		for (int i = 0; i < 5; i++) {
			int abs = clocks[i] == CLOCK_REALTIME_ALARM;
			fds[n++] = mk(clocks[i], 0, abs ? TFD_TIMER_ABSTIME : 0, (abs ? now_ns(CLOCK_REALTIME) : 0) + (500 + 200 * i) * MS, 0);
		}
	} else {
		fprintf(stderr, "timerfd: unknown MODE '%s'\n", mode);
		return 2;
	}
	for (int i = 0; i < n; i++) info(fds[i], before[i], sizeof(before[i]));
	subject_ready(NULL);
	while (!got_term) pause();

	for (int i = 0; i < n; i++) {
		info(fds[i], after, sizeof(after));
		CHECK(!strcmp(before[i], after), "timer %d: fdinfo was '%s', now '%s'", i, before[i], after);
	}
	if (!strcmp(mode, "oneshot")) {
		struct itimerspec g = get(fds[0]);
		CHECK(ts_ns(g.it_interval) == 0, "got a period");
		CHECK(ts_ns(g.it_value) <= 1500 * MS, "%lld ns left, more than the 1.5 s it was armed with", (long long)ts_ns(g.it_value));
		v = wait_read(fds[0], 3000);
		CHECK(v == 1, "read %llu expirations within 3 s, expected 1", (unsigned long long)v);
	} else if (!strcmp(mode, "soon")) {
		CHECK(fcntl(fds[0], F_GETFL) & O_NONBLOCK, "O_NONBLOCK lost");
		v = wait_read(fds[0], 2000);
		CHECK(v == 1, "read %llu expirations within 2 s, expected 1", (unsigned long long)v);
	} else if (!strcmp(mode, "fired")) {
		CHECK(fcntl(fds[0], F_GETFD) & FD_CLOEXEC, "FD_CLOEXEC lost");
		v = read_nb(fds[0], &err);
		CHECK(!err && v == 1, "read %llu (%s), expected 1 at once", (unsigned long long)v, strerror(err));
		v = read_nb(fds[0], &err);
		CHECK(err == EAGAIN, "a second read: %llu (%s)", (unsigned long long)v, strerror(err));
		CHECK(ts_ns(get(fds[0]).it_value) == 0, "armed again");
	} else if (!strcmp(mode, "periodic")) {
		int64_t passed = mono_ns() - t0;
		v = read_nb(fds[0], &err);
		CHECK(!err && v >= 3 && (int64_t)v <= passed / (100 * MS), "read %llu (%s), expected 3 to %lld",
		      (unsigned long long)v, strerror(err), (long long)(passed / (100 * MS)));
		struct itimerspec g = get(fds[0]);
		CHECK(ts_ns(g.it_interval) == 100 * MS, "period %lld ns", (long long)ts_ns(g.it_interval));
		CHECK(ts_ns(g.it_value) > 0 && ts_ns(g.it_value) <= 100 * MS, "%lld ns to the next expiry", (long long)ts_ns(g.it_value));
		v = wait_read(fds[0], 1000);
		CHECK(v >= 1 && v <= 2, "next read %llu", (unsigned long long)v);
	} else if (!strcmp(mode, "abs") || !strcmp(mode, "monoabs")) {
		clockid_t c = !strcmp(mode, "abs") ? CLOCK_REALTIME : CLOCK_MONOTONIC;
		v = wait_read(fds[0], 4000);
		int64_t at = now_ns(c);
		CHECK(v == 1, "read %llu expirations within 4 s, expected 1", (unsigned long long)v);
		CHECK(at >= first, "fired %lld ns before its time", (long long)(first - at));
		CHECK(ts_ns(get(fds[0]).it_value) == 0, "armed again");
	} else if (!strcmp(mode, "absperiodic")) {
		int64_t a = now_ns(CLOCK_REALTIME);
		v = read_nb(fds[0], &err);
		int64_t b = now_ns(CLOCK_REALTIME);
		/* the expirations at or before a time t: 0 before `first`, then one per 200 ms */
		int64_t lo = a - 5 * MS < first ? 0 : (a - 5 * MS - first) / (200 * MS) + 1;
		int64_t hi = b < first ? 0 : (b - first) / (200 * MS) + 1;
		CHECK(!err && (int64_t)v >= lo && (int64_t)v <= hi, "read %llu (%s), expected %lld to %lld (every expiration since the first)",
		      (unsigned long long)v, strerror(err), (long long)lo, (long long)hi);
		v = wait_read(fds[0], 1000);
		CHECK(v >= 1 && v <= 2, "next read %llu", (unsigned long long)v);
	} else if (!strcmp(mode, "shared")) {
		int st;
		CHECK(waitpid(kid, &st, 0) == kid, "waitpid: %s", strerror(errno));
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child did not read one expiration (status %#x)", st);
		v = read_nb(fds[0], &err);
		CHECK(err == EAGAIN, "the parent read %llu after the child (%s): not one shared timer", (unsigned long long)v, strerror(err));
	} else if (!strcmp(mode, "cancelfired")) {
		v = read_nb(fds[0], &err);
		CHECK(!err && v == 1, "read %llu (%s), expected 1", (unsigned long long)v, strerror(err));
	} else if (!strcmp(mode, "disarmed")) {
		struct itimerspec g = get(fds[0]);
		CHECK(ts_ns(g.it_value) == 0 && ts_ns(g.it_interval) == NS, "timer 0: value %lld, period %lld", (long long)ts_ns(g.it_value), (long long)ts_ns(g.it_interval));
		CHECK(fcntl(fds[0], F_GETFL) & O_NONBLOCK, "O_NONBLOCK lost");
		g = get(fds[1]);
		CHECK(ts_ns(g.it_value) == 0 && ts_ns(g.it_interval) == 0, "timer 1 armed");
		for (int i = 0; i < 2; i++) {
			v = read_nb(fds[i], &err);
			CHECK(err == EAGAIN, "timer %d: read %llu (%s)", i, (unsigned long long)v, strerror(err));
		}
	} else if (!strcmp(mode, "clocks")) {
		for (int i = 0; i < 5; i++) {
			v = wait_read(fds[i], 3000);
			CHECK(v == 1, "timer on clock %d: read %llu within 3 s", clocks[i], (unsigned long long)v);
		}
	}
	subject_pass();
}
