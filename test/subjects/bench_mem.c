/*
 * bench_mem - the benchmark's subject: N MiB of private anonymous memory,
 * every page touched and filled quickly (memset with a per-page byte), then
 * it waits in pause(). On SIGTERM it checks one word of every page.
 *
 *   bench_mem OUTFILE MIB
 */
#include "subject.h"
#include <sys/mman.h>

int main(int argc, char **argv)
{
	subject_init(argc, argv, 2, "MIB");
	size_t mib = strtoul(argv[2], NULL, 0);
	size_t len = mib << 20;
	unsigned char *p = NULL;
	if (len) {
		p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			subject_fail("mmap %zu MiB: %s", mib, strerror(errno));
		for (size_t off = 0; off < len; off += 4096)
			memset(p + off, (int)((off >> 12) * 31 + 7), 4096);
	}
	install_term_handler(0);
	subject_ready(NULL);
	while (!got_term)
		pause();
	for (size_t off = 0; off < len; off += 4096) {
		unsigned char want = (unsigned char)((off >> 12) * 31 + 7);
		if (p[off] != want || p[off + 4095] != want)
			subject_fail("page at offset %zu holds %u, expected %u", off, p[off], want);
	}
	subject_pass();
}
