/* forms.c — libsimul-http's forms: application/x-www-form-urlencoded (the body whole, within the
 * body limit) and multipart/form-data streamed. The idea for multipart: the body is read as a
 * stream through one fixed window (64 KiB plus the delimiter); a part's bytes are handed on as
 * soon as they cannot be the start of the next delimiter ("\r\n--boundary"), so a file goes to
 * its sink (an anonymous temp file unless the handler gives one) and is never whole in memory;
 * only plain fields are kept, each and all within limits. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define WINDOW 65536

typedef struct http_form {
    bool parsed;
    int rc;
    http_kv *kv;
    size_t n, cap;
    simul_http_form_file *files;
    size_t nfiles, fcap;
} http_form;

static http_form *form_of(simul_http_request *req)
{
    struct http_form **slot = http_request_form_slot(req);
    if (!*slot) {
        *slot = simul_http_alloc(req, sizeof(http_form));
        if (*slot) {
            memset(*slot, 0, sizeof(http_form));
        }
    }
    return *slot;
}

static int kv_add(simul_http_request *req, http_form *f, const char *name, const char *value)
{
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 16;
        http_kv *kv = simul_http_alloc(req, cap * sizeof *kv);
        if (!kv) {
            return -ENOMEM;
        }
        if (f->n) {
            memcpy(kv, f->kv, f->n * sizeof *kv);
        }
        f->kv = kv;
        f->cap = cap;
    }
    f->kv[f->n].name = name;
    f->kv[f->n].value = value;
    f->n++;
    return 0;
}

/* The content type's bare type ("multipart/form-data") compared, and a parameter's value. */
static bool type_is(const char *ct, const char *type)
{
    size_t n = strlen(type);
    return strncasecmp(ct, type, n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/* Finds param `name` in "a; b=c; name="v"" style text; copies its value (unquoted) into out.
 * Returns its length, or -1. */
static long param_get(const char *s, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    const char *p = strchr(s, ';');
    while (p) {
        p++;
        while (*p == ' ' || *p == '\t') {
            p++;
        }
        if (strncasecmp(p, name, nl) == 0 && p[nl] == '=') {
            const char *v = p + nl + 1;
            size_t k = 0;
            if (*v == '"') {
                for (v++; *v && *v != '"'; v++) {
                    if (*v == '\\' && v[1]) {
                        v++;
                    }
                    if (k + 1 >= cap) {
                        return -1;
                    }
                    out[k++] = *v;
                }
                if (*v != '"') {
                    return -1;
                }
            } else {
                for (; *v && *v != ';' && *v != ' ' && *v != '\t'; v++) {
                    if (k + 1 >= cap) {
                        return -1;
                    }
                    out[k++] = *v;
                }
            }
            out[k] = '\0';
            return (long)k;
        }
        /* skip this parameter, quotes included */
        bool q = false;
        for (; *p && (q || *p != ';'); p++) {
            if (*p == '"') {
                q = !q;
            } else if (*p == '\\' && q && p[1]) {
                p++;
            }
        }
        p = *p ? p : NULL;
    }
    return -1;
}

/* ---- the default sink: an anonymous temp file per file part ------------------------------ */

typedef struct tmp_file {
    simul_http_form_file *f;
    int fd;
} tmp_file;

static void close_fd(void *p)
{
    close((int)(intptr_t)p);
}

static int tmp_open(const simul_http_form_file *part, void **ctx, void *arg)
{
    (void)part;
    simul_http_request *req = arg;
    const char *dir = getenv("TMPDIR");
    if (!dir || !*dir) {
        dir = "/tmp";
    }
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) {
        char path[4096];
        snprintf(path, sizeof path, "%s/simul-http-XXXXXX", dir);
        fd = mkostemp(path, O_CLOEXEC);
        if (fd < 0) {
            return -errno;
        }
        unlink(path); /* anonymous from now on: gone when closed */
    }
    if (http_request_on_end(req, close_fd, (void *)(intptr_t)fd) < 0) {
        close(fd);
        return -ENOMEM;
    }
    *ctx = (void *)(intptr_t)fd;
    return 0;
}

static int tmp_write(void *ctx, const void *data, size_t len, void *arg)
{
    (void)arg;
    int fd = (int)(intptr_t)ctx;
    const char *p = data;
    while (len) {
        ssize_t k = write(fd, p, len);
        if (k < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        p += k;
        len -= (size_t)k;
    }
    return 0;
}

static int tmp_close(void *ctx, int error, void *arg)
{
    (void)arg;
    (void)error;
    return lseek((int)(intptr_t)ctx, 0, SEEK_SET) < 0 ? -errno : 0; /* ready to read */
}

static const simul_http_part_sink tmp_sink = {tmp_open, tmp_write, tmp_close};

/* ---- multipart --------------------------------------------------------------------------- */

typedef struct mp {
    simul_http_request *req;
    http_form *f;
    const simul_http_form_opts *o;
    const simul_http_part_sink *sink;
    void *sink_arg;
    char delim[80]; /* "\r\n--" boundary */
    size_t dlen;
    char *buf;
    size_t len;
    size_t parts, fields_total;
    /* the part being read */
    bool in_file;
    void *ctx;
    simul_http_form_file *file;
    char *field;
    size_t field_len, field_cap;
    const char *field_name;
} mp;

/* Hands bytes of the current part on. */
static int mp_emit(mp *m, const char *p, size_t n)
{
    if (n == 0) {
        return 0;
    }
    if (m->in_file) {
        if (m->o->max_file_bytes && m->file->size + n > m->o->max_file_bytes) {
            return -EMSGSIZE;
        }
        m->file->size += n;
        return m->sink->write(m->ctx, p, n, m->sink_arg);
    }
    if (m->field_len + n > m->o->max_field_bytes ||
        m->fields_total + n > m->o->max_fields_total) {
        return -EMSGSIZE;
    }
    if (m->field_len + n + 1 > m->field_cap) {
        size_t cap = m->field_cap ? m->field_cap * 2 : 256;
        while (cap < m->field_len + n + 1) {
            cap *= 2;
        }
        char *nb = simul_http_alloc(m->req, cap);
        if (!nb) {
            return -ENOMEM;
        }
        if (m->field_len) {
            memcpy(nb, m->field, m->field_len);
        }
        m->field = nb;
        m->field_cap = cap;
    }
    memcpy(m->field + m->field_len, p, n);
    m->field_len += n;
    m->fields_total += n;
    return 0;
}

static int mp_part_end(mp *m, int error)
{
    int rc = 0;
    if (m->in_file) {
        rc = m->sink->close(m->ctx, error, m->sink_arg);
        m->in_file = false;
    } else if (m->field_name && !error) {
        if (!m->field) {
            m->field = simul_http_alloc(m->req, 1);
            if (!m->field) {
                return -ENOMEM;
            }
        }
        m->field[m->field_len] = '\0';
        rc = kv_add(m->req, m->f, m->field_name, m->field);
    }
    m->field_name = NULL;
    m->field = NULL;
    m->field_len = m->field_cap = 0;
    return error ? error : rc;
}

/* Parses a part's header block (lines, without the final empty line) and opens the part. */
static int mp_part_begin(mp *m, char *hdr, size_t n)
{
    if (++m->parts > m->o->max_parts) {
        return -EMSGSIZE;
    }
    hdr[n] = '\0';
    char name[256], filename[1024], ctype[256] = "text/plain";
    bool has_name = false, has_file = false;
    for (char *line = hdr; line && *line;) {
        char *eol = strstr(line, "\r\n");
        if (eol) {
            *eol = '\0';
        }
        char *colon = strchr(line, ':');
        if (!colon) {
            return -EBADMSG;
        }
        *colon = '\0';
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t') {
            v++;
        }
        if (strcasecmp(line, "Content-Disposition") == 0) {
            if (!type_is(v, "form-data")) {
                return -EBADMSG;
            }
            has_name = param_get(v, "name", name, sizeof name) >= 0;
            has_file = param_get(v, "filename", filename, sizeof filename) >= 0;
        } else if (strcasecmp(line, "Content-Type") == 0) {
            snprintf(ctype, sizeof ctype, "%s", v);
        }
        line = eol ? eol + 2 : NULL;
    }
    if (!has_name) {
        return -EBADMSG; /* RFC 7578 4.2: every part has a name */
    }
    http_arena *a = http_request_arena(m->req);
    char *nm = arena_strndup(a, name, strlen(name));
    if (!nm) {
        return -ENOMEM;
    }
    if (!has_file) {
        m->field_name = nm;
        return 0;
    }
    http_form *f = m->f;
    if (f->nfiles == f->fcap) {
        size_t cap = f->fcap ? f->fcap * 2 : 4;
        simul_http_form_file *nf = simul_http_alloc(m->req, cap * sizeof *nf);
        if (!nf) {
            return -ENOMEM;
        }
        if (f->nfiles) {
            memcpy(nf, f->files, f->nfiles * sizeof *nf);
        }
        f->files = nf;
        f->fcap = cap;
    }
    simul_http_form_file *file = &f->files[f->nfiles];
    memset(file, 0, sizeof *file);
    file->name = nm;
    file->filename = arena_strndup(a, filename, strlen(filename));
    file->content_type = arena_strndup(a, ctype, strlen(ctype));
    file->fd = -1;
    if (!file->filename || !file->content_type) {
        return -ENOMEM;
    }
    int rc = m->sink->open(file, &m->ctx, m->sink_arg);
    if (rc < 0) {
        return rc;
    }
    if (m->sink == &tmp_sink) {
        file->fd = (int)(intptr_t)m->ctx;
    }
    f->nfiles++;
    m->file = &f->files[f->nfiles - 1];
    m->in_file = true;
    return 0;
}

enum { MP_PRE, MP_AFTER_DELIM, MP_HEAD, MP_DATA, MP_DONE };

static int multipart(simul_http_request *req, http_form *f, const char *ct,
                     const simul_http_form_opts *o)
{
    char boundary[80];
    long bl = param_get(ct, "boundary", boundary, sizeof boundary);
    if (bl < 1 || bl > 70) {
        return -EBADMSG; /* RFC 2046: 1 to 70 characters */
    }
    mp m;
    memset(&m, 0, sizeof m);
    m.req = req;
    m.f = f;
    m.o = o;
    m.sink = o->sink ? o->sink : &tmp_sink;
    m.sink_arg = o->sink ? o->sink_arg : req;
    m.dlen = (size_t)snprintf(m.delim, sizeof m.delim, "\r\n--%s", boundary);
    size_t cap = WINDOW + m.dlen + 8;
    m.buf = malloc(cap);
    if (!m.buf) {
        return -ENOMEM;
    }
    /* The body as if it began with CRLF: the first delimiter then looks like every other. */
    memcpy(m.buf, "\r\n", 2);
    m.len = 2;
    int state = MP_PRE, rc = 0;
    bool eof = false;
    for (;;) {
        /* take what the window holds */
        bool progress = true;
        while (progress && rc == 0) {
            progress = false;
            size_t drop = 0;
            if (state == MP_PRE || state == MP_DATA) {
                char *d = memmem(m.buf, m.len, m.delim, m.dlen);
                if (d) {
                    size_t i = (size_t)(d - m.buf);
                    if (state == MP_DATA) {
                        rc = mp_emit(&m, m.buf, i);
                        rc = rc ? rc : mp_part_end(&m, 0);
                    }
                    drop = i + m.dlen;
                    state = MP_AFTER_DELIM;
                } else if (m.len >= m.dlen) {
                    /* all but a possible delimiter start at the tail */
                    size_t keep = m.dlen - 1;
                    if (state == MP_DATA) {
                        rc = mp_emit(&m, m.buf, m.len - keep);
                    }
                    drop = m.len - keep;
                }
            } else if (state == MP_AFTER_DELIM) {
                size_t i = 0;
                while (i < m.len && i < 64 && (m.buf[i] == ' ' || m.buf[i] == '\t')) {
                    i++; /* transport padding */
                }
                if (i == 64) {
                    rc = -EBADMSG;
                } else if (m.len >= i + 2) {
                    if (m.buf[i] == '-' && m.buf[i + 1] == '-') {
                        state = MP_DONE;
                        drop = m.len;
                    } else if (m.buf[i] == '\r' && m.buf[i + 1] == '\n') {
                        state = MP_HEAD;
                        drop = i + 2;
                    } else {
                        rc = -EBADMSG;
                    }
                }
            } else if (state == MP_HEAD) {
                /* the block ends at an empty line: "\r\n" at once (no fields) or "\r\n\r\n" */
                char *e = NULL;
                size_t hl = 0;
                if (m.len >= 2 && m.buf[0] == '\r' && m.buf[1] == '\n') {
                    e = m.buf;
                    hl = 0;
                } else if ((e = memmem(m.buf, m.len, "\r\n\r\n", 4))) {
                    hl = (size_t)(e - m.buf) + 2;
                }
                if (e) {
                    if (hl > o->max_part_header) {
                        rc = -EMSGSIZE;
                    } else {
                        char *h = simul_http_alloc(req, hl + 1);
                        if (!h) {
                            rc = -ENOMEM;
                        } else {
                            memcpy(h, m.buf, hl);
                            rc = mp_part_begin(&m, h, hl ? hl - 2 : 0);
                        }
                    }
                    drop = hl + 2;
                    state = MP_DATA;
                } else if (m.len > o->max_part_header + 2) {
                    rc = -EMSGSIZE;
                }
            } else {
                drop = m.len; /* the epilogue: ignored */
            }
            if (drop) {
                memmove(m.buf, m.buf + drop, m.len - drop);
                m.len -= drop;
                progress = true;
            }
        }
        if (rc < 0 || eof) {
            break;
        }
        long n = simul_http_request_read(req, m.buf + m.len, cap - m.len);
        if (n < 0) {
            rc = (int)n;
            break;
        }
        if (n == 0) {
            eof = true; /* one more pass over what is left */
        } else {
            m.len += (size_t)n;
        }
    }
    if (rc == 0 && state != MP_DONE) {
        rc = -EBADMSG; /* the body ended before the closing delimiter */
    }
    if (rc < 0 && (m.in_file || m.field_name)) {
        mp_part_end(&m, rc);
    }
    free(m.buf);
    return rc;
}

/* ---- the API ----------------------------------------------------------------------------- */

int simul_http_request_form_parse(simul_http_request *req, const simul_http_form_opts *opts)
{
    if (!req) {
        return -EINVAL;
    }
    http_form *f = form_of(req);
    if (!f) {
        return -ENOMEM;
    }
    if (f->parsed) {
        return f->rc;
    }
    f->parsed = true;
    simul_http_form_opts o = {0};
    if (opts) {
        o = *opts;
    }
    if (!o.max_parts) o.max_parts = 128;
    if (!o.max_field_bytes) o.max_field_bytes = 65536;
    if (!o.max_fields_total) o.max_fields_total = 1 << 20;
    if (!o.max_part_header) o.max_part_header = 8192;
    const char *ct = simul_http_request_header(req, "Content-Type");
    if (ct && type_is(ct, "application/x-www-form-urlencoded")) {
        const char *body;
        long n = simul_http_request_body(req, &body);
        if (n < 0) {
            return f->rc = (int)n;
        }
        if ((size_t)n > o.max_fields_total) {
            return f->rc = -EMSGSIZE;
        }
        http_kv *kv;
        size_t k;
        int rc = http_query_parse(http_request_arena(req), body, &kv, &k);
        if (rc < 0) {
            return f->rc = rc == -EPROTO ? -EBADMSG : rc;
        }
        for (size_t i = 0; i < k && rc == 0; i++) {
            rc = kv_add(req, f, kv[i].name, kv[i].value);
        }
        return f->rc = rc;
    }
    if (ct && type_is(ct, "multipart/form-data")) {
        return f->rc = multipart(req, f, ct, &o);
    }
    return f->rc = -EOPNOTSUPP; /* not a form: 415 */
}

const char *simul_http_request_form(simul_http_request *req, const char *name)
{
    if (!req || !name || simul_http_request_form_parse(req, NULL) < 0) {
        return NULL;
    }
    http_form *f = form_of(req);
    for (size_t i = 0; i < f->n; i++) {
        if (strcmp(f->kv[i].name, name) == 0) {
            return f->kv[i].value;
        }
    }
    return NULL;
}

size_t simul_http_request_form_all(simul_http_request *req, const char *name, const char **vals,
                                   size_t max)
{
    if (!req || !name || simul_http_request_form_parse(req, NULL) < 0) {
        return 0;
    }
    http_form *f = form_of(req);
    size_t n = 0;
    for (size_t i = 0; i < f->n; i++) {
        if (strcmp(f->kv[i].name, name) == 0) {
            if (n < max) {
                vals[n] = f->kv[i].value;
            }
            n++;
        }
    }
    return n;
}

const simul_http_form_file *simul_http_request_form_file(simul_http_request *req,
                                                         const char *name)
{
    if (!req || !name || simul_http_request_form_parse(req, NULL) < 0) {
        return NULL;
    }
    http_form *f = form_of(req);
    for (size_t i = 0; i < f->nfiles; i++) {
        if (strcmp(f->files[i].name, name) == 0) {
            return &f->files[i];
        }
    }
    return NULL;
}

int simul_http_form_status(int error)
{
    switch (error) {
    case 0: return 200;
    case -EMSGSIZE: return 413;
    case -EOPNOTSUPP: return 415;
    case -ETIMEDOUT: return 408;
    case -EBADMSG:
    case -EPROTO: return 400;
    default: return 500;
    }
}
