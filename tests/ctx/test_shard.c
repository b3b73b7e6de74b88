/* test_shard.c: sharded child lists (src/ctx/list.c). A cancelable node
 * whose lock is often found taken swaps its child list for per-thread
 * shards, and its cancelable children count their reference to it there.
 * Every rule of the one list must still hold: cancellation reaches every
 * child in every shard, a child born under a done parent is done, an entry
 * leaves its list when it goes, and the node is freed exactly once, by
 * whoever lets go last (its own holders or a child). ctx__shard_now shards
 * a node at once so that each rule is checked on the sharded path. */
#include "util.h"

#include "ctx/testing.h"

static const int key;

static ctx_t *sharded_root(ctx_cancel_t **cancel)
{
	ctx_t *root = ctx_with_cancel(ctx_background(), cancel);
	assert_non_null(root);
	assert_int_equal(ctx__shard_now(root), 0);
	assert_true(ctx__sharded(root));
	return root;
}

static void test_shard_now_rules(void **state)
{
	(void)state;
	assert_int_equal(ctx__shard_now(ctx_background()), EINVAL);
	ctx_t *c = ctx_with_cancel(ctx_background(), NULL);
	ctx_t *v = ctx_with_value(c, &key, NULL, NULL);
	assert_int_equal(ctx__shard_now(v), EINVAL); /* not cancelable itself */
	assert_false(ctx__sharded(c));
	/* No memory for the table: the one list stays, and works. */
	atomic_store(&ut_fail_next, 1);
	assert_int_equal(ctx__shard_now(c), ENOMEM);
	assert_false(ctx__sharded(c));
	ctx_t *k = ctx_with_cancel(c, NULL);
	assert_int_equal(ctx__children_count(c), 1);
	ctx_release(k);
	assert_int_equal(ctx__children_count(c), 0);
	assert_int_equal(ctx__shard_now(c), 0);
	assert_int_equal(ctx__shard_now(c), 0); /* once is enough */
	assert_true(ctx__sharded(v));           /* v's src is c */
	ctx_release(v);
	ctx_release(c);
	ut_assert_no_leak();
}

/* The old list moves into the table: children linked before still leave
 * and still get cancelled. */
static void test_shard_keeps_old_children(void **state)
{
	(void)state;
	ctx_cancel_t *cancel;
	ctx_t *root = ctx_with_cancel(ctx_background(), &cancel);
	ctx_t *before[3];
	for (int i = 0; i < 3; i++)
		before[i] = ctx_with_cancel(root, NULL);
	assert_int_equal(ctx__shard_now(root), 0);
	ctx_t *after = ctx_with_cancel(root, NULL);
	assert_int_equal(ctx__children_count(root), 4);
	ctx_release(before[1]);
	assert_int_equal(ctx__children_count(root), 3);
	ctx_cancel(cancel);
	ut_assert_done(before[0], ECANCELED, ECANCELED);
	ut_assert_done(before[2], ECANCELED, ECANCELED);
	ut_assert_done(after, ECANCELED, ECANCELED);
	assert_int_equal(ctx__children_count(root), 0);
	ctx_release(before[0]);
	ctx_release(before[2]);
	ctx_release(after);
	ctx_release(root);
	ut_assert_no_leak();
}

/* Children in different shards (one per thread), of every kind that sits
 * in a list: cancel children, timers, value-then-cancel grandchildren,
 * after-funcs (allocated and in a slot), merged contexts. */
#define THREADS 6
struct maker {
	ctx_t *root;
	ctx_t *kids[4];
	ctx_after_t *after;
	ctx_after_slot_t slot;
	ctx_after_t *at;
	atomic_int fired;
};

static void fire(void *arg) { atomic_fetch_add((atomic_int *)arg, 1); }

static void *make_kids(void *arg)
{
	struct maker *m = arg;
	m->kids[0] = ctx_with_cancel(m->root, NULL);
	m->kids[1] = ctx_with_timeout(m->root, (3600 * CTX_SECOND), NULL);
	ctx_t *v = ctx_with_value(m->root, &key, NULL, NULL);
	m->kids[2] = ctx_with_cancel(v, NULL);
	ctx_release(v);
	m->kids[3] = ctx_with_merge(ctx_background(), &m->root, 1, NULL);
	if (ctx_after_func(m->root, fire, &m->fired, &m->after) != 0)
		return NULL;
	m->at = ctx_after_func_at(m->root, &m->slot, fire, &m->fired);
	return m;
}

