/* common.c: the parts of the platform layer that POSIX alone provides on
 * every supported system (clock, CPU count, threads, fork hooks). */
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
	return pthread_atfork(prepare, parent, child);
}
