/* goctx/uv.h: goctx contexts on a libuv loop (libgoctx-uv, pkg-config
 * goctx-uv).
 *
 * A ctx_uv_watch_t is a watch handle in libuv's style: the caller allocates
 * it, ctx_uv_watch_init() ties it to a loop, ctx_uv_watch_start() gives it a
 * context and a callback, and ctx_uv_watch_close() ends it with a close
 * callback that runs on a later loop iteration, after which the memory may be
 * freed. Once the context is done (cancelled from any thread, or its
 * deadline fired on goctx's timer thread) the callback runs on the loop's
 * thread with ctx_err(ctx):
 *
 *     static void on_done(ctx_uv_watch_t *w, int err) {
 *         struct conn *c = w->data;              // err: ETIMEDOUT or ECANCELED
 *         uv_close((uv_handle_t *)&c->tcp, on_tcp_closed);
 *         ctx_uv_watch_close(w, NULL);
 *     }
 *     ctx_uv_watch_init(loop, &c->watch);
 *     c->watch.data = c;
 *     ctx_uv_watch_start(&c->watch, c->ctx, on_done);
 *
 * Threads. Every ctx_uv_* function must be called on the loop's thread (the
 * one that runs uv_run), as libuv's own handle functions must. The context
 * may be cancelled from any thread. That thread (or the timer thread) only
 * queues the watch, under a mutex of the loop's, and calls uv_async_send; the
 * callback itself always runs on the loop's thread from inside uv_run, never
 * inside ctx_cancel and never inside ctx_uv_watch_start, even for a context
 * that is already done (it then runs on the next loop iteration). Callbacks
 * that became due together run in the order their contexts were done.
 *
 * Cost. One uv_async_t per loop, shared by all of its watches: made by the
 * first ctx_uv_watch_init on that loop, closed after the last watch's close
 * callback has run (so uv_loop_close succeeds once every watch is closed and
 * the loop has run). No descriptor and no thread per watch: a started watch
 * is one goctx after-func registration (ctx_after_func) besides the struct.
 *
 * Reference semantics are uv_ref's: a watch starts referenced; an active,
 * referenced watch keeps uv_run(UV_RUN_DEFAULT) running until its callback
 * has run or it is stopped; an unreferenced or inactive one does not; a
 * closing watch keeps the loop alive until its close callback has run. A
 * watch is not a uv_handle_t (libuv has no user-defined handle types), so use
 * ctx_uv_watch_ref/unref/has_ref/is_active/is_closing instead of uv_ref etc.
 * The shared async handle is unreferenced whenever no watch needs the loop.
 *
 * uv_walk sees the shared async handle. A shutdown that closes every handle
 * with uv_walk must skip it (ctx_uv_is_bridge_handle) and close the watches
 * instead; the bridge closes it after the last watch.
 *
 * Errors: the ctx_uv_* functions return 0 or a negative libuv error code
 * (UV_EINVAL, UV_ENOMEM), for uv_strerror; the callback's err is goctx's
 * ctx_err (ECANCELED or ETIMEDOUT, positive).
 */
#ifndef GOCTX_UV_H
#define GOCTX_UV_H

#include <stdbool.h>
#include <uv.h>

#include <goctx.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ctx_uv_watch_s ctx_uv_watch_t;

/* Runs on the loop's thread once the watched context is done; err is its
 * ctx_err. The watch is inactive when this runs (the callback may start it
 * again, or close it); its reference to the context is dropped when the
 * callback returns, so the context stays valid during the callback. */
typedef void (*ctx_uv_watch_cb)(ctx_uv_watch_t *watch, int err);
/* Runs on the loop's thread on an iteration after ctx_uv_watch_close; from
 * then on the bridge never touches the watch's memory. */
typedef void (*ctx_uv_close_cb)(ctx_uv_watch_t *watch);

struct ctx_uv__loop;

struct ctx_uv_watch_s {
	void *data; /* the caller's, as uv_handle_t's data; never touched */
	/* Private; read and written by the bridge on the loop's thread, except
	 * q_next/q_prev (guarded by the loop's queue mutex). */
	uv_loop_t *loop;
	struct ctx_uv__loop *shared; /* the loop's async handle and queue */
	ctx_t *ctx;                  /* held while active */
	ctx_after_t *after;          /* the registration while active */
	ctx_uv_watch_cb cb;
	ctx_uv_close_cb close_cb;
	ctx_uv_watch_t *q_next;      /* in the ready or the closing queue */
	ctx_uv_watch_t **q_prev;     /* NULL when in no queue */
	unsigned flags;
};

/* Tie watch to loop (inactive, referenced). 0, or UV_EINVAL (NULL
 * argument), or UV_ENOMEM or uv_async_init's error (the loop's shared state
 * could not be made). Once it returns 0 the watch must be closed with
 * ctx_uv_watch_close. */
int ctx_uv_watch_init(uv_loop_t *loop, ctx_uv_watch_t *watch);

/* Watch ctx: cb(watch, ctx_err(ctx)) runs on the loop's thread once ctx is
 * done. The watch holds a reference to ctx until the callback has run or the
 * watch is stopped. Starting an active watch stops it first (as
 * uv_timer_start restarts a timer). A context that can never be done
 * (ctx_background) is accepted: the callback never runs. 0, or UV_EINVAL
 * (NULL ctx or cb, or a closing watch) or UV_ENOMEM (nothing changes then;
 * the watch is inactive). */
int ctx_uv_watch_start(ctx_uv_watch_t *watch, ctx_t *ctx, ctx_uv_watch_cb cb);

/* Stop watching: once it returns the callback will not run for the context
 * given to start, even if that context was done already and its callback
 * queued. Releases the context. No-op on an inactive watch; returns 0. May
 * wait (microseconds) for a canceller that is queueing this watch at that
 * moment in another thread. */
int ctx_uv_watch_stop(ctx_uv_watch_t *watch);

/* Stop the watch and close it: close_cb (may be NULL) runs on a later loop
 * iteration, and the watch's memory is free for the caller from then on.
 * Closing a closing watch is a no-op. */
void ctx_uv_watch_close(ctx_uv_watch_t *watch, ctx_uv_close_cb close_cb);

/* uv_ref, uv_unref, uv_has_ref, uv_is_active, uv_is_closing for a watch. */
void ctx_uv_watch_ref(ctx_uv_watch_t *watch);
void ctx_uv_watch_unref(ctx_uv_watch_t *watch);
int ctx_uv_watch_has_ref(const ctx_uv_watch_t *watch);
int ctx_uv_watch_is_active(const ctx_uv_watch_t *watch);
int ctx_uv_watch_is_closing(const ctx_uv_watch_t *watch);

/* True for the bridge's own async handle (for uv_walk); false otherwise. */
bool ctx_uv_is_bridge_handle(const uv_handle_t *handle);

#ifdef __cplusplus
}
#endif

#endif /* GOCTX_UV_H */
