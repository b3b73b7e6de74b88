/* common.c: the parts of the platform layer that POSIX alone provides on
 * every supported system (clock, CPU count, threads, fork hooks, condition
 * variables timed on the monotonic clock). */
#include <errno.h>
#include <signal.h>
#include <unistd.h>

#include "os.h"

ctx_time_t ctx__os_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (ctx_time_t)ts.tv_sec * CTX_SECOND + ts.tv_nsec;
}

int ctx__os_ncpu(void)
{
	/* Relaxed: any thread computing it gets the same answer. */
	static _Atomic int ncpu;
	int n = atomic_load_explicit(&ncpu, memory_order_relaxed);
	if (!n) {
		long v = sysconf(_SC_NPROCESSORS_ONLN);
		n = v > 0 ? (int)v : 1;
		atomic_store_explicit(&ncpu, n, memory_order_relaxed);
	}
	return n;
}

int ctx__os_thread_start(void *(*fn)(void *), void *arg)
{
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_t attr;
	int e = pthread_attr_init(&attr);
	if (!e) {
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		pthread_t t;
		e = pthread_create(&t, &attr, fn, arg);
		pthread_attr_destroy(&attr);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return e;
}

int ctx__os_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void))
{
#if GOCTX_OS_POSIX
	ctx__os_lot_init(); /* the parking lot's handlers first (posix.c) */
#endif
	return pthread_atfork(prepare, parent, child);
}

#if defined(__APPLE__)
/* macOS: NOT COMPILED OR TESTED HERE. It has no pthread_condattr_setclock;
 * condition variables wait with pthread_cond_timedwait_relative_np, a
 * relative time measured on its own monotonic clock. */
int ctx__os_cond_init(pthread_cond_t *cond) { return pthread_cond_init(cond, NULL); }

int ctx__os_cond_timedwait(pthread_cond_t *cond, pthread_mutex_t *mu, const struct timespec *abs)
{
	ctx_time_t left = ((ctx_time_t)abs->tv_sec * CTX_SECOND + abs->tv_nsec) - ctx__os_now();
	if (left <= 0)
		return ETIMEDOUT;
	struct timespec rel = ctx__os_timespec(left);
	return pthread_cond_timedwait_relative_np(cond, mu, &rel);
}
#else
int ctx__os_cond_init(pthread_cond_t *cond)
{
	pthread_condattr_t a;
	int e = pthread_condattr_init(&a);
	if (e)
		return e;
	e = pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	if (!e)
		e = pthread_cond_init(cond, &a);
	pthread_condattr_destroy(&a);
	return e;
}

int ctx__os_cond_timedwait(pthread_cond_t *cond, pthread_mutex_t *mu, const struct timespec *abs)
{
	return pthread_cond_timedwait(cond, mu, abs);
}
#endif
