#include "core/atomic_file.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"

/* 8 hex digits of FNV-1a over the host name: tells temp files of this host
 * from those another host writes into a shared directory. */
unsigned xf_atomic_host_tag(void)
{
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) != 0)
        host[0] = '\0';
    unsigned h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)host; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h;
}

bool xf_process_gone(long pid)
{
    /* EPERM means it exists (another user's process) */
    return pid > 0 && kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

/* dirname/basename of `path` (they may modify their argument: copies). */
static int split_path(const char *path, char **dir, char **base)
{
    char *a = strdup(path), *b = strdup(path);
    *dir = *base = NULL;
    if (!a || !b) {
        free(a);
        free(b);
        return -1;
    }
    *dir = strdup(dirname(a));
    *base = strdup(basename(b));
    free(a);
    free(b);
    if (!*dir || !*base) {
        free(*dir);
        free(*base);
        *dir = *base = NULL;
        return -1;
    }
    return 0;
}

char *xf_atomic_temp_prefix(const char *path, long pid)
{
    char *dir, *base;
    if (split_path(path, &dir, &base) != 0)
        return NULL;
    size_t n = strlen(dir) + strlen(base) + 48;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s/.%s.tmp.%08x-%ld.", dir, base, xf_atomic_host_tag(), pid);
    free(dir);
    free(base);
    return s;
}

/* Parses "PID.XXXXXX" (what follows ".BASE.tmp.HOST-" in a temp name). */
static long temp_name_pid(const char *rest)
{
    char *end;
    errno = 0;
    long pid = strtol(rest, &end, 10);
    if (errno || end == rest || pid <= 0 || *end != '.' || strlen(end + 1) != 6)
        return -1;
    for (const char *p = end + 1; *p; p++)
        if (!isalnum((unsigned char)*p))
            return -1;
    return pid;
}

/* Removes a temp directory of an export: regular files only (an export
 * writes a flat directory), then the directory; anything else in it keeps
 * it (not ours to remove). 0 when it is gone. */
static int remove_flat_temp_dir(int parent_fd, const char *name)
{
    int fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        struct stat st;
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
            fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
            unlinkat(dirfd(d), e->d_name, 0);
    }
    closedir(d);
    return unlinkat(parent_fd, name, AT_REMOVEDIR);
}

static int remove_stale(const char *path, bool dirs)
{
    char *dir, *base;
    if (split_path(path, &dir, &base) != 0)
        return 0;
    int removed = 0;
    size_t plen = strlen(base) + 32;
    char *prefix = malloc(plen);
    DIR *d = prefix ? opendir(dir) : NULL;
    if (d) {
        snprintf(prefix, plen, ".%s.tmp.%08x-", base, xf_atomic_host_tag());
        size_t pl = strlen(prefix);
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strncmp(e->d_name, prefix, pl) != 0)
                continue;
            long pid = temp_name_pid(e->d_name + pl);
            if (pid < 0 || pid == (long)getpid())
                continue;
            if (!xf_process_gone(pid))
                continue;
            struct stat st;
            if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
                !(dirs ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode)))
                continue;
            if ((dirs ? remove_flat_temp_dir(dirfd(d), e->d_name)
                      : unlinkat(dirfd(d), e->d_name, 0)) == 0) {
                removed++;
                xf_log_info("%s: removed %s/%s, a temp %s left by process %ld, which is gone",
                            path, dir, e->d_name, dirs ? "directory" : "file", pid);
            }
        }
        closedir(d);
    }
    free(prefix);
    free(dir);
    free(base);
    return removed;
}

int xf_atomic_remove_stale(const char *path) { return remove_stale(path, false); }

int xf_atomic_remove_stale_dirs(const char *path) { return remove_stale(path, true); }

