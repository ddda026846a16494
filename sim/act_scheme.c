/* xf_act_scheme: defaults, checks and the JSON form stored in .xfq recipes. */
#include "sim/act_quant.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/json_util.h"
#include "sim/online.h"
#include "sim/razor_quant.h"

void xf_act_scheme_default(xf_act_scheme *s)
{
    memset(s, 0, sizeof *s);
    s->act_sym = true;
    s->act_clip = 1.0;
    s->act_inputs = XF_IN_ALL;
    s->kv_clip = 1.0;
    s->attn_prob_quant = XF_PROB_UNIFORM;
    s->attn_prob_log2_base = 1.0;
    s->razor_group = 16;
    s->razor_base_bits = 16;
    s->kv_razor_base_bits = 8;
    s->kv_keep_window = 16;
}

const char *xf_act_kind_name(xf_act_kind k)
{
    return k == XF_ACT_KIND_INT ? "int" : k == XF_ACT_KIND_RAZOR ? "razor" : NULL;
}

int xf_act_kind_from_name(const char *name, xf_act_kind *out)
{
    if (name && strcmp(name, "int") == 0)
        *out = XF_ACT_KIND_INT;
    else if (name && strcmp(name, "razor") == 0)
        *out = XF_ACT_KIND_RAZOR;
    else
        return -1;
    return 0;
}

const char *xf_kv_keep_name(xf_kv_keep_kind k)
{
    return k == XF_KV_KEEP_NONE     ? "none"
           : k == XF_KV_KEEP_LOG    ? "log"
           : k == XF_KV_KEEP_RECENT ? "recent"
                                    : NULL;
}

int xf_kv_keep_from_name(const char *name, xf_kv_keep_kind *out)
{
    static const xf_kv_keep_kind kinds[] = {XF_KV_KEEP_NONE, XF_KV_KEEP_LOG, XF_KV_KEEP_RECENT};
    for (size_t i = 0; name && i < sizeof kinds / sizeof *kinds; i++)
        if (strcmp(name, xf_kv_keep_name(kinds[i])) == 0) {
            *out = kinds[i];
            return 0;
        }
    return -1;
}

void xf_act_scheme_quarot(xf_act_scheme *s, int act_bits, int kv_bits)
{
    xf_act_scheme_default(s);
    s->act_bits = act_bits;
    s->act_sym = true;
    s->act_clip = 0.9;
    s->kv_bits = kv_bits;
    s->kv_group = 128;
    s->kv_clip = 0.95;
}

bool xf_act_scheme_is_off(const xf_act_scheme *s)
{
    return (s->act_bits == 0 || (s->act_inputs & XF_IN_ALL) == 0) && s->kv_bits == 0 &&
           s->attn_prob_bits == 0;
}

bool xf_act_scheme_needs_hooks(const xf_act_scheme *s)
{
    return !xf_act_scheme_is_off(s) || (s->online && xf_online_any(s->online));
}

double xf_act_scheme_clip(const xf_act_scheme *s, xf_lin_input in)
{
    double c = (int)in >= 0 && in < XF_IN_COUNT ? s->act_clip_input[in] : 0.0;
    return c > 0.0 ? c : s->act_clip;
}

static bool bits_ok(int b, int max)
{
    return b == 0 || (b >= XF_ACT_MIN_BITS && b <= max);
}

static bool clip_ok(double c)
{
    return c > 0.0 && c <= 1.0; /* false for NaN */
}

