/*
 * shmem_child - a MAP_SHARED|MAP_ANONYMOUS area of 16 pages must stay one
 * object shared by parent and child, with pages that only the child ever
 * touched.
 *
 *   shmem_child OUTFILE [remap]
 *
 * The parent writes page 0 before the fork; the child writes pages 5 and 9
 * after it; the parent never touches 5 or 9 before the checkpoint. On SIGTERM
 * the parent checks pages 0, 5, 9 hold their patterns and all others are
 * zero, writes page 10, asks the child (SIGUSR1) to write page 12 and waits
 * to see it: a copy instead of shared memory never shows it. Then the child
 * checks its own view (0, 5, 9, 10, 12 set, the rest zero).
 * "remap": the child also maps pages 4..13 of the object at another address
 * (mremap with old_size 0, MREMAP_MAYMOVE), writes page 9 and page 12
 * through that alias, and checks the alias shows the object at offset 4
 * pages (contents, and the alias's maps line: offset 0x4000, same inode).
 */
#include "subject.h"
#include <sys/mman.h>
#include <sys/wait.h>

#define PAGE 4096ul
#define NPAGES 16
#define A_FIRST 4   /* the alias shows pages A_FIRST .. A_FIRST+A_LEN-1 */
#define A_LEN 10

static volatile uint64_t *base, *alias;
static char *cwhy; /* shared page: the child's failure reason */
static pid_t parent;
static volatile sig_atomic_t got_usr1;
static void on_usr1(int s) { (void)s; got_usr1 = 1; }

static uint64_t pat(int page, size_t i) { return mix64(((uint64_t)page << 32) | i) | 1; }
static volatile uint64_t *pg(volatile uint64_t *m, int page) { return m + (size_t)page * PAGE / 8; }
static void fill(volatile uint64_t *p, int page) { for (size_t i = 0; i < PAGE / 8; i++) p[i] = pat(page, i); }

/* Check pages [first, first+n) of the object seen at m (page first at m); 0 or -1 with why. */
static int check_view(volatile uint64_t *m, int first, int n, const char *set, char *why, size_t wn)
{
	for (int p = first; p < first + n; p++) {
		int want = strchr(set, 'a' + p) != NULL;
		volatile uint64_t *q = pg(m, p - first);
		for (size_t i = 0; i < PAGE / 8; i++)
			if (q[i] != (want ? pat(p, i) : 0)) {
				snprintf(why, wn, "page %d word %zu is %#lx, expected %#lx", p, i,
					 (unsigned long)q[i], (unsigned long)(want ? pat(p, i) : 0));
				return -1;
			}
	}
	return 0;
}

/* Offset and inode of the maps line starting at address a. */
static int maps_of(const void *a, unsigned long *off, unsigned long *ino)
{
	static char text[1 << 16];
	char head[32];
	snap_file("/proc/self/maps", text, sizeof(text));
	int hl = snprintf(head, sizeof(head), "%lx-", (unsigned long)a);
	for (char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (strncmp(p, head, hl) == 0)
			return sscanf(p, "%*s %*s %lx %*s %lu", off, ino) == 2 ? 0 : -1;
	return -1;
}

#define CCHECK(cond, ...) do { if (!(cond)) { snprintf(cwhy, PAGE, __VA_ARGS__); _exit(1); } } while (0)

static void child(int remap, int wfd)
{
	char why[256];
	unsigned long off, ino, boff, bino;
	signal(SIGUSR1, on_usr1);
	fill(pg(base, 5), 5);
	if (remap) {
		alias = mremap((void *)pg(base, A_FIRST), 0, A_LEN * PAGE, MREMAP_MAYMOVE);
		CCHECK(alias != MAP_FAILED, "mremap: %s", strerror(errno));
		fill(pg(alias, 9 - A_FIRST), 9);
	} else {
		fill(pg(base, 9), 9);
	}
	CCHECK(write(wfd, "x", 1) == 1, "write: %s", strerror(errno));
	close(wfd);
	while (!got_term) {
		if (getppid() != parent) _exit(2); /* the parent is gone (it failed) */
		if (got_usr1) { got_usr1 = 0; fill(pg(remap ? alias : base, remap ? 12 - A_FIRST : 12), 12); }
		struct timespec ts = { 0, 20 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	CCHECK(check_view(base, 0, NPAGES, "afjkm", why, sizeof(why)) == 0, "child: %s", why);
	if (remap) {
		CCHECK(check_view(alias, A_FIRST, A_LEN, "afjkm", why, sizeof(why)) == 0, "child, alias: %s", why);
		CCHECK(maps_of((void *)alias, &off, &ino) == 0 && maps_of((void *)base, &boff, &bino) == 0, "child: areas not in /proc/self/maps");
		CCHECK(off == A_FIRST * PAGE && boff == 0 && ino == bino, "child: alias at offset %#lx inode %lu, base at %#lx inode %lu", off, ino, boff, bino);
	}
	_exit(0);
}

int main(int argc, char **argv)
{
	subject_init(argc, argv, 1, "[remap]");
	int remap = argc > 2 && strcmp(argv[2], "remap") == 0;
	install_term_handler(0);
	base = mmap(NULL, NPAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	cwhy = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(base != MAP_FAILED && cwhy != MAP_FAILED, "mmap: %s", strerror(errno));
	strcpy(cwhy, "(no reason given)");
	fill(pg(base, 0), 0);
	int fds[2];
	CHECK(pipe(fds) == 0, "pipe: %s", strerror(errno));
	parent = getpid();
	pid_t c = fork();
	CHECK(c >= 0, "fork: %s", strerror(errno));
	if (c == 0) { close(fds[0]); child(remap, fds[1]); }
	close(fds[1]);
	char b;
	int st = 0;
	if (read(fds[0], &b, 1) != 1) {
		waitpid(c, &st, 0);
		subject_fail("child could not set up: %s (status %#x)", cwhy, st);
	}
	close(fds[0]);
	subject_ready(NULL);
	while (!got_term) {
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	char why[256];
	if (check_view(base, 0, NPAGES, "afj", why, sizeof(why)) != 0) subject_fail("parent: %s", why);
	fill(pg(base, 10), 10);
	kill(c, SIGUSR1);
	for (int i = 0; i < 300 && pg(base, 12)[PAGE / 8 - 1] != pat(12, PAGE / 8 - 1); i++) usleep(10000);
	CHECK(pg(base, 12)[PAGE / 8 - 1] == pat(12, PAGE / 8 - 1), "the child's write to page 12 after restore never showed in the parent: not shared");
	if (check_view(base, 0, NPAGES, "afjkm", why, sizeof(why)) != 0) subject_fail("parent, after the child's write: %s", why);
	kill(c, SIGTERM);
	CHECK(waitpid(c, &st, 0) == c, "waitpid: %s", strerror(errno));
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s (child status %#x)", cwhy, st);
	subject_pass();
}
