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
#include "model/block_stream.h"
#include "sim/hadamard.h"
#include "quant/transform/rotation_learning.h"

/* Windows of calibration text the objective is built on: each step costs
 * a few GEMMs over all captured rows (batch_tokens caps that). */
#define XF_LEARNED_WINDOWS 8
#define XF_LEARNED_BATCH_TOKENS 1024

typedef struct capture {
    int64_t T, n, layers, windows;
    float *x_qkv;    /* [layers, windows * T, n] */
    float *x_mlp;
} capture;

/* The pending input of every window of the stream (block dl) into layer
 * l's rows of dst ([layers, windows * T, n]). */
static int take_inputs(const capture *c, xf_block_stream *bs, const xf_dense_layer *dl,
                       int64_t l, float *dst, xf_error *err)
{
    for (int64_t w = 0; w < c->windows; w++) {
        int64_t cols;
        const float *x;
        if (xf_block_stream_input(bs, dl, NULL, w, &x, &cols, err) != 0)
            return -1;
        memcpy(dst + ((size_t)(l * c->windows + w) * (size_t)c->T) * (size_t)c->n, x,
               (size_t)(c->T * c->n) * sizeof *x);
    }
    return 0;
}

/* The residual readers' inputs (qkv and mlp) of every layer of the folded
 * full-precision model (the runner's cached layers), block by block
 * (model/block_stream.h); the last block stops at its mlp input. */
static int capture_inputs(capture *c, xf_runner *r, const int32_t *tokens, xf_error *err)
{
    xf_block_stream bs;
    if (xf_block_stream_init(&bs, r->mw, tokens, c->windows, c->T, XF_STREAM_KEEP_NARROW, NULL,
                             "learned rotation", err) != 0)
        return -1;
    int rc = 0;
    for (int64_t l = 0; l < c->layers && rc == 0; l++) {
        const xf_dense_layer *dl = xf_runner_cached_layer(r, (int)l);
        if (!dl)
            rc = xf_fail(err, "learned rotation: layer %lld is not cached", (long long)l);
        if (rc == 0)
            rc = xf_block_stream_run(&bs, dl, XF_AT_QKV, NULL, err);
        if (rc == 0)
            rc = take_inputs(c, &bs, dl, l, c->x_qkv, err);
        if (rc == 0)
            rc = xf_block_stream_run(&bs, dl, XF_AT_MLP, NULL, err);
        if (rc == 0)
            rc = take_inputs(c, &bs, dl, l, c->x_mlp, err);
        if (rc == 0) {
            if (l + 1 < c->layers)
                rc = xf_block_stream_run(&bs, dl, XF_AT_END, NULL, err);
        }
    }
    xf_block_stream_free(&bs);
    return rc;
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
    if (rc == 0)
        rc = capture_inputs(&c, &r, q->tokens, err);
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
        for (int g = 0; g < 2 && rc == 0; g++) {
            xf_linear_role readers[XF_IN_MAX_READERS];
            const int nr = xf_lin_input_readers(&mw->cfg, g == 0 ? XF_IN_QKV : XF_IN_MLP, readers);
            int64_t rows = 0;
            for (int k = 0; k < nr; k++)
                rows += dl->out[readers[k]];
            float *W = malloc((size_t)(rows * n) * sizeof *W);
            if (!W) {
                rc = xf_fail(err, "learned rotation: out of memory");
                break;
            }
            stacked[2 * l + g] = W;
            int64_t at = 0;
            for (int k = 0; k < nr; k++) {
                xf_linear_role role = readers[k];
                memcpy(W + at * n, dl->w[role], (size_t)(dl->out[role] * n) * sizeof *W);
                at += dl->out[role];
            }
            const float *X = (g == 0 ? c.x_qkv : c.x_mlp) + (size_t)(l * N * n);
            xf_lrot_quant lq;
            xf_lrot_quant_from_scheme(&lq, q->act, g == 0 ? XF_IN_QKV : XF_IN_MLP,
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
