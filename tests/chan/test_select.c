/* test_select.c: chan_select: default, timeout, nil cases, fairness,
 * context cases, wakes by peers and close, and selects racing selects. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "goctx.h"
#include "util.h"
#include "goctx/chan.h"

static void test_default_nothing_ready(void **state)
{
	(void)state;
	chan_t *a = chan_make(sizeof(int), 0), *b = chan_make(sizeof(int), 1);
	int x = 0, y = 1;
	int full = 2;
	assert_int_equal(chan_send(b, &full), 0); /* b full: a send cannot go */
	chan_case_t cs[] = {CHAN_CASE_RECV(a, &x), CHAN_CASE_SEND(b, &y),
	                    CHAN_CASE_DONE(ctx_background())};
	size_t fired = 0;
	assert_int_equal(chan_select(cs, 3, 0, &fired), EAGAIN);
	assert_int_equal(fired, CHAN_NONE);
	fired = 0;
	assert_int_equal(chan_select(cs, 3, -5, &fired), EAGAIN); /* as 0 */
	assert_int_equal(fired, CHAN_NONE);
	assert_int_equal(chan_len(b), 1);
	chan_release(a);
	chan_release(b);
}

static void test_ready_case_fires(void **state)
{
	(void)state;
	chan_t *a = chan_make(sizeof(int), 0), *b = chan_make(sizeof(int), 1);
	int v = 42, x = 0;
	assert_int_equal(chan_send(b, &v), 0);
	chan_case_t cs[] = {CHAN_CASE_RECV(a, NULL), CHAN_CASE_RECV(b, &x)};
	size_t fired;
	assert_int_equal(UT_BOUNDED(UT_BOUND_MS, "a ready case wakes chan_select",
	                            chan_select(cs, 2, CTX_FOREVER, &fired)), 0);
	assert_int_equal(fired, 1);
	assert_true(cs[1].ok);
	assert_int_equal(x, 42);
	/* A send case into free buffer space. */
	chan_case_t s[] = {CHAN_CASE_SEND(a, &v), CHAN_CASE_SEND(b, &v)};
	assert_int_equal(chan_select(s, 2, 0, &fired), 0);
	assert_int_equal(fired, 1);
	assert_int_equal(chan_len(b), 1);
	chan_release(a);
	chan_release(b);
}

static void test_timeout(void **state)
{
	(void)state;
	chan_t *a = chan_make(sizeof(int), 0);
	chan_case_t cs[] = {CHAN_CASE_RECV(a, NULL)};
	size_t fired = 0;
	ctx_time_t t0 = ctx_now();
	assert_int_equal(chan_select(cs, 1, 10 * CTX_MILLISECOND, &fired), ETIMEDOUT);
	/* A timeout never fires early (a bound the contract gives, not a
	 * measurement of speed). */
	assert_true(ctx_now() - t0 >= 10 * CTX_MILLISECOND);
	assert_int_equal(fired, CHAN_NONE);
	/* Nothing left queued: a try_send still finds no receiver. */
	int v = 1;
	assert_int_equal(chan_try_send(a, &v), EAGAIN);
	chan_release(a);
}

static void test_nil_cases_never_fire(void **state)
{
	(void)state;
	chan_t *b = chan_make(sizeof(int), 4);
	int v = 3;
	chan_case_t cs[] = {CHAN_CASE_RECV(NULL, &v), CHAN_CASE_SEND(NULL, &v),
	                    CHAN_CASE_DONE(NULL), CHAN_CASE_SEND(b, &v)};
	for (int i = 0; i < 200; i++) {
		size_t fired;
		assert_int_equal(UT_BOUNDED(UT_BOUND_MS, "a ready case wakes chan_select",
		                            chan_select(cs, 4, CTX_FOREVER, &fired)), 0);
		assert_int_equal(fired, 3);
		int x;
		assert_int_equal(chan_recv(b, &x, NULL), 0);
	}
	size_t fired;
	assert_int_equal(chan_select(cs, 3, 0, &fired), EAGAIN);
	assert_int_equal(chan_select(cs, 3, CTX_MILLISECOND, &fired), ETIMEDOUT);
	/* Go's `select {}`: blocks for ever; we report it. */
	assert_int_equal(UT_BOUNDED(UT_BOUND_MS, "a ready case wakes chan_select",
	                            chan_select(cs, 3, CTX_FOREVER, &fired)), EDEADLK);
	assert_int_equal(UT_BOUNDED(UT_BOUND_MS, "a ready case wakes chan_select",
	                            chan_select(NULL, 0, CTX_FOREVER, &fired)), EDEADLK);
	assert_int_equal(chan_select(NULL, 0, 0, &fired), EAGAIN);
	chan_release(b);
}

