/* test_file_thread.c — the file calls on their worker pool: round trips (write, fsync, read back,
 * pread/pwrite at offsets, files of several MiB), stat sizes, the errors of the syscalls, whole-
 * file helpers, and what cancellation and deadlines leave behind: a FIFO open stuck in the kernel
 * times out promptly and its late fd is closed; an interrupted read never writes the caller's
 * buffer; an interrupted write writes the bytes it copied, not what the caller's buffer holds
 * later; a queued call that is cancelled never runs; many tasks at once; no fd leaks.
 */
#include <dirent.h>
#include <ftw.h>
#include <pthread.h>
#include <sys/stat.h>

#include "test_main_helpers.h"

/* Test hooks of src/io/file.c (the tests link the static library). */
void simul__file_test_counts(int *threads, int *idle, int *inflight);
void simul__file_test_set_max(int n);
int simul__file_test_queued(void);

/* Bound on every wait for a state below: only a broken pool reaches it, never a slow machine. */
#define STATE_BOUND 60.0

static int pool_inflight(void)
{
    int th, idle, inflight;
    simul__file_test_counts(&th, &idle, &inflight);
    return inflight;
}

/* Waits in the task until no file job is left in the pool; false after STATE_BOUND. */
static bool pool_drained(void)
{
    double end = test_clock() + STATE_BOUND;
    while (pool_inflight() != 0) {
        if (test_clock() > end)
            return false;
        simul_sleep(0.002);
    }
    return true;
}

/* Waits in the task until a worker has taken every queued call (a call that blocks in the
 * kernel is then stuck there, not waiting in the queue); false after STATE_BOUND. */
static bool pool_taken(void)
{
    double end = test_clock() + STATE_BOUND;
    while (simul__file_test_queued() != 0) {
        if (test_clock() > end)
            return false;
        simul_sleep(0.002);
    }
    return true;
}

/* ---- a temporary directory per case ---------------------------------------------------------- */

static char dir[64];

static void tmpdir_make(void)
{
    strcpy(dir, "/tmp/simul-file-XXXXXX");
    assert_non_null(mkdtemp(dir));
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void tmpdir_remove(void)
{
    chmod(dir, 0700);
    assert_int_equal(nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS), 0);
}

static const char *at(const char *name)
{
    static char buf[4][128];
    static int i;
    char *p = buf[i++ % 4];
    snprintf(p, 128, "%s/%s", dir, name);
    return p;
}

/* Byte i of a test pattern that does not repeat with any power-of-two period. */
static unsigned char pattern(size_t i, unsigned seed)
{
    return (unsigned char)((i * 2654435761u + seed) >> 13);
}

static void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = pattern(i, seed);
}

/* ---- round trips ----------------------------------------------------------------------------- */

