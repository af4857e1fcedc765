/* future.c — one-shot results. Awaiting tasks park on the future's wait queue; done callbacks
 * run from the loop (never inside set_result), all of them in one scheduled pass. */
#include "loop.h"

typedef struct fut_cb {
    struct fut_cb *next;
    simul_future_cb fn;
    void *arg;
} fut_cb;

struct simul_future {
    simul_loop *loop;
    bool done;
    int result;
    void *value;
    simul__waitq waiters;
    fut_cb *cbs, *cbs_tail;
    simul_handle run; /* the scheduled pass over the callbacks, if any */
    bool in_callbacks; /* a free from inside a callback is finished when the pass ends */
    bool free_pending;
};

int simul_future_new(simul_future **out)
{
    simul_loop *loop = simul__loop();
    if (!out)
        return -EINVAL;
    if (!loop)
        return -ENXIO;
    simul_future *f = calloc(1, sizeof *f);
    if (!f)
        return -ENOMEM;
    f->loop = loop;
    *out = f;
    return 0;
}

static void run_callbacks(void *arg)
{
    simul_future *f = arg;
    f->run.id = 0;
    /* Take the list first: a callback may add more (they get their own pass) or free f. */
    fut_cb *c = f->cbs;
    f->cbs = f->cbs_tail = NULL;
    f->in_callbacks = true;
    while (c) {
        fut_cb *n = c->next;
        if (!f->free_pending)
            c->fn(f, c->arg);
        free(c);
        c = n;
    }
    f->in_callbacks = false;
    if (f->free_pending)
        simul_future_free(f);
}

static int schedule_callbacks(simul_future *f)
{
    if (f->run.id || !f->cbs)
        return 0;
    return simul__call_soon(f->loop, run_callbacks, f, &f->run);
}

static int complete(simul_future *f, int result, void *value)
{
    if (!f)
        return -EINVAL;
    if (f->done)
        return -EALREADY;
    f->done = true;
    f->result = result;
    f->value = value;
    simul__wait *w;
    while ((w = simul__waitq_pop(&f->waiters))) {
        w->aux = result; /* handed over now: the future may be freed before the task runs */
        w->value = value;
        simul__wake(w, 0);
    }
    schedule_callbacks(f);
    return 0;
}

int simul_future_set_result(simul_future *f, int result, void *value)
{
    simul__debug_check_ptr(value, __func__, "the value");
    return complete(f, result, value);
}

int simul_future_cancel(simul_future *f)
{
    return complete(f, -ECANCELED, NULL);
}

void simul_future_free(simul_future *f)
{
    if (!f)
        return;
    simul__waitq_wake_all(&f->waiters, -ECANCELED);
    if (f->in_callbacks) {
        f->free_pending = true;
        return;
    }
    if (f->run.id)
        simul_handle_cancel(f->run);
    fut_cb *c = f->cbs;
    while (c) {
        fut_cb *n = c->next;
        free(c);
        c = n;
    }
    free(f);
}

int simul_future_await(simul_future *f, int *result, void **value)
{
    simul_task *self = simul__task_require(__func__);
    if (!f)
        return -EINVAL;
    if (!self)
        return -EPERM;
    int rc = simul__task_check(self);
    if (rc < 0)
        return rc;
    if (f->done) {
        if (result)
            *result = f->result;
        if (value)
            *value = f->value;
        return 0;
    }
    SIMUL__REC(simul__wait, w, self);
    if (!w)
        return -ENOMEM;
    *w = (simul__wait){.unlink = simul__waitq_unlink};
    simul__waitq_push(&f->waiters, w);
    rc = simul__park(w, SIMUL__INF);
    if (rc < 0)
        return rc;
    if (result)
        *result = w->aux;
    if (value)
        *value = w->value;
    return 0;
}

bool simul_future_done(const simul_future *f)
{
    return f && f->done;
}

int simul_future_result(const simul_future *f, int *result, void **value)
{
    if (!f)
        return -EINVAL;
    if (!f->done)
        return -EAGAIN;
    if (result)
        *result = f->result;
    if (value)
        *value = f->value;
    return 0;
}

int simul_future_add_done_callback(simul_future *f, simul_future_cb cb, void *arg)
{
    if (!f || !cb)
        return -EINVAL;
    fut_cb *c = malloc(sizeof *c);
    if (!c)
        return -ENOMEM;
    c->next = NULL;
    c->fn = cb;
    c->arg = arg;
    if (f->cbs_tail)
        f->cbs_tail->next = c;
    else
        f->cbs = c;
    f->cbs_tail = c;
    if (f->done)
        return schedule_callbacks(f);
    return 0;
}
