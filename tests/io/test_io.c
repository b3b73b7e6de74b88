/* test_io.c: ctx_poll, ctx_read, ctx_write_all, ctx_accept, ctx_connect:
 * bounded by the context, on blocking and non-blocking descriptors, EINTR
 * retried, SIGPIPE never raised, flags left alone, no descriptor per
 * context, nothing registered on the fast path. */
#include "util.h"

#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "ctx/internal.h"
#include "goctx/io.h"

#define MS CTX_MILLISECOND

#if GOCTX_OS_LINUX
#define HAVE_RWF_NOWAIT 1
#else
#define HAVE_RWF_NOWAIT 0
#endif

static int open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	int n = 0;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static void make_pipe(int p[2], bool nonblock)
{
	assert_int_equal(pipe2(p, O_CLOEXEC | (nonblock ? O_NONBLOCK : 0)), 0);
}

static void make_socketpair(int s[2], bool nonblock)
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0),
	                            0, s),
	                 0);
}

static int flags(int fd) { return fcntl(fd, F_GETFL); }

/* A context nothing else will cancel: its deadline fires. */
static ctx_t *timeout_ctx(int ms, ctx_cancel_t **c) { return ctx_with_timeout(ctx_background(), ms * MS, c); }

/* The done descriptor of c was never made. */
static bool no_done_fd(ctx_t *c) { return c->src && c->src->done.fd == -1; }

/* ---- a thread that cancels after a while or writes late ---- */

struct later {
	ctx_cancel_t *cancel; /* cancel this, or */
	int fd;               /* write `data` here */
	const char *data;
	int ms;
	pthread_t t;
};

static void *later_main(void *arg)
{
	struct later *l = arg;
	ut_sleep_ms(l->ms);
	if (l->cancel)
		ctx_cancel(l->cancel);
	else
		assert_true(write(l->fd, l->data, strlen(l->data)) == (ssize_t)strlen(l->data));
	return NULL;
}

static void later_start(struct later *l) { assert_int_equal(pthread_create(&l->t, NULL, later_main, l), 0); }
static void later_join(struct later *l) { assert_true(ut_join_ms(l->t, 10000, NULL)); }

/* ---- ctx_read ---- */

static void test_read_ready_fast_path(void **state)
{
	(void)state;
	for (int nb = 0; nb < 2; nb++) {
		int p[2];
		make_pipe(p, nb);
		int fl = flags(p[0]);
		assert_int_equal(write(p[1], "hello", 5), 5);
		ctx_cancel_t *cancel;
		ctx_t *c = timeout_ctx(10000, &cancel);
		long allocs = ut_allocs_now();
		char buf[16];
		assert_int_equal(ctx_read(c, p[0], buf, sizeof buf), 5);
		/* Nothing registered, nothing allocated. */
		assert_int_equal(ut_allocs_now(), allocs);
		assert_int_equal(ctx__children_count(c), 0);
		assert_memory_equal(buf, "hello", 5);
		assert_int_equal(flags(p[0]), fl);
		assert_true(no_done_fd(c));
		ctx_cancel(cancel);
		ctx_release(c);
		close(p[0]);
		close(p[1]);
	}
}

static void test_read_done_on_entry(void **state)
{
	(void)state;
	int p[2];
	make_pipe(p, false);
	assert_int_equal(write(p[1], "x", 1), 1);
	ctx_cancel_t *cancel;
	ctx_t *c = ctx_with_cancel(ctx_background(), &cancel);
	ctx_cancel(cancel);
	char b;
	errno = 0;
	assert_int_equal(ctx_read(c, p[0], &b, 1), -1);
	assert_int_equal(errno, ECANCELED);
	/* Nothing was read. */
	assert_int_equal(read(p[0], &b, 1), 1);
	ctx_release(c);
	close(p[0]);
	close(p[1]);
}

