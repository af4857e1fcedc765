/* parser.c — the HTTP/1.1 message parser of libsimul-http: a pure function over bytes.
 * The idea: a line (request line, field, chunk-size line) is read only once its LF is in the
 * buffer, and the caller keeps unconsumed bytes in front of the next ones, so every line is whole
 * and contiguous when validated (one memchr, then one table-driven pass that stops at the CR),
 * the result cannot depend on how the bytes were split, and fields are offsets into the caller's
 * buffer. Strictness (RFC 9112, and the request-smuggling write-ups): anything two parsers could
 * frame differently is an error, never a guess. */
#include <errno.h>
#include <string.h>

#include <simul/http.h>

/* Character classes, one table (RFC 9110 5.6.2 tchar; 5.5 field-value; 9112 3.2 target). */
enum {
    C_TCHAR = 1,  /* token */
    C_VALUE = 2,  /* field-content: HTAB, SP, VCHAR, obs-text */
    C_TARGET = 4, /* request target: VCHAR only */
    C_HEX = 8,
    C_QDTEXT = 16, /* quoted-string text: HTAB, SP, VCHAR but '"' and '\', obs-text */
};
static const unsigned char cls[256] = {
     0,  0,  0,  0,  0,  0,  0,  0,  0, 18,  0,  0,  0,  0,  0,  0,
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
    18, 23,  6, 23, 23, 23, 23, 23, 22, 22, 23, 23, 22, 23, 23, 22,
    31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 22, 22, 22, 22, 22, 22,
    22, 31, 31, 31, 31, 31, 31, 23, 23, 23, 23, 23, 23, 23, 23, 23,
    23, 23, 23, 23, 23, 23, 23, 23, 23, 23, 23, 22,  6, 22, 23, 23,
    23, 31, 31, 31, 31, 31, 31, 23, 23, 23, 23, 23, 23, 23, 23, 23,
    23, 23, 23, 23, 23, 23, 23, 23, 23, 23, 23, 22, 23, 22, 23,  0,
    18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18,
    18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18,
    18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18,
    18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18,
    18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18,
    18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18,
    18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18,
    18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18,
};

enum {
    ST_START, /* between messages: the next byte begins a request */
    ST_HEAD,
    ST_BODY_LENGTH,
    ST_BODY_CLOSE, /* responses: body until the connection closes */
    ST_CHUNK_SIZE,
    ST_CHUNK_DATA,
    ST_CHUNK_CR,
    ST_CHUNK_LF,
    ST_TRAILERS,
    ST_END,    /* the body is done: report SIMUL_HTTP_END */
    ST_CLOSED, /* a message that ends the connection ended */
    ST_ERROR,
};

/* What the head said so far (priv_.flags). */
enum {
    F_REQLINE = 1 << 0, /* the request line is parsed */
    F_CL = 1 << 1,
    F_TE = 1 << 2,
    F_TE_LAST_CHUNKED = 1 << 3,
    F_TE_CHUNKED_EARLY = 1 << 4, /* chunked, then another coding after it */
    F_TE_OTHER = 1 << 5,
    F_HOST = 1 << 6,
    F_CONN_CLOSE = 1 << 7,
    F_CONN_KEEPALIVE = 1 << 8,
    F_CONN_UPGRADE = 1 << 9,
    F_UPGRADE = 1 << 10,
    F_CONNECT = 1 << 11,
};

