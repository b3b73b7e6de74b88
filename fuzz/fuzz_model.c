/* fuzz_model.c: a libFuzzer target that runs its input as a program of goctx
 * operations and checks every observable against a small single-threaded
 * model of Go's context semantics.
 *
 * The input is read one byte at a time (0 once it runs out): an opcode, then
 * its arguments. The model (`M`) mirrors each context the program made:
 * kind, parent, references, cancel handles, deadline, err/cause, values,
 * after-func registrations. After every operation each context the program
 * still holds a reference to is checked: err, done, cause, wait(0),
 * deadline, values, the whole ctx_format text (the time inside
 * WithDeadline(...) excepted), the done descriptor, the number of entries
 * its cancelable ancestor lists, the number of armed timers, how often each
 * after-func ran and how often each free_val was called.
 *
 * Time is a fake clock (ctx__set_clock). Letting time pass moves it, kicks
 * the timer thread, waits with ctx_wait on what must now be done, and then
 * waits for a sentinel deadline one nanosecond later to fire: the timer
 * thread is one thread firing due deadlines in order, so once the
 * sentinel's after-func runs, everything due before it has been handled in
 * full. The clock then goes back to the model's time (model deadlines are
 * whole multiples of UNIT, the sentinel never is).
 *
 * Every allocation goes through a counting allocator (installed once); at
 * the end of each input everything is released and the live count must
 * return to zero. An opcode can also make the next allocation fail.
 *
 * ctx_with_merge is modelled as a node with several parents for
 * cancellation (K_MERGED: its tree parent, plus each other whose anchor can
 * be done, which holds the other alive while the merged node is live and
 * not done). To keep the outcome independent of the order the library runs
 * a cancellation's after-funcs and merged nodes in, merged nodes and
 * merge after-funcs (R_MERGE) are not made in the same input while the
 * other kind is around, and deadlines under a merged node are never equal
 * to another armed one.
 *
 * Built without libFuzzer (GOCTX_FUZZ_STANDALONE), main() replays the files
 * and directories named on the command line.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "goctx.h"
#include "ctx/testing.h"

#define MAXN 40 /* contexts per input, the two roots included */
#define MAXH 40 /* cancel handles per input */
#define MAXR 40 /* after-func registrations per input */
#define NKEYS 4
#define NVALS 4
#define UNIT ((ctx_time_t)1000)
#define BASE ((ctx_time_t)1000000 * UNIT)
#define REAL_WAIT (20 * CTX_SECOND) /* generous: only reached on a bug */

/* ---- failing, counting allocator ---- */

static atomic_long n_alloc, n_free;
static atomic_int fail_next;

/* Wakes waiters for "live allocations reached zero" and "an after-func
 * ran"; both may happen in the timer thread. */
static pthread_mutex_t ev_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ev_cond;

static void ev_signal(void)
{
	pthread_mutex_lock(&ev_lock);
	pthread_cond_broadcast(&ev_cond);
	pthread_mutex_unlock(&ev_lock);
}

static void *count_alloc(size_t size)
{
	if (atomic_exchange(&fail_next, 0))
		return NULL;
	void *p = malloc(size);
	if (p)
		atomic_fetch_add(&n_alloc, 1);
	return p;
}

static void count_free(void *p)
{
	if (!p)
		return;
	free(p);
	long f = atomic_fetch_add(&n_free, 1) + 1;
	if (f == atomic_load(&n_alloc))
		ev_signal();
}

static long live_allocs(void) { return atomic_load(&n_alloc) - atomic_load(&n_free); }

/* ---- failure report: abort, so libFuzzer saves the input ---- */


#define CHECK(cond, ...)                                                                   \
	do {                                                                                   \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "fuzz_model.c:%d: check failed: %s\n  ", __LINE__, #cond);      \
			fprintf(stderr, __VA_ARGS__);                                                  \
			fprintf(stderr, "\n");                                                         \
			abort();                                                                       \
		}                                                                                  \
	} while (0)

/* GOCTX_FUZZ_TRACE=1 prints each operation (to read a crash input). */
static bool trace;
#define TRACE(...)                                                                         \
	do {                                                                                   \
		if (trace)                                                                         \
			fprintf(stderr, __VA_ARGS__);                                                  \
	} while (0)

/* ---- fake clock ---- */

static _Atomic ctx_time_t fake_now;
static ctx_time_t fake_clock(void) { return atomic_load(&fake_now); }

/* ---- model ---- */

enum kind { K_BG, K_TODO, K_CANCEL, K_TIMER, K_VALUE, K_WITHOUT, K_MERGED };
static const char *const kind_name[] = {"Background", "TODO",          "WithCancel", "WithDeadline",
                                        "WithValue",  "WithoutCancel", "WithMerge"};
#define MAXO 3 /* others of a merged node */

struct mnode {
	ctx_t *c;
	enum kind kind;
	int parent;
	int refs;     /* references the program holds */
	int handles;  /* cancel handles not used yet */
	bool freed;   /* the model says the library freed it */
	/* K_TIMER */
	ctx_time_t deadline;
	int tcause; /* the deadline's cause (ETIMEDOUT when none given) */
	bool armed;
	/* K_CANCEL, K_TIMER */
	int err, cause;
	/* K_VALUE */
	int key, val; /* val: index into vals, NVALS for NULL */
	bool has_free;
	int fd; /* -1 until ctx_done_fd gave one */
	/* K_MERGED */
	int others[MAXO], nothers;
	bool has_mdl;      /* the others' earliest deadline */
	ctx_time_t mdl;
};

struct mhandle {
	ctx_cancel_t *h;
	int node;
	bool used;
	int owner; /* -1, or the merge registration that will use it */
};

/* What an after-func does besides counting: cancel another context through
 * a handle it owns (Go's ExampleAfterFunc_merge), or stop itself from
 * inside fn (which must return false at once). */
