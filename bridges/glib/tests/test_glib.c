/* test_glib.c: the GLib/GIO bridge (goctx/glib.h) against the real GLib:
 * GIO calls cut short by a context deadline (a pipe read, a connect to a
 * listener that never accepts), contexts cancelled through
 * g_cancellable_cancel, the source in a running GMainLoop, and every
 * GCancellable and context freed (run with G_DEBUG=fatal-warnings, from
 * tests/glib.env, so any GLib warning or critical fails the test). */
#include <arpa/inet.h>
#include <gio/gunixinputstream.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "util.h"

#include "goctx/glib.h"

/* Watching a GObject's end: a weak notify sets the flag. The last
 * reference may be dropped in another thread a moment after the test let go
 * of its own (an after-func holds one while it cancels), so the check waits,
 * bounded, as ut_assert_no_leak_eventually does. */
typedef atomic_int alive_t;

static void gone(gpointer data, GObject *obj)
{
	(void)obj;
	atomic_store((alive_t *)data, 0);
}

static void watch_object(gpointer obj, alive_t *alive)
{
	atomic_store(alive, 1);
	g_object_weak_ref(G_OBJECT(obj), gone, alive);
}

static void wait_finalized(alive_t *alive, int line)
{
	for (int i = 0; i < 100000 && atomic_load(alive); i++) {
		struct timespec ts = {0, 100 * 1000};
		nanosleep(&ts, NULL);
	}
	if (atomic_load(alive))
		fail_msg("line %d: a GCancellable is still alive", line);
}
#define assert_finalized(a) wait_finalized(&(a), __LINE__)

/* ---- context -> GCancellable ---- */

static void t_cancellable_done_with_ctx(void **state)
{
	(void)state;
	ctx_cancel_t *cancel;
	ctx_t *ctx = ctx_with_cancel(ctx_background(), &cancel);
	GCancellable *c = ctx_glib_cancellable_new(ctx);
	assert_non_null(c);
	alive_t alive;
	watch_object(c, &alive);
	assert_false(g_cancellable_is_cancelled(c));
	ctx_cancel(cancel);
	assert_true(g_cancellable_is_cancelled(c)); /* before ctx_cancel returned */
	g_object_unref(c);
	assert_finalized(alive);
	ctx_release(ctx);
	ut_assert_no_leak();
}

static void t_cancellable_of_done_ctx_is_cancelled(void **state)
{
	(void)state;
	ctx_t *ctx = ctx_with_timeout(ctx_background(), -1, NULL);
	GCancellable *c = ctx_glib_cancellable_new(ctx);
	assert_true(g_cancellable_is_cancelled(c));
	g_object_unref(c);
	ctx_release(ctx);
	ut_assert_no_leak();
}

/* Dropping the cancellable first stops the link: the context is not held. */
static void t_cancellable_dropped_first(void **state)
{
	(void)state;
	ctx_cancel_t *cancel;
	ctx_t *ctx = ctx_with_cancel(ctx_background(), &cancel);
	long live = ut_live();
	GCancellable *c = ctx_glib_cancellable_new(ctx);
	assert_true(ut_live() > live); /* the after-func's registration */
	alive_t alive;
	watch_object(c, &alive);
	g_object_unref(c);
	assert_finalized(alive);
	assert_int_equal(ut_live(), live);
	ctx_cancel(cancel);
	ctx_release(ctx);
	ut_assert_no_leak();

	/* A context that can never be done: nothing fires, nothing is kept. */
	c = ctx_glib_cancellable_new(ctx_background());
	watch_object(c, &alive);
	g_object_unref(c);
	assert_finalized(alive);
}

/* The cancel (another thread) races the last unref (this one). */
static void *cancel_thread(void *arg)
{
	ctx_cancel((ctx_cancel_t *)arg);
	return NULL;
}

