/* httpd.c: a small HTTP/1.1 server on 127.0.0.1 built only on goctx.
 *
 *   httpd [-p PORT] [-t REQUEST_MS] [-i IDLE_MS] [-H HEADER_MS] [-d DRAIN_MS]
 *
 * PORT 8080 unless given; -p 0 picks a free one. The first line on stdout is
 * `listening on 127.0.0.1:PORT`. Routes:
 *   GET  /hello          "hello, world"
 *   GET  /sleep?ms=N     sleeps N ms with ctx_sleep: a request whose deadline
 *                        comes first is answered 504 at its deadline
 *   POST /echo           the body back (read with ctx_read)
 *
 * Contexts, as a Go server has them:
 *   root        ctx_with_signals(SIGINT, SIGTERM): done when shutdown begins.
 *               The accept loop and idle keep-alive waits run under it.
 *   hard        cancelled when the drain deadline passes: parent of every
 *               connection, so a request still running then is cut off.
 *   connection  one per connection, under hard.
 *   idle wait   WithTimeout(root, IDLE_MS): waiting for the next request.
 *   header      WithTimeout(connection, HEADER_MS): from its first byte the
 *               request's line and headers must arrive in time (a slowloris
 *               client holds a thread for HEADER_MS at most).
 *   request     WithTimeout(connection, REQUEST_MS), shrunk by the request's
 *               grpc-timeout header when that is shorter (a child with the
 *               header's timeout: the earlier deadline wins).
 *
 * Limits: request line and headers 8 KiB (beyond: 431), body 1 MiB (beyond:
 * 413), a malformed request 400; each of these closes the connection. A peer
 * that resets costs its own connection only (writes never raise SIGPIPE).
 *
 * On SIGINT or SIGTERM: stop accepting (connections already queued are taken
 * and served like the rest), close idle connections, let requests in flight
 * finish until the drain deadline (DRAIN_MS, 5000), answer them with
 * `Connection: close`, print a one-line summary and exit 0. Closes are
 * lingering (shutdown for writing, then read to the end, bounded) so that a
 * request arriving at the moment of the close gets a FIN, not a reset.
 *
 * Under CTest and `make demo` it runs through examples/httpd.sh (a server on
 * a free port, fetched from, then stopped with SIGTERM).
 */
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <goctx.h>
#include <goctx/io.h>
#include <goctx/propagate.h>

#include <goctx/signal.h>
#include <goctx/sync.h>

#define MAX_HEADER 8192
#define MAX_BODY (1 << 20)
#define MAX_CONNS 1024
#define LINGER_MS 500
#define BACKLOG 128

static struct {
	long request_ms, idle_ms, header_ms, drain_ms;
} cfg = {10000, 5000, 5000, 5000};

static ctx_t *root; /* done when shutdown begins */
static ctx_t *hard; /* done when the drain deadline passes */
static ctx_waitgroup_t conns = CTX_WAITGROUP_INIT;

static struct {
	atomic_long conns, live, requests, ok, client_err, timeouts, reset, slow, refused, killed;
} stats;

struct conn {
	ctx_t *ctx; /* the connection's context */
	int fd;
	char buf[MAX_HEADER + 1];
	size_t have; /* bytes in buf (a pipelined request may follow the current one) */
	bool close_after;
};

/* ---- answers ---- */

static const char *reason(int code)
{
	switch (code) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 413: return "Content Too Large";
	case 431: return "Request Header Fields Too Large";
	case 501: return "Not Implemented";
	case 504: return "Gateway Timeout";
	default: return "Error";
	}
}

/* Writes one answer. false when the peer is gone. */
static bool answer(struct conn *c, int code, const char *body, size_t len)
{
	if (code == 200)
		atomic_fetch_add(&stats.ok, 1);
	else if (code == 504)
		atomic_fetch_add(&stats.timeouts, 1);
	else
		atomic_fetch_add(&stats.client_err, 1);
	if (ctx_done(root))
		c->close_after = true;
	char head[256];
	int n = snprintf(head, sizeof head,
	                 "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n%s\r\n",
	                 code, reason(code), len, c->close_after ? "Connection: close\r\n" : "");
	/* A write deadline of its own, under the connection (not the request:
	 * a request whose deadline just passed must still be able to say 504). */
	ctx_cancel_t *wc;
	ctx_t *w = ctx_with_timeout(c->ctx, cfg.request_ms * CTX_MILLISECOND, &wc);
	if (!w)
		return false;
	int e = ctx_write_all(w, c->fd, head, (size_t)n, NULL);
	if (!e && len)
		e = ctx_write_all(w, c->fd, body, len, NULL);
	ctx_cancel(wc);
	ctx_release(w);
	if (e == EPIPE || e == ECONNRESET)
		atomic_fetch_add(&stats.reset, 1);
	return e == 0;
}