enum rkind { R_COUNT, R_MERGE, R_SELF_STOP };

struct mreg {
	enum rkind kind;
	int merge_h;     /* R_MERGE: the handle fn cancels with merge_cause */
	int merge_cause;
	int node;
	ctx_t *ctx; /* for the callback, which may run in the timer thread */
	ctx_after_t *stop;
	bool has_stop;
	bool pending; /* registered on a context that can be done, not run or stopped */
	bool inert;   /* on a context that can never be done, not stopped */
	int expect_runs;
	atomic_int runs;
	atomic_int bad; /* the callback saw a context that was not done */
};

static struct mnode M[MAXN];
static int nn;
static struct mhandle H[MAXH];
static int nh;
static struct mreg R[MAXR];
static int nr;
static ctx_time_t T; /* the model's time: what fake_now shows between operations */

static char keys[NKEYS];
static int vals[NVALS];
static atomic_int freed_vals[NVALS + 1];
static int expect_freed_vals[NVALS + 1];

static void *val_ptr(int v) { return v == NVALS ? NULL : &vals[v]; }

static void free_val(void *p)
{
	int v = p ? (int)((int *)p - vals) : NVALS;
	atomic_fetch_add(&freed_vals[v], 1);
}

static bool cancelable(int i)
{
	return M[i].kind == K_CANCEL || M[i].kind == K_TIMER || M[i].kind == K_MERGED;
}

static int anchor(int i);

/* Does cancelling anchor a reach x through one of x's merge entries? */
static bool merged_into(int a, int x)
{
	if (M[x].kind != K_MERGED)
		return false;
	for (int k = 0; k < M[x].nothers; k++)
		if (anchor(M[x].others[k]) == a)
			return true;
	return false;
}

/* Live merged nodes, pending merge after-funcs. */
static bool any_merged(void);
static bool any_merge_reg(void);

/* The nearest cancelable context at or above i, or -1 if i can never be done. */
static int anchor(int i)
{
	while (M[i].kind == K_VALUE)
		i = M[i].parent;
	return cancelable(i) ? i : -1;
}

static int m_err(int i)
{
	int a = anchor(i);
	return a < 0 ? 0 : M[a].err;
}

static int m_cause(int i)
{
	int a = anchor(i);
	return a < 0 || !M[a].err ? 0 : M[a].cause;
}

static bool m_deadline(int i, ctx_time_t *d)
{
	bool have = false;
	ctx_time_t best = 0;
	for (;;) {
		switch (M[i].kind) {
		case K_TIMER:
			best = have && best < M[i].deadline ? best : M[i].deadline;
			*d = best;
			return true;
		case K_MERGED:
			if (M[i].has_mdl) {
				best = have && best < M[i].mdl ? best : M[i].mdl;
				have = true;
			}
			/* fall through */
		case K_CANCEL:
		case K_VALUE:
			i = M[i].parent;
			break;
		default:
			if (have)
				*d = best;
			return have;
		}
	}
}

static void *m_value(int i, int key)
{
	for (;;) {
		if (M[i].kind == K_BG || M[i].kind == K_TODO)
			return NULL;
		if (M[i].kind == K_VALUE && M[i].key == key)
			return val_ptr(M[i].val);
		i = M[i].parent;
	}
}

/* Cancel i and its cancelable descendants (Go's cancelCtx.cancel). */
/* Merge after-funcs due to run, in order (they run once the cancellation
 * that triggered them is complete). */
static int merge_q[MAXR], merge_qn;

static void m_cancel(int i, int err, int cause)
{
	if (M[i].err)
		return;
	M[i].err = err;
	M[i].cause = cause;
	M[i].armed = false;
	for (int r = 0; r < nr; r++) {
		if (R[r].pending && anchor(R[r].node) == i) {
			R[r].pending = false;
			R[r].expect_runs = 1;
			if (R[r].kind == R_MERGE)
				merge_q[merge_qn++] = r;
			if (R[r].kind == R_SELF_STOP)
				R[r].has_stop = false; /* fn used it */
		}
	}
	for (int x = i + 1; x < nn; x++)
		if (!M[x].freed && cancelable(x) && (anchor(M[x].parent) == i || merged_into(i, x)))
			m_cancel(x, err, cause);
}

/* One cancellation as a caller sees it: the subtree, then the after-funcs
 * it ran, and whatever their cancels ran in turn. Pending merges have
 * targets in disjoint subtrees (op_after_func sees to it), so their order
 * does not change the outcome. */
static void m_run_merges(void)
{
	for (int q = 0; q < merge_qn; q++) {
		struct mreg *r = &R[merge_q[q]];
		struct mhandle *h = &H[r->merge_h];
		h->used = true;
		M[h->node].handles--;
		m_cancel(h->node, ECANCELED, r->merge_cause);
	}
	merge_qn = 0;
}

static void m_cancel_op(int i, int err, int cause)
{
	m_cancel(i, err, cause);
	m_run_merges();
}

/* A context is freed once nothing holds it: no reference, no cancel handle,
 * no pending registration, no live child. Children come after parents. */
static void m_collect(void)
{
	int kids[MAXN] = {0};
	for (int r = 0; r < nr; r++)
		if (R[r].pending)
			kids[R[r].node]++;
	for (int i = nn - 1; i >= 2; i--) {
		if (M[i].freed)
			continue;
		if (M[i].refs || M[i].handles || kids[i]) {
			kids[M[i].parent]++;
			/* A live merged node holds its others. */
			if (M[i].kind == K_MERGED && !M[i].err)
				for (int k = 0; k < M[i].nothers; k++)
					if (anchor(M[i].others[k]) >= 0)
						kids[M[i].others[k]]++;
			continue;
		}
		M[i].freed = true;
		M[i].armed = false;
		if (M[i].kind == K_VALUE && M[i].has_free)
			expect_freed_vals[M[i].val]++;
	}
}

