/* simul/redis.h — libsimul-redis (pkg-config simul-redis, CMake simul::redis).
 * This section: the RESP codec, pure functions over bytes (no sockets, no loop): a resumable
 * RESP2/RESP3 reply parser that builds each reply in one arena, and a command encoder that
 * appends binary-safe argv to a growable buffer. The client (connection, pipelining, pub/sub)
 * comes in a later section of this header. */
#ifndef SIMUL_REDIS_H
#define SIMUL_REDIS_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

/* ---------------------------------------------------------------------------------------------
 * Replies
 * ------------------------------------------------------------------------------------------- */

typedef enum simul_redis_type {
    SIMUL_REDIS_STATUS = 1, /* +simple string: str, len */
    SIMUL_REDIS_ERROR,      /* -simple error or !blob error: str, len ("ERR ...") */
    SIMUL_REDIS_INTEGER,    /* :integer: integer */
    SIMUL_REDIS_STRING,     /* $bulk string: str, len (binary-safe) */
    SIMUL_REDIS_NIL,        /* $-1, *-1 (RESP2) or _ (RESP3) */
    SIMUL_REDIS_ARRAY,      /* *array: elem[0..len) */
    SIMUL_REDIS_MAP,        /* %map: elem[0..len), key i = elem[2i], value i = elem[2i+1] */
    SIMUL_REDIS_SET,        /* ~set: elem[0..len) */
    SIMUL_REDIS_PUSH,       /* >push (out-of-band, e.g. pub/sub messages): elem[0..len) */
    SIMUL_REDIS_ATTRIBUTE,  /* |attribute: a map-shaped node found only in reply->attrs */
    SIMUL_REDIS_BOOL,       /* #t / #f: integer is 1 or 0 */
    SIMUL_REDIS_DOUBLE,     /* ,double: dval, and its text in str, len (",inf" -> INFINITY) */
    SIMUL_REDIS_BIGNUM,     /* (big number: its decimal text in str, len */
    SIMUL_REDIS_VERBATIM,   /* =verbatim string: str, len (after "txt:"), format in vtype */
} simul_redis_type;

/* One node of a reply tree. Read-only for the caller; every node and every string of a reply
 * lives in that reply's arena and is valid until simul_redis_reply_free() of the root. Every str
 * is NUL-terminated (after len bytes), which helps with text but does not make a binary string
 * a C string. An aggregate's children are contiguous: elem[0..len). For MAP and ATTRIBUTE, len
 * counts nodes (two per pair), as hiredis' `elements` does; simul_redis_reply_len() says pairs.
 *
 * Memory: one arena per reply, chosen by measurement against per-node allocation (hiredis'
 * way; bench/resp_bench.c, heap counts by valgrind): a small reply costs one malloc (hiredis: two),
 * a 1000-element LRANGE about eight (hiredis: 2002), and freeing is one walk over the blocks.
 * Zero-copy views into the caller's buffer were not taken: a reply split across reads would pin
 * and force contiguous the client's read buffer (a 64 MB value with it); copying a bulk once, as
 * it arrives, is cheap beside that. A body not yet received is not allocated in advance: its
 * memory grows with the bytes that arrive, so a lying length costs nothing.
 *
 * Attributes (RESP3 `|`): an attribute is attached to the value that follows it, at any depth,
 * as that value's `attrs` (an ATTRIBUTE node); it is not counted as an element of the enclosing
 * aggregate. Two attributes in a row (with no value between) are refused with -EPROTO. */
typedef struct simul_redis_reply simul_redis_reply;
struct simul_redis_reply {
    uint8_t type;  /* simul_redis_type */
    uint8_t flags; /* internal */
    char vtype[4]; /* VERBATIM: the 3-letter format ("txt", "mkd"), NUL-terminated */
    size_t len;    /* strings: bytes; aggregates: nodes in elem */
    union {
        long long integer; /* INTEGER; BOOL (0 or 1) */
        double dval;       /* DOUBLE */
    };
    union {
        const char *str;         /* STATUS, ERROR, STRING, DOUBLE, BIGNUM, VERBATIM */
        simul_redis_reply *elem; /* ARRAY, MAP, SET, PUSH, ATTRIBUTE */
    };
    simul_redis_reply *attrs; /* the attribute that preceded this value, or NULL */
};

/* Frees a whole reply tree (one arena: one or a few free() calls). r must be a root returned by
 * simul_redis_parse(); NULL is ignored. */
void simul_redis_reply_free(simul_redis_reply *r);

/* Typed access. Each takes NULL or a node of any type and never fails: a wrong type or an index
 * out of range gives the neutral value (0, NULL). */
simul_redis_type simul_redis_reply_type(const simul_redis_reply *r); /* 0 for NULL */
/* INTEGER, BOOL: the value; DOUBLE: truncated toward zero (saturated); others 0. */
long long simul_redis_reply_integer(const simul_redis_reply *r);
/* DOUBLE: the value; INTEGER: converted; others 0.0. */
double simul_redis_reply_double(const simul_redis_reply *r);
/* STATUS, ERROR, STRING, DOUBLE, BIGNUM, VERBATIM: the bytes and (if len != NULL) their count;
 * others NULL (and *len = 0). */
const char *simul_redis_reply_str(const simul_redis_reply *r, size_t *len);
/* Aggregates: how many elements (for MAP and ATTRIBUTE: how many pairs); others 0. */
size_t simul_redis_reply_len(const simul_redis_reply *r);
/* ARRAY, SET, PUSH: element i; MAP, ATTRIBUTE: node i (elem[i]); NULL if out of range. */
const simul_redis_reply *simul_redis_reply_elem(const simul_redis_reply *r, size_t i);
/* MAP, ATTRIBUTE: key and value of pair i; NULL if out of range or not a map. */
const simul_redis_reply *simul_redis_reply_map_key(const simul_redis_reply *r, size_t i);
const simul_redis_reply *simul_redis_reply_map_value(const simul_redis_reply *r, size_t i);
/* MAP, ATTRIBUTE: the value whose key is a string (STATUS, STRING, VERBATIM) equal to key;
 * NULL if none. Linear. */
