/* master.c — the chess club's master process: consumes simul jobs from RabbitMQ (a prefetch of
 * them at once, one task each), plays every board's moves with the chess_simul engine's rules
 * and writes each move to Redis with the move-number script (store.h), which also publishes it.
 * The job is acked only when the simul has ended; a master killed mid-simul leaves it unacked,
 * the broker redelivers it, and the next master rebuilds each board by replaying the move list
 * stored in Redis: the list is the truth, so no move is played twice and none is lost.
 * Usage: club_master --redis HOST:PORT --amqp URL [--prefetch N]   (SIGTERM/SIGINT: stop; the
 * jobs in hand go back to the queue) */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <simul.h>
#include <simul/amqp.h>
#include <simul/redis.h>

#include "../chess_simul/rules.h"
#include "store.h"

static const char *redis_addr = "127.0.0.1:6379";
static const char *amqp_url = "amqp://guest:guest@127.0.0.1:5672/";
static int prefetch = 4;

static simul_redis_conn *rds;
static simul_redis_script *move_script, *finish_script;
static simul_group *jobs;

/* The position's FEN (for the page and GET /simuls/<id>; the engine only reads FEN). */
static void pos_fen(const chess_pos *p, char out[CHESS_FEN_MAX])
{
    static const char letters[] = " pnbrqk";
    size_t k = 0;
    for (int rank = 7; rank >= 0; rank--) {
        int empty = 0;
        for (int file = 0; file < 8; file++) {
            unsigned char pc = p->sq[rank * 8 + file];
            if (!pc) {
                empty++;
                continue;
            }
            if (empty) out[k++] = (char)('0' + empty);
            empty = 0;
            char c = letters[pc & 7];
            out[k++] = pc & 8 ? c : (char)(c - 'a' + 'A');
        }
        if (empty) out[k++] = (char)('0' + empty);
        if (rank) out[k++] = '/';
    }
    char castle[5] = "", *c = castle;
    if (p->castle & 1) *c++ = 'K';
    if (p->castle & 2) *c++ = 'Q';
    if (p->castle & 4) *c++ = 'k';
    if (p->castle & 8) *c++ = 'q';
    *c = 0;
    char ep[3] = "-";
    if (p->ep >= 0) {
        ep[0] = (char)('a' + p->ep % 8);
        ep[1] = (char)('1' + p->ep / 8);
        ep[2] = 0;
    }
    snprintf(out + k, CHESS_FEN_MAX - k, " %c %s %s %u %u", p->side ? 'b' : 'w',
             castle[0] ? castle : "-", ep, p->halfmove, p->fullmove);
}

typedef struct board {
    chess_pos pos;
    int n;      /* moves stored */
    bool over;  /* mated, stalemated, or its moves all played */
} board;

static int field_int(const simul_redis_reply *h, const char *name, long *out)
{
    const simul_redis_reply *v = simul_redis_reply_map_get(h, name);
    const char *s = v ? simul_redis_reply_str(v, NULL) : NULL;
    if (!s) return -ENOENT;
    char *end;
    *out = strtol(s, &end, 10);
    return *end ? -EINVAL : 0;
}

/* Rebuilds board b from its stored moves: every one must be legal from the start. */
static int load_board(long id, int b, long moves, board *bd)
{
    char key[CLUB_KEY_MAX];
    club_key_moves(key, id, b);
    simul_redis_reply *r;
    int rc = simul_redis_command(rds, &r, "LRANGE %s 0 -1", key);
    if (rc < 0) {
        simul_redis_reply_free(r);
        return rc;
    }
    chess_pos_start(&bd->pos);
    bd->n = (int)simul_redis_reply_len(r);
    for (int i = 0; i < bd->n; i++) {
        size_t len;
        const char *m = simul_redis_reply_str(simul_redis_reply_elem(r, (size_t)i), &len);
        if (!m || chess_play_uci(&bd->pos, m, len) < 0) {
            fprintf(stderr, "club_master: simul %ld board %d: stored move %d is not legal\n", id, b,
                    i + 1);
            simul_redis_reply_free(r);
            return -EBADMSG;
        }
    }
    simul_redis_reply_free(r);
    bd->over = bd->n >= moves || chess_game_status(&bd->pos) != CHESS_ONGOING;
    return 0;
}

