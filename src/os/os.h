/* os.h: the platform layer, the only code in goctx that knows which system
 * it runs on. Everything above it (src/ctx, src/chan, the companions) blocks,
 * wakes, reads the clock, makes descriptors and starts threads through these
 * calls and nothing else.
 *
 * Two implementations of the one interface:
 *   linux.c  futex(2) and eventfd(2): the default on Linux.
 *   posix.c  POSIX.1-2008 and pthreads only: everywhere else, and on Linux
 *            when GOCTX_PORTABLE=1 (CMake: -DGOCTX_PORTABLE=ON).
 * GOCTX_OS_LINUX or GOCTX_OS_POSIX says which one this build uses; each .c
 * file compiles to nothing for the other, so one compiler line over every
 * module builds either.
 *
 * Uses: libc and pthreads. Used by: every other module.
 */
#ifndef GOCTX_OS_H
#define GOCTX_OS_H

#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <pthread.h>
#include <sys/types.h>
#include <time.h>

#include "goctx.h"

#if defined(__linux__) && !(defined(GOCTX_PORTABLE) && GOCTX_PORTABLE)
#define GOCTX_OS_LINUX 1
#else
#define GOCTX_OS_POSIX 1
#endif

/* ---- waiting on a 32-bit word ----
 * ctx__os_wait sleeps while *word == expect, until woken or until the
 * absolute CLOCK_MONOTONIC time `abs` (NULL: no limit). Returns 0 when woken
 * or when the word had already changed, EINTR for a signal or a spurious
 * wake, ETIMEDOUT when abs passed. Callers always re-check their condition
 * in a loop: a return says nothing about the word.
 * ctx__os_wake wakes up to n threads sleeping on word (INT_MAX: all). A wake
 * must follow the store that changed the word; then no sleeper is lost. */
#if GOCTX_OS_LINUX
#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>

/* futex(2)'s operations, kernel ABI (linux/futex.h is a kernel header that
 * musl toolchains do not see). */
#define CTX__FUTEX_WAKE 1
#define CTX__FUTEX_WAIT_BITSET 9
#define CTX__FUTEX_PRIVATE_FLAG 128
#define CTX__FUTEX_BITSET_MATCH_ANY 0xffffffffu

/* The futex call whose timespec is this build's struct timespec: on a
 * 32-bit system with a 64-bit time_t (musl >= 1.2, glibc with
 * _TIME_BITS=64) that is futex_time64; SYS_futex there takes 32-bit times. */
#if defined(SYS_futex_time64) && defined(SYS_futex)
#define CTX__SYS_FUTEX (sizeof(time_t) > sizeof(long) ? SYS_futex_time64 : SYS_futex)
#elif defined(SYS_futex_time64)
#define CTX__SYS_FUTEX SYS_futex_time64
#else
#define CTX__SYS_FUTEX SYS_futex
#endif

static inline int ctx__os_wait(_Atomic uint32_t *word, uint32_t expect,
                               const struct timespec *abs)
{
	long r = syscall(CTX__SYS_FUTEX, (uint32_t *)word,
	                 CTX__FUTEX_WAIT_BITSET | CTX__FUTEX_PRIVATE_FLAG, expect, abs, NULL,
	                 CTX__FUTEX_BITSET_MATCH_ANY);
	if (r == 0 || errno == EAGAIN)
		return 0;
	return errno;
}

static inline void ctx__os_wake(_Atomic uint32_t *word, int n)
{
	syscall(CTX__SYS_FUTEX, (uint32_t *)word, CTX__FUTEX_WAKE | CTX__FUTEX_PRIVATE_FLAG, n,
	        NULL, NULL, 0);
}
#else
/* posix.c: a parking lot (a fixed table of mutex + condition variable
 * buckets keyed by the word's address). Never EINTR: it returns only when
 * woken, when the word had changed, or at abs. */
int ctx__os_wait(_Atomic uint32_t *word, uint32_t expect, const struct timespec *abs);
void ctx__os_wake(_Atomic uint32_t *word, int n);
/* Make the parking lot (once), and with it its fork handlers. */
void ctx__os_lot_init(void);
#endif

/* ---- the clock ---- */

/* CLOCK_MONOTONIC in nanoseconds. */
ctx_time_t ctx__os_now(void);

/* An absolute CLOCK_MONOTONIC time (t >= 0) as a timespec; a t beyond what
 * time_t holds (32-bit time_t) becomes the latest time it holds. */
static inline struct timespec ctx__os_timespec(ctx_time_t t)
{
	const time_t max = (time_t)((sizeof(time_t) == 8) ? INT64_MAX : INT32_MAX);
	struct timespec ts;
	if (t / CTX_SECOND > (ctx_time_t)max) {
		ts.tv_sec = max;
		ts.tv_nsec = 0;
	} else {
		ts.tv_sec = (time_t)(t / CTX_SECOND);
		ts.tv_nsec = (long)(t % CTX_SECOND);
	}
	return ts;
}

/* ---- the done descriptor of one context ----
 * Made on demand, signalled once (readable from then on, whatever the user
 * reads from it), closed with its context. The caller serialises all calls on
 * one descriptor (the context's lock). */
