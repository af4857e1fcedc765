/* task.c — tasks: spawn, the park/wake primitive, cancellation, join, sleep and yield.
 * A task is parked in at most one simul__wait; whoever ends the wait (completion, cancel or
 * the deadline timer) unlinks it and makes the task ready exactly once: the first to come
 * wins, the others find t->wait == NULL and only leave their mark (the cancel flag). */
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "loop.h"

#define QUARANTINE 16            /* freed records wait this long before reuse */
#define QUARANTINE_DEBUG 65536   /* in debug mode: stale handles are caught far longer */
#define KEEP_SPARE 16            /* reusable records past the quarantine the trim always keeps */
#define TRIM_PERIOD_NS 1000000000 /* a record or stack unused this long gives its memory back */
#define MALLOC_TRIM_ABOVE 32768  /* compact records given back at once before malloc_trim */

static void task_main(void *arg);
static void rec_reset(simul_task *t);

/* ---- records ------------------------------------------------------------------------------- */

/* A stackful task's record lives at the top of its own stack, in the page its first frames
 * touch anyway: an idle task then costs that one page and nothing on the heap. Record and stack
 * are one unit from spawn until the record leaves the quarantine, so a stale handle still finds
 * the record (marked DEAD) where it was. A compact task has no stack of its own: its record
 * comes from malloc. `t->compact` tells the two apart for the whole life of the record. */
#define REC_BYTES ((sizeof(simul_task) + 63) & ~(size_t)63)

static simul_task *rec_in(simul__stack st)
{
    return (simul_task *)((char *)st.lo + st.size - REC_BYTES);
}

static void record_link_free(simul_loop *loop, simul_task *t)
{
    t->free_next = NULL;
    if (loop->free_tail)
        loop->free_tail->free_next = t;
    else
        loop->free_head = t;
    loop->free_tail = t;
    loop->nfree++;
}

/* Gives a record (and a stackful one's stack) back for good. Its task is done, so its timer
 * is disarmed and unlinked: nothing of the loop's still points into it. */
static void record_release(simul_loop *loop, simul_task *t)
{
    simul__coro_destroy(&t->coro);
    if (t->compact) {
        simul__rec_free(t);
        free(t);
    }
    else
        simul__stack_put(loop->stacks,
                         (simul__stack){t->coro.stack_lo, t->coro.stack_size + REC_BYTES});
}

/* A zeroed record for a task of `size` stack bytes (a stackful one, whose stack is set in
 * t->coro.stack_lo / stack_size) or a compact one. NULL when out of memory. */
static simul_task *record_alloc(simul_loop *loop, size_t size, bool compact)
{
    size_t q = loop->head.debug ? QUARANTINE_DEBUG : QUARANTINE;
    simul_task *t = NULL;
    simul__stack st = {0};
    if (loop->nfree > q) {
        t = loop->free_head;
        loop->free_head = t->free_next;
        if (!loop->free_head)
            loop->free_tail = NULL;
        loop->nfree--;
        if (loop->nfree < loop->free_low) /* exact: a pass may take and give back many */
            loop->free_low = loop->nfree;
        simul__coro_destroy(&t->coro);
        if (t->compact != compact || (!compact && t->coro.stack_size + REC_BYTES != size)) {
            record_release(loop, t); /* not the kind wanted */
            t = NULL;
        } else if (!compact) {
            st = (simul__stack){t->coro.stack_lo, size};
        }
    }
    if (!t) {
        if (compact) {
            /* The record, then the inline bytes of its side area (SIMUL__REC). */
            t = malloc(sizeof *t + sizeof(simul__rec_tail));
            if (!t)
                return NULL;
            simul__rec_tail_of(t)->first = NULL;
        } else {
            if (simul__stack_get(loop->stacks, size, &st) < 0)
                return NULL;
            t = rec_in(st);
#ifdef SIMUL_ASAN
            /* The frames of whatever ran on this stack before may have left poison here. */
            __asan_unpoison_memory_region(t, REC_BYTES);
#endif
        }
    }
    memset(t, 0, offsetof(simul_task, name));
    t->compact = compact;
    if (compact)
        rec_reset(t); /* a recycled record's chunks went at its task's finish */
    t->coro.stack_lo = st.lo;
    t->coro.stack_size = st.size ? st.size - REC_BYTES : 0;
    return t;
}

