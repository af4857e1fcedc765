/* resp_parse.c — the RESP2/RESP3 reply parser and the reply arena. The idea: the parser's whole
 * state is a stack of open aggregates plus its place in the current header line or bulk body, so
 * a new chunk continues exactly where the last one stopped and no byte is looked at twice; every
 * node and string of a reply goes into one arena (a few malloc'd blocks), freed with one call. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <simul/redis.h>

/* ---- the arena ----------------------------------------------------------------------------- */

/* A reply's blocks form a list headed by the first one, whose data begins with the root node: so
 * the root alone finds its arena (simul_redis_reply_free). */
typedef struct block {
    struct block *next;
    size_t cap, used; /* bytes of data */
    _Alignas(16) unsigned char data[];
} block;

#define FLAG_ROOT 1u
#define NODE_SIZE sizeof(simul_redis_reply)
#define FIRST_BLOCK 512u            /* a small reply (+OK, :1, a short bulk) fits: one malloc */
#define BLOCK_MAX ((size_t)1 << 20) /* blocks double up to this */
#define ALIGN_UP(n) (((n) + 7u) & ~(size_t)7u)

typedef struct frame {
    simul_redis_reply *node; /* the open aggregate */
    size_t want;             /* nodes it declared (two per pair for a map); STREAMED: until '.' */
    size_t idx;              /* nodes completed so far */
    size_t cap;              /* nodes allocated in node->elem */
} frame;

#define STREAMED SIZE_MAX

enum { ST_START, ST_LINE, ST_BULK };

struct simul_redis_parser {
    simul_redis_limits lim;
    int err;
    const char *why;
    int state;
    /* the reply being built */
    block *first, *cur;
    simul_redis_reply *pending_attr; /* an attribute waiting for the value it belongs to */
    size_t reply_bytes;              /* wire bytes of this reply seen so far */
    unsigned depth;
    /* ST_LINE: the header line so far (type byte first, no CR), and whether a CR ended it */
    char *line;
    size_t line_len, line_cap;
    bool line_cr;
    /* ST_BULK: the string being filled: in the arena when the whole body was at hand, else in a
     * block of its own that grows as bytes arrive (so a header that declares 512 MiB and sends
     * nothing costs nothing) and joins the arena when the string is whole */
    simul_redis_reply *bulk;
    block *grow;
    size_t bulk_off, bulk_left;
    unsigned crlf_left;
    bool chunked;  /* inside a streamed string ($?): ';' chunks until ";0" */
    frame stack[]; /* lim.max_depth frames */
};

static void arena_free(block *b)
{
    while (b) {
        block *next = b->next;
        free(b);
        b = next;
    }
}

static block *block_new(size_t cap)
{
    if (cap > SIZE_MAX - sizeof(block))
        return NULL;
    block *b = malloc(sizeof(block) + cap);
    if (b) {
        b->next = NULL;
        b->cap = cap;
        b->used = 0;
    }
    return b;
}

/* n bytes, 8-aligned, from the reply's arena. A request bigger than half the next block gets a
 * block of its own (a 64 MiB bulk costs one exact malloc, and the small allocations after it go
 * on in the current block). */
static void *arena_alloc(simul_redis_parser *p, size_t n)
{
    n = ALIGN_UP(n);
    block *c = p->cur;
    if (n <= c->cap - c->used) {
        void *m = c->data + c->used;
        c->used += n;
        return m;
    }
    size_t next = c->cap * 2 > BLOCK_MAX ? BLOCK_MAX : c->cap * 2;
    bool own = n > next / 2;
    block *b = block_new(own ? n : next);
    if (!b)
        return NULL;
    b->used = n;
    b->next = p->first->next; /* after the first block, which must stay the head */
    p->first->next = b;
    if (!own)
        p->cur = b;
    return b->data;
}

void simul_redis_reply_free(simul_redis_reply *r)
{
    if (!r)
        return;
    if (!(r->flags & FLAG_ROOT))
        abort(); /* only a root returned by simul_redis_parse owns an arena */
    arena_free((block *)((unsigned char *)r - offsetof(block, data)));
}

/* ---- parser lifecycle ---------------------------------------------------------------------- */

