/* resp_encode.c — the command encoder: argv (pointers and lengths) to a RESP array of bulk
 * strings, appended to a caller's growable buffer. The idea: measure first, reserve once, then
 * write; the printf-like form walks its format twice (measure, write) with copies of the va_list,
 * so neither form allocates per argument. */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <simul/redis.h>

int simul_redis_buf_reserve(simul_redis_buf *b, size_t more)
{
    if (more <= b->cap - b->len)
        return 0;
    if (more > SIZE_MAX / 2 - b->len)
        return -ENOMEM;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < more)
        cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d)
        return -ENOMEM;
    b->data = d;
    b->cap = cap;
    return 0;
}

void simul_redis_buf_free(simul_redis_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

static size_t digits(size_t v)
{
    size_t n = 1;
    while (v >= 10) {
        v /= 10;
        n++;
    }
    return n;
}

/* Writes "<c><v>\r\n" at d; returns the bytes written. */
static size_t put_header(char *d, char c, size_t v)
{
    size_t n = digits(v);
    d[0] = c;
    for (size_t i = n; i > 0; i--) {
        d[i] = (char)('0' + v % 10);
        v /= 10;
    }
    d[n + 1] = '\r';
    d[n + 2] = '\n';
    return n + 3;
}

static size_t bulk_size(size_t len)
{
    return 1 + digits(len) + 2 + len + 2;
}

ssize_t simul_redis_encode(simul_redis_buf *b, int argc, const char *const *argv,
                           const size_t *argvlen)
{
    if (argc < 1 || !argv)
        return -EINVAL;
    size_t total = 1 + digits((size_t)argc) + 2;
    for (int i = 0; i < argc; i++) {
        size_t l = argvlen ? argvlen[i] : strlen(argv[i]);
        total += bulk_size(l);
    }
    if (simul_redis_buf_reserve(b, total) < 0)
        return -ENOMEM;
    char *d = b->data + b->len;
    d += put_header(d, '*', (size_t)argc);
    for (int i = 0; i < argc; i++) {
        size_t l = argvlen ? argvlen[i] : strlen(argv[i]);
        d += put_header(d, '$', l);
        if (l) /* an empty argument may come as NULL */
            memcpy(d, argv[i], l);
        d += l;
        d[0] = '\r';
        d[1] = '\n';
        d += 2;
    }
    b->len += total;
    return (ssize_t)total;
}

/* ---- the printf-like form ------------------------------------------------------------------ */

/* One conversion's output: either borrowed bytes (%s, %b) or text formatted into num[]. */
typedef struct piece {
    const char *p;
    size_t n;
    char num[40];
} piece;

/* Reads the conversion at *f (just after '%') into pc, consuming its argument from ap. Returns
 * false for an unknown conversion. */
static bool conversion(const char **f, va_list *ap, piece *pc)
{
    const char *s = *f;
    int len = 0;
    switch (*s) {
    case 's':
        pc->p = va_arg(*ap, const char *);
        pc->n = pc->p ? strlen(pc->p) : 0;
        *f = s + 1;
        return true;
    case 'b':
        pc->p = va_arg(*ap, const void *);
        pc->n = va_arg(*ap, size_t);
        *f = s + 1;
        return true;
    case '%':
        pc->p = "%";
        pc->n = 1;
        *f = s + 1;
        return true;
    case 'd':
    case 'i':
        len = snprintf(pc->num, sizeof pc->num, "%d", va_arg(*ap, int));
        s++;
        break;
    case 'u':
        len = snprintf(pc->num, sizeof pc->num, "%u", va_arg(*ap, unsigned));
        s++;
        break;
    case 'z':
        if (s[1] != 'u')
            return false;
        len = snprintf(pc->num, sizeof pc->num, "%zu", va_arg(*ap, size_t));
        s += 2;
        break;
    case 'f': {
        double v = va_arg(*ap, double);
        if (isnan(v))
            len = snprintf(pc->num, sizeof pc->num, "nan");
        else if (isinf(v))
            len = snprintf(pc->num, sizeof pc->num, v > 0 ? "inf" : "-inf");
        else
            len = snprintf(pc->num, sizeof pc->num, "%.17g", v);
        s++;
        break;
    }
    case 'l':
        if (s[1] == 'l' && (s[2] == 'd' || s[2] == 'i')) {
            len = snprintf(pc->num, sizeof pc->num, "%lld", va_arg(*ap, long long));
            s += 3;
        } else if (s[1] == 'l' && s[2] == 'u') {
            len = snprintf(pc->num, sizeof pc->num, "%llu", va_arg(*ap, unsigned long long));
            s += 3;
        } else if (s[1] == 'd' || s[1] == 'i') {
            len = snprintf(pc->num, sizeof pc->num, "%ld", va_arg(*ap, long));
            s += 2;
        } else if (s[1] == 'u') {
            len = snprintf(pc->num, sizeof pc->num, "%lu", va_arg(*ap, unsigned long));
            s += 2;
        } else {
            return false;
        }
        break;
    default:
        return false;
    }
    pc->p = pc->num;
    pc->n = (size_t)len;
    *f = s;
    return true;
}

/* A walk over the format, one argument at a time, with its own copy of the arguments. */
typedef struct walker {
    const char *f; /* where the next argument starts */
    va_list ap;
} walker;

/* Measures or writes the next argument. Returns 1 with *len set, 0 at the end of the format, -1
 * on an unknown conversion. With dst non-NULL the argument's bytes are written there. */
static int next_arg(walker *w, char *dst, size_t *len)
{
    const char *f = w->f;
    while (*f == ' ')
        f++;
    if (!*f) {
        w->f = f;
        return 0;
    }
    size_t n = 0;
    while (*f && *f != ' ') {
        if (*f != '%') {
            const char *lit = f;
            while (*f && *f != ' ' && *f != '%')
                f++;
            if (dst)
                memcpy(dst + n, lit, (size_t)(f - lit));
            n += (size_t)(f - lit);
            continue;
        }
        f++;
        piece pc;
        if (!conversion(&f, &w->ap, &pc))
            return -1;
        if (dst && pc.n)
            memcpy(dst + n, pc.p, pc.n);
        n += pc.n;
    }
    w->f = f;
    *len = n;
    return 1;
}

ssize_t simul_redis_vencodef(simul_redis_buf *b, const char *fmt, va_list ap)
{
    /* Pass 1: count and measure. */
    walker w = {.f = fmt};
    va_copy(w.ap, ap);
    size_t argc = 0, body = 0, len;
    int rc;
    while ((rc = next_arg(&w, NULL, &len)) == 1) {
        argc++;
        body += bulk_size(len);
    }
    va_end(w.ap);
    if (rc < 0 || argc == 0)
        return -EINVAL;
    size_t total = 1 + digits(argc) + 2 + body;
    if (simul_redis_buf_reserve(b, total) < 0)
        return -ENOMEM;
    /* Pass 2: each argument is measured again (a dry walk of it alone) for its header, then
     * written after the header. Two walks of the same va_list copy give the same bytes. */
    char *d = b->data + b->len;
    d += put_header(d, '*', argc);
    walker m = {.f = fmt}, o = {.f = fmt};
    va_copy(m.ap, ap);
    va_copy(o.ap, ap);
    while (next_arg(&m, NULL, &len) == 1) {
        d += put_header(d, '$', len);
        size_t again = 0;
        next_arg(&o, d, &again);
        d += again;
        d[0] = '\r';
        d[1] = '\n';
        d += 2;
    }
    va_end(m.ap);
    va_end(o.ap);
    b->len += total;
    return (ssize_t)total;
}

ssize_t simul_redis_encodef(simul_redis_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ssize_t rc = simul_redis_vencodef(b, fmt, ap);
    va_end(ap);
    return rc;
}
