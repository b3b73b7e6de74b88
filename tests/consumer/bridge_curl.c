/* An outside program built against the installed goctx-curl (pkg-config
 * goctx-curl): a transfer under a context that is already done returns its
 * code without touching the network. Exits 0 when it does. */
#include <errno.h>
#include <stdio.h>

#include <goctx/curl.h>

int main(void) {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return 1;
    CURL *easy = curl_easy_init();
    curl_easy_setopt(easy, CURLOPT_URL, "http://127.0.0.1:9/");
    ctx_t *ctx = ctx_with_timeout(ctx_background(), -1, NULL); /* done: ETIMEDOUT */
    CURLcode rc = ctx ? ctx_curl_perform(ctx, easy) : CURLE_OUT_OF_MEMORY;
    ctx_release(ctx);
    curl_easy_cleanup(easy);
    curl_global_cleanup();
    if (rc != CTX_CURL_TIMEDOUT) {
        fprintf(stderr, "consumer goctx-curl: %s\n", curl_easy_strerror(rc));
        return 1;
    }
    printf("consumer goctx-curl: %s\n", curl_easy_strerror(rc));
    return 0;
}
