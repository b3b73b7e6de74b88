/* test_curl.c: the libcurl bridge (goctx/curl.h) against the real libcurl
 * and a tiny threaded HTTP server of the test's own on 127.0.0.1: a slow
 * response cut at the deadline, a cancel from another thread mid-transfer, a
 * transfer that finishes first, and many transfers in one multi loop with a
 * context each. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include "util.h"

#include "goctx/curl.h"

/* ---- the server ----
 * GET /fast  200, "hello", at once.
 * GET /slow  200, headers at once, then one byte of body every 10 ms, for
 *            10 s (Content-Length 1000): only a deadline or a cancel ends it
 *            early.
 * GET /hang  reads the request and never answers.
 * One thread per connection; each ends when its client goes away or the
 * server stops. */

struct server {
	int fd;
	int port;
	pthread_t acceptor;
	atomic_int stop;
	atomic_int conns;     /* connections accepted */
	atomic_int live;      /* connection threads still running */
	atomic_long slow_sent; /* body bytes written by /slow */
};

static struct server srv;

struct conn {
	int fd;
};

/* Wait up to ms for fd to be readable or hung up; false on server stop. */
static bool wait_in(int fd, int ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	return poll(&p, 1, ms) == 1;
}

static bool client_gone(int fd)
{
	char c;
	if (!wait_in(fd, 0))
		return false;
	return recv(fd, &c, 1, MSG_DONTWAIT) <= 0;
}

static void send_all(int fd, const char *s, size_t n)
{
	while (n > 0) {
		ssize_t k = send(fd, s, n, MSG_NOSIGNAL);
		if (k <= 0)
			return;
		s += k;
		n -= (size_t)k;
	}
}

static void *conn_main(void *arg)
{
	struct conn *c = arg;
	char req[2048] = "";
	size_t got = 0;
	while (got < sizeof req - 1 && !strstr(req, "\r\n\r\n")) {
		if (!wait_in(c->fd, 10000))
			goto out;
		ssize_t n = recv(c->fd, req + got, sizeof req - 1 - got, 0);
		if (n <= 0)
			goto out;
		got += (size_t)n;
		req[got] = 0;
	}
	if (strncmp(req, "GET /fast ", 10) == 0) {
		const char *r = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";
		send_all(c->fd, r, strlen(r));
	} else if (strncmp(req, "GET /slow ", 10) == 0) {
		const char *h = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n";
		send_all(c->fd, h, strlen(h));
		for (int i = 0; i < 1000 && !atomic_load(&srv.stop) && !client_gone(c->fd); i++) {
			if (send(c->fd, "x", 1, MSG_NOSIGNAL) != 1)
				break;
			atomic_fetch_add(&srv.slow_sent, 1);
			ut_sleep_ms(10);
		}
	} else if (strncmp(req, "GET /hang ", 10) == 0) {
		while (!atomic_load(&srv.stop) && !client_gone(c->fd))
			wait_in(c->fd, 10);
	} else {
		const char *r = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
		send_all(c->fd, r, strlen(r));
	}
out:
	close(c->fd);
	free(c);
	atomic_fetch_sub(&srv.live, 1);
	return NULL;
}

static void *acceptor_main(void *arg)
{
	(void)arg;
	while (!atomic_load(&srv.stop)) {
		if (!wait_in(srv.fd, 10))
			continue;
		int fd = accept(srv.fd, NULL, NULL);
		if (fd < 0)
			continue;
		struct conn *c = malloc(sizeof *c);
		if (!c)
			abort();
		c->fd = fd;
		atomic_fetch_add(&srv.conns, 1);
		atomic_fetch_add(&srv.live, 1);
		pthread_t t;
		if (pthread_create(&t, NULL, conn_main, c) != 0)
			abort();
		pthread_detach(t);
	}
	return NULL;
}