static void test_invalid(void **state)
{
	(void)state;
	chan_t *b = chan_make(sizeof(int), 1);
	size_t fired;
	chan_case_t bad[] = {{.op = 99, .chan = b}};
	assert_int_equal(chan_select(bad, 1, 0, &fired), EINVAL);
	chan_case_t nulls[] = {CHAN_CASE_SEND(b, NULL)};
	assert_int_equal(chan_select(nulls, 1, 0, &fired), EINVAL);
	assert_int_equal(chan_select(NULL, 2, 0, &fired), EINVAL);
	assert_int_equal(chan_len(b), 0);
	chan_release(b);
}

static void test_send_on_closed_in_select(void **state)
{
	(void)state;
	chan_t *a = chan_make(sizeof(int), 0);
	chan_close(a);
	int v = 1;
	chan_case_t cs[] = {CHAN_CASE_SEND(a, &v)};
	size_t fired;
	assert_int_equal(UT_BOUNDED(UT_BOUND_MS, "a ready case wakes chan_select",
	                            chan_select(cs, 1, CTX_FOREVER, &fired)), EPIPE);
	assert_int_equal(fired, 0);
	chan_release(a);
}

/* ---- Fairness. ---------------------------------------------------------- */

#define ROUNDS 40000

static void test_fairness(void **state)
{
	(void)state;
	/* Four cases always ready: two receives (buffered channels kept
	 * non-empty), one send (free space), one done context. Each should
	 * win a quarter of the time; the bounds are +-15% of that, over 20
	 * standard deviations away, so the test does not flake. */
	chan_t *r1 = chan_make(sizeof(int), 1), *r2 = chan_make(sizeof(int), 1);
	chan_t *s = chan_make(sizeof(int), 1);
	ctx_cancel_t *cancel;
	ctx_t *done = ctx_with_cancel(ctx_background(), &cancel);
	ctx_cancel(cancel);
	int v = 5, x;
	chan_send(r1, &v);
	chan_send(r2, &v);
	int hits[4] = {0};
	for (int i = 0; i < ROUNDS; i++) {
		chan_case_t cs[] = {CHAN_CASE_RECV(r1, &x), CHAN_CASE_RECV(r2, &x),
		                    CHAN_CASE_SEND(s, &v), CHAN_CASE_DONE(done)};
		size_t fired;
		assert_int_equal(UT_BOUNDED(UT_BOUND_MS, "a ready case wakes chan_select",
		                            chan_select(cs, 4, CTX_FOREVER, &fired)), 0);
		assert_true(fired < 4);
		hits[fired]++;
		switch (fired) { /* put things back as they were */
		case 0: chan_send(r1, &v); break;
		case 1: chan_send(r2, &v); break;
		case 2: chan_recv(s, &x, NULL); break;
		default: break;
		}
	}
	for (int i = 0; i < 4; i++) {
		print_message("case %d: %d\n", i, hits[i]);
		assert_in_range(hits[i], ROUNDS / 4 * 85 / 100, ROUNDS / 4 * 115 / 100);
	}
	ctx_release(done);
	chan_release(r1);
	chan_release(r2);
	chan_release(s);
}

static void test_many_cases_heap(void **state)
{
	(void)state;
	/* More cases than the on-stack room: the blocking path allocates. */
	enum { N = 20 };
	chan_t *c[N];
	chan_case_t cs[N];
	int dst[N];
	for (int i = 0; i < N; i++) {
		c[i] = chan_make(sizeof(int), 1);
		cs[i] = CHAN_CASE_RECV(c[i], &dst[i]);
	}
	size_t fired;
	assert_int_equal(chan_select(cs, N, CTX_MILLISECOND, &fired), ETIMEDOUT);
	int v = 17;
	chan_send(c[13], &v);
	assert_int_equal(UT_BOUNDED(UT_BOUND_MS, "a ready case wakes chan_select",
	                            chan_select(cs, N, CTX_FOREVER, &fired)), 0);
	assert_int_equal(fired, 13);
	assert_int_equal(dst[13], 17);
	for (int i = 0; i < N; i++)
		chan_release(c[i]);
}

/* ---- Waking a blocked select. ------------------------------------------- */

struct job {
	chan_t *c;
	chan_t *ready;
	ctx_cancel_t *cancel;
	int val;
};

static void send_after_ready(void *p)
{
	struct job *j = p;
	int t;
	chan_recv(j->ready, &t, NULL);
	chan_send(j->c, &j->val);
}

