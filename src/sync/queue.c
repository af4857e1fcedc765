/* queue.c — FIFO, LIFO and priority queues of void * between the tasks of one loop (asyncio.Queue
 * with 3.13's shutdown). Items never wait behind a waiter: a put finding a getter hands the item
 * to it, and a get from a full queue moves the first blocked putter's item in, both before the
 * wake, so a cancel landing afterwards can neither lose an item nor enqueue one twice. */
#include "../core/internal.h"

enum { KIND_FIFO, KIND_LIFO, KIND_PRIO };

typedef struct prio_entry {
    void *item;
    uint64_t seq; /* ties between equal items go to the one put first */
} prio_entry;

struct simul_queue {
    int kind;
    size_t maxsize; /* 0: unbounded */
    size_t count;
    /* FIFO/LIFO: a ring of `cap` slots starting at `head`; PRIO: a binary heap in `heap` */
    void **ring;
    size_t head, cap;
    prio_entry *heap;
    uint64_t seq;
    simul_queue_cmp_cb cmp;
    simul__waitq getters; /* non-empty only while the queue is empty */
    simul__waitq putters; /* non-empty only while the queue is full */
    simul__waitq joiners;
    size_t unfinished; /* put and not yet task_done */
    bool shutdown;
};

/* ---- storage --------------------------------------------------------------------------------- */

static bool prio_before(const simul_queue *q, const prio_entry *a, const prio_entry *b)
{
    int c = q->cmp(a->item, b->item);
    return c < 0 || (c == 0 && a->seq < b->seq);
}

/* Makes room for one more item. */
static int store_reserve(simul_queue *q)
{
    if (q->count < q->cap)
        return 0;
    size_t cap = q->cap ? q->cap * 2 : 16;
    if (q->maxsize && cap > q->maxsize)
        cap = q->maxsize;
    size_t elem = q->kind == KIND_PRIO ? sizeof(prio_entry) : sizeof(void *);
    if (cap <= q->count || cap > SIZE_MAX / elem)
        return -ENOMEM;
    if (q->kind == KIND_PRIO) {
        prio_entry *h = realloc(q->heap, cap * elem);
        if (!h)
            return -ENOMEM;
        q->heap = h;
    } else {
        void **r = malloc(cap * elem);
        if (!r)
            return -ENOMEM;
        for (size_t i = 0; i < q->count; i++) { /* unwrap: the ring starts at 0 again */
            size_t j = q->head + i;
            r[i] = q->ring[j < q->cap ? j : j - q->cap];
        }
        free(q->ring);
        q->ring = r;
        q->head = 0;
    }
    q->cap = cap;
    return 0;
}

/* Stores an item; there must be room (store_reserve). */
static void store_push(simul_queue *q, void *item)
{
    if (q->kind != KIND_PRIO) {
        size_t tail = q->head + q->count;
        q->ring[tail < q->cap ? tail : tail - q->cap] = item;
        q->count++;
        return;
    }
    prio_entry e = {item, q->seq++};
    size_t i = q->count++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!prio_before(q, &e, &q->heap[parent]))
            break;
        q->heap[i] = q->heap[parent];
        i = parent;
    }
    q->heap[i] = e;
}

/* Removes the next item; the queue must not be empty. */
static void *store_pop(simul_queue *q)
{
    void *item;
    switch (q->kind) {
    case KIND_FIFO:
        item = q->ring[q->head];
        q->head = q->head + 1 < q->cap ? q->head + 1 : 0;
        q->count--;
        return item;
    case KIND_LIFO: {
        size_t top = q->head + q->count - 1;
        q->count--;
        return q->ring[top < q->cap ? top : top - q->cap];
    }
    default:
        break;
    }
    item = q->heap[0].item;
    prio_entry last = q->heap[--q->count];
    size_t i = 0, n = q->count;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= n)
            break;
        if (child + 1 < n && prio_before(q, &q->heap[child + 1], &q->heap[child]))
            child++;
        if (!prio_before(q, &q->heap[child], &last))
            break;
        q->heap[i] = q->heap[child];
        i = child;
    }
    if (n)
        q->heap[i] = last;
    return item;
}

static bool is_full(const simul_queue *q)
{
    return q->maxsize && q->count >= q->maxsize;
}

/* ---- life cycle ------------------------------------------------------------------------------ */

static int queue_new(simul_queue **out, size_t maxsize, int kind, simul_queue_cmp_cb cmp)
{
    if (!out)
        return -EINVAL;
    simul_queue *q = calloc(1, sizeof *q);
    if (!q)
        return -ENOMEM;
    q->kind = kind;
    q->maxsize = maxsize;
    q->cmp = cmp;
    *out = q;
    return 0;
}

int simul_queue_new(simul_queue **out, size_t maxsize)
{
    return queue_new(out, maxsize, KIND_FIFO, NULL);
}

int simul_lifo_queue_new(simul_queue **out, size_t maxsize)
{
    return queue_new(out, maxsize, KIND_LIFO, NULL);
}

int simul_priority_queue_new(simul_queue **out, size_t maxsize, simul_queue_cmp_cb cmp)
{
    if (!cmp)
        return -EINVAL;
    return queue_new(out, maxsize, KIND_PRIO, cmp);
}

/* Empties the storage, passing each item to `discard` (may be NULL); returns how many. */
static size_t drain(simul_queue *q, simul_queue_discard_cb discard)
{
    size_t n = 0;
    while (q->count) {
        void *item = store_pop(q);
        n++;
        if (discard)
            discard(item);
    }
    return n;
}

