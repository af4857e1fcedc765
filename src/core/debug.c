/* debug.c — what debug mode reports: tasks that hold the loop (when they suspend, and through a
 * watchdog thread while they still run), failures nobody collected, handles used twice, scopes
 * left open, calls made outside a task, tasks alive when the loop closes; and the library's own
 * assertion failures. Every message names the call the user made and says what to do. */
#include <stdlib.h>
#include <string.h>

#include <execinfo.h>
#include <signal.h>
#include <unistd.h>

#include "loop.h"

bool simul__debug_env(void)
{
    const char *v = getenv("SIMUL_DEBUG");
    return v && *v && strcmp(v, "0") != 0;
}

void simul__debug_slow(simul_loop *loop, simul_task *t, int64_t ran_ns)
{
    fprintf(stderr,
            "simul: task '%s' held the loop for %.1f ms without suspending (threshold %.1f ms)\n",
            t->name, (double)ran_ns / 1e6, (double)loop->slow_ns / 1e6);
}

void simul__debug_failed_unjoined(simul_task *t, const char *why)
{
    fprintf(stderr, "simul: task '%s' %s: it failed with %s (%s)\n", t->name, why,
            simul_errname(t->result), simul_strerror(t->result));
}

void simul__debug_survivors(simul_loop *loop)
{
    if (loop->handles)
        fprintf(stderr, "simul: the loop cannot close: %zu I/O handle(s) (servers, transports, "
                        "streams) still open\n", loop->handles);
    if (!loop->live)
        return;
    fprintf(stderr, "simul: the loop cannot close: %zu task(s) still alive:", loop->live);
    int shown = 0;
    for (simul_task *t = loop->all; t && shown < 20; t = t->all_next) {
        if (t->state == SIMUL__TASK_DONE)
            continue;
        fprintf(stderr, " '%s'", t->name);
        shown++;
    }
    fprintf(stderr, loop->live > 20 ? " ...\n" : "\n");
}

void simul__assert_fail(const char *what, const char *file, int line)
{
    simul_loop *loop = simul__loop();
    const char *task = loop && loop->head.current ? loop->head.current->name : "(no task)";
    fprintf(stderr, "simul: internal assertion failed: %s at %s:%d in task '%s'\n", what, file,
            line, task);
    abort();
}

void simul__debug_outside_task(simul_loop *loop, const char *call)
{
    if (!loop)
        fprintf(stderr, "simul: %s() called before any event loop exists on this thread (in main?): "
                        "it suspends, so it must run inside a task; it returns -EPERM. Start one "
                        "with simul_run(main_task, arg) (asyncio.run) and call %s() from "
                        "main_task\n", call, call);
    else
        fprintf(stderr, "simul: %s() called outside a task (from a callback, or on the loop's "
                        "thread outside simul_loop_run*): it suspends, so it must run inside a "
                        "task (simul_task_spawn); it returns -EPERM\n", call);
}

void simul__debug_bad_handle(const char *call, const simul_task *t)
{
    if (!t)
        fprintf(stderr, "simul: %s(): a NULL task handle; it returns -EINVAL\n", call);
    else if (t->magic == SIMUL__TASK_DEAD || (t->magic == SIMUL__TASK_MAGIC && !t->handle_held))
        /* A record given back stays in quarantine (QUARANTINE_DEBUG) with its name. */
        fprintf(stderr, "simul: %s(): task '%s' was already joined or detached: a task handle is "
                        "given back once (by simul_task_join, simul_gather, simul_wait_for, "
                        "simul_loop_run_until_complete or simul_task_detach); unlike asyncio, a "
                        "task cannot be awaited twice, so keep the result of the first join; it "
                        "returns -EINVAL\n", call, t->name);
    else
        fprintf(stderr, "simul: %s(): %p is not a task handle (never a simul_task, or freed long "
                        "ago); it returns -EINVAL\n", call, (const void *)t);
}

