/* rules.c — the rules of chess (see rules.h). Moves are generated pseudo-legally on an 8x8 board
 * by file/rank steps, and each is kept only if, once made on a copy of the position, the mover's
 * king is not attacked: one test covers pins, checks, en passant's discovered checks and castling
 * into check. Castling additionally checks the squares the king starts on and passes. Perft
 * (tests/unit/test_chess_rules.c) proves the whole against known node counts. */
#include "rules.h"

#include <string.h>

enum { EMPTY, PAWN, KNIGHT, BISHOP, ROOK, QUEEN, KING };
#define BLACK 8
#define TYPE(pc) ((pc) & 7)
#define COLOR(pc) ((pc) >> 3) /* 0 white, 1 black: only for a square that is not empty */

enum { WK = 1, WQ = 2, BK = 4, BQ = 8 };
enum { A1 = 0, C1 = 2, D1 = 3, E1 = 4, F1 = 5, G1 = 6, H1 = 7 };
enum { A8 = 56, C8 = 58, D8 = 59, E8 = 60, F8 = 61, G8 = 62, H8 = 63 };

static const signed char KNIGHT_STEPS[8][2] = {{1, 2},   {2, 1},   {2, -1}, {1, -2},
                                               {-1, -2}, {-2, -1}, {-2, 1}, {-1, 2}};
static const signed char KING_STEPS[8][2] = {{1, 0},   {1, 1},   {0, 1},  {-1, 1},
                                             {-1, 0},  {-1, -1}, {0, -1}, {1, -1}};
/* The first four are diagonal (bishop, queen), the last four straight (rook, queen). */
static const signed char RAYS[8][2] = {{1, 1}, {1, -1}, {-1, 1}, {-1, -1},
                                       {1, 0}, {-1, 0}, {0, 1},  {0, -1}};

/* The square at file f, rank r, or -1 off the board. */
static int square(int f, int r)
{
    return (unsigned)f < 8 && (unsigned)r < 8 ? r * 8 + f : -1;
}

/* Whether side `by` attacks square sq (whoever stands on it). */
static bool attacked(const chess_pos *p, int sq, int by)
{
    const int f = sq & 7, r = sq >> 3, c = by ? BLACK : 0;
    const int pawn_rank = by ? r + 1 : r - 1; /* where a pawn attacking sq stands */
    for (int df = -1; df <= 1; df += 2) {
        int t = square(f + df, pawn_rank);
        if (t >= 0 && p->sq[t] == (PAWN | c))
            return true;
    }
    for (int i = 0; i < 8; i++) {
        int t = square(f + KNIGHT_STEPS[i][0], r + KNIGHT_STEPS[i][1]);
        if (t >= 0 && p->sq[t] == (KNIGHT | c))
            return true;
        t = square(f + KING_STEPS[i][0], r + KING_STEPS[i][1]);
        if (t >= 0 && p->sq[t] == (KING | c))
            return true;
    }
    for (int i = 0; i < 8; i++) {
        const int slider = i < 4 ? BISHOP : ROOK;
        for (int k = 1;; k++) {
            int t = square(f + k * RAYS[i][0], r + k * RAYS[i][1]);
            if (t < 0)
                break;
            int pc = p->sq[t];
            if (pc == EMPTY)
                continue;
            if (pc == (slider | c) || pc == (QUEEN | c))
                return true;
            break;
        }
    }
    return false;
}

bool chess_in_check(const chess_pos *p)
{
    return attacked(p, p->king[p->side], !p->side);
}

/* Which castling rights survive a move from or to each square (a rook or king leaving or taken). */
static unsigned char castle_keep(int sq)
{
    switch (sq) {
    case A1: return (unsigned char)~WQ;
    case H1: return (unsigned char)~WK;
    case E1: return (unsigned char)~(WK | WQ);
    case A8: return (unsigned char)~BQ;
    case H8: return (unsigned char)~BK;
    case E8: return (unsigned char)~(BK | BQ);
    default: return 0xff;
    }
}

