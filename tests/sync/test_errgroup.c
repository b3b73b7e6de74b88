/* test_errgroup.c: ctx_errgroup_*: the group context, first error wins and
 * becomes the cause, wait's ECANCELED, the limit (go blocks, try_go
 * refuses, EBUSY), functions that start functions, allocation failure,
 * bursts through the hand-off slot, and a stress of limited groups under
 * racing failures. */
#include "goctx/sync.h"
#include "util.h"

static int ret_arg(ctx_t *g, void *arg)
{
	(void)g;
	return (int)(intptr_t)arg;
}

static void test_new_and_empty_wait(void **state)
{
	(void)state;
	ctx_t *g = (ctx_t *)&g;
	errno = 0;
	assert_null(ctx_errgroup_new(NULL, &g));
	assert_int_equal(errno, EINVAL);
	assert_null(g);
	ctx_errgroup_t *eg = ctx_errgroup_new(ctx_background(), &g);
	assert_non_null(eg);
	ut_assert_live(g);
	assert_string_equal(ut_fmt(g), "context.Background.WithCancel");
	assert_int_equal(ctx_errgroup_wait(eg), 0);
	ut_assert_done(g, ECANCELED, ECANCELED);
	ctx_release(g);
	/* NULL gctx: the group still has its context. */
	eg = ctx_errgroup_new(ctx_background(), NULL);
	assert_non_null(eg);
	assert_int_equal(ctx_errgroup_go(eg, ret_arg, (void *)0), 0);
	assert_int_equal(ctx_errgroup_wait(eg), 0);
	assert_int_equal(ctx_errgroup_wait(NULL), EINVAL);
	assert_int_equal(ctx_errgroup_go(NULL, ret_arg, NULL), EINVAL);
	assert_int_equal(ctx_errgroup_try_go(NULL, ret_arg, NULL), EINVAL);
	assert_int_equal(ctx_errgroup_set_limit(NULL, 1), EINVAL);
	ut_assert_no_leak_eventually();
}

/* Functions that wait for the group context, then return 9 (dropped). */
static int wait_then_9(ctx_t *g, void *arg)
{
	atomic_int *saw = arg;
	if (ctx_wait(g, 20 * CTX_SECOND) == ECANCELED && ctx_cause(g) == 5)
		atomic_fetch_add(saw, 1);
	return 9;
}

static void test_first_error_wins(void **state)
{
	(void)state;
	for (int round = 0; round < 20; round++) {
		ctx_t *g;
		ctx_errgroup_t *eg = ctx_errgroup_new(ctx_background(), &g);
		atomic_int saw = 0;
		for (int i = 0; i < 4; i++)
			assert_int_equal(ctx_errgroup_go(eg, wait_then_9, &saw), 0);
		assert_int_equal(ctx_errgroup_go(eg, ret_arg, (void *)5), 0);
		assert_int_equal(ctx_errgroup_wait(eg), 5);
		assert_int_equal(atomic_load(&saw), 4);
		ut_assert_done(g, ECANCELED, 5);
		ctx_release(g);
	}
	ut_assert_no_leak_eventually();
}

/* A cancelled parent cancels the group context; go still runs fn. */
static void test_parent_done_still_runs(void **state)
{
	(void)state;
	ctx_cancel_t *cancel;
	ctx_t *p = ctx_with_cancel(ctx_background(), &cancel);
	ctx_t *g;
	ctx_errgroup_t *eg = ctx_errgroup_new(p, &g);
	ctx_cancel_cause(cancel, 42);
	ut_assert_done(g, ECANCELED, 42);
	atomic_int saw = 0;
	assert_int_equal(ctx_errgroup_go(eg, wait_then_9, &saw), 0);
	assert_int_equal(ctx_errgroup_wait(eg), 9); /* it ran, and failed */
	assert_int_equal(ctx_cause(g), 42);
	ctx_release(g);
	ctx_release(p);
	ut_assert_no_leak_eventually();
}

struct gate {
	sem_t entered;
	sem_t release;
};

static int gated(ctx_t *g, void *arg)
{
	(void)g;
	struct gate *gt = arg;
	sem_post(&gt->entered);
	return ut_sem_wait_ms(&gt->release, 30000) ? 0 : 99;
}

struct goer {
	ctx_errgroup_t *eg;
	struct gate *gt;
	atomic_int returned;
	int ret;
};

static void *go_thread(void *p)
{
	struct goer *w = p;
	w->ret = ctx_errgroup_go(w->eg, gated, w->gt);
	atomic_store(&w->returned, 1);
	return NULL;
}

