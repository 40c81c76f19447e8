/*
 * pty_pair OUTFILE MODE: a pseudo-terminal pair inside the tree.
 *
 * The root P opens a pty master and forks C, which setsid()s, opens the
 * slave (by its name, or with TIOCGPTPEER and TIOCSCTTY) as its controlling
 * terminal on fds 0-2 and more, and forks G, which leads a process group of
 * its own that C makes the foreground group, and waits for SIGWINCH. P sets a
 * window size, the slave's mode is set per MODE, and data is queued both
 * ways: P writes input to the master (read back its echo first, so that only
 * a second echo would show), C writes output to the slave. Then READY.
 *
 * After SIGTERM, P checks: the master's index and ptsname, termios (all
 * fields, through the master), window size, lock, packet mode, exclusive
 * bits, the slave's session and foreground group (asked of the master);
 * then reads the output queue (exactly the bytes queued, nothing more: no
 * second echo), tells C (SIGUSR1) to read the input queue (exactly the lines
 * and the partial line queued), completes C's partial line, and reads C's
 * report of its own checks (session, controlling terminal, ttyname,
 * foreground group, termios); then resizes the window and waits for G's
 * report of the SIGWINCH. Modes:
 *   canon    canonical mode with echo, VEOL '@', an erased character, an EOF line,
 *            an empty EOF, ^V-escaped ^D, ^V, newline and '@' (literal in their
 *            lines), a partial line; speed 9600
 *   raw      cfmakeraw, 38400/115200 split speeds, bytes that cooked mode would act on
 *   pkt      canonical, the master in packet mode
 *   locked   the slave locked again (TIOCSPTLCK) while C holds it
 *   peer     C gets the slave with TIOCGPTPEER and TIOCSCTTY; P holds a slave too
 *            (both ends in one process), the slave exclusive (TIOCEXCL)
 *   single   no children: P holds master and slave (O_NOCTTY), data both ways
 *   extproc  canonical with EXTPROC (the line discipline does no editing)
 *   closed   no children: P opened the slave, wrote to it and closed it: the master
 *            reads that output, then EIO (and polls POLLHUP)
 *   unopened no children: the slave was never opened (ckpt refuses to dump it)
 *   hungup   no children: P holds a slave whose master it closed: hung up
 *   two      no children: two pairs in raw mode (their indexes with a gap below
 *            each: restore allocates around it), data both ways in each
 *   big      no children: 12000 bytes queued for the slave in raw mode (more than
 *            the line discipline holds: the rest waits in the flip buffers)
 *   bigcbreak the same with ISIG on (ckpt refuses it: the rest would be processed again)
 *   pktstatus no children: packet mode with a status byte not yet read (TIOCPKT_FLUSHREAD;
 *            ckpt refuses it)
 *   stopped  no children: the slave's output stopped by ^S (IXON; ckpt refuses it);
 *            after SIGTERM it must still be stopped, and ^Q starts it again
 */
#include "subject.h"
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>

static const char *mode;
static int m = -1;           /* P: the master */
static char name[64];         /* /dev/pts/N */
static pid_t c_pid, g_pid;
static int sync_p[2], go_p[2];
static struct termios t_before;
static struct winsize w_before = { .ws_row = 40, .ws_col = 100, .ws_xpixel = 7, .ws_ypixel = 9 };

static int is(const char *m_) { return strcmp(mode, m_) == 0; }
static int canonical_mode(void) { return is("canon") || is("pkt") || is("locked") || is("peer") || is("single"); }

/* The input P queues for the slave, and what C must read of it. */
static const char *input(size_t *n)
{
	static const char canon_in[] = "line1\nline2@xy\x7fz\nabc\x16\x04" "d\nq\x16\x16r\ns\x16\nt\x16@u\neofline\x04\x04partial";
	static const char raw_in[] = "raw\x03\x1a\x7f\r\n\x00\x11\x13\xff end";
	static const char ext_in[] = "ext\x7f\x03 data\n";
	if (is("raw")) { *n = sizeof(raw_in) - 1; return raw_in; }
	if (is("extproc")) { *n = sizeof(ext_in) - 1; return ext_in; }
	*n = sizeof(canon_in) - 1;
	return canon_in;
}
/* The reads C must see, in canonical modes (each one read), then the partial line. */
static const char *const canon_reads[] = { "line1\n", "line2@", "xz\n", "abc\x04" "d\n", "q\x16r\n", "s\nt@u\n", "eofline", "", NULL };

