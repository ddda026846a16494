#include "core/read_file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

/* read(2) rather than stdio, so that a failed read reports its errno
 * (EIO from a bad disk, EISDIR) in the one-line error. */
int xf_read_file(const char *path, char **data, size_t *len, xf_error *err)
{
    *data = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return xf_fail(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    size_t cap = 1 << 16, n = 0;
    /* the size is only a hint (the file may grow or shrink while read) */
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
        (uint64_t)st.st_size < (uint64_t)SIZE_MAX / 2)
        cap = (size_t)st.st_size + 1;
    char *buf = malloc(cap + 1);
    if (!buf) {
        close(fd);
        return xf_fail(err, "%s: out of memory", path);
    }
    for (;;) {
        if (n == cap) {
            if (cap > SIZE_MAX / 4) {
                free(buf);
                close(fd);
                return xf_fail(err, "%s: too large to read", path);
            }
            cap *= 2;
            char *nb = realloc(buf, cap + 1);
            if (!nb) {
                free(buf);
                close(fd);
                return xf_fail(err, "%s: out of memory", path);
            }
            buf = nb;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            free(buf);
            close(fd);
            return xf_fail(err, "%s: read failed after %zu bytes: %s", path, n, strerror(e));
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return 0;
}

int xf_path_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int xf_path_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

char *xf_path_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *s = malloc(a + b + 2);
    if (!s)
        return NULL;
    memcpy(s, dir, a);
    size_t p = a;
    if (a > 0 && dir[a - 1] != '/')
        s[p++] = '/';
    memcpy(s + p, name, b + 1);
    return s;
}
