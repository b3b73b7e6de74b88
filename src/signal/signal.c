/* signal.c: signal contexts (Go's signal.NotifyContext).
 *
 * Design. A signal context is an EXT node of the core (struct sigctx),
 * a cancelable child of its parent with the list of its signals. The table
 * `tab` (one mutex, never taken in a handler) lists the contexts that
 * watch signals and counts, per signal, how many do; the first one installs
 * on_signal and saves the previous sigaction, the last one restores it.
 *
 * on_signal only counts the arrival (arrivals[sig]) and calls
 * ctx__service_wake(): the core's timer thread then runs service(), which
 * cancels, one at a time and with no lock held, every listed context that
 * watches the signal, was made before the latest arrival (each context
 * notes the counts when it is listed, so an arrival still unhandled when a
 * context is made does not cancel it) and is not done yet (taking a reference under tab.lock first; a context whose
 * count is already zero is being freed and is skipped: its freed hook
 * takes tab.lock before the memory goes).
 *
 * Stopping. The handle the caller gets is not the context's own: it is the
 * handle of a hidden context K (a child of Background, done only through
 * that handle), with an after-func (on_stop) registered on it. Using the
 * handle cancels K, and on_stop, run before ctx_cancel returns, takes the
 * context off the table (restoring dispositions) and cancels it with K's
 * cause. That is how a stop is told apart from a signal or the parent,
 * neither of which ends the catching. The freed hook takes the context off
 * the table too, stops on_stop (waiting if it runs elsewhere) and lets go
 * of K.
 *
 * fire_lock is held by service() while it cancels one context (its
 * after-funcs included). on_stop takes it once, after taking the context
 * off the table, so that ctx_cancel(stop) returns only once a cancellation
 * by a signal that was already under way has finished: a program that
 * stops, releases and exits leaves no work behind in the library's thread.
 * (Not when on_stop runs in that thread itself: an after-func of a signal
 * context that stops another one.) It is never held while waiting for
 * anything but the cancellation it covers, whose after-funcs run with no
 * BUSY bit held, so the wait cannot close a cycle.
 * Uses: src/ctx (EXT nodes, the service hook, cancellation), libc signals.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "goctx/signal.h"
#include "../ctx/internal.h"

_Static_assert(CTX_CAUSE_SIGNAL(0) == CTX__CAUSE_SIGNAL_BIT, "the core words the same bit");
_Static_assert(NSIG <= 0x100, "a cause holds the signal in its low byte");

struct sigctx {
	struct ctx__ext e;
	ctx_t *stopper;             /* K (one reference), or NULL; fixed */
	ctx_after_t *stop_reg;      /* on_stop on K, or NULL; fixed once made */
	struct sigctx *next;        /* in tab.list; guarded by tab.lock */
	struct sigctx **pprev;      /* NULL: not listed; guarded by tab.lock */
	size_t n;                   /* distinct signals; fixed */
	struct {
		int sig;
		uint32_t at;        /* arrivals[sig] when listed; guarded by tab.lock */
	} sigs[];                   /* fixed */
};

static struct {
	pthread_mutex_t lock;
	struct sigctx *list;        /* contexts that watch their signals */
	int watchers[NSIG];         /* listed contexts per signal */
	struct sigaction old[NSIG]; /* saved when watchers went 0 -> 1 */
} tab = {.lock = PTHREAD_MUTEX_INITIALIZER};

static pthread_mutex_t fire_lock = PTHREAD_MUTEX_INITIALIZER;
static _Thread_local bool in_service; /* this thread runs service() */

/* Counted by the handler (lock-free: async-signal-safe). */
static _Atomic uint32_t arrivals[NSIG];
/* The count service() last handled; the timer thread's alone. */
static uint32_t handled[NSIG];

static void on_signal(int sig)
{
	int saved = errno;
	atomic_fetch_add_explicit(&arrivals[sig], 1, memory_order_release);
	ctx__service_wake();
	errno = saved;
}

static bool watches(const struct sigctx *sc, int sig)
{
	for (size_t i = 0; i < sc->n; i++)
		if (sc->sigs[i].sig == sig)
			return true;
	return false;
}

/* sc watches sig and was listed before arrival number `count`. */
static bool hit_by(const struct sigctx *sc, int sig, uint32_t count)
{
	for (size_t i = 0; i < sc->n; i++)
		if (sc->sigs[i].sig == sig)
			return sc->sigs[i].at != count;
	return false;
}

static ctx_t *base_of(struct sigctx *sc) { return &sc->e.c.node.base; }

