/* waitgroup.c: Go's sync.WaitGroup on one 32-bit word.
 *
 * The word holds the counter (bits 0-30, 0..INT_MAX) and WAITERS (bit 31):
 * some thread sleeps, or is about to, on the word. Every change is a
 * read-modify-write (acq_rel), so each one continues the release sequence
 * of the ones before. The change that brings the counter to zero clears
 * WAITERS in the same operation and then, if it was set, wakes every
 * sleeper: that operation is the last access to the group's memory, so a
 * waiter may free the group as soon as it sees zero (the futex wake that
 * follows is a system call on the address only; a stray wake-up is
 * harmless, every sleeper re-checks). WAITERS is never set while the
 * counter is zero.
 *
 * A wait with a context registers an after-func on it for the duration of
 * the wait; when the context is done the after-func clears WAITERS (an RMW
 * even when it was clear, so a waiter setting it later synchronises with
 * it and sees the context done) and wakes all sleepers; the others re-check,
 * set WAITERS again and sleep on. ctx_after_stop before returning makes sure
 * the after-func no longer touches the group.
 * Uses: src/os (wait/wake), src/ctx (after-funcs, spin), src/chan (chan__go).
 */
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stddef.h>

#include "goctx/chan.h"
#include "goctx/sync.h"
#include "../ctx/internal.h"
#include "../chan/go.h"

#define WG_WAITERS (1u << 31)
#define WG_COUNT 0x7fffffffu

struct wg {
	_Atomic uint32_t word; /* counter | WG_WAITERS */
	uint32_t reserved[7];
};

_Static_assert(sizeof(struct wg) == sizeof(ctx_waitgroup_t), "ctx_waitgroup_t is 32 bytes");
_Static_assert(_Alignof(struct wg) <= _Alignof(ctx_waitgroup_t), "alignment");
_Static_assert(sizeof(ctx_waitgroup_t) == 32, "ctx_waitgroup_t is 32 bytes");

static _Atomic uint32_t *word_of(ctx_waitgroup_t *wg) { return &((struct wg *)wg)->word; }

int ctx_waitgroup_add(ctx_waitgroup_t *wg, int delta)
{
	if (!wg)
		return EINVAL;
	_Atomic uint32_t *w = word_of(wg);
	uint32_t old = atomic_load_explicit(w, memory_order_relaxed), next;
	do {
		int64_t n = (int64_t)(old & WG_COUNT) + delta;
		if (n < 0 || n > INT_MAX)
			return EINVAL;
		next = n == 0 ? 0 : ((uint32_t)n | (old & WG_WAITERS));
	} while (!atomic_compare_exchange_weak_explicit(w, &old, next, memory_order_acq_rel,
	                                                memory_order_relaxed));
	/* After this, wg may be gone: only the address is used. */
	if (next == 0 && (old & WG_WAITERS))
		ctx__os_wake(w, INT_MAX);
	return 0;
}

void ctx_waitgroup_done(ctx_waitgroup_t *wg) { (void)ctx_waitgroup_add(wg, -1); }

static bool zero(uint32_t s) { return (s & WG_COUNT) == 0; }

/* The bounded spin of a wait without a context (20 us, by the clock; none
 * on one CPU). Unlike ctx__spin it yields after every 64 pauses, not every
 * 256: a group is often waited on by more threads than there are CPUs, and
 * the threads that bring the counter to zero (or the other waiters, which
 * must run to see it) queue behind the spinners. Profile of
 * waitgroup_wake_4 (4 waiters, 2 CPUs) with ctx__spin: 69 % of the time in
 * the spin, 4.7 context switches and 4 sched_yield calls a round, 19-21 us
 * a round; yielding every 64 pauses: 7.6-8.7 us; never yielding: 51-79
 * us; letting only one waiter spin at a time: worse (36-39 us). */
static bool spin_zero(_Atomic uint32_t *w)
{
	if (ctx__os_ncpu() < 2)
		return false;
	ctx_time_t stop = ctx__os_now() + 20 * CTX_MICROSECOND;
	for (;;) {
		for (int i = 0; i < 64; i++) {
			/* Acquire: pairs with the RMW that brought the counter to zero. */
			if (zero(atomic_load_explicit(w, memory_order_acquire)))
				return true;
			ctx__os_relax();
		}
		sched_yield();
		if (ctx__os_now() >= stop)
			return false;
	}
}

/* The after-func of a wait with a context: see the top of the file. */
static void kick(void *arg)
{
	_Atomic uint32_t *w = arg;
	/* Release: pairs with the acquire RMW/load of a waiter after it. */
	uint32_t old = atomic_fetch_and_explicit(w, ~WG_WAITERS, memory_order_acq_rel);
	if (old & WG_WAITERS)
		ctx__os_wake(w, INT_MAX);
}

int ctx_waitgroup_wait(ctx_waitgroup_t *wg, ctx_t *ctx)
{
	if (!wg)
		return EINVAL;
	_Atomic uint32_t *w = word_of(wg);
	uint32_t s;
	if (zero(atomic_load_explicit(w, memory_order_acquire)))
		return 0;
	ctx_after_t *stop = NULL;
	if (ctx) {
		if (ctx_err(ctx))
			return zero(atomic_load_explicit(w, memory_order_acquire)) ? 0 : ctx_err(ctx);
		int e = ctx_after_func(ctx, kick, (void *)w, &stop);
		if (e)
			return e;
	} else if (spin_zero(w)) {
		return 0;
	}
	int r = 0;
	for (;;) {
		s = atomic_load_explicit(w, memory_order_acquire);
		if (zero(s))
			break;
		if (!(s & WG_WAITERS)) {
			if (!atomic_compare_exchange_weak_explicit(w, &s, s | WG_WAITERS,
			                                           memory_order_acq_rel,
			                                           memory_order_acquire))
				continue;
			s |= WG_WAITERS;
		}
		if (ctx && (r = ctx_err(ctx)) != 0)
			break;
		ctx__os_wait(w, s, NULL);
	}
	if (stop)
		ctx_after_stop(stop);
	/* A zero counter wins over a done context. */
	if (r && zero(atomic_load_explicit(w, memory_order_acquire)))
		r = 0;
	return r;
}

/* ---- WaitGroup.Go ---- */

/* chan__go's `then`, on the function's thread once it returned: no record
 * of our own, nothing to allocate when a cached thread takes the call. */
static void wg_go_done(void *wg) { ctx_waitgroup_done(wg); }

int ctx_waitgroup_go(ctx_waitgroup_t *wg, void (*fn)(void *arg), void *arg)
{
	if (!wg || !fn)
		return EINVAL;
	int e = ctx_waitgroup_add(wg, 1);
	if (!e) {
		e = chan__go(fn, arg, wg_go_done, wg);
		if (e)
			ctx_waitgroup_done(wg); /* back to what it was */
	}
	return e;
}