/* What the slave wrote, as the master must read it (after output processing). */
static const char *output(size_t *n)
{
	static const char cooked_out[] = "hello\r\nsecond\r\n";
	static const char raw_out[] = "raw-out\n\x01\xff";
	if (is("raw") || is("extproc")) { *n = sizeof(raw_out) - 1; return raw_out; }
	*n = sizeof(cooked_out) - 1;
	return cooked_out;
}

static void set_mode(int fd)
{
	struct termios t;
	CHECK(tcgetattr(fd, &t) == 0, "tcgetattr: %s", strerror(errno));
	if (is("raw")) {
		cfmakeraw(&t);
		cfsetispeed(&t, B38400);
		cfsetospeed(&t, B115200);
		t.c_cc[VMIN] = 1;
		t.c_cc[VTIME] = 0;
	} else {
		t.c_lflag |= ICANON | ECHO | ECHOE | IEXTEN | ISIG;
		t.c_iflag |= ICRNL;
		t.c_oflag |= OPOST | ONLCR;
		t.c_cc[VEOL] = '@';
		t.c_cc[VERASE] = 0x7f;
		t.c_cc[VEOF] = 0x04;
		t.c_cc[VLNEXT] = 0x16;
		cfsetispeed(&t, B9600);
		cfsetospeed(&t, B9600);
		if (is("extproc")) { t.c_lflag |= EXTPROC; t.c_lflag &= ~ECHO; t.c_lflag &= ~ISIG; t.c_oflag &= ~OPOST; }
	}
	CHECK(tcsetattr(fd, TCSANOW, &t) == 0, "tcsetattr: %s", strerror(errno));
}

static int same_termios(const struct termios *a, const struct termios *b, char *why, size_t n)
{
	if (a->c_iflag != b->c_iflag || a->c_oflag != b->c_oflag || a->c_cflag != b->c_cflag || a->c_lflag != b->c_lflag) {
		snprintf(why, n, "flags %o/%o/%o/%o, were %o/%o/%o/%o", b->c_iflag, b->c_oflag, b->c_cflag, b->c_lflag,
			 a->c_iflag, a->c_oflag, a->c_cflag, a->c_lflag);
		return 0;
	}
	if (memcmp(a->c_cc, b->c_cc, NCCS) != 0) { snprintf(why, n, "c_cc differs"); return 0; }
	if (cfgetispeed(a) != cfgetispeed(b) || cfgetospeed(a) != cfgetospeed(b)) { snprintf(why, n, "speeds differ"); return 0; }
	if (a->c_line != b->c_line) { snprintf(why, n, "c_line differs"); return 0; }
	return 1;
}

/* Read exactly n bytes from fd within 3 s (strip packet-mode headers if pkt), and check nothing more comes within 0.3 s. */
static void read_exact(int fd, const char *want, size_t n, int pkt, const char *what)
{
	char buf[8192];
	size_t got = 0;
	while (got < n) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		CHECK(poll(&p, 1, 3000) == 1, "%s: only %zu of %zu bytes came", what, got, n);
		ssize_t r = read(fd, buf, sizeof(buf));
		CHECK(r > 0, "%s: read: %zd %s", what, r, strerror(errno));
		size_t off = 0;
		if (pkt) { CHECK(buf[0] == 0, "%s: a packet-mode status byte 0x%x instead of data", what, (unsigned char)buf[0]); off = 1; }
		CHECK(got + (size_t)r - off <= n, "%s: %zu bytes, more than the %zu queued", what, got + (size_t)r - off, n);
		CHECK(memcmp(buf + off, want + got, (size_t)r - off) == 0, "%s: the bytes differ from %zu on", what, got);
		got += (size_t)r - off;
	}
	struct pollfd p = { .fd = fd, .events = POLLIN | POLLPRI };
	int pr = poll(&p, 1, 300);
	if (pr == 1 && (p.revents & (POLLIN | POLLPRI))) {
		ssize_t r = read(fd, buf, sizeof(buf));
		subject_fail("%s: %zd bytes more than queued (first 0x%x)", what, r, r > 0 ? (unsigned char)buf[pkt && r > 1 ? 1 : 0] : 0);
	}
}

/*
 * Read from the master until a line starting with `prefix` arrives; return it
 * (in acc). What came after that line is kept for the next call.
 */
