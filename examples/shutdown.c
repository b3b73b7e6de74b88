/* shutdown.c: a worker loop that shuts down cleanly on SIGINT or SIGTERM.
 *
 * Go's signal.NotifyContext pattern, in C, with the AfterFunc merge of a
 * request and a shutdown:
 *  - ctx_with_signals(SIGINT, SIGTERM) is the loop's context: when a signal
 *    arrives it is done and the loop stops taking work. stop then gives the
 *    signals back their old disposition: a second Ctrl-C ends the process
 *    at once.
 *  - Each job runs under its own timeout merged (ctx_with_merge) with a
 *    "drain over" context: it ends at its timeout, or when the drain time
 *    is up, whichever comes first.
 *  - In-flight jobs get a drain deadline to finish: a timeout over
 *    ctx_without_cancel(signals), the cleanup context (the signal context's
 *    values, not its cancellation). A wait group counts the jobs.
 *
 * Run without arguments it sends itself SIGTERM after a few jobs (for
 * `make demo`); with --wait it prints "ready" and waits (up to 30 s) for a
 * signal from outside: `./shutdown --wait & kill -TERM $!`. It exits 0
 * after a clean shutdown.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <goctx.h>
#include <goctx/signal.h>
#include <goctx/sync.h>

#define JOB_TIMEOUT (500 * CTX_MILLISECOND)
#define DRAIN (2 * CTX_SECOND)

struct job {
    int id;
    ctx_t *ctx; /* the job's timeout merged with drain_over */
};

static void run_job(void *arg) {
    struct job *j = arg;
    /* The work: 60-140 ms, cut short if the job's context ends. */
    int err = ctx_sleep(j->ctx, (60 + 20 * (j->id % 5)) * CTX_MILLISECOND);
    if (err)
        printf("job %d: aborted: %s\n", j->id, ctx_strerror(err));
    else
        printf("job %d: done\n", j->id);
    ctx_release(j->ctx);
    free(j);
}

/* Start job id under its own timeout, merged with drain_over. */
static int start_job(ctx_waitgroup_t *wg, ctx_t *drain_over, int id) {
    struct job *j = malloc(sizeof *j);
    if (!j)
        return ENOMEM;
    ctx_t *timeout = ctx_with_timeout(ctx_background(), JOB_TIMEOUT, NULL);
    j->id = id;
    j->ctx = timeout ? ctx_with_merge(timeout, &drain_over, 1, NULL) : NULL;
    ctx_release(timeout); /* the merged context holds it */
    int e = j->ctx ? ctx_waitgroup_go(wg, run_job, j) : errno;
    if (e) {
        ctx_release(j->ctx);
        free(j);
    }
    return e;
}

int main(int argc, char **argv) {
    int outside = argc > 1 && strcmp(argv[1], "--wait") == 0;
    setvbuf(stdout, NULL, _IOLBF, 0);

    const int sigs[] = {SIGINT, SIGTERM};
    ctx_cancel_t *stop;
    ctx_t *sig = ctx_with_signals(ctx_background(), sigs, 2, &stop);
    if (!sig) {
        perror("ctx_with_signals");
        return 1;
    }
    /* Cancelled only if the drain deadline passes: not by the signal. */
    ctx_cancel_t *end_drain;
    ctx_t *drain_over = ctx_with_cancel(ctx_background(), &end_drain);

    ctx_waitgroup_t jobs = CTX_WAITGROUP_INIT;
    printf("ready\n");
    ctx_time_t give_up = ctx_now() + 30 * CTX_SECOND;
    for (int id = 0; !ctx_done(sig); id++) {
        if (!outside && id == 4) {
            printf("demo: sending myself SIGTERM\n");
            kill(getpid(), SIGTERM);
        }
        if (outside && ctx_now() > give_up) {
            fprintf(stderr, "no signal came\n");
            return 1;
        }
        if (start_job(&jobs, drain_over, id) != 0)
            break;
        ctx_sleep(sig, 40 * CTX_MILLISECOND); /* the next job comes in 40 ms */
    }
    printf("signal: %s; no more jobs\n", ctx_strerror(ctx_cause(sig)));
    ctx_cancel(stop); /* a second signal now acts as it did before */

    /* Drain: wait for in-flight jobs, at most DRAIN, under a context that
     * the signal's cancellation does not reach. */
    ctx_t *cleanup = ctx_without_cancel(sig);
    ctx_t *drain = ctx_with_timeout(cleanup, DRAIN, NULL);
    int err = ctx_waitgroup_wait(&jobs, drain);
    if (err) {
        printf("drain: %s; aborting the rest\n", ctx_strerror(err));
        ctx_cancel(end_drain);
        end_drain = NULL;
        ctx_waitgroup_wait(&jobs, NULL);
    } else {
        printf("drained: every in-flight job finished\n");
    }
    ctx_cancel(end_drain);
    ctx_release(drain);
    ctx_release(cleanup);
    ctx_release(drain_over);
    ctx_release(sig);
    return 0;
}
