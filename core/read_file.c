#include "core/read_file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int xf_read_file(const char *path, char **data, size_t *len, xf_error *err)
{
    *data = NULL;
    *len = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return xf_fail(err, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    if (!buf) {
        fclose(fp);
        return xf_fail(err, "%s: out of memory", path);
    }
    for (;;) {
        if (n == cap) {
            cap *= 2;
            char *nb = realloc(buf, cap + 1);
            if (!nb) {
                free(buf);
                fclose(fp);
                return xf_fail(err, "%s: out of memory", path);
            }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n, fp);
        n += r;
        if (r == 0) {
            if (ferror(fp)) {
                free(buf);
                fclose(fp);
                return xf_fail(err, "%s: read error", path);
            }
            break;
        }
    }
    fclose(fp);
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
