/*
 * tree - a three-level process tree (1 + W + W*W processes, W=4 by default)
 * must come back with every PID, parent, process group and session.
 *
 *   tree OUTFILE [W]
 *
 * Every process keeps a private memory pattern of its own (written after the
 * fork) and one inherited from the root (written before the forks). Level-1
 * children differ: child 0 starts a new session, child 1 a new process group,
 * child 2 and 3 stay in the root's group. The grandchildren of child 1 stay in
 * its group, except the last, which moves to the group of its first sibling.
 * On SIGTERM a process checks itself, sends SIGTERM to its children and waits
 * for them: it exits 0 only if it and all below it are intact. The root
 * reports PASS or FAIL with the first failure (children write theirs into
 * OUTFILE too).
 */
#include "subject.h"
#include <sys/wait.h>

#define MAXW 8
static int W = 4;
static pid_t kids[MAXW];
static int nkids;
static pid_t my_pid, my_ppid, my_pgid, my_sid;
static uint64_t *own, *inherited;
#define OWN_WORDS (64 * 1024)
#define INH_WORDS (256 * 1024)

static uint64_t pat(uint64_t a, uint64_t b) { return (a * 0x9e3779b97f4a7c15ull) ^ (b << 17) ^ 0xabcdef; }

static void fill_own(void)
{
	own = malloc(OWN_WORDS * 8);
	for (size_t i = 0; i < OWN_WORDS; i++)
		own[i] = pat((uint64_t)getpid(), i);
}

static void snapshot(void)
{
	my_pid = getpid();
	my_ppid = getppid();
	my_pgid = getpgid(0);
	my_sid = getsid(0);
}

/* Returns NULL if intact, else a reason. */
static const char *check_self(char *buf, size_t n)
{
	if (getpid() != my_pid) return snprintf(buf, n, "pid %d is now %d", my_pid, getpid()), buf;
	if (getppid() != my_ppid) return snprintf(buf, n, "pid %d: parent %d is now %d", my_pid, my_ppid, getppid()), buf;
	if (getpgid(0) != my_pgid) return snprintf(buf, n, "pid %d: pgid %d is now %d", my_pid, my_pgid, getpgid(0)), buf;
	if (getsid(0) != my_sid) return snprintf(buf, n, "pid %d: sid %d is now %d", my_pid, my_sid, getsid(0)), buf;
	for (size_t i = 0; i < OWN_WORDS; i++)
		if (own[i] != pat((uint64_t)my_pid, i))
			return snprintf(buf, n, "pid %d: own word %zu changed", my_pid, i), buf;
	for (size_t i = 0; i < INH_WORDS; i++)
		if (inherited[i] != pat(7, i))
			return snprintf(buf, n, "pid %d: inherited word %zu changed", my_pid, i), buf;
	return NULL;
}

/* Check self, stop the children, collect their verdicts. */
static int verdict(char *buf, size_t n)
{
	const char *bad = check_self(buf, n);
	for (int i = 0; i < nkids; i++)
		kill(kids[i], SIGTERM);
	for (int i = 0; i < nkids; i++) {
		int st = 0;
		pid_t r = waitpid(kids[i], &st, 0);
		if (r != kids[i]) { if (!bad) bad = (snprintf(buf, n, "pid %d: waitpid(%d) returned %d (%s)", my_pid, kids[i], r, strerror(errno)), buf); continue; }
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			if (!bad) bad = (snprintf(buf, n, "pid %d: child %d ended with status %#x", my_pid, kids[i], st), buf);
	}
	return bad != NULL;
}

static void wait_for_term(void)
{
	while (!got_term) {
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}

static __attribute__((noreturn)) void child_main(int level, int idx, pid_t first_sibling)
{
	install_term_handler(0);
	nkids = 0;
	if (level == 1 && idx == 0) setsid();
	if (level == 1 && idx == 1) setpgid(0, 0);
	if (level == 2 && idx == W - 1 && first_sibling) setpgid(0, first_sibling == getpid() ? 0 : getpgid(first_sibling));
	fill_own();
	if (level == 1) {
		pid_t first = 0;
		for (int i = 0; i < W; i++) {
			pid_t c = fork();
			if (c == 0) { nkids = 0; child_main(2, i, first); }
			if (i == 0) { first = c; if (idx == 1) setpgid(c, c); }
			kids[nkids++] = c;
		}
	}
	snapshot();
	wait_for_term();
	char buf[256];
	int bad = verdict(buf, sizeof(buf));
	if (bad) subject_append_str("FAILDETAIL "), subject_append_str(buf), subject_append_str("\n");
	_exit(bad);
}

int main(int argc, char **argv)
{
	subject_init(argc, argv, 1, "[W]");
	if (argc > 2) W = atoi(argv[2]);
	if (W < 1 || W > MAXW) subject_fail("W must be 1..%d", MAXW);
	inherited = malloc(INH_WORDS * 8);
	for (size_t i = 0; i < INH_WORDS; i++)
		inherited[i] = pat(7, i);
	install_term_handler(0);
	fill_own();
	for (int i = 0; i < W; i++) {
		pid_t c = fork();
		if (c < 0) subject_fail("fork: %s", strerror(errno));
		if (c == 0) child_main(1, i, 0);
		kids[nkids++] = c;
	}
	snapshot();
	/* Wait until the whole tree exists (every level-1 child has its W children). */
	for (int tries = 0; tries < 500; tries++) {
		int all = 1;
		for (int i = 0; i < nkids; i++) {
			char path[64], text[512];
			snprintf(path, sizeof(path), "/proc/%d/task/%d/children", kids[i], kids[i]);
			ssize_t r = read_file(path, text, sizeof(text));
			int count = 0;
			for (ssize_t k = 0; k < r; k++) if (text[k] == ' ') count++;
			if (count < W) all = 0;
		}
		if (all) break;
		usleep(10000);
	}
	usleep(50000);
	subject_ready(NULL);
	wait_for_term();
	char buf[256];
	if (verdict(buf, sizeof(buf)))
		subject_fail("%s", buf);
	subject_pass();
}
