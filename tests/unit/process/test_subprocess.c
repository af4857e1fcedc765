/* test_subprocess.c — child processes: pipes both ways (small, several MB through communicate),
 * stderr separate / merged / /dev/null / inherited / a caller's fd, env and cwd, exec errors
 * (-ENOENT, -EACCES, nothing left behind) and the shell's 127, every exit code and death by
 * signal, a clean signal state and no leaked fd in the child, broken pipes both ways, waits and
 * communicate interrupted by cancellation and deadlines, a thousand children in a row, a hundred
 * at once, freed handles reaped by the reaper thread after the loop closed; pass_fds (same
 * numbers, the parent's flags untouched, every other fd closed), sessions and process groups
 * (a group kill reaches a shell's grandchild, also after the shell exited; a second child joins
 * the first one's group) and a umask set in the child only. Every case checks afterwards that
 * no fd and no child (zombie or not) is left.
 * test_subprocess_fallback.c runs the same cases with SIMUL_NO_PIDFD=1 (the SIGCHLD path).
 */
#include <dirent.h>
#include <malloc.h>
#include <signal.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "test_main_helpers.h"

/* Test hooks of src/io/subprocess.c. */
int simul__process_test_watch(const simul_process *p);
size_t simul__process_test_orphans(void);

/* ---- leak checks ------------------------------------------------------------------------------ */

/* This process's children (any thread's), and how many of them are zombies. Reads /proc, so it
 * reaps nothing (waitpid(-1) would steal the reaper's children). */
static int children(int *zombies)
{
    DIR *d = opendir("/proc");
    assert_non_null(d);
    int n = 0, z = 0;
    pid_t me = getpid();
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char path[300], buf[512];
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "re");
        if (!f)
            continue;
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = '\0';
        char *rp = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
        char state;
        int ppid;
        if (!rp || sscanf(rp + 1, " %c %d", &state, &ppid) != 2)
            continue;
        if (ppid == me) {
            n++;
            z += state == 'Z';
        }
    }
    closedir(d);
    if (zombies)
        *zombies = z;
    return n;
}

/* Waits (generously: the machine is shared) until the fds and children are back to before. */
static void check_clean(int fds_before)
{
    double end = test_clock() + 20.0;
    int kids, zombies, fds;
    for (;;) {
        kids = children(&zombies);
        fds = test_fd_count();
        if (kids == 0 && fds == fds_before)
            break;
        if (test_clock() > end)
            fail_msg("left behind: %d children (%d zombies), %d fds (before: %d)", kids, zombies,
                     fds, fds_before);
        nanosleep(&(struct timespec){0, 5000000}, NULL);
    }
    errno = 0;
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
}

