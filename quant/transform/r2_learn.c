/* --rotate learned, second half: SpinQuant's R2, one head_dim rotation per
 * layer on v's output / o's input (quant/transform/rotate.h step 3), learned by
 * Cayley SGD (quant/transform/rotation_learning.h) after R1 is applied. o's input (the
 * attention output) does not depend on R1 in exact arithmetic, but it is
 * captured from the R1-rotated model anyway: that is the model being
 * quantized. Objective per layer: the relative output error of o_proj
 * under the scheme's "o" activation quantizer and the weight grid, with R2
 * applied block-diagonally to every head's slice of o's input. The V half
 * of the KV cache also changes basis with R2 but is not in the objective
 * (as for R1: its error shows up in o's input). */
#include "quant/transform/rotate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "model/block_stream.h"
#include "sim/act_hooks.h"
#include "sim/hadamard.h"
#include "quant/transform/rotation_learning.h"

/* As for R1 (r1_learn.c): windows captured, rows per step. */
#define XF_R2_WINDOWS 8
#define XF_R2_BATCH_TOKENS 1024

typedef struct o_capture {
    int64_t T, width, layers, windows;
    float *x;   /* [layers, windows * T, width] */
} o_capture;

/* o's input of block l (dl) for every window of the stream into c->x. */
static int take_o_inputs(o_capture *c, xf_block_stream *bs, const xf_dense_layer *dl,
                         int64_t l, xf_error *err)
{
    for (int64_t w = 0; w < c->windows; w++) {
        int64_t cols;
        const float *x;
        if (xf_block_stream_input(bs, dl, NULL, w, &x, &cols, err) != 0)
            return -1;
        memcpy(c->x + ((size_t)(l * c->windows + w) * (size_t)c->T) * (size_t)c->width, x,
               (size_t)(c->T * c->width) * sizeof *x);
    }
    return 0;
}

/* o's inputs of every layer, block by block (model/block_stream.h); the
 * last block stops there. */
static int capture_blocks(const xf_model_weights *mw, const int32_t *tokens,
                          const xf_forward_hooks *hooks, o_capture *c, xf_error *err)
{
    xf_block_stream bs;
    if (xf_block_stream_init(&bs, mw, tokens, c->windows, c->T, XF_STREAM_KEEP_NARROW, NULL,
                             "learned R2", err) != 0)
        return -1;
    int rc = 0;
    for (int64_t l = 0; l < c->layers && rc == 0; l++) {
        xf_dense_layer dl;
        if (xf_dense_layer_init(&dl, mw, (int)l, err) != 0) {
            rc = -1;
            break;
        }
        rc = xf_block_stream_run(&bs, &dl, XF_AT_O, hooks, err);
        if (rc == 0)
            rc = take_o_inputs(c, &bs, &dl, l, err);
        if (rc == 0 && l + 1 < c->layers)
            rc = xf_block_stream_run(&bs, &dl, XF_AT_END, hooks, err);
        xf_dense_layer_free(&dl);
    }
    xf_block_stream_free(&bs);
    return rc;
}

static int capture_all(const xf_model_weights *mw, const xf_r1_request *q,
                       const xf_online_transforms *online, o_capture *c, xf_error *err)
{
    /* full precision: an all-off scheme, only the online transforms */
    xf_act_scheme off;
    xf_act_scheme_default(&off);
    xf_act_hooks ah;
    if (xf_act_hooks_init_online(&ah, &off, online, NULL, err) != 0)
        return -1;
    int rc = capture_blocks(mw, q->tokens, xf_act_hooks_active(&ah) ? &ah.hooks : NULL, c, err);
    xf_act_hooks_free(&ah);
    return rc;
}

