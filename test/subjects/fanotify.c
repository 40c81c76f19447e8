/*
 * fanotify - fanotify groups come back with their flags and marks.
 *
 *   fanotify OUTFILE MODE     (in a directory of its own: the harness's)
 *
 * The subject mounts two tmpfs of its own (m1, m2) so that mount and
 * filesystem marks see only its own events, and unmounts them at the end.
 *
 *   marks    FAN_CLASS_NOTIF | FAN_NONBLOCK, event_f_flags O_RDONLY: an
 *            inode mark on directory d (FAN_CLOSE_WRITE | FAN_EVENT_ON_CHILD),
 *            an ignore mark on d/quiet (FAN_MARK_IGNORED_MASK |
 *            FAN_MARK_IGNORED_SURV_MODIFY), a mount mark on m1 (FAN_OPEN),
 *            a filesystem mark on m2 (FAN_CLOSE_WRITE, with FAN_MARK_IGNORE
 *            | FAN_MARK_IGNORED_SURV_MODIFY ignoring FAN_CLOSE_WRITE of m2/ign). After restore: the fdinfo
 *            lines are the same, and events come for d/loud, m1/x, m2/y but
 *            not for d/quiet
 *   fid      FAN_REPORT_DFID_NAME, a filesystem mark on m2 for FAN_CREATE:
 *            after restore a file made there gives an event
 *   queued   an event queued, not read (the dump is refused): it is still
 *            there afterwards
 *   perm     FAN_CLASS_CONTENT with a FAN_OPEN_PERM mark on d (the dump is
 *            refused); the mark still works: an open in d by a child waits
 *            for the answer, and goes on once allowed
 */
#include <sys/wait.h>
#include "subject.h"
#include <sys/fanotify.h>
#include <sys/mount.h>

static void cleanup(void) { umount2("m1", MNT_DETACH); umount2("m2", MNT_DETACH); }
#define FCHECK(cond, ...) do { if (!(cond)) { cleanup(); subject_fail(__VA_ARGS__); } } while (0)

static void touch(const char *p)
{
	int fd = open(p, O_WRONLY | O_CREAT | O_APPEND, 0644);
	FCHECK(fd >= 0, "open %s: %s", p, strerror(errno));
	FCHECK(write(fd, "x", 1) == 1, "write %s", p);
	close(fd);
}

/* The fanotify lines of fdinfo, sorted (the order of marks is the kernel's). */
static void lines(int fd, char *out, size_t n)
{
	char path[64], text[8192], *l[64];
	int k = 0;
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	snap_file(path, text, sizeof(text));
	for (char *p = strtok(text, "\n"); p && k < 64; p = strtok(NULL, "\n"))
		if (!strncmp(p, "fanotify ", 9)) l[k++] = p;
	for (int i = 0; i < k; i++)
		for (int j = i + 1; j < k; j++)
			if (strcmp(l[i], l[j]) > 0) { char *t = l[i]; l[i] = l[j]; l[j] = t; }
	out[0] = 0;
	for (int i = 0; i < k; i++) { strncat(out, l[i], n - strlen(out) - 2); strcat(out, "\n"); }
}

static char buf[8192] __attribute__((aligned(8)));

/* Read the events there are (waiting up to 1 s for the first); the paths of their files, one per line. */
static void events(int fd, char *out, size_t n, int want)
{
	out[0] = 0;
	int got = 0;
	for (int i = 0; i < 100 && got < want; i++) {
		ssize_t len = read(fd, buf, sizeof(buf));
		if (len < 0 && errno == EAGAIN) { usleep(10000); continue; }
		FCHECK(len > 0, "read events: %s", strerror(errno));
		for (struct fanotify_event_metadata *m = (void *)buf; FAN_EVENT_OK(m, len); m = FAN_EVENT_NEXT(m, len)) {
			char p[600], target[512] = "";
			got++;
			if (m->fd >= 0) {
				snprintf(p, sizeof(p), "/proc/self/fd/%d", m->fd);
				ssize_t r = readlink(p, target, sizeof(target) - 1);
				target[r > 0 ? r : 0] = 0;
				close(m->fd);
				char *slash = strrchr(target, '/');
				snprintf(p, sizeof(p), "%llx %s\n", (unsigned long long)m->mask, slash ? slash + 1 : target);
			} else {
				snprintf(p, sizeof(p), "%llx fid\n", (unsigned long long)m->mask);
			}
			strncat(out, p, n - strlen(out) - 1);
		}
	}
}

