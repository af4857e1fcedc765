/* test_redis_cluster.c — the cluster client against a three-master Redis Cluster that each case
 * starts (three redis-servers with --cluster-enabled, on free ports with free bus ports, joined
 * by `redis-cli --cluster create`) and stops: routing by slot with per-node pipelining, CROSSSLOT
 * refused locally, movable keys, pipelines split per node, a MOVED after the map changed, a
 * slot migrated key by key while tasks keep writing to it (ASK / MOVED / TRYAGAIN followed, no
 * error reaches them), transactions in one slot, sharded pub/sub following its slot (resharding,
 * restart, failover), reads from replicas. Waits are for cluster state (cluster_state:ok, slots
 * agreed, SPUBLISH's receiver count, INFO commandstats). */
#include "redis_server.h"

enum { NODES = 3, SERVERS_MAX = 6 }; /* three masters; with replicas, one each */

typedef struct cluster {
    server sv[SERVERS_MAX];
    int n; /* servers: NODES, or 2 * NODES with a replica per master */
    char seed[32];
    char busport[SERVERS_MAX][16], conf[SERVERS_MAX][128], timeout[16]; /* to restart one */
} cluster;

/* r is the string want. cmocka's assert_string_equal reads a NULL string (a nil reply) and
 * the case died of SIGSEGV with no word of what came back: this one says. */
static void assert_reply_str(const simul_redis_reply *r, const char *want)
{
    if (!r || !r->str)
        fail_msg("expected the string \"%s\", got %s", want,
                 !r ? "no reply" : r->type == SIMUL_REDIS_NIL ? "nil" : "a reply without a string");
    assert_string_equal(r->str, want);
}

static bool run_wait(const char *const *argv)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static simul_redis_reply *node_call(server *sv, int argc, const char *const *argv)
{
    int fd = unix_connect_fd(sv->sock);
    assert_true(fd >= 0);
    simul_redis_reply *r = blocking_call(fd, argc, argv);
    close(fd);
    return r;
}

/* Every live node agrees: state ok, all slots served by NODES masters (each with its replica
 * when the cluster has them), `known` nodes known. */
static bool cluster_ok(cluster *cl, int known)
{
    char want[64];
    snprintf(want, sizeof want, "cluster_known_nodes:%d", known);
    for (int i = 0; i < cl->n; i++) {
        if (!cl->sv[i].pid)
            continue; /* killed */
        const char *info[] = {"CLUSTER", "INFO"};
        simul_redis_reply *r = node_call(&cl->sv[i], 2, info);
        bool ok = r->str && strstr(r->str, "cluster_state:ok") &&
                  strstr(r->str, "cluster_slots_assigned:16384") && strstr(r->str, want);
        simul_redis_reply_free(r);
        if (!ok)
            return false;
        const char *slots[] = {"CLUSTER", "SLOTS"};
        r = node_call(&cl->sv[i], 2, slots);
        ok = r->type == SIMUL_REDIS_ARRAY && r->len == NODES;
        for (size_t k = 0; ok && cl->n > NODES && k < r->len; k++)
            ok = r->elem[k].len >= 4; /* start, end, master, a replica */
        simul_redis_reply_free(r);
        if (!ok)
            return false;
    }
    return true;
}

/* Whether the server answers PING: its start is over (its event loop runs), the cluster bus
 * port bound. A server that finds its bus port taken exits during its start ("Failed listening on
 * port N (cluster), aborting"), and the kernel accepts on its listening sockets before its loop
 * runs, so run_server's accept checks do not tell. accepts(busport) was the check here, and it is
 * true when another process holds that port: the server was gone, and `--cluster create` met a
 * refused connection (seen twice on the loaded machine). */
static bool answers(server *sv)
{
    int fd = unix_connect_fd(sv->sock);
    if (fd < 0)
        return false;
    const char *ping[] = {"PING"};
    simul_redis_reply *r = try_blocking_call(fd, 1, ping);
    close(fd);
    bool ok = r && r->str && strcmp(r->str, "PONG") == 0;
    simul_redis_reply_free(r);
    return ok;
}

/* n servers (NODES, or 2 * NODES: a replica per master) joined into a cluster. */
static void start_cluster_n(cluster *cl, int n, const char *node_timeout)
{
    memset(cl, 0, sizeof *cl);
    cl->n = n;
    char(*busport)[16] = cl->busport, (*conf)[128] = cl->conf;
    snprintf(cl->timeout, sizeof cl->timeout, "%s", node_timeout);
    for (int i = 0; i < n; i++) {
        for (;;) {
            int bp = free_port();
            snprintf(busport[i], sizeof busport[i], "%d", bp);
            snprintf(conf[i], sizeof conf[i], "nodes-%d.conf", bp);
            const char *extra[] = {"--cluster-enabled",
                                   "yes",
                                   "--cluster-config-file",
                                   conf[i],
                                   "--cluster-port",
                                   busport[i],
                                   "--cluster-node-timeout",
                                   node_timeout,
                                   NULL};
            start_own_server(&cl->sv[i], extra);
            if (answers(&cl->sv[i]))
                break;
            stop_server(&cl->sv[i]); /* the bus port was taken meanwhile: again */
        }
    }
    char addr[SERVERS_MAX][32];
    const char *create[16] = {"redis-cli", "--cluster", "create"};
    int argc = 3;
    for (int i = 0; i < n; i++) {
        snprintf(addr[i], sizeof addr[i], "127.0.0.1:%d", cl->sv[i].port);
        create[argc++] = addr[i];
    }
    if (n > NODES) {
        create[argc++] = "--cluster-replicas";
        create[argc++] = "1";
    }
    create[argc++] = "--cluster-yes";
    create[argc] = NULL;
    assert_true(run_wait(create));
    double t0 = test_clock();
    for (int i = 0; !cluster_ok(cl, n); i++) {
        if (i == 30000)
            fail_msg("the cluster did not converge");
        usleep(1000);
    }
    snprintf(cl->seed, sizeof cl->seed, "127.0.0.1:%d", cl->sv[1].port);
    print_message("cluster of %d up %.2fs after create\n", n, test_clock() - t0);
}

static void start_cluster(cluster *cl)
{
    start_cluster_n(cl, NODES, "5000");
}

static void stop_cluster(cluster *cl)
{
    for (int i = 0; i < cl->n; i++)
        stop_server(&cl->sv[i]);
}

static simul_redis_cluster *connect_cluster(cluster *cl)
{
    const char *seeds[] = {cl->seed};
    simul_redis_cluster_opts o = {.seeds = seeds, .nseeds = 1};
    simul_redis_cluster *c = NULL;
    assert_int_equal(simul_redis_cluster_connect(&o, &c), 0);
    return c;
}

static simul_redis_cluster_stats cstats(simul_redis_cluster *c)
{
    simul_redis_cluster_stats st;
    simul_redis_cluster_get_stats(c, &st);
    return st;
}

