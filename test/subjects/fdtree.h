/*
 * fdtree.h - the open-file state of a process tree, for the subjects of the
 * open-file table (fd_*.c). Include after subject.h.
 *
 * The root of a subject's tree knows the PIDs of all its processes (children
 * report theirs in a shared page, see fdt_shared) and, with every process
 * quiet, takes a snapshot: for every process and fd, the open flags with
 * close-on-exec (fdinfo "flags"), the offset (fdinfo "pos"), the file
 * (dev/ino/mode of the fd), and which fds are one open file description
 * (kcmp KCMP_FILE, across processes). After restore it takes the snapshot
 * again: fdt_compare fails the subject unless every process has the same fds
 * with the same flags, offsets and files, and the fds are grouped into
 * descriptions exactly as before (nothing merged, nothing split).
 *
 * fdt_probe checks the sharing without kcmp: for each description it takes a
 * copy of one of its fds (pidfd_getfd), toggles O_NONBLOCK on it and (regular
 * files) moves its offset, and reads the fdinfo of every fd of that file in
 * the tree: exactly the fds of that description must see the change. Then it
 * puts flags and offset back. (Built with -DFDT_PROBE_ONLY, fdt_compare
 * leaves the descriptions to fdt_probe, to check that it catches a split or
 * a merge alone.)
 */
#ifndef CKPT_FDTREE_H
#define CKPT_FDTREE_H

#include <dirent.h>
#include <linux/kcmp.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif
#ifndef O_PATH
#define O_PATH 010000000
#endif

#define FDT_MAX 8192
#define FDT_PROCS 32

struct fdt_ent {
	pid_t pid;
	int fd;
	int flags;		/* fdinfo flags: open flags and O_CLOEXEC */
	long long pos;
	dev_t dev;
	ino_t ino;
	mode_t mode;
	int cls;		/* description number within the snapshot, from 0 */
};

struct fdt_snap {
	int n, ncls;
	struct fdt_ent e[FDT_MAX];
};

/* Who is who: the tree's PIDs with a name each, for messages. */
struct fdt_tree {
	int n;
	pid_t pid[FDT_PROCS];
	char name[FDT_PROCS][32];
};

/* A page shared by the tree (MAP_SHARED anonymous: ckpt keeps it shared). */
struct fdt_shared {
	volatile pid_t pid[FDT_PROCS];
	volatile int ready[FDT_PROCS];
	volatile int word[64];	/* free for the subject */
};

static SUBJ_UNUSED struct fdt_shared *fdt_shared_map(void)
{
	void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	CHECK(p != MAP_FAILED, "mmap shared page: %s", strerror(errno));
	memset(p, 0, 4096);
	return p;
}

/* Wait until the shared ready flags 0..n-1 are set (children set theirs when their state is in place). */
static SUBJ_UNUSED void fdt_wait_ready(struct fdt_shared *sh, int n)
{
	for (int tries = 0; tries < 10000; tries++) {
		int all = 1;
		for (int i = 0; i < n; i++)
			if (!sh->ready[i])
				all = 0;
		if (all)
			return;
		usleep(1000);
	}
	subject_fail("the children did not get ready");
}

static SUBJ_UNUSED void fdt_add(struct fdt_tree *t, pid_t pid, const char *name)
{
	CHECK(t->n < FDT_PROCS, "fdt_add: too many processes");
	t->pid[t->n] = pid;
	snprintf(t->name[t->n], sizeof(t->name[0]), "%s", name);
	t->n++;
}

static SUBJ_UNUSED const char *fdt_who(const struct fdt_tree *t, pid_t pid)
{
	static char buf[4][64];
	static int k;
	char *b = buf[k++ & 3];

	for (int i = 0; i < t->n; i++)
		if (t->pid[i] == pid) {
			snprintf(b, 64, "%s (pid %d)", t->name[i], pid);
			return b;
		}
	snprintf(b, 64, "pid %d", pid);
	return b;
}

static SUBJ_UNUSED int fdt_kcmp(pid_t p1, int fd1, pid_t p2, int fd2)
{
	return (int)syscall(SYS_kcmp, p1, p2, KCMP_FILE, fd1, fd2);
}

/* Fail unless p1's fd1 and p2's fd2 are (same) or are not (!same) one open file description. */
static SUBJ_UNUSED void fdt_expect(const struct fdt_tree *t, pid_t p1, int fd1, pid_t p2, int fd2, int same)
{
	int k = fdt_kcmp(p1, fd1, p2, fd2);

	CHECK(k >= 0, "kcmp(%s fd %d, %s fd %d): %s", fdt_who(t, p1), fd1, fdt_who(t, p2), fd2, strerror(errno));
	if ((k == 0) != same)
		subject_fail("%s fd %d and %s fd %d %s", fdt_who(t, p1), fd1, fdt_who(t, p2), fd2,
			     same ? "are not one open file description" : "are one open file description");
}

