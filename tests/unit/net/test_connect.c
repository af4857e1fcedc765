/* test_connect.c — connect and listen helpers: TCP connect (refused, numeric, localhost), Happy
 * Eyeballs falling through to the other family at once on a refusal and after 250 ms on a
 * silent attempt, cancellation and deadlines closing every attempt, listen dual-stack on port 0
 * reached over both families, one port for every address of a name, SO_REUSEPORT, and Unix
 * sockets (round trip, stale file, live server, foreign file, too-long path, abstract names).
 * Network only on loopback; names that must resolve to both ::1 and 127.0.0.1 come from a fake
 * resolver hooked into the resolver's workers (never external DNS).
 */
#include <dirent.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "test_main_helpers.h"

typedef int (*lookup_fn)(const char *, const char *, const struct addrinfo *, struct addrinfo **);
void simul__dns_test_set(lookup_fn fn, int64_t idle_after_ns);

/* ---- helpers --------------------------------------------------------------------------------- */

/* Like SIMUL_TASK_TEST, but the body may return SKIPPED when the host cannot run it (no IPv6, a
 * kernel that answers a full backlog): cmocka's skip() must not jump out of a task. */
#define SKIPPED 77
#define CONNECT_TEST(name)                                                                         \
    static int name##_task(void *arg);                                                             \
    static void name(void **state)                                                                 \
    {                                                                                              \
        (void)state;                                                                               \
        int r = simul_test_run(name##_task, NULL);                                                 \
        if (r == SKIPPED)                                                                          \
            skip();                                                                                \
        assert_int_equal(r, 0);                                                                    \
    }                                                                                              \
    static int name##_task(void *arg)

/* "dual6.test" is ::1 then 127.0.0.1, "dual4.test" the other way round; "fail.test" fails;
 * everything on the port given as the service. glibc frees an addrinfo list node by node, so two
 * lists chained are still one list for freeaddrinfo. */
static int fake_lookup(const char *host, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res)
{
    struct addrinfo h = {.ai_flags = AI_NUMERICHOST, .ai_socktype = SOCK_STREAM};
    if (hints)
        h.ai_flags |= hints->ai_flags & AI_PASSIVE;
    const char *first, *second;
    if (strcmp(host, "dual6.test") == 0) {
        first = "::1";
        second = "127.0.0.1";
    } else if (strcmp(host, "dual4.test") == 0) {
        first = "127.0.0.1";
        second = "::1";
    } else {
        return EAI_NONAME;
    }
    struct addrinfo *a = NULL, *b = NULL;
    int rc = getaddrinfo(first, service, &h, &a);
    if (rc)
        return rc;
    rc = getaddrinfo(second, service, &h, &b);
    if (rc) {
        freeaddrinfo(a);
        return rc;
    }
    struct addrinfo *last = a;
    while (last->ai_next)
        last = last->ai_next;
    last->ai_next = b;
    *res = a;
    return 0;
}

static bool have_ipv6(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool ok = bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return ok;
}

static int local_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static int peer_family(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    assert_int_equal(getpeername(fd, (struct sockaddr *)&ss, &len), 0);
    return ss.ss_family;
}

static void port_str(char *buf, int port)
{
    snprintf(buf, 8, "%d", port & 0xffff);
}

/* A port on `host` nobody listens on (bound, then closed). */
static int closed_port(const char *host)
{
    int fds[2];
    assert_int_equal(simul_tcp_listen(host, "0", 0, 0, fds, 2), 1);
    int port = local_port(fds[0]);
    simul_close(fds[0]);
    return port;
}

/* A listener on `host`:port whose backlog is full, so that further connects go unanswered
 * (SYNs dropped) rather than refused. Returns the listener and sets *filler; -1 if this kernel
 * answers anyway. */
static int silent_listener(const char *host, int port, int *filler)
{
    struct sockaddr_storage ss = {0};
    socklen_t len;
    if (strchr(host, ':')) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_addr = in6addr_loopback;
        s6->sin6_port = htons((uint16_t)port);
        len = sizeof *s6;
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        s4->sin_port = htons((uint16_t)port);
        len = sizeof *s4;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
        close(fd);
        return -1;
    }
    assert_int_equal(listen(fd, 0), 0); /* room for one: the filler */
    assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    *filler = socket(ss.ss_family, SOCK_STREAM, 0); /* blocking: completes into the backlog */
    assert_int_equal(connect(*filler, (struct sockaddr *)&ss, len), 0);
    int probe = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int rc = connect(probe, (struct sockaddr *)&ss, len);
    bool silent = rc < 0 && errno == EINPROGRESS;
    if (silent) {
        struct pollfd pfd = {.fd = probe, .events = POLLOUT};
        silent = poll(&pfd, 1, 300) == 0;
    }
    close(probe);
    if (!silent) {
        close(*filler);
        close(fd);
        return -1;
    }
    return fd;
}

