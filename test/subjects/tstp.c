/*
 * tstp - a child stopped by a job-control signal (SIGTSTP, SIGTTIN,
 * SIGTTOU) must stay stopped, and the parent's wait must report the stop
 * the same way: still to report if it was not collected, nothing new if it
 * was.
 *
 *   tstp OUTFILE tstp|ttin|ttou [unreported]
 *
 * The child counts in a nanosleep loop, in its own process group in the
 * parent's session (so the group is not orphaned and the signal stops it).
 * The parent sends the signal; unless "unreported", it collects the stop
 * with waitpid(WUNTRACED) (WSTOPSIG must be the signal). On SIGTERM: the
 * child is in state T and did not count on; "unreported": waitpid(c,
 * WUNTRACED|WNOHANG) must report WSTOPSIG == the signal (retried for 2 s);
 * otherwise it must return 0. Then SIGCONT: the child counts on, and exits 0
 * on SIGUSR1.
 */
#include "subject.h"
#include <sys/mman.h>
#include <sys/wait.h>

static volatile sig_atomic_t usr1;
static void on_usr1(int s) { (void)s; usr1 = 1; }

int main(int argc, char **argv)
{
	subject_init(argc, argv, 2, "tstp|ttin|ttou [unreported]");
	int sig = strcmp(argv[2], "tstp") == 0 ? SIGTSTP : strcmp(argv[2], "ttin") == 0 ? SIGTTIN :
		  strcmp(argv[2], "ttou") == 0 ? SIGTTOU : 0;
	CHECK(sig, "unknown mode %s", argv[2]);
	int unreported = argc > 3 && strcmp(argv[3], "unreported") == 0;
	install_term_handler(0);
	volatile unsigned long *count = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(count != MAP_FAILED, "mmap: %s", strerror(errno));
	pid_t parent = getpid(), c = fork();
	CHECK(c >= 0, "fork: %s", strerror(errno));
	if (c == 0) {
		signal(SIGUSR1, on_usr1);
		signal(sig, SIG_DFL);
		setpgid(0, 0);
		while (!usr1) {
			if (getppid() != parent) _exit(2); /* the parent is gone (it failed) */
			struct timespec ts = { 0, 10 * 1000 * 1000 };
			nanosleep(&ts, NULL);
			(*count)++;
		}
		_exit(0);
	}
	CHECK(setpgid(c, c) == 0 || errno == EACCES, "setpgid: %s", strerror(errno));
	while (*count < 3) usleep(1000); /* the child runs, with its handlers set */
	CHECK(getpgid(c) == c && getsid(c) == getsid(0) && getpgid(0) != c, "child: group %d session %d", getpgid(c), getsid(c));
	kill(c, sig);
	int st = 0;
	if (unreported) {
		while (proc_state(c) != 'T') usleep(1000);
	} else {
		CHECK(waitpid(c, &st, WUNTRACED) == c && WIFSTOPPED(st) && WSTOPSIG(st) == sig,
		      "child did not stop with signal %d (status %#x)", sig, st);
	}
	usleep(20000);
	unsigned long at_stop = *count;
	subject_ready(NULL);
	while (!got_term) {
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	CHECK(proc_state(c) == 'T', "child %d is not stopped any more (state %c)", c, proc_state(c));
	CHECK(*count == at_stop, "the stopped child counted on (%lu -> %lu)", at_stop, *count);
	pid_t r = 0;
	st = 0;
	if (unreported) {
		for (int i = 0; i < 200 && (r = waitpid(c, &st, WUNTRACED | WNOHANG)) == 0; i++) usleep(10000);
		CHECK(r == c, "the stop that was never collected is not reported (waitpid gives %d: %s)", r, r < 0 ? strerror(errno) : "nothing");
		CHECK(WIFSTOPPED(st) && WSTOPSIG(st) == sig, "waitpid reports status %#x, expected stopped by %d", st, sig);
	} else {
		r = waitpid(c, &st, WUNTRACED | WNOHANG);
		CHECK(r == 0, "the stop that was already collected is reported again (waitpid gives %d, status %#x)", r, st);
	}
	kill(c, SIGCONT);
	for (int i = 0; i < 200 && *count <= at_stop + 3; i++) usleep(10000);
	CHECK(*count > at_stop + 3, "child did not go on after SIGCONT (%lu)", *count);
	kill(c, SIGUSR1);
	CHECK(waitpid(c, &st, 0) == c, "waitpid: %s", strerror(errno));
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child ended with status %#x, expected exit 0", st);
	subject_pass();
}
