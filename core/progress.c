#include "core/progress.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Per thread and per call: set by a library call on entry, put back on
 * exit, so no call's callback outlives it and concurrent calls on other
 * threads keep their own. */
static _Thread_local xf_progress_route t_route;

void xf_progress_route_push(xf_progress_sink sink, void *user, xf_progress_route *prev)
{
    *prev = t_route;
    t_route = (xf_progress_route){.routed = true, .sink = sink, .user = user};
}

void xf_progress_route_pop(const xf_progress_route *prev) { t_route = *prev; }

double xf_now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void xf_progress_init(xf_progress *p, const char *label)
{
    p->sink = t_route.routed ? t_route.sink : NULL;
    p->sink_user = t_route.routed ? t_route.user : NULL;
    p->enabled = t_route.routed ? p->sink != NULL : isatty(STDERR_FILENO);
    p->t_start = xf_now_seconds();
    snprintf(p->label, sizeof p->label, "%s", label);
}

void xf_progress_update(xf_progress *p, int64_t done, int64_t total, int64_t tokens,
                        const char *extra)
{
    if (!p->enabled)
        return;
    if (p->sink) {
        char stage[160];
        snprintf(stage, sizeof stage, "%s%s%s", p->label,
                 extra && *extra && *extra != ' ' ? " " : "", extra ? extra : "");
        p->sink(p->sink_user, stage, done, total);
        return;
    }
    double el = xf_now_seconds() - p->t_start;
    double eta = done > 0 ? el * (double)(total - done) / (double)done : 0.0;
    fprintf(stderr, "\r%s %lld/%lld  %.0f tok/s  elapsed %.0fs  ETA %.0fs %s\033[K", p->label,
            (long long)done, (long long)total, el > 0 ? (double)tokens / el : 0.0, el, eta,
            extra ? extra : "");
    fflush(stderr);
}

void xf_progress_finish(xf_progress *p)
{
    if (!p->enabled)
        return;
    if (p->sink) {
        p->sink(p->sink_user, p->label, -1, -1);
        return;
    }
    fputs("\r\033[K", stderr);
    fflush(stderr);
}
