/* merge.c: merged cancellation (ctx_with_merge): a child of its parent that
 * each of n other contexts cancels too, without a thread and without
 * polling.
 *
 * A MERGE node is one allocation: the cancelable node, then one entry
 * (struct ctx__mlink) per other context. It is linked in its parent's child
 * list as any child is, and each entry is linked in its other's child list
 * (an other that can never be done gets none). An op cancelling an other
 * detaches the entry like a child, but takes its reference on the MERGE
 * node, and cancels that node (ctx__merge_fire) at the end of the op, where
 * the after-funcs run: it holds no BUSY bit then, so the merged context's
 * own after-funcs may cancel anything, the other included. The merged
 * context is thus done, its after-funcs run, before the other's ctx_cancel
 * returns.
 *
 * Each entry holds its other (base.parent) while it may be linked. The op
 * that marks the node done lets go of every entry (ctx__merge_done, from
 * cancel_one): unlinks it where still linked and drops the other. An entry
 * detached meanwhile by some other's op is in that op's hands (it holds the
 * node); the op keeps the other alive until it is through with it. A node
 * freed live (ctx__merge_freed) lets go of its entries the same way; none
 * can be detached then, since detaching needs a reference on the node.
 *
 * Construction holds the new node's lock while it links the node under its
 * parent and the entries under the others, so that a canceller reaching the
 * node meanwhile (through any of them) waits until every entry is in place.
 * That is the only place two node locks are held together, always the
 * new node's first: nobody else can know the new node yet, so no one holds
 * another lock while waiting for its lock.
 */
#include <errno.h>

#include "internal.h"

/* Let go of entries [0, m->nlinked): unlink the live ones, drop their
 * others. */
static void let_go(struct ctx__merge *m)
{
	for (size_t i = 0; i < m->nlinked; i++) {
		struct ctx__mlink *l = &m->links[i];
		struct ctx *other = l->node.base.parent;
		if (!other)
			continue;
		ctx__unlink(other->src, &l->node);
		l->node.base.parent = NULL;
		ctx_release(other);
	}
}

void ctx__merge_done(struct ctx__merge *m)
{
	/* Construction is over: cancel_one took the node's lock after it. */
	let_go(m);
}

void ctx__merge_freed(struct ctx__merge *m)
{
	/* A done node let go in its cancellation, before its count could
	 * reach zero. */
	if (!ctx_done(&m->c.node.base))
		let_go(m);
}

void ctx__merge_fire(struct ctx__mlink *l)
{
	struct ctx__merge *m = l->m;
	ctx__cancel(&m->c, l->err, l->cause, true);
	ctx_release(&m->c.node.base);
}

ctx_t *ctx_with_merge(ctx_t *parent, ctx_t *const *others, size_t n, ctx_cancel_t **cancel)
{
	if (cancel)
		*cancel = NULL;
	if (!parent || (n && !others)) {
		errno = EINVAL;
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		if (!others[i]) {
			errno = EINVAL;
			return NULL;
		}
	}
	if (n == 0)
		return ctx_with_cancel(parent, cancel);

	struct ctx__merge *m = (struct ctx__merge *)ctx__cnode_new(
		sizeof *m + n * sizeof m->links[0], CTX__MERGE, parent, cancel != NULL,
		__builtin_return_address(0));
	if (!m)
		return NULL;
	struct ctx__cnode *cn = &m->c;
	m->n = n;
	m->nlinked = 0;
	m->has_deadline = false;
	m->deadline = 0;
	for (size_t i = 0; i < n; i++) {
		ctx_time_t d;
		if (ctx_deadline(others[i], &d) && (!m->has_deadline || d < m->deadline)) {
			m->deadline = d;
			m->has_deadline = true;
		}
	}

	/* Born done with the first done one of parent, others[0], ... */
	int err = 0, cause = 0;
	ctx__lock(&cn->lock);
	if (parent->src)
		err = ctx__link(parent->src, &cn->node, &cause);
	size_t k = 0;
	for (; !err && k < n; k++) {
		struct ctx__mlink *l = &m->links[k];
		l->node.base.kind = CTX__MLINK;
		l->node.base.todo = 0;
		l->node.base.flags = 0;
		l->node.base.src = NULL;
		atomic_init(&l->node.base.refs, 0);
		l->node.next = NULL;
		l->node.pprev = NULL;
		l->m = m;
		l->err = l->cause = 0;
		struct ctx__cnode *os = others[k]->src;
		if (!os) {
			l->node.base.parent = NULL; /* never done: nothing to watch */
			continue;
		}
		l->node.base.parent = ctx_retain(others[k]);
		err = ctx__link(os, &l->node, &cause);
		if (err) {
			/* Not linked; the caller's reference keeps it alive. */
			l->node.base.parent = NULL;
			ctx_release(others[k]);
		}
	}
	m->nlinked = k;
	if (err) {
		/* Not shared with a canceller that could look yet: it needs
		 * this lock to see the node. */
		cn->cause = cause;
		atomic_store_explicit(&cn->state, (uint32_t)err, memory_order_release);
	}
	ctx__unlock(&cn->lock);
	if (err) {
		let_go(m);
		if (parent->src)
			ctx__unlink(parent->src, &cn->node);
	}
	if (cancel)
		*cancel = (ctx_cancel_t *)cn;
	return &cn->node.base;
}
