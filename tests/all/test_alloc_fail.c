/* test_alloc_fail.c: every allocation site of every public function, made
 * to fail one at a time.
 *
 * A failing allocator (installed before the first context) fails the Nth
 * allocation from now. For each call below, N walks 1, 2, ... until the
 * call succeeds without reaching its Nth allocation; every failing attempt
 * must report ENOMEM, write no cancel handle, call no callback (free_val,
 * after-func), leave the parent listing what it listed before, leave the
 * timer queue as it was, and give back everything it took. After each walk
 * the library must still work under the same parent. The channel module's
 * allocating calls (chan_make, a blocking chan_select over more cases than
 * fit on its stack, chan_recv_ctx, chan_go, chan_go_start) are walked the
 * same way: ENOMEM, nothing sent or received, nothing left. So are the I/O
 * module's waits (ctx_read, a ctx_poll over more descriptors than fit on its
 * stack, ctx_dial_tcp with a name to look up), and the companions'
 * (ctx_with_merge, ctx_with_signals, ctx_waitgroup_wait with a context,
 * ctx_waitgroup_go, ctx_errgroup_new, ctx_errgroup_go): ENOMEM, nothing
 * started, no disposition changed, nothing left.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <cmocka.h>

#include "goctx.h"
#include "goctx/chan.h"
#include "goctx/signal.h"
#include "goctx/sync.h"
#include <signal.h>
#include "goctx/io.h"
#include "ctx/testing.h"
#include "chan/go.h"

/* ---- the failing allocator ---- */

static atomic_long n_live;     /* allocations not freed yet */
static atomic_long fail_in;    /* > 0: the fail_in-th allocation from now fails */
static atomic_bool fail_hit;   /* the planned failure happened */
static long sites_walked;      /* allocation sites failed on purpose, all tests */

static void *fa_alloc(size_t size)
{
	if (atomic_load(&fail_in) > 0 && atomic_fetch_sub(&fail_in, 1) == 1) {
		atomic_store(&fail_hit, true);
		return NULL;
	}
	void *p = malloc(size);
	if (p)
		atomic_fetch_add(&n_live, 1);
	return p;
}

static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t live_cond = PTHREAD_COND_INITIALIZER;

static void fa_free(void *p)
{
	if (!p)
		return;
	atomic_fetch_sub(&n_live, 1);
	free(p);
	pthread_mutex_lock(&live_lock);
	pthread_cond_broadcast(&live_cond);
	pthread_mutex_unlock(&live_lock);
}

/* The live count, once this thread's node cache (src/ctx/cache.c) has given
 * back what it holds. Every attempt of a walk starts with it, so the call's
 * nodes come from the allocator (an empty cache) and each one can be failed;
 * and it ends with it, so what the call freed is counted as freed. */
static long live_now(void)
{
	ctx_flush_cache();
	return atomic_load(&n_live);
}

/* The live count once it is back to `want`: the timer thread may still be
 * dropping its reference to a context whose deadline it fired. Bounded. */
static long live_settled(long want)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 30;
	ctx_flush_cache(); /* before live_lock: fa_free takes it */
	pthread_mutex_lock(&live_lock);
	while (atomic_load(&n_live) != want)
		if (pthread_cond_timedwait(&live_cond, &live_lock, &until) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&live_lock);
	return atomic_load(&n_live);
}

/* ---- callbacks that must not run when their call fails ---- */

static atomic_int free_val_calls;
static void free_val(void *p)
{
	(void)p;
	atomic_fetch_add(&free_val_calls, 1);
}

static atomic_int after_calls;
static void after_fn(void *p)
{
	(void)p;
	atomic_fetch_add(&after_calls, 1);
}

static int key;
static int val;

/* ---- the walk ---- */

/* One attempt at a call under `parent`. Returns true if the call succeeded;
 * then `made` says what to undo. `err` is the error a failed call reported. */
struct attempt {
	ctx_t *made;
	ctx_cancel_t *handle;
	ctx_after_t *stop;
	int err;
};
typedef bool (*call_fn)(ctx_t *parent, struct attempt *a);

