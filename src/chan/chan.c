/* chan.c: channels and select (Go's hchan, sudog and selectgo, on futexes).
 *
 * Design.
 *
 * A channel (struct chan) is a ring buffer of `cap` elements (below) plus
 * two wait queues, sendq and recvq, of blocked cases. Its futex lock `lock`
 * (the ctx__lock of internal.h) guards everything in it but `refs`, the ring
 * and the fixed fields (elem_size, cap, stride): closed, both queues, and
 * the next/prev links and `queued` writes of every sudog listed in them.
 *
 * A thread that must block in send, receive or select (all three are one
 * code path, chan__select) owns one waiter (struct chan__waiter) and one
 * sudog per case (struct chan__sudog), on its own stack (or heap for more
 * than CHAN__STACK_CASES cases). Each channel case's sudog is linked into
 * its channel's sendq or recvq; each context case is hooked with
 * ctx_after_func_at into its sudog's own slot, and only once the select
 * must block (a select that finds a case ready never touches the context
 * beyond one ctx_done load). The waiter's `state` word is the only thing
 * the thread sleeps on:
 *
 *   phase WAITING -> CLAIMED -> DONE, plus a SLEEP bit.
 *
 * Whoever moves the phase from WAITING to CLAIMED with a CAS (a peer that
 * completes a case, chan_close, a context's after-func, or the waiter itself
 * at its timeout) owns the outcome: it alone writes the waiter's result
 * fields (fired, err, ok) and the receive destination, then publishes them
 * with the release exchange to DONE (chan__finish); the waiter's acquire
 * load of DONE pairs with it. A party that loses the CAS leaves the waiter
 * alone. The waiter sets SLEEP (CAS) before each futex wait, so a finisher
 * makes the wake syscall only when the waiter may be asleep.
 *
 * Before it sets SLEEP the waiter spins (chan__spin) until DONE, not merely
 * until CLAIMED: a claimer publishes DONE only after unlocking, and a
 * waiter that slept at CLAIMED cost a futex wait and a wake per hand-off.
 * The spin is bounded (CHAN__SPIN_NS), skipped on one CPU, and adapts per
 * thread: it yields the CPU after chan__spin_budget checks, a budget that
 * doubles when waits end while spinning (the peer runs on another CPU) and
 * halves when they end only after a yield that ran another thread (the
 * peer shares this CPU; spinning would only delay it). The budget is a
 * thread's own (_Thread_local): a guess, never a correctness matter. The
 * ring watch of a buffered send or receive (below) is the same spin.
 *
 * Layout: a waiter has a cache line of its own and its sudogs start on
 * the next one (CHAN__BLOCK), so the waiter's spinning reads of `state`
 * do not pull back the line of the sudog its peer is unlinking.
 *
 * Who owns the waiter's memory: the blocked thread, until it returns. It
 * does not return before DONE, and after DONE it still (1) stops every
 * after-func it registered (ctx_after_stop waits for a running one), and
 * (2) unlinks every sudog still queued, under that channel's lock. So a
 * party holding a channel lock may touch any sudog in the queue and its
 * waiter; a claimer may touch its sudog and waiter until its exchange to
 * DONE. The claimer's futex wake after that exchange may hit memory the
 * waiter has already left: that is one harmless spurious wake for whatever
 * waits there next, and every wait here re-checks its word in a loop.
 *
 * A channel case is reported as fired only by the party that claimed the
 * waiter through chan__take, which unlinks that sudog before DONE: so the
 * waiter's cleanup skips the fired case's sudog altogether.
 *
 * `queued` (atomic) lets the waiter skip the lock for sudogs already taken
 * off their queue: it is written only under the channel lock, by unlinking
 * (false) as the unlinker's very last touch of a sudog it did not claim
 * (release), and the waiter reads it with acquire after DONE. A peer that
 * finds a sudog whose waiter is no longer WAITING unlinks it and moves on
 * (Go's selectDone): queues are cleaned lazily by whoever walks them.
 *
 * Channel invariants (as Go's): recvq non-empty (of live waiters) only when
 * the ring is empty, sendq only when it is full, but for the moments a kick
 * is on its way (below); after close, both queues are empty and stay so.
 *
 * Select takes the locks of all its channels in address order (each once),
 * so two selects over the same channels cannot deadlock and a select sees
 * all its channels at one instant. No other lock is taken while a channel
 * lock is held (ctx_done is one atomic load; after-funcs are registered,
 * stopped and woken with no channel lock held), and wakes (futex syscalls)
 * are made after unlocking. It then counts the ready cases and keeps
 * each with probability 1/count (reservoir sampling): a uniform pick among
 * the ready ones, without an array.
 *
 * Buffered channels (cap > 0) keep their elements in a lock-free bounded
 * ring (Vyukov's MPMC queue): `tail` (the next position to write; bit 63 is
 * the closed bit, set once by chan_close under the lock) and `head` (the
 * next to read), each on its own cache line, and per slot a sequence word:
 * 2*pos when the slot is free for the write at position pos, 2*pos + 1 once
 * that write is published (release; the reader's acquire pairs with it),
 * 2*(pos + cap) once read. (The factor 2 keeps a capacity of 1 unambiguous.)
 * A writer claims its position with a CAS on tail, which fails once the
 * closed bit is set, so no value enters after close; a reader claims with a
 * CAS on head. A reader that finds its slot not yet published while tail is
 * past it waits for the writer to finish (a few instructions), and a writer
 * likewise for a reader still copying out: so "empty" means no send is
 * claimed and "full" no receive, as under a lock, and closed and drained
 * means tail (without the bit) == head.
 *
 * Send, receive and try-forms on a buffered channel first try the ring with
 * no lock; the channel lock is taken only to block, to close, or to hand
 * off to blocked waiters. Blocked waiters (sudogs in recvq / sendq, counted
 * in the queue's `n`) are served by "kicks": whoever publishes a value (or
 * frees a slot) claimed its position with a seq_cst CAS on tail (head) and,
 * once done with the slot, reads recvq.n (sendq.n) with a seq_cst load; a
 * thread that queues a sudog increments n (seq_cst), issues a seq_cst
 * fence and then looks at the ring's counters again. So either the
 * publisher's load sees the waiter or the waiter's look sees the claim (the
 * store-buffer pattern over the total order of seq_cst operations: no
 * fence on the publisher's side, whose CAS is a locked instruction anyway).
 * A waiter that sees a claim whose slot is not yet published (or freed)
 * waits in the ring code for those few instructions, as any reader does.
 * Whoever sees the other kicks: under the lock, while a live waiter and a
 * ready ring coexist, claim the waiter and do its operation on the ring on
 * its behalf (the value goes straight to its destination). If the ring
 * moved in between (another thread took the value or the slot), the
 * claimed waiter is told to retry (CHAN__RETRY): it wakes, cleans up and
 * runs its select again; nothing was taken on its behalf, so nothing is
 * lost. Unbuffered channels use the lock for every operation, as before.
 *
 * Who owns what, in short: the ring's slots belong to whoever claimed their
 * position (CAS on tail or head) until its release store of the slot's
 * sequence word; the queues, `closed` and the sudog links to the channel
 * lock; a waiter's results to its claimer until the release exchange to
 * DONE; the waiter and sudog memory to the blocked thread; the spin budget
 * to its thread. Atomic pairs: slot sequence release (writer, reader) with
 * the other side's acquire load; CAS on tail/head (seq_cst) with the
 * waiter's seq_cst fence after its seq_cst increment of the queue's n;
 * chan__finish's release exchange with the waiter's acquire load of DONE;
 * unlink's release store of `queued` with the cleanup's acquire load; the
 * closed bit's seq_cst fetch_or with the readers' acquire load of tail.
 */
