/* rules.h — the rules of chess for the simul: a position on an 8x8 board, its legal moves
 * (castling through, into or out of check refused; en passant; promotion), check, checkmate and
 * stalemate, moves in UCI coordinate notation (e2e4, e7e8q) and positions in FEN. Pure functions
 * over small structs: no allocation, so the unit tests (perft) and the fuzzer drive them alone.
 *
 * Draws by repetition, the fifty-move rule or insufficient material are not detected: a simul
 * game ends after its configured number of moves ("*") unless a side is mated or stalemated.
 */
#ifndef CHESS_RULES_H
#define CHESS_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CHESS_LEGAL_MAX 256 /* legal moves in one position (218 is the most a real game has) */
#define CHESS_FEN_MAX 100   /* bytes of a FEN; the longest sensible one is about 90 */

/* A position. Squares are 0 (a1) .. 63 (h8): file = sq % 8, rank = sq / 8. */
typedef struct chess_pos {
    unsigned char sq[64];   /* 0 empty, else a piece type (1 pawn .. 6 king) | 8 if black */
    unsigned char side;     /* to move: 0 white, 1 black */
    unsigned char castle;   /* rights: 1 white O-O, 2 white O-O-O, 4 black O-O, 8 black O-O-O */
    signed char ep;         /* the en-passant target square, or -1 */
    unsigned char king[2];  /* where each king stands */
    unsigned short halfmove; /* plies since the last capture or pawn move */
    unsigned short fullmove; /* starts at 1, counts up after black's move */
} chess_pos;

/* A move: from and to squares, and the piece a pawn promotes to (0, or 2 knight .. 5 queen). */
typedef struct chess_move {
    unsigned char from, to, promo;
} chess_move;

typedef enum chess_status {
    CHESS_ONGOING,
    CHESS_CHECKMATE, /* the side to move is mated */
    CHESS_STALEMATE,
} chess_status;

/* Errors (negative, and apart from protocol.h's so one strerror can tell them all). */
enum chess_rules_error {
    CHESS_FEN_E_TOO_LONG = -20,  /* more than CHESS_FEN_MAX bytes */
    CHESS_FEN_E_FIELDS = -21,    /* not 4 or 6 fields separated by single spaces */
    CHESS_FEN_E_BOARD = -22,     /* the placement is not 8 ranks of 8 squares of pnbrqk/digits */
    CHESS_FEN_E_SIDE = -23,      /* the side to move is not w or b */
    CHESS_FEN_E_CASTLING = -24,  /* not "-" or KQkq in order, or a right whose king or rook moved */
    CHESS_FEN_E_EN_PASSANT = -25, /* not "-" or a square behind a pawn that just went two ahead */
    CHESS_FEN_E_COUNTERS = -26,  /* halfmove 0..9999, fullmove 1..9999, decimal */
    CHESS_FEN_E_KINGS = -27,     /* not exactly one king a side */
    CHESS_FEN_E_PAWNS = -28,     /* a pawn on the first or last rank, or more than 8 a side */
    CHESS_FEN_E_PIECES = -29,    /* more than 16 pieces a side */
    CHESS_FEN_E_CHECK = -30,     /* the side that just moved is in check */
    CHESS_UCI_E_SYNTAX = -31,    /* not <from><to>[qrbn], squares a1..h8 */
    CHESS_UCI_E_ILLEGAL = -32,   /* well formed, but not a legal move in the position */
};

/* The initial position. */
void chess_pos_start(chess_pos *p);

/* Parses a FEN of `len` bytes (no NUL needed; the two counters may be left out). Returns 0 and
 * fills *p, or a CHESS_FEN_E_* error (*p is then unspecified). Positions a game cannot reach
 * through these checks (too many pieces, kings missing, ...) are refused. */
int chess_pos_from_fen(chess_pos *p, const char *fen, size_t len);

/* Writes the legal moves into out[CHESS_LEGAL_MAX]; returns how many (0: mate or stalemate). */
int chess_legal_moves(const chess_pos *p, chess_move *out);

/* Whether the side to move is in check. */
bool chess_in_check(const chess_pos *p);

/* Mate, stalemate or neither, for the side to move. */
chess_status chess_game_status(const chess_pos *p);

/* The result of a game in this position, as END says it: "1-0", "0-1", "1/2-1/2", or "*". */
const char *chess_result(const chess_pos *p);

/* Plays a legal move (from chess_legal_moves). */
void chess_make_move(chess_pos *p, chess_move m);

/* Reads a move in UCI notation (`len` bytes): 0 and *m, or CHESS_UCI_E_SYNTAX. */
int chess_parse_uci(const char *s, size_t len, chess_move *m);

/* Plays the UCI move `s` if it is legal in *p. Returns 0, or CHESS_UCI_E_SYNTAX /
 * CHESS_UCI_E_ILLEGAL (*p is then unchanged). */
int chess_play_uci(chess_pos *p, const char *s, size_t len);

/* The move in UCI notation, NUL-terminated (at most 6 bytes with the NUL). */
void chess_move_uci(chess_move m, char out[6]);

/* A seed for chess_pick_move from the board, the move number and the side (1: black), so runs
 * are reproducible. */
uint32_t chess_move_seed(unsigned board, unsigned n, int black);

/* Picks a legal move pseudo-randomly from `seed`, preferring one after which the other side
 * still has a legal reply (so games go on unless the end is forced). Returns the number of
 * legal moves: 0 when there is none (*out untouched). A few microseconds. */
int chess_pick_move(const chess_pos *p, uint32_t seed, chess_move *out);

/* Leaf nodes of the legal move tree `depth` plies deep (perft: the move generator's test). */
uint64_t chess_perft(const chess_pos *p, int depth);

/* A word for an error above ("fen-board", "illegal-move", ...). */
const char *chess_rules_strerror(int err);

#endif
