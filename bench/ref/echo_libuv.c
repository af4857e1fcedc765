/* echo_libuv.c — the libuv reference for the echo benchmark, written the fast way libuv allows:
 * one shared read buffer (read_cb consumes it before the next read), uv_try_write first, and a
 * uv_write of a copy only for the bytes the kernel did not take.
 * Usage: echo_libuv --host H --port P */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <uv.h>

#define READ_SIZE 65536
/* Above this many queued bytes a connection stops reading until its writes drain. */
#define HIGH_WATER (1u << 20)

typedef struct write_req {
    uv_write_t req;
    char data[]; /* the copy of the bytes uv_try_write left over */
} write_req;

static char readbuf[READ_SIZE];

static void usage(const char *argv0)
{
    fprintf(stderr, "usage: %s --host H --port P\n", argv0);
    exit(2);
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void on_close(uv_handle_t *h)
{
    free(h);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    /* Safe to share: libuv hands the bytes to on_read before it reads into the buffer again. */
    *buf = uv_buf_init(readbuf, sizeof readbuf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void on_write(uv_write_t *req, int status)
{
    uv_stream_t *s = req->handle;
    free(req);
    if (status < 0) {
        if (!uv_is_closing((uv_handle_t *)s))
            uv_close((uv_handle_t *)s, on_close);
        return;
    }
    /* s->data marks a connection that stopped reading for backpressure. */
    if (s->data && uv_stream_get_write_queue_size(s) == 0 && !uv_is_closing((uv_handle_t *)s)) {
        s->data = NULL;
        uv_read_start(s, on_alloc, on_read);
    }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    if (nread < 0) { /* UV_EOF or an error */
        uv_close((uv_handle_t *)s, on_close);
        return;
    }
    if (nread == 0)
        return;
    size_t off = 0;
    /* Only when nothing is queued, or the echo would overtake earlier bytes. */
    if (uv_stream_get_write_queue_size(s) == 0) {
        uv_buf_t b = uv_buf_init(buf->base, (unsigned)nread);
        int n = uv_try_write(s, &b, 1);
        if (n >= 0)
            off = (size_t)n;
        else if (n != UV_EAGAIN) {
            uv_close((uv_handle_t *)s, on_close);
            return;
        }
    }
    if (off == (size_t)nread)
        return;
    size_t rest = (size_t)nread - off;
    write_req *w = malloc(sizeof *w + rest);
    if (!w) {
        uv_close((uv_handle_t *)s, on_close);
        return;
    }
    memcpy(w->data, buf->base + off, rest);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)rest);
    if (uv_write(&w->req, s, &b, 1, on_write) < 0) {
        free(w);
        uv_close((uv_handle_t *)s, on_close);
        return;
    }
    if (uv_stream_get_write_queue_size(s) > HIGH_WATER) {
        uv_read_stop(s);
        s->data = s;
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    if (status < 0)
        return;
    uv_tcp_t *c = malloc(sizeof *c);
    if (!c)
        return;
    uv_tcp_init(server->loop, c);
    c->data = NULL;
    if (uv_accept(server, (uv_stream_t *)c) < 0) {
        uv_close((uv_handle_t *)c, on_close);
        return;
    }
    uv_tcp_nodelay(c, 1); /* as asyncio and uvloop do for every TCP transport */
    uv_read_start((uv_stream_t *)c, on_alloc, on_read);
}

int main(int argc, char **argv)
{
    const char *host = NULL;
    int port = -1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--host") && i + 1 < argc)
            host = argv[++i];
        else if (!strcmp(argv[i], "--port") && i + 1 < argc)
            port = atoi(argv[++i]);
        else
            usage(argv[0]);
    }
    if (!host || port < 0 || port > 65535)
        usage(argv[0]);
    raise_nofile();

    uv_loop_t *loop = uv_default_loop();
    uv_tcp_t server;
    uv_tcp_init(loop, &server);
    struct sockaddr_storage addr;
    int rc = uv_ip4_addr(host, port, (struct sockaddr_in *)&addr);
    if (rc < 0)
        rc = uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr);
    if (rc < 0) {
        fprintf(stderr, "echo_libuv: bad host %s: %s\n", host, uv_strerror(rc));
        return 1;
    }
    if ((rc = uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0)) < 0 ||
        (rc = uv_listen((uv_stream_t *)&server, SOMAXCONN, on_connection)) < 0) {
        fprintf(stderr, "echo_libuv: cannot listen on %s:%d: %s\n", host, port, uv_strerror(rc));
        return 1;
    }
    return uv_run(loop, UV_RUN_DEFAULT);
}