void simul_queue_free(simul_queue *q, simul_queue_discard_cb discard)
{
    if (!q)
        return;
    /* Waiters still parked here resume with -ESHUTDOWN and never touch the queue again. */
    simul__waitq_wake_all(&q->getters, -ESHUTDOWN);
    simul__waitq_wake_all(&q->putters, -ESHUTDOWN);
    simul__waitq_wake_all(&q->joiners, -ESHUTDOWN);
    drain(q, discard);
    free(q->ring);
    free(q->heap);
    free(q);
}

/* ---- put and get ----------------------------------------------------------------------------- */

static int put_nowait(simul_queue *q, void *item);

int simul_queue_put_nowait(simul_queue *q, void *item)
{
    simul__debug_check_ptr(item, __func__, "the item");
    return put_nowait(q, item);
}

static int put_nowait(simul_queue *q, void *item)
{
    if (!q)
        return -EINVAL;
    if (q->shutdown)
        return -ESHUTDOWN;
    simul__wait *g = simul__waitq_pop(&q->getters);
    if (g) {
        g->value = item; /* the getter's now, whatever happens to it before it runs */
        q->unfinished++;
        simul__wake(g, 0);
        return 0;
    }
    if (is_full(q))
        return -EAGAIN;
    int rc = store_reserve(q);
    if (rc < 0)
        return rc;
    store_push(q, item);
    q->unfinished++;
    return 0;
}

int simul_queue_get_nowait(simul_queue *q, void **item)
{
    if (!q || !item)
        return -EINVAL;
    if (!q->count)
        return q->shutdown ? -ESHUTDOWN : -EAGAIN;
    *item = store_pop(q);
    simul__wait *p = simul__waitq_pop(&q->putters);
    if (p) {
        store_push(q, p->value); /* the slot just freed: no allocation, cannot fail */
        q->unfinished++;
        simul__wake(p, 0);
    }
    return 0;
}

int simul_queue_put(simul_queue *q, void *item)
{
    simul_task *self = simul__task_require(__func__);
    if (!q)
        return -EINVAL;
    if (!self)
        return -EPERM;
    int rc = simul__task_check(self);
    if (rc < 0)
        return rc;
    simul__debug_check_ptr(item, __func__, "the item");
    rc = put_nowait(q, item);
    if (rc != -EAGAIN)
        return rc;
    SIMUL__REC(simul__wait, w, self);
    if (!w)
        return -ENOMEM;
    *w = (simul__wait){.unlink = simul__waitq_unlink, .value = item};
    simul__waitq_push(&q->putters, w);
    /* 0: a getter moved the item in (and counted it); an error: it was never enqueued. */
    return simul__park(w, SIMUL__INF);
}

int simul_queue_get(simul_queue *q, void **item)
{
    simul_task *self = simul__task_require(__func__);
    if (!q || !item)
        return -EINVAL;
    if (!self)
        return -EPERM;
    int rc = simul__task_check(self);
    if (rc < 0)
        return rc;
    rc = simul_queue_get_nowait(q, item);
    if (rc != -EAGAIN)
        return rc;
    SIMUL__REC(simul__wait, w, self);
    if (!w)
        return -ENOMEM;
    *w = (simul__wait){.unlink = simul__waitq_unlink};
    simul__waitq_push(&q->getters, w);
    rc = simul__park(w, SIMUL__INF);
    if (rc == 0)
        *item = w->value;
    return rc;
}

/* ---- state ----------------------------------------------------------------------------------- */

size_t simul_queue_qsize(const simul_queue *q)
{
    return q ? q->count : 0;
}

size_t simul_queue_maxsize(const simul_queue *q)
{
    return q ? q->maxsize : 0;
}

bool simul_queue_empty(const simul_queue *q)
{
    return !q || q->count == 0;
}

bool simul_queue_full(const simul_queue *q)
{
    return q && is_full(q);
}

/* ---- task_done, join, shutdown --------------------------------------------------------------- */

int simul_queue_task_done(simul_queue *q)
{
    if (!q)
        return -EINVAL;
    if (q->unfinished == 0)
        return -EOVERFLOW;
    if (--q->unfinished == 0)
        simul__waitq_wake_all(&q->joiners, 0);
    return 0;
}

int simul_queue_join(simul_queue *q)
{
    simul_task *self = simul__task_require(__func__);
    if (!q)
        return -EINVAL;
    if (!self)
        return -EPERM;
    int rc = simul__task_check(self);
    if (rc < 0 || q->unfinished == 0)
        return rc;
    return simul__waitq_park(self, &q->joiners);
}

int simul_queue_shutdown(simul_queue *q, bool immediate, simul_queue_discard_cb discard)
{
    if (!q)
        return -EINVAL;
    q->shutdown = true;
    if (immediate) {
        /* Each discarded item counts as done (Python 3.13), which may release join(). */
        size_t n = drain(q, discard);
        q->unfinished = n < q->unfinished ? q->unfinished - n : 0;
        if (q->unfinished == 0)
            simul__waitq_wake_all(&q->joiners, 0);
    }
    /* Getters wait only on an empty queue, so all of them fail now; putters never get in. */
    simul__waitq_wake_all(&q->getters, -ESHUTDOWN);
    simul__waitq_wake_all(&q->putters, -ESHUTDOWN);
    return 0;
}

bool simul_queue_is_shutdown(const simul_queue *q)
{
    return q && q->shutdown;
}
