/* main.c — the chess simul: a master plays N boards over TCP on loopback, in seed time scaled
 * down (one seed minute = one millisecond by default), synchronously (one game after another),
 * asynchronously (all boards at once: the point of the founding talk), or both side by side with
 * the model's prediction (model.h). See usage() for the options and the README's section
 * "The chess simul" for the arithmetic. */
#include "chess.h"
#ifdef CHESS_WEB
#include "web.h"
#endif

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#define MAX_PROCESSES 256
#define FD_MARGIN 64 /* fds beyond the sockets: stdio, epoll, eventfd, listeners, slack */

static void usage(FILE *to, const char *argv0)
{
    fprintf(to,
            "usage: %s [options]\n"
            "  A chess simul over TCP on loopback: ONE master task plays every board; each\n"
            "  opponent is a client task (or, with --processes, runs in child processes).\n"
            "  Times are seed minutes (fractions allowed), scaled to real time by --scale.\n"
            "Modes (default: all boards at once):\n"
            "  --sync              play the boards one after another\n"
            "  --compare           play both ways and print the seed's table with the model\n"
            "  --serve-only        be the master only: print \"listening on H:P\" and wait for\n"
            "                      --boards opponents to connect (protocol.h), then play\n"
            "Settings:\n"
            "  --boards N          boards (default 50)\n"
            "  --moves N           moves per side in each game (default 30)\n"
            "  --master-move MIN   the master's time per move (default 0.5)\n"
            "  --opponent-move MIN an opponent's time per move (default 5)\n"
            "  --switch-cost MIN   the master's walk to another board (default 1)\n"
            "  --scale MS          real milliseconds per seed minute (default 1)\n"
            "  --vanish K          K opponents hang up mid-game; the others play on\n"
            "  --processes N       run the opponents in N child processes\n"
            "  --host H --port P   where the master listens (default 127.0.0.1, port 0: free)\n"
            "  --quiet             no live view, only the summary\n"
            "The page (the boards live in a browser, over WebSocket or SSE; its URL is printed\n"
            "first):\n"
            "  --no-web            do not serve it\n"
            "  --web-host H --web-port P   where (default 127.0.0.1, port 0: free)\n"
            "  --web-wait S        wait up to S seconds for a page to open before playing\n"
            "  --web-linger S      keep serving S seconds after the simul (Ctrl-C ends it)\n"
            "Output: a live grid on a terminal (a plain line a second otherwise), then a summary\n"
            "with key=value lines (sync_/async_measured_s, _model_s, _results, boards_finished,\n"
            "...). The moves are real chess: a game ends early only by a forced mate or\n"
            "stalemate (END 1-0, 0-1, 1/2-1/2), else END * after the configured moves.\n"
            "Exit status: 0; 1 on failure; 2 for bad options; 130 when interrupted (SIGINT).\n",
            argv0);
}

/* ---- options ------------------------------------------------------------------------------ */

static bool parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static bool parse_minutes(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < 0 || v > 1e7)
        return false;
    *out = v;
    return true;
}

