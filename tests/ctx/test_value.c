/* test_value.c: ctx_with_value (lookup innermost first, shadowing, keys by
 * address, lookup through every kind of layer, free_val exactly once and
 * never on failure) and ctx_without_cancel (values kept, never done, no
 * deadline, not a child for cancellation, no done descriptor). */
#include "util.h"

/* Keys: distinct static objects, some with equal contents. */
static int key1 = 1, key2 = 2, key_same_a = 7, key_same_b = 7;
static char key_other;

static int v_a, v_b, v_c; /* values: their addresses */

/* ---- lookup ---------------------------------------------------------------------- */

/* The innermost value for a key wins; other keys pass through; outer
 * contexts do not see inner values. */
static void test_lookup_innermost_first(void **state)
{
	(void)state;
	ctx_t *c1 = ctx_with_value(ctx_background(), &key1, &v_a, NULL);
	ctx_t *c2 = ctx_with_value(c1, &key2, &v_b, NULL);
	ctx_t *c3 = ctx_with_value(c2, &key1, &v_c, NULL);
	assert_ptr_equal(ctx_value(c1, &key1), &v_a);
	assert_null(ctx_value(c1, &key2));
	assert_ptr_equal(ctx_value(c2, &key1), &v_a);
	assert_ptr_equal(ctx_value(c2, &key2), &v_b);
	assert_ptr_equal(ctx_value(c3, &key1), &v_c); /* shadows c1's */
	assert_ptr_equal(ctx_value(c3, &key2), &v_b);
	assert_ptr_equal(ctx_value(c1, &key1), &v_a); /* c1 unchanged */
	ctx_release(c3);
	ctx_release(c2);
	ctx_release(c1);
	ut_assert_no_leak();
}

/* A NULL value is a value: it shadows outer ones for its key only. */
static void test_null_value_shadows(void **state)
{
	(void)state;
	ctx_t *c1 = ctx_with_value(ctx_background(), &key1, &v_a, NULL);
	ctx_t *c2 = ctx_with_value(c1, &key2, &v_b, NULL);
	ctx_t *c3 = ctx_with_value(c2, &key1, NULL, NULL);
	assert_null(ctx_value(c3, &key1));
	assert_ptr_equal(ctx_value(c3, &key2), &v_b);
	assert_ptr_equal(ctx_value(c2, &key1), &v_a);
	ctx_t *c4 = ctx_with_value(c3, &key1, &v_c, NULL); /* and can be shadowed again */
	assert_ptr_equal(ctx_value(c4, &key1), &v_c);
	ctx_release(c4);
	ctx_release(c3);
	ctx_release(c2);
	ctx_release(c1);
	ut_assert_no_leak();
}

/* Keys compare by address: two objects with equal contents are different
 * keys, and the value pointer is returned as given. */
static void test_keys_by_address(void **state)
{
	(void)state;
	assert_ptr_not_equal(&key_same_a, &key_same_b);
	assert_int_equal(key_same_a, key_same_b);
	ctx_t *a = ctx_with_value(ctx_background(), &key_same_a, &v_a, NULL);
	assert_ptr_equal(ctx_value(a, &key_same_a), &v_a);
	assert_null(ctx_value(a, &key_same_b));
	ctx_t *b = ctx_with_value(a, &key_same_b, &v_b, NULL);
	assert_ptr_equal(ctx_value(b, &key_same_a), &v_a);
	assert_ptr_equal(ctx_value(b, &key_same_b), &v_b);
	/* A key that is a copy of another key's address is the same key. */
	const void *alias = &key_same_a;
	assert_ptr_equal(ctx_value(b, alias), &v_a);
	/* Any pointer-sized value, not only object addresses. */
	ctx_t *c = ctx_with_value(b, &key_other, (void *)(uintptr_t)0xdeadbeef, NULL);
	assert_ptr_equal(ctx_value(c, &key_other), (void *)(uintptr_t)0xdeadbeef);
	ctx_release(c);
	ctx_release(b);
	ctx_release(a);
	ut_assert_no_leak();
}

/* Lookup goes through cancel, deadline and WithoutCancel layers, live or
 * done, and through a layer made after its parent was cancelled. */
