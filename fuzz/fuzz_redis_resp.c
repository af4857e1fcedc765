/* fuzz_redis_resp.c — libFuzzer target for libsimul-redis' RESP parser and encoder. The input is fed
 * whole, byte by byte, and split at a fuzzed point: the three must give the same replies and the
 * same verdict. Invariants: every byte is consumed or a reply returned; an error is sticky and
 * has a reason; every string is NUL-terminated; every reply, written back as RESP3, parses to the
 * same tree; and argv cut from the input encodes and parses back to the same bulk strings.
 *
 * Input layout: byte 0 picks the limits (small ones reach every -EMSGSIZE path), byte 1 the split
 * point, the rest is the byte stream. Built by fuzz/CMakeLists.txt as a replay program (ctest
 * fuzz.redis_resp over fuzz/corpus/redis_resp) and, with clang and -DSIMUL_BUILD_FUZZ=ON, as libFuzzer's:
 *   build-fuzz/fuzz/fuzz_redis_resp -max_len=4096 -max_total_time=60 fuzz/corpus/redis_resp */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <simul/redis.h>

#include "../tests/unit/redis/resp_dump.h"

static void check_tree(const simul_redis_reply *r, unsigned depth)
{
    if (depth > SIMUL_REDIS_DEPTH_MAX + 1)
        abort();
    if (r->attrs) {
        if (r->attrs->type != SIMUL_REDIS_ATTRIBUTE)
            abort();
        check_tree(r->attrs, depth + 1);
    }
    switch (r->type) {
    case SIMUL_REDIS_STATUS:
    case SIMUL_REDIS_ERROR:
    case SIMUL_REDIS_STRING:
    case SIMUL_REDIS_DOUBLE:
    case SIMUL_REDIS_BIGNUM:
    case SIMUL_REDIS_VERBATIM:
        if (!r->str || r->str[r->len] != '\0')
            abort();
        if (r->type == SIMUL_REDIS_STATUS &&
            (memchr(r->str, '\r', r->len) || memchr(r->str, '\n', r->len)))
            abort();
        break;
    case SIMUL_REDIS_MAP:
    case SIMUL_REDIS_ATTRIBUTE:
        if (r->len % 2)
            abort();
        /* fall through */
    case SIMUL_REDIS_ARRAY:
    case SIMUL_REDIS_SET:
    case SIMUL_REDIS_PUSH:
        for (size_t i = 0; i < r->len; i++)
            check_tree(&r->elem[i], depth + 1);
        break;
    case SIMUL_REDIS_BOOL:
        if (r->integer != 0 && r->integer != 1)
            abort();
        break;
    case SIMUL_REDIS_INTEGER:
    case SIMUL_REDIS_NIL:
        break;
    default:
        abort();
    }
}

/* A reply written back parses to one reply that writes the same bytes. */
static void check_round_trip(const simul_redis_reply *r, const simul_redis_limits *lim)
{
    resp_dump d = {0};
    resp_dump_reply(&d, r);
    simul_redis_limits big = {.max_depth = lim->max_depth};
    simul_redis_parser *p = NULL;
    if (simul_redis_parser_new(&p, &big) != 0)
        abort();
    simul_redis_reply *back = NULL;
    ssize_t rc = simul_redis_parse(p, d.s, d.len, &back);
    if (rc != (ssize_t)d.len || !back)
        abort();
    resp_dump d2 = {0};
    resp_dump_reply(&d2, back);
    if (d2.len != d.len || memcmp(d.s, d2.s, d.len) != 0)
        abort();
    simul_redis_reply_free(back);
    simul_redis_parser_free(p);
    free(d.s);
    free(d2.s);
}

/* Feeds data cut at the points in cuts[] (ascending, the last one its size); returns the dump of
 * every reply then the verdict. */