const simul_redis_reply *simul_redis_reply_map_get(const simul_redis_reply *r, const char *key);

/* ---------------------------------------------------------------------------------------------
 * Parser
 * ------------------------------------------------------------------------------------------- */

/* Limits, each checked as soon as the header that declares it is read (nothing is allocated
 * for an oversized value). A reply over one of them fails with -EMSGSIZE. Zero means default. */
typedef struct simul_redis_limits {
    size_t max_bulk;     /* bytes of one string: bulk, blob error, verbatim, or one simple line
                            (status, error, double, big number); default 512 MiB (Redis'
                            proto-max-bulk-len) */
    size_t max_elements; /* elements declared by one aggregate header (pairs for a map or an
                            attribute); default 16 Mi */
    unsigned max_depth;  /* nesting of aggregates (an attribute counts as one): a top-level array
                            is depth 1; default 32, at most SIMUL_REDIS_DEPTH_MAX */
    size_t max_reply;    /* bytes of one whole reply on the wire (CRLFs included); default 1 GiB */
} simul_redis_limits;

#define SIMUL_REDIS_DEPTH_MAX 256

typedef struct simul_redis_parser simul_redis_parser;

/* Makes a parser with these limits (NULL: every default). Returns 0 or -ENOMEM, -EINVAL (a
 * max_depth over SIMUL_REDIS_DEPTH_MAX). One parser per connection. */
int simul_redis_parser_new(simul_redis_parser **out, const simul_redis_limits *limits);
/* Frees the parser and the reply it was building, if any. NULL is ignored. */
void simul_redis_parser_free(simul_redis_parser *p);

/* Feeds bytes to the parser and stops at the end of the first complete reply.
 * Returns how many bytes of data it consumed (every byte is either consumed or left for the next
 * call: keep the unconsumed ones and pass them again, followed by what arrives next) and sets
 * *reply to the completed reply (the caller owns it: simul_redis_reply_free), or to NULL when all
 * of data was consumed and the reply is not complete yet. Bytes may be split anywhere; the parser
 * keeps its place (a bulk string is copied once into the reply as it arrives, a header line is
 * never scanned twice), so feeding a reply whole, byte by byte or split anywhere gives the same
 * tree.
 * Errors (*reply NULL): -EPROTO (malformed; simul_redis_parser_error() says why), -EMSGSIZE (over
 * a limit), -ENOMEM. An error is sticky: the stream is out of sync, every later call returns it
 * again, and the connection must be closed.
 * Streamed RESP3 values (which Redis 7 does not send) are read too and give the same tree as their
 * sized form: a streamed string ($? then ;<n> chunks up to ;0) is one STRING, max_bulk bounding
 * its total; a streamed array, map, set or push (*? %? ~? >? up to '.') is one aggregate whose
 * elements max_elements bounds as they come. Other streamed forms (=? !? |?) are -EPROTO. */
ssize_t simul_redis_parse(simul_redis_parser *p, const void *data, size_t len,
                          simul_redis_reply **reply);
/* Why the parser failed (static text), or NULL while it has not. */
const char *simul_redis_parser_error(const simul_redis_parser *p);

/* ---------------------------------------------------------------------------------------------
 * Command encoder
 * ------------------------------------------------------------------------------------------- */

/* A growable byte buffer the encoder appends to. Zero-initialise it ({0}); data is malloc'd
 * (free it with simul_redis_buf_free) and may move when it grows. The caller may reset len to 0
 * (or consume from the front itself) between uses; the capacity stays. */
typedef struct simul_redis_buf {
    char *data;
    size_t len, cap;
} simul_redis_buf;

/* Makes room for `more` bytes after len. 0 or -ENOMEM. */
int simul_redis_buf_reserve(simul_redis_buf *b, size_t more);
void simul_redis_buf_free(simul_redis_buf *b);

/* Appends one command, argv[0..argc) as a RESP array of bulk strings. argvlen[i] is the length
 * of argv[i] (binary-safe); argvlen NULL means every argv[i] is a C string. One reservation,
 * no allocation per argument. Returns the bytes appended, or -EINVAL (argc < 1), -ENOMEM; on
 * error nothing is appended. */
ssize_t simul_redis_encode(simul_redis_buf *b, int argc, const char *const *argv,
                           const size_t *argvlen);

/* Appends one command from a printf-like format, as hiredis' redisFormatCommand: the format is
 * split on spaces (one or more ' ' end an argument; leading and trailing spaces are ignored) and
 * every other character belongs to the current argument; a conversion's output never splits an
 * argument, so "SET %s %b" always gives three arguments whatever the values hold, and an empty
 * %s or %b gives an empty argument. Conversions: %s (C string), %b (const void *, size_t: binary),
 * %d %i (int), %u (unsigned), %ld %lu, %lld %llu, %zu, %f (double, printed as "%.17g", which
 * reads back exactly; inf, -inf, nan print as such) and %% (a '%'). The bytes are those of
 * simul_redis_encode() on the same argv. Returns the bytes appended, or -EINVAL (an unknown
 * conversion, or no argument), -ENOMEM; on error nothing is appended. */
ssize_t simul_redis_encodef(simul_redis_buf *b, const char *fmt, ...);
ssize_t simul_redis_vencodef(simul_redis_buf *b, const char *fmt, va_list ap);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif
#ifdef __cplusplus
}
#endif

#endif /* SIMUL_REDIS_H */
