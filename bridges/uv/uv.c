/* uv.c: goctx contexts on a libuv loop (see goctx/uv.h).
 *
 * Design. Each loop with watches has one struct ctx_uv__loop: a uv_async_t,
 * a ready queue and a closing queue. A started watch is one after-func on
 * its context; the after-func (in whichever thread cancelled, or the timer
 * thread) appends the watch to the ready queue under `mu` and calls
 * uv_async_send. The async callback, on the loop's thread, pops the watches
 * one at a time under `mu` and calls their callbacks, then runs the close
 * callbacks queued before it started.
 *
 * Why a stopped or closed watch is never touched again. ctx_uv_watch_stop
 * calls ctx_after_stop, which either stops the after-func before it runs or
 * waits until it has returned; in the second case the watch is in a ready
 * queue by then, and stop unlinks it under `mu`. The queues are doubly
 * linked (q_prev points at the previous q_next) so that unlinking works the
 * same whether the watch is in the shared queue or in the batch the async
 * callback took out of it. So after stop, no thread holds the watch, and a
 * close callback (run later, on the loop's thread) can let the caller free it.
 *
 * The shared state lives from the first init on its loop to the close
 * callback of its last watch; then its async handle is closed and the state
 * freed in that handle's close callback. The registry maps loops to their
 * state (a list: few loops per process) under `registry_mu`; only init and
 * the last close take it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "goctx/uv.h"

enum {
	W_ACTIVE = 1u << 0,  /* started, callback not yet run nor stopped */
	W_REF = 1u << 1,     /* referenced (uv_ref) */
	W_CLOSING = 1u << 2, /* ctx_uv_watch_close called */
};

struct ctx_uv__loop {
	uv_async_t async;          /* the loop's one async handle; data = this */
	uv_loop_t *loop;
	struct ctx_uv__loop *next; /* in the registry; guarded by registry_mu */
	pthread_mutex_t mu;        /* guards the ready queue and every q_next/q_prev in it */
	ctx_uv_watch_t *ready;     /* watches whose context is done, in that order */
	ctx_uv_watch_t **ready_tail;
	/* Loop thread only: */
	ctx_uv_watch_t *closing;   /* close callbacks to run, in close order */
	ctx_uv_watch_t **closing_tail;
	size_t watches;            /* initialised and not yet through their close callback */
	size_t keep;               /* active referenced watches + closing ones */
	bool async_ref;            /* whether `async` is referenced (== keep > 0) */
};

static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static struct ctx_uv__loop *registry;

static void async_cb(uv_async_t *async);

static void update_ref(struct ctx_uv__loop *s)
{
	bool want = s->keep > 0;
	if (want == s->async_ref)
		return;
	s->async_ref = want;
	if (want)
		uv_ref((uv_handle_t *)&s->async);
	else
		uv_unref((uv_handle_t *)&s->async);
}

static void keep_add(struct ctx_uv__loop *s) { s->keep++; update_ref(s); }
static void keep_sub(struct ctx_uv__loop *s) { s->keep--; update_ref(s); }

/* Unlink w from whichever queue holds it; caller holds s->mu. */
static void unlink_ready(struct ctx_uv__loop *s, ctx_uv_watch_t *w)
{
	if (!w->q_prev)
		return;
	if (s->ready_tail == &w->q_next)
		s->ready_tail = w->q_prev;
	*w->q_prev = w->q_next;
	if (w->q_next)
		w->q_next->q_prev = w->q_prev;
	w->q_next = NULL;
	w->q_prev = NULL;
}

/* The shared state of loop, made on first use; NULL and *err on failure. */
static struct ctx_uv__loop *loop_get(uv_loop_t *loop, int *err)
{
	pthread_mutex_lock(&registry_mu);
	struct ctx_uv__loop *s = registry;
	while (s && s->loop != loop)
		s = s->next;
	if (!s) {
		s = calloc(1, sizeof *s);
		*err = UV_ENOMEM;
		if (s && (*err = uv_async_init(loop, &s->async, async_cb)) != 0) {
			free(s);
			s = NULL;
		}
		if (s) {
			s->async.data = s;
			s->loop = loop;
			pthread_mutex_init(&s->mu, NULL);
			s->ready_tail = &s->ready;
			s->closing_tail = &s->closing;
			uv_unref((uv_handle_t *)&s->async);
			s->next = registry;
			registry = s;
		}
	}
	pthread_mutex_unlock(&registry_mu);
	return s;
}

static void loop_free(uv_handle_t *h)
{
	struct ctx_uv__loop *s = h->data;
	pthread_mutex_destroy(&s->mu);
	free(s);
}

/* The last watch of s has closed: take s out of the registry (a later init
 * on this loop makes a new one) and close its async handle. */
static void loop_retire(struct ctx_uv__loop *s)
{
	pthread_mutex_lock(&registry_mu);
	struct ctx_uv__loop **pp = &registry;
	while (*pp != s)
		pp = &(*pp)->next;
	*pp = s->next;
	pthread_mutex_unlock(&registry_mu);
	uv_close((uv_handle_t *)&s->async, loop_free);
}

/* The after-func: any thread, once the watched context is done. */
static void on_done(void *arg)
{
	ctx_uv_watch_t *w = arg;
	struct ctx_uv__loop *s = w->shared;
	pthread_mutex_lock(&s->mu);
	w->q_next = NULL;
	w->q_prev = s->ready_tail;
	*s->ready_tail = w;
	s->ready_tail = &w->q_next;
	pthread_mutex_unlock(&s->mu);
	/* s outlives this call: stop (before any close) waits for us. */
	uv_async_send(&s->async);
}

