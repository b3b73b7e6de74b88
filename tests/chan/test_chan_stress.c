/* test_chan_stress.c: many senders, receivers and selectors on one channel,
 * and a closer, with a conservation check (for TSan, and as an oracle for
 * any change to the channel code).
 *
 * Each round makes one channel (capacity 0, 1 or 5, by round) and starts:
 *   senders    chan_send unique values until one reports EPIPE
 *   receivers  chan_recv until ok == false; then a try_recv must say
 *              ok == false too (nothing comes after close and drain)
 *   selectors  chan_select over {send the next value, receive, a context
 *              case}, some with a timeout, until a receive says closed
 * The main thread closes the channel once a third of the values have been
 * received (a latch, bounded), cancels the selectors' context, joins all.
 * Then: every value whose send returned 0 was received exactly once, every
 * value whose send returned EPIPE never, nothing else was received, and the
 * channel is empty.
 */
#include "util.h"

#include "goctx/chan.h"
#include "chan/testing.h"

enum { SENDERS = 3, RECEIVERS = 2, SELECTORS = 2, PER = 2000 };
#define NVAL ((SENDERS + SELECTORS) * PER)
#define BOUND_MS 30000

struct round {
	chan_t *c;
	ctx_t *ctx;
	struct ut_latch received;
	atomic_int recv_count[NVAL];
	atomic_int sent_state[NVAL]; /* 0 not tried, 1 sent, 2 EPIPE */
	atomic_int bad;
};

struct worker {
	struct round *r;
	int id;
};

static void got(struct round *r, uint64_t v)
{
	if (v >= NVAL) {
		atomic_fetch_add(&r->bad, 1);
		return;
	}
	atomic_fetch_add(&r->recv_count[v], 1);
	ut_latch_add(&r->received, 1);
}

static void *sender(void *p)
{
	struct worker *w = p;
	struct round *r = w->r;
	for (int i = 0; i < PER; i++) {
		uint64_t v = (uint64_t)w->id * PER + (uint64_t)i;
		int e = chan_send(r->c, &v);
		if (e == 0) {
			atomic_store(&r->sent_state[v], 1);
		} else {
			atomic_store(&r->sent_state[v], e == EPIPE ? 2 : 3);
			break;
		}
	}
	return NULL;
}

static void *receiver(void *p)
{
	struct worker *w = p;
	struct round *r = w->r;
	for (;;) {
		uint64_t v = ~(uint64_t)0;
		bool ok;
		if (chan_recv(r->c, &v, &ok) != 0) {
			atomic_fetch_add(&r->bad, 1);
			return NULL;
		}
		if (!ok) {
			if (v != 0)
				atomic_fetch_add(&r->bad, 1); /* zeroed on closed */
			break;
		}
		got(r, v);
	}
	bool ok = true;
	uint64_t v;
	if (chan_try_recv(r->c, &v, &ok) != 0 || ok)
		atomic_fetch_add(&r->bad, 1);
	return NULL;
}

static void *selector(void *p)
{
	struct worker *w = p;
	struct round *r = w->r;
	int i = 0;
	bool sending = true;
	for (int iter = 0;; iter++) {
		uint64_t out = (uint64_t)(SENDERS + w->id) * PER + (uint64_t)i;
		uint64_t in = ~(uint64_t)0;
		chan_case_t cs[3] = {
			CHAN_CASE_SEND(sending && i < PER ? r->c : NULL, &out),
			CHAN_CASE_RECV(r->c, &in),
			CHAN_CASE_DONE(r->ctx),
		};
		size_t fired;
		ctx_duration_t timeout = (iter % 3 == 0) ? 0 : (iter % 3 == 1) ? CTX_MILLISECOND : CTX_FOREVER;
		int e = chan_select(cs, 3, timeout, &fired);
		if (e == EAGAIN || e == ETIMEDOUT) {
			if (fired != CHAN_NONE)
				atomic_fetch_add(&r->bad, 1);
			continue;
		}
		if (fired == 0) {
			atomic_store(&r->sent_state[out], e == 0 ? 1 : e == EPIPE ? 2 : 3);
			if (e == 0)
				i++;
			else
				sending = false;
		} else if (fired == 1) {
			if (e != 0) {
				atomic_fetch_add(&r->bad, 1);
				return NULL;
			}
			if (!cs[1].ok)
				return NULL; /* closed and drained */
			got(r, in);
		} else if (fired == 2) {
			/* The context is cancelled after the close: keep going until
			 * the receive case reports the channel closed. */
			if (e != 0)
				atomic_fetch_add(&r->bad, 1);
		} else {
			atomic_fetch_add(&r->bad, 1);
			return NULL;
		}
	}
}