#include <errno.h>
#include <sched.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "goctx/chan.h"
#include "../ctx/internal.h"
#include "testing.h"

#define CHAN__STACK_CASES 8
#define CHAN__CLOSED_BIT ((uint64_t)1 << 63)
#define CHAN__RETRY (-1) /* internal waiter result: run the select again */
#define CHAN__SPIN_NS (20 * CTX_MICROSECOND)

enum {
	CHAN__WAITING = 0,
	CHAN__CLAIMED = 1,
	CHAN__DONE = 2,
	CHAN__PHASE = 3,
	CHAN__SLEEP = 4, /* the waiter may be in futex_wait */
};

/* A blocked thread; see "Design". */
struct chan__waiter {
	_Atomic uint32_t state; /* phase | SLEEP; the futex word */
	size_t fired;           /* result: the case that fired, or CHAN_NONE */
	int err;                /* result: 0, EPIPE, ETIMEDOUT, ENOMEM */
	bool ok;                /* result for a receive case */
};

/* One case of a blocked thread. A channel case uses the queue fields, a
 * DONE case the after-func slot (the registration lives here: hooking a
 * context allocates nothing). */
struct chan__sudog {
	struct chan__waiter *w; /* fixed while blocked */
	uint32_t index;         /* case index reported as fired (n <= UINT32_MAX) */
	_Atomic bool queued;    /* SEND, RECV: in a channel queue; see "Design" */
	union {
		struct { /* SEND, RECV */
			struct chan__sudog *next, *prev; /* in a channel queue; its lock */
			void *elem; /* SEND: source; RECV: destination or NULL */
		};
		ctx_after_slot_t slot; /* DONE: ctx_after_func_at's storage */
	};
	ctx_after_t *stop; /* DONE: the registration's handle, or NULL */
};

/* A blocked thread's waiter and sudogs: the waiter on a cache line of its
 * own, the sudogs from the next line on. The waiter spins reading its
 * state word while a peer completes the wait (claim, unlink, copy,
 * finish); with the first sudog in the state's line (tried), each of the
 * peer's writes to the sudog met the line pulled back by those reads, and
 * chan_pingpong_unbuffered got slower. */
#define CHAN__BLOCK(k)                                                                   \
	struct {                                                                         \
		_Alignas(64) struct chan__waiter w;                                      \
		_Alignas(64) struct chan__sudog sg[k];                                   \
	}

struct chan__waitq {
	struct chan__sudog *first, *last;
	_Atomic uint32_t n; /* sudogs queued; written under the lock, read by kicks */
};

struct chan {
	_Atomic uint32_t lock;   /* ctx__lock: guards all below but refs and fixed fields */
	_Atomic uint32_t refs;   /* references; the last release frees */
	size_t elem_size;        /* fixed */
	size_t cap;              /* fixed; 0: unbuffered */
	bool closed;             /* set once by chan_close */
	struct chan__waitq sendq; /* blocked senders (their sudogs) */
	struct chan__waitq recvq; /* blocked receivers */
	size_t stride;           /* fixed; bytes per ring slot (buffered) */
	char pad0[64];
	_Atomic uint64_t tail;   /* buffered: next write position | CLOSED_BIT */
	char pad1[64];
	_Atomic uint64_t head;   /* buffered: next read position */
	char pad2[64];
	/* buffered: cap slots of stride bytes: a sequence word, then the element */
	_Alignas(max_align_t) unsigned char buf[];
};

/* ---- Small helpers. --------------------------------------------------- */

static inline void chan__copy(void *dst, const void *src, size_t n)
{
	/* memcpy with a NULL pointer is undefined even for n == 0. The usual
	 * element sizes get a copy of constant size (a move or two, inline)
	 * instead of a call. */
	if (!n || !dst)
		return;
	switch (n) {
	case 4:
		memcpy(dst, src, 4);
		break;
	case 8:
		memcpy(dst, src, 8);
		break;
	case 16:
		memcpy(dst, src, 16);
		break;
	default:
		memcpy(dst, src, n);
		break;
	}
}

/* ---- Spinning before a sleep. ----------------------------------------- */

/* How many checks (a pause each) a spin makes before its first yield: per
 * thread, adapted to what the last spins met. A wait that ended while
 * spinning, or after yields that gave the CPU to nobody (they came back at
 * once), means the peer runs on another CPU: spin longer first (double the
 * budget, up to the maximum). One that ended after a yield that ran
 * another thread means the peer shares this CPU or was preempted, and
 * spinning just burns the time it needs: yield sooner (halve the budget,
 * down to the minimum). */
#define CHAN__SPIN_MIN 2
#define CHAN__SPIN_MAX 64
#define CHAN__YIELD_RAN_NS (1 * CTX_MICROSECOND) /* a yield this long ran someone */
static _Thread_local unsigned chan__spin_budget = CHAN__SPIN_MAX;
static atomic_bool chan__no_spin; /* testing.h: chan__set_spin(false) */

void chan__set_spin(bool on)
{
	atomic_store_explicit(&chan__no_spin, !on, memory_order_relaxed);
}

