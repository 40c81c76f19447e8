/*
 * chroot - a changed root directory must come back, for a parent and its
 * child, with the cwd and open files inside it.
 *
 *   chroot OUTFILE [cwdout]
 *
 * In the cwd: jail/sub/data.txt. The parent opens it and reads 5 bytes
 * (offset 5), chroot("jail"), chdir("/sub") and forks a child that opens
 * /sub/data.txt itself and reads 3 bytes (it also holds the parent's fd).
 * The child does not exec. On SIGTERM both check: the raw getcwd (syscall)
 * is "/sub", "/" is the jail (same dev/inode as jail was before the chroot),
 * stat("/sub/data.txt") matches fstat of the fds, the offsets are unchanged,
 * a fresh open of /sub/data.txt reads the file. The parent collects the
 * child's result (exit code, reason in a shared page).
 * cwdout: chroot("jail") but no chdir: the cwd stays outside the root
 * (getcwd says "(unreachable)..."); getcwd and stat(".") must be unchanged.
 * OUTFILE is hard-linked into the jail as /.out so the verdict can be written.
 */
#include "subject.h"
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>

static const char DATA[] = "0123456789abcdefghij";
static int cwdout;
static struct stat jail;
static char *cwhy;

struct view { char cwd[4096]; struct stat dot; };

static void look(struct view *v)
{
	long n = syscall(SYS_getcwd, v->cwd, sizeof(v->cwd));
	if (n < 0) snprintf(v->cwd, sizeof(v->cwd), "<getcwd: %s>", strerror(errno));
	if (stat(".", &v->dot) != 0) memset(&v->dot, 0, sizeof(v->dot));
}

static int same(const struct stat *a, const struct stat *b) { return a->st_dev == b->st_dev && a->st_ino == b->st_ino; }

/* Check the state after restore; returns NULL or a reason. */
static const char *check(const struct view *before, int fd1, off_t off1, int fd2, off_t off2)
{
	static char why[8400];
	struct view now;
	struct stat root, file, f;
	look(&now);
	if (strcmp(now.cwd, before->cwd) != 0) return snprintf(why, sizeof(why), "getcwd: before '%s' after '%s'", before->cwd, now.cwd), why;
	if (!cwdout && strcmp(now.cwd, "/sub") != 0) return snprintf(why, sizeof(why), "getcwd is '%s', expected /sub", now.cwd), why;
	if (!same(&now.dot, &before->dot)) return "stat(\".\") is another directory than before";
	if (stat("/", &root) != 0 || !same(&root, &jail)) return "\"/\" is not the jail";
	if (stat("/sub/data.txt", &file) != 0) return snprintf(why, sizeof(why), "stat /sub/data.txt: %s", strerror(errno)), why;
	int fds[2] = { fd1, fd2 };
	off_t offs[2] = { off1, off2 };
	for (int i = 0; i < 2 && fds[i] >= 0; i++) {
		if (fstat(fds[i], &f) != 0 || !same(&f, &file)) return snprintf(why, sizeof(why), "fd %d is not /sub/data.txt", fds[i]), why;
		off_t o = lseek(fds[i], 0, SEEK_CUR);
		if (o != offs[i]) return snprintf(why, sizeof(why), "fd %d: offset %lld, expected %lld", fds[i], (long long)o, (long long)offs[i]), why;
	}
	char buf[64] = "";
	int nfd = open("/sub/data.txt", O_RDONLY | O_CLOEXEC);
	if (nfd < 0) return snprintf(why, sizeof(why), "open /sub/data.txt: %s", strerror(errno)), why;
	ssize_t r = read(nfd, buf, sizeof(buf) - 1);
	close(nfd);
	if (r != (ssize_t)strlen(DATA) || memcmp(buf, DATA, strlen(DATA)) != 0) return "a fresh open of /sub/data.txt reads something else";
	return NULL;
}

int main(int argc, char **argv)
{
	subject_init(argc, argv, 1, "[cwdout]");
	cwdout = argc > 2 && strcmp(argv[2], "cwdout") == 0;
	install_term_handler(0);
	cwhy = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(cwhy != MAP_FAILED, "mmap: %s", strerror(errno));
	CHECK((mkdir("jail", 0755) == 0 || errno == EEXIST) && (mkdir("jail/sub", 0755) == 0 || errno == EEXIST), "mkdir: %s", strerror(errno));
	int fd = open("jail/sub/data.txt", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	CHECK(fd >= 0 && write(fd, DATA, strlen(DATA)) == (ssize_t)strlen(DATA), "write data.txt: %s", strerror(errno));
	CHECK(lseek(fd, 0, SEEK_SET) == 0, "lseek");
	char buf[8];
	CHECK(read(fd, buf, 5) == 5, "read: %s", strerror(errno));
	int ofd = open(subject_outfile, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	CHECK(ofd >= 0, "create OUTFILE: %s", strerror(errno));
	close(ofd);
	unlink("jail/.out");
	CHECK(link(subject_outfile, "jail/.out") == 0, "link OUTFILE into the jail: %s", strerror(errno));
	CHECK(stat("jail", &jail) == 0, "stat jail: %s", strerror(errno));
	CHECK(chroot("jail") == 0, "chroot: %s", strerror(errno));
	subject_outfile = "/.out";
	if (!cwdout) CHECK(chdir("/sub") == 0, "chdir /sub: %s", strerror(errno));
	struct view before;
	look(&before);
	CHECK(cwdout ? strncmp(before.cwd, "(unreachable)", 13) == 0 : strcmp(before.cwd, "/sub") == 0, "getcwd is '%s' before the checkpoint", before.cwd);
	pid_t parent = getpid(), c = fork();
	CHECK(c >= 0, "fork: %s", strerror(errno));
	if (c == 0) {
		int cfd = open("/sub/data.txt", O_RDONLY | O_CLOEXEC);
		if (cfd < 0 || read(cfd, buf, 3) != 3) { snprintf(cwhy, 4096, "child: open/read /sub/data.txt: %s", strerror(errno)); _exit(1); }
		const char *w = check(&before, fd, 5, cfd, 3);
		if (w) { snprintf(cwhy, 4096, "child, before the checkpoint: %s", w); _exit(1); }
		cwhy[0] = 'R';
		while (!got_term) {
			if (getppid() != parent) _exit(2); /* the parent is gone (it failed) */
			struct timespec ts = { 0, 50 * 1000 * 1000 };
			nanosleep(&ts, NULL);
		}
		w = check(&before, fd, 5, cfd, 3);
		if (w) { snprintf(cwhy, 4096, "child: %s", w); _exit(1); }
		_exit(0);
	}
	const char *w = check(&before, fd, 5, -1, 0);
	CHECK(!w, "before the checkpoint: %s", w);
	int st = 0;
	while (cwhy[0] != 'R' && waitpid(c, &st, WNOHANG) == 0) usleep(1000);
	CHECK(cwhy[0] == 'R', "%s (status %#x)", cwhy, st);
	cwhy[0] = 0;
	subject_ready(NULL);
	while (!got_term) {
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	w = check(&before, fd, 5, -1, 0);
	CHECK(!w, "parent: %s", w);
	kill(c, SIGTERM);
	CHECK(waitpid(c, &st, 0) == c, "waitpid: %s", strerror(errno));
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s (child status %#x)", cwhy[0] ? cwhy : "child failed", st);
	subject_pass();
}