int simul_redis_parser_new(simul_redis_parser **out, const simul_redis_limits *limits)
{
    simul_redis_limits lim = {0};
    if (limits)
        lim = *limits;
    if (!lim.max_bulk)
        lim.max_bulk = (size_t)512 << 20;
    if (!lim.max_elements)
        lim.max_elements = (size_t)16 << 20;
    if (!lim.max_depth)
        lim.max_depth = 32;
    if (!lim.max_reply)
        lim.max_reply = (size_t)1 << 30;
    if (lim.max_depth > SIMUL_REDIS_DEPTH_MAX)
        return -EINVAL;
    simul_redis_parser *p = calloc(1, sizeof(*p) + lim.max_depth * sizeof(frame));
    if (!p)
        return -ENOMEM;
    p->lim = lim;
    *out = p;
    return 0;
}

void simul_redis_parser_free(simul_redis_parser *p)
{
    if (!p)
        return;
    arena_free(p->first);
    free(p->grow);
    free(p->line);
    free(p);
}

const char *simul_redis_parser_error(const simul_redis_parser *p)
{
    return p->err ? p->why : NULL;
}

static int fail(simul_redis_parser *p, int err, const char *why)
{
    p->err = err;
    p->why = why;
    arena_free(p->first); /* the partial reply is of no use: the stream is out of sync */
    free(p->grow);
    p->grow = NULL;
    p->first = p->cur = NULL;
    p->pending_attr = NULL;
    p->depth = 0;
    p->chunked = false;
    return err;
}

/* ---- values -------------------------------------------------------------------------------- */

