#include "core/progress.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

double xf_now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void xf_progress_init(xf_progress *p, const char *label)
{
    p->enabled = isatty(STDERR_FILENO);
    p->t_start = xf_now_seconds();
    snprintf(p->label, sizeof p->label, "%s", label);
}

void xf_progress_update(xf_progress *p, int64_t done, int64_t total, int64_t tokens,
                        const char *extra)
{
    if (!p->enabled)
        return;
    double el = xf_now_seconds() - p->t_start;
    double eta = done > 0 ? el * (double)(total - done) / (double)done : 0.0;
    fprintf(stderr, "\r%s %lld/%lld  %.0f tok/s  elapsed %.0fs  ETA %.0fs %s\033[K", p->label,
            (long long)done, (long long)total, el > 0 ? (double)tokens / el : 0.0, el, eta,
            extra ? extra : "");
    fflush(stderr);
}

void xf_progress_finish(xf_progress *p)
{
    if (p->enabled) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
    }
}
