/* test_redis_sentinel.c — Sentinel discovery against a master, a replica and one sentinel that
 * the case starts (its own servers, free ports, temp dirs): connect through the sentinel, a
 * dedicated connection finds the master the same way, then SENTINEL FAILOVER: the connection is
 * dropped by the sentinel and comes back on the new master without being told. Waits are for the
 * servers' states (link up, replica known, the address the sentinel gives). */
#include "redis_server.h"

typedef struct sentinel {
    pid_t pid;
    int port;
    char dir[64], portstr[16], conf[128];
} sentinel;

static void start_sentinel(sentinel *s, int master_port)
{
    memset(s, 0, sizeof *s);
    snprintf(s->dir, sizeof s->dir, "/tmp/simul-sentinel-XXXXXX");
    assert_non_null(mkdtemp(s->dir));
    snprintf(s->conf, sizeof s->conf, "%s/sentinel.conf", s->dir);
    for (int attempt = 0; attempt < 5; attempt++) {
        s->port = free_port();
        snprintf(s->portstr, sizeof s->portstr, "%d", s->port);
        FILE *f = fopen(s->conf, "w");
        assert_non_null(f);
        fprintf(f,
                "port %d\nbind 127.0.0.1\ndir %s\nlogfile %s/sentinel.log\n"
                "sentinel monitor mymaster 127.0.0.1 %d 1\n"
                "sentinel down-after-milliseconds mymaster 2000\n"
                "sentinel failover-timeout mymaster 10000\n",
                s->port, s->dir, s->dir, master_port);
        fclose(f);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            execlp("redis-server", "redis-server", s->conf, "--sentinel", (char *)NULL);
            _exit(127);
        }
        for (int i = 0; i < 4000; i++) {
            if (waitpid(pid, NULL, WNOHANG) == pid)
                break;
            if (accepts(s->port)) {
                s->pid = pid;
                return;
            }
            usleep(2000);
        }
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    fail_msg("redis-sentinel did not start");
}

static void stop_sentinel(sentinel *s)
{
    kill(s->pid, SIGTERM);
    waitpid(s->pid, NULL, 0);
    char path[256];
    const char *files[] = {"sentinel.conf", "sentinel.log"};
    for (size_t i = 0; i < ARRAY_LEN(files); i++) {
        snprintf(path, sizeof path, "%s/%s", s->dir, files[i]);
        unlink(path);
    }
    rmdir(s->dir);
}

/* One command on a fresh connection; again if the server dropped it (a demotion does). */
static simul_redis_reply *call_port(int port, int argc, const char *const *argv)
{
    for (;;) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons((uint16_t)port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
        simul_redis_reply *r = try_blocking_call(fd, argc, argv);
        close(fd);
        if (r)
            return r;
        usleep(1000);
    }
}

static bool reply_has(simul_redis_reply *r, const char *text)
{
    bool yes = r && r->str && strstr(r->str, text);
    simul_redis_reply_free(r);
    return yes;
}

static bool laddr_port(simul_redis_reply *r, int port)
{
    char want[64];
    snprintf(want, sizeof want, "laddr=127.0.0.1:%d ", port);
    return reply_has(r, want);
}

