/*
 * tracer - not a subject to checkpoint but a helper: it attaches to another
 * process with PTRACE_SEIZE (as a debugger would) and holds on until SIGTERM,
 * so that tests can check that ckpt refuses a process traced by someone else.
 *
 *   tracer OUTFILE PID
 */
#include "subject.h"
#include <sys/ptrace.h>

int main(int argc, char **argv)
{
	subject_init(argc, argv, 2, "PID");
	pid_t pid = (pid_t)atoi(argv[2]);
	install_term_handler(0);
	CHECK(ptrace(PTRACE_SEIZE, pid, 0, 0) == 0, "PTRACE_SEIZE %d: %s", pid, strerror(errno));
	subject_ready(NULL);
	while (!got_term)
		pause();
	CHECK(ptrace(PTRACE_DETACH, pid, 0, 0) == 0 || errno == ESRCH, "PTRACE_DETACH: %s", strerror(errno));
	subject_pass();
}
