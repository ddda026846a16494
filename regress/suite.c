/* Strict parsing of regression suite files (schema: docs/regress.md). */
#include "regress/suite.h"

#include <ctype.h>
#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json_util.h"
#include "core/read_file.h"
#include "pipeline/recipe_options.h"

static const char *const metric_names[XF_REGRESS_N_METRICS] = {"ppl", "kld", "bits_per_weight",
                                                               "seconds", "file_bytes"};
static const char *const method_names[] = {"fp16", "rtn", "gptq", "llama-quantize"};
static const char *const scorer_names[] = {"xfquant", "llama-perplexity"};
static const char *const op_names[] = {"<", "<=", ">", ">="};

const char *xf_regress_metric_name(xf_regress_metric m)
{
    return (unsigned)m < XF_REGRESS_N_METRICS ? metric_names[m] : "?";
}

int xf_regress_metric_parse(const char *s, size_t n, xf_regress_metric *out)
{
    for (int m = 0; m < XF_REGRESS_N_METRICS; m++)
        if (strlen(metric_names[m]) == n && !strncmp(metric_names[m], s, n)) {
            *out = (xf_regress_metric)m;
            return 0;
        }
    return -1;
}

const char *xf_regress_method_name(xf_regress_method m)
{
    return (unsigned)m <= XF_REGRESS_LLAMA_QUANTIZE ? method_names[m] : "?";
}

const char *xf_regress_scorer_name(xf_regress_scorer s)
{
    return (unsigned)s <= XF_SCORER_LLAMA_PERPLEXITY ? scorer_names[s] : "?";
}

bool xf_regress_case_is_gguf(const xf_regress_case *c)
{
    return c->eval.scorer == XF_SCORER_LLAMA_PERPLEXITY ||
           c->recipe.method == XF_REGRESS_LLAMA_QUANTIZE;
}

const char *xf_regress_op_name(xf_regress_op op)
{
    return (unsigned)op <= XF_REGRESS_GE ? op_names[op] : "?";
}

/* ---- small typed getters; `ctx` is "PATH: case 'ID'" (or similar) ---- */

static const char *const top_keys[] = {"name", "description", "cases", "relations", NULL};
static const char *const case_keys[] = {"id",   "description", "model", "recipe",
                                        "eval", "expect",      NULL};
/* Keys of method llama-quantize (with its calibration keys when imatrix). */
static const char *const llama_quantize_keys[] = {"gguf_type", "imatrix", "tensor_type", NULL};
static const char *const imatrix_keys[] = {"calib", "nsamples", "seqlen", NULL};
/* File types a recipe may name: llama-quantize's names of the types that
 * run on a CPU build (xfquant's --gguf-type checks its own subset when the
 * case runs). */
static const char *const gguf_types[] = {"Q2_K",   "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_K_S",
                                         "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K",   "Q4_0",
                                         "Q4_1",   "Q5_0",   "Q5_1",   "Q8_0",   "IQ4_XS",
                                         "IQ4_NL", NULL};
/* The recipe keys a GGUF cannot hold (activation, KV-cache and attention
 * quantization, online rotations): refused with scorer llama-perplexity. */
static const char *const not_in_gguf_prefixes[] = {"act_", "kv_", "attn_prob_", "rotate", "klt_",
                                                   NULL};
static const char *const eval_keys[] = {"text",   "protocol", "seqlen", "ctx", "max_windows",
                                        "scorer", "half",     NULL};
static const char *const band_keys[] = {"value",       "abs_floor",   "rel_floor",
                                        "abs_ceiling", "rel_ceiling", NULL};
static const char *const relation_keys[] = {"id", "description", "expect", NULL};

static bool in_list(const char *const *list, const char *key)
{
    for (; *list; list++)
        if (!strcmp(*list, key))
            return true;
    return false;
}

/* Refuses keys outside `allowed`: a misspelt key would otherwise be ignored
 * and silently disable what it was meant to check. */
static int check_keys2(const json_t *obj, const char *const *allowed,
                       const char *const *also_allowed, const char *ctx, const char *where,
                       xf_error *err)
{
    const char *key;
    json_t *v;
    json_object_foreach ((json_t *)obj, key, v) {
        if (in_list(allowed, key) || (also_allowed && in_list(also_allowed, key)))
            continue;
        char list[512] = "";
        size_t at = 0;
        for (const char *const *a = allowed; *a && at < sizeof list; a++)
            at +=
                (size_t)snprintf(list + at, sizeof list - at, "%s%s", a == allowed ? "" : ", ", *a);
        for (const char *const *a = also_allowed; a && *a && at < sizeof list; a++)
            at += (size_t)snprintf(list + at, sizeof list - at, ", %s", *a);
        return xf_fail(err, "%s: %sunknown key '%s' (allowed: %s)", ctx, where, key, list);
    }
    return 0;
}

