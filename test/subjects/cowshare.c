/*
 * cowshare - memory shared across fork must stay shared: a 256 MiB private
 * region the parent filled before forking 8 children (copy-on-write shared,
 * so the tree holds it once), and a MAP_SHARED anonymous region all of them
 * write to. Child 0 changed one page of the private region after the fork
 * (its own copy), the parent changed another, and the parent touched a page
 * for the first time after the fork (the children must still see zeros
 * there).
 *
 *   cowshare OUTFILE [MIB]
 *
 * Child 1 also has 32 MiB of memory of its own (mapped and filled after the
 * fork), which restore copies in apart from what it shares.
 * On SIGTERM the parent asks every child (SIGUSR1) to write its mark into the
 * shared region and waits to see all marks: a copy instead of shared memory
 * never shows them. Then each child checks its memory and exits 0 or 1.
 */
#include "subject.h"
#include <sys/mman.h>
#include <sys/wait.h>

#define NKIDS 8
#define PAGE 4096ul
static size_t len;
static uint64_t *big;
static volatile uint64_t *shared;
static pid_t kids[NKIDS];
static volatile sig_atomic_t got_usr1;
static void on_usr1(int s) { (void)s; got_usr1 = 1; }

static uint64_t pat(size_t i) { return i * 0x9e3779b97f4a7c15ull + 3; }

static int check_big(int who, char *why, size_t n)
{
	size_t words = len / 8;
	for (size_t i = 0; i < words; i++) {
		uint64_t want = pat(i);
		size_t page = i * 8 / PAGE;
		if (page == 5) want = who < 0 ? 0xfeedull : pat(i);           /* the parent's change */
		if (page == 6 && who == 0) want = 0xc0ffeeull;                  /* child 0's change */
		if (page == 7) want = who < 0 ? 0x77ull : 0;                    /* touched first by the parent after fork */
		if (big[i] != want) { snprintf(why, n, "%s %d: word %zu is %#lx, expected %#lx", who < 0 ? "parent" : "child", who, i, (unsigned long)big[i], (unsigned long)want); return 1; }
	}
	return 0;
}

int main(int argc, char **argv)
{
	subject_init(argc, argv, 1, "[MIB]");
	len = (argc > 2 ? strtoul(argv[2], NULL, 0) : 256) << 20;
	big = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	shared = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(big != MAP_FAILED && shared != MAP_FAILED, "mmap: %s", strerror(errno));
	for (size_t i = 0; i < len / 8; i++) {
		if (i * 8 / PAGE == 7) continue; /* leave page 7 untouched until after the fork */
		big[i] = pat(i);
	}
	install_term_handler(0);
	for (int k = 0; k < NKIDS; k++) {
		pid_t c = fork();
		CHECK(c >= 0, "fork: %s", strerror(errno));
		if (c == 0) {
			signal(SIGUSR1, on_usr1);
			if (k == 0) for (size_t i = 6 * PAGE / 8; i < 7 * PAGE / 8; i++) big[i] = 0xc0ffeeull;
			uint64_t *mine = NULL;
			size_t mine_words = (32ul << 20) / 8;
			if (k == 1) {
				mine = mmap(NULL, mine_words * 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
				if (mine == MAP_FAILED) _exit(4);
				for (size_t i = 0; i < mine_words; i++) mine[i] = pat(i) ^ 0x5555;
			}
			while (!got_term) {
				if (got_usr1) { got_usr1 = 0; shared[k] = 0x1000 + k; }
				struct timespec ts = { 0, 20 * 1000 * 1000 };
				nanosleep(&ts, NULL);
			}
			char why[200];
			if (check_big(k, why, sizeof(why))) { subject_append_str("FAILDETAIL "); subject_append_str(why); subject_append_str("\n"); _exit(1); }
			for (size_t i = 0; mine && i < mine_words; i++)
				if (mine[i] != (pat(i) ^ 0x5555)) { subject_append_str("FAILDETAIL child 1: own memory changed\n"); _exit(1); }
			_exit(0);
		}
		kids[k] = c;
	}
	for (size_t i = 5 * PAGE / 8; i < 6 * PAGE / 8; i++) big[i] = 0xfeedull;
	for (size_t i = 7 * PAGE / 8; i < 8 * PAGE / 8; i++) big[i] = 0x77ull;
	usleep(100000);
	subject_ready(NULL);
	while (!got_term) {
		struct timespec ts = { 0, 50 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	char why[200];
	if (check_big(-1, why, sizeof(why))) subject_fail("%s", why);
	for (int k = 0; k < NKIDS; k++) kill(kids[k], SIGUSR1);
	for (int tries = 0; tries < 200; tries++) {
		int all = 1;
		for (int k = 0; k < NKIDS; k++) if (shared[k] != (uint64_t)(0x1000 + k)) all = 0;
		if (all) break;
		usleep(10000);
	}
	for (int k = 0; k < NKIDS; k++)
		CHECK(shared[k] == (uint64_t)(0x1000 + k), "child %d's mark %#lx never showed in the shared region: it is not shared", k, (unsigned long)shared[k]);
	for (int k = 0; k < NKIDS; k++) kill(kids[k], SIGTERM);
	for (int k = 0; k < NKIDS; k++) {
		int st = 0;
		CHECK(waitpid(kids[k], &st, 0) == kids[k], "waitpid: %s", strerror(errno));
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %d (pid %d) failed its check (status %#x)", k, kids[k], st);
	}
	subject_pass();
}
