/* Dense-and-sparse weights (--outliers): selection, grids fitted without the
 * outliers (RTN and GPTQ), the CSR side table through the .xfq round trip
 * and the model loader, bit-identical output without outliers, bits per
 * weight, refusal of malformed side tables, and the CLI. */
#include <math.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <jansson.h>

#include "core/half.h"
#include "core/read_file.h"
#include "formats/xfq.h"
#include "formats/xfq_check.h"
#include "formats/xfq_outliers.h"
#include "formats/xfq_pack.h"
#include "model/forward.h"
#include "model/loader.h"
#include "quant/weights/gptq.h"
#include "quant/weights/outliers.h"
#include "pipeline/quantize_model.h"
#include "quant/weights/qweight.h"
#include "quant/weights/rtn.h"
#include "pipeline/xfq_out.h"
#include "tests/support/cli_run.h"
#include "tests/support/random_model.h"
#include "tests/support/test_util.h"

static char *g_tmp;

static float f16r(float x) { return xf_f16_to_f32(xf_f32_to_f16(x)); }

static char *tmp_path(const char *name)
{
    char *p = malloc(strlen(g_tmp) + strlen(name) + 2);
    sprintf(p, "%s/%s", g_tmp, name);
    return p;
}

/* ---- test data (as tests/test_gptq.c) ---- */

static float *normal_weights(int n, float std, uint64_t seed)
{
    uint64_t rng = seed;
    float *W = malloc(sizeof(float) * (size_t)n);
    for (int i = 0; i < n; i++)
        W[i] = xf_test_rand_normal(&rng) * std;
    return W;
}

/* ||(W - Q) X^T||^2: the layer's output error on the inputs. */
static double output_error(const float *W, const float *Q, const float *X, int rows, int cols,
                           int N)
{
    double s = 0;
    for (int r = 0; r < rows; r++)
        for (int t = 0; t < N; t++) {
            double y = 0;
            for (int j = 0; j < cols; j++)
                y += ((double)W[r * cols + j] - Q[r * cols + j]) * X[t * cols + j];
            s += y * y;
        }
    return s;
}

static char *random_llama(const char *name, uint64_t seed)
{
    char *dir = tmp_path(name);
    xf_random_model_spec s = {.family = "llama", .hidden = 64, .intermediate = 96, .layers = 2,
                              .heads = 4, .kv_heads = 2, .vocab = 80, .max_pos = 32,
                              .seed = seed};
    char *out = xf_random_model_write(dir, &s);
    assert_non_null(out);
    free(out);
    return dir;
}

static char *random_gpt2(const char *name, uint64_t seed)
{
    char *dir = tmp_path(name);
    xf_random_model_spec s = {.family = "gpt2", .hidden = 64, .layers = 2, .heads = 4,
                              .vocab = 80, .max_pos = 32, .tied = true, .seed = seed};
    char *out = xf_random_model_write(dir, &s);
    assert_non_null(out);
    free(out);
    return dir;
}

/* xfquant rtn in-process: 3 bits, group 32. */
static int rtn_file(const char *src, const char *out, double frac, bool head, json_t **summary)
{
    xf_loaded_model m;
    xf_error err = {0};
    if (xf_model_open(&m, src, &err) != 0) {
        print_message("%s\n", err.msg);
        return -1;
    }
    xf_quant_options o;
    xf_quant_options_defaults(&o, XF_METHOD_RTN);
    o.grid.bits = 3;
    o.group = 32;
    o.quantize_head = head;
    o.outliers = frac;
    int rc = xf_quantize_model(&m, &o, NULL, out, NULL, summary, &err);
    if (rc != 0)
        print_message("%s\n", err.msg);
    xf_model_close(&m);
    return rc;
}

/* GPTQ of every linear of src with a random Hessian per linear, written
 * to out through the same collector/writer as the pipeline. */
static void gptq_file(const char *src, const char *out, const xf_gptq_params *p)
{
    xf_loaded_model m;
    xf_error err = {0};
    assert_int_equal(xf_model_open(&m, src, &err), 0);
    xf_quant_collector col;
    xf_quant_collector_init(&col);
    for (int l = 0; l < m.cfg.n_layers; l++) {
        xf_dense_layer dl;
        assert_int_equal(xf_dense_layer_init(&dl, &m.weights, l, &err), 0);
        for (int r = 0; r < XF_LIN_COUNT; r++) {
            if (!dl.w[r])
                continue;
            const int in = (int)dl.in[r], N = 192;
            float *X = xf_test_correlated_inputs(N, in, 1000 + 10 * (uint64_t)l + (uint64_t)r);
            double *H = xf_test_hessian(X, N, in);
            xf_qweight q;
            const char *name = m.weights.layers[l].lin[r].w->name;
            if (xf_gptq_solve(dl.w[r], dl.out[r], in, H, p, &q, NULL, name, &err) != 0)
                fail_msg("%s", err.msg);
            assert_int_equal(xf_quant_collector_add(&col, &q, name, NULL, &err), 0);
            xf_qweight_free(&q);
            free(X);
            free(H);
        }
        xf_dense_layer_free(&dl);
    }
    json_t *recipe = json_pack("{s:s}", "method", "gptq"), *prov = json_object();
    if (xf_quant_write_xfq(&m, &col, recipe, prov, out, &err) != 0)
        fail_msg("%s", err.msg);
    json_decref(recipe);
    json_decref(prov);
    xf_quant_collector_free(&col);
    xf_model_close(&m);
}

