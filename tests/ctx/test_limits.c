/* test_limits.c: a million contexts in one tree, a million pending
 * deadlines, a million-deep chain; and, at the scale a process allows,
 * hundreds of threads waiting on one context and thousands of done
 * descriptors (all closed again when their contexts go).
 *
 * Every allocation is counted; after each test everything is released and
 * the count must be back where it started. Under ThreadSanitizer the sizes
 * drop to 100,000 (the test stays well under a minute; AddressSanitizer
 * takes about 10 s at full size); GOCTX_LIMITS_N overrides the size.
 */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sys/resource.h>
#include <time.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "goctx.h"
#include "util.h"
#include "ctx/testing.h"
#include "os/os.h" /* CTX__OS_DONE_FDS: the POSIX backend's descriptor is a socket pair */

#if defined(__SANITIZE_THREAD__)
#define LIMITS_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define LIMITS_TSAN 1
#endif
#endif
#ifndef LIMITS_TSAN
#define LIMITS_TSAN 0
#endif

#define LONG_WAIT (60 * CTX_SECOND) /* only reached on a bug */

static size_t N;

static atomic_long n_live;
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t live_cond = PTHREAD_COND_INITIALIZER;
static long live_target = -1; /* guarded by live_lock: someone waits for it */

static void *count_alloc(size_t size)
{
	void *p = malloc(size);
	if (p)
		atomic_fetch_add_explicit(&n_live, 1, memory_order_relaxed);
	return p;
}
static void count_free(void *p)
{
	if (p) {
		long now = atomic_fetch_sub_explicit(&n_live, 1, memory_order_relaxed) - 1;
		free(p);
		pthread_mutex_lock(&live_lock);
		if (now == live_target)
			pthread_cond_broadcast(&live_cond);
		pthread_mutex_unlock(&live_lock);
	}
}

/* The live count as the allocator sees it, once this thread's node cache
 * has given back what it holds (src/ctx/cache.c). */
static long live(void)
{
	ctx_flush_cache();
	return atomic_load(&n_live);
}

static _Atomic ctx_time_t fake_now = 1000 * CTX_SECOND;
static ctx_time_t fake_clock(void) { return atomic_load(&fake_now); }

static long base;
static int mark(void **state)
{
	(void)state;
	base = live();
	return 0;
}

/* Everything given back: the timer thread may still be dropping the
 * last reference of a context it fired, so wait (bounded) for the count. */
static void settle(void)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += LONG_WAIT / CTX_SECOND;
	ctx_flush_cache(); /* count_free takes live_lock */
	pthread_mutex_lock(&live_lock);
	live_target = base;
	while (atomic_load(&n_live) != base)
		if (pthread_cond_timedwait(&live_cond, &live_lock, &until) == ETIMEDOUT)
			break;
	live_target = -1;
	pthread_mutex_unlock(&live_lock);
}

static void test_fanout(void **state)
{
	(void)state;
	ctx_t **kids = malloc(N * sizeof *kids);
	assert_non_null(kids);
	ctx_cancel_t *rh;
	ctx_t *root = ctx_with_cancel(ctx_background(), &rh);
	assert_non_null(root);
	for (size_t i = 0; i < N; i++) {
		/* Mixed kinds; every one a direct entry of root's list except the
		 * value layers, which list nothing. */
		switch (i % 4) {
		case 0:
		case 1:
			kids[i] = ctx_with_cancel(root, NULL);
			break;
		case 2:
			kids[i] = ctx_with_timeout(root, 3600 * CTX_SECOND, NULL);
			break;
		default:
			kids[i] = ctx_with_value(root, &kids, (void *)i, NULL);
			break;
		}
		if (!kids[i])
			fail_msg("context %zu of %zu: errno %d", i, N, errno);
	}
	size_t listed = N - N / 4;
	assert_int_equal(ctx__children_count(root), listed);
	assert_int_equal(live(), base + 1 + (long)N);
	print_message("  %zu contexts under one parent, %zu listed\n", N, listed);

	/* One cancel reaches them all, with its cause. */
	ctx_cancel_cause(rh, 8080);
	for (size_t i = 0; i < N; i++) {
		if (ctx_err(kids[i]) != ECANCELED || ctx_cause(kids[i]) != 8080)
			fail_msg("child %zu: err %d cause %d", i, ctx_err(kids[i]), ctx_cause(kids[i]));
	}
	assert_int_equal(ctx__children_count(root), 0);
	assert_int_equal(ctx__timers_pending(), 0);
	for (size_t i = 0; i < N; i++)
		ctx_release(kids[i]);
	ctx_release(root);
	free(kids);
	assert_int_equal(live(), base);
}

