/* go.c: Go's `go` statement on cached OS threads.
 *
 * Design. A goroutine here is a pthread that, once its function returns,
 * parks and waits for the next one. chan_go (and chan__go, which the
 * companions use) hands the function to the most recently parked thread
 * when there is one, and starts a new detached thread otherwise. There is
 * no bound on the number of threads: a function that blocks for ever holds
 * its own thread and nothing else, so a program that starts many blocking
 * functions cannot deadlock for want of a thread. A thread parked longer
 * than the idle time (CHAN__GO_IDLE_NS, 2 s) exits.
 *
 * A worker's record (struct worker) lives on its own thread's stack: an
 * idle thread holds no memory of the library's allocator, and nothing is
 * left to free when it exits or when the process ends with threads parked.
 * Only a new thread costs an allocation: the start record that carries the
 * first function into it, freed by the thread before the function runs.
 *
 * The idle list (pool.idle, doubly linked through next/pprev) is guarded by
 * pool.lock, a 4-byte node lock. LIFO: the thread parked last is reused
 * first (its stack and caches are warm, it is likely still spinning), and
 * the ones at the tail are the ones that reach the idle time and exit.
 *
 * A worker's `state`:
 *   W_IDLE   listed (or just popped), watching state in a short spin
 *   W_SLEEP  listed (or just popped), asleep on the futex of state
 *   W_TASK   fn/arg/then/then_arg hold work: run it
 * The starter pops the worker under pool.lock (pprev = NULL), writes the
 * task fields, then exchanges W_TASK in with release order (pairs with the
 * worker's acquire load) and wakes the worker only if it said W_SLEEP. A
 * worker that reaches its idle time takes pool.lock: still listed, it
 * unlinks itself and exits; already popped, a task is on its way and it
 * waits for it (without a time limit: the starter is between its pop and
 * its exchange).
 *
 * The hand-off slot (`hot`): the first parked worker that finds it empty
 * waits there, spinning, instead of on the list; the task fields share the
 * slot's cache line with its state, so a start that finds it there is one
 * CAS (H_WAITING -> H_CLAIMED), the task stores and one release store
 * (H_TASK), and the worker's next load sees all of it: one cache-line
 * transfer each way, against the list's lock, links and the worker's own
 * line. The worker copies the task out and empties the slot (H_EMPTY).
 * When its spin runs out it leaves the slot (CAS H_WAITING -> H_EMPTY,
 * under pool.lock, then links itself into the list in the same critical
 * section, so chan__go_parked never sees it in neither place); a failed
 * CAS means a starter claimed it: it waits for H_TASK (the starter is
 * between two stores).
 *
 * The spin is adaptive: at most half the CPUs' worth of parked workers spin
 * at once (the rest sleep at once), a worker whose spin caught a task spins
 * up to SPIN_MAX_NS next time, one whose spin ran out halves its next spin
 * (down to SPIN_MIN_NS). On a single CPU nobody spins.
 *
 * fork(): prepare takes pool.lock so the child inherits a consistent list;
 * the parked threads do not exist in the child, so the child empties the
 * list (their records are on stacks nobody runs) and unlocks. A worker that
 * called fork() from its function goes on in the child as that process's
 * cached thread.
 *
 * chan_go_start's handle: the joinable function runs through chan__go with
 * `then` marking the handle done; chan_go_join waits on that word
 * (ctx__wait_word, WAITERS protocol) and frees the handle. The finishing
 * thread's futex wake may reach the word after the joiner saw it done and
 * freed it: a wake on freed memory is at most a spurious wake for whoever
 * sleeps there now, which every futex user tolerates (glibc's own mutexes
 * have the same property).
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>

#include "goctx/chan.h"
#include "../ctx/internal.h"
#include "go.h"

#define SPIN_MAX_NS (50 * CTX_MICROSECOND)
#define SPIN_MIN_NS (2 * CTX_MICROSECOND)

enum { W_IDLE = 0, W_SLEEP = 1, W_TASK = 2 };
enum { H_EMPTY = 0, H_WAITING = 1, H_CLAIMED = 2, H_TASK = 3 };

static struct {
	_Alignas(64) _Atomic uint32_t state; /* H_*: see "The hand-off slot" */
	void (*fn)(void *);                   /* the task: written by the claimer */
	void *arg;
	void (*then)(void *);
	void *then_arg;
	char pad[64];
} hot;

