/* goctx.h: Go's context package for C (cancellation trees, deadlines,
 * request-scoped values, and ways to wait for "done").
 *
 * Usage rules (as Go's package comment gives them):
 *
 *  - Pass a context explicitly, as the first argument of every function on a
 *    request's call path (`ctx_t *ctx`). Do not store it in a struct that
 *    outlives the request; do not pass NULL: pass ctx_todo() when unsure.
 *  - Every ctx_t * a constructor returns is one reference: give it back with
 *    ctx_release() exactly once. ctx_retain() takes another one, for a thread
 *    that outlives the caller's scope. A child holds a reference to its
 *    parent; a parent does not keep its children alive.
 *  - Every ctx_cancel_t * handed out must be used exactly once, with
 *    ctx_cancel() or ctx_cancel_cause(): that call also frees the handle (it
 *    is the C form of Go's `defer cancel()`). ctx_cancel_dup() gives a second
 *    party its own handle. Pass NULL for the handle to say "I will never
 *    cancel this one".
 *  - When the last reference and the last cancel handle of a context are
 *    gone, it leaves its parent and the timer queue and is freed, cancelled
 *    or not: forgetting to cancel leaks nothing once references are released.
 *  - Use values only for request-scoped data that crosses API boundaries,
 *    not for optional parameters. Keys are compared by address: use the
 *    address of a static object you own.
 *  - Errors are 0 or a positive errno value: ECANCELED is Go's
 *    context.Canceled, ETIMEDOUT is context.DeadlineExceeded. Constructors
 *    return NULL and set errno (EINVAL for a NULL parent or key, ENOMEM);
 *    a failed call leaves nothing behind and calls no callback.
 *  - Every function is safe from any thread on live objects. Only ctx_wait,
 *    ctx_sleep and ctx_after_stop (while the callback runs elsewhere) block.
 *    Besides those, a call may wait only for another thread's goctx call
 *    that is already under way on the same context, as Go's do on its
 *    mutex: ctx_cancel for a concurrent cancellation of the same subtree to
 *    finish, and ctx_err for a concurrent cancel to finish making the done
 *    descriptor readable (a few microseconds).
 *  - The library starts at most one thread of its own, for timers, lazily,
 *    on the first context with a deadline or signal context (goctx/signal.h
 *    runs its cancellations there too); threads that chan_go and the
 *    companions start run user functions. After fork(), the child may keep
 *    using goctx (pending deadlines keep firing there; the timer thread is
 *    restarted),
 *    provided no other thread of the parent was inside a goctx call on the
 *    same contexts at the moment of the fork. The parent is unaffected. A
 *    done descriptor made before the fork is one eventfd shared by both
 *    processes: in the child, use contexts made after the fork for polling.
 */
#ifndef GOCTX_H
#define GOCTX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GOCTX_VERSION_MAJOR 0
#define GOCTX_VERSION_MINOR 1
#define GOCTX_VERSION_PATCH 0

typedef struct ctx ctx_t;               /* a context: the read side */
typedef struct ctx_cancel ctx_cancel_t; /* the right to cancel one context */
typedef struct ctx_after ctx_after_t;   /* a registered after-func */
typedef int64_t ctx_time_t;             /* ns on CLOCK_MONOTONIC */
typedef int64_t ctx_duration_t;         /* ns */

#define CTX_NANOSECOND ((ctx_duration_t)1)
#define CTX_MICROSECOND (1000 * CTX_NANOSECOND)
#define CTX_MILLISECOND (1000 * CTX_MICROSECOND)
#define CTX_SECOND (1000 * CTX_MILLISECOND)
#define CTX_FOREVER ((ctx_duration_t)-1) /* for waits only */

/* The current time on CLOCK_MONOTONIC, in ns. Never blocks. */
ctx_time_t ctx_now(void);

/* Go's words for ECANCELED ("context canceled") and ETIMEDOUT ("context
 * deadline exceeded"); strerror's text for anything else. Never free it;
 * for a number libc does not know ("Unknown error 1000") it lives in a
 * buffer of the calling thread, until that thread's next call. */
const char *ctx_strerror(int err);

