/* compressed-tensors pack-quantized reader (docs/export.md,
 * "compressed-tensors"): per linear weight_packed I32 [N, ceil(K/pf)]
 * (pf = 32 / b values per word, element j at bits [b*j, b*j + b), packed
 * along K inside each row), weight_shape [N, K], weight_scale [N, G],
 * weight_zero_point I32 [ceil(N/pf), G] packed along N (asymmetric only),
 * weight_g_idx I32 [K] (optional). W = (u - u_zp) * scale with u_zp =
 * 2^(b-1) when symmetric. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json_util.h"
#include "formats/hf_quantized.h"

typedef struct ct_scheme {
    const char *group_name;
    const json_t *targets;
    int bits;
    bool sym;
    int64_t group; /* -1: channel */
} ct_scheme;


static int parse_scheme(const char *what, const char *gname, const json_t *grp, ct_scheme *s,
                        xf_error *err)
{
    memset(s, 0, sizeof *s);
    s->group_name = gname;
    s->targets = json_object_get(grp, "targets");
    const json_t *ia = json_object_get(grp, "input_activations");
    if (ia && !json_is_null(ia))
        return xf_fail(err, "%s.config_groups.%s.input_activations: activation quantization is "
                            "not supported (xfquant would evaluate the weights alone)",
                       what, gname);
    const char *gfmt = json_string_value(json_object_get(grp, "format"));
    if (gfmt && strcmp(gfmt, "pack-quantized") != 0)
        return xf_fail(err, "%s.config_groups.%s.format \"%s\" is not supported "
                            "(pack-quantized only)",
                       what, gname, gfmt);
    const json_t *w = json_object_get(grp, "weights");
    char wwhat[1400];
    snprintf(wwhat, sizeof wwhat, "%s.config_groups.%s.weights", what, gname);
    if (!json_is_object(w))
        return xf_fail(err, "%s: missing object", wwhat);
    int64_t bits, group;
    bool sym;
    const char *type, *strategy;
    if (xf_json_get_int(w, "num_bits", true, 0, &bits, wwhat, err) != 0 ||
        xf_json_get_bool(w, "symmetric", false, true, &sym, wwhat, err) != 0 ||
        xf_json_get_string(w, "type", false, "int", &type, wwhat, err) != 0 ||
        xf_json_get_string(w, "strategy", true, NULL, &strategy, wwhat, err) != 0)
        return -1;
    if (bits < 1 || bits > 8)
        return xf_fail(err, "%s.num_bits = %lld (1..8 for int32 packing)", wwhat,
                       (long long)bits);
    if (strcmp(type, "int") != 0)
        return xf_fail(err, "%s.type \"%s\" is not supported (int only)", wwhat, type);
    if (!strcmp(strategy, "channel")) {
        group = -1;
    } else if (!strcmp(strategy, "group")) {
        if (xf_json_get_int(w, "group_size", true, 0, &group, wwhat, err) != 0)
            return -1;
        if (group < 1)
            return xf_fail(err, "%s.group_size = %lld (strategy group needs > 0)", wwhat,
                           (long long)group);
    } else {
        return xf_fail(err, "%s.strategy \"%s\" is not supported (group or channel)", wwhat,
                       strategy);
    }
    s->bits = (int)bits;
    s->sym = sym;
    s->group = group;
    return 0;
}

/* The scheme of `module`: the only one, or the group naming it, or the
 * group targeting "Linear". */
static const ct_scheme *scheme_of(const ct_scheme *sc, size_t n, const char *module,
                                  const char *what, xf_error *err)
{
    if (n == 1)
        return &sc[0];
    const ct_scheme *linear = NULL;
    for (size_t k = 0; k < n; k++) {
        size_t i;
        const json_t *t;
        json_array_foreach(sc[k].targets, i, t)
        {
            const char *s = json_string_value(t);
            if (!s)
                continue;
            if (!strcmp(s, module))
                return &sc[k];
            if (!strcmp(s, "Linear") && !linear)
                linear = &sc[k];
        }
    }
    if (!linear)
        xf_fail(err, "%s.config_groups: no group targets %s by name or as Linear (regex "
                     "targets are not supported)",
                what, module);
    return linear;
}

