/* test_merge.c: ctx_with_merge: errors, n == 0, format, the first done
 * other giving err and cause (done before its ctx_cancel returns), born
 * done from each position, the earliest deadline, values from the parent
 * only, others released early and let go of once done or freed, entries
 * unlinked from every other, after-funcs of the merged context cancelling
 * its others, merges of merges, and a stress of others cancelled from
 * several threads while the merged context is released. */
#include "util.h"

static void test_errors_and_n0(void **state)
{
	(void)state;
	ctx_cancel_t *cancel = (ctx_cancel_t *)&cancel;
	ctx_t *o[2] = {ctx_background(), NULL};
	errno = 0;
	assert_null(ctx_with_merge(NULL, o, 1, &cancel));
	assert_int_equal(errno, EINVAL);
	assert_null(cancel);
	errno = 0;
	assert_null(ctx_with_merge(ctx_background(), NULL, 1, &cancel));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(ctx_with_merge(ctx_background(), o, 2, &cancel));
	assert_int_equal(errno, EINVAL);
	/* n == 0: ctx_with_cancel, format included; NULL others allowed. */
	ctx_t *m = ctx_with_merge(ctx_background(), NULL, 0, &cancel);
	assert_non_null(m);
	assert_string_equal(ut_fmt(m), "context.Background.WithCancel");
	ut_assert_live(m);
	ctx_cancel_cause(cancel, 5);
	ut_assert_done(m, ECANCELED, 5);
	ctx_release(m);
	ut_assert_no_leak();
}

static atomic_int after_ran;

static void mark(void *arg)
{
	(void)arg;
	atomic_fetch_add(&after_ran, 1);
}

static void test_other_done_first(void **state)
{
	(void)state;
	for (int which = 0; which < 3; which++) {
		ctx_cancel_t *pc, *oc[3], *mc;
		ctx_t *p = ctx_with_cancel(ctx_background(), &pc);
		ctx_t *o[3];
		for (int i = 0; i < 3; i++)
			o[i] = ctx_with_cancel(ctx_background(), &oc[i]);
		ctx_t *m = ctx_with_merge(p, o, 3, &mc);
		assert_string_equal(ut_fmt(m), "context.Background.WithCancel.WithMerge(3)");
		ut_assert_live(m);
		for (int i = 0; i < 3; i++)
			assert_int_equal(ctx__children_count(o[i]), 1);
		assert_int_equal(ctx__children_count(p), 1);
		atomic_store(&after_ran, 0);
		assert_int_equal(ctx_after_func(m, mark, NULL, NULL), 0);
		ctx_t *child = ctx_with_cancel(m, NULL);
		ctx_cancel_cause(oc[which], 100 + which);
		/* Done, with its after-funcs run, when that cancel returned. */
		assert_int_equal(atomic_load(&after_ran), 1);
		ut_assert_done(m, ECANCELED, 100 + which);
		ut_assert_done(child, ECANCELED, 100 + which);
		/* Unlinked from all of them. */
		for (int i = 0; i < 3; i++)
			assert_int_equal(ctx__children_count(o[i]), 0);
		assert_int_equal(ctx__children_count(p), 0);
		/* Later ones change nothing. */
		for (int i = 0; i < 3; i++)
			if (i != which)
				ctx_cancel_cause(oc[i], 7);
		ctx_cancel_cause(pc, 8);
		ut_assert_done(m, ECANCELED, 100 + which);
		ctx_cancel(mc);
		ctx_release(child);
		ctx_release(m);
		for (int i = 0; i < 3; i++)
			ctx_release(o[i]);
		ctx_release(p);
	}
	ut_assert_no_leak();
}

static void test_parent_or_own_cancel_lets_go(void **state)
{
	(void)state;
	for (int how = 0; how < 2; how++) {
		ctx_cancel_t *pc, *oc, *mc;
		ctx_t *p = ctx_with_cancel(ctx_background(), &pc);
		ctx_t *o = ctx_with_cancel(ctx_background(), &oc);
		ctx_t *m = ctx_with_merge(p, &o, 1, &mc);
		if (how == 0)
			ctx_cancel_cause(pc, 9);
		else
			ctx_cancel_cause(mc, 10);
		ut_assert_done(m, ECANCELED, how == 0 ? 9 : 10);
		assert_int_equal(ctx__children_count(o), 0);
		assert_int_equal(ctx__children_count(p), 0);
		ut_assert_live(o);
		if (how == 0)
			ctx_cancel(mc);
		else
			ctx_cancel(pc);
		ctx_cancel(oc);
		ctx_release(m);
		ctx_release(o);
		ctx_release(p);
	}
	ut_assert_no_leak();
}

