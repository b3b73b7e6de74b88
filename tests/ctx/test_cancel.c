/* test_cancel.c: the cancel tree: roots, WithCancel, propagation to
 * descendants, first-cancel-wins, child links (white-box through
 * ctx__children_count), concurrent cancels (Go's TestSimultaneousCancels,
 * TestInterlockedCancels, TestWithCancelSimultaneouslyCanceledParent), random
 * layer stacks (TestLayersCancel/TestLayersTimeout), deep chains, cancel
 * handles and freeing. Every test checks, through a counting allocator, that
 * it gave back everything it allocated. */
#include "util.h"

static char key_a, key_b; /* value keys: compared by address */

static void worker_start(void *(*fn)(void *), void *arg, pthread_t *t)
{
	int e = pthread_create(t, NULL, fn, arg);
	assert_int_equal(e, 0);
}

/* ---- roots ---------------------------------------------------------------- */

/* Background and TODO: never done, no deadline, no values, no children, no
 * allocation, retain/release are no-ops; Go's String() form. */
static void test_background_todo_never_done(void **state)
{
	(void)state;
	ctx_t *roots[2] = {ctx_background(), ctx_todo()};
	assert_non_null(roots[0]);
	assert_non_null(roots[1]);
	assert_ptr_not_equal(roots[0], roots[1]);
	assert_ptr_equal(ctx_background(), roots[0]);
	assert_ptr_equal(ctx_todo(), roots[1]);
	for (int i = 0; i < 2; i++) {
		ctx_t *r = roots[i];
		ut_assert_live(r);
		assert_false(ctx_deadline(r, NULL));
		assert_null(ctx_value(r, &key_a));
		assert_int_equal(ctx_wait(r, 0), 0);
		assert_int_equal(ctx_wait(r, 2 * CTX_MILLISECOND), 0);
		assert_int_equal(ctx__children_count(r), 0);
		for (int k = 0; k < 5; k++)
			assert_ptr_equal(ctx_retain(r), r);
		for (int k = 0; k < 10; k++)
			ctx_release(r);
		ut_assert_live(r);
	}
	assert_string_equal(ut_fmt(roots[0]), "context.Background");
	assert_string_equal(ut_fmt(roots[1]), "context.TODO");
	/* A child cancelled under a root does not touch the root. */
	ctx_cancel_t *h;
	ctx_t *c = ctx_with_cancel(roots[0], &h);
	ctx_cancel(h);
	ut_assert_live(roots[0]);
	ctx_release(c);
	assert_int_equal(ut_live(), ut_base); /* roots allocate nothing */
	ut_assert_no_leak();
}

/* ---- cancel propagation ----------------------------------------------------- */

/* ctx_cancel marks the context and every descendant (through value, cancel
 * and deadline layers) done with ECANCELED before it returns; a
 * WithoutCancel branch and its children are not descendants for cancel. */
static void test_cancel_marks_subtree_done_before_return(void **state)
{
	(void)state;
	ctx_cancel_t *hp, *ha, *hb, *ht, *ht2, *hwc;
	ctx_t *p = ctx_with_cancel(ctx_background(), &hp);
	ctx_t *a = ctx_with_cancel(p, &ha);
	ctx_t *v = ctx_with_value(a, &key_a, &key_b, NULL);
	ctx_t *b = ctx_with_cancel(v, &hb);
	ctx_t *t = ctx_with_timeout(b, 3600 * CTX_SECOND, &ht);
	ctx_t *t2 = ctx_with_deadline(p, ctx_now() + 3600 * CTX_SECOND, &ht2);
	ctx_t *w = ctx_without_cancel(a);
	ctx_t *wc = ctx_with_cancel(w, &hwc);
	ctx_t *all[] = {p, a, v, b, t, t2};
	for (size_t i = 0; i < sizeof all / sizeof *all; i++) {
		assert_non_null(all[i]);
		ut_assert_live(all[i]);
	}
	assert_string_equal(ut_fmt(p), "context.Background.WithCancel");

	ctx_cancel(hp);
	/* No wait: every descendant reports done as soon as ctx_cancel returns. */
	for (size_t i = 0; i < sizeof all / sizeof *all; i++)
		ut_assert_done(all[i], ECANCELED, ECANCELED);
	ut_assert_live(w);
	ut_assert_live(wc);
	assert_ptr_equal(ctx_value(b, &key_a), &key_b); /* values survive cancel */

	ctx_cancel(ha);
	ctx_cancel(hb);
	ctx_cancel(ht);
	ctx_cancel(ht2);
	ctx_cancel(hwc);
	ut_assert_done(wc, ECANCELED, ECANCELED);
	ut_assert_live(w);
	ctx_t *rel[] = {wc, w, t2, t, b, v, a, p};
	for (size_t i = 0; i < sizeof rel / sizeof *rel; i++)
		ctx_release(rel[i]);
	ut_assert_no_leak();
}

static void count_call(void *arg) { atomic_fetch_add((atomic_int *)arg, 1); }

/* Each descendant is cancelled exactly once even when it is cancelled again
 * (by its own handle, or the tree again through a dup): an after-func on
 * each node runs once, before the triggering ctx_cancel returns. */
