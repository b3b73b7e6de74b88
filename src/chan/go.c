/* go.c: Go's `go` statement as one OS thread per call.
 *
 * Design. A goroutine here is a pthread: chan_go starts it detached,
 * chan_go_start joinable. The start record (struct chan_go) carries fn and
 * arg into the thread. Ownership: for a detached thread the new thread owns
 * the record and frees it before calling fn, so nothing of ours is left
 * allocated while fn runs (a thread still blocked when the process exits
 * holds no library memory); for a joinable thread the handle owns it until
 * chan_go_join frees it. pthread_create's own synchronisation publishes the
 * record to the thread: no atomics are needed.
 *
 * Cost: one pthread_create (a stack mapping, a clone) per call, tens of
 * microseconds, against Go's ~1 µs goroutine. Fine for workers that live a
 * while; a pool is the answer for many short tasks.
 */
#include <errno.h>
#include <pthread.h>

#include "goctx/chan.h"
#include "../ctx/internal.h"

struct chan_go {
	pthread_t tid;       /* joinable handles only; written by pthread_create */
	void (*fn)(void *);  /* fixed */
	void *arg;           /* fixed */
};

static void *chan__go_detached(void *p)
{
	struct chan_go *g = p;
	void (*fn)(void *) = g->fn;
	void *arg = g->arg;
	ctx__free(g);
	fn(arg);
	return NULL;
}

static void *chan__go_joinable(void *p)
{
	struct chan_go *g = p;
	g->fn(g->arg);
	return NULL;
}

int chan_go(void (*fn)(void *arg), void *arg)
{
	if (!fn)
		return EINVAL;
	struct chan_go *g = ctx__alloc(sizeof(*g));
	if (!g)
		return ENOMEM;
	g->fn = fn;
	g->arg = arg;
	pthread_attr_t attr;
	int err = pthread_attr_init(&attr);
	if (err) {
		ctx__free(g);
		return err;
	}
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_t tid;
	err = pthread_create(&tid, &attr, chan__go_detached, g);
	pthread_attr_destroy(&attr);
	if (err)
		ctx__free(g); /* the thread never started: still ours */
	return err;
}

int chan_go_start(chan_go_t **handle, void (*fn)(void *arg), void *arg)
{
	if (!handle || !fn)
		return EINVAL;
	*handle = NULL;
	struct chan_go *g = ctx__alloc(sizeof(*g));
	if (!g)
		return ENOMEM;
	g->fn = fn;
	g->arg = arg;
	int err = pthread_create(&g->tid, NULL, chan__go_joinable, g);
	if (err) {
		ctx__free(g);
		return err;
	}
	*handle = g;
	return 0;
}

int chan_go_join(chan_go_t *handle)
{
	if (!handle)
		return EINVAL;
	int err = pthread_join(handle->tid, NULL);
	if (err)
		return err; /* e.g. EDEADLK joining oneself: the handle stays valid */
	ctx__free(handle);
	return 0;
}
