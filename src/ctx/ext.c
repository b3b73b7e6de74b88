/* ext.c: EXT nodes, cancelable nodes an upper module extends with hooks
 * for their format and their free (see struct ctx__ext in internal.h). An
 * EXT node is linked, cancelled, waited on and released exactly like a
 * CANCEL node; only ctx_format and ctx__destroy look at its hooks. */
#include <errno.h>

#include "internal.h"

struct ctx__ext *ctx__ext_new(ctx_t *parent, size_t size, const struct ctx__ext_ops *ops,
                              ctx_cancel_t **cancel, const void *where)
{
	if (cancel)
		*cancel = NULL;
	if (!parent || !ops || size < sizeof(struct ctx__ext)) {
		errno = EINVAL;
		return NULL;
	}
	struct ctx__ext *e = ctx__node_alloc(size, where);
	if (!e)
		return NULL;
	struct ctx__cnode *cn = &e->c;
	/* One reference for the caller, one for the handle. */
	atomic_init(&cn->node.base.refs, cancel ? 2 : 1);
	cn->node.base.kind = CTX__EXT;
	cn->node.base.todo = 0;
	cn->node.base.parent = ctx_retain(parent);
	cn->node.base.src = cn;
	cn->node.next = NULL;
	cn->node.pprev = NULL;
	atomic_init(&cn->state, 0);
	atomic_init(&cn->lock, 0);
	cn->cause = 0;
	cn->done = CTX__OS_DONE_NONE;
	cn->children = NULL;
	e->ops = ops;
	if (parent->src) {
		int cause = 0;
		int err = ctx__link(parent->src, &cn->node, &cause);
		if (err) {
			/* Not shared yet: born done with the parent's err and cause. */
			cn->cause = cause;
			atomic_store_explicit(&cn->state, (uint32_t)err, memory_order_relaxed);
		}
	}
	if (cancel)
		*cancel = (ctx_cancel_t *)cn;
	return e;
}

void ctx__ext_freed(struct ctx__ext *e)
{
	if (e->ops->freed)
		e->ops->freed(e);
}
