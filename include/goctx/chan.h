/* goctx/chan.h: Go's channels, select and `go` statement for C threads.
 *
 * A chan_t carries fixed-size elements (elem_size bytes, copied in and out)
 * between OS threads with Go's semantics:
 *
 *  - chan_make(size, 0) makes an unbuffered channel: a send and a receive
 *    meet (rendezvous), the value is copied straight from the sender's
 *    buffer into the receiver's. chan_make(size, n) buffers up to n values,
 *    first in, first out.
 *  - chan_close() ends the stream: blocked receivers and every later receive
 *    get what is still buffered, then a zeroed element with ok == false.
 *    Closing wakes every blocked receiver and sender at once.
 *  - Go panics become errors: sending on a closed channel returns EPIPE
 *    (and a sender blocked when the channel is closed is woken with EPIPE);
 *    closing a closed channel returns EPIPE. A NULL channel is Go's nil
 *    channel where that makes sense (a select case that never fires); the
 *    plain calls reject it with EINVAL instead of blocking for ever.
 *  - chan_select() waits on any mix of send, receive and context-done cases,
 *    with an optional timeout (0: Go's `default`). When several cases are
 *    ready it picks one uniformly at random, as Go does.
 *  - Every blocking call sleeps on a futex and is woken by the party that
 *    completes it (a peer, chan_close, a context's cancellation or the
 *    timeout): no polling.
 *  - On a buffered channel, a send or receive that needs no blocked peer
 *    (room in the buffer, a value in it, or closed) takes no lock: the
 *    buffer is a lock-free ring. Before it blocks, a send or receive watches
 *    the ring for a few microseconds (not on a single CPU).
 *
 * Ownership: chan_make returns one reference; chan_retain takes another one,
 * chan_release gives one back (the last frees the channel, elements still
 * buffered are dropped: they are plain bytes). A caller must hold a
 * reference for the whole of any call it makes on the channel. Freeing a
 * channel that a thread is still blocked on is undefined.
 *
 * Errors are 0 or a positive errno value, as in goctx.h. Memory comes from
 * the allocator set with ctx_set_allocator(). Every function is safe from
 * any thread. *
 * The prefix: chan_ stays. Other C channel libraries use it too (the
 * tylertreat/chan library has chan_send, chan_recv, chan_close and
 * chan_select with other signatures), so one program cannot link goctx and
 * such a library together; symbol versions (chan_send@GOCTX_0 in
 * libgoctx.so) do not separate them, since a process has one definition of
 * each name. We keep the names because they are a published contract that
 * programs outside the project are written against, because they follow the
 * one-prefix-per-module rule of the whole API (ctx_, chan_), and because the
 * libraries they collide with are small source libraries that a program
 * copies in, not system libraries that two of its dependencies could each
 * pull in unseen. Should the clash come to matter, the way out adds without
 * breaking: a second set of names (goctx_chan_send, ...) exported beside
 * these in a new version node, a macro that hides these declarations for a
 * program that wants only the long ones, and the short ones removed only
 * with a soname change.
 */
#ifndef GOCTX_CHAN_H
#define GOCTX_CHAN_H

#include <stdbool.h>
#include <stddef.h>

#include <goctx.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct chan chan_t;

/* ---- Channels. -------------------------------------------------------- */

/* A channel of elements of elem_size bytes (0 is allowed: Go's
 * chan struct{}), buffering `capacity` of them (0: unbuffered). NULL with
 * errno ENOMEM when memory runs out, EINVAL when elem_size * capacity
 * overflows. Never blocks. */
chan_t *chan_make(size_t elem_size, size_t capacity);

/* Take another reference; returns c (NULL stays NULL). */
chan_t *chan_retain(chan_t *c);
/* Give a reference back; the last one frees the channel. NULL: no-op. */
void chan_release(chan_t *c);

/* Send elem_size bytes from *elem; blocks until a receiver takes them or
 * there is room in the buffer. 0, EPIPE if the channel is or gets closed
 * (the value is not sent), EINVAL for a NULL channel (or a NULL elem with a
 * non-zero elem_size). */
int chan_send(chan_t *c, const void *elem);

/* Receive into *elem (NULL: discard); blocks until a value is there or the
 * channel is closed and drained. *ok (may be NULL) is true for a value that
 * was sent, false once the channel is closed and drained; *elem is zeroed
 * then. Returns 0, or EINVAL for a NULL channel. */
int chan_recv(chan_t *c, void *elem, bool *ok);

/* As chan_send / chan_recv, but give up when ctx is done first: then they
 * return ctx_err(ctx) (ECANCELED or ETIMEDOUT) and nothing was sent or
 * received. A ctx already done on entry wins even if the channel is ready
 * (Go's select would pick at random). A NULL channel waits for ctx.
 * Waiting allocates nothing (the context is hooked in the call's own
 * storage), so these never fail for want of memory. */
int chan_send_ctx(ctx_t *ctx, chan_t *c, const void *elem);
int chan_recv_ctx(ctx_t *ctx, chan_t *c, void *elem, bool *ok);

/* Non-blocking forms (Go's select with a default): EAGAIN when the
 * operation would block, otherwise as chan_send / chan_recv. */
int chan_try_send(chan_t *c, const void *elem);
int chan_try_recv(chan_t *c, void *elem, bool *ok);

/* Close: 0, or EPIPE if it was already closed (Go: panic), EINVAL for NULL.
 * Wakes every blocked receiver (they drain the buffer, then get ok ==
 * false) and every blocked sender (EPIPE). */
int chan_close(chan_t *c);

/* Elements buffered now, and the capacity (0 for NULL, as Go's len/cap of a
 * nil channel). chan_len is a snapshot. Never block for long. */
