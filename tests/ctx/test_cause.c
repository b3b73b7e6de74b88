/* test_cause.c: err and cause: every row of Go's TestCause (and the tricky
 * rows of the reference), causes through deadlines and children, causes any
 * int may take, and TestCauseRace (cause is 0 while err is 0, exactly the
 * cause once err is set). */
#include <limits.h>

#include "util.h"

enum {
	PARENT_CAUSE = 1001,
	CHILD_CAUSE = 1002,
	TOO_SLOW = 1003,
	FINISHED_EARLY = 1004,
};

#define FOREVER_TIMEOUT (3600 * CTX_SECOND)

/* ---- Go's TestCause table -----------------------------------------------------
 * Each row builds a context (one reference, returned; every handle it made
 * has been used) and gives the err and cause it must report. */

struct row {
	ctx_t *(*build)(void);
	int err, cause;
};

static ctx_t *row_background(void) { return ctx_background(); }
static ctx_t *row_todo(void) { return ctx_todo(); }

static ctx_t *row_with_cancel(void)
{
	ctx_cancel_t *h;
	ctx_t *c = ctx_with_cancel(ctx_background(), &h);
	ctx_cancel(h);
	return c;
}

static ctx_t *row_with_cancel_cause(void)
{
	ctx_cancel_t *h;
	ctx_t *c = ctx_with_cancel(ctx_background(), &h);
	ctx_cancel_cause(h, CHILD_CAUSE);
	return c;
}

/* Go: cancel(nil) gives cause Canceled; C: cause 0 gives ECANCELED. */
static ctx_t *row_with_cancel_cause_zero(void)
{
	ctx_cancel_t *h;
	ctx_t *c = ctx_with_cancel(ctx_background(), &h);
	ctx_cancel_cause(h, 0);
	return c;
}

/* Parent and child, both cancelled with the given causes, in the given order;
 * returns the child. */
static ctx_t *parent_child(int parent_cause, int child_cause, bool parent_first)
{
	ctx_cancel_t *hp, *hc;
	ctx_t *p = ctx_with_cancel(ctx_background(), &hp);
	ctx_t *c = ctx_with_cancel(p, &hc);
	ctx_release(p);
	if (parent_first) {
		ctx_cancel_cause(hp, parent_cause);
		ctx_cancel_cause(hc, child_cause);
	} else {
		ctx_cancel_cause(hc, child_cause);
		ctx_cancel_cause(hp, parent_cause);
	}
	return c;
}

static ctx_t *row_parent_cause_before_child(void) { return parent_child(PARENT_CAUSE, CHILD_CAUSE, true); }
static ctx_t *row_parent_cause_after_child(void) { return parent_child(PARENT_CAUSE, CHILD_CAUSE, false); }
static ctx_t *row_parent_cause_before_nil(void) { return parent_child(PARENT_CAUSE, 0, true); }
/* Tricky row: child (WithCancel) cancelled first with no cause, then the
 * parent with a cause: Canceled/Canceled. */
static ctx_t *row_parent_cause_after_nil(void) { return parent_child(PARENT_CAUSE, 0, false); }
static ctx_t *row_child_cause_after_nil(void) { return parent_child(0, CHILD_CAUSE, true); }
static ctx_t *row_child_cause_before_nil(void) { return parent_child(0, CHILD_CAUSE, false); }

/* The tricky row with plain ctx_cancel on the child. */
static ctx_t *row_parent_cause_after_plain_cancel(void)
{
	ctx_cancel_t *hp, *hc;
	ctx_t *p = ctx_with_cancel(ctx_background(), &hp);
	ctx_t *c = ctx_with_cancel(p, &hc);
	ctx_release(p);
	ctx_cancel(hc);
	ctx_cancel_cause(hp, PARENT_CAUSE);
	return c;
}

static ctx_t *row_with_timeout(void)
{
	ctx_cancel_t *h;
	ctx_t *c = ctx_with_timeout(ctx_background(), 0, &h);
	ctx_cancel(h);
	return c;
}

