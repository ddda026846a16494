/* model/backward.h: the recording forward equals the plain forward bit for
 * bit (with and without the quantizing hooks), and every gradient of the
 * backward pass (each linear weight, the norms, the head, the embedding
 * rows; through attention, RoPE, softmax, SwiGLU and the online down
 * Hadamard's backward hook) matches central differences of an independent
 * fp64 forward written here from the HF llama definition. Also the losses'
 * logit gradients. */
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
#include "sim/act_hooks.h"
#include "sim/act_hooks_grad.h"
#include "tests/support/random_model.h"
#include "tests/support/ref_llama.h"
#include "tests/support/test_util.h"

#define T_WIN 7
/* linear weights are scaled up so that attention is far from uniform and
 * every path carries a gradient well above fp32 noise */
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

typedef struct fixture {
    xf_loaded_model m;
    xf_model_config cfg;
    xf_dense_layer *dl;
    xf_dense_head hd;
    float *embed;
    int32_t *tok;
    xf_online_transforms online;
} fixture;

static void fixture_open(fixture *f, const char *name)
{
    xf_error err = {{0}};
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", g_tmp, name);
    xf_random_model_spec s = {.family = "llama", .hidden = 16, .intermediate = 32, .layers = 2,
                              .heads = 4, .kv_heads = 2, .vocab = 40, .max_pos = 16, .seed = 7};
    char *d = xf_random_model_write(dir, &s);
    assert_non_null(d);
    free(d);
    if (xf_model_open(&f->m, dir, &err) != 0)
        fail_msg("open: %s", err.msg);
    f->cfg = f->m.weights.cfg;
    const int L = (int)f->cfg.n_layers;
    f->dl = calloc((size_t)L, sizeof *f->dl);
    assert_non_null(f->dl);
    for (int l = 0; l < L; l++) {
        if (xf_dense_layer_init(&f->dl[l], &f->m.weights, l, &err) != 0)
            fail_msg("layer: %s", err.msg);
        for (int r = 0; r < XF_LIN_COUNT; r++)
            for (int64_t i = 0; f->dl[l].w[r] && i < f->dl[l].out[r] * f->dl[l].in[r]; i++)
                f->dl[l].w[r][i] *= W_SCALE;
    }
    if (xf_dense_head_init(&f->hd, &f->m.weights, &err) != 0)
        fail_msg("head: %s", err.msg);
    for (int64_t i = 0; i < f->hd.vocab * f->hd.hidden; i++)
        f->hd.w[i] *= W_SCALE;
    f->embed = malloc((size_t)(f->cfg.vocab * f->cfg.hidden) * sizeof *f->embed);
    assert_non_null(f->embed);
    if (xf_tensor_to_f32(f->m.weights.tok_embed, f->embed, &err) != 0)
        fail_msg("embed: %s", err.msg);
    f->tok = xf_test_random_tokens(T_WIN, f->cfg.vocab, 3);
    f->tok[4] = f->tok[1]; /* a repeated token: its embedding row sums two gradients */
    xf_online_init(&f->online);
    if (xf_online_enable_down(&f->online, &f->cfg, &err) != 0)
        fail_msg("online: %s", err.msg);
}

static void fixture_close(fixture *f)
{
    for (int l = 0; l < f->cfg.n_layers; l++)
        xf_dense_layer_free(&f->dl[l]);
    free(f->dl);
    xf_dense_head_free(&f->hd);
    free(f->embed);
    free(f->tok);
    xf_online_free(&f->online);
    xf_model_close(&f->m);
}

/* ---- the fp64 reference (tests/support/ref_llama.h) ----------------------- */

typedef xf_ref_llama ref;
#define ref_loss xf_ref_llama_loss

static double *dup(const float *x, int64_t n)
{
    double *d = malloc((size_t)n * sizeof *d);
    assert_non_null(d);
    for (int64_t i = 0; i < n; i++)
        d[i] = x[i];
    return d;
}

