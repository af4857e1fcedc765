/* redis_chat — a chat room over Redis pub/sub: lines read from stdin are published to the room
 * (and kept in a capped history list); messages from the others are printed as they arrive. One
 * RESP3 connection carries both the subscription and the commands; the reader of the room is a
 * task that takes messages from the subscription like a queue.
 *
 *   redis_chat [--url redis://HOST:PORT | --url unix:///PATH] --room R --name N
 *              [--history H] [--expect K] [--timeout S]
 *
 * Prints "joined R as N" once subscribed, the last H lines of history (default 10) as
 * "history: NAME: TEXT", then each message from another member as "NAME: TEXT". At the end of
 * stdin it stops sending; with --expect K it stays until K messages from others have arrived
 * (at most --timeout seconds, default 30). Ends with "sent=S received=R dropped=D". Exit 0; 1 on
 * an error or a timeout. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <simul.h>
#include <simul/redis.h>

#include "example_cli.h"

#define HISTORY_KEEP 100

static void print_usage(FILE *out)
{
    fprintf(out,
            "usage: %s [--url redis://HOST:PORT | --url unix:///PATH] --room R --name N"
            " [--history H] [--expect K] [--timeout S]\n",
            progname);
}

typedef struct chat {
    simul_redis_opts opts;
    char host[256], port[16], path[1024];
    const char *room, *name;
    size_t history, expect;
    double timeout;
    char channel[300], history_key[320];
    simul_redis_conn *conn;
    simul_redis_subscription *sub;
    size_t sent, received;
    simul_event *enough; /* set when --expect messages have arrived */
} chat;

static void parse_url(chat *ch, const char *url)
{
    if (strncmp(url, "unix://", 7) == 0) {
        snprintf(ch->path, sizeof ch->path, "%s", url + 7);
        ch->opts.unix_path = ch->path;
        return;
    }
    if (strncmp(url, "redis://", 8) != 0)
        usage_error("--url must start with redis:// or unix://");
    const char *h = url + 8, *colon = strrchr(h, ':');
    if (!colon)
        usage_error("--url redis://HOST:PORT");
    snprintf(ch->host, sizeof ch->host, "%.*s", (int)(colon - h), h);
    snprintf(ch->port, sizeof ch->port, "%s", colon + 1);
    ch->opts.host = ch->host;
    ch->opts.port = ch->port;
}

/* The room's reader: every message but our own is printed. */
static int reader_main(void *arg)
{
    chat *ch = arg;
    size_t own = strlen(ch->name);
    for (;;) {
        simul_redis_reply *m = NULL;
        int rc = simul_redis_subscription_next(ch->sub, &m);
        if (rc < 0)
            return rc == -ECANCELED || rc == -ESHUTDOWN ? 0 : rc;
        size_t n = 0;
        const char *text = simul_redis_reply_str(simul_redis_reply_elem(m, 2), &n);
        bool mine = text && n > own + 1 && memcmp(text, ch->name, own) == 0 && text[own] == ':';
        if (text && !mine) {
            printf("%.*s\n", (int)n, text);
            fflush(stdout);
            if (++ch->received == ch->expect)
                simul_event_set(ch->enough);
        }
        simul_redis_reply_free(m);
    }
}

/* One line: kept in the history (capped) and published, as one pipeline. */
static int say(chat *ch, const char *line, size_t n)
{
    char msg[4096];
    int len = snprintf(msg, sizeof msg, "%s: %.*s", ch->name, (int)n, line);
    if (len < 0 || (size_t)len >= sizeof msg)
        return -EMSGSIZE;
    simul_redis_pipeline *p = NULL;
    int rc = simul_redis_pipeline_new(ch->conn, &p);
    if (rc < 0)
        return rc;
    simul_redis_pipeline_add(p, "RPUSH %s %b", ch->history_key, msg, (size_t)len);
    simul_redis_pipeline_add(p, "LTRIM %s %d -1", ch->history_key, -HISTORY_KEEP);
    simul_redis_pipeline_add(p, "PUBLISH %s %b", ch->channel, msg, (size_t)len);
    int res[3] = {0, 0, 0};
    rc = simul_redis_pipeline_exec(p, NULL, res);
    simul_redis_pipeline_free(p);
    for (int i = 0; rc == 0 && i < 3; i++)
        rc = res[i];
    if (rc == 0)
        ch->sent++;
    return rc;
}

