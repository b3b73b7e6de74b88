/* test_after_at.c: ctx_after_func_at, the after-func in caller-provided
 * storage (ctx_after_slot_t). The rules of ctx_after_func hold (fn once,
 * in place, in full before the triggering cancel returns; stop waits for a
 * running fn); on top of them: no allocation ever; the library is done with
 * the slot once a ctx_after_stop outside fn has returned, whatever it
 * returned, so the slot may be freed or reused then (slots here are malloc'd
 * and freed right after the stop, so ASan and TSan see any later touch);
 * ctx_after_stop may be called more than once, even concurrently; the
 * registration does not hold its context (the caller does).
 *
 * Callbacks may run in other threads, so they never use cmocka's
 * assertions: they record what they saw and the test checks it. */
#include "util.h"

#include <stdio.h>

#include "ctx/testing.h"

#define MS CTX_MILLISECOND

static long baseline, allocs0;

static int test_setup(void **state)
{
	(void)state;
	atomic_store(&ut_fail_next, 0);
	baseline = ut_base = ut_live();
	allocs0 = ut_allocs_now();
	return 0;
}

#define assert_balanced() assert_int_equal(ut_live(), baseline)

/* A registration's record and its slot, in one malloc'd block (not through
 * the library's allocator) that the test frees once stop has returned. */
struct reg {
	ctx_after_slot_t slot;
	atomic_int calls;
	atomic_int finished;
	pthread_t thread;
	ctx_t *ctx;
	int err_seen;
};

static struct reg *reg_new(ctx_t *ctx)
{
	struct reg *r = calloc(1, sizeof *r);
	assert_non_null(r);
	r->ctx = ctx;
	return r;
}

static void reg_fn(void *arg)
{
	struct reg *r = arg;
	r->thread = pthread_self();
	if (r->ctx)
		r->err_seen = ctx_err(r->ctx);
	atomic_fetch_add(&r->calls, 1);
	atomic_store(&r->finished, 1);
}

static void *cancel_main(void *arg)
{
	ctx_cancel(arg);
	return NULL;
}

/* ---- no allocation ---- */

static void test_allocates_nothing(void **state)
{
	(void)state;
	ctx_cancel_t *cancel;
	ctx_t *c = ctx_with_cancel(ctx_background(), &cancel);
	long a0 = ut_allocs_now();
	/* Every allocation would fail: registering still works. */
	ut_fail_allocs(1000000);
	struct reg *r1 = reg_new(c), *r2 = reg_new(c);
	ctx_after_t *h1 = ctx_after_func_at(c, &r1->slot, reg_fn, r1);
	ctx_after_t *h2 = ctx_after_func_at(c, &r2->slot, reg_fn, r2);
	assert_non_null(h1);
	assert_non_null(h2);
	assert_int_equal(ctx__children_count(c), 2);
	assert_true(ctx_after_stop(h1));
	atomic_store(&ut_fail_next, 0);
	ctx_cancel(cancel);
	ut_fail_allocs(1000000);
	assert_false(ctx_after_stop(h2));
	/* On a done context: fn at once, still nothing allocated. */
	struct reg *r3 = reg_new(c);
	ctx_after_t *h3 = ctx_after_func_at(c, &r3->slot, reg_fn, r3);
	assert_non_null(h3);
	assert_int_equal(atomic_load(&r3->calls), 1);
	assert_false(ctx_after_stop(h3));
	atomic_store(&ut_fail_next, 0);
	assert_int_equal(ut_allocs_now(), a0);
	assert_int_equal(atomic_load(&r1->calls), 0);
	assert_int_equal(atomic_load(&r2->calls), 1);
	free(r1);
	free(r2);
	free(r3);
	ctx_release(c);
	assert_balanced();
}

/* ---- stop before the cancel: true, fn never runs ---- */