static void all_link(simul_loop *loop, simul_task *t)
{
    t->all_prev = NULL;
    t->all_next = loop->all;
    if (loop->all)
        loop->all->all_prev = t;
    loop->all = t;
}

static void all_unlink(simul_loop *loop, simul_task *t)
{
    if (t->all_prev)
        t->all_prev->all_next = t->all_next;
    else
        loop->all = t->all_next;
    if (t->all_next)
        t->all_next->all_prev = t->all_prev;
}

static void record_free(simul_loop *loop, simul_task *t)
{
    all_unlink(loop, t);
    t->magic = SIMUL__TASK_DEAD;
    record_link_free(loop, t);
}

void simul__task_free_all(simul_loop *loop)
{
    simul_task *t = loop->all;
    while (t) {
        simul_task *n = t->all_next;
        if (t->handle_held && t->shutdown_cancel) {
            if (loop->head.debug)
                fprintf(stderr, "simul: task '%s' was still running when the main task returned, "
                                "so the shutdown cancelled it (as asyncio.run does); its handle "
                                "was never joined\n", t->name);
        } else if (t->handle_held && t->result < 0) {
            simul__debug_failed_unjoined(t, "was never joined");
        }
        record_release(loop, t); /* the stacks outlive this: they go with the stack cache */
        t = n;
    }
    loop->all = NULL;
    t = loop->free_head;
    while (t) {
        simul_task *n = t->free_next;
        record_release(loop, t);
        t = n;
    }
    loop->free_head = loop->free_tail = NULL;
    loop->nfree = 0;
}

/* The trim. Given-back records (a stackful one with its stack) wait in the free list for reuse,
 * stacks in the pool's LIFO. Each keeps its low-water mark over a period: what stayed unused all
 * period is what the steady state does not need. At the period's end those records give their
 * stack back (and their pages with it) or go back to malloc, and the pool gives back the pages
 * of its own unused stacks. A burst's memory is back within two periods of its end, a steady
 * state keeps its working set warm however it swings within a period, and spawn pays one
 * compare for it (the low-water mark). */
static void trim_period_end(simul_loop *loop, int64_t now)
{
    size_t keep = (loop->head.debug ? QUARANTINE_DEBUG : QUARANTINE) + KEEP_SPARE;
    size_t n = loop->free_low > keep ? loop->free_low - keep : 0;
    size_t freed_compact = 0;
    /* From the head: past the quarantine (kept at the tail), the next ones due for reuse. */
    for (size_t i = 0; i < n; i++) {
        simul_task *t = loop->free_head;
        loop->free_head = t->free_next;
        loop->nfree--;
        simul__coro_destroy(&t->coro);
        if (t->compact) {
            simul__rec_free(t);
            free(t);
            freed_compact++;
        } else {
            simul__stack_put_surplus(loop->stacks, (simul__stack){t->coro.stack_lo,
                                                                  t->coro.stack_size + REC_BYTES});
        }
    }
    if (!loop->free_head)
        loop->free_tail = NULL;
    loop->recs_trimmed += n;
    simul__stack_cache_trim(loop->stacks);
    loop->free_low = loop->nfree;
    loop->trim_at = now + loop->trim_period;
    loop->trims++;
#ifdef __GLIBC__
    if (freed_compact >= MALLOC_TRIM_ABOVE)
        malloc_trim(0); /* glibc keeps freed small chunks otherwise: give the burst back */
#endif
}

static bool trim_has_work(simul_loop *loop)
{
    size_t keep = (loop->head.debug ? QUARANTINE_DEBUG : QUARANTINE) + KEEP_SPARE;
    return loop->nfree > keep || simul__stack_cache_has_surplus(loop->stacks);
}

void simul__task_trim(simul_loop *loop)
{
    /* pass_start is the coarse clock of the last pass that ran anything: an idle loop is
     * handled by simul__task_trim_idle, before it blocks. */
    if (SIMUL__UNLIKELY(loop->pass_start >= loop->trim_at))
        trim_period_end(loop, loop->pass_start);
}

