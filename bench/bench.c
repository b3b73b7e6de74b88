/* goctx-bench: the operations of the shared benchmark spec (SPEC.md beside
 * the peers), measured on goctx with the same method as the Go and C++ peer
 * programs, so that `compare` can set them side by side.
 *
 * Prints one line per operation on stdout:
 *
 *     BENCH <op> <ns_per_op> <bytes_per_op> <allocs_per_op>
 *
 * Diagnostics go to stderr. Knobs (environment, the peers' names):
 *
 *     BENCH_MIN_TIME_MS  minimum duration of one timed run (default 500)
 *     BENCH_RUNS         timed runs per op, the best is kept (default 3)
 *     BENCH_OPS          comma-separated op names to run (default: all)
 *     BENCH_WAKE_REPLY   how the wake_roundtrip waiter answers: "ctx"
 *                        (default: cancels a reply context) or "futex"
 *
 * Method (as the peers): the allocator hook is installed first, then one
 * extra thread is started and joined; n grows (prediction x1.2, at most x100
 * per step) until one run lasts the minimum time; that run and BENCH_RUNS-1
 * more at the same n count; ns/op is the best of them, bytes/op and allocs/op
 * (requested bytes and allocations made through the library's allocator) are
 * averaged over them. "Release" is ctx_cancel on every handle still owed and
 * ctx_release on every reference. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "goctx.h"

/* ---------------------------------------------------------------------------
 * Harness */

static volatile uintptr_t g_sink;

typedef bench_body_fn body_fn;

static void emit(const char *op, const char *ns, const char *b, const char *a)
{
	printf("BENCH %s %s %s %s\n", op, ns, b, a);
	fflush(stdout);
}

