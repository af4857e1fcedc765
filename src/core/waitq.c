/* waitq.c — the one wait-list primitive: a FIFO of parked tasks' wait records, intrusive, with
 * O(1) removal. Every waiter in every layer (locks, queues, futures, fds, streams, servers,
 * processes) parks on one of these, so cancellation and deadlines unlink them all the same way. */
#include "internal.h"

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

int simul__waitq_park(simul_task *t, simul__waitq *q)
{
    int rc = simul__task_check(t);
    if (rc < 0)
        return rc;
    SIMUL__REC(simul__wait, w, t);
    if (!w)
        return -ENOMEM;
    *w = (simul__wait){.unlink = simul__waitq_unlink};
    simul__waitq_push(q, w);
    return simul__park(w, SIMUL__INF);
}

void simul__waitq_wake_all(simul__waitq *q, int result)
{
    simul__wait *w;
    while ((w = simul__waitq_pop(q)))
        simul__wake(w, result);
}
