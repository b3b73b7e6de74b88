/* rw.c: ctx_read and ctx_write_all. Each tries the operation in a form that
 * cannot wait first (so a ready descriptor costs one syscall and no
 * registration) and waits for readiness only on EAGAIN.
 *
 * Which form: recv/send with MSG_DONTWAIT on a socket (as cheap as read(2),
 * and send takes MSG_NOSIGNAL), preadv2/pwritev2 with RWF_NOWAIT on the
 * rest (the iovec path costs the kernel some 70 ns more than read(2) on a
 * pipe). Telling them apart would cost a syscall per call, so each thread
 * keeps a hint per descriptor number: "not a socket last time". The hint
 * only picks which form is tried first, and both are correct on any
 * descriptor (recv on a non-socket fails with ENOTSOCK and sets the hint;
 * RWF_NOWAIT works on sockets too, and a write that way has SIGPIPE blocked
 * and consumed), so a stale hint after a descriptor number is reused costs
 * speed, never correctness; the slow path's fstat corrects it. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* How a descriptor is read or written once the call knows more about it. */
enum mode {
	TRY_NOWAIT, /* RWF_NOWAIT (or MSG_DONTWAIT) form, wait on EAGAIN */
	PLAIN,      /* a non-blocking descriptor without that form: plain call, wait on EAGAIN */
	POLL_FIRST, /* blocking, no such form: wait for readiness, then the plain call */
	NEVER_WAITS, /* a regular file or block device: the plain call */
};

/* The hint: bit set = the descriptor was not a socket last time. */
#define HINT_FDS 1024
static _Thread_local uint64_t not_socket[HINT_FDS / 64];

static bool hint_not_socket(int fd)
{
	return fd >= 0 && fd < HINT_FDS && ((not_socket[fd / 64] >> (fd % 64)) & 1);
}

static void hint_set(int fd, bool is_socket)
{
	if (fd < 0 || fd >= HINT_FDS)
		return;
	uint64_t bit = (uint64_t)1 << (fd % 64);
	if (is_socket)
		not_socket[fd / 64] &= ~bit;
	else
		not_socket[fd / 64] |= bit;
}

/* After the per-call form said EAGAIN or is not supported: what now. On a
 * blocking regular file RWF_NOWAIT says EAGAIN for data not in the page
 * cache, while poll says "ready": read it as read(2) would. A socket
 * always has its per-call form (MSG_DONTWAIT). */
static enum mode classify(int fd, bool nowait_supported)
{
	struct stat st;
	bool st_ok = fstat(fd, &st) == 0;
	if (st_ok) {
		hint_set(fd, S_ISSOCK(st.st_mode));
		if (S_ISSOCK(st.st_mode))
			return TRY_NOWAIT;
	}
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0 && (fl & O_NONBLOCK))
		return nowait_supported ? TRY_NOWAIT : PLAIN;
	if (st_ok && (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)))
		return NEVER_WAITS;
	return nowait_supported ? TRY_NOWAIT : POLL_FIRST;
}

#ifndef PIPE_BUF
#define PIPE_BUF _POSIX_PIPE_BUF /* where limits.h leaves it to fpathconf */
#endif

/* A blocking descriptor without a per-call form is polled before the plain
 * call; a look without a timeout first spares a ready one the registration. */
static bool ready_now(int fd, short events)
{
	struct pollfd p = {.fd = fd, .events = events};
	int r;
	while ((r = poll(&p, 1, 0)) < 0 && errno == EINTR)
		;
	return r == 1;
}

static bool no_nowait_form(int e) { return e == EOPNOTSUPP || e == ENOSYS || e == EINVAL; }

ssize_t ctx_read(ctx_t *ctx, int fd, void *buf, size_t len)
{
	if (!ctx || (!buf && len)) {
		errno = EINVAL;
		return -1;
	}
	int e = ctx_err(ctx);
	if (e) {
		errno = e;
		return -1;
	}
	enum mode m = TRY_NOWAIT;
	bool classified = false;
	for (;;) {
		ssize_t r;
		switch (m) {
		case TRY_NOWAIT:
			if (!hint_not_socket(fd)) {
				r = recv(fd, buf, len, MSG_DONTWAIT);
				if (r < 0 && errno == ENOTSOCK) {
					hint_set(fd, false);
					continue;
				}
				classified = true; /* a socket: nothing more to learn */
			} else {
				r = ctx__os_read_nowait(fd, buf, len);
				if (r < 0 && no_nowait_form(errno)) {
					m = classify(fd, false);
					classified = true;
					continue;
				}
			}
			break;
		case POLL_FIRST:
			if (!ready_now(fd, POLLIN) && (e = ctx__io_wait1(ctx, fd, POLLIN)) != 0) {
				errno = e;
				return -1;
			}
			/* fallthrough */
		default:
			r = read(fd, buf, len);
			break;
		}
		if (r >= 0)
			return r;
		if (errno == EINTR)
			continue;
		if ((errno != EAGAIN && errno != EWOULDBLOCK) || m == NEVER_WAITS)
			return -1;
		if (!classified) {
			classified = true;
			if ((m = classify(fd, true)) == NEVER_WAITS)
				continue;
		}
		if (m == POLL_FIRST) /* another thread took the data: wait first again */
			continue;
		if ((e = ctx__io_wait1(ctx, fd, POLLIN)) != 0) {
			errno = e;
			return -1;
		}
	}
}

