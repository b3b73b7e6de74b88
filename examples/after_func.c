/* after_func.c: run a callback when a context is done (Go's AfterFunc).
 *
 * Two recipes from Go's documentation:
 *  1. ExampleAfterFunc_cond: make a condition-variable wait give up when a
 *     context ends, by waking the waiters from an after-func.
 *  2. ExampleAfterFunc_merge: a context cancelled when either of two others
 *     is, carrying the cause of the one that ended it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>

#include <goctx.h>

/* ---- 1. Waiting on a condition variable, bounded by a context. ---- */

struct queue {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool ready; /* the condition, guarded by mu */
};

static void wake_all(void *arg) {
    struct queue *q = arg;
    pthread_mutex_lock(&q->mu); /* taken only briefly by the waiter */
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->mu);
}

/* Wait until q->ready; return 0, or ctx_err() if ctx ends first. */
static int wait_ready(ctx_t *ctx, struct queue *q, bool *stopped) {
    ctx_after_t *stop;
    int err = ctx_after_func(ctx, wake_all, q, &stop);
    if (err != 0)
        return err;
    pthread_mutex_lock(&q->mu);
    /* ctx_err is checked under mu and wake_all takes mu, so a wake-up
     * cannot fall between the check and the wait. */
    while (!q->ready && (err = ctx_err(ctx)) == 0)
        pthread_cond_wait(&q->cond, &q->mu);
    pthread_mutex_unlock(&q->mu);
    /* Stop after unlocking: if wake_all is running in another thread,
     * ctx_after_stop waits for it, and it needs mu. Once this returns,
     * wake_all is not running and never will, so q may go away. */
    *stopped = ctx_after_stop(stop);
    return err;
}

/* ---- 2. Merging the cancellation of two contexts. ---- */

struct merged {
    ctx_t *ctx;           /* done when `parent` or `other` is */
    ctx_t *other;         /* borrowed: a pending after-func keeps it alive */
    ctx_cancel_t *cancel; /* used exactly once: by merge_fire or merged_cancel */
    ctx_after_t *stop;
};

static void merge_fire(void *arg) {
    struct merged *m = arg;
    ctx_cancel_cause(m->cancel, ctx_cause(m->other));
}

static int merge_cancel(ctx_t *parent, ctx_t *other, struct merged *m) {
    m->other = other;
    m->ctx = ctx_with_cancel(parent, &m->cancel);
    if (m->ctx == NULL)
        return errno;
    int err = ctx_after_func(other, merge_fire, m, &m->stop);
    if (err != 0) {
        ctx_cancel(m->cancel);
        ctx_release(m->ctx);
    }
    return err;
}

static void merged_cancel(struct merged *m) {
    /* true: merge_fire will never run, so the handle is still ours to use.
     * false: merge_fire ran (and has returned) and used it. */
    if (ctx_after_stop(m->stop))
        ctx_cancel(m->cancel);
    ctx_release(m->ctx);
}

int main(void) {
    int bad = 0;

    /* 1a. The condition never comes true: the timeout wakes the waiter. */
    struct queue q = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false};
    bool stopped = false;
    ctx_cancel_t *cancel;
    ctx_t *ctx = ctx_with_timeout(ctx_background(), 20 * CTX_MILLISECOND, &cancel);
    if (ctx == NULL)
        return 1;
    int err = wait_ready(ctx, &q, &stopped);
    printf("never ready:   %s\n", ctx_strerror(err));
    bad |= err != ETIMEDOUT;
    ctx_cancel(cancel);
    ctx_release(ctx);

    /* 1b. The condition is already true: no wait, and the context is still
     * live, so ctx_after_stop prevents the call (it returns true). */
    ctx = ctx_with_timeout(ctx_background(), 1 * CTX_SECOND, &cancel);
    if (ctx == NULL)
        return 1;
    q.ready = true;
    err = wait_ready(ctx, &q, &stopped);
    printf("already ready: %s, after-func %s\n", err ? ctx_strerror(err) : "ok",
           stopped ? "stopped" : "ran");
    bad |= err != 0 || !stopped;
    ctx_cancel(cancel);
    ctx_release(ctx);

    /* 2. Cancel `b` with a cause; the merged context ends with that cause
     * before ctx_cancel_cause returns, while `a` stays live. */
    ctx_cancel_t *cancel_a, *cancel_b;
    ctx_t *a = ctx_with_cancel(ctx_background(), &cancel_a);
    ctx_t *b = ctx_with_cancel(ctx_background(), &cancel_b);
    struct merged m;
    if (a == NULL || b == NULL || merge_cancel(a, b, &m) != 0)
        return 1;
    ctx_cancel_cause(cancel_b, ECONNRESET);
    printf("merged: err=\"%s\" cause=\"%s\"; a: err=%d\n", ctx_strerror(ctx_err(m.ctx)),
           ctx_strerror(ctx_cause(m.ctx)), ctx_err(a));
    bad |= ctx_err(m.ctx) != ECANCELED || ctx_cause(m.ctx) != ECONNRESET || ctx_err(a) != 0;
    merged_cancel(&m);
    ctx_cancel(cancel_a);
    ctx_release(a);
    ctx_release(b);

    if (bad)
        fprintf(stderr, "after_func: unexpected result\n");
    return bad;
}
