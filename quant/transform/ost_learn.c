/* --rotate learned --rotate-scales (OstQuant), and any --rotate-loss
 * kl-top run: R1, the per-layer R2 and the per-channel scales of
 * quant/transform/ost.h learned against the loss of the whole
 * fake-quantized network, as quant/transform/e2e_learn.c learns the
 * rotations alone (same quantizer hooks and STE, minibatches, cosine
 * schedule, Cayley steps, same start): the scales' logs by Adam
 * (XF_OST_SCALE_LR, the same cosine decay), starting at 0 (scale 1). The
 * loss: ce, kl or KL-Top (model/backward.h) to the full-precision model's
 * logits. The result is kept only when the loss on all the windows used
 * drops. */
#include "quant/transform/ost.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/progress.h"
#include "sim/act_hooks.h"
#include "sim/act_hooks_grad.h"
#include "quant/transform/e2e_pass.h"
#include "quant/transform/rotation_learning.h"

typedef struct learner {
    const xf_r1_request *q;
    xf_ost_model om;
    xf_e2e_pass ps; /* windows forward and back, the loss, its references */
    xf_grid_config grid;
    int64_t nwin;
    xf_ost_params gp, m1, m2; /* gradient, Adam moments (scales only) */
} learner;

static int full_loss(learner *ln, const xf_ost_params *p, double *loss, xf_error *err)
{
    if (xf_ost_build(&ln->om, p, &ln->grid, ln->q->weight_group, err) != 0)
        return -1;
    *loss = 0.0;
    const double s = xf_e2e_pass_scale(&ln->ps, ln->nwin);
    for (int64_t w = 0; w < ln->nwin; w++)
        if (xf_e2e_pass_window(&ln->ps, &ln->om.m, w, s, false, loss, ln->gp.R1, err) != 0)
            return -1;
    return 0;
}

/* The full-precision model's logits (identity transform, no quantizer,
 * online transforms on), kept whole (kl) or as its top-k (kl-top). */
static int reference(learner *ln, const xf_ost_params *ident, xf_error *err)
{
    if (xf_ost_build(&ln->om, ident, NULL, 0, err) != 0)
        return -1;
    return xf_e2e_pass_reference(&ln->ps, &ln->om.m, err);
}

static int learner_init(learner *ln, const xf_model_weights *mw, const xf_r1_request *q,
                        const xf_online_transforms *online, bool with_r2, xf_error *err)
{
    memset(ln, 0, sizeof *ln);
    ln->q = q;
    const xf_model_config *c = &mw->cfg;
    ln->nwin = q->nsamples < q->e2e_windows ? q->nsamples : q->e2e_windows;
    ln->grid = (xf_grid_config){.bits = q->weight_bits, .sym = q->weight_sym, .clip = XF_CLIP_NONE};
    if (xf_ost_model_init(&ln->om, mw, online && online->down ? &online->down_had : NULL,
                          "--rotate-scales / kl-top", err) != 0 ||
        xf_e2e_pass_init(&ln->ps, &ln->om.m, q, online, "OstQuant", err) != 0 ||
        xf_ost_params_init(&ln->gp, c, with_r2, err) != 0 ||
        xf_ost_params_init(&ln->m1, c, false, err) != 0 ||
        xf_ost_params_init(&ln->m2, c, false, err) != 0)
        return -1;
    xf_ost_params_zero(&ln->m1);
    xf_ost_params_zero(&ln->m2);
    return 0;
}

static void learner_free(learner *ln)
{
    xf_ost_model_free(&ln->om);
    xf_e2e_pass_free(&ln->ps);
    xf_ost_params_free(&ln->gp);
    xf_ost_params_free(&ln->m1);
    xf_ost_params_free(&ln->m2);
}

/* Adam (beta 0.9 / 0.999, eps 1e-8) on x [n] */
static void adam(double *x, const double *g, double *m1, double *m2, int64_t n, double lr, int t)
{
    const double b1 = 0.9, b2 = 0.999, c1 = 1.0 - pow(b1, t), c2 = 1.0 - pow(b2, t);
    for (int64_t i = 0; i < n; i++) {
        m1[i] = b1 * m1[i] + (1.0 - b1) * g[i];
        m2[i] = b2 * m2[i] + (1.0 - b2) * g[i] * g[i];
        x[i] -= lr * (m1[i] / c1) / (sqrt(m2[i] / c2) + 1e-8);
    }
}

