/* test_chan.c: channels: rendezvous, buffering, FIFO, close, contexts and
 * many threads at once (black-box, through include/goctx/chan.h). */
#include <errno.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "goctx.h"
#include "chan/go.h"
#include "goctx/chan.h"
#include "chan/testing.h"
#include "util.h"

/* ---- An allocator that counts, and fails on demand. ----------------------
 * Installed by main before anything allocates. */

static atomic_long n_allocs;
static atomic_bool fail_allocs;

static void *counting_alloc(size_t size)
{
	if (atomic_load(&fail_allocs))
		return NULL;
	atomic_fetch_add(&n_allocs, 1);
	return malloc(size);
}

static void counting_free(void *p)
{
	free(p);
}

/* ---- Helpers. ---------------------------------------------------------- */

struct sender {
	chan_t *c;
	int from, count;
	int err; /* last error seen */
};

static void send_range(void *p)
{
	struct sender *s = p;
	for (int i = s->from; i < s->from + s->count; i++) {
		s->err = chan_send(s->c, &i);
		if (s->err)
			return;
	}
}

struct receiver {
	chan_t *c;
	chan_t *ready; /* receives one token before blocking, if not NULL */
	int64_t sum;
	int n;
	bool last_ok;
	int last_val;
	int err;
};

static void recv_until_closed(void *p)
{
	struct receiver *r = p;
	for (;;) {
		int v = -1;
		bool ok;
		r->err = chan_recv(r->c, &v, &ok);
		if (r->err || !ok) {
			r->last_ok = ok;
			r->last_val = v;
			return;
		}
		r->sum += v;
		r->n++;
	}
}

static void recv_one_after_ready(void *p)
{
	struct receiver *r = p;
	int token = 1;
	if (chan_send(r->ready, &token) != 0)
		return;
	r->last_val = -1;
	r->err = chan_recv(r->c, &r->last_val, &r->last_ok);
}

/* ---- Basics. ----------------------------------------------------------- */

static void test_make_len_cap(void **state)
{
	(void)state;
	chan_t *c = chan_make(sizeof(int), 3);
	assert_non_null(c);
	assert_int_equal(chan_cap(c), 3);
	assert_int_equal(chan_len(c), 0);
	assert_int_equal(chan_elem_size(c), sizeof(int));
	int v = 7;
	assert_int_equal(chan_send(c, &v), 0);
	assert_int_equal(chan_len(c), 1);
	chan_release(c);

	assert_int_equal(chan_len(NULL), 0);
	assert_int_equal(chan_cap(NULL), 0);
	errno = 0;
	assert_null(chan_make(SIZE_MAX / 2, 4));
	assert_int_equal(errno, EINVAL);
}

static void test_null_args(void **state)
{
	(void)state;
	int v = 0;
	bool ok = true;
	assert_int_equal(chan_send(NULL, &v), EINVAL);
	assert_int_equal(chan_recv(NULL, &v, &ok), EINVAL);
	assert_int_equal(chan_try_send(NULL, &v), EINVAL);
	assert_int_equal(chan_try_recv(NULL, &v, &ok), EINVAL);
	assert_int_equal(chan_close(NULL), EINVAL);
	chan_t *c = chan_make(sizeof(int), 1);
	assert_int_equal(chan_send(c, NULL), EINVAL); /* elem_size != 0 */
	assert_int_equal(chan_send_ctx(NULL, c, &v), EINVAL);
	chan_release(c);
	chan_retain(NULL);
	chan_release(NULL);
}

static void test_refcount(void **state)
{
	(void)state;
	chan_t *c = chan_make(1, 1);
	assert_ptr_equal(chan_retain(c), c);
	chan_release(c);
	char x = 'x';
	assert_int_equal(chan_send(c, &x), 0); /* still alive: one ref left */
	chan_release(c);
}

