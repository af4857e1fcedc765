/* test_http_ranges.c — static files with several ranges (RFC 9110 14.6 multipart/byteranges):
 * each part's bytes, type and Content-Range checked against the file; overlapping and near
 * ranges coalesced; more than 16 ranges ignored (the whole file, 200), so "many small ranges"
 * cannot amplify an answer; unsatisfiable ones dropped or 416; HEAD; curl -r as a real client.
 * The static file's open and stat run on the executor's threads; a FIFO in the root is no
 * file (404) and does not block anything. */
#include "test_main_helpers.h"

#include <simul/http.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "test_http_server_helpers.h"

#define FSIZE 100000

typedef struct fixture {
    simul_http_app *app;
    simul_http_server *srv;
    int port;
    char dir[64];
    uint8_t data[FSIZE];
} fixture;

static fixture *g;

static void up(fixture *f)
{
    memset(f, 0, sizeof *f);
    g = f;
    snprintf(f->dir, sizeof f->dir, "/tmp/simul-ranges-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    for (size_t i = 0; i < FSIZE; i++) {
        f->data[i] = (uint8_t)(i * 7 + i / 251);
    }
    char p[128];
    snprintf(p, sizeof p, "%s/data.bin", f->dir);
    FILE *fp = fopen(p, "w");
    assert_non_null(fp);
    assert_int_equal(fwrite(f->data, 1, FSIZE, fp), FSIZE);
    fclose(fp);
    snprintf(p, sizeof p, "%s/fifo.txt", f->dir);
    assert_int_equal(mkfifo(p, 0600), 0);
    assert_int_equal(simul_http_app_new(&f->app), 0);
    assert_int_equal(simul_http_static(f->app, "/s", f->dir, NULL), 0);
    assert_int_equal(simul_http_serve(f->app, "127.0.0.1", "0", NULL, &f->srv), 0);
    f->port = simul_http_server_port(f->srv);
}

static void down(fixture *f)
{
    assert_int_equal(simul_http_server_shutdown(f->srv, 10), 0);
    simul_http_server_free(f->srv);
    simul_http_app_free(f->app);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
}

/* Checks a multipart/byteranges body against the file: the parts' ranges in order as `want`
 * ("a-b" list), each part's bytes equal to the file's. */
static int check_multipart(const response *r, const char *want)
{
    char ct[128], b[160];
    CHECK(hdr_get(r->head, "Content-Type", ct, sizeof ct));
    CHECK(strncmp(ct, "multipart/byteranges; boundary=", 31) == 0);
    snprintf(b, sizeof b, "\r\n--%s", ct + 31);
    char cl[32];
    CHECK(hdr_get(r->head, "Content-Length", cl, sizeof cl));
    CHECK((size_t)atol(cl) == r->body_len);
    const char *p = r->body, *end = r->body + r->body_len;
    char got[512] = "";
    for (;;) {
        CHECK((size_t)(end - p) >= strlen(b) && memcmp(p, b, strlen(b)) == 0);
        p += strlen(b);
        if (end - p >= 4 && memcmp(p, "--\r\n", 4) == 0) {
            p += 4;
            break;
        }
        CHECK(end - p >= 2 && memcmp(p, "\r\n", 2) == 0);
        const char *he = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
        CHECK(he);
        char head[256];
        CHECK((size_t)(he - p) + 3 < sizeof head);
        memcpy(head, p, (size_t)(he - p) + 2);
        head[he - p + 2] = '\0';
        CHECK(strstr(head, "\r\nContent-Type: application/octet-stream\r\n"));
        unsigned long long a, z, size;
        const char *crp = strstr(head, "\r\nContent-Range: bytes ");
        CHECK(crp && sscanf(crp + 23, "%llu-%llu/%llu", &a, &z, &size) == 3);
        CHECK(size == FSIZE && a <= z && z < FSIZE);
        p = he + 4;
        CHECK((size_t)(end - p) >= z - a + 1);
        CHECK(memcmp(p, g->data + a, z - a + 1) == 0);
        p += z - a + 1;
        size_t gl = strlen(got);
        snprintf(got + gl, sizeof got - gl, "%s%llu-%llu", gl ? "," : "", a, z);
    }
    CHECK(p == end);
    if (strcmp(got, want) != 0) {
        fprintf(stderr, "parts %s, wanted %s\n", got, want);
        return __LINE__;
    }
    return 0;
}

static int get(fixture *f, const char *path, const char *range, const char *method,
               response *r)
{
    char req[2048];
    snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: t\r\n%s%s%s\r\n", method, path,
             range ? "Range: " : "", range ? range : "", range ? "\r\n" : "");
    return cl_once(f->port, req, r, strcmp(method, "HEAD") == 0, NULL);
}

