/*
 * loginuid - the audit login uid must come back: the subject writes 4242 to
 * /proc/self/loginuid (as root; FAIL with the errno if refused) and after
 * restore /proc/self/loginuid must read the same.
 *
 *   loginuid OUTFILE
 *
 * /proc/self/sessionid (assigned by the kernel when loginuid is written)
 * cannot be restored: it is only reported, as "NOTE sessionid A -> B" before
 * PASS, never failed on.
 */
#include "subject.h"

static void read_id(const char *path, char *out, size_t n)
{
	snap_file(path, out, n);
	out[strcspn(out, "\n")] = 0;
}

int main(int argc, char **argv)
{
	subject_init(argc, argv, 1, "");
	install_term_handler(0);
	char lb[32], la[32], sb[32], sa[32];
	int fd = open("/proc/self/loginuid", O_WRONLY | O_CLOEXEC);
	CHECK(fd >= 0, "open /proc/self/loginuid: %s", strerror(errno));
	CHECK(write(fd, "4242", 4) == 4, "write 4242 to /proc/self/loginuid: %s", strerror(errno));
	close(fd);
	read_id("/proc/self/loginuid", lb, sizeof(lb));
	read_id("/proc/self/sessionid", sb, sizeof(sb));
	CHECK(strcmp(lb, "4242") == 0, "/proc/self/loginuid reads '%s' after writing 4242", lb);
	subject_ready(NULL);
	while (!got_term) {
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	read_id("/proc/self/loginuid", la, sizeof(la));
	read_id("/proc/self/sessionid", sa, sizeof(sa));
	CHECK(strcmp(la, lb) == 0, "/proc/self/loginuid: before '%s' after '%s'", lb, la);
	char note[128];
	snprintf(note, sizeof(note), "NOTE sessionid %s -> %s\n", sb, sa);
	subject_append_str(note);
	subject_pass();
}
