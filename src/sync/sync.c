/* sync.c — Lock, Event, Condition, Semaphore (bounded or not) and Barrier for the tasks of one
 * loop. Waiters park FIFO on the primitive, and whoever lets one proceed hands it what it waited
 * for (the lock, a unit, its barrier index) before waking it: nobody can barge in between, and a
 * cancel that lands after the hand-over cannot lose it (the wake is exactly once). */
#include <limits.h>

#include "../core/internal.h"

/* w->aux of a waiter woken because its primitive was freed (Condition must not touch it then). */
#define WAIT_FREED (-1)

/* Freeing a primitive that tasks still wait on is a bug of the caller; they resume with
 * -ECANCELED rather than sleep on freed memory. */
static void free_waiters(simul__waitq *q, const char *what)
{
    if (!q->head)
        return;
    simul_loop *loop = simul__loop();
    if (loop && simul__loop_debug(loop))
        fprintf(stderr, "simul: %s freed while tasks wait on it; they resume with ECANCELED\n",
                what);
    simul__wait *w;
    while ((w = simul__waitq_pop(q))) {
        w->aux = WAIT_FREED;
        simul__wake(w, -ECANCELED);
    }
}

/* The running task for a suspending call, after its cancellation check. */
static int enter(const char *call, const void *obj, simul_task **self)
{
    *self = simul__task_require(call);
    if (!obj)
        return -EINVAL;
    if (!*self)
        return -EPERM;
    return simul__task_check(*self);
}

/* ---- Lock ------------------------------------------------------------------------------------ */

struct simul_lock {
    simul_task *owner;
    uint64_t owner_id;    /* task records are reused: the id tells the same task apart */
    simul__waitq waiters; /* non-empty only while owned */
    simul__watch watch;   /* debug mode: notices an owner that finishes holding the lock */
};

static void owner_finished(simul__watch *w, simul_task *done)
{
    (void)w;
    fprintf(stderr,
            "simul: task '%s' finished while holding a lock; the lock stays locked (release "
            "it on every path out of the task)\n",
            done->name);
}

static void set_owner(simul_lock *l, simul_task *t)
{
    simul__watch_remove(&l->watch);
    l->owner = t;
    l->owner_id = t ? t->id : 0;
    if (t && SIMUL__UNLIKELY(simul__loop_debug(t->loop)))
        simul__watch_add(t, &l->watch, owner_finished, l);
}

static bool owned_by(const simul_lock *l, const simul_task *t)
{
    return t && l->owner == t && l->owner_id == t->id;
}

/* Release: ownership goes straight to the first waiter, so the releaser cannot take it back
 * before that waiter runs. */
static void lock_pass(simul_lock *l)
{
    simul__wait *w = simul__waitq_pop(&l->waiters);
    set_owner(l, w ? w->task : NULL);
    if (w)
        simul__wake(w, 0);
}

/* Takes the lock for `self` whatever happens to the task meanwhile (Condition's re-acquire).
 * Returns 0, or -ECANCELED if the lock was freed under it. */
static int lock_take_shielded(simul_lock *l, simul_task *self)
{
    if (!l->owner) {
        set_owner(l, self);
        return 0;
    }
    simul_scope sh;
    simul_scope_shield(&sh); /* no deadline and no cancel inside: the park cannot be cut short */
    int rc = simul__waitq_park(self, &l->waiters);
    simul_scope_end(&sh);
    return rc;
}

int simul_lock_new(simul_lock **out)
{
    if (!out)
        return -EINVAL;
    simul_lock *l = calloc(1, sizeof *l);
    if (!l)
        return -ENOMEM;
    *out = l;
    return 0;
}

void simul_lock_free(simul_lock *l)
{
    if (!l)
        return;
    simul__watch_remove(&l->watch);
    free_waiters(&l->waiters, "a lock");
    free(l);
}

/* `call` is the public call the user made (debug reports and the task dump name it). */
static int lock_acquire(simul_lock *l, const char *call)
{
    simul_task *self;
    int rc = enter(call, l, &self);
    if (rc < 0)
        return rc;
    if (!l->owner) {
        set_owner(l, self);
        return 0;
    }
    if (owned_by(l, self))
        return -EDEADLK;
    return simul__waitq_park(self, &l->waiters); /* 0: the releaser made us the owner */
}

int simul_lock_acquire(simul_lock *l)
{
    return lock_acquire(l, __func__);
}

int simul_lock_try_acquire(simul_lock *l)
{
    simul_task *self = simul__task_self();
    if (!l)
        return -EINVAL;
    if (!self)
        return -EPERM;
    if (!l->owner) {
        set_owner(l, self);
        return 0;
    }
    return owned_by(l, self) ? -EDEADLK : -EAGAIN;
}

int simul_lock_release(simul_lock *l)
{
    if (!l)
        return -EINVAL;
    if (!owned_by(l, simul__task_self()))
        return -EPERM;
    lock_pass(l);
    return 0;
}