static void test_limit(void **state)
{
	(void)state;
	struct gate gt;
	sem_init(&gt.entered, 0, 0);
	sem_init(&gt.release, 0, 0);
	ctx_errgroup_t *eg = ctx_errgroup_new(ctx_background(), NULL);
	assert_int_equal(ctx_errgroup_set_limit(eg, 0), 0);
	assert_int_equal(ctx_errgroup_go(eg, gated, &gt), EAGAIN);
	assert_int_equal(ctx_errgroup_try_go(eg, gated, &gt), EAGAIN);
	assert_int_equal(ctx_errgroup_set_limit(eg, 1), 0);
	assert_int_equal(ctx_errgroup_go(eg, gated, &gt), 0);
	assert_true(ut_sem_wait_ms(&gt.entered, 10000));
	/* At the limit: try_go refuses, set_limit is busy whatever n. */
	assert_int_equal(ctx_errgroup_try_go(eg, gated, &gt), EAGAIN);
	assert_int_equal(ctx_errgroup_set_limit(eg, 5), EBUSY);
	assert_int_equal(ctx_errgroup_set_limit(eg, -1), EBUSY);
	/* go blocks until the running one returns. */
	struct goer w = {.eg = eg, .gt = &gt, .returned = 0, .ret = -1};
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, go_thread, &w), 0);
	for (int i = 0; i < 1000; i++)
		sched_yield();
	assert_int_equal(atomic_load(&w.returned), 0);
	sem_post(&gt.release);
	assert_true(ut_join_ms(t, 10000, NULL));
	assert_int_equal(w.ret, 0);
	assert_true(ut_sem_wait_ms(&gt.entered, 10000));
	sem_post(&gt.release);
	assert_int_equal(ctx_errgroup_wait(eg), 0);
	/* A new group with the limit changed before anything runs. */
	eg = ctx_errgroup_new(ctx_background(), NULL);
	assert_int_equal(ctx_errgroup_set_limit(eg, 2), 0);
	assert_int_equal(ctx_errgroup_set_limit(eg, -7), 0); /* no limit */
	for (int i = 0; i < 3; i++)
		assert_int_equal(ctx_errgroup_try_go(eg, gated, &gt), 0);
	for (int i = 0; i < 3; i++)
		assert_true(ut_sem_wait_ms(&gt.entered, 10000));
	for (int i = 0; i < 3; i++)
		sem_post(&gt.release);
	assert_int_equal(ctx_errgroup_wait(eg), 0);
	sem_destroy(&gt.entered);
	sem_destroy(&gt.release);
	ut_assert_no_leak_eventually();
}

/* A running function starts more in its own group; wait waits for all. */
static ctx_errgroup_t *nest_group;
static atomic_int nest_count;

static int nest(ctx_t *g, void *arg)
{
	(void)g;
	int depth = (int)(intptr_t)arg;
	atomic_fetch_add(&nest_count, 1);
	if (depth > 0) {
		ctx_errgroup_go(nest_group, nest, (void *)(intptr_t)(depth - 1));
		ctx_errgroup_go(nest_group, nest, (void *)(intptr_t)(depth - 1));
	}
	return 0;
}

static void test_nested_go(void **state)
{
	(void)state;
	atomic_store(&nest_count, 0);
	nest_group = ctx_errgroup_new(ctx_background(), NULL);
	assert_int_equal(ctx_errgroup_go(nest_group, nest, (void *)(intptr_t)4), 0);
	assert_int_equal(ctx_errgroup_wait(nest_group), 0);
	assert_int_equal(atomic_load(&nest_count), 31);
	ut_assert_no_leak_eventually();
}

static atomic_int enomem_ran;

static int mark_ran(ctx_t *g, void *arg)
{
	(void)g;
	(void)arg;
	atomic_fetch_add(&enomem_ran, 1);
	return 0;
}

static void test_enomem(void **state)
{
	(void)state;
	ut_fail_allocs(1);
	errno = 0;
	ctx_t *g = (ctx_t *)&g;
	assert_null(ctx_errgroup_new(ctx_background(), &g));
	assert_int_equal(errno, ENOMEM);
	assert_null(g);
	ut_fail_allocs(2); /* the node after the group */
	assert_null(ctx_errgroup_new(ctx_background(), &g));
	assert_int_equal(errno, ENOMEM);
	atomic_store(&ut_fail_next, 0);
	ut_assert_no_leak();
	ctx_errgroup_t *eg = ctx_errgroup_new(ctx_background(), &g);
	assert_int_equal(ctx_errgroup_set_limit(eg, 1), 0);
	atomic_store(&enomem_ran, 0);
	for (int k = 1; k <= 2; k++) {
		ut_fail_allocs(k);
		int e = ctx_errgroup_go(eg, mark_ran, NULL);
		atomic_store(&ut_fail_next, 0);
		if (e == 0)
			break;
		assert_int_equal(e, ENOMEM);
		assert_int_equal(atomic_load(&enomem_ran), 0);
		/* The slot was given back. */
		assert_int_equal(ctx_errgroup_set_limit(eg, 1), 0);
	}
	assert_int_equal(ctx_errgroup_wait(eg), 0);
	ctx_release(g);
	ut_assert_no_leak_eventually();
}