static void ref_init(ref *r, const fixture *f, int online)
{
    memset(r, 0, sizeof *r);
    r->c = &f->cfg;
    for (int l = 0; l < f->cfg.n_layers; l++) {
        for (int k = 0; k < XF_LIN_COUNT; k++)
            r->w[l][k] = dup(f->dl[l].w[k], f->dl[l].out[k] * f->dl[l].in[k]);
        r->an[l] = dup(f->dl[l].attn_norm_w, f->cfg.hidden);
        r->mn[l] = dup(f->dl[l].mlp_norm_w, f->cfg.hidden);
    }
    r->head = dup(f->hd.w, f->hd.vocab * f->hd.hidden);
    r->norm = dup(f->hd.norm_w, f->cfg.hidden);
    r->embed = dup(f->embed, f->cfg.vocab * f->cfg.hidden);
    if (online) {
        const int64_t I = f->cfg.intermediate;
        r->had = malloc((size_t)(I * I) * sizeof *r->had);
        assert_non_null(r->had);
        xf_hadamard_dense_of(&f->online.down_had, r->had);
    }
    if (online == 2) {
        const int64_t d = f->cfg.head_dim;
        r->had_qk = malloc((size_t)(d * d) * sizeof *r->had_qk);
        assert_non_null(r->had_qk);
        xf_hadamard_dense_of(&f->online.qk_had, r->had_qk);
    }
}

static void ref_free(ref *r)
{
    for (int l = 0; l < r->c->n_layers; l++) {
        for (int k = 0; k < XF_LIN_COUNT; k++)
            free(r->w[l][k]);
        free(r->an[l]);
        free(r->mn[l]);
    }
    free(r->head);
    free(r->norm);
    free(r->embed);
    free(r->had);
    free(r->had_qk);
}

/* ---- helpers ------------------------------------------------------------ */

/* max |analytic - central difference| over `samples` random entries of
 * p[0..n) (fp64 differences of ref_loss), relative to the largest
 * difference seen; fails above tol or when every difference is ~0 (a path
 * that carries no gradient would test nothing). */
static void check_entries(const char *what, const ref *r, double *p, const float *grad, int64_t n,
                          const int32_t *tok, int samples, uint64_t *rng, double tol)
{
    double worst = 0, scale = 0;
    for (int s = 0; s < samples; s++) {
        const int64_t i = (int64_t)(xf_test_rand_u64(rng) % (uint64_t)n);
        const double keep = p[i], eps = 1e-5 * fmax(1.0, fabs(keep));
        p[i] = keep + eps;
        const double lp = ref_loss(r, tok, T_WIN);
        p[i] = keep - eps;
        const double lm = ref_loss(r, tok, T_WIN);
        p[i] = keep;
        const double fd = (lp - lm) / (2 * eps);
        worst = fmax(worst, fabs(fd - (double)grad[i]));
        scale = fmax(scale, fabs(fd));
    }
    if (!(scale > 1e-6) || !(worst <= tol * scale))
        fail_msg("%s: analytic vs central differences: max error %.3g, largest gradient %.3g",
                 what, worst, scale);
}

static void hooks_for(xf_act_hooks *ah, const fixture *f, bool quant, bool online)
{
    xf_error err = {{0}};
    xf_act_scheme s;
    if (quant)
        xf_act_scheme_quarot(&s, 4, 4);
    else
        xf_act_scheme_default(&s);
    if (xf_act_hooks_init_online(ah, &s, online ? &f->online : NULL, NULL, &err) != 0)
        fail_msg("hooks: %s", err.msg);
}

/* ---- tests -------------------------------------------------------------- */