int xf_act_scheme_check(const xf_act_scheme *s, const char *what, xf_error *err)
{
    if (!bits_ok(s->act_bits, XF_ACT_MAX_BITS))
        return xf_fail(err, "%s: act_bits %d is not 0 (off) or %d..%d", what, s->act_bits,
                       XF_ACT_MIN_BITS, XF_ACT_MAX_BITS);
    if (!bits_ok(s->kv_bits, XF_ACT_MAX_BITS))
        return xf_fail(err, "%s: kv_bits %d is not 0 (off) or %d..%d", what, s->kv_bits,
                       XF_ACT_MIN_BITS, XF_ACT_MAX_BITS);
    if (!bits_ok(s->attn_prob_bits, 8))
        return xf_fail(err, "%s: attn_prob_bits %d is not 0 (off) or %d..8", what,
                       s->attn_prob_bits, XF_ACT_MIN_BITS);
    if (s->act_group < 0)
        return xf_fail(err, "%s: act_group %lld < 0", what, (long long)s->act_group);
    if (s->kv_group < 0)
        return xf_fail(err, "%s: kv_group %lld < 0", what, (long long)s->kv_group);
    if (!clip_ok(s->act_clip))
        return xf_fail(err, "%s: act_clip %g outside (0, 1]", what, s->act_clip);
    for (int i = 0; i < XF_IN_COUNT; i++)
        if (s->act_clip_input[i] != 0.0 && !clip_ok(s->act_clip_input[i]))
            return xf_fail(err, "%s: act_clip of input %s is %g, outside (0, 1]", what,
                           xf_lin_input_name((xf_lin_input)i), s->act_clip_input[i]);
    if ((s->act_inputs & ~XF_IN_ALL) != 0)
        return xf_fail(err, "%s: act_inputs mask 0x%x has unknown bits", what, s->act_inputs);
    if (!clip_ok(s->kv_clip))
        return xf_fail(err, "%s: kv_clip %g outside (0, 1]", what, s->kv_clip);
    if (!xf_prob_quant_name(s->attn_prob_quant))
        return xf_fail(err, "%s: unknown attn_prob_quant %d", what, (int)s->attn_prob_quant);
    if (!(s->attn_prob_log2_base >= 1.0 / 16.0 && s->attn_prob_log2_base <= 4.0))
        return xf_fail(err, "%s: attn_prob_log2_base %g outside [1/16, 4]", what,
                       s->attn_prob_log2_base);
    if (!xf_act_kind_name(s->act_kind) || !xf_act_kind_name(s->kv_kind))
        return xf_fail(err, "%s: unknown act_quant/kv_quant kind", what);
    if (s->razor_group < 0)
        return xf_fail(err, "%s: razor_group %lld < 0", what, (long long)s->razor_group);
    if (s->razor_base_bits < XF_RAZOR_MIN_BASE_BITS || s->razor_base_bits > XF_RAZOR_MAX_BASE_BITS ||
        s->kv_razor_base_bits < XF_RAZOR_MIN_BASE_BITS ||
        s->kv_razor_base_bits > XF_RAZOR_MAX_BASE_BITS)
        return xf_fail(err, "%s: razor base bits %d / %d outside %d..%d", what,
                       s->razor_base_bits, s->kv_razor_base_bits, XF_RAZOR_MIN_BASE_BITS,
                       XF_RAZOR_MAX_BASE_BITS);
    if (s->act_kind == XF_ACT_KIND_RAZOR && s->act_bits >= s->razor_base_bits)
        return xf_fail(err, "%s: razor keeps act_bits %d of %d base bits: keep fewer", what,
                       s->act_bits, s->razor_base_bits);
    if (s->kv_kind == XF_ACT_KIND_RAZOR && s->kv_bits >= s->kv_razor_base_bits)
        return xf_fail(err, "%s: razor keeps kv_bits %d of %d base bits: keep fewer", what,
                       s->kv_bits, s->kv_razor_base_bits);
    if (!xf_kv_keep_name(s->kv_keep))
        return xf_fail(err, "%s: unknown kv_keep %d", what, (int)s->kv_keep);
    if (s->kv_keep_window < 1 || s->kv_keep_window > (INT64_C(1) << 30))
        return xf_fail(err, "%s: kv_keep_window %lld outside 1..2^30", what,
                       (long long)s->kv_keep_window);
    if (s->kv_keep != XF_KV_KEEP_NONE && s->kv_bits == 0)
        return xf_fail(err, "%s: kv_keep %s needs a quantized KV cache (kv_bits)", what,
                       xf_kv_keep_name(s->kv_keep));
    return 0;
}

int xf_act_scheme_kv_group(const xf_act_scheme *s, int64_t head_dim, int64_t *group,
                           xf_error *err)
{
    int64_t g = s->kv_group;
    if (head_dim < 1)
        return xf_fail(err, "kv quantization: head_dim %lld < 1", (long long)head_dim);
    if (g == 0 || g % head_dim == 0)
        g = head_dim; /* one group per head: groups never span heads */
    else if (head_dim % g != 0)
        return xf_fail(err, "kv quantization: kv_group %lld neither divides head_dim %lld nor "
                            "is a multiple of it",
                       (long long)s->kv_group, (long long)head_dim);
    *group = g;
    return 0;
}

