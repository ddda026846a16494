#include "regress/scheme_keys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { K_INT, K_NUMBER, K_NUMBER_OR_SEARCH, K_STRING, K_SYM, K_STRINGS, K_FLAG } key_type;

typedef struct {
    const char *key, *flag;
    key_type type;
    double lo, hi; /* numeric range (inclusive) */
} key_spec;

static const key_spec specs[] = {
    {"act_sym", NULL, K_SYM, 0, 0},
    {"act_group", "--act-group", K_INT, 0, 1 << 30},
    {"act_clip", "--act-clip", K_NUMBER_OR_SEARCH, 0, 1},
    {"act_inputs", "--act-inputs", K_STRING, 0, 0},
    {"kv_group", "--kv-group", K_INT, 0, 1 << 30},
    {"kv_clip", "--kv-clip", K_NUMBER, 0, 1},
    {"attn_prob_bits", "--attn-prob-bits", K_INT, 2, 8},
    {"attn_prob_quant", "--attn-prob-quant", K_STRING, 0, 0},
    {"attn_prob_base", "--attn-prob-base", K_NUMBER_OR_SEARCH, 0.0625, 4},
    {"tensor_bits", "--tensor-bits", K_STRINGS, 0, 0},
    {"smooth", "--smooth", K_NUMBER, 0, 1},
    {"outliers", "--outliers", K_NUMBER, 0, 1},
    {"smooth_inputs", "--smooth-inputs", K_STRING, 0, 0},
    {"rotate_no_online", "--rotate-no-online", K_FLAG, 0, 0},
    {"rotate_no_headwise", "--rotate-no-headwise", K_FLAG, 0, 0},
    {"klt_hadamard", "--klt-hadamard", K_FLAG, 0, 0},
    {"rotate_steps", "--rotate-steps", K_INT, 0, 1000000},
    {"rotate_lr", "--rotate-lr", K_NUMBER, 0, 1e6},
    {"weight_grid", "--weight-grid", K_STRING, 0, 0},
};
#define N_SPECS (sizeof specs / sizeof *specs)

const char *const xf_regress_scheme_keys[] = {
    "act_sym", "act_group", "act_clip", "act_inputs", "kv_group", "kv_clip", "attn_prob_bits",
    "attn_prob_quant", "attn_prob_base", "tensor_bits", "smooth", "outliers", "smooth_inputs",
    "rotate_no_online", "rotate_no_headwise", "klt_hadamard", "rotate_steps", "rotate_lr", "weight_grid", NULL};

_Static_assert(sizeof xf_regress_scheme_keys / sizeof *xf_regress_scheme_keys == N_SPECS + 1,
               "key list and spec table must match");

typedef struct {
    char **v;
    int n, cap;
} strv;

static int push(strv *a, const char *s)
{
    if (a->n + 2 > a->cap) {
        int cap = a->cap ? 2 * a->cap : 8;
        char **v = realloc(a->v, (size_t)cap * sizeof *v);
        if (!v)
            return -1;
        a->v = v;
        a->cap = cap;
    }
    if (!(a->v[a->n] = strdup(s)))
        return -1;
    a->v[++a->n] = NULL;
    return 0;
}

/* Shortest decimal that reads back as the same double. */
static void fmt_double(char *buf, size_t cap, double d)
{
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(buf, cap, "%.*g", digits, d);
        if (strtod(buf, NULL) == d)
            break;
    }
}

static int render(const key_spec *k, const json_t *v, strv *a, bool *wants_calib,
                  const char *ctx, xf_error *err)
{
    char buf[64];
    switch (k->type) {
    case K_FLAG:
        if (!json_is_boolean(v))
            return xf_fail(err, "%s: recipe: '%s' must be true or false", ctx, k->key);
        return json_is_true(v) ? push(a, k->flag) : 0; /* every such flag is off by default */
    case K_SYM:
        if (!json_is_boolean(v))
            return xf_fail(err, "%s: recipe: '%s' must be true or false", ctx, k->key);
        /* the CLI default is symmetric: false must say so explicitly */
        return push(a, json_is_true(v) ? "--act-sym" : "--act-asym");
    case K_INT:
        if (!json_is_integer(v) || json_integer_value(v) < (json_int_t)k->lo ||
            json_integer_value(v) > (json_int_t)k->hi)
            return xf_fail(err, "%s: recipe: '%s' must be an integer in [%g, %g]", ctx, k->key,
                           k->lo, k->hi);
        snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
        return push(a, k->flag) || push(a, buf);
    case K_NUMBER_OR_SEARCH:
        if (json_is_string(v) && !strcmp(json_string_value(v), "search")) {
            *wants_calib = true;
            return push(a, k->flag) || push(a, "search");
        }
        /* fall through */
    case K_NUMBER: {
        double d = json_is_number(v) ? json_number_value(v) : -1.0;
        bool lo_open = k->lo == 0.0 && strcmp(k->key, "smooth") && strcmp(k->key, "outliers");
        if (!json_is_number(v) || !(lo_open ? d > k->lo : d >= k->lo) || !(d <= k->hi))
            return xf_fail(err, "%s: recipe: '%s' must be a number in %s%g, %g]%s", ctx, k->key,
                           lo_open ? "(" : "[", k->lo, k->hi,
                           k->type == K_NUMBER_OR_SEARCH ? " or \"search\"" : "");
        fmt_double(buf, sizeof buf, d);
        return push(a, k->flag) || push(a, buf);
    }
    case K_STRING:
        if (!json_is_string(v) || json_string_length(v) == 0)
            return xf_fail(err, "%s: recipe: '%s' must be a non-empty string", ctx, k->key);
        return push(a, k->flag) || push(a, json_string_value(v));
    case K_STRINGS:
        if (!json_is_array(v) || json_array_size(v) == 0)
            return xf_fail(err, "%s: recipe: '%s' must be a non-empty array of strings", ctx,
                           k->key);
        for (size_t i = 0; i < json_array_size(v); i++) {
            const json_t *e = json_array_get(v, i);
            if (!json_is_string(e) || json_string_length(e) == 0)
                return xf_fail(err, "%s: recipe: '%s'[%zu] must be a non-empty string", ctx,
                               k->key, i);
            if (push(a, k->flag) || push(a, json_string_value(e)))
                return -1;
        }
        return 0;
    }
    return xf_fail(err, "%s: recipe: '%s': unknown key type", ctx, k->key);
}

int xf_regress_scheme_flags(const json_t *j, char ***flags, int *n, bool *wants_calib,
                            const char *ctx, xf_error *err)
{
    strv a = {0};
    *flags = NULL;
    *n = 0;
    /* smoothing and the data-driven rotations read calibration text too */
    const char *rot = json_string_value(json_object_get(j, "rotate"));
    *wants_calib = json_object_get(j, "smooth") ||
                   (rot && (!strcmp(rot, "klt") || !strcmp(rot, "learned")));
    for (size_t i = 0; i < N_SPECS; i++) {
        const json_t *v = json_object_get(j, specs[i].key);
        if (!v)
            continue;
        xf_error e = {0};
        if (render(&specs[i], v, &a, wants_calib, ctx, &e) != 0) {
            xf_regress_scheme_flags_free(a.v);
            return e.msg[0] ? xf_fail(err, "%s", e.msg) : xf_fail(err, "%s: out of memory", ctx);
        }
    }
    *flags = a.v;
    *n = a.n;
    return 0;
}

void xf_regress_scheme_flags_free(char **flags)
{
    for (char **p = flags; p && *p; p++)
        free(*p);
    free(flags);
}
