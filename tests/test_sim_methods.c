/* QRazor (sim/razor_quant, quant/weights/razor_weights), LogQuant and the
 * recent window (sim/kv_keep, the kv_keep forward hook in
 * model/attention.c), and their scheme JSON.
 *
 * Razoring against a scalar reference written here from the definition in
 * sim/razor_quant.h with its own tools (round half to even by floor, the
 * leading one by testing bits from the top, the kept bits by masking and
 * a half-up increment), bit for bit, on random data with outliers, every
 * base width and razor groups that do and do not divide the row; the
 * razor weight grid's dequantized values against the same reference with
 * fp16 row scales. LogQuant's closed form against the decoder's list
 * updates simulated here; the recent window's count and tokens. Attention
 * with kept tokens against a per-query fp64 reference reading a mixed K/V.
 * Scheme JSON: round trip, unknown values refused, other schemes' objects
 * without the new keys (their bytes unchanged). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/half.h"
#include "model/ops.h"
#include "model/forward.h"
#include "model/loader.h"
#include "model/model_edit.h"
#include "quant/transform/repquant.h"
#include "quant/weights/gptq.h"
#include "quant/weights/razor_weights.h"
#include "sim/act_hooks.h"
#include "sim/static_act.h"
#include "tests/support/cli_run.h"
#include "tests/support/random_model.h"
#include "sim/act_quant.h"
#include "sim/kv_keep.h"
#include "sim/razor_quant.h"
#include "tests/support/test_util.h"

/* ---- razoring reference --------------------------------------------------- */

static float ref_round(float v)
{
    float f = floorf(v), d = v - f;
    if (d > 0.5f || (d == 0.5f && fmodf(f, 2.0f) != 0.0f))
        f += 1.0f;
    return f;
}

/* the highest set bit of a > 0, by testing from bit 30 down */
static int ref_leading_one(long a)
{
    for (int b = 30; b >= 0; b--)
        if (a & (1L << b))
            return b;
    return -1;
}

/* the magnitude a razored at shift s, K bits: drop the bits below s,
 * add one at bit s when bit s-1 was set, saturate at K ones */
static long ref_razor_mag(long a, int s, int K)
{
    long kept = a & ~((1L << s) - 1);
    if (s > 0 && (a & (1L << (s - 1))))
        kept += 1L << s;
    long top = ((1L << K) - 1) << s;
    return kept > top ? top : kept;
}

static void ref_razor_base(float *x, int64_t n, int B, int K, int64_t R, float clip)
{
    float m = 0.0f;
    for (int64_t i = 0; i < n; i++)
        m = fabsf(x[i]) > m ? fabsf(x[i]) : m;
    if (m == 0.0f)
        return;
    const float qmax = (float)(pow(2.0, B - 1) - 1.0);
    const float scale = clip * m / qmax;
    if (R <= 0 || R > n)
        R = n;
    long *q = malloc((size_t)n * sizeof *q);
    for (int64_t i = 0; i < n; i++) {
        float v = ref_round(x[i] / scale);
        v = v > qmax ? qmax : v < -qmax ? -qmax : v;
        q[i] = (long)v;
    }
    for (int64_t g0 = 0; g0 < n; g0 += R) {
        int64_t len = n - g0 < R ? n - g0 : R;
        int p = -1;
        for (int64_t i = 0; i < len; i++) {
            int b = q[g0 + i] ? ref_leading_one(labs(q[g0 + i])) : -1;
            p = b > p ? b : p;
        }
        int s = p - K + 1 > 0 ? p - K + 1 : 0;
        for (int64_t i = 0; i < len; i++) {
            long a = ref_razor_mag(labs(q[g0 + i]), s, K);
            x[g0 + i] = (float)(q[g0 + i] < 0 ? -a : a) * scale;
        }
    }
    free(q);
}

static void fill(float *x, int64_t n, uint64_t *st)
{
    for (int64_t i = 0; i < n; i++) {
        x[i] = xf_test_rand_normal(st);
        if (xf_test_rand_uniform(st) < 0.03f)
            x[i] *= 40.0f; /* outliers: other razor groups shift less */
        if (xf_test_rand_uniform(st) < 0.05f)
            x[i] = 0.0f;
    }
}

static void test_razor_bit_exact(void **state)
{
    (void)state;
    uint64_t st = 11;
    const int64_t n = 172; /* 16 does not divide it: a short last group */
    float *x = malloc(n * sizeof *x), *r = malloc(n * sizeof *r);
    const int bases[] = {8, 16, 6};
    const int64_t groups[] = {16, 4, 0, 172, 43};
    int64_t changed = 0;
    for (int trial = 0; trial < 40; trial++)
        for (size_t b = 0; b < 3; b++)
            for (size_t g = 0; g < 5; g++) {
                fill(x, n, &st);
                memcpy(r, x, n * sizeof *x);
                const float clip = trial % 2 ? 1.0f : 0.9f;
                const int K = bases[b] == 6 ? 3 : 4;
                assert_int_equal(xf_razor_row(x, n, 0, bases[b], K, groups[g], clip), 0);
                ref_razor_base(r, n, bases[b], K, groups[g], clip);
                for (int64_t i = 0; i < n; i++) {
                    if (memcmp(&x[i], &r[i], sizeof x[i]) != 0)
                        fail_msg("base %d group %lld value %lld: %.9g vs reference %.9g",
                                 bases[b], (long long)groups[g], (long long)i, x[i], r[i]);
                }
                changed++;
            }
    assert_true(changed > 0);
    /* base groups: two halves quantized independently */
    fill(x, n, &st);
    memcpy(r, x, n * sizeof *x);
    assert_int_equal(xf_razor_row(x, n, 86, 16, 4, 16, 1.0f), 0);
    ref_razor_base(r, 86, 16, 4, 16, 1.0f);
    ref_razor_base(r + 86, 86, 16, 4, 16, 1.0f);
    assert_memory_equal(x, r, n * sizeof *x);
    free(x);
    free(r);
}

