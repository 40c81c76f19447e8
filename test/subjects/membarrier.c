/*
 * membarrier - the process's membarrier registrations (a property of its
 * mm) must come back: the expedited commands it registered for must still
 * succeed (unregistered, they fail with EPERM), and
 * MEMBARRIER_CMD_GET_REGISTRATIONS must return the same mask.
 *
 *   membarrier OUTFILE [all]
 *
 * default: REGISTER_PRIVATE_EXPEDITED.
 * all: also REGISTER_PRIVATE_EXPEDITED_SYNC_CORE and
 * REGISTER_PRIVATE_EXPEDITED_RSEQ, each if MEMBARRIER_CMD_QUERY lists it.
 */
#include "subject.h"
#include <linux/membarrier.h>
#include <sys/syscall.h>

#define CMD_GET_REGISTRATIONS (1 << 9)

static int mb(int cmd, unsigned flags) { return (int)syscall(__NR_membarrier, cmd, flags, 0); }

static const struct { int reg, cmd; const char *name; } K[] = {
	{ MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, MEMBARRIER_CMD_PRIVATE_EXPEDITED, "PRIVATE_EXPEDITED" },
	{ MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE, MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE, "PRIVATE_EXPEDITED_SYNC_CORE" },
	{ MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ, MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ, "PRIVATE_EXPEDITED_RSEQ" },
};

int main(int argc, char **argv)
{
	subject_init(argc, argv, 1, "[all]");
	int all = argc > 2 && strcmp(argv[2], "all") == 0;
	install_term_handler(0);
	int q = mb(MEMBARRIER_CMD_QUERY, 0);
	CHECK(q >= 0, "MEMBARRIER_CMD_QUERY: %s", strerror(errno));
	CHECK(q & CMD_GET_REGISTRATIONS, "the kernel has no MEMBARRIER_CMD_GET_REGISTRATIONS (query %#x)", q);
	int used[3] = { 0 };
	for (int k = 0; k < (all ? 3 : 1); k++) {
		if (!(q & K[k].reg)) continue;
		errno = 0;
		CHECK(mb(K[k].cmd, 0) == -1 && errno == EPERM, "%s before registering: %s (expected EPERM)", K[k].name, strerror(errno));
		CHECK(mb(K[k].reg, 0) == 0, "REGISTER_%s: %s", K[k].name, strerror(errno));
		CHECK(mb(K[k].cmd, 0) == 0, "%s after registering: %s", K[k].name, strerror(errno));
		used[k] = 1;
	}
	CHECK(used[0], "the kernel does not support PRIVATE_EXPEDITED (query %#x)", q);
	int before = mb(CMD_GET_REGISTRATIONS, 0);
	CHECK(before >= 0, "GET_REGISTRATIONS: %s", strerror(errno));
	for (int k = 0; k < 3; k++)
		CHECK(!used[k] || (before & K[k].reg), "GET_REGISTRATIONS %#x lacks REGISTER_%s", before, K[k].name);
	subject_ready(NULL);
	while (!got_term) {
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	int after = mb(CMD_GET_REGISTRATIONS, 0);
	CHECK(after == before, "GET_REGISTRATIONS: before %#x after %#x (%s)", before, after, after < 0 ? strerror(errno) : "");
	for (int k = 0; k < 3; k++)
		CHECK(!used[k] || mb(K[k].cmd, 0) == 0, "%s after restore: %s", K[k].name, strerror(errno));
	subject_pass();
}
