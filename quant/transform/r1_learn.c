/* --rotate learned: R1 by Cayley SGD (quant/transform/rotation_learning.h) from the
 * randomized Hadamard of the seed, SpinQuant-style, with a local objective:
 * the output error of every linear that reads the residual stream (q, k, v,
 * gate, up of each layer) under the recipe's weight (RTN grid) and
 * activation quantizers, on inputs captured from the folded full-precision
 * model. The LM head stays in full precision (as in QuaRot), so it is not
 * a term. KV-cache quantization is not in the objective: K and V are
 * outputs of k/v, whose error the q/k/v terms already measure. */
#include "quant/transform/rotate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/progress.h"
#include "model/forward.h"
#include "sim/hadamard.h"
#include "quant/transform/rotation_learning.h"

/* Windows of calibration text the objective is built on: each step costs
 * a few GEMMs over all captured rows (batch_tokens caps that). */
#define XF_LEARNED_WINDOWS 8
#define XF_LEARNED_BATCH_TOKENS 1024

typedef struct capture {
    int64_t T, n, layers, windows;
    int64_t w;       /* window being run */
    float *x_qkv;    /* [layers, windows * T, n] */
    float *x_mlp;
} capture;

static int capture_hook(void *user, int layer, xf_linear_role role, float *x, int64_t rows,
                        int64_t cols, xf_error *err)
{
    capture *c = user;
    /* the mlp input is reported as GATE (llama) or UP (OPT fc1, GPT-2 c_fc) */
    const bool mlp = role == XF_LIN_GATE || role == XF_LIN_UP;
    if (role != XF_LIN_Q && !mlp)
        return 0;
    if (cols != c->n || rows != c->T)
        return xf_fail(err, "learned rotation: layer %d input is [%lld, %lld]", layer,
                       (long long)rows, (long long)cols);
    float *dst = (mlp ? c->x_mlp : c->x_qkv) +
                 ((size_t)layer * (size_t)(c->windows * c->T) + (size_t)(c->w * c->T)) *
                     (size_t)c->n;
    memcpy(dst, x, (size_t)(rows * cols) * sizeof *x);
    return layer == c->layers - 1 && mlp ? XF_HOOK_STOP : 0;
}

typedef struct progress_ctx {
    xf_progress bar;
    double first;
} progress_ctx;

static int on_step(void *user, int step, int steps, double loss, double eta)
{
    progress_ctx *p = user;
    if (step == 0)
        p->first = loss;
    char extra[96];
    snprintf(extra, sizeof extra, " loss %.5g (start %.5g) lr %.3g", loss, p->first, eta);
    xf_progress_update(&p->bar, step + 1, steps, 0, extra);
    if ((step + 1) % 25 == 0 || step + 1 == steps)
        xf_log_info("learned rotation: step %d/%d, minibatch loss %.6g, lr %.4g", step + 1, steps,
                    loss, eta);
    return 0;
}

