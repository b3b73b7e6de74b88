/* test_after.c: after-funcs (Go's AfterFunc): ctx_after_func and
 * ctx_after_stop. Go's own AfterFunc tests, plus the C rules: fn runs in
 * place (in the cancelling thread, the timer thread, or at once in the
 * registering thread), after every lock is released, in full before the
 * triggering ctx_cancel returns; stop waits for a running fn; registrations
 * hold their context; never-done contexts hold nothing.
 *
 * A counting allocator is installed before any context exists. Callbacks
 * may run in other threads, so they never use cmocka's assertions: they
 * record what they saw and the test checks it. */
#include "util.h"

#include <poll.h>
#include <stdio.h>

#include "ctx/testing.h"

#define MS CTX_MILLISECOND

static pthread_t main_thread;
static long baseline;

static int test_setup(void **state)
{
	(void)state;
	atomic_store(&ut_fail_next, 0);
	baseline = ut_live();
	return 0;
}

static int test_teardown(void **state)
{
	(void)state;
	atomic_store(&ut_fail_next, 0);
	ctx__set_clock(NULL);
	return 0;
}

/* A fake clock for deadline tests: the deadline fires when the test moves
 * the clock, never while it is still registering. */
static _Atomic ctx_time_t fake_now;
static ctx_time_t fake_clock(void) { return atomic_load(&fake_now); }

static void fake_clock_start(void)
{
	atomic_store(&fake_now, ut_real_now());
	ctx__set_clock(fake_clock);
}

static void fake_clock_advance(ctx_duration_t d)
{
	atomic_fetch_add(&fake_now, d);
	ctx__timers_kick();
}

#define assert_balanced() assert_int_equal(ut_live(), baseline)

/* When fn ran in the timer thread, that thread drops the registration (and
 * maybe the last reference to the context) just after fn returns: wait a
 * bounded time for it. */
static void assert_eventually_balanced(void)
{
	for (int i = 0; i < 10000 && ut_live() != baseline; i++)
		ut_sleep_ms(1);
	assert_balanced();
}

/* What a callback saw. */
struct rec {
	atomic_int calls;
	atomic_int finished; /* set at the very end of fn */
	pthread_t thread;    /* the thread fn ran in (last call) */
	ctx_t *ctx;          /* optional: the watched context */
	int err_seen;        /* ctx_err(ctx) inside fn */
	int delay_ms;        /* optional: take this long inside fn */
	sem_t *post;         /* optional: posted at the end of fn */
};

static void rec_fn(void *arg)
{
	struct rec *r = arg;
	r->thread = pthread_self();
	if (r->ctx)
		r->err_seen = ctx_err(r->ctx);
	if (r->delay_ms)
		ut_sleep_ms(r->delay_ms);
	atomic_fetch_add(&r->calls, 1);
	atomic_store(&r->finished, 1);
	if (r->post)
		sem_post(r->post);
}

static void never_fn(void *arg)
{
	atomic_int *n = arg;
	atomic_fetch_add(n, 1);
}

/* ---- Go: TestAfterFuncCalledAfterCancel ---- */

static void test_called_after_cancel(void **state)
{
	(void)state;
	ctx_cancel_t *cancel;
	ctx_t *c = ctx_with_cancel(ctx_background(), &cancel);
	struct rec r = {.ctx = c};
	ctx_after_t *stop;
	assert_int_equal(ctx_after_func(c, rec_fn, &r, &stop), 0);
	/* Not before the cancel. */
	assert_int_equal(ctx_wait(c, 20 * MS), 0);
	assert_int_equal(atomic_load(&r.calls), 0);
	ctx_cancel(cancel);
	/* Run in this (the cancelling) thread, before ctx_cancel returned,
	 * and it saw the context done. */
	assert_int_equal(atomic_load(&r.calls), 1);
	assert_true(pthread_equal(r.thread, pthread_self()));
	assert_int_equal(r.err_seen, ECANCELED);
	/* Stop afterwards: false. */
	assert_false(ctx_after_stop(stop));
	assert_int_equal(atomic_load(&r.calls), 1);
	ctx_release(c);
	assert_balanced();
}

static void *cancel_main(void *arg)
{
	ctx_cancel(arg);
	return NULL;
}

static void test_called_in_cancelling_thread(void **state)
{
	(void)state;
	ctx_cancel_t *cancel;
	ctx_t *p = ctx_with_cancel(ctx_background(), &cancel);
	ctx_t *c = ctx_with_value(p, &main_thread, NULL, NULL);
	ctx_t *g = ctx_with_cancel(c, NULL);
	struct rec r = {.ctx = g};
	assert_int_equal(ctx_after_func(g, rec_fn, &r, NULL), 0);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, cancel_main, cancel), 0);
	assert_true(ut_join_ms(t, 10000, NULL));
	assert_int_equal(atomic_load(&r.calls), 1);
	assert_true(pthread_equal(r.thread, t));
	assert_int_equal(r.err_seen, ECANCELED);
	ctx_release(g);
	ctx_release(c);
	ctx_release(p);
	assert_balanced();
}

/* ---- Go: TestAfterFuncCalledAfterTimeout ---- */

static void test_called_after_timeout(void **state)
{
	(void)state;
	sem_t sem;
	sem_init(&sem, 0, 0);
	ctx_cancel_t *cancel;
	fake_clock_start();
	ctx_t *c = ctx_with_timeout(ctx_background(), 20 * MS, &cancel);
	struct rec r = {.ctx = c, .post = &sem};
	ctx_after_t *stop;
	assert_int_equal(ctx_after_func(c, rec_fn, &r, &stop), 0);
	assert_int_equal(atomic_load(&r.calls), 0);
	fake_clock_advance(20 * MS);
	assert_true(ut_sem_wait_ms(&sem, 10000));
	assert_int_equal(atomic_load(&r.calls), 1);
	/* In the timer thread, not here. */
	assert_false(pthread_equal(r.thread, main_thread));
	assert_int_equal(r.err_seen, ETIMEDOUT);
	assert_false(ctx_after_stop(stop));
	ctx_cancel(cancel);
	assert_int_equal(atomic_load(&r.calls), 1);
	ctx_release(c);
	sem_destroy(&sem);
	assert_eventually_balanced();
}

