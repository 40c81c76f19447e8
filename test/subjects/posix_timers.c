/*
 * posix_timers - POSIX timers (timer_create) across a checkpoint.
 *
 *   posix_timers OUTFILE MODE
 *
 * Timers are made with the raw syscalls (kernel timer ids). Every mode
 * saves /proc/self/timers at READY and checks after restore that it reads
 * the same (ids, signals, values, notify targets, clocks).
 *
 *   basic      sparse ids (1, 3, 5, 6, 7, 8; 0, 2, 4 deleted) on REALTIME, MONOTONIC,
 *              BOOTTIME, PROCESS_CPUTIME and THREAD_CPUTIME, SIGEV_NONE and
 *              SIGEV_SIGNAL, armed, periodic, disarmed, a sigevent of NULL
 *              (SIGALRM, value = id); the deleted ids stay unknown
 *   fire       a one-shot SIGUSR1 timer that expires 2 s after READY (the
 *              test keeps the image longer than that before restoring): it
 *              fires once after restore, with its value and timer id
 *   periodic   a 20 ms periodic SIGRTMIN+1 timer with a SA_SIGINFO handler:
 *              it goes on firing after restore, with its value
 *   pending    SIGUSR2 blocked, a 50 ms periodic timer whose signal is
 *              pending at READY: after restore exactly one is pending (not
 *              lost, not doubled), the periods missed meanwhile are counted
 *              as its overruns, and the timer goes on once it is taken
 *   pending_rt the same with SIGRTMIN+2 (RT signals would queue twice)
 *   threadid   SIGEV_THREAD_ID: a 20 ms timer that signals a second thread,
 *              which takes its signals with sigwaitinfo; it goes on after restore
 *   cputime    a second thread creates a CLOCK_THREAD_CPUTIME_ID timer (its
 *              own CPU time) and a process CPU-time timer; after restore the
 *              thread burns 100 ms of CPU and its timer's time left must
 *              shrink by that much (it measures that thread, not another)
 *   glibc      glibc's timer_create with SIGEV_THREAD (a helper thread that
 *              waits for the kernel timer's signal and runs the callback),
 *              20 ms period: the callback goes on being called after restore
 *   childcpu   a timer on the CPU clock of a child process (clock_getcpuclockid):
 *              after restore it still measures that child (the child burns
 *              100 ms of CPU and the timer's time left shrinks by that much)
 *   ambiguous  a second thread creates a CLOCK_THREAD_CPUTIME_ID timer and
 *              leaves it disarmed: which thread it measures cannot be told,
 *              so the dump is refused; the process runs on unchanged
 *   stale      a one-shot SIGUSR2 timer fires while SIGUSR2 is blocked, then is
 *              set again (10 s): the kernel drops the queued signal when it
 *              comes, so after restore none may arrive
 *   overrun    a 10 ms periodic SIGUSR1 timer left blocked for 300 ms, then its
 *              signal taken (timer_getoverrun is about 29) and SIGUSR1 ignored:
 *              timer_getoverrun reports the same count after restore
 */
#include "subject.h"
#include <pthread.h>
#include <sys/syscall.h>
#include <sys/wait.h>

static const char *mode;
static pid_t child;
static int cpipe[2];
static char timers_before[8192];

static int tcreate(clockid_t clock, struct sigevent *ev)
{
	int id = -1;

	if (syscall(SYS_timer_create, clock, ev, &id) != 0)
		subject_fail("timer_create(clock %d): %s", (int)clock, strerror(errno));
	return id;
}

static void tset(int id, long long value_ns, long long interval_ns)
{
	struct itimerspec it = {
		.it_value = { value_ns / 1000000000LL, value_ns % 1000000000LL },
		.it_interval = { interval_ns / 1000000000LL, interval_ns % 1000000000LL },
	};

	if (syscall(SYS_timer_settime, id, 0, &it, NULL) != 0)
		subject_fail("timer_settime(%d): %s", id, strerror(errno));
}

static int tget(int id, struct itimerspec *it)
{
	return (int)syscall(SYS_timer_gettime, id, it);
}

static long long ns_of(const struct timespec *t) { return t->tv_sec * 1000000000LL + t->tv_nsec; }

static struct sigevent sev(int notify, int signo, long value)
{
	struct sigevent e;

	memset(&e, 0, sizeof(e));
	e.sigev_notify = notify;
	e.sigev_signo = signo;
	e.sigev_value.sival_ptr = (void *)value;
	return e;
}