static void test_born_done_each_position(void **state)
{
	(void)state;
	/* done[i]: cause of position i (0: parent) when done, 0 when live. */
	static const int cases[][4] = {
		{11, 0, 0, 0}, {0, 12, 0, 0}, {0, 0, 13, 0}, {0, 0, 0, 14},
		{11, 12, 13, 14}, {0, 12, 13, 0}, {0, 0, 13, 14}, {11, 0, 0, 14},
	};
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		ctx_t *n[4];
		ctx_cancel_t *h[4];
		int want = 0;
		for (int i = 0; i < 4; i++) {
			n[i] = ctx_with_cancel(ctx_background(), &h[i]);
			if (cases[c][i]) {
				ctx_cancel_cause(h[i], cases[c][i]);
				h[i] = NULL;
				if (!want)
					want = cases[c][i];
			}
		}
		ctx_cancel_t *mc;
		ctx_t *m = ctx_with_merge(n[0], n + 1, 3, &mc);
		assert_non_null(m);
		assert_non_null(mc);
		ut_assert_done(m, ECANCELED, want);
		for (int i = 0; i < 4; i++)
			assert_int_equal(ctx__children_count(n[i]), 0);
		ctx_cancel(mc);
		ctx_release(m);
		for (int i = 0; i < 4; i++) {
			ctx_cancel(h[i]);
			ctx_release(n[i]);
		}
	}
	/* A timer other already past its deadline: ETIMEDOUT. */
	ctx_cancel_t *tc;
	ctx_t *t = ctx_with_timeout(ctx_background(), -1, &tc);
	ctx_t *m = ctx_with_merge(ctx_background(), &t, 1, NULL);
	ut_assert_done(m, ETIMEDOUT, ETIMEDOUT);
	ctx_release(m);
	ctx_cancel(tc);
	ctx_release(t);
	ut_assert_no_leak();
}

static void test_deadline_earliest(void **state)
{
	(void)state;
	ctx_time_t now = ctx_now();
	ctx_cancel_t *c1, *c2, *c3;
	ctx_t *p = ctx_with_deadline(ctx_background(), now + 100 * CTX_SECOND, &c1);
	ctx_t *a = ctx_with_deadline(ctx_background(), now + 50 * CTX_SECOND, &c2);
	ctx_t *b = ctx_with_deadline(ctx_background(), now + 200 * CTX_SECOND, &c3);
	ctx_time_t d = 0;
	ctx_t *o[3] = {b, ctx_background(), a};
	ctx_t *m = ctx_with_merge(p, o, 3, NULL);
	assert_true(ctx_deadline(m, &d));
	assert_int_equal(d, now + 50 * CTX_SECOND);
	/* A later timeout under it is a plain child. */
	ctx_t *late = ctx_with_timeout(m, 1000 * CTX_SECOND, NULL);
	assert_true(ctx_deadline(late, &d));
	assert_int_equal(d, now + 50 * CTX_SECOND);
	assert_true(ut_starts_with(ut_fmt(late), "context.Background.WithDeadline("));
	assert_true(ut_ends_with(ut_fmt(late), ".WithMerge(3).WithCancel"));
	ctx_release(late);
	ctx_release(m);
	/* The parent's is the earliest. */
	m = ctx_with_merge(p, &b, 1, NULL);
	assert_true(ctx_deadline(m, &d));
	assert_int_equal(d, now + 100 * CTX_SECOND);
	ctx_release(m);
	/* No deadline anywhere. */
	ctx_t *bg = ctx_background();
	m = ctx_with_merge(ctx_background(), &bg, 1, NULL);
	assert_false(ctx_deadline(m, &d));
	ctx_release(m);
	/* Only an other's. */
	m = ctx_with_merge(ctx_background(), &a, 1, NULL);
	assert_true(ctx_deadline(m, NULL));
	assert_true(ctx_deadline(m, &d));
	assert_int_equal(d, now + 50 * CTX_SECOND);
	/* A merge of merges. */
	ctx_t *m2 = ctx_with_merge(m, &b, 1, NULL);
	assert_true(ctx_deadline(m2, &d));
	assert_int_equal(d, now + 50 * CTX_SECOND);
	ctx_release(m2);
	ctx_release(m);
	ctx_cancel(c1);
	ctx_cancel(c2);
	ctx_cancel(c3);
	ctx_release(p);
	ctx_release(a);
	ctx_release(b);
	ut_assert_no_leak();
}

