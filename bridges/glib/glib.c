/* glib.c: goctx contexts as GCancellables and GSources (see goctx/glib.h).
 *
 * Context -> GCancellable. An after-func on the context cancels the
 * cancellable. The link holds only a GWeakRef to it: g_weak_ref_get gives a
 * strong reference, or NULL once the last reference has gone (GObject clears
 * weak refs before dispose, under its own lock), so the after-func never
 * cancels a dying object. A weak notify, run when the cancellable is
 * disposed, stops the after-func (ctx_after_stop waits if it is running in
 * another thread; that run then finds the weak ref empty, or holds a strong
 * reference and so is not racing with dispose at all) and frees the link.
 * If the after-func itself drops the last reference, dispose runs inside it:
 * ctx_after_stop knows and does not wait, and the after-func touches nothing
 * after its g_object_unref.
 *
 * GCancellable -> context. The context has two cancel handles: the caller's
 * and the link's. The link's is taken (atomic exchange) by whichever comes
 * first: the "cancelled" handler, which cancels with CTX_GLIB_CAUSE_CANCELLED,
 * or the context's after-func once it is done for another reason, which only
 * frees it. The after-func then disconnects the handler with
 * g_signal_handler_disconnect, not g_cancellable_disconnect: the latter waits
 * for a running "cancelled" emission, which deadlocks when the after-func runs
 * inside that emission (the handler cancelled the context, or another handler
 * of the same cancellable did). A handler still running elsewhere at that
 * moment finds the handle taken and does nothing; GSignal keeps its data
 * until it returns (the link is counted: handler and after-func).
 *
 * Source: see "the source" below.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "goctx/glib.h"

/* ---- context -> GCancellable ---- */

struct to_gcancel {
	GWeakRef cancellable;
	/* Written before the caller gets the cancellable; read at dispose,
	 * maybe in another thread, ordered by GObject's reference count. That
	 * order is made of GLib's atomics, which ThreadSanitizer does not see
	 * (GLib is not instrumented), so the pair is an atomic of ours too:
	 * the release store pairs with the acquire load in to_gcancel_gone. */
	_Atomic(ctx_after_t *) after;
};

static void to_gcancel_fire(void *arg)
{
	struct to_gcancel *l = arg;
	GCancellable *c = g_weak_ref_get(&l->cancellable);
	if (c) {
		g_cancellable_cancel(c);
		g_object_unref(c); /* may dispose c here: l is gone after this */
	}
}

static void to_gcancel_gone(gpointer data, GObject *where_the_object_was)
{
	(void)where_the_object_was;
	struct to_gcancel *l = data;
	ctx_after_stop(atomic_load_explicit(&l->after, memory_order_acquire));
	g_weak_ref_clear(&l->cancellable);
	g_free(l);
}

GCancellable *ctx_glib_cancellable_new(ctx_t *ctx)
{
	g_return_val_if_fail(ctx != NULL, NULL);
	GCancellable *c = g_cancellable_new();
	struct to_gcancel *l = g_new0(struct to_gcancel, 1);
	g_weak_ref_init(&l->cancellable, c);
	ctx_after_t *after;
	int err = ctx_after_func(ctx, to_gcancel_fire, l, &after);
	if (err != 0) {
		g_weak_ref_clear(&l->cancellable);
		g_free(l);
		g_object_unref(c);
		errno = err;
		return NULL;
	}
	atomic_store_explicit(&l->after, after, memory_order_release);
	g_object_weak_ref(G_OBJECT(c), to_gcancel_gone, l);
	return c;
}

/* ---- GCancellable -> context ---- */

struct from_gcancel {
	atomic_int refs;                    /* the signal handler's, the after-func's */
	_Atomic(ctx_cancel_t *) cancel;     /* the link's handle; taken once */
	GCancellable *cancellable;          /* held until the context is done */
	gulong handler;                     /* 0: none (already cancelled at connect) */
};

static void from_gcancel_unref(gpointer data)
{
	struct from_gcancel *l = data;
	if (atomic_fetch_sub_explicit(&l->refs, 1, memory_order_acq_rel) == 1)
		g_free(l);
}

