/* clock.c: ctx_now, the test clock behind it, and saturating time sums.
 * Uses: os. */
#include "internal.h"

/* The test clock; NULL means CLOCK_MONOTONIC. Relaxed: tests install it
 * before creating the contexts it is meant for. */
static _Atomic(ctx_time_t (*)(void)) fake_clock;

void ctx__clock_set_fake(ctx_time_t (*now)(void))
{
	atomic_store_explicit(&fake_clock, now, memory_order_relaxed);
}

ctx_time_t ctx_now(void)
{
	ctx_time_t (*f)(void) = atomic_load_explicit(&fake_clock, memory_order_relaxed);
	return f ? f() : ctx__os_now();
}

/* The test wall clock (ns since the Unix epoch) for ctx_format; NULL means
 * CLOCK_REALTIME. Relaxed, as above. */
static _Atomic(ctx_time_t (*)(void)) fake_wall;

void ctx__set_wall_clock(ctx_time_t (*now)(void))
{
	atomic_store_explicit(&fake_wall, now, memory_order_relaxed);
}

ctx_time_t ctx__wall_now(void)
{
	ctx_time_t (*f)(void) = atomic_load_explicit(&fake_wall, memory_order_relaxed);
	if (f)
		return f();
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (ctx_time_t)ts.tv_sec * CTX_SECOND + ts.tv_nsec;
}

bool ctx__clock_is_fake(void)
{
	return atomic_load_explicit(&fake_clock, memory_order_relaxed) != NULL;
}

ctx_time_t ctx__add_sat(ctx_time_t a, ctx_duration_t b)
{
	ctx_time_t r;
	if (__builtin_add_overflow(a, b, &r))
		return b > 0 ? INT64_MAX : INT64_MIN;
	return r;
}
