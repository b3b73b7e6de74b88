/* wait.c: blocking until a context is done (ctx_wait, ctx_sleep).
 * Uses: word.c, read.c. */
#include <errno.h>

#include "internal.h"

static bool is_done(uint32_t s) { return (s & CTX__ERR_MASK) && !(s & CTX__PUBLISHING); }
static bool never(uint32_t s) { (void)s; return false; }

int ctx_wait(ctx_t *ctx, ctx_duration_t timeout)
{
	if (!ctx)
		return EINVAL;
	struct ctx__cnode *s = ctx->src;
	int err = ctx_err(ctx);
	if (err || timeout == 0 || (timeout < 0 && timeout != CTX_FOREVER))
		return err;
	ctx_time_t until = timeout == CTX_FOREVER ? -1 : ctx__add_sat(ctx__os_now(), timeout);
	if (!s) {
		/* Never done: just let the time pass (Go's nil channel). */
		_Atomic uint32_t nobody = 0;
		ctx__wait_word(&nobody, never, until);
		return 0;
	}
	ctx__wait_word(&s->state, is_done, until);
	return ctx_err(ctx);
}

int ctx_sleep(ctx_t *ctx, ctx_duration_t d)
{
	/* Same contract: 0 when the time passed first, err when done first. */
	return ctx_wait(ctx, d);
}
