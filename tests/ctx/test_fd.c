/* test_fd.c: ctx_done_fd, the descriptor that becomes readable once a
 * context is done (Go's Done channel for poll/epoll loops). */
#include "util.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <unistd.h>

#include "ctx/testing.h"

#define MS CTX_MILLISECOND

static const int key1 = 1;
static int val1;

/* poll(fd, POLLIN, timeout_ms) > 0 with POLLIN set. */
static bool readable(int fd, int timeout_ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	int r;
	while ((r = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR)
		;
	return r == 1 && (p.revents & POLLIN);
}

static bool fd_is_open(int fd) { return fcntl(fd, F_GETFD) != -1; }

static int open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	int n = 0;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* ---- lazy and stable ---- */

static void test_fd_stable(void **state)
{
	(void)state;
	ctx_cancel_t *cancel;
	ctx_t *c = ctx_with_cancel(ctx_background(), &cancel);
	int fd = ctx_done_fd(c);
	assert_true(fd >= 0);
	for (int i = 0; i < 10; i++)
		assert_int_equal(ctx_done_fd(c), fd);
	ctx_cancel(cancel);
	/* The same after done. */
	assert_int_equal(ctx_done_fd(c), fd);
	ctx_release(c);
}

static void test_fd_lazy(void **state)
{
	(void)state;
	/* Contexts never asked for a descriptor use none: making, cancelling
	 * and timing out many of them opens nothing. */
	enum { N = 64 };
	int before = open_fds();
	assert_true(before > 0);
	ctx_cancel_t *cancel[N];
	ctx_t *c[N];
	for (int i = 0; i < N; i++) {
		/* Siblings and chains of cancel and deadline contexts. */
		ctx_t *p = i % 4 == 3 ? c[i - 1] : ctx_background();
		if (i % 3 == 2)
			c[i] = ctx_with_timeout(p, i % 2 ? CTX_MILLISECOND : 3600 * CTX_SECOND, &cancel[i]);
		else
			c[i] = ctx_with_cancel(p, &cancel[i]);
		assert_non_null(c[i]);
		ctx_t *v = ctx_with_value(c[i], &key1, &val1, NULL);
		ctx_release(v);
	}
	assert_int_equal(open_fds(), before);
	/* Waiting and reading do not make one either. */
	assert_int_equal(ctx_wait(c[0], 10 * MS), 0);
	assert_int_equal(ctx_err(c[0]), 0);
	assert_int_equal(ctx_wait(c[5], 10 * CTX_SECOND), ETIMEDOUT); /* a 1 ms timer */
	assert_int_equal(open_fds(), before);
	ctx_cancel(cancel[0]);
	assert_int_equal(open_fds(), before);
	for (int i = N; i-- > 0;) {
		if (i != 0) /* used above */
			ctx_cancel(cancel[i]);
		ctx_release(c[i]);
	}
	assert_int_equal(open_fds(), before);
}

/* ---- readable exactly when done ---- */

static void test_fd_not_readable_while_live(void **state)
{
	(void)state;
	ctx_cancel_t *cancel, *tc;
	ctx_t *c = ctx_with_cancel(ctx_background(), &cancel);
	ctx_t *t = ctx_with_timeout(c, 3600 * CTX_SECOND, &tc);
	int fd = ctx_done_fd(c), tfd = ctx_done_fd(t);
	assert_true(fd >= 0);
	assert_true(tfd >= 0);
	assert_false(readable(fd, 0));
	assert_false(readable(tfd, 0));
	assert_false(readable(fd, 20));
	/* A child's cancel does not touch the parent's descriptor. */
	ctx_cancel(tc);
	assert_true(readable(tfd, 0));
	assert_false(readable(fd, 0));
	ctx_cancel(cancel);
	assert_true(readable(fd, 0));
	ctx_release(t);
	ctx_release(c);
}

static void test_fd_readable_after_cancel(void **state)
{
	(void)state;
	ctx_cancel_t *cancel;
	ctx_t *p = ctx_with_cancel(ctx_background(), &cancel);
	ctx_t *c = ctx_with_cancel(p, NULL);
	int pfd = ctx_done_fd(p), cfd = ctx_done_fd(c);
	assert_false(readable(pfd, 0));
	assert_false(readable(cfd, 0));
	ctx_cancel(cancel);
	/* Readable as soon as ctx_cancel returns, for descendants too. */
	assert_true(readable(pfd, 0));
	assert_true(readable(cfd, 0));
	ctx_release(c);
	ctx_release(p);
}

static void test_fd_readable_after_timer(void **state)
{
	(void)state;
	ctx_cancel_t *cancel;
	ctx_t *c = ctx_with_timeout(ctx_background(), 30 * MS, &cancel);
	ctx_t *child = ctx_with_cancel(c, NULL);
	int fd = ctx_done_fd(c), cfd = ctx_done_fd(child);
	assert_true(fd >= 0);
	assert_true(readable(fd, 10000));
	assert_int_equal(ctx_err(c), ETIMEDOUT);
	/* The timer thread may still be cancelling the child: no ctx_cancel
	 * of ours returned, so wait for it (bounded). */
	assert_true(readable(cfd, 10000));
	assert_int_equal(ctx_err(child), ETIMEDOUT);
	ctx_cancel(cancel);
	ctx_release(child);
	ctx_release(c);
}

static void test_fd_made_when_already_done(void **state)
{
	(void)state;
	ctx_cancel_t *cancel;
	ctx_t *c = ctx_with_cancel(ctx_background(), &cancel);
	ctx_cancel(cancel);
	int fd = ctx_done_fd(c);
	assert_true(fd >= 0);
	assert_true(readable(fd, 0));

	/* Born done (child of a done parent). */
	ctx_t *born = ctx_with_cancel(c, NULL);
	int bfd = ctx_done_fd(born);
	assert_true(bfd >= 0);
	assert_true(readable(bfd, 0));

	/* Born timed out (past deadline). */
	ctx_t *past = ctx_with_timeout(ctx_background(), -CTX_SECOND, NULL);
	int pfd = ctx_done_fd(past);
	assert_true(pfd >= 0);
	assert_true(readable(pfd, 0));

	ctx_release(past);
	ctx_release(born);
	ctx_release(c);
}

static void test_fd_stays_readable_after_read(void **state)
{
	(void)state;
	ctx_cancel_t *cancel;
	ctx_t *c = ctx_with_cancel(ctx_background(), &cancel);
	int fd = ctx_done_fd(c);
	ctx_cancel(cancel);
	assert_true(readable(fd, 0));
	/* A stray read (or several) by the user: never unreadable again. */
	for (int i = 0; i < 5; i++) {
		char b[64];
		ssize_t r = read(fd, b, sizeof b);
		(void)r;
		assert_true(readable(fd, 0));
	}
	assert_int_equal(ctx_wait(c, 0), ECANCELED);

	/* Same for a descriptor made after the context was done. */
	ctx_t *d = ctx_with_timeout(ctx_background(), 0, NULL);
	int dfd = ctx_done_fd(d);
	for (int i = 0; i < 5; i++) {
		char b[64];
		ssize_t r = read(dfd, b, sizeof b);
		(void)r;
		assert_true(readable(dfd, 0));
	}
	ctx_release(d);
	ctx_release(c);
}

/* ---- never-done contexts: -1 ENOENT ---- */

static void test_fd_enoent_for_never_done(void **state)
{
	(void)state;
	ctx_cancel_t *cancel;
	ctx_t *p = ctx_with_cancel(ctx_background(), &cancel);
	ctx_t *w = ctx_without_cancel(p);
	ctx_t *vb = ctx_with_value(ctx_background(), &key1, &val1, NULL);
	ctx_t *vt = ctx_with_value(ctx_todo(), &key1, &val1, NULL);
	ctx_t *vw = ctx_with_value(w, &key1, &val1, NULL);
	ctx_t *wb = ctx_without_cancel(ctx_background());
	ctx_t *never[] = {ctx_background(), ctx_todo(), w, vb, vt, vw, wb};
	int before = open_fds();
	for (size_t i = 0; i < sizeof never / sizeof never[0]; i++) {
		errno = 0;
		assert_int_equal(ctx_done_fd(never[i]), -1);
		assert_int_equal(errno, ENOENT);
	}
	/* Still so once the WithoutCancel's parent is done. */
	ctx_cancel(cancel);
	errno = 0;
	assert_int_equal(ctx_done_fd(w), -1);
	assert_int_equal(errno, ENOENT);
	errno = 0;
	assert_int_equal(ctx_done_fd(vw), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(open_fds(), before);

	/* In a poll set, -1 never fires (Go's nil Done channel). */
	struct pollfd pf[2] = {{.fd = ctx_done_fd(w), .events = POLLIN},
	                       {.fd = ctx_done_fd(ctx_background()), .events = POLLIN}};
	assert_int_equal(poll(pf, 2, 20), 0);

	ctx_release(wb);
	ctx_release(vw);
	ctx_release(vt);
	ctx_release(vb);
	ctx_release(w);
	ctx_release(p);
}

/* ---- value children share the parent's "done" ---- */

static void test_fd_value_child(void **state)
{
	(void)state;
	ctx_cancel_t *cancel;
	ctx_t *p = ctx_with_cancel(ctx_background(), &cancel);
	ctx_t *v = ctx_with_value(p, &key1, &val1, NULL);
	ctx_t *vv = ctx_with_value(v, &key1, NULL, NULL);
	int vfd = ctx_done_fd(vv);
	int pfd = ctx_done_fd(p);
	assert_true(vfd >= 0);
	assert_true(pfd >= 0);
	assert_int_equal(ctx_done_fd(vv), vfd);
	assert_false(readable(vfd, 0));
	assert_false(readable(pfd, 0));
	ctx_cancel(cancel);
	assert_true(readable(vfd, 0));
	assert_true(readable(pfd, 0));
	assert_true(readable(ctx_done_fd(v), 0));
	ctx_release(vv);
	ctx_release(v);
	ctx_release(p);
}

/* ---- closed when the context is freed ---- */

static void test_fd_closed_on_free(void **state)
{
	(void)state;
	/* Cancelled, then released. */
	ctx_cancel_t *cancel;
	ctx_t *c = ctx_with_cancel(ctx_background(), &cancel);
	int fd = ctx_done_fd(c);
	assert_true(fd_is_open(fd));
	ctx_cancel(cancel);
	assert_true(fd_is_open(fd)); /* still referenced */
	ctx_release(c);
	errno = 0;
	assert_false(fd_is_open(fd));
	assert_int_equal(errno, EBADF);

	/* Never cancelled, no handle: closed by the last release. */
	c = ctx_with_cancel(ctx_background(), NULL);
	fd = ctx_done_fd(c);
	assert_true(fd_is_open(fd));
	ctx_release(c);
	errno = 0;
	assert_false(fd_is_open(fd));
	assert_int_equal(errno, EBADF);

	/* A deadline context, through its value child: closed when the child
	 * (the last holder) goes. */
	ctx_cancel_t *tc;
	ctx_t *t = ctx_with_timeout(ctx_background(), 3600 * CTX_SECOND, &tc);
	ctx_t *v = ctx_with_value(t, &key1, &val1, NULL);
	fd = ctx_done_fd(v);
	ctx_release(t);
	ctx_cancel(tc);
	assert_true(fd_is_open(fd));
	assert_true(readable(fd, 0));
	ctx_release(v);
	errno = 0;
	assert_false(fd_is_open(fd));
	assert_int_equal(errno, EBADF);
}

/* ---- Go issue 75533: once ctx_err is non-zero, the descriptor is readable ---- */

struct canceller {
	sem_t go;
	_Atomic(ctx_cancel_t *) cancel;
	atomic_bool quit;
};

static void *canceller_main(void *arg)
{
	struct canceller *k = arg;
	for (;;) {
		while (sem_wait(&k->go) != 0)
			;
		if (atomic_load(&k->quit))
			return NULL;
		ctx_cancel(atomic_exchange(&k->cancel, NULL));
	}
}

#define RACE_ITERS 2000

static void test_fd_err_done_race_cancel(void **state)
{
	(void)state;
	struct canceller k;
	sem_init(&k.go, 0, 0);
	atomic_init(&k.cancel, NULL);
	atomic_init(&k.quit, false);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, canceller_main, &k), 0);
	int bad_fd = 0, bad_wait = 0;
	for (int i = 0; i < RACE_ITERS; i++) {
		ctx_cancel_t *cancel;
		ctx_t *c = ctx_with_cancel(ctx_background(), &cancel);
		/* Odd iterations watch a value child: the same rule holds. */
		ctx_t *v = (i & 1) ? ctx_with_value(c, &key1, &val1, NULL) : ctx_retain(c);
		int fd = ctx_done_fd(v);
		assert_true(fd >= 0);
		atomic_store(&k.cancel, cancel);
		sem_post(&k.go);
		int err;
		while ((err = ctx_err(v)) == 0)
			;
		if (!readable(fd, 0))
			bad_fd++;
		if (ctx_wait(v, 0) != err)
			bad_wait++;
		assert_int_equal(err, ECANCELED);
		ctx_release(v);
		ctx_release(c);
	}
	atomic_store(&k.quit, true);
	sem_post(&k.go);
	assert_true(ut_join_ms(t, 10000, NULL));
	sem_destroy(&k.go);
	if (bad_fd || bad_wait)
		fail_msg("ctx_err was non-zero but the fd was not readable %d times, "
		         "ctx_wait(ctx, 0) disagreed %d times",
		         bad_fd, bad_wait);
}