static int main_task(void *arg)
{
    chat *ch = arg;
    int rc = simul_redis_connect(&ch->opts, &ch->conn);
    if (rc < 0) {
        fprintf(stderr, "%s: connect: %s\n", progname, simul_strerror(rc));
        return 1;
    }
    const char *names[] = {ch->channel};
    simul_task *reader = NULL;
    simul_stream *in = NULL;
    rc = simul_event_new(&ch->enough);
    if (rc == 0)
        rc = simul_redis_subscribe(ch->conn, 0, names, 1, 0, &ch->sub);
    if (rc == 0) {
        printf("joined %s as %s\n", ch->room, ch->name);
        /* History after subscribing: a line said meanwhile shows in both, never in neither. */
        simul_redis_reply *h = NULL;
        rc = simul_redis_command(ch->conn, &h, "LRANGE %s %d -1", ch->history_key,
                                 -(int)ch->history);
        for (size_t i = 0; rc == 0 && ch->history > 0 && i < simul_redis_reply_len(h); i++) {
            size_t n = 0;
            const char *s = simul_redis_reply_str(simul_redis_reply_elem(h, i), &n);
            printf("history: %.*s\n", (int)n, s ? s : "");
        }
        simul_redis_reply_free(h);
        fflush(stdout);
    }
    if (rc == 0)
        rc = simul_task_spawn(&reader, reader_main, ch, NULL);
    bool from_file = false;
    if (rc == 0) {
        rc = simul_stream_from_fd(STDIN_FILENO, &in);
        /* A regular file or /dev/null cannot be polled (EPERM): read it plainly, it never
         * blocks for long. */
        if (rc == -EPERM) {
            rc = 0;
            from_file = true;
        }
    }
    char buf[4096];
    while (rc == 0 && from_file && fgets(buf, sizeof buf, stdin)) {
        size_t len = strcspn(buf, "\n");
        if (len > 0)
            rc = say(ch, buf, len);
    }
    while (rc == 0 && !from_file) {
        const char *line = NULL;
        long n = simul_stream_readline(in, &line);
        if (n <= 0) {
            rc = n == 0 ? 0 : (int)n;
            break;
        }
        size_t len = (size_t)n;
        if (line[len - 1] == '\n')
            len--;
        if (len > 0)
            rc = say(ch, line, len);
    }
    if (in)
        simul_stream_close(in);
    if (rc == 0 && ch->expect > 0 && ch->received < ch->expect) {
        simul_scope sc;
        rc = simul_scope_timeout(&sc, ch->timeout);
        if (rc == 0) {
            rc = simul_event_wait(ch->enough);
            simul_scope_end(&sc);
        }
    }
    if (reader) {
        simul_task_cancel(reader);
        int rr = 0;
        simul_task_join(reader, &rr);
        if (rc == 0)
            rc = rr;
    }
    uint64_t dropped = simul_redis_subscription_dropped(ch->sub);
    printf("sent=%zu received=%zu dropped=%llu\n", ch->sent, ch->received,
           (unsigned long long)dropped);
    simul_redis_subscription_close(ch->sub);
    simul_redis_close(ch->conn);
    simul_event_free(ch->enough);
    if (rc < 0) {
        fprintf(stderr, "%s: %s\n", progname, simul_strerror(rc));
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    progname = argv[0];
    static chat ch = {.history = 10, .timeout = 30};
    ch.opts.host = "127.0.0.1";
    ch.opts.port = "6379";
    ch.opts.protocol = 3; /* the subscription shares the connection with the commands */
    for (int i = 1; i < argc; i++) {
        const char *v;
        if ((v = option_value(argv[i], "--url", &i, argc, argv))) {
            parse_url(&ch, v);
        } else if ((v = option_value(argv[i], "--room", &i, argc, argv))) {
            ch.room = v;
        } else if ((v = option_value(argv[i], "--name", &i, argc, argv))) {
            ch.name = v;
        } else if ((v = option_value(argv[i], "--history", &i, argc, argv))) {
            if (!parse_count(v, &ch.history) || ch.history > HISTORY_KEEP)
                usage_error("--history wants 0..%d", HISTORY_KEEP);
        } else if ((v = option_value(argv[i], "--expect", &i, argc, argv))) {
            if (!parse_count(v, &ch.expect))
                usage_error("--expect wants a count");
        } else if ((v = option_value(argv[i], "--timeout", &i, argc, argv))) {
            if (!parse_number(v, 0.001, 86400, &ch.timeout))
                usage_error("--timeout wants seconds");
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            print_usage(stdout);
            return 0;
        } else {
            usage_error("unknown argument '%s'", argv[i]);
        }
    }
    if (!ch.room || !ch.name || !*ch.room || !*ch.name)
        usage_error("--room and --name are required");
    snprintf(ch.channel, sizeof ch.channel, "chat:%s", ch.room);
    snprintf(ch.history_key, sizeof ch.history_key, "chat:%s:history", ch.room);
    int rc = simul_run(main_task, &ch);
    if (rc < 0) {
        fprintf(stderr, "%s: %s\n", progname, simul_strerror(rc));
        return 1;
    }
    return rc;
}