/* Which of our servers serves slot s (by the map of node 0). */
static int owner(cluster *cl, unsigned s)
{
    const char *slots[] = {"CLUSTER", "SLOTS"};
    int live = 0;
    while (!cl->sv[live].pid)
        live++;
    simul_redis_reply *r = node_call(&cl->sv[live], 2, slots);
    int port = -1;
    for (size_t i = 0; i < r->len; i++) {
        const simul_redis_reply *e = &r->elem[i];
        if ((unsigned)e->elem[0].integer <= s && s <= (unsigned)e->elem[1].integer)
            port = (int)e->elem[2].elem[1].integer;
    }
    simul_redis_reply_free(r);
    for (int i = 0; i < cl->n; i++)
        if (cl->sv[i].port == port)
            return i;
    fail_msg("no owner for slot %u", s);
    return -1;
}

static void node_id(cluster *cl, int i, char *out, size_t n)
{
    const char *myid[] = {"CLUSTER", "MYID"};
    simul_redis_reply *r = node_call(&cl->sv[i], 2, myid);
    snprintf(out, n, "%s", r->str);
    simul_redis_reply_free(r);
}

static void expect_ok(simul_redis_reply *r)
{
    if (r->type == SIMUL_REDIS_ERROR)
        fail_msg("error: %s", r->str);
    simul_redis_reply_free(r);
}

/* The server that replicates server m (by its INFO replication: master_port). */
static int replica_of(cluster *cl, int m)
{
    char want[32];
    snprintf(want, sizeof want, "master_port:%d", cl->sv[m].port);
    for (int i = 0; i < cl->n; i++) {
        if (!cl->sv[i].pid || i == m)
            continue;
        const char *info[] = {"INFO", "replication"};
        simul_redis_reply *r = node_call(&cl->sv[i], 2, info);
        bool is = r->str && strstr(r->str, want);
        simul_redis_reply_free(r);
        if (is)
            return i;
    }
    fail_msg("no replica of server %d", m);
    return -1;
}

/* Until server i (a replica) reads key as want (READONLY and GET on one connection). A WAIT on
 * a connection of the test's own proves nothing about a write the client made: WAIT counts the
 * replicas that acknowledged the offset of its own connection's last write, which is 0, so it
 * returns as soon as a replica is online, before that replica may have applied the write. Seen
 * on a loaded machine: the cluster came up late, the client's SET landed during a replica's first
 * sync (which diskless sync delays by 5 s), WAIT returned 1 once the replica had loaded the RDB
 * without the key, and a read from it gave nil. */
static void replica_has(cluster *cl, int i, const char *key, const char *want)
{
    for (int n = 0;; n++) {
        int fd = unix_connect_fd(cl->sv[i].sock);
        assert_true(fd >= 0);
        const char *ro[] = {"READONLY"};
        simul_redis_reply_free(blocking_call(fd, 1, ro));
        const char *get[] = {"GET", key};
        simul_redis_reply *r = blocking_call(fd, 2, get);
        close(fd);
        bool has = r->type != SIMUL_REDIS_ERROR && r->str && strcmp(r->str, want) == 0;
        simul_redis_reply_free(r);
        if (has)
            return;
        if (n == 30000)
            fail_msg("replica %d never read %s as %s", i, key, want);
        usleep(1000);
    }
}

/* ---- routing ------------------------------------------------------------------------------- */

typedef struct writer {
    simul_redis_cluster *c;
    int id, n, bad, done;
    volatile bool *stop;
    const char *prefix;
} writer;

static int writer_main(void *arg)
{
    writer *w = arg;
    for (int i = 0; w->stop ? !*w->stop : i < w->n; i++) {
        char key[64], val[32];
        snprintf(key, sizeof key, "%s%d:%d", w->prefix, w->id, i % 50);
        snprintf(val, sizeof val, "v%d", i);
        simul_redis_reply *r = NULL;
        if (simul_redis_cluster_command(w->c, &r, "SET %s %s", key, val) != 0)
            w->bad++;
        simul_redis_reply_free(r);
        r = NULL;
        if (simul_redis_cluster_command(w->c, &r, "GET %s", key) != 0 || !r->str ||
            strcmp(r->str, val) != 0)
            w->bad++;
        simul_redis_reply_free(r);
        w->done++;
    }
    return 0;
}