static char pending[8192];
static size_t pending_len;
static char *read_until(int fd, const char *prefix, int pkt, char *acc, size_t cap)
{
	size_t len = pending_len < cap - 1 ? pending_len : cap - 1;
	memcpy(acc, pending, len);
	acc[len] = 0;
	pending_len = 0;
	for (;;) {
		char *l = strstr(acc, prefix);
		char *nl = l ? strchr(l, '\n') : NULL;
		if (nl) {
			size_t rest = len - (size_t)(nl + 1 - acc);
			memcpy(pending, nl + 1, rest);
			pending_len = rest;
			*nl = 0;
			if (nl > l && nl[-1] == '\r') nl[-1] = 0;
			return l;
		}
		struct pollfd p = { .fd = fd, .events = POLLIN };
		CHECK(poll(&p, 1, 5000) == 1, "waiting for '%s' from the slave side: nothing came (had: %.200s)", prefix, acc);
		char buf[4096];
		ssize_t r = read(fd, buf, sizeof(buf));
		CHECK(r > 0, "read for '%s': %s", prefix, strerror(errno));
		size_t off = pkt ? 1 : 0;
		if (pkt && buf[0] != 0) continue;
		for (ssize_t i = off; i < r && len + 1 < cap; i++) acc[len++] = buf[i] ? buf[i] : '.';
		acc[len] = 0;
	}
}