int xf_learned_r1(const xf_model_weights *mw, const xf_r1_request *q, double *R1,
                  json_t *record, xf_error *err)
{
    const int64_t n = mw->cfg.hidden, L = mw->cfg.n_layers;
    if (!q->tokens || q->nsamples < 1)
        return xf_fail(err, "--rotate learned needs calibration text (--calib)");
    if (xf_hadamard_dense(n, &q->seed, R1, err) != 0)
        return -1;
    capture c = {.T = q->T, .n = n, .layers = L,
                 .windows = q->nsamples < XF_LEARNED_WINDOWS ? q->nsamples : XF_LEARNED_WINDOWS};
    size_t per = (size_t)(L * c.windows * c.T * n);
    c.x_qkv = malloc(per * sizeof *c.x_qkv);
    c.x_mlp = malloc(per * sizeof *c.x_mlp);
    xf_runner r;
    int rc = 0, runner_ok = 0;
    if (!c.x_qkv || !c.x_mlp)
        rc = xf_fail(err, "learned rotation: out of memory for %lld captured tokens",
                     (long long)(c.windows * c.T));
    /* every layer cached: the terms point at the runner's fp32 weights */
    if (rc == 0 && xf_runner_init(&r, mw, q->T, SIZE_MAX, err) != 0)
        rc = -1;
    runner_ok = rc == 0;
    xf_forward_hooks hooks = {.user = &c, .on_linear_input = capture_hook};
    for (c.w = 0; c.w < c.windows && rc == 0; c.w++) {
        int k = xf_runner_forward_hooked(&r, q->tokens + c.w * q->T, q->T, &hooks, NULL, err);
        rc = k == XF_HOOK_STOP ? 0 : (k < 0 ? -1 : xf_fail(err, "learned: pass did not stop"));
    }
    xf_lrot_problem p;
    int p_ok = 0;
    if (rc == 0 && xf_lrot_problem_init(&p, n, XF_LROT_NORM_RELATIVE, err) != 0)
        rc = -1;
    p_ok = rc == 0;
    const int64_t N = c.windows * c.T;
    /* one term per distinct input: q|k|v and gate|up stacked by rows (they
     * read the same X under the same quantizer, so X R is computed once;
     * per-row weight grids are unchanged by stacking) */
    float **stacked = calloc((size_t)(2 * L), sizeof *stacked);
    if (rc == 0 && !stacked)
        rc = xf_fail(err, "learned rotation: out of memory");
    for (int64_t l = 0; l < L && rc == 0; l++) {
        const xf_dense_layer *dl = xf_runner_cached_layer(&r, (int)l);
        if (!dl) {
            rc = xf_fail(err, "learned rotation: layer %lld is not cached", (long long)l);
            break;
        }
        static const xf_linear_role groups[2][3] = {{XF_LIN_Q, XF_LIN_K, XF_LIN_V},
                                                    {XF_LIN_GATE, XF_LIN_UP, XF_LIN_COUNT}};
        for (int g = 0; g < 2 && rc == 0; g++) {
            int64_t rows = 0;
            for (int k = 0; k < 3 && groups[g][k] != XF_LIN_COUNT; k++)
                rows += dl->w[groups[g][k]] ? dl->out[groups[g][k]] : 0;
            float *W = malloc((size_t)(rows * n) * sizeof *W);
            if (!W) {
                rc = xf_fail(err, "learned rotation: out of memory");
                break;
            }
            stacked[2 * l + g] = W;
            int64_t at = 0;
            for (int k = 0; k < 3 && groups[g][k] != XF_LIN_COUNT; k++) {
                xf_linear_role role = groups[g][k];
                if (!dl->w[role])
                    continue;
                memcpy(W + at * n, dl->w[role], (size_t)(dl->out[role] * n) * sizeof *W);
                at += dl->out[role];
            }
            const float *X = (g == 0 ? c.x_qkv : c.x_mlp) + (size_t)(l * N * n);
            xf_lrot_quant lq;
            xf_lrot_quant_from_scheme(&lq, q->act, g == 0 ? XF_ACT_IN_QKV : XF_ACT_IN_MLP,
                                      q->weight_bits, q->weight_sym, q->weight_group);
            char name[64];
            snprintf(name, sizeof name, "layers.%lld.%s", (long long)l, g == 0 ? "qkv" : "mlp");
            rc = xf_lrot_add_term(&p, name, X, N, W, rows, n, &lq, 1.0, err);
        }
    }
    if (rc == 0) {
        xf_lrot_options o;
        xf_lrot_options_default(&o);
        o.steps = (int)q->steps;
        o.lr = q->lr;
        o.seed = q->seed;
        o.batch_tokens = XF_LEARNED_BATCH_TOKENS;
        double *start = malloc((size_t)(n * n) * sizeof *start);
        if (!start)
            rc = xf_fail(err, "learned rotation: out of memory");
        progress_ctx pc = {0};
        xf_progress_init(&pc.bar, "learned rotation: step");
        xf_lrot_report rep = {0};
        if (rc == 0) {
            memcpy(start, R1, (size_t)(n * n) * sizeof *start);
            rc = xf_lrot_optimize(&p, &o, R1, on_step, &pc, &rep, err);
        }
        xf_progress_finish(&pc.bar);
        if (rc == 0) {
            /* the last iterate is kept only if it is better on all rows */
            bool kept = rep.loss_final < rep.loss_initial;
            if (!kept)
                memcpy(R1, start, (size_t)(n * n) * sizeof *R1);
            xf_log_info("learned rotation: loss %.6g -> %.6g over %d steps (%s)",
                        rep.loss_initial, rep.loss_final, rep.steps_run,
                        kept ? "kept" : "not better: the randomized Hadamard is kept");
            json_object_set_new(
                record, "learned",
                json_pack("{s:f, s:f, s:i, s:f, s:I, s:I, s:I, s:b, s:f, s:s}", "loss_initial",
                          rep.loss_initial, "loss_final", rep.loss_final, "steps", rep.steps_run,
                          "lr", q->lr, "windows", (json_int_t)c.windows, "batch_tokens",
                          (json_int_t)o.batch_tokens, "terms", (json_int_t)p.n_terms, "kept",
                          kept, "orth_error", rep.orth_error, "objective",
                          "relative output error of q|k|v and gate|up (STE)"));
        }
        free(start);
    }
    if (p_ok)
        xf_lrot_problem_free(&p);
    for (int64_t i = 0; stacked && i < 2 * L; i++)
        free(stacked[i]);
    free(stacked);
    if (runner_ok)
        xf_runner_free(&r);
    free(c.x_qkv);
    free(c.x_mlp);
    return rc;
}
