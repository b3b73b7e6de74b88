/* bench.c (goctx-uv-bench): how long from ctx_cancel in another thread to
 * the watch's callback on the loop, against a bare uv_async_send to its
 * async callback, and how much memory a watched context costs.
 *
 *   goctx-uv-bench [ROUNDS]      (default 5000)
 *
 * Each round: the loop thread arms (a new context and watch, or nothing for
 * the bare async), posts a semaphore and goes back into uv_run; the other
 * thread waits 50 us (so the loop is asleep in epoll_wait), reads the clock
 * and cancels (or sends); the callback reads the clock. Prints the median,
 * 90th and 99th percentile, and BENCH lines:
 *   BENCH <op> <ns_per_op> <bytes_per_op> <allocs_per_op>
 */
#include <malloc.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include <goctx/uv.h>

static atomic_long live_bytes, allocs;

static void *count_alloc(size_t n) {
    void *p = malloc(n);
    if (p) {
        atomic_fetch_add(&live_bytes, (long)malloc_usable_size(p));
        atomic_fetch_add(&allocs, 1);
    }
    return p;
}

static void count_free(void *p) {
    if (p)
        atomic_fetch_sub(&live_bytes, (long)malloc_usable_size(p));
    free(p);
}

struct bench {
    uv_loop_t loop;
    uv_async_t bare;
    ctx_uv_watch_t watch;
    ctx_t *ctx;
    ctx_cancel_t *cancel; /* handed to the other thread through `armed` */
    sem_t armed;
    _Atomic ctx_time_t t0;
    ctx_time_t *lat;
    int i, n;
    bool bridge;
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
        if (b->bridge)
            ctx_cancel(b->cancel);
        else
            uv_async_send(&b->bare);
    }
    return NULL;
}

static void on_watch(ctx_uv_watch_t *w, int err);

static void arm(struct bench *b) {
    if (b->bridge) {
        b->ctx = ctx_with_cancel(ctx_background(), &b->cancel);
        if (!b->ctx || ctx_uv_watch_start(&b->watch, b->ctx, on_watch) != 0)
            abort();
    }
    sem_post(&b->armed);
}

static void record(struct bench *b) {
    b->lat[b->i++] = ctx_now() - atomic_load(&b->t0);
}

static void on_watch(ctx_uv_watch_t *w, int err) {
    (void)err;
    struct bench *b = w->data;
    record(b);
    ctx_release(b->ctx);
    if (b->i < b->n)
        arm(b);
    else
        ctx_uv_watch_close(w, NULL);
}

static void on_async(uv_async_t *a) {
    struct bench *b = a->data;
    record(b);
    if (b->i < b->n)
        arm(b);
    else
        uv_close((uv_handle_t *)a, NULL);
}

static int cmp(const void *x, const void *y) {
    ctx_time_t a = *(const ctx_time_t *)x, c = *(const ctx_time_t *)y;
    return (a > c) - (a < c);
}

static ctx_time_t run(bool bridge, int n, ctx_time_t *p90, ctx_time_t *p99) {
    static struct bench b;
    b.lat = calloc((size_t)n, sizeof *b.lat);
    b.n = n;
    b.i = 0;
    b.bridge = bridge;
    uv_loop_init(&b.loop);
    sem_init(&b.armed, 0, 0);
    if (bridge) {
        ctx_uv_watch_init(&b.loop, &b.watch);
        b.watch.data = &b;
    } else {
        uv_async_init(&b.loop, &b.bare, on_async);
        b.bare.data = &b;
    }
    arm(&b);
    pthread_t t;
    pthread_create(&t, NULL, sender, &b);
    uv_run(&b.loop, UV_RUN_DEFAULT);
    pthread_join(t, NULL);
    uv_run(&b.loop, UV_RUN_DEFAULT);
    uv_loop_close(&b.loop);
    sem_destroy(&b.armed);
    qsort(b.lat, (size_t)n, sizeof *b.lat, cmp);
    ctx_time_t med = b.lat[n / 2];
    *p90 = b.lat[n * 9 / 10];
    *p99 = b.lat[n * 99 / 100];
    free(b.lat);
    return med;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 5000;
    if (n < 100)
        n = 100;
    ctx_set_allocator(count_alloc, count_free);

    ctx_time_t p90, p99;
    ctx_time_t bare = run(false, n, &p90, &p99);
    printf("uv_async_send -> async callback:        median %6.1f us  p90 %6.1f  p99 %6.1f\n",
           bare / 1e3, p90 / 1e3, p99 / 1e3);
    ctx_time_t bridge = run(true, n, &p90, &p99);
    printf("ctx_cancel -> ctx_uv watch callback:    median %6.1f us  p90 %6.1f  p99 %6.1f\n",
           bridge / 1e3, p90 / 1e3, p99 / 1e3);
    printf("ratio (bridge / bare, medians): %.2f\n", (double)bridge / (double)bare);

    /* Memory: 100,000 contexts with one started watch each. */
    enum { M = 100000 };
    uv_loop_t loop;
    uv_loop_init(&loop);
    ctx_uv_watch_t *w = calloc(M, sizeof *w);
    ctx_t **c = calloc(M, sizeof *c);
    ctx_cancel_t **cc = calloc(M, sizeof *cc);
    long b0 = atomic_load(&live_bytes), a0 = atomic_load(&allocs);
    for (int i = 0; i < M; i++)
        c[i] = ctx_with_cancel(ctx_background(), &cc[i]);
    long b1 = atomic_load(&live_bytes), a1 = atomic_load(&allocs);
    for (int i = 0; i < M; i++) {
        ctx_uv_watch_init(&loop, &w[i]);
        ctx_uv_watch_start(&w[i], c[i], on_watch);
    }
    long b2 = atomic_load(&live_bytes), a2 = atomic_load(&allocs);
    printf("per watched context: ctx_with_cancel %ld B (%ld alloc), watch %zu B (caller's) + "
           "%ld B in goctx (%ld alloc)\n",
           (b1 - b0) / M, (a1 - a0) / M, sizeof(ctx_uv_watch_t), (b2 - b1) / M, (a2 - a1) / M);
    for (int i = 0; i < M; i++) {
        ctx_uv_watch_close(&w[i], NULL);
        ctx_cancel(cc[i]);
        ctx_release(c[i]);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    free(w);
    free(c);
    free(cc);

    printf("BENCH uv_async_send_wake %lld 0 0\n", (long long)bare);
    printf("BENCH ctx_uv_cancel_wake %lld %ld %ld\n", (long long)bridge,
           (long)sizeof(ctx_uv_watch_t) + (b2 - b1) / M, (a2 - a1) / M);
    return 0;
}