/* A SIMUL_TASK_TEST with the fd and child checks around it. */
#define SUB_TEST(name)                                                                             \
    static int name##_task(void *arg);                                                             \
    static void name(void **state)                                                                 \
    {                                                                                              \
        (void)state;                                                                               \
        int fds = test_fd_count();                                                                      \
        assert_int_equal(simul_test_run(name##_task, NULL), 0);                                    \
        check_clean(fds);                                                                          \
    }                                                                                              \
    static int name##_task(void *arg)

/* ---- helpers ---------------------------------------------------------------------------------- */

static bool fallback_forced(void)
{
    const char *e = getenv("SIMUL_NO_PIDFD");
    return e && strcmp(e, "1") == 0;
}

static bool pidfd_works(void)
{
#ifdef SYS_pidfd_open
    int fd = (int)syscall(SYS_pidfd_open, getpid(), 0);
    if (fd >= 0) {
        close(fd);
        return true;
    }
#endif
    return false;
}

/* Starts argv with the given stdio modes. */
static simul_process *start(const char *const *argv, int in, int out, int err)
{
    simul_process_opts o = {.argv = argv, .stdin_mode = in, .stdout_mode = out, .stderr_mode = err};
    simul_process *p = NULL;
    int rc = simul_process_exec(&o, &p);
    if (rc < 0)
        fail_msg("exec %s: %s", argv[0], simul_strerror(rc));
    assert_non_null(p);
    return p;
}

static simul_process *start_shell(const char *cmd, int in, int out, int err)
{
    simul_process_opts o = {.stdin_mode = in, .stdout_mode = out, .stderr_mode = err};
    simul_process *p = NULL;
    assert_int_equal(simul_process_shell(cmd, &o, &p), 0);
    return p;
}

/* Reads s to EOF into buf (NUL-terminated); returns the length. */
static size_t read_all(simul_stream *s, char *buf, size_t cap)
{
    size_t len = 0;
    for (;;) {
        assert_true(len < cap - 1);
        long n = simul_stream_read(s, buf + len, cap - 1 - len);
        assert_true(n >= 0);
        if (n == 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    return len;
}

static void never_called(int sig, void *arg)
{
    (void)sig;
    (void)arg;
    abort();
}

static int wait_status(simul_process *p)
{
    int st = INT_MIN;
    assert_int_equal(simul_process_wait(p, &st), 0);
    return st;
}

/* ---- pipes ------------------------------------------------------------------------------------ */

SUB_TEST(echo_through_stdout_pipe)
{
    (void)arg;
    const char *argv[] = {"echo", "hello", "world", NULL};
    simul_process *p = start(argv, SIMUL_STDIO_INHERIT, SIMUL_STDIO_PIPE, SIMUL_STDIO_INHERIT);
    assert_null(simul_process_stdin(p));
    assert_null(simul_process_stderr(p));
    assert_true(simul_process_pid(p) > 0);
    const char *line;
    assert_int_equal(simul_stream_readline(simul_process_stdout(p), &line), 12);
    assert_memory_equal(line, "hello world\n", 12);
    assert_int_equal(simul_stream_readline(simul_process_stdout(p), &line), 0);
    assert_int_equal(wait_status(p), 0);
    int st;
    assert_int_equal(simul_process_returncode(p, &st), 0);
    assert_int_equal(st, 0);
    /* Its watch is the one asked for: a pidfd unless the fallback is forced (or impossible). */
    simul_process_close(p);
    return 0;
}

SUB_TEST(watch_uses_pidfd_or_forced_fallback)
{
    (void)arg;
    const char *argv[] = {"sleep", "10", NULL};
    simul_process *p = start(argv, SIMUL_STDIO_INHERIT, SIMUL_STDIO_INHERIT, SIMUL_STDIO_INHERIT);
    int expect = fallback_forced() || !pidfd_works() ? 0 : 1;
    assert_int_equal(simul__process_test_watch(p), expect);
    assert_int_equal(simul_process_kill(p), 0);
    assert_int_equal(wait_status(p), -SIGKILL);
    assert_int_equal(simul__process_test_watch(p), -1);
    simul_process_close(p);
    return 0;
}

SUB_TEST(cat_round_trip_stdin_to_stdout)
{
    (void)arg;
    const char *argv[] = {"cat", NULL};
    simul_process *p = start(argv, SIMUL_STDIO_PIPE, SIMUL_STDIO_PIPE, SIMUL_STDIO_INHERIT);
    simul_stream *in = simul_process_stdin(p), *out = simul_process_stdout(p);
    assert_non_null(in);
    assert_non_null(out);
    for (int i = 0; i < 100; i++) {
        char msg[32];
        int n = snprintf(msg, sizeof msg, "line %d\n", i);
        assert_int_equal(simul_stream_write(in, msg, (size_t)n), 0);
        assert_int_equal(simul_stream_drain(in), 0);
        const char *line;
        assert_int_equal(simul_stream_readline(out, &line), n); /* echoed before the next one */
        assert_memory_equal(line, msg, (size_t)n);
    }
    assert_int_equal(simul_stream_close(in), 0); /* EOF for cat */
    assert_null(simul_process_stdin(p));         /* the handle knows */
    const char *line;
    assert_int_equal(simul_stream_readline(out, &line), 0);
    assert_int_equal(wait_status(p), 0);
    simul_process_close(p);
    return 0;
}

static void fill_pattern(char *buf, size_t n)
{
    uint32_t x = 12345;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (char)(x >> 16);
    }
}

SUB_TEST(communicate_several_mb_through_cat)
{
    (void)arg;
    size_t n = 8u << 20; /* far beyond both pipes' buffers: needs concurrent write and read */
    char *data = malloc(n);
    assert_non_null(data);
    fill_pattern(data, n);
    const char *argv[] = {"cat", NULL};
    simul_process *p = start(argv, SIMUL_STDIO_PIPE, SIMUL_STDIO_PIPE, SIMUL_STDIO_PIPE);
    simul_process_output out;
    int st = INT_MIN;
    assert_int_equal(simul_process_communicate(p, data, n, 0, &out, &st), 0);
    assert_int_equal(st, 0);
    assert_int_equal(out.out_len, n);
    assert_memory_equal(out.out, data, n);
    assert_non_null(out.err);
    assert_int_equal(out.err_len, 0);
    assert_string_equal(out.err, "");
    /* communicate closed the pipes */
    assert_null(simul_process_stdin(p));
    assert_null(simul_process_stdout(p));
    assert_null(simul_process_stderr(p));
    simul_process_output_free(&out);
    free(data);
    simul_process_close(p);
    return 0;
}

SUB_TEST(communicate_large_output_both_pipes_no_deadlock)
{
    (void)arg;
    /* 4 MB on each pipe, written alternately: reading one pipe to its end first would block. */
    simul_process *p = start_shell("i=0; while [ $i -lt 64 ]; do head -c 65536 /dev/zero; "
                                   "head -c 65536 /dev/zero >&2; i=$((i+1)); done",
                                   SIMUL_STDIO_DEVNULL, SIMUL_STDIO_PIPE, SIMUL_STDIO_PIPE);
    simul_process_output out;
    int st = INT_MIN;
    assert_int_equal(simul_process_communicate(p, NULL, 0, 0, &out, &st), 0);
    assert_int_equal(st, 0);
    assert_int_equal(out.out_len, 4u << 20);
    assert_int_equal(out.err_len, 4u << 20);
    simul_process_output_free(&out);
    simul_process_close(p);
    return 0;
}

SUB_TEST(communicate_discards_output_when_out_is_null)
{
    (void)arg;
    simul_process *p = start_shell("head -c 1000000 /dev/zero; exit 4", SIMUL_STDIO_INHERIT,
                                   SIMUL_STDIO_PIPE, SIMUL_STDIO_INHERIT);
    int st = INT_MIN;
    assert_int_equal(simul_process_communicate(p, NULL, 0, 0, NULL, &st), 0);
    assert_int_equal(st, 4);
    simul_process_close(p);
    return 0;
}

SUB_TEST(stderr_separate_and_merged)
{
    (void)arg;
    const char *cmd = "echo out; echo err >&2; exit 5";
    simul_process *p = start_shell(cmd, SIMUL_STDIO_INHERIT, SIMUL_STDIO_PIPE, SIMUL_STDIO_PIPE);
    simul_process_output out;
    int st = INT_MIN;
    assert_int_equal(simul_process_communicate(p, NULL, 0, 0, &out, &st), 0);
    assert_int_equal(st, 5);
    assert_string_equal(out.out, "out\n");
    assert_string_equal(out.err, "err\n");
    simul_process_output_free(&out);
    simul_process_close(p);

    p = start_shell(cmd, SIMUL_STDIO_INHERIT, SIMUL_STDIO_PIPE, SIMUL_STDIO_STDOUT);
    assert_null(simul_process_stderr(p));
    assert_int_equal(simul_process_communicate(p, NULL, 0, 0, &out, &st), 0);
    assert_int_equal(st, 5);
    assert_string_equal(out.out, "out\nerr\n");
    assert_null(out.err);
    simul_process_output_free(&out);
    simul_process_close(p);
    return 0;
}

SUB_TEST(devnull_stdin_and_stdout)
{
    (void)arg;
    const char *cat[] = {"cat", NULL};
    simul_process *p = start(cat, SIMUL_STDIO_DEVNULL, SIMUL_STDIO_PIPE, SIMUL_STDIO_INHERIT);
    simul_process_output out;
    int st = INT_MIN;
    assert_int_equal(simul_process_communicate(p, NULL, 0, 0, &out, &st), 0);
    assert_int_equal(st, 0);
    assert_int_equal(out.out_len, 0); /* EOF at once */
    simul_process_output_free(&out);
    simul_process_close(p);

    p = start_shell("echo dropped; echo kept >&2", SIMUL_STDIO_DEVNULL, SIMUL_STDIO_DEVNULL,
                    SIMUL_STDIO_PIPE);
    assert_null(simul_process_stdout(p));
    assert_int_equal(simul_process_communicate(p, NULL, 0, 0, &out, &st), 0);
    assert_null(out.out);
    assert_string_equal(out.err, "kept\n");
    simul_process_output_free(&out);
    simul_process_close(p);
    return 0;
}

SUB_TEST(inherited_stdin_and_caller_fd_stdout)
{
    (void)arg;
    /* Inherit: our own fd 0 is a pipe for the time of the test. */
    int pin[2];
    assert_int_equal(pipe(pin), 0);
    int saved0 = dup(0);
    assert_true(saved0 >= 0);
    assert_int_equal(dup2(pin[0], 0), 0);
    close(pin[0]);
    assert_int_equal(write(pin[1], "inherited\n", 10), 10);
    close(pin[1]);
    const char *cat[] = {"cat", NULL};
    simul_process *p = start(cat, SIMUL_STDIO_INHERIT, SIMUL_STDIO_PIPE, SIMUL_STDIO_INHERIT);
    assert_int_equal(dup2(saved0, 0), 0); /* the child has its copy */
    close(saved0);
    char buf[64];
    assert_int_equal(read_all(simul_process_stdout(p), buf, sizeof buf), 10);
    assert_string_equal(buf, "inherited\n");
    assert_int_equal(wait_status(p), 0);
    simul_process_close(p);

    /* A caller's fd: a temp file as stdout; it stays the caller's, open. */
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    simul_process_opts o = {.stdout_mode = SIMUL_STDIO_FD, .stdout_fd = fileno(tmp)};
    assert_int_equal(simul_process_shell("echo to-file", &o, &p), 0);
    assert_int_equal(wait_status(p), 0);
    simul_process_close(p);
    assert_true(fcntl(fileno(tmp), F_GETFD) >= 0);
    assert_int_equal(pread(fileno(tmp), buf, sizeof buf, 0), 8);
    assert_memory_equal(buf, "to-file\n", 8);
    fclose(tmp);

    /* A caller's fd below 3 that another stdio is redirected over: stdout -> our fd 0's file,
     * with stdin (fd 0 in the child) a pipe. */
    int saved = dup(0);
    FILE *t2 = tmpfile();
    assert_non_null(t2);
    assert_int_equal(dup2(fileno(t2), 0), 0);
    simul_process_opts o2 = {.stdin_mode = SIMUL_STDIO_PIPE,
                             .stdout_mode = SIMUL_STDIO_FD,
                             .stdout_fd = 0};
    assert_int_equal(simul_process_shell("cat", &o2, &p), 0);
    assert_int_equal(simul_stream_write(simul_process_stdin(p), "via-fd0\n", 8), 0);
    assert_int_equal(simul_stream_close(simul_process_stdin(p)), 0);
    assert_int_equal(wait_status(p), 0);
    simul_process_close(p);
    assert_int_equal(dup2(saved, 0), 0);
    close(saved);
    assert_int_equal(pread(fileno(t2), buf, sizeof buf, 0), 8);
    assert_memory_equal(buf, "via-fd0\n", 8);
    fclose(t2);
    return 0;
}

SUB_TEST(env_and_cwd)
{
    (void)arg;
    char dir[] = "/tmp/simul-sub-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char real[PATH_MAX];
    assert_non_null(realpath(dir, real));
    const char *env[] = {"FOO=bar baz", "PATH=/usr/bin:/bin", NULL};
    /* "sh" without '/': found in env's PATH */
    const char *argv[] = {"sh", "-c", "echo \"$FOO\"; echo \"${HOME-unset}\"; pwd", NULL};
    simul_process_opts o = {
        .argv = argv, .env = env, .cwd = dir, .stdout_mode = SIMUL_STDIO_PIPE};
    simul_process *p;
    assert_int_equal(simul_process_exec(&o, &p), 0);
    char buf[PATH_MAX + 64], want[PATH_MAX + 64];
    read_all(simul_process_stdout(p), buf, sizeof buf);
    snprintf(want, sizeof want, "bar baz\nunset\n%s\n", real);
    assert_string_equal(buf, want);
    assert_int_equal(wait_status(p), 0);
    simul_process_close(p);

    /* An env without PATH: the default path still finds sh. */
    const char *bare[] = {"X=1", NULL};
    const char *argv2[] = {"sh", "-c", "echo $X", NULL};
    simul_process_opts o2 = {.argv = argv2, .env = bare, .stdout_mode = SIMUL_STDIO_PIPE};
    assert_int_equal(simul_process_exec(&o2, &p), 0);
    read_all(simul_process_stdout(p), buf, sizeof buf);
    assert_string_equal(buf, "1\n");
    assert_int_equal(wait_status(p), 0);
    simul_process_close(p);

    /* An empty env and the shell variant. */
    const char *none[] = {NULL};
    simul_process_opts o3 = {.env = none, .stdout_mode = SIMUL_STDIO_PIPE};
    assert_int_equal(simul_process_shell("echo \"[${FOO-}]\"", &o3, &p), 0);
    read_all(simul_process_stdout(p), buf, sizeof buf);
    assert_string_equal(buf, "[]\n");
    assert_int_equal(wait_status(p), 0);
    simul_process_close(p);
    assert_int_equal(rmdir(dir), 0);
    return 0;
}

/* ---- errors ----------------------------------------------------------------------------------- */

SUB_TEST(exec_errors_leave_nothing_behind)
{
    (void)arg;
    int fds = test_fd_count();
    simul_process *p = (simul_process *)0x1;
    const char *nf[] = {"simul-no-such-program-xyz", NULL};
    simul_process_opts o = {.argv = nf,
                            .stdin_mode = SIMUL_STDIO_PIPE,
                            .stdout_mode = SIMUL_STDIO_PIPE,
                            .stderr_mode = SIMUL_STDIO_PIPE};
    assert_int_equal(simul_process_exec(&o, &p), -ENOENT);
    assert_null(p);
    const char *abs[] = {"/nonexistent/dir/prog", NULL};
    o.argv = abs;
    assert_int_equal(simul_process_exec(&o, &p), -ENOENT);

    /* Not executable: -EACCES, by path and through PATH (env's). */
    char dir[] = "/tmp/simul-sub-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char file[PATH_MAX];
    snprintf(file, sizeof file, "%s/noexec", dir);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fputs("#!/bin/sh\necho hi\n", f);
    fclose(f);
    assert_int_equal(chmod(file, 0644), 0);
    const char *ne[] = {file, NULL};
    o.argv = ne;
    assert_int_equal(simul_process_exec(&o, &p), -EACCES);
    char pathvar[PATH_MAX + 8];
    snprintf(pathvar, sizeof pathvar, "PATH=%s", dir);
    const char *env[] = {pathvar, NULL};
    const char *byname[] = {"noexec", NULL};
    o.argv = byname;
    o.env = env;
    assert_int_equal(simul_process_exec(&o, &p), -EACCES);
    const char *missing[] = {"simul-no-such-program-xyz", NULL};
    o.argv = missing;
    assert_int_equal(simul_process_exec(&o, &p), -ENOENT);
    o.env = NULL;

    /* A cwd that does not exist. */
    const char *tr[] = {"true", NULL};
    o.argv = tr;
    o.cwd = "/nonexistent/dir";
    assert_int_equal(simul_process_exec(&o, &p), -ENOENT);
    assert_int_equal(unlink(file), 0);
    assert_int_equal(rmdir(dir), 0);
    assert_int_equal(test_fd_count(), fds);
    assert_int_equal(children(NULL), 0);

    /* The shell finds nothing: that is the shell's 127, not an error of the call. */
    simul_process *sh = start_shell("simul-no-such-program-xyz 2>/dev/null", SIMUL_STDIO_INHERIT,
                                    SIMUL_STDIO_INHERIT, SIMUL_STDIO_INHERIT);
    assert_int_equal(wait_status(sh), 127);
    simul_process_close(sh);
    return 0;
}

SUB_TEST(bad_arguments)
{
    (void)arg;
    simul_process *p = NULL;
    const char *tr[] = {"true", NULL};
    const char *empty[] = {NULL};
    assert_int_equal(simul_process_exec(NULL, &p), -EINVAL);
    simul_process_opts o = {.argv = tr};
    assert_int_equal(simul_process_exec(&o, NULL), -EINVAL);
    o.argv = NULL;
    assert_int_equal(simul_process_exec(&o, &p), -EINVAL);
    o.argv = empty;
    assert_int_equal(simul_process_exec(&o, &p), -EINVAL);
    o.argv = tr;
    o.stdin_mode = SIMUL_STDIO_STDOUT; /* stderr only */
    assert_int_equal(simul_process_exec(&o, &p), -EINVAL);
    o.stdin_mode = 99;
    assert_int_equal(simul_process_exec(&o, &p), -EINVAL);
    o.stdin_mode = SIMUL_STDIO_FD;
    o.stdin_fd = -1;
    assert_int_equal(simul_process_exec(&o, &p), -EBADF);
    o.stdin_fd = 1000; /* not open */
    assert_int_equal(simul_process_exec(&o, &p), -EBADF);
    o.stdin_mode = 0;
    o.flags = 0x100;
    assert_int_equal(simul_process_exec(&o, &p), -EINVAL);
    o.flags = 0;
    assert_int_equal(simul_process_shell("true", &o, &p), -EINVAL); /* argv with shell */
    assert_int_equal(simul_process_shell(NULL, NULL, &p), -EINVAL);
    assert_null(p);
    assert_int_equal(simul_process_wait(NULL, NULL), -EINVAL);
    assert_int_equal(simul_process_returncode(NULL, NULL), -EINVAL);
    assert_int_equal(simul_process_send_signal(NULL, SIGTERM), -EINVAL);
    assert_int_equal(simul_process_communicate(NULL, NULL, 0, 0, NULL, NULL), -EINVAL);
    assert_null(simul_process_stdout(NULL));
    simul_process_close(NULL);
    simul_process_output_free(NULL);

    /* input without a stdin pipe, a bad signal number */
    assert_int_equal(simul_process_exec(&o, &p), 0);
    assert_int_equal(simul_process_communicate(p, "x", 1, 0, NULL, NULL), -EINVAL);
    assert_int_equal(simul_process_send_signal(p, -1), -EINVAL);
    assert_int_equal(simul_process_send_signal(p, 100000), -EINVAL);
    assert_int_equal(wait_status(p), 0);
    simul_process_close(p);
    return 0;
}

static void no_loop_and_no_task(void **state)
{
    (void)state;
    int fds = test_fd_count();
    const char *tr[] = {"true", NULL};
    simul_process_opts o = {.argv = tr};
    simul_process *p = NULL;
    assert_int_equal(simul_process_exec(&o, &p), -ENXIO); /* no loop on this thread */
    simul_loop *loop;
    assert_int_equal(simul_loop_new(&loop), 0);
    assert_int_equal(simul_process_exec(&o, &p), 0); /* works outside a task */
    assert_int_equal(simul_process_wait(p, NULL), -EPERM);
    assert_int_equal(simul_process_communicate(p, NULL, 0, 0, NULL, NULL), -EPERM);
    /* An open handle keeps the loop from closing. */
    assert_int_equal(simul_loop_close(loop), -EBUSY);
    simul_process_close(p);
    assert_int_equal(simul_loop_close(loop), 0);
    check_clean(fds);
}

/* ---- exit statuses and signals ---------------------------------------------------------------- */

SUB_TEST(every_exit_code)
{
    (void)arg;
    for (int code = 0; code <= 255; code++) {
        char cmd[32];
        snprintf(cmd, sizeof cmd, "exit %d", code);
        simul_process *p =
            start_shell(cmd, SIMUL_STDIO_INHERIT, SIMUL_STDIO_INHERIT, SIMUL_STDIO_INHERIT);
        assert_int_equal(wait_status(p), code);
        simul_process_close(p);
    }
    return 0;
}

#ifndef SUBPROCESS_NO_MAIN
/* With SIGCHLD ignored the kernel reaps the child itself: its status is the process layer's one
 * "unknown" value, 255 (asyncio's). Through a pidfd only: the SIGCHLD fallback installs its own
 * handler, so the child is then reaped by the loop as usual. */
SUB_TEST(child_reaped_by_the_kernel_reports_255)
{
    (void)arg;
    if (fallback_forced() || !pidfd_works())
        return 0;
    struct sigaction ign = {.sa_handler = SIG_IGN}, old;
    sigemptyset(&ign.sa_mask);
    assert_int_equal(sigaction(SIGCHLD, &ign, &old), 0);
    simul_process *p =
        start_shell("exit 3", SIMUL_STDIO_INHERIT, SIMUL_STDIO_INHERIT, SIMUL_STDIO_INHERIT);
    assert_int_equal(wait_status(p), 255);
    assert_int_equal(simul_process_kill(p), -ESRCH);
    simul_process_close(p);
    assert_int_equal(sigaction(SIGCHLD, &old, NULL), 0);
    return 0;
}
#endif

SUB_TEST(killed_by_signal_and_terminate)
{
    (void)arg;
    const char *argv[] = {"sleep", "100", NULL};
    simul_process *p = start(argv, SIMUL_STDIO_INHERIT, SIMUL_STDIO_INHERIT, SIMUL_STDIO_INHERIT);
    assert_int_equal(simul_process_returncode(p, NULL), -EAGAIN);
    assert_int_equal(simul_process_send_signal(p, 0), 0); /* exists */
    assert_int_equal(simul_process_kill(p), 0);
    assert_int_equal(wait_status(p), -SIGKILL);
    assert_int_equal(simul_process_kill(p), -ESRCH); /* reaped: never signalled again */
    assert_int_equal(wait_status(p), -SIGKILL);      /* waiting again is fine */
    simul_process_close(p);

    p = start(argv, SIMUL_STDIO_INHERIT, SIMUL_STDIO_INHERIT, SIMUL_STDIO_INHERIT);
    assert_int_equal(simul_process_terminate(p), 0);
    assert_int_equal(wait_status(p), -SIGTERM);
    simul_process_close(p);

    p = start_shell("kill -USR1 $$", SIMUL_STDIO_INHERIT, SIMUL_STDIO_INHERIT,
                    SIMUL_STDIO_INHERIT);
    assert_int_equal(wait_status(p), -SIGUSR1);
    simul_process_close(p);
    return 0;
}

SUB_TEST(child_starts_with_default_signals_and_empty_mask)
{
    (void)arg;
    /* This process ignores some signals, handles one and blocks others; the child sees none of
     * it. grep reads its own /proc status. */
    struct sigaction ign = {.sa_handler = SIG_IGN}, old_pipe, old_hup;
    sigaction(SIGPIPE, &ign, &old_pipe);
    sigaction(SIGHUP, &ign, &old_hup);
    assert_int_equal(simul_add_signal_handler(SIGUSR2, never_called, NULL),
                     0);
    sigset_t block, old_mask;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, &old_mask);
    const char *argv[] = {"grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status", NULL};
    simul_process *p = start(argv, SIMUL_STDIO_INHERIT, SIMUL_STDIO_PIPE, SIMUL_STDIO_INHERIT);
    pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    sigaction(SIGPIPE, &old_pipe, NULL);
    sigaction(SIGHUP, &old_hup, NULL);
    assert_int_equal(simul_remove_signal_handler(SIGUSR2), 1);
    char buf[512];
    read_all(simul_process_stdout(p), buf, sizeof buf);
    assert_int_equal(wait_status(p), 0);
    simul_process_close(p);
    assert_non_null(strstr(buf, "SigBlk:\t0000000000000000\n"));
    assert_non_null(strstr(buf, "SigIgn:\t0000000000000000\n"));
    return 0;
}

/* ---- fds the child inherits ------------------------------------------------------------------- */

/* This process's fds without close-on-exec. */
static int inheritable_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        int fd = atoi(e->d_name);
        if (e->d_name[0] != '.' && fd != dirfd(d) && !(fcntl(fd, F_GETFD) & FD_CLOEXEC))
            n++;
    }
    closedir(d);
    return n;
}