static int step(learner *ln, xf_ost_params *p, int s, int64_t *perm, double *loss, double *eta1,
                xf_error *err)
{
    const xf_r1_request *q = ln->q;
    const int64_t b = q->e2e_batch < ln->nwin ? q->e2e_batch : ln->nwin;
    /* the minibatches of SpinQuant e2e (same seed, same windows) */
    xf_e2e_pick_windows(q->seed, s, ln->nwin, b, perm);
    if (xf_ost_build(&ln->om, p, &ln->grid, q->weight_group, err) != 0)
        return -1;
    xf_grads_zero(&ln->ps.g);
    xf_ost_params_zero(&ln->gp);
    *loss = 0.0;
    const double sc = xf_e2e_pass_scale(&ln->ps, b);
    for (int64_t i = 0; i < b; i++)
        if (xf_e2e_pass_window(&ln->ps, &ln->om.m, perm[i], sc, true, loss, ln->gp.R1, err) != 0)
            return -1;
    err->msg[0] = '\0';
    xf_ost_grad(&ln->om, &ln->ps.g, &ln->gp, err);
    if (err->msg[0])
        return -1;
    const double cosf = 0.5 * (1.0 + cos(M_PI * (double)s / (double)q->steps));
    const int64_t H = p->H, d = p->d, L = p->L;
    if (xf_lrot_cayley_step(p->R1, ln->gp.R1, H, q->lr * cosf, 1.0, eta1, err) != 0)
        return -1;
    for (int64_t l = 0; p->R2 && l < L; l++)
        if (xf_lrot_cayley_step(p->R2 + l * d * d, ln->gp.R2 + l * d * d, d, q->lr * cosf, 1.0,
                                NULL, err) != 0)
            return -1;
    if (q->ost_scales) {
        const double lr = XF_OST_SCALE_LR * cosf;
        adam(p->la, ln->gp.la, ln->m1.la, ln->m2.la, L * H, lr, s + 1);
        adam(p->lm, ln->gp.lm, ln->m1.lm, ln->m2.lm, L * H, lr, s + 1);
        adam(p->lv, ln->gp.lv, ln->m1.lv, ln->m2.lv, L * p->kvd, lr, s + 1);
        adam(p->lu, ln->gp.lu, ln->m1.lu, ln->m2.lu, L * p->NI, lr, s + 1);
    }
    if ((s + 1) % 10 == 0) {
        double e;
        if (xf_lrot_reorthogonalize(p->R1, H, &e, err) != 0)
            return -1;
        for (int64_t l = 0; p->R2 && l < L; l++)
            if (xf_lrot_reorthogonalize(p->R2 + l * d * d, d, &e, err) != 0)
                return -1;
    }
    return 0;
}

static void copy_params(xf_ost_params *dst, const xf_ost_params *src)
{
    memcpy(dst->R1, src->R1, (size_t)(src->H * src->H) * sizeof *dst->R1);
    if (src->R2 && dst->R2)
        memcpy(dst->R2, src->R2, (size_t)(src->L * src->d * src->d) * sizeof *dst->R2);
    memcpy(dst->la, src->la, (size_t)(src->L * src->H) * sizeof *dst->la);
    memcpy(dst->lm, src->lm, (size_t)(src->L * src->H) * sizeof *dst->lm);
    memcpy(dst->lv, src->lv, (size_t)(src->L * src->kvd) * sizeof *dst->lv);
    memcpy(dst->lu, src->lu, (size_t)(src->L * src->NI) * sizeof *dst->lu);
}

/* largest |log-scale| (the record's measure of how far the scales moved) */
static double max_abs(const xf_ost_params *p)
{
    double mx = 0.0;
    const double *a[4] = {p->la, p->lm, p->lv, p->lu};
    const int64_t n[4] = {p->L * p->H, p->L * p->H, p->L * p->kvd, p->L * p->NI};
    for (int k = 0; k < 4; k++)
        for (int64_t i = 0; i < n[k]; i++)
            mx = fabs(a[k][i]) > mx ? fabs(a[k][i]) : mx;
    return mx;
}