static void undo(struct attempt *a)
{
	if (a->stop)
		ctx_after_stop(a->stop);
	if (a->handle)
		ctx_cancel(a->handle);
	ctx_release(a->made);
}

/* The library still works under parent: a child can be made, cancelled
 * with a cause (unless the parent is done already) and released. */
static void still_works(ctx_t *parent)
{
	long live = live_now();
	ctx_cancel_t *h = NULL;
	ctx_t *c = ctx_with_cancel(parent, &h);
	assert_non_null(c);
	assert_non_null(h);
	int perr = ctx_err(parent), pcause = ctx_cause(parent);
	ctx_cancel_cause(h, 4242);
	assert_int_equal(ctx_err(c), ECANCELED);
	assert_int_equal(ctx_cause(c), perr ? pcause : 4242);
	assert_int_equal(ctx_wait(c, 0), ECANCELED);
	ctx_release(c);
	assert_int_equal(live_now(), live);
}

/* Walk every allocation site of `call` under `parent`; returns how many. */
static int walk(const char *what, ctx_t *parent, call_fn call)
{
	for (int n = 1;; n++) {
		long live = live_now();
		size_t kids = ctx__children_count(parent);
		size_t timers = ctx__timers_pending();
		int fv = atomic_load(&free_val_calls), ac = atomic_load(&after_calls);
		struct attempt a = {0};

		atomic_store(&fail_hit, false);
		atomic_store(&fail_in, n);
		errno = 0;
		bool ok = call(parent, &a);
		bool hit = atomic_load(&fail_hit);
		atomic_store(&fail_in, 0);

		if (ok) {
			/* A failed allocation must never be papered over. */
			if (hit)
				fail_msg("%s: allocation %d failed, yet the call succeeded", what, n);
			undo(&a);
			assert_int_equal(live_now(), live);
			sites_walked += n - 1;
			print_message("  %-44s %d allocation site(s)\n", what, n - 1);
			still_works(parent);
			return n - 1;
		}
		if (!hit)
			fail_msg("%s: failed (err %d) with no allocation failing", what, a.err);
		if (a.err != ENOMEM)
			fail_msg("%s: allocation %d failed with error %d, not ENOMEM", what, n, a.err);
		assert_int_equal(live_now(), live);
		assert_int_equal(ctx__children_count(parent), kids);
		assert_int_equal(ctx__timers_pending(), timers);
		assert_int_equal(atomic_load(&free_val_calls), fv);
		assert_int_equal(atomic_load(&after_calls), ac);
		if (n > 64)
			fail_msg("%s: more than 64 allocations?", what);
	}
}

/* ---- the calls ---- */

/* What an out-parameter holds before a call: a failed call may leave it
 * alone or set it to NULL, nothing else. */
#define POISON ((void *)&key)

static bool made(struct attempt *a, ctx_t *c)
{
	a->made = c;
	a->err = c ? 0 : errno;
	if (!c) {
		assert_true(a->handle == NULL || a->handle == POISON);
		a->handle = NULL;
	}
	return c != NULL;
}

static ctx_cancel_t **poisoned(struct attempt *a)
{
	a->handle = POISON;
	return &a->handle;
}

ctx_cancel_t *parent_handle; /* for call_cancel_dup */

static bool call_with_cancel(ctx_t *p, struct attempt *a)
{
	return made(a, ctx_with_cancel(p, poisoned(a)));
}

static bool call_with_cancel_nohandle(ctx_t *p, struct attempt *a)
{
	return made(a, ctx_with_cancel(p, NULL));
}

static bool call_deadline_future(ctx_t *p, struct attempt *a)
{
	return made(a, ctx_with_deadline(p, ctx_now() + 3600 * CTX_SECOND, poisoned(a)));
}

static bool call_deadline_past(ctx_t *p, struct attempt *a)
{
	return made(a, ctx_with_deadline_cause(p, ctx_now() - CTX_SECOND, 77, poisoned(a)));
}

