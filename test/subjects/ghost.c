/*
 * ghost - files whose contents must travel in the image: files deleted or
 * replaced while open or mapped, deleted directories and FIFOs, memfds, and
 * files held with O_PATH.
 *
 *   ghost OUTFILE MODE
 *
 *   empty        a deleted empty file (mode 0640)
 *   sparse       a deleted 1 GiB file with 4 KiB of data at the start, 5000
 *                bytes in the middle and 100 at the end: holes stay holes
 *   offset       a deleted file read at offset 1234 (O_RDONLY) and one
 *                written with O_APPEND
 *   mmap-shared  a deleted file mapped MAP_SHARED, written through the
 *                mapping: the writes show through the fd, both ways
 *   mmap-private a deleted file mapped MAP_PRIVATE, one page written (a
 *                private copy); the other pages still follow the file
 *   mapped-only  a deleted file mapped twice MAP_SHARED and once MAP_PRIVATE
 *                (one page copied), its fd closed
 *   cwd          the working directory deleted
 *   dirfd        a deleted directory held open
 *   fifo         a deleted FIFO with 3000 bytes buffered
 *   replaced     a file replaced (rename over it) since it was opened; the
 *                new file at its path is left alone
 *   opath        O_PATH fds: a file, a directory, a symbolic link itself
 *                (O_NOFOLLOW), a socket file, /dev/ptmx; and a file opened
 *                through a symbolic link
 *   memfd        a sparse memfd (100 MiB, data at 0 and 64 MiB), sealed
 *                (grow, shrink, write), at offset 777, close-on-exec
 *   memfd-plain  a memfd made without MFD_ALLOW_SEALING (F_SEAL_SEAL)
 *   memfd-shared a memfd mapped MAP_SHARED by parent and child (inherited
 *                and mapped again by the child), sealed with
 *                F_SEAL_FUTURE_WRITE: writes through the mappings are seen
 *                by both, write() is refused
 *   memfd-mapped a memfd mapped shared twice and privately, its fd closed
 *   twoprocs     one deleted file opened separately by parent and child:
 *                what one writes the other reads, offsets their own
 *   memfd-noexec a memfd made with MFD_NOEXEC_SEAL (mode 0666, F_SEAL_EXEC)
 *   tmpfile      a file made with O_TMPFILE: it stays linkable (linkat)
 *   big          a deleted file of 512 MiB, all data (for timing by hand)
 *   deleted-hardlink  a deleted file that still has another link (refused)
 *   hugetlb      a memfd of huge pages (refused)
 *   secretmem    memfd_secret memory (refused)
 *   exe          its own executable deleted (a copy of it, exec'ed)
 *   lib-private  a deleted file only mapped privately (read-only), as a
 *                library replaced by an upgrade is in many programs
 */
#include "subject.h"
#include <sys/mman.h>
#include <sys/wait.h>
#include <sys/ioctl.h>
#include <linux/memfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif
#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 8U
#endif
#ifndef F_SEAL_EXEC
#define F_SEAL_EXEC 0x0020
#endif
#ifndef MFD_HUGETLB
#define MFD_HUGETLB 4U
#endif

#define GIB (1024L * 1024 * 1024)
#define MIB (1024L * 1024)

static void fill(char *buf, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		buf[i] = (char)((i * 31 + seed * 7 + (i >> 9)) & 0xff);
}

static void put(int fd, off_t at, size_t n, unsigned seed)
{
	static char buf[1 << 16];
	while (n) {
		size_t k = n < sizeof(buf) ? n : sizeof(buf);
		fill(buf, k, seed);
		CHECK(pwrite(fd, buf, k, at) == (ssize_t)k, "pwrite at %ld: %s", (long)at, strerror(errno));
		at += k;
		n -= k;
		seed++;
	}
}

static void expect(int fd, off_t at, size_t n, unsigned seed, const char *what)
{
	static char buf[1 << 16], want[1 << 16];
	while (n) {
		size_t k = n < sizeof(buf) ? n : sizeof(buf);
		fill(want, k, seed);
		ssize_t got = pread(fd, buf, k, at);
		CHECK(got == (ssize_t)k, "%s: pread at %ld: %zd (%s)", what, (long)at, got, strerror(errno));
		CHECK(!memcmp(buf, want, k), "%s: the data at %ld differ", what, (long)at);
		at += k;
		n -= k;
		seed++;
	}
}

static void expect_link(int fd, const char *suffix)
{
	char p[64], link[4096];
	snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(p, link, sizeof(link) - 1);
	CHECK(n > 0, "readlink %s: %s", p, strerror(errno));
	link[n] = 0;
	size_t s = strlen(suffix);
	CHECK((size_t)n >= s && !strcmp(link + n - s, suffix), "fd %d is %s, expected ...%s", fd, link, suffix);
}

