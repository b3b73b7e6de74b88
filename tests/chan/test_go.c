/* test_go.c: chan_go (detached) and chan_go_start / chan_go_join, on the
 * cached threads of src/chan/go.c: reuse, what a reused thread's TLS holds,
 * idle exit, no bound on blocked functions, self-join, fork, and a stress of
 * starts racing idle exits. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "goctx/chan.h"
#include "chan/go.h"
#include "util.h"

#if UT_TSAN
const char *__tsan_default_options(void);
const char *__tsan_default_options(void) { return "die_after_fork=0"; }
#endif

#define BOUND_MS 20000 /* only reached on a bug */

/* chan_recv that fails the test instead of hanging. */
static void recv_bounded(chan_t *c, void *elem, bool *ok)
{
	chan_case_t cs[1] = {CHAN_CASE_RECV(c, elem)};
	size_t fired;
	assert_int_equal(chan_select(cs, 1, (ctx_duration_t)BOUND_MS * CTX_MILLISECOND, &fired), 0);
	if (ok)
		*ok = cs[0].ok;
}

/* Wait (bounded) until cond() holds. */
static void wait_until(bool (*cond)(void), const char *what)
{
	for (int i = 0; i < BOUND_MS && !cond(); i++)
		ut_sleep_ms(1);
	if (!cond())
		fail_msg("timed out waiting until %s", what);
}

static bool no_threads(void) { return chan__go_threads() == 0; }
static bool one_parked(void) { return chan__go_parked() == 1; }

/* Let every cached thread exit, then restore the default idle time. */
static void drain_cache(void)
{
	chan__go_set_idle(CTX_MILLISECOND);
	wait_until(no_threads, "every cached thread exited");
	chan__go_set_idle(0);
}

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

/* ---- reuse and TLS ---- */

static _Thread_local int tls_mark;

struct probe {
	chan_t *out;
	pthread_t self;
	int tls_seen;
};

static void probe_fn(void *p)
{
	struct probe *pr = p;
	pr->self = pthread_self();
	pr->tls_seen = tls_mark;
	tls_mark = 42;
	int one = 1;
	chan_send(pr->out, &one);
}

static void test_go_reuse(void **state)
{
	(void)state;
	drain_cache();
	chan_t *out = chan_make(sizeof(int), 1);
	struct probe a = {.out = out}, b = {.out = out};
	int v;
	assert_int_equal(chan_go(probe_fn, &a), 0);
	recv_bounded(out, &v, NULL);
	assert_int_equal(a.tls_seen, 0); /* a new thread: fresh TLS */
	wait_until(one_parked, "the thread parked");
	assert_int_equal(chan__go_threads(), 1);
	/* The next call runs on the parked thread: no new thread, and the TLS
	 * the first function left is still there (chan.h says so). */
	assert_int_equal(chan_go(probe_fn, &b), 0);
	recv_bounded(out, &v, NULL);
	assert_true(pthread_equal(a.self, b.self));
	assert_int_equal(b.tls_seen, 42);
	assert_int_equal(chan__go_threads(), 1);
	/* The same for the joinable form. */
	wait_until(one_parked, "the thread parked again");
	struct probe c = {.out = out};
	chan_go_t *g;
	assert_int_equal(chan_go_start(&g, probe_fn, &c), 0);
	assert_int_equal(chan_go_join(g), 0);
	recv_bounded(out, &v, NULL);
	assert_true(pthread_equal(a.self, c.self));
	chan_release(out);
}

/* ---- idle exit ---- */

struct gate {
	chan_t *started; /* one value per function that runs */
	chan_t *gate;    /* closed to let them all return */
};

static void wait_gate(void *p)
{
	struct gate *g = p;
	int one = 1;
	chan_send(g->started, &one);
	chan_recv(g->gate, NULL, NULL);
}

static void test_go_idle_exit(void **state)
{
	(void)state;
	enum { N = 8 };
	struct gate g = {chan_make(sizeof(int), N), chan_make(0, 0)};
	for (int i = 0; i < N; i++)
		assert_int_equal(chan_go(wait_gate, &g), 0);
	for (int i = 0; i < N; i++)
		recv_bounded(g.started, NULL, NULL);
	assert_true(chan__go_threads() >= N);
	chan__go_set_idle(CTX_MILLISECOND);
	assert_int_equal(chan_close(g.gate), 0);
	/* Every thread finishes, parks, and leaves after the idle time. */
	wait_until(no_threads, "the idle threads exited");
	chan__go_set_idle(0);
	chan_release(g.started);
	chan_release(g.gate);
}

/* ---- no bound: many functions blocked at once ---- */

