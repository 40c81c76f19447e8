/*
 * attrs - process and thread attributes must survive: child subreaper,
 * dumpable, no_new_privs, oom_score_adj, and per thread the scheduling policy,
 * nice value and CPU affinity (the main thread and a second thread differ).
 * pdeathsig is set too: restore -d cannot keep it for the root (its parent,
 * ckpt restore, ends at once), so the subject only checks that it did not
 * get killed by it.
 *
 *   attrs OUTFILE
 */
#include "subject.h"
#include <pthread.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>

static volatile int stop;
static char tfail[200];
static pid_t ttid;

static int nice_of(pid_t tid) { errno = 0; return getpriority(PRIO_PROCESS, tid); }

static void check_thread(const char *who, pid_t tid, int policy, int nice, int cpu)
{
	int p = sched_getscheduler(tid);
	CHECK(p == policy, "%s: policy %d, expected %d", who, p, policy);
	int n = nice_of(tid);
	CHECK(n == nice, "%s: nice %d, expected %d", who, n, nice);
	cpu_set_t set;
	CHECK(sched_getaffinity(tid, sizeof(set), &set) == 0, "%s: sched_getaffinity: %s", who, strerror(errno));
	CHECK(CPU_COUNT(&set) == 1 && CPU_ISSET(cpu, &set), "%s: affinity is not just CPU %d (count %d)", who, cpu, CPU_COUNT(&set));
}

static void *thread_main(void *arg)
{
	(void)arg;
	sigset_t s;
	sigfillset(&s);
	pthread_sigmask(SIG_BLOCK, &s, NULL);
	ttid = (pid_t)syscall(SYS_gettid);
	struct sched_param sp = { 0 };
	if (sched_setscheduler(0, SCHED_IDLE, &sp) != 0)
		snprintf(tfail, sizeof(tfail), "thread: SCHED_IDLE: %s", strerror(errno));
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(0, &set);
	sched_setaffinity(0, sizeof(set), &set);
	while (!stop) {
		struct timespec ts = { 0, 50 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	subject_init(argc, argv, 1, "");
	int ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN);
	int maincpu = ncpu > 1 ? 1 : 0;
	install_term_handler(0);
	CHECK(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0, "PR_SET_CHILD_SUBREAPER: %s", strerror(errno));
	CHECK(prctl(PR_SET_PDEATHSIG, SIGUSR2) == 0, "PR_SET_PDEATHSIG: %s", strerror(errno));
	signal(SIGUSR2, SIG_IGN); /* if it fires anyway, do not die of it */
	CHECK(prctl(PR_SET_DUMPABLE, 0) == 0, "PR_SET_DUMPABLE: %s", strerror(errno));
	CHECK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0, "PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
	FILE *f = fopen("/proc/self/oom_score_adj", "w");
	CHECK(f && fprintf(f, "123\n") > 0 && fclose(f) == 0, "oom_score_adj: %s", strerror(errno));
	struct sched_param sp = { 0 };
	CHECK(sched_setscheduler(0, SCHED_BATCH, &sp) == 0, "SCHED_BATCH: %s", strerror(errno));
	CHECK(setpriority(PRIO_PROCESS, 0, 7) == 0, "setpriority: %s", strerror(errno));
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(maincpu, &set);
	CHECK(sched_setaffinity(0, sizeof(set), &set) == 0, "sched_setaffinity: %s", strerror(errno));
	pthread_t th;
	CHECK(pthread_create(&th, NULL, thread_main, NULL) == 0, "pthread_create");
	while (!ttid) usleep(1000);
	usleep(20000);
	int tnice = nice_of(ttid); /* the thread inherited nice 7 */

	subject_ready(NULL);
	while (!got_term) {
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	CHECK(!tfail[0], "%s", tfail);
	int v = -1;
	CHECK(prctl(PR_GET_CHILD_SUBREAPER, &v) == 0 && v == 1, "child subreaper is %d", v);
	CHECK(prctl(PR_GET_DUMPABLE) == 0, "dumpable is %d", prctl(PR_GET_DUMPABLE));
	CHECK(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1, "no_new_privs is not set");
	f = fopen("/proc/self/oom_score_adj", "r");
	CHECK(f && fscanf(f, "%d", &v) == 1 && v == 123, "oom_score_adj is %d", v);
	check_thread("main thread", 0, SCHED_BATCH, 7, maincpu);
	check_thread("second thread", ttid, SCHED_IDLE, tnice, 0);
	stop = 1;
	pthread_join(th, NULL);
	subject_pass();
}
