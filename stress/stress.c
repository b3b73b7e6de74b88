/* stress.c: many threads doing random goctx operations on one shared tree,
 * with the invariants checked after every round.
 *
 *   goctx-stress [seconds [threads [seed]]]   (defaults: 10 s, 4 threads)
 *
 * Each round the main thread builds a random tree under a cancelable root;
 * then the worker threads, all at once, create children under random nodes
 * (racing their cancellation), cancel random nodes (with and without a
 * cause, some through a duplicated handle), read values, errs, causes and
 * done descriptors while others cancel, register and stop after-funcs, and
 * wait; short real deadlines fire during all of it. After the workers stop,
 * the main thread checks:
 *  - every context under a done one is done (ctx_wait must return), with an
 *    err and cause that either some canceller of that very node asked for,
 *    its own deadline gave, or its cancelable parent has;
 *  - value and WithoutCancel layers report what their source reports;
 *  - every done descriptor of a done context is readable (poll, timeout 0);
 *  - no after-func ran twice, none ran after a ctx_after_stop that returned
 *    true, and a ctx_after_stop that returned false found it finished
 *    (a quarter of the after-funcs cancel another node from inside fn);
 * then cancels and releases everything, checks that every after-func that
 * was not stopped ran exactly once and that every allocation was freed.
 * Workers also check, live, that err and cause appear together, that a
 * done context's descriptor is already readable (Go issue 75533), and that
 * when a ctx_cancel returns every descendant is done, even when another
 * thread had cancelled that node first. Workers get a signal every
 * millisecond, so every wait and poll is interrupted now and then; a wait
 * that returns 0 must have lasted its whole timeout.
 * Prints the operation counts at the end; exits 1 on the first violation.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "goctx.h"

#define MAXNODES 1024 /* per round */
#define MAXREGS 2048  /* per round */
#define MAXTHREADS 64
#define INITIAL 96
#define NKEYS 3
#define NCAUSES 8 /* cause ids 1..NCAUSES are 2000+id; id 0 is "no cause" */
#define ROUND_NS (30 * CTX_MILLISECOND)
#define LONG_WAIT (30 * CTX_SECOND) /* only ever reached on a bug */

#define FAIL(...)                                                                          \
	do {                                                                                   \
		fprintf(stderr, "stress.c:%d: ", __LINE__);                                        \
		fprintf(stderr, __VA_ARGS__);                                                      \
		fprintf(stderr, "\n");                                                             \
		abort();                                                                           \
	} while (0)
