/* test_wait.c: ctx_wait and ctx_sleep. Real time, with tolerant bounds:
 * "no earlier than" is exact, "promptly" is generous (seconds), so a loaded
 * machine does not make the tests flaky. */
#include "util.h"

#include <signal.h>
#include <sys/resource.h>

#include "ctx/testing.h"

#define MS CTX_MILLISECOND
#define NWAITERS 16

/* Generous bound for "promptly" and for "returned before the long sleep's
 * end": far below the 10 s sleeps used, far above any scheduling delay. */
#define PROMPT_NS (3 * CTX_SECOND)

static const int key1 = 1;
static int val1;

/* ---- done already, timeouts ---- */

static void test_wait_done_returns_err_at_once(void **state)
{
	(void)state;
	ctx_cancel_t *cancel;
	ctx_t *c = ctx_with_cancel(ctx_background(), &cancel);
	ctx_cancel(cancel);
	int64_t t0 = ut_real_now();
	assert_int_equal(UT_BOUNDED(UT_BOUND_MS, "done wakes ctx_wait",
	                            ctx_wait(c, CTX_FOREVER)), ECANCELED);
	assert_int_equal(ctx_wait(c, 10 * CTX_SECOND), ECANCELED);
	assert_int_equal(ctx_wait(c, 0), ECANCELED);
	assert_true(ut_real_now() - t0 < PROMPT_NS);

	ctx_t *t = ctx_with_timeout(ctx_background(), -1, NULL);
	t0 = ut_real_now();
	assert_int_equal(UT_BOUNDED(UT_BOUND_MS, "done wakes ctx_wait",
	                            ctx_wait(t, CTX_FOREVER)), ETIMEDOUT);
	assert_int_equal(ctx_wait(t, 10 * CTX_SECOND), ETIMEDOUT);
	assert_true(ut_real_now() - t0 < PROMPT_NS);
	ctx_release(t);
	ctx_release(c);
}

static void test_wait_timeout_not_done(void **state)
{
	(void)state;
	ctx_cancel_t *cancel;
	ctx_t *c = ctx_with_cancel(ctx_background(), &cancel);
	int64_t t0 = ut_real_now();
	assert_int_equal(ctx_wait(c, 50 * MS), 0);
	assert_true(ut_real_now() - t0 >= 50 * MS);
	assert_int_equal(ctx_err(c), 0);
	ctx_cancel(cancel);
	ctx_release(c);
}

static void test_wait_zero_only_looks(void **state)
{
	(void)state;
	ctx_cancel_t *cancel;
	ctx_t *c = ctx_with_cancel(ctx_background(), &cancel);
	int64_t t0 = ut_real_now();
	for (int i = 0; i < 1000; i++)
		assert_int_equal(ctx_wait(c, 0), 0);
	/* A thousand looks take far less than a thousand sleeps would. */
	assert_true(ut_real_now() - t0 < PROMPT_NS);
	/* Any other negative timeout only looks too. */
	t0 = ut_real_now();
	assert_int_equal(ctx_wait(c, -5), 0);
	assert_int_equal(ctx_wait(c, INT64_MIN), 0);
	assert_true(ut_real_now() - t0 < PROMPT_NS);
	ctx_cancel(cancel);
	assert_int_equal(ctx_wait(c, 0), ECANCELED);
	assert_int_equal(ctx_wait(c, -5), ECANCELED);
	ctx_release(c);
	assert_int_equal(ctx_wait(ctx_background(), 0), 0);
}

static void test_wait_never_done_contexts(void **state)
{
	(void)state;
	ctx_cancel_t *cancel;
	ctx_t *p = ctx_with_cancel(ctx_background(), &cancel);
	ctx_cancel(cancel); /* WithoutCancel over a done parent: never done */
	ctx_t *w = ctx_without_cancel(p);
	ctx_t *v = ctx_with_value(ctx_background(), &key1, &val1, NULL);
	ctx_t *vw = ctx_with_value(w, &key1, &val1, NULL);
	ctx_t *never[] = {ctx_background(), ctx_todo(), w, v, vw};
	for (size_t i = 0; i < sizeof never / sizeof never[0]; i++) {
		int64_t t0 = ut_real_now();
		assert_int_equal(ctx_wait(never[i], 30 * MS), 0);
		assert_true(ut_real_now() - t0 >= 30 * MS);
		assert_int_equal(ctx_wait(never[i], 0), 0);
	}
	ctx_release(vw);
	ctx_release(v);
	ctx_release(w);
	ctx_release(p);
}

