/* util.h: the helpers every goctx test shares: a counting (and failable)
 * allocator with a per-test leak check, a fake clock driven through
 * src/ctx/testing.h, a seeded random generator, a latch (counter + condition
 * variable) for events that happen in other threads, real-time stopwatches,
 * bounded waits that turn a hang into a failure naming what hung instead of a
 * CTest timeout, and iteration counts scaled for ThreadSanitizer.
 * Header-only (static functions), included by each test program. */
#ifndef GOCTX_TEST_UTIL_H
#define GOCTX_TEST_UTIL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "goctx.h"
#include "ctx/testing.h"

#define UT_UNUSED __attribute__((unused))

/* ---- sanitizers: stress loops run half the rounds under TSan ---- */

#if defined(__SANITIZE_THREAD__)
#define UT_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UT_TSAN 1
#endif
#endif
#ifndef UT_TSAN
#define UT_TSAN 0
#endif
#define UT_ITERS(n) (UT_TSAN ? ((n) / 2 > 0 ? (n) / 2 : 1) : (n))

/* ---- counting allocator --------------------------------------------------
 * Installed by a group setup before the first context of the program is made.
 * ut_mark() (a per-test setup) records the live count; ut_assert_no_leak()
 * checks that the test gave everything back.
 *
 * The library keeps freed nodes in a per-thread cache (src/ctx/cache.c) and
 * gives them back to this allocator only when the thread exits or calls
 * ctx_flush_cache(). So ut_live() flushes the calling thread's cache first:
 * the count is then exact for everything done on the calling thread, on
 * threads that have exited (joined), and on the library's timer thread
 * (which does not cache). A thread still running keeps what it freed until
 * it flushes or exits. */

static atomic_long ut_allocs UT_UNUSED; /* successful allocations */
static atomic_long ut_frees UT_UNUSED;  /* frees of non-NULL pointers */
static atomic_int ut_fail_next UT_UNUSED; /* > 0: that many next allocations fail */
static long ut_base UT_UNUSED;          /* live count at the start of the test */

static inline void *ut_alloc(size_t size)
{
	int f = atomic_load(&ut_fail_next);
	while (f > 0) {
		if (atomic_compare_exchange_weak(&ut_fail_next, &f, f - 1))
			return NULL;
	}
	void *p = malloc(size);
	if (p)
		atomic_fetch_add(&ut_allocs, 1);
	return p;
}

static inline void ut_free(void *p)
{
	if (p)
		atomic_fetch_add(&ut_frees, 1);
	free(p);
}

static inline long ut_live(void)
{
	ctx_flush_cache();
	return atomic_load(&ut_allocs) - atomic_load(&ut_frees);
}

/* Make the next n allocations fail. The calling thread's node cache is
 * flushed first, so a constructor's node cannot come from it. */
static inline void ut_fail_allocs(int n)
{
	ctx_flush_cache();
	atomic_store(&ut_fail_next, n);
}

/* The allocator's counts once the calling thread's node cache is flushed:
 * right after ut_allocs_now(), the next constructor calls the allocator. */
static inline long ut_allocs_now(void)
{
	ctx_flush_cache();
	return atomic_load(&ut_allocs);
}

static inline long ut_frees_now(void)
{
	ctx_flush_cache();
	return atomic_load(&ut_frees);
}

/* Install the counting allocator outside cmocka's group setup; must run
 * before any context exists. */
static inline void ut_install_allocator(void)
{
	if (ctx_set_allocator(ut_alloc, ut_free) != 0)
		abort();
}

static inline int ut_group_setup(void **state)
{
	(void)state;
	return ctx_set_allocator(ut_alloc, ut_free);
}

static inline int ut_mark(void **state)
{
	(void)state;
	atomic_store(&ut_fail_next, 0);
	ut_base = ut_live();
	return 0;
}

#define ut_assert_no_leak() assert_int_equal(ut_live(), ut_base)

