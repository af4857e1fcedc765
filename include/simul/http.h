/* simul/http.h — libsimul-http (pkg-config simul-http): an HTTP/1.1 framework on simul streams.
 * Three parts: the message parser, a pure function over bytes (no sockets, no loop), the server
 * that drives it (an app of routes; a handler per request, running in its connection's task),
 * and the client (a session of pooled connections; a request is one suspending call). */
#ifndef SIMUL_HTTP_H
#define SIMUL_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

/* ---------------------------------------------------------------------------------------------
 * The parser
 *
 * Strict HTTP/1.1 (RFC 9112), no lenient mode: whatever two implementations could read two ways
 * (the stuff of request smuggling) is rejected with its own error code, a short reason and the
 * status to answer with (400, 413, 414, 431, 501, 505); the server then answers and closes.
 *
 * Zero-copy and allocation-free: the parser lives in the caller's memory (simul_http_parser), the
 * header table is an array the caller gives it, and every field is a span (offset, length) into
 * the caller's buffer. Incremental: the result does not depend on how the bytes were split.
 *
 * The contract of simul_http_parser_feed(p, buf, len, &consumed): it reads buf[0..len) and
 * reports one event; the caller drops buf[0..consumed) and calls again with the bytes not
 * consumed at the front of the buffer, followed by whatever arrived since (the buffer may move
 * between calls: the parser keeps offsets, never pointers). A head (request line and headers),
 * a chunk-size line and a trailer section are consumed only once complete, so they are always
 * whole and contiguous in one buffer when reported; body bytes are handed out in place as they
 * come. Pipelining: after SIMUL_HTTP_END the next message begins at buf + consumed.
 *
 *   for (;;) {
 *       size_t used;
 *       int ev = simul_http_parser_feed(&p, buf + off, len - off, &used);
 *       if (ev < 0) -> answer simul_http_error_status(p.error), close
 *       off += used;
 *       if (ev == SIMUL_HTTP_NEED_MORE) -> keep buf[off..len), read more, loop
 *       HEAD: p.head is the request; BODY: p.body / p.body_len; END: the message is done.
 *   }
 * ------------------------------------------------------------------------------------------- */

/* What is parsed: requests (a server's side) or responses (a client's side: the status line
 * instead of the request line, and the response framing rules of RFC 9112 6.3 — a response to
 * HEAD, a 1xx, 204 or 304 has no body whatever its fields say, a response without
 * Content-Length or Transfer-Encoding runs to the connection's close). */
typedef enum simul_http_mode {
    SIMUL_HTTP_REQUEST = 1,
    SIMUL_HTTP_RESPONSE = 2,
} simul_http_mode;

/* The events simul_http_parser_feed returns (>= 0; errors are negative). */
enum {
    SIMUL_HTTP_NEED_MORE = 0, /* nothing more can be done with these bytes: read more */
    SIMUL_HTTP_HEAD = 1,      /* the head is complete: p->head */
    SIMUL_HTTP_BODY = 2,      /* a piece of body, in place: p->body, p->body_len (never 0) */
    SIMUL_HTTP_END = 3,       /* the message is complete (trailers, if any, in p->head) */
};

/* Every rejection, each with its status (simul_http_error_status) and reason. */
typedef enum simul_http_error {
    SIMUL_HTTP_OK = 0,
    SIMUL_HTTP_E_REQUEST_LINE,      /* 400 stray or missing space in the request line */
    SIMUL_HTTP_E_METHOD,            /* 400 method is not a token */
    SIMUL_HTTP_E_TARGET,            /* 400 control or non-ASCII byte in the request target */
    SIMUL_HTTP_E_VERSION,           /* 400 malformed HTTP version */
    SIMUL_HTTP_E_VERSION_UNSUPPORTED, /* 505 well-formed version other than 1.0 and 1.1 */
    SIMUL_HTTP_E_URI_TOO_LONG,      /* 414 request line over max_request_line */
    SIMUL_HTTP_E_BARE_CR,           /* 400 CR not followed by LF */
    SIMUL_HTTP_E_BARE_LF,           /* 400 LF not preceded by CR */
    SIMUL_HTTP_E_OBS_FOLD,          /* 400 line folding (a header line starting with SP/HTAB) */
    SIMUL_HTTP_E_SPACE_BEFORE_COLON, /* 400 whitespace between header name and colon */
    SIMUL_HTTP_E_HEADER_NAME,       /* 400 header name empty, not a token, or no colon */
    SIMUL_HTTP_E_HEADER_VALUE,      /* 400 control character in a header value */
    SIMUL_HTTP_E_HEADERS_TOO_LARGE, /* 431 header section over max_header_bytes */
    SIMUL_HTTP_E_TOO_MANY_HEADERS,  /* 431 more than max_headers fields */
    SIMUL_HTTP_E_CL_INVALID,        /* 400 Content-Length is not 1*DIGIT */
    SIMUL_HTTP_E_CL_LIST,           /* 400 Content-Length is a list ("1, 1") */
    SIMUL_HTTP_E_CL_DUPLICATE,      /* 400 Content-Length given twice */
    SIMUL_HTTP_E_TE_AND_CL,         /* 400 Transfer-Encoding and Content-Length together */
    SIMUL_HTTP_E_TE_NOT_CHUNKED,    /* 400 the last transfer coding is not chunked */
    SIMUL_HTTP_E_TE_INVALID,        /* 400 malformed Transfer-Encoding, or chunked twice */
    SIMUL_HTTP_E_TE_UNSUPPORTED,    /* 501 a transfer coding other than chunked */
    SIMUL_HTTP_E_TE_HTTP10,         /* 400 Transfer-Encoding in an HTTP/1.0 request */
    SIMUL_HTTP_E_HOST_MISSING,      /* 400 HTTP/1.1 request without Host */
    SIMUL_HTTP_E_HOST_DUPLICATE,    /* 400 Host given twice */
    SIMUL_HTTP_E_BODY_TOO_LARGE,    /* 413 body (Content-Length or chunks) over max_body */
    SIMUL_HTTP_E_CHUNK_SIZE,        /* 400 chunk size empty, not hex, or followed by junk */
    SIMUL_HTTP_E_CHUNK_SIZE_OVERFLOW, /* 400 chunk size does not fit 64 bits */
    SIMUL_HTTP_E_CHUNK_EXT,         /* 400 malformed chunk extension */
    SIMUL_HTTP_E_CHUNK_LINE_TOO_LONG, /* 400 chunk-size line over max_chunk_line */
    SIMUL_HTTP_E_CHUNK_DATA_CRLF,   /* 400 chunk data not followed by CRLF */
    SIMUL_HTTP_E_AFTER_CLOSE,       /* 400 bytes after a message that closes the connection */
    /* Responses only (a client's errors: the status, 400, is never answered): */
    SIMUL_HTTP_E_STATUS_LINE,       /* 400 malformed status line */
    SIMUL_HTTP_E_STATUS,            /* 400 status code not three digits, or below 100 */
    SIMUL_HTTP_E_STATUS_LINE_TOO_LONG, /* 400 status line over max_request_line (-EMSGSIZE) */
    SIMUL_HTTP_E_TRUNCATED,         /* 400 the connection ended inside a message
                                       (simul_http_parser_eof) */
    SIMUL_HTTP_E_COUNT_
} simul_http_error;

/* Limits; a field left 0 takes its default. Each is at most 1 GiB (max_body: any value). */
typedef struct simul_http_limits {
    uint32_t max_request_line; /* bytes, its CRLF included (default 8192) -> 414; in response
                                  mode the status line's limit */
    uint32_t max_header_bytes; /* header section bytes (fields and the empty line; for trailers
                                  too) (default 16384) -> 431 */
    uint32_t max_headers;      /* fields (head and trailers together; default 100) -> 431 */
    uint32_t max_chunk_line;   /* a chunk-size line with extensions and CRLF (default 1024) */
    uint64_t max_body;         /* body bytes (default 1 MiB; UINT64_MAX: none) -> 413 */
} simul_http_limits;

#define SIMUL_HTTP_DEFAULT_MAX_REQUEST_LINE 8192u
#define SIMUL_HTTP_DEFAULT_MAX_HEADER_BYTES 16384u
#define SIMUL_HTTP_DEFAULT_MAX_HEADERS 100u
#define SIMUL_HTTP_DEFAULT_MAX_CHUNK_LINE 1024u
#define SIMUL_HTTP_DEFAULT_MAX_BODY (1024u * 1024u)

/* Bytes base[off .. off + len). */
typedef struct simul_http_span {
    uint32_t off, len;
} simul_http_span;

/* A field: name as sent (compare case-insensitively), value without surrounding whitespace. */
typedef struct simul_http_header {
    simul_http_span name, value;
} simul_http_header;

typedef enum simul_http_framing {
    SIMUL_HTTP_BODY_NONE = 0, /* no body */
    SIMUL_HTTP_BODY_LENGTH,   /* Content-Length bytes (content_length) */
    SIMUL_HTTP_BODY_CHUNKED,  /* Transfer-Encoding: chunked */
    SIMUL_HTTP_BODY_CLOSE,    /* responses: everything until the connection closes (the caller
                                 reports the close with simul_http_parser_eof) */
} simul_http_framing;

/* A parsed head. The spans are offsets from `base`, the buffer given to the call that returned
 * SIMUL_HTTP_HEAD (the caller keeps those bytes as long as it reads the head). */
