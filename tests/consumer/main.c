/* An outside program: built against an installed goctx, with pkg-config or
 * with find_package(goctx). Exits 0 when a 20 ms timeout fires as it should. */
#include <errno.h>
#include <stdio.h>

#include <goctx.h>

int main(void) {
  ctx_cancel_t *cancel;
  ctx_t *ctx = ctx_with_timeout(ctx_background(), 20 * CTX_MILLISECOND, &cancel);
  if (ctx == NULL) {
    perror("ctx_with_timeout");
    return 1;
  }
  int err = ctx_wait(ctx, 10 * CTX_SECOND);
  ctx_cancel(cancel);
  ctx_release(ctx);
  if (err != ETIMEDOUT) {
    fprintf(stderr, "consumer: ctx_wait gave %d (%s), want ETIMEDOUT\n", err, ctx_strerror(err));
    return 1;
  }
  printf("consumer: %s\n", ctx_strerror(err));
  return 0;
}
