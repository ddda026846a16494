/* OstQuant (quant/transform/ost.h, ost_weights.c, ost_apply.c,
 * ost_learn.c; model/loss_kl_top.c): the KL-Top loss's gradient against
 * central differences; the scales' (and rotations') gradients against
 * central differences of the fp64 reference forward (tests/support/
 * ref_llama.h) with the effective weights written out here in fp64 from
 * the placement rules; the fused transform exact in full precision (and
 * equal to the learner's effective weights); the learner lowering the
 * calibration loss; the pipeline's refusal outside --rotate learned. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "model/backward.h"
#include "model/loader.h"
#include "model/forward.h"
#include "sim/act_hooks.h"
#include "sim/act_hooks_grad.h"
#include "quant/transform/ost.h"
#include "quant/transform/rotate.h"
#include "quant/transform/rotation_learning.h"
#include "tests/support/cli_run.h"
#include "tests/support/random_model.h"
#include "tests/support/ref_llama.h"
#include "tests/support/test_util.h"

#define T_WIN 7
#define W_SCALE 8.0f

static char *g_tmp;

static int setup(void **state)
{
    (void)state;
    return xf_test_tmpdir_setup(&g_tmp);
}

static int teardown(void **state)
{
    (void)state;
    return xf_test_tmpdir_teardown(&g_tmp);
}

static void open_model(xf_loaded_model *m, const char *name, uint64_t seed)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", g_tmp, name);
    xf_random_model_spec s = {.family = "llama", .hidden = 16, .intermediate = 32, .layers = 2,
                              .heads = 4, .kv_heads = 2, .vocab = 40, .max_pos = 64,
                              .seed = seed};
    char *d = xf_random_model_write(dir, &s);
    assert_non_null(d);
    free(d);
    xf_error err = {{0}};
    if (xf_model_open(m, dir, &err) != 0)
        fail_msg("open: %s", err.msg);
}

/* KL-Top: the k largest reference logits chosen, and dL/dlogits against
 * central differences of the loss. */
static void test_kl_top_gradient(void **state)
{
    (void)state;
    enum { T = 3, V = 12, K = 5 };
    uint64_t rng = 7;
    float z[T * V], ref[T * V], dz[T * V], lp[T * K];
    int32_t idx[T * K];
    for (int i = 0; i < T * V; i++) {
        z[i] = (float)(2.0 * xf_test_rand_normal(&rng));
        ref[i] = (float)(2.0 * xf_test_rand_normal(&rng));
    }
    xf_kl_top_reference(ref, T, V, K, idx, lp);
    for (int t = 0; t < T; t++) {
        /* every chosen logit >= every other one; log-probs normalised */
        double s = 0;
        for (int i = 0; i < K; i++) {
            s += exp(lp[t * K + i]);
            for (int v = 0; v < V; v++) {
                bool chosen = false;
                for (int j = 0; j < K; j++)
                    chosen |= idx[t * K + j] == v;
                if (!chosen)
                    assert_true(ref[t * V + idx[t * K + i]] >= ref[t * V + v]);
            }
        }
        assert_true(fabs(s - 1.0) < 1e-5);
    }
    double loss = 0;
    xf_loss_kl_top(z, idx, lp, T, V, K, 0.5, &loss, dz);
    assert_true(loss > 0);
    float dummy[T * V];
    for (int i = 0; i < T * V; i++) {
        const float keep = z[i], eps = 1e-2f;
        double lpl = 0, lmi = 0;
        z[i] = keep + eps;
        xf_loss_kl_top(z, idx, lp, T, V, K, 0.5, &lpl, dummy);
        z[i] = keep - eps;
        xf_loss_kl_top(z, idx, lp, T, V, K, 0.5, &lmi, dummy);
        z[i] = keep;
        const double fd = (lpl - lmi) / (2.0 * (double)eps);
        if (fabs(fd - dz[i]) > 1e-4 + 1e-3 * fabs(fd))
            fail_msg("logit %d: analytic %.6g vs differences %.6g", i, (double)dz[i], fd);
    }
    /* equal to the full KL when k is the vocabulary */
    int32_t idx_all[T * V];
    float lp_all[T * V], d1[T * V], d2[T * V];
    xf_kl_top_reference(ref, T, V, V, idx_all, lp_all);
    double a = 0, b = 0;
    xf_loss_kl_top(z, idx_all, lp_all, T, V, V, 1.0, &a, d1);
    xf_loss_kl(z, ref, T, V, 1.0, &b, d2);
    assert_true(fabs(a - b) < 1e-5 * fabs(b));
}