/* hand-made integers: 0b1011011 (91) with K = 4 keeps 1011 at shift 3 and
 * rounds up on the 0 below: 1011 << 3 = 88; 0b1111111 saturates to 120 */
static void test_razor_hand_values(void **state)
{
    (void)state;
    int32_t q[4] = {91, -127, 5, 0};
    assert_int_equal(xf_razor_ints(q, 4, 4), 3);
    assert_int_equal(q[0], 88);
    assert_int_equal(q[1], -120);
    assert_int_equal(q[2], 8); /* 0b101 at shift 3: bit 2 set rounds up to 8 */
    assert_int_equal(q[3], 0);
    int32_t h[3] = {92, 12, -4}; /* 92 = 1011100: bit 2 set -> round up to 96 */
    assert_int_equal(xf_razor_ints(h, 3, 4), 3);
    assert_int_equal(h[0], 96);
    assert_int_equal(h[1], 16);
    assert_int_equal(h[2], -8);
    int32_t small[2] = {7, -3}; /* leading one at 2 < K: nothing dropped */
    assert_int_equal(xf_razor_ints(small, 2, 4), 0);
    assert_int_equal(small[0], 7);
    assert_int_equal(small[1], -3);
    /* all zero: values unchanged, no failure; a NaN fails */
    float z[3] = {0, 0, 0};
    assert_int_equal(xf_razor_row(z, 3, 0, 16, 4, 16, 1.0f), 0);
    assert_true(z[0] == 0.0f && z[1] == 0.0f && z[2] == 0.0f);
    float bad[2] = {1.0f, NAN};
    assert_int_equal(xf_razor_row(bad, 2, 0, 16, 4, 16, 1.0f), -1);
    assert_true(bad[0] == 1.0f);
}

static void test_razor_weights(void **state)
{
    (void)state;
    uint64_t st = 5;
    const int64_t rows = 7, cols = 40;
    float *W = malloc(rows * cols * sizeof *W), *dq = malloc(rows * cols * sizeof *dq);
    fill(W, rows * cols, &st);
    for (int64_t j = 0; j < cols; j++)
        W[3 * cols + j] = 0.0f; /* an all-zero row */
    xf_qweight q;
    xf_error err = {0};
    assert_int_equal(xf_razor_weights_quantize(W, rows, cols, 4, 16, &q, "w", &err), 0);
    xf_qweight_dequantize(&q, dq);
    for (int64_t r = 0; r < rows; r++) {
        /* reference: fp16 scale from the row max, then razor groups of 16 */
        float m = 0.0f;
        for (int64_t j = 0; j < cols; j++)
            m = fabsf(W[r * cols + j]) > m ? fabsf(W[r * cols + j]) : m;
        float s = xf_f16_to_f32(xf_f32_to_f16(m / 127.0f));
        float ref[40];
        for (int64_t j0 = 0; j0 < cols; j0 += 16) {
            int64_t len = cols - j0 < 16 ? cols - j0 : 16;
            long qi[16];
            int p = -1;
            for (int64_t j = 0; j < len; j++) {
                float v = s > 0.0f ? ref_round(W[r * cols + j0 + j] / s) : 0.0f;
                v = v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v;
                qi[j] = (long)v;
                int b = qi[j] ? ref_leading_one(labs(qi[j])) : -1;
                p = b > p ? b : p;
            }
            int sh = p - 3 > 0 ? p - 3 : 0;
            for (int64_t j = 0; j < len; j++) {
                long a = ref_razor_mag(labs(qi[j]), sh, 4);
                ref[j0 + j] = (float)(qi[j] < 0 ? -a : a) * s;
            }
        }
        for (int64_t j = 0; j < cols; j++)
            if (memcmp(&ref[j], &dq[r * cols + j], sizeof(float)) != 0)
                fail_msg("row %lld col %lld: %.9g vs reference %.9g", (long long)r,
                         (long long)j, dq[r * cols + j], ref[j]);
        /* stored codes stay within sign + 4 bits, scales are fp16 values */
        for (int64_t j = 0; j < cols; j++)
            assert_true(abs((int)q.codes[r * cols + j] - 128) <= 15);
        for (int64_t gi = 0; gi < q.n_groups; gi++) {
            float sc = q.scales[r * q.n_groups + gi];
            assert_true(xf_f16_to_f32(xf_f32_to_f16(sc)) == sc);
        }
    }
    assert_int_equal(xf_razor_weights_quantize(W, rows, cols, 8, 16, &q, "w", &err), -1);
    assert_non_null(strstr(err.msg, "w:"));
    xf_qweight_free(&q);
    free(W);
    free(dq);
}

/* ---- LogQuant ----------------------------------------------------------------- */

/* the decoder's updates, literally: R gets each token; when |R| > 2W the
 * first W of R merge into L (every other of L + them, or themselves) */
