#include "export/hf_dir_out.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/atomic_file.h"
#include "core/read_file.h"

/* The parent directory of `path` (malloc'd). */
static char *parent_of(const char *path)
{
    char *dup = strdup(path);
    if (!dup)
        return NULL;
    char *p = strdup(dirname(dup));
    free(dup);
    return p;
}

static void fsync_path(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

int xf_hf_dir_out_check(const char *dir, xf_error *err)
{
    struct stat st;
    if (lstat(dir, &st) == 0)
        return xf_fail(err, "%s: already exists (an export writes a new directory; remove it "
                            "first)",
                       dir);
    char *parent = parent_of(dir);
    if (!parent)
        return xf_fail(err, "%s: out of memory", dir);
    int ok = xf_path_is_dir(parent);
    free(parent);
    if (!ok)
        return xf_fail(err, "%s: the parent directory does not exist", dir);
    return 0;
}

int xf_hf_dir_out_begin(xf_hf_dir_out *d, const char *dir, xf_error *err)
{
    memset(d, 0, sizeof *d);
    if (xf_hf_dir_out_check(dir, err) != 0)
        return -1;
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/')
        len--;
    d->final_dir = strndup(dir, len);
    /* beside the destination (same filesystem, so the final rename is
     * atomic), named like the atomic files' temps: ".BASE.tmp.HOST-PID.XXXXXX",
     * so that a later export sweeps the directories of killed writers */
    char *prefix = d->final_dir ? xf_atomic_temp_prefix(d->final_dir, (long)getpid()) : NULL;
    d->tmp_dir = prefix ? malloc(strlen(prefix) + 7) : NULL;
    if (!d->final_dir || !d->tmp_dir) {
        free(prefix);
        xf_hf_dir_out_abort(d);
        return xf_fail(err, "%s: out of memory", dir);
    }
    sprintf(d->tmp_dir, "%sXXXXXX", prefix);
    free(prefix);
    xf_atomic_remove_stale_dirs(d->final_dir);
    if (!mkdtemp(d->tmp_dir)) {
        int e = errno;
        free(d->tmp_dir);
        d->tmp_dir = NULL;
        xf_hf_dir_out_abort(d);
        return xf_fail(err, "%s: cannot create a temp directory beside it: %s", dir,
                       strerror(e));
    }
    /* mkdtemp gives 0700; an output directory gets the usual umask'd mode */
    mode_t um = umask(0);
    umask(um);
    chmod(d->tmp_dir, 0777 & ~um);
    return 0;
}

char *xf_hf_dir_out_path(const xf_hf_dir_out *d, const char *name)
{
    return xf_path_join(d->tmp_dir, name);
}

/* Inside the temp directory a file needs no temp name of its own: the
 * directory is the unit that appears atomically (its rename is the commit),
 * so each file is written, fsynced and closed, and the directory fsynced
 * once at commit. */
static int write_bytes(const xf_hf_dir_out *d, const char *name, const void *buf, size_t n,
                       xf_error *err)
{
    char *path = xf_hf_dir_out_path(d, name);
    if (!path)
        return xf_fail(err, "%s: out of memory", d->final_dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    int rc = 0;
    if (fd < 0) {
        rc = xf_fail(err, "%s/%s: cannot create: %s", d->final_dir, name, strerror(errno));
    } else {
        const char *p = buf;
        while (rc == 0 && n > 0) {
            ssize_t w = write(fd, p, n);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                rc = xf_fail(err, "%s/%s: write failed: %s", d->final_dir, name,
                             w < 0 ? strerror(errno) : "no progress");
            else {
                p += w;
                n -= (size_t)w;
            }
        }
        if (rc == 0 && fsync(fd) != 0)
            rc = xf_fail(err, "%s/%s: fsync failed: %s", d->final_dir, name, strerror(errno));
        close(fd);
    }
    free(path);
    return rc;
}

int xf_hf_dir_out_json(const xf_hf_dir_out *d, const char *name, const json_t *j, xf_error *err)
{
    char *s = json_dumps(j, JSON_SORT_KEYS | JSON_INDENT(2) | JSON_REAL_PRECISION(17));
    if (!s)
        return xf_fail(err, "%s/%s: cannot serialize (out of memory)", d->final_dir, name);
    size_t n = strlen(s);
    char *t = realloc(s, n + 2);
    if (!t) {
        free(s);
        return xf_fail(err, "%s/%s: out of memory", d->final_dir, name);
    }
    t[n] = '\n';
    t[n + 1] = '\0';
    int rc = write_bytes(d, name, t, n + 1, err);
    free(t);
    return rc;
}

int xf_hf_dir_out_copy(const xf_hf_dir_out *d, const char *src, const char *name,
                       xf_error *err)
{
    char *data = NULL;
    size_t len = 0;
    if (xf_read_file(src, &data, &len, err) != 0)
        return -1;
    int rc = write_bytes(d, name, data, len, err);
    free(data);
    return rc;
}

int xf_hf_dir_out_commit(xf_hf_dir_out *d, xf_error *err)
{
    fsync_path(d->tmp_dir);
    if (rename(d->tmp_dir, d->final_dir) != 0) {
        int e = errno;
        return xf_fail(err, "%s: cannot rename the finished temp directory into place: %s",
                       d->final_dir, strerror(e));
    }
    char *parent = parent_of(d->final_dir);
    if (parent)
        fsync_path(parent);
    free(parent);
    free(d->tmp_dir);
    d->tmp_dir = NULL; /* committed: abort must not remove it */
    return 0;
}

/* Removes the files of the temp directory (flat: an export writes no
 * subdirectories) and the directory itself. */
static void remove_flat_dir(const char *dir)
{
    DIR *dp = opendir(dir);
    if (dp) {
        struct dirent *e;
        while ((e = readdir(dp))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            char *p = xf_path_join(dir, e->d_name);
            if (p)
                unlink(p);
            free(p);
        }
        closedir(dp);
    }
    rmdir(dir);
}

void xf_hf_dir_out_abort(xf_hf_dir_out *d)
{
    if (d->tmp_dir)
        remove_flat_dir(d->tmp_dir);
    free(d->tmp_dir);
    free(d->final_dir);
    memset(d, 0, sizeof *d);
}
