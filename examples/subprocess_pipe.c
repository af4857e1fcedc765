/* subprocess_pipe — runs a command and streams its stdout line by line, each line prefixed, as
 * the lines arrive (not after the child exits); then prints how it ended. Its own exit status
 * mirrors the child's: the exit code, or 128 + N if signal N killed it (as a shell reports it).
 *
 *   subprocess_pipe [--prefix P] -- CMD [ARGS...]
 *
 *   $ subprocess_pipe -- sh -c 'echo a; echo b; exit 3'
 *   [sh] a
 *   [sh] b
 *   exit_status=3
 *
 * The default prefix is the command's name. Ctrl-C (simul_run cancels main) terminates the child
 * and reports it. Exit 127 if the command cannot be run, 2 for a usage error.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "simul.h"

typedef struct job {
    const char *prefix;
    char *const *argv;
    int exit_code;
} job;

static void usage(const char *me)
{
    fprintf(stderr, "usage: %s [--prefix P] -- CMD [ARGS...]\n", me);
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash && slash[1] ? slash + 1 : path;
}

static int run(void *arg)
{
    job *j = arg;
    simul_process_opts o = {
        .argv = (const char *const *)j->argv,
        .stdout_mode = SIMUL_STDIO_PIPE, /* stdin and stderr: inherited */
    };
    simul_process *p;
    int rc = simul_process_exec(&o, &p);
    if (rc < 0) {
        fprintf(stderr, "subprocess_pipe: cannot run '%s': %s\n", j->argv[0], simul_strerror(rc));
        j->exit_code = 127;
        return rc;
    }
    simul_stream *out = simul_process_stdout(p);
    simul_stream_set_limit(out, 1u << 20);
    for (;;) {
        const char *line;
        long n = simul_stream_readline(out, &line);
        if (n == 0)
            break;
        if (n == -EMSGSIZE) { /* dropped by readline; say so rather than stop */
            printf("[%s] <line over 1 MiB skipped>\n", j->prefix);
            continue;
        }
        if (n < 0) {
            rc = (int)n; /* -ECANCELED on Ctrl-C */
            break;
        }
        bool nl = line[n - 1] == '\n';
        printf("[%s] %.*s%s", j->prefix, (int)n, line, nl ? "" : "\n");
        fflush(stdout); /* a line as it comes, also into a pipe */
    }
    int status = 0;
    if (rc < 0) {
        /* Interrupted: stop the child and still report how it ended (shielded from the cancel). */
        simul_scope shield;
        simul_scope_shield(&shield);
        simul_process_terminate(p);
        rc = simul_process_wait(p, &status);
        simul_scope_end(&shield);
    } else {
        rc = simul_process_wait(p, &status);
    }
    simul_process_close(p);
    if (rc < 0) {
        fprintf(stderr, "subprocess_pipe: wait: %s\n", simul_strerror(rc));
        j->exit_code = 1;
        return rc;
    }
    if (status >= 0) {
        printf("exit_status=%d\n", status);
        j->exit_code = status;
    } else {
        const char *name = sigabbrev_np(-status);
        if (name)
            printf("killed_by_signal=SIG%s\n", name);
        else
            printf("killed_by_signal=%d\n", -status);
        j->exit_code = 128 + -status;
    }
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    job j = {.prefix = NULL, .argv = NULL, .exit_code = 1};
    int i = 1;
    for (; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        }
        if (strcmp(argv[i], "--prefix") == 0 && i + 1 < argc) {
            j.prefix = argv[++i];
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(argv[0]);
            return 0;
        } else {
            fprintf(stderr, "subprocess_pipe: unexpected argument '%s' (the command goes after --)\n",
                    argv[i]);
            usage(argv[0]);
            return 2;
        }
    }
    if (i >= argc || strcmp(argv[i - 1], "--") != 0) {
        fprintf(stderr, "subprocess_pipe: no command given\n");
        usage(argv[0]);
        return 2;
    }
    j.argv = argv + i;
    if (!j.prefix)
        j.prefix = base_name(argv[i]);
    simul_run(run, &j);
    return j.exit_code;
}
