/* errgroup.c: run fetch-like jobs in parallel with an error group.
 *
 * golang.org/x/sync/errgroup's WithContext pattern, in C. Eight "fetches"
 * run at most three at a time (ctx_errgroup_set_limit); each takes a while
 * (ctx_sleep, which returns early when the group context ends). Fetch 4
 * fails with EHOSTUNREACH: that first error cancels the group context with
 * it as the cause, so the fetches still running or not yet started see the
 * context done and give up, and ctx_errgroup_wait returns it.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>

#include <goctx.h>
#include <goctx/sync.h>

static int fetch(ctx_t *gctx, void *arg) {
    int id = (int)(intptr_t)arg;
    if (ctx_err(gctx)) {
        printf("fetch %d: not started, group done: %s\n", id, ctx_strerror(ctx_cause(gctx)));
        return 0;
    }
    if (id == 4) {
        ctx_sleep(gctx, 30 * CTX_MILLISECOND);
        printf("fetch %d: host unreachable\n", id);
        return EHOSTUNREACH;
    }
    int err = ctx_sleep(gctx, (20 + 15 * id) * CTX_MILLISECOND);
    if (err) {
        printf("fetch %d: gave up: %s (cause: %s)\n", id, ctx_strerror(err),
               ctx_strerror(ctx_cause(gctx)));
        return err;
    }
    printf("fetch %d: ok\n", id);
    return 0;
}

int main(void) {
    ctx_t *gctx;
    ctx_errgroup_t *g = ctx_errgroup_new(ctx_background(), &gctx);
    if (!g) {
        perror("ctx_errgroup_new");
        return 1;
    }
    ctx_errgroup_set_limit(g, 3);
    for (int id = 0; id < 8; id++) {
        int e = ctx_errgroup_go(g, fetch, (void *)(intptr_t)id); /* blocks at the limit */
        if (e) {
            fprintf(stderr, "ctx_errgroup_go: %s\n", ctx_strerror(e));
            break;
        }
    }
    int err = ctx_errgroup_wait(g); /* g is gone now */
    printf("group: %s; group context: %s, cause %s\n", ctx_strerror(err),
           ctx_strerror(ctx_err(gctx)), ctx_strerror(ctx_cause(gctx)));
    int ok = err == EHOSTUNREACH && ctx_cause(gctx) == EHOSTUNREACH;
    ctx_release(gctx);
    return ok ? 0 : 1;
}