void chess_make_move(chess_pos *p, chess_move m)
{
    const int us = p->side, pc = p->sq[m.from], type = TYPE(pc);
    const bool capture = p->sq[m.to] != EMPTY;
    p->halfmove = type == PAWN || capture ? 0 : (unsigned short)(p->halfmove + 1);
    if (type == PAWN && m.to == p->ep && !capture)
        p->sq[us ? m.to + 8 : m.to - 8] = EMPTY; /* en passant: the pawn taken is behind */
    p->sq[m.to] = m.promo ? (unsigned char)(m.promo | (us ? BLACK : 0)) : (unsigned char)pc;
    p->sq[m.from] = EMPTY;
    if (type == KING) {
        p->king[us] = m.to;
        if (m.to == m.from + 2) { /* O-O: the rook jumps over */
            p->sq[m.from + 1] = p->sq[m.from + 3];
            p->sq[m.from + 3] = EMPTY;
        } else if (m.to + 2 == m.from) { /* O-O-O */
            p->sq[m.from - 1] = p->sq[m.from - 4];
            p->sq[m.from - 4] = EMPTY;
        }
    }
    p->ep = type == PAWN && (m.to == m.from + 16 || m.to + 16 == m.from)
                ? (signed char)((m.from + m.to) / 2)
                : -1;
    p->castle &= castle_keep(m.from) & castle_keep(m.to);
    p->side ^= 1;
    if (p->side == 0)
        p->fullmove++;
}

/* Collects legal moves into out[0 .. cap): with cap 1 it only asks "is there one?". */
typedef struct gen {
    const chess_pos *p;
    chess_move *out;
    int n, cap;
} gen;

static void add(gen *g, int from, int to, int promo)
{
    if (g->n >= g->cap)
        return;
    chess_move m = {(unsigned char)from, (unsigned char)to, (unsigned char)promo};
    chess_pos q = *g->p;
    chess_make_move(&q, m);
    if (!attacked(&q, q.king[g->p->side], q.side))
        g->out[g->n++] = m;
}

static void add_pawn(gen *g, int from, int to)
{
    const int last = to >> 3;
    if (last == 0 || last == 7)
        for (int promo = QUEEN; promo >= KNIGHT; promo--)
            add(g, from, to, promo);
    else
        add(g, from, to, 0);
}

static void gen_pawn(gen *g, int from)
{
    const chess_pos *p = g->p;
    const int us = p->side, f = from & 7, r = from >> 3, dr = us ? -1 : 1;
    int one = square(f, r + dr);
    if (one < 0)
        return; /* cannot happen from a checked FEN; keeps a bad struct from running off */
    if (p->sq[one] == EMPTY) {
        add_pawn(g, from, one);
        int two = square(f, r + 2 * dr);
        if (r == (us ? 6 : 1) && p->sq[two] == EMPTY)
            add(g, from, two, 0);
    }
    for (int df = -1; df <= 1; df += 2) {
        int t = square(f + df, r + dr);
        if (t < 0)
            continue;
        if ((p->sq[t] != EMPTY && COLOR(p->sq[t]) != us) || t == p->ep)
            add_pawn(g, from, t);
    }
}

static void gen_castling(gen *g)
{
    const chess_pos *p = g->p;
    const int us = p->side, them = !us, c = us ? BLACK : 0;
    const int e = us ? E8 : E1, rights = p->castle >> (us ? 2 : 0);
    if (!(rights & (WK | WQ)) || p->sq[e] != (KING | c) || attacked(p, e, them))
        return;
    /* The king may not pass through an attacked square; where it lands add() checks. */
    if ((rights & WK) && p->sq[e + 3] == (ROOK | c) && p->sq[e + 1] == EMPTY &&
        p->sq[e + 2] == EMPTY && !attacked(p, e + 1, them))
        add(g, e, e + 2, 0);
    if ((rights & WQ) && p->sq[e - 4] == (ROOK | c) && p->sq[e - 1] == EMPTY &&
        p->sq[e - 2] == EMPTY && p->sq[e - 3] == EMPTY && !attacked(p, e - 1, them))
        add(g, e, e - 2, 0);
}

static void generate(gen *g)
{
    const chess_pos *p = g->p;
    const int us = p->side;
    for (int from = 0; from < 64 && g->n < g->cap; from++) {
        const int pc = p->sq[from];
        if (pc == EMPTY || COLOR(pc) != us)
            continue;
        const int type = TYPE(pc), f = from & 7, r = from >> 3;
        if (type == PAWN) {
            gen_pawn(g, from);
        } else if (type == KNIGHT || type == KING) {
            const signed char(*steps)[2] = type == KNIGHT ? KNIGHT_STEPS : KING_STEPS;
            for (int i = 0; i < 8; i++) {
                int t = square(f + steps[i][0], r + steps[i][1]);
                if (t >= 0 && (p->sq[t] == EMPTY || COLOR(p->sq[t]) != us))
                    add(g, from, t, 0);
            }
        } else {
            const int first = type == ROOK ? 4 : 0, last = type == BISHOP ? 4 : 8;
            for (int i = first; i < last; i++) {
                for (int k = 1;; k++) {
                    int t = square(f + k * RAYS[i][0], r + k * RAYS[i][1]);
                    if (t < 0)
                        break;
                    if (p->sq[t] != EMPTY) {
                        if (COLOR(p->sq[t]) != us)
                            add(g, from, t, 0);
                        break;
                    }
                    add(g, from, t, 0);
                }
            }
        }
    }
    gen_castling(g);
}

