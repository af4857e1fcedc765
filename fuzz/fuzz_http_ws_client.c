/* fuzz_http_ws_client.c — a server's answer of fuzzer bytes to simul_ws_client_open's opening
 * handshake, over an in-memory bottom: the answer is read with the HTTP parser in response mode
 * and checked, and what follows a 101 goes to the frame reader. Whatever comes, the call returns
 * 0 only for a 101 (then messages are read until the end, and the session closes) or one of its
 * documented errors, never crashes, hangs or leaks. Input: [chunk][bytes...]: the bytes arrive in
 * pieces of `chunk` & 0x7f (0: all at once), then EOF; chunk's top bit offers permessage-deflate
 * (an answer with Sec-WebSocket-Extensions then reaches the compressed-frame reader, whose
 * inflated messages must stay within max_message and be valid UTF-8 when text); "@A@" in them is replaced by the right
 * Sec-WebSocket-Accept for the key the client sent, so the fuzzer reaches past the key check.
 * Built as a libFuzzer target with clang and as a replay program for fuzz/corpus/http_ws_client. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/uio.h>

#include "simul.h"
#include <simul/http.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_http_ws_client: check failed at line %d: %s\n", __LINE__,      \
                    #cond);                                                                        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

typedef struct feed {
    const uint8_t *data;
    size_t len, chunk;
    bool deflate;
    char *answer; /* data with the placeholders replaced, made at the first read */
    size_t alen, pos;
    char request[2048]; /* the start of what the client wrote */
    size_t written;
} feed;

static void make_answer(feed *f)
{
    char key[32] = "", accept[29];
    const char *k = strstr(f->request, "\r\nSec-WebSocket-Key: ");
    CHECK(k != NULL); /* the request went out whole before the answer is read */
    sscanf(k + 21, "%31[^\r]", key);
    CHECK(strlen(key) == 24);
    simul_ws_accept_key(key, 24, accept);
    f->answer = malloc(f->len / 3 * 28 + f->len + 1);
    CHECK(f->answer);
    size_t o = 0;
    for (size_t i = 0; i < f->len;) {
        if (i + 3 <= f->len && memcmp(f->data + i, "@A@", 3) == 0) {
            memcpy(f->answer + o, accept, 28);
            o += 28;
            i += 3;
        } else {
            f->answer[o++] = (char)f->data[i++];
        }
    }
    f->alen = o;
}

static long feed_read(void *ctx, void *buf, size_t len)
{
    feed *f = ctx;
    if (!f->answer) {
        make_answer(f);
    }
    size_t n = f->alen - f->pos;
    if (n == 0) {
        return 0;
    }
    if (f->chunk && n > f->chunk) {
        n = f->chunk;
    }
    if (n > len) {
        n = len;
    }
    memcpy(buf, f->answer + f->pos, n);
    f->pos += n;
    return (long)n;
}

static long feed_writev(void *ctx, const struct iovec *iov, int cnt)
{
    feed *f = ctx;
    size_t n = 0;
    for (int i = 0; i < cnt; i++) {
        for (size_t k = 0; k < iov[i].iov_len; k++) {
            if (f->written + 1 < sizeof f->request) {
                f->request[f->written++] = ((const char *)iov[i].iov_base)[k];
            }
        }
        n += iov[i].iov_len;
    }
    return (long)n;
}

static int feed_wait(void *ctx, int dir)
{
    (void)ctx, (void)dir;
    return 0;
}

static void feed_close(void *ctx, bool abort)
{
    (void)ctx, (void)abort;
}

static const simul_stream_ops feed_ops = {
    .read = feed_read, .writev = feed_writev, .wait = feed_wait, .close = feed_close};

static int one(void *arg)
{
    feed *f = arg;
    simul_stream *s;
    CHECK(simul_stream_from_bottom(&feed_ops, f, &s) == 0);
    static const char *offer[] = {"chat", "v2"};
    simul_ws_opts o = {.subprotocols = offer, .nsubprotocols = 2, .max_message = 4096,
                       .queue_max = 2, .deflate = f->deflate};
    simul_ws *ws = NULL;
    int status = -1;
    int rc = simul_ws_client_open(s, "example.org", "/chat", &o, &status, &ws);
    CHECK(rc == 0 || rc == -EPROTO || rc == -EMSGSIZE || rc == -ECONNRESET);
    CHECK(status == 0 || (status >= 100 && status <= 999));
    if (rc == 0) {
        CHECK(status == 101 && ws != NULL);
        const char *sp = simul_ws_subprotocol(ws);
        CHECK(!sp || strcmp(sp, "chat") == 0 || strcmp(sp, "v2") == 0);
        const char *ext = simul_ws_extensions(ws);
        CHECK(!ext || (f->deflate && strncasecmp(ext, "permessage-deflate", 18) == 0));
        for (;;) {
            const char *d;
            size_t n;
            int t = simul_ws_recv(ws, &d, &n);
            if (t <= 0) {
                CHECK(t == 0 || t == -EPROTO || t == -EMSGSIZE || t == -ECONNRESET);
                break;
            }
            CHECK(t == SIMUL_WS_TEXT || t == SIMUL_WS_BINARY);
            CHECK(n <= 4096 && d[n] == '\0');
            uint32_t st = 0;
            CHECK(t != SIMUL_WS_TEXT || (simul_ws_utf8_check(&st, (const uint8_t *)d, n) &&
                                         st == 0));
        }
        simul_ws_close(ws, 0, NULL);
    } else {
        CHECK(ws == NULL);
    }
    simul_stream_abort(s);
    CHECK(simul_stream_close(s) == 0);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    feed f = {.data = data + 1, .len = size - 1, .chunk = data[0] & 0x7f,
              .deflate = data[0] & 0x80};
    CHECK(simul_run(one, &f) == 0);
    free(f.answer);
    return 0;
}