static void t_cancellable_unref_races_cancel(void **state)
{
	(void)state;
	int rounds = UT_ITERS(2000);
	for (int i = 0; i < rounds; i++) {
		ctx_cancel_t *cancel;
		ctx_t *ctx = ctx_with_cancel(ctx_background(), &cancel);
		GCancellable *c = ctx_glib_cancellable_new(ctx);
		alive_t alive;
		watch_object(c, &alive);
		pthread_t t;
		assert_int_equal(pthread_create(&t, NULL, cancel_thread, cancel), 0);
		if (i % 2)
			sched_yield();
		g_object_unref(c);
		assert_true(ut_join_ms(t, 10000, NULL));
		assert_finalized(alive);
		ctx_release(ctx);
	}
	ut_assert_no_leak();
}

/* A GIO read on a pipe nobody writes to, cut short by the deadline. */
static void t_pipe_read_cut_by_deadline(void **state)
{
	(void)state;
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	GInputStream *in = g_unix_input_stream_new(fds[0], TRUE);
	ctx_cancel_t *cancel;
	ctx_t *ctx = ctx_with_timeout(ctx_background(), 30 * CTX_MILLISECOND, &cancel);
	ctx_time_t deadline;
	assert_true(ctx_deadline(ctx, &deadline));
	GCancellable *c = ctx_glib_cancellable_new(ctx);
	alive_t alive;
	watch_object(c, &alive);
	char buf[16];
	GError *error = NULL;
	gssize n = g_input_stream_read(in, buf, sizeof buf, c, &error);
	assert_int_equal(n, -1);
	assert_true(g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED));
	assert_int_equal(ctx_err(ctx), ETIMEDOUT);
	assert_true(ctx_now() >= deadline);
	g_clear_error(&error);
	g_object_unref(c);
	assert_finalized(alive);
	g_object_unref(in);
	close(fds[1]);
	ctx_cancel(cancel);
	ctx_release(ctx);
	ut_assert_no_leak_eventually();
}

/* The same read, asynchronous, in a GMainLoop: its callback gets
 * G_IO_ERROR_CANCELLED once the deadline passes. */
struct async_read {
	GMainLoop *loop;
	GError *error;
	gssize n;
};

static void read_done(GObject *src, GAsyncResult *res, gpointer data)
{
	struct async_read *r = data;
	r->n = g_input_stream_read_finish(G_INPUT_STREAM(src), res, &r->error);
	g_main_loop_quit(r->loop);
}

static void t_async_read_cut_by_deadline(void **state)
{
	(void)state;
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	GMainContext *mc = g_main_context_new();
	g_main_context_push_thread_default(mc);
	GInputStream *in = g_unix_input_stream_new(fds[0], TRUE);
	ctx_cancel_t *cancel;
	ctx_t *ctx = ctx_with_timeout(ctx_background(), 30 * CTX_MILLISECOND, &cancel);
	GCancellable *c = ctx_glib_cancellable_new(ctx);
	alive_t alive;
	watch_object(c, &alive);
	struct async_read r = {.loop = g_main_loop_new(mc, FALSE), .n = 0};
	char buf[16];
	g_input_stream_read_async(in, buf, sizeof buf, G_PRIORITY_DEFAULT, c, read_done, &r);
	g_main_loop_run(r.loop);
	assert_int_equal(r.n, -1);
	assert_true(g_error_matches(r.error, G_IO_ERROR, G_IO_ERROR_CANCELLED));
	assert_int_equal(ctx_err(ctx), ETIMEDOUT);
	g_clear_error(&r.error);
	g_object_unref(c);
	g_object_unref(in);
	/* GIO may still hold the cancellable in sources of mc: let them go. */
	while (g_main_context_iteration(mc, FALSE))
		;
	assert_finalized(alive);
	g_main_loop_unref(r.loop);
	g_main_context_pop_thread_default(mc);
	g_main_context_unref(mc);
	close(fds[1]);
	ctx_cancel(cancel);
	ctx_release(ctx);
	ut_assert_no_leak_eventually();
}

/* A connect to a local listener that never accepts: its accept queue
 * (backlog 0) is filled first, so the kernel drops the next SYNs and the
 * connect hangs until the context's deadline cancels it. */