void simul__debug_scopes_left_open(simul_task *t)
{
    /* Only what the task record kept: the scopes themselves were in frames that are gone. */
    bool shield = t->scope_flags & SIMUL__SCOPE_SHIELD;
    fprintf(stderr, "simul: task '%s' returned with %u scope(s) still open (the innermost a %s "
                    "scope, from %s): every scope must be ended with simul_scope_end() on every "
                    "path out of the function that began it, return and error paths too "
                    "(SIMUL_SCOPE_AUTO does it for you); the task's later waits no longer see "
                    "them\n",
            t->name, (unsigned)t->nscopes, shield ? "shield" : "deadline",
            shield ? "simul_scope_shield" : "simul_scope_timeout / simul_scope_deadline_ns");
}

/* ---- the watchdog ------------------------------------------------------------------------ */

/* The loop thread publishes, at each switch, which task runs and since when; the watchdog thread
 * wakes every half threshold and reports a task that has run twice the threshold without
 * switching out, once per run. Everything it reads is under `lock`. */
struct simul__debug_watch {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool quit;
    bool busy;         /* a task runs */
    uint64_t seq;      /* bumped at each switch in */
    int64_t since;     /* when it was switched in */
    int64_t slow_ns;   /* the loop's threshold when it was */
    char name[32];
};

