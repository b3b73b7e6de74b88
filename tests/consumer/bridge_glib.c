/* An outside program built against the installed goctx-glib (pkg-config
 * goctx-glib): a GCancellable from a 20 ms context, and a context from a
 * GCancellable. Exits 0 when both directions work. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>

#include <goctx/glib.h>

int main(void) {
    ctx_cancel_t *cancel;
    ctx_t *ctx = ctx_with_timeout(ctx_background(), 20 * CTX_MILLISECOND, &cancel);
    GCancellable *c = ctx ? ctx_glib_cancellable_new(ctx) : NULL;
    if (!c)
        return 1;
    int err = ctx_wait(ctx, 10 * CTX_SECOND);
    /* The bridge cancels c from an after-func, which the timer thread runs
     * just after it made ctx done: ctx_wait may return first. Wait for the
     * cancellable's own descriptor (bounded). */
    int fd = g_cancellable_get_fd(c);
    if (fd >= 0) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        while (poll(&p, 1, 10000) < 0 && errno == EINTR)
            ;
        g_cancellable_release_fd(c);
    }
    gboolean cancelled = g_cancellable_is_cancelled(c);
    g_object_unref(c);
    ctx_cancel(cancel);
    ctx_release(ctx);

    GCancellable *g = g_cancellable_new();
    ctx_t *back = ctx_glib_with_cancellable(ctx_background(), g, &cancel);
    if (!back)
        return 1;
    g_cancellable_cancel(g);
    int cause = ctx_cause(back);
    ctx_cancel(cancel);
    ctx_release(back);
    g_object_unref(g);
    if (err != ETIMEDOUT || !cancelled || cause != CTX_GLIB_CAUSE_CANCELLED) {
        fprintf(stderr, "consumer goctx-glib: err %d, cancelled %d, cause %d\n", err, cancelled,
                cause);
        return 1;
    }
    printf("consumer goctx-glib: %s, then a cancelled GCancellable\n", ctx_strerror(err));
    return 0;
}
