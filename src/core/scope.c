/* scope.c — deadline and shield scopes: records on the task's own stack, chained innermost
 * first. The task caches the effective deadline and shield so a suspension checks two words. */
#include "internal.h"

static int scope_begin(simul_scope *s, int64_t deadline, unsigned flags, const char *call)
{
    simul_task *t = simul__task_require(call);
    if (!t)
        return -EPERM;
    if (!s)
        return -EINVAL;
    s->outer_ = t->scope;
    s->deadline_ns_ = deadline;
    s->task_ = t;
    s->flags_ = flags;
    t->scope = s;
    t->nscopes++;
    t->scope_flags = (uint8_t)flags;
    simul__task_rescope(t);
    return 0;
}

int simul_scope_deadline_ns(simul_scope *s, int64_t deadline_ns)
{
    return scope_begin(s, deadline_ns, SIMUL__SCOPE_DEADLINE, __func__);
}

int simul_scope_timeout(simul_scope *s, double seconds)
{
    int64_t dl = simul__deadline_after(seconds);
    if (dl < 0)
        return -EINVAL;
    return scope_begin(s, dl, SIMUL__SCOPE_DEADLINE, __func__);
}

int simul_scope_shield(simul_scope *s)
{
    return scope_begin(s, SIMUL__INF, SIMUL__SCOPE_SHIELD, __func__);
}

int simul_scope_end(simul_scope *s)
{
    simul_task *t = simul__task_require(__func__);
    if (!t || !s || t->scope != s || s->task_ != t)
        return -EINVAL;
    t->scope = s->outer_;
    t->nscopes--;
    t->scope_flags = t->scope ? (uint8_t)t->scope->flags_ : 0;
    s->task_ = NULL; /* ended: SIMUL_SCOPE_AUTO's clean-up leaves it alone */
    simul__task_rescope(t);
    return (s->flags_ & SIMUL__SCOPE_EXPIRED) ? 1 : 0;
}
