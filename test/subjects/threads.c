/*
 * threads - every thread of a multithreaded process must come back with its
 * TID, registers, TLS, name, signal mask, pending signals, sigaltstack and
 * rseq registration, and go on in whatever it was doing.
 *
 *   threads OUTFILE [N]        (N worker threads, default 8)
 *
 * Worker i (all block SIGTERM, so the main thread gets it):
 *   - names itself "w<i>", keeps a pattern in a __thread variable and in
 *     callee-saved registers across its wait;
 *   - blocks SIGUSR1 (and SIGUSR2 when i is odd); SIGUSR1 is made pending on
 *     it with tgkill before READY;
 *   - has its own sigaltstack when i is even;
 *   - waits by kind i % 4: FUTEX_WAIT on a shared word, a nanosleep loop, a
 *     blocking read on a FIFO, or spinning in user mode.
 * Each also checks its robust futex list, and pthread_join in the main thread
 * relies on each thread's clear_child_tid address.
 * On SIGTERM the main thread releases them (futex wake, one byte per reader
 * into the FIFO, a flag for the others); each checks itself; the main thread
 * joins them and reports. A wait that returns early (EINTR or otherwise)
 * before the release is a FAIL.
 */
#include "subject.h"
#include <pthread.h>
#include <linux/futex.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <stddef.h>

#define MAXT 128

static int nthreads = 8;
static volatile int futex_word;
static volatile int release_all;
static int fifo_fd;
static pthread_barrier_t ready;

struct worker {
	pthread_t th;
	int idx;
	pid_t tid;
	char stack[16384] __attribute__((aligned(16)));
	char fail[200];
};
static struct worker w[MAXT];
static __thread uint64_t tls_pattern;

static uint64_t pat(int i) { return 0x5a5a000000000000ull ^ ((uint64_t)i * 0x9e3779b97f4a7c15ull); }

#define WFAIL(wk, ...) do { if (!(wk)->fail[0]) snprintf((wk)->fail, sizeof((wk)->fail), __VA_ARGS__); } while (0)

