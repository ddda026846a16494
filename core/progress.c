#include "core/progress.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/mem_info.h"

/* Per thread and per call: set by a library call on entry, put back on
 * exit, so no call's callback outlives it and concurrent calls on other
 * threads keep their own. */
static _Thread_local xf_progress_route t_route;

void xf_progress_route_push(xf_progress_sink sink, void *user, xf_progress_event_sink event_sink,
                            void *event_user, xf_progress_route *prev)
{
    *prev = t_route;
    t_route = (xf_progress_route){.routed = true, .sink = sink, .user = user,
                                  .event_sink = event_sink, .event_user = event_user};
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
    const bool routed = t_route.routed;
    p->sink = routed ? t_route.sink : NULL;
    p->sink_user = routed ? t_route.user : NULL;
    p->event_sink = routed ? t_route.event_sink : NULL;
    p->event_user = routed ? t_route.event_user : NULL;
    p->enabled = routed ? p->sink || p->event_sink : isatty(STDERR_FILENO);
    p->started = false;
    p->done = 0;
    p->total = -1;
    p->t_start = xf_now_seconds();
    snprintf(p->label, sizeof p->label, "%s", label);
}

xf_progress_info xf_progress_info_blank(xf_progress_kind kind)
{
    return (xf_progress_info){.kind = kind, .done = -1, .total = -1, .block = -1,
                              .n_blocks = -1, .elapsed_s = -1, .eta_s = -1, .tokens = -1,
                              .tokens_per_s = -1, .gflop_per_s = -1, .forward_s = -1,
                              .hessian_s = -1, .solve_s = -1, .input_forward_s = -1,
                              .input_hessian_s = -1, .input_solve_s = -1,
                              .peak_rss_bytes = -1, .rss_bytes = -1};
}

/* The TTY line of code run outside a library call. */
static void tty_line(const xf_progress *p, const xf_progress_info *e)
{
    if (e->kind == XF_PEV_END) {
        fputs("\r\033[K", stderr);
    } else if (e->kind != XF_PEV_START) {
        fprintf(stderr, "\r%s %lld/%lld  %.0f tok/s  elapsed %.0fs  ETA %.0fs %s\033[K",
                p->label, (long long)e->done, (long long)e->total,
                e->tokens_per_s > 0 ? e->tokens_per_s : 0.0, e->elapsed_s,
                e->eta_s > 0 ? e->eta_s : 0.0, e->detail ? e->detail : "");
    }
    fflush(stderr);
}

/* The simple callback: stage text with the detail, done of total; the end
 * as done = total = -1; no start. */
static void simple_sink(const xf_progress *p, const xf_progress_info *e)
{
    if (e->kind == XF_PEV_START)
        return;
    if (e->kind == XF_PEV_END) {
        p->sink(p->sink_user, p->label, -1, -1);
        return;
    }
    char stage[160];
    const char *d = e->detail ? e->detail : "";
    while (*d == ' ')
        d++;
    snprintf(stage, sizeof stage, "%s%s%s", p->label, *d ? " " : "", d);
    p->sink(p->sink_user, stage, e->done, e->total);
}

static void deliver(const xf_progress *p, const xf_progress_info *e)
{
    if (p->event_sink)
        p->event_sink(p->event_user, e);
    if (p->sink)
        simple_sink(p, e);
    if (!p->sink && !p->event_sink)
        tty_line(p, e);
}

void xf_progress_emit(xf_progress *p, const xf_progress_info *ev)
{
    if (!p->enabled)
        return;
    xf_progress_info e = *ev;
    e.stage = p->label;
    e.elapsed_s = xf_now_seconds() - p->t_start;
    xf_mem_usage mem;
    xf_mem_usage_read(&mem);
    e.peak_rss_bytes = mem.peak_rss; /* one read: at least mem.rss */
    e.rss_bytes = mem.rss;
    if (!p->started && e.kind != XF_PEV_START) {
        xf_progress_info s = xf_progress_info_blank(XF_PEV_START);
        s.stage = e.stage;
        s.elapsed_s = e.elapsed_s;
        s.done = 0;
        s.total = e.total >= 0 ? e.total : p->total;
        s.n_blocks = e.n_blocks;
        s.peak_rss_bytes = e.peak_rss_bytes;
        s.rss_bytes = e.rss_bytes;
        deliver(p, &s);
    }
    p->started = true;
    if (e.kind == XF_PEV_END && e.done < 0) { /* the counts where the loop stopped */
        e.done = p->done;
        e.total = p->total;
    }
    if (e.kind != XF_PEV_END && e.done >= 0) {
        p->done = e.done;
        p->total = e.total;
    }
    deliver(p, &e);
}

void xf_progress_update(xf_progress *p, int64_t done, int64_t total, int64_t tokens,
                        const char *extra)
{
    if (!p->enabled)
        return;
    xf_progress_info e = xf_progress_info_blank(XF_PEV_UPDATE);
    const double el = xf_now_seconds() - p->t_start;
    e.done = done;
    e.total = total;
    e.detail = extra && *extra ? extra : NULL;
    if (done > 0 && total >= done)
        e.eta_s = el * (double)(total - done) / (double)done;
    if (tokens > 0) {
        e.tokens = tokens;
        e.tokens_per_s = el > 0 ? (double)tokens / el : -1;
    }
    xf_progress_emit(p, &e);
}

void xf_progress_finish_with(xf_progress *p, const xf_progress_info *ev)
{
    if (!p->enabled)
        return;
    xf_progress_info e = ev ? *ev : xf_progress_info_blank(XF_PEV_END);
    e.kind = XF_PEV_END;
    xf_progress_emit(p, &e);
}

void xf_progress_finish(xf_progress *p) { xf_progress_finish_with(p, NULL); }