size_t chan_len(chan_t *c);
size_t chan_cap(chan_t *c);
/* Element size given to chan_make (0 for NULL). */
size_t chan_elem_size(chan_t *c);

/* ---- Select. ---------------------------------------------------------- */

enum chan_op {
	CHAN_SEND = 1, /* send *elem on chan */
	CHAN_RECV = 2, /* receive from chan into *elem (NULL: discard); sets ok */
	CHAN_DONE = 3, /* ctx is done (Go: case <-ctx.Done()) */
};

/* One case of a select. Fill op and chan (or ctx) and elem; `ok` is an
 * output of a receive case. A NULL chan or ctx is a case that never fires
 * (Go's nil channel). The other fields belong to chan_select. */
typedef struct chan_case {
	int op;        /* enum chan_op */
	chan_t *chan;  /* SEND, RECV */
	ctx_t *ctx;    /* DONE */
	void *elem;    /* SEND: the value (only read); RECV: destination or NULL */
	bool ok;       /* RECV, output: as chan_recv's ok */
} chan_case_t;

#define CHAN_CASE_SEND(c, p) ((chan_case_t){.op = CHAN_SEND, .chan = (c), .elem = (void *)(p)})
#define CHAN_CASE_RECV(c, p) ((chan_case_t){.op = CHAN_RECV, .chan = (c), .elem = (p)})
#define CHAN_CASE_DONE(x) ((chan_case_t){.op = CHAN_DONE, .ctx = (x)})

/* *fired when no case fired. */
#define CHAN_NONE ((size_t)-1)

/* Wait until one of the n cases can proceed, do it, and set *fired (may be
 * NULL) to its index. When several are ready at once, one is picked
 * uniformly at random. timeout: CTX_FOREVER waits without limit, 0 does not
 * wait at all (Go's `default`; so does any other negative value), d > 0
 * waits at most d ns (real CLOCK_MONOTONIC time). The cases' elem buffers
 * must stay valid until the call returns. Returns:
 *   0          case *fired happened (a receive: see cases[*fired].ok; a
 *              DONE case: its ctx is done, ask ctx_err for why)
 *   EPIPE      case *fired is a send on a closed channel (Go: panic);
 *              nothing was sent
 *   EAGAIN     timeout 0 and nothing was ready; *fired = CHAN_NONE
 *   ETIMEDOUT  the timeout passed first; *fired = CHAN_NONE
 *   EDEADLK    timeout CTX_FOREVER and no case has a channel or context:
 *              Go's `select {}` would block for ever
 *   EINVAL     cases NULL with n > 0, an unknown op, or a SEND with a NULL
 *              elem on a channel whose elem_size is not 0
 *   ENOMEM     more than 8 cases, none ready, and no memory for the
 *              wait's records (nothing happened)
 * Cost: no allocation for up to 8 cases, nor for more when one is ready; a
 * context case hooks its context (ctx_after_func_at, in the select's own
 * storage) only while the select sleeps. */
int chan_select(chan_case_t *cases, size_t n, ctx_duration_t timeout, size_t *fired);

/* ---- go. ---------------------------------------------------------------- */

/* Run fn(arg) on a thread of its own (Go's `go fn(arg)`). 0, or EINVAL
 * (NULL fn), EAGAIN / ENOMEM (no thread could be started; fn never runs).
 *
 * Threads are cached: when fn returns, its thread parks and the next
 * chan_go (from any thread) hands its function to the thread parked last,
 * with no thread start, no allocation and, when the parked thread is still
 * in its short spin (a few tens of microseconds), no system call on either
 * side. Only when no thread is parked does a call pay a pthread_create (tens
 * of microseconds) and one small allocation (freed before fn runs). A
 * thread parked for 2 seconds without work exits. There is no bound on the
 * number of threads: a function that blocks for ever holds only its own
 * thread, and every call that finds no parked thread starts one.
 *
 * What fn sees on a cached thread:
 *  - Thread-local storage (_Thread_local, pthread keys) is the thread's, not
 *    fresh: it may hold what an earlier function run on the same thread left
 *    there. TLS destructors run when the thread exits (after its idle time),
 *    not when fn returns.
 *  - The signal mask, cancel state, scheduling attributes and name are what
 *    the thread had: a new thread inherits the mask of the thread that
 *    called chan_go, a reused one keeps what earlier functions left. A
 *    function that changes them must restore them before it returns.
 *  - The threads are detached; pthread_exit() from fn ends that thread only
 *    (it is not reused). The process does not wait for these threads when
 *    main returns, and an idle thread holds no memory of the allocator set
 *    with ctx_set_allocator.
 *  - fork(): parked threads do not exist in the child (as every thread but
 *    the caller); the child's first chan_go starts a new thread. A function
 *    that forks goes on in the child, and its thread is cached there.
 */
int chan_go(void (*fn)(void *arg), void *arg);

/* The joinable form: start fn(arg) as chan_go does (on a cached thread) and
 * give back a handle that must be passed exactly once to chan_go_join,
 * which waits for fn to return and frees the handle. The join orders
 * everything fn did before what follows it. It waits for fn only, not for
 * a thread exit (the thread goes back to the cache): TLS destructors have
 * not run. chan_go_join from inside fn on its own handle returns EDEADLK
 * (the handle stays valid). A handle started before fork() cannot be joined
 * in the child. */
typedef struct chan_go chan_go_t;
int chan_go_start(chan_go_t **handle, void (*fn)(void *arg), void *arg);
int chan_go_join(chan_go_t *handle);

#ifdef __cplusplus
}
#endif

#endif /* GOCTX_CHAN_H */
