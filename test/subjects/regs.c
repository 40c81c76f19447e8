/*
 * regs - register state held live in a user-mode loop across the checkpoint.
 *
 *   regs OUTFILE
 *
 * A single asm function (regs_spin, below) loads known random patterns into
 *   - the general-purpose registers rax..r15 (all but rsp; rsp is checked too)
 *   - rflags.DF (set during the wait)
 *   - the x87 stack st0..st7 (full 80-bit values)
 *   - zmm0..zmm31 and k0..k7 (AVX-512), or ymm0..15 (AVX), or xmm0..15 (SSE)
 *   - AMX: the tile config and tmm0..tmm7 (if the kernel grants XTILEDATA
 *     permission via arch_prctl(ARCH_REQ_XCOMP_PERM))
 * then spins with no syscall, touching only memory, until the SIGTERM
 * handler sets got_term. About once a millisecond it stores every register
 * into memory, compares against the expected patterns, records the first
 * mismatch, and reloads the general-purpose and x87 registers from what it
 * stored (never from the expected values, so corruption stays visible).
 * READY is written just before entering the loop.
 * After the loop it also checks the x87 control word and MXCSR (set to
 * non-default rounding modes before READY) and the fs/gs bases.
 * On this kernel an AVX-512/AMX state must be saved and restored as a whole
 * XSAVE area; anything lost shows up as "register X differs".
 */
#include "subject.h"
#include <asm/prctl.h>
#include <cpuid.h>
#include <stddef.h>
#include <sys/syscall.h>

#ifndef ARCH_REQ_XCOMP_PERM
#define ARCH_REQ_XCOMP_PERM 0x1023
#endif
#define XFEATURE_XTILEDATA 18

struct regset {
	uint64_t gpr[16];        /* rax rbx rcx rdx rsi rdi rbp rsp r8..r15 */
	uint64_t misc[8];        /* [0] = rflags & DF */
	uint64_t k[8];
	uint8_t x87[8][16];      /* st0..st7, 10 bytes used */
	uint8_t vec[32][64];     /* zmm/ymm/xmm */
	uint8_t tilecfg[64];
	uint8_t tile[8][1024];   /* 16 rows x 64 bytes */
} __attribute__((aligned(64)));

_Static_assert(offsetof(struct regset, misc) == 128, "layout");
_Static_assert(offsetof(struct regset, k) == 192, "layout");
_Static_assert(offsetof(struct regset, x87) == 256, "layout");
_Static_assert(offsetof(struct regset, vec) == 384, "layout");
_Static_assert(offsetof(struct regset, tilecfg) == 2432, "layout");
_Static_assert(offsetof(struct regset, tile) == 2496, "layout");
_Static_assert(sizeof(struct regset) == 10688, "layout");
#define NQWORDS (sizeof(struct regset) / 8) /* 1336, hard-coded below */

/* referenced by name from the asm */
struct regset spin_exp, spin_live;
uint64_t spin_level;    /* 0 = SSE, 1 = AVX, 2 = AVX-512 */
uint64_t spin_amx;
uint64_t spin_holdcnt, spin_iters, spin_mismatches;
uint64_t spin_bad_index, spin_bad_got, spin_bad_exp, spin_bad_iter;

void regs_spin(void);

#define HOLD_LOOPS "1000000"

