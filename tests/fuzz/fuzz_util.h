/* Shared by the libFuzzer harnesses of tests/fuzz/ (README.md there):
 * the readers under test map files, so each input is written to a
 * per-process temporary file first, and every refusal must be the one-line
 * error the project promises. */
#ifndef XF_TESTS_FUZZ_UTIL_H
#define XF_TESTS_FUZZ_UTIL_H

#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Writes data to a file unique to this process and harness (tmpfs when
 * /dev/shm exists, else $TMPDIR or /tmp) and puts its path in path[cap].
 * Returns 0, or -1 when the file cannot be written (the input is then
 * skipped: a full disk is not a finding). */
static inline int xf_fuzz_write_temp(const char *harness, const char *suffix, const uint8_t *data,
                                     size_t size, char *path, size_t cap)
{
    const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
    if (!dir || !*dir)
        dir = "/tmp";
    snprintf(path, cap, "%s/xf-fuzz-%ld-%s%s", dir, (long)getpid(), harness, suffix);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    size_t done = 0;
    while (done < size) {
        ssize_t w = write(fd, data + done, size - done);
        if (w <= 0) {
            close(fd);
            unlink(path);
            return -1;
        }
        done += (size_t)w;
    }
    close(fd);
    return 0;
}

/* A refusal is a finding when its message is empty or spans several
 * lines (docs/ARCHITECTURE.md: ONE line naming the file and the problem). */
static inline void xf_fuzz_check_error(const xf_error *err, const char *where)
{
    if (err->msg[0] == '\0' || strchr(err->msg, '\n')) {
        fprintf(stderr, "%s: refusal without a one-line message: \"%s\"\n", where, err->msg);
        abort();
    }
}

#endif
