/*
 * subject.h - shared helpers for ckpt test subjects.
 *
 * Protocol (see docs / design notes "Test subjects"):
 *   subject OUTFILE [args...]
 *   - set up state, append "READY\n" to OUTFILE, wait
 *   - (checkpoint + restore happen here; the subject must not notice)
 *   - on SIGTERM verify everything, append "PASS\n" or "FAIL <reason>\n",
 *     exit 0 on PASS, 1 on FAIL.
 *
 * OUTFILE is opened O_WRONLY|O_APPEND|O_CREAT for every single write and closed
 * again, so the subject holds no fd on it while it is checkpointed.
 *
 * Everything here avoids malloc after setup where it matters (the mem subject
 * compares /proc/self/maps before and after, so the heap must not move): the
 * helpers use caller-provided buffers, open/read/write and vsnprintf only.
 *
 * Each subject is a single translation unit that includes this header once,
 * so the non-static globals below (got_term) are defined exactly once and can
 * be referenced by name from top-level asm (regs.c does).
 */
#ifndef CKPT_SUBJECT_H
#define CKPT_SUBJECT_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define SUBJ_UNUSED __attribute__((unused))

/* Set (only) by the SIGTERM handler. */
volatile sig_atomic_t got_term;

static const char *subject_outfile SUBJ_UNUSED;

/* Append n bytes to OUTFILE with a fresh open/write/close. */
static SUBJ_UNUSED void subject_append(const char *s, size_t n)
{
	int fd;

	if (!subject_outfile)
		return;
	fd = open(subject_outfile, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	while (n > 0) {
		ssize_t w = write(fd, s, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		s += w;
		n -= (size_t)w;
	}
	close(fd);
}

static SUBJ_UNUSED void subject_append_str(const char *s)
{
	subject_append(s, strlen(s));
}

/* Remember OUTFILE (if not yet) and append READY. */
static SUBJ_UNUSED void subject_ready(const char *out)
{
	if (out)
		subject_outfile = out;
	subject_append_str("READY\n");
}

static SUBJ_UNUSED __attribute__((noreturn)) void subject_pass(void)
{
	subject_append_str("PASS\n");
	_exit(0);
}

/* Format "FAIL <reason>\n" (one line: newlines in the reason become " | "). */
static SUBJ_UNUSED __attribute__((noreturn, format(printf, 1, 2)))
void subject_fail(const char *fmt, ...)
{
	char msg[3072], line[4096];
	size_t i, o = 0;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	memcpy(line, "FAIL ", 5);
	o = 5;
	for (i = 0; msg[i] && o < sizeof(line) - 5; i++) {
		if (msg[i] == '\n') {
			if (msg[i + 1] == 0)
				break;
			memcpy(line + o, " | ", 3);
			o += 3;
		} else if (msg[i] == '\t') {
			line[o++] = ' ';
		} else {
			line[o++] = msg[i];
		}
	}
	line[o++] = '\n';
	subject_append(line, o);
	_exit(1);
}

/* Fail unless cond. */
#define CHECK(cond, ...) do { if (!(cond)) subject_fail(__VA_ARGS__); } while (0)

static void subject_term_handler(int sig)
{
	(void)sig;
	got_term = 1;
}

/*
 * Install the SIGTERM handler. Pass 0 (no SA_RESTART) in subjects that block
 * in syscalls: then a syscall returning EINTR while got_term == 0 is a
 * spurious EINTR, which the tool must never produce.
 */
static SUBJ_UNUSED void install_term_handler(int sa_flags)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = subject_term_handler;
	sa.sa_flags = sa_flags;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGTERM, &sa, NULL) != 0) {
		perror("sigaction SIGTERM");
		exit(2);
	}
}