static bool call_deadline_later_than_parent(ctx_t *p, struct attempt *a)
{
	/* Under a parent with an earlier deadline: a plain WithCancel. */
	return made(a, ctx_with_deadline_cause(p, INT64_MAX, 78, poisoned(a)));
}

static bool call_timeout(ctx_t *p, struct attempt *a)
{
	return made(a, ctx_with_timeout(p, 3600 * CTX_SECOND, poisoned(a)));
}

static bool call_timeout_cause_nohandle(ctx_t *p, struct attempt *a)
{
	return made(a, ctx_with_timeout_cause(p, 3600 * CTX_SECOND, 79, NULL));
}

static bool call_timeout_zero(ctx_t *p, struct attempt *a)
{
	return made(a, ctx_with_timeout(p, 0, poisoned(a)));
}

static bool call_with_value(ctx_t *p, struct attempt *a)
{
	return made(a, ctx_with_value(p, &key, &val, free_val));
}

static bool call_without_cancel(ctx_t *p, struct attempt *a)
{
	return made(a, ctx_without_cancel(p));
}

static bool call_after_func(ctx_t *p, struct attempt *a)
{
	a->made = ctx_retain(p);
	a->stop = POISON;
	a->err = ctx_after_func(p, after_fn, NULL, &a->stop);
	if (a->err) {
		assert_true(a->stop == NULL || a->stop == POISON);
		a->stop = NULL;
		ctx_release(a->made);
		a->made = NULL;
		return false;
	}
	return true;
}

static ctx_after_slot_t at_slot; /* ctx_after_func_at's storage */

static bool call_after_func_at(ctx_t *p, struct attempt *a)
{
	a->made = ctx_retain(p);
	a->stop = ctx_after_func_at(p, &at_slot, after_fn, NULL);
	a->err = a->stop ? 0 : errno;
	assert_non_null(a->stop); /* it never fails for want of memory */
	return true;
}

static bool call_after_func_nostop(ctx_t *p, struct attempt *a)
{
	/* Without a stop handle the registration lives until p is done; the
	 * caller's undo cannot stop it, so register on a child we cancel. */
	ctx_cancel_t *h;
	ctx_t *c = ctx_with_cancel(p, &h);
	if (!c) {
		a->err = errno;
		return false;
	}
	a->err = ctx_after_func(c, after_fn, NULL, NULL);
	a->made = c;
	a->handle = h;
	if (a->err) {
		ctx_cancel(h);
		ctx_release(c);
		a->handle = NULL;
		a->made = NULL;
		return false;
	}
	return true;
}

static bool call_cancel_dup(ctx_t *p, struct attempt *a)
{
	/* p is a WithCancel whose handle is `parent_handle`. */
	a->handle = ctx_cancel_dup(parent_handle);
	a->made = NULL;
	a->err = a->handle ? 0 : errno;
	(void)p;
	return a->handle != NULL;
}

static bool call_done_fd(ctx_t *p, struct attempt *a)
{
	/* A fresh context, so the descriptor is made now. */
	ctx_cancel_t *h = NULL;
	ctx_t *c = ctx_with_cancel(p, &h);
	if (!c) {
		a->err = errno;
		return false;
	}
	int fd = ctx_done_fd(c);
	a->made = c;
	a->handle = h;
	if (fd < 0) {
		a->err = errno;
		ctx_cancel(h);
		ctx_release(c);
		a->handle = NULL;
		a->made = NULL;
		return false;
	}
	return true;
}

/* ---- parents ---- */

struct parent {
	const char *name;
	ctx_t *c;
	ctx_cancel_t *h;
	ctx_t *base; /* for a value/without layer: what it sits on */
	ctx_cancel_t *base_h;
};

