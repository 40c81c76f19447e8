/*
 * locks - file locks and leases, kept with --file-locks. After restore each
 * mode checks its locks from a process forked then (a new owner, with its
 * own open file descriptions), which must meet them: flock(LOCK_NB) gives
 * EWOULDBLOCK, F_SETLK/F_OFD_SETLK give EAGAIN, F_GETLK/F_OFD_GETLK report
 * the holder, its type, range and pid; leases are asked with F_GETLEASE and
 * broken.
 *
 *   locks OUTFILE MODE
 *
 * MODE:
 *   flock     an exclusive flock taken by the parent on a description its
 *             child inherited: one lock; once the child unlocks it through
 *             its fd, it is free (the parent's pid is the lock's)
 *   mixed     a shared flock on one file, an exclusive one on another
 *   posix     POSIX locks on several ranges of one file (write 5-14, read
 *             40-89, write 90-EOF) through one fd, with a second open of
 *             the file in the same process (closing it would drop them);
 *             a child holds its own read lock on 0-4
 *   ofd       OFD locks (write 10-19, read 30-EOF) on a description shared
 *             with a child
 *   lease     a read lease with F_SETSIG; a write open breaks it and the
 *             signal names the fd
 *   wlease    a write lease; a read open breaks it
 *   outside   flock and POSIX locks on a file that a process outside the
 *             tree (reparented away) has open, without any lock
 *   waiters   children blocked in flock(LOCK_EX) and F_SETLKW on locks the
 *             parent holds; they get them once it lets go
 *   shared_outside  an flock whose description a process outside the
 *             tree holds too (the dump must refuse it)
 *   breaking  a read lease that a child's open for writing is breaking
 *             (the dump must refuse it); on SIGTERM the lease is given up
 *             and the child's open completes
 *   sharedtable  a child made with clone(CLONE_FILES) takes a POSIX lock:
 *             it is the shared table's, shown as the child's
 *   threadtable  a thread with an fd table of its own (unshare) takes a
 *             POSIX lock; the main thread closing its own fd of the file
 *             does not drop it (another table)
 */
#include "subject.h"
#include <sys/file.h>
#include <sys/wait.h>
#include <sched.h>
#include <pthread.h>

static const char *mode;
static int fa = -1, fb = -1, fc = -1;
static pid_t kid = -1, kid2 = -1;
static int ctl[2] = { -1, -1 }, back[2] = { -1, -1 };
static volatile sig_atomic_t lease_sig, lease_fd = -1;

static int make_file(const char *name, int flags)
{
	int fd = open(name, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	char buf[200];

	CHECK(fd >= 0, "create %s: %s", name, strerror(errno));
	memset(buf, 'x', sizeof(buf));
	CHECK(write(fd, buf, sizeof(buf)) == sizeof(buf), "write %s", name);
	if ((flags & O_ACCMODE) != O_RDWR) {
		close(fd);
		fd = open(name, flags | O_CLOEXEC);
		CHECK(fd >= 0, "open %s: %s", name, strerror(errno));
	}
	return fd;
}

static int setlk(int fd, int cmd, short type, off_t start, off_t len)
{
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len };

	return fcntl(fd, cmd, &fl);
}

/* The first lock that conflicts with a `type` lock on [start, start+len), in *fl. */
static void getlk(int fd, int cmd, short type, off_t start, off_t len, struct flock *fl)
{
	memset(fl, 0, sizeof(*fl));
	fl->l_type = type;
	fl->l_whence = SEEK_SET;
	fl->l_start = start;
	fl->l_len = len;
	CHECK(fcntl(fd, cmd, fl) == 0, "F_GETLK: %s", strerror(errno));
}

static void expect_lk(int fd, int cmd, short type, off_t start, off_t len, short htype, off_t hstart, off_t hlen, pid_t hpid)
{
	struct flock fl;

	getlk(fd, cmd, type, start, len, &fl);
	CHECK(fl.l_type == htype && (htype == F_UNLCK || (fl.l_start == hstart && fl.l_len == hlen && fl.l_pid == hpid)),
	      "%s for a %s lock at %lld+%lld: type %d %lld+%lld pid %d; expected type %d %lld+%lld pid %d",
	      cmd == F_GETLK ? "F_GETLK" : "F_OFD_GETLK", type == F_WRLCK ? "write" : "read", (long long)start, (long long)len,
	      fl.l_type, (long long)fl.l_start, (long long)fl.l_len, fl.l_pid, htype, (long long)hstart, (long long)hlen, hpid);
}