static void test_stop_before_fire(void **state)
{
	(void)state;
	ctx_cancel_t *cancel;
	ctx_t *c = ctx_with_cancel(ctx_background(), &cancel);
	struct reg *r = reg_new(c);
	ctx_after_t *h = ctx_after_func_at(c, &r->slot, reg_fn, r);
	assert_non_null(h);
	assert_int_equal(ctx__children_count(c), 1);
	assert_true(ctx_after_stop(h));
	assert_int_equal(ctx__children_count(c), 0);
	/* Later calls: false (already stopped), and harmless. */
	assert_false(ctx_after_stop(h));
	assert_false(ctx_after_stop(h));
	free(r); /* the library is done with it */
	ctx_cancel(cancel);
	ctx_release(c);
	assert_balanced();
}

/* ---- the cancel first: fn once, in the cancelling thread; stop false ---- */

static void test_fire_then_stop(void **state)
{
	(void)state;
	ctx_cancel_t *cancel;
	ctx_t *c = ctx_with_cancel(ctx_background(), &cancel);
	struct reg *r = reg_new(c);
	ctx_after_t *h = ctx_after_func_at(c, &r->slot, reg_fn, r);
	assert_non_null(h);
	assert_int_equal(ctx_wait(c, 0), 0); /* live */
	assert_int_equal(atomic_load(&r->calls), 0);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, cancel_main, cancel), 0);
	assert_true(ut_join_ms(t, 10000, NULL));
	/* In full before that cancel returned, in its thread, seeing c done. */
	assert_int_equal(atomic_load(&r->calls), 1);
	assert_true(pthread_equal(r->thread, t));
	assert_int_equal(r->err_seen, ECANCELED);
	assert_false(ctx_after_stop(h));
	assert_false(ctx_after_stop(h));
	free(r);
	ctx_release(c);
	assert_balanced();
}

/* ---- a deadline: fn in the timer thread ---- */

static void test_fire_by_deadline(void **state)
{
	(void)state;
	/* On the test clock, so that the deadline cannot pass before the
	 * registration (then fn would run at once, in this thread). */
	ctx_time_t t0 = ut_fake_install();
	ctx_cancel_t *cancel;
	ctx_t *c = ctx_with_timeout(ctx_background(), 1 * MS, &cancel);
	struct reg *r = reg_new(c);
	ctx_after_t *h = ctx_after_func_at(c, &r->slot, reg_fn, r);
	assert_non_null(h);
	assert_int_equal(atomic_load(&r->calls), 0);
	ut_fake_set(t0 + 2 * MS);
	assert_int_equal(ctx_wait(c, 10000 * MS), ETIMEDOUT);
	/* The timer thread may still be in fn: stop waits for it. */
	bool stopped = ctx_after_stop(h);
	if (stopped) {
		assert_int_equal(atomic_load(&r->calls), 0);
	} else {
		assert_int_equal(atomic_load(&r->finished), 1);
		assert_int_equal(atomic_load(&r->calls), 1);
		assert_false(pthread_equal(r->thread, pthread_self()));
		assert_int_equal(r->err_seen, ETIMEDOUT);
	}
	free(r);
	ctx_cancel(cancel);
	ctx_release(c);
	ut_assert_no_leak_eventually();
}

/* ---- already done / never done ---- */

static void test_done_and_never_done(void **state)
{
	(void)state;
	ctx_cancel_t *cancel;
	ctx_t *c = ctx_with_cancel(ctx_background(), &cancel);
	ctx_cancel(cancel);
	struct reg *r = reg_new(c);
	ctx_after_t *h = ctx_after_func_at(c, &r->slot, reg_fn, r);
	assert_non_null(h);
	/* At once, in this thread, before the call returned. */
	assert_int_equal(atomic_load(&r->calls), 1);
	assert_true(pthread_equal(r->thread, pthread_self()));
	assert_false(ctx_after_stop(h));
	free(r);
	ctx_release(c);

	/* Never done: fn never runs, nothing is held, stop is true. */
	static const int key = 0;
	ctx_t *p = ctx_with_cancel(ctx_background(), &cancel);
	ctx_t *w = ctx_without_cancel(p);
	ctx_t *vw = ctx_with_value(w, &key, NULL, NULL);
	ctx_t *never[] = {ctx_background(), ctx_todo(), w, vw};
	ctx_cancel(cancel); /* p done: w and vw are still never done */
	for (size_t i = 0; i < sizeof never / sizeof never[0]; i++) {
		r = reg_new(NULL);
		h = ctx_after_func_at(never[i], &r->slot, reg_fn, r);
		assert_non_null(h);
		assert_true(ctx_after_stop(h));
		assert_int_equal(atomic_load(&r->calls), 0);
		free(r);
	}
	ctx_release(vw);
	ctx_release(w);
	ctx_release(p);
	assert_balanced();
}