/* ---- CTX_FOREVER ---- */

struct delayed_cancel {
	ctx_cancel_t *cancel;
	int delay_ms;
	int cause;
};

static void *delayed_cancel_main(void *arg)
{
	struct delayed_cancel *d = arg;
	if (d->delay_ms)
		ut_sleep_ms(d->delay_ms);
	ctx_cancel_cause(d->cancel, d->cause);
	return NULL;
}

static void test_wait_forever_until_cancelled(void **state)
{
	(void)state;
	ctx_cancel_t *cancel;
	ctx_t *c = ctx_with_cancel(ctx_background(), &cancel);
	struct delayed_cancel d = {cancel, 100, 9};
	pthread_t t;
	int64_t t0 = ut_real_now();
	assert_int_equal(pthread_create(&t, NULL, delayed_cancel_main, &d), 0);
	assert_int_equal(UT_BOUNDED(UT_BOUND_MS, "done wakes ctx_wait",
	                            ctx_wait(c, CTX_FOREVER)), ECANCELED);
	int64_t el = ut_real_now() - t0;
	/* It did wait for the cancel (which came no earlier than 100 ms). */
	assert_true(el >= 100 * MS);
	assert_int_equal(ctx_cause(c), 9);
	assert_true(ut_join_ms(t, 10000, NULL));
	ctx_release(c);
}

static void test_wait_forever_until_deadline(void **state)
{
	(void)state;
	ctx_cancel_t *cancel;
	ctx_t *c = ctx_with_timeout(ctx_background(), 50 * MS, &cancel);
	ctx_time_t dl;
	assert_true(ctx_deadline(c, &dl));
	assert_int_equal(UT_BOUNDED(UT_BOUND_MS, "done wakes ctx_wait",
	                            ctx_wait(c, CTX_FOREVER)), ETIMEDOUT);
	assert_true(ctx_now() >= dl);
	ctx_cancel(cancel);
	ctx_release(c);
}

static void test_wait_timeout_longer_than_deadline(void **state)
{
	(void)state;
	ctx_t *c = ctx_with_timeout(ctx_background(), 30 * MS, NULL);
	int64_t t0 = ut_real_now();
	assert_int_equal(ctx_wait(c, 10 * CTX_SECOND), ETIMEDOUT);
	int64_t el = ut_real_now() - t0;
	assert_true(el < PROMPT_NS);
	ctx_release(c);
}

/* ---- many waiters ---- */

struct waiter {
	ctx_t *ctx;
	atomic_int *started;
	int result;
	int64_t woke_at;
};

static void *waiter_main(void *arg)
{
	struct waiter *w = arg;
	atomic_fetch_add(w->started, 1);
	w->result = ctx_wait(w->ctx, CTX_FOREVER);
	w->woke_at = ut_real_now();
	return NULL;
}

/* Start NWAITERS threads waiting forever on ctxs[i % nctx], let them reach
 * their wait, run `trigger`, and check that every one returns `want`. */
static void many_waiters(ctx_t **ctxs, int nctx, void (*trigger)(void *), void *targ, int want)
{
	atomic_int started = 0;
	struct waiter w[NWAITERS];
	pthread_t th[NWAITERS];
	for (int i = 0; i < NWAITERS; i++) {
		w[i] = (struct waiter){.ctx = ctxs[i % nctx], .started = &started, .result = -1};
		assert_int_equal(pthread_create(&th[i], NULL, waiter_main, &w[i]), 0);
	}
	while (atomic_load(&started) < NWAITERS)
		sched_yield();
	/* Give them a chance to actually block (not needed for correctness:
	 * a waiter that has not blocked yet must see the done state too). */
	ut_sleep_ms(50);
	int64_t t0 = ut_real_now();
	trigger(targ);
	for (int i = 0; i < NWAITERS; i++) {
		if (!ut_join_ms(th[i], 10000, NULL))
			fail_msg("waiter %d was not woken", i);
	}
	for (int i = 0; i < NWAITERS; i++) {
		assert_int_equal(w[i].result, want);
		assert_true(w[i].woke_at - t0 < PROMPT_NS);
	}
}

