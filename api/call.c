#include "api/call.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(XF_PROGRESS_START == (int)XF_PEV_START && XF_PROGRESS_UPDATE == (int)XF_PEV_UPDATE &&
                   XF_PROGRESS_BLOCK == (int)XF_PEV_BLOCK && XF_PROGRESS_INPUT == (int)XF_PEV_INPUT &&
                   XF_PROGRESS_END == (int)XF_PEV_END,
               "the public progress kinds are core/progress.h's");

/* core/progress.h's event as the public one (a copy: the public struct
 * stays fixed while the internal one may change). */
static void forward_event(void *user, const xf_progress_info *e)
{
    const xf_api_call *c = user;
    const xf_progress_event pe = {
        .kind = (int)e->kind, .stage = e->stage, .input = e->input, .detail = e->detail,
        .done = e->done, .total = e->total, .block = e->block, .n_blocks = e->n_blocks,
        .elapsed_s = e->elapsed_s, .eta_s = e->eta_s, .tokens = e->tokens,
        .tokens_per_s = e->tokens_per_s, .gflop_per_s = e->gflop_per_s,
        .forward_s = e->forward_s, .hessian_s = e->hessian_s, .solve_s = e->solve_s,
        .input_forward_s = e->input_forward_s, .input_hessian_s = e->input_hessian_s,
        .input_solve_s = e->input_solve_s, .peak_rss_bytes = e->peak_rss_bytes,
        .rss_bytes = e->rss_bytes};
    c->event_fn(c->event_user, &pe);
}

void xf_api_begin(xf_api_call *c, const xf_run_opts *run)
{
    xf_threads_push(run ? run->threads : 0, &c->threads);
    c->event_fn = run ? run->progress_event : NULL;
    c->event_user = run ? run->progress_event_user : NULL;
    xf_progress_route_push(run ? run->progress : NULL, run ? run->progress_user : NULL,
                           c->event_fn ? forward_event : NULL, c->event_fn ? c : NULL, &c->route);
}

void xf_api_end(xf_api_call *c)
{
    xf_progress_route_pop(&c->route);
    xf_threads_pop(&c->threads);
}

int xf_api_fail_msg(xf_status *st, int code, const char *msg)
{
    if (st) {
        st->code = code;
        snprintf(st->message, sizeof st->message, "%s", msg && *msg ? msg : "failed");
    }
    return -1;
}

int xf_api_failf(xf_status *st, int code, const char *fmt, ...)
{
    char msg[sizeof ((xf_status *)0)->message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return xf_api_fail_msg(st, code, msg);
}

int xf_api_text_open(xf_api_text *t)
{
    t->buf = NULL;
    t->len = 0;
    t->f = open_memstream(&t->buf, &t->len);
    return t->f ? 0 : -1;
}

char *xf_api_text_take(xf_api_text *t)
{
    int bad = ferror(t->f);
    if (fclose(t->f) != 0 || bad) {
        free(t->buf);
        return NULL;
    }
    return t->buf;
}
