/*
 * fd_dir - a directory's open file description, shared by a parent and its
 * child, with a position in the middle of its entries (getdents).
 *
 *   fd_dir OUTFILE [big]
 *
 * The root makes d/ with 60 files (600 with "big": an indexed directory on
 * ext4, whose positions are hashes), opens it at fd 3 and reads entries 20
 * at a time with getdents64 until 25 are read, then notes the position and
 * the name of the entry that comes next (read through a second
 * description, at that position). It forks a child, which also opens d/
 * itself (fd 4, position 0) and dup2()s the shared one to fd 6. The whole
 * tree is compared (fdtree.h); then the next getdents64 through the root's
 * fd 3 must give the entry noted, and the child's fd 6 must have moved
 * with it (fdinfo), its fd 4 not.
 */
#include "subject.h"
#include "fdtree.h"

static struct fdt_snap before, after;

struct d64 { uint64_t ino; int64_t off; unsigned short reclen; unsigned char type; char name[]; };

/* Read entries (not . and ..) one getdents64 call of at most `bytes` at a time until n are read. */
static int read_entries(int fd, int n, size_t bytes)
{
	char buf[8192];
	int got = 0;

	while (got < n) {
		long r = syscall(SYS_getdents64, fd, buf, bytes);
		CHECK(r > 0, "getdents64: %s", r < 0 ? strerror(errno) : "end of directory");
		for (long o = 0; o < r;) {
			struct d64 *d = (struct d64 *)(buf + o);
			if (strcmp(d->name, ".") && strcmp(d->name, ".."))
				got++;
			o += d->reclen;
		}
	}
	return got;
}

/* The name of the first entry the next getdents64 gives. */
static void next_name(int fd, char *out, size_t n)
{
	char buf[8192];
	long r = syscall(SYS_getdents64, fd, buf, sizeof(buf));

	CHECK(r > 0, "getdents64: %s", r < 0 ? strerror(errno) : "end of directory");
	snprintf(out, n, "%s", ((struct d64 *)buf)->name);
}

int main(int argc, char **argv)
{
	struct fdt_tree t = { 0 };
	struct fdt_shared *sh;
	int nfiles = argc > 2 && strcmp(argv[2], "big") == 0 ? 600 : 60;
	pid_t c, me = getpid();
	char name[64], want[256], got[256];
	long long pos, p2, p4, p6;
	int fl, x;

	subject_init(argc, argv, 1, "[big]");
	install_term_handler(0);
	CHECK(syscall(SYS_close_range, 3, ~0u, 0) == 0, "close_range: %s", strerror(errno));
	sh = fdt_shared_map();
	CHECK(mkdir("d", 0755) == 0 || errno == EEXIST, "mkdir: %s", strerror(errno));
	for (int i = 0; i < nfiles; i++) {
		snprintf(name, sizeof(name), "d/entry-%04d-with-a-longer-name", i);
		fdt_mkfile(name, 0);
	}
	CHECK(fdt_open("d", O_RDONLY | O_DIRECTORY) == 3, "open d");
	read_entries(3, 25, 20 * 48);
	pos = lseek(3, 0, SEEK_CUR);
	x = fdt_open("d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(lseek(x, pos, SEEK_SET) == pos, "lseek d: %s", strerror(errno));
	next_name(x, want, sizeof(want));
	close(x);
	c = fork();
	CHECK(c >= 0, "fork: %s", strerror(errno));
	if (c == 0) {
		CHECK(fdt_open("d", O_RDONLY | O_DIRECTORY) == 4, "child: open d");
		fdt_dup2(3, 6);
		fdt_child_wait(sh, 0);
	}
	fdt_wait_ready(sh, 1);
	fdt_add(&t, me, "root");
	fdt_add(&t, c, "child");
	fdt_take(&t, &before);
	fdt_probe(&t, &before);
	fdt_expect(&t, me, 3, c, 6, 1);

	subject_ready(NULL);
	while (!got_term)
		pause();

	fdt_check(&t, &before, &after);
	fdt_expect(&t, me, 3, c, 6, 1);
	fdt_expect(&t, me, 3, c, 4, 0);
	next_name(3, got, sizeof(got));
	CHECK(strcmp(got, want) == 0, "the next entry of the directory at fd 3 (position %lld) is %s, was %s", pos, got, want);
	p2 = lseek(3, 0, SEEK_CUR);
	CHECK(fdt_info(c, 6, &p6, &fl) == 0 && fdt_info(c, 4, &p4, &fl) == 0, "child fdinfo");
	CHECK(p2 != pos && p6 == p2, "after reading, the root's fd 3 is at %lld and the child's fd 6 at %lld (both were at %lld): the position is not shared", p2, p6, pos);
	CHECK(p4 == 0, "the child's own fd 4 moved to %lld", p4);
	fdt_end_children(&c, 1);
	subject_pass();
}
