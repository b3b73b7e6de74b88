/* test_signal.c: ctx_with_signals: raise() and kill() from another thread,
 * two contexts on one signal, the cancellation's thread, stop (its cause,
 * the exact restore of the previous sigaction, the old handler running on
 * the next signal), being done not ending the catching, the freed path, a
 * default disposition killing a forked child after stop, the format and
 * strerror words, errors, no thread per context, and signal storms while
 * contexts come and go. */
#include <signal.h>
#include <sys/wait.h>

#include "goctx/signal.h"
#include "util.h"

/* The forked child starts the library's thread again: ThreadSanitizer must
 * be told that new threads after fork() are expected. */
#if UT_TSAN
const char *__tsan_default_options(void);
const char *__tsan_default_options(void) { return "die_after_fork=0"; }
#endif

static atomic_int old_hits;

static void old_handler(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)si;
	(void)uc;
	atomic_fetch_add(&old_hits, 1);
}

/* old_hits once it reaches n (bounded): ThreadSanitizer delivers a
 * signal at the next call it intercepts, not inside raise(). */
static int old_hits_reach(int n)
{
	for (int i = 0; i < 20000 && atomic_load(&old_hits) < n; i++)
		ut_sleep_ms(1);
	return atomic_load(&old_hits);
}

/* raise(), then one intercepted call so that ThreadSanitizer, which defers
 * a signal to its next interceptor, has delivered it when this returns
 * (without TSan, raise() runs the handler before it returns). */
static void raise_now(int sig)
{
	raise(sig);
	ut_sleep_ms(1);
}

/* Install old_handler with distinctive flags and mask; returns it. */
static struct sigaction install_old(int sig)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = old_handler;
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGUSR2);
	sigaddset(&sa.sa_mask, SIGWINCH);
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	assert_int_equal(sigaction(sig, &sa, NULL), 0);
	struct sigaction now;
	assert_int_equal(sigaction(sig, NULL, &now), 0);
	return now;
}

static void assert_same_action(int sig, const struct sigaction *want)
{
	struct sigaction now;
	assert_int_equal(sigaction(sig, NULL, &now), 0);
	assert_ptr_equal((void *)now.sa_sigaction, (void *)want->sa_sigaction);
	assert_int_equal(now.sa_flags, want->sa_flags);
	for (int s = 1; s < NSIG; s++)
		if (sigismember(&want->sa_mask, s) >= 0)
			assert_int_equal(sigismember(&now.sa_mask, s), sigismember(&want->sa_mask, s));
}

static bool is_old(int sig)
{
	struct sigaction now;
	sigaction(sig, NULL, &now);
	return now.sa_sigaction == old_handler;
}

static void test_errors(void **state)
{
	(void)state;
	struct sigaction before = install_old(SIGUSR1);
	int one[] = {SIGUSR1};
	int bad[][2] = {{SIGUSR1, SIGKILL}, {SIGSTOP, SIGUSR1}, {0, SIGUSR1},
	                {SIGUSR1, NSIG}, {-3, SIGUSR1}, {SIGUSR1, 32}};
	ctx_cancel_t *stop = (ctx_cancel_t *)&stop;
	errno = 0;
	assert_null(ctx_with_signals(NULL, one, 1, &stop));
	assert_int_equal(errno, EINVAL);
	assert_null(stop);
	errno = 0;
	assert_null(ctx_with_signals(ctx_background(), NULL, 1, &stop));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(ctx_with_signals(ctx_background(), one, 0, &stop));
	assert_int_equal(errno, EINVAL);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		errno = 0;
		stop = (ctx_cancel_t *)&stop;
		assert_null(ctx_with_signals(ctx_background(), bad[i], 2, &stop));
		assert_int_equal(errno, EINVAL);
		assert_null(stop);
		assert_same_action(SIGUSR1, &before);
	}
	assert_int_equal(ctx_cause_signal(CTX_CAUSE_SIGNAL(SIGINT)), SIGINT);
	assert_int_equal(ctx_cause_signal(CTX_CAUSE_SIGNAL(SIGTERM)), SIGTERM);
	assert_int_equal(ctx_cause_signal(ECANCELED), 0);
	assert_int_equal(ctx_cause_signal(0), 0);
	assert_int_equal(ctx_cause_signal(CTX_CAUSE_SIGNAL(0)), 0);
	assert_int_equal(ctx_cause_signal(CTX_CAUSE_SIGNAL(NSIG)), 0);
	ut_assert_no_leak();
}