static void test_cancel_reaches_each_descendant_once(void **state)
{
	(void)state;
	enum { N = 40 };
	ctx_t *c[N];
	ctx_cancel_t *h[N];
	atomic_int calls[N];
	ctx_cancel_t *dup;
	for (int i = 0; i < N; i++) {
		ctx_t *parent = i == 0 ? ctx_background() : c[(i - 1) / 3];
		c[i] = i % 4 == 3 ? ctx_with_timeout(parent, 3600 * CTX_SECOND, &h[i])
		                  : ctx_with_cancel(parent, &h[i]);
		assert_non_null(c[i]);
		atomic_init(&calls[i], 0);
		assert_int_equal(ctx_after_func(c[i], count_call, &calls[i], NULL), 0);
	}
	dup = ctx_cancel_dup(h[0]);
	assert_non_null(dup);
	ctx_cancel(h[0]);
	for (int i = 0; i < N; i++) {
		ut_assert_done(c[i], ECANCELED, ECANCELED);
		assert_int_equal(atomic_load(&calls[i]), 1);
	}
	ctx_cancel_cause(dup, 99);
	for (int i = 1; i < N; i++)
		ctx_cancel_cause(h[i], 100 + i);
	for (int i = 0; i < N; i++) {
		ut_assert_done(c[i], ECANCELED, ECANCELED);
		assert_int_equal(atomic_load(&calls[i]), 1);
	}
	for (int i = N - 1; i >= 0; i--)
		ctx_release(c[i]);
	ut_assert_no_leak();
}

/* The first cancellation wins: its err and cause stay; later cancels (of the
 * same context, through its parent, or after its deadline fired) change
 * nothing. */
static void test_first_cancellation_wins(void **state)
{
	(void)state;
	/* Two handles of one context. */
	ctx_cancel_t *h1, *h2;
	ctx_t *c = ctx_with_cancel(ctx_background(), &h1);
	h2 = ctx_cancel_dup(h1);
	assert_non_null(h2);
	ctx_cancel_cause(h1, 42);
	ut_assert_done(c, ECANCELED, 42);
	ctx_cancel_cause(h2, 43);
	ut_assert_done(c, ECANCELED, 42);
	ctx_release(c);

	/* Cancelled by the parent first, then by its own handle. */
	ctx_cancel_t *hp, *hc;
	ctx_t *p = ctx_with_cancel(ctx_background(), &hp);
	ctx_t *k = ctx_with_cancel(p, &hc);
	ctx_cancel_cause(hp, 7);
	ut_assert_done(k, ECANCELED, 7);
	ctx_cancel_cause(hc, 9);
	ut_assert_done(k, ECANCELED, 7);
	ut_assert_done(p, ECANCELED, 7);
	ctx_release(k);
	ctx_release(p);

	/* Cancelled by its own handle first, then by the parent. */
	p = ctx_with_cancel(ctx_background(), &hp);
	k = ctx_with_cancel(p, &hc);
	ctx_cancel_cause(hc, 9);
	ctx_cancel_cause(hp, 7);
	ut_assert_done(k, ECANCELED, 9);
	ut_assert_done(p, ECANCELED, 7);
	ctx_release(k);
	ctx_release(p);

	/* The deadline fired first: a later ctx_cancel_cause changes nothing. */
	ctx_cancel_t *ht;
	ctx_t *t = ctx_with_timeout(ctx_background(), 0, &ht);
	ut_assert_done(t, ETIMEDOUT, ETIMEDOUT);
	ctx_cancel_cause(ht, 5);
	ut_assert_done(t, ETIMEDOUT, ETIMEDOUT);
	ctx_release(t);
	ut_assert_no_leak();
}

/* ---- child links (white-box) ------------------------------------------------ */

static char pfc_key;

/* Go's XTestParentFinishesChild: the parent lists its cancel child, a timer
 * child under a value child, and an after-func (3 entries); cancelling the
 * parent empties the list and finishes them all; a value child made after is
 * born done. */
static void test_parent_finishes_child(void **state)
{
	(void)state;
	size_t pending0 = ctx__timers_pending();
	ctx_cancel_t *hp, *hc, *ht;
	ctx_t *parent = ctx_with_cancel(ctx_background(), &hp);
	ctx_t *cancel_child = ctx_with_cancel(parent, &hc);
	ctx_t *value_child = ctx_with_value(parent, &pfc_key, &pfc_key, NULL);
	ctx_t *timer_child = ctx_with_timeout(value_child, 3600 * CTX_SECOND, &ht);
	atomic_int ran;
	atomic_init(&ran, 0);
	ctx_after_t *stop;
	assert_int_equal(ctx_after_func(parent, count_call, &ran, &stop), 0);

	ctx_t *all[] = {parent, cancel_child, value_child, timer_child};
	for (size_t i = 0; i < 4; i++)
		ut_assert_live(all[i]);
	assert_int_equal(ctx__children_count(parent), 3);
	/* The value child has no list of its own: its nearest cancelable
	 * ancestor is the parent. */
	assert_int_equal(ctx__children_count(value_child), 3);
	assert_int_equal(ctx__children_count(cancel_child), 0);
	assert_int_equal(ctx__children_count(timer_child), 0);
	assert_int_equal(ctx__timers_pending(), pending0 + 1);
	assert_int_equal(atomic_load(&ran), 0);

	ctx_cancel(hp);
	assert_int_equal(ctx__children_count(parent), 0);
	for (size_t i = 0; i < 4; i++)
		ut_assert_done(all[i], ECANCELED, ECANCELED);
	assert_int_equal(atomic_load(&ran), 1);
	assert_int_equal(ctx__timers_pending(), pending0); /* the timer is disarmed */

	ctx_t *late = ctx_with_value(parent, &key_a, NULL, NULL);
	ut_assert_done(late, ECANCELED, ECANCELED);
	assert_int_equal(ctx__children_count(parent), 0);

	assert_false(ctx_after_stop(stop));
	ctx_cancel(hc);
	ctx_cancel(ht);
	ctx_t *rel[] = {late, timer_child, value_child, cancel_child, parent};
	for (size_t i = 0; i < 5; i++)
		ctx_release(rel[i]);
	ut_assert_no_leak();
}

