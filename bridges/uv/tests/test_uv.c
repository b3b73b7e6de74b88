/* test_uv.c: the libuv bridge (goctx/uv.h) against the real libuv: watch
 * callbacks on the loop's thread, a TCP echo server closing connections at
 * their deadlines, uv_cancel from a watch, cancels from other threads,
 * close/stop in every state, uv_ref semantics, and 100,000 watched contexts. */
#include <arpa/inet.h>
#include <malloc.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include "util.h"

#include "goctx/uv.h"

/* ---- helpers ---- */

/* Byte counts on top of util.h's counting allocator (for the size report). */
static atomic_long bytes_live;

static void *count_alloc(size_t n)
{
	void *p = ut_alloc(n);
	if (p)
		atomic_fetch_add(&bytes_live, (long)malloc_usable_size(p));
	return p;
}

static void count_free(void *p)
{
	if (p)
		atomic_fetch_sub(&bytes_live, (long)malloc_usable_size(p));
	ut_free(p);
}

static int group_setup(void **state)
{
	(void)state;
	return ctx_set_allocator(count_alloc, count_free);
}

/* A loop per test, with an unreferenced watchdog timer that fails the test
 * instead of letting a lost wake-up hang it. */
struct tloop {
	uv_loop_t loop;
	uv_timer_t dog;
};

static void dog_fired(uv_timer_t *t)
{
	(void)t;
	fail_msg("the loop ran 20 s: a watch callback never came");
}

static void tloop_init(struct tloop *l)
{
	assert_int_equal(uv_loop_init(&l->loop), 0);
	assert_int_equal(uv_timer_init(&l->loop, &l->dog), 0);
	assert_int_equal(uv_timer_start(&l->dog, dog_fired, 20000, 0), 0);
	uv_unref((uv_handle_t *)&l->dog);
}

static void tloop_done(struct tloop *l)
{
	uv_close((uv_handle_t *)&l->dog, NULL);
	assert_int_equal(uv_run(&l->loop, UV_RUN_DEFAULT), 0);
	/* Every watch closed and the loop ran: the shared async is gone too. */
	assert_int_equal(uv_loop_close(&l->loop), 0);
}

/* What a watch callback saw. */
struct seen {
	int calls;
	int err;
	pthread_t thread;
	int closes;
	bool close_in_cb;
};

static void record(ctx_uv_watch_t *w, int err)
{
	struct seen *s = w->data;
	s->calls++;
	s->err = err;
	s->thread = pthread_self();
	if (s->close_in_cb)
		ctx_uv_watch_close(w, NULL);
}

static void closed(ctx_uv_watch_t *w)
{
	struct seen *s = w->data;
	s->closes++;
}

/* ---- basics ---- */