#define CHECK(cond, ...)                                                                   \
	do {                                                                                   \
		if (!(cond))                                                                       \
			FAIL("check failed: " #cond ": " __VA_ARGS__);                                 \
	} while (0)

/* ---- counting allocator ---- */

static atomic_long live;
static pthread_mutex_t ev_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ev_cond;

static void ev_signal(void)
{
	pthread_mutex_lock(&ev_lock);
	pthread_cond_broadcast(&ev_cond);
	pthread_mutex_unlock(&ev_lock);
}

static void *count_alloc(size_t n)
{
	void *p = malloc(n);
	if (p)
		atomic_fetch_add(&live, 1);
	return p;
}

static void count_free(void *p)
{
	free(p);
	if (atomic_fetch_sub(&live, 1) == 1)
		ev_signal();
}

static bool wait_for(bool (*pred)(void))
{
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += LONG_WAIT / CTX_SECOND;
	pthread_mutex_lock(&ev_lock);
	bool ok;
	while (!(ok = pred()))
		if (pthread_cond_timedwait(&ev_cond, &ev_lock, &until) == ETIMEDOUT) {
			ok = pred();
			break;
		}
	pthread_mutex_unlock(&ev_lock);
	return ok;
}

/* ---- the shared tree ---- */

enum kind { K_CANCEL, K_TIMER, K_VALUE, K_WITHOUT };

struct node {
	atomic_bool ready;   /* release-stored once the fields below are set */
	ctx_t *c;            /* one reference, owned by the round */
	enum kind kind;
	int parent;          /* index; -1 for the round's root */
	int cparent;         /* nearest cancelable ancestor (not through WITHOUT), -1 none */
	int tcause;          /* K_TIMER: the deadline's cause */
	ctx_time_t deadline; /* K_TIMER */
	void *expect[NKEYS]; /* ctx_value for each key */
	_Atomic(ctx_cancel_t *) handle; /* claimed with an exchange */
	atomic_uint asked;   /* bit id: some thread cancelled it with cause id */
	atomic_int fd;       /* -2 not asked yet, else what ctx_done_fd gave */
};

struct reg {
	int node;
	int target;          /* >= 0: fn cancels this node (Go's merge example) */
	unsigned target_id;  /* with cause id target_id */
	atomic_int runs;
	atomic_int in_fn;
	atomic_bool stopped; /* ctx_after_stop returned true */
	bool has_stop;
	ctx_after_t *stop;
	atomic_bool stop_done; /* the handle was given back */
};

static struct node nodes[MAXNODES];
static atomic_int nnodes;
static struct reg regs[MAXREGS];
static atomic_int nregs;
static atomic_bool round_over;
static char keys[NKEYS];
static int vals[8];

static int cause_of(unsigned id) { return id ? 2000 + (int)id : ECANCELED; }

/* Per-thread random numbers (xorshift). */
static uint64_t rnd(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

enum op {
	OP_CREATE, OP_CANCEL, OP_DUP_CANCEL, OP_READ, OP_VALUE, OP_AFTER, OP_STOP, OP_WAIT,
	OP_FD, OP_RETAIN, NOPS
};
static bool is_cancelable(const struct node *n) { return n->kind == K_CANCEL || n->kind == K_TIMER; }

/* The node whose state n reports: itself, its nearest cancelable
 * ancestor, or -1 when it can never be done. */
static int node_src(int i)
{
	return is_cancelable(&nodes[i]) ? i : nodes[i].cparent;
}

static const char *const op_name[NOPS] = {"create", "cancel", "dup+cancel", "read", "value",
                                          "after_func", "after_stop", "wait", "done_fd",
                                          "retain/release"};
static atomic_ullong op_count[NOPS];
static atomic_ullong rounds_done;

/* Weights of the operations: cancels are rare enough that a round's tree
 * lives a while, creations and reads common. */
static const unsigned op_weight[NOPS] = {
	[OP_CREATE] = 16, [OP_CANCEL] = 2, [OP_DUP_CANCEL] = 1, [OP_READ] = 20, [OP_VALUE] = 10,
	[OP_AFTER] = 10, [OP_STOP] = 8, [OP_WAIT] = 4, [OP_FD] = 4, [OP_RETAIN] = 10,
};

static enum op pick_op(uint64_t *s)
{
	unsigned total = 0;
	for (int o = 0; o < NOPS; o++)
		total += op_weight[o];
	unsigned r = (unsigned)(rnd(s) % total);
	int o = 0;
	while (r >= op_weight[o])
		r -= op_weight[o++];
	return (enum op)o;
}

/* A random ready node, or -1. */
static int pick(uint64_t *s)
{
	int n = atomic_load(&nnodes);
	if (n > MAXNODES)
		n = MAXNODES; /* add_node's failed reservations, given back soon */
	if (!n)
		return -1;
	int i = (int)(rnd(s) % (uint64_t)n);
	return atomic_load_explicit(&nodes[i].ready, memory_order_acquire) ? i : -1;
}

static void after_fn(void *arg)
{
	struct reg *r = arg;
	atomic_store(&r->in_fn, 1);
	if (atomic_load(&r->stopped))
		FAIL("after-func %d runs after ctx_after_stop returned true", (int)(r - regs));
	ctx_t *c = nodes[r->node].c;
	if (!ctx_done(c))
		FAIL("after-func %d runs on a context that is not done", (int)(r - regs));
	if (r->target >= 0) {
		/* fn may call any goctx function: cancel another node, whose own
		 * after-funcs then run here too. */
		struct node *t = &nodes[r->target];
		ctx_cancel_t *h = atomic_exchange(&t->handle, NULL);
		if (h) {
			atomic_fetch_or(&t->asked, 1u << r->target_id);
			ctx_cancel_cause(h, cause_of(r->target_id));
			if (!ctx_done(t->c))
				FAIL("node %d not done after a cancel from an after-func", r->target);
		}
	}
	int n = atomic_fetch_add(&r->runs, 1);
	if (n)
		FAIL("after-func %d ran %d times", (int)(r - regs), n + 1);
	atomic_store(&r->in_fn, 0);
	ev_signal();
}

/* Add a node under parent p; returns its index or -1 when the round is full.
 * Every cancelable node gets a handle, so cleanup can end it. */
static int add_node(int p, uint64_t *s)
{
	int i = atomic_fetch_add(&nnodes, 1);
	if (i >= MAXNODES) {
		atomic_fetch_sub(&nnodes, 1);
		return -1;
	}
	struct node *n = &nodes[i];
	struct node *pn = &nodes[p];
	n->parent = p;
	n->cparent = is_cancelable(pn) ? p : pn->kind == K_VALUE ? pn->cparent : -1;
	memcpy(n->expect, pn->expect, sizeof n->expect);
	atomic_store(&n->asked, 0);
	atomic_store(&n->fd, -2);
	n->tcause = 0;
	ctx_cancel_t *h = NULL;
	uint64_t r = rnd(s);
	switch (r % 8) {
	case 0:
	case 1:
	case 2:
		n->kind = K_CANCEL;
		n->c = ctx_with_cancel(pn->c, &h);
		break;
	case 3:
	case 4: {
		/* Mostly short real deadlines that fire during the round. */
		ctx_duration_t d = (r >> 8) % 4 == 0 ? 3600 * CTX_SECOND
		                                     : (ctx_duration_t)((r >> 16) % 3000) * CTX_MICROSECOND;
		int id = (int)((r >> 32) % (NCAUSES + 1));
		n->c = ctx_with_timeout_cause(pn->c, d, id ? cause_of((unsigned)id) : 0, &h);
		if (!n->c)
			break;
		/* Under a strictly earlier parent deadline it is a WithCancel. */
		char text[4096];
		int len = ctx_format(n->c, text, sizeof text);
		bool own = len < (int)sizeof text && len > 0 && text[len - 1] == ')';
		n->kind = own ? K_TIMER : K_CANCEL;
		ctx_deadline(n->c, &n->deadline);
		n->tcause = id ? cause_of((unsigned)id) : ETIMEDOUT;
		break;
	}
	case 5:
	case 6: {
		int k = (int)((r >> 8) % NKEYS);
		void *v = &vals[(r >> 16) % 8];
		n->kind = K_VALUE;
		n->c = ctx_with_value(pn->c, &keys[k], v, NULL);
		n->expect[k] = v;
		break;
	}
	default:
		n->kind = K_WITHOUT;
		n->c = ctx_without_cancel(pn->c);
		n->cparent = -1;
		break;
	}
	if (!n->c)
		FAIL("constructor failed: errno %d", errno);
	atomic_store(&n->handle, h);
	atomic_store_explicit(&n->ready, true, memory_order_release);
	return i;
}

/* Does cancelling node a reach node j (a at or above j's source)? */
static bool reaches(int a, int j)
{
	for (int x = node_src(j); x >= 0; x = nodes[x].cparent)
		if (x == a)
			return true;
	return false;
}

/* Right after a ctx_cancel of node a returned, even one another thread got
 * to first: every descendant made so far must be done. */
static void subtree_done(int a)
{
	int n = atomic_load(&nnodes);
	if (n > MAXNODES)
		n = MAXNODES;
	for (int j = a + 1; j < n; j++)
		if (atomic_load_explicit(&nodes[j].ready, memory_order_acquire) && reaches(a, j))
			CHECK(ctx_err(nodes[j].c) != 0, "node %d not done after ctx_cancel of %d returned",
			      j, a);
}

/* Is fd readable now (poll with timeout 0, EINTR retried)? */
static bool readable(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	int r;
	do
		r = poll(&p, 1, 0);
	while (r < 0 && errno == EINTR);
	return r == 1 && (p.revents & POLLIN);
}

/* Live checks on one context while others cancel. */
static void read_node(int i)
{
	struct node *n = &nodes[i];
	int err = ctx_err(n->c);
	int fd = atomic_load(&n->fd);
	int cause = ctx_cause(n->c);
	if (err) {
		CHECK(err == ECANCELED || err == ETIMEDOUT, "err %d", err);
		CHECK(cause != 0, "node %d: err %d but no cause", i, err);
		CHECK(ctx_done(n->c), "node %d", i);
		if (fd >= 0)
			CHECK(readable(fd), "node %d: done but its descriptor is not readable", i);
	}
	if (n->kind == K_WITHOUT)
		CHECK(err == 0 && cause == 0 && !ctx_deadline(n->c, NULL), "WithoutCancel done");
}

static void *worker(void *arg)
{
	uint64_t seed = (uint64_t)(uintptr_t)arg * 0x9E3779B97F4A7C15ull + (uint64_t)ctx_now();
	uint64_t *s = &seed;
	rnd(s);
	int mine[256], nmine = 0; /* registrations with a stop handle, not stopped yet */
	unsigned long long local[NOPS] = {0};

	while (!atomic_load_explicit(&round_over, memory_order_relaxed)) {
		int i = pick(s);
		if (i < 0)
			continue;
		struct node *n = &nodes[i];
		enum op op = pick_op(s);
		bool did = true;
		switch (op) {
		case OP_CREATE:
			did = add_node(i, s) >= 0;
			break;
		case OP_CANCEL: {
			ctx_cancel_t *h = atomic_exchange(&n->handle, NULL);
			if (!(did = h != NULL))
				break;
			unsigned id = (unsigned)(rnd(s) % (NCAUSES + 1));
			atomic_fetch_or(&n->asked, 1u << id);
			if (id)
				ctx_cancel_cause(h, cause_of(id));
			else
				ctx_cancel(h);
			CHECK(ctx_err(n->c) != 0, "node %d not done after its ctx_cancel returned", i);
			subtree_done(i);
			break;
		}
		case OP_DUP_CANCEL: {
			ctx_cancel_t *h = atomic_exchange(&n->handle, NULL);
			if (!(did = h != NULL))
				break;
			ctx_cancel_t *d = ctx_cancel_dup(h);
			CHECK(d != NULL, "ctx_cancel_dup: errno %d", errno);
			atomic_store(&n->handle, h); /* the original goes back for others */
			atomic_fetch_or(&n->asked, 1u << 0);
			ctx_cancel(d);
			CHECK(ctx_err(n->c) != 0, "node %d not done after ctx_cancel", i);
			subtree_done(i);
			break;
		}
		case OP_READ:
			read_node(i);
			break;
		case OP_VALUE:
			for (int k = 0; k < NKEYS; k++)
				CHECK(ctx_value(n->c, &keys[k]) == n->expect[k], "node %d key %d", i, k);
			break;
		case OP_AFTER: {
			int k = atomic_fetch_add(&nregs, 1);
			if (k >= MAXREGS) {
				atomic_fetch_sub(&nregs, 1);
				did = false;
				break;
			}
			struct reg *r = &regs[k];
			r->node = i;
			r->target = (rnd(s) & 3) == 0 ? pick(s) : -1;
			r->target_id = 1 + (unsigned)(rnd(s) % NCAUSES);
			r->has_stop = nmine < 256 && (rnd(s) & 1);
			int e = ctx_after_func(n->c, after_fn, r, r->has_stop ? &r->stop : NULL);
			CHECK(e == 0, "ctx_after_func: %d", e);
			if (r->has_stop)
				mine[nmine++] = k;
			break;
		}
		case OP_STOP: {
			if (!(did = nmine > 0))
				break;
			int j = (int)(rnd(s) % (uint64_t)nmine);
			struct reg *r = &regs[mine[j]];
			mine[j] = mine[--nmine];
			if (ctx_after_stop(r->stop)) {
				atomic_store(&r->stopped, true);
				CHECK(atomic_load(&r->runs) == 0, "stopped after-func had run");
			} else {
				/* It ran or is running: it must now have finished. */
				CHECK(atomic_load(&r->runs) == 1 && atomic_load(&r->in_fn) == 0,
				      "ctx_after_stop returned false before fn finished (runs %d)",
				      atomic_load(&r->runs));
			}
			atomic_store(&r->stop_done, true);
			break;
		}
		case OP_WAIT: {
			/* Signals keep arriving (see run_round): a wait that gives 0
			 * must still have lasted its whole timeout. */
			ctx_duration_t d = (rnd(s) & 1) ? 0 : 50 * CTX_MICROSECOND;
			ctx_time_t t0 = ctx_now();
			int e = (rnd(s) & 1) ? ctx_wait(n->c, d) : ctx_sleep(n->c, d);
			CHECK(e == 0 || e == ctx_err(n->c), "ctx_wait %d", e);
			if (e == 0)
				CHECK(ctx_now() - t0 >= d, "ctx_wait returned 0 after %lld of %lld ns",
				      (long long)(ctx_now() - t0), (long long)d);
			break;
		}
		case OP_FD: {
			int fd = ctx_done_fd(n->c);
			if (node_src(i) < 0) {
				CHECK(fd == -1 && errno == ENOENT, "done_fd of a never-done context");
				break;
			}
			CHECK(fd >= 0, "ctx_done_fd: errno %d", errno);
			int old = -2;
			if (!atomic_compare_exchange_strong(&n->fd, &old, fd))
				CHECK(old == fd, "ctx_done_fd changed from %d to %d", old, fd);
			if (ctx_err(n->c))
				CHECK(readable(fd), "fresh descriptor of a done context not readable");
			break;
		}
		case OP_RETAIN: {
			ctx_t *c = ctx_retain(n->c);
			read_node(i);
			ctx_release(c);
			break;
		}
		default:
			break;
		}
		local[op] += did;
	}
	/* Registrations not stopped stay pending: cleanup's cancels run them,
	 * and the main thread gives their stop handles back. */
	for (int o = 0; o < NOPS; o++)
		atomic_fetch_add(&op_count[o], local[o]);
	return NULL;
}

/* ---- round checks (workers stopped) ---- */

/* Wait until everything under a done context is done, then check causes. */
static void check_tree(void)
{
	int n = atomic_load(&nnodes);
	for (int i = 1; i < n; i++) {
		struct node *x = &nodes[i];
		int src = node_src(i);
		if (x->kind == K_TIMER && x->deadline <= ctx_now())
			CHECK(ctx_wait(x->c, LONG_WAIT) != 0, "node %d: deadline passed, never done", i);
		if (src < 0) {
			CHECK(ctx_err(x->c) == 0 && ctx_cause(x->c) == 0, "node %d never-done but done", i);
			continue;
		}
		int cp = is_cancelable(x) ? x->cparent : -1;
		if (cp >= 0 && ctx_err(nodes[cp].c)) {
			/* Its parent is done: it must be, or become so (propagation may
			 * still be running in the thread that cancelled the parent). */
			CHECK(ctx_wait(x->c, LONG_WAIT) != 0, "node %d: parent %d done, child never", i,
			      cp);
		}
		if (!is_cancelable(x)) {
			CHECK(ctx_err(x->c) == ctx_err(nodes[src].c) &&
			          ctx_cause(x->c) == ctx_cause(nodes[src].c),
			      "value node %d differs from its source %d", i, src);
			continue;
		}
		int err = ctx_err(x->c), cause = ctx_cause(x->c);
		if (!err) {
			CHECK(cause == 0, "node %d: cause without err", i);
			continue;
		}
		bool ok = false;
		unsigned asked = atomic_load(&x->asked);
		for (unsigned id = 0; id <= NCAUSES; id++)
			if ((asked & (1u << id)) && err == ECANCELED && cause == cause_of(id))
				ok = true;
		if (x->kind == K_TIMER && err == ETIMEDOUT && cause == x->tcause &&
		    x->deadline <= ctx_now())
			ok = true;
		if (cp >= 0 && err == ctx_err(nodes[cp].c) && cause == ctx_cause(nodes[cp].c))
			ok = true;
		CHECK(ok, "node %d (kind %d): err %d cause %d: nobody asked for that (asked %#x, "
		          "parent %d err %d cause %d, tcause %d)",
		      i, x->kind, err, cause, asked, cp, cp >= 0 ? ctx_err(nodes[cp].c) : 0,
		      cp >= 0 ? ctx_cause(nodes[cp].c) : 0, x->tcause);
		int fd = atomic_load(&x->fd);
		if (fd >= 0)
			CHECK(readable(fd), "node %d: done, descriptor not readable", i);
	}
}

static int settled_regs;
static bool regs_settled(void)
{
	for (int k = 0; k < settled_regs; k++) {
		struct reg *r = &regs[k];
		if (!atomic_load(&r->stopped) && ctx_done(nodes[r->node].c) &&
		    atomic_load(&r->runs) != 1)
			return false;
	}
	return true;
}
static bool nothing_live(void) { return atomic_load(&live) == 0; }

static void run_round(int nthreads, uint64_t *s)
{
	atomic_store(&nnodes, 1);
	atomic_store(&nregs, 0);
	memset(regs, 0, sizeof regs);
	ctx_cancel_t *rh;
	nodes[0].c = ctx_with_cancel(ctx_background(), &rh);
	CHECK(nodes[0].c, "root");
	nodes[0].kind = K_CANCEL;
	nodes[0].parent = nodes[0].cparent = -1;
	memset(nodes[0].expect, 0, sizeof nodes[0].expect);
	atomic_store(&nodes[0].handle, NULL);
	atomic_store(&nodes[0].asked, 0);
	atomic_store(&nodes[0].fd, -2);
	atomic_store(&nodes[0].ready, true);
	for (int k = 1; k < INITIAL; k++)
		add_node((int)(rnd(s) % (uint64_t)k), s);

	atomic_store(&round_over, false);
	pthread_t th[MAXTHREADS];
	for (int t = 0; t < nthreads; t++)
		if (pthread_create(&th[t], NULL, worker, (void *)(uintptr_t)(rnd(s) | 1)))
			FAIL("pthread_create");
	/* The round's length (not a synchronisation), with a signal to every
	 * worker each millisecond: waits must ride over EINTR. */
	ctx_time_t round_end = ctx_now() + ROUND_NS;
	while (ctx_now() < round_end) {
		for (int t = 0; t < nthreads; t++)
			pthread_kill(th[t], SIGUSR1);
		struct timespec d = {0, CTX_MILLISECOND};
		nanosleep(&d, NULL);
	}
	atomic_store(&round_over, true);
	for (int t = 0; t < nthreads; t++)
		pthread_join(th[t], NULL);

	check_tree();

	/* Cleanup: cancel the root, use every handle left, stop what was not
	 * stopped; then every after-func on a done context has run once. */
	int n = atomic_load(&nnodes);
	atomic_fetch_or(&nodes[0].asked, 1u);
	ctx_cancel(rh);
	for (int i = 1; i < n; i++) {
		ctx_cancel_t *h = atomic_exchange(&nodes[i].handle, NULL);
		if (h)
			ctx_cancel(h);
		CHECK(!is_cancelable(&nodes[i]) || ctx_done(nodes[i].c), "node %d not done", i);
	}
	settled_regs = atomic_load(&nregs);
	CHECK(wait_for(regs_settled), "an after-func of a done context never ran");
	for (int k = 0; k < settled_regs; k++) {
		struct reg *r = &regs[k];
		bool can_run = node_src(r->node) >= 0;
		CHECK(atomic_load(&r->runs) == (atomic_load(&r->stopped) || !can_run ? 0 : 1),
		      "after-func %d ran %d times (stopped %d)", k, atomic_load(&r->runs),
		      atomic_load(&r->stopped));
		if (r->has_stop && !atomic_load(&r->stop_done))
			CHECK(ctx_after_stop(r->stop) == !can_run, "final ctx_after_stop");
	}
	for (int i = n - 1; i >= 0; i--)
		ctx_release(nodes[i].c);
	ctx_flush_cache(); /* the workers have exited (their caches with them); now this one */
	CHECK(wait_for(nothing_live), "%ld allocations live after the round", atomic_load(&live));
	for (int i = 0; i < n; i++)
		atomic_store(&nodes[i].ready, false);
	atomic_fetch_add(&rounds_done, 1);
}

static void on_signal(int sig) { (void)sig; }

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 10;
	int nthreads = argc > 2 ? atoi(argv[2]) : 4;
	if (secs <= 0 || nthreads < 1 || nthreads > MAXTHREADS) {
		fprintf(stderr, "usage: %s [seconds [threads (1-%d) [seed]]]\n", argv[0], MAXTHREADS);
		return 2;
	}
	/* No SA_RESTART: interrupted system calls return EINTR. */
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	pthread_condattr_t a;
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(&ev_cond, &a);
	if (ctx_set_allocator(count_alloc, count_free) != 0)
		FAIL("ctx_set_allocator");

	/* The seed drives the main thread's trees; workers add their timing. */
	uint64_t seed = argc > 3 ? strtoull(argv[3], NULL, 10) | 1 : (uint64_t)ctx_now() | 1;
	printf("goctx-stress: %.1f s, %d threads, seed %" PRIu64 "\n", secs, nthreads, seed);
	ctx_time_t end = ctx_now() + (ctx_time_t)(secs * CTX_SECOND);
	while (ctx_now() < end)
		run_round(nthreads, &seed);

	unsigned long long total = 0;
	for (int o = 0; o < NOPS; o++) {
		unsigned long long c = atomic_load(&op_count[o]);
		printf("  %-15s %llu\n", op_name[o], c);
		total += c;
	}
	printf("goctx-stress: %llu rounds, %llu operations, all invariants held\n",
	       (unsigned long long)atomic_load(&rounds_done), total);
	return 0;
}
