/*
 * fd_siblings - two children share an open file description their parent
 * opened before forking them and closed afterwards: no fd of the parent holds
 * it. Restore creates it in the first child and passes it to the second.
 *
 *   fd_siblings OUTFILE
 *
 * The root opens sib.dat O_RDWR at offset 100, forks A and B, and closes it.
 * A keeps it at fd 3 and dup()s it to fd 7; B moves it to fd 5 and opens
 * sib.dat itself at fd 3 (offset 100 too, same flags: a separate description
 * in the same state). The root then opens sib.dat again (its own description)
 * and other.dat. Before READY and after restore the whole tree is compared
 * (fdtree.h): the same fds, flags, offsets, and descriptions. The key facts
 * are also checked by name (kcmp): A 3 = A 7 = B 5; B 3 is none of them;
 * the root's sib.dat is none of them.
 */
#include "subject.h"
#include "fdtree.h"

static struct fdt_snap before, after;

int main(int argc, char **argv)
{
	struct fdt_tree t = { 0 };
	struct fdt_shared *sh;
	pid_t kids[2];
	int fd, own;

	subject_init(argc, argv, 1, "");
	install_term_handler(0);
	CHECK(syscall(SYS_close_range, 3, ~0u, 0) == 0, "close_range: %s", strerror(errno));
	sh = fdt_shared_map();
	fdt_mkfile("sib.dat", 4096);
	fdt_mkfile("other.dat", 100);
	fd = fdt_open("sib.dat", O_RDWR);
	CHECK(fd == 3 && lseek(fd, 100, SEEK_SET) == 100, "setup sib.dat");
	for (int i = 0; i < 2; i++) {
		pid_t c = fork();
		CHECK(c >= 0, "fork: %s", strerror(errno));
		if (c == 0) {
			if (i == 0) {
				CHECK(dup(3) == 4 && dup2(4, 7) == 7 && close(4) == 0, "A: dup");
			} else {
				fdt_dup2(3, 5);
				close(3);
				CHECK(fdt_open("sib.dat", O_RDWR) == 3 && lseek(3, 100, SEEK_SET) == 100, "B: open sib.dat");
			}
			fdt_child_wait(sh, i);
		}
		kids[i] = c;
	}
	close(fd);
	own = fdt_open("sib.dat", O_RDWR);
	CHECK(lseek(own, 100, SEEK_SET) == 100, "lseek");
	fdt_open("other.dat", O_RDONLY);
	fdt_wait_ready(sh, 2);
	fdt_add(&t, getpid(), "root");
	fdt_add(&t, kids[0], "child A");
	fdt_add(&t, kids[1], "child B");
	fdt_ready_then_check(&t, &before, &after);
	fdt_expect(&t, kids[0], 3, kids[0], 7, 1);
	fdt_expect(&t, kids[0], 3, kids[1], 5, 1);
	fdt_expect(&t, kids[1], 3, kids[1], 5, 0);
	fdt_expect(&t, getpid(), own, kids[0], 3, 0);
	fdt_expect(&t, getpid(), own, kids[1], 3, 0);
	fdt_end_children(kids, 2);
	subject_pass();
}
