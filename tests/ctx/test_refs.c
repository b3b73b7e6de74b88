/* test_refs.c: references and memory. A counting allocator is installed
 * before any context exists; every test checks that the blocks the library
 * holds go back to the baseline once its references and handles are gone. */
#include "util.h"

#include <stdio.h>

#include "ctx/testing.h"

static long baseline;

static int group_setup(void **state)
{
	(void)state;
	/* Before the first context: accepted. */
	if (ctx_set_allocator(ut_alloc, ut_free) != 0)
		return -1;
	return 0;
}

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
	return 0;
}

#define assert_balanced() assert_int_equal(ut_live(), baseline)

static const int key1 = 1;
static int val1;
static atomic_int free_val_calls;
static void free_val(void *v)
{
	/* May run in a worker thread: count, do not assert. */
	atomic_fetch_add(&free_val_calls, v == &val1 ? 1 : 1000);
}

/* ---- allocator ---- */

static void test_allocator_counts_everything(void **state)
{
	(void)state;
	long a0 = ut_allocs_now();
	ctx_cancel_t *cancel;
	ctx_t *c = ctx_with_cancel(ctx_background(), &cancel);
	assert_true(ut_allocs_now() > a0);
	long a1 = ut_allocs_now();
	ctx_t *v = ctx_with_value(c, &key1, &val1, NULL);
	assert_true(ut_allocs_now() > a1);
	long a2 = ut_allocs_now();
	ctx_t *w = ctx_without_cancel(v);
	assert_true(ut_allocs_now() > a2);
	long a3 = ut_allocs_now();
	ctx_cancel_t *tc;
	ctx_t *t = ctx_with_timeout(c, CTX_SECOND * 3600, &tc);
	assert_true(ut_allocs_now() > a3);
	assert_true(ut_live() > baseline);
	ctx_cancel(tc);
	ctx_release(t);
	ctx_release(w);
	ctx_release(v);
	ctx_cancel(cancel);
	ctx_release(c);
	assert_balanced();
}

static void test_set_allocator_busy(void **state)
{
	(void)state;
	/* Contexts have been made (by the previous test): EBUSY, and the
	 * counting allocator stays in place. */
	ctx_cancel_t *cancel;
	ctx_t *live = ctx_with_cancel(ctx_background(), &cancel);
	assert_int_equal(ctx_set_allocator(malloc, free), EBUSY);
	long a0 = ut_allocs_now();
	ctx_t *c = ctx_with_cancel(live, NULL);
	assert_non_null(c);
	assert_true(ut_allocs_now() > a0);
	ctx_release(c);
	ctx_cancel(cancel);
	ctx_release(live);
	/* Still EBUSY with no context left alive. */
	assert_int_equal(ctx_set_allocator(malloc, free), EBUSY);
	a0 = ut_allocs_now();
	c = ctx_with_cancel(ctx_background(), NULL);
	assert_true(ut_allocs_now() > a0);
	ctx_release(c);
	assert_balanced();
}

static void test_set_allocator_einval(void **state)
{
	(void)state;
	assert_int_equal(ctx_set_allocator(NULL, free), EINVAL);
	assert_int_equal(ctx_set_allocator(malloc, NULL), EINVAL);
	assert_int_equal(ctx_set_allocator(NULL, NULL), EINVAL);
	/* Nothing changed. */
	long a0 = ut_allocs_now();
	ctx_t *c = ctx_with_cancel(ctx_background(), NULL);
	assert_true(ut_allocs_now() > a0);
	ctx_release(c);
	assert_balanced();
}

/* ---- retain / release ---- */

static void test_release_null(void **state)
{
	(void)state;
	ctx_release(NULL);
	assert_balanced();
}

static void test_roots_static(void **state)
{
	(void)state;
	ctx_t *bg = ctx_background(), *todo = ctx_todo();
	assert_ptr_equal(ctx_background(), bg);
	assert_ptr_equal(ctx_todo(), todo);
	for (int i = 0; i < 1000; i++) {
		assert_ptr_equal(ctx_retain(bg), bg);
		assert_ptr_equal(ctx_retain(todo), todo);
	}
	/* More releases than retains: still no-ops. */
	for (int i = 0; i < 3000; i++) {
		ctx_release(bg);
		ctx_release(todo);
	}
	assert_int_equal(ctx_err(bg), 0);
	assert_int_equal(ctx_err(todo), 0);
	ctx_t *c = ctx_with_cancel(bg, NULL);
	ctx_t *d = ctx_with_value(todo, &key1, &val1, NULL);
	assert_non_null(c);
	assert_non_null(d);
	assert_int_equal(ctx_err(c), 0);
	assert_ptr_equal(ctx_value(d, &key1), &val1);
	ctx_release(d);
	ctx_release(c);
	assert_balanced();
}

