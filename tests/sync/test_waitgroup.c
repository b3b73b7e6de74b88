/* test_waitgroup.c: ctx_waitgroup_*: the counter's bounds, wait (plain and
 * with a context), many waiters woken at once, reuse, WaitGroup.Go, freeing
 * right after wait, and a stress of many threads adding and waiting. */
#include <limits.h>

#include "goctx/chan.h"
#include "goctx/sync.h"
#include "util.h"

static void test_size_and_init(void **state)
{
	(void)state;
	assert_int_equal(sizeof(ctx_waitgroup_t), 32);
	ctx_waitgroup_t wg = CTX_WAITGROUP_INIT, z;
	memset(&z, 0, sizeof z);
	assert_int_equal(ctx_waitgroup_wait(&wg, NULL), 0);
	assert_int_equal(ctx_waitgroup_wait(&z, NULL), 0);
	ut_assert_no_leak();
}

static void test_counter_bounds(void **state)
{
	(void)state;
	ctx_waitgroup_t wg = CTX_WAITGROUP_INIT;
	assert_int_equal(ctx_waitgroup_add(&wg, -1), EINVAL);
	assert_int_equal(ctx_waitgroup_wait(&wg, NULL), 0); /* unchanged: zero */
	assert_int_equal(ctx_waitgroup_add(&wg, 0), 0);
	assert_int_equal(ctx_waitgroup_add(&wg, INT_MAX), 0);
	assert_int_equal(ctx_waitgroup_add(&wg, 1), EINVAL);
	assert_int_equal(ctx_waitgroup_add(&wg, -INT_MAX - 1), EINVAL);
	assert_int_equal(ctx_waitgroup_add(&wg, -(INT_MAX - 1)), 0);
	/* Counter 1: a done ctx returns its err. */
	ctx_cancel_t *cancel;
	ctx_t *c = ctx_with_cancel(ctx_background(), &cancel);
	ctx_cancel(cancel);
	assert_int_equal(ctx_waitgroup_wait(&wg, c), ECANCELED);
	ctx_waitgroup_done(&wg);
	assert_int_equal(ctx_waitgroup_wait(&wg, NULL), 0);
	/* An unmatched done leaves the counter at zero. */
	ctx_waitgroup_done(&wg);
	assert_int_equal(ctx_waitgroup_add(&wg, 1), 0);
	assert_int_equal(ctx_waitgroup_wait(&wg, c), ECANCELED); /* 1, not 0 */
	ctx_waitgroup_done(&wg);
	/* A zero counter wins over a done ctx. */
	assert_int_equal(ctx_waitgroup_wait(&wg, c), 0);
	assert_int_equal(ctx_waitgroup_add(NULL, 1), EINVAL);
	assert_int_equal(ctx_waitgroup_wait(NULL, NULL), EINVAL);
	ctx_waitgroup_done(NULL);
	ctx_release(c);
	ut_assert_no_leak();
}

struct waiter {
	ctx_waitgroup_t *wg;
	ctx_t *ctx;
	int ret;
	sem_t *started;
};

static void *wait_thread(void *p)
{
	struct waiter *w = p;
	if (w->started)
		sem_post(w->started);
	w->ret = ctx_waitgroup_wait(w->wg, w->ctx);
	return NULL;
}

static void test_many_waiters_woken(void **state)
{
	(void)state;
	enum { N = 16 };
	for (int round = 0; round < 20; round++) {
		ctx_waitgroup_t wg = CTX_WAITGROUP_INIT;
		assert_int_equal(ctx_waitgroup_add(&wg, 3), 0);
		sem_t started;
		sem_init(&started, 0, 0);
		pthread_t t[N];
		struct waiter w[N];
		for (int i = 0; i < N; i++) {
			w[i] = (struct waiter){.wg = &wg, .ctx = (i & 1) ? ctx_background() : NULL,
			                       .ret = -1, .started = &started};
			assert_int_equal(pthread_create(&t[i], NULL, wait_thread, &w[i]), 0);
		}
		for (int i = 0; i < N; i++)
			assert_true(ut_sem_wait_ms(&started, 10000));
		ctx_waitgroup_done(&wg);
		ctx_waitgroup_add(&wg, -2);
		for (int i = 0; i < N; i++) {
			assert_true(ut_join_ms(t[i], 10000, NULL));
			assert_int_equal(w[i].ret, 0);
		}
		sem_destroy(&started);
	}
	ut_assert_no_leak();
}

