/* testing.h: hooks of src/io for goctx's own tests. Not installed. */
#ifndef GOCTX_IO_TESTING_H
#define GOCTX_IO_TESTING_H

#include <netdb.h>

/* Replace the getaddrinfo that ctx_dial_tcp's resolver thread calls (NULL:
 * the real one again). The replacement's result is freed with
 * freeaddrinfo. The numeric conversion in the caller's thread is not
 * affected. */
typedef int (*ctx__io_getaddrinfo_fn)(const char *, const char *, const struct addrinfo *,
                                      struct addrinfo **);
void ctx__io_set_getaddrinfo(ctx__io_getaddrinfo_fn fn);

#endif
