/* test_chess_rules.c — the chess simul's rules (examples/chess_simul/rules.c): the move generator
 * proved by perft against the published node counts, FEN and UCI errors, illegal moves refused,
 * mate and stalemate, and the seeded move choice. The example's source is included because unit
 * tests link only the library. */
#include "test_main_helpers.h"

#include "../protocol.c"
#include "../rules.c"

#define START_FEN "rnbqkbnr/pppppppp/8/8/8/8/PPPPPPPP/RNBQKBNR w KQkq - 0 1"
#define KIWIPETE "r3k2r/p1ppqpb1/bn2pnp1/3PN3/1p2P3/2N2Q1p/PPPBBPPP/R3K2R w KQkq -"
#define POSITION3 "8/2p5/3p4/KP5r/1R3p1k/8/4P1P1/8 w - -"
#define POSITION4 "r3k2r/Pppp1ppp/1b3nbN/nP6/BBP1P3/q4N2/Pp1P2PP/R2Q1RK1 w kq - 0 1"
#define POSITION5 "rnbq1k1r/pp1Pbppp/2p5/8/2B5/8/PPP1NnPP/RNBQK2R w KQ - 1 8"

static int fen(chess_pos *p, const char *s)
{
    return chess_pos_from_fen(p, s, strlen(s));
}

static chess_pos pos(const char *s)
{
    chess_pos p;
    int rc = fen(&p, s);
    if (rc != 0)
        fail_msg("FEN %s: %s", s, chess_rules_strerror(rc));
    return p;
}

static int play(chess_pos *p, const char *uci)
{
    return chess_play_uci(p, uci, strlen(uci));
}

static void check_perft(const char *s, const uint64_t *want, int depths)
{
    chess_pos p = pos(s);
    for (int d = 1; d <= depths; d++) {
        uint64_t got = chess_perft(&p, d);
        if (got != want[d - 1])
            fail_msg("perft(%d) of %s: %llu, want %llu", d, s, (unsigned long long)got,
                     (unsigned long long)want[d - 1]);
    }
}

static void perft_start_position(void **state)
{
    (void)state;
    static const uint64_t want[] = {20, 400, 8902, 197281};
    check_perft(START_FEN, want, 4);
    chess_pos a, b;
    chess_pos_start(&a);
    b = pos(START_FEN);
    assert_memory_equal(&a, &b, sizeof a);
}

static void perft_kiwipete(void **state)
{
    (void)state; /* castling both ways, pins, en passant, promotions by capture */
    static const uint64_t want[] = {48, 2039, 97862};
    check_perft(KIWIPETE, want, 3);
}

static void perft_position3(void **state)
{
    (void)state; /* en passant that would expose the king along the rank */
    static const uint64_t want[] = {14, 191, 2812, 43238};
    check_perft(POSITION3, want, 4);
}

static void perft_promotions(void **state)
{
    (void)state; /* the chessprogramming wiki's positions 4 and 5: promotions, checks */
    static const uint64_t want4[] = {6, 264, 9467};
    check_perft(POSITION4, want4, 3);
    static const uint64_t want5[] = {44, 1486, 62379};
    check_perft(POSITION5, want5, 3);
}

