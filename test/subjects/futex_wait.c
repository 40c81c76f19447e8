/*
 * futex_wait - a process blocked in FUTEX_WAIT (no timeout) across the
 * checkpoint.
 *
 *   futex_wait OUTFILE
 *
 * Waits with FUTEX_WAIT_PRIVATE on an int that is 0 and that nobody wakes.
 * The SIGTERM handler has no SA_RESTART, so the only legitimate return is
 * -1/EINTR after SIGTERM. Any other return (0 = fake wake-up, EAGAIN = the
 * word changed, EINTR without SIGTERM = not restarted) is a FAIL.
 */
#include "subject.h"
#include <linux/futex.h>
#include <sys/syscall.h>

static int futex_word;

int main(int argc, char **argv)
{
	unsigned long waits = 0;

	subject_init(argc, argv, 1, "");
	install_term_handler(0);
	subject_ready(NULL);

	for (;;) {
		long r = syscall(SYS_futex, &futex_word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
		int e = errno;

		waits++;
		if (r == -1 && e == EINTR && got_term)
			break;
		subject_fail("futex returned %ld errno %d (%s)%s, futex word is %d (wait %lu)",
			     r, r == -1 ? e : 0, r == -1 ? strerror(e) : "-",
			     got_term ? "" : " without SIGTERM", futex_word, waits);
	}
	CHECK(futex_word == 0, "futex word is %d, expected 0", futex_word);
	subject_pass();
}
