/* goctx/curl.h: libcurl transfers bounded by goctx contexts
 * (libgoctx-curl, pkg-config goctx-curl).
 *
 * Two ways in, as libcurl has two interfaces:
 *
 *  - ctx_curl_perform(ctx, easy): curl_easy_perform that stops when ctx is
 *    done. The context's deadline also becomes the transfer's timeout
 *    (CURLOPT_TIMEOUT_MS), so libcurl itself gives up at the same moment.
 *
 *        ctx_t *ctx = ctx_with_timeout(parent, 2 * CTX_SECOND, &cancel);
 *        CURLcode rc = ctx_curl_perform(ctx, easy);
 *        if (rc == CTX_CURL_TIMEDOUT || rc == CTX_CURL_CANCELLED)
 *            ... ctx_err(ctx) says which (0: libcurl's own timeout) ...
 *
 *  - for a program with its own multi loop: ctx_curl_multi_add(cm, easy,
 *    ctx) adds the easy handle to the CURLM and hooks ctx to it; once ctx is
 *    done, a curl_multi_poll under way (or the next one) returns, through
 *    curl_multi_wakeup, and ctx_curl_multi_next_done hands out the hook, for
 *    ctx_curl_multi_remove.
 *
 *        for (;;) {
 *            curl_multi_perform(multi, &running);
 *            while ((msg = curl_multi_info_read(multi, &left)))   ... finished: remove ...
 *            while ((h = ctx_curl_multi_next_done(cm)))           ... ended: remove ...
 *            curl_multi_poll(multi, NULL, 0, 1000, NULL);
 *        }
 *
 * Codes. A transfer stopped because its context is done returns (or its
 * hook reports) CTX_CURL_TIMEDOUT (CURLE_OPERATION_TIMEDOUT) when the
 * deadline passed and CTX_CURL_CANCELLED (CURLE_ABORTED_BY_CALLBACK, the
 * code libcurl gives when the application aborts a transfer) when it was
 * cancelled; ctx_err(ctx) is then ETIMEDOUT or ECANCELED. When libcurl's
 * own copy of the deadline fires first (CURLOPT_TIMEOUT_MS, the same instant
 * within a millisecond), ctx_curl_perform waits the moment it takes for the
 * context to be done, so that ctx_err agrees. A transfer that finishes before
 * the context is done returns its own code, whatever happens to the context
 * afterwards. CURLE_OPERATION_TIMEDOUT with ctx_err 0 is a timeout of the
 * caller's own (a CURLOPT_TIMEOUT shorter than the context's).
 *
 * Threads. ctx_curl_perform blocks the calling thread, as curl_easy_perform
 * does, and may be called from any thread; the context may be cancelled from
 * any thread (or its deadline fire on goctx's timer thread): that thread
 * only calls curl_multi_wakeup, which libcurl allows from any thread. The
 * ctx_curl_multi_* functions follow libcurl's rule for a multi handle: one
 * thread at a time, the one running the loop; only the wake-up comes from
 * elsewhere. Call curl_global_init before any of this, as for libcurl.
 *
 * Options. When the context has a deadline, ctx_curl_perform and
 * ctx_curl_multi_add set CURLOPT_TIMEOUT_MS on the easy handle to the time
 * left (at least 1 ms); it stays set afterwards, as any option does. Without
 * a deadline they leave it alone. Nothing else on the handle is touched
 * (CURLOPT_PRIVATE and the progress callbacks stay the caller's).
 * ctx_curl_perform drives the transfer on a multi handle of its own, made and
 * cleaned up in the call (libcurl's curl_easy_perform does the same inside),
 * so connections are not kept from one call to the next; use a multi loop to
 * reuse them.
 */
#ifndef GOCTX_CURL_H
#define GOCTX_CURL_H

#include <curl/curl.h>

#include <goctx.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CTX_CURL_TIMEDOUT CURLE_OPERATION_TIMEDOUT   /* the context's deadline passed */
#define CTX_CURL_CANCELLED CURLE_ABORTED_BY_CALLBACK /* the context was cancelled */

/* CURLE_OK for 0, CTX_CURL_TIMEDOUT for ETIMEDOUT, CTX_CURL_CANCELLED for
 * ECANCELED (and any other error). */
CURLcode ctx_curl_code(int err);

/* Perform the transfer set up on easy, as curl_easy_perform, until it
 * finishes or ctx is done (see "Codes" above). A context done on entry
 * returns its code without starting the transfer. Also
 * CURLE_OUT_OF_MEMORY, and CURLE_BAD_FUNCTION_ARGUMENT for a NULL argument
 * or an easy handle already in a multi handle. */
CURLcode ctx_curl_perform(ctx_t *ctx, CURL *easy);

typedef struct ctx_curl_multi ctx_curl_multi_t; /* goctx's side of one CURLM */
typedef struct ctx_curl_hook ctx_curl_hook_t;   /* one easy handle with its context */

/* goctx's state for multi (which the caller keeps owning). NULL with errno
 * EINVAL or ENOMEM. */
ctx_curl_multi_t *ctx_curl_multi_new(CURLM *multi);
/* Free it; 0, or EBUSY (nothing freed) while hooks are still added. */
int ctx_curl_multi_free(ctx_curl_multi_t *cm);

/* curl_multi_add_handle(multi, easy) with ctx hooked to it: once ctx is done
 * the multi handle is woken (curl_multi_wakeup) and the hook is queued for
 * ctx_curl_multi_next_done. Holds a reference to ctx until removed. A context
 * done already is queued at once. NULL with errno EINVAL (NULL argument, or
 * curl_multi_add_handle refused the handle) or ENOMEM; easy is then not added. */
ctx_curl_hook_t *ctx_curl_multi_add(ctx_curl_multi_t *cm, CURL *easy, ctx_t *ctx);

/* A hook whose context is done and which has not been removed, oldest first;
 * NULL if none. It stays in the multi handle until ctx_curl_multi_remove. */
ctx_curl_hook_t *ctx_curl_multi_next_done(ctx_curl_multi_t *cm);

/* curl_multi_remove_handle for the hook's easy handle, and free the hook
 * (its context is let go; it is never handed out again). For transfers that
 * finished (CURLMSG_DONE) and for those whose context ended alike. Returns
 * curl_multi_remove_handle's code. */
CURLMcode ctx_curl_multi_remove(ctx_curl_hook_t *hook);

CURL *ctx_curl_hook_easy(const ctx_curl_hook_t *hook);
ctx_t *ctx_curl_hook_ctx(const ctx_curl_hook_t *hook); /* borrowed */
/* ctx_curl_code(ctx_err(hook's context)): CURLE_OK while it is live. */
CURLcode ctx_curl_hook_code(const ctx_curl_hook_t *hook);

#ifdef __cplusplus
}
#endif

#endif /* GOCTX_CURL_H */