/* ---- Go: TestAfterFuncCalledImmediately ---- */

static void test_called_immediately_if_done(void **state)
{
	(void)state;
	ctx_cancel_t *cancel;
	ctx_t *c = ctx_with_cancel(ctx_background(), &cancel);
	ctx_cancel_cause(cancel, 3);
	struct rec r = {.ctx = c};
	ctx_after_t *stop = NULL;
	assert_int_equal(ctx_after_func(c, rec_fn, &r, &stop), 0);
	/* Before ctx_after_func returned, in this thread. */
	assert_int_equal(atomic_load(&r.calls), 1);
	assert_true(pthread_equal(r.thread, pthread_self()));
	assert_int_equal(r.err_seen, ECANCELED);
	/* A valid handle, for which stop returns false. */
	assert_non_null(stop);
	assert_false(ctx_after_stop(stop));
	assert_int_equal(atomic_load(&r.calls), 1);

	/* Without a handle. */
	assert_int_equal(ctx_after_func(c, rec_fn, &r, NULL), 0);
	assert_int_equal(atomic_load(&r.calls), 2);

	/* A child born done, and a past deadline. */
	ctx_t *born = ctx_with_value(c, &main_thread, NULL, NULL);
	struct rec r2 = {.ctx = born};
	assert_int_equal(ctx_after_func(born, rec_fn, &r2, &stop), 0);
	assert_int_equal(atomic_load(&r2.calls), 1);
	assert_false(ctx_after_stop(stop));
	ctx_t *past = ctx_with_timeout(ctx_background(), -CTX_SECOND, NULL);
	struct rec r3 = {.ctx = past};
	assert_int_equal(ctx_after_func(past, rec_fn, &r3, &stop), 0);
	assert_int_equal(atomic_load(&r3.calls), 1);
	assert_int_equal(r3.err_seen, ETIMEDOUT);
	assert_true(pthread_equal(r3.thread, pthread_self()));
	assert_false(ctx_after_stop(stop));

	ctx_release(past);
	ctx_release(born);
	ctx_release(c);
	assert_balanced();
}

/* ---- Go: TestAfterFuncNotCalledAfterStop, XTestCancelRemoves ---- */

static void test_not_called_after_stop(void **state)
{
	(void)state;
	ctx_cancel_t *cancel;
	ctx_t *c = ctx_with_cancel(ctx_background(), &cancel);
	size_t n0 = ctx__children_count(c);
	long live0 = ut_live();
	struct rec r = {0};
	ctx_after_t *stop;
	assert_int_equal(ctx_after_func(c, rec_fn, &r, &stop), 0);
	assert_int_equal(ctx__children_count(c), n0 + 1);
	assert_true(ctx_after_stop(stop));
	/* Unlinked and freed. */
	assert_int_equal(ctx__children_count(c), n0);
	assert_int_equal(ut_live(), live0);
	ctx_cancel(cancel);
	assert_int_equal(atomic_load(&r.calls), 0);
	ctx_release(c);
	assert_balanced();
}

static void test_not_called_after_stop_timer(void **state)
{
	(void)state;
	ctx_cancel_t *cancel;
	fake_clock_start();
	ctx_t *c = ctx_with_timeout(ctx_background(), 300 * MS, &cancel);
	struct rec r = {0}, witness = {0};
	ctx_after_t *stop;
	assert_int_equal(ctx_after_func(c, rec_fn, &r, &stop), 0);
	/* Registered after r: runs after it, so once it ran, r would have. */
	sem_t sem;
	sem_init(&sem, 0, 0);
	witness.post = &sem;
	assert_int_equal(ctx_after_func(c, rec_fn, &witness, NULL), 0);
	assert_true(ctx_after_stop(stop));
	fake_clock_advance(300 * MS);
	assert_true(ut_sem_wait_ms(&sem, 10000));
	assert_int_equal(ctx_err(c), ETIMEDOUT);
	assert_int_equal(atomic_load(&witness.calls), 1);
	assert_int_equal(atomic_load(&r.calls), 0);
	ctx_cancel(cancel);
	ctx_release(c);
	sem_destroy(&sem);
	assert_eventually_balanced();
}

/* ---- fn runs in full before the ctx_cancel that triggered it returns ---- */

static void test_runs_in_full_before_cancel_returns(void **state)
{
	(void)state;
	ctx_cancel_t *cancel;
	ctx_t *root = ctx_with_cancel(ctx_background(), &cancel);
	ctx_t *mid = ctx_with_cancel(root, NULL);
	ctx_t *leaf = ctx_with_timeout(mid, 3600 * CTX_SECOND, NULL);
	struct rec r1 = {.delay_ms = 30, .ctx = leaf}, r2 = {.delay_ms = 30, .ctx = root};
	assert_int_equal(ctx_after_func(leaf, rec_fn, &r1, NULL), 0);
	assert_int_equal(ctx_after_func(root, rec_fn, &r2, NULL), 0);
	ctx_cancel(cancel);
	assert_int_equal(atomic_load(&r1.finished), 1);
	assert_int_equal(atomic_load(&r2.finished), 1);
	assert_int_equal(r1.err_seen, ECANCELED);
	assert_int_equal(r2.err_seen, ECANCELED);
	ctx_release(leaf);
	ctx_release(mid);
	ctx_release(root);
	assert_balanced();
}