/* Go's XTestChildFinishesFirst: a child cancelled first leaves its parent's
 * list and leaves the parent live; under Background nothing is listed. */
static void test_child_finishes_first(void **state)
{
	(void)state;
	ctx_cancel_t *hp, *hc;
	/* Background parent: no link. */
	ctx_t *c = ctx_with_cancel(ctx_background(), &hc);
	assert_int_equal(ctx__children_count(ctx_background()), 0);
	ctx_cancel(hc);
	ut_assert_done(c, ECANCELED, ECANCELED);
	ut_assert_live(ctx_background());
	ctx_release(c);

	/* Cancelable parent. */
	ctx_t *p = ctx_with_cancel(ctx_background(), &hp);
	c = ctx_with_cancel(p, &hc);
	assert_int_equal(ctx__children_count(p), 1);
	ctx_cancel(hc);
	assert_int_equal(ctx__children_count(p), 0);
	ut_assert_done(c, ECANCELED, ECANCELED);
	ut_assert_live(p);
	assert_int_equal(ctx_wait(p, 0), 0);
	ctx_release(c);

	/* Same with a timer child. */
	c = ctx_with_timeout(p, 3600 * CTX_SECOND, &hc);
	assert_int_equal(ctx__children_count(p), 1);
	ctx_cancel(hc);
	assert_int_equal(ctx__children_count(p), 0);
	ut_assert_live(p);
	ctx_release(c);

	ctx_cancel(hp);
	ctx_release(p);
	ut_assert_no_leak();
}

static void never_called(void *arg) { atomic_fetch_add((atomic_int *)arg, 1); }

/* Go's XTestCancelRemoves: the parent's list goes 0 -> 1 -> 0 for
 * WithCancel + cancel, WithTimeout + cancel, and after-func + stop. */
static void test_cancel_removes_child(void **state)
{
	(void)state;
	size_t pending0 = ctx__timers_pending();
	ctx_cancel_t *hp, *h;
	ctx_t *p = ctx_with_cancel(ctx_background(), &hp);
	assert_int_equal(ctx__children_count(p), 0);

	ctx_t *c = ctx_with_cancel(p, &h);
	assert_int_equal(ctx__children_count(p), 1);
	ctx_cancel(h);
	assert_int_equal(ctx__children_count(p), 0);
	ctx_release(c);

	c = ctx_with_timeout(p, 3600 * CTX_SECOND, &h);
	assert_int_equal(ctx__children_count(p), 1);
	assert_int_equal(ctx__timers_pending(), pending0 + 1);
	ctx_cancel(h);
	assert_int_equal(ctx__children_count(p), 0);
	assert_int_equal(ctx__timers_pending(), pending0);
	ctx_release(c);

	atomic_int calls;
	atomic_init(&calls, 0);
	ctx_after_t *stop;
	assert_int_equal(ctx_after_func(p, never_called, &calls, &stop), 0);
	assert_int_equal(ctx__children_count(p), 1);
	assert_true(ctx_after_stop(stop));
	assert_int_equal(ctx__children_count(p), 0);

	ctx_cancel(hp);
	assert_int_equal(atomic_load(&calls), 0);
	ctx_release(p);
	ut_assert_no_leak();
}

/* A child of a done parent is born done with the parent's err and cause,
 * for every kind of child, and this wins over the child's own deadline,
 * even one already past; nothing is linked and no timer is armed. */
static void test_child_of_done_parent_born_done(void **state)
{
	(void)state;
	size_t pending0 = ctx__timers_pending();
	ctx_cancel_t *hp, *h[6];
	ctx_t *p = ctx_with_cancel(ctx_background(), &hp);
	ctx_cancel_cause(hp, 77);
	ctx_time_t now = ctx_now();
	ctx_t *kids[] = {
		ctx_with_cancel(p, &h[0]),
		ctx_with_deadline(p, now + 3600 * CTX_SECOND, &h[1]),
		ctx_with_deadline_cause(p, now - CTX_SECOND, 5, &h[2]), /* past deadline */
		ctx_with_timeout(p, 0, &h[3]),
		ctx_with_timeout_cause(p, -1, 6, &h[4]),
		ctx_with_deadline_cause(p, now + 3600 * CTX_SECOND, 8, &h[5]),
		ctx_with_value(p, &key_a, NULL, NULL),
	};
	for (size_t i = 0; i < 7; i++) {
		assert_non_null(kids[i]);
		ut_assert_done(kids[i], ECANCELED, 77);
	}
	/* And their children in turn. */
	ctx_cancel_t *hg;
	ctx_t *g = ctx_with_cancel(kids[6], &hg);
	ut_assert_done(g, ECANCELED, 77);
	assert_int_equal(ctx__children_count(p), 0);
	assert_int_equal(ctx__timers_pending(), pending0);
	ctx_cancel(hg);
	ctx_release(g);
	for (size_t i = 0; i < 6; i++)
		ctx_cancel_cause(h[i], 1000);
	for (size_t i = 0; i < 7; i++) {
		ut_assert_done(kids[i], ECANCELED, 77);
		ctx_release(kids[i]);
	}
	ctx_release(p);
	ut_assert_no_leak();
}

/* The same for a parent that timed out with a cause: children carry
 * ETIMEDOUT and that cause, not their own deadline's. */
