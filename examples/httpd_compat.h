/* httpd_compat.h: stand-ins for ctx_with_signals (goctx/signal.h) and the
 * wait group (goctx/sync.h), used by httpd.c only while those headers are
 * not in the tree yet. Just what httpd needs; not the library's versions. */
#include <pthread.h>

#define CTX_CAUSE_SIGNAL(sig) (0x40000000 | (sig))

static int compat_sig_pipe[2] = {-1, -1};
static pthread_t compat_sig_thread;
static bool compat_sig_started;

static void compat_on_signal(int sig)
{
	char b = (char)sig;
	ssize_t r = write(compat_sig_pipe[1], &b, 1);
	(void)r;
}

static void *compat_sig_main(void *arg)
{
	char b = 0;
	ssize_t r;
	while ((r = read(compat_sig_pipe[0], &b, 1)) < 0 && errno == EINTR)
		;
	ctx_cancel_cause(arg, b > 0 ? CTX_CAUSE_SIGNAL(b) : 0);
	return NULL;
}

/* The context ends at the first of sigs (or when stopped); httpd makes one. */
static ctx_t *ctx_with_signals(ctx_t *parent, const int *sigs, size_t n, ctx_cancel_t **stop)
{
	ctx_t *c = ctx_with_cancel(parent, stop);
	if (!c || pipe(compat_sig_pipe) < 0)
		return c;
	for (size_t i = 0; i < n; i++)
		signal(sigs[i], compat_on_signal);
	compat_sig_started = pthread_create(&compat_sig_thread, NULL, compat_sig_main,
	                                    ctx_cancel_dup(*stop)) == 0;
	return c;
}

/* The catching thread's cancel is over (it may still be running it when
 * the context is seen done); call before the last release. */
static void httpd_signals_join(void)
{
	if (!compat_sig_started)
		return;
	char z = 0;
	ssize_t r = write(compat_sig_pipe[1], &z, 1); /* ends it if no signal came */
	(void)r;
	pthread_join(compat_sig_thread, NULL);
}

typedef struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int n;
} ctx_waitgroup_t;
#define CTX_WAITGROUP_INIT {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0}

static void compat_wg_add(ctx_waitgroup_t *wg, int d)
{
	pthread_mutex_lock(&wg->mu);
	wg->n += d;
	pthread_cond_broadcast(&wg->cv);
	pthread_mutex_unlock(&wg->mu);
}

struct compat_go {
	ctx_waitgroup_t *wg;
	void (*fn)(void *);
	void *arg;
};

static void *compat_go_main(void *p)
{
	struct compat_go g = *(struct compat_go *)p;
	free(p);
	g.fn(g.arg);
	compat_wg_add(g.wg, -1);
	return NULL;
}

static int ctx_waitgroup_go(ctx_waitgroup_t *wg, void (*fn)(void *), void *arg)
{
	struct compat_go *g = malloc(sizeof *g);
	if (!g)
		return ENOMEM;
	*g = (struct compat_go){wg, fn, arg};
	compat_wg_add(wg, 1);
	pthread_t t;
	int e = pthread_create(&t, NULL, compat_go_main, g);
	if (e) {
		free(g);
		compat_wg_add(wg, -1);
		return e;
	}
	pthread_detach(t);
	return 0;
}

static void compat_wg_wake(void *wg) { compat_wg_add(wg, 0); }

static int ctx_waitgroup_wait(ctx_waitgroup_t *wg, ctx_t *ctx)
{
	ctx_after_t *a = NULL;
	if (ctx && ctx_after_func(ctx, compat_wg_wake, wg, &a) != 0)
		return ENOMEM;
	pthread_mutex_lock(&wg->mu);
	while (wg->n > 0 && !(ctx && ctx_done(ctx)))
		pthread_cond_wait(&wg->cv, &wg->mu);
	int e = wg->n > 0 ? ctx_err(ctx) : 0;
	pthread_mutex_unlock(&wg->mu);
	if (a)
		ctx_after_stop(a);
	return e;
}
