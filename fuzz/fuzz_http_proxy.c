/* fuzz_http_proxy.c — libsimul-http's PROXY protocol parser (v1 text, v2 binary) on fuzzer bytes:
 * a pure function, so the checks are its contract: a result is 0 (a prefix: more needed), > 0
 * (the header's length, never more than given, within SIMUL_HTTP_PROXY_V1_MAX / _V2_MAX) or
 * -EPROTO / -EMSGSIZE; the same bytes give the same answer with anything appended after a
 * whole header, and every shorter prefix of a whole header asks for more (so a server reading
 * in pieces never decides early). Built as a libFuzzer target with clang and as a replay
 * program for fuzz/corpus/http_proxy. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <simul/http.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_http_proxy: check failed at line %d: %s\n", __LINE__, #cond);   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    simul_http_proxy_info a, b;
    long r = simul_http_proxy_parse(data, size, &a);
    CHECK(r == 0 || r == -EPROTO || r == -EMSGSIZE || r > 0);
    if (r <= 0) {
        return 0;
    }
    CHECK((size_t)r <= size);
    CHECK(a.header_len == (uint32_t)r);
    CHECK(a.version == 1 || a.version == 2);
    CHECK((uint32_t)r <= (a.version == 1 ? SIMUL_HTTP_PROXY_V1_MAX : SIMUL_HTTP_PROXY_V2_MAX));
    if (!a.local) {
        CHECK(a.src.ss_family == a.dst.ss_family);
        CHECK(a.src_len > 0 && a.src_len <= sizeof a.src);
    }
    /* the header alone gives the same; each shorter prefix asks for more */
    uint8_t *copy = malloc((size_t)r);
    CHECK(copy);
    memcpy(copy, data, (size_t)r);
    CHECK(simul_http_proxy_parse(copy, (size_t)r, &b) == r);
    CHECK(memcmp(&a, &b, sizeof a) == 0);
    for (size_t k = 0; k < (size_t)r; k++) {
        CHECK(simul_http_proxy_parse(copy, k, &b) == 0);
    }
    free(copy);
    return 0;
}