static void list_child_fds(unsigned flags, char *buf, size_t cap)
{
    const char *argv[] = {"ls", "-1", "/proc/self/fd", NULL};
    simul_process_opts o = {.argv = argv, .stdout_mode = SIMUL_STDIO_PIPE, .flags = flags};
    simul_process *p;
    assert_int_equal(simul_process_exec(&o, &p), 0);
    read_all(simul_process_stdout(p), buf, cap);
    assert_int_equal(wait_status(p), 0);
    simul_process_close(p);
}

SUB_TEST(child_inherits_no_library_fd)
{
    (void)arg;
    /* Every kind of fd the library makes: epoll, eventfd (the loop), a signal self-pipe, a
     * listening socket, an accepted and a connected one, pipes of other children, pidfds. */
    assert_int_equal(simul_add_signal_handler(SIGUSR2, never_called, NULL),
                     0);
    int lfd[2];
    assert_int_equal(simul_tcp_listen("127.0.0.1", "0", 0, 0, lfd, 2), 1);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    assert_int_equal(getsockname(lfd[0], (struct sockaddr *)&ss, &sl), 0);
    char port[16];
    snprintf(port, sizeof port, "%d", ntohs(((struct sockaddr_in *)&ss)->sin_port));
    int c = simul_tcp_connect("127.0.0.1", port);
    assert_true(c >= 0);
    int a = simul_accept(lfd[0], NULL, NULL);
    assert_true(a >= 0);
    const char *cat[] = {"cat", NULL};
    simul_process *other = start(cat, SIMUL_STDIO_PIPE, SIMUL_STDIO_PIPE, SIMUL_STDIO_PIPE);
    /* A user fd without close-on-exec: closed in the child too, unless KEEP_FDS. */
    int plain = dup(0);
    assert_true(plain > 2);
    char buf[256];
    list_child_fds(0, buf, sizeof buf);
    assert_string_equal(buf, "0\n1\n2\n3\n"); /* 3 is ls's own directory */
    list_child_fds(SIMUL_PROCESS_KEEP_FDS, buf, sizeof buf);
    char want[64];
    snprintf(want, sizeof want, "\n%d\n", plain);
    assert_non_null(strstr(buf, want));
    /* and still no library fd: only what this process has without close-on-exec (0, 1, 2,
     * plain, whatever the test runner passed down) and ls's own directory */
    int lines = 0;
    for (char *s = buf; *s; s++)
        lines += *s == '\n';
    assert_int_equal(lines, inheritable_fds() + 1);
    close(plain);
    assert_int_equal(simul_stream_close(simul_process_stdin(other)), 0);
    assert_int_equal(wait_status(other), 0);
    simul_process_close(other);
    simul_close(a);
    simul_close(c);
    simul_close(lfd[0]);
    assert_int_equal(simul_remove_signal_handler(SIGUSR2), 1);
    return 0;
}

