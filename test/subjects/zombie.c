/*
 * zombie - zombies must stay zombies, with the same PID, parent and exit
 * status, so that the parent's wait() still returns that status: one child
 * that exited with 42 and one killed by SIGUSR1, neither reaped.
 *
 *   zombie OUTFILE
 */
#include "subject.h"
#include <sys/wait.h>

int main(int argc, char **argv)
{
	subject_init(argc, argv, 1, "");
	install_term_handler(0);
	pid_t a = fork();
	if (a == 0) _exit(42);
	pid_t b = fork();
	if (b == 0) { signal(SIGUSR1, SIG_DFL); for (;;) pause(); }
	kill(b, SIGUSR1);
	while (proc_state(a) != 'Z' || proc_state(b) != 'Z') usleep(1000);
	subject_ready(NULL);
	while (!got_term) {
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	CHECK(proc_state(a) == 'Z', "child %d is no longer a zombie (state %c)", a, proc_state(a));
	CHECK(proc_state(b) == 'Z', "child %d is no longer a zombie (state %c)", b, proc_state(b));
	int st = 0;
	CHECK(waitpid(a, &st, WNOHANG) == a, "waitpid(%d): %s", a, strerror(errno));
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 42, "child %d: status %#x, expected exit 42", a, st);
	CHECK(waitpid(b, &st, WNOHANG) == b, "waitpid(%d): %s", b, strerror(errno));
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGUSR1, "child %d: status %#x, expected killed by SIGUSR1", b, st);
	subject_pass();
}