static void test_shard_cancel_reaches_every_shard(void **state)
{
	(void)state;
	ctx_cancel_t *cancel;
	ctx_t *root = sharded_root(&cancel);
	struct maker m[THREADS];
	pthread_t t[THREADS];
	for (int i = 0; i < THREADS; i++) {
		m[i] = (struct maker){.root = root};
		atomic_init(&m[i].fired, 0);
		assert_int_equal(pthread_create(&t[i], NULL, make_kids, &m[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		void *ok;
		assert_true(ut_join_ms(t[i], 10000, &ok));
		assert_non_null(ok);
		for (int k = 0; k < 4; k++) {
			assert_non_null(m[i].kids[k]);
			ut_assert_live(m[i].kids[k]);
		}
	}
	/* 4 entries each (the merged context's entry for root included), 2
	 * after-funcs each. */
	assert_int_equal(ctx__children_count(root), THREADS * 6);
	ctx_cancel_cause(cancel, EPIPE);
	for (int i = 0; i < THREADS; i++) {
		for (int k = 0; k < 3; k++)
			ut_assert_done(m[i].kids[k], ECANCELED, EPIPE);
		assert_int_equal(ctx_err(m[i].kids[3]), ECANCELED);
		assert_int_equal(atomic_load(&m[i].fired), 2);
		assert_false(ctx_after_stop(m[i].after));
		assert_false(ctx_after_stop(m[i].at));
		for (int k = 0; k < 4; k++)
			ctx_release(m[i].kids[k]);
	}
	assert_int_equal(ctx__children_count(root), 0);
	ctx_release(root);
	ut_assert_no_leak();
}

/* After-funcs on a sharded node can be stopped (they leave their shard). */
static void test_shard_after_stop(void **state)
{
	(void)state;
	ctx_cancel_t *cancel;
	ctx_t *root = sharded_root(&cancel);
	atomic_int fired = 0;
	ctx_after_t *a;
	ctx_after_slot_t slot;
	assert_int_equal(ctx_after_func(root, fire, &fired, &a), 0);
	ctx_after_t *b = ctx_after_func_at(root, &slot, fire, &fired);
	assert_non_null(b);
	assert_int_equal(ctx__children_count(root), 2);
	assert_true(ctx_after_stop(a));
	assert_true(ctx_after_stop(b));
	assert_int_equal(ctx__children_count(root), 0);
	ctx_cancel(cancel);
	assert_int_equal(atomic_load(&fired), 0);
	ctx_release(root);
	ut_assert_no_leak();
}

/* Born done under a done sharded parent, with its cause; nothing listed. */
static void test_shard_born_done(void **state)
{
	(void)state;
	ctx_cancel_t *cancel, *kc;
	ctx_t *root = sharded_root(&cancel);
	ctx_cancel_cause(cancel, EPIPE);
	ctx_t *k = ctx_with_cancel(root, &kc);
	ut_assert_done(k, ECANCELED, EPIPE);
	atomic_int fired = 0;
	assert_int_equal(ctx_after_func(root, fire, &fired, NULL), 0);
	assert_int_equal(atomic_load(&fired), 1);
	assert_int_equal(ctx__children_count(root), 0);
	ctx_cancel(kc);
	ctx_release(k);
	ctx_release(root);
	ut_assert_no_leak();
}

/* The node outlives its own holders while children hold it through their
 * shards, and the last child to go frees it; either order frees it once. */
static void test_shard_children_keep_parent(void **state)
{
	(void)state;
	for (int order = 0; order < 2; order++) {
		long base = ut_live();
		ctx_cancel_t *cancel;
		ctx_t *root = sharded_root(&cancel);
		ctx_t *v = ctx_with_value(root, &key, (void *)&key, NULL);
		ctx_t *k1 = ctx_with_cancel(root, NULL);
		ctx_t *k2 = ctx_with_cancel(v, NULL); /* holds v, v holds root */
		if (order == 0)
			ctx_cancel(cancel);
		ctx_release(root);
		ctx_release(v);
		if (order == 1)
			ctx_cancel(cancel);
		/* Values and deadlines still read through the parents. */
		assert_ptr_equal(ctx_value(k2, &key), &key);
		assert_true(ut_live() > base);
		ctx_release(k1);
		assert_true(ut_live() > base);
		ctx_release(k2);
		assert_int_equal(ut_live(), base);
	}
}

/* A release that is not the last, then the last, from a sharded node's
 * holders (retain, cancel handle dup) while children come and go. */
static void test_shard_holders_and_kids(void **state)
{
	(void)state;
	ctx_cancel_t *cancel;
	ctx_t *root = sharded_root(&cancel);
	ctx_t *extra = ctx_retain(root);
	ctx_cancel_t *dup = ctx_cancel_dup(cancel);
	ctx_t *k = ctx_with_cancel(root, NULL);
	ctx_release(root);
	ctx_cancel(cancel);
	ctx_release(k);
	ut_assert_done(extra, ECANCELED, ECANCELED);
	ctx_cancel(dup);
	ctx_release(extra);
	ut_assert_no_leak();
}

/* ---- Stress: many threads, one sharded (or sharding) parent ---- */

#define STRESS_THREADS 8
#define STRESS_ITERS 2000

struct worker {
	ctx_t *root;
	atomic_bool *stop;
	int bad;
};

static void *churn(void *arg)
{
	struct worker *w = arg;
	for (int i = 0; i < UT_ITERS(STRESS_ITERS); i++) {
		ctx_cancel_t *kc;
		/* A child made once root is seen done is born done. */
		bool root_done = ctx_done(w->root);
		ctx_t *k = (i & 3) == 3 ? ctx_with_timeout(w->root, (3600 * CTX_SECOND), &kc)
		                        : ctx_with_cancel(w->root, &kc);
		if (!k) {
			w->bad++;
			continue;
		}
		if (root_done && !ctx_done(k))
			w->bad++;
		if (i & 1)
			ctx_cancel(kc);
		ctx_release(k);
		if (!(i & 1))
			ctx_cancel(kc); /* the handle's reference goes last */
	}
	return w;
}

/* Children made and dropped from many threads while the parent is
 * cancelled and its own holders let go: every child of a done parent is
 * done, the parent is freed exactly once (ASan), nothing leaks. Rounds
 * start sharded, or shard while the workers run, or may shard on their
 * own under the contention. */
static void test_shard_stress(void **state)
{
	(void)state;
	for (int round = 0; round < 8; round++) {
		ctx_cancel_t *cancel;
		ctx_t *root = ctx_with_cancel(ctx_background(), &cancel);
		assert_non_null(root);
		if (round & 1)
			assert_int_equal(ctx__shard_now(root), 0);
		struct worker w[STRESS_THREADS];
		pthread_t t[STRESS_THREADS];
		for (int i = 0; i < STRESS_THREADS; i++) {
			w[i] = (struct worker){.root = ctx_retain(root)};
			assert_int_equal(pthread_create(&t[i], NULL, churn, &w[i]), 0);
		}
		/* Shard while they work (the install races their links, unlinks
		 * and frees), let go of ours, cancel some rounds midway. */
		if ((round & 5) == 4)
			assert_int_equal(ctx__shard_now(root), 0);
		if (round & 2)
			ctx_cancel(cancel);
		ctx_release(root);
		for (int i = 0; i < STRESS_THREADS; i++) {
			assert_true(ut_join_ms(t[i], 60000, NULL));
			assert_int_equal(w[i].bad, 0);
		}
		if (!(round & 2))
			ctx_cancel(cancel);
		for (int i = 0; i < STRESS_THREADS; i++)
			ctx_release(w[i].root);
		ut_assert_no_leak_eventually();
	}
}

int main(void)
{
	ut_install_allocator();
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_shard_now_rules, ut_mark),
	    cmocka_unit_test_setup(test_shard_keeps_old_children, ut_mark),
	    cmocka_unit_test_setup(test_shard_cancel_reaches_every_shard, ut_mark),
	    cmocka_unit_test_setup(test_shard_after_stop, ut_mark),
	    cmocka_unit_test_setup(test_shard_born_done, ut_mark),
	    cmocka_unit_test_setup(test_shard_children_keep_parent, ut_mark),
	    cmocka_unit_test_setup(test_shard_holders_and_kids, ut_mark),
	    cmocka_unit_test_setup(test_shard_stress, ut_mark),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