static bool same_bits(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

/* Every linear of xfq (and the head when `head`) dequantizes, through the
 * model loader, to exactly fp16 of the source's weight; each has a table. */
static void expect_fp16_of_source(const char *src, const char *xfq, bool head)
{
    xf_loaded_model a, b;
    xf_error err = {0};
    assert_int_equal(xf_model_open(&a, src, &err), 0);
    if (xf_model_open(&b, xfq, &err) != 0)
        fail_msg("%s", err.msg);
    size_t checked = 0;
    for (int l = 0; l < a.cfg.n_layers; l++) {
        xf_dense_layer da, db;
        assert_int_equal(xf_dense_layer_init(&da, &a.weights, l, &err), 0);
        assert_int_equal(xf_dense_layer_init(&db, &b.weights, l, &err), 0);
        for (int r = 0; r < XF_LIN_COUNT; r++) {
            if (!da.w[r])
                continue;
            const xf_linear *lin = &b.weights.layers[l].lin[r];
            assert_true(xf_dtype_is_packed(lin->w->dtype));
            assert_non_null(lin->w->packed.outliers.row_ptr);
            assert_int_equal(lin->w->packed.outliers.nnz, da.out[r] * da.in[r]);
            for (int64_t i = 0; i < da.out[r] * da.in[r]; i++)
                if (!same_bits(f16r(da.w[r][i]), db.w[r][i]))
                    fail_msg("%s [%lld]: %.9g, fp16 of the source is %.9g", lin->w->name,
                             (long long)i, (double)db.w[r][i], (double)f16r(da.w[r][i]));
            checked++;
        }
        xf_dense_layer_free(&da);
        xf_dense_layer_free(&db);
    }
    assert_true(checked > 0);
    if (head) {
        xf_dense_head ha, hb;
        assert_int_equal(xf_dense_head_init(&ha, &a.weights, &err), 0);
        assert_int_equal(xf_dense_head_init(&hb, &b.weights, &err), 0);
        assert_true(xf_dtype_is_packed(b.weights.lm_head.w->dtype));
        assert_non_null(b.weights.lm_head.w->packed.outliers.row_ptr);
        for (int64_t i = 0; i < ha.vocab * ha.hidden; i++)
            assert_true(same_bits(f16r(ha.w[i]), hb.w[i]));
        xf_dense_head_free(&ha);
        xf_dense_head_free(&hb);
    }
    xf_model_close(&a);
    xf_model_close(&b);
}

/* ---- the CLI (tests/support/cli_run.h) ---- */

typedef xf_cli_result run_result;
#define run(...) xf_cli_run(g_tmp, __VA_ARGS__)
#define result_free xf_cli_result_free
#define count_lines xf_cli_count_lines

/* ---- unit tests ---- */

static void test_count_and_select(void **state)
{
    (void)state;
    assert_int_equal(xf_outliers_count(0.0, 1000), 0);
    assert_int_equal(xf_outliers_count(0.005, 1000), 5);
    assert_int_equal(xf_outliers_count(0.0025, 1000), 3); /* round half away from zero */
    assert_int_equal(xf_outliers_count(0.0004, 1000), 0);
    assert_int_equal(xf_outliers_count(1.0, 1000), 1000);
    assert_int_equal(xf_outliers_count(2.0, 1000), 1000);

    const float score[10] = {0.5f, 3.0f, 1.0f, 3.0f, 0.0f, 2.0f, 3.0f, -1.0f, 1.0f, 2.0f};
    uint8_t mask[10];
    assert_int_equal(xf_outliers_select(score, 10, 2, mask, "t", NULL), 0);
    const uint8_t want2[10] = {0, 1, 0, 1, 0, 0, 0, 0, 0, 0}; /* ties: lower index first */
    assert_memory_equal(mask, want2, 10);
    assert_int_equal(xf_outliers_select(score, 10, 5, mask, "t", NULL), 0);
    const uint8_t want5[10] = {0, 1, 0, 1, 0, 1, 1, 0, 0, 1};
    assert_memory_equal(mask, want5, 10);
    assert_int_equal(xf_outliers_select(score, 10, 0, mask, "t", NULL), 0);
    for (int i = 0; i < 10; i++)
        assert_int_equal(mask[i], 0);
    assert_int_equal(xf_outliers_select(score, 10, 10, mask, "t", NULL), 0);
    for (int i = 0; i < 10; i++)
        assert_int_equal(mask[i], 1);

    /* large, with many equal scores: exactly `count` chosen, the largest */
    enum { N = 20000 };
    float *s = malloc(N * sizeof *s);
    uint8_t *m = malloc(N);
    uint64_t rng = 5;
    for (int i = 0; i < N; i++)
        s[i] = (float)(xf_test_rand_u64(&rng) % 50);
    assert_int_equal(xf_outliers_select(s, N, 777, m, "t", NULL), 0);
    int taken = 0;
    float min_in = 1e9f, max_out = -1e9f;
    for (int i = 0; i < N; i++) {
        taken += m[i];
        if (m[i])
            min_in = fminf(min_in, s[i]);
        else
            max_out = fmaxf(max_out, s[i]);
    }
    assert_int_equal(taken, 777);
    assert_true(min_in >= max_out);
    free(s);
    free(m);
}

/* The table's values replace the dense ones (they are not added to them),
 * in the format layer and in xf_qweight_dequantize. */
static void test_replacement_semantics(void **state)
{
    (void)state;
    xf_qweight q;
    assert_int_equal(xf_qweight_init(&q, 2, 8, 4, 8, false, false, "t", NULL), 0);
    for (int i = 0; i < 2; i++)
        q.scales[i] = 0.5f;
    memset(q.codes, 15, 16); /* every code dequantizes to 0.5 * (15 - 8) = 3.5 */
    uint8_t mask[16] = {0};
    float vals[16] = {0};
    mask[5] = mask[8] = mask[15] = 1;
    vals[5] = -1.25f;
    vals[8] = 7.0f;
    vals[15] = 0.1f;
    assert_int_equal(xf_outliers_init_from_mask(&q.outliers, mask, vals, NULL, 2, 8, "t", NULL), 0);
    assert_int_equal(q.outliers.nnz, 3);
    assert_int_equal(q.outliers.row_ptr[1], 1);
    float dq[16];
    xf_qweight_dequantize(&q, dq);
    for (int i = 0; i < 16; i++)
        assert_true(dq[i] == (mask[i] ? f16r(vals[i]) : 3.5f));

    /* the same through the exported packed view, which carries the table */
    xf_qweight_packed pk;
    assert_int_equal(xf_qweight_export(&q, "w", &pk, NULL), 0);
    assert_int_equal(pk.n_side, 3);
    assert_string_equal(pk.side[0].name, "w.outliers.row_ptr");
    assert_string_equal(pk.side[1].name, "w.outliers.col");
    assert_string_equal(pk.side[2].name, "w.outliers.val");
    assert_int_equal(xf_qweight_packed_bytes(&pk), pk.tensor.nbytes + 3 * 4 + 3 * 4 + 3 * 2);
    xf_sparse_outliers so = {&pk.side[0], &pk.side[1], &pk.side[2]};
    xf_error err = {0};
    assert_int_equal(xfq_outliers_check(&so, &pk.tensor, "f", &err), 0);
    assert_int_equal(xfq_outliers_check_carried(&so, &pk.tensor, "f", &err), 0);
    float d2[16];
    assert_int_equal(xf_tensor_to_f32(&pk.tensor, d2, NULL), 0);
    assert_memory_equal(d2, dq, sizeof dq);
    assert_int_equal(xf_tensor_row_to_f32(&pk.tensor, 1, d2, NULL), 0);
    assert_memory_equal(d2, dq + 8, 8 * sizeof *dq);
    /* without the table the dense values stay */
    xf_tensor bare = pk.tensor;
    memset(&bare.packed.outliers, 0, sizeof bare.packed.outliers);
    assert_int_equal(xf_tensor_to_f32(&bare, d2, NULL), 0);
    for (int i = 0; i < 16; i++)
        assert_true(d2[i] == 3.5f);
    assert_int_equal(xfq_outliers_check_carried(&so, &bare, "f", &err), -1);
    assert_non_null(strstr(err.msg, "f: tensor w.outliers.row_ptr: outlier side table is not "
                                    "the one its packed view carries"));
    xf_qweight_packed_free(&pk);
    xf_qweight_free(&q);

    /* a value beyond fp16 cannot be kept */
    uint8_t m1 = 1;
    float big = 1e6f;
    xf_outliers o;
    assert_int_equal(xf_outliers_init_from_mask(&o, &m1, &big, NULL, 1, 1, "w7", &err), -1);
    assert_non_null(strstr(err.msg, "w7: outlier [0, 0]"));
}

/* RTN: a planted huge weight is the one outlier, and its group's grid is
 * the grid of the other weights; every other grid is untouched. */
static void test_rtn_planted_outlier_excluded(void **state)
{
    (void)state;
    enum { R = 4, C = 64 };
    for (int v = 0; v < 4; v++) {
        const bool sym = v & 1;
        const int64_t group = (v & 2) ? 16 : -1;
        float *W = normal_weights(R * C, 0.02f, 11 + (uint64_t)v);
        W[2 * C + 17] = 5.0f;
        xf_rtn_params p = {.grid = {.bits = 4, .sym = sym}, .group = group,
                           .outliers = 1.0 / (R * C)};
        xf_rtn_params p0 = p;
        p0.outliers = 0.0;
        xf_qweight q, q0;
        assert_int_equal(xf_rtn_quantize(W, R, C, &p, &q, "t", NULL), 0);
        assert_int_equal(xf_rtn_quantize(W, R, C, &p0, &q0, "t", NULL), 0);
        assert_null(q0.outliers.row_ptr);
        assert_int_equal(q.outliers.nnz, 1);
        const int32_t want_ptr[R + 1] = {0, 0, 0, 1, 1};
        assert_memory_equal(q.outliers.row_ptr, want_ptr, sizeof want_ptr);
        assert_int_equal(q.outliers.col[0], 17);
        assert_true(q.outliers.val[0] == 5.0f);

        const int64_t g = group < 0 ? C : group, gi = 17 / g, j0 = gi * g;
        float rest[C];
        int m = 0;
        for (int64_t j = j0; j < j0 + g; j++)
            if (j != 17)
                rest[m++] = W[2 * C + j];
        xf_grid want = xf_grid_fit(&p.grid, rest, m);
        xf_grid got = xf_qweight_grid(&q, 2, gi);
        assert_true(got.scale == want.scale);
        assert_int_equal(got.zero, want.zero);
        assert_true(got.scale < xf_qweight_grid(&q0, 2, gi).scale / 20);
        assert_int_equal(q.codes[2 * C + 17], got.zero); /* the code of 0 */
        for (int64_t r = 0; r < R; r++)
            for (int64_t k = 0; k < q.n_groups; k++)
                if (r != 2 || k != gi)
                    assert_true(xf_qweight_grid(&q, r, k).scale ==
                                xf_qweight_grid(&q0, r, k).scale);
        float dq[R * C];
        xf_qweight_dequantize(&q, dq);
        assert_true(dq[2 * C + 17] == 5.0f);
        xf_qweight_free(&q);
        xf_qweight_free(&q0);
        free(W);
    }
}

/* GPTQ: the same with a real Hessian; the planted weight is kept (at the
 * value the sweep has brought it to: the earlier columns' errors were
 * propagated into it) and its row's grid is fitted without it (at column 0
 * nothing has been propagated yet, so that is the fit of the original row
 * without it). */
static void test_gptq_planted_outlier_excluded(void **state)
{
    (void)state;
    enum { R = 8, C = 64, N = 256 };
    float *X = xf_test_correlated_inputs(N, C, 31);
    double *H = xf_test_hessian(X, N, C);
    for (int v = 0; v < 2; v++) {
        float *W0 = normal_weights(R * C, 0.05f, 41);
        W0[3 * C + 40] = 3.0f;
        xf_gptq_params p;
        xf_gptq_params_default(&p);
        p.act_order = v == 1;
        p.outliers = 1.0 / (R * C);
        float *W = xf_test_copy_f32(W0, R * C);
        xf_qweight q;
        xf_error err = {0};
        assert_int_equal(xf_gptq_solve(W, R, C, H, &p, &q, NULL, "t", &err), 0);
        assert_int_equal(q.outliers.nnz, 1);
        assert_int_equal(q.outliers.row_ptr[3], 0);
        assert_int_equal(q.outliers.row_ptr[4], 1);
        assert_int_equal(q.outliers.col[0], 40);
        assert_true(q.outliers.val[0] == W[3 * C + 40]);
        assert_true(f16r(W[3 * C + 40]) == W[3 * C + 40]);
        assert_true(fabsf(W[3 * C + 40] - 3.0f) < 0.5f);
        float rest[C];
        int m = 0;
        for (int j = 0; j < C; j++)
            if (j != 40)
                rest[m++] = W0[3 * C + j];
        xf_grid want = xf_grid_fit(&p.grid, rest, m), got = xf_qweight_grid(&q, 3, 0);
        assert_true(got.scale == want.scale);
        assert_int_equal(got.zero, want.zero);
        /* W holds exactly what the stored weight dequantizes to */
        float dq[R * C];
        xf_qweight_dequantize(&q, dq);
        assert_memory_equal(dq, W, sizeof dq);
        xf_qweight_free(&q);
        free(W);
        free(W0);
    }
    free(X);
    free(H);
}

/* Planted outliers: with 1 % kept in fp16, GPTQ's layer output error drops
 * (by far); RTN, which weighs every error alike, finds (almost) all planted
 * ones; GPTQ weighs them by 1 / U_jj^2, so a planted weight on an input
 * that hardly varies can rank below ordinary ones, as it should. */
static void test_gptq_outliers_lower_loss(void **state)
{
    (void)state;
    enum { ROWS = 32, COLS = 128, N = 384, PLANT = 41 }; /* 41 = round(1 % of 4096) */
    for (uint64_t seed = 1; seed <= 3; seed++) {
        float *X = xf_test_correlated_inputs(N, COLS, 500 + seed);
        double *H = xf_test_hessian(X, N, COLS);
        float *W = normal_weights(ROWS * COLS, 0.05f, 600 + seed);
        uint64_t rng = 700 + seed;
        int planted[PLANT];
        for (int k = 0; k < PLANT; k++) {
            int i;
            bool dup;
            do {
                i = (int)(xf_test_rand_u64(&rng) % (ROWS * COLS));
                dup = false;
                for (int t = 0; t < k; t++)
                    dup = dup || planted[t] == i;
            } while (dup);
            planted[k] = i;
            W[i] = (xf_test_rand_uniform(&rng) < 0.5f ? -1.0f : 1.0f) *
                   (0.5f + xf_test_rand_uniform(&rng));
        }
        for (int v = 0; v < 2; v++) {
            xf_gptq_params p;
            xf_gptq_params_default(&p);
            p.grid.bits = 3;
            p.group = v ? 32 : -1;
            p.act_order = v;
            float *Q0 = xf_test_copy_f32(W, ROWS * COLS), *Q1 = xf_test_copy_f32(W, ROWS * COLS);
            xf_qweight a, b;
            assert_int_equal(xf_gptq_solve(Q0, ROWS, COLS, H, &p, &a, NULL, "l", NULL), 0);
            p.outliers = 0.01;
            assert_int_equal(xf_gptq_solve(Q1, ROWS, COLS, H, &p, &b, NULL, "l", NULL), 0);
            assert_int_equal(b.outliers.nnz, PLANT);
            xf_rtn_params rp = {.grid = p.grid, .group = p.group, .outliers = 0.01};
            xf_qweight c;
            assert_int_equal(xf_rtn_quantize(W, ROWS, COLS, &rp, &c, "l", NULL), 0);
            int found = 0, found_rtn = 0;
            for (int k = 0; k < PLANT; k++) {
                int r = planted[k] / COLS, col = planted[k] % COLS;
                for (int32_t e = b.outliers.row_ptr[r]; e < b.outliers.row_ptr[r + 1]; e++)
                    found += b.outliers.col[e] == col;
                for (int32_t e = c.outliers.row_ptr[r]; e < c.outliers.row_ptr[r + 1]; e++)
                    found_rtn += c.outliers.col[e] == col;
            }
            double e0 = output_error(W, Q0, X, ROWS, COLS, N);
            double e1 = output_error(W, Q1, X, ROWS, COLS, N);
            if (seed == 1)
                print_message("%s: GPTQ output error %.4g without, %.4g with 1 %% outliers; "
                              "planted found: GPTQ %d, RTN %d of %d\n",
                              v ? "g32 act-order" : "per channel", e0, e1, found, found_rtn,
                              PLANT);
            assert_true(e1 < 0.5 * e0);
            assert_true(found >= PLANT / 2);
            assert_true(found_rtn >= PLANT * 9 / 10);
            xf_qweight_free(&a);
            xf_qweight_free(&b);
            xf_qweight_free(&c);
            free(Q0);
            free(Q1);
        }
        free(X);
        free(H);
        free(W);
    }
}

/* ---- through the .xfq ---- */

/* 100 % outliers: the file reproduces fp16 of every quantized weight
 * exactly (RTN: llama with its untied head, and GPT-2, whose HF Conv1D
 * weights are transposed on the way in). */
static void test_rtn_all_outliers_reproduce_fp16(void **state)
{
    (void)state;
    char *llama = random_llama("llama-all", 3), *gpt2 = random_gpt2("gpt2-all", 4);
    char *a = tmp_path("rtn-all-llama.xfq"), *b = tmp_path("rtn-all-gpt2.xfq");
    assert_int_equal(rtn_file(llama, a, 1.0, true, NULL), 0);
    expect_fp16_of_source(llama, a, true);
    assert_int_equal(rtn_file(gpt2, b, 1.0, false, NULL), 0);
    expect_fp16_of_source(gpt2, b, false);
    free(llama);
    free(gpt2);
    free(a);
    free(b);
}

/* The same for GPTQ (per channel; act-order with groups, stored permuted;
 * static groups): every outlier keeps its value, nothing is propagated. */
static void test_gptq_all_outliers_reproduce_fp16(void **state)
{
    (void)state;
    char *src = random_llama("llama-gptq-all", 5);
    for (int v = 0; v < 3; v++) {
        xf_gptq_params p;
        xf_gptq_params_default(&p);
        p.grid.bits = 3;
        p.group = v == 0 ? -1 : 16;
        p.act_order = v > 0;
        p.static_groups = v == 2;
        p.outliers = 1.0;
        char name[64];
        snprintf(name, sizeof name, "gptq-all-%d.xfq", v);
        char *out = tmp_path(name);
        gptq_file(src, out, &p);
        expect_fp16_of_source(src, out, false);
        free(out);
    }
    free(src);
}

/* No outliers: the same bytes as without the option; a fraction that
 * rounds to 0 entries everywhere, too. Same inputs, same bytes with them. */
static void test_frac0_byte_identical(void **state)
{
    (void)state;
    char *src = random_llama("llama-frac0", 6);
    char *a = tmp_path("f0-a.xfq"), *b = tmp_path("f0-b.xfq"), *c = tmp_path("f0-c.xfq");
    assert_int_equal(rtn_file(src, a, 0.0, true, NULL), 0);
    xf_loaded_model m;
    xf_error err = {0};
    assert_int_equal(xf_model_open(&m, src, &err), 0);
    xf_quant_options o;
    xf_quant_options_defaults(&o, XF_METHOD_RTN); /* never touches .outliers */
    o.grid.bits = 3;
    o.group = 32;
    o.quantize_head = true;
    assert_int_equal(xf_quantize_model(&m, &o, NULL, b, NULL, NULL, &err), 0);
    xf_model_close(&m);
    assert_true(xf_test_files_equal(a, b));
    xfq_file f;
    assert_int_equal(xfq_open(&f, a, 0, &err), 0);
    for (size_t i = 0; i < f.tensors.n; i++)
        assert_null(strstr(f.tensors.items[i].name, ".outliers."));
    assert_null(json_object_get(json_object_get(f.meta, "recipe"), "outliers"));
    xfq_close(&f);

    /* the smallest tensor has 64 * 64 weights: 1e-5 of it rounds to 0 */
    assert_int_equal(rtn_file(src, c, 1e-5, true, NULL), 0);
    assert_int_equal(xfq_open(&f, c, 0, &err), 0);
    for (size_t i = 0; i < f.tensors.n; i++)
        assert_null(strstr(f.tensors.items[i].name, ".outliers."));
    xfq_close(&f);

    /* with outliers: deterministic */
    assert_int_equal(rtn_file(src, a, 0.01, true, NULL), 0);
    assert_int_equal(rtn_file(src, b, 0.01, true, NULL), 0);
    assert_true(xf_test_files_equal(a, b));

    /* GPTQ solve: outliers 0 is the plain solve, bit for bit */
    enum { R = 16, C = 64, N = 200 };
    float *X = xf_test_correlated_inputs(N, C, 77);
    double *H = xf_test_hessian(X, N, C);
    float *W = normal_weights(R * C, 0.1f, 78);
    for (int v = 0; v < 2; v++) {
        xf_gptq_params p;
        xf_gptq_params_default(&p);
        p.group = v ? 16 : -1;
        p.act_order = v;
        float *W1 = xf_test_copy_f32(W, R * C), *W2 = xf_test_copy_f32(W, R * C);
        xf_qweight q1, q2;
        assert_int_equal(xf_gptq_solve(W1, R, C, H, &p, &q1, NULL, "l", NULL), 0);
        p.outliers = 1e-4; /* round(0.1) = 0 entries */
        assert_int_equal(xf_gptq_solve(W2, R, C, H, &p, &q2, NULL, "l", NULL), 0);
        assert_memory_equal(W1, W2, sizeof(float) * R * C);
        assert_memory_equal(q1.codes, q2.codes, R * C);
        assert_memory_equal(q1.scales, q2.scales, sizeof(float) * R * (size_t)q1.n_groups);
        assert_null(q2.outliers.row_ptr);
        xf_qweight_free(&q1);
        xf_qweight_free(&q2);
        free(W1);
        free(W2);
    }
    free(X);
    free(H);
    free(W);
    free(src);
    free(a);
    free(b);
    free(c);
}

/* Bits per weight count the side table, by hand: 4 (rows + 1) + 6 nnz
 * bytes on top of the packed record, in the library, the quantize summary
 * and `xfquant info`. */
static void test_bpw_accounting(void **state)
{
    (void)state;
    const double frac = 0.02;
    char *src = random_llama("llama-bpw", 8), *out = tmp_path("bpw.xfq");
    json_t *summary = NULL;
    assert_int_equal(rtn_file(src, out, frac, true, &summary), 0);
    xfq_file f;
    xf_error err = {0};
    assert_int_equal(xfq_open(&f, out, 0, &err), 0);
    double bytes = 0, params = 0;
    int64_t total_nnz = 0, plain_params = 0;
    const json_t *stats = json_object_get(f.meta, "tensor_stats");
    for (size_t i = 0; i < f.tensors.n; i++) {
        const xf_tensor *t = &f.tensors.items[i];
        size_t wl;
        if (xfq_outliers_parse_name(t->name, &wl) >= 0)
            continue;
        plain_params += xf_tensor_numel(t);
        if (!xf_dtype_is_packed(t->dtype))
            continue;
        const int64_t rows = t->shape[0], cols = t->shape[1];
        const int64_t nnz = llround(frac * (double)(rows * cols));
        xfq_packed_layout lay;
        assert_int_equal(xfq_packed_layout_compute(rows, cols, 3, 32, true, false, &lay, "t", NULL),
                         0);
        assert_int_equal(t->nbytes, lay.total_bytes);
        xf_sparse_outliers o;
        xfq_outliers_find(&f.tensors, t->name, &o);
        assert_non_null(o.row_ptr);
        assert_int_equal(xfq_outliers_nnz(&o), nnz);
        assert_int_equal(o.row_ptr->nbytes, 4 * (rows + 1));
        assert_int_equal(o.col->nbytes, 4 * nnz);
        assert_int_equal(o.val->nbytes, 2 * nnz);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(stats, t->name),
                                                            "outliers")),
                         nnz);
        bytes += (double)lay.total_bytes + 4.0 * (double)(rows + 1) + 6.0 * (double)nnz;
        params += (double)(rows * cols);
        total_nnz += nnz;
    }
    const double want = 8.0 * bytes / params;
    print_message("bits per weight: %.6f (%lld outliers)\n", want, (long long)total_nnz);
    assert_true(fabs(xfq_packed_bits_per_weight(&f.tensors) - want) < 1e-9);
    assert_true(fabs(json_real_value(json_object_get(summary, "bits_per_weight")) - want) < 1e-9);
    xfq_close(&f);
    json_decref(summary);

    run_result r = run("info %s --json", out);
    assert_int_equal(r.code, 0);
    json_t *j = json_loads(r.out, 0, NULL);
    assert_non_null(j);
    assert_true(fabs(json_real_value(json_object_get(j, "packed_bits_per_weight")) - want) < 1e-9);
    assert_int_equal(json_integer_value(json_object_get(j, "outliers")), total_nnz);
    assert_int_equal(json_integer_value(json_object_get(j, "n_params")), plain_params);
    size_t k;
    const json_t *e;
    int tables = 0;
    json_array_foreach(json_object_get(j, "tensors"), k, e)
    {
        const char *owner = json_string_value(json_object_get(e, "outlier_table_of"));
        if (owner) {
            tables++;
            assert_null(json_object_get(e, "bits_per_weight"));
        } else if (json_object_get(e, "group_size")) {
            double n = (double)json_integer_value(json_object_get(e, "params"));
            double b = (double)(json_integer_value(json_object_get(e, "bytes")) +
                                json_integer_value(json_object_get(e, "outlier_bytes")));
            assert_true(json_integer_value(json_object_get(e, "outliers")) > 0);
            assert_true(fabs(json_real_value(json_object_get(e, "bits_per_weight")) - 8 * b / n) <
                        1e-9);
        }
    }
    assert_int_equal(tables, 3 * (2 * 7 + 1)); /* 7 linears a layer, 2 layers, the head */
    json_decref(j);
    result_free(&r);
    r = run("info %s", out);
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.out, "fp16 outliers"));
    assert_non_null(strstr(r.out, "(outlier table)"));
    char line[128];
    snprintf(line, sizeof line, "outliers: %lld weights kept in fp16", (long long)total_nnz);
    assert_non_null(strstr(r.out, line));
    result_free(&r);
    free(src);
    free(out);
}

