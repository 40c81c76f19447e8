/*
 * storm - a forking storm under dump: the process keeps forking short-lived
 * children (some exit at once, some after a few ms, each with an exit code
 * derived from its index) and reaping them. Whatever state the dump catches
 * (children running, zombies not yet reaped) must come back consistent: every
 * child is reaped exactly once with the exit code it was given.
 *
 *   storm OUTFILE
 */
#include "subject.h"
#include <sys/wait.h>

#define MAXC 4096
static pid_t pids[MAXC];
static int codes[MAXC];
static char reaped[MAXC];
static int nforked;

static int index_of(pid_t p)
{
	for (int i = nforked - 1; i >= 0; i--)
		if (pids[i] == p) return i;
	return -1;
}

static void reap(int flags)
{
	for (;;) {
		int st = 0;
		pid_t p = waitpid(-1, &st, flags);
		if (p <= 0) return;
		int i = index_of(p);
		CHECK(i >= 0, "reaped pid %d that was never forked", p);
		CHECK(!reaped[i], "child %d reaped twice", p);
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == codes[i], "child %d: status %#x, expected exit %d", p, st, codes[i]);
		reaped[i] = 1;
	}
}

int main(int argc, char **argv)
{
	subject_init(argc, argv, 1, "");
	install_term_handler(0);
	int at_ready = -1;
	while (!got_term && nforked < MAXC) {
		int i = nforked;
		codes[i] = (i * 7) % 200;
		pid_t p = fork();
		if (p == 0) {
			if (i % 3 == 1) usleep(2000 + (i % 5) * 1000);
			_exit(codes[i]);
		}
		CHECK(p > 0, "fork: %s", strerror(errno));
		pids[i] = p;
		nforked++;
		reap(WNOHANG);
		if (nforked == 200 && at_ready < 0) { at_ready = nforked; subject_ready(NULL); }
		usleep(500);
	}
	reap(0);
	for (int i = 0; i < nforked; i++)
		CHECK(reaped[i], "child %d (index %d) was never reaped", pids[i], i);
	CHECK(nforked > at_ready, "no fork after READY (%d)", nforked);
	subject_pass();
}
