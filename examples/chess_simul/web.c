/* web.c — the chess simul live in a browser. The page (web/index.html, embedded at build time)
 * follows a feed over WebSocket (/ws) or Server-Sent Events (/events) with the same JSON frames.
 * The idea: a sampler task copies the session into a snapshot twenty times a second, stamping
 * each board with the snapshot's version when it changed; each feed connection sends what is
 * newer than what it sent last, so the master's task never waits on a browser. */
#include "web.h"

#include <simul/http.h>

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "web_page.h" /* chess_web_page[], chess_web_page_len: web/index.html */

#define WEB_MAX_BOARDS 200 /* a page shows at most this many */
#define WEB_MAX_POINTS 2000 /* chart points per mode (halved when full) */
#define WEB_TICK_S 0.05

typedef struct wboard {
    char pl[65];  /* 64 squares, a8..h1 row by row: "PNBRQK" white, "pnbrqk" black, '.' */
    char last[6]; /* the last move, UCI */
    unsigned char state;
    unsigned moves; /* moves played on it, both sides */
    unsigned ver;   /* the snapshot version of its last change */
} wboard;

static struct web {
    const chess_config *cfg;
    web_opts o;
    simul_http_app *app;
    simul_http_server *srv;
    simul_task *sampler;
    simul_event *page_came;
    session *s;     /* the mode being played, NULL between modes */
    int mode;       /* -1 before the first; 0 sync, 1 async */
    bool stopping;
    unsigned ver;   /* bumped by every change */
    long nb;
    wboard *b;
    long at, moves, finished, abandoned;
    double elapsed;
    bool started[2], done[2];
    double measured[2];
    float pts[2][WEB_MAX_POINTS][2];
    int npts[2];
    unsigned epoch[2]; /* bumped when the points were halved: a page gets them all again */
    int pages;         /* feeds open now */
} W = {.mode = -1};

/* ---- the snapshot ---------------------------------------------------------------------------- */

static void render(const chess_pos *p, char pl[65])
{
    static const char glyph[] = ".PNBRQK";
    for (int r = 0; r < 8; r++) {
        for (int f = 0; f < 8; f++) {
            unsigned char q = p->sq[(7 - r) * 8 + f]; /* a1 = 0: draw rank 8 first */
            char c = glyph[q & 7];
            pl[r * 8 + f] = (q & 8) && c != '.' ? (char)(c + 'a' - 'A') : c;
        }
    }
    pl[64] = '\0';
}

static double mode_elapsed(const session *s)
{
    if (!s->started) {
        return 0;
    }
    int64_t end = s->done ? s->t_end_ns : simul_now_ns();
    return (double)(end - s->t0_ns) / 1e9;
}

static void add_point(int m, double t, long moves)
{
    if (W.npts[m] == WEB_MAX_POINTS) {
        for (int i = 0; i < WEB_MAX_POINTS / 2; i++) {
            memcpy(W.pts[m][i], W.pts[m][2 * i], sizeof W.pts[m][i]);
        }
        W.npts[m] = WEB_MAX_POINTS / 2;
        W.epoch[m]++;
    }
    W.pts[m][W.npts[m]][0] = (float)t;
    W.pts[m][W.npts[m]][1] = (float)moves;
    W.npts[m]++;
}

/* Copies the session into the snapshot; bumps W.ver if anything changed. */
static void sample(void)
{
    session *s = W.s;
    if (!s) {
        return;
    }
    bool changed = false;
    unsigned next = W.ver + 1;
    for (long i = 0; i < W.nb; i++) {
        const board *b = &s->boards[i];
        wboard *w = &W.b[i];
        char pl[65];
        render(&b->pos, pl);
        unsigned moves = b->master_moves + b->replies;
        if (memcmp(pl, w->pl, 65) != 0 || w->state != b->state || w->moves != moves ||
            memcmp(w->last, b->last_move, sizeof w->last) != 0) {
            memcpy(w->pl, pl, 65);
            memcpy(w->last, b->last_move, sizeof w->last);
            w->last[5] = '\0';
            w->state = (unsigned char)b->state;
            w->moves = moves;
            w->ver = next;
            changed = true;
        }
    }
    double t = mode_elapsed(s);
    int m = W.mode;
    if (s->started && !W.started[m]) {
        W.started[m] = true;
        add_point(m, 0, 0);
        changed = true;
    }
    if (W.at != s->at_board || W.moves != s->moves || W.finished != s->finished ||
        W.abandoned != s->abandoned || W.elapsed != t) {
        changed = true;
    }
    if (s->started && W.npts[m] && (W.moves != s->moves || s->done)) {
        add_point(m, t, s->moves);
    }
    W.at = s->at_board;
    W.moves = s->moves;
    W.finished = s->finished;
    W.abandoned = s->abandoned;
    W.elapsed = t;
    if (changed) {
        W.ver = next;
    }
}