static void test_unbuffered_rendezvous(void **state)
{
	(void)state;
	chan_t *c = chan_make(sizeof(int), 0);
	int v = 1;
	bool ok;
	/* No receiver waiting and no buffer: a send cannot happen. */
	assert_int_equal(chan_try_send(c, &v), EAGAIN);
	assert_int_equal(chan_try_recv(c, &v, &ok), EAGAIN);
	assert_int_equal(chan_len(c), 0);

	struct sender s = {.c = c, .from = 100, .count = 50};
	chan_go_t *g;
	assert_int_equal(chan_go_start(&g, send_range, &s), 0);
	for (int i = 100; i < 150; i++) {
		assert_int_equal(chan_recv(c, &v, &ok), 0);
		assert_true(ok);
		assert_int_equal(v, i);
		assert_int_equal(chan_len(c), 0);
	}
	assert_int_equal(UT_BOUNDED(UT_BOUND_MS, "the goroutine returns", chan_go_join(g)), 0);
	assert_int_equal(s.err, 0);
	chan_release(c);
}

static void test_buffered_capacity(void **state)
{
	(void)state;
	chan_t *c = chan_make(sizeof(int), 3);
	for (int i = 0; i < 3; i++)
		assert_int_equal(chan_try_send(c, &i), 0);
	int v = 3;
	assert_int_equal(chan_try_send(c, &v), EAGAIN);
	assert_int_equal(chan_len(c), 3);
	bool ok;
	assert_int_equal(chan_try_recv(c, &v, &ok), 0);
	assert_true(ok);
	assert_int_equal(v, 0);
	v = 3;
	assert_int_equal(chan_try_send(c, &v), 0);
	for (int i = 1; i <= 3; i++) {
		assert_int_equal(chan_recv(c, &v, &ok), 0);
		assert_int_equal(v, i);
	}
	assert_int_equal(chan_try_recv(c, &v, &ok), EAGAIN);
	chan_release(c);
}

static void test_fifo_with_blocked_sender(void **state)
{
	(void)state;
	/* Capacity 4, 2000 values: the sender keeps blocking on a full buffer
	 * and its values enter at the tail as the receiver frees slots. */
	chan_t *c = chan_make(sizeof(int), 4);
	struct sender s = {.c = c, .from = 0, .count = 2000};
	chan_go_t *g;
	assert_int_equal(chan_go_start(&g, send_range, &s), 0);
	for (int i = 0; i < 2000; i++) {
		int v;
		bool ok;
		assert_int_equal(chan_recv(c, &v, &ok), 0);
		assert_true(ok);
		assert_int_equal(v, i);
	}
	assert_int_equal(UT_BOUNDED(UT_BOUND_MS, "the goroutine returns", chan_go_join(g)), 0);
	chan_release(c);
}

static void test_zero_size_elements(void **state)
{
	(void)state;
	chan_t *c = chan_make(0, 2);
	assert_int_equal(chan_send(c, NULL), 0);
	assert_int_equal(chan_send(c, NULL), 0);
	assert_int_equal(chan_try_send(c, NULL), EAGAIN);
	bool ok = false;
	assert_int_equal(chan_recv(c, NULL, &ok), 0);
	assert_true(ok);
	assert_int_equal(chan_close(c), 0);
	assert_int_equal(chan_recv(c, NULL, &ok), 0);
	assert_true(ok);
	assert_int_equal(chan_recv(c, NULL, &ok), 0);
	assert_false(ok);
	chan_release(c);
}

/* ---- Close. ------------------------------------------------------------ */

static void test_receive_drains_after_close(void **state)
{
	(void)state;
	chan_t *c = chan_make(sizeof(int), 4);
	for (int i = 1; i <= 3; i++)
		assert_int_equal(chan_send(c, &i), 0);
	assert_int_equal(chan_close(c), 0);
	int v;
	bool ok;
	for (int i = 1; i <= 3; i++) {
		assert_int_equal(chan_recv(c, &v, &ok), 0);
		assert_true(ok);
		assert_int_equal(v, i);
	}
	for (int k = 0; k < 2; k++) {
		v = 0x5a5a5a5a;
		ok = true;
		assert_int_equal(chan_recv(c, &v, &ok), 0);
		assert_false(ok);
		assert_int_equal(v, 0); /* zeroed, as Go's zero value */
		assert_int_equal(chan_try_recv(c, &v, &ok), 0);
		assert_false(ok);
	}
	chan_release(c);
}

