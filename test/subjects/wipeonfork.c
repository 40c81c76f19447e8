/*
 * wipeonfork - an area whose contents a child does not inherit must come
 * back that way: the parent keeps its data, the child still sees zeroes, and
 * both keep the area's VmFlags.
 *
 *   wipeonfork OUTFILE wipe|droppable
 *
 * wipe: anonymous private area with MADV_WIPEONFORK (VmFlag wf).
 * droppable: a MAP_DROPPABLE (0x08) anonymous area (FAIL with the errno if
 * the kernel refuses it); it is wipe-on-fork by itself. (The kernel may drop
 * such pages under memory pressure; with 4 pages that is not expected.)
 * The parent fills the area and forks; the child checks at once that it sees
 * zeroes (it reports through a pipe, closed before READY). On SIGTERM the
 * parent checks its data and VmFlags line, forks a new child which must see
 * zeroes (the flag still works), then has the first child check its zeroes
 * and its VmFlags line (exit code, reason in a shared page).
 */
#include "subject.h"
#include <sys/mman.h>
#include <sys/wait.h>

#ifndef MAP_DROPPABLE
#define MAP_DROPPABLE 0x08
#endif
#define PAGE 4096ul
#define LEN (4 * PAGE)

static volatile uint64_t *area;
static char *cwhy;
static char raw[1 << 20], vmf[1 << 17];

#define CCHECK(cond, ...) do { if (!(cond)) { snprintf(cwhy, PAGE, __VA_ARGS__); _exit(1); } } while (0)

/* The VmFlags line of the area. */
static void flags_of(char *out, size_t n)
{
	char head[32];
	int hl = snprintf(head, sizeof(head), "%lx-", (unsigned long)area);
	out[0] = 0;
	snap_file("/proc/self/smaps", raw, sizeof(raw));
	smaps_vmflags(raw, vmf, sizeof(vmf));
	for (const char *p = vmf; *p;) {
		char line[1024];
		p = copy_line(p, line, sizeof(line));
		if (strncmp(line, head, hl) == 0) { copy_line(p, out, n); return; }
	}
}

static int zeroes(void) { for (size_t i = 0; i < LEN / 8; i++) if (area[i]) return 0; return 1; }

int main(int argc, char **argv)
{
	subject_init(argc, argv, 2, "wipe|droppable");
	int drop = strcmp(argv[2], "droppable") == 0;
	install_term_handler(0);
	cwhy = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(cwhy != MAP_FAILED, "mmap: %s", strerror(errno));
	area = mmap(NULL, LEN, PROT_READ | PROT_WRITE, (drop ? MAP_DROPPABLE : MAP_PRIVATE) | MAP_ANONYMOUS, -1, 0);
	CHECK(area != MAP_FAILED, "mmap %s: %s", drop ? "MAP_DROPPABLE" : "area", strerror(errno));
	if (!drop) CHECK(madvise((void *)area, LEN, MADV_WIPEONFORK) == 0, "MADV_WIPEONFORK: %s", strerror(errno));
	uint64_t seed = random_seed();
	for (size_t i = 0; i < LEN / 8; i++) area[i] = mix64(seed + i);
	prefault_stack(64 * 1024);
	char pflags[1024], cflags[1024];
	flags_of(pflags, sizeof(pflags));
	CHECK(strstr(pflags, " wf "), "the area lacks VmFlag wf: '%s'", pflags);
	CHECK(!drop || strstr(pflags, " dp "), "the droppable area lacks VmFlag dp: '%s'", pflags);
	int fds[2];
	CHECK(pipe(fds) == 0, "pipe: %s", strerror(errno));
	pid_t parent = getpid(), c = fork();
	CHECK(c >= 0, "fork: %s", strerror(errno));
	if (c == 0) {
		close(fds[0]);
		char ok = zeroes() ? 'Z' : 'D';
		flags_of(cflags, sizeof(cflags));
		CCHECK(write(fds[1], &ok, 1) == 1, "write: %s", strerror(errno));
		close(fds[1]);
		while (!got_term) {
			if (getppid() != parent) _exit(2); /* the parent is gone (it failed) */
			struct timespec ts = { 0, 50 * 1000 * 1000 };
			nanosleep(&ts, NULL);
		}
		CCHECK(zeroes(), "the child sees data in the wipe-on-fork area after restore");
		char now[1024];
		flags_of(now, sizeof(now));
		CCHECK(strcmp(now, cflags) == 0, "the child's VmFlags of the area: before '%s' after '%s'", cflags, now);
		_exit(0);
	}
	close(fds[1]);
	char ok = 0;
	CHECK(read(fds[0], &ok, 1) == 1, "no word from the child");
	close(fds[0]);
	CHECK(ok == 'Z', "right after fork the child sees data in the wipe-on-fork area");
	subject_ready(NULL);
	while (!got_term) {
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	for (size_t i = 0; i < LEN / 8; i++)
		CHECK(area[i] == mix64(seed + i), "parent: word %zu is %#lx, expected %#lx", i, (unsigned long)area[i], (unsigned long)mix64(seed + i));
	char now[1024];
	flags_of(now, sizeof(now));
	CHECK(strcmp(now, pflags) == 0, "the parent's VmFlags of the area: before '%s' after '%s'", pflags, now);
	int st = 0;
	pid_t g = fork();
	CHECK(g >= 0, "fork: %s", strerror(errno));
	if (g == 0) _exit(zeroes() ? 0 : 1);
	CHECK(waitpid(g, &st, 0) == g && WIFEXITED(st), "waitpid(new child): status %#x", st);
	CHECK(WEXITSTATUS(st) == 0, "a child forked after restore inherits the data: the area is no longer wipe-on-fork");
	kill(c, SIGTERM);
	CHECK(waitpid(c, &st, 0) == c, "waitpid: %s", strerror(errno));
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s (child status %#x)", cwhy[0] ? cwhy : "child failed", st);
	subject_pass();
}
