/*
 * pintr - fault injection for checking the subjects' EINTR checks (not a
 * subject). Seizes a task, PTRACE_INTERRUPTs it, prints its syscall state,
 * and detaches. With "eintr" or "zero", a syscall interrupted with
 * -ERESTART* is made to return -EINTR or 0 instead of being restarted (what a
 * broken restore would do): blocking subjects must then FAIL.
 *   pintr PID [eintr|zero]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>

int main(int argc, char **argv)
{
	struct user_regs_struct r;
	int pid, st;

	if (argc < 2) {
		fprintf(stderr, "usage: pintr PID [eintr|zero]\n");
		return 2;
	}
	pid = atoi(argv[1]);
	if (ptrace(PTRACE_SEIZE, pid, 0, 0) != 0 || ptrace(PTRACE_INTERRUPT, pid, 0, 0) != 0) {
		perror("ptrace");
		return 1;
	}
	if (waitpid(pid, &st, __WALL) != pid || ptrace(PTRACE_GETREGS, pid, 0, &r) != 0) {
		perror("waitpid/GETREGS");
		return 1;
	}
	fprintf(stderr, "pid %d: rax %lld orig_rax %lld rip %#llx\n", pid, (long long)r.rax,
		(long long)r.orig_rax, (unsigned long long)r.rip);
	if (argc > 2 && (long long)r.rax <= -512 && (long long)r.rax >= -516) {
		r.rax = strcmp(argv[2], "eintr") == 0 ? (unsigned long long)-4 : 0;
		r.orig_rax = (unsigned long long)-1;
		if (ptrace(PTRACE_SETREGS, pid, 0, &r) != 0)
			perror("SETREGS");
		fprintf(stderr, "syscall result forced to %lld\n", (long long)r.rax);
	}
	ptrace(PTRACE_DETACH, pid, 0, 0);
	return 0;
}