static void fen_errors(void **state)
{
    (void)state;
    chess_pos p;
    char longer[CHESS_FEN_MAX + 2];
    memset(longer, '8', sizeof longer);
    assert_int_equal(chess_pos_from_fen(&p, longer, sizeof longer), CHESS_FEN_E_TOO_LONG);
    assert_int_equal(fen(&p, ""), CHESS_FEN_E_FIELDS);
    assert_int_equal(fen(&p, "8/8/8/8/8/8/8/8"), CHESS_FEN_E_FIELDS);
    assert_int_equal(fen(&p, "4k3/8/8/8/8/8/8/4K3 w - - 0"), CHESS_FEN_E_FIELDS);
    assert_int_equal(fen(&p, "4k3/8/8/8/8/8/8/4K3 w - - 0 1 x"), CHESS_FEN_E_FIELDS);
    assert_int_equal(fen(&p, "4k3/8/8/8/8/8/8/4K3  w - -"), CHESS_FEN_E_FIELDS);
    assert_int_equal(fen(&p, "4k3/8/8/8/8/8/8/4K3 w - - "), CHESS_FEN_E_FIELDS);
    assert_int_equal(fen(&p, "4k3/8/8/8/8/8/8/4K3/8 w - -"), CHESS_FEN_E_BOARD);  /* 9 ranks */
    assert_int_equal(fen(&p, "4k3/8/8/8/8/8/4K3 w - -"), CHESS_FEN_E_BOARD);      /* 7 ranks */
    assert_int_equal(fen(&p, "4k4/8/8/8/8/8/8/4K3 w - -"), CHESS_FEN_E_BOARD);    /* 9 files */
    assert_int_equal(fen(&p, "4k2/8/8/8/8/8/8/4K3 w - -"), CHESS_FEN_E_BOARD);    /* 7 files */
    assert_int_equal(fen(&p, "4k3/8/8/8/8/8/8/4K21 w - -"), CHESS_FEN_E_BOARD);   /* "21" */
    assert_int_equal(fen(&p, "4k3/8/8/8/8/8/8/4X3 w - -"), CHESS_FEN_E_BOARD);
    assert_int_equal(fen(&p, "4k3/8/8/8/8/8/8/4K3/ w - -"), CHESS_FEN_E_BOARD);
    assert_int_equal(fen(&p, "4k3/8/8/8/8/8/8/8 w - -"), CHESS_FEN_E_KINGS);
    assert_int_equal(fen(&p, "4k3/8/8/8/8/8/8/3KK3 w - -"), CHESS_FEN_E_KINGS);
    assert_int_equal(fen(&p, "P3k3/8/8/8/8/8/8/4K3 w - -"), CHESS_FEN_E_PAWNS);
    assert_int_equal(fen(&p, "4k3/8/8/8/8/8/8/p3K3 w - -"), CHESS_FEN_E_PAWNS);
    assert_int_equal(fen(&p, "4k3/8/8/8/8/P7/PPPPPPPP/4K3 w - -"), CHESS_FEN_E_PAWNS);
    assert_int_equal(fen(&p, "4k3/8/8/8/8/QQQQQQQQ/QQQQQQQQ/4K3 w - -"), CHESS_FEN_E_PIECES);
    assert_int_equal(fen(&p, "4k3/8/8/8/8/8/8/4K3 x - -"), CHESS_FEN_E_SIDE);
    assert_int_equal(fen(&p, "4k3/8/8/8/8/8/8/4K3 white - -"), CHESS_FEN_E_SIDE);
    assert_int_equal(fen(&p, "r3k2r/8/8/8/8/8/8/R3K2R w KX -"), CHESS_FEN_E_CASTLING);
    assert_int_equal(fen(&p, "r3k2r/8/8/8/8/8/8/R3K2R w QK -"), CHESS_FEN_E_CASTLING); /* order */
    assert_int_equal(fen(&p, "r3k2r/8/8/8/8/8/8/R3K2R w KK -"), CHESS_FEN_E_CASTLING);
    assert_int_equal(fen(&p, "r3k2r/8/8/8/8/8/8/R3K2R w K- -"), CHESS_FEN_E_CASTLING);
    assert_int_equal(fen(&p, "r3k2r/8/8/8/8/8/8/R4K1R w K -"), CHESS_FEN_E_CASTLING); /* king */
    assert_int_equal(fen(&p, "r3k3/8/8/8/8/8/8/R3K2R w KQkq -"), CHESS_FEN_E_CASTLING); /* rook */
    assert_int_equal(fen(&p, "4k3/8/8/3pP3/8/8/8/4K3 w - e6"), CHESS_FEN_E_EN_PASSANT); /* e5 */
    assert_int_equal(fen(&p, "4k3/8/8/3pP3/8/8/8/4K3 w - d3"), CHESS_FEN_E_EN_PASSANT); /* rank */
    assert_int_equal(fen(&p, "4k3/8/8/3pP3/8/8/8/4K3 w - d"), CHESS_FEN_E_EN_PASSANT);
    assert_int_equal(fen(&p, "4k3/3p4/8/3pP3/8/8/8/4K3 w - d6"), CHESS_FEN_E_EN_PASSANT);
    assert_int_equal(fen(&p, "4k3/8/8/8/8/8/8/4K3 w - - -1 1"), CHESS_FEN_E_COUNTERS);
    assert_int_equal(fen(&p, "4k3/8/8/8/8/8/8/4K3 w - - 0 0"), CHESS_FEN_E_COUNTERS);
    assert_int_equal(fen(&p, "4k3/8/8/8/8/8/8/4K3 w - - 00 1"), CHESS_FEN_E_COUNTERS);
    assert_int_equal(fen(&p, "4k3/8/8/8/8/8/8/4K3 w - - 0 99999"), CHESS_FEN_E_COUNTERS);
    assert_int_equal(fen(&p, "4k3/8/8/8/8/8/8/4K3 w - - 0 x"), CHESS_FEN_E_COUNTERS);
    /* Black in check with white to move: white could take the king. */
    assert_int_equal(fen(&p, "4k3/8/8/8/8/8/8/4KR2 w - - 0 1"), 0);
    assert_int_equal(fen(&p, "4k3/8/8/8/8/8/8/4R1K1 w - - 0 1"), CHESS_FEN_E_CHECK);
    /* A good one, with its en passant and counters. */
    assert_int_equal(fen(&p, "4k3/8/8/3pP3/8/8/8/4K3 w - d6 0 12"), 0);
    assert_int_equal(p.ep, 43);
    assert_int_equal(p.fullmove, 12);
    assert_int_equal(fen(&p, "4k3/8/8/8/4Pp2/8/8/4K3 b - e3 0 1"), 0);
    assert_int_equal(p.ep, 20);
    /* Every error has its word. */
    for (int e = CHESS_UCI_E_ILLEGAL; e <= CHESS_FEN_E_TOO_LONG; e++)
        assert_string_not_equal(chess_rules_strerror(e), "bad-rules-input");
}

