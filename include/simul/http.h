/* simul/http.h — libsimul-http (pkg-config simul-http): an HTTP/1.1 framework on simul streams.
 * This part: the message parser, a pure function over bytes (no sockets, no loop) that the server
 * drives; the server's API will come as further sections of this header. */
#ifndef SIMUL_HTTP_H
#define SIMUL_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

/* What is parsed. Only requests for now; the client's responses will be a second mode of the
 * same parser (status line instead of request line, the response framing rules). */
typedef enum simul_http_mode {
    SIMUL_HTTP_REQUEST = 1,
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
    SIMUL_HTTP_E_COUNT_
} simul_http_error;

/* Limits; a field left 0 takes its default. Each is at most 1 GiB (max_body: any value). */
typedef struct simul_http_limits {
    uint32_t max_request_line; /* bytes, its CRLF included (default 8192) -> 414 */
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

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif
#ifdef __cplusplus
}
#endif
#endif /* SIMUL_HTTP_H */