typedef struct acceptor {
    int lfd;
    int n; /* connections to accept */
    int families[4];
} acceptor;

/* Accepts n connections, records each peer's family, echoes one byte on each, closes it. */
static int accept_task(void *arg)
{
    acceptor *a = arg;
    for (int i = 0; i < a->n; i++) {
        int c = simul_accept(a->lfd, NULL, NULL);
        if (c < 0)
            return c;
        a->families[i] = peer_family(c);
        char b;
        long r = simul_recv(c, &b, 1, 0);
        if (r == 1)
            r = simul_send(c, &b, 1, 0);
        simul_close(c);
        if (r != 1)
            return r < 0 ? (int)r : -EPROTO;
    }
    return 0;
}

static void ping(int fd)
{
    char b = 'x';
    assert_int_equal(simul_send(fd, &b, 1, 0), 1);
    b = 0;
    assert_int_equal(simul_recv(fd, &b, 1, 0), 1);
    assert_int_equal(b, 'x');
}

/* ---- TCP connect ----------------------------------------------------------------------------- */

SIMUL_TASK_TEST(connect_refused)
{
    (void)arg;
    int before = test_fd_count();
    char p[8];
    port_str(p, closed_port("127.0.0.1"));
    assert_int_equal(simul_tcp_connect("127.0.0.1", p), -ECONNREFUSED);
    assert_int_equal(test_fd_count(), before);
    assert_int_equal(simul_tcp_connect("127.0.0.1", NULL), -EINVAL);
    return 0;
}

static void connect_outside_a_task(void **state)
{
    (void)state;
    assert_int_equal(simul_tcp_connect("127.0.0.1", "1"), -EPERM);
    assert_int_equal(simul_unix_connect("/tmp/x"), -EPERM);
}

SIMUL_TASK_TEST(connect_numeric_sets_nodelay)
{
    (void)arg;
    int lfd;
    assert_int_equal(simul_tcp_listen("127.0.0.1", "0", 0, 0, &lfd, 1), 1);
    acceptor a = {.lfd = lfd, .n = 1};
    simul_task *at;
    assert_int_equal(simul_task_spawn(&at, accept_task, &a, NULL), 0);
    char p[8];
    port_str(p, local_port(lfd));
    int fd = simul_tcp_connect("127.0.0.1", p);
    assert_true(fd >= 0);
    int v = 0;
    socklen_t vl = sizeof v;
    assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &vl), 0);
    assert_true(v != 0);
    assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    ping(fd);
    int r;
    assert_int_equal(simul_task_join(at, &r), 0);
    assert_int_equal(r, 0);
    assert_int_equal(a.families[0], AF_INET);
    simul_close(fd);
    simul_close(lfd);
    return 0;
}

SIMUL_TASK_TEST(connect_localhost_by_name)
{
    (void)arg;
    simul_scope sc; /* localhost comes from /etc/hosts; bounded anyway */
    assert_int_equal(simul_scope_timeout(&sc, 10.0), 0);
    int lfds[4];
    int n = simul_tcp_listen("localhost", "0", 0, 0, lfds, 4);
    assert_true(n >= 1);
    int port = local_port(lfds[0]);
    for (int i = 1; i < n; i++)
        assert_int_equal(local_port(lfds[i]), port); /* one port for every address */
    char p[8];
    port_str(p, port);
    int fd = simul_tcp_connect("localhost", p);
    assert_true(fd >= 0);
    simul_close(fd);
    for (int i = 0; i < n; i++)
        simul_close(lfds[i]);
    assert_int_equal(simul_scope_end(&sc), 0);
    return 0;
}

