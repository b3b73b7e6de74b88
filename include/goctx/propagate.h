/* goctx/propagate.h: deadlines across processes, as gRPC's `grpc-timeout`
 * request header carries them (PROTOCOL-HTTP2.md: TimeoutValue, a positive
 * integer of at most 8 ASCII digits, then TimeoutUnit, one of H M S m u n:
 * hours, minutes, seconds, milliseconds, microseconds, nanoseconds).
 *
 * A client writes the time its context has left into the header; the server
 * makes its request context with that timeout, so the deadline follows the
 * request (shortened by the time on the wire: the server's clock starts
 * when it reads the header). Behaviour is grpc-go's.
 */
#ifndef GOCTX_PROPAGATE_H
#define GOCTX_PROPAGATE_H

#include <stddef.h>

#include <goctx.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Longest value format writes: 8 digits and a unit, plus the NUL. */
#define CTX_GRPC_TIMEOUT_MAX 10

/* The time left until the deadline of ctx as a grpc-timeout value, rounded
 * up in the finest unit whose count fits in 8 digits ("1500m" is never
 * written: 1.5 s is "1500000u", 2 h and 1 ns "7200001m", as grpc-go's
 * encodeTimeout). snprintf-like: writes at most size bytes, NUL included,
 * and returns the length of the whole value (buf may be NULL when size is
 * 0). -1 with errno ENOENT when ctx has no deadline (done or not); ETIMEDOUT
 * when its deadline has passed or it is done; EINVAL for a NULL ctx. On
 * error buf gets "" (when size > 0). Never blocks. */
int ctx_grpc_timeout_format(const ctx_t *ctx, char *buf, size_t size);

/* ctx_with_timeout(parent, the timeout in value, cancel): "100m" is 100 ms.
 * "0S" (any zero) is valid and gives a context done at once, as grpc-go.
 * Hours beyond what ctx_duration_t holds saturate (no deadline is reached
 * before the end of time). Malformed (NULL, empty, no digits, 9 or more
 * digits, a sign, a space, an unknown unit, trailing text): NULL with errno
 * EINVAL, *cancel (when not NULL) set to NULL. Otherwise as
 * ctx_with_timeout. */
ctx_t *ctx_with_grpc_timeout(ctx_t *parent, const char *value, ctx_cancel_t **cancel);

#ifdef __cplusplus
}
#endif

#endif /* GOCTX_PROPAGATE_H */