__asm__(
	".text\n"
	".globl regs_spin\n"
	".type regs_spin, @function\n"
	"regs_spin:\n"
	"	push %rbx\n push %rbp\n push %r12\n push %r13\n push %r14\n push %r15\n"
	"	mov %rsp, spin_exp+56(%rip)\n"
	"	mov %rsp, spin_live+56(%rip)\n"

	/* ---- initial load of vector / mask / tile state from spin_live ---- */
	"	cmpq $0, spin_amx(%rip)\n"
	"	je .Lno_amx_load\n"
	"	ldtilecfg spin_live+2432(%rip)\n"
	"	mov $64, %rcx\n"
	"	.irp i,0,1,2,3,4,5,6,7\n"
	"	lea spin_live+2496+1024*\\i(%rip), %rax\n"
	"	tileloadd (%rax,%rcx,1), %tmm\\i\n"
	"	.endr\n"
	".Lno_amx_load:\n"
	"	cmpq $2, spin_level(%rip)\n"
	"	jne .Lload_not512\n"
	"	.irp i,0,1,2,3,4,5,6,7\n"
	"	kmovq spin_live+192+8*\\i(%rip), %k\\i\n"
	"	.endr\n"
	"	.irp i,0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31\n"
	"	vmovdqu64 spin_live+384+64*\\i(%rip), %zmm\\i\n"
	"	.endr\n"
	"	jmp .Lload_done\n"
	".Lload_not512:\n"
	"	cmpq $1, spin_level(%rip)\n"
	"	jne .Lload_sse\n"
	"	.irp i,0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15\n"
	"	vmovdqu spin_live+384+64*\\i(%rip), %ymm\\i\n"
	"	.endr\n"
	"	jmp .Lload_done\n"
	".Lload_sse:\n"
	"	.irp i,0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15\n"
	"	movdqu spin_live+384+64*\\i(%rip), %xmm\\i\n"
	"	.endr\n"
	".Lload_done:\n"

	/* ---- x87 stack: st(i) = slot i ---- */
	".Lx87_load:\n"
	"	.irp i,7,6,5,4,3,2,1,0\n"
	"	fldt spin_live+256+16*\\i(%rip)\n"
	"	.endr\n"

	/* ---- general-purpose registers ---- */
	".Lgpr_load:\n"
	"	mov spin_live+0(%rip), %rax\n"
	"	mov spin_live+8(%rip), %rbx\n"
	"	mov spin_live+16(%rip), %rcx\n"
	"	mov spin_live+24(%rip), %rdx\n"
	"	mov spin_live+32(%rip), %rsi\n"
	"	mov spin_live+40(%rip), %rdi\n"
	"	mov spin_live+48(%rip), %rbp\n"
	"	mov spin_live+64(%rip), %r8\n"
	"	mov spin_live+72(%rip), %r9\n"
	"	mov spin_live+80(%rip), %r10\n"
	"	mov spin_live+88(%rip), %r11\n"
	"	mov spin_live+96(%rip), %r12\n"
	"	mov spin_live+104(%rip), %r13\n"
	"	mov spin_live+112(%rip), %r14\n"
	"	mov spin_live+120(%rip), %r15\n"

	/* ---- hold: everything live, only memory touched ---- */
	"	std\n"
	"	movq $" HOLD_LOOPS ", spin_holdcnt(%rip)\n"
	".Lhold:\n"
	"	cmpl $0, got_term(%rip)\n"
	"	jne .Lcheck\n"
	"	decq spin_holdcnt(%rip)\n"
	"	jnz .Lhold\n"

	/* ---- store everything into spin_live ---- */
	".Lcheck:\n"
	"	mov %rax, spin_live+0(%rip)\n"
	"	mov %rbx, spin_live+8(%rip)\n"
	"	mov %rcx, spin_live+16(%rip)\n"
	"	mov %rdx, spin_live+24(%rip)\n"
	"	mov %rsi, spin_live+32(%rip)\n"
	"	mov %rdi, spin_live+40(%rip)\n"
	"	mov %rbp, spin_live+48(%rip)\n"
	"	mov %rsp, spin_live+56(%rip)\n"
	"	mov %r8, spin_live+64(%rip)\n"
	"	mov %r9, spin_live+72(%rip)\n"
	"	mov %r10, spin_live+80(%rip)\n"
	"	mov %r11, spin_live+88(%rip)\n"
	"	mov %r12, spin_live+96(%rip)\n"
	"	mov %r13, spin_live+104(%rip)\n"
	"	mov %r14, spin_live+112(%rip)\n"
	"	mov %r15, spin_live+120(%rip)\n"
	"	pushfq\n"
	"	pop %rax\n"
	"	and $0x400, %rax\n"
	"	mov %rax, spin_live+128(%rip)\n"
	"	cld\n"
	"	.irp i,0,1,2,3,4,5,6,7\n"
	"	fstpt spin_live+256+16*\\i(%rip)\n"
	"	.endr\n"
	"	cmpq $2, spin_level(%rip)\n"
	"	jne .Lsave_not512\n"
	"	.irp i,0,1,2,3,4,5,6,7\n"
	"	kmovq %k\\i, spin_live+192+8*\\i(%rip)\n"
	"	.endr\n"
	"	.irp i,0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31\n"
	"	vmovdqu64 %zmm\\i, spin_live+384+64*\\i(%rip)\n"
	"	.endr\n"
	"	jmp .Lsave_vec_done\n"
	".Lsave_not512:\n"
	"	cmpq $1, spin_level(%rip)\n"
	"	jne .Lsave_sse\n"
	"	.irp i,0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15\n"
	"	vmovdqu %ymm\\i, spin_live+384+64*\\i(%rip)\n"
	"	.endr\n"
	"	jmp .Lsave_vec_done\n"
	".Lsave_sse:\n"
	"	.irp i,0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15\n"
	"	movdqu %xmm\\i, spin_live+384+64*\\i(%rip)\n"
	"	.endr\n"
	".Lsave_vec_done:\n"
	"	cmpq $0, spin_amx(%rip)\n"
	"	je .Lsave_amx_done\n"
	"	sttilecfg spin_live+2432(%rip)\n"
	"	cmpb $1, spin_live+2432(%rip)\n"   /* tiles unusable: cfg mismatch reports it */
	"	jne .Lsave_amx_done\n"
	"	mov $64, %rcx\n"
	"	.irp i,0,1,2,3,4,5,6,7\n"
	"	lea spin_live+2496+1024*\\i(%rip), %rax\n"
	"	tilestored %tmm\\i, (%rax,%rcx,1)\n"
	"	.endr\n"
	".Lsave_amx_done:\n"

	/* ---- compare spin_live with spin_exp, qword by qword ---- */
	"	lea spin_live(%rip), %rsi\n"
	"	lea spin_exp(%rip), %rdi\n"
	"	xor %ecx, %ecx\n"
	".Lcmp:\n"
	"	mov (%rsi,%rcx,8), %rax\n"
	"	cmp (%rdi,%rcx,8), %rax\n"
	"	jne .Lmismatch\n"
	".Lcmp_next:\n"
	"	inc %rcx\n"
	"	cmp $1336, %rcx\n"
	"	jb .Lcmp\n"
	"	jmp .Lcmp_done\n"
	".Lmismatch:\n"
	"	cmpq $0, spin_mismatches(%rip)\n"
	"	jne .Lmismatch_count\n"
	"	mov %rcx, spin_bad_index(%rip)\n"
	"	mov %rax, spin_bad_got(%rip)\n"
	"	mov (%rdi,%rcx,8), %rdx\n"
	"	mov %rdx, spin_bad_exp(%rip)\n"
	"	mov spin_iters(%rip), %rdx\n"
	"	mov %rdx, spin_bad_iter(%rip)\n"
	".Lmismatch_count:\n"
	"	incq spin_mismatches(%rip)\n"
	"	jmp .Lcmp_next\n"
	".Lcmp_done:\n"
	"	incq spin_iters(%rip)\n"
	"	cmpl $0, got_term(%rip)\n"
	"	je .Lx87_load\n"

	/* ---- done: x87 stack is empty (popped by the stores) ---- */
	"	cmpq $0, spin_amx(%rip)\n"
	"	je .Lout_noamx\n"
	"	tilerelease\n"
	".Lout_noamx:\n"
	"	cmpq $0, spin_level(%rip)\n"
	"	je .Lout_novz\n"
	"	vzeroupper\n"
	".Lout_novz:\n"
	"	pop %r15\n pop %r14\n pop %r13\n pop %r12\n pop %rbp\n pop %rbx\n"
	"	ret\n"
	".size regs_spin, .-regs_spin\n");

