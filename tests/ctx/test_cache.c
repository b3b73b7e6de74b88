/* test_cache.c: the per-thread cache of freed nodes (src/ctx/cache.c).
 *
 * Rules checked, with the counting allocator of util.h (raw counts: these
 * tests read ut_allocs/ut_frees without flushing, unlike ut_live):
 *  - the allocator sees every allocation: each node in use or cached was
 *    allocated by it, and after ctx_flush_cache() it has seen the free of
 *    every node no longer in use (exact balance);
 *  - a freed node is reused by the same thread's next constructor of its
 *    size, with no allocator call;
 *  - a thread holds at most 64 KiB; beyond, frees go to the allocator;
 *  - a thread's exit gives its cache back, also for nodes freed by a later
 *    thread-specific-data destructor of that thread;
 *  - a node freed on another thread than its allocator's is cached there
 *    and given back by that thread;
 *  - ctx_set_allocator stays EBUSY, cached nodes go back through the
 *    installed free;
 *  - a node from the cache makes no allocator call, so failure injection
 *    flushes first (ut_fail_allocs), and then every constructor fails;
 *  - the timer thread does not cache: what it frees reaches the allocator;
 *  - fork: the child keeps its copy of the forking thread's cache, usable
 *    and flushable;
 *  - many threads creating, cancelling and releasing across threads (TSan).
 */
#include <sys/wait.h>

#include "../util.h"
#include "ctx/internal.h" /* the node sizes */

#define CACHE_BYTES (64 * 1024)
#define CNODE sizeof(struct ctx__cnode) /* 64 on 64-bit Linux, 72 on the POSIX backend */

static long raw_live(void) { return atomic_load(&ut_allocs) - atomic_load(&ut_frees); }

static int setup(void **state)
{
	ctx_flush_cache();
	return ut_mark(state);
}

static int teardown(void **state)
{
	(void)state;
	ut_assert_no_leak();
	return 0;
}

static int key;
static void after_nop(void *arg) { (void)arg; }

/* One context of each cached kind under root; n of each. */
enum { KINDS = 5 };
static void make_each(ctx_t *root, ctx_t **out, ctx_cancel_t **hs, ctx_after_t **stops, int n)
{
	for (int i = 0; i < n; i++) {
		ctx_t **o = out + i * KINDS;
		ctx_cancel_t **h = hs + i * 2;
		o[0] = ctx_with_cancel(root, &h[0]);
		o[1] = ctx_with_value(root, &key, NULL, NULL);
		o[2] = ctx_with_timeout(root, 3600 * CTX_SECOND, &h[1]);
		o[3] = ctx_without_cancel(root);
		o[4] = NULL;
		for (int k = 0; k < 4; k++)
			assert_non_null(o[k]);
		assert_int_equal(ctx_after_func(root, after_nop, NULL, &stops[i]), 0);
	}
}

static void release_each(ctx_t **out, ctx_cancel_t **hs, ctx_after_t **stops, int n)
{
	for (int i = 0; i < n; i++) {
		assert_true(ctx_after_stop(stops[i]));
		ctx_cancel(hs[i * 2]);
		ctx_cancel(hs[i * 2 + 1]);
		for (int k = 0; k < 4; k++)
			ctx_release(out[i * KINDS + k]);
	}
}

static void test_every_allocation_seen(void **state)
{
	(void)state;
	enum { N = 50 };
	ctx_cancel_t *rh;
	ctx_t *root = ctx_with_cancel(ctx_background(), &rh);
	ctx_t *cs[N * KINDS];
	ctx_cancel_t *hs[N * 2];
	ctx_after_t *stops[N];
	ctx_flush_cache();
	long a0 = atomic_load(&ut_allocs), f0 = atomic_load(&ut_frees);

	/* An empty cache: every node from the allocator. */
	make_each(root, cs, hs, stops, N);
	assert_int_equal(atomic_load(&ut_allocs) - a0, 5 * N);
	release_each(cs, hs, stops, N);
	/* Kept, not freed. */
	assert_int_equal(atomic_load(&ut_frees), f0);
	assert_int_equal(ctx__cache_held(), 5 * N);

	/* Reused: no allocator call at all. */
	make_each(root, cs, hs, stops, N);
	assert_int_equal(atomic_load(&ut_allocs) - a0, 5 * N);
	assert_int_equal(ctx__cache_held(), 0);
	release_each(cs, hs, stops, N);
	assert_int_equal(ctx__cache_held(), 5 * N);

	/* The flush gives every one back, to the installed free. */
	ctx_flush_cache();
	assert_int_equal(ctx__cache_held(), 0);
	assert_int_equal(atomic_load(&ut_frees) - f0, 5 * N);
	ctx_cancel(rh);
	ctx_release(root);
	ctx_flush_cache();
	assert_int_equal(raw_live(), ut_base);
}