/* ---- fn may call any goctx function (no lock held) ---- */

struct reentrant {
	ctx_t *ctx;             /* the watched, cancelled context */
	ctx_t *grandchild;      /* a descendant: must be done already */
	ctx_cancel_t *other;    /* another context's handle, cancelled in fn */
	ctx_t *other_ctx;
	/* Handles written after their registration is linked: atomic, since
	 * with a timer fn may read them from the timer thread. */
	_Atomic(ctx_after_t *) sibling; /* a second registration on ctx */
	_Atomic(ctx_after_t *) pending; /* a registration on a live context */
	ctx_t *retained;        /* a reference fn gives back */
	ctx_cancel_t *again;    /* a second handle of ctx: cancelling again
	                         * must not wait for this cancellation */
	atomic_int nested_calls;
	int failures;           /* bit per failed check */
	atomic_int done;
	sem_t *post;
};

static void nested_fn(void *arg)
{
	atomic_int *n = arg;
	atomic_fetch_add(n, 1);
}

static void reentrant_fn(void *arg)
{
	struct reentrant *x = arg;
	int f = 0;
	ctx_t *c = x->ctx;
	if (ctx_err(c) == 0)
		f |= 1 << 0;
	if (ctx_err(x->grandchild) == 0)
		f |= 1 << 1;
	/* A child of the cancelled context: born done. */
	ctx_cancel_t *h;
	ctx_t *child = ctx_with_cancel(c, &h);
	if (!child || ctx_err(child) != ctx_err(c))
		f |= 1 << 2;
	ctx_t *tchild = ctx_with_timeout(c, CTX_SECOND, NULL);
	if (!tchild || ctx_err(tchild) == 0)
		f |= 1 << 3;
	ctx_release(tchild);
	ctx_cancel(h);
	ctx_release(child);
	/* Arm a live deadline (the timer queue's lock), and drop it. */
	size_t pending = ctx__timers_pending();
	ctx_t *armed = ctx_with_timeout(ctx_background(), 3600 * CTX_SECOND, NULL);
	if (!armed || ctx__timers_pending() != pending + 1)
		f |= 1 << 13;
	ctx_release(armed);
	/* Another after-func on the cancelled context: runs at once. */
	int before = atomic_load(&x->nested_calls);
	ctx_after_t *s;
	if (ctx_after_func(c, nested_fn, &x->nested_calls, &s) != 0 ||
	    atomic_load(&x->nested_calls) != before + 1)
		f |= 1 << 4;
	else if (ctx_after_stop(s))
		f |= 1 << 5;
	/* Cancel another context (with an after-func of its own). */
	ctx_cancel(x->other);
	if (ctx_err(x->other_ctx) != ECANCELED)
		f |= 1 << 6;
	/* Read, format, describe. */
	char buf[256];
	if (ctx_format(c, buf, sizeof buf) <= 0)
		f |= 1 << 7;
	int fd = ctx_done_fd(c);
	struct pollfd p = {.fd = fd, .events = POLLIN};
	if (fd < 0 || poll(&p, 1, 0) != 1)
		f |= 1 << 8;
	(void)ctx__children_count(c);
	if (ctx_wait(c, 0) != ctx_err(c))
		f |= 1 << 9;
	/* A sibling registration already claimed by this cancellation:
	 * stopping it from here must not deadlock; it was not stopped. */
	ctx_after_t *sib = atomic_load(&x->sibling), *pend = atomic_load(&x->pending);
	if (!sib || ctx_after_stop(sib))
		f |= 1 << 10;
	/* A registration on a live context: stopped. */
	if (!pend || !ctx_after_stop(pend))
		f |= 1 << 11;
	int err = ctx_err(c), cause = ctx_cause(c);
	ctx_cancel_cause(x->again, 99);
	if (ctx_err(c) != err || ctx_cause(c) != cause)
		f |= 1 << 12;
	ctx_release(x->retained);
	x->failures = f;
	atomic_store(&x->done, 1);
	if (x->post)
		sem_post(x->post);
}

struct reentrant_setup {
	struct reentrant x;
	ctx_cancel_t *cancel;
	ctx_t *mid;
	ctx_t *live;
	ctx_cancel_t *live_cancel;
	struct rec sibling_rec;
	atomic_int other_calls;
	atomic_int pending_calls;
};

static void reentrant_prepare(struct reentrant_setup *s, ctx_t *c, ctx_cancel_t *cancel,
                              ctx_cancel_t *own, sem_t *post)
{
	memset(s, 0, sizeof *s);
	s->cancel = cancel;
	s->x.again = ctx_cancel_dup(own);
	assert_non_null(s->x.again);
	s->x.post = post;
	s->sibling_rec.post = post;
	s->x.ctx = c;
	s->mid = ctx_with_value(c, &main_thread, NULL, NULL);
	s->x.grandchild = ctx_with_cancel(s->mid, NULL);
	s->x.other_ctx = ctx_with_cancel(ctx_background(), &s->x.other);
	assert_int_equal(ctx_after_func(s->x.other_ctx, nested_fn, &s->other_calls, NULL), 0);
	s->live = ctx_with_cancel(ctx_background(), &s->live_cancel);
	ctx_after_t *h;
	assert_int_equal(ctx_after_func(s->live, nested_fn, &s->pending_calls, &h), 0);
	atomic_store(&s->x.pending, h);
	s->x.retained = ctx_retain(c);
	assert_int_equal(ctx_after_func(c, reentrant_fn, &s->x, NULL), 0);
	/* Registered after reentrant_fn: claimed by the same cancellation. */
	assert_int_equal(ctx_after_func(c, rec_fn, &s->sibling_rec, &h), 0);
	atomic_store(&s->x.sibling, h);
	assert_int_equal(atomic_load(&s->x.done), 0);
}

