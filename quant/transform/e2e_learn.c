/* --rotate learned --rotate-objective e2e: SpinQuant's R1 and per-layer R2
 * learned by Cayley SGD against the loss of the WHOLE quantized network
 * (quant/transform/e2e_rotation.h the parametrization, model/backward.h the
 * backward pass): weights RTN fake-quantized on the recipe's grid,
 * activations, K/V and probabilities quantized by the recipe's scheme
 * through sim/act_hooks (the online down Hadamard included), all passed
 * straight through; the loss is the next-token cross-entropy of the
 * calibration windows (ce) or the KL divergence to the full-precision
 * model's logits (kl). Minibatches of windows; cosine learning rate;
 * each R its own Cayley step (quant/transform/cayley_sgd.c). The result is
 * kept only when the loss on all the windows used drops. */
#include "quant/transform/rotate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/progress.h"
#include "core/splitmix.h"
#include "sim/act_hooks.h"
#include "sim/act_hooks_grad.h"
#include "quant/transform/e2e_pass.h"
#include "quant/transform/e2e_rotation.h"
#include "quant/transform/rotation_learning.h"

const char *xf_rotate_loss_name(xf_rotate_loss l)
{
    return l == XF_ROTATE_LOSS_KL ? "kl" : l == XF_ROTATE_LOSS_KL_TOP ? "kl-top" : "ce";
}

typedef struct learner {
    const xf_r1_request *q;
    xf_e2e_model m;
    xf_e2e_pass ps; /* windows forward and back, the loss, its references */
    xf_grid_config grid;
    int64_t H, d, L, nwin;
    double *G1, *G2;
} learner;

/* Mean loss per position over all windows at R1 / R2. */
static int full_loss(learner *ln, const double *R1, const double *R2, double *loss, xf_error *err)
{
    if (xf_e2e_build(&ln->m, R1, R2, &ln->grid, ln->q->weight_group, err) != 0)
        return -1;
    *loss = 0.0;
    const double s = xf_e2e_pass_scale(&ln->ps, ln->nwin);
    for (int64_t w = 0; w < ln->nwin; w++)
        if (xf_e2e_pass_window(&ln->ps, &ln->m, w, s, false, loss, ln->G1, err) != 0)
            return -1;
    return 0;
}

/* The full-precision model's logits of every window (kl): effective
 * weights with identity rotations and no quantizer, online transforms on. */
static int reference_logits(learner *ln, xf_error *err)
{
    double *I1 = calloc((size_t)(ln->H * ln->H), sizeof *I1);
    if (!I1)
        return xf_fail(err, "learned rotation: out of memory");
    for (int64_t i = 0; i < ln->H; i++)
        I1[i * ln->H + i] = 1.0;
    int rc = xf_e2e_build(&ln->m, I1, NULL, NULL, 0, err);
    if (rc == 0)
        rc = xf_e2e_pass_reference(&ln->ps, &ln->m, err);
    free(I1);
    return rc;
}