SIMUL_TASK_TEST(round_trip_write_fsync_read)
{
    (void)arg;
    tmpdir_make();
    int fd = simul_file_open(at("a"), O_CREAT | O_RDWR | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    assert_int_equal(simul_file_write(fd, "hello, ", 7), 7);
    assert_int_equal(simul_file_write(fd, "world", 5), 5);
    assert_int_equal(simul_file_fsync(fd), 0);
    assert_int_equal(simul_file_fdatasync(fd), 0);
    char buf[64] = {0};
    assert_int_equal(simul_file_pread(fd, buf, sizeof buf, 0), 12);
    assert_memory_equal(buf, "hello, world", 12);
    /* the fd's own offset is at the end: read gives EOF, pread did not move it */
    assert_int_equal(simul_file_read(fd, buf, sizeof buf), 0);
    assert_int_equal(simul_file_close(fd), 0);
    assert_int_equal(fcntl(fd, F_GETFD), -1);

    fd = simul_file_open(at("a"), O_RDONLY, 0);
    assert_true(fd >= 0);
    memset(buf, 0, sizeof buf);
    assert_int_equal(simul_file_read(fd, buf, 5), 5);
    assert_int_equal(simul_file_read(fd, buf + 5, sizeof buf - 5), 7);
    assert_string_equal(buf, "hello, world");
    assert_int_equal(simul_file_read(fd, buf, 0), 0);
    assert_int_equal(simul_file_close(fd), 0);
    tmpdir_remove();
    return 0;
}

SIMUL_TASK_TEST(pread_pwrite_at_offsets)
{
    (void)arg;
    tmpdir_make();
    int fd = simul_file_open(at("b"), O_CREAT | O_RDWR, 0600);
    assert_true(fd >= 0);
    assert_int_equal(simul_file_pwrite(fd, "abc", 3, 100), 3);
    assert_int_equal(simul_file_pwrite(fd, "XY", 2, 1), 2);
    assert_int_equal(lseek(fd, 0, SEEK_CUR), 0); /* pwrite leaves the offset alone */
    struct stat st;
    assert_int_equal(simul_file_fstat(fd, &st), 0);
    assert_int_equal(st.st_size, 103);
    char buf[16];
    assert_int_equal(simul_file_pread(fd, buf, sizeof buf, 101), 2);
    assert_memory_equal(buf, "bc", 2);
    assert_int_equal(simul_file_pread(fd, buf, 4, 0), 4);
    assert_memory_equal(buf, "\0XY\0", 4); /* the hole reads as zeros */
    assert_int_equal(simul_file_pread(fd, buf, sizeof buf, 103), 0);
    assert_int_equal(simul_file_pread(fd, buf, sizeof buf, 1 << 30), 0);
    assert_int_equal(simul_file_pread(fd, buf, sizeof buf, -1), -EINVAL);
    assert_int_equal(simul_file_pwrite(fd, buf, 1, -1), -EINVAL);
    /* truncate shrinks and grows */
    assert_int_equal(simul_file_truncate(fd, 10), 0);
    assert_int_equal(simul_file_fstat(fd, &st), 0);
    assert_int_equal(st.st_size, 10);
    assert_int_equal(simul_file_truncate(fd, 4096), 0);
    assert_int_equal(simul_file_stat(at("b"), &st), 0);
    assert_int_equal(st.st_size, 4096);
    assert_int_equal(simul_file_truncate(fd, -1), -EINVAL);
    assert_int_equal(simul_file_close(fd), 0);
    tmpdir_remove();
    return 0;
}

#define BIG (9u * 1024 * 1024 + 123) /* more than two SIMUL_FILE_IO_MAX chunks */

SIMUL_TASK_TEST(large_file_round_trip)
{
    (void)arg;
    tmpdir_make();
    unsigned char *src = malloc(BIG), *dst = malloc(BIG);
    assert_non_null(src);
    assert_non_null(dst);
    fill(src, BIG, 7);
    int fd = simul_file_open(at("big"), O_CREAT | O_RDWR | O_TRUNC, 0644);
    assert_true(fd >= 0);
    size_t written = 0;
    assert_int_equal(simul_file_write_all(fd, src, BIG, &written), BIG);
    assert_int_equal(written, BIG);
    assert_int_equal(simul_file_fsync(fd), 0);
    struct stat st;
    assert_int_equal(simul_file_fstat(fd, &st), 0);
    assert_int_equal(st.st_size, BIG);

    /* read back with pread: each call moves at most SIMUL_FILE_IO_MAX */
    size_t got = 0;
    while (got < BIG) {
        long n = simul_file_pread(fd, dst + got, BIG - got, (int64_t)got);
        assert_true(n > 0);
        assert_true((size_t)n <= SIMUL_FILE_IO_MAX);
        got += (size_t)n;
    }
    assert_int_equal(got, BIG);
    assert_memory_equal(src, dst, BIG);

    /* rewrite the middle through pwrite_all, read all back with read at the offset */
    fill(src + 1000000, 5000000, 99);
    assert_int_equal(simul_file_pwrite_all(fd, src + 1000000, 5000000, 1000000, &written), 5000000);
    assert_int_equal(written, 5000000);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    memset(dst, 0, BIG);
    got = 0;
    for (;;) {
        long n = simul_file_read(fd, dst + got, BIG - got + 10);
        assert_true(n >= 0);
        if (n == 0)
            break;
        got += (size_t)n;
    }
    assert_int_equal(got, BIG);
    assert_memory_equal(src, dst, BIG);
    assert_int_equal(simul_file_close(fd), 0);

    /* the whole-file helpers agree */
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(simul_file_read_bytes(at("big"), BIG, &data, &len), 0);
    assert_int_equal(len, BIG);
    assert_memory_equal(data, src, BIG);
    free(data);
    assert_int_equal(simul_file_read_bytes(at("big"), BIG - 1, &data, &len), -EMSGSIZE);
    assert_null(data);
    assert_int_equal(len, 0);
    assert_int_equal(simul_file_write_bytes(at("copy"), src, BIG, 0600), 0);
    assert_int_equal(simul_file_read_bytes(at("copy"), 1u << 30, &data, &len), 0);
    assert_int_equal(len, BIG);
    assert_memory_equal(data, src, BIG);
    free(data);
    free(src);
    free(dst);
    tmpdir_remove();
    return 0;
}

SIMUL_TASK_TEST(whole_file_helpers)
{
    (void)arg;
    tmpdir_make();
    assert_int_equal(simul_file_write_bytes(at("t"), "line one\nline two\n", 18, 0640), 0);
    struct stat st;
    assert_int_equal(simul_file_stat(at("t"), &st), 0);
    assert_int_equal(st.st_size, 18);
    assert_int_equal(st.st_mode & 0777, 0640 & ~umask(022) & 0777);
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(simul_file_read_bytes(at("t"), 18, &data, &len), 0);
    assert_int_equal(len, 18);
    assert_string_equal(data, "line one\nline two\n"); /* NUL-terminated */
    free(data);
    assert_int_equal(simul_file_read_bytes(at("t"), 17, &data, &len), -EMSGSIZE);
    assert_null(data);
    /* overwrite truncates; empty content gives an empty, terminated buffer */
    assert_int_equal(simul_file_write_bytes(at("t"), NULL, 0, 0644), 0);
    assert_int_equal(simul_file_read_bytes(at("t"), 0, &data, &len), 0);
    assert_int_equal(len, 0);
    assert_string_equal(data, "");
    free(data);
    /* a file whose size stat cannot tell */
    assert_int_equal(simul_file_read_bytes("/proc/self/status", 1 << 20, &data, NULL), 0);
    assert_non_null(strstr(data, "Pid:"));
    free(data);
    assert_int_equal(simul_file_read_bytes("/proc/self/status", 10, &data, &len), -EMSGSIZE);
    /* rename and unlink */
    assert_int_equal(simul_file_write_bytes(at("u"), "x", 1, 0644), 0);
    assert_int_equal(simul_file_rename(at("u"), at("v")), 0);
    assert_int_equal(simul_file_stat(at("u"), &st), -ENOENT);
    assert_int_equal(simul_file_stat(at("v"), &st), 0);
    assert_int_equal(simul_file_unlink(at("v")), 0);
    assert_int_equal(simul_file_unlink(at("v")), -ENOENT);
    assert_int_equal(simul_file_rename(at("v"), at("w")), -ENOENT);
    tmpdir_remove();
    return 0;
}

/* ---- errors ---------------------------------------------------------------------------------- */

SIMUL_TASK_TEST(errors_of_the_syscalls)
{
    (void)arg;
    tmpdir_make();
    char buf[16];
    struct stat st;
    assert_int_equal(simul_file_open(at("missing"), O_RDONLY, 0), -ENOENT);
    assert_int_equal(simul_file_open(at("missing/x"), O_CREAT | O_WRONLY, 0644), -ENOENT);
    assert_int_equal(simul_file_stat(at("missing"), &st), -ENOENT);
    char *data = (char *)1;
    assert_int_equal(simul_file_read_bytes(at("missing"), 10, &data, NULL), -ENOENT);
    assert_null(data);
    /* a directory */
    assert_int_equal(simul_file_open(dir, O_WRONLY, 0), -EISDIR);
    int dfd = simul_file_open(dir, O_RDONLY, 0);
    assert_true(dfd >= 0);
    assert_int_equal(simul_file_read(dfd, buf, sizeof buf), -EISDIR);
    assert_int_equal(simul_file_fstat(dfd, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(simul_file_close(dfd), 0);
    assert_int_equal(simul_file_read_bytes(dir, 100, &data, NULL), -EISDIR);
    /* bad fds: negative (not sent to the pool), closed, wrong direction */
    assert_int_equal(simul_file_read(-1, buf, 1), -EBADF);
    assert_int_equal(simul_file_write(-1, buf, 1), -EBADF);
    assert_int_equal(simul_file_fsync(-1), -EBADF);
    assert_int_equal(simul_file_fstat(-1, &st), -EBADF);
    assert_int_equal(simul_file_close(-1), -EBADF);
    int fd = simul_file_open(at("f"), O_CREAT | O_RDONLY, 0644);
    assert_true(fd >= 0);
    assert_int_equal(simul_file_write(fd, "x", 1), -EBADF);
    assert_int_equal(simul_file_close(fd), 0);
    assert_int_equal(simul_file_read(fd, buf, 1), -EBADF);
    assert_int_equal(simul_file_close(fd), -EBADF);
    /* bad arguments */
    assert_int_equal(simul_file_open(NULL, O_RDONLY, 0), -EINVAL);
    assert_int_equal(simul_file_read(0, NULL, 1), -EINVAL);
    assert_int_equal(simul_file_stat(NULL, &st), -EINVAL);
    assert_int_equal(simul_file_stat(at("f"), NULL), -EINVAL);
    assert_int_equal(simul_file_read_bytes(at("f"), 1, NULL, NULL), -EINVAL);
    /* permissions (root passes every check) */
    assert_int_equal(simul_file_write_bytes(at("secret"), "s", 1, 0000), 0);
    if (geteuid() != 0) {
        assert_int_equal(simul_file_open(at("secret"), O_RDONLY, 0), -EACCES);
        assert_int_equal(simul_file_read_bytes(at("secret"), 10, &data, NULL), -EACCES);
        assert_int_equal(chmod(dir, 0500), 0);
        assert_int_equal(simul_file_open(at("new"), O_CREAT | O_WRONLY, 0644), -EACCES);
        assert_int_equal(simul_file_unlink(at("f")), -EACCES);
        assert_int_equal(chmod(dir, 0700), 0);
    } else {
        print_message("running as root: -EACCES is not checked\n");
    }
    tmpdir_remove();
    return 0;
}

static void outside_a_task(void **state)
{
    (void)state;
    assert_int_equal(simul_file_open("/dev/null", O_RDONLY, 0), -EPERM);
    simul_loop *loop;
    assert_int_equal(simul_loop_new(&loop), 0);
    char c;
    assert_int_equal(simul_file_read(0, &c, 1), -EPERM);
    assert_int_equal(simul_file_close(0), -EPERM);
    assert_int_equal(simul_file_write_bytes("/tmp/x", "", 0, 0644), -EPERM);
    assert_int_equal(simul_loop_close(loop), 0);
}

/* ---- cancellation and deadlines -------------------------------------------------------------- */

/* Opening a FIFO for reading blocks in the kernel until a writer comes: a deadline must return
 * at once, and the fd the open gets when a writer finally comes must be closed, not leaked. */
SIMUL_TASK_TEST(thread_fifo_open_deadline_late_fd_closed)
{
    (void)arg;
    tmpdir_make();
    assert_int_equal(mkfifo(at("fifo"), 0600), 0);
    assert_true(pool_drained());
    int before = test_fd_count();
    /* The deadline may catch the call still queued, on a machine so loaded that no worker got the
     * CPU to take it: a correct outcome (nothing ran, nothing left in the pool), but not the one
     * this case is about, so it tries again with twice the time. The pool's state says which. */
    for (double timeout = 0.2;; timeout *= 2) {
        simul_scope sc;
        assert_int_equal(simul_scope_timeout(&sc, timeout), 0);
        double t0 = test_clock();
        assert_int_equal(simul_file_open(at("fifo"), O_RDONLY, 0), -ETIMEDOUT);
        double took = test_clock() - t0;
        assert_int_equal(simul_scope_end(&sc), 1);
        assert_true(took >= timeout * 0.75); /* never before the deadline */
        if (pool_inflight() == 1)
            break; /* the worker is inside open(2), which cannot return: no writer yet */
        assert_int_equal(pool_inflight(), 0);
        assert_true(timeout < STATE_BOUND);
    }
    /* The call is back while open(2) is not (at once, not when it returns). */
    assert_int_equal(pool_inflight(), 1);
    assert_int_equal(test_fd_count(), before);
    /* A writer appears (O_RDWR on a FIFO never blocks): the late open returns and is closed. */
    int w = open(at("fifo"), O_RDWR | O_CLOEXEC);
    assert_true(w >= 0);
    assert_true(pool_drained());
    assert_int_equal(test_fd_count(), before + 1);
    close(w);
    assert_int_equal(test_fd_count(), before);
    tmpdir_remove();
    return 0;
}

typedef struct reader_arg {
    int fd;
    unsigned char *buf;
    size_t len;
    long rc;
} reader_arg;

static int read_task(void *p)
{
    reader_arg *r = p;
    r->rc = simul_file_read(r->fd, r->buf, r->len);
    return 0;
}

/* A read stuck in the kernel is cancelled; when data comes later it goes to the library's
 * buffer, never to the caller's. */
SIMUL_TASK_TEST(thread_cancelled_read_never_touches_buffer)
{
    (void)arg;
    tmpdir_make();
    assert_int_equal(mkfifo(at("fifo"), 0600), 0);
    int fd = open(at("fifo"), O_RDWR | O_CLOEXEC); /* blocking: read(2) waits for data */
    assert_true(fd >= 0);
    reader_arg r = {.fd = fd, .len = 64, .rc = 1};
    r.buf = malloc(r.len);
    memset(r.buf, 0xAB, r.len);
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, read_task, &r, NULL), 0);
    assert_int_equal(simul_sleep(0.1), 0);
    assert_int_equal(pool_inflight(), 1);
    assert_true(pool_taken()); /* read(2) is stuck in the kernel, not waiting in the queue */
    assert_int_equal(simul_task_cancel(t), 0);
    assert_int_equal(simul_task_join(t, NULL), 0);
    assert_int_equal(pool_inflight(), 1); /* at once: read(2) is still stuck (no data yet) */
    assert_int_equal(r.rc, -ECANCELED);
    assert_int_equal(write(fd, "LATE DATA", 9), 9); /* the stuck read(2) takes it now */
    assert_true(pool_drained());
    for (size_t i = 0; i < r.len; i++)
        assert_int_equal(r.buf[i], 0xAB);
    free(r.buf);
    close(fd);
    tmpdir_remove();
    return 0;
}

typedef struct writer_arg {
    int fd;
    unsigned char *buf;
    size_t len;
    long rc;
} writer_arg;

static int write_task(void *p)
{
    writer_arg *w = p;
    w->rc = simul_file_write(w->fd, w->buf, w->len);
    return 0;
}

/* A write stuck on a full FIFO is cancelled and the caller frees its buffer at once: the write
 * still completes later, with the bytes it copied when the call began. */
SIMUL_TASK_TEST(thread_cancelled_write_uses_copied_data)
{
    (void)arg;
    tmpdir_make();
    assert_int_equal(mkfifo(at("fifo"), 0600), 0);
    int rd = open(at("fifo"), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    assert_true(rd >= 0);
    int wr = open(at("fifo"), O_WRONLY | O_CLOEXEC); /* blocking: write(2) waits for room */
    assert_true(wr >= 0);
    /* fill the pipe through a second, non-blocking description */
    int filler = open(at("fifo"), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    assert_true(filler >= 0);
    static char junk[65536];
    memset(junk, 'j', sizeof junk);
    size_t filled = 0;
    for (;;) {
        ssize_t n = write(filler, junk, sizeof junk);
        if (n < 0) {
            assert_int_equal(errno, EAGAIN);
            break;
        }
        filled += (size_t)n;
    }
    close(filler);

    writer_arg w = {.fd = wr, .len = 100, .rc = 1};
    w.buf = malloc(w.len);
    for (size_t i = 0; i < w.len; i++)
        w.buf[i] = (unsigned char)('A' + i % 26);
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, write_task, &w, NULL), 0);
    assert_int_equal(simul_sleep(0.1), 0);
    assert_int_equal(pool_inflight(), 1);
    assert_true(pool_taken()); /* write(2) is stuck on the full FIFO, not waiting in the queue */
    assert_int_equal(simul_task_cancel(t), 0);
    assert_int_equal(simul_task_join(t, NULL), 0);
    assert_int_equal(w.rc, -ECANCELED);
    memset(w.buf, 'X', w.len);
    free(w.buf);

    /* drain: the filler's bytes, then the 100 copied bytes the late write(2) adds */
    size_t total = 0, want = filled + 100;
    static char got[1 << 20];
    double end = test_clock() + STATE_BOUND;
    while (total < want && test_clock() < end) {
        ssize_t n = read(rd, got + total, sizeof got - total);
        if (n > 0)
            total += (size_t)n;
        else
            simul_sleep(0.002);
    }
    assert_int_equal(total, want);
    for (size_t i = 0; i < 100; i++)
        assert_int_equal((unsigned char)got[filled + i], (unsigned char)('A' + i % 26));
    assert_true(pool_drained());
    close(rd);
    close(wr);
    tmpdir_remove();
    return 0;
}

typedef struct unlink_arg {
    const char *path;
    int rc;
} unlink_arg;

static int unlink_task(void *p)
{
    unlink_arg *u = p;
    u->rc = simul_file_unlink(u->path);
    return 0;
}

static int open_fifo_task(void *p)
{
    return simul_file_open(p, O_RDONLY, 0); /* until a writer comes */
}

/* With every worker stuck, a call waits in the queue: cancelled there, it never runs. */
SIMUL_TASK_TEST(thread_cancelled_while_queued_never_runs)
{
    (void)arg;
    tmpdir_make();
    simul__file_test_set_max(2);
    assert_int_equal(mkfifo(at("fifo"), 0600), 0);
    assert_int_equal(simul_file_write_bytes(at("keep"), "k", 1, 0644), 0);
    simul_task *stuck[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(simul_task_spawn(&stuck[i], open_fifo_task, (void *)at("fifo"), NULL), 0);
    assert_int_equal(simul_sleep(0.1), 0);
    unlink_arg u = {.path = at("keep"), .rc = 1};
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, unlink_task, &u, NULL), 0);
    assert_int_equal(simul_sleep(0.05), 0);
    assert_int_equal(pool_inflight(), 3);
    assert_int_equal(simul_task_cancel(t), 0);
    assert_int_equal(simul_task_join(t, NULL), 0);
    assert_int_equal(u.rc, -ECANCELED);
    assert_int_equal(pool_inflight(), 2);
    /* release the stuck opens: each gets an fd, closed by its task */
    int w = open(at("fifo"), O_RDWR | O_CLOEXEC);
    for (int i = 0; i < 2; i++) {
        int fd = -1;
        assert_int_equal(simul_task_join(stuck[i], &fd), 0);
        assert_true(fd >= 0);
        assert_int_equal(simul_file_close(fd), 0);
    }
    close(w);
    assert_true(pool_drained());
    struct stat st;
    assert_int_equal(simul_file_stat(at("keep"), &st), 0); /* the unlink never ran */
    simul__file_test_set_max(0);
    tmpdir_remove();
    return 0;
}

