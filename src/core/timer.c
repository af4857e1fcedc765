/* timer.c — a binary min-heap of absolute monotonic deadlines. Entries carry the key, so
 * sifting never touches the timers themselves except to record their new position; a
 * sequence number breaks ties so that equal deadlines fire in the order they were armed. */
#include "internal.h"

static inline bool before(const simul__heap_entry *a, const simul__heap_entry *b)
{
    return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
}

static inline void place(simul__heap *h, uint32_t i, simul__heap_entry e)
{
    h->v[i] = e;
    e.timer->index = i + 1;
}

static void sift_up(simul__heap *h, uint32_t i, simul__heap_entry e)
{
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (!before(&e, &h->v[parent]))
            break;
        place(h, i, h->v[parent]);
        i = parent;
    }
    place(h, i, e);
}

static void sift_down(simul__heap *h, uint32_t i, simul__heap_entry e)
{
    uint32_t n = h->n;
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && before(&h->v[c + 1], &h->v[c]))
            c++;
        if (!before(&h->v[c], &e))
            break;
        place(h, i, h->v[c]);
        i = c;
    }
    place(h, i, e);
}

int simul__heap_arm(simul__heap *h, simul__timer *t, int64_t deadline)
{
    if (t->index)
        simul__heap_disarm(h, t);
    if (h->n == h->cap) {
        uint32_t ncap = h->cap ? h->cap * 2 : 256;
        simul__heap_entry *v = realloc(h->v, (size_t)ncap * sizeof *v);
        if (!v)
            return -ENOMEM;
        h->v = v;
        h->cap = ncap;
    }
    t->deadline = deadline;
    simul__heap_entry e = {.deadline = deadline, .seq = h->seq++, .timer = t};
    sift_up(h, h->n++, e);
    return 0;
}

void simul__heap_disarm(simul__heap *h, simul__timer *t)
{
    if (!t->index)
        return;
    uint32_t i = t->index - 1;
    t->index = 0;
    simul__heap_entry last = h->v[--h->n];
    if (i == h->n)
        return;
    if (i > 0 && before(&last, &h->v[(i - 1) / 2]))
        sift_up(h, i, last);
    else
        sift_down(h, i, last);
}

simul__timer *simul__heap_pop_due(simul__heap *h, int64_t now)
{
    if (!h->n || h->v[0].deadline > now)
        return NULL;
    simul__timer *t = h->v[0].timer;
    t->index = 0;
    simul__heap_entry last = h->v[--h->n];
    if (h->n)
        sift_down(h, 0, last);
    return t;
}

void simul__heap_free(simul__heap *h)
{
    free(h->v);
    h->v = NULL;
    h->n = h->cap = 0;
}

/* ---- wait queues: FIFO, intrusive, O(1) removal ---------------------------------------------- */

void simul__waitq_push(simul__waitq *q, simul__wait *w)
{
    w->q = q;
    w->next = NULL;
    w->prev = q->tail;
    if (q->tail)
        q->tail->next = w;
    else
        q->head = w;
    q->tail = w;
}

void simul__waitq_remove(simul__wait *w)
{
    simul__waitq *q = w->q;
    if (!q)
        return;
    if (w->prev)
        w->prev->next = w->next;
    else
        q->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        q->tail = w->prev;
    w->next = w->prev = NULL;
    w->q = NULL;
}

simul__wait *simul__waitq_pop(simul__waitq *q)
{
    simul__wait *w = q->head;
    if (w)
        simul__waitq_remove(w);
    return w;
}

void simul__waitq_unlink(simul__wait *w)
{
    simul__waitq_remove(w);
}
