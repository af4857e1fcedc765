/* protocol.h — the chess simul's line protocol: one message per "\n"-terminated line of at most
 * CHESS_LINE_MAX bytes. The parser is a pure function over bytes (no sockets, no allocation), so
 * the unit tests and the fuzzer drive it alone.
 *
 *   opponent -> master   HELLO <version> <board>      first line; version must be CHESS_VERSION
 *   master -> opponent   START <board> <moves>        the board is taken; <moves> per side
 *   either way           MOVE <n> <uci>               move number n (1..moves), e.g. MOVE 12 e2e4
 *   either way           ACK <n>                      move n received and accepted
 *   either way           ERR <reason>                 the last line was refused (never answered)
 *   master -> opponent   END <n> <result>             the game is over after the master's move n
 *
 * Moves are real chess (rules.h): each side keeps the position, and a move that is well formed
 * but not legal there gets "ERR illegal-move" and counts as a bad line (the turn stays open).
 * END's result is 1-0, 0-1 or 1/2-1/2 when a side is mated or stalemated, "*" when the configured
 * number of moves was played first.
 *
 * Fields are separated by one space; numbers are decimal without sign or leading zeros; a "\r"
 * before the "\n" is tolerated (telnet, nc -C). The master moves first (white); the opponent
 * answers each MOVE with ACK n and then its own MOVE n, which the master ACKs.
 */
#ifndef CHESS_PROTOCOL_H
#define CHESS_PROTOCOL_H

#include <stddef.h>

#define CHESS_VERSION 1
#define CHESS_LINE_MAX 64         /* bytes per line, the "\n" included */
#define CHESS_MAX_BOARDS 1000000  /* board ids are 0 .. CHESS_MAX_BOARDS - 1 */
#define CHESS_MAX_MOVES 10000     /* move numbers are 1 .. CHESS_MAX_MOVES */
#define CHESS_MAX_VERSION 65535
#define CHESS_REASON_MAX (CHESS_LINE_MAX - 5) /* "ERR " + reason + "\n" */

enum chess_kind {
    CHESS_HELLO = 1,
    CHESS_START,
    CHESS_MOVE,
    CHESS_ACK,
    CHESS_ERR,
    CHESS_END,
};

/* Parse errors (negative, so they read as "< 0 is an error" like the rest of simul). */
enum chess_parse_error {
    CHESS_E_EMPTY = -1,    /* an empty line */
    CHESS_E_TOO_LONG = -2, /* longer than CHESS_LINE_MAX with its "\n" */
    CHESS_E_NUL = -3,      /* an embedded NUL byte */
    CHESS_E_UNKNOWN = -4,  /* not one of the six commands */
    CHESS_E_SYNTAX = -5,   /* wrong number of fields, bad spacing, a number that is not one */
    CHESS_E_RANGE = -6,    /* a number outside its range */
    CHESS_E_MOVE = -7,     /* a move that is not in coordinate notation (e2e4, e7e8q) */
    CHESS_E_RESULT = -8,   /* END with a result other than 1-0, 0-1, 1/2-1/2, * */
    CHESS_E_TEXT = -9,     /* ERR with an empty reason or a non-printable byte */
};

typedef struct chess_msg {
    enum chess_kind kind;
    unsigned a;        /* HELLO: version; START: board; MOVE, ACK, END: move number */
    unsigned b;        /* HELLO: board; START: moves */
    char text[CHESS_REASON_MAX + 1]; /* MOVE: the move; ERR: the reason; END: the result */
} chess_msg;

/* Parses one line: `len` bytes at `line`, with or without its trailing "\n" (so a buffer from
 * a stream's readline can be passed as is). Returns 0 and fills *out, or a chess_parse_error
 * (*out is then unspecified). Never reads past line[len - 1]. */
int chess_parse(const char *line, size_t len, chess_msg *out);

/* Writes the line for *msg, "\n" included, NUL-terminated, into buf. Returns its length
 * (without the NUL), or -1 if msg is not valid (it would not parse back) or buf is too small. */
int chess_format(const chess_msg *msg, char *buf, size_t cap);

/* The reason word sent in "ERR <reason>" for a parse error ("line-too-long", ...). */
const char *chess_parse_strerror(int err);


#endif
