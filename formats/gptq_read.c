/* GPTQ checkpoint reader (docs/export.md, "GPTQ checkpoints"): per linear
 * qweight I32 [K*b/32, N] packed along K as a little-endian bit stream
 * (3 bits: values straddle words), qzeros I32 [G, N*b/32] packed along N,
 * scales [G, N], g_idx I32 [K] (absent: i // group_size). v1
 * ("gptq", the default) stores z - 1: the value read is (stored + 1) & maxq,
 * as AutoGPTQ's reference dequantization does; v2 stores z. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json_util.h"
#include "formats/hf_quantized.h"

/* Element i of a little-endian stream of `bits`-bit values in words spaced
 * `stride` apart. */
static uint32_t get_bits(const uint32_t *words, size_t stride, int64_t i, int bits)
{
    const uint64_t bit = (uint64_t)i * (uint64_t)bits;
    const uint64_t w = bit / 32;
    const unsigned sh = (unsigned)(bit % 32);
    uint64_t v = xf_hfq_u32(words, w * stride) >> sh;
    if (sh + (unsigned)bits > 32)
        v |= (uint64_t)xf_hfq_u32(words, (w + 1) * stride) << (32 - sh);
    return (uint32_t)v & ((1u << bits) - 1u);
}


typedef struct gptq_cfg {
    int bits;
    int64_t group; /* -1: one group */
    bool v2;
    const char *format;
} gptq_cfg;

static int parse_cfg(const xf_hf_quantized *q, const json_t *qc, gptq_cfg *c, xf_error *err)
{
    char what[1200];
    snprintf(what, sizeof what, "%s/config.json: quantization_config", q->hf->dir);
    int64_t bits, group;
    if (xf_json_get_int(qc, "bits", true, 0, &bits, what, err) != 0 ||
        xf_json_get_int(qc, "group_size", true, 0, &group, what, err) != 0)
        return -1;
    if (bits != 2 && bits != 3 && bits != 4 && bits != 8)
        return xf_fail(err, "%s.bits = %lld (GPTQ takes 2, 3, 4 or 8)", what, (long long)bits);
    if (group != -1 && group < 1)
        return xf_fail(err, "%s.group_size = %lld (-1 or a positive number)", what,
                       (long long)group);
    const json_t *f = json_object_get(qc, "checkpoint_format");
    if (!f) { /* GPTQModel also writes "format"; absent everywhere: v1 */
        const json_t *g = json_object_get(qc, "format");
        if (json_is_string(g) && (!strcmp(json_string_value(g), "gptq") ||
                                  !strcmp(json_string_value(g), "gptq_v2")))
            f = g;
    }
    c->format = f ? json_string_value(f) : "gptq";
    if (!c->format || (strcmp(c->format, "gptq") != 0 && strcmp(c->format, "gptq_v2") != 0))
        return xf_fail(err, "%s.checkpoint_format: unknown value %s (gptq or gptq_v2)", what,
                       c->format ? c->format : "(not a string)");
    const json_t *dyn = json_object_get(qc, "dynamic");
    if (dyn && !json_is_null(dyn) && !(json_is_object(dyn) && json_object_size(dyn) == 0))
        return xf_fail(err, "%s.dynamic: per-module overrides are not supported", what);
    c->bits = (int)bits;
    c->group = group;
    c->v2 = !strcmp(c->format, "gptq_v2");
    return 0;
}

static const xf_tensor *require(const xf_hf_quantized *q, const char *module, const char *suffix,
                                xf_dtype a, xf_dtype b, xf_dtype c, int ndim, xf_error *err)
{
    const xf_tensor *t = xf_hfq_part(q, module, suffix);
    if (!t) {
        char name[1024];
        snprintf(name, sizeof name, "%s.qweight", module);
        xf_fail(err, "%s: %s.%s is missing (quantized linear %s)", xf_hfq_file_of(q, name),
                module, suffix, module);
        return NULL;
    }
    if (t->dtype != a && t->dtype != b && t->dtype != c) {
        xf_hfq_fail_part(err, q, module, suffix, "dtype %s is not %s", xf_dtype_name(t->dtype),
                  xf_dtype_name(a));
        return NULL;
    }
    if (t->ndim != ndim) {
        xf_hfq_fail_part(err, q, module, suffix, "%d dimensions, expected %d", t->ndim, ndim);
        return NULL;
    }
    return t;
}