static void test_logquant_matches_decoder(void **state)
{
    (void)state;
    const int64_t T = 700;
    int64_t *L = malloc(T * sizeof *L), *R = malloc(T * sizeof *R), *tmp = malloc(2 * T * sizeof *tmp);
    int64_t *idx = malloc(T * sizeof *idx), *rec = malloc(T * sizeof *rec);
    const int64_t windows[] = {1, 2, 3, 4, 5, 7, 8, 16, 32};
    for (size_t w = 0; w < sizeof windows / sizeof *windows; w++) {
        const int64_t W = windows[w];
        int64_t nl = 0, nr = 0;
        for (int64_t t = 0; t < T; t++) {
            R[nr++] = t;
            if (nr > 2 * W) {
                int64_t nt = 0;
                for (int64_t i = 0; i < nl; i++)
                    tmp[nt++] = L[i];
                for (int64_t i = 0; i < W; i++)
                    tmp[nt++] = R[i];
                if (nl == 0) {
                    for (int64_t i = 0; i < W; i++)
                        L[i] = R[i];
                    nl = W;
                } else {
                    nl = 0;
                    for (int64_t i = 0; i < nt; i += 2)
                        L[nl++] = tmp[i];
                }
                memmove(R, R + W, (size_t)(nr - W) * sizeof *R);
                nr -= W;
            }
            /* L before R and both ascending: L + R is the sorted kept set */
            int64_t n = xf_kv_keep_log(t, W, idx);
            if (n != nl + nr)
                fail_msg("W %lld query %lld: %lld kept, decoder %lld", (long long)W,
                         (long long)t, (long long)n, (long long)(nl + nr));
            for (int64_t i = 0; i < nl; i++)
                assert_int_equal(idx[i], L[i]);
            for (int64_t i = 0; i < nr; i++)
                assert_int_equal(idx[nl + i], R[i]);
            assert_int_equal(xf_kv_keep_log_count(t, W), n);
            assert_true(n <= 3 * W);
            assert_int_equal(idx[0], 0); /* the first token always stays */
            /* the recent window: same count, the last tokens */
            int64_t m = xf_kv_keep_recent(t, W, rec);
            assert_int_equal(m, n);
            for (int64_t i = 0; i < m; i++)
                assert_int_equal(rec[i], t - m + 1 + i);
            assert_int_equal(xf_kv_keep_tokens(XF_KV_KEEP_NONE, W, t, rec), 0);
        }
    }
    free(L);
    free(R);
    free(tmp);
    free(idx);
    free(rec);
}

/* ---- attention with kept tokens --------------------------------------------- */

typedef struct {
    int64_t W;
    xf_kv_keep_kind kind;
} keep_user;

static int64_t keep_fn(void *user, int layer, int64_t i, int64_t *idx)
{
    (void)layer;
    const keep_user *u = user;
    return xf_kv_keep_tokens(u->kind, u->W, i, idx);
}

static void test_attention_keep_reference(void **state)
{
    (void)state;
    const int64_t T = 150, H = 4, KVH = 2, d = 8, qd = H * d, kvd = KVH * d;
    uint64_t st = 3;
    float *q = malloc(T * qd * sizeof *q), *k = malloc(T * kvd * sizeof *k);
    float *v = malloc(T * kvd * sizeof *v), *kq = malloc(T * kvd * sizeof *kq);
    float *vq = malloc(T * kvd * sizeof *vq), *out = malloc(T * qd * sizeof *out);
    float *plain = malloc(T * qd * sizeof *plain);
    float *scores = malloc(H * T * T * sizeof *scores);
    int64_t *idx = malloc(T * sizeof *idx);
    for (int64_t i = 0; i < T * qd; i++)
        q[i] = xf_test_rand_normal(&st);
    for (int64_t i = 0; i < T * kvd; i++) {
        k[i] = xf_test_rand_normal(&st);
        v[i] = xf_test_rand_normal(&st);
        kq[i] = k[i] + 0.3f * xf_test_rand_normal(&st); /* "quantized": perturbed */
        vq[i] = v[i] + 0.3f * xf_test_rand_normal(&st);
    }
    const xf_kv_keep_kind kinds[] = {XF_KV_KEEP_LOG, XF_KV_KEEP_RECENT};
    for (int kk = 0; kk < 2; kk++) {
        keep_user u = {.W = 8, .kind = kinds[kk]};
        xf_op_kv_keep keep = {k, v, keep_fn, &u, idx};
        xf_error err = {0};
        /* score chunks of 1 and of all heads give the same result */
        for (int64_t sh = 1; sh <= H; sh += H - 1) {
            assert_int_equal(xf_op_attention_keep(q, kq, vq, out, T, H, KVH, d, scores, sh, NULL,
                                                  NULL, 0, &keep, &err),
                             0);
            double worst = 0.0;
            for (int64_t h = 0; h < H; h++) {
                const int64_t kvh = h / (H / KVH);
                for (int64_t i = 0; i < T; i++) {
                    char kept[150] = {0};
                    int64_t n = xf_kv_keep_tokens(u.kind, u.W, i, idx);
                    for (int64_t t = 0; t < n; t++)
                        kept[idx[t]] = 1;
                    double s[150], mx = -1e300, sum = 0.0;
                    for (int64_t j = 0; j <= i; j++) {
                        const float *kj = (kept[j] ? k : kq) + j * kvd + kvh * d;
                        double dot = 0.0;
                        for (int64_t e = 0; e < d; e++)
                            dot += (double)q[i * qd + h * d + e] * kj[e];
                        s[j] = dot / sqrt((double)d);
                        mx = s[j] > mx ? s[j] : mx;
                    }
                    for (int64_t j = 0; j <= i; j++)
                        sum += (s[j] = exp(s[j] - mx));
                    for (int64_t e = 0; e < d; e++) {
                        double o = 0.0;
                        for (int64_t j = 0; j <= i; j++)
                            o += s[j] / sum * (kept[j] ? v : vq)[j * kvd + kvh * d + e];
                        double diff = fabs(o - out[i * qd + h * d + e]);
                        worst = diff > worst ? diff : worst;
                    }
                }
            }
            if (worst > 2e-5)
                fail_msg("kind %d score heads %lld: worst |diff| %g", kk, (long long)sh, worst);
        }
    }
    /* keep NULL: exactly the plain attention on the quantized K/V */
    xf_error err = {0};
    assert_int_equal(xf_op_attention_keep(q, kq, vq, out, T, H, KVH, d, scores, H, NULL, NULL, 0,
                                          NULL, &err),
                     0);
    xf_op_attention(q, kq, vq, plain, T, H, KVH, d, scores, H);
    assert_memory_equal(out, plain, T * qd * sizeof *out);
    free(q);
    free(k);
    free(v);
    free(kq);
    free(vq);
    free(out);
    free(plain);
    free(scores);
    free(idx);
}

/* ---- scheme JSON --------------------------------------------------------------- */