static bool answer_text(struct conn *c, int code, const char *text)
{
	return answer(c, code, text, strlen(text));
}

/* ---- reading a request ---- */

struct request {
	char *method, *target, *version;
	char *grpc_timeout;
	long content_length; /* -1: none */
	bool chunked, close, keep_alive;
};

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	char *e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
		*--e = '\0';
	return s;
}

/* Parses the head (request line and headers, NUL-terminated, CRLF line
 * ends, without the final empty line). 0, or the status to answer. */
static int parse_head(char *head, struct request *r)
{
	*r = (struct request){.content_length = -1};
	char *line = head, *next = strstr(line, "\r\n");
	if (next)
		*next = '\0';
	r->method = strtok_r(line, " ", &line);
	r->target = strtok_r(NULL, " ", &line);
	r->version = strtok_r(NULL, " ", &line);
	if (!r->method || !r->target || !r->version || strtok_r(NULL, " ", &line) ||
	    r->target[0] != '/' || strncmp(r->version, "HTTP/1.", 7) != 0 ||
	    (r->version[7] != '0' && r->version[7] != '1') || r->version[8])
		return 400;
	for (const char *m = r->method; *m; m++)
		if (*m < 'A' || *m > 'Z')
			return 400;
	while (next) {
		line = next + 2;
		next = strstr(line, "\r\n");
		if (next)
			*next = '\0';
		char *colon = strchr(line, ':');
		if (!colon || colon == line)
			return 400;
		for (const char *p = line; p < colon; p++)
			if (*p <= ' ' || *p >= 127)
				return 400;
		*colon = '\0';
		char *v = trim(colon + 1);
		if (!strcasecmp(line, "Content-Length")) {
			char *end;
			errno = 0;
			long n = strtol(v, &end, 10);
			if (!*v || *end || n < 0 || errno || (r->content_length >= 0 && r->content_length != n))
				return 400;
			r->content_length = n;
		} else if (!strcasecmp(line, "Transfer-Encoding")) {
			r->chunked = true;
		} else if (!strcasecmp(line, "Connection")) {
			if (!strcasecmp(v, "close"))
				r->close = true;
			else if (!strcasecmp(v, "keep-alive"))
				r->keep_alive = true;
		} else if (!strcasecmp(line, "grpc-timeout")) {
			r->grpc_timeout = v;
		}
	}
	return 0;
}

/* Reads until buf holds a whole head. 0 with *head_len (up to and
 * including the empty line), or: EOF/ECONNRESET (peer gone), ETIMEDOUT or
 * ECANCELED (the wait ended), 431 (head too long). The first byte is
 * waited for under idle, the rest under header. */
static int read_head(ctx_t *idle, ctx_t *header, struct conn *c, size_t *head_len)
{
	for (;;) {
		c->buf[c->have] = '\0';
		char *end = strstr(c->buf, "\r\n\r\n");
		if (end) {
			*head_len = (size_t)(end - c->buf) + 4;
			return 0;
		}
		if (c->have == MAX_HEADER)
			return 431;
		ssize_t r = ctx_read(c->have ? header : idle, c->fd, c->buf + c->have, MAX_HEADER - c->have);
		if (r == 0)
			return EOF;
		if (r < 0)
			return errno;
		c->have += (size_t)r;
	}
}

/* ---- routes ---- */

static long query_ms(const char *target)
{
	const char *q = strchr(target, '?');
	for (const char *p = q; p; p = strchr(p + 1, '&')) {
		if (!strncmp(p + 1, "ms=", 3)) {
			char *end;
			long v = strtol(p + 4, &end, 10);
			if (end == p + 4 || (*end && *end != '&') || v < 0)
				return -1;
			return v;
		}
	}
	return -1;
}

