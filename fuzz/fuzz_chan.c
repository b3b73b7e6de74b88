/* fuzz_chan.c: a libFuzzer target that runs its input as a program of
 * non-blocking channel operations over a few channels and checks every
 * result against a sequential model of Go's channel rules.
 *
 * The input is read one byte at a time (0 once it runs out): an opcode, then
 * its arguments. The model keeps, per channel slot: made or nil, element
 * size, capacity, the buffered values (FIFO), closed, and references. One
 * thread runs everything, so no operation may block: an unbuffered channel
 * never has a peer here, a blocking send or receive is only issued when the
 * model says it completes at once. Operations:
 *   make, retain/release, try_send, try_recv, close, len/cap/elem_size,
 *   blocking send/recv that cannot block, send_ctx/recv_ctx with a live or
 *   a done context (done on entry wins), and chan_select with a timeout of 0
 *   (Go's default) over up to 12 cases mixing send, receive and done cases
 *   on made or nil channels and live, done or nil contexts (more than 8
 *   cases: no allocation is needed either).
 * Checked after each operation: the result (errno value, ok, the bytes
 * received, that the fired case is one the model says is ready, EAGAIN and
 * CHAN_NONE when none is), then len, cap and elem_size of every channel.
 * A value is elem_size bytes derived from one input byte, so a mixed-up,
 * torn or lost element shows. Every allocation is counted; at the end of
 * each input everything is released and the live count must be zero; an
 * opcode makes the next allocation fail (chan_make: NULL, ENOMEM).
 *
 * Built without libFuzzer (GOCTX_FUZZ_STANDALONE), main() replays the files
 * and directories named on the command line.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "goctx.h"
#include "goctx/chan.h"

#define NCH 4
#define MAXCAP 5
#define MAXQ 16 /* model queue room, >= MAXCAP */
#define MAXCASES 12
#define MAXELEM 24

/* ---- failing, counting allocator ---- */

static atomic_long n_alloc, n_free;
static atomic_int fail_next;

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
	atomic_fetch_add(&n_free, 1);
}

/* ---- the input ---- */

static const uint8_t *in;
static size_t in_len, in_pos;

static uint8_t next(void) { return in_pos < in_len ? in[in_pos++] : 0; }

#define CHECK(cond)                                                                        \
	do {                                                                                   \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "fuzz_chan: check failed at line %d (input byte %zu): %s\n",   \
			        __LINE__, in_pos, #cond);                                              \
			abort();                                                                       \
		}                                                                                  \
	} while (0)

/* ---- the model ---- */

static const size_t elem_sizes[] = {0, 1, 4, 8, 13, MAXELEM};

struct mchan {
	chan_t *c;          /* NULL: a nil channel slot */
	size_t elem_size, cap;
	uint8_t q[MAXQ];    /* buffered values (one byte each, expanded by fill) */
	size_t qlen;
	bool closed;
	int refs;           /* references the program holds */
};

static struct mchan M[NCH];
static ctx_t *live_ctx, *done_ctx;
static ctx_cancel_t *live_cancel, *done_cancel;

static void fill(uint8_t *buf, size_t n, uint8_t v)
{
	for (size_t i = 0; i < n; i++)
		buf[i] = (uint8_t)(v * 31u + i * 7u + 1u);
}

static bool holds(const uint8_t *buf, size_t n, uint8_t v)
{
	for (size_t i = 0; i < n; i++)
		if (buf[i] != (uint8_t)(v * 31u + i * 7u + 1u))
			return false;
	return true;
}

static bool zero(const uint8_t *buf, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (buf[i])
			return false;
	return true;
}

static void check_all(void)
{
	CHECK(chan_len(NULL) == 0 && chan_cap(NULL) == 0 && chan_elem_size(NULL) == 0);
	for (int i = 0; i < NCH; i++) {
		struct mchan *m = &M[i];
		if (!m->c)
			continue;
		CHECK(chan_len(m->c) == m->qlen);
		CHECK(chan_cap(m->c) == m->cap);
		CHECK(chan_elem_size(m->c) == m->elem_size);
	}
}

static void drop(struct mchan *m)
{
	while (m->refs-- > 0)
		chan_release(m->c);
	memset(m, 0, sizeof(*m));
}

/* Model predicates. */
static bool send_ready(const struct mchan *m) { return m->c && (m->closed || m->qlen < m->cap); }
static bool recv_ready(const struct mchan *m) { return m->c && (m->qlen > 0 || m->closed); }

/* Apply a send the model says completes: the result it must have. */
static int model_send(struct mchan *m, uint8_t v)
{
	if (m->closed)
		return EPIPE;
	m->q[m->qlen++] = v;
	return 0;
}

