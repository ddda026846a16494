/* Atomic file output: data goes to a temp file in the destination
 * directory; commit() fsyncs it, renames it over the final name and fsyncs
 * the directory. abort() (or any failed write) removes the temp file, so a
 * failure never leaves a partial output behind.
 *
 * A killed process cannot remove its temp file, so the temp name says who
 * made it: ".NAME.tmp.HOST-PID.XXXXXX" (HOST: 8 hex digits hashing the host
 * name, PID: the writer's process id). open() removes the temp files of the
 * same destination whose writer is provably gone: same host, and no process
 * with that id exists (kill(pid, 0) fails with ESRCH). A live writer's temp,
 * one from another host (a shared filesystem) or one of another naming is
 * left alone. A reused pid only keeps a stale temp longer, never removes a
 * live one. */
#ifndef XF_CORE_ATOMIC_FILE_H
#define XF_CORE_ATOMIC_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef struct xf_atomic_file {
    char *final_path;
    char *tmp_path;
    int fd;
    uint64_t pos; /* bytes written so far */
    bool open;
} xf_atomic_file;

int xf_atomic_open(xf_atomic_file *f, const char *path, xf_error *err);
int xf_atomic_write(xf_atomic_file *f, const void *buf, size_t n, xf_error *err);
/* Writes zero bytes until pos is a multiple of alignment. */
int xf_atomic_pad(xf_atomic_file *f, uint64_t alignment, xf_error *err);
int xf_atomic_commit(xf_atomic_file *f, xf_error *err);
/* Safe to call at any time, also after commit (then it only frees). */
void xf_atomic_abort(xf_atomic_file *f);

/* "DIR/.BASE.tmp.HOST-PID." for destination `path` and process `pid`
 * (malloc'd; NULL when out of memory): the temp names' prefix, before the six
 * random characters. For tests and for the stale-temp sweep. */
char *xf_atomic_temp_prefix(const char *path, long pid);
/* Removes the stale temp files of destination `path` (see above); returns how
 * many were removed. Called by xf_atomic_open. */
int xf_atomic_remove_stale(const char *path);
/* The same for temp directories of directory outputs (export/hf_dir_out.c:
 * "DIR/.BASE.tmp.HOST-PID.XXXXXX" made with mkdtemp): a stale one is removed
 * with the regular files in it. */
int xf_atomic_remove_stale_dirs(const char *path);
/* The HOST part of the temp names (FNV-1a of the host name), for other
 * per-process scratch files that a later run must be able to sweep. */
unsigned xf_atomic_host_tag(void);
/* True when no process `pid` exists here (kill(pid, 0) fails with ESRCH):
 * the writer of a file named with that pid on this host is gone. */
bool xf_process_gone(long pid);

#endif