#if GOCTX_OS_LINUX
typedef struct ctx__os_done {
	int fd; /* an eventfd; what ctx_done_fd returns; -1: not made */
} ctx__os_done_t;
#define CTX__OS_DONE_NONE ((ctx__os_done_t){.fd = -1})
#define CTX__OS_DONE_FDS 1 /* descriptors a done descriptor holds before it is signalled */
#else
/* A pipe: signalling closes the write end, so the read end reads EOF (is
 * readable) for ever, whatever the user reads. Two ints: a cancelable node
 * is 8 bytes larger here than on Linux (72 bytes instead of 64 on LP64), and
 * a descriptor costs two fds until it is signalled, one after. */
typedef struct ctx__os_done {
	int fd;  /* the read end; what ctx_done_fd returns; -1: not made */
	int wfd; /* the write end; -1 once signalled */
} ctx__os_done_t;
#define CTX__OS_DONE_NONE ((ctx__os_done_t){.fd = -1, .wfd = -1})
#define CTX__OS_DONE_FDS 2
#endif

static inline bool ctx__os_done_made(const ctx__os_done_t *d) { return d->fd >= 0; }
/* 0 or an errno (EMFILE, ENFILE, ENOMEM); signalled: make it readable already. */
int ctx__os_done_open(ctx__os_done_t *d, bool signalled);
void ctx__os_done_signal(ctx__os_done_t *d);
void ctx__os_done_close(ctx__os_done_t *d);

/* ---- condition variables timed on the monotonic clock ----
 * For the library's own condition variables (the timer thread's): init
 * makes one whose timed waits take CLOCK_MONOTONIC times; timedwait waits
 * until the absolute CLOCK_MONOTONIC time abs (pthread_cond_timedwait's
 * returns). Where there is no pthread_condattr_setclock (macOS) timedwait
 * turns abs into a relative wait. */
int ctx__os_cond_init(pthread_cond_t *cond);
int ctx__os_cond_timedwait(pthread_cond_t *cond, pthread_mutex_t *mu, const struct timespec *abs);

/* ---- CPUs ---- */

/* Online CPUs (at least 1), read once. */
int ctx__os_ncpu(void);

/* One step of a spin: tells the CPU this is a busy wait. */
static inline void ctx__os_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

/* ---- threads and fork ---- */

/* Start a detached thread of the library's own (the timer thread) with every
 * signal blocked: it runs nothing of the user's but after-funcs, which must
 * not expect signals. 0 or pthread_create's error. */
int ctx__os_thread_start(void *(*fn)(void *), void *arg);

/* pthread_atfork: the handlers run in the order POSIX gives. 0 or an errno.
 * POSIX backend: the parking lot registers its own first (its locks are the
 * innermost), whoever asks first. */
int ctx__os_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void));


/* ---- src/io's platform part (io.c): a thread's wake descriptor, poll with a
 * ns timeout, per-call non-blocking read and write ----
 * Used by src/io: a thread that waits for a descriptor and a context at once
 * polls the descriptor together with its own wake descriptor, which an
 * after-func on the context makes readable. One per thread, reused by every
 * wait of that thread. Linux: one eventfd (rfd == wfd); elsewhere a pipe.
 * Both ends are non-blocking and close-on-exec. */
typedef struct ctx__os_wakefd {
	int rfd; /* poll this for POLLIN; -1: not made */
	int wfd; /* ctx__os_wakefd_signal writes here */
} ctx__os_wakefd_t;

/* 0 or an errno (EMFILE, ENFILE, ENOMEM). */
int ctx__os_wakefd_open(ctx__os_wakefd_t *w);
/* Make rfd readable; async-signal-safe, callable from any thread. */
void ctx__os_wakefd_signal(const ctx__os_wakefd_t *w);
/* Make rfd unreadable again (consume every signal so far). */
void ctx__os_wakefd_drain(const ctx__os_wakefd_t *w);
void ctx__os_wakefd_close(ctx__os_wakefd_t *w);

/* struct pollfd and nfds_t come from <poll.h>. poll(2) with a timeout in ns
 * (negative: none), rounded up to what the platform can express (ppoll's
 * ns on Linux, poll's ms elsewhere) so that it never returns early. The
 * result and errno are poll's (EINTR included: the caller retries). */
struct pollfd;
int ctx__os_poll(struct pollfd *fds, unsigned long n, ctx_duration_t timeout);

/* read(2)/write(2) at the current position that never wait, whatever the
 * descriptor's O_NONBLOCK flag: -1 with EAGAIN where they would (Linux:
 * preadv2/pwritev2 with RWF_NOWAIT). -1 with EOPNOTSUPP (or ENOSYS, or
 * EINVAL from an older kernel) where the descriptor or the platform has no
 * such form. A write to a socket this way can raise SIGPIPE: use send. */
ssize_t ctx__os_read_nowait(int fd, void *buf, size_t len);
ssize_t ctx__os_write_nowait(int fd, const void *buf, size_t len);

#endif