static void make_parent(struct parent *p, int which)
{
	*p = (struct parent){0};
	switch (which) {
	case 0:
		p->name = "Background";
		p->c = ctx_background();
		break;
	case 1:
		p->name = "live WithCancel";
		p->c = ctx_with_cancel(ctx_background(), &p->h);
		break;
	case 2:
		p->name = "live WithDeadline (+1 h)";
		p->c = ctx_with_timeout(ctx_background(), 3600 * CTX_SECOND, &p->h);
		break;
	case 3:
		p->name = "cancelled WithCancel";
		p->c = ctx_with_cancel(ctx_background(), &p->h);
		ctx_cancel_cause(p->h, 555);
		p->h = NULL;
		break;
	case 4:
		p->name = "WithValue over a live WithCancel";
		p->base = ctx_with_cancel(ctx_background(), &p->base_h);
		p->c = ctx_with_value(p->base, &val, &key, NULL);
		break;
	default:
		p->name = "WithoutCancel over a live WithCancel";
		p->base = ctx_with_cancel(ctx_background(), &p->base_h);
		p->c = ctx_without_cancel(p->base);
		break;
	}
	assert_non_null(p->c);
}

static void drop_parent(struct parent *p)
{
	if (p->h)
		ctx_cancel(p->h);
	ctx_release(p->c);
	if (p->base_h)
		ctx_cancel(p->base_h);
	ctx_release(p->base);
}

#define NPARENTS 6

static void walk_all_parents(const char *what, call_fn call, int *sites_under_live)
{
	long live = live_now();
	for (int w = 0; w < NPARENTS; w++) {
		struct parent p;
		make_parent(&p, w);
		char name[128];
		snprintf(name, sizeof name, "%s under %s", what, p.name);
		int s = walk(name, p.c, call);
		if (w == 1 && sites_under_live)
			*sites_under_live = s;
		drop_parent(&p);
	}
	assert_int_equal(live_now(), live);
}

/* ---- the companions' calls ---- */

static ctx_t *merge_others[2]; /* made outside the walk */

static bool call_with_merge(ctx_t *p, struct attempt *a)
{
	return made(a, ctx_with_merge(p, merge_others, 2, poisoned(a)));
}

static bool call_with_merge_nohandle(ctx_t *p, struct attempt *a)
{
	return made(a, ctx_with_merge(p, merge_others, 2, NULL));
}

static bool call_with_signals(ctx_t *p, struct attempt *a)
{
	static const int sigs[] = {SIGUSR1, SIGUSR2};
	struct sigaction before, after;
	sigaction(SIGUSR1, NULL, &before);
	bool ok = made(a, ctx_with_signals(p, sigs, 2, poisoned(a)));
	if (!ok) {
		/* No disposition changed. */
		sigaction(SIGUSR1, NULL, &after);
		assert_ptr_equal((void *)after.sa_handler, (void *)before.sa_handler);
	}
	return ok;
}

static bool call_with_signals_nostop(ctx_t *p, struct attempt *a)
{
	static const int sigs[] = {SIGHUP};
	return made(a, ctx_with_signals(p, sigs, 1, NULL));
}

static int call_waitgroup_wait_ctx(void)
{
	ctx_cancel_t *h;
	ctx_t *c = ctx_with_cancel(ctx_background(), &h);
	if (!c)
		return errno;
	ctx_waitgroup_t wg = CTX_WAITGROUP_INIT;
	ctx_waitgroup_add(&wg, 1);
	ctx_cancel(ctx_cancel_dup(h)); /* done: the wait returns at once */
	int r = ctx_waitgroup_wait(&wg, c);
	ctx_release(c);
	ctx_cancel(h);
	if (r)
		return r == ECANCELED ? 0 : r;
	return -1;
}

/* A wait on a live context that must register its after-func: it can
 * only end (the counter cannot reach zero here) through ENOMEM or the
 * context, which a second thread cancels once the wait has registered. */
static ctx_t *wg_ctx;
static ctx_cancel_t *wg_cancel;

static void *cancel_when_hooked(void *arg)
{
	(void)arg;
	while (ctx__children_count(wg_ctx) == 0 && !atomic_load(&fail_hit))
		sched_yield();
	ctx_cancel(wg_cancel);
	return NULL;
}