static void test_lookup_through_layers(void **state)
{
	(void)state;
	ctx_cancel_t *hc, *ht, *hc2;
	ctx_t *v1 = ctx_with_value(ctx_todo(), &key1, &v_a, NULL);
	ctx_t *c = ctx_with_cancel(v1, &hc);
	ctx_t *t = ctx_with_timeout(c, 3600 * CTX_SECOND, &ht);
	ctx_t *v2 = ctx_with_value(t, &key2, &v_b, NULL);
	ctx_t *w = ctx_without_cancel(v2);
	ctx_t *c2 = ctx_with_cancel(w, &hc2);
	ctx_t *all[] = {c, t, v2, w, c2};
	for (int i = 0; i < 5; i++)
		assert_ptr_equal(ctx_value(all[i], &key1), &v_a);
	assert_null(ctx_value(c, &key2));
	assert_null(ctx_value(t, &key2));
	for (int i = 2; i < 5; i++)
		assert_ptr_equal(ctx_value(all[i], &key2), &v_b);
	ctx_cancel(hc);
	ctx_t *late = ctx_with_cancel(v2, NULL);
	ut_assert_done(late, ECANCELED, ECANCELED);
	assert_ptr_equal(ctx_value(late, &key1), &v_a);
	assert_ptr_equal(ctx_value(late, &key2), &v_b);
	for (int i = 0; i < 5; i++) {
		assert_ptr_equal(ctx_value(all[i], &key1), &v_a);
		assert_null(ctx_value(all[i], &key_other));
	}
	assert_ptr_equal(ctx_value(c2, &key2), &v_b);
	ctx_cancel(ht);
	ctx_cancel(hc2);
	ctx_t *rel[] = {late, c2, w, v2, t, c, v1};
	for (int i = 0; i < 7; i++)
		ctx_release(rel[i]);
	ut_assert_no_leak();
}

/* A key that is not there gives NULL: roots, value chains, a deep chain of
 * 100000 layers (iterative lookup, no stack overflow). */
static void test_miss_returns_null(void **state)
{
	(void)state;
	assert_null(ctx_value(ctx_background(), &key1));
	assert_null(ctx_value(ctx_todo(), &key1));
	ctx_t *cur = ctx_with_value(ctx_background(), &key1, &v_a, NULL);
	for (int i = 0; i < 100000; i++) {
		ctx_t *next = i % 3 == 1 ? ctx_with_cancel(cur, NULL) : ctx_with_value(cur, &key2, &v_b, NULL);
		assert_non_null(next);
		ctx_release(cur);
		cur = next;
	}
	assert_null(ctx_value(cur, &key_other));
	assert_ptr_equal(ctx_value(cur, &key1), &v_a); /* the outermost, found at the end */
	assert_ptr_equal(ctx_value(cur, &key2), &v_b);
	ctx_release(cur);
	ut_assert_no_leak();
}

static atomic_int frees_seen;
static void *freed_with;
static void count_free(void *p)
{
	freed_with = p;
	atomic_fetch_add(&frees_seen, 1);
}

/* NULL key or NULL parent: NULL with EINVAL, free_val not called, nothing
 * allocated. */
static void test_null_key_einval(void **state)
{
	(void)state;
	atomic_store(&frees_seen, 0);
	errno = 0;
	assert_null(ctx_with_value(ctx_background(), NULL, &v_a, count_free));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(ctx_with_value(NULL, &key1, &v_a, count_free));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(ctx_with_value(NULL, NULL, &v_a, count_free));
	assert_int_equal(errno, EINVAL);
	assert_int_equal(atomic_load(&frees_seen), 0);
	ut_assert_no_leak();
}

/* ---- free_val ---------------------------------------------------------------------- */

/* free_val is called exactly once, with val, when the value context is
 * freed, and not while a child still holds it (cancelled or not). */
static void test_free_val_once_when_freed(void **state)
{
	(void)state;
	atomic_store(&frees_seen, 0);
	freed_with = NULL;
	ctx_t *v = ctx_with_value(ctx_background(), &key1, &v_a, count_free);
	ctx_cancel_t *h;
	ctx_t *c = ctx_with_cancel(v, &h);
	ctx_t *v2 = ctx_with_value(c, &key2, &v_b, NULL);
	ctx_release(v);
	assert_int_equal(atomic_load(&frees_seen), 0); /* c holds v */
	assert_ptr_equal(ctx_value(v2, &key1), &v_a);
	ctx_cancel(h);
	assert_int_equal(atomic_load(&frees_seen), 0);
	ctx_release(c);
	assert_int_equal(atomic_load(&frees_seen), 0); /* v2 holds c */
	ctx_release(v2);
	assert_int_equal(atomic_load(&frees_seen), 1);
	assert_ptr_equal(freed_with, &v_a);

	/* A retained reference keeps it too; NULL val is passed as is. */
	atomic_store(&frees_seen, 0);
	freed_with = &v_c;
	v = ctx_with_value(ctx_background(), &key1, NULL, count_free);
	ctx_retain(v);
	ctx_release(v);
	assert_int_equal(atomic_load(&frees_seen), 0);
	ctx_release(v);
	assert_int_equal(atomic_load(&frees_seen), 1);
	assert_null(freed_with);

	/* free_val NULL: nothing to call. */
	v = ctx_with_value(ctx_background(), &key1, &v_a, NULL);
	ctx_release(v);
	assert_int_equal(atomic_load(&frees_seen), 1);
	ut_assert_no_leak();
}

