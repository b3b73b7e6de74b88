/* test_deadline.c: deadlines and timeouts, mostly on the fake clock of
 * src/ctx/testing.h (install, make contexts, move the clock, kick the timer
 * thread, then wait in real time): not firing early, the earlier-parent and
 * equal-deadline rules, past and negative deadlines, saturation, exact
 * deadlines, disarming, firing order of many timers, and one real-clock
 * timeout. */
#include <dirent.h>
#include <limits.h>

#include "util.h"

#define HOUR (3600 * CTX_SECOND)
#define LONG_WAIT (10 * CTX_SECOND) /* real time; only a hang reaches it */
#define SHORT_WAIT (20 * CTX_MILLISECOND)

static char key;

/* ---- the timer thread ------------------------------------------------------- */

static int count_threads(void)
{
	DIR *d = opendir("/proc/self/task");
	if (!d)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* "The library starts at most one internal thread (for timers), lazily, on
 * the first context with a deadline": none for contexts without one, one
 * for the first future deadline, still one after many more (armed, fired,
 * cancelled). Runs first in this program, before any deadline exists. */
static void test_timer_thread_lazy_and_single(void **state)
{
	(void)state;
	int n0 = count_threads();
	assert_true(n0 >= 1);
	ctx_cancel_t *h;
	ctx_t *c = ctx_with_cancel(ctx_background(), &h);
	ctx_t *v = ctx_with_value(c, &key, NULL, NULL);
	ctx_t *w = ctx_without_cancel(v);
	assert_int_equal(ctx_wait(c, CTX_MILLISECOND), 0);
	assert_int_equal(count_threads(), n0);
	ctx_cancel_t *ht;
	ctx_t *t = ctx_with_timeout(v, HOUR, &ht);
	int n1 = count_threads();
	/* TSan starts a background thread of its own with the first
	 * pthread_create of the program. */
	assert_true(n1 == n0 + 1 || (UT_TSAN && n1 == n0 + 2));
	enum { N = 100 };
	ctx_t *more[N];
	ctx_cancel_t *hm[N];
	for (int i = 0; i < N; i++)
		more[i] = ctx_with_timeout(i % 2 ? w : ctx_background(), i % 3 ? HOUR : CTX_MILLISECOND, &hm[i]);
	for (int i = 0; i < N; i++)
		if (i % 3 == 0)
			assert_int_equal(ctx_wait(more[i], LONG_WAIT), ETIMEDOUT);
	assert_int_equal(count_threads(), n1);
	for (int i = 0; i < N; i++) {
		ctx_cancel(hm[i]);
		ctx_release(more[i]);
	}
	ctx_cancel(ht);
	ctx_release(t);
	ctx_cancel(h);
	ctx_release(w);
	ctx_release(v);
	ctx_release(c);
	assert_int_equal(count_threads(), n1);
	ut_assert_no_leak_eventually();
}

/* ---- firing ------------------------------------------------------------------ */

/* A deadline fires no earlier than the deadline: live (after a kick and a
 * real wait) while the clock is before it, even 1 ns before; done with
 * ETIMEDOUT/ETIMEDOUT once the clock reaches it. The timer leaves the queue. */
static void test_deadline_fires_not_before(void **state)
{
	(void)state;
	size_t pending0 = ctx__timers_pending();
	ctx_time_t t0 = ut_fake_install();
	ctx_time_t d = t0 + 100 * CTX_MILLISECOND;
	ctx_cancel_t *h;
	ctx_t *c = ctx_with_deadline(ctx_background(), d, &h);
	ut_assert_live(c);
	assert_int_equal(ctx__timers_pending(), pending0 + 1);
	ctx__timers_kick();
	assert_int_equal(ctx_wait(c, SHORT_WAIT), 0);
	ut_fake_set(t0 + 50 * CTX_MILLISECOND);
	assert_int_equal(ctx_wait(c, SHORT_WAIT), 0);
	ut_fake_set(d - 1);
	assert_int_equal(ctx_wait(c, SHORT_WAIT), 0);
	ut_assert_live(c);
	ut_fake_set(d);
	assert_int_equal(ctx_wait(c, LONG_WAIT), ETIMEDOUT);
	ut_assert_done(c, ETIMEDOUT, ETIMEDOUT);
	assert_int_equal(ctx__timers_pending(), pending0);
	ctx_cancel(h); /* first cancellation won: nothing changes */
	ut_assert_done(c, ETIMEDOUT, ETIMEDOUT);
	ctx_release(c);
	ut_fake_teardown(NULL);
	ut_assert_no_leak_eventually();
}

/* When it fires, the cause is the given one (ETIMEDOUT when 0 or not given),
 * for deadline and timeout forms alike. */
static void test_deadline_fires_with_cause(void **state)
{
	(void)state;
	ctx_time_t t0 = ut_fake_install();
	ctx_cancel_t *h[4];
	ctx_t *c[4] = {
		ctx_with_deadline_cause(ctx_background(), t0 + 10, 42, &h[0]),
		ctx_with_timeout_cause(ctx_background(), 10, 43, &h[1]),
		ctx_with_timeout(ctx_background(), 10, &h[2]),
		ctx_with_timeout_cause(ctx_background(), 10, 0, &h[3]),
	};
	const int cause[4] = {42, 43, ETIMEDOUT, ETIMEDOUT};
	ut_fake_set(t0 + 10);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(ctx_wait(c[i], LONG_WAIT), ETIMEDOUT);
		ut_assert_done(c[i], ETIMEDOUT, cause[i]);
		ctx_cancel_cause(h[i], 7);
		ut_assert_done(c[i], ETIMEDOUT, cause[i]);
		ctx_release(c[i]);
	}
	ut_fake_teardown(NULL);
	ut_assert_no_leak_eventually();
}

