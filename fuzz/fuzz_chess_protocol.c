/* fuzz_chess_protocol.c — libFuzzer target for the chess simul's line parser
 * (examples/chess_simul/protocol.c): the input is parsed whole, then line by line as a stream
 * would cut it, and every message that parses must format back to a line that parses to the
 * same message. Any crash, out-of-bounds read (ASan) or broken round trip is a finding.
 *
 * The parser's source is included (fuzz targets link only the library), so fuzz/CMakeLists.txt
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

static void check_one(const char *line, size_t len)
{
    chess_msg m;
    int rc = chess_parse(line, len, &m);
    if (rc > 0 || rc < CHESS_E_TEXT)
        abort(); /* 0 or one of the documented errors, nothing else */
    if (rc < 0)
        return;
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
            start = i + 1;
        }
    }
    if (start < size)
        check_one(copy + start, size - start);
    free(copy);
    return 0;
}
