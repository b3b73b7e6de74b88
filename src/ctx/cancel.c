/* cancel.c: cancelling a subtree, and the cancel handles.
 *
 * One cancellation ("an op") starts at a node the caller holds a reference
 * to. cancel_one() marks a node done under its lock and detaches its child
 * list, taking a temporary reference on every live child; the op keeps the
 * detached nodes on a stack of its own (linked through their `next`, which
 * nobody else touches once `pprev` is NULL) and works through it with no
 * lock held, so a million-deep chain needs no recursion and no lock nesting.
 *
 * A node that had children is marked BUSY together with its err. The op
 * pushes a marker for it below its children; popping the marker means the
 * whole subtree is done, so BUSY is cleared and waiters woken. A canceller
 * that finds a node already done waits for BUSY to clear: every ctx_cancel
 * then returns with the whole subtree done, even when another thread got
 * there first. Such waits only ever go from a node to one of its own
 * descendants' owners, so they cannot form a cycle.
 *
 * After-funcs met on the way are claimed (PENDING -> RUNNING) and run at the
 * very end of the op, after every BUSY bit the op set is cleared and with no
 * lock held: fn may call any goctx function, and sees the whole subtree done.
 */
#include <errno.h>
#include <stdint.h>

#include "internal.h"
#include "testing.h"

/* Tests only (testing.h): called between publishing err and writing the
 * done descriptor. Set while no cancel runs. */
static void (*publish_hook)(void);

void ctx__set_publish_hook(void (*fn)(void)) { publish_hook = fn; }

/* Stack entries are node addresses; bit 0 marks "subtree done" markers. */
#define MARK ((uintptr_t)1)

struct op {
	uintptr_t top;                /* stack of nodes (tagged), through next */
	struct ctx__node *run_head;   /* claimed after-funcs, in order */
	struct ctx__node **run_tail;
};

static void push(struct op *op, struct ctx__node *n, uintptr_t tag)
{
	n->next = (struct ctx__node *)op->top;
	op->top = (uintptr_t)n | tag;
}

static bool busy_clear(uint32_t s) { return !(s & CTX__BUSY); }

enum { ALREADY_DONE, DONE_LEAF, DONE_BUSY };

/* Detach the live entries of the list at head onto op's stack (after a
 * marker for mark first, if not NULL and any is live); leave dying ones
 * (count 0) to unlink themselves. Pushing in list order reverses it, so
 * siblings are popped oldest first. Returns whether any was live. The
 * caller holds the list's lock. */
static bool detach(struct ctx__node **head, struct op *op, struct ctx__cnode *mark)
{
	struct ctx__node *e = *head, **keep = head;
	bool any = false;
	while (e) {
		struct ctx__node *next = e->next;
		if (ctx__try_retain(ctx__holder(e))) {
			if (!any && mark)
				push(op, &mark->node, MARK); /* popped after the subtree */
			any = true;
			e->pprev = NULL;
			push(op, e, 0);
		} else {
			*keep = e;
			e->pprev = keep;
			keep = &e->next;
		}
		e = next;
	}
	*keep = NULL;
	return any;
}

/* Mark c done; detach its live children onto op's stack, after a marker
 * for c (except for the op's root, which the op clears itself). Returns
 * ALREADY_DONE, DONE_LEAF (no live children) or DONE_BUSY (BUSY set; for a
 * non-root c the marker now owns the caller's reference). */
static int cancel_one(struct ctx__cnode *c, int err, int *cause, struct op *op, bool root)
{
	ctx__lock(&c->lock);
	uint32_t s = atomic_load_explicit(&c->state, memory_order_relaxed);
	if (s & CTX__ERR_MASK) {
		ctx__unlock(&c->lock);
		return ALREADY_DONE;
	}
	if (*cause == CTX__TIMER_CAUSE)
		*cause = c->cause; /* the deadline's own cause */
	c->cause = *cause;
	/* A sharded node publishes err first, then detaches its shards (a
	 * linker checks err under its shard's lock, not this one), so it
	 * cannot know yet whether any child is live: it is always BUSY. */
	bool shards = s & CTX__SHARDED;
	bool any = shards;
	if (any && !root)
		push(op, &c->node, MARK); /* popped after the subtree */
	if (!shards)
		any = detach(&c->children, op, root ? NULL : c);

	/* Release: pairs with the acquire loads in ctx_err/ctx_cause/waits. An
	 * or, not a store: SHARDED stays (and the err bits were 0). */
	uint32_t now = (uint32_t)err | (any ? CTX__BUSY : 0);
	bool fd = ctx__os_done_made(&c->done);
	uint32_t old = atomic_fetch_or_explicit(&c->state, now | (fd ? CTX__PUBLISHING : 0),
	                                        memory_order_release);
	if (fd) {
		/* Readers wait while PUBLISHING is set (Go issue 75533: once err
		 * is seen, the descriptor is readable). */
		if (__builtin_expect(publish_hook != NULL, 0))
			publish_hook();
		ctx__os_done_signal(&c->done);
		old |= atomic_fetch_and_explicit(&c->state, ~(CTX__PUBLISHING | CTX__WAITERS),
		                                 memory_order_release);
	}
	for (int i = 0; shards && i < CTX__NSHARDS; i++) {
		struct ctx__shard *sh = &c->shards->s[i];
		ctx__lock(&sh->lock);
		detach(&sh->head, op, NULL);
		ctx__unlock(&sh->lock);
	}
	ctx__unlock(&c->lock);
	if (old & CTX__WAITERS)
		ctx__os_wake(&c->state, INT_MAX);
	if (c->node.base.kind == CTX__TIMER)
		ctx__timer_disarm((struct ctx__timer *)c);
	else if (c->node.base.kind == CTX__MERGE)
		ctx__merge_done((struct ctx__merge *)c);
	return any ? DONE_BUSY : DONE_LEAF;
}

