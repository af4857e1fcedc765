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

#endif /* SIMUL_HTTP_WS_INTERNAL_H */
