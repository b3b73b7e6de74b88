/* ctx.c: the context tree: roots, constructors, references, and reading. */
#include <errno.h>

#include "internal.h"
#include "testing.h"

static struct ctx background = {.kind = CTX__ROOT};
static struct ctx todo = {.kind = CTX__ROOT, .todo = 1};

ctx_t *ctx_background(void) { return &background; }
ctx_t *ctx_todo(void) { return &todo; }

/* ---- references ---- */

ctx_t *ctx_retain(ctx_t *c)
{
	/* Relaxed is enough to take a reference from one we already hold. */
	if (c && c->kind != CTX__ROOT)
		atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
	return c;
}

struct ctx *ctx__destroy(struct ctx *c, bool *owned)
{
	struct ctx *parent = c->parent;
	*owned = false;
	switch (c->kind) {
	case CTX__VALUE: {
		struct ctx__value *v = (struct ctx__value *)c;
		if (v->free_val)
			v->free_val(v->val);
		break;
	}
	case CTX__TIMER:
		/* A done timer was disarmed by its cancellation. */
		if (!ctx_done(c))
			ctx__timer_disarm((struct ctx__timer *)c);
		/* fall through */
	case CTX__CANCEL:
	case CTX__EXT:
	case CTX__MERGE: {
		struct ctx__cnode *cn = (struct ctx__cnode *)c;
		if (c->kind == CTX__EXT)
			ctx__ext_freed((struct ctx__ext *)c);
		else if (c->kind == CTX__MERGE)
			ctx__merge_freed((struct ctx__merge *)c);
		/* A done node left its parent's list when its cancellation
		 * finished (which happened before this free: that op held a
		 * reference). A live one may still be listed. */
		if (parent->src && !ctx_done(c))
			ctx__unlink(parent->src, &cn->node);
		if (ctx__os_done_made(&cn->done))
			ctx__os_done_close(&cn->done);
		if (atomic_load_explicit(&cn->state, memory_order_relaxed) & CTX__SHARDED)
			ctx__shard_free(cn);
		break;
	}
	case CTX__AFTER:
		/* A registration drops its count to zero only once stopped or
		 * run, and both take it out of the list first. */
		break;
	default:
		break;
	}
	bool shard_ref = c->flags & CTX__F_SHARD_REF;
	unsigned shard = c->shard;
	ctx__node_free(c);
	if (shard_ref) {
		/* The reference to parent was counted in its shard. */
		*owned = ctx__shard_leave(parent->src, shard);
		return *owned ? parent : NULL;
	}
	return parent;
}

/* True when the caller holds the only reference to c and nobody can take
 * another: then the release needs no atomic read-modify-write. Only a
 * holder can retain, except that a canceller (under the parent's lock) and
 * the timer thread (under the queue lock) try_retain nodes still listed or
 * armed. Value and WithoutCancel nodes are never listed or armed. A
 * cancelable node is done only by an op that took its reference first and
 * unlinks and disarms it before letting go; so once done is seen (acquire,
 * pairing with the op's release of err, which follows its reference), a
 * count of 1 means that op has let go. Done must be read before the count:
 * the other order could read a count from before an op took its reference
 * and a done from after. The acquire on the count pairs with the acq_rel
 * decrements of former holders. */
static bool sole_holder(const struct ctx *c)
{
	switch (c->kind) {
	case CTX__VALUE:
	case CTX__WITHOUT:
		break;
	case CTX__CANCEL:
	case CTX__TIMER: {
		/* A SHARDED node's count includes its table's reference. */
		uint32_t st = atomic_load_explicit(&((const struct ctx__cnode *)c)->state,
		                                   memory_order_acquire);
		if (!(st & CTX__ERR_MASK) || (st & CTX__SHARDED))
			return false;
		break;
	}
	default:
		return false;
	}
	return atomic_load_explicit(&c->refs, memory_order_acquire) == 1;
}