/* R2 of layer l into R (in: nothing; out: learned or the start). */
static int learn_layer(const xf_r1_request *q, const float *X, int64_t N, const float *W,
                       int64_t hidden, int64_t width, int64_t d, int64_t l, double *R,
                       json_t *layers, xf_error *err)
{
    uint64_t seed = q->seed + 1 + (uint64_t)l;
    if (xf_hadamard_dense(d, &seed, R, err) != 0)
        return -1;
    xf_lrot_problem p;
    if (xf_lrot_problem_init(&p, d, XF_LROT_NORM_RELATIVE, err) != 0)
        return -1;
    xf_lrot_quant lq;
    xf_lrot_quant_from_scheme(&lq, q->act, XF_IN_O, q->weight_bits, q->weight_sym,
                              q->weight_group);
    char name[64];
    snprintf(name, sizeof name, "layers.%lld.o", (long long)l);
    double *start = malloc((size_t)(d * d) * sizeof *start);
    int rc = start ? 0 : xf_fail(err, "learned R2: out of memory");
    if (rc == 0)
        rc = xf_lrot_add_term(&p, name, X, N, W, hidden, width, &lq, 1.0, err);
    xf_lrot_report rep = {0};
    if (rc == 0) {
        xf_lrot_options o;
        xf_lrot_options_default(&o);
        o.steps = (int)q->steps;
        o.lr = q->lr;
        o.seed = seed;
        o.batch_tokens = XF_R2_BATCH_TOKENS;
        memcpy(start, R, (size_t)(d * d) * sizeof *start);
        rc = xf_lrot_optimize(&p, &o, R, NULL, NULL, &rep, err);
    }
    if (rc == 0) {
        /* the last iterate is kept only if it is better on all rows */
        bool kept = rep.loss_final < rep.loss_initial;
        if (!kept)
            memcpy(R, start, (size_t)(d * d) * sizeof *R);
        xf_log_info("learned R2 layer %lld: loss %.6g -> %.6g over %d steps (%s)", (long long)l,
                    rep.loss_initial, rep.loss_final, rep.steps_run,
                    kept ? "kept" : "not better: the randomized Hadamard is kept");
        json_array_append_new(layers, json_pack("{s:I, s:f, s:f, s:i, s:b, s:f}", "layer",
                                                (json_int_t)l, "loss_initial", rep.loss_initial,
                                                "loss_final", rep.loss_final, "steps",
                                                rep.steps_run, "kept", kept, "orth_error",
                                                rep.orth_error));
    }
    free(start);
    xf_lrot_problem_free(&p);
    return rc;
}

int xf_learned_r2(xf_model_edit *e, const xf_r1_request *q, const xf_online_transforms *online,
                  json_t *record, xf_error *err)
{
    const xf_model_weights *mw = &e->m->weights;
    const xf_model_config *cfg = &mw->cfg;
    const int64_t L = cfg->n_layers, d = cfg->head_dim, width = cfg->n_heads * d;
    if (!q->tokens || q->nsamples < 1)
        return xf_fail(err, "--rotate learned needs calibration text (--calib)");
    o_capture c = {.T = q->T, .width = width, .layers = L,
                   .windows = q->nsamples < XF_R2_WINDOWS ? q->nsamples : XF_R2_WINDOWS};
    const int64_t N = c.windows * c.T;
    c.x = malloc((size_t)(L * N * width) * sizeof *c.x);
    double *R = malloc((size_t)(L * d * d) * sizeof *R);
    const double **R2 = malloc((size_t)L * sizeof *R2);
    int rc = 0;
    if (!c.x || !R || !R2)
        rc = xf_fail(err, "learned R2: out of memory for %lld captured tokens", (long long)N);
    if (rc == 0)
        rc = capture_all(mw, q, online, &c, err);
    json_t *layers = json_array();
    for (int64_t l = 0; l < L && rc == 0; l++) {
        /* W_o [hidden, width] in the logical layout, as the runner uses it */
        xf_dense_layer dl;
        if (xf_dense_layer_init(&dl, mw, (int)l, err) != 0) {
            rc = -1;
            break;
        }
        rc = learn_layer(q, c.x + (size_t)(l * N * width), N, dl.w[XF_LIN_O], cfg->hidden, width,
                         d, l, R + l * d * d, layers, err);
        xf_dense_layer_free(&dl);
        R2[l] = R + l * d * d;
    }
    if (rc == 0)
        rc = xf_rotate_headwise(e, R2, err);
    if (rc == 0)
        json_object_set_new(
            record, "learned_r2",
            json_pack("{s:I, s:f, s:I, s:I, s:o, s:s}", "steps", (json_int_t)q->steps, "lr",
                      q->lr, "windows", (json_int_t)c.windows, "batch_tokens",
                      (json_int_t)XF_R2_BATCH_TOKENS, "layers", layers, "objective",
                      "relative output error of o (block-diagonal over heads, STE)"));
    else
        json_decref(layers);
    free((void *)R2);
    free(R);
    free(c.x);
    return rc;
}