/* ---- malformed side tables ---- */

/* The parts of an .xfq image needed to patch a tensor and re-seal CRCs. */
typedef struct image {
    char *buf;
    size_t len;
    xfq_file_header h;
    xfq_tensor_record *recs; /* points into buf */
    char *pool;
} image;

static void image_load(image *im, const char *path)
{
    assert_int_equal(xf_read_file(path, &im->buf, &im->len, NULL), 0);
    memcpy(&im->h, im->buf, sizeof im->h);
    im->recs = (xfq_tensor_record *)(void *)(im->buf + im->h.table_offset);
    im->pool = im->buf + im->h.table_offset + im->h.n_tensors * sizeof(xfq_tensor_record);
}

static xfq_tensor_record *image_find(image *im, const char *name)
{
    for (uint32_t i = 0; i < im->h.n_tensors; i++) {
        xfq_tensor_record *r = &im->recs[i];
        if (r->name_len == strlen(name) && !memcmp(im->pool + r->name_offset, name, r->name_len))
            return r;
    }
    fail_msg("no tensor %s", name);
    return NULL;
}

static void *image_data(image *im, const xfq_tensor_record *r)
{
    return im->buf + im->h.data_offset + r->offset;
}

/* Recomputes the tensor CRCs and the header CRC, writes to path. */
static void image_save(image *im, const char *path)
{
    for (uint32_t i = 0; i < im->h.n_tensors; i++)
        im->recs[i].crc32 = xfq_crc32(0, image_data(im, &im->recs[i]), im->recs[i].nbytes);
    uint32_t c = xfq_crc32(0, im->buf + im->h.meta_offset, im->h.meta_size);
    c = xfq_crc32(c, im->recs, im->h.n_tensors * sizeof(xfq_tensor_record));
    c = xfq_crc32(c, im->pool, im->h.names_size);
    im->h.header_crc = c;
    memcpy(im->buf, &im->h, sizeof im->h);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(im->buf, 1, im->len, fp), im->len);
    fclose(fp);
    free(im->buf);
}

