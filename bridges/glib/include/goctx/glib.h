/* goctx/glib.h: goctx contexts as GCancellables and GSources
 * (libgoctx-glib, pkg-config goctx-glib).
 *
 * Both directions, and a source for any GMainContext:
 *
 *   ctx_glib_cancellable_new(ctx)    a GCancellable cancelled once ctx is
 *                                    done: pass it to any GIO call, which then
 *                                    fails with G_IO_ERROR_CANCELLED; ctx_err
 *                                    says whether it was a deadline.
 *   ctx_glib_with_cancellable(p, c)  a child context of p, also cancelled
 *                                    when the GCancellable c is (cause
 *                                    CTX_GLIB_CAUSE_CANCELLED).
 *   ctx_glib_source_new(ctx)         a GSource that dispatches once ctx is
 *                                    done. No descriptor: its ready time is
 *                                    set from whichever thread cancelled,
 *                                    which wakes the GMainContext it is
 *                                    attached to, as GLib's own
 *                                    g_cancellable_source_new does.
 *
 *     GCancellable *c = ctx_glib_cancellable_new(ctx);
 *     gssize n = g_input_stream_read(in, buf, sizeof buf, c, &error);
 *     if (n < 0 && g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
 *         ... ctx_err(ctx) is ETIMEDOUT or ECANCELED ...
 *     g_object_unref(c);
 *
 * Threads. Every function here may be called from any thread. A context is
 * done in the thread that cancels it (or goctx's timer thread for a
 * deadline): that thread runs g_cancellable_cancel for a cancellable from
 * ctx_glib_cancellable_new, so its "cancelled" handlers run there, as they
 * would for any GCancellable cancelled from that thread; GIO's own blocking
 * and async calls react on their own threads, through the cancellable's
 * wakeup. The other way round, ctx_glib_with_cancellable cancels its context
 * in the thread that runs g_cancellable_cancel (after-funcs of that context
 * run there). A source's callback runs in the thread that iterates the
 * GMainContext the source is attached to, as every GSource's does.
 *
 * References. GObject and GSource references follow GLib's rules; the
 * context references follow goctx's. Nothing here creates a cycle that
 * outlives a done context:
 *  - ctx_glib_cancellable_new returns a new reference; the link to ctx holds
 *    only a weak reference to the cancellable, and while ctx is live the
 *    link holds ctx (a goctx after-func). When the cancellable is finalized
 *    the link is stopped and ctx let go, so dropping the cancellable early
 *    leaves nothing behind.
 *  - ctx_glib_with_cancellable's context holds a reference to the
 *    GCancellable (and one "cancelled" handler on it) until the context is
 *    done; then the handler is disconnected and the reference dropped.
 *  - a source holds a reference to its context until the source is finalized.
 *
 * Errors: NULL arguments are programming errors, reported GLib's way
 * (g_return_val_if_fail: a critical warning, then NULL). A goctx allocation
 * that fails gives NULL with errno ENOMEM (GLib's own allocations abort).
 */
#ifndef GOCTX_GLIB_H
#define GOCTX_GLIB_H

#include <gio/gio.h>

#include <goctx.h>

G_BEGIN_DECLS

/* The cause of a context from ctx_glib_with_cancellable that was cancelled
 * because its GCancellable was (its ctx_err is ECANCELED, as for any
 * cancel). A positive int outside errno's range; ctx_strerror gives
 * strerror's "Unknown error 536870931" for it. */
#define CTX_GLIB_CAUSE_CANCELLED (0x20000000 | G_IO_ERROR_CANCELLED)

/* A new GCancellable (the caller owns the reference) that is cancelled once
 * ctx is done: at once, before this returns, if ctx is done already; never
 * for a context that can never be done (ctx_background). NULL with errno
 * ENOMEM if goctx runs out of memory. */
GCancellable *ctx_glib_cancellable_new(ctx_t *ctx);

/* A child of parent (as ctx_with_cancel: *cancel must be used once; cancel
 * may be NULL when only the cancellable and the parent end it) that is also
 * cancelled when `cancellable` is, with cause CTX_GLIB_CAUSE_CANCELLED; born
 * done with that cause if it already is. It holds a reference to
 * `cancellable` until it is done. NULL with errno (EINVAL, ENOMEM) and
 * *cancel NULL on failure. */
ctx_t *ctx_glib_with_cancellable(ctx_t *parent, GCancellable *cancellable,
                                 ctx_cancel_t **cancel);

/* The callback of a source from ctx_glib_source_new (set it with
 * g_source_set_callback, cast to GSourceFunc, as for
 * GCancellableSourceFunc). ctx is the source's context (borrowed). Return
 * G_SOURCE_REMOVE to destroy the source; with G_SOURCE_CONTINUE it stays
 * attached but never dispatches again (a context is done only once). */
typedef gboolean (*ctx_glib_source_func)(ctx_t *ctx, gpointer user_data);

/* A new GSource (the caller owns the reference; attach it with
 * g_source_attach to any GMainContext) that dispatches once ctx is done, on
 * the next iteration of its context if ctx is done already. It holds a
 * reference to ctx until it is finalized. Descriptor-free: no GPollFD; the
 * ready time wakes the context (and a prepare function, one atomic load,
 * catches a context done before the source was attached). It has one child
 * source of its own, never ready (GLib destroys children with their parent:
 * that is how the after-func learns the source is gone). NULL with errno
 * ENOMEM if goctx runs out of memory. */
GSource *ctx_glib_source_new(ctx_t *ctx);

G_END_DECLS

#endif /* GOCTX_GLIB_H */
