/* dial.c: ctx_dial_tcp, Go's DialContext("tcp", ...).
 *
 * Name resolution. getaddrinfo cannot be interrupted, and glibc's
 * getaddrinfo_a is glibc-only (musl and the BSDs lack it) and cannot cancel
 * a lookup already under way either (gai_cancel gives EAI_NOTCANCELED): it
 * runs getaddrinfo on a thread of its own too. So a name is looked up on a
 * short-lived detached thread (ctx__os_thread_start: signals blocked) that
 * shares a small job with the caller. The caller waits until the lookup is
 * finished or the context is done (an after-func wakes it); when the context
 * wins, the caller walks away and the thread frees the job (and the result
 * it got) when its getaddrinfo returns: whichever of the two lets go of the
 * job last frees it. A numeric address and port need no lookup and are
 * converted in the caller's thread, with no thread started.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"
#include "testing.h"

/* The resolver's lookup; replaced by tests (testing.h). */
static _Atomic(ctx__io_getaddrinfo_fn) lookup_hook;

void ctx__io_set_getaddrinfo(ctx__io_getaddrinfo_fn fn)
{
	atomic_store_explicit(&lookup_hook, fn, memory_order_release);
}

struct job {
	pthread_mutex_t mu;
	pthread_cond_t cv;   /* signalled when finished or ctx_done change */
	int refs;            /* the caller and the thread; guarded by mu */
	bool finished;       /* the lookup returned; guarded by mu */
	bool ctx_done;       /* the caller's context is done; guarded by mu */
	int gai;             /* getaddrinfo's result, once finished */
	int sys;             /* errno for EAI_SYSTEM */
	struct addrinfo *res; /* owned by the job until the caller takes it */
	char *host;          /* NULL: the local system */
	char *port;
};

static const struct addrinfo tcp_hints = {
	.ai_family = AF_UNSPEC,
	.ai_socktype = SOCK_STREAM,
	.ai_protocol = IPPROTO_TCP,
};

static void job_put(struct job *j)
{
	pthread_mutex_lock(&j->mu);
	bool last = --j->refs == 0;
	pthread_mutex_unlock(&j->mu);
	if (!last)
		return;
	if (j->res)
		freeaddrinfo(j->res);
	pthread_cond_destroy(&j->cv);
	pthread_mutex_destroy(&j->mu);
	ctx__free(j);
}

static void *resolve_main(void *arg)
{
	struct job *j = arg;
	struct addrinfo *res = NULL;
	/* Pairs with the release store in ctx__io_set_getaddrinfo. */
	ctx__io_getaddrinfo_fn fn = atomic_load_explicit(&lookup_hook, memory_order_acquire);
	int r = (fn ? fn : getaddrinfo)(j->host, j->port, &tcp_hints, &res);
	int sys = errno;
	pthread_mutex_lock(&j->mu);
	j->gai = r;
	j->sys = sys;
	j->res = r == 0 ? res : NULL;
	j->finished = true;
	pthread_cond_broadcast(&j->cv);
	pthread_mutex_unlock(&j->mu);
	job_put(j);
	return NULL;
}

static void on_ctx_done(void *arg)
{
	struct job *j = arg;
	pthread_mutex_lock(&j->mu);
	j->ctx_done = true;
	pthread_cond_broadcast(&j->cv);
	pthread_mutex_unlock(&j->mu);
}

static int gai_errno(int gai, int sys)
{
	switch (gai) {
	case 0:
		return 0;
	case EAI_NONAME:
	case EAI_AGAIN:
	case EAI_FAIL:
#ifdef EAI_NODATA
	case EAI_NODATA:
#endif
#ifdef EAI_ADDRFAMILY
	case EAI_ADDRFAMILY:
#endif
		return EHOSTUNREACH;
	case EAI_MEMORY:
		return ENOMEM;
	case EAI_SYSTEM:
		return sys ? sys : EIO;
	default: /* EAI_SERVICE, EAI_FAMILY, EAI_SOCKTYPE, EAI_BADFLAGS */
		return EINVAL;
	}
}

static char *copy_into(char *dst, const char *s, size_t n)
{
	memcpy(dst, s, n);
	dst[n] = '\0';
	return dst;
}