/* ---- JSON ----------------------------------------------------------------- */

static const char *const known_keys[] = {
    "act_bits", "act_sym", "act_group", "act_clip", "act_clip_inputs", "act_inputs",
    "kv_bits", "kv_group", "kv_clip", "attn_prob_bits", "attn_prob_quant",
    "attn_prob_log2_base", "act_quant", "kv_quant", "razor_group", "razor_base_bits",
    "kv_razor_base_bits", "kv_keep", "kv_keep_window",
};

json_t *xf_act_scheme_to_json(const xf_act_scheme *s)
{
    json_t *j = json_object();
    json_t *clips = json_object(), *inputs = json_array();
    for (int i = 0; i < XF_IN_COUNT; i++) {
        const char *name = xf_lin_input_name((xf_lin_input)i);
        json_object_set_new(clips, name, json_real(s->act_clip_input[i]));
        if (s->act_inputs & (1u << i))
            json_array_append_new(inputs, json_string(name));
    }
    json_object_set_new(j, "act_bits", json_integer(s->act_bits));
    json_object_set_new(j, "act_sym", json_boolean(s->act_sym));
    json_object_set_new(j, "act_group", json_integer(s->act_group));
    json_object_set_new(j, "act_clip", json_real(s->act_clip));
    json_object_set_new(j, "act_clip_inputs", clips);
    json_object_set_new(j, "act_inputs", inputs);
    json_object_set_new(j, "kv_bits", json_integer(s->kv_bits));
    json_object_set_new(j, "kv_group", json_integer(s->kv_group));
    json_object_set_new(j, "kv_clip", json_real(s->kv_clip));
    json_object_set_new(j, "attn_prob_bits", json_integer(s->attn_prob_bits));
    const char *pq = xf_prob_quant_name(s->attn_prob_quant);
    json_object_set_new(j, "attn_prob_quant", json_string(pq ? pq : "?"));
    json_object_set_new(j, "attn_prob_log2_base", json_real(s->attn_prob_log2_base));
    /* written only when used: the objects of other schemes keep their bytes */
    if (s->act_kind != XF_ACT_KIND_INT) {
        json_object_set_new(j, "act_quant", json_string(xf_act_kind_name(s->act_kind)));
        json_object_set_new(j, "razor_base_bits", json_integer(s->razor_base_bits));
    }
    if (s->kv_kind != XF_ACT_KIND_INT) {
        json_object_set_new(j, "kv_quant", json_string(xf_act_kind_name(s->kv_kind)));
        json_object_set_new(j, "kv_razor_base_bits", json_integer(s->kv_razor_base_bits));
    }
    if (s->act_kind != XF_ACT_KIND_INT || s->kv_kind != XF_ACT_KIND_INT)
        json_object_set_new(j, "razor_group", json_integer(s->razor_group));
    if (s->kv_keep != XF_KV_KEEP_NONE) {
        json_object_set_new(j, "kv_keep", json_string(xf_kv_keep_name(s->kv_keep)));
        json_object_set_new(j, "kv_keep_window", json_integer(s->kv_keep_window));
    }
    return j;
}

static int get_small_int(const json_t *j, const char *key, int *out, const char *what,
                         xf_error *err)
{
    int64_t v;
    if (xf_json_get_int(j, key, false, *out, &v, what, err) != 0)
        return -1;
    if (v < -1000 || v > 1000)
        return xf_fail(err, "%s: field \"%s\" = %lld out of range", what, key, (long long)v);
    *out = (int)v;
    return 0;
}

static int parse_inputs(const json_t *arr, unsigned *mask, const char *what, xf_error *err)
{
    if (!json_is_array(arr))
        return xf_fail(err, "%s: field \"act_inputs\" must be an array of input names", what);
    unsigned m = 0;
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const json_t *e = json_array_get(arr, i);
        xf_lin_input in;
        if (!json_is_string(e) || xf_lin_input_from_name(json_string_value(e), &in) != 0)
            return xf_fail(err, "%s: act_inputs[%zu] is not one of qkv, o, mlp, down", what, i);
        if (m & (1u << in))
            return xf_fail(err, "%s: act_inputs lists \"%s\" twice", what, xf_lin_input_name(in));
        m |= 1u << in;
    }
    *mask = m;
    return 0;
}

