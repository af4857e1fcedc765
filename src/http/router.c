/* router.c — libsimul-http's app: routes (method lists and path patterns with typed parameters),
 * groups under a prefix, and the matching the server does per request. The idea: a pattern is
 * split into segments once, when the route is added; matching walks the path's segments against
 * them without allocating, and only a match copies (and decodes) its parameters into the
 * request's arena. Also the arena and percent-decoding the request code uses. */
#include "internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- arena ------------------------------------------------------------------------------- */

void *arena_alloc(http_arena *a, size_t size)
{
    size = (size + 15) & ~(size_t)15;
    if (size == 0) {
        size = 16;
    }
    arena_block *b = a->extra ? a->extra : a->first;
    if (b && b->size - b->used >= size) {
        void *p = b->data + b->used;
        b->used += size;
        return p;
    }
    if (!a->first) { /* the kept block, made on first use */
        size_t bs = size > 4096 ? size : 4096;
        b = malloc(sizeof *b + bs);
        if (!b) {
            return NULL;
        }
        b->next = NULL;
        b->size = bs;
        b->used = size;
        a->first = b;
        return b->data;
    }
    size_t bs = size > 8192 ? size : 8192;
    b = malloc(sizeof *b + bs);
    if (!b) {
        return NULL;
    }
    b->next = a->extra;
    b->size = bs;
    b->used = size;
    a->extra = b;
    return b->data;
}

char *arena_strndup(http_arena *a, const char *s, size_t n)
{
    char *p = arena_alloc(a, n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

void arena_reset(http_arena *a)
{
    while (a->extra) {
        arena_block *b = a->extra;
        a->extra = b->next;
        free(b);
    }
    if (a->first) {
        a->first->used = 0;
    }
}

void arena_free(http_arena *a)
{
    arena_reset(a);
    free(a->first);
    a->first = NULL;
}

/* ---- decoding ---------------------------------------------------------------------------- */

static int hexval(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

char *http_pct_decode(http_arena *a, const char *s, size_t n, bool plus, bool *bad)
{
    char *out = arena_alloc(a, n + 1);
    if (!out) {
        return NULL;
    }
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= n || hexval((unsigned char)s[i + 1]) < 0 ||
                hexval((unsigned char)s[i + 2]) < 0) {
                *bad = true;
                return NULL;
            }
            out[o++] = (char)(hexval((unsigned char)s[i + 1]) * 16 + hexval((unsigned char)s[i + 2]));
            if (out[o - 1] == '\0') {
                /* %00: the value is a C string, a NUL would cut it ("a.txt%00.png" -> "a.txt") */
                *bad = true;
                return NULL;
            }
            i += 2;
        } else if (c == '+' && plus) {
            out[o++] = ' ';
        } else {
            out[o++] = c;
        }
    }
    out[o] = '\0';
    return out;
}

int http_query_parse(http_arena *a, const char *q, http_kv **out, size_t *n)
{
    size_t cap = 1;
    for (const char *p = q; *p; p++) {
        cap += *p == '&';
    }
    http_kv *kv = arena_alloc(a, cap * sizeof *kv);
    if (!kv) {
        return -ENOMEM;
    }
    size_t k = 0;
    const char *p = q;
    while (*p) {
        const char *end = strchr(p, '&');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > 0) {
            const char *eq = memchr(p, '=', len);
            size_t nlen = eq ? (size_t)(eq - p) : len;
            bool bad = false;
            kv[k].name = http_pct_decode(a, p, nlen, true, &bad);
            kv[k].value = eq ? http_pct_decode(a, eq + 1, len - nlen - 1, true, &bad) : "";
            if (bad) {
                return -EPROTO;
            }
            if (!kv[k].name || !kv[k].value) {
                return -ENOMEM;
            }
            k++;
        }
        p += len;
        if (*p == '&') {
            p++;
        }
    }
    *out = kv;
    *n = k;
    return 0;
}

/* ---- building the table ------------------------------------------------------------------ */

int simul_http_app_new(simul_http_app **out)
{
    if (!out) {
        return -EINVAL;
    }
    simul_http_app *app = calloc(1, sizeof *app);
    if (!app) {
        return -ENOMEM;
    }
    app->tail = &app->routes;
    app->hooks_tail = &app->hooks;
    *out = app;
    return 0;
}

static void route_free(http_route *r)
{
    for (size_t i = 0; i < r->nsegs; i++) {
        free(r->segs[i].text);
    }
    free(r->segs);
    free(r->methods);
    free(r);
}

static void hooks_free(http_hook *h)
{
    while (h) {
        http_hook *n = h->next;
        free(h);
        h = n;
    }
}

