/*
 * clonerace - a parent that creates children sharing its fd table
 * (clone with CLONE_FILES) all the time, so that one may appear while ckpt
 * is freezing the parent. ckpt must check every child it finds once it is
 * frozen: a live child in the image is recorded as sharing the parent's fd
 * table. The test checks the image; the subject checks that it still runs
 * and that its fds are intact.
 *
 *   clonerace OUTFILE
 */
#include "subject.h"
#include <sched.h>
#include <sys/wait.h>

static char stack[64 * 1024] __attribute__((aligned(16)));

static int kid(void *arg)
{
	(void)arg;
	_exit(0);
}

int main(int argc, char **argv)
{
	subject_init(argc, argv, 1, "");
	install_term_handler(0);
	int fd = open("/dev/null", O_RDONLY);
	CHECK(fd >= 0, "open /dev/null: %s", strerror(errno));
	subject_ready(NULL);
	unsigned long rounds = 0;
	while (!got_term) {
		pid_t c = clone(kid, stack + sizeof(stack), CLONE_FILES | SIGCHLD, NULL);
		CHECK(c > 0, "clone: %s", strerror(errno));
		int st;
		while (waitpid(c, &st, 0) < 0)
			CHECK(errno == EINTR, "waitpid: %s", strerror(errno));
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child ended with status %#x", st);
		rounds++;
	}
	CHECK(fcntl(fd, F_GETFD) >= 0, "fd %d is gone", fd);
	CHECK(rounds > 0, "no child was ever made");
	subject_pass();
}