/* Spin until ready(arg, slow) or CHAN__SPIN_NS pass (or `until`, absolute
 * CLOCK_MONOTONIC ns, if >= 0): chan__spin_budget checks, then a yield
 * after every 16 more (the peer may be waiting for this CPU: more runnable
 * threads than CPUs); slow is true once per 16 checks. Never on a single
 * CPU. true once ready. */
static inline bool chan__spin(bool (*ready)(void *arg, bool slow), void *arg, ctx_time_t until)
{
	if (ctx__os_ncpu() < 2 || atomic_load_explicit(&chan__no_spin, memory_order_relaxed))
		return false;
	unsigned budget = chan__spin_budget;
	for (unsigned i = 0; i < budget; i++) {
		if (ready(arg, false)) {
			if (budget < CHAN__SPIN_MAX)
				chan__spin_budget = budget * 2;
			return true;
		}
		ctx__os_relax();
	}
	ctx_time_t now = ctx__os_now(), stop = now + CHAN__SPIN_NS;
	if (until >= 0 && until < stop)
		stop = until;
	bool ran = false; /* a yield gave the CPU to another thread */
	for (;;) {
		sched_yield();
		ctx_time_t then = now;
		now = ctx__os_now();
		ran |= now - then >= CHAN__YIELD_RAN_NS;
		for (int i = 0; i < 16; i++) {
			if (ready(arg, i == 15)) {
				if (ran)
					chan__spin_budget = budget > CHAN__SPIN_MIN ? budget / 2 : budget;
				else if (budget < CHAN__SPIN_MAX)
					chan__spin_budget = budget * 2;
				return true;
			}
			ctx__os_relax();
		}
		now = ctx__os_now();
		if (now >= stop)
			return false;
	}
}

/* ---- The ring of a buffered channel (no lock). ------------------------ */

static inline _Atomic uint64_t *chan__seq(struct chan *c, uint64_t pos)
{
	return (_Atomic uint64_t *)(void *)(c->buf + (size_t)(pos % c->cap) * c->stride);
}

static inline unsigned char *chan__slot_elem(_Atomic uint64_t *seq)
{
	return (unsigned char *)(void *)seq + sizeof(uint64_t);
}

/* One step of waiting out another thread's claimed slot (it is between
 * two of its own instructions, unless it was preempted there: then give
 * it the CPU). */
static void chan__ring_pause(unsigned *spins)
{
	if (++*spins % 128 == 0)
		sched_yield();
	else
		ctx__os_relax();
}

/* Write *elem: 0, EAGAIN (full), EPIPE (closed). */
static int chan__ring_send(struct chan *c, const void *elem)
{
	unsigned spins = 0;
	uint64_t pos = atomic_load_explicit(&c->tail, memory_order_relaxed);
	for (;;) {
		if (pos & CHAN__CLOSED_BIT)
			return EPIPE;
		_Atomic uint64_t *sq = chan__seq(c, pos);
		/* Acquire: pairs with the release of the reader that freed it. */
		uint64_t seq = atomic_load_explicit(sq, memory_order_acquire);
		int64_t d = (int64_t)(seq - 2 * pos);
		if (d == 0) {
			/* seq_cst: the publisher's half of the kick protocol
			 * (see "Design"); a locked instruction anyway. */
			if (atomic_compare_exchange_weak_explicit(&c->tail, &pos, pos + 1,
			                                          memory_order_seq_cst,
			                                          memory_order_relaxed)) {
				chan__copy(chan__slot_elem(sq), elem, c->elem_size);
				/* Release: the element before the sequence. */
				atomic_store_explicit(sq, 2 * pos + 1, memory_order_release);
				return 0;
			}
			continue; /* pos reloaded by the CAS */
		}
		uint64_t now = atomic_load_explicit(&c->tail, memory_order_relaxed);
		if (d > 0 || now != pos) {
			pos = now; /* another writer took pos */
			continue;
		}
		/* The slot holds the value of the lap before: full, unless a
		 * reader has claimed it and is still copying it out. */
		if (atomic_load_explicit(&c->head, memory_order_acquire) + c->cap > pos) {
			chan__ring_pause(&spins);
			continue;
		}
		return EAGAIN;
	}
}

/* Read into elem (may be NULL): 0, EAGAIN (empty), EPIPE (closed and
 * drained: nothing written to elem). */
static int chan__ring_recv(struct chan *c, void *elem)
{
	unsigned spins = 0;
	uint64_t pos = atomic_load_explicit(&c->head, memory_order_relaxed);
	for (;;) {
		_Atomic uint64_t *sq = chan__seq(c, pos);
		/* Acquire: pairs with the writer's release. */
		uint64_t seq = atomic_load_explicit(sq, memory_order_acquire);
		int64_t d = (int64_t)(seq - (2 * pos + 1));
		if (d == 0) {
			/* seq_cst: as the writer's claim. */
			if (atomic_compare_exchange_weak_explicit(&c->head, &pos, pos + 1,
			                                          memory_order_seq_cst,
			                                          memory_order_relaxed)) {
				chan__copy(elem, chan__slot_elem(sq), c->elem_size);
				/* Release: done reading before the slot is free. */
				atomic_store_explicit(sq, 2 * (pos + c->cap), memory_order_release);
				return 0;
			}
			continue;
		}
		uint64_t now = atomic_load_explicit(&c->head, memory_order_relaxed);
		if (d > 0 || now != pos) {
			pos = now; /* another reader took pos */
			continue;
		}
		/* Acquire: pairs with chan_close's release of the closed bit. */
		uint64_t t = atomic_load_explicit(&c->tail, memory_order_acquire);
		if ((t & ~CHAN__CLOSED_BIT) > pos) {
			chan__ring_pause(&spins); /* a writer claimed pos and is copying */
			continue;
		}
		return (t & CHAN__CLOSED_BIT) ? EPIPE : EAGAIN;
	}
}

static bool chan__ring_can_send(struct chan *c)
{
	uint64_t h = atomic_load_explicit(&c->head, memory_order_acquire);
	uint64_t t = atomic_load_explicit(&c->tail, memory_order_acquire);
	return (t & CHAN__CLOSED_BIT) || t - h < c->cap;
}

static bool chan__ring_can_recv(struct chan *c)
{
	uint64_t h = atomic_load_explicit(&c->head, memory_order_acquire);
	uint64_t t = atomic_load_explicit(&c->tail, memory_order_acquire);
	return (t & CHAN__CLOSED_BIT) || (t & ~CHAN__CLOSED_BIT) > h;
}