/* Print to stdout (which is /dev/null under the harness) without stdio. */
static SUBJ_UNUSED __attribute__((format(printf, 1, 2)))
void subject_info(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > 0)
		(void)!write(1, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

/* ---- snapshots of /proc files (into caller buffers, no malloc) ---------- */

/*
 * Read a whole file into buf (NUL-terminated). Returns the length, or -1.
 * Fails the subject if the file does not fit (the buffers are sized
 * generously, so that means the state is not what we think).
 */
static SUBJ_UNUSED ssize_t read_file(const char *path, char *buf, size_t cap)
{
	size_t len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	for (;;) {
		ssize_t r;

		if (len + 1 >= cap) {
			close(fd);
			subject_fail("read_file %s: does not fit in %zu bytes", path, cap);
		}
		r = read(fd, buf + len, cap - 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			close(fd);
			return -1;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	buf[len] = 0;
	return (ssize_t)len;
}

/* read_file that fails the subject on error. */
static SUBJ_UNUSED size_t snap_file(const char *path, char *buf, size_t cap)
{
	ssize_t n = read_file(path, buf, cap);

	if (n < 0)
		subject_fail("cannot read %s: %s", path, strerror(errno));
	return (size_t)n;
}

/* Copy line starting at p (without '\n') into out; returns pointer after it. */
static SUBJ_UNUSED const char *copy_line(const char *p, char *out, size_t n)
{
	size_t i = 0;

	while (*p && *p != '\n') {
		if (i + 1 < n)
			out[i++] = *p;
		p++;
	}
	out[i] = 0;
	return *p ? p + 1 : p;
}

/*
 * Compare two texts line by line; on the first difference fail with
 * "<what> line N differs: before '<line>' after '<line>'".
 */
static SUBJ_UNUSED void compare_text(const char *what, const char *before, const char *after)
{
	char lb[1024], la[1024];
	int line = 1;

	while (*before || *after) {
		before = copy_line(before, lb, sizeof(lb));
		after = copy_line(after, la, sizeof(la));
		if (strcmp(lb, la) != 0)
			subject_fail("%s line %d differs: before '%s' after '%s'",
				     what, line, lb, la);
		line++;
	}
}

/*
 * Find the line "Key:<value>" in a /proc status-like text and copy the whole
 * line into out. Returns 0 if found, -1 if not (out = "").
 */
static SUBJ_UNUSED int status_line(const char *text, const char *key, char *out, size_t n)
{
	size_t kl = strlen(key);
	const char *p = text;

	while (*p) {
		if (strncmp(p, key, kl) == 0 && p[kl] == ':') {
			copy_line(p, out, n);
			return 0;
		}
		p = strchr(p, '\n');
		if (!p)
			break;
		p++;
	}
	out[0] = 0;
	return -1;
}

/*
 * Extract the given keys' lines from a status text into out, one per line
 * (missing keys give "Key: <missing>"). Used to snapshot a stable subset.
 */
static SUBJ_UNUSED void status_subset(const char *text, const char *const *keys,
				      char *out, size_t n)
{
	size_t o = 0;

	out[0] = 0;
	for (; *keys; keys++) {
		char line[1024];
		int w;

		if (status_line(text, *keys, line, sizeof(line)) != 0)
			snprintf(line, sizeof(line), "%s: <missing>", *keys);
		w = snprintf(out + o, n - o, "%s\n", line);
		if (w < 0 || (size_t)w >= n - o)
			subject_fail("status_subset: buffer too small");
		o += (size_t)w;
	}
}

/*
 * From /proc/self/smaps text, keep only the area header lines and their
 * VmFlags lines (the other fields, Rss etc., change with use).
 */
static SUBJ_UNUSED void smaps_vmflags(const char *smaps, char *out, size_t n)
{
	size_t o = 0;
	const char *p = smaps;

	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		/* header lines start with a hex address range "xxxx-yyyy " */
		int is_hdr = 0;
		const char *q = p;

		while ((*q >= '0' && *q <= '9') || (*q >= 'a' && *q <= 'f'))
			q++;
		if (q > p && *q == '-')
			is_hdr = 1;
		if (is_hdr || strncmp(p, "VmFlags:", 8) == 0) {
			if (o + len + 2 >= n)
				subject_fail("smaps_vmflags: buffer too small");
			memcpy(out + o, p, len);
			o += len;
			out[o++] = '\n';
		}
		if (!nl)
			break;
		p = nl + 1;
	}
	out[o] = 0;
}

/* Touch `bytes` of stack below the caller so later calls don't grow [stack]. */
static SUBJ_UNUSED __attribute__((noinline)) void prefault_stack(size_t bytes)
{
	volatile char *buf = __builtin_alloca(bytes);
	size_t i;

	for (i = 0; i < bytes; i += 4096)
		buf[i] = 0;
	buf[bytes - 1] = 0;
}

/* ---- misc ----------------------------------------------------------------- */

static SUBJ_UNUSED uint64_t random_seed(void)
{
	uint64_t s = 0;

	if (getrandom(&s, sizeof(s), 0) != sizeof(s))
		s = (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ull ^ (uint64_t)getpid();
	return s | 1;
}

/* splitmix64-style mixer: a well-spread function of its input. */
static inline SUBJ_UNUSED uint64_t mix64(uint64_t x)
{
	x += 0x9E3779B97F4A7C15ull;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
	return x ^ (x >> 31);
}

static SUBJ_UNUSED int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

/* Usage check shared by all subjects: argv[1] is OUTFILE. */
static SUBJ_UNUSED void subject_init(int argc, char **argv, int min_args, const char *usage)
{
	if (argc < 1 + min_args) {
		fprintf(stderr, "usage: %s OUTFILE %s\n", argv[0], usage ? usage : "");
		exit(2);
	}
	/* keep an absolute path: some subjects chdir before writing READY */
	if (argv[1][0] != '/') {
		static char abs_out[4096];
		char cwd[2048];

		if (!getcwd(cwd, sizeof(cwd))) {
			perror("getcwd");
			exit(2);
		}
		snprintf(abs_out, sizeof(abs_out), "%s/%s", cwd, argv[1]);
		subject_outfile = abs_out;
	} else {
		subject_outfile = argv[1];
	}
}

/* The state letter of a process from /proc/PID/stat (R, S, T, Z...), '?' if gone. */
static SUBJ_UNUSED char proc_state(pid_t pid)
{
	char path[64], text[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if (read_file(path, text, sizeof(text)) <= 0) return '?';
	char *p = strrchr(text, ')');
	return p && p[1] == ' ' ? p[2] : '?';
}

#endif