SIMUL_TASK_TEST(cluster_routes_by_slot)
{
    (void)arg;
    NEED_REDIS();
    simul_scope guard;
    assert_int_equal(simul_scope_timeout(&guard, 50), 0);
    /* The slot function, against known values and the server's CLUSTER KEYSLOT. */
    assert_int_equal(simul_redis_cluster_keyslot("123456789", 9), 12739);
    assert_int_equal(simul_redis_cluster_keyslot("foo", 3), 12182);
    assert_int_equal(simul_redis_cluster_keyslot("{user1000}.following", 20),
                     simul_redis_cluster_keyslot("user1000", 8));
    assert_int_equal(simul_redis_cluster_keyslot("foo{}{bar}", 10),
                     simul_redis_cluster_keyslot("foo{}{bar}", 10)); /* empty tag: whole key */
    cluster cl;
    start_cluster(&cl);
    const char *samples[] = {"foo{}{bar}", "{a}b", "x{", "}{y}", "", "user:1", "a{b}c{d}"};
    for (size_t i = 0; i < ARRAY_LEN(samples); i++) {
        const char *ks[] = {"CLUSTER", "KEYSLOT", samples[i]};
        simul_redis_reply *r = node_call(&cl.sv[0], 3, ks);
        assert_int_equal(r->integer, simul_redis_cluster_keyslot(samples[i], strlen(samples[i])));
        simul_redis_reply_free(r);
    }

    simul_redis_cluster *c = connect_cluster(&cl);
    enum { T = 30 };
    writer w[T];
    simul_task *t[T];
    for (int i = 0; i < T; i++) {
        w[i] = (writer){.c = c, .id = i, .n = 100, .prefix = "k"};
        assert_int_equal(simul_task_spawn(&t[i], writer_main, &w[i], NULL), 0);
    }
    assert_int_equal(simul_gather(t, T, NULL), 0);
    for (int i = 0; i < T; i++)
        assert_int_equal(w[i].bad, 0);
    simul_redis_cluster_stats st = cstats(c);
    assert_int_equal(st.moved, 0);
    assert_int_equal(st.node_connects, NODES);
    /* Every node got its share of the keys. */
    for (int i = 0; i < NODES; i++) {
        const char *dbsize[] = {"DBSIZE"};
        simul_redis_reply *r = node_call(&cl.sv[i], 1, dbsize);
        assert_true(r->integer > 100);
        simul_redis_reply_free(r);
    }

    /* CROSSSLOT, locally: nothing sent. Hash tags keep keys together. */
    simul_redis_reply *r = NULL;
    assert_int_equal(simul_redis_cluster_command(c, &r, "MSET a 1 b %s", "2"), -EXDEV);
    assert_null(r);
    assert_int_equal(simul_redis_cluster_command(c, &r, "MSET {t}a 1 {t}b %s", "2"), 0);
    simul_redis_reply_free(r);
    assert_int_equal(simul_redis_cluster_command(c, &r, "MGET {t}a {t}%s", "b"), 0);
    assert_string_equal(r->elem[1].str, "2");
    simul_redis_reply_free(r);
    assert_int_equal(cstats(c).crossslot, 1);
    /* Movable keys: EVAL's numkeys, asked of the server. */
    assert_int_equal(
        simul_redis_cluster_command(c, &r, "EVAL %s 1 {t}a", "return redis.call('GET', KEYS[1])"),
        0);
    assert_reply_str(r, "1");
    simul_redis_reply_free(r);
    assert_int_equal(simul_redis_cluster_command(c, &r, "EVAL %s 2 {t}a zz", "return 1"), -EXDEV);
    assert_true(cstats(c).getkeys >= 2);
    /* Keyless commands go to some node. */
    assert_int_equal(simul_redis_cluster_command(c, &r, "PING"), 0);
    simul_redis_reply_free(r);

    /* A pipeline split per node, replies in order. */
    simul_redis_cluster_pipeline *p = NULL;
    assert_int_equal(simul_redis_cluster_pipeline_new(c, &p), 0);
    enum { N = 300 };
    for (int i = 0; i < N; i++)
        assert_int_equal(simul_redis_cluster_pipeline_add(p, "INCRBY p%d %d", i, i), 0);
    assert_int_equal(simul_redis_cluster_pipeline_add(p, "MSET a 1 b %s", "2"), 0);
    simul_redis_reply *rep[N + 1];
    int res[N + 1];
    uint64_t groups = cstats(c).pipeline_groups;
    assert_int_equal(simul_redis_cluster_pipeline_exec(p, rep, res), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(res[i], 0);
        assert_int_equal(rep[i]->integer, i);
        simul_redis_reply_free(rep[i]);
    }
    assert_int_equal(res[N], -EXDEV);
    assert_null(rep[N]);
    assert_int_equal(cstats(c).pipeline_groups - groups, NODES);
    simul_redis_cluster_pipeline_free(p);

    /* The map changes behind the client's back (an empty slot handed to another node): the
     * next command meets MOVED, follows it, and the map is read again. */
    unsigned s = simul_redis_cluster_keyslot("moving", 6);
    int from = owner(&cl, s), to = (from + 1) % NODES;
    char to_id[64], slot[16];
    node_id(&cl, to, to_id, sizeof to_id);
    snprintf(slot, sizeof slot, "%u", s);
    for (int i = 0; i < NODES; i++) {
        const char *set[] = {"CLUSTER", "SETSLOT", slot, "NODE", to_id};
        expect_ok(node_call(&cl.sv[(to + i) % NODES], 5, set));
    }
    uint64_t refreshes = cstats(c).refreshes;
    assert_int_equal(simul_redis_cluster_command(c, &r, "SET moving %s", "here"), 0);
    simul_redis_reply_free(r);
    assert_true(cstats(c).moved >= 1);
    assert_true(cstats(c).refreshes > refreshes);
    int port = 0;
    assert_int_equal(simul_redis_cluster_slot_node(c, s, NULL, 0, &port), 0);
    assert_int_equal(port, cl.sv[to].port);
    const char *get[] = {"GET", "moving"};
    r = node_call(&cl.sv[to], 2, get);
    assert_reply_str(r, "here");
    simul_redis_reply_free(r);

    simul_redis_cluster_close(c);
    stop_cluster(&cl);
    simul_scope_end(&guard);
    return 0;
}

/* ---- a slot migrated under traffic --------------------------------------------------------- */

typedef struct counter_task {
    simul_redis_cluster *c;
    int id;
    volatile bool *stop;
    long incrs, bad, mgets;
    int last_rc;
} counter_task;

static int counter_main(void *arg)
{
    counter_task *w = arg;
    for (long i = 0; !*w->stop || i < 20; i++) {
        char key[32];
        snprintf(key, sizeof key, "{mig}:%ld", (w->id * 7 + i) % 60);
        simul_redis_reply *r = NULL;
        int rc = simul_redis_cluster_command(w->c, &r, "INCR %s", key);
        simul_redis_reply_free(r);
        if (rc != 0) {
            w->bad++;
            w->last_rc = rc;
        } else {
            w->incrs++;
        }
        if (i % 10 == 0) {
            /* Multi-key: TRYAGAIN while its keys are split between the two nodes. */
            rc = simul_redis_cluster_command(w->c, &r, "MGET {mig}:1 {mig}:%d", 2);
            simul_redis_reply_free(r);
            if (rc != 0) {
                w->bad++;
                w->last_rc = rc;
            } else {
                w->mgets++;
            }
        }
    }
    return 0;
}