static int sampler_main(void *arg)
{
    (void)arg;
    while (simul_sleep(WEB_TICK_S) == 0) {
        sample();
    }
    return 0;
}

void web_attach(session *s)
{
    if (!W.app) {
        return;
    }
    W.mode = s->sync ? 0 : 1;
    W.s = s;
    for (long i = 0; i < W.nb; i++) {
        W.b[i].pl[0] = '\0'; /* every board is sent again */
    }
    W.npts[W.mode] = 0;
    W.epoch[W.mode]++;
    sample();
}

void web_detach(session *s)
{
    if (!W.app || W.s != s) {
        return;
    }
    sample();
    if (s->started) {
        W.done[W.mode] = true;
        W.measured[W.mode] = (double)(s->t_end_ns - s->t0_ns) / 1e9;
    }
    W.s = NULL;
    W.ver++;
}

/* ---- frames ---------------------------------------------------------------------------------- */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf;

static void put(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(sbuf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = b->cap - b->len;
        int n = vsnprintf(b->p ? b->p + b->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = true;
            return;
        }
        if ((size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + (size_t)n + 1) {
            cap *= 2;
        }
        char *np = realloc(b->p, cap);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
}

static const char *const mode_names[2] = {"sync", "async"};

static void put_hello(sbuf *b)
{
    const chess_config *cfg = W.cfg;
    const chess_params *p = &cfg->p;
    double per_s = cfg->scale_ms / 1000.0; /* real seconds per seed minute */
    char a[32], c[32];
    chess_format_seed(chess_model_sync_min(p), a, sizeof a);
    chess_format_seed(chess_model_async_min(p), c, sizeof c);
    bool both = cfg->compare || cfg->sync;
    put(b,
        "{\"t\":\"hello\",\"boards\":%ld,\"shown\":%ld,\"moves\":%ld,\"scale_ms\":%g,"
        "\"master_min\":%g,\"opponent_min\":%g,\"switch_min\":%g,\"modes\":[%s%s%s],"
        "\"model\":{\"sync_s\":%.6f,\"async_s\":%.6f,\"sync_seed\":\"%s\",\"async_seed\":\"%s\"},"
        "\"regime\":\"%s\"}",
        p->boards, W.nb, p->moves, cfg->scale_ms, p->master_min, p->opponent_min, p->switch_min,
        both ? "\"sync\"" : "", both && !cfg->sync ? "," : "", cfg->sync ? "" : "\"async\"",
        chess_model_sync_min(p) * per_s, chess_model_async_min(p) * per_s, a, c,
        chess_model_master_bound(p) ? "master-bound" : "opponent-bound");
}

/* What one page has been sent. */
typedef struct follower {
    unsigned ver;
    int npts[2];
    unsigned epoch[2];
} follower;

/* The frame for a page: what changed since it was last sent (always something: W.ver moved). */
static void put_frame(sbuf *b, follower *f)
{
    put(b, "{\"t\":\"frame\",\"mode\":%s%s%s,\"playing\":%s,\"elapsed\":%.3f,\"at\":%ld,"
           "\"moves\":%ld,\"total\":%ld,\"finished\":%ld,\"abandoned\":%ld,\"measured\":[",
        W.mode >= 0 ? "\"" : "", W.mode >= 0 ? mode_names[W.mode] : "null",
        W.mode >= 0 ? "\"" : "", W.s && W.s->started && !W.s->done ? "true" : "false",
        W.elapsed, W.at, W.moves, 2 * W.cfg->p.boards * W.cfg->p.moves, W.finished, W.abandoned);
    for (int m = 0; m < 2; m++) {
        if (W.done[m]) {
            put(b, "%s%.6f", m ? "," : "", W.measured[m]);
        } else {
            put(b, "%snull", m ? "," : "");
        }
    }
    put(b, "],\"boards\":[");
    bool first = true;
    for (long i = 0; i < W.nb; i++) {
        const wboard *w = &W.b[i];
        if (w->ver > f->ver && w->pl[0]) {
            put(b, "%s[%ld,\"%s\",\"%s\",%u,%u]", first ? "" : ",", i, w->pl, w->last, w->state,
                w->moves);
            first = false;
        }
    }
    put(b, "],\"pts\":[");
    first = true;
    for (int m = 0; m < 2; m++) {
        bool reset = f->epoch[m] != W.epoch[m];
        int from = reset ? 0 : f->npts[m];
        if (!reset && from == W.npts[m]) {
            continue;
        }
        put(b, "%s{\"mode\":%d,\"reset\":%s,\"p\":[", first ? "" : ",", m,
            reset ? "true" : "false");
        for (int i = from; i < W.npts[m]; i++) {
            put(b, "%s[%.3f,%.0f]", i == from ? "" : ",", W.pts[m][i][0], W.pts[m][i][1]);
        }
        put(b, "]}");
        first = false;
        f->npts[m] = W.npts[m];
        f->epoch[m] = W.epoch[m];
    }
    put(b, "]}");
    f->ver = W.ver;
}

/* The feed: hello, then a frame whenever the snapshot moved, then "end" once everything was
 * played (or the program stops). send: one message; returns < 0 when the page is gone. */
typedef int (*send_fn)(void *ctx, const char *event, const char *json);

static int feed(send_fn send, void *ctx)
{
    follower f = {0};
    memset(f.epoch, 0xff, sizeof f.epoch); /* every mode's points go out in the first frame */
    sbuf b = {0};
    put_hello(&b);
    int rc = b.oom ? -ENOMEM : send(ctx, "hello", b.p);
    W.pages++;
    simul_event_set(W.page_came);
    bool over = false;
    while (rc == 0) {
        if (f.ver != W.ver) {
            b.len = 0;
            put_frame(&b, &f);
            rc = b.oom ? -ENOMEM : send(ctx, "frame", b.p);
            continue;
        }
        over = W.stopping || (W.mode >= 0 && !W.s && W.done[W.mode] &&
                              (W.mode == 1 || W.cfg->sync));
        if (over) {
            rc = send(ctx, "end", "{\"t\":\"end\"}");
            break;
        }
        rc = simul_sleep(WEB_TICK_S);
    }
    W.pages--;
    free(b.p);
    return rc;
}

/* ---- HTTP ------------------------------------------------------------------------------------ */

static int h_page(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)req;
    (void)arg;
    simul_http_response_header(res, "Content-Type", "text/html; charset=utf-8");
    simul_http_response_header(res, "Cache-Control", "no-store");
    return simul_http_response_body(res, chess_web_page, chess_web_page_len);
}

static int h_state(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)req;
    (void)arg;
    follower f = {0};
    memset(f.epoch, 0xff, sizeof f.epoch);
    sbuf b = {0};
    put(&b, "{\"hello\":");
    put_hello(&b);
    put(&b, ",\"frame\":");
    put_frame(&b, &f);
    put(&b, "}");
    int rc = b.oom ? -ENOMEM : 0;
    if (rc == 0) {
        simul_http_response_header(res, "Content-Type", "application/json");
        simul_http_response_header(res, "Cache-Control", "no-store");
        rc = simul_http_response_body(res, b.p, b.len);
    }
    free(b.p);
    return rc;
}

