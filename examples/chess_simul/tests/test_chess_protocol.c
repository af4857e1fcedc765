/* test_chess_protocol.c — the chess simul's line protocol parser and formatter (a pure function
 * over bytes), and the model's arithmetic, without sockets. The example's sources are included
 * because unit tests link only the library. */
#include "test_main_helpers.h"

#include "../model.c"
#include "../protocol.c"

static int parse(const char *s, chess_msg *m)
{
    return chess_parse(s, strlen(s), m);
}

static int parse_err(const char *s)
{
    chess_msg m;
    return parse(s, &m);
}

static void valid_messages(void **state)
{
    (void)state;
    chess_msg m;
    assert_int_equal(parse("HELLO 1 7\n", &m), 0);
    assert_int_equal(m.kind, CHESS_HELLO);
    assert_int_equal(m.a, 1);
    assert_int_equal(m.b, 7);
    assert_int_equal(parse("START 0 30", &m), 0); /* without its "\n" too */
    assert_int_equal(m.kind, CHESS_START);
    assert_int_equal(m.a, 0);
    assert_int_equal(m.b, 30);
    assert_int_equal(parse("MOVE 12 e2e4\n", &m), 0);
    assert_int_equal(m.kind, CHESS_MOVE);
    assert_int_equal(m.a, 12);
    assert_string_equal(m.text, "e2e4");
    assert_int_equal(parse("MOVE 40 e7e8q\r\n", &m), 0); /* promotion; CRLF tolerated */
    assert_string_equal(m.text, "e7e8q");
    assert_int_equal(parse("ACK 3\n", &m), 0);
    assert_int_equal(m.kind, CHESS_ACK);
    assert_int_equal(m.a, 3);
    assert_int_equal(parse("ERR out-of-turn\n", &m), 0);
    assert_int_equal(m.kind, CHESS_ERR);
    assert_string_equal(m.text, "out-of-turn");
    assert_int_equal(parse("ERR two words\n", &m), 0); /* a reason may hold spaces */
    assert_string_equal(m.text, "two words");
    assert_int_equal(parse("END 30 1/2-1/2\n", &m), 0);
    assert_int_equal(m.kind, CHESS_END);
    assert_int_equal(m.a, 30);
    assert_string_equal(m.text, "1/2-1/2");
    assert_int_equal(parse("END 0 *\n", &m), 0);
    /* The extremes of every range. */
    assert_int_equal(parse("HELLO 65535 999999\n", &m), 0);
    assert_int_equal(m.b, CHESS_MAX_BOARDS - 1);
    assert_int_equal(parse("MOVE 10000 h8a1\n", &m), 0);
    assert_int_equal(m.a, CHESS_MAX_MOVES);
}

