/* model.h — how long a simul should take, in seed minutes (the founding talk's picture).
 *
 * B boards, M moves per side, the master needs m per move and s to walk to another board, an
 * opponent o per move. The master plays white, moves first everywhere, and starts at board 0.
 *
 * Sync (one game after another): each game is M x (m + o); between games he walks once:
 *     T_sync = B·M·(m + o) + (B - 1)·s
 * Async (the master takes the next board whose reply is in, walks to it, thinks, moves; boards
 * come back in the order he left them): a visit costs v = s + m (s = 0 when B = 1, he never
 * walks). Round 1 is B visits, the first without a walk. From then on each board comes back
 * either when he has done the B - 1 other visits (master-bound: (B - 1)·v >= o, the reply is
 * always waiting and a round is B·v) or o after his last move there (opponent-bound: he waits
 * for the reply, and a round is o + v). The simul ends when the last board's last reply is in:
 *     T_async = m + (B - 1)·v + (M - 1)·max(B·v, o + v) + o
 * With the seed's numbers (50 boards, 30 moves, m = 0.5, o = 5, s = 1):
 *     T_sync = 8,299 min (5.76 days), T_async = 2,254 min (37.6 h): 3.7 times faster.
 */
#ifndef CHESS_MODEL_H
#define CHESS_MODEL_H

#include <stdbool.h>

typedef struct chess_params {
    long boards, moves;
    double master_min;   /* m: the master's time per move, seed minutes */
    double opponent_min; /* o: an opponent's time per move */
    double switch_min;   /* s: the master's walk to another board */
} chess_params;

/* Seed minutes for the whole simul, played one game after another. */
double chess_model_sync_min(const chess_params *p);
/* Seed minutes for the whole simul, played on every board at once. */
double chess_model_async_min(const chess_params *p);
/* Whether the async simul is limited by the master (true) or by the opponents' thinking. */
bool chess_model_master_bound(const chess_params *p);
/* Seed minutes for one game in the sync simul (no walk). */
double chess_model_game_min(const chess_params *p);

/* Formats seed minutes as the talk did: "5.76 days", "37.6 h", "12.5 min". Returns buf. */
const char *chess_format_seed(double minutes, char *buf, unsigned long cap);

#endif