static const struct {
    const char *name, *reason;
    short status;
} errors[SIMUL_HTTP_E_COUNT_] = {
    [SIMUL_HTTP_OK] = {"OK", "no error", 0},
    [SIMUL_HTTP_E_REQUEST_LINE] = {"REQUEST_LINE", "stray or missing space in request line", 400},
    [SIMUL_HTTP_E_METHOD] = {"METHOD", "method is not a token", 400},
    [SIMUL_HTTP_E_TARGET] = {"TARGET", "invalid character in request target", 400},
    [SIMUL_HTTP_E_VERSION] = {"VERSION", "malformed HTTP version", 400},
    [SIMUL_HTTP_E_VERSION_UNSUPPORTED] = {"VERSION_UNSUPPORTED", "HTTP version not supported",
                                          505},
    [SIMUL_HTTP_E_URI_TOO_LONG] = {"URI_TOO_LONG", "request line too long", 414},
    [SIMUL_HTTP_E_BARE_CR] = {"BARE_CR", "CR not followed by LF", 400},
    [SIMUL_HTTP_E_BARE_LF] = {"BARE_LF", "LF without CR", 400},
    [SIMUL_HTTP_E_OBS_FOLD] = {"OBS_FOLD", "obsolete line folding", 400},
    [SIMUL_HTTP_E_SPACE_BEFORE_COLON] = {"SPACE_BEFORE_COLON", "whitespace before header colon",
                                         400},
    [SIMUL_HTTP_E_HEADER_NAME] = {"HEADER_NAME", "invalid header name", 400},
    [SIMUL_HTTP_E_HEADER_VALUE] = {"HEADER_VALUE", "invalid character in header value", 400},
    [SIMUL_HTTP_E_HEADERS_TOO_LARGE] = {"HEADERS_TOO_LARGE", "header section too large", 431},
    [SIMUL_HTTP_E_TOO_MANY_HEADERS] = {"TOO_MANY_HEADERS", "too many header fields", 431},
    [SIMUL_HTTP_E_CL_INVALID] = {"CL_INVALID", "invalid Content-Length", 400},
    [SIMUL_HTTP_E_CL_LIST] = {"CL_LIST", "Content-Length is a list", 400},
    [SIMUL_HTTP_E_CL_DUPLICATE] = {"CL_DUPLICATE", "duplicate Content-Length", 400},
    [SIMUL_HTTP_E_TE_AND_CL] = {"TE_AND_CL", "Transfer-Encoding with Content-Length", 400},
    [SIMUL_HTTP_E_TE_NOT_CHUNKED] = {"TE_NOT_CHUNKED", "last transfer coding is not chunked",
                                     400},
    [SIMUL_HTTP_E_TE_INVALID] = {"TE_INVALID", "malformed Transfer-Encoding", 400},
    [SIMUL_HTTP_E_TE_UNSUPPORTED] = {"TE_UNSUPPORTED", "unsupported transfer coding", 501},
    [SIMUL_HTTP_E_TE_HTTP10] = {"TE_HTTP10", "Transfer-Encoding in HTTP/1.0", 400},
    [SIMUL_HTTP_E_HOST_MISSING] = {"HOST_MISSING", "missing Host", 400},
    [SIMUL_HTTP_E_HOST_DUPLICATE] = {"HOST_DUPLICATE", "duplicate Host", 400},
    [SIMUL_HTTP_E_BODY_TOO_LARGE] = {"BODY_TOO_LARGE", "body too large", 413},
    [SIMUL_HTTP_E_CHUNK_SIZE] = {"CHUNK_SIZE", "invalid chunk size", 400},
    [SIMUL_HTTP_E_CHUNK_SIZE_OVERFLOW] = {"CHUNK_SIZE_OVERFLOW", "chunk size overflow", 400},
    [SIMUL_HTTP_E_CHUNK_EXT] = {"CHUNK_EXT", "invalid chunk extension", 400},
    [SIMUL_HTTP_E_CHUNK_LINE_TOO_LONG] = {"CHUNK_LINE_TOO_LONG", "chunk-size line too long",
                                          400},
    [SIMUL_HTTP_E_CHUNK_DATA_CRLF] = {"CHUNK_DATA_CRLF", "chunk data not followed by CRLF", 400},
    [SIMUL_HTTP_E_AFTER_CLOSE] = {"AFTER_CLOSE", "data after Connection: close", 400},
    [SIMUL_HTTP_E_STATUS_LINE] = {"STATUS_LINE", "malformed status line", 400},
    [SIMUL_HTTP_E_STATUS] = {"STATUS", "invalid status code", 400},
    [SIMUL_HTTP_E_STATUS_LINE_TOO_LONG] = {"STATUS_LINE_TOO_LONG", "status line too long", 400},
    [SIMUL_HTTP_E_TRUNCATED] = {"TRUNCATED", "connection closed inside a message", 400},
};

/* What a response answers (priv_.request). */
enum { REQ_OTHER, REQ_HEAD, REQ_CONNECT };

int simul_http_error_status(simul_http_error e)
{
    return (unsigned)e < SIMUL_HTTP_E_COUNT_ ? errors[e].status : 400;
}

const char *simul_http_error_reason(simul_http_error e)
{
    return (unsigned)e < SIMUL_HTTP_E_COUNT_ ? errors[e].reason : "unknown error";
}

const char *simul_http_error_name(simul_http_error e)
{
    return (unsigned)e < SIMUL_HTTP_E_COUNT_ ? errors[e].name : "UNKNOWN";
}

/* Sticks the parser in the error state; limits are -EMSGSIZE, the rest -EPROTO. */
static int fail(simul_http_parser *p, simul_http_error e, size_t *consumed)
{
    p->error = e;
    p->priv_.state = ST_ERROR;
    *consumed = 0;
    int st = errors[e].status;
    return st == 413 || st == 414 || st == 431 || e == SIMUL_HTTP_E_STATUS_LINE_TOO_LONG
               ? -EMSGSIZE
               : -EPROTO;
}

#define LIMIT_MAX (1u << 30)

int simul_http_parser_init(simul_http_parser *p, simul_http_mode mode,
                           const simul_http_limits *limits, simul_http_header *headers, size_t cap)
{
    if (!p || (mode != SIMUL_HTTP_REQUEST && mode != SIMUL_HTTP_RESPONSE) || !headers || cap == 0)
        return -EINVAL;
    simul_http_limits l = limits ? *limits : (simul_http_limits){0};
    if (l.max_request_line > LIMIT_MAX || l.max_header_bytes > LIMIT_MAX ||
        l.max_headers > LIMIT_MAX || l.max_chunk_line > LIMIT_MAX)
        return -EINVAL;
    if (!l.max_request_line)
        l.max_request_line = SIMUL_HTTP_DEFAULT_MAX_REQUEST_LINE;
    if (!l.max_header_bytes)
        l.max_header_bytes = SIMUL_HTTP_DEFAULT_MAX_HEADER_BYTES;
    if (!l.max_headers)
        l.max_headers = SIMUL_HTTP_DEFAULT_MAX_HEADERS;
    if (!l.max_chunk_line)
        l.max_chunk_line = SIMUL_HTTP_DEFAULT_MAX_CHUNK_LINE;
    if (!l.max_body)
        l.max_body = SIMUL_HTTP_DEFAULT_MAX_BODY;
    memset(p, 0, sizeof *p);
    p->priv_.limits = l;
    p->priv_.headers = headers;
    p->priv_.cap = cap < l.max_headers ? (uint32_t)cap : l.max_headers;
    p->priv_.mode = (uint8_t)mode;
    p->priv_.state = ST_START;
    p->head.headers = headers;
    return 0;
}