static int call_waitgroup_wait_live_ctx(void)
{
	wg_ctx = ctx_with_cancel(ctx_background(), &wg_cancel);
	if (!wg_ctx)
		return errno;
	ctx_waitgroup_t wg = CTX_WAITGROUP_INIT;
	ctx_waitgroup_add(&wg, 1);
	pthread_t t;
	pthread_create(&t, NULL, cancel_when_hooked, NULL);
	int r = ctx_waitgroup_wait(&wg, wg_ctx);
	pthread_join(t, NULL);
	assert_int_equal(ctx__children_count(wg_ctx), 0);
	ctx_release(wg_ctx);
	return r == ECANCELED ? 0 : r;
}

static atomic_int wg_runs;
static ctx_waitgroup_t wg_go_group;

static void wg_fn(void *arg)
{
	(void)arg;
	atomic_fetch_add(&wg_runs, 1);
}

static int call_waitgroup_go(void)
{
	int before = atomic_load(&wg_runs);
	int r = ctx_waitgroup_go(&wg_go_group, wg_fn, NULL);
	assert_int_equal(ctx_waitgroup_wait(&wg_go_group, NULL), 0);
	assert_int_equal(atomic_load(&wg_runs), before + (r == 0));
	return r;
}

static int eg_fn(ctx_t *g, void *arg)
{
	(void)g;
	(void)arg;
	atomic_fetch_add(&wg_runs, 1);
	return 0;
}

static int call_errgroup(void)
{
	ctx_t *g = POISON;
	ctx_errgroup_t *eg = ctx_errgroup_new(ctx_background(), &g);
	if (!eg) {
		assert_null(g);
		return errno;
	}
	int before = atomic_load(&wg_runs);
	int r = ctx_errgroup_go(eg, eg_fn, NULL);
	assert_int_equal(ctx_errgroup_wait(eg), 0);
	assert_int_equal(atomic_load(&wg_runs), before + (r == 0));
	ctx_release(g);
	return r;
}

/* ---- tests ---- */

static void test_constructors(void **state)
{
	(void)state;
	int s;
	walk_all_parents("ctx_with_cancel", call_with_cancel, &s);
	assert_true(s >= 1); /* a node is allocated */
	walk_all_parents("ctx_with_cancel (no handle)", call_with_cancel_nohandle, NULL);
	walk_all_parents("ctx_with_deadline (+1 h)", call_deadline_future, &s);
	assert_true(s >= 1);
	walk_all_parents("ctx_with_deadline_cause (past)", call_deadline_past, NULL);
	walk_all_parents("ctx_with_timeout (+1 h)", call_timeout, NULL);
	walk_all_parents("ctx_with_timeout_cause (no handle)", call_timeout_cause_nohandle, NULL);
	walk_all_parents("ctx_with_timeout (0)", call_timeout_zero, NULL);
	walk_all_parents("ctx_with_value", call_with_value, &s);
	assert_true(s >= 1);
	walk_all_parents("ctx_without_cancel", call_without_cancel, &s);
	assert_true(s >= 1);

	/* Under a parent with an earlier deadline (the WithCancel path). */
	long live = live_now();
	ctx_cancel_t *h;
	ctx_t *p = ctx_with_timeout(ctx_background(), 3600 * CTX_SECOND, &h);
	assert_non_null(p);
	assert_true(walk("ctx_with_deadline_cause under an earlier deadline", p,
	                 call_deadline_later_than_parent) >= 1);
	ctx_cancel(h);
	ctx_release(p);
	assert_int_equal(live_now(), live);
}

static void test_value_failure_keeps_val(void **state)
{
	(void)state;
	/* Fail the value node itself: free_val must not run, val stays ours. */
	atomic_store(&fail_in, 1);
	errno = 0;
	int before = atomic_load(&free_val_calls);
	ctx_t *c = ctx_with_value(ctx_background(), &key, &val, free_val);
	atomic_store(&fail_in, 0);
	assert_null(c);
	assert_int_equal(errno, ENOMEM);
	assert_int_equal(atomic_load(&free_val_calls), before);
	/* And when it works, free_val runs exactly once, at the free. */
	c = ctx_with_value(ctx_background(), &key, &val, free_val);
	assert_non_null(c);
	assert_int_equal(atomic_load(&free_val_calls), before);
	ctx_release(c);
	assert_int_equal(atomic_load(&free_val_calls), before + 1);
}

