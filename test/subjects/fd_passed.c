/*
 * fd_passed - open file descriptions passed between processes over unix
 * sockets (SCM_RIGHTS), not inherited: a child's file held by its parent, a
 * sibling's file held by the other sibling only.
 *
 *   fd_passed OUTFILE
 *
 * The root has a socket pair with each of its children A and B. A opens
 * a.dat (O_RDWR, offset 11, fd 5) and the directory "." (fd 4) and sends
 * both to the root, which puts them at fds 7 and 8 and passes a.dat on to
 * B (fd 3 there). B opens b.dat (O_WRONLY|O_APPEND, offset 22) and sends it
 * to the root, which passes it on to A (fd 6) and closes its copy; B closes
 * its own: only A holds b.dat. Then every socket is closed (ckpt refuses
 * sockets). The whole tree is compared (fdtree.h), and by name: A 5 = root
 * 7 = B 3, A 4 = root 8, A 6 held by A alone.
 */
#include "subject.h"
#include "fdtree.h"
#include <sys/socket.h>

static struct fdt_snap before, after;

static void send_fd(int sock, int fd)
{
	char c = 'f', ctl[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { &c, 1 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl) };
	struct cmsghdr *h = CMSG_FIRSTHDR(&m);

	h->cmsg_level = SOL_SOCKET;
	h->cmsg_type = SCM_RIGHTS;
	h->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(h), &fd, sizeof(int));
	CHECK(sendmsg(sock, &m, 0) == 1, "sendmsg: %s", strerror(errno));
}

static int recv_fd(int sock)
{
	char c, ctl[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { &c, 1 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl) };
	struct cmsghdr *h;
	int fd;

	CHECK(recvmsg(sock, &m, 0) == 1, "recvmsg: %s", strerror(errno));
	h = CMSG_FIRSTHDR(&m);
	CHECK(h && h->cmsg_type == SCM_RIGHTS, "no fd received");
	memcpy(&fd, CMSG_DATA(h), sizeof(int));
	return fd;
}

/* Move fd to number n. */
static void place(int fd, int n)
{
	if (fd != n) {
		fdt_dup2(fd, n);
		close(fd);
	}
}

int main(int argc, char **argv)
{
	struct fdt_tree t = { 0 };
	struct fdt_shared *sh;
	pid_t a, b, me = getpid();
	int sa[2], sb[2], x;

	subject_init(argc, argv, 1, "");
	install_term_handler(0);
	CHECK(syscall(SYS_close_range, 3, ~0u, 0) == 0, "close_range: %s", strerror(errno));
	sh = fdt_shared_map();
	fdt_mkfile("a.dat", 100);
	fdt_mkfile("b.dat", 100);
	CHECK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sa) == 0 && socketpair(AF_UNIX, SOCK_DGRAM, 0, sb) == 0, "socketpair: %s", strerror(errno));
	CHECK(sa[0] == 3 && sa[1] == 4 && sb[0] == 5 && sb[1] == 6, "socket numbers %d %d %d %d", sa[0], sa[1], sb[0], sb[1]);
	a = fork();
	CHECK(a >= 0, "fork: %s", strerror(errno));
	if (a == 0) {
		int s = fcntl(sa[1], F_DUPFD, 20);
		CHECK(syscall(SYS_close_range, 3, 19, 0) == 0, "close_range");
		fdt_open_at(5, "a.dat", O_RDWR);
		CHECK(lseek(5, 11, SEEK_SET) == 11, "lseek");
		fdt_open_at(4, ".", O_RDONLY | O_DIRECTORY);
		send_fd(s, 5);
		send_fd(s, 4);
		place(recv_fd(s), 6);
		close(s);
		fdt_child_wait(sh, 0);
	}
	b = fork();
	CHECK(b >= 0, "fork: %s", strerror(errno));
	if (b == 0) {
		int s = fcntl(sb[1], F_DUPFD, 20);
		CHECK(syscall(SYS_close_range, 3, 19, 0) == 0, "close_range");
		place(recv_fd(s), 3);
		x = fdt_open("b.dat", O_WRONLY | O_APPEND);
		CHECK(lseek(x, 22, SEEK_SET) == 22, "lseek");
		send_fd(s, x);
		close(x);
		close(s);
		fdt_child_wait(sh, 1);
	}
	close(sa[1]);
	close(sb[1]);
	x = recv_fd(sa[0]);
	place(x, 7);
	place(recv_fd(sa[0]), 8);
	send_fd(sb[0], 7);
	x = recv_fd(sb[0]);
	send_fd(sa[0], x);
	close(x);
	fdt_wait_ready(sh, 2);
	close(sa[0]);
	close(sb[0]);
	fdt_add(&t, me, "root");
	fdt_add(&t, a, "child A");
	fdt_add(&t, b, "child B");
	fdt_take(&t, &before);
	fdt_probe(&t, &before);
	for (int fd = 3; fd < 7; fd++)
		CHECK(fcntl(fd, F_GETFD) < 0, "root: fd %d open", fd);

	subject_ready(NULL);
	while (!got_term)
		pause();

	fdt_check(&t, &before, &after);
	fdt_expect(&t, a, 5, me, 7, 1);
	fdt_expect(&t, a, 5, b, 3, 1);
	fdt_expect(&t, a, 4, me, 8, 1);
	{
		long long pos;
		int fl;
		CHECK(fdt_info(a, 6, &pos, &fl) == 0 && pos == 22 && (fl & O_APPEND), "A's fd 6 (b.dat): offset %lld flags 0%o", pos, fl);
	}
	fdt_end_children((pid_t[]){ a, b }, 2);
	subject_pass();
}
