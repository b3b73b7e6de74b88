/* goctx-chan-bench: goctx's channels measured as bench/go-chan/main.go
 * measures Go's, so the two can be set side by side.
 *
 * Prints one line per operation on stdout:
 *
 *     BENCH <op> <ns_per_op> <bytes_per_op> <allocs_per_op>
 *
 * Knobs (environment, as the other benchmark programs): BENCH_MIN_TIME_MS
 * (default 500), BENCH_RUNS (default 3), BENCH_OPS (comma-separated names).
 *
 * Method (as SPEC.md): the counting allocator is installed first, then one
 * extra thread is started and joined; n grows until one run lasts the
 * minimum time; that run and two more at the same n count; ns/op is the best
 * of them, bytes/op and allocs/op (through the library's allocator) are
 * averaged.
 *
 * Ops:
 *   chan_pingpong_unbuffered  one round trip between two threads over two
 *                             unbuffered channels (ping, then pong): two
 *                             rendezvous, two thread wake-ups
 *   chan_buffered_throughput  one item through a capacity-128 channel, one
 *                             producer thread, the consumer the main one
 *                             (the producer starts inside the timed run)
 *   select_4                  one chan_select over 4 receive cases, all
 *                             ready (4 channels of capacity 1, each holding
 *                             a value), then the value is sent back to the
 *                             channel that fired: one thread, no blocking
 *   select_ctx_case           one chan_select over a ready receive case (a
 *                             capacity-1 channel holding a value) and a
 *                             context case on a live context, then the value
 *                             is sent back: what a context case costs when
 *                             the select need not block
 *   select_ctx_pingpong       chan_pingpong_unbuffered with the main side's
 *                             receive a chan_select over the pong channel
 *                             and a context case on a live context: the
 *                             select blocks every time, so this is the
 *                             cost of hooking and unhooking the context
 *                             around each wait
 *   go_spawn                  chan_go a short function that sends one value
 *                             on a capacity-1 channel, and receive it (Go:
 *                             `go func() { c <- v }()`; `<-c`): the cost of
 *                             starting a goroutine and hearing from it
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "goctx.h"
#include "goctx/chan.h"

typedef bench_body_fn body_fn;

static void check(int err, const char *what)
{
	if (err) {
		fprintf(stderr, "chan-bench: %s: %s\n", what, strerror(err));
		exit(1);
	}
}

/* ---- chan_pingpong_unbuffered ------------------------------------------ */

struct pingpong {
	chan_t *ping, *pong;
};

/* The partner: answers every ping with a pong, until a ping of -1. */
static void *pong_main(void *p)
{
	struct pingpong *pp = p;
	for (;;) {
		int64_t v;
		chan_recv(pp->ping, &v, NULL);
		if (v < 0)
			return NULL;
		v++;
		chan_send(pp->pong, &v);
	}
}

static void body_pingpong(void *arg, uint64_t n)
{
	struct pingpong *pp = arg;
	for (uint64_t i = 0; i < n; i++) {
		int64_t v = (int64_t)i;
		chan_send(pp->ping, &v);
		chan_recv(pp->pong, &v, NULL);
	}
}

static void op_pingpong(void)
{
	if (!bench_wanted("chan_pingpong_unbuffered"))
		return;
	struct pingpong pp = {chan_make(sizeof(int64_t), 0), chan_make(sizeof(int64_t), 0)};
	if (!pp.ping || !pp.pong)
		check(ENOMEM, "chan_make");
	pthread_t t;
	check(pthread_create(&t, NULL, pong_main, &pp), "pthread_create");
	bench_op("chan_pingpong_unbuffered", body_pingpong, &pp);
	int64_t stop = -1;
	chan_send(pp.ping, &stop);
	pthread_join(t, NULL);
	chan_release(pp.ping);
	chan_release(pp.pong);
}

/* ---- chan_buffered_throughput ------------------------------------------- */

struct producer {
	chan_t *c;
	uint64_t n;
};

static void *produce_main(void *p)
{
	struct producer *pr = p;
	for (uint64_t i = 0; i < pr->n; i++)
		chan_send(pr->c, &i);
	return NULL;
}

static void body_throughput(void *arg, uint64_t n)
{
	struct producer pr = {arg, n};
	pthread_t t;
	check(pthread_create(&t, NULL, produce_main, &pr), "pthread_create");
	uint64_t sum = 0;
	for (uint64_t i = 0; i < n; i++) {
		uint64_t v;
		chan_recv(pr.c, &v, NULL);
		sum += v;
	}
	pthread_join(t, NULL);
	if (n && sum != n * (n - 1) / 2) {
		fprintf(stderr, "chan-bench: lost items\n");
		exit(1);
	}
}

static void op_throughput(void)
{
	if (!bench_wanted("chan_buffered_throughput"))
		return;
	chan_t *c = chan_make(sizeof(uint64_t), 128);
	if (!c)
		check(ENOMEM, "chan_make");
	bench_op("chan_buffered_throughput", body_throughput, c);
	chan_release(c);
}

/* ---- select_4 ------------------------------------------------------------ */

