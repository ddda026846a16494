#include "sim/online.h"

#include <string.h>

#include "model/weights.h"

void xf_online_init(xf_online_transforms *o)
{
    memset(o, 0, sizeof *o);
}

int xf_online_enable_down(xf_online_transforms *o, const xf_model_config *cfg, xf_error *err)
{
    if (o->down)
        return 0;
    if (xf_hadamard_init(&o->down_had, cfg->intermediate, err) != 0)
        return xf_fail_prefix(err, "online Hadamard on the down_proj input");
    o->down = true;
    return 0;
}

int xf_online_enable_qk(xf_online_transforms *o, const xf_model_config *cfg, xf_error *err)
{
    if (o->qk)
        return 0;
    if (xf_hadamard_init(&o->qk_had, cfg->head_dim, err) != 0)
        return xf_fail_prefix(err, "online Hadamard on Q and K");
    o->qk = true;
    return 0;
}

void xf_online_free(xf_online_transforms *o)
{
    if (o->down)
        xf_hadamard_free(&o->down_had);
    if (o->qk)
        xf_hadamard_free(&o->qk_had);
    memset(o, 0, sizeof *o);
}

bool xf_online_any(const xf_online_transforms *o)
{
    return o->down || o->qk;
}

int xf_online_from_json(xf_online_transforms *o, const json_t *arr, const xf_model_config *cfg,
                        const char *what, xf_error *err)
{
    xf_online_init(o);
    if (!arr || json_is_null(arr))
        return 0;
    if (!json_is_array(arr))
        return xf_fail(err, "%s: \"online_transforms\" must be an array", what);
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const json_t *e = json_array_get(arr, i);
        const char *kind = json_string_value(json_object_get(e, "kind"));
        const char *input = json_string_value(json_object_get(e, "input"));
        const json_t *n = json_object_get(e, "n");
        if (!json_is_object(e) || !kind) {
            xf_online_free(o);
            return xf_fail(err, "%s: online_transforms[%zu] has no \"kind\"", what, i);
        }
        const bool qk = input && strcmp(input, "qk") == 0;
        if (strcmp(kind, "hadamard") != 0 || !input || (strcmp(input, "down") != 0 && !qk)) {
            xf_online_free(o);
            return xf_fail(err, "%s: needs online transform \"%s\" on input \"%s\", which this "
                                "xfquant does not implement",
                           what, kind, input ? input : "?");
        }
        const int64_t want = qk ? cfg->head_dim : cfg->intermediate;
        if (json_object_size(e) != 3 || !json_is_integer(n) || json_integer_value(n) != want) {
            xf_online_free(o);
            return xf_fail(err, "%s: online_transforms[%zu]: expected {kind, input, n = %lld}",
                           what, i, (long long)want);
        }
        if ((qk ? xf_online_enable_qk(o, cfg, err) : xf_online_enable_down(o, cfg, err)) != 0) {
            xf_online_free(o);
            return xf_fail_prefix(err, "%s", what);
        }
    }
    return 0;
}

json_t *xf_online_to_json(const xf_online_transforms *o)
{
    json_t *a = json_array();
    if (o->down)
        json_array_append_new(a, json_pack("{s:s, s:s, s:I}", "kind", "hadamard", "input", "down",
                                           "n", (json_int_t)o->down_had.n));
    if (o->qk)
        json_array_append_new(a, json_pack("{s:s, s:s, s:I}", "kind", "hadamard", "input", "qk",
                                           "n", (json_int_t)o->qk_had.n));
    return a;
}

int xf_online_apply(const xf_online_transforms *o, int layer, int role, float *x, int64_t rows,
                    int64_t cols, xf_error *err)
{
    if (role != XF_LIN_DOWN || !o->down)
        return 0;
    if (cols != o->down_had.n)
        return xf_fail(err, "layer %d down input: %lld channels, the online Hadamard has %lld",
                       layer, (long long)cols, (long long)o->down_had.n);
    return xf_hadamard_rows_f32(&o->down_had, x, rows, false, err);
}

int xf_online_apply_heads(const xf_online_transforms *o, int layer, float *x, int64_t rows,
                          int64_t n_heads, int64_t head_dim, bool inverse, xf_error *err)
{
    if (!o->qk)
        return 0;
    if (head_dim != o->qk_had.n)
        return xf_fail(err, "layer %d: head_dim %lld, the online Q/K Hadamard has %lld", layer,
                       (long long)head_dim, (long long)o->qk_had.n);
    /* each head of each token is a row of head_dim values */
    return xf_hadamard_rows_f32(&o->qk_had, x, rows * n_heads, inverse, err);
}