static void trigger_cancel(void *arg) { ctx_cancel(arg); }
static void trigger_nothing(void *arg) { (void)arg; }

static void test_many_waiters_one_cancel(void **state)
{
	(void)state;
	ctx_cancel_t *cancel;
	ctx_t *c = ctx_with_cancel(ctx_background(), &cancel);
	many_waiters(&c, 1, trigger_cancel, cancel, ECANCELED);
	ctx_release(c);
}

static void test_many_waiters_timer(void **state)
{
	(void)state;
	ctx_cancel_t *cancel;
	/* Long enough for the waiters to block first, in most runs. */
	ctx_t *c = ctx_with_timeout(ctx_background(), 200 * MS, &cancel);
	many_waiters(&c, 1, trigger_nothing, NULL, ETIMEDOUT);
	ctx_cancel(cancel);
	ctx_release(c);
}

static void test_many_waiters_parent_cancel(void **state)
{
	(void)state;
	ctx_cancel_t *cancel;
	ctx_t *p = ctx_with_cancel(ctx_background(), &cancel);
	ctx_t *c1 = ctx_with_cancel(p, NULL);
	ctx_t *c2 = ctx_with_value(c1, &key1, &val1, NULL);
	ctx_t *c3 = ctx_with_timeout(c2, 3600 * CTX_SECOND, NULL);
	ctx_t *c4 = ctx_with_value(p, &key1, &val1, NULL);
	ctx_t *ctxs[] = {p, c1, c2, c3, c4};
	many_waiters(ctxs, 5, trigger_cancel, cancel, ECANCELED);
	ctx_release(c4);
	ctx_release(c3);
	ctx_release(c2);
	ctx_release(c1);
	ctx_release(p);
}

/* Waiters that time out and leave do not make the others miss the wake. */
struct timed_waiter {
	ctx_t *ctx;
	ctx_duration_t timeout;
	int result;
};

static void *timed_waiter_main(void *arg)
{
	struct timed_waiter *w = arg;
	w->result = ctx_wait(w->ctx, w->timeout);
	return NULL;
}

static void test_timed_out_waiters_leave_others_waiting(void **state)
{
	(void)state;
	ctx_cancel_t *cancel;
	ctx_t *c = ctx_with_cancel(ctx_background(), &cancel);
	struct timed_waiter w[NWAITERS];
	pthread_t th[NWAITERS];
	for (int i = 0; i < NWAITERS; i++) {
		w[i] = (struct timed_waiter){c, (i & 1) ? CTX_FOREVER : (ctx_duration_t)(i + 1) * 5 * MS, -1};
		assert_int_equal(pthread_create(&th[i], NULL, timed_waiter_main, &w[i]), 0);
	}
	/* The timed ones leave, with 0. */
	for (int i = 0; i < NWAITERS; i += 2) {
		assert_true(ut_join_ms(th[i], 10000, NULL));
		assert_int_equal(w[i].result, 0);
	}
	ctx_cancel(cancel);
	for (int i = 1; i < NWAITERS; i += 2) {
		if (!ut_join_ms(th[i], 10000, NULL))
			fail_msg("waiter %d was not woken", i);
		assert_int_equal(w[i].result, ECANCELED);
	}
	ctx_release(c);
}

static void test_wait_value_child_of_cancel(void **state)
{
	(void)state;
	ctx_cancel_t *cancel;
	ctx_t *p = ctx_with_cancel(ctx_background(), &cancel);
	ctx_t *v = ctx_with_value(p, &key1, &val1, NULL);
	assert_int_equal(ctx_wait(v, 10 * MS), 0);
	struct delayed_cancel d = {cancel, 20, 0};
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, delayed_cancel_main, &d), 0);
	assert_int_equal(UT_BOUNDED(UT_BOUND_MS, "done wakes ctx_wait",
	                            ctx_wait(v, CTX_FOREVER)), ECANCELED);
	assert_true(ut_join_ms(t, 10000, NULL));
	ctx_release(v);
	ctx_release(p);
}

/* ---- ctx_sleep ---- */