/* ---- EINVAL ---- */

static void test_einval(void **state)
{
	(void)state;
	ctx_cancel_t *cancel;
	ctx_t *c = ctx_with_cancel(ctx_background(), &cancel);
	struct reg *r = reg_new(c);
	errno = 0;
	assert_null(ctx_after_func_at(NULL, &r->slot, reg_fn, r));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(ctx_after_func_at(c, NULL, reg_fn, r));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(ctx_after_func_at(c, &r->slot, NULL, r));
	assert_int_equal(errno, EINVAL);
	assert_int_equal(ctx__children_count(c), 0);
	ctx_cancel(cancel);
	assert_int_equal(atomic_load(&r->calls), 0);
	free(r);
	ctx_release(c);
	assert_balanced();
}

/* ---- the registration does not hold its context (the caller does) ---- */

static void test_does_not_hold_ctx(void **state)
{
	(void)state;
	/* Pending: the caller's reference and the handle's are all there is,
	 * so dropping both frees the context (after the stop). */
	ctx_cancel_t *cancel;
	ctx_t *c = ctx_with_cancel(ctx_background(), &cancel);
	struct reg *r = reg_new(c);
	ctx_after_t *h = ctx_after_func_at(c, &r->slot, reg_fn, r);
	assert_non_null(h);
	assert_true(ctx_after_stop(h));
	ctx_cancel(cancel);
	ctx_release(c);
	assert_balanced();
	assert_int_equal(atomic_load(&r->calls), 0);

	/* Run: once fn has run and stop returned, releasing frees it. */
	c = ctx_with_cancel(ctx_background(), &cancel);
	r->ctx = c;
	h = ctx_after_func_at(c, &r->slot, reg_fn, r);
	ctx_cancel(cancel);
	assert_int_equal(atomic_load(&r->calls), 1);
	assert_false(ctx_after_stop(h));
	ctx_release(c);
	assert_balanced();
	free(r);
}

/* ---- the slot reused, on the same and on other contexts ---- */

static void test_reuse(void **state)
{
	(void)state;
	struct reg *r = reg_new(NULL);
	int ran = 0, stopped = 0;
	for (int i = 0; i < 1000; i++) {
		ctx_cancel_t *cancel;
		ctx_t *c = ctx_with_cancel(ctx_background(), &cancel);
		atomic_store(&r->calls, 0);
		r->ctx = c;
		ctx_after_t *h = ctx_after_func_at(c, &r->slot, reg_fn, r);
		assert_non_null(h);
		if (i % 3 == 0) {
			assert_true(ctx_after_stop(h));
			stopped++;
			/* Again, on the same context, right away. */
			h = ctx_after_func_at(c, &r->slot, reg_fn, r);
			assert_non_null(h);
		}
		if (i % 2 == 0) {
			ctx_cancel(cancel);
			assert_int_equal(atomic_load(&r->calls), 1);
			assert_false(ctx_after_stop(h));
			ran++;
		} else {
			assert_true(ctx_after_stop(h));
			assert_int_equal(ctx__children_count(c), 0);
			ctx_cancel(cancel);
			assert_int_equal(atomic_load(&r->calls), 0);
		}
		ctx_release(c);
		ctx_flush_cache(); /* so the next round's context is allocated */
	}
	assert_true(ran > 0 && stopped > 0);
	free(r);
	assert_balanced();
	assert_int_equal(ut_allocs_now() - allocs0, 1000); /* the contexts only */
}