static void uci_errors(void **state)
{
    (void)state;
    chess_move m;
    static const char *const bad[] = {"", "e2", "e2e", "e2e4e5", "i2i4", "e0e4", "e2e9", "E2E4",
                                      "e2e4 ", "e7e8k", "e7e8p", "e7e8Q", "Nf3", "0-0"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++)
        if (chess_parse_uci(bad[i], strlen(bad[i]), &m) != CHESS_UCI_E_SYNTAX)
            fail_msg("'%s' parsed as a move", bad[i]);
    assert_int_equal(chess_parse_uci("e7e8\0", 5, &m), CHESS_UCI_E_SYNTAX); /* embedded NUL */
    assert_int_equal(chess_parse_uci("a1h8", 4, &m), 0);
    assert_int_equal(m.from, 0);
    assert_int_equal(m.to, 63);
    assert_int_equal(m.promo, 0);
    assert_int_equal(chess_parse_uci("b2b1n", 5, &m), 0);
    assert_int_equal(m.promo, KNIGHT);
    /* Round trip: every legal move of Kiwipete, positions 4 and 5 says itself and plays back. */
    static const char *const fens[] = {KIWIPETE, POSITION4, POSITION5};
    for (size_t f = 0; f < ARRAY_LEN(fens); f++) {
        chess_pos p = pos(fens[f]);
        chess_move moves[CHESS_LEGAL_MAX];
        int n = chess_legal_moves(&p, moves);
        for (int i = 0; i < n; i++) {
            char text[6];
            chess_move_uci(moves[i], text);
            chess_pos by_move = p, by_text = p;
            chess_make_move(&by_move, moves[i]);
            assert_int_equal(play(&by_text, text), 0);
            assert_memory_equal(&by_move, &by_text, sizeof by_move);
            /* ...and is a MOVE the protocol carries. */
            chess_msg msg = {.kind = CHESS_MOVE, .a = 1};
            memcpy(msg.text, text, sizeof text);
            char line[CHESS_LINE_MAX + 1];
            assert_true(chess_format(&msg, line, sizeof line) > 0);
        }
    }
}