static void t_socket_client_connect_cut_by_deadline(void **state)
{
	(void)state;
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(lfd >= 0);
	struct sockaddr_in a = {.sin_family = AF_INET};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
	socklen_t alen = sizeof a;
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &alen), 0);
	assert_int_equal(listen(lfd, 0), 0);
	enum { FILL = 4 };
	int fill[FILL];
	for (int i = 0; i < FILL; i++) {
		fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		assert_true(fill[i] >= 0);
		(void)connect(fill[i], (struct sockaddr *)&a, sizeof a); /* EINPROGRESS or 0 */
	}
	ut_sleep_ms(20); /* let the handshakes that can complete do so (not a race: any state works) */

	GSocketClient *client = g_socket_client_new();
	ctx_cancel_t *cancel;
	ctx_t *ctx = ctx_with_timeout(ctx_background(), 100 * CTX_MILLISECOND, &cancel);
	GCancellable *c = ctx_glib_cancellable_new(ctx);
	alive_t alive;
	watch_object(c, &alive);
	char host[32];
	snprintf(host, sizeof host, "127.0.0.1:%d", ntohs(a.sin_port));
	GError *error = NULL;
	GSocketConnection *conn = g_socket_client_connect_to_host(client, host, 0, c, &error);
	assert_null(conn);
	assert_non_null(error);
	if (!g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
		fail_msg("connect: %s (want G_IO_ERROR_CANCELLED)", error->message);
	assert_int_equal(ctx_err(ctx), ETIMEDOUT);
	g_clear_error(&error);
	g_object_unref(client);
	g_object_unref(c);
	assert_finalized(alive);
	for (int i = 0; i < FILL; i++)
		close(fill[i]);
	close(lfd);
	ctx_cancel(cancel);
	ctx_release(ctx);
	ut_assert_no_leak_eventually();
}

/* ---- GCancellable -> context ---- */

static void *gcancel_thread(void *arg)
{
	g_cancellable_cancel(arg);
	return NULL;
}

static void t_ctx_cancelled_by_gcancellable(void **state)
{
	(void)state;
	GCancellable *c = g_cancellable_new();
	alive_t alive;
	watch_object(c, &alive);
	ctx_cancel_t *cancel;
	ctx_t *ctx = ctx_glib_with_cancellable(ctx_background(), c, &cancel);
	assert_non_null(ctx);
	assert_non_null(cancel);
	ut_assert_live(ctx);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, gcancel_thread, c), 0);
	assert_int_equal(ctx_wait(ctx, 10 * CTX_SECOND), ECANCELED);
	assert_true(ut_join_ms(t, 10000, NULL));
	assert_int_equal(ctx_cause(ctx), CTX_GLIB_CAUSE_CANCELLED);
	/* The context let go of the cancellable once done. */
	g_object_unref(c);
	assert_finalized(alive);
	ctx_cancel(cancel);
	ctx_release(ctx);
	ut_assert_no_leak();
}

/* No handle for the caller: the cancellable (or the parent) ends it, and
 * everything is still freed. */
static void t_ctx_without_handle(void **state)
{
	(void)state;
	GCancellable *c = g_cancellable_new();
	alive_t alive;
	watch_object(c, &alive);
	ctx_t *ctx = ctx_glib_with_cancellable(ctx_background(), c, NULL);
	assert_non_null(ctx);
	g_cancellable_cancel(c);
	ut_assert_done(ctx, ECANCELED, CTX_GLIB_CAUSE_CANCELLED);
	ctx_release(ctx);
	g_object_unref(c);
	assert_finalized(alive);

	c = g_cancellable_new();
	watch_object(c, &alive);
	ctx_cancel_t *pcancel;
	ctx_t *parent = ctx_with_cancel(ctx_background(), &pcancel);
	ctx = ctx_glib_with_cancellable(parent, c, NULL);
	ctx_release(ctx); /* the link's handle keeps it until the parent ends it */
	ctx_cancel(pcancel);
	ctx_release(parent);
	g_object_unref(c);
	assert_finalized(alive);
	ut_assert_no_leak();
}