int64_t simul__task_trim_idle(simul_loop *loop, int64_t timeout)
{
    if (!trim_has_work(loop))
        return timeout; /* nothing to give back: sleep as long as the loop likes */
    int64_t now = simul__clock_ns();
    if (now >= loop->trim_at) {
        trim_period_end(loop, now);
        if (!trim_has_work(loop))
            return timeout;
    }
    int64_t wait = loop->trim_at - now;
    return timeout < 0 || timeout > wait ? wait : timeout;
}

void simul__loop_set_trim_period(simul_loop *loop, int64_t ns)
{
    loop->trim_period = ns > 0 ? ns : TRIM_PERIOD_NS;
    loop->trim_at = simul__clock_ns() + loop->trim_period;
}

void simul__loop_trim_stats(simul_loop *loop, simul__trim_stats *out)
{
    out->periods = loop->trims;
    out->free_records = loop->nfree;
    out->records_trimmed = loop->recs_trimmed;
    simul__stack_cache_stats(loop->stacks, &out->stacks);
}

bool simul__task_handle_ok(const simul_task *t)
{
    return t && t->magic == SIMUL__TASK_MAGIC && t->handle_held;
}

bool simul__task_handle_usable(const simul_task *t, const char *call)
{
    if (SIMUL__LIKELY(simul__task_handle_ok(t)))
        return true;
    simul_loop *loop = simul__loop();
    if (loop && loop->head.debug)
        simul__debug_bad_handle(call, t);
    return false;
}

void simul__task_release_handle(simul_task *t)
{
    t->handle_held = 0;
    if (t->state == SIMUL__TASK_DONE)
        record_free(t->loop, t);
}

static void set_default_name(simul_task *t)
{
    char digits[24];
    int n = 0;
    uint64_t v = t->id;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    memcpy(t->name, "task-", 5);
    for (int i = 0; i < n; i++)
        t->name[5 + i] = digits[n - 1 - i];
    t->name[5 + n] = 0;
}

/* ---- spawn and finish ---------------------------------------------------------------------- */

#define RUNSTACK_MIN (256u * 1024u) /* compact tasks' run stack: one per loop, so be generous */

#ifdef SIMUL_CORO_COMPACT
/* The run stack for compact tasks that need `size` bytes: the loop's smallest that is big
 * enough, made on first use (guarded and registered like any task stack, with a scratch stack
 * for the copies of a switch between two compact tasks). */
static simul__runstack *runstack_for(simul_loop *loop, size_t size)
{
    if (size < RUNSTACK_MIN)
        size = RUNSTACK_MIN;
    if (size < loop->stack_size)
        size = loop->stack_size;
    simul__runstack *best = NULL;
    for (simul__runstack *r = loop->runstacks; r; r = r->next)
        if ((size_t)(r->hi - r->lo) >= size && (!best || r->hi - r->lo < best->hi - best->lo))
            best = r;
    if (best)
        return best;
    simul__runstack *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    simul__stack st, scratch;
    if (simul__stack_get(loop->stacks, size, &st) < 0) {
        free(r);
        return NULL;
    }
    if (simul__stack_get(loop->stacks, SIMUL__STACK_DEFAULT, &scratch) < 0) {
        simul__stack_put(loop->stacks, st);
        free(r);
        return NULL;
    }
    r->lo = st.lo;
    r->hi = (char *)st.lo + st.size;
    r->mem_lo = st.lo;
    r->mem_size = st.size;
    r->scratch_lo = scratch.lo;
    r->scratch_size = scratch.size;
    r->scratch_top = (char *)(((uintptr_t)scratch.lo + scratch.size) & ~(uintptr_t)15);
    r->next = loop->runstacks;
    loop->runstacks = r;
    return r;
}
#endif

void simul__task_free_runstacks(simul_loop *loop)
{
    while (loop->runstacks) {
        simul__runstack *r = loop->runstacks;
        loop->runstacks = r->next;
        free(r); /* the memory goes with the stack cache */
    }
}

/* ---- compact tasks' side areas (SIMUL__REC) ------------------------------------------------ */

#define REC_CHUNK_MIN 224u /* a first chunk of 256 bytes with its header */

static char *rec_chunk_mem(simul__rec_chunk *c)
{
    return (char *)(c + 1);
}