static void malformed_kinds(void **state)
{
    (void)state;
    assert_int_equal(parse_err("\n"), CHESS_E_EMPTY);
    assert_int_equal(parse_err(""), CHESS_E_EMPTY);
    assert_int_equal(parse_err("\r\n"), CHESS_E_EMPTY);
    assert_int_equal(parse_err("HOWDY 1 2\n"), CHESS_E_UNKNOWN);
    assert_int_equal(parse_err("move 1 e2e4\n"), CHESS_E_UNKNOWN); /* commands are upper case */
    assert_int_equal(parse_err(" MOVE 1 e2e4\n"), CHESS_E_UNKNOWN);
    assert_int_equal(parse_err("MOVE\n"), CHESS_E_SYNTAX);
    assert_int_equal(parse_err("MOVE 1\n"), CHESS_E_SYNTAX);
    assert_int_equal(parse_err("MOVE 1 e2e4 x\n"), CHESS_E_SYNTAX);
    assert_int_equal(parse_err("MOVE  1 e2e4\n"), CHESS_E_SYNTAX);  /* double space */
    assert_int_equal(parse_err("MOVE 1 e2e4 \n"), CHESS_E_SYNTAX);  /* trailing space */
    assert_int_equal(parse_err("MOVE 1\te2e4\n"), CHESS_E_SYNTAX);  /* a tab is no separator */
    assert_int_equal(parse_err("ACK\n"), CHESS_E_SYNTAX);
    assert_int_equal(parse_err("ACK 1 2\n"), CHESS_E_SYNTAX);
    assert_int_equal(parse_err("ACK x\n"), CHESS_E_SYNTAX);
    assert_int_equal(parse_err("ACK -1\n"), CHESS_E_SYNTAX);
    assert_int_equal(parse_err("ACK +1\n"), CHESS_E_SYNTAX);
    assert_int_equal(parse_err("ACK 01\n"), CHESS_E_SYNTAX); /* one spelling per number */
    assert_int_equal(parse_err("HELLO 1\n"), CHESS_E_SYNTAX);
    assert_int_equal(parse_err("START 1 2 3\n"), CHESS_E_SYNTAX);
    assert_int_equal(parse_err("END 3\n"), CHESS_E_SYNTAX);
    /* Moves in coordinate notation only. */
    assert_int_equal(parse_err("MOVE 1 e4\n"), CHESS_E_MOVE);
    assert_int_equal(parse_err("MOVE 1 Nf3\n"), CHESS_E_MOVE);
    assert_int_equal(parse_err("MOVE 1 i2i4\n"), CHESS_E_MOVE);
    assert_int_equal(parse_err("MOVE 1 e0e4\n"), CHESS_E_MOVE);
    assert_int_equal(parse_err("MOVE 1 e2e9\n"), CHESS_E_MOVE);
    assert_int_equal(parse_err("MOVE 1 e2e2\n"), CHESS_E_MOVE);   /* nowhere */
    assert_int_equal(parse_err("MOVE 1 e2e4q\n"), CHESS_E_MOVE);  /* promotion off the last rank */
    assert_int_equal(parse_err("MOVE 1 e7e8k\n"), CHESS_E_MOVE);  /* no promotion to a king */
    assert_int_equal(parse_err("MOVE 1 e2e4e5\n"), CHESS_E_MOVE);
    assert_int_equal(parse_err("END 3 2-0\n"), CHESS_E_RESULT);
    assert_int_equal(parse_err("END 3 1-0x\n"), CHESS_E_RESULT);
    assert_int_equal(parse_err("ERR\n"), CHESS_E_TEXT);
    assert_int_equal(parse_err("ERR \n"), CHESS_E_TEXT);
    assert_int_equal(parse_err("ERRx\n"), CHESS_E_UNKNOWN);
    assert_int_equal(parse_err("ERR bell\a\n"), CHESS_E_TEXT);
    assert_int_equal(parse_err("ERR caf\xc3\xa9\n"), CHESS_E_TEXT); /* ASCII only */
    /* Every error has a reason word for "ERR <reason>", itself a valid ERR line. */
    for (int e = CHESS_E_TEXT; e <= CHESS_E_EMPTY; e++) {
        char line[CHESS_LINE_MAX];
        snprintf(line, sizeof line, "ERR %s\n", chess_parse_strerror(e));
        chess_msg m;
        assert_int_equal(parse(line, &m), 0);
        assert_string_not_equal(chess_parse_strerror(e), "bad-message");
    }
}

static void too_long(void **state)
{
    (void)state;
    char line[256];
    /* "ERR " + reason + "\n" = CHESS_LINE_MAX exactly is accepted; one more byte is not. */
    memset(line, 'x', sizeof line);
    memcpy(line, "ERR ", 4);
    line[CHESS_LINE_MAX - 1] = '\n';
    chess_msg m;
    assert_int_equal(chess_parse(line, CHESS_LINE_MAX, &m), 0);
    assert_int_equal(strlen(m.text), CHESS_REASON_MAX);
    assert_int_equal(chess_parse(line, CHESS_LINE_MAX - 1, &m), 0); /* without the "\n" */
    line[CHESS_LINE_MAX - 1] = 'x';
    line[CHESS_LINE_MAX] = '\n';
    assert_int_equal(chess_parse(line, CHESS_LINE_MAX + 1, &m), CHESS_E_TOO_LONG);
    assert_int_equal(chess_parse(line, CHESS_LINE_MAX, &m), CHESS_E_TOO_LONG); /* no "\n" */
    assert_int_equal(chess_parse(line, sizeof line, &m), CHESS_E_TOO_LONG);
    /* A long line is too long before it is anything else (even full of NULs). */
    char zeros[200] = {0};
    assert_int_equal(chess_parse(zeros, sizeof zeros, &m), CHESS_E_TOO_LONG);
}

static void embedded_nul(void **state)
{
    (void)state;
    chess_msg m;
    static const char l1[] = "MOVE 1 e2e4\0junk\n";
    assert_int_equal(chess_parse(l1, sizeof l1 - 1, &m), CHESS_E_NUL);
    static const char l2[] = "ACK 1\0\n";
    assert_int_equal(chess_parse(l2, sizeof l2 - 1, &m), CHESS_E_NUL);
    static const char l3[] = "\0";
    assert_int_equal(chess_parse(l3, 1, &m), CHESS_E_NUL);
    static const char l4[] = "ERR a\0b\n";
    assert_int_equal(chess_parse(l4, sizeof l4 - 1, &m), CHESS_E_NUL);
}

