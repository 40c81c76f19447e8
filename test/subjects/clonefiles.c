/*
 * clonefiles - a child made with clone(CLONE_FILES) shares its parent's fd
 * table (it is a process, not a thread): after restore (or a dump with
 * --leave-running) it must still. On SIGTERM the parent checks the sharing
 * still holds (an fd the child opened is open in the parent too), ends the
 * child and reports. (share.c checks more.)
 *
 *   clonefiles OUTFILE
 */
#include "subject.h"
#include <sched.h>
#include <sys/wait.h>
#include <sys/syscall.h>
#include <linux/kcmp.h>

static char stack[64 * 1024] __attribute__((aligned(16)));

static int child_main(void *arg)
{
	(void)arg;
	if (open("/dev/null", O_RDONLY) < 0) /* lands in the shared table */
		_exit(1);
	for (;;) pause();
	return 0;
}

int main(int argc, char **argv)
{
	subject_init(argc, argv, 1, "");
	install_term_handler(0);
	pid_t d = clone(child_main, stack + sizeof(stack), CLONE_FILES | SIGCHLD, NULL);
	CHECK(d > 0, "clone: %s", strerror(errno));
	int before = -1;
	for (int tries = 0; tries < 1000; tries++) {
		/* The child's open shows up in our (shared) table as the lowest free fd. */
		char path[64];
		for (int fd = 3; fd < 64; fd++) {
			snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
			if (access(path, F_OK) == 0) { before = fd; break; }
		}
		if (before >= 0) break;
		usleep(1000);
	}
	CHECK(before >= 0, "the child's fd never showed in the shared table");
	subject_ready(NULL);
	while (!got_term) {
		struct timespec ts = { 0, 50 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	CHECK(syscall(SYS_kcmp, getpid(), d, KCMP_FILES, 0, 0) == 0, "the child %d no longer shares the fd table", d);
	CHECK(fcntl(before, F_GETFD) >= 0, "fd %d (opened by the child) is no longer in the shared table", before);
	kill(d, SIGKILL);
	waitpid(d, NULL, 0);
	subject_pass();
}