static void rec_reset(simul_task *t)
{
    simul__rec_tail *tail = simul__rec_tail_of(t);
    t->rec_chunk = NULL;
    t->rec_top = tail->mem;
    t->rec_end = tail->mem + SIMUL__REC_INLINE;
#ifdef SIMUL_ASAN
    __asan_poison_memory_region(tail->mem, SIMUL__REC_INLINE);
#endif
}

static void rec_free_from(simul__rec_chunk *c)
{
    while (c) {
        simul__rec_chunk *n = c->next;
        free(c);
        c = n;
    }
}

void *simul__rec_grow(simul_task *t, size_t n)
{
    simul__rec_tail *tail = simul__rec_tail_of(t);
    simul__rec_chunk *cur = t->rec_chunk;
    simul__rec_chunk **link = cur ? &cur->next : &tail->first;
    simul__rec_chunk *up = *link;
    if (up && up->cap < n) {
        rec_free_from(up); /* above the current chunk: all unused */
        *link = up = NULL;
    }
    if (!up) {
        size_t below = cur ? cur->cap : SIMUL__REC_INLINE;
        size_t cap = 2 * below > REC_CHUNK_MIN ? 2 * below : REC_CHUNK_MIN;
        if (cap < n)
            cap = n;
        up = malloc(sizeof *up + cap);
        if (!up)
            return NULL;
        up->prev = cur;
        up->next = NULL;
        up->cap = cap;
#ifdef SIMUL_ASAN
        __asan_poison_memory_region(rec_chunk_mem(up), cap);
#endif
        *link = up;
    }
    up->below_top = t->rec_top;
    t->rec_chunk = up;
    t->rec_top = rec_chunk_mem(up) + n;
    t->rec_end = rec_chunk_mem(up) + up->cap;
    return rec_chunk_mem(up);
}

void simul__rec_shrink(simul_task *t)
{
    simul__rec_chunk *down = t->rec_chunk->prev;
    t->rec_top = t->rec_chunk->below_top;
    t->rec_chunk = down;
    t->rec_end = down ? rec_chunk_mem(down) + down->cap
                      : simul__rec_tail_of(t)->mem + SIMUL__REC_INLINE;
}

void simul__rec_free(simul_task *t)
{
    simul__rec_tail *tail = simul__rec_tail_of(t);
    rec_free_from(tail->first);
    tail->first = NULL;
    rec_reset(t);
}

int simul__task_spawn_in(simul_loop *loop, simul_task **out, simul_task_fn fn, void *arg,
                         const simul_task_opts *opts)
{
    if (!fn)
        return -EINVAL;
    size_t size = loop->stack_size;
    if (opts && opts->stack_size) {
        size = simul__stack_round(opts->stack_size);
        if (!size || opts->stack_size > ((size_t)1 << 32))
            return -EINVAL;
    }
    int mode = opts && opts->mode ? opts->mode : loop->task_mode;
    if (mode != SIMUL_TASK_STACKFUL && mode != SIMUL_TASK_COMPACT)
        return -EINVAL;
    bool compact = false; /* where there is no compact switch, compact tasks are stackful */
#ifdef SIMUL_CORO_COMPACT
    simul__runstack *rs = NULL;
    if (mode == SIMUL_TASK_COMPACT) {
        rs = runstack_for(loop, size);
        if (!rs)
            return -ENOMEM;
        compact = true;
    }
#endif
    simul_task *t = record_alloc(loop, size, compact);
    if (!t)
        return -ENOMEM;
#ifdef SIMUL_CORO_COMPACT
    if (rs) {
        /* The first frame goes in the side area's inline bytes, empty until the task runs,
         * by when the frame has been copied onto the run stack. */
        simul__rec_tail *tail = simul__rec_tail_of(t);
#ifdef SIMUL_ASAN
        __asan_unpoison_memory_region(tail->mem, SIMUL__REC_INLINE);
#endif
        int rc = simul__coro_init_compact(&t->coro, rs, task_main, t, tail->mem,
                                          SIMUL__REC_INLINE);
        if (rc < 0) {
            t->magic = SIMUL__TASK_DEAD;
            all_link(loop, t); /* record_free unlinks */
            record_free(loop, t);
            return rc;
        }
    }
#endif
    t->magic = SIMUL__TASK_MAGIC;
    t->loop = loop;
    t->fn = fn;
    t->arg = arg;
    t->id = loop->next_id++;
    t->deadline = SIMUL__INF;
    t->wake_at = SIMUL__INF;
    t->run.kind = SIMUL__RUN_TASK;
    t->timer.kind = SIMUL__TIMER_TASK;
    if (opts && opts->name) {
        strncpy(t->name, opts->name, sizeof t->name - 1);
        t->name[sizeof t->name - 1] = 0;
    } else {
        set_default_name(t);
    }
    if (!t->compact) /* the frames start just below the record */
        simul__coro_init(&t->coro, t->coro.stack_lo, t->coro.stack_size, task_main, t);
    t->coro.name = t->name;
    all_link(loop, t);
    loop->live++;
    t->state = SIMUL__TASK_READY;
    simul__ready_push(loop, &t->run);
    if (out) {
        t->handle_held = 1;
        *out = t;
    }
    return 0;
}

