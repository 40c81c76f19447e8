/*
 * sessions - sessions and process groups whose leaders have exited.
 *
 *   sessions OUTFILE
 *
 * The root is a child subreaper. Child A starts a session (setsid), forks B,
 * and exits: B, reparented to the root, is in session A and group A, whose
 * leader is gone. Child C starts a group (setpgid), forks D, and exits: D,
 * reparented to the root, is in group C (leader gone) of the root's session.
 * On SIGTERM the root checks that B and D are its children with those
 * sessions and groups (B and D check themselves too), then ends them.
 */
#include "subject.h"
#include <sys/prctl.h>
#include <sys/wait.h>

static pid_t child_of_exited(int new_session, pid_t *leader)
{
	int fds[2];
	CHECK(pipe(fds) == 0, "pipe: %s", strerror(errno));
	pid_t a = fork();
	if (a == 0) {
		if (new_session) setsid(); else setpgid(0, 0);
		pid_t b = fork();
		if (b == 0) {
			close(fds[0]);
			close(fds[1]);
			pid_t sid = getsid(0), pgid = getpgid(0);
			while (!got_term) {
				struct timespec ts = { 0, 50 * 1000 * 1000 };
				nanosleep(&ts, NULL);
			}
			_exit(getsid(0) == sid && getpgid(0) == pgid ? 0 : 1);
		}
		CHECK(write(fds[1], &b, sizeof(b)) == sizeof(b), "write");
		_exit(0);
	}
	pid_t b;
	close(fds[1]);
	CHECK(read(fds[0], &b, sizeof(b)) == sizeof(b), "read");
	close(fds[0]);
	int st;
	CHECK(waitpid(a, &st, 0) == a, "waitpid(%d): %s", a, strerror(errno));
	*leader = a;
	return b;
}

int main(int argc, char **argv)
{
	subject_init(argc, argv, 1, "");
	install_term_handler(0);
	CHECK(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0, "subreaper: %s", strerror(errno));
	pid_t a, c;
	pid_t b = child_of_exited(1, &a);
	pid_t d = child_of_exited(0, &c);
	/* Wait until both orphans were reparented to us. */
	for (int i = 0; i < 500; i++) {
		char path[64], text[512];
		snprintf(path, sizeof(path), "/proc/%d/stat", d);
		if (read_file(path, text, sizeof(text)) > 0 && atoi(strrchr(text, ')') + 4) == getpid()) {
			snprintf(path, sizeof(path), "/proc/%d/stat", b);
			if (read_file(path, text, sizeof(text)) > 0 && atoi(strrchr(text, ')') + 4) == getpid()) break;
		}
		usleep(2000);
	}
	subject_ready(NULL);
	while (!got_term) {
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	CHECK(getsid(b) == a && getpgid(b) == a, "B (%d): sid %d pgid %d, expected %d/%d", b, getsid(b), getpgid(b), a, a);
	CHECK(getsid(d) == getsid(0) && getpgid(d) == c, "D (%d): sid %d pgid %d, expected %d/%d", d, getsid(d), getpgid(d), getsid(0), c);
	int st;
	kill(b, SIGTERM);
	kill(d, SIGTERM);
	CHECK(waitpid(b, &st, 0) == b && WIFEXITED(st) && WEXITSTATUS(st) == 0, "B ended with %#x", st);
	CHECK(waitpid(d, &st, 0) == d && WIFEXITED(st) && WEXITSTATUS(st) == 0, "D ended with %#x", st);
	subject_pass();
}
