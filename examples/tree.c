/* tree.c: cancel a whole tree of contexts from its root.
 *
 * Four workers run on their own threads, each with its own child of one
 * root context. They wait in three different ways (blocking in ctx_wait,
 * sleeping in steps with ctx_sleep, polling ctx_err in a busy loop).
 * Cancelling the root with a cause stops them all: every child reports
 * ECANCELED and carries the root's cause.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>

#include <goctx.h>

#define NWORKERS 4

struct worker {
    pthread_t thread;
    ctx_t *ctx;            /* this worker's child context (one reference) */
    ctx_cancel_t *cancel;  /* and the right to cancel it, used once */
    int id, err, cause;    /* what the worker saw when it stopped */
};

static void *work(void *arg) {
    struct worker *w = arg;
    volatile unsigned long spins = 0;

    switch (w->id % 3) {
    case 0: /* block until done */
        ctx_wait(w->ctx, CTX_FOREVER);
        break;
    case 1: /* do 5 ms steps of "work" until one is cut short */
        while (ctx_sleep(w->ctx, 5 * CTX_MILLISECOND) == 0)
            ;
        break;
    case 2: /* CPU work: ctx_err is one atomic load, cheap to poll */
        while (ctx_err(w->ctx) == 0)
            spins++;
        break;
    }
    w->err = ctx_err(w->ctx);
    w->cause = ctx_cause(w->ctx);
    /* Go's `defer cancel()`: the worker owns its handle and reference. */
    ctx_cancel(w->cancel);
    ctx_release(w->ctx);
    return NULL;
}

int main(void) {
    ctx_cancel_t *cancel_root;
    ctx_t *root = ctx_with_cancel(ctx_background(), &cancel_root);
    if (root == NULL) {
        perror("ctx_with_cancel");
        return 1;
    }

    struct worker w[NWORKERS];
    for (int i = 0; i < NWORKERS; i++) {
        w[i].id = i;
        w[i].ctx = ctx_with_cancel(root, &w[i].cancel);
        if (w[i].ctx == NULL || pthread_create(&w[i].thread, NULL, work, &w[i]) != 0) {
            fprintf(stderr, "tree: cannot start worker %d\n", i);
            return 1;
        }
    }

    /* Let the workers run a little, then stop everything at once. The cause
     * says why: here, as if SIGINT had arrived (Go: signal.NotifyContext). */
    ctx_sleep(ctx_background(), 20 * CTX_MILLISECOND);
    ctx_cancel_cause(cancel_root, EINTR);

    int bad = 0;
    for (int i = 0; i < NWORKERS; i++) {
        pthread_join(w[i].thread, NULL);
        printf("worker %d: err=\"%s\" cause=\"%s\"\n", i, ctx_strerror(w[i].err),
               ctx_strerror(w[i].cause));
        bad |= w[i].err != ECANCELED || w[i].cause != EINTR;
    }
    printf("root:     err=\"%s\" cause=\"%s\"\n", ctx_strerror(ctx_err(root)),
           ctx_strerror(ctx_cause(root)));
    bad |= ctx_err(root) != ECANCELED || ctx_cause(root) != EINTR;

    /* The children held references to root; ours is the last one. */
    ctx_release(root);
    if (bad)
        fprintf(stderr, "tree: unexpected result\n");
    return bad;
}
