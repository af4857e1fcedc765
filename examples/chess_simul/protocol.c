/* protocol.c — parser and formatter of the chess simul's line protocol (see protocol.h).
 * The parser walks the bytes once with explicit lengths: it never relies on a NUL terminator, so
 * a line with an embedded NUL or without a "\n" is judged by its bytes, not cut short. */
#include "protocol.h"

#include <stdio.h>
#include <string.h>

/* A field: [p, p + n). */
typedef struct field {
    const char *p;
    size_t n;
} field;

static int field_is(field f, const char *word)
{
    size_t n = strlen(word);
    return f.n == n && memcmp(f.p, word, n) == 0;
}

/* A decimal number in [lo, hi]. More than 9 digits is out of range before it can overflow. */
static int parse_number(field f, unsigned lo, unsigned hi, unsigned *out)
{
    if (f.n == 0)
        return CHESS_E_SYNTAX;
    for (size_t i = 0; i < f.n; i++)
        if (f.p[i] < '0' || f.p[i] > '9')
            return CHESS_E_SYNTAX;
    if (f.n > 1 && f.p[0] == '0')
        return CHESS_E_SYNTAX; /* one spelling per number: a move number cannot hide as 007 */
    if (f.n > 9)
        return CHESS_E_RANGE;
    unsigned v = 0;
    for (size_t i = 0; i < f.n; i++)
        v = v * 10 + (unsigned)(f.p[i] - '0');
    if (v < lo || v > hi)
        return CHESS_E_RANGE;
    *out = v;
    return 0;
}

/* Coordinate notation: from-square, to-square, and a promotion piece on the last rank. */
static int parse_move(field f, char *out)
{
    if (f.n != 4 && f.n != 5)
        return CHESS_E_MOVE;
    for (int sq = 0; sq < 4; sq += 2)
        if (f.p[sq] < 'a' || f.p[sq] > 'h' || f.p[sq + 1] < '1' || f.p[sq + 1] > '8')
            return CHESS_E_MOVE;
    if (f.p[0] == f.p[2] && f.p[1] == f.p[3])
        return CHESS_E_MOVE; /* a piece must go somewhere */
    if (f.n == 5 && (strchr("qrbn", f.p[4]) == NULL || f.p[4] == '\0' ||
                     (f.p[3] != '8' && f.p[3] != '1')))
        return CHESS_E_MOVE;
    memcpy(out, f.p, f.n);
    out[f.n] = '\0';
    return 0;
}

static int parse_result(field f, char *out)
{
    static const char *const results[] = {"1-0", "0-1", "1/2-1/2", "*"};
    for (size_t i = 0; i < sizeof results / sizeof results[0]; i++) {
        if (field_is(f, results[i])) {
            memcpy(out, f.p, f.n);
            out[f.n] = '\0';
            return 0;
        }
    }
    return CHESS_E_RESULT;
}