/* The LF that ends the line starting at `start`, searched from start + *searched up to `end`
 * (exclusive: a line whose LF lies at or past `end` is over its limit). Returns its index, -1 if
 * more bytes are needed (*searched remembers how far it looked, so a line fed byte by byte is
 * searched once), -2 if the line is over its limit. */
static long find_lf(const char *buf, size_t len, size_t start, uint32_t *searched, size_t end)
{
    size_t from = start + *searched;
    size_t stop = len < end ? len : end;
    if (from < stop) {
        const char *nl = memchr(buf + from, '\n', stop - from);
        if (nl)
            return nl - buf;
    }
    if (len >= end)
        return -2;
    *searched = len > start ? (uint32_t)(len - start) : 0; /* (fewer bytes than last time: a
                                                              caller's bug, still memory-safe) */
    return -1;
}

/* Case-insensitive equality of a token with a lower-case literal (| 0x20 folds only letters
 * among token characters). */
static bool token_is(const char *s, size_t n, const char *lower, size_t ln)
{
    if (n != ln)
        return false;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] | 0x20) != (unsigned char)lower[i])
            return false;
    return true;
}
#define TOKEN_IS(s, n, lit) token_is(s, n, lit, sizeof lit - 1)

static bool ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Eight bytes at a time over the long runs (values, targets), the table for the byte that stops
 * them: a word "has a byte below n" (n <= 128) and "has a zero byte" are exact tests. */
#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull
static inline uint64_t load8(const unsigned char *p)
{
    uint64_t x;
    memcpy(&x, p, 8);
    return x;
}
static inline uint64_t below(uint64_t x, unsigned n)
{
    return (x - ONES * n) & ~x & HIGHS;
}
/* Field-value bytes but HTAB: 0x20-0x7E and obs-text (HTAB leaves the fast loop, no more). */
static inline bool value8(uint64_t x)
{
    return !(below(x, 0x20) | below(x ^ (ONES * 0x7f), 1));
}
/* Request-target bytes: 0x21-0x7E. */
static inline bool target8(uint64_t x)
{
    return !(below(x, 0x21) | below(x ^ (ONES * 0x7f), 1) | (x & HIGHS));
}

/* The request line buf[s..e), buf[e] being its CR: method SP target SP HTTP/1.x, exactly. */
static simul_http_error request_line(simul_http_parser *p, const char *buf, size_t s, size_t e)
{
    const unsigned char *u = (const unsigned char *)buf;
    size_t i = s;
    while (cls[u[i]] & C_TCHAR) /* stops at the CR at the latest */
        i++;
    if (i == e)
        return SIMUL_HTTP_E_REQUEST_LINE; /* one word */
    if (u[i] != ' ')
        return u[i] == '\r' ? SIMUL_HTTP_E_BARE_CR : SIMUL_HTTP_E_METHOD;
    if (i == s)
        return SIMUL_HTTP_E_REQUEST_LINE; /* leading space */
    p->head.method = (simul_http_span){(uint32_t)s, (uint32_t)(i - s)};
    size_t t = ++i;
    while (i + 8 <= e && target8(load8(u + i)))
        i += 8;
    while (cls[u[i]] & C_TARGET)
        i++;
    if (i == e)
        return SIMUL_HTTP_E_REQUEST_LINE; /* no version */
    if (u[i] != ' ')
        return u[i] == '\r' ? SIMUL_HTTP_E_BARE_CR : SIMUL_HTTP_E_TARGET;
    if (i == t)
        return SIMUL_HTTP_E_REQUEST_LINE; /* two spaces */
    p->head.target = (simul_http_span){(uint32_t)t, (uint32_t)(i - t)};
    size_t v = ++i;
    for (size_t k = v; k < e; k++) {
        if (u[k] == '\r')
            return SIMUL_HTTP_E_BARE_CR;
        if (u[k] == ' ')
            return SIMUL_HTTP_E_REQUEST_LINE;
    }
    if (e == v)
        return SIMUL_HTTP_E_REQUEST_LINE; /* trailing space, no version */
    if (e - v != 8 || memcmp(buf + v, "HTTP/", 5) != 0 || u[v + 5] < '0' || u[v + 5] > '9' ||
        u[v + 6] != '.' || u[v + 7] < '0' || u[v + 7] > '9')
        return SIMUL_HTTP_E_VERSION;
    if (u[v + 5] != '1' || u[v + 7] > '1')
        return SIMUL_HTTP_E_VERSION_UNSUPPORTED;
    p->head.version_minor = (uint8_t)(u[v + 7] - '0');
    if (p->head.method.len == 7 && memcmp(buf + s, "CONNECT", 7) == 0)
        p->priv_.flags |= F_CONNECT;
    return SIMUL_HTTP_OK;
}

