/*
 * signals - signal dispositions, mask, alternate stack and pending signals
 * (with their siginfo) must survive the checkpoint.
 *
 *   signals OUTFILE
 *
 * Setup:
 *   SIGUSR1     SA_SIGINFO|SA_RESTART            mask {SIGUSR2}
 *   SIGUSR2     SA_SIGINFO|SA_ONSTACK            mask {SIGHUP, SIGALRM}
 *   SIGHUP      SA_NODEFER|SA_RESETHAND (plain)  mask {}
 *   SIGALRM     SA_RESTART|SA_ONSTACK (plain)    mask {SIGUSR1, SIGRTMIN+1}
 *   SIGRTMIN    SA_SIGINFO                       mask {SIGWINCH}
 *   SIGRTMIN+5  SA_SIGINFO|SA_ONSTACK|SA_RESTART mask {SIGRTMIN+3}
 *   SIGPIPE     SIG_IGN;  SIGTERM: flag handler, no SA_RESTART
 *   blocked: SIGUSR1 SIGUSR2 SIGHUP SIGWINCH SIGRTMIN SIGRTMIN+5
 *   sigaltstack on a static 64 KiB buffer
 *   pending, process-wide: SIGRTMIN (sigqueue 1234), SIGRTMIN+5 twice
 *     (sigqueue 1, then 2), SIGUSR1 (kill)
 *   pending, this thread: SIGUSR2 (rt_tgsigqueueinfo SI_QUEUE 777),
 *     SIGHUP (tgkill)
 * Waits in a nanosleep loop (spurious EINTR = FAIL). On SIGTERM compares the
 * raw kernel sigaction of every signal (handler, flags, restorer, mask),
 * the mask, the altstack, rt_sigpending and the SigPnd/ShdPnd/SigBlk/SigIgn/
 * SigCgt lines of /proc/self/status; then unblocks and checks that exactly the
 * pending signals are delivered, with the right si_code/si_pid/si_uid/
 * si_value, the SA_ONSTACK ones on the altstack, SIGRTMIN+5 values in order
 * 1 then 2, and that SA_RESETHAND reset SIGHUP.
 */
#include "subject.h"
#include <sys/syscall.h>

struct ksigaction {
	uintptr_t handler;
	unsigned long flags;
	uintptr_t restorer;
	uint64_t mask;
};

#define NSIG_MAX 64
static struct ksigaction act_before[NSIG_MAX + 1];
static uint64_t mask_before, pend_before;
static stack_t alt_before;
static char status_before[4096];
static char alt_buf[64 * 1024] __attribute__((aligned(16)));

static const char *const status_keys[] = { "SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt", NULL };

struct delivery {
	int sig, code, pid, uid, value, onstack;
};
static struct delivery log_[32];
static volatile int nlog;

static int on_altstack(void *p)
{
	return (char *)p >= alt_buf && (char *)p < alt_buf + sizeof(alt_buf);
}

static void info_handler(int sig, siginfo_t *si, void *uc)
{
	int local;
	int i = nlog;

	(void)uc;
	if (i < 32) {
		log_[i].sig = sig;
		log_[i].code = si->si_code;
		log_[i].pid = si->si_pid;
		log_[i].uid = (int)si->si_uid;
		log_[i].value = si->si_value.sival_int;
		log_[i].onstack = on_altstack(&local);
	}
	nlog = i + 1;
}

static void plain_handler(int sig)
{
	int local;
	int i = nlog;

	if (i < 32) {
		log_[i].sig = sig;
		log_[i].code = -999;
		log_[i].onstack = on_altstack(&local);
	}
	nlog = i + 1;
}

static void set(int sig, void *handler, int flags, const int *mask_sigs)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	if (flags & SA_SIGINFO)
		sa.sa_sigaction = handler;
	else
		sa.sa_handler = handler;
	sa.sa_flags = flags;
	sigemptyset(&sa.sa_mask);
	for (; mask_sigs && *mask_sigs; mask_sigs++)
		sigaddset(&sa.sa_mask, *mask_sigs);
	CHECK(sigaction(sig, &sa, NULL) == 0, "sigaction %d: %s", sig, strerror(errno));
}

static void raw_snapshot(struct ksigaction *acts, uint64_t *mask, uint64_t *pend)
{
	int s;

	for (s = 1; s <= NSIG_MAX; s++) {
		memset(&acts[s], 0, sizeof(acts[s]));
		if (s == SIGKILL || s == SIGSTOP)
			continue;
		CHECK(syscall(SYS_rt_sigaction, s, NULL, &acts[s], 8) == 0,
		      "rt_sigaction(%d): %s", s, strerror(errno));
	}
	CHECK(syscall(SYS_rt_sigprocmask, SIG_BLOCK, NULL, mask, 8) == 0, "rt_sigprocmask: %s", strerror(errno));
	CHECK(syscall(SYS_rt_sigpending, pend, 8) == 0, "rt_sigpending: %s", strerror(errno));
}