static bool path_is(const char *target, const char *path)
{
	size_t n = strlen(path);
	return !strncmp(target, path, n) && (target[n] == '\0' || target[n] == '?');
}

/* Serves one request whose body (if any) starts at c->buf + head_len.
 * false: close the connection now. */
static bool serve(ctx_t *conn, struct conn *c, struct request *r, size_t head_len)
{
	atomic_fetch_add(&stats.requests, 1);
	bool http10 = r->version[7] == '0';
	c->close_after = r->close || (http10 && !r->keep_alive);
	if (r->chunked) {
		c->close_after = true;
		answer_text(c, 501, "chunked bodies are not supported\n");
		return false;
	}
	long blen = r->content_length < 0 ? 0 : r->content_length;
	if (blen > MAX_BODY) {
		c->close_after = true;
		answer_text(c, 413, "body too large\n");
		return false;
	}

	/* The request's context: the server's timeout, shrunk by the client's. */
	ctx_cancel_t *rc, *gc = NULL;
	ctx_t *req = ctx_with_timeout(conn, cfg.request_ms * CTX_MILLISECOND, &rc);
	if (!req)
		return false;
	ctx_t *rctx = req;
	if (r->grpc_timeout) {
		rctx = ctx_with_grpc_timeout(req, r->grpc_timeout, &gc);
		if (!rctx) {
			rctx = req;
			c->close_after = true;
			answer_text(c, 400, "malformed grpc-timeout\n");
			ctx_cancel(rc);
			ctx_release(req);
			return false;
		}
	}

	/* The body: what came with the head, then ctx_read the rest. */
	char *body = NULL;
	bool keep = true;
	size_t extra = c->have - head_len;
	size_t take = extra < (size_t)blen ? extra : (size_t)blen;
	if (blen) {
		body = malloc((size_t)blen);
		if (!body) {
			keep = false;
			goto done;
		}
		memcpy(body, c->buf + head_len, take);
		size_t got = take;
		while (got < (size_t)blen) {
			ssize_t n = ctx_read(rctx, c->fd, body + got, (size_t)blen - got);
			if (n <= 0) {
				if (n < 0 && errno == ETIMEDOUT) {
					c->close_after = true;
					answer_text(c, 504, "context deadline exceeded\n");
				} else if (n == 0 || errno == ECONNRESET) {
					atomic_fetch_add(&stats.reset, 1);
				}
				keep = false;
				goto done;
			}
			got += (size_t)n;
		}
	}
	/* What follows this request in buf is the next one (pipelining). */
	memmove(c->buf, c->buf + head_len + take, extra - take);
	c->have = extra - take;

	if (path_is(r->target, "/hello")) {
		if (strcmp(r->method, "GET"))
			keep = answer_text(c, 405, "GET only\n");
		else
			keep = answer_text(c, 200, "hello, world\n");
	} else if (path_is(r->target, "/sleep")) {
		long ms = query_ms(r->target);
		if (ms < 0) {
			keep = answer_text(c, 400, "/sleep?ms=N\n");
		} else {
			int e = ctx_sleep(rctx, ms > LONG_MAX / CTX_MILLISECOND ? LONG_MAX : ms * CTX_MILLISECOND);
			if (e == 0) {
				char msg[64];
				snprintf(msg, sizeof msg, "slept %ld ms\n", ms);
				keep = answer_text(c, 200, msg);
			} else if (!ctx_done(conn)) {
				/* The request's own deadline, not the server's end. */
				keep = answer_text(c, 504, "context deadline exceeded\n");
			} else {
				atomic_fetch_add(&stats.killed, 1);
				keep = false;
			}
		}
	} else if (path_is(r->target, "/echo")) {
		if (strcmp(r->method, "POST") && strcmp(r->method, "PUT"))
			keep = answer_text(c, 405, "POST a body\n");
		else
			keep = answer(c, 200, body, (size_t)blen);
	} else {
		keep = answer_text(c, 404, "not found\n");
	}
done:
	free(body);
	if (gc) {
		ctx_cancel(gc);
		ctx_release(rctx);
	}
	ctx_cancel(rc);
	ctx_release(req);
	return keep && !c->close_after;
}

/* ---- connections ---- */