/* ---- reports on the terminal, from C and G ---- */
static void report(const char *fmt, ...)
{
	char b[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(b, sizeof b, fmt, ap);
	va_end(ap);
	(void)!write(1, b, (size_t)n);
}

#define RCHECK(who, cond, ...) do { if (!(cond)) { char _w[512]; snprintf(_w, sizeof _w, __VA_ARGS__); report("%s-FAIL %s\n", who, _w); for (;;) pause(); } } while (0)

static volatile sig_atomic_t go, winched;
static void on_usr1(int s) { (void)s; go = 1; }
static void on_winch(int s) { (void)s; winched = 1; }

/* G, in the foreground group: reads the input queue when told (SIGUSR1), reports SIGWINCH. */
static void g_read_input(void)
{
	char buf[8192];
	int fl = fcntl(0, F_GETFL);
	fcntl(0, F_SETFL, fl | O_NONBLOCK);
	if (!canonical_mode()) {
		size_t n;
		const char *want = input(&n);
		size_t got = 0;
		ssize_t r;
		for (;;) {
			r = read(0, buf + got, sizeof(buf) - got);
			if (r <= 0) break;
			got += (size_t)r;
		}
		RCHECK("G", r < 0 && errno == EAGAIN, "after the input queue: %zd %s", r, strerror(errno));
		RCHECK("G", got == n && memcmp(buf, want, n) == 0, "input queue: %zu bytes, %zu queued", got, n);
	} else {
		for (int i = 0; canon_reads[i]; i++) {
			ssize_t r = read(0, buf, sizeof(buf));
			RCHECK("G", r >= 0, "line %d: %s", i, strerror(errno));
			RCHECK("G", (size_t)r == strlen(canon_reads[i]) && memcmp(buf, canon_reads[i], (size_t)r) == 0, "line %d: %zd bytes '%.*s'", i, r, (int)r, buf);
		}
		ssize_t r = read(0, buf, sizeof(buf));
		RCHECK("G", r < 0 && errno == EAGAIN, "after the lines: %zd (a partial line must not be readable)", r);
		fcntl(0, F_SETFL, fl);
		report("G-LINES\n");
		r = read(0, buf, sizeof(buf)); /* P completes the partial line */
		RCHECK("G", r == 12 && memcmp(buf, "partialrest\n", 12) == 0, "the partial line: '%.*s'", (int)r, buf);
	}
	fcntl(0, F_SETFL, fl);
	RCHECK("G", tcgetpgrp(0) == getpgrp(), "G is not in the foreground: %d", (int)tcgetpgrp(0));
	report("G-OK\n");
}

static void run_g(void)
{
	signal(SIGWINCH, on_winch);
	signal(SIGUSR1, on_usr1);
	setpgid(0, 0);
	CHECK(write(sync_p[1], "g", 1) == 1, "G sync");
	close(sync_p[1]);
	close(go_p[0]);
	for (;;) {
		pause();
		if (go) { go = 0; g_read_input(); }
		if (winched) {
			winched = 0;
			struct winsize w;
			ioctl(1, TIOCGWINSZ, &w);
			report("WINCH %dx%d pgrp %d fg %d\n", w.ws_row, w.ws_col, (int)getpgrp(), (int)tcgetpgrp(1));
		}
	}
}

/* D, in C's session and group, gave up the controlling terminal (TIOCNOTTY): checks it still has none when told. */
static pid_t d_pid;
static void run_d(void)
{
	CHECK(ioctl(0, TIOCNOTTY) == 0, "TIOCNOTTY: %s", strerror(errno));
	CHECK(write(sync_p[1], "d", 1) == 1, "D sync");
	close(sync_p[1]);
	close(go_p[0]);
	for (;;) {
		pause();
		if (!go) continue;
		go = 0;
		int t = open("/dev/tty", O_RDWR);
		RCHECK("D", t < 0 && errno == ENXIO, "D has a controlling terminal again (open /dev/tty: %d %s)", t, strerror(errno));
		char st[512];
		read_file("/proc/self/stat", st, sizeof st);
		char *p = strrchr(st, ')');
		int ttynr = -1, sid = -1;
		sscanf(p + 2, "%*c %*d %*d %d %d", &sid, &ttynr);
		RCHECK("D", ttynr == 0 && sid == getsid(0) && sid != getpid(), "D: tty_nr %d, session %d", ttynr, sid);
		report("D-OK\n");
	}
}

/* C, the session leader on the slave: checks its session when told (SIGUSR1), then tells D. */
static void c_check(void)
{
	RCHECK("C", getsid(0) == getpid(), "getsid %d", (int)getsid(0));
	RCHECK("C", tcgetsid(0) == getpid(), "tcgetsid %d", (int)tcgetsid(0));
	RCHECK("C", tcgetpgrp(0) == g_pid, "tcgetpgrp %d, G is %d", (int)tcgetpgrp(0), (int)g_pid);
	char tn[64];
	RCHECK("C", ttyname_r(0, tn, sizeof tn) == 0 && strcmp(tn, name) == 0, "ttyname %s, was %s", tn, name);
	int dt = open("/dev/tty", O_RDWR);
	RCHECK("C", dt >= 0, "open /dev/tty: %s", strerror(errno));
	pid_t ts = -1;
	RCHECK("C", ioctl(dt, TIOCGSID, &ts) == 0 && ts == getpid(), "/dev/tty is the terminal of session %d", (int)ts);
	close(dt);
	struct termios t;
	char why[256];
	RCHECK("C", tcgetattr(0, &t) == 0 && same_termios(&t_before, &t, why, sizeof why), "termios: %s", why);
	if (is("peer")) {
		int ex = 0;
		RCHECK("C", ioctl(0, TIOCGEXCL, &ex) == 0 && ex == 1, "the slave is not exclusive");
	}
	report("C-OK\n");
	kill(d_pid, SIGUSR1);
}

static void run_c(void)
{
	setsid();
	int s;
	if (is("peer")) {
		s = ioctl(m, TIOCGPTPEER, O_RDWR | O_CLOEXEC);
		if (s < 0) _exit(3);
		if (ioctl(s, TIOCSCTTY, 0) != 0) _exit(4);
	} else {
		s = open(name, O_RDWR); /* a session leader without a terminal: it becomes the controlling terminal */
		if (s < 0) _exit(3);
	}
	close(m);
	dup2(s, 0); dup2(s, 1); dup2(s, 2);
	(void)dup(s); /* (a dup'ed slave fd at another number) */
	set_mode(0);
	CHECK(tcgetattr(0, &t_before) == 0, "tcgetattr");
	if (is("peer")) ioctl(0, TIOCEXCL);
	signal(SIGUSR1, on_usr1);
	g_pid = fork();
	if (g_pid == 0) run_g();
	d_pid = fork();
	if (d_pid == 0) run_d();
	setpgid(g_pid, g_pid);
	CHECK(tcsetpgrp(0, g_pid) == 0, "tcsetpgrp: %s", strerror(errno));
	char x;
	CHECK(write(sync_p[1], "c", 1) == 1, "C sync");
	/* P has read the echo of its input: now the output. */
	CHECK(read(go_p[0], &x, 1) == 1, "C go");
	size_t on;
	const char *out = output(&on);
	if (is("raw") || is("extproc")) CHECK(write(1, out, on) == (ssize_t)on, "C write");
	else { CHECK(write(1, "hello\n", 6) == 6, "C write"); CHECK(write(1, "second\n", 7) == 7, "C write"); }
	CHECK(write(sync_p[1], "o", 1) == 1, "C sync");
	close(sync_p[1]);
	close(go_p[0]);
	for (;;) {
		pause();
		if (go) { go = 0; c_check(); }
	}
}

int main(int argc, char **argv)
{
	if (argc < 3) { fprintf(stderr, "usage: %s OUTFILE MODE\n", argv[0]); return 2; }
	subject_outfile = argv[1];
	mode = argv[2];
	install_term_handler(0);
	signal(SIGTTOU, SIG_IGN);
	signal(SIGTTIN, SIG_IGN);
	m = posix_openpt(O_RDWR | O_NOCTTY);
	CHECK(m >= 0, "posix_openpt: %s", strerror(errno));
	CHECK(grantpt(m) == 0 && unlockpt(m) == 0, "grantpt/unlockpt");
	CHECK(ptsname_r(m, name, sizeof name) == 0, "ptsname");
	CHECK(ioctl(m, TIOCSWINSZ, &w_before) == 0, "TIOCSWINSZ");
	int pkt = is("pkt");
	size_t in_n, out_n;
	const char *in = input(&in_n);
	const char *out = output(&out_n);
	int ps = -1; /* P's own slave (peer, single) */

	if (is("unopened")) {
		subject_ready(argv[1]);
		while (!got_term) pause();
		subject_pass();
	}
	if (is("hungup")) {
		ps = open(name, O_RDWR | O_NOCTTY | O_NONBLOCK);
		CHECK(ps >= 0, "open %s", name);
		close(m);
		subject_ready(argv[1]);
		while (!got_term) pause();
		char b[128];
		ssize_t r = read(ps, b, sizeof b);
		CHECK(r == 0, "the hung-up slave reads %zd %s", r, strerror(errno));
		CHECK(write(ps, "x", 1) < 0 && errno == EIO, "a write to the hung-up slave: %s", strerror(errno));
		char l[64];
		snprintf(l, sizeof l, "/proc/self/fd/%d", ps);
		r = readlink(l, b, sizeof b - 1);
		b[r > 0 ? r : 0] = 0;
		CHECK(r > 0 && strncmp(b, "/dev/pts/", 9) == 0 && strstr(b, " (deleted)"), "the hung-up slave is %s", b);
		CHECK(fcntl(ps, F_GETFL) & O_NONBLOCK, "O_NONBLOCK lost");
		subject_pass();
	}
	if (is("two")) {
		/* Three masters; the first is closed: the tree holds the second and third, with a free index below. */
		int m2 = posix_openpt(O_RDWR | O_NOCTTY), m3 = posix_openpt(O_RDWR | O_NOCTTY);
		CHECK(m2 >= 0 && m3 >= 0, "posix_openpt");
		close(m);
		int ms[2] = { m2, m3 }, ss[2];
		char names[2][64];
		for (int i = 0; i < 2; i++) {
			CHECK(unlockpt(ms[i]) == 0 && ptsname_r(ms[i], names[i], sizeof names[i]) == 0, "unlockpt");
			ss[i] = open(names[i], O_RDWR | O_NOCTTY);
			CHECK(ss[i] >= 0, "open %s", names[i]);
			struct termios t;
			tcgetattr(ss[i], &t);
			cfmakeraw(&t);
			tcsetattr(ss[i], TCSANOW, &t);
			char in[16], out[16];
			int n = snprintf(in, sizeof in, "in-%d\x03", i), o = snprintf(out, sizeof out, "out-%d\n", i);
			CHECK(write(ms[i], in, (size_t)n) == n && write(ss[i], out, (size_t)o) == o, "write");
		}
		usleep(50000);
		subject_ready(argv[1]);
		while (!got_term) pause();
		for (int i = 0; i < 2; i++) {
			char tn[64], in[16], out[16], b[64];
			CHECK(ptsname_r(ms[i], tn, sizeof tn) == 0 && strcmp(tn, names[i]) == 0, "pair %d: ptsname %s, was %s", i, tn, names[i]);
			CHECK(ttyname_r(ss[i], tn, sizeof tn) == 0 && strcmp(tn, names[i]) == 0, "pair %d: ttyname %s, was %s", i, tn, names[i]);
			int n = snprintf(in, sizeof in, "in-%d\x03", i), o = snprintf(out, sizeof out, "out-%d\n", i);
			read_exact(ms[i], out, (size_t)o, 0, "output queue");
			fcntl(ss[i], F_SETFL, O_NONBLOCK);
			ssize_t r = read(ss[i], b, sizeof b);
			CHECK(r == n && memcmp(b, in, (size_t)n) == 0, "pair %d: input %zd bytes", i, r);
			CHECK(read(ss[i], b, sizeof b) < 0 && errno == EAGAIN, "pair %d: more input", i);
		}
		subject_pass();
	}
	if (is("big") || is("bigcbreak")) {
		static char big[12000], got[30000];
		for (size_t i = 0; i < sizeof big; i++) big[i] = (char)('a' + i % 26);
		ps = open(name, O_RDWR | O_NOCTTY | O_NONBLOCK);
		CHECK(ps >= 0, "open %s", name);
		struct termios t;
		tcgetattr(ps, &t);
		cfmakeraw(&t);
		if (is("bigcbreak")) t.c_lflag |= ISIG;
		tcsetattr(ps, TCSANOW, &t);
		fcntl(m, F_SETFL, O_NONBLOCK);
		size_t w = 0;
		for (int tries = 0; w < sizeof big && tries < 500; tries++) {
			ssize_t r = write(m, big + w, sizeof big - w);
			if (r > 0) w += (size_t)r; else usleep(10000);
		}
		CHECK(w == sizeof big, "write input: %zu of %zu bytes", w, sizeof big);
		fcntl(m, F_SETFL, 0);
		usleep(100000);
		subject_ready(argv[1]);
		while (!got_term) pause();
		size_t n = 0;
		for (int idle = 0; idle < 20 && n < sizeof got;) {
			ssize_t r = read(ps, got + n, sizeof got - n);
			if (r > 0) { n += (size_t)r; idle = 0; continue; }
			CHECK(r < 0 && errno == EAGAIN, "read: %zd %s", r, strerror(errno));
			idle++;
			usleep(10000);
		}
		CHECK(n == sizeof big && memcmp(got, big, n) == 0, "the input queue: %zu bytes of %zu", n, sizeof big);
		subject_pass();
	}
	if (is("pktstatus")) {
		ps = open(name, O_RDWR | O_NOCTTY);
		CHECK(ps >= 0, "open %s", name);
		int one = 1;
		CHECK(ioctl(m, TIOCPKT, &one) == 0, "TIOCPKT");
		CHECK(tcflush(ps, TCIFLUSH) == 0, "tcflush");
		struct pollfd p = { .fd = m, .events = POLLPRI };
		CHECK(poll(&p, 1, 100) == 1 && (p.revents & POLLPRI), "no status byte pending");
		subject_ready(argv[1]);
		while (!got_term) pause();
		char b[8];
		ssize_t r = read(m, b, sizeof b);
		CHECK(r == 1 && (b[0] & TIOCPKT_FLUSHREAD), "the status byte: %zd 0x%x", r, r > 0 ? (unsigned char)b[0] : 0);
		subject_pass();
	}
	if (is("stopped")) {
		ps = open(name, O_RDWR | O_NOCTTY | O_NONBLOCK);
		CHECK(ps >= 0, "open %s", name);
		struct termios t;
		tcgetattr(ps, &t);
		t.c_iflag |= IXON;
		tcsetattr(ps, TCSANOW, &t);
		CHECK(write(m, "\x13", 1) == 1, "write ^S");
		usleep(50000);
		CHECK(write(ps, "x", 1) < 0 && errno == EAGAIN, "the output is not stopped");
		subject_ready(argv[1]);
		while (!got_term) pause();
		CHECK(write(ps, "x", 1) < 0 && errno == EAGAIN, "the output is no longer stopped");
		CHECK(write(m, "\x11", 1) == 1, "write ^Q");
		usleep(50000);
		CHECK(write(ps, "y", 1) == 1, "the output did not start again: %s", strerror(errno));
		read_exact(m, "y", 1, 0, "output");
		subject_pass();
	}
	if (is("closed")) {
		ps = open(name, O_RDWR | O_NOCTTY);
		CHECK(ps >= 0, "open %s", name);
		CHECK(write(ps, "bye\n", 4) == 4, "write output");
		close(ps);
		usleep(50000);
		struct pollfd p = { .fd = m, .events = POLLIN };
		CHECK(poll(&p, 1, 0) == 1 && (p.revents & POLLHUP), "no POLLHUP before the dump");
		subject_ready(argv[1]);
		while (!got_term) pause();
		read_exact(m, "bye\r\n", 5, 0, "output queue");
		char b[16];
		CHECK(read(m, b, sizeof b) < 0 && errno == EIO, "the master reads %s, not EIO", strerror(errno));
		CHECK(poll(&p, 1, 0) == 1 && (p.revents & POLLHUP), "the master does not poll POLLHUP");
		ps = open(name, O_RDWR | O_NOCTTY);
		CHECK(ps >= 0, "reopen %s: %s", name, strerror(errno));
		CHECK(write(m, "x\n", 2) == 2, "write");
		usleep(50000);
		CHECK(read(ps, b, sizeof b) == 2, "the reopened slave reads no input");
		subject_pass();
	}
	if (is("single")) {
		ps = open(name, O_RDWR | O_NOCTTY);
		CHECK(ps >= 0, "open %s", name);
		set_mode(ps);
		CHECK(write(m, in, in_n) == (ssize_t)in_n, "write input");
		usleep(100000);
		char junk[4096];
		struct pollfd p = { .fd = m, .events = POLLIN };
		while (poll(&p, 1, 100) == 1) if (read(m, junk, sizeof junk) <= 0) break;
		CHECK(write(ps, "hello\nsecond\n", 13) == 13, "write output");
		usleep(50000);
		CHECK(tcgetattr(m, &t_before) == 0, "tcgetattr");
		subject_ready(argv[1]);
		while (!got_term) pause();
		char tn[64];
		CHECK(ptsname_r(m, tn, sizeof tn) == 0 && strcmp(tn, name) == 0, "ptsname %s, was %s", tn, name);
		CHECK(ttyname_r(ps, tn, sizeof tn) == 0 && strcmp(tn, name) == 0, "ttyname %s, was %s", tn, name);
		struct termios t;
		char why[256];
		CHECK(tcgetattr(ps, &t) == 0 && same_termios(&t_before, &t, why, sizeof why), "termios: %s", why);
		read_exact(m, out, out_n, 0, "output queue");
		char buf[256];
		int fl = fcntl(ps, F_GETFL);
		fcntl(ps, F_SETFL, fl | O_NONBLOCK);
		for (int i = 0; canon_reads[i]; i++) {
			ssize_t r = read(ps, buf, sizeof buf);
			CHECK(r >= 0 && (size_t)r == strlen(canon_reads[i]) && memcmp(buf, canon_reads[i], (size_t)r) == 0, "line %d: %zd '%.*s'", i, r, (int)(r > 0 ? r : 0), buf);
		}
		CHECK(read(ps, buf, sizeof buf) < 0 && errno == EAGAIN, "a partial line is readable");
		CHECK(write(m, "rest\n", 5) == 5, "write rest");
		usleep(50000);
		ssize_t r = read(ps, buf, sizeof buf);
		CHECK(r == 12 && memcmp(buf, "partialrest\n", 12) == 0, "the partial line: %zd '%.*s'", r, (int)(r > 0 ? r : 0), buf);
		CHECK(write(ps, "new\n", 4) == 4, "write new");
		read_exact(m, "rest\r\nnew\r\n", 11, 0, "echo and new output"); /* (the echo of rest\n comes first) */
		subject_pass();
	}

	CHECK(pipe(sync_p) == 0 && pipe(go_p) == 0, "pipe");
	if (is("peer")) {
		ps = ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_NONBLOCK);
		CHECK(ps >= 0, "TIOCGPTPEER: %s", strerror(errno));
	}
	c_pid = fork();
	if (c_pid == 0) { close(sync_p[0]); close(go_p[1]); run_c(); }
	close(sync_p[1]);
	close(go_p[0]);
	char x[3];
	CHECK(read(sync_p[0], &x[0], 1) == 1 && read(sync_p[0], &x[1], 1) == 1 && read(sync_p[0], &x[2], 1) == 1, "sync with C, G and D");
	if (pkt) { int one = 1; CHECK(ioctl(m, TIOCPKT, &one) == 0, "TIOCPKT"); }
	CHECK(write(m, in, in_n) == (ssize_t)in_n, "write input");
	/* Read the echo (and, in packet mode, status bytes) now: after restore, no echo may come again. */
	usleep(150000);
	char junk[4096];
	struct pollfd pp = { .fd = m, .events = POLLIN | POLLPRI };
	while (poll(&pp, 1, 150) == 1) if (read(m, junk, sizeof junk) <= 0) break;
	CHECK(write(go_p[1], "o", 1) == 1, "go");
	close(go_p[1]);
	CHECK(read(sync_p[0], &x[0], 1) == 1 && x[0] == 'o', "C wrote its output");
	close(sync_p[0]);
	usleep(50000);
	if (is("locked")) { int one = 1; CHECK(ioctl(m, TIOCSPTLCK, &one) == 0, "TIOCSPTLCK"); }
	CHECK(tcgetattr(m, &t_before) == 0, "tcgetattr");
	subject_ready(argv[1]);
	while (!got_term) pause();

	/* ---- after restore ---- */
	char tn[64], why[256];
	int n = -1, v = -1;
	CHECK(ptsname_r(m, tn, sizeof tn) == 0 && strcmp(tn, name) == 0, "ptsname %s, was %s", tn, name);
	CHECK(ioctl(m, TIOCGPTN, &n) == 0 && n == atoi(name + 9), "TIOCGPTN %d", n);
	struct termios t;
	CHECK(tcgetattr(m, &t) == 0 && same_termios(&t_before, &t, why, sizeof why), "termios: %s", why);
	struct winsize w;
	CHECK(ioctl(m, TIOCGWINSZ, &w) == 0 && memcmp(&w, &w_before, sizeof w) == 0, "winsize %dx%d %dx%d", w.ws_row, w.ws_col, w.ws_xpixel, w.ws_ypixel);
	CHECK(ioctl(m, TIOCGPKT, &v) == 0 && v == pkt, "packet mode %d", v);
	CHECK(ioctl(m, TIOCGPTLCK, &v) == 0 && v == is("locked"), "lock %d", v);
	CHECK(ioctl(m, TIOCGSID, &v) == 0 && v == c_pid, "the slave's session %d, C is %d", v, (int)c_pid);
	pid_t fg = -1;
	CHECK(ioctl(m, TIOCGPGRP, &fg) == 0 && fg > 0 && fg != c_pid, "the foreground group %d", (int)fg);
	g_pid = fg;
	if (is("locked")) {
		int s = open(name, O_RDWR | O_NOCTTY);
		CHECK(s < 0 && errno == EIO, "opening the locked slave: %d %s", s, strerror(errno));
		CHECK(unlockpt(m) == 0, "unlockpt");
		s = open(name, O_RDWR | O_NOCTTY);
		CHECK(s >= 0, "opening the unlocked slave: %s", strerror(errno));
		close(s);
	}
	if (ps >= 0) {
		CHECK(ttyname_r(ps, tn, sizeof tn) == 0 && strcmp(tn, name) == 0, "P's slave: ttyname %s", tn);
		CHECK(ioctl(ps, TIOCGEXCL, &v) == 0 && v == 1, "P's slave: not exclusive");
		CHECK(fcntl(ps, F_GETFL) & O_NONBLOCK, "P's slave lost O_NONBLOCK");
	}
	read_exact(m, out, out_n, pkt, "output queue");
	char acc[8192];
	kill(c_pid, SIGUSR1);
	char *l = read_until(m, "C-", pkt, acc, sizeof acc);
	CHECK(strcmp(l, "C-OK") == 0, "C: %s", l);
	l = read_until(m, "D-", pkt, acc, sizeof acc);
	CHECK(strcmp(l, "D-OK") == 0, "D: %s", l);
	kill(g_pid, SIGUSR1);
	if (canonical_mode()) {
		l = read_until(m, "G-", pkt, acc, sizeof acc);
		CHECK(strcmp(l, "G-LINES") == 0, "G: %s", l);
		CHECK(write(m, "rest\n", 5) == 5, "write rest");
	}
	l = read_until(m, "G-", pkt, acc, sizeof acc);
	CHECK(strcmp(l, "G-OK") == 0, "G: %s", l);
	struct winsize w2 = { .ws_row = 50, .ws_col = 132 };
	CHECK(ioctl(m, TIOCSWINSZ, &w2) == 0, "resize");
	l = read_until(m, "WINCH", pkt, acc, sizeof acc);
	char want[128];
	snprintf(want, sizeof want, "WINCH 50x132 pgrp %d fg %d", (int)fg, (int)fg);
	CHECK(strcmp(l, want) == 0, "G: '%s', expected '%s'", l, want);
	kill(-fg, SIGKILL);
	kill(-c_pid, SIGKILL); /* (C and D) */
	subject_pass();
}