static int c_ranges(void *arg)
{
    fixture *f = arg;
    response r;
    char v[128];
    /* Three ranges, one of them a suffix: three parts in file order. */
    CHECK(get(f, "/s/data.bin", "bytes=5000-5099, 0-99,-100", "GET", &r) == 0);
    CHECK(r.status == 206);
    CHECK(!hdr_get(r.head, "Content-Range", v, sizeof v)); /* only in the parts */
    CHECK(check_multipart(&r, "0-99,5000-5099,99900-99999") == 0);
    size_t body_len = r.body_len;
    resp_free(&r);
    /* HEAD: the same head, no body. */
    CHECK(get(f, "/s/data.bin", "bytes=5000-5099, 0-99,-100", "HEAD", &r) == 0);
    CHECK(r.status == 206 && r.body_len == 0);
    CHECK(hdr_get(r.head, "Content-Length", v, sizeof v) && (size_t)atol(v) == body_len);
    resp_free(&r);
    /* Overlapping and near ranges coalesce: one part is a plain 206. */
    CHECK(get(f, "/s/data.bin", "bytes=100-300,200-400,450-500", "GET", &r) == 0);
    CHECK(r.status == 206);
    CHECK(hdr_get(r.head, "Content-Range", v, sizeof v) && strcmp(v, "bytes 100-500/100000") == 0);
    CHECK(r.body_len == 401 && memcmp(r.body, f->data + 100, 401) == 0);
    resp_free(&r);
    /* The whole file many times over in overlapping ranges: still one copy. */
    CHECK(get(f, "/s/data.bin", "bytes=0-,0-,1-,-99999,0-99999,50-60", "GET", &r) == 0);
    CHECK(r.status == 206 && r.body_len == FSIZE);
    resp_free(&r);
    /* 16 small ranges far apart: 16 parts. */
    char many[1024] = "bytes=";
    char want[1024] = "";
    for (int i = 0; i < 16; i++) {
        size_t k = strlen(many), w = strlen(want);
        snprintf(many + k, sizeof many - k, "%s%d-%d", i ? "," : "", i * 6000, i * 6000 + 1);
        snprintf(want + w, sizeof want - w, "%s%d-%d", i ? "," : "", i * 6000, i * 6000 + 1);
    }
    CHECK(get(f, "/s/data.bin", many, "GET", &r) == 0);
    CHECK(r.status == 206);
    CHECK(check_multipart(&r, want) == 0);
    resp_free(&r);
    /* 17: the "many small ranges" attack: ignored, the whole file once with 200. */
    strcat(many, ",99000-99001");
    CHECK(get(f, "/s/data.bin", many, "GET", &r) == 0);
    CHECK(r.status == 200 && r.body_len == FSIZE);
    resp_free(&r);
    /* Unsatisfiable ranges among good ones are dropped; all unsatisfiable is 416. */
    CHECK(get(f, "/s/data.bin", "bytes=200000-,10-19", "GET", &r) == 0);
    CHECK(r.status == 206 && r.body_len == 10 && memcmp(r.body, f->data + 10, 10) == 0);
    resp_free(&r);
    CHECK(get(f, "/s/data.bin", "bytes=200000-,100000-", "GET", &r) == 0);
    CHECK(r.status == 416);
    CHECK(hdr_get(r.head, "Content-Range", v, sizeof v) && strcmp(v, "bytes */100000") == 0);
    resp_free(&r);
    /* A malformed list is ignored whole (RFC 9110 14.2): 200. */
    static const char *const bad[] = {"bytes=0-9,x-1", "bytes=0-9,5-2", "bytes=,", "bytes=0-9;1-2",
                                      "bytes=0-9,--1", "bytes=0-99999999999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        CHECK(get(f, "/s/data.bin", bad[i], "GET", &r) == 0);
        if (r.status != 200 || r.body_len != FSIZE) {
            fprintf(stderr, "%s: %d\n", bad[i], r.status);
            return __LINE__;
        }
        resp_free(&r);
    }
    /* Empty list elements are allowed. */
    CHECK(get(f, "/s/data.bin", "bytes=0-9, ,50000-50009,", "GET", &r) == 0);
    CHECK(r.status == 206 && check_multipart(&r, "0-9,50000-50009") == 0);
    resp_free(&r);
    /* A FIFO in the root: not a file, 404 (and the open, off the loop, never blocks). */
    CHECK(get(f, "/s/fifo.txt", NULL, "GET", &r) == 0);
    CHECK(r.status == 404);
    resp_free(&r);
    return 0;
}

SIMUL_TASK_TEST(several_ranges)
{
    (void)arg;
    fixture *f = malloc(sizeof *f);
    up(f);
    int result = -1;
    assert_int_equal(simul_to_thread(c_ranges, f, &result), 0);
    assert_int_equal(result, 0);
    down(f);
    free(f);
    return 0;
}

/* curl -r with several ranges: it writes the multipart body as received. */
static int c_curl(void *arg)
{
    fixture *f = arg;
    char out[128], cmd[512];
    snprintf(out, sizeof out, "%s/out", f->dir);
    snprintf(cmd, sizeof cmd,
             "curl -s -m 30 -o '%s' -w '%%{http_code} %%{content_type}' -r 0-9,20000-20009 "
             "http://127.0.0.1:%d/s/data.bin > '%s.meta'", out, f->port, out);
    CHECK(system(cmd) == 0);
    char meta[256] = "";
    snprintf(cmd, sizeof cmd, "%s.meta", out);
    FILE *fp = fopen(cmd, "r");
    CHECK(fp && fgets(meta, sizeof meta, fp));
    fclose(fp);
    CHECK(strncmp(meta, "206 multipart/byteranges; boundary=", 35) == 0);
    static char body[4096];
    fp = fopen(out, "r");
    CHECK(fp);
    size_t n = fread(body, 1, sizeof body, fp);
    fclose(fp);
    response r = {.status = 206, .body = body, .body_len = n};
    snprintf(r.head, sizeof r.head, "HTTP/1.1 206 Partial Content\r\nContent-Type: %s\r\n"
                                    "Content-Length: %zu\r\n\r\n", meta + 4, n);
    return check_multipart(&r, "0-9,20000-20009");
}

SIMUL_TASK_TEST(curl_several_ranges)
{
    (void)arg;
    if (system("curl --version > /dev/null 2>&1") != 0) {
        skip();
    }
    fixture *f = malloc(sizeof *f);
    up(f);
    int result = -1;
    assert_int_equal(simul_to_thread(c_curl, f, &result), 0);
    assert_int_equal(result, 0);
    down(f);
    free(f);
    return 0;
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(several_ranges),
        cmocka_unit_test(curl_several_ranges),
    };
    return simul_test_main(argc, argv, tests, ARRAY_LEN(tests), "test_http_ranges");
}