static int check_keys(const json_t *obj, const char *const *allowed, const char *ctx,
                      const char *where, xf_error *err)
{
    return check_keys2(obj, allowed, NULL, ctx, where, err);
}

static int get_object(const json_t *obj, const char *key, json_t **out, const char *ctx,
                      xf_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return xf_fail(err, "%s: missing key '%s'", ctx, key);
    if (!json_is_object(v))
        return xf_fail(err, "%s: '%s' must be an object", ctx, key);
    *out = v;
    return 0;
}

/* A non-empty string; *out NULL when absent and not required. */
static int get_string(const json_t *obj, const char *key, bool required, char **out,
                      const char *ctx, const char *where, xf_error *err)
{
    *out = NULL;
    json_t *v = json_object_get(obj, key);
    if (!v) {
        if (required)
            return xf_fail(err, "%s: %smissing key '%s'", ctx, where, key);
        return 0;
    }
    if (!json_is_string(v) || json_string_length(v) == 0)
        return xf_fail(err, "%s: %s'%s' must be a non-empty string", ctx, where, key);
    if (strlen(json_string_value(v)) != json_string_length(v))
        return xf_fail(err, "%s: %s'%s' contains a NUL character", ctx, where, key);
    *out = strdup(json_string_value(v));
    if (!*out)
        return xf_fail(err, "%s: out of memory", ctx);
    return 0;
}

/* An integer in [lo, hi]; *out = XF_REGRESS_ABSENT when absent. */
static int get_int(const json_t *obj, const char *key, int64_t lo, int64_t hi, int64_t *out,
                   const char *ctx, const char *where, xf_error *err)
{
    *out = XF_REGRESS_ABSENT;
    json_t *v = json_object_get(obj, key);
    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return xf_fail(err, "%s: %s'%s' must be an integer in [%lld, %lld]", ctx, where, key,
                       (long long)lo, (long long)hi);
    *out = (int64_t)json_integer_value(v);
    return 0;
}

/* Tri-state boolean: -1 absent, 0, 1. */
static int get_bool(const json_t *obj, const char *key, int *out, const char *ctx,
                    const char *where, xf_error *err)
{
    *out = -1;
    json_t *v = json_object_get(obj, key);
    if (!v)
        return 0;
    if (!json_is_boolean(v))
        return xf_fail(err, "%s: %s'%s' must be true or false", ctx, where, key);
    *out = json_is_true(v) ? 1 : 0;
    return 0;
}

static char *resolve(const char *root, const char *p)
{
    if (!root || p[0] == '/')
        return strdup(p);
    return xf_path_join(root, p);
}

/* ---- recipe ---- */

/* A string that must be one of `values` (NULL-terminated); NULL if absent. */
static int get_enum(const json_t *obj, const char *key, const char *const *values, char **out,
                    const char *ctx, const char *where, xf_error *err)
{
    if (get_string(obj, key, false, out, ctx, where, err))
        return -1;
    if (!*out || in_list(values, *out))
        return 0;
    char list[256] = "";
    size_t at = 0;
    for (const char *const *v = values; *v && at < sizeof list; v++)
        at +=
            (size_t)snprintf(list + at, sizeof list - at, "%s\"%s\"", v == values ? "" : ", ", *v);
    return xf_fail(err, "%s: %s'%s' must be one of %s", ctx, where, key, list);
}

static int parse_llama_quantize(xf_regress_recipe *rc, const json_t *j, const char *root,
                                const char *ctx, xf_error *err);

static char *resolve_cb(const char *path, void *root)
{
    return resolve(root, path);
}

/* rtn/gptq: the option table's recipe (pipeline/recipe_options.h): keys,
 * values, methods and the calibration rules are the command line's. */
static int parse_quant_recipe(xf_regress_recipe *rc, const json_t *j, const char *root,
                              const char *ctx, xf_error *err)
{
    /* a suite states the weight grid: bits, or a GGUF file type */
    if (!json_object_get(j, "bits") && !json_object_get(j, "gguf_type"))
        return xf_fail(err, "%s: recipe: missing key 'bits' (required for method %s)", ctx,
                       method_names[rc->method]);
    char what[1200];
    snprintf(what, sizeof what, "%s: recipe", ctx);
    if (!(rc->quant = calloc(1, sizeof *rc->quant)))
        return xf_fail(err, "%s: out of memory", ctx);
    xf_error e = {0};
    if (xf_quant_recipe_from_json(rc->quant, j, what, resolve_cb, (void *)root, err) != 0)
        return -1;
    if (xf_quant_recipe_check(rc->quant, &e) != 0)
        return xf_fail(err, "%s: %s", what, e.msg);
    const char *calib = json_string_value(json_object_get(j, "calib"));
    const char *ft = json_string_value(json_object_get(j, "gguf_type"));
    if ((calib && (!(rc->calib = strdup(calib)) ||
                   !(rc->calib_path = strdup(rc->quant->calib_path)))) ||
        (ft && !(rc->gguf_type = strdup(ft))))
        return xf_fail(err, "%s: out of memory", ctx);
    return 0;
}