struct fv_probe {
	pthread_t ran_in;     /* the thread free_val ran in */
	atomic_int calls;
	ctx_t *to_release;    /* a context free_val releases, or NULL */
};

static void probe_free(void *p)
{
	struct fv_probe *f = p;
	f->ran_in = pthread_self();
	atomic_fetch_add(&f->calls, 1);
	ctx_release(f->to_release);
}

static void *release_in_thread(void *c)
{
	ctx_release(c);
	return NULL;
}

/* free_val runs in the thread that drops the last reference, and may
 * release contexts (here: the last reference of a context holding another
 * value whose free_val runs in turn). */
static void test_free_val_in_releasing_thread(void **state)
{
	(void)state;
	struct fv_probe inner = {.to_release = NULL}, outer;
	atomic_init(&inner.calls, 0);
	ctx_cancel_t *h;
	ctx_t *p = ctx_with_cancel(ctx_background(), &h);
	ctx_t *held = ctx_with_value(p, &key2, &inner, probe_free);
	outer.to_release = held;
	atomic_init(&outer.calls, 0);
	ctx_t *v = ctx_with_value(p, &key1, &outer, probe_free);
	ctx_t *c = ctx_with_cancel(v, NULL);
	ctx_release(v);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, release_in_thread, c), 0);
	UT_BOUNDED(UT_BOUND_MS, "test_free_val_in_releasing_thread: the thread returns",
	           pthread_join(t, NULL));
	assert_int_equal(atomic_load(&outer.calls), 1);
	assert_true(pthread_equal(outer.ran_in, t));
	assert_int_equal(atomic_load(&inner.calls), 1); /* released from free_val */
	assert_true(pthread_equal(inner.ran_in, t));
	ctx_cancel(h);
	ctx_release(p);
	ut_assert_no_leak();
}

/* If ctx_with_value fails for memory, it returns NULL with ENOMEM, does not
 * call free_val (the caller still owns val), and leaves nothing behind: the
 * parent's references are as before (it is freed by its own release). */
static void test_free_val_not_called_on_failure(void **state)
{
	(void)state;
	atomic_store(&frees_seen, 0);
	ctx_cancel_t *h;
	ctx_t *p = ctx_with_cancel(ctx_background(), &h);
	long live0 = ut_live();
	ut_fail_allocs(1);
	errno = 0;
	assert_null(ctx_with_value(p, &key1, &v_a, count_free));
	assert_int_equal(errno, ENOMEM);
	assert_int_equal(atomic_load(&frees_seen), 0);
	assert_int_equal(ut_live(), live0);
	assert_int_equal(ctx__children_count(p), 0);
	/* The next one works, and frees as usual. */
	ctx_t *v = ctx_with_value(p, &key1, &v_a, count_free);
	assert_non_null(v);
	ctx_release(v);
	assert_int_equal(atomic_load(&frees_seen), 1);
	ctx_cancel(h);
	ctx_release(p); /* the last reference: p must be freed now */
	ut_assert_no_leak();
}

static void *other_alloc(size_t n) { return malloc(n); }
static void other_free(void *p) { free(p); }

/* ctx_set_allocator after the first context: EBUSY, and the allocator in
 * use (this program's counting one) stays in use. */
static void test_set_allocator_later_ebusy(void **state)
{
	(void)state;
	ctx_t *v = ctx_with_value(ctx_background(), &key1, &v_a, NULL);
	assert_int_equal(ctx_set_allocator(other_alloc, other_free), EBUSY);
	long allocs0 = ut_allocs_now();
	ctx_t *w = ctx_with_value(v, &key2, &v_b, NULL);
	assert_int_equal(ut_allocs_now(), allocs0 + 1);
	ctx_release(w);
	ctx_release(v);
	ut_assert_no_leak();
}

/* ---- WithoutCancel ------------------------------------------------------------------ */

