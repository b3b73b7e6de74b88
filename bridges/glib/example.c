/* example.c (glib_example): GIO reads bounded by a context (goctx/glib.h).
 *
 * 1. A writer thread sends three lines through a pipe, 50 ms apart, then
 *    goes quiet. The reader reads lines with g_data_input_stream_read_line,
 *    passing a GCancellable made from a 300 ms context: it gets the three
 *    lines, then G_IO_ERROR_CANCELLED once the deadline passes, and ctx_err
 *    says it was the deadline.
 * 2. A GMainLoop ticks every 40 ms until a context source (no descriptor)
 *    dispatches at that context's 150 ms deadline and quits the loop.
 */
#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#include <gio/gunixinputstream.h>
#include <goctx/glib.h>

static int fds[2];
static ctx_time_t start;

static double ms(void) { return (double)(ctx_now() - start) / 1e6; }

static gpointer writer(gpointer arg) {
    ctx_t *ctx = arg; /* the main thread's; it joins us before releasing it */
    for (int i = 1; i <= 3; i++) {
        char line[32];
        int n = snprintf(line, sizeof line, "line %d\n", i);
        if (write(fds[1], line, (size_t)n) != n)
            break;
        ctx_sleep(ctx, 50 * CTX_MILLISECOND);
    }
    ctx_wait(ctx, CTX_FOREVER); /* silent until the reader gives up */
    return NULL;
}

static int read_lines(void) {
    if (pipe(fds) != 0)
        return 1;
    ctx_cancel_t *cancel;
    ctx_t *ctx = ctx_with_timeout(ctx_background(), 300 * CTX_MILLISECOND, &cancel);
    GCancellable *c = ctx ? ctx_glib_cancellable_new(ctx) : NULL;
    if (!c)
        return 1;
    GThread *t = g_thread_new("writer", writer, ctx);
    GInputStream *raw = g_unix_input_stream_new(fds[0], TRUE);
    GDataInputStream *in = g_data_input_stream_new(raw);
    GError *error = NULL;
    char *line;
    while ((line = g_data_input_stream_read_line(in, NULL, c, &error))) {
        printf("%6.1f ms  read: %s\n", ms(), line);
        g_free(line);
    }
    int rc = 1;
    if (g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED)) {
        printf("%6.1f ms  read: %s (ctx_err: %s)\n", ms(), error->message,
               ctx_strerror(ctx_err(ctx)));
        rc = ctx_err(ctx) == ETIMEDOUT ? 0 : 1;
    }
    g_clear_error(&error);
    ctx_cancel(cancel); /* done already; this frees the handle */
    g_thread_join(t);
    g_object_unref(in);
    g_object_unref(raw);
    g_object_unref(c);
    close(fds[1]);
    ctx_release(ctx);
    return rc;
}

static gboolean tick(gpointer data) {
    (void)data;
    printf("%6.1f ms  loop: tick\n", ms());
    return G_SOURCE_CONTINUE;
}

static gboolean on_done(ctx_t *ctx, gpointer data) {
    printf("%6.1f ms  loop: context source: %s, quitting\n", ms(), ctx_strerror(ctx_err(ctx)));
    g_main_loop_quit(data);
    return G_SOURCE_REMOVE;
}

static int main_loop(void) {
    GMainLoop *loop = g_main_loop_new(NULL, FALSE);
    ctx_cancel_t *cancel;
    ctx_t *ctx = ctx_with_timeout(ctx_background(), 150 * CTX_MILLISECOND, &cancel);
    GSource *s = ctx ? ctx_glib_source_new(ctx) : NULL;
    if (!s)
        return 1;
    g_source_set_callback(s, (GSourceFunc)(void (*)(void))on_done, loop, NULL);
    g_source_attach(s, NULL);
    g_source_unref(s);
    guint ticker = g_timeout_add(40, tick, NULL);
    g_main_loop_run(loop);
    g_source_remove(ticker);
    g_main_loop_unref(loop);
    ctx_cancel(cancel);
    ctx_release(ctx);
    return 0;
}

int main(void) {
    start = ctx_now();
    int rc = read_lines();
    start = ctx_now();
    return rc | main_loop();
}