static void test_go_many_blocked(void **state)
{
	(void)state;
	/* Each function blocks until every one of them has started: with any
	 * bound on the threads below N this would hang (and fail bounded). */
	const int n = UT_TSAN ? 100 : 300;
	struct gate g = {chan_make(sizeof(int), (size_t)n), chan_make(0, 0)};
	for (int i = 0; i < n; i++)
		assert_int_equal(chan_go(wait_gate, &g), 0);
	for (int i = 0; i < n; i++)
		recv_bounded(g.started, NULL, NULL);
	assert_true(chan__go_threads() >= (size_t)n);
	assert_int_equal(chan_close(g.gate), 0);
	drain_cache(); /* every function has returned: the channels are unused */
	chan_release(g.started);
	chan_release(g.gate);
}

/* ---- join from inside ---- */

static void join_self(void *p)
{
	chan_t *c = p;
	chan_go_t *self;
	recv_bounded(c, &self, NULL);
	union { int r; void *p; } u = {0};
	u.r = chan_go_join(self);
	chan_send(c, &u); /* the channel's elements are pointer-sized */
}

static void test_go_join_self(void **state)
{
	(void)state;
	chan_t *c = chan_make(sizeof(union { int r; void *p; }), 0);
	chan_go_t *g;
	assert_int_equal(chan_go_start(&g, join_self, c), 0);
	assert_int_equal(chan_send(c, &g), 0);
	union { int r; void *p; } u = {0};
	recv_bounded(c, &u, NULL);
	assert_int_equal(u.r, EDEADLK);
	assert_int_equal(chan_go_join(g), 0); /* the handle stayed valid */
	chan_release(c);
}

/* ---- fork ---- */

/* p: a channel reference of its own, released when done. */
static void send_one(void *p)
{
	int one = 1;
	chan_send(p, &one);
	chan_release(p);
}

static void test_go_fork(void **state)
{
	(void)state;
	/* Fork with one other thread, parked: first let the earlier tests'
	 * threads exit, so that none is exiting at the fork (one that was
	 * inside ASan's allocator then left it locked in the child, and the
	 * child's thread start hung there; the rule holds only for a parent
	 * whose other threads are not inside a call). */
	drain_cache();
	chan_t *out = chan_make(sizeof(int), 1);
	int v;
	assert_int_equal(chan_go(send_one, chan_retain(out)), 0);
	recv_bounded(out, &v, NULL);
	wait_until(one_parked, "the thread parked");
	assert_int_equal(chan__go_threads(), 1);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* The parent's parked thread is not here: chan_go starts one. */
		if (chan__go_parked() != 0 || chan__go_threads() != 0)
			_exit(2);
		for (int i = 0; i < 3; i++) {
			if (chan_go(send_one, chan_retain(out)) != 0)
				_exit(3);
			chan_case_t cs[1] = {CHAN_CASE_RECV(out, &v)};
			size_t fired;
			if (chan_select(cs, 1, (ctx_duration_t)BOUND_MS * CTX_MILLISECOND, &fired) != 0)
				_exit(4);
		}
		_exit(0);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	/* The parent's cache is untouched. */
	assert_int_equal(chan_go(send_one, chan_retain(out)), 0);
	recv_bounded(out, &v, NULL);
	chan_release(out);
}

/* ---- stress: starts racing idle exits, from several threads ---- */

struct stress {
	chan_t *out;
	atomic_long ran;
};

static void count_fn(void *p)
{
	struct stress *s = p;
	atomic_fetch_add(&s->ran, 1);
	int one = 1;
	chan_send(s->out, &one);
}

static void *stress_starter(void *p)
{
	struct stress *s = p;
	const int n = UT_ITERS(2000);
	for (int i = 0; i < n; i++) {
		if (i % 3 == 0) {
			chan_go_t *g;
			if (chan_go_start(&g, count_fn, s) != 0 || chan_go_join(g) != 0)
				return (void *)1;
		} else if (chan_go(count_fn, s) != 0) {
			return (void *)1;
		}
	}
	return NULL;
}

static void test_go_stress(void **state)
{
	(void)state;
	enum { T = 4 };
	const long n = UT_ITERS(2000);
	/* An idle time shorter than a hand-off: threads leave while starters
	 * pop them. */
	chan__go_set_idle(1000);
	struct stress s = {.out = chan_make(sizeof(int), 16)};
	pthread_t t[T];
	for (int i = 0; i < T; i++)
		assert_int_equal(pthread_create(&t[i], NULL, stress_starter, &s), 0);
	for (long i = 0; i < T * n; i++)
		recv_bounded(s.out, NULL, NULL);
	for (int i = 0; i < T; i++) {
		void *r;
		assert_true(ut_join_ms(t[i], BOUND_MS, &r));
		assert_null(r);
	}
	assert_int_equal(atomic_load(&s.ran), T * n);
	chan__go_set_idle(0);
	drain_cache();
	chan_release(s.out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_go_reuse),
		cmocka_unit_test(test_go_idle_exit),
		cmocka_unit_test(test_go_many_blocked),
		cmocka_unit_test(test_go_join_self),
		cmocka_unit_test(test_go_fork),
		cmocka_unit_test(test_go_stress),
		cmocka_unit_test(test_go_detached),
		cmocka_unit_test(test_go_join),
		cmocka_unit_test(test_go_invalid),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
