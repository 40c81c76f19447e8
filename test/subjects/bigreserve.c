/*
 * bigreserve - a huge PROT_NONE reservation (MAP_PRIVATE|MAP_ANONYMOUS|
 * MAP_NORESERVE) with 2 MiB in the middle made read-write and filled, must
 * come back as the same reservation: same size and place, the same three
 * areas with the same permissions, the rest still PROT_NONE and the middle's
 * contents unchanged.
 *
 *   bigreserve OUTFILE [1t|256g]      (default 1t: 1 TiB)
 *
 * The /proc/self/maps lines that lie in the reservation are compared before
 * and after, and must cover exactly [base, base+size).
 */
#include "subject.h"
#include <sys/mman.h>

#define MID (2ul << 20)

static char maps[1 << 16];

/* The maps lines overlapping [base, base+len), and the bytes they cover. */
static size_t area_lines(char *base, size_t len, char *out, size_t n, unsigned long *lo, unsigned long *hi)
{
	size_t o = 0, covered = 0;
	unsigned long b = (unsigned long)base, e = b + len;
	*lo = ~0ul;
	*hi = 0;
	out[0] = 0;
	snap_file("/proc/self/maps", maps, sizeof(maps));
	for (const char *p = maps; *p;) {
		char line[512];
		unsigned long s, t;
		p = copy_line(p, line, sizeof(line));
		if (sscanf(line, "%lx-%lx", &s, &t) != 2 || t <= b || s >= e) continue;
		if (s < *lo) *lo = s;
		if (t > *hi) *hi = t;
		covered += t - s;
		o += (size_t)snprintf(out + o, n - o, "%s\n", line);
		CHECK(o < n, "too many maps lines in the reservation");
	}
	return covered;
}

int main(int argc, char **argv)
{
	subject_init(argc, argv, 1, "[1t|256g]");
	size_t len = argc > 2 && strcmp(argv[2], "256g") == 0 ? 256ul << 30 : 1ul << 40;
	install_term_handler(0);
	prefault_stack(64 * 1024);
	char *base = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	CHECK(base != MAP_FAILED, "mmap %zu GiB: %s", len >> 30, strerror(errno));
	uint64_t *mid = (uint64_t *)(base + len / 2);
	CHECK(mprotect(mid, MID, PROT_READ | PROT_WRITE) == 0, "mprotect: %s", strerror(errno));
	uint64_t seed = random_seed();
	for (size_t i = 0; i < MID / 8; i++) mid[i] = mix64(seed + i);
	static char before[4096], after[4096];
	unsigned long lo, hi;
	size_t cov = area_lines(base, len, before, sizeof(before), &lo, &hi);
	CHECK(cov == len && lo == (unsigned long)base && hi == lo + len,
	      "before: the maps lines cover %#lx-%#lx (%zu bytes), not the reservation %p+%#zx | %s", lo, hi, cov, base, len, before);
	subject_ready(NULL);
	while (!got_term) {
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	cov = area_lines(base, len, after, sizeof(after), &lo, &hi);
	compare_text("maps lines of the reservation", before, after);
	CHECK(cov == len && lo == (unsigned long)base && hi == lo + len,
	      "after: the maps lines cover %#lx-%#lx (%zu bytes), not the reservation %p+%#zx", lo, hi, cov, base, len);
	for (size_t i = 0; i < MID / 8; i++)
		CHECK(mid[i] == mix64(seed + i), "word %zu of the read-write middle is %#lx, expected %#lx",
		      i, (unsigned long)mid[i], (unsigned long)mix64(seed + i));
	subject_pass();
}