/* A per-thread xorshift64* generator: select needs a fair coin, not a
 * secret. Seeded lazily from the clock and the thread's own address. */
static _Thread_local uint64_t chan__rng;

static uint32_t chan__rand_below(uint32_t k)
{
	if (k <= 1)
		return 0;
	uint64_t x = chan__rng;
	if (x == 0) {
		x = (uint64_t)(uintptr_t)&chan__rng ^ ((uint64_t)ctx__os_now() << 20);
		x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
		x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
		x ^= x >> 31;
		if (x == 0)
			x = 0x9e3779b97f4a7c15ull;
	}
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	chan__rng = x;
	uint32_t r = (uint32_t)((x * 0x2545f4914f6cdd1dull) >> 32);
	return (uint32_t)(((uint64_t)r * k) >> 32);
}

/* ---- The waiter protocol. --------------------------------------------- */

/* Move w from WAITING to CLAIMED; true if this caller won. Acquire: the
 * winner reads the sudog fields the waiter wrote before it became visible
 * (under a channel lock or through ctx_after_func_at, which already order
 * them; the acquire keeps the claim itself honest). */
static bool chan__claim(struct chan__waiter *w)
{
	uint32_t s = atomic_load_explicit(&w->state, memory_order_relaxed);
	while ((s & CHAN__PHASE) == CHAN__WAITING) {
		if (atomic_compare_exchange_weak_explicit(&w->state, &s,
		                                          (s & CHAN__SLEEP) | CHAN__CLAIMED,
		                                          memory_order_acquire,
		                                          memory_order_relaxed))
			return true;
	}
	return false;
}

/* Publish the claimer's results: the release pairs with the acquire load of
 * DONE in chan__wait. Last touch of w but for the wake (see "Design"). */
static void chan__finish(struct chan__waiter *w)
{
	uint32_t old = atomic_exchange_explicit(&w->state, CHAN__DONE, memory_order_release);
	if (old & CHAN__SLEEP)
		ctx__os_wake(&w->state, 1);
}

static bool chan__is_done(void *arg, bool slow)
{
	(void)slow;
	struct chan__waiter *w = arg;
	/* Acquire: pairs with chan__finish's release (the results). */
	return (atomic_load_explicit(&w->state, memory_order_acquire) & CHAN__PHASE) == CHAN__DONE;
}

/* Sleep until w is DONE. With abs (CLOCK_MONOTONIC), claim w for the
 * timeout once it passes, unless someone claimed it first. */
static void chan__wait(struct chan__waiter *w, const struct timespec *abs)
{
	/* Spin first: until DONE, not just CLAIMED (the claimer finishes
	 * after its unlock, a few hundred ns later; sleeping at CLAIMED costs
	 * a futex wait here and a wake there). */
	ctx_time_t until = abs ? (ctx_time_t)abs->tv_sec * CTX_SECOND + abs->tv_nsec : -1;
	if (chan__spin(chan__is_done, w, until))
		return;
	for (;;) {
		uint32_t s = atomic_load_explicit(&w->state, memory_order_acquire);
		if ((s & CHAN__PHASE) == CHAN__DONE)
			return;
		if (!(s & CHAN__SLEEP)) {
			/* Relaxed: only tells the finisher to wake us; the data
			 * comes with DONE. */
			if (!atomic_compare_exchange_weak_explicit(&w->state, &s, s | CHAN__SLEEP,
			                                           memory_order_relaxed,
			                                           memory_order_relaxed))
				continue;
			s |= CHAN__SLEEP;
		}
		/* Once CLAIMED, DONE follows within a few instructions of the
		 * claimer: wait for it without a limit. */
		const struct timespec *lim = (s & CHAN__PHASE) == CHAN__WAITING ? abs : NULL;
		if (ctx__os_wait(&w->state, s, lim) == ETIMEDOUT && lim) {
			if (chan__claim(w)) {
				w->fired = CHAN_NONE;
				w->err = ETIMEDOUT;
				/* Only this thread reads the results. */
				atomic_store_explicit(&w->state, CHAN__DONE, memory_order_relaxed);
				return;
			}
			abs = NULL;
		}
	}
}

/* The after-func of a DONE case: runs in the cancelling thread (or at once
 * in the selecting one). sg stays valid until the waiter's ctx_after_stop
 * returns, which waits for this to finish. */
static void chan__ctx_fired(void *arg)
{
	struct chan__sudog *sg = arg;
	struct chan__waiter *w = sg->w;
	if (chan__claim(w)) {
		w->fired = sg->index;
		w->err = 0;
		chan__finish(w);
	}
}

/* ---- Wait queues (caller holds the channel lock). ---------------------- */

static void chan__enqueue(struct chan__waitq *q, struct chan__sudog *sg)
{
	sg->next = NULL;
	sg->prev = q->last;
	if (q->last)
		q->last->next = sg;
	else
		q->first = sg;
	q->last = sg;
	atomic_store_explicit(&sg->queued, true, memory_order_relaxed);
	/* seq_cst: the kick protocol's store (see "Design"). */
	atomic_fetch_add_explicit(&q->n, 1, memory_order_seq_cst);
}

/* Unlink sg. The release store of `queued` is the last touch of a sudog
 * whose waiter the caller did not claim: pairs with the waiter's acquire
 * load in chan__select's cleanup. */
static void chan__unlink(struct chan__waitq *q, struct chan__sudog *sg)
{
	if (sg->prev)
		sg->prev->next = sg->next;
	else
		q->first = sg->next;
	if (sg->next)
		sg->next->prev = sg->prev;
	else
		q->last = sg->prev;
	atomic_fetch_sub_explicit(&q->n, 1, memory_order_relaxed);
	atomic_store_explicit(&sg->queued, false, memory_order_release);
}

/* Take the first sudog whose waiter this call claims; drop the stale ones
 * (claimed elsewhere) on the way. NULL if none. */
static struct chan__sudog *chan__take(struct chan__waitq *q)
{
	struct chan__sudog *sg;
	while ((sg = q->first) != NULL) {
		bool mine = chan__claim(sg->w);
		chan__unlink(q, sg);
		if (mine)
			return sg;
	}
	return NULL;
}

/* Is there a waiter that could still be claimed? Drops stale heads. A true
 * answer can be outdated by the time the caller takes: it then retries. */