static void reentrant_check(struct reentrant_setup *s)
{
	assert_int_equal(atomic_load(&s->x.done), 1);
	if (s->x.failures)
		fail_msg("checks inside fn failed: mask 0x%x", s->x.failures);
	assert_int_equal(atomic_load(&s->x.nested_calls), 1);
	assert_int_equal(atomic_load(&s->other_calls), 1);
	assert_int_equal(atomic_load(&s->sibling_rec.calls), 1);
	ctx_cancel(s->live_cancel);
	assert_int_equal(atomic_load(&s->pending_calls), 0);
	ctx_release(s->live);
	ctx_release(s->x.other_ctx);
	ctx_release(s->x.grandchild);
	ctx_release(s->mid);
}

static void *cancel_thread(void *arg)
{
	struct reentrant_setup *s = arg;
	ctx_cancel(s->cancel);
	return NULL;
}

static void test_fn_may_call_goctx_cancel(void **state)
{
	(void)state;
	struct reentrant_setup s;
	ctx_cancel_t *cancel;
	ctx_t *c = ctx_with_cancel(ctx_background(), &cancel);
	reentrant_prepare(&s, c, cancel, cancel, NULL);
	ctx_release(c); /* fn gives back the last reference (plus the registration's) */
	if (!ut_run_bounded(cancel_thread, &s, 30000))
		fail_msg("ctx_cancel did not return: deadlock with fn calling goctx");
	reentrant_check(&s);
	assert_balanced();
}

static void test_fn_may_call_goctx_timer(void **state)
{
	(void)state;
	sem_t sem;
	sem_init(&sem, 0, 0);
	struct reentrant_setup s;
	ctx_cancel_t *cancel;
	fake_clock_start();
	ctx_t *c = ctx_with_timeout(ctx_background(), 200 * MS, &cancel);
	reentrant_prepare(&s, c, cancel, cancel, &sem);
	fake_clock_advance(200 * MS);
	/* fn, then the sibling registration, post. */
	if (!ut_sem_wait_ms(&sem, 30000) || !ut_sem_wait_ms(&sem, 30000))
		fail_msg("fn did not finish in the timer thread: deadlock?");
	assert_false(pthread_equal(s.sibling_rec.thread, main_thread));
	assert_int_equal(ctx_err(c), ETIMEDOUT);
	reentrant_check(&s);
	ctx_cancel(cancel);
	ctx_release(c);
	ctx__set_clock(NULL);
	/* The timer thread still works: a new deadline fires. */
	ctx_t *t = ctx_with_timeout(ctx_background(), 10 * MS, NULL);
	assert_int_equal(ctx_wait(t, 10 * CTX_SECOND), ETIMEDOUT);
	ctx_release(t);
	sem_destroy(&sem);
	assert_eventually_balanced();
}

static void test_fn_may_call_goctx_parent_cancel(void **state)
{
	(void)state;
	/* The watched context is cancelled through its parent. */
	struct reentrant_setup s;
	ctx_cancel_t *pcancel;
	ctx_t *p = ctx_with_cancel(ctx_background(), &pcancel);
	ctx_cancel_t *ccancel;
	ctx_t *c = ctx_with_cancel(p, &ccancel);
	reentrant_prepare(&s, c, pcancel, ccancel, NULL);
	ctx_release(c);
	if (!ut_run_bounded(cancel_thread, &s, 30000))
		fail_msg("ctx_cancel did not return: deadlock with fn calling goctx");
	reentrant_check(&s);
	ctx_cancel(ccancel);
	ctx_release(p);
	assert_balanced();
}

/* ---- several after-funcs: all run, in registration order ---- */

struct order {
	atomic_int next;
	int seen[16];
};
struct order_arg {
	struct order *o;
	int id;
};

static void order_fn(void *arg)
{
	struct order_arg *a = arg;
	int i = atomic_fetch_add(&a->o->next, 1);
	if (i < 16)
		a->o->seen[i] = a->id;
}

/* The library runs the after-funcs of one context in registration order
 * (documented here: Go runs each in its own goroutine, with no order). */
static void check_order(ctx_t *watched, void (*trigger)(void *), void *targ)
{
	enum { N = 10 };
	struct order o = {0};
	struct order_arg a[N];
	ctx_after_t *stops[N];
	for (int i = 0; i < N; i++) {
		a[i] = (struct order_arg){&o, i};
		assert_int_equal(ctx_after_func(watched, order_fn, &a[i], &stops[i]), 0);
	}
	trigger(targ);
	for (int i = 0; i < N; i++)
		assert_false(ctx_after_stop(stops[i]));
	assert_int_equal(atomic_load(&o.next), N);
	for (int i = 0; i < N; i++)
		assert_int_equal(o.seen[i], i);
}

static void trigger_cancel(void *arg) { ctx_cancel(arg); }

static void test_several_in_registration_order(void **state)
{
	(void)state;
	ctx_cancel_t *cancel;
	ctx_t *c = ctx_with_cancel(ctx_background(), &cancel);
	check_order(c, trigger_cancel, cancel);
	ctx_release(c);

	/* Through a parent's cancel. */
	ctx_t *p = ctx_with_cancel(ctx_background(), &cancel);
	c = ctx_with_cancel(p, NULL);
	check_order(c, trigger_cancel, cancel);
	ctx_release(c);
	ctx_release(p);
	assert_balanced();
}

