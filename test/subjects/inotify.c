/*
 * inotify - inotify instances come back with their watches, at the same
 * watch descriptors, with their masks and flags.
 *
 *   inotify OUTFILE MODE      (in a directory of its own: the harness's)
 *
 *   watches  non-blocking; watches on directory d1 (wd 1), file f1 (wd 2),
 *            file f2 (wd 3, then removed: a gap), directory d2 (wd 4, with
 *            IN_ONESHOT) and file f3 (wd 5, IN_EXCL_UNLINK); f1 is renamed
 *            after its watch was added. After restore: the watch lines of
 *            fdinfo are the same, a file made in d1 gives IN_CREATE on wd 1
 *            with its name, a write to f1 (at its new name) IN_MODIFY on
 *            wd 2, a file made in d2 IN_CREATE on wd 4 and then IN_IGNORED
 *            (one-shot), nothing for f2, and a new watch gets wd 6
 *   block    blocking, one watch on d1, shared with a child blocked in
 *            read(): after restore the parent makes a file in d1 and the
 *            child gets the event
 *   queued   an event queued, not read (the dump is refused): it is still
 *            there afterwards
 */
#include "subject.h"
#include <sys/inotify.h>
#include <sys/wait.h>

static void touch(const char *p)
{
	int fd = open(p, O_WRONLY | O_CREAT | O_APPEND, 0644);
	CHECK(fd >= 0, "open %s: %s", p, strerror(errno));
	CHECK(write(fd, "x", 1) == 1, "write %s", p);
	close(fd);
}

/* The watch lines of fdinfo. */
static void watches(int fd, char *out, size_t n)
{
	char path[64], text[8192];
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	snap_file(path, text, sizeof(text));
	char *p = strstr(text, "inotify ");
	snprintf(out, n, "%s", p ? p : "");
}

static char evbuf[8192] __attribute__((aligned(8)));
static int evlen, evat;

/* The next event (waiting up to 2 s for one), or NULL. */
static struct inotify_event *next_event(int fd)
{
	if (evat >= evlen) {
		evat = evlen = 0;
		for (int i = 0; i < 200 && evlen <= 0; i++) {
			evlen = (int)read(fd, evbuf, sizeof(evbuf));
			if (evlen < 0 && errno != EAGAIN) subject_fail("read events: %s", strerror(errno));
			if (evlen <= 0) usleep(10000);
		}
		if (evlen <= 0) return NULL;
	}
	struct inotify_event *e = (struct inotify_event *)(evbuf + evat);
	evat += sizeof(*e) + e->len;
	return e;
}

static void expect(int fd, int wd, uint32_t mask, const char *name)
{
	struct inotify_event *e = next_event(fd);
	CHECK(e, "no event (expected wd %d mask %x)", wd, mask);
	CHECK(e->wd == wd && (e->mask & mask) == mask && (!name || (e->len && !strcmp(e->name, name))),
	      "event wd %d mask %x name '%s', expected wd %d mask %x name '%s'", e->wd, e->mask, e->len ? e->name : "", wd, mask, name ? name : "");
}

int main(int argc, char **argv)
{
	subject_init(argc, argv, 2, "MODE");
	install_term_handler(0);
	const char *mode = argv[2];
	int fd, w;
	pid_t kid = -1;
	static char before[8192], after[8192];

	mkdir("d1", 0755);
	mkdir("d2", 0755);
	touch("f1");
	touch("f2");
	touch("f3");
	if (!strcmp(mode, "watches")) {
		fd = inotify_init1(IN_NONBLOCK);
		CHECK(fd >= 0, "inotify_init1: %s", strerror(errno));
		CHECK(inotify_add_watch(fd, "d1", IN_CREATE | IN_DELETE) == 1, "d1 is not wd 1");
		CHECK(inotify_add_watch(fd, "f1", IN_MODIFY) == 2, "f1 is not wd 2");
		CHECK((w = inotify_add_watch(fd, "f2", IN_ALL_EVENTS)) == 3, "f2 is not wd 3");
		CHECK(inotify_add_watch(fd, "d2", IN_CREATE | IN_ONESHOT) == 4, "d2 is not wd 4");
		CHECK(inotify_add_watch(fd, "f3", IN_ATTRIB | IN_EXCL_UNLINK) == 5, "f3 is not wd 5");
		CHECK(inotify_rm_watch(fd, w) == 0, "inotify_rm_watch: %s", strerror(errno));
		expect(fd, 3, IN_IGNORED, NULL);
		CHECK(rename("f1", "f1-renamed") == 0, "rename");
	} else if (!strcmp(mode, "block")) {
		fd = inotify_init();
		CHECK(fd >= 0 && inotify_add_watch(fd, "d1", IN_CREATE) == 1, "inotify: %s", strerror(errno));
		kid = fork();
		if (kid == 0) {
			ssize_t r;
			do r = read(fd, evbuf, sizeof(evbuf)); while (r < 0 && errno == EINTR);
			struct inotify_event *e = (struct inotify_event *)evbuf;
			_exit(r > 0 && e->wd == 1 && (e->mask & IN_CREATE) && !strcmp(e->name, "new") ? 0 : 3);
		}
	} else if (!strcmp(mode, "queued")) {
		fd = inotify_init1(IN_NONBLOCK);
		CHECK(fd >= 0 && inotify_add_watch(fd, "d1", IN_CREATE) == 1, "inotify: %s", strerror(errno));
		touch("d1/early");
	} else {
		fprintf(stderr, "inotify: unknown MODE '%s'\n", mode);
		return 2;
	}
	watches(fd, before, sizeof(before));
	subject_ready(NULL);
	while (!got_term) pause();

	watches(fd, after, sizeof(after));
	compare_text("fdinfo watches", before, after);
	if (!strcmp(mode, "watches")) {
		CHECK(fcntl(fd, F_GETFL) & O_NONBLOCK, "O_NONBLOCK lost");
		CHECK(read(fd, evbuf, sizeof(evbuf)) == -1 && errno == EAGAIN, "events queued after restore");
		touch("f2");
		touch("d1/new");
		expect(fd, 1, IN_CREATE, "new");
		touch("f1-renamed");
		expect(fd, 2, IN_MODIFY, NULL);
		touch("d2/one");
		expect(fd, 4, IN_CREATE, "one");
		expect(fd, 4, IN_IGNORED, NULL);
		CHECK(chmod("f3", 0600) == 0, "chmod");
		expect(fd, 5, IN_ATTRIB, NULL);
		usleep(50000);
		CHECK(read(fd, evbuf, sizeof(evbuf)) == -1 && errno == EAGAIN, "more events than expected (f2 is not watched)");
		mkdir("d3", 0755);
		int w6 = inotify_add_watch(fd, "d3", IN_CREATE);
		CHECK(w6 == 6, "a new watch got wd %d, expected 6", w6);
	} else if (!strcmp(mode, "block")) {
		CHECK(!(fcntl(fd, F_GETFL) & O_NONBLOCK), "got O_NONBLOCK");
		touch("d1/new");
		int st;
		CHECK(waitpid(kid, &st, 0) == kid, "waitpid: %s", strerror(errno));
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child did not get the event (status %#x)", st);
	} else if (!strcmp(mode, "queued")) {
		expect(fd, 1, IN_CREATE, "early");
	}
	subject_pass();
}
