/* stack.h — coroutine stacks: mmap'd in slabs, each with a guard region below it, pooled per
 * size for reuse. A task that runs into its guard dies with a message naming it. */
#ifndef SIMUL_CORO_STACK_H
#define SIMUL_CORO_STACK_H

#include <stdbool.h>
#include <stddef.h>

typedef struct simul__stack_cache simul__stack_cache;

typedef struct simul__stack {
    void *lo;    /* lowest usable byte; the guard is just below */
    size_t size; /* usable bytes */
} simul__stack;

#define SIMUL__STACK_MIN (16u * 1024u)
#define SIMUL__STACK_DEFAULT (64u * 1024u)

/* Rounds a requested size up to whole pages, at least SIMUL__STACK_MIN. 0 on overflow. */
size_t simul__stack_round(size_t size);

int simul__stack_cache_new(simul__stack_cache **out);
void simul__stack_cache_free(simul__stack_cache *c);
/* A stack of `size` bytes (already rounded). Returns 0 or -ENOMEM. */
int simul__stack_get(simul__stack_cache *c, size_t size, simul__stack *out);
/* Gives a stack back. Safe to call while still running on it: nothing is unmapped here. */
void simul__stack_put(simul__stack_cache *c, simul__stack st);
/* Returns the memory of idle stacks beyond a small hot set to the kernel. Must not run on a
 * pooled stack (call it from the loop's own context). */
void simul__stack_cache_trim(simul__stack_cache *c);

/* Installs the process-wide SIGSEGV handler (once) and an alternate signal stack for the
 * calling thread if it has none. Returns 0 or a negative errno. */
int simul__stack_overflow_guard_thread(void **altstack_out);
void simul__stack_overflow_guard_thread_end(void *altstack);

#endif