int simul_task_spawn(simul_task **out, simul_task_fn fn, void *arg, const simul_task_opts *opts)
{
    simul_loop *loop = simul__loop();
    if (!loop)
        return -ENXIO;
    simul__debug_check_ptr(arg, __func__, "the argument");
    return simul__task_spawn_in(loop, out, fn, arg, opts);
}

/* ---- done callbacks (asyncio's Task.add_done_callback) -------------------------------------- */

/* Each is its own record, handed to call_soon when the task finishes: it carries the result, so
 * it needs nothing of the task record, which may be reused by then. */
typedef struct simul__done_cb {
    struct simul__done_cb *next, *prev; /* the task's list, then the loop's pending list */
    simul_task_done_cb cb;
    void *arg;
    int result;
} simul__done_cb;

static void pending_unlink(simul_loop *loop, simul__done_cb *d)
{
    if (d->prev)
        d->prev->next = d->next;
    else
        loop->done_pending = d->next;
    if (d->next)
        d->next->prev = d->prev;
}

static void run_done_callback(void *p)
{
    simul__done_cb *d = p;
    pending_unlink(simul__loop(), d);
    d->cb(d->result, d->arg);
    free(d);
}

static void schedule_done(simul_loop *loop, simul__done_cb *d, int result)
{
    d->result = result;
    d->prev = NULL;
    d->next = loop->done_pending;
    if (d->next)
        d->next->prev = d;
    loop->done_pending = d;
    /* simul_run's teardown ends with the last task: run them now, not on a pass that never
     * comes; and without memory to defer one, run it now rather than lose it. */
    if (loop->stop_when_no_tasks || simul__call_soon(loop, run_done_callback, d, NULL) < 0)
        run_done_callback(d);
}

static void schedule_done_callbacks(simul_loop *loop, simul_task *t)
{
    while (t->done_cbs) {
        simul__done_cb *d = t->done_cbs;
        t->done_cbs = d->next;
        schedule_done(loop, d, t->result);
    }
}

void simul__task_drop_done_callbacks(simul_loop *loop)
{
    while (loop->done_pending) {
        simul__done_cb *d = loop->done_pending;
        loop->done_pending = d->next;
        free(d);
    }
}

int simul_task_add_done_callback(simul_task *t, simul_task_done_cb cb, void *arg)
{
    if (!t || !cb || t->magic != SIMUL__TASK_MAGIC ||
        (t->state == SIMUL__TASK_DONE && !t->handle_held) || t->loop != simul__loop())
        return -EINVAL;
    simul__done_cb *d = calloc(1, sizeof *d);
    if (!d)
        return -ENOMEM;
    d->cb = cb;
    d->arg = arg;
    if (t->state == SIMUL__TASK_DONE) {
        schedule_done(t->loop, d, t->result); /* asyncio: scheduled at once if already done */
        return 0;
    }
    simul__done_cb **tail = &t->done_cbs;
    while (*tail)
        tail = &(*tail)->next;
    *tail = d;
    return 0;
}

int simul_task_remove_done_callback(simul_task *t, simul_task_done_cb cb, void *arg)
{
    if (!t || t->magic != SIMUL__TASK_MAGIC)
        return -EINVAL;
    int n = 0;
    for (simul__done_cb **p = &t->done_cbs; *p;) {
        if ((*p)->cb == cb && (*p)->arg == arg) {
            simul__done_cb *d = *p;
            *p = d->next;
            free(d);
            n++;
        } else {
            p = &(*p)->next;
        }
    }
    return n;
}