/* The cancel handle of a deadline context never sets the deadline's cause. */
static ctx_t *row_with_timeout_canceled(void)
{
	ctx_cancel_t *h;
	ctx_t *c = ctx_with_timeout(ctx_background(), FOREVER_TIMEOUT, &h);
	ctx_cancel(h);
	return c;
}

static ctx_t *row_with_timeout_cause(void)
{
	ctx_cancel_t *h;
	ctx_t *c = ctx_with_timeout_cause(ctx_background(), 0, TOO_SLOW, &h);
	ctx_cancel(h);
	return c;
}

static ctx_t *row_with_timeout_cause_canceled(void)
{
	ctx_cancel_t *h;
	ctx_t *c = ctx_with_timeout_cause(ctx_background(), FOREVER_TIMEOUT, TOO_SLOW, &h);
	ctx_cancel(h);
	return c;
}

/* ctx_cancel_cause on a deadline context: the given cause (the deadline's
 * cause is only for the deadline). */
static ctx_t *row_with_deadline_cause_cancel_cause(void)
{
	ctx_cancel_t *h;
	ctx_t *c = ctx_with_deadline_cause(ctx_background(), ctx_now() + FOREVER_TIMEOUT, TOO_SLOW, &h);
	ctx_cancel_cause(h, FINISHED_EARLY);
	return c;
}

static ctx_t *row_with_timeout_cause_fired_then_cancel_cause(void)
{
	ctx_cancel_t *h;
	ctx_t *c = ctx_with_timeout_cause(ctx_background(), 0, TOO_SLOW, &h);
	ctx_cancel_cause(h, FINISHED_EARLY);
	return c;
}

/* Tricky row: WithTimeoutCause(0, tooSlow) under a cause parent, then the
 * parent cancelled with finishedEarly: DeadlineExceeded/tooSlow. */
static ctx_t *row_with_timeout_cause_stacked(void)
{
	ctx_cancel_t *hp;
	ctx_t *p = ctx_with_cancel(ctx_background(), &hp);
	ctx_t *c = ctx_with_timeout_cause(p, 0, TOO_SLOW, NULL);
	ctx_release(p);
	ctx_cancel_cause(hp, FINISHED_EARLY);
	return c;
}

/* Same with a timeout that never fires: Canceled/finishedEarly. */
static ctx_t *row_with_timeout_cause_stacked_canceled(void)
{
	ctx_cancel_t *hp;
	ctx_t *p = ctx_with_cancel(ctx_background(), &hp);
	ctx_t *c = ctx_with_timeout_cause(p, FOREVER_TIMEOUT, TOO_SLOW, NULL);
	ctx_release(p);
	ctx_cancel_cause(hp, FINISHED_EARLY);
	return c;
}

/* The other stacking order: a cause parent under a timeout-cause context. */
static ctx_t *row_cancel_cause_under_timeout_cause(void)
{
	ctx_cancel_t *ht, *hc;
	ctx_t *t = ctx_with_timeout_cause(ctx_background(), FOREVER_TIMEOUT, TOO_SLOW, &ht);
	ctx_t *c = ctx_with_cancel(t, &hc);
	ctx_release(t);
	ctx_cancel_cause(hc, FINISHED_EARLY);
	ctx_cancel(ht);
	return c;
}

static ctx_t *row_cancel_cause_under_fired_timeout_cause(void)
{
	ctx_cancel_t *ht, *hc;
	ctx_t *t = ctx_with_timeout_cause(ctx_background(), 0, TOO_SLOW, &ht);
	ctx_t *c = ctx_with_cancel(t, &hc);
	ctx_release(t);
	ctx_cancel_cause(hc, FINISHED_EARLY);
	ctx_cancel(ht);
	return c;
}

static ctx_t *row_without_cancel(void) { return ctx_without_cancel(ctx_background()); }

static ctx_t *row_without_cancel_canceled(void)
{
	ctx_cancel_t *h;
	ctx_t *p = ctx_with_cancel(ctx_background(), &h);
	ctx_t *w = ctx_without_cancel(p);
	ctx_release(p);
	ctx_cancel_cause(h, FINISHED_EARLY);
	return w;
}

