/* goctx-scaling: how goctx's costs grow with the size of what is pending.
 * bench/go-scaling/main.go measures the same things on Go's context, and
 * bench/scaling.sh runs both and draws docs/scaling.png.
 *
 * Prints lines `SCALE <series> <N> <ns>` on stdout:
 *
 *   timer       N: ns per WithTimeout(root, 1h) + cancel + release, while N
 *               other contexts with 1h timeouts (children of Background) pend
 *   timer_rand  N: the same, every timeout (pending and timed) drawn from
 *               [1h, 2h], so new deadlines land inside the queue
 *   fanout      N: ns per node to cancel a root with N WithCancel children
 *               (the ctx_cancel of the root alone)
 *   fanout_all  N: ns per node for the whole: build the N children, cancel
 *               the root, cancel and release the children
 *   tree10      N: ns per node to cancel the root of a complete 10-ary tree of
 *               N WithCancel contexts (children of each node made in order)
 *
 * Knobs: SCALE_SIZES (comma list, default 1000,10000,100000,1000000),
 * SCALE_MIN_TIME_MS (per timed run of the timer series, default 200),
 * SCALE_SERIES (comma list, default all). Timer series: best of 3 runs at an
 * n that lasts the minimum time. Tree series: best of max(3, min(50, 1e6/N))
 * repetitions. */
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

#define HOUR ((ctx_duration_t)3600 * CTX_SECOND)

static double g_min_time = 0.2;
static const char *g_series;