SIMUL_TASK_TEST(connect_name_error)
{
    (void)arg;
    simul__dns_test_set(fake_lookup, 0);
    int before = test_fd_count();
    int rc = simul_tcp_connect("fail.test", "80");
    assert_int_equal(rc, SIMUL_EAI(EAI_NONAME));
    assert_true(simul_is_eai(rc));
    assert_int_equal(test_fd_count(), before);
    return 0;
}

/* Happy Eyeballs: the first family refuses, the other listens: it falls through at once. "At
 * once" is proved by one connect taking under 0.2 s: waiting out the 250 ms attempt delay can
 * never be that fast, whatever the load. A loaded machine may stall any one connect past 0.2 s
 * (100-650 ms stalls were seen), so a slow one is tried again, up to 20 times; the address that
 * answered and the fd count are checked on every try. */
static void falls_through(const char *name, const char *listen_on, int family)
{
    double fastest = INFINITY;
    for (int tries = 0; tries < 20 && fastest >= 0.2; tries++) {
        int lfd;
        assert_int_equal(simul_tcp_listen(listen_on, "0", 0, 0, &lfd, 1), 1);
        char p[8];
        port_str(p, local_port(lfd));
        acceptor a = {.lfd = lfd, .n = 1};
        simul_task *at;
        assert_int_equal(simul_task_spawn(&at, accept_task, &a, NULL), 0);
        double t0 = test_clock();
        int fd = simul_tcp_connect(name, p);
        double took = test_clock() - t0;
        assert_true(fd >= 0);
        assert_int_equal(peer_family(fd), family);
        ping(fd);
        int r;
        assert_int_equal(simul_task_join(at, &r), 0);
        assert_int_equal(r, 0);
        simul_close(fd);
        simul_close(lfd);
        if (took < fastest)
            fastest = took;
    }
    if (fastest >= 0.2) /* a refusal starts the next attempt without the 250 ms delay */
        fail_msg("fastest of 20 fall-throughs took %.3f s: the attempt delay ran", fastest);
}

CONNECT_TEST(happy_eyeballs_v6_refused_v4_answers)
{
    (void)arg;
    if (!have_ipv6())
        return SKIPPED;
    simul__dns_test_set(fake_lookup, 0);
    int before = test_fd_count();
    falls_through("dual6.test", "127.0.0.1", AF_INET);
    assert_int_equal(test_fd_count(), before);
    assert_int_equal(simul_task_count(), 1);
    return 0;
}

CONNECT_TEST(happy_eyeballs_v4_refused_v6_answers)
{
    (void)arg;
    if (!have_ipv6())
        return SKIPPED;
    simul__dns_test_set(fake_lookup, 0);
    int before = test_fd_count();
    falls_through("dual4.test", "::1", AF_INET6);
    assert_int_equal(test_fd_count(), before);
    return 0;
}

CONNECT_TEST(happy_eyeballs_all_refused)
{
    (void)arg;
    if (!have_ipv6())
        return SKIPPED;
    simul__dns_test_set(fake_lookup, 0);
    int before = test_fd_count();
    /* A port closed on ::1; 127.0.0.1 may have it too (then the v4 attempt is refused as well,
     * which is the point), else try another. */
    for (int tries = 0; tries < 20; tries++) {
        char p[8];
        port_str(p, closed_port("::1"));
        int rc = simul_tcp_connect("dual6.test", p);
        if (rc >= 0) { /* something of someone else's listens on 127.0.0.1:port */
            simul_close(rc);
            continue;
        }
        assert_int_equal(rc, -ECONNREFUSED);
        assert_int_equal(test_fd_count(), before);
        assert_int_equal(simul_task_count(), 1); /* every attempt task is gone */
        return 0;
    }
    fail_msg("no port closed on both families");
    return 0;
}