static void test_scheme_json(void **state)
{
    (void)state;
    xf_act_scheme s, back;
    xf_error err = {0};
    /* other schemes: none of the new keys, so their recipe bytes are unchanged */
    xf_act_scheme_quarot(&s, 4, 4);
    json_t *j = xf_act_scheme_to_json(&s);
    static const char *const new_keys[] = {"act_quant", "kv_quant", "razor_group",
                                           "razor_base_bits", "kv_razor_base_bits", "kv_keep",
                                           "kv_keep_window"};
    for (size_t i = 0; i < sizeof new_keys / sizeof *new_keys; i++)
        assert_null(json_object_get(j, new_keys[i]));
    assert_int_equal(json_object_size(j), 12);
    json_decref(j);
    /* razor + LogQuant round trip */
    s.act_kind = XF_ACT_KIND_RAZOR;
    s.kv_kind = XF_ACT_KIND_RAZOR;
    s.razor_group = 32;
    s.razor_base_bits = 12;
    s.kv_razor_base_bits = 6;
    s.kv_keep = XF_KV_KEEP_LOG;
    s.kv_keep_window = 24;
    assert_int_equal(xf_act_scheme_check(&s, "t", &err), 0);
    j = xf_act_scheme_to_json(&s);
    assert_int_equal(xf_act_scheme_from_json(&back, j, "t", &err), 0);
    assert_int_equal(back.act_kind, XF_ACT_KIND_RAZOR);
    assert_int_equal(back.kv_kind, XF_ACT_KIND_RAZOR);
    assert_int_equal(back.razor_group, 32);
    assert_int_equal(back.razor_base_bits, 12);
    assert_int_equal(back.kv_razor_base_bits, 6);
    assert_int_equal(back.kv_keep, XF_KV_KEEP_LOG);
    assert_int_equal(back.kv_keep_window, 24);
    /* unknown values are refused, naming the key */
    json_object_set_new(j, "act_quant", json_string("razr"));
    assert_int_equal(xf_act_scheme_from_json(&back, j, "t", &err), -1);
    assert_non_null(strstr(err.msg, "act_quant"));
    json_object_set_new(j, "act_quant", json_string("razor"));
    json_object_set_new(j, "kv_keep", json_string("logarithmic"));
    assert_int_equal(xf_act_scheme_from_json(&back, j, "t", &err), -1);
    assert_non_null(strstr(err.msg, "kv_keep"));
    json_object_set_new(j, "kv_keep", json_string("recent"));
    json_object_set_new(j, "kv_keep_window", json_integer(0));
    assert_int_equal(xf_act_scheme_from_json(&back, j, "t", &err), -1);
    assert_non_null(strstr(err.msg, "kv_keep_window"));
    json_object_set_new(j, "kv_keep_window", json_integer(4));
    json_object_set_new(j, "kv_bits", json_integer(0));
    assert_int_equal(xf_act_scheme_from_json(&back, j, "t", &err), -1);
    assert_non_null(strstr(err.msg, "kv_bits"));
    json_object_set_new(j, "kv_bits", json_integer(4));
    json_object_set_new(j, "razor_base_bits", json_integer(4)); /* keeps all 4: refused */
    assert_int_equal(xf_act_scheme_from_json(&back, j, "t", &err), -1);
    assert_non_null(strstr(err.msg, "razor"));
    json_decref(j);
}


/* ---- RepQuant ------------------------------------------------------------------ */

/* The re-parameterisation on its own: per channel, r_c Q~(x / r_c) equals
 * Q_c(x) except where x / s_c sits within fp rounding of a half-integer
 * (there the two fp32 quotients may round apart, one code apart). */
static void test_repquant_reparam_exact(void **state)
{
    (void)state;
    uint64_t st = 21;
    const int64_t N = 512, C = 24, O = 10;
    float *X = malloc(N * C * sizeof *X), *W = malloc(O * C * sizeof *W);
    double *G = calloc(C * C, sizeof *G);
    for (int64_t t = 0; t < N; t++)
        for (int64_t c = 0; c < C; c++)
            X[t * C + c] = xf_test_rand_normal(&st) * (float)(1 + c % 7) + (c % 3 ? 0.5f : -1.0f);
    for (int64_t i = 0; i < O * C; i++)
        W[i] = xf_test_rand_normal(&st);
    for (int64_t o = 0; o < O; o++)
        for (int64_t a = 0; a < C; a++)
            for (int64_t b = 0; b < C; b++)
                G[a * C + b] += (double)W[o * C + a] * W[o * C + b];
    float lo[24], hi[24], scale;
    int32_t zero[24];
    double r[24], l0, l1;
    xf_error err = {0};
    for (int bits = 4; bits <= 8; bits += 4) {
        assert_int_equal(xf_repquant_fit(X, N, C, G, bits, lo, hi, &l0, &l1, &err), 0);
        assert_true(l1 <= l0 && l1 < l0); /* the fit lowered the output error */
        /* the objective it reports is the output error of its bounds */
        double direct = 0.0;
        float *Q = xf_test_copy_f32(X, N * C), col[512];
        for (int64_t c = 0; c < C; c++) {
            for (int64_t t = 0; t < N; t++)
                col[t] = X[t * C + c];
            xf_repquant_channel_quant(col, N, lo[c], hi[c], bits);
            for (int64_t t = 0; t < N; t++)
                Q[t * C + c] = col[t];
        }
        for (int64_t t = 0; t < N; t++)
            for (int64_t o = 0; o < O; o++) {
                double y = 0.0;
                for (int64_t c = 0; c < C; c++)
                    y += (double)W[o * C + c] * ((double)Q[t * C + c] - X[t * C + c]);
                direct += y * y;
            }
        assert_true(fabs(direct - l1) <= 1e-6 * direct);
        xf_repquant_reparam(lo, hi, C, bits, &scale, zero, r);
        xf_static_act sa;
        assert_int_equal(xf_static_act_init(&sa, 1, C, bits, &err), 0);
        sa.scale[0][0] = scale;
        memcpy(sa.zero[0], zero, sizeof zero);
        int64_t flips = 0;
        float xr[24];
        for (int64_t t = 0; t < N; t++) {
            for (int64_t c = 0; c < C; c++)
                xr[c] = (float)((double)X[t * C + c] / r[c]);
            assert_int_equal(xf_static_act_row(&sa, 0, 0, xr), 0);
            for (int64_t c = 0; c < C; c++) {
                const double back = (double)xr[c] * r[c], ref = Q[t * C + c];
                const float sc = (hi[c] - lo[c]) / (float)((1 << bits) - 1);
                if (fabs(back - ref) <= 1e-5 * fmax(fabs(ref), sc))
                    continue;
                /* a flip: only next to a rounding tie, and one step */
                const double u = (double)X[t * C + c] / sc;
                assert_true(fabs(fabs(u - floor(u)) - 0.5) < 1e-4);
                assert_true(fabs(fabs(back - ref) - sc) <= 1e-4 * sc);
                flips++;
            }
        }
        assert_true(flips <= N * C / 1000);
        xf_static_act_free(&sa);
        free(Q);
    }
    free(X);
    free(W);
    free(G);
}