static void clear_busy(struct ctx__cnode *c)
{
	uint32_t old = atomic_fetch_and_explicit(&c->state, ~(CTX__BUSY | CTX__WAITERS),
	                                         memory_order_release);
	if (old & CTX__WAITERS)
		ctx__os_wake(&c->state, INT_MAX);
}

static void wait_not_busy(struct ctx__cnode *c)
{
	if (atomic_load_explicit(&c->state, memory_order_acquire) & CTX__BUSY)
		ctx__wait_word(&c->state, busy_clear, -1);
}

static void claim_after(struct op *op, struct ctx__after *a)
{
	uint32_t want = CTX__AFTER_PENDING;
	a->runner = pthread_self();
	if (atomic_compare_exchange_strong_explicit(&a->state, &want, CTX__AFTER_RUNNING,
	                                            memory_order_acq_rel, memory_order_acquire)) {
		a->node.next = NULL;
		*op->run_tail = &a->node;
		op->run_tail = &a->node.next;
	} else if (a->slot) {
		/* Stopped meanwhile; the stopper waits for this store (release:
		 * after it, this op never touches the slot again). The wake may
		 * reach a slot already reused: futex waiters recheck. */
		uint32_t old = atomic_exchange_explicit(&a->state, CTX__AFTER_LET_GO,
		                                        memory_order_release);
		if (old & CTX__WAITERS)
			ctx__os_wake(&a->state, INT_MAX);
	} else {
		ctx_release(&a->node.base); /* stopped meanwhile: drop our reference */
	}
}

static void run_afters(struct op *op)
{
	struct ctx__node *n = op->run_head;
	while (n) {
		struct ctx__after *a = (struct ctx__after *)n;
		n = n->next;
		if (a->node.base.kind == CTX__MLINK) {
			ctx__merge_fire((struct ctx__mlink *)a);
			continue;
		}
		a->fn(a->arg);
		/* fn has run: the registration lets go of the watched context
		 * now, even while a stop handle keeps the node. Cleared before
		 * the release below, which a waiting ctx_after_stop pairs with
		 * before it may free the node (and read `parent` there). */
		struct ctx *watched = a->node.base.parent;
		bool slot = a->slot;
		a->node.base.parent = NULL;
		uint32_t old = atomic_exchange_explicit(&a->state, CTX__AFTER_DONE, memory_order_release);
		/* In a slot, that store was the last touch of it: the caller may
		 * reuse it at once (the wake may reach a reused slot: futex
		 * waiters recheck). */
		if (old & CTX__WAITERS)
			ctx__os_wake(&a->state, INT_MAX);
		if (slot)
			continue; /* a slot does not hold the watched context */
		ctx_release(watched);
		/* Drop our temporary reference (never the last: the
		 * registration holds one), then the registration's. */
		atomic_fetch_sub_explicit(&a->node.base.refs, 1, memory_order_relaxed);
		ctx_release(&a->node.base);
	}
}

void ctx__cancel(struct ctx__cnode *c, int err, int cause, bool unlink)
{
	/* Already done: nothing to do but let a concurrent op on the subtree
	 * finish. Only the op that marked a node done unlinks it (a node done
	 * by its parent's op was detached by it), so this one has no unlink
	 * and no after-funcs to run. */
	if (atomic_load_explicit(&c->state, memory_order_acquire) & CTX__ERR_MASK) {
		wait_not_busy(c);
		return;
	}
	struct op op = {.top = 0, .run_head = NULL};
	op.run_tail = &op.run_head;

	int mine = cancel_one(c, err, &cause, &op, true);
	if (mine == ALREADY_DONE) {
		wait_not_busy(c);
		return;
	}

	while (op.top) {
		struct ctx__node *n = (struct ctx__node *)(op.top & ~MARK);
		bool marker = op.top & MARK;
		op.top = (uintptr_t)n->next;
		if (marker) {
			clear_busy((struct ctx__cnode *)n);
			ctx_release(&n->base);
		} else if (n->base.kind == CTX__AFTER) {
			claim_after(&op, (struct ctx__after *)n);
		} else if (n->base.kind == CTX__MLINK) {
			/* A merged context: cancelled at the end, with the after-funcs
			 * (when no BUSY bit of this op is left to wait for). */
			struct ctx__mlink *l = (struct ctx__mlink *)n;
			l->err = err;
			l->cause = cause;
			n->next = NULL;
			*op.run_tail = n;
			op.run_tail = &n->next;
		} else {
			struct ctx__cnode *cn = (struct ctx__cnode *)n;
			int ccause = cause;
			int r = cancel_one(cn, err, &ccause, &op, false);
			if (r == ALREADY_DONE)
				wait_not_busy(cn);
			if (r != DONE_BUSY)
				ctx_release(&n->base);
		}
	}

	if (mine == DONE_BUSY)
		clear_busy(c);
	struct ctx *p = c->node.base.parent;
	if (unlink && p->src)
		ctx__unlink(p->src, &c->node);
	run_afters(&op);
}

void ctx_cancel_cause(ctx_cancel_t *cancel, int cause)
{
	if (!cancel)
		return;
	struct ctx__cnode *c = (struct ctx__cnode *)cancel;
	ctx__cancel(c, ECANCELED, cause ? cause : ECANCELED, true);
	ctx_release(&c->node.base);
}

void ctx_cancel(ctx_cancel_t *cancel) { ctx_cancel_cause(cancel, ECANCELED); }

ctx_cancel_t *ctx_cancel_dup(ctx_cancel_t *cancel)
{
	if (!cancel) {
		errno = EINVAL;
		return NULL;
	}
	ctx_retain((ctx_t *)cancel);
	return cancel;
}