static void t_ctx_of_cancelled_gcancellable_born_done(void **state)
{
	(void)state;
	GCancellable *c = g_cancellable_new();
	alive_t alive;
	watch_object(c, &alive);
	g_cancellable_cancel(c);
	ctx_cancel_t *cancel;
	ctx_t *ctx = ctx_glib_with_cancellable(ctx_background(), c, &cancel);
	ut_assert_done(ctx, ECANCELED, CTX_GLIB_CAUSE_CANCELLED);
	g_object_unref(c);
	assert_finalized(alive);
	ctx_cancel(cancel);
	ctx_release(ctx);
	ut_assert_no_leak();
}

/* Done another way (its own cancel, its parent): the cancellable is left
 * alone, its handler is disconnected and it is let go. */
static void t_ctx_done_first_lets_go(void **state)
{
	(void)state;
	guint sig = g_signal_lookup("cancelled", G_TYPE_CANCELLABLE);
	for (int how = 0; how < 2; how++) {
		GCancellable *c = g_cancellable_new();
		alive_t alive;
		watch_object(c, &alive);
		ctx_cancel_t *pcancel, *cancel;
		ctx_t *parent = ctx_with_cancel(ctx_background(), &pcancel);
		ctx_t *ctx = ctx_glib_with_cancellable(parent, c, &cancel);
		assert_true(g_signal_has_handler_pending(c, sig, 0, FALSE));
		if (how == 0) {
			ctx_cancel(cancel);
			cancel = NULL;
		} else {
			ctx_cancel(pcancel);
			pcancel = NULL;
		}
		ut_assert_done(ctx, ECANCELED, ECANCELED);
		assert_false(g_signal_has_handler_pending(c, sig, 0, FALSE));
		assert_false(g_cancellable_is_cancelled(c));
		g_cancellable_cancel(c); /* nothing left to do */
		g_object_unref(c);
		assert_finalized(alive);
		if (cancel)
			ctx_cancel(cancel);
		if (pcancel)
			ctx_cancel(pcancel);
		ctx_release(ctx);
		ctx_release(parent);
	}
	ut_assert_no_leak();
}

/* g_cancellable_cancel and ctx_cancel race; exactly one cause wins, and
 * everything is freed. */
struct both {
	GCancellable *c;
	ctx_cancel_t *cancel;
	sem_t go;
};

static void *gcancel_after_go(void *arg)
{
	struct both *b = arg;
	if (!ut_sem_wait_ms(&b->go, 10000))
		abort();
	g_cancellable_cancel(b->c);
	return NULL;
}

static void t_gcancel_races_ctx_cancel(void **state)
{
	(void)state;
	int rounds = UT_ITERS(2000), by_glib = 0;
	for (int i = 0; i < rounds; i++) {
		struct both b = {.c = g_cancellable_new()};
		alive_t alive;
		watch_object(b.c, &alive);
		assert_int_equal(sem_init(&b.go, 0, 0), 0);
		ctx_t *ctx = ctx_glib_with_cancellable(ctx_background(), b.c, &b.cancel);
		pthread_t t;
		assert_int_equal(pthread_create(&t, NULL, gcancel_after_go, &b), 0);
		sem_post(&b.go);
		if (i % 2)
			sched_yield();
		ctx_cancel(b.cancel);
		assert_true(ut_join_ms(t, 10000, NULL));
		int cause = ctx_cause(ctx);
		assert_true(cause == ECANCELED || cause == CTX_GLIB_CAUSE_CANCELLED);
		by_glib += cause == CTX_GLIB_CAUSE_CANCELLED;
		g_object_unref(b.c);
		assert_finalized(alive);
		sem_destroy(&b.go);
		ctx_release(ctx);
	}
	printf("glib: %d of %d races won by g_cancellable_cancel\n", by_glib, rounds);
	ut_assert_no_leak();
}