static void test_child_of_timed_out_parent_born_done(void **state)
{
	(void)state;
	size_t pending0 = ctx__timers_pending();
	ctx_cancel_t *hp, *h[3];
	ctx_t *p = ctx_with_timeout_cause(ctx_background(), 0, 9, &hp);
	ut_assert_done(p, ETIMEDOUT, 9);
	ctx_t *kids[] = {
		ctx_with_cancel(p, &h[0]),
		ctx_with_deadline_cause(p, ctx_now() - 1, 5, &h[1]),
		ctx_with_timeout_cause(p, 3600 * CTX_SECOND, 6, &h[2]),
	};
	for (size_t i = 0; i < 3; i++)
		ut_assert_done(kids[i], ETIMEDOUT, 9);
	assert_int_equal(ctx__timers_pending(), pending0);
	for (size_t i = 0; i < 3; i++) {
		ctx_cancel(h[i]);
		ctx_release(kids[i]);
	}
	ctx_cancel(hp);
	ctx_release(p);
	ut_assert_no_leak();
}

/* ---- concurrency ------------------------------------------------------------ */

enum { SC_NODES = 100, SC_FANOUT = 4, SC_THREADS = 8 };

struct sc_run {
	ctx_cancel_t *h[SC_NODES];
	int order[SC_NODES];
	atomic_int next;
	pthread_barrier_t start;
};

static void *sc_worker(void *arg)
{
	struct sc_run *r = arg;
	pthread_barrier_wait(&r->start);
	for (;;) {
		int i = atomic_fetch_add(&r->next, 1);
		if (i >= SC_NODES)
			break;
		ctx_cancel(r->h[r->order[i]]);
	}
	return NULL;
}

/* Go's TestSimultaneousCancels: a tree of 100 contexts (fan-out 4; cancel,
 * timer and value-wrapped nodes) whose every cancel handle is used at the
 * same time, in random order, from 8 threads: every cancel returns (no
 * deadlock), every node ends done with ECANCELED, every list is empty, every
 * timer disarmed, everything freed. Many rounds. */
static void test_simultaneous_cancels(void **state)
{
	(void)state;
	ut_seed("simultaneous_cancels");
	size_t pending0 = ctx__timers_pending();
	int rounds = UT_ITERS(1000);
	for (int round = 0; round < rounds; round++) {
		struct sc_run r;
		ctx_t *c[SC_NODES];
		for (int i = 0; i < SC_NODES; i++) {
			ctx_t *parent = i == 0 ? ctx_background() : c[(i - 1) / SC_FANOUT];
			switch (i % 5) {
			case 2:
				c[i] = ctx_with_timeout(parent, 3600 * CTX_SECOND, &r.h[i]);
				break;
			case 4: {
				ctx_t *v = ctx_with_value(parent, &key_a, NULL, NULL);
				c[i] = ctx_with_cancel(v, &r.h[i]);
				ctx_release(v);
				break;
			}
			default:
				c[i] = ctx_with_cancel(parent, &r.h[i]);
			}
			assert_non_null(c[i]);
			r.order[i] = i;
		}
		ut_shuffle(r.order, SC_NODES);
		atomic_init(&r.next, 0);
		pthread_barrier_init(&r.start, NULL, SC_THREADS);
		pthread_t t[SC_THREADS];
		for (int i = 0; i < SC_THREADS; i++)
			worker_start(sc_worker, &r, &t[i]);
		for (int i = 0; i < SC_THREADS; i++)
			UT_BOUNDED(UT_BOUND_MS, "test_simultaneous_cancels: the thread returns",
			           pthread_join(t[i], NULL));
		pthread_barrier_destroy(&r.start);
		for (int i = 0; i < SC_NODES; i++) {
			assert_int_equal(ctx_err(c[i]), ECANCELED);
			assert_int_equal(ctx_cause(c[i]), ECANCELED);
			assert_int_equal(ctx__children_count(c[i]), 0);
		}
		assert_int_equal(ctx__timers_pending(), pending0);
		for (int i = SC_NODES - 1; i >= 0; i--)
			ctx_release(c[i]);
		ut_assert_no_leak();
	}
}

struct il_run {
	ctx_t *parent;
	ctx_cancel_t *child_cancel;
	int waited;
};

static void *il_worker(void *arg)
{
	struct il_run *r = arg;
	r->waited = ctx_wait(r->parent, CTX_FOREVER);
	ctx_cancel(r->child_cancel);
	return NULL;
}

/* Go's TestInterlockedCancels: a thread waiting on the parent cancels the
 * child while the parent's cancellation is in progress. No deadlock; the
 * child ends done. Many rounds. */
static void test_interlocked_cancels(void **state)
{
	(void)state;
	int rounds = UT_ITERS(2000);
	for (int round = 0; round < rounds; round++) {
		ctx_cancel_t *hp;
		struct il_run r;
		r.parent = ctx_with_cancel(ctx_background(), &hp);
		ctx_t *child = round % 2 ? ctx_with_timeout(r.parent, 3600 * CTX_SECOND, &r.child_cancel)
		                         : ctx_with_cancel(r.parent, &r.child_cancel);
		pthread_t t;
		worker_start(il_worker, &r, &t);
		ctx_cancel(hp);
		UT_BOUNDED(UT_BOUND_MS, "test_interlocked_cancels: the thread returns",
		           pthread_join(t, NULL));
		assert_int_equal(r.waited, ECANCELED);
		ut_assert_done(child, ECANCELED, ECANCELED);
		ut_assert_done(r.parent, ECANCELED, ECANCELED);
		assert_int_equal(ctx__children_count(r.parent), 0);
		ctx_release(child);
		ctx_release(r.parent);
	}
	ut_assert_no_leak();
}

/* ---- random layer stacks -------------------------------------------------- */

enum { L_VALUE, L_CANCEL, L_TIMEOUT };
enum { L_MAX = 64 };
static char layer_keys[L_MAX];

