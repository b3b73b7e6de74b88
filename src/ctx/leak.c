/* leak.c: the opt-in report of contexts still alive at exit
 * (GOCTX_LEAKS=1), for finding a missing ctx_release or ctx_cancel.
 *
 * Off (the default), a node is a plain ctx__alloc, through the per-thread
 * cache of cache.c. On, the cache is off and each node is preceded by a `struct track` in one doubly linked list guarded by
 * `lock`, recording the address that called the constructor, and an atexit
 * handler prints what is left. The mode is read from the environment once,
 * before the first node exists, and never changes afterwards, so a node's
 * layout is known when it is freed.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct track {
	struct track *next, *prev;
	const void *where; /* return address into the constructor's caller */
	uintptr_t pad;     /* keeps the node 16-byte aligned, as malloc's */
};

static struct track head = {.next = &head, .prev = &head};
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static bool on;            /* written once, inside `once` */
static atomic_bool settled; /* release after `on` is written; pairs with the acquire below */

static void report(void)
{
	pthread_mutex_lock(&lock);
	size_t n = 0;
	for (struct track *t = head.next; t != &head; t = t->next)
		n++;
	if (n)
		fprintf(stderr, "goctx: %zu context%s still alive at exit (GOCTX_LEAKS):\n", n,
		        n == 1 ? "" : "s");
	for (struct track *t = head.next; t != &head; t = t->next) {
		const struct ctx *c = (const struct ctx *)(t + 1);
		char text[512];
		const struct ctx *shown = c->kind == CTX__AFTER ? c->parent : c;
		if (shown)
			ctx_format(shown, text, sizeof text);
		else
			snprintf(text, sizeof text, "(a context since freed; fn has run)");
		/* object+offset is what addr2line -e object takes, PIE or not. */
		Dl_info info = {0};
		dladdr(t->where, &info);
		const char *obj = info.dli_fname ? strrchr(info.dli_fname, '/') : NULL;
		obj = obj ? obj + 1 : info.dli_fname ? info.dli_fname : "?";
		fprintf(stderr, "  %s%s  refs=%u  created from %s+0x%tx%s%s%s\n",
		        c->kind == CTX__AFTER ? "after-func on " : "", text,
		        (unsigned)atomic_load_explicit(&c->refs, memory_order_relaxed), obj,
		        (const char *)t->where - (const char *)info.dli_fbase,
		        info.dli_sname ? " (in " : "", info.dli_sname ? info.dli_sname : "",
		        info.dli_sname ? ")" : "");
	}
	pthread_mutex_unlock(&lock);
}

static void init(void)
{
	const char *e = getenv("GOCTX_LEAKS");
	on = e && *e && *e != '0';
	if (on)
		atexit(report);
	atomic_store_explicit(&settled, true, memory_order_release);
}

bool ctx__leak_tracking(void)
{
	if (!atomic_load_explicit(&settled, memory_order_acquire))
		pthread_once(&once, init);
	return on;
}

void *ctx__leak_alloc(size_t size, const void *where)
{
	struct track *t = ctx__alloc(sizeof *t + size);
	if (!t)
		return NULL;
	t->where = where;
	pthread_mutex_lock(&lock);
	t->next = &head;
	t->prev = head.prev;
	head.prev->next = t;
	head.prev = t;
	pthread_mutex_unlock(&lock);
	return t + 1;
}

void ctx__leak_free(void *node)
{
	struct track *t = (struct track *)node - 1;
	pthread_mutex_lock(&lock);
	t->prev->next = t->next;
	t->next->prev = t->prev;
	pthread_mutex_unlock(&lock);
	ctx__free(t);
}