/* Returns 0, or 2 after printing why (the exit status for bad options). */
static int parse_args(int argc, char **argv, chess_config *c)
{
    *c = (chess_config){
        .p = {.boards = 50, .moves = 30, .master_min = 0.5, .opponent_min = 5, .switch_min = 1},
        .scale_ms = 1,
        .host = "127.0.0.1",
        .port = "0",
        .web_host = "127.0.0.1",
        .web_port = "0",
    };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool ok = true, takes = true;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout, argv[0]);
            exit(0);
        } else if (strcmp(a, "--sync") == 0) {
            c->sync = true, takes = false;
        } else if (strcmp(a, "--compare") == 0) {
            c->compare = true, takes = false;
        } else if (strcmp(a, "--serve-only") == 0) {
            c->serve_only = true, takes = false;
        } else if (strcmp(a, "--quiet") == 0) {
            c->quiet = true, takes = false;
        } else if (strcmp(a, "--no-web") == 0) {
            c->no_web = true, takes = false;
        } else if (strcmp(a, "--opponents-only") == 0) {
            c->opponents_only = true, takes = false;
        } else if (!v) {
            ok = false;
        } else if (strcmp(a, "--boards") == 0) {
            ok = parse_long(v, 1, CHESS_MAX_BOARDS, &c->p.boards);
        } else if (strcmp(a, "--moves") == 0) {
            ok = parse_long(v, 1, CHESS_MAX_MOVES, &c->p.moves);
        } else if (strcmp(a, "--master-move") == 0) {
            ok = parse_minutes(v, &c->p.master_min);
        } else if (strcmp(a, "--opponent-move") == 0) {
            ok = parse_minutes(v, &c->p.opponent_min);
        } else if (strcmp(a, "--switch-cost") == 0) {
            ok = parse_minutes(v, &c->p.switch_min);
        } else if (strcmp(a, "--scale") == 0) {
            ok = parse_minutes(v, &c->scale_ms) && c->scale_ms > 0 && c->scale_ms <= 1e5;
        } else if (strcmp(a, "--vanish") == 0) {
            ok = parse_long(v, 0, CHESS_MAX_BOARDS, &c->vanish);
        } else if (strcmp(a, "--processes") == 0) {
            ok = parse_long(v, 1, MAX_PROCESSES, &c->processes);
        } else if (strcmp(a, "--host") == 0) {
            c->host = v;
        } else if (strcmp(a, "--port") == 0) {
            long p;
            ok = parse_long(v, 0, 65535, &p);
            c->port = v;
        } else if (strcmp(a, "--web-host") == 0) {
            c->web_host = v;
        } else if (strcmp(a, "--web-port") == 0) {
            long p;
            ok = parse_long(v, 0, 65535, &p);
            c->web_port = v;
        } else if (strcmp(a, "--web-wait") == 0) {
            ok = parse_minutes(v, &c->web_wait_s);
        } else if (strcmp(a, "--web-linger") == 0) {
            ok = parse_minutes(v, &c->web_linger_s);
        } else if (strcmp(a, "--first") == 0) {
            ok = parse_long(v, 0, CHESS_MAX_BOARDS - 1, &c->first);
        } else if (strcmp(a, "--count") == 0) {
            ok = parse_long(v, 1, CHESS_MAX_BOARDS, &c->count);
        } else {
            fprintf(stderr, "chess_simul: unknown option '%s'\n", a);
            usage(stderr, argv[0]);
            return 2;
        }
        if (!ok) {
            fprintf(stderr, "chess_simul: bad value for %s%s%s\n", a, v ? ": " : " (missing)",
                    v ? v : "");
            usage(stderr, argv[0]);
            return 2;
        }
        if (takes)
            i++;
    }
    const char *clash = NULL;
    if (c->sync && c->compare)
        clash = "--sync and --compare";
    else if (c->serve_only && (c->compare || c->processes || c->vanish))
        clash = "--serve-only with --compare, --processes or --vanish";
    else if (c->vanish > c->p.boards)
        clash = "--vanish more than --boards";
    else if (c->processes > c->p.boards)
        clash = "--processes more than --boards";
    else if (c->opponents_only && (c->count == 0 || c->first + c->count > c->p.boards))
        clash = "--opponents-only without a valid --first/--count";
    if (clash) {
        fprintf(stderr, "chess_simul: %s do not go together\n", clash);
        usage(stderr, argv[0]);
        return 2;
    }
    /* Seed minutes to nanoseconds; the options' bounds keep these far inside int64. */
    double ns_per_min = c->scale_ms * 1e6;
    c->master_ns = llround(c->p.master_min * ns_per_min);
    c->opponent_ns = llround(c->p.opponent_min * ns_per_min);
    c->switch_ns = llround(c->p.switch_min * ns_per_min);
    c->tty = isatty(STDOUT_FILENO);
    return 0;
}

/* Raises the soft RLIMIT_NOFILE to what `needed` fds take, up to the hard limit. */
static int ensure_fds(long needed)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return 0; /* cannot tell: let accept/connect report EMFILE if it comes to that */
    if (rl.rlim_cur != RLIM_INFINITY && (rlim_t)needed > rl.rlim_cur) {
        if (rl.rlim_max != RLIM_INFINITY && (rlim_t)needed > rl.rlim_max) {
            fprintf(stderr,
                    "chess_simul: this run needs about %ld file descriptors, but RLIMIT_NOFILE's "
                    "hard limit is %llu (raise it, e.g. `ulimit -Hn %ld` as root, or use fewer "
                    "boards or --processes)\n",
                    needed, (unsigned long long)rl.rlim_max, needed);
            return -1;
        }
        rl.rlim_cur = (rlim_t)needed;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
            fprintf(stderr, "chess_simul: cannot raise RLIMIT_NOFILE to %ld: %s\n", needed,
                    strerror(errno));
            return -1;
        }
    }
    return 0;
}

