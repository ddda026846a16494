/* GPTQ checkpoints and compressed-tensors (export/gptq_ckpt.h,
 * export/ct_ckpt.h, formats/hf_quantized.h). No engine for these formats
 * runs here, so every export is read back by an INDEPENDENT reader written
 * below from the documented layout (docs/export.md): its own safetensors header parse (jansson),
 * its own fp16 decoding, GPTQ words unpacked per the numpy recipe (the
 * 3-bit scheme word by word as documented: A, B, C), v1 zeros + 1,
 * compressed-tensors u - u_zp. Its weights must equal, bit for bit, the
 * dequantized weights of the .xfq, for 2/3/4/8 bits, sym/asym, group 32 and
 * per-channel, act-order, GPT-2's Conv1D. Then: the model loader reads the
 * exports back to the same weights; `xfquant ppl` on an export equals the
 * .xfq's PPL exactly (shared model, skipped without ../shared); refusals
 * and bad checkpoints fail with one line and write nothing; a failed write
 * leaves no directory. */
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "core/half.h"
#include "export/ct_ckpt.h"
#include "export/gptq_ckpt.h"
#include "formats/xfq.h"
#include "model/forward.h"
#include "model/loader.h"
#include "quant/weights/gptq.h"
#include "pipeline/quantize_model.h"
#include "quant/weights/qweight.h"
#include "pipeline/xfq_out.h"
#include "tests/support/cli_run.h"
#include "tests/support/random_model.h"
#include "tests/support/test_util.h"

static char *g_tmp;

static char *tmp_path(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *tmp_path(const char *fmt, ...)
{
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    char *p = malloc(strlen(g_tmp) + strlen(name) + 2);
    sprintf(p, "%s/%s", g_tmp, name);
    return p;
}

/* ==== the independent reader ============================================ */

typedef struct ref_st {
    uint8_t *buf;
    size_t len;
    json_t *hdr;
    const uint8_t *data; /* start of the data section */
} ref_st;

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n + 1);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    b[n] = 0;
    *len = (size_t)n;
    return b;
}

/* safetensors: u64 LE header length, JSON header, raw bytes. */
static void ref_st_open(ref_st *s, const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    s->buf = slurp(path, &s->len);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = hl << 8 | s->buf[i];
    assert_true(8 + hl <= s->len);
    json_error_t je;
    s->hdr = json_loadb((const char *)s->buf + 8, (size_t)hl, 0, &je);
    assert_non_null(s->hdr);
    s->data = s->buf + 8 + hl;
}

static void ref_st_close(ref_st *s)
{
    json_decref(s->hdr);
    free(s->buf);
}

/* Tensor `name` with dtype `dtype` (NULL: any; *dt gets it); shape into
 * shape[]; NULL when absent. */
static const uint8_t *ref_tensor(const ref_st *s, const char *name, const char *dtype,
                                 int64_t *shape, int *ndim, const char **dt)
{
    const json_t *e = json_object_get(s->hdr, name);
    if (!e)
        return NULL;
    const char *d = json_string_value(json_object_get(e, "dtype"));
    if (dtype && strcmp(d, dtype) != 0)
        fail_msg("%s: dtype %s, expected %s", name, d, dtype);
    if (dt)
        *dt = d;
    const json_t *sh = json_object_get(e, "shape");
    *ndim = (int)json_array_size(sh);
    for (int i = 0; i < *ndim; i++)
        shape[i] = json_integer_value(json_array_get(sh, (size_t)i));
    return s->data + json_integer_value(json_array_get(json_object_get(e, "data_offsets"), 0));
}