int xf_atomic_open(xf_atomic_file *f, const char *path, xf_error *err)
{
    memset(f, 0, sizeof *f);
    f->fd = -1;
    f->final_path = strdup(path);
    /* ".NAME.tmp.HOST-PID.XXXXXX" beside the destination: same filesystem, so
     * rename is atomic; HOST-PID lets a later run tell a dead writer's temp */
    char *prefix = xf_atomic_temp_prefix(path, (long)getpid());
    f->tmp_path = prefix ? malloc(strlen(prefix) + 7) : NULL;
    if (!f->final_path || !f->tmp_path) {
        free(prefix);
        xf_atomic_abort(f);
        return xf_fail(err, "%s: out of memory", path);
    }
    sprintf(f->tmp_path, "%sXXXXXX", prefix);
    free(prefix);
    xf_atomic_remove_stale(path);
    f->fd = mkstemp(f->tmp_path);
    if (f->fd < 0) {
        int e = errno;
        free(f->tmp_path);
        f->tmp_path = NULL;
        xf_atomic_abort(f);
        return xf_fail(err, "%s: cannot create output: %s", path, strerror(e));
    }
    /* mkstemp creates 0600; an output file should get the usual umask'd mode */
    mode_t um = umask(0);
    umask(um);
    fchmod(f->fd, 0666 & ~um);
    f->open = true;
    return 0;
}

int xf_atomic_write(xf_atomic_file *f, const void *buf, size_t n, xf_error *err)
{
    if (!f->open)
        return xf_fail(err, "%s: write after close", f->final_path ? f->final_path : "?");
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(f->fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            xf_fail(err, "%s: write failed: %s", f->final_path, strerror(e));
            xf_atomic_abort(f);
            return -1;
        }
        p += w;
        n -= (size_t)w;
        f->pos += (uint64_t)w;
    }
    return 0;
}

int xf_atomic_pad(xf_atomic_file *f, uint64_t alignment, xf_error *err)
{
    static const unsigned char zeros[256];
    uint64_t rem = f->pos % alignment;
    if (rem == 0)
        return 0;
    uint64_t need = alignment - rem;
    while (need > 0) {
        size_t chunk = need > sizeof zeros ? sizeof zeros : (size_t)need;
        if (xf_atomic_write(f, zeros, chunk, err) != 0)
            return -1;
        need -= chunk;
    }
    return 0;
}

/* fsync of the destination's directory, which makes the rename durable;
 * 0, or the errno of the failure. */
static int fsync_dir_of(const char *path)
{
    char *dup = strdup(path);
    if (!dup)
        return ENOMEM;
    int e = 0;
    int dfd = open(dirname(dup), O_RDONLY | O_DIRECTORY);
    if (dfd < 0)
        e = errno;
    else {
        /* EINVAL: a filesystem that cannot sync directories; nothing to report */
        if (fsync(dfd) != 0 && errno != EINVAL)
            e = errno;
        close(dfd);
    }
    free(dup);
    return e;
}

int xf_atomic_commit(xf_atomic_file *f, xf_error *err)
{
    if (!f->open)
        return xf_fail(err, "%s: commit after close", f->final_path ? f->final_path : "?");
    if (fsync(f->fd) != 0) {
        int e = errno;
        xf_fail(err, "%s: fsync failed: %s", f->final_path, strerror(e));
        xf_atomic_abort(f);
        return -1;
    }
    /* close can report a deferred write error (NFS); the fd is gone either way */
    int cr = close(f->fd);
    int ce = errno;
    f->fd = -1;
    if (cr != 0 && ce != EINTR) {
        xf_fail(err, "%s: close failed: %s", f->final_path, strerror(ce));
        xf_atomic_abort(f);
        return -1;
    }
    if (rename(f->tmp_path, f->final_path) != 0) {
        int e = errno;
        xf_fail(err, "%s: rename failed: %s", f->final_path, strerror(e));
        xf_atomic_abort(f);
        return -1;
    }
    free(f->tmp_path);
    f->tmp_path = NULL;
    /* The file is complete under its final name; a failed directory fsync
     * means the rename may not survive a crash, which the caller must hear. */
    int de = fsync_dir_of(f->final_path);
    if (de != 0)
        xf_fail(err, "%s: written, but the fsync of its directory failed: %s (the new file may "
                "not survive a crash)", f->final_path, strerror(de));
    f->open = false;
    xf_atomic_abort(f); /* frees the rest */
    return de != 0 ? -1 : 0;
}

void xf_atomic_abort(xf_atomic_file *f)
{
    if (f->fd >= 0) {
        close(f->fd);
        f->fd = -1;
    }
    if (f->tmp_path) {
        unlink(f->tmp_path);
        free(f->tmp_path);
        f->tmp_path = NULL;
    }
    free(f->final_path);
    f->final_path = NULL;
    f->open = false;
}
