/* testing.h: internal hooks for goctx's own tests (white-box checks and a
 * fake clock). Not installed; link the static library to use them. */
#ifndef GOCTX_TESTING_H
#define GOCTX_TESTING_H

#include <stdbool.h>
#include <stddef.h>

#include "goctx.h"

/* Replace the clock behind ctx_now() and every deadline (NULL: the real
 * CLOCK_MONOTONIC again). Waits with a timeout still use real time. After
 * moving a fake clock forward, call ctx__timers_kick() so the timer thread
 * fires what is now due. */
void ctx__set_clock(ctx_time_t (*now)(void));
void ctx__timers_kick(void);

/* Replace the wall clock ctx_format prints deadlines with (ns since the
 * Unix epoch; NULL: CLOCK_REALTIME again), so its whole text is exact. */
void ctx__set_wall_clock(ctx_time_t (*now)(void));

/* How many deadlines are armed in the timer queue right now. */
size_t ctx__timers_pending(void);

/* How many entries (cancelable children and after-func registrations) the
 * nearest cancelable ancestor-or-self of ctx lists right now; 0 for a context
 * that can never be done. */
size_t ctx__children_count(const ctx_t *ctx);

/* Whether the child list of ctx's nearest cancelable ancestor-or-self is
 * sharded; ctx__shard_now(ctx) shards a cancelable ctx's list at once (0,
 * EINVAL for a context that is not cancelable itself, ENOMEM). */
bool ctx__sharded(const ctx_t *ctx);
int ctx__shard_now(ctx_t *ctx);

/* Call fn in the cancelling thread between the moment a cancellation
 * publishes err and the moment it makes the done descriptor readable (only
 * for contexts whose descriptor was made); NULL: none. Set it while no
 * cancellation runs. */
void ctx__set_publish_hook(void (*fn)(void));

/* How many freed nodes the calling thread's cache holds (cache.c). */
size_t ctx__cache_held(void);

#endif
