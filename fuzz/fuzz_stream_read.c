/* fuzz_stream_read.c — the stream reader (read, readexactly, readuntil, readline and their
 * limit) against what include/simul.h promises, on bytes that arrive in fuzzer-chosen chunks.
 *
 * Input: [limit][chunk][8 op bytes][payload...]. A writer task sends the payload through a
 * socketpair in chunks of the chosen size (yielding between them, so reads see partial data),
 * then shuts down its side; the reader runs the ops in a cycle. Every byte a read returns must be
 * the payload's next bytes; the only way to skip data is a readline past the limit, which drops
 * the line through its "\n" (or, if another read cuts the skip short, part of it). Every success
 * and every error is checked against what the header promises, and at EOF every byte must be
 * accounted for.
 *
 * Built as a libFuzzer target with clang (-DSIMUL_BUILD_FUZZ=ON, see fuzz/CMakeLists.txt), and
 * always as a replay program that runs the corpus in fuzz/corpus/stream_read (a ctest).
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "simul.h"

#define MAX_PAYLOAD (64 * 1024)

/* Not assert(): the check must hold in release builds too, and abort() is what the fuzzer and
 * the replay test catch. */
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_stream_read: check failed at line %d: %s\n", __LINE__, #cond);  \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

typedef struct run {
    const uint8_t *ops;
    const uint8_t *payload;
    size_t len;
    size_t limit, chunk;
    int fd; /* the writer's end */
    /* Where the stream may be in the payload: a set, because after dropped lines the data that
     * comes next may match at several places; each read narrows it. Without drops it holds one
     * position. */
    size_t *cand;
    size_t ncand;
    /* Lines dropped by readline past the limit since the last data: the next data may start
     * anywhere from the lowest candidate up to just past the skip_lines-th "\n" after the
     * highest; exactly there for a readline, unless another read op came in between (it
     * cancels the skip and may see the rest of the dropped line). */
    unsigned skip_lines;
    bool skip_exact;
} run;

static const char *const seps[4] = {"\n", "\r\n", "ab", "x"};

static int writer(void *arg)
{
    run *r = arg;
    size_t off = 0;
    while (off < r->len) {
        size_t n = r->len - off < r->chunk ? r->len - off : r->chunk;
        long sent = simul_sendall(r->fd, r->payload + off, n, NULL);
        CHECK(sent == (long)n);
        off += n;
        CHECK(simul_yield() == 0);
    }
    CHECK(shutdown(r->fd, SHUT_WR) == 0);
    return 0;
}

static const uint8_t *find(const uint8_t *hay, size_t n, const char *sep, size_t seplen)
{
    if (seplen > n)
        return NULL;
    for (size_t i = 0; i + seplen <= n; i++)
        if (memcmp(hay + i, sep, seplen) == 0)
            return hay + i;
    return NULL;
}

/* Just past the k-th "\n" at or after p (or the end). */
static size_t past_lines(const run *r, size_t p, unsigned k)
{
    for (unsigned i = 0; i < k; i++) {
        const uint8_t *nl = memchr(r->payload + p, '\n', r->len - p);
        if (!nl)
            return r->len;
        p = (size_t)(nl - r->payload) + 1;
    }
    return p;
}

/* The one position, when the set holds one and no drop is pending (else SIZE_MAX). */
static size_t known(const run *r)
{
    return r->ncand == 1 && !r->skip_lines ? r->cand[0] : SIZE_MAX;
}

/* The positions the data just read may start at (ascending, written to out). */
static size_t starts(const run *r, bool is_readline, size_t *out)
{
    size_t n = 0;
    if (!r->skip_lines) {
        memcpy(out, r->cand, r->ncand * sizeof *out);
        return r->ncand;
    }
    if (is_readline && r->skip_exact) { /* readline completes the skip before reading */
        for (size_t i = 0; i < r->ncand; i++) {
            size_t p = past_lines(r, r->cand[i], r->skip_lines);
            if (n == 0 || out[n - 1] != p)
                out[n++] = p;
        }
        return n;
    }
    size_t hi = past_lines(r, r->cand[r->ncand - 1], r->skip_lines);
    for (size_t p = r->cand[0]; p <= hi; p++)
        out[n++] = p;
    return n;
}

/* Data came back: keep the positions where the payload holds it, moved past it. */
static void account(run *r, const void *data, size_t n, bool is_readline)
{
    size_t *from = malloc((r->len + 1) * sizeof *from);
    CHECK(from != NULL);
    size_t nfrom = starts(r, is_readline, from), m = 0;
    for (size_t i = 0; i < nfrom; i++)
        if (from[i] + n <= r->len && memcmp(r->payload + from[i], data, n) == 0)
            r->cand[m++] = from[i] + n;
    free(from);
    CHECK(m > 0); /* the data is not the payload's next bytes */
    r->ncand = m;
    r->skip_lines = 0;
}