static void numbers_out_of_range(void **state)
{
    (void)state;
    assert_int_equal(parse_err("HELLO 0 1\n"), CHESS_E_RANGE);       /* version 0 */
    assert_int_equal(parse_err("HELLO 65536 1\n"), CHESS_E_RANGE);
    assert_int_equal(parse_err("HELLO 1 1000000\n"), CHESS_E_RANGE); /* board id */
    assert_int_equal(parse_err("START 1 0\n"), CHESS_E_RANGE);       /* a game of no moves */
    assert_int_equal(parse_err("START 1 10001\n"), CHESS_E_RANGE);
    assert_int_equal(parse_err("MOVE 0 e2e4\n"), CHESS_E_RANGE);     /* moves count from 1 */
    assert_int_equal(parse_err("MOVE 10001 e2e4\n"), CHESS_E_RANGE);
    assert_int_equal(parse_err("ACK 0\n"), CHESS_E_RANGE);
    assert_int_equal(parse_err("ACK 4294967296\n"), CHESS_E_RANGE);  /* would wrap a uint32 */
    assert_int_equal(parse_err("ACK 99999999999999999999999\n"), CHESS_E_RANGE);
    assert_int_equal(parse_err("END 10001 *\n"), CHESS_E_RANGE);
}

static void format_round_trips(void **state)
{
    (void)state;
    chess_msg in[] = {
        {.kind = CHESS_HELLO, .a = 1, .b = 42},
        {.kind = CHESS_START, .a = 42, .b = 30},
        {.kind = CHESS_MOVE, .a = 7, .text = "g1f3"},
        {.kind = CHESS_ACK, .a = 7},
        {.kind = CHESS_ERR, .text = "out-of-turn"},
        {.kind = CHESS_END, .a = 30, .text = "0-1"},
    };
    for (size_t i = 0; i < ARRAY_LEN(in); i++) {
        char buf[CHESS_LINE_MAX + 1];
        int n = chess_format(&in[i], buf, sizeof buf);
        assert_true(n > 0);
        assert_int_equal(buf[n - 1], '\n');
        chess_msg out;
        assert_int_equal(chess_parse(buf, (size_t)n, &out), 0);
        assert_int_equal(out.kind, in[i].kind);
        assert_int_equal(out.a, in[i].a);
        assert_int_equal(out.b, in[i].b);
        assert_string_equal(out.text, in[i].text);
    }
    /* The formatter refuses what would not parse back, and a buffer too small. */
    char buf[CHESS_LINE_MAX + 1];
    assert_int_equal(chess_format(&(chess_msg){.kind = CHESS_MOVE, .a = 1, .text = "zz"}, buf,
                                  sizeof buf),
                     -1);
    assert_int_equal(chess_format(&(chess_msg){.kind = CHESS_ACK, .a = 0}, buf, sizeof buf), -1);
    assert_int_equal(chess_format(&(chess_msg){.kind = CHESS_ACK, .a = 5}, buf, 4), -1);
    assert_int_equal(chess_format(&(chess_msg){.kind = 0}, buf, sizeof buf), -1);
}

static void model_seed_numbers(void **state)
{
    (void)state;
    chess_params p = {.boards = 50, .moves = 30, .master_min = 0.5, .opponent_min = 5,
                      .switch_min = 1};
    /* The seed's 165 min per game, 50 games and 49 walks. */
    assert_true(fabs(chess_model_game_min(&p) - 165) < 1e-9);
    assert_true(fabs(chess_model_sync_min(&p) - (50 * 165 + 49)) < 1e-9);
    /* Master-bound: 0.5 + 49 x 1.5 + 29 x 75 + 5 = 2254 min (the seed's 22h30 was 45 x 30). */
    assert_true(chess_model_master_bound(&p));
    assert_true(fabs(chess_model_async_min(&p) - 2254) < 1e-9);
    /* Opponent-bound: 3 boards, the round is o + v = 5 + 1.5. */
    p.boards = 3;
    assert_false(chess_model_master_bound(&p));
    assert_true(fabs(chess_model_async_min(&p) - (0.5 + 2 * 1.5 + 29 * 6.5 + 5)) < 1e-9);
    /* One board: no walks, async and sync agree. */
    p.boards = 1;
    assert_true(fabs(chess_model_async_min(&p) - 165) < 1e-9);
    assert_true(fabs(chess_model_sync_min(&p) - 165) < 1e-9);
    char buf[32];
    assert_string_equal(chess_format_seed(8299, buf, sizeof buf), "5.76 days");
    assert_string_equal(chess_format_seed(2254, buf, sizeof buf), "37.6 h");
    assert_string_equal(chess_format_seed(79, buf, sizeof buf), "79.0 min");
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(valid_messages),
        cmocka_unit_test(malformed_kinds),
        cmocka_unit_test(too_long),
        cmocka_unit_test(embedded_nul),
        cmocka_unit_test(numbers_out_of_range),
        cmocka_unit_test(format_round_trips),
        cmocka_unit_test(model_seed_numbers),
    };
    return simul_test_main(argc, argv, tests, ARRAY_LEN(tests), "test_chess_protocol");
}
