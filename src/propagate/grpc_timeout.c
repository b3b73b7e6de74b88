/* grpc_timeout.c: the grpc-timeout header value, to and from a context. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "goctx/propagate.h"

#define MAX_VALUE 99999999 /* 8 digits */

static const struct unit {
	char c;
	ctx_duration_t ns;
} units[] = {
	/* Finest first: format takes the first whose count fits. */
	{'n', CTX_NANOSECOND},
	{'u', CTX_MICROSECOND},
	{'m', CTX_MILLISECOND},
	{'S', CTX_SECOND},
	{'M', 60 * CTX_SECOND},
	{'H', 3600 * CTX_SECOND},
};

/* d / r rounded up, for d > 0 (no overflow: d / r + 1 <= d). */
static int64_t div_up(ctx_duration_t d, ctx_duration_t r) { return d / r + (d % r != 0); }

int ctx_grpc_timeout_format(const ctx_t *ctx, char *buf, size_t size)
{
	int e = 0;
	ctx_time_t deadline;
	if (!ctx || (!buf && size))
		e = EINVAL;
	else if (!ctx_deadline(ctx, &deadline))
		e = ENOENT;
	else if (ctx_done(ctx))
		e = ETIMEDOUT;
	ctx_duration_t left = 0;
	if (!e && (left = deadline - ctx_now()) <= 0)
		e = ETIMEDOUT;
	if (e) {
		if (buf && size)
			buf[0] = '\0';
		errno = e;
		return -1;
	}
	size_t i = 0;
	/* The last unit (hours) takes whatever is left: INT64_MAX ns is about
	 * 2562048 hours, 7 digits. */
	while (i + 1 < sizeof units / sizeof units[0] && div_up(left, units[i].ns) > MAX_VALUE)
		i++;
	return snprintf(buf, size, "%lld%c", (long long)div_up(left, units[i].ns), units[i].c);
}

/* The timeout in value, or -1 when it is malformed. */
static ctx_duration_t parse(const char *value)
{
	size_t n = strlen(value);
	if (n < 2 || n > 9)
		return -1;
	const struct unit *u = NULL;
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
		if (units[i].c == value[n - 1])
			u = &units[i];
	if (!u)
		return -1;
	int64_t v = 0;
	for (size_t i = 0; i + 1 < n; i++) {
		if (value[i] < '0' || value[i] > '9')
			return -1;
		v = v * 10 + (value[i] - '0');
	}
	/* 8 digits of anything but hours fit in 63 bits (99999999 M < 2^63
	 * ns); hours beyond INT64_MAX ns saturate, as grpc-go's clamp. */
	if (v > INT64_MAX / u->ns)
		return INT64_MAX;
	return v * u->ns;
}

ctx_t *ctx_with_grpc_timeout(ctx_t *parent, const char *value, ctx_cancel_t **cancel)
{
	ctx_duration_t d = value ? parse(value) : -1;
	if (d < 0) {
		if (cancel)
			*cancel = NULL;
		errno = EINVAL;
		return NULL;
	}
	return ctx_with_timeout(parent, d, cancel);
}