static int server_start(void **state)
{
	(void)state;
	srv.fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof a;
	if (srv.fd < 0 || bind(srv.fd, (struct sockaddr *)&a, sizeof a) != 0 ||
	    getsockname(srv.fd, (struct sockaddr *)&a, &len) != 0 || listen(srv.fd, 64) != 0)
		return -1;
	srv.port = ntohs(a.sin_port);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return -1;
	if (pthread_create(&srv.acceptor, NULL, acceptor_main, NULL) != 0)
		return -1;
	return ctx_set_allocator(ut_alloc, ut_free);
}

static int server_stop(void **state)
{
	(void)state;
	atomic_store(&srv.stop, 1);
	pthread_join(srv.acceptor, NULL);
	for (int i = 0; i < 100000 && atomic_load(&srv.live) > 0; i++)
		ut_sleep_ms(1);
	close(srv.fd);
	curl_global_cleanup();
	return atomic_load(&srv.live) == 0 ? 0 : -1;
}

/* ---- a client ---- */

struct body {
	char data[2048];
	size_t len;
	sem_t first; /* posted on the first byte */
	bool posted;
};

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct body *b = arg;
	size_t k = size * n;
	if (b->len + k < sizeof b->data) {
		memcpy(b->data + b->len, p, k);
		b->len += k;
	}
	if (k > 0 && !b->posted) {
		b->posted = true;
		sem_post(&b->first);
	}
	return k;
}

static CURL *easy_for(const char *path, struct body *b)
{
	CURL *e = curl_easy_init();
	assert_non_null(e);
	char url[128];
	snprintf(url, sizeof url, "http://127.0.0.1:%d%s", srv.port, path);
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, b);
	memset(b, 0, sizeof *b);
	assert_int_equal(sem_init(&b->first, 0, 0), 0);
	return e;
}

static void easy_done(CURL *e, struct body *b)
{
	curl_easy_cleanup(e);
	sem_destroy(&b->first);
}

/* ---- ctx_curl_perform ---- */

static void t_finishes_first(void **state)
{
	(void)state;
	struct body b;
	CURL *e = easy_for("/fast", &b);
	ctx_cancel_t *cancel;
	ctx_t *ctx = ctx_with_timeout(ctx_background(), 10 * CTX_SECOND, &cancel);
	assert_int_equal(ctx_curl_perform(ctx, e), CURLE_OK);
	assert_int_equal(b.len, 5);
	assert_memory_equal(b.data, "hello", 5);
	long code;
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
	assert_int_equal(code, 200);
	assert_int_equal(ctx_err(ctx), 0);
	/* The same handle again, with a context without a deadline. */
	b.len = 0;
	assert_int_equal(ctx_curl_perform(ctx_background(), e), CURLE_OK);
	assert_int_equal(b.len, 5);
	ctx_cancel(cancel);
	ctx_release(ctx);
	easy_done(e, &b);
	ut_assert_no_leak();
}

static void t_slow_response_cut_at_deadline(void **state)
{
	(void)state;
	struct body b;
	CURL *e = easy_for("/slow", &b);
	ctx_cancel_t *cancel;
	ctx_t *ctx = ctx_with_timeout(ctx_background(), 200 * CTX_MILLISECOND, &cancel);
	ctx_time_t deadline;
	assert_true(ctx_deadline(ctx, &deadline));
	CURLcode rc = ctx_curl_perform(ctx, e);
	ctx_time_t end = ut_real_now();
	assert_int_equal(rc, CTX_CURL_TIMEDOUT);
	assert_int_equal(ctx_err(ctx), ETIMEDOUT);
	assert_true(b.len > 0 && b.len < 1000); /* it was under way, and cut */
	assert_true(end >= deadline);
	/* Tolerance: the rest of the response would take seconds more. */
	assert_true(end - deadline < 2 * CTX_SECOND);
	printf("curl: slow response cut %.2f ms after the deadline, %zu of 1000 bytes\n",
	       (double)(end - deadline) / 1e6, b.len);
	ctx_cancel(cancel);
	ctx_release(ctx);
	easy_done(e, &b);
	ut_assert_no_leak_eventually();
}