struct worker {
	_Atomic uint32_t state;   /* W_IDLE, W_SLEEP, W_TASK: see above */
	struct worker *next;      /* idle list; guarded by pool.lock */
	struct worker **pprev;    /* idle list; NULL when not listed */
	void (*fn)(void *);       /* the task: written by the starter before W_TASK */
	void *arg;
	void (*then)(void *);
	void *then_arg;
	ctx_duration_t spin;      /* this worker's next spin; its own */
};

/* The start record of a new thread: its first task. */
struct start {
	void (*fn)(void *);
	void *arg;
	void (*then)(void *);
	void *then_arg;
};

static struct {
	_Atomic uint32_t lock;
	struct worker *idle;          /* guarded by lock */
	size_t parked;                /* guarded by lock */
	_Atomic size_t threads;       /* started and not yet exited */
	_Atomic int spinning;         /* workers in their park spin now */
	_Atomic ctx_duration_t idle_ns;
} pool = {.idle_ns = CHAN__GO_IDLE_NS};

static _Thread_local bool in_worker;

static void fork_prepare(void) { ctx__lock(&pool.lock); }
static void fork_parent(void) { ctx__unlock(&pool.lock); }
static void fork_child(void)
{
	/* Only this thread exists now. The lock is ours (fork_prepare); no one
	 * sleeps on it in this process. */
	pool.idle = NULL;
	pool.parked = 0;
	atomic_store(&hot.state, H_EMPTY);
	atomic_store(&pool.threads, in_worker ? 1 : 0);
	atomic_store(&pool.spinning, 0);
	atomic_store_explicit(&pool.lock, 0, memory_order_release);
}

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static void atfork_init(void) { ctx__os_atfork(fork_prepare, fork_parent, fork_child); }

static void unlink_worker(struct worker *w)
{
	*w->pprev = w->next;
	if (w->next)
		w->next->pprev = w->pprev;
	w->pprev = NULL;
	pool.parked--;
}

static void link_worker(struct worker *w)
{
	w->next = pool.idle;
	if (w->next)
		w->next->pprev = &w->next;
	w->pprev = &pool.idle;
	pool.idle = w;
	pool.parked++;
}

/* The worker in the hot slot, claimed: wait for the task, take it. */
static void take_hot(struct worker *w)
{
	unsigned n = 0;
	/* Acquire: pairs with the claimer's release store of H_TASK. */
	while (atomic_load_explicit(&hot.state, memory_order_acquire) != H_TASK) {
		if (++n % 128 == 0)
			sched_yield(); /* the claimer may have been preempted */
		else
			ctx__os_relax();
	}
	w->fn = hot.fn;
	w->arg = hot.arg;
	w->then = hot.then;
	w->then_arg = hot.then_arg;
	/* Release: the task is read before the slot is free again. */
	atomic_store_explicit(&hot.state, H_EMPTY, memory_order_release);
}

/* Wait in the hot slot for up to w->spin. true: w holds a task; false:
 * the spin ran out and w is on the list now. */
static bool park_hot(struct worker *w)
{
	ctx_time_t stop = ctx__os_now() + w->spin;
	for (;;) {
		for (int i = 0; i < 64; i++) {
			if (atomic_load_explicit(&hot.state, memory_order_relaxed) != H_WAITING) {
				take_hot(w);
				w->spin = SPIN_MAX_NS;
				return true;
			}
			ctx__os_relax();
		}
		if (ctx__os_now() >= stop)
			break;
	}
	w->spin = w->spin / 2 > SPIN_MIN_NS ? w->spin / 2 : SPIN_MIN_NS;
	atomic_store_explicit(&w->state, W_IDLE, memory_order_relaxed);
	ctx__lock(&pool.lock);
	uint32_t h = H_WAITING;
	bool left = atomic_compare_exchange_strong_explicit(&hot.state, &h, H_EMPTY,
	                                                    memory_order_relaxed,
	                                                    memory_order_relaxed);
	if (left)
		link_worker(w);
	ctx__unlock(&pool.lock);
	if (!left) {
		take_hot(w);
		return true;
	}
	return false;
}