/* Both directions at once, through one cancellable: cancelling the first
 * context cancels the cancellable, whose handler cancels the second from
 * inside the "cancelled" emission (where g_cancellable_disconnect would
 * deadlock). */
static void t_chain_through_one_cancellable(void **state)
{
	(void)state;
	ctx_cancel_t *c1, *c2;
	ctx_t *a = ctx_with_cancel(ctx_background(), &c1);
	GCancellable *c = ctx_glib_cancellable_new(a);
	alive_t alive;
	watch_object(c, &alive);
	ctx_t *b = ctx_glib_with_cancellable(ctx_background(), c, &c2);
	ctx_cancel(c1);
	ut_assert_done(b, ECANCELED, CTX_GLIB_CAUSE_CANCELLED);
	g_object_unref(c);
	assert_finalized(alive);
	ctx_cancel(c2);
	ctx_release(a);
	ctx_release(b);
	ut_assert_no_leak();
}

/* ---- the source ---- */

struct fired {
	int calls;
	ctx_t *ctx;
	GThread *thread;
	GMainLoop *loop;
	gboolean keep;
};

static gboolean on_fired(ctx_t *ctx, gpointer data)
{
	struct fired *f = data;
	f->calls++;
	f->ctx = ctx;
	f->thread = g_thread_self();
	if (f->loop)
		g_main_loop_quit(f->loop);
	return f->keep;
}

static void t_source_in_running_loop(void **state)
{
	(void)state;
	GMainContext *mc = g_main_context_new();
	for (int how = 0; how < 2; how++) {
		ctx_cancel_t *cancel;
		ctx_t *ctx = how == 0 ? ctx_with_timeout(ctx_background(), 20 * CTX_MILLISECOND, &cancel)
		                      : ctx_with_cancel(ctx_background(), &cancel);
		GSource *s = ctx_glib_source_new(ctx);
		struct fired f = {.loop = g_main_loop_new(mc, FALSE)};
		g_source_set_callback(s, (GSourceFunc)(void (*)(void))on_fired, &f, NULL);
		g_source_attach(s, mc);
		pthread_t t;
		if (how == 1)
			assert_int_equal(pthread_create(&t, NULL, cancel_thread, cancel), 0);
		g_main_loop_run(f.loop); /* until on_fired quits it */
		if (how == 1)
			assert_true(ut_join_ms(t, 10000, NULL));
		else
			ctx_cancel(cancel);
		assert_int_equal(f.calls, 1);
		assert_ptr_equal(f.ctx, ctx);
		assert_ptr_equal(f.thread, g_thread_self());
		assert_int_equal(ctx_err(ctx), how == 0 ? ETIMEDOUT : ECANCELED);
		assert_true(g_source_is_destroyed(s)); /* on_fired returned REMOVE */
		g_source_unref(s);
		g_main_loop_unref(f.loop);
		ctx_release(ctx);
	}
	g_main_context_unref(mc);
	ut_assert_no_leak_eventually();
}

/* Many sources on one context, cancelled from another thread while the loop
 * runs; each dispatches once (G_SOURCE_CONTINUE keeps it attached, idle). */
static void t_many_sources_one_ctx(void **state)
{
	(void)state;
	enum { N = 200 };
	GMainContext *mc = g_main_context_new();
	ctx_cancel_t *cancel;
	ctx_t *ctx = ctx_with_cancel(ctx_background(), &cancel);
	GSource *s[N];
	struct fired f[N];
	memset(f, 0, sizeof f);
	for (int i = 0; i < N; i++) {
		s[i] = ctx_glib_source_new(ctx);
		f[i].keep = G_SOURCE_CONTINUE;
		g_source_set_callback(s[i], (GSourceFunc)(void (*)(void))on_fired, &f[i], NULL);
		g_source_attach(s[i], mc);
	}
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, cancel_thread, cancel), 0);
	int seen = 0;
	while (seen < N) {
		g_main_context_iteration(mc, TRUE);
		seen = 0;
		for (int i = 0; i < N; i++)
			seen += f[i].calls;
	}
	assert_true(ut_join_ms(t, 10000, NULL));
	while (g_main_context_iteration(mc, FALSE))
		;
	for (int i = 0; i < N; i++) {
		assert_int_equal(f[i].calls, 1);
		assert_false(g_source_is_destroyed(s[i]));
		g_source_destroy(s[i]);
		g_source_unref(s[i]);
	}
	g_main_context_unref(mc);
	ctx_release(ctx);
	ut_assert_no_leak();
}