struct layers {
	int n;
	int kind[L_MAX];
	ctx_t *c[L_MAX];
	ctx_cancel_t *h[L_MAX];
};

static void layers_build(struct layers *s, ctx_duration_t timeout)
{
	s->n = 30 + (int)ut_randn(31);
	for (int i = 0; i < s->n; i++)
		s->kind[i] = (int)ut_randn(3);
	/* At least one of each kind, at random places. */
	int pos[L_MAX];
	for (int i = 0; i < s->n; i++)
		pos[i] = i;
	ut_shuffle(pos, s->n);
	s->kind[pos[0]] = L_VALUE;
	s->kind[pos[1]] = L_CANCEL;
	s->kind[pos[2]] = L_TIMEOUT;
	ctx_t *cur = ctx_background();
	for (int i = 0; i < s->n; i++) {
		s->h[i] = NULL;
		switch (s->kind[i]) {
		case L_VALUE:
			s->c[i] = ctx_with_value(cur, &layer_keys[i], (void *)(uintptr_t)(i + 1), NULL);
			break;
		case L_CANCEL:
			s->c[i] = ctx_with_cancel(cur, &s->h[i]);
			break;
		default:
			s->c[i] = ctx_with_timeout(cur, timeout, &s->h[i]);
		}
		assert_non_null(s->c[i]);
		cur = s->c[i];
	}
}

/* Every value is visible from its own layer down, and nowhere above. */
static void layers_check_values(const struct layers *s)
{
	for (int j = 0; j < s->n; j++)
		for (int i = 0; i < s->n; i++) {
			void *want = s->kind[i] == L_VALUE && i <= j ? (void *)(uintptr_t)(i + 1) : NULL;
			assert_ptr_equal(ctx_value(s->c[j], &layer_keys[i]), want);
		}
}

static void layers_free(struct layers *s)
{
	for (int i = 0; i < s->n; i++)
		if (s->h[i])
			ctx_cancel(s->h[i]);
	for (int i = 0; i < s->n; i++)
		ctx_release(s->c[i]);
}

/* Go's TestLayersCancel: a random stack of 30-60 value/cancel/timeout
 * layers; values readable before and after; cancelling a random cancelable
 * layer makes it and every layer below done (ECANCELED), and leaves the
 * layers above live; the format starts with "context.Background.". */
static void test_layers_cancel(void **state)
{
	(void)state;
	ut_seed("layers_cancel");
	for (int round = 0; round < 100; round++) {
		struct layers s;
		layers_build(&s, 3600 * CTX_SECOND);
		ctx_t *leaf = s.c[s.n - 1];
		assert_true(ut_starts_with(ut_fmt(leaf), "context.Background."));
		layers_check_values(&s);
		ut_assert_live(leaf);
		int cancelable[L_MAX], nc = 0;
		for (int i = 0; i < s.n; i++)
			if (s.h[i])
				cancelable[nc++] = i;
		int k = cancelable[ut_randn((uint64_t)nc)];
		ctx_cancel(s.h[k]);
		s.h[k] = NULL;
		ut_assert_done(leaf, ECANCELED, ECANCELED);
		for (int i = 0; i < s.n; i++) {
			if (i < k)
				ut_assert_live(s.c[i]);
			else
				ut_assert_done(s.c[i], ECANCELED, ECANCELED);
		}
		layers_check_values(&s);
		layers_free(&s);
		ut_assert_no_leak();
	}
}

/* Go's TestLayersTimeout: the same with short timeouts (real clock): the
 * leaf becomes done with ETIMEDOUT; values readable before and after. */
static void test_layers_timeout(void **state)
{
	(void)state;
	ut_seed("layers_timeout");
	size_t pending0 = ctx__timers_pending();
	for (int round = 0; round < 20; round++) {
		struct layers s;
		layers_build(&s, 20 * CTX_MILLISECOND);
		ctx_t *leaf = s.c[s.n - 1];
		assert_true(ut_starts_with(ut_fmt(leaf), "context.Background."));
		layers_check_values(&s);
		assert_int_equal(ctx_wait(leaf, 10 * CTX_SECOND), ETIMEDOUT);
		assert_int_equal(ctx_err(leaf), ETIMEDOUT);
		assert_int_equal(ctx_cause(leaf), ETIMEDOUT);
		layers_check_values(&s);
		layers_free(&s);
	}
	assert_int_equal(ctx__timers_pending(), pending0);
	ut_assert_no_leak_eventually();
}

/* ctx_format: Go's String() of a WithCancel chain. */
static void test_format_cancel_chain(void **state)
{
	(void)state;
	ctx_cancel_t *h1, *h2;
	ctx_t *a = ctx_with_cancel(ctx_background(), &h1);
	ctx_t *b = ctx_with_cancel(a, &h2);
	ctx_t *t = ctx_with_cancel(ctx_todo(), NULL);
	assert_string_equal(ut_fmt(a), "context.Background.WithCancel");
	assert_string_equal(ut_fmt(b), "context.Background.WithCancel.WithCancel");
	assert_string_equal(ut_fmt(t), "context.TODO.WithCancel");
	ctx_cancel(h1); /* cancelling does not change the text */
	assert_string_equal(ut_fmt(b), "context.Background.WithCancel.WithCancel");
	ctx_cancel(h2);
	ctx_release(t);
	ctx_release(b);
	ctx_release(a);
	ut_assert_no_leak();
}

struct scp_run {
	ctx_cancel_t *h;
	int cause;
	pthread_barrier_t start;
};

static void *scp_worker(void *arg)
{
	struct scp_run *r = arg;
	pthread_barrier_wait(&r->start);
	ctx_cancel_cause(r->h, r->cause);
	return NULL;
}