static void test_fd_err_done_race_timer(void **state)
{
	(void)state;
	int bad_fd = 0, bad_wait = 0;
	for (int i = 0; i < RACE_ITERS / 4; i++) {
		ctx_cancel_t *cancel;
		/* 0..200 µs: the fd is usually made before the timer fires. */
		ctx_t *c = ctx_with_timeout(ctx_background(), (i % 5) * 50 * CTX_MICROSECOND, &cancel);
		int fd = ctx_done_fd(c);
		assert_true(fd >= 0);
		int err;
		while ((err = ctx_err(c)) == 0)
			;
		if (!readable(fd, 0))
			bad_fd++;
		if (ctx_wait(c, 0) != err)
			bad_wait++;
		assert_int_equal(err, ETIMEDOUT);
		ctx_cancel(cancel);
		ctx_release(c);
	}
	if (bad_fd || bad_wait)
		fail_msg("ctx_err was non-zero but the fd was not readable %d times, "
		         "ctx_wait(ctx, 0) disagreed %d times",
		         bad_fd, bad_wait);
}

/* The other direction: once the descriptor is readable, ctx_err is
 * non-zero ("readable exactly when done"). A watcher spins on poll while
 * this thread cancels. */
struct watcher {
	sem_t go, done;
	ctx_t *ctx; /* handed over through the semaphores */
	int fd;
	atomic_bool quit;
	atomic_int bad_err, bad_wait;
};