static int parse_clips(const json_t *obj, double *clips, const char *what, xf_error *err)
{
    if (!json_is_object(obj))
        return xf_fail(err, "%s: field \"act_clip_inputs\" must be an object", what);
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)obj, key, v) {
        xf_lin_input in;
        if (xf_lin_input_from_name(key, &in) != 0)
            return xf_fail(err, "%s: act_clip_inputs: unknown input \"%s\" (qkv, o, mlp, down)",
                           what, key);
        if (!json_is_number(v))
            return xf_fail(err, "%s: act_clip_inputs.%s must be a number", what, key);
        clips[in] = json_number_value(v);
    }
    return 0;
}

int xf_act_scheme_from_json(xf_act_scheme *s, const json_t *j, const char *what, xf_error *err)
{
    xf_act_scheme t;
    xf_act_scheme_default(&t);
    if (!json_is_object(j))
        return xf_fail(err, "%s: activation scheme must be a JSON object", what);
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)j, key, v) {
        bool known = false;
        for (size_t i = 0; i < sizeof known_keys / sizeof *known_keys; i++)
            known = known || strcmp(key, known_keys[i]) == 0;
        if (!known)
            return xf_fail(err, "%s: unknown activation scheme key \"%s\"", what, key);
    }
    int64_t g;
    const char *pq;
    if (get_small_int(j, "act_bits", &t.act_bits, what, err) != 0 ||
        xf_json_get_bool(j, "act_sym", false, t.act_sym, &t.act_sym, what, err) != 0 ||
        xf_json_get_int(j, "act_group", false, 0, &g, what, err) != 0)
        return -1;
    t.act_group = g;
    if (xf_json_get_double(j, "act_clip", false, t.act_clip, &t.act_clip, what, err) != 0 ||
        get_small_int(j, "kv_bits", &t.kv_bits, what, err) != 0 ||
        xf_json_get_int(j, "kv_group", false, 0, &g, what, err) != 0)
        return -1;
    t.kv_group = g;
    if (xf_json_get_double(j, "kv_clip", false, t.kv_clip, &t.kv_clip, what, err) != 0 ||
        get_small_int(j, "attn_prob_bits", &t.attn_prob_bits, what, err) != 0 ||
        xf_json_get_string(j, "attn_prob_quant", false, "uniform", &pq, what, err) != 0 ||
        xf_json_get_double(j, "attn_prob_log2_base", false, t.attn_prob_log2_base,
                           &t.attn_prob_log2_base, what, err) != 0)
        return -1;
    if (xf_prob_quant_from_name(pq, &t.attn_prob_quant) != 0)
        return xf_fail(err, "%s: attn_prob_quant \"%s\" is not uniform or log2", what, pq);
    const char *aq, *kq, *kk;
    if (xf_json_get_string(j, "act_quant", false, "int", &aq, what, err) != 0 ||
        xf_json_get_string(j, "kv_quant", false, "int", &kq, what, err) != 0 ||
        xf_json_get_string(j, "kv_keep", false, "none", &kk, what, err) != 0 ||
        xf_json_get_int(j, "razor_group", false, t.razor_group, &t.razor_group, what, err) != 0 ||
        get_small_int(j, "razor_base_bits", &t.razor_base_bits, what, err) != 0 ||
        get_small_int(j, "kv_razor_base_bits", &t.kv_razor_base_bits, what, err) != 0 ||
        xf_json_get_int(j, "kv_keep_window", false, t.kv_keep_window, &t.kv_keep_window, what,
                        err) != 0)
        return -1;
    if (xf_act_kind_from_name(aq, &t.act_kind) != 0)
        return xf_fail(err, "%s: act_quant \"%s\" is not int or razor", what, aq);
    if (xf_act_kind_from_name(kq, &t.kv_kind) != 0)
        return xf_fail(err, "%s: kv_quant \"%s\" is not int or razor", what, kq);
    if (xf_kv_keep_from_name(kk, &t.kv_keep) != 0)
        return xf_fail(err, "%s: kv_keep \"%s\" is not none, log or recent", what, kk);
    const json_t *in = json_object_get(j, "act_inputs");
    if (in && parse_inputs(in, &t.act_inputs, what, err) != 0)
        return -1;
    const json_t *cl = json_object_get(j, "act_clip_inputs");
    if (cl && parse_clips(cl, t.act_clip_input, what, err) != 0)
        return -1;
    if (xf_act_scheme_check(&t, what, err) != 0)
        return -1;
    *s = t;
    return 0;
}