/* Go's TestWithCancelSimultaneouslyCanceledParent: a parent cancelled with a
 * cause while a child is being made under it: the child always ends done
 * with ECANCELED and the parent's cause (whether it was born done or
 * cancelled after linking). Several child kinds, many rounds. */
static void test_with_cancel_simultaneously_canceled_parent(void **state)
{
	(void)state;
	int rounds = UT_ITERS(1000);
	for (int round = 0; round < rounds; round++) {
		struct scp_run r;
		ctx_t *p = ctx_with_cancel(ctx_background(), &r.h);
		r.cause = 1000 + round;
		pthread_barrier_init(&r.start, NULL, 2);
		pthread_t t;
		worker_start(scp_worker, &r, &t);
		pthread_barrier_wait(&r.start);
		ctx_cancel_t *hc = NULL;
		ctx_t *c, *v = NULL;
		switch (round % 4) {
		case 0:
			c = ctx_with_cancel(p, &hc);
			break;
		case 1:
			c = ctx_with_timeout(p, 3600 * CTX_SECOND, &hc);
			break;
		case 2:
			v = ctx_with_value(p, &key_a, NULL, NULL);
			c = ctx_with_cancel(v, &hc);
			break;
		default:
			c = ctx_with_timeout_cause(p, 3600 * CTX_SECOND, 5, &hc);
		}
		assert_int_equal(ctx_wait(c, 10 * CTX_SECOND), ECANCELED);
		UT_BOUNDED(UT_BOUND_MS, "the thread returns", pthread_join(t, NULL));
		pthread_barrier_destroy(&r.start);
		assert_int_equal(ctx_err(c), ECANCELED);
		assert_int_equal(ctx_cause(c), r.cause);
		assert_int_equal(ctx__children_count(p), 0);
		ctx_cancel(hc);
		ctx_release(c);
		ctx_release(v);
		ctx_release(p);
	}
	ut_assert_no_leak();
}

enum { CC_CHAIN = 1000 };

struct cc_run {
	ctx_t **chain;
	ctx_cancel_t *h;
	int from; /* this canceller's node: chain[from..] must be done on return */
	pthread_barrier_t *start;
	int not_done; /* descendants seen live after ctx_cancel returned */
};

static void *cc_worker(void *arg)
{
	struct cc_run *r = arg;
	pthread_barrier_wait(r->start);
	ctx_cancel(r->h);
	r->not_done = 0;
	for (int i = r->from; i < CC_CHAIN; i++)
		if (!ctx_done(r->chain[i]) || ctx_err(r->chain[i]) != ECANCELED)
			r->not_done++;
	return NULL;
}

/* A chain of CC_CHAIN contexts (cancel, value and timer layers) under top. */
static void cc_build(ctx_t **chain, ctx_cancel_t **top, int mid, ctx_cancel_t **hmid)
{
	chain[0] = ctx_with_cancel(ctx_background(), top);
	for (int i = 1; i < CC_CHAIN; i++) {
		if (i == mid)
			chain[i] = ctx_with_cancel(chain[i - 1], hmid);
		else if (i % 10 == 3)
			chain[i] = ctx_with_value(chain[i - 1], &key_b, NULL, NULL);
		else if (i % 10 == 7)
			chain[i] = ctx_with_timeout(chain[i - 1], 3600 * CTX_SECOND, NULL);
		else
			chain[i] = ctx_with_cancel(chain[i - 1], NULL);
		assert_non_null(chain[i]);
	}
}

/* API rule "when ctx_cancel returns, the context and every descendant report
 * done", with two threads cancelling the same context at once (two handles
 * through ctx_cancel_dup): each of them, on return, sees the whole chain of
 * 1000 below it done, whichever thread did the work. Many rounds. */
static void test_concurrent_cancel_same_context_subtree_done(void **state)
{
	(void)state;
	static ctx_t *chain[CC_CHAIN];
	int rounds = UT_ITERS(300);
	for (int round = 0; round < rounds; round++) {
		ctx_cancel_t *h1;
		cc_build(chain, &h1, -1, NULL);
		pthread_barrier_t start;
		pthread_barrier_init(&start, NULL, 2);
		struct cc_run r[2] = {
			{.chain = chain, .h = h1, .from = 0, .start = &start, .not_done = -1},
			{.chain = chain, .h = ctx_cancel_dup(h1), .from = 0, .start = &start, .not_done = -1},
		};
		assert_non_null(r[1].h);
		pthread_t t[2];
		for (int i = 0; i < 2; i++)
			worker_start(cc_worker, &r[i], &t[i]);
		for (int i = 0; i < 2; i++)
			UT_BOUNDED(UT_BOUND_MS, "the thread returns", pthread_join(t[i], NULL));
		pthread_barrier_destroy(&start);
		assert_int_equal(r[0].not_done, 0);
		assert_int_equal(r[1].not_done, 0);
		for (int i = CC_CHAIN - 1; i >= 0; i--)
			ctx_release(chain[i]);
		ut_assert_no_leak();
	}
}

/* The same rule when one thread cancels the top of the chain and another a
 * context in the middle at the same time: each sees its own subtree done on
 * return. */
