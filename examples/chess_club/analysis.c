/* analysis.c — the chess club's CPU-bound endpoint, GET /perft?fen=<FEN>&depth=<1..5>: the leaf
 * nodes of the legal move tree (perft) by the chess_simul rules. The idea: one move generation
 * (depth 1) runs on the loop; deeper walks run on the executor, at most CLUB_PERFT_THREADS at a
 * time per web process, each checking a stop flag at every position it expands, so a client that
 * leaves, the deadline or the budget stops the walk within one expansion (<= 10 us).
 *
 * Where the work runs, and why (best of repeated runs on this 2-core machine, -O2):
 * - one position's moves cost 1 us (the initial position) to 10 us (218 moves, the most any
 *   position has); a walk 2-7 us per position it expands: the initial position takes 0.02 ms at
 *   depth 2, 0.5 ms at 3, 19 ms at 4, ~0.5 s at 5; Kiwipete 0.1 ms at 2, 5 ms at 3, 0.7 s at 4,
 *   ~30 s at 5 (hence the budget below, not only the depth cap).
 * - a simul_to_thread round trip costs ~14 us (bench/offload_bench thread, machine busy), so
 *   depth 1 (<= 10 us) stays on the loop: offloading would cost more than the work. Depth 2 is
 *   0.02-0.1 ms for real positions but not bounded by much (each of up to 218 replies needs its
 *   own generation), and depth 3+ holds a core for ms to seconds: a loop must not (the guide:
 *   nothing over a millisecond or so on the loop; a held loop stalls every SSE stream and the
 *   /readyz of its process), so everything deeper goes to the executor.
 * - threads, not the process pool: a pool call costs about the same here (~14 us), but the walk
 *   stops cooperatively within one position, so nothing needs the pool's SIGKILL (which costs a
 *   fork to replace the worker); the rules are our own pure code, with no crash to isolate; and
 *   no second set of processes beside the supervisor's.
 * - one walk at a time per process by default (CLUB_PERFT_THREADS=1): the supervisor runs one
 *   web process per core, so N processes walk on N cores and their loops stay free for I/O. With
 *   the executor's default (CPUs + 4 threads) one process alone would fill every core and the
 *   process count would stop being the lever that scales the service (bench/run_stack.sh
 *   measures exactly that lever). Behind a balancer, run it with --reuseport 1 (see web.c).
 * Environment (read once per process): CLUB_PERFT_THREADS (1), CLUB_PERFT_QUEUE (64: requests
 * waiting for a walker beyond this get 503), CLUB_PERFT_BUDGET (250000 positions expanded per
 * request: the initial position at depth 5 takes 206,604; beyond: 422), CLUB_PERFT_TIMEOUT
 * (30 s: waiting plus walking; beyond: 503). */
#include <errno.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <simul.h>
#include <simul/http.h>

#include "../chess_simul/rules.h"
#include "analysis.h"

#define DEPTH_MAX 5
#define START_FEN "rnbqkbnr/pppppppp/8/8/8/8/PPPPPPPP/RNBQKBNR w KQkq - 0 1"

static long walkers = 1, queue_max = 64, budget = 250000;
static double timeout_s = 30;
static simul_semaphore *gate; /* walkers' slots; made on the first request, in the worker */
static long waiting;          /* requests waiting for a slot */

typedef struct perft_job {
    chess_pos pos;
    int depth;
    long budget;      /* positions it may expand */
    long expanded;    /* positions expanded so far */
    uint64_t nodes;
    atomic_bool stop; /* set by the handler that gave up: the walk returns at its next position */
    atomic_int refs;  /* the handler's and the executor's (discard) once handed over */
} perft_job;

/* Counts into j->nodes. -ECANCELED once stop is set, -E2BIG past the budget. */
static int walk(perft_job *j, const chess_pos *p, int depth)
{
    if (atomic_load_explicit(&j->stop, memory_order_relaxed)) return -ECANCELED;
    if (++j->expanded > j->budget) return -E2BIG;
    chess_move moves[CHESS_LEGAL_MAX];
    int n = chess_legal_moves(p, moves);
    if (depth == 1) {
        j->nodes += (uint64_t)n;
        return 0;
    }
    for (int i = 0; i < n; i++) {
        chess_pos q = *p;
        chess_make_move(&q, moves[i]);
        int rc = walk(j, &q, depth - 1);
        if (rc < 0) return rc;
    }
    return 0;
}

static int walk_job(void *arg)
{
    perft_job *j = arg;
    return walk(j, &j->pos, j->depth);
}

static void job_unref(perft_job *j)
{
    if (atomic_fetch_sub(&j->refs, 1) == 1) free(j);
}

/* The executor's side of a walk its handler gave up on: says how far it got (the e2e test waits
 * for this line: it proves the walk itself stopped, not only the request), then lets go. */
static void job_discard(void *arg, int result)
{
    perft_job *j = arg;
    if (result != -ECANCELED || j->expanded > 0)
        fprintf(stderr, "club_web[%d]: perft depth %d stopped after %ld positions (%s)\n",
                (int)getpid(), j->depth, j->expanded, result == -ECANCELED ? "abandoned"
                                                                            : "finished late");
    job_unref(j);
}