/* A cancelled task's close still closes; a deadline around read_bytes frees what it read. */
SIMUL_TASK_TEST(thread_close_closes_even_when_cancelled)
{
    (void)arg;
    int before = test_fd_count();
    int fd = simul_file_open("/dev/null", O_RDONLY, 0);
    assert_true(fd >= 0);
    assert_int_equal(simul_task_cancel(simul_task_current()), 0);
    assert_int_equal(simul_file_close(fd), -ECANCELED);
    assert_int_equal(fcntl(fd, F_GETFD), -1);
    assert_int_equal(test_fd_count(), before);
    /* every other call refuses at once, starting nothing */
    assert_int_equal(simul_file_open("/dev/null", O_RDONLY, 0), -ECANCELED);
    char *data = (char *)1;
    assert_int_equal(simul_file_read_bytes("/dev/null", 1, &data, NULL), -ECANCELED);
    assert_null(data);
    simul_scope sh;
    assert_int_equal(simul_scope_shield(&sh), 0);
    assert_true(pool_drained());
    simul_scope_end(&sh);
    assert_int_equal(test_fd_count(), before);
    return 0;
}

/* Deadlines that expire while calls run, again and again: nothing leaks, every call either
 * finished (completion wins) or was interrupted. */
SIMUL_TASK_TEST(thread_deadlines_leak_nothing)
{
    (void)arg;
    tmpdir_make();
    assert_int_equal(simul_file_write_bytes(at("d"), "0123456789", 10, 0644), 0);
    assert_true(pool_drained());
    int before = test_fd_count();
    int interrupted = 0, completed = 0;
    for (int i = 0; i < 300; i++) {
        simul_scope sc;
        simul_scope_timeout(&sc, (i % 60) * 1e-6); /* around a round trip */
        int fd = simul_file_open(at("d"), O_RDONLY, 0);
        char *data = NULL;
        int rc = simul_file_read_bytes(at("d"), 100, &data, NULL);
        simul_scope_end(&sc);
        if (fd >= 0) {
            completed++;
            assert_int_equal(simul_file_close(fd), 0);
        } else {
            interrupted++;
            assert_true(fd == -ETIMEDOUT);
        }
        if (rc == 0)
            assert_string_equal(data, "0123456789");
        else
            assert_int_equal(rc, -ETIMEDOUT);
        free(data);
    }
    print_message("opens completed %d, interrupted %d\n", completed, interrupted);
    assert_true(pool_drained());
    assert_int_equal(test_fd_count(), before);
    tmpdir_remove();
    return 0;
}

