/*
 * bench_ghost - a big deleted file still open, for the benchmark.
 *
 *   bench_ghost OUTFILE MIB
 *
 * Writes MIB MiB to ghost.dat in the working directory (every 8-byte word
 * is its own offset), unlinks it and keeps it open at fd 3, at offset 4096.
 * After restore: still unlinked, same size and offset, and every word of it
 * is as written.
 */
#include "subject.h"

int main(int argc, char **argv)
{
	static uint64_t buf[1 << 17]; /* 1 MiB */
	struct stat st;
	long mib;
	int fd;

	subject_init(argc, argv, 2, "MIB");
	install_term_handler(0);
	mib = atol(argv[2]);
	CHECK(mib > 0, "MIB must be > 0");
	fd = open("ghost.dat", O_RDWR | O_CREAT | O_TRUNC, 0640);
	CHECK(fd >= 0, "open: %s", strerror(errno));
	for (long m = 0; m < mib; m++) {
		for (size_t i = 0; i < sizeof(buf) / 8; i++)
			buf[i] = (uint64_t)m * sizeof(buf) + i * 8;
		CHECK(write(fd, buf, sizeof(buf)) == sizeof(buf), "write: %s", strerror(errno));
	}
	CHECK(unlink("ghost.dat") == 0, "unlink: %s", strerror(errno));
	CHECK(lseek(fd, 4096, SEEK_SET) == 4096, "lseek");
	subject_ready(argv[1]);
	while (!got_term)
		pause();
	CHECK(fstat(fd, &st) == 0, "fstat: %s", strerror(errno));
	CHECK(st.st_nlink == 0, "the file has %ld links again", (long)st.st_nlink);
	CHECK(st.st_size == mib << 20, "size %lld, expected %ld MiB", (long long)st.st_size, mib);
	CHECK(lseek(fd, 0, SEEK_CUR) == 4096, "offset changed");
	for (long m = 0; m < mib; m++) {
		CHECK(pread(fd, buf, sizeof(buf), m << 20) == sizeof(buf), "pread: %s", strerror(errno));
		for (size_t i = 0; i < sizeof(buf) / 8; i++)
			CHECK(buf[i] == (uint64_t)m * sizeof(buf) + i * 8, "word at %ld differs", (long)(m * sizeof(buf) + i * 8));
	}
	subject_pass();
}