static void check_read_deadline(int fd)
{
	ctx_cancel_t *cancel;
	ctx_t *c = timeout_ctx(30, &cancel);
	int fl = flags(fd);
	char b;
	errno = 0;
	assert_int_equal(ctx_read(c, fd, &b, 1), -1);
	assert_int_equal(errno, ETIMEDOUT);
	assert_int_equal(flags(fd), fl);
	assert_true(no_done_fd(c));
	ctx_cancel(cancel);
	ctx_release(c);
}

static void test_read_deadline(void **state)
{
	(void)state;
	for (int nb = 0; nb < 2; nb++) {
		int p[2], s[2];
		make_pipe(p, nb);
		make_socketpair(s, nb);
		check_read_deadline(p[0]);
		check_read_deadline(s[0]);
		close(p[0]);
		close(p[1]);
		close(s[0]);
		close(s[1]);
	}
}

static void test_read_cancel(void **state)
{
	(void)state;
	for (int nb = 0; nb < 2; nb++) {
		int p[2];
		make_pipe(p, nb);
		ctx_cancel_t *cancel;
		ctx_t *c = ctx_with_cancel(ctx_background(), &cancel);
		struct later l = {.cancel = cancel, .ms = 20};
		later_start(&l);
		char b;
		errno = 0;
		assert_int_equal(ctx_read(c, p[0], &b, 1), -1);
		assert_int_equal(errno, ECANCELED);
		later_join(&l);
		assert_true(no_done_fd(c));
		ctx_release(c);
		close(p[0]);
		close(p[1]);
	}
}

static void test_read_late_data(void **state)
{
	(void)state;
	for (int nb = 0; nb < 2; nb++) {
		int s[2];
		make_socketpair(s, nb);
		ctx_cancel_t *cancel;
		ctx_t *c = timeout_ctx(10000, &cancel);
		struct later l = {.fd = s[1], .data = "late", .ms = 20};
		later_start(&l);
		char buf[8];
		assert_int_equal(ctx_read(c, s[0], buf, sizeof buf), 4);
		assert_memory_equal(buf, "late", 4);
		later_join(&l);
		/* The wait left no registration behind. */
		assert_int_equal(ctx__children_count(c), 0);
		ctx_cancel(cancel);
		ctx_release(c);
		close(s[0]);
		close(s[1]);
	}
}

static void test_read_eof_and_background(void **state)
{
	(void)state;
	int p[2];
	make_pipe(p, false);
	struct later l = {.fd = p[1], .data = "bg", .ms = 10};
	later_start(&l);
	char buf[4];
	/* A context that is never done: a plain wait. */
	assert_int_equal(ctx_read(ctx_background(), p[0], buf, sizeof buf), 2);
	later_join(&l);
	close(p[1]);
	assert_int_equal(ctx_read(ctx_background(), p[0], buf, sizeof buf), 0);
	close(p[0]);
}

static void test_read_regular_file(void **state)
{
	(void)state;
	char path[] = "/tmp/goctx-io-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(write(fd, "file data", 9), 9);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	ctx_cancel_t *cancel;
	ctx_t *c = timeout_ctx(10000, &cancel);
	char buf[16];
	assert_int_equal(ctx_read(c, fd, buf, sizeof buf), 9);
	assert_memory_equal(buf, "file data", 9);
	assert_int_equal(ctx_read(c, fd, buf, sizeof buf), 0);
	size_t w;
	assert_int_equal(ctx_write_all(c, fd, "more", 4, &w), 0);
	assert_int_equal(w, 4);
	ctx_cancel(cancel);
	ctx_release(c);
	close(fd);
}

/* ---- EINTR: a signal handler without SA_RESTART, signals all along ---- */

static void on_usr1(int sig) { (void)sig; }

struct pester {
	pthread_t target;
	atomic_bool stop;
	pthread_t t;
};

static void *pester_main(void *arg)
{
	struct pester *p = arg;
	while (!atomic_load(&p->stop)) {
		pthread_kill(p->target, SIGUSR1);
		ut_sleep_ms(1);
	}
	return NULL;
}

