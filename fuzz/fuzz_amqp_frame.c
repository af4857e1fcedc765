/* fuzz_amqp_frame.c — libFuzzer target for libsimul-amqp's frame reader and, through it, the
 * method decoder it relies on (librabbitmq's generated codec) on hostile payloads. The input is
 * read as a stream of frames whole, byte by byte and split at a fuzzed point: the three must give
 * the same frames and the same verdict; every frame's payload lies inside the input and respects
 * frame_max; an error has a reason.
 *
 * Input layout: byte 0 picks frame_max (0: none, else 4096 << (b % 6)), byte 1 the split point,
 * the rest is the byte stream. Replayed by ctest fuzz.amqp_frame over fuzz/corpus/amqp_frame;
 *   build-fuzz/fuzz/fuzz_amqp_frame -max_len=65536 -max_total_time=60 fuzz/corpus/amqp_frame */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <simul/amqp.h>

typedef struct seen {
    uint8_t type;
    uint16_t channel;
    uint32_t size;
    size_t off;
} seen;

/* Parses data as if it arrived in pieces of `step` bytes (0: whole); returns the verdict (0 or
 * the error) and fills out[] with the frames found. */
static int run(const uint8_t *data, size_t len, uint32_t fmax, size_t step, size_t split, seen *out,
               size_t *nout)
{
    size_t have = 0, off = 0, n = 0;
    for (;;) {
        size_t next;
        if (step)
            next = have + step;
        else if (split && have < split)
            next = split;
        else
            next = len;
        have = next < len ? next : len;
        for (;;) {
            simul_amqp_frame f;
            ssize_t rc = simul_amqp_frame_parse(data + off, have - off, fmax, &f);
            if (rc < 0) {
                if (!simul_amqp_frame_strerror(rc, data + off, have - off))
                    abort();
                *nout = n;
                return (int)rc;
            }
            if (rc == 0)
                break;
            if ((size_t)rc != f.size + 8u || off + (size_t)rc > have)
                abort();
            if (f.payload != data + off + 7)
                abort();
            if (fmax && f.size + 8u > fmax)
                abort();
            if (f.type == SIMUL_AMQP_FRAME_METHOD) {
                uint32_t id = 0;
                int m = simul_amqp_method_check(&f, &id);
                if (m != 0 && m != -EPROTO && m != -EOPNOTSUPP)
                    abort();
            }
            out[n].type = f.type;
            out[n].channel = f.channel;
            out[n].size = f.size;
            out[n].off = off;
            n++;
            off += (size_t)rc;
        }
        if (have == len)
            break;
    }
    *nout = n;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint32_t fmax = data[0] == 0 ? 0 : 4096u << (data[0] % 6);
    size_t len = size - 2;
    const uint8_t *s = data + 2;
    size_t split = len ? data[1] % (len + 1) : 0;
    size_t cap = len / 8 + 1;
    seen *a = calloc(cap, sizeof *a), *b = calloc(cap, sizeof *b), *c = calloc(cap, sizeof *c);
    if (!a || !b || !c)
        abort();
    size_t na, nb, nc;
    int ra = run(s, len, fmax, 0, 0, a, &na);
    int rb = run(s, len, fmax, 1, 0, b, &nb);
    int rc = run(s, len, fmax, 0, split, c, &nc);
    if (ra != rb || ra != rc || na != nb || na != nc)
        abort();
    if (memcmp(a, b, na * sizeof *a) || memcmp(a, c, na * sizeof *a))
        abort();
    free(a);
    free(b);
    free(c);
    return 0;
}