struct canceller {
	ctx_cancel_t *cancel;
	struct body *b;
	ctx_time_t at;
	bool ok;
};

static void *cancel_mid_transfer(void *arg)
{
	struct canceller *c = arg;
	c->ok = ut_sem_wait_ms(&c->b->first, 10000); /* the body has started */
	c->at = ut_real_now();
	ctx_cancel(c->cancel);
	return NULL;
}

static void t_cancel_from_other_thread(void **state)
{
	(void)state;
	struct body b;
	CURL *e = easy_for("/slow", &b);
	struct canceller c = {.b = &b};
	ctx_t *ctx = ctx_with_cancel(ctx_background(), &c.cancel);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, cancel_mid_transfer, &c), 0);
	CURLcode rc = ctx_curl_perform(ctx, e);
	ctx_time_t end = ut_real_now();
	assert_true(ut_join_ms(t, 10000, NULL));
	assert_true(c.ok);
	assert_int_equal(rc, CTX_CURL_CANCELLED);
	assert_int_equal(ctx_err(ctx), ECANCELED);
	assert_true(b.len > 0 && b.len < 1000);
	printf("curl: ctx_cancel (other thread) to ctx_curl_perform returning: %.3f ms\n",
	       (double)(end - c.at) / 1e6);
	ctx_release(ctx);
	easy_done(e, &b);
	ut_assert_no_leak();
}

static void t_done_on_entry(void **state)
{
	(void)state;
	struct body b;
	CURL *e = easy_for("/fast", &b);
	int before = atomic_load(&srv.conns);
	ctx_cancel_t *cancel;
	ctx_t *ctx = ctx_with_cancel(ctx_background(), &cancel);
	ctx_cancel(cancel);
	assert_int_equal(ctx_curl_perform(ctx, e), CTX_CURL_CANCELLED);
	ctx_release(ctx);
	ctx = ctx_with_timeout(ctx_background(), -1, NULL);
	assert_int_equal(ctx_curl_perform(ctx, e), CTX_CURL_TIMEDOUT);
	ctx_release(ctx);
	assert_int_equal(atomic_load(&srv.conns), before); /* never connected */
	assert_int_equal(ctx_curl_perform(NULL, e), CURLE_BAD_FUNCTION_ARGUMENT);
	assert_int_equal(ctx_curl_perform(ctx_background(), NULL), CURLE_BAD_FUNCTION_ARGUMENT);
	assert_int_equal(ctx_curl_code(0), CURLE_OK);
	assert_int_equal(ctx_curl_code(ETIMEDOUT), CURLE_OPERATION_TIMEDOUT);
	assert_int_equal(ctx_curl_code(ECANCELED), CURLE_ABORTED_BY_CALLBACK);
	easy_done(e, &b);
	ut_assert_no_leak();
}

/* The deadline is also the transfer's own timeout: a multi loop that never
 * looks at the hooks still sees libcurl end the transfer at the deadline. */