/* ---- broken pipes ----------------------------------------------------------------------------- */

SUB_TEST(writing_to_a_child_that_exited_is_epipe)
{
    (void)arg;
    const char *tr[] = {"true", NULL};
    simul_process *p = start(tr, SIMUL_STDIO_PIPE, SIMUL_STDIO_INHERIT, SIMUL_STDIO_INHERIT);
    assert_int_equal(wait_status(p), 0);
    simul_stream *in = simul_process_stdin(p);
    size_t n = 1u << 20;
    char *big = calloc(1, n);
    assert_non_null(big);
    /* No SIGPIPE kills us: the error comes back. */
    int rc = simul_stream_write(in, big, n);
    if (rc == 0)
        rc = simul_stream_drain(in);
    assert_int_equal(rc, -EPIPE);
    free(big);
    simul_process_close(p);

    /* The child exits while we are still writing (it read a little first). */
    const char *hd[] = {"head", "-c", "10", NULL};
    p = start(hd, SIMUL_STDIO_PIPE, SIMUL_STDIO_DEVNULL, SIMUL_STDIO_INHERIT);
    in = simul_process_stdin(p);
    static char chunk[65536];
    memset(chunk, 'x', sizeof chunk);
    rc = 0;
    for (int i = 0; i < 1000 && rc == 0; i++) {
        rc = simul_stream_write(in, chunk, sizeof chunk);
        if (rc == 0)
            rc = simul_stream_drain(in);
    }
    assert_int_equal(rc, -EPIPE);
    assert_int_equal(wait_status(p), 0);
    simul_process_close(p);

    /* communicate ignores it, as asyncio does. */
    p = start(hd, SIMUL_STDIO_PIPE, SIMUL_STDIO_PIPE, SIMUL_STDIO_INHERIT);
    char *data = malloc(4u << 20);
    assert_non_null(data);
    memset(data, 'y', 4u << 20);
    simul_process_output out;
    int st = INT_MIN;
    assert_int_equal(simul_process_communicate(p, data, 4u << 20, 0, &out, &st), 0);
    assert_int_equal(st, 0);
    assert_string_equal(out.out, "yyyyyyyyyy");
    simul_process_output_free(&out);
    free(data);
    simul_process_close(p);
    return 0;
}

SUB_TEST(closing_stdout_early_gives_the_child_sigpipe)
{
    (void)arg;
    const char *yes[] = {"yes", NULL};
    simul_process *p = start(yes, SIMUL_STDIO_INHERIT, SIMUL_STDIO_PIPE, SIMUL_STDIO_INHERIT);
    const char *line;
    assert_int_equal(simul_stream_readline(simul_process_stdout(p), &line), 2);
    assert_int_equal(simul_stream_close(simul_process_stdout(p)), 0);
    assert_null(simul_process_stdout(p));
    assert_int_equal(wait_status(p), -SIGPIPE);
    simul_process_close(p);
    return 0;
}

/* ---- interrupted waits ------------------------------------------------------------------------ */

static int wait_task(void *arg)
{
    return simul_process_wait(arg, NULL);
}

SUB_TEST(wait_cancelled_and_timed_out_child_still_reaped)
{
    (void)arg;
    /* The child runs until we close its stdin, not for a fixed 0.5 s: a loaded machine could
     * let that pass before the waits below, and then they found it exited. */
    const char *argv[] = {"cat", NULL};
    simul_process *p = start(argv, SIMUL_STDIO_PIPE, SIMUL_STDIO_INHERIT, SIMUL_STDIO_INHERIT);
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, wait_task, p, NULL), 0);
    assert_int_equal(simul_sleep(0.01), 0);
    assert_int_equal(simul_task_cancel(t), 0);
    int r;
    assert_int_equal(simul_task_join(t, &r), 0);
    assert_int_equal(r, -ECANCELED);

    simul_scope sc;
    assert_int_equal(simul_scope_timeout(&sc, 0.02), 0);
    assert_int_equal(simul_process_wait(p, NULL), -ETIMEDOUT);
    assert_int_equal(simul_scope_end(&sc), 1);
    assert_int_equal(simul_process_returncode(p, NULL), -EAGAIN);

    /* Nobody waits now; the loop reaps the child when it exits all the same. */
    assert_int_equal(simul_stream_close(simul_process_stdin(p)), 0); /* cat ends: EOF */
    double end = test_clock() + 20;
    while (simul__process_test_watch(p) != -1) {
        assert_true(test_clock() < end);
        assert_int_equal(simul_sleep(0.01), 0);
    }
    int zombies;
    children(&zombies);
    assert_int_equal(zombies, 0);
    int st;
    assert_int_equal(simul_process_returncode(p, &st), 0);
    assert_int_equal(st, 0);
    simul_process_close(p);
    return 0;
}

