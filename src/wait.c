/* wait.c: the clock, and blocking until a context is done. */
#include <errno.h>
#include <unistd.h>

#include "internal.h"
#include "testing.h"

/* The test clock; NULL means CLOCK_MONOTONIC. Relaxed: tests install it
 * before creating the contexts it is meant for. */
static _Atomic(ctx_time_t (*)(void)) fake_clock;

void ctx__set_clock(ctx_time_t (*now)(void))
{
	atomic_store_explicit(&fake_clock, now, memory_order_relaxed);
	ctx__timers_kick();
}

ctx_time_t ctx__real_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (ctx_time_t)ts.tv_sec * CTX_SECOND + ts.tv_nsec;
}

ctx_time_t ctx_now(void)
{
	ctx_time_t (*f)(void) = atomic_load_explicit(&fake_clock, memory_order_relaxed);
	return f ? f() : ctx__real_now();
}

bool ctx__clock_is_fake(void)
{
	return atomic_load_explicit(&fake_clock, memory_order_relaxed) != NULL;
}

static struct timespec to_timespec(ctx_time_t t)
{
	struct timespec ts = {.tv_sec = t / CTX_SECOND, .tv_nsec = t % CTX_SECOND};
	return ts;
}

/* How long a wait spins before it sleeps. */
#define SPIN_NS (20 * CTX_MICROSECOND)

static bool spin_ok(void)
{
	/* Relaxed: any thread computing it gets the same answer. */
	static _Atomic int ncpu;
	int n = atomic_load_explicit(&ncpu, memory_order_relaxed);
	if (!n) {
		n = (int)sysconf(_SC_NPROCESSORS_ONLN);
		atomic_store_explicit(&ncpu, n > 0 ? n : 1, memory_order_relaxed);
	}
	return n > 1;
}

bool ctx__spin(_Atomic uint32_t *word, bool (*ready)(uint32_t), ctx_time_t until, uint32_t *out)
{
	/* A wake that comes within a few microseconds (a hand-off between two
	 * busy threads) then costs no system call on either side, since the
	 * waker only calls futex_wake when the sleeper said it sleeps. Bounded
	 * in time, and skipped on a single CPU, so an idle wait burns no core. */
	if (!spin_ok())
		return false;
	ctx_time_t stop = ctx__real_now() + SPIN_NS;
	for (;;) {
		for (int i = 0; i < 64; i++) {
			/* Acquire: pairs with the release that changed the word. */
			uint32_t s = atomic_load_explicit(word, memory_order_acquire);
			if (ready(s)) {
				*out = s;
				return true;
			}
#if defined(__x86_64__) || defined(__i386__)
			__builtin_ia32_pause();
#endif
		}
		ctx_time_t now = ctx__real_now();
		if (now >= stop || (until >= 0 && now >= until))
			return false;
	}
}

uint32_t ctx__wait_word(_Atomic uint32_t *word, bool (*ready)(uint32_t), ctx_time_t until)
{
	struct timespec abs, *absp = NULL;
	if (until >= 0) {
		abs = to_timespec(until);
		absp = &abs;
	}
	uint32_t s;
	if (ctx__spin(word, ready, until, &s))
		return s;
	for (;;) {
		/* Acquire: pairs with the release that changed the word. */
		uint32_t s = atomic_load_explicit(word, memory_order_acquire);
		if (ready(s))
			return s;
		if (until >= 0 && ctx__real_now() >= until)
			return s;
		if (!(s & CTX__WAITERS) &&
		    !atomic_compare_exchange_weak_explicit(word, &s, s | CTX__WAITERS,
		                                           memory_order_acquire, memory_order_acquire))
			continue; /* the word moved: look again */
		/* Whoever changes what ready() looks at clears WAITERS and wakes
		 * all; if it already did, the word differs and this returns. */
		ctx__futex_wait(word, s | CTX__WAITERS, absp);
	}
}

static bool is_done(uint32_t s) { return (s & CTX__ERR_MASK) && !(s & CTX__PUBLISHING); }
static bool published(uint32_t s) { return !(s & CTX__PUBLISHING); }

uint32_t ctx__published(const struct ctx__cnode *c, uint32_t s)
{
	if (!(s & CTX__PUBLISHING))
		return s;
	/* The canceller is between two stores around one write(2). */
	return ctx__wait_word((_Atomic uint32_t *)&c->state, published, -1);
}
static bool never(uint32_t s) { (void)s; return false; }

int ctx_wait(ctx_t *ctx, ctx_duration_t timeout)
{
	if (!ctx)
		return EINVAL;
	struct ctx__cnode *s = ctx->src;
	int err = ctx_err(ctx);
	if (err || timeout == 0 || (timeout < 0 && timeout != CTX_FOREVER))
		return err;
	ctx_time_t until = timeout == CTX_FOREVER ? -1 : ctx__add_sat(ctx__real_now(), timeout);
	if (!s) {
		/* Never done: just let the time pass (Go's nil channel). */
		_Atomic uint32_t nobody = 0;
		ctx__wait_word(&nobody, never, until);
		return 0;
	}
	ctx__wait_word(&s->state, is_done, until);
	return ctx_err(ctx);
}

int ctx_sleep(ctx_t *ctx, ctx_duration_t d)
{
	/* Same contract: 0 when the time passed first, err when done first. */
	return ctx_wait(ctx, d);
}
