/* hello.c — the founding talk's first example: N tasks each print Hello, sleep, print World.
 * Run together on one thread they take about S seconds, not N * S: while one task sleeps the
 * loop runs the others, like a chess master moving on every board while the opponents think.
 *
 *   hello [--tasks N] [--seconds S] [--sync]
 *
 * The Python it mirrors:
 *     async def hello():
 *         print('Hello'); await asyncio.sleep(3); print('World')
 *     async def mainloop():
 *         await asyncio.gather(*[hello() for _ in range(3)])
 */
#include <simul.h>

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "example_cli.h"

/* Tasks spawned between two yields of the main task: small enough that spawning never holds
 * the loop for long, big enough that the yields cost nothing. */
enum { SPAWN_BATCH = 1024 };

/* Big enough that 100,000 tasks (1.2 MB of output) cost a few dozen write(2) calls. */
enum { STDOUT_BUFFER_BYTES = 64 * 1024 };

/* The longest sleep accepted: a day is plenty for a demo and keeps nanosleep's time_t safe. */
#define MAX_SECONDS 86400.0

struct options {
    size_t tasks;
    double seconds;
    bool sync;
};

/* What the main task shares with main(): the options, and whether the main task ran at all
 * (simul_run returns main's result or its own error with no way to tell them apart). */
struct run {
    const struct options *opt;
    bool main_started;
};

static const char *progname = "hello";

/* ---------------------------------------------------------------------------------------------
 * Command line
 * ------------------------------------------------------------------------------------------- */

static void print_usage(FILE *out)
{
    fprintf(out,
            "usage: %s [--tasks N] [--seconds S] [--sync]\n"
            "  --tasks N     how many tasks say Hello and World (N >= 1, default 3)\n"
            "  --seconds S   how long each task sleeps between them (0 <= S <= %g, default 1)\n"
            "  --sync        run the tasks one after the other with a blocking sleep\n",
            progname, MAX_SECONDS);
}

static struct options parse_options(int argc, char **argv)
{
    struct options opt = {.tasks = 3, .seconds = 1.0, .sync = false};
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *val;
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            print_usage(stdout);
            exit(EXIT_SUCCESS);
        } else if (strcmp(arg, "--sync") == 0) {
            opt.sync = true;
        } else if ((val = option_value(arg, "--tasks", &i, argc, argv)) != NULL) {
            if (!parse_count(val, &opt.tasks) || opt.tasks == 0)
                usage_error("--tasks wants a whole number of at least 1, not '%s'", val);
        } else if ((val = option_value(arg, "--seconds", &i, argc, argv)) != NULL) {
            if (!parse_number(val, 0, MAX_SECONDS, &opt.seconds))
                usage_error("--seconds wants a number from 0 to %g, not '%s'", MAX_SECONDS, val);
        } else {
            usage_error("unknown argument '%s'", arg);
        }
    }
    return opt;
}

/* ---------------------------------------------------------------------------------------------
 * Output and time
 * ------------------------------------------------------------------------------------------- */

/* Writes one line to the (fully buffered) stdout. Returns 0 or a negative errno, read at once:
 * no suspension comes between the failed call and the read, so no other task touched errno. */
static int say(const char *word)
{
    char line[16];
    int len = snprintf(line, sizeof line, "%s\n", word);
    if (len < 0 || (size_t)len >= sizeof line)
        return -EINVAL;
    errno = 0;
    if (fwrite(line, 1, (size_t)len, stdout) != (size_t)len)
        return errno != 0 ? -errno : -EIO;
    return 0;
}

static int flush_stdout(void)
{
    errno = 0;
    if (fflush(stdout) != 0)
        return errno != 0 ? -errno : -EIO;
    return 0;
}

static double monotonic_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* cannot fail for CLOCK_MONOTONIC and a valid ts */
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---------------------------------------------------------------------------------------------
 * The blocking version: the whole thread waits in each sleep, so N tasks take N * S seconds.
 * ------------------------------------------------------------------------------------------- */

static int blocking_sleep(double seconds)
{
    struct timespec left = {.tv_sec = (time_t)seconds};
    left.tv_nsec = (long)((seconds - (double)left.tv_sec) * 1e9);
    /* A signal handler (e.g. SIGWINCH, SIGCONT after ^Z) must not cut the sleep short. */
    while (nanosleep(&left, &left) != 0) {
        if (errno != EINTR)
            return -errno;
    }
    return 0;
}