SUB_TEST(communicate_with_deadline_then_kill)
{
    (void)arg;
    const char *argv[] = {"sleep", "100", NULL};
    simul_process *p = start(argv, SIMUL_STDIO_PIPE, SIMUL_STDIO_PIPE, SIMUL_STDIO_PIPE);
    /* 1 MB of input the child never reads: the feed is cut short too. */
    size_t n = 1u << 20;
    char *data = calloc(1, n);
    assert_non_null(data);
    simul_process_output out;
    simul_scope sc;
    assert_int_equal(simul_scope_timeout(&sc, 0.1), 0);
    double t0 = test_clock();
    assert_int_equal(simul_process_communicate(p, data, n, 0, &out, NULL), -ETIMEDOUT);
    assert_int_equal(simul_scope_end(&sc), 1);
    assert_true(test_clock() - t0 < 10.0);
    assert_int_equal(out.out_len, 0);
    simul_process_output_free(&out);
    /* The state it leaves: child running, stdin still open (input not all taken), pipes open. */
    assert_int_equal(simul_process_returncode(p, NULL), -EAGAIN);
    assert_non_null(simul_process_stdin(p));
    assert_non_null(simul_process_stdout(p));
    assert_int_equal(simul_process_kill(p), 0);
    assert_int_equal(wait_status(p), -SIGKILL);
    free(data);
    simul_process_close(p); /* discards what stdin still had queued */
    return 0;
}

/* Whether process pid runs the program sleep within 20 s (its /proc comm), polled. */
static bool becomes_sleep(int pid)
{
    char path[64], comm[32];
    snprintf(path, sizeof path, "/proc/%d/comm", pid);
    double end = test_clock() + 20.0;
    while (test_clock() < end) {
        FILE *f = fopen(path, "re");
        if (f) {
            bool is_sleep = fgets(comm, sizeof comm, f) && strcmp(comm, "sleep\n") == 0;
            fclose(f);
            if (is_sleep)
                return true;
        }
        assert_int_equal(simul_sleep(0.005), 0);
    }
    return false;
}

static int communicate_task(void *arg)
{
    simul_process_output out;
    int rc = simul_process_communicate(arg, NULL, 0, 0, &out, NULL);
    simul_process_output_free(&out);
    return rc;
}

SUB_TEST(communicate_cancelled_keeps_partial_output)
{
    (void)arg;
    simul_process *p = start_shell("echo early; exec sleep 100", SIMUL_STDIO_INHERIT,
                                   SIMUL_STDIO_PIPE, SIMUL_STDIO_INHERIT);
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, communicate_task, p, NULL), 0);
    assert_int_equal(simul_sleep(0.2), 0);
    assert_int_equal(simul_task_cancel(t), 0);
    int r;
    assert_int_equal(simul_task_join(t, &r), 0);
    assert_int_equal(r, -ECANCELED);

    /* With a deadline: the partial output is there. */
    simul_process_output out;
    simul_scope sc;
    assert_int_equal(simul_scope_timeout(&sc, 0.2), 0);
    assert_int_equal(simul_process_communicate(p, NULL, 0, 0, &out, NULL), -ETIMEDOUT);
    simul_scope_end(&sc);
    simul_process_output_free(&out);
    assert_int_equal(simul_process_kill(p), 0);
    assert_int_equal(wait_status(p), -SIGKILL);
    simul_process_close(p);

    p = start_shell("printf 'partial'; exec sleep 100", SIMUL_STDIO_INHERIT, SIMUL_STDIO_PIPE,
                    SIMUL_STDIO_INHERIT);
    /* Once the shell is sleep, 'partial' is in the pipe: the deadline below cuts the wait for
     * more, not a shell a loaded machine had not yet run (0.5 s from the start were not enough). */
    assert_true(becomes_sleep(simul_process_pid(p)));
    assert_int_equal(simul_scope_timeout(&sc, 0.5), 0);
    assert_int_equal(simul_process_communicate(p, NULL, 0, 0, &out, NULL), -ETIMEDOUT);
    simul_scope_end(&sc);
    assert_string_equal(out.out, "partial");
    simul_process_output_free(&out);
    simul_process_kill(p);
    assert_int_equal(wait_status(p), -SIGKILL);
    simul_process_close(p);
    return 0;
}

SUB_TEST(communicate_output_limit)
{
    (void)arg;
    simul_process *p = start_shell("head -c 100000 /dev/zero; exec sleep 100", SIMUL_STDIO_INHERIT,
                                   SIMUL_STDIO_PIPE, SIMUL_STDIO_PIPE);
    simul_process_output out;
    assert_int_equal(simul_process_communicate(p, NULL, 0, 1000, &out, NULL), -EMSGSIZE);
    assert_int_equal(out.out_len, 1001);
    assert_int_equal(out.err_len, 0);
    simul_process_output_free(&out);
    assert_int_equal(simul_process_returncode(p, NULL), -EAGAIN);
    simul_process_kill(p);
    assert_int_equal(wait_status(p), -SIGKILL);
    simul_process_close(p);
    return 0;
}

SUB_TEST(communicate_twice_at_once_is_ebusy)
{
    (void)arg;
    const char *argv[] = {"sleep", "100", NULL};
    simul_process *p = start(argv, SIMUL_STDIO_INHERIT, SIMUL_STDIO_PIPE, SIMUL_STDIO_INHERIT);
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, communicate_task, p, NULL), 0);
    assert_int_equal(simul_sleep(0.05), 0);
    assert_int_equal(simul_process_communicate(p, NULL, 0, 0, NULL, NULL), -EBUSY);
    simul_process_kill(p);
    int r;
    assert_int_equal(simul_task_join(t, &r), 0);
    assert_int_equal(r, 0); /* its pipe reached EOF and the wait saw the kill */
    assert_int_equal(wait_status(p), -SIGKILL);
    simul_process_close(p);
    return 0;
}

/* ---- many children ---------------------------------------------------------------------------- */

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/statm", "re");
    assert_non_null(f);
    long size, res;
    assert_int_equal(fscanf(f, "%ld %ld", &size, &res), 2);
    fclose(f);
    return res * (sysconf(_SC_PAGESIZE) / 1024);
}

static void run_true(int n)
{
    const char *tr[] = {"/bin/true", NULL};
    for (int i = 0; i < n; i++) {
        simul_process *p = start(tr, SIMUL_STDIO_INHERIT, SIMUL_STDIO_INHERIT, SIMUL_STDIO_INHERIT);
        assert_int_equal(wait_status(p), 0);
        simul_process_close(p);
    }
}

SUB_TEST(a_thousand_children_in_a_row)
{
    (void)arg;
    int fds = test_fd_count();
    run_true(100); /* warm up: allocator pools, the signal pipe in the fallback, ... */
    long rss0 = rss_kb();
    struct mallinfo2 m0 = mallinfo2();
    run_true(1000);
    long rss1 = rss_kb();
    struct mallinfo2 m1 = mallinfo2();
    assert_int_equal(test_fd_count(), fds);
    int zombies;
    assert_int_equal(children(&zombies), 0);
    if (!SIMUL_TEST_ASAN && !SIMUL_TEST_TSAN) {
        /* Bounded, not growing with the count: a leak of even 100 bytes per child shows. */
        long heap = (long)m1.uordblks - (long)m0.uordblks;
        print_message("rss delta %ld KiB, heap delta %ld bytes\n", rss1 - rss0, heap);
        assert_true(heap < 64 * 1024);
        assert_true(rss1 - rss0 < 4096);
    }
    return 0;
}

typedef struct conc {
    int index;
    int status;
} conc;

static int spawn_and_wait(void *arg)
{
    conc *c = arg;
    char cmd[64];
    snprintf(cmd, sizeof cmd, "sleep 0.%d; exit %d", c->index % 3, c->index % 97);
    simul_process_opts o = {.stdout_mode = SIMUL_STDIO_PIPE};
    simul_process *p;
    int rc = simul_process_shell(cmd, &o, &p);
    if (rc < 0)
        return rc;
    char buf[16];
    long n = simul_stream_read(simul_process_stdout(p), buf, sizeof buf); /* EOF at exit */
    rc = simul_process_wait(p, &c->status);
    simul_process_close(p);
    return n == 0 ? rc : -EPROTO;
}

