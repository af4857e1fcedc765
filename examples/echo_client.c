/* echo_client.c — the echo benchmark's load generator, built on simul: one task per connection,
 * each with one message in flight (closed loop), every echo checked byte for byte. Messages
 * carry a per-connection counter pattern, so a lost, reordered or corrupted echo is a mismatch.
 *
 *   echo_client --host H --port P [--connections C] [--size S] [--seconds T]
 *               [--tls [--ca FILE | --insecure]]   (TLS: with libsimul-tls; verification on)
 *
 * Prints msgs_per_s, p50_us, p99_us, msgs, errors, connections (key=value lines) and exits 1 on
 * any mismatch or connection error. Latencies go into a log-linear histogram, not a sample list.
 */
#include <simul.h>

#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "example_cli.h"

#ifdef SIMUL_EXAMPLE_TLS
#include <simul/tls.h>
static bool use_tls, tls_insecure; /* --tls, --insecure */
static const char *tls_ca;         /* --ca FILE */
static simul_tls_config *tls;
#endif

/* Connects in flight at once: thousands at once could overflow a small accept backlog and cost
 * a one-second SYN retransmit; a few dozen keep loopback busy anyway. */
enum { CONNECT_CONCURRENCY = 64 };
enum { CONNECT_ATTEMPTS = 5 };
/* The whole connect phase, and how long an echo may lag past the end before it counts as hung. */
#define CONNECT_PHASE_SECONDS 30.0
#define ECHO_GRACE_SECONDS 10.0
/* File descriptors besides the connections: stdio, the loop's epoll and eventfd, slack. */
enum { SPARE_FDS = 32 };
enum { MAX_CONNECTIONS = 1000000 };
#define MAX_SIZE (16u << 20)
#define MAX_SECONDS 86400.0
/* Errors described on stderr; the rest are only counted. */
enum { MAX_REPORTED = 5 };

struct options {
    const char *host;
    const char *port;
    long connections;
    size_t size;
    double seconds;
};

struct conn {
    int fd;
    unsigned id;
    unsigned char *msg; /* what was sent */
    unsigned char *buf; /* what came back */
    simul_stream *st;   /* --tls: the stream over TLS (it owns the fd); else NULL */
};

static const char *progname = "echo_client";

/* ---------------------------------------------------------------------------------------------
 * Latency histogram (HdrHistogram's layout): values below 128 ns have a bucket each; above,
 * every power of two is split into 64 buckets, so any value is off by less than 1/64 (1.6%).
 * ------------------------------------------------------------------------------------------- */

enum { HIST_SUB = 64, HIST_BUCKETS = HIST_SUB * 59 };

static uint64_t hist[HIST_BUCKETS];
static uint64_t hist_count;

static unsigned hist_index(uint64_t v)
{
    if (v < 2 * HIST_SUB)
        return (unsigned)v;
    unsigned shift = 63u - (unsigned)__builtin_clzll(v) - 6u; /* v >> shift is in [64, 128) */
    return HIST_SUB * shift + (unsigned)(v >> shift);
}

/* The largest value that falls in bucket i (HdrHistogram's "highest equivalent value"). */
static uint64_t hist_value(unsigned i)
{
    if (i < 2 * HIST_SUB)
        return i;
    unsigned shift = i / HIST_SUB - 1;
    uint64_t sub = i - (uint64_t)HIST_SUB * shift;
    return ((sub + 1) << shift) - 1;
}

static void hist_record(int64_t ns)
{
    hist[hist_index(ns < 0 ? 0 : (uint64_t)ns)]++;
    hist_count++;
}

/* The value at quantile q (0 < q <= 1), in nanoseconds; 0 if nothing was recorded. */
static uint64_t hist_quantile(double q)
{
    if (hist_count == 0)
        return 0;
    uint64_t rank = (uint64_t)ceil(q * (double)hist_count);
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += hist[i];
        if (seen >= rank)
            return hist_value(i);
    }
    return hist_value(HIST_BUCKETS - 1);
}

/* ---------------------------------------------------------------------------------------------
 * The run
 * ------------------------------------------------------------------------------------------- */

static struct options opt;
static struct addrinfo *target;
static struct conn *conns;
static long next_to_connect; /* the connectors' shared work queue: one thread, no lock needed */
static int64_t end_ns;
static uint64_t msgs;
static uint64_t errors;

