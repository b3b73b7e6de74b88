/* test_leak.c: the opt-in GOCTX_LEAKS report lists what is still alive at
 * exit. Each case runs in a forked child, so the mode (read once, before
 * the first context) is the child's own. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "goctx.h"
#include "ctx/testing.h"

static int key;
/* Leaked on purpose; kept reachable so LeakSanitizer does not object. */
static void *kept[4];

/* Runs body in a child with GOCTX_LEAKS set to mode (NULL: unset); returns
 * what the child wrote to stderr. */
static char *run_child(const char *mode, void (*body)(void))
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		dup2(p[1], 2);
		if (mode)
			setenv("GOCTX_LEAKS", mode, 1);
		else
			unsetenv("GOCTX_LEAKS");
		body();
		exit(0); /* runs the atexit report */
	}
	close(p[1]);
	static char out[8192];
	size_t n = 0;
	ssize_t r;
	while ((r = read(p[0], out + n, sizeof out - 1 - n)) > 0)
		n += (size_t)r;
	out[n] = 0;
	close(p[0]);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	return out;
}

static void leak_two(void)
{
	ctx_t *c = ctx_with_cancel(ctx_background(), NULL);
	ctx_t *v = ctx_with_value(c, &key, NULL, NULL);
	ctx_release(c); /* v still holds c: both are alive */
	kept[0] = v;
	ctx_t *freed = ctx_with_timeout(ctx_background(), CTX_SECOND, NULL);
	ctx_release(freed);
}

static void leak_after(void)
{
	ctx_cancel_t *cancel;
	ctx_t *c = ctx_with_cancel(ctx_background(), &cancel);
	ctx_after_t *stop;
	assert_int_equal(ctx_after_func(c, (void (*)(void *))abort, NULL, &stop), 0);
	ctx_release(c); /* the handle and the registration keep it */
	kept[0] = cancel;
	kept[1] = stop;
}

static void no_leak(void)
{
	ctx_cancel_t *cancel;
	ctx_t *c = ctx_with_timeout(ctx_background(), CTX_SECOND, &cancel);
	ctx_cancel(cancel);
	ctx_release(c);
}

/* Made and released, then made again: with the report on, no node is
 * cached (each is tracked from its allocation to its free), so the second
 * round is tracked like the first; off, the freed ones are cached. */
static void cache_rounds(void)
{
	for (int round = 0; round < 2; round++) {
		ctx_t *c = ctx_with_cancel(ctx_background(), NULL);
		ctx_t *v = ctx_with_value(c, &key, NULL, NULL);
		ctx_release(v);
		ctx_release(c);
	}
	kept[2] = ctx_with_cancel(ctx_background(), NULL); /* leaked: one listed */
	fprintf(stderr, "cached=%zu\n", ctx__cache_held());
}

static void report_with_no_cache(void **state)
{
	(void)state;
	char *out = run_child("1", cache_rounds);
	assert_non_null(strstr(out, "cached=0\n"));
	assert_non_null(strstr(out, "goctx: 1 context still alive at exit"));
	out = run_child(NULL, cache_rounds);
	assert_string_equal(out, "cached=1\n"); /* the value node; the cancel one was reused */
}

static void report_lists_live_contexts(void **state)
{
	(void)state;
	char *out = run_child("1", leak_two);
	assert_non_null(strstr(out, "goctx: 2 contexts still alive at exit"));
	assert_non_null(strstr(out, "  context.Background.WithCancel  refs=1"));
	assert_non_null(strstr(out, "  context.Background.WithCancel.WithValue("));
	assert_null(strstr(out, "WithDeadline")); /* released: not listed */
}

static void report_lists_after_funcs(void **state)
{
	(void)state;
	char *out = run_child("1", leak_after);
	assert_non_null(strstr(out, "goctx: 2 contexts still alive at exit"));
	assert_non_null(strstr(out, "  after-func on context.Background.WithCancel"));
}

static void report_silent_without_leaks(void **state)
{
	(void)state;
	assert_string_equal(run_child("1", no_leak), "");
}

static void report_off_by_default(void **state)
{
	(void)state;
	assert_string_equal(run_child(NULL, leak_two), "");
	assert_string_equal(run_child("0", leak_two), "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(report_lists_live_contexts),
		cmocka_unit_test(report_lists_after_funcs),
		cmocka_unit_test(report_silent_without_leaks),
		cmocka_unit_test(report_off_by_default),
		cmocka_unit_test(report_with_no_cache),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