static void close_after_ready(void *p)
{
	struct job *j = p;
	int t;
	chan_recv(j->ready, &t, NULL);
	chan_close(j->c);
}

static void cancel_after_ready(void *p)
{
	struct job *j = p;
	int t;
	chan_recv(j->ready, &t, NULL);
	ctx_cancel(j->cancel);
}

static void test_blocked_select_woken(void **state)
{
	(void)state;
	chan_t *ready = chan_make(sizeof(int), 1);
	for (int kind = 0; kind < 3; kind++) {
		chan_t *a = chan_make(sizeof(int), 0), *b = chan_make(sizeof(int), 0);
		ctx_cancel_t *cancel, *mine;
		ctx_t *ctx = ctx_with_cancel(ctx_background(), &cancel);
		mine = ctx_cancel_dup(cancel);
		struct job j = {.c = b, .ready = ready, .cancel = cancel, .val = 77};
		chan_go_t *g;
		void (*fn)(void *) = kind == 0 ? send_after_ready
		                   : kind == 1 ? close_after_ready : cancel_after_ready;
		assert_int_equal(chan_go_start(&g, fn, &j), 0);
		int x = -1, y = -1, t = 1;
		chan_case_t cs[] = {CHAN_CASE_RECV(a, &x), CHAN_CASE_RECV(b, &y),
		                    CHAN_CASE_DONE(ctx)};
		chan_send(ready, &t);
		size_t fired;
		assert_int_equal(UT_BOUNDED(UT_BOUND_MS, "a ready case wakes chan_select",
		                            chan_select(cs, 3, CTX_FOREVER, &fired)), 0);
		if (kind == 0) {
			assert_int_equal(fired, 1);
			assert_true(cs[1].ok);
			assert_int_equal(y, 77);
		} else if (kind == 1) {
			assert_int_equal(fired, 1);
			assert_false(cs[1].ok);
			assert_int_equal(y, 0);
		} else {
			assert_int_equal(fired, 2);
			assert_int_equal(ctx_err(ctx), ECANCELED);
			assert_int_equal(x, -1);
			assert_int_equal(y, -1);
		}
		assert_int_equal(UT_BOUNDED(UT_BOUND_MS, "the goroutine returns",
		                            chan_go_join(g)), 0);
		if (kind != 2)
			ctx_cancel(cancel);
		ctx_cancel(mine);
		ctx_release(ctx);
		/* No stale waiter left behind on a. */
		assert_int_equal(chan_try_send(a, &t), EAGAIN);
		chan_release(a);
		chan_release(b);
	}
	chan_release(ready);
}

static void test_ctx_deadline_case(void **state)
{
	(void)state;
	chan_t *a = chan_make(sizeof(int), 0);
	ctx_cancel_t *cancel;
	ctx_t *ctx = ctx_with_timeout(ctx_background(), 2 * CTX_MILLISECOND, &cancel);
	chan_case_t cs[] = {CHAN_CASE_RECV(a, NULL), CHAN_CASE_DONE(ctx)};
	size_t fired;
	assert_int_equal(UT_BOUNDED(UT_BOUND_MS, "a ready case wakes chan_select",
	                            chan_select(cs, 2, CTX_FOREVER, &fired)), 0);
	assert_int_equal(fired, 1);
	assert_int_equal(ctx_err(ctx), ETIMEDOUT);
	/* Already done: fires at once, even with timeout 0 (default). */
	assert_int_equal(chan_select(cs, 2, 0, &fired), 0);
	assert_int_equal(fired, 1);
	ctx_cancel(cancel);
	ctx_release(ctx);
	chan_release(a);
}

/* ---- Selects against selects. ------------------------------------------ */

#define PAIRS 20000

struct dual {
	chan_t *c;
	int id;
	int sent, received;
	int64_t sum;
};

/* Each side offers both to send and to receive on one unbuffered channel;
 * a select can only be matched by the other thread's select. */
static void dual_loop(void *p)
{
	struct dual *d = p;
	for (int i = 0; i < PAIRS; i++) {
		int out = d->id, in = -1;
		chan_case_t cs[] = {CHAN_CASE_SEND(d->c, &out), CHAN_CASE_RECV(d->c, &in)};
		size_t fired;
		if (chan_select(cs, 2, CTX_FOREVER, &fired) != 0)
			return;
		if (fired == 0) {
			d->sent++;
		} else {
			d->received++;
			d->sum += in;
		}
	}
}