int chess_legal_moves(const chess_pos *p, chess_move *out)
{
    gen g = {.p = p, .out = out, .cap = CHESS_LEGAL_MAX};
    generate(&g);
    return g.n;
}

static bool has_legal_move(const chess_pos *p)
{
    chess_move one;
    gen g = {.p = p, .out = &one, .cap = 1};
    generate(&g);
    return g.n > 0;
}

chess_status chess_game_status(const chess_pos *p)
{
    if (has_legal_move(p))
        return CHESS_ONGOING;
    return chess_in_check(p) ? CHESS_CHECKMATE : CHESS_STALEMATE;
}

const char *chess_result(const chess_pos *p)
{
    switch (chess_game_status(p)) {
    case CHESS_CHECKMATE:
        return p->side ? "1-0" : "0-1";
    case CHESS_STALEMATE:
        return "1/2-1/2";
    default:
        return "*";
    }
}

/* ---- UCI ---------------------------------------------------------------------------------- */

static const char PROMO_LETTERS[] = "  nbrq"; /* indexed by piece type */

int chess_parse_uci(const char *s, size_t len, chess_move *m)
{
    if (len != 4 && len != 5)
        return CHESS_UCI_E_SYNTAX;
    for (int i = 0; i < 4; i += 2)
        if (s[i] < 'a' || s[i] > 'h' || s[i + 1] < '1' || s[i + 1] > '8')
            return CHESS_UCI_E_SYNTAX;
    int promo = 0;
    if (len == 5) {
        const char *at = s[4] != ' ' && s[4] != '\0' ? strchr(PROMO_LETTERS, s[4]) : NULL;
        if (!at)
            return CHESS_UCI_E_SYNTAX;
        promo = (int)(at - PROMO_LETTERS);
    }
    m->from = (unsigned char)((s[1] - '1') * 8 + (s[0] - 'a'));
    m->to = (unsigned char)((s[3] - '1') * 8 + (s[2] - 'a'));
    m->promo = (unsigned char)promo;
    return 0;
}

int chess_play_uci(chess_pos *p, const char *s, size_t len)
{
    chess_move want;
    int rc = chess_parse_uci(s, len, &want);
    if (rc < 0)
        return rc;
    chess_move moves[CHESS_LEGAL_MAX];
    const int n = chess_legal_moves(p, moves);
    for (int i = 0; i < n; i++) {
        if (moves[i].from == want.from && moves[i].to == want.to &&
            moves[i].promo == want.promo) {
            chess_make_move(p, moves[i]);
            return 0;
        }
    }
    return CHESS_UCI_E_ILLEGAL;
}

void chess_move_uci(chess_move m, char out[6])
{
    out[0] = (char)('a' + (m.from & 7));
    out[1] = (char)('1' + (m.from >> 3 & 7));
    out[2] = (char)('a' + (m.to & 7));
    out[3] = (char)('1' + (m.to >> 3 & 7));
    out[4] = m.promo >= KNIGHT && m.promo <= QUEEN ? PROMO_LETTERS[m.promo] : '\0';
    out[5] = '\0';
}

/* ---- choosing a move ---------------------------------------------------------------------- */

uint32_t chess_move_seed(unsigned board, unsigned n, int black)
{
    /* A 32-bit mix (murmur3's finaliser) of the three: neighbouring boards play differently. */
    uint32_t h = board * 2654435761u ^ (n * 2u + (black != 0)) * 40503u;
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}

int chess_pick_move(const chess_pos *p, uint32_t seed, chess_move *out)
{
    chess_move moves[CHESS_LEGAL_MAX];
    const int n = chess_legal_moves(p, moves);
    if (n == 0)
        return 0;
    /* From a random start, the first move that leaves a reply: usually the first one tried,
     * so the cost is one generation plus one "is there a reply?" scan. */
    const int start = (int)(seed % (uint32_t)n);
    for (int i = 0; i < n; i++) {
        chess_move m = moves[(start + i) % n];
        chess_pos q = *p;
        chess_make_move(&q, m);
        if (has_legal_move(&q)) {
            *out = m;
            return n;
        }
    }
    *out = moves[start]; /* every move ends the game: it ends by force */
    return n;
}

