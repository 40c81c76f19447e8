/*
 * fd_threads - the threads of a process share one fd table (CLONE_FILES):
 * after restore they must still have one table, and not the one of another
 * process.
 *
 *   fd_threads OUTFILE [unshared]
 *
 * The root opens t.dat (fd 3, offset 3) and starts 3 threads; thread 1
 * opens u.dat (fd 4), thread 2 dup2()s 3 to 9. It forks a child (its own
 * table, a copy), opens v.dat (fd 5) and starts 2 threads of its own that
 * do the same as the root's first two.
 * With "unshared", the root's thread 3 calls unshare(CLONE_FILES) and opens
 * w.dat in a table of its own: ckpt must refuse that (or restore it so).
 * After restore: kcmp KCMP_FILES says every thread has its process's table
 * and the two processes have different ones; each thread then opens a file
 * and every other thread of its process must see that fd (fcntl from the
 * main thread; kcmp KCMP_FILE from thread to main thread), and the whole
 * tree is compared (fdtree.h).
 */
#include "subject.h"
#include "fdtree.h"
#include <pthread.h>

#define NT 3
static struct fdt_snap before, after;
static volatile pid_t tids[NT + 1];
static volatile int cmd[NT + 1], answer[NT + 1], unshared;
static volatile int ready_threads;

static void *thread_main(void *arg)
{
	int k = (int)(intptr_t)arg;

	tids[k] = (pid_t)syscall(SYS_gettid);
	if (k == 1)
		fdt_open_at(4, "u.dat", O_RDONLY);
	if (k == 2)
		fdt_dup2(3, 9);
	if (k == 3 && unshared) {
		CHECK(unshare(CLONE_FILES) == 0, "unshare: %s", strerror(errno));
		fdt_open_at(20, "w.dat", O_RDONLY);
	}
	__sync_fetch_and_add(&ready_threads, 1);
	for (;;) {
		struct timespec ts = { 0, 5 * 1000 * 1000 };
		if (cmd[k] == 1) {
			answer[k] = open("/dev/null", O_RDONLY | O_CLOEXEC);
			cmd[k] = 0;
		}
		nanosleep(&ts, NULL);
	}
	return NULL;
}

static void start_threads(int n)
{
	for (int k = 1; k <= n; k++) {
		pthread_t th;
		CHECK(pthread_create(&th, NULL, thread_main, (void *)(intptr_t)k) == 0, "pthread_create");
	}
	while (ready_threads < n)
		usleep(1000);
}

static void kcmp_files(pid_t a, pid_t b, int same, const char *what)
{
	int k = (int)syscall(SYS_kcmp, a, b, KCMP_FILES, 0, 0);

	CHECK(k >= 0, "kcmp KCMP_FILES %d %d: %s", a, b, strerror(errno));
	if ((k == 0) != same)
		subject_fail("%s: tasks %d and %d %s", what, a, b, same ? "have separate fd tables" : "have one fd table");
}

/* Every thread opens a file; the main thread must see it, and it is one file with the thread's. */
static void each_opens(int n)
{
	for (int k = 1; k <= n; k++) {
		cmd[k] = 1;
		for (int tries = 0; tries < 2000 && cmd[k]; tries++)
			usleep(1000);
		CHECK(!cmd[k] && answer[k] >= 0, "thread %d did not open its file", k);
		CHECK(fcntl(answer[k], F_GETFD) >= 0, "fd %d opened by thread %d (tid %d) is not open in the main thread",
		      answer[k], k, tids[k]);
		CHECK(syscall(SYS_kcmp, getpid(), tids[k], KCMP_FILE, answer[k], answer[k]) == 0,
		      "fd %d of thread %d is not the main thread's fd %d", answer[k], k, answer[k]);
		close(answer[k]);
	}
}

int main(int argc, char **argv)
{
	struct fdt_tree t = { 0 };
	struct fdt_shared *sh;
	pid_t c, me = getpid();

	subject_init(argc, argv, 1, "[unshared]");
	install_term_handler(0);
	unshared = argc > 2 && strcmp(argv[2], "unshared") == 0;
	CHECK(syscall(SYS_close_range, 3, ~0u, 0) == 0, "close_range: %s", strerror(errno));
	sh = fdt_shared_map();
	fdt_mkfile("t.dat", 100);
	fdt_mkfile("u.dat", 100);
	fdt_mkfile("v.dat", 100);
	fdt_mkfile("w.dat", 100);
	fdt_open_at(3, "t.dat", O_RDWR);
	CHECK(lseek(3, 3, SEEK_SET) == 3, "lseek");
	c = fork();
	CHECK(c >= 0, "fork: %s", strerror(errno));
	if (c == 0) {
		/* its threads do what the root's threads 1 and 2 do, in its own table */
		fdt_open_at(5, "v.dat", O_RDONLY);
		start_threads(2);
		sh->word[0] = tids[1];
		sh->word[1] = tids[2];
		sh->pid[0] = getpid();
		sh->ready[0] = 1;
		while (!got_term)
			pause();
		kcmp_files(getpid(), tids[1], 1, "child after restore");
		kcmp_files(getpid(), tids[2], 1, "child after restore");
		each_opens(2);
		_exit(0);
	}
	start_threads(NT);
	fdt_wait_ready(sh, 1);
	fdt_add(&t, me, "root");
	fdt_add(&t, c, "child");
	for (int k = 1; k <= NT; k++)
		kcmp_files(me, tids[k], !(unshared && k == 3), "before the checkpoint");
	fdt_take(&t, &before);
	fdt_probe(&t, &before);

	subject_ready(NULL);
	while (!got_term)
		pause();

	for (int k = 1; k <= NT; k++)
		kcmp_files(me, tids[k], !(unshared && k == 3), "after restore");
	kcmp_files(me, c, 0, "root and child");
	kcmp_files(me, sh->word[0], 0, "root and the child's thread");
	kcmp_files(c, sh->word[0], 1, "the child and its thread");
	kcmp_files(c, sh->word[1], 1, "the child and its thread");
	if (unshared) {
		CHECK(fcntl(20, F_GETFD) < 0, "w.dat, opened by thread 3 in its own table, is in the main thread's table");
	}
	fdt_check(&t, &before, &after);
	each_opens(unshared ? NT - 1 : NT);
	fdt_end_children(&c, 1);
	subject_pass();
}
