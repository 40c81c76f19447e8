/*
 * fsize - a process with a small file size limit (RLIMIT_FSIZE 64 KiB, soft
 * and hard) and more memory than that (8 MiB, touched) must be dumped and
 * restored without the limit getting in the way (writing its pages under
 * its own limit would raise SIGXFSZ), and keep the limit.
 *
 *   fsize OUTFILE [default]
 *
 * default (no mode): a SIGXFSZ handler counts; the count must stay 0.
 * "default": SIGXFSZ keeps its default action (the process would die, and
 * never report).
 * On SIGTERM: memory contents, RLIMIT_FSIZE still 64 KiB soft and hard,
 * SIGXFSZ not pending and its disposition unchanged.
 */
#include "subject.h"
#include <sys/mman.h>
#include <sys/resource.h>

#define LIMIT (64ul << 10)
#define LEN (8ul << 20)

static volatile sig_atomic_t xfsz;
static void on_xfsz(int s) { (void)s; xfsz++; }

int main(int argc, char **argv)
{
	subject_init(argc, argv, 1, "[default]");
	int dfl = argc > 2 && strcmp(argv[2], "default") == 0;
	install_term_handler(0);
	struct sigaction sa, before, now;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = dfl ? SIG_DFL : on_xfsz;
	sigemptyset(&sa.sa_mask);
	CHECK(sigaction(SIGXFSZ, &sa, NULL) == 0, "sigaction: %s", strerror(errno));
	memset(&before, 0, sizeof(before));
	sigaction(SIGXFSZ, NULL, &before);
	uint64_t *mem = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(mem != MAP_FAILED, "mmap: %s", strerror(errno));
	uint64_t seed = random_seed();
	for (size_t i = 0; i < LEN / 8; i++) mem[i] = mix64(seed + i);
	struct rlimit rl = { LIMIT, LIMIT };
	CHECK(setrlimit(RLIMIT_FSIZE, &rl) == 0, "setrlimit: %s", strerror(errno));
	subject_ready(NULL);
	while (!got_term) {
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	CHECK(xfsz == 0, "SIGXFSZ was delivered %d times", (int)xfsz);
	sigset_t pend;
	sigpending(&pend);
	CHECK(!sigismember(&pend, SIGXFSZ), "SIGXFSZ is pending");
	memset(&now, 0, sizeof(now));
	sigaction(SIGXFSZ, NULL, &now);
	CHECK(now.sa_handler == before.sa_handler, "SIGXFSZ handler: before %p after %p", (void *)before.sa_handler, (void *)now.sa_handler);
	CHECK(getrlimit(RLIMIT_FSIZE, &rl) == 0, "getrlimit: %s", strerror(errno));
	CHECK(rl.rlim_cur == LIMIT && rl.rlim_max == LIMIT, "RLIMIT_FSIZE is %#lx/%#lx, expected %#lx/%#lx",
	      (unsigned long)rl.rlim_cur, (unsigned long)rl.rlim_max, LIMIT, LIMIT);
	for (size_t i = 0; i < LEN / 8; i++)
		CHECK(mem[i] == mix64(seed + i), "word %zu is %#lx, expected %#lx", i, (unsigned long)mem[i], (unsigned long)mix64(seed + i));
	subject_pass();
}
