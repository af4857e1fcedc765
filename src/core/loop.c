/* loop.c — the event loop: the ready queue, the loop pass, call_soon/call_later handles and
 * cross-thread wake-ups. A pass runs ready work FIFO; after at most BUDGET task runs (or when
 * nothing is ready) it polls the backend and fires due timers, as Go and tokio do, so a task
 * that yields in a loop can starve neither other tasks nor I/O. Tasks hand the CPU straight to
 * the next ready task; they come back to the loop's own context only when the pass is over.
 * A budget counted in runs alone lets a task that does milliseconds of work between yields hold
 * timers back for 64 of them, so the pass also has a time slice: a coarse clock is read every
 * BUDGET_CHECK runs and a pass past PASS_SLICE_NS ends; it also shrinks the next passes' budget
 * (down to one run), and passes that keep to the slice grow it back. */
#include <string.h>

#include "loop.h"

#define BUDGET 64
#define BUDGET_CHECK 4               /* runs between clock reads within a pass (a power of 2) */
#define PASS_SLICE_NS (1000 * 1000) /* a pass that ran this long polls I/O and timers */

__thread simul_loop *simul__loop_tls __attribute__((tls_model("initial-exec")));

int64_t simul__clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

double simul_now(void)
{
    return (double)simul__clock_ns() / 1e9;
}

int64_t simul_now_ns(void)
{
    return simul__clock_ns();
}

/* ---- ready queue ----------------------------------------------------------------------------- */

void simul__ready_push(simul_loop *loop, simul__runnable *r)
{
    r->next = NULL;
    if (loop->ready_tail)
        loop->ready_tail->next = r;
    else
        loop->ready_head = r;
    loop->ready_tail = r;
    loop->nready++;
}

static inline simul__runnable *ready_pop(simul_loop *loop)
{
    simul__runnable *r = loop->ready_head;
    if (r) {
        loop->ready_head = r->next;
        if (!loop->ready_head)
            loop->ready_tail = NULL;
        loop->nready--;
    }
    return r;
}

/* The pass's clock: the coarse clock is a plain read of the vDSO page (a few ns, where the
 * precise one costs ~20), and its tick (1-4 ms) is fine enough to notice a pass gone long. */
