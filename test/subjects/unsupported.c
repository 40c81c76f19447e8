/*
 * unsupported - a process holding something ckpt does not support (yet).
 *
 *   unsupported OUTFILE KIND
 *
 * KIND:
 *   socket   an AF_VSOCK stream socket (a family ckpt does not support)
 *   pipe     a pipe (both ends)
 *   thread   a second pthread, counting in a nanosleep loop
 *   child    a fork()ed child in pause() (PR_SET_PDEATHSIG SIGKILL)
 *   timer    a POSIX timer (timer_create, 50 ms period, SIGUSR1)
 *   deleted  an open file that was unlinked
 *   lock     an flock() lock on a file it holds open
 *   netns    its own network namespace (unshare CLONE_NEWNET)
 * After READY it counts in a nanosleep loop (EINTR tolerated: the timer
 * signal interrupts it). The tool is expected to refuse the dump and leave
 * the process running unchanged; on SIGTERM the subject PASSes if the thing
 * still works: the socket is still an AF_VSOCK socket, the pipe passes a
 * byte, the thread keeps counting, the child is alive, the timer keeps
 * firing, the deleted file still reads back.
 */
#include "subject.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <linux/vm_sockets.h>
#include <sys/wait.h>
#include <sys/file.h>
#include <sched.h>

static const char *kind;
static int sock = -1, pfd[2] = { -1, -1 }, delfd = -1;
static pid_t child;
static int lockfd = -1;
static char netns[64];
static pthread_t thr;
static volatile unsigned long thread_count, timer_ticks;
static timer_t timer;
static const char del_content[] = "this file is deleted but open\n";

static void *thread_main(void *arg)
{
	struct timespec ts = { 0, 20 * 1000 * 1000 };

	(void)arg;
	for (;;) {
		nanosleep(&ts, NULL);
		thread_count++;
	}
	return NULL;
}

static void on_timer(int sig)
{
	(void)sig;
	timer_ticks++;
}

static void wait_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static void setup(void)
{
	if (strcmp(kind, "socket") == 0) {
		sock = socket(AF_VSOCK, SOCK_STREAM, 0);
		CHECK(sock >= 0, "socket(AF_VSOCK): %s", strerror(errno));
	} else if (strcmp(kind, "pipe") == 0) {
		CHECK(pipe(pfd) == 0, "pipe: %s", strerror(errno));
	} else if (strcmp(kind, "thread") == 0) {
		CHECK(pthread_create(&thr, NULL, thread_main, NULL) == 0, "pthread_create failed");
	} else if (strcmp(kind, "child") == 0) {
		pid_t parent = getpid();

		child = fork();
		CHECK(child >= 0, "fork: %s", strerror(errno));
		if (child == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
			if (getppid() != parent)
				_exit(0);
			signal(SIGTERM, SIG_DFL);
			for (;;)
				pause();
		}
	} else if (strcmp(kind, "timer") == 0) {
		struct sigevent sev;
		struct itimerspec its = { { 0, 50 * 1000 * 1000 }, { 0, 50 * 1000 * 1000 } };
		struct sigaction sa;

		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_timer;
		sa.sa_flags = SA_RESTART;
		sigaction(SIGUSR1, &sa, NULL);
		memset(&sev, 0, sizeof(sev));
		sev.sigev_notify = SIGEV_SIGNAL;
		sev.sigev_signo = SIGUSR1;
		CHECK(timer_create(CLOCK_MONOTONIC, &sev, &timer) == 0, "timer_create: %s", strerror(errno));
		CHECK(timer_settime(timer, 0, &its, NULL) == 0, "timer_settime: %s", strerror(errno));
	} else if (strcmp(kind, "deleted") == 0) {
		delfd = open("deleted.txt", O_RDWR | O_CREAT | O_TRUNC, 0600);
		CHECK(delfd >= 0, "open deleted.txt: %s", strerror(errno));
		CHECK(write(delfd, del_content, sizeof(del_content)) == sizeof(del_content), "write");
		CHECK(unlink("deleted.txt") == 0, "unlink: %s", strerror(errno));
	} else if (strcmp(kind, "lock") == 0) {
		lockfd = open("locked.txt", O_RDWR | O_CREAT, 0600);
		CHECK(lockfd >= 0 && flock(lockfd, LOCK_EX) == 0, "flock: %s", strerror(errno));
	} else if (strcmp(kind, "netns") == 0) {
		CHECK(unshare(CLONE_NEWNET) == 0, "unshare(CLONE_NEWNET): %s", strerror(errno));
		CHECK(readlink("/proc/self/ns/net", netns, sizeof(netns) - 1) > 0, "readlink ns/net");
	} else {
		fprintf(stderr, "unsupported: unknown KIND '%s' (socket pipe thread child timer deleted lock netns)\n", kind);
		exit(2);
	}
}