/* WithoutCancel keeps the parent's values, is never done (its parent
 * cancelled before or after it is made, or timed out), has no deadline, and
 * is not a child for cancellation: the parent's list does not change, and
 * children made under it are not reached by the parent's cancel. */
static void test_without_cancel(void **state)
{
	(void)state;
	ctx_cancel_t *hp, *hc, *ht;
	ctx_t *v = ctx_with_value(ctx_background(), &key1, &v_a, NULL);
	ctx_t *p = ctx_with_timeout(v, 3600 * CTX_SECOND, &hp);
	ctx_t *pv = ctx_with_value(p, &key2, &v_b, NULL);
	assert_int_equal(ctx__children_count(p), 0);
	ctx_t *w = ctx_without_cancel(pv);
	assert_non_null(w);
	assert_int_equal(ctx__children_count(p), 0);
	ctx_t *wc = ctx_with_cancel(w, &hc);
	ctx_t *wt = ctx_with_timeout(w, 7200 * CTX_SECOND, &ht);
	assert_int_equal(ctx__children_count(p), 0);
	assert_int_equal(ctx__children_count(w), 0);
	assert_int_equal(ctx__children_count(wc), 0); /* wt is under w, which lists nothing */

	assert_ptr_equal(ctx_value(w, &key1), &v_a);
	assert_ptr_equal(ctx_value(w, &key2), &v_b);
	assert_ptr_equal(ctx_value(wc, &key2), &v_b);
	assert_false(ctx_deadline(w, NULL));
	assert_false(ctx_deadline(wc, NULL));
	ctx_time_t dp, dt;
	assert_true(ctx_deadline(p, &dp));
	assert_true(ctx_deadline(wt, &dt)); /* its own, later than p's */
	assert_true(dt > dp);
	assert_true(ut_ends_with(ut_fmt(wt), "])"));
	assert_true(ut_ends_with(ut_fmt(w), ".WithoutCancel"));
	ut_assert_live(w);

	ctx_cancel_cause(hp, 5);
	ut_assert_done(p, ECANCELED, 5);
	ut_assert_live(w);
	ut_assert_live(wc);
	ut_assert_live(wt);
	assert_int_equal(ctx_wait(w, 2 * CTX_MILLISECOND), 0);
	ctx_t *late = ctx_without_cancel(p); /* of a done parent */
	ut_assert_live(late);
	assert_ptr_equal(ctx_value(late, &key1), &v_a);

	ctx_cancel(hc);
	ctx_cancel(ht);
	ut_assert_live(w);
	ctx_t *rel[] = {late, wt, wc, w, pv, p, v};
	for (int i = 0; i < 7; i++)
		ctx_release(rel[i]);
	ut_assert_no_leak();
}

/* A context that can never be done has no done descriptor: -1 with ENOENT
 * for WithoutCancel, values over it, and the roots. */
static void test_without_cancel_done_fd_enoent(void **state)
{
	(void)state;
	ctx_cancel_t *h;
	ctx_t *p = ctx_with_cancel(ctx_background(), &h);
	ctx_t *w = ctx_without_cancel(p);
	ctx_t *wv = ctx_with_value(w, &key1, &v_a, NULL);
	ctx_t *bv = ctx_with_value(ctx_background(), &key1, &v_a, NULL);
	ctx_t *none[] = {w, wv, bv, ctx_background(), ctx_todo()};
	for (int i = 0; i < 5; i++) {
		errno = 0;
		assert_int_equal(ctx_done_fd(none[i]), -1);
		assert_int_equal(errno, ENOENT);
	}
	ctx_cancel(h);
	errno = 0;
	assert_int_equal(ctx_done_fd(w), -1); /* still, with the parent done */
	assert_int_equal(errno, ENOENT);
	ctx_release(bv);
	ctx_release(wv);
	ctx_release(w);
	ctx_release(p);
	ut_assert_no_leak();
}

#define T(f) cmocka_unit_test_setup(f, ut_mark)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_lookup_innermost_first),
		T(test_null_value_shadows),
		T(test_keys_by_address),
		T(test_lookup_through_layers),
		T(test_miss_returns_null),
		T(test_null_key_einval),
		T(test_free_val_once_when_freed),
		T(test_free_val_in_releasing_thread),
		T(test_free_val_not_called_on_failure),
		T(test_set_allocator_later_ebusy),
		T(test_without_cancel),
		T(test_without_cancel_done_fd_enoent),
	};
	return cmocka_run_group_tests(tests, ut_group_setup, NULL);
}
