/*
 * procfd - open files in /proc/PID must come back for the same process:
 * the parent holds /proc/CHILD/stat, /proc/CHILD/status and /proc/self/status
 * (which is /proc/PARENT/status: /proc/self resolves at open), and
 * /proc/self/stat.
 *
 *   procfd OUTFILE
 *
 * The child names itself "pfd_child" (PR_SET_NAME) and waits. Before READY
 * and after restore, reading each fd again from offset 0 (pread) must show
 * the right process: the pid and name fields of stat, the Name, Pid and
 * PPid lines of status. Then the child is ended (SIGTERM, exit 0).
 */
#include "subject.h"
#include <sys/prctl.h>
#include <sys/wait.h>

struct pf { const char *what; int fd; pid_t pid; const char *name; int is_stat; };

static const char *check(const struct pf *f)
{
	static char why[9000];
	char text[4096], line[256];
	ssize_t n = pread(f->fd, text, sizeof(text) - 1, 0);
	if (n <= 0) return snprintf(why, sizeof(why), "%s: pread: %s", f->what, n < 0 ? strerror(errno) : "empty"), why;
	text[n] = 0;
	if (f->is_stat) {
		char want[64];
		int w = snprintf(want, sizeof(want), "%d (%s) ", f->pid, f->name);
		if (strncmp(text, want, w) != 0)
			return snprintf(why, sizeof(why), "%s starts '%.60s', expected '%s'", f->what, text, want), why;
		return NULL;
	}
	status_line(text, "Name", line, sizeof(line));
	if (strcmp(line + strspn(line + 5, " \t") + 5, f->name) != 0) return snprintf(why, sizeof(why), "%s: '%s', expected name %s", f->what, line, f->name), why;
	status_line(text, "Pid", line, sizeof(line));
	if (atoi(line + 4) != f->pid) return snprintf(why, sizeof(why), "%s: '%s', expected pid %d", f->what, line, f->pid), why;
	status_line(text, "PPid", line, sizeof(line));
	pid_t pp = f->pid == getpid() ? getppid() : getpid();
	if (atoi(line + 5) != pp) return snprintf(why, sizeof(why), "%s: '%s', expected ppid %d", f->what, line, pp), why;
	return NULL;
}

int main(int argc, char **argv)
{
	subject_init(argc, argv, 1, "");
	install_term_handler(0);
	CHECK(prctl(PR_SET_NAME, "procfd") == 0, "PR_SET_NAME: %s", strerror(errno));
	int fds[2];
	CHECK(pipe(fds) == 0, "pipe: %s", strerror(errno));
	pid_t parent = getpid(), c = fork();
	CHECK(c >= 0, "fork: %s", strerror(errno));
	if (c == 0) {
		prctl(PR_SET_NAME, "pfd_child");
		close(fds[0]);
		close(fds[1]);
		while (!got_term) {
			if (getppid() != parent) _exit(2); /* the parent is gone (it failed) */
			struct timespec ts = { 0, 50 * 1000 * 1000 };
			nanosleep(&ts, NULL);
		}
		_exit(0);
	}
	close(fds[1]);
	char b;
	CHECK(read(fds[0], &b, 1) == 0, "pipe read"); /* EOF: the child has named itself */
	close(fds[0]);
	char path[4][64];
	snprintf(path[0], 64, "/proc/%d/stat", c);
	snprintf(path[1], 64, "/proc/%d/status", c);
	snprintf(path[2], 64, "/proc/self/status");
	snprintf(path[3], 64, "/proc/self/stat");
	struct pf f[4] = {
		{ path[0], -1, c, "pfd_child", 1 }, { path[1], -1, c, "pfd_child", 0 },
		{ path[2], -1, getpid(), "procfd", 0 }, { path[3], -1, getpid(), "procfd", 1 },
	};
	for (int i = 0; i < 4; i++) {
		f[i].fd = open(f[i].what, O_RDONLY);
		CHECK(f[i].fd >= 0, "open %s: %s", f[i].what, strerror(errno));
		const char *w = check(&f[i]);
		CHECK(!w, "before the checkpoint: %s", w);
	}
	subject_ready(NULL);
	while (!got_term) {
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	for (int i = 0; i < 4; i++) {
		const char *w = check(&f[i]);
		CHECK(!w, "fd %d (%s): %s", f[i].fd, f[i].what, w);
	}
	kill(c, SIGTERM);
	int st = 0;
	CHECK(waitpid(c, &st, 0) == c && WIFEXITED(st) && WEXITSTATUS(st) == 0, "child ended with %#x", st);
	subject_pass();
}