/* The tape's logits are the plain forward's, bit for bit. */
static void test_tape_forward_matches(void **state)
{
    (void)state;
    fixture f;
    fixture_open(&f, "fwd");
    xf_error err = {{0}};
    const int64_t V = f.cfg.vocab, H = f.cfg.hidden;
    for (int quant = 0; quant < 2; quant++) {
        if (quant && xf_online_enable_qk(&f.online, &f.cfg, &err) != 0)
            fail_msg("qk: %s", err.msg);
        xf_act_hooks ah;
        hooks_for(&ah, &f, quant, quant);
        xf_workspace ws;
        xf_tape tp;
        assert_int_equal(xf_workspace_init(&ws, &f.cfg, T_WIN, "test", &err), 0);
        assert_int_equal(xf_tape_init(&tp, &f.cfg, T_WIN, false, &err), 0);
        float *h = malloc((size_t)(T_WIN * H) * sizeof *h), *h0 = malloc((size_t)(T_WIN * H) * sizeof *h0);
        float *a = malloc((size_t)(T_WIN * V) * sizeof *a), *b = malloc((size_t)(T_WIN * V) * sizeof *b);
        assert_int_equal(xf_forward_embed(&ws, &f.m.weights, f.tok, T_WIN, h, &err), 0);
        for (int l = 0; l < f.cfg.n_layers; l++)
            assert_int_equal(xf_forward_layer(&ws, &f.dl[l], h, T_WIN, &ah.hooks, &err), 0);
        assert_int_equal(xf_forward_final(&ws, &f.hd, h, T_WIN, a, &err), 0);
        assert_int_equal(xf_tape_embed(f.embed, V, H, f.tok, T_WIN, h0, &err), 0);
        if (xf_tape_forward(&tp, &ws, f.dl, &f.hd, h0, T_WIN, &ah.hooks, b, &err) != 0)
            fail_msg("tape: %s", err.msg);
        assert_memory_equal(a, b, (size_t)(T_WIN * V) * sizeof *a);
        /* an out-of-range token is refused */
        int32_t bad[2] = {0, (int32_t)V};
        assert_int_equal(xf_tape_embed(f.embed, V, H, bad, 2, h0, &err), -1);
        assert_non_null(strstr(err.msg, "outside"));
        free(h), free(h0), free(a), free(b);
        xf_tape_free(&tp);
        xf_workspace_free(&ws);
        xf_act_hooks_free(&ah);
    }
    fixture_close(&f);
}