static void test_retain_release_balance(void **state)
{
	(void)state;
	ctx_t *c = ctx_with_value(ctx_background(), &key1, &val1, free_val);
	atomic_store(&free_val_calls, 0);
	long live = ut_live();
	for (int i = 0; i < 10; i++)
		assert_ptr_equal(ctx_retain(c), c);
	for (int i = 0; i < 10; i++) {
		ctx_release(c);
		assert_int_equal(ut_live(), live); /* still held by the creator */
	}
	assert_ptr_equal(ctx_value(c, &key1), &val1);
	assert_int_equal(atomic_load(&free_val_calls), 0);
	ctx_release(c);
	assert_int_equal(atomic_load(&free_val_calls), 1);
	assert_balanced();
}

static void test_child_keeps_parent(void **state)
{
	(void)state;
	atomic_store(&free_val_calls, 0);
	ctx_t *p = ctx_with_value(ctx_background(), &key1, &val1, free_val);
	ctx_t *q = ctx_with_cancel(p, NULL);
	ctx_t *child = ctx_with_value(q, &key1 + 1, NULL, NULL);
	long frees = ut_frees_now();
	ctx_release(p);
	ctx_release(q);
	/* Nothing freed: the child holds its parents. */
	assert_int_equal(ut_frees_now(), frees);
	assert_int_equal(atomic_load(&free_val_calls), 0);
	assert_ptr_equal(ctx_value(child, &key1), &val1);
	assert_int_equal(ctx_err(child), 0);
	ctx_release(child);
	assert_int_equal(atomic_load(&free_val_calls), 1);
	assert_balanced();
}

static void test_parent_does_not_keep_children(void **state)
{
	(void)state;
	ctx_cancel_t *pc;
	ctx_t *p = ctx_with_cancel(ctx_background(), &pc);
	long live0 = ut_live();
	ctx_t *c1 = ctx_with_cancel(p, NULL);
	ctx_cancel_t *tc;
	ctx_t *c2 = ctx_with_timeout(p, 3600 * CTX_SECOND, &tc);
	ctx_t *c3 = ctx_with_cancel(c1, NULL);
	assert_int_equal(ctx__children_count(p), 2);
	assert_int_equal(ctx__children_count(c1), 1);
	ctx_release(c3);
	assert_int_equal(ctx__children_count(c1), 0);
	ctx_release(c1);
	assert_int_equal(ctx__children_count(p), 1);
	ctx_release(c2);
	ctx_cancel(tc); /* the handle was the last reference */
	assert_int_equal(ctx__children_count(p), 0);
	/* Every child freed while the parent lives. */
	assert_int_equal(ut_live(), live0);
	assert_int_equal(ctx_err(p), 0);
	ctx_cancel(pc);
	ctx_release(p);
	assert_balanced();
}

/* ---- forgetting to cancel ---- */

static void test_forget_cancel_no_handle(void **state)
{
	(void)state;
	ctx_cancel_t *pc;
	ctx_t *p = ctx_with_cancel(ctx_background(), &pc);
	long live0 = ut_live();
	ctx_t *c = ctx_with_cancel(p, NULL);
	ctx_t *g = ctx_with_cancel(c, NULL);
	assert_int_equal(ctx__children_count(p), 1);
	ctx_release(g);
	ctx_release(c);
	assert_int_equal(ctx__children_count(p), 0);
	assert_int_equal(ut_live(), live0);
	ctx_cancel(pc);
	ctx_release(p);
	assert_balanced();
}

static void test_forget_cancel_timeout_no_handle(void **state)
{
	(void)state;
	size_t pending = ctx__timers_pending();
	ctx_cancel_t *pc;
	ctx_t *p = ctx_with_cancel(ctx_background(), &pc);
	ctx_t *t = ctx_with_timeout(p, 3600 * CTX_SECOND, NULL);
	ctx_t *t2 = ctx_with_timeout(ctx_background(), 3600 * CTX_SECOND, NULL);
	assert_int_equal(ctx__timers_pending(), pending + 2);
	assert_int_equal(ctx__children_count(p), 1);
	ctx_release(t);
	ctx_release(t2);
	assert_int_equal(ctx__timers_pending(), pending);
	assert_int_equal(ctx__children_count(p), 0);
	ctx_cancel(pc);
	ctx_release(p);
	assert_balanced();
}