typedef struct simul_http_head {
    const char *base;
    uint32_t head_len;        /* bytes of the head, its final empty line included */
    simul_http_span method;   /* a token, case-sensitive ("GET") */
    simul_http_span target;   /* the request target as sent ("/a?b=c", "*", "host:443", URL) */
    uint8_t version_minor;    /* HTTP/1.<minor>: 0 or 1 */
    simul_http_header *headers; /* the caller's array */
    uint32_t nheaders;
    simul_http_framing framing;
    uint64_t content_length;  /* with SIMUL_HTTP_BODY_LENGTH */
    bool keep_alive;          /* the connection may carry another request after this one
                                 (HTTP/1.1 unless "Connection: close"; HTTP/1.0 only with
                                 "Connection: keep-alive") */
    bool upgrade;             /* "Connection: upgrade" with an Upgrade field, or CONNECT: after
                                 this message the bytes may belong to another protocol; the parser
                                 consumes none of them (a server that refuses the upgrade just
                                 goes on feeding) */
    bool expect_continue;     /* "Expect: 100-continue" (HTTP/1.1 only) */
    /* At SIMUL_HTTP_END of a chunked message: its trailer fields, parsed with the header rules,
     * in the caller's array after the head's fields; spans from trailer_base (the buffer given
     * to the call that returned END). */
    const char *trailer_base;
    simul_http_header *trailers;
    uint32_t ntrailers;
    /* Response mode: the status code (100..999) and the reason phrase as sent (may be empty).
     * method and target stay empty. content_length is the field's value even where the
     * response has no body (a response to HEAD says the resource's size). upgrade: a 101, or
     * a 2xx to CONNECT (the bytes after the head are the tunnel's: the parser consumes none and
     * takes no more). */
    uint16_t status;
    simul_http_span reason;
} simul_http_head;

/* The parser: caller-allocated, any storage. Read the results; the rest is private. */
typedef struct simul_http_parser {
    simul_http_head head;  /* after SIMUL_HTTP_HEAD, valid until the call after SIMUL_HTTP_END */
    const char *body;      /* after SIMUL_HTTP_BODY: body bytes, inside the buffer given */
    size_t body_len;
    simul_http_error error; /* after a negative return */
    struct {
        simul_http_limits limits;
        simul_http_header *headers;
        uint32_t cap;
        uint8_t mode, state;
        uint32_t scan;     /* where the line being read starts (head, trailers) */
        uint32_t searched; /* bytes of the current line already searched for its LF */
        uint32_t section;  /* where the head's fields begin */
        uint32_t flags;
        uint64_t remaining; /* body bytes left: Content-Length, or the current chunk */
        uint64_t total;     /* body bytes so far (chunked) */
        uint8_t request;    /* response mode: what the response answers (simul_http_parser_response_to) */
    } priv_;
} simul_http_parser;

/* Prepares p for a connection's first message. limits: NULL or a struct whose 0 fields take the
 * defaults. headers/cap: the array the fields of each head (and its trailers) go to; the
 * effective header limit is min(max_headers, cap). Does not suspend, allocates nothing.
 * Returns 0, or -EINVAL (unknown mode, no array, a limit over 1 GiB). */
int simul_http_parser_init(simul_http_parser *p, simul_http_mode mode,
                           const simul_http_limits *limits, simul_http_header *headers,
                           size_t cap);

/* Parses buf[0..len) (see the contract above) and returns the next event (>= 0) with *consumed
 * the bytes the caller drops, or -EPROTO (a broken message) / -EMSGSIZE (over a limit), with the
 * reason in p->error; an error sticks (the connection is done: answer and close). */
int simul_http_parser_feed(simul_http_parser *p, const char *buf, size_t len, size_t *consumed);

/* Response mode: says which request method the next response answers (call it before feeding
 * each response's first byte; it holds until that response's final, non-1xx head ends): "HEAD"
 * (the response has no body), "CONNECT" (a 2xx is a tunnel), anything else the usual rules.
 * Does not suspend. Returns 0; -EINVAL in request mode or inside a message. */
int simul_http_parser_response_to(simul_http_parser *p, const char *method);

/* The peer closed the connection (read returned 0): what that means for the message. Returns
 * SIMUL_HTTP_END if it ends a close-delimited response body (SIMUL_HTTP_BODY_CLOSE), 0
 * (SIMUL_HTTP_NEED_MORE) if no message was begun (a clean close between messages), or -EPROTO
 * with SIMUL_HTTP_E_TRUNCATED when a message was cut short (a lying Content-Length, a vanished
 * peer). The caller hands over every byte it received first. */
int simul_http_parser_eof(simul_http_parser *p);

/* The status to answer an error with (400, 413, 414, 431, 501, 505; 0 for SIMUL_HTTP_OK). */
int simul_http_error_status(simul_http_error e);
/* A short reason ("whitespace before header colon"); static storage, never NULL. */
const char *simul_http_error_reason(simul_http_error e);
/* The code's name without prefix ("SPACE_BEFORE_COLON"); static storage, never NULL. */
const char *simul_http_error_name(simul_http_error e);

/* The value of the first field named `name` (case-insensitive) in head's fields, or NULL;
 * *len gets its length. */
const char *simul_http_head_get(const simul_http_head *h, const char *name, size_t *len);

/* A span as a pointer into its buffer. */
static inline const char *simul_http_ptr(const char *base, simul_http_span s)
{
    return base + s.off;
}

/* ---------------------------------------------------------------------------------------------
 * The server: an app of routes, served on a loop
 *
 * A handler is a plain function that runs in its connection's task: it may suspend (read the
 * body, stream, sleep, wait on anything) and honours deadlines and cancellation like any task.
 * A client that disconnects while its handler runs cancels that task: the handler's next
 * suspending call (a response write, a sleep, a wait) returns -ECANCELED (or -EPIPE), and it
 * cleans up and returns (the watch begins once the request's body is read; an EOF from the client
 * counts as leaving, as in Go's net/http, so a client that half-closes after its request gets no
 * answer from a handler that suspends). Everything a request allocates (simul_http_alloc, the decoded query,
 * the whole body) lives in a per-request arena, freed when the request ends.
 *
 *   static int hello(simul_http_request *req, simul_http_response *res, void *arg)
 *   {
 *       return simul_http_response_text(res, 200, "Hello, World!");
 *   }
 *   simul_http_app_new(&app);
 *   simul_http_route(app, "GET", "/", hello, NULL);
 *   simul_http_serve(app, NULL, "8080", NULL, &srv);   (in a task; serves until shut down)
 * ------------------------------------------------------------------------------------------- */
typedef struct simul_http_app simul_http_app;
typedef struct simul_http_group simul_http_group;
typedef struct simul_http_request simul_http_request;
typedef struct simul_http_response simul_http_response;
typedef struct simul_http_server simul_http_server;
struct json_t;             /* jansson's */
struct simul_stream;       /* simul/stream.h's */
struct simul_tls_config;   /* simul/tls.h's */

/* A handler: answer through res (a status and body, or a stream), return 0. A negative return
 * before anything was sent answers 500; after the head was sent it ends the connection (the
 * client sees a truncated body). Its task is the connection's: it may suspend. */
typedef int (*simul_http_handler)(simul_http_request *req, simul_http_response *res, void *arg);

/* An app: routes and their handlers; shared by every connection that serves it (read-only once
 * served: add routes before simul_http_serve). Returns 0 and *out, or -ENOMEM. */
int simul_http_app_new(simul_http_app **out);
/* Frees the app and its groups (after every server on it was freed). NULL is fine. */
void simul_http_app_free(simul_http_app *app);

/* Adds a route. methods: one method or several separated by commas ("GET", "GET,POST"); GET
 * also answers HEAD (the body is not sent), and OPTIONS is answered for every path with the
 * methods its routes allow (Allow). pattern: a path of literal segments and parameters:
 * "<name>" (one segment, any text but "/"), "<int:name>" (optional "-" and digits, fitting
 * int64), "<path:name>" (the rest of the path, slashes included: last). Parameters are
 * percent-decoded. Routes are tried in the order added; a path that matches a route but not its
 * method gets 405 with Allow, a path that matches none 404. Returns 0; -EINVAL (a bad pattern,
 * an empty method list, NULL handler); -ENOMEM. */
int simul_http_route(simul_http_app *app, const char *methods, const char *pattern,
                     simul_http_handler handler, void *arg);

/* A group of routes under a prefix (Flask's blueprint): simul_http_group_route(g, "GET", "/x")
 * is the route prefix + "/x". Groups nest (parent may be NULL for the app's root). The app owns
 * the group. Returns 0 and *out; -EINVAL (prefix not starting with "/"); -ENOMEM. */
int simul_http_group_new(simul_http_app *app, simul_http_group *parent, const char *prefix,
                         simul_http_group **out);
int simul_http_group_route(simul_http_group *g, const char *methods, const char *pattern,
                           simul_http_handler handler, void *arg);

/* Hooks (Flask's before_request / after_request / teardown_request): plain functions called
 * around the handler in the connection's task, never wrappers around the body, so streaming is
 * untouched. Each kind runs in the order added, the app's first, then those of the route's
 * groups from the outermost in.
 * - before(req, res, arg) runs before routing's answer (the app's for every request, 404 and 405
 *   included; a group's for its routes): return 0 to go on, 1 when it answered itself (the
 *   handler is skipped, e.g. a 401), < 0 to fail the request (500, through its error handler).
 * - after(req, res, arg) runs once, just before the response's head is sent: at the handler's
 *   return for a whole body, at the first write of a streamed one (so it may still set the
 *   status and headers, never touches the body). It runs for error answers too.
 * - teardown(req, status, error, arg) runs when the request is over, whatever happened: status
 *   sent (0 if none), error the handler's negative return or the connection's (-ECANCELED when
 *   the client left), else 0. For logs and metrics; it must not suspend. */