static void test_several_in_order_timer(void **state)
{
	(void)state;
	ctx_cancel_t *cancel;
	ctx_t *c = ctx_with_timeout(ctx_background(), 30 * MS, &cancel);
	enum { N = 10 };
	struct order o = {0};
	struct order_arg a[N];
	ctx_after_t *stops[N];
	for (int i = 0; i < N; i++) {
		a[i] = (struct order_arg){&o, i};
		assert_int_equal(ctx_after_func(c, order_fn, &a[i], &stops[i]), 0);
	}
	/* A last registration tells when the timer thread has run them all
	 * (a stop that merely followed ctx_err may still win the race with
	 * the timer thread's claim, as in Go). */
	sem_t sem;
	sem_init(&sem, 0, 0);
	struct rec last = {.post = &sem};
	assert_int_equal(ctx_after_func(c, rec_fn, &last, NULL), 0);
	assert_true(ut_sem_wait_ms(&sem, 10000));
	assert_int_equal(ctx_err(c), ETIMEDOUT);
	for (int i = 0; i < N; i++)
		assert_false(ctx_after_stop(stops[i]));
	sem_destroy(&sem);
	assert_int_equal(atomic_load(&o.next), N);
	for (int i = 0; i < N; i++)
		assert_int_equal(o.seen[i], i);
	ctx_cancel(cancel);
	ctx_release(c);
	assert_eventually_balanced();
}

static void test_called_once(void **state)
{
	(void)state;
	ctx_cancel_t *c1;
	ctx_t *p = ctx_with_timeout(ctx_background(), 3600 * CTX_SECOND, &c1);
	ctx_cancel_t *c2 = ctx_cancel_dup(c1);
	ctx_t *c = ctx_with_cancel(p, NULL);
	struct rec r = {0};
	ctx_after_t *stop;
	assert_int_equal(ctx_after_func(c, rec_fn, &r, &stop), 0);
	ctx_cancel(c1);
	ctx_cancel_cause(c2, 5);
	assert_int_equal(atomic_load(&r.calls), 1);
	assert_false(ctx_after_stop(stop));
	assert_int_equal(atomic_load(&r.calls), 1);
	ctx_release(c);
	ctx_release(p);
	assert_balanced();
}

/* ---- ctx_after_stop while fn runs elsewhere: waits ---- */

static void test_stop_waits_for_running_fn(void **state)
{
	(void)state;
	struct ut_blocking b;
	ut_blocking_init(&b);
	ctx_cancel_t *cancel;
	ctx_t *c = ctx_with_cancel(ctx_background(), &cancel);
	struct ut_stopper s = {.b = &b};
	assert_int_equal(ctx_after_func(c, ut_blocking_fn, &b, &s.stop), 0);
	/* Thread 1 cancels: fn runs there and blocks. */
	pthread_t canceller, stopper;
	assert_int_equal(pthread_create(&canceller, NULL, cancel_main, cancel), 0);
	assert_true(ut_sem_wait_ms(&b.started, 10000));
	/* Thread 2 stops while fn runs. */
	assert_int_equal(pthread_create(&stopper, NULL, ut_stopper_main, &s), 0);
	/* Give stop a chance to (wrongly) return; meanwhile it must block,
	 * not spin (CPU time stays low). */
	int64_t cpu0 = ut_cpu_ns();
	for (int i = 0; i < 200 && !atomic_load(&s.returned); i++)
		ut_sleep_ms(1);
	int64_t cpu = ut_cpu_ns() - cpu0;
	bool returned_early = atomic_load(&s.returned);
	sem_post(&b.release);
	assert_true(ut_join_ms(stopper, 10000, NULL));
	assert_true(ut_join_ms(canceller, 10000, NULL));
	assert_false(returned_early);
	assert_false(s.result);
	assert_int_equal(s.finished_at_return, 1);
	if (cpu >= 100 * MS)
		fail_msg("ctx_after_stop used %lld ms of CPU waiting for fn", (long long)(cpu / MS));
	ctx_release(c);
	ut_blocking_destroy(&b);
	assert_balanced();
}

/* ---- ctx_after_stop from inside fn ---- */

struct self_stop {
	ctx_after_t *stop;
	int result; /* -1 not run, 0 false, 1 true */
};

static void self_stop_fn(void *arg)
{
	struct self_stop *s = arg;
	s->result = ctx_after_stop(s->stop) ? 1 : 0;
}

static void *self_stop_cancel(void *arg)
{
	ctx_cancel(arg);
	return NULL;
}

static void test_stop_inside_fn(void **state)
{
	(void)state;
	ctx_cancel_t *cancel;
	ctx_t *c = ctx_with_cancel(ctx_background(), &cancel);
	struct self_stop s = {.result = -1};
	assert_int_equal(ctx_after_func(c, self_stop_fn, &s, &s.stop), 0);
	if (!ut_run_bounded(self_stop_cancel, cancel, 30000))
		fail_msg("ctx_after_stop inside fn deadlocked");
	assert_int_equal(s.result, 0);
	ctx_release(c);
	assert_balanced();
}

/* ---- stop == NULL ---- */

static void test_stop_null(void **state)
{
	(void)state;
	ctx_cancel_t *cancel;
	ctx_t *c = ctx_with_cancel(ctx_background(), &cancel);
	struct rec r = {0};
	assert_int_equal(ctx_after_func(c, rec_fn, &r, NULL), 0);
	assert_int_equal(ctx__children_count(c), 1);
	ctx_release(c); /* the registration holds c */
	ctx_cancel(cancel);
	assert_int_equal(atomic_load(&r.calls), 1);
	/* The registration is gone with its context. */
	assert_balanced();
}

/* ---- never-done contexts hold nothing ---- */

