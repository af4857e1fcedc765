/* test_http_sse.c — Server-Sent Events: the shared event's format and references, and a fan-out
 * whose memory is bounded and given back: N streams, a burst of M events (shared ones and
 * per-stream simul_http_sse_send), and the in-use heap (mallinfo2) measured once every client
 * has read everything, again after the burst, and after they left. Nothing waits on time:
 * every wait is on a count, bounded. */
#include "test_main_helpers.h"

#include <malloc.h>
#include <poll.h>
#include <stdatomic.h>
#include <simul/http.h>

#include "test_http_server_helpers.h"

/* ---- the shared event itself --------------------------------------------------------------- */

static void event_format(void **state)
{
    (void)state;
    simul_http_sse_event *ev;
    assert_int_equal(simul_http_sse_event_new(&ev, "move", "0:7", 3000, "a\r\nb\nc"), 0);
    const char *want = "event: move\nid: 0:7\nretry: 3000\ndata: a\ndata: b\ndata: c\n\n";
    assert_string_equal(simul_http_sse_event_bytes(ev), want); /* NUL-terminated too */
    assert_int_equal(simul_http_sse_event_size(ev), strlen(want));
    assert_string_equal(simul_http_sse_event_name(ev), "move");
    assert_string_equal(simul_http_sse_event_id(ev), "0:7");
    assert_ptr_equal(simul_http_sse_event_ref(ev), ev);
    simul_http_sse_event_unref(ev); /* one left */
    assert_int_equal(simul_http_sse_event_size(ev), strlen(want));
    simul_http_sse_event_unref(ev); /* freed: ASan reports a leak or a double free */
    simul_http_sse_event_unref(NULL);

    /* A lone CR ends a data line too (EventSource reads it so): data cannot forge a field. */
    assert_int_equal(simul_http_sse_event_new(&ev, NULL, NULL, -1, "a\rid: forged\r\rb\r"), 0);
    assert_string_equal(simul_http_sse_event_bytes(ev),
                        "data: a\ndata: id: forged\ndata: \ndata: b\ndata: \n\n");
    simul_http_sse_event_unref(ev);

    assert_int_equal(simul_http_sse_event_new(&ev, NULL, NULL, -1, NULL), 0);
    assert_string_equal(simul_http_sse_event_bytes(ev), "data: \n\n");
    assert_string_equal(simul_http_sse_event_name(ev), "");
    assert_string_equal(simul_http_sse_event_id(ev), "");
    simul_http_sse_event_unref(ev);

    /* a big one (beyond any stack buffer) */
    size_t big = 100000;
    char *data = malloc(big + 1);
    assert_non_null(data);
    memset(data, 'x', big);
    data[big] = '\0';
    for (size_t i = 999; i < big; i += 1000) {
        data[i] = '\n';
    }
    assert_int_equal(simul_http_sse_event_new(&ev, "big", NULL, -1, data), 0);
    /* 100 newlines: 101 lines of "data: ...\n", then the blank line */
    assert_int_equal(simul_http_sse_event_size(ev), strlen("event: big\n") + (big - 100) + 101 * 7 + 1);
    simul_http_sse_event_unref(ev);
    free(data);

    /* CR or LF in a field would forge another field */
    ev = (simul_http_sse_event *)1;
    assert_int_equal(simul_http_sse_event_new(&ev, "a\nb", NULL, -1, "x"), -EINVAL);
    assert_null(ev);
    assert_int_equal(simul_http_sse_event_new(&ev, NULL, "1\r", -1, "x"), -EINVAL);
    assert_int_equal(simul_http_sse_event_new(NULL, NULL, NULL, -1, "x"), -EINVAL);
}

/* ---- a fan-out over real streams ----------------------------------------------------------- */

#define N_CLIENTS 8
#define WARM 50     /* events before the first measure: every cache and pool warmed */
#define BURST 4000  /* then this many more */

typedef struct sub {
    simul_queue *q; /* simul_http_sse_event *, one reference each; at most 64 */
    struct sub *next;
} sub;

static struct {
    sub *subs;
    int n_subs;
    int port;
    atomic_int delivered; /* events the clients read, all of them together */
    atomic_int failed;
} fx;

static void unref_item(void *item)
{
    simul_http_sse_event_unref(item);
}

/* One subscriber: its queue's events on its stream; an event named "plain" goes through
 * simul_http_sse_send (formatted for this stream alone), the others as they are. */
