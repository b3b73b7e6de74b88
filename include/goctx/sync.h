/* goctx/sync.h: Go's sync.WaitGroup and golang.org/x/sync/errgroup for C.
 *
 * Usage rules:
 *
 *  - A ctx_waitgroup_t is a value the caller owns: static, on the stack or
 *    inside a struct, usable once zeroed (CTX_WAITGROUP_INIT or memset). It
 *    allocates nothing and needs no destroy. Its 32 bytes are fixed (the
 *    counter and the waiters bit share one 32-bit word; the rest is
 *    reserved).
 *  - ctx_waitgroup_add() before starting the work it counts, done() when the
 *    work ends, wait() to block until the counter is zero. As in Go, a group
 *    may be reused once every wait() of the previous round has returned; the
 *    adds of a new round must not race with those waits.
 *  - ctx_waitgroup_wait() blocks (any number of threads may wait; all are
 *    woken when the counter reaches zero). With a context it also returns
 *    when the context is done; then it registers an after-func for the
 *    duration of the wait, which allocates: ENOMEM is possible there, and
 *    only there.
 *  - A wait group may be freed (or go out of scope) as soon as wait()
 *    returned 0, even while the thread whose done() woke it is still inside
 *    done(): done() touches the group's memory with its one atomic operation
 *    and then only issues a wake-up system call on the address.
 *  - An error group (ctx_errgroup_t) is made by ctx_errgroup_new() and
 *    freed by ctx_errgroup_wait(), which must be called exactly once, from
 *    outside the group, after the last go() made from outside. Functions
 *    run on threads of their own (through chan_go); a running function may
 *    start more functions in its own group.
 *  - The group context (*gctx) is one reference for the caller; the group
 *    holds another until wait() returns. It is cancelled (err ECANCELED) by
 *    the first function that returns non-zero, with that value as its cause,
 *    and by wait() (cause: the group's error, or ECANCELED).
 *  - Errors are 0 or a positive errno value. On error nothing was started.
 *
 * Blocking: ctx_waitgroup_wait, ctx_errgroup_go (at the limit) and
 * ctx_errgroup_wait block; nothing else does.
 */
#ifndef GOCTX_SYNC_H
#define GOCTX_SYNC_H

#include <stdint.h>

#include "goctx.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Wait groups (Go's sync.WaitGroup). ---------------------------------- */

typedef struct ctx_waitgroup { uint64_t opaque[4]; } ctx_waitgroup_t; /* 32 bytes, fixed */
#define CTX_WAITGROUP_INIT { { 0 } }

/* Change the counter (an int) by delta: 0, or EINVAL (counter unchanged)
 * where it would go below 0 or above INT_MAX (Go panics). Reaching zero
 * wakes every waiter. Never blocks. */
int ctx_waitgroup_add(ctx_waitgroup_t *wg, int delta);
/* add(wg, -1); an unmatched done leaves the counter at zero (a caller bug). */
void ctx_waitgroup_done(ctx_waitgroup_t *wg);
/* Block until the counter is zero: 0. With a non-NULL ctx, also return
 * ctx_err(ctx) when ctx is done first; a zero counter wins over a done ctx.
 * EINVAL for a NULL wg; ENOMEM if the context's after-func cannot be
 * registered (the counter was not zero and ctx not done). No polling. */
int ctx_waitgroup_wait(ctx_waitgroup_t *wg, ctx_t *ctx);
/* Go 1.25's WaitGroup.Go: add(1), run fn(arg) on a thread of its own (as
 * chan_go), done when it returns. 0, EINVAL (NULL wg or fn, or a counter at
 * INT_MAX), EAGAIN or ENOMEM; on error the counter is unchanged and fn never
 * runs. */
int ctx_waitgroup_go(ctx_waitgroup_t *wg, void (*fn)(void *arg), void *arg);

/* ---- Error groups (golang.org/x/sync/errgroup.WithContext). -------------- */

typedef struct ctx_errgroup ctx_errgroup_t;

/* A group and its context, a child of parent that the group cancels.
 * *gctx (when gctx is not NULL) receives one reference to it, for the
 * caller to release (NULL on failure). NULL + errno EINVAL (NULL parent) or
 * ENOMEM. Never blocks. */
ctx_errgroup_t *ctx_errgroup_new(ctx_t *parent, ctx_t **gctx);
/* At most n functions running at once (n < 0: no limit, the default;
 * n == 0: go and try_go return EAGAIN). EBUSY (nothing changes) while any
 * function runs; EINVAL for a NULL g. */
int ctx_errgroup_set_limit(ctx_errgroup_t *g, int n);
/* Run fn(gctx, arg) on a thread of its own; blocks while the group is at
 * its limit. The first fn to return non-zero sets the group's error and
 * cancels the group context with that value as cause. A go on a group whose
 * context is already done still runs fn. 0, EAGAIN (limit 0, or no thread),
 * ENOMEM or EINVAL; on error fn never runs. */
int ctx_errgroup_go(ctx_errgroup_t *g, int (*fn)(ctx_t *gctx, void *arg), void *arg);
/* As go, but EAGAIN instead of blocking at the limit. Never blocks. */
int ctx_errgroup_try_go(ctx_errgroup_t *g, int (*fn)(ctx_t *gctx, void *arg), void *arg);
/* Block until every started fn has returned, cancel the group context
 * (cause: the group's error, or ECANCELED), free the group and return the
 * group's error (0 if none; EINVAL for a NULL g). g is gone afterwards. */
int ctx_errgroup_wait(ctx_errgroup_t *g);

#ifdef __cplusplus
}
#endif

#endif /* GOCTX_SYNC_H */
