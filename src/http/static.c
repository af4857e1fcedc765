/* static.c — libsimul-http's static files: a directory mounted under a URL prefix, answered with
 * sendfile, ETag / Last-Modified (304), Range (206 with one range, multipart/byteranges with
 * several, 416) and a content type by extension. The idea for safety: the path is checked
 * segment by segment after percent-decoding (no "..", ".", NUL or empty segment ever reaches the
 * file system), and the file is opened relative to the root's directory fd with
 * openat2(RESOLVE_BENEATH), so the kernel itself refuses a symlink (or anything) that resolves
 * outside the root; the open and stat run on the executor's threads, since a cold disk would
 * block the loop. Ranges are few (16), sorted and coalesced, so overlapping or tiny ones cannot
 * make an answer larger than the file plus its part headers. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

typedef struct http_static {
    int dirfd;
    char *prefix;
    simul_http_static_opts opts;
    char *index;
} http_static;

static void static_free(void *p)
{
    http_static *st = p;
    close(st->dirfd);
    free(st->prefix);
    free(st->index);
    free(st);
}

static const struct {
    const char *ext, *type;
} types[] = {
    {"html", "text/html; charset=utf-8"},     {"htm", "text/html; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},       {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"}, {"json", "application/json"},
    {"txt", "text/plain; charset=utf-8"},     {"md", "text/markdown; charset=utf-8"},
    {"csv", "text/csv; charset=utf-8"},       {"xml", "application/xml"},
    {"svg", "image/svg+xml"},                 {"png", "image/png"},
    {"jpg", "image/jpeg"},                    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},                     {"webp", "image/webp"},
    {"avif", "image/avif"},                   {"ico", "image/vnd.microsoft.icon"},
    {"wasm", "application/wasm"},             {"pdf", "application/pdf"},
    {"zip", "application/zip"},               {"gz", "application/gzip"},
    {"tar", "application/x-tar"},             {"woff", "font/woff"},
    {"woff2", "font/woff2"},                  {"ttf", "font/ttf"},
    {"otf", "font/otf"},                      {"mp4", "video/mp4"},
    {"webm", "video/webm"},                   {"mp3", "audio/mpeg"},
    {"ogg", "audio/ogg"},                     {"wav", "audio/wav"},
    {"map", "application/json"},             {"pgn", "application/x-chess-pgn"},
};

const char *simul_http_content_type(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash : path, '.');
    if (dot) {
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
            if (strcasecmp(dot + 1, types[i].ext) == 0) {
                return types[i].type;
            }
        }
    }
    return "application/octet-stream";
}

/* Whether rel (decoded, relative) is a path we may look up: segments neither empty, "." nor
 * "..", no NUL (the decoded %00 would cut the string), no backslash games needed on Linux. */
static bool path_ok(const char *rel, size_t len)
{
    if (memchr(rel, '\0', len)) {
        return false;
    }
    const char *p = rel, *end = rel + len;
    while (p < end) {
        const char *slash = memchr(p, '/', (size_t)(end - p));
        size_t n = slash ? (size_t)(slash - p) : (size_t)(end - p);
        if (n == 0 && slash) {
            return false; /* "a//b" */
        }
        if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.')) {
            return false;
        }
        p += n + 1;
    }
    return true;
}