static void test_words_and_format(void **state)
{
	(void)state;
	assert_string_equal(ctx_strerror(CTX_CAUSE_SIGNAL(SIGINT)), "interrupt signal received");
	assert_string_equal(ctx_strerror(CTX_CAUSE_SIGNAL(SIGTERM)), "terminated signal received");
	assert_string_equal(ctx_strerror(CTX_CAUSE_SIGNAL(SIGHUP)), "hangup signal received");
	int sigs[] = {SIGINT, SIGTERM, SIGINT};
	ctx_cancel_t *stop;
	ctx_t *c = ctx_with_signals(ctx_background(), sigs, 3, &stop);
	assert_non_null(c);
	assert_string_equal(ut_fmt(c), "context.Background.WithSignals([SIGINT SIGTERM])");
	ctx_t *v = ctx_with_value(c, &sigs, NULL, NULL);
	assert_true(ut_starts_with(ut_fmt(v), "context.Background.WithSignals([SIGINT SIGTERM]).WithValue("));
	char small[8];
	assert_int_equal(ctx_format(c, small, sizeof small),
	                 (int)strlen("context.Background.WithSignals([SIGINT SIGTERM])"));
	ctx_release(v);
	ctx_cancel(stop);
	ctx_release(c);
	ut_assert_no_leak();
}

struct runner {
	atomic_int ran;
	pthread_t thread;
};

static void note_thread(void *arg)
{
	struct runner *r = arg;
	r->thread = pthread_self();
	atomic_store(&r->ran, 1);
}

static void test_raise_two_contexts(void **state)
{
	(void)state;
	struct sigaction before = install_old(SIGUSR1);
	int sigs[] = {SIGUSR1};
	ctx_cancel_t *s1, *s2;
	ctx_t *a = ctx_with_signals(ctx_background(), sigs, 1, &s1);
	ctx_t *b = ctx_with_signals(ctx_background(), sigs, 1, &s2);
	assert_non_null(a);
	assert_non_null(b);
	ut_assert_live(a);
	assert_false(is_old(SIGUSR1));
	struct runner r = {.ran = 0};
	assert_int_equal(ctx_after_func(a, note_thread, &r, NULL), 0);
	atomic_store(&old_hits, 0);
	raise_now(SIGUSR1);
	assert_int_equal(ctx_wait(a, 20 * CTX_SECOND), ECANCELED);
	assert_int_equal(ctx_wait(b, 20 * CTX_SECOND), ECANCELED);
	ut_assert_done(a, ECANCELED, CTX_CAUSE_SIGNAL(SIGUSR1));
	ut_assert_done(b, ECANCELED, CTX_CAUSE_SIGNAL(SIGUSR1));
	/* The cancellation ran in the library's thread, not in the handler. */
	assert_int_equal(atomic_load(&r.ran), 1);
	assert_false(pthread_equal(r.thread, pthread_self()));
	assert_int_equal(atomic_load(&old_hits), 0);
	/* Done does not end the catching: the old handler still does not run. */
	raise_now(SIGUSR1);
	assert_int_equal(atomic_load(&old_hits), 0);
	assert_false(is_old(SIGUSR1));
	/* Stopping one leaves the other watching. */
	ctx_cancel(s1);
	assert_false(is_old(SIGUSR1));
	ctx_cancel(s2);
	assert_same_action(SIGUSR1, &before);
	raise_now(SIGUSR1);
	assert_int_equal(old_hits_reach(1), 1); /* the old handler ran */
	ctx_release(a);
	ctx_release(b);
	ut_assert_no_leak_eventually();
}

static void *kill_thread(void *arg)
{
	int sig = *(int *)arg;
	kill(getpid(), sig);
	return NULL;
}

static void test_kill_from_thread_and_stop_cause(void **state)
{
	(void)state;
	struct sigaction before = install_old(SIGUSR2);
	int sigs[] = {SIGUSR1, SIGUSR2};
	ctx_cancel_t *stop;
	ctx_t *c = ctx_with_signals(ctx_background(), sigs, 2, &stop);
	int sig = SIGUSR2;
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, kill_thread, &sig), 0);
	assert_true(ut_join_ms(t, 10000, NULL));
	assert_int_equal(ctx_wait(c, 20 * CTX_SECOND), ECANCELED);
	assert_int_equal(ctx_cause(c), CTX_CAUSE_SIGNAL(SIGUSR2));
	ctx_cancel(stop);
	assert_same_action(SIGUSR2, &before);
	ctx_release(c);
	/* Stop with a cause: it cancels with that cause. */
	c = ctx_with_signals(ctx_background(), sigs, 2, &stop);
	ctx_cancel_cause(stop, 33);
	ut_assert_done(c, ECANCELED, 33);
	assert_same_action(SIGUSR2, &before);
	ctx_release(c);
	ut_assert_no_leak();
}

