/* bench.c (goctx-glib-bench): how long from ctx_cancel in another thread to
 * a ctx_glib_source_new callback in the GMainContext's thread, against a bare
 * g_main_context_wakeup ending a blocked g_main_context_iteration and against
 * GLib's own g_cancellable_cancel -> g_cancellable_source_new; and the
 * memory per watched context (a source, a GCancellable).
 *
 *   goctx-glib-bench [ROUNDS]      (default 5000)
 *
 * Each round: the loop thread arms (a new context and source, or nothing),
 * posts a semaphore and blocks in g_main_context_iteration; the other thread
 * waits 50 us, reads the clock and cancels (or wakes); the loop thread reads
 * the clock in the callback (or when the iteration returns). Prints median,
 * 90th and 99th percentiles, and BENCH lines:
 *   BENCH <op> <ns_per_op> <bytes_per_op> <allocs_per_op>
 * Memory is counted with glibc's mallinfo2 under G_SLICE=always-malloc, so
 * GLib's allocations are in it (the GSource, its private part, the child).
 */
#include <malloc.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include <goctx/glib.h>

struct bench {
    GMainContext *mc;
    ctx_t *ctx;
    ctx_cancel_t *cancel;
    GSource *source;
    sem_t armed;
    _Atomic ctx_time_t t0;
    ctx_time_t *lat;
    int i, n;
    GCancellable *gc;
    int mode; /* 0 bare wakeup, 1 ctx source, 2 GLib's g_cancellable_source */
    bool fired;
};

static void spin_us(int us) {
    ctx_time_t until = ctx_now() + us * CTX_MICROSECOND;
    while (ctx_now() < until)
        ;
}

static void *sender(void *arg) {
    struct bench *b = arg;
    for (int i = 0; i < b->n; i++) {
        sem_wait(&b->armed);
        spin_us(50);
        atomic_store(&b->t0, ctx_now());
        if (b->mode == 0)
            g_main_context_wakeup(b->mc);
        else if (b->mode == 1)
            ctx_cancel(b->cancel);
        else
            g_cancellable_cancel(b->gc);
    }
    return NULL;
}

static gboolean on_done(ctx_t *ctx, gpointer data) {
    (void)ctx;
    struct bench *b = data;
    b->lat[b->i] = ctx_now() - atomic_load(&b->t0);
    b->fired = true;
    return G_SOURCE_REMOVE;
}

static gboolean on_cancelled(GCancellable *c, gpointer data) {
    (void)c;
    return on_done(NULL, data);
}

static int cmp(const void *x, const void *y) {
    ctx_time_t a = *(const ctx_time_t *)x, c = *(const ctx_time_t *)y;
    return (a > c) - (a < c);
}

static ctx_time_t run(int mode, int n, ctx_time_t *p90, ctx_time_t *p99) {
    static struct bench b;
    b.mc = g_main_context_new();
    b.lat = calloc((size_t)n, sizeof *b.lat);
    b.n = n;
    b.mode = mode;
    sem_init(&b.armed, 0, 0);
    g_main_context_acquire(b.mc);
    pthread_t t;
    pthread_create(&t, NULL, sender, &b);
    for (b.i = 0; b.i < n; b.i++) {
        if (mode == 1) {
            b.ctx = ctx_with_cancel(ctx_background(), &b.cancel);
            b.source = ctx_glib_source_new(b.ctx);
            g_source_set_callback(b.source, (GSourceFunc)(void (*)(void))on_done, &b, NULL);
            g_source_attach(b.source, b.mc);
        } else if (mode == 2) {
            b.gc = g_cancellable_new();
            b.source = g_cancellable_source_new(b.gc);
            g_source_set_callback(b.source, (GSourceFunc)(void (*)(void))on_cancelled, &b, NULL);
            g_source_attach(b.source, b.mc);
        }
        b.fired = false;
        sem_post(&b.armed);
        if (mode == 0) {
            g_main_context_iteration(b.mc, TRUE);
            b.lat[b.i] = ctx_now() - atomic_load(&b.t0);
        } else {
            while (!b.fired)
                g_main_context_iteration(b.mc, TRUE);
            g_source_unref(b.source);
            if (mode == 1)
                ctx_release(b.ctx);
            else
                g_object_unref(b.gc);
        }
    }
    pthread_join(t, NULL);
    g_main_context_release(b.mc);
    g_main_context_unref(b.mc);
    sem_destroy(&b.armed);
    qsort(b.lat, (size_t)n, sizeof *b.lat, cmp);
    ctx_time_t med = b.lat[n / 2];
    *p90 = b.lat[n * 9 / 10];
    *p99 = b.lat[n * 99 / 100];
    free(b.lat);
    return med;
}

