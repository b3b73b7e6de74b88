/* after.c: after-funcs (Go's AfterFunc).
 *
 * A registration is a node in the watched context's child list, so the
 * cancellation that reaches it claims it like a child (cancel.c). Its state
 * word moves once: PENDING -> RUNNING -> DONE by the canceller, or PENDING
 * -> STOPPED by ctx_after_stop; whoever wins the CAS from PENDING decides.
 * `runner` is written before the RUNNING CAS (release) and read after an
 * acquire load that saw RUNNING, so ctx_after_stop can tell whether it is
 * called from inside fn.
 *
 * References on the registration: one for the pending registration (gone
 * when fn has run or was stopped) and one for the stop handle, if any. The
 * registration holds the watched context through base.parent until fn has
 * run (run_afters lets go of it then) or the registration is freed.
 *
 * ctx_after_func_at puts the same node in the caller's ctx_after_slot_t
 * (a->slot): no references count its life there, and it does not hold the
 * watched context (the caller must, until its stop). The library's last touch
 * of a slot is a release store to state (DONE by run_afters, LET_GO by a
 * canceller that lost to a stop, or by the stop itself), and a
 * ctx_after_stop outside fn returns only after seeing one (acquire), so the
 * caller may then reuse the slot.
 */
#include <errno.h>
#include <sched.h>

#include "internal.h"

/* Handles for registrations that never needed a node: on a context already
 * done (fn ran at once) and on one that can never be done. */
static struct ctx__after after_ran;
static struct ctx__after after_never;

int ctx_after_func(ctx_t *ctx, void (*fn)(void *arg), void *arg, ctx_after_t **stop)
{
	if (!ctx || !fn)
		return EINVAL;
	struct ctx__cnode *s = ctx->src;
	if (!s) {
		if (stop)
			*stop = (ctx_after_t *)&after_never;
		return 0;
	}
	if (!ctx_done(ctx)) {
		struct ctx__after *a = ctx__node_alloc(sizeof *a, __builtin_return_address(0));
		if (!a)
			return ENOMEM;
		atomic_init(&a->node.base.refs, stop ? 2 : 1);
		a->node.base.kind = CTX__AFTER;
		a->node.base.todo = 0;
		a->node.base.flags = 0;
		a->node.base.parent = ctx_retain(ctx);
		a->node.base.src = NULL;
		a->node.next = NULL;
		a->node.pprev = NULL;
		atomic_init(&a->state, CTX__AFTER_PENDING);
		a->slot = false;
		a->fn = fn;
		a->arg = arg;
		int cause;
		if (ctx__link(s, &a->node, &cause) == 0) {
			if (stop)
				*stop = (ctx_after_t *)a;
			return 0;
		}
		/* Done meanwhile: nobody saw the node. */
		ctx_release(ctx);
		ctx__node_free(a);
	}
	fn(arg);
	if (stop)
		*stop = (ctx_after_t *)&after_ran;
	return 0;
}

_Static_assert(sizeof(struct ctx__after) <= sizeof(ctx_after_slot_t),
               "a registration fits in a ctx_after_slot_t");
_Static_assert(_Alignof(struct ctx__after) <= _Alignof(ctx_after_slot_t),
               "a ctx_after_slot_t is aligned for a registration");