/* Check a completed receive of buf/ok against the model and apply it. */
static void model_recv(struct mchan *m, const uint8_t *buf, bool have_buf, bool ok)
{
	if (m->qlen > 0) {
		CHECK(ok);
		if (have_buf)
			CHECK(holds(buf, m->elem_size, m->q[0]));
		memmove(m->q, m->q + 1, --m->qlen);
	} else {
		CHECK(m->closed);
		CHECK(!ok);
		if (have_buf)
			CHECK(zero(buf, m->elem_size));
	}
}

static void op_make(void)
{
	struct mchan *m = &M[next() % NCH];
	size_t es = elem_sizes[next() % (sizeof elem_sizes / sizeof *elem_sizes)];
	size_t cap = next() % (MAXCAP + 1);
	drop(m);
	m->c = chan_make(es, cap);
	CHECK(m->c);
	m->elem_size = es;
	m->cap = cap;
	m->refs = 1;
}

static void op_make_fail(void)
{
	atomic_store(&fail_next, 1);
	errno = 0;
	chan_t *c = chan_make(elem_sizes[next() % 4], next() % (MAXCAP + 1));
	atomic_store(&fail_next, 0);
	CHECK(!c && errno == ENOMEM);
}

static void op_refs(void)
{
	struct mchan *m = &M[next() % NCH];
	if (!m->c)
		return;
	if (next() & 1) {
		CHECK(chan_retain(m->c) == m->c);
		m->refs++;
	} else if (m->refs > 1) {
		chan_release(m->c);
		m->refs--;
	}
}

static void op_try_send(void)
{
	struct mchan *m = &M[next() % NCH];
	uint8_t v = next();
	uint8_t buf[MAXELEM];
	fill(buf, sizeof buf, v);
	int r = chan_try_send(m->c, buf);
	if (!m->c)
		CHECK(r == EINVAL);
	else if (send_ready(m))
		CHECK(r == model_send(m, v));
	else
		CHECK(r == EAGAIN);
}

static void op_try_recv(void)
{
	struct mchan *m = &M[next() % NCH];
	bool use_buf = next() & 1;
	uint8_t buf[MAXELEM];
	memset(buf, 0xa5, sizeof buf);
	bool ok = true;
	int r = chan_try_recv(m->c, use_buf ? buf : NULL, &ok);
	if (!m->c) {
		CHECK(r == EINVAL);
	} else if (recv_ready(m)) {
		CHECK(r == 0);
		model_recv(m, buf, use_buf, ok);
	} else {
		CHECK(r == EAGAIN);
		CHECK(!ok);
	}
	/* Nothing written past the element. */
	for (size_t i = m->elem_size; i < sizeof buf; i++)
		CHECK(buf[i] == 0xa5);
}

static void op_close(void)
{
	struct mchan *m = &M[next() % NCH];
	int r = chan_close(m->c);
	if (!m->c) {
		CHECK(r == EINVAL);
	} else if (m->closed) {
		CHECK(r == EPIPE);
	} else {
		CHECK(r == 0);
		m->closed = true;
	}
}

/* chan_send / chan_recv when the model says they complete at once. */
static void op_blocking(void)
{
	struct mchan *m = &M[next() % NCH];
	uint8_t v = next();
	uint8_t buf[MAXELEM];
	if (!m->c)
		return;
	if (v & 1) {
		if (!send_ready(m))
			return;
		fill(buf, sizeof buf, v);
		CHECK(chan_send(m->c, buf) == model_send(m, v));
	} else {
		if (!recv_ready(m))
			return;
		bool ok = !m->qlen;
		CHECK(chan_recv(m->c, buf, &ok) == 0);
		model_recv(m, buf, true, ok);
	}
}

/* send_ctx / recv_ctx: a done context wins on entry; a live one lets a
 * ready operation happen (only ready ones are issued with it). */
static void op_with_ctx(void)
{
	struct mchan *m = &M[next() % NCH];
	uint8_t v = next();
	bool done = v & 2;
	ctx_t *x = done ? done_ctx : live_ctx;
	uint8_t buf[MAXELEM];
	if (v & 1) {
		if (!done && !send_ready(m))
			return;
		fill(buf, sizeof buf, v);
		int r = chan_send_ctx(x, m->c, buf);
		CHECK(r == (done ? ECANCELED : model_send(m, v)));
	} else {
		if (!done && !recv_ready(m))
			return;
		bool ok = true;
		memset(buf, 0xa5, sizeof buf);
		int r = chan_recv_ctx(x, m->c, buf, &ok);
		if (done) {
			CHECK(r == ECANCELED && !ok);
		} else {
			CHECK(r == 0);
			model_recv(m, buf, true, ok);
		}
	}
}