static void test_after_func(void **state)
{
	(void)state;
	int s;
	walk_all_parents("ctx_after_func", call_after_func, &s);
	assert_true(s >= 1); /* a registration on a live context is allocated */
	walk_all_parents("ctx_after_func (no stop) on a new child", call_after_func_nostop, NULL);
	/* In the caller's slot: no allocation under any parent. */
	for (int w = 0; w < NPARENTS; w++) {
		struct parent pa;
		make_parent(&pa, w);
		char name[128];
		snprintf(name, sizeof name, "ctx_after_func_at under %s", pa.name);
		assert_int_equal(walk(name, pa.c, call_after_func_at), 0);
		drop_parent(&pa);
	}
	/* Every registration made there ran once (cancel) or was stopped: the
	 * counts were checked by the walk; nothing is pending now. */
}

static void test_cancel_dup_and_done_fd(void **state)
{
	(void)state;
	long live = live_now();
	ctx_t *p = ctx_with_cancel(ctx_background(), &parent_handle);
	assert_non_null(p);
	/* Both need no allocation of their own (a dup is a reference, the
	 * descriptor an eventfd): the walk finds 0 sites past the setup. */
	assert_int_equal(walk("ctx_cancel_dup", p, call_cancel_dup), 0);
	walk_all_parents("ctx_done_fd on a new child", call_done_fd, NULL);
	ctx_cancel(parent_handle);
	ctx_release(p);
	assert_int_equal(live_now(), live);
}

/* ---- the channel module ---- */

/* Walk a call that returns 0 (or `ok`) on success, ENOMEM on a failed
 * allocation, and cleans up after itself on success. */
static int walk_int(const char *what, int (*call)(void), int ok)
{
	for (int n = 1;; n++) {
		long live = live_now();
		atomic_store(&fail_hit, false);
		atomic_store(&fail_in, n);
		int r = call();
		bool hit = atomic_load(&fail_hit);
		atomic_store(&fail_in, 0);
		if (!hit) {
			if (r != ok)
				fail_msg("%s: returned %d with no allocation failing", what, r);
			assert_int_equal(live_settled(live), live);
			sites_walked += n - 1;
			print_message("  %-44s %d allocation site(s)\n", what, n - 1);
			return n - 1;
		}
		if (r != ENOMEM)
			fail_msg("%s: allocation %d failed, returned %d, not ENOMEM", what, n, r);
		assert_int_equal(live_settled(live), live);
		if (n > 64)
			fail_msg("%s: more than 64 allocations?", what);
	}
}

static int call_chan_make(void)
{
	chan_t *c = chan_make(sizeof(int), 4);
	if (!c)
		return errno;
	chan_release(c);
	return 0;
}

/* A blocking select over 9 cases (one more than fit on its stack), one of
 * them a live context: it must hook the context, wait 1 us and time out. */
static int call_big_select(void)
{
	ctx_cancel_t *h;
	ctx_t *c = ctx_with_cancel(ctx_background(), &h);
	if (!c)
		return errno;
	chan_t *ch = chan_make(sizeof(int), 0);
	if (!ch) {
		int e = errno;
		ctx_cancel(h);
		ctx_release(c);
		return e;
	}
	int v[8];
	chan_case_t cases[9];
	for (int i = 0; i < 8; i++)
		cases[i] = CHAN_CASE_RECV(ch, &v[i]);
	cases[8] = CHAN_CASE_DONE(c);
	size_t fired = 0;
	int r = chan_select(cases, 9, CTX_MICROSECOND, &fired);
	if (r == ENOMEM || r == ETIMEDOUT)
		assert_int_equal(fired, CHAN_NONE);
	assert_int_equal(ctx__children_count(c), 0); /* the hook is gone */
	chan_release(ch);
	ctx_cancel(h);
	ctx_release(c);
	return r;
}

/* A receive on an empty channel bounded by a context with a real 1 ms
 * deadline: it hooks the context, then the deadline ends it. */
