#include "core/atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int xf_atomic_open(xf_atomic_file *f, const char *path, xf_error *err)
{
    memset(f, 0, sizeof *f);
    f->fd = -1;
    size_t len = strlen(path);
    f->final_path = strdup(path);
    f->tmp_path = malloc(len + 32);
    if (!f->final_path || !f->tmp_path) {
        xf_atomic_abort(f);
        return xf_fail(err, "%s: out of memory", path);
    }
    /* ".NAME.tmp.XXXXXX" beside the destination: same filesystem, so rename is atomic */
    char *dup = strdup(path);
    char *dup2 = strdup(path);
    if (!dup || !dup2) {
        free(dup);
        free(dup2);
        xf_atomic_abort(f);
        return xf_fail(err, "%s: out of memory", path);
    }
    const char *dir = dirname(dup);
    const char *base = basename(dup2);
    snprintf(f->tmp_path, len + 32, "%s/.%s.tmp.XXXXXX", dir, base);
    free(dup);
    free(dup2);
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

static void fsync_dir_of(const char *path)
{
    char *dup = strdup(path);
    if (!dup)
        return;
    int dfd = open(dirname(dup), O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    free(dup);
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
    if (close(f->fd) != 0) {
        int e = errno;
        f->fd = -1;
        xf_fail(err, "%s: close failed: %s", f->final_path, strerror(e));
        xf_atomic_abort(f);
        return -1;
    }
    f->fd = -1;
    if (rename(f->tmp_path, f->final_path) != 0) {
        int e = errno;
        xf_fail(err, "%s: rename failed: %s", f->final_path, strerror(e));
        xf_atomic_abort(f);
        return -1;
    }
    fsync_dir_of(f->final_path);
    free(f->tmp_path);
    f->tmp_path = NULL;
    f->open = false;
    xf_atomic_abort(f); /* frees the rest */
    return 0;
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