static void test_concurrent_cancel_ancestor_and_descendant(void **state)
{
	(void)state;
	static ctx_t *chain[CC_CHAIN];
	int rounds = UT_ITERS(300);
	for (int round = 0; round < rounds; round++) {
		ctx_cancel_t *htop, *hmid;
		int mid = CC_CHAIN / 2 + round % 100;
		cc_build(chain, &htop, mid, &hmid);
		pthread_barrier_t start;
		pthread_barrier_init(&start, NULL, 2);
		struct cc_run r[2] = {
			{.chain = chain, .h = htop, .from = 0, .start = &start, .not_done = -1},
			{.chain = chain, .h = hmid, .from = mid, .start = &start, .not_done = -1},
		};
		pthread_t t[2];
		for (int i = 0; i < 2; i++)
			worker_start(cc_worker, &r[i], &t[i]);
		for (int i = 0; i < 2; i++)
			UT_BOUNDED(UT_BOUND_MS, "the thread returns", pthread_join(t[i], NULL));
		pthread_barrier_destroy(&start);
		assert_int_equal(r[0].not_done, 0);
		assert_int_equal(r[1].not_done, 0);
		for (int i = CC_CHAIN - 1; i >= 0; i--)
			ctx_release(chain[i]);
		ut_assert_no_leak();
	}
}

/* A chain of 100000 WithCancel contexts cancelled from the top: no stack
 * overflow, the leaf is done on return, and releasing the leaf (which holds
 * the only references to the chain) frees it all. */
static void test_deep_chain_cancel(void **state)
{
	(void)state;
	enum { DEPTH = 100000 };
	ctx_cancel_t *top;
	ctx_t *root = ctx_with_cancel(ctx_background(), &top);
	ctx_t *cur = ctx_retain(root);
	for (int i = 0; i < DEPTH; i++) {
		ctx_t *next = ctx_with_cancel(cur, NULL);
		assert_non_null(next);
		ctx_release(cur); /* the child holds its parent */
		cur = next;
	}
	assert_int_equal(ut_live(), ut_base + DEPTH + 1);
	ut_assert_live(cur);
	ctx_cancel_cause(top, 31);
	ut_assert_done(cur, ECANCELED, 31);
	ut_assert_done(root, ECANCELED, 31);
	ctx_release(root);
	ctx_release(cur);
	ut_assert_no_leak();
}

/* A chain of 100000 never cancelled, freed by releasing the leaf. */
static void test_deep_chain_release(void **state)
{
	(void)state;
	enum { DEPTH = 100000 };
	ctx_t *cur = ctx_background();
	for (int i = 0; i < DEPTH; i++) {
		ctx_t *next = i % 2 ? ctx_with_cancel(cur, NULL) : ctx_with_value(cur, &key_a, NULL, NULL);
		assert_non_null(next);
		ctx_release(cur);
		cur = next;
	}
	ut_assert_live(cur);
	ctx_release(cur);
	ut_assert_no_leak();
}

/* ---- handles and freeing ---------------------------------------------------- */

/* ctx_cancel_dup: a second handle to the same context; both are used; the
 * context lives while any handle or reference does and is freed exactly
 * once. */
static void test_cancel_dup(void **state)
{
	(void)state;
	long frees0 = ut_frees_now();
	ctx_cancel_t *h1, *h2;
	ctx_t *c = ctx_with_cancel(ctx_background(), &h1);
	h2 = ctx_cancel_dup(h1);
	assert_non_null(h2);
	ctx_cancel(h1);
	ut_assert_done(c, ECANCELED, ECANCELED);
	ctx_release(c);
	assert_int_equal(ut_live(), ut_base + 1); /* h2 still holds it */
	ctx_cancel_cause(h2, 12);
	ut_assert_no_leak();
	assert_int_equal(ut_frees_now() - frees0, 1);

	/* The dup used first, on a timer context. */
	c = ctx_with_timeout(ctx_background(), 3600 * CTX_SECOND, &h1);
	h2 = ctx_cancel_dup(h1);
	ctx_cancel_cause(h2, 12);
	ut_assert_done(c, ECANCELED, 12);
	ctx_cancel(h1);
	ut_assert_done(c, ECANCELED, 12);
	ctx_release(c);
	ut_assert_no_leak();

	errno = 0;
	assert_null(ctx_cancel_dup(NULL));
	assert_int_equal(errno, EINVAL);
}

static atomic_int nullparent_frees;
static void count_free(void *p)
{
	(void)p;
	atomic_fetch_add(&nullparent_frees, 1);
}

/* Every constructor given a NULL parent returns NULL with errno EINVAL,
 * sets *cancel to NULL (when given), calls no free_val and leaves nothing
 * behind. */
static void test_null_parent_einval(void **state)
{
	(void)state;
	ctx_cancel_t *const junk = (ctx_cancel_t *)&key_a; /* not a handle */
	ctx_cancel_t *h;
	ctx_time_t d = ctx_now() + CTX_SECOND;
#define EXPECT_EINVAL(call)                                                             \
	do {                                                                            \
		h = junk;                                                               \
		errno = 0;                                                              \
		assert_null(call);                                                      \
		assert_int_equal(errno, EINVAL);                                        \
	} while (0)
#define EXPECT_EINVAL_H(call)                                                           \
	do {                                                                            \
		EXPECT_EINVAL(call);                                                    \
		assert_null(h);                                                         \
	} while (0)
	EXPECT_EINVAL_H(ctx_with_cancel(NULL, &h));
	EXPECT_EINVAL(ctx_with_cancel(NULL, NULL));
	EXPECT_EINVAL_H(ctx_with_deadline(NULL, d, &h));
	EXPECT_EINVAL_H(ctx_with_deadline(NULL, 0, &h)); /* past deadline: still EINVAL */
	EXPECT_EINVAL(ctx_with_deadline(NULL, d, NULL));
	EXPECT_EINVAL_H(ctx_with_timeout(NULL, CTX_SECOND, &h));
	EXPECT_EINVAL(ctx_with_timeout(NULL, CTX_SECOND, NULL));
	EXPECT_EINVAL_H(ctx_with_deadline_cause(NULL, d, 5, &h));
	EXPECT_EINVAL_H(ctx_with_timeout_cause(NULL, CTX_SECOND, 5, &h));
	EXPECT_EINVAL_H(ctx_with_timeout_cause(NULL, -1, 5, &h));
	EXPECT_EINVAL(ctx_with_value(NULL, &key_a, &key_b, count_free));
	EXPECT_EINVAL(ctx_without_cancel(NULL));
#undef EXPECT_EINVAL_H
#undef EXPECT_EINVAL
	assert_int_equal(atomic_load(&nullparent_frees), 0);
	ctx_release(NULL); /* a no-op */
	ut_assert_no_leak();
}