static void test_cancel_handle_keeps_alive(void **state)
{
	(void)state;
	size_t pending = ctx__timers_pending();
	ctx_cancel_t *pc;
	ctx_t *p = ctx_with_cancel(ctx_background(), &pc);
	ctx_cancel_t *tc, *cc;
	ctx_t *t = ctx_with_timeout(p, 3600 * CTX_SECOND, &tc);
	ctx_t *c = ctx_with_cancel(p, &cc);
	long frees = ut_frees_now();
	ctx_release(t);
	ctx_release(c);
	/* The handles still hold them: nothing freed, still linked, armed. */
	assert_int_equal(ut_frees_now(), frees);
	assert_int_equal(ctx__children_count(p), 2);
	assert_int_equal(ctx__timers_pending(), pending + 1);
	ctx_cancel(tc);
	assert_int_equal(ctx__timers_pending(), pending);
	assert_int_equal(ctx__children_count(p), 1);
	ctx_cancel(cc);
	assert_int_equal(ctx__children_count(p), 0);
	assert_true(ut_frees_now() >= frees + 2);
	ctx_cancel(pc);
	ctx_release(p);
	assert_balanced();
}

static void test_release_after_parent_cancel(void **state)
{
	(void)state;
	/* Children cancelled through the parent, never by their own handle
	 * (NULL), are freed by their last release. */
	ctx_cancel_t *pc;
	ctx_t *p = ctx_with_cancel(ctx_background(), &pc);
	ctx_t *c = ctx_with_cancel(p, NULL);
	ctx_t *t = ctx_with_timeout(c, 3600 * CTX_SECOND, NULL);
	ctx_cancel(pc);
	assert_int_equal(ctx_err(t), ECANCELED);
	ctx_release(t);
	ctx_release(c);
	ctx_release(p);
	assert_balanced();
}

static void test_cancel_dup(void **state)
{
	(void)state;
	ctx_cancel_t *h1;
	ctx_t *c = ctx_with_cancel(ctx_background(), &h1);
	ctx_cancel_t *h2 = ctx_cancel_dup(h1);
	assert_non_null(h2);
	long frees = ut_frees_now();
	ctx_release(c);
	/* The second handle cancels: it works. */
	ctx_cancel_cause(h2, 42);
	assert_int_equal(ctx_err(c), ECANCELED);
	assert_int_equal(ctx_cause(c), 42);
	/* The first handle still holds the context. */
	assert_int_equal(ut_frees_now(), frees);
	ctx_cancel(h1); /* does nothing to the err/cause; frees */
	assert_balanced();
	/* Freed once: never more frees than allocations. */
	assert_true(ut_frees_now() <= ut_allocs_now());
}

static void test_cancel_dup_first_handle_cancels(void **state)
{
	(void)state;
	ctx_cancel_t *h1;
	ctx_t *c = ctx_with_timeout(ctx_background(), 3600 * CTX_SECOND, &h1);
	ctx_cancel_t *h2 = ctx_cancel_dup(h1);
	ctx_cancel_t *h3 = ctx_cancel_dup(h2);
	assert_non_null(h3);
	ctx_cancel(h1);
	assert_int_equal(ctx_err(c), ECANCELED);
	ctx_release(c);
	ctx_cancel_cause(h3, 5);
	assert_int_equal(ctx_cause(c), ECANCELED); /* first cancellation wins */
	ctx_cancel(h2);
	assert_balanced();
}

static void test_cancel_dup_null(void **state)
{
	(void)state;
	errno = 0;
	assert_null(ctx_cancel_dup(NULL));
	assert_int_equal(errno, EINVAL);
	assert_balanced();
}

/* ---- failed calls leave nothing behind ---- */

static void test_enomem_leaves_nothing(void **state)
{
	(void)state;
	ctx_cancel_t *pc;
	ctx_t *p = ctx_with_cancel(ctx_background(), &pc);
	long live0 = ut_live();
	atomic_store(&free_val_calls, 0);

	ctx_cancel_t *h = (ctx_cancel_t *)&h;
	ut_fail_allocs(1);
	errno = 0;
	assert_null(ctx_with_cancel(p, &h));
	assert_int_equal(errno, ENOMEM);

	size_t pending = ctx__timers_pending();
	ut_fail_allocs(1);
	errno = 0;
	assert_null(ctx_with_timeout(p, CTX_SECOND, NULL));
	assert_int_equal(errno, ENOMEM);
	assert_int_equal(ctx__timers_pending(), pending);

	ut_fail_allocs(1);
	errno = 0;
	assert_null(ctx_with_value(p, &key1, &val1, free_val));
	assert_int_equal(errno, ENOMEM);
	assert_int_equal(atomic_load(&free_val_calls), 0);

	ut_fail_allocs(1);
	errno = 0;
	assert_null(ctx_without_cancel(p));
	assert_int_equal(errno, ENOMEM);

	assert_int_equal(ctx__children_count(p), 0);
	assert_int_equal(ut_live(), live0);
	ctx_cancel(pc);
	ctx_release(p);
	assert_int_equal(atomic_load(&free_val_calls), 0);
	assert_balanced();
}