/* For tests where the timer thread fired a deadline: it holds a temporary
 * reference on the node it cancels until its cancel returns, which may be
 * after the test has seen the node done and dropped its own references, so
 * the last free may happen in that thread a moment later. Wait (bounded) for
 * it; a real leak still fails. */
static inline void ut_assert_no_leak_eventually(void)
{
	for (int i = 0; i < 100000 && ut_live() != ut_base; i++) {
		struct timespec ts = {0, 100 * 1000};
		nanosleep(&ts, NULL);
	}
	assert_int_equal(ut_live(), ut_base);
}

/* ---- fake clock ----------------------------------------------------------
 * ut_fake_install() switches ctx_now() and every deadline to a counter the
 * test moves by hand; it starts at the real monotonic time. ut_fake_set()
 * moves it and kicks the timer thread. Restore with ut_fake_teardown (also a
 * cmocka teardown, so a failing test does not leave the clock fake). */

static _Atomic int64_t ut_fake_ns UT_UNUSED;

static inline ctx_time_t ut_fake_now(void) { return atomic_load(&ut_fake_ns); }

static inline ctx_time_t ut_real_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (ctx_time_t)ts.tv_sec * CTX_SECOND + ts.tv_nsec;
}

static inline ctx_time_t ut_fake_install(void)
{
	ctx_time_t t0 = ut_real_now();
	atomic_store(&ut_fake_ns, t0);
	ctx__set_clock(ut_fake_now);
	return t0;
}

static inline void ut_fake_set(ctx_time_t t)
{
	atomic_store(&ut_fake_ns, t);
	ctx__timers_kick();
}

static inline int ut_fake_teardown(void **state)
{
	(void)state;
	ctx__set_clock(NULL);
	return 0;
}

/* ---- random numbers: xorshift64*, seed printed (GOCTX_SEED overrides) ---- */

static uint64_t ut_rng_state UT_UNUSED;

static inline void ut_seed(const char *what)
{
	const char *env = getenv("GOCTX_SEED");
	uint64_t s = env ? strtoull(env, NULL, 0) : (uint64_t)ut_real_now() ^ (uint64_t)getpid();
	if (!s)
		s = 1;
	ut_rng_state = s;
	print_message("%s: seed %llu (set GOCTX_SEED to repeat)\n", what, (unsigned long long)s);
}

static inline uint64_t ut_rand(void)
{
	uint64_t x = ut_rng_state;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	ut_rng_state = x;
	return x * 0x2545F4914F6CDD1DULL;
}

/* Uniform in [0, n). */
static inline uint64_t ut_randn(uint64_t n) { return ut_rand() % n; }

static inline void ut_shuffle(int *a, int n)
{
	for (int i = n - 1; i > 0; i--) {
		int j = (int)ut_randn((uint64_t)i + 1);
		int t = a[i];
		a[i] = a[j];
		a[j] = t;
	}
}

/* ---- latch: a counter other threads bump, waited for with a bound ---- */

struct ut_latch {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	long count;
};

static inline void ut_latch_init(struct ut_latch *l)
{
	pthread_mutex_init(&l->mu, NULL);
	pthread_condattr_t a;
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(&l->cond, &a);
	pthread_condattr_destroy(&a);
	l->count = 0;
}

static inline void ut_latch_destroy(struct ut_latch *l)
{
	pthread_cond_destroy(&l->cond);
	pthread_mutex_destroy(&l->mu);
}

static inline void ut_latch_add(struct ut_latch *l, long n)
{
	pthread_mutex_lock(&l->mu);
	l->count += n;
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->mu);
}

static inline long ut_latch_get(struct ut_latch *l)
{
	pthread_mutex_lock(&l->mu);
	long n = l->count;
	pthread_mutex_unlock(&l->mu);
	return n;
}

/* Wait until count >= target or `seconds` of real time pass; returns the
 * count seen last. */