static void test_never_done_holds_nothing(void **state)
{
	(void)state;
	static const int key = 0;
	ctx_cancel_t *cancel;
	ctx_t *p = ctx_with_cancel(ctx_background(), &cancel);
	ctx_t *w = ctx_without_cancel(p);
	ctx_t *vb = ctx_with_value(ctx_background(), &key, NULL, NULL);
	ctx_t *vw = ctx_with_value(w, &key, NULL, NULL);
	ctx_t *never[] = {ctx_background(), ctx_todo(), w, vb, vw};
	atomic_int calls = 0;
	for (size_t i = 0; i < sizeof never / sizeof never[0]; i++) {
		long allocs = ut_allocs_now(), live = ut_live();
		ctx_after_t *stop = NULL;
		assert_int_equal(ctx_after_func(never[i], never_fn, &calls, &stop), 0);
		assert_non_null(stop);
		assert_int_equal(ut_allocs_now(), allocs);
		assert_int_equal(ut_live(), live);
		assert_true(ctx_after_stop(stop));
		/* And with no handle: nothing either. */
		assert_int_equal(ctx_after_func(never[i], never_fn, &calls, NULL), 0);
		assert_int_equal(ut_allocs_now(), allocs);
	}
	/* Releasing the contexts frees them (nothing held them). */
	long frees = ut_frees_now();
	ctx_release(vw);
	ctx_release(vb);
	ctx_flush_cache(); /* the frees reach the allocator */
	assert_int_equal(ut_frees_now(), frees + 2);
	/* Cancelling the WithoutCancel's parent runs nothing. */
	ctx_cancel(cancel);
	assert_int_equal(atomic_load(&calls), 0);
	ctx_release(w);
	ctx_release(p);
	assert_int_equal(atomic_load(&calls), 0);
	assert_balanced();
}

/* ---- a registration keeps its context alive ---- */

static void test_registration_keeps_ctx_alive_run(void **state)
{
	(void)state;
	ctx_cancel_t *pcancel;
	ctx_t *p = ctx_with_cancel(ctx_background(), &pcancel);
	long live_p = ut_live();
	ctx_t *c = ctx_with_cancel(p, NULL); /* no handle: only the reference */
	struct rec r = {.ctx = c};
	ctx_after_t *stop;
	assert_int_equal(ctx_after_func(c, rec_fn, &r, &stop), 0);
	long frees = ut_frees_now();
	ctx_release(c);
	/* Not freed: the pending registration holds it. */
	assert_int_equal(ut_frees_now(), frees);
	assert_int_equal(ctx__children_count(p), 1);
	ctx_cancel(pcancel);
	/* fn read ctx_err(c) (ASan would catch a use after free). */
	assert_int_equal(atomic_load(&r.calls), 1);
	assert_int_equal(r.err_seen, ECANCELED);
	/* Once fn ran, the registration let go of c; the handle remains. */
	assert_false(ctx_after_stop(stop));
	assert_int_equal(ut_live(), live_p);
	ctx_release(p);
	assert_balanced();
}

static void test_registration_keeps_ctx_alive_stop(void **state)
{
	(void)state;
	ctx_cancel_t *pcancel;
	ctx_t *p = ctx_with_cancel(ctx_background(), &pcancel);
	long live_p = ut_live();
	ctx_t *c = ctx_with_timeout(p, 3600 * CTX_SECOND, NULL);
	size_t pending = ctx__timers_pending();
	struct rec r = {0};
	ctx_after_t *stop;
	assert_int_equal(ctx_after_func(c, rec_fn, &r, &stop), 0);
	long frees = ut_frees_now();
	ctx_release(c);
	assert_int_equal(ut_frees_now(), frees);
	assert_int_equal(ctx__children_count(p), 1);
	assert_int_equal(ctx__timers_pending(), pending);
	assert_true(ctx_after_stop(stop));
	/* Stopped: c is freed, unlinked and disarmed. */
	assert_int_equal(ut_live(), live_p);
	assert_int_equal(ctx__children_count(p), 0);
	assert_int_equal(ctx__timers_pending(), pending - 1);
	ctx_cancel(pcancel);
	assert_int_equal(atomic_load(&r.calls), 0);
	ctx_release(p);
	assert_balanced();
}

/* Once fn has run, the registration no longer holds the context: with the
 * user's references gone, the context is freed even while the stop handle
 * (which only says whether fn was stopped) is still held. */
static void test_ran_registration_lets_go_of_ctx(void **state)
{
	(void)state;
	ctx_cancel_t *pcancel;
	ctx_t *p = ctx_with_cancel(ctx_background(), &pcancel);
	long live_p = ut_live();
	ctx_t *c = ctx_with_cancel(p, NULL);
	long live_c = ut_live();
	struct rec r = {0};
	ctx_after_t *stop;
	assert_int_equal(ctx_after_func(c, rec_fn, &r, &stop), 0);
	long live_reg = ut_live() - live_c; /* what a registration costs */
	ctx_release(c);
	ctx_cancel(pcancel);
	assert_int_equal(atomic_load(&r.calls), 1);
	/* Only the handle's own memory may remain: c is gone. */
	long held = ut_live() - live_p;
	bool stopped = ctx_after_stop(stop);
	long after_stop = ut_live() - live_p;
	ctx_release(p);
	if (held > live_reg)
		fail_msg("fn has run and no reference is left, but the context is still "
		         "held (%ld blocks instead of at most %ld) until ctx_after_stop",
		         held, live_reg);
	assert_false(stopped);
	assert_int_equal(after_stop, 0);
	assert_balanced();
}

static void test_registration_no_handle_freed_after_run(void **state)
{
	(void)state;
	ctx_cancel_t *cancel;
	ctx_t *c = ctx_with_cancel(ctx_background(), &cancel);
	struct rec r = {0};
	for (int i = 0; i < 5; i++)
		assert_int_equal(ctx_after_func(c, rec_fn, &r, NULL), 0);
	ctx_cancel(cancel);
	assert_int_equal(atomic_load(&r.calls), 5);
	ctx_release(c);
	assert_balanced();
}

/* ---- errors ---- */