/* ---- Constructors. None blocks. ---------------------------------------- */
/* On failure a constructor returns NULL, sets errno and sets *cancel (when
 * cancel is not NULL) to NULL. */

/* The roots: never done, no deadline, no values. Static: retain and release
 * on them do nothing. */
ctx_t *ctx_background(void);
ctx_t *ctx_todo(void);

/* A child done when its parent is, or when *cancel is used. Go: WithCancel,
 * and WithCancelCause through ctx_cancel_cause(). */
ctx_t *ctx_with_cancel(ctx_t *parent, ctx_cancel_t **cancel);

/* A child that is also done, with ETIMEDOUT, at `deadline` (CLOCK_MONOTONIC
 * ns). A parent deadline strictly earlier makes this a plain WithCancel. A
 * deadline at or before ctx_now() gives a context done at once. Fails with
 * EAGAIN if the timer thread cannot be started (nothing is left behind). */
ctx_t *ctx_with_deadline(ctx_t *parent, ctx_time_t deadline, ctx_cancel_t **cancel);

/* ctx_with_deadline(parent, ctx_now() + timeout), saturating on overflow; a
 * negative timeout is a past deadline. */
ctx_t *ctx_with_timeout(ctx_t *parent, ctx_duration_t timeout, ctx_cancel_t **cancel);

/* As above; when the deadline fires, ctx_cause() is `cause` (0: ETIMEDOUT). */
ctx_t *ctx_with_deadline_cause(ctx_t *parent, ctx_time_t deadline, int cause,
                               ctx_cancel_t **cancel);
ctx_t *ctx_with_timeout_cause(ctx_t *parent, ctx_duration_t timeout, int cause,
                              ctx_cancel_t **cancel);

/* A child carrying key -> val. Keys compare by address. free_val, if not
 * NULL, is called once with val when this context is freed, in the thread
 * that drops the last reference (it may release contexts, but must not
 * cancel any); if this call fails it is not called and the caller still owns
 * val. */
ctx_t *ctx_with_value(ctx_t *parent, const void *key, void *val, void (*free_val)(void *));

/* A child with the parent's values, no deadline, never done, and not a child
 * for cancellation. */
ctx_t *ctx_without_cancel(ctx_t *parent);

/* A child of parent that is also done as soon as any of others[0..n) is:
 * each other acts as one more parent for cancellation, not for values
 * (values come from parent only). When one of them is done first, the
 * merged context gets its err and cause and is done (its after-funcs run)
 * before that context's ctx_cancel returns; if some are already done at
 * the call, it is born done with the err and cause of the first done one
 * in the order parent, others[0], others[1], ... ctx_deadline is the
 * earliest of the deadlines of parent and others. The caller need not keep
 * others alive after the call: the merged context holds each one until
 * that one or the merged context is done, or it is freed, and holds none
 * once it is done. No thread, no polling: one allocation (the node and one
 * entry per other, linked in that other's child list). n == 0 is
 * ctx_with_cancel. EINVAL: NULL parent, NULL others with n > 0, or a NULL
 * element. Never blocks. */
ctx_t *ctx_with_merge(ctx_t *parent, ctx_t *const *others, size_t n, ctx_cancel_t **cancel);

/* Take another reference; returns ctx. */
ctx_t *ctx_retain(ctx_t *ctx);
/* Give a reference back; NULL is a no-op. May free ctx and its ancestors. */
void ctx_release(ctx_t *ctx);

/* Cancel and free the handle: err = cause = ECANCELED. When it returns, the
 * context and all its descendants are done and every after-func this call
 * triggered has run. The first cancellation of a context wins. */
void ctx_cancel(ctx_cancel_t *cancel);
/* As ctx_cancel, with cause `cause` (0 means ECANCELED). */
void ctx_cancel_cause(ctx_cancel_t *cancel, int cause);
/* A second handle to the same context (NULL + errno EINVAL for NULL). It
 * never allocates: a handle stands for one reference to the context. */
ctx_cancel_t *ctx_cancel_dup(ctx_cancel_t *cancel);

/* ---- Reading. None blocks. ------------------------------------------- */

/* 0 while live; ECANCELED or ETIMEDOUT once done, the same ever after. One
 * atomic load: poll it in tight loops. Once non-zero, waiters have been woken
 * and the done descriptor is readable. */