/* ---- child processes ---------------------------------------------------------------------- */

typedef struct children {
    simul_process *procs[MAX_PROCESSES];
    int n;
} children;

/* Starts cfg->processes copies of this program (/proc/self/exe), each playing a share of the
 * boards against port, and returns them in *out (even on failure: those started must be
 * waited for). */
static int opponents_spawn(const chess_config *cfg, int port, children **out)
{
    children *ch = calloc(1, sizeof *ch);
    if (!ch)
        return -ENOMEM;
    *out = ch;
    char sport[16], sboards[24], smoves[24], so[40], sscale[40], svanish[24], sfirst[24],
        scount[24];
    snprintf(sport, sizeof sport, "%d", port);
    snprintf(sboards, sizeof sboards, "%ld", cfg->p.boards);
    snprintf(smoves, sizeof smoves, "%ld", cfg->p.moves);
    snprintf(so, sizeof so, "%.17g", cfg->p.opponent_min);
    snprintf(sscale, sizeof sscale, "%.17g", cfg->scale_ms);
    snprintf(svanish, sizeof svanish, "%ld", cfg->vanish);
    for (long k = 0; k < cfg->processes; k++) {
        long first = cfg->p.boards * k / cfg->processes;
        long count = cfg->p.boards * (k + 1) / cfg->processes - first;
        snprintf(sfirst, sizeof sfirst, "%ld", first);
        snprintf(scount, sizeof scount, "%ld", count);
        const char *argv[] = {"/proc/self/exe", "--opponents-only", "--host", cfg->host,
                              "--port", sport, "--boards", sboards, "--moves", smoves,
                              "--opponent-move", so, "--scale", sscale, "--vanish", svanish,
                              "--first", sfirst, "--count", scount, NULL};
        simul_process_opts o = {.argv = argv};
        int rc = simul_process_exec(&o, &ch->procs[ch->n]);
        if (rc < 0) {
            fprintf(stderr, "chess_simul: cannot start an opponent process: %s\n",
                    simul_strerror(rc));
            return rc;
        }
        ch->n++;
    }
    return 0;
}

/* Asks the children to stop (the simul was interrupted). */
static void opponents_kill(const children *ch)
{
    for (int i = 0; i < ch->n; i++)
        simul_process_terminate(ch->procs[i]);
}

/* Waits for the children and frees *ch. Returns how many did not exit 0. Bounded: a child still
 * running after 10 s gets SIGKILL. Shielded: an interrupted simul still reaps its children. */
static int opponents_wait(children *ch)
{
    int failed = 0;
    simul_scope shield, sc;
    simul_scope_shield(&shield);
    simul_scope_timeout(&sc, 10.0);
    int status[MAX_PROCESSES];
    bool exited[MAX_PROCESSES] = {false};
    for (int i = 0; i < ch->n; i++)
        exited[i] = simul_process_wait(ch->procs[i], &status[i]) == 0;
    simul_scope_end(&sc);
    for (int i = 0; i < ch->n; i++) {
        if (!exited[i]) {
            fprintf(stderr, "chess_simul: opponent process %d still running after 10 s: killed\n",
                    simul_process_pid(ch->procs[i]));
            simul_process_kill(ch->procs[i]);
            exited[i] = simul_process_wait(ch->procs[i], &status[i]) == 0;
        }
        failed += !exited[i] || status[i] != 0;
        simul_process_close(ch->procs[i]);
    }
    simul_scope_end(&shield);
    free(ch);
    return failed;
}

/* ---- one mode ----------------------------------------------------------------------------- */

typedef struct mode_result {
    bool ran, interrupted;
    double measured_s, games_sum_s;
    long finished, abandoned, moves, opponent_failures;
    long results[RESULT_KINDS];
    unsigned long errors_sent;
    char abandoned_list[512];
} mode_result;

static simul_task *main_task; /* cancelled by SIGTERM (and SIGINT, also when simul_run's
                                 default handling is off because SIGINT was ignored) */