static const char *const gpr_names[16] = {
	"rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
	"r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
};

static void describe(uint64_t idx, char *out, size_t n)
{
	size_t off = idx * 8;

	if (off < 128)
		snprintf(out, n, "%s", gpr_names[off / 8]);
	else if (off < 192)
		snprintf(out, n, "%s", off == 128 ? "rflags.DF" : "misc");
	else if (off < 256)
		snprintf(out, n, "k%zu", (off - 192) / 8);
	else if (off < 384)
		snprintf(out, n, "st%zu (x87) qword %zu", (off - 256) / 16, (off - 256) % 16 / 8);
	else if (off < 2432)
		snprintf(out, n, "%s%zu qword %zu",
			 spin_level == 2 ? "zmm" : spin_level == 1 ? "ymm" : "xmm",
			 (off - 384) / 64, (off - 384) % 64 / 8);
	else if (off < 2496)
		snprintf(out, n, "AMX tile config (TILECFG) qword %zu", (off - 2432) / 8);
	else
		snprintf(out, n, "tmm%zu row %zu qword %zu", (off - 2496) / 1024,
			 (off - 2496) % 1024 / 64, (off - 2496) % 64 / 8);
}

static uint64_t xgetbv0(void)
{
	uint32_t lo, hi;

	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return (uint64_t)hi << 32 | lo;
}

