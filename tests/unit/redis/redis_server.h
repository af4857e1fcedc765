/* redis_server.h — real redis-servers for the redis tests: the suite's shared server (started
 * once by the CTest fixture tests/redis/fixture.sh, found through SIMUL_REDIS_FIXTURE) and, for
 * cases that kill, stop or configure a server, one of their own on a free port in a temp dir.
 * Cases on the shared server hold the CTest resource lock "redis_server", so the server is theirs
 * alone: start_server() flushes it and waits until no client of an earlier case is left. */
#ifndef SIMUL_TEST_REDIS_SERVER_H
#define SIMUL_TEST_REDIS_SERVER_H

#include "test_main_helpers.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <simul/redis.h>

typedef struct server {
    pid_t pid; /* 0 for the shared server: not ours to stop */
    int port;
    bool shared;
    char dir[64];
    char sock[100]; /* fits sun_path */
    char portstr[16];
} server;

static inline bool on_path(const char *prog)
{
    const char *path = getenv("PATH");
    char dir[4096];
    while (path && *path) {
        const char *c = strchr(path, ':');
        size_t n = c ? (size_t)(c - path) : strlen(path);
        snprintf(dir, sizeof dir, "%.*s/%s", (int)n, path, prog);
        if (access(dir, X_OK) == 0)
            return true;
        path = c ? c + 1 : NULL;
    }
    return false;
}

static inline int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t l = sizeof a;
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &l), 0);
    close(s);
    return ntohs(a.sin_port);
}

static inline int unix_connect_fd(const char *path)
{
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    if (connect(s, (struct sockaddr *)&a, sizeof a) == 0)
        return s;
    close(s);
    return -1;
}

/* Whether the server's Unix socket accepts (it is opened after the TCP port). */
static inline bool unix_accepts(const char *path)
{
    int s = unix_connect_fd(path);
    if (s >= 0)
        close(s);
    return s >= 0;
}

static inline bool accepts(int port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = connect(s, (struct sockaddr *)&a, sizeof a) == 0;
    close(s);
    return ok;
}

/* A blocking command on a plain socket, outside the loop (setup and checks of the servers):
 * the whole reply, parsed; NULL if the server closed the connection first (a sentinel drops
 * the clients of a master it demotes). */
static inline simul_redis_reply *try_blocking_call(int fd, int argc, const char *const *argv)
{
    simul_redis_buf b = {0};
    assert_true(simul_redis_encode(&b, argc, argv, NULL) > 0);
    for (size_t off = 0; off < b.len;) {
        ssize_t n = write(fd, b.data + off, b.len - off);
        if (n <= 0) {
            simul_redis_buf_free(&b);
            return NULL;
        }
        off += (size_t)n;
    }
    simul_redis_buf_free(&b);
    simul_redis_parser *p = NULL;
    assert_int_equal(simul_redis_parser_new(&p, NULL), 0);
    simul_redis_reply *r = NULL;
    char buf[4096];
    while (!r) {
        ssize_t n = read(fd, buf, sizeof buf); /* one reply, nothing after it: no leftovers */
        if (n <= 0)
            break;
        ssize_t used = 0;
        while (!r && used < n) {
            ssize_t k = simul_redis_parse(p, buf + used, (size_t)(n - used), &r);
            assert_true(k >= 0);
            used += k;
        }
    }
    simul_redis_parser_free(p);
    return r;
}

/* The same, when the connection must not fail. */
static inline simul_redis_reply *blocking_call(int fd, int argc, const char *const *argv)
{
    simul_redis_reply *r = try_blocking_call(fd, argc, argv);
    assert_non_null(r);
    return r;
}

/* Runs redis-server on sv->port (and its Unix socket) with extra arguments; returns once it
 * accepts, false if it exited first (the port was taken). The child dies with the test process
 * (PR_SET_PDEATHSIG), so a failed assertion leaves no server behind. */