static int sse_send(void *ctx, const char *event, const char *json)
{
    return simul_http_sse_send(ctx, event, NULL, -1, json);
}

static int h_events(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)req;
    (void)arg;
    int rc = simul_http_sse_start(res);
    if (rc == 0) {
        feed(sse_send, res);
    }
    return 0;
}

static int ws_send(void *ctx, const char *event, const char *json)
{
    (void)event;
    return simul_ws_send_text(ctx, json);
}

static int h_ws(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)arg;
    simul_ws *ws;
    if (simul_ws_upgrade(req, res, NULL, &ws) < 0) {
        return 0; /* refused: answered 400/426 */
    }
    int rc = feed(ws_send, ws);
    simul_ws_close(ws, rc == 0 ? SIMUL_WS_CLOSE_NORMAL : SIMUL_WS_CLOSE_GOING_AWAY,
                   rc == 0 ? "simul over" : NULL);
    return 0;
}

static int h_icon(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)req;
    (void)arg;
    simul_http_response_header(res, "Content-Type", "image/svg+xml");
    static const char svg[] = "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 8 8'>"
                              "<rect width='8' height='8' fill='#b58863'/>"
                              "<rect width='4' height='4' fill='#f0d9b5'/>"
                              "<rect x='4' y='4' width='4' height='4' fill='#f0d9b5'/></svg>";
    return simul_http_response_body(res, svg, sizeof svg - 1);
}