static int h_stream(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)req;
    (void)arg;
    /* On the heap, not this frame: the publisher walks the list while this task sleeps, and a
     * compact task's frame is elsewhere then (SIMUL_TASKS=compact runs this test too). */
    sub *s = calloc(1, sizeof *s);
    if (!s) {
        return -ENOMEM;
    }
    /* bounded: the publisher waits for a slow stream (and a ring that grew to a whole burst
     * would stay that big while the stream lasts) */
    int rc = simul_queue_new(&s->q, 64);
    if (rc < 0) {
        free(s);
        return rc;
    }
    s->next = fx.subs;
    fx.subs = s;
    fx.n_subs++;
    rc = simul_http_sse_start(res);
    while (rc == 0) {
        simul_http_sse_event *ev;
        rc = simul_queue_get(s->q, (void **)&ev);
        if (rc < 0) {
            break;
        }
        if (strcmp(simul_http_sse_event_name(ev), "end") == 0) {
            rc = simul_http_sse_send_event(res, ev);
            simul_http_sse_event_unref(ev);
            break;
        }
        if (strcmp(simul_http_sse_event_name(ev), "plain") == 0) {
            rc = simul_http_sse_send(res, "plain", simul_http_sse_event_id(ev), -1,
                                     "{\"board\":0,\"move\":\"e2e4\",\"fen\":\"rnbqkbnr/pppppppp/8/8/"
                                     "8/8/PPPPPPPP/RNBQKBNR w KQkq - 0 1\"}");
            if (rc == 0) {
                rc = simul_http_sse_comment(res, "and a comment");
            }
        } else {
            rc = simul_http_sse_send_event(res, ev);
        }
        simul_http_sse_event_unref(ev);
    }
    for (sub **p = &fx.subs; *p; p = &(*p)->next) {
        if (*p == s) {
            *p = s->next;
            break;
        }
    }
    fx.n_subs--;
    simul_queue_free(s->q, unref_item);
    free(s);
    return rc;
}

/* Every subscriber gets the event (its reference is dropped here: the queues hold theirs). */
static void publish(const char *name, int i)
{
    char id[32];
    snprintf(id, sizeof id, "0:%d", i);
    simul_http_sse_event *ev;
    assert_int_equal(simul_http_sse_event_new(&ev, name, id, -1,
                                              "{\"board\":0,\"n\":1,\"move\":\"e2e4\",\"fen\":"
                                              "\"rnbqkbnr/pppppppp/8/8/8/8/PPPPPPPP/RNBQKBNR w "
                                              "KQkq - 0 1\",\"result\":\"\"}"),
                     0);
    for (sub *s = fx.subs; s; s = s->next) {
        assert_int_equal(simul_queue_put(s->q, simul_http_sse_event_ref(ev)), 0);
    }
    simul_http_sse_event_unref(ev);
}

/* The clients, on a pool thread: N streams read with poll until each saw the "end" event;
 * fx.delivered counts the events ("\n\n" ends each one; the chunked framing has "\r\n" only). */
static int c_clients(void *arg)
{
    (void)arg;
    static client cs[N_CLIENTS]; /* static: nothing of theirs on the heap being measured */
    static char prev[N_CLIENTS];
    bool done[N_CLIENTS] = {0};
    int left = N_CLIENTS;
    for (int i = 0; i < N_CLIENTS; i++) {
        CHECK(cl_connect(&cs[i], fx.port) == 0);
        CHECK(cl_send(&cs[i], "GET /stream HTTP/1.1\r\nHost: t\r\n\r\n") == 0);
    }
    while (left > 0) {
        struct pollfd p[N_CLIENTS];
        for (int i = 0; i < N_CLIENTS; i++) {
            p[i] = (struct pollfd){.fd = done[i] ? -1 : cs[i].fd, .events = POLLIN};
        }
        CHECK(poll(p, N_CLIENTS, 20000) > 0); /* a bound, never a measure */
        for (int i = 0; i < N_CLIENTS; i++) {
            if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) {
                continue;
            }
            size_t had = cs[i].len; /* the last bytes of the previous read, kept below */
            long k = cl_more(&cs[i]);
            CHECK(k > 0);
            for (size_t j = had; j < cs[i].len; j++) {
                char ch = cs[i].buf[j];
                if (ch == '\n' && prev[i] == '\n') {
                    atomic_fetch_add(&fx.delivered, 1);
                }
                prev[i] = ch;
            }
            /* "event: end" closes the test's stream (its last chunk follows it) */
            if (memmem(cs[i].buf, cs[i].len, "event: end\n", 11)) {
                done[i] = true;
                left--;
            }
            if (cs[i].len > 16) { /* a marker split between two reads is still found */
                cl_drop(&cs[i], cs[i].len - 16);
            }
        }
    }
    for (int i = 0; i < N_CLIENTS; i++) {
        close(cs[i].fd);
    }
    return 0;
}

