/* quant/transform/e2e_rotation.h and e2e_learn.c: the gradients of R1 and
 * of every layer's R2, computed from the backward pass's weight gradients,
 * against central differences of the fp64 reference forward
 * (tests/support/ref_llama.h) with the rotated weights written out here in
 * fp64 from the placement rules (not through e2e_weights.c); and the
 * learner itself on a tiny model (loss down, rotations orthogonal, the
 * pipeline's refusal of other families). */
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
#include "quant/transform/e2e_rotation.h"
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

static void open_model(xf_loaded_model *m, const char *name, const char *family)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", g_tmp, name);
    xf_random_model_spec s = {.family = family, .hidden = 16, .intermediate = 32, .layers = 2,
                              .heads = 4, .kv_heads = strcmp(family, "llama") == 0 ? 2 : 0,
                              .vocab = 40, .max_pos = 64, .seed = 9};
    char *d = xf_random_model_write(dir, &s);
    assert_non_null(d);
    free(d);
    xf_error err = {{0}};
    if (xf_model_open(m, dir, &err) != 0)
        fail_msg("open: %s", err.msg);
}

typedef struct base64 {
    double *w[2][XF_LIN_COUNT], *head, *embed;
} base64;

/* The effective weights of R1 / R2 in fp64, straight from the placement
 * rules, into r (r's arrays allocated here once, overwritten after). */
static void effective(const xf_e2e_model *m, const base64 *b, const double *R1, const double *R2,
                      xf_ref_llama *r)
{
    const xf_model_config *c = &m->cfg;
    const int64_t H = c->hidden, d = c->head_dim, I = c->intermediate, nh = c->n_heads,
                  nkv = c->n_kv_heads, qd = nh * d, kvd = nkv * d;
    for (int l = 0; l < m->n_layers; l++) {
        const xf_linear_role readers[] = {XF_LIN_Q, XF_LIN_K, XF_LIN_GATE, XF_LIN_UP};
        for (int k = 0; k < 4; k++)
            xf_ref_mm64(b->w[l][readers[k]], H, false, R1, H, false, r->w[l][readers[k]], H,
                 m->base[l].out[readers[k]], H, H);
        double *t = malloc((size_t)(H * (qd > kvd ? qd : kvd)) * sizeof *t);
        xf_ref_mm64(b->w[l][XF_LIN_V], H, false, R1, H, false, t, H, kvd, H, H);
        for (int64_t h = 0; h < nkv; h++) /* R2^T (W_v[h] R1) */
            xf_ref_mm64(R2 + l * d * d, d, true, t + h * d * H, H, false, r->w[l][XF_LIN_V] + h * d * H,
                 H, d, H, d);
        xf_ref_mm64(R1, H, true, b->w[l][XF_LIN_O], qd, false, t, qd, H, qd, H);
        for (int64_t h = 0; h < nh; h++) /* (R1^T W_o)[:, h] R2 */
            xf_ref_mm64(t + h * d, qd, false, R2 + l * d * d, d, false, r->w[l][XF_LIN_O] + h * d, qd, H,
                 d, d);
        xf_ref_mm64(R1, H, true, b->w[l][XF_LIN_DOWN], I, false, r->w[l][XF_LIN_DOWN], I, H, I, H);
        free(t);
    }
    xf_ref_mm64(b->head, H, false, R1, H, false, r->head, H, c->vocab, H, H);
    xf_ref_mm64(b->embed, H, false, R1, H, false, r->embed, H, c->vocab, H, H);
}