static resp_dump run(const uint8_t *data, const size_t *cuts, size_t ncuts,
                     const simul_redis_limits *lim, bool checks)
{
    simul_redis_parser *p = NULL;
    if (simul_redis_parser_new(&p, lim) != 0)
        abort();
    resp_dump d = {0};
    dump_put(&d, "", 0);
    size_t pos = 0;
    bool partial = false;
    for (size_t c = 0; c < ncuts; c++) {
        while (pos < cuts[c]) {
            simul_redis_reply *r = NULL;
            ssize_t rc = simul_redis_parse(p, data + pos, cuts[c] - pos, &r);
            if (rc < 0) {
                if (r || !simul_redis_parser_error(p))
                    abort();
                if (rc != -EPROTO && rc != -EMSGSIZE)
                    abort();
                simul_redis_reply *again = NULL;
                if (simul_redis_parse(p, "+OK\r\n", 5, &again) != rc || again)
                    abort(); /* sticky */
                char e[32];
                snprintf(e, sizeof e, "#ERR=%d", (int)rc);
                dump_put(&d, e, strlen(e));
                simul_redis_parser_free(p);
                return d;
            }
            if ((size_t)rc > cuts[c] - pos)
                abort();
            pos += (size_t)rc;
            if (r) {
                if (rc == 0)
                    abort();
                if (checks) {
                    check_tree(r, 0);
                    check_round_trip(r, lim);
                }
                resp_dump_reply(&d, r);
                simul_redis_reply_free(r);
                partial = false;
            } else {
                if (pos != cuts[c])
                    abort(); /* no reply: every byte taken */
                partial = true;
            }
        }
    }
    if (partial)
        dump_put(&d, "#PARTIAL", 8);
    simul_redis_parser_free(p);
    return d;
}

static void same(resp_dump *a, resp_dump *b)
{
    if (a->len != b->len || memcmp(a->s, b->s, a->len) != 0)
        abort();
    free(b->s);
}

/* The encoder: the stream cut at every space into argv, encoded and parsed back. */
static void check_encoder(const uint8_t *data, size_t n)
{
    const char *argv[64];
    size_t lens[64];
    int argc = 0;
    size_t start = 0;
    for (size_t i = 0; i <= n && argc < 64; i++) {
        if (i == n || data[i] == ' ') {
            argv[argc] = (const char *)data + start;
            lens[argc++] = i - start;
            start = i + 1;
        }
    }
    simul_redis_buf b = {0};
    if (simul_redis_encode(&b, argc, argv, lens) != (ssize_t)b.len)
        abort();
    simul_redis_parser *p = NULL;
    if (simul_redis_parser_new(&p, NULL) != 0)
        abort();
    simul_redis_reply *r = NULL;
    if (simul_redis_parse(p, b.data, b.len, &r) != (ssize_t)b.len || !r)
        abort();
    if (r->type != SIMUL_REDIS_ARRAY || r->len != (size_t)argc)
        abort();
    for (int i = 0; i < argc; i++) {
        const simul_redis_reply *e = &r->elem[i];
        if (e->type != SIMUL_REDIS_STRING || e->len != lens[i] ||
            (lens[i] && memcmp(e->str, argv[i], lens[i]) != 0))
            abort();
    }
    simul_redis_reply_free(r);
    simul_redis_parser_free(p);
    simul_redis_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t mode = data[0], split = data[1];
    data += 2;
    size -= 2;
    simul_redis_limits lim = {0};
    if (mode & 1) { /* small limits, from the mode byte */
        lim.max_bulk = 1 + (mode >> 1 & 7) * 3;
        lim.max_elements = 1 + (mode >> 4 & 3) * 2;
        lim.max_depth = 1 + (mode >> 6);
        lim.max_reply = 8 + (size_t)(mode >> 3) * 4;
    }
    size_t whole_cut[1] = {size};
    resp_dump whole = run(data, whole_cut, 1, &lim, true);

    size_t k = size * split / 255;
    size_t two[2] = {k, size};
    resp_dump split_dump = run(data, two, 2, &lim, false);
    same(&whole, &split_dump);

    size_t *each = malloc((size ? size : 1) * sizeof *each);
    for (size_t i = 0; i < size; i++)
        each[i] = i + 1;
    resp_dump bytes = run(data, each, size, &lim, false);
    free(each);
    same(&whole, &bytes);
    free(whole.s);

    check_encoder(data, size);
    return 0;
}
