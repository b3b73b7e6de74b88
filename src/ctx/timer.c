/* timer.c: the deadline queue and the one timer thread.
 *
 * The queue is an intrusive pairing heap ordered by deadline: arming links
 * the node's own three pointers (no allocation), disarming cuts it out.
 * Insert is O(1); removing any node is O(log n) amortised; a node inserted
 * behind the minimum and removed again (the common "timeout, then cancel")
 * touches only the root's first-child list. Everything in the heap is
 * guarded by q.lock.
 *
 * The heap holds no reference: a node being freed disarms itself (under
 * q.lock) before its memory goes. The thread therefore takes a reference
 * (try_retain, under q.lock) on each due node before letting go of the
 * lock; a node whose count is already zero is left to its destructor.
 *
 * The thread sleeps on the futex word q.kick (ctx__os_wait, CLOCK_MONOTONIC)
 * until the earliest deadline (q.sleep_until); it reads q.kick under q.lock
 * before it looks at the queue and the service flag, and whoever wants it
 * awake bumps q.kick and wakes it, so no wake-up is lost between its last
 * look and its sleep. Arming wakes it only when the new deadline is earlier
 * than q.sleep_until.
 * With a test clock installed it sleeps until ctx__timers_kick().
 *
 * The service hook: an upper module may register one function
 * (ctx__service_start) that the thread calls, with no lock held, each time
 * ctx__service_wake() was called since the last call. The wake touches only
 * two atomic words and then wakes the thread, so a signal handler may call
 * it (the signal contexts of src/signal do: their cancellations run here).
 * Waking must then be async-signal-safe: a futex wake on Linux; on the POSIX
 * backend, whose word waits go through a mutex-guarded parking lot, the
 * thread sleeps in poll(2) on a wake descriptor (q.bell) instead, which the
 * waker writes to, from the first ctx__service_start on (before that it
 * sleeps on q.kick, so deadlines alone hold no descriptor there either).
 *
 * fork(): prepare takes q.lock so the child inherits a consistent heap;
 * the child unlocks it and restarts the thread if timers are pending or a
 * service is registered. q.lock is never held together with a node's lock.
 */
#include <errno.h>
#include <poll.h>

#include "internal.h"
#include "testing.h"

static struct {
	pthread_mutex_t lock;
	_Atomic uint32_t kick; /* bumped (then woken) to wake the thread */
#if GOCTX_OS_POSIX
	ctx__os_wakefd_t bell; /* what the thread polls once a service is registered */
#endif
	struct ctx__timer *root;
	size_t count;
	bool started;   /* the thread runs (or is being started) */
	bool sleeping;  /* the thread sleeps on kick */
	ctx_time_t sleep_until; /* ... until this deadline (INT64_MAX: untimed) */
} q = {.lock = PTHREAD_MUTEX_INITIALIZER,
#if GOCTX_OS_POSIX
       .bell = {.rfd = -1, .wfd = -1},
#endif
};

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/* The service hook (see the top of the file). Relaxed loads of `service`
 * are enough: it is written once, under q.lock, before the thread that
 * reads it is woken for it. */
static void (*_Atomic service)(void);
static _Atomic uint32_t service_due;

#if GOCTX_OS_POSIX
/* POSIX backend: set (release, before the kick that follows it) once q.bell
 * is open; from then on the thread sleeps in poll(2) on it. Only a service
 * (src/signal) needs it: its wakes come from signal handlers, and the
 * parking lot's wake takes a mutex. Without one the thread sleeps on q.kick
 * like on Linux and the library holds no descriptor for deadlines. */
static _Atomic bool bell_on;
#endif

/* Wake the thread: q.kick changes, so a sleep that read the old value
 * returns at once. */
static void kick_thread(void)
{
	atomic_fetch_add_explicit(&q.kick, 1, memory_order_release);
#if GOCTX_OS_POSIX
	if (atomic_load_explicit(&bell_on, memory_order_acquire)) {
		ctx__os_wakefd_signal(&q.bell);
		return;
	}
#endif
	ctx__os_wake(&q.kick, 1);
}

/* Sleep until kick moves away from `seen`, or until `until` (INT64_MAX:
 * no limit); may return early. */