/* The status line buf[s..e), buf[e] being its CR: HTTP/1.x SP 3DIGIT [SP reason-phrase]
 * (RFC 9112 4; the SP before an empty reason may be missing, as many servers send it). */
static simul_http_error status_line(simul_http_parser *p, const char *buf, size_t s, size_t e)
{
    const unsigned char *u = (const unsigned char *)buf;
    if (e - s < 12 || memcmp(buf + s, "HTTP/", 5) != 0 || u[s + 5] < '0' || u[s + 5] > '9' ||
        u[s + 6] != '.' || u[s + 7] < '0' || u[s + 7] > '9' || u[s + 8] != ' ') {
        for (size_t k = s; k < e; k++)
            if (u[k] == '\r')
                return SIMUL_HTTP_E_BARE_CR;
        return e - s >= 8 && memcmp(buf + s, "HTTP/", 5) == 0 && u[s + 6] == '.'
                   ? SIMUL_HTTP_E_VERSION
                   : SIMUL_HTTP_E_STATUS_LINE;
    }
    if (u[s + 5] != '1' || u[s + 7] > '1')
        return SIMUL_HTTP_E_VERSION_UNSUPPORTED;
    p->head.version_minor = (uint8_t)(u[s + 7] - '0');
    size_t i = s + 9;
    unsigned code = 0;
    for (size_t k = 0; k < 3; k++, i++) {
        if (u[i] < '0' || u[i] > '9')
            return u[i] == '\r' && i < e ? SIMUL_HTTP_E_BARE_CR : SIMUL_HTTP_E_STATUS;
        code = code * 10 + (u[i] - '0');
    }
    if (code < 100)
        return SIMUL_HTTP_E_STATUS;
    p->head.status = (uint16_t)code;
    if (i == e) {
        p->head.reason = (simul_http_span){(uint32_t)i, 0};
        return SIMUL_HTTP_OK;
    }
    if (u[i] != ' ')
        return u[i] == '\r' ? SIMUL_HTTP_E_BARE_CR : SIMUL_HTTP_E_STATUS;
    size_t r = ++i;
    while (cls[u[i]] & C_VALUE) /* stops at the CR at the latest */
        i++;
    if (i != e)
        return u[i] == '\r' ? SIMUL_HTTP_E_BARE_CR : SIMUL_HTTP_E_STATUS_LINE;
    p->head.reason = (simul_http_span){(uint32_t)r, (uint32_t)(e - r)};
    return SIMUL_HTTP_OK;
}

/* A field line buf[s..e), buf[e] being its CR: token ":" OWS value OWS (RFC 9112 5). */
static simul_http_error field_line(const char *buf, size_t s, size_t e, simul_http_header *h)
{
    const unsigned char *u = (const unsigned char *)buf;
    if (ows(buf[s]))
        return SIMUL_HTTP_E_OBS_FOLD; /* also whitespace before the first field */
    size_t i = s;
    while (cls[u[i]] & C_TCHAR)
        i++;
    if (u[i] != ':') {
        if (ows(buf[i]) && i > s)
            return SIMUL_HTTP_E_SPACE_BEFORE_COLON;
        if (u[i] == '\r' && i < e)
            return SIMUL_HTTP_E_BARE_CR;
        return SIMUL_HTTP_E_HEADER_NAME; /* a non-token byte, or no colon */
    }
    if (i == s)
        return SIMUL_HTTP_E_HEADER_NAME; /* empty name */
    h->name = (simul_http_span){(uint32_t)s, (uint32_t)(i - s)};
    i++;
    while (ows(buf[i]))
        i++;
    size_t v = i;
    while (i + 8 <= e && value8(load8(u + i)))
        i += 8;
    while (cls[u[i]] & C_VALUE)
        i++;
    if (i != e)
        return u[i] == '\r' ? SIMUL_HTTP_E_BARE_CR : SIMUL_HTTP_E_HEADER_VALUE;
    while (i > v && ows(buf[i - 1]))
        i--;
    h->value = (simul_http_span){(uint32_t)v, (uint32_t)(i - v)};
    return SIMUL_HTTP_OK;
}

/* Content-Length: 1*DIGIT, once; saturates at UINT64_MAX (over any limit anyway). */
static simul_http_error content_length(simul_http_parser *p, const char *v, size_t n)
{
    if (p->priv_.flags & F_CL)
        return SIMUL_HTTP_E_CL_DUPLICATE;
    p->priv_.flags |= F_CL;
    if (memchr(v, ',', n))
        return SIMUL_HTTP_E_CL_LIST;
    if (n == 0)
        return SIMUL_HTTP_E_CL_INVALID;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned d = (unsigned char)v[i] - '0';
        if (d > 9)
            return SIMUL_HTTP_E_CL_INVALID;
        x = x > (UINT64_MAX - d) / 10 ? UINT64_MAX : x * 10 + d;
    }
    p->head.content_length = x;
    return SIMUL_HTTP_OK;
}

/* Transfer-Encoding: 1#token (a coding with parameters is not one we decode: rejected as
 * malformed). Several fields make one list, so the flags carry over. */