SIMUL_TASK_TEST(sentinel_discovery_and_failover)
{
    (void)arg;
    NEED_REDIS();
    simul_scope guard;
    assert_int_equal(simul_scope_timeout(&guard, 150), 0);
    server master, replica;
    start_own_server(&master, NULL);
    const char *extra[] = {"--replicaof", "127.0.0.1", master.portstr, NULL};
    start_own_server(&replica, extra);
    sentinel sn;
    start_sentinel(&sn, master.port);

    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", sn.port);
    const char *sentinels[] = {"127.0.0.1:1", addr}; /* the first one is down: skipped */
    simul_redis_sentinel_opts so = {.sentinels = sentinels,
                                    .nsentinels = 2,
                                    .master_name = "mymaster",
                                    .node = {.reconnect_max = 0.2}};
    char host[64];
    int port = 0;
    assert_int_equal(simul_redis_sentinel_master_addr(&so, host, sizeof host, &port), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, master.port);
    simul_redis_conn *c = NULL;
    assert_int_equal(simul_redis_sentinel_connect(&so, &c), 0);
    simul_redis_reply *r = NULL;
    assert_int_equal(simul_redis_command(c, &r, "CLIENT INFO"), 0);
    assert_true(laddr_port(r, master.port));
    call_expect(c, "OK", "SET %s %s", "k", "before");
    /* A dedicated connection (transaction) asks the sentinel too. */
    simul_redis_txn *t = NULL;
    assert_int_equal(simul_redis_txn_begin(c, NULL, 0, &t), 0);
    assert_int_equal(simul_redis_txn_command(t, &r, "CLIENT INFO"), 0);
    assert_true(laddr_port(r, master.port));
    simul_redis_txn_close(t);
    /* An unknown name. */
    simul_redis_sentinel_opts bad = so;
    bad.master_name = "nosuch";
    simul_redis_conn *c2 = NULL;
    assert_int_equal(simul_redis_sentinel_connect(&bad, &c2), -ENOENT);

    /* Ready for a failover: the replica in sync, the sentinel knowing it. */
    const char *info_repl[] = {"INFO", "replication"};
    while (!reply_has(call_port(replica.port, 2, info_repl), "master_link_status:up"))
        assert_int_equal(simul_sleep(0.01), 0);
    assert_int_equal(call_int(c, "WAIT 1 %s", "5000"), 1);
    const char *replicas[] = {"SENTINEL", "REPLICAS", "mymaster"};
    for (;;) {
        simul_redis_reply *x = call_port(sn.port, 3, replicas);
        bool known = x->type == SIMUL_REDIS_ARRAY && x->len >= 1;
        simul_redis_reply_free(x);
        if (known)
            break;
        assert_int_equal(simul_sleep(0.01), 0);
    }
    const char *failover[] = {"SENTINEL", "FAILOVER", "mymaster"};
    for (;;) {
        simul_redis_reply *x = call_port(sn.port, 3, failover);
        bool ok = x->type == SIMUL_REDIS_STATUS;
        simul_redis_reply_free(x);
        if (ok)
            break;
        assert_int_equal(simul_sleep(0.05), 0); /* NOGOODSLAVE until the replica is vetted */
    }
    while (simul_redis_sentinel_master_addr(&so, host, sizeof host, &port) != 0 ||
           port != replica.port)
        assert_int_equal(simul_sleep(0.01), 0);

    /* Until the old master is demoted (the sentinel then drops its clients): before that it
     * still takes writes, as Redis' failover allows. Then commands reach the new master. */
    const char *role[] = {"ROLE"};
    for (;;) {
        simul_redis_reply *x = call_port(master.port, 1, role);
        const simul_redis_reply *what = simul_redis_reply_elem(x, 0);
        bool demoted = what && what->str && strcmp(what->str, "slave") == 0;
        simul_redis_reply_free(x);
        if (demoted)
            break;
        assert_int_equal(simul_sleep(0.01), 0);
    }
    for (;;) {
        int rc = simul_redis_command(c, &r, "SET %s %s", "k", "after");
        simul_redis_reply_free(r);
        r = NULL;
        if (rc == 0)
            break;
        assert_true(rc == -ECONNRESET || rc == -EREMOTEIO); /* dropped, or READONLY meanwhile */
        assert_int_equal(simul_sleep(0.01), 0);
    }
    assert_int_equal(simul_redis_command(c, &r, "CLIENT INFO"), 0);
    assert_true(laddr_port(r, replica.port));
    const char *get[] = {"GET", "k"};
    assert_true(reply_has(call_port(replica.port, 2, get), "after"));
    simul_redis_stats st;
    simul_redis_get_stats(c, &st);
    assert_true(st.connects >= 2);
    simul_redis_close(c);
    stop_sentinel(&sn);
    stop_server(&replica);
    stop_server(&master);
    simul_scope_end(&guard);
    return 0;
}

static long long get_calls(int port)
{
    const char *info[] = {"INFO", "commandstats"};
    simul_redis_reply *r = call_port(port, 2, info);
    const char *p = r->str ? strstr(r->str, "cmdstat_get:calls=") : NULL;
    long long n = p ? atoll(p + strlen("cmdstat_get:calls=")) : 0;
    simul_redis_reply_free(r);
    return n;
}

/* A replica connection (opts.replica): reads go to the replica the sentinel names; when it dies,
 * the connection comes back on the master. */