/* xfq_open, the model loader and `xfquant info` refuse path with one line
 * naming the file, the tensor and `what`. */
static void expect_refused(const char *path, const char *tensor, const char *what)
{
    xfq_file f;
    xf_error err = {0};
    assert_int_equal(xfq_open(&f, path, XFQ_OPEN_NO_CRC, &err), -1);
    print_message("refused: %s\n", err.msg);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, tensor));
    assert_non_null(strstr(err.msg, what));
    xf_loaded_model m;
    assert_int_equal(xf_model_open(&m, path, &err), -1);
    run_result r = run("info %s", path);
    assert_int_equal(r.code, 1);
    assert_int_equal(count_lines(r.err), 1);
    assert_non_null(strstr(r.err, tensor));
    assert_non_null(strstr(r.err, what));
    result_free(&r);
}

static void test_bad_side_tables_refused(void **state)
{
    (void)state;
    char *src = random_llama("llama-bad", 9), *good = tmp_path("good.xfq");
    assert_int_equal(rtn_file(src, good, 0.05, false, NULL), 0);
    const char *w = "model.layers.0.mlp.down_proj.weight"; /* [64, 96] */
    char rp[128], cl[128], vl[128];
    snprintf(rp, sizeof rp, "%s.outliers.row_ptr", w);
    snprintf(cl, sizeof cl, "%s.outliers.col", w);
    snprintf(vl, sizeof vl, "%s.outliers.val", w);
    char *bad = tmp_path("bad.xfq");
    image im;

    /* row_ptr decreasing */
    image_load(&im, good);
    int32_t *ptr = image_data(&im, image_find(&im, rp));
    assert_true(ptr[2] > 0 && ptr[3] > ptr[2]);
    ptr[2] = ptr[3] + 1 <= ptr[64] ? ptr[3] + 1 : ptr[3];
    ptr[3] = ptr[2] - 1;
    image_save(&im, bad);
    expect_refused(bad, rp, "decreases");

    /* column out of range */
    image_load(&im, good);
    int32_t *col = image_data(&im, image_find(&im, cl));
    col[0] = 96;
    image_save(&im, bad);
    expect_refused(bad, cl, "outside [0, 96)");

    /* columns not increasing within a row */
    image_load(&im, good);
    ptr = image_data(&im, image_find(&im, rp));
    col = image_data(&im, image_find(&im, cl));
    int r = 0;
    while (ptr[r + 1] - ptr[r] < 2)
        r++;
    int32_t t = col[ptr[r]];
    col[ptr[r]] = col[ptr[r] + 1];
    col[ptr[r] + 1] = t;
    image_save(&im, bad);
    expect_refused(bad, cl, "not strictly increasing");

    /* a NaN value */
    image_load(&im, good);
    uint16_t *val = image_data(&im, image_find(&im, vl));
    val[1] = 0x7e00;
    image_save(&im, bad);
    expect_refused(bad, vl, "NaN");

    /* missing val: renamed to ...vax (same length, still sorted) */
    image_load(&im, good);
    xfq_tensor_record *rv = image_find(&im, vl);
    im.pool[rv->name_offset + rv->name_len - 1] = 'x';
    image_save(&im, bad);
    expect_refused(bad, rp, "outliers.val is missing");

    /* the writer refuses the same, and leaves nothing behind */
    xfq_file f;
    xf_error err = {0};
    assert_int_equal(xfq_open(&f, good, 0, &err), 0);
    xf_tensor *list = malloc(f.tensors.n * sizeof *list);
    size_t n = 0;
    for (size_t i = 0; i < f.tensors.n; i++)
        if (strcmp(f.tensors.items[i].name, vl) != 0)
            list[n++] = f.tensors.items[i];
    char *wdir = tmp_path("wdir");
    assert_int_equal(mkdir(wdir, 0755), 0);
    char *wout = malloc(strlen(wdir) + 16);
    sprintf(wout, "%s/w.xfq", wdir);
    assert_int_equal(xfq_write(wout, f.meta, list, n, &err), -1);
    assert_non_null(strstr(err.msg, "outliers.val is missing"));
    n = 0;
    for (size_t i = 0; i < f.tensors.n; i++) /* a table without its weight */
        if (strcmp(f.tensors.items[i].name, w) != 0)
            list[n++] = f.tensors.items[i];
    assert_int_equal(xfq_write(wout, f.meta, list, n, &err), -1);
    assert_non_null(strstr(err.msg, "which is not in the file"));
    /* the views carry the tables: a weight whose table is left out would
     * lose its outliers, and a table its view does not carry would be
     * ignored by every conversion; both refused */
    n = 0;
    for (size_t i = 0; i < f.tensors.n; i++)
        if (!strstr(f.tensors.items[i].name, ".outliers.") ||
            strncmp(f.tensors.items[i].name, w, strlen(w)) != 0)
            list[n++] = f.tensors.items[i];
    assert_int_equal(xfq_write(wout, f.meta, list, n, &err), -1);
    assert_non_null(strstr(err.msg, "no outlier side table"));
    assert_non_null(strstr(err.msg, w));
    n = 0;
    for (size_t i = 0; i < f.tensors.n; i++) {
        list[n] = f.tensors.items[i];
        if (strcmp(list[n].name, w) == 0)
            memset(&list[n].packed.outliers, 0, sizeof list[n].packed.outliers);
        n++;
    }
    assert_int_equal(xfq_write(wout, f.meta, list, n, &err), -1);
    assert_non_null(strstr(err.msg, "not the one its packed view carries"));
    assert_int_equal(xf_test_dir_entries(wdir), 0);
    xfq_close(&f);
    free(list);
    free(wout);
    free(wdir);
    free(bad);
    free(good);
    free(src);
}

