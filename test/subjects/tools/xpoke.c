/*
 * xpoke - fault injection for checking the regs subject (not a subject).
 * XORs one byte of a task's XSAVE area (PTRACE_GETREGSET/SETREGSET
 * NT_X86_XSTATE, standard format) and detaches. gdb 13 cannot write the
 * extended state on this machine (the AMX-sized area gives EFAULT).
 *   xpoke PID COMPONENT OFFSET XOR
 * COMPONENT 0: OFFSET is from the start of the area (FCW 0, MXCSR 24,
 * st0 32 + 16*i, xmm0 160 + 16*i); 2 = ymm upper halves, 5 = k0-7,
 * 6 = zmm0-15 upper halves, 7 = zmm16-31, 17 = TILECFG, 18 = tile data:
 * OFFSET is from that component's start (CPUID leaf 0xd).
 * Example: xpoke PID 5 48 1   flips bit 0 of k6.
 */
#include <cpuid.h>
#include <elf.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/wait.h>

int main(int argc, char **argv)
{
	static unsigned char buf[65536];
	struct iovec iov = { buf, sizeof(buf) };
	unsigned a = 0, b = 0, c = 0, d = 0;
	long base = 0, off;
	int pid, comp, x, st;

	if (argc < 5) {
		fprintf(stderr, "usage: xpoke PID COMPONENT OFFSET XOR\n");
		return 2;
	}
	pid = atoi(argv[1]);
	comp = atoi(argv[2]);
	off = strtol(argv[3], NULL, 0);
	x = (int)strtol(argv[4], NULL, 0);
	if (ptrace(PTRACE_SEIZE, pid, 0, 0) != 0 || ptrace(PTRACE_INTERRUPT, pid, 0, 0) != 0) {
		perror("ptrace");
		return 1;
	}
	waitpid(pid, &st, __WALL);
	if (ptrace(PTRACE_GETREGSET, pid, NT_X86_XSTATE, &iov) != 0) {
		perror("GETREGSET");
		return 1;
	}
	if (comp >= 2) {
		__get_cpuid_count(0xd, (unsigned)comp, &a, &b, &c, &d);
		base = b;
	}
	if (base + off >= (long)iov.iov_len) {
		fprintf(stderr, "offset beyond the %zu-byte area\n", iov.iov_len);
		ptrace(PTRACE_DETACH, pid, 0, 0);
		return 1;
	}
	fprintf(stderr, "xstate %zu bytes, xstate_bv %#llx, component %d at %ld (%u bytes)\n",
		iov.iov_len, *(unsigned long long *)(buf + 512), comp, base, a);
	buf[base + off] ^= (unsigned char)x;
	if (ptrace(PTRACE_SETREGSET, pid, NT_X86_XSTATE, &iov) != 0)
		perror("SETREGSET");
	ptrace(PTRACE_DETACH, pid, 0, 0);
	return 0;
}
