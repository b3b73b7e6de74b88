/* cache.c: node allocation, through a per-thread cache of freed nodes.
 *
 * A context node is allocated and freed once per constructor, and malloc's
 * round trip (plus whatever allocator a program installs) was a third of
 * `ctx_with_cancel + cancel + release`. So each thread keeps the nodes it
 * frees, on one singly linked list per node size (class), and its next
 * constructor of that size takes one back: no allocator call, no atomic.
 *
 * Classes: the node types whose size is fixed by their kind (WITHOUT, VALUE,
 * CANCEL, AFTER, TIMER: 24, 48, 64, 72, 96 bytes on 64-bit Linux). EXT and
 * MERGE nodes (sized by their caller) are never cached. A free finds the
 * class from the node's kind, an allocation from the size asked for; both
 * name the same class because each of these kinds is only ever allocated
 * at its own struct's size (ctx.c, after.c). Two kinds of one size (as on
 * some 32-bit targets) share the first class of that size.
 *
 * Invariants (tests/ctx/test_cache.c checks each):
 *  1. Every cached node came from ctx__alloc (the installed allocator) and
 *     goes back through ctx__free (the same allocator's free): the allocator
 *     cannot change once anything was allocated (ctx_set_allocator: EBUSY),
 *     and a cache can only be non-empty after an allocation. So the pair set
 *     with ctx_set_allocator sees every allocation, and after a flush it has
 *     seen the free of every node no longer in use.
 *  2. Flush: ctx_flush_cache() frees the calling thread's cache; a thread's
 *     exit does (pthread key destructor, which also switches the exiting
 *     thread to direct frees, so later destructors that release contexts
 *     leave nothing behind); exit() (or a return from main) does for the
 *     thread calling it (an atexit handler, registered with the key, which
 *     switches that thread to direct frees too). Not flushed: the caches of
 *     threads still running when the process ends, and _exit().
 *  3. Bounded: a thread holds at most CACHE_BYTES of nodes, all classes
 *     together. A free that finds the cache full gives back nodes of other
 *     classes to make room (so the classes in use take the room from the
 *     ones no longer used); when only its own class is left, the freed
 *     node goes straight to the allocator.
 *  4. Owner only: a cache is touched only by its own thread, so it needs no
 *     lock or atomic. A node freed on another thread than the one that
 *     allocated it goes into the freeing thread's cache (a node is freed by
 *     whoever drops the last reference, as before): a producer/consumer pair
 *     just keeps the consumer's cache full and the producer's empty, each
 *     bounded by 3. The reference count's acq_rel release orders every use
 *     of the node before its reuse, as it ordered them before free() before.
 *  5. Threads that never exit do not cache: the library's timer thread
 *     turns its cache off (ctx__cache_off) when it starts, so nodes it frees
 *     reach the allocator at once and no flush needs to reach it.
 *  6. GOCTX_LEAKS=1: no cache at all; every node is tracked (leak.c). The
 *     mode is settled before the first node exists and never changes.
 *  7. fork(): the child's only thread keeps a copy of its cache, valid in
 *     the child (same allocator, copied heap); the other threads' caches are
 *     lost in the child with everything else those threads held.
 *  8. Failure injection: a node taken from the cache makes no allocator
 *     call, so it cannot fail; a test that walks every allocation site (or
 *     counts allocations) flushes first, and then every constructor's node
 *     comes from the allocator again.
 *  9. Under AddressSanitizer a cached node is poisoned but for its link
 *     word (the last), so a use after the last release is still reported;
 *     and a cache that is on is a root
 *     region for LeakSanitizer, so what it holds is not a leak.
 */
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>

#include "internal.h"

#if defined(__SANITIZE_ADDRESS__)
#define CACHE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CACHE_ASAN 1
#endif
#endif
#ifdef CACHE_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/lsan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
/* LeakSanitizer does not scan thread-local storage here: a cache is a root
 * region while it is on, so the nodes it holds are not reported. */
#define ROOT(p, n) __lsan_register_root_region((p), (n))
#define UNROOT(p, n) __lsan_unregister_root_region((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#define ROOT(p, n) ((void)(p), (void)(n))
#define UNROOT(p, n) ((void)(p), (void)(n))
#endif

