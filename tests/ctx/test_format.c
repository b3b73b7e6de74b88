/* test_format.c: ctx_format (Go's String() form, snprintf semantics) and
 * ctx_strerror. Deadline texts are checked against a fake clock, so the
 * remaining time printed is exact. */
#include "util.h"

#include <stdio.h>
#include <string.h>

#include "ctx/testing.h"

/* ---- the fake clock ---- */

static _Atomic ctx_time_t fake_now;

static ctx_time_t fake_clock(void) { return atomic_load(&fake_now); }

static int use_fake_clock(void **state)
{
	(void)state;
	atomic_store(&fake_now, (ctx_time_t)1000 * CTX_SECOND);
	ctx__set_clock(fake_clock);
	return 0;
}

static int use_real_clock(void **state)
{
	(void)state;
	ctx__set_clock(NULL);
	return 0;
}

static char buf[65536];

/* Format c into the static buffer; checks the return value is the length. */
static const char *fmt(const ctx_t *c)
{
	int n = ctx_format(c, buf, sizeof buf);
	assert_true(n >= 0);
	assert_true((size_t)n < sizeof buf);
	assert_int_equal(strlen(buf), (size_t)n);
	return buf;
}

static bool starts_with(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

static bool ends_with(const char *s, const char *p)
{
	size_t ls = strlen(s), lp = strlen(p);
	return ls >= lp && strcmp(s + ls - lp, p) == 0;
}

static const int key1 = 1, key2 = 2;
static int val1, val2;

/* ---- roots and simple layers ---- */

static void test_roots(void **state)
{
	(void)state;
	assert_string_equal(fmt(ctx_background()), "context.Background");
	assert_string_equal(fmt(ctx_todo()), "context.TODO");
}

static void test_with_cancel(void **state)
{
	(void)state;
	ctx_cancel_t *cancel;
	ctx_t *c = ctx_with_cancel(ctx_background(), &cancel);
	assert_non_null(c);
	assert_string_equal(fmt(c), "context.Background.WithCancel");
	/* Done or not, the text is the same. */
	ctx_cancel(cancel);
	assert_string_equal(fmt(c), "context.Background.WithCancel");
	ctx_release(c);

	c = ctx_with_cancel(ctx_todo(), NULL);
	assert_string_equal(fmt(c), "context.TODO.WithCancel");
	ctx_release(c);
}

static void test_without_cancel(void **state)
{
	(void)state;
	ctx_t *c = ctx_without_cancel(ctx_background());
	assert_string_equal(fmt(c), "context.Background.WithoutCancel");
	ctx_release(c);
}

static void test_with_value(void **state)
{
	(void)state;
	char want[256];
	ctx_t *c = ctx_with_value(ctx_background(), &key1, &val1, NULL);
	snprintf(want, sizeof want, "context.Background.WithValue(%p, %p)", (void *)&key1,
	         (void *)&val1);
	assert_string_equal(fmt(c), want);
	ctx_release(c);
}

static void test_with_value_nil(void **state)
{
	(void)state;
	char want[256];
	ctx_t *c = ctx_with_value(ctx_background(), &key1, NULL, NULL);
	snprintf(want, sizeof want, "context.Background.WithValue(%p, <nil>)", (void *)&key1);
	assert_string_equal(fmt(c), want);
	ctx_release(c);
}

/* ---- deadlines: "WithDeadline(<time> [<remaining>])" ---- */

/* Format a deadline context `remaining` from the fake now and check the
 * prefix and the exact remaining-time suffix. */
static void check_deadline(ctx_duration_t remaining, const char *want_suffix)
{
	ctx_cancel_t *cancel;
	ctx_t *c = ctx_with_deadline(ctx_background(), ctx_now() + remaining, &cancel);
	assert_non_null(c);
	const char *s = fmt(c);
	if (!starts_with(s, "context.Background.WithDeadline(") || !ends_with(s, want_suffix))
		fail_msg("deadline %lld ns: got \"%s\", want suffix \"%s\"", (long long)remaining, s,
		         want_suffix);
	/* Something (the time) between "(" and " [". */
	const char *open = s + strlen("context.Background.WithDeadline(");
	const char *br = strstr(open, " [");
	assert_non_null(br);
	assert_true(br > open);
	ctx_cancel(cancel);
	ctx_release(c);
}

static void test_deadline_1500ms(void **state)
{
	(void)state;
	check_deadline(1500 * CTX_MILLISECOND, " [1.5s])");
}

static void test_deadline_150ms(void **state)
{
	(void)state;
	check_deadline(150 * CTX_MILLISECOND, " [150ms])");
}

static void test_deadline_1h(void **state)
{
	(void)state;
	check_deadline(3600 * CTX_SECOND, " [1h0m0s])");
}

static void test_deadline_mixed(void **state)
{
	(void)state;
	check_deadline(3723 * CTX_SECOND + 500 * CTX_MILLISECOND, " [1h2m3.5s])");
	check_deadline(90 * CTX_SECOND, " [1m30s])");
	check_deadline(1500 * CTX_NANOSECOND, " [1.5µs])");
	check_deadline(42 * CTX_NANOSECOND, " [42ns])");
	check_deadline(CTX_SECOND + CTX_NANOSECOND, " [1.000000001s])");
}

static void test_deadline_past(void **state)
{
	(void)state;
	/* Done at once, but still a deadline context; remaining is negative. */
	check_deadline(-2 * CTX_SECOND, " [-2s])");
	check_deadline(-150 * CTX_MILLISECOND, " [-150ms])");
	check_deadline(0, " [0s])");
}

static void test_deadline_remaining_follows_clock(void **state)
{
	(void)state;
	ctx_cancel_t *cancel;
	ctx_t *c = ctx_with_deadline(ctx_background(), ctx_now() + 2 * CTX_SECOND, &cancel);
	assert_true(ends_with(fmt(c), " [2s])"));
	atomic_fetch_add(&fake_now, 500 * CTX_MILLISECOND);
	if (!ends_with(fmt(c), " [1.5s])"))
		fail_msg("got %s", buf);
	atomic_fetch_sub(&fake_now, 500 * CTX_MILLISECOND);
	ctx_cancel(cancel);
	ctx_release(c);
}

/* ---- whole deadline texts, with the wall clock fixed too ----
 * Go prints a deadline as time.Time.String() with its monotonic reading:
 * "<UTC wall time, nine fraction digits> +0000 UTC m=±<s>.<nine digits>",
 * then the remaining time in Duration.String() form. Both clocks fixed, every
 * byte is known: the rows walk the unit boundaries (just below and at 1 ns,
 * 1 µs, 1 ms, 1 s, 1 m, 1 h), the m= padding, negative readings and
 * saturation. */

#define W0 ((ctx_time_t)1257894000 * CTX_SECOND) /* 2009-11-10 23:00:00 UTC */
#define S CTX_SECOND
#define PRE "context.Background.WithDeadline("

static _Atomic ctx_time_t fake_wall_ns;
static ctx_time_t fake_wall(void) { return atomic_load(&fake_wall_ns); }

struct whole {
	ctx_time_t now, deadline; /* the monotonic clock and the deadline on it */
	const char *want;
};

static const struct whole wholes[] = {
	{1000 * S, 1000 * S + 1, PRE "2009-11-10 23:00:00.000000001 +0000 UTC m=+1000.000000001 [1ns])"},
	{1000 * S, 1000 * S + 999, PRE "2009-11-10 23:00:00.000000999 +0000 UTC m=+1000.000000999 [999ns])"},
	{1000 * S, 1000 * S + 1000, PRE "2009-11-10 23:00:00.000001000 +0000 UTC m=+1000.000001000 [1µs])"},
	{1000 * S, 1000 * S + 1001, PRE "2009-11-10 23:00:00.000001001 +0000 UTC m=+1000.000001001 [1.001µs])"},
	{1000 * S, 1000 * S + 999999, PRE "2009-11-10 23:00:00.000999999 +0000 UTC m=+1000.000999999 [999.999µs])"},
	{1000 * S, 1000 * S + 1000000, PRE "2009-11-10 23:00:00.001000000 +0000 UTC m=+1000.001000000 [1ms])"},
	{1000 * S, 1000 * S + 999999999, PRE "2009-11-10 23:00:00.999999999 +0000 UTC m=+1000.999999999 [999.999999ms])"},
	{1000 * S, 1001 * S, PRE "2009-11-10 23:00:01.000000000 +0000 UTC m=+1001.000000000 [1s])"},
	{1000 * S, 1059 * S + 999999999, PRE "2009-11-10 23:00:59.999999999 +0000 UTC m=+1059.999999999 [59.999999999s])"},
	{1000 * S, 1060 * S, PRE "2009-11-10 23:01:00.000000000 +0000 UTC m=+1060.000000000 [1m0s])"},
	{1000 * S, 4599 * S + 999999999, PRE "2009-11-10 23:59:59.999999999 +0000 UTC m=+4599.999999999 [59m59.999999999s])"},
	{1000 * S, 4600 * S, PRE "2009-11-11 00:00:00.000000000 +0000 UTC m=+4600.000000000 [1h0m0s])"},
	{1000 * S, 4661 * S + 1001001, PRE "2009-11-11 00:01:01.001001001 +0000 UTC m=+4661.001001001 [1h1m1.001001001s])"},
	/* The m= reading: zero-padded fraction, a zero integer part. */
	{0, 7, PRE "2009-11-10 23:00:00.000000007 +0000 UTC m=+0.000000007 [7ns])"},
	{0, S / 2, PRE "2009-11-10 23:00:00.500000000 +0000 UTC m=+0.500000000 [500ms])"},
	/* Past deadlines: negative remaining time, negative m= readings. */
	{1000 * S, 1000 * S, PRE "2009-11-10 23:00:00.000000000 +0000 UTC m=+1000.000000000 [0s])"},
	{1000 * S, 1000 * S - 1, PRE "2009-11-10 22:59:59.999999999 +0000 UTC m=+999.999999999 [-1ns])"},
	{0, -1500 * CTX_MILLISECOND, PRE "2009-11-10 22:59:58.500000000 +0000 UTC m=-1.500000000 [-1.5s])"},
	{0, -7, PRE "2009-11-10 22:59:59.999999993 +0000 UTC m=-0.000000007 [-7ns])"},
	/* The latest deadline: the wall time saturates, Go's longest Duration. */
	{0, INT64_MAX, PRE "2262-04-11 23:47:16.854775807 +0000 UTC m=+9223372036.854775807 [2562047h47m16.854775807s])"},
};

static void test_deadline_whole_text(void **state)
{
	(void)state;
	ctx_time_t saved = atomic_load(&fake_now);
	atomic_store(&fake_wall_ns, W0);
	ctx__set_wall_clock(fake_wall);
	int bad = 0;
	for (size_t i = 0; i < sizeof wholes / sizeof wholes[0]; i++) {
		const struct whole *w = &wholes[i];
		atomic_store(&fake_now, w->now);
		ctx_cancel_t *cancel;
		ctx_t *c = ctx_with_deadline(ctx_background(), w->deadline, &cancel);
		assert_non_null(c);
		const char *s = fmt(c);
		if (strcmp(s, w->want) != 0) {
			print_error("row %zu (now %lld, deadline %lld):\n  got  %s\n  want %s\n", i,
			            (long long)w->now, (long long)w->deadline, s, w->want);
			bad++;
		}
		/* The same text below a child: the deadline layer is the same. */
		ctx_t *child = ctx_with_cancel(c, NULL);
		char want_child[256];
		snprintf(want_child, sizeof want_child, "%s.WithCancel", w->want);
		if (strcmp(fmt(child), want_child) != 0)
			bad++;
		ctx_release(child);
		ctx_cancel(cancel);
		ctx_release(c);
	}
	ctx__set_wall_clock(NULL);
	atomic_store(&fake_now, saved);
	if (bad)
		fail_msg("%d deadline texts differ from Go's", bad);
}

#undef PRE
#undef S

static void test_timeout_prints_deadline(void **state)
{
	(void)state;
	ctx_cancel_t *cancel;
	ctx_t *c = ctx_with_timeout(ctx_background(), 1500 * CTX_MILLISECOND, &cancel);
	const char *s = fmt(c);
	if (!starts_with(s, "context.Background.WithDeadline(") || !ends_with(s, " [1.5s])"))
		fail_msg("got %s", s);
	ctx_cancel(cancel);
	ctx_release(c);

	c = ctx_with_timeout_cause(ctx_background(), 150 * CTX_MILLISECOND, 77, &cancel);
	s = fmt(c);
	if (!starts_with(s, "context.Background.WithDeadline(") || !ends_with(s, " [150ms])"))
		fail_msg("got %s", s);
	ctx_cancel(cancel);
	ctx_release(c);
}

static void test_later_deadline_is_with_cancel(void **state)
{
	(void)state;
	ctx_cancel_t *c1, *c2;
	ctx_t *p = ctx_with_timeout(ctx_background(), CTX_SECOND, &c1);
	ctx_t *c = ctx_with_timeout(p, 2 * CTX_SECOND, &c2);
	const char *s = fmt(c);
	if (!starts_with(s, "context.Background.WithDeadline(") ||
	    !ends_with(s, " [1s]).WithCancel"))
		fail_msg("got %s", s);
	ctx_cancel(c2);
	ctx_cancel(c1);
	ctx_release(c);
	ctx_release(p);
}

/* ---- chains ---- */

static void test_chain(void **state)
{
	(void)state;
	char want[512];
	ctx_cancel_t *cancel;
	ctx_t *a = ctx_with_cancel(ctx_background(), &cancel);
	ctx_t *b = ctx_with_value(a, &key1, &val1, NULL);
	ctx_t *c = ctx_without_cancel(b);
	ctx_t *d = ctx_with_value(c, &key2, NULL, NULL);
	ctx_t *e = ctx_with_cancel(d, NULL);
	ctx_t *f = ctx_with_value(e, &key1, &val2, NULL);
	snprintf(want, sizeof want,
	         "context.Background.WithCancel.WithValue(%p, %p).WithoutCancel"
	         ".WithValue(%p, <nil>).WithCancel.WithValue(%p, %p)",
	         (void *)&key1, (void *)&val1, (void *)&key2, (void *)&key1, (void *)&val2);
	assert_string_equal(fmt(f), want);
	ctx_cancel(cancel);
	ctx_release(f);
	ctx_release(e);
	ctx_release(d);
	ctx_release(c);
	ctx_release(b);
	ctx_release(a);
}

static void test_chain_with_deadline(void **state)
{
	(void)state;
	ctx_t *a = ctx_with_value(ctx_todo(), &key1, &val1, NULL);
	ctx_cancel_t *cancel;
	ctx_t *b = ctx_with_timeout(a, 150 * CTX_MILLISECOND, &cancel);
	ctx_t *c = ctx_with_cancel(b, NULL);
	char want[256];
	snprintf(want, sizeof want, "context.TODO.WithValue(%p, %p).WithDeadline(", (void *)&key1,
	         (void *)&val1);
	const char *s = fmt(c);
	if (!starts_with(s, want) || !ends_with(s, " [150ms]).WithCancel"))
		fail_msg("got %s", s);
	ctx_cancel(cancel);
	ctx_release(c);
	ctx_release(b);
	ctx_release(a);
}

/* A chain of n layers, alternating WithCancel and WithValue (and one
 * WithoutCancel in the middle), checked against the text built here. */
static void check_deep(int n)
{
	ctx_t **layers = calloc((size_t)n, sizeof *layers);
	char *want = calloc(1, (size_t)n * 64 + 64);
	assert_non_null(layers);
	assert_non_null(want);
	strcpy(want, "context.Background");
	ctx_t *p = ctx_background();
	int cancels = 0, values = 0, withouts = 0;
	for (int i = 0; i < n; i++) {
		char part[64];
		if (i == n / 2) {
			layers[i] = ctx_without_cancel(p);
			strcpy(part, ".WithoutCancel");
			withouts++;
		} else if (i % 2 == 0) {
			layers[i] = ctx_with_cancel(p, NULL);
			strcpy(part, ".WithCancel");
			cancels++;
		} else {
			layers[i] = ctx_with_value(p, &key1, &val1, NULL);
			snprintf(part, sizeof part, ".WithValue(%p, %p)", (void *)&key1, (void *)&val1);
			values++;
		}
		assert_non_null(layers[i]);
		strcat(want, part);
		p = layers[i];
	}
	const char *s = fmt(p);
	assert_string_equal(s, want);
	assert_int_equal(ut_count(s, ".WithCancel"), cancels);
	assert_int_equal(ut_count(s, ".WithValue("), values);
	assert_int_equal(ut_count(s, ".WithoutCancel"), withouts);
	assert_int_equal(ut_count(s, "context.Background"), 1);
	/* The length needed is reported without a buffer too. */
	assert_int_equal(ctx_format(p, NULL, 0), (int)strlen(want));
	for (int i = n; i-- > 0;)
		ctx_release(layers[i]);
	free(layers);
	free(want);
}

static void test_deep_chains(void **state)
{
	(void)state;
	/* Layers plus the root: every remainder around the library's batches
	 * of 32 (and a few more). */
	static const int depths[] = {1, 2, 30, 31, 32, 33, 62, 63, 64, 65, 94, 95, 100, 257};
	for (size_t i = 0; i < sizeof depths / sizeof depths[0]; i++)
		check_deep(depths[i]);
}

/* ---- snprintf semantics ---- */

static void test_snprintf_semantics(void **state)
{
	(void)state;
	ctx_t *c = ctx_with_value(ctx_background(), &key1, &val1, NULL);
	ctx_t *d = ctx_with_cancel(c, NULL);
	char full[256];
	int n = ctx_format(d, full, sizeof full);
	assert_int_equal((size_t)n, strlen(full));
	assert_true(n > 40);

	/* NULL buffer with size 0: only the length. */
	assert_int_equal(ctx_format(d, NULL, 0), n);

	/* Every size from 0 to past the end: at most size bytes written
	 * (the rest of the buffer untouched), NUL-terminated prefix, same
	 * return value. */
	for (size_t size = 0; size <= (size_t)n + 3; size++) {
		char out[300];
		memset(out, 'X', sizeof out);
		int r = ctx_format(d, out, size);
		assert_int_equal(r, n);
		for (size_t i = size; i < sizeof out; i++)
			if (out[i] != 'X')
				fail_msg("size %zu: byte %zu written", size, i);
		if (size == 0)
			continue;
		size_t keep = size - 1 < (size_t)n ? size - 1 : (size_t)n;
		assert_int_equal(out[keep], '\0');
		assert_int_equal(strlen(out), keep);
		assert_memory_equal(out, full, keep);
	}

	/* size 1 gives the empty string. */
	char one[2] = {'X', 'X'};
	assert_int_equal(ctx_format(d, one, 1), n);
	assert_int_equal(one[0], '\0');
	assert_int_equal(one[1], 'X');

	/* Truncation in the middle of a deadline's text and of a root. */
	char small[8];
	assert_int_equal(ctx_format(ctx_background(), small, sizeof small),
	                 (int)strlen("context.Background"));
	assert_string_equal(small, "context");

	ctx_release(d);
	ctx_release(c);
}

static void test_snprintf_deadline_truncated(void **state)
{
	(void)state;
	ctx_cancel_t *cancel;
	ctx_t *c = ctx_with_timeout(ctx_background(), 1500 * CTX_MILLISECOND, &cancel);
	char full[512];
	int n = ctx_format(c, full, sizeof full);
	assert_int_equal((size_t)n, strlen(full));
	for (size_t size = 1; size <= (size_t)n + 1; size++) {
		char out[600];
		memset(out, 'X', sizeof out);
		assert_int_equal(ctx_format(c, out, size), n);
		size_t keep = size - 1 < (size_t)n ? size - 1 : (size_t)n;
		assert_int_equal(strlen(out), keep);
		/* The wall-clock digits move between calls: compare the fixed
		 * head only. */
		size_t head = strlen("context.Background.WithDeadline(");
		assert_memory_equal(out, full, keep < head ? keep : head);
		for (size_t i = size; i < sizeof out; i++)
			if (out[i] != 'X')
				fail_msg("size %zu: byte %zu written", size, i);
	}
	ctx_cancel(cancel);
	ctx_release(c);
}

/* ---- ctx_strerror ---- */

static void test_strerror(void **state)
{
	(void)state;
	assert_string_equal(ctx_strerror(ECANCELED), "context canceled");
	assert_string_equal(ctx_strerror(ETIMEDOUT), "context deadline exceeded");
	char want[256];
	snprintf(want, sizeof want, "%s", strerror(ENOMEM));
	assert_string_equal(ctx_strerror(ENOMEM), want);
	snprintf(want, sizeof want, "%s", strerror(EINVAL));
	assert_string_equal(ctx_strerror(EINVAL), want);
	snprintf(want, sizeof want, "%s", strerror(EBUSY));
	assert_string_equal(ctx_strerror(EBUSY), want);
	/* Any other value: strerror's text, never NULL (libc's words for
	 * numbers it does not know, e.g. "Unknown error 99999"). */
	static const int others[] = {0, 99999, 1000, -7, INT32_MAX, INT32_MIN};
	for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
		const char *got = ctx_strerror(others[i]);
		assert_non_null(got);
		snprintf(want, sizeof want, "%s", strerror(others[i]));
		assert_string_equal(got, want);
	}
	/* Static: the same text on every call. */
	assert_ptr_equal(ctx_strerror(ECANCELED), ctx_strerror(ECANCELED));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roots),
		cmocka_unit_test(test_with_cancel),
		cmocka_unit_test(test_without_cancel),
		cmocka_unit_test(test_with_value),
		cmocka_unit_test(test_with_value_nil),
		cmocka_unit_test(test_deadline_1500ms),
		cmocka_unit_test(test_deadline_150ms),
		cmocka_unit_test(test_deadline_1h),
		cmocka_unit_test(test_deadline_mixed),
		cmocka_unit_test(test_deadline_past),
		cmocka_unit_test(test_deadline_remaining_follows_clock),
		cmocka_unit_test(test_deadline_whole_text),
		cmocka_unit_test(test_timeout_prints_deadline),
		cmocka_unit_test(test_later_deadline_is_with_cancel),
		cmocka_unit_test(test_chain),
		cmocka_unit_test(test_chain_with_deadline),
		cmocka_unit_test(test_deep_chains),
		cmocka_unit_test(test_snprintf_semantics),
		cmocka_unit_test(test_snprintf_deadline_truncated),
		cmocka_unit_test(test_strerror),
	};
	return cmocka_run_group_tests(tests, use_fake_clock, use_real_clock);
}