static void body_select4(void *arg, uint64_t n)
{
	chan_t **ch = arg;
	int64_t v[4];
	for (uint64_t i = 0; i < n; i++) {
		chan_case_t cs[4] = {CHAN_CASE_RECV(ch[0], &v[0]), CHAN_CASE_RECV(ch[1], &v[1]),
		                     CHAN_CASE_RECV(ch[2], &v[2]), CHAN_CASE_RECV(ch[3], &v[3])};
		size_t fired;
		chan_select(cs, 4, CTX_FOREVER, &fired);
		chan_send(ch[fired], &v[fired]);
	}
}

static void op_select4(void)
{
	if (!bench_wanted("select_4"))
		return;
	chan_t *ch[4];
	for (int i = 0; i < 4; i++) {
		ch[i] = chan_make(sizeof(int64_t), 1);
		if (!ch[i])
			check(ENOMEM, "chan_make");
		int64_t v = i;
		chan_send(ch[i], &v);
	}
	bench_op("select_4", body_select4, ch);
	for (int i = 0; i < 4; i++)
		chan_release(ch[i]);
}

/* ---- select_ctx_case ------------------------------------------------------ */

struct ctx_case {
	chan_t *c;
	ctx_t *ctx;
	struct pingpong pp;
};

static void body_select_ctx(void *arg, uint64_t n)
{
	struct ctx_case *cc = arg;
	for (uint64_t i = 0; i < n; i++) {
		int64_t v;
		chan_case_t cs[2] = {CHAN_CASE_RECV(cc->c, &v), CHAN_CASE_DONE(cc->ctx)};
		size_t fired;
		chan_select(cs, 2, CTX_FOREVER, &fired);
		if (fired != 0)
			check(ECANCELED, "select_ctx_case: context fired");
		chan_send(cc->c, &v);
	}
}

static void op_select_ctx(void)
{
	if (!bench_wanted("select_ctx_case"))
		return;
	struct ctx_case cc = {.c = chan_make(sizeof(int64_t), 1)};
	ctx_cancel_t *cancel;
	cc.ctx = ctx_with_cancel(ctx_background(), &cancel);
	if (!cc.ctx)
		check(ENOMEM, "ctx_with_cancel");
	if (!cc.c)
		check(ENOMEM, "chan_make");
	int64_t v = 1;
	chan_send(cc.c, &v);
	bench_op("select_ctx_case", body_select_ctx, &cc);
	ctx_cancel(cancel);
	ctx_release(cc.ctx);
	chan_release(cc.c);
}

/* ---- select_ctx_pingpong -------------------------------------------------- */

static void body_select_ctx_pingpong(void *arg, uint64_t n)
{
	struct ctx_case *cc = arg;
	for (uint64_t i = 0; i < n; i++) {
		int64_t v = (int64_t)i;
		chan_send(cc->pp.ping, &v);
		chan_case_t cs[2] = {CHAN_CASE_RECV(cc->pp.pong, &v), CHAN_CASE_DONE(cc->ctx)};
		size_t fired;
		chan_select(cs, 2, CTX_FOREVER, &fired);
		if (fired != 0)
			check(ECANCELED, "select_ctx_pingpong: context fired");
	}
}

static void op_select_ctx_pingpong(void)
{
	if (!bench_wanted("select_ctx_pingpong"))
		return;
	struct ctx_case cc = {.pp = {chan_make(sizeof(int64_t), 0), chan_make(sizeof(int64_t), 0)}};
	if (!cc.pp.ping || !cc.pp.pong)
		check(ENOMEM, "chan_make");
	ctx_cancel_t *cancel;
	cc.ctx = ctx_with_cancel(ctx_background(), &cancel);
	if (!cc.ctx)
		check(ENOMEM, "ctx_with_cancel");
	pthread_t t;
	check(pthread_create(&t, NULL, pong_main, &cc.pp), "pthread_create");
	bench_op("select_ctx_pingpong", body_select_ctx_pingpong, &cc);
	int64_t stop = -1;
	chan_send(cc.pp.ping, &stop);
	pthread_join(t, NULL);
	ctx_cancel(cancel);
	ctx_release(cc.ctx);
	chan_release(cc.pp.ping);
	chan_release(cc.pp.pong);
}

/* ---- go_spawn ------------------------------------------------------------ */

static void spawn_fn(void *p)
{
	int64_t v = 1;
	chan_send(p, &v);
}

static void body_spawn(void *arg, uint64_t n)
{
	chan_t *c = arg;
	for (uint64_t i = 0; i < n; i++) {
		int64_t v;
		check(chan_go(spawn_fn, c), "chan_go");
		chan_recv(c, &v, NULL);
	}
}

static void op_spawn(void)
{
	if (!bench_wanted("go_spawn"))
		return;
	chan_t *c = chan_make(sizeof(int64_t), 1);
	if (!c)
		check(ENOMEM, "chan_make");
	bench_op("go_spawn", body_spawn, c);
	chan_release(c);
}

/* ---- main ---------------------------------------------------------------- */

static void *nothing(void *p)
{
	return p;
}

int main(void)
{
	bench_config("chan");

	check(ctx_set_allocator(bench_alloc, bench_free), "ctx_set_allocator");
	/* Multi-threaded mode for libc and malloc before anything is timed. */
	pthread_t t;
	check(pthread_create(&t, NULL, nothing, NULL), "pthread_create");
	pthread_join(t, NULL);

	op_pingpong();
	op_throughput();
	op_select4();
	op_select_ctx();
	op_select_ctx_pingpong();
	op_spawn();
	return 0;
}