/* ---- concurrency ---- */

#define NTHREADS 8
#define ROUNDS 20000

/* cmocka's assertions are not for other threads: workers count errors. */
static atomic_int worker_errors;

static void *retain_release_worker(void *arg)
{
	ctx_t *c = arg;
	for (int i = 0; i < ROUNDS; i++) {
		ctx_t *r = ctx_retain(c);
		if (i % 3 == 0)
			ctx_retain(r);
		if (r != c || ctx_err(r) != 0)
			atomic_fetch_add(&worker_errors, 1);
		if (i % 3 == 0)
			ctx_release(r);
		ctx_release(r);
	}
	/* Each thread was handed one reference: give it back. */
	ctx_release(c);
	return NULL;
}

static void test_concurrent_retain_release(void **state)
{
	(void)state;
	atomic_store(&free_val_calls, 0);
	atomic_store(&worker_errors, 0);
	ctx_cancel_t *pc;
	ctx_t *p = ctx_with_cancel(ctx_background(), &pc);
	ctx_t *c = ctx_with_value(p, &key1, &val1, free_val);
	pthread_t th[NTHREADS];
	for (int i = 0; i < NTHREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, retain_release_worker, ctx_retain(c)), 0);
	ctx_release(c);
	for (int i = 0; i < NTHREADS; i++)
		assert_true(ut_join_ms(th[i], 60000, NULL));
	assert_int_equal(atomic_load(&worker_errors), 0);
	/* The last worker freed the value context. */
	assert_int_equal(atomic_load(&free_val_calls), 1);
	assert_int_equal(ctx__children_count(p), 0);
	ctx_cancel(pc);
	ctx_release(p);
	assert_balanced();
}

/* Children made and dropped by many threads under one parent that another
 * thread cancels: all balanced at the end. */
static void *child_churn_worker(void *arg)
{
	ctx_t *p = arg;
	for (int i = 0; i < 2000; i++) {
		ctx_cancel_t *h = NULL;
		ctx_t *c = ctx_with_cancel(p, (i & 1) ? &h : NULL);
		ctx_t *v = c ? ctx_with_value(c, &key1, &val1, NULL) : NULL;
		if (!c || !v || ctx_value(v, &key1) != &val1) {
			atomic_fetch_add(&worker_errors, 1);
			break;
		}
		if (i % 4 == 1) {
			ctx_release(c);
			ctx_release(v);
		} else {
			ctx_release(v);
			ctx_release(c);
		}
		if (h)
			ctx_cancel(h);
	}
	ctx_release(p);
	return NULL;
}

static void test_concurrent_children_balance(void **state)
{
	(void)state;
	atomic_store(&worker_errors, 0);
	ctx_cancel_t *pc;
	ctx_t *p = ctx_with_cancel(ctx_background(), &pc);
	pthread_t th[NTHREADS];
	for (int i = 0; i < NTHREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, child_churn_worker, ctx_retain(p)), 0);
	ctx_cancel(pc);
	for (int i = 0; i < NTHREADS; i++)
		assert_true(ut_join_ms(th[i], 60000, NULL));
	assert_int_equal(atomic_load(&worker_errors), 0);
	assert_int_equal(ctx__children_count(p), 0);
	ctx_release(p);
	assert_balanced();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_allocator_counts_everything, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_set_allocator_busy, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_set_allocator_einval, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_release_null, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_roots_static, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_retain_release_balance, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_child_keeps_parent, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_parent_does_not_keep_children, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_forget_cancel_no_handle, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_forget_cancel_timeout_no_handle, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_cancel_handle_keeps_alive, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_release_after_parent_cancel, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_cancel_dup, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_cancel_dup_first_handle_cancels, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_cancel_dup_null, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_enomem_leaves_nothing, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_retain_release, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_children_balance, test_setup, test_teardown),
	};
	return cmocka_run_group_tests(tests, group_setup, NULL);
}