/* ---- the earlier-parent and equal-deadline rules ----------------------------- */

/* ctx_with_deadline under a parent whose deadline is strictly earlier is a
 * WithCancel: the deadline shown is the parent's, the format ends in
 * ".WithCancel", no timer is armed, and the given cause is dropped: when the
 * parent's deadline fires, the child's cause is the parent's. */
static void test_earlier_parent_deadline_makes_with_cancel(void **state)
{
	(void)state;
	size_t pending0 = ctx__timers_pending();
	ctx_time_t t0 = ut_fake_install();
	ctx_time_t dp = t0 + CTX_SECOND;
	ctx_cancel_t *hp, *hc, *hc2, *hv;
	ctx_t *p = ctx_with_deadline_cause(ctx_background(), dp, 11, &hp);
	ctx_t *c = ctx_with_deadline_cause(p, dp + 1, 77, &hc);
	ctx_t *c2 = ctx_with_timeout_cause(p, 2 * CTX_SECOND, 78, &hc2);
	ctx_t *v = ctx_with_value(p, &key, NULL, NULL);
	ctx_t *cv = ctx_with_deadline(v, dp + HOUR, &hv); /* through a value layer */
	assert_int_equal(ctx__timers_pending(), pending0 + 1);
	ctx_t *kids[] = {c, c2, cv};
	for (int i = 0; i < 3; i++) {
		ctx_time_t got = 0;
		assert_true(ctx_deadline(kids[i], &got));
		assert_int_equal(got, dp);
		assert_true(ut_ends_with(ut_fmt(kids[i]), ".WithCancel"));
		assert_null(strstr(ut_fmt(kids[i]) + strlen("context.Background.WithDeadline("),
		                   "WithDeadline("));
	}
	assert_int_equal(ctx__children_count(p), 3);
	ut_fake_set(dp);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(ctx_wait(kids[i], LONG_WAIT), ETIMEDOUT);
		assert_int_equal(ctx_cause(kids[i]), 11);
	}
	assert_int_equal(ctx_cause(p), 11);
	ctx_cancel(hv);
	ctx_cancel(hc2);
	ctx_cancel(hc);
	ctx_cancel(hp);
	ctx_t *rel[] = {cv, v, c2, c, p};
	for (int i = 0; i < 5; i++)
		ctx_release(rel[i]);
	ut_fake_teardown(NULL);
	ut_assert_no_leak_eventually();
}

/* An equal deadline makes a deadline context of its own: format
 * "...WithDeadline(...).WithDeadline(...)", its own timer. A later deadline
 * under a WithoutCancel is a deadline context too (no deadline above). */