static bool chan__has_peer(struct chan__waitq *q)
{
	struct chan__sudog *sg;
	while ((sg = q->first) != NULL) {
		uint32_t s = atomic_load_explicit(&sg->w->state, memory_order_relaxed);
		if ((s & CHAN__PHASE) == CHAN__WAITING)
			return true;
		chan__unlink(q, sg);
	}
	return false;
}

/* ---- The operations (caller holds c->lock). --------------------------- */

static bool chan__send_ready(struct chan *c)
{
	if (c->cap)
		return chan__ring_can_send(c);
	return c->closed || chan__has_peer(&c->recvq);
}

static bool chan__recv_ready(struct chan *c)
{
	if (c->cap)
		return chan__ring_can_recv(c);
	return c->closed || chan__has_peer(&c->sendq);
}

/* Serve blocked waiters of a buffered channel (caller holds c->lock): while
 * a live waiter and a ready ring coexist, claim the waiter and do its
 * operation on the ring; claimed waiters go on *wake (through `next`) for
 * the caller to chan__finish after unlocking. See "Design". */
static void chan__kick_locked(struct chan *c, struct chan__sudog **wake)
{
	for (;;) {
		bool progress = false;
		struct chan__sudog *sg;
		if (c->recvq.first && chan__ring_can_recv(c) && (sg = chan__take(&c->recvq))) {
			int r = chan__ring_recv(c, sg->elem);
			if (r == 0) {
				sg->w->fired = sg->index;
				sg->w->err = 0;
				sg->w->ok = true;
				progress = true;
			} else if (r == EPIPE) {
				if (sg->elem && c->elem_size)
					memset(sg->elem, 0, c->elem_size);
				sg->w->fired = sg->index;
				sg->w->err = 0;
				sg->w->ok = false;
				progress = true;
			} else {
				sg->w->fired = CHAN_NONE;
				sg->w->err = CHAN__RETRY;
			}
			sg->next = *wake;
			*wake = sg;
		}
		if (c->sendq.first && chan__ring_can_send(c) && (sg = chan__take(&c->sendq))) {
			int r = chan__ring_send(c, sg->elem);
			if (r == 0 || r == EPIPE) {
				sg->w->fired = sg->index;
				sg->w->err = r;
				progress = true;
			} else {
				sg->w->fired = CHAN_NONE;
				sg->w->err = CHAN__RETRY;
			}
			sg->next = *wake;
			*wake = sg;
		}
		if (!progress)
			return;
	}
}

static void chan__finish_all(struct chan__sudog *wake)
{
	while (wake) {
		struct chan__sudog *sg = wake;
		wake = sg->next; /* read before DONE frees the waiter to go */
		chan__finish(sg->w);
	}
}

/* After a lock-free operation on c's ring: if waiters are queued on the
 * side `q` it may have enabled, kick them. */
static void chan__kick(struct chan *c, struct chan__waitq *q)
{
	/* seq_cst, after the seq_cst claim of the ring position: the
	 * publisher's half of the kick protocol (see "Design"). No fence: on
	 * x86 the claim's locked CAS already orders it, and this is a plain
	 * load. */
	if (!atomic_load_explicit(&q->n, memory_order_seq_cst))
		return;
	struct chan__sudog *wake = NULL;
	ctx__lock(&c->lock);
	chan__kick_locked(c, &wake);
	ctx__unlock(&c->lock);
	chan__finish_all(wake);
}

/* Send *elem now if possible: 0 (sent; *peer: a claimed receiver the
 * caller must chan__finish after unlocking), EPIPE (closed) or EAGAIN. */
static int chan__do_send(struct chan *c, const void *elem, struct chan__sudog **peer)
{
	if (c->cap) {
		int r = chan__ring_send(c, elem);
		if (r == 0)
			chan__kick_locked(c, peer);
		return r;
	}
	if (c->closed)
		return EPIPE;
	struct chan__sudog *sg = chan__take(&c->recvq);
	if (sg) {
		/* Rendezvous: straight into the receiver's destination. */
		chan__copy(sg->elem, elem, c->elem_size);
		sg->w->fired = sg->index;
		sg->w->err = 0;
		sg->w->ok = true;
		sg->next = NULL;
		*peer = sg;
		return 0;
	}
	return EAGAIN;
}

/* Receive now if possible into elem (may be NULL): 0 with *ok set (and
 * maybe a claimed sender in *peer, to finish after unlocking), or EAGAIN. */
static int chan__do_recv(struct chan *c, void *elem, bool *ok, struct chan__sudog **peer)
{
	struct chan__sudog *sg;
	if (c->cap) {
		int r = chan__ring_recv(c, elem);
		if (r == EAGAIN)
			return EAGAIN;
		if (r == EPIPE) {
			if (elem && c->elem_size)
				memset(elem, 0, c->elem_size);
			*ok = false;
			return 0;
		}
		/* A slot came free: a blocked sender's value goes in (at the
		 * tail, keeping FIFO order). */
		chan__kick_locked(c, peer);
		*ok = true;
		return 0;
	}
	sg = chan__take(&c->sendq);
	if (sg) {
		chan__copy(elem, sg->elem, c->elem_size);
		sg->w->fired = sg->index;
		sg->w->err = 0;
		sg->next = NULL;
		*peer = sg;
		*ok = true;
		return 0;
	}
	if (c->closed) {
		if (elem && c->elem_size)
			memset(elem, 0, c->elem_size);
		*ok = false;
		return 0;
	}
	return EAGAIN;
}

/* ---- Channels. ---------------------------------------------------------- */

chan_t *chan_make(size_t elem_size, size_t capacity)
{
	/* A slot: the sequence word, then the element, rounded up to 8. */
	size_t stride = 0;
	if (capacity) {
		if (elem_size > SIZE_MAX - 2 * sizeof(uint64_t)) {
			errno = EINVAL;
			return NULL;
		}
		stride = (sizeof(uint64_t) + elem_size + 7) & ~(size_t)7;
		if (capacity > (SIZE_MAX - sizeof(struct chan)) / stride) {
			errno = EINVAL;
			return NULL;
		}
	}
	struct chan *c = ctx__alloc(sizeof(*c) + stride * capacity);
	if (!c)
		return NULL; /* errno ENOMEM, set by ctx__alloc */
	atomic_init(&c->lock, 0);
	atomic_init(&c->refs, 1);
	c->elem_size = elem_size;
	c->cap = capacity;
	c->closed = false;
	c->sendq.first = c->sendq.last = NULL;
	c->recvq.first = c->recvq.last = NULL;
	atomic_init(&c->sendq.n, 0);
	atomic_init(&c->recvq.n, 0);
	c->stride = stride;
	atomic_init(&c->tail, 0);
	atomic_init(&c->head, 0);
	for (size_t i = 0; i < capacity; i++)
		atomic_init(chan__seq(c, i), 2 * (uint64_t)i);
	return c;
}

