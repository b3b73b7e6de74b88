/* internal.h: the node types every goctx source shares, and their invariants.
 *
 * Design.
 *
 * One header `struct ctx` starts every node. Kinds:
 *   ROOT     Background, TODO: static, never done, no refcount.
 *   VALUE    key/val over a parent.
 *   WITHOUT  WithoutCancel: values of the parent, never done.
 *   CANCEL   a cancelable node (struct ctx__cnode); WithCancel, and
 *            WithDeadline under an earlier parent deadline.
 *   TIMER    a cancelable node with its own deadline (struct ctx__timer).
 *   AFTER    an after-func registration (struct ctx__after); it sits in a
 *            cancelable node's child list like a child (as Go's afterFuncCtx).
 *   MERGE    a cancelable node with more parents for cancellation (struct
 *            ctx__merge, merge.c: ctx_with_merge). It sits in its parent's
 *            child list like a CANCEL node, and each other context's list
 *            holds one of its entries:
 *   MLINK    an entry of a MERGE node (struct ctx__mlink, inside the MERGE
 *            node's allocation). A canceller that detaches an entry takes
 *            a reference on the MERGE node (not on the entry) and cancels
 *            it at the end of its op, like an after-func.
 *   EXT      a cancelable node that an upper module extends (struct
 *            ctx__ext, ext.c): a CANCEL node with a table of hooks for its
 *            format and its free. The signal contexts are EXT nodes.
 *
 * `src` of a node is the nearest cancelable node at or above it (itself for
 * CANCEL/TIMER), or NULL when the node can never be done. ctx_err() is
 * therefore one load of src->state, whatever the kind.
 *
 * References. `refs` counts: the creator's reference, each ctx_retain, each
 * cancel handle (a ctx_cancel_t * is the node's address and stands for one
 * reference), each child (a child holds its direct parent; a cancelable
 * child of a SHARDED node counts that in its shard instead), each after-func
 * registration still pending (holds the ctx it watches), and temporary
 * references a canceller or the timer thread holds while working on a node.
 * A parent's child list holds no reference: a node whose count drops to zero
 * unlinks itself from its parent's list (under the parent's lock) and from
 * the timer queue, then releases its parent.
 *
 * Locks. Each cancelable node has a small futex lock (`lock`) guarding its
 * child list (`children` and every listed node's `next`/`pprev`), the
 * descriptor `done`, and the write of `cause` and of the err bits of `state`.
 * The timer queue has one mutex (timer.c), never held with a node lock.
 * No two node locks are ever held together:
 * cancellation detaches a node's whole child list under its lock (taking a
 * temporary reference on each live child) and then works on the detached
 * children with no lock held, iteratively, so deep trees do not recurse.
 * A child whose count is already zero is left in the list: it is being
 * freed and unlinks itself once it gets the lock.
 *
 * state (atomic, per cancelable node):
 *   bits 0-7  err: 0, ECANCELED or ETIMEDOUT. Written once, under `lock`,
 *             with release order after `cause` and the descriptor write:
 *             pairs with the acquire load in ctx_err()/ctx_cause().
 *   BUSY      set with err while this node's detached subtree is still being
 *             cancelled by the thread that cancelled it; a later canceller
 *             of this node waits for it to clear, so that every
 *             ctx_cancel() returns with the whole subtree done, as Go's
 *             (which holds the parent's mutex across its children) does.
 *   WAITERS   some thread sleeps on the futex of `state`; whoever changes
 *             err or clears BUSY or PUBLISHING wakes them all.
 *   PUBLISHING set with err when the node has a done descriptor, cleared
 *             once the descriptor is written. Readers treat err as not yet
 *             visible while it is set and wait for it to clear, so that
 *             "ctx_err() != 0" and "the descriptor is readable" imply each
 *             other (Go's Err likewise waits for Done to be closed).
 *   SHARDED   the child list is sharded (below); set once, never cleared.
 *
 * Sharded child lists (list.c). A node whose lock link() finds taken
 * often (CTX__SHARD_AFTER times) swaps its one child list for a table of
 * CTX__NSHARDS shards, each on its own cache line with its own lock, list
 * and `kids` count, so that threads adding and removing children of one
 * shared parent (the server's root context) stop bouncing its line:
 *   - Install: under the node's lock, the old list becomes shard 0's (its
 *     entries have `shard` 0), `shards` replaces `children`, refs gets one
 *     reference for the table, then SHARDED is set (release). From then on
 *     `shards` is fixed, the node's lock no longer guards any list, and an
 *     entry's `shard` names the shard (and lock) whose list it is in.
 *   - Link: an entry goes into the shard of the linking thread (a per-thread
 *     index), under that shard's lock, after an acquire load of err under
 *     it. Cancel: err is published first (with BUSY: a sharded node always
 *     pushes its marker), then each shard's list is detached under its
 *     lock. A link whose shard section comes first is detached; one that
 *     comes after sees err. The node's lock is held around it all, so
 *     shard locks nest inside a node lock, never the other way round.
 *   - Kids: a cancelable child made under a SHARDED parent does not retain
 *     it in refs; it counts itself in its shard's `kids` (CTX__F_SHARD_REF,
 *     its `shard`) from birth to free, so making and freeing it writes only
 *     its shard's line. refs holds one reference for the table; no kid can
 *     be added once only that one is left (a kid is made by a holder of a
 *     reference counted in refs). The holder whose release finds refs at 2
 *     swaps it for KILLED|1 in one CAS (ctx__shard_drop); only that thread
 *     then moves each shard's count into refs (exchanging it for
 *     KIDS_DEAD) and drops the table's reference. A kid leaving a live
 *     shard counts it down and touches the node no more; one leaving a
 *     DEAD shard drops a reference of refs. Whoever takes refs (without
 *     KILLED) to 0 frees the node, as for any other.
 */