static void test_equal_deadline_makes_own_deadline_context(void **state)
{
	(void)state;
	size_t pending0 = ctx__timers_pending();
	ctx_time_t t0 = ut_fake_install();
	ctx_time_t d = t0 + CTX_SECOND;
	ctx_cancel_t *hp, *hc, *hw;
	ctx_t *p = ctx_with_deadline_cause(ctx_background(), d, 11, &hp);
	ctx_t *c = ctx_with_deadline_cause(p, d, 77, &hc);
	const char *f = ut_fmt(c);
	assert_true(ut_starts_with(f, "context.Background.WithDeadline("));
	const char *second = strstr(f + 1, ".WithDeadline(");
	assert_non_null(second);
	assert_true(ut_ends_with(f, "])"));
	assert_int_equal(ctx__timers_pending(), pending0 + 2);
	ctx_time_t got;
	assert_true(ctx_deadline(c, &got));
	assert_int_equal(got, d);
	assert_int_equal(ctx__children_count(p), 1);

	ctx_t *w = ctx_without_cancel(p);
	ctx_t *wd = ctx_with_deadline(w, d + HOUR, &hw);
	assert_true(ut_ends_with(ut_fmt(wd), "])"));
	assert_true(ctx_deadline(wd, &got));
	assert_int_equal(got, d + HOUR);
	assert_int_equal(ctx__timers_pending(), pending0 + 3);

	ut_fake_set(d);
	assert_int_equal(ctx_wait(c, LONG_WAIT), ETIMEDOUT);
	assert_true(ctx_cause(c) == 77 || ctx_cause(c) == 11); /* whichever fired first */
	assert_int_equal(ctx_wait(p, LONG_WAIT), ETIMEDOUT);
	ut_assert_live(wd); /* not under p for cancellation */
	ctx_cancel(hw);
	ctx_cancel(hc);
	ctx_cancel(hp);
	ctx_release(wd);
	ctx_release(w);
	ctx_release(c);
	ctx_release(p);
	ut_fake_teardown(NULL);
	ut_assert_no_leak_eventually();
}

/* Go's TestCanceledTimeout: a long timeout under a 1 s one (so a WithCancel
 * under it), cancelled by hand: done at once with ECANCELED, the parent
 * untouched. */
static void test_canceled_timeout(void **state)
{
	(void)state;
	ctx_cancel_t *hp, *hc;
	ctx_t *p = ctx_with_timeout(ctx_background(), CTX_SECOND, &hp);
	ctx_t *v = ctx_with_value(p, &key, NULL, NULL);
	ctx_t *c = ctx_with_timeout(v, HOUR, &hc);
	ctx_cancel(hc);
	ut_assert_done(c, ECANCELED, ECANCELED);
	ut_assert_live(p);
	ctx_cancel(hp);
	ctx_release(c);
	ctx_release(v);
	ctx_release(p);
	ut_assert_no_leak();
}

/* ---- past, negative and huge ------------------------------------------------------ */

/* A deadline at or before ctx_now() is done at once with ETIMEDOUT and its
 * cause (ETIMEDOUT or the given one), arms no timer, and is not left in its
 * parent's list. */
static void test_past_deadline_done_at_once(void **state)
{
	(void)state;
	size_t pending0 = ctx__timers_pending();
	ctx_time_t t0 = ut_fake_install();
	ctx_cancel_t *hp, *h[6];
	ctx_t *p = ctx_with_cancel(ctx_background(), &hp);
	ctx_t *c[6] = {
		ctx_with_deadline(p, t0, &h[0]),                /* exactly now */
		ctx_with_deadline(p, t0 - 1, &h[1]),
		ctx_with_deadline_cause(p, t0, 42, &h[2]),
		ctx_with_timeout(p, 0, &h[3]),
		ctx_with_timeout_cause(p, 0, 43, &h[4]),
		ctx_with_deadline_cause(p, INT64_MIN, 44, &h[5]),
	};
	const int cause[6] = {ETIMEDOUT, ETIMEDOUT, 42, ETIMEDOUT, 43, 44};
	for (int i = 0; i < 6; i++) {
		assert_non_null(c[i]);
		ut_assert_done(c[i], ETIMEDOUT, cause[i]);
	}
	assert_int_equal(ctx__timers_pending(), pending0);
	assert_int_equal(ctx__children_count(p), 0);
	ut_assert_live(p);
	for (int i = 0; i < 6; i++) {
		ctx_cancel(h[i]);
		ut_assert_done(c[i], ETIMEDOUT, cause[i]);
		ctx_release(c[i]);
	}
	ctx_cancel(hp);
	ctx_release(p);
	ut_fake_teardown(NULL);

	/* The real clock too. */
	ctx_cancel_t *hr;
	ctx_t *r = ctx_with_deadline(ctx_background(), ctx_now(), &hr);
	ut_assert_done(r, ETIMEDOUT, ETIMEDOUT);
	ctx_cancel(hr);
	ctx_release(r);
	ut_assert_no_leak();
}

/* A negative timeout is a past deadline (CTX_FOREVER is for waits only:
 * as a timeout it is -1 ns), and the deadline is now + timeout exactly. */
