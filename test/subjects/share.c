/*
 * share - processes that share an fd table (clone CLONE_FILES) or cwd, root
 * and umask (CLONE_FS) with their parent, and threads that have their own
 * (unshare in a thread). After restore the sharing must be the same: kcmp
 * says so, and what one task does is seen (or not seen) by the other.
 *
 *   share OUTFILE MODE
 *
 * MODE:
 *   files      a child made with clone(CLONE_FILES): an fd it opened before
 *              the dump is in the parent's table; after restore an fd the
 *              child opens shows up in the parent, and one the parent
 *              closes is gone for the child
 *   fs         a child made with clone(CLONE_FS), in a subdirectory and with
 *              a umask of their own: after restore the child's chdir and
 *              umask are the parent's
 *   chain      a child with CLONE_FILES|CLONE_FS and its own child likewise:
 *              all three share one table and one fs; a sibling made with
 *              fork() shares neither
 *   tfiles     a thread that unshared its fd table: an fd only it has, an
 *              fd only the process has; a second thread it made shares its table
 *   tfs        a thread that unshared its cwd and umask (and chdir'd): the
 *              process's are unchanged, and after restore each is its own
 */
#include "subject.h"
#include <sched.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/kcmp.h>

static const char *mode;
static char stack1[64 * 1024] __attribute__((aligned(16)));
static char stack2[64 * 1024] __attribute__((aligned(16)));
static volatile sig_atomic_t usr1, usr2;
static char base[1024];

static void on_usr(int sig)
{
	if (sig == SIGUSR1)
		usr1 = 1;
	else
		usr2 = 1;
}

static int kcmp(pid_t a, pid_t b, int type)
{
	int k = (int)syscall(SYS_kcmp, a, b, type, 0, 0);

	CHECK(k >= 0, "kcmp %d %d: %s", a, b, strerror(errno));
	return k == 0;
}

static void same(pid_t a, pid_t b, int type, int want, const char *what)
{
	CHECK(kcmp(a, b, type) == want, "%s: tasks %d and %d %s their %s", what, a, b, want ? "do not share" : "share",
	      type == KCMP_FILES ? "fd table" : "fs (cwd, root, umask)");
}

static int fd_is(int fd, const char *name)
{
	char path[64], link[1024];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/thread-self/fd/%d", fd);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return 0;
	link[n] = 0;
	return strstr(link, name) != NULL;
}

/* ---- files ---- */

static int files_child(void *arg)
{
	(void)arg;
	int fd = open("before.txt", O_RDONLY | O_CREAT, 0600); /* lands in the shared table */
	if (fd < 0 || dup2(fd, 40) < 0)
		_exit(1);
	close(fd);
	while (!usr1)
		pause();
	/* after restore: open at 41, wait for the parent to close 40 */
	fd = open("after.txt", O_RDONLY | O_CREAT, 0600);
	if (fd < 0 || dup2(fd, 41) < 0)
		_exit(2);
	close(fd);
	while (!usr2)
		pause();
	_exit(fcntl(40, F_GETFD) < 0 ? 0 : 3);
}

/* ---- fs ---- */

static int fs_child(void *arg)
{
	(void)arg;
	while (!usr1)
		pause();
	if (chdir("../b") != 0)
		_exit(2);
	umask(0027);
	for (;;)
		pause();
}

/* ---- chain ---- */

static pid_t grandchild;

static int chain_grandchild(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return 0;
}

static int chain_child(void *arg)
{
	(void)arg;
	grandchild = clone(chain_grandchild, stack2 + sizeof(stack2), CLONE_FILES | CLONE_FS | SIGCHLD, NULL);
	if (grandchild < 0)
		_exit(1);
	/* tell the parent (the table is shared, the memory is not: through a file) */
	char b[32];
	int fd = open("gc.pid", O_WRONLY | O_CREAT | O_TRUNC, 0600);
	int n = snprintf(b, sizeof(b), "%d\n", grandchild);
	if (fd < 0 || write(fd, b, n) != n)
		_exit(2);
	close(fd);
	for (;;)
		pause();
}

/* ---- threads ---- */

static volatile pid_t t1, t2;
static volatile int stage, t_ok, t2_ok;
static char t_err[2400];

static void *tfiles_second(void *arg)
{
	(void)arg;
	t2 = (pid_t)syscall(SYS_gettid);
	while (stage < 2)
		usleep(1000);
	t2_ok = fcntl(51, F_GETFD) >= 0 && fcntl(52, F_GETFD) < 0 ? 1 : -1;
	for (;;)
		pause();
	return NULL;
}

