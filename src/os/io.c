/* io.c: the platform's part of src/io: a thread's wake descriptor (eventfd
 * on Linux, a pipe elsewhere), poll with a ns timeout, and the per-call
 * non-blocking read and write (preadv2/pwritev2 with RWF_NOWAIT). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <sys/uio.h>
#include <unistd.h>

#include "os.h"

#if GOCTX_OS_LINUX
#include <sys/eventfd.h>

int ctx__os_wakefd_open(ctx__os_wakefd_t *w)
{
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (fd < 0)
		return errno;
	w->rfd = w->wfd = fd;
	return 0;
}

void ctx__os_wakefd_signal(const ctx__os_wakefd_t *w)
{
	uint64_t one = 1;
	ssize_t r;
	do
		r = write(w->wfd, &one, sizeof one);
	while (r < 0 && errno == EINTR);
}

void ctx__os_wakefd_drain(const ctx__os_wakefd_t *w)
{
	uint64_t v;
	ssize_t r;
	/* One read takes the whole counter. */
	do
		r = read(w->rfd, &v, sizeof v);
	while (r < 0 && errno == EINTR);
}

void ctx__os_wakefd_close(ctx__os_wakefd_t *w)
{
	if (w->rfd >= 0)
		close(w->rfd);
	w->rfd = w->wfd = -1;
}

int ctx__os_poll(struct pollfd *fds, unsigned long n, ctx_duration_t timeout)
{
	if (timeout < 0)
		return ppoll(fds, (nfds_t)n, NULL, NULL);
	struct timespec ts = {.tv_sec = (time_t)(timeout / CTX_SECOND),
	                      .tv_nsec = (long)(timeout % CTX_SECOND)};
	return ppoll(fds, (nfds_t)n, &ts, NULL);
}

ssize_t ctx__os_read_nowait(int fd, void *buf, size_t len)
{
#ifdef RWF_NOWAIT
	struct iovec v = {.iov_base = buf, .iov_len = len};
	return preadv2(fd, &v, 1, -1, RWF_NOWAIT);
#else
	(void)fd, (void)buf, (void)len;
	errno = EOPNOTSUPP;
	return -1;
#endif
}

ssize_t ctx__os_write_nowait(int fd, const void *buf, size_t len)
{
#ifdef RWF_NOWAIT
	struct iovec v = {.iov_base = (void *)buf, .iov_len = len};
	return pwritev2(fd, &v, 1, -1, RWF_NOWAIT);
#else
	(void)fd, (void)buf, (void)len;
	errno = EOPNOTSUPP;
	return -1;
#endif
}
#else
static int set_flags(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		return errno;
	return 0;
}

int ctx__os_wakefd_open(ctx__os_wakefd_t *w)
{
	int p[2];
	if (pipe(p) < 0)
		return errno;
	int e = set_flags(p[0]);
	if (!e)
		e = set_flags(p[1]);
	if (e) {
		close(p[0]);
		close(p[1]);
		return e;
	}
	w->rfd = p[0];
	w->wfd = p[1];
	return 0;
}

void ctx__os_wakefd_signal(const ctx__os_wakefd_t *w)
{
	char b = 1;
	ssize_t r;
	/* A full pipe is readable already: EAGAIN is fine. */
	do
		r = write(w->wfd, &b, 1);
	while (r < 0 && errno == EINTR);
}

void ctx__os_wakefd_drain(const ctx__os_wakefd_t *w)
{
	char b[64];
	ssize_t r;
	do
		r = read(w->rfd, b, sizeof b);
	while (r > 0 || (r < 0 && errno == EINTR));
}

void ctx__os_wakefd_close(ctx__os_wakefd_t *w)
{
	if (w->rfd >= 0) {
		close(w->rfd);
		close(w->wfd);
	}
	w->rfd = w->wfd = -1;
}

int ctx__os_poll(struct pollfd *fds, unsigned long n, ctx_duration_t timeout)
{
	int ms;
	if (timeout < 0)
		ms = -1;
	else if (timeout >= (ctx_duration_t)INT_MAX * CTX_MILLISECOND)
		ms = INT_MAX;
	else
		ms = (int)((timeout + CTX_MILLISECOND - 1) / CTX_MILLISECOND);
	return poll(fds, (nfds_t)n, ms);
}

ssize_t ctx__os_read_nowait(int fd, void *buf, size_t len)
{
	(void)fd, (void)buf, (void)len;
	errno = EOPNOTSUPP;
	return -1;
}

ssize_t ctx__os_write_nowait(int fd, const void *buf, size_t len)
{
	(void)fd, (void)buf, (void)len;
	errno = EOPNOTSUPP;
	return -1;
}
#endif