SIMUL_TASK_TEST(slot_migrated_while_commands_run)
{
    (void)arg;
    NEED_REDIS();
    simul_scope guard;
    assert_int_equal(simul_scope_timeout(&guard, 50), 0);
    cluster cl;
    start_cluster(&cl);
    simul_redis_cluster *c = connect_cluster(&cl);
    unsigned s = simul_redis_cluster_keyslot("mig", 3);
    int from = owner(&cl, s), to = (from + 1) % NODES;
    char from_id[64], to_id[64], slot[16], to_port[16];
    node_id(&cl, from, from_id, sizeof from_id);
    node_id(&cl, to, to_id, sizeof to_id);
    snprintf(slot, sizeof slot, "%u", s);
    snprintf(to_port, sizeof to_port, "%d", cl.sv[to].port);

    volatile bool stop = false;
    enum { T = 20 };
    counter_task w[T];
    simul_task *t[T];
    for (int i = 0; i < T; i++) {
        w[i] = (counter_task){.c = c, .id = i, .stop = &stop};
        assert_int_equal(simul_task_spawn(&t[i], counter_main, &w[i], NULL), 0);
    }
    /* Let the keys exist on the source first. */
    const char *dbsize[] = {"DBSIZE"};
    for (;;) {
        simul_redis_reply *r = node_call(&cl.sv[from], 1, dbsize);
        long long n = r->integer;
        simul_redis_reply_free(r);
        if (n >= 60)
            break;
        assert_int_equal(simul_yield(), 0);
    }

    /* The migration, by the book: IMPORTING on the target, MIGRATING on the source, the keys
     * moved a few at a time (yielding, so the counters run in between), then the slot given. */
    const char *imp[] = {"CLUSTER", "SETSLOT", slot, "IMPORTING", from_id};
    expect_ok(node_call(&cl.sv[to], 5, imp));
    const char *mig[] = {"CLUSTER", "SETSLOT", slot, "MIGRATING", to_id};
    expect_ok(node_call(&cl.sv[from], 5, mig));
    int batches = 0;
    for (;;) {
        const char *keys[] = {"CLUSTER", "GETKEYSINSLOT", slot, "5"};
        simul_redis_reply *r = node_call(&cl.sv[from], 4, keys);
        size_t n = r->len;
        if (n == 0) {
            simul_redis_reply_free(r);
            break;
        }
        const char *argv[16] = {"MIGRATE", "127.0.0.1", to_port, "", "0", "5000", "KEYS"};
        for (size_t i = 0; i < n; i++)
            argv[7 + i] = r->elem[i].str;
        expect_ok(node_call(&cl.sv[from], 7 + (int)n, argv));
        simul_redis_reply_free(r);
        batches++;
        /* Traffic between batches: wait until the counters made progress (a state). */
        /* Or until some wait on us: a multi-key command whose keys this migration split
         * answers TRYAGAIN until the move is done, so progress may stall until we go on. */
        long before = 0, now = 0;
        uint64_t waiting = cstats(c).tryagain;
        for (int i = 0; i < T; i++)
            before += w[i].incrs + w[i].bad;
        while (now < before + T && cstats(c).tryagain == waiting) {
            assert_int_equal(simul_yield(), 0);
            now = 0;
            for (int i = 0; i < T; i++)
                now += w[i].incrs + w[i].bad;
        }
    }
    assert_true(batches >= 2);

    for (int i = 0; i < NODES; i++) {
        const char *set[] = {"CLUSTER", "SETSLOT", slot, "NODE", to_id};
        int order[NODES] = {to, from, 3 - to - from};
        expect_ok(node_call(&cl.sv[order[i]], 5, set));
    }
    /* Traffic goes on after the move (the MOVED path), then stops. */
    simul_redis_cluster_stats st0 = cstats(c);
    while (cstats(c).moved == st0.moved && st0.moved == 0)
        assert_int_equal(simul_yield(), 0);
    stop = true;
    assert_int_equal(simul_gather(t, T, NULL), 0);

    long total = 0, mgets = 0;
    for (int i = 0; i < T; i++) {
        if (w[i].bad)
            fail_msg("task %d: %ld errors, the last %s", i, w[i].bad, simul_errname(w[i].last_rc));
        total += w[i].incrs;
        mgets += w[i].mgets;
    }
    assert_true(mgets > 0);
    /* Every increment landed exactly once: the counters on the target add up. */
    long long sum = 0;
    for (int k = 0; k < 60; k++) {
        char key[32];
        snprintf(key, sizeof key, "{mig}:%d", k);
        const char *get[] = {"GET", key};
        simul_redis_reply *r = node_call(&cl.sv[to], 2, get);
        if (r->type == SIMUL_REDIS_STRING)
            sum += atoll(r->str);
        simul_redis_reply_free(r);
    }
    assert_int_equal(sum, total);
    simul_redis_cluster_stats st = cstats(c);
    assert_true(st.asks + st.moved > 0);
    assert_true(st.moved > 0);
    print_message("migration: %d batches, %ld INCRs, %ld MGETs, asks %llu moved %llu tryagain %llu "
                  "refreshes %llu\n",
                  batches, total, mgets, (unsigned long long)st.asks, (unsigned long long)st.moved,
                  (unsigned long long)st.tryagain, (unsigned long long)st.refreshes);
    simul_redis_cluster_close(c);
    stop_cluster(&cl);
    simul_scope_end(&guard);
    return 0;
}

/* ---- a master killed: its replica takes over, the client follows ----------------------------- */

SIMUL_TASK_TEST(master_failover_followed)
{
    (void)arg;
    NEED_REDIS();
    simul_scope guard;
    assert_int_equal(simul_scope_timeout(&guard, 150), 0);
    cluster cl;
    start_cluster_n(&cl, 2 * NODES, "1000");
    simul_redis_cluster *c = connect_cluster(&cl);
    simul_redis_reply *r = NULL;
    assert_int_equal(simul_redis_cluster_command(c, &r, "SET fo %s", "before"), 0);
    simul_redis_reply_free(r);
    unsigned s = simul_redis_cluster_keyslot("fo", 2);
    int m = owner(&cl, s);
    int dead_port = cl.sv[m].port;
    /* Until its replica has the key (the failover must not lose it). */
    replica_has(&cl, replica_of(&cl, m), "fo", "before");

    kill_server(&cl.sv[m], SIGKILL);
    /* One call, marked safe to resend (the connection may still look alive when it goes out,
     * and then it is lost in flight): the node refuses connections, the map is read again (with
     * pauses) until the cluster has promoted the replica, then the GET goes there. No error. */
    const char *get[] = {"GET", "fo"};
    assert_int_equal(simul_redis_cluster_command_argv(c, SIMUL_REDIS_RETRY_SAFE, &r, 2, get, NULL),
                     0);
    assert_reply_str(r, "before");
    simul_redis_reply_free(r);
    /* The map knows the new master now: a plain write goes straight there. */
    assert_int_equal(simul_redis_cluster_command(c, &r, "SET fo %s", "after"), 0);
    simul_redis_reply_free(r);
    int port = 0;
    assert_int_equal(simul_redis_cluster_slot_node(c, s, NULL, 0, &port), 0);
    assert_int_not_equal(port, dead_port);
    int now = owner(&cl, s);
    assert_int_equal(cl.sv[now].port, port);
    simul_redis_cluster_stats st = cstats(c);
    assert_true(st.refreshes >= 2);
    print_message("failover followed: refreshes %llu, waits %llu\n",
                  (unsigned long long)st.refreshes, (unsigned long long)st.tryagain);
    simul_redis_cluster_close(c);
    stop_cluster(&cl);
    simul_scope_end(&guard);
    return 0;
}

/* ---- transactions -------------------------------------------------------------------------- */

/* Moves slot s (every key in it) from server `from` to `to`, by the book, and tells every node. */
static void move_slot(cluster *cl, unsigned s, int from, int to)
{
    char from_id[64], to_id[64], slot[16], to_port[16];
    node_id(cl, from, from_id, sizeof from_id);
    node_id(cl, to, to_id, sizeof to_id);
    snprintf(slot, sizeof slot, "%u", s);
    snprintf(to_port, sizeof to_port, "%d", cl->sv[to].port);
    const char *imp[] = {"CLUSTER", "SETSLOT", slot, "IMPORTING", from_id};
    expect_ok(node_call(&cl->sv[to], 5, imp));
    const char *mig[] = {"CLUSTER", "SETSLOT", slot, "MIGRATING", to_id};
    expect_ok(node_call(&cl->sv[from], 5, mig));
    for (;;) {
        const char *keys[] = {"CLUSTER", "GETKEYSINSLOT", slot, "10"};
        simul_redis_reply *r = node_call(&cl->sv[from], 4, keys);
        size_t n = r->len;
        if (n == 0) {
            simul_redis_reply_free(r);
            break;
        }
        const char *argv[20] = {"MIGRATE", "127.0.0.1", to_port, "", "0", "5000", "KEYS"};
        for (size_t i = 0; i < n; i++)
            argv[7 + i] = r->elem[i].str;
        expect_ok(node_call(&cl->sv[from], 7 + (int)n, argv));
        simul_redis_reply_free(r);
    }
    int order[NODES] = {to, from, 3 - to - from};
    for (int i = 0; i < NODES; i++) {
        const char *set[] = {"CLUSTER", "SETSLOT", slot, "NODE", to_id};
        expect_ok(node_call(&cl->sv[order[i]], 5, set));
    }
}