typedef struct {
    const float *gamma0, *gamma1; /* layer 0's attn norm before / after */
    const xf_static_act *sa;
    float *out;                   /* [T, C] the quantized layer-0 qkv input */
    int bits;
    bool per_channel;             /* the calibrated quantizer, else static */
} capture_q;

static int capture_qkv(void *user, int layer, xf_linear_role role, float *x, int64_t rows,
                       int64_t cols, xf_error *err)
{
    (void)err;
    capture_q *c = user;
    if (layer != 0 || role != XF_LIN_Q)
        return 0;
    if (c->per_channel) {
        /* Q_c with s_c = s~ r_c, r_c = gamma0 / gamma1, zero z_c */
        const float qmax = (float)((1 << c->bits) - 1);
        for (int64_t t = 0; t < rows; t++)
            for (int64_t j = 0; j < cols; j++) {
                const float sc = (float)((double)c->sa->scale[0][0] * c->gamma0[j] / c->gamma1[j]);
                const float z = (float)c->sa->zero[0][j];
                float q = rintf(x[t * cols + j] / sc) + z;
                q = q < 0 ? 0 : q > qmax ? qmax : q;
                x[t * cols + j] = (q - z) * sc;
            }
    }
    memcpy(c->out, x, (size_t)(rows * cols) * sizeof *x);
    return 0;
}

static float *tensor_copy(const xf_tensor *t)
{
    float *v = malloc((size_t)xf_tensor_numel(t) * sizeof *v);
    xf_error err = {0};
    assert_int_equal(xf_tensor_to_f32(t, v, &err), 0);
    return v;
}

/* On a random llama model: the fold is exact in full precision (logits),
 * and layer 0's qkv input quantized by the static quantizer on the folded
 * model, times r, is the per-channel quantizer's output on the original
 * model (to fp rounding); the evaluator's hooks apply the static one. */
static void test_repquant_model(void **state)
{
    (void)state;
    char *root = xf_test_tmpdir();
    xf_random_model_spec spec = {.family = "llama", .hidden = 32, .intermediate = 48, .layers = 2,
                                 .heads = 4, .kv_heads = 2, .vocab = 64, .max_pos = 64,
                                 .seed = 9};
    char path[512];
    snprintf(path, sizeof path, "%s/m", root);
    char *dir = xf_random_model_write(path, &spec);
    assert_non_null(dir);
    xf_loaded_model m;
    xf_error err = {0};
    assert_int_equal(xf_model_open(&m, dir, &err), 0);
    const int64_t T = 24, C = m.cfg.hidden, V = m.cfg.vocab;
    int32_t *cal = xf_test_random_tokens(4 * T, V, 3), *tok = xf_test_random_tokens(T, V, 4);
    float *g0 = tensor_copy(m.weights.layers[0].attn_norm.w);
    float *lg0 = malloc(T * V * sizeof *lg0), *lg1 = malloc(T * V * sizeof *lg1);
    float *qa = malloc(T * C * sizeof *qa), *qb = malloc(T * C * sizeof *qb);
    xf_runner run;
    assert_int_equal(xf_runner_init(&run, &m.weights, T, 0, &err), 0);
    assert_int_equal(xf_runner_forward(&run, tok, T, lg0, &err), 0);
    xf_runner_free(&run);

    xf_model_edit e;
    assert_int_equal(xf_model_edit_init(&e, &m, &err), 0);
    xf_static_act sa;
    json_t *rec = NULL;
    if (xf_repquant_model(&m, &e, cal, 4, T, 4, &sa, &rec, &err) != 0)
        fail_msg("%s", err.msg);
    assert_non_null(json_object_get(rec, "loss_ratio"));
    float *g1 = tensor_copy(m.weights.layers[0].attn_norm.w);
    bool moved = false;
    for (int64_t j = 0; j < C; j++)
        moved = moved || g1[j] != g0[j];
    assert_true(moved);
    /* full precision: the fold changes nothing but rounding */
    assert_int_equal(xf_runner_init(&run, &m.weights, T, 0, &err), 0);
    assert_int_equal(xf_runner_forward(&run, tok, T, lg1, &err), 0);
    assert_true(xf_test_rel_diff(lg1, lg0, T * V) < 1e-5);
    /* the static quantizer through the evaluator's hooks, captured after it */
    capture_q cs = {g0, g1, &sa, qb, 4, false};
    xf_forward_hooks inner = {.user = &cs, .on_linear_input = capture_qkv};
    xf_act_scheme s;
    xf_act_scheme_default(&s);
    s.act_bits = 4;
    s.act_inputs = (1u << XF_IN_QKV) | (1u << XF_IN_MLP);
    s.static_act = &sa;
    xf_act_hooks ah;
    assert_int_equal(xf_act_hooks_init(&ah, &s, &inner, &err), 0);
    assert_int_equal(xf_runner_forward_hooked(&run, tok, T, &ah.hooks, lg1, &err), 0);
    xf_runner_free(&run);
    xf_model_edit_free(&e);
    /* the original model with the per-channel quantizer */
    capture_q cp = {g0, g1, &sa, qa, 4, true};
    xf_forward_hooks hp = {.user = &cp, .on_linear_input = capture_qkv};
    assert_int_equal(xf_runner_init(&run, &m.weights, T, 0, &err), 0);
    assert_int_equal(xf_runner_forward_hooked(&run, tok, T, &hp, lg0, &err), 0);
    xf_runner_free(&run);
    int64_t flips = 0, quantized = 0;
    for (int64_t t = 0; t < T; t++)
        for (int64_t j = 0; j < C; j++) {
            const double r = (double)g0[j] / g1[j];
            const double back = qb[t * C + j] * r, ref = qa[t * C + j];
            const double step = (double)sa.scale[0][0] * r;
            if (fabs(back - ref) > 1e-4 * step) {
                assert_true(fabs(fabs(back - ref) - step) <= 1e-3 * step);
                flips++;
            }
            quantized += fabs(remainder(ref / step, 1.0)) < 1e-3; /* on the grid */
        }
    assert_int_equal(quantized, T * C);
    assert_true(flips <= T * C / 100);
    xf_act_hooks_free(&ah);
    xf_static_act_free(&sa);
    json_decref(rec);
    xf_model_close(&m);
    free(g0), free(g1), free(lg0), free(lg1), free(qa), free(qb), free(cal), free(tok), free(dir);
    xf_test_rmtree(root);
    free(root);
}

