/*
 * sleep_nanosleep - a process blocked in nanosleep() across the checkpoint.
 *
 *   sleep_nanosleep OUTFILE
 *
 * Loops on nanosleep(300 ms) (remaining time discarded). The SIGTERM handler
 * has no SA_RESTART, so:
 *   - nanosleep returning EINTR while no SIGTERM came is a spurious EINTR:
 *     the tool must restart an interrupted sleep transparently (nanosleep's
 *     restart goes through restart_syscall, which a restored task lacks);
 *   - nanosleep returning 0 well before 300 ms elapsed (CLOCK_MONOTONIC) means
 *     the call was not restarted but faked as completed.
 * Loops are counted (reported on stdout).
 */
#include "subject.h"

int main(int argc, char **argv)
{
	struct timespec ts = { 0, 300 * 1000 * 1000 };
	unsigned long loops = 0;

	subject_init(argc, argv, 1, "");
	install_term_handler(0);
	subject_ready(NULL);

	while (!got_term) {
		int64_t t0 = mono_ns(), dt;
		int r = nanosleep(&ts, NULL);
		int e = errno;

		dt = mono_ns() - t0;
		if (r != 0) {
			if (e == EINTR && got_term)
				break;
			subject_fail("nanosleep returned %d errno %d (%s) without SIGTERM, after %lld ms (loop %lu)",
				     r, e, e == EINTR ? "spurious EINTR" : strerror(e),
				     (long long)(dt / 1000000), loops);
		}
		/* dt < 0: CLOCK_MONOTONIC went back (other host); not this test's business */
		if (dt >= 0 && dt < 295 * 1000000ll)
			subject_fail("nanosleep(300 ms) returned 0 after only %lld.%03lld ms (loop %lu)",
				     (long long)(dt / 1000000), (long long)(dt / 1000 % 1000), loops);
		loops++;
	}
	subject_info("sleep_nanosleep: %lu loops\n", loops);
	subject_pass();
}