static int read_linear(xf_hf_quantized *q, const ct_scheme *s, const char *module,
                       int64_t *params, int64_t *bytes, xf_error *err)
{
    const xf_tensor *wp = xf_hfq_part(q, module, "weight_packed");
    const xf_tensor *ws = xf_hfq_part(q, module, "weight_shape");
    const xf_tensor *sc = xf_hfq_part(q, module, "weight_scale");
    const xf_tensor *zp = xf_hfq_part(q, module, "weight_zero_point");
    const xf_tensor *gi = xf_hfq_part(q, module, "weight_g_idx");
    const char *missing = !ws ? "weight_shape" : !sc ? "weight_scale"
                                                  : (!s->sym && !zp) ? "weight_zero_point"
                                                                     : NULL;
    if (missing)
        return xf_hfq_fail_part(err, q, module, "weight_packed", "%s.%s is missing", module, missing);
    if ((ws->dtype != XF_DTYPE_I64 && ws->dtype != XF_DTYPE_I32) || xf_tensor_numel(ws) != 2)
        return xf_hfq_fail_part(err, q, module, "weight_shape", "must hold 2 integers (I64 or I32)");
    int64_t N, K;
    if (ws->dtype == XF_DTYPE_I64) {
        memcpy(&N, ws->data, 8);
        memcpy(&K, (const uint8_t *)ws->data + 8, 8);
    } else {
        N = (int32_t)xf_hfq_u32(ws->data, 0);
        K = (int32_t)xf_hfq_u32(ws->data, 1);
    }
    const int b = s->bits;
    const int64_t pf = 32 / b;
    if (N < 1 || K < 1 || N > (1LL << 31) || K > (1LL << 31))
        return xf_hfq_fail_part(err, q, module, "weight_shape", "[%lld, %lld] is not a valid shape",
                         (long long)N, (long long)K);
    const int64_t kw = (K + pf - 1) / pf, nw = (N + pf - 1) / pf;
    if (wp->dtype != XF_DTYPE_I32 || wp->ndim != 2 || wp->shape[0] != N || wp->shape[1] != kw)
        return xf_hfq_fail_part(err, q, module, "weight_packed",
                         "must be I32 [%lld, %lld] for weight_shape [%lld, %lld] at %d bits",
                         (long long)N, (long long)kw, (long long)N, (long long)K, b);
    const int64_t G = s->group < 0 ? 1 : (K - 1) / s->group + 1; /* K >= 1; no K + group overflow */
    if (sc->dtype != XF_DTYPE_F16 && sc->dtype != XF_DTYPE_BF16 && sc->dtype != XF_DTYPE_F32)
        return xf_hfq_fail_part(err, q, module, "weight_scale", "dtype %s is not a float",
                         xf_dtype_name(sc->dtype));
    if (sc->ndim != 2 || sc->shape[0] != N || sc->shape[1] != G)
        return xf_hfq_fail_part(err, q, module, "weight_scale",
                         "shape contradicts group_size %lld: needs [%lld, %lld]",
                         (long long)s->group, (long long)N, (long long)G);
    if (!s->sym && (zp->dtype != XF_DTYPE_I32 || zp->ndim != 2 || zp->shape[0] != nw ||
                    zp->shape[1] != G))
        return xf_hfq_fail_part(err, q, module, "weight_zero_point", "must be I32 [%lld, %lld]",
                         (long long)nw, (long long)G);
    if (gi && (gi->dtype != XF_DTYPE_I32 || gi->ndim != 1 || gi->shape[0] != K))
        return xf_hfq_fail_part(err, q, module, "weight_g_idx", "must be I32 [%lld]", (long long)K);
    for (int64_t i = 0; gi && i < K; i++) {
        int32_t v = (int32_t)xf_hfq_u32(gi->data, (size_t)i);
        if (v < 0 || v >= G)
            return xf_hfq_fail_part(err, q, module, "weight_g_idx",
                             "weight_g_idx[%lld] = %d is out of range [0, %lld)", (long long)i,
                             v, (long long)G);
    }
    float *W = malloc((size_t)(N * K) * sizeof *W);
    if (!W)
        return xf_fail(err, "%s: out of memory", q->hf->dir);
    const uint32_t maxq = (1u << b) - 1u;
    for (int64_t n = 0; n < N; n++)
        for (int64_t i = 0; i < K; i++) {
            const int64_t g = gi ? (int32_t)xf_hfq_u32(gi->data, (size_t)i)
                                 : (s->group < 0 ? 0 : i / s->group);
            const uint32_t u =
                (xf_hfq_u32(wp->data, (size_t)(n * kw + i / pf)) >> (b * (int)(i % pf))) & maxq;
            const uint32_t uz =
                s->sym ? 1u << (b - 1)
                       : (xf_hfq_u32(zp->data, (size_t)((n / pf) * G + g)) >> (b * (int)(n % pf))) &
                             maxq;
            W[n * K + i] = xf_hfq_scale_at(sc, n * G + g) * (float)((int)u - (int)uz);
        }
    *params += N * K;
    *bytes += (int64_t)(wp->nbytes + sc->nbytes + (zp && !s->sym ? zp->nbytes : 0) +
                        (gi ? gi->nbytes : 0));
    if (xf_hfq_add_weight(q, module, N, K, W, err) != 0)
        return -1;
    static const char *const parts[] = {"weight_packed", "weight_shape", "weight_scale",
                                        "weight_zero_point", "weight_g_idx"};
    const bool present[] = {true, true, true, zp != NULL, gi != NULL};
    for (int k = 0; k < 5; k++)
        if (present[k] && xf_hfq_consume(q, module, parts[k], err) != 0)
            return -1;
    return 0;
}