typedef int (*simul_http_before_fn)(simul_http_request *req, simul_http_response *res, void *arg);
typedef void (*simul_http_after_fn)(simul_http_request *req, simul_http_response *res, void *arg);
typedef void (*simul_http_teardown_fn)(simul_http_request *req, int status, int error, void *arg);
/* Each returns 0; -EINVAL (NULL); -ENOMEM. Add them before serving. */
int simul_http_before_request(simul_http_app *app, simul_http_before_fn fn, void *arg);
int simul_http_after_request(simul_http_app *app, simul_http_after_fn fn, void *arg);
int simul_http_teardown_request(simul_http_app *app, simul_http_teardown_fn fn, void *arg);
int simul_http_group_before_request(simul_http_group *g, simul_http_before_fn fn, void *arg);
int simul_http_group_after_request(simul_http_group *g, simul_http_after_fn fn, void *arg);

/* An error handler (Flask's errorhandler): fn answers in place of the server's short text for
 * `status` (400..599), or for every status >= 400 without its own when status is 0. It runs for
 * the answers the server makes for a request it read (404, 405, 400 for a bad escape, 413 / 408
 * / 400 for a bad body, 500 for a failed handler or hook) and for simul_http_response_error; res
 * comes with the status set (and Allow for 405). If it fails, the server's text is sent. Errors
 * found before a request exists (a malformed head: 400, 414, 431, 408) are answered by the server
 * alone. A later call for the same status replaces the handler. Returns 0; -EINVAL; -ENOMEM. */
int simul_http_error_handler(simul_http_app *app, int status, simul_http_handler fn, void *arg);

/* ---- the request (valid during the handler; strings NUL-terminated, in the request) -------- */
const char *simul_http_request_method(const simul_http_request *req); /* "GET" */
const char *simul_http_request_target(const simul_http_request *req); /* as sent: "/a%20b?x=1" */
const char *simul_http_request_path(const simul_http_request *req);   /* without query, raw */
const char *simul_http_request_query_string(const simul_http_request *req); /* after '?' or "" */
int simul_http_request_version_minor(const simul_http_request *req);  /* 0 or 1 */
/* A route parameter by name (decoded), or NULL. */
const char *simul_http_request_param(const simul_http_request *req, const char *name);
/* An <int:...> parameter; -ENOENT if there is no such parameter, -EINVAL if not an integer. */
int simul_http_request_param_int(const simul_http_request *req, const char *name, int64_t *out);
/* The first value of the query parameter `name` (percent-decoded, '+' as space), or NULL. The
 * query is decoded at the first call; a bad escape (a '%' not followed by two hex digits)
 * answered the request with 400 before the handler ran. */
const char *simul_http_request_query(simul_http_request *req, const char *name);
/* Every value of `name`, in order: up to max into vals; returns how many there are. */
size_t simul_http_request_query_all(simul_http_request *req, const char *name, const char **vals,
                                    size_t max);
/* The first header field named `name` (case-insensitive), or NULL. */
const char *simul_http_request_header(const simul_http_request *req, const char *name);
/* The header fields as sent, by index: 0 .. simul_http_request_header_count() - 1. */
size_t simul_http_request_header_count(const simul_http_request *req);
int simul_http_request_header_at(const simul_http_request *req, size_t i, const char **name,
                                 const char **value);
/* A cookie from the Cookie fields, or NULL. */
const char *simul_http_request_cookie(simul_http_request *req, const char *name);
/* Suspends. The whole body (up to the server's limits.max_body: a longer one answered 413 before
 * the handler ran, or, chunked, gets -EMSGSIZE here and the request ends with 413): *data points
 * at it (NUL-terminated, in the request's arena). Sends "100 Continue" first if the client asked.
 * Returns its length; -EBUSY if the body was already read as a stream; -ECANCELED, -ETIMEDOUT
 * (the body idle timeout), -EPROTO (a broken body; the connection closes), -ECONNRESET. */
long simul_http_request_body(simul_http_request *req, const char **data);
/* Suspends. Reads the next piece of the body as a stream (at most n bytes); 0 at its end. The
 * same errors as simul_http_request_body. */
long simul_http_request_read(simul_http_request *req, void *buf, size_t n);
/* Suspends. The body parsed as JSON (jansson): a new reference in *out (json_decref it).
 * -EBADMSG if it is not JSON (answer 400), else as simul_http_request_body. */
int simul_http_request_json(simul_http_request *req, struct json_t **out);
/* Forms. application/x-www-form-urlencoded: the body read whole (the server's body limit) and
 * decoded. multipart/form-data (RFC 7578): read as a stream in a 64 KiB window; a plain field's
 * value is kept (within max_field_bytes, all of them within max_fields_total), a file part (one
 * with a filename) goes to the sink as it arrives and is never held whole in memory: by default
 * an anonymous temp file (O_TMPFILE in $TMPDIR or /tmp; the fd, rewound, is the request's and
 * closed when it ends). */
typedef struct simul_http_form_file {
    const char *name, *filename, *content_type; /* content_type "text/plain" if not given */
    int fd;        /* the default sink's temp file, at offset 0; -1 with a handler's sink */
    uint64_t size; /* bytes */
} simul_http_form_file;
/* Where file parts go. open(part, &ctx) when a file part begins (part->name, filename and
 * content_type are set); write(ctx, data, len) for each piece (it may suspend: backpressure
 * reaches the client); close(ctx, error) when the part ended (error 0) or the form failed. Any
 * negative return fails the form with it. */
typedef struct simul_http_part_sink {
    int (*open)(const simul_http_form_file *part, void **ctx, void *arg);
    int (*write)(void *ctx, const void *data, size_t len, void *arg);
    int (*close)(void *ctx, int error, void *arg);
} simul_http_part_sink;
typedef struct simul_http_form_opts {
    size_t max_parts;        /* parts, fields and files (default 128) */
    size_t max_field_bytes;  /* a plain field's value (default 64 KiB) */
    size_t max_fields_total; /* all plain fields, or an urlencoded body (default 1 MiB) */
    size_t max_part_header;  /* a part's header block (default 8 KiB) */
    uint64_t max_file_bytes; /* each file (0: only the server's body limit) */
    const simul_http_part_sink *sink; /* NULL: temp files */
    void *sink_arg;
} simul_http_form_opts;
/* Suspends. Reads and parses the form once (later calls return the first result); the form
 * getters below call it with opts NULL. Returns 0; -EOPNOTSUPP (not a form: answer 415);
 * -EBADMSG (malformed: 400); -EMSGSIZE (over a limit: 413); the body's errors; a sink's error.
 * simul_http_form_status(rc) maps these to the status to answer. */
int simul_http_request_form_parse(simul_http_request *req, const simul_http_form_opts *opts);
int simul_http_form_status(int error);
/* A field's first value, or NULL (no such field, or the form failed). */
const char *simul_http_request_form(simul_http_request *req, const char *name);
size_t simul_http_request_form_all(simul_http_request *req, const char *name, const char **vals,
                                   size_t max);
/* A file part by field name, or NULL. */
const simul_http_form_file *simul_http_request_form_file(simul_http_request *req,
                                                         const char *name);
/* Memory that lives until the request ends (8-byte aligned). NULL if out of memory. */
void *simul_http_alloc(simul_http_request *req, size_t size);
/* The connection's peer address (getpeername), as simul_stream_peername. */
int simul_http_request_peername(const simul_http_request *req, struct sockaddr_storage *addr);
/* The client's address as text ("192.0.2.1", "2001:db8::1", "unix" for a Unix socket): the
 * peer's, or, when the peer is a trusted proxy (simul_http_server_opts.trusted_proxies), the one
 * it forwarded (see there); never from a header of an untrusted peer. */
const char *simul_http_request_remote_addr(simul_http_request *req);
/* "https" or "http": the connection's, or the one a trusted proxy forwarded. */
const char *simul_http_request_scheme(simul_http_request *req);

/* ---- the response ------------------------------------------------------------------------ */
/* The status (default 200). Returns 0; -EINVAL (not 100..999); -EALREADY once the head was sent. */
int simul_http_response_status(simul_http_response *res, int status);
/* The status set so far (200 unless changed; an error handler gets the error's). */
int simul_http_response_code(const simul_http_response *res);
/* Adds a header field (copied). Content-Length, Transfer-Encoding and Connection are the
 * server's: -EINVAL. -EALREADY once the head was sent; -EINVAL for CR, LF or NUL in either. */
int simul_http_response_header(simul_http_response *res, const char *name, const char *value);
/* The whole body (copied; replaces an earlier one). -EALREADY once streaming. */
int simul_http_response_body(simul_http_response *res, const void *data, size_t len);
/* status, Content-Type: text/plain; charset=utf-8 and the text as the body. */
int simul_http_response_text(simul_http_response *res, int status, const char *text);
/* status, Content-Type: application/json and v encoded compactly (v is not consumed): the bytes
 * equal jansson's json_dumpb(v, JSON_COMPACT | JSON_ENCODE_ANY) (keys in insertion order, reals as
 * "%.17g" in every locale), written by libsimul-http's own encoder at a fraction of the cost.
 * -EINVAL when v is NULL or not encodable: a string or key that is not UTF-8, or containers nested
 * deeper than 2048 (jansson's parser's limit), which is how a cycle is refused; -ENOMEM;
 * -EALREADY once streaming. */
int simul_http_response_json(simul_http_response *res, int status, const struct json_t *v);
/* Flask's abort: answers status (400..599) through the app's error handler for it (or the
 * server's short text) once the handler returns; the handler returns what this returns. -EINVAL;
 * -EALREADY once the head was sent. */
int simul_http_response_error(simul_http_response *res, int status);
/* A redirect: status (301, 302, 303, 307, 308) with Location. */
int simul_http_response_redirect(simul_http_response *res, int status, const char *location);