static void run_round(size_t cap)
{
	struct round *r = calloc(1, sizeof(*r));
	assert_non_null(r);
	r->c = chan_make(sizeof(uint64_t), cap);
	assert_non_null(r->c);
	ctx_cancel_t *cancel;
	r->ctx = ctx_with_cancel(ctx_background(), &cancel);
	ut_latch_init(&r->received);
	struct worker ws[SENDERS + RECEIVERS + SELECTORS];
	pthread_t t[SENDERS + RECEIVERS + SELECTORS];
	int k = 0;
	for (int i = 0; i < SENDERS; i++, k++) {
		ws[k] = (struct worker){r, i};
		assert_int_equal(pthread_create(&t[k], NULL, sender, &ws[k]), 0);
	}
	for (int i = 0; i < RECEIVERS; i++, k++) {
		ws[k] = (struct worker){r, i};
		assert_int_equal(pthread_create(&t[k], NULL, receiver, &ws[k]), 0);
	}
	for (int i = 0; i < SELECTORS; i++, k++) {
		ws[k] = (struct worker){r, i};
		assert_int_equal(pthread_create(&t[k], NULL, selector, &ws[k]), 0);
	}
	long target = NVAL / 3;
	assert_true(ut_latch_wait(&r->received, target, BOUND_MS / 1000) >= target);
	assert_int_equal(chan_close(r->c), 0);
	ctx_cancel(cancel);
	for (int i = 0; i < k; i++)
		if (!ut_join_ms(t[i], BOUND_MS, NULL))
			fail_msg("thread %d of the round (cap %zu) did not finish", i, cap);
	assert_int_equal(atomic_load(&r->bad), 0);
	long sent = 0, refused = 0;
	for (int v = 0; v < NVAL; v++) {
		int s = atomic_load(&r->sent_state[v]);
		int n = atomic_load(&r->recv_count[v]);
		if (s == 1) {
			sent++;
			if (n != 1)
				fail_msg("value %d sent, received %d times (cap %zu)", v, n, cap);
		} else {
			if (s == 2)
				refused++;
			if (s == 3)
				fail_msg("value %d: send failed other than EPIPE", v);
			if (n != 0)
				fail_msg("value %d never sent, received %d times (cap %zu)", v, n, cap);
		}
	}
	assert_true(sent >= target);
	assert_int_equal(chan_len(r->c), 0);
	bool ok = true;
	assert_int_equal(chan_try_recv(r->c, NULL, &ok), 0);
	assert_false(ok);
	(void)refused;
	ctx_release(r->ctx);
	chan_release(r->c);
	ut_latch_destroy(&r->received);
	free(r);
}

static void test_conservation(void **state)
{
	(void)state;
	const int rounds = UT_ITERS(30);
	static const size_t caps[] = {0, 1, 5};
	for (int i = 0; i < rounds; i++)
		run_round(caps[i % 3]);
}

/* The same with the spins off (chan__set_spin): every wait that cannot
 * complete at once queues and sleeps, so the lock-free ring's kicks (a
 * publisher that must see a waiter queuing at the same moment) and the
 * wakes are what carries every hand-off. */
static void test_conservation_no_spin(void **state)
{
	(void)state;
	chan__set_spin(false);
	const int rounds = UT_ITERS(12);
	static const size_t caps[] = {0, 1, 5};
	for (int i = 0; i < rounds; i++)
		run_round(caps[i % 3]);
	chan__set_spin(true);
}