SUB_TEST(a_hundred_children_at_once)
{
    (void)arg;
    enum { N = 100 };
    static conc cs[N];
    simul_task *ts[N];
    for (int i = 0; i < N; i++) {
        cs[i] = (conc){i, INT_MIN};
        assert_int_equal(simul_task_spawn(&ts[i], spawn_and_wait, &cs[i], NULL), 0);
    }
    int results[N];
    assert_int_equal(simul_gather(ts, N, results), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(results[i], 0);
        assert_int_equal(cs[i].status, i % 97);
    }
    return 0;
}

/* ---- freeing ---------------------------------------------------------------------------------- */

SUB_TEST(free_wakes_waiter_and_tolerates_closed_pipes)
{
    (void)arg;
    const char *argv[] = {"sleep", "100", NULL};
    simul_process *p = start(argv, SIMUL_STDIO_PIPE, SIMUL_STDIO_PIPE, SIMUL_STDIO_PIPE);
    /* The caller closes some pipes itself, leaves one with data queued. */
    assert_int_equal(simul_stream_close(simul_process_stderr(p)), 0);
    static char big[256 * 1024];
    assert_int_equal(simul_stream_write(simul_process_stdin(p), big, sizeof big), 0);
    assert_true(simul_stream_write_buffer_size(simul_process_stdin(p)) > 0);
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, wait_task, p, NULL), 0);
    assert_int_equal(simul_sleep(0.01), 0);
    simul_process_kill(p); /* so the reaper has little to wait for */
    simul_process_close(p);
    int r;
    assert_int_equal(simul_task_join(t, &r), 0);
    assert_int_equal(r, -ECANCELED);
    return 0;
}

SUB_TEST(reaper_thread_reaps_children_freed_while_running)
{
    (void)arg;
    /* Freed while they run, and the loop closes right after: the reaper thread reaps them when
     * they exit (check_clean waits for that, and for its eventfd to go with it). */
    /* They run until we close the pipe they read, not for a fixed 0.3 s a loaded machine could
     * let pass before the count below. */
    int go[2];
    assert_int_equal(pipe2(go, O_CLOEXEC), 0);
    for (int i = 0; i < 3; i++) {
        const char *argv[] = {"cat", NULL};
        simul_process_opts o = {.argv = argv, .stdin_mode = SIMUL_STDIO_FD, .stdin_fd = go[0],
                                .stdout_mode = SIMUL_STDIO_PIPE};
        simul_process *p = NULL;
        assert_int_equal(simul_process_exec(&o, &p), 0);
        simul_process_close(p);
    }
    close(go[0]);
    assert_int_equal(simul__process_test_orphans(), 3);
    close(go[1]); /* EOF: they exit */
    return 0;
}

SUB_TEST(free_of_exited_child_reaps_at_once)
{
    (void)arg;
    const char *tr[] = {"true", NULL};
    simul_process *p = start(tr, SIMUL_STDIO_INHERIT, SIMUL_STDIO_INHERIT, SIMUL_STDIO_INHERIT);
    /* Let it exit, without the loop getting to the notification. */
    double end = test_clock() + 20;
    int zombies = 0;
    while (children(&zombies) == 1 && zombies == 0 && test_clock() < end)
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    simul_process_close(p);
    assert_int_equal(simul__process_test_orphans(), 0);
    assert_int_equal(children(NULL), 0);
    return 0;
}

SUB_TEST(lines_arrive_while_the_child_runs)
{
    (void)arg;
    simul_process *p = start_shell("echo first; exec sleep 100", SIMUL_STDIO_INHERIT,
                                   SIMUL_STDIO_PIPE, SIMUL_STDIO_INHERIT);
    const char *line;
    assert_int_equal(simul_stream_readline(simul_process_stdout(p), &line), 6);
    assert_memory_equal(line, "first\n", 6);
    assert_int_equal(simul_process_returncode(p, NULL), -EAGAIN);
    simul_process_terminate(p);
    assert_int_equal(wait_status(p), -SIGTERM);
    simul_process_close(p);
    return 0;
}

SUB_TEST(new_session_flag)
{
    (void)arg;
    const char *argv[] = {"sh", "-c", "ps -o sid= -p $$ 2>/dev/null || cut -d' ' -f6 /proc/$$/stat",
                          NULL};
    simul_process_opts o = {
        .argv = argv, .stdout_mode = SIMUL_STDIO_PIPE, .flags = SIMUL_PROCESS_NEW_SESSION};
    simul_process *p;
    assert_int_equal(simul_process_exec(&o, &p), 0);
    char buf[64];
    read_all(simul_process_stdout(p), buf, sizeof buf);
    assert_int_equal(wait_status(p), 0);
    assert_int_equal(atoi(buf), simul_process_pid(p)); /* session leader */
    simul_process_close(p);
    return 0;
}

/* ---- pass_fds, process groups, umask ---------------------------------------------------------- */

/* Runs argv with opts' extras and stdout piped; its output into buf. Returns the status. */
static int run_capture(simul_process_opts *o, const char *const *argv, char *buf, size_t cap)
{
    o->argv = argv;
    o->stdout_mode = SIMUL_STDIO_PIPE;
    simul_process *p = NULL;
    int rc = simul_process_exec(o, &p);
    if (rc < 0)
        fail_msg("exec %s: %s", argv[0], simul_strerror(rc));
    read_all(simul_process_stdout(p), buf, cap);
    int st = wait_status(p);
    simul_process_close(p);
    return st;
}

static bool has_line(const char *buf, int n)
{
    char want[32];
    snprintf(want, sizeof want, "\n%d\n", n);
    size_t len = strlen(buf);
    char *tmp = malloc(len + 2);
    assert_non_null(tmp);
    tmp[0] = '\n';
    memcpy(tmp + 1, buf, len + 1);
    bool found = strstr(tmp, want) != NULL;
    free(tmp);
    return found;
}

static int count_lines(const char *buf)
{
    int n = 0;
    for (; *buf; buf++)
        n += *buf == '\n';
    return n;
}

static bool cloexec(int fd)
{
    int fl = fcntl(fd, F_GETFD);
    assert_true(fl >= 0);
    return fl & FD_CLOEXEC;
}

SUB_TEST(pass_fds_child_writes_to_a_passed_pipe)
{
    (void)arg;
    int pp[2];
    assert_int_equal(pipe2(pp, O_CLOEXEC), 0);
    /* The shell's >&N wants one digit: put the write end at a free number 5..9. */
    int w = -1;
    for (int n = 5; n <= 9 && w < 0; n++)
        if (fcntl(n, F_GETFD) < 0 && errno == EBADF)
            w = dup3(pp[1], n, O_CLOEXEC);
    assert_true(w >= 5);
    close(pp[1]);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "echo hi >&%d", w);
    const char *argv[] = {"sh", "-c", cmd, NULL};
    simul_process_opts o = {.argv = argv, .pass_fds = &w, .n_pass_fds = 1};
    simul_process *p;
    assert_int_equal(simul_process_exec(&o, &p), 0);
    assert_int_equal(wait_status(p), 0);
    simul_process_close(p);
    assert_true(cloexec(w)); /* only the child's copy lost the flag */
    close(w);
    char buf[16];
    assert_int_equal(read(pp[0], buf, sizeof buf), 3);
    assert_memory_equal(buf, "hi\n", 3);
    assert_int_equal(read(pp[0], buf, sizeof buf), 0); /* nobody else holds the write end */
    close(pp[0]);

    /* Without pass_fds the same command finds the fd closed. */
    assert_int_equal(pipe2(pp, O_CLOEXEC), 0);
    assert_int_equal(dup3(pp[1], w, O_CLOEXEC), w);
    close(pp[1]);
    simul_process_opts none = {.argv = argv, .stderr_mode = SIMUL_STDIO_DEVNULL};
    assert_int_equal(simul_process_exec(&none, &p), 0);
    assert_true(wait_status(p) != 0); /* "Bad file descriptor" */
    simul_process_close(p);
    close(w);
    assert_int_equal(read(pp[0], buf, sizeof buf), 0);
    close(pp[0]);
    return 0;
}