/* Shut down for writing, then read (and drop) until the peer closes, for
 * LINGER_MS at most: a close with unread bytes would send a reset. */
static void linger_close(ctx_t *conn, int fd)
{
	shutdown(fd, SHUT_WR);
	ctx_cancel_t *lc;
	ctx_t *l = ctx_with_timeout(conn, LINGER_MS * CTX_MILLISECOND, &lc);
	if (l) {
		char sink[4096];
		while (ctx_read(l, fd, sink, sizeof sink) > 0)
			;
		ctx_cancel(lc);
		ctx_release(l);
	}
	close(fd);
}

static void conn_main(void *arg)
{
	struct conn *c = arg;
	ctx_cancel_t *cc;
	ctx_t *conn = ctx_with_cancel(hard, &cc);
	c->ctx = conn;
	if (!conn) {
		close(c->fd);
		free(c);
		atomic_fetch_sub(&stats.live, 1);
		return;
	}
	bool linger = true;
	for (;;) {
		/* Shutdown began: an idle connection is closed, unless a request
		 * is already on its way (it is served, with Connection: close). */
		if (ctx_done(root) && c->have == 0) {
			ssize_t r = recv(c->fd, c->buf, MAX_HEADER, MSG_DONTWAIT);
			if (r <= 0)
				break;
			c->have = (size_t)r;
		}
		ctx_cancel_t *ic, *hc;
		ctx_t *idle = ctx_with_timeout(root, cfg.idle_ms * CTX_MILLISECOND, &ic);
		ctx_t *header = ctx_with_timeout(conn, cfg.header_ms * CTX_MILLISECOND, &hc);
		size_t head_len = 0;
		int e = idle && header ? read_head(idle, header, c, &head_len) : ENOMEM;
		bool was_idle = c->have == 0;
		if (idle) {
			ctx_cancel(ic);
			ctx_release(idle);
		}
		if (header) {
			ctx_cancel(hc);
			ctx_release(header);
		}
		if (e == EOF) {
			linger = c->have != 0; /* a clean close by the peer */
			break;
		}
		if (e == ECONNRESET) {
			atomic_fetch_add(&stats.reset, 1);
			linger = false;
			break;
		}
		if (e == ETIMEDOUT || e == ECANCELED) {
			if (!was_idle)
				atomic_fetch_add(&stats.slow, 1); /* cut at the header deadline */
			if (ctx_done(root) && was_idle)
				continue; /* shutdown while idle: look once more, then close */
			break;
		}
		if (e == 431) {
			c->close_after = true;
			answer_text(c, 431, "request headers too large\n");
			break;
		}
		if (e) {
			linger = false;
			break;
		}
		char head[MAX_HEADER + 1];
		memcpy(head, c->buf, head_len - 4);
		head[head_len - 4] = '\0';
		struct request r;
		int code = parse_head(head, &r);
		if (code) {
			atomic_fetch_add(&stats.requests, 1);
			c->close_after = true;
			answer_text(c, code, "malformed request\n");
			break;
		}
		if (!serve(conn, c, &r, head_len))
			break;
	}
	if (linger && !ctx_done(hard))
		linger_close(conn, c->fd);
	else
		close(c->fd);
	ctx_cancel(cc);
	ctx_release(conn);
	free(c);
	atomic_fetch_sub(&stats.live, 1);
}

/* One accepted descriptor: a thread of its own (ctx_waitgroup_go: counted
 * in conns until conn_main returns). */
static void start_conn(int fd)
{
	atomic_fetch_add(&stats.conns, 1);
	struct conn *c = malloc(sizeof *c);
	if (!c || atomic_load(&stats.live) >= MAX_CONNS) {
		atomic_fetch_add(&stats.refused, 1);
		free(c);
		close(fd);
		return;
	}
	c->fd = fd;
	c->have = 0;
	c->close_after = false;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	atomic_fetch_add(&stats.live, 1);
	if (ctx_waitgroup_go(&conns, conn_main, c) != 0) {
		atomic_fetch_sub(&stats.live, 1);
		atomic_fetch_add(&stats.refused, 1);
		close(fd);
		free(c);
	}
}

/* ---- main ---- */