/* fdinfo of one fd: pos and flags. Returns 0, or -1 if it is not open. */
static SUBJ_UNUSED int fdt_info(pid_t pid, int fd, long long *pos, int *flags)
{
	char path[64], text[4096];
	const char *p;

	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", pid, fd);
	if (read_file(path, text, sizeof(text)) < 0)
		return -1;
	p = strstr(text, "pos:");
	CHECK(p, "%s has no pos", path);
	*pos = strtoll(p + 4, NULL, 10);
	p = strstr(text, "flags:");
	CHECK(p, "%s has no flags", path);
	*flags = (int)strtol(p + 6, NULL, 8);
	return 0;
}

static int fdt_cmp_ent(const void *a, const void *b)
{
	const struct fdt_ent *x = a, *y = b;

	return x->fd - y->fd;
}

/* The snapshot of every process of t (in t's order, fds in order). The caller holds no transient fds. */
static SUBJ_UNUSED void fdt_take(const struct fdt_tree *t, struct fdt_snap *s)
{
	int rep[FDT_MAX];

	s->n = 0;
	s->ncls = 0;
	for (int i = 0; i < t->n; i++) {
		char path[64];
		DIR *d;
		struct dirent *de;
		int first = s->n;

		snprintf(path, sizeof(path), "/proc/%d/fd", t->pid[i]);
		d = opendir(path);
		CHECK(d, "opendir %s: %s", path, strerror(errno));
		while ((de = readdir(d))) {
			struct fdt_ent *e;
			struct stat st;
			char link[64];

			if (de->d_name[0] == '.')
				continue;
			if (t->pid[i] == getpid() && atoi(de->d_name) == dirfd(d))
				continue;
			CHECK(s->n < FDT_MAX, "more than %d fds in the tree", FDT_MAX);
			e = &s->e[s->n];
			memset(e, 0, sizeof(*e));
			e->pid = t->pid[i];
			e->fd = atoi(de->d_name);
			CHECK(fdt_info(e->pid, e->fd, &e->pos, &e->flags) == 0, "%s fd %d: no fdinfo", fdt_who(t, e->pid), e->fd);
			snprintf(link, sizeof(link), "/proc/%d/fd/%d", e->pid, e->fd);
			CHECK(stat(link, &st) == 0, "stat %s: %s", link, strerror(errno));
			e->dev = st.st_dev;
			e->ino = st.st_ino;
			e->mode = st.st_mode;
			s->n++;
		}
		closedir(d);
		qsort(&s->e[first], (size_t)(s->n - first), sizeof(s->e[0]), fdt_cmp_ent);
	}
	/* descriptions: compare each fd with one fd of every description of the same file met before */
	for (int i = 0; i < s->n; i++) {
		struct fdt_ent *e = &s->e[i];

		e->cls = -1;
		for (int c = 0; c < s->ncls; c++) {
			struct fdt_ent *r = &s->e[rep[c]];
			int k;

			if (r->dev != e->dev || r->ino != e->ino)
				continue;
			k = fdt_kcmp(e->pid, e->fd, r->pid, r->fd);
			CHECK(k >= 0, "kcmp(%s fd %d, %s fd %d): %s", fdt_who(t, e->pid), e->fd, fdt_who(t, r->pid), r->fd, strerror(errno));
			if (k == 0) {
				e->cls = c;
				break;
			}
		}
		if (e->cls < 0) {
			rep[s->ncls] = i;
			e->cls = s->ncls++;
		}
	}
}