static long env_long(const char *name, long def, long lo, long hi)
{
    const char *s = getenv(name);
    if (!s || !*s) return def;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi) {
        fprintf(stderr, "club_web: %s=%s ignored (want %ld..%ld), using %ld\n", name, s, lo, hi,
                def);
        return def;
    }
    return v;
}

static int setup(void)
{
    if (gate) return 0;
    walkers = env_long("CLUB_PERFT_THREADS", 1, 1, 256);
    queue_max = env_long("CLUB_PERFT_QUEUE", 64, 0, 100000);
    budget = env_long("CLUB_PERFT_BUDGET", 250000, 1, 1000000000);
    timeout_s = (double)env_long("CLUB_PERFT_TIMEOUT", 30, 1, 3600);
    if (simul_executor_max_threads() < walkers) simul_executor_set_max_threads((int)walkers);
    return simul_semaphore_new(&gate, (unsigned)walkers);
}

static int error_json(simul_http_response *res, int status, const char *why)
{
    json_t *v = json_pack("{s:s}", "error", why);
    int rc = v ? simul_http_response_json(res, status, v) : -ENOMEM;
    json_decref(v);
    return rc;
}

/* Runs j on the executor once a walker's slot is free. Returns walk's result (0, -E2BIG), or
 * -EBUSY (queue full), -ECANCELED (the client left), -ETIMEDOUT, -ENOMEM, -EAGAIN. On every
 * return the caller still holds one reference to j. */
static int walk_offloaded(perft_job *j)
{
    int rc = simul_semaphore_try_acquire(gate);
    if (rc < 0 && waiting >= queue_max) return -EBUSY;
    simul_scope sc;
    simul_scope_timeout(&sc, timeout_s);
    if (rc < 0) {
        waiting++;
        rc = simul_semaphore_acquire(gate);
        waiting--;
        if (rc == 0 && simul_task_cancel_requested(simul_task_current()))
            rc = simul_semaphore_release(gate) == 0 ? -ECANCELED : rc; /* the client left */
    }
    int result = 0;
    if (rc == 0) {
        atomic_store(&j->refs, 2);
        rc = simul_to_thread_discard(walk_job, j, job_discard, &result);
        if (rc == -ECANCELED || rc == -ETIMEDOUT || rc == -ENOMEM) {
            /* The executor holds the other reference (or discard already dropped it): tell the
             * walk to stop; it lets go of j when it does. */
            atomic_store(&j->stop, true);
        } else {
            atomic_store(&j->refs, 1); /* never handed over, or finished: discard is not called */
        }
        simul_semaphore_release(gate);
    }
    simul_scope_end(&sc);
    return rc < 0 ? rc : result;
}

int club_perft(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)arg;
    const char *ds = simul_http_request_query(req, "depth");
    const char *fen = simul_http_request_query(req, "fen");
    if (!ds || strlen(ds) != 1 || ds[0] < '1' || ds[0] > '0' + DEPTH_MAX)
        return error_json(res, 400, "want depth=1..5 (and fen=<FEN>, default the initial "
                                    "position)");
    if (!fen) fen = START_FEN;
    chess_pos pos;
    size_t flen = strlen(fen);
    int rc = flen > CHESS_FEN_MAX ? CHESS_FEN_E_TOO_LONG : chess_pos_from_fen(&pos, fen, flen);
    if (rc < 0) {
        char why[160];
        snprintf(why, sizeof why, "bad fen (%s): want <placement> <w|b> <castling> <en passant> "
                 "[halfmove fullmove]", chess_rules_strerror(rc));
        return error_json(res, 400, why);
    }
    if ((rc = setup()) < 0) return rc;
    perft_job *j = calloc(1, sizeof *j);
    if (!j) return -ENOMEM;
    j->pos = pos;
    j->depth = ds[0] - '0';
    j->budget = budget;
    atomic_init(&j->stop, false);
    atomic_init(&j->refs, 1);
    /* Depth 1 is one move generation (<= 10 us): cheaper here than a thread round trip. */
    int depth = j->depth;
    rc = depth == 1 ? walk(j, &j->pos, 1) : walk_offloaded(j);
    uint64_t nodes = rc == 0 ? j->nodes : 0; /* else a walk given up on may still write it */
    job_unref(j);
    if (rc == -E2BIG) {
        char why[160];
        snprintf(why, sizeof why, "over the budget of %ld positions expanded: ask a lower depth",
                 budget);
        return error_json(res, 422, why);
    }
    if (rc == -EBUSY || rc == -ETIMEDOUT || rc == -EAGAIN) {
        simul_http_response_header(res, "Retry-After", "1");
        return error_json(res, 503, rc == -EBUSY ? "busy: too many analyses queued"
                                                 : "busy: no result within the deadline");
    }
    if (rc < 0) return rc; /* -ECANCELED: the client left, nobody to answer */
    json_t *v = json_pack("{s:s,s:i,s:I}", "fen", fen, "depth", depth, "nodes", (json_int_t)nodes);
    rc = v ? simul_http_response_json(res, 200, v) : -ENOMEM;
    json_decref(v);
    return rc;
}