static void *watch_main(void *arg)
{
    struct simul__debug_watch *w = arg;
    uint64_t reported = 0;
    pthread_mutex_lock(&w->lock);
    while (!w->quit) {
        int64_t period = w->slow_ns / 2;
        period = period < 5000000 ? 5000000 : period > 1000000000 ? 1000000000 : period;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t at = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + period;
        ts.tv_sec = at / 1000000000;
        ts.tv_nsec = at % 1000000000;
        pthread_cond_timedwait(&w->cond, &w->lock, &ts);
        if (w->quit || !w->busy || w->seq == reported)
            continue;
        int64_t ran = simul__clock_ns() - w->since;
        if (ran <= 2 * w->slow_ns)
            continue;
        reported = w->seq;
        char name[32];
        memcpy(name, w->name, sizeof name);
        int64_t slow = w->slow_ns;
        pthread_mutex_unlock(&w->lock);
        fprintf(stderr, "simul: task '%s' has been running for %.1f ms without suspending and "
                        "still is (threshold %.1f ms): no other task, callback or I/O runs until "
                        "it suspends. A loop whose calls all return at once never suspends "
                        "(simul_event_wait on an event already set, simul_queue_get_nowait, "
                        "try_acquire, a read that always has data): wait on something that "
                        "blocks, or call simul_yield() in the loop\n",
                name, (double)ran / 1e6, (double)slow / 1e6);
        pthread_mutex_lock(&w->lock);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

void simul__debug_watch_start(simul_loop *loop)
{
    struct simul__debug_watch *w = calloc(1, sizeof *w);
    if (!w)
        return; /* debug mode without the watchdog */
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&w->lock, NULL);
    w->slow_ns = loop->slow_ns;
    /* The watchdog must not take the signals the program waits for (simul_wait_signal). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&w->thread, NULL, watch_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        pthread_cond_destroy(&w->cond);
        pthread_mutex_destroy(&w->lock);
        free(w);
        return;
    }
    loop->watch = w;
}

void simul__debug_watch_in(simul_loop *loop, simul_task *t)
{
    struct simul__debug_watch *w = loop->watch;
    pthread_mutex_lock(&w->lock);
    w->busy = true;
    w->seq++;
    w->since = t->run_start;
    w->slow_ns = loop->slow_ns;
    memcpy(w->name, t->name, sizeof w->name);
    pthread_mutex_unlock(&w->lock);
}

void simul__debug_watch_out(simul_loop *loop)
{
    struct simul__debug_watch *w = loop->watch;
    pthread_mutex_lock(&w->lock);
    w->busy = false;
    pthread_mutex_unlock(&w->lock);
}

void simul__debug_watch_stop(simul_loop *loop)
{
    struct simul__debug_watch *w = loop->watch;
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->quit = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->lock);
    free(w);
    loop->watch = NULL;
}

void simul__debug_stuck(simul_loop *loop)
{
    fprintf(stderr, "simul: the loop is blocking with %zu suspended task(s) and no timer, fd or "
                    "pending callback that could wake them (deadlock?); only another thread "
                    "calling simul_loop_call_soon_threadsafe can\n", loop->live);
}

/* ---- compact tasks' hazard ----------------------------------------------------------------- */

bool simul__debug_stack_ptr(const void *p, const char *call, const char *what)
{
    simul_loop *loop = simul__loop();
    if (!loop || !p)
        return false;
    for (simul__runstack *r = loop->runstacks; r; r = r->next) {
        if ((const char *)p < r->lo || (const char *)p >= r->hi)
            continue;
        simul_task *cur = loop->head.current;
        const char *name = cur && cur->compact && cur->coro.shared == r ? cur->name
                           : r->owner && r->owner->name                ? r->owner->name
                                                                        : "?";
        fprintf(stderr,
                "simul: %s(): %s %p points into the stack of compact task '%s'. A compact "
                "task's frames are copied off the shared run stack whenever another compact "
                "task runs, so that address is valid only while '%s' runs: whoever reads it "
                "later reads another task's frames. Pass heap (or static) memory, or make '%s' "
                "stackful (simul_task_opts.mode = SIMUL_TASK_STACKFUL)\n",
                call, what, p, name, name, name);
        return true;
    }
    return false;
}

/* ---- the task dump ---------------------------------------------------------------------- */

/* A suspended task's stack is walked by the task itself: the dumper switches into it with a
 * request, simul__switch_out (where every suspended task sits) sees the request, records
 * backtrace() into it and switches straight back. The task's wait is untouched. */
#define DUMP_FRAMES 48

struct simul__dump_req {
    simul__coro *back; /* the dumper's context */
    void *frames[DUMP_FRAMES];
    int n;
};

void simul__debug_dump_resume(simul_task *t)
{
    struct simul__dump_req *r = t->dump;
    r->n = backtrace(r->frames, DUMP_FRAMES);
    t->dump = NULL;
    simul__coro_switch(&t->coro, r->back);
}

static void dump_wait(FILE *f, simul_loop *loop, simul_task *t, int64_t now)
{
    simul__wait *w = t->wait;
    fprintf(f, "waiting %.3f s", (double)(now - t->park_since) / 1e9);
    if (t->call)
        fprintf(f, " in %s()", t->call);
    if (!w) {
        fprintf(f, "\n");
        return;
    }
    switch (w->kind) {
    case SIMUL__WAIT_FD_READ:
    case SIMUL__WAIT_FD_WRITE:
        fprintf(f, ", for fd %d to be %s", w->fd,
                w->kind == SIMUL__WAIT_FD_READ ? "readable" : "writable");
        break;
    case SIMUL__WAIT_TASK: {
        simul_task *other = ((simul__watch *)w->ctx)->task;
        fprintf(f, ", for task '%s' (id %llu) to finish", other->name,
                (unsigned long long)other->id);
        break;
    }
    case SIMUL__WAIT_THREAD:
        fprintf(f, ", for a job on a worker thread");
        break;
    default:
        if (w->q)
            fprintf(f, ", queued on the waiters of %p (a lock, event, condition, semaphore, "
                       "barrier, queue, future or channel: see the call)", (void *)w->q);
        else if (t->wake_at == SIMUL__INF && !w->unlink)
            fprintf(f, ", for nothing that can end it but cancellation");
        break;
    }
    if (t->wake_at != SIMUL__INF)
        fprintf(f, ", on a timer due in %.3f s", (double)(t->wake_at - simul__clock_ns()) / 1e9);
    (void)loop;
    fprintf(f, "\n");
}

int simul_loop_dump_tasks(simul_loop *loop, int fd)
{
    if (!loop)
        loop = simul__loop();
    if (!loop)
        return -ENXIO;
    if (fd < 0 || !pthread_equal(loop->thread, pthread_self()) || loop != simul__loop())
        return -EINVAL;
    int dfd = dup(fd); /* a FILE of our own: fclose must not close the caller's fd */
    if (dfd < 0)
        return -errno;
    FILE *f = fdopen(dfd, "w");
    if (!f) {
        close(dfd);
        return -ENOMEM;
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    void *warm[1];
    backtrace(warm, 1); /* its first call loads the unwinder: here, not on a small task stack */
    simul_task *self = loop->head.current;
    simul__coro *here = self ? &self->coro : &loop->coro;
    int count = 0;
    fprintf(f, "simul: task dump: %zu task(s) alive on the loop%s\n", loop->live,
            self ? "" : " (dumped from the loop, not from a task)");
    for (simul_task *t = loop->all; t; t = t->all_next) {
        if (t->magic != SIMUL__TASK_MAGIC)
            continue;
        count++;
        fprintf(f, "task '%s' (id %llu): ", t->name, (unsigned long long)t->id);
        bool walk = false;
        switch (t->state) {
        case SIMUL__TASK_RUNNING:
            fprintf(f, "running (it called the dump)\n");
            break;
        case SIMUL__TASK_READY:
            if (t->started) {
                fprintf(f, "ready to run%s%s%s\n", t->call ? ", last suspended in " : "",
                        t->call ? t->call : "", t->call ? "()" : "");
                walk = true;
            } else {
                fprintf(f, "ready, not started yet\n");
            }
            break;
        case SIMUL__TASK_PARKED:
            dump_wait(f, loop, t, now);
            walk = true;
            break;
        case SIMUL__TASK_DONE:
            fprintf(f, "finished with %d%s%s, its handle not yet joined\n", t->result,
                    t->result < 0 ? " " : "", t->result < 0 ? simul_errname(t->result) : "");
            break;
        }
        if (t->deadline != SIMUL__INF && t->state != SIMUL__TASK_DONE)
            fprintf(f, "    deadline in %.3f s\n", (double)(t->deadline - simul__clock_ns()) / 1e9);
        if (t->cancel_requested && t->state != SIMUL__TASK_DONE)
            fprintf(f, "    cancellation requested%s\n", t->shielded ? " (held back by a shield)" : "");
#ifdef SIMUL_CORO_COMPACT
        if (t->compact && t->state != SIMUL__TASK_DONE) {
            bool evicted = t->coro.shared->owner != &t->coro;
            fprintf(f, "    compact task: %s", t == self ? "on the run stack (running)\n"
                                              : evicted ? "stack saved off the run stack, "
                                                        : "its frames still on the run stack, ");
            if (t != self)
                fprintf(f, "%zu bytes in use\n",
                        (size_t)(t->coro.shared->hi - (char *)t->coro.sp));
        }
#endif
        struct simul__dump_req req = {.back = here, .n = 0};
        if (walk && t != self && self && self->compact && t->compact) {
            /* The walk runs t on the run stack, where the dumper's frames (and `req`) live. */
            fprintf(f, "    (no backtrace: a compact task dumped from a compact task; dump from "
                       "the loop or a stackful task to walk it)\n");
            walk = false;
        }
        if (t == self) {
            req.n = backtrace(req.frames, DUMP_FRAMES);
        } else if (walk) {
            t->dump = &req;
            simul__coro_switch(here, &t->coro);
        }
        char **names = req.n > 0 ? backtrace_symbols(req.frames, req.n) : NULL;
        for (int i = 0; i < req.n; i++) {
            if (names)
                fprintf(f, "    #%d %s\n", i, names[i]);
            else
                fprintf(f, "    #%d %p\n", i, req.frames[i]);
        }
        free(names);
    }
    fprintf(f, "simul: end of task dump (%d task(s))\n", count);
    fclose(f);
    return count;
}
