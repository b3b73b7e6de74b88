/* alloc.c: the allocator every allocation of the library goes through. */
#include <errno.h>
#include <stdlib.h>

#include "internal.h"

/* alloc_fn/free_fn are written only by ctx_set_allocator before `used` is
 * set; once a context exists they never change. The acquire load of `used`
 * in ctx_set_allocator pairs with the release store in ctx__alloc. */
static void *(*alloc_fn)(size_t) = malloc;
static void (*free_fn)(void *) = free;
static atomic_bool used;

int ctx_set_allocator(void *(*alloc)(size_t size), void (*free)(void *ptr))
{
	if (!alloc || !free)
		return EINVAL;
	if (atomic_load_explicit(&used, memory_order_acquire))
		return EBUSY;
	alloc_fn = alloc;
	free_fn = free;
	return 0;
}

void *ctx__alloc(size_t size)
{
	/* Relaxed check first: the store happens once per process. */
	if (!atomic_load_explicit(&used, memory_order_relaxed))
		atomic_store_explicit(&used, true, memory_order_release);
	void *p = alloc_fn(size);
	if (!p)
		errno = ENOMEM;
	return p;
}

void ctx__free(void *ptr)
{
	if (ptr)
		free_fn(ptr);
}