static uint32_t ref_u32(const uint8_t *p, size_t i)
{
    const uint8_t *q = p + 4 * i;
    return (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 | (uint32_t)q[3] << 24;
}

/* IEEE binary16 -> float, written out here (not core/half.c). */
static float ref_half(const uint8_t *p, size_t i)
{
    unsigned h = (unsigned)p[2 * i] | (unsigned)p[2 * i + 1] << 8;
    unsigned sign = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v;
    if (e == 0)
        v = ldexp((double)m, -24);
    else if (e == 31)
        v = m ? NAN : INFINITY;
    else
        v = ldexp((double)(m | 1024), (int)e - 25);
    return (float)(sign ? -v : v);
}

static float ref_float(const uint8_t *p, const char *dt, size_t i)
{
    if (!strcmp(dt, "F16"))
        return ref_half(p, i);
    if (!strcmp(dt, "F32")) {
        uint32_t u = ref_u32(p, i);
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
    if (!strcmp(dt, "BF16")) {
        uint32_t u = ((uint32_t)p[2 * i] | (uint32_t)p[2 * i + 1] << 8) << 16;
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
    fail_msg("dtype %s is not a float", dt);
    return 0;
}

/* The documented 3-bit scheme, word by word: 32 values in words A, B, C. */
static void ref_unpack3(uint32_t A, uint32_t B, uint32_t C, uint32_t x[32])
{
    for (int j = 0; j < 10; j++)
        x[j] = (A >> (3 * j)) & 7;
    x[10] = (A >> 30) | ((B & 1) << 2);
    for (int j = 0; j < 10; j++)
        x[11 + j] = (B >> (3 * j + 1)) & 7;
    x[21] = (B >> 31) | ((C & 3) << 1);
    for (int j = 0; j < 10; j++)
        x[22 + j] = (C >> (3 * j + 2)) & 7;
}

/* GPTQ packing along one axis: nw words -> nw*32/bits values (bits 2/4/8:
 * value r*pf + j = (word r >> bits*j) & maxq; 3: words in threes). */
static void ref_unpack_gptq(const uint32_t *w, int64_t nw, int bits, uint32_t *vals)
{
    if (bits == 3) {
        assert_int_equal(nw % 3, 0);
        for (int64_t t = 0; t < nw / 3; t++)
            ref_unpack3(w[3 * t], w[3 * t + 1], w[3 * t + 2], vals + 32 * t);
        return;
    }
    const int pf = 32 / bits;
    const uint32_t maxq = (1u << bits) - 1;
    for (int64_t r = 0; r < nw; r++)
        for (int j = 0; j < pf; j++)
            vals[r * pf + j] = (w[r] >> (bits * j)) & maxq;
}

/* W [N, K] of GPTQ module m: W_T = scales[g_idx] * (q - z[g_idx]), read with
 * the config's bits / group_size / checkpoint_format. */
static float *ref_gptq_weight(const ref_st *s, const json_t *qc, const char *m, int64_t *N_out,
                              int64_t *K_out)
{
    const int bits = (int)json_integer_value(json_object_get(qc, "bits"));
    const int64_t group = json_integer_value(json_object_get(qc, "group_size"));
    const char *fmt = json_string_value(json_object_get(qc, "checkpoint_format"));
    const bool v1 = !fmt || !strcmp(fmt, "gptq");
    char name[1024];
    int64_t sh[8];
    int nd;
    snprintf(name, sizeof name, "%s.qweight", m);
    const uint8_t *qw = ref_tensor(s, name, "I32", sh, &nd, NULL);
    assert_non_null(qw);
    assert_int_equal(nd, 2);
    const int64_t R = sh[0], N = sh[1], K = R * 32 / bits;
    const int64_t G = group < 0 ? 1 : (K + group - 1) / group;
    snprintf(name, sizeof name, "%s.qzeros", m);
    const uint8_t *qz = ref_tensor(s, name, "I32", sh, &nd, NULL);
    assert_non_null(qz);
    assert_int_equal(sh[0], G);
    assert_int_equal(sh[1] * 32, N * bits);
    const int64_t C = sh[1];
    snprintf(name, sizeof name, "%s.scales", m);
    const uint8_t *sc = ref_tensor(s, name, "F16", sh, &nd, NULL);
    assert_non_null(sc);
    assert_int_equal(sh[0], G);
    assert_int_equal(sh[1], N);
    snprintf(name, sizeof name, "%s.g_idx", m);
    const uint8_t *gi = ref_tensor(s, name, "I32", sh, &nd, NULL);
    assert_non_null(gi);
    assert_int_equal(sh[0], K);
    snprintf(name, sizeof name, "%s.weight", m);
    assert_null(json_object_get(s->hdr, name)); /* no <m>.weight */

    /* q [K, N]: column n's words, along K */
    uint32_t *col = malloc((size_t)R * 4), *vals = malloc((size_t)K * 4);
    uint32_t *q = malloc((size_t)(K * N) * 4), *z = malloc((size_t)(G * N) * 4);
    for (int64_t n = 0; n < N; n++) {
        for (int64_t r = 0; r < R; r++)
            col[r] = ref_u32(qw, (size_t)(r * N + n));
        ref_unpack_gptq(col, R, bits, vals);
        for (int64_t i = 0; i < K; i++)
            q[i * N + n] = vals[i];
    }
    uint32_t *zrow = malloc((size_t)C * 4), *zv = malloc((size_t)N * 4);
    for (int64_t g = 0; g < G; g++) {
        for (int64_t c = 0; c < C; c++)
            zrow[c] = ref_u32(qz, (size_t)(g * C + c));
        ref_unpack_gptq(zrow, C, bits, zv);
        for (int64_t n = 0; n < N; n++)
            z[g * N + n] = zv[n] + (v1 ? 1 : 0); /* v1 stores z - 1 */
    }
    float *W = malloc((size_t)(N * K) * sizeof *W);
    for (int64_t i = 0; i < K; i++) {
        const int64_t g = (int32_t)ref_u32(gi, (size_t)i);
        assert_true(g >= 0 && g < G);
        for (int64_t n = 0; n < N; n++)
            W[n * K + i] = ref_half(sc, (size_t)(g * N + n)) *
                           (float)((int64_t)q[i * N + n] - (int64_t)z[g * N + n]);
    }
    free(col);
    free(vals);
    free(q);
    free(z);
    free(zrow);
    free(zv);
    *N_out = N;
    *K_out = K;
    return W;
}

/* The config group of module m: the one group, or the one naming m. */
static const json_t *ref_ct_weights_args(const json_t *qc, const char *m)
{
    const json_t *groups = json_object_get(qc, "config_groups");
    const char *k;
    const json_t *g;
    if (json_object_size(groups) == 1)
        json_object_foreach((json_t *)groups, k, g) return json_object_get(g, "weights");
    json_object_foreach((json_t *)groups, k, g)
    {
        size_t i;
        const json_t *t;
        json_array_foreach(json_object_get(g, "targets"), i, t) if (!strcmp(json_string_value(t),
                                                                            m)) return
            json_object_get(g, "weights");
    }
    fail_msg("no config group targets %s", m);
    return NULL;
}

/* W [N, K] of compressed-tensors module m: (u - u_zp) * scale. */
static float *ref_ct_weight(const ref_st *s, const json_t *qc, const char *m, int64_t *N_out,
                            int64_t *K_out)
{
    const json_t *wa = ref_ct_weights_args(qc, m);
    const int bits = (int)json_integer_value(json_object_get(wa, "num_bits"));
    const bool sym = json_is_true(json_object_get(wa, "symmetric"));
    const char *strategy = json_string_value(json_object_get(wa, "strategy"));
    const int64_t group = !strcmp(strategy, "channel")
                              ? -1
                              : json_integer_value(json_object_get(wa, "group_size"));
    const int pf = 32 / bits;
    const uint32_t maxq = (1u << bits) - 1;
    char name[1024];
    int64_t sh[8];
    int nd;
    snprintf(name, sizeof name, "%s.weight_shape", m);
    const uint8_t *ws = ref_tensor(s, name, "I64", sh, &nd, NULL);
    assert_non_null(ws);
    int64_t N = 0, K = 0;
    for (int b = 7; b >= 0; b--) {
        N = N << 8 | ws[b];
        K = K << 8 | ws[8 + b];
    }
    const int64_t G = group < 0 ? 1 : (K + group - 1) / group;
    snprintf(name, sizeof name, "%s.weight_packed", m);
    const uint8_t *wp = ref_tensor(s, name, "I32", sh, &nd, NULL);
    assert_non_null(wp);
    assert_int_equal(sh[0], N);
    assert_int_equal(sh[1], (K + pf - 1) / pf);
    const int64_t kw = sh[1];
    snprintf(name, sizeof name, "%s.weight_scale", m);
    const char *sdt;
    const uint8_t *sc = ref_tensor(s, name, NULL, sh, &nd, &sdt);
    assert_non_null(sc);
    assert_int_equal(sh[0], N);
    assert_int_equal(sh[1], G);
    snprintf(name, sizeof name, "%s.weight_zero_point", m);
    const uint8_t *zp = ref_tensor(s, name, "I32", sh, &nd, NULL);
    if (sym) {
        assert_null(zp);
    } else {
        assert_non_null(zp);
        assert_int_equal(sh[0], (N + pf - 1) / pf);
        assert_int_equal(sh[1], G);
    }
    snprintf(name, sizeof name, "%s.weight_g_idx", m);
    const uint8_t *gi = ref_tensor(s, name, "I32", sh, &nd, NULL);
    if (gi)
        assert_int_equal(sh[0], K);
    float *W = malloc((size_t)(N * K) * sizeof *W);
    for (int64_t n = 0; n < N; n++)
        for (int64_t i = 0; i < K; i++) {
            const int64_t g = gi ? (int32_t)ref_u32(gi, (size_t)i) : (group < 0 ? 0 : i / group);
            assert_true(g >= 0 && g < G);
            const uint32_t u = (ref_u32(wp, (size_t)(n * kw + i / pf)) >> (bits * (i % pf))) & maxq;
            const uint32_t uz =
                sym ? 1u << (bits - 1)
                    : (ref_u32(zp, (size_t)((n / pf) * G + g)) >> (bits * (n % pf))) & maxq;
            W[n * K + i] = (float)((int64_t)u - (int64_t)uz) * ref_float(sc, sdt, (size_t)(n * G + g));
        }
    *N_out = N;
    *K_out = K;
    return W;
}

static char *join(const char *dir, const char *name)
{
    char *p = malloc(strlen(dir) + strlen(name) + 2);
    sprintf(p, "%s/%s", dir, name);
    return p;
}

static json_t *load_json(const char *dir, const char *name)
{
    char *path = join(dir, name);
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (!j)
        fail_msg("%s: %s", path, je.text);
    free(path);
    return j;
}

static bool same_bits(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

/* Every packed tensor of the .xfq, read from the export by the reader above,
 * equals xfquant's dequantization bit for bit; every plain tensor is there
 * with the same values. Returns the number of quantized linears. */
static size_t check_export(const char *xfq_path, const char *dir, bool gptq)
{
    xfq_file f;
    xf_error err = {0};
    assert_int_equal(xfq_open(&f, xfq_path, 0, &err), 0);
    ref_st s;
    ref_st_open(&s, dir);
    json_t *cfg = load_json(dir, "config.json");
    const json_t *qc = json_object_get(cfg, "quantization_config");
    assert_string_equal(json_string_value(json_object_get(qc, "quant_method")),
                        gptq ? "gptq" : "compressed-tensors");
    if (gptq) { /* quantize_config.json repeats it */
        json_t *qf = load_json(dir, "quantize_config.json");
        assert_true(json_equal(qf, (json_t *)qc));
        json_decref(qf);
    } else {
        assert_string_equal(json_string_value(json_object_get(qc, "format")), "pack-quantized");
    }
    size_t n_lin = 0;
    for (size_t i = 0; i < f.tensors.n; i++) {
        const xf_tensor *t = &f.tensors.items[i];
        const int64_t n = xf_tensor_numel(t);
        float *want = malloc((size_t)n * sizeof *want);
        assert_int_equal(xf_tensor_to_f32(t, want, &err), 0);
        if (xf_dtype_is_packed(t->dtype)) {
            char module[512];
            snprintf(module, sizeof module, "%.*s", (int)(strlen(t->name) - 7), t->name);
            int64_t N, K;
            float *got = gptq ? ref_gptq_weight(&s, qc, module, &N, &K)
                              : ref_ct_weight(&s, qc, module, &N, &K);
            assert_int_equal(N, t->shape[0]);
            assert_int_equal(K, t->shape[1]);
            if (gptq)
                assert_int_equal(json_integer_value(json_object_get(qc, "bits")),
                                 t->packed.bits);
            for (int64_t k = 0; k < n; k++)
                if (!same_bits(got[k], want[k]))
                    fail_msg("%s [%lld, %lld]: reader %.9g, xfquant %.9g", t->name,
                             (long long)(k / K), (long long)(k % K), (double)got[k],
                             (double)want[k]);
            free(got);
            n_lin++;
        } else {
            int64_t sh[8];
            int nd;
            const char *dt;
            const uint8_t *p = ref_tensor(&s, t->name, NULL, sh, &nd, &dt);
            if (!p)
                fail_msg("%s: plain tensor missing from the export", t->name);
            assert_int_equal(nd, t->ndim);
            /* same shape, or a 2-D Conv1D weight back in [in, out] */
            const bool tr = nd == 2 && sh[0] != t->shape[0];
            for (int64_t k = 0; k < n; k++) {
                int64_t src = tr ? (k % sh[1]) * sh[0] + k / sh[1] : k;
                assert_true(same_bits(ref_float(p, dt, (size_t)k), want[src]));
            }
        }
        free(want);
    }
    assert_true(n_lin > 0);
    json_decref(cfg);
    ref_st_close(&s);
    xfq_close(&f);
    return n_lin;
}

/* The model loader reads the export to exactly the .xfq's fp32 weights. */
static void check_import(const char *xfq_path, const char *dir)
{
    xf_loaded_model a, b;
    xf_error err = {0};
    assert_int_equal(xf_model_open(&a, xfq_path, &err), 0);
    if (xf_model_open(&b, dir, &err) != 0)
        fail_msg("%s", err.msg);
    for (int l = 0; l < a.cfg.n_layers; l++) {
        xf_dense_layer da, db;
        assert_int_equal(xf_dense_layer_init(&da, &a.weights, l, &err), 0);
        assert_int_equal(xf_dense_layer_init(&db, &b.weights, l, &err), 0);
        for (int r = 0; r < XF_LIN_COUNT; r++) {
            if (!da.w[r])
                continue;
            assert_non_null(db.w[r]);
            assert_int_equal(da.out[r], db.out[r]);
            assert_int_equal(da.in[r], db.in[r]);
            assert_memory_equal(da.w[r], db.w[r], (size_t)(da.out[r] * da.in[r]) * 4);
            if (da.b[r])
                assert_memory_equal(da.b[r], db.b[r], (size_t)da.out[r] * 4);
        }
        xf_dense_layer_free(&da);
        xf_dense_layer_free(&db);
    }
    xf_dense_head ha, hb;
    assert_int_equal(xf_dense_head_init(&ha, &a.weights, &err), 0);
    assert_int_equal(xf_dense_head_init(&hb, &b.weights, &err), 0);
    assert_memory_equal(ha.w, hb.w, (size_t)(ha.vocab * ha.hidden) * 4);
    xf_dense_head_free(&ha);
    xf_dense_head_free(&hb);
    xf_model_close(&a);
    xf_model_close(&b);
}

/* ==== inputs =============================================================== */

static char *model_dir(const char *name, const char *family, int hidden, int inter, int heads,
                       int kv, uint64_t seed)
{
    char *dir = tmp_path("%s", name);
    xf_random_model_spec s = {.family = family, .hidden = hidden, .intermediate = inter,
                              .layers = 2, .heads = heads, .kv_heads = kv, .vocab = 64,
                              .max_pos = 32, .f16 = true, .seed = seed};
    char *out = xf_random_model_write(dir, &s);
    assert_non_null(out);
    free(out);
    return dir;
}

static void rtn_xfq(const char *src, const char *out, int bits, int64_t group, bool sym)
{
    xf_loaded_model m;
    xf_error err = {0};
    assert_int_equal(xf_model_open(&m, src, &err), 0);
    xf_quant_options o;
    xf_quant_options_defaults(&o, XF_METHOD_RTN);
    o.grid.bits = bits;
    o.grid.sym = sym;
    o.group = group;
    if (xf_quantize_model(&m, &o, NULL, out, NULL, NULL, &err) != 0)
        fail_msg("%s", err.msg);
    xf_model_close(&m);
}

/* GPTQ of every linear with a random Hessian per linear (act-order: a
 * column permutation in the .xfq), through the pipeline's writer. */
static void gptq_xfq(const char *src, const char *out, int bits, int64_t group, bool sym,
                     bool act_order)
{
    xf_loaded_model m;
    xf_error err = {0};
    assert_int_equal(xf_model_open(&m, src, &err), 0);
    xf_gptq_params p;
    xf_gptq_params_default(&p);
    p.grid.bits = bits;
    p.grid.sym = sym;
    p.group = group;
    p.act_order = act_order;
    xf_quant_collector col;
    xf_quant_collector_init(&col);
    for (int l = 0; l < m.cfg.n_layers; l++) {
        xf_dense_layer dl;
        assert_int_equal(xf_dense_layer_init(&dl, &m.weights, l, &err), 0);
        for (int r = 0; r < XF_LIN_COUNT; r++) {
            if (!dl.w[r])
                continue;
            const int in = (int)dl.in[r], N = 96;
            float *X = xf_test_correlated_inputs(N, in, 77 + 10 * (uint64_t)l + (uint64_t)r);
            double *H = xf_test_hessian(X, N, in);
            xf_qweight q;
            const char *name = m.weights.layers[l].lin[r].w->name;
            if (xf_gptq_solve(dl.w[r], dl.out[r], in, H, &p, &q, NULL, name, &err) != 0)
                fail_msg("%s", err.msg);
            assert_int_equal(xf_quant_collector_add(&col, &q, name, NULL, &err), 0);
            xf_qweight_free(&q);
            free(X);
            free(H);
        }
        xf_dense_layer_free(&dl);
    }
    json_t *recipe = json_pack("{s:s, s:b, s:f}", "method", "gptq", "act_order", act_order,
                               "damp", 0.01);
    json_t *prov = json_object();
    if (xf_quant_write_xfq(&m, &col, recipe, prov, out, &err) != 0)
        fail_msg("%s", err.msg);
    json_decref(recipe);
    json_decref(prov);
    xf_quant_collector_free(&col);
    xf_model_close(&m);
}

/* Grids no quantizer would pick: codes over the whole range, zero points
 * 0 and 2^b - 1 present, a random column permutation. */
static void handmade_xfq(const char *src, const char *out, int bits, int64_t group)
{
    xf_loaded_model m;
    xf_error err = {0};
    assert_int_equal(xf_model_open(&m, src, &err), 0);
    xf_quant_collector col;
    xf_quant_collector_init(&col);
    uint64_t rng = 4242 + (uint64_t)bits;
    const unsigned maxq = (1u << bits) - 1;
    for (int l = 0; l < m.cfg.n_layers; l++)
        for (int r = 0; r < XF_LIN_COUNT; r++) {
            const xf_tensor *w = m.weights.layers[l].lin[r].w;
            if (!w)
                continue;
            const int64_t rows = w->shape[0], cols = w->shape[1];
            xf_qweight q;
            assert_int_equal(xf_qweight_init(&q, rows, cols, bits,
                                             xf_group_size_resolve(group, cols), true, true,
                                             w->name, &err),
                             0);
            for (int64_t k = 0; k < rows * cols; k++)
                q.codes[k] = (uint8_t)(xf_test_rand_u64(&rng) % (maxq + 1));
            for (int64_t k = 0; k < rows * q.n_groups; k++) {
                q.scales[k] = xf_f16_to_f32(xf_f32_to_f16(0.001f + 0.05f * xf_test_rand_uniform(&rng)));
                q.zeros[k] = (uint8_t)(xf_test_rand_u64(&rng) % (maxq + 1));
            }
            q.zeros[0] = 0;
            q.zeros[rows * q.n_groups - 1] = (uint8_t)maxq;
            for (int64_t j = 0; j < cols; j++)
                q.perm[j] = (int32_t)j;
            for (int64_t j = cols - 1; j > 0; j--) {
                int64_t k = (int64_t)(xf_test_rand_u64(&rng) % (uint64_t)(j + 1));
                int32_t t = q.perm[j];
                q.perm[j] = q.perm[k];
                q.perm[k] = t;
            }
            assert_int_equal(xf_quant_collector_add(&col, &q, w->name, NULL, &err), 0);
            xf_qweight_free(&q);
        }
    json_t *recipe = json_pack("{s:s}", "method", "handmade"), *prov = json_object();
    if (xf_quant_write_xfq(&m, &col, recipe, prov, out, &err) != 0)
        fail_msg("%s", err.msg);
    json_decref(recipe);
    json_decref(prov);
    xf_quant_collector_free(&col);
    xf_model_close(&m);
}

static void cli_ok(const char *fmt, const char *a, const char *b);

static json_t *export_ok(bool gptq, const char *xfq, const char *dir, xf_gptq_zero_format zf)
{
    xf_export_opts o = {.gptq_zeros = zf};
    json_t *sum = NULL;
    xf_error err = {0};
    int rc = gptq ? xf_export_gptq(xfq, dir, &o, &sum, &err)
                  : xf_export_compressed_tensors(xfq, dir, &o, &sum, &err);
    if (rc != 0)
        fail_msg("%s", err.msg);
    assert_non_null(sum);
    return sum;
}

static const char *sum_str(const json_t *s, const char *k)
{
    return json_string_value(json_object_get(s, k));
}

/* ==== tests ================================================================ */

/* RTN at every width, sym and asym, group 32 and per channel, into both
 * formats: bit-exact by the independent reader and through the loader. */
static void test_rtn_matrix(void **state)
{
    (void)state;
    /* every dimension a multiple of 128 or 64, so vLLM's kernels qualify */
    char *src = model_dir("llama-m", "llama", 128, 256, 4, 2, 1);
    static const int widths[] = {2, 3, 4, 8};
    for (int bi = 0; bi < 4; bi++)
        for (int sym = 0; sym < 2; sym++)
            for (int gi = 0; gi < 2; gi++) {
                const int bits = widths[bi];
                const int64_t group = gi ? -1 : 32;
                char *xfq = tmp_path("m-%d-%d-%d.xfq", bits, sym, gi);
                char *gd = tmp_path("m-%d-%d-%d.gptq", bits, sym, gi);
                char *cd = tmp_path("m-%d-%d-%d.ct", bits, sym, gi);
                rtn_xfq(src, xfq, bits, group, sym);
                json_t *gs = export_ok(true, xfq, gd, XF_GPTQ_ZEROS_AUTO);
                json_t *cs = export_ok(false, xfq, cd, XF_GPTQ_ZEROS_AUTO);
                assert_int_equal(check_export(xfq, gd, true), 14);
                assert_int_equal(check_export(xfq, cd, false), 14);
                check_import(xfq, gd);
                check_import(xfq, cd);
                assert_int_equal(json_integer_value(json_object_get(gs, "group_size")), group);
                assert_int_equal(json_is_true(json_object_get(gs, "sym")), sym);
                assert_int_equal(json_is_true(json_object_get(gs, "desc_act")), 0);
                /* marlin: sym 4/8-bit; plain gptq otherwise (shapes fit both) */
                const char *kernel = sym && (bits == 4 || bits == 8) ? "gptq_marlin" : "gptq";
                assert_string_equal(sum_str(gs, "vllm_kernel"), kernel);
                assert_string_equal(sum_str(cs, "vllm_scheme"), bits == 4 || bits == 8
                                                                    ? "CompressedTensorsWNA16"
                                                                    : "none");
                if (sym) /* sym: v1 (stored 2^(b-1) - 1) */
                    assert_string_equal(sum_str(gs, "checkpoint_format"), "gptq");
                json_decref(gs);
                json_decref(cs);
                free(xfq);
                free(gd);
                free(cd);
            }
    free(src);
}

/* Shapes the GPTQ words cannot hold (42 inputs to down_proj: 42·b is not
 * a multiple of 32 at any width) are refused by name; compressed-tensors
 * pads (42 % pf != 0 at 2, 3, 4 and 8 bits: a partial last word) and
 * holds them. */
static void test_odd_shapes(void **state)
{
    (void)state;
    char *src = model_dir("llama-odd", "llama", 48, 42, 4, 4, 2);
    static const int widths[] = {2, 3, 4, 8};
    for (int bi = 0; bi < 4; bi++) {
        char *xfq = tmp_path("odd-%d.xfq", widths[bi]);
        char *gd = tmp_path("odd-%d.gptq", widths[bi]);
        char *cd = tmp_path("odd-%d.ct", widths[bi]);
        rtn_xfq(src, xfq, widths[bi], 16, bi % 2);
        json_t *cs = export_ok(false, xfq, cd, XF_GPTQ_ZEROS_AUTO);
        check_export(xfq, cd, false);
        check_import(xfq, cd);
        json_decref(cs);
        xf_export_opts o = {0};
        xf_error err = {0};
        assert_int_equal(xf_export_gptq(xfq, gd, &o, NULL, &err), -1);
        assert_non_null(strstr(err.msg, "in and out features that are multiples of"));
        assert_non_null(strstr(err.msg, "mlp.down_proj.weight is [48, 42]"));
        assert_null(strchr(err.msg, '\n'));
        struct stat st;
        assert_int_not_equal(stat(gd, &st), 0);
        free(xfq);
        free(gd);
        free(cd);
    }
    free(src);
}

/* GPTQ with act-order (a permutation in the .xfq) -> g_idx non-monotonic,
 * desc_act true, actorder "group". */
static void test_act_order(void **state)
{
    (void)state;
    char *src = model_dir("llama-act", "llama", 64, 128, 4, 2, 3);
    for (int v = 0; v < 4; v++) {
        const int bits = v & 1 ? 4 : 3;
        const bool sym = v >> 1;
        char *xfq = tmp_path("act-%d.xfq", v), *gd = tmp_path("act-%d.gptq", v),
             *cd = tmp_path("act-%d.ct", v);
        gptq_xfq(src, xfq, bits, 32, sym, true);
        json_t *gs = export_ok(true, xfq, gd, XF_GPTQ_ZEROS_AUTO);
        json_t *cs = export_ok(false, xfq, cd, XF_GPTQ_ZEROS_AUTO);
        assert_true(json_is_true(json_object_get(gs, "desc_act")));
        check_export(xfq, gd, true);
        check_export(xfq, cd, false);
        check_import(xfq, gd);
        check_import(xfq, cd);
        /* the g_idx of some linear is not i // 32 */
        ref_st s;
        ref_st_open(&s, gd);
        int64_t sh[8];
        int nd;
        const uint8_t *g = ref_tensor(&s, "model.layers.0.self_attn.q_proj.g_idx", "I32", sh, &nd,
                                      NULL);
        assert_non_null(g);
        bool monotonic = true;
        for (int64_t i = 0; i < sh[0]; i++)
            monotonic = monotonic && (int64_t)ref_u32(g, (size_t)i) == i / 32;
        assert_false(monotonic);
        ref_st_close(&s);
        json_t *cfg = load_json(cd, "config.json");
        const json_t *w = json_object_get(
            json_object_get(json_object_get(json_object_get(cfg, "quantization_config"),
                                            "config_groups"),
                            "group_0"),
            "weights");
        assert_string_equal(json_string_value(json_object_get(w, "actorder")), "group");
        json_decref(cfg);
        json_decref(gs);
        json_decref(cs);
        free(xfq);
        free(gd);
        free(cd);
    }
    free(src);
}

/* Zero points 0 and 2^b - 1: auto picks gptq_v2; forced v1 is refused;
 * forced v2 on a symmetric file writes raw zeros. */
static void test_zero_point_formats(void **state)
{
    (void)state;
    char *src = model_dir("llama-z", "llama", 64, 128, 4, 2, 4);
    static const int widths[] = {2, 3, 4, 8};
    for (int bi = 0; bi < 4; bi++) {
        char *xfq = tmp_path("z-%d.xfq", widths[bi]), *gd = tmp_path("z-%d.gptq", widths[bi]),
             *cd = tmp_path("z-%d.ct", widths[bi]), *bad = tmp_path("z-%d.v1", widths[bi]);
        handmade_xfq(src, xfq, widths[bi], bi % 2 ? 32 : -1);
        json_t *gs = export_ok(true, xfq, gd, XF_GPTQ_ZEROS_AUTO);
        assert_string_equal(sum_str(gs, "checkpoint_format"), "gptq_v2");
        json_t *cs = export_ok(false, xfq, cd, XF_GPTQ_ZEROS_AUTO);
        check_export(xfq, gd, true);
        check_export(xfq, cd, false);
        check_import(xfq, gd);
        check_import(xfq, cd);
        xf_export_opts o = {.gptq_zeros = XF_GPTQ_ZEROS_V1};
        xf_error err = {0};
        assert_int_equal(xf_export_gptq(xfq, bad, &o, NULL, &err), -1);
        assert_non_null(strstr(err.msg, "zero point is 0"));
        struct stat st;
        assert_int_not_equal(stat(bad, &st), 0);
        json_decref(gs);
        json_decref(cs);
        free(xfq);
        free(gd);
        free(cd);
        free(bad);
    }
    char *sx = tmp_path("z-sym.xfq"), *sd = tmp_path("z-sym.gptq");
    rtn_xfq(src, sx, 4, 32, true);
    json_t *gs = export_ok(true, sx, sd, XF_GPTQ_ZEROS_V2);
    assert_string_equal(sum_str(gs, "checkpoint_format"), "gptq_v2");
    check_export(sx, sd, true);
    check_import(sx, sd);
    json_decref(gs);
    free(sx);
    free(sd);
    free(src);
}

/* GPT-2: Conv1D weights ([in, out] in HF) still export as [K, N] qweight
 * and [N, K] weight_packed; the loader reads them back. */
static void test_gpt2(void **state)
{
    (void)state;
    char *src = model_dir("gpt2", "gpt2", 64, 0, 4, 0, 5);
    char *xfq = tmp_path("gpt2.xfq"), *gd = tmp_path("gpt2.gptq"), *cd = tmp_path("gpt2.ct");
    rtn_xfq(src, xfq, 4, 32, false);
    json_decref(export_ok(true, xfq, gd, XF_GPTQ_ZEROS_AUTO));
    json_decref(export_ok(false, xfq, cd, XF_GPTQ_ZEROS_AUTO));
    check_export(xfq, gd, true);
    check_export(xfq, cd, false);
    check_import(xfq, gd);
    check_import(xfq, cd);
    free(xfq);
    free(gd);
    free(cd);
    free(src);
}

/* Per-tensor bit widths: compressed-tensors writes one config group per
 * scheme, targeting modules by name; GPTQ (one bits per config) refuses. */
static void test_mixed_bits(void **state)
{
    (void)state;
    char *src = model_dir("llama-mix", "llama", 64, 128, 4, 2, 10);
    char *xfq = tmp_path("mix.xfq"), *cd = tmp_path("mix.ct"), *gd = tmp_path("mix.gptq");
    cli_ok("rtn --bits 4 --group 32 --tensor-bits down_proj=8 --tensor-bits q_proj=2 %s %s",
           src, xfq);
    json_decref(export_ok(false, xfq, cd, XF_GPTQ_ZEROS_AUTO));
    assert_int_equal(check_export(xfq, cd, false), 14);
    check_import(xfq, cd);
    json_t *cfg = load_json(cd, "config.json");
    const json_t *groups =
        json_object_get(json_object_get(cfg, "quantization_config"), "config_groups");
    assert_int_equal(json_object_size(groups), 3);
    json_decref(cfg);
    xf_export_opts o = {0};
    xf_error err = {0};
    assert_int_equal(xf_export_gptq(xfq, gd, &o, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "one bit width"));
    free(xfq);
    free(cd);
    free(gd);
    free(src);
}

/* A quantized LM head: GPTQ lm_head true, compressed-tensors ignores
 * nothing; without it, lm_head is listed in `ignore`. */
static void test_quantized_head(void **state)
{
    (void)state;
    char *src = model_dir("llama-head", "llama", 64, 128, 4, 2, 11);
    char *xfq = tmp_path("head.xfq"), *gd = tmp_path("head.gptq"), *cd = tmp_path("head.ct");
    cli_ok("rtn --bits 4 --group 32 --quantize-head %s %s", src, xfq);
    json_t *gs = export_ok(true, xfq, gd, XF_GPTQ_ZEROS_AUTO);
    json_decref(export_ok(false, xfq, cd, XF_GPTQ_ZEROS_AUTO));
    assert_true(json_is_true(json_object_get(gs, "lm_head")));
    assert_int_equal(check_export(xfq, gd, true), 15);
    assert_int_equal(check_export(xfq, cd, false), 15);
    check_import(xfq, gd);
    check_import(xfq, cd);
    json_t *cfg = load_json(cd, "config.json");
    assert_int_equal(
        json_array_size(json_object_get(json_object_get(cfg, "quantization_config"), "ignore")), 0);
    json_decref(cfg);
    json_decref(gs);
    char *x2 = tmp_path("nohead.xfq"), *c2 = tmp_path("nohead.ct");
    rtn_xfq(src, x2, 4, 32, false);
    json_decref(export_ok(false, x2, c2, XF_GPTQ_ZEROS_AUTO));
    cfg = load_json(c2, "config.json");
    const json_t *ign = json_object_get(json_object_get(cfg, "quantization_config"), "ignore");
    assert_int_equal(json_array_size(ign), 1);
    assert_string_equal(json_string_value(json_array_get(ign, 0)), "lm_head");
    json_decref(cfg);
    free(x2);
    free(c2);
    free(xfq);
    free(gd);
    free(cd);
    free(src);
}

/* An fp32 model: plain tensors stay F32 and compressed-tensors scales are
 * F32 (the model's dtype; fp16 -> fp32 is exact). */
static void test_f32_model(void **state)
{
    (void)state;
    char *dir = tmp_path("llama-f32");
    xf_random_model_spec sp = {.family = "llama", .hidden = 64, .intermediate = 128, .layers = 2,
                               .heads = 4, .kv_heads = 2, .vocab = 64, .max_pos = 32,
                               .f16 = false, .seed = 12};
    char *src = xf_random_model_write(dir, &sp);
    assert_non_null(src);
    char *xfq = tmp_path("f32.xfq"), *gd = tmp_path("f32.gptq"), *cd = tmp_path("f32.ct");
    rtn_xfq(src, xfq, 4, 32, false);
    json_t *cs = export_ok(false, xfq, cd, XF_GPTQ_ZEROS_AUTO);
    assert_string_equal(sum_str(cs, "scale_dtype"), "F32");
    json_decref(cs);
    json_decref(export_ok(true, xfq, gd, XF_GPTQ_ZEROS_AUTO));
    check_export(xfq, cd, false);
    check_export(xfq, gd, true);
    check_import(xfq, cd);
    check_import(xfq, gd);
    ref_st s;
    ref_st_open(&s, cd);
    int64_t sh[8];
    int nd;
    assert_non_null(ref_tensor(&s, "model.layers.0.self_attn.q_proj.weight_scale", "F32", sh, &nd,
                               NULL));
    assert_non_null(ref_tensor(&s, "model.norm.weight", "F32", sh, &nd, NULL));
    ref_st_close(&s);
    free(xfq);
    free(gd);
    free(cd);
    free(src);
    free(dir);
}

/* Deterministic: the same .xfq gives the same bytes. */
static void test_same_bytes(void **state)
{
    (void)state;
    char *src = model_dir("llama-det", "llama", 64, 128, 4, 2, 6);
    char *xfq = tmp_path("det.xfq"), *a = tmp_path("det-a"), *b = tmp_path("det-b");
    rtn_xfq(src, xfq, 4, 32, false);
    static const char *const files[] = {"model.safetensors", "config.json",
                                        "quantize_config.json"};
    for (int t = 0; t < 2; t++) {
        json_decref(export_ok(t == 0, xfq, a, XF_GPTQ_ZEROS_AUTO));
        json_decref(export_ok(t == 0, xfq, b, XF_GPTQ_ZEROS_AUTO));
        for (int k = 0; k < (t == 0 ? 3 : 2); k++) {
            char pa[4096], pb[4096];
            snprintf(pa, sizeof pa, "%s/%s", a, files[k]);
            snprintf(pb, sizeof pb, "%s/%s", b, files[k]);
            assert_true(xf_test_files_equal(pa, pb));
        }
        xf_test_rmtree(a);
        xf_test_rmtree(b);
    }
    free(xfq);
    free(a);
    free(b);
    free(src);
}

/* One refused export through the CLI: exit 1, one line naming `needle`,
 * nothing new in the parent directory. */
static void expect_refused(const char *args, const char *needle)
{
    const int before = xf_test_dir_entries(g_tmp);
    xf_cli_result r = xf_cli_run(g_tmp, "export %s", args);
    if (r.code != 1 || !strstr(r.err, needle))
        fail_msg("export %s: exit %d, stderr: %s", args, r.code, r.err);
    assert_int_equal(xf_cli_count_lines(r.err), 1);
    xf_cli_result_free(&r);
    assert_int_equal(xf_test_dir_entries(g_tmp), before);
}

static void cli_ok(const char *fmt, const char *a, const char *b)
{
    char args[8192];
    snprintf(args, sizeof args, fmt, a, b);
    xf_cli_result r = xf_cli_run(g_tmp, "%s", args);
    if (r.code != 0)
        fail_msg("xfquant %s: exit %d: %s", args, r.code, r.err);
    xf_cli_result_free(&r);
}

/* What the formats cannot hold is refused before any write. */
static void test_refusals(void **state)
{
    (void)state;
    char *src = model_dir("llama-ref", "llama", 64, 128, 4, 2, 7);
    char *ol = tmp_path("ref-ol.xfq"), *lg = tmp_path("ref-log2.xfq"),
         *act = tmp_path("ref-act.xfq"), *rot = tmp_path("ref-rot.xfq"),
         *ok = tmp_path("ref-ok.xfq");
    cli_ok("rtn --bits 4 --group 32 --outliers 1%% %s %s", src, ol);
    cli_ok("rtn --bits 4 --group 32 --weight-grid log2 %s %s", src, lg);
    cli_ok("rtn --bits 4 --group 32 --act-bits 8 --kv-bits 8 %s %s", src, act);
    cli_ok("rtn --bits 4 --group 32 --rotate hadamard %s %s", src, rot);
    cli_ok("rtn --bits 4 --group 32 %s %s", src, ok);
    char args[8192];
    static const char *const targets[] = {"gptq", "compressed-tensors"};
    for (int t = 0; t < 2; t++) {
        snprintf(args, sizeof args, "--to %s %s %s/out", targets[t], ol, g_tmp);
        expect_refused(args, "outlier side table");
        snprintf(args, sizeof args, "--to %s %s %s/out", targets[t], lg, g_tmp);
        expect_refused(args, "log2 grid");
        snprintf(args, sizeof args, "--to %s %s %s/out", targets[t], act, g_tmp);
        expect_refused(args, "recipe.activations");
        snprintf(args, sizeof args, "--to %s %s %s/out", targets[t], rot, g_tmp);
        expect_refused(args, "online transforms");
        snprintf(args, sizeof args, "--to %s %s %s/out", targets[t], src, g_tmp);
        expect_refused(args, "not an .xfq file");
        snprintf(args, sizeof args, "--to %s %s %s", targets[t], ok, src); /* exists */
        expect_refused(args, "already exists");
        snprintf(args, sizeof args, "--to %s %s %s/no/such/out", targets[t], ok, g_tmp);
        expect_refused(args, "parent directory does not exist");
        /* --weights-only exports and records the omission */
        xf_cli_result r = xf_cli_run(g_tmp, "export --to %s --weights-only --json %s %s/wo-%d",
                                     targets[t], act, g_tmp, t);
        assert_int_equal(r.code, 0);
        json_t *sum = json_loads(r.out, 0, NULL);
        assert_non_null(sum);
        assert_int_equal(json_array_size(json_object_get(sum, "omitted")), 1);
        json_decref(sum);
        xf_cli_result_free(&r);
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/wo-%d", g_tmp, t);
        json_t *prov = load_json(dir, "xfquant_export.json");
        assert_int_equal(json_array_size(json_object_get(prov, "omitted")), 1);
        json_decref(prov);
        check_export(act, dir, t == 0);
    }
    /* usage errors: exit 2 */
    xf_cli_result r = xf_cli_run(g_tmp, "export %s %s/u", ok, g_tmp);
    assert_int_equal(r.code, 2);
    xf_cli_result_free(&r);
    r = xf_cli_run(g_tmp, "export --to gguf2 %s %s/u", ok, g_tmp);
    assert_int_equal(r.code, 2);
    xf_cli_result_free(&r);
    r = xf_cli_run(g_tmp, "export --to gptq --gptq-format v3 %s %s/u", ok, g_tmp);
    assert_int_equal(r.code, 2);
    xf_cli_result_free(&r);
    free(ol);
    free(lg);
    free(act);
    free(rot);
    free(ok);
    free(src);
}

/* A write that fails half way (file size limit hit inside model.safetensors)
 * leaves neither the directory nor its temp directory. */
static void test_failed_write_leaves_nothing(void **state)
{
    (void)state;
    char *src = model_dir("llama-big", "llama", 128, 256, 4, 2, 8);
    char *xfq = tmp_path("big.xfq"), *parent = tmp_path("fail-parent");
    rtn_xfq(src, xfq, 4, 32, false);
    assert_int_equal(mkdir(parent, 0755), 0);
    for (int t = 0; t < 2; t++) {
        char out[4096];
        snprintf(out, sizeof out, "%s/out", parent);
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            signal(SIGXFSZ, SIG_IGN); /* write() then fails with EFBIG */
            struct rlimit rl = {64 * 1024, 64 * 1024};
            setrlimit(RLIMIT_FSIZE, &rl);
            xf_export_opts o = {0};
            xf_error err = {0};
            int rc = t == 0 ? xf_export_gptq(xfq, out, &o, NULL, &err)
                            : xf_export_compressed_tensors(xfq, out, &o, NULL, &err);
            _exit(rc == 0 ? 0 : (strstr(err.msg, "model.safetensors") ? 3 : 4));
        }
        int st = 0;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 3); /* failed, in the weights file */
        assert_int_equal(xf_test_dir_entries(parent), 0);
    }
    free(xfq);
    free(parent);
    free(src);
}

/* ---- bad checkpoints ---- */

static void copy_dir(const char *from, const char *to)
{
    assert_int_equal(mkdir(to, 0755), 0);
    static const char *const files[] = {"model.safetensors", "config.json"};
    for (int k = 0; k < 2; k++) {
        char a[4096], b[4096];
        snprintf(a, sizeof a, "%s/%s", from, files[k]);
        snprintf(b, sizeof b, "%s/%s", to, files[k]);
        size_t n;
        uint8_t *d = slurp(a, &n);
        FILE *f = fopen(b, "wb");
        assert_int_equal(fwrite(d, 1, n, f), n);
        fclose(f);
        free(d);
    }
}

static void set_qc(const char *dir, const char *key, json_t *v)
{
    json_t *cfg = load_json(dir, "config.json");
    json_object_set_new(json_object_get(cfg, "quantization_config"), key, v);
    char p[4096];
    snprintf(p, sizeof p, "%s/config.json", dir);
    assert_int_equal(json_dump_file(cfg, p, JSON_INDENT(2)), 0);
    json_decref(cfg);
}

/* Overwrites bytes of model.safetensors: the first occurrence of `from`
 * in the header by `to` (same length), or int32 element `idx` of `tensor`. */
static void patch_header(const char *dir, const char *from, const char *to)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    size_t n;
    uint8_t *d = slurp(p, &n);
    char *hit = strstr((char *)d + 8, from);
    assert_non_null(hit);
    memcpy(hit, to, strlen(to));
    FILE *f = fopen(p, "wb");
    assert_int_equal(fwrite(d, 1, n, f), n);
    fclose(f);
    free(d);
}

static void patch_i32(const char *dir, const char *tensor, size_t idx, int32_t v)
{
    ref_st s;
    ref_st_open(&s, dir);
    int64_t sh[8];
    int nd;
    const uint8_t *t = ref_tensor(&s, tensor, NULL, sh, &nd, NULL);
    assert_non_null(t);
    const size_t off = (size_t)(t - s.buf) + 4 * idx;
    ref_st_close(&s);
    char p[4096];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    FILE *f = fopen(p, "r+b");
    fseek(f, (long)off, SEEK_SET);
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    assert_int_equal(fwrite(b, 1, 4, f), 4);
    fclose(f);
}

/* `xfquant info DIR` and `xfquant kld DIR DIR`: exit 1, one line naming
 * the file and `field`. */
static void expect_bad(const char *dir, const char *file, const char *field)
{
    xf_cli_result r = xf_cli_run(g_tmp, "info %s", dir);
    if (r.code != 1 || !strstr(r.err, field) || !strstr(r.err, file))
        fail_msg("info %s: exit %d, stderr: %s (wanted %s, %s)", dir, r.code, r.err, file, field);
    assert_int_equal(xf_cli_count_lines(r.err), 1);
    xf_cli_result_free(&r);
    xf_loaded_model m;
    xf_error err = {0};
    assert_int_equal(xf_model_open(&m, dir, &err), -1);
    assert_non_null(strstr(err.msg, field));
}

static void test_bad_checkpoints(void **state)
{
    (void)state;
    char *src = model_dir("llama-bad", "llama", 64, 128, 4, 2, 9);
    char *xfq = tmp_path("bad.xfq"), *gd = tmp_path("bad.gptq"), *cd = tmp_path("bad.ct");
    rtn_xfq(src, xfq, 4, 32, false);
    json_decref(export_ok(true, xfq, gd, XF_GPTQ_ZEROS_AUTO));
    json_decref(export_ok(false, xfq, cd, XF_GPTQ_ZEROS_AUTO));
    char d[4096];
    int k = 0;
    /* qweight shape contradicting bits: config says 8 */
    snprintf(d, sizeof d, "%s/bad-%d", g_tmp, k++);
    copy_dir(gd, d);
    set_qc(d, "bits", json_integer(8));
    expect_bad(d, "model.safetensors", "qweight");
    /* scales contradicting group_size */
    snprintf(d, sizeof d, "%s/bad-%d", g_tmp, k++);
    copy_dir(gd, d);
    set_qc(d, "group_size", json_integer(16));
    expect_bad(d, "model.safetensors", "contradicts group_size");
    /* g_idx out of range */
    snprintf(d, sizeof d, "%s/bad-%d", g_tmp, k++);
    copy_dir(gd, d);
    patch_i32(d, "model.layers.1.mlp.down_proj.g_idx", 5, 4);
    expect_bad(d, "model.safetensors", "g_idx[5] = 4 is out of range");
    /* missing scales */
    snprintf(d, sizeof d, "%s/bad-%d", g_tmp, k++);
    copy_dir(gd, d);
    patch_header(d, "model.layers.0.mlp.up_proj.scales", "model.layers.0.mlp.up_proj.scalez");
    expect_bad(d, "model.safetensors", "up_proj.scales is missing");
    /* unknown checkpoint_format, unknown method, bad bits */
    snprintf(d, sizeof d, "%s/bad-%d", g_tmp, k++);
    copy_dir(gd, d);
    set_qc(d, "checkpoint_format", json_string("gptq_v9"));
    expect_bad(d, "config.json", "checkpoint_format");
    snprintf(d, sizeof d, "%s/bad-%d", g_tmp, k++);
    copy_dir(gd, d);
    set_qc(d, "quant_method", json_string("awq"));
    expect_bad(d, "config.json", "quant_method \"awq\"");
    snprintf(d, sizeof d, "%s/bad-%d", g_tmp, k++);
    copy_dir(gd, d);
    set_qc(d, "bits", json_integer(5));
    expect_bad(d, "config.json", "bits = 5");
    /* compressed-tensors: weight_shape contradicting weight_packed, missing
     * weight_scale, g_idx... out of range, activation quantization */
    snprintf(d, sizeof d, "%s/bad-%d", g_tmp, k++);
    copy_dir(cd, d);
    patch_i32(d, "model.layers.0.self_attn.o_proj.weight_shape", 2, 65); /* K (I64 low word) */
    expect_bad(d, "model.safetensors", "weight_packed");
    snprintf(d, sizeof d, "%s/bad-%d", g_tmp, k++);
    copy_dir(cd, d);
    patch_header(d, "model.layers.1.self_attn.k_proj.weight_scale",
                 "model.layers.1.self_attn.k_proj.weight_scalf");
    expect_bad(d, "model.safetensors", "weight_scale is missing");
    snprintf(d, sizeof d, "%s/bad-%d", g_tmp, k++);
    copy_dir(cd, d);
    set_qc(d, "format", json_string("float-quantized"));
    expect_bad(d, "config.json", "format \"float-quantized\"");
    free(xfq);
    free(gd);
    free(cd);
    free(src);
}

/* ---- the round trip through xfquant ppl on the shared models ---- */

static char *ppl_of(const char *model, const char *text)
{
    xf_cli_result r = xf_cli_run(g_tmp, "ppl %s --text %s --max-windows 2 --json", model, text);
    if (r.code != 0)
        fail_msg("ppl %s: %s", model, r.err);
    json_t *j = json_loads(r.out, 0, NULL);
    assert_non_null(j);
    /* printed with 10 significant digits, and the NLL too: compare text */
    char *s = malloc(128);
    snprintf(s, 128, "%.17g %.17g", json_number_value(json_object_get(j, "ppl")),
             json_number_value(json_object_get(j, "nll")));
    json_decref(j);
    xf_cli_result_free(&r);
    return s;
}

static void test_ppl_roundtrip_shared(void **state)
{
    (void)state;
    XF_TEST_REQUIRE_SHARED(novels, "models/novels-5m");
    char nv[4096];
    snprintf(nv, sizeof nv, "%s", novels);
    XF_TEST_REQUIRE_SHARED(text, "data/novels/eval.txt");
    char tx[4096];
    snprintf(tx, sizeof tx, "%s", text);
    XF_TEST_REQUIRE_SHARED(stories, "models/stories260K");
    char st[4096];
    snprintf(st, sizeof st, "%s", stories);
    XF_TEST_REQUIRE_SHARED(stext, "data/tinystories/eval.txt");
    char stx[4096];
    snprintf(stx, sizeof stx, "%s", stext);

    /* (every width and grid is checked bit-exactly on random models above;
     * here the evaluator end to end, two recipes to keep the suite fast) */
    static const char *const recipes[] = {"rtn --bits 4 --group 32", "rtn --bits 2 --group 64"};
    for (int i = 0; i < 2; i++) {
        char *xfq = tmp_path("nv-%d.xfq", i), *gd = tmp_path("nv-%d.gptq", i),
             *cd = tmp_path("nv-%d.ct", i);
        char args[8192];
        snprintf(args, sizeof args, "%s %s %s", recipes[i], nv, xfq);
        xf_cli_result r = xf_cli_run(g_tmp, "%s", args);
        assert_int_equal(r.code, 0);
        xf_cli_result_free(&r);
        cli_ok("export --to gptq %s %s", xfq, gd);
        cli_ok("export --to compressed-tensors %s %s", xfq, cd);
        char *a = ppl_of(xfq, tx), *b = ppl_of(gd, tx), *c = ppl_of(cd, tx);
        print_message("novels-5m %s: .xfq %s, gptq %s, compressed-tensors %s\n", recipes[i], a,
                      b, c);
        assert_string_equal(a, b);
        assert_string_equal(a, c);
        free(a);
        free(b);
        free(c);
        free(xfq);
        free(gd);
        free(cd);
    }
    /* GPTQ with act-order and calibration (the CLI pipeline): g_idx */
    {
        char *xfq = tmp_path("nv-act.xfq"), *gd = tmp_path("nv-act.gptq"),
             *cd = tmp_path("nv-act.ct");
        char args[16384];
        snprintf(args, sizeof args,
                 "gptq --bits 4 --group 64 --act-order --calib %s --nsamples 4 %s %s", tx, nv,
                 xfq);
        xf_cli_result r = xf_cli_run(g_tmp, "%s", args);
        if (r.code != 0)
            fail_msg("%s: %s", args, r.err);
        xf_cli_result_free(&r);
        cli_ok("export --to gptq %s %s", xfq, gd);
        cli_ok("export --to compressed-tensors %s %s", xfq, cd);
        check_export(xfq, gd, true);
        check_export(xfq, cd, false);
        char *a = ppl_of(xfq, tx), *b = ppl_of(gd, tx), *c = ppl_of(cd, tx);
        print_message("novels-5m gptq 4-bit g64 act-order: .xfq %s, gptq %s, "
                      "compressed-tensors %s\n", a, b, c);
        assert_string_equal(a, b);
        assert_string_equal(a, c);
        free(a);
        free(b);
        free(c);
        free(xfq);
        free(gd);
        free(cd);
    }
    /* stories260K: down_proj has 172 inputs, which 4-bit GPTQ words cannot
     * hold; compressed-tensors pads */
    char *xfq = tmp_path("st.xfq"), *gd = tmp_path("st.gptq"), *cd = tmp_path("st.ct");
    cli_ok("rtn --bits 4 --group 32 %s %s", st, xfq);
    char args[8192];
    snprintf(args, sizeof args, "--to gptq %s %s", xfq, gd);
    expect_refused(args, "mlp.down_proj.weight is [64, 172]");
    cli_ok("export --to compressed-tensors %s %s", xfq, cd);
    char *a = ppl_of(xfq, stx), *c = ppl_of(cd, stx);
    print_message("stories260K rtn 4-bit g32: .xfq %s, compressed-tensors %s\n", a, c);
    assert_string_equal(a, c);
    free(a);
    free(c);
    free(xfq);
    free(gd);
    free(cd);
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
        cmocka_unit_test(test_rtn_matrix),
        cmocka_unit_test(test_odd_shapes),
        cmocka_unit_test(test_act_order),
        cmocka_unit_test(test_zero_point_formats),
        cmocka_unit_test(test_gpt2),
        cmocka_unit_test(test_mixed_bits),
        cmocka_unit_test(test_quantized_head),
        cmocka_unit_test(test_f32_model),
        cmocka_unit_test(test_same_bytes),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_failed_write_leaves_nothing),
        cmocka_unit_test(test_bad_checkpoints),
        cmocka_unit_test(test_ppl_roundtrip_shared),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