static void expect_flock_busy(const char *name, int op)
{
	int fd = open(name, O_RDONLY | O_CLOEXEC);

	CHECK(fd >= 0, "open %s: %s", name, strerror(errno));
	CHECK(flock(fd, op | LOCK_NB) == -1 && errno == EWOULDBLOCK, "flock(%s, %s) from a new description: %s (the lock is gone)",
	      name, op == LOCK_EX ? "LOCK_EX" : "LOCK_SH", errno ? strerror(errno) : "it worked");
	close(fd);
}

static void expect_flock_free(const char *name, int op)
{
	int fd = open(name, O_RDONLY | O_CLOEXEC);

	CHECK(fd >= 0, "open %s: %s", name, strerror(errno));
	CHECK(flock(fd, op | LOCK_NB) == 0, "flock(%s, %s) from a new description: %s", name, op == LOCK_EX ? "LOCK_EX" : "LOCK_SH", strerror(errno));
	close(fd);
}

/* Run check() in a new child (another owner), which FAILs the subject itself. */
static void from_outside(void (*check)(void))
{
	pid_t c = fork();
	int st;

	CHECK(c >= 0, "fork: %s", strerror(errno));
	if (c == 0) {
		errno = 0;
		check();
		_exit(0);
	}
	CHECK(waitpid(c, &st, 0) == c, "waitpid: %s", strerror(errno));
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		_exit(1); /* (the checker wrote the FAIL line) */
}

/* The pid the kernel shows for the first lock on fd. */
static int lock_pid(int fd)
{
	char path[64], text[4096];
	const char *p;
	int pid = 0;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	CHECK(read_file(path, text, sizeof(text)) >= 0, "read %s", path);
	p = strstr(text, "lock:");
	CHECK(p, "fd %d shows no lock: %s", fd, text);
	CHECK(sscanf(p, "lock: %*d: %*s %*s %*s %d", &pid) == 1, "lock line: %s", p);
	return pid;
}

static pid_t parent_pid;

