/* opponent.c — the opponents: one task per board that connects to the master, says HELLO,
 * and answers each of his moves after thinking for the opponent's time (measured from when his
 * move arrived, to an absolute deadline). A few of them ("--vanish") hang up mid-game. */
#include "chess.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define CONNECTS_AT_ONCE 128 /* thousands of SYNs at once overflow the listen queue */

typedef struct opponent {
    opponents *all;
    simul_semaphore *connecting;
    long id;
} opponent;

static const char *why(int rc)
{
    return rc == -ENODATA ? "the master hung up" : rc == -EPROTO ? "protocol error"
                                                                  : simul_strerror(rc);
}

bool chess_vanishes(const chess_config *cfg, long id)
{
    /* Exactly `vanish` boards satisfy this, spread over the range (0, B/K, 2B/K, ... roughly). */
    long k = cfg->vanish < cfg->p.boards ? cfg->vanish : cfg->p.boards;
    return k > 0 && (long long)id * k % cfg->p.boards < k;
}

unsigned chess_vanish_move(const chess_config *cfg)
{
    return (unsigned)(cfg->p.moves + 1) / 2;
}

static int send_line(simul_stream *st, const chess_msg *m)
{
    char line[CHESS_LINE_MAX + 1];
    int n = chess_format(m, line, sizeof line);
    if (n < 0)
        return -EINVAL;
    return simul_stream_write(st, line, (size_t)n);
}

/* Reads and parses one line. Returns 0, or a negative errno (-EPROTO for a line that does not
 * parse, -ENODATA at EOF). */
static int read_msg(simul_stream *st, chess_msg *m)
{
    const char *line;
    long n = simul_stream_readline(st, &line);
    if (n == 0)
        return -ENODATA;
    if (n < 0)
        return (int)n;
    return chess_parse(line, (size_t)n, m) < 0 ? -EPROTO : 0;
}

static int play(opponent *op, simul_stream *st)
{
    const chess_config *cfg = op->all->cfg;
    const unsigned moves = (unsigned)cfg->p.moves;
    const bool vanishes = chess_vanishes(cfg, op->id);
    chess_msg m;
    int rc = send_line(st, &(chess_msg){.kind = CHESS_HELLO, .a = CHESS_VERSION,
                                        .b = (unsigned)op->id});
    if (rc < 0 || (rc = read_msg(st, &m)) < 0)
        return rc;
    if (m.kind != CHESS_START || m.a != (unsigned)op->id || m.b != moves) {
        fprintf(stderr, "chess_simul: board %ld: refused by the master (%s)\n", op->id,
                m.kind == CHESS_ERR ? m.text : "unexpected reply");
        return -EPROTO;
    }
    chess_pos pos;
    chess_pos_start(&pos);
    unsigned played = 0, errors = 0; /* the master's moves taken; his lines refused */
    for (;;) {
        if ((rc = read_msg(st, &m)) < 0)
            return rc;
        int64_t got_ns = simul_now_ns();
        switch (m.kind) {
        case CHESS_MOVE: {
            if (vanishes && m.a == chess_vanish_move(cfg))
                return 1; /* hang up without a word: the master must cope */
            const char *refused = NULL;
            if (m.a != played + 1 || played == moves)
                refused = "out-of-turn";
            else if ((rc = chess_play_uci(&pos, m.text, strlen(m.text))) < 0)
                refused = chess_rules_strerror(rc); /* "illegal-move" */
            if (refused) {
                /* Like the master: say why, count it, and wait for a move we can take. */
                chess_msg err = {.kind = CHESS_ERR};
                snprintf(err.text, sizeof err.text, "%s", refused);
                if ((rc = send_line(st, &err)) < 0)
                    return rc;
                if (++errors >= CHESS_MAX_ERRORS)
                    return -EPROTO;
                break;
            }
            played = m.a;
            if ((rc = send_line(st, &(chess_msg){.kind = CHESS_ACK, .a = m.a})) < 0)
                return rc;
            chess_move mv;
            if (chess_pick_move(&pos, chess_move_seed((unsigned)op->id, m.a, 1), &mv) == 0)
                break; /* his move mated or stalemated us: END follows */
            chess_make_move(&pos, mv);
            chess_msg reply = {.kind = CHESS_MOVE, .a = m.a};
            chess_move_uci(mv, reply.text);
            /* Thinking: from when his move arrived, so our own lateness does not add up. */
            if ((rc = simul_sleep_until_ns(got_ns + cfg->opponent_ns)) < 0)
                return rc;
            if ((rc = send_line(st, &reply)) < 0)
                return rc;
            break;
        }
        case CHESS_ACK:
            break;
        case CHESS_END: {
            /* The result must be the one on our board: the game's real end, or "*" after the
             * configured moves. */
            const char *result = chess_result(&pos);
            bool over = strcmp(result, "*") != 0;
            if (m.a != played || strcmp(m.text, result) != 0 || (!over && played != moves)) {
                fprintf(stderr,
                        "chess_simul: board %ld: END %u %s, but after %u moves here it is %s\n",
                        op->id, m.a, m.text, played, result);
                return -EPROTO;
            }
            return 0;
        }
        case CHESS_ERR:
            fprintf(stderr, "chess_simul: board %ld: the master says ERR %s\n", op->id, m.text);
            return -EPROTO;
        default:
            return -EPROTO;
        }
    }
}

static int opponent_task(void *arg)
{
    opponent *op = arg;
    const chess_config *cfg = op->all->cfg;
    simul_stream *st = NULL;
    int rc = simul_semaphore_acquire(op->connecting);
    if (rc == 0) {
        rc = simul_open_connection(cfg->host, op->all->port, &st);
        simul_semaphore_release(op->connecting);
    }
    if (rc == 0) {
        simul_stream_set_limit(st, CHESS_LINE_MAX - 1);
        rc = play(op, st);
        simul_stream_close(st);
    }
    if (rc < 0 && rc != -ECANCELED && op->all->failed++ == 0) {
        op->all->first_error = rc;
        op->all->first_failed = op->id;
    }
    return 0; /* a failed board must not cancel the others (the group would) */
}

int opponents_task(void *arg)
{
    opponents *all = arg;
    simul_semaphore *connecting;
    int rc = simul_semaphore_new(&connecting, CONNECTS_AT_ONCE);
    if (rc < 0)
        return rc;
    opponent *ops = calloc((size_t)all->count, sizeof *ops);
    simul_group *g;
    if (!ops || (rc = simul_group_new(&g)) < 0) {
        free(ops);
        simul_semaphore_free(connecting);
        return ops ? rc : -ENOMEM;
    }
    simul_task_opts opts = {.name = "opponent", .stack_size = 32 * 1024};
    for (long i = 0; i < all->count && rc == 0; i++) {
        ops[i] = (opponent){.all = all, .connecting = connecting, .id = all->first + i};
        rc = simul_group_spawn(g, opponent_task, &ops[i], &opts);
    }
    int join_rc = simul_group_join(g, NULL);
    /* One line for them all: when the master goes away every board would say the same. */
    if (all->failed)
        fprintf(stderr, "chess_simul: %ld of %ld opponents could not finish (board %ld: %s)\n",
                all->failed, all->count, all->first_failed, why(all->first_error));
    free(ops);
    simul_semaphore_free(connecting);
    return rc < 0 ? rc : join_rc;
}
