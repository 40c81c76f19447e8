/*
 * identity - per-process identity and kernel bookkeeping must survive.
 *
 *   identity OUTFILE
 *
 * Before READY it changes: comm (PR_SET_NAME "ckpt-ident"), cwd (into the
 * new subdirectory identdir), umask 027, soft rlimits (NOFILE 1000, STACK
 * 6 MiB, CORE 0), personality |= ADDR_NO_RANDOMIZE, supplementary groups
 * {10,20,30}, resgid 0,0,0, capabilities (CAP_NET_RAW and CAP_SYS_TIME
 * dropped from effective+permitted, CAP_MKNOD from the bounding set), timer
 * slack 50 us.
 * Then it snapshots: /proc/self/cmdline, environ, comm, auxv (bytes),
 * status lines (Name Umask Uid Gid Groups Cap* NoNewPrivs Seccomp),
 * /proc/self/stat fields 26-28 and 45-51 (code/data/brk/stack/arg/env
 * bounds, i.e. what PR_SET_MM_MAP restores), the exe/cwd/root links,
 * personality, every rlimit, getresuid/getresgid, PR_GET_DUMPABLE/
 * NO_NEW_PRIVS/TIMERSLACK, sbrk(0), the vDSO address (AT_SYSINFO_EHDR) and
 * the [vdso]/[vvar*] lines of /proc/self/maps, and the rseq registration
 * (re-registering glibc's rseq area with the same arguments must give EBUSY,
 * i.e. "already registered like this").
 * After restore it compares all of them and checks that clock_gettime via the
 * vDSO works, agrees with the real syscall and moves forward.
 */
#include "subject.h"
#include <grp.h>
#include <linux/capability.h>
#include <sys/auxv.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/rseq.h>
#include <sys/syscall.h>

#define RSEQ_SIG_X86 0x53053053

struct ident {
	char cmdline[8192];
	size_t cmdline_len;
	char environ_[65536];
	size_t environ_len;
	unsigned char auxv[4096];
	size_t auxv_len;
	char comm[64];
	char status[4096];
	char stat_fields[1024];
	char exe[4096], cwd[4096], root[4096];
	char vlines[2048];
	int persona;
	struct rlimit rl[RLIM_NLIMITS];
	uid_t ruid, euid, suid;
	gid_t rgid, egid, sgid;
	int dumpable, nnp, timerslack;
	void *brk;
	unsigned long vdso;
	long rseq_ret;
	int rseq_errno;
};

static struct ident before, after;
static char scratch[1 << 20];

static const char *const status_keys[] = {
	"Name", "Umask", "Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff",
	"CapBnd", "CapAmb", "NoNewPrivs", "Seccomp", NULL,
};

static void snap_link(const char *path, char *out, size_t n)
{
	ssize_t r = readlink(path, out, n - 1);

	if (r < 0)
		subject_fail("readlink %s: %s", path, strerror(errno));
	out[r] = 0;
}

/* fields 26-28 and 45-51 of /proc/self/stat (1-based, as in proc(5)) */
static void snap_stat_fields(char *out, size_t n)
{
	char *p, *tok, *save = NULL;
	size_t o = 0;
	int field = 3;

	snap_file("/proc/self/stat", scratch, sizeof(scratch));
	p = strrchr(scratch, ')');
	CHECK(p, "cannot parse /proc/self/stat");
	for (tok = strtok_r(p + 2, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save), field++) {
		if ((field >= 26 && field <= 28) || (field >= 45 && field <= 51))
			o += (size_t)snprintf(out + o, n - o, "%d=%s ", field, tok);
	}
	CHECK(field > 51, "/proc/self/stat has only %d fields", field - 1);
}

/* [vdso], [vvar], [vvar_vclock], [vsyscall] lines of /proc/self/maps */
static void snap_vlines(char *out, size_t n)
{
	const char *p = scratch;
	size_t o = 0;

	snap_file("/proc/self/maps", scratch, sizeof(scratch));
	while (*p) {
		char line[512];

		p = copy_line(p, line, sizeof(line));
		if (strstr(line, "[vdso]") || strstr(line, "[vvar") || strstr(line, "[vsyscall]"))
			o += (size_t)snprintf(out + o, n - o, "%s\n", line);
	}
}

static void snap_rseq(long *ret, int *err)
{
	unsigned int len = __rseq_size < 32 ? 32 : __rseq_size;

	if (__rseq_size == 0) { /* glibc did not register rseq (tunable) */
		*ret = -2;
		*err = 0;
		return;
	}
	errno = 0;
	*ret = syscall(SYS_rseq, (char *)__builtin_thread_pointer() + __rseq_offset, len, 0, RSEQ_SIG_X86);
	*err = errno;
}