__attribute__((noreturn)) static void task_finish(simul_task *t)
{
    simul_loop *loop = t->loop;
    if (SIMUL__UNLIKELY(t->nscopes != 0)) {
        /* Scopes live in the frames of the function that began them, which has returned (and
         * this call's frames overwrite them): forget them unread, report from the record. */
        t->scope = NULL;
        simul__task_rescope(t);
        if (loop->head.debug)
            simul__debug_scopes_left_open(t);
        t->nscopes = 0;
    }
    if (t->groups)
        simul__group_reap_owned(t); /* may suspend: still a live task here */
    t->state = SIMUL__TASK_DONE;
    if (t->result == -ECANCELED && loop->stop_when_no_tasks)
        t->shutdown_cancel = 1;
    loop->live--;
    while (t->watchers) {
        simul__watch *w = t->watchers;
        simul__watch_remove(w);
        w->notify(w, t);
    }
    if (t->done_cbs)
        schedule_done_callbacks(loop, t);
    if (t->group)
        simul__group_child_done(t);
    else if (!t->handle_held && t->result < 0 && t->result != -ECANCELED && loop->head.debug)
        simul__debug_failed_unjoined(t, "failed while detached");
    if (loop->stop_when_no_tasks && loop->live == 0)
        loop->stopping = true;
    if (t->compact) {
        simul__rec_free(t); /* every SIMUL__REC block of its frames has been left */
        if (t->coro.save_cap) /* 0: still the first frame's copy, lent (spawn) */
            free(t->coro.save); /* its frames die with it: the exit does not save them */
        t->coro.save = NULL;
        t->coro.save_len = t->coro.save_cap = 0;
    }
    /* A stackful task's stack stays with its record (at its top) until the record is given
     * back: see record_alloc. */
    if (!t->handle_held)
        record_free(loop, t);
    /* t's record may already be on the free list; the debug check reads it before the switch,
     * and nothing can reuse it before then. */
    simul__coro_exit(&t->coro, &loop->dead, simul__next_context(loop, t));
}

static void task_main(void *arg)
{
    simul_task *t = arg;
    t->started = 1;
    t->result = t->fn(t->arg);
    task_finish(t);
}

simul_task *simul__task_require(const char *call)
{
    simul_loop *loop = simul__loop();
    if (SIMUL__LIKELY(loop && loop->head.current)) {
        loop->head.current->call = call; /* for the task dump */
        return loop->head.current;
    }
    if (loop ? loop->head.debug : simul__debug_env())
        simul__debug_outside_task(loop, call);
    return NULL;
}

/* ---- park and wake ------------------------------------------------------------------------- */

void simul__task_mark_expired(simul_task *t, int64_t now)
{
    for (simul_scope *s = t->scope; s; s = s->outer_) {
        if (s->flags_ & SIMUL__SCOPE_SHIELD)
            break;
        if ((s->flags_ & SIMUL__SCOPE_DEADLINE) && s->deadline_ns_ <= now)
            s->flags_ |= SIMUL__SCOPE_EXPIRED;
    }
}

void simul__task_rescope(simul_task *t)
{
    int64_t dl = SIMUL__INF;
    uint8_t shielded = 0;
    for (simul_scope *s = t->scope; s; s = s->outer_) {
        if (s->flags_ & SIMUL__SCOPE_SHIELD) {
            shielded = 1;
            break;
        }
        if ((s->flags_ & SIMUL__SCOPE_DEADLINE) && s->deadline_ns_ < dl)
            dl = s->deadline_ns_;
    }
    t->deadline = dl;
    t->shielded = shielded;
}

int simul__task_check(simul_task *t)
{
    if (SIMUL__UNLIKELY(t->cancel_requested) && !t->shielded)
        return -ECANCELED;
    if (SIMUL__UNLIKELY(t->deadline != SIMUL__INF)) {
        int64_t now = simul__clock_ns();
        if (now >= t->deadline) {
            simul__task_mark_expired(t, now);
            return -ETIMEDOUT;
        }
    }
    return 0;
}

