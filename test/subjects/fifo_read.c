/*
 * fifo_read - a process blocked in read() on a FIFO opened by path.
 *
 *   fifo_read OUTFILE
 *
 * Creates sub.fifo in cwd, opens it O_RDWR (so the open does not block and
 * there is always a writer), and blocks in read() on it; no data ever comes.
 * The SIGTERM handler has no SA_RESTART: read() returning anything while
 * got_term is 0 is a FAIL. After SIGTERM it checks that the fd is still that
 * FIFO (same inode as the path, O_RDWR) and still works: a byte written to it
 * reads back.
 */
#include "subject.h"

int main(int argc, char **argv)
{
	struct stat st_path, st_fd;
	int fd, fl;
	char c;

	subject_init(argc, argv, 1, "");
	install_term_handler(0);
	unlink("sub.fifo");
	CHECK(mkfifo("sub.fifo", 0600) == 0, "mkfifo: %s", strerror(errno));
	fd = open("sub.fifo", O_RDWR);
	CHECK(fd >= 0, "open sub.fifo: %s", strerror(errno));
	subject_ready(NULL);

	for (;;) {
		ssize_t r = read(fd, &c, 1);
		int e = errno;

		if (r == -1 && e == EINTR && got_term)
			break;
		subject_fail("read on fifo returned %zd errno %d (%s)%s", r,
			     r == -1 ? e : 0, r == -1 ? strerror(e) : "-",
			     got_term ? "" : " without SIGTERM");
	}

	CHECK(fstat(fd, &st_fd) == 0, "fstat fifo fd %d: %s", fd, strerror(errno));
	CHECK(stat("sub.fifo", &st_path) == 0, "stat sub.fifo: %s", strerror(errno));
	CHECK(S_ISFIFO(st_fd.st_mode), "fd %d is no longer a FIFO (mode 0%o)", fd, st_fd.st_mode);
	CHECK(st_fd.st_dev == st_path.st_dev && st_fd.st_ino == st_path.st_ino,
	      "fd %d is FIFO dev/ino %lx/%lu, sub.fifo is %lx/%lu", fd,
	      (unsigned long)st_fd.st_dev, (unsigned long)st_fd.st_ino,
	      (unsigned long)st_path.st_dev, (unsigned long)st_path.st_ino);
	fl = fcntl(fd, F_GETFL);
	CHECK((fl & O_ACCMODE) == O_RDWR && !(fl & O_NONBLOCK), "fifo fd flags are 0%o", fl);
	c = 'x';
	CHECK(write(fd, &c, 1) == 1, "write to fifo: %s", strerror(errno));
	c = 0;
	CHECK(read(fd, &c, 1) == 1 && c == 'x', "byte written to fifo did not read back (got 0x%02x)", c);
	unlink("sub.fifo");
	subject_pass();
}
