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
 * The hand-off slot (`hand`). A function's thread, once the function has
 * returned, waits a little (ctx__spin's bounded spin, and only on more
 * than one CPU) in its group's slot for the group's next go(): a go() that
 * finds a thread there (H_WAITING -> H_CLAIMED, the record in `task`, then
 * H_TASK) hands it the function without a system call, where chan_go would
 * have to wake a sleeping cached thread with a futex call (the profile of
 * errgroup_go_wait_100: about one futex call and 0.84 context switches per
 * go). The thread in the slot is between two functions and runs nothing
 * else, so every function still has a thread of its own. One thread waits
 * in the slot at a time; when its spin runs out it leaves (H_WAITING ->
 * H_EMPTY; a failed CAS means a go() claimed it: it waits for H_TASK, the
 * claimer is between two stores). wait() closes the slot (H_CLOSED, once
 * the counter is zero: no go() can come any more) so a waiting thread
 * leaves at once. The upper bits hold the fork generation: a slot filled
 * in the parent before a fork() has no thread in the child and is not
 * claimed there.
 * Uses: src/sync (wait groups), src/chan (chan_go), src/ctx, src/os.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>

#include "goctx/chan.h"
#include "goctx/sync.h"
#include "../ctx/internal.h"

#define SLOT_WAITERS (1u << 31)
#define SLOT_COUNT 0x7fffffffu

enum { H_EMPTY = 0, H_WAITING = 1, H_CLAIMED = 2, H_TASK = 3 };
#define H_STATE 3u
#define H_CLOSED 4u
#define H_GEN_SHIFT 3

struct ctx_errgroup {
	_Atomic uint32_t refs;   /* wait()'s and one per started function */
	_Atomic uint32_t active; /* running functions | SLOT_WAITERS */
	_Atomic int limit;       /* < 0: none; changed only while active is 0 */
	_Atomic int err;         /* the first error; 0 until then */
	ctx_waitgroup_t wg;      /* counts started functions */
	ctx_t *gctx;             /* one reference, until wait() */
	ctx_cancel_t *cancel;    /* the group context's handle, until wait() */
	_Atomic uint32_t hand;   /* H_* | H_CLOSED | generation: see the top */
	struct eg_go *task;      /* written by the claimer before H_TASK */
};

struct eg_go {
	ctx_errgroup_t *g;
	int (*fn)(ctx_t *, void *);
	void *arg;
};

/* Bumped in the child after fork(): see "The hand-off slot". */
static _Atomic uint32_t fork_gen;
static void fork_child(void) { atomic_fetch_add_explicit(&fork_gen, 1, memory_order_relaxed); }
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;
static void fork_init(void) { (void)ctx__os_atfork(NULL, NULL, fork_child); }

static uint32_t gen_bits(void)
{
	return atomic_load_explicit(&fork_gen, memory_order_relaxed) << H_GEN_SHIFT;
}

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
	atomic_init(&g->hand, H_EMPTY);
	g->task = NULL;
	pthread_once(&fork_once, fork_init);
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

static bool not_waiting(uint32_t h) { return (h & (H_STATE | H_CLOSED)) != H_WAITING; }

/* After a function: wait in g's slot for a next one. NULL: none came (the
 * slot was taken or closed, or the spin ran out). */