/* Per thread: 64 KiB, e.g. 1024 cancelable nodes. */
#define CACHE_BYTES (64u * 1024u)

enum { NCLASS = 5 };
#define CACHE_CLASS_OK(T) (sizeof(T) % sizeof(void *) == 0 && sizeof(T) >= sizeof(void *))
_Static_assert(CACHE_CLASS_OK(struct ctx__cnode) && CACHE_CLASS_OK(struct ctx__value) &&
                   CACHE_CLASS_OK(struct ctx__timer) && CACHE_CLASS_OK(struct ctx__after) &&
                   CACHE_CLASS_OK(struct ctx),
               "a cached node's last word holds its link");
#define S0 sizeof(struct ctx__cnode)
#define S1 sizeof(struct ctx__value)
#define S2 sizeof(struct ctx__timer)
#define S3 sizeof(struct ctx__after)
#define S4 sizeof(struct ctx)
static const size_t class_size[NCLASS] = {S0, S1, S2, S3, S4};

/* The class of a node of `size` bytes, or -1: the first class of that size
 * (two kinds of one size share it). A constant expression. */
#define CLASS_OF(size)                                                                     \
	((size) == S0 ? 0 : (size) == S1 ? 1 : (size) == S2 ? 2 : (size) == S3 ? 3 : (size) == S4 ? 4 \
	                                                                                     : -1)

/* Both lookups are one table load: by size in pointer words (every class
 * size is a multiple of a pointer's, at most MAX_WORDS words), and by kind. */
#define MAX_WORDS 16
_Static_assert(S0 <= MAX_WORDS * sizeof(void *) && S1 <= MAX_WORDS * sizeof(void *) &&
                   S2 <= MAX_WORDS * sizeof(void *) && S3 <= MAX_WORDS * sizeof(void *) &&
                   S4 <= MAX_WORDS * sizeof(void *),
               "every class size fits the size table");
#define W(n) CLASS_OF((n) * sizeof(void *))
static const signed char class_by_words[MAX_WORDS + 1] = {
	-1,    W(1),  W(2),  W(3),  W(4),  W(5),  W(6),  W(7),  W(8),
	W(9), W(10), W(11), W(12), W(13), W(14), W(15), W(16),
};
#undef W
static const signed char class_by_kind[CTX__MLINK + 1] = {
	[CTX__ROOT] = -1,
	[CTX__VALUE] = CLASS_OF(S1),
	[CTX__WITHOUT] = CLASS_OF(S4),
	[CTX__CANCEL] = CLASS_OF(S0),
	[CTX__TIMER] = CLASS_OF(S2),
	[CTX__AFTER] = CLASS_OF(S3),
	[CTX__EXT] = -1,   /* sized by the module that makes it */
	[CTX__MERGE] = -1, /* sized by its number of others */
	[CTX__MLINK] = -1, /* inside a MERGE node */
};

static inline int class_of(size_t size)
{
	if (size % sizeof(void *) != 0 || size > MAX_WORDS * sizeof(void *))
		return -1;
	return class_by_words[size / sizeof(void *)];
}

static inline int class_of_kind(unsigned kind)
{
	return kind <= CTX__MLINK ? class_by_kind[kind] : -1;
}

/* A cached node's link to the next one: its last word (each class size is
 * a multiple of a pointer's), which under AddressSanitizer stays unpoisoned
 * (LeakSanitizer skips poisoned words) while the rest, the reference count
 * first, is poisoned. */
static inline void **next_of(void *node, size_t size)
{
	return (void **)((char *)node + size - sizeof(void *));
}

enum { FRESH, ON, OFF };

struct cache {
	void *head[NCLASS]; /* free lists, linked through each node's last word */
	uint32_t bytes;     /* held in all lists; <= CACHE_BYTES */
	uint8_t state;      /* FRESH (not settled yet), ON, OFF (no caching) */
};

/* initial-exec: one %fs-relative access, also in libgoctx.so (which must
 * then be loaded at start-up or fit glibc's spare static TLS: 56 bytes). */
static _Thread_local struct cache tc __attribute__((tls_model("initial-exec")));

static pthread_key_t key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static bool key_ok; /* written inside key_once */