static simul_http_error transfer_encoding(simul_http_parser *p, const char *v, size_t n)
{
    const unsigned char *u = (const unsigned char *)v;
    uint32_t f = p->priv_.flags | F_TE;
    size_t i = 0;
    for (;;) {
        size_t t = i;
        while (i < n && (cls[u[i]] & C_TCHAR))
            i++;
        if (i == t)
            return SIMUL_HTTP_E_TE_INVALID;
        if (f & F_TE_LAST_CHUNKED)
            f |= F_TE_CHUNKED_EARLY;
        if (TOKEN_IS(v + t, i - t, "chunked"))
            f |= F_TE_LAST_CHUNKED;
        else
            f = (f & ~(uint32_t)F_TE_LAST_CHUNKED) | F_TE_OTHER;
        while (i < n && ows(v[i]))
            i++;
        if (i == n)
            break;
        if (v[i] != ',')
            return SIMUL_HTTP_E_TE_INVALID;
        i++;
        while (i < n && ows(v[i]))
            i++;
    }
    p->priv_.flags = f;
    return SIMUL_HTTP_OK;
}

/* Connection: a list of options; close, keep-alive and upgrade matter here. */
static void connection(simul_http_parser *p, const char *v, size_t n)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && (ows(v[i]) || v[i] == ','))
            i++;
        size_t t = i;
        while (i < n && v[i] != ',' && !ows(v[i]))
            i++;
        if (TOKEN_IS(v + t, i - t, "close"))
            p->priv_.flags |= F_CONN_CLOSE;
        else if (TOKEN_IS(v + t, i - t, "keep-alive"))
            p->priv_.flags |= F_CONN_KEEPALIVE;
        else if (TOKEN_IS(v + t, i - t, "upgrade"))
            p->priv_.flags |= F_CONN_UPGRADE;
    }
}

/* The fields that decide framing and what the connection does next. */
static simul_http_error known_field(simul_http_parser *p, const char *buf, const simul_http_header *h)
{
    const char *n = buf + h->name.off, *v = buf + h->value.off;
    size_t vn = h->value.len;
    switch (h->name.len) {
    case 4:
        if (TOKEN_IS(n, 4, "host")) {
            if (p->priv_.flags & F_HOST)
                return SIMUL_HTTP_E_HOST_DUPLICATE;
            p->priv_.flags |= F_HOST;
        }
        break;
    case 6:
        /* (ignored in HTTP/1.0: RFC 9110 10.1.1) */
        if (TOKEN_IS(n, 6, "expect") && TOKEN_IS(v, vn, "100-continue"))
            p->head.expect_continue = p->head.version_minor == 1;
        break;
    case 7:
        if (TOKEN_IS(n, 7, "upgrade") && vn > 0)
            p->priv_.flags |= F_UPGRADE;
        break;
    case 10:
        if (TOKEN_IS(n, 10, "connection"))
            connection(p, v, vn);
        break;
    case 14:
        if (TOKEN_IS(n, 14, "content-length"))
            return content_length(p, v, vn);
        break;
    case 17:
        if (TOKEN_IS(n, 17, "transfer-encoding"))
            return transfer_encoding(p, v, vn);
        break;
    }
    return SIMUL_HTTP_OK;
}

/* The head is complete: decide the framing (RFC 9112 6.1-6.3, strictly). */
static simul_http_error head_done(simul_http_parser *p)
{
    uint32_t f = p->priv_.flags;
    simul_http_head *h = &p->head;
    bool response = p->priv_.mode == SIMUL_HTTP_RESPONSE;
    if (h->version_minor == 1 && !(f & F_HOST) && !response)
        return SIMUL_HTTP_E_HOST_MISSING;
    /* RFC 9112 6.3: these responses have no body whatever the fields say (the fields are still
     * checked: a malformed one is as suspect here as anywhere). */
    unsigned st = h->status;
    bool tunnel = response && p->priv_.request == REQ_CONNECT && st / 100 == 2;
    bool bodiless = response && (st < 200 || st == 204 || st == 304 ||
                                 p->priv_.request == REQ_HEAD || tunnel);
    if (f & F_TE) {
        if (f & F_CL)
            return SIMUL_HTTP_E_TE_AND_CL;
        if (h->version_minor == 0)
            return SIMUL_HTTP_E_TE_HTTP10;
        if (!(f & F_TE_LAST_CHUNKED))
            return SIMUL_HTTP_E_TE_NOT_CHUNKED;
        if (f & F_TE_CHUNKED_EARLY)
            return SIMUL_HTTP_E_TE_INVALID;
        if (f & F_TE_OTHER)
            return SIMUL_HTTP_E_TE_UNSUPPORTED;
        h->framing = SIMUL_HTTP_BODY_CHUNKED;
    } else if (f & F_CL) {
        if (h->content_length > p->priv_.limits.max_body && !bodiless)
            return SIMUL_HTTP_E_BODY_TOO_LARGE;
        h->framing = SIMUL_HTTP_BODY_LENGTH;
    }
    h->keep_alive = !(f & F_CONN_CLOSE) && (h->version_minor == 1 || (f & F_CONN_KEEPALIVE));
    h->upgrade = ((f & F_CONN_UPGRADE) && (f & F_UPGRADE)) || (f & F_CONNECT);
    if (response) {
        if (bodiless) {
            h->framing = SIMUL_HTTP_BODY_NONE; /* (content_length: a resource's size, if any) */
        } else if (!(f & (F_TE | F_CL))) {
            h->framing = SIMUL_HTTP_BODY_CLOSE;
            h->keep_alive = false;
        }
        h->upgrade = st == 101 || tunnel;
        if (h->upgrade)
            h->keep_alive = false;
    }
    return SIMUL_HTTP_OK;
}

