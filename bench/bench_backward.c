/* The backward pass (model/backward.h) and one step of the end-to-end
 * rotation learner (quant/transform/e2e_learn.c) against baselines
 * measured in the same run on the same model:
 *
 *   forward        the plain hooked forward of one window (xf_forward_layer),
 *                  W4A4KV4 hooks with the online down Hadamard
 *   tape_forward   the recording forward (xf_tape_forward), same hooks
 *   backward       loss gradient + xf_tape_backward of that window
 *   step           one learner step: xf_e2e_build (rotate + RTN every
 *                  linear), `batch` windows of tape forward + backward, the
 *                  R1 / R2 gradients, the Cayley steps
 *   ost_step       one OstQuant learner step (quant/transform/ost_learn.c):
 *                  xf_ost_build (rotate + scale + RTN), `batch` windows of
 *                  tape forward + KL-Top loss (k 32) + backward, the scale
 *                  and rotation gradients (xf_ost_grad), the Cayley steps
 *                  (the Adam update of the log-scales is O(parameters))
 *   gptq_solve     GPTQ's solve of every linear of the model once (the
 *                  Cholesky factor and the blocked sweep, W4 per channel,
 *                  Hessians from the tape's recorded inputs of one window);
 *                  the Hessian accumulation over the calibration set is not
 *                  included (it is the same for every rotation kind)
 *
 * Usage: bench_backward MODEL_DIR [--seqlen T] [--batch B] [--reps N] [--threads N]
 * Prints "name: seconds" lines and the ratios backward/forward,
 * step/gptq_solve and (steps x step)/gptq_solve for 100 steps. The machine
 * is shared: compare ratios, not seconds. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/threads.h"
#include "model/backward.h"
#include "model/loader.h"
#include "sim/act_hooks.h"
#include "sim/act_hooks_grad.h"
#include "quant/transform/e2e_rotation.h"
#include "quant/transform/ost.h"
#include "quant/transform/rotation_learning.h"
#include "quant/weights/gptq.h"
#include "quant/weights/hessian.h"
#include "quant/weights/qweight.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void die(const char *what, const xf_error *err)
{
    fprintf(stderr, "bench_backward: %s: %s\n", what, err ? err->msg : "failed");
    exit(1);
}

/* Hessian 2 X^T X of x [T, n] and a GPTQ solve of W [rows, n] (a copy). */
static void gptq_one(const float *x, int64_t T, const float *W, int64_t rows, int64_t n)
{
    xf_error err = {{0}};
    xf_hessian h;
    double *H = malloc((size_t)(n * n) * sizeof *H);
    float *Wc = malloc((size_t)(rows * n) * sizeof *Wc);
    if (!H || !Wc || xf_hessian_init(&h, n, &err) != 0 || xf_hessian_add(&h, x, T, &err) != 0 ||
        xf_hessian_finalize(&h, H, &err) != 0)
        die("hessian", &err);
    xf_hessian_free(&h);
    memcpy(Wc, W, (size_t)(rows * n) * sizeof *Wc);
    xf_gptq_params p;
    xf_gptq_params_default(&p);
    p.grid.sym = true;
    p.group = -1;
    xf_qweight q;
    if (xf_qweight_init(&q, rows, n, 4, n, false, false, "bench", &err) != 0 ||
        xf_gptq_solve(Wc, rows, n, H, &p, &q, NULL, "bench", &err) != 0)
        die("gptq", &err);
    xf_qweight_free(&q);
    free(H);
    free(Wc);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_backward MODEL_DIR [--seqlen T] [--batch B] [--reps N] "
                        "[--threads N]\n");
        return 2;
    }
    int64_t T = 256, batch = 4;
    int reps = 5, threads = 0;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--seqlen"))
            T = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--batch"))
            batch = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps"))
            reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads"))
            threads = atoi(argv[i + 1]);
    }
    if (threads > 0)
        xf_threads_set(threads);
    xf_error err = {{0}};
    xf_loaded_model lm;
    if (xf_model_open(&lm, argv[1], &err) != 0)
        die("open", &err);
    const xf_model_config *c = &lm.weights.cfg;
    if (T > c->max_pos && c->max_pos > 0)
        T = c->max_pos;
    xf_online_transforms on;
    xf_online_init(&on);
    if (xf_online_enable_down(&on, c, &err) != 0)
        die("online", &err);
    xf_e2e_model m;
    if (xf_e2e_model_init(&m, &lm.weights, &on.down_had, argv[1], &err) != 0)
        die("model", &err);
    const int64_t H = c->hidden, d = c->head_dim, L = c->n_layers, V = c->vocab;
    double *R1 = malloc((size_t)(H * H) * sizeof *R1), *R2 = malloc((size_t)(L * d * d) * sizeof *R2);
    double *G1 = calloc((size_t)(H * H), sizeof *G1), *G2 = calloc((size_t)(L * d * d), sizeof *G2);
    uint64_t seed = 0;
    if (xf_hadamard_dense(H, &seed, R1, &err) != 0)
        die("R1", &err);
    for (int64_t l = 0; l < L; l++)
        if (xf_hadamard_dense(d, NULL, R2 + l * d * d, &err) != 0)
            die("R2", &err);
    const xf_grid_config grid = {.bits = 4, .sym = true};
    xf_act_scheme s;
    xf_act_scheme_quarot(&s, 4, 4);
    xf_act_hooks ah;
    xf_backward_hooks bh;
    if (xf_act_hooks_init_online(&ah, &s, &on, NULL, &err) != 0)
        die("hooks", &err);
    xf_act_hooks_backward(&ah, true, &bh); /* the learner's default STE */
    xf_workspace ws;
    xf_tape tp;
    xf_grads g;
    if (xf_workspace_init(&ws, c, T, "bench", &err) != 0 || xf_tape_init(&tp, c, T, false, &err) != 0 ||
        xf_grads_init(&g, m.eff, (int)L, &m.eff_head, &err) != 0)
        die("buffers", &err);
    int32_t *tok = malloc((size_t)T * sizeof *tok);
    for (int64_t t = 0; t < T; t++)
        tok[t] = (int32_t)((t * 7919 + 13) % V);
    float *h0 = malloc((size_t)(T * H) * sizeof *h0), *h = malloc((size_t)(T * H) * sizeof *h);
    float *dh0 = malloc((size_t)(T * H) * sizeof *dh0);
    float *lg = malloc((size_t)(T * V) * sizeof *lg), *dl = malloc((size_t)(T * V) * sizeof *dl);
    if (xf_e2e_build(&m, R1, R2, &grid, 0, &err) != 0 || xf_e2e_embed(&m, tok, T, h0, &err) != 0)
        die("build", &err);
    double t_fwd = 1e30, t_tape = 1e30, t_bwd = 1e30, t_step = 1e30, t_gptq = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        memcpy(h, h0, (size_t)(T * H) * sizeof *h);
        for (int64_t l = 0; l < L; l++)
            if (xf_forward_layer(&ws, &m.eff[l], h, T, &ah.hooks, &err) != 0)
                die("forward", &err);
        if (xf_forward_final(&ws, &m.eff_head, h, T, lg, &err) != 0)
            die("final", &err);
        double t1 = now();
        if (xf_tape_forward(&tp, &ws, m.eff, &m.eff_head, h0, T, &ah.hooks, lg, &err) != 0)
            die("tape", &err);
        double t2 = now(), loss = 0;
        xf_loss_next_token_ce(lg, tok, T, V, 1.0 / (double)(T - 1), &loss, dl);
        if (xf_tape_backward(&tp, m.eff, &m.eff_head, dl, &bh, &g, dh0, &err) != 0)
            die("backward", &err);
        double t3 = now();
        t_fwd = fmin(t_fwd, t1 - t0);
        t_tape = fmin(t_tape, t2 - t1);
        t_bwd = fmin(t_bwd, t3 - t2);
    }
    for (int r = 0; r < (reps < 3 ? reps : 3); r++) {
        double t0 = now(), loss = 0;
        if (xf_e2e_build(&m, R1, R2, &grid, 0, &err) != 0)
            die("build", &err);
        xf_grads_zero(&g);
        for (int64_t b = 0; b < batch; b++) {
            if (xf_e2e_embed(&m, tok, T, h0, &err) != 0 ||
                xf_tape_forward(&tp, &ws, m.eff, &m.eff_head, h0, T, &ah.hooks, lg, &err) != 0)
                die("tape", &err);
            xf_loss_next_token_ce(lg, tok, T, V, 1.0 / (double)(batch * (T - 1)), &loss, dl);
            if (xf_tape_backward(&tp, m.eff, &m.eff_head, dl, &bh, &g, dh0, &err) != 0)
                die("backward", &err);
            xf_e2e_grad_embed(&m, tok, T, dh0, G1);
        }
        xf_e2e_grad_weights(&m, &g, G1, G2);
        /* the step itself on copies: the bench keeps R fixed */
        double *R1c = malloc((size_t)(H * H) * sizeof *R1c);
        memcpy(R1c, R1, (size_t)(H * H) * sizeof *R1c);
        if (xf_lrot_cayley_step(R1c, G1, H, 0.1, 1.0, NULL, &err) != 0)
            die("cayley", &err);
        for (int64_t l = 0; l < L; l++) {
            double R2c[64 * 64];
            if (d > 64)
                break;
            memcpy(R2c, R2 + l * d * d, (size_t)(d * d) * sizeof *R2c);
            if (xf_lrot_cayley_step(R2c, G2 + l * d * d, d, 0.1, 1.0, NULL, &err) != 0)
                die("cayley", &err);
        }
        free(R1c);
        t_step = fmin(t_step, now() - t0);
    }
    /* the OstQuant step: its own parametrization of the same model */
    double t_ost = 1e30;
    {
        xf_ost_model om;
        xf_ost_params p, gp;
        xf_grads og;
        const int64_t K = V < 32 ? V : 32;
        int32_t *top = malloc((size_t)(T * K) * sizeof *top);
        float *top_lp = malloc((size_t)(T * K) * sizeof *top_lp);
        if (xf_ost_model_init(&om, &lm.weights, &on.down_had, argv[1], &err) != 0 ||
            xf_ost_params_init(&p, c, true, &err) != 0 ||
            xf_ost_params_init(&gp, c, true, &err) != 0 || !top || !top_lp)
            die("ost", &err);
        memcpy(p.R1, R1, (size_t)(H * H) * sizeof *R1);
        memcpy(p.R2, R2, (size_t)(L * d * d) * sizeof *R2);
        if (xf_ost_build(&om, &p, NULL, 0, &err) != 0 ||
            xf_grads_init(&og, om.m.eff, (int)L, &om.m.eff_head, &err) != 0 ||
            xf_e2e_embed(&om.m, tok, T, h0, &err) != 0 ||
            xf_tape_forward(&tp, &ws, om.m.eff, &om.m.eff_head, h0, T, &ah.hooks, lg, &err) != 0)
            die("ost reference", &err);
        xf_kl_top_reference(lg, T, V, K, top, top_lp);
        for (int r = 0; r < (reps < 3 ? reps : 3); r++) {
            double t0 = now(), loss = 0;
            if (xf_ost_build(&om, &p, &grid, 0, &err) != 0)
                die("ost build", &err);
            xf_grads_zero(&og);
            xf_ost_params_zero(&gp);
            for (int64_t b = 0; b < batch; b++) {
                if (xf_e2e_embed(&om.m, tok, T, h0, &err) != 0 ||
                    xf_tape_forward(&tp, &ws, om.m.eff, &om.m.eff_head, h0, T, &ah.hooks, lg,
                                    &err) != 0)
                    die("ost tape", &err);
                xf_loss_kl_top(lg, top, top_lp, T, V, K, 1.0 / (double)(batch * T), &loss, dl);
                if (xf_tape_backward(&tp, om.m.eff, &om.m.eff_head, dl, &bh, &og, dh0, &err) != 0)
                    die("ost backward", &err);
                xf_e2e_grad_embed(&om.m, tok, T, dh0, gp.R1);
            }
            xf_ost_grad(&om, &og, &gp, &err);
            double *R1c = malloc((size_t)(H * H) * sizeof *R1c);
            memcpy(R1c, p.R1, (size_t)(H * H) * sizeof *R1c);
            if (xf_lrot_cayley_step(R1c, gp.R1, H, 0.1, 1.0, NULL, &err) != 0)
                die("cayley", &err);
            for (int64_t l = 0; l < L && d <= 64; l++) {
                double R2c[64 * 64];
                memcpy(R2c, p.R2 + l * d * d, (size_t)(d * d) * sizeof *R2c);
                if (xf_lrot_cayley_step(R2c, gp.R2 + l * d * d, d, 0.1, 1.0, NULL, &err) != 0)
                    die("cayley", &err);
            }
            free(R1c);
            t_ost = fmin(t_ost, now() - t0);
        }
        free(top);
        free(top_lp);
        xf_grads_free(&og);
        xf_ost_params_free(&p);
        xf_ost_params_free(&gp);
        xf_ost_model_free(&om);
        if (xf_e2e_build(&m, R1, R2, &grid, 0, &err) != 0 || xf_e2e_embed(&m, tok, T, h0, &err) != 0)
            die("build", &err);
    }
    /* GPTQ's solve of every linear, Hessians from the recorded window */
    if (xf_tape_forward(&tp, &ws, m.eff, &m.eff_head, h0, T, &ah.hooks, lg, &err) != 0)
        die("tape", &err);
    for (int r = 0; r < (reps < 2 ? reps : 2); r++) {
        double t0 = now();
        for (int64_t l = 0; l < L; l++) {
            const xf_tape_layer *y = &tp.layers[l];
            const xf_dense_layer *e = &m.eff[l];
            for (int k = 0; k < XF_LIN_COUNT; k++) {
                const float *x = k <= XF_LIN_V ? y->xq : k == XF_LIN_O ? y->ao
                                 : k == XF_LIN_DOWN ? y->ad : y->xm;
                gptq_one(x, T, e->w[k], e->out[k], e->in[k]);
            }
        }
        t_gptq = fmin(t_gptq, now() - t0);
    }
    printf("model: %s (hidden %lld, layers %lld, vocab %lld), seqlen %lld, batch %lld, threads %d\n",
           argv[1], (long long)H, (long long)L, (long long)V, (long long)T, (long long)batch,
           xf_threads_get());
    printf("forward: %.6f\ntape_forward: %.6f\nbackward: %.6f\nstep: %.6f\nost_step: %.6f\n"
           "gptq_solve: %.6f\n",
           t_fwd, t_tape, t_bwd, t_step, t_ost, t_gptq);
    printf("ost_step/step: %.3f\nost_step/gptq_solve: %.3f\n", t_ost / t_step, t_ost / t_gptq);
    printf("tape_forward/forward: %.3f\nbackward/forward: %.3f\nstep/gptq_solve: %.3f\n"
           "100_steps/gptq_solve: %.2f\n",
           t_tape / t_fwd, t_bwd / t_fwd, t_step / t_gptq, 100.0 * t_step / t_gptq);
    free(R1), free(R2), free(G1), free(G2), free(tok), free(h0), free(h), free(dh0), free(lg),
        free(dl);
    xf_grads_free(&g);
    xf_tape_free(&tp);
    xf_workspace_free(&ws);
    xf_act_hooks_free(&ah);
    xf_e2e_model_free(&m);
    xf_online_free(&on);
    xf_model_close(&lm);
    return 0;
}
