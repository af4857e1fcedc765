/* file.c — blocking file calls (open, read, write, fsync, stat, ...) run on a worker pool while
 * the calling task waits. The one idea: a worker only ever touches memory its job owns (a bounce
 * buffer, copied paths), so a caller that gives up returns at once, and whatever the late
 * syscall leaves behind (an fd, a buffer) is released by the worker when the syscall returns. */
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pool.h"

#define IDLE_NS (10 * 1000000000LL) /* an idle worker exits after this */
#define READ_FIRST (64 * 1024)      /* read_bytes' first buffer when the size is unknown */

/* Files have their own pool (pool.c), sized as the executor's: a FIFO open or a hung NFS mount
 * that holds workers must not starve to_thread users, and the reverse. */
static simul__pool pool = SIMUL__POOL_INIT(simul__pool_default_max, IDLE_NS);

enum op {
    OP_OPEN,
    OP_CLOSE,
    OP_READ,
    OP_PREAD,
    OP_WRITE,
    OP_PWRITE,
    OP_FSYNC,
    OP_FDATASYNC,
    OP_TRUNCATE,
    OP_STAT,
    OP_FSTAT,
    OP_UNLINK,
    OP_RENAME,
    OP_READ_BYTES,
    OP_WRITE_BYTES,
};

typedef struct fjob {
    simul__job base;
    enum op op;
    int fd; /* in: the fd; out (open): the new one */
    int flags;
    unsigned mode;
    int64_t offset;     /* pread / pwrite / truncate */
    size_t len;         /* bytes in buf; read_bytes: the limit */
    long rc;            /* the syscall's count or -errno */
    char *path, *path2; /* copies, in the job's own allocation */
    char *buf;          /* the bounce buffer (in the job's allocation), or read_bytes' data */
    size_t got;         /* read_bytes: bytes in buf */
    struct stat st;
} fjob;

/* ---- the worker side ---------------------------------------------------------------------- */

static long count_or_errno(ssize_t n)
{
    return n < 0 ? -errno : (long)n;
}

/* rc = the call's count (0 for calls that return 0) or -errno, the call made again while a
 * signal interrupts it (workers block signals, but a stop and continue still can). */
#define RESTARTED(rc, call)                                                                        \
    do {                                                                                           \
        do                                                                                         \
            (rc) = (call);                                                                         \
        while ((rc) < 0 && errno == EINTR);                                                        \
        (rc) = count_or_errno(rc);                                                                 \
    } while (0)

/* open + read to EOF with a limit, all on the worker: one round trip for a whole file. */
static long read_whole(fjob *j)
{
    int fd;
    RESTARTED(fd, open(j->path, O_RDONLY | O_CLOEXEC));
    if (fd < 0)
        return fd;
    struct stat st;
    long rc = 0;
    size_t cap = j->len < READ_FIRST ? j->len + 1 : READ_FIRST;
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        goto out;
    }
    if (S_ISDIR(st.st_mode)) {
        rc = -EISDIR;
        goto out;
    }
    /* The size is a hint (procfs says 0, the file may grow): one byte more shows EOF at once. */
    if (S_ISREG(st.st_mode) && st.st_size > 0)
        cap = (uint64_t)st.st_size < j->len ? (size_t)st.st_size + 1 : j->len + 1;
    char *data = malloc(cap + 1);
    if (!data) {
        rc = -ENOMEM;
        goto out;
    }
    size_t got = 0;
    for (;;) {
        if (got == cap) {
            if (cap > j->len) {
                rc = -EMSGSIZE;
                break;
            }
            size_t ncap = cap <= j->len / 2 ? cap * 2 : j->len + 1;
            char *p = realloc(data, ncap + 1);
            if (!p) {
                rc = -ENOMEM;
                break;
            }
            data = p;
            cap = ncap;
        }
        ssize_t n = read(fd, data + got, cap - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            break;
        }
        if (n == 0)
            break;
        got += (size_t)n;
        if (got > j->len) {
            rc = -EMSGSIZE;
            break;
        }
    }
    if (rc < 0) {
        free(data);
    } else {
        data[got] = '\0';
        j->buf = data;
        j->got = got;
    }
out:
    close(fd);
    return rc;
}

/* write_all on a fresh file (O_TRUNC), all on the worker. */
static long write_whole(fjob *j)
{
    int fd;
    RESTARTED(fd, open(j->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, j->mode));
    if (fd < 0)
        return fd;
    long rc = 0;
    size_t done = 0;
    while (done < j->len) {
        ssize_t n = write(fd, j->buf + done, j->len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? -errno : -EIO;
            break;
        }
        done += (size_t)n;
    }
    /* close reports deferred write errors (NFS, quotas): they are this call's errors too. */
    if (close(fd) < 0 && rc == 0 && errno != EINTR)
        rc = -errno;
    return rc;
}