/* Field lines from priv_.scan up to the empty line, in a section that starts at `sect` (for its
 * byte limit). Returns an error, or OK with *end = 0 (need more: priv_.scan remembers the first
 * unread line) or *end = the index just past the empty line. */
static simul_http_error fields(simul_http_parser *p, const char *buf, size_t len, size_t sect,
                               bool trailer, size_t *end)
{
    size_t s = p->priv_.scan;
    size_t limit = sect + p->priv_.limits.max_header_bytes;
    uint32_t used = p->head.nheaders + p->head.ntrailers;
    for (;;) {
        long l = find_lf(buf, len, s, &p->priv_.searched, limit);
        if (l == -1) {
            p->priv_.scan = (uint32_t)s;
            *end = 0;
            return SIMUL_HTTP_OK;
        }
        if (l == -2)
            return SIMUL_HTTP_E_HEADERS_TOO_LARGE;
        p->priv_.searched = 0;
        if ((size_t)l == s || buf[l - 1] != '\r')
            return SIMUL_HTTP_E_BARE_LF;
        if ((size_t)l - 1 == s) {
            *end = (size_t)l + 1;
            return SIMUL_HTTP_OK;
        }
        if (used == p->priv_.cap)
            return SIMUL_HTTP_E_TOO_MANY_HEADERS;
        simul_http_header *h = &p->priv_.headers[used];
        simul_http_error e = field_line(buf, s, (size_t)l - 1, h);
        if (e)
            return e;
        if (trailer) {
            p->head.ntrailers++;
        } else {
            if ((e = known_field(p, buf, h)))
                return e;
            p->head.nheaders++;
        }
        used++;
        s = (size_t)l + 1;
    }
}

/* The head, from buf[0]: nothing is consumed before it is whole. */
static int read_head(simul_http_parser *p, const char *buf, size_t len, size_t *consumed)
{
    simul_http_error e;
    while (!(p->priv_.flags & F_REQLINE)) {
        size_t s = p->priv_.scan;
        long l = find_lf(buf, len, s, &p->priv_.searched, p->priv_.limits.max_request_line);
        if (l == -1)
            return SIMUL_HTTP_NEED_MORE;
        if (l == -2)
            return fail(p, p->priv_.mode == SIMUL_HTTP_RESPONSE ? SIMUL_HTTP_E_STATUS_LINE_TOO_LONG
                                                                : SIMUL_HTTP_E_URI_TOO_LONG,
                        consumed);
        p->priv_.searched = 0;
        if ((size_t)l == s || buf[l - 1] != '\r')
            return fail(p, SIMUL_HTTP_E_BARE_LF, consumed);
        if (p->priv_.mode == SIMUL_HTTP_RESPONSE) {
            /* No empty lines before a response: one would mean the body before it was longer
             * than its framing said. */
            if ((e = status_line(p, buf, s, (size_t)l - 1)))
                return fail(p, e, consumed);
            p->priv_.flags |= F_REQLINE;
            p->priv_.section = (uint32_t)l + 1;
        } else if ((size_t)l - 1 != s) {
            /* An empty line before the request is skipped (RFC 9112 2.2), within the line's
             * limit. */
            if ((e = request_line(p, buf, s, (size_t)l - 1)))
                return fail(p, e, consumed);
            p->priv_.flags |= F_REQLINE;
            p->priv_.section = (uint32_t)l + 1;
        }
        p->priv_.scan = (uint32_t)l + 1;
    }
    size_t end;
    if ((e = fields(p, buf, len, p->priv_.section, false, &end)))
        return fail(p, e, consumed);
    if (!end)
        return SIMUL_HTTP_NEED_MORE;
    if ((e = head_done(p)))
        return fail(p, e, consumed);
    p->head.base = buf;
    p->head.head_len = (uint32_t)end;
    switch (p->head.framing) {
    case SIMUL_HTTP_BODY_CHUNKED:
        p->priv_.state = ST_CHUNK_SIZE;
        p->priv_.searched = 0;
        break;
    case SIMUL_HTTP_BODY_LENGTH:
        p->priv_.remaining = p->head.content_length;
        p->priv_.state = p->priv_.remaining ? ST_BODY_LENGTH : ST_END;
        break;
    case SIMUL_HTTP_BODY_CLOSE:
        p->priv_.state = ST_BODY_CLOSE;
        break;
    default:
        p->priv_.state = ST_END;
    }
    *consumed = end;
    return SIMUL_HTTP_HEAD;
}

static unsigned hexval(unsigned char c)
{
    return c <= '9' ? (unsigned)(c - '0') : (unsigned)(c | 0x20) - 'a' + 10;
}

