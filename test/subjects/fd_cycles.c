/*
 * fd_cycles - fd numbers that make restore move fds in cycles: the fds a
 * process gets (the descriptions it creates itself, then those passed to it)
 * arrive at the lowest free numbers, so a description of its own at a number
 * above ones it is passed sits where another must go.
 *
 *   fd_cycles OUTFILE
 *
 * The root opens a.dat..e.dat at fds 3-7 (offsets 1-5) and forks:
 *   C1: swaps 3 and 4 and rotates 5-7 (5 = root's 6, 6 = root's 7, 7 = root's
 *       5), puts a.dat at fd 0 too, and opens x.dat, y.dat, z.dat (its own)
 *       at 8-10; its child G1 inherits that table and rotates 8-10 and swaps
 *       1 and 2 (both /dev/null, two descriptions);
 *   C2: has only fd 3 = root's a.dat and fd 4 = its own w.dat: restore
 *       (whose new processes hold fds 0-2 until they get their own) opens
 *       w.dat at 3 and gets a.dat at 4: a 2-cycle;
 *   C3: has only fd 3 = root's a.dat, fd 4 = root's b.dat and fd 5 = its
 *       own v.dat: a 3-cycle the same way;
 *   C4: has only fd 0 = root's a.dat and fd 1 = its own u.dat (a 2-cycle
 *       if the new process held no fds).
 * The whole tree is compared (fdtree.h); the moved fds are also checked by
 * name against the root's.
 */
#include "subject.h"
#include "fdtree.h"

static struct fdt_snap before, after;

static void swap(int a, int b)
{
	int t = fcntl(a, F_DUPFD, 100);
	CHECK(t >= 0, "dup: %s", strerror(errno));
	fdt_dup2(b, a);
	fdt_dup2(t, b);
	close(t);
}

static void keep_only(int n)
{
	CHECK(syscall(SYS_close_range, n, ~0u, 0) == 0, "close_range: %s", strerror(errno));
}

int main(int argc, char **argv)
{
	struct fdt_tree t = { 0 };
	struct fdt_shared *sh;
	pid_t kids[4], me = getpid();
	static const char *names[] = { "a.dat", "b.dat", "c.dat", "d.dat", "e.dat", "x.dat", "y.dat", "z.dat", "w.dat", "v.dat", "u.dat" };

	subject_init(argc, argv, 1, "");
	install_term_handler(0);
	keep_only(3);
	sh = fdt_shared_map();
	for (int i = 0; i < 11; i++)
		fdt_mkfile(names[i], 100);
	for (int i = 0; i < 5; i++)
		CHECK(fdt_open(names[i], O_RDWR) == 3 + i && lseek(3 + i, 1 + i, SEEK_SET) == 1 + i, "open %s", names[i]);
	for (int k = 0; k < 4; k++) {
		pid_t c = fork();
		CHECK(c >= 0, "fork: %s", strerror(errno));
		if (c != 0) {
			kids[k] = c;
			continue;
		}
		if (k == 0) {
			pid_t g;

			swap(3, 4);
			swap(5, 6);	/* 5 = root 6, 6 = root 5 */
			swap(6, 7);	/* 6 = root 7, 7 = root 5 */
			fdt_dup2(4, 0);
			for (int i = 0; i < 3; i++)
				CHECK(fdt_open(names[5 + i], O_RDONLY) == 8 + i, "open %s", names[5 + i]);
			g = fork();
			CHECK(g >= 0, "fork: %s", strerror(errno));
			if (g == 0) {
				swap(8, 9);	/* 8 = y, 9 = x */
				swap(9, 10);	/* 9 = z, 10 = x */
				CHECK(close(1) == 0 && open("/dev/null", O_WRONLY) == 1, "reopen 1");
				swap(1, 2);
				fdt_child_wait(sh, 4);
			}
			sh->pid[0] = getpid();
			sh->ready[0] = 1;
			while (!got_term)
				pause();
			fdt_end_children(&g, 1);
			_exit(0);
		}
		if (k == 1) {
			keep_only(4);
			CHECK(fdt_open(names[8], O_RDWR) == 4, "open w.dat");
			CHECK(syscall(SYS_close_range, 0, 2, 0) == 0, "close_range");
		} else if (k == 2) {
			keep_only(5);
			CHECK(fdt_open(names[9], O_RDWR) == 5, "open v.dat");
			CHECK(syscall(SYS_close_range, 0, 2, 0) == 0, "close_range");
		} else {
			fdt_dup2(3, 0);
			keep_only(1);
			CHECK(fdt_open(names[10], O_RDWR) == 1, "open u.dat");
		}
		fdt_child_wait(sh, k);
	}
	fdt_wait_ready(sh, 5);
	fdt_add(&t, me, "root");
	fdt_add(&t, kids[0], "C1");
	fdt_add(&t, sh->pid[4], "G1");
	fdt_add(&t, kids[1], "C2");
	fdt_add(&t, kids[2], "C3");
	fdt_add(&t, kids[3], "C4");
	fdt_ready_then_check(&t, &before, &after);
	fdt_expect(&t, me, 3, kids[0], 4, 1);
	fdt_expect(&t, me, 4, kids[0], 3, 1);
	fdt_expect(&t, me, 3, kids[0], 0, 1);
	fdt_expect(&t, me, 6, kids[0], 5, 1);
	fdt_expect(&t, me, 7, kids[0], 6, 1);
	fdt_expect(&t, me, 5, kids[0], 7, 1);
	fdt_expect(&t, kids[0], 8, sh->pid[4], 10, 1);
	fdt_expect(&t, kids[0], 9, sh->pid[4], 8, 1);
	fdt_expect(&t, kids[0], 10, sh->pid[4], 9, 1);
	fdt_expect(&t, me, 3, kids[1], 3, 1);
	fdt_expect(&t, me, 3, kids[2], 3, 1);
	fdt_expect(&t, me, 4, kids[2], 4, 1);
	fdt_expect(&t, me, 3, kids[3], 0, 1);
	fdt_end_children(kids, 4);
	subject_pass();
}
