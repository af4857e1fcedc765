/* notes.c — libsimul-http's example app: a JSON CRUD API of notes (jansson) with a static page.
 * The idea: each request is a task, so a handler is straight-line code; the store is a plain
 * array on the one loop (no locks: nothing else runs while a handler does not suspend).
 *
 *   GET    /api/notes[?q=text]  the notes (title containing q), newest first
 *   POST   /api/notes           {"title": "...", "body": "..."} -> 201, Location, the note
 *   GET    /api/notes/<id>      one note (404 as JSON)
 *   PUT    /api/notes/<id>      replaces title and body -> the note
 *   DELETE /api/notes/<id>      -> 204
 *   /                           the page (static/index.html: lists, adds, deletes)
 *
 * Usage: notes [--host H] [--port P] [--static DIR] [--access-log]
 *              [--tls-cert FILE --tls-key FILE]        (port 0 picks one; "listening on" tells)
 * SIGINT/SIGTERM shut it down gracefully. */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <simul.h>
#include <simul/http.h>
#ifdef SIMUL_EXAMPLE_TLS
#include <simul/tls.h>
#endif

#ifndef NOTES_STATIC_DIR
#define NOTES_STATIC_DIR "static"
#endif

typedef struct note {
    int64_t id;
    char *title, *body;
    char created[32], updated[32];
} note;

static note *notes;
static size_t nnotes, cap_notes;
static int64_t next_id = 1;

#define MAX_TITLE 200
#define MAX_BODY 10000

static void now_iso(char *out, size_t n)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static json_t *note_json(const note *n)
{
    return json_pack("{s:I,s:s,s:s,s:s,s:s}", "id", (json_int_t)n->id, "title", n->title, "body",
                     n->body, "created", n->created, "updated", n->updated);
}

static note *find(int64_t id)
{
    for (size_t i = 0; i < nnotes; i++) {
        if (notes[i].id == id) {
            return &notes[i];
        }
    }
    return NULL;
}

static int json_error(simul_http_response *res, int status, const char *msg)
{
    json_t *v = json_pack("{s:s,s:i}", "error", msg, "status", status);
    int rc = v ? simul_http_response_json(res, status, v) : -ENOMEM;
    json_decref(v);
    return rc;
}

static int send_json(simul_http_response *res, int status, json_t *v)
{
    if (!v) {
        return -ENOMEM;
    }
    int rc = simul_http_response_json(res, status, v);
    json_decref(v);
    return rc;
}

/* Reads {"title": string, "body": string} with limits; on failure answers and returns 1. */
static int read_note(simul_http_request *req, simul_http_response *res, const char **title,
                     const char **body, json_t **doc)
{
    const char *ct = simul_http_request_header(req, "Content-Type");
    if (!ct || strncmp(ct, "application/json", 16) != 0) {
        json_error(res, 415, "send application/json");
        return 1;
    }
    int rc = simul_http_request_json(req, doc);
    if (rc == -EBADMSG) {
        json_error(res, 400, "the body is not JSON");
        return 1;
    }
    if (rc < 0) {
        return rc; /* 413, a broken body, a client gone: the server answers */
    }
    json_t *t = json_object_get(*doc, "title"), *b = json_object_get(*doc, "body");
    if (!json_is_string(t) || (b && !json_is_string(b))) {
        json_error(res, 422, "title (a string) is required, body is a string");
        return 1;
    }
    *title = json_string_value(t);
    *body = b ? json_string_value(b) : "";
    if (!**title || strlen(*title) > MAX_TITLE || strlen(*body) > MAX_BODY) {
        json_error(res, 422, "title: 1 to 200 bytes, body: at most 10000");
        return 1;
    }
    return 0;
}

static int list(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)arg;
    const char *q = simul_http_request_query(req, "q");
    json_t *a = json_array();
    for (size_t i = nnotes; i-- > 0;) {
        if (!q || strstr(notes[i].title, q)) {
            json_array_append_new(a, note_json(&notes[i]));
        }
    }
    return send_json(res, 200, a);
}