static void test_eintr_retried(void **state)
{
	(void)state;
	struct sigaction sa = {.sa_handler = on_usr1}, old;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART: poll and read return EINTR */
	assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);
	struct pester p = {.target = pthread_self()};
	assert_int_equal(pthread_create(&p.t, NULL, pester_main, &p), 0);

	int s[2];
	make_socketpair(s, false);
	/* A deadline is kept through the signals. */
	ctx_cancel_t *cancel;
	ctx_t *c = timeout_ctx(60, &cancel);
	char b;
	errno = 0;
	assert_int_equal(ctx_read(c, s[0], &b, 1), -1);
	assert_int_equal(errno, ETIMEDOUT);
	ctx_cancel(cancel);
	ctx_release(c);
	/* And data arriving later is read. */
	c = timeout_ctx(10000, &cancel);
	struct later l = {.fd = s[1], .data = "y", .ms = 40};
	later_start(&l);
	assert_int_equal(ctx_read(c, s[0], &b, 1), 1);
	assert_int_equal(b, 'y');
	later_join(&l);
	ctx_cancel(cancel);
	ctx_release(c);
	/* ctx_poll too keeps its deadline through the signals. */
	c = timeout_ctx(60, &cancel);
	struct pollfd pf = {.fd = s[0], .events = POLLIN};
	assert_int_equal(ctx_poll(c, &pf, 1, NULL), ETIMEDOUT);
	ctx_cancel(cancel);
	ctx_release(c);

	atomic_store(&p.stop, true);
	assert_true(ut_join_ms(p.t, 10000, NULL));
	sigaction(SIGUSR1, &old, NULL);
	close(s[0]);
	close(s[1]);
}

/* ---- ctx_write_all ---- */

struct drain {
	int fd;
	int delay_ms; /* before reading */
	size_t got;
	pthread_t t;
};

static void *drain_main(void *arg)
{
	struct drain *d = arg;
	/* The reading end only (its own file description). */
	fcntl(d->fd, F_SETFL, fcntl(d->fd, F_GETFL) & ~O_NONBLOCK);
	ut_sleep_ms(d->delay_ms);
	char buf[4096];
	ssize_t r;
	while ((r = read(d->fd, buf, sizeof buf)) > 0)
		d->got += (size_t)r;
	return NULL;
}

static void test_write_all_big(void **state)
{
	(void)state;
	size_t len = 1 << 20;
	char *big = malloc(len);
	assert_non_null(big);
	memset(big, 'z', len);
	for (int sock = 0; sock < 2; sock++) {
		for (int nb = 0; nb < 2; nb++) {
			int p[2];
			if (sock)
				make_socketpair(p, nb);
			else
				make_pipe(p, nb);
			int fl = flags(p[1]);
			struct drain d = {.fd = p[0], .delay_ms = 10};
			assert_int_equal(pthread_create(&d.t, NULL, drain_main, &d), 0);
			ctx_cancel_t *cancel;
			ctx_t *c = timeout_ctx(20000, &cancel);
			size_t w = 0;
			assert_int_equal(ctx_write_all(c, p[1], big, len, &w), 0);
			assert_int_equal(w, len);
			assert_int_equal(flags(p[1]), fl);
			close(p[1]);
			assert_true(ut_join_ms(d.t, 10000, NULL));
			assert_int_equal(d.got, len);
			assert_true(no_done_fd(c));
			ctx_cancel(cancel);
			ctx_release(c);
			close(p[0]);
		}
	}
	free(big);
}

static void test_write_all_deadline_counts(void **state)
{
	(void)state;
	size_t len = 8 << 20; /* more than any pipe or socket buffer */
	char *big = malloc(len);
	assert_non_null(big);
	memset(big, 'q', len);
	for (int sock = 0; sock < 2; sock++) {
		for (int nb = 0; nb < 2; nb++) {
			int p[2];
			if (sock)
				make_socketpair(p, nb);
			else
				make_pipe(p, nb);
			ctx_cancel_t *cancel;
			ctx_t *c = timeout_ctx(30, &cancel);
			size_t w = 12345;
			assert_int_equal(ctx_write_all(c, p[1], big, len, &w), ETIMEDOUT);
			assert_true(w > 0 && w < len);
			close(p[1]);
			/* What was written is exactly what the reader gets. */
			struct drain d = {.fd = p[0]};
			drain_main(&d);
			assert_int_equal(d.got, w);
			ctx_cancel(cancel);
			ctx_release(c);
			close(p[0]);
		}
	}
	free(big);
}