static void test_deadlines(void **state)
{
	(void)state;
	ctx_t **t = malloc(N * sizeof *t);
	ctx_cancel_t **h = malloc(N * sizeof *h);
	assert_non_null(t);
	assert_non_null(h);
	ctx_time_t now = atomic_load(&fake_now);
	size_t before = ctx__timers_pending();
	/* Deadlines in a scrambled order, so the queue is not fed sorted. */
	for (size_t i = 0; i < N; i++) {
		ctx_time_t d = now + 1 + (ctx_time_t)((i * 2654435761u) % N) * CTX_MICROSECOND;
		t[i] = ctx_with_deadline_cause(ctx_background(), d, (int)(i % 1000) + 1, &h[i]);
		if (!t[i])
			fail_msg("deadline %zu of %zu: errno %d", i, N, errno);
	}
	assert_int_equal(ctx__timers_pending(), before + N);
	print_message("  %zu deadlines pending\n", N);

	/* Cancel every other one: they leave the queue at once. */
	for (size_t i = 0; i < N; i += 2) {
		ctx_cancel(h[i]);
		h[i] = NULL;
	}
	assert_int_equal(ctx__timers_pending(), before + N - (N + 1) / 2);

	/* Let all the others fire. */
	atomic_store(&fake_now, now + 1 + (ctx_time_t)N * CTX_MICROSECOND);
	ctx__timers_kick();
	for (size_t i = 1; i < N; i += 2) {
		int e = ctx_wait(t[i], LONG_WAIT);
		if (e != ETIMEDOUT || ctx_cause(t[i]) != (int)(i % 1000) + 1)
			fail_msg("deadline %zu: wait %d cause %d", i, e, ctx_cause(t[i]));
	}
	for (size_t i = 0; i < N; i += 2)
		assert_int_equal(ctx_err(t[i]), ECANCELED);
	assert_int_equal(ctx__timers_pending(), before);
	for (size_t i = 0; i < N; i++) {
		if (h[i])
			ctx_cancel(h[i]);
		ctx_release(t[i]);
	}
	free(t);
	free(h);
	settle();
	assert_int_equal(live(), base);
}

static void test_deep_chain(void **state)
{
	(void)state;
	/* Cancelling and freeing must not recurse down the chain. */
	ctx_cancel_t *rh;
	ctx_t *root = ctx_with_cancel(ctx_background(), &rh);
	ctx_t *leaf = ctx_retain(root);
	size_t last = 0;
	for (size_t i = 0; i < N; i++) {
		if (i % 3 == 2)
			last = i;
		ctx_t *next = (i % 3 == 2) ? ctx_with_value(leaf, &N, (void *)i, NULL)
		                           : ctx_with_cancel(leaf, NULL);
		if (!next)
			fail_msg("depth %zu: errno %d", i, errno);
		ctx_release(leaf); /* the child holds it now */
		leaf = next;
	}
	assert_int_equal(live(), base + 1 + (long)N);
	assert_ptr_equal(ctx_value(leaf, &N), (void *)last);
	assert_int_equal(ctx__children_count(root), 1);
	ctx_cancel_cause(rh, 9090);
	assert_int_equal(ctx_err(leaf), ECANCELED);
	assert_int_equal(ctx_cause(leaf), 9090);
	print_message("  chain of %zu cancelled\n", N);
	ctx_release(root);
	ctx_release(leaf); /* frees the whole chain */
	assert_int_equal(live(), base);
}

struct waiter {
	ctx_t *c;
	int got;
};