CONNECT_TEST(happy_eyeballs_next_attempt_after_delay)
{
    (void)arg;
    if (!have_ipv6())
        return SKIPPED;
    simul__dns_test_set(fake_lookup, 0);
    int before = test_fd_count();
    /* ::1:P never answers (full backlog); 127.0.0.1:P listens. */
    int filler, silent = silent_listener("::1", 0, &filler);
    if (silent < 0)
        return SKIPPED;
    int port = local_port(silent);
    char p[8];
    port_str(p, port);
    int lfd;
    if (simul_tcp_listen("127.0.0.1", p, 0, 0, &lfd, 1) != 1) {
        close(filler);
        simul_close(silent);
        return SKIPPED; /* port taken on IPv4 */
    }
    double t0 = test_clock();
    int fd = simul_tcp_connect("dual6.test", p);
    double took = test_clock() - t0;
    assert_true(fd >= 0);
    assert_int_equal(peer_family(fd), AF_INET);
    /* The v4 attempt started after the ~250 ms delay: never sooner; the upper bound only says it
     * did not wait for the silent v6 attempt (the kernel gives up on it after minutes), with a
     * margin no load eats. */
    assert_true(took >= 0.2 && took < 30.0);
    /* The v6 attempt lost and was cancelled and closed. */
    assert_int_equal(simul_task_count(), 1);
    simul_close(fd);
    simul_close(lfd);
    close(filler);
    simul_close(silent);
    assert_int_equal(test_fd_count(), before);
    return 0;
}

typedef struct connect_job {
    const char *host, *port;
    double timeout; /* INFINITY: none */
    int rc;
} connect_job;

static int connect_task(void *arg)
{
    connect_job *j = arg;
    simul_scope sc;
    assert_int_equal(simul_scope_timeout(&sc, j->timeout), 0);
    j->rc = simul_tcp_connect(j->host, j->port);
    simul_scope_end(&sc);
    if (j->rc >= 0)
        simul_close(j->rc);
    return j->rc;
}

/* Both families silent on one port: connect can only end by cancel or deadline. */
static int both_silent(int *s6, int *s4, int *f6, int *f4)
{
    *s6 = silent_listener("::1", 0, f6);
    if (*s6 < 0)
        return -1;
    *s4 = silent_listener("127.0.0.1", local_port(*s6), f4);
    if (*s4 < 0) {
        close(*f6);
        simul_close(*s6);
        return -1;
    }
    return local_port(*s6);
}

CONNECT_TEST(happy_eyeballs_cancel_closes_every_attempt)
{
    (void)arg;
    if (!have_ipv6())
        return SKIPPED;
    simul__dns_test_set(fake_lookup, 0);
    int before = test_fd_count();
    int s6, s4, f6, f4;
    int port = both_silent(&s6, &s4, &f6, &f4);
    if (port < 0)
        return SKIPPED;
    char p[8];
    port_str(p, port);
    connect_job j = {.host = "dual6.test", .port = p, .timeout = INFINITY};
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, connect_task, &j, NULL), 0);
    assert_int_equal(simul_sleep(0.4), 0);   /* both attempts are pending now */
    assert_int_equal(simul_task_count(), 4); /* main, connect, two attempts */
    double t0 = test_clock();
    assert_int_equal(simul_task_cancel(t), 0);
    int r;
    assert_int_equal(simul_task_join(t, &r), 0);
    assert_true(test_clock() - t0 < 0.2);
    assert_int_equal(r, -ECANCELED);
    assert_int_equal(simul_task_count(), 1);

    /* A deadline does the same. */
    j = (connect_job){.host = "dual6.test", .port = p, .timeout = 0.4};
    t0 = test_clock();
    assert_int_equal(connect_task(&j), -ETIMEDOUT);
    double took = test_clock() - t0;
    assert_true(took >= 0.35 && took < 1.0);
    assert_int_equal(simul_task_count(), 1);

    /* And a single address (no race) too. */
    j = (connect_job){.host = "::1", .port = p, .timeout = 0.1};
    assert_int_equal(connect_task(&j), -ETIMEDOUT);

    close(f6);
    close(f4);
    simul_close(s6);
    simul_close(s4);
    assert_int_equal(test_fd_count(), before);
    return 0;
}

/* ---- TCP listen ------------------------------------------------------------------------------ */

