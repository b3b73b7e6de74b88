/* posix.c: the platform layer from POSIX.1-2008 and pthreads alone: the
 * backend everywhere but Linux, and on Linux with GOCTX_PORTABLE=1.
 *
 * Waiting on a word: a parking lot. A fixed table of buckets, each a mutex,
 * a condition variable and a queue of the threads parked on words that hash
 * to it (WebKit's ParkingLot and Rust's parking_lot work the same way). A
 * parked thread's queue entry lives on its own stack: no allocation per
 * wait. A waiter checks the word and queues itself under the bucket's
 * mutex; a waker, after its store, takes the same mutex, so either the
 * waiter sees the new value or the waker finds the entry. A wake takes up to
 * n entries for its word off the queue, marks them and broadcasts the
 * bucket's condition variable; threads parked on other words of the bucket
 * wake, find themselves unmarked and sleep again, so a wake of n releases
 * exactly n (like FUTEX_WAKE) and never EINTR.
 *
 * The done descriptor: an AF_UNIX socket pair. Signalling closes the second
 * socket, so the first (the one ctx_done_fd gives) reads end-of-file for
 * ever: readable (POLLIN) whatever the user reads from it. A pipe would do
 * on BSD and macOS, but Linux reports a pipe whose writers are gone as
 * POLLHUP without POLLIN, and a byte written into one can be read away.
 *
 * Uses: libc and pthreads.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pipe2-era flags (SOCK_CLOEXEC) on glibc */
#endif
#include "os.h"

#if GOCTX_OS_POSIX
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- the parking lot ---- */

/* 32 buckets: fork's prepare holds every bucket's mutex at once, and
 * ThreadSanitizer's deadlock detector allows a thread 64 held locks. More
 * buckets would only make collisions (a wake waking, in vain, threads
 * parked on other words of its bucket) rarer. */
#define LOT_BITS 5
#define LOT_SIZE (1u << LOT_BITS)

struct parked {
	const void *word;
	struct parked *next, **pprev; /* in the bucket's queue; pprev NULL once taken off */
	bool woken;                   /* set by the waker that took it off; guarded by mu */
};

struct bucket {
	_Alignas(64) pthread_mutex_t mu; /* one cache line or more per bucket */
	pthread_cond_t cond;           /* timed on CLOCK_MONOTONIC (ctx__os_cond_init) */
	struct parked *head, **tail;   /* FIFO: a wake of 1 releases the oldest */
};

static struct bucket lot[LOT_SIZE];
static pthread_once_t lot_once = PTHREAD_ONCE_INIT;

static struct bucket *bucket_of(const void *word)
{
	/* Fibonacci hashing: neighbouring words land in different buckets. */
	uint64_t h = (uint64_t)(uintptr_t)word * UINT64_C(0x9E3779B97F4A7C15);
	return &lot[h >> (64 - LOT_BITS)];
}

static void bucket_reset(struct bucket *b)
{
	/* The monotonic attribute cannot fail on the systems supported; were it
	 * to, a plain condition variable still works (deadlines on the wall
	 * clock). */
	if (ctx__os_cond_init(&b->cond) != 0)
		pthread_cond_init(&b->cond, NULL);
	b->head = NULL;
	b->tail = &b->head;
}

/* fork(): prepare takes every bucket's mutex, so the child gets consistent
 * queues; the child unlocks them and empties the queues (the parked threads
 * do not exist there) with fresh condition variables. No thread holds a
 * bucket mutex while it takes any other lock, but others wake while they
 * hold their own (timer.c wakes under its queue lock): the buckets are the
 * innermost locks, so their prepare must run after every other one and
 * their child handler before. pthread_atfork runs prepares in the reverse
 * order of registration and the rest in order, so these handlers are
 * registered before any other of the library's: ctx__os_atfork calls
 * ctx__os_lot_init first. */
static void lot_prepare(void)
{
	for (unsigned i = 0; i < LOT_SIZE; i++)
		pthread_mutex_lock(&lot[i].mu);
}

static void lot_parent(void)
{
	for (unsigned i = LOT_SIZE; i-- > 0;)
		pthread_mutex_unlock(&lot[i].mu);
}