static int parse_recipe(xf_regress_recipe *rc, const json_t *j, const char *root, const char *ctx,
                        xf_error *err)
{
    rc->nsamples = rc->seqlen = XF_REGRESS_ABSENT;
    rc->imatrix = -1;
    if (!json_is_object(j))
        return xf_fail(err, "%s: recipe must be an object", ctx);
    json_t *m = json_object_get(j, "method");
    if (!m)
        return xf_fail(err, "%s: recipe: missing key 'method'", ctx);
    const char *ms = json_is_string(m) ? json_string_value(m) : "";
    int method = -1;
    for (int i = 0; i <= XF_REGRESS_LLAMA_QUANTIZE; i++)
        if (!strcmp(ms, method_names[i]))
            method = i;
    if (method < 0)
        return xf_fail(err,
                       "%s: recipe: 'method' must be \"fp16\", \"rtn\", \"gptq\" or "
                       "\"llama-quantize\"",
                       ctx);
    rc->method = (xf_regress_method)method;
    if (rc->method == XF_REGRESS_LLAMA_QUANTIZE)
        return parse_llama_quantize(rc, j, root, ctx, err);
    /* llama-quantize's own keys mean nothing to xfquant */
    for (const char *const *k = llama_quantize_keys + 1; *k; k++)
        if (json_object_get(j, *k))
            return xf_fail(err, "%s: recipe: key '%s' applies to method llama-quantize only", ctx,
                           *k);
    if (rc->method != XF_REGRESS_FP16)
        return parse_quant_recipe(rc, j, root, ctx, err);
    /* Keys that mean nothing for the method are refused, not ignored. */
    const char *key;
    json_t *v;
    json_object_foreach ((json_t *)j, key, v)
        if (strcmp(key, "method"))
            return xf_fail(err, "%s: recipe: key '%s' does not apply to method fp16", ctx, key);
    return 0;
}

/* method llama-quantize: llama.cpp makes the file (docs/regress.md, "GGUF
 * cases"): gguf_type (required), imatrix, tensor_type, and with imatrix the
 * calibration text and its windows. */
static int parse_llama_quantize(xf_regress_recipe *rc, const json_t *j, const char *root,
                                const char *ctx, xf_error *err)
{
    const char *w = "recipe: ";
    const char *key;
    json_t *v;
    if (get_bool(j, "imatrix", &rc->imatrix, ctx, w, err))
        return -1;
    json_object_foreach ((json_t *)j, key, v) {
        if (!strcmp(key, "method") || in_list(llama_quantize_keys, key))
            continue;
        if (rc->imatrix == 1 && in_list(imatrix_keys, key))
            continue;
        if (in_list(imatrix_keys, key))
            return xf_fail(err,
                           "%s: recipe: key '%s' applies to method llama-quantize only with "
                           "\"imatrix\": true",
                           ctx, key);
        return xf_fail(err,
                       "%s: recipe: key '%s' does not apply to method llama-quantize (allowed: "
                       "gguf_type, imatrix, tensor_type; with imatrix: calib, nsamples, seqlen)",
                       ctx, key);
    }
    if (get_enum(j, "gguf_type", gguf_types, &rc->gguf_type, ctx, w, err) ||
        get_string(j, "calib", false, &rc->calib, ctx, w, err) ||
        get_int(j, "nsamples", 1, 1 << 20, &rc->nsamples, ctx, w, err) ||
        get_int(j, "seqlen", 1, 1 << 20, &rc->seqlen, ctx, w, err))
        return -1;
    if (!rc->gguf_type)
        return xf_fail(err, "%s: recipe: missing key 'gguf_type' (required for method "
                            "llama-quantize)",
                       ctx);
    if (rc->imatrix == 1 && !rc->calib)
        return xf_fail(err, "%s: recipe: missing key 'calib' (\"imatrix\": true needs it)", ctx);
    json_t *tt = json_object_get(j, "tensor_type");
    if (tt) {
        size_t n = json_is_array(tt) ? json_array_size(tt) : 0;
        if (n == 0)
            return xf_fail(err, "%s: recipe: 'tensor_type' must be a non-empty array of "
                                "\"PATTERN=TYPE\" strings",
                           ctx);
        if (!(rc->tensor_type = calloc(n + 1, sizeof *rc->tensor_type)))
            return xf_fail(err, "%s: out of memory", ctx);
        for (size_t i = 0; i < n; i++) {
            const json_t *e = json_array_get(tt, i);
            const char *str = json_is_string(e) ? json_string_value(e) : NULL;
            const char *eq = str ? strchr(str, '=') : NULL;
            if (!eq || eq == str || !eq[1] || strlen(str) != json_string_length(e))
                return xf_fail(err, "%s: recipe: 'tensor_type'[%zu] must be a \"PATTERN=TYPE\" "
                                    "string",
                               ctx, i);
            if (!(rc->tensor_type[i] = strdup(str)))
                return xf_fail(err, "%s: out of memory", ctx);
            rc->n_tensor_type = (int)i + 1;
        }
    }
    if (rc->calib && !(rc->calib_path = resolve(root, rc->calib)))
        return xf_fail(err, "%s: out of memory", ctx);
    return 0;
}