/* xf_tensor_to_f32 on a packed weight read from an .xfq includes its
 * outliers: the .xfq reader attaches each side table to its weight's view
 * (before, the table hung off the model binding, and the plain conversion
 * silently returned the dense values). Checked entry by entry against the
 * side table's own bytes, for the whole tensor and row by row. */
static void test_xfq_view_carries_outliers(void **state)
{
    (void)state;
    char *src = random_llama("llama-view", 12), *path = tmp_path("view.xfq");
    assert_int_equal(rtn_file(src, path, 0.05, true, NULL), 0);
    xfq_file f;
    xf_error err = {0};
    if (xfq_open(&f, path, 0, &err) != 0)
        fail_msg("%s", err.msg);
    size_t tables = 0;
    for (size_t i = 0; i < f.tensors.n; i++) {
        const xf_tensor *w = &f.tensors.items[i];
        if (!xf_dtype_is_packed(w->dtype))
            continue;
        xf_sparse_outliers o;
        xfq_outliers_find(&f.tensors, w->name, &o);
        assert_non_null(o.row_ptr); /* 5 % of every quantized weight, the head included */
        tables++;
        const int64_t rows = w->shape[0], cols = w->shape[1];
        float *d = malloc((size_t)(rows * cols) * sizeof *d);
        float *bare = malloc((size_t)(rows * cols) * sizeof *bare);
        float *row = malloc((size_t)cols * sizeof *row);
        assert_int_equal(xf_tensor_to_f32(w, d, &err), 0);
        xf_tensor dense = *w;
        memset(&dense.packed.outliers, 0, sizeof dense.packed.outliers);
        assert_int_equal(xf_tensor_to_f32(&dense, bare, &err), 0);
        const int32_t *ptr = o.row_ptr->data, *col = o.col->data;
        const uint16_t *val = o.val->data;
        int64_t differ = 0, k = 0;
        for (int64_t r = 0; r < rows; r++) {
            assert_int_equal(xf_tensor_row_to_f32(w, r, row, &err), 0);
            assert_memory_equal(row, d + r * cols, (size_t)cols * sizeof *row);
            for (int64_t c = 0; c < cols; c++) {
                float *x = &d[r * cols + c];
                if (k < ptr[r + 1] && col[k] == c) {
                    assert_true(same_bits(*x, xf_f16_to_f32(val[k])));
                    differ += !same_bits(*x, bare[r * cols + c]);
                    k++;
                } else {
                    assert_true(same_bits(*x, bare[r * cols + c])); /* others: the grid's */
                }
            }
        }
        assert_int_equal(k, xfq_outliers_nnz(&o));
        assert_true(differ > 0); /* the dense values alone would fail the checks above */
        free(d);
        free(bare);
        free(row);
    }
    assert_true(tables > 0);
    xfq_close(&f);
    free(path);
    free(src);
}

