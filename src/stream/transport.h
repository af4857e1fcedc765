/* transport.h — what the stream transports (transport.c) and the datagram transports (udp.c)
 * share: the per-thread read buffer data_received borrows, and deferred work that runs from the
 * loop (connection_lost, reading on after a budget or a resume), never inside the call that asked
 * for it. */
#ifndef SIMUL_IO_TRANSPORT_H
#define SIMUL_IO_TRANSPORT_H

#include "../io/io.h"

/* Reads go into one buffer per thread: a callback that gets the data must not suspend, and
 * reads only happen from the loop's dispatch or deferred work, so two reads never overlap. */
#define SIMUL__TP_BUF_SIZE 65536

/* Takes a reference on the thread's read buffer (allocated with the first); NULL if out of
 * memory. Release it once per acquire; the last release frees it. */
char *simul__tp_buf_acquire(void);
void simul__tp_buf_release(void);

/* Work a transport asks the loop to do for it soon. The record is embedded in the transport;
 * while `queued` a loop callback will run it, so it must not be freed (only its own run frees
 * it). */
typedef struct simul__deferred simul__deferred;
struct simul__deferred {
    simul__deferred *next; /* only while waiting for memory to schedule it */
    void (*run)(simul__deferred *d, unsigned bits); /* may free the record */
    uint8_t queued;
    uint8_t bits;
    uint8_t after_poll; /* the pending callback runs after the loop has polled I/O again */
};

/* Adds `bits` to d's pending work; the first deferral schedules one loop callback that runs it
 * with all the bits gathered until then: soon (call_soon, FIFO with everything else), or with
 * after_poll once the loop has polled I/O again (for work that used up a fairness budget).
 * Never fails: if scheduling runs out of memory, the next deferral or transport event tries
 * again. */
void simul__defer(simul__deferred *d, unsigned bits, bool after_poll);
/* Retries scheduling that ran out of memory, if any (one predictable branch otherwise: called
 * from the edge handlers). */
void simul__defer_retry(void);

#endif
