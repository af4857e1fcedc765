/* server.h — the listening side shared by stream servers (simul_start_server) and protocol
 * servers (simul_create_server), as asyncio has one Server for both: listening sockets, an accept
 * loop driven by readiness edges, back-off on fd exhaustion, and the count of live connections
 * that wait_closed waits for. The public half (simul_server_*) is declared in simul.h. */
#ifndef SIMUL_IO_SERVER_H
#define SIMUL_IO_SERVER_H

#include <sys/socket.h>

#include "../io/io.h"

/* Called from the loop (not a task) for each accepted connection. `fd` is non-blocking,
 * close-on-exec, registered fresh with the loop, TCP_NODELAY set for TCP; the callee owns it.
 * It should call simul__server_conn_begin() for a connection that counts as live, and install
 * its handler on the fd record (the server reaches the connection through it, see conn_close). */
typedef void (*simul__accept_cb)(simul_server *srv, void *owner, int fd,
                                 const struct sockaddr *peer, socklen_t peerlen);

typedef struct simul__server_opts {
    const char *host;      /* NULL/"" = every interface (dual-stack) */
    const char *port;      /* "0" = pick a free port */
    const char *unix_path; /* instead of host/port: a Unix stream socket */
    int backlog;           /* 0 = default (511, as nginx) */
    unsigned flags;        /* SIMUL_LISTEN_REUSEPORT */
    /* Added (backward compatible: zero means none): called with `owner` once, when the server's
     * memory goes (after simul_server_free and the end of its last connection), so the owner's
     * own state can live exactly as long as the callbacks that receive it. Never called if
     * simul__server_new fails. */
    void (*owner_free)(void *owner);
    /* How simul_server_close_clients / _abort_clients end one connection. `conn` is the owner
     * the accept callback installed on the connection's fd record (simul__fd_set_handler): the
     * server finds its live connections through those records. NULL: the owner is a
     * simul_transport, ended with simul_transport_close / simul_transport_abort. Both are called
     * from whatever context calls close/abort_clients and must not suspend or free anything
     * synchronously that another live connection of the server needs. */
    void (*conn_close)(void *conn);
    void (*conn_abort)(void *conn);
    /* Listening sockets to adopt instead of listening (start_server(sock=...)); the server owns
     * them once simul__server_new succeeds. */
    const int *socks;
    int n_socks;
} simul__server_opts;

/* Suspends (name resolution). Listens and starts accepting at once (asyncio's start_serving=True).
 * Returns 0 and *out, or a negative errno / SIMUL_EAI code. */
int simul__server_new(const simul__server_opts *opts, simul__accept_cb cb, void *owner,
                      simul_server **out);

/* A connection that wait_closed waits for begins / ends. */
void simul__server_conn_begin(simul_server *srv);
void simul__server_conn_end(simul_server *srv);

#endif