static void test_einval(void **state)
{
	(void)state;
	atomic_int calls = 0;
	ctx_after_t *stop = NULL;
	assert_int_equal(ctx_after_func(NULL, never_fn, &calls, &stop), EINVAL);
	assert_int_equal(ctx_after_func(NULL, never_fn, &calls, NULL), EINVAL);
	ctx_cancel_t *cancel;
	ctx_t *c = ctx_with_cancel(ctx_background(), &cancel);
	assert_int_equal(ctx_after_func(c, NULL, &calls, &stop), EINVAL);
	assert_int_equal(ctx__children_count(c), 0);
	ctx_cancel(cancel);
	/* On a done context too. */
	assert_int_equal(ctx_after_func(c, NULL, &calls, NULL), EINVAL);
	assert_int_equal(ctx_after_func(ctx_background(), NULL, &calls, NULL), EINVAL);
	assert_int_equal(atomic_load(&calls), 0);
	ctx_release(c);
	assert_balanced();
}

static void test_enomem(void **state)
{
	(void)state;
	atomic_int calls = 0;
	ctx_cancel_t *cancel;
	ctx_t *c = ctx_with_cancel(ctx_background(), &cancel);
	long live = ut_live();
	ctx_after_t *stop = NULL;
	ut_fail_allocs(1);
	assert_int_equal(ctx_after_func(c, never_fn, &calls, &stop), ENOMEM);
	ut_fail_allocs(1);
	assert_int_equal(ctx_after_func(c, never_fn, &calls, NULL), ENOMEM);
	atomic_store(&ut_fail_next, 0);
	assert_int_equal(ut_live(), live);
	assert_int_equal(ctx__children_count(c), 0);
	ctx_cancel(cancel);
	assert_int_equal(atomic_load(&calls), 0);
	ctx_release(c);
	assert_balanced();
}

/* ---- stress: register/stop in many threads while another cancels ---- */

#define S_THREADS 4
#define S_REGS 300
#define S_ROUNDS 30

struct srec {
	atomic_int runs;
	atomic_int stopped; /* stop returned true */
	atomic_int ran_after_stop;
};

static void srec_fn(void *arg)
{
	struct srec *r = arg;
	if (atomic_load(&r->stopped))
		atomic_store(&r->ran_after_stop, 1);
	atomic_fetch_add(&r->runs, 1);
}

/* Registrations made so far in a round: the canceller strikes when a
 * round-dependent number of them is reached, so every part of the
 * registration window gets cancelled into, without relying on timing. */
static atomic_int s_progress;
static atomic_int s_go; /* set by the canceller once it runs */

struct sworker {
	ctx_t *ctx;
	pthread_barrier_t *start;
	struct srec *recs;
	int id;
	atomic_int errors; /* stop false but fn had not run; other violations */
};

static void *sworker_main(void *arg)
{
	struct sworker *w = arg;
	ctx_after_t *later[S_REGS];
	int nlater = 0;
	struct srec *later_rec[S_REGS];
	pthread_barrier_wait(w->start);
	while (!atomic_load(&s_go))
		sched_yield();
	for (int j = 0; j < S_REGS; j++) {
		struct srec *r = &w->recs[j];
		ctx_after_t *stop = NULL;
		int mode = (j + w->id) % 3;
		atomic_fetch_add(&s_progress, 1);
		if (j % 8 == 0)
			sched_yield(); /* let the workers interleave on few CPUs */
		if (ctx_after_func(w->ctx, srec_fn, r, mode == 2 ? NULL : &stop) != 0) {
			atomic_fetch_add(&w->errors, 1);
			continue;
		}
		if (mode == 0) {
			if (ctx_after_stop(stop)) {
				atomic_store(&r->stopped, 1);
				if (atomic_load(&r->runs) != 0)
					atomic_fetch_add(&w->errors, 1);
			} else if (atomic_load(&r->runs) != 1) {
				/* false outside fn: fn has run, in full */
				atomic_fetch_add(&w->errors, 1);
			}
		} else if (mode == 1) {
			later[nlater] = stop;
			later_rec[nlater++] = r;
		}
	}
	for (int k = 0; k < nlater; k++) {
		if (ctx_after_stop(later[k])) {
			atomic_store(&later_rec[k]->stopped, 1);
			if (atomic_load(&later_rec[k]->runs) != 0)
				atomic_fetch_add(&w->errors, 1);
		} else if (atomic_load(&later_rec[k]->runs) != 1) {
			atomic_fetch_add(&w->errors, 1);
		}
	}
	return NULL;
}

struct scanceller {
	ctx_cancel_t *cancel;
	pthread_barrier_t *start;
	int target;
};

static void *scanceller_main(void *arg)
{
	struct scanceller *k = arg;
	pthread_barrier_wait(k->start);
	atomic_store(&s_go, 1);
	while (atomic_load(&s_progress) < k->target)
		sched_yield();
	ctx_cancel(k->cancel);
	return NULL;
}