static void test_timer_other_fires(void **state)
{
	(void)state;
	ctx_cancel_t *tc, *mc;
	ctx_t *t = ctx_with_timeout_cause(ctx_background(), 2 * CTX_MILLISECOND, 61, &tc);
	ctx_t *m = ctx_with_merge(ctx_background(), &t, 1, &mc);
	ctx_release(t); /* released early: the merge keeps it until done */
	assert_int_equal(ctx_wait(m, 20 * CTX_SECOND), ETIMEDOUT);
	assert_int_equal(ctx_cause(m), 61);
	ctx_cancel(tc);
	ctx_cancel(mc);
	ctx_release(m);
	ut_assert_no_leak_eventually();
}

static int key;

static void test_values_from_parent_only(void **state)
{
	(void)state;
	int pv = 1, ov = 2;
	ctx_t *p = ctx_with_value(ctx_background(), &key, &pv, NULL);
	ctx_cancel_t *oc;
	ctx_t *o0 = ctx_with_cancel(ctx_background(), &oc);
	ctx_t *o = ctx_with_value(o0, &key + 1, &ov, NULL);
	ctx_t *m = ctx_with_merge(p, &o, 1, NULL);
	assert_ptr_equal(ctx_value(m, &key), &pv);
	assert_null(ctx_value(m, &key + 1));
	ctx_release(m);
	ctx_release(o);
	ctx_cancel(oc);
	ctx_release(o0);
	ctx_release(p);
	ut_assert_no_leak();
}

/* Others released early are kept until the merged context is done or freed
 * (or they are), then let go of. */
static void test_others_released_early(void **state)
{
	(void)state;
	for (int how = 0; how < 3; how++) {
		long base = ut_live();
		ctx_cancel_t *oc = NULL, *mc;
		ctx_t *o = ctx_with_cancel(ctx_background(), how == 2 ? &oc : NULL);
		ctx_t *m = ctx_with_merge(ctx_background(), &o, 1, &mc);
		ctx_release(o);
		assert_int_equal(ut_live(), base + 2); /* o is kept */
		if (how == 0) {
			ctx_cancel(mc); /* done: o goes */
			assert_int_equal(ut_live(), base + 1);
			ctx_release(m);
		} else if (how == 1) {
			ctx_release(m);
			assert_int_equal(ut_live(), base + 2); /* the handle keeps m */
			ctx_cancel(mc);
		} else {
			ctx_cancel(oc); /* o done: m done, o let go */
			ut_assert_done(m, ECANCELED, ECANCELED);
			assert_int_equal(ut_live(), base + 1);
			ctx_cancel(mc);
			ctx_release(m);
		}
		assert_int_equal(ut_live(), base);
	}
	/* Freed live: o goes with it. */
	long base = ut_live();
	ctx_t *o = ctx_with_cancel(ctx_background(), NULL);
	ctx_t *m = ctx_with_merge(ctx_background(), &o, 1, NULL);
	ctx_release(o);
	assert_int_equal(ut_live(), base + 2);
	ctx_release(m);
	assert_int_equal(ut_live(), base);
	ut_assert_no_leak();
}

/* The merged context's after-func cancels its other others: no deadlock
 * (it runs after the first other's op holds no BUSY bit). */
struct chain {
	ctx_cancel_t *cancel[2];
};

static void cancel_others(void *arg)
{
	struct chain *c = arg;
	ctx_cancel_cause(c->cancel[0], 71);
	ctx_cancel_cause(c->cancel[1], 72);
}

