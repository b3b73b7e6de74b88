/* test_inline.c: the inline ctx_err/ctx_done of goctx.h (the fast path the
 * header expands them to in C11) says what the exported functions say, on
 * every kind of context, and keeps "err != 0 => the descriptor is readable"
 * while a canceller is between publishing err and writing the descriptor.
 * (The layout it reads is checked at the library's compile time, in
 * src/ctx/read.c, and against abi/libgoctx.inline by ship_abi.) */
#include "util.h"

#include <poll.h>

#include "ctx/testing.h"

#ifndef ctx_err
#error "goctx.h no longer gives C11 the inline ctx_err"
#endif
#ifndef ctx_done
#error "goctx.h no longer gives C11 the inline ctx_done"
#endif

static const int key;

/* The inline and the function agree on c, and say err. */
#define assert_reads(c, err)                                                                \
	do {                                                                                \
		assert_int_equal(ctx_err(c), (err));                                        \
		assert_int_equal((ctx_err)(c), (err));                                      \
		assert_int_equal(ctx_done(c), (err) != 0);                                  \
		assert_int_equal((ctx_done)(c), (err) != 0);                                \
	} while (0)

static void test_inline_agrees_on_every_kind(void **state)
{
	(void)state;
	assert_reads(ctx_background(), 0);
	assert_reads(ctx_todo(), 0);

	ctx_cancel_t *cancel, *tcancel, *mcancel;
	ctx_t *c = ctx_with_cancel(ctx_background(), &cancel);
	ctx_t *v = ctx_with_value(c, &key, NULL, NULL);
	ctx_t *w = ctx_without_cancel(c);
	ctx_t *other = ctx_with_cancel(ctx_background(), NULL);
	ctx_t *m = ctx_with_merge(ctx_background(), &c, 1, &mcancel);
	ctx_t *t = ctx_with_timeout(ctx_background(), -1, &tcancel);
	assert_non_null(c);
	assert_non_null(v);
	assert_non_null(w);
	assert_non_null(other);
	assert_non_null(m);
	assert_non_null(t);
	ctx_t *live[] = {c, v, w, other, m};
	for (size_t i = 0; i < sizeof live / sizeof live[0]; i++)
		assert_reads(live[i], 0);
	assert_reads(t, ETIMEDOUT);

	ctx_cancel_cause(cancel, EPIPE);
	assert_reads(c, ECANCELED);
	assert_reads(v, ECANCELED);
	assert_reads(m, ECANCELED);
	assert_reads(w, 0); /* WithoutCancel never is done */
	assert_reads(other, 0);

	ctx_cancel(mcancel);
	ctx_cancel(tcancel);
	ctx_t *all[] = {c, v, w, other, m, t};
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
		ctx_release(all[i]);
}

/* While a canceller publishes (err set, descriptor not yet written), the
 * inline must not report err: it sees the slow bit and calls the function,
 * which waits for the descriptor. The publish hook holds a canceller in that
 * window while a reader calls the inline ctx_done: the reader must still be
 * waiting when the window closes, and then see the descriptor readable. */
static struct {
	sem_t in_window, close_window, reader_done;
	ctx_t *ctx;
	ctx_cancel_t *cancel;
	int fd;
	bool done, readable;
} pub;

static void hold_window(void)
{
	sem_post(&pub.in_window);
	if (!ut_sem_wait_ms(&pub.close_window, 10000))
		abort(); /* the test below died: do not hang */
}

static void *cancel_main(void *arg)
{
	(void)arg;
	ctx_cancel(pub.cancel);
	return NULL;
}

static void *reader_main(void *arg)
{
	(void)arg;
	pub.done = ctx_done(pub.ctx);
	struct pollfd p = {.fd = pub.fd, .events = POLLIN};
	pub.readable = poll(&p, 1, 0) == 1;
	sem_post(&pub.reader_done);
	return NULL;
}

static void test_inline_waits_while_publishing(void **state)
{
	(void)state;
	sem_init(&pub.in_window, 0, 0);
	sem_init(&pub.close_window, 0, 0);
	sem_init(&pub.reader_done, 0, 0);
	pub.ctx = ctx_with_cancel(ctx_background(), &pub.cancel);
	assert_non_null(pub.ctx);
	pub.fd = ctx_done_fd(pub.ctx);
	assert_true(pub.fd >= 0);
	ctx__set_publish_hook(hold_window);
	pthread_t canceller, reader;
	assert_int_equal(pthread_create(&canceller, NULL, cancel_main, NULL), 0);
	assert_true(ut_sem_wait_ms(&pub.in_window, 10000));
	assert_int_equal(pthread_create(&reader, NULL, reader_main, NULL), 0);
	/* The reader must not finish while the window is open: give it time to
	 * (if it returns here, the inline reported err before the descriptor). */
	bool early = ut_sem_wait_ms(&pub.reader_done, 100);
	sem_post(&pub.close_window);
	assert_true(ut_join_ms(canceller, 10000, NULL));
	if (!early)
		assert_true(ut_sem_wait_ms(&pub.reader_done, 10000));
	assert_true(ut_join_ms(reader, 10000, NULL));
	ctx__set_publish_hook(NULL);
	if (early)
		fail_msg("the inline ctx_done returned %d while err was being published "
		         "(descriptor readable: %d)",
		         pub.done, pub.readable);
	assert_true(pub.done);
	assert_true(pub.readable);
	ctx_release(pub.ctx);
	sem_destroy(&pub.in_window);
	sem_destroy(&pub.close_window);
	sem_destroy(&pub.reader_done);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_inline_agrees_on_every_kind),
	    cmocka_unit_test(test_inline_waits_while_publishing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