typedef struct simul_http_cookie_opts {
    const char *path, *domain; /* NULL: left out */
    int64_t max_age;           /* seconds; < 0 left out (a session cookie); 0 deletes */
    bool http_only, secure;
    const char *same_site;     /* "Lax", "Strict", "None" or NULL */
} simul_http_cookie_opts;
/* Adds a Set-Cookie field. opts may be NULL (a session cookie, Path=/ HttpOnly). -EINVAL for a
 * name that is not a token or a value with bytes a cookie may not hold. */
int simul_http_response_set_cookie(simul_http_response *res, const char *name, const char *value,
                                   const simul_http_cookie_opts *opts);

/* Suspends. Streams the body: the first call sends the head (chunked for HTTP/1.1; for HTTP/1.0
 * the body ends with the connection), then each call sends data as one chunk and waits while
 * the connection's write buffer is above its high-water mark (backpressure: a slow client slows
 * the handler, memory stays bounded). len 0 only sends the head. For HEAD nothing of the body
 * is sent. The end comes when the handler returns (or simul_http_response_end). Returns 0;
 * -ECANCELED (the client left, or the server's shutdown cancelled the handler), -EPIPE,
 * -ECONNRESET, -ETIMEDOUT (a deadline scope of the handler's). */
int simul_http_response_write(simul_http_response *res, const void *data, size_t len);
/* Suspends. Sends the head (Content-Length: len) and then len bytes of fd from offset with
 * sendfile(2) (copied through the stream over TLS); the fd stays the caller's. For HEAD and
 * 304 only the head. Returns 0; -EALREADY once started; -EIO if the file ended early (the
 * connection closes: the client sees a short body); errors as simul_http_response_write. */
int simul_http_response_sendfile(simul_http_response *res, int fd, int64_t offset, uint64_t len);
/* Suspends. Ends a streamed body (the last chunk); later writes are -EALREADY. */
int simul_http_response_end(simul_http_response *res);
/* Whether the head was sent. */
bool simul_http_response_started(const simul_http_response *res);

/* Server-Sent Events: starts a text/event-stream response (Cache-Control: no-cache,
 * X-Accel-Buffering: no) with the head sent at once. Suspends (as a write). */
int simul_http_sse_start(simul_http_response *res);
/* Suspends. One event: event and id may be NULL, retry_ms < 0 left out; data is split into one
 * "data:" line per line (CRLF, LF and a lone CR each end one, as EventSource reads them, so data
 * cannot forge a field). -EINVAL for CR/LF in event or id. Errors as simul_http_response_write. */
int simul_http_sse_send(simul_http_response *res, const char *event, const char *id,
                        long retry_ms, const char *data);
/* Suspends. A comment line (": text"): a heartbeat that keeps proxies from timing out. */
int simul_http_sse_comment(simul_http_response *res, const char *text);
/* (Neither keeps anything per event: a stream that lasts hours holds no more memory than one
 * that just started, beyond its stream's write queue, which simul_stream_drain bounds.) */

/* A shared event for a fan-out: formatted once (the bytes simul_http_sse_send would write),
 * immutable, reference-counted, so N subscribers' queues hold N pointers to one copy instead of
 * N copies, and it is freed when the last one lets go. The count is atomic: streams served on
 * other threads may hold it. A subscriber's queue can be bounded in bytes with
 * simul_http_sse_event_size (docs/guide/sse.md: a whole fan-out). */
typedef struct simul_http_sse_event simul_http_sse_event;
/* A new event with one reference (arguments as simul_http_sse_send). 0; -EINVAL (CR/LF in
 * event or id); -ENOMEM. */
int simul_http_sse_event_new(simul_http_sse_event **ev, const char *event, const char *id,
                             long retry_ms, const char *data);
/* Takes one more reference; returns ev. */
simul_http_sse_event *simul_http_sse_event_ref(simul_http_sse_event *ev);
/* Drops one reference, freeing the event with the last (NULL: nothing). */
void simul_http_sse_event_unref(simul_http_sse_event *ev);
/* Its bytes on the wire (what a subscriber's queue holding it pins). */
size_t simul_http_sse_event_size(const simul_http_sse_event *ev);
/* Its wire bytes ("event: ...\ndata: ...\n\n"), its event name and id ("" when absent). */
const char *simul_http_sse_event_bytes(const simul_http_sse_event *ev);
const char *simul_http_sse_event_name(const simul_http_sse_event *ev);
const char *simul_http_sse_event_id(const simul_http_sse_event *ev);
/* Suspends. Writes the event on res (starting the stream if needed); the reference stays the
 * caller's. Errors as simul_http_response_write. */
int simul_http_sse_send_event(simul_http_response *res, const simul_http_sse_event *ev);

/* ---- static files -------------------------------------------------------------------------- */
typedef struct simul_http_static_opts {
    const char *index; /* the file a directory answers with (default "index.html"; "" none) */
    int64_t max_age;   /* Cache-Control: public, max-age=N; < 0 (or opts NULL) leaves it out.
                          Zero-initialised opts send max-age=0 */
} simul_http_static_opts;
/* Serves the files under the directory `root` at URL prefix (GET and HEAD): "/static" answers
 * "/static/a/b.css" with root/a/b.css, and "/static/" with root/index.html ("/static" redirects
 * there). Each answer: sendfile, Content-Type by extension, ETag and Last-Modified with 304 for
 * If-None-Match / If-Modified-Since, Accept-Ranges and a single byte range (206 with
 * Content-Range; 416 when unsatisfiable; several ranges get the whole file), honouring If-Range.
 * No escape: the decoded path may not hold "..", ".", empty segments or NUL (404), and the file
 * is opened with openat2(RESOLVE_BENEATH) under root's directory fd (opened now, so a root
 * renamed later keeps being served), so a symlink that resolves outside root is 404 (one inside
 * is followed; before Linux 5.6 no symlink is followed). Not a regular file: 404; unreadable:
 * 403; these go through the app's error handlers. Files are opened on the loop's thread.
 * Returns 0; -EINVAL; root's open error (-ENOENT, -ENOTDIR, ...); -ENOMEM. */
int simul_http_static(simul_http_app *app, const char *prefix, const char *root,
                      const simul_http_static_opts *opts);
/* Answers with the file rel under dirfd, as a static mount does (the checks, conditionals,
 * Range). For handlers that pick the file themselves. */
int simul_http_response_file_at(simul_http_request *req, simul_http_response *res, int dirfd,
                                const char *rel);
/* Answers with an open regular file (conditionals and Range as above); fd stays the caller's. */
int simul_http_response_fd(simul_http_request *req, simul_http_response *res, int fd,
                           const char *content_type);
/* The content type for a file name's extension ("application/octet-stream" if unknown). */
const char *simul_http_content_type(const char *path);

/* ---- the PROXY protocol (haproxy's v1 text and v2 binary header) --------------------------- */
/* A pure parser over bytes, as the request parser: what a load balancer sends before the first
 * byte of the client's own, to tell the client's address. */
#define SIMUL_HTTP_PROXY_V1_MAX 107u  /* the spec's longest v1 line, CRLF included */
#define SIMUL_HTTP_PROXY_V2_MAX 1024u /* a v2 header with its TLVs (the spec allows 64 KiB; more
                                         than this is refused with -EMSGSIZE) */
typedef struct simul_http_proxy_info {
    int version;                   /* 1 or 2 */
    bool local;                    /* v1 UNKNOWN, v2 LOCAL or an address family not carried:
                                      keep the connection's own addresses */
    struct sockaddr_storage src, dst; /* the client's and the proxy's listener's (unless local) */
    unsigned src_len, dst_len;
    uint32_t header_len;           /* bytes of the header */
} simul_http_proxy_info;
/* Parses a PROXY header at the start of buf[0..len). Returns its length (> 0) when whole, 0 when
 * more bytes are needed (a prefix of a valid header), -EPROTO (not a PROXY header, or malformed:
 * one space between fields, CRLF, valid addresses and ports, v2's signature, version 2, command
 * LOCAL or PROXY), -EMSGSIZE (over SIMUL_HTTP_PROXY_V1_MAX / _V2_MAX), -EINVAL. Allocation-free. */
long simul_http_proxy_parse(const void *buf, size_t len, simul_http_proxy_info *out);

/* ---- serving ------------------------------------------------------------------------------ */
typedef void (*simul_http_log_fn)(const char *line, void *arg);
/* Writes line and a newline to arg (a FILE *; NULL: stderr), flushed. */
void simul_http_access_log_file(const char *line, void *arg);

