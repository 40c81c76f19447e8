/*
 * v1fixture - the subject behind the version-1 image in test/fixtures/v1-image
 * (see test/fixtures/README.md). Built -static, so the image maps no shared
 * library of the host. It holds the open-file sharing that image format 1
 * records as per-process fd kinds 'dup' and 'inherit':
 *
 *   v1fixture OUTFILE
 *
 * It opens DATA_PATH (a known 64-byte text, created if missing) O_RDWR and
 * reads to offset 10, at fd 20 (not close-on-exec); fd 21 is a dup of fd 20
 * (same open file description, shared offset) with close-on-exec; fd 22 is
 * /dev/null opened O_CLOEXEC. Then it forks one child, which inherits all
 * three (the same open file descriptions as the parent's) and waits.
 *
 * On SIGTERM the root checks: no other fd than 0-2 and 20-22 is open; the
 * flags and cloexec of each; fd 20 and 21 are the same open file (kcmp) at
 * offset 10 and moving one moves the other; the data reads back; the child is
 * alive and still its child, and its fds 20-22 are the root's open files
 * (kcmp across the two processes). Then it moves the shared offset to 33 and
 * sends SIGTERM to the child, which checks its own fds: the same flags, its fd
 * 20 and 21 the same open file, the parent's too, and the offset now 33 (the
 * parent's lseek shows in the child). The child reports by exit status (and a
 * FAILDETAIL line in OUTFILE); the root reaps it and appends PASS or FAIL.
 */
#include "subject.h"
#include <linux/kcmp.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>

#define DATA_DIR "/tmp/ckpt-v1-fixture"
#define DATA_PATH DATA_DIR "/data.txt"
#define DATA_FD 20 /* O_RDWR, offset 10 */
#define DUP_FD 21  /* dup of DATA_FD, close-on-exec */
#define NULL_FD 22 /* /dev/null, O_CLOEXEC */
#define START_OFF 10
#define MOVED_OFF 33

/* 64 bytes */
static const char data[] = "ckpt v1 fixture: 0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGH\n";
_Static_assert(sizeof(data) - 1 == 64, "data is 64 bytes");

static pid_t parent_pid, child_pid;

static int same_file(pid_t p1, int fd1, pid_t p2, int fd2)
{
	return syscall(SYS_kcmp, p1, p2, KCMP_FILE, fd1, fd2) == 0;
}

/* Move fd to number `to` (with or without close-on-exec), closing the old number. */
static void move_fd(int fd, int to, int cloexec)
{
	CHECK(fd >= 0, "open: %s", strerror(errno));
	CHECK(dup3(fd, to, cloexec ? O_CLOEXEC : 0) == to, "dup3(%d, %d): %s", fd, to, strerror(errno));
	close(fd);
}

/* The checks both processes make on their fds; NULL if all hold, else a reason. */
static const char *check_fds(char *buf, size_t n, off_t want_off)
{
	struct stat st;
	off_t off;

	for (int fd = 3; fd < 64; fd++)
		if (fd != DATA_FD && fd != DUP_FD && fd != NULL_FD && fcntl(fd, F_GETFD) >= 0)
			return snprintf(buf, n, "fd %d is open, it should not be", fd), buf;
	if (fcntl(DATA_FD, F_GETFD) != 0)
		return snprintf(buf, n, "fd %d: F_GETFD %d, want 0 (open, no cloexec)", DATA_FD, fcntl(DATA_FD, F_GETFD)), buf;
	if (fcntl(DUP_FD, F_GETFD) != FD_CLOEXEC)
		return snprintf(buf, n, "fd %d: F_GETFD %d, want FD_CLOEXEC", DUP_FD, fcntl(DUP_FD, F_GETFD)), buf;
	if (fcntl(NULL_FD, F_GETFD) != FD_CLOEXEC)
		return snprintf(buf, n, "fd %d: F_GETFD %d, want FD_CLOEXEC", NULL_FD, fcntl(NULL_FD, F_GETFD)), buf;
	if ((fcntl(DATA_FD, F_GETFL) & O_ACCMODE) != O_RDWR)
		return snprintf(buf, n, "fd %d: F_GETFL %#x, want O_RDWR", DATA_FD, fcntl(DATA_FD, F_GETFL)), buf;
	if (fstat(NULL_FD, &st) != 0 || !S_ISCHR(st.st_mode) || st.st_rdev != makedev(1, 3))
		return snprintf(buf, n, "fd %d is not /dev/null", NULL_FD), buf;
	{
		struct stat want;

		if (stat(DATA_PATH, &want) != 0 || fstat(DATA_FD, &st) != 0 ||
		    st.st_dev != want.st_dev || st.st_ino != want.st_ino)
			return snprintf(buf, n, "fd %d is not %s", DATA_FD, DATA_PATH), buf;
	}
	if (!same_file(getpid(), DATA_FD, getpid(), DUP_FD))
		return snprintf(buf, n, "fd %d and fd %d are not the same open file (kcmp)", DATA_FD, DUP_FD), buf;
	if ((off = lseek(DATA_FD, 0, SEEK_CUR)) != want_off)
		return snprintf(buf, n, "fd %d at offset %lld, want %lld", DATA_FD, (long long)off, (long long)want_off), buf;
	if ((off = lseek(DUP_FD, 0, SEEK_CUR)) != want_off)
		return snprintf(buf, n, "fd %d at offset %lld, want %lld", DUP_FD, (long long)off, (long long)want_off), buf;
	return NULL;
}