static void expect_delivery(int sig, int code, int value, int nth, int onstack)
{
	int i, seen = 0;

	for (i = 0; i < nlog && i < 32; i++) {
		if (log_[i].sig != sig)
			continue;
		if (seen++ != nth)
			continue;
		if (code != -999) {
			CHECK(log_[i].code == code, "signal %d #%d delivered with si_code %d, expected %d",
			      sig, nth, log_[i].code, code);
			CHECK(log_[i].pid == getpid(), "signal %d #%d delivered with si_pid %d, expected %d",
			      sig, nth, log_[i].pid, getpid());
			CHECK(log_[i].uid == (int)getuid(), "signal %d #%d delivered with si_uid %d, expected %d",
			      sig, nth, log_[i].uid, (int)getuid());
		}
		if (value != -1)
			CHECK(log_[i].value == value, "signal %d #%d delivered with si_value %d, expected %d",
			      sig, nth, log_[i].value, value);
		if (onstack)
			CHECK(log_[i].onstack, "signal %d (SA_ONSTACK) handler did not run on the altstack", sig);
		return;
	}
	subject_fail("pending signal %d (#%d) was not delivered after unblocking", sig, nth);
}

int main(int argc, char **argv)
{
	static const int m_usr1[] = { SIGUSR2, 0 };
	static const int m_usr2[] = { SIGHUP, SIGALRM, 0 };
	int m_alrm[] = { SIGUSR1, SIGRTMIN + 1, 0 };
	int m_rt0[] = { SIGWINCH, 0 };
	int m_rt5[] = { SIGRTMIN + 3, 0 };
	struct ksigaction act_after[NSIG_MAX + 1];
	uint64_t mask_after, pend_after;
	char status_raw[8192], status_after[4096];
	struct timespec ts = { 0, 100 * 1000 * 1000 };
	stack_t ss, alt_after;
	sigset_t block;
	union sigval v;
	siginfo_t si;
	int s;

	subject_init(argc, argv, 1, "");
	install_term_handler(0);

	set(SIGUSR1, info_handler, SA_SIGINFO | SA_RESTART, m_usr1);
	set(SIGUSR2, info_handler, SA_SIGINFO | SA_ONSTACK, m_usr2);
	set(SIGHUP, plain_handler, SA_NODEFER | SA_RESETHAND, NULL);
	set(SIGALRM, plain_handler, SA_RESTART | SA_ONSTACK, m_alrm);
	set(SIGRTMIN, info_handler, SA_SIGINFO, m_rt0);
	set(SIGRTMIN + 5, info_handler, SA_SIGINFO | SA_ONSTACK | SA_RESTART, m_rt5);
	signal(SIGPIPE, SIG_IGN);

	memset(&ss, 0, sizeof(ss));
	ss.ss_sp = alt_buf;
	ss.ss_size = sizeof(alt_buf);
	CHECK(sigaltstack(&ss, NULL) == 0, "sigaltstack: %s", strerror(errno));

	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigaddset(&block, SIGUSR2);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, SIGWINCH);
	sigaddset(&block, SIGRTMIN);
	sigaddset(&block, SIGRTMIN + 5);
	CHECK(sigprocmask(SIG_BLOCK, &block, NULL) == 0, "sigprocmask: %s", strerror(errno));

	v.sival_int = 1234;
	CHECK(sigqueue(getpid(), SIGRTMIN, v) == 0, "sigqueue: %s", strerror(errno));
	v.sival_int = 1;
	CHECK(sigqueue(getpid(), SIGRTMIN + 5, v) == 0, "sigqueue: %s", strerror(errno));
	v.sival_int = 2;
	CHECK(sigqueue(getpid(), SIGRTMIN + 5, v) == 0, "sigqueue: %s", strerror(errno));
	CHECK(kill(getpid(), SIGUSR1) == 0, "kill: %s", strerror(errno));
	memset(&si, 0, sizeof(si));
	si.si_signo = SIGUSR2;
	si.si_code = SI_QUEUE;
	si.si_pid = getpid();
	si.si_uid = getuid();
	si.si_value.sival_int = 777;
	CHECK(syscall(SYS_rt_tgsigqueueinfo, getpid(), gettid(), SIGUSR2, &si) == 0,
	      "rt_tgsigqueueinfo: %s", strerror(errno));
	CHECK(syscall(SYS_tgkill, getpid(), gettid(), SIGHUP) == 0, "tgkill: %s", strerror(errno));

	raw_snapshot(act_before, &mask_before, &pend_before);
	CHECK(sigaltstack(NULL, &alt_before) == 0, "sigaltstack: %s", strerror(errno));
	snap_file("/proc/self/status", status_raw, sizeof(status_raw));
	status_subset(status_raw, status_keys, status_before, sizeof(status_before));
	CHECK(nlog == 0, "a blocked signal was delivered during setup");

	subject_ready(NULL);
	while (!got_term) {
		if (nanosleep(&ts, NULL) != 0) {
			int e = errno;

			if (e == EINTR && got_term)
				break;
			subject_fail("nanosleep returned errno %d (%s) without SIGTERM", e,
				     e == EINTR ? "spurious EINTR" : strerror(e));
		}
	}

	/* compare state */
	CHECK(nlog == 0, "%d handler(s) ran while the signals were blocked (first: signal %d)",
	      nlog, log_[0].sig);
	raw_snapshot(act_after, &mask_after, &pend_after);
	for (s = 1; s <= NSIG_MAX; s++) {
		struct ksigaction *b = &act_before[s], *a = &act_after[s];

		if (memcmp(b, a, sizeof(*a)) != 0)
			subject_fail("sigaction of signal %d differs: before handler %#lx flags %#lx restorer %#lx mask %#llx, after handler %#lx flags %#lx restorer %#lx mask %#llx",
				     s, (unsigned long)b->handler, b->flags, (unsigned long)b->restorer,
				     (unsigned long long)b->mask, (unsigned long)a->handler, a->flags,
				     (unsigned long)a->restorer, (unsigned long long)a->mask);
	}
	CHECK(mask_after == mask_before, "blocked mask is %#llx, was %#llx",
	      (unsigned long long)mask_after, (unsigned long long)mask_before);
	CHECK(pend_after == pend_before, "pending set (rt_sigpending) is %#llx, was %#llx",
	      (unsigned long long)pend_after, (unsigned long long)pend_before);
	CHECK(sigaltstack(NULL, &alt_after) == 0, "sigaltstack: %s", strerror(errno));
	CHECK(alt_after.ss_sp == alt_before.ss_sp && alt_after.ss_size == alt_before.ss_size &&
	      alt_after.ss_flags == alt_before.ss_flags,
	      "sigaltstack is sp %p size %zu flags %d, was sp %p size %zu flags %d",
	      alt_after.ss_sp, alt_after.ss_size, alt_after.ss_flags,
	      alt_before.ss_sp, alt_before.ss_size, alt_before.ss_flags);
	snap_file("/proc/self/status", status_raw, sizeof(status_raw));
	status_subset(status_raw, status_keys, status_after, sizeof(status_after));
	compare_text("/proc/self/status signal lines", status_before, status_after);

	/* deliver */
	CHECK(sigprocmask(SIG_UNBLOCK, &block, NULL) == 0, "sigprocmask: %s", strerror(errno));
	expect_delivery(SIGUSR1, SI_USER, -1, 0, 0);
	expect_delivery(SIGUSR2, SI_QUEUE, 777, 0, 1);
	expect_delivery(SIGHUP, -999, -1, 0, 0);
	expect_delivery(SIGRTMIN, SI_QUEUE, 1234, 0, 0);
	expect_delivery(SIGRTMIN + 5, SI_QUEUE, 1, 0, 1);
	expect_delivery(SIGRTMIN + 5, SI_QUEUE, 2, 1, 1);
	if (nlog != 6) {
		char list[256];
		size_t o = 0;
		int i;

		list[0] = 0;
		for (i = 0; i < nlog && i < 32; i++)
			o += (size_t)snprintf(list + o, sizeof(list) - o, " %d", log_[i].sig);
		subject_fail("%d signal deliveries after unblocking, expected 6; delivered:%s", nlog, list);
	}
	CHECK(syscall(SYS_rt_sigpending, &pend_after, 8) == 0, "rt_sigpending: %s", strerror(errno));
	CHECK(pend_after == 0, "signals still pending after unblocking: %#llx", (unsigned long long)pend_after);
	CHECK(syscall(SYS_rt_sigaction, SIGHUP, NULL, &act_after[SIGHUP], 8) == 0, "rt_sigaction");
	CHECK(act_after[SIGHUP].handler == (uintptr_t)SIG_DFL,
	      "SIGHUP handler is %#lx after delivery, SA_RESETHAND should have reset it",
	      (unsigned long)act_after[SIGHUP].handler);
	subject_pass();
}
