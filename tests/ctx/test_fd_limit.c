/* test_fd_limit.c: ctx_done_fd when the process has no descriptor left.
 *
 * With RLIMIT_NOFILE exhausted, ctx_done_fd must fail cleanly with EMFILE;
 * the context must keep working without a descriptor (ctx_wait, after-funcs,
 * deadlines, cancellation of children); once descriptors are available
 * again, ctx_done_fd must give one, readable exactly when the context is done.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmocka.h>

#include "goctx.h"
#include "util.h"
#include "ctx/testing.h"

#define MAXFDS 4096

static int fillers[MAXFDS];
static int nfillers;
static struct rlimit saved;

/* Lower the soft limit a little above what is open, then use up the rest. */
static void exhaust(void)
{
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
	int highest = 0;
	for (int fd = 0; fd < 1024; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			highest = fd;
	struct rlimit low = saved;
	low.rlim_cur = (rlim_t)highest + 32;
	if (low.rlim_cur > saved.rlim_cur)
		low.rlim_cur = saved.rlim_cur;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	nfillers = 0;
	for (;;) {
		int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			assert_int_equal(errno, EMFILE);
			break;
		}
		assert_true(nfillers < MAXFDS);
		fillers[nfillers++] = fd;
	}
}

static void restore(void)
{
	while (nfillers)
		close(fillers[--nfillers]);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
}

static bool readable(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	int r;
	do
		r = poll(&p, 1, 0);
	while (r < 0 && errno == EINTR);
	return r == 1 && (p.revents & POLLIN);
}

static atomic_int ran;
static void after_fn(void *arg)
{
	(void)arg;
	atomic_fetch_add(&ran, 1);
}

static void *cancel_later(void *arg)
{
	/* Cancels while the main thread is (or is about to be) in ctx_wait. */
	ctx_cancel_cause(arg, 9191);
	return NULL;
}

static void test_emfile(void **state)
{
	(void)state;
	ctx_cancel_t *h, *h2;
	ctx_t *c = ctx_with_cancel(ctx_background(), &h);
	ctx_t *child = ctx_with_cancel(c, &h2);
	ctx_t *v = ctx_with_value(c, &ran, &ran, NULL);
	assert_non_null(c);
	assert_non_null(child);
	assert_non_null(v);

	exhaust();

	errno = 0;
	assert_int_equal(ctx_done_fd(c), -1);
	assert_int_equal(errno, EMFILE);
	errno = 0;
	assert_int_equal(ctx_done_fd(v), -1); /* the value layer asks c's source */
	assert_int_equal(errno, EMFILE);
	errno = 0;
	assert_int_equal(ctx_done_fd(ctx_background()), -1); /* never done: ENOENT still */
	assert_int_equal(errno, ENOENT);

	/* Everything else works with no descriptor to spare. */
	ctx_after_t *stop;
	assert_int_equal(ctx_after_func(c, after_fn, NULL, &stop), 0);
	assert_int_equal(ctx_after_func(child, after_fn, NULL, NULL), 0);
	ctx_cancel_t *th;
	ctx_t *t = ctx_with_timeout_cause(ctx_background(), 5 * CTX_MILLISECOND, 3131, &th);
	assert_non_null(t);
	assert_int_equal(ctx_wait(t, 30 * CTX_SECOND), ETIMEDOUT); /* a real deadline */
	assert_int_equal(ctx_cause(t), 3131);
	errno = 0;
	assert_int_equal(ctx_done_fd(t), -1);
	assert_int_equal(errno, EMFILE);

	pthread_t thr;
	assert_int_equal(pthread_create(&thr, NULL, cancel_later, h), 0);
	assert_int_equal(UT_BOUNDED(UT_BOUND_MS, "test_emfile: done wakes ctx_wait",
	                            ctx_wait(c, CTX_FOREVER)), ECANCELED);
	assert_int_equal(UT_BOUNDED(UT_BOUND_MS, "test_emfile: the thread returns",
	                            pthread_join(thr, NULL)), 0);
	assert_int_equal(ctx_cause(c), 9191);
	assert_int_equal(ctx_err(child), ECANCELED);
	assert_int_equal(ctx_cause(child), 9191);
	assert_int_equal(atomic_load(&ran), 2);
	assert_false(ctx_after_stop(stop));

	/* A failed attempt left nothing half-made: still EMFILE, no stray fd. */
	errno = 0;
	assert_int_equal(ctx_done_fd(c), -1);
	assert_int_equal(errno, EMFILE);

	restore();

	/* Descriptors are back: the done context gets a readable one. */
	int fd = ctx_done_fd(c);
	assert_true(fd >= 0);
	assert_true(readable(fd));
	assert_int_equal(ctx_done_fd(v), fd);
	int tfd = ctx_done_fd(t);
	assert_true(tfd >= 0);
	assert_true(readable(tfd));

	ctx_cancel(h2);
	ctx_cancel(th);
	ctx_release(t);
	ctx_release(v);
	ctx_release(child);
	ctx_release(c);
}

static void test_live_context_after_emfile(void **state)
{
	(void)state;
	ctx_cancel_t *h;
	ctx_t *c = ctx_with_cancel(ctx_background(), &h);
	assert_non_null(c);
	exhaust();
	errno = 0;
	assert_int_equal(ctx_done_fd(c), -1);
	assert_int_equal(errno, EMFILE);
	restore();
	/* Made while live: not readable until cancelled, then readable. */
	int fd = ctx_done_fd(c);
	assert_true(fd >= 0);
	assert_false(readable(fd));
	assert_int_equal(ctx_done_fd(c), fd); /* the same one every time */
	ctx_cancel(h);
	assert_true(readable(fd));
	ctx_release(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_emfile),
		cmocka_unit_test(test_live_context_after_emfile),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
