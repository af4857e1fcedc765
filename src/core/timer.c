/* timer.c — the loop's timers, in two heaps ordered the same way (deadline, then arming order).
 * A task's timer (sleeps, deadlines) sits in a pairing heap whose links live in the timer record
 * itself, that is in the task's record at the top of its stack: a sleeping task costs that one
 * page and nothing beside it. Callback timers (call_later) sit in a 4-ary array heap laid out so
 * that the four children of a node fill one 64-byte line: many timers with scattered deadlines
 * pop far faster from it than from linked nodes. Disarming is lazy there (see
 * simul__heap_entry), immediate in the pairing heap. */
#include <string.h>

#include "internal.h"

/* ---- callback timers: the array heap ------------------------------------------------------- */

#define D 4
#define OFFSET 3 /* v[0] sits at mem[3]: children 4i+1..4i+4 land at mem[4i+4..4i+7] */

static inline bool e_before(const simul__heap_entry *a, const simul__heap_entry *b)
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
        if (!e_before(&e, &v[parent]))
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
            if (e_before(&v[k], &v[best]))
                best = k;
        if (!e_before(&v[best], &e))
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
static void arr_compact(simul__heap *h)
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

static int arr_arm(simul__heap *h, simul__timer *t, int64_t deadline)
{
    if (h->n == h->cap) {
        if (h->n - h->arr_live > h->n / 2)
            arr_compact(h);
        if (h->n == h->cap && grow(h) < 0)
            return -ENOMEM;
    }
    t->deadline = deadline;
    t->seq = h->seq++;
    t->armed = 1;
    h->arr_live++;
    sift_up(h->v, h->n++, (simul__heap_entry){deadline, t});
    return 0;
}

static void arr_disarm(simul__heap *h)
{
    if (h->n > 1024 && h->n - h->arr_live > h->n / 2 + h->n / 4)
        arr_compact(h);
}

__attribute__((noinline)) static void clean_top_slow(simul__heap *h)
{
    while (h->n && !entry_live(&h->v[0]))
        remove_top(h);
}

/* Pops stale entries off the top so that v[0], if any, is live. The check inline, the popping
 * (rare: a cancelled callback's entry surfacing) out of line. */
static inline void clean_top(simul__heap *h)
{
    if (h->n && !entry_live(&h->v[0]))
        clean_top_slow(h);
}

/* ---- task timers: the pairing heap -------------------------------------------------------- */

/* Ties run in the order they were armed. */
static inline bool before(const simul__timer *a, const simul__timer *b)
{
    return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
}

/* Two roots (next and prev unset) into one: the later becomes the first child of the earlier. */
static inline simul__timer *meld(simul__timer *a, simul__timer *b)
{
    if (before(b, a)) {
        simul__timer *x = a;
        a = b;
        b = x;
    }
    b->prev = a;
    b->next = a->child;
    if (a->child)
        a->child->prev = b;
    a->child = b;
    return a;
}

/* The children list starting at `first` into one root: the classic two passes (pairs left to
 * right, then the pairs right to left), iterative so that a long list costs no stack. */
static simul__timer *merge_pairs(simul__timer *first)
{
    if (!first)
        return NULL;
    simul__timer *pairs = NULL; /* a stack of melded pairs, linked through next */
    while (first) {
        simul__timer *a = first, *b = a->next;
        a->prev = NULL;
        if (!b) {
            a->next = pairs;
            pairs = a;
            break;
        }
        first = b->next;
        a->next = NULL;
        b->next = b->prev = NULL;
        a = meld(a, b);
        a->next = pairs;
        pairs = a;
    }
    simul__timer *root = pairs;
    pairs = pairs->next;
    root->next = NULL;
    while (pairs) {
        simul__timer *n = pairs->next;
        pairs->next = NULL;
        root = meld(root, pairs);
        pairs = n;
    }
    root->prev = NULL;
    return root;
}

static void pair_disarm(simul__heap *h, simul__timer *t)
{
    if (t == h->root) {
        h->root = merge_pairs(t->child);
        return;
    }
    /* prev is the previous sibling, or the parent for a first child. */
    if (t->prev->child == t)
        t->prev->child = t->next;
    else
        t->prev->next = t->next;
    if (t->next)
        t->next->prev = t->prev;
    simul__timer *sub = merge_pairs(t->child);
    if (sub)
        h->root = meld(h->root, sub);
}

/* ---- both ---------------------------------------------------------------------------------- */

int simul__heap_arm(simul__heap *h, simul__timer *t, int64_t deadline)
{
    if (t->armed)
        simul__heap_disarm(h, t);
    if (t->kind != SIMUL__TIMER_TASK) {
        if (arr_arm(h, t, deadline) < 0)
            return -ENOMEM;
        h->live++;
        return 0;
    }
    t->deadline = deadline;
    t->seq = h->seq++;
    t->armed = 1;
    t->child = t->next = t->prev = NULL;
    h->live++;
    h->root = h->root ? meld(h->root, t) : t;
    return 0;
}

void simul__heap_disarm(simul__heap *h, simul__timer *t)
{
    if (!t->armed)
        return;
    t->armed = 0;
    h->live--;
    if (t->kind != SIMUL__TIMER_TASK) {
        h->arr_live--;
        arr_disarm(h);
    } else {
        pair_disarm(h, t);
    }
}

/* One pass over both tops, no more: the array's top is made live (inline check), and the
 * comparison that picks the earlier also says which heap to take it from, so a loop with one
 * kind of timer armed pays for the other only a NULL or zero test (bench/run_core_instr.sh:
 * instr_later, instr_sleep). Ties go to the callback timer unless the task timer was armed
 * first, as (deadline, seq) orders them. */
simul__timer *simul__heap_pop_due(simul__heap *h, int64_t now)
{
    clean_top(h);
    simul__timer *p = h->root;
    if (h->n) {
        simul__timer *a = h->v[0].timer;
        if (!p || !before(p, a)) {
            if (h->v[0].deadline > now) /* live: the entry's deadline is its timer's */
                return NULL;
            remove_top(h);
            h->arr_live--;
            a->armed = 0;
            h->live--;
            return a;
        }
    } else if (!p) {
        return NULL;
    }
    if (p->deadline > now)
        return NULL;
    h->root = merge_pairs(p->child);
    p->armed = 0;
    h->live--;
    return p;
}

int64_t simul__heap_next(simul__heap *h)
{
    clean_top(h);
    simul__timer *p = h->root;
    if (h->n) {
        int64_t d = h->v[0].deadline;
        return p && p->deadline < d ? p->deadline : d;
    }
    return p ? p->deadline : SIMUL__INF;
}

void simul__heap_free(simul__heap *h)
{
    free(h->mem);
    h->mem = h->v = NULL;
    h->n = h->cap = h->live = h->arr_live = 0;
    h->root = NULL;
}