/* ---- many tasks ------------------------------------------------------------------------------ */

#define NTASKS 64
#define PER_FILE (48 * 1024 + 7)

static int file_worker(void *p)
{
    unsigned id = (unsigned)(uintptr_t)p;
    char pathcopy[128]; /* not at(): two loop threads run this */
    snprintf(pathcopy, sizeof pathcopy, "%s/f%u", dir, id);
    unsigned char *src = malloc(PER_FILE), *dst = malloc(PER_FILE);
    fill(src, PER_FILE, id);
    int rc = -1;
    int fd = simul_file_open(pathcopy, O_CREAT | O_RDWR | O_TRUNC, 0644);
    if (fd < 0)
        goto out;
    /* written in two halves out of order */
    const size_t half = PER_FILE / 2;
    if (simul_file_pwrite_all(fd, src + half, PER_FILE - half, half, NULL) < 0)
        goto out_close;
    if (simul_file_pwrite_all(fd, src, half, 0, NULL) < 0)
        goto out_close;
    struct stat st;
    if (simul_file_fstat(fd, &st) < 0 || st.st_size != PER_FILE)
        goto out_close;
    if (simul_file_pread(fd, dst, PER_FILE, 0) != PER_FILE || memcmp(src, dst, PER_FILE) != 0)
        goto out_close;
    char *data = NULL;
    size_t len = 0;
    if (simul_file_read_bytes(pathcopy, PER_FILE, &data, &len) < 0)
        goto out_close;
    rc = len == PER_FILE && memcmp(data, src, PER_FILE) == 0 ? 0 : -EPROTO;
    free(data);
out_close:
    if (simul_file_close(fd) < 0)
        rc = -EIO;
    if (rc == 0)
        rc = simul_file_unlink(pathcopy);
out:
    free(src);
    free(dst);
    return rc;
}