typedef struct base64 {
    double *w[2][XF_LIN_COUNT], *an[2], *mn[2], *head, *embed, *had;
} base64;

/* The effective weights in fp64 from the placement rules of ost.h: the
 * rotations and the "first side" of each scale pair (readers' columns, v
 * rows, up rows) from p, the "second side" (norm weights, o columns, down
 * columns) from a. With a = p the transform is exact in full precision,
 * so the loss does not depend on the scales: each side's partial
 * derivative is what can be checked. */
static void effective(const xf_model_config *c, const base64 *b, const xf_ost_params *p,
                      const xf_ost_params *a, xf_ref_llama *r)
{
    const int64_t H = c->hidden, d = c->head_dim, I = c->intermediate, nh = c->n_heads,
                  nkv = c->n_kv_heads, qd = nh * d, kvd = nkv * d, rep = nh / nkv;
    const double *R1 = p->R1;
    for (int l = 0; l < c->n_layers; l++) {
        const double *R2 = p->R2 + l * d * d;
        const double *la = p->la + l * H, *lm = p->lm + l * H, *lv = p->lv + l * kvd,
                     *lu = p->lu + l * I, *lv2 = a->lv + l * kvd, *lu2 = a->lu + l * I;
        for (int64_t j = 0; j < H; j++) {
            r->an[l][j] = b->an[l][j] * exp(a->la[l * H + j]);
            r->mn[l][j] = b->mn[l][j] * exp(a->lm[l * H + j]);
        }
        const xf_linear_role readers[] = {XF_LIN_Q, XF_LIN_K, XF_LIN_GATE, XF_LIN_UP};
        const int64_t outs[] = {qd, kvd, I, I};
        for (int k = 0; k < 4; k++) {
            double *w = r->w[l][readers[k]];
            xf_ref_mm64(b->w[l][readers[k]], H, false, R1, H, false, w, H, outs[k], H, H);
            const double *ls = k < 2 ? la : lm;
            for (int64_t i = 0; i < outs[k]; i++)
                for (int64_t j = 0; j < H; j++)
                    w[i * H + j] *= exp(-ls[j]) * (readers[k] == XF_LIN_UP ? exp(lu[i]) : 1.0);
        }
        double *t = malloc((size_t)(H * (qd > I ? qd : I)) * sizeof *t);
        assert_non_null(t);
        xf_ref_mm64(b->w[l][XF_LIN_V], H, false, R1, H, false, t, H, kvd, H, H);
        for (int64_t h = 0; h < nkv; h++)
            xf_ref_mm64(R2, d, true, t + h * d * H, H, false, r->w[l][XF_LIN_V] + h * d * H, H, d, H, d);
        for (int64_t i = 0; i < kvd; i++)
            for (int64_t j = 0; j < H; j++)
                r->w[l][XF_LIN_V][i * H + j] *= exp(lv[i] - la[j]);
        xf_ref_mm64(R1, H, true, b->w[l][XF_LIN_O], qd, false, t, qd, H, qd, H);
        for (int64_t h = 0; h < nh; h++)
            xf_ref_mm64(t + h * d, qd, false, R2, d, false, r->w[l][XF_LIN_O] + h * d, qd, H, d, d);
        for (int64_t i = 0; i < H; i++)
            for (int64_t cc = 0; cc < qd; cc++)
                r->w[l][XF_LIN_O][i * qd + cc] *= exp(-lv2[(cc / d / rep) * d + cc % d]);
        xf_ref_mm64(R1, H, true, b->w[l][XF_LIN_DOWN], I, false, t, I, H, I, H);
        for (int64_t i = 0; i < H; i++)
            for (int64_t j = 0; j < I; j++)
                t[i * I + j] *= exp(-lu2[j]);
        xf_ref_mm64(t, I, false, b->had, I, false, r->w[l][XF_LIN_DOWN], I, H, I, I);
        free(t);
    }
    xf_ref_mm64(b->head, H, false, R1, H, false, r->head, H, c->vocab, H, H);
    xf_ref_mm64(b->embed, H, false, R1, H, false, r->embed, H, c->vocab, H, H);
}

