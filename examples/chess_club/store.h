/* store.h — the chess club's state in Redis, shared by the web and master processes: the key
 * names, the channel per simul, and the Lua scripts that change a simul. Each move is written
 * by one script keyed on the move's number, so a master that replays a move already stored
 * (it was killed after the write, before the job's ack) changes nothing and publishes nothing. */
#ifndef CLUB_STORE_H
#define CLUB_STORE_H

#include <stddef.h>

#include <simul/redis.h>

#define CLUB_QUEUE "club.simuls" /* the durable job queue: one message per simul, its id */
#define CLUB_MAX_BOARDS 64
#define CLUB_MAX_MOVES 1000      /* plies per board */
#define CLUB_MAX_PACE_MS 10000   /* the master's pause between moves (a human's simul pace) */
#define CLUB_KEY_MAX 64

/* Layout (every key of simul 42 carries the hash tag {42}, so one Redis Cluster slot holds it):
 *   club:next                  INCR: the last id given out
 *   club:{42}                  hash: boards, moves, pace_ms, state (queued, playing, finished),
 *                              played (moves stored), and per board b: n:b (its moves so far),
 *                              fen:b (its position), result:b (set when its game ended)
 *   club:{42}:moves:b          list: board b's moves in UCI notation, in order
 *   club:{42}:events           pub/sub channel: {"board":b,"n":n,"move":"e2e4",...} per move,
 *                              then {"end":true}
 * The web processes subscribe to the pattern club:{*}:events once each. */
void club_key_simul(char out[CLUB_KEY_MAX], long id);
void club_key_moves(char out[CLUB_KEY_MAX], long id, int board);
void club_key_events(char out[CLUB_KEY_MAX], long id);
#define CLUB_EVENTS_PATTERN "club:{*}:events"
/* The id in a channel name (club:{42}:events), or -1. */
long club_channel_id(const char *channel, size_t len);

/* KEYS: simul hash, board's move list. ARGV: board, n (1-based), uci, fen after, result ("" if
 * the game goes on), event JSON. Returns 1 if stored (and published), 0 if move n was already
 * there; an error reply if n would leave a gap (a bug: the caller read a stale count). */
extern const char club_script_move[];
/* KEYS: simul hash. ARGV: event JSON. Sets state finished and publishes the end once: 1, or 0
 * when it was already finished. */
extern const char club_script_finish[];

/* The starting position's FEN. */
extern const char club_start_fen[];

#endif
