/* test_grpc_timeout.c: the grpc-timeout value written from a context's
 * deadline (finest unit that fits in 8 digits, rounded up, as grpc-go's
 * encodeTimeout) and read into a context (grpc-go's decodeTimeout: every
 * unit, 8 digits and no more, hours saturating, malformed values rejected).
 * A fake clock makes the time left exact. */
#include "util.h"

#include "goctx/propagate.h"

#define NS CTX_NANOSECOND
#define US CTX_MICROSECOND
#define MS CTX_MILLISECOND
#define S CTX_SECOND
#define MIN (60 * S)
#define H (3600 * S)

static ctx_time_t t0;

static int fake_setup(void **state)
{
	(void)state;
	ut_fake_install();
	/* A fixed start, not the machine's uptime: the hour-unit rows below
	 * (INT64_MAX ns from now) depend on it. */
	t0 = 1000 * CTX_SECOND;
	ut_fake_set(t0);
	return ut_mark(state);
}

static int fake_teardown(void **state)
{
	ut_assert_no_leak();
	return ut_fake_teardown(state);
}

/* The value format writes for a context with `left` to go. */
static const char *fmt_left(ctx_duration_t left)
{
	static char buf[32];
	ctx_cancel_t *c;
	ctx_t *x = ctx_with_deadline(ctx_background(), (left > INT64_MAX - t0 ? INT64_MAX : t0 + left), &c);
	assert_non_null(x);
	int n = ctx_grpc_timeout_format(x, buf, sizeof buf);
	assert_int_equal(n, (int)strlen(buf));
	assert_true(n <= CTX_GRPC_TIMEOUT_MAX - 1);
	ctx_cancel(c);
	ctx_release(x);
	return buf;
}

/* ---- format ---- */

static void test_format_units(void **state)
{
	(void)state;
	assert_string_equal(fmt_left(1 * NS), "1n");
	assert_string_equal(fmt_left(100 * MS), "100000u"); /* 1e8 ns: 9 digits */
	assert_string_equal(fmt_left(99999999 * NS), "99999999n"); /* 8 digits: ns */
	assert_string_equal(fmt_left(100000000 * NS), "100000u");  /* 9 digits: next unit */
	assert_string_equal(fmt_left(100000001 * NS), "100001u");  /* rounded up */
	assert_string_equal(fmt_left(99999999 * US), "99999999u");
	assert_string_equal(fmt_left(99999999 * US + 1), "100000m");
	assert_string_equal(fmt_left(99999999 * MS), "99999999m");
	assert_string_equal(fmt_left(99999999 * MS + 1), "100000S");
	assert_string_equal(fmt_left(1500 * MS), "1500000u");
	assert_string_equal(fmt_left(2 * H + 1), "7200001m");
	assert_string_equal(fmt_left(99999999 * S), "99999999S");
	assert_string_equal(fmt_left(99999999 * S + 1), "1666667M");
	assert_string_equal(fmt_left(99999999 * MIN), "99999999M");
	assert_string_equal(fmt_left(99999999 * MIN + 1), "1666667H");
	/* No deadline is further than INT64_MAX ns from now: hours, 7 digits. */
	assert_string_equal(fmt_left(INT64_MAX - t0), "2562048H");
}

static void test_format_snprintf(void **state)
{
	(void)state;
	ctx_cancel_t *c;
	ctx_t *x = ctx_with_deadline(ctx_background(), t0 + 12345 * NS, &c);
	char buf[4] = "zzz";
	assert_int_equal(ctx_grpc_timeout_format(x, buf, sizeof buf), 6);
	assert_string_equal(buf, "123");
	assert_int_equal(ctx_grpc_timeout_format(x, NULL, 0), 6);
	char one[1] = {'q'};
	assert_int_equal(ctx_grpc_timeout_format(x, one, 1), 6);
	assert_int_equal(one[0], '\0');
	assert_int_equal(ctx_grpc_timeout_format(x, NULL, 5), -1);
	assert_int_equal(errno, EINVAL);
	/* Time passes: less is left. */
	ut_fake_set(t0 + 345);
	char b[16];
	assert_int_equal(ctx_grpc_timeout_format(x, b, sizeof b), 6);
	assert_string_equal(b, "12000n");
	ut_fake_set(t0);
	ctx_cancel(c);
	ctx_release(x);
}

static void test_format_errors(void **state)
{
	(void)state;
	char buf[16] = "junk";
	errno = 0;
	assert_int_equal(ctx_grpc_timeout_format(ctx_background(), buf, sizeof buf), -1);
	assert_int_equal(errno, ENOENT);
	assert_string_equal(buf, "");
	/* No deadline, done: still ENOENT. */
	ctx_cancel_t *c;
	ctx_t *x = ctx_with_cancel(ctx_background(), &c);
	ctx_cancel(c);
	assert_int_equal(ctx_grpc_timeout_format(x, buf, sizeof buf), -1);
	assert_int_equal(errno, ENOENT);
	ctx_release(x);
	/* A deadline that has passed (the timer has not fired yet: fake clock). */
	x = ctx_with_deadline(ctx_background(), t0 + 10 * MS, &c);
	atomic_store(&ut_fake_ns, t0 + 10 * MS);
	assert_int_equal(ctx_grpc_timeout_format(x, buf, sizeof buf), -1);
	assert_int_equal(errno, ETIMEDOUT);
	atomic_store(&ut_fake_ns, t0);
	/* Cancelled before its deadline. */
	ctx_cancel(c);
	assert_int_equal(ctx_grpc_timeout_format(x, buf, sizeof buf), -1);
	assert_int_equal(errno, ETIMEDOUT);
	ctx_release(x);
	/* An inherited deadline counts. */
	ctx_t *p = ctx_with_deadline(ctx_background(), t0 + 5 * S, &c);
	ctx_t *v = ctx_with_value(p, &t0, NULL, NULL);
	assert_int_equal(ctx_grpc_timeout_format(v, buf, sizeof buf), 8);
	assert_string_equal(buf, "5000000u");
	ctx_release(v);
	ctx_cancel(c);
	ctx_release(p);
	assert_int_equal(ctx_grpc_timeout_format(NULL, buf, sizeof buf), -1);
	assert_int_equal(errno, EINVAL);
}