static void *watcher_main(void *arg)
{
	struct watcher *w = arg;
	for (;;) {
		while (sem_wait(&w->go) != 0)
			;
		if (atomic_load(&w->quit))
			return NULL;
		while (!readable(w->fd, 0))
			;
		if (ctx_err(w->ctx) == 0)
			atomic_fetch_add(&w->bad_err, 1);
		if (ctx_wait(w->ctx, 0) == 0)
			atomic_fetch_add(&w->bad_wait, 1);
		sem_post(&w->done);
	}
}

static void test_fd_readable_implies_err(void **state)
{
	(void)state;
	struct watcher w;
	sem_init(&w.go, 0, 0);
	sem_init(&w.done, 0, 0);
	atomic_init(&w.quit, false);
	atomic_init(&w.bad_err, 0);
	atomic_init(&w.bad_wait, 0);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, watcher_main, &w), 0);
	for (int i = 0; i < RACE_ITERS; i++) {
		ctx_cancel_t *cancel;
		ctx_t *c = ctx_with_cancel(ctx_background(), &cancel);
		ctx_t *v = (i & 1) ? ctx_with_value(c, &key1, &val1, NULL) : ctx_retain(c);
		w.ctx = v;
		w.fd = ctx_done_fd(v);
		assert_true(w.fd >= 0);
		sem_post(&w.go);
		for (volatile int k = 0; k < (i % 7) * 100; k++)
			;
		ctx_cancel(cancel);
		if (!ut_sem_wait_ms(&w.done, 10000))
			fail_msg("iteration %d: the descriptor never became readable", i);
		ctx_release(v);
		ctx_release(c);
	}
	atomic_store(&w.quit, true);
	sem_post(&w.go);
	assert_true(ut_join_ms(t, 10000, NULL));
	sem_destroy(&w.go);
	sem_destroy(&w.done);
	if (atomic_load(&w.bad_err) || atomic_load(&w.bad_wait))
		fail_msg("the descriptor was readable but ctx_err was 0 %d times, "
		         "ctx_wait(ctx, 0) returned 0 %d times",
		         atomic_load(&w.bad_err), atomic_load(&w.bad_wait));
}