/* ---- CLI ---- */

static void test_cli_outliers(void **state)
{
    (void)state;
    char *src = random_llama("llama-cli", 10), *out = tmp_path("cli.xfq");
    const char *bad[] = {"101%", "1.5", "-1%", "abc", "%", "0.5%%"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        run_result r = run("rtn --bits 4 --outliers '%s' %s %s", bad[i], src, out);
        assert_int_equal(r.code, 2);
        assert_non_null(strstr(r.err, "--outliers"));
        result_free(&r);
    }
    run_result r = run("rtn --bits 3 --group 32 --outliers 0.5%% %s %s --json", src, out);
    assert_int_equal(r.code, 0);
    json_t *j = json_loads(r.out, 0, NULL);
    assert_non_null(j);
    assert_true(json_real_value(json_object_get(json_object_get(j, "recipe"), "outliers")) ==
                0.005);
    json_decref(j);
    result_free(&r);
    /* the fraction form means the same */
    char *out2 = tmp_path("cli2.xfq");
    r = run("rtn --bits 3 --group 32 --outliers 0.005 %s %s", src, out2);
    assert_int_equal(r.code, 0);
    result_free(&r);
    assert_true(xf_test_files_equal(out, out2) == false); /* the command line differs ... */
    xfq_file a, b;
    xf_error err = {0};
    assert_int_equal(xfq_open(&a, out, 0, &err), 0);
    assert_int_equal(xfq_open(&b, out2, 0, &err), 0);
    assert_int_equal(a.tensors.n, b.tensors.n); /* ... the tensors do not */
    for (size_t i = 0; i < a.tensors.n; i++) {
        assert_int_equal(a.tensors.items[i].nbytes, b.tensors.items[i].nbytes);
        assert_memory_equal(a.tensors.items[i].data, b.tensors.items[i].data,
                            a.tensors.items[i].nbytes);
    }
    xfq_close(&a);
    xfq_close(&b);
    free(out2);
    free(out);
    free(src);
}