/* ---- eval ---- */

static int parse_eval(xf_regress_eval *ev, const json_t *j, const char *root, const char *ctx,
                      xf_error *err)
{
    const char *w = "eval: ";
    if (check_keys(j, eval_keys, ctx, w, err) ||
        get_string(j, "text", true, &ev->text, ctx, w, err))
        return -1;
    if (!(ev->text_path = resolve(root, ev->text)))
        return xf_fail(err, "%s: out of memory", ctx);
    ev->protocol = XF_PROTOCOL_GPTQ;
    json_t *p = json_object_get(j, "protocol");
    if (p && (!json_is_string(p) || xf_protocol_parse(json_string_value(p), &ev->protocol) != 0))
        return xf_fail(err, "%s: eval: 'protocol' must be \"gptq\" or \"llamacpp\"", ctx);
    if (get_int(j, "seqlen", 2, INT32_MAX, &ev->seqlen, ctx, w, err) ||
        get_int(j, "ctx", 4, INT32_MAX, &ev->ctx, ctx, w, err) ||
        get_int(j, "max_windows", 0, INT32_MAX, &ev->max_windows, ctx, w, err) ||
        get_int(j, "half", 1, 2, &ev->half, ctx, w, err))
        return -1;
    if (ev->half == XF_REGRESS_ABSENT)
        ev->half = 0;
    /* Same rule as the CLI: each protocol has its own window option. */
    if (ev->protocol == XF_PROTOCOL_GPTQ && ev->ctx != XF_REGRESS_ABSENT)
        return xf_fail(err, "%s: eval: 'ctx' applies to protocol llamacpp; use 'seqlen'", ctx);
    if (ev->protocol == XF_PROTOCOL_LLAMACPP && ev->seqlen != XF_REGRESS_ABSENT)
        return xf_fail(err, "%s: eval: 'seqlen' applies to protocol gptq; use 'ctx'", ctx);
    if (ev->max_windows == XF_REGRESS_ABSENT)
        ev->max_windows = 0;
    ev->scorer = XF_SCORER_XFQUANT;
    json_t *sc = json_object_get(j, "scorer");
    if (sc) {
        const char *v = json_is_string(sc) ? json_string_value(sc) : "";
        if (!strcmp(v, "llama-perplexity"))
            ev->scorer = XF_SCORER_LLAMA_PERPLEXITY;
        else if (strcmp(v, "xfquant"))
            return xf_fail(err, "%s: eval: 'scorer' must be \"xfquant\" or \"llama-perplexity\"",
                           ctx);
    }
    /* llama-perplexity has one protocol; a suite must say it is that one */
    if (ev->scorer == XF_SCORER_LLAMA_PERPLEXITY && ev->protocol != XF_PROTOCOL_LLAMACPP)
        return xf_fail(err,
                       "%s: eval: scorer llama-perplexity needs \"protocol\": \"llamacpp\" (its "
                       "only protocol)",
                       ctx);
    return 0;
}

/* ---- expected metrics ---- */

static int parse_side(const json_t *j, const char *abs_key, const char *rel_key,
                      xf_regress_side *side, const char *ctx, const char *metric, xf_error *err)
{
    json_t *a = json_object_get(j, abs_key), *r = json_object_get(j, rel_key);
    side->kind = XF_REGRESS_TOL_OPEN;
    side->tol = 0;
    if (a && r)
        return xf_fail(err, "%s: expect: %s: give '%s' or '%s', not both", ctx, metric, abs_key,
                       rel_key);
    json_t *v = a ? a : r;
    if (!v)
        return 0;
    const char *key = a ? abs_key : rel_key;
    if (!json_is_number(v) || !isfinite(json_number_value(v)) || json_number_value(v) < 0)
        return xf_fail(err, "%s: expect: %s: '%s' must be a finite number >= 0", ctx, metric, key);
    side->kind = a ? XF_REGRESS_TOL_ABS : XF_REGRESS_TOL_REL;
    side->tol = json_number_value(v);
    return 0;
}