/* ---- One producer, one consumer: no lost wake-up, FIFO. ----------------- */

/* A buffered channel between one sender and one receiver must deliver
 * every value, in order, whatever mix of calls the two use: the plain
 * calls take the lock-free ring (and kick a queued peer without a fence,
 * by the claim's seq_cst CAS), the context forms and selects block through
 * the queue with a context case hooked. A lost kick leaves one side
 * asleep with the other done: the bounded join fails. */
enum { SPSC_N = 20000 };

struct spsc {
	chan_t *c;
	ctx_t *ctx;
	atomic_int bad;
};

static void *spsc_producer(void *p)
{
	struct spsc *s = p;
	for (uint64_t i = 0; i < SPSC_N; i++) {
		int e;
		switch (i % 3) {
		case 0:
			e = chan_send(s->c, &i);
			break;
		case 1:
			e = chan_send_ctx(s->ctx, s->c, &i);
			break;
		default: {
			chan_case_t cs[2] = {CHAN_CASE_SEND(s->c, &i), CHAN_CASE_DONE(s->ctx)};
			size_t fired;
			e = chan_select(cs, 2, CTX_FOREVER, &fired);
			if (e == 0 && fired != 0)
				e = ECANCELED;
			break;
		}
		}
		if (e)
			atomic_fetch_add(&s->bad, 1);
	}
	return NULL;
}

static void *spsc_consumer(void *p)
{
	struct spsc *s = p;
	for (uint64_t i = 0; i < SPSC_N; i++) {
		uint64_t v = UINT64_MAX;
		bool ok = false;
		int e;
		switch (i % 4) {
		case 0:
			e = chan_recv(s->c, &v, &ok);
			break;
		case 1:
			e = chan_recv_ctx(s->ctx, s->c, &v, &ok);
			break;
		case 2: {
			chan_case_t cs[2] = {CHAN_CASE_DONE(s->ctx), CHAN_CASE_RECV(s->c, &v)};
			size_t fired;
			e = chan_select(cs, 2, CTX_FOREVER, &fired);
			ok = cs[1].ok;
			if (e == 0 && fired != 1)
				e = ECANCELED;
			break;
		}
		default:
			/* Spin on the non-blocking form now and then: a consumer that
			 * never blocks must not miss values either. */
			while ((e = chan_try_recv(s->c, &v, &ok)) == EAGAIN)
				sched_yield();
			break;
		}
		if (e || !ok || v != i) /* lost, duplicated or out of order */
			atomic_fetch_add(&s->bad, 1);
	}
	return NULL;
}

static void spsc_round(size_t cap)
{
	struct spsc s = {.c = chan_make(sizeof(uint64_t), cap)};
	assert_non_null(s.c);
	ctx_cancel_t *cancel;
	s.ctx = ctx_with_cancel(ctx_background(), &cancel);
	assert_non_null(s.ctx);
	pthread_t p, q;
	assert_int_equal(pthread_create(&p, NULL, spsc_producer, &s), 0);
	assert_int_equal(pthread_create(&q, NULL, spsc_consumer, &s), 0);
	assert_true(ut_join_ms(p, BOUND_MS, NULL));
	assert_true(ut_join_ms(q, BOUND_MS, NULL));
	assert_int_equal(atomic_load(&s.bad), 0);
	assert_int_equal(chan_len(s.c), 0);
	ctx_cancel(cancel);
	ctx_release(s.ctx);
	chan_release(s.c);
}

static void test_spsc_fifo(void **state)
{
	(void)state;
	for (int spin = 1; spin >= 0; spin--) {
		chan__set_spin(spin);
		spsc_round(1);
		spsc_round(2);
		spsc_round(128);
	}
	chan__set_spin(true);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_conservation),
		cmocka_unit_test(test_conservation_no_spin),
		cmocka_unit_test(test_spsc_fifo),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