static int create(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)arg;
    const char *title, *body;
    json_t *doc = NULL;
    int rc = read_note(req, res, &title, &body, &doc);
    if (rc != 0) {
        json_decref(doc);
        return rc < 0 ? rc : 0;
    }
    if (nnotes == cap_notes) {
        size_t cap = cap_notes ? cap_notes * 2 : 16;
        note *nn = realloc(notes, cap * sizeof *nn);
        if (!nn) {
            json_decref(doc);
            return -ENOMEM;
        }
        notes = nn;
        cap_notes = cap;
    }
    note *n = &notes[nnotes];
    n->id = next_id;
    n->title = strdup(title);
    n->body = strdup(body);
    json_decref(doc);
    if (!n->title || !n->body) {
        free(n->title);
        free(n->body);
        return -ENOMEM;
    }
    next_id++;
    nnotes++;
    now_iso(n->created, sizeof n->created);
    memcpy(n->updated, n->created, sizeof n->updated);
    char loc[64];
    snprintf(loc, sizeof loc, "/api/notes/%lld", (long long)n->id);
    simul_http_response_header(res, "Location", loc);
    return send_json(res, 201, note_json(n));
}

static int get_one(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)arg;
    int64_t id;
    note *n = simul_http_request_param_int(req, "id", &id) == 0 ? find(id) : NULL;
    return n ? send_json(res, 200, note_json(n)) : json_error(res, 404, "no such note");
}

static int replace(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)arg;
    int64_t id;
    note *n = simul_http_request_param_int(req, "id", &id) == 0 ? find(id) : NULL;
    if (!n) {
        return json_error(res, 404, "no such note");
    }
    const char *title, *body;
    json_t *doc = NULL;
    int rc = read_note(req, res, &title, &body, &doc);
    if (rc != 0) {
        json_decref(doc);
        return rc < 0 ? rc : 0;
    }
    char *t = strdup(title), *b = strdup(body);
    json_decref(doc);
    if (!t || !b) {
        free(t);
        free(b);
        return -ENOMEM;
    }
    free(n->title);
    free(n->body);
    n->title = t;
    n->body = b;
    now_iso(n->updated, sizeof n->updated);
    return send_json(res, 200, note_json(n));
}

static int delete(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)arg;
    int64_t id;
    note *n = simul_http_request_param_int(req, "id", &id) == 0 ? find(id) : NULL;
    if (!n) {
        return json_error(res, 404, "no such note");
    }
    free(n->title);
    free(n->body);
    size_t i = (size_t)(n - notes);
    memmove(&notes[i], &notes[i + 1], (nnotes - i - 1) * sizeof *notes);
    nnotes--;
    return simul_http_response_status(res, 204);
}

/* Errors under /api are JSON; the page's are the server's text. */
static int api_errors(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)arg;
    if (strncmp(simul_http_request_path(req), "/api/", 5) != 0) {
        return -ENOENT; /* a failing error handler: the server's own answer */
    }
    int status = simul_http_response_code(res); /* the status comes set */
    return json_error(res, status, status == 404   ? "no such resource"
                                   : status == 405 ? "method not allowed here"
                                   : status == 413 ? "too large"
                                                   : "request failed");
}

static void no_store(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)arg;
    if (strncmp(simul_http_request_path(req), "/api/", 5) == 0) {
        simul_http_response_header(res, "Cache-Control", "no-store");
    }
}

static const char *host = "127.0.0.1", *port = "8080", *static_dir = NOTES_STATIC_DIR;
static const char *tls_cert, *tls_key;
static bool access_log;