SIMUL_TASK_TEST(sentinel_replica_reads)
{
    (void)arg;
    NEED_REDIS();
    simul_scope guard;
    assert_int_equal(simul_scope_timeout(&guard, 60), 0);
    server master, replica;
    start_own_server(&master, NULL);
    const char *extra[] = {"--replicaof", "127.0.0.1", master.portstr, NULL};
    start_own_server(&replica, extra);
    sentinel sn;
    start_sentinel(&sn, master.port);
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", sn.port);
    const char *sentinels[] = {addr};
    simul_redis_sentinel_opts so = {.sentinels = sentinels,
                                    .nsentinels = 1,
                                    .master_name = "mymaster",
                                    .node = {.reconnect_max = 0.2}};
    /* Until the sentinel knows the replica as up, with its link to the master ok. */
    const char *replicas[] = {"SENTINEL", "REPLICAS", "mymaster"};
    for (;;) {
        simul_redis_reply *x = call_port(sn.port, 3, replicas);
        bool up = false;
        for (size_t i = 0; x->type == SIMUL_REDIS_ARRAY && i < x->len; i++)
            for (size_t k = 0; k + 1 < x->elem[i].len; k += 2)
                if (strcmp(x->elem[i].elem[k].str, "master-link-status") == 0 &&
                    strcmp(x->elem[i].elem[k + 1].str, "ok") == 0)
                    up = true;
        simul_redis_reply_free(x);
        if (up)
            break;
        assert_int_equal(simul_sleep(0.01), 0);
    }
    simul_redis_conn *c = NULL, *rd = NULL;
    assert_int_equal(simul_redis_sentinel_connect(&so, &c), 0);
    simul_redis_sentinel_opts ro = so;
    ro.replica = true;
    assert_int_equal(simul_redis_sentinel_connect(&ro, &rd), 0);
    simul_redis_reply *r = NULL;
    assert_int_equal(simul_redis_command(rd, &r, "CLIENT INFO"), 0);
    assert_true(laddr_port(r, replica.port));

    call_expect(c, "OK", "SET %s %s", "rk", "v");
    /* Until the replica has it: read there. (WAIT runs on a dedicated connection, whose own
     * last write is none: it returns 1 as soon as the replica is online, whether or not it has
     * applied the SET made on the shared connection.) */
    const char *get_rk[] = {"GET", "rk"};
    for (;;) {
        simul_redis_reply *x = call_port(replica.port, 2, get_rk);
        bool has = x->type == SIMUL_REDIS_STRING && strcmp(x->str, "v") == 0;
        simul_redis_reply_free(x);
        if (has)
            break;
        assert_int_equal(simul_sleep(0.01), 0);
    }
    long long m0 = get_calls(master.port), r0 = get_calls(replica.port);
    for (int i = 0; i < 20; i++)
        EXPECT_REPLY(rd, "v", "GET rk");
    assert_int_equal(get_calls(replica.port) - r0, 20);
    assert_int_equal(get_calls(master.port) - m0, 0);
    /* A write on it: the replica's READONLY, and the connection stays where it is. */
    assert_int_equal(simul_redis_command(rd, &r, "SET %s %s", "rk", "no"), -EREMOTEIO);
    assert_non_null(strstr(r->str, "READONLY"));
    simul_redis_reply_free(r);
    simul_redis_stats st;
    simul_redis_get_stats(rd, &st);
    assert_int_equal(st.connects, 1);

    /* The replica dies: the connection comes back on the master (a read in flight may fail
     * with the lost connection; marked safe, it is resent). */
    kill_server(&replica, SIGKILL);
    const char *get[] = {"GET", "rk"};
    for (;;) {
        int rc = simul_redis_command_argv(rd, SIMUL_REDIS_RETRY_SAFE, &r, 2, get, NULL);
        if (rc == 0)
            break;
        assert_true(rc == -ECONNRESET || rc == -EPIPE);
    }
    assert_string_equal(r->str, "v");
    simul_redis_reply_free(r);
    assert_int_equal(simul_redis_command(rd, &r, "CLIENT INFO"), 0);
    assert_true(laddr_port(r, master.port));
    assert_true(get_calls(master.port) - m0 >= 1);
    simul_redis_close(rd);
    simul_redis_close(c);
    stop_sentinel(&sn);
    stop_server(&replica);
    stop_server(&master);
    simul_scope_end(&guard);
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sentinel_discovery_and_failover),
        cmocka_unit_test(sentinel_replica_reads),
    };
    return simul_test_main(argc, argv, tests, ARRAY_LEN(tests), "test_redis_sentinel");
}