static void test_sleep_whole_time(void **state)
{
	(void)state;
	ctx_cancel_t *cancel;
	ctx_t *c = ctx_with_cancel(ctx_background(), &cancel);
	int64_t t0 = ut_real_now();
	assert_int_equal(ctx_sleep(c, 60 * MS), 0);
	assert_true(ut_real_now() - t0 >= 60 * MS);
	t0 = ut_real_now();
	assert_int_equal(ctx_sleep(ctx_background(), 30 * MS), 0);
	assert_true(ut_real_now() - t0 >= 30 * MS);
	ctx_cancel(cancel);
	ctx_release(c);
}

static void test_sleep_done_first(void **state)
{
	(void)state;
	/* Already done: returns the err at once. */
	ctx_cancel_t *cancel;
	ctx_t *c = ctx_with_cancel(ctx_background(), &cancel);
	ctx_cancel(cancel);
	int64_t t0 = ut_real_now();
	assert_int_equal(ctx_sleep(c, 10 * CTX_SECOND), ECANCELED);
	assert_true(ut_real_now() - t0 < PROMPT_NS);
	ctx_release(c);

	/* Cancelled from another thread mid-sleep: returns long before the
	 * sleep's end. */
	c = ctx_with_cancel(ctx_background(), &cancel);
	struct delayed_cancel d = {cancel, 0, 0};
	pthread_t t;
	t0 = ut_real_now();
	assert_int_equal(pthread_create(&t, NULL, delayed_cancel_main, &d), 0);
	assert_int_equal(ctx_sleep(c, 10 * CTX_SECOND), ECANCELED);
	assert_true(ut_real_now() - t0 < PROMPT_NS);
	assert_true(ut_join_ms(t, 10000, NULL));
	ctx_release(c);

	/* A deadline ends the sleep with ETIMEDOUT. */
	c = ctx_with_timeout(ctx_background(), 20 * MS, NULL);
	t0 = ut_real_now();
	assert_int_equal(ctx_sleep(c, 10 * CTX_SECOND), ETIMEDOUT);
	assert_true(ut_real_now() - t0 < PROMPT_NS);
	ctx_release(c);
}

/* ---- no polling ---- */

/* Voluntary context switches of the calling thread: a blocking wait makes
 * one or two, a loop of short sleeps makes one per sleep. */
static long thread_switches(void)
{
	struct rusage ru;
	getrusage(RUSAGE_THREAD, &ru);
	return ru.ru_nvcsw;
}

static void test_wait_uses_no_cpu(void **state)
{
	(void)state;
	ctx_cancel_t *cancel;
	ctx_t *c = ctx_with_cancel(ctx_background(), &cancel);
	long sw0 = thread_switches();
	int64_t cpu0 = ut_cpu_ns(), t0 = ut_real_now();
	assert_int_equal(ctx_wait(c, 300 * MS), 0);
	int64_t cpu = ut_cpu_ns() - cpu0;
	long sw = thread_switches() - sw0;
	assert_true(ut_real_now() - t0 >= 300 * MS);
	if (cpu >= 100 * MS)
		fail_msg("a 300 ms wait used %lld ms of CPU", (long long)(cpu / MS));
	if (sw > 20)
		fail_msg("a 300 ms wait slept %ld times: polling?", sw);

	/* A waiter blocked forever while another thread cancels 300 ms later. */
	struct delayed_cancel d = {cancel, 300, 0};
	pthread_t t;
	cpu0 = ut_cpu_ns();
	assert_int_equal(pthread_create(&t, NULL, delayed_cancel_main, &d), 0);
	sw0 = thread_switches();
	assert_int_equal(UT_BOUNDED(UT_BOUND_MS, "test_wait_uses_no_cpu: done wakes ctx_wait",
	                            ctx_wait(c, CTX_FOREVER)), ECANCELED);
	sw = thread_switches() - sw0;
	cpu = ut_cpu_ns() - cpu0;
	assert_true(ut_join_ms(t, 10000, NULL));
	if (cpu >= 100 * MS)
		fail_msg("a 300 ms wait used %lld ms of CPU", (long long)(cpu / MS));
	if (sw > 20)
		fail_msg("a 300 ms wait slept %ld times: polling?", sw);
	ctx_release(c);

	/* The same for a context that can never be done. */
	cpu0 = ut_cpu_ns();
	sw0 = thread_switches();
	assert_int_equal(ctx_wait(ctx_background(), 300 * MS), 0);
	sw = thread_switches() - sw0;
	cpu = ut_cpu_ns() - cpu0;
	if (cpu >= 100 * MS)
		fail_msg("a 300 ms wait on Background used %lld ms of CPU", (long long)(cpu / MS));
	if (sw > 20)
		fail_msg("a 300 ms wait on Background slept %ld times: polling?", sw);

	/* ctx_sleep likewise. */
	sw0 = thread_switches();
	assert_int_equal(ctx_sleep(ctx_background(), 300 * MS), 0);
	sw = thread_switches() - sw0;
	if (sw > 20)
		fail_msg("a 300 ms ctx_sleep slept %ld times: polling?", sw);
}