static void from_gcancel_cancelled(GCancellable *c, gpointer data)
{
	(void)c;
	struct from_gcancel *l = data;
	/* GSignal keeps l (the handler's reference) until this returns. The
	 * extra count makes that order visible to ThreadSanitizer as well: the
	 * last from_gcancel_unref, in whichever thread, acquires this release. */
	atomic_fetch_add_explicit(&l->refs, 1, memory_order_relaxed);
	ctx_cancel_t *h = atomic_exchange_explicit(&l->cancel, NULL, memory_order_acq_rel);
	if (h)
		ctx_cancel_cause(h, CTX_GLIB_CAUSE_CANCELLED);
	from_gcancel_unref(l);
}

static void from_gcancel_done(void *arg)
{
	struct from_gcancel *l = arg;
	ctx_cancel_t *h = atomic_exchange_explicit(&l->cancel, NULL, memory_order_acq_rel);
	if (h)
		ctx_cancel(h); /* already done: this only frees the handle */
	if (l->handler)
		g_signal_handler_disconnect(l->cancellable, l->handler);
	g_object_unref(l->cancellable);
	from_gcancel_unref(l);
}

ctx_t *ctx_glib_with_cancellable(ctx_t *parent, GCancellable *cancellable,
                                 ctx_cancel_t **cancel)
{
	if (cancel)
		*cancel = NULL;
	g_return_val_if_fail(G_IS_CANCELLABLE(cancellable), (errno = EINVAL, NULL));
	ctx_cancel_t *mine;
	ctx_t *ctx = ctx_with_cancel(parent, &mine);
	if (!ctx)
		return NULL;
	struct from_gcancel *l = g_new0(struct from_gcancel, 1);
	atomic_init(&l->refs, 2);
	/* With cancel NULL the caller never cancels: the link's is the only handle. */
	atomic_init(&l->cancel, cancel ? ctx_cancel_dup(mine) : mine);
	l->cancellable = g_object_ref(cancellable);
	/* Calls the handler at once (and drops its reference) if cancellable is
	 * cancelled already: ctx is then born done. */
	l->handler = g_cancellable_connect(cancellable, G_CALLBACK(from_gcancel_cancelled), l,
	                                   from_gcancel_unref);
	int err = ctx_after_func(ctx, from_gcancel_done, l, NULL);
	if (err != 0) {
		/* Undo as the after-func would, with the caller's handle too. */
		if (cancel)
			ctx_cancel(mine);
		else
			ctx_cancel(atomic_exchange(&l->cancel, NULL));
		from_gcancel_done(l);
		ctx_release(ctx);
		errno = err;
		return NULL;
	}
	if (cancel)
		*cancel = mine;
	return ctx;
}

/* ---- the source ----
 *
 * The after-func sets the source's ready time to 0 from the cancelling
 * thread, which wakes the GMainContext it is attached to. The hard part is
 * GLib's: g_source_set_ready_time fails a critical on a source whose count
 * is 0, and the count of an unattached source reaches 0 with no hook of
 * ours before it (GLib's own cancellable source copes with a resurrection
 * in its dispose function, which can leak a source in 2.74). So the
 * after-func only touches a source that is attached and not destroyed: its
 * GMainContext holds a reference then. "Not destroyed" needs a hook at
 * destroy, which GSource has only for child sources: a destroyed source
 * destroys and drops its children, and an unattached one drops them when
 * freed. So each source has a child (struct ctx_hook) that is never ready;
 * its finalize clears `alive` under `mu` and stops the after-func. The
 * after-func holds `mu` while it reads the parent's GMainContext and sets
 * the ready time; lock order: mu, then GLib's context lock (GLib calls a
 * finalize with the context lock released).
 *
 * A source not yet attached when the context is done is caught by prepare,
 * which also reports a done context, once (`fired`, loop thread only). */

struct ctx_source {
	GSource source;
	ctx_t *ctx;     /* held until finalize */
	gboolean fired; /* the callback has been called; loop thread only */
};