static void test_negative_timeout_is_past(void **state)
{
	(void)state;
	size_t pending0 = ctx__timers_pending();
	ctx_time_t t0 = ut_fake_install();
	const ctx_duration_t ds[] = {-1, CTX_FOREVER, -CTX_SECOND, -HOUR, INT64_MIN + 1, INT64_MIN};
	for (size_t i = 0; i < sizeof ds / sizeof *ds; i++) {
		ctx_cancel_t *h;
		ctx_t *c = ctx_with_timeout_cause(ctx_background(), ds[i], 9, &h);
		assert_non_null(c);
		ut_assert_done(c, ETIMEDOUT, 9);
		ctx_time_t got;
		assert_true(ctx_deadline(c, &got));
		assert_true(got < t0);
		assert_int_equal(got, t0 + ds[i]); /* t0 > 0: no overflow */
		ctx_cancel(h);
		ctx_release(c);
	}
	assert_int_equal(ctx__timers_pending(), pending0);
	ut_fake_teardown(NULL);
	ut_assert_no_leak();
}

/* Huge timeouts saturate instead of overflowing: ctx_deadline gives
 * INT64_MAX, the context is live and stays live when the clock moves on,
 * and the format does not break. */
static void test_huge_timeout_saturates(void **state)
{
	(void)state;
	size_t pending0 = ctx__timers_pending();
	ctx_time_t t0 = ut_fake_install();
	ctx_cancel_t *h[4];
	ctx_t *c[4] = {
		ctx_with_timeout(ctx_background(), INT64_MAX, &h[0]),
		ctx_with_timeout(ctx_background(), INT64_MAX - 1, &h[1]),
		ctx_with_deadline(ctx_background(), INT64_MAX, &h[2]),
		ctx_with_timeout_cause(ctx_background(), INT64_MAX - t0, 5, &h[3]), /* exactly INT64_MAX */
	};
	for (int i = 0; i < 4; i++) {
		assert_non_null(c[i]);
		ut_assert_live(c[i]);
		ctx_time_t got = 0;
		assert_true(ctx_deadline(c[i], &got));
		assert_int_equal(got, INT64_MAX);
		char buf[256];
		int n = ctx_format(c[i], buf, sizeof buf);
		assert_true(n > 0 && (size_t)n < sizeof buf);
		assert_true(ut_starts_with(buf, "context.Background.WithDeadline("));
	}
	assert_int_equal(ctx__timers_pending(), pending0 + 4);
	ut_fake_set(t0 + 1000 * HOUR);
	for (int i = 0; i < 4; i++)
		assert_int_equal(ctx_wait(c[i], i == 0 ? SHORT_WAIT : 0), 0);
	ut_fake_set(INT64_MAX - 1);
	assert_int_equal(ctx_wait(c[0], SHORT_WAIT), 0);
	for (int i = 0; i < 4; i++) {
		ctx_cancel(h[i]);
		ut_assert_done(c[i], ECANCELED, ECANCELED);
		ctx_release(c[i]);
	}
	assert_int_equal(ctx__timers_pending(), pending0);
	ut_fake_teardown(NULL);

	/* On the real clock: the timer thread does not fire it or choke on it. */
	ctx_cancel_t *hr;
	ctx_t *r = ctx_with_timeout(ctx_background(), INT64_MAX, &hr);
	ctx_time_t got;
	assert_true(ctx_deadline(r, &got));
	assert_int_equal(got, INT64_MAX);
	assert_int_equal(ctx_wait(r, SHORT_WAIT), 0);
	ctx_cancel(hr);
	ctx_release(r);
	ut_assert_no_leak();
}

/* ctx_with_timeout(p, d) is ctx_with_deadline(p, ctx_now() + d): exact on the
 * fake clock, and within the call on the real one. */
static void test_timeout_is_now_plus_d(void **state)
{
	(void)state;
	ctx_time_t t0 = ut_fake_install();
	const ctx_duration_t ds[] = {1, 999, CTX_MILLISECOND, 5 * CTX_SECOND + 7, HOUR};
	for (size_t i = 0; i < sizeof ds / sizeof *ds; i++) {
		ut_fake_set(t0 + (ctx_time_t)i * 12345);
		ctx_time_t now = ctx_now();
		ctx_cancel_t *h1, *h2;
		ctx_t *a = ctx_with_timeout(ctx_background(), ds[i], &h1);
		ctx_t *b = ctx_with_timeout_cause(ctx_background(), ds[i], 3, &h2);
		ctx_time_t da, db;
		assert_true(ctx_deadline(a, &da));
		assert_true(ctx_deadline(b, &db));
		assert_int_equal(da, now + ds[i]);
		assert_int_equal(db, now + ds[i]);
		ctx_cancel(h1);
		ctx_cancel(h2);
		ctx_release(a);
		ctx_release(b);
	}
	ut_fake_teardown(NULL);

	ctx_time_t before = ctx_now();
	ctx_cancel_t *h;
	ctx_t *c = ctx_with_timeout(ctx_background(), HOUR, &h);
	ctx_time_t after = ctx_now();
	ctx_time_t d;
	assert_true(ctx_deadline(c, &d));
	assert_true(d >= before + HOUR && d <= after + HOUR);
	ctx_cancel(h);
	ctx_release(c);
	ut_assert_no_leak();
}