SUB_TEST(pass_fds_keeps_only_those_fds)
{
    (void)arg;
    /* In increasing order: inheritable fds below, between and above the passed ones (all must
     * be closed in the child), one passed fd close-on-exec here and one not. */
    int below = fcntl(0, F_DUPFD, 20);
    int a = fcntl(0, F_DUPFD_CLOEXEC, below + 1);
    int gap = fcntl(0, F_DUPFD, a + 1);
    int b = fcntl(0, F_DUPFD, gap + 1);
    int above = fcntl(0, F_DUPFD, b + 1);
    assert_true(below > 2 && a > below && gap > a && b > gap && above > b);
    const int pass[] = {b, a, b}; /* unsorted, repeated: fine */
    const char *ls[] = {"ls", "-1", "/proc/self/fd", NULL};
    char buf[512];
    simul_process_opts o = {.pass_fds = pass, .n_pass_fds = 3};
    assert_int_equal(run_capture(&o, ls, buf, sizeof buf), 0);
    assert_true(has_line(buf, a));
    assert_true(has_line(buf, b));
    assert_false(has_line(buf, below));
    assert_false(has_line(buf, gap));
    assert_false(has_line(buf, above));
    assert_int_equal(count_lines(buf), 3 + 2 + 1); /* stdio, a and b, ls's own directory */
    /* The parent's flags are untouched. */
    assert_true(cloexec(a));
    assert_false(cloexec(b));
    /* With KEEP_FDS too: everything inheritable, plus a despite its close-on-exec. */
    simul_process_opts keep = {.pass_fds = &a, .n_pass_fds = 1, .flags = SIMUL_PROCESS_KEEP_FDS};
    assert_int_equal(run_capture(&keep, ls, buf, sizeof buf), 0);
    assert_true(has_line(buf, a));
    assert_true(has_line(buf, gap));
    assert_true(has_line(buf, above));
    assert_true(cloexec(a));
    close(below);
    close(a);
    close(gap);
    close(b);
    close(above);
    return 0;
}

SUB_TEST(pass_fds_bad_input_starts_nothing)
{
    (void)arg;
    const char *tr[] = {"true", NULL};
    simul_process *p = NULL;
    int open_fd = fcntl(0, F_DUPFD_CLOEXEC, 3);
    int closed = fcntl(0, F_DUPFD_CLOEXEC, 3);
    assert_true(open_fd >= 3 && closed >= 3);
    close(closed);
    const int not_open[] = {open_fd, closed};
    simul_process_opts o = {.argv = tr, .pass_fds = not_open, .n_pass_fds = 2};
    assert_int_equal(simul_process_exec(&o, &p), -EBADF);
    assert_null(p);
    const int negative[] = {-1};
    o.pass_fds = negative;
    o.n_pass_fds = 1;
    assert_int_equal(simul_process_exec(&o, &p), -EBADF);
    const int stdio[] = {1};
    o.pass_fds = stdio;
    assert_int_equal(simul_process_exec(&o, &p), -EINVAL);
    o.pass_fds = NULL;
    assert_int_equal(simul_process_exec(&o, &p), -EINVAL);
    /* Pipes asked for are not left behind either (check_clean counts the fds). */
    o.pass_fds = not_open;
    o.n_pass_fds = 2;
    o.stdout_mode = SIMUL_STDIO_PIPE;
    assert_int_equal(simul_process_exec(&o, &p), -EBADF);
    simul_process_opts sh = {.pass_fds = not_open, .n_pass_fds = 2, .stdin_mode = SIMUL_STDIO_PIPE};
    assert_int_equal(simul_process_shell("true", &sh, &p), -EBADF);
    assert_null(p);
    close(open_fd);
    return 0;
}

/* Fields of a /proc/<pid>/stat line: state, process group, session and start time. */
typedef struct pstat {
    char state;
    int pgrp, session;
    unsigned long long start;
} pstat;

static bool parse_stat(const char *line, pstat *ps)
{
    const char *rp = strrchr(line, ')'); /* the command name may hold spaces and parentheses */
    return rp && sscanf(rp + 1,
                        " %c %*d %d %d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d"
                        " %*d %llu",
                        &ps->state, &ps->pgrp, &ps->session, &ps->start) == 4;
}

static bool read_stat(int pid, pstat *ps)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = '\0';
    return parse_stat(buf, ps);
}

/* Waits (generously) until the process pid that started at `start` is dead: gone, or its
 * number taken by another process, or (unless `reaped`) a zombie. A grandchild is reaped by
 * init (or a subreaper), so `reaped` may wait in vain where init reaps nothing. */
static bool dies(int pid, unsigned long long start, bool reaped)
{
    double end = test_clock() + 20.0;
    while (test_clock() < end) {
        pstat ps;
        if (!read_stat(pid, &ps) || ps.start != start ||
            (!reaped && (ps.state == 'Z' || ps.state == 'X')))
            return true;
        nanosleep(&(struct timespec){0, 5000000}, NULL);
    }
    return false;
}

static bool kernel_signals_groups_by_pidfd(void)
{
#if defined(SYS_pidfd_open) && defined(SYS_pidfd_send_signal)
    int fd = (int)syscall(SYS_pidfd_open, getpid(), 0);
    if (fd < 0)
        return false;
    /* Our pid names no group (we lead none): ESRCH means the flag itself is known. */
    long r = syscall(SYS_pidfd_send_signal, fd, 0, NULL, 1u << 2 /* PIDFD_SIGNAL_PROCESS_GROUP */);
    int err = errno;
    close(fd);
    return r == 0 || err == ESRCH;
#else
    return false;
#endif
}

SUB_TEST(new_session_child_leads_its_session_and_group)
{
    (void)arg;
    const char *argv[] = {"sh", "-c", "cat /proc/$$/stat", NULL};
    simul_process_opts o = {
        .argv = argv, .stdout_mode = SIMUL_STDIO_PIPE, .flags = SIMUL_PROCESS_NEW_SESSION};
    simul_process *p;
    assert_int_equal(simul_process_exec(&o, &p), 0);
    char buf[1024];
    read_all(simul_process_stdout(p), buf, sizeof buf);
    assert_int_equal(wait_status(p), 0);
    pstat ps;
    assert_true(parse_stat(buf, &ps));
    assert_int_equal(ps.session, simul_process_pid(p));
    assert_int_equal(ps.pgrp, simul_process_pid(p));
    simul_process_close(p);
    /* Without the flag: ours. */
    simul_process_opts plain = {0};
    assert_int_equal(run_capture(&plain, argv, buf, sizeof buf), 0);
    assert_true(parse_stat(buf, &ps));
    assert_int_equal(ps.session, getsid(0));
    assert_int_equal(ps.pgrp, getpgrp());
    return 0;
}

SUB_TEST(group_kill_reaches_the_grandchild)
{
    (void)arg;
    const char *argv[] = {"sh", "-c", "sleep 100 & echo $!; wait", NULL};
    simul_process_opts o = {
        .argv = argv, .stdout_mode = SIMUL_STDIO_PIPE, .flags = SIMUL_PROCESS_NEW_PGROUP};
    simul_process *p;
    assert_int_equal(simul_process_exec(&o, &p), 0);
    const char *line;
    assert_true(simul_stream_readline(simul_process_stdout(p), &line) > 1);
    int grandchild = atoi(line);
    pstat ps;
    assert_true(read_stat(grandchild, &ps));
    assert_int_equal(ps.pgrp, simul_process_pid(p)); /* in the child's group, not ours */
    assert_int_equal(simul_process_send_signal_group(p, 0), 0);
    assert_int_equal(simul_process_send_signal_group(p, -1), -EINVAL);
    assert_int_equal(simul_process_send_signal_group(p, SIGKILL), 0);
    assert_int_equal(wait_status(p), -SIGKILL);
    assert_true(dies(grandchild, ps.start, false));
    /* Reaped, with nobody left in the group: no number is signalled any more. (A zombie
     * grandchild still counts as a member: wait for init to reap it.) */
    if (dies(grandchild, ps.start, true))
        assert_int_equal(simul_process_send_signal_group(p, SIGKILL), -ESRCH);
    assert_int_equal(simul_process_send_signal(p, SIGKILL), -ESRCH);
    simul_process_close(p);

    /* A child in our own group has no group to signal: that would be ours. */
    const char *tr[] = {"true", NULL};
    p = start(tr, SIMUL_STDIO_INHERIT, SIMUL_STDIO_INHERIT, SIMUL_STDIO_INHERIT);
    assert_int_equal(simul_process_send_signal_group(p, SIGKILL), -EINVAL);
    assert_int_equal(wait_status(p), 0);
    simul_process_close(p);
    assert_int_equal(simul_process_send_signal_group(NULL, SIGKILL), -EINVAL);
    return 0;
}

SUB_TEST(group_signal_after_the_leader_exited)
{
    (void)arg;
    /* The shell exits at once and leaves its background job in the group. */
    const char *argv[] = {"sh", "-c", "sleep 100 & echo $!", NULL};
    simul_process_opts o = {
        .argv = argv, .stdout_mode = SIMUL_STDIO_PIPE, .flags = SIMUL_PROCESS_NEW_SESSION};
    simul_process *p;
    assert_int_equal(simul_process_exec(&o, &p), 0);
    const char *line;
    assert_true(simul_stream_readline(simul_process_stdout(p), &line) > 1);
    int grandchild = atoi(line);
    pstat ps;
    assert_true(read_stat(grandchild, &ps));
    assert_int_equal(wait_status(p), 0);
    bool exact = !fallback_forced() && pidfd_works() && kernel_signals_groups_by_pidfd();
    int rc = simul_process_send_signal_group(p, SIGKILL);
    if (exact) {
        assert_int_equal(rc, 0); /* through the leader's pidfd: that very group */
    } else {
        assert_int_equal(rc, -ESRCH); /* no safe way to name the group once it is reaped */
        assert_int_equal(kill(grandchild, SIGKILL), 0);
    }
    assert_true(dies(grandchild, ps.start, false));
    simul_process_close(p);
    return 0;
}