/* An int64 in decimal: an optional '-', then one or more digits, nothing else. */
static bool parse_ll(const char *s, size_t n, long long *out)
{
    bool neg = n > 0 && s[0] == '-';
    size_t i = neg;
    if (i == n)
        return false;
    unsigned long long v = 0, max = neg ? (unsigned long long)LLONG_MAX + 1 : LLONG_MAX;
    for (; i < n; i++) {
        unsigned d = (unsigned char)s[i] - '0';
        if (d > 9 || v > (max - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = neg ? (long long)(0 - v) : (long long)v; /* (0 - v) wraps to LLONG_MIN exactly */
    return true;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool word_ci(const char *s, size_t n, const char *w)
{
    size_t m = strlen(w);
    if (n != m)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((s[i] | 0x20) != w[i])
            return false;
    return true;
}

/* RESP3 double: [+-] then inf, infinity or nan (any case), or a decimal number with an optional
 * fraction and exponent. What strtod would take beyond that (hex, leading spaces) is refused. */
static bool valid_double(const char *s, size_t n)
{
    size_t i = 0;
    if (i < n && (s[i] == '+' || s[i] == '-'))
        i++;
    if (word_ci(s + i, n - i, "inf") || word_ci(s + i, n - i, "infinity") ||
        word_ci(s + i, n - i, "nan"))
        return true;
    size_t digits = 0;
    while (i < n && is_digit(s[i]))
        i++, digits++;
    if (i < n && s[i] == '.') {
        i++;
        while (i < n && is_digit(s[i]))
            i++, digits++;
    }
    if (!digits)
        return false;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t e = 0;
        while (i < n && is_digit(s[i]))
            i++, e++;
        if (!e)
            return false;
    }
    return i == n;
}

static bool valid_bignum(const char *s, size_t n)
{
    size_t i = n > 0 && (s[0] == '+' || s[0] == '-');
    if (i == n)
        return false;
    for (; i < n; i++)
        if (!is_digit(s[i]))
            return false;
    return true;
}

/* The slot of the value that begins now: the root, or the next child of the open aggregate
 * (growing its array when the declared count was not allocated at once). */
static simul_redis_reply *next_slot(simul_redis_parser *p)
{
    simul_redis_reply *slot;
    if (p->depth == 0) {
        slot = (simul_redis_reply *)p->first->data;
    } else {
        frame *f = &p->stack[p->depth - 1];
        if (f->idx == f->cap) {
            size_t cap = f->cap * 2 < f->want ? f->cap * 2 : f->want;
            simul_redis_reply *elem = arena_alloc(p, cap * NODE_SIZE);
            if (!elem)
                return NULL;
            memcpy(elem, f->node->elem, f->idx * NODE_SIZE);
            f->node->elem = elem;
            f->cap = cap;
        }
        slot = &f->node->elem[f->idx];
    }
    memset(slot, 0, NODE_SIZE);
    slot->attrs = p->pending_attr;
    p->pending_attr = NULL;
    return slot;
}

/* A value (scalar or whole aggregate) was completed in the current slot: count it in its parent
 * and close every aggregate that this completes. Returns 1 when the reply is whole. */
static int complete(simul_redis_parser *p)
{
    while (p->depth) {
        frame *f = &p->stack[p->depth - 1];
        if (++f->idx < f->want)
            return 0;
        p->depth--;
        if (f->node->type == SIMUL_REDIS_ATTRIBUTE) {
            p->pending_attr = f->node; /* belongs to the value that follows */
            return 0;
        }
    }
    return 1;
}

/* Copies a line's text into the slot as a NUL-terminated string. */
static int set_text(simul_redis_parser *p, simul_redis_reply *r, const char *s, size_t n)
{
    char *d = arena_alloc(p, n + 1);
    if (!d)
        return fail(p, -ENOMEM, "out of memory");
    memcpy(d, s, n);
    d[n] = '\0';
    r->str = d;
    r->len = n;
    return 0;
}

static bool is_type_byte(unsigned char t)
{
    return t != 0 && strchr("+-:$*_,#(!=%~>|", t) != NULL;
}

static int bulk_done(simul_redis_parser *p);

/* A whole header line: type byte t, content s[0..n) (CRLF excluded). `avail` is how many bytes
 * follow it in the caller's chunk (they size an aggregate's first allocation). Returns 1 when the
 * reply is whole, 0 to go on, or an error. */
static int process_line(simul_redis_parser *p, unsigned char t, const char *s, size_t n,
                        size_t avail)
{
    long long v;
    simul_redis_reply *r;
    int rc;
    switch (t) {
    case '+':
    case '-':
        if (memchr(s, '\n', n))
            return fail(p, -EPROTO, "LF without CR in a simple string");
        if (!(r = next_slot(p)))
            return fail(p, -ENOMEM, "out of memory");
        r->type = t == '+' ? SIMUL_REDIS_STATUS : SIMUL_REDIS_ERROR;
        if ((rc = set_text(p, r, s, n)) < 0)
            return rc;
        return complete(p);
    case ':':
        if (!parse_ll(s, n, &v))
            return fail(p, -EPROTO, "bad integer");
        if (!(r = next_slot(p)))
            return fail(p, -ENOMEM, "out of memory");
        r->type = SIMUL_REDIS_INTEGER;
        r->integer = v;
        return complete(p);
    case '_':
        if (n != 0)
            return fail(p, -EPROTO, "bad null");
        if (!(r = next_slot(p)))
            return fail(p, -ENOMEM, "out of memory");
        r->type = SIMUL_REDIS_NIL;
        return complete(p);
    case '#':
        if (n != 1 || (s[0] != 't' && s[0] != 'f'))
            return fail(p, -EPROTO, "bad boolean");
        if (!(r = next_slot(p)))
            return fail(p, -ENOMEM, "out of memory");
        r->type = SIMUL_REDIS_BOOL;
        r->integer = s[0] == 't';
        return complete(p);
    case ',':
        if (!valid_double(s, n))
            return fail(p, -EPROTO, "bad double");
        if (!(r = next_slot(p)))
            return fail(p, -ENOMEM, "out of memory");
        r->type = SIMUL_REDIS_DOUBLE;
        if ((rc = set_text(p, r, s, n)) < 0)
            return rc;
        r->dval = strtod(r->str, NULL); /* validated above; NUL-terminated copy */
        return complete(p);
    case '(':
        if (!valid_bignum(s, n))
            return fail(p, -EPROTO, "bad big number");
        if (!(r = next_slot(p)))
            return fail(p, -ENOMEM, "out of memory");
        r->type = SIMUL_REDIS_BIGNUM;
        if ((rc = set_text(p, r, s, n)) < 0)
            return rc;
        return complete(p);
    case '$':
    case '!':
    case '=':
    case ';': {
        if (n == 1 && s[0] == '?') {
            if (t != '$')
                return fail(p, -EPROTO, "only bulk strings may be streamed");
            if (!(r = next_slot(p)))
                return fail(p, -ENOMEM, "out of memory");
            r->type = SIMUL_REDIS_STRING;
            if (!(p->grow = block_new(64)))
                return fail(p, -ENOMEM, "out of memory");
            r->str = (char *)p->grow->data;
            p->bulk = r;
            p->bulk_off = 0;
            p->chunked = true;
            return 0;
        }
        if (!parse_ll(s, n, &v))
            return fail(p, -EPROTO, "bad string length");
        if (t == ';') { /* a chunk of a streamed string: appended to its growing block */
            if (v < 0)
                return fail(p, -EPROTO, "negative chunk length");
            if ((unsigned long long)v > p->lim.max_bulk - p->bulk_off)
                return fail(p, -EMSGSIZE, "string longer than the limit");
            if ((size_t)v + 2 > p->lim.max_reply - p->reply_bytes)
                return fail(p, -EMSGSIZE, "reply longer than the limit");
            if (v == 0) {
                p->chunked = false;
                return bulk_done(p);
            }
            p->reply_bytes += (size_t)v + 2;
            p->bulk_left = (size_t)v;
            p->crlf_left = 2;
            p->state = ST_BULK;
            return 0;
        }
        if (v == -1 && t == '$') {
            if (!(r = next_slot(p)))
                return fail(p, -ENOMEM, "out of memory");
            r->type = SIMUL_REDIS_NIL;
            return complete(p);
        }
        if (v < 0)
            return fail(p, -EPROTO, "negative string length");
        if ((unsigned long long)v > p->lim.max_bulk)
            return fail(p, -EMSGSIZE, "string longer than the limit");
        if ((size_t)v + 2 > p->lim.max_reply - p->reply_bytes)
            return fail(p, -EMSGSIZE, "reply longer than the limit");
        if (t == '=' && v < 4)
            return fail(p, -EPROTO, "verbatim string without its format");
        if (!(r = next_slot(p)))
            return fail(p, -ENOMEM, "out of memory");
        r->type = t == '$'   ? SIMUL_REDIS_STRING
                  : t == '!' ? SIMUL_REDIS_ERROR
                             : SIMUL_REDIS_VERBATIM;
        if ((size_t)v + 2 <= avail) {
            if (!(r->str = arena_alloc(p, (size_t)v + 1)))
                return fail(p, -ENOMEM, "out of memory");
        } else {
            size_t cap = avail * 2 > 16384 ? avail * 2 : 16384;
            if (!(p->grow = block_new(cap < (size_t)v + 1 ? cap : (size_t)v + 1)))
                return fail(p, -ENOMEM, "out of memory");
            r->str = (char *)p->grow->data;
        }
        r->len = (size_t)v;
        p->reply_bytes += (size_t)v + 2;
        p->bulk = r;
        p->bulk_off = 0;
        p->bulk_left = (size_t)v;
        p->crlf_left = 2;
        p->state = ST_BULK;
        return 0;
    }
    case '*':
    case '%':
    case '~':
    case '>':
    case '|': {
        bool streamed = n == 1 && s[0] == '?';
        if (streamed && t == '|')
            return fail(p, -EPROTO, "streamed attributes are not supported");
        if (streamed)
            v = 0; /* (checked below as an empty one; the elements are counted as they come) */
        else if (!parse_ll(s, n, &v))
            return fail(p, -EPROTO, "bad aggregate length");
        if (v == -1 && t == '*') {
            if (!(r = next_slot(p)))
                return fail(p, -ENOMEM, "out of memory");
            r->type = SIMUL_REDIS_NIL;
            return complete(p);
        }
        if (v < 0)
            return fail(p, -EPROTO, "negative aggregate length");
        if ((unsigned long long)v > p->lim.max_elements)
            return fail(p, -EMSGSIZE, "aggregate larger than the limit");
        if (p->depth >= p->lim.max_depth)
            return fail(p, -EMSGSIZE, "aggregates nested deeper than the limit");
        bool pairs = t == '%' || t == '|';
        if ((unsigned long long)v > SIZE_MAX / 2 / NODE_SIZE)
            return fail(p, -EMSGSIZE, "aggregate larger than the limit");
        size_t want = pairs ? (size_t)v * 2 : (size_t)v;
        if (t == '|') {
            if (p->pending_attr)
                return fail(p, -EPROTO, "two attributes in a row");
            if (!(r = arena_alloc(p, NODE_SIZE)))
                return fail(p, -ENOMEM, "out of memory");
            memset(r, 0, NODE_SIZE);
        } else if (!(r = next_slot(p))) {
            return fail(p, -ENOMEM, "out of memory");
        }
        r->type = t == '*'   ? SIMUL_REDIS_ARRAY
                  : t == '%' ? SIMUL_REDIS_MAP
                  : t == '~' ? SIMUL_REDIS_SET
                  : t == '>' ? SIMUL_REDIS_PUSH
                             : SIMUL_REDIS_ATTRIBUTE;
        r->len = want;
        if (streamed) {
            if (!(r->elem = arena_alloc(p, 16 * NODE_SIZE)))
                return fail(p, -ENOMEM, "out of memory");
            p->stack[p->depth++] = (frame){.node = r, .want = STREAMED, .idx = 0, .cap = 16};
            return 0;
        }
        if (want == 0) {
            if (t == '|') {
                p->pending_attr = r;
                return 0;
            }
            return complete(p);
        }
        /* Allocate what the bytes at hand can hold (an element takes 3 bytes at least), at least
         * 16: a reply that is all here gets its array at once, and a lying header alone cannot
         * make us allocate much. */
        size_t cap = avail / 3 > 16 ? avail / 3 : 16;
        if (cap > want)
            cap = want;
        if (!(r->elem = arena_alloc(p, cap * NODE_SIZE)))
            return fail(p, -ENOMEM, "out of memory");
        p->stack[p->depth++] = (frame){.node = r, .want = want, .idx = 0, .cap = cap};
        return 0;
    }
    case '.': { /* the end of a streamed aggregate (ST_START let it through only there) */
        frame *f = &p->stack[p->depth - 1];
        if (n != 0)
            return fail(p, -EPROTO, "bad end of a streamed aggregate");
        if (p->pending_attr)
            return fail(p, -EPROTO, "an attribute before the end of an aggregate");
        if (f->node->type == SIMUL_REDIS_MAP && f->idx % 2)
            return fail(p, -EPROTO, "a streamed map ended between a key and its value");
        f->node->len = f->idx;
        p->depth--;
        return complete(p);
    }
    default:
        return fail(p, -EPROTO, "unknown type byte");
    }
}

/* The end of a bulk body: a verbatim string's format prefix is split off. */
static int bulk_done(simul_redis_parser *p)
{
    simul_redis_reply *r = p->bulk;
    p->state = ST_START;
    ((char *)r->str)[r->len] = '\0';
    if (p->grow) { /* the string's own block joins the arena */
        p->grow->next = p->first->next;
        p->first->next = p->grow;
        p->grow = NULL;
    }
    if (r->type == SIMUL_REDIS_VERBATIM) {
        if (r->str[3] != ':')
            return fail(p, -EPROTO, "verbatim string without its format");
        memcpy(r->vtype, r->str, 3);
        r->vtype[3] = '\0';
        r->str += 4;
        r->len -= 4;
    }
    return complete(p);
}

static int line_append(simul_redis_parser *p, const char *s, size_t n)
{
    if (n > p->line_cap - p->line_len) {
        size_t cap = p->line_cap ? p->line_cap : 64;
        while (cap - p->line_len < n)
            cap *= 2;
        char *l = realloc(p->line, cap);
        if (!l)
            return fail(p, -ENOMEM, "out of memory");
        p->line = l;
        p->line_cap = cap;
    }
    memcpy(p->line + p->line_len, s, n);
    p->line_len += n;
    return 0;
}

/* A header line of `content` bytes (so far, or whole) is over a limit: checked the same way
 * whether the line came whole or in pieces, so both give the same verdict. */
static int line_too_long(simul_redis_parser *p, size_t content)
{
    if (content > p->lim.max_bulk)
        return fail(p, -EMSGSIZE, "line longer than the limit");
    if (content + 3 > p->lim.max_reply - p->reply_bytes)
        return fail(p, -EMSGSIZE, "reply longer than the limit");
    return 0;
}

ssize_t simul_redis_parse(simul_redis_parser *p, const void *data, size_t len,
                          simul_redis_reply **reply)
{
    const char *d = data;
    size_t pos = 0;
    int rc = 0;
    *reply = NULL;
    if (p->err)
        return p->err;
    while (pos < len) {
        switch (p->state) {
        case ST_START: {
            unsigned char t = (unsigned char)d[pos];
            if (p->chunked) {
                if (t != ';')
                    return fail(p, -EPROTO, "a streamed string without its next chunk");
            } else if (p->depth && p->stack[p->depth - 1].want == STREAMED && t != '|') {
                frame *f = &p->stack[p->depth - 1];
                size_t most = p->lim.max_elements;
                if (f->node->type == SIMUL_REDIS_MAP)
                    most = most > SIZE_MAX / 2 ? SIZE_MAX : most * 2;
                if (t != '.' && !is_type_byte(t))
                    return fail(p, -EPROTO, "unknown type byte");
                if (t != '.' && f->idx >= most)
                    return fail(p, -EMSGSIZE, "aggregate larger than the limit");
            } else if (!is_type_byte(t)) {
                return fail(p, -EPROTO, "unknown type byte");
            }
            if (!p->first) { /* a new reply: its arena, the root's slot at the head */
                if (!(p->first = p->cur = block_new(FIRST_BLOCK)))
                    return fail(p, -ENOMEM, "out of memory");
                p->cur->used = ALIGN_UP(NODE_SIZE);
                p->reply_bytes = 0;
            }
            const char *s = d + pos + 1, *end = d + len;
            const char *cr = memchr(s, '\r', (size_t)(end - s));
            size_t n = cr ? (size_t)(cr - s) : (size_t)(end - s);
            if ((rc = line_too_long(p, n)) < 0)
                return rc;
            if (!cr || cr + 1 == end) { /* the line goes on in a later chunk */
                p->line_len = 0;
                if ((rc = line_append(p, d + pos, 1 + n)) < 0)
                    return rc;
                p->line_cr = cr != NULL;
                p->state = ST_LINE;
                pos = len;
                break;
            }
            if (cr[1] != '\n')
                return fail(p, -EPROTO, "CR not followed by LF");
            pos += n + 3;
            p->reply_bytes += n + 3;
            rc = process_line(p, t, s, n, len - pos);
            if (rc == 0 && p->state == ST_BULK && !p->grow && !p->chunked) {
                /* The body and its CRLF are at hand (process_line put it in the arena only
                 * then): the common case, done without another turn of the loop. */
                size_t b = p->bulk_left;
                memcpy((char *)p->bulk->str, d + pos, b);
                if (d[pos + b] != '\r' || d[pos + b + 1] != '\n')
                    return fail(p, -EPROTO, "string not followed by CRLF");
                pos += b + 2;
                rc = bulk_done(p);
            }
            break;
        }
        case ST_LINE: {
            if (!p->line_cr) {
                const char *s = d + pos;
                const char *cr = memchr(s, '\r', len - pos);
                size_t n = cr ? (size_t)(cr - s) : len - pos;
                if ((rc = line_too_long(p, p->line_len - 1 + n)) < 0)
                    return rc;
                if ((rc = line_append(p, s, n)) < 0)
                    return rc;
                pos += n;
                if (!cr)
                    break;
                pos++;
                p->line_cr = true;
                if (pos == len)
                    break;
            }
            if (d[pos] != '\n')
                return fail(p, -EPROTO, "CR not followed by LF");
            pos++;
            p->state = ST_START;
            p->reply_bytes += p->line_len + 2;
            rc =
                process_line(p, (unsigned char)p->line[0], p->line + 1, p->line_len - 1, len - pos);
            break;
        }
        case ST_BULK: {
            size_t take = len - pos < p->bulk_left ? len - pos : p->bulk_left;
            block *g = p->grow;
            if (g && p->bulk_off + take + 1 > g->cap) { /* doubling: copies amortised */
                size_t want = p->bulk_off + p->bulk_left + 1, cap = g->cap * 2;
                if (cap < p->bulk_off + take + 1)
                    cap = p->bulk_off + take + 1;
                if (cap > want)
                    cap = want;
                if (!(g = realloc(g, sizeof(block) + cap)))
                    return fail(p, -ENOMEM, "out of memory");
                g->cap = cap;
                p->grow = g;
                p->bulk->str = (char *)g->data;
            }
            memcpy((char *)p->bulk->str + p->bulk_off, d + pos, take);
            p->bulk_off += take;
            p->bulk_left -= take;
            pos += take;
            while (p->bulk_left == 0 && p->crlf_left && pos < len) {
                if (d[pos] != (p->crlf_left == 2 ? '\r' : '\n'))
                    return fail(p, -EPROTO, "string not followed by CRLF");
                pos++;
                p->crlf_left--;
            }
            if (p->bulk_left == 0 && p->crlf_left == 0) {
                if (p->chunked) { /* a chunk done: the next ';' line follows */
                    p->bulk->len = p->bulk_off;
                    p->state = ST_START;
                } else {
                    rc = bulk_done(p);
                }
            }
            break;
        }
        }
        if (rc < 0)
            return rc;
        if (rc == 1) {
            simul_redis_reply *root = (simul_redis_reply *)p->first->data;
            root->flags |= FLAG_ROOT;
            p->first = p->cur = NULL;
            *reply = root;
            return (ssize_t)pos;
        }
    }
    return (ssize_t)pos;
}

/* ---- typed access -------------------------------------------------------------------------- */

simul_redis_type simul_redis_reply_type(const simul_redis_reply *r)
{
    return r ? (simul_redis_type)r->type : (simul_redis_type)0;
}

long long simul_redis_reply_integer(const simul_redis_reply *r)
{
    if (!r)
        return 0;
    if (r->type == SIMUL_REDIS_INTEGER || r->type == SIMUL_REDIS_BOOL)
        return r->integer;
    if (r->type == SIMUL_REDIS_DOUBLE) {
        if (isnan(r->dval))
            return 0;
        if (r->dval >= 9223372036854775807.0)
            return LLONG_MAX;
        if (r->dval <= -9223372036854775808.0)
            return LLONG_MIN;
        return (long long)r->dval;
    }
    return 0;
}

double simul_redis_reply_double(const simul_redis_reply *r)
{
    if (!r)
        return 0.0;
    if (r->type == SIMUL_REDIS_DOUBLE)
        return r->dval;
    if (r->type == SIMUL_REDIS_INTEGER)
        return (double)r->integer;
    return 0.0;
}

static bool has_str(const simul_redis_reply *r)
{
    switch (r ? r->type : 0) {
    case SIMUL_REDIS_STATUS:
    case SIMUL_REDIS_ERROR:
    case SIMUL_REDIS_STRING:
    case SIMUL_REDIS_DOUBLE:
    case SIMUL_REDIS_BIGNUM:
    case SIMUL_REDIS_VERBATIM:
        return true;
    default:
        return false;
    }
}

static bool is_aggregate(const simul_redis_reply *r)
{
    switch (r ? r->type : 0) {
    case SIMUL_REDIS_ARRAY:
    case SIMUL_REDIS_MAP:
    case SIMUL_REDIS_SET:
    case SIMUL_REDIS_PUSH:
    case SIMUL_REDIS_ATTRIBUTE:
        return true;
    default:
        return false;
    }
}

static bool is_map(const simul_redis_reply *r)
{
    return r && (r->type == SIMUL_REDIS_MAP || r->type == SIMUL_REDIS_ATTRIBUTE);
}

const char *simul_redis_reply_str(const simul_redis_reply *r, size_t *len)
{
    bool ok = has_str(r);
    if (len)
        *len = ok ? r->len : 0;
    return ok ? r->str : NULL;
}

size_t simul_redis_reply_len(const simul_redis_reply *r)
{
    if (!is_aggregate(r))
        return 0;
    return is_map(r) ? r->len / 2 : r->len;
}

const simul_redis_reply *simul_redis_reply_elem(const simul_redis_reply *r, size_t i)
{
    return is_aggregate(r) && i < r->len ? &r->elem[i] : NULL;
}

const simul_redis_reply *simul_redis_reply_map_key(const simul_redis_reply *r, size_t i)
{
    return is_map(r) && i < r->len / 2 ? &r->elem[2 * i] : NULL;
}

const simul_redis_reply *simul_redis_reply_map_value(const simul_redis_reply *r, size_t i)
{
    return is_map(r) && i < r->len / 2 ? &r->elem[2 * i + 1] : NULL;
}

const simul_redis_reply *simul_redis_reply_map_get(const simul_redis_reply *r, const char *key)
{
    if (!is_map(r) || !key)
        return NULL;
    size_t n = strlen(key);
    for (size_t i = 0; i + 1 < r->len; i += 2) {
        const simul_redis_reply *k = &r->elem[i];
        if ((k->type == SIMUL_REDIS_STATUS || k->type == SIMUL_REDIS_STRING ||
             k->type == SIMUL_REDIS_VERBATIM) &&
            k->len == n && memcmp(k->str, key, n) == 0)
            return &r->elem[i + 1];
    }
    return NULL;
}