__attribute__((format(printf, 1, 2))) static void report(const char *fmt, ...)
{
    errors++;
    if (errors > MAX_REPORTED) {
        if (errors == MAX_REPORTED + 1)
            fprintf(stderr, "%s: more errors follow, only counted\n", progname);
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", progname);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* Message `seq` of connection `id`: the sequence number spread over every byte, mixed with the
 * position, so two different messages of one connection never look alike and a shifted or
 * stale echo differs in most bytes. */
static void fill(unsigned char *p, size_t n, unsigned id, uint64_t seq)
{
    uint64_t x = (seq + 1) * 0x9E3779B97F4A7C15ull ^ (uint64_t)id << 40;
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)((x >> (8 * (i & 7))) + i);
}

static int connect_one(struct conn *c)
{
    int err = 0;
    for (int attempt = 0; attempt < CONNECT_ATTEMPTS; attempt++) {
        if (attempt > 0 && (err = simul_sleep(0.05 * attempt)) < 0)
            return err;
        int fd = simul_socket(target->ai_family, target->ai_socktype, target->ai_protocol);
        if (fd < 0)
            return fd; /* EMFILE and the like: retrying will not help */
        err = simul_connect(fd, target->ai_addr, (simul_socklen_t)target->ai_addrlen);
        if (err == 0) {
            /* Each message must leave at once, not wait for the previous echo's ACK. */
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            c->fd = fd;
#ifdef SIMUL_EXAMPLE_TLS
            if (tls) { /* the host is numeric: the certificate must name that IP address */
                if ((err = simul_stream_from_fd(fd, &c->st)) < 0)
                    return err;
                c->fd = -1;
                if ((err = simul_tls_start_tls(c->st, tls, opt.host)) < 0) {
                    report("connection %u: TLS: %s", c->id, simul_tls_last_error(c->st));
                    return err;
                }
            }
#endif
            return 0;
        }
        simul_close(fd);
        if (err == -ECANCELED || err == -ETIMEDOUT)
            return err;
    }
    return err;
}

/* One of CONNECT_CONCURRENCY tasks that take the next unconnected connection until none is
 * left. */
static int connector(void *arg)
{
    (void)arg;
    while (next_to_connect < opt.connections) {
        struct conn *c = &conns[next_to_connect++];
        int err = connect_one(c);
        if (err < 0) {
            report("connection %u: connect to %s:%s: %s", c->id, opt.host, opt.port,
                   simul_strerror(err));
            return err;
        }
    }
    return 0;
}

/* Sends message after message and checks each echo until end_ns. */
static int worker(void *arg)
{
    struct conn *c = arg;
    simul_scope scope;
    simul_scope_deadline_ns(&scope, end_ns + (int64_t)(ECHO_GRACE_SECONDS * 1e9));
    int rc = 0;
    uint64_t seq = 0;
    for (int64_t now = simul_now_ns(); now < end_ns; seq++) {
        fill(c->msg, opt.size, c->id, seq);
        int64_t sent_at = simul_now_ns();
        long n = c->st ? simul_stream_write(c->st, c->msg, opt.size)
                       : simul_sendall(c->fd, c->msg, opt.size, NULL);
        if (n < 0) {
            report("connection %u: send: %s", c->id, simul_strerror((int)n));
            rc = (int)n;
            break;
        }
        size_t got = 0;
        while (got < opt.size) {
            n = c->st ? simul_stream_read(c->st, c->buf + got, opt.size - got)
                      : simul_recv(c->fd, c->buf + got, opt.size - got, 0);
            if (n <= 0)
                break;
            got += (size_t)n;
        }
        if (n <= 0) {
            rc = n == 0 ? -ECONNRESET : (int)n;
            const char *why = n == 0 ? "peer closed" : simul_strerror((int)n);
            if (n == -ETIMEDOUT)
                why = "no echo within the grace period";
            report("connection %u: message %llu: %s after %zu of %zu echoed bytes", c->id,
                   (unsigned long long)seq, why, got, opt.size);
            break;
        }
        now = simul_now_ns();
        if (memcmp(c->msg, c->buf, opt.size) != 0) {
            size_t i = 0;
            while (c->msg[i] == c->buf[i])
                i++;
            report("connection %u: message %llu: echo differs at byte %zu (sent 0x%02x, got "
                   "0x%02x)",
                   c->id, (unsigned long long)seq, i, c->msg[i], c->buf[i]);
            rc = -EPROTO;
            break;
        }
        hist_record(now - sent_at);
        msgs++;
    }
    simul_scope_end(&scope);
    return rc;
}

/* Spawns n tasks fn(args[i]) (args NULL: fn(NULL)), waits for them all; returns the failures. */
static int run_tasks(long n, simul_task_fn fn, struct conn *args)
{
    simul_task **tasks = calloc((size_t)n, sizeof *tasks);
    if (!tasks)
        return -ENOMEM;
    long spawned = 0;
    int err = 0;
    for (; spawned < n; spawned++) {
        err = simul_task_spawn(&tasks[spawned], fn, args ? &args[spawned] : NULL, NULL);
        if (err < 0) {
            report("cannot start task %ld: %s", spawned, simul_strerror(err));
            break;
        }
    }
    int failed = simul_gather(tasks, (size_t)spawned, NULL);
    free(tasks);
    return err < 0 ? err : failed;
}

/* This process's user + system CPU time. */
static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static int main_task(void *arg)
{
    (void)arg;
    int rc;
    simul_scope scope;
    simul_scope_timeout(&scope, CONNECT_PHASE_SECONDS);
    long connectors = opt.connections < CONNECT_CONCURRENCY ? opt.connections : CONNECT_CONCURRENCY;
    rc = run_tasks(connectors, connector, NULL);
    if (simul_scope_end(&scope) == 1 && rc != 0)
        fprintf(stderr, "%s: could not connect all %ld connections within %g s\n", progname,
                opt.connections, CONNECT_PHASE_SECONDS);

    if (rc == 0) {
        /* The clock starts once everything is connected. */
        double cpu0 = cpu_seconds();
        int64_t start = simul_now_ns();
        end_ns = start + (int64_t)(opt.seconds * 1e9);
        rc = run_tasks(opt.connections, worker, conns);
        double elapsed = (double)(simul_now_ns() - start) / 1e9;
        printf("msgs_per_s=%.0f\n", elapsed > 0 ? (double)msgs / elapsed : 0.0);
        printf("p50_us=%.1f\n", (double)hist_quantile(0.50) / 1e3);
        printf("p99_us=%.1f\n", (double)hist_quantile(0.99) / 1e3);
        printf("max_us=%.1f\n", (double)hist_quantile(1.0) / 1e3);
        printf("seconds=%.3f\n", elapsed);
        /* Near 100 the client, not the server, may be what limits msgs_per_s. */
        printf("client_cpu_pct=%.0f\n", elapsed > 0 ? 100 * (cpu_seconds() - cpu0) / elapsed : 0.0);
    }
    printf("msgs=%llu\n", (unsigned long long)msgs);
    printf("errors=%llu\n", (unsigned long long)errors);
    printf("connections=%ld\n", opt.connections);
    printf("size=%zu\n", opt.size);
    for (long i = 0; i < opt.connections; i++) {
        if (conns[i].fd >= 0)
            simul_close(conns[i].fd);
        if (conns[i].st)
            simul_stream_close(conns[i].st);
    }
    return rc == 0 && errors == 0 ? 0 : 1;
}

/* ---------------------------------------------------------------------------------------------
 * Command line and setup
 * ------------------------------------------------------------------------------------------- */

static void print_usage(FILE *out)
{
    fprintf(out,
            "usage: %s --host H --port P [--connections C] [--size S] [--seconds T]\n"
            "  --host H          numeric address of the echo server (e.g. 127.0.0.1)\n"
            "  --port P          its port\n"
            "  --connections C   connections, each with one message in flight (default 1)\n"
            "  --size S          bytes per message (1..%u, default 64)\n"
            "  --seconds T       how long to send once all are connected (default 5)\n"
            "  --tls             speak TLS (verifying the server's certificate for H)\n"
            "  --ca FILE         with --tls: trust the CAs in FILE instead of the system store\n"
            "  --insecure        with --tls: DANGER, do not verify the certificate at all\n",
            progname, MAX_SIZE);
}
static long parse_long(const char *name, const char *s, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        usage_error("%s wants an integer in %ld..%ld, not '%s'", name, lo, hi, s);
    return v;
}

static void parse_args(int argc, char **argv)
{
    opt = (struct options){.connections = 1, .size = 64, .seconds = 5};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            print_usage(stdout);
            exit(0);
        }
#ifdef SIMUL_EXAMPLE_TLS
        if (!strcmp(a, "--tls") || !strcmp(a, "--insecure")) {
            *(a[2] == 't' ? &use_tls : &tls_insecure) = true;
            continue;
        }
#endif
        if (i + 1 >= argc)
            usage_error("unknown argument or missing value: %s", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--host")) {
            opt.host = v;
        } else if (!strcmp(a, "--port")) {
            parse_long(a, v, 1, 65535);
            opt.port = v;
        } else if (!strcmp(a, "--connections")) {
            opt.connections = parse_long(a, v, 1, MAX_CONNECTIONS);
        } else if (!strcmp(a, "--size")) {
            opt.size = (size_t)parse_long(a, v, 1, MAX_SIZE);
#ifdef SIMUL_EXAMPLE_TLS
        } else if (!strcmp(a, "--ca")) {
            tls_ca = v;
#endif
        } else if (!strcmp(a, "--seconds")) {
            char *end;
            opt.seconds = strtod(v, &end);
            if (end == v || *end || !(opt.seconds > 0 && opt.seconds <= MAX_SECONDS))
                usage_error("--seconds wants a number in (0, %g], not '%s'", MAX_SECONDS, v);
        } else {
            usage_error("unknown argument: %s", a);
        }
    }
    if (!opt.host || !opt.port)
        usage_error("--host and --port are required");
}