/* Every gradient against central differences of the fp64 forward. */
static void test_gradients_match_differences(void **state)
{
    (void)state;
    fixture f;
    fixture_open(&f, "grad");
    xf_error err = {{0}};
    const int64_t V = f.cfg.vocab, H = f.cfg.hidden;
    for (int online = 0; online < 3; online++) {
        if (online == 2 && xf_online_enable_qk(&f.online, &f.cfg, &err) != 0)
            fail_msg("qk: %s", err.msg);
        xf_act_hooks ah;
        hooks_for(&ah, &f, false, online);
        xf_backward_hooks bh;
        xf_act_hooks_backward(&ah, false, &bh);
        xf_workspace ws;
        xf_tape tp;
        xf_grads g;
        assert_int_equal(xf_workspace_init(&ws, &f.cfg, T_WIN, "test", &err), 0);
        assert_int_equal(xf_tape_init(&tp, &f.cfg, T_WIN, false, &err), 0);
        assert_int_equal(xf_grads_init(&g, f.dl, (int)f.cfg.n_layers, &f.hd, &err), 0);
        float *h0 = malloc((size_t)(T_WIN * H) * sizeof *h0), *dh0 = malloc((size_t)(T_WIN * H) * sizeof *dh0);
        float *lg = malloc((size_t)(T_WIN * V) * sizeof *lg), *dl = malloc((size_t)(T_WIN * V) * sizeof *dl);
        assert_int_equal(xf_tape_embed(f.embed, V, H, f.tok, T_WIN, h0, &err), 0);
        if (xf_tape_forward(&tp, &ws, f.dl, &f.hd, h0, T_WIN, &ah.hooks, lg, &err) != 0)
            fail_msg("tape: %s", err.msg);
        double loss = 0;
        xf_loss_next_token_ce(lg, f.tok, T_WIN, V, 1.0, &loss, dl);
        /* run twice: gradients accumulate, so zero in between must reset */
        assert_int_equal(xf_tape_backward(&tp, f.dl, &f.hd, dl, &bh, &g, dh0, &err), 0);
        xf_grads_zero(&g);
        if (xf_tape_backward(&tp, f.dl, &f.hd, dl, &bh, &g, dh0, &err) != 0)
            fail_msg("backward: %s", err.msg);
        ref r;
        ref_init(&r, &f, online);
        assert_true(fabs(ref_loss(&r, f.tok, T_WIN) - loss) <= 1e-4 * fabs(loss));
        if (r.had_qk) { /* R3 is exact: the loss does not depend on it */
            double *keep = r.had_qk;
            const double with = ref_loss(&r, f.tok, T_WIN);
            r.had_qk = NULL;
            assert_true(fabs(ref_loss(&r, f.tok, T_WIN) - with) <= 1e-12 * fabs(with));
            r.had_qk = keep;
        }
        uint64_t rng = 11;
        char what[64];
        for (int l = 0; l < f.cfg.n_layers; l++) {
            for (int k = 0; k < XF_LIN_COUNT; k++) {
                snprintf(what, sizeof what, "layer %d %s%s", l, xf_linear_role_name((xf_linear_role)k),
                         online == 2 ? " (online down, qk)" : online ? " (online down)" : "");
                check_entries(what, &r, r.w[l][k], g.layers[l].w[k],
                              f.dl[l].out[k] * f.dl[l].in[k], f.tok, 6, &rng, 2e-3);
            }
            check_entries("attn norm", &r, r.an[l], g.layers[l].attn_norm_w, H, f.tok, 4, &rng, 2e-3);
            check_entries("mlp norm", &r, r.mn[l], g.layers[l].mlp_norm_w, H, f.tok, 4, &rng, 2e-3);
        }
        check_entries("head", &r, r.head, g.head_w, V * H, f.tok, 6, &rng, 2e-3);
        check_entries("final norm", &r, r.norm, g.norm_w, H, f.tok, 4, &rng, 2e-3);
        /* embedding rows: dL/dE[v] = sum of dh0 rows of the positions holding v */
        float *dE = calloc((size_t)(V * H), sizeof *dE);
        for (int64_t t = 0; t < T_WIN; t++)
            for (int64_t i = 0; i < H; i++)
                dE[f.tok[t] * H + i] += dh0[t * H + i];
        /* the last position predicts nothing and no earlier one reads it */
        for (int64_t i = 0; i < H; i++)
            assert_true(dh0[(T_WIN - 1) * H + i] == 0.0f);
        for (int64_t t = 0; t + 1 < T_WIN; t++) {
            snprintf(what, sizeof what, "embedding row of position %lld", (long long)t);
            check_entries(what, &r, r.embed + f.tok[t] * H, dE + f.tok[t] * H, H, f.tok, 3, &rng,
                          2e-3);
        }
        free(dE);
        ref_free(&r);
        free(h0), free(dh0), free(lg), free(dl);
        xf_grads_free(&g);
        xf_tape_free(&tp);
        xf_workspace_free(&ws);
        xf_act_hooks_free(&ah);
    }
    fixture_close(&f);
}

/* The losses' logit gradients against central differences. */
static void test_loss_gradients(void **state)
{
    (void)state;
    const int64_t T = 4, V = 9;
    uint64_t rng = 5;
    float z[36], zr[36], d[36];
    int32_t tok[4] = {3, 0, 8, 5};
    for (int i = 0; i < 36; i++) {
        z[i] = 2.0f * xf_test_rand_normal(&rng);
        zr[i] = 2.0f * xf_test_rand_normal(&rng);
    }
    for (int kind = 0; kind < 2; kind++) {
        double l0 = 0;
        if (kind == 0)
            xf_loss_next_token_ce(z, tok, T, V, 0.5, &l0, d);
        else
            xf_loss_kl(z, zr, T, V, 0.5, &l0, d);
        assert_true(l0 > 0);
        for (int i = 0; i < 36; i++) {
            const float keep = z[i], eps = 1e-2f;
            double lp = 0, lm = 0;
            float scratch[36];
            z[i] = keep + eps;
            if (kind == 0)
                xf_loss_next_token_ce(z, tok, T, V, 0.5, &lp, scratch);
            else
                xf_loss_kl(z, zr, T, V, 0.5, &lp, scratch);
            z[i] = keep - eps;
            if (kind == 0)
                xf_loss_next_token_ce(z, tok, T, V, 0.5, &lm, scratch);
            else
                xf_loss_kl(z, zr, T, V, 0.5, &lm, scratch);
            z[i] = keep;
            const double fd = (lp - lm) / (2.0 * (double)eps);
            if (fabs(fd - d[i]) > 1e-4)
                fail_msg("loss %d logit %d: %.6g vs differences %.6g", kind, i, (double)d[i], fd);
        }
    }
    /* KL of a distribution to itself is 0 */
    double self = 0;
    xf_loss_kl(z, z, T, V, 1.0, &self, d);
    assert_true(fabs(self) < 1e-12);
}

