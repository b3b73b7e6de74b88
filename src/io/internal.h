/* internal.h: what the files of src/io share. */
#ifndef GOCTX_IO_INTERNAL_H
#define GOCTX_IO_INTERNAL_H

#include <poll.h>

#include "../ctx/internal.h"
#include "goctx/io.h"

/* Wait until one of fds[0..n) has revents, ctx is done or its deadline
 * passes. ctx must be non-NULL. 0 with *ready the count (ready may be NULL);
 * the context's error (ETIMEDOUT for a deadline that passed before the timer
 * thread fired it) with every revents 0; or poll's error (ENOMEM for the
 * after-func registration). Never returns EINTR. */
int ctx__io_wait(ctx_t *ctx, struct pollfd *fds, nfds_t n, int *ready);

/* ctx__io_wait on one descriptor for `events`: 0 once it is ready (any
 * revents, errors and hang-ups included: the next call reports them). */
int ctx__io_wait1(ctx_t *ctx, int fd, short events);

#endif