/* ---- writing ---- */

/* Writes to a socket: send never raises SIGPIPE with MSG_NOSIGNAL. */
static int write_sock(ctx_t *ctx, int fd, const char *p, size_t len, size_t *done, ssize_t first)
{
	ssize_t r = first;
	for (;;) {
		if (r >= 0) {
			*done += (size_t)r;
			if (*done == len)
				return 0;
		} else if (errno != EINTR) {
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return errno;
			int e = ctx__io_wait1(ctx, fd, POLLOUT);
			if (e)
				return e;
		}
		r = send(fd, p + *done, len - *done, MSG_DONTWAIT | MSG_NOSIGNAL);
	}
}

/* write_other's answer when the descriptor turns out to be a socket after
 * all (a stale hint) on a platform where only send can write it without
 * waiting: the caller goes on with write_sock. */
#define IS_SOCKET (-1)

/* Writes to anything else, with SIGPIPE blocked in this thread. */
static int write_other(ctx_t *ctx, int fd, const char *p, size_t len, size_t *done)
{
	enum mode m = TRY_NOWAIT;
	bool classified = false;
	for (;;) {
		ssize_t r;
		if (m == TRY_NOWAIT) {
			r = ctx__os_write_nowait(fd, p + *done, len - *done);
			if (r < 0 && no_nowait_form(errno)) {
				m = classify(fd, false);
				classified = true;
				if (!hint_not_socket(fd))
					return IS_SOCKET;
				continue;
			}
		} else {
			size_t n = len - *done;
			if (m == POLL_FIRST) {
				int e = ready_now(fd, POLLOUT) ? 0 : ctx__io_wait1(ctx, fd, POLLOUT);
				if (e)
					return e;
				/* A blocking write of more than PIPE_BUF waits for room
				 * for all of it; POLLOUT promises room for PIPE_BUF. */
				if (n > PIPE_BUF)
					n = PIPE_BUF;
			}
			r = write(fd, p + *done, n);
		}
		if (r >= 0) {
			*done += (size_t)r;
			if (*done == len)
				return 0;
			continue;
		}
		if (errno == EINTR)
			continue;
		if ((errno != EAGAIN && errno != EWOULDBLOCK) || m == NEVER_WAITS)
			return errno;
		if (!classified) {
			classified = true;
			if ((m = classify(fd, true)) == NEVER_WAITS)
				continue;
		}
		if (m == POLL_FIRST)
			continue;
		int e = ctx__io_wait1(ctx, fd, POLLOUT);
		if (e)
			return e;
	}
}

/* The SIGPIPE of a failed write is sent to the writing thread: with it
 * blocked, it stays pending in this thread, where sigtimedwait takes it. One
 * that was pending before the call is someone else's: left alone. */
static int write_nosigpipe(ctx_t *ctx, int fd, const char *p, size_t len, size_t *done)
{
	sigset_t pipe_set, old;
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	bool was_blocked = sigismember(&old, SIGPIPE) == 1;
	bool pending_before = false;
	if (was_blocked) {
		sigset_t pend;
		pending_before = sigpending(&pend) == 0 && sigismember(&pend, SIGPIPE) == 1;
	}
	int e = write_other(ctx, fd, p, len, done);
	if (e == EPIPE && !pending_before) {
		const struct timespec zero = {0, 0};
		while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
			;
	}
	if (!was_blocked)
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	return e;
}

int ctx_write_all(ctx_t *ctx, int fd, const void *buf, size_t len, size_t *written)
{
	size_t done = 0;
	if (written)
		*written = 0;
	if (!ctx || (!buf && len))
		return EINVAL;
	int e = ctx_err(ctx);
	if (e)
		return e;
	if (!len)
		return 0;
	const char *p = buf;
	ssize_t r = 0;
	bool sent = false;
	if (!hint_not_socket(fd)) {
		r = send(fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		sent = !(r < 0 && errno == ENOTSOCK);
		if (!sent)
			hint_set(fd, false);
	}
	if (!sent) {
		e = write_nosigpipe(ctx, fd, p, len, &done);
		if (e == IS_SOCKET) {
			r = send(fd, p + done, len - done, MSG_DONTWAIT | MSG_NOSIGNAL);
			sent = true;
		}
	}
	if (sent)
		e = write_sock(ctx, fd, p, len, &done, r);
	if (written)
		*written = done;
	return e;
}