static void die(const char *what)
{
	fprintf(stderr, "goctx-scaling: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void *xmalloc(size_t size)
{
	void *p = malloc(size);
	if (!p)
		die("malloc");
	return p;
}

static bool wanted(const char *series)
{
	if (!g_series || !*g_series)
		return true;
	size_t len = strlen(series);
	for (const char *p = g_series; *p;) {
		const char *end = strchr(p, ',');
		size_t l = end ? (size_t)(end - p) : strlen(p);
		if (l == len && strncmp(p, series, len) == 0)
			return true;
		if (!end)
			break;
		p = end + 1;
	}
	return false;
}

static void emit(const char *series, size_t n, double ns)
{
	printf("SCALE %s %zu %.2f\n", series, n, ns);
	fflush(stdout);
}

/* ---- timers ---- */

static double timer_run(ctx_t *root, const ctx_duration_t *durs, uint64_t n)
{
	double t0 = bench_secs();
	for (uint64_t i = 0; i < n; i++) {
		ctx_cancel_t *cancel;
		ctx_t *c = ctx_with_timeout(root, durs ? durs[i & 4095] : HOUR, &cancel);
		ctx_cancel(cancel);
		ctx_release(c);
	}
	return bench_secs() - t0;
}

static void scale_timer(size_t pending, bool rand_durs)
{
	const char *series = rand_durs ? "timer_rand" : "timer";
	if (!wanted(series))
		return;
	uint64_t seed = 1;
	ctx_t **others = xmalloc(pending * sizeof *others);
	ctx_cancel_t **cancels = xmalloc(pending * sizeof *cancels);
	for (size_t i = 0; i < pending; i++) {
		others[i] = ctx_with_timeout(ctx_background(),
		                             rand_durs ? bench_rand_hour(&seed) : HOUR, &cancels[i]);
		if (!others[i])
			die("ctx_with_timeout");
	}
	ctx_duration_t durs[4096];
	for (int i = 0; i < 4096; i++)
		durs[i] = bench_rand_hour(&seed);
	ctx_cancel_t *rc;
	ctx_t *root = ctx_with_cancel(ctx_background(), &rc);

	uint64_t n = 1000;
	double secs;
	for (;;) {
		secs = timer_run(root, rand_durs ? durs : NULL, n);
		if (secs >= g_min_time)
			break;
		uint64_t next = secs > 0 ? (uint64_t)((double)n * 1.2 * g_min_time / secs) : n * 100;
		if (next > n * 100)
			next = n * 100;
		if (next <= n)
			next = n + 1;
		n = next;
	}
	double best = secs;
	for (int r = 1; r < 3; r++) {
		secs = timer_run(root, rand_durs ? durs : NULL, n);
		if (secs < best)
			best = secs;
	}
	emit(series, pending, best * 1e9 / (double)n);

	ctx_cancel(rc);
	ctx_release(root);
	for (size_t i = 0; i < pending; i++) {
		ctx_cancel(cancels[i]);
		ctx_release(others[i]);
	}
	free(others);
	free(cancels);
}

/* ---- trees ---- */

static size_t reps_for(size_t n)
{
	size_t r = 1000000 / n;
	if (r < 3)
		r = 3;
	if (r > 50)
		r = 50;
	return r;
}

/* A root with n children; returns the cancel time; *all the whole cycle. */
static double fanout_once(size_t n, ctx_t **ctxs, ctx_cancel_t **cancels, double *all)
{
	double t0 = bench_secs();
	ctx_cancel_t *rc;
	ctx_t *root = ctx_with_cancel(ctx_background(), &rc);
	for (size_t j = 0; j < n; j++)
		if (!(ctxs[j] = ctx_with_cancel(root, &cancels[j])))
			die("ctx_with_cancel");
	double t1 = bench_secs();
	ctx_cancel(rc);
	double t2 = bench_secs();
	for (size_t j = 0; j < n; j++) {
		ctx_cancel(cancels[j]);
		ctx_release(ctxs[j]);
	}
	ctx_release(root);
	*all = bench_secs() - t0;
	return t2 - t1;
}

static void scale_fanout(size_t n)
{
	if (!wanted("fanout") && !wanted("fanout_all"))
		return;
	ctx_t **ctxs = xmalloc(n * sizeof *ctxs);
	ctx_cancel_t **cancels = xmalloc(n * sizeof *cancels);
	double best = 1e30, best_all = 1e30;
	for (size_t r = reps_for(n); r > 0; r--) {
		double all, c = fanout_once(n, ctxs, cancels, &all);
		if (c < best)
			best = c;
		if (all < best_all)
			best_all = all;
	}
	if (wanted("fanout"))
		emit("fanout", n, best * 1e9 / (double)n);
	if (wanted("fanout_all"))
		emit("fanout_all", n, best_all * 1e9 / (double)n);
	free(ctxs);
	free(cancels);
}

/* Complete 10-ary tree of n nodes in level order: node i's parent is
 * (i-1)/10. Node 0 is the root, a child of Background. */
static void scale_tree10(size_t n)
{
	if (!wanted("tree10"))
		return;
	ctx_t **ctxs = xmalloc(n * sizeof *ctxs);
	ctx_cancel_t **cancels = xmalloc(n * sizeof *cancels);
	double best = 1e30;
	for (size_t r = reps_for(n); r > 0; r--) {
		for (size_t i = 0; i < n; i++)
			if (!(ctxs[i] = ctx_with_cancel(i ? ctxs[(i - 1) / 10] : ctx_background(),
			                                &cancels[i])))
				die("ctx_with_cancel");
		double t0 = bench_secs();
		ctx_cancel(cancels[0]);
		double c = bench_secs() - t0;
		for (size_t i = n; i-- > 1;) {
			ctx_cancel(cancels[i]);
			ctx_release(ctxs[i]);
		}
		ctx_release(ctxs[0]);
		if (c < best)
			best = c;
	}
	emit("tree10", n, best * 1e9 / (double)n);
	free(ctxs);
	free(cancels);
}

static void *nothing(void *p)
{
	return p;
}

int main(void)
{
	const char *v = getenv("SCALE_MIN_TIME_MS");
	if (v && *v && atoi(v) > 0)
		g_min_time = atoi(v) / 1000.0;
	g_series = getenv("SCALE_SERIES");
	const char *sizes = getenv("SCALE_SIZES");
	if (!sizes || !*sizes)
		sizes = "1000,10000,100000,1000000";

	/* As goctx-bench: multi-threaded mode before anything is timed. */
	pthread_t t;
	if (pthread_create(&t, NULL, nothing, NULL) != 0)
		die("pthread_create");
	pthread_join(t, NULL);

	for (const char *p = sizes; *p;) {
		char *end;
		unsigned long long n = strtoull(p, &end, 10);
		if (end == p || n == 0) {
			fprintf(stderr, "goctx-scaling: bad SCALE_SIZES=%s\n", sizes);
			return 2;
		}
		double t0 = bench_secs();
		scale_timer((size_t)n, false);
		scale_timer((size_t)n, true);
		scale_fanout((size_t)n);
		scale_tree10((size_t)n);
		fprintf(stderr, "goctx-scaling: N=%llu done in %.1fs\n", n, bench_secs() - t0);
		p = *end == ',' ? end + 1 : end;
	}
	return 0;
}