/* Fail unless b is a (the same) state as a: see the top of this file. */
static SUBJ_UNUSED void fdt_compare(const struct fdt_tree *t, const struct fdt_snap *a, const struct fdt_snap *b)
{
	static int map[FDT_MAX], back[FDT_MAX];
	int i, j;

	for (i = 0; i < a->n; i++) {
		for (j = 0; j < b->n && !(b->e[j].pid == a->e[i].pid && b->e[j].fd == a->e[i].fd); j++)
			;
		if (j == b->n)
			subject_fail("%s: fd %d is no longer open", fdt_who(t, a->e[i].pid), a->e[i].fd);
	}
	for (j = 0; j < b->n; j++) {
		for (i = 0; i < a->n && !(a->e[i].pid == b->e[j].pid && a->e[i].fd == b->e[j].fd); i++)
			;
		if (i == a->n)
			subject_fail("%s: fd %d is open and was not", fdt_who(t, b->e[j].pid), b->e[j].fd);
	}
	CHECK(a->n == b->n, "%d fds in the tree, were %d", b->n, a->n);
	for (i = 0; i < a->ncls; i++)
		map[i] = -1;
	for (i = 0; i < b->ncls; i++)
		back[i] = -1;
	for (i = 0; i < a->n; i++) {
		const struct fdt_ent *x = &a->e[i], *y = &b->e[i];
		const char *w = fdt_who(t, x->pid);

		CHECK(x->dev == y->dev && x->ino == y->ino, "%s fd %d: file dev/ino %lx/%lu, was %lx/%lu", w, x->fd,
		      (unsigned long)y->dev, (unsigned long)y->ino, (unsigned long)x->dev, (unsigned long)x->ino);
		CHECK(x->mode == y->mode, "%s fd %d: st_mode 0%o, was 0%o", w, x->fd, y->mode, x->mode);
		CHECK(x->flags == y->flags, "%s fd %d: flags 0%o, were 0%o%s", w, x->fd, y->flags, x->flags,
		      (x->flags ^ y->flags) == O_CLOEXEC ? " (close-on-exec differs)" : "");
		CHECK(x->pos == y->pos, "%s fd %d: offset %lld, was %lld", w, x->fd, y->pos, x->pos);
#ifdef FDT_PROBE_ONLY
		/* (to check that fdt_probe alone catches a split or a merge) */
		continue;
#endif
		if (map[x->cls] < 0 && back[y->cls] < 0) {
			map[x->cls] = y->cls;
			back[y->cls] = x->cls;
			continue;
		}
		if (map[x->cls] != y->cls) {
			/* two fds that were one description are now two, or the reverse */
			for (j = 0; j < i; j++)
				if (a->e[j].cls == x->cls)
					subject_fail("%s fd %d and %s fd %d were one open file description and are now two",
						     fdt_who(t, a->e[j].pid), a->e[j].fd, w, x->fd);
			for (j = 0; j < i; j++)
				if (b->e[j].cls == y->cls)
					subject_fail("%s fd %d and %s fd %d were separate open file descriptions and are now one",
						     fdt_who(t, a->e[j].pid), a->e[j].fd, w, x->fd);
			subject_fail("%s fd %d: description changed", w, x->fd);
		}
	}
}

/* A copy of pid's fd in this process (the same open file description). */
static SUBJ_UNUSED int fdt_grab(pid_t pid, int fd)
{
	int pfd, c;

	if (pid == getpid())
		return fcntl(fd, F_DUPFD_CLOEXEC, 0);
	pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	CHECK(pfd >= 0, "pidfd_open %d: %s", pid, strerror(errno));
	c = (int)syscall(SYS_pidfd_getfd, pfd, fd, 0);
	CHECK(c >= 0, "pidfd_getfd %d fd %d: %s", pid, fd, strerror(errno));
	close(pfd);
	return c;
}

/* See the top of this file. s: a snapshot whose fds, flags and offsets are those of now; its descriptions are what is expected. */
static SUBJ_UNUSED void fdt_probe(const struct fdt_tree *t, const struct fdt_snap *s)
{
	for (int c = 0; c < s->ncls; c++) {
		const struct fdt_ent *r = NULL;
		int cp, fl;
		long long moved = -1;

		for (int i = 0; i < s->n && !r; i++)
			if (s->e[i].cls == c)
				r = &s->e[i];
		if (r->flags & O_PATH)
			continue; /* no flags to change, no offset */
		cp = fdt_grab(r->pid, r->fd);
		fl = fcntl(cp, F_GETFL);
		CHECK(fl >= 0 && fcntl(cp, F_SETFL, fl ^ O_NONBLOCK) == 0, "F_SETFL on a copy of %s fd %d: %s", fdt_who(t, r->pid), r->fd, strerror(errno));
		if (S_ISREG(r->mode)) {
			moved = r->pos + 1000 + c;
			CHECK(lseek(cp, moved, SEEK_SET) == moved, "lseek a copy of %s fd %d: %s", fdt_who(t, r->pid), r->fd, strerror(errno));
		}
		for (int i = 0; i < s->n; i++) {
			const struct fdt_ent *e = &s->e[i];
			long long pos;
			int flags, same = e->cls == c;

			if (e->dev != r->dev || e->ino != r->ino)
				continue;
			CHECK(fdt_info(e->pid, e->fd, &pos, &flags) == 0, "%s fd %d: closed", fdt_who(t, e->pid), e->fd);
			if (((flags ^ e->flags) == O_NONBLOCK) != same)
				subject_fail("O_NONBLOCK set through %s fd %d %s on %s fd %d (flags 0%o, were 0%o): %s", fdt_who(t, r->pid), r->fd,
					     same ? "does not show" : "shows", fdt_who(t, e->pid), e->fd, flags, e->flags,
					     same ? "they are no longer one open file description" : "they are one open file description, and were not");
			if (moved >= 0 && ((pos == moved) != same || (!same && pos != e->pos)))
				subject_fail("lseek through %s fd %d to %lld: %s fd %d is at %lld (was %lld): %s", fdt_who(t, r->pid), r->fd, moved,
					     fdt_who(t, e->pid), e->fd, pos, e->pos,
					     same ? "the offset is no longer shared" : "the offset is shared, and was not");
		}
		CHECK(fcntl(cp, F_SETFL, fl) == 0, "F_SETFL back: %s", strerror(errno));
		if (moved >= 0)
			CHECK(lseek(cp, r->pos, SEEK_SET) == r->pos, "lseek back: %s", strerror(errno));
		close(cp);
	}
}