static void detect(int *level, int *amx_cpu)
{
	unsigned a = 0, b = 0, c = 0, d = 0;
	uint64_t xcr0 = 0;
	int osxsave;

	*level = 0;
	*amx_cpu = 0;
	__get_cpuid(1, &a, &b, &c, &d);
	osxsave = (c >> 27) & 1;
	if (!osxsave)
		return;
	xcr0 = xgetbv0();
	if (((c >> 28) & 1) && (xcr0 & 6) == 6)
		*level = 1;
	if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
		return;
	/* avx512f (ebx16) + avx512bw (ebx30, for kmovq); opmask+zmm state */
	if (*level == 1 && ((b >> 16) & 1) && ((b >> 30) & 1) && (xcr0 & 0xe0) == 0xe0)
		*level = 2;
	/* amx-tile (edx24); XTILECFG+XTILEDATA in XCR0 */
	if (((d >> 24) & 1) && (xcr0 & (3ull << 17)) == (3ull << 17))
		*amx_cpu = 1;
}

int main(int argc, char **argv)
{
	uint64_t seed, fs_before, gs_before, fs_after, gs_after;
	uint32_t mxcsr_set = 0xBFC0, mxcsr_before, mxcsr_after; /* RC=down, FTZ, DAZ */
	uint16_t fcw_set = 0x0E7F, fcw_before, fcw_after;       /* RC=chop, PC=double */
	int level, amx_cpu, i, j;
	const char *amx_note = "no AMX on this CPU";

	subject_init(argc, argv, 1, "");
	install_term_handler(0);
	seed = random_seed();

	detect(&level, &amx_cpu);
	spin_level = (uint64_t)level;
	if (amx_cpu) {
		long r = syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA);

		if (r == 0) {
			spin_amx = 1;
			amx_note = "AMX permission granted";
		} else {
			amx_note = "AMX permission refused";
		}
	}
	subject_info("regs: %s, %s\n",
		     level == 2 ? "AVX-512 (zmm0-31, k0-7)" : level == 1 ? "AVX (ymm0-15)" : "SSE (xmm0-15)",
		     amx_note);

	/* expected patterns */
	memset(&spin_exp, 0, sizeof(spin_exp));
	for (i = 0; i < 16; i++)
		spin_exp.gpr[i] = mix64(seed + (uint64_t)i);
	spin_exp.misc[0] = 0x400; /* DF set while holding */
	for (i = 0; i < 8; i++) {
		uint64_t mant = mix64(seed ^ (0x87000 + (uint64_t)i)) | (1ull << 63);
		uint16_t se = (uint16_t)((0x3FFF + i - 4) | (i & 1 ? 0x8000 : 0));

		memcpy(spin_exp.x87[i], &mant, 8);
		memcpy(spin_exp.x87[i] + 8, &se, 2);
	}
	if (level == 2)
		for (i = 0; i < 8; i++)
			spin_exp.k[i] = mix64(seed ^ (0x6b00 + (uint64_t)i));
	for (i = 0; i < (level == 2 ? 32 : 16); i++) {
		int bytes = level == 2 ? 64 : level == 1 ? 32 : 16;

		for (j = 0; j < bytes; j += 8) {
			uint64_t v = mix64(seed ^ ((uint64_t)i << 16 | (uint64_t)j) ^ 0x7ec0000);

			memcpy(&spin_exp.vec[i][j], &v, 8);
		}
	}
	if (spin_amx) {
		spin_exp.tilecfg[0] = 1; /* palette 1, start_row 0 */
		for (i = 0; i < 8; i++) {
			uint16_t colsb = 64;

			memcpy(&spin_exp.tilecfg[16 + 2 * i], &colsb, 2);
			spin_exp.tilecfg[48 + i] = 16;
		}
		for (i = 0; i < 8; i++)
			for (j = 0; j < 1024; j += 8) {
				uint64_t v = mix64(seed ^ ((uint64_t)i << 20 | (uint64_t)j) ^ 0x7113000000ull);

				memcpy(&spin_exp.tile[i][j], &v, 8);
			}
	}
	spin_live = spin_exp;

	/* control registers and segment bases, checked after the loop */
	__asm__ volatile("fldcw %0" : : "m"(fcw_set));
	__asm__ volatile("ldmxcsr %0" : : "m"(mxcsr_set));
	__asm__ volatile("fnstcw %0" : "=m"(fcw_before));
	__asm__ volatile("stmxcsr %0" : "=m"(mxcsr_before));
	CHECK(syscall(SYS_arch_prctl, ARCH_GET_FS, &fs_before) == 0, "ARCH_GET_FS: %s", strerror(errno));
	CHECK(syscall(SYS_arch_prctl, ARCH_GET_GS, &gs_before) == 0, "ARCH_GET_GS: %s", strerror(errno));

	subject_ready(NULL);
	regs_spin();

	__asm__ volatile("fnstcw %0" : "=m"(fcw_after));
	__asm__ volatile("stmxcsr %0" : "=m"(mxcsr_after));
	if (spin_mismatches) {
		char name[128];

		describe(spin_bad_index, name, sizeof(name));
		subject_fail("register %s differs: got 0x%016llx expected 0x%016llx (first seen in check %llu of %llu; %llu mismatching qwords over all checks)",
			     name, (unsigned long long)spin_bad_got, (unsigned long long)spin_bad_exp,
			     (unsigned long long)spin_bad_iter, (unsigned long long)spin_iters,
			     (unsigned long long)spin_mismatches);
	}
	CHECK(spin_iters > 0, "the register loop never ran a check");
	CHECK(fcw_after == fcw_before, "x87 control word is 0x%04x, was 0x%04x", fcw_after, fcw_before);
	CHECK(mxcsr_after == mxcsr_before, "MXCSR is 0x%08x, was 0x%08x", mxcsr_after, mxcsr_before);
	CHECK(syscall(SYS_arch_prctl, ARCH_GET_FS, &fs_after) == 0, "ARCH_GET_FS: %s", strerror(errno));
	CHECK(syscall(SYS_arch_prctl, ARCH_GET_GS, &gs_after) == 0, "ARCH_GET_GS: %s", strerror(errno));
	CHECK(fs_after == fs_before, "fs base is 0x%llx, was 0x%llx",
	      (unsigned long long)fs_after, (unsigned long long)fs_before);
	CHECK(gs_after == gs_before, "gs base is 0x%llx, was 0x%llx",
	      (unsigned long long)gs_after, (unsigned long long)gs_before);
	CHECK((uint64_t)(uintptr_t)__builtin_thread_pointer() == fs_after,
	      "thread pointer %p (fs:0) does not match fs base 0x%llx",
	      __builtin_thread_pointer(), (unsigned long long)fs_after);
	subject_pass();
}