static int call_recv_ctx(void)
{
	ctx_t *c = ctx_with_timeout(ctx_background(), CTX_MILLISECOND, NULL);
	if (!c)
		return errno;
	chan_t *ch = chan_make(sizeof(int), 1);
	if (!ch) {
		int e = errno;
		ctx_release(c);
		return e;
	}
	int v = 0;
	bool ok = true;
	int r = chan_recv_ctx(c, ch, &v, &ok);
	assert_int_equal(chan_len(ch), 0);
	chan_release(ch);
	ctx_release(c);
	return r;
}

static atomic_int go_runs;
static pthread_mutex_t go_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t go_cond = PTHREAD_COND_INITIALIZER;

/* chan_go (and what starts functions through it) allocates only when no
 * cached thread is parked: let the cached ones leave first (their idle
 * time, shortened), so that the walk meets the allocation. */
static void drain_go_cache(void)
{
	chan__go_set_idle(CTX_MILLISECOND);
	for (int i = 0; i < 20000 && chan__go_threads() != 0; i++)
		nanosleep(&(struct timespec){0, 1000000}, NULL);
	assert_int_equal(chan__go_threads(), 0);
	chan__go_set_idle(0);
}
static void go_fn(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&go_lock);
	atomic_fetch_add(&go_runs, 1);
	pthread_cond_broadcast(&go_cond);
	pthread_mutex_unlock(&go_lock);
}

static int call_go_start(void)
{
	chan_go_t *g = (chan_go_t *)&key;
	int before = atomic_load(&go_runs);
	int r = chan_go_start(&g, go_fn, NULL);
	if (r) {
		assert_null(g);
		assert_int_equal(atomic_load(&go_runs), before);
		return r;
	}
	assert_int_equal(chan_go_join(g), 0);
	assert_int_equal(atomic_load(&go_runs), before + 1);
	return 0;
}

static int call_go(void)
{
	int before = atomic_load(&go_runs);
	int r = chan_go(go_fn, NULL);
	if (r)
		return r; /* fn never runs: checked by the count below */
	/* A detached thread: wait for fn to have run. */
	pthread_mutex_lock(&go_lock);
	while (atomic_load(&go_runs) == before)
		pthread_cond_wait(&go_cond, &go_lock);
	pthread_mutex_unlock(&go_lock);
	assert_int_equal(atomic_load(&go_runs), before + 1);
	return 0;
}

static void test_channels(void **state)
{
	(void)state;
	int before = atomic_load(&go_runs);
	assert_true(walk_int("chan_make", call_chan_make, 0) >= 1);
	assert_true(walk_int("chan_select (9 cases, a context, 1 us)", call_big_select,
	                     ETIMEDOUT) >= 2); /* the cases, the context hook */
	assert_true(walk_int("chan_recv_ctx (1 ms deadline)", call_recv_ctx, ETIMEDOUT) >= 1);
	assert_true(walk_int("chan_go_start + chan_go_join", call_go_start, 0) >= 1);
	int failed_go = atomic_load(&go_runs);
	drain_go_cache();
	assert_true(walk_int("chan_go", call_go, 0) >= 1);
	/* Every failed chan_go/chan_go_start ran nothing: one run per success. */
	assert_int_equal(failed_go, before + 1);
	assert_int_equal(atomic_load(&go_runs), before + 2);
}

static void test_companions(void **state)
{
	(void)state;
	ctx_cancel_t *h0, *h1;
	merge_others[0] = ctx_with_cancel(ctx_background(), &h0);
	merge_others[1] = ctx_with_timeout(ctx_background(), 3600 * CTX_SECOND, &h1);
	int s;
	walk_all_parents("ctx_with_merge", call_with_merge, &s);
	assert_true(s >= 1);
	walk_all_parents("ctx_with_merge (no handle)", call_with_merge_nohandle, NULL);
	/* Nothing left in the others' lists. */
	assert_int_equal(ctx__children_count(merge_others[0]), 0);
	assert_int_equal(ctx__children_count(merge_others[1]), 0);
	ctx_cancel(h0);
	ctx_cancel(h1);
	ctx_release(merge_others[0]);
	ctx_release(merge_others[1]);
	walk_all_parents("ctx_with_signals", call_with_signals, &s);
	assert_true(s >= 2); /* the node, the stop context, its after-func */
	walk_all_parents("ctx_with_signals (no stop)", call_with_signals_nostop, NULL);
	assert_true(walk_int("ctx_waitgroup_wait (done ctx)", call_waitgroup_wait_ctx, 0) >= 1);
	assert_true(walk_int("ctx_waitgroup_wait (live ctx)", call_waitgroup_wait_live_ctx, 0) >= 2);
	drain_go_cache();
	assert_true(walk_int("ctx_waitgroup_go", call_waitgroup_go, 0) >= 1); /* a new thread's start record */
	assert_true(walk_int("ctx_errgroup_new + go + wait", call_errgroup, 0) >= 3); /* group, node, start record */
}

