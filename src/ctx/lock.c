/* lock.c: the slow paths of the 4-byte per-node futex lock (Drepper's
 * "Futexes are tricky", mutex 3): 0 free, 1 held, 2 held and someone may
 * sleep. The fast paths are inline in internal.h. */
#include "internal.h"

void ctx__lock_slow(_Atomic uint32_t *l)
{
	/* A short spin: node locks are held for a handful of pointer writes. */
	for (int i = 0; i < 100; i++) {
		uint32_t z = 0;
		if (atomic_load_explicit(l, memory_order_relaxed) == 0 &&
		    atomic_compare_exchange_weak_explicit(l, &z, 1, memory_order_acquire,
		                                          memory_order_relaxed))
			return;
		ctx__os_relax();
	}
	/* From here on we may sleep, so the lock word says 2. */
	while (atomic_exchange_explicit(l, 2, memory_order_acquire) != 0)
		ctx__os_wait(l, 2, NULL);
}

void ctx__unlock_slow(_Atomic uint32_t *l)
{
	/* The releasing exchange in ctx__unlock saw 2: a sleeper may exist. */
	ctx__os_wake(l, 1);
}
