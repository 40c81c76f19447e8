/*
 * bench_fds - many open fds of mixed kinds, for the benchmark (and a test).
 *
 *   bench_fds OUTFILE N KINDS
 *
 * Opens N fds from 3 up, cycling through KINDS (a comma-separated list of
 * file, null, dir, pipe, eventfd, socket, timerfd, epoll); close-on-exec on
 * every third. Each keeps state that is checked after restore:
 *   file    one of 8 files, at offset (fd % 4000)
 *   null    /dev/null
 *   dir     the working directory, O_DIRECTORY
 *   pipe    a pipe (two fds) with 8 bytes buffered, read back after
 *   eventfd counter = fd
 *   socket  a stream socketpair (two fds) with 8 bytes queued, read back after
 *   timerfd a disarmed CLOCK_MONOTONIC timer
 *   epoll   an epoll instance watching the last pipe read end (data = fd)
 */
#include "subject.h"
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/timerfd.h>

enum kind { K_FILE, K_NULL, K_DIR, K_PIPE, K_EVENTFD, K_SOCKET, K_TIMERFD, K_EPOLL, K_N };
static const char *names[K_N] = { "file", "null", "dir", "pipe", "eventfd", "socket", "timerfd", "epoll" };

#define MAXFD 4096
static signed char kind_of[MAXFD];
static int peer_of[MAXFD];   /* pipe/socket: the other end (-1 for the end that reads) */
static int arg_of[MAXFD];

static void place(int fd, int want)
{
	if (fd != want) {
		CHECK(dup2(fd, want) == want, "dup2: %s", strerror(errno));
		close(fd);
	}
	if (want % 3 == 0)
		fcntl(want, F_SETFD, FD_CLOEXEC);
}

int main(int argc, char **argv)
{
	int kinds[K_N], nk = 0, n, next = 3, last_pipe = -1;
	char list[256], *tok, *save;
	struct rlimit rl;

	subject_init(argc, argv, 3, "N KINDS");
	install_term_handler(0);
	n = atoi(argv[2]);
	CHECK(n > 0 && n < MAXFD - 8, "N must be 1..%d", MAXFD - 8);
	snprintf(list, sizeof(list), "%s", argv[3]);
	for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		int k;
		for (k = 0; k < K_N && strcmp(tok, names[k]); k++)
			;
		CHECK(k < K_N, "unknown kind %s", tok);
		kinds[nk++] = k;
	}
	CHECK(syscall(SYS_close_range, 3, ~0u, 0) == 0, "close_range: %s", strerror(errno));
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	for (int f = 0; f < 8; f++) {
		char name[16];
		snprintf(name, sizeof(name), "f%d.dat", f);
		int fd = open(name, O_RDWR | O_CREAT | O_TRUNC, 0644);
		CHECK(fd >= 0 && ftruncate(fd, 4096) == 0, "create %s", name);
		close(fd);
	}
	for (int i = 0; next < n + 3; i++) {
		int k = kinds[i % nk], fd = next, p[2];
		char name[16];
		memset(&peer_of[fd], -1, sizeof(int));
		switch (k) {
		case K_FILE:
			snprintf(name, sizeof(name), "f%d.dat", fd % 8);
			place(open(name, fd % 2 ? O_RDWR : O_RDONLY), fd);
			CHECK(lseek(fd, fd % 4000, SEEK_SET) == fd % 4000, "lseek");
			break;
		case K_NULL: place(open("/dev/null", O_RDWR), fd); break;
		case K_DIR: place(open(".", O_RDONLY | O_DIRECTORY), fd); break;
		case K_EVENTFD: place(eventfd(fd, 0), fd); break;
		case K_TIMERFD: place(timerfd_create(CLOCK_MONOTONIC, 0), fd); break;
		case K_EPOLL:
			if (last_pipe < 0)
				continue;
			place(epoll_create1(0), fd);
			{
				struct epoll_event ev = { .events = EPOLLIN, .data.u64 = (uint64_t)fd };
				CHECK(epoll_ctl(fd, EPOLL_CTL_ADD, last_pipe, &ev) == 0, "epoll_ctl: %s", strerror(errno));
			}
			arg_of[fd] = last_pipe;
			break;
		case K_PIPE:
		case K_SOCKET:
			if (next + 1 >= n + 3)
				goto done;
			if (k == K_PIPE)
				CHECK(pipe(p) == 0, "pipe: %s", strerror(errno));
			else
				CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, p) == 0, "socketpair: %s", strerror(errno));
			/* (the new fds are at the lowest free numbers, which are next and next + 1 or beyond) */
			{
				int r = fcntl(p[0], F_DUPFD, 3000), w = fcntl(p[1], F_DUPFD, 3000);
				close(p[0]);
				close(p[1]);
				place(r, fd);
				place(w, fd + 1);
			}
			CHECK(write(fd + 1, "12345678", 8) == 8, "write: %s", strerror(errno));
			peer_of[fd + 1] = fd;
			kind_of[fd + 1] = (signed char)k;
			if (k == K_PIPE)
				last_pipe = fd;
			next++;
			break;
		}
		kind_of[fd] = (signed char)k;
		next++;
	}
done:
	subject_ready(argv[1]);
	while (!got_term)
		pause();
	for (int fd = 3; fd < next; fd++) {
		struct stat st;
		uint64_t v;
		int k = kind_of[fd];
		CHECK(fstat(fd, &st) == 0, "fd %d (%s): fstat: %s", fd, names[k], strerror(errno));
		CHECK(!!(fcntl(fd, F_GETFD) & FD_CLOEXEC) == (fd % 3 == 0), "fd %d: close-on-exec flag", fd);
		switch (k) {
		case K_FILE: CHECK(S_ISREG(st.st_mode) && lseek(fd, 0, SEEK_CUR) == fd % 4000, "fd %d: file offset", fd); break;
		case K_NULL: CHECK(S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3), "fd %d: not /dev/null", fd); break;
		case K_DIR: CHECK(S_ISDIR(st.st_mode), "fd %d: not a directory", fd); break;
		case K_EVENTFD: CHECK(read(fd, &v, 8) == 8 && v == (uint64_t)fd, "fd %d: eventfd counter", fd); break;
		case K_TIMERFD: {
			struct itimerspec its;
			CHECK(timerfd_gettime(fd, &its) == 0 && its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0, "fd %d: timerfd", fd);
			break;
		}
		case K_EPOLL: {
			struct epoll_event ev;
			CHECK(epoll_wait(fd, &ev, 1, 0) == 1 && ev.data.u64 == (uint64_t)fd, "fd %d: epoll", fd);
			break;
		}
		}
	}
	/* (after the epoll checks, which want the pipes readable) */
	for (int fd = 3; fd < next; fd++) {
		char buf[16];
		if ((kind_of[fd] == K_PIPE || kind_of[fd] == K_SOCKET) && peer_of[fd] >= 0)
			CHECK(read(peer_of[fd], buf, 8) == 8 && !memcmp(buf, "12345678", 8), "fd %d: %s data", peer_of[fd], names[(int)kind_of[fd]]);
	}
	subject_pass();
}