static void *tfiles_thread(void *arg)
{
	(void)arg;
	t1 = (pid_t)syscall(SYS_gettid);
	if (unshare(CLONE_FILES) != 0) { snprintf(t_err, sizeof(t_err), "unshare: %s", strerror(errno)); stage = -1; return NULL; }
	int fd = open("mine.txt", O_RDONLY | O_CREAT, 0600);
	dup2(fd, 51);
	close(fd);
	close(50); /* the process still has it */
	pthread_t th;
	pthread_create(&th, NULL, tfiles_second, NULL);
	while (!t2)
		usleep(1000);
	stage = 1;
	while (stage < 2)
		usleep(1000);
	/* after restore: mine.txt at 51, nothing at 50 or 52 */
	if (!fd_is(51, "mine.txt")) snprintf(t_err, sizeof(t_err), "the thread's fd 51 is not mine.txt");
	else if (fcntl(50, F_GETFD) >= 0) snprintf(t_err, sizeof(t_err), "the thread has fd 50, which it closed");
	else if (fcntl(52, F_GETFD) >= 0) snprintf(t_err, sizeof(t_err), "the thread has fd 52, which only the process opened");
	t_ok = t_err[0] ? -1 : 1;
	for (;;)
		pause();
	return NULL;
}

static void *tfs_thread(void *arg)
{
	(void)arg;
	t1 = (pid_t)syscall(SYS_gettid);
	if (unshare(CLONE_FS) != 0 || chdir("../b") != 0) { snprintf(t_err, sizeof(t_err), "unshare/chdir: %s", strerror(errno)); stage = -1; return NULL; }
	umask(0077);
	stage = 1;
	while (stage < 2)
		usleep(1000);
	char cwd[1024], want[1100];
	snprintf(want, sizeof(want), "%s/b", base);
	if (!getcwd(cwd, sizeof(cwd)) || strcmp(cwd, want) != 0) snprintf(t_err, sizeof(t_err), "the thread's cwd is %s, not %s", cwd, want);
	mode_t m = umask(0077);
	if (!t_err[0] && m != 0077) snprintf(t_err, sizeof(t_err), "the thread's umask is 0%o, not 077", m);
	t_ok = t_err[0] ? -1 : 1;
	for (;;)
		pause();
	return NULL;
}

