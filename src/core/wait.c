/* wait.c — waiting on many tasks: gather, wait, wait_for, as_completed. Each registers a
 * watch on the tasks it waits for and parks once; an interrupted gather or wait_for cancels
 * what it started waiting on and reaps it under a shield, so nothing is left running. */
#include <limits.h>
#include <string.h>

#include "internal.h"

#define STACK_WATCHES 16

/* Waits, shielded from cancellation and outer deadlines, until every task is done. */
static void reap_shielded(simul_task **tasks, size_t n)
{
    simul_scope sh;
    simul_scope_shield(&sh);
    for (size_t i = 0; i < n; i++)
        while (tasks[i]->state != SIMUL__TASK_DONE)
            simul__task_wait_done(tasks[i]);
    simul_scope_end(&sh);
}

static int check_handles(simul_task **tasks, size_t n, const char *call)
{
    if (n && !tasks)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!simul__task_handle_usable(tasks[i], call))
            return -EINVAL;
    return 0;
}

/* ---- a count-down over many tasks ----------------------------------------------------------- */

typedef struct multi {
    simul__watch *watches;
    size_t n;
    size_t pending; /* tasks not yet done */
    bool any_failed;
    int mode;       /* simul_return_when */
    simul__wait *waiter;
} multi;

static bool satisfied(const multi *m)
{
    if (m->pending == 0)
        return true;
    if (m->mode == SIMUL_FIRST_COMPLETED)
        return m->pending < m->n;
    if (m->mode == SIMUL_FIRST_EXCEPTION)
        return m->any_failed;
    return false;
}

static void multi_detach(multi *m)
{
    for (size_t i = 0; i < m->n; i++)
        simul__watch_remove(&m->watches[i]);
}

static void multi_notify(simul__watch *w, simul_task *done)
{
    multi *m = w->ctx;
    m->pending--;
    if (done->result < 0)
        m->any_failed = true;
    if (m->waiter && satisfied(m)) {
        simul__wait *waiter = m->waiter;
        m->waiter = NULL;
        multi_detach(m);
        simul__wake(waiter, 0);
    }
}

static void multi_unlink(simul__wait *w)
{
    multi *m = w->ctx;
    m->waiter = NULL;
    multi_detach(m);
}

/* Parks until `m` is satisfied, `wake_at` passes (returns 0) or the task is interrupted. */
static int multi_wait_in(multi *m, simul_task **tasks, simul__watch *stack_watches,
                         int64_t wake_at);

static int multi_wait(multi *mine, simul_task **tasks, simul__watch *stack_watches,
                      int64_t wake_at)
{
    simul_task *self = simul__task_self();
    /* The watches and the count are what finishing tasks write: off a compact task's stack. */
    SIMUL__REC(multi, m, self);
    if (!m)
        return -ENOMEM;
    *m = *mine;
    int rc = multi_wait_in(m, tasks, self && self->compact ? NULL : stack_watches, wake_at);
    *mine = *m;
    return rc;
}

static int multi_wait_in(multi *m, simul_task **tasks, simul__watch *stack_watches,
                         int64_t wake_at)
{
    m->watches = m->n <= STACK_WATCHES && stack_watches ? stack_watches : calloc(m->n, sizeof *m->watches);
    if (!m->watches)
        return -ENOMEM;
    m->pending = 0;
    for (size_t i = 0; i < m->n; i++) {
        m->watches[i].task = NULL;
        if (tasks[i]->state == SIMUL__TASK_DONE) {
            if (tasks[i]->result < 0)
                m->any_failed = true;
        } else {
            m->pending++;
            simul__watch_add(tasks[i], &m->watches[i], multi_notify, m);
        }
    }
    int rc = 0;
    if (!satisfied(m)) {
        SIMUL__REC(simul__wait, w, simul__task_self());
        if (!w) {
            multi_detach(m);
            if (m->watches != stack_watches)
                free(m->watches);
            return -ENOMEM;
        }
        *w = (simul__wait){.unlink = multi_unlink, .ctx = m};
        m->waiter = w;
        rc = simul__park(w, wake_at);
    }
    multi_detach(m);
    if (m->watches != stack_watches)
        free(m->watches);
    return rc;
}

int simul_gather(simul_task **tasks, size_t n, int *results)
{
    simul_task *self = simul__task_require(__func__);
    int rc = check_handles(tasks, n, __func__);
    if (rc < 0)
        return rc;
    if (n > INT_MAX)
        return -EINVAL;
    if (!self)
        return -EPERM;
    for (size_t i = 0; i < n; i++)
        if (tasks[i] == self)
            return -EDEADLK;
    /* The same handle twice would be joined twice. */
    int dup = 0;
    for (size_t i = 0; i < n; i++) {
        dup |= tasks[i]->mark;
        tasks[i]->mark = 1;
    }
    for (size_t i = 0; i < n; i++)
        tasks[i]->mark = 0;
    if (dup)
        return -EINVAL;

    rc = simul__task_check(self);
    if (rc == 0) {
        simul__watch sw[STACK_WATCHES];
        multi m = {.n = n, .mode = SIMUL_ALL_COMPLETED};
        rc = multi_wait(&m, tasks, sw, SIMUL__INF);
    }
    if (rc < 0 && rc != -ENOMEM) {
        for (size_t i = 0; i < n; i++)
            simul__task_cancel_internal(tasks[i]);
    }
    if (rc < 0)
        reap_shielded(tasks, n);
    int failed = 0;
    for (size_t i = 0; i < n; i++) {
        if (results)
            results[i] = tasks[i]->result;
        if (tasks[i]->result < 0)
            failed++;
        simul__task_release_handle(tasks[i]);
    }
    return rc < 0 ? rc : failed;
}