struct ctx_hook {
	GSource source;
	pthread_mutex_t mu;
	bool alive;                   /* parent attached-or-not but not destroyed; guarded by mu */
	GSource *parent;              /* valid while alive */
	_Atomic(ctx_after_t *) after; /* stopped in finalize (as to_gcancel's, ordered by GLib) */
};

static void source_fire(void *arg)
{
	struct ctx_hook *h = arg;
	pthread_mutex_lock(&h->mu);
	/* Attached and not destroyed: its GMainContext holds a reference. The
	 * field is read directly (GSource's struct is public) because
	 * g_source_get_context, like g_source_set_ready_time, fails a critical
	 * on the count-0 unattached source this check is there to skip. An
	 * attach racing this read is no loss: prepare sees the done context. */
	if (h->alive && h->parent->context)
		g_source_set_ready_time(h->parent, 0);
	pthread_mutex_unlock(&h->mu);
}

static gboolean source_prepare(GSource *source, gint *timeout)
{
	struct ctx_source *s = (struct ctx_source *)source;
	*timeout = -1;
	return !s->fired && ctx_done(s->ctx);
}

static gboolean source_dispatch(GSource *source, GSourceFunc callback, gpointer user_data)
{
	struct ctx_source *s = (struct ctx_source *)source;
	g_source_set_ready_time(source, -1);
	if (s->fired) /* woken again by a late source_fire: nothing to report */
		return G_SOURCE_CONTINUE;
	s->fired = TRUE;
	if (!callback)
		return G_SOURCE_REMOVE;
	return ((ctx_glib_source_func)(void (*)(void))callback)(s->ctx, user_data);
}

static void source_finalize(GSource *source)
{
	ctx_release(((struct ctx_source *)source)->ctx);
}

static GSourceFuncs source_funcs = {
	.prepare = source_prepare,
	.check = NULL,
	.dispatch = source_dispatch,
	.finalize = source_finalize,
};

static gboolean hook_dispatch(GSource *source, GSourceFunc callback, gpointer user_data)
{
	(void)source;
	(void)callback;
	(void)user_data;
	return G_SOURCE_CONTINUE; /* never ready: never called */
}

static void hook_finalize(GSource *source)
{
	struct ctx_hook *h = (struct ctx_hook *)source;
	pthread_mutex_lock(&h->mu);
	h->alive = false;
	pthread_mutex_unlock(&h->mu);
	/* Waits for a source_fire running elsewhere; none starts after this. */
	ctx_after_stop(atomic_load_explicit(&h->after, memory_order_acquire));
	pthread_mutex_destroy(&h->mu);
}

static GSourceFuncs hook_funcs = {
	.prepare = NULL,
	.check = NULL,
	.dispatch = hook_dispatch,
	.finalize = hook_finalize,
};

GSource *ctx_glib_source_new(ctx_t *ctx)
{
	g_return_val_if_fail(ctx != NULL, NULL);
	GSource *source = g_source_new(&source_funcs, sizeof(struct ctx_source));
	struct ctx_source *s = (struct ctx_source *)source;
	g_source_set_name(source, "goctx context");
	s->ctx = ctx_retain(ctx);
	s->fired = FALSE;

	GSource *child = g_source_new(&hook_funcs, sizeof(struct ctx_hook));
	struct ctx_hook *h = (struct ctx_hook *)child;
	g_source_set_name(child, "goctx context (destroy hook)");
	pthread_mutex_init(&h->mu, NULL);
	h->alive = true;
	h->parent = source;
	atomic_init(&h->after, NULL);
	/* For a context done already source_fire finds the source unattached:
	 * prepare reports it on the first iteration. */
	ctx_after_t *after;
	int err = ctx_after_func(ctx, source_fire, h, &after);
	if (err != 0) {
		g_source_unref(child);
		g_source_unref(source);
		errno = err;
		return NULL;
	}
	atomic_store_explicit(&h->after, after, memory_order_release);
	g_source_add_child_source(source, child);
	g_source_unref(child); /* the parent holds it */
	return source;
}