typedef struct incr_ctx {
    const char *key;
    int calls;
    cluster *cl; /* set: the first call moves the key's slot between its read and its write */
} incr_ctx;

static int incr_fn(simul_redis_txn *t, void *arg)
{
    incr_ctx *x = arg;
    x->calls++;
    simul_redis_reply *r = NULL;
    int rc = simul_redis_txn_command(t, &r, "GET %s", x->key);
    if (rc < 0) {
        simul_redis_reply_free(r);
        return rc;
    }
    long long v = r->type == SIMUL_REDIS_STRING ? atoll(r->str) : 0;
    simul_redis_reply_free(r);
    if (x->cl && x->calls == 1) {
        unsigned s = simul_redis_cluster_keyslot(x->key, strlen(x->key));
        int from = owner(x->cl, s);
        move_slot(x->cl, s, from, (from + 1) % NODES);
    }
    char val[32];
    snprintf(val, sizeof val, "%lld", v + 1);
    return simul_redis_txn_queue(t, "SET %s %s", x->key, val);
}

typedef struct txn_task {
    simul_redis_cluster *c;
    int n, rc;
} txn_task;

static int txn_task_main(void *arg)
{
    txn_task *w = arg;
    const char *watch[] = {"{acct}:bal"};
    for (int i = 0; i < w->n && w->rc == 0; i++) {
        incr_ctx x = {.key = "{acct}:bal"};
        simul_redis_reply *r = NULL;
        w->rc = simul_redis_cluster_transaction(w->c, NULL, watch, 1, incr_fn, &x, 0, &r);
        simul_redis_reply_free(r);
    }
    return 0;
}

SIMUL_TASK_TEST(cluster_transactions)
{
    (void)arg;
    NEED_REDIS();
    simul_scope guard;
    assert_int_equal(simul_scope_timeout(&guard, 60), 0);
    cluster cl;
    start_cluster(&cl);
    simul_redis_cluster *c = connect_cluster(&cl);

    /* Two slots: refused before anything is sent. */
    const char *cross[] = {"a", "b"};
    assert_int_not_equal(simul_redis_cluster_keyslot("a", 1), simul_redis_cluster_keyslot("b", 1));
    simul_redis_txn *t = NULL;
    assert_int_equal(simul_redis_cluster_txn_begin(c, NULL, cross, 2, &t), -EXDEV);
    assert_null(t);
    assert_int_equal(simul_redis_cluster_txn_begin(c, NULL, NULL, 0, &t), -EINVAL);
    /* A transaction on {u1}: its commands must stay there. */
    const char *w1[] = {"{u1}:a"};
    assert_int_equal(simul_redis_cluster_txn_begin(c, "{u1}", w1, 1, &t), 0);
    assert_int_equal(simul_redis_txn_queue(t, "SET %s %s", "{u1}:a", "1"), 0);
    assert_int_equal(simul_redis_txn_queue(t, "SET %s %s", "other", "1"), -EXDEV);
    simul_redis_reply *r = NULL;
    assert_int_equal(simul_redis_txn_command(t, &r, "GET %s", "other"), -EXDEV);
    assert_null(r);
    assert_int_equal(simul_redis_txn_queue(t, "MSET %s %s %s %s", "{u1}:b", "2", "{u1}:c", "3"), 0);
    assert_int_equal(simul_redis_txn_exec(t, &r), 0);
    assert_int_equal(simul_redis_reply_len(r), 2);
    simul_redis_reply_free(r);
    assert_int_equal(simul_redis_txn_close(t), 0);
    r = NULL;
    assert_int_equal(simul_redis_cluster_command(c, &r, "MGET %s %s %s", "{u1}:a", "{u1}:b",
                                                 "{u1}:c"),
                     0);
    assert_string_equal(r->elem[0].str, "1");
    assert_string_equal(r->elem[2].str, "3");
    simul_redis_reply_free(r);
    assert_int_equal(cstats(c).crossslot, 1); /* the begin; the others are the transaction's */

    /* Optimistic locking under contention: 20 tasks x 10 read-modify-writes, exact. */
    enum { T = 20, N = 10 };
    txn_task w[T];
    simul_task *tt[T];
    for (int i = 0; i < T; i++) {
        w[i] = (txn_task){.c = c, .n = N};
        assert_int_equal(simul_task_spawn(&tt[i], txn_task_main, &w[i], NULL), 0);
    }
    assert_int_equal(simul_gather(tt, T, NULL), 0);
    for (int i = 0; i < T; i++)
        assert_int_equal(w[i].rc, 0);
    assert_int_equal(simul_redis_cluster_command(c, &r, "GET %s", "{acct}:bal"), 0);
    assert_reply_str(r, "200");
    simul_redis_reply_free(r);

    /* The slot moves between the read and EXEC: the queued SET gets MOVED, EXEC aborts (nothing
     * ran), and the attempt starts over on the new master. */
    uint64_t moved0 = cstats(c).moved;
    incr_ctx x = {.key = "{acct}:bal", .cl = &cl};
    const char *watch[] = {"{acct}:bal"};
    unsigned s = simul_redis_cluster_keyslot("{acct}:bal", 10);
    int before = owner(&cl, s);
    assert_int_equal(simul_redis_cluster_transaction(c, NULL, watch, 1, incr_fn, &x, 0, &r), 0);
    simul_redis_reply_free(r);
    assert_int_equal(x.calls, 2);
    assert_int_not_equal(owner(&cl, s), before);
    assert_true(cstats(c).moved > moved0);
    assert_int_equal(simul_redis_cluster_command(c, &r, "GET %s", "{acct}:bal"), 0);
    assert_reply_str(r, "201");
    simul_redis_reply_free(r);

    /* The map is stale (the slot moved behind the client's back): WATCH's MOVED is followed. */
    move_slot(&cl, s, owner(&cl, s), (owner(&cl, s) + 1) % NODES);
    moved0 = cstats(c).moved;
    x = (incr_ctx){.key = "{acct}:bal"};
    assert_int_equal(simul_redis_cluster_transaction(c, NULL, watch, 1, incr_fn, &x, 0, &r), 0);
    simul_redis_reply_free(r);
    assert_int_equal(x.calls, 1);
    assert_true(cstats(c).moved > moved0);
    assert_int_equal(simul_redis_cluster_command(c, &r, "GET %s", "{acct}:bal"), 0);
    assert_reply_str(r, "202");
    simul_redis_reply_free(r);

    simul_redis_cluster_close(c);
    stop_cluster(&cl);
    simul_scope_end(&guard);
    return 0;
}

