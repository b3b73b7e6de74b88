/* An outside program built against the installed goctx-uv (pkg-config
 * goctx-uv): a watch on a 20 ms context calls back on the loop. Exits 0 when
 * the callback saw ETIMEDOUT. */
#define _POSIX_C_SOURCE 200809L /* uv.h needs POSIX types under -std=c11 */
#include <errno.h>
#include <stdio.h>

#include <goctx/uv.h>

static int seen;

static void done(ctx_uv_watch_t *w, int err) {
    seen = err;
    ctx_uv_watch_close(w, NULL);
}

int main(void) {
    uv_loop_t loop;
    ctx_uv_watch_t w;
    ctx_cancel_t *cancel;
    ctx_t *ctx = ctx_with_timeout(ctx_background(), 20 * CTX_MILLISECOND, &cancel);
    if (!ctx || uv_loop_init(&loop) != 0 || ctx_uv_watch_init(&loop, &w) != 0 ||
        ctx_uv_watch_start(&w, ctx, done) != 0)
        return 1;
    uv_run(&loop, UV_RUN_DEFAULT);
    ctx_cancel(cancel);
    ctx_release(ctx);
    if (uv_loop_close(&loop) != 0 || seen != ETIMEDOUT) {
        fprintf(stderr, "consumer goctx-uv: callback saw %d\n", seen);
        return 1;
    }
    printf("consumer goctx-uv: %s\n", ctx_strerror(seen));
    return 0;
}