/*
 * The usual end of a subject's check: snapshot, compare with before, and
 * probe the descriptions of before (the fds are the same ones, with the same
 * flags and offsets, once the comparison passed).
 */
static SUBJ_UNUSED void fdt_check(const struct fdt_tree *t, const struct fdt_snap *before, struct fdt_snap *after)
{
	fdt_take(t, after);
	fdt_compare(t, before, after);
	fdt_probe(t, before);
}

/* End the tree's other processes (SIGTERM; each must exit 0) and reap the root's children. */
/* The usual course of a subject: record the tree's fds, check the probe sees
 * exactly the sharing recorded, say READY, wait for SIGTERM, check again. */
static SUBJ_UNUSED void fdt_ready_then_check(const struct fdt_tree *t, struct fdt_snap *before, struct fdt_snap *after)
{
	fdt_take(t, before);
	fdt_probe(t, before);
	subject_ready(NULL);
	while (!got_term)
		pause();
	fdt_check(t, before, after);
}

static SUBJ_UNUSED void fdt_end_children(const pid_t *kids, int n)
{
	for (int i = 0; i < n; i++)
		kill(kids[i], SIGTERM);
	for (int i = 0; i < n; i++) {
		int st = 0;
		CHECK(waitpid(kids[i], &st, 0) == kids[i], "waitpid %d: %s", kids[i], strerror(errno));
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %d ended with status %#x", kids[i], st);
	}
}

/* A child's life after its setup: mark ready, wait for SIGTERM, exit 0. */
static SUBJ_UNUSED __attribute__((noreturn)) void fdt_child_wait(struct fdt_shared *sh, int slot)
{
	sh->pid[slot] = getpid();
	sh->ready[slot] = 1;
	while (!got_term)
		pause();
	_exit(0);
}

/* Create (truncate) name with n bytes of a pattern. */
static SUBJ_UNUSED void fdt_mkfile(const char *name, int n)
{
	char buf[4096];
	int fd = open(name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	CHECK(fd >= 0, "create %s: %s", name, strerror(errno));
	for (int i = 0; i < (int)sizeof(buf); i++)
		buf[i] = (char)('a' + i % 26);
	while (n > 0) {
		int k = n < (int)sizeof(buf) ? n : (int)sizeof(buf);
		CHECK(write(fd, buf, (size_t)k) == k, "write %s", name);
		n -= k;
	}
	close(fd);
}

static SUBJ_UNUSED int fdt_open(const char *name, int flags)
{
	int fd = open(name, flags);

	CHECK(fd >= 0, "open %s: %s", name, strerror(errno));
	return fd;
}

/* Open name at fd number fd (close-on-exec with O_CLOEXEC). */
static SUBJ_UNUSED void fdt_open_at(int fd, const char *name, int flags)
{
	int x = open(name, flags);

	CHECK(x >= 0, "open %s 0%o: %s", name, flags, strerror(errno));
	if (x != fd) {
		CHECK(dup3(x, fd, flags & O_CLOEXEC) == fd, "dup3(%d, %d): %s", x, fd, strerror(errno));
		close(x);
	}
}

/* dup2 that fails the subject. */
static SUBJ_UNUSED void fdt_dup2(int from, int to)
{
	CHECK(dup2(from, to) == to, "dup2(%d, %d): %s", from, to, strerror(errno));
}

/* Raise RLIMIT_NOFILE's soft limit to the hard one; returns it. */
static SUBJ_UNUSED long fdt_raise_nofile(void)
{
	struct rlimit rl;

	CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0, "getrlimit: %s", strerror(errno));
	rl.rlim_cur = rl.rlim_max;
	CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0, "setrlimit: %s", strerror(errno));
	return (long)rl.rlim_cur;
}

#endif