static void test_select_vs_select(void **state)
{
	(void)state;
	chan_t *c = chan_make(sizeof(int), 0);
	struct dual a = {.c = c, .id = 1}, b = {.c = c, .id = 2};
	chan_go_t *ga, *gb;
	assert_int_equal(chan_go_start(&ga, dual_loop, &a), 0);
	assert_int_equal(chan_go_start(&gb, dual_loop, &b), 0);
	assert_int_equal(UT_BOUNDED(UT_BOUND_MS, "test_select_vs_select: the goroutine returns",
	                            chan_go_join(ga)), 0);
	assert_int_equal(UT_BOUNDED(UT_BOUND_MS, "test_select_vs_select: the goroutine returns",
	                            chan_go_join(gb)), 0);
	/* Every exchange pairs a send of one with a receive of the other. */
	assert_int_equal(a.sent + a.received, PAIRS);
	assert_int_equal(a.sent, b.received);
	assert_int_equal(b.sent, a.received);
	assert_int_equal(a.sum, 2 * (int64_t)a.received);
	assert_int_equal(b.sum, 1 * (int64_t)b.received);
	chan_release(c);
}

#define WORKERS 4
#define PER 10000

struct fan {
	chan_t *in[4];
	ctx_t *stop;
	int64_t sum;
	int n;
};

static void fan_in(void *p)
{
	struct fan *f = p;
	for (;;) {
		int v[4];
		chan_case_t cs[] = {CHAN_CASE_RECV(f->in[0], &v[0]), CHAN_CASE_RECV(f->in[1], &v[1]),
		                    CHAN_CASE_RECV(f->in[2], &v[2]), CHAN_CASE_RECV(f->in[3], &v[3]),
		                    CHAN_CASE_DONE(f->stop)};
		size_t fired;
		if (chan_select(cs, 5, CTX_FOREVER, &fired) != 0 || fired == 4)
			return;
		f->sum += v[fired];
		f->n++;
	}
}

struct prod {
	chan_t *out;
	int from;
};

static void produce(void *p)
{
	struct prod *pr = p;
	for (int i = pr->from; i < pr->from + PER; i++)
		chan_send(pr->out, &i);
}

static void test_fan_in_many_threads(void **state)
{
	(void)state;
	/* WORKERS producers on 4 channels (mixed buffering), WORKERS
	 * consumers selecting over all 4 plus a stop context. */
	chan_t *ch[4];
	for (int i = 0; i < 4; i++)
		ch[i] = chan_make(sizeof(int), (size_t)(i % 2) * 8);
	ctx_cancel_t *cancel;
	ctx_t *stop = ctx_with_cancel(ctx_background(), &cancel);
	struct fan f[WORKERS];
	struct prod p[WORKERS];
	chan_go_t *gc[WORKERS], *gp[WORKERS];
	for (int i = 0; i < WORKERS; i++) {
		f[i] = (struct fan){.in = {ch[0], ch[1], ch[2], ch[3]}, .stop = stop};
		assert_int_equal(chan_go_start(&gc[i], fan_in, &f[i]), 0);
	}
	for (int i = 0; i < WORKERS; i++) {
		p[i] = (struct prod){.out = ch[i % 4], .from = i * PER};
		assert_int_equal(chan_go_start(&gp[i], produce, &p[i]), 0);
	}
	for (int i = 0; i < WORKERS; i++)
		assert_int_equal(UT_BOUNDED(UT_BOUND_MS, "the goroutine returns",
		                            chan_go_join(gp[i])), 0);
	/* Every send has returned, so every value is in a consumer or in a
	 * buffer; drain the buffers ourselves after stopping the consumers. */
	ctx_cancel(cancel);
	int64_t sum = 0;
	int n = 0;
	for (int i = 0; i < WORKERS; i++) {
		assert_int_equal(UT_BOUNDED(UT_BOUND_MS, "the goroutine returns",
		                            chan_go_join(gc[i])), 0);
		sum += f[i].sum;
		n += f[i].n;
	}
	for (int i = 0; i < 4; i++) {
		int v;
		bool ok;
		while (chan_try_recv(ch[i], &v, &ok) == 0) {
			sum += v;
			n++;
		}
		chan_release(ch[i]);
	}
	int64_t total = (int64_t)WORKERS * PER;
	assert_int_equal(n, total);
	assert_int_equal(sum, total * (total - 1) / 2);
	ctx_release(stop);
}

/* ---- Races between a peer and a timeout or a context. ------------------ */

#define RACE_ITEMS 3000

struct race_sender {
	chan_t *c;
	int err;
};

static volatile unsigned race_sink;

static void send_race_items(void *p)
{
	struct race_sender *r = p;
	unsigned x = 12345;
	for (int i = 0; i < RACE_ITEMS; i++) {
		/* Some work of varying length, so the receiver is sometimes
		 * early and waits (and times out), sometimes late. */
		for (unsigned k = (x >> 8) % 65536; k > 0; k--)
			x = x * 1103515245u + 12345u;
		race_sink = x;
		r->err = chan_send(r->c, &i);
		if (r->err)
			return;
	}
}

