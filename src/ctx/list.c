/* list.c: a cancelable node's child list: one list under the node's lock,
 * or, once the lock is found taken often, CTX__NSHARDS lists each under a
 * lock of its own, with the children's references to the node counted per
 * shard too. The rules are in internal.h ("Sharded child lists"); in short:
 *   - `shards` and every shard's head are reached only after an acquire
 *     load of state saw SHARDED (the install's release fetch_or);
 *   - an entry's next/pprev are guarded by the lock of the list it is in:
 *     the node's before SHARDED, its shard's (`shard`) after;
 *   - whether a SHARDED node is freed is decided on one word, refs, whose
 *     KILLED bit says that the kids' counts have moved into it; nothing
 *     touches the node after its own step down (ctx__shard_drop,
 *     ctx__shard_leave) unless that step said it is the last.
 * Part of the tree: called by ctx.c (constructors, free), cancel.c
 * (detaching), after.c and merge.c (their entries). */
#include <errno.h>
#include <stdint.h>

#include "internal.h"
#include "testing.h"

/* The shard of the calling thread: threads are spread over the shards in
 * the order they first link under a sharded node. */
static _Atomic uint32_t next_shard;
static _Thread_local uint8_t my_shard_plus1 __attribute__((tls_model("initial-exec")));

static unsigned my_shard(void)
{
	unsigned s = my_shard_plus1;
	if (__builtin_expect(s == 0, 0)) {
		s = 1 + atomic_fetch_add_explicit(&next_shard, 1, memory_order_relaxed) % CTX__NSHARDS;
		my_shard_plus1 = (uint8_t)s;
	}
	return s - 1;
}

static bool sharded(const struct ctx__cnode *c)
{
	return atomic_load_explicit(&c->state, memory_order_acquire) & CTX__SHARDED;
}

static void insert(struct ctx__node **head, struct ctx__node *n)
{
	n->next = *head;
	if (n->next)
		n->next->pprev = &n->next;
	*head = n;
	n->pprev = head;
}

static bool remove_entry(struct ctx__node *n)
{
	if (!n->pprev)
		return false;
	*n->pprev = n->next;
	if (n->next)
		n->next->pprev = n->pprev;
	n->pprev = NULL;
	return true;
}

/* Under src's lock, not SHARDED: swap the list for a table. Quietly keeps
 * the one list when there is no memory. */
static void install(struct ctx__cnode *src)
{
	void *raw = ctx__alloc(sizeof(struct ctx__shards) + 63);
	if (!raw)
		return;
	struct ctx__shards *t = (struct ctx__shards *)(((uintptr_t)raw + 63) & ~(uintptr_t)63);
	t->raw = raw;
	for (int i = 0; i < CTX__NSHARDS; i++) {
		atomic_init(&t->s[i].lock, 0);
		atomic_init(&t->s[i].kids, 0);
		t->s[i].head = NULL;
	}
	/* The old entries all have shard 0. */
	t->s[0].head = src->children;
	if (t->s[0].head)
		t->s[0].head->pprev = &t->s[0].head;
	/* The table's reference: the caller (a linker) holds another, so the
	 * count cannot be at its end here. */
	atomic_fetch_add_explicit(&src->node.base.refs, 1, memory_order_relaxed);
	src->shards = t;
	atomic_fetch_or_explicit(&src->state, CTX__SHARDED, memory_order_release);
}

int ctx__link(struct ctx__cnode *src, struct ctx__node *n, int *cause)
{
	if (!sharded(src)) {
		bool contended = ctx__lock_contended(&src->lock);
		/* err and SHARDED are written under this lock: relaxed is enough. */
		uint32_t st = atomic_load_explicit(&src->state, memory_order_relaxed);
		if (!(st & CTX__SHARDED)) {
			int err = (int)(st & CTX__ERR_MASK);
			if (err) {
				*cause = src->cause;
			} else {
				n->base.shard = 0;
				insert(&src->children, n);
				if (contended && ++src->node.base.contended >= CTX__SHARD_AFTER) {
					src->node.base.contended = 0;
					install(src);
				}
			}
			ctx__unlock(&src->lock);
			return err;
		}
		ctx__unlock(&src->lock);
	}
	/* A CTX__F_SHARD_REF child goes into the shard that counts it. */
	if (!(n->base.flags & CTX__F_SHARD_REF))
		n->base.shard = (uint8_t)my_shard();
	struct ctx__shard *sh = &src->shards->s[n->base.shard];
	ctx__lock(&sh->lock);
	/* Acquire: a cancel publishes err (release) before it detaches this
	 * shard under this lock; see internal.h. */
	int err = (int)(atomic_load_explicit(&src->state, memory_order_acquire) & CTX__ERR_MASK);
	if (err)
		*cause = src->cause; /* written before err's release */
	else
		insert(&sh->head, n);
	ctx__unlock(&sh->lock);
	return err;
}