static ctx_t *row_without_cancel_timeout(void)
{
	ctx_cancel_t *h;
	ctx_t *p = ctx_with_timeout_cause(ctx_background(), 0, TOO_SLOW, &h);
	ctx_t *w = ctx_without_cancel(p);
	ctx_release(p);
	ctx_cancel(h);
	return w;
}

/* A value child reads its cancelable ancestor's err and cause. */
static ctx_t *row_value_under_cause(void)
{
	static char key;
	ctx_cancel_t *h;
	ctx_t *p = ctx_with_cancel(ctx_background(), &h);
	ctx_t *v = ctx_with_value(p, &key, NULL, NULL);
	ctx_release(p);
	ctx_cancel_cause(h, PARENT_CAUSE);
	return v;
}

static const struct row rows[] = {
#define ROW(fn, err, cause) {fn, err, cause}
	ROW(row_background, 0, 0),
	ROW(row_todo, 0, 0),
	ROW(row_with_cancel, ECANCELED, ECANCELED),
	ROW(row_with_cancel_cause, ECANCELED, CHILD_CAUSE),
	ROW(row_with_cancel_cause_zero, ECANCELED, ECANCELED),
	ROW(row_parent_cause_before_child, ECANCELED, PARENT_CAUSE),
	ROW(row_parent_cause_after_child, ECANCELED, CHILD_CAUSE),
	ROW(row_parent_cause_before_nil, ECANCELED, PARENT_CAUSE),
	ROW(row_parent_cause_after_nil, ECANCELED, ECANCELED),
	ROW(row_parent_cause_after_plain_cancel, ECANCELED, ECANCELED),
	ROW(row_child_cause_after_nil, ECANCELED, ECANCELED),
	ROW(row_child_cause_before_nil, ECANCELED, CHILD_CAUSE),
	ROW(row_with_timeout, ETIMEDOUT, ETIMEDOUT),
	ROW(row_with_timeout_canceled, ECANCELED, ECANCELED),
	ROW(row_with_timeout_cause, ETIMEDOUT, TOO_SLOW),
	ROW(row_with_timeout_cause_canceled, ECANCELED, ECANCELED),
	ROW(row_with_deadline_cause_cancel_cause, ECANCELED, FINISHED_EARLY),
	ROW(row_with_timeout_cause_fired_then_cancel_cause, ETIMEDOUT, TOO_SLOW),
	ROW(row_with_timeout_cause_stacked, ETIMEDOUT, TOO_SLOW),
	ROW(row_with_timeout_cause_stacked_canceled, ECANCELED, FINISHED_EARLY),
	ROW(row_cancel_cause_under_timeout_cause, ECANCELED, FINISHED_EARLY),
	ROW(row_cancel_cause_under_fired_timeout_cause, ETIMEDOUT, TOO_SLOW),
	ROW(row_without_cancel, 0, 0),
	ROW(row_without_cancel_canceled, 0, 0),
	ROW(row_without_cancel_timeout, 0, 0),
	ROW(row_value_under_cause, ECANCELED, PARENT_CAUSE),
#undef ROW
};

static void test_cause_row(void **state)
{
	const struct row *r = *state;
	ctx_t *c = r->build();
	assert_non_null(c);
	assert_int_equal(ctx_err(c), r->err);
	assert_int_equal(ctx_cause(c), r->cause);
	assert_int_equal(ctx_done(c), r->err != 0);
	assert_int_equal(ctx_wait(c, 0), r->err);
	/* Stable across calls. */
	assert_int_equal(ctx_err(c), r->err);
	assert_int_equal(ctx_cause(c), r->cause);
	ctx_release(c);
	ut_assert_no_leak();
}

/* ---- causes through deadlines and children ---------------------------------- */

static char key;

/* A deadline's cause reaches every descendant that is live when it fires
 * (cancel, value and nested-deadline layers); err is ETIMEDOUT throughout.
 * Fake clock. */