ctx_after_t *ctx_after_func_at(ctx_t *ctx, ctx_after_slot_t *slot, void (*fn)(void *arg),
                               void *arg)
{
	if (!ctx || !slot || !fn) {
		errno = EINVAL;
		return NULL;
	}
	struct ctx__cnode *s = ctx->src;
	if (!s)
		return (ctx_after_t *)&after_never;
	{
		/* No ctx_done() first: ctx__link sees a done ctx under its lock. */
		struct ctx__after *a = (struct ctx__after *)(void *)slot;
		/* Only so that a canceller's try_retain takes it; never counted
		 * down (see `slot` in internal.h). */
		atomic_init(&a->node.base.refs, 1);
		a->node.base.kind = CTX__AFTER;
		a->node.base.todo = 0;
		a->node.base.flags = 0;
		a->node.base.parent = ctx; /* not held: the caller holds it */
		a->node.base.src = NULL;
		a->node.next = NULL;
		a->node.pprev = NULL;
		atomic_init(&a->state, CTX__AFTER_PENDING);
		a->slot = true;
		a->fn = fn;
		a->arg = arg;
		int cause;
		if (ctx__link(s, &a->node, &cause) == 0)
			return (ctx_after_t *)a;
		/* Done: nobody saw the slot. */
	}
	fn(arg);
	return (ctx_after_t *)&after_ran;
}

static bool not_running(uint32_t s) { return (s & CTX__AFTER_MASK) != CTX__AFTER_RUNNING; }
static bool not_stopping(uint32_t s) { return (s & CTX__AFTER_MASK) != CTX__AFTER_STOPPED; }

/* ctx_after_stop on a registration in a slot. */
static bool stop_slot(struct ctx__after *a)
{
	uint32_t s = CTX__AFTER_PENDING;
	if (atomic_compare_exchange_strong_explicit(&a->state, &s, CTX__AFTER_STOPPED,
	                                            memory_order_acq_rel, memory_order_acquire)) {
		struct ctx *watched = a->node.base.parent;
		if (ctx__unlink(watched->src, &a->node)) {
			/* Still listed: nobody else writes state now (a canceller
			 * never saw the slot; a concurrent stop that saw STOPPED
			 * polls, it sets no WAITERS), so a plain release store. */
			atomic_store_explicit(&a->state, CTX__AFTER_LET_GO, memory_order_release);
		} else {
			/* A canceller detached it; its claim_after lets go of the
			 * slot (LET_GO) once its CAS has failed. */
			ctx__wait_word(&a->state, not_stopping, -1);
		}
		return true;
	}
	switch (s & CTX__AFTER_MASK) {
	case CTX__AFTER_RUNNING:
		if (pthread_equal(a->runner, pthread_self()))
			return false; /* from inside fn */
		s = ctx__wait_word(&a->state, not_running, -1);
		break;
	case CTX__AFTER_STOPPED:
		/* Another ctx_after_stop is finishing (rare: concurrent stops
		 * of one slot). Poll, so that the winner's store of LET_GO needs
		 * no wake (the winner may itself sleep on a canceller's). */
		while (!not_stopping(atomic_load_explicit(&a->state, memory_order_acquire)))
			sched_yield();
		break;
	default:
		break;
	}
	return false;
}

bool ctx_after_stop(ctx_after_t *stop)
{
	struct ctx__after *a = (struct ctx__after *)stop;
	if (!a || a == &after_ran)
		return false;
	if (a == &after_never)
		return true;
	if (a->slot)
		return stop_slot(a);
	uint32_t s = CTX__AFTER_PENDING;
	if (atomic_compare_exchange_strong_explicit(&a->state, &s, CTX__AFTER_STOPPED,
	                                            memory_order_acq_rel, memory_order_acquire)) {
		if (ctx__unlink(a->node.base.parent->src, &a->node)) {
			/* Still listed, so no canceller holds it: the registration's
			 * and the handle's are the only references, both ours. */
			bool owned; /* never, for a registration (it holds parent in refs) */
			ctx_release(ctx__destroy(&a->node.base, &owned));
		} else {
			/* A canceller detached it and holds a reference of its own;
			 * drop the registration's, then the handle's. */
			atomic_fetch_sub_explicit(&a->node.base.refs, 1, memory_order_relaxed);
			ctx_release(&a->node.base);
		}
		return true;
	}
	if ((s & CTX__AFTER_MASK) == CTX__AFTER_RUNNING && !pthread_equal(a->runner, pthread_self()))
		ctx__wait_word(&a->state, not_running, -1);
	ctx_release(&a->node.base);
	return false;
}