static void test_send_on_closed_fails(void **state)
{
	(void)state;
	chan_t *c = chan_make(sizeof(int), 1);
	assert_int_equal(chan_close(c), 0);
	int v = 1;
	assert_int_equal(chan_send(c, &v), EPIPE);
	assert_int_equal(chan_try_send(c, &v), EPIPE);
	assert_int_equal(chan_len(c), 0);
	assert_int_equal(chan_close(c), EPIPE); /* close twice */
	ctx_cancel_t *cancel;
	ctx_t *ctx = ctx_with_cancel(ctx_background(), &cancel);
	assert_int_equal(chan_send_ctx(ctx, c, &v), EPIPE);
	ctx_cancel(cancel);
	ctx_release(ctx);
	chan_release(c);
}

/* Wait (bounded) until n threads sleep blocked on c; false if they never do. */
static bool wait_sleepers(chan_t *c, size_t n)
{
	ctx_time_t until = ut_real_now() + (ctx_time_t)UT_BOUND_MS * CTX_MILLISECOND;
	while (chan__sleepers(c) < n) {
		if (ut_real_now() > until)
			return false;
		sched_yield();
	}
	return true;
}

static void test_close_wakes_blocked_sender(void **state)
{
	(void)state;
	/* The sender blocks (nobody ever receives): on an unbuffered channel at
	 * once, on a buffered one once the buffer is full. Close only once it
	 * sleeps in the channel's queue, so close must wake it. */
	for (int cap = 0; cap <= 2; cap++) {
		chan_t *c = chan_make(sizeof(int), (size_t)cap);
		struct sender s = {.c = c, .from = 5, .count = cap + 1};
		chan_go_t *g;
		assert_int_equal(chan_go_start(&g, send_range, &s), 0);
		if (!wait_sleepers(c, 1))
			fail_msg("cap %d: the sender never blocked in chan_send", cap);
		assert_int_equal(chan_len(c), (size_t)cap);
		assert_int_equal(chan_close(c), 0);
		assert_int_equal(UT_BOUNDED(UT_BOUND_MS, "chan_close wakes a sender blocked in chan_send",
		                            chan_go_join(g)),
		                 0);
		assert_int_equal(s.err, EPIPE);
		/* What was buffered before the close is still received. */
		for (int i = 0; i < cap; i++) {
			int v;
			bool ok;
			assert_int_equal(chan_recv(c, &v, &ok), 0);
			assert_true(ok);
			assert_int_equal(v, 5 + i);
		}
		chan_release(c);
	}
}

#define NRECV 8

static void test_close_wakes_every_receiver(void **state)
{
	(void)state;
	chan_t *c = chan_make(sizeof(int), 0);
	chan_t *ready = chan_make(sizeof(int), NRECV);
	struct receiver r[NRECV];
	chan_go_t *g[NRECV];
	for (int i = 0; i < NRECV; i++) {
		r[i] = (struct receiver){.c = c, .ready = ready};
		assert_int_equal(chan_go_start(&g[i], recv_one_after_ready, &r[i]), 0);
	}
	/* Every receiver sleeps in c's queue; close must wake them all. */
	for (int i = 0; i < NRECV; i++) {
		int t;
		assert_int_equal(chan_recv(ready, &t, NULL), 0);
	}
	if (!wait_sleepers(c, NRECV))
		fail_msg("only %zu of %d receivers blocked in chan_recv", chan__sleepers(c), NRECV);
	assert_int_equal(chan_close(c), 0);
	for (int i = 0; i < NRECV; i++) {
		assert_int_equal(UT_BOUNDED(UT_BOUND_MS, "chan_close wakes every blocked receiver",
		                            chan_go_join(g[i])),
		                 0);
		assert_int_equal(r[i].err, 0);
		assert_false(r[i].last_ok);
		assert_int_equal(r[i].last_val, 0);
	}
	chan_release(ready);
	chan_release(c);
}

/* ---- Contexts. --------------------------------------------------------- */