bool simul_lock_locked(const simul_lock *l)
{
    return l && l->owner;
}

/* ---- Event ----------------------------------------------------------------------------------- */

struct simul_event {
    bool set;
    simul__waitq waiters;
};

int simul_event_new(simul_event **out)
{
    if (!out)
        return -EINVAL;
    simul_event *e = calloc(1, sizeof *e);
    if (!e)
        return -ENOMEM;
    *out = e;
    return 0;
}

void simul_event_free(simul_event *e)
{
    if (!e)
        return;
    free_waiters(&e->waiters, "an event");
    free(e);
}

int simul_event_set(simul_event *e)
{
    if (!e)
        return -EINVAL;
    e->set = true;
    simul__waitq_wake_all(&e->waiters, 0); /* every waiter can proceed: wake them all */
    return 0;
}

int simul_event_clear(simul_event *e)
{
    if (!e)
        return -EINVAL;
    e->set = false;
    return 0;
}

bool simul_event_is_set(const simul_event *e)
{
    return e && e->set;
}

int simul_event_wait(simul_event *e)
{
    simul_task *self;
    int rc = enter(__func__, e, &self);
    if (rc < 0 || e->set)
        return rc;
    return simul__waitq_park(self, &e->waiters);
}

/* ---- Condition ------------------------------------------------------------------------------- */

struct simul_condition {
    simul_lock *lock;
    bool own_lock;
    simul__waitq waiters;
};

/* w->aux of a condition waiter: notified (moved to the lock's queue). */
#define COND_NOTIFIED 1

int simul_condition_new(simul_condition **out, simul_lock *lock)
{
    if (!out)
        return -EINVAL;
    simul_condition *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    if (!lock) {
        int rc = simul_lock_new(&lock);
        if (rc < 0) {
            free(c);
            return rc;
        }
        c->own_lock = true;
    }
    c->lock = lock;
    *out = c;
    return 0;
}

void simul_condition_free(simul_condition *c)
{
    if (!c)
        return;
    free_waiters(&c->waiters, "a condition");
    if (c->own_lock)
        simul_lock_free(c->lock);
    free(c);
}

int simul_condition_acquire(simul_condition *c)
{
    return c ? lock_acquire(c->lock, __func__) : -EINVAL;
}

int simul_condition_release(simul_condition *c)
{
    return c ? simul_lock_release(c->lock) : -EINVAL;
}

bool simul_condition_locked(const simul_condition *c)
{
    return c && simul_lock_locked(c->lock);
}

int simul_condition_wait(simul_condition *c)
{
    simul_task *self = simul__task_require(__func__);
    if (!c)
        return -EINVAL;
    if (!self || !owned_by(c->lock, self))
        return -EPERM;
    int rc = simul__task_check(self);
    if (rc < 0)
        return rc;
    SIMUL__REC(simul__wait, w, self);
    if (!w)
        return -ENOMEM;
    *w = (simul__wait){.unlink = simul__waitq_unlink};
    simul__waitq_push(&c->waiters, w);
    lock_pass(c->lock);
    rc = simul__park(w, SIMUL__INF);
    if (rc == 0)
        return 0; /* notified, then handed the lock by its releaser */
    if (w->aux == WAIT_FREED)
        return rc; /* the condition or its lock was freed under us: do not touch them */
    /* Interrupted, either still on the condition or already notified and queued for the lock:
     * either way the caller gets the lock back before it sees the outcome. */
    int lrc = lock_take_shielded(c->lock, self);
    if (lrc < 0)
        return lrc;
    return w->aux == COND_NOTIFIED ? 0 : rc; /* a notification, once given, is not lost */
}

int simul_condition_wait_for(simul_condition *c, bool (*pred)(void *arg), void *arg)
{
    simul_task *self = simul__task_require(__func__);
    if (!c || !pred)
        return -EINVAL;
    if (!self || !owned_by(c->lock, self))
        return -EPERM;
    int rc = simul__task_check(self);
    while (rc == 0 && !pred(arg))
        rc = simul_condition_wait(c);
    return rc;
}

int simul_condition_notify(simul_condition *c, size_t n)
{
    if (!c)
        return -EINVAL;
    if (!owned_by(c->lock, simul__task_self()))
        return -EPERM;
    /* Wait morphing: the notifier holds the lock, so a notified waiter could not run yet anyway;
     * it moves to the lock's queue and wakes once it owns the lock (no thundering herd). */
    int woken = 0;
    simul__wait *w;
    while (n > 0 && woken < INT_MAX && (w = simul__waitq_pop(&c->waiters))) {
        w->aux = COND_NOTIFIED;
        simul__waitq_push(&c->lock->waiters, w);
        woken++;
        n--;
    }
    return woken;
}

int simul_condition_notify_all(simul_condition *c)
{
    return simul_condition_notify(c, SIZE_MAX);
}