/* ctx_deadline returns exactly the deadline given, inherited through value
 * and cancel children and by later-deadline children; none for Background,
 * TODO, WithoutCancel (and what is under it) or a plain WithCancel; the out
 * parameter may be NULL. */
static void test_deadline_exact_and_inherited(void **state)
{
	(void)state;
	ctx_time_t d = ctx_now() + HOUR + 123456789;
	ctx_cancel_t *ht, *hc, *hl, *hx;
	ctx_t *t = ctx_with_deadline(ctx_background(), d, &ht);
	ctx_t *v = ctx_with_value(t, &key, NULL, NULL);
	ctx_t *c = ctx_with_cancel(v, &hc);
	ctx_t *l = ctx_with_deadline(c, d + 1, &hl);
	ctx_t *w = ctx_without_cancel(c);
	ctx_t *wv = ctx_with_value(w, &key, NULL, NULL);
	ctx_t *x = ctx_with_cancel(ctx_background(), &hx);
	ctx_t *with[] = {t, v, c, l};
	for (int i = 0; i < 4; i++) {
		ctx_time_t got = 0;
		assert_true(ctx_deadline(with[i], &got));
		assert_int_equal(got, d);
		assert_true(ctx_deadline(with[i], NULL));
		assert_true(ctx_deadline(with[i], &got)); /* stable */
		assert_int_equal(got, d);
	}
	ctx_t *without[] = {ctx_background(), ctx_todo(), w, wv, x};
	for (int i = 0; i < 5; i++) {
		ctx_time_t got = 12345;
		assert_false(ctx_deadline(without[i], &got));
		assert_false(ctx_deadline(without[i], NULL));
	}
	/* Still the same deadline once cancelled. */
	ctx_cancel(ht);
	ctx_time_t got = 0;
	assert_true(ctx_deadline(c, &got));
	assert_int_equal(got, d);
	ctx_cancel(hx);
	ctx_cancel(hl);
	ctx_cancel(hc);
	ctx_t *rel[] = {x, wv, w, l, c, v, t};
	for (int i = 0; i < 7; i++)
		ctx_release(rel[i]);
	ut_assert_no_leak();
}

/* ---- disarming ------------------------------------------------------------------ */

/* Timers are disarmed when cancelled by hand, when an ancestor is cancelled,
 * and when released without being cancelled (handle NULL, or the handle used
 * after the last reference went). */
static void test_timers_disarmed_on_cancel_and_release(void **state)
{
	(void)state;
	size_t pending0 = ctx__timers_pending();
	ctx_cancel_t *h1, *h2, *hp, *hk;
	ctx_t *a = ctx_with_timeout(ctx_background(), HOUR, &h1);
	ctx_t *b = ctx_with_timeout(ctx_background(), 2 * HOUR, &h2);
	assert_int_equal(ctx__timers_pending(), pending0 + 2);
	ctx_cancel(h1);
	assert_int_equal(ctx__timers_pending(), pending0 + 1);
	ctx_cancel(h2);
	assert_int_equal(ctx__timers_pending(), pending0);
	ctx_release(a);
	ctx_release(b);

	/* Through the parent. */
	ctx_t *p = ctx_with_cancel(ctx_background(), &hp);
	ctx_time_t kd = ctx_now() + HOUR;
	ctx_t *k = ctx_with_deadline(p, kd, &hk);
	ctx_t *kk = ctx_with_deadline(k, kd - 1, NULL); /* earlier: a timer of its own */
	assert_int_equal(ctx__timers_pending(), pending0 + 2);
	ctx_cancel(hp);
	assert_int_equal(ctx__timers_pending(), pending0);
	ctx_cancel(hk);
	ctx_release(kk);
	ctx_release(k);
	ctx_release(p);

	/* Released, never cancelled. */
	ctx_t *n = ctx_with_timeout(ctx_background(), HOUR, NULL);
	ctx_t *n2 = ctx_with_deadline_cause(ctx_background(), ctx_now() + HOUR, 4, NULL);
	assert_int_equal(ctx__timers_pending(), pending0 + 2);
	ctx_release(n);
	assert_int_equal(ctx__timers_pending(), pending0 + 1);
	ctx_release(n2);
	assert_int_equal(ctx__timers_pending(), pending0);

	/* The reference goes first, then the handle. */
	ctx_t *m = ctx_with_timeout(ctx_background(), HOUR, &h1);
	ctx_release(m);
	assert_int_equal(ctx__timers_pending(), pending0 + 1);
	ctx_cancel(h1);
	assert_int_equal(ctx__timers_pending(), pending0);
	ut_assert_no_leak();
}