static int run_mode(const chess_config *cfg, bool sync, mode_result *r)
{
    session s;
    int rc = session_init(&s, cfg, sync);
    if (rc < 0) {
        fprintf(stderr, "chess_simul: %s\n", simul_strerror(rc));
        return -1;
    }
    if ((rc = session_listen(&s)) < 0) {
        fprintf(stderr, "chess_simul: cannot listen on %s:%s: %s\n", cfg->host, cfg->port,
                simul_strerror(rc));
        session_free(&s);
        return -1;
    }
#ifdef CHESS_WEB
    web_attach(&s);
#endif
    int port = simul_server_port(s.srv);
    char sport[16];
    snprintf(sport, sizeof sport, "%d", port);
    if (cfg->serve_only) {
        printf("listening on %s:%d\n", cfg->host, port);
        fflush(stdout);
    }
    if (!cfg->quiet && !cfg->serve_only) {
        printf("== %s: %ld boards, %ld moves each ==\n", sync ? "sync (one game after another)"
                                                           : "async (every board at once)",
               cfg->p.boards, cfg->p.moves);
        fflush(stdout);
    }

    opponents opp = {.cfg = cfg, .port = sport, .first = 0, .count = cfg->p.boards};
    children *kids = NULL;
    simul_task *opp_task = NULL, *master = NULL, *view = NULL;
    int failure = 0;
    if (cfg->serve_only) {
    } else if (cfg->processes) {
        if ((rc = opponents_spawn(cfg, port, &kids)) < 0)
            failure = 1;
    } else if ((rc = simul_task_spawn(&opp_task, opponents_task, &opp,
                                      &(simul_task_opts){.name = "opponents"})) < 0) {
        failure = 1;
    }
    if (!failure && (rc = simul_task_spawn(&master, master_task, &s,
                                           &(simul_task_opts){.name = "master"})) < 0)
        failure = 1;
    if (!failure)
        simul_task_spawn(&view, view_task, &s, &(simul_task_opts){.name = "view"});

    int master_rc = 0;
    if (master) {
        rc = simul_task_join(master, &master_rc);
        if (rc < 0) {
            s.interrupted = true; /* our caller was cancelled (SIGINT): stop everyone */
            simul_task_cancel(master);
        } else {
            master = NULL;
        }
    }
    /* The clean-up must finish even though we may be cancelled: shield it. */
    simul_scope shield;
    simul_scope_shield(&shield);
    if (master)
        simul_task_join(master, &master_rc);
    if (view) {
        simul_task_cancel(view);
        simul_task_join(view, NULL);
    }
    if (s.interrupted || failure) {
        /* Opponents first, so they do not take the closing connections for a master gone. */
        if (kids) {
            opponents_kill(kids);
            opponents_wait(kids); /* stopped, not failed: not counted */
            kids = NULL;
        }
        if (opp_task)
            simul_task_cancel(opp_task);
        session_close(&s);
    }
    if (opp_task) {
        /* After END every opponent hangs up by itself; bounded in case one does not. */
        simul_scope sc;
        simul_scope_timeout(&sc, 10.0);
        if (simul_task_join(opp_task, NULL) < 0) {
            simul_task_cancel(opp_task);
            simul_scope_end(&sc);
            simul_task_join(opp_task, NULL);
        } else {
            simul_scope_end(&sc);
        }
    }
    if (kids) {
        int failed = opponents_wait(kids);
        if (!s.interrupted)
            opp.failed += failed;
    }
    if (s.interrupted)
        opp.failed = 0; /* they were stopped, they did not fail */
    session_close(&s);
    simul_scope_end(&shield);

    if (s.started && !s.done)
        s.t_end_ns = simul_now_ns();
    view_final(&s);
    r->ran = s.started;
    r->interrupted = s.interrupted;
    r->measured_s = s.started ? (double)(s.t_end_ns - s.t0_ns) / 1e9 : 0;
    r->games_sum_s = 0;
    for (long i = 0; i < cfg->p.boards; i++)
        if (s.boards[i].state == BOARD_FINISHED)
            r->games_sum_s += (double)(s.boards[i].end_ns - s.boards[i].start_ns) / 1e9;
    r->finished = s.finished;
    r->abandoned = s.abandoned;
    r->moves = s.moves;
    memcpy(r->results, s.results, sizeof r->results);
    r->errors_sent = s.errs_sent;
    r->opponent_failures = opp.failed;
    snprintf(r->abandoned_list, sizeof r->abandoned_list, "%s", s.abandoned_list);
#ifdef CHESS_WEB
    web_detach(&s);
#endif
    session_free(&s);
    if (master_rc < 0 && master_rc != -ECANCELED)
        fprintf(stderr, "chess_simul: the master stopped: %s\n", simul_strerror(master_rc));
    return failure ? -1 : 0;
}

