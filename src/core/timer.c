/* timer.c — the loop's timers: a pairing heap of absolute monotonic deadlines whose links live
 * in the timer records themselves. No array of entries: an armed timer costs its record and
 * nothing beside it, which is what lets a sleeping task fit in its stack's one page. Arming is
 * O(1); popping the earliest and disarming are O(log n) amortised. */
#include <string.h>

#include "internal.h"

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

int simul__heap_arm(simul__heap *h, simul__timer *t, int64_t deadline)
{
    if (t->armed)
        simul__heap_disarm(h, t);
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

simul__timer *simul__heap_pop_due(simul__heap *h, int64_t now)
{
    simul__timer *t = h->root;
    if (!t || t->deadline > now)
        return NULL;
    h->root = merge_pairs(t->child);
    t->armed = 0;
    h->live--;
    return t;
}

int64_t simul__heap_next(simul__heap *h)
{
    return h->root ? h->root->deadline : SIMUL__INF;
}

void simul__heap_free(simul__heap *h)
{
    h->root = NULL;
    h->live = 0;
}