/* ---- Semaphore, BoundedSemaphore ------------------------------------------------------------- */

struct simul_semaphore {
    unsigned value; /* 0 while tasks wait: release hands its unit to the first waiter */
    unsigned bound; /* BoundedSemaphore: the initial value; else UINT_MAX */
    simul__waitq waiters;
};

static int sem_new(simul_semaphore **out, unsigned value, unsigned bound)
{
    if (!out)
        return -EINVAL;
    simul_semaphore *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->value = value;
    s->bound = bound;
    *out = s;
    return 0;
}

int simul_semaphore_new(simul_semaphore **out, unsigned value)
{
    return sem_new(out, value, UINT_MAX);
}

int simul_bounded_semaphore_new(simul_semaphore **out, unsigned value)
{
    return sem_new(out, value, value);
}

void simul_semaphore_free(simul_semaphore *s)
{
    if (!s)
        return;
    free_waiters(&s->waiters, "a semaphore");
    free(s);
}

int simul_semaphore_acquire(simul_semaphore *s)
{
    simul_task *self;
    int rc = enter(__func__, s, &self);
    if (rc < 0)
        return rc;
    if (s->value > 0) {
        s->value--;
        return 0;
    }
    return simul__waitq_park(self, &s->waiters); /* 0: a release handed us its unit */
}

int simul_semaphore_try_acquire(simul_semaphore *s)
{
    if (!s)
        return -EINVAL;
    if (s->value == 0)
        return -EAGAIN;
    s->value--;
    return 0;
}

int simul_semaphore_release(simul_semaphore *s)
{
    if (!s)
        return -EINVAL;
    simul__wait *w = simul__waitq_pop(&s->waiters);
    if (w) {
        simul__wake(w, 0); /* wakes exactly one: the unit is its */
        return 0;
    }
    if (s->value >= s->bound)
        return -EOVERFLOW;
    s->value++;
    return 0;
}

bool simul_semaphore_locked(const simul_semaphore *s)
{
    return s && s->value == 0;
}

unsigned simul_semaphore_value(const simul_semaphore *s)
{
    return s ? s->value : 0;
}

/* ---- Barrier --------------------------------------------------------------------------------- */

struct simul_barrier {
    unsigned parties;
    unsigned count; /* tasks waiting in the current round */
    bool broken;
    simul__waitq waiters; /* in arrival order */
};

static void barrier_unlink(simul__wait *w)
{
    simul_barrier *b = w->ctx;
    simul__waitq_remove(w);
    b->count--; /* a cancelled task leaves the round, as in asyncio */
}

int simul_barrier_new(simul_barrier **out, unsigned parties)
{
    if (!out || parties == 0 || parties > INT_MAX)
        return -EINVAL;
    simul_barrier *b = calloc(1, sizeof *b);
    if (!b)
        return -ENOMEM;
    b->parties = parties;
    *out = b;
    return 0;
}

void simul_barrier_free(simul_barrier *b)
{
    if (!b)
        return;
    free_waiters(&b->waiters, "a barrier");
    free(b);
}

int simul_barrier_wait(simul_barrier *b)
{
    simul_task *self;
    int rc = enter(__func__, b, &self);
    if (rc < 0)
        return rc;
    if (b->broken)
        return -EPIPE;
    if (b->count + 1 == b->parties) {
        /* The last arrival trips the barrier: indices follow the arrival order of the tasks
         * still there, so they stay unique even after a waiter left. */
        int index = 0;
        simul__wait *w;
        while ((w = simul__waitq_pop(&b->waiters))) {
            w->aux = index++;
            simul__wake(w, 0);
        }
        b->count = 0;
        return index;
    }
    SIMUL__REC(simul__wait, w, self);
    if (!w)
        return -ENOMEM;
    *w = (simul__wait){.unlink = barrier_unlink, .ctx = b};
    simul__waitq_push(&b->waiters, w);
    b->count++;
    rc = simul__park(w, SIMUL__INF);
    return rc < 0 ? rc : w->aux;
}

/* Ends the current round: its waiters get -EPIPE. */
static void barrier_break_round(simul_barrier *b)
{
    b->count = 0;
    simul__waitq_wake_all(&b->waiters, -EPIPE);
}

int simul_barrier_reset(simul_barrier *b)
{
    if (!b)
        return -EINVAL;
    barrier_break_round(b);
    b->broken = false;
    return 0;
}

int simul_barrier_abort(simul_barrier *b)
{
    if (!b)
        return -EINVAL;
    b->broken = true;
    barrier_break_round(b);
    return 0;
}

unsigned simul_barrier_parties(const simul_barrier *b)
{
    return b ? b->parties : 0;
}

unsigned simul_barrier_n_waiting(const simul_barrier *b)
{
    return b ? b->count : 0;
}

bool simul_barrier_broken(const simul_barrier *b)
{
    return b && b->broken;
}