static void *wait_forever(void *arg)
{
	struct waiter *w = arg;
	w->got = ctx_wait(w->c, CTX_FOREVER);
	return NULL;
}

static void test_many_waiters(void **state)
{
	(void)state;
	enum { WAITERS = LIMITS_TSAN ? 64 : 512 };
	static struct waiter w[WAITERS];
	static pthread_t th[WAITERS];
	ctx_cancel_t *h;
	ctx_t *c = ctx_with_cancel(ctx_background(), &h);
	assert_non_null(c);
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	int started = 0;
	for (; started < WAITERS; started++) {
		w[started] = (struct waiter){.c = c, .got = -1};
		if (pthread_create(&th[started], &attr, wait_forever, &w[started]) != 0)
			break; /* the machine's thread limit: fewer is fine */
	}
	pthread_attr_destroy(&attr);
	assert_true(started > 0);
	/* Whether each is asleep yet or not, one cancel must wake them all. */
	ctx_cancel_cause(h, 7070);
	for (int i = 0; i < started; i++) {
		assert_int_equal(UT_BOUNDED(UT_BOUND_MS, "test_many_waiters: the thread returns",
		                            pthread_join(th[i], NULL)), 0);
		assert_int_equal(w[i].got, ECANCELED);
	}
	print_message("  %d threads woken by one cancel\n", started);
	ctx_release(c);
	assert_int_equal(live(), base);
}

static int open_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static void test_many_done_fds(void **state)
{
	(void)state;
	struct rlimit rl;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur < 128)
		skip();
	/* Each live descriptor holds CTX__OS_DONE_FDS descriptors (Linux: one
	 * eventfd; POSIX: a socket pair, one end closed when signalled). */
	const size_t per = CTX__OS_DONE_FDS;
	size_t n = rl.rlim_cur > 10000 * per + 64 ? 10000 : ((size_t)rl.rlim_cur - 64) / per;
	int fds0 = open_fds();
	ctx_cancel_t *h;
	ctx_t *root = ctx_with_cancel(ctx_background(), &h);
	ctx_t **c = malloc(n * sizeof *c);
	struct pollfd *p = malloc(n * sizeof *p);
	assert_non_null(c);
	assert_non_null(p);
	for (size_t i = 0; i < n; i++) {
		c[i] = ctx_with_cancel(root, NULL);
		assert_non_null(c[i]);
		p[i] = (struct pollfd){.fd = ctx_done_fd(c[i]), .events = POLLIN};
		if (p[i].fd < 0)
			fail_msg("done fd %zu of %zu: errno %d", i, n, errno);
	}
	if (fds0 >= 0)
		assert_int_equal(open_fds(), fds0 + (int)(n * per));
	assert_int_equal(poll(p, n, 0), 0);
	ctx_cancel(h);
	assert_int_equal(poll(p, n, 0), (int)n);
	for (size_t i = 0; i < n; i++)
		assert_true(p[i].revents & POLLIN);
	if (fds0 >= 0) /* signalled: one each */
		assert_int_equal(open_fds(), fds0 + (int)n);
	for (size_t i = 0; i < n; i++)
		ctx_release(c[i]);
	ctx_release(root);
	/* Every descriptor went with its context. */
	if (fds0 >= 0)
		assert_int_equal(open_fds(), fds0);
	print_message("  %zu done descriptors made, readable, closed\n", n);
	free(c);
	free(p);
	assert_int_equal(live(), base);
}

int main(void)
{
	const char *env = getenv("GOCTX_LIMITS_N");
	N = env ? strtoul(env, NULL, 10) : (LIMITS_TSAN ? 100000 : 1000000);
	if (N < 4)
		N = 4;
	if (ctx_set_allocator(count_alloc, count_free) != 0)
		return 1;
	ctx__set_clock(fake_clock);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_fanout, mark),
		cmocka_unit_test_setup(test_deadlines, mark),
		cmocka_unit_test_setup(test_deep_chain, mark),
		cmocka_unit_test_setup(test_many_waiters, mark),
		cmocka_unit_test_setup(test_many_done_fds, mark),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