typedef struct simul_http_server_opts {
    simul_http_limits limits;  /* the parser's limits (414, 431, 413); 0 fields take defaults */
    double header_timeout;     /* seconds from a request's first byte to its complete head: a
                                  slowloris gets 408 and the close (default 10) */
    double body_timeout;       /* seconds a body read may wait for bytes (default 30) -> 408 */
    double keepalive_timeout;  /* seconds an idle connection waits for its next request
                                  (default 75, above the usual proxies' 60) */
    uint32_t max_requests;     /* per connection, then Connection: close (default 1000) */
    bool health;               /* answer GET /healthz (200) and /readyz (200; 503 from the
                                  start of a shutdown) before the routes */
    size_t stack_size;         /* the connection tasks' stack; 0 = the loop's default */
    /* An access log, optional: called after each request with its line in the combined format
     * (`addr - - [time] "request" status bytes "referer" "user-agent"`, no newline; bytes a
     * client sent that are not printable ASCII, '"' and '\\' as \xHH; a request the parser
     * refused, or a slowloris, logs "-" as its request with the status sent). It must not
     * suspend.
     * simul_http_access_log_file writes the line to the FILE * in access_log_arg. */
    simul_http_log_fn access_log;
    void *access_log_arg;
    /* Peers whose forwarding headers are believed: a list of addresses and CIDR blocks
     * ("127.0.0.1, 10.0.0.0/8, fd00::/8"); NULL: none, the headers are ignored. From a trusted
     * peer the client's address is found walking Forwarded's for= (RFC 7239; if present) or else
     * X-Forwarded-For from the right, past the entries that are trusted proxies themselves: the
     * first untrusted one is the client (nginx's real_ip_recursive); the scheme from the
     * Forwarded element's proto= or the last X-Forwarded-Proto ("http" / "https" only). A
     * malformed entry ends the walk at the last good address. */
    const char *trusted_proxies;
    /* The listener expects a PROXY protocol header (v1 or v2) first on every connection (from
     * a load balancer): its source becomes the peer (a trusted proxy check then applies to it).
     * A connection without one, or with a broken one, is closed. Read within header_timeout. */
    bool proxy_protocol;
    /* Connections served at once (per thread with simul_http_serve_threads); at the cap the
     * accept loop stops calling accept() (the kernel's backlog holds the newcomers, nothing is
     * refused) until one ends. 0: 10000. */
    uint32_t max_connections;
    /* HTTPS: tls_accept(stream, tls) runs on each accepted connection first (after a PROXY
     * header). Set both with SIMUL_HTTP_TLS(cfg) from simul/tls.h's simul_tls_accept, so
     * libsimul-http needs no link to libsimul-tls: `.tls = cfg, .tls_accept = simul_tls_accept`.
     * The handshake is bounded by the TLS config's handshake timeout. */
    struct simul_tls_config *tls;
    int (*tls_accept)(struct simul_stream *s, struct simul_tls_config *cfg);
    /* Listening sockets to serve instead of host:port (pass host and port NULL): those a
     * supervisor or systemd handed down (simul_worker_sockets). simul_http_serve only; owned as
     * simul_stream_server_opts.socks says. */
    const int *socks;
    int n_socks;
} simul_http_server_opts;

/* HTTPS for simul_http_server_opts (include simul/tls.h and link simul-tls). */
#define SIMUL_HTTP_TLS(cfg) .tls = (cfg), .tls_accept = simul_tls_accept

/* Listens on host:port (simul_tcp_listen: host NULL for every interface, port "0" for a free
 * one; up to 8 addresses) and serves app on the current loop: an accept loop per listening
 * socket (it waits at max_connections, backs off when out of fds), one task per connection.
 * opts may be NULL. Returns 0 and *out; simul_tcp_listen's error (-EADDRINUSE, a SIMUL_EAI
 * code, ...); -EINVAL (a bad option or trusted_proxies list); -ENOMEM. */
int simul_http_serve(simul_http_app *app, const char *host, const char *port,
                     const simul_http_server_opts *opts, simul_http_server **out);
/* The TCP port it listens on. */
int simul_http_server_port(const simul_http_server *srv);
/* Connections open now. */
size_t simul_http_server_connections(const simul_http_server *srv);
/* Suspends until at most n connections are open (a connection is counted out as it ends, its
 * memory freed before the waiter runs). Returns 0; -ECANCELED, -ETIMEDOUT (a deadline scope);
 * -EINVAL. */
int simul_http_server_wait_connections(simul_http_server *srv, size_t n);
/* Suspends. Graceful shutdown: stops accepting, fails /readyz, closes idle keep-alive
 * connections, ends Server-Sent Events streams at once (the handler's next send or wait gets
 * -ECANCELED; the client sees the last chunk and the close), lets requests in progress finish (each answered with Connection: close) for up
 * to `timeout` seconds, then cancels the handlers still running, and returns once every
 * connection has ended. Returns 0 (all finished in time), 1 (some were cancelled), -EINVAL;
 * -ECANCELED if the caller was cancelled (the connections are cancelled too, and waited for). */
int simul_http_server_shutdown(simul_http_server *srv, double timeout);
/* Frees a server after simul_http_server_shutdown. NULL is fine. */
void simul_http_server_free(simul_http_server *srv);

/* Suspends. Serves one connection on a stream the caller made (a socketpair, a pipe pair, an
 * in-memory bottom, a stream already past a handshake of the caller's) until it ends, in a task
 * of its own (a client that leaves cancels that task, not the caller). No listener: no cap.
 * The stream stays the caller's (close it after). Returns 0; -EINVAL; -ENOMEM; -ECANCELED if
 * the caller was cancelled (the connection was cancelled and waited for). */
int simul_http_serve_stream(simul_http_app *app, struct simul_stream *s,
                            const simul_http_server_opts *opts);

/* Serves app on `threads` loops, each on its own thread (its signals blocked), each with its own
 * server (simul_http_serve: connection cap, TLS, PROXY protocol, its own connections) listening
 * on host:port with SO_REUSEPORT, so the kernel spreads the connections (threads 0 = one per
 * CPU; with port "0" the first thread picks the port and the others bind it). Blocks until every
 * thread listens. The app must outlive it. Thread-safe calls; never from one of its own handlers.
 * Returns 0 and *out; -EINVAL; a listen error (then nothing is left running); -ENOMEM. */
typedef struct simul_http_threads simul_http_threads;
int simul_http_serve_threads(simul_http_app *app, const char *host, const char *port,
                             int threads, const simul_http_server_opts *opts,
                             simul_http_threads **out);
/* The TCP port every thread listens on. */
int simul_http_threads_port(const simul_http_threads *t);
/* Blocks the calling thread (from a task: through simul_to_thread). The graceful shutdown of
 * simul_http_server_shutdown on every thread at once (stop accepting, /readyz fails, idle
 * connections close, in-flight requests get `timeout` seconds, then are cancelled), then the
 * threads end. Returns 0 (all finished in time), 1 (some were cancelled), -EINVAL. A second
 * call returns at once. */
int simul_http_threads_shutdown(simul_http_threads *t, double timeout);
/* The connections thread `index` accepted (known once shut down); -EINVAL. */
int64_t simul_http_threads_accepted(const simul_http_threads *t, int index);
/* Shuts down (timeout 0) if still running, and frees. NULL is fine. */
void simul_http_threads_free(simul_http_threads *t);


/* ---------------------------------------------------------------------------------------------
 * WebSocket (RFC 6455)
 *
 * Two parts, as for HTTP: a codec that is a pure function over bytes (the frame parser, the
 * frame header encoder, masking, UTF-8 checking: no sockets, fuzzed), and sessions on a
 * simul_stream that read and write whole messages, server side (simul_ws_upgrade from a route's
 * handler) or client side (simul_ws_client_open over an already connected stream).
 *
 * The parser's contract is the HTTP parser's: simul_ws_parser_feed(p, buf, len, &consumed, &f)
 * reads buf[0..len) and reports one event; the caller drops buf[0..consumed) and calls again
 * with what was not consumed followed by what arrived since. A frame header, and a control frame
 * whole (at most 2 + 8 + 4 + 125 bytes), are consumed only once complete; data payload is
 * handed out in place as it comes, unmasked in the caller's buffer (hence not const). The
 * result does not depend on how the bytes were split: UTF-8 is checked across pieces and
 * fragments, so an invalid text message fails at its first bad byte.
 * ------------------------------------------------------------------------------------------- */

/* Opcodes (RFC 6455 5.2), and the message types of the session calls. */
enum {
    SIMUL_WS_CONT = 0x0,
    SIMUL_WS_TEXT = 0x1,
    SIMUL_WS_BINARY = 0x2,
    SIMUL_WS_CLOSE = 0x8,
    SIMUL_WS_PING = 0x9,
    SIMUL_WS_PONG = 0xA,
};

/* Close codes (RFC 6455 7.4.1) the library sends or reports. */
enum {
    SIMUL_WS_CLOSE_NORMAL = 1000,
    SIMUL_WS_CLOSE_GOING_AWAY = 1001,    /* the server shuts down */
    SIMUL_WS_CLOSE_PROTOCOL = 1002,      /* a broken frame */
    SIMUL_WS_CLOSE_UNSUPPORTED = 1003,
    SIMUL_WS_CLOSE_NO_STATUS = 1005,     /* reported only: a close frame without a code */
    SIMUL_WS_CLOSE_ABNORMAL = 1006,      /* reported only: the connection ended without a close */
    SIMUL_WS_CLOSE_INVALID_DATA = 1007,  /* text that is not UTF-8 */
    SIMUL_WS_CLOSE_POLICY = 1008,
    SIMUL_WS_CLOSE_TOO_BIG = 1009,       /* a message over max_message */
    SIMUL_WS_CLOSE_INTERNAL = 1011,      /* also: no pong within ping_timeout */
};

/* Parser events (>= 0; errors are negative). */
enum {
    SIMUL_WS_NEED_MORE = 0, /* read more */
    SIMUL_WS_DATA = 1,      /* a piece of a text or binary message: f.opcode, f.data, f.len
                               (may be 0 for an empty message), f.fin when it ends the message */
    SIMUL_WS_CONTROL = 2,   /* a whole ping, pong or close frame: f.opcode, f.data, f.len; for a
                               close also f.close_code (1005 if none) and the reason in f.data +
                               2 (f.len - 2 bytes, checked UTF-8) */
};