#ifndef GOCTX_INTERNAL_H
#define GOCTX_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "../os/os.h"
#include "goctx.h"

enum ctx__kind {
	CTX__ROOT,
	CTX__VALUE,
	CTX__WITHOUT,
	CTX__CANCEL,
	CTX__TIMER,
	CTX__AFTER,
	CTX__EXT,
	CTX__MERGE,
	CTX__MLINK,
};

#define CTX__ERR_MASK 0xffu
#define CTX__BUSY (1u << 8)
#define CTX__WAITERS (1u << 9)
#define CTX__PUBLISHING (1u << 10)
#define CTX__SHARDED (1u << 11)

#define CTX__REFS_KILLED (1u << 31) /* in refs of a SHARDED node, see above */
#define CTX__KIDS_DEAD (1u << 31)   /* in a shard's kids, see above */

/* struct ctx.flags */
#define CTX__F_SHARD_REF 1u /* the reference to parent is in its shard `shard`'s kids */

struct ctx__cnode;

/* Every node starts with this. */
struct ctx {
	_Atomic uint32_t refs;  /* see "References" above */
	uint8_t kind;           /* enum ctx__kind; fixed at creation */
	union {
		uint8_t todo;      /* ROOT: 1 for TODO */
		uint8_t contended; /* cancelable: link found its lock taken (under the lock) */
	};
	uint8_t shard;          /* the shard whose list (and lock) holds this entry in a
	                         * SHARDED src (0 otherwise); written by the linking thread
	                         * before the entry is shared (ctx__shard_adopt, ctx__link),
	                         * fixed after, so an unlinker reads it before any lock */
	uint8_t flags;          /* CTX__F_*; fixed at creation */
	struct ctx *parent;     /* held (one reference); NULL for ROOT */
	struct ctx__cnode *src; /* nearest cancelable node at or above; fixed */
};

/* A node that can sit in a cancelable node's child list. */
struct ctx__node {
	struct ctx base;
	struct ctx__node *next;   /* in parent src's list, or a canceller's work list */
	struct ctx__node **pprev; /* NULL when in no list; guarded by the parent src's lock */
};

struct ctx__cnode {
	struct ctx__node node;
	_Atomic uint32_t state;      /* err | BUSY | WAITERS, see above */
	_Atomic uint32_t lock;       /* 0 free, 1 held, 2 held with sleepers */
	int cause;                   /* before done: a TIMER's deadline cause; after: the cause */
	ctx__os_done_t done;         /* the done descriptor, made lazily; guarded by lock */
	union {
		struct ctx__node *children; /* !SHARDED: guarded by lock */
		struct ctx__shards *shards; /* SHARDED: fixed */
	};
};

#define CTX__NSHARDS 8
#define CTX__SHARD_AFTER 8 /* contended links before a node shards its list */
struct ctx__shard {
	_Atomic uint32_t lock;      /* guards head and its entries' next/pprev */
	_Atomic uint32_t kids;      /* CTX__F_SHARD_REF children of this shard */
	struct ctx__node *head;
	char pad[64 - 2 * sizeof(uint32_t) - sizeof(void *)];
};
struct ctx__shards {
	struct ctx__shard s[CTX__NSHARDS]; /* 64-byte aligned */
	void *raw;                         /* what ctx__alloc returned */
};

