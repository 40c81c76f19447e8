/*
 * failtree - a small tree for the failure-at-every-step tests: a root with a
 * second thread, a child stopped by SIGSTOP, a zombie child (exited 3, not
 * yet reaped), SIGUSR1 blocked in the main thread, a file open at an offset
 * with a dup. Every task waits in one blocking call, so that its registers
 * (as /proc/PID/task/TID/syscall shows them) stay the same while it waits.
 *
 *   failtree OUTFILE
 *
 * On SIGTERM the root checks: the thread is alive, the child is still stopped,
 * the zombie is there and ended with 3, SIGUSR1 is still blocked, the file's
 * offset is 5 and shared with its dup; then it ends the stopped child.
 */
#include "subject.h"
#include <pthread.h>
#include <sys/wait.h>
#include <sys/syscall.h>

static volatile int thread_tid;

static void *waiter(void *arg)
{
	(void)arg;
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	thread_tid = (int)syscall(SYS_gettid);
	for (;;) pause();
	return NULL;
}

int main(int argc, char **argv)
{
	subject_init(argc, argv, 1, "");
	install_term_handler(0);
	int fd = open("data", O_RDWR | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0, "open: %s", strerror(errno));
	CHECK(write(fd, "0123456789", 10) == 10, "write");
	CHECK(lseek(fd, 5, SEEK_SET) == 5, "lseek");
	int dupfd = dup(fd);
	CHECK(dupfd >= 0, "dup");

	pid_t stopped = fork();
	if (stopped == 0) { for (;;) pause(); }
	kill(stopped, SIGSTOP);
	int st = 0;
	CHECK(waitpid(stopped, &st, WUNTRACED) == stopped && WIFSTOPPED(st), "child did not stop (status %#x)", st);
	pid_t zombie = fork();
	if (zombie == 0) _exit(3);
	for (int i = 0; i < 500 && proc_state(zombie) != 'Z'; i++) usleep(1000);
	CHECK(proc_state(zombie) == 'Z', "child %d did not become a zombie", zombie);

	pthread_t th;
	CHECK(pthread_create(&th, NULL, waiter, NULL) == 0, "pthread_create");
	while (!thread_tid) usleep(1000);
	sigset_t usr1;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_BLOCK, &usr1, NULL);
	subject_ready(NULL);
	while (!got_term) pause();

	CHECK(syscall(SYS_tgkill, getpid(), thread_tid, 0) == 0, "thread %d is gone", thread_tid);
	CHECK(proc_state(stopped) == 'T', "child %d is not stopped any more (state %c)", stopped, proc_state(stopped));
	CHECK(proc_state(zombie) == 'Z', "zombie %d is not a zombie (state %c)", zombie, proc_state(zombie));
	sigset_t now;
	sigprocmask(SIG_BLOCK, NULL, &now);
	CHECK(sigismember(&now, SIGUSR1), "SIGUSR1 is no longer blocked");
	CHECK(lseek(fd, 0, SEEK_CUR) == 5, "offset %ld, expected 5", (long)lseek(fd, 0, SEEK_CUR));
	CHECK(lseek(dupfd, 7, SEEK_SET) == 7 && lseek(fd, 0, SEEK_CUR) == 7, "the dup does not share the offset");
	CHECK(waitpid(zombie, &st, 0) == zombie && WIFEXITED(st) && WEXITSTATUS(st) == 3, "zombie ended with status %#x, expected exit 3", st);
	kill(stopped, SIGKILL);
	CHECK(waitpid(stopped, &st, 0) == stopped && WIFSIGNALED(st), "stopped child: status %#x", st);
	subject_pass();
}
