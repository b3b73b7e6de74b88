/* test_fork.c: fork() with live contexts and pending timers.
 *
 * The header promises that after fork() the child may keep using goctx:
 * pending deadlines keep firing there (the timer thread is restarted) and
 * new contexts, cancellations, deadlines and after-funcs work; the parent
 * is unaffected by what the child does. The child reports through its exit
 * status (the line of the first failed check), never through cmocka.
 *
 * Time is a fake clock, so "pending at the fork" is certain: a deadline
 * fires only once the process that owns the copy moves its clock past it
 * (ctx__timers_kick then wakes that process's timer thread).
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "goctx.h"
#include "ctx/testing.h"

/* The child starts the timer thread again: ThreadSanitizer must be told
 * that new threads after fork() are expected. */
#if defined(__SANITIZE_THREAD__)
#define FORK_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FORK_TSAN 1
#endif
#endif
#ifdef FORK_TSAN
const char *__tsan_default_options(void);
const char *__tsan_default_options(void) { return "die_after_fork=0"; }
#endif

#define LONG_WAIT (30 * CTX_SECOND) /* only reached on a bug */

/* In the child: exit with the line of the first failed check. */
#define CHILD_CHECK(cond)                                                                  \
	do {                                                                                   \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "child: check failed at line %d: %s\n", __LINE__, #cond);      \
			_exit(__LINE__ % 250 + 1);                                                     \
		}                                                                                  \
	} while (0)

static _Atomic ctx_time_t fake_now = 1000 * CTX_SECOND;
static ctx_time_t fake_clock(void) { return atomic_load(&fake_now); }

static void advance(ctx_duration_t d)
{
	atomic_fetch_add(&fake_now, d);
	ctx__timers_kick();
}

static atomic_int after_runs;
static void after_fn(void *arg)
{
	(void)arg;
	atomic_fetch_add(&after_runs, 1);
}

