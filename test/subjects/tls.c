/*
 * tls - thread-local storage (fs base) of a single-threaded process.
 *
 *   tls OUTFILE
 *
 * Fills a __thread array (.tbss) and __thread scalars (.tdata with an
 * initializer and .tbss) with seed-derived patterns and sets errno (itself a
 * TLS variable) to 4242; waits in a raw pause syscall issued by inline asm so
 * errno is not touched. After SIGTERM it reads all of them back by ordinary
 * C access through %fs, and checks the thread pointer (fs:0 self pointer and
 * ARCH_GET_FS) is unchanged.
 */
#include "subject.h"
#include <asm/prctl.h>
#include <sys/syscall.h>

#define TLS_WORDS 1024

static __thread uint64_t tls_array[TLS_WORDS];           /* .tbss */
static __thread uint64_t tls_init = 0x1122334455667788ull; /* .tdata */
static __thread int tls_int;
static __thread char tls_str[32];
static __thread void *tls_self;

static uint64_t seed;

static long raw_pause(void)
{
	long r;

	__asm__ volatile("syscall" : "=a"(r) : "0"((long)SYS_pause) : "rcx", "r11", "memory");
	return r;
}

int main(int argc, char **argv)
{
	void *tp_before, *tp_after;
	unsigned long fs_before = 0, fs_after = 0;
	uint64_t init_before;
	int i, err;

	subject_init(argc, argv, 1, "");
	install_term_handler(0);
	seed = random_seed();

	for (i = 0; i < TLS_WORDS; i++)
		tls_array[i] = mix64(seed ^ (uint64_t)i);
	init_before = tls_init;
	tls_init ^= seed;
	tls_int = (int)(seed >> 40) | 1;
	snprintf(tls_str, sizeof(tls_str), "tls-%016llx", (unsigned long long)seed);
	tls_self = &tls_self;
	tp_before = __builtin_thread_pointer();
	CHECK(syscall(SYS_arch_prctl, ARCH_GET_FS, &fs_before) == 0, "ARCH_GET_FS: %s", strerror(errno));

	subject_ready(NULL);
	errno = 4242;
	while (!got_term)
		raw_pause();
	err = errno;

	CHECK(err == 4242, "errno is %d, expected 4242", err);
	tp_after = __builtin_thread_pointer();
	CHECK(tp_after == tp_before, "thread pointer (fs:0) is %p, was %p", tp_after, tp_before);
	CHECK(syscall(SYS_arch_prctl, ARCH_GET_FS, &fs_after) == 0, "ARCH_GET_FS: %s", strerror(errno));
	CHECK(fs_after == fs_before, "fs base is %#lx, was %#lx", fs_after, fs_before);
	CHECK(tls_self == (void *)&tls_self, "__thread pointer to itself is %p, its address is %p",
	      tls_self, (void *)&tls_self);
	for (i = 0; i < TLS_WORDS; i++)
		CHECK(tls_array[i] == mix64(seed ^ (uint64_t)i),
		      "__thread array word %d (%p) is 0x%016llx expected 0x%016llx", i, (void *)&tls_array[i],
		      (unsigned long long)tls_array[i], (unsigned long long)mix64(seed ^ (uint64_t)i));
	CHECK(tls_init == (init_before ^ seed), "__thread tls_init is 0x%016llx expected 0x%016llx",
	      (unsigned long long)tls_init, (unsigned long long)(init_before ^ seed));
	CHECK(tls_int == ((int)(seed >> 40) | 1), "__thread tls_int is %d expected %d", tls_int,
	      (int)(seed >> 40) | 1);
	{
		char exp[32];

		snprintf(exp, sizeof(exp), "tls-%016llx", (unsigned long long)seed);
		CHECK(strcmp(tls_str, exp) == 0, "__thread string is '%.31s' expected '%s'", tls_str, exp);
	}
	subject_pass();
}