static void test_ctx_done_on_entry(void **state)
{
	(void)state;
	chan_t *c = chan_make(sizeof(int), 1);
	int v = 9;
	assert_int_equal(chan_send(c, &v), 0);
	ctx_cancel_t *cancel;
	ctx_t *ctx = ctx_with_cancel(ctx_background(), &cancel);
	ctx_cancel(cancel);
	/* Ready channel, done context: the context wins, nothing moves. */
	bool ok = true;
	v = 0;
	assert_int_equal(chan_recv_ctx(ctx, c, &v, &ok), ECANCELED);
	assert_false(ok);
	assert_int_equal(v, 0);
	assert_int_equal(chan_len(c), 1);
	assert_int_equal(chan_send_ctx(ctx, c, &v), ECANCELED);
	ctx_release(ctx);

	/* A live context does not get in the way. */
	ctx = ctx_with_cancel(ctx_background(), &cancel);
	assert_int_equal(chan_recv_ctx(ctx, c, &v, &ok), 0);
	assert_true(ok);
	assert_int_equal(v, 9);
	assert_int_equal(chan_send_ctx(ctx, c, &v), 0);
	ctx_cancel(cancel);
	ctx_release(ctx);
	chan_release(c);
}

struct canceller {
	chan_t *ready;
	ctx_cancel_t *cancel;
};

static void cancel_when_ready(void *p)
{
	struct canceller *k = p;
	int t;
	chan_recv(k->ready, &t, NULL);
	ctx_cancel(k->cancel);
}

static void test_ctx_cancel_wakes_blocked(void **state)
{
	(void)state;
	chan_t *c = chan_make(sizeof(int), 0);
	chan_t *ready = chan_make(sizeof(int), 1);
	for (int round = 0; round < 2; round++) {
		ctx_cancel_t *cancel;
		ctx_t *ctx = ctx_with_cancel(ctx_background(), &cancel);
		struct canceller k = {.ready = ready, .cancel = cancel};
		chan_go_t *g;
		assert_int_equal(chan_go_start(&g, cancel_when_ready, &k), 0);
		int t = 1, v = 4;
		assert_int_equal(chan_send(ready, &t), 0);
		if (round == 0) {
			bool ok = true;
			assert_int_equal(chan_recv_ctx(ctx, c, &v, &ok), ECANCELED);
			assert_false(ok);
			assert_int_equal(v, 4);
		} else {
			assert_int_equal(chan_send_ctx(ctx, c, &v), ECANCELED);
		}
		assert_int_equal(UT_BOUNDED(UT_BOUND_MS, "the goroutine returns",
		                            chan_go_join(g)), 0);
		ctx_release(ctx);
	}
	/* Nothing was left queued on c. */
	int v = 1;
	assert_int_equal(chan_try_send(c, &v), EAGAIN);
	chan_release(ready);
	chan_release(c);
}

static void test_ctx_timeout(void **state)
{
	(void)state;
	chan_t *c = chan_make(sizeof(int), 0);
	ctx_cancel_t *cancel;
	ctx_t *ctx = ctx_with_timeout(ctx_background(), 5 * CTX_MILLISECOND, &cancel);
	int v;
	assert_int_equal(chan_recv_ctx(ctx, c, &v, NULL), ETIMEDOUT);
	ctx_cancel(cancel);
	ctx_release(ctx);
	/* A NULL channel is Go's nil channel: only the context can end it. */
	ctx = ctx_with_timeout(ctx_background(), 1 * CTX_MILLISECOND, &cancel);
	assert_int_equal(chan_recv_ctx(ctx, NULL, &v, NULL), ETIMEDOUT);
	ctx_cancel(cancel);
	ctx_release(ctx);
	chan_release(c);
}

/* ---- Many threads. ----------------------------------------------------- */

#define NPROD 4
#define NCONS 4
#define ITEMS 10000