int ctx_err(const ctx_t *ctx);
/* 0 while live; else the cause of the first cancellation. */
int ctx_cause(const ctx_t *ctx);
/* ctx_err(ctx) != 0. */
bool ctx_done(const ctx_t *ctx);
/* true and *deadline set if the context has a deadline (its own or an
 * inherited earlier one); false otherwise. deadline may be NULL. */
bool ctx_deadline(const ctx_t *ctx, ctx_time_t *deadline);
/* The value for key, innermost first; NULL if none. */
void *ctx_value(const ctx_t *ctx, const void *key);
/* Go's String() form, snprintf-like: writes at most size bytes including the
 * NUL and returns the length of the whole text. */
int ctx_format(const ctx_t *ctx, char *buf, size_t size);

/* ---- The inline fast path of ctx_err and ctx_done (ABI). ---------------
 *
 * In C11 and later (not C++, which uses the functions above), ctx_err(ctx)
 * and ctx_done(ctx) expand to an inline read of the context's state, the
 * same single acquire load the functions make, without the call. What it
 * commits the library to, for every release with this soname (the values
 * are checked against abi/libgoctx.inline by `make test`):
 *  - a context's object starts with the members of struct ctx__abi_head: a
 *    32-bit word, two bytes, then two pointers, the second of which (src)
 *    is fixed for the context's life and is NULL or the address of an
 *    object that starts with struct ctx__abi_cnode;
 *  - that object's 32-bit `state` word holds the error (0, ECANCELED or
 *    ETIMEDOUT) in bits 0-7, written once with a release store, and bit 10
 *    (GOCTX__STATE_SLOW) set while that error is not yet to be reported:
 *    then the inline calls the function.
 * Everything else in a context may change. Taking the address of ctx_err or
 * ctx_done, or writing (ctx_err)(ctx), names the exported functions; define
 * GOCTX_NO_INLINE before including this header to use them everywhere. */
#if !defined(GOCTX_NO_INLINE) && !defined(__cplusplus) && defined(__STDC_VERSION__) && \
    __STDC_VERSION__ >= 201112L && !defined(__STDC_NO_ATOMICS__)
#include <stdatomic.h>

#if defined(__GNUC__) || defined(__clang__)
#define GOCTX__MAY_ALIAS __attribute__((__may_alias__))
#else
#define GOCTX__MAY_ALIAS
#endif

struct GOCTX__MAY_ALIAS ctx__abi_head {
	uint32_t ctx__refs;
	uint8_t ctx__kind, ctx__todo;
	const void *ctx__parent;
	const struct ctx__abi_cnode *ctx__src;
};
struct GOCTX__MAY_ALIAS ctx__abi_cnode {
	struct ctx__abi_head ctx__head;
	const void *ctx__next, *ctx__pprev;
	_Atomic uint32_t ctx__state;
};
#define GOCTX__STATE_ERR 0xffu
#define GOCTX__STATE_SLOW (1u << 10)

static inline int ctx__err_inline(const ctx_t *ctx)
{
	const struct ctx__abi_cnode *s = ((const struct ctx__abi_head *)(const void *)ctx)->ctx__src;
	if (!s)
		return 0;
	uint32_t st = atomic_load_explicit((_Atomic uint32_t *)&s->ctx__state, memory_order_acquire);
	if (st & GOCTX__STATE_SLOW)
		return (ctx_err)(ctx);
	return (int)(st & GOCTX__STATE_ERR);
}
static inline bool ctx__done_inline(const ctx_t *ctx)
{
	const struct ctx__abi_cnode *s = ((const struct ctx__abi_head *)(const void *)ctx)->ctx__src;
	if (!s)
		return false;
	uint32_t st = atomic_load_explicit((_Atomic uint32_t *)&s->ctx__state, memory_order_acquire);
	if (!(st & (GOCTX__STATE_ERR | GOCTX__STATE_SLOW)))
		return false; /* live: one test */
	return !(st & GOCTX__STATE_SLOW) || (ctx_err)(ctx) != 0;
}
#define ctx_err(ctx) ctx__err_inline(ctx)
#define ctx_done(ctx) ctx__done_inline(ctx)
#endif