/* Plays board b's next move and stores it (the script skips it if it is there already). */
static int play_move(long id, int b, long moves, board *bd)
{
    chess_move mv;
    uint32_t seed = chess_move_seed((unsigned)b, (unsigned)bd->n, bd->pos.side) ^
                    (uint32_t)(id * 2654435761u);
    if (chess_pick_move(&bd->pos, seed, &mv) == 0) {
        bd->over = true; /* cannot happen: a finished game is over on load */
        return 0;
    }
    chess_pos next = bd->pos;
    chess_make_move(&next, mv);
    int n = bd->n + 1;
    bool over = n >= moves || chess_game_status(&next) != CHESS_ONGOING;
    const char *result = over ? chess_result(&next) : "";
    char uci[6], fen[CHESS_FEN_MAX], sb[16], sn[16];
    chess_move_uci(mv, uci);
    pos_fen(&next, fen);
    snprintf(sb, sizeof sb, "%d", b);
    snprintf(sn, sizeof sn, "%d", n);
    json_t *ev = json_pack("{s:i,s:i,s:s,s:s,s:s}", "board", b, "n", n, "move", uci, "fen", fen,
                           "result", result);
    char *evs = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
    json_decref(ev);
    if (!evs) return -ENOMEM;
    char ksimul[CLUB_KEY_MAX], kmoves[CLUB_KEY_MAX];
    club_key_simul(ksimul, id);
    club_key_moves(kmoves, id, b);
    const char *keys[] = {ksimul, kmoves};
    const char *args[] = {sb, sn, uci, fen, result, evs};
    simul_redis_reply *r;
    int rc = simul_redis_script_call(rds, move_script, &r, 2, keys, NULL, 6, args, NULL);
    free(evs);
    if (rc == -EREMOTEIO) {
        fprintf(stderr, "club_master: simul %ld board %d move %d: %s\n", id, b, n,
                simul_redis_reply_str(r, NULL));
    }
    simul_redis_reply_free(r);
    if (rc < 0) return rc;
    bd->pos = next;
    bd->n = n;
    bd->over = over;
    return 0;
}

/* Plays simul `id` to its end from whatever Redis holds. 0 when it has ended; -ENOENT when
 * there is no such simul; another negative errno when Redis failed (the job is retried). */
static int play(long id)
{
    char ksimul[CLUB_KEY_MAX];
    club_key_simul(ksimul, id);
    simul_redis_reply *h;
    int rc = simul_redis_command(rds, &h, "HGETALL %s", ksimul);
    if (rc < 0) {
        simul_redis_reply_free(h);
        return rc;
    }
    long nb = 0, moves = 0, pace = 0;
    if (field_int(h, "boards", &nb) < 0 || field_int(h, "moves", &moves) < 0 || nb < 1 ||
        nb > CLUB_MAX_BOARDS || moves < 1 || moves > CLUB_MAX_MOVES) {
        simul_redis_reply_free(h);
        return -ENOENT;
    }
    field_int(h, "pace_ms", &pace);
    simul_redis_reply_free(h);
    board bd[CLUB_MAX_BOARDS];
    int left = 0;
    for (int b = 0; b < nb; b++) {
        if ((rc = load_board(id, (int)b, moves, &bd[b])) < 0) return rc;
        left += !bd[b].over;
    }
    simul_redis_reply *r = NULL;
    if (left > 0) {
        rc = simul_redis_command(rds, &r, "HSET %s state playing master %d", ksimul, (int)getpid());
        simul_redis_reply_free(r);
        if (rc < 0) return rc;
    }
    /* A simul: the master goes round the boards, one move at each in turn. */
    while (left > 0) {
        for (int b = 0; b < nb; b++) {
            if (bd[b].over) continue;
            if (pace > 0 && (rc = simul_sleep((double)pace / 1000.0)) < 0) return rc;
            if ((rc = play_move(id, b, moves, &bd[b])) < 0) return rc;
            left -= bd[b].over;
        }
    }
    const char *args[] = {"{\"end\":true}"};
    const char *keys[] = {ksimul};
    rc = simul_redis_script_call(rds, finish_script, &r, 1, keys, NULL, 1, args, NULL);
    simul_redis_reply_free(r);
    return rc < 0 ? rc : 0;
}