static int parse_expect(xf_regress_case *c, const json_t *j, const char *ctx, xf_error *err)
{
    const char *key;
    json_t *b;
    json_object_foreach ((json_t *)j, key, b) {
        xf_regress_metric m;
        if (xf_regress_metric_parse(key, strlen(key), &m) != 0)
            return xf_fail(err,
                           "%s: expect: unknown metric '%s' (allowed: ppl, kld, bits_per_weight, "
                           "seconds, file_bytes)",
                           ctx, key);
        if (!json_is_object(b))
            return xf_fail(err, "%s: expect: %s must be an object {value, floor, ceiling}", ctx,
                           key);
        char where[64];
        snprintf(where, sizeof where, "expect: %s: ", key);
        if (check_keys(b, band_keys, ctx, where, err))
            return -1;
        xf_regress_band *band = &c->expect[m];
        json_t *v = json_object_get(b, "value");
        if (!v)
            return xf_fail(err, "%s: expect: %s: missing key 'value'", ctx, key);
        band->pending = json_is_null(v);
        if (!band->pending && (!json_is_number(v) || !isfinite(json_number_value(v))))
            return xf_fail(err,
                           "%s: expect: %s: 'value' must be a finite number (or null: no "
                           "baseline yet)",
                           ctx, key);
        band->value = band->pending ? NAN : json_number_value(v);
        if (parse_side(b, "abs_floor", "rel_floor", &band->floor, ctx, key, err) ||
            parse_side(b, "abs_ceiling", "rel_ceiling", &band->ceiling, ctx, key, err))
            return -1;
        if (band->floor.kind == XF_REGRESS_TOL_OPEN && band->ceiling.kind == XF_REGRESS_TOL_OPEN)
            return xf_fail(err,
                           "%s: expect: %s: band has neither a floor nor a ceiling, so it "
                           "checks nothing",
                           ctx, key);
        bool rel =
            band->floor.kind == XF_REGRESS_TOL_REL || band->ceiling.kind == XF_REGRESS_TOL_REL;
        if (rel && !band->pending && band->value == 0)
            return xf_fail(err,
                           "%s: expect: %s: a relative tolerance around value 0 is an empty "
                           "band; use abs_floor/abs_ceiling",
                           ctx, key);
        band->present = true;
    }
    return 0;
}

/* ---- cases ---- */

static bool valid_id(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > XF_REGRESS_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)id[i]) && id[i] != '_' && id[i] != '-' && id[i] != '.')
            return false;
    return true;
}

/* What a scorer can measure on what a method makes. */
static int check_scorer(const xf_regress_case *c, const json_t *recipe, const char *ctx,
                        xf_error *err)
{
    bool gguf = c->eval.scorer == XF_SCORER_LLAMA_PERPLEXITY;
    if (c->recipe.method == XF_REGRESS_LLAMA_QUANTIZE && !gguf)
        return xf_fail(err,
                       "%s: method llama-quantize needs \"scorer\": \"llama-perplexity\" in "
                       "eval (its file is scored by llama.cpp; the interop suite checks xfquant's "
                       "reading of it)",
                       ctx);
    if (!gguf) {
        if (c->expect[XF_REGRESS_FILE_BYTES].present)
            return xf_fail(err, "%s: expect: file_bytes is measured for GGUF cases only (scorer "
                                "llama-perplexity)",
                           ctx);
        return 0;
    }
    if (c->expect[XF_REGRESS_KLD].present)
        return xf_fail(err, "%s: expect: kld is not measured with scorer llama-perplexity", ctx);
    const char *key;
    json_t *v;
    json_object_foreach ((json_t *)recipe, key, v) {
        bool no_rotation = !strcmp(key, "rotate") && json_is_string(v) &&
                           !strcmp(json_string_value(v), "none");
        for (const char *const *p = not_in_gguf_prefixes; *p && !no_rotation; p++)
            if (!strncmp(key, *p, strlen(*p)))
                return xf_fail(err,
                               "%s: recipe: key '%s' cannot be scored by llama-perplexity (a GGUF "
                               "holds the weights only)",
                               ctx, key);
    }
    return 0;
}

