/* json_encode_bench.c — libsimul-http's JSON encoder (src/http/json_encode.c) beside the library
 * it stands in for, jansson's json_dumpb, on the same values in the same run: the hello object
 * of examples/http_hello, a 1 KiB mixed document and a string-heavy one (4 KiB, escapes and
 * non-ASCII). Prints encodes per second for each; each shape alternates the two, best of 5.
 *
 *   json_encode_bench <rounds>       (bench/run_json_encode.sh runs it, pinned to one core)
 *
 * Both do what simul_http_response_json does with them, into the same preallocated "arena":
 * ours encodes into 512 bytes and, when the answer is bigger, grows in a malloc'd buffer and
 * copies the result into the arena once; jansson's path (the one it replaced) dumps into 512
 * bytes and, when json_dumpb asks for more, dumps again into the exact size. The outputs are
 * compared byte for byte before timing. A third line per shape, ours into a roomy buffer (no
 * growth), prices the growth path: the two-pass alternative (size, then write) would pay a
 * whole extra walk instead. */
#define BENCH_NAME "json_encode_bench"
#include "bench_util.h"

#include <string.h>

#include <jansson.h>

#include "../src/http/internal.h" /* http_json_encode (in libsimul-http) */

enum { FIRST = 512, ARENA = 1 << 16 };

static char arena[ARENA];
static char first[FIRST];

typedef size_t (*encode_fn)(const json_t *v);

static size_t ours(const json_t *v)
{
    char *out;
    size_t n;
    if (http_json_encode(v, first, FIRST, &out, &n) != 0) {
        die("http_json_encode failed");
    }
    if (out != first) {
        memcpy(arena, out, n);
        free(out);
    }
    return n;
}

static size_t ours_roomy(const json_t *v)
{
    char *out;
    size_t n;
    if (http_json_encode(v, arena, ARENA, &out, &n) != 0 || out != arena) {
        die("http_json_encode failed");
    }
    return n;
}

static size_t jansson(const json_t *v)
{
    size_t n = json_dumpb(v, first, FIRST, JSON_COMPACT | JSON_ENCODE_ANY);
    if (n > FIRST && json_dumpb(v, arena, n, JSON_COMPACT | JSON_ENCODE_ANY) != n) {
        die("json_dumpb failed");
    }
    if (n == 0) {
        die("json_dumpb failed");
    }
    return n;
}

static double timed(encode_fn fn, const json_t *v, long iters)
{
    size_t total = 0;
    int64_t t0 = mono_ns();
    for (long i = 0; i < iters; i++) {
        total += fn(v);
    }
    double secs = (double)(mono_ns() - t0) / 1e9;
    if (total == 0) {
        die("nothing encoded");
    }
    return (double)iters / secs;
}

static json_t *mixed_doc(void)
{
    /* A typical API answer: a record with numbers of every kind, flags, a nested list of small
     * objects, a little text with an escape and non-ASCII. */
    json_error_t err;
    json_t *v = json_loads(
        "{\"id\":1234567,\"name\":\"Board 17 \\u2014 Sicilian, Najdorf\",\"active\":true,"
        "\"owner\":null,\"rating\":1873.5,\"ratio\":0.6180339887498949,\"created\":1700000000,"
        "\"tags\":[\"blitz\",\"rated\",\"simul\",\"open\"],\"moves\":[\"e4\",\"c5\",\"Nf3\","
        "\"d6\",\"d4\",\"cxd4\",\"Nxd4\",\"Nf6\",\"Nc3\",\"a6\"],\"players\":[{\"id\":1,\"name\":"
        "\"Ana\",\"elo\":2105,\"white\":true},{\"id\":2,\"name\":\"Bj\\u00f6rn\",\"elo\":1987,"
        "\"white\":false}],\"clock\":{\"white_ms\":183250,\"black_ms\":176900,\"increment_ms\":"
        "2000},\"comment\":\"A sharp line:\\n\\\"poisoned pawn\\\" declined.\",\"eval\":[0.21,"
        "0.35,-0.12,0.05,1.25,-2.5,0.0,3.75],\"history\":[{\"t\":1,\"fen\":\"rnbqkbnr/pppppppp/"
        "8/8/4P3/8/PPPP1PPP/RNBQKBNR b KQkq e3 0 1\"},{\"t\":2,\"fen\":\"rnbqkbnr/pp1ppppp/8/2p5/"
        "4P3/8/PPPP1PPP/RNBQKBNR w KQkq c6 0 2\"},{\"t\":3,\"fen\":\"rnbqkbnr/pp1ppppp/8/2p5/4P3/"
        "5N2/PPPP1PPP/RNBQKB1R b KQkq - 1 2\"}],\"spectators\":42,\"open\":false}",
        0, &err);
    if (!v) {
        die("mixed document: %s", err.text);
    }
    return v;
}

static json_t *strings_doc(void)
{
    /* 20 strings of about 200 bytes: mostly plain text, a quote, a newline, a tab and some
     * 2-, 3- and 4-byte UTF-8 in each. */
    json_t *a = json_array();
    char s[256];
    for (int i = 0; i < 20; i++) {
        int n = snprintf(s, sizeof s,
                         "Message %d: the quick brown fox jumps over the lazy dog; \"quoted\" "
                         "text,\ta tab, caf\xc3\xa9 \xe2\x82\xac 12, \xf0\x9f\x98\x80 and a path "
                         "/usr/share/doc.\nSecond line of the message, still plain ASCII.",
                         i);
        json_array_append_new(a, json_stringn(s, (size_t)n));
    }
    return a;
}

int main(int argc, char **argv)
{
    long rounds = parse_count(argc > 1 ? argv[1] : NULL, 20000);
    struct {
        const char *name;
        json_t *v;
        long iters;
    } shapes[] = {
        {"hello", json_pack("{s:s}", "message", "Hello, World!"), rounds * 100},
        {"mixed1k", mixed_doc(), rounds * 10},
        {"strings4k", strings_doc(), rounds * 4},
    };
    printf("jansson_version=%s\n", JANSSON_VERSION);
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        const json_t *v = shapes[i].v;
        /* Same bytes, or the figures mean nothing. */
        char *mine;
        size_t n;
        if (http_json_encode(v, NULL, 0, &mine, &n) != 0) {
            die("%s: http_json_encode failed", shapes[i].name);
        }
        char *ref = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!ref || strlen(ref) != n || memcmp(ref, mine, n) != 0) {
            die("%s: outputs differ", shapes[i].name);
        }
        free(ref);
        free(mine);
        printf("json_%s_bytes=%zu\n", shapes[i].name, n);

        double o[5], j[5], r[5];
        for (int k = 0; k < 5; k++) {
            o[k] = timed(ours, v, shapes[i].iters);
            j[k] = timed(jansson, v, shapes[i].iters);
            r[k] = timed(ours_roomy, v, shapes[i].iters);
        }
        char key[64];
        snprintf(key, sizeof key, "json_enc_%s_per_s", shapes[i].name);
        report_runs(key, o, 5, 0, false);
        snprintf(key, sizeof key, "json_dumpb_%s_per_s", shapes[i].name);
        report_runs(key, j, 5, 0, false);
        snprintf(key, sizeof key, "json_enc_roomy_%s_per_s", shapes[i].name);
        report_runs(key, r, 5, 0, false);
        json_decref(shapes[i].v);
    }
    return 0;
}