/* After a task: list w, wait for the next task. false: the idle time
 * passed, w is unlisted, the thread exits. */
static bool park(struct worker *w)
{
	int ncpu = ctx__os_ncpu();
	int spinners = ncpu / 2 > 0 ? ncpu / 2 : 1;
	bool may_spin = ncpu > 1 &&
	                atomic_fetch_add_explicit(&pool.spinning, 1, memory_order_relaxed) < spinners;
	if (may_spin) {
		uint32_t h = H_EMPTY;
		if (atomic_compare_exchange_strong_explicit(&hot.state, &h, H_WAITING,
		                                            memory_order_relaxed,
		                                            memory_order_relaxed)) {
			bool got = park_hot(w);
			atomic_fetch_sub_explicit(&pool.spinning, 1, memory_order_relaxed);
			if (got)
				return true;
			goto sleep; /* listed by park_hot; spun already */
		}
	}

	atomic_store_explicit(&w->state, W_IDLE, memory_order_relaxed);
	ctx__lock(&pool.lock);
	link_worker(w);
	ctx__unlock(&pool.lock);

	if (may_spin) {
		ctx_time_t stop = ctx__os_now() + w->spin;
		bool got = false;
		for (;;) {
			for (int i = 0; i < 64 && !got; i++) {
				/* Acquire: pairs with the starter's release exchange. */
				if (atomic_load_explicit(&w->state, memory_order_acquire) == W_TASK)
					got = true;
				else
					ctx__os_relax();
			}
			if (got || ctx__os_now() >= stop)
				break;
		}
		atomic_fetch_sub_explicit(&pool.spinning, 1, memory_order_relaxed);
		if (got) {
			w->spin = SPIN_MAX_NS;
			return true;
		}
		w->spin = w->spin / 2 > SPIN_MIN_NS ? w->spin / 2 : SPIN_MIN_NS;
	} else {
		atomic_fetch_sub_explicit(&pool.spinning, 1, memory_order_relaxed);
	}

sleep:;
	uint32_t s = W_IDLE;
	if (!atomic_compare_exchange_strong_explicit(&w->state, &s, W_SLEEP, memory_order_acquire,
	                                             memory_order_acquire))
		return true; /* W_TASK came */
	ctx_time_t deadline =
		ctx__add_sat(ctx__os_now(), atomic_load_explicit(&pool.idle_ns, memory_order_relaxed));
	struct timespec abs = ctx__os_timespec(deadline);
	for (;;) {
		ctx__os_wait(&w->state, W_SLEEP, &abs);
		if (atomic_load_explicit(&w->state, memory_order_acquire) == W_TASK)
			return true;
		if (ctx__os_now() < deadline)
			continue; /* a signal or a spurious wake */
		ctx__lock(&pool.lock);
		bool listed = w->pprev != NULL;
		if (listed)
			unlink_worker(w);
		ctx__unlock(&pool.lock);
		if (listed)
			return false;
		/* Popped: the starter is about to hand its task over. */
		while (atomic_load_explicit(&w->state, memory_order_acquire) != W_TASK)
			ctx__os_wait(&w->state, W_SLEEP, NULL);
		return true;
	}
}

static void *worker_main(void *p)
{
	struct start *st = p;
	struct worker w = {.fn = st->fn, .arg = st->arg, .then = st->then,
	                   .then_arg = st->then_arg, .spin = SPIN_MAX_NS};
	ctx__free(st);
	in_worker = true;
	do {
		w.fn(w.arg);
		if (w.then)
			w.then(w.then_arg);
	} while (park(&w));
	/* Release: whoever sees the count drop (the tests' drain) sees all
	 * this thread did. */
	atomic_fetch_sub_explicit(&pool.threads, 1, memory_order_release);
	return NULL;
}

