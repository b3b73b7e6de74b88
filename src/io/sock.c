/* sock.c: ctx_accept and ctx_connect. */
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

int ctx_accept(ctx_t *ctx, int fd, struct sockaddr *addr, socklen_t *addrlen, int flags)
{
	if (!ctx) {
		errno = EINVAL;
		return -1;
	}
	int e = ctx_err(ctx);
	if (e) {
		errno = e;
		return -1;
	}
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return -1;
	/* accept4 has no per-call non-blocking flag: on a blocking listener,
	 * wait for readiness first. */
	bool wait_first = !(fl & O_NONBLOCK);
	for (;;) {
		if (wait_first && (e = ctx__io_wait1(ctx, fd, POLLIN)) != 0) {
			errno = e;
			return -1;
		}
		int c = accept4(fd, addr, addrlen, flags);
		if (c >= 0)
			return c;
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -1;
		if (!wait_first && (e = ctx__io_wait1(ctx, fd, POLLIN)) != 0) {
			errno = e;
			return -1;
		}
	}
}

int ctx_connect(ctx_t *ctx, int fd, const struct sockaddr *addr, socklen_t addrlen)
{
	if (!ctx || !addr)
		return EINVAL;
	int e = ctx_err(ctx);
	if (e)
		return e;
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return errno;
	if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return errno;
	if (connect(fd, addr, addrlen) == 0) {
		e = 0;
	} else if (errno == EINPROGRESS || errno == EINTR || errno == EALREADY) {
		/* EINTR: the connection goes on in the background, as EINPROGRESS
		 * (Go waits on the same three). */
		e = ctx__io_wait1(ctx, fd, POLLOUT);
		if (!e) {
			int soerr = 0;
			socklen_t sl = sizeof soerr;
			if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
				e = errno;
			else
				e = soerr;
		}
	} else {
		e = errno;
	}
	if (!(fl & O_NONBLOCK)) {
		int saved = errno;
		fcntl(fd, F_SETFL, fl);
		errno = saved;
	}
	return e;
}