int main(int argc, char **argv)
{
	subject_init(argc, argv, 2, "MODE");
	install_term_handler(0);
	const char *mode = argv[2];
	int fd;
	static char before[8192], after[8192], ev[4096];

	mkdir("d", 0755);
	mkdir("m1", 0755);
	mkdir("m2", 0755);
	CHECK(mount("none", "m1", "tmpfs", 0, "size=1m") == 0, "mount m1: %s", strerror(errno));
	FCHECK(mount("none", "m2", "tmpfs", 0, "size=1m") == 0, "mount m2: %s", strerror(errno));
	touch("d/quiet");
	touch("m2/ign");
	if (!strcmp(mode, "marks")) {
		fd = fanotify_init(FAN_CLASS_NOTIF | FAN_NONBLOCK, O_RDONLY);
		FCHECK(fd >= 0, "fanotify_init: %s", strerror(errno));
		FCHECK(fanotify_mark(fd, FAN_MARK_ADD, FAN_CLOSE_WRITE | FAN_EVENT_ON_CHILD, AT_FDCWD, "d") == 0, "mark d: %s", strerror(errno));
		FCHECK(fanotify_mark(fd, FAN_MARK_ADD | FAN_MARK_IGNORED_MASK | FAN_MARK_IGNORED_SURV_MODIFY, FAN_CLOSE_WRITE, AT_FDCWD, "d/quiet") == 0, "mark d/quiet: %s", strerror(errno));
		FCHECK(fanotify_mark(fd, FAN_MARK_ADD | FAN_MARK_MOUNT, FAN_OPEN, AT_FDCWD, "m1") == 0, "mark m1: %s", strerror(errno));
		FCHECK(fanotify_mark(fd, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, FAN_CLOSE_WRITE, AT_FDCWD, "m2") == 0, "mark m2: %s", strerror(errno));
		FCHECK(fanotify_mark(fd, FAN_MARK_ADD | FAN_MARK_IGNORE | FAN_MARK_IGNORED_SURV_MODIFY, FAN_CLOSE_WRITE, AT_FDCWD, "m2/ign") == 0, "mark m2/ign: %s", strerror(errno));
	} else if (!strcmp(mode, "fid")) {
		fd = fanotify_init(FAN_CLASS_NOTIF | FAN_REPORT_DFID_NAME | FAN_NONBLOCK, O_RDONLY);
		FCHECK(fd >= 0, "fanotify_init: %s", strerror(errno));
		FCHECK(fanotify_mark(fd, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, FAN_CREATE, AT_FDCWD, "m2") == 0, "mark m2: %s", strerror(errno));
	} else if (!strcmp(mode, "queued")) {
		fd = fanotify_init(FAN_CLASS_NOTIF | FAN_NONBLOCK, O_RDONLY);
		FCHECK(fd >= 0 && fanotify_mark(fd, FAN_MARK_ADD, FAN_CLOSE_WRITE | FAN_EVENT_ON_CHILD, AT_FDCWD, "d") == 0, "fanotify: %s", strerror(errno));
		touch("d/early");
	} else if (!strcmp(mode, "perm")) {
		fd = fanotify_init(FAN_CLASS_CONTENT | FAN_NONBLOCK, O_RDONLY);
		FCHECK(fd >= 0 && fanotify_mark(fd, FAN_MARK_ADD, FAN_OPEN_PERM | FAN_EVENT_ON_CHILD, AT_FDCWD, "d") == 0, "fanotify: %s", strerror(errno));
	} else {
		cleanup();
		fprintf(stderr, "fanotify: unknown MODE '%s'\n", mode);
		return 2;
	}
	lines(fd, before, sizeof(before));
	subject_ready(NULL);
	while (!got_term) pause();

	lines(fd, after, sizeof(after));
	if (strcmp(before, after)) { cleanup(); compare_text("fdinfo", before, after); }
	FCHECK(fcntl(fd, F_GETFL) & O_NONBLOCK, "O_NONBLOCK lost");
	if (!strcmp(mode, "marks")) {
		FCHECK(read(fd, buf, sizeof(buf)) == -1 && errno == EAGAIN, "events queued after restore");
		touch("d/quiet");
		touch("d/loud");
		events(fd, ev, sizeof(ev), 1);
		FCHECK(!strcmp(ev, "8 loud\n"), "events for d: '%s', expected one FAN_CLOSE_WRITE for loud", ev);
		int x = open("m1/x", O_RDONLY | O_CREAT, 0644);
		FCHECK(x >= 0, "open m1/x");
		close(x);
		events(fd, ev, sizeof(ev), 1);
		FCHECK(!strcmp(ev, "20 x\n"), "events for m1: '%s', expected FAN_OPEN for x", ev);
		touch("m2/ign");
		touch("m2/y");
		events(fd, ev, sizeof(ev), 1);
		FCHECK(!strcmp(ev, "8 y\n"), "events for m2: '%s', expected one FAN_CLOSE_WRITE for y", ev);
	} else if (!strcmp(mode, "fid")) {
		touch("m2/new");
		events(fd, ev, sizeof(ev), 1);
		FCHECK(!strcmp(ev, "100 fid\n"), "events for m2: '%s', expected FAN_CREATE", ev);
	} else if (!strcmp(mode, "perm")) {
		pid_t kid = fork();
		if (kid == 0) _exit(open("d/quiet", O_RDONLY) >= 0 ? 0 : 3);
		ssize_t len = -1;
		for (int i = 0; i < 200 && len <= 0; i++) { len = read(fd, buf, sizeof(buf)); if (len <= 0) usleep(10000); }
		struct fanotify_event_metadata *m = (void *)buf;
		FCHECK(len > 0 && (m->mask & FAN_OPEN_PERM) && m->pid == kid, "no FAN_OPEN_PERM event from the child");
		struct fanotify_response r = { m->fd, FAN_ALLOW };
		FCHECK(write(fd, &r, sizeof(r)) == sizeof(r), "answer: %s", strerror(errno));
		close(m->fd);
		int st;
		FCHECK(waitpid(kid, &st, 0) == kid && WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child's open failed (status %#x)", st);
	} else if (!strcmp(mode, "queued")) {
		events(fd, ev, sizeof(ev), 1);
		FCHECK(!strcmp(ev, "8 early\n"), "the queued event: '%s'", ev);
	}
	cleanup();
	subject_pass();
}