int chess_parse(const char *line, size_t len, chess_msg *out)
{
    if (len > 0 && line[len - 1] == '\n')
        len--;
    if (len > 0 && line[len - 1] == '\r')
        len--;
    /* The limit counts the "\n" the line had or should have had. */
    if (len + 1 > CHESS_LINE_MAX)
        return CHESS_E_TOO_LONG;
    if (len == 0)
        return CHESS_E_EMPTY;
    if (memchr(line, '\0', len) != NULL)
        return CHESS_E_NUL;

    memset(out, 0, sizeof *out);
    field cmd = {line, 0};
    while (cmd.n < len && line[cmd.n] != ' ')
        cmd.n++;
    const char *rest = line + cmd.n;
    size_t rest_len = len - cmd.n;

    if (field_is(cmd, "ERR")) {
        /* The reason is free text: everything after the one space, spaces included. */
        out->kind = CHESS_ERR;
        if (rest_len < 2 || rest[0] != ' ')
            return CHESS_E_TEXT;
        for (size_t i = 1; i < rest_len; i++)
            if ((unsigned char)rest[i] < 0x20 || (unsigned char)rest[i] > 0x7e)
                return CHESS_E_TEXT;
        memcpy(out->text, rest + 1, rest_len - 1);
        out->text[rest_len - 1] = '\0';
        return 0;
    }

    /* Every other message: a fixed number of single-space-separated fields. */
    field f[3];
    size_t nf = 0;
    size_t i = 0;
    while (i < rest_len) {
        if (rest[i] != ' ' || i + 1 == rest_len || rest[i + 1] == ' ' || nf == 3)
            return CHESS_E_SYNTAX; /* double, leading or trailing space, or too many fields */
        i++;
        f[nf].p = rest + i;
        f[nf].n = 0;
        while (i < rest_len && rest[i] != ' ')
            i++, f[nf].n++;
        nf++;
    }

    int rc;
    if (field_is(cmd, "HELLO")) {
        out->kind = CHESS_HELLO;
        if (nf != 2)
            return CHESS_E_SYNTAX;
        if ((rc = parse_number(f[0], 1, CHESS_MAX_VERSION, &out->a)) < 0)
            return rc;
        return parse_number(f[1], 0, CHESS_MAX_BOARDS - 1, &out->b);
    }
    if (field_is(cmd, "START")) {
        out->kind = CHESS_START;
        if (nf != 2)
            return CHESS_E_SYNTAX;
        if ((rc = parse_number(f[0], 0, CHESS_MAX_BOARDS - 1, &out->a)) < 0)
            return rc;
        return parse_number(f[1], 1, CHESS_MAX_MOVES, &out->b);
    }
    if (field_is(cmd, "MOVE")) {
        out->kind = CHESS_MOVE;
        if (nf != 2)
            return CHESS_E_SYNTAX;
        if ((rc = parse_number(f[0], 1, CHESS_MAX_MOVES, &out->a)) < 0)
            return rc;
        return parse_move(f[1], out->text);
    }
    if (field_is(cmd, "ACK")) {
        out->kind = CHESS_ACK;
        if (nf != 1)
            return CHESS_E_SYNTAX;
        return parse_number(f[0], 1, CHESS_MAX_MOVES, &out->a);
    }
    if (field_is(cmd, "END")) {
        out->kind = CHESS_END;
        if (nf != 2)
            return CHESS_E_SYNTAX;
        if ((rc = parse_number(f[0], 0, CHESS_MAX_MOVES, &out->a)) < 0)
            return rc;
        return parse_result(f[1], out->text);
    }
    return CHESS_E_UNKNOWN;
}

int chess_format(const chess_msg *m, char *buf, size_t cap)
{
    /* Formatted into room for any message first, then copied: the caller's cap only decides
     * whether it fits (and the compiler sees no truncating snprintf). */
    char line[CHESS_LINE_MAX + 32];
    const size_t room = sizeof line;
    int n;
    switch (m->kind) {
    case CHESS_HELLO:
        n = snprintf(line, room, "HELLO %u %u\n", m->a, m->b);
        break;
    case CHESS_START:
        n = snprintf(line, room, "START %u %u\n", m->a, m->b);
        break;
    case CHESS_MOVE:
        n = snprintf(line, room, "MOVE %u %.6s\n", m->a, m->text);
        break;
    case CHESS_ACK:
        n = snprintf(line, room, "ACK %u\n", m->a);
        break;
    case CHESS_ERR:
        n = snprintf(line, room, "ERR %.*s\n", CHESS_REASON_MAX + 1, m->text);
        break;
    case CHESS_END:
        n = snprintf(line, room, "END %u %.8s\n", m->a, m->text);
        break;
    default:
        return -1;
    }
    if (n < 0 || (size_t)n >= room || (size_t)n >= cap)
        return -1;
    /* What we send must be what a peer accepts: check by parsing it back. */
    chess_msg back;
    if (chess_parse(line, (size_t)n, &back) < 0)
        return -1;
    memcpy(buf, line, (size_t)n + 1);
    return n;
}

const char *chess_parse_strerror(int err)
{
    switch (err) {
    case CHESS_E_EMPTY:
        return "empty-line";
    case CHESS_E_TOO_LONG:
        return "line-too-long";
    case CHESS_E_NUL:
        return "embedded-nul";
    case CHESS_E_UNKNOWN:
        return "unknown-command";
    case CHESS_E_SYNTAX:
        return "bad-syntax";
    case CHESS_E_RANGE:
        return "number-out-of-range";
    case CHESS_E_MOVE:
        return "bad-move";
    case CHESS_E_RESULT:
        return "bad-result";
    case CHESS_E_TEXT:
        return "bad-reason";
    default:
        return "bad-message";
    }
}