static void file_work(simul__job *base)
{
    fjob *j = (fjob *)base;
    long rc;
    switch (j->op) {
    case OP_OPEN:
        RESTARTED(rc, open(j->path, j->flags | O_CLOEXEC, j->mode));
        break;
    case OP_CLOSE:
        /* Linux closes the fd even when close() reports EINTR: never retry. */
        rc = close(j->fd) < 0 && errno != EINTR ? -errno : 0;
        break;
    case OP_READ:
        RESTARTED(rc, read(j->fd, j->buf, j->len));
        break;
    case OP_PREAD:
        RESTARTED(rc, pread(j->fd, j->buf, j->len, (off_t)j->offset));
        break;
    case OP_WRITE:
        RESTARTED(rc, write(j->fd, j->buf, j->len));
        break;
    case OP_PWRITE:
        RESTARTED(rc, pwrite(j->fd, j->buf, j->len, (off_t)j->offset));
        break;
    case OP_FSYNC:
        rc = fsync(j->fd) < 0 ? -errno : 0;
        break;
    case OP_FDATASYNC:
        rc = fdatasync(j->fd) < 0 ? -errno : 0;
        break;
    case OP_TRUNCATE:
        RESTARTED(rc, ftruncate(j->fd, (off_t)j->offset));
        break;
    case OP_STAT:
        rc = stat(j->path, &j->st) < 0 ? -errno : 0;
        break;
    case OP_FSTAT:
        rc = fstat(j->fd, &j->st) < 0 ? -errno : 0;
        break;
    case OP_UNLINK:
        rc = unlink(j->path) < 0 ? -errno : 0;
        break;
    case OP_RENAME:
        rc = rename(j->path, j->path2) < 0 ? -errno : 0;
        break;
    case OP_READ_BYTES:
        rc = read_whole(j);
        break;
    case OP_WRITE_BYTES:
        rc = write_whole(j);
        break;
    default:
        rc = -ENOSYS;
        break;
    }
    j->rc = rc;
}

/* On the worker, after file_work, when the task gave up: whatever the syscall produced goes. */
static void file_drop(simul__job *base)
{
    fjob *j = (fjob *)base;
    if (j->op == OP_OPEN && j->rc >= 0)
        close((int)j->rc); /* the open its caller gave up on: nobody else knows this fd */
    if (j->op == OP_READ_BYTES)
        free(j->buf);
    free(j);
}

/* ---- the task side ------------------------------------------------------------------------ */

/* A job with room for `extra` bytes (the bounce buffer) and copies of the paths. Not zeroed
 * beyond the header: a bounce buffer of megabytes is written before it is read. */
static fjob *job_new(enum op op, size_t extra, const char *path, const char *path2)
{
    size_t l1 = path ? strlen(path) + 1 : 0, l2 = path2 ? strlen(path2) + 1 : 0;
    if (extra > SIZE_MAX - sizeof(fjob) - l1 - l2)
        return NULL;
    fjob *j = malloc(sizeof *j + l1 + l2 + extra);
    if (!j)
        return NULL;
    memset(j, 0, sizeof *j);
    j->base.work = file_work;
    j->base.drop = file_drop;
    j->op = op;
    j->fd = -1;
    char *p = (char *)(j + 1);
    if (path) {
        j->path = memcpy(p, path, l1);
        p += l1;
    }
    if (path2) {
        j->path2 = memcpy(p, path2, l2);
        p += l2;
    }
    if (extra)
        j->buf = p;
    return j;
}

/* The calling task, or an error for a call that may not suspend now (nothing is started). */
static int enter(const char *call)
{
    simul_task *t = simul__task_require(call);
    if (!t)
        return -EPERM;
    return simul__task_check(t);
}

/* Runs j on the pool and waits. Returns 0 once the syscall ran: j is still the caller's, with
 * the result in j->rc. Returns an interruption (-ECANCELED / -ETIMEDOUT / -ENOMEM) or a pool
 * failure (no worker could be started) with j disposed of: freed here if the syscall never ran
 * (*never_ran set), else left to the worker, which frees it when the syscall returns. */
static int run(fjob *j, bool *never_ran)
{
    int fate;
    int rc = simul__pool_run(&pool, &j->base, &fate);
    *never_ran = false;
    if (rc < 0 && fate == SIMUL__JOB_DROPPED)
        return rc;
    if (rc < 0) {
        *never_ran = true; /* taken off the queue, or no worker could be started */
        free(j);
        return rc;
    }
    /* rc 0, also with SIMUL__JOB_LATE (done just before an interruption): the work is real, so
     * its result is reported; the interruption shows at the next suspending call. */
    return 0;
}

/* Runs a job whose only output is j->rc, and frees it. */
static long run_simple(fjob *j)
{
    bool never_ran;
    int rc = run(j, &never_ran);
    if (rc < 0)
        return rc;
    long r = j->rc;
    free(j);
    return r;
}

