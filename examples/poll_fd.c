/* poll_fd.c: wait for a context in a poll() loop, beside other descriptors.
 *
 * An event loop cannot block in ctx_wait, so it asks for ctx_done_fd and
 * polls it with its other descriptors (epoll works the same way). A peer
 * thread sends three messages through a pipe, then goes quiet; the loop
 * handles them and stops when its 100 ms context times out.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* pipe, poll */
#endif
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

#include <goctx.h>

#define MSG 8 /* fixed-size messages: one read gets one message */

static int pipe_fds[2];

/* The peer borrows main's reference: main joins it before releasing ctx. */
static void *peer(void *arg) {
    ctx_t *ctx = arg;
    static const char msgs[3][MSG] = {"hello", "from", "peer"};
    for (int i = 0; i < 3; i++) {
        ctx_sleep(ctx, 2 * CTX_MILLISECOND);
        if (write(pipe_fds[1], msgs[i], MSG) != MSG)
            return NULL;
    }
    ctx_wait(ctx, CTX_FOREVER); /* a slow peer: silent until the end */
    return NULL;
}

int main(void) {
    ctx_cancel_t *cancel;
    ctx_t *ctx = ctx_with_timeout(ctx_background(), 100 * CTX_MILLISECOND, &cancel);
    /* The descriptor belongs to the context: never read it or close it. */
    int done_fd = ctx ? ctx_done_fd(ctx) : -1;
    pthread_t thread;
    if (done_fd < 0 || pipe(pipe_fds) != 0 || pthread_create(&thread, NULL, peer, ctx) != 0) {
        perror("poll_fd: setup");
        return 1;
    }

    struct pollfd fds[2] = {{.fd = pipe_fds[0], .events = POLLIN},
                            {.fd = done_fd, .events = POLLIN}};
    int received = 0, err = 0;
    while (err == 0) {
        /* No timeout needed: the context supplies it (2 s is a safety net). */
        int n = poll(fds, 2, 2000);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (fds[0].revents & POLLIN) {
            char buf[MSG];
            if (read(pipe_fds[0], buf, MSG) == MSG)
                printf("message %d: %s\n", ++received, buf);
        } else if (fds[1].revents & POLLIN) {
            /* Done: the descriptor is readable exactly when ctx_err is
             * non-zero, so the error is there to read. */
            err = ctx_err(ctx);
        }
    }
    printf("loop stopped: %s after %d messages\n", ctx_strerror(err), received);

    /* A context that can never be done has no descriptor (ENOENT). A
     * negative fd in a poll set is ignored, like Go's nil Done channel. */
    int none = ctx_done_fd(ctx_background());
    int none_errno = errno;

    pthread_join(thread, NULL);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    int bad = err != ETIMEDOUT || received != 3 || none != -1 || none_errno != ENOENT;
    ctx_cancel(cancel);
    ctx_release(ctx); /* also closes done_fd */
    if (bad)
        fprintf(stderr, "poll_fd: unexpected result\n");
    return bad;
}
