/*
 * sysvshm - System V shared memory segments attached by the process (and
 * its child) must come back as the same segments: same id, key, size,
 * owner, permissions, contents, attached at the same addresses with the same
 * protection, and still shared where they were shared.
 *
 *   sysvshm OUTFILE MODE
 *
 * Modes:
 *   once        a keyed segment of 5 pages + 100 bytes (pages 0, 2 and the
 *               partial last one written, also past the size, 1, 3, 4 never
 *               touched), attached once, mode 0640, locked (SHM_LOCK)
 *   two         a keyed segment attached before a fork (the child inherits
 *               it) and attached a second time by the child at another
 *               address: writes of one are seen by the other, 3 attaches
 *   rmid        a segment removed (IPC_RMID) while the parent and its child
 *               have it attached: it lives on, removed, key IPC_PRIVATE,
 *               and is still shared
 *   rdonly      attached with SHM_RDONLY (written before through another
 *               attach, detached since): read-only, cannot be made writable
 *   partial     8 pages attached, the first 2, the 6th and the last unmapped, page 3
 *               made read-only: the windows come back at their offsets,
 *               and shmdt of the original address detaches them all
 *   unattached  a second keyed segment made but not attached: it is not
 *               the process's state (not in the image) and is left as it is
 *   outside     a keyed segment of 2 pages that a process outside the tree
 *               attaches too (the test's): after the restore it is still
 *               shared with it: the text that process writes at page 1
 *               ("written from outside") is seen within 10 seconds
 *
 * Every segment is removed when the verdict is given.
 */
#include "subject.h"
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/mman.h>
#include <sys/wait.h>

#define PAGE 4096ul

static int ids[4], nids;
static key_t keys[4];
static char *addr;
static size_t size;
static pid_t child_pid = -1;
static char *cwhy; /* shared page: the child's failure reason */

static void rm_all(void)
{
	for (int i = 0; i < nids; i++) shmctl(ids[i], IPC_RMID, NULL);
}

#define SCHECK(cond, ...) do { if (!(cond)) { rm_all(); if (child_pid > 0) kill(child_pid, SIGKILL); subject_fail(__VA_ARGS__); } } while (0)
#define CCHECK(cond, ...) do { if (!(cond)) { snprintf(cwhy, PAGE, __VA_ARGS__); _exit(1); } } while (0)

static uint8_t pat(int page, size_t i) { return (uint8_t)(mix64(((uint64_t)page << 32) | i) | 1); }
static void fill(char *m, int page, size_t n) { for (size_t i = 0; i < n; i++) m[page * PAGE + i] = (char)pat(page, i); }
/* Page `page` of the segment, seen at m (page 0 at m), holds its pattern (want) or zeros. */
static int page_ok(const char *m, int page, int want, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((uint8_t)m[page * PAGE + i] != (want ? pat(page, i) : 0)) return 0;
	return 1;
}

static key_t key_for(int i) { return (key_t)(0x5c000000 | ((getpid() & 0xfffff) << 2) | i); }

static int make(int i, size_t sz, int mode, int keyed)
{
	keys[i] = keyed ? key_for(i) : IPC_PRIVATE;
	int id = shmget(keys[i], sz, IPC_CREAT | IPC_EXCL | mode);
	CHECK(id >= 0, "shmget(%#x, %zu): %s", keys[i], sz, strerror(errno));
	ids[i] = id;
	nids = i + 1;
	return id;
}

static struct shmid_ds stat_of(int id)
{
	struct shmid_ds ds;
	SCHECK(shmctl(id, IPC_STAT, &ds) == 0, "shmctl(%d, IPC_STAT): %s", id, strerror(errno));
	return ds;
}