int simul_wait(simul_task **tasks, size_t n, int return_when, double timeout)
{
    simul_task *self = simul__task_require(__func__);
    int rc = check_handles(tasks, n, __func__);
    if (rc < 0)
        return rc;
    if (return_when < SIMUL_ALL_COMPLETED || return_when > SIMUL_FIRST_EXCEPTION)
        return -EINVAL;
    if (timeout != timeout || timeout < 0)
        return -EINVAL;
    if (!self)
        return -EPERM;
    rc = simul__task_check(self);
    if (rc < 0)
        return rc;
    int64_t wake_at = simul__deadline_after(timeout);
    simul__watch sw[STACK_WATCHES];
    multi m = {.n = n, .mode = return_when};
    rc = multi_wait(&m, tasks, sw, wake_at);
    if (rc < 0)
        return rc;
    int done = 0;
    for (size_t i = 0; i < n; i++)
        done += tasks[i]->state == SIMUL__TASK_DONE;
    return done;
}

int simul_wait_for(simul_task *t, double timeout, int *result)
{
    simul_task *self = simul__task_require(__func__);
    if (!simul__task_handle_usable(t, __func__) || timeout != timeout || timeout < 0)
        return -EINVAL;
    if (!self)
        return -EPERM;
    if (t == self)
        return -EDEADLK;
    simul_scope sc;
    int rc = simul_scope_timeout(&sc, timeout);
    if (rc < 0)
        return rc;
    rc = simul__task_check(self);
    if (rc == 0)
        rc = simul__task_wait_done(t);
    simul_scope_end(&sc);
    /* Completion wins if it got there first: the result is already there, nothing is lost. */
    if (rc < 0 && t->state == SIMUL__TASK_DONE && t->result != -ECANCELED)
        rc = 0;
    if (rc < 0) {
        simul__task_cancel_internal(t);
        reap_shielded(&t, 1);
    }
    if (result)
        *result = t->result;
    simul__task_release_handle(t);
    return rc;
}

/* ---- as_completed ---------------------------------------------------------------------------- */

struct simul_as_completed {
    size_t n, head, tail; /* ring of finished tasks not yet handed back */
    size_t handed;
    simul_task **ring;
    simul__watch *watches;
    simul__wait *waiter;
};

static void ac_notify(simul__watch *w, simul_task *done)
{
    simul_as_completed *ac = w->ctx;
    ac->ring[ac->tail++ % ac->n] = done;
    if (ac->waiter) {
        simul__wait *waiter = ac->waiter;
        ac->waiter = NULL;
        simul__wake(waiter, 0);
    }
}

static void ac_unlink(simul__wait *w)
{
    ((simul_as_completed *)w->ctx)->waiter = NULL;
}

int simul_as_completed_new(simul_as_completed **out, simul_task **tasks, size_t n)
{
    if (!out)
        return -EINVAL;
    int rc = check_handles(tasks, n, __func__);
    if (rc < 0)
        return rc;
    simul_as_completed *ac = calloc(1, sizeof *ac);
    if (!ac)
        return -ENOMEM;
    ac->n = n;
    if (n) {
        ac->ring = calloc(n, sizeof *ac->ring);
        ac->watches = calloc(n, sizeof *ac->watches);
        if (!ac->ring || !ac->watches) {
            free(ac->ring);
            free(ac->watches);
            free(ac);
            return -ENOMEM;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (tasks[i]->state == SIMUL__TASK_DONE)
            ac->ring[ac->tail++ % n] = tasks[i];
        else
            simul__watch_add(tasks[i], &ac->watches[i], ac_notify, ac);
    }
    *out = ac;
    return 0;
}

int simul_as_completed_next(simul_as_completed *ac, simul_task **done)
{
    simul_task *self = simul__task_require(__func__);
    if (!ac || !done)
        return -EINVAL;
    if (!self)
        return -EPERM;
    if (ac->handed == ac->n)
        return -ENOENT;
    int rc = simul__task_check(self);
    if (rc < 0)
        return rc;
    if (ac->head == ac->tail) {
        SIMUL__REC(simul__wait, w, self);
        if (!w)
            return -ENOMEM;
        *w = (simul__wait){.unlink = ac_unlink, .ctx = ac};
        ac->waiter = w;
        rc = simul__park(w, SIMUL__INF);
        if (rc < 0)
            return rc;
    }
    *done = ac->ring[ac->head++ % ac->n];
    ac->handed++;
    return 0;
}

void simul_as_completed_free(simul_as_completed *ac)
{
    if (!ac)
        return;
    for (size_t i = 0; i < ac->n; i++)
        simul__watch_remove(&ac->watches[i]);
    free(ac->ring);
    free(ac->watches);
    free(ac);
}