static double dot(const double *a, const double *b, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* dL/dR1 and dL/dR2 against central differences along random directions,
 * at non-orthogonal R1 / R2 (the formulas do not assume orthogonality). */
static void test_rotation_gradients(void **state)
{
    (void)state;
    xf_loaded_model lm;
    open_model(&lm, "grad", "llama");
    xf_error err = {{0}};
    xf_online_transforms on;
    xf_online_init(&on);
    assert_int_equal(xf_online_enable_down(&on, &lm.weights.cfg, &err), 0);
    xf_e2e_model m;
    if (xf_e2e_model_init(&m, &lm.weights, &on.down_had, "test", &err) != 0)
        fail_msg("init: %s", err.msg);
    const xf_model_config *c = &m.cfg;
    const int64_t H = c->hidden, d = c->head_dim, L = c->n_layers, V = c->vocab;
    /* larger weights: attention far from uniform, every path carries gradient */
    for (int l = 0; l < L; l++)
        for (int r = 0; r < XF_LIN_COUNT; r++)
            for (int64_t i = 0; i < m.base[l].out[r] * m.base[l].in[r]; i++)
                m.base[l].w[r][i] *= W_SCALE;
    for (int64_t i = 0; i < V * H; i++)
        m.head.w[i] *= W_SCALE;
    uint64_t rng = 21;
    double *R1 = malloc((size_t)(H * H) * sizeof *R1), *R2 = malloc((size_t)(L * d * d) * sizeof *R2);
    uint64_t seed = 4;
    assert_int_equal(xf_hadamard_dense(H, &seed, R1, &err), 0);
    for (int64_t i = 0; i < H * H; i++)
        R1[i] += 0.1 * xf_test_rand_normal(&rng);
    for (int64_t l = 0; l < L; l++) {
        assert_int_equal(xf_hadamard_dense(d, NULL, R2 + l * d * d, &err), 0);
        for (int64_t i = 0; i < d * d; i++)
            R2[l * d * d + i] += 0.1 * xf_test_rand_normal(&rng);
    }
    /* analytic: build, forward with the online hooks, CE, backward */
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
    assert_int_equal(xf_grads_init(&g, m.eff, (int)L, &m.eff_head, &err), 0);
    if (xf_e2e_build(&m, R1, R2, NULL, 0, &err) != 0)
        fail_msg("build: %s", err.msg);
    float *h0 = malloc((size_t)(T_WIN * H) * sizeof *h0), *dh0 = malloc((size_t)(T_WIN * H) * sizeof *dh0);
    float *lg = malloc((size_t)(T_WIN * V) * sizeof *lg), *dl = malloc((size_t)(T_WIN * V) * sizeof *dl);
    assert_int_equal(xf_e2e_embed(&m, tok, T_WIN, h0, &err), 0);
    assert_int_equal(xf_tape_forward(&tp, &ws, m.eff, &m.eff_head, h0, T_WIN, &ah.hooks, lg, &err), 0);
    double loss = 0;
    xf_loss_next_token_ce(lg, tok, T_WIN, V, 1.0, &loss, dl);
    assert_int_equal(xf_tape_backward(&tp, m.eff, &m.eff_head, dl, &bh, &g, dh0, &err), 0);
    double *G1 = calloc((size_t)(H * H), sizeof *G1), *G2 = calloc((size_t)(L * d * d), sizeof *G2);
    xf_e2e_grad_embed(&m, tok, T_WIN, dh0, G1);
    xf_e2e_grad_weights(&m, &g, G1, G2);
    /* reference: fp64 effective weights from fp64 copies of the base */
    base64 b;
    xf_ref_llama r;
    memset(&r, 0, sizeof r);
    r.c = c;
    for (int l = 0; l < L; l++) {
        for (int k = 0; k < XF_LIN_COUNT; k++) {
            const int64_t n = m.base[l].out[k] * m.base[l].in[k];
            b.w[l][k] = xf_ref_to64(m.base[l].w[k], n);
            r.w[l][k] = malloc((size_t)n * sizeof(double));
        }
        r.an[l] = xf_ref_to64(m.base[l].attn_norm_w, H);
        r.mn[l] = xf_ref_to64(m.base[l].mlp_norm_w, H);
    }
    b.head = xf_ref_to64(m.head.w, V * H);
    b.embed = xf_ref_to64(m.embed, V * H);
    r.head = malloc((size_t)(V * H) * sizeof(double));
    r.embed = malloc((size_t)(V * H) * sizeof(double));
    r.norm = xf_ref_to64(m.head.norm_w, H);
    const int64_t I = c->intermediate;
    r.had = malloc((size_t)(I * I) * sizeof(double));
    xf_hadamard_dense_of(&on.down_had, r.had);
    effective(&m, &b, R1, R2, &r);
    assert_true(fabs(xf_ref_llama_loss(&r, tok, T_WIN) - loss) <= 1e-4 * fabs(loss));
    /* directions: R1 alone, then each layer's R2 alone */
    const int64_t n1 = H * H, n2 = L * d * d;
    double *D = malloc((size_t)(n1 + n2) * sizeof *D), *P1 = malloc((size_t)n1 * sizeof *P1),
           *P2 = malloc((size_t)n2 * sizeof *P2);
    for (int which = 0; which <= L; which++) {
        for (int rep = 0; rep < 2; rep++) {
            memset(D, 0, (size_t)(n1 + n2) * sizeof *D);
            if (which == 0)
                for (int64_t i = 0; i < n1; i++)
                    D[i] = xf_test_rand_normal(&rng);
            else
                for (int64_t i = 0; i < d * d; i++)
                    D[n1 + (which - 1) * d * d + i] = xf_test_rand_normal(&rng);
            const double eps = 1e-5;
            double lpm[2];
            for (int sgn = 0; sgn < 2; sgn++) {
                const double e = sgn == 0 ? eps : -eps;
                for (int64_t i = 0; i < n1; i++)
                    P1[i] = R1[i] + e * D[i];
                for (int64_t i = 0; i < n2; i++)
                    P2[i] = R2[i] + e * D[n1 + i];
                effective(&m, &b, P1, P2, &r);
                lpm[sgn] = xf_ref_llama_loss(&r, tok, T_WIN);
            }
            const double fd = (lpm[0] - lpm[1]) / (2 * eps);
            const double an = dot(G1, D, n1) + dot(G2, D + n1, n2);
            if (!(fabs(fd) > 1e-4) || fabs(an - fd) > 2e-3 * fabs(fd))
                fail_msg("%s%d direction %d: analytic %.6g vs differences %.6g",
                         which == 0 ? "R1" : "R2 of layer ", which == 0 ? 0 : which - 1, rep, an,
                         fd);
        }
    }
    for (int l = 0; l < L; l++) {
        for (int k = 0; k < XF_LIN_COUNT; k++) {
            free(b.w[l][k]);
            free(r.w[l][k]);
        }
        free(r.an[l]);
        free(r.mn[l]);
    }
    free(b.head), free(b.embed), free(r.head), free(r.embed), free(r.norm), free(r.had);
    free(D), free(P1), free(P2), free(G1), free(G2), free(h0), free(dh0), free(lg), free(dl);
    free(R1), free(R2), free(tok);
    xf_grads_free(&g);
    xf_tape_free(&tp);
    xf_workspace_free(&ws);
    xf_act_hooks_free(&ah);
    xf_e2e_model_free(&m);
    xf_online_free(&on);
    xf_model_close(&lm);
}

/* The learner on a tiny model under W4A4KV4: the calibration loss drops,
 * the rotations stay orthogonal, the record says what ran. */
static void test_learner_lowers_loss(void **state)
{
    (void)state;
    xf_loaded_model lm;
    open_model(&lm, "learn", "llama");
    xf_error err = {{0}};
    xf_online_transforms on;
    xf_online_init(&on);
    assert_int_equal(xf_online_enable_down(&on, &lm.weights.cfg, &err), 0);
    xf_act_scheme s;
    xf_act_scheme_quarot(&s, 4, 4);
    const int64_t T = 32, n = 4, H = 16, d = 4, L = 2;
    int32_t *tok = xf_test_random_tokens(T * n, 40, 8);
    xf_r1_request q = {.kind = XF_ROTATE_LEARNED, .seed = 3, .steps = 12, .lr = 0.5,
                       .tokens = tok, .nsamples = n, .T = T, .act = &s, .weight_bits = 4,
                       .weight_sym = true, .weight_group = 0, .e2e_loss = XF_ROTATE_LOSS_CE,
                       .e2e_windows = n, .e2e_batch = 2};
    double *R1 = malloc((size_t)(H * H) * sizeof *R1), *R2 = malloc((size_t)(L * d * d) * sizeof *R2);
    for (int kind = 0; kind < 2; kind++) {
        q.e2e_loss = kind == 0 ? XF_ROTATE_LOSS_CE : XF_ROTATE_LOSS_KL;
        json_t *rec = json_object();
        if (xf_learned_e2e(&lm.weights, &q, &on, R1, R2, rec, &err) != 0)
            fail_msg("learn: %s", err.msg);
        json_t *lr = json_object_get(rec, "learned");
        assert_non_null(lr);
        const double l0 = json_real_value(json_object_get(lr, "loss_initial"));
        const double l1 = json_real_value(json_object_get(lr, "loss_final"));
        /* the random model predicts near-uniformly: its CE barely depends on
         * the quantization error, while KL to the full-precision model is
         * nothing else, and must drop */
        assert_true(l0 > 0 && isfinite(l1) && (kind == 0 || l1 < l0));
        assert_true(json_is_true(json_object_get(lr, "kept")) == (l1 < l0));
        assert_int_equal(json_integer_value(json_object_get(lr, "steps")), 12);
        assert_string_equal(json_string_value(json_object_get(lr, "loss")), kind ? "kl" : "ce");
        assert_true(xf_lrot_orth_error(R1, H) < 1e-9);
        for (int64_t l = 0; l < L; l++)
            assert_true(xf_lrot_orth_error(R2 + l * d * d, d) < 1e-9);
        json_decref(rec);
    }
    free(R1), free(R2), free(tok);
    xf_online_free(&on);
    xf_model_close(&lm);
}

static void test_refuses_other_families(void **state)
{
    (void)state;
    xf_loaded_model lm;
    open_model(&lm, "opt", "opt");
    xf_error err = {{0}};
    xf_e2e_model m;
    assert_int_equal(xf_e2e_model_init(&m, &lm.weights, NULL, "m.xfq", &err), -1);
    assert_non_null(strstr(err.msg, "m.xfq: the backward pass covers the llama family only"));
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

/* --rotate-qk (R3) end to end: recorded in the .xfq, read back, exact in
 * full precision (the file with and without its Q/K Hadamard gives the
 * same logits); bad entries and --rotate-qk without a rotation refused. */
static void test_qk_online_transform(void **state)
{
    (void)state;
    char dir[4096], out[4096], out2[4096];
    snprintf(dir, sizeof dir, "%s/qk", g_tmp);
    xf_random_model_spec s = {.family = "llama", .hidden = 16, .intermediate = 32, .layers = 2,
                              .heads = 4, .kv_heads = 2, .vocab = 40, .max_pos = 64, .seed = 2};
    char *d = xf_random_model_write(dir, &s);
    assert_non_null(d);
    free(d);
    snprintf(out, sizeof out, "%s/qk.xfq", g_tmp);
    xf_cli_result res = xf_cli_run(g_tmp, "rtn --bits 8 --rotate hadamard --rotate-qk %s %s", dir,
                                   out);
    if (res.code != 0)
        fail_msg("rtn: %s", res.err);
    xf_cli_result_free(&res);
    xf_error err = {{0}};
    xf_loaded_model q;
    if (xf_model_open(&q, out, &err) != 0)
        fail_msg("reload: %s", err.msg);
    const json_t *recipe = json_object_get(q.xfq.meta, "recipe");
    xf_online_transforms on, down_only;
    if (xf_online_from_json(&on, json_object_get(recipe, "online_transforms"), &q.cfg, out,
                            &err) != 0)
        fail_msg("online: %s", err.msg);
    assert_true(on.down && on.qk && on.qk_had.n == q.cfg.head_dim);
    xf_online_init(&down_only);
    assert_int_equal(xf_online_enable_down(&down_only, &q.cfg, &err), 0);
    int32_t *tok = xf_test_random_tokens(12, q.cfg.vocab, 4);
    float *a = logits_with(&q.weights, &on, tok, 12), *b = logits_with(&q.weights, &down_only, tok, 12);
    double num = 0, den = 0;
    for (int64_t i = 0; i < 12 * q.cfg.vocab; i++) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    assert_true(sqrt(num / den) < 1e-5);
    free(a), free(b), free(tok);
    /* strict reader: a qk entry of the wrong size and an unknown input */
    json_t *bad = json_pack("[{s:s, s:s, s:i}]", "kind", "hadamard", "input", "qk", "n", 3);
    xf_online_transforms t;
    assert_int_equal(xf_online_from_json(&t, bad, &q.cfg, "f.xfq", &err), -1);
    assert_non_null(strstr(err.msg, "f.xfq: online_transforms[0]: expected {kind, input, n = 4}"));
    json_decref(bad);
    bad = json_pack("[{s:s, s:s, s:i}]", "kind", "hadamard", "input", "q_only", "n", 4);
    assert_int_equal(xf_online_from_json(&t, bad, &q.cfg, "f.xfq", &err), -1);
    assert_non_null(strstr(err.msg, "does not implement"));
    json_decref(bad);
    xf_online_free(&on);
    xf_online_free(&down_only);
    xf_model_close(&q);
    /* --rotate-qk alone is refused */
    snprintf(out2, sizeof out2, "%s/qk_alone.xfq", g_tmp);
    res = xf_cli_run(g_tmp, "rtn --bits 4 --rotate-qk %s %s", dir, out2);
    assert_int_not_equal(res.code, 0);
    assert_non_null(strstr(res.err, "--rotate-qk needs --rotate"));
    xf_cli_result_free(&res);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rotation_gradients),
        cmocka_unit_test(test_learner_lowers_loss),
        cmocka_unit_test(test_refuses_other_families),
        cmocka_unit_test(test_qk_online_transform),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
