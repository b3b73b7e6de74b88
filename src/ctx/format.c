/* format.c: Go's String() form of a context, and error words. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#if !defined(__linux__) && defined(ELAST)
/* FreeBSD, macOS: NOT COMPILED OR TESTED HERE. strerror may share one buffer
 * between threads; strerror_r fills a table of every number once. */
static char words[ELAST + 1][96];
static pthread_once_t words_once = PTHREAD_ONCE_INIT;

static void fill_words(void)
{
	for (int i = 0; i <= ELAST; i++)
		if (strerror_r(i, words[i], sizeof words[i]) != 0)
			words[i][0] = 0;
}
#endif

/* libc's words for err as a static, thread-safe string, or NULL for a
 * number libc does not know. */
static const char *libc_words(int err)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
	/* strerrordesc_np is thread-safe and static, unlike strerror. */
	return strerrordesc_np(err);
#elif defined(__linux__) && !defined(__GLIBC__)
	/* musl: strerror is thread-safe and always static ("No error
	 * information" for numbers it does not know). */
	return strerror(err);
#elif defined(ELAST)
	if (err < 0 || err > ELAST)
		return NULL;
	pthread_once(&words_once, fill_words);
	return words[err][0] ? words[err] : NULL;
#else
	(void)err;
	return NULL; /* no thread-safe static text known here: the number only */
#endif
}

/* libc's name of a signal as a static, thread-safe string, or NULL. */
static const char *libc_signal_words(int sig)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
	return sigdescr_np(sig); /* thread-safe and static, unlike strsignal */
#elif defined(__linux__) && !defined(__GLIBC__)
	return strsignal(sig); /* musl: static strings, thread-safe */
#else
	(void)sig;
	return NULL; /* BSD/macOS: strsignal may share a buffer; the number only */
#endif
}

/* Go 1.26's cause of a signal context: strsignal's words with a lower-case
 * first letter, then " signal received". The result lives in a buffer
 * of this thread's. */
static const char *signal_words(int sig)
{
	static _Thread_local char words[96];
	const char *d = libc_signal_words(sig);
	if (!d) {
		snprintf(words, sizeof words, "signal %d signal received", sig);
		return words;
	}
	snprintf(words, sizeof words, "%s signal received", d);
	if (words[0] >= 'A' && words[0] <= 'Z')
		words[0] = (char)(words[0] - 'A' + 'a');
	return words;
}

const char *ctx_strerror(int err)
{
	switch (err) {
	case ECANCELED:
		return "context canceled";
	case ETIMEDOUT:
		return "context deadline exceeded";
	default: {
		if ((err & ~0xff) == CTX__CAUSE_SIGNAL_BIT && (err & 0xff) > 0 && (err & 0xff) < NSIG)
			return signal_words(err & 0xff);
		/* A number libc does not know gets strerror's words, in a buffer
		 * of this thread's. */
		const char *s = libc_words(err);
		if (s)
			return s;
		static _Thread_local char unknown[32];
		snprintf(unknown, sizeof unknown, "Unknown error %d", err);
		return unknown;
	}
	}
}

/* An snprintf that appends at *len and keeps counting past the end. */
struct out {
	char *buf;
	size_t size;
	size_t len;
};

__attribute__((format(printf, 2, 3))) static void put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *dst = o->len < o->size ? o->buf + o->len : NULL;
	size_t room = o->len < o->size ? o->size - o->len : 0;
	int n = vsnprintf(dst, room, fmt, ap);
	va_end(ap);
	if (n > 0)
		o->len += (size_t)n;
}

