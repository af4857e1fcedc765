/* runstack.c — compact coroutines: many share one run stack, and only the owner's frames are
 * on it. A switch into another one first copies the owner's live frames [sp, hi) out to its
 * right-sized heap copy and the newcomer's copy back in (the libaco idea). Nothing else moves. */
#include "coro.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define SIMUL_HAVE_MEMCHECK 1
#endif
#endif

#ifdef SIMUL_CORO_COMPACT

/* The copies read and write stack memory that ASan has poisoned (the redzones of the frames
 * being moved) and that TSan sees as another fiber's: the copy must not be instrumented, and
 * must not become a call to the intercepted memcpy either (the empty asm keeps the loop a loop). */
#if defined(SIMUL_ASAN) || defined(SIMUL_TSAN)
__attribute__((no_sanitize("address", "thread"), noinline)) static void
raw_copy(void *dst, const void *src, size_t n)
{
    uint64_t *d = dst;
    const uint64_t *s = src;
    for (size_t i = 0; i < n / 8; i++) {
        d[i] = s[i];
        __asm__ volatile("" ::: "memory");
    }
}
#else
#define raw_copy memcpy
#endif

__attribute__((noreturn)) static void out_of_memory(size_t n)
{
    /* Mid-switch there is nobody to hand an error to. */
    fprintf(stderr, "simul: out of memory saving the %zu-byte stack of a compact task\n", n);
    abort();
}

/* Sizes the copy for n bytes: grown to fit a deeper stack, shrunk when it is far too big, so an
 * idle task holds about what its frames take. A lent copy (save_cap 0) is left to its lender. */
static void save_fit(simul__coro *c, size_t n)
{
    if (n <= c->save_cap && n * 2 >= c->save_cap)
        return;
    size_t cap = (n + 63) & ~(size_t)63;
    if (cap > UINT32_MAX)
        out_of_memory(n);
    void *p = c->save_cap ? realloc(c->save, cap) : malloc(cap); /* 0: lent, not ours */
    if (!p) {
        if (n <= c->save_cap)
            return; /* could not shrink: keep the bigger one */
        out_of_memory(n);
    }
    c->save = p;
    c->save_cap = (uint32_t)cap;
}

#if defined(SIMUL_ASAN) || defined(SIMUL_TSAN)
__attribute__((no_sanitize("address", "thread")))
#endif
void *simul__coro_swap(void *arg)
{
    simul__coro *to = arg;
    simul__runstack *rs = to->shared;
    simul__coro *old = rs->owner;
    if (old) {
        size_t n = (size_t)(rs->hi - (char *)old->sp);
        save_fit(old, n);
        raw_copy(old->save, old->sp, n);
        old->save_len = (uint32_t)n;
    }
#ifdef SIMUL_ASAN
    /* The shadow still describes the evicted frames: clear it, or their redzones would be
     * reported inside the newcomer's frames. (The newcomer's own redzones are lost until its
     * frames are made again: fewer reports, none false.) */
    __asan_unpoison_memory_region(rs->lo, (size_t)(rs->hi - rs->lo));
#endif
#ifdef SIMUL_HAVE_MEMCHECK
    /* Below the run stack's last stack pointer, as memcheck sees it: make it writable. */
    VALGRIND_MAKE_MEM_UNDEFINED((char *)rs->hi - to->save_len, to->save_len);
#endif
    raw_copy((char *)rs->hi - to->save_len, to->save, to->save_len);
    rs->owner = to;
    return to->sp;
}

#endif