static void add_clip(char *buf, size_t cap, double clip)
{
    if (clip != 1.0)
        snprintf(buf + strlen(buf), cap - strlen(buf), " clip %g", clip);
}

void xf_act_scheme_describe(const xf_act_scheme *s, char *buf, size_t cap)
{
    if (cap == 0)
        return;
    buf[0] = '\0';
    if (s->act_bits > 0 && (s->act_inputs & XF_IN_ALL)) {
        if (s->act_kind == XF_ACT_KIND_RAZOR)
            snprintf(buf, cap, "A%d razor base %d rg%lld", s->act_bits, s->razor_base_bits,
                     (long long)s->razor_group);
        else
            snprintf(buf, cap, "A%d %s", s->act_bits, s->act_sym ? "sym" : "asym");
        if (s->act_group > 0)
            snprintf(buf + strlen(buf), cap - strlen(buf), " g%lld", (long long)s->act_group);
        bool per_input = false;
        for (int i = 0; i < XF_IN_COUNT; i++)
            per_input = per_input || s->act_clip_input[i] > 0.0;
        if (per_input) {
            snprintf(buf + strlen(buf), cap - strlen(buf), " clip");
            for (int i = 0; i < XF_IN_COUNT; i++)
                snprintf(buf + strlen(buf), cap - strlen(buf), "%s%s=%g", i ? "," : " ",
                         xf_lin_input_name((xf_lin_input)i),
                         xf_act_scheme_clip(s, (xf_lin_input)i));
        } else {
            add_clip(buf, cap, s->act_clip);
        }
        if ((s->act_inputs & XF_IN_ALL) != XF_IN_ALL) {
            snprintf(buf + strlen(buf), cap - strlen(buf), " on");
            for (int i = 0, first = 1; i < XF_IN_COUNT; i++)
                if (s->act_inputs & (1u << i)) {
                    snprintf(buf + strlen(buf), cap - strlen(buf), "%s%s", first ? " " : ",",
                             xf_lin_input_name((xf_lin_input)i));
                    first = 0;
                }
        }
    }
    if (s->static_act && s->act_bits > 0)
        snprintf(buf + strlen(buf), cap - strlen(buf), " (qkv/mlp static, RepQuant)");
    if (s->kv_bits > 0) {
        snprintf(buf + strlen(buf), cap - strlen(buf), "%sKV%d", buf[0] ? ", " : "", s->kv_bits);
        if (s->kv_group > 0)
            snprintf(buf + strlen(buf), cap - strlen(buf), " g%lld", (long long)s->kv_group);
        add_clip(buf, cap, s->kv_clip);
        if (s->kv_kind == XF_ACT_KIND_RAZOR)
            snprintf(buf + strlen(buf), cap - strlen(buf), " razor base %d rg%lld",
                     s->kv_razor_base_bits, (long long)s->razor_group);
        if (s->kv_keep != XF_KV_KEEP_NONE)
            snprintf(buf + strlen(buf), cap - strlen(buf), " keep %s W%lld",
                     xf_kv_keep_name(s->kv_keep), (long long)s->kv_keep_window);
    }
    if (s->attn_prob_bits > 0) {
        snprintf(buf + strlen(buf), cap - strlen(buf), "%sP%d %s", buf[0] ? ", " : "",
                 s->attn_prob_bits, xf_prob_quant_name(s->attn_prob_quant));
        if (s->attn_prob_quant == XF_PROB_LOG2)
            snprintf(buf + strlen(buf), cap - strlen(buf), " base 2^%g", s->attn_prob_log2_base);
    }
}