static void test_bounded(void **state)
{
	(void)state;
	enum { N = 3000 };
	static ctx_t *cs[N];
	ctx_flush_cache();
	long f0 = atomic_load(&ut_frees);
	for (int i = 0; i < N; i++)
		assert_non_null(cs[i] = ctx_with_cancel(ctx_background(), NULL));
	for (int i = 0; i < N; i++)
		ctx_release(cs[i]);
	size_t held = ctx__cache_held();
	assert_true(held * CNODE <= CACHE_BYTES);
	assert_int_equal(held, CACHE_BYTES / CNODE);
	assert_int_equal(atomic_load(&ut_frees) - f0, N - (long)held);
	ctx_flush_cache();
	assert_int_equal(raw_live(), ut_base);
}

/* A cache full of one class (timers) makes room for another (cancelable
 * nodes) when those are freed: the class in use is not locked out. */
static void test_full_cache_makes_room(void **state)
{
	(void)state;
	enum { T = 2000, C = 900 };
	static ctx_t *ts[T], *cs[C];
	static ctx_cancel_t *hs[T];
	ctx_flush_cache();
	for (int i = 0; i < T; i++)
		assert_non_null(ts[i] = ctx_with_timeout(ctx_background(), 3600 * CTX_SECOND, &hs[i]));
	for (int i = 0; i < T; i++) {
		ctx_cancel(hs[i]);
		ctx_release(ts[i]);
	}
	size_t timers = ctx__cache_held();
	assert_int_equal(timers, CACHE_BYTES / sizeof(struct ctx__timer)); /* full */
	for (int i = 0; i < C; i++)
		assert_non_null(cs[i] = ctx_with_cancel(ctx_background(), NULL));
	for (int i = 0; i < C; i++)
		ctx_release(cs[i]);
	/* Every cancelable node was kept (timers gave room): made again, they
	 * need no allocation. */
	long a0 = atomic_load(&ut_allocs);
	for (int i = 0; i < C; i++)
		assert_non_null(cs[i] = ctx_with_cancel(ctx_background(), NULL));
	assert_int_equal(atomic_load(&ut_allocs), a0);
	for (int i = 0; i < C; i++)
		ctx_release(cs[i]);
	ctx_flush_cache();
	assert_int_equal(raw_live(), ut_base);
}

/* ---- thread exit ---- */

struct worker {
	int n;
	size_t held;     /* ctx__cache_held() before the thread's end */
	long live;       /* raw_live() then */
	ctx_t *parent;
};

static void *make_release(void *p)
{
	struct worker *w = p;
	for (int i = 0; i < w->n; i++) {
		ctx_cancel_t *h;
		ctx_t *c = ctx_with_cancel(w->parent, &h);
		ctx_t *v = ctx_with_value(c, &key, NULL, NULL);
		ctx_cancel(h);
		ctx_release(v);
		ctx_release(c);
	}
	/* And all of them at once, so the cache holds many. */
	ctx_t *cs[64];
	for (int i = 0; i < 64; i++)
		cs[i] = ctx_with_cancel(w->parent, NULL);
	for (int i = 0; i < 64; i++)
		ctx_release(cs[i]);
	w->held = ctx__cache_held();
	w->live = raw_live();
	return NULL;
}

static void test_thread_exit_flushes(void **state)
{
	(void)state;
	ctx_flush_cache();
	struct worker w = {.n = 100, .parent = ctx_background()};
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, make_release, &w), 0);
	assert_int_equal(UT_BOUNDED(UT_BOUND_MS, "the worker ends", pthread_join(t, NULL)), 0);
	/* While it ran, the thread held its freed nodes (64 cancelable ones,
	 * one value node)... */
	assert_int_equal(w.held, 65);
	assert_int_equal(w.live, ut_base + 65);
	/* ...and its exit gave them back: nothing of this thread is cached. */
	assert_int_equal(ctx__cache_held(), 0);
	assert_int_equal(raw_live(), ut_base);
}

