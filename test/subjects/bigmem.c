/*
 * bigmem - a large private anonymous area must come back word for word.
 *
 *   bigmem OUTFILE MIB
 *
 * mmaps MIB MiB, fills every 8-byte word with a function of its index and a
 * random seed chosen at start (so a page restored at the wrong offset, a
 * zero page, or a page from another run is detected), writes READY and waits
 * in pause(). On SIGTERM it checks every word and reports the first mismatch
 * and the number of bad words.
 */
#include "subject.h"
#include <sys/mman.h>

static inline uint64_t word(uint64_t i, uint64_t seed)
{
	uint64_t x = (i + 1) * 0x9E3779B97F4A7C15ull ^ seed;

	return x ^ (x >> 29) ^ (i << 7);
}

int main(int argc, char **argv)
{
	uint64_t seed, *area, i, n, bad = 0, first = 0;
	unsigned long mib;

	subject_init(argc, argv, 2, "MIB");
	mib = strtoul(argv[2], NULL, 0);
	if (mib == 0) {
		fprintf(stderr, "bigmem: MIB must be > 0\n");
		return 2;
	}
	install_term_handler(0);
	seed = random_seed();
	n = (uint64_t)mib << 17; /* words */
	area = mmap(NULL, mib << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(area != MAP_FAILED, "mmap %lu MiB: %s", mib, strerror(errno));
	for (i = 0; i < n; i++)
		area[i] = word(i, seed);

	subject_ready(NULL);
	while (!got_term)
		pause();

	for (i = 0; i < n; i++) {
		if (area[i] != word(i, seed)) {
			if (bad++ == 0)
				first = i;
		}
	}
	if (bad)
		subject_fail("area %p (%lu MiB): word %llu (addr %p, page %llu) is 0x%016llx expected 0x%016llx; %llu bad words",
			     (void *)area, mib, (unsigned long long)first, (void *)&area[first],
			     (unsigned long long)(first / 512), (unsigned long long)area[first],
			     (unsigned long long)word(first, seed), (unsigned long long)bad);
	subject_pass();
}