static int run_sync(const struct options *opt)
{
    for (size_t i = 0; i < opt->tasks; i++) {
        int rc = say("Hello");
        /* Flush before blocking, so someone watching sees Hello during the pause. */
        if (rc == 0)
            rc = flush_stdout();
        if (rc == 0)
            rc = blocking_sleep(opt->seconds);
        if (rc == 0)
            rc = say("World");
        if (rc < 0) {
            fprintf(stderr, "%s: task %zu: %s\n", progname, i, simul_strerror(rc));
            return rc;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * The simul version: while one task sleeps the loop runs the others, so N tasks take S seconds.
 * ------------------------------------------------------------------------------------------- */

/* One task: the seed's hello(). The result is 0 or the first error (a negative errno), which
 * simul_gather reports per task. */
static int hello_task(void *arg)
{
    const struct options *opt = arg;
    int rc = say("Hello");
    if (rc < 0)
        return rc;
    rc = simul_sleep(opt->seconds);
    if (rc < 0)
        return rc;
    return say("World");
}

/* Stops the tasks spawned before a failure and releases their handles. A task that has not
 * started yet still runs its first step (simul guarantees a spawned function runs) and then
 * its sleep returns -ECANCELED; gather joins them all. */
static void cancel_and_reap(simul_task **tasks, size_t n)
{
    for (size_t i = 0; i < n; i++)
        simul_task_cancel(tasks[i]); /* only fails for a bad handle, and these are good */
    int rc = simul_gather(tasks, n, NULL);
    if (rc < 0)
        fprintf(stderr, "%s: gather after a failure: %s\n", progname, simul_strerror(rc));
}

/* Lets the tasks spawned so far run (each prints Hello and starts its sleep), then flushes
 * stdout so the Hellos show during the pause rather than at exit. Returns 0 or an error. */
static int let_them_start(void)
{
    int rc = simul_yield(); /* every other ready task runs once before this returns */
    return rc < 0 ? rc : flush_stdout();
}

/* Spawns task number i, named so that SIMUL_DEBUG=1 reports can say which one. */
static int spawn_one(const struct options *opt, size_t i, simul_task **out)
{
    char name[32];
    snprintf(name, sizeof name, "hello-%zu", i);
    simul_task_opts topts = {.name = name}; /* the name is copied */
    /* opt is borrowed by every task: it lives in main(), which outlives the loop. */
    return simul_task_spawn(out, hello_task, (void *)opt, &topts);
}

/* Spawns the tasks, yielding after each batch: spawning 100,000 tasks without a pause would
 * hold the loop for a noticeable time (debug mode warns about it), the very problem the seed
 * solves with `await asyncio.sleep(0)`. On failure cancels and reaps the tasks already
 * spawned. Returns 0 or the error. */
static int spawn_all(const struct options *opt, simul_task **tasks)
{
    size_t spawned = 0;
    int rc = 0;
    while (rc == 0 && spawned < opt->tasks) {
        rc = spawn_one(opt, spawned, &tasks[spawned]);
        if (rc == 0 && (++spawned % SPAWN_BATCH == 0 || spawned == opt->tasks))
            rc = let_them_start();
    }
    if (rc < 0) {
        fprintf(stderr, "%s: after spawning %zu of %zu tasks: %s\n", progname, spawned, opt->tasks,
                simul_strerror(rc));
        cancel_and_reap(tasks, spawned);
    }
    return rc;
}

/* Waits for every task (the seed's gather) and reports the first that failed.
 * Returns 0, or the first task's error. */
static int gather_all(const struct options *opt, simul_task **tasks, int *results)
{
    int failed = simul_gather(tasks, opt->tasks, results);
    if (failed < 0) {
        fprintf(stderr, "%s: gather: %s\n", progname, simul_strerror(failed));
        return failed;
    }
    if (failed == 0)
        return 0;
    for (size_t i = 0; i < opt->tasks; i++) {
        if (results[i] < 0) {
            fprintf(stderr, "%s: %d of %zu tasks failed; task %zu: %s\n", progname, failed,
                    opt->tasks, i, simul_strerror(results[i]));
            return results[i];
        }
    }
    return -EIO; /* unreachable: gather counted a failure, so some result is negative */
}

/* The main task, the seed's mainloop(): spawn every hello, then gather them. */
static int main_task(void *arg)
{
    struct run *run = arg;
    const struct options *opt = run->opt;
    run->main_started = true;

    simul_task **tasks = calloc(opt->tasks, sizeof *tasks);
    int *results = calloc(opt->tasks, sizeof *results);
    int rc = -ENOMEM;
    if (tasks == NULL || results == NULL) {
        fprintf(stderr, "%s: no memory for %zu tasks\n", progname, opt->tasks);
        goto out;
    }
    rc = spawn_all(opt, tasks);
    if (rc == 0)
        rc = gather_all(opt, tasks, results);
out:
    free(results);
    free(tasks);
    return rc;
}

static int run_async(const struct options *opt)
{
    struct run run = {.opt = opt, .main_started = false};
    int rc = simul_run(main_task, &run);
    if (rc < 0 && !run.main_started)
        fprintf(stderr, "%s: cannot start the loop: %s\n", progname, simul_strerror(rc));
    return rc;
}

int main(int argc, char **argv)
{
    if (argc > 0 && argv[0] != NULL && argv[0][0] != '\0') {
        const char *slash = strrchr(argv[0], '/');
        progname = slash != NULL ? slash + 1 : argv[0];
    }
    struct options opt = parse_options(argc, argv);

    /* stdout is line-buffered on a terminal: 200,000 lines would be 200,000 write(2) calls.
     * Buffer fully and flush where a person watching needs to see progress. */
    if (setvbuf(stdout, NULL, _IOFBF, STDOUT_BUFFER_BYTES) != 0)
        fprintf(stderr, "%s: cannot enlarge stdout's buffer; output may be slow\n", progname);

    double start = monotonic_seconds();
    int rc = opt.sync ? run_sync(&opt) : run_async(&opt);
    /* The Worlds still sit in the buffer; a full disk or closed pipe shows up only here. */
    if (rc == 0 && (rc = flush_stdout()) < 0)
        fprintf(stderr, "%s: writing stdout: %s\n", progname, simul_strerror(rc));
    double elapsed = monotonic_seconds() - start;

    fprintf(stderr, "tasks=%zu seconds=%g elapsed=%.3f mode=%s\n", opt.tasks, opt.seconds, elapsed,
            opt.sync ? "sync" : "async");
    return rc < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
