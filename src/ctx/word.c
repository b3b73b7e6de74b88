/* word.c: the one way the library blocks on a state word: a short adaptive
 * spin, then the platform's wait with the WAITERS bit protocol.
 * Uses: os. */
#include <errno.h>
#include <sched.h>

#include "internal.h"

/* How long a wait spins before it sleeps. */
#define SPIN_NS (20 * CTX_MICROSECOND)

bool ctx__spin(_Atomic uint32_t *word, bool (*ready)(uint32_t), ctx_time_t until, uint32_t *out)
{
	/* A wake that comes within a few microseconds (a hand-off between two
	 * busy threads) then costs no system call on either side, since the
	 * waker only calls futex_wake when the sleeper said it sleeps. Bounded
	 * in time, and skipped on a single CPU, so an idle wait burns no core. */
	if (ctx__os_ncpu() < 2)
		return false;
	ctx_time_t stop = ctx__os_now() + SPIN_NS;
	unsigned rounds = 0;
	for (;;) {
		for (int i = 0; i < 64; i++) {
			/* Acquire: pairs with the release that changed the word. */
			uint32_t s = atomic_load_explicit(word, memory_order_acquire);
			if (ready(s)) {
				*out = s;
				return true;
			}
			ctx__os_relax();
		}
		/* The thread that will change the word may be waiting for this
		 * CPU (more runnable threads than CPUs): let it run now and then. */
		if (++rounds % 4 == 0)
			sched_yield();
		ctx_time_t now = ctx__os_now();
		if (now >= stop || (until >= 0 && now >= until))
			return false;
	}
}

uint32_t ctx__wait_word(_Atomic uint32_t *word, bool (*ready)(uint32_t), ctx_time_t until)
{
	struct timespec abs, *absp = NULL;
	if (until >= 0) {
		abs = ctx__os_timespec(until);
		absp = &abs;
	}
	uint32_t s;
	if (ctx__spin(word, ready, until, &s))
		return s;
	for (;;) {
		/* Acquire: pairs with the release that changed the word. */
		uint32_t s = atomic_load_explicit(word, memory_order_acquire);
		if (ready(s))
			return s;
		if (until >= 0 && ctx__os_now() >= until)
			return s;
		if (!(s & CTX__WAITERS) &&
		    !atomic_compare_exchange_weak_explicit(word, &s, s | CTX__WAITERS,
		                                           memory_order_acquire, memory_order_acquire))
			continue; /* the word moved: look again */
		/* Whoever changes what ready() looks at clears WAITERS and wakes
		 * all; if it already did, the word differs and this returns. */
		ctx__os_wait(word, s | CTX__WAITERS, absp);
	}
}

static bool published(uint32_t s) { return !(s & CTX__PUBLISHING); }

uint32_t ctx__published(const struct ctx__cnode *c, uint32_t s)
{
	if (!(s & CTX__PUBLISHING))
		return s;
	/* The canceller is between two stores around one write(2). */
	return ctx__wait_word((_Atomic uint32_t *)&c->state, published, -1);
}