static void sleep_kick(uint32_t seen, ctx_time_t until)
{
#if GOCTX_OS_POSIX
	/* A thread that read the kick after bell_on was set sees it set (the
	 * kick that followed it is a release); one that read an older kick
	 * finds q.kick changed in its word wait and returns. */
	if (atomic_load_explicit(&bell_on, memory_order_acquire)) {
		if (atomic_load_explicit(&q.kick, memory_order_acquire) != seen)
			return;
		struct pollfd p = {.fd = q.bell.rfd, .events = POLLIN};
		ctx_duration_t left = until == INT64_MAX ? -1 : until - ctx__os_now();
		ctx__os_poll(&p, 1, until == INT64_MAX ? -1 : left > 0 ? left : 0);
		/* A wake after this is not lost: it changed kick, which the
		 * thread reads before it sleeps again. */
		ctx__os_wakefd_drain(&q.bell);
		return;
	}
#endif
	if (until == INT64_MAX) {
		ctx__os_wait(&q.kick, seen, NULL);
	} else {
		struct timespec ts = ctx__os_timespec(until);
		ctx__os_wait(&q.kick, seen, &ts);
	}
}

#if GOCTX_OS_POSIX
/* Open the bell and switch the thread to it; q.lock held. wake: also wake a
 * thread asleep on q.kick from before (not in a forked child: there is no
 * such thread, and the parking lot's own fork handler may not have run). */
static int ring_bell_on(bool wake)
{
	if (atomic_load_explicit(&bell_on, memory_order_relaxed))
		return 0;
	int e = ctx__os_wakefd_open(&q.bell);
	if (e)
		return e;
	atomic_store_explicit(&bell_on, true, memory_order_release);
	if (wake) {
		atomic_fetch_add_explicit(&q.kick, 1, memory_order_release);
		ctx__os_wake(&q.kick, 1);
	}
	return 0;
}
#endif

/* ---- the pairing heap ---- */

static bool armed(const struct ctx__timer *t) { return t == q.root || t->hprev != NULL; }

/* Meld two heap roots (either may be NULL); returns the new root. */
static struct ctx__timer *meld(struct ctx__timer *a, struct ctx__timer *b)
{
	if (!a)
		return b;
	if (!b)
		return a;
	if (b->deadline < a->deadline) {
		struct ctx__timer *t = a;
		a = b;
		b = t;
	}
	b->hprev = a;
	b->hnext = a->hchild;
	if (b->hnext)
		b->hnext->hprev = b;
	a->hchild = b;
	a->hnext = NULL;
	a->hprev = NULL;
	return a;
}

/* Meld a list of siblings into one heap: pairs left to right, then the
 * pairs right to left (the standard two-pass). */
static struct ctx__timer *merge_pairs(struct ctx__timer *first)
{
	struct ctx__timer *pairs = NULL; /* stack of melded pairs, through hnext */
	while (first) {
		struct ctx__timer *a = first, *b = a->hnext;
		first = b ? b->hnext : NULL;
		a->hnext = a->hprev = NULL;
		if (b)
			b->hnext = b->hprev = NULL;
		struct ctx__timer *m = meld(a, b);
		m->hnext = pairs;
		pairs = m;
	}
	struct ctx__timer *r = NULL;
	while (pairs) {
		struct ctx__timer *next = pairs->hnext;
		pairs->hnext = NULL;
		r = meld(r, pairs);
		pairs = next;
	}
	return r;
}

static void heap_insert(struct ctx__timer *t)
{
	t->hchild = t->hnext = t->hprev = NULL;
	q.root = meld(q.root, t);
	q.count++;
}

static void heap_remove(struct ctx__timer *t)
{
	if (t == q.root) {
		q.root = merge_pairs(t->hchild);
	} else {
		if (t->hprev->hchild == t)
			t->hprev->hchild = t->hnext; /* first child of its parent */
		else
			t->hprev->hnext = t->hnext;
		if (t->hnext)
			t->hnext->hprev = t->hprev;
		q.root = meld(q.root, merge_pairs(t->hchild));
	}
	t->hchild = t->hnext = t->hprev = NULL;
	q.count--;
}

/* ---- the thread ---- */

static void *timer_main(void *arg)
{
	(void)arg;
	ctx__cache_off(); /* this thread never exits: no cache to flush (cache.c) */
	pthread_mutex_lock(&q.lock);
	for (;;) {
		/* Read before looking at anything a waker changes (see top). */
		uint32_t kick = atomic_load_explicit(&q.kick, memory_order_acquire);
		if (atomic_exchange_explicit(&service_due, 0, memory_order_acq_rel)) {
			void (*fn)(void) = atomic_load_explicit(&service, memory_order_relaxed);
			pthread_mutex_unlock(&q.lock);
			if (fn)
				fn();
			pthread_mutex_lock(&q.lock);
			continue;
		}
		/* Due timers, earliest first, through hnext. */
		struct ctx__timer *due = NULL, **tail = &due;
		ctx_time_t now = ctx_now();
		while (q.root && q.root->deadline <= now) {
			struct ctx__timer *t = q.root;
			heap_remove(t);
			if (ctx__try_retain(&t->c.node.base)) {
				*tail = t;
				tail = &t->hnext;
			}
		}
		if (due) {
			pthread_mutex_unlock(&q.lock);
			while (due) {
				struct ctx__timer *t = due;
				due = t->hnext;
				t->hnext = NULL;
				ctx__cancel(&t->c, ETIMEDOUT, CTX__TIMER_CAUSE, true);
				ctx_release(&t->c.node.base);
			}
			pthread_mutex_lock(&q.lock);
			continue;
		}
		/* Sleep until the earliest deadline. With the queue empty, keep
		 * the previous target while it is still ahead: repeated equal
		 * timeouts (each made and cancelled) then find the thread asleep
		 * until a time no later than theirs and do not signal it. */
		if (q.root)
			q.sleep_until = q.root->deadline;
		else if (q.sleep_until <= now)
			q.sleep_until = INT64_MAX;
		if (ctx__clock_is_fake())
			q.sleep_until = INT64_MAX; /* only kicks move a test clock */
		q.sleeping = true;
		ctx_time_t until = q.sleep_until;
		pthread_mutex_unlock(&q.lock);
		sleep_kick(kick, until);
		pthread_mutex_lock(&q.lock);
		q.sleeping = false;
	}
	return NULL;
}

