/*
 * sharedfile - a file opened before fork is one open file description shared
 * by the parent and its children (one offset): it must stay shared.
 *
 *   sharedfile OUTFILE
 *
 * The parent opens shared.log (no O_APPEND) and forks 3 children; each
 * process writes one byte before READY and one after restore (children when
 * told with SIGUSR1). With one shared offset the file ends up 8 bytes long and
 * the parent's offset is 8; with separate offsets bytes overwrite each other.
 */
#include "subject.h"
#include <sys/wait.h>

static int fd;
static volatile sig_atomic_t usr1;
static void on_usr1(int s) { (void)s; usr1 = 1; }

int main(int argc, char **argv)
{
	subject_init(argc, argv, 1, "");
	install_term_handler(0);
	fd = open("shared.log", O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0, "open: %s", strerror(errno));
	CHECK(write(fd, "P", 1) == 1, "write");
	pid_t kids[3];
	for (int i = 0; i < 3; i++) {
		pid_t c = fork();
		if (c == 0) {
			signal(SIGUSR1, on_usr1);
			if (write(fd, "c", 1) != 1) _exit(2);
			while (!usr1 && !got_term) pause();
			if (write(fd, "d", 1) != 1) _exit(3);
			while (!got_term) pause();
			_exit(0);
		}
		kids[i] = c;
	}
	for (int tries = 0; tries < 500 && lseek(fd, 0, SEEK_CUR) < 4; tries++) usleep(1000);
	CHECK(lseek(fd, 0, SEEK_CUR) == 4, "offset %ld before READY", (long)lseek(fd, 0, SEEK_CUR));
	subject_ready(NULL);
	while (!got_term) {
		struct timespec ts = { 0, 50 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	for (int i = 0; i < 3; i++) kill(kids[i], SIGUSR1);
	for (int tries = 0; tries < 500 && lseek(fd, 0, SEEK_CUR) < 7; tries++) usleep(1000);
	CHECK(write(fd, "Q", 1) == 1, "write");
	off_t off = lseek(fd, 0, SEEK_CUR);
	struct stat st;
	CHECK(fstat(fd, &st) == 0, "fstat");
	for (int i = 0; i < 3; i++) {
		int s;
		kill(kids[i], SIGTERM);
		CHECK(waitpid(kids[i], &s, 0) == kids[i] && WIFEXITED(s) && WEXITSTATUS(s) == 0, "child %d ended with %#x", kids[i], s);
	}
	CHECK(off == 8 && st.st_size == 8, "shared offset is %ld and the file %ld bytes, expected 8 and 8: the offset is not shared", (long)off, (long)st.st_size);
	subject_pass();
}
