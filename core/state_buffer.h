/* A large fp32 array that lives in memory or, when the run's memory bound
 * says so, in a temporary file (a "spill"): the calibration states of a
 * large model (nsamples x seqlen x hidden) may not fit in RAM.
 *
 * A spilled buffer is a shared mapping of a file created in `spill_dir`
 * and unlinked at once (nothing is left behind, even after a kill), its
 * blocks reserved up front (posix_fallocate: a full disk fails here with
 * one line, never later as SIGBUS). Its pages belong to the page cache,
 * which the kernel writes back and frees under pressure; release() drops
 * a range from this process's resident set once it is done with it (the
 * data stays in the file). The values are the same bytes either way: the
 * numbers do not depend on where they are kept. */
#ifndef XF_CORE_STATE_BUFFER_H
#define XF_CORE_STATE_BUFFER_H

#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"

typedef struct xf_state_buffer {
    float *data;
    size_t bytes;
    bool spilled;
} xf_state_buffer;

/* n floats, zero-filled; spill_dir NULL: in memory. Fails naming `what`. */
int xf_state_buffer_init(xf_state_buffer *b, size_t n, const char *spill_dir, const char *what,
                         xf_error *err);
void xf_state_buffer_free(xf_state_buffer *b);
/* Spilled buffers: floats [first, first + n) leave the resident set (the
 * pages wholly inside the range). In memory: nothing. */
void xf_state_buffer_release(const xf_state_buffer *b, size_t first, size_t n);

#endif
