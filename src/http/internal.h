/* internal.h — what the router (router.c) and the connection code (server.c) of libsimul-http
 * share: the app's route table and the request's arena. Private to src/http/. */
#ifndef SIMUL_HTTP_INTERNAL_H
#define SIMUL_HTTP_INTERNAL_H

#include <simul.h>
#include <simul/http.h>

#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>

enum { SEG_LIT, SEG_STR, SEG_INT, SEG_PATH };

typedef struct http_seg {
    int kind;
    char *text; /* the literal, or the parameter's name */
} http_seg;

/* Whether s holds a line break (CR or LF), which would end a field or an event's line early
 * and let the rest forge another (Set-Cookie's attributes, an SSE event's name, id or comment).
 * NULL: none. */
static inline bool http_has_crlf(const char *s)
{
    return s && strpbrk(s, "\r\n") != NULL;
}

/* A hook (before / after / teardown), in the order added. */
enum { HOOK_BEFORE, HOOK_AFTER, HOOK_TEARDOWN };
typedef struct http_hook {
    struct http_hook *next;
    int kind;
    union {
        simul_http_before_fn before;
        simul_http_after_fn after;
        simul_http_teardown_fn teardown;
    } fn;
    void *arg;
} http_hook;

/* An error handler for one status (0: every status >= 400 without its own). */
typedef struct http_errh {
    struct http_errh *next;
    int status;
    simul_http_handler fn;
    void *arg;
} http_errh;

typedef struct http_route {
    struct http_route *next;
    const struct simul_http_group *group; /* NULL for the app's own routes */
    char *methods; /* "GET,POST" (normalised: no spaces) */
    http_seg *segs;
    size_t nsegs;
    simul_http_handler handler;
    void *arg;
} http_route;

struct simul_http_group {
    struct simul_http_group *next;
    simul_http_app *app;
    struct simul_http_group *parent;
    char *prefix; /* without trailing '/' ("" for the root) */
    http_hook *hooks, **hooks_tail;
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
    http_hook *hooks, **hooks_tail;
    http_errh *errh;
    struct http_owned *owned;
};

/* Something the app frees with itself (a static mount's directory). */
typedef struct http_owned {
    struct http_owned *next;
    void (*free)(void *p);
    void *p;
} http_owned;
int http_app_own(simul_http_app *app, void (*fn)(void *), void *p);

/* A clean-up that runs when the request ends (server.c): temp files of a form. */
int http_request_on_end(simul_http_request *req, void (*fn)(void *), void *p);


/* Adds a hook to a list (router.c). */
int http_hook_add(http_hook ***tail, int kind, void *fn, void *arg);
/* The error handler for status, or NULL. */
const http_errh *http_errh_find(const simul_http_app *app, int status);

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
/* Where forms.c keeps a request's parsed form (server.c). */
struct http_form **http_request_form_slot(simul_http_request *req);
/* The request's arena (server.c). */
http_arena *http_request_arena(simul_http_request *req);

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

/* Percent-decodes s[0..n) into the arena ('+' as space when plus); NULL on a bad escape or %00
 * (*bad set) or no memory. */
char *http_pct_decode(http_arena *a, const char *s, size_t n, bool plus, bool *bad);

/* Parses a query string into pairs in the arena; returns -EPROTO on a bad escape. */
int http_query_parse(http_arena *a, const char *q, http_kv **out, size_t *n);

/* ---- proxies (proxy.c) ---- */
typedef struct http_cidr {
    unsigned char addr[16]; /* IPv4 as IPv4-mapped IPv6 */
    int bits;
} http_cidr;
struct sockaddr_storage;
/* "10.0.0.0/8, ::1" -> an array (malloc'd; NULL for an empty list); -EINVAL; -ENOMEM. */
int http_trust_parse(const char *list, http_cidr **out, size_t *n);
bool http_trusted(const http_cidr *v, size_t n, const struct sockaddr_storage *sa);
bool http_trusted_text(const http_cidr *v, size_t n, const char *addr);
void http_addr_text(const struct sockaddr_storage *sa, socklen_t len, char *out, size_t cap);
bool http_forwarded_addr(const char *s, size_t n, char *out, size_t cap);
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

/* Several ranges of one file in one answer (multipart/byteranges, static.c): the head with
 * Content-Length total, then each part's header text and its bytes by sendfile, then the
 * epilogue. Suspends; errors as simul_http_response_sendfile. */
typedef struct http_file_part {
    const char *head;
    uint64_t offset, len;
} http_file_part;
int http_response_sendfile_parts(simul_http_response *res, int fd, const http_file_part *parts,
                                 size_t n, const char *epilogue, uint64_t total);

/* json_encode.c: v written as json_dumpb(v, JSON_COMPACT | JSON_ENCODE_ANY) writes it, byte for
 * byte, into buf[0..cap) when it fits, else into a malloc'd buffer (*out != buf: the caller frees
 * it); *len its length. Returns 0; -EINVAL (not encodable: a string or key that is not UTF-8,
 * containers nested deeper than HTTP_JSON_MAX_DEPTH, so every cycle); -ENOMEM. */
#define HTTP_JSON_MAX_DEPTH 2048 /* jansson's parser's limit: what it reads, this writes */
int http_json_encode(const struct json_t *v, char *buf, size_t cap, char **out, size_t *len);
/* server.c, for the tests: the accepts that failed for want of fds or memory since the server
 * started, and the most failures in a row of one listener (0 once an accept succeeded again). */
void http_server_accept_state(const simul_http_server *srv, int64_t *errors, unsigned *in_a_row);

/* Writes v in decimal as "%lld" does (no terminating NUL); returns the length, 20 at most. */
size_t http_fmt_int(char *out, long long v);

#endif /* SIMUL_HTTP_INTERNAL_H */
