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
	struct ctx__ext *e = (struct ctx__ext *)ctx__cnode_new(size, CTX__EXT, parent,
	                                                         cancel != NULL, where);
	if (!e)
		return NULL;
	struct ctx__cnode *cn = &e->c;
	e->ops = ops;
	ctx__cnode_link(cn);
	if (cancel)
		*cancel = (ctx_cancel_t *)cn;
	return e;
}

void ctx__ext_freed(struct ctx__ext *e)
{
	if (e->ops->freed)
		e->ops->freed(e);
}