int simul_file_open(const char *path, int flags, unsigned mode)
{
    int rc = enter(__func__);
    if (rc < 0)
        return rc;
    if (!path)
        return -EINVAL;
    fjob *j = job_new(OP_OPEN, 0, path, NULL);
    if (!j)
        return -ENOMEM;
    j->flags = flags;
    j->mode = mode;
    long fd = run_simple(j);
    if (fd >= 0)
        simul_fd_forget((int)fd); /* a record left by an earlier fd of this number is stale */
    return (int)fd;
}

int simul_file_close(int fd)
{
    simul_task *t = simul__task_require(__func__);
    if (!t)
        return -EPERM;
    if (fd < 0)
        return -EBADF;
    simul_fd_forget(fd);
    int rc = simul__task_check(t);
    fjob *j = rc < 0 ? NULL : job_new(OP_CLOSE, 0, NULL, NULL);
    if (j) {
        j->fd = fd;
        bool never_ran;
        rc = run(j, &never_ran);
        if (rc == 0) {
            rc = (int)j->rc;
            free(j);
            return rc;
        }
        if (!never_ran)
            return rc; /* the worker is closing it */
    }
    /* The fd must go whatever happens (the caller will never close it again): here then. A
     * close that could block is rare enough (NFS flushing) to accept on this path. */
    int crc = close(fd) < 0 && errno != EINTR ? -errno : 0;
    return rc < 0 ? rc : crc;
}

/* What every read and write checks and makes: a job for at most SIMUL_FILE_IO_MAX bytes, with a
 * bounce buffer of that size. NULL with *rc set when the call is refused (nothing started). */
static fjob *io_job(enum op op, const char *call, int fd, const void *buf, size_t len,
                    int64_t offset, int *rc)
{
    if ((*rc = enter(call)) < 0)
        return NULL;
    *rc = fd < 0 ? -EBADF : (!buf && len) || offset < 0 ? -EINVAL : 0;
    if (*rc < 0)
        return NULL;
    if (len > SIMUL_FILE_IO_MAX)
        len = SIMUL_FILE_IO_MAX;
    fjob *j = job_new(op, len, NULL, NULL);
    if (!j) {
        *rc = -ENOMEM;
        return NULL;
    }
    j->fd = fd;
    j->len = len;
    j->offset = offset;
    return j;
}

/* One read or pread through the bounce buffer. */
static long read_common(enum op op, const char *call, int fd, void *buf, size_t len, int64_t offset)
{
    int rc;
    fjob *j = io_job(op, call, fd, buf, len, offset, &rc);
    if (!j)
        return rc;
    bool never_ran;
    if ((rc = run(j, &never_ran)) < 0)
        return rc; /* the caller's buffer is untouched, now and later */
    long n = j->rc;
    if (n > 0)
        memcpy(buf, j->buf, (size_t)n);
    free(j);
    return n;
}

long simul_file_read(int fd, void *buf, size_t len)
{
    return read_common(OP_READ, __func__, fd, buf, len, 0);
}

long simul_file_pread(int fd, void *buf, size_t len, int64_t offset)
{
    return read_common(OP_PREAD, __func__, fd, buf, len, offset);
}

/* One write or pwrite, copied into the bounce buffer before it starts. */
static long write_common(enum op op, const char *call, int fd, const void *buf, size_t len,
                         int64_t offset)
{
    int rc;
    fjob *j = io_job(op, call, fd, buf, len, offset, &rc);
    if (!j)
        return rc;
    if (j->len)
        memcpy(j->buf, buf, j->len);
    return run_simple(j);
}

long simul_file_write(int fd, const void *buf, size_t len)
{
    return write_common(OP_WRITE, __func__, fd, buf, len, 0);
}

long simul_file_pwrite(int fd, const void *buf, size_t len, int64_t offset)
{
    return write_common(OP_PWRITE, __func__, fd, buf, len, offset);
}

static long write_all(enum op op, const char *call, int fd, const void *buf, size_t len,
                      int64_t offset, size_t *written)
{
    size_t done = 0;
    if (written)
        *written = 0;
    if (len > LONG_MAX)
        return -EINVAL;
    if (offset < 0 || (op == OP_PWRITE && (uint64_t)len > (uint64_t)(INT64_MAX - offset)))
        return -EINVAL;
    do { /* len 0 still makes one call: the cancellation point and the fd check */
        size_t chunk = len - done;
        long n =
            write_common(op, call, fd, (const char *)buf + done, chunk, offset + (int64_t)done);
        if (n < 0)
            return n;
        if (n == 0 && chunk > 0)
            return -EIO; /* a regular file never takes nothing; do not spin on a device that does */
        done += (size_t)n;
        if (written)
            *written = done;
    } while (done < len);
    return (long)len;
}

