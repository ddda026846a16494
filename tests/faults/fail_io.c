/* fail_io: an LD_PRELOAD shim that makes I/O calls of a process fail, for
 * the fault-injection tests (tests/faults/test_faults.c, docs/faults.md).
 *
 * Only calls on files whose path contains $XF_FAULT_PATH are touched (an fd
 * is resolved through /proc/self/fd), so the process can still print its
 * error on stderr; without XF_FAULT_PATH the shim does nothing.
 *
 *   XF_FAULT_OPS      comma list of calls to count, of: write pwrite fsync
 *                     fdatasync close rename renameat ftruncate fallocate
 *                     read pread (default: write)
 *   XF_FAULT_AT=K     the K-th counted call (1-based) fails, the others succeed
 *   XF_FAULT_AFTER=N  every counted call after the first N fails (a full disk)
 *   XF_FAULT_ERRNO    ENOSPC, EIO or EINTR (default EIO): errno of a failed call
 *   XF_FAULT_KILL_AT=K  SIGKILL the process at the K-th counted call, before it
 *                     runs; with XF_FAULT_KILL_PARTIAL=1 a write/pwrite first
 *                     writes half its bytes (a kill in the middle of a write)
 *   XF_FAULT_COUNT_FILE  at exit, the number of counted calls is written there
 *                     (how a test learns the range to sweep)
 *   XF_FAULT_TRUNCATE_MAPPED  after a successful mmap of a file whose path
 *                     contains this string, the file is truncated to half its
 *                     size (page-aligned down): a file that changes while mapped
 *
 * A failed close still closes the descriptor (as Linux does when close
 * reports EIO); a failed write/fsync/rename has no effect. The calls glibc
 * makes internally (fread, fwrite, mkstemp's open) are not interposable and
 * are not seen; xfquant writes outputs with write(2) and reads with read(2)
 * (core/atomic_file.c, core/read_file.c), so all of its file I/O is. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

/* The project builds with -fvisibility=hidden (libxfquant exports only its
 * API); the libc names this shim interposes must be exported. */
#pragma GCC visibility push(default)

enum {
    OP_WRITE,
    OP_PWRITE,
    OP_FSYNC,
    OP_FDATASYNC,
    OP_CLOSE,
    OP_RENAME,
    OP_RENAMEAT,
    OP_FTRUNCATE,
    OP_FALLOCATE,
    OP_READ,
    OP_PREAD,
    OP_COUNT
};
static const char *const op_names[OP_COUNT] = {"write",    "pwrite",    "fsync",     "fdatasync",
                                               "close",    "rename",    "renameat",  "ftruncate",
                                               "fallocate", "read",     "pread"};

/* The shim's configuration, read once from the environment, and the call
 * counter: a test tool's own state, not part of xfquant. */
static struct {
    bool ready, active;
    bool ops[OP_COUNT];
    const char *path;
    const char *truncate_mapped;
    long at, after, kill_at;
    bool kill_partial;
    int err;
    const char *count_file;
    long count;
} cfg;

static void configure(void)
{
    if (cfg.ready)
        return;
    cfg.path = getenv("XF_FAULT_PATH");
    cfg.truncate_mapped = getenv("XF_FAULT_TRUNCATE_MAPPED");
    cfg.active = cfg.path && *cfg.path;
    const char *ops = getenv("XF_FAULT_OPS");
    if (!ops || !*ops)
        ops = "write";
    for (int i = 0; i < OP_COUNT; i++) {
        size_t n = strlen(op_names[i]);
        for (const char *p = ops; (p = strstr(p, op_names[i])) != NULL; p += n)
            if ((p == ops || p[-1] == ',') && (p[n] == ',' || p[n] == '\0'))
                cfg.ops[i] = true;
    }
    const char *s;
    cfg.at = (s = getenv("XF_FAULT_AT")) ? atol(s) : 0;
    cfg.after = (s = getenv("XF_FAULT_AFTER")) ? atol(s) : -1;
    cfg.kill_at = (s = getenv("XF_FAULT_KILL_AT")) ? atol(s) : 0;
    cfg.kill_partial = (s = getenv("XF_FAULT_KILL_PARTIAL")) && !strcmp(s, "1");
    s = getenv("XF_FAULT_ERRNO");
    cfg.err = s && !strcmp(s, "ENOSPC") ? ENOSPC : s && !strcmp(s, "EINTR") ? EINTR : EIO;
    cfg.count_file = getenv("XF_FAULT_COUNT_FILE");
    __atomic_store_n(&cfg.ready, true, __ATOMIC_RELEASE);
}

/* Read the configuration at load time: the wrappers evaluate the path
 * filters (which read cfg) before judge() would configure lazily. */
__attribute__((constructor)) static void configure_at_load(void)
{
    configure();
}

static void *real(const char *name)
{
    void *f = dlsym(RTLD_NEXT, name);
    if (!f)
        abort(); /* the libc symbol must exist; nothing sensible to do without it */
    return f;
}

/* Does fd refer to a file whose path contains cfg.path? */
static bool fd_matches(int fd, const char *needle)
{
    if (fd < 0 || !needle || !*needle)
        return false;
    char link[64], target[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n <= 0)
        return false;
    target[n] = '\0';
    return strstr(target, needle) != NULL;
}

static bool path_matches(const char *p)
{
    return p && cfg.path && *cfg.path && strstr(p, cfg.path) != NULL;
}

typedef enum { GO_ON, FAIL, KILL } verdict;