static void t_deadline_is_curl_timeout(void **state)
{
	(void)state;
	struct body b;
	CURL *e = easy_for("/hang", &b);
	CURLM *m = curl_multi_init();
	ctx_curl_multi_t *cm = ctx_curl_multi_new(m);
	assert_non_null(cm);
	ctx_cancel_t *cancel;
	ctx_t *ctx = ctx_with_timeout(ctx_background(), 100 * CTX_MILLISECOND, &cancel);
	ctx_curl_hook_t *h = ctx_curl_multi_add(cm, e, ctx);
	assert_non_null(h);
	CURLcode result = CURLE_OK;
	for (bool fin = false; !fin;) {
		int running;
		assert_int_equal(curl_multi_perform(m, &running), CURLM_OK);
		CURLMsg *msg;
		int left;
		while ((msg = curl_multi_info_read(m, &left)))
			if (msg->msg == CURLMSG_DONE) {
				result = msg->data.result;
				fin = true;
			}
		if (!fin)
			assert_int_equal(curl_multi_poll(m, NULL, 0, 1000, NULL), CURLM_OK);
	}
	assert_int_equal(result, CURLE_OPERATION_TIMEDOUT);
	assert_int_equal(ctx_curl_multi_remove(h), CURLM_OK);
	assert_int_equal(ctx_curl_multi_free(cm), 0);
	curl_multi_cleanup(m);
	ctx_cancel(cancel);
	ctx_release(ctx);
	easy_done(e, &b);
	ut_assert_no_leak_eventually();
}

/* ---- the multi loop ---- */

/* A cancel from another thread wakes a curl_multi_poll that would otherwise
 * sleep 30 s (the transfer waits on a server that never answers). */
struct delayed {
	ctx_cancel_t *cancel;
	ctx_time_t at;
	sem_t polling;
};

static void *cancel_when_polling(void *arg)
{
	struct delayed *d = arg;
	if (!ut_sem_wait_ms(&d->polling, 10000))
		abort();
	ut_sleep_ms(20); /* let the loop thread get into curl_multi_poll: any order works */
	d->at = ut_real_now();
	ctx_cancel(d->cancel);
	return NULL;
}

static void t_multi_poll_woken_by_cancel(void **state)
{
	(void)state;
	struct body b;
	CURL *e = easy_for("/hang", &b);
	CURLM *m = curl_multi_init();
	ctx_curl_multi_t *cm = ctx_curl_multi_new(m);
	struct delayed d;
	assert_int_equal(sem_init(&d.polling, 0, 0), 0);
	ctx_t *ctx = ctx_with_cancel(ctx_background(), &d.cancel);
	ctx_curl_hook_t *h = ctx_curl_multi_add(cm, e, ctx);
	assert_ptr_equal(ctx_curl_hook_easy(h), e);
	assert_ptr_equal(ctx_curl_hook_ctx(h), ctx);
	assert_int_equal(ctx_curl_hook_code(h), CURLE_OK);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, cancel_when_polling, &d), 0);
	ctx_curl_hook_t *got = NULL;
	int polls = 0;
	while (!got) {
		int running;
		assert_int_equal(curl_multi_perform(m, &running), CURLM_OK);
		got = ctx_curl_multi_next_done(cm);
		if (got)
			break;
		if (polls++ == 0)
			sem_post(&d.polling);
		assert_int_equal(curl_multi_poll(m, NULL, 0, 30000, NULL), CURLM_OK);
	}
	ctx_time_t woke = ut_real_now();
	assert_true(ut_join_ms(t, 10000, NULL));
	assert_ptr_equal(got, h);
	assert_int_equal(ctx_curl_hook_code(h), CTX_CURL_CANCELLED);
	assert_null(ctx_curl_multi_next_done(cm));
	printf("curl: ctx_cancel (other thread) to curl_multi_poll's return and the hook: %.3f ms\n",
	       (double)(woke - d.at) / 1e6);
	assert_int_equal(ctx_curl_multi_free(cm), EBUSY);
	assert_int_equal(ctx_curl_multi_remove(h), CURLM_OK);
	assert_int_equal(ctx_curl_multi_free(cm), 0);
	curl_multi_cleanup(m);
	sem_destroy(&d.polling);
	ctx_release(ctx);
	easy_done(e, &b);
	ut_assert_no_leak();
}

/* Many transfers in one loop, one context each: fast ones finish (OK),
 * slow ones end at their deadlines, others are cancelled from another
 * thread, some are removed while their context is done but before the loop
 * took them from the queue. */
enum { XFERS = 24 };