/* Each connection is an fd here (and another in the server): raise the soft limit as far as the
 * hard one allows, and refuse to start a run that would die of EMFILE half way. */
static void raise_nofile(void)
{
    rlim_t need = (rlim_t)opt.connections + SPARE_FDS;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        perror("echo_client: getrlimit(RLIMIT_NOFILE)");
        exit(1);
    }
    if (rl.rlim_cur < need && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < need) {
        fprintf(stderr,
                "%s: %ld connections need %llu file descriptors, but RLIMIT_NOFILE is %llu "
                "(hard limit %llu); raise it (ulimit -n) or use fewer connections\n",
                progname, opt.connections, (unsigned long long)need,
                (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max);
        exit(1);
    }
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    raise_nofile();

    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV};
    int gai = getaddrinfo(opt.host, opt.port, &hints, &target);
    if (gai != 0) {
        fprintf(stderr, "%s: %s:%s: %s (a numeric address is expected)\n", progname, opt.host,
                opt.port, gai_strerror(gai));
        return 1;
    }

    conns = calloc((size_t)opt.connections, sizeof *conns);
    unsigned char *bufs = malloc(2 * opt.size * (size_t)opt.connections);
    if (!conns || !bufs) {
        fprintf(stderr, "%s: out of memory for %ld connections\n", progname, opt.connections);
        return 1;
    }
    for (long i = 0; i < opt.connections; i++) {
        conns[i].fd = -1;
        conns[i].id = (unsigned)i;
        conns[i].msg = bufs + 2 * opt.size * (size_t)i;
        conns[i].buf = conns[i].msg + opt.size;
    }

#ifdef SIMUL_EXAMPLE_TLS
    char why[256] = "no memory";
    if (use_tls && (simul_tls_config_new_client(&tls) < 0 ||
                    (tls_ca && simul_tls_config_set_ca(tls, tls_ca, NULL, why, sizeof why) < 0) ||
                    (tls_insecure && simul_tls_config_insecure_skip_verify(tls) < 0))) {
        fprintf(stderr, "%s: TLS setup: %s\n", progname, why);
        return 1;
    }
#endif
    int rc = simul_run(main_task, NULL);
#ifdef SIMUL_EXAMPLE_TLS
    simul_tls_config_free(tls);
#endif
    fflush(stdout);
    if (rc < 0) {
        fprintf(stderr, "%s: simul_run: %s\n", progname, simul_strerror(rc));
        rc = 1;
    }
    freeaddrinfo(target);
    free(bufs);
    free(conns);
    return rc;
}