static inline bool run_server(server *sv, const char *const *extra)
{
    char log[128];
    snprintf(sv->portstr, sizeof sv->portstr, "%d", sv->port);
    snprintf(log, sizeof log, "%s/redis.log", sv->dir);
    const char *argv[48] = {"redis-server",
                            "--port",
                            sv->portstr,
                            "--bind",
                            "127.0.0.1",
                            "--save",
                            "",
                            "--appendonly",
                            "no",
                            "--dir",
                            sv->dir,
                            "--logfile",
                            log,
                            "--unixsocket",
                            sv->sock,
                            "--unixsocketperm",
                            "700",
                            "--enable-debug-command",
                            "yes"};
    int argc = 19;
    for (int i = 0; extra && extra[i]; i++)
        argv[argc++] = extra[i];
    argv[argc] = NULL;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execvp("redis-server", (char *const *)argv);
        _exit(127);
    }
    for (int i = 0; i < 4000; i++) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid)
            return false;
        if (accepts(sv->port) && unix_accepts(sv->sock)) {
            sv->pid = pid;
            return true;
        }
        usleep(2000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return false;
}

/* A server of this case's own (to kill, stop or configure it). */
static inline void start_own_server(server *sv, const char *const *extra)
{
    memset(sv, 0, sizeof *sv);
    snprintf(sv->dir, sizeof sv->dir, "/tmp/simul-redis-XXXXXX");
    assert_non_null(mkdtemp(sv->dir));
    snprintf(sv->sock, sizeof sv->sock, "%s/redis.sock", sv->dir);
    for (int attempt = 0; attempt < 5; attempt++) {
        sv->port = free_port();
        if (run_server(sv, extra))
            return;
    }
    fail_msg("redis-server did not start");
}

/* The suite's server, if the fixture runs: reads its state file (port=, sock=, dir=, pid=). */
static inline bool fixture_server(server *sv)
{
    const char *state = getenv("SIMUL_REDIS_FIXTURE");
    FILE *f = state && *state ? fopen(state, "r") : NULL;
    if (!f)
        return false;
    memset(sv, 0, sizeof *sv);
    char line[256];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        if (strncmp(line, "port=", 5) == 0)
            sv->port = atoi(line + 5);
        else if (strncmp(line, "sock=", 5) == 0)
            snprintf(sv->sock, sizeof sv->sock, "%.99s", line + 5);
        else if (strncmp(line, "dir=", 4) == 0)
            snprintf(sv->dir, sizeof sv->dir, "%.63s", line + 4);
    }
    fclose(f);
    if (sv->port <= 0 || !sv->sock[0])
        fail_msg("%s: no port= or sock= line", state);
    snprintf(sv->portstr, sizeof sv->portstr, "%d", sv->port);
    sv->shared = true;

    /* Clean slate: no key, no client of an earlier case (their closes may still be on the way
     * to the server: wait for that state, do not assume it). */
    int fd = unix_connect_fd(sv->sock);
    if (fd < 0)
        fail_msg("the fixture's server does not accept on %s", sv->sock);
    const char *flush[] = {"FLUSHALL"};
    simul_redis_reply_free(blocking_call(fd, 1, flush));
    const char *cfg[] = {"CONFIG", "RESETSTAT"};
    simul_redis_reply_free(blocking_call(fd, 2, cfg));
    for (int i = 0;; i++) {
        const char *info[] = {"INFO", "clients"};
        simul_redis_reply *r = blocking_call(fd, 2, info);
        const char *s = simul_redis_reply_str(r, NULL);
        const char *p = s ? strstr(s, "connected_clients:") : NULL;
        long long n = p ? atoll(p + strlen("connected_clients:")) : -1;
        simul_redis_reply_free(r);
        if (n == 1)
            break;
        if (i == 2000)
            fail_msg("the shared server still has %lld clients of an earlier case", n - 1);
        usleep(1000);
    }
    close(fd);
    return true;
}

/* The shared server when the fixture runs (the case holds the resource lock), else one of the
 * case's own: the binary also runs alone, outside CTest. extra: a server of its own always. */
static inline void start_server(server *sv, const char *const *extra)
{
    if (!extra && fixture_server(sv))
        return;
    start_own_server(sv, extra);
}

static inline void kill_server(server *sv, int sig)
{
    assert_false(sv->shared); /* start_own_server for a case that kills its server */
    kill(sv->pid, sig);
    waitpid(sv->pid, NULL, 0);
    sv->pid = 0;
}

static inline void stop_server(server *sv)
{
    if (sv->shared)
        return; /* the fixture's cleanup stops it */
    if (sv->pid)
        kill_server(sv, SIGTERM);
    DIR *d = opendir(sv->dir);
    struct dirent *e;
    char path[512];
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", sv->dir, e->d_name);
        unlink(path);
    }
    if (d)
        closedir(d);
    rmdir(sv->dir);
}