static int clients_task(void *arg)
{
    (void)arg;
    int result = -1;
    int rc = simul_to_thread(c_clients, NULL, &result);
    if (rc < 0 || result != 0) {
        atomic_store(&fx.failed, 1);
    }
    return 0;
}

/* Bounded waits on state: the loop serves meanwhile. */
static void wait_delivered(int n)
{
    for (int i = 0; i < 60000 && atomic_load(&fx.delivered) < n && !atomic_load(&fx.failed); i++) {
        assert_int_equal(simul_sleep(0.001), 0);
    }
    assert_false(atomic_load(&fx.failed));
    assert_int_equal(atomic_load(&fx.delivered), n);
}

static size_t in_use(void)
{
    struct mallinfo2 m = mallinfo2();
    return m.uordblks + m.hblkhd;
}

/* One round: N clients connect, WARM events, a measure, BURST events, a measure, the end, the
 * clients leave, a measure. */
static void fanout_round(simul_http_server *srv, size_t *warm, size_t *burst, size_t *after)
{
    atomic_store(&fx.delivered, 0);
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, clients_task, NULL, NULL), 0);
    for (int i = 0; i < 20000 && fx.n_subs < N_CLIENTS && !atomic_load(&fx.failed); i++) {
        assert_int_equal(simul_sleep(0.001), 0);
    }
    assert_int_equal(fx.n_subs, N_CLIENTS);
    /* Each "plain" event is two on the wire (the event and a comment). */
    int per = 0;
    for (int i = 0; i < WARM; i++) {
        publish(i % 2 ? "plain" : "move", i);
        per += i % 2 ? 2 : 1;
    }
    wait_delivered(N_CLIENTS * per);
    *warm = in_use();
    for (int i = 0; i < BURST; i++) {
        publish(i % 2 ? "plain" : "move", WARM + i);
        per += i % 2 ? 2 : 1;
    }
    wait_delivered(N_CLIENTS * per);
    *burst = in_use();
    publish("end", 0);
    assert_int_equal(simul_task_join(t, NULL), 0);
    assert_false(atomic_load(&fx.failed));
    for (int i = 0; i < 20000 && simul_http_server_connections(srv) > 0; i++) {
        assert_int_equal(simul_sleep(0.001), 0);
    }
    assert_int_equal(simul_http_server_connections(srv), 0);
    assert_int_equal(fx.n_subs, 0);
    *after = in_use();
    fprintf(stderr, "in use: %zu connected and warm, %zu after %d events x %d streams, %zu once "
            "they left\n", *warm, *burst, BURST, N_CLIENTS, *after);
}

SIMUL_TASK_TEST(fanout_memory_returns)
{
    (void)arg;
    memset(&fx, 0, sizeof fx);
    simul_http_app *app;
    simul_http_server *srv;
    assert_int_equal(simul_http_app_new(&app), 0);
    assert_int_equal(simul_http_route(app, "GET", "/stream", h_stream, NULL), 0);
    assert_int_equal(simul_http_serve(app, "127.0.0.1", "0", NULL, &srv), 0);
    fx.port = simul_http_server_port(srv);
    /* The first round warms what stays (the pool thread, the server's caches), the second is
     * held to it. */
    size_t warm1, burst1, after1, warm2, burst2, after2;
    fanout_round(srv, &warm1, &burst1, &after1);
    fanout_round(srv, &warm2, &burst2, &after2);
#if !SIMUL_TEST_ASAN && !SIMUL_TEST_TSAN
    /* Every event was read by every client, so nothing of the burst may remain: not in the
     * queues (shared events freed by their last reader), not in the requests' arenas (an event
     * kept per stream would be 8 x 4,000 x ~150 bytes = 4.8 MB), not in the write queues.
     * 64 KiB of slack for what the streams' buffers happen to hold. */
    assert_true(burst1 < warm1 + 65536);
    assert_true(burst2 < warm2 + 65536);
    /* and the clients gone, the heap is back where the first round left it */
    assert_true(after2 < after1 + 65536);
#endif
    (void)burst1, (void)warm1, (void)after1, (void)burst2, (void)warm2, (void)after2;
    assert_int_equal(simul_http_server_shutdown(srv, 10), 0);
    simul_http_server_free(srv);
    simul_http_app_free(app);
    return 0;
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(event_format),
        cmocka_unit_test(fanout_memory_returns),
    };
    return simul_test_main(argc, argv, tests, ARRAY_LEN(tests), "test_http_sse");
}