static int read_linear(xf_hf_quantized *q, const gptq_cfg *c, const char *module,
                       int64_t *params, int64_t *bytes, xf_error *err)
{
    const xf_dtype I = XF_DTYPE_I32;
    const xf_tensor *qw = require(q, module, "qweight", I, I, I, 2, err);
    const xf_tensor *qz = qw ? require(q, module, "qzeros", I, I, I, 2, err) : NULL;
    const xf_tensor *sc = qz ? require(q, module, "scales", XF_DTYPE_F16, XF_DTYPE_BF16,
                                       XF_DTYPE_F32, 2, err)
                             : NULL;
    if (!sc)
        return -1;
    const xf_tensor *gi = xf_hfq_part(q, module, "g_idx");
    const int b = c->bits;
    const int64_t rows = qw->shape[0], N = qw->shape[1];
    /* first: an empty qweight's other dim is unbounded by the file (rows * 32 overflows) */
    if (rows < 1 || N < 1)
        return xf_hfq_fail_part(err, q, module, "qweight", "empty shape");
    int64_t K;
    if (gi) {
        if (gi->dtype != I || gi->ndim != 1)
            return xf_hfq_fail_part(err, q, module, "g_idx", "must be a 1-D I32 tensor");
        K = gi->shape[0];
        if (rows * 32 != K * b)
            return xf_hfq_fail_part(err, q, module, "qweight",
                             "shape [%lld, %lld] contradicts bits %d: g_idx has K = %lld, so "
                             "qweight needs K*%d/32 = %lld rows",
                             (long long)rows, (long long)N, b, (long long)K, b,
                             (long long)(K * b / 32));
    } else {
        if ((rows * 32) % b != 0)
            return xf_hfq_fail_part(err, q, module, "qweight",
                             "%lld rows is not a whole number of %d-bit values", (long long)rows,
                             b);
        K = rows * 32 / b;
    }
    if (K < 1 || N < 1)
        return xf_hfq_fail_part(err, q, module, "qweight", "empty shape");
    const int64_t G = c->group < 0 ? 1 : (K - 1) / c->group + 1; /* K >= 1; no K + group overflow */
    if (sc->shape[0] != G || sc->shape[1] != N)
        return xf_hfq_fail_part(err, q, module, "scales",
                         "shape [%lld, %lld] contradicts group_size %lld: K = %lld and N = %lld "
                         "need [%lld, %lld]",
                         (long long)sc->shape[0], (long long)sc->shape[1], (long long)c->group,
                         (long long)K, (long long)N, (long long)G, (long long)N);
    if ((N * b) % 32 != 0 || qz->shape[0] != G || qz->shape[1] != N * b / 32)
        return xf_hfq_fail_part(err, q, module, "qzeros",
                         "shape [%lld, %lld] contradicts bits %d / group_size %lld (N = %lld: "
                         "needs [%lld, N*%d/32])",
                         (long long)qz->shape[0], (long long)qz->shape[1], b,
                         (long long)c->group, (long long)N, (long long)G, b);
    int32_t *g_idx = gi ? malloc((size_t)K * sizeof *g_idx) : NULL;
    if (gi && !g_idx)
        return xf_fail(err, "%s: out of memory", q->hf->dir);
    for (int64_t i = 0; g_idx && i < K; i++) {
        g_idx[i] = (int32_t)xf_hfq_u32(gi->data, (size_t)i);
        if (g_idx[i] < 0 || g_idx[i] >= G) {
            int v = g_idx[i];
            free(g_idx);
            return xf_hfq_fail_part(err, q, module, "g_idx", "g_idx[%lld] = %d is out of range [0, %lld)",
                             (long long)i, v, (long long)G);
        }
    }

    float *W = malloc((size_t)(N * K) * sizeof *W);
    int32_t *zeros = malloc((size_t)(G * N) * sizeof *zeros);
    if (!W || !zeros) {
        free(W);
        free(zeros);
        free(g_idx);
        return xf_fail(err, "%s: out of memory", q->hf->dir);
    }
    const uint32_t *qwords = qw->data, *zwords = qz->data;
    const uint32_t maxq = (1u << b) - 1u;
    for (int64_t g = 0; g < G; g++)
        for (int64_t n = 0; n < N; n++) {
            uint32_t z = get_bits(zwords + g * (N * b / 32), 1, n, b);
            zeros[g * N + n] = (int32_t)(c->v2 ? z : (z + 1u) & maxq);
        }
    for (int64_t i = 0; i < K; i++) {
        const int64_t g = g_idx ? g_idx[i] : (c->group < 0 ? 0 : i / c->group);
        for (int64_t n = 0; n < N; n++) {
            const int qv = (int)get_bits(qwords + n, (size_t)N, i, b);
            const float s = xf_hfq_scale_at(sc, g * N + n);
            W[n * K + i] = s * (float)(qv - zeros[g * N + n]);
        }
    }
    free(zeros);
    free(g_idx);
    *params += N * K;
    *bytes += (int64_t)(qw->nbytes + qz->nbytes + sc->nbytes + (gi ? gi->nbytes : 0));
    if (xf_hfq_add_weight(q, module, N, K, W, err) != 0)
        return -1;
    static const char *const parts[] = {"qweight", "qzeros", "scales", "g_idx"};
    for (int k = 0; k < (gi ? 4 : 3); k++)
        if (xf_hfq_consume(q, module, parts[k], err) != 0)
            return -1;
    return 0;
}

int xf_gptq_read(xf_hf_quantized *q, const json_t *qc, xf_error *err)
{
    gptq_cfg c;
    if (parse_cfg(q, qc, &c, err) != 0)
        return -1;
    int64_t params = 0, bytes = 0, n = 0;
    const xf_tensor_set *set = &q->hf->tensors;
    for (size_t i = 0; i < set->n; i++) {
        const char *name = set->items[i].name;
        size_t len = strlen(name);
        if (len <= 8 || strcmp(name + len - 8, ".qweight") != 0)
            continue;
        char *module = strndup(name, len - 8);
        if (!module)
            return xf_fail(err, "%s: out of memory", q->hf->dir);
        int rc = read_linear(q, &c, module, &params, &bytes, err);
        free(module);
        if (rc != 0)
            return -1;
        n++;
    }
    q->info = json_pack("{s:s, s:s, s:i, s:I, s:O, s:O, s:I, s:I, s:f}", "method", "gptq",
                        "checkpoint_format", c.format, "bits", c.bits, "group_size",
                        (json_int_t)c.group, "sym",
                        json_object_get(qc, "sym") ? json_object_get(qc, "sym") : json_null(),
                        "desc_act",
                        json_object_get(qc, "desc_act") ? json_object_get(qc, "desc_act")
                                                        : json_null(),
                        "quantized_linears", (json_int_t)n, "quantized_params",
                        (json_int_t)params, "packed_bits_per_weight",
                        params ? 8.0 * (double)bytes / (double)params : 0.0);
    return 0;
}