/* Entries the nearest cancelable ancestor-or-self of i lists. */
static size_t m_children(int i)
{
	int a = anchor(i);
	if (a < 0 || M[a].err)
		return 0;
	size_t n = 0;
	for (int x = a + 1; x < nn; x++) {
		if (!M[x].freed && cancelable(x) && !M[x].err && anchor(M[x].parent) == a)
			n++;
		/* One entry per other that anchors at a. */
		if (!M[x].freed && M[x].kind == K_MERGED && !M[x].err)
			for (int k = 0; k < M[x].nothers; k++)
				n += anchor(M[x].others[k]) == a;
	}
	for (int r = 0; r < nr; r++)
		if (R[r].pending && anchor(R[r].node) == a)
			n++;
	return n;
}

static size_t m_armed(void)
{
	size_t n = 0;
	for (int i = 2; i < nn; i++)
		n += M[i].armed;
	return n;
}

/* The expected ctx_format text; '\1' stands for the time text inside a
 * WithDeadline(...), which matches anything up to the next "])". */
static void m_format(int i, char *buf, size_t size)
{
	if (M[i].kind == K_BG || M[i].kind == K_TODO) {
		snprintf(buf, size, "context.%s", kind_name[M[i].kind]);
		return;
	}
	m_format(M[i].parent, buf, size);
	size_t len = strlen(buf);
	switch (M[i].kind) {
	case K_TIMER:
		snprintf(buf + len, size - len, ".WithDeadline(\1])");
		break;
	case K_MERGED:
		snprintf(buf + len, size - len, ".WithMerge(%d)", M[i].nothers);
		break;
	case K_VALUE:
		/* A NULL value prints as Go prints nil. */
		if (M[i].val == NVALS)
			snprintf(buf + len, size - len, ".WithValue(%p, <nil>)", (void *)&keys[M[i].key]);
		else
			snprintf(buf + len, size - len, ".WithValue(%p, %p)", (void *)&keys[M[i].key],
			         val_ptr(M[i].val));
		break;
	default:
		snprintf(buf + len, size - len, ".%s", kind_name[M[i].kind]);
		break;
	}
}

static bool format_matches(const char *pat, const char *s)
{
	for (; *pat; pat++) {
		if (*pat == '\1') {
			const char *end = strstr(s, "])");
			if (!end)
				return false;
			s = end;
			continue;
		}
		if (*s++ != *pat)
			return false;
	}
	return *s == '\0';
}

/* ---- after-func callbacks ---- */

static void after_cb(void *arg)
{
	struct mreg *r = arg;
	/* The registration keeps ctx alive until this has run. */
	if (!ctx_done(r->ctx) || ctx_cause(r->ctx) == 0)
		atomic_fetch_add(&r->bad, 1);
	if (r->kind == R_MERGE)
		ctx_cancel_cause(H[r->merge_h].h, r->merge_cause);
	if (r->kind == R_SELF_STOP && ctx_after_stop(r->stop))
		atomic_fetch_add(&r->bad, 1); /* inside fn: false, and no wait */
	atomic_fetch_add(&r->runs, 1);
	ev_signal();
}

static atomic_bool sentinel_ran;

static void sentinel_cb(void *arg)
{
	(void)arg;
	atomic_store(&sentinel_ran, true);
	ev_signal();
}

