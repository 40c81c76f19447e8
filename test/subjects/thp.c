/*
 * thp - the process's "no transparent huge pages" setting must come back:
 * PR_GET_THP_DISABLE must return the same value as before, and the
 * THP_enabled line of /proc/self/status must be the same.
 *
 *   thp OUTFILE [advised]
 *
 * default: prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0).
 * advised: prctl(PR_SET_THP_DISABLE, 1, PR_THP_DISABLE_EXCEPT_ADVISED, 0, 0)
 * (kernel 6.18: THP stays allowed in MADV_HUGEPAGE areas); FAIL with the
 * errno if the kernel refuses it.
 */
#include "subject.h"
#include <sys/prctl.h>

#ifndef PR_THP_DISABLE_EXCEPT_ADVISED
#define PR_THP_DISABLE_EXCEPT_ADVISED (1 << 1)
#endif

static char text[8192];

int main(int argc, char **argv)
{
	subject_init(argc, argv, 1, "[advised]");
	int advised = argc > 2 && strcmp(argv[2], "advised") == 0;
	install_term_handler(0);
	int was = prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0);
	CHECK(was == 0, "THP already disabled at start (%d): the test would prove nothing", was);
	CHECK(prctl(PR_SET_THP_DISABLE, 1, advised ? PR_THP_DISABLE_EXCEPT_ADVISED : 0, 0, 0) == 0,
	      "PR_SET_THP_DISABLE%s: %s", advised ? " (EXCEPT_ADVISED)" : "", strerror(errno));
	int before = prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0);
	CHECK(before > 0, "PR_GET_THP_DISABLE gives %d right after setting it", before);
	char sb[256], sa[256];
	snap_file("/proc/self/status", text, sizeof(text));
	CHECK(status_line(text, "THP_enabled", sb, sizeof(sb)) == 0, "no THP_enabled line in /proc/self/status");
	subject_ready(NULL);
	while (!got_term) {
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	int after = prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0);
	CHECK(after == before, "PR_GET_THP_DISABLE: before %d after %d", before, after);
	snap_file("/proc/self/status", text, sizeof(text));
	status_line(text, "THP_enabled", sa, sizeof(sa));
	CHECK(strcmp(sb, sa) == 0, "/proc/self/status: before '%s' after '%s'", sb, sa);
	subject_pass();
}