/* Opens rel beneath dirfd: the kernel refuses ".." and symlinks that leave it. */
static int open_beneath(int dirfd, const char *rel)
{
    struct open_how how = {.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK,
                           .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
    int fd = (int)syscall(SYS_openat2, dirfd, rel, &how, sizeof how);
    if (fd >= 0 || errno != ENOSYS) {
        return fd < 0 ? -errno : fd;
    }
    /* Before Linux 5.6: no symlinks at all on the way (O_NOFOLLOW checks only the last
     * component, so walk each one). */
    int cur = dup(dirfd);
    if (cur < 0) {
        return -errno;
    }
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", rel);
    char *save = NULL;
    for (char *seg = strtok_r(buf, "/", &save); seg; seg = strtok_r(NULL, "/", &save)) {
        int next = openat(cur, seg, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
        int e = errno;
        close(cur);
        if (next < 0) {
            return e == ELOOP ? -EXDEV : -e;
        }
        cur = next;
    }
    return cur;
}

static void http_time(time_t t, char *out, size_t cap)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

/* IMF-fixdate (and the two obsolete forms RFC 9110 says to accept). -1 if none. */
static time_t parse_http_date(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = strptime(s, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!end || *end) {
        memset(&tm, 0, sizeof tm);
        end = strptime(s, "%A, %d-%b-%y %H:%M:%S GMT", &tm);
    }
    if (!end || *end) {
        memset(&tm, 0, sizeof tm);
        end = strptime(s, "%a %b %e %H:%M:%S %Y", &tm);
    }
    if (!end || *end) {
        return (time_t)-1;
    }
    return timegm(&tm);
}

/* Whether an If-None-Match list holds etag (weak comparison: W/ ignored), or is "*". */
static bool etag_listed(const char *list, const char *etag)
{
    while (*list == ' ') {
        list++;
    }
    if (strcmp(list, "*") == 0) {
        return true;
    }
    size_t elen = strlen(etag);
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == ',') {
            p++;
        }
        if (strncmp(p, "W/", 2) == 0) {
            p += 2;
        }
        if (strncmp(p, etag, elen) == 0 && (p[elen] == '\0' || p[elen] == ',' || p[elen] == ' ')) {
            return true;
        }
        while (*p && *p != ',') {
            p++;
        }
    }
    return false;
}

/* One range-spec ("a-b", "a-", "-n") against size: 1 with [*from, *to] (inclusive), 0 if it
 * cannot be satisfied (it starts past the end, "-0"), -1 if malformed. */
static int parse_spec(const char *v, const char *e, uint64_t size, uint64_t *from, uint64_t *to)
{
    char spec[48];
    if (e - v <= 0 || (size_t)(e - v) >= sizeof spec) {
        return -1;
    }
    memcpy(spec, v, (size_t)(e - v));
    spec[e - v] = '\0';
    char *end;
    if (spec[0] == '-') {
        if (spec[1] < '0' || spec[1] > '9') {
            return -1;
        }
        errno = 0;
        unsigned long long n = strtoull(spec + 1, &end, 10);
        if (*end || errno) {
            return -1;
        }
        if (n == 0 || size == 0) {
            return 0;
        }
        *from = n >= size ? 0 : size - n;
        *to = size - 1;
        return 1;
    }
    if (spec[0] < '0' || spec[0] > '9') {
        return -1;
    }
    errno = 0;
    unsigned long long a = strtoull(spec, &end, 10);
    if (errno || *end != '-') {
        return -1;
    }
    const char *b = end + 1;
    unsigned long long z = UINT64_MAX;
    if (*b) {
        if (*b < '0' || *b > '9') {
            return -1;
        }
        z = strtoull(b, &end, 10);
        if (errno || *end || z < a) {
            return -1;
        }
    }
    if (a >= size) {
        return 0;
    }
    *from = a;
    *to = z >= size ? size - 1 : z;
    return 1;
}

#define MAX_RANGES 16
/* Ranges closer than this are sent as one part: a part's header costs about as much. */
#define RANGE_GAP 80

typedef struct byte_range {
    uint64_t from, to;
} byte_range;

static int range_cmp(const void *a, const void *b)
{
    const byte_range *x = a, *y = b;
    return x->from < y->from ? -1 : x->from > y->from;
}

/* "bytes=" and a list of range-specs against size (RFC 9110 14.1.2): 1 with *n ranges in
 * out (sorted, overlapping and near ones coalesced, RFC 9110 14.2 allows it), 0 to ignore the
 * field and send the whole file (malformed, another unit, more than MAX_RANGES specs: the
 * "many small ranges" attack costs nothing then), -1 when no range can be satisfied (416). */