/* An error at u[i] in a line whose CR is at e: a CR before the end is a bare CR. */
static simul_http_error or_bare_cr(const unsigned char *u, size_t i, size_t e, simul_http_error e2)
{
    return u[i] == '\r' && i < e ? SIMUL_HTTP_E_BARE_CR : e2;
}

/* A chunk-size line buf[0..e), buf[e] being its CR (RFC 9112 7.1, 7.1.1):
 *   1*HEXDIG *( BWS ";" BWS token [ BWS "=" BWS ( token / quoted-string ) ] )
 * Extensions are checked and dropped; nothing else may follow the size. */
static simul_http_error chunk_line(const char *buf, size_t e, uint64_t *size)
{
    const unsigned char *u = (const unsigned char *)buf;
    size_t i = 0;
    uint64_t x = 0;
    while (cls[u[i]] & C_HEX) {
        if (x >> 60)
            return SIMUL_HTTP_E_CHUNK_SIZE_OVERFLOW;
        x = x << 4 | hexval(u[i]);
        i++;
    }
    if (i == 0)
        return or_bare_cr(u, 0, e, SIMUL_HTTP_E_CHUNK_SIZE);
    *size = x;
    simul_http_error junk = SIMUL_HTTP_E_CHUNK_SIZE; /* what a stray byte is, here */
    for (;;) {
        size_t w = i;
        while (ows(buf[i]))
            i++;
        if (i == e)
            return i == w ? SIMUL_HTTP_OK : junk; /* no whitespace before the CRLF */
        if (u[i] != ';')
            return or_bare_cr(u, i, e, junk);
        junk = SIMUL_HTTP_E_CHUNK_EXT;
        i++;
        while (ows(buf[i]))
            i++;
        size_t t = i;
        while (cls[u[i]] & C_TCHAR)
            i++;
        if (i == t)
            return or_bare_cr(u, i, e, junk);
        size_t after = i;
        while (ows(buf[i]))
            i++;
        if (u[i] != '=') {
            i = after;
            continue;
        }
        i++;
        while (ows(buf[i]))
            i++;
        if (u[i] == '"') {
            for (i++;;) {
                if (u[i] == '"') {
                    i++;
                    break;
                }
                if (u[i] == '\\' && (cls[u[i + 1]] & C_VALUE)) {
                    i += 2;
                } else if (cls[u[i]] & C_QDTEXT) {
                    i++;
                } else {
                    return or_bare_cr(u, u[i] == '\\' ? i + 1 : i, e, junk);
                }
            }
        } else {
            t = i;
            while (cls[u[i]] & C_TCHAR)
                i++;
            if (i == t)
                return or_bare_cr(u, i, e, junk);
        }
    }
}

/* After a message: the next one, or nothing more if this one closes the connection. */
static void message_ended(simul_http_parser *p)
{
    if (p->priv_.mode == SIMUL_HTTP_RESPONSE) {
        if (p->head.status < 200 && p->head.status != 101) {
            p->priv_.state = ST_START; /* an interim response: the final one follows */
            return;
        }
        p->priv_.request = REQ_OTHER; /* the next response answers another request */
        if (p->head.upgrade) {
            p->priv_.state = ST_CLOSED; /* the bytes after belong to another protocol */
            return;
        }
    }
    p->priv_.state = p->head.keep_alive ? ST_START : ST_CLOSED;
}