static void check_flock(void) { expect_flock_busy("a.lock", LOCK_SH); }
static void check_flock_free(void) { expect_flock_free("a.lock", LOCK_EX); }
static void check_mixed(void)
{
	expect_flock_free("a.lock", LOCK_SH);
	expect_flock_busy("a.lock", LOCK_EX);
	expect_flock_busy("b.lock", LOCK_SH);
}
static void check_posix(void)
{
	int fd = open("p.lock", O_RDWR | O_CLOEXEC);

	CHECK(fd >= 0, "open p.lock: %s", strerror(errno));
	expect_lk(fd, F_GETLK, F_WRLCK, 0, 1, F_RDLCK, 0, 5, kid);
	expect_lk(fd, F_GETLK, F_RDLCK, 0, 1, F_UNLCK, 0, 0, 0);
	expect_lk(fd, F_GETLK, F_RDLCK, 7, 1, F_WRLCK, 5, 10, parent_pid);
	expect_lk(fd, F_GETLK, F_WRLCK, 20, 20, F_UNLCK, 0, 0, 0);
	expect_lk(fd, F_GETLK, F_RDLCK, 50, 1, F_UNLCK, 0, 0, 0);
	expect_lk(fd, F_GETLK, F_WRLCK, 50, 1, F_RDLCK, 40, 50, parent_pid);
	expect_lk(fd, F_GETLK, F_RDLCK, 100000, 1, F_WRLCK, 90, 0, parent_pid);
	CHECK(setlk(fd, F_SETLK, F_WRLCK, 15, 25) == 0, "a write lock on 15-39 (free): %s", strerror(errno));
	CHECK(setlk(fd, F_SETLK, F_WRLCK, 14, 1) == -1 && (errno == EAGAIN || errno == EACCES), "a write lock on 14 was granted");
	CHECK(setlk(fd, F_SETLK, F_RDLCK, 89, 1) == 0, "a read lock on 89 (read-locked): %s", strerror(errno));
	CHECK(setlk(fd, F_SETLK, F_RDLCK, 90, 1) == -1 && (errno == EAGAIN || errno == EACCES), "a read lock on 90 was granted");
}
static void check_ofd(void)
{
	int fd = open("o.lock", O_RDWR | O_CLOEXEC);

	CHECK(fd >= 0, "open o.lock: %s", strerror(errno));
	expect_lk(fd, F_OFD_GETLK, F_RDLCK, 12, 1, F_WRLCK, 10, 10, -1);
	expect_lk(fd, F_OFD_GETLK, F_WRLCK, 0, 10, F_UNLCK, 0, 0, 0);
	expect_lk(fd, F_OFD_GETLK, F_WRLCK, 31, 1, F_RDLCK, 30, 0, -1);
	CHECK(setlk(fd, F_OFD_SETLK, F_WRLCK, 19, 1) == -1 && errno == EAGAIN, "an OFD write lock on 19 was granted");
	CHECK(setlk(fd, F_OFD_SETLK, F_RDLCK, 1000, 1) == 0, "an OFD read lock on 1000: %s", strerror(errno));
	CHECK(setlk(fd, F_OFD_SETLK, F_WRLCK, 20, 10) == 0, "an OFD write lock on 20-29: %s", strerror(errno));
}
static void check_outside(void)
{
	int fd = open("x.lock", O_RDWR | O_CLOEXEC);

	expect_flock_busy("x.lock", LOCK_SH);
	CHECK(fd >= 0, "open x.lock: %s", strerror(errno));
	expect_lk(fd, F_GETLK, F_RDLCK, 0, 1, F_WRLCK, 0, 0, parent_pid);
}

static void on_lease(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	lease_sig = sig;
	lease_fd = si->si_fd;
}

/* A process outside the tree: reparented away (its parent exits), it holds `name` open until `name`.stop exists. */
static void outsider(const char *name, int inherit_fd)
{
	pid_t c = fork();
	int st;

	CHECK(c >= 0, "fork");
	if (c == 0) {
		if (fork() != 0)
			_exit(0);
		setsid();
		for (int i = 3; i < 64; i++) /* only what it is meant to hold */
			if (i != inherit_fd)
				close(i);
		int fd = inherit_fd >= 0 ? inherit_fd : open(name, O_RDWR);
		char stop[64];
		snprintf(stop, sizeof(stop), "%s.stop", name);
		if (fd < 0)
			_exit(1);
		for (int i = 0; i < 1200 && access(stop, F_OK) != 0; i++)
			usleep(100 * 1000);
		_exit(0);
	}
	waitpid(c, &st, 0);
	usleep(100 * 1000);
}

static void stop_outsider(const char *name)
{
	char stop[64];
	snprintf(stop, sizeof(stop), "%s.stop", name);
	close(open(stop, O_WRONLY | O_CREAT, 0600));
}

