/*
 * sigtrap - SIGTRAP (what a ptrace-based tool is likely to leave behind)
 * must come through untouched: its disposition, its place in the blocked
 * mask, nothing pending and nothing delivered.
 *
 *   sigtrap OUTFILE handler|ignore|blocked
 *
 * handler: SA_SIGINFO handler that counts. After restore: still installed
 * (same handler and flags), count 0, not pending; raise(SIGTRAP) runs it
 * exactly once, with si_code SI_TKILL from this pid.
 * ignore: SIG_IGN. After restore still SIG_IGN; raise(SIGTRAP) does nothing
 * (nothing pending, the process lives on).
 * blocked: the handler, and SIGTRAP blocked. After restore still blocked,
 * not pending, handler installed; raise makes it pending without running the
 * handler, unblocking then runs it once.
 * pending: as blocked, and one SIGTRAP raised before READY: after restore it
 * is still pending, and unblocking runs the handler once.
 * In every mode SIGUSR2 and SIGRTMIN+5 are blocked too, and the whole mask
 * must be unchanged. The nanosleep the process waits in must never fail with
 * anything but EINTR (a syscall interrupted by ckpt is restarted, not ended
 * with a restart code).
 */
#include "subject.h"

static volatile sig_atomic_t count, code, from;
static void on_trap(int s, siginfo_t *si, void *uc) { (void)s; (void)uc; count++; code = si->si_code; from = si->si_pid; }

static int same_set(const sigset_t *a, const sigset_t *b, int *which)
{
	for (int s = 1; s < NSIG; s++)
		if (sigismember(a, s) != sigismember(b, s)) { *which = s; return 0; }
	return 1;
}

int main(int argc, char **argv)
{
	subject_init(argc, argv, 2, "handler|ignore|blocked|pending");
	int pnd = strcmp(argv[2], "pending") == 0;
	int ign = strcmp(argv[2], "ignore") == 0, blk = pnd || strcmp(argv[2], "blocked") == 0;
	CHECK(ign || blk || strcmp(argv[2], "handler") == 0, "unknown mode %s", argv[2]);
	install_term_handler(0);
	struct sigaction sa, before, now;
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	if (ign) {
		sa.sa_handler = SIG_IGN;
	} else {
		sa.sa_sigaction = on_trap;
		sa.sa_flags = SA_SIGINFO;
		sigaddset(&sa.sa_mask, SIGUSR1);
	}
	CHECK(sigaction(SIGTRAP, &sa, NULL) == 0, "sigaction: %s", strerror(errno));
	sigset_t set, mask_before, mask_now, pend;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	sigaddset(&set, SIGRTMIN + 5);
	if (blk) sigaddset(&set, SIGTRAP);
	CHECK(sigprocmask(SIG_BLOCK, &set, NULL) == 0, "sigprocmask: %s", strerror(errno));
	memset(&before, 0, sizeof(before));
	sigaction(SIGTRAP, NULL, &before);
	sigprocmask(SIG_BLOCK, NULL, &mask_before);
	if (pnd) raise(SIGTRAP);
	subject_ready(NULL);
	while (!got_term) {
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		int r = nanosleep(&ts, NULL);
		CHECK(r == 0 || errno == EINTR, "nanosleep failed: errno %d", errno);
	}
	int which = 0;
	sigprocmask(SIG_BLOCK, NULL, &mask_now);
	CHECK(same_set(&mask_before, &mask_now, &which), "signal %d is %s blocked", which, sigismember(&mask_now, which) ? "now" : "no longer");
	memset(&now, 0, sizeof(now));
	CHECK(sigaction(SIGTRAP, NULL, &now) == 0, "sigaction query: %s", strerror(errno));
	CHECK(now.sa_handler == before.sa_handler, "SIGTRAP handler: before %p after %p", (void *)before.sa_handler, (void *)now.sa_handler);
	CHECK(now.sa_flags == before.sa_flags, "SIGTRAP sa_flags: before %#x after %#x", before.sa_flags, now.sa_flags);
	CHECK(same_set(&before.sa_mask, &now.sa_mask, &which), "SIGTRAP sa_mask differs at signal %d", which);
	CHECK(count == 0, "the SIGTRAP handler already ran %d times", (int)count);
	sigpending(&pend);
	CHECK(!sigismember(&pend, SIGTRAP) == !pnd, "SIGTRAP is %s", pnd ? "no longer pending" : "pending");
	if (!pnd) raise(SIGTRAP);
	sigpending(&pend);
	if (blk) {
		CHECK(count == 0 && sigismember(&pend, SIGTRAP), "blocked SIGTRAP: count %d, pending %d after raise", (int)count, sigismember(&pend, SIGTRAP));
		sigset_t t;
		sigemptyset(&t);
		sigaddset(&t, SIGTRAP);
		sigprocmask(SIG_UNBLOCK, &t, NULL);
	}
	sigpending(&pend);
	CHECK(!sigismember(&pend, SIGTRAP), "SIGTRAP is pending after raise");
	if (!ign) {
		CHECK(count == 1, "the handler ran %d times for one raise(SIGTRAP)", (int)count);
		CHECK(code == SI_TKILL && from == getpid(), "the handler got si_code %d from pid %d, expected SI_TKILL from %d", (int)code, (int)from, getpid());
	}
	subject_pass();
}