static int parse_case(xf_regress_suite *s, size_t idx, const json_t *j, const char *root,
                      xf_error *err)
{
    xf_regress_case *c = &s->cases[idx];
    char ctx[XF_ERROR_MSG_MAX / 2];
    snprintf(ctx, sizeof ctx, "%s: case #%zu", s->path, idx + 1);
    if (!json_is_object(j))
        return xf_fail(err, "%s: must be an object", ctx);
    json_t *id = json_object_get(j, "id");
    if (!id)
        return xf_fail(err, "%s: missing key 'id'", ctx);
    if (!json_is_string(id) || !valid_id(json_string_value(id)))
        return xf_fail(err, "%s: 'id' must be 1..%d characters of [A-Za-z0-9_.-]", ctx,
                       XF_REGRESS_ID_MAX);
    if (!(c->id = strdup(json_string_value(id))))
        return xf_fail(err, "%s: out of memory", ctx);
    snprintf(ctx, sizeof ctx, "%s: case '%s'", s->path, c->id);
    for (size_t k = 0; k < idx; k++)
        if (!strcmp(s->cases[k].id, c->id))
            return xf_fail(err, "%s: duplicate case id (also case #%zu)", ctx, k + 1);

    json_t *recipe = NULL, *ev = NULL, *expect = NULL;
    if (check_keys(j, case_keys, ctx, "", err) ||
        get_string(j, "description", false, &c->description, ctx, "", err) ||
        get_string(j, "model", true, &c->model, ctx, "", err) ||
        get_object(j, "recipe", &recipe, ctx, err) || get_object(j, "eval", &ev, ctx, err) ||
        get_object(j, "expect", &expect, ctx, err))
        return -1;
    if (!(c->model_path = resolve(root, c->model)))
        return xf_fail(err, "%s: out of memory", ctx);
    if (parse_recipe(&c->recipe, recipe, root, ctx, err) ||
        parse_eval(&c->eval, ev, root, ctx, err) || parse_expect(c, expect, ctx, err) ||
        check_scorer(c, recipe, ctx, err))
        return -1;
    for (int m = 0; m < XF_REGRESS_N_METRICS; m++)
        c->wants[m] = c->expect[m].present;
    /* ppl and bits_per_weight are always measured (they are the plot). */
    c->wants[XF_REGRESS_PPL] = c->wants[XF_REGRESS_BPW] = true;
    return 0;
}

/* ---- relations: TERM OP TERM, TERM = metric(case-id) [* NUMBER] ---- */

typedef struct {
    const char *text, *p;
    const char *ctx;
} rel_lexer;

static void skip_ws(rel_lexer *lx)
{
    while (*lx->p == ' ' || *lx->p == '\t')
        lx->p++;
}

static int syntax(rel_lexer *lx, const char *wanted, xf_error *err)
{
    return xf_fail(err,
                   "%s: expected %s at column %d of \"%s\" (grammar: metric(case) [* number] "
                   "<|<=|>|>= metric(case) [* number]; a case id with '*' means the mean over "
                   "the cases it matches)",
                   lx->ctx, wanted, (int)(lx->p - lx->text) + 1, lx->text);
}

