/* errgroup.c: golang.org/x/sync/errgroup (WithContext, SetLimit, Go, TryGo,
 * Wait) on a wait group, a slot counter and chan_go.
 *
 * Lifetime. The group is freed by whoever drops its last reference: wait()
 * holds one, and each started function's thread holds one from go() until
 * after its last touch of the group. So wait() may return (and the caller
 * consider g gone) while a finished thread is still leaving; nothing of the
 * group's is used after the thread's last decrement.
 *
 * The group context: the group holds one reference to it and its cancel
 * handle until wait(); the first failing function cancels it through a
 * duplicate of that handle (ctx_cancel_dup never allocates).
 *
 * Slots (the limit): `active` counts functions started and not yet
 * returned (bits 0-30) with SLOT_WAITERS (bit 31) when a go() sleeps on it
 * for a free slot; releasing a slot clears the bit and wakes every sleeper.
 * Uses: src/sync (wait groups), src/chan (chan_go), src/ctx, src/os.
 */
#include <errno.h>
#include <limits.h>

#include "goctx/chan.h"
#include "goctx/sync.h"
#include "../ctx/internal.h"

#define SLOT_WAITERS (1u << 31)
#define SLOT_COUNT 0x7fffffffu

struct ctx_errgroup {
	_Atomic uint32_t refs;   /* wait()'s and one per started function */
	_Atomic uint32_t active; /* running functions | SLOT_WAITERS */
	_Atomic int limit;       /* < 0: none; changed only while active is 0 */
	_Atomic int err;         /* the first error; 0 until then */
	ctx_waitgroup_t wg;      /* counts started functions */
	ctx_t *gctx;             /* one reference, until wait() */
	ctx_cancel_t *cancel;    /* the group context's handle, until wait() */
};

struct eg_go {
	ctx_errgroup_t *g;
	int (*fn)(ctx_t *, void *);
	void *arg;
};

static void group_release(ctx_errgroup_t *g)
{
	if (atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) == 1)
		ctx__free(g);
}

ctx_errgroup_t *ctx_errgroup_new(ctx_t *parent, ctx_t **gctx)
{
	if (gctx)
		*gctx = NULL;
	if (!parent) {
		errno = EINVAL;
		return NULL;
	}
	ctx_errgroup_t *g = ctx__alloc(sizeof *g);
	if (!g) {
		errno = ENOMEM;
		return NULL;
	}
	g->gctx = ctx_with_cancel(parent, &g->cancel);
	if (!g->gctx) {
		ctx__free(g);
		return NULL;
	}
	atomic_init(&g->refs, 1);
	atomic_init(&g->active, 0);
	atomic_init(&g->limit, -1);
	atomic_init(&g->err, 0);
	g->wg = (ctx_waitgroup_t)CTX_WAITGROUP_INIT;
	if (gctx)
		*gctx = ctx_retain(g->gctx);
	return g;
}

int ctx_errgroup_set_limit(ctx_errgroup_t *g, int n)
{
	if (!g)
		return EINVAL;
	if (atomic_load_explicit(&g->active, memory_order_acquire) & SLOT_COUNT)
		return EBUSY;
	atomic_store_explicit(&g->limit, n < 0 ? -1 : n, memory_order_release);
	return 0;
}

static bool slot_free(uint32_t s, int limit) { return limit < 0 || (s & SLOT_COUNT) < (uint32_t)limit; }

/* Take a slot: 0, or EAGAIN when at the limit and !block. */
static int slot_take(ctx_errgroup_t *g, bool block)
{
	int limit = atomic_load_explicit(&g->limit, memory_order_acquire);
	if (limit == 0)
		return EAGAIN;
	uint32_t s = atomic_load_explicit(&g->active, memory_order_relaxed);
	for (;;) {
		if (slot_free(s, limit)) {
			if ((s & SLOT_COUNT) == SLOT_COUNT)
				return EAGAIN;
			if (atomic_compare_exchange_weak_explicit(&g->active, &s, s + 1,
			                                          memory_order_acq_rel,
			                                          memory_order_relaxed))
				return 0;
			continue;
		}
		if (!block)
			return EAGAIN;
		if (!(s & SLOT_WAITERS)) {
			if (!atomic_compare_exchange_weak_explicit(&g->active, &s, s | SLOT_WAITERS,
			                                           memory_order_acq_rel,
			                                           memory_order_relaxed))
				continue;
			s |= SLOT_WAITERS;
		}
		ctx__os_wait(&g->active, s, NULL);
		s = atomic_load_explicit(&g->active, memory_order_relaxed);
	}
}

static void slot_give(ctx_errgroup_t *g)
{
	uint32_t s = atomic_load_explicit(&g->active, memory_order_relaxed);
	while (!atomic_compare_exchange_weak_explicit(&g->active, &s, (s & SLOT_COUNT) - 1,
	                                              memory_order_acq_rel, memory_order_relaxed))
		;
	if (s & SLOT_WAITERS)
		ctx__os_wake(&g->active, INT_MAX);
}

static void eg_main(void *p)
{
	struct eg_go run = *(struct eg_go *)p;
	ctx__free(p);
	ctx_errgroup_t *g = run.g;
	int e = run.fn(g->gctx, run.arg);
	if (e) {
		int none = 0;
		if (atomic_compare_exchange_strong_explicit(&g->err, &none, e, memory_order_acq_rel,
		                                            memory_order_relaxed))
			ctx_cancel_cause(ctx_cancel_dup(g->cancel), e);
	}
	slot_give(g);
	ctx_waitgroup_done(&g->wg);
	group_release(g);
}

static int start(ctx_errgroup_t *g, int (*fn)(ctx_t *, void *), void *arg, bool block)
{
	if (!g || !fn)
		return EINVAL;
	int e = slot_take(g, block);
	if (e)
		return e;
	struct eg_go *r = ctx__alloc(sizeof *r);
	if (!r) {
		slot_give(g);
		return ENOMEM;
	}
	r->g = g;
	r->fn = fn;
	r->arg = arg;
	e = ctx_waitgroup_add(&g->wg, 1);
	if (!e) {
		/* Relaxed: we hold a reference (wait()'s, or our own thread's). */
		atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
		e = chan_go(eg_main, r);
		if (e) {
			atomic_fetch_sub_explicit(&g->refs, 1, memory_order_relaxed);
			ctx_waitgroup_done(&g->wg);
		}
	}
	if (e) {
		ctx__free(r);
		slot_give(g);
	}
	return e;
}

int ctx_errgroup_go(ctx_errgroup_t *g, int (*fn)(ctx_t *gctx, void *arg), void *arg)
{
	return start(g, fn, arg, true);
}

int ctx_errgroup_try_go(ctx_errgroup_t *g, int (*fn)(ctx_t *gctx, void *arg), void *arg)
{
	return start(g, fn, arg, false);
}

int ctx_errgroup_wait(ctx_errgroup_t *g)
{
	if (!g)
		return EINVAL;
	ctx_waitgroup_wait(&g->wg, NULL);
	/* Acquire: the wait group's zero pairs with every done, after which
	 * each thread's store of err is visible. */
	int err = atomic_load_explicit(&g->err, memory_order_acquire);
	ctx_cancel_cause(g->cancel, err ? err : ECANCELED);
	ctx_release(g->gctx);
	group_release(g);
	return err;
}