static void illegal_moves_refused(void **state)
{
    (void)state;
    chess_pos p, before;
    chess_pos_start(&p);
    before = p;
    assert_int_equal(play(&p, "e7e5"), CHESS_UCI_E_ILLEGAL); /* black's pawn on white's turn */
    assert_int_equal(play(&p, "e2e5"), CHESS_UCI_E_ILLEGAL); /* three squares */
    assert_int_equal(play(&p, "e1e2"), CHESS_UCI_E_ILLEGAL); /* onto its own pawn */
    assert_int_equal(play(&p, "f1c4"), CHESS_UCI_E_ILLEGAL); /* through its own pawn */
    assert_int_equal(play(&p, "e3e4"), CHESS_UCI_E_ILLEGAL); /* from an empty square */
    assert_int_equal(play(&p, "e2e4q"), CHESS_UCI_E_ILLEGAL); /* a promotion that is not */
    assert_memory_equal(&p, &before, sizeof p);               /* refused moves change nothing */
    assert_int_equal(play(&p, "e2e4"), 0);
    assert_int_equal(play(&p, "d2d4"), CHESS_UCI_E_ILLEGAL); /* white again */
    assert_int_equal(play(&p, "e7e5"), 0);

    /* Moving into check; a pinned piece leaving the pin; a king walking into a pawn's attack. */
    p = pos("4k3/8/8/8/4r3/8/4B3/4K3 w - - 0 1");
    assert_int_equal(play(&p, "e2d3"), CHESS_UCI_E_ILLEGAL);
    assert_int_equal(play(&p, "e1e2"), CHESS_UCI_E_ILLEGAL);
    assert_int_equal(play(&p, "e1f2"), 0);
    p = pos("4k3/8/8/8/8/5p2/8/4K3 w - - 0 1");
    assert_int_equal(play(&p, "e1e2"), CHESS_UCI_E_ILLEGAL);
    assert_int_equal(play(&p, "e1f2"), 0);
    /* In check, only a move that answers it. */
    p = pos("4k3/8/8/8/8/8/3P4/r3K3 w - - 0 1");
    assert_int_equal(play(&p, "d2d3"), CHESS_UCI_E_ILLEGAL);
    assert_int_equal(play(&p, "e1e2"), 0);

    /* Castling: through an attacked square, into one, out of check, after the king moved. */
    p = pos("4k3/8/8/8/8/8/8/R3K2R w KQ - 0 1");
    assert_int_equal(play(&p, "e1g1"), 0); /* free to castle */
    assert_int_equal(p.sq[F1], ROOK);
    assert_int_equal(p.sq[G1], KING);
    assert_int_equal(p.sq[H1], EMPTY);
    p = pos("4k3/8/8/8/8/8/8/R3K2R w KQ - 0 1");
    assert_int_equal(play(&p, "e1c1"), 0);
    assert_int_equal(p.sq[D1], ROOK);
    assert_int_equal(p.sq[A1], EMPTY);
    p = pos("4kr2/8/8/8/8/8/8/R3K2R w KQ - 0 1"); /* f1 attacked: not through it */
    assert_int_equal(play(&p, "e1g1"), CHESS_UCI_E_ILLEGAL);
    assert_int_equal(play(&p, "e1c1"), 0);
    p = pos("4k1r1/8/8/8/8/8/8/R3K2R w KQ - 0 1"); /* g1 attacked: not into it */
    assert_int_equal(play(&p, "e1g1"), CHESS_UCI_E_ILLEGAL);
    p = pos("3rk3/8/8/8/8/8/8/R3K2R w KQ - 0 1"); /* d1 attacked: not through it */
    assert_int_equal(play(&p, "e1c1"), CHESS_UCI_E_ILLEGAL);
    assert_int_equal(play(&p, "e1g1"), 0);
    p = pos("1r2k3/8/8/8/8/8/8/R3K2R w KQ - 0 1"); /* only b1 attacked: the king does not pass */
    assert_int_equal(play(&p, "e1c1"), 0);
    p = pos("4k3/8/8/8/8/8/8/RN2K2R w KQ - 0 1"); /* b1 occupied */
    assert_int_equal(play(&p, "e1c1"), CHESS_UCI_E_ILLEGAL);
    p = pos("4r1k1/8/8/8/8/8/8/R3K2R w KQ - 0 1"); /* in check: not out of it by castling */
    assert_int_equal(play(&p, "e1g1"), CHESS_UCI_E_ILLEGAL);
    assert_int_equal(play(&p, "e1c1"), CHESS_UCI_E_ILLEGAL);
    p = pos("4k3/8/8/8/8/8/8/R3K2R w KQ - 0 1");
    assert_int_equal(play(&p, "e1f1"), 0); /* the king moves: the rights are gone */
    assert_int_equal(play(&p, "e8d8"), 0);
    assert_int_equal(play(&p, "f1e1"), 0);
    assert_int_equal(play(&p, "d8e8"), 0);
    assert_int_equal(play(&p, "e1g1"), CHESS_UCI_E_ILLEGAL);
    p = pos("4k3/8/8/8/8/8/8/R3K2R w KQ - 0 1");
    assert_int_equal(play(&p, "h1h2"), 0); /* the rook moves: that side's right is gone */
    assert_int_equal(p.castle, WQ);

    /* En passant: right after the double step only; never exposing the king (position 3). */
    p = pos("4k3/3p4/8/4P3/8/8/8/4K3 b - - 0 1");
    assert_int_equal(play(&p, "d7d5"), 0);
    chess_pos later = p;
    assert_int_equal(play(&p, "e5d6"), 0);
    assert_int_equal(p.sq[35], EMPTY); /* d5's pawn was taken */
    assert_int_equal(play(&later, "e1e2"), 0);
    assert_int_equal(play(&later, "e8e7"), 0);
    assert_int_equal(play(&later, "e5d6"), CHESS_UCI_E_ILLEGAL); /* too late */
    p = pos("8/8/8/KPp4r/8/8/8/7k w - c6 0 1");
    assert_int_equal(play(&p, "b5c6"), CHESS_UCI_E_ILLEGAL); /* the rook would see the king */

    /* Promotion: the piece must be named. */
    p = pos("4k3/1P6/8/8/8/8/8/4K3 w - - 0 1");
    assert_int_equal(play(&p, "b7b8"), CHESS_UCI_E_ILLEGAL);
    assert_int_equal(play(&p, "b7b8n"), 0);
    assert_int_equal(p.sq[57], KNIGHT);
}