static void many_producers_consumers(size_t capacity)
{
	chan_t *c = chan_make(sizeof(int), capacity);
	struct sender s[NPROD];
	struct receiver r[NCONS];
	chan_go_t *gp[NPROD], *gc[NCONS];
	for (int i = 0; i < NCONS; i++) {
		r[i] = (struct receiver){.c = c};
		assert_int_equal(chan_go_start(&gc[i], recv_until_closed, &r[i]), 0);
	}
	for (int i = 0; i < NPROD; i++) {
		s[i] = (struct sender){.c = c, .from = i * ITEMS, .count = ITEMS};
		assert_int_equal(chan_go_start(&gp[i], send_range, &s[i]), 0);
	}
	for (int i = 0; i < NPROD; i++) {
		assert_int_equal(UT_BOUNDED(UT_BOUND_MS, "the goroutine returns",
		                            chan_go_join(gp[i])), 0);
		assert_int_equal(s[i].err, 0);
	}
	assert_int_equal(chan_close(c), 0);
	int64_t sum = 0;
	int n = 0;
	for (int i = 0; i < NCONS; i++) {
		assert_int_equal(UT_BOUNDED(UT_BOUND_MS, "the goroutine returns",
		                            chan_go_join(gc[i])), 0);
		assert_int_equal(r[i].err, 0);
		sum += r[i].sum;
		n += r[i].n;
	}
	int64_t total = (int64_t)NPROD * ITEMS;
	assert_int_equal(n, total);
	assert_int_equal(sum, total * (total - 1) / 2);
	chan_release(c);
}

static void test_many_unbuffered(void **state)
{
	(void)state;
	many_producers_consumers(0);
}

static void test_many_buffered(void **state)
{
	(void)state;
	many_producers_consumers(16);
}

/* ---- Memory. ------------------------------------------------------------ */

static void test_allocations(void **state)
{
	(void)state;
	long a0 = atomic_load(&n_allocs);
	chan_t *c = chan_make(sizeof(int), 4);
	assert_int_equal(atomic_load(&n_allocs) - a0, 1); /* one block per channel */
	a0 = atomic_load(&n_allocs);
	int v = 1;
	bool ok;
	for (int i = 0; i < 100; i++) {
		assert_int_equal(chan_send(c, &v), 0);
		assert_int_equal(chan_recv(c, &v, &ok), 0);
		chan_case_t cs[] = {CHAN_CASE_SEND(c, &v), CHAN_CASE_RECV(NULL, NULL)};
		size_t fired;
		assert_int_equal(UT_BOUNDED(UT_BOUND_MS, "a ready case wakes chan_select",
		                            chan_select(cs, 2, CTX_FOREVER, &fired)), 0);
		assert_int_equal(chan_recv(c, &v, &ok), 0);
	}
	assert_int_equal(atomic_load(&n_allocs) - a0, 0); /* operations allocate nothing */
	/* Nor does a select that blocks with a context case (it hooks the
	 * context in its own storage), on a buffered and an unbuffered
	 * channel, whether it times out or the context fires. */
	chan_t *u = chan_make(sizeof(int), 0);
	ctx_cancel_t *cancel;
	ctx_t *ctx = ctx_with_cancel(ctx_background(), &cancel);
	assert_non_null(u);
	assert_non_null(ctx);
	a0 = atomic_load(&n_allocs);
	for (int i = 0; i < 20; i++) {
		chan_case_t cs[] = {CHAN_CASE_RECV(i % 2 ? c : u, &v), CHAN_CASE_DONE(ctx)};
		size_t fired;
		assert_int_equal(chan_select(cs, 2, 10 * CTX_MICROSECOND, &fired), ETIMEDOUT);
		assert_int_equal(fired, CHAN_NONE);
	}
	assert_int_equal(atomic_load(&n_allocs) - a0, 0);
	chan_release(u);
	ctx_cancel(cancel);
	ctx_release(ctx);
	chan_release(c);
}

