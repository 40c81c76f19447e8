/*
 * stopped - a stopped child (SIGSTOP, job control) must stay stopped after
 * restore and go on when sent SIGCONT.
 *
 *   stopped OUTFILE
 *
 * The child counts in a nanosleep loop; the parent stops it and checks with
 * waitpid(WUNTRACED). On SIGTERM the parent checks the child is still stopped
 * (state T) and its counter did not move, sends SIGCONT, and expects it to
 * count on and then exit 33 when told (SIGUSR1).
 */
#include "subject.h"
#include <sys/mman.h>
#include <sys/wait.h>

static volatile sig_atomic_t usr1;
static void on_usr1(int s) { (void)s; usr1 = 1; }

int main(int argc, char **argv)
{
	subject_init(argc, argv, 1, "");
	install_term_handler(0);
	volatile unsigned long *count = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(count != MAP_FAILED, "mmap: %s", strerror(errno));
	pid_t c = fork();
	if (c == 0) {
		signal(SIGUSR1, on_usr1);
		while (!usr1) {
			struct timespec ts = { 0, 10 * 1000 * 1000 };
			nanosleep(&ts, NULL);
			(*count)++;
		}
		_exit(33);
	}
	usleep(50000);
	kill(c, SIGSTOP);
	int st = 0;
	CHECK(waitpid(c, &st, WUNTRACED) == c && WIFSTOPPED(st), "child did not stop (status %#x)", st);
	unsigned long at_stop = *count;
	subject_ready(NULL);
	while (!got_term) {
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	CHECK(proc_state(c) == 'T', "child %d is not stopped any more (state %c)", c, proc_state(c));
	CHECK(*count == at_stop, "the stopped child counted on (%lu -> %lu)", at_stop, *count);
	kill(c, SIGCONT);
	for (int i = 0; i < 200 && *count <= at_stop + 3; i++) usleep(10000);
	CHECK(*count > at_stop + 3, "child did not go on after SIGCONT (%lu)", *count);
	kill(c, SIGUSR1);
	CHECK(waitpid(c, &st, 0) == c, "waitpid: %s", strerror(errno));
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 33, "child ended with status %#x, expected exit 33", st);
	subject_pass();
}