/* ---- several slots: registration order; mixed with heap ones ---- */

static int order[8];
static atomic_int order_n;
static void order_fn(void *arg) { order[atomic_fetch_add(&order_n, 1)] = (int)(intptr_t)arg; }

static void test_order_with_heap_ones(void **state)
{
	(void)state;
	ctx_cancel_t *cancel;
	ctx_t *c = ctx_with_cancel(ctx_background(), &cancel);
	ctx_after_slot_t slots[4];
	ctx_after_t *h[8];
	atomic_store(&order_n, 0);
	for (int i = 0; i < 8; i++) {
		if (i % 2)
			assert_int_equal(ctx_after_func(c, order_fn, (void *)(intptr_t)i, &h[i]), 0);
		else
			assert_non_null(h[i] = ctx_after_func_at(c, &slots[i / 2], order_fn,
			                                         (void *)(intptr_t)i));
	}
	assert_true(ctx_after_stop(h[2]));
	assert_true(ctx_after_stop(h[3]));
	ctx_cancel(cancel);
	assert_int_equal(atomic_load(&order_n), 6);
	const int want[] = {0, 1, 4, 5, 6, 7};
	for (int i = 0; i < 6; i++)
		assert_int_equal(order[i], want[i]);
	for (int i = 0; i < 8; i++)
		if (i != 2 && i != 3)
			assert_false(ctx_after_stop(h[i]));
	ctx_release(c);
	assert_balanced();
}

/* ---- stop while fn runs in another thread: waits, then the slot is free ---- */

struct blocking {
	ctx_after_slot_t slot;
	struct ut_blocking b;
};

static void test_stop_waits_for_running_fn(void **state)
{
	(void)state;
	struct blocking *b = calloc(1, sizeof *b);
	assert_non_null(b);
	ut_blocking_init(&b->b);
	ctx_cancel_t *cancel;
	ctx_t *c = ctx_with_cancel(ctx_background(), &cancel);
	struct ut_stopper s1 = {.b = &b->b}, s2 = {.b = &b->b};
	s1.stop = s2.stop = ctx_after_func_at(c, &b->slot, ut_blocking_fn, &b->b);
	assert_non_null(s1.stop);
	pthread_t canceller, st1, st2;
	assert_int_equal(pthread_create(&canceller, NULL, cancel_main, cancel), 0);
	assert_true(ut_sem_wait_ms(&b->b.started, 10000));
	/* Two stoppers at once while fn runs: both wait. */
	assert_int_equal(pthread_create(&st1, NULL, ut_stopper_main, &s1), 0);
	assert_int_equal(pthread_create(&st2, NULL, ut_stopper_main, &s2), 0);
	for (int i = 0; i < 100 && !atomic_load(&s1.returned) && !atomic_load(&s2.returned); i++)
		ut_sleep_ms(1);
	bool early = atomic_load(&s1.returned) || atomic_load(&s2.returned);
	sem_post(&b->b.release);
	assert_true(ut_join_ms(st1, 10000, NULL));
	assert_true(ut_join_ms(st2, 10000, NULL));
	assert_false(early);
	assert_false(s1.result);
	assert_false(s2.result);
	assert_int_equal(s1.finished_at_return, 1);
	assert_int_equal(s2.finished_at_return, 1);
	/* Both returned: the slot is ours again, while the canceller may still
	 * be finishing its cancel. */
	ut_blocking_destroy(&b->b);
	memset(b, 0x5a, sizeof *b);
	free(b);
	assert_true(ut_join_ms(canceller, 10000, NULL));
	ctx_release(c);
	assert_balanced();
}

/* ---- stop from inside fn: false at once; the slot stays in use ---- */