static void test_timeout_races_sender(void **state)
{
	(void)state;
	/* The receiver gives up after 1-21 us again and again while the sender
	 * keeps offering: whichever claims the receiver first wins, and each
	 * value must arrive exactly once and in order, none lost in a
	 * receiver that timed out. */
	chan_t *c = chan_make(sizeof(int), 0);
	struct race_sender rs = {.c = c};
	chan_go_t *g;
	assert_int_equal(chan_go_start(&g, send_race_items, &rs), 0);
	int next = 0, timeouts = 0;
	while (next < RACE_ITEMS) {
		int v = -1;
		chan_case_t cs[] = {CHAN_CASE_RECV(c, &v)};
		size_t fired;
		int err = chan_select(cs, 1, (1 + next % 21) * CTX_MICROSECOND, &fired);
		if (err == ETIMEDOUT || err == EAGAIN) {
			assert_int_equal(v, -1);
			timeouts++;
			continue;
		}
		assert_int_equal(err, 0);
		assert_true(cs[0].ok);
		assert_int_equal(v, next);
		next++;
	}
	assert_int_equal(UT_BOUNDED(UT_BOUND_MS, "the goroutine returns", chan_go_join(g)), 0);
	assert_int_equal(rs.err, 0);
	print_message("timeouts: %d\n", timeouts);
	chan_release(c);
}

static void test_ctx_races_sender(void **state)
{
	(void)state;
	/* As above, with a fresh short-deadline context per attempt: the
	 * context's after-func and the sender race to claim the receiver. */
	chan_t *c = chan_make(sizeof(int), 0);
	struct race_sender rs = {.c = c};
	chan_go_t *g;
	assert_int_equal(chan_go_start(&g, send_race_items, &rs), 0);
	int next = 0, expired = 0;
	while (next < RACE_ITEMS) {
		ctx_cancel_t *cancel;
		ctx_t *ctx = ctx_with_timeout(ctx_background(), (1 + next % 13) * CTX_MICROSECOND, &cancel);
		assert_non_null(ctx);
		int v = -1;
		bool ok = false;
		int err = chan_recv_ctx(ctx, c, &v, &ok);
		ctx_cancel(cancel);
		ctx_release(ctx);
		if (err == ETIMEDOUT) {
			assert_int_equal(v, -1);
			expired++;
			continue;
		}
		assert_int_equal(err, 0);
		assert_true(ok);
		assert_int_equal(v, next);
		next++;
	}
	assert_int_equal(UT_BOUNDED(UT_BOUND_MS, "test_ctx_races_sender: the goroutine returns",
	                            chan_go_join(g)), 0);
	assert_int_equal(rs.err, 0);
	print_message("expired: %d\n", expired);
	chan_release(c);
}

static void test_close_wakes_select_sender(void **state)
{
	(void)state;
	chan_t *a = chan_make(sizeof(int), 0), *ready = chan_make(sizeof(int), 1);
	struct job j = {.c = a, .ready = ready};
	chan_go_t *g;
	assert_int_equal(chan_go_start(&g, close_after_ready, &j), 0);
	int v = 3, t = 1;
	chan_case_t cs[] = {CHAN_CASE_RECV(NULL, NULL), CHAN_CASE_SEND(a, &v)};
	chan_send(ready, &t);
	size_t fired;
	assert_int_equal(UT_BOUNDED(UT_BOUND_MS, "a ready case wakes chan_select",
	                            chan_select(cs, 2, CTX_FOREVER, &fired)), EPIPE);
	assert_int_equal(fired, 1);
	assert_int_equal(UT_BOUNDED(UT_BOUND_MS, "the goroutine returns", chan_go_join(g)), 0);
	chan_release(a);
	chan_release(ready);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_default_nothing_ready),
		cmocka_unit_test(test_ready_case_fires),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_nil_cases_never_fire),
		cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_send_on_closed_in_select),
		cmocka_unit_test(test_fairness),
		cmocka_unit_test(test_many_cases_heap),
		cmocka_unit_test(test_blocked_select_woken),
		cmocka_unit_test(test_ctx_deadline_case),
		cmocka_unit_test(test_select_vs_select),
		cmocka_unit_test(test_fan_in_many_threads),
		cmocka_unit_test(test_timeout_races_sender),
		cmocka_unit_test(test_ctx_races_sender),
		cmocka_unit_test(test_close_wakes_select_sender),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
