/*
 * vforker - a parent blocked in vfork() while its child runs on in the
 * parent's memory: ckpt must refuse it (they share one address space) and
 * leave both running. The vfork child waits for SIGTERM, then exits; the
 * parent then goes on and, on its own SIGTERM, reports PASS.
 *
 *   vforker OUTFILE
 */
#include "subject.h"
#include <sys/syscall.h>
#include <sys/wait.h>

int main(int argc, char **argv)
{
	subject_init(argc, argv, 1, "");
	install_term_handler(0);
	subject_ready(NULL);
	pid_t c = vfork();
	if (c == 0) {
		/* Only raw syscalls here: this runs on the parent's stack. got_term is shared. */
		struct timespec ts = { 0, 20 * 1000 * 1000 };
		while (!got_term)
			syscall(SYS_nanosleep, &ts, NULL);
		syscall(SYS_exit, 0);
	}
	int st = 0;
	CHECK(waitpid(c, &st, 0) == c && WIFEXITED(st), "vfork child ended with status %#x", st);
	subject_pass();
}