static void test_deadline_cause_propagates_to_children(void **state)
{
	(void)state;
	ctx_time_t t0 = ut_fake_install();
	ctx_cancel_t *ht, *hc, *hd, *hl;
	ctx_t *t = ctx_with_deadline_cause(ctx_background(), t0 + CTX_SECOND, TOO_SLOW, &ht);
	ctx_t *c = ctx_with_cancel(t, &hc);
	ctx_t *v = ctx_with_value(c, &key, NULL, NULL);
	ctx_t *d = ctx_with_deadline_cause(v, t0 + CTX_SECOND, CHILD_CAUSE + 100, &hd); /* equal */
	ctx_t *l = ctx_with_deadline_cause(c, t0 + 2 * CTX_SECOND, CHILD_CAUSE, &hl); /* later: WithCancel */
	ctx_t *all[] = {t, c, v, l};
	for (int i = 0; i < 4; i++)
		ut_assert_live(all[i]);
	ut_fake_set(t0 + CTX_SECOND);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(ctx_wait(all[i], 10 * CTX_SECOND), ETIMEDOUT);
		assert_int_equal(ctx_cause(all[i]), TOO_SLOW);
	}
	/* d has a deadline of its own, equal to t's: whichever fired first. */
	assert_int_equal(ctx_wait(d, 10 * CTX_SECOND), ETIMEDOUT);
	assert_true(ctx_cause(d) == TOO_SLOW || ctx_cause(d) == CHILD_CAUSE + 100);
	ctx_cancel(hl);
	ctx_cancel(hd);
	ctx_cancel(hc);
	ctx_cancel(ht);
	ctx_t *rel[] = {l, d, v, c, t};
	for (int i = 0; i < 5; i++)
		ctx_release(rel[i]);
	ut_fake_teardown(NULL);
	ut_assert_no_leak_eventually();
}

/* A deadline without a cause (or with cause 0) fires with ETIMEDOUT/ETIMEDOUT. */
static void test_deadline_without_cause_fires_etimedout(void **state)
{
	(void)state;
	ctx_time_t t0 = ut_fake_install();
	ctx_cancel_t *h1, *h2;
	ctx_t *a = ctx_with_deadline(ctx_background(), t0 + 10, &h1);
	ctx_t *b = ctx_with_deadline_cause(ctx_background(), t0 + 10, 0, &h2);
	ut_fake_set(t0 + 10);
	assert_int_equal(ctx_wait(a, 10 * CTX_SECOND), ETIMEDOUT);
	assert_int_equal(ctx_wait(b, 10 * CTX_SECOND), ETIMEDOUT);
	assert_int_equal(ctx_cause(a), ETIMEDOUT);
	assert_int_equal(ctx_cause(b), ETIMEDOUT);
	ctx_cancel(h1);
	ctx_cancel(h2);
	ctx_release(a);
	ctx_release(b);
	ut_fake_teardown(NULL);
	ut_assert_no_leak_eventually();
}

/* A child of a parent cancelled with a cause carries the parent's cause, at
 * any depth and whether made before or after the cancel. */
static void test_child_carries_parent_cause(void **state)
{
	(void)state;
	ctx_cancel_t *hp, *h1, *h2;
	ctx_t *p = ctx_with_cancel(ctx_background(), &hp);
	ctx_t *c1 = ctx_with_cancel(p, &h1);
	ctx_t *v = ctx_with_value(c1, &key, NULL, NULL);
	ctx_t *c2 = ctx_with_timeout_cause(v, FOREVER_TIMEOUT, TOO_SLOW, &h2);
	ctx_cancel_cause(hp, PARENT_CAUSE);
	ut_assert_done(c1, ECANCELED, PARENT_CAUSE);
	ut_assert_done(v, ECANCELED, PARENT_CAUSE);
	ut_assert_done(c2, ECANCELED, PARENT_CAUSE);
	ctx_cancel_t *h3;
	ctx_t *late = ctx_with_cancel(c2, &h3);
	ut_assert_done(late, ECANCELED, PARENT_CAUSE);
	ctx_cancel_cause(h3, CHILD_CAUSE);
	ctx_cancel_cause(h2, CHILD_CAUSE);
	ctx_cancel_cause(h1, CHILD_CAUSE);
	ut_assert_done(late, ECANCELED, PARENT_CAUSE);
	ctx_t *rel[] = {late, c2, v, c1, p};
	for (int i = 0; i < 5; i++)
		ctx_release(rel[i]);
	ut_assert_no_leak();
}