static void t_source_of_done_ctx_and_destroyed_source(void **state)
{
	(void)state;
	GMainContext *mc = g_main_context_new();
	/* Done already: dispatches on the first iteration. */
	ctx_t *done = ctx_with_timeout(ctx_background(), -1, NULL);
	GSource *s = ctx_glib_source_new(done);
	struct fired f = {0};
	g_source_set_callback(s, (GSourceFunc)(void (*)(void))on_fired, &f, NULL);
	g_source_attach(s, mc);
	g_source_unref(s); /* the context holds it now */
	assert_int_equal(f.calls, 0);
	assert_true(g_main_context_iteration(mc, FALSE));
	assert_int_equal(f.calls, 1);
	ctx_release(done);

	/* Destroyed before its context is done: never dispatches, and when the
	 * last reference goes the context is let go. */
	ctx_cancel_t *cancel;
	ctx_t *ctx = ctx_with_cancel(ctx_background(), &cancel);
	long live = ut_live();
	struct fired g = {0};
	s = ctx_glib_source_new(ctx);
	g_source_set_callback(s, (GSourceFunc)(void (*)(void))on_fired, &g, NULL);
	g_source_attach(s, mc);
	g_source_destroy(s);
	g_source_unref(s);
	assert_int_equal(ut_live(), live);
	ctx_cancel(cancel);
	while (g_main_context_iteration(mc, FALSE))
		;
	assert_int_equal(g.calls, 0);
	ctx_release(ctx);

	/* A context that can never be done: the source never fires. */
	s = ctx_glib_source_new(ctx_background());
	g_source_attach(s, mc);
	assert_false(g_main_context_iteration(mc, FALSE));
	g_source_destroy(s);
	g_source_unref(s);
	g_main_context_unref(mc);
	ut_assert_no_leak();
}

/* The source's destroy and last unref (this thread) race the cancel
 * (another), for attached sources and for sources never attached (whose
 * count reaches 0 with no hook before it). */
static void t_source_unref_races_cancel(void **state)
{
	(void)state;
	GMainContext *mc = g_main_context_new();
	int rounds = UT_ITERS(3000);
	for (int i = 0; i < rounds; i++) {
		ctx_cancel_t *cancel;
		ctx_t *ctx = ctx_with_cancel(ctx_background(), &cancel);
		GSource *s = ctx_glib_source_new(ctx);
		bool attach = i % 3 != 0;
		if (attach)
			g_source_attach(s, mc);
		pthread_t t;
		assert_int_equal(pthread_create(&t, NULL, cancel_thread, cancel), 0);
		if (i % 2)
			sched_yield();
		if (attach)
			g_source_destroy(s);
		g_source_unref(s);
		assert_true(ut_join_ms(t, 10000, NULL));
		ctx_release(ctx);
	}
	while (g_main_context_iteration(mc, FALSE))
		;
	g_main_context_unref(mc);
	ut_assert_no_leak();
}

/* ---- out of memory ---- */

/* The n-th goctx allocation from now fails (1: the next); 0: none. */
static atomic_int fail_countdown;

static void *failing_alloc(size_t n)
{
	int k = atomic_load(&fail_countdown);
	while (k > 0 && !atomic_compare_exchange_weak(&fail_countdown, &k, k - 1))
		;
	if (k == 1)
		return NULL;
	return ut_alloc(n);
}

static int group_setup(void **state)
{
	(void)state;
	return ctx_set_allocator(failing_alloc, ut_free);
}

