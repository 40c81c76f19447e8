/*
 * fd_high - high fd numbers and gaps, shared between processes.
 *
 *   fd_high OUTFILE [cycle]
 *
 * The root raises RLIMIT_NOFILE's soft limit to the hard one (H) and opens
 * hi.dat (offset 5) at fd 1000 and lo.dat (offset 6) at fd H-1 (and at
 * 65000 if H allows it), with gaps everywhere between; fd 3 is other.dat.
 * Its child inherits them and moves them: root's 1000 to its H-2 and its
 * 500, root's H-1 to its 1000; and opens its own mine.dat at fd H-1.
 * With "cycle", a second child holds only fd 3 = root's other.dat, fd 4 =
 * its own cyc.dat (restore opens that first, at 3, then gets other.dat at 4:
 * a cycle of moves) and fd H-1 = root's lo.dat, so that the move plan can
 * not park an fd above everything.
 * The whole tree is compared (fdtree.h), and the moved fds checked by name.
 */
#include "subject.h"
#include "fdtree.h"

static struct fdt_snap before, after;

int main(int argc, char **argv)
{
	struct fdt_tree t = { 0 };
	struct fdt_shared *sh;
	int cycle = argc > 2 && strcmp(argv[2], "cycle") == 0;
	pid_t kids[2], me = getpid();
	int nk = cycle ? 2 : 1;
	long H;

	subject_init(argc, argv, 1, "[cycle]");
	install_term_handler(0);
	CHECK(syscall(SYS_close_range, 3, ~0u, 0) == 0, "close_range: %s", strerror(errno));
	H = fdt_raise_nofile();
	CHECK(H > 2000, "RLIMIT_NOFILE hard limit %ld is too low", H);
	sh = fdt_shared_map();
	fdt_mkfile("hi.dat", 100);
	fdt_mkfile("lo.dat", 100);
	fdt_mkfile("other.dat", 100);
	fdt_mkfile("mine.dat", 100);
	fdt_mkfile("cyc.dat", 100);
	CHECK(fdt_open("other.dat", O_RDONLY) == 3, "other.dat");
	int x = fdt_open("hi.dat", O_RDWR);
	fdt_dup2(x, 1000);
	close(x);
	CHECK(lseek(1000, 5, SEEK_SET) == 5, "lseek");
	x = fdt_open("lo.dat", O_RDWR | O_APPEND);
	fdt_dup2(x, (int)H - 1);
	if (H > 65000)
		fdt_dup2(x, 65000);
	close(x);
	CHECK(lseek((int)H - 1, 6, SEEK_SET) == 6, "lseek");
	for (int k = 0; k < nk; k++) {
		pid_t c = fork();
		CHECK(c >= 0, "fork: %s", strerror(errno));
		if (c != 0) {
			kids[k] = c;
			continue;
		}
		if (k == 0) {
			fdt_dup2(1000, (int)H - 2);
			fdt_dup2(1000, 500);
			fdt_dup2((int)H - 1, 1000);
			x = fdt_open("mine.dat", O_RDONLY);
			fdt_dup2(x, (int)H - 1);
			close(x);
		} else {
			int keep = (int)H - 1;
			CHECK(syscall(SYS_close_range, 4, keep - 1, 0) == 0 && syscall(SYS_close_range, keep + 1, ~0u, 0) == 0,
			      "close_range: %s", strerror(errno));
			CHECK(fdt_open("cyc.dat", O_RDWR) == 4, "cyc.dat");
			CHECK(syscall(SYS_close_range, 0, 2, 0) == 0, "close_range: %s", strerror(errno));
		}
		fdt_child_wait(sh, k);
	}
	fdt_wait_ready(sh, nk);
	fdt_add(&t, me, "root");
	fdt_add(&t, kids[0], "child");
	if (cycle)
		fdt_add(&t, kids[1], "cycle child");
	fdt_ready_then_check(&t, &before, &after);
	fdt_expect(&t, me, 1000, kids[0], (int)H - 2, 1);
	fdt_expect(&t, me, 1000, kids[0], 500, 1);
	fdt_expect(&t, me, (int)H - 1, kids[0], 1000, 1);
	fdt_expect(&t, me, (int)H - 1, kids[0], (int)H - 1, 0);
	if (cycle) {
		fdt_expect(&t, me, 3, kids[1], 3, 1);
		fdt_expect(&t, me, (int)H - 1, kids[1], (int)H - 1, 1);
	}
	fdt_end_children(kids, nk);
	subject_pass();
}