static int serve(void *arg)
{
    (void)arg;
    simul_http_app *app;
    simul_http_group *api;
    int rc = simul_http_app_new(&app);
    rc = rc ? rc : simul_http_group_new(app, NULL, "/api/notes", &api);
    rc = rc ? rc : simul_http_group_route(api, "GET", "/", list, NULL);
    rc = rc ? rc : simul_http_group_route(api, "POST", "/", create, NULL);
    rc = rc ? rc : simul_http_group_route(api, "GET", "/<int:id>", get_one, NULL);
    rc = rc ? rc : simul_http_group_route(api, "PUT", "/<int:id>", replace, NULL);
    rc = rc ? rc : simul_http_group_route(api, "DELETE", "/<int:id>", delete, NULL);
    rc = rc ? rc : simul_http_error_handler(app, 0, api_errors, NULL);
    rc = rc ? rc : simul_http_after_request(app, no_store, NULL);
    simul_http_static_opts so = {.max_age = 0};
    rc = rc ? rc : simul_http_static(app, "/", static_dir, &so);
    if (rc < 0) {
        fprintf(stderr, "notes: setting up: %s\n", simul_strerror(rc));
        simul_http_app_free(app);
        return 1;
    }
    simul_http_server_opts opts = {.health = true, .limits.max_body = 64 * 1024};
    if (access_log) {
        opts.access_log = simul_http_access_log_file;
    }
#ifdef SIMUL_EXAMPLE_TLS
    simul_tls_config *cfg = NULL;
    if (tls_cert) {
        char why[256];
        rc = simul_tls_config_new_server(&cfg);
        rc = rc ? rc : simul_tls_config_set_cert(cfg, tls_cert, tls_key, why, sizeof why);
        if (rc < 0) {
            fprintf(stderr, "notes: TLS: %s\n", why);
            simul_http_app_free(app);
            return 1;
        }
        opts.tls = cfg;
        opts.tls_accept = simul_tls_accept;
    }
#else
    if (tls_cert) {
        fprintf(stderr, "notes: built without libsimul-tls\n");
        return 1;
    }
#endif
    simul_http_server *srv;
    rc = simul_http_serve(app, host, port, &opts, &srv);
    if (rc < 0) {
        fprintf(stderr, "notes: %s:%s: %s\n", host, port, simul_strerror(rc));
        simul_http_app_free(app);
        return 1;
    }
    printf("listening on %s:%d\n", host, simul_http_server_port(srv));
    fflush(stdout);
    const int sigs[] = {SIGINT, SIGTERM};
    simul_wait_signal(sigs, 2);
    simul_scope shield;
    simul_scope_shield(&shield);
    simul_http_server_shutdown(srv, 5);
    simul_scope_end(&shield);
    simul_http_server_free(srv);
    simul_http_app_free(app);
#ifdef SIMUL_EXAMPLE_TLS
    simul_tls_config_free(cfg);
#endif
    for (size_t i = 0; i < nnotes; i++) {
        free(notes[i].title);
        free(notes[i].body);
    }
    free(notes);
    return 0;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) {
            host = argv[++i];
        } else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            port = argv[++i];
        } else if (strcmp(argv[i], "--static") == 0 && i + 1 < argc) {
            static_dir = argv[++i];
        } else if (strcmp(argv[i], "--tls-cert") == 0 && i + 1 < argc) {
            tls_cert = argv[++i];
        } else if (strcmp(argv[i], "--tls-key") == 0 && i + 1 < argc) {
            tls_key = argv[++i];
        } else if (strcmp(argv[i], "--access-log") == 0) {
            access_log = true;
        } else {
            fprintf(stderr, "usage: %s [--host H] [--port P] [--static DIR] [--access-log] "
                            "[--tls-cert FILE --tls-key FILE]\n", argv[0]);
            return 2;
        }
    }
    if (!tls_cert != !tls_key) {
        fprintf(stderr, "notes: --tls-cert and --tls-key go together\n");
        return 2;
    }
    return simul_run(serve, NULL) == 0 ? 0 : 1;
}
