/* fd.c: the done descriptor, made lazily (Go makes Done channels lazily). */
#include <errno.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "internal.h"

int ctx_done_fd(ctx_t *ctx)
{
	if (!ctx) {
		errno = EINVAL;
		return -1;
	}
	struct ctx__cnode *s = ctx->src;
	if (!s) {
		errno = ENOENT; /* never done: a nil Done channel */
		return -1;
	}
	ctx__lock(&s->lock);
	int fd = s->fd;
	if (fd < 0) {
		/* Semaphore mode: a stray read() takes 1 from a counter near its
		 * maximum, so the descriptor stays readable (see cancel.c). */
		fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK | EFD_SEMAPHORE);
		if (fd >= 0) {
			/* err is written under this lock. */
			if (atomic_load_explicit(&s->state, memory_order_relaxed) & CTX__ERR_MASK) {
				uint64_t v = UINT64_MAX - 1;
				ssize_t w;
				do
					w = write(fd, &v, sizeof v);
				while (w < 0 && errno == EINTR);
			}
			s->fd = fd;
		}
	}
	ctx__unlock(&s->lock);
	return fd;
}