/* ---- the summary -------------------------------------------------------------------------- */

static void print_summary(const chess_config *cfg, const mode_result *sync, const mode_result *async)
{
    const chess_params *p = &cfg->p;
    char a[32], b[32];
    double per_ms = cfg->scale_ms / 1000.0; /* real seconds per seed minute */
    printf("\nchess simul: %ld boards, %ld moves each side; master %g min a move, opponents %g "
           "min, walk %g min; 1 seed min = %g ms\n",
           p->boards, p->moves, p->master_min, p->opponent_min, p->switch_min, cfg->scale_ms);
    printf("%-9s %-14s %-14s %-12s %s\n", "mode", "model (seed)", "measured", "model (s)",
           "measured (s)");
    const mode_result *rs[2] = {sync, async};
    const char *names[2] = {"sync", "async"};
    const double model_s[2] = {chess_model_sync_min(p) * per_ms, chess_model_async_min(p) * per_ms};
    for (int i = 0; i < 2; i++) {
        const mode_result *r = rs[i];
        if (!r || !r->ran)
            continue;
        chess_format_seed(model_s[i] / per_ms, a, sizeof a);
        chess_format_seed(r->measured_s / per_ms, b, sizeof b);
        printf("%-9s %-14s %-14s %-12.3f %.3f%s\n", names[i], a, b, model_s[i], r->measured_s,
               r->interrupted ? "  (interrupted)" : "");
    }
    bool both = sync && async && sync->ran && async->ran && async->measured_s > 0 && model_s[1] > 0;
    if (both)
        printf("%-9s %-14s %s\n", "speed-up",
               (snprintf(a, sizeof a, "%.2fx", model_s[0] / model_s[1]), a),
               (snprintf(b, sizeof b, "%.2fx", sync->measured_s / async->measured_s), b));
    if (async) {
        double v = (p->boards > 1 ? p->switch_min : 0) + p->master_min;
        if (chess_model_master_bound(p))
            printf("async is master-bound: when he is back at a board after the %ld other visits "
                   "(%g min) the reply is waiting (%g min); a round is %ld x %g = %g min\n",
                   p->boards - 1, (double)(p->boards - 1) * v, p->opponent_min, p->boards, v,
                   (double)p->boards * v);
        else
            printf("async is opponent-bound: he is back at a board after %g min but its opponent "
                   "needs %g; a round is %g + %g = %g min\n",
                   (double)(p->boards - 1) * v, p->opponent_min, p->opponent_min, v,
                   p->opponent_min + v);
    }
    /* key=value lines, for scripts */
    printf("boards=%ld\nmoves=%ld\nscale_ms_per_min=%g\nmaster_move_min=%g\nopponent_move_min=%g\n"
           "switch_cost_min=%g\n",
           p->boards, p->moves, cfg->scale_ms, p->master_min, p->opponent_min, p->switch_min);
    long finished = 0, abandoned = 0, failures = 0;
    unsigned long errs = 0;
    bool interrupted = false;
    for (int i = 0; i < 2; i++) {
        const mode_result *r = rs[i];
        if (!r)
            continue;
        printf("%s_model_s=%.6f\n%s_model_min=%.6g\n", names[i], model_s[i], names[i],
               model_s[i] / per_ms);
        if (r->ran)
            printf("%s_measured_s=%.6f\n", names[i], r->measured_s);
        if (i == 0)
            printf("sync_games_sum_s=%.6f\n", r->games_sum_s);
        else
            printf("async_regime=%s\n", chess_model_master_bound(p) ? "master-bound"
                                                                     : "opponent-bound");
        printf("%s_boards_finished=%ld\n%s_boards_abandoned=%ld\n%s_boards_unfinished=%ld\n"
               "%s_moves_played=%ld\n",
               names[i], r->finished, names[i], r->abandoned, names[i],
               p->boards - r->finished - r->abandoned, names[i], r->moves);
        printf("%s_results=1-0:%ld,0-1:%ld,1/2-1/2:%ld,*:%ld\n", names[i],
               r->results[RESULT_WHITE], r->results[RESULT_BLACK], r->results[RESULT_DRAW],
               r->results[RESULT_NONE]);
        if (r->abandoned_list[0])
            printf("%s_abandoned=%s\n", names[i], r->abandoned_list);
        finished += r->finished;
        abandoned += r->abandoned;
        failures += r->opponent_failures;
        errs += r->errors_sent;
        interrupted |= r->interrupted;
    }
    if (both)
        printf("speedup_model=%.4f\nspeedup_measured=%.4f\n", model_s[0] / model_s[1],
               sync->measured_s / async->measured_s);
    printf("boards_finished=%ld\nboards_abandoned=%ld\nerrors_sent=%lu\nopponent_failures=%ld\n"
           "interrupted=%d\n",
           finished, abandoned, errs, failures, interrupted);
    fflush(stdout);
}

