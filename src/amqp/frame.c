/* frame.c — the AMQP 0-9-1 frame reader: a pure function over bytes with the frame_max limit.
 * The idea: the 7-byte header says everything the limits need, so an oversized frame is refused
 * before a byte of its body is awaited; the payload is handed out in place, never copied. */
#include <errno.h>
#include <string.h>

#include <amqp.h>
#include <amqp_framing.h>

#include <simul/amqp.h>

#include "internal.h"

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

ssize_t simul_amqp_frame_parse(const void *data, size_t len, uint32_t frame_max,
                               simul_amqp_frame *out)
{
    const uint8_t *p = data;
    if (len < 7)
        return 0;
    uint8_t type = p[0];
    if (type != SIMUL_AMQP_FRAME_METHOD && type != SIMUL_AMQP_FRAME_HEADER &&
        type != SIMUL_AMQP_FRAME_BODY && type != SIMUL_AMQP_FRAME_HEARTBEAT)
        return -EPROTO;
    uint16_t channel = (uint16_t)(p[1] << 8 | p[2]);
    uint32_t size = be32(p + 3);
    /* Compared in 64 bits: size + 8 overflows 32 for a hostile size. */
    if (frame_max && (uint64_t)size + SIMUL_AMQP_FRAME_OVERHEAD > frame_max)
        return -EMSGSIZE;
    if (type == SIMUL_AMQP_FRAME_HEARTBEAT && (channel != 0 || size != 0))
        return -EPROTO;
    if (type == SIMUL_AMQP_FRAME_METHOD && size < 4)
        return -EPROTO;
    if (type == SIMUL_AMQP_FRAME_HEADER && size < 14)
        return -EPROTO;
    if ((uint64_t)len < (uint64_t)size + SIMUL_AMQP_FRAME_OVERHEAD)
        return 0;
    if (p[7 + size] != 0xCE)
        return -EPROTO;
    out->type = type;
    out->channel = channel;
    out->size = size;
    out->payload = p + 7;
    return (ssize_t)(size + SIMUL_AMQP_FRAME_OVERHEAD);
}

const char *simul_amqp_frame_strerror(ssize_t rc, const void *data, size_t len)
{
    const uint8_t *p = data;
    if (rc >= 0)
        return "no error";
    if (rc == -EMSGSIZE)
        return "frame larger than the negotiated frame_max";
    if (len < 7)
        return "malformed frame";
    uint8_t t = p[0];
    if (t != 1 && t != 2 && t != 3 && t != 8)
        return "unknown frame type";
    if (t == 8 && (p[1] || p[2] || p[3] || p[4] || p[5] || p[6]))
        return "heartbeat frame with a channel or a payload";
    uint32_t size = be32(p + 3);
    if (t == 1 && size < 4)
        return "method frame shorter than its ids";
    if (t == 2 && size < 14)
        return "content header frame shorter than 14 bytes";
    return "frame end byte is not 0xCE";
}

int simul_amqp_method_check(const simul_amqp_frame *f, uint32_t *method_id)
{
    if (!f || f->type != SIMUL_AMQP_FRAME_METHOD || f->size < 4)
        return -EINVAL;
    uint32_t id = be32(f->payload);
    if (!amqp_method_name(id))
        return -EOPNOTSUPP;
    if (amqp__method_guard(id, f->payload + 4, f->size - 4) < 0)
        return -EPROTO;
    amqp_pool_t pool;
    init_amqp_pool(&pool, 4096);
    void *decoded = NULL;
    amqp_bytes_t args = {f->size - 4, (void *)(f->payload + 4)};
    int rc = amqp_decode_method(id, &pool, args, &decoded);
    empty_amqp_pool(&pool);
    if (rc != AMQP_STATUS_OK)
        return rc == AMQP_STATUS_UNKNOWN_METHOD ? -EOPNOTSUPP : -EPROTO;
    if (method_id)
        *method_id = id;
    return 0;
}
