/* test_seed.c: runs the seed program (examples/seed.c) for many seeds and
 * checks what Go's version guarantees about its output.
 *
 * How it finds the program: it does not. examples/seed.c is compiled into
 * this test (its main renamed seed_main), and the test re-executes its own
 * binary (/proc/self/exe) with GOCTX_TEST_SEED_CHILD=1, which makes main run
 * seed_main instead of the tests. So each run is a fresh process (the seed
 * program's globals and threads start anew; a sanitizer build checks the
 * child's exit and leaks too, failing its exit status), and no path to a
 * separately built binary is needed.
 *
 * What is checked is only what the Go program's synchronisation guarantees
 * (a line that happens-before another is printed before it), never which
 * path a run takes: that depends on timing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#define main seed_main
#include "../../examples/seed.c"
#undef main

#include <cmocka.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>

extern char **environ;

#define RUNS 30
#define BATCH 6
#define MAX_LINES 32

struct run {
	char arg[32];
	pid_t pid;
	int fd;
	char out[4096];
	size_t len;
	int status;
};

static void start(struct run *r, const char *seed)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, p[1], STDOUT_FILENO);
	posix_spawn_file_actions_addclose(&fa, p[0]);
	posix_spawn_file_actions_addclose(&fa, p[1]);
	char *argv[] = {"seed", "-s", (char *)seed, NULL};
	char *argv0[] = {"seed", NULL};
	if (seed)
		snprintf(r->arg, sizeof(r->arg), "%s", seed);
	else
		snprintf(r->arg, sizeof(r->arg), "(clock)");
	assert_int_equal(posix_spawn(&r->pid, "/proc/self/exe", &fa, NULL, seed ? argv : argv0,
	                             environ),
	                 0);
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	r->fd = p[0];
	r->len = 0;
}

static void finish(struct run *r)
{
	for (;;) {
		ssize_t n = read(r->fd, r->out + r->len, sizeof(r->out) - 1 - r->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		r->len += (size_t)n;
	}
	r->out[r->len] = '\0';
	close(r->fd);
	while (waitpid(r->pid, &r->status, 0) < 0 && errno == EINTR) {
	}
}

/* ---- The invariants. ------------------------------------------------- */

struct lines {
	char *l[MAX_LINES];
	int n;
};

static int find(const struct lines *ls, const char *s)
{
	for (int i = 0; i < ls->n; i++)
		if (strcmp(ls->l[i], s) == 0)
			return i;
	return -1;
}

/* Index of the line starting with prefix, and the number after it. */
static int find_num(const struct lines *ls, const char *prefix, const char *suffix, int *num)
{
	size_t pl = strlen(prefix);
	for (int i = 0; i < ls->n; i++) {
		if (strncmp(ls->l[i], prefix, pl) != 0)
			continue;
		char *end;
		long v = strtol(ls->l[i] + pl, &end, 10);
		if (end == ls->l[i] + pl || strcmp(end, suffix) != 0)
			continue;
		*num = (int)v;
		return i;
	}
	return -1;
}

#define CHECK(cond)                                                                      \
	do {                                                                             \
		if (!(cond)) {                                                           \
			print_error("seed %s: check failed: %s\noutput:\n%s\n", r->arg, #cond, \
			            copy);                                               \
			fail();                                                          \
		}                                                                        \
	} while (0)