static void snapshot(struct ident *s)
{
	int r;

	s->cmdline_len = snap_file("/proc/self/cmdline", s->cmdline, sizeof(s->cmdline));
	s->environ_len = snap_file("/proc/self/environ", s->environ_, sizeof(s->environ_));
	s->auxv_len = snap_file("/proc/self/auxv", (char *)s->auxv, sizeof(s->auxv));
	snap_file("/proc/self/comm", s->comm, sizeof(s->comm));
	snap_file("/proc/self/status", scratch, sizeof(scratch));
	status_subset(scratch, status_keys, s->status, sizeof(s->status));
	snap_stat_fields(s->stat_fields, sizeof(s->stat_fields));
	snap_link("/proc/self/exe", s->exe, sizeof(s->exe));
	snap_link("/proc/self/cwd", s->cwd, sizeof(s->cwd));
	snap_link("/proc/self/root", s->root, sizeof(s->root));
	snap_vlines(s->vlines, sizeof(s->vlines));
	s->persona = personality(0xffffffff);
	for (r = 0; r < RLIM_NLIMITS; r++)
		CHECK(getrlimit(r, &s->rl[r]) == 0, "getrlimit %d: %s", r, strerror(errno));
	getresuid(&s->ruid, &s->euid, &s->suid);
	getresgid(&s->rgid, &s->egid, &s->sgid);
	s->dumpable = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
	s->nnp = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
	s->timerslack = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
	s->brk = sbrk(0);
	s->vdso = getauxval(AT_SYSINFO_EHDR);
	snap_rseq(&s->rseq_ret, &s->rseq_errno);
}

static void compare_bytes(const char *what, const void *a, size_t alen, const void *b, size_t blen)
{
	size_t i;

	if (alen != blen)
		subject_fail("%s: length %zu, was %zu", what, blen, alen);
	for (i = 0; i < alen; i++)
		if (((const unsigned char *)a)[i] != ((const unsigned char *)b)[i])
			subject_fail("%s: byte %zu is 0x%02x, was 0x%02x", what, i,
				     ((const unsigned char *)b)[i], ((const unsigned char *)a)[i]);
}

static void setup(void)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct cap[2];
	static const gid_t groups[] = { 10, 20, 30 };
	struct rlimit rl;
	void *p;

	CHECK(prctl(PR_SET_NAME, "ckpt-ident", 0, 0, 0) == 0, "PR_SET_NAME: %s", strerror(errno));
	if (mkdir("identdir", 0755) != 0 && errno != EEXIST)
		subject_fail("mkdir identdir: %s", strerror(errno));
	CHECK(chdir("identdir") == 0, "chdir identdir: %s", strerror(errno));
	umask(027);

	CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0, "getrlimit");
	rl.rlim_cur = 1000;
	CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0, "setrlimit NOFILE: %s", strerror(errno));
	CHECK(getrlimit(RLIMIT_STACK, &rl) == 0, "getrlimit");
	rl.rlim_cur = 6 << 20;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < rl.rlim_cur)
		rl.rlim_cur = rl.rlim_max;
	CHECK(setrlimit(RLIMIT_STACK, &rl) == 0, "setrlimit STACK: %s", strerror(errno));
	CHECK(getrlimit(RLIMIT_CORE, &rl) == 0, "getrlimit");
	rl.rlim_cur = 0;
	CHECK(setrlimit(RLIMIT_CORE, &rl) == 0, "setrlimit CORE: %s", strerror(errno));

	CHECK(personality(personality(0xffffffff) | ADDR_NO_RANDOMIZE) != -1, "personality: %s", strerror(errno));
	CHECK(setgroups(3, groups) == 0, "setgroups: %s", strerror(errno));
	CHECK(setresgid(0, 0, 0) == 0, "setresgid: %s", strerror(errno));
	CHECK(prctl(PR_SET_TIMERSLACK, 50000, 0, 0, 0) == 0, "PR_SET_TIMERSLACK: %s", strerror(errno));

	CHECK(prctl(PR_CAPBSET_DROP, CAP_MKNOD, 0, 0, 0) == 0, "PR_CAPBSET_DROP: %s", strerror(errno));
	CHECK(syscall(SYS_capget, &hdr, cap) == 0, "capget: %s", strerror(errno));
	cap[CAP_NET_RAW / 32].effective &= ~(1u << (CAP_NET_RAW % 32));
	cap[CAP_NET_RAW / 32].permitted &= ~(1u << (CAP_NET_RAW % 32));
	cap[CAP_SYS_TIME / 32].effective &= ~(1u << (CAP_SYS_TIME % 32));
	cap[CAP_SYS_TIME / 32].permitted &= ~(1u << (CAP_SYS_TIME % 32));
	CHECK(syscall(SYS_capset, &hdr, cap) == 0, "capset: %s", strerror(errno));

	/* initialise malloc's arena now, so nothing later moves brk */
	p = malloc(64);
	free(p);
}

static int64_t ts_ns(const struct timespec *t)
{
	return (int64_t)t->tv_sec * 1000000000ll + t->tv_nsec;
}