static void t_enomem(void **state)
{
	(void)state;
	ctx_cancel_t *cancel;
	ctx_t *ctx = ctx_with_cancel(ctx_background(), &cancel);
	long live = ut_live();
	ctx_flush_cache(); /* no node from the cache */
	atomic_store(&fail_countdown, 1);
	errno = 0;
	assert_null(ctx_glib_cancellable_new(ctx));
	assert_int_equal(errno, ENOMEM);
	ctx_flush_cache(); /* no node from the cache */
	atomic_store(&fail_countdown, 1);
	errno = 0;
	assert_null(ctx_glib_source_new(ctx));
	assert_int_equal(errno, ENOMEM);
	assert_int_equal(ut_live(), live);

	/* ctx_glib_with_cancellable allocates twice (the child, its
	 * after-func): fail each; then the third try works. */
	GCancellable *c = g_cancellable_new();
	alive_t alive;
	watch_object(c, &alive);
	guint sig = g_signal_lookup("cancelled", G_TYPE_CANCELLABLE);
	for (int n = 1; n <= 3; n++) {
		ctx_cancel_t *cc = (ctx_cancel_t *)&cc;
		ctx_flush_cache(); /* no node from the cache */
		atomic_store(&fail_countdown, n);
		errno = 0;
		ctx_t *x = ctx_glib_with_cancellable(ctx, c, &cc);
		atomic_store(&fail_countdown, 0);
		if (n < 3) {
			assert_null(x);
			assert_int_equal(errno, ENOMEM);
			assert_null(cc);
			assert_false(g_signal_has_handler_pending(c, sig, 0, FALSE));
			assert_int_equal(ut_live(), live);
		} else {
			assert_non_null(x);
			ctx_cancel(cc);
			ctx_release(x);
		}
	}
	/* The same without a handle for the caller. */
	ctx_flush_cache(); /* no node from the cache */
	atomic_store(&fail_countdown, 2);
	errno = 0;
	assert_null(ctx_glib_with_cancellable(ctx, c, NULL));
	atomic_store(&fail_countdown, 0);
	assert_int_equal(errno, ENOMEM);
	assert_int_equal(ut_live(), live);
	assert_false(g_cancellable_is_cancelled(c));
	g_object_unref(c);
	assert_finalized(alive);
	ctx_cancel(cancel);
	ctx_release(ctx);
	ut_assert_no_leak();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(t_cancellable_done_with_ctx, ut_mark),
		cmocka_unit_test_setup(t_cancellable_of_done_ctx_is_cancelled, ut_mark),
		cmocka_unit_test_setup(t_cancellable_dropped_first, ut_mark),
		cmocka_unit_test_setup(t_cancellable_unref_races_cancel, ut_mark),
		cmocka_unit_test_setup(t_pipe_read_cut_by_deadline, ut_mark),
		cmocka_unit_test_setup(t_async_read_cut_by_deadline, ut_mark),
		cmocka_unit_test_setup(t_socket_client_connect_cut_by_deadline, ut_mark),
		cmocka_unit_test_setup(t_ctx_cancelled_by_gcancellable, ut_mark),
		cmocka_unit_test_setup(t_ctx_without_handle, ut_mark),
		cmocka_unit_test_setup(t_ctx_of_cancelled_gcancellable_born_done, ut_mark),
		cmocka_unit_test_setup(t_ctx_done_first_lets_go, ut_mark),
		cmocka_unit_test_setup(t_gcancel_races_ctx_cancel, ut_mark),
		cmocka_unit_test_setup(t_chain_through_one_cancellable, ut_mark),
		cmocka_unit_test_setup(t_source_in_running_loop, ut_mark),
		cmocka_unit_test_setup(t_many_sources_one_ctx, ut_mark),
		cmocka_unit_test_setup(t_source_of_done_ctx_and_destroyed_source, ut_mark),
		cmocka_unit_test_setup(t_source_unref_races_cancel, ut_mark),
		cmocka_unit_test_setup(t_enomem, ut_mark),
	};
	return cmocka_run_group_tests(tests, group_setup, NULL);
}