static void signal_latch(void *arg) { ut_latch_add(arg, 1); }

/* A timer that fires leaves its parent's list (as Go's timer callback
 * cancels with removeFromParent). The after-func on the timer context runs
 * at the end of the firing, after that unlink. */
static void test_fired_timer_leaves_parent(void **state)
{
	(void)state;
	ctx_time_t t0 = ut_fake_install();
	ctx_cancel_t *hp, *ht;
	ctx_t *p = ctx_with_cancel(ctx_background(), &hp);
	ctx_t *t = ctx_with_deadline(p, t0 + 5, &ht);
	struct ut_latch fired;
	ut_latch_init(&fired);
	assert_int_equal(ctx_after_func(t, signal_latch, &fired, NULL), 0);
	assert_int_equal(ctx__children_count(p), 1);
	ut_fake_set(t0 + 5);
	assert_int_equal(ut_latch_wait(&fired, 1, 10), 1);
	assert_int_equal(ctx__children_count(p), 0);
	ut_assert_live(p);
	ctx_cancel(ht);
	ctx_release(t);
	ctx_cancel(hp);
	ctx_release(p);
	ut_fake_teardown(NULL);
	ut_assert_no_leak_eventually();
	ut_latch_destroy(&fired);
}

/* ---- many timers -------------------------------------------------------------------- */

enum { MANY = 10000, STEPS = 200 };

struct fired_log {
	struct ut_latch latch;   /* count = how many fired */
	ctx_time_t deadline[MANY]; /* in firing order */
	ctx_time_t clock_at[MANY]; /* ctx_now() when it fired */
};

struct timer_rec {
	struct fired_log *log;
	ctx_time_t deadline;
};

static void record_fire(void *arg)
{
	struct timer_rec *r = arg;
	struct fired_log *log = r->log;
	ctx_time_t now = ctx_now();
	pthread_mutex_lock(&log->latch.mu);
	long i = log->latch.count;
	if (i < MANY) {
		log->deadline[i] = r->deadline;
		log->clock_at[i] = now;
	}
	log->latch.count++;
	pthread_cond_broadcast(&log->latch.cond);
	pthread_mutex_unlock(&log->latch.mu);
}

static int cmp_time(const void *a, const void *b)
{
	ctx_time_t x = *(const ctx_time_t *)a, y = *(const ctx_time_t *)b;
	return x < y ? -1 : x > y;
}

/* 10000 pending timers with random deadlines (fake clock, moved forward in
 * 200 steps): after each step exactly the timers due by then have fired,
 * none before its deadline, and they fired in order of deadline. Each
 * context is kept alive only by its after-func registration, and everything
 * is freed once it has fired. */
static void test_many_timers_fire_in_deadline_order(void **state)
{
	(void)state;
	ut_seed("many_timers");
	size_t pending0 = ctx__timers_pending();
	ctx_time_t t0 = ut_fake_install();
	const ctx_duration_t span = 10 * CTX_SECOND;
	/* Static: a failed assertion leaks nothing. */
	static struct fired_log log_storage;
	static struct timer_rec recs[MANY];
	static ctx_time_t sorted[MANY];
	struct fired_log *log = &log_storage;
	ut_latch_init(&log->latch);
	for (int i = 0; i < MANY; i++) {
		recs[i].log = log;
		recs[i].deadline = t0 + 1 + (ctx_time_t)ut_randn((uint64_t)span);
		sorted[i] = recs[i].deadline;
		ctx_t *c = ctx_with_deadline(ctx_background(), recs[i].deadline, NULL);
		assert_non_null(c);
		assert_int_equal(ctx_after_func(c, record_fire, &recs[i], NULL), 0);
		ctx_release(c); /* the registration keeps it */
	}
	qsort(sorted, MANY, sizeof *sorted, cmp_time);
	assert_int_equal(ctx__timers_pending(), pending0 + MANY);
	assert_int_equal(ut_latch_get(&log->latch), 0);

	long due = 0;
	for (int s = 1; s <= STEPS; s++) {
		ctx_time_t now = t0 + span * s / STEPS;
		while (due < MANY && sorted[due] <= now)
			due++;
		ut_fake_set(now);
		long got = ut_latch_wait(&log->latch, due, 10);
		assert_int_equal(got, due);
	}
	assert_int_equal(due, MANY);
	assert_int_equal(ut_latch_get(&log->latch), MANY);
	long out_of_order = 0, early = 0;
	for (int i = 0; i < MANY; i++) {
		if (i > 0 && log->deadline[i] < log->deadline[i - 1])
			out_of_order++;
		if (log->clock_at[i] < log->deadline[i])
			early++;
	}
	assert_int_equal(early, 0);
	if (out_of_order)
		print_message("many_timers: %ld of %d fired before an earlier deadline\n", out_of_order, MANY);
	assert_int_equal(out_of_order, 0);
	assert_int_equal(ctx__timers_pending(), pending0);
	ut_fake_teardown(NULL);
	ut_assert_no_leak_eventually();
	ut_latch_destroy(&log->latch);
}