/* Drop one reference to c; true when the caller must now free it. */
static bool drop_ref(struct ctx *c)
{
	if (sole_holder(c))
		return true;
	/* Read before letting go (after, c may be gone). A node sharded after
	 * this read was sharded by a linker that holds a reference too, so
	 * this is not the last one either way. */
	if (c->src == (struct ctx__cnode *)c &&
	    (atomic_load_explicit(&c->src->state, memory_order_acquire) & CTX__SHARDED))
		return ctx__shard_drop(c->src);
	/* acq_rel: every use of the node by other holders happens before the
	 * free (a release fetch_sub plus an acquire fence would do, but
	 * ThreadSanitizer does not model fences; on x86 both are the same
	 * instruction). */
	return atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1;
}

void ctx_release(ctx_t *c)
{
	/* Iterative, so that releasing the leaf of a long chain that holds the
	 * last references frees the chain without recursion. */
	bool owned = false; /* c's count is already zero: free it */
	while (c && c->kind != CTX__ROOT) {
		if (!owned && !drop_ref(c))
			return;
		c = ctx__destroy(c, &owned);
	}
}

/* ---- constructors ---- */

static void *new_node(size_t size, enum ctx__kind kind, ctx_t *parent, const void *where)
{
	struct ctx *c = ctx__node_alloc(size, where);
	if (!c)
		return NULL;
	atomic_init(&c->refs, 1);
	c->kind = (uint8_t)kind;
	c->todo = 0;
	c->shard = 0;
	c->flags = 0;
	c->parent = parent;
	c->src = parent->src;
	/* A cancelable child of a SHARDED parent counts itself in the
	 * parent's shard instead (internal.h); every other child retains. */
	struct ctx__cnode *ps = parent->src;
	if (kind != CTX__VALUE && kind != CTX__WITHOUT && ps == (struct ctx__cnode *)parent &&
	    (atomic_load_explicit(&ps->state, memory_order_acquire) & CTX__SHARDED))
		ctx__shard_adopt(c, ps);
	else
		ctx_retain(parent);
	return c;
}

struct ctx__cnode *ctx__cnode_new(size_t size, enum ctx__kind kind, ctx_t *parent, bool handle,
                                  const void *where)
{
	struct ctx__cnode *cn = new_node(size, kind, parent, where);
	if (!cn)
		return NULL;
	if (handle) /* the handle's reference, counted before the node is shared */
		atomic_init(&cn->node.base.refs, 2);
	cn->node.base.src = cn;
	cn->node.next = NULL;
	cn->node.pprev = NULL;
	atomic_init(&cn->state, 0);
	atomic_init(&cn->lock, 0);
	cn->cause = 0;
	cn->done = CTX__OS_DONE_NONE;
	cn->children = NULL;
	return cn;
}

int ctx__cnode_link(struct ctx__cnode *cn)
{
	struct ctx__cnode *psrc = cn->node.base.parent->src;
	if (!psrc)
		return 0;
	int cause = 0;
	int err = ctx__link(psrc, &cn->node, &cause);
	if (err) {
		/* Not yet shared with any thread: plain stores, published by the
		 * return of the constructor. */
		cn->cause = cause;
		atomic_store_explicit(&cn->state, (uint32_t)err, memory_order_relaxed);
	}
	return err;
}

static ctx_t *with_cancel(ctx_t *parent, ctx_cancel_t **cancel, const void *where)
{
	if (cancel)
		*cancel = NULL; /* until it succeeds */
	if (!parent) {
		errno = EINVAL;
		return NULL;
	}
	struct ctx__cnode *cn = ctx__cnode_new(sizeof *cn, CTX__CANCEL, parent, cancel != NULL, where);
	if (!cn)
		return NULL;
	if (cancel)
		*cancel = (ctx_cancel_t *)cn;
	ctx__cnode_link(cn);
	return &cn->node.base;
}