/* The maps line at address a: permissions and offset. */
static int maps_of(const void *a, char perms[5], unsigned long *off)
{
	static char text[1 << 16];
	char head[32];
	snap_file("/proc/self/maps", text, sizeof(text));
	int hl = snprintf(head, sizeof(head), "%lx-", (unsigned long)a);
	for (char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (strncmp(p, head, hl) == 0)
			return sscanf(p, "%*s %4s %lx", perms, off) == 2 ? 0 : -1;
	return -1;
}

static void check_attrs(int i, size_t sz, int mode, int deleted, unsigned long nattch)
{
	struct shmid_ds ds = stat_of(ids[i]);
	SCHECK(ds.shm_segsz == sz, "segment %d: size %zu, expected %zu", ids[i], (size_t)ds.shm_segsz, sz);
	SCHECK((ds.shm_perm.mode & 0777) == mode, "segment %d: mode %o, expected %o", ids[i], ds.shm_perm.mode & 0777, mode);
	SCHECK(ds.shm_perm.uid == getuid() && ds.shm_perm.gid == getgid(), "segment %d: owner %d:%d", ids[i], ds.shm_perm.uid, ds.shm_perm.gid);
	SCHECK(!!(ds.shm_perm.mode & SHM_DEST) == deleted, "segment %d: %sremoved", ids[i], deleted ? "not " : "");
	SCHECK(ds.shm_perm.__key == (deleted ? IPC_PRIVATE : keys[i]), "segment %d: key %#x, expected %#x", ids[i], ds.shm_perm.__key, deleted ? IPC_PRIVATE : keys[i]);
	SCHECK(ds.shm_nattch == nattch, "segment %d: %lu attaches, expected %lu", ids[i], (unsigned long)ds.shm_nattch, nattch);
	if (!deleted) {
		int again = shmget(keys[i], 0, 0);
		SCHECK(again == ids[i], "shmget(key %#x) gives %d, expected id %d", keys[i], again, ids[i]);
	}
}

/* The child of `two` and `rmid`: waits for the parent's word, checks, writes page 1 of its view. */
static void child(char *view, int sig_fd)
{
	signal(SIGTERM, SIG_DFL);
	CCHECK(write(sig_fd, "x", 1) == 1, "child: write: %s", strerror(errno));
	close(sig_fd);
	/* wait until the parent has written page 3 (after restore), then answer on page 1 */
	while (view[3 * PAGE] == 0) {
		if (getppid() == 1) _exit(2);
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	CCHECK(page_ok(view, 0, 1, PAGE), "child: page 0 lost its contents");
	CCHECK(page_ok(view, 3, 1, PAGE), "child: page 3, written by the parent, is not seen");
	fill(view, 1, PAGE);
	_exit(0);
}

static void start_child(char *view)
{
	int fds[2];
	CHECK(pipe(fds) == 0, "pipe: %s", strerror(errno));
	child_pid = fork();
	CHECK(child_pid >= 0, "fork: %s", strerror(errno));
	if (child_pid == 0) {
		close(fds[0]);
		child(view, fds[1]);
	}
	close(fds[1]);
	char b;
	CHECK(read(fds[0], &b, 1) == 1, "the child did not start: %s", cwhy);
	close(fds[0]);
}

static void finish_child(char *view)
{
	int st;
	fill(view, 3, PAGE);
	SCHECK(waitpid(child_pid, &st, 0) == child_pid, "waitpid: %s", strerror(errno));
	child_pid = -1;
	SCHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child failed (status %#x): %s", st, cwhy);
	SCHECK(page_ok(view, 1, 1, PAGE), "page 1, written by the child, is not seen by the parent");
}

int main(int argc, char **argv)
{
	subject_init(argc, argv, 1, "once|two|rmid|rdonly|partial|unattached|outside");
	const char *mode = argv[2];
	install_term_handler(0);
	cwhy = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(cwhy != MAP_FAILED, "mmap: %s", strerror(errno));
	strcpy(cwhy, "(no reason given)");
	size_t osz = 0;

	if (!strcmp(mode, "once")) {
		size = 5 * PAGE + 100;
		make(0, size, 0640, 1);
		addr = shmat(ids[0], NULL, 0);
		CHECK(addr != (void *)-1, "shmat: %s", strerror(errno));
		fill(addr, 0, PAGE); fill(addr, 2, PAGE); fill(addr, 5, 100);
		addr[size + 10] = 'T'; /* past the segment's size, in its last page: kept with the page */
		CHECK(shmctl(ids[0], SHM_LOCK, NULL) == 0, "SHM_LOCK: %s", strerror(errno));
	} else if (!strcmp(mode, "two") || !strcmp(mode, "rmid")) {
		size = 4 * PAGE;
		make(0, size, 0600, !strcmp(mode, "two"));
		addr = shmat(ids[0], NULL, 0);
		CHECK(addr != (void *)-1, "shmat: %s", strerror(errno));
		fill(addr, 0, PAGE);
		if (!strcmp(mode, "two")) {
			/* the child inherits addr, and attaches a second time */
			int fds[2];
			CHECK(pipe(fds) == 0, "pipe: %s", strerror(errno));
			child_pid = fork();
			CHECK(child_pid >= 0, "fork: %s", strerror(errno));
			if (child_pid == 0) {
				close(fds[0]);
				char *mine = shmat(ids[0], NULL, 0);
				CCHECK(mine != (void *)-1, "child: shmat: %s", strerror(errno));
				CCHECK(page_ok(addr, 0, 1, PAGE) && page_ok(mine, 0, 1, PAGE), "child: page 0 not seen");
				child(mine, fds[1]);
			}
			close(fds[1]);
			char b;
			CHECK(read(fds[0], &b, 1) == 1, "the child did not start: %s", cwhy);
			close(fds[0]);
		} else {
			start_child(addr);
			CHECK(shmctl(ids[0], IPC_RMID, NULL) == 0, "IPC_RMID: %s", strerror(errno));
		}
	} else if (!strcmp(mode, "rdonly")) {
		size = 3 * PAGE;
		make(0, size, 0644, 1);
		char *w = shmat(ids[0], NULL, 0);
		CHECK(w != (void *)-1, "shmat: %s", strerror(errno));
		fill(w, 1, PAGE);
		CHECK(shmdt(w) == 0, "shmdt: %s", strerror(errno));
		addr = shmat(ids[0], NULL, SHM_RDONLY);
		CHECK(addr != (void *)-1, "shmat(SHM_RDONLY): %s", strerror(errno));
	} else if (!strcmp(mode, "partial")) {
		size = 8 * PAGE;
		make(0, size, 0600, 1);
		addr = shmat(ids[0], NULL, 0);
		CHECK(addr != (void *)-1, "shmat: %s", strerror(errno));
		for (int p = 0; p < 8; p++) fill(addr, p, PAGE);
		CHECK(munmap(addr, 2 * PAGE) == 0 && munmap(addr + 5 * PAGE, PAGE) == 0 && munmap(addr + 7 * PAGE, PAGE) == 0, "munmap: %s", strerror(errno));
		CHECK(mprotect(addr + 3 * PAGE, PAGE, PROT_READ) == 0, "mprotect: %s", strerror(errno));
	} else if (!strcmp(mode, "outside")) {
		size = 2 * PAGE;
		make(0, size, 0600, 1);
		addr = shmat(ids[0], NULL, 0);
		CHECK(addr != (void *)-1, "shmat: %s", strerror(errno));
		fill(addr, 0, PAGE);
	} else if (!strcmp(mode, "unattached")) {
		size = 2 * PAGE;
		make(0, size, 0600, 1);
		addr = shmat(ids[0], NULL, 0);
		CHECK(addr != (void *)-1, "shmat: %s", strerror(errno));
		fill(addr, 0, PAGE);
		osz = 3 * PAGE;
		make(1, osz, 0600, 1);
		char *o = shmat(ids[1], NULL, 0);
		CHECK(o != (void *)-1, "shmat: %s", strerror(errno));
		fill(o, 2, PAGE);
		CHECK(shmdt(o) == 0, "shmdt: %s", strerror(errno));
	} else {
		subject_fail("unknown mode %s", mode);
	}

	subject_info("ids %d %d\n", ids[0], nids > 1 ? ids[1] : -1);
	if (!strcmp(mode, "outside")) {
		char line[64];
		snprintf(line, sizeof(line), "SHMID %d\n", ids[0]);
		subject_append_str(line);
	}
	subject_ready(NULL);
	while (!got_term) pause();

	char perms[5];
	unsigned long off;
	if (!strcmp(mode, "once")) {
		check_attrs(0, size, 0640, 0, 1);
		SCHECK(stat_of(ids[0]).shm_perm.mode & SHM_LOCKED, "the segment is no longer locked");
		SCHECK(page_ok(addr, 0, 1, PAGE) && page_ok(addr, 2, 1, PAGE) && page_ok(addr, 5, 1, 100), "written pages lost their contents");
		SCHECK(page_ok(addr, 1, 0, PAGE) && page_ok(addr, 3, 0, PAGE) && page_ok(addr, 4, 0, PAGE), "pages never written are not zeros");
		SCHECK(addr[size + 10] == 'T', "the byte past the segment's size, in its last page, is lost");
		SCHECK(maps_of(addr, perms, &off) == 0 && !strcmp(perms, "rw-s") && off == 0, "the area is not rw-s at offset 0 (%s %lx)", perms, off);
		fill(addr, 1, PAGE);
		SCHECK(shmdt(addr) == 0, "shmdt: %s", strerror(errno));
		check_attrs(0, size, 0640, 0, 0);
	} else if (!strcmp(mode, "two")) {
		check_attrs(0, size, 0600, 0, 3);
		SCHECK(page_ok(addr, 0, 1, PAGE), "page 0 lost its contents");
		finish_child(addr);
		check_attrs(0, size, 0600, 0, 1);
	} else if (!strcmp(mode, "rmid")) {
		check_attrs(0, size, 0600, 1, 2);
		SCHECK(page_ok(addr, 0, 1, PAGE), "page 0 lost its contents");
		finish_child(addr);
		check_attrs(0, size, 0600, 1, 1);
		SCHECK(shmdt(addr) == 0, "shmdt: %s", strerror(errno));
		struct shmid_ds ds;
		SCHECK(shmctl(ids[0], IPC_STAT, &ds) < 0, "the removed segment is still there once detached");
	} else if (!strcmp(mode, "rdonly")) {
		check_attrs(0, size, 0644, 0, 1);
		SCHECK(page_ok(addr, 1, 1, PAGE) && page_ok(addr, 0, 0, PAGE) && page_ok(addr, 2, 0, PAGE), "contents differ");
		SCHECK(maps_of(addr, perms, &off) == 0 && !strcmp(perms, "r--s"), "the area is %s, expected r--s", perms);
		SCHECK(mprotect(addr, PAGE, PROT_READ | PROT_WRITE) < 0 && errno == EACCES, "a read-only attach could be made writable");
	} else if (!strcmp(mode, "partial")) {
		check_attrs(0, size, 0600, 0, 4);
		SCHECK(maps_of(addr + 6 * PAGE, perms, &off) == 0 && !strcmp(perms, "rw-s") && off == 6 * PAGE, "window at page 6: %s offset %#lx", perms, off);
		SCHECK(maps_of(addr + 2 * PAGE, perms, &off) == 0 && !strcmp(perms, "rw-s") && off == 2 * PAGE, "window at page 2: %s offset %#lx", perms, off);
		SCHECK(maps_of(addr + 3 * PAGE, perms, &off) == 0 && !strcmp(perms, "r--s") && off == 3 * PAGE, "window at page 3: %s offset %#lx", perms, off);
		SCHECK(maps_of(addr + 4 * PAGE, perms, &off) == 0 && !strcmp(perms, "rw-s") && off == 4 * PAGE, "window at page 4: %s offset %#lx", perms, off);
		SCHECK(maps_of(addr, perms, &off) < 0 && maps_of(addr + 5 * PAGE, perms, &off) < 0 && maps_of(addr + 7 * PAGE, perms, &off) < 0, "unmapped pages are mapped again");
		for (int p = 2; p < 7; p++) SCHECK(p == 5 || page_ok(addr, p, 1, PAGE), "page %d lost its contents", p);
		addr[4 * PAGE] = 1;
		SCHECK(shmdt(addr) == 0, "shmdt of the original address: %s", strerror(errno));
		check_attrs(0, size, 0600, 0, 0);
	} else if (!strcmp(mode, "outside")) {
		static const char text[] = "written from outside";
		SCHECK(page_ok(addr, 0, 1, PAGE), "page 0 lost its contents");
		int i;
		for (i = 0; i < 1000 && memcmp(addr + PAGE, text, sizeof(text) - 1); i++) {
			struct timespec ts = { 0, 10 * 1000 * 1000 };
			nanosleep(&ts, NULL);
		}
		SCHECK(i < 1000, "what the process outside wrote is not seen: the segment is no longer shared with it");
		check_attrs(0, size, 0600, 0, 2);
	} else if (!strcmp(mode, "unattached")) {
		check_attrs(0, size, 0600, 0, 1);
		check_attrs(1, osz, 0600, 0, 0);
		SCHECK(page_ok(addr, 0, 1, PAGE), "page 0 lost its contents");
		char *o = shmat(ids[1], NULL, SHM_RDONLY);
		SCHECK(o != (void *)-1, "shmat of the unattached one: %s", strerror(errno));
		SCHECK(page_ok(o, 2, 1, PAGE), "the unattached segment changed");
	}
	rm_all();
	subject_pass();
}
