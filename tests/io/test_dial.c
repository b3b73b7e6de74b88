/* test_dial.c: ctx_dial_tcp (numeric and named hosts, refused, bad port,
 * resolution bounded by the context and its thread abandoned cleanly) and
 * ctx_connect bounded by a deadline. */
#include "util.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "goctx/io.h"
#include "io/testing.h"

#define MS CTX_MILLISECOND

static int listener(struct sockaddr_in *a, int backlog, char port[16])
{
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(l >= 0);
	*a = (struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(bind(l, (struct sockaddr *)a, sizeof *a), 0);
	socklen_t al = sizeof *a;
	assert_int_equal(getsockname(l, (struct sockaddr *)a, &al), 0);
	assert_int_equal(listen(l, backlog), 0);
	snprintf(port, 16, "%d", ntohs(a->sin_port));
	return l;
}

static void check_connected(int fd, int l)
{
	assert_true(fd >= 0);
	int fl = fcntl(fd, F_GETFL);
	assert_false(fl & O_NONBLOCK);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	int a = accept(l, NULL, NULL);
	assert_true(a >= 0);
	assert_int_equal(write(fd, "hi", 2), 2);
	char b[2];
	assert_int_equal(read(a, b, 2), 2);
	close(a);
}

static void test_dial_numeric_and_name(void **state)
{
	(void)state;
	struct sockaddr_in a;
	char port[16];
	int l = listener(&a, 16, port);
	ctx_cancel_t *cancel;
	ctx_t *c = ctx_with_timeout(ctx_background(), 10000 * MS, &cancel);
	int fd = 77;
	assert_int_equal(ctx_dial_tcp(c, "127.0.0.1", port, &fd), 0);
	check_connected(fd, l);
	close(fd);
	/* A name: looked up on the resolver thread. "localhost" may resolve to
	 * ::1 first, where nothing listens: the next address is tried. */
	assert_int_equal(ctx_dial_tcp(c, "localhost", port, &fd), 0);
	check_connected(fd, l);
	close(fd);
	ctx_cancel(cancel);
	ctx_release(c);
	close(l);
	/* The resolver thread lets go of its job just after the caller: it may
	 * be the one to free it, a moment later. */
	ut_assert_no_leak_eventually();
}

static void test_dial_errors(void **state)
{
	(void)state;
	struct sockaddr_in a;
	char port[16];
	int l = listener(&a, 1, port);
	close(l);
	int fd = 5;
	assert_int_equal(ctx_dial_tcp(ctx_background(), "127.0.0.1", port, &fd), ECONNREFUSED);
	assert_int_equal(fd, -1);
	assert_int_equal(ctx_dial_tcp(ctx_background(), "127.0.0.1", "no-such-service-xyz", &fd), EINVAL);
	assert_int_equal(ctx_dial_tcp(ctx_background(), "127.0.0.1", "99999", &fd), EINVAL);
	assert_int_equal(ctx_dial_tcp(ctx_background(), NULL, port, &fd), EINVAL);
	assert_int_equal(ctx_dial_tcp(NULL, "127.0.0.1", port, &fd), EINVAL);
	assert_int_equal(ctx_dial_tcp(ctx_background(), "127.0.0.1", port, NULL), EINVAL);
	ctx_cancel_t *cancel;
	ctx_t *c = ctx_with_cancel(ctx_background(), &cancel);
	ctx_cancel(cancel);
	assert_int_equal(ctx_dial_tcp(c, "127.0.0.1", port, &fd), ECANCELED);
	ctx_release(c);
	ut_assert_no_leak_eventually();
}

/* A lookup that blocks until the test lets it go. */
static sem_t lookup_entered, lookup_release;

static int slow_lookup(const char *host, const char *port, const struct addrinfo *hints,
                       struct addrinfo **res)
{
	sem_post(&lookup_entered);
	ut_sem_wait_ms(&lookup_release, 30000);
	return getaddrinfo(host, port, hints, res);
}

static int failing_lookup(const char *host, const char *port, const struct addrinfo *hints,
                          struct addrinfo **res)
{
	(void)host, (void)port, (void)hints, (void)res;
	return EAI_NONAME;
}

struct cancel_after_lookup {
	ctx_cancel_t *cancel;
};

static void *cancel_main(void *arg)
{
	struct cancel_after_lookup *a = arg;
	assert_true(ut_sem_wait_ms(&lookup_entered, 10000));
	ctx_cancel(a->cancel);
	return NULL;
}

static void test_dial_resolution_abandoned(void **state)
{
	(void)state;
	sem_init(&lookup_entered, 0, 0);
	sem_init(&lookup_release, 0, 0);
	ctx__io_set_getaddrinfo(slow_lookup);
	long base = ut_live();

	/* Cancelled while the lookup is under way. */
	ctx_cancel_t *cancel;
	ctx_t *c = ctx_with_cancel(ctx_background(), &cancel);
	struct cancel_after_lookup ca = {.cancel = cancel};
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, cancel_main, &ca), 0);
	int fd = 9;
	assert_int_equal(ctx_dial_tcp(c, "localhost", "1", &fd), ECANCELED);
	assert_int_equal(fd, -1);
	assert_true(ut_join_ms(t, 10000, NULL));
	ctx_release(c);
	/* The abandoned thread still holds its job; it frees it once let go. */
	assert_true(ut_live() > base);
	sem_post(&lookup_release);
	ut_base = base;
	ut_assert_no_leak_eventually();

	/* A deadline during the lookup. */
	c = ctx_with_timeout(ctx_background(), 30 * MS, &cancel);
	assert_int_equal(ctx_dial_tcp(c, "localhost", "1", &fd), ETIMEDOUT);
	assert_true(ut_sem_wait_ms(&lookup_entered, 10000));
	sem_post(&lookup_release);
	ctx_cancel(cancel);
	ctx_release(c);
	ut_assert_no_leak_eventually();

	/* Resolution errors. */
	ctx__io_set_getaddrinfo(failing_lookup);
	assert_int_equal(ctx_dial_tcp(ctx_background(), "no.such.host", "80", &fd), EHOSTUNREACH);
	ctx__io_set_getaddrinfo(NULL);
	ut_assert_no_leak_eventually();
	sem_destroy(&lookup_entered);
	sem_destroy(&lookup_release);
}

