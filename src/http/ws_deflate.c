/* ws_deflate.c — permessage-deflate (RFC 7692) for the WebSocket sessions: the negotiation of
 * its parameters (offer, answer, checks) and the compression of messages with zlib. The idea:
 * a message's output buffer only ever grows to the message limit plus one byte, inflated in
 * bounded steps, so a zip bomb is refused when it crosses the limit, never allocated; and the
 * peer's deflate data is one stream of flushes, a final block (BFINAL=1) included, whose window
 * carries on across messages unless no_context_takeover was agreed. */
#include "ws_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- negotiation ---------------------------------------------------------------------------- */

/* One parameter of an extension element: name and value (value NULL when it has none). */
typedef struct param {
    char name[32];
    char value[8];
    bool has_value;
} param;

static bool tchar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static const char *ows(const char *p)
{
    while (*p == ' ' || *p == '\t') {
        p++;
    }
    return p;
}

/* Parses one element "name; p1; p2=v; p3=\"v\"" at *pp up to ',' or the end. Returns the count
 * of params (into ps, at most cap), -1 if the element is malformed or has too many; *pp moves
 * past the element and its comma. The name goes into name[32]. */
static int parse_element(const char **pp, char name[32], param *ps, int cap)
{
    const char *p = ows(*pp);
    size_t n = 0;
    int np = 0;
    bool bad = false;
    while (tchar(*p)) {
        if (n < 31) {
            name[n++] = *p;
        } else {
            bad = true;
        }
        p++;
    }
    name[n] = '\0';
    if (n == 0) {
        bad = true;
    }
    p = ows(p);
    while (*p == ';') {
        p = ows(p + 1);
        param pr = {{0}, {0}, false};
        size_t k = 0;
        while (tchar(*p)) {
            if (k < 31) {
                pr.name[k++] = *p;
            } else {
                bad = true;
            }
            p++;
        }
        if (k == 0) {
            bad = true;
        }
        p = ows(p);
        if (*p == '=') {
            p = ows(p + 1);
            pr.has_value = true;
            bool quoted = *p == '"';
            p += quoted;
            size_t v = 0;
            while (tchar(*p)) {
                if (v < 7) {
                    pr.value[v++] = *p;
                } else {
                    bad = true;
                }
                p++;
            }
            if (quoted) {
                if (*p != '"') {
                    bad = true;
                } else {
                    p++;
                }
            }
            if (v == 0) {
                bad = true;
            }
            p = ows(p);
        }
        if (np < cap) {
            ps[np++] = pr;
        } else {
            bad = true;
        }
    }
    /* Skip to the next element whatever happened, so one bad element spoils only itself. */
    int depth_quote = 0;
    while (*p && (*p != ',' || depth_quote)) {
        if (*p == '"') {
            depth_quote ^= 1;
        }
        bad = true;
        p++;
    }
    if (*p == ',') {
        p++;
    }
    *pp = p;
    return bad ? -1 : np;
}

/* A window-bits value: 8..15 in decimal without a leading zero. */
static int bits_value(const param *pr)
{
    const char *v = pr->value;
    if (!pr->has_value || strlen(v) > 2 || v[0] < '1' || v[0] > '9' ||
        (v[1] && (v[1] < '0' || v[1] > '9'))) {
        return -1;
    }
    int b = atoi(v);
    return b >= 8 && b <= 15 ? b : -1;
}

/* Reads the params of one permessage-deflate element into *pm. offer: a client's offer (where
 * client_max_window_bits may come without a value), else a server's answer. Returns 0 or -1
 * (an unknown, repeated or ill-valued parameter: RFC 7692 7.1 says to decline or fail). */
static int read_params(const param *ps, int np, bool offer, http_ws_pmd *pm)
{
    memset(pm, 0, sizeof *pm);
    bool seen[4] = {false, false, false, false};
    for (int i = 0; i < np; i++) {
        const param *pr = &ps[i];
        int which;
        if (strcasecmp(pr->name, "server_no_context_takeover") == 0) {
            which = 0;
        } else if (strcasecmp(pr->name, "client_no_context_takeover") == 0) {
            which = 1;
        } else if (strcasecmp(pr->name, "server_max_window_bits") == 0) {
            which = 2;
        } else if (strcasecmp(pr->name, "client_max_window_bits") == 0) {
            which = 3;
        } else {
            return -1;
        }
        if (seen[which]) {
            return -1;
        }
        seen[which] = true;
        switch (which) {
        case 0:
        case 1:
            if (pr->has_value) {
                return -1;
            }
            if (which == 0) {
                pm->server_no_context_takeover = true;
            } else {
                pm->client_no_context_takeover = true;
            }
            break;
        case 2:
            if ((pm->server_max_window_bits = bits_value(pr)) < 0) {
                return -1;
            }
            break;
        default:
            if (!pr->has_value && offer) {
                pm->client_max_window_bits_offered = true;
            } else if ((pm->client_max_window_bits = bits_value(pr)) < 0) {
                return -1;
            } else {
                pm->client_max_window_bits_offered = true;
            }
            break;
        }
    }
    return 0;
}