SUB_TEST(join_pgid_puts_a_second_child_in_the_first_group)
{
    (void)arg;
    const char *sl[] = {"sleep", "100", NULL};
    simul_process_opts lead = {.argv = sl, .flags = SIMUL_PROCESS_NEW_PGROUP};
    simul_process *first, *second;
    assert_int_equal(simul_process_exec(&lead, &first), 0);
    int pgid = simul_process_pid(first);
    simul_process_opts join = {.argv = sl, .join_pgid = pgid};
    assert_int_equal(simul_process_exec(&join, &second), 0);
    pstat ps;
    assert_true(read_stat(simul_process_pid(second), &ps));
    assert_int_equal(ps.pgrp, pgid);
    /* One signal through either handle reaches both. */
    assert_int_equal(simul_process_send_signal_group(second, SIGKILL), 0);
    assert_int_equal(wait_status(first), -SIGKILL);
    assert_int_equal(wait_status(second), -SIGKILL);
    simul_process_close(first);
    simul_process_close(second);

    simul_process *p = NULL;
    join.flags = SIMUL_PROCESS_NEW_PGROUP;
    assert_int_equal(simul_process_exec(&join, &p), -EINVAL);
    join.flags = 0;
    join.join_pgid = -2;
    assert_int_equal(simul_process_exec(&join, &p), -EINVAL);
    /* A group that does not exist (the number of a process that is gone). */
    join.join_pgid = pgid;
    assert_int_equal(simul_process_exec(&join, &p), -EPERM);
    assert_null(p);
    return 0;
}

/* This process's umask, from /proc (umask(2) can only read it by changing it). */
static int own_umask(void)
{
    FILE *f = fopen("/proc/self/status", "re");
    assert_non_null(f);
    char line[256];
    int m = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "Umask: %o", (unsigned *)&m) == 1)
            break;
    fclose(f);
    assert_true(m >= 0);
    return m;
}

SUB_TEST(umask_set_by_a_spawn_thread_in_the_child_only)
{
    (void)arg;
    const char *argv[] = {"sh", "-c", "umask", NULL};
    char buf[64], want[64];
    int mine = own_umask();
    simul_process_opts o = {.umask = SIMUL_PROCESS_UMASK(027)};
    assert_int_equal(run_capture(&o, argv, buf, sizeof buf), 0);
    assert_int_equal(strtol(buf, NULL, 8), 027);
    assert_int_equal(own_umask(), mine);
    o = (simul_process_opts){.umask = SIMUL_PROCESS_UMASK(0)};
    assert_int_equal(run_capture(&o, argv, buf, sizeof buf), 0);
    assert_int_equal(strtol(buf, NULL, 8), 0);
    /* Unset: inherited. */
    o = (simul_process_opts){0};
    assert_int_equal(run_capture(&o, argv, buf, sizeof buf), 0);
    assert_int_equal(strtol(buf, NULL, 8), mine);
    /* With the other options that act in the child: cwd, env, a pipe. */
    const char *env[] = {"PATH=/usr/bin:/bin", "X=1", NULL};
    const char *pwd[] = {"sh", "-c", "umask; pwd; echo $X", NULL};
    o = (simul_process_opts){.umask = SIMUL_PROCESS_UMASK(0777), .cwd = "/", .env = env};
    assert_int_equal(run_capture(&o, pwd, buf, sizeof buf), 0);
    snprintf(want, sizeof want, "0777\n/\n1\n");
    assert_string_equal(buf, want);
    /* A file the child makes gets it. */
    char dir[] = "/tmp/simul-umask-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char cmd[128], path[64];
    snprintf(path, sizeof path, "%s/f", dir);
    snprintf(cmd, sizeof cmd, "touch %s", path);
    const char *touch[] = {"sh", "-c", cmd, NULL};
    o = (simul_process_opts){.umask = SIMUL_PROCESS_UMASK(077)};
    assert_int_equal(run_capture(&o, touch, buf, sizeof buf), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    unlink(path);
    rmdir(dir);
    return 0;
}

SUB_TEST(umask_spawn_thread_bad_values_and_exec_errors)
{
    (void)arg;
    const char *tr[] = {"true", NULL};
    simul_process *p = NULL;
    simul_process_opts o = {.argv = tr, .umask = 022}; /* not made by SIMUL_PROCESS_UMASK */
    assert_int_equal(simul_process_exec(&o, &p), -EINVAL);
    o.umask = SIMUL_PROCESS_UMASK(01000);
    assert_int_equal(simul_process_exec(&o, &p), -EINVAL);
    o.umask = -1;
    assert_int_equal(simul_process_exec(&o, &p), -EINVAL);
    /* The spawn on the umask thread reports exec errors as usual, with nothing left behind. */
    const char *missing[] = {"/nonexistent/simul-no-such-program", NULL};
    o = (simul_process_opts){
        .argv = missing, .umask = SIMUL_PROCESS_UMASK(022), .stdout_mode = SIMUL_STDIO_PIPE};
    assert_int_equal(simul_process_exec(&o, &p), -ENOENT);
    assert_null(p);
    /* Many in a row: no thread or fd piles up (check_clean). */
    o = (simul_process_opts){.argv = tr, .umask = SIMUL_PROCESS_UMASK(022)};
    for (int i = 0; i < 50; i++) {
        assert_int_equal(simul_process_exec(&o, &p), 0);
        assert_int_equal(wait_status(p), 0);
        simul_process_close(p);
    }
    return 0;
}

#ifndef SUBPROCESS_NO_MAIN
static const struct CMUnitTest tests[] = {
    cmocka_unit_test(echo_through_stdout_pipe),
    cmocka_unit_test(watch_uses_pidfd_or_forced_fallback),
    cmocka_unit_test(cat_round_trip_stdin_to_stdout),
    cmocka_unit_test(communicate_several_mb_through_cat),
    cmocka_unit_test(communicate_large_output_both_pipes_no_deadlock),
    cmocka_unit_test(communicate_discards_output_when_out_is_null),
    cmocka_unit_test(stderr_separate_and_merged),
    cmocka_unit_test(devnull_stdin_and_stdout),
    cmocka_unit_test(inherited_stdin_and_caller_fd_stdout),
    cmocka_unit_test(env_and_cwd),
    cmocka_unit_test(exec_errors_leave_nothing_behind),
    cmocka_unit_test(bad_arguments),
    cmocka_unit_test(no_loop_and_no_task),
    cmocka_unit_test(every_exit_code),
    cmocka_unit_test(killed_by_signal_and_terminate),
    cmocka_unit_test(child_reaped_by_the_kernel_reports_255),
    cmocka_unit_test(child_starts_with_default_signals_and_empty_mask),
    cmocka_unit_test(child_inherits_no_library_fd),
    cmocka_unit_test(writing_to_a_child_that_exited_is_epipe),
    cmocka_unit_test(closing_stdout_early_gives_the_child_sigpipe),
    cmocka_unit_test(wait_cancelled_and_timed_out_child_still_reaped),
    cmocka_unit_test(communicate_with_deadline_then_kill),
    cmocka_unit_test(communicate_cancelled_keeps_partial_output),
    cmocka_unit_test(communicate_output_limit),
    cmocka_unit_test(communicate_twice_at_once_is_ebusy),
    cmocka_unit_test(a_thousand_children_in_a_row),
    cmocka_unit_test(a_hundred_children_at_once),
    cmocka_unit_test(free_wakes_waiter_and_tolerates_closed_pipes),
    cmocka_unit_test(reaper_thread_reaps_children_freed_while_running),
    cmocka_unit_test(free_of_exited_child_reaps_at_once),
    cmocka_unit_test(lines_arrive_while_the_child_runs),
    cmocka_unit_test(new_session_flag),
    cmocka_unit_test(pass_fds_child_writes_to_a_passed_pipe),
    cmocka_unit_test(pass_fds_keeps_only_those_fds),
    cmocka_unit_test(pass_fds_bad_input_starts_nothing),
    cmocka_unit_test(new_session_child_leads_its_session_and_group),
    cmocka_unit_test(group_kill_reaches_the_grandchild),
    cmocka_unit_test(group_signal_after_the_leader_exited),
    cmocka_unit_test(join_pgid_puts_a_second_child_in_the_first_group),
    cmocka_unit_test(umask_set_by_a_spawn_thread_in_the_child_only),
    cmocka_unit_test(umask_spawn_thread_bad_values_and_exec_errors),
};

SIMUL_TEST_MAIN("subprocess", tests)
#endif