/* ---- stress: limited groups, racing failures ---- */

static int racer(ctx_t *g, void *arg)
{
	int v = (int)(intptr_t)arg;
	if (v % 3 == 0)
		return 100 + v;
	ctx_wait(g, 0);
	return v % 3 == 1 ? 0 : 100 + v;
}

/* Bursts of short functions, as the hand-off slot serves them (a thread
 * that has just run one of the group's functions takes the next go()):
 * every function runs exactly once, and on a thread of its own: the first
 * one blocks until the last one of its round has run, which would never
 * happen if a go() waited behind it on its thread. */
enum { BURST = 64 };
static atomic_int burst_ran[BURST];
static sem_t burst_last;

static int burst_fn(ctx_t *g, void *arg)
{
	(void)g;
	int i = (int)(intptr_t)arg;
	if (i == 0 && !ut_sem_wait_ms(&burst_last, 20000))
		return 1; /* the last one never ran */
	atomic_fetch_add(&burst_ran[i], 1);
	if (i == BURST - 1)
		sem_post(&burst_last);
	return 0;
}

static void test_burst(void **state)
{
	(void)state;
	assert_int_equal(sem_init(&burst_last, 0, 0), 0);
	for (int round = 1; round <= UT_ITERS(200); round++) {
		ctx_errgroup_t *eg = ctx_errgroup_new(ctx_background(), NULL);
		assert_non_null(eg);
		for (int i = 0; i < BURST; i++)
			assert_int_equal(ctx_errgroup_go(eg, burst_fn, (void *)(intptr_t)i), 0);
		assert_int_equal(ctx_errgroup_wait(eg), 0);
		for (int i = 0; i < BURST; i++)
			assert_int_equal(atomic_load(&burst_ran[i]), round);
	}
	sem_destroy(&burst_last);
	ut_assert_no_leak_eventually();
}

struct stress_arg {
	int rounds;
	atomic_int bad;
};

static void *stress_thread(void *p)
{
	struct stress_arg *s = p;
	for (int r = 0; r < s->rounds; r++) {
		ctx_t *g;
		ctx_errgroup_t *eg = ctx_errgroup_new(ctx_background(), &g);
		ctx_errgroup_set_limit(eg, 3);
		for (int i = 1; i <= 12; i++) {
			int e = (i & 1) ? ctx_errgroup_go(eg, racer, (void *)(intptr_t)i)
			                : ctx_errgroup_try_go(eg, racer, (void *)(intptr_t)i);
			if (e != 0 && e != EAGAIN)
				atomic_fetch_add(&s->bad, 1);
		}
		int err = ctx_errgroup_wait(eg);
		if (err == 0 || err < 100 || ctx_cause(g) != err || ctx_err(g) != ECANCELED)
			atomic_fetch_add(&s->bad, 1);
		ctx_release(g);
	}
	return NULL;
}

static void test_stress(void **state)
{
	(void)state;
	enum { T = 4 };
	struct stress_arg s = {.rounds = UT_ITERS(300), .bad = 0};
	pthread_t t[T];
	for (int i = 0; i < T; i++)
		assert_int_equal(pthread_create(&t[i], NULL, stress_thread, &s), 0);
	for (int i = 0; i < T; i++)
		assert_true(ut_join_ms(t[i], 120000, NULL));
	assert_int_equal(atomic_load(&s.bad), 0);
	ut_assert_no_leak_eventually();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_new_and_empty_wait, ut_mark),
		cmocka_unit_test_setup(test_first_error_wins, ut_mark),
		cmocka_unit_test_setup(test_parent_done_still_runs, ut_mark),
		cmocka_unit_test_setup(test_limit, ut_mark),
		cmocka_unit_test_setup(test_nested_go, ut_mark),
		cmocka_unit_test_setup(test_enomem, ut_mark),
		cmocka_unit_test_setup(test_burst, ut_mark),
		cmocka_unit_test_setup(test_stress, ut_mark),
	};
	return cmocka_run_group_tests(tests, ut_group_setup, NULL);
}