/* GPTQ through the CLI on the shared stories260K: 100 % outliers is fp16. */
static void test_cli_gptq_shared_all_outliers(void **state)
{
    (void)state;
    XF_TEST_REQUIRE_SHARED(model, "models/stories260K");
    char model_dir[4096];
    snprintf(model_dir, sizeof model_dir, "%s", model);
    XF_TEST_REQUIRE_SHARED(calib, "data/tinystories/calib.txt");
    char *out = tmp_path("g-all.xfq");
    run_result r = run("gptq --bits 3 --group 32 --nsamples 4 --seqlen 64 --outliers 100%% "
                       "--calib %s %s %s",
                       calib, model_dir, out);
    if (r.code != 0)
        fail_msg("%s", r.err);
    result_free(&r);
    expect_fp16_of_source(model_dir, out, false);
    free(out);
}

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_count_and_select),
        cmocka_unit_test(test_replacement_semantics),
        cmocka_unit_test(test_rtn_planted_outlier_excluded),
        cmocka_unit_test(test_gptq_planted_outlier_excluded),
        cmocka_unit_test(test_gptq_outliers_lower_loss),
        cmocka_unit_test(test_rtn_all_outliers_reproduce_fp16),
        cmocka_unit_test(test_gptq_all_outliers_reproduce_fp16),
        cmocka_unit_test(test_frac0_byte_identical),
        cmocka_unit_test(test_bpw_accounting),
        cmocka_unit_test(test_bad_side_tables_refused),
        cmocka_unit_test(test_xfq_view_carries_outliers),
        cmocka_unit_test(test_cli_outliers),
        cmocka_unit_test(test_cli_gptq_shared_all_outliers),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