static int our_bits(const simul_ws_opts *o)
{
    return o->deflate_window_bits >= 9 && o->deflate_window_bits <= 15 ? o->deflate_window_bits
                                                                      : 15;
}

int http_ws_pmd_accept(const char *const *values, size_t nvalues, const simul_ws_opts *o,
                       http_ws_pmd *out, char *answer, size_t alen)
{
    for (size_t i = 0; i < nvalues; i++) {
        const char *p = values[i];
        while (*ows(p)) {
            char name[32];
            param ps[8];
            int np = parse_element(&p, name, ps, 8);
            http_ws_pmd pm;
            if (np < 0 || strcasecmp(name, "permessage-deflate") != 0 ||
                read_params(ps, np, true, &pm) < 0) {
                continue; /* not ours, or an offer to decline */
            }
            /* What we compress with: our window, within what the client allows. zlib cannot
             * make a raw deflate stream with a 256-byte window, so an offer asking for 8 is
             * declined (RFC 7692 7.1.2.1: a server that cannot honour it declines). */
            int sbits = our_bits(o);
            if (pm.server_max_window_bits) {
                if (pm.server_max_window_bits < 9) {
                    continue;
                }
                if (pm.server_max_window_bits < sbits) {
                    sbits = pm.server_max_window_bits;
                }
            }
            http_ws_pmd r = {0};
            r.server_no_context_takeover =
                pm.server_no_context_takeover || o->deflate_no_context_takeover;
            r.client_no_context_takeover = o->deflate_peer_no_context_takeover;
            r.server_max_window_bits = pm.server_max_window_bits ? sbits : 0;
            r.our_bits = sbits;
            int n = snprintf(answer, alen, "permessage-deflate%s%s",
                             r.server_no_context_takeover ? "; server_no_context_takeover" : "",
                             r.client_no_context_takeover ? "; client_no_context_takeover" : "");
            if (r.server_max_window_bits && n > 0 && (size_t)n < alen) {
                n += snprintf(answer + n, alen - (size_t)n, "; server_max_window_bits=%d",
                              r.server_max_window_bits);
            }
            if (n < 0 || (size_t)n >= alen) {
                return -ENOSPC;
            }
            /* Which side resets: the server (we) after each message we send; the client's
             * messages are inflated afresh if we asked it not to keep context. */
            r.reset_out = r.server_no_context_takeover;
            r.reset_in = r.client_no_context_takeover;
            *out = r;
            return 1;
        }
    }
    return 0;
}

int http_ws_pmd_offer(const simul_ws_opts *o, char *offer, size_t olen)
{
    /* client_max_window_bits without a value: the server may bound our window (websockets and
     * browsers offer it so). */
    int n = snprintf(offer, olen, "permessage-deflate; client_max_window_bits%s%s",
                     o->deflate_peer_no_context_takeover ? "; server_no_context_takeover" : "",
                     o->deflate_no_context_takeover ? "; client_no_context_takeover" : "");
    return n < 0 || (size_t)n >= olen ? -ENOSPC : 0;
}