/* Every rejection, each with its reason and the close code to answer with. */
typedef enum simul_ws_error {
    SIMUL_WS_OK = 0,
    SIMUL_WS_E_RESERVED_BITS,   /* 1002 RSV1-3 set without a negotiated extension */
    SIMUL_WS_E_OPCODE,          /* 1002 reserved opcode (3-7, 0xB-0xF) */
    SIMUL_WS_E_MASK,            /* 1002 a client frame unmasked, or a server frame masked */
    SIMUL_WS_E_CONTROL_FRAGMENTED, /* 1002 a control frame without FIN */
    SIMUL_WS_E_CONTROL_TOO_LONG, /* 1002 a control payload over 125 bytes */
    SIMUL_WS_E_LENGTH_NOT_MINIMAL, /* 1002 a 16- or 64-bit length that fits the shorter form */
    SIMUL_WS_E_LENGTH_TOP_BIT,  /* 1002 a 64-bit length with its top bit set */
    SIMUL_WS_E_UNEXPECTED_CONT, /* 1002 a continuation frame with no message begun */
    SIMUL_WS_E_EXPECTED_CONT,   /* 1002 a new text/binary frame inside a fragmented message */
    SIMUL_WS_E_CLOSE_LENGTH,    /* 1002 a close payload of 1 byte */
    SIMUL_WS_E_CLOSE_CODE,      /* 1002 a close code that may not be sent */
    SIMUL_WS_E_AFTER_CLOSE,     /* 1002 a frame after the close frame */
    SIMUL_WS_E_UTF8,            /* 1007 text (or a close reason) that is not UTF-8 */
    SIMUL_WS_E_TOO_BIG,         /* 1009 a message over max_message */
    SIMUL_WS_E_COUNT_
} simul_ws_error;

/* One event's frame. data points into the buffer given to the call that returned it. */
typedef struct simul_ws_frame {
    uint8_t opcode; /* SIMUL_WS_TEXT/BINARY (the message's, also for its continuations) or a
                       control opcode */
    bool fin;       /* DATA: this piece ends the message */
    bool compressed; /* DATA: the message's first frame had RSV1 (permessage-deflate, allowed by
                        simul_ws_parser_allow_compressed): data is deflate bytes, UTF-8 unchecked */
    uint8_t *data;
    size_t len;
    int close_code; /* CONTROL close only */
} simul_ws_frame;

#define SIMUL_WS_DEFAULT_MAX_MESSAGE (1024u * 1024u)

/* The parser: caller-allocated. Read `error` after a negative return; the rest is private. */
typedef struct simul_ws_parser {
    simul_ws_error error;
    struct {
        uint64_t max_message;
        uint64_t remaining; /* payload bytes left in the current data frame */
        uint64_t msg_len;   /* bytes of the current message so far */
        uint32_t utf8;      /* the UTF-8 checker's state across pieces */
        uint32_t phase;     /* the mask's position: payload bytes already unmasked, mod 4 */
        uint8_t key[4];
        uint8_t msg_op;     /* the message in progress (0: none) */
        bool server, masked, fin, in_frame, closed;
        bool rsv1_ok, compressed; /* permessage-deflate negotiated; the message is compressed */
    } priv_;
} simul_ws_parser;

/* Prepares p. server: true to parse a client's frames (which must be masked), false for a
 * server's (which must not be). max_message: the largest message (all its fragments) accepted,
 * 0 for SIMUL_WS_DEFAULT_MAX_MESSAGE, UINT64_MAX for none. Does not suspend, allocates nothing. */
void simul_ws_parser_init(simul_ws_parser *p, bool server, uint64_t max_message);

/* permessage-deflate (RFC 7692) was negotiated: RSV1 on a message's first frame marks the message
 * compressed (f.compressed; its UTF-8 is then the inflater's to check). RSV1 on a continuation or
 * a control frame, RSV2 and RSV3 stay errors. */
void simul_ws_parser_allow_compressed(simul_ws_parser *p, bool on);

/* Parses buf[0..len) (see the contract above): returns the next event with *consumed the bytes
 * the caller drops, or -EPROTO (a broken frame, invalid UTF-8) / -EMSGSIZE (over max_message)
 * with the reason in p->error; an error sticks. After a close frame every later byte is
 * SIMUL_WS_E_AFTER_CLOSE. */
int simul_ws_parser_feed(simul_ws_parser *p, uint8_t *buf, size_t len, size_t *consumed,
                         simul_ws_frame *f);

/* The close code to fail the connection with for an error (1002, 1007, 1009). */
int simul_ws_error_close_code(simul_ws_error e);
/* A short reason ("reserved bits set"); static storage, never NULL. */
const char *simul_ws_error_reason(simul_ws_error e);
/* Whether a peer may send this close code (1000-1003, 1007-1014, 3000-4999). */
bool simul_ws_close_code_valid(int code);

/* Writes a frame header into out (at most 14 bytes) and returns its length: fin, opcode, the
 * payload length in its minimal form, and the masking key if mask is not NULL (a client's). */
size_t simul_ws_frame_header(uint8_t out[14], int opcode, bool fin, uint64_t len,
                             const uint8_t *mask);
/* XORs data[0..len) with the key, starting at key position `phase` (payload offset mod 4). */
void simul_ws_mask(uint8_t *data, size_t len, const uint8_t key[4], size_t phase);

/* Checks UTF-8 incrementally: *state starts at 0; returns false at the first invalid byte
 * (overlong forms, surrogates, over U+10FFFF included). A message is whole and valid when the
 * last call returned true and *state is back at 0. */
bool simul_ws_utf8_check(uint32_t *state, const uint8_t *s, size_t len);

/* The Sec-WebSocket-Accept value for a key (28 characters and a NUL into out). */
void simul_ws_accept_key(const char *key, size_t key_len, char out[29]);

/* ---- sessions -------------------------------------------------------------------------------
 * A session reads and writes whole messages over a stream. A reader task of its own reads the
 * stream all along: it answers pings at once, queues messages for simul_ws_recv (up to
 * queue_max; then it stops reading, so a slow reader slows the peer), sends pings every
 * ping_interval while the line is quiet and fails the connection (1011) if nothing comes back
 * within ping_timeout, and answers a close. Sends are written whole (a frame is one stream
 * write, so the reader's pongs never split a message's frame) and wait while the stream's write
 * buffer is above its high-water mark. Every wait honours cancellation and deadline scopes.
 * One task receives and one task sends at a time (another gets -EBUSY); they may be two tasks.
 * ------------------------------------------------------------------------------------------- */
typedef struct simul_ws simul_ws;
typedef struct simul_stream simul_stream; /* simul/stream.h */

typedef struct simul_ws_opts {
    uint64_t max_message;  /* largest message received (default 1 MiB) -> close 1009 */
    size_t queue_max;      /* messages received and not yet taken by recv (default 16) */
    double ping_interval;  /* seconds of quiet before a ping (default 20; < 0: never) */
    double ping_timeout;   /* seconds to wait for anything after that ping (default 20) */
    double close_timeout;  /* seconds to wait for the peer's close answer (default 5) */
    /* Server: the subprotocols spoken, in order of preference; the first the client offers
     * wins (none offered or none in common: no subprotocol). Client: those offered. */
    const char *const *subprotocols;
    size_t nsubprotocols;
    /* Server only: when the client vanishes (the connection ends without a close frame), the
     * handler's task is cancelled (default true: its next wait returns -ECANCELED). */
    bool no_cancel_on_disconnect;
    /* Server only: the Origin values a browser may upgrade from (exact, case-insensitive;
     * "*" for any). NULL: same origin only (the Origin's host[:port] must be the Host field),
     * against cross-site WebSocket hijacking. A request without Origin (not a browser) is
     * always let through; a refused one gets 403. */
    const char *const *origins;
    size_t norigins;
    /* permessage-deflate (RFC 7692), off unless `deflate` is set. A server accepts the first
     * offer it can honour and declines the others (unknown or repeated parameters, a window of
     * 8 bits, which zlib cannot make); a client offers it and fails the handshake on an answer
     * it cannot honour. Every message sent is compressed; a compressed message received is
     * inflated in bounded steps and held to max_message *inflated*: one that would pass it
     * fails the connection with 1009 before it is allocated (a zip bomb costs max_message).
     * A peer may flush with a final deflate block (BFINAL=1, RFC 7692 7.2.3.4): its history
     * carries on into its next message all the same; a message whose data does not end on a
     * block boundary is 1007. */
    bool deflate;
    /* Compress each message sent on its own (no context kept between messages: a worse ratio,
     * and a peer's inflater that needs no history). Server: says server_no_context_takeover;
     * client: offers client_no_context_takeover. A session with deflate holds zlib's state
     * (about 2^(window_bits + 3) bytes for compressing, 32 KiB for inflating): lower
     * deflate_window_bits to hold less. */
    bool deflate_no_context_takeover;
    /* Ask the peer to do the same (server: the answer says client_no_context_takeover; client:
     * offers server_no_context_takeover and refuses an answer without it). */
    bool deflate_peer_no_context_takeover;
    int deflate_window_bits; /* our compressor's LZ77 window, 9..15 (0: 15); the peer may lower
                                it (server_/client_max_window_bits) */
    int deflate_level;       /* zlib level 1..9 (0: 6) */
} simul_ws_opts;

/* Suspends. Upgrades the request to a WebSocket inside its handler: checks the handshake (GET,
 * HTTP/1.1, "Upgrade: websocket", "Connection: upgrade", Sec-WebSocket-Version 13, a
 * Sec-WebSocket-Key of 16 bytes in base64, an allowed Origin), picks a subprotocol, sends "101
 * Switching Protocols" and takes the connection over. On a bad handshake it answers 400 (426
 * with Sec-WebSocket-Version: 13 for another version, 403 for an origin not allowed) and
 * returns -EPROTO: the handler just returns.
 * The session lives until simul_ws_close (call it before the handler returns); the connection
 * closes after it. A graceful server shutdown sends every session a close 1001: its recv then
 * returns 0 with that code. opts may be NULL. Returns 0 and *out; -EPROTO; -EALREADY (a
 * response was already started); -ECANCELED; -ENOMEM. */