/* Cancel every listed context watching sig (in the timer thread). */
static void fire(int sig, uint32_t count)
{
	for (;;) {
		struct sigctx *hit = NULL;
		pthread_mutex_lock(&fire_lock);
		pthread_mutex_lock(&tab.lock);
		for (struct sigctx *sc = tab.list; sc; sc = sc->next) {
			if (hit_by(sc, sig, count) && !ctx_done(base_of(sc)) &&
			    ctx__try_retain(base_of(sc))) {
				hit = sc;
				break;
			}
		}
		pthread_mutex_unlock(&tab.lock);
		if (hit) {
			ctx__cancel(&hit->e.c, ECANCELED, CTX_CAUSE_SIGNAL(sig), true);
			ctx_release(base_of(hit));
		}
		pthread_mutex_unlock(&fire_lock);
		if (!hit)
			return;
	}
}

static void service(void)
{
	in_service = true;
	for (int sig = 1; sig < NSIG; sig++) {
		uint32_t count = atomic_load_explicit(&arrivals[sig], memory_order_acquire);
		if (count != handled[sig]) {
			handled[sig] = count;
			fire(sig, count);
		}
	}
	in_service = false;
}

/* Take sc off the table; restore what nobody watches any more. */
static void unlist_locked(struct sigctx *sc)
{
	if (!sc->pprev)
		return;
	*sc->pprev = sc->next;
	if (sc->next)
		sc->next->pprev = sc->pprev;
	sc->pprev = NULL;
	for (size_t i = 0; i < sc->n; i++) {
		int s = sc->sigs[i].sig;
		if (--tab.watchers[s] == 0)
			sigaction(s, &tab.old[s], NULL);
	}
}

/* Put sc on the table, installing the handler where it is the first;
 * 0 or the errno of a failed sigaction (then nothing changed). */
static int list(struct sigctx *sc)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	pthread_mutex_lock(&tab.lock);
	size_t i;
	int e = 0;
	for (i = 0; i < sc->n; i++) {
		int s = sc->sigs[i].sig;
		if (tab.watchers[s] == 0 && sigaction(s, &sa, &tab.old[s]) != 0) {
			e = errno;
			break;
		}
		tab.watchers[s]++;
		sc->sigs[i].at = atomic_load_explicit(&arrivals[s], memory_order_acquire);
	}
	if (e) {
		while (i-- > 0) {
			int s = sc->sigs[i].sig;
			if (--tab.watchers[s] == 0)
				sigaction(s, &tab.old[s], NULL);
		}
	} else {
		sc->next = tab.list;
		if (sc->next)
			sc->next->pprev = &sc->next;
		tab.list = sc;
		sc->pprev = &tab.list;
	}
	pthread_mutex_unlock(&tab.lock);
	return e;
}

/* The after-func on K: the caller used its handle. */
static void on_stop(void *arg)
{
	struct sigctx *sc = arg;
	/* sc's memory is alive: its freed hook waits for this function to
	 * return. A reference taken first keeps the library's thread from
	 * dropping the last one while this waits for fire_lock below (its
	 * freed hook would then wait for this function: a deadlock). */
	bool alive = ctx__try_retain(base_of(sc));
	pthread_mutex_lock(&tab.lock);
	unlist_locked(sc);
	pthread_mutex_unlock(&tab.lock);
	if (!alive)
		return; /* being freed: nobody cancels it any more */
	/* Let a cancellation by a signal already under way finish (see top). */
	if (!in_service) {
		pthread_mutex_lock(&fire_lock);
		pthread_mutex_unlock(&fire_lock);
	}
	ctx__cancel(&sc->e.c, ECANCELED, ctx_cause(sc->stopper), true);
	ctx_release(base_of(sc));
}

static void sig_freed(struct ctx__ext *e)
{
	struct sigctx *sc = (struct sigctx *)e;
	pthread_mutex_lock(&tab.lock);
	unlist_locked(sc);
	pthread_mutex_unlock(&tab.lock);
	if (sc->stop_reg)
		ctx_after_stop(sc->stop_reg);
	ctx_release(sc->stopper);
}

/* A signal's name without "SIG" (static), or NULL: sigabbrev_np on glibc >=
 * 2.32; elsewhere (musl, BSD, macOS have none) the POSIX names. */
static const char *sig_abbrev(int sig)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
	return sigabbrev_np(sig);