/* ---- signals do not end a wait ---- */

static void on_signal(int sig) { (void)sig; }

struct pester {
	pthread_t target;
	atomic_bool stop;
	atomic_int sent;
};

static void *pester_main(void *arg)
{
	struct pester *p = arg;
	while (!atomic_load(&p->stop)) {
		pthread_kill(p->target, SIGUSR1);
		atomic_fetch_add(&p->sent, 1);
		ut_sleep_ms(5);
	}
	return NULL;
}

static void test_wait_not_interrupted_by_signals(void **state)
{
	(void)state;
	struct sigaction sa = {.sa_handler = on_signal}, old;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART: the futex wait sees EINTR */
	assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);
	struct pester p = {.target = pthread_self()};
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, pester_main, &p), 0);

	ctx_cancel_t *cancel;
	ctx_t *c = ctx_with_cancel(ctx_background(), &cancel);
	int64_t t0 = ut_real_now();
	int r1 = ctx_wait(c, 200 * MS);
	int64_t e1 = ut_real_now() - t0;
	t0 = ut_real_now();
	int r2 = ctx_sleep(c, 200 * MS);
	int64_t e2 = ut_real_now() - t0;
	t0 = ut_real_now();
	int r3 = ctx_wait(ctx_background(), 200 * MS);
	int64_t e3 = ut_real_now() - t0;
	/* CTX_FOREVER: only the cancel ends it. */
	struct delayed_cancel d = {cancel, 200, 0};
	pthread_t k;
	assert_int_equal(pthread_create(&k, NULL, delayed_cancel_main, &d), 0);
	t0 = ut_real_now();
	int r4 = UT_BOUNDED(UT_BOUND_MS, "done wakes ctx_wait", ctx_wait(c, CTX_FOREVER));
	int64_t e4 = ut_real_now() - t0;

	atomic_store(&p.stop, true);
	assert_true(ut_join_ms(t, 10000, NULL));
	assert_true(ut_join_ms(k, 10000, NULL));
	sigaction(SIGUSR1, &old, NULL);
	ctx_release(c);

	assert_true(atomic_load(&p.sent) > 10);
	assert_int_equal(r1, 0);
	assert_true(e1 >= 200 * MS);
	assert_int_equal(r2, 0);
	assert_true(e2 >= 200 * MS);
	assert_int_equal(r3, 0);
	assert_true(e3 >= 200 * MS);
	assert_int_equal(r4, ECANCELED);
	assert_true(e4 >= 150 * MS); /* the cancel came ~200 ms after the start */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wait_done_returns_err_at_once),
		cmocka_unit_test(test_wait_timeout_not_done),
		cmocka_unit_test(test_wait_zero_only_looks),
		cmocka_unit_test(test_wait_never_done_contexts),
		cmocka_unit_test(test_wait_forever_until_cancelled),
		cmocka_unit_test(test_wait_forever_until_deadline),
		cmocka_unit_test(test_wait_timeout_longer_than_deadline),
		cmocka_unit_test(test_many_waiters_one_cancel),
		cmocka_unit_test(test_many_waiters_timer),
		cmocka_unit_test(test_many_waiters_parent_cancel),
		cmocka_unit_test(test_timed_out_waiters_leave_others_waiting),
		cmocka_unit_test(test_wait_value_child_of_cancel),
		cmocka_unit_test(test_sleep_whole_time),
		cmocka_unit_test(test_sleep_done_first),
		cmocka_unit_test(test_wait_uses_no_cpu),
		cmocka_unit_test(test_wait_not_interrupted_by_signals),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