/* Look host:port up on a thread of its own, bounded by ctx. */
static int resolve_bounded(ctx_t *ctx, const char *host, const char *port, struct addrinfo **res)
{
	size_t hl = host ? strlen(host) : 0, pl = strlen(port);
	if (hl > SIZE_MAX / 2 - sizeof(struct job) || pl > SIZE_MAX / 2)
		return EINVAL;
	struct job *j = ctx__alloc(sizeof *j + hl + 1 + pl + 1);
	if (!j)
		return ENOMEM;
	char *strs = (char *)(j + 1);
	j->host = host ? copy_into(strs, host, hl) : NULL;
	j->port = copy_into(strs + hl + 1, port, pl);
	j->refs = 2;
	j->finished = j->ctx_done = false;
	j->gai = j->sys = 0;
	j->res = NULL;
	int e = pthread_mutex_init(&j->mu, NULL);
	if (e) {
		ctx__free(j);
		return e;
	}
	if ((e = pthread_cond_init(&j->cv, NULL)) != 0) {
		pthread_mutex_destroy(&j->mu);
		ctx__free(j);
		return e;
	}
	ctx_after_t *stop;
	if ((e = ctx_after_func(ctx, on_ctx_done, j, &stop)) != 0) {
		j->refs = 1;
		job_put(j);
		return e;
	}
	if ((e = ctx__os_thread_start(resolve_main, j)) != 0) {
		ctx_after_stop(stop);
		j->refs = 1;
		job_put(j);
		return EAGAIN;
	}
	pthread_mutex_lock(&j->mu);
	while (!j->finished && !j->ctx_done)
		pthread_cond_wait(&j->cv, &j->mu);
	if (j->finished) {
		/* A finished lookup wins over a context done meanwhile. */
		e = gai_errno(j->gai, j->sys);
		*res = j->res;
		j->res = NULL;
	} else {
		e = ctx_err(ctx); /* abandoned: the thread frees the job */
	}
	pthread_mutex_unlock(&j->mu);
	ctx_after_stop(stop); /* on_ctx_done no longer runs or has returned */
	job_put(j);
	return e;
}

/* getaddrinfo takes "99999" and keeps its low 16 bits; Go says "invalid
 * port". An empty port is rejected too. */
static bool port_ok(const char *port)
{
	if (!*port)
		return false;
	unsigned long v = 0;
	for (const char *p = port; *p; p++) {
		if (*p < '0' || *p > '9')
			return true; /* a service name: getaddrinfo judges it */
		v = v * 10 + (unsigned long)(*p - '0');
		if (v > 65535)
			return false;
	}
	return true;
}

static int resolve(ctx_t *ctx, const char *host, const char *port, struct addrinfo **res)
{
	if (!port_ok(port))
		return EINVAL;
	struct addrinfo h = tcp_hints;
	h.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	int r = getaddrinfo(host, port, &h, res);
	if (r == 0)
		return 0;
	if (r != EAI_NONAME)
		return gai_errno(r, errno);
	return resolve_bounded(ctx, host, port, res);
}

int ctx_dial_tcp(ctx_t *ctx, const char *host, const char *port, int *fd)
{
	if (!ctx || !host || !port || !fd)
		return EINVAL;
	*fd = -1;
	int e = ctx_err(ctx);
	if (e)
		return e;
	/* Go: an empty host is the local system. */
	struct addrinfo *res = NULL;
	if ((e = resolve(ctx, *host ? host : NULL, port, &res)) != 0)
		return e;
	e = EHOSTUNREACH; /* no address at all */
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		int s = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
		               ai->ai_protocol);
		if (s < 0) {
			e = errno;
			continue;
		}
		e = ctx_connect(ctx, s, ai->ai_addr, ai->ai_addrlen);
		if (!e) {
			int fl = fcntl(s, F_GETFL);
			if (fl >= 0 && fcntl(s, F_SETFL, fl & ~O_NONBLOCK) == 0) {
				*fd = s;
				break;
			}
			e = errno;
		}
		close(s);
		if (e == ENOMEM) /* not the address's fault: the next fares no better */
			break;
		/* The context ended the attempt: no other address gets a try. */
		int ce = ctx_err(ctx);
		if (ce) {
			e = ce;
			break;
		}
		ctx_time_t dl;
		if (ctx_deadline(ctx, &dl) && ctx_now() >= dl) {
			e = ETIMEDOUT;
			break;
		}
	}
	freeaddrinfo(res);
	return e;
}
