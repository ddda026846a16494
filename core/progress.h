/* A one-line progress display on stderr, only when stderr is a TTY
 * (silent in pipes, logs and CI). */
#ifndef XF_CORE_PROGRESS_H
#define XF_CORE_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

typedef struct xf_progress {
    bool enabled;
    double t_start;
    char label[64];
} xf_progress;

double xf_now_seconds(void);
void xf_progress_init(xf_progress *p, const char *label);
/* done/total units, `tokens` processed so far (for tokens/s), extra text. */
void xf_progress_update(xf_progress *p, int64_t done, int64_t total, int64_t tokens,
                        const char *extra);
void xf_progress_finish(xf_progress *p);

#endif