/* Wait (bounded by REAL_WAIT) until pred() holds; false on timeout. */
static bool wait_for(bool (*pred)(void))
{
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += REAL_WAIT / CTX_SECOND;
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

static bool sentinel_done(void) { return atomic_load(&sentinel_ran); }
static bool no_live_allocs(void) { return live_allocs() == 0; }
static bool afters_settled(void)
{
	for (int r = 0; r < nr; r++)
		if (atomic_load(&R[r].runs) != R[r].expect_runs)
			return false;
	return true;
}

/* ---- checks ---- */

static void check_node(int i)
{
	ctx_t *c = M[i].c;
	int err = m_err(i), cause = m_cause(i);
	CHECK(ctx_err(c) == err, "node %d (%s): err %d, model %d", i, kind_name[M[i].kind],
	      ctx_err(c), err);
	CHECK(ctx_done(c) == (err != 0), "node %d: done %d, model err %d", i, ctx_done(c), err);
	CHECK(ctx_cause(c) == cause, "node %d (%s): cause %d, model %d", i, kind_name[M[i].kind],
	      ctx_cause(c), cause);
	CHECK(ctx_wait(c, 0) == err, "node %d: wait(0) %d, model %d", i, ctx_wait(c, 0), err);

	ctx_time_t d = 0, md = 0;
	bool has = ctx_deadline(c, &d), mhas = m_deadline(i, &md);
	CHECK(has == mhas && (!has || d == md), "node %d: deadline %d/%" PRId64 ", model %d/%" PRId64,
	      i, has, d, mhas, md);
	CHECK(ctx_deadline(c, NULL) == mhas, "node %d: deadline(NULL)", i);

	for (int k = 0; k < NKEYS; k++)
		CHECK(ctx_value(c, &keys[k]) == m_value(i, k), "node %d: value of key %d: %p, model %p",
		      i, k, ctx_value(c, &keys[k]), m_value(i, k));
	CHECK(ctx_value(c, &vals[0]) == NULL, "node %d: value of a key never used", i);

	static char got[8192], want[8192];
	int len = ctx_format(c, got, sizeof got);
	m_format(i, want, sizeof want);
	CHECK(len >= 0 && (size_t)len == strlen(got) && format_matches(want, got),
	      "node %d: format \"%s\" (len %d), model \"%s\"", i, got, len, want);
	CHECK(ctx_format(c, NULL, 0) == len, "node %d: format(NULL, 0) length", i);

	size_t kids = ctx__children_count(c), mkids = m_children(i);
	CHECK(kids == mkids, "node %d (%s): children_count %zu, model %zu", i, kind_name[M[i].kind],
	      kids, mkids);

	if (M[i].fd >= 0) {
		struct pollfd p = {.fd = M[i].fd, .events = POLLIN};
		int r;
		do /* libFuzzer's timeout alarm may interrupt it */
			r = poll(&p, 1, 0);
		while (r < 0 && errno == EINTR);
		CHECK(r == (err ? 1 : 0) && (!err || (p.revents & POLLIN)),
		      "node %d: done fd poll %d revents %x, model err %d", i, r, p.revents, err);
	}
}

static void check_all(void)
{
	for (int i = 0; i < nn; i++)
		if (M[i].refs)
			check_node(i);
	CHECK(ctx__timers_pending() == m_armed(), "timers pending %zu, model %zu",
	      ctx__timers_pending(), m_armed());
	for (int r = 0; r < nr; r++) {
		CHECK(atomic_load(&R[r].runs) == R[r].expect_runs, "after-func %d ran %d times, model %d",
		      r, atomic_load(&R[r].runs), R[r].expect_runs);
		CHECK(atomic_load(&R[r].bad) == 0, "after-func %d ran on a context not done", r);
	}
	for (int v = 0; v <= NVALS; v++)
		CHECK(atomic_load(&freed_vals[v]) == expect_freed_vals[v],
		      "free_val(val %d) called %d times, model %d", v, atomic_load(&freed_vals[v]),
		      expect_freed_vals[v]);
}

/* ---- the input ---- */

static const uint8_t *in;
static size_t in_left;

static unsigned next(void)
{
	if (!in_left)
		return 0;
	in_left--;
	return *in++;
}

/* A context the program holds a reference to (the roots always). */
static int pick_node(void)
{
	int live[MAXN], n = 0;
	for (int i = 0; i < nn; i++)
		if (M[i].refs)
			live[n++] = i;
	return live[next() % n];
}

static int pick_handle(void)
{
	int live[MAXH], n = 0;
	for (int i = 0; i < nh; i++)
		if (!H[i].used && H[i].owner < 0)
			live[n++] = i;
	return n ? live[next() % n] : -1;
}

static ctx_time_t add_sat(ctx_time_t a, ctx_time_t b)
{
	ctx_time_t r;
	if (__builtin_add_overflow(a, b, &r))
		return b > 0 ? INT64_MAX : INT64_MIN;
	return r;
}

static int pick_cause(void)
{
	unsigned b = next() % 6;
	return b < 2 ? 0 : 1000 + (int)b;
}

static int new_node(ctx_t *c, enum kind kind, int parent)
{
	int i = nn++;
	M[i] = (struct mnode){.c = c, .kind = kind, .parent = parent, .refs = 1, .fd = -1};
	/* Born done under a done parent. */
	int a = anchor(parent);
	if (cancelable(i) && a >= 0 && M[a].err) {
		M[i].err = M[a].err;
		M[i].cause = M[a].cause;
	}
	return i;
}

static void new_handle(ctx_cancel_t *h, int node)
{
	CHECK(h != NULL, "no cancel handle");
	TRACE("  h%d is a handle of n%d\n", nh, node);
	H[nh++] = (struct mhandle){.h = h, .node = node, .owner = -1};
	M[node].handles++;
}

/* A constructor returned NULL: only allowed when the fuzzer failed an
 * allocation on purpose. */
static bool failed(ctx_t *c, bool failing)
{
	if (c)
		return false;
	CHECK(failing && errno == ENOMEM, "constructor failed, errno %d", errno);
	return true;
}

static void op_with_cancel(bool failing)
{
	int p = pick_node();
	bool want = next() & 1;
	ctx_cancel_t *h = NULL;
	ctx_t *c = ctx_with_cancel(M[p].c, want ? &h : NULL);
	if (failed(c, failing))
		return;
	int i = new_node(c, K_CANCEL, p);
	TRACE("n%d = with_cancel(n%d)%s\n", i, p, want ? " +handle" : "");
	if (want)
		new_handle(h, i);
}

static bool cancels_into(int a, int b);

/* Is x under the target of a pending merge after-func? */
static bool merge_covers(int x)
{
	for (int r = 0; r < nr; r++)
		if (R[r].kind == R_MERGE && R[r].pending && cancels_into(H[R[r].merge_h].node, x))
			return true;
	return false;
}

/* No armed deadline equals d, but those on p's own chain, and not even
 * those under a merge's target: a merge fired by one of two equal
 * deadlines could otherwise cancel the other first, or not. */
static bool tie_free(int p, ctx_time_t d)
{
	int a = anchor(p);
	bool strict = a >= 0 && (merge_covers(a) || any_merged());
	for (int j = 2; j < nn; j++)
		if (M[j].armed && M[j].deadline == d && (strict || !cancels_into(j, a)))
			return false;
	return true;
}

/* Does the subtree of b hold an armed deadline equal to another one? */
static bool holds_tie(int b)
{
	for (int x = 2; x < nn; x++)
		if (M[x].armed && cancels_into(b, x))
			for (int y = 2; y < nn; y++)
				if (y != x && M[y].armed && M[y].deadline == M[x].deadline)
					return true;
	return false;
}

/* ctx_with_deadline/_timeout(_cause), by the model's rules. */
static void op_with_deadline(bool failing, bool timeout)
{
	int p = pick_node();
	unsigned how = next();
	bool want = how & 1, with_cause = how & 2;
	int cause = with_cause ? pick_cause() : 0;
	ctx_time_t pd = 0, d;
	bool has_pd = m_deadline(p, &pd);
	ctx_duration_t dur = 0;

	unsigned sel = next();
	if (timeout) {
		static const ctx_duration_t special[] = {INT64_MAX, INT64_MIN, CTX_FOREVER, -UNIT, 0};
		if (sel % 8 < 5)
			dur = special[sel % 8];
		else
			dur = (ctx_duration_t)(next() % 48) * UNIT;
		d = add_sat(T, dur);
	} else if (has_pd && sel % 4 == 0) {
		d = add_sat(pd, ((ctx_time_t)(next() % 3) - 1) * UNIT); /* around the parent's */
	} else if (sel % 16 == 1) {
		d = (sel & 16) ? INT64_MAX : INT64_MIN;
	} else {
		d = T + ((ctx_time_t)(next() % 48) - 4) * UNIT;
	}

	enum kind kind = has_pd && pd < d ? K_CANCEL : K_TIMER;
	/* Equal deadlines fire in an order the contract leaves open; across
	 * the tree that order shows once an after-func cancels elsewhere.
	 * Keep armed deadlines distinct except along one chain (below). */
	while (kind == K_TIMER && d > T && d != INT64_MAX && !tie_free(p, d)) {
		d = add_sat(d, UNIT);
		dur = add_sat(dur, UNIT);
		kind = has_pd && pd < d ? K_CANCEL : K_TIMER;
	}
	if (kind == K_TIMER) {
		/* Two armed deadlines equal along one chain with different causes
		 * would fire in an order the contract leaves open: make the causes
		 * the same. */
		for (int a = anchor(p); a >= 0; a = anchor(M[a].parent))
			if (M[a].kind == K_TIMER && M[a].armed && M[a].deadline == d && with_cause)
				cause = M[a].tcause;
		if (with_cause == false)
			for (int a = anchor(p); a >= 0; a = anchor(M[a].parent))
				if (M[a].kind == K_TIMER && M[a].armed && M[a].deadline == d &&
				    M[a].tcause != ETIMEDOUT) {
					with_cause = true;
					cause = M[a].tcause;
				}
	}

	ctx_cancel_t *h = NULL, **hp = want ? &h : NULL;
	ctx_t *c;
	if (timeout)
		c = with_cause ? ctx_with_timeout_cause(M[p].c, dur, cause, hp)
		               : ctx_with_timeout(M[p].c, dur, hp);
	else
		c = with_cause ? ctx_with_deadline_cause(M[p].c, d, cause, hp)
		               : ctx_with_deadline(M[p].c, d, hp);
	if (failed(c, failing))
		return;
	int i = new_node(c, kind, p);
	if (kind == K_TIMER) {
		M[i].deadline = d;
		M[i].tcause = cause ? cause : ETIMEDOUT;
		if (!M[i].err) {
			if (d <= T) {
				M[i].err = ETIMEDOUT;
				M[i].cause = M[i].tcause;
			} else {
				M[i].armed = true;
			}
		}
	}
	TRACE("n%d = %s%s(n%d, %" PRId64 " (T=%" PRId64 "), cause %d) -> %s\n", i,
	      timeout ? "timeout" : "deadline", with_cause ? "_cause" : "", p, d, T, cause,
	      kind_name[kind]);
	if (want)
		new_handle(h, i);
}

static void op_with_value(bool failing)
{
	int p = pick_node();
	unsigned b = next();
	int key = (int)(b % NKEYS), val = (int)((b / NKEYS) % (NVALS + 1));
	bool has_free = b & 0x80;
	ctx_t *c = ctx_with_value(M[p].c, &keys[key], val_ptr(val), has_free ? free_val : NULL);
	if (failed(c, failing))
		return;
	int i = new_node(c, K_VALUE, p);
	TRACE("n%d = with_value(n%d, key %d, val %d, free %d)\n", i, p, key, val, has_free);
	M[i].key = key;
	M[i].val = val;
	M[i].has_free = has_free;
}

static void op_without_cancel(bool failing)
{
	int p = pick_node();
	ctx_t *c = ctx_without_cancel(M[p].c);
	if (failed(c, failing))
		return;
	int i = new_node(c, K_WITHOUT, p);
	TRACE("n%d = without_cancel(n%d)\n", i, p);
}

static bool any_merged(void)
{
	for (int i = 2; i < nn; i++)
		if (M[i].kind == K_MERGED && !M[i].freed)
			return true;
	return false;
}

static bool any_merge_reg(void)
{
	for (int r = 0; r < nr; r++)
		if (R[r].kind == R_MERGE && (R[r].pending || R[r].has_stop))
			return true;
	return false;
}

/* ctx_with_merge(parent, others, n): n == 0 is a WithCancel. */
static void op_with_merge(bool failing)
{
	int p = pick_node();
	unsigned how = next();
	bool want = how & 1;
	int n = (int)((how >> 1) % (MAXO + 1));
	if (n > 0 && any_merge_reg())
		return; /* see the top of the file */
	/* No two armed deadlines equal anywhere once a merged node exists. */
	for (int x = 2; n > 0 && x < nn; x++)
		for (int y = x + 1; y < nn; y++)
			if (M[x].armed && M[y].armed && M[x].deadline == M[y].deadline)
				return;
	int o[MAXO];
	ctx_t *oc[MAXO];
	for (int k = 0; k < n; k++) {
		o[k] = pick_node();
		oc[k] = M[o[k]].c;
	}
	ctx_cancel_t *h = NULL;
	ctx_t *c = ctx_with_merge(M[p].c, oc, (size_t)n, want ? &h : NULL);
	if (failed(c, failing))
		return;
	int i = new_node(c, n ? K_MERGED : K_CANCEL, p);
	M[i].nothers = n;
	for (int k = 0; k < n; k++) {
		M[i].others[k] = o[k];
		ctx_time_t d;
		if (m_deadline(o[k], &d) && (!M[i].has_mdl || d < M[i].mdl)) {
			M[i].mdl = d;
			M[i].has_mdl = true;
		}
		/* Born done with the first done one: parent, others[0], ... */
		if (!M[i].err && m_err(o[k])) {
			M[i].err = m_err(o[k]);
			M[i].cause = m_cause(o[k]);
		}
	}
	TRACE("n%d = with_merge(n%d, %d others)%s\n", i, p, n, want ? " +handle" : "");
	if (want)
		new_handle(h, i);
}

static void op_cancel(void)
{
	int h = pick_handle();
	if (h < 0)
		return;
	unsigned how = next() % 3;
	int n = H[h].node, cause = how == 2 ? pick_cause() : 0;
	if (how == 0)
		ctx_cancel(H[h].h);
	else
		ctx_cancel_cause(H[h].h, cause);
	H[h].used = true;
	M[n].handles--;
	TRACE("cancel h%d (n%d) how %u cause %d\n", h, n, how, cause);
	m_cancel_op(n, ECANCELED, cause ? cause : ECANCELED);
}

static void op_cancel_dup(void)
{
	int h = pick_handle();
	if (h < 0 || nh == MAXH)
		return;
	ctx_cancel_t *d = ctx_cancel_dup(H[h].h);
	CHECK(d != NULL, "ctx_cancel_dup failed: errno %d", errno);
	new_handle(d, H[h].node);
	TRACE("h%d = dup h%d\n", nh - 1, h);
}

static void op_release(void)
{
	int i = pick_node();
	ctx_release(M[i].c);
	TRACE("release n%d\n", i);
	if (i >= 2)
		M[i].refs--;
}

static void op_retain(void)
{
	int i = pick_node();
	CHECK(ctx_retain(M[i].c) == M[i].c, "ctx_retain returned another pointer");
	if (i >= 2)
		M[i].refs++;
}

/* Could cancellation still reach a (not done) through a handle the
 * program will use, or a timer? */
static bool can_end(int a)
{
	for (; a >= 0; a = anchor(M[a].parent)) {
		if (M[a].armed)
			return true;
		for (int h = 0; h < nh; h++)
			if (H[h].node == a && !H[h].used && H[h].owner < 0)
				return true;
		if (M[a].kind == K_MERGED)
			for (int k = 0; k < M[a].nothers; k++)
				if (can_end(anchor(M[a].others[k])))
					return true;
	}
	return false;
}

/* Is a at or above b in the cancellation graph (tree parents and merge
 * entries)? */
static bool cancels_into_seen(int a, int b, bool *seen)
{
	for (; b >= 0; b = anchor(M[b].parent)) {
		if (b == a)
			return true;
		if (seen[b])
			return false;
		seen[b] = true;
		if (M[b].kind == K_MERGED)
			for (int k = 0; k < M[b].nothers; k++)
				if (cancels_into_seen(a, anchor(M[b].others[k]), seen))
					return true;
	}
	return false;
}

static bool cancels_into(int a, int b)
{
	bool seen[MAXN] = {false};
	return cancels_into_seen(a, b, seen);
}

static void op_after_func(bool failing)
{
	if (nr == MAXR)
		return;
	int i = pick_node(), a = anchor(i);
	unsigned how = next();
	bool want_stop = how & 1;
	enum rkind kind = (how >> 1) % 4 == 2 ? R_MERGE : (how >> 1) % 4 == 3 ? R_SELF_STOP : R_COUNT;
	int mh = -1;
	if (kind == R_MERGE && any_merged())
		kind = R_COUNT; /* see the top of the file */
	if (kind == R_MERGE) {
		/* A handle to use from fn; its context's subtree must not overlap
		 * another pending merge's. */
		mh = pick_handle();
		for (int r = 0; mh >= 0 && r < nr; r++)
			if (R[r].kind == R_MERGE && R[r].pending &&
			    (cancels_into(H[R[r].merge_h].node, H[mh].node) ||
			     cancels_into(H[mh].node, H[R[r].merge_h].node)))
				mh = -1;
		/* Nor hold two equal deadlines (see tie_free). */
		if (mh >= 0 && holds_tie(H[mh].node))
			mh = -1;
		if (mh < 0)
			kind = R_COUNT;
	}
	/* A merge on a context that can never be done would hold its handle
	 * forever. */
	if (kind == R_MERGE && a < 0) {
		kind = R_COUNT;
		mh = -1;
	}
	/* fn can only stop itself through a handle written before it runs. */
	if (kind == R_SELF_STOP && (a < 0 || M[a].err))
		kind = R_COUNT;
	if (kind == R_SELF_STOP)
		want_stop = true;
	/* A registration without a stop handle that nothing can ever run
	 * would keep its context alive forever: a leak the program made. A
	 * merge's own handle does not count: only fn would use it. */
	if (mh >= 0)
		H[mh].owner = nr;
	if (!want_stop && a >= 0 && !M[a].err && !can_end(a))
		want_stop = true;
	struct mreg *r = &R[nr];
	*r = (struct mreg){.kind = kind, .merge_h = mh, .merge_cause = 3000 + nr, .node = i,
	                   .ctx = M[i].c, .has_stop = want_stop};
	atomic_init(&r->runs, 0);
	atomic_init(&r->bad, 0);
	int e = ctx_after_func(M[i].c, after_cb, r, want_stop ? &r->stop : NULL);
	if (e) {
		if (mh >= 0)
			H[mh].owner = -1;
		CHECK(failing && e == ENOMEM, "ctx_after_func: %d", e);
		CHECK(atomic_load(&r->runs) == 0, "after-func ran although registration failed");
		return;
	}
	TRACE("r%d = after_func(n%d) stop %d kind %d (merge h%d)\n", nr, i, want_stop, kind, mh);
	nr++;
	if (a < 0) {
		r->inert = true;
	} else if (M[a].err) {
		r->expect_runs = 1; /* ran at once, in this thread */
		if (kind == R_MERGE) {
			merge_q[merge_qn++] = (int)(r - R);
			m_run_merges();
		}
	} else {
		r->pending = true;
	}
	CHECK(atomic_load(&r->runs) == r->expect_runs, "after-func on done context: ran %d",
	      atomic_load(&r->runs));
}

static void op_after_stop(void)
{
	int cand[MAXR], n = 0;
	for (int r = 0; r < nr; r++)
		if (R[r].has_stop)
			cand[n++] = r;
	if (!n)
		return;
	struct mreg *r = &R[cand[next() % n]];
	bool want = r->pending || r->inert;
	bool got = ctx_after_stop(r->stop);
	TRACE("after_stop r%d -> %d\n", (int)(r - R), got);
	CHECK(got == want, "ctx_after_stop %d, model %d", got, want);
	if (want && r->kind == R_MERGE)
		H[r->merge_h].owner = -1; /* fn will never use it: back to the program */
	r->has_stop = false;
	r->pending = r->inert = false;
}

static void op_done_fd(void)
{
	int i = pick_node();
	errno = 0;
	int fd = ctx_done_fd(M[i].c);
	if (anchor(i) < 0) {
		CHECK(fd == -1 && errno == ENOENT, "done_fd of a never-done context: %d errno %d", fd,
		      errno);
		return;
	}
	CHECK(fd >= 0, "ctx_done_fd: errno %d", errno);
	CHECK(M[i].fd < 0 || M[i].fd == fd, "ctx_done_fd changed: %d then %d", M[i].fd, fd);
	M[i].fd = fd;
}

static void op_format_short(void)
{
	int i = pick_node();
	char full[8192], part[64];
	int len = ctx_format(M[i].c, full, sizeof full);
	size_t size = next() % sizeof part;
	memset(part, 'x', sizeof part);
	int l2 = ctx_format(M[i].c, size ? part : NULL, size);
	CHECK(l2 == len, "format length %d with size %zu, %d with a full buffer", l2, size, len);
	if (size) {
		size_t n = (size_t)len < size - 1 ? (size_t)len : size - 1;
		/* The wall-clock text inside WithDeadline(...) moves between calls. */
		const char *dl = strstr(full, "WithDeadline(");
		size_t same = dl ? (size_t)(dl - full) + 13 : n;
		CHECK(memcmp(part, full, n < same ? n : same) == 0 && part[n] == '\0',
		      "truncated format wrong");
		CHECK(n + 1 == sizeof part || part[n + 1] == 'x', "format wrote past size");
	}
}

static void op_invalid(void)
{
	int i = pick_node();
	long before = atomic_load(&n_alloc);
	ctx_cancel_t *h = NULL;
	errno = 0;
	switch (next() % 7) {
	case 0:
		CHECK(ctx_with_cancel(NULL, &h) == NULL && errno == EINVAL, "with_cancel(NULL)");
		break;
	case 1:
		CHECK(ctx_with_deadline(NULL, T, &h) == NULL && errno == EINVAL, "with_deadline(NULL)");
		break;
	case 2:
		CHECK(ctx_with_timeout_cause(NULL, UNIT, 5, &h) == NULL && errno == EINVAL,
		      "with_timeout_cause(NULL)");
		break;
	case 3:
		CHECK(ctx_with_value(M[i].c, NULL, &vals[0], free_val) == NULL && errno == EINVAL,
		      "with_value(NULL key)");
		CHECK(ctx_with_value(NULL, &keys[0], &vals[0], free_val) == NULL && errno == EINVAL,
		      "with_value(NULL parent)");
		break;
	case 4:
		CHECK(ctx_without_cancel(NULL) == NULL && errno == EINVAL, "without_cancel(NULL)");
		break;
	case 5:
		CHECK(ctx_after_func(NULL, after_cb, NULL, NULL) == EINVAL, "after_func(NULL ctx)");
		CHECK(ctx_after_func(M[i].c, NULL, NULL, NULL) == EINVAL, "after_func(NULL fn)");
		break;
	default:
		CHECK(ctx_cancel_dup(NULL) == NULL && errno == EINVAL, "cancel_dup(NULL)");
		break;
	}
	CHECK(h == NULL, "a failed constructor wrote a handle");
	CHECK(atomic_load(&n_alloc) == before, "a failed call allocated");
}

/* Fire, in the model, every armed deadline up to `to`, in deadline order. */
static void m_advance(ctx_time_t to)
{
	for (;;) {
		int best = -1;
		for (int i = 2; i < nn; i++)
			if (M[i].armed && M[i].deadline <= to &&
			    (best < 0 || M[i].deadline < M[best].deadline))
				best = i;
		if (best < 0)
			break;
		m_cancel_op(best, ETIMEDOUT, M[best].tcause);
	}
	T = to;
}

/* Let time pass to `to`: fire in the library and in the model, then wait
 * until the timer thread has handled everything due. */
static void advance(ctx_time_t to, bool sentinel)
{
	int before[MAXN];
	for (int i = 0; i < nn; i++)
		before[i] = m_err(i);
	m_advance(to);
	atomic_store(&fake_now, to);
	ctx__timers_kick();
	for (int i = 0; i < nn; i++) {
		if (M[i].refs && !before[i] && m_err(i)) {
			int e = ctx_wait(M[i].c, REAL_WAIT);
			/* Without the sentinel (the final jump past INT64_MAX
			 * deadlines, all equal) the order of firing is open. */
			CHECK(sentinel ? e == m_err(i) : e != 0,
			      "node %d: deadline did not fire (wait %d, model %d)", i, e, m_err(i));
		}
	}
	if (sentinel) {
		ctx_t *s = ctx_with_deadline(ctx_background(), to + 1, NULL);
		CHECK(s != NULL, "sentinel");
		atomic_store(&sentinel_ran, false);
		CHECK(ctx_after_func(s, sentinel_cb, NULL, NULL) == 0, "sentinel after_func");
		atomic_store(&fake_now, to + 1);
		ctx__timers_kick();
		CHECK(wait_for(sentinel_done), "sentinel deadline did not fire");
		atomic_store(&fake_now, to);
		ctx_release(s);
	}
}

static void op_advance(void)
{
	unsigned b = next();
	ctx_time_t to = T + (ctx_time_t)(b % 32) * UNIT;
	if (b & 0x80) {
		/* To the next armed deadline, if a sensible one exists. */
		for (int i = 2; i < nn; i++)
			if (M[i].armed && M[i].deadline < BASE * 4 && (to == T || M[i].deadline < to))
				to = M[i].deadline;
	}
	TRACE("advance T%+" PRId64 "\n", to - T);
	advance(to, true);
}

enum { NOPS = 16 };

static void run_op(unsigned op)
{
	bool failing = false;
	if (op >= 0x80 && op % NOPS <= 5) {
		/* Fail the next allocation; the constructor must fail cleanly or
		 * not allocate at all. */
		failing = true;
		atomic_store(&fail_next, 1);
	}
	switch (op % NOPS) {
	case 0:
		if (nn < MAXN && nh < MAXH)
			op_with_cancel(failing);
		break;
	case 1:
	case 2:
		if (nn < MAXN && nh < MAXH)
			op_with_deadline(failing, op % NOPS == 2);
		break;
	case 3:
		if (nn < MAXN)
			op_with_value(failing);
		break;
	case 4:
		if (nn < MAXN)
			op_without_cancel(failing);
		break;
	case 5:
		op_after_func(failing);
		break;
	case 6:
	case 7:
		op_cancel();
		break;
	case 8:
		op_cancel_dup();
		break;
	case 9:
		op_release();
		break;
	case 10:
		op_retain();
		break;
	case 11:
		op_after_stop();
		break;
	case 12:
		op_advance();
		break;
	case 13:
		op_done_fd();
		break;
	case 14:
		op_format_short();
		break;
	default:
		if (op >= 0x80) {
			/* Opcode 15 with the high bit: ctx_with_merge, failing
			 * when the next byte is odd. */
			bool f = next() & 1;
			if (f)
				atomic_store(&fail_next, 1);
			if (nn < MAXN && nh < MAXH)
				op_with_merge(f);
		} else {
			op_invalid();
		}
		break;
	}
	atomic_store(&fail_next, 0);
	m_collect();
	check_all();
}

static void setup_once(void)
{
	static bool done;
	if (done)
		return;
	done = true;
	pthread_condattr_t a;
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(&ev_cond, &a);
	pthread_condattr_destroy(&a);
	CHECK(ctx_set_allocator(count_alloc, count_free) == 0, "ctx_set_allocator");
	atomic_store(&fake_now, BASE);
	ctx__set_clock(fake_clock);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	setup_once();
	trace = getenv("GOCTX_FUZZ_TRACE") != NULL;
	TRACE("--- input of %zu bytes\n", size);
	in = data;
	in_left = size;

	nn = 2;
	nh = nr = 0;
	T = BASE;
	atomic_store(&fake_now, BASE);
	M[0] = (struct mnode){.c = ctx_background(), .kind = K_BG, .refs = 1, .fd = -1};
	M[1] = (struct mnode){.c = ctx_todo(), .kind = K_TODO, .refs = 1, .fd = -1};
	for (int v = 0; v <= NVALS; v++) {
		atomic_store(&freed_vals[v], 0);
		expect_freed_vals[v] = 0;
	}
	CHECK(live_allocs() == 0, "live allocations at the start of an input: %ld", live_allocs());

	while (in_left)
		run_op(next());

	/* Clean up as a correct program must: stop every stoppable
	 * registration, use every handle, let every deadline pass, drop every
	 * reference. Then nothing may be left. */
	for (int r = 0; r < nr; r++) {
		if (R[r].has_stop) {
			bool want = R[r].pending || R[r].inert;
			CHECK(ctx_after_stop(R[r].stop) == want, "cleanup: ctx_after_stop");
			if (want && R[r].kind == R_MERGE)
				H[R[r].merge_h].owner = -1;
			R[r].has_stop = R[r].pending = R[r].inert = false;
		}
	}
	for (int h = 0; h < nh; h++) {
		if (!H[h].used && H[h].owner < 0) {
			ctx_cancel(H[h].h);
			H[h].used = true;
			M[H[h].node].handles--;
			m_cancel_op(H[h].node, ECANCELED, ECANCELED);
		}
	}
	m_collect();
	check_all();
	advance(INT64_MAX, false);
	CHECK(wait_for(afters_settled), "after-funcs did not all run after every deadline passed");
	for (int h = 0; h < nh; h++)
		CHECK(H[h].used, "model: handle %d never used", h);
	for (int i = 2; i < nn; i++)
		while (M[i].refs) {
			ctx_release(M[i].c);
			M[i].refs--;
		}
	m_collect();
	for (int i = 2; i < nn; i++)
		CHECK(M[i].freed, "model: node %d not freed at the end", i);
	ctx_flush_cache(); /* this thread's cached nodes back to the allocator */
	CHECK(wait_for(no_live_allocs), "leak: %ld allocations live after releasing everything",
	      live_allocs());
	for (int r = 0; r < nr; r++)
		CHECK(atomic_load(&R[r].runs) == R[r].expect_runs, "after-func %d ran %d, model %d", r,
		      atomic_load(&R[r].runs), R[r].expect_runs);
	for (int v = 0; v <= NVALS; v++)
		CHECK(atomic_load(&freed_vals[v]) == expect_freed_vals[v],
		      "free_val(val %d): %d calls, model %d", v, atomic_load(&freed_vals[v]),
		      expect_freed_vals[v]);
	CHECK(ctx__timers_pending() == 0, "timers pending at the end: %zu", ctx__timers_pending());
	atomic_store(&fake_now, BASE);
	CHECK(ctx_set_allocator(count_alloc, count_free) == EBUSY || atomic_load(&n_alloc) == 0,
	      "ctx_set_allocator after use must be EBUSY");
	return 0;
}

#ifdef GOCTX_FUZZ_STANDALONE
#define GOCTX_FUZZ_NAME "goctx-fuzz"
#include "replay.h"
#endif
