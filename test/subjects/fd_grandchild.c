/*
 * fd_grandchild - grandchildren share open file descriptions with their
 * grandparent that the process between them closed: restore must pass them
 * past a process that does not hold them.
 *
 *   fd_grandchild OUTFILE
 *
 * The root opens g.dat O_RDWR|O_APPEND (offset 10) and h.dat O_RDONLY
 * (offset 20), forks M; M opens m.dat (offset 30) and forks G1 and G2, then
 * closes g.dat and h.dat. G1 keeps everything where it was; G2 moves g.dat
 * to fd 12 and closes h.dat. The root, after the fork, opens h.dat again (a
 * separate description at offset 20 too). So: root 3 = G1 3 = G2 12 (M none);
 * root 4 = G1 4 (M none, G2 none); M 5 = G1 5 = G2 5; root's second h.dat
 * is not G1 4. The whole tree is compared (fdtree.h) and these facts checked
 * by name.
 */
#include "subject.h"
#include "fdtree.h"

static struct fdt_snap before, after;

int main(int argc, char **argv)
{
	struct fdt_tree t = { 0 };
	struct fdt_shared *sh;
	pid_t m, h2;

	subject_init(argc, argv, 1, "");
	install_term_handler(0);
	CHECK(syscall(SYS_close_range, 3, ~0u, 0) == 0, "close_range: %s", strerror(errno));
	sh = fdt_shared_map();
	fdt_mkfile("g.dat", 1000);
	fdt_mkfile("h.dat", 1000);
	fdt_mkfile("m.dat", 1000);
	CHECK(fdt_open("g.dat", O_RDWR | O_APPEND) == 3 && lseek(3, 10, SEEK_SET) == 10, "g.dat");
	CHECK(fdt_open("h.dat", O_RDONLY) == 4 && lseek(4, 20, SEEK_SET) == 20, "h.dat");
	m = fork();
	CHECK(m >= 0, "fork: %s", strerror(errno));
	if (m == 0) {
		pid_t g[2];

		CHECK(fdt_open("m.dat", O_RDWR) == 5 && lseek(5, 30, SEEK_SET) == 30, "m.dat");
		for (int i = 0; i < 2; i++) {
			g[i] = fork();
			CHECK(g[i] >= 0, "fork: %s", strerror(errno));
			if (g[i] == 0) {
				if (i == 1) {
					fdt_dup2(3, 12);
					close(3);
					close(4);
				}
				fdt_child_wait(sh, 1 + i);
			}
		}
		close(3);
		close(4);
		sh->pid[0] = getpid();
		sh->ready[0] = 1;
		while (!got_term)
			pause();
		fdt_end_children(g, 2);
		_exit(0);
	}
	h2 = fdt_open("h.dat", O_RDONLY);
	CHECK(lseek(h2, 20, SEEK_SET) == 20, "lseek");
	fdt_wait_ready(sh, 3);
	fdt_add(&t, getpid(), "root");
	fdt_add(&t, m, "middle");
	fdt_add(&t, sh->pid[1], "grandchild G1");
	fdt_add(&t, sh->pid[2], "grandchild G2");
	fdt_ready_then_check(&t, &before, &after);
	fdt_expect(&t, getpid(), 3, sh->pid[1], 3, 1);
	fdt_expect(&t, getpid(), 3, sh->pid[2], 12, 1);
	fdt_expect(&t, getpid(), 4, sh->pid[1], 4, 1);
	fdt_expect(&t, m, 5, sh->pid[1], 5, 1);
	fdt_expect(&t, m, 5, sh->pid[2], 5, 1);
	fdt_expect(&t, getpid(), h2, sh->pid[1], 4, 0);
	fdt_end_children(&m, 1);
	subject_pass();
}