SIMUL_TASK_TEST(thread_many_tasks_at_once)
{
    (void)arg;
    tmpdir_make();
    assert_true(pool_drained());
    int before = test_fd_count();
    simul_task *ts[NTASKS];
    for (unsigned i = 0; i < NTASKS; i++)
        assert_int_equal(simul_task_spawn(&ts[i], file_worker, (void *)(uintptr_t)i, NULL), 0);
    int results[NTASKS];
    assert_int_equal(simul_gather(ts, NTASKS, results), 0);
    for (int i = 0; i < NTASKS; i++)
        assert_int_equal(results[i], 0);
    assert_int_equal(test_fd_count(), before);
    int th, idle, inflight;
    simul__file_test_counts(&th, &idle, &inflight);
    assert_int_equal(inflight, 0);
    assert_true(th >= 1 && th <= 32);
    tmpdir_remove();
    return 0;
}

/* Two loops on two threads use the pool at once. */
static void *loop_thread(void *p)
{
    int *rc = p;
    *rc = simul_run(file_worker, (void *)(uintptr_t)(100 + (rc[1])));
    return NULL;
}

static void thread_two_loops_share_the_pool(void **state)
{
    (void)state;
    tmpdir_make();
    pthread_t th[2];
    int rc[2][2] = {{-1, 0}, {-1, 1}};
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, loop_thread, rc[i]), 0);
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(rc[i][0], 0);
    }
    tmpdir_remove();
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(round_trip_write_fsync_read),
    cmocka_unit_test(pread_pwrite_at_offsets),
    cmocka_unit_test(large_file_round_trip),
    cmocka_unit_test(whole_file_helpers),
    cmocka_unit_test(errors_of_the_syscalls),
    cmocka_unit_test(outside_a_task),
    cmocka_unit_test(thread_fifo_open_deadline_late_fd_closed),
    cmocka_unit_test(thread_cancelled_read_never_touches_buffer),
    cmocka_unit_test(thread_cancelled_write_uses_copied_data),
    cmocka_unit_test(thread_cancelled_while_queued_never_runs),
    cmocka_unit_test(thread_close_closes_even_when_cancelled),
    cmocka_unit_test(thread_deadlines_leak_nothing),
    cmocka_unit_test(thread_many_tasks_at_once),
    cmocka_unit_test(thread_two_loops_share_the_pool),
};

SIMUL_TEST_MAIN("file", tests)
