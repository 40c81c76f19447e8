/*
 * fd_devnull - /dev/null, /dev/zero, /dev/full and /dev/urandom opened
 * separately in many processes (many descriptions of one inode), besides
 * the /dev/null the whole tree inherited as fds 0-2.
 *
 *   fd_devnull OUTFILE
 *
 * The root opens /dev/null O_RDONLY (3) and O_WRONLY (4) and /dev/zero (5)
 * and forks 4 children; child k closes 3 when k is odd, opens /dev/null
 * O_RDWR (6) and O_WRONLY (7) and /dev/zero (8) and /dev/full (9) itself,
 * dup2()s its 6 to 10+k, and child 0 forks a grandchild that opens
 * /dev/urandom (11) and /dev/null again (12). All descriptions of one device
 * are alike but separate: the whole tree is compared (fdtree.h, which tells
 * descriptions apart with kcmp and by setting O_NONBLOCK on one), and
 * /dev/zero must still read zeros.
 */
#include "subject.h"
#include "fdtree.h"

static struct fdt_snap before, after;

int main(int argc, char **argv)
{
	struct fdt_tree t = { 0 };
	struct fdt_shared *sh;
	pid_t kids[4], me = getpid();
	char buf[16];

	subject_init(argc, argv, 1, "");
	install_term_handler(0);
	CHECK(syscall(SYS_close_range, 3, ~0u, 0) == 0, "close_range: %s", strerror(errno));
	sh = fdt_shared_map();
	fdt_open_at(3, "/dev/null", O_RDONLY);
	fdt_open_at(4, "/dev/null", O_WRONLY);
	fdt_open_at(5, "/dev/zero", O_RDONLY);
	for (int k = 0; k < 4; k++) {
		pid_t c = fork();
		CHECK(c >= 0, "fork: %s", strerror(errno));
		if (c != 0) {
			kids[k] = c;
			continue;
		}
		if (k % 2)
			close(3);
		fdt_open_at(6, "/dev/null", O_RDWR);
		fdt_open_at(7, "/dev/null", O_WRONLY);
		fdt_open_at(8, "/dev/zero", O_RDONLY);
		fdt_open_at(9, "/dev/full", O_WRONLY);
		fdt_dup2(6, 10 + k);
		if (k == 0) {
			pid_t g = fork();
			CHECK(g >= 0, "fork: %s", strerror(errno));
			if (g == 0) {
				fdt_open_at(11, "/dev/urandom", O_RDONLY);
				fdt_open_at(12, "/dev/null", O_RDONLY);
				fdt_child_wait(sh, 4);
			}
			sh->pid[0] = getpid();
			sh->ready[0] = 1;
			while (!got_term)
				pause();
			fdt_end_children(&g, 1);
			_exit(0);
		}
		fdt_child_wait(sh, k);
	}
	fdt_wait_ready(sh, 5);
	fdt_add(&t, me, "root");
	for (int k = 0; k < 4; k++) {
		char n[16];
		snprintf(n, sizeof(n), "child %d", k);
		fdt_add(&t, kids[k], n);
	}
	fdt_add(&t, sh->pid[4], "grandchild");
	fdt_ready_then_check(&t, &before, &after);
	for (int k = 0; k < 4; k++) {
		fdt_expect(&t, kids[k], 6, kids[k], 10 + k, 1);
		fdt_expect(&t, kids[k], 6, me, 3, 0);
		fdt_expect(&t, kids[k], 7, me, 4, 0);
	}
	memset(buf, 1, sizeof(buf));
	CHECK(read(5, buf, sizeof(buf)) == sizeof(buf) && !memcmp(buf, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 16), "/dev/zero");
	fdt_end_children(kids, 4);
	subject_pass();
}