void xf_e2e_pick_windows(uint64_t seed, int step, int64_t nwin, int64_t b, int64_t *perm)
{
    uint64_t st = seed ^ (0xd1b54a32d192ed03ull * (uint64_t)(step + 1));
    for (int64_t i = 0; i < nwin; i++)
        perm[i] = i;
    for (int64_t i = 0; i < b; i++) {
        int64_t j = i + (int64_t)(xf_splitmix64(&st) % (uint64_t)(nwin - i));
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

static int learner_init(learner *ln, const xf_model_weights *mw, const xf_r1_request *q,
                        const xf_online_transforms *online, bool learn_r2, xf_error *err)
{
    memset(ln, 0, sizeof *ln);
    ln->q = q;
    const xf_model_config *c = &mw->cfg;
    ln->H = c->hidden;
    ln->d = c->head_dim;
    ln->L = c->n_layers;
    ln->nwin = q->nsamples < q->e2e_windows ? q->nsamples : q->e2e_windows;
    ln->grid = (xf_grid_config){.bits = q->weight_bits, .sym = q->weight_sym, .clip = XF_CLIP_NONE};
    if (xf_e2e_model_init(&ln->m, mw, online && online->down ? &online->down_had : NULL,
                          "--rotate-objective e2e", err) != 0 ||
        xf_e2e_pass_init(&ln->ps, &ln->m, q, online, "learned rotation", err) != 0)
        return -1;
    ln->G1 = malloc((size_t)(ln->H * ln->H) * sizeof *ln->G1);
    if (learn_r2)
        ln->G2 = malloc((size_t)(ln->L * ln->d * ln->d) * sizeof *ln->G2);
    if (!ln->G1 || (learn_r2 && !ln->G2))
        return xf_fail(err, "learned rotation: out of memory");
    return 0;
}

static void learner_free(learner *ln)
{
    xf_e2e_model_free(&ln->m);
    xf_e2e_pass_free(&ln->ps);
    free(ln->G1);
    free(ln->G2);
}

/* One step: the minibatch's loss and gradient at R1 / R2, then a Cayley
 * step on each. */
static int step(learner *ln, double *R1, double *R2, int s, int64_t *perm, double *loss,
                double *eta1, xf_error *err)
{
    const xf_r1_request *q = ln->q;
    const int64_t b = q->e2e_batch < ln->nwin ? q->e2e_batch : ln->nwin;
    xf_e2e_pick_windows(q->seed, s, ln->nwin, b, perm);
    if (xf_e2e_build(&ln->m, R1, R2, &ln->grid, q->weight_group, err) != 0)
        return -1;
    xf_grads_zero(&ln->ps.g);
    memset(ln->G1, 0, (size_t)(ln->H * ln->H) * sizeof *ln->G1);
    if (ln->G2)
        memset(ln->G2, 0, (size_t)(ln->L * ln->d * ln->d) * sizeof *ln->G2);
    *loss = 0.0;
    const double sc = xf_e2e_pass_scale(&ln->ps, b);
    for (int64_t i = 0; i < b; i++)
        if (xf_e2e_pass_window(&ln->ps, &ln->m, perm[i], sc, true, loss, ln->G1, err) != 0)
            return -1;
    xf_e2e_grad_weights(&ln->m, &ln->ps.g, ln->G1, ln->G2);
    const double lr = 0.5 * q->lr * (1.0 + cos(M_PI * (double)s / (double)q->steps));
    if (xf_lrot_cayley_step(R1, ln->G1, ln->H, lr, 1.0, eta1, err) != 0)
        return -1;
    for (int64_t l = 0; ln->G2 && l < ln->L; l++)
        if (xf_lrot_cayley_step(R2 + l * ln->d * ln->d, ln->G2 + l * ln->d * ln->d, ln->d, lr,
                                1.0, NULL, err) != 0)
            return -1;
    if ((s + 1) % 10 == 0) {
        double e;
        if (xf_lrot_reorthogonalize(R1, ln->H, &e, err) != 0)
            return -1;
        for (int64_t l = 0; ln->G2 && l < ln->L; l++)
            if (xf_lrot_reorthogonalize(R2 + l * ln->d * ln->d, ln->d, &e, err) != 0)
                return -1;
    }
    return 0;
}

int xf_learned_e2e(const xf_model_weights *mw, const xf_r1_request *q,
                   const xf_online_transforms *online, double *R1, double *R2, json_t *record,
                   xf_error *err)
{
    if (!q->tokens || q->nsamples < 1)
        return xf_fail(err, "--rotate learned needs calibration text (--calib)");
    if (q->e2e_loss == XF_ROTATE_LOSS_KL_TOP)
        return xf_fail(err, "learned rotation: the kl-top loss is learned by the OstQuant "
                            "learner (quant/transform/ost_learn.c)");
    if (q->e2e_windows < 1 || q->e2e_batch < 1 || q->steps < 0)
        return xf_fail(err, "learned rotation: windows %lld and batch %lld must be >= 1",
                       (long long)q->e2e_windows, (long long)q->e2e_batch);
    const int64_t H = mw->cfg.hidden, d = mw->cfg.head_dim, L = mw->cfg.n_layers;
    if (xf_hadamard_dense(H, &q->seed, R1, err) != 0)
        return -1;
    for (int64_t l = 0; R2 && l < L; l++)
        if (xf_hadamard_dense(d, NULL, R2 + l * d * d, err) != 0)
            return -1;
    learner ln;
    int rc = learner_init(&ln, mw, q, online, R2 != NULL, err);
    double *start1 = malloc((size_t)(H * H) * sizeof *start1);
    double *start2 = R2 ? malloc((size_t)(L * d * d) * sizeof *start2) : NULL;
    int64_t *perm = malloc((size_t)(ln.nwin > 0 ? ln.nwin : 1) * sizeof *perm);
    if (rc == 0 && (!start1 || (R2 && !start2) || !perm))
        rc = xf_fail(err, "learned rotation: out of memory");
    if (rc == 0 && q->e2e_loss == XF_ROTATE_LOSS_KL)
        rc = reference_logits(&ln, err);
    double loss0 = 0, loss1 = 0;
    if (rc == 0)
        rc = full_loss(&ln, R1, R2, &loss0, err);
    if (rc == 0) {
        memcpy(start1, R1, (size_t)(H * H) * sizeof *R1);
        if (R2)
            memcpy(start2, R2, (size_t)(L * d * d) * sizeof *R2);
    }
    xf_progress bar;
    xf_progress_init(&bar, "learned rotation (e2e): step");
    int steps_run = 0;
    for (int s = 0; s < q->steps && rc == 0; s++) {
        double loss, eta;
        rc = step(&ln, R1, R2, s, perm, &loss, &eta, err);
        if (rc != 0)
            break;
        steps_run = s + 1;
        char extra[96];
        snprintf(extra, sizeof extra, " loss %.5g (start %.5g) eta %.3g", loss, loss0, eta);
        xf_progress_update(&bar, s + 1, (int)q->steps, 0, extra);
        if ((s + 1) % 10 == 0 || s + 1 == q->steps)
            xf_log_info("learned rotation (e2e %s): step %d/%lld, minibatch loss %.6g, eta %.4g",
                        xf_rotate_loss_name(q->e2e_loss), s + 1, (long long)q->steps, loss, eta);
    }
    xf_progress_finish(&bar);
    if (rc == 0)
        rc = full_loss(&ln, R1, R2, &loss1, err);
    if (rc == 0) {
        const bool kept = loss1 < loss0;
        if (!kept) {
            memcpy(R1, start1, (size_t)(H * H) * sizeof *R1);
            if (R2)
                memcpy(R2, start2, (size_t)(L * d * d) * sizeof *R2);
        }
        const double e1 = xf_lrot_orth_error(R1, H);
        xf_log_info("learned rotation (e2e %s): calibration loss %.6g -> %.6g over %d steps (%s)",
                    xf_rotate_loss_name(q->e2e_loss), loss0, loss1, steps_run,
                    kept ? "kept" : "not better: the Hadamard start is kept");
        json_object_set_new(
            record, "learned",
            json_pack("{s:s, s:s, s:s, s:f, s:f, s:i, s:f, s:I, s:I, s:b, s:b, s:f}",
                      "objective", "e2e", "loss", xf_rotate_loss_name(q->e2e_loss), "ste",
                      q->e2e_ste_scale ? "scale" : "identity", "loss_initial", loss0,
                      "loss_final", loss1, "steps", steps_run, "lr", q->lr, "windows",
                      (json_int_t)ln.nwin, "batch_windows",
                      (json_int_t)(q->e2e_batch < ln.nwin ? q->e2e_batch : ln.nwin), "r2",
                      R2 != NULL, "kept", kept, "orth_error", e1));
    }
    free(start1);
    free(start2);
    free(perm);
    learner_free(&ln);
    return rc;
}
