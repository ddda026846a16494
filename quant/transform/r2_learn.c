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
#include "model/forward.h"
#include "sim/act_hooks.h"
#include "sim/hadamard.h"
#include "quant/transform/rotation_learning.h"

/* As for R1 (r1_learn.c): windows captured, rows per step. */
#define XF_R2_WINDOWS 8
#define XF_R2_BATCH_TOKENS 1024

typedef struct o_capture {
    int64_t T, width, layers, windows;
    int64_t w;  /* window being run */
    float *x;   /* [layers, windows * T, width] */
} o_capture;

static int capture_o(void *user, int layer, xf_linear_role role, float *x, int64_t rows,
                     int64_t cols, xf_error *err)
{
    o_capture *c = user;
    if (role != XF_LIN_O)
        return 0;
    if (cols != c->width || rows != c->T)
        return xf_fail(err, "learned R2: layer %d o input is [%lld, %lld]", layer,
                       (long long)rows, (long long)cols);
    float *dst = c->x + ((size_t)layer * (size_t)(c->windows * c->T) + (size_t)(c->w * c->T)) *
                            (size_t)c->width;
    memcpy(dst, x, (size_t)(rows * cols) * sizeof *x);
    /* nothing after the last o input is needed */
    return layer == c->layers - 1 ? XF_HOOK_STOP : 0;
}

static int capture_all(const xf_model_weights *mw, const xf_r1_request *q,
                       const xf_online_transforms *online, o_capture *c, xf_error *err)
{
    xf_runner r;
    if (xf_runner_init(&r, mw, q->T, 0, err) != 0)
        return -1;
    /* full precision: an all-off scheme, only the online transforms */
    xf_act_scheme off;
    xf_act_scheme_default(&off);
    xf_forward_hooks inner = {.user = c, .on_linear_input = capture_o};
    xf_act_hooks ah;
    int rc = xf_act_hooks_init_online(&ah, &off, online, &inner, err);
    if (rc != 0) {
        xf_runner_free(&r);
        return -1;
    }
    for (c->w = 0; c->w < c->windows && rc == 0; c->w++) {
        int k = xf_runner_forward_hooked(&r, q->tokens + c->w * q->T, q->T, &ah.hooks, NULL, err);
        rc = k == XF_HOOK_STOP ? 0 : (k < 0 ? -1 : xf_fail(err, "learned R2: pass did not stop"));
    }
    xf_act_hooks_free(&ah);
    xf_runner_free(&r);
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
    xf_lrot_quant_from_scheme(&lq, q->act, XF_ACT_IN_O, q->weight_bits, q->weight_sym,
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
