/* linux.c: the platform layer on Linux (futex in os.h, eventfd here). */
#include "os.h"

#if GOCTX_OS_LINUX
#include <signal.h>
#include <sys/eventfd.h>

/* The counter is set near its maximum so that a stray read() by the user
 * (EFD_SEMAPHORE reads take 1) does not make it unreadable again. */
static void put_max(int fd)
{
	uint64_t v = UINT64_MAX - 1;
	ssize_t w;
	do
		w = write(fd, &v, sizeof v);
	while (w < 0 && errno == EINTR);
}

int ctx__os_done_open(ctx__os_done_t *d, bool signalled)
{
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK | EFD_SEMAPHORE);
	if (fd < 0)
		return errno;
	if (signalled)
		put_max(fd);
	d->fd = fd;
	return 0;
}

void ctx__os_done_signal(ctx__os_done_t *d) { put_max(d->fd); }

void ctx__os_done_close(ctx__os_done_t *d)
{
	close(d->fd);
	d->fd = -1;
}
#endif
