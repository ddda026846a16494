#include "pipeline/gptq_progress.h"

#include <string.h>

#include "model/forward.h"
#include "model/weights.h"

/* Forward FLOPs of one window of T tokens through one block (the header's
 * formula). */
static double block_flops_per_window(const xf_model_config *cfg, int64_t T)
{
    double params = 0;
    for (int r = 0; r < XF_LIN_COUNT; r++) {
        int64_t out, in;
        if (xf_forward_role_shape(cfg, (xf_linear_role)r, &out, &in))
            params += (double)out * (double)in;
    }
    const double attn = 2.0 * (double)cfg->n_heads * (double)cfg->head_dim * (double)T *
                        (double)(T + 1);
    return 2.0 * (double)T * params + attn;
}

void xf_gptq_progress_begin(xf_gptq_progress *g, const xf_model_config *cfg, int64_t n_blocks,
                            int64_t ns, int64_t T, int streams, bool head)
{
    memset(g, 0, sizeof *g);
    xf_progress_init(&g->prog, "gptq: layer");
    g->t_begin = g->t_loop = g->t_unit = xf_now_seconds();
    g->n_blocks = n_blocks;
    g->total = n_blocks + (head ? 1 : 0);
    g->block_tokens = (int64_t)streams * ns * T;
    g->block_flops = (double)streams * (double)ns * block_flops_per_window(cfg, T);
    xf_progress_info e = xf_progress_info_blank(XF_PEV_START);
    e.done = 0;
    e.total = g->total;
    e.n_blocks = g->n_blocks;
    e.tokens = 0;
    e.forward_s = e.hessian_s = e.solve_s = 0;
    xf_progress_emit(&g->prog, &e);
}

void xf_gptq_progress_resumed(xf_gptq_progress *g, int64_t start)
{
    g->done = g->done_before = start;
    g->t_loop = g->t_unit = xf_now_seconds();
}

void xf_gptq_progress_forward(xf_gptq_progress *g, double t0)
{
    const double s = xf_now_seconds() - t0;
    g->in_forward_s += s;
    g->t.forward_s += s;
}

void xf_gptq_progress_hessian(xf_gptq_progress *g, double t0)
{
    const double s = xf_now_seconds() - t0;
    g->in_hessian_s += s;
    g->t.hessian_s += s;
}

void xf_gptq_progress_solve(xf_gptq_progress *g, double t0)
{
    const double s = xf_now_seconds() - t0;
    g->in_solve_s += s;
    g->t.solve_s += s;
}

/* An event of kind k with the running totals, rates and ETA. */
static xf_progress_info with_totals(const xf_gptq_progress *g, xf_progress_kind k)
{
    xf_progress_info e = xf_progress_info_blank(k);
    e.done = g->done;
    e.total = g->total;
    e.n_blocks = g->n_blocks;
    e.tokens = g->t.tokens;
    e.forward_s = g->t.forward_s;
    e.hessian_s = g->t.hessian_s;
    e.solve_s = g->t.solve_s;
    if (g->t.forward_done_s > 0) {
        e.tokens_per_s = (double)g->t.tokens / g->t.forward_done_s;
        e.gflop_per_s = g->t.flops / g->t.forward_done_s * 1e-9;
    }
    if (g->done > g->done_before) { /* the mean unit, less what the unit in progress has taken */
        const double mean = (g->t_unit - g->t_loop) / (double)(g->done - g->done_before);
        const double left = mean * (double)(g->total - g->done) - (xf_now_seconds() - g->t_unit);
        e.eta_s = left > 0 ? left : 0;
    }
    return e;
}

static void send_input(xf_gptq_progress *g, int64_t block, const char *input, const char *detail)
{
    xf_progress_info e = with_totals(g, XF_PEV_INPUT);
    e.block = block;
    e.input = input;
    e.detail = detail;
    e.input_forward_s = g->in_forward_s;
    e.input_hessian_s = g->in_hessian_s;
    e.input_solve_s = g->in_solve_s;
    xf_progress_emit(&g->prog, &e);
    g->in_forward_s = g->in_hessian_s = g->in_solve_s = 0;
}

void xf_gptq_progress_input(xf_gptq_progress *g, int64_t block, const char *input,
                            const char *detail)
{
    send_input(g, block, input, detail);
}

void xf_gptq_progress_block(xf_gptq_progress *g, int64_t block)
{
    g->t.tokens += g->block_tokens;
    g->t.flops += g->block_flops;
    g->t.forward_done_s = g->t.forward_s;
    g->done++;
    g->t_unit = xf_now_seconds();
    g->in_forward_s = g->in_hessian_s = g->in_solve_s = 0; /* the run to the block's end */
    xf_progress_info e = with_totals(g, XF_PEV_BLOCK);
    e.block = block;
    xf_progress_emit(&g->prog, &e);
}

void xf_gptq_progress_head(xf_gptq_progress *g)
{
    g->done++;
    g->t_unit = xf_now_seconds();
    send_input(g, -1, "lm_head", "lm_head");
}

void xf_gptq_progress_end(xf_gptq_progress *g)
{
    g->t.total_s = xf_now_seconds() - g->t_begin;
    xf_progress_info e = with_totals(g, XF_PEV_END);
    e.eta_s = g->done == g->total ? 0 : -1;
    xf_progress_finish_with(&g->prog, &e);
}

json_t *xf_gptq_timing_json(const xf_gptq_timing *t)
{
    return json_pack("{s:f, s:f, s:f, s:f}", "forward_s", t->forward_s, "hessian_s", t->hessian_s,
                     "solve_s", t->solve_s, "total_s", t->total_s);
}