static void verify(void)
{
	if (sock >= 0) {
		int dom = 0;
		socklen_t len = sizeof(dom);

		CHECK(getsockopt(sock, SOL_SOCKET, SO_DOMAIN, &dom, &len) == 0 && dom == AF_VSOCK,
		      "the socket is not an AF_VSOCK socket any more: %s", strerror(errno));
	}
	if (pfd[0] >= 0) {
		char c = 0;

		CHECK(write(pfd[1], "p", 1) == 1, "pipe write: %s", strerror(errno));
		CHECK(read(pfd[0], &c, 1) == 1 && c == 'p', "pipe did not pass the byte back");
	}
	if (strcmp(kind, "thread") == 0) {
		unsigned long c0 = thread_count;

		CHECK(pthread_kill(thr, 0) == 0, "second thread is gone");
		wait_ms(200);
		CHECK(thread_count > c0, "second thread stopped counting (%lu)", c0);
	}
	if (child > 0) {
		int st;

		CHECK(kill(child, 0) == 0, "child %d is gone: %s", child, strerror(errno));
		CHECK(waitpid(child, &st, WNOHANG) == 0, "child %d has exited (status %#x)", child, st);
		kill(child, SIGKILL);
		waitpid(child, &st, 0);
	}
	if (strcmp(kind, "timer") == 0) {
		unsigned long t0 = timer_ticks;
		struct itimerspec its;

		CHECK(timer_gettime(timer, &its) == 0, "timer_gettime: %s", strerror(errno));
		CHECK(its.it_interval.tv_nsec == 50 * 1000 * 1000 && its.it_interval.tv_sec == 0,
		      "timer interval is %ld.%09ld", (long)its.it_interval.tv_sec, its.it_interval.tv_nsec);
		wait_ms(300);
		CHECK(timer_ticks > t0, "timer stopped firing (%lu ticks)", t0);
	}
	if (lockfd >= 0) {
		/* Another open file description cannot take the lock while this one holds it. */
		int other = open("locked.txt", O_RDWR);
		CHECK(other >= 0 && flock(other, LOCK_EX | LOCK_NB) == -1 && errno == EWOULDBLOCK, "the flock lock is gone");
		close(other);
	}
	if (netns[0]) {
		char now[64] = "";
		CHECK(readlink("/proc/self/ns/net", now, sizeof(now) - 1) > 0 && strcmp(now, netns) == 0, "network namespace changed: %s", now);
	}
	if (delfd >= 0) {
		char buf[64] = { 0 };
		struct stat st;

		CHECK(fstat(delfd, &st) == 0 && st.st_nlink == 0, "deleted file: nlink %lu",
		      (unsigned long)st.st_nlink);
		CHECK(pread(delfd, buf, sizeof(buf), 0) == sizeof(del_content) &&
		      memcmp(buf, del_content, sizeof(del_content)) == 0, "deleted file content changed: '%s'", buf);
	}
}

int main(int argc, char **argv)
{
	struct timespec ts = { 0, 100 * 1000 * 1000 };
	unsigned long loops = 0;

	subject_init(argc, argv, 2, "KIND");
	kind = argv[2];
	install_term_handler(0);
	setup();
	subject_ready(NULL);
	while (!got_term) {
		nanosleep(&ts, NULL); /* EINTR tolerated */
		loops++;
	}
	verify();
	subject_pass();
}