static void test_out_of_memory(void **state)
{
	(void)state;
	chan_t *c = chan_make(sizeof(int), 0);
	chan_t *ready = chan_make(sizeof(int), 1);
	int val = 42;
	assert_int_equal(chan_send(ready, &val), 0);
	ctx_cancel_t *cancel;
	ctx_t *ctx = ctx_with_cancel(ctx_background(), &cancel);
	ctx_flush_cache(); /* no node from this thread's cache: each one fails */
	atomic_store(&fail_allocs, true);
	errno = 0;
	assert_null(chan_make(sizeof(int), 1));
	assert_int_equal(errno, ENOMEM);
	/* Hooking a context needs no memory (the registration lives in the
	 * select's own storage): a blocking receive with a context case still
	 * blocks, and ends at its timeout, nothing left queued. */
	int v = 1;
	chan_case_t two[2] = {CHAN_CASE_RECV(c, &v), CHAN_CASE_DONE(ctx)};
	size_t fired2;
	assert_int_equal(chan_select(two, 2, CTX_MILLISECOND, &fired2), ETIMEDOUT);
	assert_int_equal(fired2, CHAN_NONE);
	assert_int_equal(chan_try_send(c, &v), EAGAIN); /* no receiver left queued */
	chan_case_t big[9];
	for (int i = 0; i < 9; i++)
		big[i] = CHAN_CASE_RECV(c, NULL);
	size_t fired;
	assert_int_equal(UT_BOUNDED(UT_BOUND_MS, "a ready case wakes chan_select",
	                            chan_select(big, 9, CTX_FOREVER, &fired)), ENOMEM);
	assert_int_equal(chan_select(big, 9, 0, &fired), EAGAIN); /* no need to allocate */
	/* A blocking select over more cases than fit on the stack needs
	 * memory only to block: with a case ready it proceeds. */
	assert_non_null(ready);
	big[7] = CHAN_CASE_RECV(ready, &v);
	v = 0;
	assert_int_equal(UT_BOUNDED(UT_BOUND_MS, "a ready case fires at once",
	                            chan_select(big, 9, CTX_FOREVER, &fired)), 0);
	assert_int_equal(fired, 7);
	assert_int_equal(v, 42);
	big[7] = CHAN_CASE_RECV(c, NULL);
	/* chan_go allocates only to start a thread: with none parked it fails
	 * (after the idle time every cached thread is gone), with one parked
	 * it needs no memory. */
	chan__go_set_idle(CTX_MILLISECOND);
	for (int i = 0; i < 20000 && chan__go_threads() != 0; i++) {
		struct timespec ms = {0, 1000000};
		nanosleep(&ms, NULL);
	}
	assert_int_equal(chan__go_threads(), 0);
	chan__go_set_idle(0);
	assert_int_equal(chan_go(counting_free, NULL), ENOMEM);
	atomic_store(&fail_allocs, false);
	assert_int_equal(chan_go(counting_free, NULL), 0);
	for (int i = 0; i < 20000 && chan__go_parked() != 1; i++) {
		struct timespec ms = {0, 1000000};
		nanosleep(&ms, NULL);
	}
	assert_int_equal(chan__go_parked(), 1);
	atomic_store(&fail_allocs, true);
	assert_int_equal(chan_go(counting_free, NULL), 0);
	atomic_store(&fail_allocs, false);
	assert_int_equal(chan_try_send(c, &v), EAGAIN);
	ctx_cancel(cancel);
	ctx_release(ctx);
	chan_release(ready);
	chan_release(c);
}

int main(void)
{
	if (ctx_set_allocator(counting_alloc, counting_free) != 0)
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_make_len_cap),
		cmocka_unit_test(test_null_args),
		cmocka_unit_test(test_refcount),
		cmocka_unit_test(test_unbuffered_rendezvous),
		cmocka_unit_test(test_buffered_capacity),
		cmocka_unit_test(test_fifo_with_blocked_sender),
		cmocka_unit_test(test_zero_size_elements),
		cmocka_unit_test(test_receive_drains_after_close),
		cmocka_unit_test(test_send_on_closed_fails),
		cmocka_unit_test(test_close_wakes_blocked_sender),
		cmocka_unit_test(test_close_wakes_every_receiver),
		cmocka_unit_test(test_ctx_done_on_entry),
		cmocka_unit_test(test_ctx_cancel_wakes_blocked),
		cmocka_unit_test(test_ctx_timeout),
		cmocka_unit_test(test_many_unbuffered),
		cmocka_unit_test(test_many_buffered),
		cmocka_unit_test(test_allocations),
		cmocka_unit_test(test_out_of_memory),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