int simul__park(simul__wait *w, int64_t wake_at)
{
    simul_loop *loop = simul__loop();
    simul_task *t = loop->head.current;
    w->task = t;
    t->wait = w;
    t->wake_at = wake_at;
    int64_t fire = wake_at < t->deadline ? wake_at : t->deadline;
    if (fire != SIMUL__INF && simul__heap_arm(&loop->timers, &t->timer, fire) < 0) {
        t->wait = NULL;
        if (w->unlink)
            w->unlink(w);
        return -ENOMEM;
    }
    t->state = SIMUL__TASK_PARKED;
    t->park_since = loop->pass_start;
    simul__switch_out(loop, t);
    if (SIMUL__UNLIKELY(t->expire_pending)) {
        t->expire_pending = 0;
        simul__task_mark_expired(t, t->deadline);
    }
    return w->result;
}

void simul__wake(simul__wait *w, int result)
{
    simul_task *t = w->task;
    SIMUL__ASSERT(t->wait == w && t->state == SIMUL__TASK_PARKED);
    w->result = result;
    t->wait = NULL;
    if (t->timer.armed)
        simul__heap_disarm(&t->loop->timers, &t->timer);
    t->state = SIMUL__TASK_READY;
    simul__ready_push(t->loop, &t->run);
}

/* Ends the wait from outside its completer: cancellation or a timer. */
static void interrupt(simul_task *t, int result)
{
    simul__wait *w = t->wait;
    if (w->unlink)
        w->unlink(w);
    simul__wake(w, result);
}

bool simul__task_interrupt(simul_task *t, int result)
{
    if (!t || t->state != SIMUL__TASK_PARKED || !t->wait)
        return false;
    interrupt(t, result);
    return true;
}

void simul__task_timer_fire(simul_loop *loop, simul_task *t)
{
    (void)loop;
    if (!t->wait)
        return;
    if (t->wake_at <= t->deadline) {
        interrupt(t, 0); /* the wait's own end came first (ties go to it) */
    } else {
        t->expire_pending = 1; /* its scopes are on its stack: marked when it runs (park) */
        interrupt(t, -ETIMEDOUT);
    }
}

void simul__task_cancel_internal(simul_task *t)
{
    if (t->state == SIMUL__TASK_DONE)
        return;
    t->cancel_requested = 1;
    if (t->wait && !t->shielded)
        interrupt(t, -ECANCELED);
}

int simul_task_cancel(simul_task *t)
{
    if (!t || t->magic != SIMUL__TASK_MAGIC)
        return -EINVAL;
    simul__task_cancel_internal(t);
    return 0;
}

/* ---- watches --------------------------------------------------------------------------------- */

void simul__watch_add(simul_task *t, simul__watch *w, void (*notify)(simul__watch *, simul_task *),
                      void *ctx)
{
    w->task = t;
    w->notify = notify;
    w->ctx = ctx;
    w->prev = NULL;
    w->next = t->watchers;
    if (t->watchers)
        t->watchers->prev = w;
    t->watchers = w;
}

void simul__watch_remove(simul__watch *w)
{
    simul_task *t = w->task;
    if (!t)
        return;
    if (w->prev)
        w->prev->next = w->next;
    else
        t->watchers = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->next = w->prev = NULL;
    w->task = NULL;
}

/* ---- join, detach ---------------------------------------------------------------------------- */

static void join_notify(simul__watch *watch, simul_task *done)
{
    (void)done;
    simul__wake(watch->ctx, 0);
}

static void join_unlink(simul__wait *w)
{
    simul__watch_remove(w->ctx);
}

int simul__task_wait_done(simul_task *t)
{
    if (t->state == SIMUL__TASK_DONE)
        return 0;
    simul_task *self = simul__task_self();
    SIMUL__REC(simul__watch, watch, self);
    SIMUL__REC(simul__wait, w, self);
    if (!watch || !w)
        return -ENOMEM;
    *w = (simul__wait){.unlink = join_unlink, .ctx = watch, .kind = SIMUL__WAIT_TASK};
    simul__watch_add(t, watch, join_notify, w);
    return simul__park(w, SIMUL__INF);
}

