/*
 * fd_fifo - empty FIFOs whose ends are open in different processes, and one
 * end shared by two processes.
 *
 *   fd_fifo OUTFILE
 *
 * The root makes p1 and p2. It opens p1's read end (O_RDONLY|O_NONBLOCK,
 * fd 3) and forks R, which shares it; then forks W, which opens p1's write
 * end (O_WRONLY, fd 5), closes its copy of fd 3, and opens p2 O_RDWR (fd
 * 6) and p2's read end (fd 7, O_RDONLY|O_NONBLOCK); the root opens p2's
 * write end itself (fd 4, O_WRONLY) once W holds the read end. Nothing is
 * ever written before the checkpoint.
 * After restore the whole tree is compared (fdtree.h); then the ends must
 * still be one pipe each: bytes written through W's fd 5 (taken with
 * pidfd_getfd) are read through the root's fd 3, bytes written through the
 * root's fd 4 are read through W's fd 7, bytes written through W's fd 5
 * are read through R's fd 3, and through W's fd 6 are read through its 7.
 */
#include "subject.h"
#include "fdtree.h"

static struct fdt_snap before, after;

static void through(const struct fdt_tree *t, pid_t wp, int wfd, pid_t rp, int rfd, const char *msg)
{
	int w = fdt_grab(wp, wfd), r = fdt_grab(rp, rfd);
	char buf[64] = { 0 };
	int fl = fcntl(r, F_GETFL);
	ssize_t n;

	CHECK(write(w, msg, strlen(msg)) == (ssize_t)strlen(msg), "write to %s fd %d: %s", fdt_who(t, wp), wfd, strerror(errno));
	CHECK(fcntl(r, F_SETFL, fl | O_NONBLOCK) == 0, "F_SETFL");
	n = read(r, buf, sizeof(buf) - 1);
	CHECK(fcntl(r, F_SETFL, fl) == 0, "F_SETFL");
	CHECK(n == (ssize_t)strlen(msg) && strcmp(buf, msg) == 0,
	      "'%s' written to %s fd %d: %s fd %d read %zd bytes '%s' (%s): not one FIFO", msg, fdt_who(t, wp), wfd,
	      fdt_who(t, rp), rfd, n, n > 0 ? buf : "", n < 0 ? strerror(errno) : "-");
	close(w);
	close(r);
}

int main(int argc, char **argv)
{
	struct fdt_tree t = { 0 };
	struct fdt_shared *sh;
	pid_t kids[2], me = getpid();

	subject_init(argc, argv, 1, "");
	install_term_handler(0);
	CHECK(syscall(SYS_close_range, 3, ~0u, 0) == 0, "close_range: %s", strerror(errno));
	sh = fdt_shared_map();
	unlink("p1");
	unlink("p2");
	CHECK(mkfifo("p1", 0600) == 0 && mkfifo("p2", 0600) == 0, "mkfifo: %s", strerror(errno));
	CHECK(fdt_open("p1", O_RDONLY | O_NONBLOCK) == 3, "open p1");
	for (int k = 0; k < 2; k++) {
		pid_t c = fork();
		CHECK(c >= 0, "fork: %s", strerror(errno));
		if (c != 0) {
			kids[k] = c;
			continue;
		}
		if (k == 1) {
			close(3);
			fdt_open_at(5, "p1", O_WRONLY);
			fdt_open_at(6, "p2", O_RDWR);
			fdt_open_at(7, "p2", O_RDONLY | O_NONBLOCK);
		}
		fdt_child_wait(sh, k);
	}
	fdt_wait_ready(sh, 2);
	fdt_open_at(4, "p2", O_WRONLY | O_NONBLOCK);
	CHECK(fcntl(4, F_SETFL, 0) == 0, "F_SETFL 4: %s", strerror(errno));
	fdt_add(&t, me, "root");
	fdt_add(&t, kids[0], "reader R");
	fdt_add(&t, kids[1], "writer W");
	fdt_ready_then_check(&t, &before, &after);
	fdt_expect(&t, me, 3, kids[0], 3, 1);
	fdt_expect(&t, kids[1], 6, kids[1], 7, 0);
	through(&t, kids[1], 5, me, 3, "p1 from W to the root");
	through(&t, me, 4, kids[1], 7, "p2 from the root to W");
	through(&t, kids[1], 5, kids[0], 3, "p1 from W to R");
	through(&t, kids[1], 6, kids[1], 7, "p2 within W");
	fdt_end_children(kids, 2);
	subject_pass();
}