int simul_http_parser_feed(simul_http_parser *p, const char *buf, size_t len, size_t *consumed)
{
    size_t off = 0;
    simul_http_error e;
    *consumed = 0;
    for (;;) {
        switch (p->priv_.state) {
        case ST_START: {
            simul_http_head *h = &p->head;
            memset(h, 0, sizeof *h);
            h->headers = p->priv_.headers;
            p->body = NULL;
            p->body_len = 0;
            p->priv_.flags = 0;
            p->priv_.scan = p->priv_.searched = p->priv_.section = 0;
            p->priv_.remaining = p->priv_.total = 0;
            p->priv_.state = ST_HEAD;
        }
            /* fall through */
        case ST_HEAD:
            return read_head(p, buf, len, consumed);

        case ST_BODY_LENGTH:
        case ST_CHUNK_DATA: {
            if (off == len) {
                *consumed = off;
                return SIMUL_HTTP_NEED_MORE;
            }
            size_t n = len - off;
            if (n > p->priv_.remaining)
                n = (size_t)p->priv_.remaining;
            p->body = buf + off;
            p->body_len = n;
            p->priv_.remaining -= n;
            off += n;
            if (!p->priv_.remaining)
                p->priv_.state = p->priv_.state == ST_BODY_LENGTH ? ST_END : ST_CHUNK_CR;
            *consumed = off;
            return SIMUL_HTTP_BODY;
        }

        case ST_BODY_CLOSE:
            if (off == len) {
                *consumed = off;
                return SIMUL_HTTP_NEED_MORE;
            }
        {
            /* Up to the limit, then the error: the same events however the bytes are split. */
            uint64_t room = p->priv_.limits.max_body - p->priv_.total;
            if (room == 0)
                return fail(p, SIMUL_HTTP_E_BODY_TOO_LARGE, consumed);
            size_t n = (uint64_t)(len - off) > room ? (size_t)room : len - off;
            p->priv_.total += n;
            p->body = buf + off;
            p->body_len = n;
            *consumed = off + n;
            return SIMUL_HTTP_BODY;
        }

        case ST_CHUNK_SIZE: {
            const char *b = buf + off;
            long l = find_lf(b, len - off, 0, &p->priv_.searched, p->priv_.limits.max_chunk_line);
            if (l == -1) {
                *consumed = off;
                return SIMUL_HTTP_NEED_MORE;
            }
            if (l == -2)
                return fail(p, SIMUL_HTTP_E_CHUNK_LINE_TOO_LONG, consumed);
            p->priv_.searched = 0;
            if (l == 0 || b[l - 1] != '\r')
                return fail(p, SIMUL_HTTP_E_BARE_LF, consumed);
            uint64_t size = 0;
            if ((e = chunk_line(b, (size_t)l - 1, &size)))
                return fail(p, e, consumed);
            if (size > p->priv_.limits.max_body - p->priv_.total)
                return fail(p, SIMUL_HTTP_E_BODY_TOO_LARGE, consumed);
            p->priv_.total += size;
            off += (size_t)l + 1;
            if (size) {
                p->priv_.remaining = size;
                p->priv_.state = ST_CHUNK_DATA;
            } else {
                p->priv_.scan = 0;
                p->priv_.state = ST_TRAILERS;
            }
            continue;
        }

        case ST_CHUNK_CR:
        case ST_CHUNK_LF: {
            if (off == len) {
                *consumed = off;
                return SIMUL_HTTP_NEED_MORE;
            }
            char c = buf[off];
            if (p->priv_.state == ST_CHUNK_CR) {
                if (c != '\r')
                    return fail(p, c == '\n' ? SIMUL_HTTP_E_BARE_LF : SIMUL_HTTP_E_CHUNK_DATA_CRLF,
                                consumed);
                p->priv_.state = ST_CHUNK_LF;
            } else {
                if (c != '\n')
                    return fail(p, SIMUL_HTTP_E_BARE_CR, consumed);
                p->priv_.state = ST_CHUNK_SIZE;
            }
            off++;
            continue;
        }

        case ST_TRAILERS: {
            size_t end;
            if ((e = fields(p, buf + off, len - off, 0, true, &end)))
                return fail(p, e, consumed);
            if (!end) {
                *consumed = off;
                return SIMUL_HTTP_NEED_MORE;
            }
            p->head.trailer_base = buf + off;
            p->head.trailers = p->priv_.headers + p->head.nheaders;
            message_ended(p);
            *consumed = off + end;
            return SIMUL_HTTP_END;
        }

        case ST_END:
            message_ended(p);
            *consumed = off;
            return SIMUL_HTTP_END;

        case ST_CLOSED:
            if (off < len)
                return fail(p, SIMUL_HTTP_E_AFTER_CLOSE, consumed);
            return SIMUL_HTTP_NEED_MORE;

        default: /* ST_ERROR: the error sticks */
            return fail(p, p->error, consumed);
        }
    }
}

int simul_http_parser_response_to(simul_http_parser *p, const char *method)
{
    if (!p || !method || p->priv_.mode != SIMUL_HTTP_RESPONSE)
        return -EINVAL;
    uint8_t st = p->priv_.state;
    if (st != ST_START && !(st == ST_HEAD && p->priv_.scan == 0 && p->priv_.searched == 0 &&
                            !(p->priv_.flags & F_REQLINE)))
        return -EINVAL;
    p->priv_.request = strcmp(method, "HEAD") == 0      ? REQ_HEAD
                       : strcmp(method, "CONNECT") == 0 ? REQ_CONNECT
                                                        : REQ_OTHER;
    return 0;
}

int simul_http_parser_eof(simul_http_parser *p)
{
    size_t ignored;
    switch (p->priv_.state) {
    case ST_START:
    case ST_CLOSED:
        return SIMUL_HTTP_NEED_MORE;
    case ST_HEAD:
        if (p->priv_.scan == 0 && p->priv_.searched == 0 && !(p->priv_.flags & F_REQLINE))
            return SIMUL_HTTP_NEED_MORE; /* not a byte of a next message was seen */
        return fail(p, SIMUL_HTTP_E_TRUNCATED, &ignored);
    case ST_BODY_CLOSE:
        message_ended(p); /* (keep_alive is false: ST_CLOSED) */
        return SIMUL_HTTP_END;
    case ST_ERROR:
        return fail(p, p->error, &ignored);
    default:
        return fail(p, SIMUL_HTTP_E_TRUNCATED, &ignored);
    }
}

const char *simul_http_head_get(const simul_http_head *h, const char *name, size_t *len)
{
    size_t n = strlen(name);
    for (uint32_t i = 0; i < h->nheaders; i++) {
        const simul_http_header *f = &h->headers[i];
        if (f->name.len != n)
            continue;
        const char *s = h->base + f->name.off;
        size_t k = 0;
        while (k < n && ((unsigned char)s[k] | 0x20) == ((unsigned char)name[k] | 0x20))
            k++;
        if (k == n) {
            if (len)
                *len = f->value.len;
            return h->base + f->value.off;
        }
    }
    return NULL;
}
