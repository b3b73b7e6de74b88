/* read.c: reading a context: err, cause, deadline, values. Nothing here
 * allocates or takes a lock; err waits only while a canceller publishes the
 * done descriptor (word.c).
 * Uses: word.c. */
#include <stddef.h>

#include "internal.h"

/* What the inline fast path of goctx.h reads must be where it reads it. */
_Static_assert(offsetof(struct ctx, src) == offsetof(struct ctx__abi_head, ctx__src),
               "goctx.h's inline ctx_err finds src");
_Static_assert(offsetof(struct ctx__cnode, state) == offsetof(struct ctx__abi_cnode, ctx__state),
               "goctx.h's inline ctx_err finds state");
_Static_assert(CTX__ERR_MASK == GOCTX__STATE_ERR && CTX__PUBLISHING == GOCTX__STATE_SLOW,
               "goctx.h's inline ctx_err reads the same bits");

/* The names in parentheses: goctx.h makes ctx_err(c) and ctx_done(c) inline
 * reads; these are the exported functions behind them. */
int(ctx_err)(const ctx_t *c)
{
	/* The hot path: one acquire load (pairs with the release that
	 * publishes err in cancel.c). */
	const struct ctx__cnode *s = c->src;
	if (!s)
		return 0;
	uint32_t st = atomic_load_explicit(&s->state, memory_order_acquire);
	if (__builtin_expect(st & CTX__PUBLISHING, 0))
		st = ctx__published(s, st);
	return (int)(st & CTX__ERR_MASK);
}

bool(ctx_done)(const ctx_t *c) { return (ctx_err)(c) != 0; }

int ctx_cause(const ctx_t *c)
{
	if (!ctx_err(c))
		return 0;
	const struct ctx__cnode *s = c->src;
	/* cause was written before the release that published err. */
	return s->cause;
}

bool ctx_deadline(const ctx_t *c, ctx_time_t *deadline)
{
	/* The nearest TIMER holds the earliest deadline of its own chain (a
	 * later one under it is a CANCEL node); a MERGE node on the way adds
	 * the earliest of its others'. */
	bool have = false;
	ctx_time_t best = 0;
	for (; c; c = c->parent) {
		if (c->kind == CTX__TIMER || c->kind == CTX__MERGE) {
			ctx_time_t d;
			if (c->kind == CTX__TIMER) {
				d = ((const struct ctx__timer *)c)->deadline;
			} else if (((const struct ctx__merge *)c)->has_deadline) {
				d = ((const struct ctx__merge *)c)->deadline;
			} else {
				continue;
			}
			best = have && best < d ? best : d;
			have = true;
			if (c->kind == CTX__TIMER)
				break;
		}
		if (c->kind == CTX__WITHOUT || c->kind == CTX__ROOT)
			break;
	}
	if (have && deadline)
		*deadline = best;
	return have;
}

void *ctx_value(const ctx_t *c, const void *key)
{
	for (; c; c = c->parent) {
		if (c->kind == CTX__VALUE) {
			const struct ctx__value *v = (const struct ctx__value *)c;
			if (v->key == key)
				return v->val;
		}
	}
	return NULL;
}