struct self_stop {
	ctx_after_slot_t slot;
	ctx_after_t *h;
	int result; /* -1 not run, 0 false, 1 true */
};

static void self_stop_fn(void *arg)
{
	struct self_stop *s = arg;
	s->result = ctx_after_stop(s->h) ? 1 : 0;
}

static void test_stop_inside_fn(void **state)
{
	(void)state;
	ctx_cancel_t *cancel;
	ctx_t *c = ctx_with_cancel(ctx_background(), &cancel);
	struct self_stop *s = calloc(1, sizeof *s);
	assert_non_null(s);
	s->result = -1;
	s->h = ctx_after_func_at(c, &s->slot, self_stop_fn, s);
	assert_non_null(s->h);
	if (!ut_run_bounded(cancel_main, cancel, 30000))
		fail_msg("ctx_after_stop inside fn deadlocked");
	assert_int_equal(s->result, 0);
	/* Outside fn, the stop that makes the slot free again. */
	assert_false(ctx_after_stop(s->h));
	free(s);
	ctx_release(c);
	assert_balanced();
}

/* ---- stress: registrations on contexts another thread cancels ---- */

#define NWORKERS 4
#define PER_ROUND 8

static pthread_mutex_t cur_mu = PTHREAD_MUTEX_INITIALIZER;
static ctx_t *cur;           /* guarded by cur_mu; holds a reference */
static atomic_int workers_left;
static atomic_long total_ran, total_stopped;
static bool use_timer;

static ctx_t *cur_get(void)
{
	pthread_mutex_lock(&cur_mu);
	ctx_t *c = ctx_retain(cur);
	pthread_mutex_unlock(&cur_mu);
	return c;
}

static void *canceller_main(void *arg)
{
	(void)arg;
	uint64_t i = 0;
	while (atomic_load(&workers_left) > 0) {
		/* A timer context without a handle is done by the timer thread. */
		ctx_cancel_t *cancel = NULL;
		bool handle = !use_timer || i % 2;
		ctx_t *n = use_timer ? ctx_with_timeout(ctx_background(), (ctx_duration_t)(i % 50) * 1000,
		                                        handle ? &cancel : NULL)
		                     : ctx_with_cancel(ctx_background(), &cancel);
		pthread_mutex_lock(&cur_mu);
		ctx_t *old = cur;
		cur = n;
		pthread_mutex_unlock(&cur_mu);
		for (int k = 0; k < (int)(i % 64); k++)
			sched_yield();
		if (handle)
			ctx_cancel(cancel);
		ctx_release(old);
		i++;
	}
	return NULL;
}

struct worker {
	int iters;
	int bad; /* a rule broken: the first one seen */
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	for (int it = 0; it < w->iters; it++) {
		ctx_t *c = cur_get();
		struct reg *r[PER_ROUND];
		ctx_after_t *h[PER_ROUND];
		for (int k = 0; k < PER_ROUND; k++) {
			r[k] = calloc(1, sizeof *r[k]);
			if (!r[k])
				abort();
			h[k] = ctx_after_func_at(c, &r[k]->slot, reg_fn, r[k]);
			if (!h[k] && !w->bad)
				w->bad = 1;
		}
		if (it % 4 == 0)
			sched_yield();
		for (int k = PER_ROUND - 1; k >= 0; k--) {
			bool stopped = ctx_after_stop(h[k]);
			int calls = atomic_load(&r[k]->calls);
			if (stopped ? calls != 0 : calls != 1 || !atomic_load(&r[k]->finished)) {
				if (!w->bad)
					w->bad = 2;
			}
			atomic_fetch_add(stopped ? &total_stopped : &total_ran, 1);
			/* The slot is free now: scribble on it, then free it. */
			memset(&r[k]->slot, 0xa5, sizeof r[k]->slot);
			free(r[k]);
		}
		ctx_release(c);
	}
	atomic_fetch_sub(&workers_left, 1);
	return NULL;
}