/* A cause is any non-zero int the caller picks: negative, INT_MIN, INT_MAX,
 * values that are errno numbers, on cancel and deadline contexts, and it
 * reaches children unchanged. */
static void test_cause_any_nonzero_int(void **state)
{
	(void)state;
	const int causes[] = {-1, -2, INT_MIN, INT_MAX, 1, EINTR, ETIMEDOUT, 255, 256, 65536};
	for (size_t i = 0; i < sizeof causes / sizeof *causes; i++) {
		int cause = causes[i];
		ctx_cancel_t *h, *hc;
		ctx_t *c = ctx_with_cancel(ctx_background(), &h);
		ctx_t *k = ctx_with_cancel(c, &hc);
		ctx_cancel_cause(h, cause);
		ut_assert_done(c, ECANCELED, cause);
		ut_assert_done(k, ECANCELED, cause);
		ctx_cancel(hc);
		ctx_release(k);
		ctx_release(c);

		/* By hand on a deadline context. */
		c = ctx_with_deadline_cause(ctx_background(), ctx_now() + FOREVER_TIMEOUT, TOO_SLOW, &h);
		k = ctx_with_cancel(c, &hc);
		ctx_cancel_cause(h, cause);
		ut_assert_done(c, ECANCELED, cause);
		ut_assert_done(k, ECANCELED, cause);
		ctx_cancel(hc);
		ctx_release(k);
		ctx_release(c);

		/* As the deadline's cause. */
		c = ctx_with_timeout_cause(ctx_background(), 0, cause, &h);
		ut_assert_done(c, ETIMEDOUT, cause);
		k = ctx_with_cancel(c, &hc);
		ut_assert_done(k, ETIMEDOUT, cause);
		ctx_cancel(hc);
		ctx_cancel(h);
		ctx_release(k);
		ctx_release(c);
	}
	ut_assert_no_leak();
}

/* Live contexts of every kind report cause 0. */
static void test_cause_zero_while_live(void **state)
{
	(void)state;
	ctx_cancel_t *h1, *h2;
	ctx_t *c = ctx_with_cancel(ctx_background(), &h1);
	ctx_t *t = ctx_with_timeout_cause(c, FOREVER_TIMEOUT, TOO_SLOW, &h2);
	ctx_t *v = ctx_with_value(t, &key, NULL, NULL);
	ctx_t *w = ctx_without_cancel(v);
	ctx_t *all[] = {ctx_background(), ctx_todo(), c, t, v, w};
	for (int i = 0; i < 6; i++)
		ut_assert_live(all[i]);
	ctx_cancel(h2);
	ctx_cancel(h1);
	ctx_t *rel[] = {w, v, t, c};
	for (int i = 0; i < 4; i++)
		ctx_release(rel[i]);
	ut_assert_no_leak();
}

/* ---- TestCauseRace ---------------------------------------------------------- */

struct race {
	ctx_cancel_t *h;
	int cause;
	pthread_barrier_t start;
};

static void *race_canceller(void *arg)
{
	struct race *r = arg;
	pthread_barrier_wait(&r->start);
	ctx_cancel_cause(r->h, r->cause);
	return NULL;
}

/* Go's TestCauseRace: one thread polls ctx_err/ctx_cause while another
 * cancels with a cause. Whenever err was seen set, the cause read after it
 * is exactly the cause; a non-zero cause is exactly the cause and err is set
 * after it; cause 0 only while err was 0. Many rounds (run under TSan too). */
