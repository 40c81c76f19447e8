/*
 * fd_refused - fds ckpt does not support, at fd 3: the dump must be refused,
 * naming the fd and what it is, and the process must run on unchanged.
 *
 *   fd_refused OUTFILE MODE
 *
 *   io_uring       an io_uring instance (io_uring_setup, no liburing)
 *   userfaultfd    a userfaultfd (user-mode faults only)
 *   perf           a perf event of a software counter (task clock, disabled)
 *   bpf            a BPF array map (bpf(BPF_MAP_CREATE), as root)
 *   netns          the net namespace file (/proc/self/ns/net)
 *   fscontext      a filesystem context (fsopen("tmpfs"))
 *   epoll_outside  an epoll instance at fd 3 whose registered pipe (at fd
 *                  4 when registered, closed since) only a process outside
 *                  the tree holds
 *
 * After SIGTERM it checks that the object is still there and works.
 */
#include "subject.h"
#include <sys/syscall.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <linux/io_uring.h>
#include <linux/perf_event.h>
#include <linux/bpf.h>
#include <linux/userfaultfd.h>

static void linkof(int fd, char *out, size_t n)
{
	char p[64];
	snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
	ssize_t l = readlink(p, out, n - 1);
	out[l > 0 ? l : 0] = 0;
}

int main(int argc, char **argv)
{
	subject_init(argc, argv, 2, "MODE");
	install_term_handler(0);
	const char *mode = argv[2];
	int fd = -1;
	pid_t outside = -1;
	char before[256], after[256];

	if (!strcmp(mode, "io_uring")) {
		struct io_uring_params p;
		memset(&p, 0, sizeof(p));
		fd = (int)syscall(__NR_io_uring_setup, 4, &p);
	} else if (!strcmp(mode, "userfaultfd")) {
		fd = (int)syscall(__NR_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
	} else if (!strcmp(mode, "perf")) {
		struct perf_event_attr a;
		memset(&a, 0, sizeof(a));
		a.type = PERF_TYPE_SOFTWARE;
		a.size = sizeof(a);
		a.config = PERF_COUNT_SW_TASK_CLOCK;
		a.disabled = 1;
		fd = (int)syscall(__NR_perf_event_open, &a, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
	} else if (!strcmp(mode, "bpf")) {
		union bpf_attr b;
		memset(&b, 0, sizeof(b));
		b.map_type = BPF_MAP_TYPE_ARRAY;
		b.key_size = 4;
		b.value_size = 8;
		b.max_entries = 4;
		fd = (int)syscall(__NR_bpf, BPF_MAP_CREATE, &b, sizeof(b));
	} else if (!strcmp(mode, "netns")) {
		fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	} else if (!strcmp(mode, "fscontext")) {
		fd = (int)syscall(__NR_fsopen, "tmpfs", 0);
	} else if (!strcmp(mode, "epoll_outside")) {
		fd = epoll_create1(0);
		int p[2], sync[2];
		CHECK(pipe(p) == 0 && pipe(sync) == 0, "pipe");
		CHECK(p[0] == 4, "the pipe's read end is at %d", p[0]);
		struct epoll_event e = { .events = EPOLLIN, .data.u64 = 77 };
		CHECK(epoll_ctl(fd, EPOLL_CTL_ADD, p[0], &e) == 0, "epoll_ctl: %s", strerror(errno));
		/* A grandchild whose parent exits is no longer in the tree: it holds the pipe. */
		pid_t a = fork();
		if (a == 0) {
			pid_t b = fork();
			if (b == 0) {
				close(fd);
				pid_t me = getpid();
				(void)!write(sync[1], &me, sizeof(me));
				for (;;) pause();
			}
			_exit(0);
		}
		CHECK(waitpid(a, NULL, 0) == a, "waitpid");
		CHECK(read(sync[0], &outside, sizeof(outside)) == sizeof(outside), "sync");
		close(sync[0]); close(sync[1]);
		close(p[0]); close(p[1]);
	} else {
		fprintf(stderr, "fd_refused: unknown MODE '%s'\n", mode);
		return 2;
	}
	CHECK(fd == 3, "%s: fd %d: %s", mode, fd, strerror(errno));
	linkof(fd, before, sizeof(before));
	subject_ready(NULL);
	while (!got_term) pause();

	linkof(fd, after, sizeof(after));
	CHECK(!strcmp(before, after), "fd 3 was %s, is %s", before, after);
	if (!strcmp(mode, "perf")) {
		uint64_t v;
		CHECK(read(fd, &v, sizeof(v)) == sizeof(v), "read perf counter: %s", strerror(errno));
	} else if (!strcmp(mode, "bpf")) {
		union bpf_attr b;
		uint32_t key = 1;
		uint64_t val = 5;
		memset(&b, 0, sizeof(b));
		b.map_fd = fd;
		b.key = (uintptr_t)&key;
		b.value = (uintptr_t)&val;
		CHECK(syscall(__NR_bpf, BPF_MAP_UPDATE_ELEM, &b, sizeof(b)) == 0, "map update: %s", strerror(errno));
	} else if (!strcmp(mode, "epoll_outside")) {
		struct epoll_event e[2];
		/* the registration is still there (the pipe is empty: nothing reported) */
		char path[64], text[1024];
		snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
		snap_file(path, text, sizeof(text));
		CHECK(strstr(text, "tfd:        4") != NULL, "the registration is gone: %s", text);
		CHECK(epoll_wait(fd, e, 2, 0) == 0, "epoll_wait");
		kill(outside, SIGKILL);
	}
	subject_pass();
}
