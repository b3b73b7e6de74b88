/* wait.c: the one wait of src/io (descriptors and a context at once) and
 * ctx_poll.
 *
 * A wait polls the caller's descriptors plus the calling thread's wake
 * descriptor, with the time left until the context's deadline as the poll
 * timeout. An after-func registered on the context for the wait (in the
 * wait's own frame: ctx_after_func_at, so a wait allocates nothing) signals the
 * wake descriptor of the waiting thread when the context is done. After the
 * poll, ctx_after_stop either stops the after-func (it never runs: the wake
 * descriptor was not signalled) or returns once it has run (it signalled
 * exactly once: drain it). Either way the wake descriptor is clean when the
 * wait returns, so the next wait of the thread starts from nothing.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "internal.h"

/* The calling thread's wake descriptor. The key's destructor closes it when
 * the thread exits (it is given the address of this thread's `tls`, which
 * lives until the destructors have run). */
static _Thread_local ctx__os_wakefd_t tls = {.rfd = -1, .wfd = -1};
static pthread_key_t key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static int key_err;

static void tls_destroy(void *p) { ctx__os_wakefd_close(p); }

/* In a forked child the descriptor is shared with the parent's thread:
 * drop it (the forking thread is the child's only thread), a new one is
 * made on the next wait. */
static void tls_forked(void) { ctx__os_wakefd_close(&tls); }

static void key_init(void)
{
	key_err = pthread_key_create(&key, tls_destroy);
	if (!key_err)
		key_err = ctx__os_atfork(NULL, NULL, tls_forked);
}

static const ctx__os_wakefd_t *thread_waker(int *err)
{
	if (tls.rfd >= 0)
		return &tls;
	pthread_once(&key_once, key_init);
	if (key_err) {
		*err = key_err;
		return NULL;
	}
	int e = ctx__os_wakefd_open(&tls);
	if (!e && (e = pthread_setspecific(key, &tls)) != 0)
		ctx__os_wakefd_close(&tls);
	if (e) {
		*err = e;
		return NULL;
	}
	return &tls;
}

static void wake(void *arg) { ctx__os_wakefd_signal(arg); }

/* The count of entries with revents set. */
static int count_ready(const struct pollfd *fds, nfds_t n)
{
	int c = 0;
	for (nfds_t i = 0; i < n; i++)
		c += fds[i].revents != 0;
	return c;
}

static void clear_revents(struct pollfd *fds, nfds_t n)
{
	for (nfds_t i = 0; i < n; i++)
		fds[i].revents = 0;
}

/* A context that can never be done and has no deadline: plain poll. */
static int wait_forever(struct pollfd *fds, nfds_t n, int *ready)
{
	int r;
	while ((r = ctx__os_poll(fds, n, -1)) < 0 && errno == EINTR)
		;
	if (r < 0)
		return errno;
	if (ready)
		*ready = r;
	return 0;
}

#define WAIT_STACK 8 /* descriptors a wait handles without allocating */

int ctx__io_wait(ctx_t *ctx, struct pollfd *fds, nfds_t n, int *ready)
{
	clear_revents(fds, n);
	int e = ctx_err(ctx);
	if (e)
		return e;
	ctx_time_t deadline;
	bool has_deadline = ctx_deadline(ctx, &deadline);
	if (!ctx->src)
		return wait_forever(fds, n, ready);

	const ctx__os_wakefd_t *w = thread_waker(&e);
	if (!w)
		return e;
	struct pollfd stack[WAIT_STACK + 1];
	struct pollfd *all = stack;
	if (n > WAIT_STACK) {
		if (n + 1 > SIZE_MAX / sizeof *all)
			return EINVAL;
		all = ctx__alloc((n + 1) * sizeof *all);
		if (!all)
			return ENOMEM;
	}
	memcpy(all, fds, n * sizeof *fds);
	all[n] = (struct pollfd){.fd = w->rfd, .events = POLLIN};

	/* In this frame's storage: a wait allocates nothing (the caller holds
	 * ctx across the call, as the slot's rules want). */
	ctx_after_slot_t slot;
	ctx_after_t *stop = ctx_after_func_at(ctx, &slot, wake, (void *)w);
	if (!stop) {
		e = errno;
		goto out;
	}
	for (;;) {
		ctx_duration_t timeout = -1;
		if (has_deadline) {
			timeout = deadline - ctx_now();
			if (timeout < 0)
				timeout = 0;
		}
		int r = ctx__os_poll(all, n + 1, timeout);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			e = errno;
			break;
		}
		int c = count_ready(all, n);
		if (c) {
			/* Ready descriptors win over a context done meanwhile. */
			for (nfds_t i = 0; i < n; i++)
				fds[i].revents = all[i].revents;
			if (ready)
				*ready = c;
			e = 0;
			break;
		}
		if ((e = ctx_err(ctx)) != 0)
			break;
		if (has_deadline && ctx_now() >= deadline) {
			/* The deadline passed before the timer thread fired it. */
			e = ETIMEDOUT;
			break;
		}
		/* A poll that ended early (a fake clock moved, a spurious wake):
		 * wait again; a signal with no done context is stale, drop it. */
		if (all[n].revents)
			ctx__os_wakefd_drain(w);
	}
	if (!ctx_after_stop(stop))
		ctx__os_wakefd_drain(w); /* it ran, and signalled once */
out:
	if (all != stack)
		ctx__free(all);
	return e;
}

int ctx__io_wait1(ctx_t *ctx, int fd, short events)
{
	struct pollfd p = {.fd = fd, .events = events};
	return ctx__io_wait(ctx, &p, 1, NULL);
}

int ctx_poll(ctx_t *ctx, struct pollfd *fds, nfds_t n, int *ready)
{
	if (!ctx || (!fds && n))
		return EINVAL;
	clear_revents(fds, n);
	int e = ctx_err(ctx);
	if (e)
		return e;
	/* What is ready now costs one poll and no registration. */
	int r;
	while ((r = ctx__os_poll(fds, n, 0)) < 0 && errno == EINTR)
		;
	if (r < 0)
		return errno;
	if (r > 0) {
		if (ready)
			*ready = r;
		return 0;
	}
	return ctx__io_wait(ctx, fds, n, ready);
}