int simul_ws_upgrade(simul_http_request *req, simul_http_response *res, const simul_ws_opts *opts,
                     simul_ws **out);

/* Suspends. Client side: the opening handshake over an already connected stream (TCP, Unix,
 * TLS): sends a GET for `path` with Host `host` and a fresh key, reads the answer with the HTTP
 * parser in response mode (strict, default limits; interim 1xx skipped) and checks it: status
 * 101, "Upgrade: websocket", "Connection: upgrade", the right Sec-WebSocket-Accept (once), a
 * subprotocol among those offered, no extension but permessage-deflate if opts.deflate offered
 * it (with parameters this side can honour). Bytes behind the 101 are the first frames. The
 * stream stays the caller's: close it after simul_ws_close. opts may be NULL (no cancel on
 * disconnect on this side: recv returns -ECONNRESET). Returns 0 and *out; -EPROTO (the server
 * refused or answered wrong or malformed; the status it sent is in *status if status is not
 * NULL); -EMSGSIZE (a head over the limits); -ECONNRESET (closed before the answer's end); the
 * stream's errors. simul_ws_connect (below, by URL) says why in words. */
int simul_ws_client_open(simul_stream *s, const char *host, const char *path,
                         const simul_ws_opts *opts, int *status, simul_ws **out);

/* Suspends until a message arrives: its type (SIMUL_WS_TEXT or SIMUL_WS_BINARY) is returned,
 * *data points at it (NUL-terminated after len bytes, valid until the next recv or the close)
 * and *len is its length. Returns 0 once the peer has closed (simul_ws_close_code says how;
 * 1006 when the connection ended without a close); -EPROTO / -EMSGSIZE when the peer broke the
 * protocol (the connection was failed with 1002, 1007 or 1009); -ECONNRESET; -ECANCELED;
 * -ETIMEDOUT (a deadline scope); -EBUSY (another task is in recv). */
int simul_ws_recv(simul_ws *ws, const char **data, size_t *len);

/* Suspends (while the write buffer is full). Sends a whole message as one frame. type:
 * SIMUL_WS_TEXT (data must be UTF-8: -EINVAL otherwise) or SIMUL_WS_BINARY. Returns 0;
 * -EPIPE once a close was sent or the connection failed; -ECANCELED; -ETIMEDOUT; -EBUSY. */
int simul_ws_send(simul_ws *ws, int type, const void *data, size_t len);
/* simul_ws_send of a NUL-terminated text. */
int simul_ws_send_text(simul_ws *ws, const char *text);
/* Suspends. Sends a message in pieces, as a stream: the first call gives the type, later ones
 * SIMUL_WS_CONT; `last` ends the message. Text pieces may split a character. Control frames
 * (pongs, pings) may come between the pieces; other messages may not (-EBUSY for
 * simul_ws_send meanwhile). Errors as simul_ws_send. */
int simul_ws_send_part(simul_ws *ws, int type, const void *data, size_t len, bool last);
/* Sends a ping (payload up to 125 bytes; -EINVAL beyond). Does not suspend. */
int simul_ws_ping(simul_ws *ws, const void *data, size_t len);

/* Suspends. The close handshake: sends a close with code (1000 if 0; a code a peer may send)
 * and reason (up to 123 bytes of UTF-8; NULL for none) unless one was sent, waits up to
 * close_timeout for the peer's close, ends the reader and frees the session. Another task
 * waiting in simul_ws_recv meanwhile returns (as recv does once closed) before the session is
 * freed; no task may be inside a send (it would touch the freed session). The handle is
 * invalid once it returns, whatever it returns: 0 (both sides closed), -ETIMEDOUT (no answer in
 * time), -ECONNRESET (the connection had failed), -ECANCELED, -EINVAL (a bad code or reason:
 * the session is freed and the connection failed with 1011). */
int simul_ws_close(simul_ws *ws, int code, const char *reason);

/* The close code the peer sent (1005 if its close had none; 1006 if the connection ended
 * without a close; 0 while open), and its reason (NUL-terminated, "" if none). */
int simul_ws_close_code(const simul_ws *ws);
const char *simul_ws_close_reason(const simul_ws *ws);
/* The subprotocol chosen, or NULL. */
const char *simul_ws_subprotocol(const simul_ws *ws);
/* Client: the opening handshake's answer (the server's 101), as websockets' response_headers:
 * its fields in order (names as sent, values without surrounding whitespace), valid while the
 * session lives. A server's session has none (the handler has the request). count: 0 then;
 * _at: 0, or -ERANGE past the end; simul_ws_response_header: the first field of that name
 * (case-insensitive), or NULL. */
size_t simul_ws_response_header_count(const simul_ws *ws);
int simul_ws_response_header_at(const simul_ws *ws, size_t i, const char **name,
                                const char **value);
const char *simul_ws_response_header(const simul_ws *ws, const char *name);
/* The extensions in use as the server's 101 said them (Sec-WebSocket-Extensions, e.g.
 * "permessage-deflate; server_no_context_takeover"), or NULL for none. */
const char *simul_ws_extensions(const simul_ws *ws);


/* ---------------------------------------------------------------------------------------------
 * The client: a session of pooled keep-alive connections (aiohttp's ClientSession, Go's
 * http.Client); a request is one suspending call in the caller's task
 *
 *   simul_http_session *s;
 *   simul_http_session_new(NULL, &s);
 *   simul_http_client_response *r;
 *   char why[256];
 *   simul_http_request_opts o = {.why = why, .whylen = sizeof why};
 *   int rc = simul_http_session_request(s, "GET", "https://example.com/", &o, &r);
 *   if (rc < 0) -> printf("%s\n", why)   (e.g. "certificate verify failed: unable to get local
 *                                          issuer certificate")
 *   size_t n; const char *body = simul_http_client_response_body(r, &n);
 *   simul_http_client_response_close(r);   (the connection goes back to the pool)
 *   simul_http_session_close(s);
 *
 * Connections: one pool per origin (scheme, host, port), newest idle connection first; limits
 * per host and in total (a request past them waits for a connection to come back); an idle
 * connection older than idle_timeout is closed instead of reused. A connection goes back to the
 * pool only once its response was read to its end with nothing after it and both sides keep it
 * alive: a request that fails, times out or is cancelled — at any point — closes its
 * connection, so no caller ever reads another's bytes. A request that finds a pooled connection
 * closed by the server before any byte of the answer came is sent again once on a new
 * connection, if its method is idempotent and its body can be sent again (Go's rule).
 *
 * Timeouts (through deadline scopes, so a caller's own scopes and cancellation apply as well):
 * connect (TCP with Happy Eyeballs, then the TLS handshake), the whole request (until its body
 * was read: for a streamed body the reads after the call count too), a stalled read (no byte
 * for that long). The error is -ETIMEDOUT and `why` says which.
 *
 * HTTPS goes through libsimul-tls (linked by libsimul-http): the server's certificate is
 * verified against the system's CAs (or ca_file) and its name, unless insecure_skip_verify.
 *
 * A session belongs to the loop whose tasks use it (one thread); any number of its tasks may
 * make requests at once. HTTP/1.1 only (ALPN offers http/1.1); no pipelining: one request per
 * connection at a time, as aiohttp and Go do.
 * ------------------------------------------------------------------------------------------- */
typedef struct simul_http_session simul_http_session;
typedef struct simul_http_client_response simul_http_client_response;
struct simul_tls_config; /* simul/tls.h */

typedef struct simul_http_session_opts {
    uint32_t max_per_host;     /* connections per origin, busy and idle (default 0: no limit
                                  but max_total) */
    uint32_t max_total;        /* connections in all (default 100, aiohttp's) */
    uint32_t max_idle_per_host; /* idle ones kept per origin (default 32) */
    double idle_timeout;       /* seconds an idle connection is kept (default 90, Go's) */
    double connect_timeout;    /* seconds for TCP connect and TLS handshake (default 30) */
    double request_timeout;    /* seconds for a whole request (default 300, aiohttp's; INFINITY:
                                  none) */
    double read_timeout;       /* seconds a read may wait for a byte (default 60) */
    int max_redirects;         /* redirects followed (default 0 means 10; < 0: none, a 3xx is
                                  returned as is) */
    uint64_t max_body;         /* a whole body's limit after decoding (default 64 MiB); over it:
                                  -EMSGSIZE (stream the body to read more) */
    simul_http_limits limits;  /* the response head's limits (status line, header bytes and
                                  count, chunk-size line); max_body is not used here */
    bool cookies;              /* keep the cookies servers set and send them back (a jar per
                                  session, RFC 6265 domain/path/secure/expiry rules) */
    bool no_decompress;        /* do not ask for or decode gzip/deflate */
    const char *ca_file;       /* PEM file of the CAs to trust instead of the system's */
    bool insecure_skip_verify; /* do not verify certificates (tests only) */
    struct simul_tls_config *tls; /* a client config to use as is (borrowed: it must outlive
                                     the session); overrides ca_file and insecure_skip_verify */
    const char *proxy;         /* "http://[user:password@]host:port": every request goes
                                  through a tunnel the proxy opens with CONNECT, with Basic
                                  Proxy-Authorization if credentials are given (NULL: none) */
    const char *user_agent;    /* default "simul-http" */
} simul_http_session_opts;

/* Makes a session (no I/O yet). opts may be NULL. Returns 0 and *out; -EINVAL (a bad proxy URL,
 * a limit out of range); -ENOMEM; a TLS error for an unreadable ca_file. */
