/* master.c — the master's side: a connection task per board that only reads, checks and
 * acknowledges what the opponent sends, and ONE master task that decides where to go next,
 * walks, thinks and moves. The connection tasks hand him boards whose reply is in through a
 * FIFO queue, so he is never idle while any opponent waits for him. His sleeps are to absolute
 * deadlines chained from the previous one, so a late wake-up is not carried into the next move. */
#include "chess.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define HELLO_TIMEOUT_S 30.0 /* a connection must say HELLO within this (real seconds) */
#define LINGER_S 2.0         /* after END, how long to wait for the opponent to hang up */

void session_notice(session *s, const char *fmt, ...)
{
    size_t room = sizeof s->notices - s->notices_len;
    if (room < 2)
        return; /* the view prints them well before this fills; keep the first ones */
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(s->notices + s->notices_len, room - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    s->notices_len += (size_t)n < room - 1 ? (size_t)n : room - 2;
    s->notices[s->notices_len++] = '\n';
    s->notices[s->notices_len] = '\0';
}

int session_init(session *s, const chess_config *cfg, bool sync)
{
    memset(s, 0, sizeof *s);
    s->cfg = cfg;
    s->sync = sync;
    s->conns.next = s->conns.prev = &s->conns;
    s->boards = calloc((size_t)cfg->p.boards, sizeof *s->boards);
    if (!s->boards)
        return -ENOMEM;
    for (long i = 0; i < cfg->p.boards; i++) {
        s->boards[i].id = (unsigned)i;
        chess_pos_start(&s->boards[i].pos);
    }
    int rc = simul_event_new(&s->all_arrived);
    if (rc == 0)
        rc = simul_queue_new(&s->events, 0);
    if (rc < 0)
        session_free(s);
    return rc;
}

void session_free(session *s)
{
    if (s->events)
        simul_queue_free(s->events, NULL);
    simul_event_free(s->all_arrived);
    if (s->srv)
        simul_server_free(s->srv);
    free(s->boards);
    s->events = NULL;
    s->all_arrived = NULL;
    s->srv = NULL;
    s->boards = NULL;
}

/* One line to the board's opponent. Writes never suspend; a dead peer shows up on the read
 * side, where the connection task reports it. */
static void send_msg(board *b, const chess_msg *m)
{
    char line[CHESS_LINE_MAX + 1];
    int n = chess_format(m, line, sizeof line);
    if (n > 0 && b->stream)
        simul_stream_write(b->stream, line, (size_t)n);
}

static void send_err(session *s, simul_stream *st, const char *reason)
{
    char line[CHESS_LINE_MAX + 1];
    int n = snprintf(line, sizeof line, "ERR %s\n", reason);
    if (n > 0 && (size_t)n < sizeof line)
        simul_stream_write(st, line, (size_t)n);
    s->errs_sent++;
}

static void push(session *s, board *b)
{
    /* Unbounded queue: put_nowait fails only on ENOMEM, and then the master would wait for
     * ever; say so instead. */
    if (simul_queue_put_nowait(s->events, b) < 0) {
        fprintf(stderr, "chess_simul: out of memory queueing board %u\n", b->id);
        abort();
    }
}

static void end_board(session *s, board *b, board_state how, const char *why)
{
    if (b->state != BOARD_PLAYING)
        return;
    b->state = how;
    b->end_ns = simul_now_ns();
    if (how == BOARD_ABANDONED) {
        s->abandoned++;
        session_notice(s, "board %u: the opponent %s at move %u; the other boards play on", b->id,
                       why, b->master_moves);
        size_t len = strlen(s->abandoned_list);
        if (len + 24 < sizeof s->abandoned_list)
            snprintf(s->abandoned_list + len, sizeof s->abandoned_list - len, "%s%u@%u",
                     len ? "," : "", b->id, b->master_moves);
    } else {
        s->finished++;
    }
    push(s, b); /* a board that said HELLO counts as arrived even if it left before the start */
}

/* END with the game's result, and the board is done. */
static void finish_game(session *s, board *b, const char *result)
{
    chess_msg end = {.kind = CHESS_END, .a = b->master_moves};
    snprintf(end.text, sizeof end.text, "%s", result);
    send_msg(b, &end);
    s->results[strcmp(result, "1-0") == 0   ? RESULT_WHITE
               : strcmp(result, "0-1") == 0 ? RESULT_BLACK
               : strcmp(result, "*") == 0   ? RESULT_NONE
                                            : RESULT_DRAW]++;
    end_board(s, b, BOARD_FINISHED, NULL);
}

/* The opponent's line, in the light of where its game is. Returns false to give up on it. */
static bool on_line(session *s, board *b, const chess_msg *m)
{
    const unsigned moves = (unsigned)s->cfg->p.moves;
    switch (m->kind) {
    case CHESS_MOVE:
        /* Its turn only after the master's move n, and only once. */
        if (b->master_moves == 0 || b->replies == b->master_moves || m->a != b->master_moves) {
            send_err(s, b->stream, "out-of-turn");
            return ++b->errors < CHESS_MAX_ERRORS;
        }
        int rc = chess_play_uci(&b->pos, m->text, strlen(m->text));
        if (rc < 0) {
            send_err(s, b->stream, chess_rules_strerror(rc)); /* "illegal-move" */
            return ++b->errors < CHESS_MAX_ERRORS; /* its turn stays open */
        }
        memcpy(b->last_move, m->text, sizeof b->last_move);
        b->replies = m->a;
        s->moves++;
        send_msg(b, &(chess_msg){.kind = CHESS_ACK, .a = m->a});
        const char *result = chess_result(&b->pos);
        if (strcmp(result, "*") != 0 || m->a == moves) {
            finish_game(s, b, result); /* mated or stalemated, or the moves are played */
        } else {
            b->ready_ns = simul_now_ns();
            push(s, b);
        }
        return true;
    case CHESS_ACK:
        if (m->a != b->master_moves || b->acked >= m->a) {
            send_err(s, b->stream, "bad-ack");
            return ++b->errors < CHESS_MAX_ERRORS;
        }
        b->acked = m->a;
        return true;
    case CHESS_ERR:
        /* Never answered (two peers could trade ERRs for ever); counted. */
        return ++b->errors < CHESS_MAX_ERRORS;
    case CHESS_HELLO:
        send_err(s, b->stream, "already-greeted");
        return ++b->errors < CHESS_MAX_ERRORS;
    default:
        send_err(s, b->stream, "unexpected");
        return ++b->errors < CHESS_MAX_ERRORS;
    }
}

/* The first line must be HELLO for a free board of this simul. Returns the board or NULL (the
 * reason was sent). */
static board *greet(session *s, simul_stream *st)
{
    const char *line;
    simul_scope sc;
    simul_scope_timeout(&sc, HELLO_TIMEOUT_S);
    long n = simul_stream_readline(st, &line);
    simul_scope_end(&sc);
    if (n == -ETIMEDOUT)
        send_err(s, st, "hello-timeout");
    if (n <= 0)
        return NULL;
    chess_msg m;
    int rc = chess_parse(line, (size_t)n, &m);
    if (rc < 0) {
        send_err(s, st, chess_parse_strerror(rc));
        return NULL;
    }
    if (m.kind != CHESS_HELLO) {
        send_err(s, st, "hello-expected");
        return NULL;
    }
    if (m.a != CHESS_VERSION) {
        send_err(s, st, "unsupported-version");
        return NULL;
    }
    if (m.b >= (unsigned long)s->cfg->p.boards) {
        send_err(s, st, "no-such-board");
        return NULL;
    }
    board *b = &s->boards[m.b];
    if (b->state != BOARD_EMPTY || s->started) {
        send_err(s, st, "board-taken");
        return NULL;
    }
    b->state = BOARD_PLAYING;
    b->stream = st;
    send_msg(b, &(chess_msg){.kind = CHESS_START, .a = b->id, .b = (unsigned)s->cfg->p.moves});
    if (++s->arrived == s->cfg->p.boards)
        simul_event_set(s->all_arrived);
    return b;
}

/* A connection: the board's reader. It decides nothing about the game; it checks the lines,
 * acknowledges replies and hands the board to the master. */
static int board_conn(simul_stream *st, void *arg)
{
    session *s = arg;
    conn_link link = {.task = simul_task_current()};
    link.next = s->conns.next;
    link.prev = &s->conns;
    link.next->prev = &link;
    s->conns.next = &link;

    simul_stream_set_limit(st, CHESS_LINE_MAX - 1); /* the limit excludes the "\n" */
    board *b = greet(s, st);
    while (b && b->state == BOARD_PLAYING) {
        const char *line;
        long n = simul_stream_readline(st, &line);
        if (n == -EMSGSIZE) {
            send_err(s, st, chess_parse_strerror(CHESS_E_TOO_LONG));
            if (++b->errors >= CHESS_MAX_ERRORS)
                break;
            continue;
        }
        if (n <= 0 || line[n - 1] != '\n') {
            /* EOF (or a last line cut short by it), a reset, or our own cancellation. When the
             * whole simul is being interrupted, boards still playing are just unfinished. */
            if (n != -ECANCELED && !s->interrupted)
                end_board(s, b, BOARD_ABANDONED, "left");
            break;
        }
        chess_msg m;
        int rc = chess_parse(line, (size_t)n, &m);
        bool ok;
        if (rc < 0) {
            send_err(s, st, chess_parse_strerror(rc));
            ok = ++b->errors < CHESS_MAX_ERRORS;
        } else {
            ok = on_line(s, b, &m);
        }
        if (!ok) {
            send_err(s, st, "too-many-errors");
            end_board(s, b, BOARD_ABANDONED, "broke the protocol too often");
        }
    }
    if (b && b->state == BOARD_FINISHED) {
        /* Let the opponent read END and hang up first (bounded), so it sees no reset. */
        simul_scope sc;
        simul_scope_timeout(&sc, LINGER_S);
        const char *line;
        while (simul_stream_readline(st, &line) > 0) {
        }
        simul_scope_end(&sc);
    }
    if (b)
        b->stream = NULL;
    link.prev->next = link.next;
    link.next->prev = link.prev;
    return 0; /* the server closes the stream */
}

int session_listen(session *s)
{
    simul_stream_server_opts o = {
        .host = s->cfg->host,
        .port = s->cfg->port,
        .backlog = 4096, /* thousands of boards connect at once */
        .limit = CHESS_LINE_MAX - 1,
        .stack_size = 32 * 1024,
    };
    return simul_start_server_opts(&o, board_conn, s, &s->srv);
}

void session_close(session *s)
{
    if (!s->srv)
        return;
    simul_server_close(s->srv);
    for (conn_link *l = s->conns.next; l != &s->conns; l = l->next)
        simul_task_cancel(l->task);
    simul_scope shield, sc;
    simul_scope_shield(&shield);
    simul_scope_timeout(&sc, 10.0);
    simul_server_wait_closed(s->srv);
    simul_scope_end(&sc);
    simul_scope_end(&shield);
}

/* The next board to open in a sync simul: the first that is still waiting for move 1. */
static board *next_sync_board(session *s)
{
    for (long i = 0; i < s->cfg->p.boards; i++)
        if (s->boards[i].state == BOARD_PLAYING && s->boards[i].master_moves == 0)
            return &s->boards[i];
    return NULL;
}

int master_task(void *arg)
{
    session *s = arg;
    const chess_config *cfg = s->cfg;
    int rc = simul_event_wait(s->all_arrived);
    if (rc < 0)
        return rc;
    s->started = true;
    s->t0_ns = simul_now_ns();
    long remaining = cfg->p.boards;
    /* Boards that ended before the start are already in the queue: they count there. */
    for (long i = 0; i < cfg->p.boards; i++) {
        board *b = &s->boards[i];
        b->ready_ns = s->t0_ns;
        if (b->state == BOARD_PLAYING && !s->sync)
            push(s, b); /* async: every board is waiting for his first move, in order */
    }
    board *current = NULL; /* sync: the one game being played */
    if (s->sync && (current = next_sync_board(s)) != NULL)
        push(s, current);
    int64_t free_at = s->t0_ns; /* when he is done with his last move (a deadline, not "now") */
    s->at_board = 0;
    while (remaining > 0) {
        void *item;
        if ((rc = simul_queue_get(s->events, &item)) < 0)
            return rc;
        board *b = item;
        if (b->state != BOARD_PLAYING) {
            if (b->counted)
                continue; /* it ended while its reply waited in the queue: seen once already */
            b->counted = true;
            remaining--;
            if (b == current && (current = next_sync_board(s)) != NULL) {
                current->ready_ns = simul_now_ns();
                push(s, current);
            }
            continue;
        }
        int64_t start = b->ready_ns > free_at ? b->ready_ns : free_at;
        if ((long)b->id != s->at_board) {
            start += cfg->switch_ns; /* the walk over */
            s->at_board = b->id;
        }
        if (b->master_moves == 0)
            b->start_ns = start;
        int64_t deadline = start + cfg->master_ns;
        /* He chooses before the sleep, so its microseconds are inside his thinking time. The
         * reader refuses the opponent's moves until master_moves says his move is out. */
        chess_msg m = {.kind = CHESS_MOVE, .a = b->master_moves + 1};
        chess_move mv;
        if (chess_pick_move(&b->pos, chess_move_seed(b->id, m.a, 0), &mv) == 0) {
            /* No move: cannot happen, the reader ends a game that is over. Say so anyway. */
            finish_game(s, b, chess_result(&b->pos));
            continue;
        }
        chess_make_move(&b->pos, mv);
        chess_move_uci(mv, m.text);
        const char *result = chess_result(&b->pos);
        if ((rc = simul_sleep_until_ns(deadline)) < 0)
            return rc;
        free_at = deadline;
        if (b->state != BOARD_PLAYING)
            continue; /* the opponent left while he thought: its end is in the queue */
        b->master_moves = m.a;
        memcpy(b->last_move, m.text, sizeof b->last_move);
        send_msg(b, &m);
        s->moves++;
        if (strcmp(result, "*") != 0)
            finish_game(s, b, result); /* his move mated or stalemated: no reply to wait for */
    }
    s->t_end_ns = simul_now_ns();
    s->done = true;
    return 0;
}
