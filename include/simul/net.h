/* simul/net.h — sockets and name resolution.
 * Part of the simul API: include <simul.h> (the umbrella), or this header alone. */
#ifndef SIMUL_NET_H
#define SIMUL_NET_H

#include "base.h"

#ifdef __cplusplus
extern "C" {
#endif
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

/* ---------------------------------------------------------------------------------------------
 * Sockets: task-level accept, connect, recv, send
 * ------------------------------------------------------------------------------------------- */
/* Task-level sockets on plain fds, as asyncio's loop.sock_* calls. Every fd these return is
 * non-blocking and close-on-exec; close it with simul_close(). Sends never raise SIGPIPE (a peer
 * that is gone is -EPIPE). Every suspending call honours cancellation and deadline scopes. */
struct sockaddr;
typedef unsigned int simul_socklen_t; /* socklen_t, without pulling in <sys/socket.h> */

/* A non-blocking, close-on-exec socket(2). Returns the fd or a negative errno. Never suspends. */
int simul_socket(int domain, int type, int protocol);

/* Suspends until a connection arrives. Returns the new fd (non-blocking, close-on-exec) and
 * fills addr/len if given. EMFILE/ENFILE are returned to the caller (servers built on this back
 * off; see the streams and transports). */
int simul_accept(int fd, struct sockaddr *addr, simul_socklen_t *len);

/* Suspends until connected. Returns 0 or the connection error (-ECONNREFUSED, -ETIMEDOUT,
 * -ENETUNREACH, ...). If cancelled or timed out the socket is in an undefined state: close it. */
int simul_connect(int fd, const struct sockaddr *addr, simul_socklen_t len);

/* Suspends until some data arrives. Returns the count (0 at EOF) or a negative errno. */
long simul_recv(int fd, void *buf, size_t len, int flags);

/* Suspends until the kernel takes some bytes. Returns the count taken or a negative errno. */
long simul_send(int fd, const void *buf, size_t len, int flags);

/* Suspends until all len bytes are sent. Returns len, or a negative errno; *sent (may be NULL)
 * always gets the count the kernel took, also on error, cancellation or timeout. */
long simul_sendall(int fd, const void *buf, size_t len, size_t *sent);

/* Datagrams: suspend until one arrives / is taken. Return the byte count or a negative errno. */
long simul_recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *addr,
                    simul_socklen_t *addrlen);
long simul_sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *addr,
                  simul_socklen_t addrlen);


/* ---------------------------------------------------------------------------------------------
 * Name resolution: getaddrinfo off the loop
 * ------------------------------------------------------------------------------------------- */
struct addrinfo;

/* Resolver failures (getaddrinfo's EAI_* codes) come back as SIMUL_EAI(EAI_x), a negative value
 * far from every errno (compare with it: `rc == SIMUL_EAI(EAI_NONAME)`). simul_errname() gives
 * the EAI name ("EAI_NONAME"), simul_strerror() gai_strerror's text ("Name or service not
 * known"). EAI_SYSTEM comes back as the plain -errno, EAI_MEMORY as -ENOMEM. */
#define SIMUL_EAI_BASE 20000
#define SIMUL_EAI(eai) (-(SIMUL_EAI_BASE - (eai)))
/* Whether err is a SIMUL_EAI code. */
bool simul_is_eai(int err);

/* Suspends. getaddrinfo(3) run on the resolver's own small thread pool (up to 4 threads, started
 * on demand, gone after 5 s idle; never the executor's: slow lookups cannot starve other
 * blocking work). host, service and hints are copied. A numeric host (or host NULL, or
 * AI_NUMERICHOST) needs no name service and is answered at once on the calling thread (a service
 * name is then read from /etc/services there): that case does not suspend and also works
 * outside a task, but inside one it is still a cancellation point. Returns 0 and *res (free it
 * with simul_freeaddrinfo), or a negative errno / SIMUL_EAI code (*res is NULL then); -EPERM for
 * a name lookup outside a task. Cancellable and honours deadlines (-ECANCELED / -ETIMEDOUT at
 * once): the lookup thread finishes on its own and its result is dropped, even if the loop has
 * been closed meanwhile. */
int simul_getaddrinfo(const char *host, const char *service, const struct addrinfo *hints,
                      struct addrinfo **res);
/* Frees a result of simul_getaddrinfo (NULL is fine). */
void simul_freeaddrinfo(struct addrinfo *res);

/* Suspends. Resolves host:port (TCP) and connects, trying the addresses in turn with Happy
 * Eyeballs (RFC 8305: families interleaved, a new attempt every 250 ms while earlier ones are
 * pending, or at once when one fails; the first to connect wins, the others are closed).
 * host NULL is the loopback address. Returns the connected fd (non-blocking, close-on-exec,
 * TCP_NODELAY set, registered with the loop) or the last attempt's error (-ECONNREFUSED, ...),
 * a SIMUL_EAI code, -ECANCELED / -ETIMEDOUT (every attempt is cancelled and its fd closed
 * before it returns), -EINVAL (port NULL), -EPERM. No timeout of its own: use a deadline scope. */
int simul_tcp_connect(const char *host, const char *port);

/* Resolves host:port (AI_PASSIVE) and listens on every address it gives: host NULL or "" means
 * every interface (one IPv6 socket with IPV6_V6ONLY off that takes IPv4 too; a plain IPv4 socket
 * on a host without IPv6), port "0" (or NULL) picks a free port (the same port for every
 * family). Addresses of a family the host cannot use are skipped. SO_REUSEADDR is set; flags may
 * hold SIMUL_LISTEN_REUSEPORT; backlog <= 0 means 511. Listens on at most max_fds addresses and
 * stores the fds (non-blocking, close-on-exec) in fds; returns how many, or a negative errno /
 * SIMUL_EAI code with nothing left open. Never suspends on a numeric or empty host (works
 * outside a task then); suspends to resolve a name (-EPERM outside a task). */
#define SIMUL_LISTEN_REUSEPORT 1u
int simul_tcp_listen(const char *host, const char *port, int backlog, unsigned flags, int *fds,
                     int max_fds);

/* asyncio's start_server(sock=...) check: makes fd, a listening socket made elsewhere (a
 * supervisor's, systemd's LISTEN_FDS), ready for an accept loop: non-blocking and close-on-exec.
 * Returns 0; -EINVAL (not a listening socket); -EBADF (not an open fd). Never suspends. */
int simul_listener_adopt(int fd);

/* Unix stream sockets: a path starting with '@' names Linux's abstract namespace (no file). A
 * path too long for sockaddr_un is -ENAMETOOLONG (never cut short), an empty one -EINVAL. */

/* Suspends. Connects to path. Returns the connected fd or a negative errno (-ENOENT,
 * -ECONNREFUSED, ...). A full listen backlog is retried after short sleeps, as a blocking connect
 * would wait (cancel it or put a deadline scope around it). */
int simul_unix_connect(const char *path);

/* Listens on path. A socket file left by a dead server (connecting to it is refused) is unlinked
 * and the bind retried; a live one, or a file that is not a socket, gives -EADDRINUSE.
 * backlog <= 0 means 511. Returns the listening fd or a negative errno. Never suspends (works
 * outside a task). */
int simul_unix_listen(const char *path, int backlog);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif
#ifdef __cplusplus
}
#endif

#endif /* SIMUL_NET_H */