static void test_stress_register_stop_cancel(void **state)
{
	(void)state;
	struct srec *recs = calloc(S_THREADS * S_REGS, sizeof *recs);
	assert_non_null(recs);
	for (int round = 0; round < S_ROUNDS; round++) {
		memset(recs, 0, S_THREADS * S_REGS * sizeof *recs);
		ctx_cancel_t *pcancel;
		ctx_t *p = ctx_with_cancel(ctx_background(), &pcancel);
		ctx_cancel_t *cancel;
		ctx_t *c = ctx_with_cancel(p, &cancel);
		/* Half the rounds watch a value child of the cancelled ctx. */
		ctx_t *watched = (round & 1) ? ctx_with_value(c, &main_thread, NULL, NULL) : ctx_retain(c);
		atomic_store(&s_progress, 0);
		atomic_store(&s_go, 0);
		pthread_barrier_t start;
		pthread_barrier_init(&start, NULL, S_THREADS + 1);
		struct sworker w[S_THREADS];
		pthread_t th[S_THREADS], kt;
		for (int i = 0; i < S_THREADS; i++) {
			w[i] = (struct sworker){.ctx = watched, .start = &start,
			                        .recs = recs + i * S_REGS, .id = i};
			assert_int_equal(pthread_create(&th[i], NULL, sworker_main, &w[i]), 0);
		}
		/* Cancel the context itself, or its parent. */
		struct scanceller k = {.cancel = (round % 4 < 2) ? cancel : pcancel, .start = &start,
		                       .target = round * S_THREADS * S_REGS / S_ROUNDS};
		assert_int_equal(pthread_create(&kt, NULL, scanceller_main, &k), 0);
		for (int i = 0; i < S_THREADS; i++)
			if (!ut_join_ms(th[i], 60000, NULL))
				fail_msg("round %d: worker %d stuck", round, i);
		if (!ut_join_ms(kt, 60000, NULL))
			fail_msg("round %d: canceller stuck", round);
		assert_int_equal(ctx_err(watched), ECANCELED);
		for (int i = 0; i < S_THREADS; i++)
			assert_int_equal(atomic_load(&w[i].errors), 0);
		for (int j = 0; j < S_THREADS * S_REGS; j++) {
			struct srec *r = &recs[j];
			assert_int_equal(atomic_load(&r->ran_after_stop), 0);
			if (atomic_load(&r->stopped))
				assert_int_equal(atomic_load(&r->runs), 0);
			else
				assert_int_equal(atomic_load(&r->runs), 1); /* done ctx: ran, once */
		}
		ctx_cancel((round % 4 < 2) ? pcancel : cancel);
		pthread_barrier_destroy(&start);
		ctx_release(watched);
		ctx_release(c);
		ctx_release(p);
		assert_balanced();
	}
	free(recs);
}

/* The same against the timer thread: the watched context's deadline fires
 * while the workers register and stop. */
static void test_stress_register_stop_timer(void **state)
{
	(void)state;
	struct srec *recs = calloc(S_THREADS * S_REGS, sizeof *recs);
	assert_non_null(recs);
	for (int round = 0; round < S_ROUNDS; round++) {
		memset(recs, 0, S_THREADS * S_REGS * sizeof *recs);
		atomic_store(&s_progress, 0);
		atomic_store(&s_go, 1);
		ctx_cancel_t *cancel;
		ctx_t *c = ctx_with_timeout(ctx_background(),
		                            (ctx_duration_t)(round % 10) * 100 * CTX_MICROSECOND, &cancel);
		ctx_t *watched = (round & 1) ? ctx_with_value(c, &main_thread, NULL, NULL) : ctx_retain(c);
		pthread_barrier_t start;
		pthread_barrier_init(&start, NULL, S_THREADS);
		struct sworker w[S_THREADS];
		pthread_t th[S_THREADS];
		for (int i = 0; i < S_THREADS; i++) {
			w[i] = (struct sworker){.ctx = watched, .start = &start,
			                        .recs = recs + i * S_REGS, .id = i};
			assert_int_equal(pthread_create(&th[i], NULL, sworker_main, &w[i]), 0);
		}
		for (int i = 0; i < S_THREADS; i++)
			if (!ut_join_ms(th[i], 60000, NULL))
				fail_msg("round %d: worker %d stuck", round, i);
		assert_int_equal(ctx_wait(watched, 10 * CTX_SECOND), ETIMEDOUT);
		for (int i = 0; i < S_THREADS; i++)
			assert_int_equal(atomic_load(&w[i].errors), 0);
		/* Registrations without a handle may still be running in the
		 * timer thread: wait for them (bounded). */
		for (int j = 0; j < S_THREADS * S_REGS; j++) {
			struct srec *r = &recs[j];
			if (!atomic_load(&r->stopped))
				for (int k = 0; k < 10000 && atomic_load(&r->runs) == 0; k++)
					ut_sleep_ms(1);
		}
		for (int j = 0; j < S_THREADS * S_REGS; j++) {
			struct srec *r = &recs[j];
			assert_int_equal(atomic_load(&r->ran_after_stop), 0);
			if (atomic_load(&r->stopped))
				assert_int_equal(atomic_load(&r->runs), 0);
			else
				assert_int_equal(atomic_load(&r->runs), 1);
		}
		ctx_cancel(cancel);
		pthread_barrier_destroy(&start);
		ctx_release(watched);
		ctx_release(c);
		assert_eventually_balanced();
	}
	free(recs);
}

int main(void)
{
	main_thread = pthread_self();
	ut_install_allocator(); /* before any context */
#define T(f) cmocka_unit_test_setup_teardown(f, test_setup, test_teardown)
	const struct CMUnitTest tests[] = {
		T(test_called_after_cancel),
		T(test_called_in_cancelling_thread),
		T(test_called_after_timeout),
		T(test_called_immediately_if_done),
		T(test_not_called_after_stop),
		T(test_not_called_after_stop_timer),
		T(test_runs_in_full_before_cancel_returns),
		T(test_fn_may_call_goctx_cancel),
		T(test_fn_may_call_goctx_timer),
		T(test_fn_may_call_goctx_parent_cancel),
		T(test_several_in_registration_order),
		T(test_several_in_order_timer),
		T(test_called_once),
		T(test_stop_waits_for_running_fn),
		T(test_stop_inside_fn),
		T(test_stop_null),
		T(test_never_done_holds_nothing),
		T(test_registration_keeps_ctx_alive_run),
		T(test_registration_keeps_ctx_alive_stop),
		T(test_ran_registration_lets_go_of_ctx),
		T(test_registration_no_handle_freed_after_run),
		T(test_einval),
		T(test_enomem),
		T(test_stress_register_stop_cancel),
		T(test_stress_register_stop_timer),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
