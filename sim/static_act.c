/* Static per-tensor-scale quantizers of the qkv / mlp inputs (static_act.h). */
#include "sim/static_act.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const slot_names[XF_STATIC_ACT_SLOTS] = {"qkv", "mlp"};

int xf_static_act_slot(xf_lin_input in)
{
    return in == XF_IN_QKV ? 0 : in == XF_IN_MLP ? 1 : -1;
}

int xf_static_act_init(xf_static_act *s, int64_t n_layers, int64_t width, int bits,
                       xf_error *err)
{
    memset(s, 0, sizeof *s);
    if (n_layers < 1 || width < 1 || bits < 2 || bits > 8)
        return xf_fail(err, "static activation quantizers: %lld layers, %lld channels, %d bits",
                       (long long)n_layers, (long long)width, bits);
    s->n_layers = n_layers;
    s->width = width;
    s->bits = bits;
    for (int k = 0; k < XF_STATIC_ACT_SLOTS; k++) {
        s->scale[k] = calloc((size_t)n_layers, sizeof *s->scale[k]);
        s->zero[k] = calloc((size_t)(n_layers * width), sizeof *s->zero[k]);
        if (!s->scale[k] || !s->zero[k]) {
            xf_static_act_free(s);
            return xf_fail(err, "static activation quantizers: out of memory");
        }
    }
    return 0;
}

void xf_static_act_free(xf_static_act *s)
{
    for (int k = 0; k < XF_STATIC_ACT_SLOTS; k++) {
        free(s->scale[k]);
        free(s->zero[k]);
    }
    memset(s, 0, sizeof *s);
}

int xf_static_act_row(const xf_static_act *s, int64_t l, int k, float *x)
{
    const float sc = s->scale[k][l], qmax = (float)((1 << s->bits) - 1);
    const int32_t *z = s->zero[k] + l * s->width;
    int rc = 0;
    for (int64_t c = 0; c < s->width; c++) {
        if (!isfinite(x[c]))
            rc = -1;
        const float zc = (float)z[c];
        float q = rintf(x[c] / sc) + zc;
        q = q < 0.0f ? 0.0f : q > qmax ? qmax : q;
        x[c] = (q - zc) * sc;
    }
    return rc;
}

json_t *xf_static_act_to_json(const xf_static_act *s)
{
    json_t *j = json_object();
    if (!j)
        return NULL;
    json_object_set_new(j, "bits", json_integer(s->bits));
    for (int k = 0; k < XF_STATIC_ACT_SLOTS; k++) {
        json_t *arr = json_array();
        for (int64_t l = 0; arr && l < s->n_layers; l++) {
            json_t *z = json_array();
            for (int64_t c = 0; z && c < s->width; c++)
                json_array_append_new(z, json_integer(s->zero[k][l * s->width + c]));
            json_array_append_new(arr, json_pack("{s:f, s:o}", "scale", (double)s->scale[k][l],
                                                 "zero", z));
        }
        json_object_set_new(j, slot_names[k], arr);
    }
    return j;
}

int xf_static_act_from_json(xf_static_act *s, const json_t *j, const xf_model_config *cfg,
                            const char *what, xf_error *err)
{
    memset(s, 0, sizeof *s);
    if (!json_is_object(j))
        return xf_fail(err, "%s: \"static_act\" must be an object", what);
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)j, key, v) {
        if (strcmp(key, "bits") && strcmp(key, "qkv") && strcmp(key, "mlp"))
            return xf_fail(err, "%s: static_act: unknown key \"%s\"", what, key);
    }
    const json_t *b = json_object_get(j, "bits");
    if (!json_is_integer(b) || json_integer_value(b) < 2 || json_integer_value(b) > 8)
        return xf_fail(err, "%s: static_act.bits must be an integer in 2..8", what);
    if (xf_static_act_init(s, cfg->n_layers, cfg->hidden, (int)json_integer_value(b), err) != 0)
        return -1;
    const int64_t zmax = ((int64_t)1 << s->bits) - 1;
    for (int k = 0; k < XF_STATIC_ACT_SLOTS; k++) {
        const json_t *arr = json_object_get(j, slot_names[k]);
        if (!json_is_array(arr) || (int64_t)json_array_size(arr) != s->n_layers) {
            xf_static_act_free(s);
            return xf_fail(err, "%s: static_act.%s must be an array of %lld layers", what,
                           slot_names[k], (long long)cfg->n_layers);
        }
        for (int64_t l = 0; l < s->n_layers; l++) {
            const json_t *e = json_array_get(arr, (size_t)l);
            const json_t *sc = json_object_get(e, "scale"), *z = json_object_get(e, "zero");
            double scv = json_is_number(sc) ? json_number_value(sc) : -1.0;
            if (!json_is_object(e) || json_object_size(e) != 2 || !(scv > 0.0) ||
                !isfinite((float)scv) || !json_is_array(z) ||
                (int64_t)json_array_size(z) != s->width) {
                xf_static_act_free(s);
                return xf_fail(err, "%s: static_act.%s[%lld] must be {\"scale\": > 0, \"zero\": "
                                    "%lld integers}",
                               what, slot_names[k], (long long)l, (long long)cfg->hidden);
            }
            s->scale[k][l] = (float)scv;
            for (int64_t c = 0; c < s->width; c++) {
                const json_t *zc = json_array_get(z, (size_t)c);
                if (!json_is_integer(zc) || json_integer_value(zc) < 0 ||
                    json_integer_value(zc) > zmax) {
                    xf_static_act_free(s);
                    return xf_fail(err, "%s: static_act.%s[%lld].zero[%lld] is not an integer "
                                        "in 0..%lld",
                                   what, slot_names[k], (long long)l, (long long)c,
                                   (long long)zmax);
                }
                s->zero[k][l * s->width + c] = (int32_t)json_integer_value(zc);
            }
        }
    }
    return 0;
}