static void *after_cancels_run(void *arg)
{
	(void)arg;
	ctx_cancel_t *oc[3];
	ctx_t *o[3];
	for (int i = 0; i < 3; i++)
		o[i] = ctx_with_cancel(ctx_background(), &oc[i]);
	/* o[1] has a child so that its op sets BUSY. */
	ctx_t *kid = ctx_with_cancel(o[1], NULL);
	ctx_t *m = ctx_with_merge(ctx_background(), o, 3, NULL);
	ctx_t *m2 = ctx_with_merge(m, o, 2, NULL); /* a merge of a merge */
	struct chain c = {{oc[0], oc[2]}};
	ctx_after_func(m, cancel_others, &c, NULL);
	ctx_cancel_cause(oc[1], 70);
	assert_int_equal(ctx_cause(m), 70);
	assert_int_equal(ctx_cause(m2), 70);
	assert_int_equal(ctx_cause(o[0]), 71);
	assert_int_equal(ctx_cause(o[2]), 72);
	ctx_release(m2);
	ctx_release(m);
	ctx_release(kid);
	for (int i = 0; i < 3; i++)
		ctx_release(o[i]);
	return NULL;
}

static void test_after_func_cancels_others(void **state)
{
	(void)state;
	assert_true(ut_run_bounded(after_cancels_run, NULL, 20000));
	ut_assert_no_leak();
}

/* ---- stress ---- */

struct race {
	ctx_cancel_t *cancel;
	pthread_barrier_t *go;
};

static void *race_cancel(void *arg)
{
	struct race *r = arg;
	pthread_barrier_wait(r->go);
	ctx_cancel_cause(r->cancel, 200);
	return NULL;
}

static void test_stress_concurrent_cancel_and_release(void **state)
{
	(void)state;
	enum { N = 4 };
	pthread_barrier_t go;
	pthread_barrier_init(&go, NULL, N + 1);
	for (int round = 0; round < UT_ITERS(400); round++) {
		ctx_cancel_t *oc[N], *pc;
		ctx_t *o[N];
		ctx_t *p = ctx_with_cancel(ctx_background(), &pc);
		for (int i = 0; i < N; i++)
			o[i] = ctx_with_cancel(ctx_background(), &oc[i]);
		ctx_cancel_t *mc = NULL;
		ctx_t *m = ctx_with_merge(p, o, N, (round & 1) ? &mc : NULL);
		ctx_t *kid = ctx_with_cancel(m, NULL);
		ctx_after_func(kid, mark, NULL, NULL);
		for (int i = 0; i < N; i++)
			ctx_release(o[i]); /* released early */
		pthread_t t[N];
		struct race r[N];
		for (int i = 0; i < N; i++) {
			r[i] = (struct race){.cancel = oc[i], .go = &go};
			assert_int_equal(pthread_create(&t[i], NULL, race_cancel, &r[i]), 0);
		}
		pthread_barrier_wait(&go);
		if (round % 3 == 0)
			ctx_cancel(pc), pc = NULL;
		ctx_release(kid);
		if (mc)
			ctx_cancel(mc);
		ctx_release(m);
		for (int i = 0; i < N; i++)
			assert_true(ut_join_ms(t[i], 20000, NULL));
		ctx_cancel(pc);
		assert_int_equal(ctx__children_count(p), 0);
		ctx_release(p);
	}
	pthread_barrier_destroy(&go);
	ut_assert_no_leak_eventually();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_errors_and_n0, ut_mark),
		cmocka_unit_test_setup(test_other_done_first, ut_mark),
		cmocka_unit_test_setup(test_parent_or_own_cancel_lets_go, ut_mark),
		cmocka_unit_test_setup(test_born_done_each_position, ut_mark),
		cmocka_unit_test_setup(test_deadline_earliest, ut_mark),
		cmocka_unit_test_setup(test_timer_other_fires, ut_mark),
		cmocka_unit_test_setup(test_values_from_parent_only, ut_mark),
		cmocka_unit_test_setup(test_others_released_early, ut_mark),
		cmocka_unit_test_setup(test_after_func_cancels_others, ut_mark),
		cmocka_unit_test_setup(test_stress_concurrent_cancel_and_release, ut_mark),
	};
	return cmocka_run_group_tests(tests, ut_group_setup, NULL);
}