static void die(const char *what)
{
	fprintf(stderr, "goctx-bench: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void *xmalloc(size_t size)
{
	void *p = malloc(size);
	if (!p)
		die("malloc");
	return p;
}

static ctx_t *must(ctx_t *c, const char *what)
{
	if (!c)
		die(what);
	return c;
}

#define MEM_COUNT 100000 /* live contexts for the mem_* ops */

/* Keys compare by address: 256 distinct static objects. */
static char g_keys[256];
static int g_val_a, g_val_b;

static ctx_t *new_root(ctx_cancel_t **cancel)
{
	return must(ctx_with_cancel(ctx_background(), cancel), "root");
}

static void release_cancel(ctx_t *c, ctx_cancel_t *cancel)
{
	ctx_cancel(cancel);
	ctx_release(c);
}

/* ---------------------------------------------------------------------------
 * Ops */

static void body_err(void *arg, uint64_t n)
{
	ctx_t *c = arg;
	uintptr_t acc = 0;
	for (uint64_t i = 0; i < n; i++)
		acc += (uintptr_t)ctx_err(c);
	g_sink = acc;
}

static void body_done_poll(void *arg, uint64_t n)
{
	ctx_t *c = arg;
	uintptr_t cnt = 0;
	for (uint64_t i = 0; i < n; i++)
		if (ctx_done(c))
			cnt++;
	g_sink = cnt;
}

static void body_with_cancel(void *arg, uint64_t n)
{
	ctx_t *parent = arg;
	for (uint64_t i = 0; i < n; i++) {
		ctx_cancel_t *cancel;
		ctx_t *c = ctx_with_cancel(parent, &cancel);
		ctx_cancel(cancel);
		ctx_release(c);
	}
}

struct par_worker {
	ctx_t *root;
	uint64_t cnt;
};

static void *par_main(void *p)
{
	struct par_worker *w = p;
	body_with_cancel(w->root, w->cnt);
	return NULL;
}

static void body_with_cancel_par(void *arg, uint64_t n)
{
	enum { WORKERS = 2 };
	pthread_t t[WORKERS];
	struct par_worker w[WORKERS];
	for (int i = 0; i < WORKERS; i++) {
		w[i].root = arg;
		w[i].cnt = n / WORKERS + (i == 0 ? n % WORKERS : 0);
		if (pthread_create(&t[i], NULL, par_main, &w[i]) != 0)
			die("pthread_create");
	}
	for (int i = 0; i < WORKERS; i++)
		pthread_join(t[i], NULL);
}

#define HOUR ((ctx_duration_t)3600 * CTX_SECOND)

struct timeout_arg {
	ctx_t *root;
	ctx_duration_t *durs; /* NULL: always 1h; else 4096 durations */
};

static void body_with_timeout(void *arg, uint64_t n)
{
	struct timeout_arg *a = arg;
	ctx_t *root = a->root;
	if (a->durs) {
		ctx_duration_t *durs = a->durs;
		for (uint64_t i = 0; i < n; i++) {
			ctx_cancel_t *cancel;
			ctx_t *c = ctx_with_timeout(root, durs[i & 4095], &cancel);
			ctx_cancel(cancel);
			ctx_release(c);
		}
	} else {
		for (uint64_t i = 0; i < n; i++) {
			ctx_cancel_t *cancel;
			ctx_t *c = ctx_with_timeout(root, HOUR, &cancel);
			ctx_cancel(cancel);
			ctx_release(c);
		}
	}
}

/* N pending contexts with timeouts, children of Background (so only the
 * timer queue grows with N, not root's child set), as the Go peer does. */
static void op_with_timeout(const char *op, size_t pending, bool rand_durs)
{
	if (!bench_wanted(op))
		return;
	uint64_t seed = 1;
	ctx_t **others = xmalloc(pending * sizeof *others);
	ctx_cancel_t **cancels = xmalloc(pending * sizeof *cancels);
	for (size_t i = 0; i < pending; i++)
		others[i] = must(ctx_with_timeout(ctx_background(),
		                                  rand_durs ? bench_rand_hour(&seed) : HOUR,
		                                  &cancels[i]),
		                 "pending timeout");
	ctx_cancel_t *rc;
	ctx_t *root = new_root(&rc);
	ctx_duration_t *durs = NULL;
	if (rand_durs) {
		durs = xmalloc(4096 * sizeof *durs);
		for (int i = 0; i < 4096; i++)
			durs[i] = bench_rand_hour(&seed);
	}
	struct timeout_arg a = {root, durs};
	bench_op(op, body_with_timeout, &a);
	release_cancel(root, rc);
	for (size_t i = 0; i < pending; i++)
		release_cancel(others[i], cancels[i]);
	free(durs);
	free(others);
	free(cancels);
}

struct many_arg {
	size_t count;
	ctx_t **ctxs;
	ctx_cancel_t **cancels;
};

static void body_cancel_chain(void *arg, uint64_t n)
{
	struct many_arg *a = arg;
	size_t depth = a->count;
	ctx_t **ctxs = a->ctxs;
	ctx_cancel_t **cancels = a->cancels;
	for (uint64_t i = 0; i < n; i++) {
		ctx_t *parent = ctx_background();
		for (size_t j = 0; j < depth; j++)
			parent = ctxs[j] = ctx_with_cancel(parent, &cancels[j]);
		ctx_cancel(cancels[0]); /* the outermost: the whole chain goes */
		for (size_t j = depth - 1; j > 0; j--) /* release, innermost first */
			release_cancel(ctxs[j], cancels[j]);
		ctx_release(ctxs[0]);
	}
}

static void body_cancel_fanout(void *arg, uint64_t n)
{
	struct many_arg *a = arg;
	size_t fan = a->count;
	ctx_t **ctxs = a->ctxs;
	ctx_cancel_t **cancels = a->cancels;
	for (uint64_t i = 0; i < n; i++) {
		ctx_cancel_t *rc;
		ctx_t *root = ctx_with_cancel(ctx_background(), &rc);
		for (size_t j = 0; j < fan; j++)
			ctxs[j] = ctx_with_cancel(root, &cancels[j]);
		ctx_cancel(rc); /* cancels all fan children */
		for (size_t j = 0; j < fan; j++)
			release_cancel(ctxs[j], cancels[j]);
		ctx_release(root);
	}
}

static void op_many(const char *op, size_t count, body_fn body)
{
	if (!bench_wanted(op))
		return;
	struct many_arg a = {count, xmalloc(count * sizeof(ctx_t *)),
	                     xmalloc(count * sizeof(ctx_cancel_t *))};
	bench_op(op, body, &a);
	free(a.ctxs);
	free(a.cancels);
}

static void body_with_value(void *arg, uint64_t n)
{
	ctx_t *root = arg;
	for (uint64_t i = 0; i < n; i++) {
		ctx_t *c = ctx_with_value(root, &g_keys[0], &g_val_a, NULL);
		BENCH_CLOBBER();
		ctx_release(c);
	}
}

struct value_arg {
	ctx_t *ctx;
	const void *key;
};

static void body_value(void *arg, uint64_t n)
{
	struct value_arg *a = arg;
	ctx_t *c = a->ctx;
	const void *key = a->key;
	uintptr_t acc = 0;
	for (uint64_t i = 0; i < n; i++)
		acc ^= (uintptr_t)ctx_value(c, key);
	g_sink = acc;
}

/* depth nested WithValue contexts on root; the outermost (next to root)
 * holds g_keys[1], the others g_keys[2..depth]. ctxs[depth-1] is the
 * innermost. */
static void value_chain(ctx_t *root, size_t depth, ctx_t **ctxs)
{
	ctx_t *parent = root;
	for (size_t j = 1; j <= depth; j++)
		parent = ctxs[j - 1] = must(ctx_with_value(parent, &g_keys[j], j == 1 ? &g_val_a : &g_val_b,
		                                           NULL),
		                            "value chain");
}

static void op_value(const char *op, size_t depth, bool miss)
{
	if (!bench_wanted(op))
		return;
	ctx_cancel_t *rc;
	ctx_t *root = new_root(&rc);
	ctx_t **ctxs = xmalloc(depth * sizeof *ctxs);
	value_chain(root, depth, ctxs);
	struct value_arg a = {ctxs[depth - 1], miss ? (const void *)&g_keys[255] : &g_keys[1]};
	void *got = ctx_value(a.ctx, a.key);
	if (got != (miss ? NULL : (void *)&g_val_a)) {
		fprintf(stderr, "goctx-bench: %s: wrong value %p\n", op, got);
		exit(1);
	}
	bench_op(op, body_value, &a);
	for (size_t j = depth; j > 0; j--)
		ctx_release(ctxs[j - 1]);
	free(ctxs);
	release_cancel(root, rc);
}

static void noop_fn(void *arg)
{
	(void)arg;
}

static void body_after_func_stop(void *arg, uint64_t n)
{
	ctx_t *root = arg;
	for (uint64_t i = 0; i < n; i++) {
		ctx_after_t *stop;
		if (ctx_after_func(root, noop_fn, NULL, &stop) != 0)
			die("ctx_after_func");
		ctx_after_stop(stop);
	}
}

/* after_func_at_stop: after_func_stop with the registration in the
 * caller's slot (ctx_after_func_at), on the stack as C++'s stop_callback. */
static void body_after_func_at_stop(void *arg, uint64_t n)
{
	ctx_t *root = arg;
	for (uint64_t i = 0; i < n; i++) {
		ctx_after_slot_t slot;
		ctx_after_t *stop = ctx_after_func_at(root, &slot, noop_fn, NULL);
		if (!stop)
			die("ctx_after_func_at");
		ctx_after_stop(stop);
	}
}

/* wake_roundtrip: per op a fresh WithCancel(Background) context; a waiter
 * thread blocks in ctx_wait on it; the main thread cancels it; the waiter
 * answers back; the main thread waits for the answer. As in the peers, the
 * next round's context is made and published before the current one is
 * canceled, so the waiter picks it up without an extra handoff (the cancel
 * orders that store before the waiter's load after its wait). The waiter
 * thread is started inside the timed run, as in the peers.
 *
 * The answer goes back the way the peers send theirs: with the same
 * mechanism the wake used (Go: a channel after a channel close; C++: a
 * semaphore after a stop_callback that releases a semaphore). Here that is
 * goctx again: per round a reply context, made and published with the next
 * one, that the waiter cancels and the main thread ctx_waits on.
 * BENCH_WAKE_REPLY=futex answers on a bare futex semaphore instead (64 pause
 * spins, then FUTEX_WAIT), to show what the reply mechanism costs. */
static bool g_wake_futex;

struct wake_arg {
	ctx_t *first;
	ctx_cancel_t *first_reply;
	_Atomic(ctx_t *) next;
	_Atomic(ctx_cancel_t *) next_reply;
	_Atomic uint32_t reply;
	uint64_t n;
};

static void *wake_waiter(void *p)
{
	struct wake_arg *w = p;
	ctx_t *c = w->first;
	if (g_wake_futex) {
		for (uint64_t i = 0; i < w->n; i++) {
			ctx_wait(c, CTX_FOREVER);
			c = atomic_load_explicit(&w->next, memory_order_acquire);
			bench_sem_post(&w->reply);
		}
	} else {
		ctx_cancel_t *reply = w->first_reply;
		for (uint64_t i = 0; i < w->n; i++) {
			ctx_wait(c, CTX_FOREVER);
			c = atomic_load_explicit(&w->next, memory_order_acquire);
			ctx_cancel_t *r = reply;
			reply = atomic_load_explicit(&w->next_reply, memory_order_acquire);
			ctx_cancel(r);
		}
		if (reply)
			ctx_cancel(reply); /* the last round's spare */
	}
	return NULL;
}

static void body_wake_roundtrip(void *arg, uint64_t n)
{
	(void)arg;
	struct wake_arg w;
	ctx_cancel_t *cancel, *rcancel = NULL;
	ctx_t *cur = must(ctx_with_cancel(ctx_background(), &cancel), "wake ctx");
	ctx_t *rctx = NULL;
	if (!g_wake_futex)
		rctx = must(ctx_with_cancel(ctx_background(), &rcancel), "reply ctx");
	w.first = cur;
	w.first_reply = rcancel;
	atomic_init(&w.next, NULL);
	atomic_init(&w.next_reply, NULL);
	atomic_init(&w.reply, 0);
	w.n = n;
	pthread_t t;
	if (pthread_create(&t, NULL, wake_waiter, &w) != 0)
		die("pthread_create");
	for (uint64_t i = 0; i < n; i++) {
		ctx_cancel_t *ncancel, *nrcancel = NULL;
		ctx_t *nctx = ctx_with_cancel(ctx_background(), &ncancel);
		ctx_t *nrctx = NULL;
		if (!g_wake_futex) {
			nrctx = ctx_with_cancel(ctx_background(), &nrcancel);
			atomic_store_explicit(&w.next_reply, nrcancel, memory_order_release);
		}
		atomic_store_explicit(&w.next, nctx, memory_order_release);
		ctx_cancel(cancel);
		if (g_wake_futex) {
			bench_sem_wait(&w.reply);
		} else {
			ctx_wait(rctx, CTX_FOREVER);
			ctx_release(rctx);
			rctx = nrctx;
		}
		ctx_release(cur); /* the waiter is done with it */
		cur = nctx;
		cancel = ncancel;
	}
	pthread_join(t, NULL);
	release_cancel(cur, cancel);
	ctx_release(rctx);
}

/* mem_*: retained requested bytes and live blocks per context, MEM_COUNT
 * contexts alive at once (holder arrays come from malloc, not through the
 * library's allocator, and exist before the baseline). */
enum mem_kind { MEM_CANCEL, MEM_VALUE, MEM_TIMER };

static void op_mem(const char *op, enum mem_kind kind)
{
	if (!bench_wanted(op))
		return;
	ctx_cancel_t *rc;
	ctx_t *root = new_root(&rc);
	ctx_t **ctxs = xmalloc(MEM_COUNT * sizeof *ctxs);
	ctx_cancel_t **cancels = xmalloc(MEM_COUNT * sizeof *cancels);
	if (kind == MEM_TIMER) {
		/* The timer thread starts on the first deadline: start it (and let
		 * the queue take its first shape) outside the count. */
		ctx_cancel_t *c;
		ctx_t *x = must(ctx_with_timeout(root, HOUR, &c), "warm-up timeout");
		release_cancel(x, c);
	}
	/* The nodes this thread's cache holds would serve the first contexts
	 * without an allocation: give them back, so each context is counted. */
	ctx_flush_cache();
	struct bench_counts c0 = bench_snapshot();
	for (size_t i = 0; i < MEM_COUNT; i++) {
		switch (kind) {
		case MEM_CANCEL:
			ctxs[i] = must(ctx_with_cancel(root, &cancels[i]), op);
			break;
		case MEM_VALUE:
			ctxs[i] = must(ctx_with_value(root, &g_keys[0], &g_val_a, NULL), op);
			cancels[i] = NULL;
			break;
		case MEM_TIMER:
			ctxs[i] = must(ctx_with_timeout(root, HOUR, &cancels[i]), op);
			break;
		}
	}
	struct bench_counts c1 = bench_snapshot();
	double live_bytes = ((double)c1.bytes - (double)c1.freed_bytes) -
	                    ((double)c0.bytes - (double)c0.freed_bytes);
	double live_blocks = ((double)c1.allocs - (double)c1.frees) -
	                     ((double)c0.allocs - (double)c0.frees);
	for (size_t i = 0; i < MEM_COUNT; i++) {
		if (cancels[i])
			ctx_cancel(cancels[i]);
		ctx_release(ctxs[i]);
	}
	free(ctxs);
	free(cancels);
	release_cancel(root, rc);
	char bbuf[64], abuf[64];
	emit(op, "-", bench_num(live_bytes / MEM_COUNT, bbuf, sizeof bbuf),
	     bench_num(live_blocks / MEM_COUNT, abuf, sizeof abuf));
	fprintf(stderr, "goctx: %-24s done\n", op);
}

/* ---------------------------------------------------------------------------
 * Main */

static void *nothing(void *p)
{
	return p;
}

static void parse_env(void)
{
	bench_config("goctx");
	const char *v = getenv("BENCH_WAKE_REPLY");
	if (v && *v) {
		if (strcmp(v, "futex") == 0)
			g_wake_futex = true;
		else if (strcmp(v, "ctx") != 0) {
			fprintf(stderr, "bad BENCH_WAKE_REPLY=%s (ctx or futex)\n", v);
			exit(2);
		}
	}
}

int main(void)
{
	/* First thing, before any context exists. */
	if (ctx_set_allocator(bench_alloc, bench_free) != 0) {
		fprintf(stderr, "goctx-bench: ctx_set_allocator failed\n");
		return 1;
	}
	parse_env();
	fprintf(stderr, "goctx: goctx %d.%d.%d, %ld CPUs, min_time=%gs runs=%d\n",
	        GOCTX_VERSION_MAJOR, GOCTX_VERSION_MINOR, GOCTX_VERSION_PATCH,
	        sysconf(_SC_NPROCESSORS_ONLN), bench_min_time, bench_runs);

	/* Make the process multi-threaded before anything is timed (glibc's
	 * malloc and the C library take cheaper paths until then). */
	pthread_t t;
	if (pthread_create(&t, NULL, nothing, NULL) != 0)
		die("pthread_create");
	pthread_join(t, NULL);

	if (bench_wanted("err_live")) {
		ctx_cancel_t *rc;
		ctx_t *root = new_root(&rc);
		bench_op("err_live", body_err, root);
		release_cancel(root, rc);
	}
	if (bench_wanted("err_canceled")) {
		ctx_cancel_t *rc;
		ctx_t *c = new_root(&rc);
		ctx_cancel(rc);
		bench_op("err_canceled", body_err, c);
		ctx_release(c);
	}
	if (bench_wanted("done_poll_live")) {
		ctx_cancel_t *rc;
		ctx_t *root = new_root(&rc);
		bench_op("done_poll_live", body_done_poll, root);
		release_cancel(root, rc);
	}
	if (bench_wanted("with_cancel_bg"))
		bench_op("with_cancel_bg", body_with_cancel, ctx_background());
	if (bench_wanted("with_cancel_child")) {
		ctx_cancel_t *rc;
		ctx_t *root = new_root(&rc);
		bench_op("with_cancel_child", body_with_cancel, root);
		release_cancel(root, rc);
	}
	if (bench_wanted("with_cancel_child_par")) {
		ctx_cancel_t *rc;
		ctx_t *root = new_root(&rc);
		bench_op("with_cancel_child_par", body_with_cancel_par, root);
		release_cancel(root, rc);
	}

	op_with_timeout("with_timeout_1000", 1000, false);
	op_with_timeout("with_timeout_100000", 100000, false);
	op_with_timeout("with_timeout_1000000", 1000000, false);
	op_with_timeout("with_timeout_rand_1000000", 1000000, true);

	op_many("cancel_chain_10", 10, body_cancel_chain);
	op_many("cancel_chain_100", 100, body_cancel_chain);
	op_many("cancel_chain_1000", 1000, body_cancel_chain);
	op_many("cancel_fanout_1000", 1000, body_cancel_fanout);

	if (bench_wanted("with_value")) {
		ctx_cancel_t *rc;
		ctx_t *root = new_root(&rc);
		bench_op("with_value", body_with_value, root);
		release_cancel(root, rc);
	}
	op_value("value_depth_10", 10, false);
	op_value("value_depth_100", 100, false);
	op_value("value_miss_10", 10, true);
	op_value("value_miss_100", 100, true);

	if (bench_wanted("after_func_stop")) {
		ctx_cancel_t *rc;
		ctx_t *root = new_root(&rc);
		bench_op("after_func_stop", body_after_func_stop, root);
		release_cancel(root, rc);
	}

	if (bench_wanted("after_func_at_stop")) {
		ctx_cancel_t *rc;
		ctx_t *root = new_root(&rc);
		bench_op("after_func_at_stop", body_after_func_at_stop, root);
		release_cancel(root, rc);
	}

	if (bench_wanted("wake_roundtrip"))
		bench_op("wake_roundtrip", body_wake_roundtrip, NULL);

	op_mem("mem_cancel_ctx", MEM_CANCEL);
	op_mem("mem_value_ctx", MEM_VALUE);
	op_mem("mem_timer_ctx", MEM_TIMER);

	/* Everything made above has been released: say so if the library still
	 * holds blocks (a leak, or a cache it keeps on purpose) once this
	 * thread's node cache is given back (the workers' went at their exit). */
	ctx_flush_cache();
	struct bench_counts end = bench_snapshot();
	if (end.allocs != end.frees)
		fprintf(stderr, "goctx: note: %" PRIu64 " blocks (%" PRIu64 " bytes) still live at exit\n",
		        end.allocs - end.frees, end.bytes - end.freed_bytes);
	return 0;
}