/* Through the forward pass: a window W with 2W >= T keeps every token, so
 * KV2 with LogQuant equals the unquantized KV; a small W changes the
 * logits, less than KV2 everywhere does; the recent window likewise. */
static void test_kv_keep_forward(void **state)
{
    (void)state;
    char *root = xf_test_tmpdir();
    xf_random_model_spec spec = {.family = "llama", .hidden = 32, .intermediate = 48, .layers = 2,
                                 .heads = 4, .kv_heads = 2, .vocab = 64, .max_pos = 128,
                                 .seed = 17};
    char path[512];
    snprintf(path, sizeof path, "%s/m", root);
    char *dir = xf_random_model_write(path, &spec);
    assert_non_null(dir);
    xf_loaded_model m;
    xf_error err = {0};
    assert_int_equal(xf_model_open(&m, dir, &err), 0);
    const int64_t T = 96, V = m.cfg.vocab;
    int32_t *tok = xf_test_random_tokens(T, V, 8);
    float *ref = malloc(T * V * sizeof *ref), *lg = malloc(T * V * sizeof *lg);
    float *uni = malloc(T * V * sizeof *uni);
    xf_runner run;
    assert_int_equal(xf_runner_init(&run, &m.weights, T, 0, &err), 0);
    assert_int_equal(xf_runner_forward(&run, tok, T, ref, &err), 0);
    xf_act_scheme s;
    xf_act_scheme_default(&s);
    s.kv_bits = 2;
    xf_act_hooks ah;
    assert_int_equal(xf_act_hooks_init(&ah, &s, NULL, &err), 0);
    assert_int_equal(xf_runner_forward_hooked(&run, tok, T, &ah.hooks, uni, &err), 0);
    const double d_uni = xf_test_rel_diff(uni, ref, T * V);
    assert_true(d_uni > 1e-3);
    s.kv_keep = XF_KV_KEEP_LOG;
    s.kv_keep_window = T / 2;
    assert_int_equal(xf_act_hooks_init(&ah, &s, NULL, &err), 0);
    assert_non_null(ah.hooks.kv_keep);
    assert_int_equal(xf_runner_forward_hooked(&run, tok, T, &ah.hooks, lg, &err), 0);
    assert_true(xf_test_rel_diff(lg, ref, T * V) < 1e-5);
    const xf_kv_keep_kind kinds[] = {XF_KV_KEEP_LOG, XF_KV_KEEP_RECENT};
    for (int k = 0; k < 2; k++) {
        s.kv_keep = kinds[k];
        s.kv_keep_window = 8;
        assert_int_equal(xf_act_hooks_init(&ah, &s, NULL, &err), 0);
        assert_int_equal(xf_runner_forward_hooked(&run, tok, T, &ah.hooks, lg, &err), 0);
        const double d = xf_test_rel_diff(lg, ref, T * V);
        assert_true(d > 1e-5 && d < d_uni);
        /* the first 2W queries keep everything: their logits are the reference's */
        assert_true(xf_test_rel_diff(lg, ref, 16 * V) < 1e-5);
    }
    xf_act_hooks_free(&ah);
    xf_runner_free(&run);
    xf_model_close(&m);
    free(tok), free(ref), free(lg), free(uni), free(dir);
    xf_test_rmtree(root);
    free(root);
}

/* End to end through the CLI on stories260K: the flags land in the .xfq
 * recipe and `ppl` applies them with no flag (its scheme line names
 * them); the combinations the pipeline refuses are errors. */