/* ---- sharded pub/sub ------------------------------------------------------------------------ */

typedef struct sreader {
    simul_redis_cluster_subscription *cs;
    int got;      /* messages read */
    char last[64];
    int rc;
} sreader;

static int sreader_main(void *arg)
{
    sreader *r = arg;
    for (;;) {
        simul_redis_reply *m = NULL;
        r->rc = simul_redis_cluster_subscription_next(r->cs, &m);
        if (r->rc < 0)
            return 0;
        assert_int_equal(simul_redis_reply_len(m), 3);
        assert_string_equal(m->elem[0].str, "smessage");
        snprintf(r->last, sizeof r->last, "%s", m->elem[2].str);
        r->got++;
        bool stop = strcmp(m->elem[2].str, "stop") == 0;
        simul_redis_reply_free(m);
        if (stop)
            return 0;
    }
}

/* SPUBLISH until the server says one subscriber got it (the subscription is in place: a state),
 * then until the reader has it. */
static void spublish_seen(simul_redis_cluster *c, sreader *rd, const char *ch, const char *msg)
{
    int before = rd->got;
    for (;;) {
        simul_redis_reply *r = NULL;
        assert_int_equal(simul_redis_cluster_command(c, &r, "SPUBLISH %s %s", ch, msg), 0);
        long long n = r->integer;
        simul_redis_reply_free(r);
        if (n == 1)
            break;
        assert_int_equal(simul_yield(), 0);
    }
    while (rd->got == before)
        assert_int_equal(simul_yield(), 0);
    assert_string_equal(rd->last, msg);
}

SIMUL_TASK_TEST(cluster_sharded_pubsub_follows_its_slot)
{
    (void)arg;
    NEED_REDIS();
    simul_scope guard;
    assert_int_equal(simul_scope_timeout(&guard, 60), 0);
    cluster cl;
    start_cluster(&cl);
    simul_redis_cluster *c = connect_cluster(&cl);

    const char *cross[] = {"a", "b"};
    simul_redis_cluster_subscription *cs = NULL;
    assert_int_equal(simul_redis_cluster_ssubscribe(c, cross, 2, 0, &cs), -EXDEV);
    assert_null(cs);
    const char *chans[] = {"{ch}:a", "{ch}:b"};
    assert_int_equal(simul_redis_cluster_ssubscribe(c, chans, 2, 0, &cs), 0);
    sreader rd = {.cs = cs};
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, sreader_main, &rd, NULL), 0);
    spublish_seen(c, &rd, "{ch}:a", "one");
    spublish_seen(c, &rd, "{ch}:b", "two");
    assert_int_equal(simul_redis_cluster_subscription_resubscribes(cs), 0);

    /* The slot moves: the old owner ends the subscription, the reader subscribes again on the
     * new one, and messages flow from there. */
    unsigned s = simul_redis_cluster_keyslot("{ch}", 4);
    int from = owner(&cl, s);
    move_slot(&cl, s, from, (from + 1) % NODES);
    spublish_seen(c, &rd, "{ch}:a", "after the move");
    assert_int_equal(simul_redis_cluster_subscription_resubscribes(cs), 1);
    assert_int_equal(owner(&cl, s), (from + 1) % NODES);

    /* And a second time, to the third node. */
    move_slot(&cl, s, owner(&cl, s), (from + 2) % NODES);
    spublish_seen(c, &rd, "{ch}:b", "after the second move");
    assert_int_equal(simul_redis_cluster_subscription_resubscribes(cs), 2);
    spublish_seen(c, &rd, "{ch}:a", "stop");
    assert_int_equal(simul_task_join(t, NULL), 0);
    assert_int_equal(rd.rc, 0);
    assert_int_equal(simul_redis_cluster_subscription_dropped(cs), 0);
    assert_int_equal(simul_redis_cluster_subscription_close(cs), 0);
    /* Nobody listens any more. */
    simul_redis_reply *r = NULL;
    assert_int_equal(simul_redis_cluster_command(c, &r, "SPUBLISH %s %s", "{ch}:a", "x"), 0);
    assert_int_equal(r->integer, 0);
    simul_redis_reply_free(r);

    /* A reader waiting when the cluster closes wakes with -ESHUTDOWN; the subscription dies
     * with the cluster. */
    assert_int_equal(simul_redis_cluster_ssubscribe(c, chans, 1, 0, &cs), 0);
    rd = (sreader){.cs = cs};
    assert_int_equal(simul_task_spawn(&t, sreader_main, &rd, NULL), 0);
    assert_int_equal(simul_yield(), 0);
    /* Not closed under its reader (it was freed under the parked read before). */
    assert_int_equal(simul_redis_cluster_subscription_close(cs), -EBUSY);
    simul_redis_cluster_close(c);
    assert_int_equal(simul_task_join(t, NULL), 0);
    assert_int_equal(rd.rc, -ESHUTDOWN);
    stop_cluster(&cl);
    simul_scope_end(&guard);
    return 0;
}

/* The slot's master restarted in place (same port, its nodes.conf): the subscription comes back
 * on it once it accepts again. */
SIMUL_TASK_TEST(cluster_sharded_pubsub_survives_node_restart)
{
    (void)arg;
    NEED_REDIS();
    simul_scope guard;
    assert_int_equal(simul_scope_timeout(&guard, 60), 0);
    cluster cl;
    start_cluster(&cl);
    simul_redis_cluster *c = connect_cluster(&cl);
    const char *chans[] = {"{rs}:x"};
    simul_redis_cluster_subscription *cs = NULL;
    assert_int_equal(simul_redis_cluster_ssubscribe(c, chans, 1, 0, &cs), 0);
    sreader rd = {.cs = cs};
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, sreader_main, &rd, NULL), 0);
    spublish_seen(c, &rd, "{rs}:x", "before");
    int m = owner(&cl, simul_redis_cluster_keyslot("{rs}", 4));
    kill_server(&cl.sv[m], SIGKILL);
    const char *extra[] = {"--cluster-enabled", "yes", "--cluster-config-file", cl.conf[m],
                           "--cluster-port", cl.busport[m], "--cluster-node-timeout", cl.timeout,
                           NULL};
    assert_true(run_server(&cl.sv[m], extra));
    int before = rd.got;
    for (;;) {
        simul_redis_reply *r = NULL;
        const char *pub[] = {"SPUBLISH", "{rs}:x", "after"};
        int rc = simul_redis_cluster_command_argv(c, SIMUL_REDIS_RETRY_SAFE, &r, 3, pub, NULL);
        long long n = rc == 0 ? r->integer : 0;
        simul_redis_reply_free(r);
        if (n == 1)
            break;
        assert_int_equal(simul_yield(), 0);
    }
    while (rd.got == before)
        assert_int_equal(simul_yield(), 0);
    assert_string_equal(rd.last, "after");
    assert_int_equal(simul_redis_cluster_subscription_resubscribes(cs), 1);
    spublish_seen(c, &rd, "{rs}:x", "stop");
    assert_int_equal(simul_task_join(t, NULL), 0);
    assert_int_equal(simul_redis_cluster_subscription_close(cs), 0);
    simul_redis_cluster_close(c);
    stop_cluster(&cl);
    simul_scope_end(&guard);
    return 0;
}