uint64_t chess_perft(const chess_pos *p, int depth)
{
    if (depth <= 0)
        return 1;
    chess_move moves[CHESS_LEGAL_MAX];
    const int n = chess_legal_moves(p, moves);
    if (depth == 1)
        return (uint64_t)n;
    uint64_t nodes = 0;
    for (int i = 0; i < n; i++) {
        chess_pos q = *p;
        chess_make_move(&q, moves[i]);
        nodes += chess_perft(&q, depth - 1);
    }
    return nodes;
}

/* ---- FEN ---------------------------------------------------------------------------------- */

void chess_pos_start(chess_pos *p)
{
    static const char fen[] = "rnbqkbnr/pppppppp/8/8/8/8/PPPPPPPP/RNBQKBNR w KQkq - 0 1";
    int rc = chess_pos_from_fen(p, fen, sizeof fen - 1);
    (void)rc; /* a constant that parses (test_chess_rules checks it) */
}

typedef struct fen_field {
    const char *s;
    size_t n;
} fen_field;

static int fen_board(chess_pos *p, fen_field f)
{
    static const char PIECES[] = " pnbrqk"; /* indexed by type */
    int r = 7, file = 0;
    bool after_digit = false;
    for (size_t i = 0; i < f.n; i++) {
        const char ch = f.s[i];
        if (ch == '/') {
            if (file != 8 || r == 0)
                return CHESS_FEN_E_BOARD;
            r--, file = 0, after_digit = false;
        } else if (ch >= '1' && ch <= '8') {
            if (after_digit) /* "44" is not how FEN says 8 */
                return CHESS_FEN_E_BOARD;
            file += ch - '0';
            if (file > 8)
                return CHESS_FEN_E_BOARD;
            after_digit = true;
        } else {
            const char lower = ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
            const char *at = lower != ' ' && lower != '\0' ? strchr(PIECES, lower) : NULL;
            if (!at || file >= 8)
                return CHESS_FEN_E_BOARD;
            p->sq[r * 8 + file++] = (unsigned char)((at - PIECES) | (ch == lower ? BLACK : 0));
            after_digit = false;
        }
    }
    return r == 0 && file == 8 ? 0 : CHESS_FEN_E_BOARD;
}

/* A counter: 1 to 4 decimal digits, no leading zero, in [lo, 9999]. */
static int fen_counter(fen_field f, unsigned lo, unsigned short *out)
{
    if (f.n == 0 || f.n > 4 || (f.n > 1 && f.s[0] == '0'))
        return CHESS_FEN_E_COUNTERS;
    unsigned v = 0;
    for (size_t i = 0; i < f.n; i++) {
        if (f.s[i] < '0' || f.s[i] > '9')
            return CHESS_FEN_E_COUNTERS;
        v = v * 10 + (unsigned)(f.s[i] - '0');
    }
    if (v < lo)
        return CHESS_FEN_E_COUNTERS;
    *out = (unsigned short)v;
    return 0;
}

/* What the pieces must satisfy for the move generator to be right about the position. */
static int fen_check_material(chess_pos *p)
{
    int kings[2] = {0, 0}, pawns[2] = {0, 0}, pieces[2] = {0, 0};
    for (int sq = 0; sq < 64; sq++) {
        const int pc = p->sq[sq];
        if (pc == EMPTY)
            continue;
        const int c = COLOR(pc);
        pieces[c]++;
        if (TYPE(pc) == KING) {
            kings[c]++;
            p->king[c] = (unsigned char)sq;
        } else if (TYPE(pc) == PAWN) {
            pawns[c]++;
            if (sq < 8 || sq >= 56)
                return CHESS_FEN_E_PAWNS;
        }
    }
    if (kings[0] != 1 || kings[1] != 1)
        return CHESS_FEN_E_KINGS;
    if (pawns[0] > 8 || pawns[1] > 8)
        return CHESS_FEN_E_PAWNS;
    if (pieces[0] > 16 || pieces[1] > 16)
        return CHESS_FEN_E_PIECES;
    return 0;
}