static void dual_stack_any(const char *host)
{
    int fds[4];
    int n = simul_tcp_listen(host, "0", 0, 0, fds, 4);
    assert_true(n >= 1 && n <= 2);
    int port = local_port(fds[0]);
    assert_true(port > 0);
    for (int i = 1; i < n; i++)
        assert_int_equal(local_port(fds[i]), port);
    bool v6 = have_ipv6();
    if (v6)
        assert_int_equal(n, 1); /* one dual-stack socket */
    char p[8];
    port_str(p, port);
    /* Reach it over both families (through the one socket, or the IPv4 one). */
    int lfd = fds[n - 1];
    acceptor a = {.lfd = lfd, .n = v6 ? 2 : 1};
    simul_task *at;
    assert_int_equal(simul_task_spawn(&at, accept_task, &a, NULL), 0);
    int c4 = simul_tcp_connect("127.0.0.1", p);
    assert_true(c4 >= 0);
    ping(c4);
    simul_close(c4);
    if (v6) {
        int c6 = simul_tcp_connect("::1", p);
        assert_true(c6 >= 0);
        ping(c6);
        simul_close(c6);
    }
    int r;
    assert_int_equal(simul_task_join(at, &r), 0);
    assert_int_equal(r, 0);
    for (int i = 0; i < n; i++)
        simul_close(fds[i]);
}

SIMUL_TASK_TEST(listen_any_port0_dual_stack)
{
    (void)arg;
    int before = test_fd_count();
    dual_stack_any(NULL);
    dual_stack_any("");
    assert_int_equal(test_fd_count(), before);
    return 0;
}

CONNECT_TEST(listen_name_every_address_one_port)
{
    (void)arg;
    if (!have_ipv6())
        return SKIPPED;
    simul__dns_test_set(fake_lookup, 0);
    int fds[4];
    int n = simul_tcp_listen("dual6.test", "0", 0, 0, fds, 4);
    assert_int_equal(n, 2);
    int port = local_port(fds[0]);
    assert_int_equal(local_port(fds[1]), port);
    char p[8];
    port_str(p, port);
    const char *hosts[2] = {"::1", "127.0.0.1"};
    for (int i = 0; i < 2; i++) {
        acceptor a = {.lfd = fds[i], .n = 1};
        simul_task *at;
        assert_int_equal(simul_task_spawn(&at, accept_task, &a, NULL), 0);
        int c = simul_tcp_connect(hosts[i], p);
        assert_true(c >= 0);
        ping(c);
        int r;
        assert_int_equal(simul_task_join(at, &r), 0);
        assert_int_equal(r, 0);
        assert_int_equal(a.families[0], i == 0 ? AF_INET6 : AF_INET);
        simul_close(c);
    }
    /* max_fds caps the count. */
    int one;
    assert_int_equal(simul_tcp_listen("dual6.test", "0", 0, 0, &one, 1), 1);
    simul_close(one);
    for (int i = 0; i < n; i++)
        simul_close(fds[i]);
    return 0;
}

SIMUL_TASK_TEST(listen_reuseport_and_addrinuse)
{
    (void)arg;
    int a, b;
    assert_int_equal(simul_tcp_listen("127.0.0.1", "0", 16, SIMUL_LISTEN_REUSEPORT, &a, 1), 1);
    char p[8];
    port_str(p, local_port(a));
    assert_int_equal(simul_tcp_listen("127.0.0.1", p, 16, 0, &b, 1), -EADDRINUSE);
    assert_int_equal(simul_tcp_listen("127.0.0.1", p, 16, SIMUL_LISTEN_REUSEPORT, &b, 1), 1);
    int v = 0;
    socklen_t vl = sizeof v;
    assert_int_equal(getsockopt(b, SOL_SOCKET, SO_REUSEADDR, &v, &vl), 0);
    assert_true(v != 0);
    simul_close(a);
    simul_close(b);
    /* Bad arguments. */
    assert_int_equal(simul_tcp_listen("127.0.0.1", "0", 0, 0, &a, 0), -EINVAL);
    assert_int_equal(simul_tcp_listen("127.0.0.1", "0", 0, 0, NULL, 1), -EINVAL);
    assert_int_equal(simul_tcp_listen("127.0.0.1", "0", 0, 0x80, &a, 1), -EINVAL);
    assert_true(simul_is_eai(simul_tcp_listen("127.0.0.1", "no-such-service", 0, 0, &a, 1)));
    return 0;
}