static void test_cause_race(void **state)
{
	(void)state;
	int rounds = UT_ITERS(500);
	for (int round = 0; round < rounds; round++) {
		struct race r;
		r.cause = 5000 + round;
		ctx_t *c = round % 2 ? ctx_with_cancel(ctx_background(), &r.h)
		                     : ctx_with_timeout_cause(ctx_background(), FOREVER_TIMEOUT, TOO_SLOW, &r.h);
		ctx_t *v = ctx_with_value(c, &key, NULL, NULL); /* read through a value layer too */
		pthread_barrier_init(&r.start, NULL, 2);
		pthread_t t;
		assert_int_equal(pthread_create(&t, NULL, race_canceller, &r), 0);
		pthread_barrier_wait(&r.start);
		long polls = 0;
		int bad_cause = 0, bad_order = 0;
		for (;;) {
			const ctx_t *x = polls % 2 ? v : c;
			int e1 = ctx_err(x);
			int cause = ctx_cause(x);
			int e2 = ctx_err(x);
			polls++;
			if (cause != 0 && cause != r.cause)
				bad_cause = cause;
			if (e1 != 0 && cause != r.cause)
				bad_order++;
			if (cause != 0 && e2 == 0)
				bad_order++;
			if (e1 != 0) {
				if (e1 != ECANCELED)
					bad_order++;
				break;
			}
		}
		UT_BOUNDED(UT_BOUND_MS, "test_cause_race: the thread returns",
		           pthread_join(t, NULL));
		pthread_barrier_destroy(&r.start);
		assert_int_equal(bad_cause, 0);
		assert_int_equal(bad_order, 0);
		ut_assert_done(c, ECANCELED, r.cause);
		ut_assert_done(v, ECANCELED, r.cause);
		ctx_release(v);
		ctx_release(c);
	}
	ut_assert_no_leak();
}

#define T(f) cmocka_unit_test_setup(f, ut_mark)

int main(void)
{
	enum { NROWS = sizeof rows / sizeof *rows };
	static const char *names[] = {
		"TestCause/Background",
		"TestCause/TODO",
		"TestCause/WithCancel",
		"TestCause/WithCancelCause",
		"TestCause/WithCancelCause_zero",
		"TestCause/parent_cause_before_child",
		"TestCause/parent_cause_after_child",
		"TestCause/parent_cause_before_nil",
		"TestCause/parent_cause_after_nil",
		"TestCause/parent_cause_after_plain_cancel",
		"TestCause/child_cause_after_nil",
		"TestCause/child_cause_before_nil",
		"TestCause/WithTimeout",
		"TestCause/WithTimeout_canceled",
		"TestCause/WithTimeoutCause",
		"TestCause/WithTimeoutCause_canceled",
		"TestCause/WithDeadlineCause_cancel_cause",
		"TestCause/WithTimeoutCause_fired_then_cancel_cause",
		"TestCause/WithTimeoutCause_stacked",
		"TestCause/WithTimeoutCause_stacked_canceled",
		"TestCause/cancel_cause_under_timeout_cause",
		"TestCause/cancel_cause_under_fired_timeout_cause",
		"TestCause/WithoutCancel",
		"TestCause/WithoutCancel_canceled",
		"TestCause/WithoutCancel_timeout",
		"TestCause/value_under_cause",
	};
	_Static_assert(sizeof names / sizeof *names == NROWS, "one name per row");
	const struct CMUnitTest fixed[] = {
		T(test_deadline_cause_propagates_to_children),
		T(test_deadline_without_cause_fires_etimedout),
		T(test_child_carries_parent_cause),
		T(test_cause_any_nonzero_int),
		T(test_cause_zero_while_live),
		T(test_cause_race),
	};
	enum { NFIXED = sizeof fixed / sizeof *fixed };
	struct CMUnitTest tests[NROWS + NFIXED];
	for (int i = 0; i < NROWS; i++) {
		struct CMUnitTest t = {
			.name = names[i],
			.test_func = test_cause_row,
			.setup_func = ut_mark,
			.teardown_func = NULL,
			.initial_state = (void *)&rows[i],
		};
		tests[i] = t;
	}
	for (int i = 0; i < NFIXED; i++)
		tests[NROWS + i] = fixed[i];
	return _cmocka_run_group_tests("test_cause", tests, NROWS + NFIXED, ut_group_setup, NULL);
}
