/* example.c (uv_example): a libuv echo server whose connections each live
 * under a context with a deadline (goctx/uv.h).
 *
 * The server itself runs under a context of 600 ms; each connection's
 * context is a child with a 150 ms idle deadline, so it ends at its own
 * deadline or when the server's does, whichever comes first. A watch per
 * connection closes it on the loop's thread. Three clients on the same loop
 * connect 0, 100 and 500 ms in, send one line, read the echo and then stay
 * silent; the server hangs up on each. When the server's context ends, its
 * watch closes the listener, and uv_run returns once everything is closed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <goctx/uv.h>

static uv_loop_t *loop;
static uv_tcp_t listener;
static ctx_t *server_ctx;
static ctx_uv_watch_t server_watch;
static ctx_time_t start;

static double ms(void) { return (double)(ctx_now() - start) / 1e6; }

/* ---- the server's connections ---- */

struct conn {
    uv_tcp_t tcp;
    ctx_uv_watch_t watch;
    ctx_t *ctx;
    ctx_cancel_t *cancel;
    int id, open; /* tcp and watch not yet through their close callbacks */
    char buf[256];
};

static void conn_unref(struct conn *c) {
    if (--c->open > 0)
        return;
    ctx_cancel(c->cancel);
    ctx_release(c->ctx);
    free(c);
}

static void tcp_closed(uv_handle_t *h) { conn_unref(h->data); }
static void watch_closed(ctx_uv_watch_t *w) { conn_unref(w->data); }

static void conn_close(struct conn *c) {
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, tcp_closed);
    if (!ctx_uv_watch_is_closing(&c->watch))
        ctx_uv_watch_close(&c->watch, watch_closed);
}

/* On the loop's thread, once the connection's context is done. */
static void conn_done(ctx_uv_watch_t *w, int err) {
    struct conn *c = w->data;
    printf("%6.1f ms  server: connection %d: %s, closing it\n", ms(), c->id,
           ctx_err(server_ctx) ? "server stopping" : ctx_strerror(err));
    conn_close(c);
}

static void alloc_cb(uv_handle_t *h, size_t size, uv_buf_t *buf) {
    (void)size;
    struct conn *c = h->data;
    *buf = uv_buf_init(c->buf, sizeof c->buf);
}

struct wreq {
    uv_write_t req;
    char data[256];
};

static void written(uv_write_t *req, int status) {
    (void)status;
    free(req);
}

static void conn_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
    struct conn *c = s->data;
    if (n < 0) {
        conn_close(c);
        return;
    }
    struct wreq *w = malloc(sizeof *w);
    if (n == 0 || !w) {
        free(w);
        return;
    }
    memcpy(w->data, buf->base, (size_t)n);
    uv_buf_t out = uv_buf_init(w->data, (unsigned)n);
    if (uv_write(&w->req, s, &out, 1, written) != 0)
        free(w);
}

static void on_connection(uv_stream_t *server, int status) {
    static int next_id;
    struct conn *c = calloc(1, sizeof *c);
    if (status != 0 || !c) {
        free(c);
        return;
    }
    c->id = ++next_id;
    uv_tcp_init(loop, &c->tcp);
    c->tcp.data = c;
    c->open = 1;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 ||
        !(c->ctx = ctx_with_timeout(server_ctx, 150 * CTX_MILLISECOND, &c->cancel)) ||
        ctx_uv_watch_init(loop, &c->watch) != 0) {
        uv_close((uv_handle_t *)&c->tcp, tcp_closed);
        return;
    }
    c->open = 2;
    c->watch.data = c;
    ctx_uv_watch_start(&c->watch, c->ctx, conn_done);
    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, conn_read);
    printf("%6.1f ms  server: connection %d accepted (150 ms deadline)\n", ms(), c->id);
}

static void server_done(ctx_uv_watch_t *w, int err) {
    printf("%6.1f ms  server: %s, closing the listener\n", ms(), ctx_strerror(err));
    uv_close((uv_handle_t *)&listener, NULL);
    ctx_uv_watch_close(w, NULL);
}

/* ---- the clients ---- */

struct client {
    uv_timer_t timer;
    uv_connect_t req;
    uv_tcp_t tcp;
    uv_write_t wreq;
    int id;
    char buf[64];
};

static void client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
    struct client *cl = s->data;
    if (n > 0)
        printf("%6.1f ms  client %d: echo %.*s", ms(), cl->id, (int)n, buf->base);
    else if (n < 0) {
        printf("%6.1f ms  client %d: server hung up (%s)\n", ms(), cl->id, uv_err_name((int)n));
        uv_close((uv_handle_t *)&cl->tcp, NULL);
    }
}

static void client_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf) {
    (void)size;
    struct client *cl = h->data;
    *buf = uv_buf_init(cl->buf, sizeof cl->buf);
}

static void client_connected(uv_connect_t *req, int status) {
    struct client *cl = req->data;
    if (status != 0) {
        printf("client %d: connect: %s\n", cl->id, uv_strerror(status));
        uv_close((uv_handle_t *)&cl->tcp, NULL);
        return;
    }
    static char line[3][16];
    snprintf(line[cl->id - 1], sizeof line[0], "hello %d\n", cl->id);
    uv_buf_t b = uv_buf_init(line[cl->id - 1], (unsigned)strlen(line[cl->id - 1]));
    uv_write(&cl->wreq, (uv_stream_t *)&cl->tcp, &b, 1, NULL);
    uv_read_start((uv_stream_t *)&cl->tcp, client_alloc, client_read);
}

static void client_start(uv_timer_t *t) {
    struct client *cl = t->data;
    struct sockaddr_storage a;
    int len = sizeof a;
    uv_tcp_getsockname(&listener, (struct sockaddr *)&a, &len);
    uv_tcp_init(loop, &cl->tcp);
    cl->tcp.data = cl->req.data = cl;
    uv_tcp_connect(&cl->req, &cl->tcp, (struct sockaddr *)&a, client_connected);
    uv_close((uv_handle_t *)t, NULL);
}

int main(void) {
    loop = uv_default_loop();
    start = ctx_now();
    ctx_cancel_t *server_cancel;
    server_ctx = ctx_with_timeout(ctx_background(), 600 * CTX_MILLISECOND, &server_cancel);
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    uv_tcp_init(loop, &listener);
    int rc;
    if (!server_ctx || (rc = uv_tcp_bind(&listener, (struct sockaddr *)&addr, 0)) != 0 ||
        (rc = uv_listen((uv_stream_t *)&listener, 16, on_connection)) != 0 ||
        (rc = ctx_uv_watch_init(loop, &server_watch)) != 0 ||
        (rc = ctx_uv_watch_start(&server_watch, server_ctx, server_done)) != 0) {
        fprintf(stderr, "uv_example: setup failed\n");
        return 1;
    }
    printf("server: 600 ms to live; connections 150 ms each\n");

    static struct client clients[3];
    const int at[3] = {0, 100, 500};
    for (int i = 0; i < 3; i++) {
        clients[i].id = i + 1;
        uv_timer_init(loop, &clients[i].timer);
        clients[i].timer.data = &clients[i];
        uv_timer_start(&clients[i].timer, client_start, (uint64_t)at[i], 0);
    }

    uv_run(loop, UV_RUN_DEFAULT); /* until every handle and watch is closed */
    printf("%6.1f ms  loop: nothing left, done\n", ms());
    ctx_cancel(server_cancel);
    ctx_release(server_ctx);
    return uv_loop_close(loop) == 0 ? 0 : 1;
}