/* A thread-specific-data destructor that runs after the library's (its key
 * is created later) and releases a context: the node must still reach the
 * allocator, not a cache nobody will flush again. */
static pthread_key_t late_key;

static void late_release(void *c) { ctx_release(c); }

static void *hold_until_exit(void *p)
{
	(void)p;
	/* Make sure this thread has a cache (a first free sets it up). */
	ctx_release(ctx_with_cancel(ctx_background(), NULL));
	ctx_t *v = ctx_with_value(ctx_background(), &key, NULL, NULL);
	ctx_t *c = ctx_with_cancel(v, NULL);
	ctx_release(v); /* c holds it */
	pthread_setspecific(late_key, c);
	return NULL;
}

static void test_release_in_late_destructor(void **state)
{
	(void)state;
	assert_int_equal(pthread_key_create(&late_key, late_release), 0);
	for (int i = 0; i < 20; i++) {
		pthread_t t;
		assert_int_equal(pthread_create(&t, NULL, hold_until_exit, NULL), 0);
		assert_int_equal(UT_BOUNDED(UT_BOUND_MS, "the thread ends", pthread_join(t, NULL)), 0);
		assert_int_equal(raw_live(), ut_base);
	}
	pthread_key_delete(late_key);
}

/* ---- cross-thread frees ---- */

enum { XN = 200 };
struct handoff {
	ctx_t *cs[XN];
	ctx_cancel_t *hs[XN];
	size_t held_before, held_after;
};

static void *release_all(void *p)
{
	struct handoff *h = p;
	h->held_before = ctx__cache_held();
	for (int i = 0; i < XN; i++) {
		ctx_cancel(h->hs[i]);
		ctx_release(h->cs[i]);
	}
	h->held_after = ctx__cache_held();
	return NULL;
}

static void *make_all(void *p)
{
	struct handoff *h = p;
	for (int i = 0; i < XN; i++)
		h->cs[i] = ctx_with_cancel(ctx_background(), &h->hs[i]);
	return NULL;
}

static void test_cross_thread_free(void **state)
{
	(void)state;
	ctx_flush_cache();
	long a0 = atomic_load(&ut_allocs);
	/* Made here, freed by another thread: cached there, given back at its
	 * exit. This thread's cache is untouched. */
	static struct handoff h;
	make_all(&h);
	assert_int_equal(atomic_load(&ut_allocs) - a0, XN);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, release_all, &h), 0);
	assert_int_equal(UT_BOUNDED(UT_BOUND_MS, "the releaser ends", pthread_join(t, NULL)), 0);
	assert_int_equal(h.held_before, 0);
	assert_int_equal(h.held_after, XN);
	assert_int_equal(ctx__cache_held(), 0);
	assert_int_equal(raw_live(), ut_base);

	/* Made by another thread (which has ended), freed here: cached here;
	 * the next constructors here reuse them. */
	assert_int_equal(pthread_create(&t, NULL, make_all, &h), 0);
	assert_int_equal(UT_BOUNDED(UT_BOUND_MS, "the maker ends", pthread_join(t, NULL)), 0);
	release_all(&h);
	assert_int_equal(h.held_after, XN);
	long a1 = atomic_load(&ut_allocs);
	make_all(&h);
	assert_int_equal(atomic_load(&ut_allocs), a1);
	release_all(&h);
	ctx_flush_cache();
	assert_int_equal(raw_live(), ut_base);
}

/* ---- the allocator ---- */

static void test_set_allocator_with_cached_nodes(void **state)
{
	(void)state;
	ctx_release(ctx_with_cancel(ctx_background(), NULL));
	assert_true(ctx__cache_held() > 0);
	/* The cached node came from ut_alloc and must go back to ut_free: the
	 * pair cannot change under it. */
	assert_int_equal(ctx_set_allocator(malloc, free), EBUSY);
	long f0 = atomic_load(&ut_frees);
	size_t held = ctx__cache_held();
	ctx_flush_cache();
	assert_int_equal(atomic_load(&ut_frees) - f0, (long)held);
	assert_int_equal(ctx_set_allocator(malloc, free), EBUSY);
	assert_int_equal(ctx_set_allocator(NULL, free), EINVAL);
}

