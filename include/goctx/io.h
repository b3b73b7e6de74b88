/* goctx/io.h: I/O bounded by a context (Go's net.Conn deadlines and
 * net.Dialer.DialContext, for plain descriptors).
 *
 * Each call returns when the operation completes, when ctx is done
 * (ctx_err(ctx): ECANCELED or ETIMEDOUT), or when the deadline of ctx
 * passes (ETIMEDOUT), whichever comes first. A context already done on entry
 * gives its error at once and does nothing. Signals do not end a call early
 * (EINTR is retried).
 *
 * Descriptors. Blocking and non-blocking descriptors both work, and no call
 * but ctx_connect changes O_NONBLOCK (ctx_connect sets it for the wait and
 * restores it before returning). Every call first tries the operation in a
 * form that cannot wait (recv/send with MSG_DONTWAIT on sockets, Linux's
 * preadv2/pwritev2 with RWF_NOWAIT on pipes and the rest), and waits for
 * readiness only when that says EAGAIN: on a ready descriptor ctx_read is one
 * syscall and registers nothing. Where no such form exists the call polls
 * first (bounded by ctx) and then makes the plain call, which can block if
 * another thread takes the readiness in between:
 *   - ctx_accept on a blocking listening socket (accept has no per-call
 *     non-blocking flag): share a listener between threads only when it is
 *     non-blocking;
 *   - ctx_read/ctx_write_all on a blocking descriptor without RWF_NOWAIT
 *     support (a terminal, a platform other than Linux), except sockets
 *     (a look with poll comes first, so a ready one still registers
 *     nothing; writes go PIPE_BUF bytes per readiness, the most POLLOUT
 *     promises room for);
 *   - regular files and block devices are always "ready" (poll says so):
 *     on them the calls read and write as read(2)/write(2) do.
 *
 * Waiting costs no descriptor per context or per call: each thread that ever
 * waits gets one wake descriptor (an eventfd on Linux), made on its first
 * wait, reused, and closed when the thread exits. A wait polls the caller's
 * descriptors plus that one, with the context's deadline as the poll
 * timeout, and an after-func on the context (ctx_after_func) makes it
 * readable when the context is done. A context that never had ctx_done_fd
 * called has no descriptor after these calls either. A wait allocates one
 * after-func registration (ENOMEM possible); the fast path allocates nothing.
 *
 * SIGPIPE is never raised by these calls: writes to sockets use
 * MSG_NOSIGNAL; around a write to anything else ctx_write_all blocks SIGPIPE
 * in the calling thread and, when the write failed with EPIPE, consumes the
 * SIGPIPE it caused (sigtimedwait) before restoring the signal mask. A
 * SIGPIPE that was already pending before the call is left pending.
 *
 * Errors are positive errno values (or -1 with errno where the call's libc
 * counterpart returns -1); a NULL ctx or pointer the call needs is EINVAL.
 * Every function is safe from any thread; each may block up to the
 * context's deadline.
 */
#ifndef GOCTX_IO_H
#define GOCTX_IO_H

#include <poll.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <goctx.h>

#ifdef __cplusplus
extern "C" {
#endif

/* poll(2) over fds[0..n), bounded by ctx. 0 with *ready (may be NULL) the
 * number of entries with revents set; or the context's error (every revents
 * 0 then); or poll's own error. When descriptors are ready and ctx is done
 * at the same time, the ready descriptors win. */
int ctx_poll(ctx_t *ctx, struct pollfd *fds, nfds_t n, int *ready);

/* At most len bytes, as read(2): the count (0 at end of file), or -1 with
 * errno = the context's error when it is done before any byte arrived, or
 * read's error. A byte that was read is never dropped: the count is
 * returned even if ctx became done meanwhile. */
ssize_t ctx_read(ctx_t *ctx, int fd, void *buf, size_t len);

/* Write all len bytes, unless ctx is done or a write fails first. 0 or the
 * error (EPIPE when the reader is gone: never SIGPIPE). *written (written
 * may be NULL) is always the number of bytes actually written: 0 when ctx
 * was done on entry, fewer than len on an error, so nothing is lost or
 * written twice. */
int ctx_write_all(ctx_t *ctx, int fd, const void *buf, size_t len, size_t *written);

/* accept4(2) with flags (SOCK_NONBLOCK, SOCK_CLOEXEC), bounded by ctx: the
 * new descriptor, or -1 with errno (the context's error, or accept's).
 * ECONNABORTED (a peer that gave up in the backlog) is retried, as Go does.
 * On a blocking listener the call polls first, then accepts: see above. */
int ctx_accept(ctx_t *ctx, int fd, struct sockaddr *addr, socklen_t *addrlen, int flags);

/* connect(2) bounded by ctx: fd is made non-blocking for the wait and its
 * flags are restored before returning. 0 or the error (ECONNREFUSED, ...,
 * or the context's). When ctx ends the wait, the connection attempt is
 * still under way in the kernel: close fd (as Go does). */
int ctx_connect(ctx_t *ctx, int fd, const struct sockaddr *addr, socklen_t addrlen);

/* Go's DialContext("tcp", host:port). A numeric host and port are
 * converted in this thread; a name is resolved (getaddrinfo) on a
 * short-lived thread of the library's own, which the call abandons when ctx
 * is done first: that thread finishes its lookup on its own and frees what
 * it used; nothing waits for it. The resolved addresses are tried in order,
 * each connect bounded by ctx (the whole remaining time, not a share of it:
 * Go divides it between the addresses). On success *fd is a connected
 * blocking SOCK_CLOEXEC socket. Errors: the context's; the last connect's;
 * for resolution EHOSTUNREACH (no such host, no data, temporary or
 * permanent failure), EINVAL (a port or service that is rejected; NULL
 * arguments), ENOMEM; EAGAIN when the resolver thread cannot start. */
int ctx_dial_tcp(ctx_t *ctx, const char *host, const char *port, int *fd);

#ifdef __cplusplus
}
#endif

#endif /* GOCTX_IO_H */