static void op_select(void)
{
	size_t n = next() % (MAXCASES + 1);
	chan_case_t cs[MAXCASES];
	uint8_t bufs[MAXCASES][MAXELEM];
	uint8_t vals[MAXCASES];
	int slot[MAXCASES];
	bool ready[MAXCASES];
	size_t nready = 0;
	for (size_t i = 0; i < n; i++) {
		uint8_t b = next();
		slot[i] = (b >> 2) % (NCH + 1); /* NCH: a nil channel */
		chan_t *c = slot[i] < NCH ? M[slot[i]].c : NULL;
		struct mchan *m = slot[i] < NCH ? &M[slot[i]] : NULL;
		vals[i] = next();
		switch (b & 3) {
		case 0:
		case 1:
			fill(bufs[i], MAXELEM, vals[i]);
			cs[i] = CHAN_CASE_SEND(c, bufs[i]);
			ready[i] = m && send_ready(m);
			break;
		case 2:
			memset(bufs[i], 0xa5, MAXELEM);
			cs[i] = CHAN_CASE_RECV(c, (vals[i] & 1) ? NULL : bufs[i]);
			ready[i] = m && recv_ready(m);
			break;
		default: {
			int k = vals[i] % 3;
			ctx_t *x = k == 0 ? NULL : k == 1 ? live_ctx : done_ctx;
			cs[i] = CHAN_CASE_DONE(x);
			ready[i] = k == 2;
			break;
		}
		}
		nready += ready[i];
	}
	size_t fired = 12345;
	int r = chan_select(n ? cs : NULL, n, 0, &fired);
	if (!nready) {
		CHECK(r == EAGAIN && fired == CHAN_NONE);
		return;
	}
	CHECK(fired < n && ready[fired]);
	size_t i = fired;
	struct mchan *m = slot[i] < NCH ? &M[slot[i]] : NULL;
	switch (cs[i].op) {
	case CHAN_SEND:
		CHECK(r == model_send(m, vals[i]));
		break;
	case CHAN_RECV:
		CHECK(r == 0);
		model_recv(m, bufs[i], cs[i].elem != NULL, cs[i].ok);
		break;
	default:
		CHECK(r == 0);
		break;
	}
}

static void op_invalid(void)
{
	struct mchan *m = &M[next() % NCH];
	size_t fired;
	CHECK(chan_select(NULL, 1, 0, &fired) == EINVAL && fired == CHAN_NONE);
	CHECK(chan_select(NULL, 0, 0, &fired) == EAGAIN);
	CHECK(chan_select(NULL, 0, CTX_FOREVER, &fired) == EDEADLK);
	chan_case_t bad = {.op = 77};
	CHECK(chan_select(&bad, 1, 0, &fired) == EINVAL);
	if (m->c && m->elem_size) {
		CHECK(chan_try_send(m->c, NULL) == EINVAL);
		chan_case_t s = CHAN_CASE_SEND(m->c, NULL);
		CHECK(chan_select(&s, 1, 0, &fired) == EINVAL);
	}
	CHECK(chan_try_recv(NULL, NULL, NULL) == EINVAL);
	CHECK(chan_close(NULL) == EINVAL);
}

static bool ready_once;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!ready_once) {
		if (ctx_set_allocator(count_alloc, count_free) != 0)
			abort();
		ready_once = true;
	}
	in = data;
	in_len = size;
	in_pos = 0;
	ctx_flush_cache(); /* counts without this thread's cached nodes */
	long base = atomic_load(&n_alloc) - atomic_load(&n_free);
	live_ctx = ctx_with_cancel(ctx_background(), &live_cancel);
	done_ctx = ctx_with_cancel(ctx_background(), &done_cancel);
	CHECK(live_ctx && done_ctx);
	ctx_cancel(done_cancel);
	memset(M, 0, sizeof M);
	for (int steps = 0; in_pos < in_len && steps < 4096; steps++) {
		switch (next() % 11) {
		case 0: op_make(); break;
		case 1: op_try_send(); break;
		case 2: op_try_recv(); break;
		case 3: op_close(); break;
		case 4: op_select(); break;
		case 5: op_refs(); break;
		case 6: op_blocking(); break;
		case 7: op_with_ctx(); break;
		case 8: op_make_fail(); break;
		case 9: op_invalid(); break;
		default: op_select(); break;
		}
		check_all();
	}
	for (int i = 0; i < NCH; i++)
		drop(&M[i]);
	ctx_cancel(live_cancel);
	ctx_release(live_ctx);
	ctx_release(done_ctx);
	ctx_flush_cache();
	CHECK(atomic_load(&n_alloc) - atomic_load(&n_free) == base);
	return 0;
}

#ifdef GOCTX_FUZZ_STANDALONE
#define GOCTX_FUZZ_NAME "goctx-fuzz-chan"
#include "replay.h"
#endif