static void copy_grads(xf_grads *dst, const xf_grads *src)
{
    const int64_t H = src->hidden;
    for (int l = 0; l < src->n_layers; l++) {
        const xf_layer_grads *a = &src->layers[l];
        xf_layer_grads *b = &dst->layers[l];
        for (int r = 0; r < XF_LIN_COUNT; r++)
            if (a->w[r])
                memcpy(b->w[r], a->w[r], (size_t)(a->out[r] * a->in[r]) * sizeof(float));
        memcpy(b->attn_norm_w, a->attn_norm_w, (size_t)H * sizeof(float));
        memcpy(b->mlp_norm_w, a->mlp_norm_w, (size_t)H * sizeof(float));
    }
    memcpy(dst->head_w, src->head_w, (size_t)(src->vocab * H) * sizeof(float));
    memcpy(dst->norm_w, src->norm_w, (size_t)H * sizeof(float));
}

static double dot(const double *a, const double *b, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* dL/d(log-scales) (and R1 / R2 with them) against central differences
 * along random directions, one parameter group at a time. */
static void test_scale_gradients(void **state)
{
    (void)state;
    xf_loaded_model lm;
    open_model(&lm, "grad", 9);
    xf_error err = {{0}};
    xf_online_transforms on;
    xf_online_init(&on);
    assert_int_equal(xf_online_enable_down(&on, &lm.weights.cfg, &err), 0);
    xf_ost_model om;
    if (xf_ost_model_init(&om, &lm.weights, &on.down_had, "test", &err) != 0)
        fail_msg("init: %s", err.msg);
    xf_e2e_model *m = &om.m;
    const xf_model_config *c = &m->cfg;
    const int64_t H = c->hidden, d = c->head_dim, L = c->n_layers, V = c->vocab,
                  I = c->intermediate, kvd = c->n_kv_heads * d;
    for (int l = 0; l < L; l++)
        for (int r = 0; r < XF_LIN_COUNT; r++)
            for (int64_t i = 0; i < m->base[l].out[r] * m->base[l].in[r]; i++)
                m->base[l].w[r][i] *= W_SCALE;
    for (int64_t i = 0; i < V * H; i++)
        m->head.w[i] *= W_SCALE;
    xf_ost_params p;
    assert_int_equal(xf_ost_params_init(&p, c, true, &err), 0);
    uint64_t rng = 21, seed = 4;
    assert_int_equal(xf_hadamard_dense(H, &seed, p.R1, &err), 0);
    for (int64_t i = 0; i < H * H; i++)
        p.R1[i] += 0.1 * xf_test_rand_normal(&rng);
    for (int64_t i = 0; i < L * d * d; i++)
        p.R2[i] += 0.1 * xf_test_rand_normal(&rng);
    for (int64_t i = 0; i < L * H; i++) {
        p.la[i] = 0.3 * xf_test_rand_normal(&rng);
        p.lm[i] = 0.3 * xf_test_rand_normal(&rng);
    }
    for (int64_t i = 0; i < L * kvd; i++)
        p.lv[i] = 0.3 * xf_test_rand_normal(&rng);
    for (int64_t i = 0; i < L * I; i++)
        p.lu[i] = 0.3 * xf_test_rand_normal(&rng);
    int32_t *tok = xf_test_random_tokens(T_WIN, V, 5);
    xf_act_scheme off;
    xf_act_scheme_default(&off);
    xf_act_hooks ah;
    assert_int_equal(xf_act_hooks_init_online(&ah, &off, &on, NULL, &err), 0);
    xf_backward_hooks bh;
    xf_act_hooks_backward(&ah, false, &bh);
    xf_workspace ws;
    xf_tape tp;
    xf_grads g;
    assert_int_equal(xf_workspace_init(&ws, c, T_WIN, "test", &err), 0);
    assert_int_equal(xf_tape_init(&tp, c, T_WIN, false, &err), 0);
    assert_int_equal(xf_grads_init(&g, m->eff, (int)L, &m->eff_head, &err), 0);
    if (xf_ost_build(&om, &p, NULL, 0, &err) != 0)
        fail_msg("build: %s", err.msg);
    float *h0 = malloc((size_t)(T_WIN * H) * sizeof *h0), *dh0 = malloc((size_t)(T_WIN * H) * sizeof *dh0);
    float *lg = malloc((size_t)(T_WIN * V) * sizeof *lg), *dl = malloc((size_t)(T_WIN * V) * sizeof *dl);
    assert_int_equal(xf_e2e_embed(m, tok, T_WIN, h0, &err), 0);
    assert_int_equal(xf_tape_forward(&tp, &ws, m->eff, &m->eff_head, h0, T_WIN, &ah.hooks, lg, &err), 0);
    double loss = 0;
    xf_loss_next_token_ce(lg, tok, T_WIN, V, 1.0, &loss, dl);
    assert_int_equal(xf_tape_backward(&tp, m->eff, &m->eff_head, dl, &bh, &g, dh0, &err), 0);
    /* three gradients from copies of g: all of it; the first sides only
     * (norm weights', o's and down's gradients zeroed); the second sides
     * only (the readers' q, k, v, gate, up zeroed) */
    xf_ost_params gs[3];
    for (int v = 0; v < 3; v++) {
        xf_grads gc;
        assert_int_equal(xf_grads_init(&gc, m->eff, (int)L, &m->eff_head, &err), 0);
        copy_grads(&gc, &g);
        for (int l = 0; l < L; l++) {
            xf_layer_grads *x = &gc.layers[l];
            if (v == 1) {
                memset(x->attn_norm_w, 0, (size_t)H * sizeof(float));
                memset(x->mlp_norm_w, 0, (size_t)H * sizeof(float));
                memset(x->w[XF_LIN_O], 0, (size_t)(x->out[XF_LIN_O] * x->in[XF_LIN_O]) * sizeof(float));
                memset(x->w[XF_LIN_DOWN], 0, (size_t)(x->out[XF_LIN_DOWN] * x->in[XF_LIN_DOWN]) * sizeof(float));
            }
            if (v == 2) {
                const xf_linear_role rd[] = {XF_LIN_Q, XF_LIN_K, XF_LIN_V, XF_LIN_GATE, XF_LIN_UP};
                for (int k = 0; k < 5; k++)
                    memset(x->w[rd[k]], 0, (size_t)(x->out[rd[k]] * x->in[rd[k]]) * sizeof(float));
            }
        }
        assert_int_equal(xf_ost_params_init(&gs[v], c, true, &err), 0);
        xf_ost_params_zero(&gs[v]);
        if (v == 0)
            xf_e2e_grad_embed(m, tok, T_WIN, dh0, gs[v].R1);
        err.msg[0] = '\0';
        xf_ost_grad(&om, &gc, &gs[v], &err);
        assert_string_equal(err.msg, "");
        xf_grads_free(&gc);
    }
    base64 b;
    xf_ref_llama r;
    memset(&r, 0, sizeof r);
    r.c = c;
    for (int l = 0; l < L; l++) {
        for (int k = 0; k < XF_LIN_COUNT; k++) {
            const int64_t n = m->base[l].out[k] * m->base[l].in[k];
            b.w[l][k] = xf_ref_to64(m->base[l].w[k], n);
            r.w[l][k] = malloc((size_t)n * sizeof(double));
        }
        b.an[l] = xf_ref_to64(m->base[l].attn_norm_w, H);
        b.mn[l] = xf_ref_to64(m->base[l].mlp_norm_w, H);
        r.an[l] = malloc((size_t)H * sizeof(double));
        r.mn[l] = malloc((size_t)H * sizeof(double));
    }
    b.head = xf_ref_to64(m->head.w, V * H);
    b.embed = xf_ref_to64(m->embed, V * H);
    r.head = malloc((size_t)(V * H) * sizeof(double));
    r.embed = malloc((size_t)(V * H) * sizeof(double));
    r.norm = xf_ref_to64(m->head.norm_w, H);
    r.had = malloc((size_t)(I * I) * sizeof(double));
    b.had = malloc((size_t)(I * I) * sizeof(double));
    xf_hadamard_dense_of(&on.down_had, r.had);
    memcpy(b.had, r.had, (size_t)(I * I) * sizeof(double));
    effective(c, &b, &p, &p, &r);
    assert_true(fabs(xf_ref_llama_loss(&r, tok, T_WIN) - loss) <= 1e-4 * fabs(loss));
    /* groups: 0 R1 + R2 (whole gradient), then la, lm, lv, lu on the first
     * side (p moves, a fixed) and on the second (a moves) */
    const int64_t len[6] = {H * H, L * d * d, L * H, L * H, L * kvd, L * I};
    const char *names[5] = {"R1/R2", "attn-norm scales", "mlp-norm scales", "v/o scales",
                            "up/down scales"};
    xf_ost_params P, A;
    assert_int_equal(xf_ost_params_init(&P, c, true, &err), 0);
    assert_int_equal(xf_ost_params_init(&A, c, true, &err), 0);
    for (int grp = 0; grp < 5; grp++) {
        for (int side = 1; side <= (grp == 0 ? 1 : 2); side++) {
            for (int rep = 0; rep < 2; rep++) {
                double *D[6];
                for (int a = 0; a < 6; a++) {
                    D[a] = calloc((size_t)len[a], sizeof(double));
                    const bool on_grp = grp == 0 ? a < 2 : a == grp + 1;
                    for (int64_t i = 0; on_grp && i < len[a]; i++)
                        D[a][i] = xf_test_rand_normal(&rng);
                }
                const double eps = 1e-5;
                double lpm[2];
                for (int sgn = 0; sgn < 2; sgn++) {
                    double *pa[6] = {P.R1, P.R2, P.la, P.lm, P.lv, P.lu};
                    double *aa[6] = {A.R1, A.R2, A.la, A.lm, A.lv, A.lu};
                    const double *src[6] = {p.R1, p.R2, p.la, p.lm, p.lv, p.lu};
                    const double e = sgn == 0 ? eps : -eps;
                    for (int a = 0; a < 6; a++)
                        for (int64_t i = 0; i < len[a]; i++) {
                            pa[a][i] = src[a][i] + (side == 1 ? e * D[a][i] : 0.0);
                            aa[a][i] = src[a][i] + (side == 2 ? e * D[a][i] : 0.0);
                        }
                    effective(c, &b, &P, &A, &r);
                    lpm[sgn] = xf_ref_llama_loss(&r, tok, T_WIN);
                }
                const double fd = (lpm[0] - lpm[1]) / (2 * eps);
                const xf_ost_params *gv = grp == 0 ? &gs[0] : &gs[side];
                const double *ga[6] = {gv->R1, gv->R2, gv->la, gv->lm, gv->lv, gv->lu};
                const double *gf[6] = {gs[0].R1, gs[0].R2, gs[0].la, gs[0].lm, gs[0].lv, gs[0].lu};
                double an = 0, full = 0;
                for (int a = 0; a < 6; a++) {
                    an += dot(ga[a], D[a], len[a]);
                    full += dot(gf[a], D[a], len[a]);
                }
                for (int a = 0; a < 6; a++)
                    free(D[a]);
                if (!(fabs(fd) > 1e-4) || fabs(an - fd) > 2e-3 * fabs(fd))
                    fail_msg("%s side %d direction %d: analytic %.6g vs differences %.6g",
                             names[grp], side, rep, an, fd);
                /* both sides together: exact in full precision, no gradient */
                if (grp > 0 && fabs(full) > 1e-3 * fabs(an))
                    fail_msg("%s: whole gradient %.3g along a direction whose one side has "
                             "%.3g", names[grp], full, an);
            }
        }
    }
    for (int l = 0; l < L; l++) {
        for (int k = 0; k < XF_LIN_COUNT; k++) {
            free(b.w[l][k]);
            free(r.w[l][k]);
        }
        free(b.an[l]), free(b.mn[l]), free(r.an[l]), free(r.mn[l]);
    }
    free(b.head), free(b.embed), free(b.had), free(r.head), free(r.embed), free(r.norm);
    free(r.had), free(h0), free(dh0), free(lg), free(dl), free(tok);
    xf_ost_params_free(&P);
    xf_ost_params_free(&A);
    xf_ost_params_free(&p);
    for (int v = 0; v < 3; v++)
        xf_ost_params_free(&gs[v]);
    xf_grads_free(&g);
    xf_tape_free(&tp);
    xf_workspace_free(&ws);
    xf_act_hooks_free(&ah);
    xf_ost_model_free(&om);
    xf_online_free(&on);
    xf_model_close(&lm);
}

/* logits [T, vocab] of mw with the online transforms o (no quantizer) */
static float *logits_with(const xf_model_weights *mw, const xf_online_transforms *o,
                          const int32_t *tok, int64_t T)
{
    xf_error err = {{0}};
    xf_act_scheme off;
    xf_act_scheme_default(&off);
    xf_act_hooks ah;
    assert_int_equal(xf_act_hooks_init_online(&ah, &off, o, NULL, &err), 0);
    xf_runner r;
    assert_int_equal(xf_runner_init(&r, mw, T, 0, &err), 0);
    float *lg = malloc((size_t)(T * mw->cfg.vocab) * sizeof *lg);
    assert_non_null(lg);
    if (xf_runner_forward_hooked(&r, tok, T, xf_act_hooks_active(&ah) ? &ah.hooks : NULL, lg,
                                 &err) != 0)
        fail_msg("forward: %s", err.msg);
    xf_runner_free(&r);
    xf_act_hooks_free(&ah);
    return lg;
}

static double rel_diff(const float *a, const float *b, int64_t n)
{
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    return sqrt(num / den);
}

/* Rotations and random scales fused into a folded model: the same logits
 * (fp32 rounding) as before, and as the learner's effective weights of
 * the same parameters; a large scale changes the weights (not a no-op). */
static void test_fused_transform_exact(void **state)
{
    (void)state;
    xf_loaded_model lm;
    open_model(&lm, "exact", 3);
    xf_error err = {{0}};
    xf_model_edit e;
    assert_int_equal(xf_model_edit_init(&e, &lm, &err), 0);
    if (xf_rotate_fold_norms(&e, NULL, &err) != 0 || xf_model_edit_commit(&e, &err) != 0)
        fail_msg("fold: %s", err.msg);
    const xf_model_config *c = &lm.weights.cfg;
    const int64_t T = 12, H = c->hidden, d = c->head_dim, L = c->n_layers,
                  kvd = c->n_kv_heads * d, I = c->intermediate;
    int32_t *tok = xf_test_random_tokens(T, c->vocab, 4);
    float *l0 = logits_with(&lm.weights, NULL, tok, T);
    xf_ost_params p;
    assert_int_equal(xf_ost_params_init(&p, c, true, &err), 0);
    uint64_t rng = 5, seed = 11;
    assert_int_equal(xf_hadamard_dense(H, &seed, p.R1, &err), 0);
    for (int64_t l = 0; l < L; l++) {
        uint64_t s2 = 100 + (uint64_t)l;
        assert_int_equal(xf_hadamard_dense(d, &s2, p.R2 + l * d * d, &err), 0);
    }
    for (int64_t i = 0; i < L * H; i++) {
        p.la[i] = 0.7 * xf_test_rand_normal(&rng);
        p.lm[i] = 0.7 * xf_test_rand_normal(&rng);
    }
    for (int64_t i = 0; i < L * kvd; i++)
        p.lv[i] = 0.7 * xf_test_rand_normal(&rng);
    for (int64_t i = 0; i < L * I; i++)
        p.lu[i] = 0.7 * xf_test_rand_normal(&rng);
    /* the learner's view of the same parameters, on the folded model */
    xf_online_transforms on;
    xf_online_init(&on);
    assert_int_equal(xf_online_enable_down(&on, c, &err), 0);
    xf_ost_model om;
    assert_int_equal(xf_ost_model_init(&om, &lm.weights, &on.down_had, "test", &err), 0);
    assert_int_equal(xf_ost_build(&om, &p, NULL, 0, &err), 0);
    xf_workspace ws;
    xf_tape tp;
    assert_int_equal(xf_workspace_init(&ws, c, T, "test", &err), 0);
    assert_int_equal(xf_tape_init(&tp, c, T, false, &err), 0);
    xf_act_scheme off;
    xf_act_scheme_default(&off);
    xf_act_hooks ah;
    assert_int_equal(xf_act_hooks_init_online(&ah, &off, &on, NULL, &err), 0);
    float *h0 = malloc((size_t)(T * H) * sizeof *h0);
    float *l2 = malloc((size_t)(T * c->vocab) * sizeof *l2);
    assert_int_equal(xf_e2e_embed(&om.m, tok, T, h0, &err), 0);
    assert_int_equal(xf_tape_forward(&tp, &ws, om.m.eff, &om.m.eff_head, h0, T, &ah.hooks, l2,
                                     &err), 0);
    float *v_before = malloc((size_t)(kvd * H) * sizeof *v_before);
    assert_int_equal(xf_tensor_to_f32(lm.weights.layers[0].lin[XF_LIN_V].w, v_before, &err), 0);
    /* fused as the pipeline does */
    const double *R2l[2] = {p.R2, p.R2 + d * d};
    xf_online_transforms on2;
    xf_online_init(&on2);
    if (xf_ost_fuse_mlp_scales(&e, p.lu, &err) != 0 ||
        xf_rotate_apply(&e, p.R1, false, &on2, &err) != 0 ||
        xf_rotate_headwise(&e, R2l, &err) != 0 ||
        xf_ost_fuse_stream_scales(&e, p.la, p.lm, p.lv, &err) != 0)
        fail_msg("fuse: %s", err.msg);
    float *l1 = logits_with(&lm.weights, &on2, tok, T);
    const int64_t n = T * c->vocab;
    const double e01 = rel_diff(l1, l0, n), e21 = rel_diff(l2, l1, n);
    if (!(e01 < 1e-5) || !(e21 < 1e-5))
        fail_msg("fused vs original %.3g, learner vs fused %.3g", e01, e21);
    float *v_after = malloc((size_t)(kvd * H) * sizeof *v_after);
    assert_int_equal(xf_tensor_to_f32(lm.weights.layers[0].lin[XF_LIN_V].w, v_after, &err), 0);
    assert_true(rel_diff(v_after, v_before, kvd * H) > 0.1);
    free(v_before), free(v_after), free(h0), free(l0), free(l1), free(l2), free(tok);
    xf_act_hooks_free(&ah);
    xf_tape_free(&tp);
    xf_workspace_free(&ws);
    xf_ost_model_free(&om);
    xf_ost_params_free(&p);
    xf_online_free(&on);
    xf_online_free(&on2);
    xf_model_edit_free(&e);
    xf_model_close(&lm);
}

/* The learner on a tiny model under W4A4KV4 with KL-Top: the calibration
 * loss drops, the scales moved, the rotations stay orthogonal. */
static void test_learner_lowers_loss(void **state)
{
    (void)state;
    xf_loaded_model lm;
    open_model(&lm, "learn", 9);
    xf_error err = {{0}};
    /* larger weights: peaked next-token distributions, whose top-k the
     * quantizers visibly disturb */
    xf_model_edit e;
    assert_int_equal(xf_model_edit_init(&e, &lm, &err), 0);
    for (int64_t l = 0; l < lm.weights.cfg.n_layers; l++)
        for (int r = 0; r < XF_LIN_COUNT; r++) {
            const xf_linear *lin = &lm.weights.layers[l].lin[r];
            float *w;
            if (!lin->w)
                continue;
            assert_int_equal(xf_model_edit_f32(&e, lin->w, &w, &err), 0);
            for (int64_t i = 0; i < xf_tensor_numel(lin->w); i++)
                w[i] *= 3.0f;
        }
    assert_int_equal(xf_model_edit_commit(&e, &err), 0);
    xf_online_transforms on;
    xf_online_init(&on);
    assert_int_equal(xf_online_enable_down(&on, &lm.weights.cfg, &err), 0);
    xf_act_scheme s;
    xf_act_scheme_quarot(&s, 4, 4);
    const int64_t T = 32, n = 4, H = 16, d = 4, L = 2;
    int32_t *tok = xf_test_random_tokens(T * n, 40, 8);
    xf_r1_request q = {.kind = XF_ROTATE_LEARNED, .seed = 3, .steps = 12, .lr = 0.5,
                       .tokens = tok, .nsamples = n, .T = T, .act = &s, .weight_bits = 4,
                       .weight_sym = true, .weight_group = 0,
                       .e2e_loss = XF_ROTATE_LOSS_KL_TOP, .e2e_windows = n, .e2e_batch = 2,
                       .ost_scales = true, .kl_top_k = 8};
    xf_ost_params p;
    assert_int_equal(xf_ost_params_init(&p, &lm.weights.cfg, true, &err), 0);
    json_t *rec = json_object();
    if (xf_learned_ost(&lm.weights, &q, &on, &p, rec, &err) != 0)
        fail_msg("learn: %s", err.msg);
    json_t *lr = json_object_get(rec, "learned");
    assert_non_null(lr);
    const double l0 = json_real_value(json_object_get(lr, "loss_initial"));
    const double l1 = json_real_value(json_object_get(lr, "loss_final"));
    if (!(l0 > 0 && l1 < l0))
        fail_msg("loss %.6g -> %.6g", l0, l1);
    assert_true(json_is_true(json_object_get(lr, "kept")));
    assert_string_equal(json_string_value(json_object_get(lr, "loss")), "kl-top");
    assert_int_equal(json_integer_value(json_object_get(lr, "kl_top_k")), 8);
    assert_true(json_real_value(json_object_get(lr, "max_abs_log_scale")) > 1e-3);
    assert_true(xf_lrot_orth_error(p.R1, H) < 1e-9);
    for (int64_t l = 0; l < L; l++)
        assert_true(xf_lrot_orth_error(p.R2 + l * d * d, d) < 1e-9);
    /* a k beyond the vocabulary is refused */
    q.kl_top_k = 41;
    assert_int_equal(xf_learned_ost(&lm.weights, &q, &on, &p, rec, &err), -1);
    assert_non_null(strstr(err.msg, "--kl-top-k 41"));
    json_decref(rec);
    xf_ost_params_free(&p);
    free(tok);
    xf_online_free(&on);
    xf_model_edit_free(&e);
    xf_model_close(&lm);
}

/* --rotate-scales / kl-top outside --rotate learned (e2e) are refused */
static void test_cli_refusal(void **state)
{
    (void)state;
    char dir[4096], out[4096];
    snprintf(dir, sizeof dir, "%s/cli", g_tmp);
    xf_random_model_spec s = {.family = "llama", .hidden = 16, .intermediate = 32, .layers = 2,
                              .heads = 4, .kv_heads = 2, .vocab = 40, .max_pos = 64, .seed = 2};
    char *d = xf_random_model_write(dir, &s);
    assert_non_null(d);
    free(d);
    snprintf(out, sizeof out, "%s/cli.xfq", g_tmp);
    const char *cmds[] = {"rtn --bits 4 --rotate hadamard --rotate-scales %s %s",
                          "rtn --bits 4 --rotate hadamard --rotate-loss kl-top %s %s"};
    for (int i = 0; i < 2; i++) {
        xf_cli_result res = xf_cli_run(g_tmp, cmds[i], dir, out);
        assert_int_not_equal(res.code, 0);
        assert_non_null(strstr(res.err, "need --rotate learned --rotate-objective e2e"));
        xf_cli_result_free(&res);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kl_top_gradient),
        cmocka_unit_test(test_scale_gradients),
        cmocka_unit_test(test_fused_transform_exact),
        cmocka_unit_test(test_learner_lowers_loss),
        cmocka_unit_test(test_cli_refusal),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