/* Sleep ms milliseconds, signals or not (until SIGTERM before READY). */
static void wait_ms(int ms)
{
	struct timespec end, now;

	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += ms / 1000;
	end.tv_nsec += (long)(ms % 1000) * 1000000;
	if (end.tv_nsec >= 1000000000L) { end.tv_sec++; end.tv_nsec -= 1000000000L; }
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec > end.tv_sec || (now.tv_sec == end.tv_sec && now.tv_nsec >= end.tv_nsec))
			return;
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &end, NULL);
	}
}

static void check_timers_file(void)
{
	static char now[8192];

	snap_file("/proc/self/timers", now, sizeof(now));
	CHECK(strcmp(now, timers_before) == 0, "/proc/self/timers changed: before [%s] after [%s]", timers_before, now);
}

/* ---- signal bookkeeping ---- */
static volatile int hits, bad_hits, last_overrun;
static volatile long last_value;
static volatile int last_timerid;

static void on_info(int sig, siginfo_t *si, void *uc)
{
	(void)sig; (void)uc;
	if (si->si_code != SI_TIMER) { bad_hits++; return; }
	hits++;
	last_value = (long)si->si_value.sival_ptr;
	last_timerid = si->si_timerid;
	last_overrun = si->si_overrun;
}

static void handle(int sig)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_info;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(sig, &sa, NULL);
}

/* ---- threads ---- */
static volatile pid_t thread_tid;
static volatile int thread_hits, thread_bad;
static volatile int cpu_timer = -1;
static volatile int phase; /* cputime: 1 = the thread is to burn CPU, 2 = it did */
static volatile long long burned_before, burned_after;

static volatile int callbacks;
static void on_callback(union sigval v)
{
	if (v.sival_int == 0x6c)
		callbacks++;
}

static void *sigwait_thread(void *arg)
{
	sigset_t set;
	siginfo_t si;

	(void)arg;
	thread_tid = (pid_t)syscall(SYS_gettid);
	sigemptyset(&set);
	sigaddset(&set, SIGRTMIN + 3);
	for (;;) {
		if (sigwaitinfo(&set, &si) < 0)
			continue;
		if (si.si_code == SI_TIMER && (long)si.si_value.sival_ptr == 0x7e57)
			thread_hits++;
		else
			thread_bad++;
	}
	return NULL;
}

static void *cpu_thread(void *arg)
{
	struct sigevent e = sev(SIGEV_NONE, 0, 0);
	struct itimerspec a, b;

	thread_tid = (pid_t)syscall(SYS_gettid);
	cpu_timer = tcreate(CLOCK_THREAD_CPUTIME_ID, &e);
	if (arg)
		for (;;)
			wait_ms(1000); /* (ambiguous: left disarmed) */
	tset(cpu_timer, 100LL * 1000000000LL, 0); /* 100 s of this thread's CPU time */
	while (phase != 1)
		wait_ms(5);
	if (tget(cpu_timer, &a) != 0)
		subject_fail("timer_gettime(thread cpu): %s", strerror(errno));
	{
		struct timespec t0, t1;

		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
		do clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1); while (ns_of(&t1) - ns_of(&t0) < 100000000LL);
	}
	if (tget(cpu_timer, &b) != 0)
		subject_fail("timer_gettime(thread cpu): %s", strerror(errno));
	burned_before = ns_of(&a.it_value);
	burned_after = ns_of(&b.it_value);
	phase = 2;
	for (;;)
		wait_ms(1000);
	return NULL;
}

