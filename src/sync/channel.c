/* channel.c — a bounded queue of void * between threads and loops: tasks suspend, other threads
 * block (with a timeout). One mutex guards everything; waiters of both kinds share FIFO lists and
 * get items handed over directly. A task on another loop is woken with call_soon_threadsafe, and
 * since that callback names the waiter record on the task's stack, the task never leaves its
 * call while such a callback is still on its way. */
#include <math.h>

#include "../core/internal.h"

enum { W_WAITING, W_DONE, W_CLOSED };

typedef struct waiter waiter;
typedef struct wlist {
    waiter *head, *tail;
} wlist;

struct waiter {
    waiter *next, *prev;
    wlist *list; /* the list it is on, NULL once off it */
    int state;   /* W_*: left W_WAITING by whoever took it off the list */
    void *item;  /* a putter's item, or the item handed to a getter */
    bool is_task;
    bool posted; /* a wake-up callback naming this record has not run yet */
    simul_channel *ch;
    simul__wait w;     /* task: its park */
    simul_loop *loop;  /* task: its loop */
    pthread_cond_t cv; /* thread: signalled when the state leaves W_WAITING */
};

struct simul_channel {
    pthread_mutex_t mu;
    void **ring;
    size_t head, count, cap;
    wlist getters; /* non-empty only while the ring is empty */
    wlist putters; /* non-empty only while the ring is full */
    bool closed;
};

/* ---- waiter lists ---------------------------------------------------------------------------- */

static void list_push(wlist *l, waiter *x)
{
    x->list = l;
    x->next = NULL;
    x->prev = l->tail;
    if (l->tail)
        l->tail->next = x;
    else
        l->head = x;
    l->tail = x;
}

static void list_remove(waiter *x)
{
    wlist *l = x->list;
    if (x->prev)
        x->prev->next = x->next;
    else
        l->head = x->next;
    if (x->next)
        x->next->prev = x->prev;
    else
        l->tail = x->prev;
    x->next = x->prev = NULL;
    x->list = NULL;
}

static waiter *list_pop(wlist *l)
{
    waiter *x = l->head;
    if (x)
        list_remove(x);
    return x;
}

/* ---- waking ---------------------------------------------------------------------------------- */

/* Runs on the waiter's loop. The channel is alive: its task is still inside a call on it. */
static void wake_cb(void *arg)
{
    waiter *x = arg;
    pthread_mutex_lock(&x->ch->mu);
    x->posted = false;
    pthread_mutex_unlock(&x->ch->mu);
    /* The task cannot run before this returns. If a cancel already ended its wait it is ready
     * (and will find posted false); otherwise it is parked on x->w, waiting for this. */
    if (x->w.task->wait == &x->w)
        simul__wake(&x->w, 0);
}

