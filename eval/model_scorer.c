#include "eval/model_scorer.h"

#include <stdio.h>
#include <string.h>

static int runner_logits(void *user, const int32_t *tokens, int64_t T, float *logits,
                         xf_error *err)
{
    xf_model_scorer *ms = user;
    if (!ms->hooked)
        return xf_runner_forward(&ms->runner, tokens, T, logits, err);
    int rc = xf_runner_forward_hooked(&ms->runner, tokens, T, &ms->act.hooks, logits, err);
    /* the act hooks never stop a pass; a stop here would leave logits unset */
    return rc == 0 ? 0 : (rc < 0 ? -1 : xf_fail(err, "forward pass stopped by a hook"));
}

static int runner_windows(void *user, const int32_t *tokens, int64_t n, int64_t T,
                          int64_t first_row, float *logits, xf_error *err)
{
    xf_model_scorer *ms = user;
    return xf_runner_forward_windows(&ms->runner, tokens, n, T, first_row, logits, err);
}

/* Windows side by side (one per thread, single-threaded products) pay
 * where a window's products are too small for OpenBLAS's threads: on 2
 * cores novels-5m (hidden 256) ran 1.8x faster that way, while the 1B
 * model (hidden 2048) ran slower than with threaded products
 * (docs/performance.md, "Forward pass against llama.cpp"). Above this
 * width the windows run one at a time with threaded products. */
#define SIDE_BY_SIDE_MAX_HIDDEN 1024

/* ms->online is set up by the caller (or all off). */
static int scorer_start(xf_model_scorer *ms, const xf_model_weights *mw,
                        const xf_act_scheme *scheme, int64_t max_T, xf_error *err)
{
    xf_act_scheme off;
    xf_act_scheme_default(&off);
    if (xf_act_hooks_init_online(&ms->act, scheme ? scheme : &off, &ms->online, NULL, err) != 0) {
        xf_online_free(&ms->online);
        return -1;
    }
    ms->hooked = xf_act_hooks_active(&ms->act);
    if (xf_runner_init(&ms->runner, mw, max_T, 0, err) != 0) {
        xf_online_free(&ms->online);
        return -1;
    }
    ms->scorer.fn = runner_logits;
    ms->scorer.user = ms;
    ms->scorer.vocab = mw->cfg.vocab;
    if (!ms->hooked && mw->cfg.hidden <= SIDE_BY_SIDE_MAX_HIDDEN) {
        /* the plain forward of a small model runs one window per thread
         * (hooks keep state of their own and stay one window at a time) */
        ms->scorer.windows_fn = runner_windows;
        ms->scorer.max_windows = 0; /* as many as threads at the time of the run */
    }
    return 0;
}

int xf_model_scorer_init(xf_model_scorer *ms, const xf_model_weights *mw,
                         const xf_act_scheme *scheme, int64_t max_T, xf_error *err)
{
    memset(ms, 0, sizeof *ms);
    return scorer_start(ms, mw, scheme, max_T, err);
}

int xf_model_scorer_open(xf_model_scorer *ms, const xf_loaded_model *m, int64_t max_T,
                         xf_error *err)
{
    memset(ms, 0, sizeof *ms);
    xf_act_scheme s;
    if (xf_model_act_scheme(m, &s, err) != 0)
        return -1;
    if (m->source == XF_SOURCE_XFQ) {
        char what[1200];
        snprintf(what, sizeof what, "%s: recipe", m->path);
        const json_t *arr =
            json_object_get(json_object_get(m->xfq.meta, "recipe"), "online_transforms");
        if (xf_online_from_json(&ms->online, arr, &m->cfg, what, err) != 0)
            return -1;
        const json_t *st =
            json_object_get(json_object_get(m->xfq.meta, "recipe"), "static_act");
        if (st) {
            if (xf_static_act_from_json(&ms->static_act, st, &m->cfg, what, err) != 0) {
                xf_online_free(&ms->online);
                return -1;
            }
            s.static_act = &ms->static_act;
        }
    }
    int rc = scorer_start(ms, &m->weights, &s, max_T, err);
    if (rc != 0)
        xf_static_act_free(&ms->static_act);
    return rc;
}

void xf_model_scorer_free(xf_model_scorer *ms)
{
    xf_runner_free(&ms->runner);
    xf_act_hooks_free(&ms->act);
    xf_online_free(&ms->online);
    xf_static_act_free(&ms->static_act);
    memset(ms, 0, sizeof *ms);
}

int xf_model_act_scheme(const xf_loaded_model *m, xf_act_scheme *s, xf_error *err)
{
    xf_act_scheme_default(s);
    if (m->source != XF_SOURCE_XFQ)
        return 0;
    const json_t *act = json_object_get(json_object_get(m->xfq.meta, "recipe"), "activations");
    if (!act || json_is_null(act))
        return 0;
    char what[1200];
    snprintf(what, sizeof what, "%s: recipe", m->path);
    return xf_act_scheme_from_json(s, act, what, err);
}