static int parse_term(rel_lexer *lx, const xf_regress_suite *s, xf_regress_term *t, xf_error *err)
{
    skip_ws(lx);
    const char *m0 = lx->p;
    while (isalpha((unsigned char)*lx->p) || *lx->p == '_')
        lx->p++;
    if (lx->p == m0)
        return syntax(lx, "a metric name", err);
    if (xf_regress_metric_parse(m0, (size_t)(lx->p - m0), &t->metric) != 0)
        return xf_fail(err,
                       "%s: unknown metric '%.*s' (allowed: ppl, kld, bits_per_weight, "
                       "seconds, file_bytes)",
                       lx->ctx, (int)(lx->p - m0), m0);
    skip_ws(lx);
    if (*lx->p != '(')
        return syntax(lx, "'('", err);
    lx->p++;
    skip_ws(lx);
    const char *i0 = lx->p;
    while (isalnum((unsigned char)*lx->p) || *lx->p == '_' || *lx->p == '-' || *lx->p == '.' ||
           *lx->p == '*')
        lx->p++;
    size_t n = (size_t)(lx->p - i0);
    if (n == 0)
        return syntax(lx, "a case id", err);
    char id[XF_REGRESS_ID_MAX + 1];
    if (n > XF_REGRESS_ID_MAX)
        return xf_fail(err, "%s: unknown case id '%.*s'", lx->ctx, (int)n, i0);
    memcpy(id, i0, n);
    id[n] = 0;
    if (!(t->cases = calloc(s->n_cases, sizeof *t->cases)))
        return xf_fail(err, "%s: out of memory", lx->ctx);
    t->n_cases = 0;
    if (!strchr(id, '*')) {
        long ci = xf_regress_suite_find(s, id);
        if (ci < 0)
            return xf_fail(err, "%s: unknown case id '%s'", lx->ctx, id);
        t->cases[t->n_cases++] = (size_t)ci;
    } else {
        /* ids have no character fnmatch treats specially besides the '*' */
        for (size_t i = 0; i < s->n_cases; i++)
            if (fnmatch(id, s->cases[i].id, 0) == 0)
                t->cases[t->n_cases++] = i;
        if (t->n_cases == 0)
            return xf_fail(err, "%s: no case id matches '%s'", lx->ctx, id);
    }
    t->case_index = t->cases[0];
    skip_ws(lx);
    if (*lx->p != ')')
        return syntax(lx, "')'", err);
    lx->p++;
    skip_ws(lx);
    t->factor = 1.0;
    if (*lx->p == '*') {
        lx->p++;
        skip_ws(lx);
        /* Only number characters, so strtod cannot read "inf"/"nan"/hex. */
        const char *n0 = lx->p;
        while (isdigit((unsigned char)*lx->p) || *lx->p == '.' || *lx->p == 'e' || *lx->p == 'E' ||
               *lx->p == '+' || *lx->p == '-')
            lx->p++;
        char num[64];
        size_t nn = (size_t)(lx->p - n0);
        if (nn == 0 || nn >= sizeof num) {
            lx->p = n0;
            return syntax(lx, "a number after '*'", err);
        }
        memcpy(num, n0, nn);
        num[nn] = 0;
        char *end;
        t->factor = strtod(num, &end);
        if (*end || !isfinite(t->factor) || t->factor <= 0) {
            lx->p = n0;
            return syntax(lx, "a finite number > 0 after '*'", err);
        }
        skip_ws(lx);
    }
    return 0;
}

static int parse_relation(xf_regress_suite *s, size_t idx, const json_t *j, xf_error *err)
{
    xf_regress_relation *rl = &s->relations[idx];
    char ctx[XF_ERROR_MSG_MAX / 2];
    snprintf(ctx, sizeof ctx, "%s: relation #%zu", s->path, idx + 1);
    if (!json_is_object(j))
        return xf_fail(err, "%s: must be an object {\"id\", \"expect\"}", ctx);
    if (get_string(j, "id", false, &rl->id, ctx, "", err))
        return -1;
    if (rl->id)
        snprintf(ctx, sizeof ctx, "%s: relation '%s'", s->path, rl->id);
    if (check_keys(j, relation_keys, ctx, "", err) ||
        get_string(j, "expect", true, &rl->expr, ctx, "", err) ||
        get_string(j, "description", false, &rl->description, ctx, "", err))
        return -1;
    if (!rl->id && !(rl->id = strdup(rl->expr)))
        return xf_fail(err, "%s: out of memory", ctx);
    snprintf(ctx, sizeof ctx, "%s: relation '%s'", s->path, rl->id);
    for (size_t k = 0; k < idx; k++)
        if (!strcmp(s->relations[k].id, rl->id))
            return xf_fail(err, "%s: duplicate relation id (also relation #%zu)", ctx, k + 1);

    rel_lexer lx = {rl->expr, rl->expr, ctx};
    if (parse_term(&lx, s, &rl->lhs, err))
        return -1;
    if (lx.p[0] == '<' || lx.p[0] == '>') {
        bool eq = lx.p[1] == '=';
        rl->op = lx.p[0] == '<' ? (eq ? XF_REGRESS_LE : XF_REGRESS_LT)
                                : (eq ? XF_REGRESS_GE : XF_REGRESS_GT);
        lx.p += eq ? 2 : 1;
    } else {
        return syntax(&lx, "one of < <= > >=", err);
    }
    if (parse_term(&lx, s, &rl->rhs, err))
        return -1;
    if (*lx.p)
        return syntax(&lx, "the end of the expression", err);
    const xf_regress_term *terms[2] = {&rl->lhs, &rl->rhs};
    for (int k = 0; k < 2; k++)
        for (size_t m = 0; m < terms[k]->n_cases; m++) {
            xf_regress_case *tc = &s->cases[terms[k]->cases[m]];
            bool gguf = xf_regress_case_is_gguf(tc);
            if ((terms[k]->metric == XF_REGRESS_KLD && gguf) ||
                (terms[k]->metric == XF_REGRESS_FILE_BYTES && !gguf))
                return xf_fail(err, "%s: case '%s' does not measure %s (%s)", ctx, tc->id,
                               xf_regress_metric_name(terms[k]->metric),
                               gguf ? "scorer llama-perplexity" : "not a GGUF case");
            tc->wants[terms[k]->metric] = true;
        }
    return 0;
}

