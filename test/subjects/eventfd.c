/*
 * eventfd - eventfds come back with their counter, mode and flags.
 *
 *   eventfd OUTFILE MODE
 *
 *   zero      counter 0, O_NONBLOCK: a read gives EAGAIN; then counts again
 *   max       counter 2^64-2 (the largest): a write of 1 would block (EAGAIN)
 *   sem       EFD_SEMAPHORE, counter 3: reads give 1, 1, 1, then EAGAIN
 *   blocking  counter 42, no O_NONBLOCK
 *   shared    one eventfd, counter 7, dup'ed in the parent and inherited by
 *             a child, which is blocked in read() of a second eventfd; after
 *             restore the parent checks the dup shares its status flags,
 *             writes 5 and wakes the child: it reads 12
 */
#include "subject.h"
#include <sys/eventfd.h>
#include <sys/wait.h>

static uint64_t rd(int fd, int *err)
{
	uint64_t v = 0;
	*err = read(fd, &v, 8) == 8 ? 0 : errno;
	return v;
}

static void wr(int fd, uint64_t v)
{
	CHECK(write(fd, &v, 8) == 8, "write %llu: %s", (unsigned long long)v, strerror(errno));
}

int main(int argc, char **argv)
{
	subject_init(argc, argv, 2, "MODE");
	install_term_handler(0);
	const char *mode = argv[2];
	int fd = -1, dup_fd = -1, go = -1, err;
	pid_t kid = -1;
	uint64_t v;

	if (!strcmp(mode, "zero")) {
		fd = eventfd(0, EFD_NONBLOCK);
	} else if (!strcmp(mode, "max")) {
		fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		wr(fd, 0xfffffffffffffffeull);
	} else if (!strcmp(mode, "sem")) {
		fd = eventfd(3, EFD_SEMAPHORE | EFD_NONBLOCK);
	} else if (!strcmp(mode, "blocking")) {
		fd = eventfd(42, 0);
	} else if (!strcmp(mode, "shared")) {
		fd = eventfd(7, 0);
		go = eventfd(0, 0);
		kid = fork();
		if (kid == 0) {
			/* blocked in read of `go` through the dump: woken after restore, then reads 7 + 5 */
			do v = rd(go, &err); while (err == EINTR);
			if (err || v != 1) _exit(3);
			v = rd(fd, &err);
			_exit(err ? 4 : v == 12 ? 0 : 5);
		}
		dup_fd = dup(fd);
	} else {
		fprintf(stderr, "eventfd: unknown MODE '%s'\n", mode);
		return 2;
	}
	CHECK(fd >= 0, "eventfd: %s", strerror(errno));
	subject_ready(NULL);
	while (!got_term) pause();

	if (!strcmp(mode, "zero")) {
		CHECK(fcntl(fd, F_GETFL) & O_NONBLOCK, "O_NONBLOCK lost");
		v = rd(fd, &err);
		CHECK(err == EAGAIN, "read of a zero counter: %s, %llu", strerror(err), (unsigned long long)v);
		wr(fd, 3);
		v = rd(fd, &err);
		CHECK(!err && v == 3, "read after writing 3: %llu (%s)", (unsigned long long)v, strerror(err));
	} else if (!strcmp(mode, "max")) {
		uint64_t one = 1;
		CHECK(write(fd, &one, 8) == -1 && errno == EAGAIN, "a write to a full counter did not give EAGAIN");
		CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC, "FD_CLOEXEC lost");
		v = rd(fd, &err);
		CHECK(!err && v == 0xfffffffffffffffeull, "counter %llx, expected fffffffffffffffe", (unsigned long long)v);
	} else if (!strcmp(mode, "sem")) {
		for (int i = 0; i < 3; i++) {
			v = rd(fd, &err);
			CHECK(!err && v == 1, "semaphore read %d: %llu (%s)", i, (unsigned long long)v, strerror(err));
		}
		v = rd(fd, &err);
		CHECK(err == EAGAIN, "a fourth semaphore read: %s", strerror(err));
	} else if (!strcmp(mode, "blocking")) {
		CHECK(!(fcntl(fd, F_GETFL) & O_NONBLOCK), "got O_NONBLOCK");
		v = rd(fd, &err);
		CHECK(!err && v == 42, "counter %llu, expected 42", (unsigned long long)v);
	} else if (!strcmp(mode, "shared")) {
		CHECK(!(fcntl(dup_fd, F_GETFL) & O_NONBLOCK), "the dup has O_NONBLOCK");
		fcntl(fd, F_SETFL, O_NONBLOCK);
		CHECK(fcntl(dup_fd, F_GETFL) & O_NONBLOCK, "the dup does not share the status flags");
		fcntl(fd, F_SETFL, 0);
		wr(dup_fd, 5);
		wr(go, 1);
		int st;
		CHECK(waitpid(kid, &st, 0) == kid, "waitpid: %s", strerror(errno));
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child did not read 12 (status %#x)", st);
	}
	subject_pass();
}
