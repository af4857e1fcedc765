/* broadcast_chat.c — a chat server: every line a client sends goes to every other client. The
 * idea: the client list holds a share of each stream (simul_stream_retain), so a broadcast writes
 * to streams whose handler may be gone, and a client that never reads cannot stall the others:
 * once its queue passes a limit it is dropped (aborted, its share released).
 *
 *   broadcast_chat [--port P] [--max-queued BYTES]   (127.0.0.1; port 0 picks one; 256 KiB)
 *
 * Prints "listening on 127.0.0.1:P", then one line per event ("client 2 joined", "client 3
 * dropped: 262400 bytes queued, not reading", "client 1 left"); runs until SIGINT or SIGTERM,
 * then closes every connection and exits 0. Clients get "client N: <line>" for each line. */
#include <simul.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "example_cli.h"

typedef struct client {
    struct client *next, *prev;
    simul_stream *s; /* the list's share */
    int id;
} client;

typedef struct chat {
    client *head;
    int next_id;
    size_t max_queued;
} chat;

static const char *progname = "broadcast_chat";
static void print_usage(FILE *out)
{
    fprintf(out, "usage: %s [--port P] [--max-queued BYTES]\n", progname);
}

static void unlink_client(chat *c, client *cl)
{
    if (cl->prev)
        cl->prev->next = cl->next;
    else
        c->head = cl->next;
    if (cl->next)
        cl->next->prev = cl->prev;
    simul_stream_release(cl->s); /* the list's share; the handler's own ends when it returns */
    free(cl);
}

/* Sends `msg` to every client but `from`. Never suspends: a client whose queue is past the
 * limit is not reading, and is dropped instead of waited for. */
static void broadcast(chat *c, client *from, const char *msg, size_t len)
{
    for (client *cl = c->head, *next; cl; cl = next) {
        next = cl->next;
        if (cl == from)
            continue;
        if (simul_stream_write(cl->s, msg, len) < 0 ||
            simul_stream_write_buffer_size(cl->s) > c->max_queued) {
            printf("client %d dropped: %zu bytes queued, not reading\n", cl->id,
                   simul_stream_write_buffer_size(cl->s));
            fflush(stdout);
            simul_stream_abort(cl->s); /* its handler's read ends; it then leaves */
            unlink_client(c, cl);
        }
    }
}

static bool listed(chat *c, client *cl)
{
    for (client *p = c->head; p; p = p->next)
        if (p == cl)
            return true;
    return false;
}

static int handle_client(simul_stream *s, void *arg)
{
    chat *c = arg;
    client *cl = calloc(1, sizeof *cl);
    if (!cl || simul_stream_retain(s) < 0) {
        free(cl);
        return -ENOMEM;
    }
    simul_stream_set_limit(s, 1024); /* a longer line is skipped, not buffered */
    cl->s = s;
    cl->id = ++c->next_id;
    cl->next = c->head;
    if (c->head)
        c->head->prev = cl;
    c->head = cl;
    int id = cl->id;
    printf("client %d joined\n", id);
    fflush(stdout);
    char msg[1100];
    for (;;) {
        const char *line;
        long n = simul_stream_readline(s, &line);
        if (n == -EMSGSIZE)
            continue; /* an over-long line is skipped */
        if (n <= 0)
            break;
        int len = snprintf(msg, sizeof msg, "client %d: %.*s", id, (int)(n > 1024 ? 1024 : n), line);
        if (msg[len - 1] != '\n' && len < (int)sizeof msg - 1)
            msg[len++] = '\n';
        broadcast(c, cl, msg, (size_t)len);
    }
    if (listed(c, cl)) { /* not dropped meanwhile */
        printf("client %d left\n", id);
        fflush(stdout);
        unlink_client(c, cl);
    }
    return 0;
}

typedef struct opts {
    const char *port;
    size_t max_queued;
} opts;

static int main_task(void *arg)
{
    opts *o = arg;
    const char *port = o->port;
    chat c = {.max_queued = o->max_queued};
    simul_server *srv;
    int rc = simul_start_server("127.0.0.1", port, handle_client, &c, &srv);
    if (rc < 0) {
        fprintf(stderr, "%s: cannot listen on 127.0.0.1:%s: %s\n", progname, port,
                simul_strerror(rc));
        return rc;
    }
    printf("listening on 127.0.0.1:%d\n", simul_server_port(srv));
    fflush(stdout);
    int sigs[] = {SIGINT, SIGTERM};
    rc = simul_wait_signal(sigs, 2);
    simul_server_close(srv);
    simul_server_abort_clients(srv);
    simul_server_wait_closed(srv);
    simul_server_free(srv);
    return rc < 0 ? rc : 0;
}

int main(int argc, char **argv)
{
    opts o = {.port = "0", .max_queued = 256 * 1024};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            o.port = argv[++i];
        else if (strcmp(argv[i], "--max-queued") == 0 && i + 1 < argc) {
            if (!parse_count(argv[++i], &o.max_queued))
                usage_error("--max-queued wants a number of bytes, not '%s'", argv[i]);
        } else
            usage_error("unknown argument '%s'", argv[i]);
    }
    int rc = simul_run(main_task, &o);
    return rc == 0 ? 0 : 1;
}