static void async_cb(uv_async_t *async)
{
	struct ctx_uv__loop *s = async->data;

	/* Close callbacks requested so far; later ones wait for the next round
	 * (each close sends the async again). Taken before the ready batch, so
	 * that every watch in it was unlinked from the ready queue by its stop. */
	ctx_uv_watch_t *closing = s->closing;
	s->closing = NULL;
	s->closing_tail = &s->closing;

	/* This round's ready batch: what is queued now. Watches done while it
	 * runs wait for the next round (their after-func sends the async). */
	ctx_uv_watch_t *batch;
	pthread_mutex_lock(&s->mu);
	batch = s->ready;
	if (batch)
		batch->q_prev = &batch;
	s->ready = NULL;
	s->ready_tail = &s->ready;
	pthread_mutex_unlock(&s->mu);

	for (;;) {
		pthread_mutex_lock(&s->mu);
		ctx_uv_watch_t *w = batch;
		if (w) {
			batch = w->q_next;
			if (batch)
				batch->q_prev = &batch;
			w->q_next = NULL;
			w->q_prev = NULL;
		}
		pthread_mutex_unlock(&s->mu);
		if (!w)
			break;
		/* Its after-func has run; the handle only has to be freed. */
		ctx_after_stop(w->after);
		w->after = NULL;
		ctx_t *ctx = w->ctx;
		w->ctx = NULL;
		w->flags &= ~W_ACTIVE;
		if (w->flags & W_REF)
			keep_sub(s);
		w->cb(w, ctx_err(ctx));
		ctx_release(ctx);
	}

	while (closing) {
		ctx_uv_watch_t *w = closing;
		closing = w->q_next;
		w->q_next = NULL;
		s->watches--;
		keep_sub(s);
		if (w->close_cb)
			w->close_cb(w);
	}
	if (s->watches == 0)
		loop_retire(s);
}

int ctx_uv_watch_init(uv_loop_t *loop, ctx_uv_watch_t *w)
{
	if (!loop || !w)
		return UV_EINVAL;
	int err;
	struct ctx_uv__loop *s = loop_get(loop, &err);
	if (!s)
		return err;
	w->loop = loop;
	w->shared = s;
	w->ctx = NULL;
	w->after = NULL;
	w->cb = NULL;
	w->close_cb = NULL;
	w->q_next = NULL;
	w->q_prev = NULL;
	w->flags = W_REF;
	s->watches++;
	return 0;
}

int ctx_uv_watch_start(ctx_uv_watch_t *w, ctx_t *ctx, ctx_uv_watch_cb cb)
{
	if (!w || !ctx || !cb || (w->flags & W_CLOSING))
		return UV_EINVAL;
	ctx_uv_watch_stop(w);
	w->ctx = ctx_retain(ctx);
	w->cb = cb;
	w->flags |= W_ACTIVE;
	if (w->flags & W_REF)
		keep_add(w->shared);
	/* For a context already done this queues w at once (on_done runs here):
	 * the callback still waits for the loop. */
	int err = ctx_after_func(ctx, on_done, w, &w->after);
	if (err != 0) {
		w->after = NULL;
		w->flags &= ~W_ACTIVE;
		if (w->flags & W_REF)
			keep_sub(w->shared);
		w->ctx = NULL;
		ctx_release(ctx);
		return err == ENOMEM ? UV_ENOMEM : UV_EINVAL;
	}
	return 0;
}

int ctx_uv_watch_stop(ctx_uv_watch_t *w)
{
	if (!w || !(w->flags & W_ACTIVE))
		return 0;
	struct ctx_uv__loop *s = w->shared;
	if (!ctx_after_stop(w->after)) {
		/* on_done has run (ctx_after_stop waited for it if it was running):
		 * w is queued, in the shared queue or in the batch of a running
		 * async_cb. */
		pthread_mutex_lock(&s->mu);
		unlink_ready(s, w);
		pthread_mutex_unlock(&s->mu);
	}
	w->after = NULL;
	w->flags &= ~W_ACTIVE;
	if (w->flags & W_REF)
		keep_sub(s);
	ctx_t *ctx = w->ctx;
	w->ctx = NULL;
	ctx_release(ctx);
	return 0;
}

void ctx_uv_watch_close(ctx_uv_watch_t *w, ctx_uv_close_cb close_cb)
{
	if (!w || (w->flags & W_CLOSING))
		return;
	ctx_uv_watch_stop(w);
	struct ctx_uv__loop *s = w->shared;
	w->flags |= W_CLOSING;
	w->close_cb = close_cb;
	w->q_next = NULL;
	*s->closing_tail = w;
	s->closing_tail = &w->q_next;
	keep_add(s); /* a closing watch keeps the loop alive, as closing handles do */
	uv_async_send(&s->async);
}

void ctx_uv_watch_ref(ctx_uv_watch_t *w)
{
	if (w->flags & W_REF)
		return;
	w->flags |= W_REF;
	if (w->flags & W_ACTIVE)
		keep_add(w->shared);
}

void ctx_uv_watch_unref(ctx_uv_watch_t *w)
{
	if (!(w->flags & W_REF))
		return;
	w->flags &= ~W_REF;
	if (w->flags & W_ACTIVE)
		keep_sub(w->shared);
}

int ctx_uv_watch_has_ref(const ctx_uv_watch_t *w) { return (w->flags & W_REF) != 0; }
int ctx_uv_watch_is_active(const ctx_uv_watch_t *w) { return (w->flags & W_ACTIVE) != 0; }
int ctx_uv_watch_is_closing(const ctx_uv_watch_t *w) { return (w->flags & W_CLOSING) != 0; }

bool ctx_uv_is_bridge_handle(const uv_handle_t *h)
{
	return h && h->type == UV_ASYNC && ((const uv_async_t *)h)->async_cb == async_cb;
}