int xf_ct_read(xf_hf_quantized *q, const json_t *qc, xf_error *err)
{
    char what[1200];
    snprintf(what, sizeof what, "%s/config.json: quantization_config", q->hf->dir);
    const char *fmt = json_string_value(json_object_get(qc, "format"));
    if (fmt && strcmp(fmt, "pack-quantized") != 0)
        return xf_fail(err, "%s.format \"%s\" is not supported (pack-quantized only)", what, fmt);
    const json_t *kv = json_object_get(qc, "kv_cache_scheme");
    if (kv && !json_is_null(kv))
        return xf_fail(err, "%s.kv_cache_scheme: KV-cache quantization is not supported", what);
    const json_t *groups = json_object_get(qc, "config_groups");
    if (!json_is_object(groups) || json_object_size(groups) == 0)
        return xf_fail(err, "%s.config_groups: missing or empty", what);
    size_t ng = json_object_size(groups), k = 0;
    ct_scheme *sc = calloc(ng, sizeof *sc);
    if (!sc)
        return xf_fail(err, "%s: out of memory", what);
    const char *gname;
    const json_t *grp;
    int rc = 0;
    json_object_foreach((json_t *)groups, gname, grp)
    {
        if (rc == 0)
            rc = parse_scheme(what, gname, grp, &sc[k++], err);
    }
    int64_t params = 0, bytes = 0, n = 0;
    const xf_tensor_set *set = &q->hf->tensors;
    for (size_t i = 0; rc == 0 && i < set->n; i++) {
        const char *name = set->items[i].name;
        size_t len = strlen(name);
        static const char sfx[] = ".weight_packed";
        if (len <= sizeof sfx - 1 || strcmp(name + len - (sizeof sfx - 1), sfx) != 0)
            continue;
        char *module = strndup(name, len - (sizeof sfx - 1));
        if (!module) {
            rc = xf_fail(err, "%s: out of memory", q->hf->dir);
            break;
        }
        const ct_scheme *s = scheme_of(sc, ng, module, what, err);
        rc = s ? read_linear(q, s, module, &params, &bytes, err) : -1;
        free(module);
        n++;
    }
    if (rc == 0)
        q->info = json_pack("{s:s, s:s, s:I, s:I, s:I, s:f}", "method", "compressed-tensors",
                            "format", "pack-quantized", "config_groups", (json_int_t)ng,
                            "quantized_linears", (json_int_t)n, "quantized_params",
                            (json_int_t)params, "packed_bits_per_weight",
                            params ? 8.0 * (double)bytes / (double)params : 0.0);
    free(sc);
    return rc;
}