/* Many threads ask for the descriptor of one context at once: one fd. */
struct fd_asker {
	ctx_t *ctx;
	pthread_barrier_t *go;
	int fd;
};

static void *fd_asker_main(void *arg)
{
	struct fd_asker *a = arg;
	pthread_barrier_wait(a->go);
	a->fd = ctx_done_fd(a->ctx);
	return NULL;
}

static void test_fd_concurrent_first_use(void **state)
{
	(void)state;
	enum { N = 8 };
	for (int round = 0; round < 50; round++) {
		ctx_cancel_t *cancel;
		ctx_t *c = ctx_with_cancel(ctx_background(), &cancel);
		pthread_barrier_t go;
		pthread_barrier_init(&go, NULL, N + 1);
		struct fd_asker a[N];
		pthread_t th[N];
		for (int i = 0; i < N; i++) {
			a[i] = (struct fd_asker){.ctx = c, .go = &go, .fd = -2};
			assert_int_equal(pthread_create(&th[i], NULL, fd_asker_main, &a[i]), 0);
		}
		pthread_barrier_wait(&go);
		if (round & 1)
			ctx_cancel(cancel);
		for (int i = 0; i < N; i++)
			assert_true(ut_join_ms(th[i], 10000, NULL));
		for (int i = 0; i < N; i++) {
			assert_true(a[i].fd >= 0);
			assert_int_equal(a[i].fd, a[0].fd);
		}
		if (!(round & 1)) {
			assert_false(readable(a[0].fd, 0));
			ctx_cancel(cancel);
		}
		assert_true(readable(a[0].fd, 0));
		pthread_barrier_destroy(&go);
		ctx_release(c);
	}
}