/* Cancelling from the middle of a large queue. */

struct mid_rec {
	struct fired_log *log;
	ctx_time_t deadline;
	ctx_cancel_t *cancel;  /* NULL once used */
	atomic_bool by_cancel; /* set before this test cancels it */
};

static atomic_long mid_cancelled_runs;

static void mid_record(void *arg)
{
	struct mid_rec *r = arg;
	if (atomic_load(&r->by_cancel)) {
		atomic_fetch_add(&mid_cancelled_runs, 1);
		return;
	}
	struct timer_rec t = {.log = r->log, .deadline = r->deadline};
	record_fire(&t);
}

static int cmp_mid(const void *a, const void *b)
{
	const struct mid_rec *x = *(struct mid_rec *const *)a, *y = *(struct mid_rec *const *)b;
	return x->deadline < y->deadline ? -1 : x->deadline > y->deadline;
}

/* 10000 pending timers (fake clock). The earliest tenth fire first (so the
 * heap has been restructured by removals of its root); then half of all
 * timers are cancelled, in random order, from the middle of the deadline
 * order (ranks 25% to 75%), plus every 10th of the rest still pending. Then
 * the clock moves forward in 100 steps: after each, exactly the remaining
 * timers due by then have fired, none early, none cancelled, all in deadline
 * order, and the queue ends empty. */
static void test_cancel_middle_of_queue_rest_fire_in_order(void **state)
{
	(void)state;
	ut_seed("cancel_middle");
	enum { STEPS2 = 100 };
	size_t pending0 = ctx__timers_pending();
	ctx_time_t t0 = ut_fake_install();
	const ctx_duration_t span = 10 * CTX_SECOND;
	static struct fired_log log_storage;
	static struct mid_rec recs[MANY];
	static struct mid_rec *by_deadline[MANY];
	static int order[MANY];
	struct fired_log *log = &log_storage;
	ut_latch_init(&log->latch);
	atomic_store(&mid_cancelled_runs, 0);
	for (int i = 0; i < MANY; i++) {
		recs[i].log = log;
		recs[i].deadline = t0 + 1 + (ctx_time_t)ut_randn((uint64_t)span);
		atomic_init(&recs[i].by_cancel, false);
		ctx_t *c = ctx_with_deadline(ctx_background(), recs[i].deadline, &recs[i].cancel);
		assert_non_null(c);
		assert_int_equal(ctx_after_func(c, mid_record, &recs[i], NULL), 0);
		ctx_release(c); /* the handle and the registration keep it */
		by_deadline[i] = &recs[i];
	}
	qsort(by_deadline, MANY, sizeof *by_deadline, cmp_mid);
	assert_int_equal(ctx__timers_pending(), pending0 + MANY);

	/* The earliest tenth fire. */
	ctx_time_t now = by_deadline[MANY / 10 - 1]->deadline;
	long due = 0;
	while (due < MANY && by_deadline[due]->deadline <= now)
		due++;
	ut_fake_set(now);
	assert_int_equal(ut_latch_wait(&log->latch, due, 10), due);

	/* Cancel the middle half and every 10th of the rest not yet due. */
	long ncancel = 0;
	for (int i = 0; i < MANY; i++)
		order[i] = i;
	ut_shuffle(order, MANY);
	for (int k = 0; k < MANY; k++) {
		int rank = order[k];
		struct mid_rec *r = by_deadline[rank];
		bool middle = rank >= MANY / 4 && rank < 3 * MANY / 4;
		if (r->deadline <= now || !(middle || rank % 10 == 0))
			continue;
		atomic_store(&r->by_cancel, true);
		ctx_cancel(r->cancel); /* runs mid_record here, before it returns */
		r->cancel = NULL;
		ncancel++;
	}
	assert_true(ncancel >= MANY / 2);
	assert_int_equal(atomic_load(&mid_cancelled_runs), ncancel);
	assert_int_equal(ctx__timers_pending(), pending0 + (size_t)(MANY - due - ncancel));

	/* The rest fire, step by step. */
	long expect = due;
	int next = (int)due; /* next rank that may still fire */
	for (int s = 1; s <= STEPS2; s++) {
		ctx_time_t t = now + (t0 + span - now) * s / STEPS2;
		while (next < MANY && by_deadline[next]->deadline <= t) {
			if (!atomic_load(&by_deadline[next]->by_cancel))
				expect++;
			next++;
		}
		ut_fake_set(t);
		long got = ut_latch_wait(&log->latch, expect, 10);
		if (got != expect)
			fail_msg("step %d: %ld timers fired, %ld due (a timer was lost when "
			         "others were cancelled around it?)",
			         s, got, expect);
	}
	assert_int_equal(next, MANY);
	assert_int_equal(expect, MANY - ncancel);
	long out_of_order = 0, early = 0;
	for (long i = 0; i < expect; i++) {
		if (i > 0 && log->deadline[i] < log->deadline[i - 1])
			out_of_order++;
		if (log->clock_at[i] < log->deadline[i])
			early++;
	}
	assert_int_equal(early, 0);
	if (out_of_order)
		fail_msg("%ld of %ld timers fired before an earlier deadline", out_of_order, expect);
	assert_int_equal(atomic_load(&mid_cancelled_runs), ncancel); /* none fired again */
	assert_int_equal(ctx__timers_pending(), pending0);
	for (int i = 0; i < MANY; i++)
		if (recs[i].cancel)
			ctx_cancel(recs[i].cancel); /* done already: frees the handle */
	ut_fake_teardown(NULL);
	ut_assert_no_leak_eventually();
	ut_latch_destroy(&log->latch);
}