int main(int argc, char **argv)
{
	int ids[16];
	pthread_t th;
	sigset_t set;

	if (argc < 3) {
		fprintf(stderr, "usage: %s OUTFILE MODE\n", argv[0]);
		return 2;
	}
	mode = argv[2];
	subject_outfile = argv[1];
	install_term_handler(0);

	if (strcmp(mode, "basic") == 0) {
		struct sigevent e;
		/* ids 0..4, then 0, 2, 4 deleted */
		for (int i = 0; i < 5; i++) {
			e = sev(SIGEV_NONE, 0, 0);
			ids[i] = tcreate(CLOCK_MONOTONIC, &e);
		}
		CHECK(ids[0] == 0 && ids[4] == 4, "timer ids start at %d, not 0", ids[0]);
		syscall(SYS_timer_delete, 0); syscall(SYS_timer_delete, 2); syscall(SYS_timer_delete, 4);
		tset(1, 3600LL * 1000000000LL, 0);                   /* 1: MONOTONIC, one-shot, armed */
		e = sev(SIGEV_SIGNAL, SIGUSR1, 0x1234567890abcdefL);
		ids[5] = tcreate(CLOCK_REALTIME, &e);                 /* REALTIME, periodic */
		tset(ids[5], 7200LL * 1000000000LL, 1800LL * 1000000000LL);
		e = sev(SIGEV_SIGNAL, SIGRTMIN + 5, 42);
		ids[6] = tcreate(CLOCK_BOOTTIME, &e);                 /* BOOTTIME, disarmed */
		e = sev(SIGEV_NONE, 0, 0);
		ids[7] = tcreate(CLOCK_PROCESS_CPUTIME_ID, &e);       /* process CPU time, armed */
		tset(ids[7], 500LL * 1000000000LL, 250LL * 1000000000LL);
		ids[8] = tcreate(CLOCK_THREAD_CPUTIME_ID, &e);        /* thread CPU time, armed */
		tset(ids[8], 400LL * 1000000000LL, 0);
		ids[9] = tcreate(CLOCK_MONOTONIC, NULL);              /* NULL sigevent: SIGALRM with value = id */
		CHECK(ids[5] == 5 && ids[9] == 9, "ids %d..%d, not 5..9", ids[5], ids[9]);

	} else if (strcmp(mode, "fire") == 0) {
		struct sigevent e = sev(SIGEV_SIGNAL, SIGUSR1, 0xf1e);
		handle(SIGUSR1);
		ids[0] = tcreate(CLOCK_MONOTONIC, &e);
		tset(ids[0], 2000000000LL, 0);
	} else if (strcmp(mode, "periodic") == 0) {
		struct sigevent e = sev(SIGEV_SIGNAL, SIGRTMIN + 1, 0xbeef);
		handle(SIGRTMIN + 1);
		ids[0] = tcreate(CLOCK_MONOTONIC, &e);
		tset(ids[0], 20000000LL, 20000000LL);
	} else if (strcmp(mode, "pending") == 0 || strcmp(mode, "pending_rt") == 0) {
		int sig = strcmp(mode, "pending") == 0 ? SIGUSR2 : SIGRTMIN + 2;
		struct sigevent e = sev(SIGEV_SIGNAL, sig, 0x9e9d);
		sigemptyset(&set);
		sigaddset(&set, sig);
		sigprocmask(SIG_BLOCK, &set, NULL);
		ids[0] = tcreate(CLOCK_MONOTONIC, &e);
		tset(ids[0], 50000000LL, 50000000LL);
		wait_ms(300);
	} else if (strcmp(mode, "threadid") == 0) {
		struct sigevent e;
		sigemptyset(&set);
		sigaddset(&set, SIGRTMIN + 3);
		sigprocmask(SIG_BLOCK, &set, NULL); /* (inherited by the thread, which waits for it) */
		pthread_create(&th, NULL, sigwait_thread, NULL);
		while (!thread_tid)
			wait_ms(1);
		e = sev(SIGEV_SIGNAL | SIGEV_THREAD_ID, SIGRTMIN + 3, 0x7e57);
		e._sigev_un._tid = thread_tid;
		ids[0] = tcreate(CLOCK_MONOTONIC, &e);
		tset(ids[0], 20000000LL, 20000000LL);
		while (thread_hits < 3)
			wait_ms(5);
	} else if (strcmp(mode, "cputime") == 0) {
		struct sigevent e = sev(SIGEV_NONE, 0, 0);
		ids[0] = tcreate(CLOCK_PROCESS_CPUTIME_ID, &e);
		tset(ids[0], 300LL * 1000000000LL, 0);
		pthread_create(&th, NULL, cpu_thread, NULL);
		while (cpu_timer < 0)
			wait_ms(1);
	} else if (strcmp(mode, "ambiguous") == 0) {
		pthread_create(&th, NULL, cpu_thread, (void *)1L);
		while (cpu_timer < 0)
			wait_ms(1);
	} else if (strcmp(mode, "stale") == 0) {
		struct sigevent e = sev(SIGEV_SIGNAL, SIGUSR2, 0x57a1e);
		sigset_t pend;
		handle(SIGUSR2);
		sigemptyset(&set);
		sigaddset(&set, SIGUSR2);
		sigprocmask(SIG_BLOCK, &set, NULL);
		ids[0] = tcreate(CLOCK_MONOTONIC, &e);
		tset(ids[0], 1000000LL, 0);
		wait_ms(50);
		sigpending(&pend);
		CHECK(sigismember(&pend, SIGUSR2), "the timer's signal is not pending");
		tset(ids[0], 10LL * 1000000000LL, 0);
	} else if (strcmp(mode, "glibc") == 0) {
		struct sigevent e;
		struct itimerspec it = { { 0, 20000000 }, { 0, 20000000 } };
		timer_t t;
		memset(&e, 0, sizeof(e));
		e.sigev_notify = SIGEV_THREAD;
		e.sigev_notify_function = on_callback;
		e.sigev_value.sival_int = 0x6c;
		CHECK(timer_create(CLOCK_MONOTONIC, &e, &t) == 0, "timer_create(SIGEV_THREAD): %s", strerror(errno));
		CHECK(timer_settime(t, 0, &it, NULL) == 0, "timer_settime: %s", strerror(errno));
		while (callbacks < 3)
			wait_ms(5);
	} else if (strcmp(mode, "childcpu") == 0) {
		struct sigevent e = sev(SIGEV_NONE, 0, 0);
		clockid_t cc;
		CHECK(pipe(cpipe) == 0, "pipe: %s", strerror(errno));
		child = fork();
		if (child == 0) {
			char c;
			struct timespec t0, t1;
			while (read(cpipe[0], &c, 1) != 1)
				;
			clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
			do clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1); while (ns_of(&t1) - ns_of(&t0) < 100000000LL);
			_exit(0);
		}
		CHECK(clock_getcpuclockid(child, &cc) == 0, "clock_getcpuclockid: %s", strerror(errno));
		ids[0] = tcreate(cc, &e);
		tset(ids[0], 100LL * 1000000000LL, 0);
	} else if (strcmp(mode, "overrun") == 0) {
		struct sigevent e = sev(SIGEV_SIGNAL, SIGUSR1, 0x0e);
		siginfo_t si;
		struct timespec zero = { 0, 0 };
		struct sigaction ign;

		sigemptyset(&set);
		sigaddset(&set, SIGUSR1);
		sigprocmask(SIG_BLOCK, &set, NULL);
		ids[0] = tcreate(CLOCK_MONOTONIC, &e);
		tset(ids[0], 10000000LL, 10000000LL);
		wait_ms(300);
		CHECK(sigtimedwait(&set, &si, &zero) == SIGUSR1, "the timer's signal is not pending");
		memset(&ign, 0, sizeof(ign));
		ign.sa_handler = SIG_IGN;
		sigaction(SIGUSR1, &ign, NULL); /* (drops a signal queued meanwhile) */
		sigprocmask(SIG_UNBLOCK, &set, NULL);
		last_overrun = (int)syscall(SYS_timer_getoverrun, ids[0]);
		CHECK(last_overrun > 5, "timer_getoverrun is only %d", last_overrun);
	} else {
		subject_fail("unknown mode %s", mode);
	}
	snap_file("/proc/self/timers", timers_before, sizeof(timers_before));
	int overrun_before = last_overrun;
	subject_ready(argv[1]);

	while (!got_term)
		wait_ms(50);

	check_timers_file();
	if (strcmp(mode, "basic") == 0) {
		struct itimerspec it;
		for (int i = 0; i < 5; i += 2)
			CHECK(tget(i, &it) != 0 && errno == EINVAL, "deleted timer %d exists after restore", i);
		CHECK(tget(1, &it) == 0 && it.it_value.tv_sec > 3000 && it.it_value.tv_sec < 3600 && ns_of(&it.it_interval) == 0, "timer 1: %ld s left, interval %lld", (long)it.it_value.tv_sec, ns_of(&it.it_interval));
		CHECK(tget(5, &it) == 0 && it.it_value.tv_sec > 7000 && it.it_value.tv_sec < 7200 && it.it_interval.tv_sec == 1800 && it.it_interval.tv_nsec == 0, "timer 5: %ld s left, interval %ld", (long)it.it_value.tv_sec, (long)it.it_interval.tv_sec);
		CHECK(tget(6, &it) == 0 && ns_of(&it.it_value) == 0 && ns_of(&it.it_interval) == 0, "timer 6 is armed");
		CHECK(tget(7, &it) == 0 && it.it_value.tv_sec >= 499 && it.it_value.tv_sec < 500 && it.it_interval.tv_sec == 250, "timer 7: %ld s left, interval %ld", (long)it.it_value.tv_sec, (long)it.it_interval.tv_sec);
		CHECK(tget(8, &it) == 0 && it.it_value.tv_sec >= 399 && it.it_value.tv_sec < 400, "timer 8: %ld s left", (long)it.it_value.tv_sec);
		CHECK(tget(9, &it) == 0 && ns_of(&it.it_value) == 0, "timer 9 is armed");
	} else if (strcmp(mode, "fire") == 0) {
		for (int i = 0; i < 400 && !hits; i++)
			wait_ms(10);
		CHECK(hits == 1 && bad_hits == 0, "the timer fired %d times after restore (%d other signals)", hits, bad_hits);
		CHECK(last_value == 0xf1e && last_timerid == ids[0], "value %lx, timer id %d", last_value, last_timerid);
		wait_ms(100);
		CHECK(hits == 1, "the one-shot timer fired again");
	} else if (strcmp(mode, "periodic") == 0) {
		int h = hits;
		wait_ms(300);
		CHECK(hits - h >= 5 && bad_hits == 0, "only %d signals in 300 ms after restore", hits - h);
		CHECK(last_value == 0xbeef && last_timerid == ids[0], "value %lx, timer id %d", last_value, last_timerid);
	} else if (strcmp(mode, "pending") == 0 || strcmp(mode, "pending_rt") == 0) {
		int sig = strcmp(mode, "pending") == 0 ? SIGUSR2 : SIGRTMIN + 2;
		struct timespec zero = { 0, 0 }, second = { 1, 0 };
		siginfo_t si;
		sigset_t pend;

		sigpending(&pend);
		CHECK(sigismember(&pend, sig), "the timer's pending signal was lost");
		wait_ms(200); /* (four periods, counted as overruns of the pending signal) */
		CHECK(sigtimedwait(&set, &si, &zero) == sig, "sigtimedwait: %s", strerror(errno));
		CHECK(si.si_code == SI_TIMER && si.si_timerid == ids[0] && (long)si.si_value.sival_ptr == 0x9e9d, "pending signal: code %d, timer %d, value %lx", si.si_code, si.si_timerid, (long)si.si_value.sival_ptr);
		CHECK(si.si_overrun >= 2, "overrun %d: the periods missed while the signal was pending are not counted", si.si_overrun);
		CHECK(sigtimedwait(&set, &si, &zero) < 0 && errno == EAGAIN, "a second signal of the timer was pending (doubled)");
		CHECK(sigtimedwait(&set, &si, &second) == sig && si.si_timerid == ids[0], "the timer does not fire again after its signal was taken");
	} else if (strcmp(mode, "threadid") == 0) {
		int h = thread_hits;
		wait_ms(300);
		CHECK(thread_hits - h >= 5 && thread_bad == 0, "the thread got %d timer signals in 300 ms after restore (%d others)", thread_hits - h, thread_bad);
	} else if (strcmp(mode, "cputime") == 0) {
		struct itimerspec it;
		phase = 1;
		while (phase != 2)
			wait_ms(5);
		CHECK(burned_before - burned_after >= 90000000LL, "the thread CPU-time timer shrank by %lld ns while its thread burned 100 ms of CPU: it measures another thread", burned_before - burned_after);
		CHECK(tget(ids[0], &it) == 0 && it.it_value.tv_sec >= 299 && it.it_value.tv_sec < 300, "process CPU timer: %ld s left", (long)it.it_value.tv_sec);
	} else if (strcmp(mode, "stale") == 0) {
		sigprocmask(SIG_UNBLOCK, &set, NULL);
		wait_ms(100);
		CHECK(hits == 0 && bad_hits == 0, "a signal the kernel drops came: %d from the timer, %d others", hits, bad_hits);
	} else if (strcmp(mode, "glibc") == 0) {
		int c = callbacks;
		wait_ms(300);
		CHECK(callbacks - c >= 5, "the SIGEV_THREAD callback ran %d times in 300 ms after restore", callbacks - c);
	} else if (strcmp(mode, "childcpu") == 0) {
		struct itimerspec a, b;
		int st;
		CHECK(tget(ids[0], &a) == 0, "timer_gettime: %s", strerror(errno));
		CHECK(write(cpipe[1], "x", 1) == 1, "write: %s", strerror(errno));
		CHECK(waitpid(child, &st, 0) == child, "waitpid: %s", strerror(errno));
		CHECK(tget(ids[0], &b) == 0, "timer_gettime: %s", strerror(errno));
		CHECK(ns_of(&a.it_value) - ns_of(&b.it_value) >= 90000000LL, "the timer on the child's CPU clock shrank by %lld ns while the child burned 100 ms", ns_of(&a.it_value) - ns_of(&b.it_value));
	} else if (strcmp(mode, "overrun") == 0) {
		int now = (int)syscall(SYS_timer_getoverrun, ids[0]);
		CHECK(now == overrun_before, "timer_getoverrun: %d after restore, %d before", now, overrun_before);
	}
	subject_pass();
}
