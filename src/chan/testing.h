/* testing.h: internal hooks of src/chan for goctx's own tests (white-box
 * checks). Not installed; link the static library to use them. */
#ifndef GOCTX_CHAN_TESTING_H
#define GOCTX_CHAN_TESTING_H

#include <stdbool.h>
#include <stddef.h>

#include "goctx/chan.h"

/* How many threads are blocked on c (queued as senders or receivers, by
 * chan_send, chan_recv or chan_select) and past their spin: asleep in the
 * platform's wait, or about to be. A test waits for this before it acts, so
 * the act must wake a sleeper rather than meet a thread still on its way. */
size_t chan__sleepers(chan_t *c);

/* Turn the spins before a sleep off (false) or back on (true, the
 * default), for every thread: then every send, receive or select that
 * cannot complete at once queues and sleeps, so a test drives the queue,
 * kick and wake paths that spinning mostly hides. */
void chan__set_spin(bool on);

#endif