int http_ws_pmd_check_answer(const char *value, const simul_ws_opts *o, http_ws_pmd *out,
                             char *why, size_t whylen)
{
    const char *p = value;
    char name[32];
    param ps[8];
    int np = parse_element(&p, name, ps, 8);
    http_ws_pmd pm;
    if (np < 0 || strcasecmp(name, "permessage-deflate") != 0) {
        snprintf(why, whylen, "WebSocket handshake: the server chose extension \"%.64s\", which "
                              "was not offered", value);
        return -EPROTO;
    }
    if (*ows(p)) {
        snprintf(why, whylen, "WebSocket handshake: the server chose more than one extension");
        return -EPROTO;
    }
    if (read_params(ps, np, false, &pm) < 0) {
        snprintf(why, whylen, "WebSocket handshake: bad permessage-deflate parameters \"%.64s\"",
                 value);
        return -EPROTO;
    }
    if (o->deflate_peer_no_context_takeover && !pm.server_no_context_takeover) {
        snprintf(why, whylen, "WebSocket handshake: the server did not agree to "
                              "server_no_context_takeover");
        return -EPROTO;
    }
    int cbits = our_bits(o);
    if (pm.client_max_window_bits) {
        if (pm.client_max_window_bits < 9) {
            snprintf(why, whylen, "WebSocket handshake: the server asks client_max_window_bits=8, "
                                  "which zlib cannot honour");
            return -EPROTO;
        }
        if (pm.client_max_window_bits < cbits) {
            cbits = pm.client_max_window_bits;
        }
    }
    pm.our_bits = cbits;
    pm.reset_out = pm.client_no_context_takeover || o->deflate_no_context_takeover;
    pm.reset_in = pm.server_no_context_takeover;
    *out = pm;
    return 0;
}

/* ---- compression ---------------------------------------------------------------------------- */

static const uint8_t tail[4] = {0x00, 0x00, 0xff, 0xff};

int http_ws_z_init(http_ws_z *z, const http_ws_pmd *pm, int level)
{
    memset(z, 0, sizeof *z);
    z->reset_in = pm->reset_in;
    z->reset_out = pm->reset_out;
    /* Inflating with the largest window decodes whatever window the peer used. */
    if (inflateInit2(&z->in, -15) != Z_OK) {
        return -ENOMEM;
    }
    z->in_ready = true;
    if (deflateInit2(&z->out, level >= 1 && level <= 9 ? level : 6, Z_DEFLATED, -pm->our_bits, 8,
                     Z_DEFAULT_STRATEGY) != Z_OK) {
        http_ws_z_free(z);
        return -ENOMEM;
    }
    z->out_ready = true;
    return 0;
}

void http_ws_z_free(http_ws_z *z)
{
    if (z->in_ready) {
        inflateEnd(&z->in);
    }
    if (z->out_ready) {
        deflateEnd(&z->out);
    }
    z->in_ready = z->out_ready = false;
}

/* The peer's stream met a final block (BFINAL=1) and more data follows. RFC 7692 takes a final
 * block as a flush like any other (7.2.1: an endpoint may use either kind; 7.2.3.4 shows a
 * message ended by one), and 7.2.2 has what follows (the rest of the message, or the next
 * message unless no_context_takeover was agreed) decoded with the window used so far. zlib ends
 * its stream there; inflateResetKeep starts the next one keeping the window (it is what
 * inflateReset calls after emptying the window; declared in zlib.h among the undocumented
 * functions, exported since 1.2.5.2). Without a copy of the window this costs what a block
 * header does, so a peer's final blocks need no bound of their own. */
static int resume(http_ws_z *z)
{
    z->in_ended = false;
    return inflateResetKeep(&z->in) == Z_OK ? 0 : -EPROTO;
}

/* Inflates `len` bytes at `in` into buf (growing up to max + 1 data bytes and a NUL). */
static int inflate_some(http_ws_z *z, const uint8_t *in, size_t len, uint64_t max,
                        http_ws_buf *b)
{
    z_stream *s = &z->in;
    s->next_in = (Bytef *)in;
    s->avail_in = (uInt)len;
    /* max data bytes, one more to see the limit crossed, and the NUL */
    uint64_t limit = max > UINT64_MAX - 2 ? UINT64_MAX : max + 2;
    for (;;) {
        if (z->in_ended) {
            if (s->avail_in == 0) {
                return 0; /* resumed lazily, when data comes: maybe never (no context takeover) */
            }
            int rc = resume(z);
            if (rc < 0) {
                return rc;
            }
        }
        if (b->cap - b->len < 2) {
            if (b->cap >= limit) {
                return -EMSGSIZE;
            }
            uint64_t nc = b->cap ? (uint64_t)b->cap * 2 : 1024;
            if (nc > limit) {
                nc = limit;
            }
            if (nc > SIZE_MAX / 2) {
                return -ENOMEM;
            }
            uint8_t *np = realloc(b->p, (size_t)nc);
            if (!np) {
                return -ENOMEM;
            }
            b->p = np;
            b->cap = (size_t)nc;
        }
        size_t room = b->cap - b->len - 1;
        if (room > UINT32_MAX) {
            room = UINT32_MAX;
        }
        s->next_out = b->p + b->len;
        s->avail_out = (uInt)room;
        int rc = inflate(s, Z_SYNC_FLUSH);
        b->len += room - s->avail_out;
        if (b->len > max) {
            return -EMSGSIZE;
        }
        if (rc == Z_STREAM_END) {
            z->in_ended = true; /* the next data resumes with this window (see resume) */
            continue;
        }
        if (rc == Z_MEM_ERROR) {
            return -ENOMEM;
        }
        if (rc != Z_OK && rc != Z_BUF_ERROR) {
            return -EPROTO; /* Z_DATA_ERROR, Z_NEED_DICT: not a raw deflate stream */
        }
        if (s->avail_in == 0 && s->avail_out > 0) {
            return 0;
        }
        if (rc == Z_BUF_ERROR && s->avail_out > 0) {
            return 0; /* no progress possible: it waits for more input */
        }
    }
}