/* ---- Waiting. ---------------------------------------------------------- */

/* Block until ctx is done (returns ctx_err) or timeout ns pass (returns 0).
 * CTX_FOREVER waits without limit; 0 (or any other negative value) only
 * looks. Signals do not interrupt it. EINVAL for a NULL ctx. */
int ctx_wait(ctx_t *ctx, ctx_duration_t timeout);
/* Sleep d ns; 0 after sleeping the whole time, ctx_err if done first. */
int ctx_sleep(ctx_t *ctx, ctx_duration_t d);
/* A descriptor that is readable exactly when ctx is done (ctx_err != 0)
 * and stays readable
 * (do not read from it, do not close it: the context owns it until freed).
 * Made on first use. -1 with errno ENOENT for a context that can never be
 * done, or EMFILE/ENFILE/ENOMEM if none can be made. */
int ctx_done_fd(ctx_t *ctx);

/* ---- After-funcs (Go's AfterFunc). ------------------------------------- */

/* Call fn(arg) once ctx is done: at once, in this thread, if it already is;
 * otherwise in the thread that cancels (or the timer thread), after every
 * internal lock is released. fn must be short and must not block. Returns 0,
 * EINVAL (NULL ctx or fn) or ENOMEM; on error fn is never called. stop may be
 * NULL when the caller will never stop it. */
int ctx_after_func(ctx_t *ctx, void (*fn)(void *arg), void *arg, ctx_after_t **stop);
/* Free the handle. true: fn will never run (this call stopped it). false: fn
 * has run or is running; outside fn this waits until fn has returned. */
bool ctx_after_stop(ctx_after_t *stop);

/* Storage for one after-func registration, provided by the caller (on its
 * stack, or inside its own object), so that registering allocates nothing.
 * Its size (80 bytes) and alignment are part of the ABI; its contents are
 * the library's. */
typedef struct ctx_after_slot {
	union {
		void *ctx__p;
		uint64_t ctx__u;
		unsigned char ctx__bytes[80];
	} ctx__opaque;
} ctx_after_slot_t;

/* ctx_after_func in caller-provided storage: never allocates. Returns the
 * handle for ctx_after_stop, or NULL with errno EINVAL (NULL ctx, slot or
 * fn; then fn is never called). Rules:
 *  - the slot must not hold another registration still in use; while the
 *    registration is in use the slot must stay valid and untouched;
 *  - unlike ctx_after_func's, the registration does not hold ctx: the
 *    caller keeps a reference to ctx while the registration is in use;
 *  - the registration is in use until a ctx_after_stop on its handle has
 *    returned outside fn: call it (once or more, from any thread, even
 *    concurrently) before the slot is reused or freed, whether or not fn
 *    has run. It returns true when it stopped fn; false when fn has run
 *    (it waits for fn to return and for the library to let go of the slot)
 *    or an earlier call stopped it. A call from inside fn returns false at
 *    once: the slot is still in use until fn has returned and a call
 *    outside fn returns;
 *  - ctx_after_stop does not free the slot: it is the caller's. */
ctx_after_t *ctx_after_func_at(ctx_t *ctx, ctx_after_slot_t *slot, void (*fn)(void *arg),
                               void *arg);

/* ---- Memory. ----------------------------------------------------------- */

/* Route every allocation of the library through alloc/free (both non-NULL).
 * Call before the first context is made; later: EBUSY, nothing changes. */
int ctx_set_allocator(void *(*alloc)(size_t size), void (*free)(void *ptr));

/* ---- Node cache. ------------------------------------------------------- */

/* Each thread keeps the context nodes it frees (at most 64 KiB) for its next
 * constructors, so the allocator sees a node's free only when the cache
 * gives it back: when the thread exits (pthread_exit, return from its start
 * function, or exit() for the thread calling it), or when it calls
 * ctx_flush_cache(), which frees every node the calling thread's cache
 * holds. Call it before checking that allocations and frees balance. Other
 * threads' caches are not touched. */
void ctx_flush_cache(void);

#ifdef __cplusplus
}
#endif

#endif /* GOCTX_H */
