/*
 * fd_twice - one process has the same file open as separate open file
 * descriptions, some in exactly the same state, plus dups: restore must not
 * merge them.
 *
 *   fd_twice OUTFILE
 *
 * The root opens t.dat five times: fd 3 O_RDWR offset 10, fd 4 O_RDWR
 * offset 20, fd 5 and fd 6 O_RDONLY offset 0 (identical but separate), fd 8
 * O_RDONLY offset 0 again; fd 7 = dup(3), fd 9 = dup(5). A child inherits
 * them all, opens t.dat once more at fd 10 (O_RDONLY offset 0, like 5 and 6)
 * and dup2()s its fd 6 to fd 11. The whole tree is compared (fdtree.h); by
 * name: 3 = 7, 5 = 9, and 3, 4, 5, 6, 8 pairwise not one; child 10 is none
 * of the root's; child 11 = root 6.
 */
#include "subject.h"
#include "fdtree.h"

static struct fdt_snap before, after;

static void facts(const struct fdt_tree *t, pid_t root, pid_t c)
{
	static const int sep[] = { 3, 4, 5, 6, 8 };

	fdt_expect(t, root, 3, root, 7, 1);
	fdt_expect(t, root, 5, root, 9, 1);
	for (int i = 0; i < 5; i++)
		for (int j = i + 1; j < 5; j++)
			fdt_expect(t, root, sep[i], root, sep[j], 0);
	for (int i = 0; i < 5; i++) {
		fdt_expect(t, root, sep[i], c, 10, 0);
		fdt_expect(t, root, sep[i], c, sep[i], 1);
	}
	fdt_expect(t, root, 6, c, 11, 1);
}

int main(int argc, char **argv)
{
	struct fdt_tree t = { 0 };
	struct fdt_shared *sh;
	pid_t c;

	subject_init(argc, argv, 1, "");
	install_term_handler(0);
	CHECK(syscall(SYS_close_range, 3, ~0u, 0) == 0, "close_range: %s", strerror(errno));
	sh = fdt_shared_map();
	fdt_mkfile("t.dat", 1000);
	CHECK(fdt_open("t.dat", O_RDWR) == 3 && lseek(3, 10, SEEK_SET) == 10, "fd 3");
	CHECK(fdt_open("t.dat", O_RDWR) == 4 && lseek(4, 20, SEEK_SET) == 20, "fd 4");
	CHECK(fdt_open("t.dat", O_RDONLY) == 5, "fd 5");
	CHECK(fdt_open("t.dat", O_RDONLY) == 6, "fd 6");
	CHECK(dup(3) == 7, "fd 7");
	CHECK(fdt_open("t.dat", O_RDONLY) == 8, "fd 8");
	CHECK(dup(5) == 9, "fd 9");
	c = fork();
	CHECK(c >= 0, "fork: %s", strerror(errno));
	if (c == 0) {
		CHECK(fdt_open("t.dat", O_RDONLY) == 10, "child fd 10");
		fdt_dup2(6, 11);
		fdt_child_wait(sh, 0);
	}
	fdt_wait_ready(sh, 1);
	fdt_add(&t, getpid(), "root");
	fdt_add(&t, c, "child");
	facts(&t, getpid(), c);
	fdt_ready_then_check(&t, &before, &after);
	facts(&t, getpid(), c);
	fdt_end_children(&c, 1);
	subject_pass();
}
