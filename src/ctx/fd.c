/* fd.c: the done descriptor, made lazily (Go makes Done channels lazily). */
#include <errno.h>

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
	int e = 0;
	if (!ctx__os_done_made(&s->done)) {
		/* err is written under this lock: relaxed is ordered by it. */
		bool done = atomic_load_explicit(&s->state, memory_order_relaxed) & CTX__ERR_MASK;
		e = ctx__os_done_open(&s->done, done);
	}
	int fd = s->done.fd;
	ctx__unlock(&s->lock);
	if (e) {
		errno = e;
		return -1;
	}
	return fd;
}
