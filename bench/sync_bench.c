/* goctx-sync-bench: wait groups, error groups and merged cancellation,
 * measured as bench/go-sync/main.go measures Go's sync.WaitGroup,
 * golang.org/x/sync/errgroup and the AfterFunc merge recipe.
 *
 * Prints one line per operation on stdout:
 *
 *     BENCH <op> <ns_per_op> <bytes_per_op> <allocs_per_op>
 *
 * Knobs (environment, as the other benchmark programs): BENCH_MIN_TIME_MS
 * (default 500), BENCH_RUNS (default 3), BENCH_OPS (comma-separated names).
 * Method: bench_util.h's (n grows until one run lasts the minimum time;
 * best ns/op of the runs; bytes and allocations through the library's
 * allocator, averaged).
 *
 * Ops:
 *   waitgroup_add_done    ctx_waitgroup_add(wg, 1) then done, one thread
 *   waitgroup_wait_zero   ctx_waitgroup_wait on a zero counter
 *   waitgroup_wake_4      one round: 4 threads wait on a group, done brings
 *                         it to zero and wakes them all; each answers on a
 *                         second group the main thread waits on (two
 *                         groups alternate so that adds never race waits)
 *   errgroup_go_wait_1    ctx_errgroup_new, one go (fn returns 0), wait
 *   errgroup_go_wait_100  ctx_errgroup_new, 100 go, wait
 *   merge_create_cancel   ctx_with_merge(request, {shutdown}) then its
 *                         ctx_cancel and ctx_release, request and shutdown
 *                         long-lived
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "goctx.h"
#include "goctx/sync.h"


static void check(int err, const char *what)
{
	if (err) {
		fprintf(stderr, "sync-bench: %s: %s\n", what, strerror(err));
		exit(1);
	}
}

/* ---- wait groups ---- */

static void body_add_done(void *arg, uint64_t n)
{
	ctx_waitgroup_t *wg = arg;
	for (uint64_t i = 0; i < n; i++) {
		ctx_waitgroup_add(wg, 1);
		ctx_waitgroup_done(wg);
	}
}

static void body_wait_zero(void *arg, uint64_t n)
{
	ctx_waitgroup_t *wg = arg;
	for (uint64_t i = 0; i < n; i++)
		ctx_waitgroup_wait(wg, NULL);
}

enum { WAKERS = 4 };

struct wake {
	ctx_waitgroup_t go[2]; /* round r waits on go[r % 2] */
	ctx_waitgroup_t ack;
	_Atomic uint64_t rounds; /* total rounds the waiters run */
};

static void *waker_main(void *p)
{
	struct wake *w = p;
	for (uint64_t r = 0; r < atomic_load(&w->rounds); r++) {
		ctx_waitgroup_wait(&w->go[r % 2], NULL);
		ctx_waitgroup_done(&w->ack);
	}
	return NULL;
}

/* Rounds continue across timed runs: the waiters are started once with a
 * huge round count, stopped at the end by releasing them. */
static struct wake g_wake;
static uint64_t g_round;

static void body_wake(void *arg, uint64_t n)
{
	struct wake *w = arg;
	for (uint64_t i = 0; i < n; i++, g_round++) {
		ctx_waitgroup_add(&w->ack, WAKERS);
		ctx_waitgroup_add(&w->go[(g_round + 1) % 2], 1);
		ctx_waitgroup_done(&w->go[g_round % 2]);
		ctx_waitgroup_wait(&w->ack, NULL);
	}
}

static void op_wake(void)
{
	if (!bench_wanted("waitgroup_wake_4"))
		return;
	atomic_store(&g_wake.rounds, UINT64_MAX);
	ctx_waitgroup_add(&g_wake.go[0], 1);
	pthread_t t[WAKERS];
	for (int i = 0; i < WAKERS; i++)
		check(pthread_create(&t[i], NULL, waker_main, &g_wake), "pthread_create");
	bench_op("waitgroup_wake_4", body_wake, &g_wake);
	/* Stop: the waiters leave after the round they are waiting for. */
	atomic_store(&g_wake.rounds, 0);
	ctx_waitgroup_add(&g_wake.ack, WAKERS);
	ctx_waitgroup_done(&g_wake.go[g_round % 2]);
	for (int i = 0; i < WAKERS; i++)
		pthread_join(t[i], NULL);
}

/* ---- error groups ---- */

static int nothing_fn(ctx_t *g, void *arg)
{
	(void)g;
	(void)arg;
	return 0;
}

static void go_wait(uint64_t n, int k)
{
	for (uint64_t i = 0; i < n; i++) {
		ctx_t *gctx;
		ctx_errgroup_t *g = ctx_errgroup_new(ctx_background(), &gctx);
		if (!g)
			check(errno, "ctx_errgroup_new");
		for (int j = 0; j < k; j++)
			check(ctx_errgroup_go(g, nothing_fn, NULL), "ctx_errgroup_go");
		ctx_errgroup_wait(g);
		ctx_release(gctx);
	}
}

static void body_go_wait_1(void *arg, uint64_t n)
{
	(void)arg;
	go_wait(n, 1);
}

static void body_go_wait_100(void *arg, uint64_t n)
{
	(void)arg;
	go_wait(n, 100);
}

/* ---- merge ---- */

struct merge {
	ctx_t *request, *shutdown;
};

static void body_merge(void *arg, uint64_t n)
{
	struct merge *m = arg;
	for (uint64_t i = 0; i < n; i++) {
		ctx_cancel_t *cancel;
		ctx_t *c = ctx_with_merge(m->request, &m->shutdown, 1, &cancel);
		ctx_cancel(cancel);
		ctx_release(c);
	}
}

static void *nothing(void *p) { return p; }

int main(void)
{
	bench_config("sync");

	check(ctx_set_allocator(bench_alloc, bench_free), "ctx_set_allocator");
	pthread_t t;
	check(pthread_create(&t, NULL, nothing, NULL), "pthread_create");
	pthread_join(t, NULL);

	ctx_waitgroup_t wg = CTX_WAITGROUP_INIT;
	bench_op("waitgroup_add_done", body_add_done, &wg);
	bench_op("waitgroup_wait_zero", body_wait_zero, &wg);
	op_wake();
	bench_op("errgroup_go_wait_1", body_go_wait_1, NULL);
	bench_op("errgroup_go_wait_100", body_go_wait_100, NULL);

	ctx_cancel_t *rc, *sc;
	struct merge m = {ctx_with_cancel(ctx_background(), &rc),
	                  ctx_with_cancel(ctx_background(), &sc)};
	bench_op("merge_create_cancel", body_merge, &m);
	ctx_cancel(rc);
	ctx_cancel(sc);
	ctx_release(m.request);
	ctx_release(m.shutdown);
	return 0;
}
