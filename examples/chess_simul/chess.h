/* chess.h — what the chess simul's files share: the options, a board as the master sees it, and
 * one session (a server, its boards, the master and, in one process, the opponents). */
#ifndef CHESS_H
#define CHESS_H

#include <simul.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "model.h"
#include "protocol.h"
#include "rules.h"

#define CHESS_MAX_ERRORS 8 /* bad lines a board may send before the master gives up on it */

typedef struct chess_config {
    chess_params p;
    double scale_ms; /* real milliseconds per seed minute */
    int64_t master_ns, opponent_ns, switch_ns;
    const char *host;
    const char *port;
    long processes; /* 0: opponents are tasks of this process */
    long vanish;    /* opponents that leave mid-game */
    bool sync, compare, serve_only, quiet;
    bool tty; /* stdout is a terminal: live grid with ANSI escapes */
    /* the page (web.c): skipped with --no-web or without libsimul-http */
    bool no_web;
    const char *web_host, *web_port;
    double web_wait_s, web_linger_s;
    /* internal: a child process running opponents for boards [first, first + count) */
    bool opponents_only;
    long first, count;
} chess_config;

typedef enum board_state {
    BOARD_EMPTY,     /* nobody said HELLO for it yet */
    BOARD_PLAYING,
    BOARD_FINISHED,  /* the last reply is in: END sent */
    BOARD_ABANDONED, /* the opponent left, or broke the protocol too often */
} board_state;

typedef struct board {
    unsigned id;
    board_state state;
    simul_stream *stream;   /* owned by the board's connection task; NULL when it is gone */
    unsigned master_moves;  /* moves the master has sent */
    unsigned replies;       /* replies received (the opponent's moves) */
    unsigned acked;         /* the master's moves the opponent acknowledged */
    unsigned errors;        /* bad lines received */
    int64_t ready_ns;       /* when the last reply came in */
    int64_t start_ns;       /* when the master began thinking about move 1 */
    int64_t end_ns;         /* when the game finished or was abandoned */
    bool counted;           /* the master has counted its end */
    chess_pos pos;          /* the game as the master sees it */
    char last_move[6];      /* the last move played on it (either side), for the view */
} board;

/* How the finished games ended (END's result). */
enum { RESULT_WHITE, RESULT_BLACK, RESULT_DRAW, RESULT_NONE, RESULT_KINDS };

typedef struct conn_link {
    simul_task *task;
    struct conn_link *prev, *next;
} conn_link;

typedef struct session {
    const chess_config *cfg;
    bool sync;
    board *boards;
    long arrived;           /* boards that said HELLO (or left before the start) */
    simul_event *all_arrived;
    simul_queue *events;    /* boards for the master: a reply came in, or the game ended */
    simul_server *srv;
    conn_link conns;        /* live connection tasks (cancelled at teardown) */
    bool started, done, interrupted;
    int64_t t0_ns, t_end_ns;
    long finished, abandoned;
    long results[RESULT_KINDS]; /* finished games by result: 1-0, 0-1, 1/2-1/2, * */
    long moves;             /* moves played on every board, both sides */
    long at_board;          /* where the master stands */
    unsigned long errs_sent;
    char notices[4096];     /* lines for the view to print (abandoned boards) */
    size_t notices_len;
    char abandoned_list[512]; /* "7@12,31@15" for the summary */
} session;

/* master.c */
int session_init(session *s, const chess_config *cfg, bool sync);
void session_free(session *s);
/* Listens (cfg->host, cfg->port) and accepts boards. Returns 0 or a negative errno. */
int session_listen(session *s);
/* The master's task body (arg: the session). */
int master_task(void *arg);
/* Cancels the live connection tasks, closes the server and waits (bounded) for them to end. */
void session_close(session *s);
void session_notice(session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* opponent.c */
typedef struct opponents {
    const chess_config *cfg;
    const char *port;
    long first, count;
    long failed; /* opponents that could not play to the end (not counting vanishers) */
    long first_failed;
    int first_error;
} opponents;
/* Task body: plays boards [first, first + count) against the master at cfg->host:port. */
int opponents_task(void *arg);
/* Whether board `id` is one of the `vanish` boards that leave mid-game, and at which move. */
bool chess_vanishes(const chess_config *cfg, long id);
unsigned chess_vanish_move(const chess_config *cfg);

/* view.c */
/* Task body: redraws the live view until cancelled (arg: the session). */
int view_task(void *arg);
/* Prints pending notices and the last state of the view (the run is over). */
void view_final(session *s);

#endif