#if GOCTX_OS_LINUX && UINTPTR_MAX == UINT64_MAX
/* One cache line on 64-bit Linux (the POSIX backend's done descriptor is two
 * ints: 72 bytes there). */
_Static_assert(sizeof(struct ctx__cnode) == 64, "a cancelable node is 64 bytes");
#endif

struct ctx__timer {
	struct ctx__cnode c;
	ctx_time_t deadline;       /* fixed */
	/* Pairing-heap links (timer.c), guarded by the queue lock. */
	struct ctx__timer *hchild; /* first child */
	struct ctx__timer *hnext;  /* next sibling */
	struct ctx__timer *hprev;  /* previous sibling, or parent for a first child */
	/* armed <=> in the queue: the root, or hprev != NULL */
};

struct ctx__value {
	struct ctx base;
	const void *key;
	void *val;
	void (*free_val)(void *);
};

/* After-func registration states (struct ctx__after.state). */
enum {
	CTX__AFTER_PENDING,
	CTX__AFTER_RUNNING,
	CTX__AFTER_DONE,    /* fn has returned */
	CTX__AFTER_STOPPED, /* ctx_after_stop won: fn never runs */
	CTX__AFTER_LET_GO,  /* in a slot: stopped, and nobody touches the slot any more */
};
#define CTX__AFTER_MASK 0xffu

struct ctx__after {
	struct ctx__node node;       /* base.parent: the watched ctx, held until fn has run or
	                              * been stopped (NULL once fn has run); in a
	                              * slot, not held (the caller holds it) */
	_Atomic uint32_t state;      /* CTX__AFTER_* | WAITERS */
	bool slot;                   /* in the caller's ctx_after_slot_t (ctx_after_func_at);
	                              * fixed. Then refs is never counted down (a
	                              * canceller's try_retain may count it up) and
	                              * nobody frees the node; the last touch of the
	                              * library is a release store of DONE or LET_GO
	                              * to state, which ctx_after_stop waits for. */
	void (*fn)(void *);
	void *arg;
	pthread_t runner;            /* written before the RUNNING release-CAS */
};

/* A merged context (merge.c). Its lock also guards `nlinked` and, while it
 * is live, its entries' links (besides each other context's lock). */
struct ctx__merge;
struct ctx__mlink {
	struct ctx__node node;   /* in the other's src list; base.parent: the
	                          * other, held until the entry is let go of
	                          * (NULL then); base.refs unused */
	struct ctx__merge *m;    /* fixed */
	int err, cause;          /* the op's, written by the op that detached it */
};
struct ctx__merge {
	struct ctx__cnode c;
	ctx_time_t deadline;     /* earliest deadline of the others; fixed */
	bool has_deadline;       /* fixed */
	size_t n;                /* number of others (for the format); fixed */
	size_t nlinked;          /* entries [0, nlinked) were linked; fixed after construction */
	struct ctx__mlink links[];
};

/* Who a detaching canceller must hold for list entry e: the MERGE node for
 * an entry, e itself otherwise. */
static inline struct ctx *ctx__holder(struct ctx__node *e)
{
	return e->base.kind == CTX__MLINK ? &((struct ctx__mlink *)e)->m->c.node.base : &e->base;
}

/* An EXT node (ext.c): a CANCEL node (everything in the core treats it as
 * one) plus the hooks of the module that made it, which lays out its own
 * fields after this header. */
struct ctx__ext;
struct ctx__ext_ops {
	/* This layer's part of ctx_format (".WithSignals([SIGINT])"), written
	 * as snprintf does; returns the whole length. */
	int (*format)(const struct ctx__ext *e, char *buf, size_t size);
	/* Called once, in the thread that drops the last reference, before the
	 * core unlinks and frees the node (it must not free it). NULL: none. */
	void (*freed)(struct ctx__ext *e);
};
struct ctx__ext {
	struct ctx__cnode c;
	const struct ctx__ext_ops *ops; /* fixed */
};

/* The bit of a cause that says "signal" (CTX_CAUSE_SIGNAL in goctx/signal.h,
 * which the core does not include): ctx_strerror words it. */
#define CTX__CAUSE_SIGNAL_BIT 0x40000000

/* ---- The core's files, bottom to top. Each uses only those above it in
 * this list, except the tree (ctx.c, list.c, cancel.c, timer.c, after.c,
 * fd.c, merge.c, ext.c), whose files call each other: a constructor arms a timer, the timer
 * thread cancels, a cancel unlinks and frees. ---- */