/* EOF was read: the whole payload must be accounted for. */
static void at_end(run *r)
{
    if (r->skip_lines) { /* dropped lines ran to the end */
        CHECK(!r->skip_exact || past_lines(r, r->cand[r->ncand - 1], r->skip_lines) == r->len);
        return;
    }
    CHECK(r->cand[r->ncand - 1] == r->len);
}

static void reader(run *r, simul_stream *s)
{
    uint8_t buf[256];
    size_t max_ops = 4 * r->len + 64;
    for (size_t i = 0; i < max_ops; i++) {
        uint8_t op = r->ops[i % 8];
        unsigned param = op >> 2;
        switch (op & 3) {
        case 0: { /* read */
            long n = simul_stream_read(s, buf, 1 + param);
            CHECK(n >= 0);
            if (n == 0)
                goto eof;
            account(r, buf, (size_t)n, false);
            break;
        }
        case 1: { /* readexactly */
            size_t want = 1 + param, got = 99999;
            long n = simul_stream_readexactly(s, buf, want, &got);
            if (n == -ENODATA) {
                CHECK(got < want);
                if (got)
                    account(r, buf, got, false);
                else if (r->skip_lines)
                    r->skip_exact = false;
                goto eof;
            }
            CHECK(n == (long)want);
            account(r, buf, want, false);
            break;
        }
        case 2: { /* readuntil */
            const char *sep = seps[param & 3];
            size_t seplen = strlen(sep);
            const char *data;
            long n = simul_stream_readuntil(s, sep, seplen, &data);
            if (n == -EMSGSIZE || n == -ENODATA) {
                if (r->skip_lines)
                    r->skip_exact = false; /* it cancelled the skip */
                size_t at = known(r);
                if (at == SIZE_MAX)
                    break; /* where the buffer starts is only known after the next data */
                const uint8_t *hit = find(r->payload + at, r->len - at, sep, seplen);
                if (n == -ENODATA)
                    CHECK(hit == NULL);
                else
                    CHECK(hit == NULL || (size_t)(hit - (r->payload + at)) > r->limit);
                break;
            }
            CHECK(n >= (long)seplen);
            CHECK(memcmp(data + n - (long)seplen, sep, seplen) == 0);
            /* the first separator: none ends earlier in the returned data */
            CHECK(find((const uint8_t *)data, (size_t)n - 1, sep, seplen) == NULL);
            CHECK((size_t)n - seplen <= r->limit);
            account(r, data, (size_t)n, false);
            break;
        }
        case 3: { /* readline */
            const char *line;
            long n = simul_stream_readline(s, &line);
            if (n == -EMSGSIZE) {
                if (!r->skip_lines)
                    r->skip_exact = true;
                r->skip_lines++;
                break;
            }
            CHECK(n >= 0);
            if (n == 0)
                goto eof;
            const char *nl = memchr(line, '\n', (size_t)n);
            CHECK(nl == NULL || nl == line + n - 1);
            CHECK((size_t)n - (nl ? 1 : 0) <= r->limit);
            account(r, line, (size_t)n, true);
            if (!nl) /* an unterminated line only at EOF */
                CHECK(r->cand[r->ncand - 1] == r->len);
            break;
        }
        }
    }
    /* The op cycle made no progress (e.g. only readuntil on data without its separator): drain. */
    for (;;) {
        long n = simul_stream_read(s, buf, sizeof buf);
        CHECK(n >= 0);
        if (n == 0)
            break;
        account(r, buf, (size_t)n, false);
    }
eof:
    CHECK(simul_stream_at_eof(s));
    at_end(r);
}

static int fuzz_main(void *arg)
{
    run *r = arg;
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
    simul_stream *s = NULL;
    CHECK(simul_stream_from_fd(sv[0], &s) == 0);
    CHECK(simul_stream_set_limit(s, r->limit) == 0);
    r->fd = sv[1];
    simul_task *w = NULL;
    CHECK(simul_task_spawn(&w, writer, r, NULL) == 0);
    simul_scope sc; /* a hang is a finding too */
    CHECK(simul_scope_timeout(&sc, 10.0) == 0);
    reader(r, s);
    CHECK(simul_scope_end(&sc) == 0);
    int rc = -1;
    CHECK(simul_task_join(w, &rc) == 0 && rc == 0);
    simul_stream_close(s);
    CHECK(simul_close(sv[1]) == 0);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 10 || size - 10 > MAX_PAYLOAD)
        return 0;
    run r = {
        .cand = calloc(size - 10 + 1, sizeof(size_t)), /* starts as {0} */
        .ncand = 1,
        .limit = 1 + data[0] % 64,
        .chunk = 1 + (size_t)data[1] * 8,
        .ops = data + 2,
        .payload = data + 10,
        .len = size - 10,
    };
    CHECK(r.cand != NULL);
    CHECK(simul_run(fuzz_main, &r) == 0);
    free(r.cand);
    return 0;
}