int simul_http_session_new(const simul_http_session_opts *opts, simul_http_session **out);
/* Suspends (briefly: closing sockets). Closes the idle connections and frees the session. Every
 * response must have been closed first: -EBUSY if not (nothing is freed). NULL is fine. */
int simul_http_session_close(simul_http_session *s);
/* Suspends. A new connection to url's origin for a protocol that takes the connection over (a
 * WebSocket: simul_ws_client_open on it): TCP with Happy Eyeballs, the proxy's CONNECT tunnel if
 * the session has one, TLS for https verified as the session's requests are, all within
 * connect_timeout. Never from the pool and never returned to it: the stream is the caller's
 * (simul_stream_close). Returns 0 and *out, or the errors of simul_http_session_request's
 * connect, the reason in why (may be NULL). */
struct simul_stream;
int simul_http_session_open_stream(simul_http_session *s, const char *url,
                                   struct simul_stream **out, char *why, size_t whylen);
/* Connections open now, and of them idle in the pool (for tests and metrics). */
size_t simul_http_session_connections(const simul_http_session *s);
size_t simul_http_session_idle(const simul_http_session *s);
/* A cookie the jar holds for url and name, or NULL (copied into buf, at most len bytes). */
const char *simul_http_session_cookie(simul_http_session *s, const char *url, const char *name,
                                      char *buf, size_t len);

/* A streamed request body: fill buf with up to n bytes and return how many, 0 at the end, or a
 * negative errno to abort the request. Runs in the requesting task: it may suspend. */
typedef long (*simul_http_body_cb)(void *arg, void *buf, size_t n);

typedef struct simul_http_request_opts {
    const char *const *headers; /* extra fields: name, value, name, value, ..., NULL */
    const void *body;          /* a body from memory (Content-Length) */
    size_t body_len;
    simul_http_body_cb body_cb; /* or a streamed body, sent chunked (not replayed: a 307/308
                                  redirect is then returned as is) */
    void *body_arg;
    const struct json_t *json; /* or a JSON body (Content-Type: application/json) */
    const char *content_type;  /* Content-Type of the body */
    bool stream;               /* read the response body with simul_http_client_response_read
                                  (any size) instead of whole at once */
    double timeout;            /* the whole request's timeout instead of the session's (0:
                                  the session's) */
    char *why;                 /* on an error, the reason in words ("connect timed out after
                                  30 s", "certificate verify failed: ...", "response: invalid
                                  Content-Length"); may be NULL */
    size_t whylen;
} simul_http_request_opts;

/* Suspends. Sends method to url ("http://host[:port]/path?query" or https) and reads the
 * response head, following redirects (301, 302, 303: the next request is a GET without body,
 * but HEAD stays HEAD; 307, 308: method and body kept; a loop ends at max_redirects with
 * -ELOOP), and reads the whole body unless opts->stream. A server that answers before the
 * request body was sent whole and closes (a 413) has that answer returned. opts may be NULL.
 * Returns 0 and *out (close it with simul_http_client_response_close); -EINVAL (a bad URL or
 * method, an unsupported scheme); a SIMUL_EAI code or a connect error (-ECONNREFUSED, ...);
 * -EKEYREJECTED (certificate verification failed) or another TLS error; -ETIMEDOUT;
 * -ECANCELED; -EPROTO (a malformed response), -EMSGSIZE (over a limit); -ECONNRESET (the
 * server closed or reset mid-response); -ELOOP; -ENOMEM. The reason in words in opts->why. */
int simul_http_session_request(simul_http_session *s, const char *method, const char *url,
                               const simul_http_request_opts *opts,
                               simul_http_client_response **out);
/* Suspends. A GET, whole body. */
int simul_http_session_get(simul_http_session *s, const char *url,
                           simul_http_client_response **out);
/* Suspends. A POST of body (content_type may be NULL), whole response body. */
int simul_http_session_post(simul_http_session *s, const char *url, const char *content_type,
                            const void *body, size_t len, simul_http_client_response **out);
/* Suspends. A POST of v as JSON. */
int simul_http_session_post_json(simul_http_session *s, const char *url, const struct json_t *v,
                                 simul_http_client_response **out);

/* ---- the WebSocket client by URL ------------------------------------------------------------
 * websockets' connect(uri), aiohttp's session.ws_connect: one suspending call from a URL to an
 * open session, on a connection of its own made as the session makes its requests' (its proxy,
 * its CAs, verification on by default) and never pooled.
 *
 *   simul_ws_connect_opts o = {.origin = "https://app.example", .why = why, .whylen = sizeof why};
 *   int status;
 *   simul_ws *ws;
 *   if (simul_ws_connect(session, "wss://example.com/chat", &o, &status, &ws) < 0)
 *       -> printf("%d %s\n", status, why)   (e.g. 403 "WebSocket handshake refused: the server
 *                                              answered 403 Forbidden: origin not allowed")
 *   simul_ws_send_text(ws, "hi"); simul_ws_recv(ws, &d, &n); simul_ws_close(ws, 0, NULL);
 * ------------------------------------------------------------------------------------------- */
typedef struct simul_ws_connect_opts {
    simul_ws_opts ws;           /* the session's (subprotocols offered, max_message, keepalive) */
    const char *origin;         /* the Origin field (NULL: none, as a non-browser client) */
    const char *const *headers; /* more request fields: name, value, ..., NULL (Authorization,
                                   ...); not those of the handshake itself (-EINVAL) */
    double open_timeout;        /* seconds for connect and opening handshake together (default
                                   10, websockets'; INFINITY: none; the session's connect_timeout
                                   bounds the connect as well) */
    simul_http_limits limits;   /* the handshake answer's head limits (0 fields: defaults;
                                   max_headers: its fields, default 100, at most 100000; more
                                   is -EMSGSIZE with the count said in why) */
    char *why;                  /* on an error, the reason in words; may be NULL */
    size_t whylen;
} simul_ws_connect_opts;

/* Suspends. Opens a WebSocket to url ("ws://host[:port]/path?query", "wss://...", or http(s)://
 * as aiohttp takes): a new connection to its origin (simul_http_session_open_stream: TCP with
 * Happy Eyeballs, the session's CONNECT proxy, TLS for wss verified against the session's CAs),
 * then the opening handshake with the session's User-Agent, opts' fields and, if the session
 * keeps cookies, its cookies for the URL (a Set-Cookie in the answer is kept). The answer is
 * read with the HTTP parser in response mode (strict, with limits) and must be a 101 with the
 * right Sec-WebSocket-Accept, a subprotocol among those offered and no extension (but
 * permessage-deflate when opts.ws.deflate offered it); frames the
 * server sent right behind it are kept. The session closes the connection at simul_ws_close.
 * Every wait honours the caller's cancellation and deadline scopes. opts may be NULL.
 * *status (may be NULL): the status the server answered, 0 if none came. Returns 0 and *out;
 * -EINVAL (a bad URL, field or option); -EPROTO (a refusal: any status but 101, its status in
 * *status and its words in why; or a wrong 101); -EMSGSIZE (an answer over the limits);
 * -ECONNRESET (the server closed before its answer's end); -ETIMEDOUT (open_timeout, the
 * session's connect_timeout, or the caller's deadline); -ECANCELED; simul_http_session_open_
 * stream's errors (-EKEYREJECTED for a certificate that does not verify, a connect error, a
 * SIMUL_EAI code, -ECONNREFUSED from a proxy); -ENOMEM. */
int simul_ws_connect(simul_http_session *s, const char *url, const simul_ws_connect_opts *opts,
                     int *status, simul_ws **out);

/* ---- the response ------------------------------------------------------------------------ */
/* The status code (200, 404, ...). */
int simul_http_client_response_status(const simul_http_client_response *r);
/* The reason phrase as the server sent it (may be ""); valid until the response is closed. */
const char *simul_http_client_response_reason(const simul_http_client_response *r);
/* The minor version of the response: 1 for HTTP/1.1, 0 for HTTP/1.0. */
int simul_http_client_response_version_minor(const simul_http_client_response *r);
/* The URL that answered (after redirects), and how many redirects were followed. */
const char *simul_http_client_response_url(const simul_http_client_response *r);
int simul_http_client_response_redirects(const simul_http_client_response *r);
/* The first field named `name` (case-insensitive), or NULL; and every field by index. */
const char *simul_http_client_response_header(const simul_http_client_response *r,
                                              const char *name);
size_t simul_http_client_response_header_count(const simul_http_client_response *r);
int simul_http_client_response_header_at(const simul_http_client_response *r, size_t i,
                                         const char **name, const char **value);
/* The whole body (decoded; NUL-terminated), *len its length; NULL for a streamed response. */
const char *simul_http_client_response_body(const simul_http_client_response *r, size_t *len);
/* Suspends. The next piece of a streamed body (decoded), at most n bytes: returns the count,
 * 0 at its end (the connection then goes back to the pool), or -ETIMEDOUT, -ECANCELED,
 * -EPROTO, -ECONNRESET (the connection is closed; later reads return the error again);
 * -EINVAL if the response is not streamed. */
long simul_http_client_response_read(simul_http_client_response *r, void *buf, size_t n);
/* Suspends for a streamed response. The body as JSON (reads the rest first if streamed):
 * a new reference in *out; -EBADMSG if it is not JSON. */
int simul_http_client_response_json(simul_http_client_response *r, struct json_t **out);
/* Releases the response: its connection goes back to the pool if the body was read to its
 * end, else it is closed (never handed to the next request mid-body). Suspends only to close
 * a socket. NULL is fine. */
void simul_http_client_response_close(simul_http_client_response *r);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif
#ifdef __cplusplus
}
#endif
#endif /* SIMUL_HTTP_H */