chan_t *chan_retain(chan_t *c)
{
	/* Relaxed: the caller already holds a reference (as any refcount). */
	if (c)
		atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
	return c;
}

void chan_release(chan_t *c)
{
	if (!c)
		return;
	/* acq_rel: the last releaser sees every other holder's writes. */
	if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
		ctx__free(c);
}

int chan_close(chan_t *c)
{
	if (!c)
		return EINVAL;
	struct chan__sudog *wake = NULL, *sg;
	ctx__lock(&c->lock);
	if (c->closed) {
		ctx__unlock(&c->lock);
		return EPIPE;
	}
	c->closed = true;
	if (c->cap) {
		/* Release: pairs with the ring readers' acquire of tail. From
		 * here no write can claim a position. */
		atomic_fetch_or_explicit(&c->tail, CHAN__CLOSED_BIT, memory_order_seq_cst);
		while ((sg = chan__take(&c->sendq)) != NULL) {
			sg->w->fired = sg->index;
			sg->w->err = EPIPE;
			sg->next = wake;
			wake = sg;
		}
		/* Blocked receivers drain what is left, then get ok == false. */
		chan__kick_locked(c, &wake);
		ctx__unlock(&c->lock);
		chan__finish_all(wake);
		return 0;
	}
	/* Claim every blocked party now, wake them after unlocking. The
	 * `next` link is free for a local list once a sudog is taken. */
	while ((sg = chan__take(&c->recvq)) != NULL) {
		if (sg->elem && c->elem_size)
			memset(sg->elem, 0, c->elem_size);
		sg->w->fired = sg->index;
		sg->w->err = 0;
		sg->w->ok = false;
		sg->next = wake;
		wake = sg;
	}
	while ((sg = chan__take(&c->sendq)) != NULL) {
		sg->w->fired = sg->index;
		sg->w->err = EPIPE;
		sg->next = wake;
		wake = sg;
	}
	ctx__unlock(&c->lock);
	while (wake) {
		sg = wake;
		wake = sg->next; /* read before DONE frees the waiter to go */
		chan__finish(sg->w);
	}
	return 0;
}

size_t chan_len(chan_t *c)
{
	if (!c || !c->cap)
		return 0;
	/* head first: tail can only be ahead of it. */
	uint64_t h = atomic_load_explicit(&c->head, memory_order_acquire);
	uint64_t t = atomic_load_explicit(&c->tail, memory_order_acquire) & ~CHAN__CLOSED_BIT;
	uint64_t n = t > h ? t - h : 0;
	return n > c->cap ? c->cap : (size_t)n;
}

/* src/chan/testing.h: sudogs queued on c (both queues) whose waiter has set
 * SLEEP, i.e. has stopped spinning and sleeps (or is about to) in the
 * platform wait: only a wake by whoever completes it gets it out. */
size_t chan__sleepers(chan_t *c)
{
	size_t n = 0;
	ctx__lock(&c->lock);
	const struct chan__waitq *qs[2] = {&c->sendq, &c->recvq};
	for (int i = 0; i < 2; i++)
		for (const struct chan__sudog *sg = qs[i]->first; sg; sg = sg->next) {
			uint32_t s = atomic_load_explicit(&sg->w->state, memory_order_relaxed);
			if ((s & CHAN__PHASE) == CHAN__WAITING && (s & CHAN__SLEEP))
				n++;
		}
	ctx__unlock(&c->lock);
	return n;
}

size_t chan_cap(chan_t *c)
{
	return c ? c->cap : 0;
}

size_t chan_elem_size(chan_t *c)
{
	return c ? c->elem_size : 0;
}

/* ---- Select. ------------------------------------------------------------ */

static inline struct chan *chan__case_chan(const chan_case_t *cs)
{
	return (cs->op == CHAN_SEND || cs->op == CHAN_RECV) ? cs->chan : NULL;
}

/* Lock every distinct channel of the cases in address order (the only
 * order in which two channel locks are ever held together). O(n * k) for
 * k distinct channels: selects are small, and it needs no array. */
static void chan__lock_all(const chan_case_t *cs, size_t n)
{
	uintptr_t last = 0;
	for (;;) {
		struct chan *min = NULL;
		for (size_t i = 0; i < n; i++) {
			struct chan *c = chan__case_chan(&cs[i]);
			if (c && (uintptr_t)c > last && (!min || (uintptr_t)c < (uintptr_t)min))
				min = c;
		}
		if (!min)
			return;
		ctx__lock(&min->lock);
		last = (uintptr_t)min;
	}
}

static void chan__unlock_all(const chan_case_t *cs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct chan *c = chan__case_chan(&cs[i]);
		if (!c)
			continue;
		size_t j = 0;
		while (j < i && chan__case_chan(&cs[j]) != c)
			j++;
		if (j == i) /* first case on c */
			ctx__unlock(&c->lock);
	}
}

/* The one implementation of send, receive and select. abs: absolute
 * CLOCK_MONOTONIC limit (NULL: none); block false: Go's default. sgs: room
 * for n sudogs when block is true. */