long simul_file_write_all(int fd, const void *buf, size_t len, size_t *written)
{
    return write_all(OP_WRITE, __func__, fd, buf, len, 0, written);
}

long simul_file_pwrite_all(int fd, const void *buf, size_t len, int64_t offset, size_t *written)
{
    return write_all(OP_PWRITE, __func__, fd, buf, len, offset, written);
}

static int fd_op(enum op op, const char *call, int fd, int64_t arg)
{
    int rc = enter(call);
    if (rc < 0)
        return rc;
    if (fd < 0)
        return -EBADF;
    if (arg < 0)
        return -EINVAL;
    fjob *j = job_new(op, 0, NULL, NULL);
    if (!j)
        return -ENOMEM;
    j->fd = fd;
    j->offset = arg;
    return (int)run_simple(j);
}

int simul_file_fsync(int fd)
{
    return fd_op(OP_FSYNC, __func__, fd, 0);
}

int simul_file_fdatasync(int fd)
{
    return fd_op(OP_FDATASYNC, __func__, fd, 0);
}

int simul_file_truncate(int fd, int64_t length)
{
    return fd_op(OP_TRUNCATE, __func__, fd, length);
}

static int stat_common(enum op op, const char *call, const char *path, int fd, struct stat *st)
{
    int rc = enter(call);
    if (rc < 0)
        return rc;
    if (!st || (op == OP_STAT && !path))
        return -EINVAL;
    if (op == OP_FSTAT && fd < 0)
        return -EBADF;
    fjob *j = job_new(op, 0, path, NULL);
    if (!j)
        return -ENOMEM;
    j->fd = fd;
    bool never_ran;
    if ((rc = run(j, &never_ran)) < 0)
        return rc;
    rc = (int)j->rc;
    if (rc == 0)
        *st = j->st;
    free(j);
    return rc;
}

int simul_file_stat(const char *path, struct stat *st)
{
    return stat_common(OP_STAT, __func__, path, -1, st);
}

int simul_file_fstat(int fd, struct stat *st)
{
    return stat_common(OP_FSTAT, __func__, NULL, fd, st);
}

int simul_file_unlink(const char *path)
{
    int rc = enter(__func__);
    if (rc < 0)
        return rc;
    if (!path)
        return -EINVAL;
    fjob *j = job_new(OP_UNLINK, 0, path, NULL);
    return j ? (int)run_simple(j) : -ENOMEM;
}

int simul_file_rename(const char *from, const char *to)
{
    int rc = enter(__func__);
    if (rc < 0)
        return rc;
    if (!from || !to)
        return -EINVAL;
    fjob *j = job_new(OP_RENAME, 0, from, to);
    return j ? (int)run_simple(j) : -ENOMEM;
}

int simul_file_read_bytes(const char *path, size_t limit, char **data, size_t *len)
{
    if (data)
        *data = NULL;
    if (len)
        *len = 0;
    int rc = enter(__func__);
    if (rc < 0)
        return rc;
    if (!path || !data || limit > (size_t)LONG_MAX - 1)
        return -EINVAL;
    fjob *j = job_new(OP_READ_BYTES, 0, path, NULL);
    if (!j)
        return -ENOMEM;
    j->len = limit;
    bool never_ran;
    if ((rc = run(j, &never_ran)) < 0)
        return rc; /* the worker frees what it read */
    rc = (int)j->rc;
    if (rc == 0) {
        *data = j->buf;
        if (len)
            *len = j->got;
    }
    free(j);
    return rc;
}

int simul_file_write_bytes(const char *path, const void *data, size_t len, unsigned mode)
{
    int rc = enter(__func__);
    if (rc < 0)
        return rc;
    if (!path || (!data && len))
        return -EINVAL;
    fjob *j = job_new(OP_WRITE_BYTES, len, path, NULL);
    if (!j)
        return -ENOMEM;
    if (len)
        memcpy(j->buf, data, len);
    j->len = len;
    j->mode = mode;
    return (int)run_simple(j);
}

/* ---- test hooks (the unit tests link the static library) ------------------------------------- */

/* The file pool's counters: workers, idle ones, jobs not yet given back or dropped. */
void simul__file_test_counts(int *threads, int *idle, int *inflight);
void simul__file_test_counts(int *threads, int *idle, int *inflight)
{
    simul__pool_counts(&pool, threads, idle, inflight);
}

/* File jobs still queued: a test waits for 0 to know a worker has taken its call. */
int simul__file_test_queued(void);
int simul__file_test_queued(void)
{
    return simul__pool_queued(&pool);
}

/* Sets the file pool's maximum number of workers (0 restores the default). */
void simul__file_test_set_max(int n);
void simul__file_test_set_max(int n)
{
    simul__pool_set_max(&pool, n);
}
