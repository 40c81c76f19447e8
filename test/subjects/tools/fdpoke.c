/*
 * fdpoke - fault injection for checking the open-file subjects (fd_*.c; not
 * a subject). Stops a task with ptrace, makes it run one of the fd table
 * changes a broken restore could make, and lets it go on where it was (it
 * must be waiting in a system call: pause, nanosleep).
 *   fdpoke TID dup2 A B       B becomes another fd of A's description
 *   fdpoke TID close FD
 *   fdpoke TID reopen FD      FD becomes a description of its own, with the
 *                             same file, flags and offset (a split)
 *   fdpoke TID cloexec FD 0|1
 *   fdpoke TID setfl FD OCTAL F_SETFL (the description's flags)
 *   fdpoke TID lseek FD OFF
 *   fdpoke TID open PATH      open(PATH, O_RDONLY) at the lowest free number
 *   fdpoke TID unshare        unshare(CLONE_FILES): the task gets a table of its own
 *   fdpoke TID closeall       close_range(0, ~0)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>

static int tid;
static struct user_regs_struct saved;

static long inject(long nr, long a1, long a2, long a3, long a4)
{
	struct user_regs_struct r = saved;
	int st;

	r.rax = (unsigned long long)nr;
	r.orig_rax = (unsigned long long)-1;
	r.rdi = (unsigned long long)a1;
	r.rsi = (unsigned long long)a2;
	r.rdx = (unsigned long long)a3;
	r.r10 = (unsigned long long)a4;
	r.rip = saved.rip - 2;
	if (ptrace(PTRACE_SETREGS, tid, 0, &r) != 0 || ptrace(PTRACE_SINGLESTEP, tid, 0, 0) != 0) {
		perror("SETREGS/SINGLESTEP");
		exit(1);
	}
	if (waitpid(tid, &st, __WALL) != tid || ptrace(PTRACE_GETREGS, tid, 0, &r) != 0) {
		perror("waitpid/GETREGS");
		exit(1);
	}
	fprintf(stderr, "tid %d: syscall %ld(%ld, %ld, %ld, %ld) = %lld\n", tid, nr, a1, a2, a3, a4, (long long)r.rax);
	return (long)r.rax;
}

/* Put a string in the task's memory, well below its stack pointer. */
static long put_string(const char *s)
{
	unsigned long at = (saved.rsp - 4096) & ~7ul;
	size_t n = strlen(s) + 1;

	for (size_t i = 0; i < n; i += 8) {
		long w = 0;
		memcpy(&w, s + i, n - i < 8 ? n - i : 8);
		if (ptrace(PTRACE_POKEDATA, tid, at + i, w) != 0) {
			perror("POKEDATA");
			exit(1);
		}
	}
	return (long)at;
}

static void fdinfo(int fd, long long *pos, int *flags)
{
	char path[64], text[4096];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", tid, fd);
	f = fopen(path, "r");
	if (!f) {
		perror(path);
		exit(1);
	}
	text[fread(text, 1, sizeof(text) - 1, f)] = 0;
	fclose(f);
	*pos = strtoll(strstr(text, "pos:") + 4, NULL, 10);
	*flags = (int)strtol(strstr(text, "flags:") + 6, NULL, 8);
}

int main(int argc, char **argv)
{
	int st;
	long w;

	if (argc < 3) {
		fprintf(stderr, "usage: fdpoke TID dup2 A B | close FD | reopen FD | cloexec FD 0|1 | setfl FD OCTAL | lseek FD OFF | open PATH | unshare | closeall\n");
		return 2;
	}
	tid = atoi(argv[1]);
	if (ptrace(PTRACE_SEIZE, tid, 0, 0) != 0 || ptrace(PTRACE_INTERRUPT, tid, 0, 0) != 0) {
		perror("ptrace");
		return 1;
	}
	if (waitpid(tid, &st, __WALL) != tid || ptrace(PTRACE_GETREGS, tid, 0, &saved) != 0) {
		perror("waitpid/GETREGS");
		return 1;
	}
	errno = 0;
	w = ptrace(PTRACE_PEEKTEXT, tid, saved.rip - 2, 0);
	if ((w & 0xffff) != 0x050f) {
		fprintf(stderr, "tid %d is not in a system call (rip %#llx)\n", tid, (unsigned long long)saved.rip);
		ptrace(PTRACE_DETACH, tid, 0, 0);
		return 1;
	}
	const char *op = argv[2];
	int a = argc > 3 ? atoi(argv[3]) : 0;
	if (!strcmp(op, "dup2") && argc > 4)
		inject(SYS_dup2, a, atoi(argv[4]), 0, 0);
	else if (!strcmp(op, "close"))
		inject(SYS_close, a, 0, 0, 0);
	else if (!strcmp(op, "reopen")) {
		long long pos;
		int flags, cloexec;
		char path[64];
		long fd;

		fdinfo(a, &pos, &flags);
		cloexec = (flags & O_CLOEXEC) != 0;
		snprintf(path, sizeof(path), "/proc/self/fd/%d", a);
		fd = inject(SYS_openat, AT_FDCWD, put_string(path), (flags & ~O_CLOEXEC) | O_CLOEXEC, 0);
		if (fd >= 0) {
			if (!(flags & O_PATH))
				inject(SYS_lseek, fd, pos, SEEK_SET, 0);
			inject(SYS_dup3, fd, a, cloexec ? O_CLOEXEC : 0, 0);
			inject(SYS_close, fd, 0, 0, 0);
		}
	} else if (!strcmp(op, "cloexec") && argc > 4)
		inject(SYS_fcntl, a, F_SETFD, atoi(argv[4]) ? FD_CLOEXEC : 0, 0);
	else if (!strcmp(op, "setfl") && argc > 4)
		inject(SYS_fcntl, a, F_SETFL, strtol(argv[4], NULL, 8), 0);
	else if (!strcmp(op, "lseek") && argc > 4)
		inject(SYS_lseek, a, atol(argv[4]), SEEK_SET, 0);
	else if (!strcmp(op, "open") && argc > 3)
		inject(SYS_openat, AT_FDCWD, put_string(argv[3]), O_RDONLY, 0);
	else if (!strcmp(op, "unshare"))
		inject(SYS_unshare, CLONE_FILES, 0, 0, 0);
	else if (!strcmp(op, "closeall"))
		inject(SYS_close_range, 0, ~0u, 0, 0);
	else
		fprintf(stderr, "fdpoke: bad operation %s\n", op);
	if (ptrace(PTRACE_SETREGS, tid, 0, &saved) != 0)
		perror("SETREGS");
	ptrace(PTRACE_DETACH, tid, 0, 0);
	return 0;
}