/* Tells a waiter that was taken off its list (its state already set). Mutex held. */
static void wake_locked(waiter *x)
{
    if (!x->is_task) {
        pthread_cond_signal(&x->cv); /* under the mutex: once it is released x may be gone */
        return;
    }
    if (x->loop == simul__loop()) {
        simul__wake(&x->w, 0); /* our own loop: the task is parked (it left no window) */
        return;
    }
    x->posted = true;
    /* -ESHUTDOWN cannot happen: the loop has a live task, so it is not closing. Out of memory,
     * retry: the item is already the waiter's and only this callback can tell it. */
    while (simul_loop_call_soon_threadsafe(x->loop, wake_cb, x) == -ENOMEM) {
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
}

/* ---- the ring, under the mutex --------------------------------------------------------------- */

static void ring_push(simul_channel *ch, void *item)
{
    size_t tail = ch->head + ch->count;
    ch->ring[tail < ch->cap ? tail : tail - ch->cap] = item;
    ch->count++;
}

/* Puts without waiting: 0, -EPIPE (closed) or -EAGAIN (full). */
static int offer_locked(simul_channel *ch, void *item)
{
    if (ch->closed)
        return -EPIPE;
    waiter *g = list_pop(&ch->getters);
    if (g) {
        g->item = item;
        g->state = W_DONE;
        wake_locked(g);
        return 0;
    }
    if (ch->count == ch->cap)
        return -EAGAIN;
    ring_push(ch, item);
    return 0;
}

/* Gets without waiting: 0, -EPIPE (closed and drained) or -EAGAIN (empty). */
static int take_locked(simul_channel *ch, void **item)
{
    if (!ch->count)
        return ch->closed ? -EPIPE : -EAGAIN;
    *item = ch->ring[ch->head];
    ch->head = ch->head + 1 < ch->cap ? ch->head + 1 : 0;
    ch->count--;
    waiter *p = list_pop(&ch->putters);
    if (p) {
        ring_push(ch, p->item); /* the first blocked putter's item takes the freed slot */
        p->state = W_DONE;
        wake_locked(p);
    }
    return 0;
}

/* ---- life cycle ------------------------------------------------------------------------------ */

int simul_channel_new(simul_channel **out, size_t capacity)
{
    if (!out || capacity == 0 || capacity > SIZE_MAX / sizeof(void *))
        return -EINVAL;
    simul_channel *ch = calloc(1, sizeof *ch);
    if (!ch)
        return -ENOMEM;
    ch->ring = malloc(capacity * sizeof(void *));
    if (!ch->ring) {
        free(ch);
        return -ENOMEM;
    }
    int rc = pthread_mutex_init(&ch->mu, NULL);
    if (rc) {
        free(ch->ring);
        free(ch);
        return -rc;
    }
    ch->cap = capacity;
    *out = ch;
    return 0;
}

void simul_channel_free(simul_channel *ch, simul_queue_discard_cb discard)
{
    if (!ch)
        return;
    /* Waiters here would be left with a dangling channel: close it and let them return first. */
    SIMUL__ASSERT(!ch->getters.head && !ch->putters.head);
    while (ch->count) {
        void *item = ch->ring[ch->head];
        ch->head = ch->head + 1 < ch->cap ? ch->head + 1 : 0;
        ch->count--;
        if (discard)
            discard(item);
    }
    pthread_mutex_destroy(&ch->mu);
    free(ch->ring);
    free(ch);
}

int simul_channel_close(simul_channel *ch)
{
    if (!ch)
        return -EINVAL;
    pthread_mutex_lock(&ch->mu);
    if (!ch->closed) {
        ch->closed = true;
        waiter *x;
        while ((x = list_pop(&ch->getters))) { /* the ring is empty: they would wait forever */
            x->state = W_CLOSED;
            wake_locked(x);
        }
        while ((x = list_pop(&ch->putters))) { /* their items are not enqueued */
            x->state = W_CLOSED;
            wake_locked(x);
        }
    }
    pthread_mutex_unlock(&ch->mu);
    return 0;
}

bool simul_channel_closed(simul_channel *ch)
{
    if (!ch)
        return false;
    pthread_mutex_lock(&ch->mu);
    bool closed = ch->closed;
    pthread_mutex_unlock(&ch->mu);
    return closed;
}

size_t simul_channel_size(simul_channel *ch)
{
    if (!ch)
        return 0;
    pthread_mutex_lock(&ch->mu);
    size_t n = ch->count;
    pthread_mutex_unlock(&ch->mu);
    return n;
}

size_t simul_channel_capacity(const simul_channel *ch)
{
    return ch ? ch->cap : 0; /* fixed at creation */
}

/* ---- without waiting ------------------------------------------------------------------------- */

int simul_channel_put_nowait(simul_channel *ch, void *item)
{
    simul__debug_check_ptr(item, __func__, "the item");
    if (!ch)
        return -EINVAL;
    pthread_mutex_lock(&ch->mu);
    int rc = offer_locked(ch, item);
    pthread_mutex_unlock(&ch->mu);
    return rc;
}

int simul_channel_get_nowait(simul_channel *ch, void **item)
{
    if (!ch || !item)
        return -EINVAL;
    pthread_mutex_lock(&ch->mu);
    int rc = take_locked(ch, item);
    pthread_mutex_unlock(&ch->mu);
    return rc;
}

/* ---- from a task ----------------------------------------------------------------------------- */

/* A cancel or deadline ends the park: leave the list if still on it. */
static void task_unlink(simul__wait *w)
{
    waiter *x = w->ctx;
    pthread_mutex_lock(&x->ch->mu);
    if (x->list)
        list_remove(x);
    pthread_mutex_unlock(&x->ch->mu);
}

/* Pushes the task's waiter (mutex held, released here) and parks until it is off the list.
 * Returns 0 if it was served, -EPIPE if the channel closed, else the interruption. */
static int task_wait(simul_channel *ch, waiter *x, wlist *l, simul_task *self)
{
    x->is_task = true;
    x->ch = ch;
    x->loop = self->loop;
    x->state = W_WAITING;
    x->w = (simul__wait){.unlink = task_unlink, .ctx = x};
    list_push(l, x);
    pthread_mutex_unlock(&ch->mu);
    int rc = simul__park(&x->w, SIMUL__INF);
    pthread_mutex_lock(&ch->mu);
    int state = x->state;
    bool posted = x->posted;
    pthread_mutex_unlock(&ch->mu);
    if (posted) {
        /* Interrupted just as another thread served us: its wake-up callback names x, so wait
         * for it (shielded: nothing else may end this park). The service itself stands. */
        simul_scope sh;
        simul_scope_shield(&sh);
        x->w = (simul__wait){0};
        simul__park(&x->w, SIMUL__INF);
        simul_scope_end(&sh);
    }
    if (state == W_DONE)
        return 0;
    if (state == W_CLOSED)
        return -EPIPE;
    return rc;
}

int simul_channel_put(simul_channel *ch, void *item)
{
    simul_task *self = simul__task_require(__func__);
    simul__debug_check_ptr(item, __func__, "the item");
    if (!ch)
        return -EINVAL;
    if (!self)
        return -EPERM;
    int rc = simul__task_check(self);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&ch->mu);
    rc = offer_locked(ch, item);
    if (rc != -EAGAIN) {
        pthread_mutex_unlock(&ch->mu);
        return rc;
    }
    SIMUL__REC(waiter, x, self); /* a thread serves it while we are suspended: off-stack */
    if (!x) {
        pthread_mutex_unlock(&ch->mu);
        return -ENOMEM;
    }
    *x = (waiter){.item = item};
    return task_wait(ch, x, &ch->putters, self);
}