/* The scale STE of sim/act_hooks_grad.h against central differences of
 * the frozen quantizer it differentiates: xq(x) = x + s(x) r with the
 * rounding residual r (in steps) fixed and s = clip max|x| / 7 (A4
 * symmetric), F(x) = sum_j d_j xq_j(x). */
static void test_scale_ste(void **state)
{
    (void)state;
    xf_error err = {{0}};
    xf_act_scheme s;
    xf_act_scheme_quarot(&s, 4, 4);
    xf_act_hooks ah;
    assert_int_equal(xf_act_hooks_init(&ah, &s, NULL, &err), 0);
    const int n = 16;
    const double clip = xf_act_scheme_clip(&s, XF_IN_O);
    uint64_t rng = 3;
    float x[16], xq[16], d[16], g[16];
    for (int j = 0; j < n; j++) {
        x[j] = xf_test_rand_normal(&rng);
        d[j] = xf_test_rand_normal(&rng);
    }
    x[5] = -6.0f; /* the range is set by one value */
    memcpy(xq, x, sizeof x);
    assert_int_equal(xf_act_quant_row(xq, n, n, 4, true, (float)clip), 0);
    const double s0 = clip * 6.0 / 7.0;
    double r[16];
    for (int j = 0; j < n; j++)
        r[j] = ((double)xq[j] - x[j]) / s0;
    for (int scale = 0; scale < 2; scale++) {
        xf_backward_hooks bh;
        xf_act_hooks_backward(&ah, scale, &bh);
        memcpy(g, d, sizeof d);
        assert_int_equal(bh.on_linear_input_grad(bh.user, 0, XF_LIN_O, x, xq, g, 1, n, &err), 0);
        for (int j = 0; j < n; j++) {
            double fd = d[j];
            if (scale) { /* differences of F along x_j */
                double F[2];
                for (int k = 0; k < 2; k++) {
                    double xp[16], m = 0, sum = 0;
                    for (int i = 0; i < n; i++)
                        xp[i] = x[i];
                    xp[j] += k == 0 ? 1e-6 : -1e-6;
                    for (int i = 0; i < n; i++)
                        m = fmax(m, fabs(xp[i]));
                    for (int i = 0; i < n; i++)
                        sum += d[i] * (xp[i] + clip * m / 7.0 * r[i]);
                    F[k] = sum;
                }
                fd = (F[0] - F[1]) / 2e-6;
            }
            if (fabs(fd - g[j]) > 1e-4 * fmax(1.0, fabs(fd)))
                fail_msg("scale %d, x[%d]: hook %.6g vs %.6g", scale, j, (double)g[j], fd);
        }
    }
    /* the scale STE moves the gradient of the range-setting value only */
    assert_true(fabsf(g[5] - d[5]) > 1e-3f);
    xf_act_hooks_free(&ah);
}

static void test_refuses_other_families(void **state)
{
    (void)state;
    xf_model_config c;
    memset(&c, 0, sizeof c);
    c.family = XF_FAMILY_OPT;
    xf_error err = {{0}};
    assert_int_equal(xf_backward_supported(&c, "x.xfq", &err), -1);
    assert_non_null(strstr(err.msg, "x.xfq: the backward pass covers the llama family only"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tape_forward_matches),
        cmocka_unit_test(test_gradients_match_differences),
        cmocka_unit_test(test_loss_gradients),
        cmocka_unit_test(test_scale_ste),
        cmocka_unit_test(test_refuses_other_families),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
