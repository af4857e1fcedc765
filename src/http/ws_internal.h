/* ws_internal.h — what the WebSocket files (ws_frame.c, ws_conn.c, ws_client.c) share and what
 * they need from the HTTP connection (server.c's takeover hook). Private to src/http/. */
#ifndef SIMUL_HTTP_WS_INTERNAL_H
#define SIMUL_HTTP_WS_INTERNAL_H

#include <simul/http.h>

/* Base64 of a 16-byte handshake key (24 characters and a NUL). */
void http_ws_base64_16(const uint8_t in[16], char out[25]);

/* The client's opening handshake (ws_conn.c), for simul_ws_client_open and simul_ws_connect. */
typedef struct http_ws_handshake {
    simul_stream *s;
    bool own_stream;   /* the session closes s with itself (after a failed handshake: the caller) */
    const char *host;  /* the Host field */
    const char *path;  /* the request target */
    const char *extra; /* more fields, each "Name: value\r\n" (checked by the caller), or NULL */
    const simul_ws_opts *opts;
    const simul_http_limits *limits; /* the response head's (NULL: defaults) */
    int *status;       /* the status answered (0: none), or NULL */
    char *why;         /* the reason of a failure, or NULL */
    size_t whylen;
    /* Each field of the final answer (101 or a refusal), e.g. to keep its cookies. */
    void (*on_field)(void *arg, const char *name, size_t nlen, const char *value, size_t vlen);
    void *arg;
} http_ws_handshake;

/* Suspends. Sends the handshake request on hs->s and checks the answer. Returns 0 and *out, or
 * a negative errno with the reason in hs->why (not for -ETIMEDOUT and -ECANCELED: the caller
 * knows which deadline it was). On a failure the stream stays the caller's. */
int http_ws_client_handshake(const http_ws_handshake *hs, simul_ws **out);

/* ---- permessage-deflate (ws_deflate.c) ---------------------------------------------------- */
#include <zlib.h>

/* Negotiated parameters (RFC 7692 7.1), and what they mean for this side. */
typedef struct http_ws_pmd {
    bool server_no_context_takeover, client_no_context_takeover;
    int server_max_window_bits, client_max_window_bits; /* 0: not said */
    bool client_max_window_bits_offered; /* an offer's client_max_window_bits (valued or not) */
    int our_bits;          /* the window our compressor uses (9..15) */
    bool reset_out;        /* our compressor starts afresh at each message */
    bool reset_in;         /* the peer's messages are each inflated afresh */
} http_ws_pmd;

/* Server: picks the first permessage-deflate offer it can honour among the Sec-WebSocket-
 * Extensions values (offers with unknown, repeated or bad parameters, or asking for an 8-bit
 * window, are declined). Returns 1 with *out and the answer's value in answer, 0 when none is
 * taken, -ENOSPC. */
int http_ws_pmd_accept(const char *const *values, size_t nvalues, const simul_ws_opts *o,
                       http_ws_pmd *out, char *answer, size_t alen);
/* Client: the offer's value. */
int http_ws_pmd_offer(const simul_ws_opts *o, char *offer, size_t olen);
/* Client: checks the server's Sec-WebSocket-Extensions (one value). 0 and *out, or -EPROTO with
 * the reason in why (RFC 7692 7.1: the client fails the connection). */
int http_ws_pmd_check_answer(const char *value, const simul_ws_opts *o, http_ws_pmd *out,
                             char *why, size_t whylen);

typedef struct http_ws_z {
    z_stream in, out;
    bool in_ready, out_ready, reset_in, reset_out;
    bool in_ended; /* the peer's stream met a final block (BFINAL=1) and was not resumed */
    bool msg_data; /* the message being inflated has had payload bytes */
} http_ws_z;

typedef struct http_ws_buf {
    uint8_t *p;
    size_t len, cap;
} http_ws_buf;

int http_ws_z_init(http_ws_z *z, const http_ws_pmd *pm, int level);
void http_ws_z_free(http_ws_z *z);
/* Inflates a piece of a compressed message onto b (b->cap always leaves a byte for a NUL);
 * fin: the message's last piece. A final deflate block (BFINAL=1) ends nothing but a flush: the
 * data after it, in this message or the next, goes on with the same window (RFC 7692 7.2.2).
 * Returns 0; -EMSGSIZE once the message would pass max bytes (the buffer never grows past
 * max + 2); -EPROTO (not deflate data, or a message that does not end on a block boundary);
 * -ENOMEM. */
int http_ws_inflate(http_ws_z *z, const uint8_t *in, size_t len, bool fin, uint64_t max,
                    http_ws_buf *b);
/* Compresses a message (or a piece of one; fin: its last) into b (b->len reset first).
 * Returns 0, -ENOMEM, -EIO. */
int http_ws_deflate(http_ws_z *z, const uint8_t *in, size_t len, bool fin, http_ws_buf *b);

#endif /* SIMUL_HTTP_WS_INTERNAL_H */