static void test_write_done_on_entry(void **state)
{
	(void)state;
	int p[2];
	make_pipe(p, true);
	ctx_cancel_t *cancel;
	ctx_t *c = ctx_with_cancel(ctx_background(), &cancel);
	ctx_cancel(cancel);
	size_t w = 99;
	assert_int_equal(ctx_write_all(c, p[1], "abc", 3, &w), ECANCELED);
	assert_int_equal(w, 0);
	char b;
	assert_int_equal(read(p[0], &b, 1), -1);
	assert_int_equal(errno, EAGAIN);
	ctx_release(c);
	close(p[0]);
	close(p[1]);
}

static bool sigpipe_pending(void)
{
	sigset_t s;
	sigpending(&s);
	return sigismember(&s, SIGPIPE) == 1;
}

static bool sigpipe_blocked(void)
{
	sigset_t s;
	pthread_sigmask(SIG_SETMASK, NULL, &s);
	return sigismember(&s, SIGPIPE) == 1;
}

/* SIGPIPE keeps its default disposition here: raising it would kill the
 * test program. */
static void test_no_sigpipe(void **state)
{
	(void)state;
	signal(SIGPIPE, SIG_DFL);
	for (int sock = 0; sock < 2; sock++) {
		int p[2];
		if (sock)
			make_socketpair(p, false);
		else
			make_pipe(p, false);
		close(p[0]);
		size_t w = 7;
		assert_int_equal(ctx_write_all(ctx_background(), p[1], "abc", 3, &w), EPIPE);
		assert_int_equal(w, 0);
		assert_false(sigpipe_blocked());
		assert_false(sigpipe_pending());
		close(p[1]);
	}
	/* With SIGPIPE blocked by the caller: still blocked after, and the
	 * SIGPIPE the write caused is not left pending. */
	sigset_t pipe_set, old;
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	int p[2];
	make_pipe(p, false);
	close(p[0]);
	assert_int_equal(ctx_write_all(ctx_background(), p[1], "abc", 3, NULL), EPIPE);
	assert_true(sigpipe_blocked());
	assert_false(sigpipe_pending());
	/* One that was pending before the call is left pending. */
	pthread_kill(pthread_self(), SIGPIPE);
	assert_true(sigpipe_pending());
	assert_int_equal(ctx_write_all(ctx_background(), p[1], "abc", 3, NULL), EPIPE);
	assert_true(sigpipe_pending());
	const struct timespec zero = {0, 0};
	assert_int_equal(sigtimedwait(&pipe_set, NULL, &zero), SIGPIPE);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	close(p[1]);
}

/* ---- ctx_poll ---- */