static void expect_deleted(int fd, const char *name, mode_t type)
{
	struct stat st;
	CHECK(fstat(fd, &st) == 0, "fstat: %s", strerror(errno));
	CHECK(st.st_nlink == 0, "fd %d: st_nlink %lu, expected 0", fd, (unsigned long)st.st_nlink);
	CHECK((st.st_mode & S_IFMT) == type, "fd %d: mode 0%o", fd, st.st_mode);
	char suffix[256];
	snprintf(suffix, sizeof(suffix), "/%s (deleted)", name);
	expect_link(fd, suffix);
}

/* The data and holes of a file: SEEK_DATA / SEEK_HOLE from `at`. */
static void expect_extent(int fd, off_t at, off_t data, off_t hole, const char *what)
{
	off_t d = lseek(fd, at, SEEK_DATA);
	CHECK(d == data, "%s: SEEK_DATA from %ld gives %ld, expected %ld", what, (long)at, (long)d, (long)data);
	off_t h = lseek(fd, data, SEEK_HOLE);
	CHECK(h == hole, "%s: SEEK_HOLE from %ld gives %ld, expected %ld", what, (long)data, (long)h, (long)hole);
}

static int make_file(const char *name, mode_t mode, size_t n, unsigned seed)
{
	int fd = open(name, O_RDWR | O_CREAT | O_EXCL, mode);
	CHECK(fd >= 0, "open %s: %s", name, strerror(errno));
	CHECK(fchmod(fd, mode) == 0, "fchmod");
	if (n)
		put(fd, 0, n, seed);
	return fd;
}

static int queued(int fd)
{
	int n = -1;
	CHECK(ioctl(fd, FIONREAD, &n) == 0, "FIONREAD: %s", strerror(errno));
	return n;
}