static void t_deadline_fires_on_loop(void **state)
{
	(void)state;
	struct tloop l;
	tloop_init(&l);
	ctx_cancel_t *cancel;
	ctx_t *ctx = ctx_with_timeout(ctx_background(), 10 * CTX_MILLISECOND, &cancel);
	ctx_uv_watch_t w;
	struct seen s = {.close_in_cb = true};
	assert_int_equal(ctx_uv_watch_init(&l.loop, &w), 0);
	w.data = &s;
	assert_int_equal(ctx_uv_watch_start(&w, ctx, record), 0);
	assert_true(ctx_uv_watch_is_active(&w));
	/* The active referenced watch is what keeps uv_run going. */
	assert_int_equal(uv_run(&l.loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(s.calls, 1);
	assert_int_equal(s.err, ETIMEDOUT);
	assert_true(pthread_equal(s.thread, pthread_self()));
	assert_true(ctx_done(ctx));
	ctx_cancel(cancel);
	ctx_release(ctx);
	tloop_done(&l);
	ut_assert_no_leak_eventually();
}

static void t_done_ctx_calls_back_on_next_iteration(void **state)
{
	(void)state;
	struct tloop l;
	tloop_init(&l);
	ctx_cancel_t *cancel;
	ctx_t *ctx = ctx_with_cancel(ctx_background(), &cancel);
	ctx_cancel(cancel);
	ctx_uv_watch_t w;
	struct seen s = {0};
	assert_int_equal(ctx_uv_watch_init(&l.loop, &w), 0);
	w.data = &s;
	assert_int_equal(ctx_uv_watch_start(&w, ctx, record), 0);
	ctx_release(ctx); /* the watch holds its own reference */
	assert_int_equal(s.calls, 0); /* never inside start */
	uv_run(&l.loop, UV_RUN_NOWAIT);
	assert_int_equal(s.calls, 1);
	assert_int_equal(s.err, ECANCELED);
	assert_false(ctx_uv_watch_is_active(&w));
	ctx_uv_watch_close(&w, closed);
	tloop_done(&l);
	assert_int_equal(s.closes, 1);
	assert_int_equal(s.calls, 1);
	ut_assert_no_leak();
}

static void t_bad_arguments(void **state)
{
	(void)state;
	struct tloop l;
	tloop_init(&l);
	ctx_uv_watch_t w;
	assert_int_equal(ctx_uv_watch_init(NULL, &w), UV_EINVAL);
	assert_int_equal(ctx_uv_watch_init(&l.loop, NULL), UV_EINVAL);
	assert_int_equal(ctx_uv_watch_init(&l.loop, &w), 0);
	assert_int_equal(ctx_uv_watch_start(&w, NULL, record), UV_EINVAL);
	assert_int_equal(ctx_uv_watch_start(&w, ctx_background(), NULL), UV_EINVAL);
	assert_int_equal(ctx_uv_watch_stop(&w), 0); /* inactive: no-op */
	ctx_uv_watch_close(&w, NULL);
	assert_true(ctx_uv_watch_is_closing(&w));
	assert_int_equal(ctx_uv_watch_start(&w, ctx_background(), record), UV_EINVAL);
	ctx_uv_watch_close(&w, NULL); /* closing twice: no-op */
	tloop_done(&l);
	ut_assert_no_leak();
}

/* ---- close and stop in every state ---- */

static void t_close_before_done(void **state)
{
	(void)state;
	struct tloop l;
	tloop_init(&l);
	ctx_cancel_t *cancel;
	ctx_t *ctx = ctx_with_cancel(ctx_background(), &cancel);
	ctx_uv_watch_t w;
	struct seen s = {0};
	assert_int_equal(ctx_uv_watch_init(&l.loop, &w), 0);
	w.data = &s;
	assert_int_equal(ctx_uv_watch_start(&w, ctx, record), 0);
	ctx_uv_watch_close(&w, closed);
	assert_int_equal(s.closes, 0); /* the close callback waits for the loop */
	assert_int_equal(uv_run(&l.loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(s.closes, 1);
	ctx_cancel(cancel);
	uv_run(&l.loop, UV_RUN_NOWAIT);
	assert_int_equal(s.calls, 0);
	ctx_release(ctx);
	tloop_done(&l);
	ut_assert_no_leak();
}

static void t_close_after_done(void **state)
{
	(void)state;
	struct tloop l;
	tloop_init(&l);
	ctx_cancel_t *cancel;
	ctx_t *ctx = ctx_with_cancel(ctx_background(), &cancel);
	ctx_uv_watch_t w;
	struct seen s = {0};
	assert_int_equal(ctx_uv_watch_init(&l.loop, &w), 0);
	w.data = &s;
	assert_int_equal(ctx_uv_watch_start(&w, ctx, record), 0);
	ctx_cancel(cancel);
	assert_int_equal(uv_run(&l.loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(s.calls, 1);
	ctx_uv_watch_close(&w, closed);
	assert_int_equal(uv_run(&l.loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(s.closes, 1);
	assert_int_equal(s.calls, 1);
	ctx_release(ctx);
	tloop_done(&l);
	ut_assert_no_leak();
}

/* Done (queued for the loop) and then closed before the loop ran: only the
 * close callback runs. */
static void t_close_while_queued(void **state)
{
	(void)state;
	struct tloop l;
	tloop_init(&l);
	ctx_cancel_t *cancel;
	ctx_t *ctx = ctx_with_cancel(ctx_background(), &cancel);
	ctx_uv_watch_t w;
	struct seen s = {0};
	assert_int_equal(ctx_uv_watch_init(&l.loop, &w), 0);
	w.data = &s;
	assert_int_equal(ctx_uv_watch_start(&w, ctx, record), 0);
	ctx_cancel(cancel);
	ctx_release(ctx);
	ctx_uv_watch_close(&w, closed);
	assert_int_equal(uv_run(&l.loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(s.calls, 0);
	assert_int_equal(s.closes, 1);
	tloop_done(&l);
	ut_assert_no_leak();
}

/* Stopped while queued, restarted on another done context: one callback,
 * with the second context's error. */
static void t_stop_queued_then_restart(void **state)
{
	(void)state;
	struct tloop l;
	tloop_init(&l);
	ctx_cancel_t *c1, *c2;
	ctx_t *x1 = ctx_with_cancel(ctx_background(), &c1);
	ctx_t *x2 = ctx_with_timeout(ctx_background(), -1, &c2); /* done: ETIMEDOUT */
	ctx_cancel(c1);
	ctx_uv_watch_t w;
	struct seen s = {0};
	assert_int_equal(ctx_uv_watch_init(&l.loop, &w), 0);
	w.data = &s;
	assert_int_equal(ctx_uv_watch_start(&w, x1, record), 0);
	assert_int_equal(ctx_uv_watch_stop(&w), 0);
	assert_false(ctx_uv_watch_is_active(&w));
	assert_int_equal(ctx_uv_watch_start(&w, x1, record), 0);
	assert_int_equal(ctx_uv_watch_start(&w, x2, record), 0); /* restart */
	uv_run(&l.loop, UV_RUN_NOWAIT);
	assert_int_equal(s.calls, 1);
	assert_int_equal(s.err, ETIMEDOUT);
	ctx_uv_watch_close(&w, NULL);
	ctx_cancel(c2);
	ctx_release(x1);
	ctx_release(x2);
	tloop_done(&l);
	ut_assert_no_leak();
}

/* ---- uv_ref semantics ---- */

static void t_unref_does_not_keep_loop(void **state)
{
	(void)state;
	struct tloop l;
	tloop_init(&l);
	ctx_cancel_t *cancel;
	ctx_t *ctx = ctx_with_timeout(ctx_background(), 5 * CTX_MILLISECOND, &cancel);
	ctx_uv_watch_t w;
	struct seen s = {0};
	assert_int_equal(ctx_uv_watch_init(&l.loop, &w), 0);
	w.data = &s;
	assert_true(ctx_uv_watch_has_ref(&w));
	/* An inactive referenced watch does not keep the loop alive. */
	assert_int_equal(uv_run(&l.loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(ctx_uv_watch_start(&w, ctx, record), 0);
	ctx_uv_watch_unref(&w);
	assert_false(ctx_uv_watch_has_ref(&w));
	/* Active but unreferenced: uv_run returns without waiting. */
	assert_int_equal(uv_run(&l.loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(s.calls, 0);
	assert_true(ctx_uv_watch_is_active(&w));
	/* Referenced again: uv_run waits for the deadline's callback. */
	ctx_uv_watch_ref(&w);
	assert_int_equal(uv_run(&l.loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(s.calls, 1);
	assert_int_equal(s.err, ETIMEDOUT);
	ctx_uv_watch_close(&w, NULL);
	ctx_cancel(cancel);
	ctx_release(ctx);
	tloop_done(&l);
	ut_assert_no_leak_eventually();
}

static void count_bridge(uv_handle_t *h, void *arg)
{
	if (ctx_uv_is_bridge_handle(h))
		++*(int *)arg;
}

static void t_one_async_per_loop(void **state)
{
	(void)state;
	struct tloop l;
	tloop_init(&l);
	enum { N = 50 };
	ctx_uv_watch_t w[N];
	for (int i = 0; i < N; i++)
		assert_int_equal(ctx_uv_watch_init(&l.loop, &w[i]), 0);
	int n = 0;
	uv_walk(&l.loop, count_bridge, &n);
	assert_int_equal(n, 1);
	assert_false(ctx_uv_is_bridge_handle((uv_handle_t *)&l.dog));
	for (int i = 0; i < N; i++)
		ctx_uv_watch_close(&w[i], NULL);
	assert_int_equal(uv_run(&l.loop, UV_RUN_DEFAULT), 0);
	n = 0;
	uv_walk(&l.loop, count_bridge, &n);
	assert_int_equal(n, 0);
	tloop_done(&l);
}

/* ---- cancel from another thread while the loop runs ---- */

static void *cancel_thread(void *arg)
{
	ctx_cancel((ctx_cancel_t *)arg);
	return NULL;
}

static void t_cancel_from_other_thread(void **state)
{
	(void)state;
	struct tloop l;
	tloop_init(&l);
	int rounds = UT_ITERS(300);
	for (int i = 0; i < rounds; i++) {
		ctx_cancel_t *cancel;
		ctx_t *ctx = ctx_with_cancel(ctx_background(), &cancel);
		ctx_uv_watch_t w;
		struct seen s = {.close_in_cb = true};
		assert_int_equal(ctx_uv_watch_init(&l.loop, &w), 0);
		w.data = &s;
		assert_int_equal(ctx_uv_watch_start(&w, ctx, record), 0);
		pthread_t t;
		assert_int_equal(pthread_create(&t, NULL, cancel_thread, cancel), 0);
		assert_int_equal(uv_run(&l.loop, UV_RUN_DEFAULT), 0);
		assert_true(ut_join_ms(t, 10000, NULL));
		assert_int_equal(s.calls, 1);
		assert_int_equal(s.err, ECANCELED);
		assert_true(pthread_equal(s.thread, pthread_self()));
		ctx_release(ctx);
	}
	tloop_done(&l);
	ut_assert_no_leak();
}

/* Another thread cancels while the loop thread stops and restarts the same
 * watches: a callback either runs once for the context it was started on or
 * not at all, and a stopped watch is never called. */
struct race {
	ctx_cancel_t *cancel[64];
	int n;
};

static void *cancel_all(void *arg)
{
	struct race *r = arg;
	for (int i = 0; i < r->n; i++)
		ctx_cancel(r->cancel[i]);
	return NULL;
}

static void t_stop_races_cancel(void **state)
{
	(void)state;
	struct tloop l;
	tloop_init(&l);
	enum { N = 64 };
	int rounds = UT_ITERS(100);
	for (int round = 0; round < rounds; round++) {
		struct race r = {.n = N};
		ctx_t *ctx[N];
		ctx_uv_watch_t w[N];
		struct seen s[N];
		memset(s, 0, sizeof s);
		for (int i = 0; i < N; i++) {
			ctx[i] = ctx_with_cancel(ctx_background(), &r.cancel[i]);
			assert_int_equal(ctx_uv_watch_init(&l.loop, &w[i]), 0);
			w[i].data = &s[i];
			assert_int_equal(ctx_uv_watch_start(&w[i], ctx[i], record), 0);
		}
		pthread_t t;
		assert_int_equal(pthread_create(&t, NULL, cancel_all, &r), 0);
		for (int i = 0; i < N; i += 2)
			ctx_uv_watch_stop(&w[i]); /* even ones: never called */
		uv_run(&l.loop, UV_RUN_NOWAIT);
		assert_true(ut_join_ms(t, 10000, NULL));
		/* Odd ones: called once all cancels are queued and run. */
		for (int i = 1; i < N; i += 2)
			while (s[i].calls == 0)
				uv_run(&l.loop, UV_RUN_ONCE);
		for (int i = 0; i < N; i++) {
			assert_int_equal(s[i].calls, i % 2);
			ctx_uv_watch_close(&w[i], NULL);
			ctx_release(ctx[i]);
		}
		assert_int_equal(uv_run(&l.loop, UV_RUN_DEFAULT), 0);
	}
	tloop_done(&l);
	ut_assert_no_leak();
}

/* ---- a uv_queue_work job cancelled from a watch ---- */

struct work {
	uv_work_t blocker, victim;
	sem_t release;
	bool victim_ran;
	int blocker_status, victim_status;
	int cancel_rc;
	ctx_uv_watch_t watch;
};

static void blocker_work(uv_work_t *req)
{
	struct work *wk = req->data;
	if (!ut_sem_wait_ms(&wk->release, 20000))
		abort();
}

static void victim_work(uv_work_t *req)
{
	struct work *wk = req->data;
	wk->victim_ran = true;
}

static void blocker_after(uv_work_t *req, int status)
{
	struct work *wk = req->data;
	wk->blocker_status = status;
}

static void victim_after(uv_work_t *req, int status)
{
	struct work *wk = req->data;
	wk->victim_status = status;
}

static void cancel_victim(ctx_uv_watch_t *w, int err)
{
	struct work *wk = w->data;
	assert_int_equal(err, ETIMEDOUT);
	wk->cancel_rc = uv_cancel((uv_req_t *)&wk->victim);
	sem_post(&wk->release);
	ctx_uv_watch_close(w, NULL);
}

static void t_queue_work_cancelled_by_watch(void **state)
{
	(void)state;
	struct tloop l;
	tloop_init(&l);
	struct work wk = {.blocker_status = 1, .victim_status = 1, .cancel_rc = 1};
	assert_int_equal(sem_init(&wk.release, 0, 0), 0);
	wk.blocker.data = wk.victim.data = &wk;
	/* UV_THREADPOOL_SIZE=1 (main): the blocker holds the pool's only thread,
	 * so the victim is still queued when the deadline's callback cancels it. */
	assert_int_equal(uv_queue_work(&l.loop, &wk.blocker, blocker_work, blocker_after), 0);
	assert_int_equal(uv_queue_work(&l.loop, &wk.victim, victim_work, victim_after), 0);
	ctx_cancel_t *cancel;
	ctx_t *ctx = ctx_with_timeout(ctx_background(), 20 * CTX_MILLISECOND, &cancel);
	assert_int_equal(ctx_uv_watch_init(&l.loop, &wk.watch), 0);
	wk.watch.data = &wk;
	assert_int_equal(ctx_uv_watch_start(&wk.watch, ctx, cancel_victim), 0);
	assert_int_equal(uv_run(&l.loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(wk.cancel_rc, 0);
	assert_int_equal(wk.victim_status, UV_ECANCELED);
	assert_false(wk.victim_ran);
	assert_int_equal(wk.blocker_status, 0);
	ctx_cancel(cancel);
	ctx_release(ctx);
	sem_destroy(&wk.release);
	tloop_done(&l);
	ut_assert_no_leak_eventually();
}

/* ---- a TCP echo server whose connections end at their deadlines ---- */

enum { CONNS = 8 };
#define CONN_TIMEOUT (50 * CTX_MILLISECOND)

struct server {
	uv_tcp_t tcp;
	int port;
	int accepted, finished;
	int timed_out; /* connections whose watch saw ETIMEDOUT */
	int early;     /* closed before their deadline (must stay 0) */
	long echoed;
};

struct conn {
	uv_tcp_t tcp;
	ctx_uv_watch_t watch;
	struct server *srv;
	ctx_t *ctx;
	ctx_cancel_t *cancel;
	ctx_time_t deadline;
	int open; /* of tcp and watch, not yet through their close callbacks */
	char buf[256];
};

static void conn_release(struct conn *c)
{
	if (--c->open > 0)
		return;
	struct server *srv = c->srv;
	ctx_cancel(c->cancel);
	ctx_release(c->ctx);
	free(c);
	if (++srv->finished == CONNS)
		uv_close((uv_handle_t *)&srv->tcp, NULL);
}

static void tcp_closed(uv_handle_t *h) { conn_release(h->data); }
static void watch_closed(ctx_uv_watch_t *w) { conn_release(w->data); }

static void conn_close(struct conn *c)
{
	if (!uv_is_closing((uv_handle_t *)&c->tcp))
		uv_close((uv_handle_t *)&c->tcp, tcp_closed);
	ctx_uv_watch_close(&c->watch, watch_closed);
}

static void conn_deadline(ctx_uv_watch_t *w, int err)
{
	struct conn *c = w->data;
	if (err == ETIMEDOUT)
		c->srv->timed_out++;
	if (ctx_now() < c->deadline)
		c->srv->early++;
	conn_close(c);
}

static void conn_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
	(void)size;
	struct conn *c = h->data;
	*buf = uv_buf_init(c->buf, sizeof c->buf);
}

struct wreq {
	uv_write_t req;
	char data[256];
};

static void written(uv_write_t *req, int status)
{
	(void)status;
	free(req);
}

static void conn_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct conn *c = s->data;
	if (n < 0) {
		conn_close(c);
		return;
	}
	if (n == 0)
		return;
	struct wreq *w = malloc(sizeof *w);
	assert_non_null(w);
	memcpy(w->data, buf->base, (size_t)n);
	uv_buf_t out = uv_buf_init(w->data, (unsigned)n);
	c->srv->echoed += n;
	assert_int_equal(uv_write(&w->req, s, &out, 1, written), 0);
}

static void on_connection(uv_stream_t *server, int status)
{
	assert_int_equal(status, 0);
	struct server *srv = server->data;
	struct conn *c = calloc(1, sizeof *c);
	assert_non_null(c);
	c->srv = srv;
	c->open = 2;
	assert_int_equal(uv_tcp_init(server->loop, &c->tcp), 0);
	c->tcp.data = c;
	assert_int_equal(uv_accept(server, (uv_stream_t *)&c->tcp), 0);
	c->ctx = ctx_with_timeout(ctx_background(), CONN_TIMEOUT, &c->cancel);
	assert_non_null(c->ctx);
	assert_true(ctx_deadline(c->ctx, &c->deadline));
	assert_int_equal(ctx_uv_watch_init(server->loop, &c->watch), 0);
	c->watch.data = c;
	assert_int_equal(ctx_uv_watch_start(&c->watch, c->ctx, conn_deadline), 0);
	assert_int_equal(uv_read_start((uv_stream_t *)&c->tcp, conn_alloc, conn_read), 0);
	srv->accepted++;
}

/* The clients, in a thread of their own with blocking sockets: connect, see
 * the echo, then wait for the server to hang up. Returns the number of
 * connections that saw both. */
static void *clients(void *arg)
{
	struct server *srv = arg;
	int fds[CONNS];
	long good = 0;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)srv->port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (int i = 0; i < CONNS; i++) {
		fds[i] = socket(AF_INET, SOCK_STREAM, 0);
		if (fds[i] < 0 || connect(fds[i], (struct sockaddr *)&a, sizeof a) != 0)
			return (void *)-1L;
		if (write(fds[i], "ping", 4) != 4)
			return (void *)-1L;
	}
	for (int i = 0; i < CONNS; i++) {
		char buf[8];
		size_t got = 0;
		bool echo = false, eof = false;
		while (!eof) {
			struct pollfd p = {.fd = fds[i], .events = POLLIN};
			if (poll(&p, 1, 10000) != 1)
				break; /* bounded: the server never hung up */
			ssize_t n = read(fds[i], buf + got, sizeof buf - got);
			if (n <= 0) {
				eof = true;
				break;
			}
			got += (size_t)n;
			if (got == 4 && memcmp(buf, "ping", 4) == 0)
				echo = true;
		}
		close(fds[i]);
		good += echo && eof;
	}
	return (void *)good;
}

static void t_echo_server_deadlines(void **state)
{
	(void)state;
	struct tloop l;
	tloop_init(&l);
	struct server srv = {0};
	assert_int_equal(uv_tcp_init(&l.loop, &srv.tcp), 0);
	srv.tcp.data = &srv;
	struct sockaddr_in a;
	assert_int_equal(uv_ip4_addr("127.0.0.1", 0, &a), 0);
	assert_int_equal(uv_tcp_bind(&srv.tcp, (struct sockaddr *)&a, 0), 0);
	int len = sizeof a;
	assert_int_equal(uv_tcp_getsockname(&srv.tcp, (struct sockaddr *)&a, &len), 0);
	srv.port = ntohs(a.sin_port);
	assert_int_equal(uv_listen((uv_stream_t *)&srv.tcp, CONNS, on_connection), 0);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, clients, &srv), 0);
	/* Runs until every connection ended at its deadline and the server
	 * closed (conn_release). */
	assert_int_equal(uv_run(&l.loop, UV_RUN_DEFAULT), 0);
	void *good;
	assert_true(ut_join_ms(t, 20000, &good));
	assert_int_equal((long)good, CONNS);
	assert_int_equal(srv.accepted, CONNS);
	assert_int_equal(srv.timed_out, CONNS);
	assert_int_equal(srv.early, 0);
	assert_int_equal(srv.echoed, 4 * CONNS);
	tloop_done(&l);
	ut_assert_no_leak_eventually();
}

/* ---- many watches on one context; one watch each on 100,000 contexts ---- */

static int order_next;

static void count_cb(ctx_uv_watch_t *w, int err)
{
	int *slot = w->data;
	assert_int_equal(err, ECANCELED);
	assert_int_equal(*slot, 0);
	*slot = ++order_next;
}

static void t_many_watches_one_ctx(void **state)
{
	(void)state;
	struct tloop l;
	tloop_init(&l);
	enum { N = 1000 };
	ctx_uv_watch_t *w = calloc(N, sizeof *w);
	int *slot = calloc(N, sizeof *slot);
	assert_non_null(w);
	assert_non_null(slot);
	ctx_cancel_t *cancel;
	ctx_t *ctx = ctx_with_cancel(ctx_background(), &cancel);
	for (int i = 0; i < N; i++) {
		assert_int_equal(ctx_uv_watch_init(&l.loop, &w[i]), 0);
		w[i].data = &slot[i];
		assert_int_equal(ctx_uv_watch_start(&w[i], ctx, count_cb), 0);
	}
	order_next = 0;
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, cancel_thread, cancel), 0);
	assert_int_equal(uv_run(&l.loop, UV_RUN_DEFAULT), 0);
	assert_true(ut_join_ms(t, 10000, NULL));
	assert_int_equal(order_next, N);
	for (int i = 0; i < N; i++)
		ctx_uv_watch_close(&w[i], NULL);
	ctx_release(ctx);
	tloop_done(&l);
	free(w);
	free(slot);
	ut_assert_no_leak();
}

struct fleet {
	ctx_cancel_t **cancel;
	int n;
};

static void *cancel_fleet(void *arg)
{
	struct fleet *f = arg;
	for (int i = 0; i < f->n; i++)
		ctx_cancel(f->cancel[i]);
	return NULL;
}

static void t_100k_contexts(void **state)
{
	(void)state;
	struct tloop l;
	tloop_init(&l);
	enum { N = 100000 };
	ctx_uv_watch_t *w = calloc(N, sizeof *w);
	int *slot = calloc(N, sizeof *slot);
	ctx_t **ctx = calloc(N, sizeof *ctx);
	struct fleet f = {.cancel = calloc(N, sizeof(ctx_cancel_t *)), .n = N};
	assert_true(w && slot && ctx && f.cancel);

	long base = atomic_load(&bytes_live);
	ctx_time_t t0 = ut_real_now();
	for (int i = 0; i < N; i++) {
		ctx[i] = ctx_with_cancel(ctx_background(), &f.cancel[i]);
		assert_non_null(ctx[i]);
	}
	long ctx_bytes = atomic_load(&bytes_live) - base;
	ctx_time_t t1 = ut_real_now();
	for (int i = 0; i < N; i++) {
		assert_int_equal(ctx_uv_watch_init(&l.loop, &w[i]), 0);
		w[i].data = &slot[i];
		assert_int_equal(ctx_uv_watch_start(&w[i], ctx[i], count_cb), 0);
	}
	long watch_bytes = atomic_load(&bytes_live) - base - ctx_bytes;
	ctx_time_t t2 = ut_real_now();
	order_next = 0;
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, cancel_fleet, &f), 0);
	assert_int_equal(uv_run(&l.loop, UV_RUN_DEFAULT), 0);
	ctx_time_t t3 = ut_real_now();
	assert_true(ut_join_ms(t, 60000, NULL));
	assert_int_equal(order_next, N);
	for (int i = 0; i < N; i++) {
		ctx_uv_watch_close(&w[i], NULL);
		ctx_release(ctx[i]);
	}
	assert_int_equal(uv_run(&l.loop, UV_RUN_DEFAULT), 0);
	ctx_time_t t4 = ut_real_now();
	printf("uv: %d contexts, one watch each: context %ld B, watch %zu B struct + %ld B "
	       "in goctx (its after-func) per context; make contexts %.0f ns, init+start "
	       "%.0f ns, cancel (other thread) to all callbacks %.0f ns, close %.0f ns per "
	       "watch\n",
	       N, ctx_bytes / N, sizeof(ctx_uv_watch_t), watch_bytes / N,
	       (double)(t1 - t0) / N, (double)(t2 - t1) / N, (double)(t3 - t2) / N,
	       (double)(t4 - t3) / N);
	tloop_done(&l);
	free(w);
	free(slot);
	free(ctx);
	free(f.cancel);
	ut_assert_no_leak();
}

/* ---- out of memory ---- */

static void t_start_enomem(void **state)
{
	(void)state;
	struct tloop l;
	tloop_init(&l);
	ctx_cancel_t *cancel;
	ctx_t *ctx = ctx_with_cancel(ctx_background(), &cancel);
	ctx_uv_watch_t w;
	struct seen s = {0};
	assert_int_equal(ctx_uv_watch_init(&l.loop, &w), 0);
	w.data = &s;
	long live = ut_live();
	ut_fail_allocs(1); /* the after-func's registration */
	assert_int_equal(ctx_uv_watch_start(&w, ctx, record), UV_ENOMEM);
	atomic_store(&ut_fail_next, 0);
	assert_int_equal(ut_live(), live);
	assert_false(ctx_uv_watch_is_active(&w));
	/* Nothing keeps the loop: the failed start left no reference behind. */
	assert_int_equal(uv_run(&l.loop, UV_RUN_DEFAULT), 0);
	ctx_cancel(cancel);
	uv_run(&l.loop, UV_RUN_NOWAIT);
	assert_int_equal(s.calls, 0);
	ctx_uv_watch_close(&w, NULL);
	ctx_release(ctx);
	tloop_done(&l);
	ut_assert_no_leak();
}

int main(void)
{
	setenv("UV_THREADPOOL_SIZE", "1", 1);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(t_deadline_fires_on_loop, ut_mark),
		cmocka_unit_test_setup(t_done_ctx_calls_back_on_next_iteration, ut_mark),
		cmocka_unit_test_setup(t_bad_arguments, ut_mark),
		cmocka_unit_test_setup(t_close_before_done, ut_mark),
		cmocka_unit_test_setup(t_close_after_done, ut_mark),
		cmocka_unit_test_setup(t_close_while_queued, ut_mark),
		cmocka_unit_test_setup(t_stop_queued_then_restart, ut_mark),
		cmocka_unit_test_setup(t_unref_does_not_keep_loop, ut_mark),
		cmocka_unit_test_setup(t_one_async_per_loop, ut_mark),
		cmocka_unit_test_setup(t_cancel_from_other_thread, ut_mark),
		cmocka_unit_test_setup(t_stop_races_cancel, ut_mark),
		cmocka_unit_test_setup(t_queue_work_cancelled_by_watch, ut_mark),
		cmocka_unit_test_setup(t_echo_server_deadlines, ut_mark),
		cmocka_unit_test_setup(t_many_watches_one_ctx, ut_mark),
		cmocka_unit_test_setup(t_100k_contexts, ut_mark),
		cmocka_unit_test_setup(t_start_enomem, ut_mark),
	};
	return cmocka_run_group_tests(tests, group_setup, NULL);
}
