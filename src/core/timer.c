/* timer.c — a 4-ary min-heap of absolute monotonic deadlines, laid out so that the four
 * children of a node fill one 64-byte line (one cache miss a level, ten levels for a million
 * timers). Disarming is lazy; see simul__heap_entry. */
#include <string.h>

#include "internal.h"

#define D 4
#define OFFSET 3 /* v[0] sits at mem[3]: children 4i+1..4i+4 land at mem[4i+4..4i+7] */

static inline bool before(const simul__heap_entry *a, const simul__heap_entry *b)
{
    return a->deadline < b->deadline ||
           (a->deadline == b->deadline && a->timer->seq < b->timer->seq);
}

static inline bool entry_live(const simul__heap_entry *e)
{
    return e->timer->armed && e->timer->deadline == e->deadline;
}

static void sift_up(simul__heap_entry *v, uint32_t i, simul__heap_entry e)
{
    while (i > 0) {
        uint32_t parent = (i - 1) / D;
        if (!before(&e, &v[parent]))
            break;
        v[i] = v[parent];
        i = parent;
    }
    v[i] = e;
}

static void sift_down(simul__heap_entry *v, uint32_t n, uint32_t i, simul__heap_entry e)
{
    for (;;) {
        uint32_t c = D * i + 1;
        if (c >= n)
            break;
        uint32_t end = c + D < n ? c + D : n, best = c;
        for (uint32_t k = c + 1; k < end; k++)
            if (before(&v[k], &v[best]))
                best = k;
        if (!before(&v[best], &e))
            break;
        v[i] = v[best];
        i = best;
    }
    v[i] = e;
}

static void remove_top(simul__heap *h)
{
    simul__heap_entry last = h->v[--h->n];
    if (h->n)
        sift_down(h->v, h->n, 0, last);
}

/* Drops stale entries and rebuilds the heap in O(n). */
void simul__heap_compact(simul__heap *h)
{
    uint32_t m = 0;
    for (uint32_t i = 0; i < h->n; i++)
        if (entry_live(&h->v[i]))
            h->v[m++] = h->v[i];
    h->n = m;
    if (m > 1)
        for (uint32_t i = (m - 2) / D + 1; i-- > 0;)
            sift_down(h->v, m, i, h->v[i]);
}

static int grow(simul__heap *h)
{
    uint32_t ncap = h->cap ? h->cap * 2 : 1024;
    size_t bytes = ((size_t)ncap + OFFSET) * sizeof(simul__heap_entry);
    simul__heap_entry *mem = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    if (!mem)
        return -ENOMEM;
    if (h->n)
        memcpy(mem + OFFSET, h->v, (size_t)h->n * sizeof *mem);
    free(h->mem);
    h->mem = mem;
    h->v = mem + OFFSET;
    h->cap = ncap;
    return 0;
}

int simul__heap_arm(simul__heap *h, simul__timer *t, int64_t deadline)
{
    if (t->armed)
        simul__heap_disarm(h, t);
    if (h->n == h->cap) {
        if (h->n - h->live > h->n / 2)
            simul__heap_compact(h);
        if (h->n == h->cap && grow(h) < 0)
            return -ENOMEM;
    }
    t->deadline = deadline;
    t->seq = h->seq++;
    t->armed = 1;
    h->live++;
    sift_up(h->v, h->n++, (simul__heap_entry){deadline, t});
    return 0;
}

void simul__heap_disarm(simul__heap *h, simul__timer *t)
{
    if (!t->armed)
        return;
    t->armed = 0;
    h->live--;
    if (h->n > 1024 && h->n - h->live > h->n / 2 + h->n / 4)
        simul__heap_compact(h);
}

/* Pops stale entries off the top so that v[0], if any, is live. */
static void clean_top(simul__heap *h)
{
    while (h->n && !entry_live(&h->v[0]))
        remove_top(h);
}

simul__timer *simul__heap_pop_due(simul__heap *h, int64_t now)
{
    clean_top(h);
    if (!h->n || h->v[0].deadline > now)
        return NULL;
    simul__timer *t = h->v[0].timer;
    remove_top(h);
    t->armed = 0;
    h->live--;
    return t;
}

int64_t simul__heap_next(simul__heap *h)
{
    clean_top(h);
    return h->n ? h->v[0].deadline : SIMUL__INF;
}

void simul__heap_free(simul__heap *h)
{
    free(h->mem);
    h->mem = h->v = NULL;
    h->n = h->cap = h->live = 0;
}