static struct eg_go *next_task(ctx_errgroup_t *g)
{
	if (ctx__os_ncpu() < 2)
		return NULL;
	uint32_t gen = gen_bits();
	uint32_t h = atomic_load_explicit(&g->hand, memory_order_relaxed);
	if (h & H_CLOSED)
		return NULL;
	if ((h & H_STATE) != H_EMPTY && (h & ~(H_STATE | H_CLOSED)) == gen)
		return NULL; /* another thread is there */
	if (!atomic_compare_exchange_strong_explicit(&g->hand, &h, gen | H_WAITING,
	                                             memory_order_relaxed, memory_order_relaxed))
		return NULL;
	uint32_t s;
	ctx__spin(&g->hand, not_waiting, -1, &s);
	uint32_t w = gen | H_WAITING;
	if (atomic_compare_exchange_strong_explicit(&g->hand, &w, gen | H_EMPTY,
	                                            memory_order_relaxed, memory_order_relaxed))
		return NULL; /* the spin ran out: left */
	if (w & H_CLOSED)
		return NULL; /* wait() closed it: no go() can come */
	/* Claimed: the claimer is between its CAS and its H_TASK store. */
	unsigned n = 0;
	/* Acquire: pairs with the claimer's release store of H_TASK. */
	while (((w = atomic_load_explicit(&g->hand, memory_order_acquire)) & H_STATE) != H_TASK) {
		if (++n % 128 == 0)
			sched_yield();
		else
			ctx__os_relax();
	}
	struct eg_go *r = g->task;
	/* Release: task read before the slot is free again. */
	atomic_store_explicit(&g->hand, gen | H_EMPTY, memory_order_release);
	return r;
}

static void eg_main(void *p)
{
	struct eg_go *r = p;
	ctx_errgroup_t *g = r->g;
	for (;;) {
		int (*fn)(ctx_t *, void *) = r->fn;
		void *arg = r->arg;
		ctx__free(r);
		int e = fn(g->gctx, arg);
		if (e) {
			int none = 0;
			if (atomic_compare_exchange_strong_explicit(&g->err, &none, e,
			                                            memory_order_acq_rel,
			                                            memory_order_relaxed))
				ctx_cancel_cause(ctx_cancel_dup(g->cancel), e);
		}
		slot_give(g);
		/* Wait in the slot only while a go() is under way or another
		 * function runs (a burst): after a group's last function the
		 * thread goes straight back to chan_go's cache, where the next
		 * group's first go() finds it. */
		bool busy = atomic_load_explicit(&g->active, memory_order_relaxed) & SLOT_COUNT;
		ctx_waitgroup_done(&g->wg);
		/* Our reference keeps g while we wait in its slot. */
		r = busy ? next_task(g) : NULL;
		if (!r)
			break;
		group_release(g); /* the finished function's; r's go() took its own */
	}
	group_release(g);
}

/* Hand r to a thread waiting in g's slot: true, or false when none is. */
static bool hand_over(ctx_errgroup_t *g, struct eg_go *r)
{
	uint32_t gen = gen_bits(), h = gen | H_WAITING;
	/* Another function of the group is running (ours is counted too): its
	 * thread comes to the slot once it returns; wait for it a little. */
	if (atomic_load_explicit(&g->hand, memory_order_relaxed) != h &&
	    (atomic_load_explicit(&g->active, memory_order_relaxed) & SLOT_COUNT) > 1 &&
	    ctx__os_ncpu() > 1) {
		ctx_time_t stop = ctx__os_now() + 2 * CTX_MICROSECOND;
		while (atomic_load_explicit(&g->hand, memory_order_relaxed) != h &&
		       ctx__os_now() < stop)
			for (int i = 0; i < 16; i++)
				ctx__os_relax();
	}
	if (atomic_load_explicit(&g->hand, memory_order_relaxed) != h ||
	    !atomic_compare_exchange_strong_explicit(&g->hand, &h, gen | H_CLAIMED,
	                                             memory_order_acquire, memory_order_relaxed))
		return false;
	g->task = r;
	/* Release: the task before H_TASK, for next_task's acquire. */
	atomic_store_explicit(&g->hand, gen | H_TASK, memory_order_release);
	return true;
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
		e = hand_over(g, r) ? 0 : chan_go(eg_main, r);
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
	/* Every go() is over: a thread waiting in the slot may leave. */
	atomic_fetch_or_explicit(&g->hand, H_CLOSED, memory_order_relaxed);
	/* Acquire: the wait group's zero pairs with every done, after which
	 * each thread's store of err is visible. */
	int err = atomic_load_explicit(&g->err, memory_order_acquire);
	ctx_cancel_cause(g->cancel, err ? err : ECANCELED);
	ctx_release(g->gctx);
	group_release(g);
	return err;
}