struct xfer {
	CURL *easy;
	struct body b;
	ctx_t *ctx;
	ctx_cancel_t *cancel;
	ctx_curl_hook_t *hook;
	int kind; /* 0 fast, 1 slow + deadline, 2 slow + cancel */
	CURLcode result;
	bool done;
};

struct fleet {
	struct xfer *x;
	sem_t started;
};

static void *cancel_kind2(void *arg)
{
	struct fleet *f = arg;
	if (!ut_sem_wait_ms(&f->started, 10000))
		abort();
	for (int i = 0; i < XFERS; i++)
		if (f->x[i].kind == 2)
			ctx_cancel(f->x[i].cancel);
	return NULL;
}

static void t_many_transfers_one_loop(void **state)
{
	(void)state;
	static struct xfer x[XFERS];
	memset(x, 0, sizeof x);
	CURLM *m = curl_multi_init();
	ctx_curl_multi_t *cm = ctx_curl_multi_new(m);
	struct fleet f = {.x = x};
	assert_int_equal(sem_init(&f.started, 0, 0), 0);
	for (int i = 0; i < XFERS; i++) {
		x[i].kind = i % 3;
		x[i].easy = easy_for(x[i].kind == 0 ? "/fast" : "/slow", &x[i].b);
		curl_easy_setopt(x[i].easy, CURLOPT_PRIVATE, &x[i]);
		x[i].ctx = x[i].kind == 1
		               ? ctx_with_timeout(ctx_background(), 150 * CTX_MILLISECOND, &x[i].cancel)
		               : ctx_with_timeout(ctx_background(), 30 * CTX_SECOND, &x[i].cancel);
		x[i].hook = ctx_curl_multi_add(cm, x[i].easy, x[i].ctx);
		assert_non_null(x[i].hook);
	}
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, cancel_kind2, &f), 0);
	int finished = 0, posted = 0;
	while (finished < XFERS) {
		int running;
		assert_int_equal(curl_multi_perform(m, &running), CURLM_OK);
		CURLMsg *msg;
		int left;
		while ((msg = curl_multi_info_read(m, &left))) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			struct xfer *xp;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&xp);
			xp->result = msg->data.result;
			xp->done = true;
			assert_int_equal(ctx_curl_multi_remove(xp->hook), CURLM_OK);
			finished++;
		}
		ctx_curl_hook_t *h;
		while ((h = ctx_curl_multi_next_done(cm))) {
			struct xfer *xp;
			curl_easy_getinfo(ctx_curl_hook_easy(h), CURLINFO_PRIVATE, (char **)&xp);
			assert_false(xp->done);
			xp->result = ctx_curl_hook_code(h);
			xp->done = true;
			assert_int_equal(ctx_curl_multi_remove(h), CURLM_OK);
			finished++;
		}
		if (!posted) {
			/* Once every slow body has started, cancel the kind-2 ones. */
			bool all = true;
			for (int i = 0; i < XFERS; i++)
				if (x[i].kind == 2 && !x[i].b.posted)
					all = false;
			if (all) {
				posted = 1;
				sem_post(&f.started);
			}
		}
		if (finished < XFERS)
			assert_int_equal(curl_multi_poll(m, NULL, 0, 1000, NULL), CURLM_OK);
	}
	assert_true(ut_join_ms(t, 10000, NULL));
	for (int i = 0; i < XFERS; i++) {
		switch (x[i].kind) {
		case 0:
			assert_int_equal(x[i].result, CURLE_OK);
			assert_int_equal(x[i].b.len, 5);
			break;
		case 1:
			assert_int_equal(x[i].result, CTX_CURL_TIMEDOUT);
			/* libcurl's copy of the deadline may have ended it a moment
			 * before goctx's timer fired. */
			assert_int_equal(ctx_wait(x[i].ctx, 10 * CTX_SECOND), ETIMEDOUT);
			break;
		case 2:
			assert_int_equal(x[i].result, CTX_CURL_CANCELLED);
			assert_int_equal(ctx_err(x[i].ctx), ECANCELED);
			break;
		}
		if (x[i].kind != 2)
			ctx_cancel(x[i].cancel);
		ctx_release(x[i].ctx);
		easy_done(x[i].easy, &x[i].b);
	}
	assert_int_equal(ctx_curl_multi_free(cm), 0);
	curl_multi_cleanup(m);
	sem_destroy(&f.started);
	ut_assert_no_leak_eventually();
}