static void test_failure_injection(void **state)
{
	(void)state;
	ctx_release(ctx_with_cancel(ctx_background(), NULL));
	ctx_release(ctx_with_value(ctx_background(), &key, NULL, NULL));
	/* A failure armed without a flush: the cached nodes serve, the
	 * allocator is not called, the failure stays armed. */
	atomic_store(&ut_fail_next, 1);
	ctx_t *c = ctx_with_cancel(ctx_background(), NULL);
	ctx_t *v = ctx_with_value(ctx_background(), &key, NULL, NULL);
	assert_non_null(c);
	assert_non_null(v);
	assert_int_equal(atomic_load(&ut_fail_next), 1);
	atomic_store(&ut_fail_next, 0);
	ctx_release(c);
	ctx_release(v);
	/* ut_fail_allocs flushes first: now each constructor reaches the
	 * allocator and fails. */
	ut_fail_allocs(1);
	errno = 0;
	assert_null(ctx_with_cancel(ctx_background(), NULL));
	assert_int_equal(errno, ENOMEM);
	ut_fail_allocs(1);
	errno = 0;
	assert_null(ctx_with_value(ctx_background(), &key, NULL, NULL));
	assert_int_equal(errno, ENOMEM);
	ut_fail_allocs(1);
	ctx_cancel_t *h = (ctx_cancel_t *)&h;
	errno = 0;
	assert_null(ctx_with_timeout(ctx_background(), CTX_SECOND, &h));
	assert_int_equal(errno, ENOMEM);
	assert_null(h);
	ut_fail_allocs(1);
	errno = 0;
	assert_null(ctx_without_cancel(ctx_background()));
	assert_int_equal(errno, ENOMEM);
	ctx_cancel_t *rh;
	ctx_t *root = ctx_with_cancel(ctx_background(), &rh);
	ut_fail_allocs(1);
	assert_int_equal(ctx_after_func(root, after_nop, NULL, NULL), ENOMEM);
	atomic_store(&ut_fail_next, 0);
	ctx_cancel(rh);
	ctx_release(root);
}

/* ---- the timer thread ---- */

static void release_arg(void *c) { ctx_release(c); }

static void test_timer_thread_does_not_cache(void **state)
{
	(void)state;
	for (int i = 0; i < 20; i++) {
		/* The after-func runs on the timer thread and drops the creator's
		 * reference while the timer thread still holds its own: the timer
		 * thread frees both nodes. With a cache there, they would never
		 * reach the allocator. */
		ctx_t *c = ctx_with_timeout(ctx_background(), CTX_MILLISECOND, NULL);
		assert_non_null(c);
		assert_int_equal(ctx_after_func(c, release_arg, c, NULL), 0);
		ctx_flush_cache();
		for (int k = 0; k < 200000 && raw_live() != ut_base; k++) {
			struct timespec ts = {0, 50 * 1000};
			nanosleep(&ts, NULL);
		}
		assert_int_equal(raw_live(), ut_base);
	}
}

/* ---- fork ---- */

static void test_fork_child_keeps_cache(void **state)
{
	(void)state;
	ctx_t *cs[10];
	for (int i = 0; i < 10; i++)
		cs[i] = ctx_with_cancel(ctx_background(), NULL);
	for (int i = 0; i < 10; i++)
		ctx_release(cs[i]);
	size_t held = ctx__cache_held();
	assert_int_equal(held, 10);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int bad = 0;
		if (ctx__cache_held() != held)
			bad |= 1;
		long a0 = atomic_load(&ut_allocs);
		for (int i = 0; i < 10; i++)
			cs[i] = ctx_with_cancel(ctx_background(), NULL);
		if (atomic_load(&ut_allocs) != a0 || ctx__cache_held() != 0)
			bad |= 2;
		for (int i = 0; i < 10; i++)
			ctx_release(cs[i]);
		ctx_flush_cache();
		if (raw_live() != ut_base)
			bad |= 4;
		_exit(bad);
	}
	int st = 0;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	assert_int_equal(ctx__cache_held(), held);
}

