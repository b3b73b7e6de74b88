/* timeout.c: give slow work a time budget with ctx_with_timeout.
 *
 * Go's ExampleWithTimeout, in C. One context with a 100 ms budget is passed
 * to two jobs: a quick one that fits and a slow one that does not. "Slow
 * work" here is ctx_sleep, which returns early when the context ends; real
 * code would wait on I/O or check ctx_err() between steps.
 */
#include <errno.h>
#include <stdio.h>

#include <goctx.h>

/* A job that needs `cost` ns. Returns 0 when it finished, or the context's
 * error when the context ended first (ETIMEDOUT: the budget ran out). */
static int job(ctx_t *ctx, ctx_duration_t cost) {
    return ctx_sleep(ctx, cost);
}

int main(void) {
    const ctx_duration_t budget = 100 * CTX_MILLISECOND;
    ctx_time_t start = ctx_now();

    /* The context is one reference (ctx_release) and one cancel handle
     * (ctx_cancel): both must be given back exactly once. */
    ctx_cancel_t *cancel;
    ctx_t *ctx = ctx_with_timeout(ctx_background(), budget, &cancel);
    if (ctx == NULL) {
        perror("ctx_with_timeout");
        return 1;
    }

    int quick = job(ctx, 1 * CTX_MILLISECOND); /* fits in the budget */
    int slow = job(ctx, 1 * CTX_SECOND);       /* does not */
    ctx_duration_t took = ctx_now() - start;

    printf("quick job: %s\n", quick == 0 ? "finished" : ctx_strerror(quick));
    printf("slow job:  %s\n", slow == 0 ? "finished" : ctx_strerror(slow));
    printf("ctx_err:   %s\n", ctx_strerror(ctx_err(ctx)));
    printf("ctx_cause: %s\n", ctx_strerror(ctx_cause(ctx)));

    int bad = 0;
    bad |= quick != 0;
    bad |= slow != ETIMEDOUT;
    bad |= ctx_err(ctx) != ETIMEDOUT;   /* Go: context.DeadlineExceeded */
    bad |= ctx_cause(ctx) != ETIMEDOUT; /* no cause given: the error itself */
    bad |= took < budget;               /* a deadline never fires early */
    bad |= took > 900 * CTX_MILLISECOND; /* and the slow job was cut short */

    /* Go's `defer cancel()`: cancel even though the deadline already fired.
     * Here it does nothing but free the handle; the first cancellation
     * (the deadline) keeps its error. */
    ctx_cancel(cancel);
    bad |= ctx_err(ctx) != ETIMEDOUT;
    ctx_release(ctx);

    if (bad)
        fprintf(stderr, "timeout: unexpected result\n");
    return bad;
}