static void test_cli_end_to_end(void **state)
{
    (void)state;
    XF_TEST_REQUIRE_SHARED(model_s, "models/stories260K");
    char model[4096], text[4096], calib[4096];
    snprintf(model, sizeof model, "%s", model_s);
    XF_TEST_REQUIRE_SHARED(text_s, "data/tinystories/eval.txt");
    snprintf(text, sizeof text, "%s", text_s);
    XF_TEST_REQUIRE_SHARED(calib_s, "data/tinystories/calib.txt");
    snprintf(calib, sizeof calib, "%s", calib_s);
    char *tmp = xf_test_tmpdir();
    char out[4200];
    snprintf(out, sizeof out, "%s/r.xfq", tmp);
    xf_cli_result r = xf_cli_run(tmp,
                                 "rtn --bits 4 --group -1 --weight-grid razor --act-bits 4 "
                                 "--act-quant razor --kv-bits 2 --kv-keep log --kv-keep-window 8 "
                                 "%s %s",
                                 model, out);
    if (r.code != 0)
        fail_msg("rtn: %s", r.err);
    xf_cli_result_free(&r);
    r = xf_cli_run(tmp, "info %s --json", out);
    assert_int_equal(r.code, 0);
    json_t *info = json_loads(r.out, 0, NULL);
    xf_cli_result_free(&r);
    const json_t *rec = json_object_get(info, "recipe");
    const json_t *act = json_object_get(rec, "activations");
    assert_string_equal(json_string_value(json_object_get(act, "act_quant")), "razor");
    assert_string_equal(json_string_value(json_object_get(act, "kv_keep")), "log");
    assert_null(json_object_get(act, "kv_quant")); /* KV stays on the int grid */
    assert_string_equal(json_string_value(json_object_get(rec, "weight_grid")), "razor");
    json_decref(info);
    r = xf_cli_run(tmp, "ppl %s --text %s --max-windows 2 --seqlen 128", out, text);
    if (r.code != 0)
        fail_msg("ppl: %s", r.err);
    assert_non_null(strstr(r.out, "A4 razor base 16 rg16"));
    assert_non_null(strstr(r.out, "KV2 keep log W8"));
    xf_cli_result_free(&r);
    /* refused combinations */
    r = xf_cli_run(tmp, "rtn --bits 8 --kv-bits 2 --kv-keep log --rotate hadamard --rotate-qk %s "
                   "%s/bad.xfq", model, tmp);
    assert_int_not_equal(r.code, 0);
    assert_non_null(strstr(r.err, "--rotate-qk"));
    xf_cli_result_free(&r);
    r = xf_cli_run(tmp, "rtn --bits 4 --weight-grid razor %s %s/bad.xfq", model, tmp);
    assert_int_not_equal(r.code, 0);
    assert_non_null(strstr(r.err, "--group -1"));
    xf_cli_result_free(&r);
    r = xf_cli_run(tmp, "gptq --bits 4 --weight-grid razor --static-groups --group -1 --calib %s "
                   "%s %s/bad.xfq", calib, model, tmp);
    assert_int_not_equal(r.code, 0);
    assert_non_null(strstr(r.err, "--static-groups"));
    xf_cli_result_free(&r);
    /* GPTQ on the razor grid: recorded like rtn's */
    r = xf_cli_run(tmp, "gptq --bits 4 --group -1 --weight-grid razor --calib %s --nsamples 2 "
                   "--seqlen 64 %s %s/g.xfq", calib, model, tmp);
    if (r.code != 0)
        fail_msg("gptq razor: %s", r.err);
    xf_cli_result_free(&r);
    r = xf_cli_run(tmp, "rtn --bits 8 --act-bits 4 --act-quant razor --act-clip search --calib %s "
                   "%s %s/bad.xfq", calib, model, tmp);
    assert_int_not_equal(r.code, 0);
    assert_non_null(strstr(r.err, "integer grids"));
    xf_cli_result_free(&r);
    r = xf_cli_run(tmp, "rtn --bits 8 --kv-keep log %s %s/bad.xfq", model, tmp);
    assert_int_not_equal(r.code, 0);
    assert_non_null(strstr(r.err, "kv_bits"));
    xf_cli_result_free(&r);
    r = xf_cli_run(tmp, "rtn --bits 8 --act-bits 4 --repquant %s %s/bad.xfq", model, tmp);
    assert_int_equal(r.code, 2); /* needs --calib */
    xf_cli_result_free(&r);
    /* RepQuant: fitted, recorded, applied */
    snprintf(out, sizeof out, "%s/rq.xfq", tmp);
    r = xf_cli_run(tmp,
                   "rtn --bits 8 --group -1 --act-bits 4 --act-inputs qkv,mlp --act-asym "
                   "--repquant --calib %s --nsamples 2 --seqlen 64 %s %s",
                   calib, model, out);
    if (r.code != 0)
        fail_msg("rtn --repquant: %s", r.err);
    xf_cli_result_free(&r);
    r = xf_cli_run(tmp, "ppl %s --text %s --max-windows 2 --seqlen 128", out, text);
    if (r.code != 0)
        fail_msg("ppl: %s", r.err);
    assert_non_null(strstr(r.out, "RepQuant"));
    xf_cli_result_free(&r);
    xf_test_rmtree(tmp);
    free(tmp);
}

/* The recipe's "static_act": round trip; everything malformed refused,
 * naming the entry. */