int chan__go(void (*fn)(void *arg), void *arg, void (*then)(void *then_arg), void *then_arg)
{
	pthread_once(&atfork_once, atfork_init);
	uint32_t h = H_WAITING;
	if (atomic_load_explicit(&hot.state, memory_order_relaxed) == H_WAITING &&
	    atomic_compare_exchange_strong_explicit(&hot.state, &h, H_CLAIMED, memory_order_acquire,
	                                            memory_order_relaxed)) {
		hot.fn = fn;
		hot.arg = arg;
		hot.then = then;
		hot.then_arg = then_arg;
		/* Release: the task before H_TASK, for take_hot's acquire. */
		atomic_store_explicit(&hot.state, H_TASK, memory_order_release);
		return 0;
	}
	ctx__lock(&pool.lock);
	struct worker *w = pool.idle;
	if (w)
		unlink_worker(w);
	ctx__unlock(&pool.lock);
	if (w) {
		w->fn = fn;
		w->arg = arg;
		w->then = then;
		w->then_arg = then_arg;
		/* Release: the task fields before the state, for the worker's
		 * acquire load. */
		if (atomic_exchange_explicit(&w->state, W_TASK, memory_order_release) == W_SLEEP)
			ctx__os_wake(&w->state, 1);
		return 0;
	}

	struct start *st = ctx__alloc(sizeof(*st));
	if (!st)
		return ENOMEM;
	*st = (struct start){fn, arg, then, then_arg};
	pthread_attr_t attr;
	int err = pthread_attr_init(&attr);
	if (err) {
		ctx__free(st);
		return err;
	}
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	atomic_fetch_add_explicit(&pool.threads, 1, memory_order_relaxed);
	pthread_t tid;
	err = pthread_create(&tid, &attr, worker_main, st);
	pthread_attr_destroy(&attr);
	if (err) {
		atomic_fetch_sub_explicit(&pool.threads, 1, memory_order_relaxed);
		ctx__free(st); /* the thread never started: still ours */
	}
	return err;
}

int chan_go(void (*fn)(void *arg), void *arg)
{
	if (!fn)
		return EINVAL;
	return chan__go(fn, arg, NULL, NULL);
}

/* ---- joinable ---- */

#define H_DONE 1u

struct chan_go {
	_Atomic uint32_t done;  /* H_DONE once fn returned; CTX__WAITERS: a joiner sleeps */
	void (*fn)(void *);     /* fixed */
	void *arg;              /* fixed */
};

/* The handle whose function this thread runs now (EDEADLK in join). */
static _Thread_local struct chan_go *running;

static void joinable_run(void *p)
{
	struct chan_go *g = p;
	running = g;
	g->fn(g->arg);
	running = NULL;
}

static void joinable_done(void *p)
{
	struct chan_go *g = p;
	/* Release: fn's writes before done, for the joiner's acquire. */
	if (atomic_exchange_explicit(&g->done, H_DONE, memory_order_release) & CTX__WAITERS)
		ctx__os_wake(&g->done, INT_MAX);
}

int chan_go_start(chan_go_t **handle, void (*fn)(void *arg), void *arg)
{
	if (!handle || !fn)
		return EINVAL;
	*handle = NULL;
	struct chan_go *g = ctx__alloc(sizeof(*g));
	if (!g)
		return ENOMEM;
	atomic_init(&g->done, 0);
	g->fn = fn;
	g->arg = arg;
	int err = chan__go(joinable_run, g, joinable_done, g);
	if (err) {
		ctx__free(g);
		return err;
	}
	*handle = g;
	return 0;
}

static bool is_done(uint32_t s) { return s & H_DONE; }

int chan_go_join(chan_go_t *handle)
{
	if (!handle)
		return EINVAL;
	if (handle == running)
		return EDEADLK; /* joining oneself: the handle stays valid */
	ctx__wait_word(&handle->done, is_done, -1);
	ctx__free(handle);
	return 0;
}

/* ---- for the tests ---- */

void chan__go_set_idle(ctx_duration_t d)
{
	atomic_store_explicit(&pool.idle_ns, d > 0 ? d : CHAN__GO_IDLE_NS, memory_order_relaxed);
}

size_t chan__go_threads(void) { return atomic_load_explicit(&pool.threads, memory_order_acquire); }

size_t chan__go_parked(void)
{
	ctx__lock(&pool.lock);
	size_t n = pool.parked + (atomic_load(&hot.state) == H_WAITING);
	ctx__unlock(&pool.lock);
	return n;
}