/* ---- main --------------------------------------------------------------------------------- */

static int watch_signals(void *arg)
{
    (void)arg;
    static const int both[] = {SIGINT, SIGTERM};
    int sig = simul_wait_signal(both, 2);
    if (sig == -EBUSY)
        sig = simul_wait_signal(both + 1, 1);
    if (sig > 0)
        simul_task_cancel(main_task);
    return 0;
}

typedef struct run_args {
    chess_config *cfg;
    int status;
} run_args;

static int run(void *arg)
{
    run_args *ra = arg;
    chess_config *cfg = ra->cfg;
    main_task = simul_task_current();
    simul_task *watcher = NULL;
    simul_task_spawn(&watcher, watch_signals, NULL, &(simul_task_opts){.name = "signals"});

    if (cfg->opponents_only) {
        char port[16];
        snprintf(port, sizeof port, "%s", cfg->port);
        opponents opp = {.cfg = cfg, .port = port, .first = cfg->first, .count = cfg->count};
        int rc = opponents_task(&opp);
        ra->status = rc == -ECANCELED ? 130 : (rc < 0 || opp.failed) ? 1 : 0;
    } else {
#ifdef CHESS_WEB
        if (!cfg->no_web) {
            web_opts wo = {.host = cfg->web_host, .port = cfg->web_port,
                           .wait_s = cfg->web_wait_s, .linger_s = cfg->web_linger_s};
            if (web_start(cfg, &wo) == 0)
                web_wait_page();
        }
#endif
        mode_result rs = {0}, ra_async = {0};
        bool do_sync = cfg->sync || cfg->compare, do_async = !cfg->sync;
        int rc = 0;
        if (do_sync)
            rc = run_mode(cfg, true, &rs);
        if (rc == 0 && do_async && !rs.interrupted)
            rc = run_mode(cfg, false, &ra_async);
        print_summary(cfg, do_sync ? &rs : NULL, do_async ? &ra_async : NULL);
        long expected = cfg->serve_only ? -1 : cfg->vanish;
        bool ok = rc == 0;
        if (do_sync && ok && expected >= 0 &&
            (rs.abandoned != expected || rs.opponent_failures))
            ok = false;
        if (do_async && ok && expected >= 0 && !rs.interrupted &&
            (ra_async.abandoned != expected || ra_async.opponent_failures))
            ok = false;
        ra->status = rs.interrupted || ra_async.interrupted ? 130 : ok ? 0 : 1;
#ifdef CHESS_WEB
        web_stop(); /* after the lingering, if asked for: a SIGINT then ends only that */
#endif
    }
    if (watcher) {
        simul_scope shield;
        simul_scope_shield(&shield);
        simul_task_cancel(watcher);
        simul_task_join(watcher, NULL);
        simul_scope_end(&shield);
    }
    return 0;
}

int main(int argc, char **argv)
{
    chess_config cfg;
    int rc = parse_args(argc, argv, &cfg);
    if (rc)
        return rc;
    long fds = cfg.opponents_only ? cfg.count
               : cfg.processes || cfg.serve_only ? cfg.p.boards
                                                 : 2 * cfg.p.boards;
    if (ensure_fds(fds + FD_MARGIN) < 0)
        return 1;
    /* Sub-millisecond sleeps: the default 50 us of timer slack would be 10% of a master move. */
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    run_args ra = {.cfg = &cfg, .status = 1};
    rc = simul_run(run, &ra);
    if (rc < 0 && rc != -ECANCELED) {
        fprintf(stderr, "chess_simul: %s\n", simul_strerror(rc));
        return 1;
    }
    return ra.status;
}