/* Go's time.Duration.String(): "1h2m3.5s", "150ms", "1.5µs", "0s". */
static void put_duration(struct out *o, ctx_duration_t d)
{
	char tmp[48];
	char *p = tmp + sizeof tmp;
	*--p = 0;
	uint64_t u = d < 0 ? -(uint64_t)d : (uint64_t)d;
	if (u < (uint64_t)CTX_SECOND) {
		/* Below a second: ns, µs or ms with a fraction. */
		int prec;
		const char *unit;
		if (u == 0) {
			put(o, "0s");
			return;
		} else if (u < (uint64_t)CTX_MICROSECOND) {
			prec = 0, unit = "ns";
		} else if (u < (uint64_t)CTX_MILLISECOND) {
			prec = 3, unit = "µs";
		} else {
			prec = 6, unit = "ms";
		}
		p -= strlen(unit);
		memcpy(p, unit, strlen(unit));
		bool print = false;
		for (int i = 0; i < prec; i++) {
			int digit = (int)(u % 10);
			print = print || digit != 0;
			if (print)
				*--p = (char)('0' + digit);
			u /= 10;
		}
		if (print)
			*--p = '.';
		do {
			*--p = (char)('0' + u % 10);
			u /= 10;
		} while (u);
	} else {
		*--p = 's';
		bool print = false;
		for (int i = 0; i < 9; i++) {
			int digit = (int)(u % 10);
			print = print || digit != 0;
			if (print)
				*--p = (char)('0' + digit);
			u /= 10;
		}
		if (print)
			*--p = '.';
		uint64_t secs = u % 60, mins = u / 60 % 60, hours = u / 3600;
		do {
			*--p = (char)('0' + secs % 10);
			secs /= 10;
		} while (secs);
		if (mins || hours) {
			*--p = 'm';
			do {
				*--p = (char)('0' + mins % 10);
				mins /= 10;
			} while (mins);
			if (hours) {
				*--p = 'h';
				do {
					*--p = (char)('0' + hours % 10);
					hours /= 10;
				} while (hours);
			}
		}
	}
	if (d < 0)
		*--p = '-';
	put(o, "%s", p);
}

/* A monotonic deadline as Go prints a time.Time with a monotonic reading:
 * the wall clock in UTC, then m=+<seconds since the clock's origin>. */
static void put_deadline(struct out *o, ctx_time_t d)
{
	ctx_time_t now = ctx_now();
	ctx_time_t w = ctx__add_sat(ctx__wall_now(), ctx__add_sat(d, -now));
	time_t secs = (time_t)(w / CTX_SECOND);
	long ns = (long)(w % CTX_SECOND);
	if (ns < 0)
		ns += CTX_SECOND, secs--;
	struct tm tm;
	gmtime_r(&secs, &tm);
	put(o, "%04d-%02d-%02d %02d:%02d:%02d.%09ld +0000 UTC m=%c%lld.%09lld [",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ns,
	    d < 0 ? '-' : '+', (long long)((d < 0 ? -(d / CTX_SECOND) : d / CTX_SECOND)),
	    (long long)((d < 0 ? -(d % CTX_SECOND) : d % CTX_SECOND)));
	put_duration(o, ctx__add_sat(d, -now));
	put(o, "]");
}

/* One layer's own part of the text. */
static void put_layer(struct out *o, const struct ctx *c)
{
	switch (c->kind) {
	case CTX__ROOT:
		put(o, c->todo ? "context.TODO" : "context.Background");
		break;
	case CTX__CANCEL:
		put(o, ".WithCancel");
		break;
	case CTX__TIMER:
		put(o, ".WithDeadline(");
		put_deadline(o, ((const struct ctx__timer *)c)->deadline);
		put(o, ")");
		break;
	case CTX__VALUE: {
		const struct ctx__value *v = (const struct ctx__value *)c;
		put(o, ".WithValue(%p, ", v->key);
		if (v->val)
			put(o, "%p)", v->val);
		else
			put(o, "<nil>)");
		break;
	}
	case CTX__WITHOUT:
		put(o, ".WithoutCancel");
		break;
	case CTX__MERGE:
		put(o, ".WithMerge(%zu)", ((const struct ctx__merge *)c)->n);
		break;
	case CTX__EXT: {
		const struct ctx__ext *e = (const struct ctx__ext *)c;
		char tmp[256];
		e->ops->format(e, tmp, sizeof tmp);
		put(o, "%s", tmp);
		break;
	}
	default:
		break;
	}
}

int ctx_format(const ctx_t *ctx, char *buf, size_t size)
{
	struct out o = {.buf = buf, .size = buf ? size : 0, .len = 0};
	if (o.size)
		buf[0] = 0;
	if (!ctx) {
		put(&o, "<nil>");
		return (int)o.len;
	}
	/* Root first. Layers are found by walking up from the leaf, a small
	 * batch at a time, so any depth works without recursion or allocation
	 * (deep chains cost depth^2 / 32 steps: formatting is not a hot path). */
	size_t depth = 0;
	for (const struct ctx *c = ctx; c; c = c->parent)
		depth++;
	const struct ctx *batch[32];
	while (depth) {
		size_t take = depth < 32 ? depth : 32;
		const struct ctx *c = ctx;
		for (size_t i = 0; i < depth - take; i++)
			c = c->parent;
		for (size_t i = take; i-- > 0; c = c->parent)
			batch[i] = c;
		for (size_t i = 0; i < take; i++)
			put_layer(&o, batch[i]);
		depth -= take;
	}
	return (int)o.len;
}