SIMUL_TASK_TEST(cluster_sharded_pubsub_survives_failover)
{
    (void)arg;
    NEED_REDIS();
    simul_scope guard;
    assert_int_equal(simul_scope_timeout(&guard, 150), 0);
    cluster cl;
    start_cluster_n(&cl, 2 * NODES, "1000");
    simul_redis_cluster *c = connect_cluster(&cl);
    const char *chans[] = {"{fo}:news"};
    simul_redis_cluster_subscription *cs = NULL;
    assert_int_equal(simul_redis_cluster_ssubscribe(c, chans, 1, 0, &cs), 0);
    sreader rd = {.cs = cs};
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, sreader_main, &rd, NULL), 0);
    spublish_seen(c, &rd, "{fo}:news", "before");
    unsigned s = simul_redis_cluster_keyslot("{fo}", 4);
    int m = owner(&cl, s);
    kill_server(&cl.sv[m], SIGKILL);
    /* The reader loses its node, reads the map (again and again until the replica is
     * promoted) and subscribes there; SPUBLISH (safe to resend) finds the new master too. */
    int before = rd.got;
    for (;;) {
        simul_redis_reply *r = NULL;
        const char *pub[] = {"SPUBLISH", "{fo}:news", "after"};
        int rc = simul_redis_cluster_command_argv(c, SIMUL_REDIS_RETRY_SAFE, &r, 3, pub, NULL);
        long long n = rc == 0 ? r->integer : 0;
        simul_redis_reply_free(r);
        if (n == 1)
            break;
        assert_int_equal(simul_yield(), 0);
    }
    while (rd.got == before)
        assert_int_equal(simul_yield(), 0);
    assert_string_equal(rd.last, "after");
    assert_true(simul_redis_cluster_subscription_resubscribes(cs) >= 1);
    assert_int_not_equal(owner(&cl, s), m);
    spublish_seen(c, &rd, "{fo}:news", "stop");
    assert_int_equal(simul_task_join(t, NULL), 0);
    assert_int_equal(simul_redis_cluster_subscription_close(cs), 0);
    simul_redis_cluster_close(c);
    stop_cluster(&cl);
    simul_scope_end(&guard);
    return 0;
}

/* ---- reads from replicas ---------------------------------------------------------------------- */

/* calls= of one command in a server's INFO commandstats (0 if never called). */
static long long cmd_calls(server *sv, const char *cmd)
{
    const char *info[] = {"INFO", "commandstats"};
    simul_redis_reply *r = node_call(sv, 2, info);
    char key[64];
    snprintf(key, sizeof key, "cmdstat_%s:calls=", cmd);
    const char *p = r->str ? strstr(r->str, key) : NULL;
    long long n = p ? atoll(p + strlen(key)) : 0;
    simul_redis_reply_free(r);
    return n;
}


/* Whether every live server but `skip` lists no replica for slot s (CLUSTER SLOTS leaves out a
 * replica the cluster marked failed). */
static bool slot_has_no_replica(cluster *cl, unsigned s, int skip)
{
    for (int i = 0; i < cl->n; i++) {
        if (!cl->sv[i].pid || i == skip)
            continue;
        const char *slots[] = {"CLUSTER", "SLOTS"};
        simul_redis_reply *r = node_call(&cl->sv[i], 2, slots);
        bool none = r->type == SIMUL_REDIS_ARRAY;
        for (size_t k = 0; none && k < r->len; k++) {
            const simul_redis_reply *e = &r->elem[k];
            if ((unsigned)e->elem[0].integer <= s && s <= (unsigned)e->elem[1].integer)
                none = e->len == 3; /* start, end, master: no replica */
        }
        simul_redis_reply_free(r);
        if (!none)
            return false;
    }
    return true;
}

static bool is_master(server *sv)
{
    const char *info[] = {"INFO", "replication"};
    simul_redis_reply *r = node_call(sv, 2, info);
    bool m = r->str && strstr(r->str, "role:master");
    simul_redis_reply_free(r);
    return m;
}

typedef struct replica_read {
    simul_redis_cluster *c;
    const char *key;
    int rc;
    char got[16];
} replica_read;

static int replica_read_main(void *arg)
{
    replica_read *rr = arg;
    simul_redis_reply *r = NULL;
    rr->rc = simul_redis_cluster_command(rr->c, &r, "GET %s", rr->key);
    if (rr->rc == 0 && r->str)
        snprintf(rr->got, sizeof rr->got, "%s", r->str);
    simul_redis_reply_free(r);
    return 0;
}

/* A read is connecting to a slot's replica when another task's refresh drops that replica from
 * the map (the cluster marked it failed): the read must go on with the replica it picked (or fall
 * back to the master), not look the replica up again (the map now says -1: nodes[-1] before the
 * fix, a crash). The interleaving is forced by state: the replica is stopped (SIGSTOP), so the
 * kernel accepts the read's connection and the handshake waits; the other nodes forget it; a
 * MOVED makes the other task read the map; then the replica continues. `avoid`: a master whose
 * replica is gone already. */