static void *worker_main(void *arg)
{
	struct worker *wk = arg;
	int i = wk->idx;
	char name[16];
	sigset_t set;

	wk->tid = (pid_t)syscall(SYS_gettid);
	snprintf(name, sizeof(name), "w%d", i);
	prctl(PR_SET_NAME, name);
	tls_pattern = pat(i);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGUSR1);
	if (i & 1)
		sigaddset(&set, SIGUSR2);
	pthread_sigmask(SIG_SETMASK, &set, NULL);
	if (!(i & 1)) {
		stack_t ss = { .ss_sp = wk->stack, .ss_size = sizeof(wk->stack), .ss_flags = 0 };
		sigaltstack(&ss, NULL);
	}
	/* glibc registered a robust futex list for this thread: note where. */
	void *robust_head = NULL;
	size_t robust_len = 0;
	syscall(SYS_get_robust_list, 0, &robust_head, &robust_len);
	pthread_barrier_wait(&ready);

	/* Keep a value in a callee-saved register across the wait. */
	register uint64_t keep asm("r12") = pat(i) ^ 0x1111;
	asm volatile("" : "+r"(keep));
	switch (i % 4) {
	case 0:
		while (!release_all) {
			long r = syscall(SYS_futex, &futex_word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
			if (r != 0 && errno == EINTR)
				WFAIL(wk, "thread %d: spurious EINTR from futex", i);
			if (!release_all && r == 0 && futex_word == 0)
				WFAIL(wk, "thread %d: futex returned before the release", i);
		}
		break;
	case 1:
		while (!release_all) {
			struct timespec ts = { 0, 150 * 1000 * 1000 };
			if (nanosleep(&ts, NULL) != 0)
				WFAIL(wk, "thread %d: nanosleep: %s", i, strerror(errno));
		}
		break;
	case 2: {
		char c;
		ssize_t n = read(fifo_fd, &c, 1);
		if (n != 1)
			WFAIL(wk, "thread %d: FIFO read returned %zd (%s)", i, n, n < 0 ? strerror(errno) : "");
		else if (!release_all)
			WFAIL(wk, "thread %d: FIFO read returned before the release", i);
		break;
	}
	default:
		while (!release_all)
			asm volatile("pause" ::: "memory");
	}
	asm volatile("" : "+r"(keep));
	if (keep != (pat(i) ^ 0x1111))
		WFAIL(wk, "thread %d: r12 is %#lx, expected %#lx", i, (unsigned long)keep, (unsigned long)(pat(i) ^ 0x1111));

	/* Check the thread's own state. */
	if ((pid_t)syscall(SYS_gettid) != wk->tid)
		WFAIL(wk, "thread %d: tid is %ld, was %d", i, (long)syscall(SYS_gettid), wk->tid);
	if (tls_pattern != pat(i))
		WFAIL(wk, "thread %d: TLS value %#lx, expected %#lx", i, (unsigned long)tls_pattern, (unsigned long)pat(i));
	char now[16] = "";
	prctl(PR_GET_NAME, now);
	if (strcmp(now, name))
		WFAIL(wk, "thread %d: name is '%s', was '%s'", i, now, name);
	sigset_t cur, pend;
	pthread_sigmask(SIG_SETMASK, NULL, &cur);
	if (sigismember(&cur, SIGUSR1) != 1 || sigismember(&cur, SIGUSR2) != (i & 1) || sigismember(&cur, SIGTERM) != 1)
		WFAIL(wk, "thread %d: signal mask changed", i);
	sigpending(&pend);
	if (!sigismember(&pend, SIGUSR1))
		WFAIL(wk, "thread %d: its pending SIGUSR1 is gone", i);
	stack_t ss;
	sigaltstack(NULL, &ss);
	if (!(i & 1) && (ss.ss_sp != wk->stack || ss.ss_size != sizeof(wk->stack) || (ss.ss_flags & SS_DISABLE)))
		WFAIL(wk, "thread %d: sigaltstack is %p/%zu flags %d", i, ss.ss_sp, ss.ss_size, ss.ss_flags);
	if ((i & 1) && !(ss.ss_flags & SS_DISABLE))
		WFAIL(wk, "thread %d: has a sigaltstack it did not set", i);
	void *rh = NULL;
	size_t rl = 0;
	syscall(SYS_get_robust_list, 0, &rh, &rl);
	if (rh != robust_head || rl != robust_len || !rh)
		WFAIL(wk, "thread %d: robust futex list %p/%zu, was %p/%zu", i, rh, rl, robust_head, robust_len);
	/* glibc registered rseq for this thread; registering again must say EBUSY. */
	extern const ptrdiff_t __rseq_offset;
	extern const unsigned int __rseq_size;
	long r = syscall(SYS_rseq, (char *)__builtin_thread_pointer() + __rseq_offset, __rseq_size < 32 ? 32 : __rseq_size, 0, 0x53053053);
	if (!(r == -1 && errno == EBUSY))
		WFAIL(wk, "thread %d: rseq is not registered any more (rseq returned %ld, %s)", i, r, strerror(errno));
	return NULL;
}

int main(int argc, char **argv)
{
	subject_init(argc, argv, 1, "[N]");
	if (argc > 2)
		nthreads = atoi(argv[2]);
	if (nthreads < 1 || nthreads > MAXT)
		subject_fail("N must be 1..%d", MAXT);
	unlink("threads.fifo");
	if (mkfifo("threads.fifo", 0600) != 0)
		subject_fail("mkfifo: %s", strerror(errno));
	fifo_fd = open("threads.fifo", O_RDWR);
	install_term_handler(0);
	pthread_barrier_init(&ready, NULL, nthreads + 1);
	for (int i = 0; i < nthreads; i++) {
		w[i].idx = i;
		if (pthread_create(&w[i].th, NULL, worker_main, &w[i]))
			subject_fail("pthread_create %d", i);
	}
	pthread_barrier_wait(&ready);
	for (int i = 0; i < nthreads; i++)
		syscall(SYS_tgkill, getpid(), w[i].tid, SIGUSR1);
	subject_ready(NULL);
	while (!got_term) {
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	release_all = 1;
	futex_word = 1;
	syscall(SYS_futex, &futex_word, FUTEX_WAKE_PRIVATE, MAXT, NULL, NULL, 0);
	for (int i = 0; i < nthreads; i++)
		if (i % 4 == 2 && write(fifo_fd, "x", 1) != 1)
			subject_fail("FIFO write: %s", strerror(errno));
	for (int i = 0; i < nthreads; i++)
		pthread_join(w[i].th, NULL);
	for (int i = 0; i < nthreads; i++)
		if (w[i].fail[0])
			subject_fail("%s", w[i].fail);
	subject_pass();
}
