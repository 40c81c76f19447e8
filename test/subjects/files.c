/*
 * files - regular files and character devices open at fixed fd numbers must
 * come back with the same flags, offsets and identity.
 *
 *   files OUTFILE
 *
 * With umask 0 it creates in cwd and opens:
 *   a.txt  mode 0640  O_RDWR, offset moved to 7; also dup2'ed to fd 10
 *          (same open file description: shared offset)
 *   b.log  mode 0600  O_WRONLY|O_APPEND
 *   c.txt  mode 0444  O_RDONLY|O_CLOEXEC, offset 3
 *   d.txt  mode 0666  O_RDWR|O_NONBLOCK
 *   /dev/zero O_RDONLY, dup2'ed to fd 100; /dev/urandom O_RDONLY
 *   fds 0-2 are /dev/null (from the harness)
 * For every fd it records F_GETFL, F_GETFD, the offset, st_dev/st_ino/
 * st_mode/st_rdev and the mnt_id of /proc/self/fdinfo. After restore it
 * compares those and the set of open fds, then checks that the files work:
 * a.txt reads the expected bytes from its offset, fd 10 shares a.txt's
 * offset (kcmp and lseek), c.txt reads from offset 3, an append to b.log
 * lands at the end, /dev/zero reads zeros, /dev/urandom reads data, and the
 * umask is still 0.
 */
#include "subject.h"
#include <dirent.h>
#include <linux/kcmp.h>
#include <sys/syscall.h>

#define MAXFD 128

struct fdstate {
	int open;
	int fl, fd_flags;
	off_t pos;
	dev_t dev, rdev;
	ino_t ino;
	mode_t mode;
	int mnt_id;
};

static struct fdstate before[MAXFD], after[MAXFD];

static const char a_content[] = "0123456789abcdefghijklmnopqrstuvwxyz\n";
static const char c_content[] = "CCCcontent-of-c\n";
static off_t b_size;

static int mnt_id_of(int fd)
{
	char path[64], buf[4096], line[256];

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	if (read_file(path, buf, sizeof(buf)) < 0)
		return -1;
	if (status_line(buf, "mnt_id", line, sizeof(line)) != 0)
		return -1;
	return atoi(line + 7);
}

static void snapshot(struct fdstate *s)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;

	CHECK(d, "opendir /proc/self/fd: %s", strerror(errno));
	memset(s, 0, sizeof(struct fdstate) * MAXFD);
	while ((de = readdir(d))) {
		int fd;
		struct stat st;

		if (de->d_name[0] == '.')
			continue;
		fd = atoi(de->d_name);
		if (fd == dirfd(d))
			continue;
		CHECK(fd >= 0 && fd < MAXFD, "unexpected fd %d", fd);
		s[fd].open = 1;
		s[fd].fl = fcntl(fd, F_GETFL);
		s[fd].fd_flags = fcntl(fd, F_GETFD);
		s[fd].pos = lseek(fd, 0, SEEK_CUR);
		CHECK(fstat(fd, &st) == 0, "fstat %d: %s", fd, strerror(errno));
		s[fd].dev = st.st_dev;
		s[fd].rdev = st.st_rdev;
		s[fd].ino = st.st_ino;
		s[fd].mode = st.st_mode;
		s[fd].mnt_id = mnt_id_of(fd);
	}
	closedir(d);
}

static int create(const char *name, mode_t mode, const char *content, int flags)
{
	int fd = open(name, O_CREAT | O_TRUNC | O_WRONLY, mode);

	CHECK(fd >= 0, "create %s: %s", name, strerror(errno));
	CHECK(write(fd, content, strlen(content)) == (ssize_t)strlen(content), "write %s", name);
	close(fd);
	fd = open(name, flags);
	CHECK(fd >= 0, "open %s: %s", name, strerror(errno));
	return fd;
}