static int fen_castling(chess_pos *p, fen_field f)
{
    static const char LETTERS[] = "KQkq";
    p->castle = 0;
    if (f.n == 1 && f.s[0] == '-')
        return 0;
    size_t next = 0; /* in this order, each at most once */
    for (size_t i = 0; i < f.n; i++) {
        while (next < 4 && LETTERS[next] != f.s[i])
            next++;
        if (next == 4)
            return CHESS_FEN_E_CASTLING;
        p->castle |= (unsigned char)(1u << next++);
    }
    if (f.n == 0)
        return CHESS_FEN_E_CASTLING;
    /* A right needs its king and rook still at home. */
    static const struct { unsigned char right, king, rook, c; } HOMES[4] = {
        {WK, E1, H1, 0}, {WQ, E1, A1, 0}, {BK, E8, H8, BLACK}, {BQ, E8, A8, BLACK}};
    for (int i = 0; i < 4; i++)
        if ((p->castle & HOMES[i].right) && (p->sq[HOMES[i].king] != (KING | HOMES[i].c) ||
                                             p->sq[HOMES[i].rook] != (ROOK | HOMES[i].c)))
            return CHESS_FEN_E_CASTLING;
    return 0;
}

static int fen_en_passant(chess_pos *p, fen_field f)
{
    p->ep = -1;
    if (f.n == 1 && f.s[0] == '-')
        return 0;
    /* White to move: a black pawn just went from rank 7 to 5, the target is on rank 6. */
    const char rank = p->side ? '3' : '6';
    if (f.n != 2 || f.s[0] < 'a' || f.s[0] > 'h' || f.s[1] != rank)
        return CHESS_FEN_E_EN_PASSANT;
    const int t = (f.s[1] - '1') * 8 + (f.s[0] - 'a');
    const int pawn_at = p->side ? t + 8 : t - 8, came_from = p->side ? t - 8 : t + 8;
    const int their_pawn = PAWN | (p->side ? 0 : BLACK);
    if (p->sq[t] != EMPTY || p->sq[came_from] != EMPTY || p->sq[pawn_at] != their_pawn)
        return CHESS_FEN_E_EN_PASSANT;
    p->ep = (signed char)t;
    return 0;
}

int chess_pos_from_fen(chess_pos *p, const char *fen, size_t len)
{
    if (len > CHESS_FEN_MAX)
        return CHESS_FEN_E_TOO_LONG;
    fen_field f[6];
    size_t nf = 0, i = 0;
    while (i <= len) { /* fields between single spaces, none empty */
        if (nf == 6)
            return CHESS_FEN_E_FIELDS;
        f[nf].s = fen + i;
        f[nf].n = 0;
        while (i < len && fen[i] != ' ')
            i++, f[nf].n++;
        if (f[nf].n == 0)
            return CHESS_FEN_E_FIELDS;
        nf++;
        i++; /* the space, or past the end */
    }
    if (nf != 4 && nf != 6)
        return CHESS_FEN_E_FIELDS;
    memset(p, 0, sizeof *p);
    int rc = fen_board(p, f[0]);
    if (rc < 0 || (rc = fen_check_material(p)) < 0)
        return rc;
    if (f[1].n != 1 || (f[1].s[0] != 'w' && f[1].s[0] != 'b'))
        return CHESS_FEN_E_SIDE;
    p->side = f[1].s[0] == 'b';
    if ((rc = fen_castling(p, f[2])) < 0 || (rc = fen_en_passant(p, f[3])) < 0)
        return rc;
    p->halfmove = 0;
    p->fullmove = 1;
    if (nf == 6 && ((rc = fen_counter(f[4], 0, &p->halfmove)) < 0 ||
                    (rc = fen_counter(f[5], 1, &p->fullmove)) < 0))
        return rc;
    /* The side that just moved cannot be in check: its king could be taken. */
    if (attacked(p, p->king[!p->side], p->side))
        return CHESS_FEN_E_CHECK;
    return 0;
}

const char *chess_rules_strerror(int err)
{
    switch (err) {
    case CHESS_FEN_E_TOO_LONG: return "fen-too-long";
    case CHESS_FEN_E_FIELDS: return "fen-fields";
    case CHESS_FEN_E_BOARD: return "fen-board";
    case CHESS_FEN_E_SIDE: return "fen-side";
    case CHESS_FEN_E_CASTLING: return "fen-castling";
    case CHESS_FEN_E_EN_PASSANT: return "fen-en-passant";
    case CHESS_FEN_E_COUNTERS: return "fen-counters";
    case CHESS_FEN_E_KINGS: return "fen-kings";
    case CHESS_FEN_E_PAWNS: return "fen-pawns";
    case CHESS_FEN_E_PIECES: return "fen-pieces";
    case CHESS_FEN_E_CHECK: return "fen-side-not-to-move-in-check";
    case CHESS_UCI_E_SYNTAX: return "bad-move";
    case CHESS_UCI_E_ILLEGAL: return "illegal-move";
    default: return "bad-rules-input";
    }
}