static void test_wait_ctx_cancelled_while_waiting(void **state)
{
	(void)state;
	ctx_waitgroup_t wg = CTX_WAITGROUP_INIT;
	assert_int_equal(ctx_waitgroup_add(&wg, 1), 0);
	for (int i = 0; i < 50; i++) {
		ctx_cancel_t *cancel;
		ctx_t *c = ctx_with_cancel(ctx_background(), &cancel);
		sem_t started;
		sem_init(&started, 0, 0);
		/* Two waiters: one with the context, one without; only the first
		 * returns when the context is done. */
		struct waiter a = {.wg = &wg, .ctx = c, .ret = -1, .started = &started};
		struct waiter b = {.wg = &wg, .ctx = NULL, .ret = -1, .started = &started};
		pthread_t ta, tb;
		assert_int_equal(pthread_create(&ta, NULL, wait_thread, &a), 0);
		assert_int_equal(pthread_create(&tb, NULL, wait_thread, &b), 0);
		assert_true(ut_sem_wait_ms(&started, 10000));
		assert_true(ut_sem_wait_ms(&started, 10000));
		if (i & 1)
			sched_yield();
		ctx_cancel_cause(cancel, 77);
		assert_true(ut_join_ms(ta, 10000, NULL));
		assert_int_equal(a.ret, ECANCELED);
		/* The wait let go of its after-func. */
		assert_int_equal(ctx__children_count(c), 0);
		ctx_waitgroup_done(&wg);
		assert_true(ut_join_ms(tb, 10000, NULL));
		assert_int_equal(b.ret, 0);
		assert_int_equal(ctx_waitgroup_add(&wg, 1), 0);
		sem_destroy(&started);
		ctx_release(c);
	}
	ctx_waitgroup_done(&wg);
	ut_assert_no_leak();
}

static void test_wait_timeout_ctx(void **state)
{
	(void)state;
	ctx_waitgroup_t wg = CTX_WAITGROUP_INIT;
	assert_int_equal(ctx_waitgroup_add(&wg, 1), 0);
	ctx_cancel_t *cancel;
	ctx_t *c = ctx_with_timeout(ctx_background(), 2 * CTX_MILLISECOND, &cancel);
	assert_int_equal(ctx_waitgroup_wait(&wg, c), ETIMEDOUT);
	ctx_cancel(cancel);
	ctx_release(c);
	ctx_waitgroup_done(&wg);
	ut_assert_no_leak_eventually();
}

static void test_wait_ctx_counter_reaches_zero(void **state)
{
	(void)state;
	ctx_cancel_t *cancel;
	ctx_t *c = ctx_with_cancel(ctx_background(), &cancel);
	for (int i = 0; i < 50; i++) {
		ctx_waitgroup_t wg = CTX_WAITGROUP_INIT;
		assert_int_equal(ctx_waitgroup_add(&wg, 1), 0);
		struct waiter a = {.wg = &wg, .ctx = c, .ret = -1};
		pthread_t ta;
		assert_int_equal(pthread_create(&ta, NULL, wait_thread, &a), 0);
		ctx_waitgroup_done(&wg);
		assert_true(ut_join_ms(ta, 10000, NULL));
		assert_int_equal(a.ret, 0);
		assert_int_equal(ctx__children_count(c), 0);
	}
	ctx_cancel(cancel);
	ctx_release(c);
	ut_assert_no_leak();
}

static void test_wait_ctx_enomem(void **state)
{
	(void)state;
	ctx_cancel_t *cancel;
	ctx_t *c = ctx_with_cancel(ctx_background(), &cancel);
	ctx_waitgroup_t wg = CTX_WAITGROUP_INIT;
	assert_int_equal(ctx_waitgroup_add(&wg, 1), 0);
	ut_fail_allocs(1);
	assert_int_equal(ctx_waitgroup_wait(&wg, c), ENOMEM);
	atomic_store(&ut_fail_next, 0);
	assert_int_equal(ctx__children_count(c), 0);
	ctx_waitgroup_done(&wg);
	assert_int_equal(ctx_waitgroup_wait(&wg, c), 0);
	ctx_cancel(cancel);
	ctx_release(c);
	ut_assert_no_leak();
}

/* Reuse after wait, several rounds, with workers from ctx_waitgroup_go. */
static atomic_int go_ran;

static void bump(void *arg)
{
	(void)arg;
	atomic_fetch_add(&go_ran, 1);
}