static void check_output(struct run *r, bool fixed, uint64_t seed)
{
	char copy[sizeof(r->out)];
	memcpy(copy, r->out, r->len + 1);
	CHECK(WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0);
	CHECK(r->len > 0 && r->out[r->len - 1] == '\n');

	struct lines ls = {.n = 0};
	for (char *save, *t = strtok_r(r->out, "\n", &save); t; t = strtok_r(NULL, "\n", &save)) {
		CHECK(ls.n < MAX_LINES);
		ls.l[ls.n++] = t;
	}
	/* Every line is one of the program's, and none comes twice. */
	static const char *const fixed_lines[] = {
		"Main sleepRandom complete",       "sleepRandomContext sleepRandom complete",
		"sleepRandomContext complete",     "sleepRandomContext: Time to return",
		"doWorkContext complete",          "doWorkContext: Time to return",
		"sleepRandomContext returned",     "Main Defer: canceling context",
		"Main Sleep complete. canceling context",
	};
	static const char *const num_prefix[] = {
		"Main Starting sleep for ", "sleepRandomContext Starting sleep for ",
		"Main Waking up, slept for  ", "sleepRandomContext Waking up, slept for  ",
		"Slept for  ",
	};
	for (int i = 0; i < ls.n; i++) {
		bool known = false;
		for (size_t k = 0; k < sizeof(fixed_lines) / sizeof(*fixed_lines); k++)
			known |= strcmp(ls.l[i], fixed_lines[k]) == 0;
		for (size_t k = 0; k < sizeof(num_prefix) / sizeof(*num_prefix); k++) {
			size_t pl = strlen(num_prefix[k]);
			if (strncmp(ls.l[i], num_prefix[k], pl) == 0) {
				char *end;
				long v = strtol(ls.l[i] + pl, &end, 10);
				known |= end != ls.l[i] + pl && strcmp(end, " ms") == 0 && v >= 100 &&
				         v <= 199;
			}
		}
		CHECK(known);
		for (int j = 0; j < i; j++)
			CHECK(strcmp(ls.l[i], ls.l[j]) != 0);
	}

	/* main: doWorkContext returns after exactly one of its select's
	 * cases, then its defer, then main's defer. */
	int main_defer = find(&ls, "Main Defer: canceling context");
	int dw_complete = find(&ls, "doWorkContext complete");
	int dw_ret = find(&ls, "doWorkContext: Time to return");
	int src_returned = find(&ls, "sleepRandomContext returned");
	CHECK(main_defer >= 0);
	CHECK(dw_complete >= 0 && dw_complete < main_defer);
	CHECK((dw_ret >= 0) != (src_returned >= 0));
	CHECK(dw_ret < dw_complete && src_returned < dw_complete);

	/* sleepRandomContext: one select case, then its defer, then the send
	 * that doWorkContext received. */
	int src_complete = find(&ls, "sleepRandomContext complete");
	int src_ret = find(&ls, "sleepRandomContext: Time to return");
	int s_slept, src_slept = find_num(&ls, "Slept for  ", " ms", &s_slept);
	CHECK(!(src_ret >= 0 && src_slept >= 0));
	if (src_complete >= 0)
		CHECK((src_ret >= 0 && src_ret < src_complete) ||
		      (src_slept >= 0 && src_slept < src_complete));
	if (src_returned >= 0)
		CHECK(src_complete >= 0 && src_complete < src_returned);

	/* Each sleepRandom: start, wake (same number), complete. */
	const char *who[] = {"Main", "sleepRandomContext"};
	int wake_at[2], wake_ms[2] = {0, 0};
	for (int k = 0; k < 2; k++) {
		char p1[64], p2[64], p3[64];
		snprintf(p1, sizeof(p1), "%s Starting sleep for ", who[k]);
		snprintf(p2, sizeof(p2), "%s Waking up, slept for  ", who[k]);
		snprintf(p3, sizeof(p3), "%s sleepRandom complete", who[k]);
		int ms1 = 0, ms2 = 0;
		int start_at = find_num(&ls, p1, " ms", &ms1);
		wake_at[k] = find_num(&ls, p2, " ms", &ms2);
		int done_at = find(&ls, p3);
		if (wake_at[k] >= 0) {
			CHECK(start_at >= 0 && start_at < wake_at[k] && ms1 == ms2);
			wake_ms[k] = ms2;
		}
		if (done_at >= 0)
			CHECK(wake_at[k] >= 0 && wake_at[k] < done_at);
		if (fixed && start_at >= 0) { /* repeatable: the number is the seed's */
			fixed_seed = true;
			seed_value = seed;
			int expect = 100 + random_intn(who[k], 100);
			CHECK(ms1 == expect);
		}
	}
	/* The value received is the one sleepRandom sent, after it woke. */
	if (src_slept >= 0)
		CHECK(wake_at[1] >= 0 && wake_at[1] < src_slept && wake_ms[1] == s_slept);
	/* Only the Main goroutine cancels main's context before main's defer,
	 * after its sleep. */
	if (dw_ret >= 0)
		CHECK(wake_at[0] >= 0 && wake_at[0] < dw_ret);
	int main_sleep = find(&ls, "Main Sleep complete. canceling context");
	if (main_sleep >= 0)
		CHECK(find(&ls, "Main sleepRandom complete") >= 0 &&
		      find(&ls, "Main sleepRandom complete") < main_sleep);
}

static void test_seed_runs(void **state)
{
	(void)state;
	setenv("GOCTX_TEST_SEED_CHILD", "1", 1);
	unsetenv("GOCTX_SEED");
	static struct run runs[RUNS + 1];
	for (int base = 0; base <= RUNS; base += BATCH) {
		int end = base + BATCH > RUNS + 1 ? RUNS + 1 : base + BATCH;
		for (int i = base; i < end; i++) {
			char seed[16];
			snprintf(seed, sizeof(seed), "%d", i + 1);
			/* The last run uses the clock, as the default does. */
			start(&runs[i], i < RUNS ? seed : NULL);
		}
		for (int i = base; i < end; i++) {
			finish(&runs[i]);
			check_output(&runs[i], i < RUNS, (uint64_t)i + 1);
		}
	}
}

static void test_seed_usage(void **state)
{
	(void)state;
	setenv("GOCTX_TEST_SEED_CHILD", "1", 1);
	char *argv[] = {"seed", "-x", NULL};
	pid_t pid;
	assert_int_equal(posix_spawn(&pid, "/proc/self/exe", NULL, NULL, argv, environ), 0);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 2);
}

int main(int argc, char **argv)
{
	if (getenv("GOCTX_TEST_SEED_CHILD"))
		return seed_main(argc, argv);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_seed_runs),
		cmocka_unit_test(test_seed_usage),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
