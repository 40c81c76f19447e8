/*
 * fd_many - more open file descriptions to pass to one process than one
 * message can carry (SCM_MAX_FD is 253), and many fds per description.
 *
 *   fd_many OUTFILE [N]
 *
 * The root raises RLIMIT_NOFILE to its hard limit and opens N (default 400)
 * descriptions spread over 16 files (description i: file i % 16, offset i,
 * O_RDONLY or O_RDWR, O_APPEND every 5th) at fds 3..N+2, and dups each at
 * 1000+i (close-on-exec every 3rd). It forks A, which forks G; both inherit
 * all 2N fds. Then the root closes the dup of every even i and the
 * original of every i divisible by 3: it keeps fds of about 5N/6
 * descriptions (more than 253, so they reach A and G in several messages),
 * and the descriptions with i divisible by 6 are held by A and G only. G
 * also closes the originals of every 7th. The whole tree is compared
 * (fdtree.h): every fd, flag, offset and which fds are one description.
 */
#include "subject.h"
#include "fdtree.h"

static struct fdt_snap before, after;

int main(int argc, char **argv)
{
	struct fdt_tree t = { 0 };
	struct fdt_shared *sh;
	int n = argc > 2 ? atoi(argv[2]) : 400;
	pid_t a, me = getpid();
	char name[32];

	subject_init(argc, argv, 1, "[N]");
	install_term_handler(0);
	CHECK(n > 0 && n <= 900, "N must be 1..900");
	CHECK(syscall(SYS_close_range, 3, ~0u, 0) == 0, "close_range: %s", strerror(errno));
	CHECK(fdt_raise_nofile() > 2000, "RLIMIT_NOFILE too low");
	sh = fdt_shared_map();
	for (int f = 0; f < 16; f++) {
		snprintf(name, sizeof(name), "many%02d.dat", f);
		fdt_mkfile(name, 2000);
	}
	for (int i = 0; i < n; i++) {
		int flags = (i % 2 ? O_RDWR : O_RDONLY) | (i % 5 == 0 ? O_APPEND : 0);
		snprintf(name, sizeof(name), "many%02d.dat", i % 16);
		CHECK(fdt_open(name, flags) == 3 + i, "open %d", i);
		CHECK(lseek(3 + i, i, SEEK_SET) == i, "lseek");
		CHECK(fcntl(3 + i, i % 3 == 0 ? F_DUPFD_CLOEXEC : F_DUPFD, 1000 + i) == 1000 + i, "dup %d: %s", i, strerror(errno));
	}
	a = fork();
	CHECK(a >= 0, "fork: %s", strerror(errno));
	if (a == 0) {
		pid_t g = fork();
		CHECK(g >= 0, "fork: %s", strerror(errno));
		if (g == 0) {
			for (int i = 0; i < n; i += 7)
				close(3 + i);
			fdt_child_wait(sh, 1);
		}
		sh->pid[0] = getpid();
		sh->ready[0] = 1;
		while (!got_term)
			pause();
		fdt_end_children(&g, 1);
		_exit(0);
	}
	for (int i = 0; i < n; i++) {
		if (i % 2 == 0)
			close(1000 + i);
		if (i % 3 == 0)
			close(3 + i);
	}
	fdt_wait_ready(sh, 2);
	fdt_add(&t, me, "root");
	fdt_add(&t, a, "child A");
	fdt_add(&t, sh->pid[1], "grandchild G");
	fdt_ready_then_check(&t, &before, &after);
	for (int i = 1; i < n; i += 6)
		fdt_expect(&t, me, 3 + i, sh->pid[1], 1000 + i, 1);
	fdt_end_children(&a, 1);
	subject_pass();
}