int main(int argc, char **argv)
{
	subject_init(argc, argv, 2, "MODE");
	mode = argv[2];
	install_term_handler(0);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr;
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	CHECK(getcwd(base, sizeof(base)), "getcwd");
	mkdir("a", 0700);
	mkdir("b", 0700);
	pid_t me = getpid();
	char cwd[1100], want[1100];

	if (strcmp(mode, "files") == 0) {
		pid_t c = clone(files_child, stack1 + sizeof(stack1), CLONE_FILES | SIGCHLD, NULL);
		CHECK(c > 0, "clone: %s", strerror(errno));
		for (int i = 0; i < 2000 && !fd_is(40, "before.txt"); i++)
			usleep(1000);
		CHECK(fd_is(40, "before.txt"), "the child's fd never showed in the shared table");
		subject_ready(NULL);
		while (!got_term)
			pause();
		same(me, c, KCMP_FILES, 1, "after restore");
		CHECK(fd_is(40, "before.txt"), "fd 40, opened by the child before the dump, is not in the table");
		kill(c, SIGUSR1);
		for (int i = 0; i < 4000 && !fd_is(41, "after.txt"); i++)
			usleep(1000);
		CHECK(fd_is(41, "after.txt"), "fd 41, opened by the child after restore, does not show in the parent");
		close(40);
		kill(c, SIGUSR2);
		int st;
		CHECK(waitpid(c, &st, 0) == c, "waitpid");
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child: status %#x (3: fd 40, closed by the parent, is still open in the child)", st);
	} else if (strcmp(mode, "fs") == 0) {
		CHECK(chdir("a") == 0, "chdir a");
		umask(0002);
		pid_t c = clone(fs_child, stack1 + sizeof(stack1), CLONE_FS | SIGCHLD, NULL);
		CHECK(c > 0, "clone: %s", strerror(errno));
		subject_ready(NULL);
		while (!got_term)
			pause();
		same(me, c, KCMP_FS, 1, "after restore");
		snprintf(want, sizeof(want), "%s/a", base);
		CHECK(getcwd(cwd, sizeof(cwd)) && strcmp(cwd, want) == 0, "cwd %s, not %s", cwd, want);
		kill(c, SIGUSR1);
		snprintf(want, sizeof(want), "%s/b", base);
		for (int i = 0; i < 4000 && !(getcwd(cwd, sizeof(cwd)) && strcmp(cwd, want) == 0); i++)
			usleep(1000);
		CHECK(strcmp(cwd, want) == 0, "the child's chdir after restore is not the parent's: cwd %s", cwd);
		mode_t m = umask(0);
		CHECK(m == 0027, "the child's umask after restore is not the parent's: 0%o", m);
		kill(c, SIGKILL);
		waitpid(c, NULL, 0);
	} else if (strcmp(mode, "chain") == 0) {
		pid_t c = clone(chain_child, stack1 + sizeof(stack1), CLONE_FILES | CLONE_FS | SIGCHLD, NULL);
		CHECK(c > 0, "clone: %s", strerror(errno));
		pid_t f = fork();
		if (f == 0) {
			for (;;)
				pause();
		}
		char b[32] = { 0 };
		for (int i = 0; i < 2000; i++) {
			int fd = open("gc.pid", O_RDONLY);
			if (fd >= 0) {
				ssize_t n = read(fd, b, sizeof(b) - 1);
				close(fd);
				if (n > 1 && b[n - 1] == '\n')
					break;
			}
			usleep(1000);
		}
		pid_t g = atoi(b);
		CHECK(g > 0, "no grandchild");
		subject_ready(NULL);
		while (!got_term)
			pause();
		same(me, c, KCMP_FILES, 1, "parent and child");
		same(me, g, KCMP_FILES, 1, "parent and grandchild");
		same(me, c, KCMP_FS, 1, "parent and child");
		same(c, g, KCMP_FS, 1, "child and grandchild");
		same(me, f, KCMP_FILES, 0, "parent and forked child");
		same(me, f, KCMP_FS, 0, "parent and forked child");
		int fd = open("x.txt", O_RDONLY | O_CREAT, 0600);
		CHECK(syscall(SYS_kcmp, me, g, KCMP_FILE, fd, fd) == 0, "an fd opened after restore is not in the grandchild's table");
		kill(g, SIGKILL);
		kill(c, SIGKILL);
		kill(f, SIGKILL);
		waitpid(c, NULL, 0);
		waitpid(f, NULL, 0);
	} else if (strcmp(mode, "tfiles") == 0) {
		int fd = open("proc.txt", O_RDONLY | O_CREAT, 0600);
		CHECK(dup2(fd, 50) == 50, "dup2");
		close(fd);
		pthread_t th;
		CHECK(pthread_create(&th, NULL, tfiles_thread, NULL) == 0, "pthread_create");
		while (stage == 0)
			usleep(1000);
		CHECK(stage == 1, "%s", t_err);
		fd = open("proc2.txt", O_RDONLY | O_CREAT, 0600);
		CHECK(dup2(fd, 52) == 52, "dup2");
		close(fd);
		subject_ready(NULL);
		while (!got_term)
			pause();
		same(me, t1, KCMP_FILES, 0, "the process and its thread that unshared");
		same(t1, t2, KCMP_FILES, 1, "the thread that unshared and the thread it made");
		CHECK(fd_is(50, "proc.txt") && fd_is(52, "proc2.txt"), "the process's fds 50 and 52 are not proc.txt and proc2.txt");
		CHECK(fcntl(51, F_GETFD) < 0, "the process has fd 51, which only its thread opened");
		stage = 2;
		for (int i = 0; i < 4000 && (!t_ok || !t2_ok); i++)
			usleep(1000);
		CHECK(t_ok == 1, "%s", t_err[0] ? t_err : "the thread did not answer");
		CHECK(t2_ok == 1, "the second thread does not share the first's table (fds 51, 52)");
	} else if (strcmp(mode, "tfs") == 0) {
		CHECK(chdir("a") == 0, "chdir a");
		umask(0022);
		pthread_t th;
		CHECK(pthread_create(&th, NULL, tfs_thread, NULL) == 0, "pthread_create");
		while (stage == 0)
			usleep(1000);
		CHECK(stage == 1, "%s", t_err);
		subject_ready(NULL);
		while (!got_term)
			pause();
		same(me, t1, KCMP_FS, 0, "the process and its thread that unshared");
		snprintf(want, sizeof(want), "%s/a", base);
		CHECK(getcwd(cwd, sizeof(cwd)) && strcmp(cwd, want) == 0, "the process's cwd is %s, not %s", cwd, want);
		mode_t m = umask(0022);
		CHECK(m == 0022, "the process's umask is 0%o, not 022", m);
		stage = 2;
		for (int i = 0; i < 4000 && !t_ok; i++)
			usleep(1000);
		CHECK(t_ok == 1, "%s", t_err[0] ? t_err : "the thread did not answer");
	} else {
		subject_fail("unknown mode %s", mode);
	}
	subject_pass();
}
