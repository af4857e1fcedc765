/* fuzz_chess_protocol.c — libFuzzer target for the chess simul's line parser
 * (examples/chess_simul/protocol.c) and rules (rules.c): the input is parsed whole, then line by
 * line as a stream would cut it, and every message that parses must format back to a line that
 * parses to the same message. Each line is also read as a FEN (a position that parses must have
 * moves that say themselves in UCI and play back, and a picked move among them) and as a UCI
 * move on the start position. Any crash, out-of-bounds read (ASan) or broken invariant is a
 * finding.
 *
 * The sources are included (fuzz targets link only the library), so fuzz/CMakeLists.txt
 * builds this file as it is: a replay program run by ctest on fuzz/corpus/chess_protocol, and
 * with clang and -DSIMUL_BUILD_FUZZ=ON the libFuzzer binary:
 *   build-fuzz/fuzz/fuzz_chess_protocol -max_len=256 -max_total_time=60 fuzz/corpus/chess_protocol
 * Or by hand, without CMake:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE \
 *       fuzz/fuzz_chess_protocol.c -o /tmp/fuzz_chess_protocol
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../examples/chess_simul/protocol.c"
#include "../examples/chess_simul/rules.c"

static void check_rules(const char *text, size_t len)
{
    if (len > 0 && text[len - 1] == '\n')
        len--;
    chess_pos p;
    chess_pos_start(&p);
    const chess_pos start = p;
    int rc = chess_play_uci(&p, text, len);
    if (rc != 0 && (rc != CHESS_UCI_E_SYNTAX && rc != CHESS_UCI_E_ILLEGAL))
        abort();
    if (rc != 0 && memcmp(&p, &start, sizeof p) != 0)
        abort(); /* a refused move leaves the position alone */
    rc = chess_pos_from_fen(&p, text, len);
    if (rc > 0 || (rc < 0 && (rc < CHESS_FEN_E_CHECK || rc > CHESS_FEN_E_TOO_LONG)))
        abort();
    if (rc < 0)
        return;
    chess_move moves[CHESS_LEGAL_MAX];
    int n = chess_legal_moves(&p, moves);
    for (int i = 0; i < n; i++) {
        char uci[6];
        chess_move_uci(moves[i], uci);
        chess_pos by_move = p, by_text = p;
        chess_make_move(&by_move, moves[i]);
        if (chess_play_uci(&by_text, uci, strlen(uci)) != 0 ||
            memcmp(&by_move, &by_text, sizeof by_move) != 0)
            abort();
        if (by_move.king[p.side] >= 64 || attacked(&by_move, by_move.king[p.side], !p.side))
            abort(); /* a legal move never leaves the mover's king attacked */
    }
    chess_move picked;
    if (chess_pick_move(&p, (uint32_t)len, &picked) != n)
        abort();
    if ((n == 0) != (chess_game_status(&p) != CHESS_ONGOING))
        abort();
    if (chess_perft(&p, 1) != (uint64_t)n)
        abort();
}

static void check_one(const char *line, size_t len)
{
    chess_msg m;
    int rc = chess_parse(line, len, &m);
    if (rc > 0 || rc < CHESS_E_TEXT)
        abort(); /* 0 or one of the documented errors, nothing else */
    if (rc < 0)
        return;
    if (m.kind == CHESS_MOVE)
        check_rules(m.text, strlen(m.text));
    char buf[CHESS_LINE_MAX + 1];
    int n = chess_format(&m, buf, sizeof buf);
    if (n <= 0 || (size_t)n > CHESS_LINE_MAX)
        abort(); /* a message we accept can always be said back */
    chess_msg back;
    if (chess_parse(buf, (size_t)n, &back) != 0 || back.kind != m.kind || back.a != m.a ||
        back.b != m.b || strcmp(back.text, m.text) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly `size` bytes, so ASan sees any read past the end. */
    char *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    check_one(copy, size);
    size_t start = 0;
    for (size_t i = 0; i < size; i++) {
        if (copy[i] == '\n') {
            check_one(copy + start, i + 1 - start);
            check_rules(copy + start, i + 1 - start);
            start = i + 1;
        }
    }
    if (start < size) {
        check_one(copy + start, size - start);
        check_rules(copy + start, size - start);
    }
    free(copy);
    return 0;
}