static void flush(struct cache *c)
{
	for (int k = 0; k < NCLASS; k++) {
		void *p = c->head[k];
		while (p) {
			void *next = *next_of(p, class_size[k]);
			ctx__free(p);
			p = next;
		}
		c->head[k] = NULL;
	}
	c->bytes = 0;
}

/* Flush and cache no more on this thread. */
static void turn_off(void)
{
	if (tc.state == ON)
		UNROOT(&tc, sizeof tc);
	tc.state = OFF;
	flush(&tc);
}

static void thread_exit(void *unused)
{
	(void)unused;
	turn_off(); /* a later destructor's frees go straight back */
}

/* exit() runs no key destructor: the thread calling it gives its cache back
 * here instead (so that leak checkers, which do not scan that thread's TLS,
 * find nothing), and frees directly from then on. */
static void process_exit(void) { thread_exit(NULL); }

static void key_init(void)
{
	key_ok = pthread_key_create(&key, thread_exit) == 0;
	if (key_ok)
		atexit(process_exit);
}

/* The first free of a node on this thread: cache from now on if leak
 * tracking is off and the exit flush could be set up. */
static void settle(void)
{
	uint8_t st = OFF;
	if (!ctx__leak_tracking()) {
		pthread_once(&key_once, key_init);
		if (key_ok && pthread_setspecific(key, &tc) == 0)
			st = ON;
	}
	if (st == ON)
		ROOT(&tc, sizeof tc);
	tc.state = st;
}

void *ctx__node_alloc(size_t size, const void *where)
{
	int k = class_of(size);
	if (k >= 0) {
		void *p = tc.head[k];
		if (p) {
			UNPOISON(p, size);
			tc.head[k] = *next_of(p, size);
			tc.bytes -= (uint32_t)size;
			return p;
		}
	}
	/* An empty cache: always so while leak tracking is on. */
	if (ctx__leak_tracking())
		return ctx__leak_alloc(size, where);
	return ctx__alloc(size);
}

/* The cache is full and a node of class k (size bytes) is freed: give back
 * nodes of the other classes, the largest first, until it fits; false if
 * only class k is left (then the node itself goes back). So a class the
 * thread no longer uses drains instead of taking the room for good. */
static bool make_room(int k, size_t size)
{
	while (tc.bytes + size > CACHE_BYTES) {
		int v = -1;
		for (int j = 0; j < NCLASS; j++)
			if (j != k && tc.head[j] && (v < 0 || class_size[j] > class_size[v]))
				v = j;
		if (v < 0)
			return false;
		void *p = tc.head[v];
		tc.head[v] = *next_of(p, class_size[v]);
		tc.bytes -= (uint32_t)class_size[v];
		UNPOISON(p, class_size[v]);
		ctx__free(p);
	}
	return true;
}

static inline void push(void *node, int k)
{
	size_t size = class_size[k];
	*next_of(node, size) = tc.head[k];
	POISON(node, size - sizeof(void *));
	tc.head[k] = node;
	tc.bytes += (uint32_t)size;
}

/* Everything but a push into a cache that is on and has room (k: the
 * node's class, or -1). Out of line, so the fast path stays small. */
__attribute__((noinline)) static void free_slow(void *node, int k)
{
	if (k >= 0) {
		if (tc.state == FRESH)
			settle();
		if (tc.state == ON && make_room(k, class_size[k])) {
			push(node, k);
			return;
		}
	}
	if (ctx__leak_tracking())
		ctx__leak_free(node);
	else
		ctx__free(node);
}

void ctx__node_free(void *node)
{
	int k = class_of_kind(((struct ctx *)node)->kind);
	if (k >= 0 && tc.state == ON && tc.bytes + class_size[k] <= CACHE_BYTES) {
		push(node, k);
		return;
	}
	free_slow(node, k);
}

void ctx__cache_off(void) { turn_off(); }

void ctx_flush_cache(void) { flush(&tc); }

size_t ctx__cache_held(void)
{
	size_t n = 0;
	for (int k = 0; k < NCLASS; k++)
		for (void *p = tc.head[k]; p;) {
			p = *next_of(p, class_size[k]);
			n++;
		}
	return n;
}