static void test_parent_done_and_freed(void **state)
{
	(void)state;
	struct sigaction before = install_old(SIGUSR1);
	ctx_cancel_t *pc;
	ctx_t *p = ctx_with_cancel(ctx_background(), &pc);
	int sigs[] = {SIGUSR1};
	ctx_t *c = ctx_with_signals(p, sigs, 1, NULL); /* stops when freed */
	ctx_cancel_cause(pc, 8);
	ut_assert_done(c, ECANCELED, 8);
	/* Done through the parent: still caught. */
	atomic_store(&old_hits, 0);
	raise_now(SIGUSR1);
	assert_int_equal(atomic_load(&old_hits), 0);
	assert_false(is_old(SIGUSR1));
	ctx_release(c);
	assert_same_action(SIGUSR1, &before);
	raise_now(SIGUSR1);
	assert_int_equal(old_hits_reach(1), 1);
	/* Born done under a done parent, still catching until stopped. */
	ctx_cancel_t *stop;
	c = ctx_with_signals(p, sigs, 1, &stop);
	ut_assert_done(c, ECANCELED, 8);
	assert_false(is_old(SIGUSR1));
	/* Freed before the handle is used: the release stops the catching,
	 * the late stop is harmless. */
	ctx_release(c);
	assert_same_action(SIGUSR1, &before);
	ctx_cancel(stop);
	ctx_release(p);
	ut_assert_no_leak();
}

/* ctx_cancel(stop) returns only once a cancellation by a signal that was
 * under way in the library's thread (its after-funcs included) finished. */
struct slow_after {
	sem_t entered, release;
	atomic_int finished;
	ctx_cancel_t *stop;
	int seen;
};

static void slow_after_fn(void *arg)
{
	struct slow_after *s = arg;
	sem_post(&s->entered);
	ut_sem_wait_ms(&s->release, 20000);
	atomic_store(&s->finished, 1);
}

static void *stop_thread(void *arg)
{
	struct slow_after *s = arg;
	ctx_cancel(s->stop);
	s->seen = atomic_load(&s->finished);
	return NULL;
}

static void test_stop_waits_for_signal_cancellation(void **state)
{
	(void)state;
	struct slow_after s = {.finished = 0, .seen = -1};
	sem_init(&s.entered, 0, 0);
	sem_init(&s.release, 0, 0);
	int sigs[] = {SIGUSR1};
	ctx_t *c = ctx_with_signals(ctx_background(), sigs, 1, &s.stop);
	assert_int_equal(ctx_after_func(c, slow_after_fn, &s, NULL), 0);
	raise_now(SIGUSR1);
	assert_true(ut_sem_wait_ms(&s.entered, 20000)); /* the cancellation is under way */
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, stop_thread, &s), 0);
	bool early = ut_join_ms(t, 200, NULL);
	sem_post(&s.release);
	if (!early)
		assert_true(ut_join_ms(t, 20000, NULL));
	assert_int_equal(s.seen, 1);
	ctx_release(c);
	sem_destroy(&s.entered);
	sem_destroy(&s.release);
	ut_assert_no_leak_eventually();
}

static int thread_count(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	if (!f)
		return -1;
	char line[256];
	int n = -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "Threads: %d", &n) == 1)
			break;
	fclose(f);
	return n;
}

static void test_no_thread_per_context(void **state)
{
	(void)state;
	int sigs[] = {SIGUSR1};
	ctx_cancel_t *first;
	ctx_t *c0 = ctx_with_signals(ctx_background(), sigs, 1, &first);
	int before = thread_count();
	ctx_cancel_t *stop[50];
	ctx_t *c[50];
	for (int i = 0; i < 50; i++)
		c[i] = ctx_with_signals(ctx_background(), sigs, 1, &stop[i]);
	assert_int_equal(thread_count(), before);
	for (int i = 0; i < 50; i++) {
		ctx_cancel(stop[i]);
		ctx_release(c[i]);
	}
	ctx_cancel(first);
	ctx_release(c0);
	ut_assert_no_leak();
}

/* In a child: the second SIGTERM after stop meets the default disposition
 * and kills the process. Exit codes name the step that went wrong. */
