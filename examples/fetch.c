/* fetch.c: a small HTTP/1.1 client whose deadline crosses the wire.
 *
 *   fetch [-t MILLISECONDS] [-d DATA] URL      (URL: http://HOST[:PORT]/PATH)
 *
 * One context bounds everything: ctx_dial_tcp (name resolution and
 * connect), sending the request, reading the answer. The request carries the
 * time the context has left in a `grpc-timeout` header, so a goctx server
 * (examples/httpd.c) gives up when the client would have. -d sends DATA as a
 * POST body. The body of the answer goes to stdout, its status line to
 * stderr. Exit status: 0 for a 2xx answer, 1 otherwise, with Go's words
 * ("context deadline exceeded") when the deadline ends it; 2 for bad usage.
 *
 * As an example under CTest and `make demo` it runs through examples/fetch.sh,
 * which starts examples/httpd on a free port and fetches from it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <goctx.h>
#include <goctx/io.h>
#include <goctx/propagate.h>

static int usage(void)
{
	fprintf(stderr, "usage: fetch [-t MILLISECONDS] [-d DATA] http://HOST[:PORT]/PATH\n");
	return 2;
}

/* Splits http://HOST[:PORT][/PATH] into its parts (in buf). */
static int parse_url(const char *url, char *buf, size_t size, const char **host,
                     const char **port, const char **path)
{
	const char *p = url;
	if (strncmp(p, "http://", 7) != 0)
		return -1;
	p += 7;
	size_t n = strlen(p);
	if (n + 2 > size)
		return -1;
	memcpy(buf, p, n + 1);
	char *slash = strchr(buf, '/');
	*path = slash ? p + (slash - buf) : "/";
	if (slash)
		*slash = '\0';
	char *colon = strrchr(buf, ':');
	*port = "80";
	if (colon && !strchr(colon, ']')) {
		*colon = '\0';
		*port = colon + 1;
	}
	*host = buf;
	if (**host == '[') { /* [::1] */
		(*host)++;
		char *end = strchr(buf, ']');
		if (end)
			*end = '\0';
	}
	return **host ? 0 : -1;
}

static int fail(const char *what, int err)
{
	fprintf(stderr, "fetch: %s: %s\n", what, ctx_strerror(err));
	return 1;
}

int main(int argc, char **argv)
{
	long timeout_ms = -1;
	const char *data = NULL;
	int opt;
	while ((opt = getopt(argc, argv, "t:d:")) != -1) {
		if (opt == 't') {
			char *end;
			timeout_ms = strtol(optarg, &end, 10);
			if (*end || timeout_ms < 0)
				return usage();
		} else if (opt == 'd') {
			data = optarg;
		} else {
			return usage();
		}
	}
	if (optind + 1 != argc)
		return usage();
	char buf[2048];
	const char *host, *port, *path;
	if (parse_url(argv[optind], buf, sizeof buf, &host, &port, &path) != 0)
		return usage();

	ctx_cancel_t *cancel = NULL;
	ctx_t *ctx = timeout_ms >= 0
		? ctx_with_timeout(ctx_background(), timeout_ms * CTX_MILLISECOND, &cancel)
		: ctx_with_cancel(ctx_background(), &cancel);
	if (!ctx)
		return fail("context", errno);
	int status = 1, fd = -1, e;

	if ((e = ctx_dial_tcp(ctx, host, port, &fd)) != 0) {
		fail("dial", e);
		goto out;
	}
	/* The request, with the deadline it has left. */
	char req[4096], deadline[CTX_GRPC_TIMEOUT_MAX + 32] = "";
	char tv[CTX_GRPC_TIMEOUT_MAX];
	if (ctx_grpc_timeout_format(ctx, tv, sizeof tv) > 0)
		snprintf(deadline, sizeof deadline, "grpc-timeout: %s\r\n", tv);
	else if (errno == ETIMEDOUT) {
		fail("request", ETIMEDOUT);
		goto out;
	}
	size_t dlen = data ? strlen(data) : 0;
	int n = snprintf(req, sizeof req,
	                 "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: goctx-fetch\r\n"
	                 "Connection: close\r\n%sContent-Length: %zu\r\n\r\n",
	                 data ? "POST" : "GET", path, host, deadline, dlen);
	if (n < 0 || (size_t)n >= sizeof req) {
		fprintf(stderr, "fetch: URL too long\n");
		goto out;
	}
	if ((e = ctx_write_all(ctx, fd, req, (size_t)n, NULL)) != 0 ||
	    (dlen && (e = ctx_write_all(ctx, fd, data, dlen, NULL)) != 0)) {
		fail("write", e);
		goto out;
	}

	/* The answer: headers, then Content-Length bytes of body (or up to
	 * the end of the stream when there is none). */
	char resp[65536];
	size_t have = 0;
	char *body = NULL;
	while (!body) {
		if (have == sizeof resp - 1) {
			fprintf(stderr, "fetch: headers too long\n");
			goto out;
		}
		ssize_t r = ctx_read(ctx, fd, resp + have, sizeof resp - 1 - have);
		if (r < 0) {
			fail("read", errno);
			goto out;
		}
		if (r == 0) {
			fprintf(stderr, "fetch: connection closed before the answer\n");
			goto out;
		}
		have += (size_t)r;
		resp[have] = '\0';
		if ((body = strstr(resp, "\r\n\r\n")) != NULL)
			body += 4;
	}
	int code = 0;
	if (sscanf(resp, "HTTP/1.%*d %d", &code) != 1) {
		fprintf(stderr, "fetch: not an HTTP answer\n");
		goto out;
	}
	char *eol = strstr(resp, "\r\n");
	fprintf(stderr, "%.*s\n", (int)(eol - resp), resp);
	long want = -1;
	for (char *h = eol + 2; h < body - 2; h = strstr(h, "\r\n") + 2) {
		if (strncasecmp(h, "Content-Length:", 15) == 0)
			want = strtol(h + 15, NULL, 10);
	}
	size_t got = have - (size_t)(body - resp);
	fwrite(body, 1, got, stdout);
	while (want < 0 || (long)got < want) {
		ssize_t r = ctx_read(ctx, fd, resp, sizeof resp);
		if (r < 0) {
			fflush(stdout);
			fail("read", errno);
			goto out;
		}
		if (r == 0) {
			if (want >= 0) {
				fprintf(stderr, "fetch: answer cut short\n");
				goto out;
			}
			break;
		}
		fwrite(resp, 1, (size_t)r, stdout);
		got += (size_t)r;
	}
	fflush(stdout);
	status = code >= 200 && code < 300 ? 0 : 1;
out:
	if (fd >= 0)
		close(fd);
	ctx_cancel(cancel);
	ctx_release(ctx);
	return status;
}