/* ---- the suite ---- */

static char *default_name(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    if (n > 5 && !strcmp(base + n - 5, ".json"))
        n -= 5;
    return strndup(base, n);
}

static int parse_doc(xf_regress_suite *s, json_t *doc, const char *path, const char *root,
                     xf_error *err)
{
    memset(s, 0, sizeof *s);
    s->doc = doc;
    s->path = strdup(path);
    s->root = strdup(root ? root : ".");
    if (!s->path || !s->root)
        return xf_fail(err, "%s: out of memory", path);
    if (!json_is_object(doc))
        return xf_fail(err, "%s: a suite must be a JSON object with \"cases\"", path);
    json_t *cases = json_object_get(doc, "cases");
    json_t *rels = json_object_get(doc, "relations");
    if (check_keys(doc, top_keys, path, "", err) ||
        get_string(doc, "name", false, &s->name, path, "", err) ||
        get_string(doc, "description", false, &s->description, path, "", err))
        return -1;
    if (!s->name && !(s->name = default_name(path)))
        return xf_fail(err, "%s: out of memory", path);
    if (!cases)
        return xf_fail(err, "%s: missing key 'cases'", path);
    if (!json_is_array(cases) || json_array_size(cases) == 0)
        return xf_fail(err, "%s: 'cases' must be a non-empty array", path);
    if (rels && !json_is_array(rels))
        return xf_fail(err, "%s: 'relations' must be an array", path);

    size_t nc = json_array_size(cases), nr = rels ? json_array_size(rels) : 0;
    s->cases = calloc(nc, sizeof *s->cases);
    s->relations = nr ? calloc(nr, sizeof *s->relations) : NULL;
    if (!s->cases || (nr && !s->relations))
        return xf_fail(err, "%s: out of memory", path);
    for (size_t i = 0; i < nc; i++) {
        s->n_cases = i + 1; /* so free() sees what was filled */
        if (parse_case(s, i, json_array_get(cases, i), root, err))
            return -1;
    }
    for (size_t i = 0; i < nr; i++) {
        s->n_relations = i + 1;
        if (parse_relation(s, i, json_array_get(rels, i), err))
            return -1;
    }
    return 0;
}

int xf_regress_suite_load(xf_regress_suite *s, const char *path, const char *root, xf_error *err)
{
    memset(s, 0, sizeof *s);
    json_t *doc = xf_json_load_file(path, err);
    if (!doc)
        return -1;
    if (parse_doc(s, doc, path, root, err)) {
        xf_regress_suite_free(s);
        return -1;
    }
    return 0;
}

int xf_regress_suite_parse(xf_regress_suite *s, const char *text, size_t len, const char *path,
                           const char *root, xf_error *err)
{
    memset(s, 0, sizeof *s);
    json_t *doc = xf_json_load_buffer(text, len, path, err);
    if (!doc)
        return -1;
    if (parse_doc(s, doc, path, root, err)) {
        xf_regress_suite_free(s);
        return -1;
    }
    return 0;
}

void xf_regress_suite_free(xf_regress_suite *s)
{
    if (!s)
        return;
    for (size_t i = 0; s->cases && i < s->n_cases; i++) {
        xf_regress_case *c = &s->cases[i];
        free(c->id);
        free(c->description);
        free(c->model);
        free(c->model_path);
        if (c->recipe.quant) {
            xf_quant_recipe_free(c->recipe.quant);
            free(c->recipe.quant);
        }
        free(c->recipe.calib);
        free(c->recipe.calib_path);
        free(c->recipe.gguf_type);
        for (int k = 0; k < c->recipe.n_tensor_type; k++)
            free(c->recipe.tensor_type[k]);
        free(c->recipe.tensor_type);
        free(c->eval.text);
        free(c->eval.text_path);
    }
    for (size_t i = 0; s->relations && i < s->n_relations; i++) {
        free(s->relations[i].id);
        free(s->relations[i].expr);
        free(s->relations[i].lhs.cases);
        free(s->relations[i].rhs.cases);
        free(s->relations[i].description);
    }
    free(s->cases);
    free(s->relations);
    free(s->path);
    free(s->root);
    free(s->name);
    free(s->description);
    json_decref(s->doc);
    memset(s, 0, sizeof *s);
}

long xf_regress_suite_find(const xf_regress_suite *s, const char *id)
{
    for (size_t i = 0; i < s->n_cases; i++)
        if (s->cases[i].id && !strcmp(s->cases[i].id, id))
            return (long)i;
    return -1;
}