bool ctx__unlink(struct ctx__cnode *src, struct ctx__node *n)
{
	if (!sharded(src)) {
		ctx__lock(&src->lock);
		if (!(atomic_load_explicit(&src->state, memory_order_relaxed) & CTX__SHARDED)) {
			bool linked = remove_entry(n);
			ctx__unlock(&src->lock);
			return linked;
		}
		ctx__unlock(&src->lock);
	}
	_Atomic uint32_t *lock = &src->shards->s[n->base.shard].lock;
	ctx__lock(lock);
	bool linked = remove_entry(n);
	ctx__unlock(lock);
	return linked;
}

void ctx__shard_adopt(struct ctx *child, struct ctx__cnode *parent)
{
	unsigned i = my_shard();
	child->shard = (uint8_t)i;
	child->flags |= CTX__F_SHARD_REF;
	/* The creator holds parent through refs, so no free is deciding now. */
	atomic_fetch_add_explicit(&parent->shards->s[i].kids, 1, memory_order_relaxed);
}

/* refs went from 2 (a holder's and the table's) to KILLED|1 in the
 * caller's CAS: nobody holds p but its kids, and nobody can add one. Move
 * the kids' counts into refs (a kid leaving a DEAD shard drops a reference
 * of refs instead), then drop the table's. */
static bool kill(struct ctx__cnode *p)
{
	uint32_t kids = 0;
	for (int i = 0; i < CTX__NSHARDS; i++)
		kids += atomic_exchange_explicit(&p->shards->s[i].kids, CTX__KIDS_DEAD,
		                                 memory_order_acq_rel);
	/* kids - 1 wraps to "minus one" when there are none: refs is
	 * modular, and its KILLED bit stays. */
	uint32_t old = atomic_fetch_add_explicit(&p->node.base.refs, kids - 1, memory_order_acq_rel);
	return ((old + kids - 1) & ~CTX__REFS_KILLED) == 0;
}

bool ctx__shard_drop(struct ctx__cnode *p)
{
	_Atomic uint32_t *refs = &p->node.base.refs;
	uint32_t v = atomic_load_explicit(refs, memory_order_relaxed);
	for (;;) {
		if (v & CTX__REFS_KILLED)
			return (atomic_fetch_sub_explicit(refs, 1, memory_order_acq_rel) &
			        ~CTX__REFS_KILLED) == 1;
		/* Ours and the table's: the last holder kills (in the same CAS,
		 * so that no other thread can decide anything about p before). */
		uint32_t want = v == 2 ? (CTX__REFS_KILLED | 1) : v - 1;
		if (atomic_compare_exchange_weak_explicit(refs, &v, want, memory_order_acq_rel,
		                                          memory_order_relaxed))
			return v == 2 && kill(p);
	}
}

bool ctx__shard_leave(struct ctx__cnode *p, unsigned shard)
{
	_Atomic uint32_t *kids = &p->shards->s[shard].kids;
	uint32_t v = atomic_load_explicit(kids, memory_order_relaxed);
	/* Live shard: count down and touch p no more (release: pairs with the
	 * killer's exchange, which frees p after it). */
	while (!(v & CTX__KIDS_DEAD))
		if (atomic_compare_exchange_weak_explicit(kids, &v, v - 1, memory_order_release,
		                                          memory_order_relaxed))
			return false;
	return (atomic_fetch_sub_explicit(&p->node.base.refs, 1, memory_order_acq_rel) &
	        ~CTX__REFS_KILLED) == 1;
}

void ctx__shard_free(struct ctx__cnode *c) { ctx__free(c->shards->raw); }

size_t ctx__children_count(const ctx_t *c)
{
	struct ctx__cnode *s = c->src;
	if (!s)
		return 0;
	size_t n = 0;
	ctx__lock(&s->lock);
	if (atomic_load_explicit(&s->state, memory_order_relaxed) & CTX__SHARDED) {
		for (int i = 0; i < CTX__NSHARDS; i++) {
			struct ctx__shard *sh = &s->shards->s[i];
			ctx__lock(&sh->lock);
			for (struct ctx__node *e = sh->head; e; e = e->next)
				n++;
			ctx__unlock(&sh->lock);
		}
	} else {
		for (struct ctx__node *e = s->children; e; e = e->next)
			n++;
	}
	ctx__unlock(&s->lock);
	return n;
}

bool ctx__sharded(const ctx_t *c) { return c->src && sharded(c->src); }

int ctx__shard_now(ctx_t *c)
{
	struct ctx__cnode *s = c->src;
	if (!s || s != (struct ctx__cnode *)c)
		return EINVAL;
	ctx__lock(&s->lock);
	if (!(atomic_load_explicit(&s->state, memory_order_relaxed) & CTX__SHARDED))
		install(s);
	bool ok = atomic_load_explicit(&s->state, memory_order_relaxed) & CTX__SHARDED;
	ctx__unlock(&s->lock);
	return ok ? 0 : ENOMEM;
}
