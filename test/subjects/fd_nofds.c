/*
 * fd_nofds - a process with no fds at all (it closed 0-2 too) in a tree
 * whose other processes have fds, some of which pass through it.
 *
 *   fd_nofds OUTFILE
 *
 * The root opens n.dat (fd 3, offset 7) and forks N. N forks G1, which
 * inherits fds 0-3 and keeps them; then N closes every fd it has. N then
 * forks G2, which starts with no fds and opens n.dat itself (fd 0, offset
 * 0) and /dev/null (fd 5). The whole tree is compared (fdtree.h): N must
 * have no fd, G1 shares 0-3 with the root, G2's n.dat is its own.
 */
#include "subject.h"
#include "fdtree.h"

static struct fdt_snap before, after;

int main(int argc, char **argv)
{
	struct fdt_tree t = { 0 };
	struct fdt_shared *sh;
	pid_t n, me = getpid();
	char path[64];
	DIR *d;
	struct dirent *de;
	int count = 0;

	subject_init(argc, argv, 1, "");
	install_term_handler(0);
	CHECK(syscall(SYS_close_range, 3, ~0u, 0) == 0, "close_range: %s", strerror(errno));
	sh = fdt_shared_map();
	fdt_mkfile("n.dat", 100);
	fdt_open_at(3, "n.dat", O_RDWR);
	CHECK(lseek(3, 7, SEEK_SET) == 7, "lseek");
	n = fork();
	CHECK(n >= 0, "fork: %s", strerror(errno));
	if (n == 0) {
		pid_t g[2];

		g[0] = fork();
		CHECK(g[0] >= 0, "fork: %s", strerror(errno));
		if (g[0] == 0)
			fdt_child_wait(sh, 1);
		CHECK(syscall(SYS_close_range, 0, ~0u, 0) == 0, "close_range: %s", strerror(errno));
		g[1] = fork();
		if (g[1] < 0)
			_exit(3);
		if (g[1] == 0) {
			if (open("n.dat", O_RDONLY) != 0)
				_exit(4);
			if (dup2(open("/dev/null", O_WRONLY), 5) != 5)
				_exit(5);
			close(1);
			fdt_child_wait(sh, 2);
		}
		sh->pid[0] = getpid();
		sh->ready[0] = 1;
		while (!got_term)
			pause();
		for (int i = 0; i < 2; i++) {
			int st;
			kill(g[i], SIGTERM);
			if (waitpid(g[i], &st, 0) != g[i] || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
				_exit(6);
		}
		_exit(0);
	}
	fdt_wait_ready(sh, 3);
	fdt_add(&t, me, "root");
	fdt_add(&t, n, "fd-less N");
	fdt_add(&t, sh->pid[1], "G1");
	fdt_add(&t, sh->pid[2], "G2");
	fdt_ready_then_check(&t, &before, &after);
	snprintf(path, sizeof(path), "/proc/%d/fd", n);
	d = opendir(path);
	CHECK(d, "opendir %s: %s", path, strerror(errno));
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			count++;
	closedir(d);
	CHECK(count == 0, "N has %d fds, had none", count);
	for (int fd = 0; fd < 4; fd++)
		fdt_expect(&t, me, fd, sh->pid[1], fd, 1);
	fdt_expect(&t, me, 3, sh->pid[2], 0, 0);
	fdt_end_children(&n, 1);
	subject_pass();
}
