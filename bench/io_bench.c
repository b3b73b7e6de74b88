/* goctx-io-bench: goctx's I/O calls measured as bench/go-io/main.go
 * measures Go's, so the two can be set side by side.
 *
 * Prints one line per operation on stdout:
 *
 *     BENCH <op> <ns_per_op> <bytes_per_op> <allocs_per_op>
 *
 * Knobs (environment, as the other benchmark programs): BENCH_MIN_TIME_MS
 * (default 500), BENCH_RUNS (default 3), BENCH_OPS (comma-separated names).
 * Method: as chan_bench.c (bench_measure of bench_util.h).
 *
 * Ops:
 *   io_read_ready_bare       read(2) of 1 byte from a pipe that holds data
 *                            (refilled 4096 bytes at a time, every 4096
 *                            reads, in both ops alike): the floor
 *   io_read_ready_nowait     the same with the syscall ctx_read makes on a
 *                            pipe, preadv2(RWF_NOWAIT) (the kernel's iovec
 *                            path costs more than read's)
 *   io_read_ready_ctx        the same with ctx_read under a context with a
 *                            deadline: the fast path (one syscall, nothing
 *                            registered); the library's own overhead is the
 *                            difference to io_read_ready_nowait
 *   io_pingpong_socketpair   one 64-byte request and its 64-byte answer over
 *                            a blocking socket pair between two threads,
 *                            each side making a context with a 1 s timeout
 *                            per request (ctx_with_timeout, ctx_write_all,
 *                            ctx_read, cancel, release): both reads wait
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "bench_util.h"
#include "goctx.h"
#include "goctx/io.h"


static void die(const char *what, int err)
{
	fprintf(stderr, "io-bench: %s: %s\n", what, strerror(err));
	exit(1);
}

/* ---- reads from a ready pipe ---- */

#define CHUNK 4096

struct pipe_arg {
	int rfd, wfd;
	ctx_t *ctx; /* NULL: bare read(2) or preadv2 */
	bool nowait; /* with ctx NULL: preadv2(RWF_NOWAIT) */
};

static ssize_t read_nowait(int fd, char *b)
{
	struct iovec v = {.iov_base = b, .iov_len = 1};
	return preadv2(fd, &v, 1, -1, RWF_NOWAIT);
}

static char chunk[CHUNK];

static void body_read(void *arg, uint64_t n)
{
	struct pipe_arg *p = arg;
	char b;
	for (uint64_t i = 0; i < n; i++) {
		if (i % CHUNK == 0 && write(p->wfd, chunk, CHUNK) != CHUNK)
			die("write", errno);
		ssize_t r = p->ctx ? ctx_read(p->ctx, p->rfd, &b, 1)
		          : p->nowait ? read_nowait(p->rfd, &b) : read(p->rfd, &b, 1);
		if (r != 1)
			die("read", errno);
	}
	/* Empty the pipe for the next run. */
	uint64_t left = (CHUNK - n % CHUNK) % CHUNK;
	while (left) {
		char sink[CHUNK];
		ssize_t r = read(p->rfd, sink, left);
		if (r <= 0)
			die("read", errno);
		left -= (uint64_t)r;
	}
}

static void op_read(void)
{
	int fds[2];
	if (pipe(fds) < 0)
		die("pipe", errno);
	fcntl(fds[1], F_SETPIPE_SZ, 2 * CHUNK);
	ctx_cancel_t *cancel;
	ctx_t *ctx = ctx_with_timeout(ctx_background(), 3600 * CTX_SECOND, &cancel);
	if (!ctx)
		die("ctx_with_timeout", errno);
	struct pipe_arg bare = {fds[0], fds[1], NULL, false}, nowait = {fds[0], fds[1], NULL, true},
	                with = {fds[0], fds[1], ctx, false};
	bench_op("io_read_ready_bare", body_read, &bare);
	bench_op("io_read_ready_nowait", body_read, &nowait);
	bench_op("io_read_ready_ctx", body_read, &with);
	ctx_cancel(cancel);
	ctx_release(ctx);
	close(fds[0]);
	close(fds[1]);
}

/* ---- request/response over a socket pair ---- */

#define MSG 64

struct pong {
	int fd;
};

/* Answers each request with the same bytes, one context per request, until
 * the socket closes. */
static void *pong_main(void *arg)
{
	struct pong *p = arg;
	char buf[MSG];
	for (;;) {
		ctx_cancel_t *cancel;
		ctx_t *ctx = ctx_with_timeout(ctx_background(), CTX_SECOND, &cancel);
		if (!ctx)
			die("ctx_with_timeout", errno);
		size_t got = 0;
		while (got < MSG) {
			ssize_t r = ctx_read(ctx, p->fd, buf + got, MSG - got);
			if (r <= 0) {
				ctx_cancel(cancel);
				ctx_release(ctx);
				return NULL;
			}
			got += (size_t)r;
		}
		int e = ctx_write_all(ctx, p->fd, buf, MSG, NULL);
		ctx_cancel(cancel);
		ctx_release(ctx);
		if (e)
			return NULL;
	}
}

static void body_pingpong(void *arg, uint64_t n)
{
	int fd = *(int *)arg;
	char buf[MSG];
	memset(buf, 'p', sizeof buf);
	for (uint64_t i = 0; i < n; i++) {
		ctx_cancel_t *cancel;
		ctx_t *ctx = ctx_with_timeout(ctx_background(), CTX_SECOND, &cancel);
		if (!ctx)
			die("ctx_with_timeout", errno);
		int e = ctx_write_all(ctx, fd, buf, MSG, NULL);
		if (e)
			die("ctx_write_all", e);
		size_t got = 0;
		while (got < MSG) {
			ssize_t r = ctx_read(ctx, fd, buf + got, MSG - got);
			if (r <= 0)
				die("ctx_read", r ? errno : EPIPE);
			got += (size_t)r;
		}
		ctx_cancel(cancel);
		ctx_release(ctx);
	}
}

static void op_pingpong(void)
{
	if (!bench_wanted("io_pingpong_socketpair"))
		return;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		die("socketpair", errno);
	struct pong p = {sv[1]};
	pthread_t t;
	int e = pthread_create(&t, NULL, pong_main, &p);
	if (e)
		die("pthread_create", e);
	bench_op("io_pingpong_socketpair", body_pingpong, &sv[0]);
	shutdown(sv[0], SHUT_RDWR);
	pthread_join(t, NULL);
	close(sv[0]);
	close(sv[1]);
}

static void *nothing(void *p) { return p; }

int main(void)
{
	bench_config("io");

	int e = ctx_set_allocator(bench_alloc, bench_free);
	if (e)
		die("ctx_set_allocator", e);
	pthread_t t;
	if ((e = pthread_create(&t, NULL, nothing, NULL)) != 0)
		die("pthread_create", e);
	pthread_join(t, NULL);

	op_read();
	op_pingpong();
	return 0;
}
