/*
 * madvise - per-area advice and locking must come back: the VmFlags line of
 * each area in /proc/self/smaps must be exactly as before, and the contents
 * too.
 *
 *   madvise OUTFILE
 *
 * Areas (anonymous, private, 8 pages each, filled with a pattern):
 *   seq    MADV_SEQUENTIAL                 (sr)
 *   rand   MADV_RANDOM                     (rr)
 *   lockr  MAP_LOCKED, then MADV_RANDOM    (lo rr)
 *   onf    mlock2(MLOCK_ONFAULT), 3 of the 8 pages touched (lo lf)
 * Before READY each area must show its flags (else the test would prove
 * nothing); after restore each area's header and VmFlags lines must match,
 * and onf must still have exactly pages 0, 3, 6 resident (mincore).
 */
#include "subject.h"
#include <sys/mman.h>

#ifndef MLOCK_ONFAULT
#define MLOCK_ONFAULT 1
#endif
#define PAGE 4096ul
#define LEN (8 * PAGE)
#define N 4

static const char *names[N] = { "seq", "rand", "lockr", "onf" };
static const char *want[N][3] = { { "sr" }, { "rr" }, { "lo", "rr" }, { "lo", "lf" } };
static uint64_t *area[N];
static char raw[1 << 20], vmf[1 << 17];
static char before[N][1024], after[N][1024];

/* The header and VmFlags lines of the area at a (from smaps_vmflags text). */
static void area_flags(void *a, char *out, size_t n)
{
	char head[32];
	int hl = snprintf(head, sizeof(head), "%lx-", (unsigned long)a);
	snap_file("/proc/self/smaps", raw, sizeof(raw));
	smaps_vmflags(raw, vmf, sizeof(vmf));
	for (const char *p = vmf; *p;) {
		char line[1024], flags[1024];
		p = copy_line(p, line, sizeof(line));
		if (strncmp(line, head, hl) != 0) continue;
		copy_line(p, flags, sizeof(flags));
		snprintf(out, n, "%s | %s", line, flags);
		return;
	}
	subject_fail("no area at %p in /proc/self/smaps", a);
}

static uint64_t pat(int k, size_t i) { return mix64((uint64_t)k << 40 | i); }

/* onf's residency as a string like "10010010". */
static void resident(char *out)
{
	unsigned char v[LEN / PAGE];
	CHECK(mincore(area[3], LEN, v) == 0, "mincore: %s", strerror(errno));
	for (size_t i = 0; i < LEN / PAGE; i++) out[i] = '0' + (v[i] & 1);
	out[LEN / PAGE] = 0;
}

int main(int argc, char **argv)
{
	subject_init(argc, argv, 1, "");
	install_term_handler(0);
	for (int k = 0; k < N; k++) {
		int flags = MAP_PRIVATE | MAP_ANONYMOUS | (k == 2 ? MAP_LOCKED : 0);
		area[k] = mmap(NULL, LEN, PROT_READ | PROT_WRITE, flags, -1, 0);
		CHECK(area[k] != MAP_FAILED, "mmap %s: %s", names[k], strerror(errno));
	}
	CHECK(madvise(area[0], LEN, MADV_SEQUENTIAL) == 0, "MADV_SEQUENTIAL: %s", strerror(errno));
	CHECK(madvise(area[1], LEN, MADV_RANDOM) == 0, "MADV_RANDOM: %s", strerror(errno));
	CHECK(madvise(area[2], LEN, MADV_RANDOM) == 0, "MADV_RANDOM (locked): %s", strerror(errno));
	CHECK(mlock2(area[3], LEN, MLOCK_ONFAULT) == 0, "mlock2(MLOCK_ONFAULT): %s", strerror(errno));
	for (int k = 0; k < N; k++)
		for (size_t i = 0; i < LEN / 8; i++) {
			if (k == 3 && i * 8 / PAGE % 3 != 0) continue; /* onf: touch pages 0, 3, 6 only */
			area[k][i] = pat(k, i);
		}
	prefault_stack(64 * 1024);
	for (int k = 0; k < N; k++) {
		area_flags(area[k], before[k], sizeof(before[k]));
		for (int f = 0; f < 3 && want[k][f]; f++) {
			char tok[8];
			snprintf(tok, sizeof(tok), " %s ", want[k][f]);
			CHECK(strstr(strchr(before[k], '|'), tok), "area %s lacks VmFlag %s before the checkpoint: %s", names[k], want[k][f], before[k]);
		}
	}
	char res[16];
	resident(res);
	CHECK(strcmp(res, "10010010") == 0, "onf: resident pages %s before the checkpoint, expected 10010010", res);
	subject_ready(NULL);
	while (!got_term) {
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	for (int k = 0; k < N; k++) {
		area_flags(area[k], after[k], sizeof(after[k]));
		CHECK(strcmp(before[k], after[k]) == 0, "area %s: before '%s' after '%s'", names[k], before[k], after[k]);
	}
	resident(res);
	CHECK(strcmp(res, "10010010") == 0, "onf (locked on fault): resident pages %s, expected 10010010", res);
	for (int k = 0; k < N; k++)
		for (size_t i = 0; i < LEN / 8; i++) {
			uint64_t w = k == 3 && i * 8 / PAGE % 3 != 0 ? 0 : pat(k, i);
			CHECK(area[k][i] == w, "area %s word %zu is %#lx, expected %#lx", names[k], i, (unsigned long)area[k][i], (unsigned long)w);
		}
	subject_pass();
}
