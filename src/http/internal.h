/* internal.h — what the router (router.c) and the connection code (server.c) of libsimul-http
 * share: the app's route table and the request's arena. Private to src/http/. */
#ifndef SIMUL_HTTP_INTERNAL_H
#define SIMUL_HTTP_INTERNAL_H

#include <simul.h>
#include <simul/http.h>

enum { SEG_LIT, SEG_STR, SEG_INT, SEG_PATH };

typedef struct http_seg {
    int kind;
    char *text; /* the literal, or the parameter's name */
} http_seg;

typedef struct http_route {
    struct http_route *next;
    char *methods; /* "GET,POST" (normalised: no spaces) */
    http_seg *segs;
    size_t nsegs;
    simul_http_handler handler;
    void *arg;
} http_route;

struct simul_http_group {
    struct simul_http_group *next;
    simul_http_app *app;
    char *prefix; /* without trailing '/' ("" for the root) */
};

/* What the threads of a simul_http_serve_threads share (read-only): kept by the app, which
 * outlives its servers, and freed with it. */
typedef struct http_shared {
    struct http_shared *next;
    simul_http_app *app;
    simul_http_server_opts opts; /* normalised */
} http_shared;

struct simul_http_app {
    http_route *routes, **tail;
    simul_http_group *groups;
    http_shared *shared;
};

/* A per-request bump allocator: a first block kept across requests, more blocks freed at the
 * request's end. */
typedef struct arena_block {
    struct arena_block *next;
    size_t size, used;
    _Alignas(16) char data[];
} arena_block;

typedef struct http_arena {
    arena_block *first; /* kept */
    arena_block *extra; /* freed by arena_reset */
} http_arena;

void *arena_alloc(http_arena *a, size_t size);
char *arena_strndup(http_arena *a, const char *s, size_t n);
void arena_reset(http_arena *a);
void arena_free(http_arena *a);

typedef struct http_kv {
    const char *name, *value;
} http_kv;

/* The result of routing a path. */
typedef struct http_match {
    const http_route *route; /* NULL: none for this method */
    bool path_matched;       /* some route has this path (405 when route is NULL) */
    char allow[160];         /* the methods of the routes with this path: the Allow field */
    http_kv *params;
    size_t nparams;
    bool bad_escape; /* a parameter with a bad %-escape: 400 */
} http_match;

/* Routes path (raw, without query) for method; params go into the arena. */
void http_route_find(const simul_http_app *app, const char *method, const char *path,
                     http_arena *a, http_match *m);

/* Percent-decodes s[0..n) into the arena ('+' as space when plus); NULL on a bad escape
 * (*bad set) or no memory. */
char *http_pct_decode(http_arena *a, const char *s, size_t n, bool plus, bool *bad);

/* Parses a query string into pairs in the arena; returns -EPROTO on a bad escape. */
int http_query_parse(http_arena *a, const char *q, http_kv **out, size_t *n);

/* For a protocol that takes the connection over after an upgrade (WebSocket, ws_conn.c): what
 * the connection calls back. drain: a graceful shutdown began (runs in the shutdown's task, must
 * not suspend). release: the handler returned with the protocol still on (end it). */
typedef struct http_upgrade_hooks {
    void (*drain)(void *arg);
    void (*release)(void *arg);
    void *arg;
} http_upgrade_hooks;

/* server.c. In a handler: stops the client watcher, writes head (the 101 answer), marks the
 * response sent (the connection closes once the handler returns) and hands over the stream and
 * the bytes read past the request (*rest, valid during the handler). Returns 0; -EALREADY (a
 * response was started); -ECONNRESET (the client already left); the write's error. */
int http_takeover(simul_http_request *req, simul_http_response *res, const void *head,
                  size_t len, const http_upgrade_hooks *hooks, simul_stream **s,
                  const char **rest, size_t *rest_len);
/* The protocol has ended: the hooks are not called any more. */
void http_takeover_done(simul_http_request *req);

#endif /* SIMUL_HTTP_INTERNAL_H */
