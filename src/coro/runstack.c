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

__thread unsigned long simul__coro_save_allocs;

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

/* save_cap holds the copy's capacity (a multiple of 64) and, in its low 6 bits, how many saves
 * in a row used at most a quarter of it. */
#define CAP_MASK (~(uint32_t)63)
#define SHRINK_AFTER 16 /* saves in a row that small before the copy halves */

static size_t round64(size_t n)
{
    return (n + 63) & ~(size_t)63;
}

/* Sizes the copy for n bytes. It grows to fit (by half again at least: a task that alternates
 * a deep and a shallow suspension point reallocates once, not at every change) and shrinks only
 * after SHRINK_AFTER saves in a row that used a quarter of it or less, by half at a time, so an
 * idle task holds about what its frames take but a swing in depth costs nothing. A lent copy
 * (save_cap 0) is left to its lender; the first copy of its own fits exactly. */
__attribute__((noinline)) static void save_resize(simul__coro *c, size_t n)
{
    size_t cap = c->save_cap & CAP_MASK, small = c->save_cap & ~CAP_MASK;
    size_t want;
    if (cap && n <= cap) {
        if (++small < SHRINK_AFTER) {
            c->save_cap = (uint32_t)(cap | small);
            return;
        }
        want = round64(cap / 2 > n ? cap / 2 : n);
    } else {
        want = round64(n);
        if (cap && want < round64(cap + cap / 2))
            want = round64(cap + cap / 2);
    }
    if (want > (UINT32_MAX & CAP_MASK))
        out_of_memory(n);
    void *p = cap ? realloc(c->save, want) : malloc(want); /* 0: lent, not ours */
    if (!p) {
        if (n <= cap) {
            c->save_cap = (uint32_t)cap; /* could not shrink: keep the bigger one */
            return;
        }
        out_of_memory(n);
    }
    simul__coro_save_allocs++;
    c->save = p;
    c->save_cap = (uint32_t)want;
}

/* The switch's usual case inline: the copy fits and is not far too big. The rest out of line,
 * so the switch keeps its registers. */
static inline void save_fit(simul__coro *c, size_t n)
{
    uint32_t sc = c->save_cap;
    size_t cap = sc & CAP_MASK;
    if (__builtin_expect(n <= cap && n * 4 > cap, 1)) {
        if (sc != cap)
            c->save_cap = (uint32_t)cap; /* a streak of small saves is broken */
        return;
    }
    save_resize(c, n);
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