static void replica_dropped_while_connecting(cluster *cl, int avoid)
{
    char key[16];
    unsigned s = 0;
    int m = -1;
    for (int i = 0; m < 0 || m == avoid; i++) {
        snprintf(key, sizeof key, "rd%d", i);
        s = simul_redis_cluster_keyslot(key, strlen(key));
        m = owner(cl, s);
    }
    int rep = replica_of(cl, m);
    /* A client of its own: it has no connection to that replica yet, and its connect timeout
     * is longer than this part can take, so the stopped replica is waited for, not given up. */
    const char *seeds[] = {cl->seed};
    simul_redis_cluster_opts o = {.seeds = seeds, .nseeds = 1, .read_from_replicas = true,
                                  .node = {.connect_timeout = 100}};
    simul_redis_cluster *c = NULL;
    assert_int_equal(simul_redis_cluster_connect(&o, &c), 0);
    simul_redis_reply *r = NULL;
    assert_int_equal(simul_redis_cluster_command(c, &r, "SET %s %s", key, "v"), 0);
    simul_redis_reply_free(r);
    replica_has(cl, rep, key, "v");

    /* An empty slot, handed to another master behind the client's back: a write there meets
     * MOVED and reads the map again. */
    unsigned ms = simul_redis_cluster_keyslot("moving", 6);
    assert_int_not_equal(ms, s);
    int from = owner(cl, ms), to = -1;
    for (int i = 0; i < cl->n && to < 0; i++)
        if (i != from && i != rep && cl->sv[i].pid && is_master(&cl->sv[i]))
            to = i;
    assert_true(to >= 0);
    char from_id[64], to_id[64], slot[16];
    node_id(cl, from, from_id, sizeof from_id);
    node_id(cl, to, to_id, sizeof to_id);
    snprintf(slot, sizeof slot, "%u", ms);

    /* The replica stops, and every other node forgets it: their maps have no replica for s
     * from now on (as once the cluster marks a dead replica failed, without waiting for that). */
    char rep_id[64];
    node_id(cl, rep, rep_id, sizeof rep_id);
    pid_t stopped = cl->sv[rep].pid;
    assert_int_equal(kill(stopped, SIGSTOP), 0);
    cl->sv[rep].pid = 0; /* the helpers skip it: a call to it would wait for ever */
    for (int i = 0; i < cl->n; i++) {
        if (cl->sv[i].pid) {
            const char *forget[] = {"CLUSTER", "FORGET", rep_id};
            expect_ok(node_call(&cl->sv[i], 3, forget));
        }
    }
    assert_true(slot_has_no_replica(cl, s, rep));
    /* By the book (an importing node's SETSLOT NODE bumps its epoch, so the replicas' gossip
     * of the old owner does not take the slot back), the target first. */
    const char *imp[] = {"CLUSTER", "SETSLOT", slot, "IMPORTING", from_id};
    expect_ok(node_call(&cl->sv[to], 5, imp));
    const char *mig[] = {"CLUSTER", "SETSLOT", slot, "MIGRATING", to_id};
    expect_ok(node_call(&cl->sv[from], 5, mig));
    const char *set[] = {"CLUSTER", "SETSLOT", slot, "NODE", to_id};
    expect_ok(node_call(&cl->sv[to], 5, set));
    expect_ok(node_call(&cl->sv[from], 5, set));
    for (int i = 0; i < cl->n; i++)
        if (i != to && i != from && cl->sv[i].pid && is_master(&cl->sv[i]))
            expect_ok(node_call(&cl->sv[i], 5, set));
    /* The reader runs at this task's first suspension, to the replica's handshake, where it
     * stays while the replica is stopped; the SET meets MOVED and the map, read again, has no
     * replica for s. */
    replica_read rr = {.c = c, .key = key};
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, replica_read_main, &rr, NULL), 0);
    uint64_t moved = cstats(c).moved, refreshes = cstats(c).refreshes;
    assert_int_equal(simul_redis_cluster_command(c, &r, "SET moving %s", "x"), 0);
    simul_redis_reply_free(r);
    assert_true(cstats(c).moved > moved);
    assert_true(cstats(c).refreshes > refreshes);
    assert_false(simul_task_done(t));

    cl->sv[rep].pid = stopped;
    assert_int_equal(kill(stopped, SIGCONT), 0);
    assert_int_equal(simul_task_join(t, NULL), 0);
    assert_int_equal(rr.rc, 0);
    assert_string_equal(rr.got, "v");
    simul_redis_cluster_close(c);
}

SIMUL_TASK_TEST(cluster_reads_from_replicas)
{
    (void)arg;
    NEED_REDIS();
    simul_scope guard;
    assert_int_equal(simul_scope_timeout(&guard, 120), 0);
    cluster cl;
    /* No failover is wanted here: a node timeout that a loaded machine does not reach (at 1 s,
     * a master starved of CPU for a second may be failed over, and its replica promoted). */
    start_cluster_n(&cl, 2 * NODES, "5000");
    const char *seeds[] = {cl.seed};
    simul_redis_cluster_opts o = {.seeds = seeds, .nseeds = 1, .read_from_replicas = true};
    simul_redis_cluster *c = NULL;
    assert_int_equal(simul_redis_cluster_connect(&o, &c), 0);

    simul_redis_reply *r = NULL;
    assert_int_equal(simul_redis_cluster_command(c, &r, "SET %s %s", "rk", "v1"), 0);
    simul_redis_reply_free(r);
    unsigned s = simul_redis_cluster_keyslot("rk", 2);
    int m = owner(&cl, s), rep = replica_of(&cl, m);
    replica_has(&cl, rep, "rk", "v1");

    long long m0 = cmd_calls(&cl.sv[m], "get"), r0 = cmd_calls(&cl.sv[rep], "get");
    long long ms0 = cmd_calls(&cl.sv[m], "set");
    enum { READS = 50 };
    for (int i = 0; i < READS; i++) {
        assert_int_equal(simul_redis_cluster_command(c, &r, "GET %s", "rk"), 0);
        assert_reply_str(r, "v1");
        simul_redis_reply_free(r);
    }
    /* Writes still go to the master. */
    assert_int_equal(simul_redis_cluster_command(c, &r, "SET %s %s", "rk", "v2"), 0);
    simul_redis_reply_free(r);
    assert_int_equal(cmd_calls(&cl.sv[rep], "get") - r0, READS);
    assert_int_equal(cmd_calls(&cl.sv[m], "get") - m0, 0);
    assert_int_equal(cmd_calls(&cl.sv[m], "set") - ms0, 1);
    assert_true(cmd_calls(&cl.sv[rep], "readonly") >= 1);
    simul_redis_cluster_stats st = cstats(c);
    assert_int_equal(st.replica_reads, READS);
    assert_int_equal(st.replica_fallbacks, 0);

    /* The replica dies: reads fall back to the master, with no error. */
    kill_server(&cl.sv[rep], SIGKILL);
    for (int i = 0; i < READS; i++) {
        assert_int_equal(simul_redis_cluster_command(c, &r, "GET %s", "rk"), 0);
        assert_reply_str(r, "v2");
        simul_redis_reply_free(r);
    }
    assert_int_equal(cmd_calls(&cl.sv[m], "get") - m0, READS);
    st = cstats(c);
    assert_true(st.replica_fallbacks >= 1);
    assert_int_equal(st.replica_reads, READS);
    print_message("replica reads %llu, fallbacks %llu\n", (unsigned long long)st.replica_reads,
                  (unsigned long long)st.replica_fallbacks);
    simul_redis_cluster_close(c);

    replica_dropped_while_connecting(&cl, m);
    stop_cluster(&cl);
    simul_scope_end(&guard);
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cluster_routes_by_slot),
        cmocka_unit_test(slot_migrated_while_commands_run),
        cmocka_unit_test(master_failover_followed),
        cmocka_unit_test(cluster_transactions),
        cmocka_unit_test(cluster_sharded_pubsub_follows_its_slot),
        cmocka_unit_test(cluster_sharded_pubsub_survives_node_restart),
        cmocka_unit_test(cluster_sharded_pubsub_survives_failover),
        cmocka_unit_test(cluster_reads_from_replicas),
    };
    return simul_test_main(argc, argv, tests, ARRAY_LEN(tests), "test_redis_cluster");
}