/* ---- stress: many threads, nodes made on one and freed on another ---- */

enum { ST_THREADS = 6, RING = 64 };
static struct {
	pthread_mutex_t mu;
	ctx_t *c[RING];
	ctx_cancel_t *h[RING];
	int n;
} ring = {.mu = PTHREAD_MUTEX_INITIALIZER};
static ctx_t *st_root;
static atomic_int st_errors;

static void put_or_swap(ctx_t *c, ctx_cancel_t *h, ctx_t **oc, ctx_cancel_t **oh)
{
	pthread_mutex_lock(&ring.mu);
	if (ring.n < RING) {
		ring.c[ring.n] = c;
		ring.h[ring.n] = h;
		ring.n++;
		*oc = NULL;
		*oh = NULL;
	} else {
		int k = (int)(((uintptr_t)c >> 6) % RING);
		*oc = ring.c[k];
		*oh = ring.h[k];
		ring.c[k] = c;
		ring.h[k] = h;
	}
	pthread_mutex_unlock(&ring.mu);
}

static void *stress_main(void *p)
{
	uint64_t seed = (uint64_t)(uintptr_t)p * 0x9e3779b97f4a7c15u + 1;
	int iters = UT_ITERS(20000);
	for (int i = 0; i < iters; i++) {
		seed ^= seed << 13;
		seed ^= seed >> 7;
		seed ^= seed << 17;
		ctx_cancel_t *h = NULL;
		ctx_t *c;
		switch (seed % 4) {
		case 0: c = ctx_with_cancel(st_root, &h); break;
		case 1: c = ctx_with_value(st_root, &key, NULL, NULL); break;
		case 2: c = ctx_with_timeout(st_root, 3600 * CTX_SECOND, &h); break;
		default: c = ctx_with_cancel(st_root, NULL); break;
		}
		if (!c) {
			atomic_fetch_add(&st_errors, 1);
			continue;
		}
		if (seed & 16) {
			/* a child of it, released at once: a node freed right here */
			ctx_t *v = ctx_with_value(c, &key, NULL, NULL);
			if (v)
				ctx_release(v);
		}
		ctx_t *oc;
		ctx_cancel_t *oh;
		put_or_swap(c, h, &oc, &oh); /* probably another thread's */
		if (oc) {
			if (oh)
				ctx_cancel(oh);
			ctx_release(oc);
		}
		if (seed % 97 == 0)
			ctx_flush_cache();
	}
	return NULL;
}

static void test_stress_across_threads(void **state)
{
	(void)state;
	ctx_cancel_t *rh;
	st_root = ctx_with_cancel(ctx_background(), &rh);
	pthread_t t[ST_THREADS];
	for (int i = 0; i < ST_THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, stress_main, (void *)(uintptr_t)(i + 1)), 0);
	for (int i = 0; i < ST_THREADS; i++)
		assert_int_equal(UT_BOUNDED(UT_BOUND_MS * 3, "a stress thread ends",
		                            pthread_join(t[i], NULL)),
		                 0);
	assert_int_equal(atomic_load(&st_errors), 0);
	/* Threads have exited: only what the ring holds, the root (and its
	 * shards, if the contention sharded its child list) live. */
	long held = ring.n + 1 + (ctx__sharded(st_root) ? 1 : 0);
	assert_int_equal(raw_live() - ut_base, held + (long)ctx__cache_held());
	for (int i = 0; i < ring.n; i++) {
		if (ring.h[i])
			ctx_cancel(ring.h[i]);
		ctx_release(ring.c[i]);
	}
	ring.n = 0;
	ctx_cancel(rh);
	ctx_release(st_root);
	ctx_flush_cache();
	assert_int_equal(raw_live(), ut_base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_every_allocation_seen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_cache_makes_room, setup, teardown),
		cmocka_unit_test_setup_teardown(test_thread_exit_flushes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_release_in_late_destructor, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cross_thread_free, setup, teardown),
		cmocka_unit_test_setup_teardown(test_set_allocator_with_cached_nodes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failure_injection, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timer_thread_does_not_cache, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fork_child_keeps_cache, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stress_across_threads, setup, teardown),
	};
	return cmocka_run_group_tests(tests, ut_group_setup, NULL);
}
