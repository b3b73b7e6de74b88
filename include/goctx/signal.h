/* goctx/signal.h: Go's signal.NotifyContext for C.
 *
 * ctx_with_signals(parent, sigs, n, &stop) returns a child of parent that
 * is done (err ECANCELED, cause CTX_CAUSE_SIGNAL(sig)) when one of the n
 * signals arrives. ctx_strerror of that cause gives Go's words
 * ("interrupt signal received", "terminated signal received").
 *
 * Usage rules:
 *
 *  - From ctx_with_signals until the context is stopped (ctx_cancel or
 *    ctx_cancel_cause on *stop) or freed, its signals are caught and do not
 *    run their previous disposition; being done (by a signal, or through
 *    its parent) does not end that. One arrival cancels every signal
 *    context watching that signal at the time it is handled.
 *  - ctx_cancel(stop) cancels the context (cause: ECANCELED, or the cause
 *    given to ctx_cancel_cause) and stops catching for it. When the last
 *    context watching a signal is stopped or freed, that signal's previous
 *    sigaction (handler, flags and mask) is restored exactly: a second
 *    Ctrl-C after stop ends the process as it would have before. Call stop
 *    as soon as the program has seen the signal, as Go's programs do with
 *    `defer stop()`. *stop is one cancel handle (goctx.h's rules: use it
 *    exactly once); pass NULL to stop catching only when the context is
 *    freed.
 *  - How it works: one handler per caught signal, installed with
 *    SA_RESTART and an empty mask, that only records the arrival in an
 *    atomic word and wakes the library's one thread (the timer thread); the
 *    cancellation runs in that thread, not in the handler, so after-funcs
 *    of a signal context run there too. No thread per signal context.
 *  - Threads that block a signal: the kernel delivers a process-directed
 *    signal to any thread that does not block it; the library's own thread
 *    blocks every signal. A program that blocks a signal in every thread
 *    (to sigwait for it, say) never runs the handler: it must leave the
 *    signal unblocked in at least one thread for the signal context to see
 *    it. A signal sent to one thread (pthread_kill, raise) that blocks it
 *    stays pending for that thread until it unblocks it.
 *  - Beside a program's own handlers: while a signal context watches a
 *    signal, ctx_with_signals' handler is the installed one; a program that
 *    calls sigaction for that signal meanwhile replaces it (the context then
 *    sees nothing) and its handler is overwritten by the restore when the
 *    last context stops. Install your own handlers before making signal
 *    contexts, or after stopping them. The previous disposition saved is the
 *    one in place when the first context for that signal was made.
 *  - fork(): the child inherits the handlers and the signal contexts (the
 *    library's thread is restarted in the child); signals sent to the child
 *    cancel the child's copies. After exec the handlers are gone, as always
 *    (SIG_IGN stays ignored, caught signals become SIG_DFL).
 *  - The handler is async-signal-safe on Linux (atomic stores and a futex
 *    wake). It saves and restores errno.
 *
 * Errors: NULL with errno EINVAL (NULL parent or sigs, n == 0, SIGKILL,
 * SIGSTOP, a number that is not a signal or one the C library reserves),
 * ENOMEM, or EAGAIN (the library's thread could not be started). A failed
 * call changes no disposition. ctx_format: <parent>.WithSignals([SIGINT
 * SIGTERM]). Nothing here blocks.
 */
#ifndef GOCTX_SIGNAL_H
#define GOCTX_SIGNAL_H

#include <stddef.h>

#include "goctx.h"

#ifdef __cplusplus
extern "C" {
#endif

ctx_t *ctx_with_signals(ctx_t *parent, const int *sigs, size_t n, ctx_cancel_t **stop);

/* The cause of a signal context cancelled by signal sig. */
#define CTX_CAUSE_SIGNAL(sig) (0x40000000 | (sig))
/* The signal number in such a cause, else 0. */
int ctx_cause_signal(int cause);

#ifdef __cplusplus
}
#endif

#endif /* GOCTX_SIGNAL_H */
