/* go.h: the cached-thread start behind chan_go, for the modules above
 * src/chan that start functions (wait groups, error groups), and hooks for
 * the tests. Not installed.
 *
 * chan__go runs fn(arg) on a cached thread (see go.c and chan_go in
 * include/goctx/chan.h for what a function sees there), then, on the same
 * thread, then(then_arg) when `then` is not NULL: a caller that must know
 * when fn has returned (WaitGroup.Go's done, chan_go_join) hooks it there
 * without allocating a record of its own. Returns 0, or EAGAIN / ENOMEM
 * when no idle thread was there and none could be started (then neither
 * function runs). fn must not be NULL.
 */
#ifndef GOCTX_CHAN_GO_H
#define GOCTX_CHAN_GO_H

#include <stddef.h>

#include "goctx.h"

int chan__go(void (*fn)(void *arg), void *arg, void (*then)(void *then_arg), void *then_arg);

/* ---- for the tests ---- */

/* How long a parked thread waits for work before it exits (default
 * CHAN__GO_IDLE_NS); d <= 0 restores the default. Takes effect from the
 * next park. */
#define CHAN__GO_IDLE_NS (2 * CTX_SECOND)
void chan__go_set_idle(ctx_duration_t d);
/* Threads of the cache alive now (running a function or parked), and of
 * those, the parked ones. Snapshots. */
size_t chan__go_threads(void);
size_t chan__go_parked(void);

#endif