static void test_go_and_reuse(void **state)
{
	(void)state;
	ctx_waitgroup_t wg = CTX_WAITGROUP_INIT;
	atomic_store(&go_ran, 0);
	for (int round = 1; round <= 10; round++) {
		for (int i = 0; i < 8; i++)
			assert_int_equal(ctx_waitgroup_go(&wg, bump, NULL), 0);
		assert_int_equal(ctx_waitgroup_wait(&wg, NULL), 0);
		/* Every done happened before the wait returned. */
		assert_int_equal(atomic_load(&go_ran), round * 8);
	}
	assert_int_equal(ctx_waitgroup_go(NULL, bump, NULL), EINVAL);
	assert_int_equal(ctx_waitgroup_go(&wg, NULL, NULL), EINVAL);
	/* The only allocation is the start record of a new thread (none when
	 * a cached thread takes the call); on ENOMEM the counter is unchanged
	 * and fn never runs. */
	ut_fail_allocs(1);
	int r = ctx_waitgroup_go(&wg, bump, NULL);
	atomic_store(&ut_fail_next, 0);
	assert_true(r == 0 || r == ENOMEM);
	assert_int_equal(ctx_waitgroup_wait(&wg, NULL), 0);
	int ran = 80 + (r == 0);
	assert_int_equal(atomic_load(&go_ran), ran);
	/* At INT_MAX: EINVAL, nothing started. */
	assert_int_equal(ctx_waitgroup_add(&wg, INT_MAX), 0);
	assert_int_equal(ctx_waitgroup_go(&wg, bump, NULL), EINVAL);
	assert_int_equal(ctx_waitgroup_add(&wg, -INT_MAX), 0);
	assert_int_equal(atomic_load(&go_ran), ran);
	ut_assert_no_leak_eventually();
}

/* The waiter frees the group as soon as wait returns (ASan sees a late
 * access by done as a use after free). */
static void done_heap(void *arg) { ctx_waitgroup_done(arg); }

static void test_free_after_wait(void **state)
{
	(void)state;
	for (int i = 0; i < 200; i++) {
		ctx_waitgroup_t *wg = calloc(1, sizeof *wg);
		assert_int_equal(ctx_waitgroup_add(wg, 2), 0);
		assert_int_equal(chan_go(done_heap, wg), 0);
		assert_int_equal(chan_go(done_heap, wg), 0);
		assert_int_equal(ctx_waitgroup_wait(wg, NULL), 0);
		free(wg);
	}
}

/* ---- stress: many threads adding, finishing and waiting on one group ---- */

struct stress {
	ctx_waitgroup_t *wg;
	int rounds;
	atomic_int *bad;
};

static void *stress_thread(void *p)
{
	struct stress *s = p;
	for (int i = 0; i < s->rounds; i++) {
		int n = 1 + (int)(((unsigned)i * 7u + (unsigned)((uintptr_t)&i >> 4)) % 4u);
		if (ctx_waitgroup_add(s->wg, n) != 0)
			atomic_fetch_add(s->bad, 1);
		for (int k = 0; k < n; k++)
			ctx_waitgroup_done(s->wg);
		/* Waits may return at any zero; they must return. */
		ctx_waitgroup_wait(s->wg, (i & 1) ? ctx_background() : NULL);
	}
	return NULL;
}

static void test_stress(void **state)
{
	(void)state;
	enum { T = 8 };
	ctx_waitgroup_t wg = CTX_WAITGROUP_INIT;
	atomic_int bad = 0;
	pthread_t t[T];
	struct stress s = {.wg = &wg, .rounds = UT_ITERS(20000), .bad = &bad};
	for (int i = 0; i < T; i++)
		assert_int_equal(pthread_create(&t[i], NULL, stress_thread, &s), 0);
	for (int i = 0; i < T; i++)
		assert_true(ut_join_ms(t[i], 60000, NULL));
	assert_int_equal(atomic_load(&bad), 0);
	assert_int_equal(ctx_waitgroup_wait(&wg, NULL), 0);
	ut_assert_no_leak();
}

int main(void)
{
	ut_seed("test_waitgroup");
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_size_and_init, ut_mark),
		cmocka_unit_test_setup(test_counter_bounds, ut_mark),
		cmocka_unit_test_setup(test_many_waiters_woken, ut_mark),
		cmocka_unit_test_setup(test_wait_ctx_cancelled_while_waiting, ut_mark),
		cmocka_unit_test_setup(test_wait_timeout_ctx, ut_mark),
		cmocka_unit_test_setup(test_wait_ctx_counter_reaches_zero, ut_mark),
		cmocka_unit_test_setup(test_wait_ctx_enomem, ut_mark),
		cmocka_unit_test_setup(test_go_and_reuse, ut_mark),
		cmocka_unit_test_setup(test_free_after_wait, ut_mark),
		cmocka_unit_test_setup(test_stress, ut_mark),
	};
	return cmocka_run_group_tests(tests, ut_group_setup, NULL);
}
