/* httpd_compat.h: a stand-in for ctx_with_signals (goctx/signal.h), used by
 * httpd.c only while that header is not in the tree yet. Just what httpd
 * needs; not the library's version. */
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
