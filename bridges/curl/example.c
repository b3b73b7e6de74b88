/* example.c (curl_example): a libcurl download bounded by a context
 * (goctx/curl.h).
 *
 *   curl_example          download twice from a slow server of its own on
 *                         127.0.0.1 (20 KB at 2 KB per 100 ms): once with a
 *                         3 s timeout (it finishes), once with 300 ms (cut)
 *   curl_example URL [S]  download URL with a timeout of S seconds (10)
 *
 * Ctrl-C cancels the download (goctx/signal.h's ctx_with_signals: the
 * context's cause then says "interrupt signal received", and the program
 * exits 130); a build without signal contexts has only the timeout. ctx_err
 * tells the timeout from the cancel.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <goctx/curl.h>
#if defined(__has_include)
#if __has_include(<goctx/signal.h>)
#include <goctx/signal.h>
#define HAVE_SIGNAL_CTX 1
#endif
#endif

/* ---- the slow server: answers `conns` requests, one at a time ---- */

static int listen_fd;

static void *serve(void *arg) {
    int conns = *(int *)arg;
    for (int i = 0; i < conns; i++) {
        int fd = accept(listen_fd, NULL, NULL);
        if (fd < 0)
            break;
        char req[1024];
        if (recv(fd, req, sizeof req, 0) <= 0) { /* one segment is enough here */
            close(fd);
            continue;
        }
        const char *h = "HTTP/1.1 200 OK\r\nContent-Length: 20480\r\nConnection: close\r\n\r\n";
        bool ok = send(fd, h, strlen(h), MSG_NOSIGNAL) > 0;
        static char chunk[2048];
        memset(chunk, 'x', sizeof chunk);
        for (int k = 0; ok && k < 10; k++) {
            ok = send(fd, chunk, sizeof chunk, MSG_NOSIGNAL) == (ssize_t)sizeof chunk;
            usleep(100 * 1000);
        }
        close(fd);
    }
    return NULL;
}

/* ---- the download ---- */

static bool interrupted; /* a download was ended by Ctrl-C */

static size_t count(char *p, size_t size, size_t n, void *arg) {
    (void)p;
    *(size_t *)arg += size * n;
    return size * n;
}

/* Download url within timeout (and Ctrl-C); returns the CURLcode. */
static CURLcode download(const char *url, ctx_duration_t timeout) {
    ctx_t *parent = ctx_background();
    ctx_cancel_t *stop = NULL;
#ifdef HAVE_SIGNAL_CTX
    const int sigs[] = {SIGINT};
    ctx_t *sig = ctx_with_signals(parent, sigs, 1, &stop);
    if (sig)
        parent = sig;
#endif
    ctx_cancel_t *cancel;
    ctx_t *ctx = ctx_with_timeout(parent, timeout, &cancel);
    if (!ctx)
        return CURLE_OUT_OF_MEMORY;
    CURL *easy = curl_easy_init();
    size_t bytes = 0;
    curl_easy_setopt(easy, CURLOPT_URL, url);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, count);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, &bytes);
    ctx_time_t t0 = ctx_now();
    CURLcode rc = ctx_curl_perform(ctx, easy);
    double ms = (double)(ctx_now() - t0) / 1e6;
    if (rc == CURLE_OK)
        printf("%s: %zu bytes in %.0f ms\n", url, bytes, ms);
    else
        printf("%s: %s after %zu bytes, %.0f ms (ctx_err: %s; cause: %s)\n", url,
               curl_easy_strerror(rc), bytes, ms, ctx_strerror(ctx_err(ctx)),
               ctx_strerror(ctx_cause(ctx)));
#ifdef HAVE_SIGNAL_CTX
    interrupted = interrupted || ctx_cause_signal(ctx_cause(ctx)) == SIGINT;
#endif
    curl_easy_cleanup(easy);
    ctx_cancel(cancel);
    ctx_release(ctx);
    if (stop) {
        ctx_cancel(stop);
        ctx_release(parent);
    }
    return rc;
}

int main(int argc, char **argv) {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return 1;
#ifndef HAVE_SIGNAL_CTX
    printf("(no goctx/signal.h in this build: Ctrl-C is not wired to the context)\n");
#endif
    int rc = 1;
    if (argc > 1) {
        double s = argc > 2 ? atof(argv[2]) : 10;
        rc = download(argv[1], (ctx_duration_t)(s * CTX_SECOND)) == CURLE_OK ? 0 : 1;
    } else {
        listen_fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&a, sizeof a) != 0 ||
            getsockname(listen_fd, (struct sockaddr *)&a, &len) != 0 || listen(listen_fd, 4) != 0)
            return 1;
        int conns = 2;
        pthread_t t;
        if (pthread_create(&t, NULL, serve, &conns) != 0)
            return 1;
        char url[64];
        snprintf(url, sizeof url, "http://127.0.0.1:%d/", ntohs(a.sin_port));
        CURLcode first = download(url, 3 * CTX_SECOND);
        CURLcode second = interrupted ? CTX_CURL_CANCELLED : download(url, 300 * CTX_MILLISECOND);
        if (interrupted)
            shutdown(listen_fd, SHUT_RDWR); /* the server's accept gives up */
        pthread_join(t, NULL);
        close(listen_fd);
        rc = interrupted ? 130 : first == CURLE_OK && second == CTX_CURL_TIMEDOUT ? 0 : 1;
    }
    curl_global_cleanup();
    return rc;
}
