/*
 * fd_flags - open flags belong to the open file description, close-on-exec
 * to the fd: both must come back per description and per fd.
 *
 *   fd_flags OUTFILE
 *
 * The root opens f.dat (100 bytes) as separate descriptions:
 *   3 O_RDWR, and 4 = F_DUPFD_CLOEXEC of it (one description, cloexec
 *   differs); 5 O_WRONLY|O_APPEND at offset 50; 6 O_RDONLY|O_NONBLOCK;
 *   7 O_RDWR with O_APPEND|O_NONBLOCK set later by F_SETFL; 8 O_WRONLY|
 *   O_CLOEXEC and 9 = dup2 of it (without); 10 O_RDONLY|O_NOATIME;
 *   11 O_WRONLY|O_SYNC; 12 O_RDWR|O_DSYNC; 13 O_PATH; 14 "." O_PATH|
 *   O_DIRECTORY; 15 "." O_RDONLY|O_DIRECTORY; 16 O_RDWR at offset 1 MiB
 *   (past the end); 17 O_RDONLY|O_DIRECT (if the file system allows it).
 * Its child inherits them all, sets close-on-exec on its 3 and clears it on
 * its 4 and 8, clears O_NONBLOCK of description 6 (the root's 6 sees it too)
 * and opens f.dat O_RDWR|O_APPEND|O_CLOEXEC at fd 20.
 * The whole tree is compared (fdtree.h: flags with close-on-exec per fd,
 * offsets, descriptions); then a write through 5 must land at the end of
 * the file and a write through 3 at its offset 0.
 */
#include "subject.h"
#include "fdtree.h"

static struct fdt_snap before, after;

#define at(fd, name, flags) fdt_open_at(fd, name, flags)

int main(int argc, char **argv)
{
	struct fdt_tree t = { 0 };
	struct fdt_shared *sh;
	pid_t c, me = getpid();
	struct stat st;
	char b;

	subject_init(argc, argv, 1, "");
	install_term_handler(0);
	CHECK(syscall(SYS_close_range, 3, ~0u, 0) == 0, "close_range: %s", strerror(errno));
	sh = fdt_shared_map();
	fdt_mkfile("f.dat", 100);
	at(3, "f.dat", O_RDWR);
	CHECK(fcntl(3, F_DUPFD_CLOEXEC, 4) == 4, "F_DUPFD_CLOEXEC");
	at(5, "f.dat", O_WRONLY | O_APPEND);
	CHECK(lseek(5, 50, SEEK_SET) == 50, "lseek 5");
	at(6, "f.dat", O_RDONLY | O_NONBLOCK);
	at(7, "f.dat", O_RDWR);
	CHECK(fcntl(7, F_SETFL, O_APPEND | O_NONBLOCK) == 0, "F_SETFL 7");
	at(8, "f.dat", O_WRONLY | O_CLOEXEC);
	fdt_dup2(8, 9);
	at(10, "f.dat", O_RDONLY | O_NOATIME);
	at(11, "f.dat", O_WRONLY | O_SYNC);
	at(12, "f.dat", O_RDWR | O_DSYNC);
	at(13, "f.dat", O_PATH);
	at(14, ".", O_PATH | O_DIRECTORY);
	at(15, ".", O_RDONLY | O_DIRECTORY);
	at(16, "f.dat", O_RDWR);
	CHECK(lseek(16, 1 << 20, SEEK_SET) == 1 << 20, "lseek 16");
	{
		int x = open("f.dat", O_RDONLY | O_DIRECT);
		if (x >= 0) {
			fdt_dup2(x, 17);
			close(x);
		}
	}
	c = fork();
	CHECK(c >= 0, "fork: %s", strerror(errno));
	if (c == 0) {
		CHECK(fcntl(3, F_SETFD, FD_CLOEXEC) == 0 && fcntl(4, F_SETFD, 0) == 0 && fcntl(8, F_SETFD, 0) == 0, "F_SETFD");
		CHECK(fcntl(6, F_SETFL, 0) == 0, "F_SETFL 6");
		at(20, "f.dat", O_RDWR | O_APPEND | O_CLOEXEC);
		fdt_child_wait(sh, 0);
	}
	fdt_wait_ready(sh, 1);
	CHECK(!(fcntl(6, F_GETFL) & O_NONBLOCK), "the child's F_SETFL did not reach the root's fd 6");
	fdt_add(&t, me, "root");
	fdt_add(&t, c, "child");
	fdt_ready_then_check(&t, &before, &after);
	CHECK(write(5, "E", 1) == 1, "write 5: %s", strerror(errno));
	CHECK(fstat(5, &st) == 0 && st.st_size == 101 && lseek(5, 0, SEEK_CUR) == 101,
	      "a write through the O_APPEND fd 5 made the file %lld bytes and left the offset at %lld, expected 101 and 101",
	      (long long)st.st_size, (long long)lseek(5, 0, SEEK_CUR));
	CHECK(write(3, "S", 1) == 1 && pread(6, &b, 1, 0) == 1 && b == 'S' && lseek(4, 0, SEEK_CUR) == 1,
	      "a write through fd 3 did not land at offset 0 (or fd 4 did not move with it)");
	fdt_end_children(&c, 1);
	subject_pass();
}