/* ---- parse ---- */

/* The deadline ctx_with_grpc_timeout gives for value, minus now. */
static ctx_duration_t parsed(const char *value)
{
	ctx_cancel_t *c = (ctx_cancel_t *)&t0;
	ctx_t *x = ctx_with_grpc_timeout(ctx_background(), value, &c);
	if (!x) {
		assert_int_equal(errno, EINVAL);
		assert_null(c);
		return -1;
	}
	assert_non_null(c);
	ctx_time_t d;
	assert_true(ctx_deadline(x, &d));
	ctx_cancel(c);
	ctx_release(x);
	return d - t0;
}

static void test_parse_units(void **state)
{
	(void)state;
	assert_int_equal(parsed("1H"), 1 * H);
	assert_int_equal(parsed("2M"), 2 * MIN);
	assert_int_equal(parsed("3S"), 3 * S);
	assert_int_equal(parsed("100m"), 100 * MS);
	assert_int_equal(parsed("5u"), 5 * US);
	assert_int_equal(parsed("7n"), 7 * NS);
	assert_int_equal(parsed("99999999n"), 99999999 * NS); /* 8 digits */
	assert_int_equal(parsed("00000001S"), 1 * S);         /* leading zeros */
	assert_int_equal(parsed("99999999M"), 99999999 * MIN); /* fits */
	/* Hours: 2562047 H fits, 2562048 H does not; 8 digits saturate. */
	assert_int_equal(parsed("2562047H"), 2562047 * H);
	assert_int_equal(parsed("2562048H"), INT64_MAX - t0);
	assert_int_equal(parsed("99999999H"), INT64_MAX - t0);
	/* Every value format writes reads back as at least the time left. */
	const ctx_duration_t lefts[] = {1, 999, 100000001, 1500 * MS, 2 * H + 1, 99999999 * MIN + 1};
	for (size_t i = 0; i < sizeof lefts / sizeof lefts[0]; i++) {
		ctx_duration_t back = parsed(fmt_left(lefts[i]));
		assert_true(back >= lefts[i]);
	}
}

static void test_parse_zero_done(void **state)
{
	(void)state;
	const char *zeros[] = {"0S", "0n", "00000000H", "0m"};
	for (size_t i = 0; i < 4; i++) {
		ctx_cancel_t *c;
		ctx_t *x = ctx_with_grpc_timeout(ctx_background(), zeros[i], &c);
		assert_non_null(x);
		ut_assert_done(x, ETIMEDOUT, ETIMEDOUT);
		ctx_cancel(c);
		ctx_release(x);
	}
}

static void test_parse_malformed(void **state)
{
	(void)state;
	const char *bad[] = {
		"", "S", "1", "100", "123456789S" /* 9 digits */, "000000001n", "+1S", "-1S",
		" 1S", "1S ", "1 S", "1s", "1h", "1x", "1SS", "1.5S", "0x10S", "1e3m", "1_0S",
		"abc", "m100", "\3771S",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (parsed(bad[i]) != -1)
			fail_msg("\"%s\" was accepted", bad[i]);
	}
	ctx_cancel_t *c = (ctx_cancel_t *)&t0;
	errno = 0;
	assert_null(ctx_with_grpc_timeout(ctx_background(), NULL, &c));
	assert_int_equal(errno, EINVAL);
	assert_null(c);
	assert_null(ctx_with_grpc_timeout(NULL, "1S", &c));
	assert_int_equal(errno, EINVAL);
	assert_null(ctx_with_grpc_timeout(ctx_background(), "1S junk", NULL));
}

/* Under a parent with an earlier deadline, the parent's wins (a child). */
static void test_parse_under_parent(void **state)
{
	(void)state;
	ctx_cancel_t *pc, *c;
	ctx_t *p = ctx_with_deadline(ctx_background(), t0 + 50 * MS, &pc);
	ctx_t *x = ctx_with_grpc_timeout(p, "10S", &c);
	ctx_time_t d;
	assert_true(ctx_deadline(x, &d));
	assert_int_equal(d, t0 + 50 * MS);
	assert_true(ut_starts_with(ut_fmt(x), "context.Background.WithDeadline("));
	ctx_cancel(pc);
	ut_assert_done(x, ECANCELED, ECANCELED);
	ctx_cancel(c);
	ctx_release(x);
	ctx_release(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_format_units, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_format_snprintf, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_format_errors, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_parse_units, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_parse_zero_done, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_parse_malformed, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_parse_under_parent, fake_setup, fake_teardown),
	};
	return cmocka_run_group_tests(tests, ut_group_setup, NULL);
}