#define NEED_REDIS()                                                                               \
    do {                                                                                           \
        if (!on_path("redis-server")) {                                                            \
            skip(); /* `make deps` installs it (package redis-server) */                           \
        }                                                                                          \
    } while (0)

/* The opening most cases share: skip without redis-server, a deadline `guard` over the whole
 * case (seconds), and `sv` the suite's shared server (or one of the case's own outside CTest). */
#define REDIS_CASE_BEGIN(sv, guard, seconds)                                                       \
    NEED_REDIS();                                                                                  \
    simul_scope guard;                                                                             \
    assert_int_equal(simul_scope_timeout(&guard, seconds), 0);                                     \
    server sv;                                                                                     \
    start_server(&sv, NULL)

/* Its closing: the deadline ends, then the server is stopped (or, shared, left to the fixture). */
static inline void redis_case_end(server *sv, simul_scope *guard)
{
    simul_scope_end(guard);
    stop_server(sv);
}

static inline simul_redis_stats stats(simul_redis_conn *c)
{
    simul_redis_stats st;
    simul_redis_get_stats(c, &st);
    return st;
}

static inline simul_redis_conn *connect_tcp(server *sv, int protocol)
{
    simul_redis_opts o = {.host = "127.0.0.1", .port = sv->portstr, .protocol = protocol};
    simul_redis_conn *c = NULL;
    assert_int_equal(simul_redis_connect(&o, &c), 0);
    return c;
}

static inline void expect_status(int rc, simul_redis_reply *r, const char *s)
{
    if (rc != 0)
        fail_msg("rc %s, reply %s", simul_errname(rc), r ? r->str : "(none)");
    size_t n;
    const char *p = simul_redis_reply_str(r, &n);
    assert_non_null(p);
    assert_int_equal(n, strlen(s));
    assert_memory_equal(p, s, n);
    simul_redis_reply_free(r);
}

/* Evaluated in order (a reply pointer passed beside the call would be read before it). */
#define EXPECT_REPLY(conn, want, ...)                                                              \
    do {                                                                                           \
        simul_redis_reply *r_ = NULL;                                                              \
        int rc_ = simul_redis_command(conn, &r_, __VA_ARGS__);                                     \
        expect_status(rc_, r_, want);                                                              \
    } while (0)

/* A command that must give this string (status or bulk). */
static inline void call_expect(simul_redis_conn *c, const char *want, const char *fmt,
                               const char *a, const char *b)
{
    simul_redis_reply *r = NULL;
    int rc = simul_redis_command(c, &r, fmt, a, b);
    expect_status(rc, r, want);
}

static inline long long call_int(simul_redis_conn *c, const char *fmt, const char *a)
{
    simul_redis_reply *r = NULL;
    int rc = simul_redis_command(c, &r, fmt, a);
    if (rc != 0)
        fail_msg("%s: %s %s", fmt, simul_errname(rc), r ? r->str : "");
    assert_int_equal(r->type, SIMUL_REDIS_INTEGER);
    long long v = r->integer;
    simul_redis_reply_free(r);
    return v;
}

/* INFO field as an integer ("blocked_clients", "connected_clients", ...). */
static inline long long info_field(simul_redis_conn *c, const char *section, const char *field)
{
    simul_redis_reply *r = NULL;
    assert_int_equal(simul_redis_command(c, &r, "INFO %s", section), 0);
    const char *s = simul_redis_reply_str(r, NULL);
    assert_non_null(s);
    char key[64];
    snprintf(key, sizeof key, "%s:", field);
    const char *p = strstr(s, key);
    assert_non_null(p);
    long long v = atoll(p + strlen(key));
    simul_redis_reply_free(r);
    return v;
}

/* Yields until the server reports n clients blocked (BLPOP): the blocked command is then in
 * flight, known to the server. Bounded by the caller's deadline. */
static inline void wait_blocked(simul_redis_conn *probe, long long n)
{
    while (info_field(probe, "clients", "blocked_clients") != n)
        assert_int_equal(simul_yield(), 0);
}

#endif /* SIMUL_TEST_REDIS_SERVER_H */