static void test_static_act_json(void **state)
{
    (void)state;
    xf_model_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.n_layers = 2;
    cfg.hidden = 3;
    xf_static_act a, b;
    xf_error err = {0};
    assert_int_equal(xf_static_act_init(&a, 2, 3, 4, &err), 0);
    for (int k = 0; k < XF_STATIC_ACT_SLOTS; k++)
        for (int l = 0; l < 2; l++) {
            a.scale[k][l] = 0.1f * (float)(1 + k + 2 * l) / 3.0f;
            for (int c = 0; c < 3; c++)
                a.zero[k][l * 3 + c] = (k + l + c) % 16;
        }
    json_t *j = xf_static_act_to_json(&a);
    assert_int_equal(xf_static_act_from_json(&b, j, &cfg, "f", &err), 0);
    for (int k = 0; k < XF_STATIC_ACT_SLOTS; k++) {
        assert_memory_equal(a.scale[k], b.scale[k], 2 * sizeof(float));
        assert_memory_equal(a.zero[k], b.zero[k], 6 * sizeof(int32_t));
    }
    xf_static_act_free(&b);
    struct {
        const char *path, *why;
    } bad[] = {{"extra", "unknown key"}, {"bits", "bits"}, {"layers", "2 layers"},
               {"zero", "zero[1]"}, {"scale", "scale"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        json_t *c = json_deep_copy(j);
        json_t *l0 = json_array_get(json_object_get(c, "mlp"), 0);
        if (!strcmp(bad[i].path, "extra"))
            json_object_set_new(c, "extra", json_true());
        else if (!strcmp(bad[i].path, "bits"))
            json_object_set_new(c, "bits", json_integer(9));
        else if (!strcmp(bad[i].path, "layers"))
            json_array_remove(json_object_get(c, "qkv"), 1);
        else if (!strcmp(bad[i].path, "zero"))
            json_array_set_new(json_object_get(l0, "zero"), 1, json_integer(16));
        else
            json_object_set_new(l0, "scale", json_real(0.0));
        assert_int_equal(xf_static_act_from_json(&b, c, &cfg, "f", &err), -1);
        if (!strstr(err.msg, bad[i].why))
            fail_msg("%s: %s", bad[i].path, err.msg);
        json_decref(c);
    }
    json_decref(j);
    xf_static_act_free(&a);
}

/* GPTQ on the razor grid: with a diagonal Hessian nothing propagates, so it
 * is RTN's razoring bit for bit (per-row and 16-wide runs, act-order too);
 * on correlated inputs it lowers the output error tr(E H E^T) below RTN's. */
static double out_err(const float *W, const float *Q, const double *H, int64_t rows, int64_t d)
{
    double s = 0.0;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t a = 0; a < d; a++) {
            const double ea = (double)W[r * d + a] - Q[r * d + a];
            for (int64_t b = 0; b < d; b++)
                s += ea * H[a * d + b] * ((double)W[r * d + b] - Q[r * d + b]);
        }
    return s;
}

static void test_gptq_razor(void **state)
{
    (void)state;
    const int64_t rows = 12, d = 48;
    uint64_t st = 77;
    float *W = malloc(rows * d * sizeof *W), *Wg = malloc(rows * d * sizeof *W);
    float *dq = malloc(rows * d * sizeof *dq), *dg = malloc(rows * d * sizeof *dg);
    fill(W, rows * d, &st);
    double *I = calloc(d * d, sizeof *I);
    for (int64_t i = 0; i < d; i++)
        I[i * d + i] = 1.0 + 0.01 * (double)i; /* diagonal, distinct: act-order reorders */
    xf_error err = {0};
    const int64_t groups[] = {16, 1 << 30}; /* runs of 16, one run per row */
    for (int gi = 0; gi < 2; gi++)
        for (int ao = 0; ao < 2; ao++) {
            xf_qweight qr, qg;
            assert_int_equal(xf_razor_weights_quantize(W, rows, d, 4, groups[gi], &qr, "w", &err),
                             0);
            xf_qweight_dequantize(&qr, dq);
            xf_gptq_params p;
            xf_gptq_params_default(&p);
            p.grid.bits = 4;
            p.group = -1;
            p.razor_group = groups[gi];
            p.act_order = ao;
            memcpy(Wg, W, rows * d * sizeof *W);
            if (xf_gptq_solve(Wg, rows, d, I, &p, &qg, NULL, "w", &err) != 0)
                fail_msg("%s", err.msg);
            xf_qweight_dequantize(&qg, dg);
            if (!ao) /* the same runs of columns: the same values */
                assert_memory_equal(dg, dq, rows * d * sizeof *dq);
            else /* act-order runs differ, values stay sign + 4 bits on each run's shift */
                for (int64_t i = 0; i < rows * d; i++)
                    assert_true(abs((int)qg.codes[i] - 128) <= 15);
            assert_memory_equal(Wg, dg, rows * d * sizeof *dg); /* W holds Q */
            xf_qweight_free(&qr);
            xf_qweight_free(&qg);
        }
    /* correlated inputs: GPTQ's error feedback pays */
    float *X = xf_test_correlated_inputs(256, (int)d, 5);
    double *H = xf_test_hessian(X, 256, (int)d);
    xf_qweight qr, qg;
    assert_int_equal(xf_razor_weights_quantize(W, rows, d, 4, 16, &qr, "w", &err), 0);
    xf_qweight_dequantize(&qr, dq);
    xf_gptq_params p;
    xf_gptq_params_default(&p);
    p.grid.bits = 4;
    p.group = -1;
    p.razor_group = 16;
    memcpy(Wg, W, rows * d * sizeof *W);
    assert_int_equal(xf_gptq_solve(Wg, rows, d, H, &p, &qg, NULL, "w", &err), 0);
    xf_qweight_dequantize(&qg, dg);
    const double e_rtn = out_err(W, dq, H, rows, d), e_gptq = out_err(W, dg, H, rows, d);
    print_message("razor output error: RTN %g, GPTQ %g\n", e_rtn, e_gptq);
    assert_true(e_gptq < 0.9 * e_rtn);
    xf_qweight_free(&qg);
    /* refused combinations name the tensor */
    p.static_groups = true;
    memcpy(Wg, W, rows * d * sizeof *W);
    assert_int_equal(xf_gptq_solve(Wg, rows, d, H, &p, &qg, NULL, "w", &err), -1);
    assert_non_null(strstr(err.msg, "razor"));
    xf_qweight_free(&qr);
    xf_qweight_free(&qg);
    free(X), free(H), free(I), free(W), free(Wg), free(dq), free(dg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_razor_bit_exact),
        cmocka_unit_test(test_razor_hand_values),
        cmocka_unit_test(test_razor_weights),
        cmocka_unit_test(test_logquant_matches_decoder),
        cmocka_unit_test(test_attention_keep_reference),
        cmocka_unit_test(test_scheme_json),
        cmocka_unit_test(test_repquant_reparam_exact),
        cmocka_unit_test(test_repquant_model),
        cmocka_unit_test(test_kv_keep_forward),
        cmocka_unit_test(test_cli_end_to_end),
        cmocka_unit_test(test_static_act_json),
        cmocka_unit_test(test_gptq_razor),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
