/* test_go.c: chan_go (detached) and chan_go_start / chan_go_join. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "goctx/chan.h"
#include "util.h"

struct square {
	chan_t *out;
	int n;
};

static void send_square(void *p)
{
	struct square *s = p;
	/* *s lives in the starter's frame, which may be gone once the send
	 * is received: copy what is needed first. */
	chan_t *out = s->out;
	int v = s->n * s->n;
	chan_send(out, &v);
	chan_release(out); /* the reference the starter took for us */
}

static void test_go_detached(void **state)
{
	(void)state;
	/* 32 detached threads report back on one channel: the channel is the
	 * only way to know they ran, as with goroutines. */
	enum { N = 32 };
	chan_t *out = chan_make(sizeof(int), 0);
	struct square sq[N];
	for (int i = 0; i < N; i++) {
		sq[i] = (struct square){.out = chan_retain(out), .n = i};
		assert_int_equal(chan_go(send_square, &sq[i]), 0);
	}
	int64_t sum = 0;
	for (int i = 0; i < N; i++) {
		int v;
		bool ok;
		assert_int_equal(chan_recv(out, &v, &ok), 0);
		assert_true(ok);
		sum += v;
	}
	assert_int_equal(sum, (int64_t)(N - 1) * N * (2 * N - 1) / 6);
	chan_release(out);
}

static void set_flag(void *p)
{
	*(int *)p = 1234;
}

static void test_go_join(void **state)
{
	(void)state;
	for (int i = 0; i < 16; i++) {
		int flag = 0;
		chan_go_t *g = NULL;
		assert_int_equal(chan_go_start(&g, set_flag, &flag), 0);
		assert_non_null(g);
		assert_int_equal(UT_BOUNDED(UT_BOUND_MS, "test_go_join: the goroutine returns",
		                            chan_go_join(g)), 0);
		/* The join orders the thread's writes before this read. */
		assert_int_equal(flag, 1234);
	}
}

static void test_go_invalid(void **state)
{
	(void)state;
	chan_go_t *g = (chan_go_t *)&g;
	assert_int_equal(chan_go(NULL, NULL), EINVAL);
	assert_int_equal(chan_go_start(&g, NULL, NULL), EINVAL);
	assert_int_equal(chan_go_start(NULL, set_flag, NULL), EINVAL);
	assert_int_equal(chan_go_join(NULL), EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_go_detached),
		cmocka_unit_test(test_go_join),
		cmocka_unit_test(test_go_invalid),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