static void listen_outside_a_task(void **state)
{
    (void)state;
    /* No loop at all: a numeric host needs neither a task nor a loop. */
    int fd;
    assert_int_equal(simul_tcp_listen("127.0.0.1", "0", 0, 0, &fd, 1), 1);
    assert_true(local_port(fd) > 0);
    assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
    close(fd);
    assert_int_equal(simul_tcp_listen("localhost", "0", 0, 0, &fd, 1), -EPERM);
}

/* ---- Unix sockets ---------------------------------------------------------------------------- */

static void temp_path(char *buf, size_t len, const char *name)
{
    const char *dir = getenv("TMPDIR");
    snprintf(buf, len, "%s/simul-%d-%s.sock", dir && *dir ? dir : "/tmp", (int)getpid(), name);
    unlink(buf);
}

static void unix_round_trip(const char *path)
{
    int lfd = simul_unix_listen(path, 0);
    assert_true(lfd >= 0);
    acceptor a = {.lfd = lfd, .n = 1};
    simul_task *at;
    assert_int_equal(simul_task_spawn(&at, accept_task, &a, NULL), 0);
    int c = simul_unix_connect(path);
    assert_true(c >= 0);
    ping(c);
    int r;
    assert_int_equal(simul_task_join(at, &r), 0);
    assert_int_equal(r, 0);
    assert_int_equal(a.families[0], AF_UNIX);
    simul_close(c);
    simul_close(lfd);
}

SIMUL_TASK_TEST(unix_connect_and_listen)
{
    (void)arg;
    int before = test_fd_count();
    char path[256];
    temp_path(path, sizeof path, "rt");
    unix_round_trip(path);
    unlink(path);
    assert_int_equal(simul_unix_connect(path), -ENOENT);
    assert_int_equal(test_fd_count(), before);
    return 0;
}

SIMUL_TASK_TEST(unix_stale_file_is_replaced)
{
    (void)arg;
    char path[256];
    temp_path(path, sizeof path, "stale");
    /* A server that died: its socket file stays, nobody listens. */
    int old = simul_unix_listen(path, 0);
    assert_true(old >= 0);
    simul_close(old);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(simul_unix_connect(path), -ECONNREFUSED);
    unix_round_trip(path); /* listen unlinks the stale file and binds again */
    unlink(path);
    return 0;
}

SIMUL_TASK_TEST(unix_live_server_or_foreign_file_is_kept)
{
    (void)arg;
    char path[256];
    temp_path(path, sizeof path, "live");
    int live = simul_unix_listen(path, 0);
    assert_true(live >= 0);
    assert_int_equal(simul_unix_listen(path, 0), -EADDRINUSE);
    /* It still works. */
    int c = simul_unix_connect(path);
    assert_true(c >= 0);
    simul_close(c);
    simul_close(live);
    unlink(path);

    /* Not a socket: never unlinked. */
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("keep me", f);
    fclose(f);
    assert_int_equal(simul_unix_listen(path, 0), -EADDRINUSE);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_size, 7);
    unlink(path);
    return 0;
}

SIMUL_TASK_TEST(unix_path_checks)
{
    (void)arg;
    int before = test_fd_count();
    struct sockaddr_un sa;
    char longp[sizeof sa.sun_path + 16];
    memset(longp, 'a', sizeof longp);
    longp[0] = '/';
    longp[sizeof sa.sun_path] = 0; /* 108 chars: no room for the terminator */
    assert_int_equal(simul_unix_listen(longp, 0), -ENAMETOOLONG);
    assert_int_equal(simul_unix_connect(longp), -ENAMETOOLONG);
    longp[sizeof longp - 1] = 0;
    memset(longp + 1, 'b', sizeof longp - 2);
    assert_int_equal(simul_unix_listen(longp, 0), -ENAMETOOLONG);
    assert_int_equal(simul_unix_listen("", 0), -EINVAL);
    assert_int_equal(simul_unix_listen(NULL, 0), -EINVAL);
    assert_int_equal(simul_unix_connect(""), -EINVAL);
    /* An abstract name may use every byte of sun_path: '@' and 107 more. */
    char abs[sizeof sa.sun_path + 2];
    int k = snprintf(abs, sizeof abs, "@simul-%d-", (int)getpid());
    memset(abs + k, 'c', sizeof abs - (size_t)k);
    abs[sizeof sa.sun_path] = 0;
    unix_round_trip(abs);
    abs[sizeof sa.sun_path] = 'c';
    abs[sizeof sa.sun_path + 1] = 0;
    assert_int_equal(simul_unix_listen(abs, 0), -ENAMETOOLONG);
    assert_int_equal(test_fd_count(), before);
    return 0;
}

