/* The CLI's rendering of the library's progress callback: one line on
 * stderr, redrawn in place, only on a terminal. */
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void draw(void *user, const char *stage, int64_t done, int64_t total)
{
    xf_cli_progress *p = user;
    if (!p->tty)
        return;
    if (done < 0) { /* the loop ended: clear the line */
        p->started = false;
        fputs("\r\033[K", stderr);
        fflush(stderr);
        return;
    }
    if (!p->started) {
        p->started = true;
        p->t_start = now_seconds();
    }
    double el = now_seconds() - p->t_start;
    double eta = done > 0 ? el * (double)(total - done) / (double)done : 0.0;
    fprintf(stderr, "\r%s %lld/%lld  elapsed %.0fs  ETA %.0fs\033[K", stage, (long long)done,
            (long long)total, el, eta);
    fflush(stderr);
}

xf_run_opts xf_cli_run_opts(int threads, xf_cli_progress *p)
{
    p->started = false;
    p->t_start = 0.0;
    p->tty = isatty(STDERR_FILENO);
    return (xf_run_opts){.threads = threads, .progress = draw, .progress_user = p};
}
