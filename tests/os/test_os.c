/* test_os.c: the platform layer's wait and wake on a 32-bit word (src/os/os.h)
 * and its done descriptor, white-box, on whichever backend this build uses
 * (Linux: futex and eventfd; GOCTX_PORTABLE: the parking lot and a socket
 * pair). The rules: a wait on a word that no longer holds `expect` returns
 * at once; a timed wait returns ETIMEDOUT once its absolute monotonic time
 * has passed; a wake of n releases at most n sleepers of that word and none
 * of another word; a wake after the store is never lost; the descriptor is
 * readable exactly once signalled, for ever, whatever is read from it. */
#include "util.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>

#include "os/os.h"

static bool readable(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	int r;
	while ((r = poll(&p, 1, 0)) < 0 && errno == EINTR)
		;
	return r == 1 && (p.revents & POLLIN);
}

static void test_wait_word_changed(void **state)
{
	(void)state;
	_Atomic uint32_t w = 5;
	assert_int_equal(ctx__os_wait(&w, 4, NULL), 0); /* not 4: at once */
	struct timespec past = ctx__os_timespec(ctx__os_now() - CTX_SECOND);
	assert_int_equal(ctx__os_wait(&w, 5, &past), ETIMEDOUT);
	ctx_time_t t0 = ctx__os_now();
	struct timespec soon = ctx__os_timespec(t0 + 20 * CTX_MILLISECOND);
	int e;
	while ((e = ctx__os_wait(&w, 5, &soon)) == 0 || e == EINTR)
		; /* spurious returns are allowed; only the deadline ends it */
	assert_int_equal(e, ETIMEDOUT);
	assert_true(ctx__os_now() >= t0 + 20 * CTX_MILLISECOND);
	ctx__os_wake(&w, INT_MAX); /* nobody sleeps: nothing happens */
}

/* Sleepers on a few words; each counts its return once its word changed. */
enum { WORDS = 4, PER_WORD = 6 };

static _Atomic uint32_t words[WORDS];
static atomic_int returned[WORDS];
static atomic_int asleep;

static void *sleeper(void *arg)
{
	int i = (int)(intptr_t)arg;
	atomic_fetch_add(&asleep, 1);
	while (atomic_load(&words[i]) == 0)
		ctx__os_wait(&words[i], 0, NULL);
	atomic_fetch_add(&returned[i], 1);
	return NULL;
}

static bool wait_count(atomic_int *c, int n, int ms)
{
	ctx_time_t until = ut_real_now() + (ctx_time_t)ms * CTX_MILLISECOND;
	while (atomic_load(c) < n)
		if (ut_real_now() > until)
			return false;
		else
			sched_yield();
	return true;
}

static void test_wake_counts_and_words(void **state)
{
	(void)state;
	pthread_t t[WORDS * PER_WORD];
	for (int i = 0; i < WORDS; i++) {
		atomic_store(&words[i], 0);
		atomic_store(&returned[i], 0);
	}
	atomic_store(&asleep, 0);
	for (int k = 0; k < WORDS * PER_WORD; k++)
		assert_int_equal(pthread_create(&t[k], NULL, sleeper, (void *)(intptr_t)(k % WORDS)), 0);
	assert_true(wait_count(&asleep, WORDS * PER_WORD, UT_BOUND_MS));
	/* Let them reach the wait (a wake before then finds the word changed,
	 * which is as good: this only makes the counts below exact). */
	ut_sleep_ms(50);

	/* Word 0: wakes of 1, one at a time. The store comes first, so each
	 * wake(1) releases at least one sleeper (more only by a spurious wake,
	 * which the interface allows: the count is not checked from above). */
	atomic_store(&words[0], 1);
	for (int n = 1; n <= PER_WORD; n++) {
		ctx__os_wake(&words[0], 1);
		if (!wait_count(&returned[0], n, UT_BOUND_MS))
			fail_msg("wake(1) number %d released nobody on its word", n);
	}
	/* The other words' sleepers are untouched by word 0's wakes. */
	for (int i = 1; i < WORDS; i++)
		assert_int_equal(atomic_load(&returned[i]), 0);

	/* Word 1: one wake of all. */
	atomic_store(&words[1], 1);
	ctx__os_wake(&words[1], INT_MAX);
	if (!wait_count(&returned[1], PER_WORD, UT_BOUND_MS))
		fail_msg("wake(INT_MAX) released %d of %d", atomic_load(&returned[1]), PER_WORD);
	/* Words 2 and 3 at once, from two wakes. */
	atomic_store(&words[2], 1);
	atomic_store(&words[3], 1);
	ctx__os_wake(&words[3], INT_MAX);
	ctx__os_wake(&words[2], INT_MAX);
	assert_true(wait_count(&returned[2], PER_WORD, UT_BOUND_MS));
	assert_true(wait_count(&returned[3], PER_WORD, UT_BOUND_MS));
	for (int k = 0; k < WORDS * PER_WORD; k++)
		assert_int_equal(UT_BOUNDED(UT_BOUND_MS, "every sleeper returns",
		                            pthread_join(t[k], NULL)),
		                 0);
}