static int job_task(void *arg)
{
    simul_amqp_message *m = arg;
    char buf[24];
    size_t n = m->len < sizeof buf - 1 ? m->len : sizeof buf - 1;
    memcpy(buf, m->body, n);
    buf[n] = 0;
    char *end;
    long id = strtol(buf, &end, 10);
    int rc = *end || id <= 0 ? -ENOENT : play(id);
    if (rc == 0) {
        fprintf(stderr, "club_master: simul %ld ended%s\n", id, m->redelivered ? " (resumed)" : "");
        simul_amqp_ack(m, 0);
    } else if (rc == -ENOENT) {
        fprintf(stderr, "club_master: job '%s': no such simul, dropped\n", buf);
        simul_amqp_reject(m, 0);
    } else if (rc != -ECANCELED) {
        /* Redis failed mid-simul: back to the queue, to resume from what was stored. */
        fprintf(stderr, "club_master: simul %ld: %s; requeued\n", id, simul_strerror(rc));
        simul_amqp_nack(m, SIMUL_AMQP_REQUEUE);
    } /* cancelled: we stop, and the closing channel gives the job back */
    simul_amqp_message_free(m);
    return 0; /* a job's failure must not cancel the others */
}

static int consume_task(void *arg)
{
    simul_amqp_consumer *k = arg;
    for (;;) {
        simul_amqp_message *m;
        int rc = simul_amqp_consumer_next(k, &m);
        if (rc < 0) {
            if (rc != -ECANCELED) fprintf(stderr, "club_master: consume: %s\n", simul_strerror(rc));
            return rc == -ECANCELED ? 0 : rc;
        }
        if ((rc = simul_group_spawn(jobs, job_task, m, NULL)) < 0) {
            simul_amqp_message_free(m);
            return rc;
        }
    }
}

static int main_task(void *arg)
{
    (void)arg;
    static char host[256];
    const char *colon = strrchr(redis_addr, ':');
    if (!colon || (size_t)(colon - redis_addr) >= sizeof host) {
        fprintf(stderr, "club_master: --redis HOST:PORT\n");
        return 2;
    }
    memcpy(host, redis_addr, (size_t)(colon - redis_addr));
    simul_redis_opts ro = {.host = host, .port = colon + 1, .client_name = "club_master"};
    simul_amqp_opts ao = {.url = amqp_url, .connection_name = "club_master"};
    simul_amqp_conn *amqp = NULL;
    simul_amqp_channel *ch = NULL;
    simul_amqp_consumer *k = NULL;
    int rc = simul_redis_script_new(club_script_move, &move_script);
    if (rc == 0) rc = simul_redis_script_new(club_script_finish, &finish_script);
    if (rc == 0) rc = simul_redis_connect(&ro, &rds);
    if (rc == 0) rc = simul_amqp_connect(&ao, &amqp);
    if (rc == 0) rc = simul_amqp_channel_open(amqp, &ch);
    if (rc == 0)
        rc = simul_amqp_queue_declare(ch, CLUB_QUEUE, SIMUL_AMQP_DURABLE, NULL, 0, NULL, 0, NULL,
                                      NULL);
    if (rc == 0) rc = simul_amqp_qos(ch, (uint16_t)prefetch);
    if (rc == 0) rc = simul_amqp_consume(ch, CLUB_QUEUE, NULL, 0, &k);
    if (rc == 0) rc = simul_group_new(&jobs);
    if (rc == 0) rc = simul_group_spawn(jobs, consume_task, k, NULL);
    if (rc < 0) {
        fprintf(stderr, "club_master: start: %s\n", simul_strerror(rc));
    } else {
        fprintf(stderr, "club_master: consuming %s (prefetch %d)\n", CLUB_QUEUE, prefetch);
        const int sigs[] = {SIGTERM, SIGINT};
        simul_wait_signal(sigs, 2);
        simul_group_cancel(jobs);
    }
    simul_scope shield;
    simul_scope_shield(&shield);
    if (jobs) simul_group_join(jobs, NULL);
    if (k) simul_amqp_consumer_free(k);
    if (amqp) simul_amqp_close(amqp); /* unacked jobs go back to the queue */
    simul_redis_close(rds);
    simul_scope_end(&shield);
    simul_redis_script_free(move_script);
    simul_redis_script_free(finish_script);
    return rc < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--redis") == 0 && i + 1 < argc) {
            redis_addr = argv[++i];
        } else if (strcmp(argv[i], "--amqp") == 0 && i + 1 < argc) {
            amqp_url = argv[++i];
        } else if (strcmp(argv[i], "--prefetch") == 0 && i + 1 < argc) {
            prefetch = atoi(argv[++i]);
            if (prefetch < 1 || prefetch > 1000) prefetch = 4;
        } else {
            fprintf(stderr, "usage: %s [--redis HOST:PORT] [--amqp URL] [--prefetch N]\n",
                    argv[0]);
            return 2;
        }
    }
    setvbuf(stderr, NULL, _IOLBF, 0);
    int rc = simul_run(main_task, NULL);
    return rc == 0 ? 0 : 1;
}