static int chan__select_once(chan_case_t *cs, size_t n, const struct timespec *abs, bool block,
                             size_t *fired, struct chan__waiter *wp, struct chan__sudog *sgs)
{
	chan__lock_all(cs, n);
	for (;;) {
		/* Pass 1: pick a ready case uniformly (reservoir sampling). */
		size_t pick = CHAN_NONE;
		uint32_t nready = 0;
		for (size_t i = 0; i < n; i++) {
			bool ready;
			switch (cs[i].op) {
			case CHAN_SEND:
				ready = cs[i].chan && chan__send_ready(cs[i].chan);
				break;
			case CHAN_RECV:
				ready = cs[i].chan && chan__recv_ready(cs[i].chan);
				break;
			default: /* CHAN_DONE */
				ready = cs[i].ctx && ctx_done(cs[i].ctx);
				break;
			}
			if (ready && chan__rand_below(++nready) == 0)
				pick = i;
		}
		if (pick == CHAN_NONE)
			break;
		struct chan__sudog *peer = NULL;
		int err = 0;
		if (cs[pick].op == CHAN_SEND)
			err = chan__do_send(cs[pick].chan, cs[pick].elem, &peer);
		else if (cs[pick].op == CHAN_RECV)
			err = chan__do_recv(cs[pick].chan, cs[pick].elem, &cs[pick].ok, &peer);
		if (err == EAGAIN)
			continue; /* the peer we saw was claimed elsewhere: look again */
		chan__unlock_all(cs, n);
		chan__finish_all(peer);
		*fired = pick;
		return err;
	}
	if (!block) {
		chan__unlock_all(cs, n);
		*fired = CHAN_NONE;
		return EAGAIN;
	}

	/* Pass 2: enqueue on every channel, hook every context, sleep. */
	struct chan__waiter *const w = wp;
	w->fired = CHAN_NONE;
	w->err = 0;
	w->ok = false;
	atomic_init(&w->state, CHAN__WAITING);
	for (size_t i = 0; i < n; i++) {
		struct chan__sudog *sg = &sgs[i];
		sg->w = w;
		sg->index = (uint32_t)i;
		sg->stop = NULL;
		if (cs[i].op == CHAN_DONE)
			continue; /* its slot is written by ctx_after_func_at */
		sg->elem = cs[i].elem;
		atomic_init(&sg->queued, false);
		struct chan *c = cs[i].chan;
		if (c)
			chan__enqueue(cs[i].op == CHAN_SEND ? &c->sendq : &c->recvq, sg);
	}
	chan__unlock_all(cs, n);
	/* The waiter's half of the kick protocol: queued (n incremented), now
	 * look at each buffered ring again; a value or slot that came in
	 * between is handed over by a kick (perhaps to this very waiter). */
	atomic_thread_fence(memory_order_seq_cst);
	for (size_t i = 0; i < n; i++) {
		struct chan *c = chan__case_chan(&cs[i]);
		if (!c || !c->cap)
			continue;
		if ((atomic_load_explicit(&w->state, memory_order_relaxed) & CHAN__PHASE) !=
		    CHAN__WAITING)
			break;
		if (cs[i].op == CHAN_SEND ? chan__ring_can_send(c) : chan__ring_can_recv(c)) {
			struct chan__sudog *wake = NULL;
			ctx__lock(&c->lock);
			chan__kick_locked(c, &wake);
			ctx__unlock(&c->lock);
			chan__finish_all(wake);
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (cs[i].op != CHAN_DONE || !cs[i].ctx)
			continue;
		/* Relaxed: a hint; fired already, so stop hooking. */
		if ((atomic_load_explicit(&w->state, memory_order_relaxed) & CHAN__PHASE) !=
		    CHAN__WAITING)
			break;
		/* In the sudog's own slot: no allocation, so no failure (the
		 * arguments are not NULL). The caller holds cs[i].ctx for the
		 * whole call, and the cleanup below stops the registration
		 * before the slot goes away. */
		sgs[i].stop = ctx_after_func_at(cs[i].ctx, &sgs[i].slot, chan__ctx_fired, &sgs[i]);
	}
	chan__wait(w, abs);

	/* Cleanup: nobody may touch w or sgs once this returns. */
	for (size_t i = 0; i < n; i++) {
		struct chan__sudog *sg = &sgs[i];
		if (cs[i].op == CHAN_DONE) {
			/* Waits for a chan__ctx_fired still running elsewhere. */
			if (sg->stop)
				ctx_after_stop(sg->stop);
			continue;
		}
		/* The fired case's sudog was taken off its queue by the party
		 * that claimed this waiter (chan__take), before its DONE: no
		 * need to read its line again. */
		struct chan *c = cs[i].chan;
		if (c && i != w->fired && atomic_load_explicit(&sg->queued, memory_order_acquire)) {
			ctx__lock(&c->lock);
			if (atomic_load_explicit(&sg->queued, memory_order_relaxed))
				chan__unlink(cs[i].op == CHAN_SEND ? &c->sendq : &c->recvq, sg);
			ctx__unlock(&c->lock);
		}
	}
	if (w->fired != CHAN_NONE && cs[w->fired].op == CHAN_RECV)
		cs[w->fired].ok = w->ok;
	*fired = w->fired;
	return w->err;
}

static int chan__select(chan_case_t *cs, size_t n, const struct timespec *abs, bool block,
                        size_t *fired, struct chan__waiter *w, struct chan__sudog *sgs)
{
	int err;
	/* A kick that claimed this waiter but found the ring moved: again. */
	while ((err = chan__select_once(cs, n, abs, block, fired, w, sgs)) == CHAN__RETRY)
		;
	return err;
}

/* The blocking part of chan_select, out of line: room for the waiter and
 * CHAN__STACK_CASES sudogs, or the heap for more. */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
static int chan__select_block(chan_case_t *cases, size_t n, const struct timespec *abs,
                              size_t *fired)
{
	CHAN__BLOCK(CHAN__STACK_CASES) stack;
	struct chan__sudog *sgs = stack.sg;
	if (n > CHAN__STACK_CASES) {
		/* (A sudog keeps its case index in 32 bits.) */
		if (n > SIZE_MAX / sizeof(*sgs) || n > UINT32_MAX)
			return ENOMEM;
		sgs = ctx__alloc(n * sizeof(*sgs));
		if (!sgs)
			return ENOMEM;
	}
	int err = chan__select(cases, n, abs, true, fired, &stack.w, sgs);
	if (sgs != stack.sg)
		ctx__free(sgs);
	return err;
}

static void chan__deadline(struct timespec *abs, ctx_duration_t timeout)
{
	/* Saturates: as good as for ever. */
	*abs = ctx__os_timespec(ctx__add_sat(ctx__os_now(), timeout));
}

int chan_select(chan_case_t *cases, size_t n, ctx_duration_t timeout, size_t *fired)
{
	size_t dummy;
	if (!fired)
		fired = &dummy;
	*fired = CHAN_NONE;
	if (!cases && n)
		return EINVAL;
	bool any = false;
	for (size_t i = 0; i < n; i++) {
		switch (cases[i].op) {
		case CHAN_SEND:
			if (cases[i].chan && !cases[i].elem && cases[i].chan->elem_size)
				return EINVAL;
			/* fall through */
		case CHAN_RECV:
			any |= cases[i].chan != NULL;
			break;
		case CHAN_DONE:
			any |= cases[i].ctx != NULL;
			break;
		default:
			return EINVAL;
		}
	}
	bool block = timeout != 0 && (timeout > 0 || timeout == CTX_FOREVER);
	struct timespec ts, *abs = NULL;
	if (block && timeout != CTX_FOREVER) {
		chan__deadline(&ts, timeout);
		abs = &ts;
	}
	if (block && !abs && !any)
		return EDEADLK;
	/* A look first, without the blocking storage: a select that finds a
	 * case ready (the common case) does not set up the frame below. */
	int err = chan__select_once(cases, n, NULL, false, fired, NULL, NULL);
	if (err != EAGAIN || !block)
		return err;
	return chan__select_block(cases, n, abs, fired);
}

/* ---- Send and receive: one-case (or two-case) selects. ---------------- */

static int chan__one(chan_case_t *cs, bool block)
{
	CHAN__BLOCK(1) b;
	size_t fired;
	return chan__select(cs, 1, NULL, block, &fired, &b.w, b.sg);
}

/* The lock-free paths of a buffered channel: EAGAIN when the ring is full
 * (empty), else the result, with blocked waiters on the other side kicked. */
static int chan__fast_send(struct chan *c, const void *elem)
{
	int r = chan__ring_send(c, elem);
	if (r == 0)
		chan__kick(c, &c->recvq);
	return r;
}

static int chan__fast_recv(struct chan *c, void *elem, bool *ok)
{
	int r = chan__ring_recv(c, elem);
	if (r == 0) {
		*ok = true;
		chan__kick(c, &c->sendq);
	} else if (r == EPIPE) {
		if (elem && c->elem_size)
			memset(elem, 0, c->elem_size);
		*ok = false;
		r = 0;
	}
	return r;
}

struct chan__watch {
	struct chan *c;
	bool send;
};

static bool chan__ring_looks_ready(void *arg, bool slow)
{
	const struct chan__watch *wa = arg;
	struct chan *c = wa->c;
	uint64_t pos = atomic_load_explicit(wa->send ? &c->tail : &c->head, memory_order_relaxed);
	if (pos & CHAN__CLOSED_BIT)
		return true; /* only tail carries the bit */
	uint64_t seq = atomic_load_explicit(chan__seq(c, pos), memory_order_relaxed);
	if (seq == (wa->send ? 2 * pos : 2 * pos + 1))
		return true;
	/* A receive also stops at close; tail is the writers' line, so look
	 * at it only now and then. */
	return slow && !wa->send &&
	       (atomic_load_explicit(&c->tail, memory_order_relaxed) & CHAN__CLOSED_BIT);
}

/* Before queuing as a waiter: watch the ring for a few microseconds (never
 * on one CPU; chan__spin), as a futex wait would spin first anyway. The
 * watch reads only the slot at the position of interest, not the other
 * side's counter; true once it looks ready. */
static bool chan__ring_watch(struct chan *c, bool send)
{
	struct chan__watch wa = {c, send};
	return chan__spin(chan__ring_looks_ready, &wa, -1);
}

int chan_send(chan_t *c, const void *elem)
{
	if (!c || (!elem && c->elem_size))
		return EINVAL;
	if (c->cap) {
		int r = chan__fast_send(c, elem);
		if (r != EAGAIN)
			return r;
		if (chan__ring_watch(c, true) && (r = chan__fast_send(c, elem)) != EAGAIN)
			return r;
	}
	chan_case_t cs = CHAN_CASE_SEND(c, elem);
	return chan__one(&cs, true);
}

int chan_try_send(chan_t *c, const void *elem)
{
	if (!c || (!elem && c->elem_size))
		return EINVAL;
	if (c->cap)
		return chan__fast_send(c, elem);
	chan_case_t cs = CHAN_CASE_SEND(c, elem);
	return chan__one(&cs, false);
}

int chan_recv(chan_t *c, void *elem, bool *ok)
{
	if (!c)
		return EINVAL;
	bool dummy;
	if (!ok)
		ok = &dummy;
	if (c->cap) {
		int r = chan__fast_recv(c, elem, ok);
		if (r != EAGAIN)
			return r;
		if (chan__ring_watch(c, false) && (r = chan__fast_recv(c, elem, ok)) != EAGAIN)
			return r;
	}
	chan_case_t cs = CHAN_CASE_RECV(c, elem);
	int err = chan__one(&cs, true);
	*ok = cs.ok;
	return err;
}

int chan_try_recv(chan_t *c, void *elem, bool *ok)
{
	if (!c)
		return EINVAL;
	bool dummy;
	if (!ok)
		ok = &dummy;
	if (c->cap) {
		int r = chan__fast_recv(c, elem, ok);
		if (r)
			*ok = false;
		return r;
	}
	chan_case_t cs = CHAN_CASE_RECV(c, elem);
	int err = chan__one(&cs, false);
	*ok = err == 0 && cs.ok;
	return err;
}

/* cs[0] is the channel case, cs[1] the context's. */
static int chan__with_ctx(ctx_t *ctx, chan_case_t cs[2])
{
	int err = ctx_err(ctx);
	if (err)
		return err; /* done on entry wins, deterministically */
	struct chan *c = cs[0].chan;
	if (c && c->cap) {
		/* The ring first: no context hook when no wait is needed. */
		err = cs[0].op == CHAN_SEND ? chan__fast_send(c, cs[0].elem)
		                            : chan__fast_recv(c, cs[0].elem, &cs[0].ok);
		if (err != EAGAIN)
			return err;
	}
	cs[1] = CHAN_CASE_DONE(ctx);
	CHAN__BLOCK(2) b;
	size_t fired;
	err = chan__select(cs, 2, NULL, true, &fired, &b.w, b.sg);
	if (fired == 1)
		return ctx_err(ctx);
	return err;
}

int chan_send_ctx(ctx_t *ctx, chan_t *c, const void *elem)
{
	if (!ctx || (c && !elem && c->elem_size))
		return EINVAL;
	chan_case_t cs[2] = {CHAN_CASE_SEND(c, elem)};
	return chan__with_ctx(ctx, cs);
}

int chan_recv_ctx(ctx_t *ctx, chan_t *c, void *elem, bool *ok)
{
	if (!ctx)
		return EINVAL;
	chan_case_t cs[2] = {CHAN_CASE_RECV(c, elem)};
	int err = chan__with_ctx(ctx, cs);
	if (ok)
		*ok = err == 0 && cs[0].ok;
	return err;
}