/* A listener whose accept queue is full drops new SYNs: a connect to it
 * stays in progress until the deadline. */
static void test_connect_deadline(void **state)
{
	(void)state;
	struct sockaddr_in a;
	char port[16];
	int l = listener(&a, 0, port);
	int fill[8], nfill = 0;
	bool hung = false;
	for (int i = 0; i < 8 && !hung; i++) {
		int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		ctx_cancel_t *cancel;
		ctx_t *c = ctx_with_timeout(ctx_background(), 100 * MS, &cancel);
		int e = ctx_connect(c, s, (struct sockaddr *)&a, sizeof a);
		assert_true(e == 0 || e == ETIMEDOUT);
		if (e == ETIMEDOUT) {
			hung = true;
			assert_false(fcntl(s, F_GETFL) & O_NONBLOCK); /* restored */
			close(s);
		} else {
			fill[nfill++] = s;
		}
		ctx_cancel(cancel);
		ctx_release(c);
	}
	assert_true(hung);
	for (int i = 0; i < nfill; i++)
		close(fill[i]);
	close(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_dial_numeric_and_name, ut_mark),
		cmocka_unit_test_setup(test_dial_errors, ut_mark),
		cmocka_unit_test_setup(test_dial_resolution_abandoned, ut_mark),
		cmocka_unit_test_setup(test_connect_deadline, ut_mark),
	};
	return cmocka_run_group_tests(tests, ut_group_setup, NULL);
}