static void wait_term(void)
{
	while (!got_term) {
		struct timespec ts = { 0, 50 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}

static char stack[64 * 1024] __attribute__((aligned(16)));
static volatile int t_stage;

static int table_child(void *arg)
{
	(void)arg;
	if (setlk(fa, F_SETLK, F_WRLCK, 100, 50) != 0)
		_exit(1);
	for (;;)
		pause();
	return 0;
}

static void check_table(void)
{
	int fd = open("t.lock", O_RDWR | O_CLOEXEC);

	CHECK(fd >= 0, "open t.lock: %s", strerror(errno));
	expect_lk(fd, F_GETLK, F_RDLCK, 120, 1, F_WRLCK, 100, 50, kid);
	CHECK(setlk(fd, F_SETLK, F_WRLCK, 0, 100) == 0, "a write lock on 0-99: %s", strerror(errno));
}

static void *table_thread(void *arg)
{
	(void)arg;
	if (unshare(CLONE_FILES) != 0) { t_stage = -1; return NULL; }
	int fd = open("t.lock", O_RDWR | O_CLOEXEC);
	if (fd < 0 || setlk(fd, F_SETLK, F_WRLCK, 100, 50) != 0) { t_stage = -2; return NULL; }
	t_stage = 1;
	for (;;)
		pause();
	return NULL;
}

int main(int argc, char **argv)
{
	subject_init(argc, argv, 2, "MODE");
	mode = argv[2];
	install_term_handler(0);
	parent_pid = getpid();
	char c = 0;

	if (strcmp(mode, "flock") == 0) {
		fa = make_file("a.lock", O_RDWR);
		CHECK(flock(fa, LOCK_EX) == 0, "flock: %s", strerror(errno));
		CHECK(pipe(ctl) == 0 && pipe(back) == 0, "pipe");
		kid = fork();
		if (kid == 0) {
			/* The same description as the parent's: unlocking it here frees the parent's lock. */
			CHECK(read(ctl[0], &c, 1) == 1, "child: read");
			CHECK(flock(fa, LOCK_UN) == 0, "child: LOCK_UN: %s", strerror(errno));
			CHECK(write(back[1], &c, 1) == 1, "child: write");
			_exit(0);
		}
		subject_ready(NULL);
		wait_term();
		CHECK(lock_pid(fa) == getpid(), "the flock lock is shown as pid %d's, not %d's", lock_pid(fa), getpid());
		from_outside(check_flock);
		CHECK(write(ctl[1], &c, 1) == 1, "write");
		CHECK(read(back[0], &c, 1) == 1, "read");
		from_outside(check_flock_free);
		waitpid(kid, NULL, 0);
	} else if (strcmp(mode, "mixed") == 0) {
		fa = make_file("a.lock", O_RDONLY);
		fb = make_file("b.lock", O_RDONLY);
		CHECK(flock(fa, LOCK_SH) == 0 && flock(fb, LOCK_EX) == 0, "flock: %s", strerror(errno));
		subject_ready(NULL);
		wait_term();
		from_outside(check_mixed);
	} else if (strcmp(mode, "posix") == 0) {
		fa = make_file("p.lock", O_RDWR);
		fb = open("p.lock", O_RDONLY | O_CLOEXEC); /* another description of the same file */
		CHECK(fb >= 0, "open");
		CHECK(setlk(fa, F_SETLK, F_WRLCK, 5, 10) == 0 && setlk(fa, F_SETLK, F_RDLCK, 40, 0) == 0 && setlk(fa, F_SETLK, F_WRLCK, 90, 0) == 0,
		      "F_SETLK: %s", strerror(errno));
		CHECK(pipe(ctl) == 0, "pipe");
		kid = fork();
		if (kid == 0) {
			close(ctl[1]);
			CHECK(setlk(fa, F_SETLK, F_RDLCK, 0, 5) == 0, "child: F_SETLK: %s", strerror(errno));
			CHECK(read(ctl[0], &c, 1) >= 0, "child: read");
			_exit(0);
		}
		for (int i = 0; i < 200; i++) { /* until the child's lock is there */
			struct flock fl;
			getlk(fb, F_GETLK, F_WRLCK, 0, 1, &fl);
			if (fl.l_type != F_UNLCK)
				break;
			usleep(10000);
		}
		subject_ready(NULL);
		wait_term();
		from_outside(check_posix);
		/* Our own locks do not conflict with us; the child's does. */
		expect_lk(fb, F_GETLK, F_WRLCK, 5, 100, F_UNLCK, 0, 0, 0);
		close(ctl[1]);
		waitpid(kid, NULL, 0);
	} else if (strcmp(mode, "ofd") == 0) {
		fa = make_file("o.lock", O_RDWR);
		CHECK(setlk(fa, F_OFD_SETLK, F_WRLCK, 10, 10) == 0 && setlk(fa, F_OFD_SETLK, F_RDLCK, 30, 0) == 0, "F_OFD_SETLK: %s", strerror(errno));
		CHECK(pipe(ctl) == 0, "pipe");
		kid = fork();
		if (kid == 0) {
			close(ctl[1]);
			CHECK(read(ctl[0], &c, 1) >= 0, "child: read");
			_exit(0);
		}
		subject_ready(NULL);
		wait_term();
		from_outside(check_ofd);
		/* The description's own locks: no conflict through it. */
		expect_lk(fa, F_OFD_GETLK, F_WRLCK, 0, 0, F_UNLCK, 0, 0, 0);
		close(ctl[1]);
		waitpid(kid, NULL, 0);
	} else if (strcmp(mode, "lease") == 0 || strcmp(mode, "wlease") == 0) {
		int w = mode[0] == 'w';
		struct sigaction sa;
		memset(&sa, 0, sizeof(sa));
		sa.sa_sigaction = on_lease;
		sa.sa_flags = SA_SIGINFO;
		sigaction(SIGRTMIN + 2, &sa, NULL);
		fa = make_file("l.lock", w ? O_RDWR : O_RDONLY);
		CHECK(fcntl(fa, F_SETSIG, SIGRTMIN + 2) == 0, "F_SETSIG: %s", strerror(errno));
		CHECK(fcntl(fa, F_SETLEASE, w ? F_WRLCK : F_RDLCK) == 0, "F_SETLEASE: %s", strerror(errno));
		subject_ready(NULL);
		wait_term();
		CHECK(fcntl(fa, F_GETLEASE) == (w ? F_WRLCK : F_RDLCK), "F_GETLEASE: %d", fcntl(fa, F_GETLEASE));
		CHECK(fcntl(fa, F_GETSIG) == SIGRTMIN + 2, "F_GETSIG: %d", fcntl(fa, F_GETSIG));
		CHECK(fcntl(fa, F_GETOWN) == getpid(), "F_GETOWN: %d", fcntl(fa, F_GETOWN));
		/* Breaking it: a conflicting open (non-blocking) fails and we are told. */
		pid_t b = fork();
		if (b == 0) {
			int fd = open("l.lock", (w ? O_RDONLY : O_WRONLY) | O_NONBLOCK);
			_exit(fd < 0 && errno == EWOULDBLOCK ? 0 : 3);
		}
		int st;
		waitpid(b, &st, 0);
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "a conflicting open did not meet the lease (status %#x)", st);
		for (int i = 0; i < 200 && !lease_sig; i++)
			usleep(10000);
		CHECK(lease_sig == SIGRTMIN + 2 && lease_fd == fa, "the lease break signal: %d for fd %d", lease_sig, lease_fd);
		CHECK(fcntl(fa, F_SETLEASE, F_UNLCK) == 0, "give up the lease: %s", strerror(errno));
	} else if (strcmp(mode, "outside") == 0) {
		fa = make_file("x.lock", O_RDWR);
		outsider("x.lock", -1);
		CHECK(flock(fa, LOCK_EX) == 0 && setlk(fa, F_SETLK, F_WRLCK, 0, 0) == 0, "lock: %s", strerror(errno));
		subject_ready(NULL);
		wait_term();
		from_outside(check_outside);
		stop_outsider("x.lock");
	} else if (strcmp(mode, "shared_outside") == 0) {
		fa = make_file("s.lock", O_RDWR);
		CHECK(flock(fa, LOCK_EX) == 0, "flock: %s", strerror(errno));
		outsider("s.lock", fa);
		subject_ready(NULL);
		wait_term();
		CHECK(lock_pid(fa) == getpid(), "the lock is gone");
		stop_outsider("s.lock");
	} else if (strcmp(mode, "waiters") == 0) {
		fa = make_file("w.lock", O_RDWR);
		fc = make_file("v.lock", O_RDWR);
		CHECK(flock(fa, LOCK_SH) == 0 && setlk(fc, F_SETLK, F_WRLCK, 0, 10) == 0, "lock: %s", strerror(errno));
		kid = fork();
		if (kid == 0) {
			int fd = open("w.lock", O_RDWR);
			alarm(60);
			_exit(fd >= 0 && flock(fd, LOCK_EX) == 0 ? 0 : 5);
		}
		kid2 = fork();
		if (kid2 == 0) {
			alarm(60);
			_exit(setlk(fc, F_SETLKW, F_WRLCK, 5, 1) == 0 ? 0 : 6);
		}
		char text[8192];
		for (int i = 0; i < 300; i++) { /* until both wait */
			CHECK(read_file("/proc/locks", text, sizeof(text)) >= 0, "/proc/locks");
			char a[32], b[32];
			snprintf(a, sizeof(a), "-> FLOCK  ADVISORY  WRITE %d ", kid);
			snprintf(b, sizeof(b), "-> POSIX  ADVISORY  WRITE %d ", kid2);
			if (strstr(text, a) && strstr(text, b))
				break;
			usleep(10000);
		}
		subject_ready(NULL);
		wait_term();
		int st;
		usleep(100 * 1000);
		CHECK(waitpid(kid, &st, WNOHANG) == 0 && waitpid(kid2, &st, WNOHANG) == 0, "a waiter got its lock while we held it");
		CHECK(flock(fa, LOCK_UN) == 0, "LOCK_UN");
		CHECK(waitpid(kid, &st, 0) == kid && WIFEXITED(st) && WEXITSTATUS(st) == 0, "the flock waiter: status %#x", st);
		CHECK(waitpid(kid2, &st, WNOHANG) == 0, "the F_SETLKW waiter got its lock while we held it");
		CHECK(setlk(fc, F_SETLK, F_UNLCK, 0, 0) == 0, "F_UNLCK");
		CHECK(waitpid(kid2, &st, 0) == kid2 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "the F_SETLKW waiter: status %#x", st);
	} else if (strcmp(mode, "breaking") == 0) {
		fa = make_file("k.lock", O_RDONLY);
		signal(SIGIO, SIG_IGN);
		CHECK(fcntl(fa, F_SETLEASE, F_RDLCK) == 0, "F_SETLEASE: %s", strerror(errno));
		kid = fork();
		if (kid == 0) {
			int fd = open("k.lock", O_WRONLY); /* blocks until the lease is given up (or lease-break-time) */
			_exit(fd >= 0 ? 0 : 7);
		}
		char text[8192];
		for (int i = 0; i < 2000; i++) {
			CHECK(read_file("/proc/locks", text, sizeof(text)) >= 0, "/proc/locks");
			if (strstr(text, "LEASE  BREAKING"))
				break;
			usleep(1000);
		}
		CHECK(strstr(text, "LEASE  BREAKING"), "the lease is not being broken: %s", text);
		subject_ready(NULL);
		wait_term();
		CHECK(fcntl(fa, F_SETLEASE, F_UNLCK) == 0, "give up the lease: %s", strerror(errno));
		int st;
		CHECK(waitpid(kid, &st, 0) == kid && WIFEXITED(st) && WEXITSTATUS(st) == 0, "the opener: status %#x", st);
	} else if (strcmp(mode, "sharedtable") == 0) {
		fa = make_file("t.lock", O_RDWR);
		kid = clone(table_child, stack + sizeof(stack), CLONE_FILES | SIGCHLD, NULL);
		CHECK(kid > 0, "clone: %s", strerror(errno));
		/* (not by opening the file: closing an fd of it in the shared table would drop the lock) */
		char text[8192], want[64];
		snprintf(want, sizeof(want), "POSIX  ADVISORY  WRITE %d ", kid);
		for (int i = 0; i < 2000; i++) {
			CHECK(read_file("/proc/locks", text, sizeof(text)) >= 0, "/proc/locks");
			if (strstr(text, want))
				break;
			usleep(1000);
		}
		subject_ready(NULL);
		wait_term();
		from_outside(check_table);
		kill(kid, SIGKILL);
		waitpid(kid, NULL, 0);
	} else if (strcmp(mode, "threadtable") == 0) {
		fa = make_file("t.lock", O_RDWR);
		pthread_t th;
		CHECK(pthread_create(&th, NULL, table_thread, NULL) == 0, "pthread_create");
		while (t_stage == 0)
			usleep(1000);
		CHECK(t_stage == 1, "the thread could not take its lock (%d)", t_stage);
		subject_ready(NULL);
		wait_term();
		close(fa); /* our table's fd of the file: the thread's lock is its table's */
		kid = getpid();
		from_outside(check_table);
	} else {
		subject_fail("unknown mode %s", mode);
	}
	subject_pass();
}