/* "When the last reference and the last handle are gone, the context leaves
 * its parent and the timer queue and is freed, cancelled or not." */
static void test_release_leaves_parent_and_frees(void **state)
{
	(void)state;
	size_t pending0 = ctx__timers_pending();
	ctx_cancel_t *hp;
	ctx_t *p = ctx_with_cancel(ctx_background(), &hp);
	long live0 = ut_live();

	ctx_t *c = ctx_with_cancel(p, NULL);
	ctx_t *t = ctx_with_timeout(p, 3600 * CTX_SECOND, NULL);
	ctx_t *v = ctx_with_value(p, &key_a, NULL, NULL);
	ctx_t *tv = ctx_with_deadline(v, ctx_now() + 3600 * CTX_SECOND, NULL);
	assert_int_equal(ctx__children_count(p), 3);
	assert_int_equal(ctx__timers_pending(), pending0 + 2);
	assert_int_equal(ut_live(), live0 + 4);

	ctx_release(c); /* never cancelled */
	assert_int_equal(ctx__children_count(p), 2);
	assert_int_equal(ut_live(), live0 + 3);
	ctx_release(t);
	assert_int_equal(ctx__children_count(p), 1);
	assert_int_equal(ctx__timers_pending(), pending0 + 1);
	ctx_release(tv);
	assert_int_equal(ctx__children_count(p), 0);
	assert_int_equal(ctx__timers_pending(), pending0);
	ctx_release(v);
	assert_int_equal(ut_live(), live0);

	/* With a handle: the handle keeps it listed until it is used. */
	ctx_cancel_t *h;
	c = ctx_with_timeout(p, 3600 * CTX_SECOND, &h);
	ctx_release(c);
	assert_int_equal(ctx__children_count(p), 1);
	assert_int_equal(ctx__timers_pending(), pending0 + 1);
	ctx_cancel(h);
	assert_int_equal(ctx__children_count(p), 0);
	assert_int_equal(ctx__timers_pending(), pending0);
	assert_int_equal(ut_live(), live0);

	/* Cancelled (through the parent), then released. */
	ctx_cancel_t *hp2;
	ctx_t *p2 = ctx_with_cancel(p, &hp2);
	c = ctx_with_cancel(p2, NULL);
	ctx_cancel(hp2);
	ut_assert_done(c, ECANCELED, ECANCELED);
	ctx_release(c);
	ctx_release(p2);
	assert_int_equal(ut_live(), live0);

	ut_assert_live(p);
	ctx_cancel(hp);
	ctx_release(p);
	ut_assert_no_leak();
}

/* A child holds a reference to its parent (the parent outlives the caller's
 * reference and handle); a parent does not keep its children alive. */
static void test_child_holds_parent(void **state)
{
	(void)state;
	ctx_cancel_t *hp;
	ctx_t *p = ctx_with_cancel(ctx_background(), &hp);
	ctx_t *v = ctx_with_value(p, &key_a, &key_b, NULL);
	ctx_t *c = ctx_with_cancel(v, NULL);
	long live0 = ut_live();
	ctx_release(v);
	ctx_release(p);
	assert_int_equal(ut_live(), live0); /* both held by c */
	ctx_cancel_cause(hp, 3);            /* the parent's last handle */
	assert_int_equal(ut_live(), live0);
	ut_assert_done(c, ECANCELED, 3);
	assert_ptr_equal(ctx_value(c, &key_a), &key_b);
	ctx_release(c);
	ut_assert_no_leak();

	/* The parent does not keep a released child. */
	p = ctx_with_cancel(ctx_background(), &hp);
	live0 = ut_live();
	c = ctx_with_cancel(p, NULL);
	assert_int_equal(ut_live(), live0 + 1);
	ctx_release(c);
	assert_int_equal(ut_live(), live0);
	assert_int_equal(ctx__children_count(p), 0);
	ctx_cancel(hp);
	ctx_release(p);
	ut_assert_no_leak();
}

#define T(f) cmocka_unit_test_setup(f, ut_mark)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_background_todo_never_done),
		T(test_cancel_marks_subtree_done_before_return),
		T(test_cancel_reaches_each_descendant_once),
		T(test_first_cancellation_wins),
		T(test_parent_finishes_child),
		T(test_child_finishes_first),
		T(test_cancel_removes_child),
		T(test_child_of_done_parent_born_done),
		T(test_child_of_timed_out_parent_born_done),
		T(test_simultaneous_cancels),
		T(test_interlocked_cancels),
		T(test_layers_cancel),
		T(test_layers_timeout),
		T(test_format_cancel_chain),
		T(test_with_cancel_simultaneously_canceled_parent),
		T(test_concurrent_cancel_same_context_subtree_done),
		T(test_concurrent_cancel_ancestor_and_descendant),
		T(test_deep_chain_cancel),
		T(test_deep_chain_release),
		T(test_cancel_dup),
		T(test_null_parent_einval),
		T(test_release_leaves_parent_and_frees),
		T(test_child_holds_parent),
	};
	return cmocka_run_group_tests(tests, ut_group_setup, NULL);
}