static void test_poll(void **state)
{
	(void)state;
	int p[2];
	make_pipe(p, false);
	ctx_cancel_t *cancel;
	ctx_t *c = timeout_ctx(30, &cancel);
	struct pollfd f[2] = {{.fd = p[0], .events = POLLIN}, {.fd = p[1], .events = POLLOUT}};
	int ready = -1;
	assert_int_equal(ctx_poll(c, f, 2, &ready), 0);
	assert_int_equal(ready, 1);
	assert_int_equal(f[0].revents, 0);
	assert_true(f[1].revents & POLLOUT);
	/* Nothing ready: the deadline; every revents 0. */
	f[0].revents = 77;
	assert_int_equal(ctx_poll(c, f, 1, &ready), ETIMEDOUT);
	assert_int_equal(f[0].revents, 0);
	ctx_cancel(cancel);
	ctx_release(c);
	/* Cancelled from another thread. */
	c = ctx_with_cancel(ctx_background(), &cancel);
	struct later l = {.cancel = cancel, .ms = 20};
	later_start(&l);
	assert_int_equal(ctx_poll(c, f, 1, &ready), ECANCELED);
	later_join(&l);
	assert_int_equal(ctx_poll(c, f, 1, NULL), ECANCELED);
	assert_true(no_done_fd(c));
	ctx_release(c);
	/* More descriptors than the stack array holds. */
	enum { N = 20 };
	struct pollfd many[N];
	for (int i = 0; i < N; i++)
		many[i] = (struct pollfd){.fd = p[0], .events = POLLIN};
	c = timeout_ctx(10000, &cancel);
	struct later l2 = {.fd = p[1], .data = "!", .ms = 20};
	later_start(&l2);
	assert_int_equal(ctx_poll(c, many, N, &ready), 0);
	assert_int_equal(ready, N);
	later_join(&l2);
	ctx_cancel(cancel);
	ctx_release(c);
	assert_int_equal(ctx_poll(NULL, f, 1, NULL), EINVAL);
	close(p[0]);
	close(p[1]);
}

/* ---- descriptors: one per thread, none per context ---- */

static void *many_waits(void *arg)
{
	int fd = *(int *)arg;
	for (int i = 0; i < 50; i++) {
		ctx_cancel_t *cancel;
		ctx_t *c = ctx_with_timeout(ctx_background(), 1 * MS, &cancel);
		char b;
		assert_int_equal(ctx_read(c, fd, &b, 1), -1);
		assert_int_equal(errno, ETIMEDOUT);
		assert_true(no_done_fd(c));
		ctx_cancel(cancel);
		ctx_release(c);
	}
	return NULL;
}

static void test_descriptor_per_thread(void **state)
{
	(void)state;
	int p[2];
	make_pipe(p, false);
	int before = open_fds();
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, many_waits, &p[0]), 0);
	assert_true(ut_join_ms(t, 30000, NULL));
	/* The thread's wake descriptor was closed when it exited. */
	assert_int_equal(open_fds(), before);
	/* In this thread: at most one more, whatever the number of waits. */
	many_waits(&p[0]);
	int after = open_fds();
	many_waits(&p[0]);
	assert_int_equal(open_fds(), after);
	assert_true(after <= before + 1);
	close(p[0]);
	close(p[1]);
}

/* ---- ctx_accept, ctx_connect ---- */