static void run_stress(bool timer)
{
	use_timer = timer;
	cur = ctx_with_cancel(ctx_background(), NULL);
	atomic_store(&total_ran, 0);
	atomic_store(&total_stopped, 0);
	atomic_store(&workers_left, NWORKERS);
	struct worker w[NWORKERS];
	pthread_t t[NWORKERS], canceller;
	for (int i = 0; i < NWORKERS; i++) {
		w[i].iters = UT_ITERS(4000);
		w[i].bad = 0;
		assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
	}
	assert_int_equal(pthread_create(&canceller, NULL, canceller_main, NULL), 0);
	for (int i = 0; i < NWORKERS; i++)
		assert_true(ut_join_ms(t[i], 120000, NULL));
	assert_true(ut_join_ms(canceller, 120000, NULL));
	for (int i = 0; i < NWORKERS; i++)
		if (w[i].bad)
			fail_msg("worker %d: rule %d broken", i, w[i].bad);
	long ran = atomic_load(&total_ran), stopped = atomic_load(&total_stopped);
	print_message("  %ld ran, %ld stopped\n", ran, stopped);
	assert_int_equal(ran + stopped, (long)NWORKERS * UT_ITERS(4000) * PER_ROUND);
	ctx_release(cur);
	cur = NULL;
	ut_assert_no_leak_eventually();
}

static void test_stress_cancel(void **state)
{
	(void)state;
	run_stress(false);
}

static void test_stress_timer(void **state)
{
	(void)state;
	run_stress(true);
}

/* ---- stress: two stoppers and a canceller race on one slot ---- */

struct race {
	ctx_after_t *h;
	bool result;
};

static void *race_stop(void *arg)
{
	struct race *r = arg;
	r->result = ctx_after_stop(r->h);
	return NULL;
}

static void test_stress_double_stop(void **state)
{
	(void)state;
	int iters = UT_ITERS(1000);
	for (int i = 0; i < iters; i++) {
		ctx_cancel_t *cancel;
		ctx_t *c = ctx_with_cancel(ctx_background(), &cancel);
		struct reg *r = reg_new(c);
		struct race a, b;
		a.h = b.h = ctx_after_func_at(c, &r->slot, reg_fn, r);
		assert_non_null(a.h);
		pthread_t ta, tb, tc;
		assert_int_equal(pthread_create(&ta, NULL, race_stop, &a), 0);
		assert_int_equal(pthread_create(&tc, NULL, cancel_main, cancel), 0);
		assert_int_equal(pthread_create(&tb, NULL, race_stop, &b), 0);
		assert_true(ut_join_ms(ta, 10000, NULL));
		assert_true(ut_join_ms(tb, 10000, NULL));
		/* Both stops returned: the slot is free even if the canceller is
		 * still running. */
		int calls = atomic_load(&r->calls);
		assert_false(a.result && b.result);
		if (a.result || b.result)
			assert_int_equal(calls, 0);
		else
			assert_int_equal(calls, 1);
		memset(r, 0xa5, sizeof *r);
		free(r);
		assert_true(ut_join_ms(tc, 10000, NULL));
		ctx_release(c);
	}
	assert_balanced();
}

int main(void)
{
	ut_install_allocator(); /* before any context */
#define T(f) cmocka_unit_test_setup(f, test_setup)
	const struct CMUnitTest tests[] = {
		T(test_allocates_nothing),
		T(test_stop_before_fire),
		T(test_fire_then_stop),
		cmocka_unit_test_setup_teardown(test_fire_by_deadline, test_setup, ut_fake_teardown),
		T(test_done_and_never_done),
		T(test_einval),
		T(test_does_not_hold_ctx),
		T(test_reuse),
		T(test_order_with_heap_ones),
		T(test_stop_waits_for_running_fn),
		T(test_stop_inside_fn),
		T(test_stress_cancel),
		T(test_stress_timer),
		T(test_stress_double_stop),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