/* ---- failure: -1 + errno, and a later call can still succeed ---- */

static void test_fd_emfile(void **state)
{
	(void)state;
	ctx_cancel_t *cancel;
	ctx_t *c = ctx_with_cancel(ctx_background(), &cancel);
	struct rlimit old;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	/* No descriptor can be opened: the lowest free one is above the
	 * limit. */
	int probe = dup(0);
	assert_true(probe >= 0);
	close(probe);
	struct rlimit low = {.rlim_cur = (rlim_t)probe, .rlim_max = old.rlim_max};
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	errno = 0;
	int fd = ctx_done_fd(c);
	int e = errno;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
	assert_int_equal(fd, -1);
	assert_int_equal(e, EMFILE);
	/* The context still works, and a later call makes the descriptor. */
	assert_int_equal(ctx_err(c), 0);
	fd = ctx_done_fd(c);
	assert_true(fd >= 0);
	assert_false(readable(fd, 0));
	ctx_cancel(cancel);
	assert_true(readable(fd, 0));
	assert_int_equal(ctx_wait(c, 0), ECANCELED);
	ctx_release(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fd_stable),
		cmocka_unit_test(test_fd_lazy),
		cmocka_unit_test(test_fd_not_readable_while_live),
		cmocka_unit_test(test_fd_readable_after_cancel),
		cmocka_unit_test(test_fd_readable_after_timer),
		cmocka_unit_test(test_fd_made_when_already_done),
		cmocka_unit_test(test_fd_stays_readable_after_read),
		cmocka_unit_test(test_fd_enoent_for_never_done),
		cmocka_unit_test(test_fd_value_child),
		cmocka_unit_test(test_fd_closed_on_free),
		cmocka_unit_test(test_fd_err_done_race_cancel),
		cmocka_unit_test(test_fd_err_done_race_timer),
		cmocka_unit_test(test_fd_readable_implies_err),
		cmocka_unit_test(test_fd_concurrent_first_use),
		cmocka_unit_test(test_fd_emfile),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