static void wait_kid(pid_t kid)
{
	int st;
	CHECK(waitpid(kid, &st, 0) == kid, "waitpid: %s", strerror(errno));
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child failed (status %#x)", st);
}

int main(int argc, char **argv)
{
	subject_init(argc, argv, 2, "MODE");
	install_term_handler(0);
	const char *mode = argv[2];
	const long pg = sysconf(_SC_PAGESIZE);
	int fd = -1, fd2 = -1, fd3 = -1, fd4 = -1, fd5 = -1, fd6 = -1;
	char *m1 = NULL, *m2 = NULL, *m3 = NULL;
	pid_t kid = -1;
	struct stat st0;

	if (!strcmp(mode, "empty")) {
		fd = make_file("g", 0640, 0, 0);
		CHECK(unlink("g") == 0, "unlink");
	} else if (!strcmp(mode, "sparse")) {
		fd = make_file("g", 0600, 0, 0);
		CHECK(ftruncate(fd, GIB) == 0, "ftruncate: %s", strerror(errno));
		put(fd, 0, 4096, 1);
		put(fd, GIB / 2, 5000, 2);
		put(fd, GIB - 100, 100, 3);
		CHECK(unlink("g") == 0, "unlink");
	} else if (!strcmp(mode, "offset")) {
		fd = make_file("g", 0644, 10000, 4);
		fd2 = open("g", O_RDONLY);
		fd3 = open("g", O_WRONLY | O_APPEND);
		CHECK(fd2 >= 0 && fd3 >= 0, "open: %s", strerror(errno));
		CHECK(lseek(fd2, 1234, SEEK_SET) == 1234, "lseek");
		CHECK(lseek(fd, 5000, SEEK_SET) == 5000, "lseek");
		CHECK(unlink("g") == 0, "unlink");
	} else if (!strcmp(mode, "mmap-shared")) {
		fd = make_file("g", 0600, 3 * pg, 5);
		m1 = mmap(NULL, 3 * pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		CHECK(m1 != MAP_FAILED, "mmap: %s", strerror(errno));
		memset(m1 + pg, 'S', 100); /* dirty in the page cache only */
		CHECK(unlink("g") == 0, "unlink");
	} else if (!strcmp(mode, "mmap-private")) {
		fd = make_file("g", 0600, 3 * pg, 6);
		m1 = mmap(NULL, 3 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
		CHECK(m1 != MAP_FAILED, "mmap: %s", strerror(errno));
		memset(m1, 'P', 100); /* a private copy of page 0 */
		CHECK(unlink("g") == 0, "unlink");
	} else if (!strcmp(mode, "mapped-only")) {
		fd = make_file("g", 0600, 2 * pg, 7);
		m1 = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		m2 = mmap(NULL, pg, PROT_READ, MAP_SHARED, fd, pg);
		m3 = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
		CHECK(m1 != MAP_FAILED && m2 != MAP_FAILED && m3 != MAP_FAILED, "mmap: %s", strerror(errno));
		memset(m1 + pg + 10, 'M', 10);
		memset(m3, 'p', 10); /* a private copy of page 0 */
		close(fd);
		fd = -1;
		CHECK(unlink("g") == 0, "unlink");
	} else if (!strcmp(mode, "cwd")) {
		CHECK(mkdir("d", 0750) == 0, "mkdir");
		CHECK(chdir("d") == 0, "chdir");
		CHECK(rmdir("../d") == 0, "rmdir: %s", strerror(errno));
	} else if (!strcmp(mode, "dirfd")) {
		CHECK(mkdir("d", 0711) == 0, "mkdir");
		fd = open("d", O_RDONLY | O_DIRECTORY);
		fd2 = open("d", O_PATH | O_DIRECTORY);
		CHECK(fd >= 0 && fd2 >= 0, "open d: %s", strerror(errno));
		CHECK(rmdir("d") == 0, "rmdir");
	} else if (!strcmp(mode, "fifo")) {
		CHECK(mkfifo("f", 0620) == 0, "mkfifo");
		fd = open("f", O_RDWR);
		fd2 = open("f", O_RDONLY | O_NONBLOCK);
		CHECK(fd >= 0 && fd2 >= 0, "open f: %s", strerror(errno));
		char buf[3000];
		fill(buf, sizeof(buf), 8);
		CHECK(write(fd, buf, sizeof(buf)) == (ssize_t)sizeof(buf), "write fifo");
		CHECK(unlink("f") == 0, "unlink");
	} else if (!strcmp(mode, "replaced")) {
		fd = make_file("r", 0600, 6000, 9);
		fd2 = make_file("r.new", 0644, 3000, 10);
		close(fd2);
		fd2 = -1;
		CHECK(rename("r.new", "r") == 0, "rename");
		CHECK(lseek(fd, 17, SEEK_SET) == 17, "lseek");
	} else if (!strcmp(mode, "opath")) {
		int t = make_file("f", 0600, 500, 11);
		close(t);
		CHECK(symlink("f", "l") == 0, "symlink");
		fd = open("f", O_PATH);
		fd2 = open(".", O_PATH | O_DIRECTORY);
		fd3 = open("l", O_PATH | O_NOFOLLOW);
		fd4 = open("l", O_RDONLY);
		CHECK(fd >= 0 && fd2 >= 0 && fd3 >= 0 && fd4 >= 0, "open: %s", strerror(errno));
		/* a socket file and a device no plain open of would be restored, held with O_PATH */
		int so = socket(AF_UNIX, SOCK_STREAM, 0);
		struct sockaddr_un sa = { .sun_family = AF_UNIX, .sun_path = "s" };
		CHECK(so >= 0 && bind(so, (struct sockaddr *)&sa, sizeof(sa)) == 0, "bind: %s", strerror(errno));
		close(so);
		fd5 = open("s", O_PATH);
		fd6 = open("/dev/ptmx", O_PATH);
		CHECK(fd5 >= 0 && fd6 >= 0, "open O_PATH: %s", strerror(errno));
		CHECK(lseek(fd4, 100, SEEK_SET) == 100, "lseek");
	} else if (!strcmp(mode, "memfd")) {
		fd = memfd_create("ckpt-test memfd", MFD_CLOEXEC | MFD_ALLOW_SEALING);
		CHECK(fd >= 0, "memfd_create: %s", strerror(errno));
		CHECK(ftruncate(fd, 100 * MIB) == 0, "ftruncate");
		put(fd, 0, 8192, 12);
		put(fd, 64 * MIB, 3 * 4096, 13);
		CHECK(fchmod(fd, 0751) == 0, "fchmod");
		CHECK(fcntl(fd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_WRITE) == 0, "F_ADD_SEALS: %s", strerror(errno));
		CHECK(lseek(fd, 777, SEEK_SET) == 777, "lseek");
		char p[64];
		snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
		fd2 = open(p, O_RDONLY); /* a second description of it, through /proc */
		CHECK(fd2 >= 0, "reopen: %s", strerror(errno));
	} else if (!strcmp(mode, "memfd-plain")) {
		fd = memfd_create("plain", 0);
		CHECK(fd >= 0, "memfd_create: %s", strerror(errno));
		put(fd, 0, 1000, 14);
		CHECK(lseek(fd, 1000, SEEK_SET) == 1000, "lseek");
	} else if (!strcmp(mode, "memfd-shared")) {
		fd = memfd_create("shared", MFD_ALLOW_SEALING);
		CHECK(fd >= 0, "memfd_create: %s", strerror(errno));
		CHECK(ftruncate(fd, 4 * pg) == 0, "ftruncate");
		m1 = mmap(NULL, 4 * pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		CHECK(m1 != MAP_FAILED, "mmap: %s", strerror(errno));
		strcpy(m1, "parent wrote this");
		kid = fork();
		if (kid == 0) {
			m2 = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 2 * pg);
			if (m2 == MAP_FAILED)
				_exit(5);
			strcpy(m2, "child wrote this");
			while (!got_term)
				pause();
			if (strcmp(m1, "parent wrote this") || strcmp(m1 + pg, "after restore"))
				_exit(6);
			if (strcmp(m2, "child wrote this") || strcmp(m1 + 2 * pg, "child wrote this"))
				_exit(7);
			strcpy(m2 + 100, "child after restore");
			_exit(0);
		}
		/* (sealed once the child has its own writable mapping: the seal allows those that exist) */
		while (strcmp(m1 + 2 * pg, "child wrote this"))
			usleep(1000);
		CHECK(fcntl(fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE | F_SEAL_SHRINK) == 0, "F_ADD_SEALS: %s", strerror(errno));
	} else if (!strcmp(mode, "memfd-mapped")) {
		fd = memfd_create("mapped", 0);
		CHECK(fd >= 0, "memfd_create: %s", strerror(errno));
		put(fd, 0, 3 * pg, 15);
		m1 = mmap(NULL, 3 * pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		m2 = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 2 * pg);
		m3 = mmap(NULL, 3 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
		CHECK(m1 != MAP_FAILED && m2 != MAP_FAILED && m3 != MAP_FAILED, "mmap: %s", strerror(errno));
		memset(m1 + 2 * pg, 'Q', 50);
		memset(m3, 'C', 10);
		close(fd);
		fd = -1;
	} else if (!strcmp(mode, "twoprocs")) {
		fd = make_file("g", 0600, 8192, 16);
		CHECK(lseek(fd, 10, SEEK_SET) == 10, "lseek");
		int ready[2];
		CHECK(pipe(ready) == 0, "pipe");
		kid = fork();
		if (kid == 0) {
			char p[64];
			snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
			int c = open(p, O_RDWR); /* its own description */
			if (c < 0 || lseek(c, 20, SEEK_SET) != 20)
				_exit(5);
			close(ready[0]);
			close(ready[1]);
			while (!got_term)
				pause();
			char b[32] = { 0 };
			if (lseek(c, 0, SEEK_CUR) != 20)
				_exit(6);
			if (pread(c, b, 13, 4096) != 13 || strcmp(b, "parent wrote"))
				_exit(7);
			struct stat s;
			if (fstat(c, &s) || s.st_nlink != 0)
				_exit(8);
			if (pwrite(c, "child wrote", 12, 6000) != 12)
				_exit(9);
			_exit(0);
		}
		/* the child has its fd once it closes its end of the pipe */
		close(ready[1]);
		char c;
		CHECK(read(ready[0], &c, 1) == 0, "the child's signal");
		close(ready[0]);
		CHECK(unlink("g") == 0, "unlink");
	} else if (!strcmp(mode, "memfd-noexec")) {
		fd = memfd_create("noexec", MFD_NOEXEC_SEAL);
		CHECK(fd >= 0, "memfd_create(MFD_NOEXEC_SEAL): %s", strerror(errno));
		put(fd, 0, 100, 18);
	} else if (!strcmp(mode, "tmpfile")) {
		fd = open(".", O_TMPFILE | O_RDWR, 0640);
		CHECK(fd >= 0, "O_TMPFILE: %s", strerror(errno));
		put(fd, 0, 3000, 19);
	} else if (!strcmp(mode, "big")) {
		fd = make_file("g", 0600, 512 * MIB, 20);
		CHECK(unlink("g") == 0, "unlink");
	} else if (!strcmp(mode, "deleted-hardlink")) {
		fd = make_file("g", 0600, 100, 17);
		CHECK(link("g", "g2") == 0, "link");
		CHECK(unlink("g") == 0, "unlink");
	} else if (!strcmp(mode, "exe")) {
		/* run a copy of this program, then delete the copy */
		int in = open("/proc/self/exe", O_RDONLY), out = open("prog", O_WRONLY | O_CREAT | O_EXCL, 0755);
		CHECK(in >= 0 && out >= 0, "copy: %s", strerror(errno));
		char b[65536];
		ssize_t k;
		while ((k = read(in, b, sizeof(b))) > 0)
			CHECK(write(out, b, k) == k, "write prog");
		close(in);
		close(out);
		char *args[] = { argv[0], (char *)subject_outfile, "exe-run", NULL };
		execv("./prog", args);
		subject_fail("execv: %s", strerror(errno));
	} else if (!strcmp(mode, "exe-run")) {
		CHECK(unlink("prog") == 0, "unlink prog");
	} else if (!strcmp(mode, "lib-private")) {
		const char *lib = argc > 3 ? argv[3] : "lib";
		int t = open(lib, O_RDONLY);
		CHECK(t >= 0, "open %s: %s", lib, strerror(errno));
		m1 = mmap(NULL, 2 * pg, PROT_READ, MAP_PRIVATE, t, 0);
		CHECK(m1 != MAP_FAILED, "mmap: %s", strerror(errno));
		close(t);
		if (argc <= 3)
			CHECK(unlink(lib) == 0, "unlink");
	} else if (!strcmp(mode, "secretmem")) {
		fd = (int)syscall(447 /* memfd_secret */, 0);
		CHECK(fd >= 0, "memfd_secret: %s", strerror(errno));
	} else if (!strcmp(mode, "hugetlb")) {
		fd = memfd_create("huge", MFD_HUGETLB);
		CHECK(fd >= 0, "memfd_create(MFD_HUGETLB): %s", strerror(errno));
	} else {
		fprintf(stderr, "ghost: unknown MODE '%s'\n", mode);
		return 2;
	}
	if (fd >= 0)
		CHECK(fstat(fd, &st0) == 0, "fstat");
	subject_ready(NULL);
	while (!got_term)
		pause();

	if (!strcmp(mode, "empty")) {
		expect_deleted(fd, "g", S_IFREG);
		struct stat st;
		CHECK(fstat(fd, &st) == 0 && st.st_size == 0 && (st.st_mode & 07777) == 0640, "size %ld mode 0%o", (long)st.st_size, st.st_mode);
		CHECK(st.st_mtim.tv_sec == st0.st_mtim.tv_sec && st.st_mtim.tv_nsec == st0.st_mtim.tv_nsec, "mtime changed");
		CHECK(st.st_uid == st0.st_uid && st.st_gid == st0.st_gid, "owner changed");
		CHECK(access("g", F_OK) != 0, "g exists again");
		CHECK((fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDWR, "not O_RDWR");
		CHECK(write(fd, "x", 1) == 1, "write: %s", strerror(errno));
	} else if (!strcmp(mode, "sparse")) {
		expect_deleted(fd, "g", S_IFREG);
		struct stat st;
		CHECK(fstat(fd, &st) == 0 && st.st_size == GIB, "size %ld", (long)st.st_size);
		CHECK(st.st_blocks * 512 < 1 * MIB, "%ld bytes allocated: the holes were filled", (long)st.st_blocks * 512);
		expect(fd, 0, 4096, 1, "start");
		expect(fd, GIB / 2, 5000, 2, "middle");
		expect(fd, GIB - 100, 100, 3, "end");
		expect_extent(fd, 0, 0, 4096, "start");
		off_t d = lseek(fd, 4096, SEEK_DATA);
		CHECK(d >= GIB / 2 - 4096 && d <= GIB / 2, "SEEK_DATA after the start: %ld", (long)d);
		off_t h = lseek(fd, GIB / 2, SEEK_HOLE);
		CHECK(h >= GIB / 2 + 5000 && h <= GIB / 2 + 16384, "SEEK_HOLE after the middle: %ld", (long)h);
		d = lseek(fd, h, SEEK_DATA);
		CHECK(d >= GIB - 4096 && d <= GIB - 100, "SEEK_DATA at the end: %ld", (long)d);
		CHECK(lseek(fd, d, SEEK_HOLE) == GIB, "SEEK_HOLE at the end");
	} else if (!strcmp(mode, "offset")) {
		expect_deleted(fd, "g", S_IFREG);
		CHECK(lseek(fd2, 0, SEEK_CUR) == 1234, "fd2 offset %ld", (long)lseek(fd2, 0, SEEK_CUR));
		CHECK(lseek(fd, 0, SEEK_CUR) == 5000, "fd offset %ld", (long)lseek(fd, 0, SEEK_CUR));
		CHECK((fcntl(fd2, F_GETFL) & O_ACCMODE) == O_RDONLY, "fd2 not O_RDONLY");
		CHECK((fcntl(fd3, F_GETFL) & (O_ACCMODE | O_APPEND)) == (O_WRONLY | O_APPEND), "fd3 flags 0%o", fcntl(fd3, F_GETFL));
		expect(fd2, 0, 10000, 4, "contents");
		CHECK(write(fd3, "appended", 8) == 8, "append");
		char b[9] = { 0 };
		CHECK(pread(fd2, b, 8, 10000) == 8 && !strcmp(b, "appended"), "the append is not at the end: %s", b);
		CHECK(read(fd2, b, 1) == 1 && lseek(fd2, 0, SEEK_CUR) == 1235, "read moves the offset");
	} else if (!strcmp(mode, "mmap-shared")) {
		expect_deleted(fd, "g", S_IFREG);
		char b[100], want[100];
		memset(want, 'S', 100);
		CHECK(pread(fd, b, 100, pg) == 100 && !memcmp(b, want, 100), "the write through the mapping is not in the file");
		expect(fd, 0, pg, 5, "page 0");
		memcpy(m1 + 2 * pg, "through the map", 16);
		CHECK(pread(fd, b, 16, 2 * pg) == 16 && !strcmp(b, "through the map"), "a new write through the mapping is not in the file");
		CHECK(pwrite(fd, "through the fd", 15, 100) == 15, "pwrite");
		CHECK(!strcmp(m1 + 100, "through the fd"), "a write through the fd is not in the mapping");
	} else if (!strcmp(mode, "mmap-private")) {
		expect_deleted(fd, "g", S_IFREG);
		char want[100];
		memset(want, 'P', 100);
		CHECK(!memcmp(m1, want, 100), "the private copy was lost");
		expect(fd, 0, 3 * pg, 6, "file");
		CHECK(pwrite(fd, "file changed", 13, 2 * pg) == 13, "pwrite");
		CHECK(!strcmp(m1 + 2 * pg, "file changed"), "a page not copied does not follow the file");
	} else if (!strcmp(mode, "mapped-only")) {
		char want[10];
		memset(want, 'M', 10);
		CHECK(!memcmp(m1 + pg + 10, want, 10) && !memcmp(m2 + 10, want, 10), "the data written before are gone");
		strcpy(m1 + pg + 100, "shared still");
		CHECK(!strcmp(m2 + 100, "shared still"), "the two mappings are no longer one file");
		CHECK(!strcmp(m3 + pg + 100, "shared still"), "the private mapping's untouched page does not follow the file");
		memset(want, 'p', 10);
		CHECK(!memcmp(m3, want, 10), "the private copy is gone");
		CHECK(m1[0] != 'p', "the private copy is in the file");
		char text[65536];
		CHECK(read_file("/proc/self/maps", text, sizeof(text)) > 0, "maps");
		CHECK(strstr(text, "/g (deleted)") != NULL, "the mapping does not name the deleted file");
	} else if (!strcmp(mode, "cwd")) {
		char link[4096];
		ssize_t n = readlink("/proc/self/cwd", link, sizeof(link) - 1);
		CHECK(n > 0, "readlink cwd");
		link[n] = 0;
		CHECK(strstr(link, "/d (deleted)") != NULL, "cwd is %s", link);
		struct stat st;
		CHECK(stat(".", &st) == 0 && S_ISDIR(st.st_mode) && st.st_nlink == 0 && (st.st_mode & 07777) == 0750, "cwd: nlink %lu mode 0%o", (unsigned long)st.st_nlink, st.st_mode);
		CHECK(open("x", O_CREAT | O_WRONLY, 0600) < 0 && errno == ENOENT, "a file could be made in the deleted cwd");
	} else if (!strcmp(mode, "dirfd")) {
		expect_deleted(fd, "d", S_IFDIR);
		expect_deleted(fd2, "d", S_IFDIR);
		struct stat st;
		CHECK(fstat(fd, &st) == 0 && (st.st_mode & 07777) == 0711, "mode 0%o", st.st_mode);
		CHECK(fcntl(fd2, F_GETFL) & O_PATH, "fd2 lost O_PATH");
		CHECK(!(fcntl(fd, F_GETFL) & O_PATH), "fd has O_PATH");
	} else if (!strcmp(mode, "fifo")) {
		expect_deleted(fd, "f", S_IFIFO);
		expect_deleted(fd2, "f", S_IFIFO);
		CHECK(queued(fd2) == 3000, "%d bytes queued", queued(fd2));
		CHECK(fcntl(fd2, F_GETFL) & O_NONBLOCK, "fd2 lost O_NONBLOCK");
		CHECK(!(fcntl(fd, F_GETFL) & O_NONBLOCK), "fd is O_NONBLOCK");
		char buf[3000], want[3000];
		fill(want, sizeof(want), 8);
		CHECK(read(fd2, buf, sizeof(buf)) == 3000 && !memcmp(buf, want, 3000), "the FIFO's data differ");
		CHECK(write(fd, "z", 1) == 1 && read(fd2, buf, 10) == 1, "the ends are not one FIFO");
	} else if (!strcmp(mode, "replaced")) {
		/* (its path is taken: it comes back as an unnamed file in the same directory) */
		struct stat sd;
		CHECK(fstat(fd, &sd) == 0 && sd.st_nlink == 0 && S_ISREG(sd.st_mode) && (sd.st_mode & 0777) == 0600, "fd: nlink %lu mode 0%o", (unsigned long)sd.st_nlink, sd.st_mode);
		expect_link(fd, " (deleted)");
		CHECK(lseek(fd, 0, SEEK_CUR) == 17, "offset");
		expect(fd, 0, 6000, 9, "the replaced file");
		int n = open("r", O_RDONLY);
		CHECK(n >= 0, "the new r is gone");
		expect(n, 0, 3000, 10, "the new r");
		struct stat st;
		CHECK(fstat(n, &st) == 0 && st.st_size == 3000 && (st.st_mode & 0777) == 0644, "the new r changed");
	} else if (!strcmp(mode, "opath")) {
		struct stat st;
		CHECK((fcntl(fd, F_GETFL) & O_PATH) && (fcntl(fd2, F_GETFL) & O_PATH) && (fcntl(fd3, F_GETFL) & O_PATH), "O_PATH lost");
		CHECK(!(fcntl(fd4, F_GETFL) & O_PATH), "fd4 has O_PATH");
		CHECK(fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 500, "fd is not the file");
		CHECK(fstat(fd2, &st) == 0 && S_ISDIR(st.st_mode), "fd2 is not the directory");
		CHECK(fstat(fd3, &st) == 0 && S_ISLNK(st.st_mode), "fd3 is not the symbolic link (mode 0%o)", st.st_mode);
		char t[64];
		ssize_t n = readlinkat(fd3, "", t, sizeof(t));
		CHECK(n == 1 && t[0] == 'f', "readlinkat of the link fd: %zd", n);
		expect_link(fd, "/f");
		expect_link(fd3, "/l");
		expect_link(fd4, "/f");
		char b;
		CHECK(read(fd, &b, 1) < 0 && errno == EBADF, "an O_PATH fd can be read");
		CHECK(lseek(fd4, 0, SEEK_CUR) == 100, "fd4 offset");
		expect(fd4, 0, 500, 11, "through the link");
		int at = openat(fd2, "f", O_RDONLY);
		CHECK(at >= 0, "openat from the O_PATH directory: %s", strerror(errno));
		CHECK(fstat(fd5, &st) == 0 && S_ISSOCK(st.st_mode) && (fcntl(fd5, F_GETFL) & O_PATH), "fd5 is not the socket file");
		CHECK(fstat(fd6, &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(5, 2) && (fcntl(fd6, F_GETFL) & O_PATH), "fd6 is not /dev/ptmx");
		expect_link(fd5, "/s");
		expect_link(fd6, "/dev/ptmx");
	} else if (!strcmp(mode, "memfd")) {
		expect_link(fd, "/memfd:ckpt-test memfd (deleted)");
		expect_link(fd2, "/memfd:ckpt-test memfd (deleted)");
		struct stat st, st2;
		CHECK(fstat(fd, &st) == 0 && st.st_size == 100 * MIB && (st.st_mode & 07777) == 0751, "size %ld mode 0%o", (long)st.st_size, st.st_mode);
		CHECK(fstat(fd2, &st2) == 0 && st2.st_ino == st.st_ino, "the two fds are not one memfd");
		CHECK(st.st_blocks * 512 <= 1 * MIB, "%ld bytes allocated: the holes were filled", (long)st.st_blocks * 512);
		int seals = fcntl(fd, F_GET_SEALS);
		CHECK(seals == (F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_WRITE), "seals %#x", seals);
		CHECK(fcntl(fd, F_GETFD) == FD_CLOEXEC, "close-on-exec lost");
		CHECK(fcntl(fd2, F_GETFD) == 0, "fd2 close-on-exec");
		CHECK(lseek(fd, 0, SEEK_CUR) == 777, "offset");
		CHECK(lseek(fd2, 0, SEEK_CUR) == 0, "fd2 offset");
		expect(fd, 0, 8192, 12, "start");
		expect(fd, 64 * MIB, 3 * 4096, 13, "middle");
		expect_extent(fd, 0, 0, 8192, "start");
		expect_extent(fd, 8192, 64 * MIB, 64 * MIB + 3 * 4096, "middle");
		CHECK(lseek(fd, 64 * MIB + 3 * 4096, SEEK_DATA) < 0 && errno == ENXIO, "data after the middle");
		CHECK(pwrite(fd, "x", 1, 0) < 0 && errno == EPERM, "a write to the sealed memfd worked");
		CHECK(ftruncate(fd, 200 * MIB) < 0, "the memfd grew");
		CHECK(mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED, "a writable mapping of the sealed memfd");
	} else if (!strcmp(mode, "memfd-plain")) {
		expect_link(fd, "/memfd:plain (deleted)");
		CHECK(fcntl(fd, F_GET_SEALS) == F_SEAL_SEAL, "seals %#x", fcntl(fd, F_GET_SEALS));
		CHECK(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE) < 0 && errno == EPERM, "a seal could be added");
		CHECK(fcntl(fd, F_GETFD) == 0, "close-on-exec set");
		expect(fd, 0, 1000, 14, "contents");
		CHECK(lseek(fd, 0, SEEK_CUR) == 1000, "offset");
	} else if (!strcmp(mode, "memfd-shared")) {
		expect_link(fd, "/memfd:shared (deleted)");
		CHECK(fcntl(fd, F_GET_SEALS) == (F_SEAL_FUTURE_WRITE | F_SEAL_SHRINK), "seals %#x", fcntl(fd, F_GET_SEALS));
		CHECK(!strcmp(m1 + 2 * pg, "child wrote this"), "the child's write is gone");
		strcpy(m1 + pg, "after restore");
		CHECK(pwrite(fd, "x", 1, 0) < 0 && errno == EPERM, "write() to the sealed memfd worked");
		kill(kid, SIGTERM);
		wait_kid(kid);
		CHECK(!strcmp(m1 + 2 * pg + 100, "child after restore"), "the child's write after restore is not seen");
		char b[32] = { 0 };
		CHECK(pread(fd, b, 20, 2 * pg + 100) == 20 && !strcmp(b, "child after restore"), "the fd does not see the child's write");
	} else if (!strcmp(mode, "memfd-mapped")) {
		char want[50];
		memset(want, 'Q', 50);
		CHECK(!memcmp(m1 + 2 * pg, want, 50) && !memcmp(m2, want, 50), "the shared data are gone");
		strcpy(m2 + 100, "one memfd");
		CHECK(!strcmp(m1 + 2 * pg + 100, "one memfd"), "the two shared mappings are no longer one memfd");
		memset(want, 'C', 10);
		CHECK(!memcmp(m3, want, 10), "the private copy is gone");
		CHECK(!strcmp(m3 + 2 * pg + 100, "one memfd"), "the private mapping's untouched page does not follow the memfd");
		char text[65536];
		CHECK(read_file("/proc/self/maps", text, sizeof(text)) > 0, "maps");
		CHECK(strstr(text, "/memfd:mapped (deleted)") != NULL, "the mapping does not name the memfd");
	} else if (!strcmp(mode, "twoprocs")) {
		expect_deleted(fd, "g", S_IFREG);
		CHECK(lseek(fd, 0, SEEK_CUR) == 10, "offset");
		CHECK(pwrite(fd, "parent wrote", 13, 4096) == 13, "pwrite");
		kill(kid, SIGTERM);
		wait_kid(kid);
		char b[16] = { 0 };
		CHECK(pread(fd, b, 12, 6000) == 12 && !strcmp(b, "child wrote"), "the child's write is not in the parent's file");
	} else if (!strcmp(mode, "big")) {
		expect_deleted(fd, "g", S_IFREG);
		expect(fd, 0, 512 * MIB, 20, "contents");
	} else if (!strcmp(mode, "memfd-noexec")) {
		expect_link(fd, "/memfd:noexec (deleted)");
		struct stat st;
		CHECK(fstat(fd, &st) == 0 && (st.st_mode & 07777) == 0666, "mode 0%o", st.st_mode);
		int seals = fcntl(fd, F_GET_SEALS);
		CHECK(seals == F_SEAL_EXEC, "seals %#x", seals);
		CHECK(fchmod(fd, 0777) < 0 && errno == EPERM, "exec bits could be set");
		CHECK(fcntl(fd, F_ADD_SEALS, F_SEAL_GROW) == 0, "sealing is not allowed: %s", strerror(errno));
		expect(fd, 0, 100, 18, "contents");
	} else if (!strcmp(mode, "tmpfile")) {
		struct stat st;
		CHECK(fstat(fd, &st) == 0 && st.st_nlink == 0 && st.st_size == 3000 && (st.st_mode & 0777) == 0640, "nlink %lu size %ld mode 0%o", (unsigned long)st.st_nlink, (long)st.st_size, st.st_mode);
		char p[64];
		snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
		CHECK(linkat(AT_FDCWD, p, AT_FDCWD, "linked", AT_SYMLINK_FOLLOW) == 0, "linkat: %s", strerror(errno));
		int n = open("linked", O_RDONLY);
		CHECK(n >= 0, "open linked");
		expect(n, 0, 3000, 19, "linked");
	} else if (!strcmp(mode, "exe-run")) {
		char link[4096];
		ssize_t n = readlink("/proc/self/exe", link, sizeof(link) - 1);
		CHECK(n > 0, "readlink exe");
		link[n] = 0;
		CHECK(strstr(link, "/prog (deleted)") != NULL, "exe is %s", link);
		int e = open("/proc/self/exe", O_RDONLY);
		struct stat st;
		CHECK(e >= 0 && fstat(e, &st) == 0 && st.st_nlink == 0 && (st.st_mode & 0777) == 0755, "exe: nlink %lu mode 0%o", (unsigned long)st.st_nlink, st.st_mode);
		char text[65536];
		CHECK(read_file("/proc/self/maps", text, sizeof(text)) > 0 && strstr(text, "/prog (deleted)"), "the program is not mapped from the deleted file");
		CHECK(access("prog", F_OK) != 0, "prog exists again");
	} else if (!strcmp(mode, "lib-private")) {
		CHECK(!strcmp(m1, "a library"), "the mapped data differ: %.20s", m1);
	}
	(void)fd4;
	subject_pass();
}