#else
	switch (sig) {
	case SIGHUP: return "HUP";
	case SIGINT: return "INT";
	case SIGQUIT: return "QUIT";
	case SIGILL: return "ILL";
	case SIGTRAP: return "TRAP";
	case SIGABRT: return "ABRT";
	case SIGBUS: return "BUS";
	case SIGFPE: return "FPE";
	case SIGKILL: return "KILL";
	case SIGUSR1: return "USR1";
	case SIGSEGV: return "SEGV";
	case SIGUSR2: return "USR2";
	case SIGPIPE: return "PIPE";
	case SIGALRM: return "ALRM";
	case SIGTERM: return "TERM";
	case SIGCHLD: return "CHLD";
	case SIGCONT: return "CONT";
	case SIGSTOP: return "STOP";
	case SIGTSTP: return "TSTP";
	case SIGTTIN: return "TTIN";
	case SIGTTOU: return "TTOU";
	case SIGURG: return "URG";
	case SIGXCPU: return "XCPU";
	case SIGXFSZ: return "XFSZ";
	case SIGVTALRM: return "VTALRM";
	case SIGPROF: return "PROF";
	case SIGSYS: return "SYS";
#ifdef SIGWINCH
	case SIGWINCH: return "WINCH";
#endif
	default: return NULL;
	}
#endif
}

static int sig_format(const struct ctx__ext *e, char *buf, size_t size)
{
	const struct sigctx *sc = (const struct sigctx *)e;
	size_t len = 0;
	int n = snprintf(buf, size, ".WithSignals([");
	len += (size_t)(n > 0 ? n : 0);
	for (size_t i = 0; i < sc->n; i++) {
		const char *abbrev = sig_abbrev(sc->sigs[i].sig);
		char *dst = len < size ? buf + len : NULL;
		size_t room = len < size ? size - len : 0;
		if (abbrev)
			n = snprintf(dst, room, "%sSIG%s", i ? " " : "", abbrev);
		else
			n = snprintf(dst, room, "%sSIG%d", i ? " " : "", sc->sigs[i].sig);
		len += (size_t)(n > 0 ? n : 0);
	}
	n = snprintf(len < size ? buf + len : NULL, len < size ? size - len : 0, "])");
	len += (size_t)(n > 0 ? n : 0);
	return (int)len;
}

static const struct ctx__ext_ops sig_ops = {.format = sig_format, .freed = sig_freed};

static bool catchable(int s)
{
	if (s <= 0 || s >= NSIG || s == SIGKILL || s == SIGSTOP)
		return false;
	struct sigaction cur;
	return sigaction(s, NULL, &cur) == 0; /* glibc refuses its reserved ones */
}

ctx_t *ctx_with_signals(ctx_t *parent, const int *sigs, size_t n, ctx_cancel_t **stop)
{
	if (stop)
		*stop = NULL;
	if (!parent || !sigs || n == 0) {
		errno = EINVAL;
		return NULL;
	}
	size_t distinct = 0;
	for (size_t i = 0; i < n; i++) {
		if (!catchable(sigs[i])) {
			errno = EINVAL;
			return NULL;
		}
		bool seen = false;
		for (size_t j = 0; j < i; j++)
			seen = seen || sigs[j] == sigs[i];
		distinct += !seen;
	}
	int e = ctx__service_start(service);
	if (e) {
		errno = e;
		return NULL;
	}
	struct sigctx *sc = (struct sigctx *)ctx__ext_new(
		parent, sizeof *sc + distinct * sizeof sc->sigs[0], &sig_ops, NULL,
		__builtin_return_address(0));
	if (!sc)
		return NULL;
	sc->stopper = NULL;
	sc->stop_reg = NULL;
	sc->next = NULL;
	sc->pprev = NULL;
	sc->n = 0;
	for (size_t i = 0; i < n; i++)
		if (!watches(sc, sigs[i]))
			sc->sigs[sc->n++].sig = sigs[i];
	ctx_cancel_t *k = NULL;
	if (stop) {
		sc->stopper = ctx_with_cancel(ctx_background(), &k);
		if (!sc->stopper)
			goto fail;
		e = ctx_after_func(sc->stopper, on_stop, sc, &sc->stop_reg);
		if (e) {
			errno = e;
			goto fail;
		}
	}
	e = list(sc);
	if (e) {
		errno = e;
		goto fail;
	}
	if (stop)
		*stop = k;
	return base_of(sc);
fail:
	e = errno;
	if (sc->stop_reg) {
		ctx_after_stop(sc->stop_reg);
		sc->stop_reg = NULL;
	}
	ctx_cancel(k);
	ctx_release(base_of(sc));
	errno = e;
	return NULL;
}

int ctx_cause_signal(int cause)
{
	int s = cause & 0xff;
	if ((cause & ~0xff) == CTX__CAUSE_SIGNAL_BIT && s > 0 && s < NSIG)
		return s;
	return 0;
}