static inline long ut_latch_wait(struct ut_latch *l, long target, int seconds)
{
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += seconds;
	pthread_mutex_lock(&l->mu);
	while (l->count < target) {
		if (pthread_cond_timedwait(&l->cond, &l->mu, &until) == ETIMEDOUT)
			break;
	}
	long n = l->count;
	pthread_mutex_unlock(&l->mu);
	return n;
}

/* ---- small checks ---- */

/* Assert ctx is done with err and cause, and that a wait returns at once. */
#define ut_assert_done(c, err, cause)                                                   \
	do {                                                                            \
		assert_true(ctx_done(c));                                               \
		assert_int_equal(ctx_err(c), (err));                                    \
		assert_int_equal(ctx_cause(c), (cause));                                \
		assert_int_equal(ctx_wait((c), 0), (err));                              \
	} while (0)

#define ut_assert_live(c)                                                               \
	do {                                                                            \
		assert_false(ctx_done(c));                                              \
		assert_int_equal(ctx_err(c), 0);                                        \
		assert_int_equal(ctx_cause(c), 0);                                      \
	} while (0)

/* ctx_format into a static buffer (tests are single-threaded there). */
static inline const char *ut_fmt(const ctx_t *c)
{
	static char buf[4096];
	ctx_format(c, buf, sizeof buf);
	return buf;
}

static inline bool ut_starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

static inline bool ut_ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* ---- time ---- */

static inline int64_t ut_cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline void ut_sleep_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Absolute CLOCK_REALTIME time `ms` from now (for sem_timedwait and
 * pthread_timedjoin_np, which take that clock). */
static inline struct timespec ut_realtime_in(int ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	return ts;
}

/* sem_wait for at most ms; true if the semaphore was taken. */
static inline bool ut_sem_wait_ms(sem_t *s, int ms)
{
	struct timespec ts = ut_realtime_in(ms);
	int r;
	while ((r = sem_timedwait(s, &ts)) != 0 && errno == EINTR)
		;
	return r == 0;
}

/* Join t within ms; true if it ended (then *ret is its result). */
static inline bool ut_join_ms(pthread_t t, int ms, void **ret)
{
	struct timespec ts = ut_realtime_in(ms);
	return pthread_timedjoin_np(t, ret, &ts) == 0;
}

/* Run fn(arg) in a new thread and wait at most ms for it to finish; false
 * means it is stuck (a deadlock): the thread is left behind. */
static inline bool ut_run_bounded(void *(*fn)(void *), void *arg, int ms)
{
	pthread_t t;
	if (pthread_create(&t, NULL, fn, arg) != 0)
		return false;
	if (ut_join_ms(t, ms, NULL))
		return true;
	pthread_detach(t);
	return false;
}

/* ---- an after-func that blocks, and a thread that stops it ---------------
 * ut_blocking_fn(b) posts b->started, waits for b->release, then sets
 * b->finished. ut_stopper_main(s) calls ctx_after_stop(s->stop) and records
 * what it returned and whether fn had finished by then, then sets
 * s->returned: for "ctx_after_stop waits while fn runs elsewhere". */
struct ut_blocking {
	sem_t started;
	sem_t release;
	atomic_int finished;
};

static inline void ut_blocking_init(struct ut_blocking *b)
{
	sem_init(&b->started, 0, 0);
	sem_init(&b->release, 0, 0);
	atomic_init(&b->finished, 0);
}

static inline void ut_blocking_destroy(struct ut_blocking *b)
{
	sem_destroy(&b->started);
	sem_destroy(&b->release);
}

static inline void ut_blocking_fn(void *arg)
{
	struct ut_blocking *b = arg;
	sem_post(&b->started);
	while (sem_wait(&b->release) != 0)
		;
	atomic_store(&b->finished, 1);
}

struct ut_stopper {
	ctx_after_t *stop;
	struct ut_blocking *b;
	atomic_int returned;
	bool result;
	int finished_at_return;
};

