/*
 * sleep_pause - a process blocked in pause() across the checkpoint.
 *
 *   sleep_pause OUTFILE
 *
 * pause() only returns when a signal handler ran; the only handler is
 * SIGTERM's (no SA_RESTART). pause() returning while got_term is 0 means the
 * tool made the interrupted pause() return (e.g. -EINTR / -ERESTARTNOHAND
 * leaked to user space) instead of restarting it.
 */
#include "subject.h"

int main(int argc, char **argv)
{
	subject_init(argc, argv, 1, "");
	install_term_handler(0);
	subject_ready(NULL);

	for (;;) {
		int r = pause();
		int e = errno;

		if (got_term)
			break;
		subject_fail("pause returned %d errno %d (%s) without SIGTERM", r, e, strerror(e));
	}
	subject_pass();
}