static int parse_ranges(const char *v, uint64_t size, byte_range out[MAX_RANGES], size_t *n)
{
    if (strncasecmp(v, "bytes=", 6) != 0) {
        return 0;
    }
    v += 6;
    size_t specs = 0, k = 0;
    for (;;) {
        while (*v == ' ' || *v == '\t') {
            v++;
        }
        const char *e = v;
        while (*e && *e != ',') {
            e++;
        }
        const char *t = e;
        while (t > v && (t[-1] == ' ' || t[-1] == '\t')) {
            t--;
        }
        if (t > v) { /* (empty list elements are skipped, as RFC 9110 5.6.1 says) */
            if (++specs > MAX_RANGES) {
                return 0;
            }
            byte_range r;
            int ok = parse_spec(v, t, size, &r.from, &r.to);
            if (ok < 0) {
                return 0;
            }
            if (ok > 0) {
                out[k++] = r;
            }
        }
        if (!*e) {
            break;
        }
        v = e + 1;
    }
    if (specs == 0) {
        return 0;
    }
    if (k == 0) {
        return -1;
    }
    qsort(out, k, sizeof *out, range_cmp);
    size_t m = 0;
    for (size_t i = 1; i < k; i++) {
        if (out[i].from <= out[m].to || out[i].from - out[m].to <= RANGE_GAP) {
            if (out[i].to > out[m].to) {
                out[m].to = out[i].to;
            }
        } else {
            out[++m] = out[i];
        }
    }
    *n = m + 1;
    return 1;
}

/* ---- the file's open and stat, on the executor's threads ----------------------------------- */

typedef struct open_job {
    int dirfd; /* a dup of the root's: closed by the job, so the mount may go meanwhile */
    char *rel;
    int fd;    /* the result, or -errno */
    bool regular;
} open_job;

static int open_job_run(void *arg)
{
    open_job *j = arg;
    j->fd = open_beneath(j->dirfd, j->rel);
    close(j->dirfd);
    j->dirfd = -1;
    struct stat st;
    j->regular = j->fd >= 0 && fstat(j->fd, &st) == 0 && S_ISREG(st.st_mode);
    return 0;
}

static void open_job_free(open_job *j)
{
    if (j->dirfd >= 0) {
        close(j->dirfd);
    }
    free(j->rel);
    free(j);
}

/* The caller gave up (cancelled, timed out): the fd opened for it is closed. */
static void open_job_discard(void *arg, int result)
{
    open_job *j = arg;
    if (result != -ECANCELED && j->fd >= 0) {
        close(j->fd);
    }
    open_job_free(j);
}

/* Suspends. openat2(RESOLVE_BENEATH) of rel under dirfd and its fstat, off the loop. Returns the
 * fd of a regular file, -ENOENT for anything else found there, or the open's -errno. */
static int open_off_loop(int dirfd, const char *rel)
{
    open_job *j = calloc(1, sizeof *j);
    if (!j || !(j->rel = strdup(rel))) {
        free(j);
        return -ENOMEM;
    }
    j->fd = -1;
    j->dirfd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
    if (j->dirfd < 0) {
        int e = -errno;
        open_job_free(j);
        return e;
    }
    int result;
    int rc = simul_to_thread_discard(open_job_run, j, open_job_discard, &result);
    if (rc < 0) {
        if (rc != -ECANCELED && rc != -ETIMEDOUT && rc != -ENOMEM) {
            open_job_free(j); /* still ours: it never ran */
        }
        return rc;
    }
    int fd = j->fd;
    if (fd >= 0 && !j->regular) {
        close(fd);
        fd = -ENOENT;
    }
    open_job_free(j);
    return fd;
}

int simul_http_response_file_at(simul_http_request *req, simul_http_response *res, int dirfd,
                                const char *rel)
{
    if (!req || !res || !rel) {
        return -EINVAL;
    }
    while (*rel == '/') {
        rel++;
    }
    if (!*rel || !path_ok(rel, strlen(rel))) {
        return simul_http_response_error(res, 404);
    }
    int fd = open_off_loop(dirfd, rel);
    if (fd == -ECANCELED || fd == -ETIMEDOUT || fd == -ENOMEM) {
        return fd;
    }
    if (fd < 0) {
        /* ENOENT, ENOTDIR, and EXDEV / ELOOP (it would leave the root): all just "not here" */
        return simul_http_response_error(res, fd == -EACCES ? 403 : 404);
    }
    int rc = simul_http_response_fd(req, res, fd, simul_http_content_type(rel));
    close(fd);
    return rc;
}

