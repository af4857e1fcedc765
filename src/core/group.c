/* group.c — task groups (structured concurrency): the owner waits for every child, the first
 * child failure cancels its siblings, and a group never outlives its owner's function — an
 * owner that returns without joining has its groups cancelled and reaped on the way out. */
#include "loop.h"

struct simul_group {
    simul_task *owner;
    simul_task *children; /* live children, linked through sib_next/sib_prev */
    size_t live;
    int first_error;
    bool cancelled;
    simul__wait *joiner;
    simul_group *next, *prev; /* the owner's groups */
};

int simul_group_new(simul_group **out)
{
    simul_task *self = simul__task_require(__func__);
    if (!out)
        return -EINVAL;
    if (!self)
        return -EPERM;
    simul_group *g = calloc(1, sizeof *g);
    if (!g)
        return -ENOMEM;
    g->owner = self;
    g->next = self->groups;
    if (self->groups)
        self->groups->prev = g;
    self->groups = g;
    *out = g;
    return 0;
}

int simul_group_spawn(simul_group *g, simul_task_fn fn, void *arg, const simul_task_opts *opts)
{
    if (!g || !fn)
        return -EINVAL;
    if (g->cancelled)
        return -ECANCELED;
    simul_task *t;
    int rc = simul__task_spawn_in(g->owner->loop, &t, fn, arg, opts);
    if (rc < 0)
        return rc;
    t->handle_held = 0; /* the group owns it */
    t->group = g;
    t->sib_prev = NULL;
    t->sib_next = g->children;
    if (g->children)
        g->children->sib_prev = t;
    g->children = t;
    g->live++;
    return 0;
}

int simul_group_cancel(simul_group *g)
{
    if (!g)
        return -EINVAL;
    g->cancelled = true;
    for (simul_task *c = g->children; c; c = c->sib_next)
        simul__task_cancel_internal(c);
    return 0;
}

void simul__group_child_done(simul_task *child)
{
    simul_group *g = child->group;
    child->group = NULL;
    if (child->sib_prev)
        child->sib_prev->sib_next = child->sib_next;
    else
        g->children = child->sib_next;
    if (child->sib_next)
        child->sib_next->sib_prev = child->sib_prev;
    g->live--;
    /* A cancelled child is not a failure (as in asyncio.TaskGroup); any other error is. */
    if (child->result < 0 && child->result != -ECANCELED && !g->first_error) {
        g->first_error = child->result;
        simul_group_cancel(g);
    }
    if (g->live == 0 && g->joiner) {
        simul__wait *w = g->joiner;
        g->joiner = NULL;
        simul__wake(w, 0);
    }
}

static void joiner_unlink(simul__wait *w)
{
    ((simul_group *)w->ctx)->joiner = NULL;
}

static int wait_children(simul_group *g)
{
    while (g->live) {
        SIMUL__REC(simul__wait, w, simul__task_self());
        if (!w)
            return -ENOMEM;
        *w = (simul__wait){.unlink = joiner_unlink, .ctx = g};
        g->joiner = w;
        int rc = simul__park(w, SIMUL__INF);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static void reap(simul_group *g)
{
    simul_scope sh;
    simul_scope_shield(&sh);
    wait_children(g);
    simul_scope_end(&sh);
}

static void group_free(simul_group *g)
{
    simul_task *o = g->owner;
    if (g->prev)
        g->prev->next = g->next;
    else
        o->groups = g->next;
    if (g->next)
        g->next->prev = g->prev;
    free(g);
}

int simul_group_join(simul_group *g, int *first_error)
{
    simul_task *self = simul__task_require(__func__);
    if (!g)
        return -EINVAL;
    if (!self)
        return -EPERM;
    if (g->owner != self)
        return -EINVAL;
    int rc = simul__task_check(self);
    if (rc == 0)
        rc = wait_children(g);
    if (rc < 0) {
        simul_group_cancel(g);
        reap(g);
    }
    if (first_error)
        *first_error = g->first_error;
    group_free(g);
    return rc;
}

void simul__group_reap_owned(simul_task *owner)
{
    while (owner->groups) {
        simul_group *g = owner->groups;
        simul_group_cancel(g);
        reap(g);
        group_free(g);
    }
}