static void test_default_disposition_kills_after_stop(void **state)
{
	(void)state;
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		signal(SIGTERM, SIG_DFL);
		int sigs[] = {SIGTERM};
		ctx_cancel_t *stop;
		ctx_t *c = ctx_with_signals(ctx_background(), sigs, 1, &stop);
		if (!c)
			_exit(10);
		raise(SIGTERM);
		if (ctx_wait(c, 20 * CTX_SECOND) != ECANCELED)
			_exit(11);
		if (ctx_cause(c) != CTX_CAUSE_SIGNAL(SIGTERM))
			_exit(12);
		ctx_cancel(stop);
		ctx_release(c);
		raise(SIGTERM);
		_exit(13); /* not reached: SIGTERM's default ends the process */
	}
	int status = 0;
	pid_t r;
	for (int i = 0; i < 200000 && (r = waitpid(pid, &status, WNOHANG)) == 0; i++)
		ut_sleep_ms(1);
	if (r == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		fail_msg("child did not end");
	}
	if (WIFEXITED(status))
		fail_msg("child exited with %d", WEXITSTATUS(status));
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGTERM);
}

/* ---- storm: thousands of kill()s from several threads while contexts
 * are made and stopped ---- */

static atomic_int storm_stop;

static void *storm_killer(void *arg)
{
	(void)arg;
	for (int i = 0; i < UT_ITERS(3000) && !atomic_load(&storm_stop); i++)
		kill(getpid(), SIGUSR1);
	return NULL;
}

static void *storm_maker(void *arg)
{
	atomic_int *bad = arg;
	int sigs[] = {SIGUSR1, SIGUSR2};
	for (int i = 0; i < UT_ITERS(400); i++) {
		ctx_cancel_t *stop = NULL;
		ctx_t *c = ctx_with_signals(ctx_background(), sigs, 2, (i % 3) ? &stop : NULL);
		if (!c) {
			atomic_fetch_add(bad, 1);
			continue;
		}
		if (i % 5 == 0)
			ctx_wait(c, 0);
		if (stop)
			ctx_cancel(stop);
		if (ctx_err(c) != ECANCELED && stop)
			atomic_fetch_add(bad, 1);
		ctx_release(c);
	}
	return NULL;
}

static void test_storm(void **state)
{
	(void)state;
	struct sigaction before = install_old(SIGUSR1);
	int sigs[] = {SIGUSR1};
	ctx_cancel_t *keep_stop;
	ctx_t *keep = ctx_with_signals(ctx_background(), sigs, 1, &keep_stop);
	atomic_store(&storm_stop, 0);
	atomic_int bad = 0;
	enum { K = 3, M = 3 };
	pthread_t k[K], m[M];
	for (int i = 0; i < K; i++)
		assert_int_equal(pthread_create(&k[i], NULL, storm_killer, NULL), 0);
	for (int i = 0; i < M; i++)
		assert_int_equal(pthread_create(&m[i], NULL, storm_maker, &bad), 0);
	for (int i = 0; i < M; i++)
		assert_true(ut_join_ms(m[i], 120000, NULL));
	atomic_store(&storm_stop, 1);
	for (int i = 0; i < K; i++)
		assert_true(ut_join_ms(k[i], 120000, NULL));
	assert_int_equal(atomic_load(&bad), 0);
	/* The context kept through the storm saw it. */
	assert_int_equal(ctx_wait(keep, 20 * CTX_SECOND), ECANCELED);
	assert_int_equal(ctx_cause(keep), CTX_CAUSE_SIGNAL(SIGUSR1));
	ctx_cancel(keep_stop);
	ctx_release(keep);
	assert_same_action(SIGUSR1, &before);
	ut_assert_no_leak_eventually();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_errors, ut_mark),
		cmocka_unit_test_setup(test_words_and_format, ut_mark),
		cmocka_unit_test_setup(test_raise_two_contexts, ut_mark),
		cmocka_unit_test_setup(test_kill_from_thread_and_stop_cause, ut_mark),
		cmocka_unit_test_setup(test_parent_done_and_freed, ut_mark),
		cmocka_unit_test_setup(test_stop_waits_for_signal_cancellation, ut_mark),
		cmocka_unit_test_setup(test_no_thread_per_context, ut_mark),
		cmocka_unit_test_setup(test_default_disposition_kills_after_stop, ut_mark),
		cmocka_unit_test_setup(test_storm, ut_mark),
	};
	return cmocka_run_group_tests(tests, ut_group_setup, NULL);
}