ctx_t *ctx_with_cancel(ctx_t *parent, ctx_cancel_t **cancel)
{
	return with_cancel(parent, cancel, __builtin_return_address(0));
}

/* past: whether the deadline is already due (the caller knows it when it
 * computed the deadline from a timeout: one clock read instead of two). */
static ctx_t *with_deadline(ctx_t *parent, ctx_time_t deadline, bool past, int cause,
                            ctx_cancel_t **cancel, const void *where)
{
	if (cancel)
		*cancel = NULL; /* until it succeeds */
	if (!parent) {
		errno = EINVAL;
		return NULL;
	}
	ctx_time_t cur;
	if (ctx_deadline(parent, &cur) && cur < deadline)
		return with_cancel(parent, cancel, where); /* the cause is dropped, as Go does */

	struct ctx__timer *t = (struct ctx__timer *)ctx__cnode_new(sizeof *t, CTX__TIMER, parent,
	                                                             cancel != NULL, where);
	if (!t)
		return NULL;
	t->deadline = deadline;
	t->hchild = t->hnext = t->hprev = NULL;
	/* Until done, `cause` holds the deadline's cause (see internal.h). */
	t->c.cause = cause ? cause : ETIMEDOUT;
	if (cancel)
		*cancel = (ctx_cancel_t *)t;
	if (ctx__cnode_link(&t->c) == 0) {
		if (past) {
			ctx__cancel(&t->c, ETIMEDOUT, CTX__TIMER_CAUSE, true);
		} else {
			int e = ctx__timer_arm(t);
			if (e) {
				/* No timer thread: undo everything. */
				if (cancel) {
					ctx_release(&t->c.node.base);
					*cancel = NULL;
				}
				ctx__cancel(&t->c, ECANCELED, ECANCELED, true);
				ctx_release(&t->c.node.base);
				errno = e;
				return NULL;
			}
		}
	}
	return &t->c.node.base;
}

ctx_t *ctx_with_deadline_cause(ctx_t *parent, ctx_time_t deadline, int cause,
                               ctx_cancel_t **cancel)
{
	return with_deadline(parent, deadline, deadline <= ctx_now(), cause, cancel,
	                     __builtin_return_address(0));
}

ctx_t *ctx_with_deadline(ctx_t *parent, ctx_time_t deadline, ctx_cancel_t **cancel)
{
	return with_deadline(parent, deadline, deadline <= ctx_now(), 0, cancel,
	                     __builtin_return_address(0));
}

ctx_t *ctx_with_timeout_cause(ctx_t *parent, ctx_duration_t timeout, int cause,
                              ctx_cancel_t **cancel)
{
	return with_deadline(parent, ctx__add_sat(ctx_now(), timeout), timeout <= 0, cause, cancel,
	                     __builtin_return_address(0));
}

ctx_t *ctx_with_timeout(ctx_t *parent, ctx_duration_t timeout, ctx_cancel_t **cancel)
{
	return with_deadline(parent, ctx__add_sat(ctx_now(), timeout), timeout <= 0, 0, cancel,
	                     __builtin_return_address(0));
}

ctx_t *ctx_with_value(ctx_t *parent, const void *key, void *val, void (*free_val)(void *))
{
	if (!parent || !key) {
		errno = EINVAL;
		return NULL;
	}
	struct ctx__value *v = new_node(sizeof *v, CTX__VALUE, parent, __builtin_return_address(0));
	if (!v)
		return NULL;
	v->key = key;
	v->val = val;
	v->free_val = free_val;
	return &v->base;
}

ctx_t *ctx_without_cancel(ctx_t *parent)
{
	if (!parent) {
		errno = EINVAL;
		return NULL;
	}
	struct ctx *c = new_node(sizeof *c, CTX__WITHOUT, parent, __builtin_return_address(0));
	if (c)
		c->src = NULL;
	return c;
}