/* ---- I/O (goctx/io.h) ---- */

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

/* A read that must wait: the after-func registration; 1 ms deadline. */
static int call_io_read(void)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	ctx_t *c = ctx_with_timeout(ctx_background(), CTX_MILLISECOND, NULL);
	int r;
	if (!c) {
		r = errno;
	} else {
		char b;
		r = ctx_read(c, p[0], &b, 1) < 0 ? errno : 0;
		ctx_release(c);
	}
	close(p[0]);
	close(p[1]);
	return r;
}

/* A ctx_poll over 20 descriptors: its array and the registration. */
static int call_io_poll_many(void)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	ctx_t *c = ctx_with_timeout(ctx_background(), CTX_MILLISECOND, NULL);
	int r;
	if (!c) {
		r = errno;
	} else {
		struct pollfd f[20];
		for (int i = 0; i < 20; i++)
			f[i] = (struct pollfd){.fd = p[0], .events = POLLIN};
		r = ctx_poll(c, f, 20, NULL);
		ctx_release(c);
	}
	close(p[0]);
	close(p[1]);
	return r;
}

static char dial_port[16];

/* A name: the resolver's job and the registration. */
static int call_io_dial_name(void)
{
	ctx_cancel_t *h;
	ctx_t *c = ctx_with_cancel(ctx_background(), &h);
	if (!c)
		return errno;
	int fd = -1;
	int r = ctx_dial_tcp(c, "localhost", dial_port, &fd);
	if (fd >= 0)
		close(fd);
	ctx_cancel(h);
	ctx_release(c);
	return r;
}

static void test_io(void **state)
{
	(void)state;
	/* The deadline's node (a wait registers in its own frame), and for 20
	 * descriptors the wait's poll array. */
	assert_true(walk_int("ctx_read (1 ms deadline)", call_io_read, ETIMEDOUT) >= 1);
	assert_true(walk_int("ctx_poll (20 descriptors, 1 ms deadline)", call_io_poll_many,
	                     ETIMEDOUT) >= 2);
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof a;
	assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(getsockname(l, (struct sockaddr *)&a, &al), 0);
	assert_int_equal(listen(l, 128), 0);
	snprintf(dial_port, sizeof dial_port, "%d", ntohs(a.sin_port));
	assert_true(walk_int("ctx_dial_tcp (a name)", call_io_dial_name, 0) >= 3);
	close(l);
}

static void test_nothing_left(void **state)
{
	(void)state;
	assert_int_equal(live_now(), 0);
	assert_int_equal(ctx__timers_pending(), 0);
	assert_int_equal(ctx_set_allocator(fa_alloc, fa_free), EBUSY);
	print_message("  %ld allocation sites failed on purpose in all\n", sites_walked);
}

int main(void)
{
	if (ctx_set_allocator(fa_alloc, fa_free) != 0) {
		fprintf(stderr, "ctx_set_allocator failed\n");
		return 1;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_constructors),
		cmocka_unit_test(test_value_failure_keeps_val),
		cmocka_unit_test(test_after_func),
		cmocka_unit_test(test_cancel_dup_and_done_fd),
		cmocka_unit_test(test_channels),
		cmocka_unit_test(test_companions),
		cmocka_unit_test(test_io),
		cmocka_unit_test(test_nothing_left),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