int simul_http_response_fd(simul_http_request *req, simul_http_response *res, int fd,
                           const char *content_type)
{
    struct stat st;
    if (!req || !res || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        return -EINVAL;
    }
    uint64_t size = (uint64_t)st.st_size;
    char etag[64], lm[40];
    snprintf(etag, sizeof etag, "\"%llx-%llx-%llx\"", (unsigned long long)st.st_mtim.tv_sec,
             (unsigned long long)st.st_mtim.tv_nsec, (unsigned long long)size);
    http_time(st.st_mtim.tv_sec, lm, sizeof lm);
    int rc = simul_http_response_header(res, "ETag", etag);
    rc = rc ? rc : simul_http_response_header(res, "Last-Modified", lm);
    if (rc) {
        return rc;
    }
    const char *m = simul_http_request_method(req);
    bool get = strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0;
    /* RFC 9110 13.2.2: If-None-Match, else If-Modified-Since; then Range with If-Range. */
    const char *inm = simul_http_request_header(req, "If-None-Match");
    const char *ims = simul_http_request_header(req, "If-Modified-Since");
    bool not_modified = false;
    if (inm) {
        not_modified = etag_listed(inm, etag);
    } else if (ims && get) {
        time_t t = parse_http_date(ims);
        not_modified = t != (time_t)-1 && st.st_mtim.tv_sec <= t;
    }
    if (not_modified && get) {
        simul_http_response_status(res, 304);
        return simul_http_response_body(res, NULL, 0);
    }
    const char *type = content_type ? content_type : "application/octet-stream";
    rc = simul_http_response_header(res, "Accept-Ranges", "bytes");
    if (rc) {
        return rc;
    }
    const char *range = get ? simul_http_request_header(req, "Range") : NULL;
    const char *if_range = simul_http_request_header(req, "If-Range");
    if (range && if_range) {
        /* the range only if the client's copy is this one: the same strong ETag, or the same
         * Last-Modified date */
        bool same = if_range[0] == '"' ? strcmp(if_range, etag) == 0 : strcmp(if_range, lm) == 0;
        if (!same) {
            range = NULL;
        }
    }
    byte_range rs[MAX_RANGES];
    size_t nr = 0;
    int r = range ? parse_ranges(range, size, rs, &nr) : 0;
    if (r < 0) {
        char cr[64];
        snprintf(cr, sizeof cr, "bytes */%llu", (unsigned long long)size);
        /* answered here, not through an error handler: the client needs Content-Range */
        simul_http_response_header(res, "Content-Range", cr);
        return simul_http_response_text(res, 416, "Range Not Satisfiable\n");
    }
    if (r > 0 && nr == 1) {
        char cr[96];
        snprintf(cr, sizeof cr, "bytes %llu-%llu/%llu", (unsigned long long)rs[0].from,
                 (unsigned long long)rs[0].to, (unsigned long long)size);
        simul_http_response_status(res, 206);
        rc = simul_http_response_header(res, "Content-Range", cr);
        rc = rc ? rc : simul_http_response_header(res, "Content-Type", type);
        return rc ? rc : simul_http_response_sendfile(res, fd, (int64_t)rs[0].from,
                                                       rs[0].to - rs[0].from + 1);
    }
    if (r > 0) {
        /* multipart/byteranges (RFC 9110 14.6): each part with its type and range. */
        uint8_t rnd[8] = {0};
        if (getrandom(rnd, sizeof rnd, GRND_NONBLOCK) != (ssize_t)sizeof rnd) {
            uint64_t t = (uint64_t)simul_now_ns();
            memcpy(rnd, &t, sizeof rnd);
        }
        char boundary[40];
        snprintf(boundary, sizeof boundary, "simul-%02x%02x%02x%02x%02x%02x%02x%02x", rnd[0],
                 rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
        http_file_part parts[MAX_RANGES];
        uint64_t total = 0;
        for (size_t i = 0; i < nr; i++) {
            size_t cap = strlen(type) + strlen(boundary) + 128;
            char *h = simul_http_alloc(req, cap);
            if (!h) {
                return -ENOMEM;
            }
            snprintf(h, cap, "\r\n--%s\r\nContent-Type: %s\r\nContent-Range: bytes %llu-%llu/%llu"
                             "\r\n\r\n", boundary, type, (unsigned long long)rs[i].from,
                     (unsigned long long)rs[i].to, (unsigned long long)size);
            parts[i] = (http_file_part){.head = h, .offset = rs[i].from,
                                        .len = rs[i].to - rs[i].from + 1};
            total += strlen(h) + parts[i].len;
        }
        char *epi = simul_http_alloc(req, strlen(boundary) + 16);
        if (!epi) {
            return -ENOMEM;
        }
        sprintf(epi, "\r\n--%s--\r\n", boundary);
        total += strlen(epi);
        char ct[80];
        snprintf(ct, sizeof ct, "multipart/byteranges; boundary=%s", boundary);
        simul_http_response_status(res, 206);
        rc = simul_http_response_header(res, "Content-Type", ct);
        return rc ? rc : http_response_sendfile_parts(res, fd, parts, nr, epi, total);
    }
    rc = simul_http_response_header(res, "Content-Type", type);
    return rc ? rc : simul_http_response_sendfile(res, fd, 0, size);
}

static int static_handler(simul_http_request *req, simul_http_response *res, void *arg)
{
    http_static *st = arg;
    const char *rest = simul_http_request_param(req, "path");
    const char *raw = simul_http_request_path(req);
    if (!rest) {
        rest = ""; /* the mount's root */
    }
    size_t rl = strlen(rest);
    bool dir = rl == 0 || rest[rl - 1] == '/';
    if (st->opts.max_age >= 0) {
        char cc[48];
        snprintf(cc, sizeof cc, "public, max-age=%lld", (long long)st->opts.max_age);
        simul_http_response_header(res, "Cache-Control", cc);
    }
    if (dir) {
        if (!*st->index) {
            return simul_http_response_error(res, 404);
        }
        size_t n = rl + strlen(st->index) + 1;
        char *p = simul_http_alloc(req, n);
        if (!p) {
            return -ENOMEM;
        }
        snprintf(p, n, "%s%s", rest, st->index);
        if (rl == 0 && raw[strlen(raw) - 1] != '/') {
            /* "/static" -> "/static/", so the page's relative links resolve */
            size_t k = strlen(raw) + 2;
            char *loc = simul_http_alloc(req, k);
            if (!loc) {
                return -ENOMEM;
            }
            snprintf(loc, k, "%s/", raw);
            return simul_http_response_redirect(res, 301, loc);
        }
        return simul_http_response_file_at(req, res, st->dirfd, p);
    }
    return simul_http_response_file_at(req, res, st->dirfd, rest);
}

int simul_http_static(simul_http_app *app, const char *prefix, const char *root,
                      const simul_http_static_opts *opts)
{
    if (!app || !prefix || prefix[0] != '/' || !root) {
        return -EINVAL;
    }
    http_static *st = calloc(1, sizeof *st);
    if (!st) {
        return -ENOMEM;
    }
    st->opts.max_age = -1;
    if (opts) {
        st->opts = *opts;
    }
    st->index = strdup(st->opts.index ? st->opts.index : "index.html");
    size_t pl = strlen(prefix);
    while (pl > 1 && prefix[pl - 1] == '/') {
        pl--;
    }
    if (pl == 1) {
        pl = 0; /* mounted at "/" */
    }
    st->prefix = strndup(prefix, pl);
    st->dirfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = st->dirfd < 0 ? -errno : 0;
    if (!st->index || !st->prefix) {
        rc = -ENOMEM;
    }
    if (rc < 0) {
        if (st->dirfd >= 0) {
            close(st->dirfd);
        }
        free(st->index);
        free(st->prefix);
        free(st);
        return rc;
    }
    char *pat = malloc(pl + 16), *pat2 = malloc(pl + 4);
    if (!pat || !pat2 || http_app_own(app, static_free, st) < 0) {
        free(pat);
        free(pat2);
        static_free(st);
        return -ENOMEM;
    }
    snprintf(pat, pl + 16, "%s/<path:path>", st->prefix);
    snprintf(pat2, pl + 4, "%s/", st->prefix);
    rc = simul_http_route(app, "GET", pat, static_handler, st);
    if (rc == 0) {
        rc = simul_http_route(app, "GET", pl ? st->prefix : "/", static_handler, st);
    }
    free(pat);
    free(pat2);
    return rc;
}