int http_ws_inflate(http_ws_z *z, const uint8_t *in, size_t len, bool fin, uint64_t max,
                    http_ws_buf *b)
{
    int rc = 0;
    if (len) {
        z->msg_data = true;
        rc = inflate_some(z, in, len, max, b);
    }
    if (rc == 0 && fin) {
        if (!z->msg_data) {
            /* An empty payload: RFC 7692 7.2.3.6 sends the empty message as 0x00, but this can
             * mean nothing else, and the tail alone would open a stored block that swallows the
             * next message. */
        } else if (!z->in_ended) {
            /* RFC 7692 7.2.2: the sender removed the flush's empty stored block's 00 00 ff ff;
             * put it back. The message must then end on a block boundary (zlib's data_type
             * 128): anything else is a message cut short, whose rest would be read as the
             * start of the next. */
            rc = inflate_some(z, tail, 4, max, b);
            if (rc == 0 && !z->in_ended && !(z->in.data_type & 128)) {
                rc = -EPROTO;
            }
        }
        /* else the payload ended right after a final block (its empty stored block left out,
         * or packed into the final block's last byte): nothing is missing, and the tail would
         * open a stored block. */
        if (rc == 0) {
            if (z->reset_in) {
                inflateReset(&z->in);
                z->in_ended = false;
            }
            z->msg_data = false;
        }
    }
    if (rc < 0) {
        inflateReset(&z->in); /* the connection is failed anyway: keep the stream sane */
        z->in_ended = false;
        z->msg_data = false;
    }
    return rc;
}

int http_ws_deflate(http_ws_z *z, const uint8_t *in, size_t len, bool fin, http_ws_buf *b)
{
    z_stream *s = &z->out;
    b->len = 0;
    s->next_in = (Bytef *)in;
    s->avail_in = 0;
    size_t left = len;
    for (;;) {
        /* Feed at most 1 GiB at a time (avail_in is 32 bits). */
        if (s->avail_in == 0 && left) {
            size_t k = left > (1u << 30) ? (1u << 30) : left;
            s->avail_in = (uInt)k;
            left -= k;
        }
        if (b->cap - b->len < 64) {
            size_t nc = b->cap ? b->cap * 2 : 256 + len / 2;
            uint8_t *np = realloc(b->p, nc);
            if (!np) {
                return -ENOMEM;
            }
            b->p = np;
            b->cap = nc;
        }
        size_t room = b->cap - b->len;
        if (room > UINT32_MAX) {
            room = UINT32_MAX;
        }
        s->next_out = b->p + b->len;
        s->avail_out = (uInt)room;
        int rc = deflate(s, left ? Z_NO_FLUSH : Z_SYNC_FLUSH);
        b->len += room - s->avail_out;
        if (rc != Z_OK && rc != Z_BUF_ERROR) {
            return -EIO;
        }
        if (!left && s->avail_in == 0 && s->avail_out > 0) {
            break; /* the sync flush is out whole */
        }
    }
    if (fin) {
        /* RFC 7692 7.2.1: a message's payload ends without the sync flush's 00 00 ff ff. */
        if (b->len >= 4 && memcmp(b->p + b->len - 4, tail, 4) == 0) {
            b->len -= 4;
        } else if (b->len == 0) {
            /* Nothing new since the last flush (an empty message, or an empty last part): zlib
             * wrote no block, but the peer will append 00 00 ff ff, which must land as the
             * LEN/NLEN of an empty stored block: its header byte goes first (RFC 7692
             * 7.2.3.6). */
            b->p[b->len++] = 0x00;
        }
        if (z->reset_out) {
            deflateReset(s);
        }
    }
    return 0;
}
