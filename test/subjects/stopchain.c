/*
 * stopchain - a stopped child of a stopped child: the parent P forks B, B
 * forks C; B stops C with SIGTSTP and takes the report (waitpid WUNTRACED),
 * then P stops B with SIGSTOP and takes its report. Each is in a group of
 * its own, in P's session, so that the groups are not orphaned.
 *
 *   stopchain OUTFILE
 *
 * On SIGTERM P checks B is stopped and has nothing new to report, and
 * continues it; B then checks the same of C, continues it, and C, B report
 * back through shared memory. P checks every step.
 */
#include "subject.h"
#include <sys/mman.h>
#include <sys/wait.h>

struct shared { volatile int c_ran, b_ok; char why[256]; };
static struct shared *sh;

static void on_usr1(int s) { (void)s; }
static void b_fail(const char *why) { snprintf(sh->why, sizeof(sh->why), "%s", why); sh->b_ok = -1; _exit(1); }

int main(int argc, char **argv)
{
	subject_init(argc, argv, 1, "");
	sh = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(sh != MAP_FAILED, "mmap: %s", strerror(errno));
	pid_t b = fork();
	if (b == 0) {
		setpgid(0, 0);
		signal(SIGUSR1, on_usr1);
		pid_t c = fork();
		if (c == 0) {
			setpgid(0, 0);
			for (;;) { sh->c_ran++; usleep(10000); if (getppid() == 1) _exit(1); }
		}
		setpgid(c, c);
		usleep(30000);
		kill(c, SIGTSTP);
		int st;
		if (waitpid(c, &st, WUNTRACED) != c || !WIFSTOPPED(st) || WSTOPSIG(st) != SIGTSTP) b_fail("C did not stop by SIGTSTP");
		sh->b_ok = 1;
		for (;;) {
			pause();  /* P stops B here; after SIGCONT, SIGUSR1 wakes it */
			if (sh->b_ok == 2) break;
		}
		if (proc_state(c) != 'T') b_fail("C is not stopped after restore");
		if (waitpid(c, &st, WUNTRACED | WNOHANG) != 0) b_fail("C's stop was reported again");
		int before = sh->c_ran;
		kill(c, SIGCONT);
		for (int i = 0; i < 200 && sh->c_ran <= before + 2; i++) usleep(10000);
		if (sh->c_ran <= before + 2) b_fail("C did not go on after SIGCONT");
		kill(c, SIGKILL);
		waitpid(c, &st, 0);
		sh->b_ok = 3;
		_exit(0);
	}
	setpgid(b, b);
	install_term_handler(0);
	for (int i = 0; i < 500 && sh->b_ok == 0; i++) usleep(10000);
	CHECK(sh->b_ok == 1, "B did not stop C (%d): %s", sh->b_ok, sh->why);
	kill(b, SIGSTOP);
	int st;
	CHECK(waitpid(b, &st, WUNTRACED) == b && WIFSTOPPED(st) && WSTOPSIG(st) == SIGSTOP, "B did not stop (status %#x)", st);
	subject_ready(NULL);
	while (!got_term) pause();
	CHECK(proc_state(b) == 'T', "B is not stopped after restore (state %c)", proc_state(b));
	CHECK(waitpid(b, &st, WUNTRACED | WNOHANG) == 0, "B's stop was reported again");
	sh->b_ok = 2;
	kill(b, SIGCONT);
	kill(b, SIGUSR1); /* wakes B from pause() */
	CHECK(waitpid(b, &st, 0) == b, "waitpid B: %s", strerror(errno));
	CHECK(sh->b_ok == 3, "B: %s", sh->why);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "B ended with status %#x", st);
	subject_pass();
}