/* ---- alloc.c: every allocation goes through ctx_set_allocator's pair ---- */
void *ctx__alloc(size_t size);
void ctx__free(void *ptr);

/* ---- lock.c: the per-node futex lock ---- */
void ctx__lock_slow(_Atomic uint32_t *l);
void ctx__unlock_slow(_Atomic uint32_t *l);

static inline void ctx__lock(_Atomic uint32_t *l)
{
	uint32_t z = 0;
	if (!atomic_compare_exchange_strong_explicit(l, &z, 1, memory_order_acquire,
	                                             memory_order_relaxed))
		ctx__lock_slow(l);
}

/* ctx__lock, returning whether the lock was found taken. */
static inline bool ctx__lock_contended(_Atomic uint32_t *l)
{
	uint32_t z = 0;
	if (atomic_compare_exchange_strong_explicit(l, &z, 1, memory_order_acquire,
	                                            memory_order_relaxed))
		return false;
	ctx__lock_slow(l);
	return true;
}

static inline void ctx__unlock(_Atomic uint32_t *l)
{
	if (atomic_exchange_explicit(l, 0, memory_order_release) != 1)
		ctx__unlock_slow(l);
}

/* ---- clock.c ---- */
void ctx__clock_set_fake(ctx_time_t (*now)(void));
bool ctx__clock_is_fake(void);
/* CLOCK_REALTIME in ns, or the test wall clock (ctx__set_wall_clock). */
ctx_time_t ctx__wall_now(void);
/* Saturating a + b for any b. */
ctx_time_t ctx__add_sat(ctx_time_t a, ctx_duration_t b);

/* ---- word.c ---- */
/* Watch word for a few microseconds (never on a single CPU, never past
 * `until` when >= 0) until ready(*word); true with *out set if it became
 * ready. Every blocking wait of the library spins through this first. */
bool ctx__spin(_Atomic uint32_t *word, bool (*ready)(uint32_t), ctx_time_t until, uint32_t *out);
/* Sleep on a state word (a cnode's state or an after's) until
 * ready(state) holds or the absolute CLOCK_MONOTONIC time `until`
 * passes (-1: no limit). Returns the last state seen. */
uint32_t ctx__wait_word(_Atomic uint32_t *word, bool (*ready)(uint32_t), ctx_time_t until);
/* The state of c once no PUBLISHING is in progress (waits if one is). */
uint32_t ctx__published(const struct ctx__cnode *c, uint32_t s);

/* ---- read.c: ctx_err, ctx_cause, ctx_deadline, ctx_value (public) ---- */
/* ---- wait.c: ctx_wait, ctx_sleep (public) ---- */
/* ---- format.c: ctx_strerror, ctx_format (public) ---- */

/* ---- leak.c: the GOCTX_LEAKS report ---- */
/* Whether GOCTX_LEAKS is on (read once, before the first node). */
bool ctx__leak_tracking(void);
/* A node tracked for the report (on only); freed by ctx__leak_free. */
void *ctx__leak_alloc(size_t size, const void *where);
void ctx__leak_free(void *node);

/* ---- cache.c: nodes, through a per-thread cache of freed ones ---- */
/* A node of `size` bytes for a constructor called from `where`. */
void *ctx__node_alloc(size_t size, const void *where);
/* Free a node made by ctx__node_alloc; its header (kind) must be intact:
 * the kind says the size (see cache.c). */
void ctx__node_free(void *node);
/* Stop caching on this thread (and flush): for threads that never exit. */
void ctx__cache_off(void);

/* ---- list.c (the tree): a cancelable node's child list, one or sharded
 * (see SHARDED above) ---- */
/* Link n under src unless src is done; returns src's err (0: linked). Sets
 * *cause to src's cause when done. */
int ctx__link(struct ctx__cnode *src, struct ctx__node *n, int *cause);
/* Unlink n from the child list of src (the parent's src), if still linked;
 * returns whether it was (false: a canceller detached it first). */
bool ctx__unlink(struct ctx__cnode *src, struct ctx__node *n);
/* A new cancelable child of SHARDED parent (itself the child's parent):
 * count the child in parent's shard (setting its shard and
 * CTX__F_SHARD_REF) instead of retaining parent. */
void ctx__shard_adopt(struct ctx *child, struct ctx__cnode *parent);
/* A CTX__F_SHARD_REF child of p is being freed: true when p must now be
 * freed by the caller (its count is zero). */
