/* In-memory or spilled fp32 arrays (state_buffer.h). */
#include "core/state_buffer.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int spill_file(xf_state_buffer *b, const char *dir, const char *what, xf_error *err)
{
    size_t len = strlen(dir) + 32;
    char *path = malloc(len);
    if (!path)
        return xf_fail(err, "%s: out of memory", what);
    snprintf(path, len, "%s/.xfquant-spill.XXXXXX", dir);
    int fd = mkstemp(path);
    if (fd < 0) {
        int e = errno;
        free(path);
        return xf_fail(err, "%s: cannot create a spill file in %s: %s", what, dir, strerror(e));
    }
    unlink(path); /* gone when the last descriptor/mapping goes, kill or not */
    free(path);
    int e = posix_fallocate(fd, 0, (off_t)b->bytes);
    if (e != 0) {
        close(fd);
        return xf_fail(err, "%s: cannot reserve %.2f GiB for spilled calibration states in %s: %s",
                       what, (double)b->bytes / (1u << 30), dir, strerror(e));
    }
    void *p = mmap(NULL, b->bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    e = errno;
    close(fd); /* the mapping keeps the file */
    if (p == MAP_FAILED)
        return xf_fail(err, "%s: cannot map the spill file in %s: %s", what, dir, strerror(e));
    b->data = p;
    b->spilled = true;
    return 0;
}

int xf_state_buffer_init(xf_state_buffer *b, size_t n, const char *spill_dir, const char *what,
                         xf_error *err)
{
    memset(b, 0, sizeof *b);
    if (n > SIZE_MAX / sizeof(float))
        return xf_fail(err, "%s: %zu floats are too many", what, n);
    b->bytes = (n ? n : 1) * sizeof(float);
    if (spill_dir)
        return spill_file(b, spill_dir, what, err);
    b->data = calloc(n ? n : 1, sizeof(float));
    if (!b->data)
        return xf_fail(err, "%s: out of memory for %.2f GiB", what,
                       (double)b->bytes / (1u << 30));
    return 0;
}

void xf_state_buffer_free(xf_state_buffer *b)
{
    if (b->spilled && b->data)
        munmap(b->data, b->bytes);
    else
        free(b->data);
    memset(b, 0, sizeof *b);
}

void xf_state_buffer_release(const xf_state_buffer *b, size_t first, size_t n)
{
    if (!b->spilled || n == 0)
        return;
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t lo = (uintptr_t)(b->data + first), hi = (uintptr_t)(b->data + first + n);
    lo = (lo + page - 1) / page * page;
    hi = hi / page * page;
    /* a shared file mapping: the pages leave this process, their (dirty)
     * data stays in the page cache and the file */
    if (hi > lo)
        madvise((void *)lo, hi - lo, MADV_DONTNEED);
}