static int listener(bool nonblock, struct sockaddr_in *a, int backlog)
{
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
	assert_true(l >= 0);
	*a = (struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(bind(l, (struct sockaddr *)a, sizeof *a), 0);
	socklen_t al = sizeof *a;
	assert_int_equal(getsockname(l, (struct sockaddr *)a, &al), 0);
	assert_int_equal(listen(l, backlog), 0);
	return l;
}

static void test_accept_connect(void **state)
{
	(void)state;
	for (int nb = 0; nb < 2; nb++) {
		struct sockaddr_in a;
		int l = listener(nb, &a, 16);
		int fl = flags(l);
		ctx_cancel_t *cancel;
		ctx_t *c = timeout_ctx(30, &cancel);
		errno = 0;
		assert_int_equal(ctx_accept(c, l, NULL, NULL, SOCK_CLOEXEC), -1);
		assert_int_equal(errno, ETIMEDOUT);
		assert_int_equal(flags(l), fl);
		ctx_cancel(cancel);
		ctx_release(c);

		c = timeout_ctx(10000, &cancel);
		int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		int sfl = flags(s);
		assert_int_equal(ctx_connect(c, s, (struct sockaddr *)&a, sizeof a), 0);
		assert_int_equal(flags(s), sfl); /* restored: blocking again */
		int acc = ctx_accept(c, l, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		assert_true(acc >= 0);
		assert_true(flags(acc) & O_NONBLOCK);
		size_t w;
		assert_int_equal(ctx_write_all(c, s, "ping", 4, &w), 0);
		char buf[8];
		assert_int_equal(ctx_read(c, acc, buf, sizeof buf), 4);
		close(acc);
		close(s);
		ctx_cancel(cancel);
		ctx_release(c);
		close(l);
	}
	/* Refused: nothing listens on the port any more. */
	struct sockaddr_in a;
	int l = listener(false, &a, 1);
	close(l);
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int sfl = flags(s);
	assert_int_equal(ctx_connect(ctx_background(), s, (struct sockaddr *)&a, sizeof a), ECONNREFUSED);
	assert_int_equal(flags(s), sfl);
	close(s);
}

static void test_accept_cancel(void **state)
{
	(void)state;
	struct sockaddr_in a;
	int l = listener(false, &a, 16);
	ctx_cancel_t *cancel;
	ctx_t *c = ctx_with_cancel(ctx_background(), &cancel);
	struct later lt = {.cancel = cancel, .ms = 20};
	later_start(&lt);
	errno = 0;
	assert_int_equal(ctx_accept(c, l, NULL, NULL, 0), -1);
	assert_int_equal(errno, ECANCELED);
	later_join(&lt);
	ctx_release(c);
	close(l);
}

/* ---- stress: many threads waiting and being cancelled (TSan) ---- */

struct stress_arg {
	int fd;
	ctx_t *parent;
};

static void *stress_reader(void *arg)
{
	struct stress_arg *a = arg;
	for (int i = 0; i < UT_ITERS(200); i++) {
		ctx_cancel_t *cancel;
		ctx_t *c = ctx_with_cancel(a->parent, &cancel);
		char b;
		ssize_t r = ctx_read(c, a->fd, &b, 1);
		assert_true(r == 1 || (r == -1 && errno == ECANCELED));
		ctx_cancel(cancel);
		ctx_release(c);
		if (r == -1)
			break;
	}
	return NULL;
}

static void test_stress_cancel(void **state)
{
	(void)state;
	enum { T = 8 };
	for (int round = 0; round < UT_ITERS(10); round++) {
		ctx_cancel_t *cancel;
		ctx_t *parent = ctx_with_cancel(ctx_background(), &cancel);
		int p[2];
		/* Blocking pipes shared by readers need RWF_NOWAIT (Linux):
		 * elsewhere a reader whose data another one took would block in
		 * read(2), as goctx/io.h says. */
		make_pipe(p, HAVE_RWF_NOWAIT ? round % 2 : 1);
		pthread_t t[T];
		struct stress_arg a = {.fd = p[0], .parent = parent};
		for (int i = 0; i < T; i++)
			assert_int_equal(pthread_create(&t[i], NULL, stress_reader, &a), 0);
		for (int i = 0; i < 100; i++)
			assert_int_equal(write(p[1], "s", 1), 1);
		ut_sleep_ms(1);
		ctx_cancel(cancel);
		for (int i = 0; i < T; i++)
			assert_true(ut_join_ms(t[i], 30000, NULL));
		ctx_release(parent);
		close(p[0]);
		close(p[1]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_read_ready_fast_path, ut_mark),
		cmocka_unit_test(test_read_done_on_entry),
		cmocka_unit_test(test_read_deadline),
		cmocka_unit_test(test_read_cancel),
		cmocka_unit_test(test_read_late_data),
		cmocka_unit_test(test_read_eof_and_background),
		cmocka_unit_test(test_read_regular_file),
		cmocka_unit_test(test_eintr_retried),
		cmocka_unit_test(test_write_all_big),
		cmocka_unit_test(test_write_all_deadline_counts),
		cmocka_unit_test(test_write_done_on_entry),
		cmocka_unit_test(test_no_sigpipe),
		cmocka_unit_test(test_poll),
		cmocka_unit_test(test_descriptor_per_thread),
		cmocka_unit_test(test_accept_connect),
		cmocka_unit_test(test_accept_cancel),
		cmocka_unit_test(test_stress_cancel),
	};
	return cmocka_run_group_tests(tests, ut_group_setup, NULL);
}
