/* stack.h — coroutine stacks: mmap'd in slabs, each with a guard region below it, pooled per
 * size for reuse, and given back to the kernel (pages only: mappings and guards stay) once
 * nobody needed them for a whole trim period. A task that runs into its guard dies with a
 * message naming it. */
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
/* Gives back a stack its owner found surplus: it counts as idle for the whole current period,
 * so the next simul__stack_cache_trim returns its pages. Not while running on it. */
void simul__stack_put_surplus(simul__stack_cache *c, simul__stack st);
/* Ends a trim period: the pages of idle stacks that no simul__stack_get needed during the whole
 * period go back to the kernel (MADV_DONTNEED; runs of neighbours in one call), keeping at least
 * a few warm per size; then a new period starts. Must not run on a pooled stack (call it from
 * the loop's own context). */
void simul__stack_cache_trim(simul__stack_cache *c);
/* Whether some idle stack still holds pages that a trim could give back (more than the few
 * kept warm per size): the loop's idle wake-up for the next trim is worth it only then. */
bool simul__stack_cache_has_surplus(const simul__stack_cache *c);

/* What the cache has done (tests read it through simul__loop_trim_stats). */
typedef struct simul__stack_stats {
    size_t slabs;         /* mmap calls for stacks */
    size_t carved;        /* stacks cut fresh from a slab (never used before) */
    size_t idle;          /* stacks in the pools now */
    size_t idle_cold;     /* of which their pages were given back */
    size_t cold_gets;     /* stacks handed out after their pages had been given back */
    size_t released;      /* stacks whose pages were given back, in all */
    size_t madvise_calls; /* MADV_DONTNEED calls that did it */
} simul__stack_stats;
void simul__stack_cache_stats(const simul__stack_cache *c, simul__stack_stats *out);

/* Installs the process-wide SIGSEGV handler (once) and an alternate signal stack for the
 * calling thread if it has none. Returns 0 or a negative errno. */
int simul__stack_overflow_guard_thread(void **altstack_out);
void simul__stack_overflow_guard_thread_end(void *altstack);

#endif