int web_start(const chess_config *cfg, const web_opts *o)
{
    W.cfg = cfg;
    W.o = *o;
    W.nb = cfg->p.boards < WEB_MAX_BOARDS ? cfg->p.boards : WEB_MAX_BOARDS;
    W.b = calloc((size_t)W.nb, sizeof *W.b);
    int rc = W.b ? simul_http_app_new(&W.app) : -ENOMEM;
    if (rc == 0) {
        simul_http_route(W.app, "GET", "/", h_page, NULL);
        simul_http_route(W.app, "GET", "/state", h_state, NULL);
        simul_http_route(W.app, "GET", "/events", h_events, NULL);
        simul_http_route(W.app, "GET", "/ws", h_ws, NULL);
        simul_http_route(W.app, "GET", "/favicon.ico", h_icon, NULL);
        rc = simul_event_new(&W.page_came);
    }
    if (rc == 0) {
        rc = simul_http_serve(W.app, o->host, o->port, NULL, &W.srv);
    }
    if (rc == 0) {
        rc = simul_task_spawn(&W.sampler, sampler_main, NULL,
                              &(simul_task_opts){.name = "web-sampler"});
    }
    if (rc < 0) {
        fprintf(stderr, "chess_simul: no web page (%s:%s): %s\n", o->host, o->port,
                simul_strerror(rc));
        if (W.srv) {
            simul_http_server_shutdown(W.srv, 0);
            simul_http_server_free(W.srv);
        }
        simul_event_free(W.page_came);
        simul_http_app_free(W.app);
        free(W.b);
        memset(&W, 0, sizeof W);
        W.mode = -1;
        return rc;
    }
    const char *host = o->host;
    bool v6 = strchr(host, ':') != NULL;
    printf("web: http://%s%s%s:%d/ (the boards live; --no-web to skip)\n", v6 ? "[" : "", host,
           v6 ? "]" : "", simul_http_server_port(W.srv));
    fflush(stdout);
    return 0;
}

void web_wait_page(void)
{
    if (!W.app || !(W.o.wait_s > 0)) {
        return;
    }
    simul_scope sc;
    simul_scope_timeout(&sc, W.o.wait_s);
    simul_event_wait(W.page_came);
    simul_scope_end(&sc);
}

void web_stop(void)
{
    if (!W.app) {
        return;
    }
    if (W.o.linger_s > 0) {
        simul_sleep(W.o.linger_s); /* SIGINT cancels us: then straight on */
    }
    simul_scope sh;
    simul_scope_shield(&sh);
    W.stopping = true;
    W.ver++;
    /* The feeds see `stopping` at their next tick and say "end"; the rest get 1001. */
    simul_http_server_shutdown(W.srv, 1.0);
    simul_http_server_free(W.srv);
    simul_task_cancel(W.sampler);
    simul_task_join(W.sampler, NULL);
    simul_scope_end(&sh);
    simul_event_free(W.page_came);
    simul_http_app_free(W.app);
    free(W.b);
    memset(&W, 0, sizeof W);
    W.mode = -1;
}
