/* futex.h: the one way goctx blocks a thread: a 32-bit word to wait on. */
#ifndef GOCTX_FUTEX_H
#define GOCTX_FUTEX_H

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Sleep while *word == expect, until woken or until the absolute
 * CLOCK_MONOTONIC time `abs` (NULL: no limit). Returns 0 when woken or when
 * the word had already changed, EINTR for a signal or spurious wake, and
 * ETIMEDOUT when abs passed. Callers always re-check their condition in a
 * loop: a return says nothing about the word. */
static inline int ctx__futex_wait(_Atomic uint32_t *word, uint32_t expect,
                                  const struct timespec *abs)
{
	long r = syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG,
	                 expect, abs, NULL, FUTEX_BITSET_MATCH_ANY);
	if (r == 0)
		return 0;
	if (errno == EAGAIN)
		return 0;
	return errno;
}

/* Wake up to n threads sleeping on word (INT_MAX: all). */
static inline void ctx__futex_wake(_Atomic uint32_t *word, int n)
{
	syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, n, NULL, NULL, 0);
}

#endif