int xf_learned_ost(const xf_model_weights *mw, const xf_r1_request *q,
                   const xf_online_transforms *online, xf_ost_params *p, json_t *record,
                   xf_error *err)
{
    if (!q->tokens || q->nsamples < 1)
        return xf_fail(err, "--rotate learned needs calibration text (--calib)");
    if (q->e2e_windows < 1 || q->e2e_batch < 1 || q->steps < 0)
        return xf_fail(err, "OstQuant: windows %lld and batch %lld must be >= 1",
                       (long long)q->e2e_windows, (long long)q->e2e_batch);
    const int64_t H = p->H, d = p->d, L = p->L;
    xf_ost_params start, ident;
    memset(&start, 0, sizeof start);
    memset(&ident, 0, sizeof ident);
    learner ln;
    int rc = learner_init(&ln, mw, q, online, p->R2 != NULL, err);
    if (rc == 0)
        rc = xf_ost_params_init(&ident, &mw->cfg, p->R2 != NULL, err);
    if (rc == 0)
        rc = xf_ost_params_init(&start, &mw->cfg, p->R2 != NULL, err);
    /* the e2e learner's start: randomized Hadamard R1, plain H_d R2 */
    xf_ost_params_zero(p);
    if (rc == 0)
        rc = xf_hadamard_dense(H, &q->seed, p->R1, err);
    for (int64_t l = 0; rc == 0 && p->R2 && l < L; l++)
        rc = xf_hadamard_dense(d, NULL, p->R2 + l * d * d, err);
    int64_t *perm = malloc((size_t)(ln.nwin > 0 ? ln.nwin : 1) * sizeof *perm);
    if (rc == 0 && !perm)
        rc = xf_fail(err, "OstQuant: out of memory");
    if (rc == 0 && q->e2e_loss != XF_ROTATE_LOSS_CE)
        rc = reference(&ln, &ident, err);
    double loss0 = 0, loss1 = 0;
    if (rc == 0)
        rc = full_loss(&ln, p, &loss0, err);
    if (rc == 0)
        copy_params(&start, p);
    xf_progress bar;
    xf_progress_init(&bar, "OstQuant (e2e): step");
    int steps_run = 0;
    for (int s = 0; s < q->steps && rc == 0; s++) {
        double loss, eta;
        rc = step(&ln, p, s, perm, &loss, &eta, err);
        if (rc != 0)
            break;
        steps_run = s + 1;
        char extra[96];
        snprintf(extra, sizeof extra, " loss %.5g (start %.5g) eta %.3g", loss, loss0, eta);
        xf_progress_update(&bar, s + 1, (int)q->steps, 0, extra);
        if ((s + 1) % 10 == 0 || s + 1 == q->steps)
            xf_log_info("OstQuant (%s%s): step %d/%lld, minibatch loss %.6g, eta %.4g",
                        xf_rotate_loss_name(q->e2e_loss), q->ost_scales ? ", scales" : "",
                        s + 1, (long long)q->steps, loss, eta);
    }
    xf_progress_finish(&bar);
    if (rc == 0)
        rc = full_loss(&ln, p, &loss1, err);
    if (rc == 0) {
        const bool kept = loss1 < loss0;
        if (!kept)
            copy_params(p, &start);
        xf_log_info("OstQuant (%s): calibration loss %.6g -> %.6g over %d steps (%s)",
                    xf_rotate_loss_name(q->e2e_loss), loss0, loss1, steps_run,
                    kept ? "kept" : "not better: the Hadamard start is kept");
        json_object_set_new(
            record, "learned",
            json_pack("{s:s, s:s, s:I, s:b, s:f, s:s, s:f, s:f, s:i, s:f, s:I, s:I, s:b, s:b, "
                      "s:f, s:f}",
                      "objective", "e2e", "loss", xf_rotate_loss_name(q->e2e_loss), "kl_top_k",
                      (json_int_t)(q->e2e_loss == XF_ROTATE_LOSS_KL_TOP ? q->kl_top_k : 0),
                      "scales", q->ost_scales, "scale_lr", q->ost_scales ? XF_OST_SCALE_LR : 0.0,
                      "ste", q->e2e_ste_scale ? "scale" : "identity", "loss_initial", loss0,
                      "loss_final", loss1, "steps", steps_run, "lr", q->lr, "windows",
                      (json_int_t)ln.nwin, "batch_windows",
                      (json_int_t)(q->e2e_batch < ln.nwin ? q->e2e_batch : ln.nwin), "r2",
                      p->R2 != NULL, "kept", kept, "orth_error", xf_lrot_orth_error(p->R1, H),
                      "max_abs_log_scale", max_abs(p)));
    }
    free(perm);
    xf_ost_params_free(&start);
    xf_ost_params_free(&ident);
    learner_free(&ln);
    return rc;
}