static int listen_on(int port)
{
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (l < 0)
		return -1;
	int one = 1;
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof a;
	if (bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, BACKLOG) < 0 ||
	    getsockname(l, (struct sockaddr *)&a, &al) < 0) {
		close(l);
		return -1;
	}
	printf("listening on 127.0.0.1:%d\n", ntohs(a.sin_port));
	fflush(stdout);
	return l;
}

static bool num_opt(const char *s, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (!*s || *end || v < 0 || errno)
		return false;
	*out = v;
	return true;
}

int main(int argc, char **argv)
{
	long port = 8080;
	int opt;
	while ((opt = getopt(argc, argv, "p:t:i:H:d:")) != -1) {
		long *dst = opt == 'p' ? &port : opt == 't' ? &cfg.request_ms : opt == 'i' ? &cfg.idle_ms
		          : opt == 'H' ? &cfg.header_ms : opt == 'd' ? &cfg.drain_ms : NULL;
		if (!dst || !num_opt(optarg, dst) || port > 65535) {
			fprintf(stderr, "usage: httpd [-p PORT] [-t REQUEST_MS] [-i IDLE_MS] "
			                "[-H HEADER_MS] [-d DRAIN_MS]\n");
			return 2;
		}
	}
	static const int sigs[] = {SIGINT, SIGTERM};
	ctx_cancel_t *stop, *hard_cancel;
	root = ctx_with_signals(ctx_background(), sigs, 2, &stop);
	hard = ctx_with_cancel(ctx_background(), &hard_cancel);
	if (!root || !hard) {
		perror("httpd: contexts");
		return 1;
	}
	int l = listen_on((int)port);
	if (l < 0) {
		perror("httpd: listen");
		return 1;
	}

	for (;;) {
		int fd = ctx_accept(root, l, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0) {
			start_conn(fd);
			continue;
		}
		if (errno == ECANCELED || errno == ETIMEDOUT)
			break;
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
			ctx_sleep(root, 10 * CTX_MILLISECOND); /* as Go: back off, try again */
			continue;
		}
		perror("httpd: accept");
		break;
	}

	/* Shutdown: take what is queued (closing the listener would reset it),
	 * at most a backlog's worth: clients that reconnect as fast as their
	 * connections are closed would keep the queue from ever running dry. */
	ctx_time_t t0 = ctx_now();
	for (int i = 0, fd; i < BACKLOG && (fd = accept4(l, NULL, NULL, SOCK_CLOEXEC)) >= 0; i++)
		start_conn(fd);
	close(l);
	ctx_cancel_t *dc;
	ctx_t *drain = ctx_with_timeout(ctx_background(), cfg.drain_ms * CTX_MILLISECOND, &dc);
	bool in_time = drain && ctx_waitgroup_wait(&conns, drain) == 0;
	if (!in_time) {
		ctx_cancel(hard_cancel); /* the drain deadline: cut the rest off */
		hard_cancel = NULL;
		ctx_waitgroup_wait(&conns, NULL);
	}
	double ms = (double)(ctx_now() - t0) / CTX_MILLISECOND;
	int cause = ctx_cause(root);
	printf("httpd: %s; drained in %.1f ms%s: %ld connections, %ld requests (%ld ok, %ld client "
	       "errors, %ld timed out), %ld reset by peer, %ld cut at the header deadline, %ld "
	       "refused, %ld cut at the drain deadline\n",
	       cause ? ctx_strerror(cause) : "stopped", ms, in_time ? "" : " (deadline passed)",
	       atomic_load(&stats.conns), atomic_load(&stats.requests), atomic_load(&stats.ok),
	       atomic_load(&stats.client_err), atomic_load(&stats.timeouts),
	       atomic_load(&stats.reset), atomic_load(&stats.slow), atomic_load(&stats.refused),
	       atomic_load(&stats.killed));
	fflush(stdout);
	if (drain) {
		ctx_cancel(dc);
		ctx_release(drain);
	}
	if (hard_cancel)
		ctx_cancel(hard_cancel);
	ctx_release(hard);
	ctx_cancel(stop);
	ctx_release(root);
	/* ctx_cancel(stop) returned only once the signal's cancellation (its
	 * after-funcs and their registrations included) had finished in the
	 * library's thread: nothing is left alive for GOCTX_LEAKS=1 to report. */
	return 0;
}