int simul_channel_get(simul_channel *ch, void **item)
{
    simul_task *self = simul__task_require(__func__);
    if (!ch || !item)
        return -EINVAL;
    if (!self)
        return -EPERM;
    int rc = simul__task_check(self);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&ch->mu);
    rc = take_locked(ch, item);
    if (rc != -EAGAIN) {
        pthread_mutex_unlock(&ch->mu);
        return rc;
    }
    SIMUL__REC(waiter, x, self);
    if (!x) {
        pthread_mutex_unlock(&ch->mu);
        return -ENOMEM;
    }
    *x = (waiter){0};
    rc = task_wait(ch, x, &ch->getters, self);
    if (rc == 0)
        *item = x->item;
    return rc;
}

/* ---- from a thread --------------------------------------------------------------------------- */

/* Blocking on a thread that runs a loop would stall every task of that loop. */
static bool on_running_loop(void)
{
    simul_loop *loop = simul__loop();
    return loop && simul__loop_running(loop);
}

/* Pushes the thread's waiter (mutex held) and blocks until it is off the list or `timeout`
 * seconds pass. Returns 0 if it was served, -EPIPE if the channel closed, -ETIMEDOUT. */
static int thread_wait(simul_channel *ch, waiter *x, wlist *l, double timeout)
{
    if (timeout == 0)
        return -ETIMEDOUT;
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    int err = pthread_cond_init(&x->cv, &attr);
    pthread_condattr_destroy(&attr);
    if (err)
        return -err;
    struct timespec until = {0};
    bool forever = isinf(timeout) || timeout > 1e9;
    if (!forever) {
        int64_t ns = simul__clock_ns() + (int64_t)(timeout * 1e9);
        until.tv_sec = (time_t)(ns / 1000000000);
        until.tv_nsec = (long)(ns % 1000000000);
    }
    x->state = W_WAITING;
    list_push(l, x);
    int rc = 0;
    while (x->state == W_WAITING) {
        if (forever) {
            pthread_cond_wait(&x->cv, &ch->mu);
        } else if (pthread_cond_timedwait(&x->cv, &ch->mu, &until) == ETIMEDOUT &&
                   x->state == W_WAITING) {
            list_remove(x);
            rc = -ETIMEDOUT;
            break;
        }
    }
    pthread_cond_destroy(&x->cv);
    if (x->state == W_CLOSED)
        rc = -EPIPE;
    return rc;
}

static int check_timeout(double timeout)
{
    if (timeout != timeout || timeout < 0)
        return -EINVAL;
    return on_running_loop() ? -EDEADLK : 0;
}

int simul_channel_put_blocking(simul_channel *ch, void *item, double timeout)
{
    if (!ch)
        return -EINVAL;
    int rc = check_timeout(timeout);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&ch->mu);
    rc = offer_locked(ch, item);
    if (rc == -EAGAIN) {
        waiter x = {.item = item};
        rc = thread_wait(ch, &x, &ch->putters, timeout);
    }
    pthread_mutex_unlock(&ch->mu);
    return rc;
}

int simul_channel_get_blocking(simul_channel *ch, void **item, double timeout)
{
    if (!ch || !item)
        return -EINVAL;
    int rc = check_timeout(timeout);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&ch->mu);
    rc = take_locked(ch, item);
    if (rc == -EAGAIN) {
        waiter x = {0};
        rc = thread_wait(ch, &x, &ch->getters, timeout);
        if (rc == 0)
            *item = x.item;
    }
    pthread_mutex_unlock(&ch->mu);
    return rc;
}