/* Start the thread (all signals blocked in it); q.lock held. */
static int start_thread(void)
{
	int e = ctx__os_thread_start(timer_main, NULL);
	if (e == 0)
		q.started = true;
	return e;
}

static void fork_prepare(void) { pthread_mutex_lock(&q.lock); }
static void fork_parent(void) { pthread_mutex_unlock(&q.lock); }

static void fork_child(void)
{
	/* Only this thread exists now, and it holds q.lock (fork_prepare). */
	q.started = false;
	q.sleeping = false;
#if GOCTX_OS_POSIX
	/* The parent's descriptor is shared with it: make one of our own (or,
	 * with none to be had, sleep on q.kick). */
	if (atomic_load_explicit(&bell_on, memory_order_relaxed)) {
		ctx__os_wakefd_close(&q.bell);
		atomic_store_explicit(&bell_on, false, memory_order_relaxed);
		ring_bell_on(false);
	}
#endif
	if (q.root || atomic_load_explicit(&service, memory_order_relaxed))
		start_thread();
	pthread_mutex_unlock(&q.lock);
}

static void init_queue(void)
{
	ctx__os_atfork(fork_prepare, fork_parent, fork_child);
}

int ctx__timer_arm(struct ctx__timer *t)
{
	pthread_once(&init_once, init_queue);
	pthread_mutex_lock(&q.lock);
	int e = q.started ? 0 : start_thread();
	if (!e) {
		heap_insert(t);
		/* Wake the thread only if it sleeps past this deadline. */
		if (q.sleeping && t->deadline < q.sleep_until)
			kick_thread();
	}
	pthread_mutex_unlock(&q.lock);
	/* A cancel that reached t before the insert found nothing to disarm;
	 * it stored err before taking q.lock for that, so this load sees it
	 * (relaxed is enough: q.lock orders the two). */
	if (!e && (atomic_load_explicit(&t->c.state, memory_order_relaxed) & CTX__ERR_MASK))
		ctx__timer_disarm(t);
	return e;
}

void ctx__timer_disarm(struct ctx__timer *t)
{
	pthread_mutex_lock(&q.lock);
	if (armed(t))
		heap_remove(t);
	pthread_mutex_unlock(&q.lock);
}

void ctx__set_clock(ctx_time_t (*now)(void))
{
	ctx__clock_set_fake(now);
	ctx__timers_kick();
}

void ctx__timers_kick(void)
{
	pthread_once(&init_once, init_queue);
	pthread_mutex_lock(&q.lock);
	kick_thread();
	pthread_mutex_unlock(&q.lock);
}

int ctx__service_start(void (*fn)(void))
{
	pthread_once(&init_once, init_queue);
	pthread_mutex_lock(&q.lock);
	void (*cur)(void) = atomic_load_explicit(&service, memory_order_relaxed);
	int e = cur && cur != fn ? EBUSY : 0;
#if GOCTX_OS_POSIX
	if (!e)
		e = ring_bell_on(true);
#endif
	if (!e && !q.started)
		e = start_thread();
	if (!e)
		atomic_store_explicit(&service, fn, memory_order_relaxed);
	pthread_mutex_unlock(&q.lock);
	return e;
}

void ctx__service_wake(void)
{
	/* No lock: this runs in signal handlers. The flag is set before the
	 * kick, and the thread reads the kick before the flag. */
	atomic_store_explicit(&service_due, 1, memory_order_release);
	kick_thread();
}

size_t ctx__timers_pending(void)
{
	pthread_mutex_lock(&q.lock);
	size_t n = q.count;
	pthread_mutex_unlock(&q.lock);
	return n;
}