int main(int argc, char **argv)
{
	struct timespec s1, v1, s2, v2, d = { 0, 1000000 };
	int r;

	subject_init(argc, argv, 1, "");
	install_term_handler(0);
	setup();
	snapshot(&before);
	if (before.rseq_ret != -2)
		CHECK(before.rseq_ret == -1 && before.rseq_errno == EBUSY,
		      "before checkpoint: rseq re-registration returned %ld errno %d, expected EBUSY",
		      before.rseq_ret, before.rseq_errno);
	subject_info("identity: rseq %s\n", before.rseq_ret == -2 ? "not registered by glibc" : "registered");

	subject_ready(NULL);
	while (!got_term)
		pause();

	snapshot(&after);
	compare_bytes("/proc/self/cmdline", before.cmdline, before.cmdline_len, after.cmdline, after.cmdline_len);
	compare_bytes("/proc/self/environ", before.environ_, before.environ_len, after.environ_, after.environ_len);
	compare_bytes("/proc/self/auxv", before.auxv, before.auxv_len, after.auxv, after.auxv_len);
	compare_text("/proc/self/comm", before.comm, after.comm);
	compare_text("/proc/self/status", before.status, after.status);
	compare_text("/proc/self/stat fields", before.stat_fields, after.stat_fields);
	compare_text("/proc/self/exe", before.exe, after.exe);
	compare_text("/proc/self/cwd", before.cwd, after.cwd);
	compare_text("/proc/self/root", before.root, after.root);
	compare_text("vDSO maps lines", before.vlines, after.vlines);
	CHECK(after.vdso == before.vdso, "AT_SYSINFO_EHDR is %#lx, was %#lx", after.vdso, before.vdso);
	CHECK(after.persona == before.persona, "personality is %#x, was %#x", after.persona, before.persona);
	for (r = 0; r < RLIM_NLIMITS; r++)
		CHECK(after.rl[r].rlim_cur == before.rl[r].rlim_cur && after.rl[r].rlim_max == before.rl[r].rlim_max,
		      "rlimit %d is %llu/%llu, was %llu/%llu", r,
		      (unsigned long long)after.rl[r].rlim_cur, (unsigned long long)after.rl[r].rlim_max,
		      (unsigned long long)before.rl[r].rlim_cur, (unsigned long long)before.rl[r].rlim_max);
	CHECK(after.ruid == before.ruid && after.euid == before.euid && after.suid == before.suid,
	      "resuid is %d/%d/%d, was %d/%d/%d", after.ruid, after.euid, after.suid,
	      before.ruid, before.euid, before.suid);
	CHECK(after.rgid == before.rgid && after.egid == before.egid && after.sgid == before.sgid,
	      "resgid is %d/%d/%d, was %d/%d/%d", after.rgid, after.egid, after.sgid,
	      before.rgid, before.egid, before.sgid);
	CHECK(after.dumpable == before.dumpable, "PR_GET_DUMPABLE is %d, was %d", after.dumpable, before.dumpable);
	CHECK(after.nnp == before.nnp, "PR_GET_NO_NEW_PRIVS is %d, was %d", after.nnp, before.nnp);
	CHECK(after.timerslack == before.timerslack, "timer slack is %d ns, was %d ns",
	      after.timerslack, before.timerslack);
	CHECK(after.brk == before.brk, "sbrk(0) is %p, was %p", after.brk, before.brk);
	CHECK(after.rseq_ret == before.rseq_ret && after.rseq_errno == before.rseq_errno,
	      "rseq re-registration returned %ld errno %d (%s), before checkpoint %ld errno %d: rseq area not registered as before",
	      after.rseq_ret, after.rseq_errno, strerror(after.rseq_errno), before.rseq_ret, before.rseq_errno);

	/* vDSO clock: callable, consistent with the syscall, moving forward */
	CHECK(syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &s1) == 0, "clock_gettime syscall: %s", strerror(errno));
	CHECK(clock_gettime(CLOCK_MONOTONIC, &v1) == 0, "clock_gettime: %s", strerror(errno));
	CHECK(syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &s2) == 0, "clock_gettime syscall: %s", strerror(errno));
	CHECK(ts_ns(&s1) <= ts_ns(&v1) && ts_ns(&v1) <= ts_ns(&s2),
	      "vDSO CLOCK_MONOTONIC %lld is outside the syscall's [%lld, %lld]",
	      (long long)ts_ns(&v1), (long long)ts_ns(&s1), (long long)ts_ns(&s2));
	nanosleep(&d, NULL);
	CHECK(clock_gettime(CLOCK_MONOTONIC, &v2) == 0, "clock_gettime: %s", strerror(errno));
	CHECK(ts_ns(&v2) > ts_ns(&v1), "vDSO CLOCK_MONOTONIC does not move: %lld then %lld",
	      (long long)ts_ns(&v1), (long long)ts_ns(&v2));
	subject_pass();
}
