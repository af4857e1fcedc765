/* view.c — what the audience sees while the simul plays. On a terminal, a grid of the boards
 * with their move numbers and last moves, redrawn in place ten times a second (the cursor goes
 * back up over the previous drawing: ANSI "ESC[nA", then "ESC[J" clears below); anything else
 * gets one plain progress line a second. Notices (an opponent who left) scroll above the grid. */
#include "chess.h"

#include <errno.h>
#include <string.h>

#define GRID_MAX_BOARDS 200 /* above this a grid does not fit a screen: a progress line only */
#define GRID_COLS 7 /* cells of 10 columns: the move number and the last move */

static int drawn_lines; /* lines of the last tty drawing, to move back over */

static void flush_notices(session *s)
{
    if (s->notices_len) {
        fputs(s->notices, stdout);
        s->notices_len = 0;
        s->notices[0] = '\0';
    }
}

static double elapsed_s(const session *s)
{
    if (!s->started)
        return 0;
    int64_t end = s->done ? s->t_end_ns : simul_now_ns();
    return (double)(end - s->t0_ns) / 1e9;
}

static void status_line(session *s, char *buf, size_t cap)
{
    const chess_config *cfg = s->cfg;
    double t = elapsed_s(s);
    char seed[32];
    chess_format_seed(t * 1000.0 / cfg->scale_ms, seed, sizeof seed);
    if (!s->started)
        snprintf(buf, cap, "%s: waiting for boards: %ld of %ld connected", s->sync ? "sync" : "async",
                 s->arrived, cfg->p.boards);
    else
        snprintf(buf, cap,
                 "%s: t=%.2f s (seed %s) moves=%ld/%ld finished=%ld abandoned=%ld", s->sync ? "sync" : "async", t,
                 seed, s->moves, 2 * cfg->p.boards * cfg->p.moves, s->finished, s->abandoned);
}

static void draw_tty(session *s)
{
    const chess_config *cfg = s->cfg;
    if (drawn_lines > 0)
        printf("\033[%dA", drawn_lines);
    printf("\r\033[J");
    flush_notices(s);
    char line[256];
    status_line(s, line, sizeof line);
    printf("%s\n", line);
    drawn_lines = 1;
    if (cfg->p.boards <= GRID_MAX_BOARDS) {
        for (long i = 0; i < cfg->p.boards; i++) {
            const board *b = &s->boards[i];
            bool here = s->started && !s->done && i == s->at_board;
            if (b->state == BOARD_FINISHED)
                printf(" \033[32m ## %-5s\033[0m", b->last_move);
            else if (b->state == BOARD_ABANDONED)
                printf(" \033[31m xx %-5s\033[0m", b->last_move);
            else if (here)
                printf(" \033[7m%3u %-5s\033[0m", b->master_moves, b->last_move);
            else
                printf(" %3u %-5s", b->master_moves, b->last_move);
            if ((i + 1) % GRID_COLS == 0 || i + 1 == cfg->p.boards) {
                putchar('\n');
                drawn_lines++;
            }
        }
    } else {
        long total = 2 * cfg->p.boards * cfg->p.moves;
        int width = 50, filled = total ? (int)(s->moves * width / total) : 0;
        printf("[%.*s%*s]\n", filled, "##################################################",
               width - filled, "");
        drawn_lines++;
    }
    fflush(stdout);
}

static void draw_plain(session *s)
{
    flush_notices(s);
    char line[256];
    status_line(s, line, sizeof line);
    printf("%s\n", line);
    fflush(stdout);
}

int view_task(void *arg)
{
    session *s = arg;
    if (s->cfg->quiet)
        return 0;
    drawn_lines = 0;
    double period = s->cfg->tty ? 0.1 : 1.0;
    for (;;) {
        int rc = simul_sleep(period);
        if (rc < 0)
            return rc == -ECANCELED ? 0 : rc;
        if (s->cfg->tty)
            draw_tty(s);
        else
            draw_plain(s);
    }
}

void view_final(session *s)
{
    if (s->cfg->quiet) {
        flush_notices(s);
        return;
    }
    if (s->cfg->tty)
        draw_tty(s);
    else
        flush_notices(s);
    drawn_lines = 0;
    fflush(stdout);
}
