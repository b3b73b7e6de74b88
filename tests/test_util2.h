/* test_util2.h: helpers shared by test_wait, test_fd, test_after, test_format
 * and test_refs: a counting (and failable) allocator, real-time stopwatches,
 * and bounded waits that turn a hang into a test failure instead of a CTest
 * timeout. Header-only (static functions), included by each test program. */
#ifndef GOCTX_TEST_UTIL2_H
#define GOCTX_TEST_UTIL2_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "goctx.h"

/* ---- counting allocator ---- */

static atomic_long tu_allocs;   /* successful allocations */
static atomic_long tu_frees;    /* frees of non-NULL pointers */
static atomic_int tu_fail_next; /* > 0: that many next allocations fail */

static inline void *tu_alloc(size_t size)
{
	int f = atomic_load(&tu_fail_next);
	while (f > 0) {
		if (atomic_compare_exchange_weak(&tu_fail_next, &f, f - 1))
			return NULL;
	}
	void *p = malloc(size);
	if (p)
		atomic_fetch_add(&tu_allocs, 1);
	return p;
}

static inline void tu_free(void *p)
{
	if (p)
		atomic_fetch_add(&tu_frees, 1);
	free(p);
}

/* Install the counting allocator; must run before any context exists. */
static inline void tu_install_allocator(void)
{
	int e = ctx_set_allocator(tu_alloc, tu_free);
	if (e != 0)
		abort();
}

/* Blocks the library holds right now. */
static inline long tu_live(void) { return atomic_load(&tu_allocs) - atomic_load(&tu_frees); }

/* ---- time ---- */

static inline int64_t tu_mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline int64_t tu_cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline void tu_sleep_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Absolute CLOCK_REALTIME time `ms` from now (for sem_timedwait and
 * pthread_timedjoin_np, which take that clock). */
static inline struct timespec tu_realtime_in(int ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	return ts;
}

/* sem_wait for at most ms; true if the semaphore was taken. */
static inline bool tu_sem_wait_ms(sem_t *s, int ms)
{
	struct timespec ts = tu_realtime_in(ms);
	int r;
	while ((r = sem_timedwait(s, &ts)) != 0 && errno == EINTR)
		;
	return r == 0;
}

/* Join t within ms; true if it ended (then *ret is its result). */
static inline bool tu_join_ms(pthread_t t, int ms, void **ret)
{
	struct timespec ts = tu_realtime_in(ms);
	return pthread_timedjoin_np(t, ret, &ts) == 0;
}

/* Run fn(arg) in a new thread and wait at most ms for it to finish; false
 * means it is stuck (a deadlock): the thread is left behind. */
static inline bool tu_run_bounded(void *(*fn)(void *), void *arg, int ms)
{
	pthread_t t;
	if (pthread_create(&t, NULL, fn, arg) != 0)
		return false;
	if (tu_join_ms(t, ms, NULL))
		return true;
	pthread_detach(t);
	return false;
}

/* Count occurrences of needle in hay (non-overlapping). */
static inline int tu_count(const char *hay, const char *needle)
{
	int n = 0;
	size_t l = strlen(needle);
	for (const char *p = strstr(hay, needle); p; p = strstr(p + l, needle))
		n++;
	return n;
}

#endif