static inline void *ut_stopper_main(void *arg)
{
	struct ut_stopper *s = arg;
	s->result = ctx_after_stop(s->stop);
	s->finished_at_return = atomic_load(&s->b->finished);
	atomic_store(&s->returned, 1);
	return NULL;
}

/* ---- watchdog: a blocking step with a bound ---------------------------
 * UT_BOUNDED(ms, "rule", expr) evaluates expr (an int-valued blocking call:
 * a join, an endless wait) with a watchdog armed. If expr has not returned
 * after ms of real time (scaled up under sanitizers and valgrind), the
 * program prints "<file>:<line>: <rule>: still blocked after N ms" and
 * aborts, instead of hanging until CTest's timeout. It yields expr's value:
 * keep the assertion outside (a failing cmocka assertion inside would leave
 * the watch armed). One watch at a time; the watchdog thread starts on first
 * use. UT_BOUND_MS is the usual bound. */

#define UT_BOUND_MS 20000

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	bool started;
	int64_t until; /* real CLOCK_MONOTONIC ns; 0: disarmed */
	const char *rule, *file;
	int line, ms;
} ut__wd UT_UNUSED = {.mu = PTHREAD_MUTEX_INITIALIZER};

static inline int ut__bound_scale(void)
{
	const char *pre = getenv("LD_PRELOAD");
	if (pre && strstr(pre, "vgpreload")) /* valgrind: tens of times slower */
		return 20;
#if defined(__SANITIZE_ADDRESS__) || UT_TSAN
	return 3;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
	return 3;
#endif
#endif
	return 1;
}

static inline void *ut__wd_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&ut__wd.mu);
	for (;;) {
		if (!ut__wd.until) {
			pthread_cond_wait(&ut__wd.cond, &ut__wd.mu);
			continue;
		}
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		int64_t now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
		if (now >= ut__wd.until) {
			fprintf(stderr, "%s:%d: %s: still blocked after %d ms (a waiter never woken?)\n",
			        ut__wd.file, ut__wd.line, ut__wd.rule, ut__wd.ms);
			fflush(stderr);
			abort();
		}
		ts.tv_sec = (time_t)(ut__wd.until / 1000000000);
		ts.tv_nsec = (long)(ut__wd.until % 1000000000);
		pthread_cond_timedwait(&ut__wd.cond, &ut__wd.mu, &ts);
	}
	return NULL;
}

static inline void ut_watch_arm(int ms, const char *rule, const char *file, int line)
{
	pthread_mutex_lock(&ut__wd.mu);
	if (!ut__wd.started) {
		pthread_condattr_t a;
		pthread_condattr_init(&a);
		pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
		pthread_cond_init(&ut__wd.cond, &a);
		pthread_condattr_destroy(&a);
		pthread_t t;
		if (pthread_create(&t, NULL, ut__wd_main, NULL) != 0)
			abort();
		pthread_detach(t);
		ut__wd.started = true;
	}
	ms *= ut__bound_scale();
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ut__wd.until = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + (int64_t)ms * 1000000;
	ut__wd.rule = rule;
	ut__wd.file = file;
	ut__wd.line = line;
	ut__wd.ms = ms;
	pthread_cond_signal(&ut__wd.cond);
	pthread_mutex_unlock(&ut__wd.mu);
}

static inline long ut_watch_disarm(long v)
{
	pthread_mutex_lock(&ut__wd.mu);
	ut__wd.until = 0;
	pthread_mutex_unlock(&ut__wd.mu);
	return v;
}

#define UT_BOUNDED(ms, rule, expr)                                                      \
	(ut_watch_arm((ms), (rule), __FILE__, __LINE__), (int)ut_watch_disarm((long)(expr)))

/* Count occurrences of needle in hay (non-overlapping). */
static inline int ut_count(const char *hay, const char *needle)
{
	int n = 0;
	size_t l = strlen(needle);
	for (const char *p = strstr(hay, needle); p; p = strstr(p + l, needle))
		n++;
	return n;
}

#endif