bool ctx__shard_leave(struct ctx__cnode *p, unsigned shard);
/* Drop one reference to SHARDED p: true when the caller must free p. */
bool ctx__shard_drop(struct ctx__cnode *p);
/* Free c's table (c is being freed, SHARDED). */
void ctx__shard_free(struct ctx__cnode *c);

/* ---- ctx.c (the tree) ---- */
/* A cancelable node of `size` bytes (a struct starting with struct
 * ctx__cnode) and kind under parent, not linked yet: one reference for the
 * caller and, with handle, one for the cancel handle; the parent retained;
 * cause 0. NULL with errno ENOMEM. */
struct ctx__cnode *ctx__cnode_new(size_t size, enum ctx__kind kind, ctx_t *parent, bool handle,
                                  const void *where);
/* Link cn under its parent's src (when the parent can be done); under a done
 * parent cn is born done with its err and cause. Returns the err it was
 * born with. */
int ctx__cnode_link(struct ctx__cnode *cn);
/* Take a reference unless the count is already zero (the node is being
 * freed). Relaxed: callers find c under a lock (the parent's, or the timer
 * queue's) that the freeing thread must also take before the memory goes,
 * and every field they then use is ordered by c's own lock or state. */
static inline bool ctx__try_retain(struct ctx *c)
{
	uint32_t n = atomic_load_explicit(&c->refs, memory_order_relaxed);
	while ((n & ~CTX__REFS_KILLED) != 0) {
		if (atomic_compare_exchange_weak_explicit(&c->refs, &n, n + 1, memory_order_relaxed,
		                                          memory_order_relaxed))
			return true;
	}
	return false;
}
/* Free a node whose count is zero (or that only the caller can reach);
 * returns its parent: with *owned false, the caller must drop a reference
 * to it; with *owned true, its count is zero too and the caller frees it
 * (NULL: nothing more to do). */
struct ctx *ctx__destroy(struct ctx *c, bool *owned);

/* ---- cancel.c (the tree) ---- */
/* Cancel c with err and cause (cause CTX__TIMER_CAUSE: the timer's own;
 * any cause a user gives is non-zero). When it returns, c and all its
 * descendants are done and the after-funcs this call triggered have run.
 * unlink: also leave the parent's list. */
#define CTX__TIMER_CAUSE 0
void ctx__cancel(struct ctx__cnode *c, int err, int cause, bool unlink);

/* ---- merge.c (the tree) ---- */
/* m has just been marked done (by cancel_one): let go of every entry. */
void ctx__merge_done(struct ctx__merge *m);
/* m's count is zero and it may be live: let go of every entry. */
void ctx__merge_freed(struct ctx__merge *m);
/* An op that detached entry l runs this at its end: cancel l->m with the
 * op's err and cause, then drop the reference the op took on it. */
void ctx__merge_fire(struct ctx__mlink *l);

/* ---- ext.c (the tree) ---- */
/* A cancelable child of parent of `size` bytes (at least sizeof(struct
 * ctx__ext); the bytes after the header are the caller's, uninitialised)
 * with hooks `ops`, like ctx_with_cancel otherwise (born done under a done
 * parent). NULL + errno (EINVAL, ENOMEM) on failure. */
struct ctx__ext *ctx__ext_new(ctx_t *parent, size_t size, const struct ctx__ext_ops *ops,
                              ctx_cancel_t **cancel, const void *where);
/* Run e's freed hook (ctx__destroy calls it). */
void ctx__ext_freed(struct ctx__ext *e);

/* ---- timer.c (the tree) ---- */
/* Arm t (not yet armed; left disarmed if it is done); 0 or an errno from
 * starting the thread. */
int ctx__timer_arm(struct ctx__timer *t);
/* Disarm t if armed. */
void ctx__timer_disarm(struct ctx__timer *t);
/* The service hook: lets an upper module have work run on the library's
 * one thread (the timer thread). ctx__service_start(fn) registers fn (one
 * per process; a second call with the same fn is a no-op, another fn:
 * EBUSY) and starts the thread if needed (0, or EAGAIN/errno from
 * pthread_create). ctx__service_wake() makes the thread call fn once more,
 * soon, with no lock held; it only stores to two atomic words and issues
 * one futex wake, so it is async-signal-safe on Linux (the signal handler
 * of src/signal calls it). Wakes made while fn runs make it run again. */
int ctx__service_start(void (*fn)(void));
void ctx__service_wake(void);

#endif