static inline int64_t pass_clock(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Takes one run from the pass's budget; false once it is spent or the pass ran past its slice
 * (then the next passes get fewer runs, sized so that one pass fits in the slice). */
static inline bool spend_budget(simul_loop *loop)
{
    if (loop->budget <= 0)
        return false;
    if (SIMUL__UNLIKELY((--loop->budget & (BUDGET_CHECK - 1)) == 0)) {
        int64_t took = pass_clock() - loop->pass_start;
        if (took > PASS_SLICE_NS) {
            int64_t runs = loop->budget_max - loop->budget - 1; /* this one is not run */
            int64_t fit = runs * PASS_SLICE_NS / took;
            loop->budget_max = fit < 1 ? 1 : (int)fit;
            loop->budget = 0;
            loop->pass_cut = true;
            return false;
        }
    }
    return true;
}

static inline void debug_switch_out(simul_loop *loop, simul_task *cur)
{
    if (SIMUL__UNLIKELY(loop->head.debug)) {
        int64_t ran = simul__clock_ns() - cur->run_start;
        if (ran > loop->slow_ns)
            simul__debug_slow(loop, cur, ran);
        if (loop->watch)
            simul__debug_watch_out(loop);
    }
}

static inline void debug_switch_in(simul_loop *loop, simul_task *t)
{
    if (SIMUL__UNLIKELY(loop->head.debug)) {
        t->run_start = simul__clock_ns();
        if (loop->watch)
            simul__debug_watch_in(loop, t);
    }
}

static inline void make_current(simul_loop *loop, simul_task *t)
{
    t->state = SIMUL__TASK_RUNNING;
    loop->head.current = t;
    debug_switch_in(loop, t);
}

simul__coro *simul__next_context(simul_loop *loop, simul_task *cur)
{
    debug_switch_out(loop, cur);
    simul__runnable *r = loop->ready_head;
    if (r && r->kind == SIMUL__RUN_TASK && spend_budget(loop) && !loop->stopping) {
        ready_pop(loop);
        make_current(loop, (simul_task *)r);
        return &((simul_task *)r)->coro;
    }
    loop->head.current = NULL;
    return &loop->coro;
}

void simul__switch_out(simul_loop *loop, simul_task *cur)
{
    simul__coro *to = simul__next_context(loop, cur);
    if (to != &cur->coro) /* it may be the only ready task after a yield */
        simul__coro_switch(&cur->coro, to);
    while (SIMUL__UNLIKELY(cur->dump != NULL)) /* resumed only for the task dump's backtrace */
        simul__debug_dump_resume(cur);
}

/* ---- callback handles ------------------------------------------------------------------------ */

static simul__cb *cb_at(simul_loop *loop, uint32_t slot)
{
    return &loop->cb_chunks[slot / SIMUL__CB_CHUNK][slot % SIMUL__CB_CHUNK];
}

static simul__cb *cb_alloc(simul_loop *loop)
{
    simul__cb *cb = loop->cb_free;
    if (cb) {
        loop->cb_free = cb->free_next;
        return cb;
    }
    if (loop->cb_used == loop->cb_nchunks * SIMUL__CB_CHUNK) {
        if (loop->cb_nchunks >= UINT32_MAX / SIMUL__CB_CHUNK)
            return NULL;
        simul__cb **chunks = realloc(loop->cb_chunks, (loop->cb_nchunks + 1) * sizeof *chunks);
        if (!chunks)
            return NULL;
        loop->cb_chunks = chunks;
        simul__cb *chunk = calloc(SIMUL__CB_CHUNK, sizeof *chunk);
        if (!chunk)
            return NULL;
        loop->cb_chunks[loop->cb_nchunks++] = chunk;
    }
    uint32_t slot = loop->cb_used++;
    cb = cb_at(loop, slot);
    cb->slot = slot;
    cb->gen = 0;
    return cb;
}

static void cb_release(simul_loop *loop, simul__cb *cb)
{
    cb->state = SIMUL__CB_FREE;
    cb->gen++; /* outstanding handles to this slot now miss */
    cb->free_next = loop->cb_free;
    loop->cb_free = cb;
}

static simul_handle cb_handle(const simul__cb *cb)
{
    /* gen+1 keeps the id non-zero; slot+1 keeps slot 0 distinguishable */
    return (simul_handle){((uint64_t)(cb->gen + 1) << 32) | (uint64_t)(cb->slot + 1)};
}

static int cb_schedule(simul_loop *loop, int64_t when, simul_callback fn, void *arg,
                       simul_handle *out)
{
    if (!fn)
        return -EINVAL;
    simul__cb *cb = cb_alloc(loop);
    if (!cb)
        return -ENOMEM;
    cb->fn = fn;
    cb->arg = arg;
    cb->run.kind = SIMUL__RUN_CB;
    cb->timer.kind = SIMUL__TIMER_CB;
    cb->timer.armed = 0;
    if (when == SIMUL__INF - 1) { /* "soon" */
        cb->state = SIMUL__CB_READY;
        simul__ready_push(loop, &cb->run);
    } else {
        if (simul__heap_arm(&loop->timers, &cb->timer, when) < 0) {
            cb_release(loop, cb);
            return -ENOMEM;
        }
        cb->state = SIMUL__CB_TIMED;
    }
    if (out)
        *out = cb_handle(cb);
    return 0;
}

int simul__call_soon(simul_loop *loop, simul_callback cb, void *arg, simul_handle *out)
{
    return cb_schedule(loop, SIMUL__INF - 1, cb, arg, out);
}

int simul_call_soon(simul_callback cb, void *arg, simul_handle *out)
{
    simul_loop *loop = simul__loop();
    if (!loop)
        return -ENXIO;
    return cb_schedule(loop, SIMUL__INF - 1, cb, arg, out);
}

int64_t simul__deadline_after(double seconds)
{
    if (seconds != seconds || seconds < 0)
        return -1;
    int64_t now = simul__clock_ns();
    if (seconds >= (double)(SIMUL__INF - now) / 1e9)
        return SIMUL__INF;
    return now + (int64_t)(seconds * 1e9);
}

int simul_call_later(double delay, simul_callback cb, void *arg, simul_handle *out)
{
    simul_loop *loop = simul__loop();
    if (!loop)
        return -ENXIO;
    int64_t when = simul__deadline_after(delay);
    if (when < 0)
        return -EINVAL;
    if (when > SIMUL__INF - 2)
        when = SIMUL__INF - 2; /* a real timer that never comes due; INF-1 means "soon" */
    return cb_schedule(loop, when, cb, arg, out);
}

int simul_call_at_ns(int64_t when_ns, simul_callback cb, void *arg, simul_handle *out)
{
    simul_loop *loop = simul__loop();
    if (!loop)
        return -ENXIO;
    if (when_ns > SIMUL__INF - 2)
        when_ns = SIMUL__INF - 2;
    return cb_schedule(loop, when_ns, cb, arg, out);
}

int simul_call_at(double when, simul_callback cb, void *arg, simul_handle *out)
{
    if (when != when)
        return -EINVAL;
    int64_t ns;
    if (when >= 9.2e9)
        ns = SIMUL__INF - 2;
    else if (when <= -9.2e9)
        ns = INT64_MIN;
    else
        ns = (int64_t)(when * 1e9);
    return simul_call_at_ns(ns, cb, arg, out);
}

int simul_handle_cancel(simul_handle h)
{
    simul_loop *loop = simul__loop();
    if (!loop)
        return -ENXIO;
    uint32_t slot1 = (uint32_t)h.id, gen1 = (uint32_t)(h.id >> 32);
    if (!slot1 || slot1 > loop->cb_used)
        return -ENOENT;
    simul__cb *cb = cb_at(loop, slot1 - 1);
    if (cb->gen + 1 != gen1)
        return -ENOENT;
    switch (cb->state) {
    case SIMUL__CB_TIMED:
        simul__heap_disarm(&loop->timers, &cb->timer);
        cb_release(loop, cb);
        return 0;
    case SIMUL__CB_READY:
        cb->state = SIMUL__CB_CANCELLED; /* skipped and released when popped */
        cb->gen++;
        return 0;
    default:
        return -ENOENT;
    }
}

void simul__cb_fire(simul_loop *loop, simul__cb *cb)
{
    cb->state = SIMUL__CB_READY;
    simul__ready_push(loop, &cb->run);
}

static void run_cb(simul_loop *loop, simul__cb *cb)
{
    if (cb->state == SIMUL__CB_CANCELLED) {
        cb_release(loop, cb);
        return;
    }
    simul_callback fn = cb->fn;
    void *arg = cb->arg;
    cb_release(loop, cb); /* the handle is spent once the callback starts, as in asyncio */
    fn(arg);
}

/* ---- cross-thread callbacks ------------------------------------------------------------------ */

int simul_loop_call_soon_threadsafe(simul_loop *loop, simul_callback cb, void *arg)
{
    if (!loop || !cb)
        return -EINVAL;
    if (atomic_load_explicit(&loop->closing, memory_order_acquire))
        return -ESHUTDOWN;
    simul__ts_item *it = malloc(sizeof *it);
    if (!it)
        return -ENOMEM;
    it->next = NULL;
    it->fn = cb;
    it->arg = arg;
    pthread_mutex_lock(&loop->ts_lock);
    if (loop->ts_tail)
        loop->ts_tail->next = it;
    else
        loop->ts_head = it;
    loop->ts_tail = it;
    pthread_mutex_unlock(&loop->ts_lock);
    simul__loop_wake(loop);
    return 0;
}

void simul__loop_wake(simul_loop *loop)
{
    /* Only the first waker after a drain pays for the backend's wake-up (an eventfd write). */
    if (!atomic_exchange_explicit(&loop->ts_pending, true, memory_order_acq_rel))
        loop->head.backend->ops->wake(loop->head.backend);
}

static void ts_drain(simul_loop *loop)
{
    if (!atomic_exchange_explicit(&loop->ts_pending, false, memory_order_acq_rel))
        return;
    pthread_mutex_lock(&loop->ts_lock);
    simul__ts_item *it = loop->ts_head;
    loop->ts_head = loop->ts_tail = NULL;
    pthread_mutex_unlock(&loop->ts_lock);
    while (it) {
        simul__ts_item *next = it->next;
        if (cb_schedule(loop, SIMUL__INF - 1, it->fn, it->arg, NULL) < 0) {
            /* keep it for the next pass rather than lose it */
            pthread_mutex_lock(&loop->ts_lock);
            simul__ts_item *last = it;
            while (last->next)
                last = last->next;
            last->next = loop->ts_head;
            loop->ts_head = it;
            if (!loop->ts_tail)
                loop->ts_tail = last;
            pthread_mutex_unlock(&loop->ts_lock);
            atomic_store(&loop->ts_pending, true);
            return;
        }
        free(it);
        it = next;
    }
}

/* ---- the pass -------------------------------------------------------------------------------- */

static void on_event(void *data, uint32_t events, void *ctx)
{
    simul_loop *loop = ctx;
    if (loop->io_dispatch)
        loop->io_dispatch(loop, data, events);
}

static void fire_timers(simul_loop *loop)
{
    if (!loop->timers.live)
        return;
    int64_t now = simul__clock_ns();
    simul__timer *t;
    /* A bounded batch per pass: a record popped here is run while still in cache, and a
     * backlog of due timers interleaves with ready work instead of piling up in front of it. */
    int n = 0;
    while (n++ < BUDGET && (t = simul__heap_pop_due(&loop->timers, now))) {
        if (t->kind == SIMUL__TIMER_TASK)
            simul__task_timer_fire(loop, SIMUL__CONTAINER(t, simul_task, timer));
        else
            simul__cb_fire(loop, SIMUL__CONTAINER(t, simul__cb, timer));
    }
}

static void run_ready(simul_loop *loop)
{
    if (!loop->ready_head)
        return;
    /* A pass that kept to its slice lets the next one run more, back up to BUDGET. */
    if (!loop->pass_cut && loop->budget_max < BUDGET)
        loop->budget_max = loop->budget_max * 2 < BUDGET ? loop->budget_max * 2 : BUDGET;
    loop->pass_cut = false;
    loop->pass_start = pass_clock();
    loop->budget = loop->budget_max;
    while (!loop->stopping && loop->ready_head && spend_budget(loop)) {
        simul__runnable *r = ready_pop(loop);
        if (r->kind == SIMUL__RUN_TASK) {
            simul_task *t = (simul_task *)r;
            make_current(loop, t);
            simul__coro_switch(&loop->coro, &t->coro);
            loop->head.current = NULL;
        } else {
            run_cb(loop, (simul__cb *)r);
        }
    }
}

static void poll_io(simul_loop *loop)
{
    int64_t timeout;
    if (loop->ready_head || loop->stopping) {
        timeout = 0;
    } else {
        int64_t next = simul__heap_next(&loop->timers);
        if (next == SIMUL__INF) {
            timeout = -1;
            if (loop->head.debug && loop->live && !loop->io_count && !loop->thread_waits &&
                !loop->stuck_warned) {
                loop->stuck_warned = true;
                simul__debug_stuck(loop);
            }
        } else {
            timeout = next - simul__clock_ns();
            if (timeout < 0)
                timeout = 0;
        }
    }
    if (timeout != 0)
        timeout = simul__task_trim_idle(loop, timeout); /* may wake it up to give memory back */
    /* Nothing to hear about without blocking: skip the syscall. */
    if (timeout == 0 && loop->io_count == 0 &&
        !atomic_load_explicit(&loop->ts_pending, memory_order_relaxed))
        return;
    loop->head.backend->ops->poll(loop->head.backend, timeout, on_event, loop);
}

/* ---- hooks for the layers above -------------------------------------------------------------- */

void simul__loop_set_io(simul_loop *loop, simul__io_dispatch fn, void *io)
{
    loop->io_dispatch = fn;
    loop->head.io = io;
}

void simul__loop_io_count(simul_loop *loop, int delta)
{
    loop->io_count += delta;
}

void simul__loop_close_hook_add(simul_loop *loop, simul__close_hook *h)
{
    h->next = loop->close_hooks;
    loop->close_hooks = h;
}

void simul__loop_close_hook_remove(simul_loop *loop, simul__close_hook *h)
{
    for (simul__close_hook **p = &loop->close_hooks; *p; p = &(*p)->next) {
        if (*p == h) {
            *p = h->next;
            h->next = NULL;
            return;
        }
    }
}

static void run_close_hooks(simul_loop *loop)
{
    simul__close_hook *h;
    while ((h = loop->close_hooks)) {
        loop->close_hooks = h->next; /* off the list first: the hook may free its record */
        h->next = NULL;
        h->fn(loop, h->arg);
    }
}

void simul__loop_handle_ref(simul_loop *loop)
{
    loop->handles++;
}

void simul__loop_handle_unref(simul_loop *loop)
{
    SIMUL__ASSERT(loop->handles > 0);
    loop->handles--;
}

void simul__loop_thread_wait_begin(simul_loop *loop)
{
    loop->thread_waits++;
}

void simul__loop_thread_wait_end(simul_loop *loop)
{
    SIMUL__ASSERT(loop->thread_waits > 0);
    loop->thread_waits--;
}

bool simul__loop_running(simul_loop *loop)
{
    return loop->running;
}

size_t simul__loop_live_tasks(simul_loop *loop)
{
    return loop->live;
}

void simul__loop_run_until_no_tasks(simul_loop *loop)
{
    if (!loop->live)
        return;
    loop->stop_when_no_tasks = true;
    simul_loop_run(loop);
    loop->stop_when_no_tasks = false;
}

void simul__loop_drop_handles(simul_loop *loop)
{
    if (!loop->handles)
        return;
    if (loop->head.debug)
        simul__debug_survivors(loop);
    loop->handles = 0;
}

static void loop_pass(simul_loop *loop)
{
    run_ready(loop);
    simul__task_trim(loop);
    if (loop->stop_when_no_tasks && loop->live == 0)
        loop->stopping = true;
    poll_io(loop);
    ts_drain(loop);
    fire_timers(loop);
}

static int run_checks(simul_loop *loop)
{
    if (!loop)
        return -EINVAL;
    if (!pthread_equal(loop->thread, pthread_self()))
        return -EPERM;
    if (loop->running)
        return -EBUSY;
    return 0;
}

int simul_loop_run(simul_loop *loop)
{
    int rc = run_checks(loop);
    if (rc < 0)
        return rc;
    if (loop->head.debug && !loop->watch)
        simul__debug_watch_start(loop);
    loop->running = true;
    loop->stopping = false;
    while (!loop->stopping)
        loop_pass(loop);
    loop->running = false;
    loop->stopping = false;
    return 0;
}

int simul_loop_stop(simul_loop *loop)
{
    if (!loop)
        return -EINVAL;
    loop->stopping = true;
    return 0;
}

static void stop_on_done(simul__watch *w, simul_task *done)
{
    (void)done;
    ((simul_loop *)w->ctx)->stopping = true;
}

int simul_loop_run_until_complete(simul_loop *loop, simul_task *t, int *result)
{
    int rc = run_checks(loop);
    if (rc < 0)
        return rc;
    if (!simul__task_handle_usable(t, __func__) || t->loop != loop)
        return -EINVAL;
    if (loop->head.debug && !loop->watch)
        simul__debug_watch_start(loop);
    if (t->state != SIMUL__TASK_DONE) {
        simul__watch w;
        simul__watch_add(t, &w, stop_on_done, loop);
        loop->running = true;
        loop->stopping = false;
        while (t->state != SIMUL__TASK_DONE)
            loop_pass(loop);
        loop->running = false;
        loop->stopping = false;
    }
    if (result)
        *result = t->result;
    simul__task_release_handle(t);
    return 0;
}

/* ---- life cycle ------------------------------------------------------------------------------ */

int simul_loop_new(simul_loop **out)
{
    if (!out)
        return -EINVAL;
    if (simul__loop_tls)
        return -EBUSY;
    simul_loop *loop = calloc(1, sizeof *loop);
    if (!loop)
        return -ENOMEM;
    loop->head.debug = simul__debug_env();
    const simul__backend_ops *backend;
    const char *backend_name;
    int rc = simul__backend_choose(&backend, &backend_name);
    if (rc < 0) {
        if (loop->head.debug)
            fprintf(stderr, "simul: SIMUL_BACKEND=%s names no backend (this build has: %s)\n",
                    backend_name, simul__backend_epoll.name);
        goto fail;
    }
    rc = simul__stack_cache_new(&loop->stacks);
    if (rc < 0)
        goto fail;
    rc = backend->open(&loop->head.backend);
    if (rc < 0)
        goto fail;
    rc = simul__stack_overflow_guard_thread(&loop->altstack);
    if (rc < 0)
        goto fail;
    pthread_mutex_init(&loop->ts_lock, NULL);
    simul__coro_init_thread(&loop->coro);
    simul__coro_init_thread(&loop->dead);
    loop->thread = pthread_self();
    loop->stack_size = SIMUL__STACK_DEFAULT;
    loop->task_mode = SIMUL_TASK_STACKFUL;
    const char *tasks = getenv("SIMUL_TASKS");
    if (tasks && strcmp(tasks, "compact") == 0)
        loop->task_mode = SIMUL_TASK_COMPACT;
    else if (tasks && *tasks && strcmp(tasks, "stackful") != 0 && loop->head.debug)
        fprintf(stderr, "simul: SIMUL_TASKS=%s is neither compact nor stackful: ignored\n", tasks);
    loop->slow_ns = 100 * 1000000;
    loop->budget_max = BUDGET;
    loop->next_id = 1;
    simul__loop_set_trim_period(loop, 0);
    simul__loop_tls = loop;
    *out = loop;
    return 0;
fail:
    if (loop->head.backend)
        loop->head.backend->ops->close(loop->head.backend);
    simul__stack_cache_free(loop->stacks);
    free(loop);
    return rc;
}

int simul_loop_close(simul_loop *loop)
{
    if (!loop)
        return -EINVAL;
    if (!pthread_equal(loop->thread, pthread_self()))
        return -EPERM;
    if (loop->running || loop->live > 0 || loop->handles > 0) {
        if (loop->head.debug)
            simul__debug_survivors(loop);
        return -EBUSY;
    }
    simul__debug_watch_stop(loop);
    run_close_hooks(loop); /* the layers above let go of their state (signals, fd records) */
    atomic_store(&loop->closing, true);
    simul__task_free_all(loop);
    simul__task_free_runstacks(loop);
    simul__task_drop_done_callbacks(loop);
    for (uint32_t i = 0; i < loop->cb_nchunks; i++)
        free(loop->cb_chunks[i]);
    free(loop->cb_chunks);
    simul__heap_free(&loop->timers);
    pthread_mutex_lock(&loop->ts_lock);
    simul__ts_item *it = loop->ts_head;
    loop->ts_head = loop->ts_tail = NULL;
    pthread_mutex_unlock(&loop->ts_lock);
    while (it) {
        simul__ts_item *n = it->next;
        free(it);
        it = n;
    }
    pthread_mutex_destroy(&loop->ts_lock);
    loop->head.backend->ops->close(loop->head.backend);
    simul__stack_cache_free(loop->stacks);
    simul__stack_overflow_guard_thread_end(loop->altstack);
    simul__coro_destroy(&loop->dead);
    if (simul__loop_tls == loop)
        simul__loop_tls = NULL;
    free(loop);
    return 0;
}

simul_loop *simul_loop_current(void)
{
    return simul__loop_tls;
}

int simul_loop_set_stack_size(simul_loop *loop, size_t bytes)
{
    if (!loop)
        return -EINVAL;
    size_t s = simul__stack_round(bytes);
    if (!s || bytes > ((size_t)1 << 32))
        return -EINVAL;
    loop->stack_size = s;
    return 0;
}

int simul_loop_set_task_mode(simul_loop *loop, int mode)
{
    if (!loop || (mode != SIMUL_TASK_STACKFUL && mode != SIMUL_TASK_COMPACT))
        return -EINVAL;
    loop->task_mode = mode;
    return 0;
}

int simul_loop_get_task_mode(const simul_loop *loop)
{
    return loop ? loop->task_mode : -EINVAL;
}

int simul_loop_set_debug(simul_loop *loop, bool on)
{
    if (!loop)
        return -EINVAL;
    loop->head.debug = on;
    return 0;
}

bool simul_loop_get_debug(const simul_loop *loop)
{
    return loop && loop->head.debug;
}

int simul_loop_set_slow_task_threshold(simul_loop *loop, double seconds)
{
    if (!loop || seconds != seconds || seconds < 0 || seconds > 1e6)
        return -EINVAL;
    loop->slow_ns = (int64_t)(seconds * 1e9);
    return 0;
}
