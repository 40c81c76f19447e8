/*
 * mapro - a read-only file mapping whose fd is closed must come back with
 * the same write permission the original open gave it (VM_MAYWRITE), and the
 * same sharing.
 *
 *   mapro OUTFILE [private]
 *
 * shared (default): data.bin (in the cwd) opened O_RDWR, 2 pages written,
 * mapped PROT_READ, MAP_SHARED, fd closed. After restore mprotect(PROT_READ|
 * PROT_WRITE) must succeed and a write through the mapping must reach the
 * file (pread via a new fd).
 * private: mapped PROT_READ, MAP_PRIVATE from an O_RDONLY fd; mprotect to
 * write must succeed, and the write must not reach the file.
 * In both, the mapping's /proc/self/maps line and contents must be unchanged
 * before the mprotect.
 */
#include "subject.h"
#include <sys/mman.h>

#define PAGE 4096ul
#define LEN (2 * PAGE)

static char maps[1 << 16];

static void maps_line(const void *a, char *out, size_t n)
{
	char head[32];
	int hl = snprintf(head, sizeof(head), "%lx-", (unsigned long)a);
	snap_file("/proc/self/maps", maps, sizeof(maps));
	for (const char *p = maps; *p;) {
		p = copy_line(p, out, n);
		if (strncmp(out, head, hl) == 0) return;
	}
	subject_fail("no area at %p in /proc/self/maps", a);
}

static unsigned char want(size_t i) { return (unsigned char)(i * 7 + i / PAGE + 1); }

int main(int argc, char **argv)
{
	subject_init(argc, argv, 1, "[private]");
	int priv = argc > 2 && strcmp(argv[2], "private") == 0;
	install_term_handler(0);
	static unsigned char buf[LEN];
	for (size_t i = 0; i < LEN; i++) buf[i] = want(i);
	int fd = open("data.bin", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	CHECK(fd >= 0, "open data.bin: %s", strerror(errno));
	CHECK(write(fd, buf, LEN) == (ssize_t)LEN, "write: %s", strerror(errno));
	if (priv) {
		close(fd);
		fd = open("data.bin", O_RDONLY | O_CLOEXEC);
		CHECK(fd >= 0, "open data.bin O_RDONLY: %s", strerror(errno));
	}
	volatile unsigned char *m = mmap(NULL, LEN, PROT_READ, priv ? MAP_PRIVATE : MAP_SHARED, fd, 0);
	CHECK(m != MAP_FAILED, "mmap: %s", strerror(errno));
	close(fd);
	char before[512], after[512];
	maps_line((void *)m, before, sizeof(before));
	subject_ready(NULL);
	while (!got_term) {
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	maps_line((void *)m, after, sizeof(after));
	CHECK(strcmp(before, after) == 0, "maps line: before '%s' after '%s'", before, after);
	for (size_t i = 0; i < LEN; i++)
		CHECK(m[i] == want(i), "mapping byte %zu is %#x, expected %#x", i, m[i], want(i));
	CHECK(mprotect((void *)m, LEN, PROT_READ | PROT_WRITE) == 0,
	      "mprotect(PROT_READ|PROT_WRITE) of the %s mapping: %s", priv ? "private" : "shared", strerror(errno));
	m[PAGE + 5] = 0xa5;
	CHECK(m[PAGE + 5] == 0xa5, "the write through the mapping did not stick");
	fd = open("data.bin", O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0, "open data.bin again: %s", strerror(errno));
	CHECK(pread(fd, buf, LEN, 0) == (ssize_t)LEN, "pread: %s", strerror(errno));
	close(fd);
	unsigned char file = buf[PAGE + 5];
	if (priv)
		CHECK(file == want(PAGE + 5), "the write through the private mapping reached the file (%#x)", file);
	else
		CHECK(file == 0xa5, "the write through the shared mapping did not reach the file (%#x, expected 0xa5)", file);
	for (size_t i = 0; i < LEN; i++)
		CHECK(i == PAGE + 5 || buf[i] == want(i), "file byte %zu is %#x, expected %#x", i, buf[i], want(i));
	subject_pass();
}