static void mate_and_stalemate(void **state)
{
    (void)state;
    chess_pos p;
    chess_pos_start(&p);
    assert_int_equal(chess_game_status(&p), CHESS_ONGOING);
    assert_string_equal(chess_result(&p), "*");
    static const char *const fools_mate[] = {"f2f3", "e7e5", "g2g4", "d8h4"};
    for (size_t i = 0; i < ARRAY_LEN(fools_mate); i++)
        assert_int_equal(play(&p, fools_mate[i]), 0);
    assert_true(chess_in_check(&p));
    assert_int_equal(chess_game_status(&p), CHESS_CHECKMATE);
    assert_string_equal(chess_result(&p), "0-1");
    chess_move m;
    assert_int_equal(chess_pick_move(&p, 1, &m), 0);
    /* Black mated by white: 1-0. */
    p = pos("6k1/5ppp/8/8/8/8/8/R5K1 w - - 0 1");
    assert_int_equal(play(&p, "a1a8"), 0);
    assert_string_equal(chess_result(&p), "1-0");
    /* Stalemate: black to move, not in check, no move. */
    p = pos("7k/5Q2/6K1/8/8/8/8/8 b - - 0 1");
    assert_false(chess_in_check(&p));
    assert_int_equal(chess_game_status(&p), CHESS_STALEMATE);
    assert_string_equal(chess_result(&p), "1/2-1/2");
}

static void picked_moves(void **state)
{
    (void)state;
    /* Reproducible and legal, and the games last: 200 boards of 60 plies each from the start. */
    for (unsigned board = 0; board < 200; board++) {
        chess_pos a, b;
        chess_pos_start(&a);
        chess_pos_start(&b);
        for (unsigned n = 1; n <= 30; n++) {
            for (int black = 0; black <= 1; black++) {
                chess_move ma, mb;
                uint32_t seed = chess_move_seed(board, n, black);
                assert_true(chess_pick_move(&a, seed, &ma) > 0);
                assert_true(chess_pick_move(&b, seed, &mb) > 0);
                assert_memory_equal(&ma, &mb, sizeof ma);
                char text[6];
                chess_move_uci(ma, text);
                assert_int_equal(play(&a, text), 0); /* it is legal */
                chess_make_move(&b, mb);
                assert_int_equal(chess_game_status(&a), CHESS_ONGOING);
            }
        }
        assert_memory_equal(&a, &b, sizeof a);
    }
    /* Boards play different games. */
    assert_int_not_equal(chess_move_seed(0, 1, 0), chess_move_seed(1, 1, 0));
    assert_int_not_equal(chess_move_seed(0, 1, 0), chess_move_seed(0, 1, 1));
    /* It avoids stalemating: of white's moves here, Qf7, Qg6 and others stalemate black. */
    chess_pos p = pos("7k/8/6K1/8/8/8/8/5Q2 w - - 0 1");
    for (uint32_t seed = 0; seed < 64; seed++) {
        chess_move m;
        assert_true(chess_pick_move(&p, seed, &m) > 0);
        chess_pos q = p;
        chess_make_move(&q, m);
        assert_int_equal(chess_game_status(&q), CHESS_ONGOING);
    }
    /* ...unless it has to: black's one legal move here ends the game. */
    p = pos("8/8/1bp3Q1/7k/7p/r6p/q7/7K b - - 0 1");
    chess_move m;
    assert_int_equal(chess_pick_move(&p, 12345, &m), 1);
    chess_make_move(&p, m);
    assert_int_not_equal(chess_game_status(&p), CHESS_ONGOING);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(perft_start_position),
        cmocka_unit_test(perft_kiwipete),
        cmocka_unit_test(perft_position3),
        cmocka_unit_test(perft_promotions),
        cmocka_unit_test(fen_errors),
        cmocka_unit_test(uci_errors),
        cmocka_unit_test(illegal_moves_refused),
        cmocka_unit_test(mate_and_stalemate),
        cmocka_unit_test(picked_moves),
    };
    return simul_test_main(argc, argv, tests, ARRAY_LEN(tests), "test_chess_rules");
}