SIMUL_TASK_TEST(unix_abstract_namespace)
{
    (void)arg;
    char name[64];
    snprintf(name, sizeof name, "@simul-test-%d", (int)getpid());
    int lfd = simul_unix_listen(name, 0);
    assert_true(lfd >= 0);
    /* Taken while it listens; gone with it (no file to go stale). */
    assert_int_equal(simul_unix_listen(name, 0), -EADDRINUSE);
    simul_close(lfd);
    unix_round_trip(name);
    return 0;
}

typedef struct unix_job {
    const char *path;
    int rc;
} unix_job;

static int unix_connect_task(void *arg)
{
    unix_job *j = arg;
    j->rc = simul_unix_connect(j->path);
    return j->rc < 0 ? j->rc : 0;
}

CONNECT_TEST(unix_connect_waits_for_backlog_room)
{
    (void)arg;
    char path[256];
    temp_path(path, sizeof path, "backlog");
    int lfd = simul_unix_listen(path, 1);
    assert_true(lfd >= 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, path, strlen(path) + 1);
    /* Fill the backlog with connections nobody accepts, until the kernel says EAGAIN. */
    int fill[8], nfill = 0;
    bool full = false;
    while (nfill < 8 && !full) {
        int c = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (connect(c, (struct sockaddr *)&sa, sizeof sa) == 0) {
            fill[nfill++] = c;
        } else {
            full = errno == EAGAIN;
            close(c);
        }
    }
    int rc = 0;
    if (!full) {
        rc = SKIPPED;
        goto out;
    }
    unix_job j = {.path = path, .rc = 1};
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, unix_connect_task, &j, NULL), 0);
    assert_int_equal(simul_sleep(0.05), 0);
    assert_int_equal(j.rc, 1);             /* still waiting for room */
    int a = simul_accept(lfd, NULL, NULL); /* makes room */
    assert_true(a >= 0);
    int r;
    double t0 = test_clock();
    assert_int_equal(simul_task_join(t, &r), 0);
    assert_true(test_clock() - t0 < 1.0);
    assert_int_equal(r, 0);
    assert_true(j.rc >= 0);
    simul_close(j.rc);
    simul_close(a);
out:
    while (nfill > 0)
        close(fill[--nfill]);
    simul_close(lfd);
    unlink(path);
    return rc;
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(connect_refused),
    cmocka_unit_test(connect_outside_a_task),
    cmocka_unit_test(connect_numeric_sets_nodelay),
    cmocka_unit_test(connect_localhost_by_name),
    cmocka_unit_test(connect_name_error),
    cmocka_unit_test(happy_eyeballs_v6_refused_v4_answers),
    cmocka_unit_test(happy_eyeballs_v4_refused_v6_answers),
    cmocka_unit_test(happy_eyeballs_all_refused),
    cmocka_unit_test(happy_eyeballs_next_attempt_after_delay),
    cmocka_unit_test(happy_eyeballs_cancel_closes_every_attempt),
    cmocka_unit_test(listen_any_port0_dual_stack),
    cmocka_unit_test(listen_name_every_address_one_port),
    cmocka_unit_test(listen_reuseport_and_addrinuse),
    cmocka_unit_test(listen_outside_a_task),
    cmocka_unit_test(unix_connect_and_listen),
    cmocka_unit_test(unix_stale_file_is_replaced),
    cmocka_unit_test(unix_live_server_or_foreign_file_is_kept),
    cmocka_unit_test(unix_path_checks),
    cmocka_unit_test(unix_abstract_namespace),
    cmocka_unit_test(unix_connect_waits_for_backlog_room),
};

SIMUL_TEST_MAIN("test_connect", tests)