int main(int argc, char **argv)
{
	int a, b, c, dfd, zero, urnd, fd, i;
	char buf[64];
	struct stat st;

	subject_init(argc, argv, 1, "");
	install_term_handler(0);
	umask(0);
	/* start from a known fd table */
	CHECK(syscall(SYS_close_range, 3, ~0u, 0) == 0, "close_range: %s", strerror(errno));

	unlink("a.txt");
	unlink("b.log");
	unlink("c.txt");
	unlink("d.txt");
	a = create("a.txt", 0640, a_content, O_RDWR);
	b = create("b.log", 0600, "line1\nline2\n", O_WRONLY | O_APPEND);
	c = create("c.txt", 0444, c_content, O_RDONLY | O_CLOEXEC);
	dfd = create("d.txt", 0666, "d\n", O_RDWR | O_NONBLOCK);
	zero = open("/dev/zero", O_RDONLY);
	urnd = open("/dev/urandom", O_RDONLY);
	CHECK(zero >= 0 && urnd >= 0, "open /dev/zero, /dev/urandom: %s", strerror(errno));
	CHECK(lseek(a, 7, SEEK_SET) == 7, "lseek a.txt");
	CHECK(lseek(c, 3, SEEK_SET) == 3, "lseek c.txt");
	CHECK(dup2(a, 10) == 10, "dup2 10: %s", strerror(errno));
	CHECK(dup2(zero, 100) == 100, "dup2 100: %s", strerror(errno));
	b_size = lseek(b, 0, SEEK_END);

	snapshot(before);
	subject_ready(NULL);
	while (!got_term)
		pause();

	snapshot(after);
	for (fd = 0; fd < MAXFD; fd++) {
		struct fdstate *x = &before[fd], *y = &after[fd];

		if (x->open != y->open)
			subject_fail("fd %d is %s after restore but was %s", fd,
				     y->open ? "open" : "closed", x->open ? "open" : "closed");
		if (!x->open)
			continue;
		CHECK(x->fl == y->fl, "fd %d: F_GETFL is 0%o, was 0%o", fd, y->fl, x->fl);
		CHECK(x->fd_flags == y->fd_flags, "fd %d: F_GETFD is %d, was %d", fd, y->fd_flags, x->fd_flags);
		CHECK(x->pos == y->pos, "fd %d: offset is %lld, was %lld", fd, (long long)y->pos, (long long)x->pos);
		CHECK(x->dev == y->dev && x->ino == y->ino,
		      "fd %d: dev/ino is %lx/%lu, was %lx/%lu", fd, (unsigned long)y->dev,
		      (unsigned long)y->ino, (unsigned long)x->dev, (unsigned long)x->ino);
		CHECK(x->mode == y->mode, "fd %d: st_mode is 0%o, was 0%o", fd, y->mode, x->mode);
		CHECK(x->rdev == y->rdev, "fd %d: st_rdev is %lx, was %lx", fd,
		      (unsigned long)y->rdev, (unsigned long)x->rdev);
		CHECK(x->mnt_id == y->mnt_id, "fd %d: mnt_id is %d, was %d", fd, y->mnt_id, x->mnt_id);
	}

	/* modes as created */
	CHECK(fstat(a, &st) == 0 && (st.st_mode & 07777) == 0640, "a.txt mode is 0%o", st.st_mode & 07777);
	CHECK(fstat(c, &st) == 0 && (st.st_mode & 07777) == 0444, "c.txt mode is 0%o", st.st_mode & 07777);
	CHECK(umask(0) == 0, "umask is no longer 0");

	/* a.txt and fd 10: same open file description */
	CHECK(syscall(SYS_kcmp, getpid(), getpid(), KCMP_FILE, a, 10) == 0,
	      "fd 10 and fd %d are no longer the same open file (kcmp)", a);
	memset(buf, 0, sizeof(buf));
	CHECK(read(a, buf, 5) == 5 && memcmp(buf, a_content + 7, 5) == 0,
	      "a.txt read at offset 7 gave '%.5s', expected '%.5s'", buf, a_content + 7);
	CHECK(lseek(10, 0, SEEK_CUR) == 12, "fd 10 offset is %lld after reading 5 bytes via fd %d, expected 12 (shared offset)",
	      (long long)lseek(10, 0, SEEK_CUR), a);

	memset(buf, 0, sizeof(buf));
	CHECK(read(c, buf, 4) == 4 && memcmp(buf, c_content + 3, 4) == 0,
	      "c.txt read at offset 3 gave '%.4s', expected '%.4s'", buf, c_content + 3);

	CHECK(write(b, "appended\n", 9) == 9, "write b.log: %s", strerror(errno));
	CHECK(lseek(b, 0, SEEK_CUR) == b_size + 9, "b.log offset after append is %lld, expected %lld",
	      (long long)lseek(b, 0, SEEK_CUR), (long long)(b_size + 9));
	fd = open("b.log", O_RDONLY);
	memset(buf, 0, sizeof(buf));
	CHECK(fd >= 0 && pread(fd, buf, 64, 0) == b_size + 9 &&
	      memcmp(buf, "line1\nline2\nappended\n", 21) == 0, "b.log content after append is '%s'", buf);
	close(fd);

	CHECK(write(dfd, "x", 1) == 1, "write d.txt: %s", strerror(errno));

	memset(buf, 0xff, sizeof(buf));
	CHECK(read(zero, buf, sizeof(buf)) == sizeof(buf), "read /dev/zero: %s", strerror(errno));
	for (i = 0; i < (int)sizeof(buf); i++)
		CHECK(buf[i] == 0, "/dev/zero gave a nonzero byte");
	memset(buf, 0, sizeof(buf));
	CHECK(read(urnd, buf, 32) == 32, "read /dev/urandom: %s", strerror(errno));
	for (i = 0; i < 32 && buf[i] == 0; i++)
		;
	CHECK(i < 32, "/dev/urandom gave 32 zero bytes");
	subject_pass();
}