static void wait_for_term(void)
{
	while (!got_term) {
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}

static __attribute__((noreturn)) void child_main(void)
{
	char buf[256];
	const char *bad;

	wait_for_term();
	bad = check_fds(buf, sizeof(buf), MOVED_OFF);
	if (!bad && getppid() != parent_pid)
		bad = (snprintf(buf, sizeof(buf), "parent is %d, want %d", getppid(), parent_pid), buf);
	for (int fd = DATA_FD; !bad && fd <= NULL_FD; fd++)
		if (!same_file(getpid(), fd, parent_pid, fd))
			bad = (snprintf(buf, sizeof(buf), "fd %d is not the parent's open file (kcmp)", fd), buf);
	if (bad) {
		char line[320];

		snprintf(line, sizeof(line), "FAILDETAIL child %d: %s\n", getpid(), bad);
		subject_append_str(line);
		_exit(1);
	}
	_exit(0);
}

int main(int argc, char **argv)
{
	char buf[256], got[sizeof(data)];
	const char *bad;
	int fd, st = 0;

	subject_init(argc, argv, 1, "");
	install_term_handler(0);

	/* The test provides the file; create it only if it is missing. */
	mkdir(DATA_DIR, 0755);
	fd = open(DATA_PATH, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd >= 0) {
		CHECK(write(fd, data, sizeof(data) - 1) == (ssize_t)sizeof(data) - 1, "write %s: %s", DATA_PATH, strerror(errno));
		close(fd);
	}
	move_fd(open(DATA_PATH, O_RDWR), DATA_FD, 0);
	CHECK(read(DATA_FD, got, sizeof(data) - 1) == sizeof(data) - 1 && memcmp(got, data, sizeof(data) - 1) == 0,
	      "%s does not hold the expected 64 bytes", DATA_PATH);
	CHECK(lseek(DATA_FD, START_OFF, SEEK_SET) == START_OFF, "lseek: %s", strerror(errno));
	CHECK(dup3(DATA_FD, DUP_FD, O_CLOEXEC) == DUP_FD, "dup3: %s", strerror(errno));
	move_fd(open("/dev/null", O_RDONLY | O_CLOEXEC), NULL_FD, 1);

	parent_pid = getpid();
	child_pid = fork();
	CHECK(child_pid >= 0, "fork: %s", strerror(errno));
	if (child_pid == 0)
		child_main();
	usleep(50000);
	subject_ready(NULL);
	wait_for_term();

	bad = check_fds(buf, sizeof(buf), START_OFF);
	if (bad) {
		kill(child_pid, SIGKILL);
		subject_fail("root: %s", bad);
	}
	/* moving one moves the other, and the bytes are the file's */
	CHECK(lseek(DUP_FD, 0, SEEK_SET) == 0 && lseek(DATA_FD, 0, SEEK_CUR) == 0,
	      "lseek on fd %d did not move fd %d", DUP_FD, DATA_FD);
	CHECK(read(DATA_FD, got, START_OFF) == START_OFF && memcmp(got, data, START_OFF) == 0 &&
	      lseek(DUP_FD, 0, SEEK_CUR) == START_OFF,
	      "reading fd %d from 0 gave other bytes or did not move fd %d", DATA_FD, DUP_FD);
	/* the child */
	CHECK(kill(child_pid, 0) == 0 && proc_state(child_pid) != 'Z' && proc_state(child_pid) != '?',
	      "child %d is gone (state %c)", child_pid, proc_state(child_pid));
	for (fd = DATA_FD; fd <= NULL_FD; fd++)
		CHECK(same_file(getpid(), fd, child_pid, fd),
		      "fd %d of the child %d is not the root's open file (kcmp: %s)", fd, child_pid, strerror(errno));
	CHECK(same_file(getpid(), DATA_FD, child_pid, DUP_FD), "the child's fd %d is not the root's fd %d", DUP_FD, DATA_FD);
	/* the child checks that it sees this offset */
	CHECK(lseek(DATA_FD, MOVED_OFF, SEEK_SET) == MOVED_OFF, "lseek: %s", strerror(errno));
	kill(child_pid, SIGTERM);
	CHECK(waitpid(child_pid, &st, 0) == child_pid, "waitpid(%d): %s", child_pid, strerror(errno));
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %d ended with status %#x (see FAILDETAIL)", child_pid, st);
	subject_pass();
}