/* Removed while queued (done, not yet taken): never handed out afterwards. */
static void t_remove_while_queued(void **state)
{
	(void)state;
	CURLM *m = curl_multi_init();
	ctx_curl_multi_t *cm = ctx_curl_multi_new(m);
	struct body b1, b2;
	CURL *e1 = easy_for("/hang", &b1), *e2 = easy_for("/hang", &b2);
	ctx_cancel_t *c1, *c2;
	ctx_t *x1 = ctx_with_cancel(ctx_background(), &c1);
	ctx_t *x2 = ctx_with_cancel(ctx_background(), &c2);
	ctx_curl_hook_t *h1 = ctx_curl_multi_add(cm, e1, x1);
	ctx_curl_hook_t *h2 = ctx_curl_multi_add(cm, e2, x2);
	ctx_cancel(c1);
	ctx_cancel(c2);
	assert_int_equal(ctx_curl_multi_remove(h1), CURLM_OK);
	assert_ptr_equal(ctx_curl_multi_next_done(cm), h2);
	assert_null(ctx_curl_multi_next_done(cm));
	assert_int_equal(ctx_curl_multi_remove(h2), CURLM_OK);
	/* Adding twice, and bad arguments. */
	ctx_curl_hook_t *h = ctx_curl_multi_add(cm, e1, ctx_background());
	assert_non_null(h);
	errno = 0;
	assert_null(ctx_curl_multi_add(cm, e1, ctx_background()));
	assert_int_equal(errno, EINVAL);
	assert_int_equal(ctx_curl_multi_remove(h), CURLM_OK);
	assert_null(ctx_curl_multi_add(NULL, e1, x1));
	assert_null(ctx_curl_multi_new(NULL));
	ctx_release(x1);
	/* Out of goctx memory: the handle is not left in the multi. */
	ctx_t *x3 = ctx_with_cancel(ctx_background(), &c1);
	ut_fail_allocs(1); /* the after-func */
	errno = 0;
	assert_null(ctx_curl_multi_add(cm, e1, x3));
	atomic_store(&ut_fail_next, 0);
	assert_int_equal(errno, ENOMEM);
	h = ctx_curl_multi_add(cm, e1, x3); /* not in the multi: adding works */
	assert_non_null(h);
	assert_int_equal(ctx_curl_multi_remove(h), CURLM_OK);
	ctx_cancel(c1);
	ctx_release(x3);
	assert_int_equal(ctx_curl_multi_free(cm), 0);
	curl_multi_cleanup(m);
	ctx_release(x2);
	easy_done(e1, &b1);
	easy_done(e2, &b2);
	ut_assert_no_leak();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(t_finishes_first, ut_mark),
		cmocka_unit_test_setup(t_slow_response_cut_at_deadline, ut_mark),
		cmocka_unit_test_setup(t_cancel_from_other_thread, ut_mark),
		cmocka_unit_test_setup(t_done_on_entry, ut_mark),
		cmocka_unit_test_setup(t_deadline_is_curl_timeout, ut_mark),
		cmocka_unit_test_setup(t_multi_poll_woken_by_cancel, ut_mark),
		cmocka_unit_test_setup(t_many_transfers_one_loop, ut_mark),
		cmocka_unit_test_setup(t_remove_while_queued, ut_mark),
	};
	return cmocka_run_group_tests(tests, server_start, server_stop);
}