int simul_task_join(simul_task *t, int *result)
{
    simul_task *self = simul__task_require(__func__);
    if (!simul__task_handle_usable(t, __func__))
        return -EINVAL;
    if (!self)
        return -EPERM;
    if (t == self)
        return -EDEADLK;
    int rc = simul__task_check(self);
    if (rc < 0)
        return rc;
    rc = simul__task_wait_done(t);
    if (rc < 0)
        return rc;
    if (result)
        *result = t->result;
    simul__task_release_handle(t);
    return 0;
}

int simul_task_detach(simul_task *t)
{
    if (!simul__task_handle_usable(t, __func__))
        return -EINVAL;
    if (t->state == SIMUL__TASK_DONE && t->result < 0 && t->result != -ECANCELED &&
        t->loop->head.debug)
        simul__debug_failed_unjoined(t, "failed and was detached");
    simul__task_release_handle(t);
    return 0;
}

/* ---- queries ----------------------------------------------------------------------------------- */

bool simul_task_done(const simul_task *t)
{
    return t && t->magic == SIMUL__TASK_MAGIC && t->state == SIMUL__TASK_DONE;
}

bool simul_task_cancel_requested(const simul_task *t)
{
    return t && t->magic == SIMUL__TASK_MAGIC && t->cancel_requested;
}

const char *simul_task_get_name(const simul_task *t)
{
    return t && t->magic == SIMUL__TASK_MAGIC ? t->name : "(invalid task)";
}

int simul_task_set_name(simul_task *t, const char *name)
{
    if (!t || t->magic != SIMUL__TASK_MAGIC || !name)
        return -EINVAL;
    strncpy(t->name, name, sizeof t->name - 1);
    t->name[sizeof t->name - 1] = 0;
    return 0;
}

uint64_t simul_task_id(const simul_task *t)
{
    return t && t->magic == SIMUL__TASK_MAGIC ? t->id : 0;
}

simul_task *simul_task_current(void)
{
    return simul__task_self();
}

size_t simul_task_count(void)
{
    simul_loop *loop = simul__loop();
    return loop ? loop->live : 0;
}

int simul_task_foreach(int (*fn)(simul_task *t, void *arg), void *arg)
{
    simul_loop *loop = simul__loop();
    if (!loop)
        return -ENXIO;
    if (!fn)
        return -EINVAL;
    int n = 0;
    for (simul_task *t = loop->all, *next; t; t = next) {
        next = t->all_next;
        if (t->state == SIMUL__TASK_DONE)
            continue;
        n++;
        if (fn(t, arg))
            break;
    }
    return n;
}

/* ---- sleeping and yielding --------------------------------------------------------------------- */

int simul_yield(void)
{
    simul_task *t = simul__task_require(__func__);
    if (!t)
        return -EPERM;
    int rc = simul__task_check(t);
    if (rc < 0)
        return rc;
    simul_loop *loop = t->loop;
    t->state = SIMUL__TASK_READY;
    simul__ready_push(loop, &t->run);
    simul__switch_out(loop, t);
    /* Nothing was handed to a yield, so a cancel or deadline that came while it waited in the
     * ready queue is reported here, by the suspension it interrupted. */
    return simul__task_check(t);
}

static int sleep_until(simul_task *t, int64_t when_ns)
{
    int rc = simul__task_check(t);
    if (rc < 0)
        return rc;
    SIMUL__REC(simul__wait, w, t);
    if (!w)
        return -ENOMEM;
    *w = (simul__wait){0};
    return simul__park(w, when_ns);
}

int simul_sleep_until_ns(int64_t when_ns)
{
    simul_task *t = simul__task_require(__func__);
    return t ? sleep_until(t, when_ns) : -EPERM;
}

int simul_sleep(double seconds)
{
    if (seconds != seconds || seconds < 0)
        return -EINVAL;
    simul_task *t = simul__task_require(__func__); /* named as called, in reports and dumps */
    if (!t)
        return -EPERM;
    if (seconds == 0)
        return simul_yield();
    return sleep_until(t, simul__deadline_after(seconds)); /* INFINITY: forever */
}

int simul_checkpoint(void)
{
    simul_task *t = simul__task_require(__func__);
    if (!t)
        return -EPERM;
    return simul__task_check(t);
}