static int run_child(int (*body)(void *), void *arg)
{
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(body(arg));
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

struct live {
	ctx_t *p;           /* WithCancel */
	ctx_cancel_t *ph;
	ctx_t *d;           /* deadline under p, pending at the fork */
	ctx_cancel_t *dh;
	ctx_t *v;           /* value over d */
	ctx_t *far;         /* deadline an hour away, pending at the fork */
	ctx_cancel_t *farh;
};

static int key, val;

static int child_with_live(void *arg)
{
	struct live *l = arg;
	/* The pending deadline fires here too, with its cause. */
	CHILD_CHECK(ctx_err(l->d) == 0);
	advance(200 * CTX_MILLISECOND);
	CHILD_CHECK(ctx_wait(l->d, LONG_WAIT) == ETIMEDOUT);
	CHILD_CHECK(ctx_cause(l->d) == 4343);
	CHILD_CHECK(ctx_err(l->v) == ETIMEDOUT);
	CHILD_CHECK(ctx_value(l->v, &key) == &val);
	CHILD_CHECK(ctx_err(l->p) == 0);

	/* New contexts under inherited ones; cancel, after-funcs, done fds. */
	ctx_cancel_t *h;
	ctx_t *c = ctx_with_cancel(l->p, &h);
	CHILD_CHECK(c != NULL);
	CHILD_CHECK(ctx_after_func(c, after_fn, NULL, NULL) == 0);
	int fd = ctx_done_fd(c);
	CHILD_CHECK(fd >= 0);
	ctx_cancel_cause(l->ph, 5151); /* the parent's copy must not notice */
	CHILD_CHECK(ctx_err(c) == ECANCELED && ctx_cause(c) == 5151);
	CHILD_CHECK(atomic_load(&after_runs) == 1);
	struct pollfd pf = {.fd = fd, .events = POLLIN};
	CHILD_CHECK(poll(&pf, 1, 0) == 1);
	ctx_cancel(h);
	ctx_release(c);

	/* A new deadline made in the child fires. */
	ctx_t *t = ctx_with_timeout_cause(ctx_background(), 2 * CTX_MILLISECOND, 6161, NULL);
	CHILD_CHECK(t != NULL);
	CHILD_CHECK(ctx_err(t) == 0);
	advance(2 * CTX_MILLISECOND);
	CHILD_CHECK(ctx_wait(t, LONG_WAIT) == ETIMEDOUT && ctx_cause(t) == 6161);
	ctx_release(t);
	/* The far one is still pending and can be cancelled. */
	CHILD_CHECK(ctx_err(l->far) == 0);
	ctx_cancel(l->farh);
	CHILD_CHECK(ctx_err(l->far) == ECANCELED);
	ctx_cancel(l->dh);
	ctx_release(l->far);
	ctx_release(l->v);
	ctx_release(l->d);
	ctx_release(l->p);
	CHILD_CHECK(ctx__timers_pending() == 0);
	return 0;
}

/* Fire one deadline, so the timer thread has certainly started and gone
 * idle: LLVM 14's AddressSanitizer keeps a thread-registry lock while a new
 * thread starts, and a child forked at that moment inherits it held, so
 * the timer thread the child starts would hang at its own start. */
static bool timer_thread_idle(void)
{
	ctx_t *t = ctx_with_timeout(ctx_background(), CTX_MICROSECOND, NULL);
	if (!t)
		return false;
	advance(CTX_MICROSECOND);
	int e = ctx_wait(t, LONG_WAIT);
	ctx_release(t);
	return e == ETIMEDOUT;
}

static void test_fork_with_pending_timers(void **state)
{
	(void)state;
	assert_true(timer_thread_idle());
	struct live l;
	l.p = ctx_with_cancel(ctx_background(), &l.ph);
	l.d = ctx_with_timeout_cause(l.p, 100 * CTX_MILLISECOND, 4343, &l.dh);
	l.v = ctx_with_value(l.d, &key, &val, NULL);
	l.far = ctx_with_timeout(ctx_background(), 3600 * CTX_SECOND, &l.farh);
	assert_non_null(l.p);
	assert_non_null(l.d);
	assert_non_null(l.v);
	assert_non_null(l.far);
	size_t pending = ctx__timers_pending();
	assert_true(pending >= 2);

	assert_int_equal(ctx_err(l.d), 0);
	assert_int_equal(run_child(child_with_live, &l), 0);

	/* The parent is untouched by the child's cancels and clock... */
	assert_int_equal(ctx_err(l.p), 0);
	assert_int_equal(ctx_err(l.d), 0);
	assert_int_equal(ctx_err(l.far), 0);
	assert_int_equal(ctx__timers_pending(), pending);
	assert_int_equal(atomic_load(&after_runs), 0);
	/* ...and its own timer thread still fires its deadline. */
	advance(200 * CTX_MILLISECOND);
	assert_int_equal(ctx_wait(l.d, LONG_WAIT), ETIMEDOUT);
	assert_int_equal(ctx_cause(l.d), 4343);
	assert_int_equal(ctx_err(l.v), ETIMEDOUT);
	ctx_cancel(l.farh);
	ctx_cancel(l.dh);
	ctx_cancel(l.ph);
	ctx_release(l.far);
	ctx_release(l.v);
	ctx_release(l.d);
	ctx_release(l.p);
	assert_int_equal(ctx__timers_pending(), 0);
}

static int child_first_deadline(void *arg)
{
	(void)arg;
	/* No timer pending at the fork: the first deadline here starts it. */
	ctx_t *t = ctx_with_timeout(ctx_background(), 1 * CTX_MILLISECOND, NULL);
	CHILD_CHECK(t != NULL);
	advance(1 * CTX_MILLISECOND);
	CHILD_CHECK(ctx_wait(t, LONG_WAIT) == ETIMEDOUT);
	ctx_release(t);
	return 0;
}

static void test_fork_idle_timer_thread(void **state)
{
	(void)state;
	/* The timer thread exists (earlier tests) but has nothing to do. */
	assert_int_equal(ctx__timers_pending(), 0);
	assert_int_equal(run_child(child_first_deadline, NULL), 0);
	ctx_t *t = ctx_with_timeout(ctx_background(), 1 * CTX_MILLISECOND, NULL);
	assert_non_null(t);
	advance(1 * CTX_MILLISECOND);
	assert_int_equal(ctx_wait(t, LONG_WAIT), ETIMEDOUT);
	ctx_release(t);
}

static int child_nested_fork(void *arg)
{
	(void)arg;
	/* A grandchild of a forked child: the restarted thread forks too. */
	CHILD_CHECK(timer_thread_idle());
	ctx_cancel_t *h;
	ctx_t *d = ctx_with_timeout(ctx_background(), 20 * CTX_MILLISECOND, &h);
	CHILD_CHECK(d != NULL);
	fflush(NULL);
	pid_t pid = fork();
	CHILD_CHECK(pid >= 0);
	if (pid == 0) {
		advance(20 * CTX_MILLISECOND);
		int e = ctx_wait(d, LONG_WAIT);
		_exit(e == ETIMEDOUT ? 0 : 3);
	}
	int status;
	CHILD_CHECK(waitpid(pid, &status, 0) == pid);
	CHILD_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHILD_CHECK(ctx_err(d) == 0); /* the grandchild's clock was its own */
	advance(20 * CTX_MILLISECOND);
	CHILD_CHECK(ctx_wait(d, LONG_WAIT) == ETIMEDOUT);
	ctx_cancel(h);
	ctx_release(d);
	return 0;
}

static void test_fork_twice(void **state)
{
	(void)state;
	assert_int_equal(run_child(child_nested_fork, NULL), 0);
}

int main(void)
{
	ctx__set_clock(fake_clock);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fork_with_pending_timers),
		cmocka_unit_test(test_fork_idle_timer_thread),
		cmocka_unit_test(test_fork_twice),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