static long heap(void) { return (long)mallinfo2().uordblks; }

int main(int argc, char **argv) {
    setenv("G_SLICE", "always-malloc", 1);
    int n = argc > 1 ? atoi(argv[1]) : 5000;
    if (n < 100)
        n = 100;

    ctx_time_t p90, p99;
    ctx_time_t bare = run(0, n, &p90, &p99);
    printf("g_main_context_wakeup -> iteration returns:  median %6.1f us  p90 %6.1f  p99 %6.1f\n",
           bare / 1e3, p90 / 1e3, p99 / 1e3);
    ctx_time_t src = run(1, n, &p90, &p99);
    printf("ctx_cancel -> ctx_glib source callback:      median %6.1f us  p90 %6.1f  p99 %6.1f\n",
           src / 1e3, p90 / 1e3, p99 / 1e3);
    ctx_time_t gcs = run(2, n, &p90, &p99);
    printf("g_cancellable_cancel -> cancellable source:  median %6.1f us  p90 %6.1f  p99 %6.1f\n",
           gcs / 1e3, p90 / 1e3, p99 / 1e3);
    printf("ratio (bridge / bare wakeup, medians): %.2f; bridge / GLib's cancellable source: %.2f\n",
           (double)src / (double)bare, (double)src / (double)gcs);

    /* Memory: M contexts, each with a source attached, or a GCancellable. */
    enum { M = 20000 };
    GMainContext *mc = g_main_context_new();
    ctx_t **c = calloc(M, sizeof *c);
    ctx_cancel_t **cc = calloc(M, sizeof *cc);
    GSource **s = calloc(M, sizeof *s);
    GCancellable **g = calloc(M, sizeof *g);
    long h0 = heap();
    for (int i = 0; i < M; i++)
        c[i] = ctx_with_cancel(ctx_background(), &cc[i]);
    long h1 = heap();
    for (int i = 0; i < M; i++) {
        s[i] = ctx_glib_source_new(c[i]);
        g_source_attach(s[i], mc);
    }
    long h2 = heap();
    for (int i = 0; i < M; i++)
        g[i] = ctx_glib_cancellable_new(c[i]);
    long h3 = heap();
    printf("per watched context: ctx_with_cancel %ld B; an attached source %ld B; a "
           "GCancellable %ld B (all heap, GLib's included)\n",
           (h1 - h0) / M, (h2 - h1) / M, (h3 - h2) / M);
    for (int i = 0; i < M; i++) {
        g_object_unref(g[i]);
        g_source_destroy(s[i]);
        g_source_unref(s[i]);
        ctx_cancel(cc[i]);
        ctx_release(c[i]);
    }
    g_main_context_unref(mc);
    free(c);
    free(cc);
    free(s);
    free(g);

    printf("BENCH g_main_context_wakeup_wake %lld 0 0\n", (long long)bare);
    printf("BENCH g_cancellable_source_wake %lld 0 0\n", (long long)gcs);
    printf("BENCH ctx_glib_source_cancel_wake %lld %ld 0\n", (long long)src, (h2 - h1) / M);
    return 0;
}