/* Ping-pong through two words, many rounds: each side waits for its turn
 * and wakes the other after its store. A lost wake hangs (the watchdog
 * names it). */
#define ROUNDS ((uint32_t)UT_ITERS(20000))
static _Atomic uint32_t turn;

static void *ponger(void *arg)
{
	(void)arg;
	for (uint32_t r = 0; r < ROUNDS; r++) {
		uint32_t s;
		while (((s = atomic_load(&turn)) & 1) == 0)
			ctx__os_wait(&turn, s, NULL);
		atomic_store(&turn, s + 1);
		ctx__os_wake(&turn, 1);
	}
	return NULL;
}

static void test_no_lost_wake(void **state)
{
	(void)state;
	atomic_store(&turn, 0);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, ponger, NULL), 0);
	for (uint32_t r = 0; r < ROUNDS; r++) {
		uint32_t s = atomic_load(&turn);
		assert_int_equal(s & 1, 0);
		atomic_store(&turn, s + 1);
		ctx__os_wake(&turn, 1);
		while (((s = atomic_load(&turn)) & 1) == 1)
			ctx__os_wait(&turn, s, NULL);
	}
	assert_int_equal(UT_BOUNDED(UT_BOUND_MS, "ping-pong: no wake is lost", pthread_join(t, NULL)),
	                 0);
	assert_int_equal(atomic_load(&turn), 2 * ROUNDS);
}

/* A thread parked when the process forks: the child (one thread) waits and
 * wakes on its own words; the parent's sleeper is still woken. */
static _Atomic uint32_t parked_word;

static void *parked(void *arg)
{
	(void)arg;
	while (atomic_load(&parked_word) == 0)
		ctx__os_wait(&parked_word, 0, NULL);
	return NULL;
}

static void test_fork_with_a_sleeper(void **state)
{
	(void)state;
	atomic_store(&parked_word, 0);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, parked, NULL), 0);
	ut_sleep_ms(20); /* most likely asleep; either way the rule holds */
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		_Atomic uint32_t w = 0;
		struct timespec soon = ctx__os_timespec(ctx__os_now() + 5 * CTX_MILLISECOND);
		int e;
		while ((e = ctx__os_wait(&w, 0, &soon)) != ETIMEDOUT)
			if (e != 0 && e != EINTR)
				_exit(2);
		atomic_store(&parked_word, 1); /* the child's copy: nobody sleeps on it here */
		ctx__os_wake(&parked_word, INT_MAX);
		_exit(0);
	}
	int st;
	assert_int_equal(UT_BOUNDED(UT_BOUND_MS, "the forked child can wait and wake",
	                            (int)waitpid(pid, &st, 0)),
	                 pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	atomic_store(&parked_word, 1);
	ctx__os_wake(&parked_word, INT_MAX);
	assert_int_equal(UT_BOUNDED(UT_BOUND_MS, "a sleeper from before the fork is woken",
	                            pthread_join(t, NULL)),
	                 0);
}

static void test_done_descriptor(void **state)
{
	(void)state;
	for (int born_done = 0; born_done < 2; born_done++) {
		ctx__os_done_t d = CTX__OS_DONE_NONE;
		assert_false(ctx__os_done_made(&d));
		assert_int_equal(ctx__os_done_open(&d, born_done), 0);
		assert_true(ctx__os_done_made(&d));
		int fd = d.fd;
		assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
		assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
		if (!born_done) {
			assert_false(readable(fd));
			uint64_t b; /* an eventfd reads 8 bytes at least */
			assert_int_equal(read(fd, &b, sizeof b), -1); /* non-blocking: nothing yet */
			assert_int_equal(errno, EAGAIN);
			ctx__os_done_signal(&d);
		}
		for (int i = 0; i < 4; i++) {
			assert_true(readable(fd));
			char b[64];
			ssize_t r = read(fd, b, sizeof b);
			(void)r;
		}
		assert_true(readable(fd));
		ctx__os_done_close(&d);
		assert_false(ctx__os_done_made(&d));
		assert_int_equal(fcntl(fd, F_GETFD), -1); /* closed */
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wait_word_changed),
		cmocka_unit_test(test_wake_counts_and_words),
		cmocka_unit_test(test_no_lost_wake),
		cmocka_unit_test(test_fork_with_a_sleeper),
		cmocka_unit_test(test_done_descriptor),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