static void lot_child(void)
{
	for (unsigned i = LOT_SIZE; i-- > 0;) {
		pthread_mutex_unlock(&lot[i].mu);
		bucket_reset(&lot[i]);
	}
}

static void lot_init(void)
{
	for (unsigned i = 0; i < LOT_SIZE; i++) {
		pthread_mutex_init(&lot[i].mu, NULL);
		bucket_reset(&lot[i]);
	}
	/* Straight to pthread_atfork: ctx__os_atfork calls ctx__os_lot_init. */
	pthread_atfork(lot_prepare, lot_parent, lot_child);
}

void ctx__os_lot_init(void) { pthread_once(&lot_once, lot_init); }

static void unqueue(struct bucket *b, struct parked *p)
{
	*p->pprev = p->next;
	if (p->next)
		p->next->pprev = p->pprev;
	else
		b->tail = p->pprev;
	p->pprev = NULL;
}

int ctx__os_wait(_Atomic uint32_t *word, uint32_t expect, const struct timespec *abs)
{
	pthread_once(&lot_once, lot_init);
	struct bucket *b = bucket_of(word);
	pthread_mutex_lock(&b->mu);
	/* Relaxed: a waker stores before it takes b->mu, so a waker that held
	 * it before us is ordered by the mutex, and one that takes it after us
	 * finds our entry. The callers' own loads give the acquire order. */
	if (atomic_load_explicit(word, memory_order_relaxed) != expect) {
		pthread_mutex_unlock(&b->mu);
		return 0;
	}
	struct parked me = {.word = word, .next = NULL, .pprev = b->tail, .woken = false};
	*b->tail = &me;
	b->tail = &me.next;
	int e = 0;
	while (!me.woken && !e)
		e = abs ? ctx__os_cond_timedwait(&b->cond, &b->mu, abs)
		        : pthread_cond_wait(&b->cond, &b->mu);
	if (!me.woken)
		unqueue(b, &me); /* timed out (or the wait failed): still queued */
	pthread_mutex_unlock(&b->mu);
	return me.woken ? 0 : e;
}

void ctx__os_wake(_Atomic uint32_t *word, int n)
{
	pthread_once(&lot_once, lot_init);
	struct bucket *b = bucket_of(word);
	bool any = false;
	pthread_mutex_lock(&b->mu);
	for (struct parked *p = b->head, *next; p && n > 0; p = next) {
		next = p->next;
		if (p->word == word) {
			unqueue(b, p);
			p->woken = true;
			any = true;
			n--;
		}
	}
	pthread_mutex_unlock(&b->mu);
	/* After the unlock: the woken re-take the mutex without waiting for
	 * us. Every marked thread is inside its condition wait (it queued and
	 * went to sleep under the mutex we held), so none misses this. */
	if (any)
		pthread_cond_broadcast(&b->cond);
}

/* ---- the done descriptor ---- */

static int make_pair(int sv[2])
{
#if defined(__APPLE__)
	/* macOS: NOT COMPILED OR TESTED HERE. No SOCK_CLOEXEC: the flags are
	 * set after, so a fork+exec in another thread between the calls could
	 * inherit the pair. */
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		return errno;
	fcntl(sv[0], F_SETFD, FD_CLOEXEC);
	fcntl(sv[1], F_SETFD, FD_CLOEXEC);
	fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
#else
	/* Both ends close-on-exec and non-blocking (nothing is ever written:
	 * the second end only needs to exist until it is closed). */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) != 0)
		return errno;
#endif
	return 0;
}

int ctx__os_done_open(ctx__os_done_t *d, bool signalled)
{
	int sv[2];
	int e = make_pair(sv);
	if (e)
		return e;
	if (signalled) {
		close(sv[1]);
		sv[1] = -1;
	}
	d->fd = sv[0];
	d->wfd = sv[1];
	return 0;
}

void ctx__os_done_signal(ctx__os_done_t *d)
{
	if (d->wfd >= 0) {
		close(d->wfd);
		d->wfd = -1;
	}
}

void ctx__os_done_close(ctx__os_done_t *d)
{
	ctx__os_done_signal(d);
	close(d->fd);
	d->fd = -1;
}
#endif