/* Counts a call that matched and says what to do with it. */
static verdict judge(int op, bool matched)
{
    configure();
    if (!cfg.active || !cfg.ops[op] || !matched)
        return GO_ON;
    long k = __atomic_add_fetch(&cfg.count, 1, __ATOMIC_SEQ_CST);
    if (cfg.kill_at > 0 && k == cfg.kill_at)
        return KILL;
    if ((cfg.at > 0 && k == cfg.at) || (cfg.after >= 0 && k > cfg.after))
        return FAIL;
    return GO_ON;
}

static void die(void)
{
    kill(getpid(), SIGKILL);
    for (;;)
        pause();
}

__attribute__((destructor)) static void report_count(void)
{
    configure();
    if (!cfg.count_file || !*cfg.count_file)
        return;
    FILE *f = fopen(cfg.count_file, "w");
    if (f) {
        fprintf(f, "%ld\n", __atomic_load_n(&cfg.count, __ATOMIC_SEQ_CST));
        fclose(f);
    }
}

ssize_t write(int fd, const void *buf, size_t n)
{
    static ssize_t (*f)(int, const void *, size_t);
    if (!f)
        f = (ssize_t(*)(int, const void *, size_t))real("write");
    switch (judge(OP_WRITE, fd > 2 && fd_matches(fd, cfg.path))) {
    case KILL:
        if (cfg.kill_partial && n > 1)
            f(fd, buf, n / 2);
        die();
        return -1;
    case FAIL: errno = cfg.err; return -1;
    default: return f(fd, buf, n);
    }
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    static ssize_t (*f)(int, const void *, size_t, off_t);
    if (!f)
        f = (ssize_t(*)(int, const void *, size_t, off_t))real("pwrite");
    switch (judge(OP_PWRITE, fd > 2 && fd_matches(fd, cfg.path))) {
    case KILL:
        if (cfg.kill_partial && n > 1)
            f(fd, buf, n / 2, off);
        die();
        return -1;
    case FAIL: errno = cfg.err; return -1;
    default: return f(fd, buf, n, off);
    }
}

ssize_t read(int fd, void *buf, size_t n)
{
    static ssize_t (*f)(int, void *, size_t);
    if (!f)
        f = (ssize_t(*)(int, void *, size_t))real("read");
    switch (judge(OP_READ, fd > 2 && fd_matches(fd, cfg.path))) {
    case KILL: die(); return -1;
    case FAIL: errno = cfg.err; return -1;
    default: return f(fd, buf, n);
    }
}

ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
    static ssize_t (*f)(int, void *, size_t, off_t);
    if (!f)
        f = (ssize_t(*)(int, void *, size_t, off_t))real("pread");
    switch (judge(OP_PREAD, fd > 2 && fd_matches(fd, cfg.path))) {
    case KILL: die(); return -1;
    case FAIL: errno = cfg.err; return -1;
    default: return f(fd, buf, n, off);
    }
}

/* fsync, fdatasync, ftruncate, fallocate: one shape, an fd and a result. */
#define FD_CALL(name, OP, params, args)                                   \
    int name params                                                       \
    {                                                                     \
        static int(*f) params;                                            \
        if (!f)                                                           \
            f = (int(*) params)real(#name);                               \
        switch (judge(OP, fd_matches(fd, cfg.path))) {                    \
        case KILL: die(); return -1;                                      \
        case FAIL: errno = cfg.err; return -1;                            \
        default: return f args;                                           \
        }                                                                 \
    }
FD_CALL(fsync, OP_FSYNC, (int fd), (fd))
FD_CALL(fdatasync, OP_FDATASYNC, (int fd), (fd))
FD_CALL(ftruncate, OP_FTRUNCATE, (int fd, off_t len), (fd, len))
FD_CALL(fallocate, OP_FALLOCATE, (int fd, int mode, off_t off, off_t len), (fd, mode, off, len))

int close(int fd)
{
    static int (*f)(int);
    if (!f)
        f = (int (*)(int))real("close");
    switch (judge(OP_CLOSE, fd > 2 && fd_matches(fd, cfg.path))) {
    case KILL: die(); return -1;
    case FAIL:
        f(fd); /* Linux releases the descriptor even when close reports an error */
        errno = cfg.err;
        return -1;
    default: return f(fd);
    }
}

int rename(const char *from, const char *to)
{
    static int (*f)(const char *, const char *);
    if (!f)
        f = (int (*)(const char *, const char *))real("rename");
    switch (judge(OP_RENAME, path_matches(from) || path_matches(to))) {
    case KILL: die(); return -1;
    case FAIL: errno = cfg.err; return -1;
    default: return f(from, to);
    }
}

int renameat(int dfrom, const char *from, int dto, const char *to)
{
    static int (*f)(int, const char *, int, const char *);
    if (!f)
        f = (int (*)(int, const char *, int, const char *))real("renameat");
    switch (judge(OP_RENAMEAT, path_matches(from) || path_matches(to))) {
    case KILL: die(); return -1;
    case FAIL: errno = cfg.err; return -1;
    default: return f(dfrom, from, dto, to);
    }
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    static void *(*f)(void *, size_t, int, int, int, off_t);
    if (!f)
        f = (void *(*)(void *, size_t, int, int, int, off_t))real("mmap");
    void *p = f(addr, len, prot, flags, fd, off);
    configure();
    if (p != MAP_FAILED && fd >= 0 && fd_matches(fd, cfg.truncate_mapped)) {
        struct stat st;
        long page = sysconf(_SC_PAGESIZE);
        if (fstat(fd, &st) == 0 && st.st_size > 0) {
            char link[64], target[4096];
            snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
            ssize_t n = readlink(link, target, sizeof target - 1);
            if (n > 0) {
                target[n] = '\0';
                off_t keep = st.st_size / 2 / page * page;
                if (truncate(target, keep) != 0)
                    abort(); /* the test asked for it: a silent no-op would pass it */
            }
        }
    }
    return p;
}