void simul_http_app_free(simul_http_app *app)
{
    if (!app) {
        return;
    }
    while (app->routes) {
        http_route *r = app->routes;
        app->routes = r->next;
        route_free(r);
    }
    while (app->shared) {
        http_shared *sh = app->shared;
        app->shared = sh->next;
        free(sh);
    }
    while (app->groups) {
        simul_http_group *g = app->groups;
        app->groups = g->next;
        hooks_free(g->hooks);
        free(g->prefix);
        free(g);
    }
    hooks_free(app->hooks);
    while (app->owned) {
        http_owned *o = app->owned;
        app->owned = o->next;
        o->free(o->p);
        free(o);
    }
    while (app->errh) {
        http_errh *e = app->errh;
        app->errh = e->next;
        free(e);
    }
    free(app);
}

static bool is_tchar(int c)
{
    return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* "GET, POST" -> "GET,POST": methods are case-sensitive tokens; only spaces are dropped. */
static char *norm_methods(const char *m)
{
    size_t n = strlen(m);
    char *out = malloc(n + 1), *o = out;
    if (!out) {
        return NULL;
    }
    bool need = true; /* a token must come next */
    for (const char *p = m; *p; p++) {
        if (*p == ' ') {
            continue;
        }
        if (*p == ',') {
            if (need) {
                free(out);
                return NULL;
            }
            need = true;
        } else if (is_tchar((unsigned char)*p)) {
            need = false;
        } else {
            free(out);
            return NULL;
        }
        *o++ = *p;
    }
    *o = '\0';
    if (need) {
        free(out);
        return NULL;
    }
    return out;
}

static int add_route(simul_http_app *app, const simul_http_group *group, const char *methods,
                     const char *prefix, const char *pattern, simul_http_handler handler,
                     void *arg)
{
    if (!app || !methods || !pattern || !handler || pattern[0] != '/') {
        return -EINVAL;
    }
    http_route *r = calloc(1, sizeof *r);
    if (!r) {
        return -ENOMEM;
    }
    r->handler = handler;
    r->arg = arg;
    r->group = group;
    r->methods = norm_methods(methods);
    size_t plen = strlen(prefix), tlen = strlen(pattern);
    char *full = malloc(plen + tlen + 1);
    int rc = -ENOMEM;
    if (!r->methods) {
        rc = -EINVAL;
        goto fail;
    }
    if (!full) {
        goto fail;
    }
    memcpy(full, prefix, plen);
    memcpy(full + plen, pattern, tlen + 1);
    /* A group's "/" is the prefix itself: "/api" + "/" routes "/api". */
    if (plen > 0 && strcmp(pattern, "/") == 0) {
        full[plen] = '\0';
    }
    size_t cap = 1;
    for (char *p = full; *p; p++) {
        cap += *p == '/';
    }
    r->segs = calloc(cap, sizeof *r->segs);
    if (!r->segs) {
        goto fail;
    }
    rc = -EINVAL;
    if (strcmp(full, "/") != 0) {
        char *p = full + 1;
        for (;;) {
            char *slash = strchr(p, '/');
            size_t len = slash ? (size_t)(slash - p) : strlen(p);
            http_seg *s = &r->segs[r->nsegs];
            if (r->nsegs > 0 && r->segs[r->nsegs - 1].kind == SEG_PATH) {
                goto fail; /* <path:...> must be last */
            }
            if (len >= 2 && p[0] == '<' && p[len - 1] == '>') {
                const char *in = p + 1;
                size_t ilen = len - 2;
                s->kind = SEG_STR;
                const char *colon = memchr(in, ':', ilen);
                if (colon) {
                    size_t clen = (size_t)(colon - in);
                    if (clen == 3 && memcmp(in, "int", 3) == 0) {
                        s->kind = SEG_INT;
                    } else if (clen == 4 && memcmp(in, "path", 4) == 0) {
                        s->kind = SEG_PATH;
                    } else if (!(clen == 6 && memcmp(in, "string", 6) == 0)) {
                        goto fail;
                    }
                    ilen -= clen + 1;
                    in = colon + 1;
                }
                if (ilen == 0) {
                    goto fail;
                }
                for (size_t i = 0; i < ilen; i++) {
                    if (!isalnum((unsigned char)in[i]) && in[i] != '_') {
                        goto fail;
                    }
                }
                s->text = strndup(in, ilen);
            } else {
                if (memchr(p, '<', len) || memchr(p, '>', len)) {
                    goto fail;
                }
                s->kind = SEG_LIT;
                s->text = strndup(p, len);
            }
            r->nsegs++;
            if (!s->text) {
                rc = -ENOMEM;
                goto fail;
            }
            if (!slash) {
                break;
            }
            p = slash + 1;
        }
    }
    free(full);
    *app->tail = r;
    app->tail = &r->next;
    return 0;
fail:
    free(full);
    route_free(r);
    return rc;
}

int simul_http_route(simul_http_app *app, const char *methods, const char *pattern,
                     simul_http_handler handler, void *arg)
{
    return add_route(app, NULL, methods, "", pattern, handler, arg);
}

int simul_http_group_new(simul_http_app *app, simul_http_group *parent, const char *prefix,
                         simul_http_group **out)
{
    if (!app || !prefix || prefix[0] != '/' || !out || (parent && parent->app != app)) {
        return -EINVAL;
    }
    simul_http_group *g = calloc(1, sizeof *g);
    const char *pp = parent ? parent->prefix : "";
    size_t a = strlen(pp), b = strlen(prefix);
    while (b > 0 && prefix[b - 1] == '/') {
        b--; /* "/api/" is "/api" */
    }
    char *s = malloc(a + b + 1);
    if (!g || !s) {
        free(g);
        free(s);
        return -ENOMEM;
    }
    memcpy(s, pp, a);
    memcpy(s + a, prefix, b);
    s[a + b] = '\0';
    g->prefix = s;
    g->app = app;
    g->parent = parent;
    g->hooks_tail = &g->hooks;
    g->next = app->groups;
    app->groups = g;
    *out = g;
    return 0;
}

int simul_http_group_route(simul_http_group *g, const char *methods, const char *pattern,
                           simul_http_handler handler, void *arg)
{
    if (!g) {
        return -EINVAL;
    }
    return add_route(g->app, g, methods, g->prefix, pattern, handler, arg);
}

int http_app_own(simul_http_app *app, void (*fn)(void *), void *p)
{
    http_owned *o = calloc(1, sizeof *o);
    if (!o) {
        return -ENOMEM;
    }
    o->free = fn;
    o->p = p;
    o->next = app->owned;
    app->owned = o;
    return 0;
}

/* ---- hooks and error handlers ------------------------------------------------------------ */

int http_hook_add(http_hook ***tail, int kind, void *fn, void *arg)
{
    http_hook *h = calloc(1, sizeof *h);
    if (!h) {
        return -ENOMEM;
    }
    h->kind = kind;
    if (kind == HOOK_BEFORE) {
        h->fn.before = (simul_http_before_fn)fn;
    } else if (kind == HOOK_AFTER) {
        h->fn.after = (simul_http_after_fn)fn;
    } else {
        h->fn.teardown = (simul_http_teardown_fn)fn;
    }
    h->arg = arg;
    **tail = h;
    *tail = &h->next;
    return 0;
}

int simul_http_before_request(simul_http_app *app, simul_http_before_fn fn, void *arg)
{
    return app && fn ? http_hook_add(&app->hooks_tail, HOOK_BEFORE, (void *)fn, arg) : -EINVAL;
}

int simul_http_after_request(simul_http_app *app, simul_http_after_fn fn, void *arg)
{
    return app && fn ? http_hook_add(&app->hooks_tail, HOOK_AFTER, (void *)fn, arg) : -EINVAL;
}

int simul_http_teardown_request(simul_http_app *app, simul_http_teardown_fn fn, void *arg)
{
    return app && fn ? http_hook_add(&app->hooks_tail, HOOK_TEARDOWN, (void *)fn, arg) : -EINVAL;
}

int simul_http_group_before_request(simul_http_group *g, simul_http_before_fn fn, void *arg)
{
    return g && fn ? http_hook_add(&g->hooks_tail, HOOK_BEFORE, (void *)fn, arg) : -EINVAL;
}

int simul_http_group_after_request(simul_http_group *g, simul_http_after_fn fn, void *arg)
{
    return g && fn ? http_hook_add(&g->hooks_tail, HOOK_AFTER, (void *)fn, arg) : -EINVAL;
}

int simul_http_error_handler(simul_http_app *app, int status, simul_http_handler fn, void *arg)
{
    if (!app || !fn || (status != 0 && (status < 400 || status > 599))) {
        return -EINVAL;
    }
    for (http_errh *e = app->errh; e; e = e->next) {
        if (e->status == status) { /* replaces, as Flask's errorhandler does */
            e->fn = fn;
            e->arg = arg;
            return 0;
        }
    }
    http_errh *e = calloc(1, sizeof *e);
    if (!e) {
        return -ENOMEM;
    }
    e->status = status;
    e->fn = fn;
    e->arg = arg;
    e->next = app->errh;
    app->errh = e;
    return 0;
}

const http_errh *http_errh_find(const simul_http_app *app, int status)
{
    const http_errh *any = NULL;
    for (const http_errh *e = app->errh; e; e = e->next) {
        if (e->status == status) {
            return e;
        }
        if (e->status == 0) {
            any = e;
        }
    }
    return status >= 400 ? any : NULL;
}

/* ---- matching ---------------------------------------------------------------------------- */

/* Whether the comma list (spaces after commas allowed) holds method m. */
static bool method_in(const char *list, const char *m, size_t mlen)
{
    for (const char *p = list; *p;) {
        while (*p == ' ') {
            p++;
        }
        const char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        if (len == mlen && memcmp(p, m, len) == 0) {
            return true;
        }
        p += len + (c ? 1 : 0);
    }
    return false;
}

static bool int_ok(const char *s, size_t n)
{
    size_t i = s[0] == '-' ? 1 : 0;
    if (i == n || n - i > 18) { /* 18 digits always fit int64 */
        return false;
    }
    for (; i < n; i++) {
        if (!isdigit((unsigned char)s[i])) {
            return false;
        }
    }
    return true;
}

/* Whether path matches r; fills spans of the parameters' raw text (at most r->nsegs). */
static bool match(const http_route *r, const char *path, const char **ps, size_t *pl)
{
    const char *p = path + 1;
    bool root = path[1] == '\0';
    if (root) {
        return r->nsegs == 0;
    }
    size_t k = 0;
    for (size_t i = 0; i < r->nsegs; i++) {
        const http_seg *s = &r->segs[i];
        if (!p) {
            return false; /* the path ran out */
        }
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        switch (s->kind) {
        case SEG_LIT:
            if (strlen(s->text) != len || memcmp(s->text, p, len) != 0) {
                return false;
            }
            break;
        case SEG_STR:
        case SEG_INT:
            if (len == 0 || (s->kind == SEG_INT && !int_ok(p, len))) {
                return false;
            }
            ps[k] = p;
            pl[k++] = len;
            break;
        case SEG_PATH:
            len = strlen(p);
            if (len == 0) {
                return false;
            }
            ps[k] = p;
            pl[k++] = len;
            return true;
        }
        p = slash ? slash + 1 : NULL;
    }
    return p == NULL;
}

static void allow_add(char *allow, size_t cap, const char *m, size_t mlen)
{
    /* already there? */
    if (method_in(allow, m, mlen)) {
        return;
    }
    size_t n = strlen(allow);
    if (n + mlen + 3 > cap) {
        return;
    }
    if (n) {
        memcpy(allow + n, ", ", 2);
        n += 2;
    }
    memcpy(allow + n, m, mlen);
    allow[n + mlen] = '\0';
}

void http_route_find(const simul_http_app *app, const char *method, const char *path,
                     http_arena *a, http_match *m)
{
    memset(m, 0, sizeof *m);
    size_t mlen = strlen(method);
    bool head = strcmp(method, "HEAD") == 0;
    const char *ps[64];
    size_t pl[64];
    for (const http_route *r = app->routes; r; r = r->next) {
        if (r->nsegs > 64 || !match(r, path, ps, pl)) {
            continue;
        }
        if (!m->path_matched) {
            m->path_matched = true;
        }
        /* The Allow list: every method of every route on this path (allow_add drops repeats). */
        for (const char *p = r->methods; *p;) {
            const char *c = strchr(p, ',');
            size_t len = c ? (size_t)(c - p) : strlen(p);
            allow_add(m->allow, sizeof m->allow, p, len);
            if (len == 3 && memcmp(p, "GET", 3) == 0) {
                allow_add(m->allow, sizeof m->allow, "HEAD", 4);
            }
            p += len + (c ? 1 : 0);
        }
        if (m->route) {
            continue;
        }
        if (method_in(r->methods, method, mlen) || (head && method_in(r->methods, "GET", 3))) {
            m->route = r;
            size_t k = 0;
            for (size_t i = 0; i < r->nsegs; i++) {
                if (r->segs[i].kind != SEG_LIT) {
                    k++;
                }
            }
            m->params = k ? arena_alloc(a, k * sizeof *m->params) : NULL;
            for (size_t i = 0, j = 0; i < r->nsegs && m->params; i++) {
                if (r->segs[i].kind == SEG_LIT) {
                    continue;
                }
                m->params[j].name = r->segs[i].text;
                m->params[j].value = http_pct_decode(a, ps[j], pl[j], false, &m->bad_escape);
                j++;
            }
            m->nparams = k;
        }
    }
    if (m->path_matched) {
        allow_add(m->allow, sizeof m->allow, "OPTIONS", 7);
    }
}
