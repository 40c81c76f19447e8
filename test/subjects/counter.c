/*
 * counter - the demo program: a process that keeps counting.
 *
 *   counter OUTFILE [MAX]
 *
 * Every 200 ms it appends "count N" to OUTFILE (reopened each time) and prints
 * it to stdout. READY is written after the first count; it goes on counting
 * across the checkpoint. On SIGTERM (or when MAX, if nonzero, is reached) it
 * checks that
 *   - the counter went on after READY (N now > N at READY; if SIGTERM comes
 *     before the next tick, it waits for that tick first),
 *   - OUTFILE holds exactly "count 1" .. "count N", in order, no gap, no reset
 *     (a restore from a stale image or a re-run from the start would show).
 * A nanosleep interrupted by the tool (EINTR without SIGTERM) is tolerated
 * here: this is the demo; sleep_nanosleep tests that strictly.
 *
 * static_counter.c includes this file and is built with -static.
 */
#include "subject.h"

static unsigned long count, count_at_ready, max_count;

static void verify(void)
{
	static char buf[1 << 22];
	unsigned long expect = 1;
	const char *p = buf;
	ssize_t n = read_file(subject_outfile, buf, sizeof(buf));

	CHECK(n >= 0, "cannot read back %s: %s", subject_outfile, strerror(errno));
	CHECK(count > count_at_ready, "counter did not advance: %lu at READY, %lu now",
	      count_at_ready, count);
	while (*p) {
		char line[256];
		unsigned long v;
		char extra;

		p = copy_line(p, line, sizeof(line));
		if (strncmp(line, "count ", 6) != 0)
			continue;
		if (sscanf(line + 6, "%lu%c", &v, &extra) != 1)
			subject_fail("bad line in %s: '%s'", subject_outfile, line);
		CHECK(v == expect, "counter sequence broken: expected 'count %lu', found 'count %lu'",
		      expect, v);
		expect++;
	}
	CHECK(expect - 1 == count, "last count in file is %lu but counter is %lu",
	      expect - 1, count);
}

static void tick(void)
{
	char line[64];
	int n;

	count++;
	n = snprintf(line, sizeof(line), "count %lu\n", count);
	subject_append(line, (size_t)n);
	printf("%s", line);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	struct timespec ts = { 0, 200 * 1000 * 1000 };

	subject_init(argc, argv, 1, "[MAX]");
	if (argc > 2)
		max_count = strtoul(argv[2], NULL, 0);
	install_term_handler(0);

	tick();
	count_at_ready = count;
	subject_ready(NULL);

	for (;;) {
		if (got_term && count > count_at_ready)
			break;
		if (max_count && count >= max_count)
			break;
		if (nanosleep(&ts, NULL) != 0) {
			if (errno != EINTR)
				subject_fail("nanosleep: %s", strerror(errno));
			continue; /* SIGTERM (checked above) or tolerated EINTR */
		}
		tick();
	}
	verify();
	subject_pass();
}
