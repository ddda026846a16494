#include "core/mapped_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int xf_mapped_open(xf_mapped_file *m, const char *path, xf_error *err)
{
    memset(m, 0, sizeof *m);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return xf_fail(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return xf_fail(err, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return xf_fail(err, "%s: not a regular file", path);
    }
    m->size = (size_t)st.st_size;
    if (m->size > 0) {
        void *p = mmap(NULL, m->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            close(fd);
            m->size = 0;
            return xf_fail(err, "%s: cannot mmap: %s", path, strerror(e));
        }
        m->data = p;
    }
    close(fd);
    m->path = strdup(path);
    if (!m->path) {
        xf_mapped_close(m);
        return xf_fail(err, "%s: out of memory", path);
    }
    return 0;
}

void xf_mapped_close(xf_mapped_file *m)
{
    if (m->data && m->size)
        munmap((void *)m->data, m->size);
    free(m->path);
    memset(m, 0, sizeof *m);
}