/* ---- the real clock ----------------------------------------------------------------- */

struct at {
	struct ut_latch latch;
	_Atomic ctx_time_t when;
};

static void record_time(void *arg)
{
	struct at *a = arg;
	atomic_store(&a->when, ctx_now());
	ut_latch_add(&a->latch, 1);
}

/* A 20 ms timeout on the real clock fires, not before its deadline (the
 * clock read in the after-func it triggers is at or past it), and is seen
 * by a waiter after >= 20 ms (and, generously, within 2 s). */
static void test_real_clock_timeout_fires(void **state)
{
	(void)state;
	struct at a;
	ut_latch_init(&a.latch);
	atomic_init(&a.when, 0);
	ctx_time_t start = ctx_now();
	ctx_cancel_t *h;
	ctx_t *c = ctx_with_timeout(ctx_background(), 20 * CTX_MILLISECOND, &h);
	ctx_time_t d;
	assert_true(ctx_deadline(c, &d));
	assert_true(d >= start + 20 * CTX_MILLISECOND);
	assert_int_equal(ctx_after_func(c, record_time, &a, NULL), 0);
	assert_int_equal(ctx_wait(c, LONG_WAIT), ETIMEDOUT);
	ctx_time_t seen = ctx_now();
	assert_true(seen - start >= 20 * CTX_MILLISECOND);
	assert_true(seen >= d);
	assert_true(seen - start < 2 * CTX_SECOND);
	assert_int_equal(ut_latch_wait(&a.latch, 1, 10), 1);
	assert_true(atomic_load(&a.when) >= d);
	ut_assert_done(c, ETIMEDOUT, ETIMEDOUT);
	ctx_cancel(h);
	ctx_release(c);
	ut_assert_no_leak_eventually();
	ut_latch_destroy(&a.latch);
}

#define T(f) cmocka_unit_test_setup_teardown(f, ut_mark, ut_fake_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_timer_thread_lazy_and_single), /* first: no deadline yet */
		T(test_deadline_fires_not_before),
		T(test_deadline_fires_with_cause),
		T(test_earlier_parent_deadline_makes_with_cancel),
		T(test_equal_deadline_makes_own_deadline_context),
		T(test_canceled_timeout),
		T(test_past_deadline_done_at_once),
		T(test_negative_timeout_is_past),
		T(test_huge_timeout_saturates),
		T(test_timeout_is_now_plus_d),
		T(test_deadline_exact_and_inherited),
		T(test_timers_disarmed_on_cancel_and_release),
		T(test_fired_timer_leaves_parent),
		T(test_many_timers_fire_in_deadline_order),
		T(test_cancel_middle_of_queue_rest_fire_in_order),
		T(test_real_clock_timeout_fires),
	};
	return cmocka_run_group_tests(tests, ut_group_setup, NULL);
}
