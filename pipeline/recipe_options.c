/* The option table of `xfquant rtn|gptq` and the generic set / JSON in /
 * JSON out / check over it (recipe_options.h). */
#include "pipeline/recipe_options.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "export/gguf_ftype.h"

#define FIELD(f) .off = offsetof(xf_quant_options, f)
#define FIELD_SIZE(f) sizeof(((xf_quant_options *)0)->f)

/* ---- text → values -------------------------------------------------------- */

static bool parse_i64(const char *s, double lo, double hi, int64_t *out)
{
    if (!s || !*s)
        return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || (double)v < lo || (double)v > hi)
        return false;
    *out = v;
    return true;
}

static bool parse_f64(const char *s, double *out)
{
    if (!s || !*s)
        return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v))
        return false;
    *out = v;
    return true;
}

static bool in_range(const xf_recipe_row *row, double d)
{
    return (row->lo_open ? d > row->lo : d >= row->lo) && d <= row->hi;
}

static int bad_value(const xf_recipe_row *row, const char *name, const char *text, xf_error *err)
{
    return xf_fail(err, "%s must be %s, not '%s'", name, row->expect, text ? text : "");
}

static void *field(const xf_recipe_row *row, xf_quant_recipe *r)
{
    return (char *)&r->o + row->off;
}

static const void *cfield(const xf_recipe_row *row, const xf_quant_options *o)
{
    return (const char *)o + row->off;
}

/* ---- generic setters and getters ------------------------------------------- */

static int set_bool(const xf_recipe_row *row, xf_quant_recipe *r, const char *text,
                    const char *name, xf_error *err)
{
    bool v;
    if (!text || !strcmp(text, "true"))
        v = true;
    else if (!strcmp(text, "false"))
        v = false;
    else
        return xf_fail(err, "%s must be true or false, not '%s'", name, text);
    *(bool *)field(row, r) = v;
    return 0;
}

static json_t *get_bool(const xf_recipe_row *row, const xf_quant_options *o)
{
    return json_boolean(*(const bool *)cfield(row, o));
}

/* int64_t fields */
static int set_int(const xf_recipe_row *row, xf_quant_recipe *r, const char *text,
                   const char *name, xf_error *err)
{
    int64_t v;
    if (!parse_i64(text, row->lo, row->hi, &v))
        return bad_value(row, name, text, err);
    *(int64_t *)field(row, r) = v;
    return 0;
}

/* the scheme's bit widths are ints */
static int set_int32(const xf_recipe_row *row, xf_quant_recipe *r, const char *text,
                     const char *name, xf_error *err)
{
    int64_t v;
    if (!parse_i64(text, row->lo, row->hi, &v))
        return bad_value(row, name, text, err);
    *(int *)field(row, r) = (int)v;
    return 0;
}

static json_t *get_int(const xf_recipe_row *row, const xf_quant_options *o)
{
    return json_integer((json_int_t) * (const int64_t *)cfield(row, o));
}

static json_t *get_int32(const xf_recipe_row *row, const xf_quant_options *o)
{
    return json_integer(*(const int *)cfield(row, o));
}

static int set_float(const xf_recipe_row *row, xf_quant_recipe *r, const char *text,
                     const char *name, xf_error *err)
{
    double d;
    if (!parse_f64(text, &d) || !in_range(row, d))
        return bad_value(row, name, text, err);
    *(double *)field(row, r) = d;
    return 0;
}

static json_t *get_float(const xf_recipe_row *row, const xf_quant_options *o)
{
    return json_real(*(const double *)cfield(row, o));
}

/* enums stored as int (bool when the names are a two-valued switch of a bool field) */
static int set_enum(const xf_recipe_row *row, xf_quant_recipe *r, const char *text,
                    const char *name, xf_error *err)
{
    for (int i = 0; text && row->names[i]; i++)
        if (row->names[i][0] && !strcmp(row->names[i], text)) {
            *(int *)field(row, r) = i;
            return 0;
        }
    return bad_value(row, name, text, err);
}

static json_t *get_enum(const xf_recipe_row *row, const xf_quant_options *o)
{
    int v = *(const int *)cfield(row, o);
    return json_string(v >= 0 && row->names[v] ? row->names[v] : "?");
}

static char *dup_or_fail(const char *s, const char *name, xf_error *err)
{
    char *c = strdup(s);
    if (!c)
        xf_fail(err, "%s: out of memory", name);
    return c;
}

/* ---- the options with their own parsing --------------------------------- */

static int set_bits(const xf_recipe_row *row, xf_quant_recipe *r, const char *text,
                    const char *name, xf_error *err)
{
    int64_t v;
    if (!parse_i64(text, 2, 8, &v) || (v != 2 && v != 3 && v != 4 && v != 8))
        return bad_value(row, name, text, err);
    r->o.grid.bits = (int)v;
    return 0;
}

static json_t *get_bits(const xf_recipe_row *row, const xf_quant_options *o)
{
    (void)row;
    return json_integer(o->grid.bits);
}

static int set_group(const xf_recipe_row *row, xf_quant_recipe *r, const char *text,
                     const char *name, xf_error *err)
{
    int64_t v;
    if (!parse_i64(text, -1, INT32_MAX, &v) || v == 0)
        return bad_value(row, name, text, err);
    r->o.group = v;
    return 0;
}

static int set_gguf_type(const xf_recipe_row *row, xf_quant_recipe *r, const char *text,
                         const char *name, xf_error *err)
{
    if (!text || xf_gguf_ftype_from_name(text, &r->o.gguf_ftype) != 0)
        return bad_value(row, name, text, err);
    r->o.gguf = true;
    return 0;
}

static json_t *get_gguf_type(const xf_recipe_row *row, const xf_quant_options *o)
{
    (void)row;
    return o->gguf ? json_string(xf_gguf_ftype_name(o->gguf_ftype)) : json_null();
}

/* --outliers: "0.5%" (percent) or "0.005" (fraction), within [0, 1]. */
static int set_outliers(const xf_recipe_row *row, xf_quant_recipe *r, const char *text,
                        const char *name, xf_error *err)
{
    size_t n = text ? strlen(text) : 0;
    char buf[64];
    double v;
    bool ok = n > 0 && n < sizeof buf;
    if (ok) {
        memcpy(buf, text, n + 1);
        bool percent = buf[n - 1] == '%';
        if (percent)
            buf[n - 1] = '\0';
        ok = parse_f64(buf, &v);
        if (ok && percent)
            v /= 100.0;
        ok = ok && v >= 0.0 && v <= 1.0;
    }
    if (!ok)
        return bad_value(row, name, text, err);
    r->o.outliers = v;
    return 0;
}

/* a number in range, or "search" (the value is then searched on calibration text) */
static int set_or_search(const xf_recipe_row *row, xf_quant_recipe *r, const char *text,
                         const char *name, xf_error *err)
{
    bool *search = row->off == offsetof(xf_quant_options, act.act_clip) ? &r->o.act_clip_search
                                                                       : &r->o.attn_prob_base_search;
    if (text && !strcmp(text, "search")) {
        *search = true;
        return 0;
    }
    if (set_float(row, r, text, name, err) != 0)
        return -1;
    *search = false;
    return 0;
}

static json_t *get_or_search(const xf_recipe_row *row, const xf_quant_options *o)
{
    bool search = row->off == offsetof(xf_quant_options, act.act_clip) ? o->act_clip_search
                                                                      : o->attn_prob_base_search;
    return search ? json_string("search") : get_float(row, o);
}

static bool act_clip_searched(const xf_quant_options *o)
{
    return o->act_clip_search;
}

static bool prob_base_searched(const xf_quant_options *o)
{
    return o->attn_prob_base_search;
}

static bool smoothed(const xf_quant_options *o)
{
    return o->smooth > 0 || o->smooth_search;
}

/* --smooth: an alpha, or "search" (QQQ: one alpha per layer and input) */
static int set_smooth(const xf_recipe_row *row, xf_quant_recipe *r, const char *text,
                      const char *name, xf_error *err)
{
    if (text && !strcmp(text, "search")) {
        r->o.smooth_search = true;
        r->o.smooth = 0;
        return 0;
    }
    if (set_float(row, r, text, name, err) != 0)
        return -1;
    r->o.smooth_search = false;
    return 0;
}

static json_t *get_smooth(const xf_recipe_row *row, const xf_quant_options *o)
{
    return o->smooth_search ? json_string("search") : get_float(row, o);
}

static bool repquant_on(const xf_quant_options *o)
{
    return o->repquant;
}

static bool data_rotation(const xf_quant_options *o)
{
    return o->rotate == XF_ROTATE_LEARNED || o->rotate == XF_ROTATE_KLT;
}

/* comma lists of linear inputs (qkv,o,mlp,down) → bit masks */
static int set_inputs(const xf_recipe_row *row, xf_quant_recipe *r, const char *text,
                      const char *name, xf_error *err)
{
    char buf[128];
    if (!text || strlen(text) >= sizeof buf)
        return xf_fail(err, "%s: list too long", name);
    strcpy(buf, text);
    unsigned m = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        xf_lin_input in;
        if (xf_lin_input_from_name(tok, &in) != 0)
            return xf_fail(err, "%s: '%s' is not one of qkv, o, mlp, down", name, tok);
        m |= 1u << in;
    }
    if (m == 0)
        return xf_fail(err, "%s: empty list", name);
    *(unsigned *)field(row, r) = m;
    return 0;
}

static json_t *get_inputs(const xf_recipe_row *row, const xf_quant_options *o)
{
    unsigned m = *(const unsigned *)cfield(row, o);
    char buf[64] = "";
    for (int i = 0; i < XF_IN_COUNT; i++)
        if (m & (1u << i))
            snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%s", buf[0] ? "," : "",
                     xf_lin_input_name((xf_lin_input)i));
    return json_string(buf);
}

static int set_string(const xf_recipe_row *row, xf_quant_recipe *r, const char *text,
                      const char *name, xf_error *err)
{
    if (!text || !*text)
        return bad_value(row, name, text, err);
    char **own = row->off == offsetof(xf_quant_options, calib_path) ? &r->calib_path
                                                                    : &r->calib_field;
    char *c = dup_or_fail(text, name, err);
    if (!c)
        return -1;
    free(*own);
    *own = c;
    *(const char **)field(row, r) = c;
    return 0;
}

static json_t *get_string(const xf_recipe_row *row, const xf_quant_options *o)
{
    /* unset means the row's default ("text" for calib_field), so that the
     * default given explicitly reads back the same */
    const char *s = *(const char *const *)cfield(row, o);
    return json_string(s ? s : row->default_text ? row->default_text : "");
}

static int set_tensor_bits(const xf_recipe_row *row, xf_quant_recipe *r, const char *text,
                           const char *name, xf_error *err)
{
    (void)row;
    char pat[1024];
    int bits;
    xf_error e = {0};
    if (r->o.n_tensor_bits >= XF_TENSOR_BITS_MAX_RULES)
        return xf_fail(err, "at most %d %s rules", XF_TENSOR_BITS_MAX_RULES, name);
    if (!text || xf_tensor_bits_rule_split(text, pat, sizeof pat, &bits, &e) != 0)
        return xf_fail(err, "%s", text ? e.msg : "--tensor-bits: missing value");
    char *c = dup_or_fail(text, name, err);
    if (!c)
        return -1;
    r->tensor_bits[r->o.n_tensor_bits] = c;
    r->o.tensor_bits[r->o.n_tensor_bits++] = c;
    return 0;
}

static json_t *get_tensor_bits(const xf_recipe_row *row, const xf_quant_options *o)
{
    (void)row;
    json_t *a = json_array();
    for (size_t i = 0; a && i < o->n_tensor_bits; i++)
        json_array_append_new(a, json_string(o->tensor_bits[i]));
    return a;
}

static int set_weight_grid(const xf_recipe_row *row, xf_quant_recipe *r, const char *text,
                           const char *name, xf_error *err)
{
    r->o.weight_grid_log2 = r->o.weight_grid_razor = false;
    if (text && !strcmp(text, "uniform"))
        ;
    else if (text && !strcmp(text, "log2") && r->o.method == XF_METHOD_RTN)
        r->o.weight_grid_log2 = true;
    else if (text && !strcmp(text, "razor"))
        r->o.weight_grid_razor = true;
    else if (text && !strcmp(text, "log2"))
        return xf_fail(err, "%s log2 applies to rtn only", name);
    else
        return bad_value(row, name, text, err);
    return 0;
}

static json_t *get_weight_grid(const xf_recipe_row *row, const xf_quant_options *o)
{
    (void)row;
    return json_string(o->weight_grid_log2    ? "log2"
                       : o->weight_grid_razor ? "razor"
                                              : "uniform");
}

/* --act-asym: act_sym false */
static int set_act_asym(const xf_recipe_row *row, xf_quant_recipe *r, const char *text,
                        const char *name, xf_error *err)
{
    if (set_bool(row, r, text, name, err) != 0)
        return -1;
    r->o.act.act_sym = !r->o.act.act_sym;
    return 0;
}

/* ---- the table -------------------------------------------------------------- */

static const char *const clip_names[] = {"none", "mse", NULL};
static const char *const format_names[] = {"", "text", "jsonl", "dir", NULL};
static const char *const prob_names[] = {"uniform", "log2", NULL};
static const char *const rotate_names[] = {"none", "hadamard", "learned", "klt", NULL};
static const char *const token_weight_names[] = {"uniform", "attn-concentration",
                                                 "attn-concentration-mean", NULL};
static const char *const act_kind_names[] = {"int", "razor", NULL};
static const char *const kv_keep_names[] = {"none", "log", "recent", NULL};
static const char *const rotate_objective_names[] = {"e2e", "local", NULL};
static const char *const rotate_loss_names[] = {"ce", "kl", "kl-top", NULL};
static const char *const rotate_weights_names[] = {"auto", "rtn", "fp", NULL};
static const char *const rotate_ste_names[] = {"identity", "scale", NULL};

#define BOOL_ROW(fl, k, f, m, h)                                                              \
    {.flag = fl, .key = k, .type = XF_RO_BOOL, .default_text = "false", .help = h,            \
     .methods = m, .set = set_bool, .get = get_bool, FIELD(f)}
#define CALIB_INT(fl, k, f, an, def, lo_, hi_, ex, h)                                        \
    {.flag = fl, .key = k, .type = XF_RO_INT, .arg_name = an, .default_text = def, .help = h, \
     .methods = XF_RO_BOTH, .calib_input = true, .set = set_int, .get = get_int, FIELD(f),    \
     .lo = lo_, .hi = hi_, .expect = ex}

/* The defaults every recipe starts from; each row's default_text says the
 * same (tests/test_recipe.c checks that they agree). */
void xf_quant_options_defaults(xf_quant_options *o, xf_quant_method method)
{
    memset(o, 0, sizeof *o);
    o->method = method;
    o->grid.bits = 4;
    o->grid.sym = false;
    o->grid.clip = XF_CLIP_NONE;
    o->group = 128;
    o->damp = 0.01;
    o->block = 128;
    o->nsamples = 128;
    o->seqlen = 0;
    o->seed = 0;
    o->calib_format = XF_CALIB_AUTO;
    xf_act_scheme_default(&o->act);
    o->rotate_steps = 100;
    o->rotate_lr = 1.5;
    o->rotate_objective = XF_ROTATE_OBJ_E2E;
    o->rotate_loss = XF_ROTATE_LOSS_CE;
    o->rotate_windows = 16;
    o->rotate_batch = 4;
    o->rotate_ste = 1;
    o->kl_top_k = 32;
}

static const xf_recipe_row rows[] = {
    /* weights */
    {.flag = "bits", .key = "bits", .type = XF_RO_INT, .arg_name = "N", .default_text = "4",
     .help = "weight bits: 2, 3, 4 or 8", .methods = XF_RO_BOTH, .set = set_bits,
     .get = get_bits, .expect = "2, 3, 4 or 8"},
    {.flag = "group", .key = "group", .type = XF_RO_INT, .arg_name = "G", .default_text = "128",
     .help = "columns per group; -1: one grid per output row", .methods = XF_RO_BOTH,
     .set = set_group, .get = get_int, FIELD(group), .expect = "a positive integer or -1",
    },
    BOOL_ROW("sym", "sym", grid.sym, XF_RO_BOTH,
             "symmetric grid (zero point 2^(bits-1)); default asymmetric"),
    {.flag = "clip", .key = "clip", .type = XF_RO_ENUM, .arg_name = "none|mse",
     .default_text = "none",
     .help = "MSE search of the grid range (GPTQ reference: norm 2.4, 100 points,\n"
             "max shrink 0.8)",
     .methods = XF_RO_BOTH, .set = set_enum, .get = get_enum, FIELD(grid.clip),
     .expect = "none or mse", .names = clip_names},
    BOOL_ROW("quantize-head", "quantize_head", quantize_head, XF_RO_BOTH,
             "also quantize the LM head (untied models)"),
    {.flag = "gguf-type", .key = "gguf_type", .type = XF_RO_ENUM, .arg_name = "FT",
     .help = "quantize onto llama.cpp's block types instead: each tensor (token_embd and\n"
             "output included) gets the GGML type llama-quantize gives it for file type FT\n"
             "(Q4_K_M, Q4_K_S, Q3_K_M, Q3_K_S, Q3_K_L, Q5_K_M, Q5_K_S, Q6_K, Q2_K, Q4_0,\n"
             "Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL, IQ4_XS; docs/export.md); replaces --bits,\n"
             "--group, --sym, --clip and --quantize-head; gptq: --act-order needs\n"
             "--static-groups. OUT ending in .gguf writes the GGUF directly",
     .methods = XF_RO_BOTH, .set = set_gguf_type, .get = get_gguf_type,
     .expect = "one of Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K_S Q3_K_M Q3_K_L Q4_K_S Q4_K_M Q5_K_S "
               "Q5_K_M Q6_K IQ4_NL IQ4_XS",
    },
    {.flag = "outliers", .key = "outliers", .type = XF_RO_FLOAT, .arg_name = "P",
     .default_text = "0",
     .help = "keep the fraction P of each tensor's weights (those whose exclusion from the\n"
             "grid fit saves the most error; gptq: the SpQR sensitivity) in fp16 in a sparse\n"
             "side table: \"0.5%\" (percent) or \"0.005\" (fraction; 1 = all)",
     .methods = XF_RO_BOTH, .set = set_outliers, .get = get_float, FIELD(outliers),
     .expect = "a percentage in [0%, 100%] (\"0.5%\") or a fraction in [0, 1]"},
    {.flag = "weight-grid", .key = "weight_grid", .type = XF_RO_ENUM, .arg_name = "G",
     .default_text = "uniform",
     .help = "uniform, log2 (rtn only): per row/group levels +-scale*2^-k and 0, scale\n"
             "searched (L2..L8 storage), or razor (QRazor: 8-bit abs-max rows razored to\n"
             "--bits bits from each --razor-group group's leading one; needs --group -1;\n"
             "gptq fits each group's shift when its sweep enters it; stored as Q8 codes\n"
             "with one scale per razor group)",
     .methods = XF_RO_BOTH, .set = set_weight_grid, .get = get_weight_grid,
     .expect = "uniform, log2 or razor"},
    {.flag = "tensor-bits", .key = "tensor_bits", .type = XF_RO_LIST, .arg_name = "REGEX=BITS",
     .help = "bits (2, 3, 4, 8) for tensors whose name matches REGEX (PCRE, searched\n"
             "anywhere in the name); repeatable, first match wins, e.g. 'down_proj=8'",
     .methods = XF_RO_BOTH, .set = set_tensor_bits, .get = get_tensor_bits},
    /* calibration text */
    {.flag = "calib", .key = "calib", .type = XF_RO_STRING, .arg_name = "FILE",
     .help = "calibration text: plain text, JSON Lines (.jsonl) or a directory of .txt\n"
             "files (gptq: required; rtn: only for the options marked [needs --calib])",
     .methods = XF_RO_BOTH, .calib_input = true, .set = set_string, .get = get_string,
     FIELD(calib_path), .expect = "a file name"},
    {.flag = "calib-field", .key = "calib_field", .type = XF_RO_STRING, .arg_name = "NAME",
     .default_text = "text", .help = "JSON Lines field holding the text",
     .methods = XF_RO_BOTH, .calib_input = true, .set = set_string, .get = get_string,
     FIELD(calib_field), .expect = "a field name"},
    {.flag = "calib-format", .key = "calib_format", .type = XF_RO_ENUM, .arg_name = "F",
     .help = "text, jsonl or dir (default: from the path)", .methods = XF_RO_BOTH,
     .calib_input = true, .set = set_enum, .get = get_enum, FIELD(calib_format),
     .expect = "text, jsonl or dir", .names = format_names},
    CALIB_INT("calib-max-tokens", "calib_max_tokens", calib_max_tokens, "N", NULL, 1,
              (double)INT64_MAX,
              "a positive integer",
              "use at most the first N tokens of the tokenized calibration text (windows\n"
              "are sampled inside them; default: all)"),
    CALIB_INT("nsamples", "nsamples", nsamples, "N", "128", 1, 1 << 20, "a positive integer",
              "calibration windows"),
    CALIB_INT("seqlen", "seqlen", seqlen, "N", NULL, 1, 1 << 20, "a positive integer",
              "tokens per window (default min(2048, max_position_embeddings))"),
    CALIB_INT("seed", "seed", seed, "N", "0", 0, (double)INT64_MAX, "a non-negative integer",
              "window sampling seed (same windows as the reference's random.seed(N) +\n"
              "randint); also seeds --rotate's randomized Hadamard"),
    /* GPTQ */
    BOOL_ROW("act-order", "act_order", act_order, XF_RO_GPTQ,
             "quantize columns by descending Hessian diagonal"),
    BOOL_ROW("static-groups", "static_groups", static_groups, XF_RO_GPTQ,
             "fit every group's grid before the sweep"),
    {.flag = "damp", .key = "damp", .type = XF_RO_FLOAT, .arg_name = "X", .default_text = "0.01",
     .help = "relative dampening of the Hessian", .methods = XF_RO_GPTQ, .set = set_float,
     .get = get_float, FIELD(damp), .lo = 0, .hi = 1, .expect = "a number in [0, 1]",
    },
    {.flag = "block", .key = "block", .type = XF_RO_INT, .arg_name = "N", .default_text = "128",
     .help = "lazy-batch block size", .methods = XF_RO_GPTQ, .set = set_int, .get = get_int,
     FIELD(block), .lo = 1, .hi = 1 << 16, .expect = "a positive integer"},
    {.flag = "max-blocks", .key = "max_blocks", .type = XF_RO_INT, .arg_name = "N",
     .help = "quantize only the first N decoder blocks (the rest, head and embeddings keep\n"
             "their weights): a bounded slice of a large model, for benchmarks",
     .methods = XF_RO_GPTQ, .set = set_int, .get = get_int, FIELD(max_blocks), .lo = 1,
     .hi = 1 << 20, .expect = "a positive integer"},
    BOOL_ROW("gptq-v2", "gptq_v2", gptq_v2, XF_RO_GPTQ,
             "asymmetric calibration (GPTQv2): match the full-precision layer outputs on\n"
             "full-precision inputs"),
    /* RSQ (issue 15): token-weighted Hessians */
    {.flag = "token-weight", .key = "token_weight", .type = XF_RO_ENUM, .arg_name = "W",
     .default_text = "uniform",
     .help = "uniform, or attn-concentration (RSQ): each token's term of every Hessian\n"
             "weighted by the attention it receives in its block (summed over heads and\n"
             "queries; per window scaled to [0.005, 1], then to mean 1);\n"
             "attn-concentration-mean: the sum divided by the queries that see the token\n"
             "(T - t), without the bias toward early positions",
     .methods = XF_RO_GPTQ, .set = set_enum, .get = get_enum, FIELD(token_weight),
     .expect = "uniform, attn-concentration or attn-concentration-mean",
     .names = token_weight_names},
    /* activations, KV cache, attention probabilities (recorded in the .xfq;
     * `xfquant ppl OUT.xfq` applies them with no extra flags) */
    {.flag = "act-bits", .key = "act_bits", .type = XF_RO_INT, .arg_name = "N",
     .help = "quantize the input of every decoder linear per token to N bits (2..16; off\n"
             "unless given). The LM head stays fp",
     .methods = XF_RO_BOTH, .set = set_int32, .get = get_int32, FIELD(act.act_bits), .lo = 2,
     .hi = 16, .expect = "an integer in 2..16"},
    {.flag = "act-sym", .key = "act_sym", .type = XF_RO_BOOL, .default_text = "true",
     .help = "symmetric activation grid (the default, as QuaRot)", .methods = XF_RO_BOTH,
     .set = set_bool, .get = get_bool, FIELD(act.act_sym)},
    {.flag = "act-asym", .key = "act_asym", .type = XF_RO_BOOL,
     .help = "asymmetric activation grid (recorded as \"act_sym\": false)",
     .methods = XF_RO_BOTH, .set = set_act_asym, FIELD(act.act_sym), .alias_of = "act_sym"},
    {.flag = "act-group", .key = "act_group", .type = XF_RO_INT, .arg_name = "G",
     .default_text = "0", .help = "channels per group along a token (0: whole row)",
     .methods = XF_RO_BOTH, .set = set_int, .get = get_int, FIELD(act.act_group), .lo = 0,
     .hi = INT32_MAX, .expect = "a non-negative integer"},
    {.flag = "act-clip", .key = "act_clip", .type = XF_RO_FLOAT, .arg_name = "X|search",
     .default_text = "1",
     .help = "clip ratio in (0, 1] (QuaRot uses 0.9), or search one ratio per input\n"
             "kind on calibration text minimising the linears' output error",
     .methods = XF_RO_BOTH, .needs_calib = true, .set = set_or_search, .get = get_or_search,
     .uses_calib = act_clip_searched, .calib_when = "search", FIELD(act.act_clip), .lo = 0, .hi = 1, .lo_open = true,
     .expect = "a number in (0, 1]"},
    {.flag = "act-inputs", .key = "act_inputs", .type = XF_RO_STRING, .arg_name = "LIST",
     .default_text = "qkv,o,mlp,down", .help = "which inputs: comma list of qkv,o,mlp,down",
     .methods = XF_RO_BOTH, .set = set_inputs, .get = get_inputs, FIELD(act.act_inputs),
    },
    {.flag = "kv-bits", .key = "kv_bits", .type = XF_RO_INT, .arg_name = "N",
     .help = "quantize K (after RoPE) and V per token, asymmetric (2..16; off unless given)",
     .methods = XF_RO_BOTH, .set = set_int32, .get = get_int32, FIELD(act.kv_bits), .lo = 2,
     .hi = 16, .expect = "an integer in 2..16"},
    {.flag = "kv-group", .key = "kv_group", .type = XF_RO_INT, .arg_name = "G",
     .default_text = "0", .help = "channels per group inside a head (0: head_dim)",
     .methods = XF_RO_BOTH, .set = set_int, .get = get_int, FIELD(act.kv_group), .lo = 0,
     .hi = INT32_MAX, .expect = "a non-negative integer"},
    {.flag = "kv-clip", .key = "kv_clip", .type = XF_RO_FLOAT, .arg_name = "X",
     .default_text = "1", .help = "KV clip ratio in (0, 1] (QuaRot 0.95)",
     .methods = XF_RO_BOTH, .set = set_float, .get = get_float, FIELD(act.kv_clip), .lo = 0,
     .hi = 1, .lo_open = true, .expect = "a number in (0, 1]"},
    {.flag = "attn-prob-bits", .key = "attn_prob_bits", .type = XF_RO_INT, .arg_name = "N",
     .help = "quantize post-softmax attention probabilities (2..8; off unless given)",
     .methods = XF_RO_BOTH, .set = set_int32, .get = get_int32, FIELD(act.attn_prob_bits),
     .lo = 2, .hi = 8, .expect = "an integer in 2..8"},
    {.flag = "attn-prob-quant", .key = "attn_prob_quant", .type = XF_RO_ENUM, .arg_name = "Q",
     .default_text = "uniform", .help = "uniform or log2 (power-of-two levels)",
     .methods = XF_RO_BOTH, .set = set_enum, .get = get_enum, FIELD(act.attn_prob_quant),
     .expect = "uniform or log2", .names = prob_names},
    {.flag = "attn-prob-base", .key = "attn_prob_base", .type = XF_RO_FLOAT,
     .arg_name = "L|search", .default_text = "1",
     .help = "log2 quantizer base as log2(base) in [0.0625, 4] (1: base 2), or search it\n"
             "on calibration text (logit KL)",
     .methods = XF_RO_BOTH, .needs_calib = true, .set = set_or_search, .get = get_or_search,
     .uses_calib = prob_base_searched, .calib_when = "search", FIELD(act.attn_prob_log2_base), .lo = 1.0 / 16.0,
     .hi = 4, .expect = "search or a number in [0.0625, 4]"},
    /* QRazor, LogQuant, RepQuant (docs/methods.md) */
    {.flag = "act-quant", .key = "act_quant", .type = XF_RO_ENUM, .arg_name = "Q",
     .default_text = "int",
     .help = "activation quantizer: int (the --act-bits grid) or razor (QRazor: abs-max\n"
             "to --razor-base-bits, then --act-bits bits kept from each razor group's\n"
             "leading one)",
     .methods = XF_RO_BOTH, .set = set_enum, .get = get_enum, FIELD(act.act_kind),
     .expect = "int or razor", .names = act_kind_names},
    {.flag = "kv-quant", .key = "kv_quant", .type = XF_RO_ENUM, .arg_name = "Q",
     .default_text = "int", .help = "KV quantizer: int or razor (base --kv-razor-base-bits)",
     .methods = XF_RO_BOTH, .set = set_enum, .get = get_enum, FIELD(act.kv_kind),
     .expect = "int or razor", .names = act_kind_names},
    {.flag = "razor-group", .key = "razor_group", .type = XF_RO_INT, .arg_name = "G",
     .default_text = "16",
     .help = "values sharing one razoring point (activations, KV, --weight-grid razor;\n"
             "0: the whole abs-max group)",
     .methods = XF_RO_BOTH, .set = set_int, .get = get_int, FIELD(act.razor_group), .lo = 0,
     .hi = INT32_MAX, .expect = "a non-negative integer"},
    {.flag = "razor-base-bits", .key = "razor_base_bits", .type = XF_RO_INT, .arg_name = "B",
     .default_text = "16", .help = "activations' abs-max integer bits before razoring (4..16)",
     .methods = XF_RO_BOTH, .set = set_int32, .get = get_int32, FIELD(act.razor_base_bits),
     .lo = 4, .hi = 16, .expect = "an integer in 4..16"},
    {.flag = "kv-razor-base-bits", .key = "kv_razor_base_bits", .type = XF_RO_INT,
     .arg_name = "B", .default_text = "8",
     .help = "K/V abs-max integer bits before razoring (4..16)", .methods = XF_RO_BOTH,
     .set = set_int32, .get = get_int32, FIELD(act.kv_razor_base_bits), .lo = 4, .hi = 16,
     .expect = "an integer in 4..16"},
    {.flag = "kv-keep", .key = "kv_keep", .type = XF_RO_ENUM, .arg_name = "SEL",
     .default_text = "none",
     .help = "K/V tokens each query reads in full precision while the rest is quantized\n"
             "(--kv-bits): log (LogQuant, window --kv-keep-window: 2W+1..3W tokens) or\n"
             "recent (the same count of most recent tokens)",
     .methods = XF_RO_BOTH, .set = set_enum, .get = get_enum, FIELD(act.kv_keep),
     .expect = "none, log or recent", .names = kv_keep_names},
    {.flag = "kv-keep-window", .key = "kv_keep_window", .type = XF_RO_INT, .arg_name = "W",
     .default_text = "16", .help = "LogQuant's window W", .methods = XF_RO_BOTH,
     .set = set_int, .get = get_int, FIELD(act.kv_keep_window), .lo = 1, .hi = 1 << 30,
     .expect = "an integer in 1..2^30"},
    {.flag = "repquant", .key = "repquant", .type = XF_RO_BOOL, .default_text = "false",
     .help = "RepQuant: per-channel qkv/mlp input quantizers (--act-bits, asymmetric,\n"
             "dual clipping bounds fitted on calibration text) re-parameterised into static\n"
             "per-tensor ones plus norm/linear scale folds",
     .methods = XF_RO_BOTH, .needs_calib = true, .set = set_bool, .get = get_bool,
     .uses_calib = repquant_on, FIELD(repquant)},
    /* smoothing and rotations (exact rewrites of the fp model before quantizing) */
    {.flag = "smooth", .key = "smooth", .type = XF_RO_FLOAT, .arg_name = "A|search",
     .help = "SmoothQuant migration strength alpha in (0, 1] of the per-channel activation\n"
             "maxima into the weights, or search (QQQ): one alpha per layer and input,\n"
             "0.05..0.95, minimising the quantized layer's output error on calibration text",
     .methods = XF_RO_BOTH, .needs_calib = true, .set = set_smooth, .get = get_smooth,
     .uses_calib = smoothed, FIELD(smooth), .lo = 0, .hi = 1, .lo_open = true,
     .expect = "search or a number in (0, 1]"},
    {.flag = "smooth-inputs", .key = "smooth_inputs", .type = XF_RO_STRING, .arg_name = "LIST",
     .help = "which inputs (qkv,o,mlp,down; default: all that are exact)",
     .methods = XF_RO_BOTH, .set = set_inputs, .get = get_inputs, FIELD(smooth_inputs),
    },
    {.flag = "rotate", .key = "rotate", .type = XF_RO_ENUM, .arg_name = "KIND",
     .default_text = "none",
     .help = "none, hadamard (QuaRot: randomized Hadamard R1 from --seed), klt (eigenbasis\n"
             "of the calibration covariance) or learned (Cayley SGD from the randomized\n"
             "Hadamard); norms are folded first",
     .methods = XF_RO_BOTH, .needs_calib = true, .set = set_enum, .get = get_enum,
     .uses_calib = data_rotation, .calib_when = "klt|learned", FIELD(rotate), .expect = "none, hadamard, klt or learned",
     .names = rotate_names},
    BOOL_ROW("rotate-no-online", "rotate_no_online", rotate_no_online, XF_RO_BOTH,
             "no online Hadamard before down_proj"),
    BOOL_ROW("rotate-no-headwise", "rotate_no_headwise", rotate_no_headwise, XF_RO_BOTH,
             "no head-wise Hadamard on v/o"),
    BOOL_ROW("rotate-qk", "rotate_qk", rotate_qk, XF_RO_BOTH,
             "online head_dim Hadamard on Q and K after RoPE (SpinQuant's R3: KV quantization\n"
             "of rotated heads)"),
    BOOL_ROW("klt-hadamard", "klt_hadamard", klt_hadamard, XF_RO_BOTH,
             "klt: follow the eigenbasis by the randomized Hadamard"),
    {.flag = "rotate-steps", .key = "rotate_steps", .type = XF_RO_INT, .arg_name = "N",
     .default_text = "100", .help = "learned: optimizer steps", .methods = XF_RO_BOTH,
     .set = set_int, .get = get_int, FIELD(rotate_steps), .lo = 0, .hi = 1000000,
     .expect = "an integer in 0..1000000"},
    {.flag = "rotate-lr", .key = "rotate_lr", .type = XF_RO_FLOAT, .arg_name = "X",
     .default_text = "1.5", .help = "learned: learning rate", .methods = XF_RO_BOTH,
     .set = set_float, .get = get_float, FIELD(rotate_lr), .lo = 0, .hi = 1e6, .lo_open = true,
     .expect = "a positive number"},
    /* --rotate learned's objective (quant/transform/e2e_learn.c) */
    {.flag = "rotate-objective", .key = "rotate_objective", .type = XF_RO_ENUM,
     .arg_name = "KIND", .default_text = "e2e",
     .help = "learned: e2e (SpinQuant: R1 and per-layer R2 against the whole quantized\n"
             "network's loss on the calibration windows) or local (each rotated space's\n"
             "readers' output error)",
     .methods = XF_RO_BOTH, .set = set_enum, .get = get_enum, FIELD(rotate_objective),
     .expect = "e2e or local", .names = rotate_objective_names},
    {.flag = "rotate-loss", .key = "rotate_loss", .type = XF_RO_ENUM, .arg_name = "LOSS",
     .default_text = "ce",
     .help = "learned e2e: ce (next-token cross-entropy), kl (to the full-precision logits)\n"
             "or kl-top (OstQuant: KL over the full-precision model's --kl-top-k most\n"
             "likely tokens)",
     .methods = XF_RO_BOTH, .set = set_enum, .get = get_enum, FIELD(rotate_loss),
     .expect = "ce, kl or kl-top", .names = rotate_loss_names},
    {.flag = "kl-top-k", .key = "kl_top_k", .type = XF_RO_INT, .arg_name = "K",
     .default_text = "32", .help = "--rotate-loss kl-top: tokens per position (1..vocabulary)",
     .methods = XF_RO_BOTH, .set = set_int, .get = get_int, FIELD(kl_top_k), .lo = 1,
     .hi = 1 << 30, .expect = "an integer in 1..2^30"},
    BOOL_ROW("rotate-scales", "rotate_scales", rotate_scales, XF_RO_BOTH,
             "learned e2e: OstQuant: learn per-channel scales beside the rotations (norm\n"
             "outputs, v/o, up/down), fused exactly into the weights"),
    {.flag = "rotate-weights", .key = "rotate_weights", .type = XF_RO_ENUM, .arg_name = "KIND",
     .default_text = "auto",
     .help = "learned e2e: the weights in the objective: rtn (fake-quantized on the recipe's\n"
             "grid), fp (full precision: only activations/KV quantized, as SpinQuant learns\n"
             "before GPTQ) or auto (gptq: fp, rtn: rtn)",
     .methods = XF_RO_BOTH, .set = set_enum, .get = get_enum, FIELD(rotate_weights),
     .expect = "auto, rtn or fp", .names = rotate_weights_names},
    {.flag = "rotate-ste", .key = "rotate_ste", .type = XF_RO_ENUM, .arg_name = "KIND",
     .default_text = "scale",
     .help = "learned e2e: the activation/KV quantizers' straight-through estimator:\n"
             "identity (SpinQuant) or scale (the step follows the range it was fitted on)",
     .methods = XF_RO_BOTH, .set = set_enum, .get = get_enum, FIELD(rotate_ste),
     .expect = "identity or scale", .names = rotate_ste_names},
    {.flag = "rotate-windows", .key = "rotate_windows", .type = XF_RO_INT, .arg_name = "N",
     .default_text = "16", .help = "learned e2e: calibration windows the loss is measured on",
     .methods = XF_RO_BOTH, .set = set_int, .get = get_int, FIELD(rotate_windows), .lo = 1,
     .hi = 1000000, .expect = "an integer in 1..1000000"},
    {.flag = "rotate-batch", .key = "rotate_batch", .type = XF_RO_INT, .arg_name = "N",
     .default_text = "4", .help = "learned e2e: windows per optimizer step",
     .methods = XF_RO_BOTH, .set = set_int, .get = get_int, FIELD(rotate_batch), .lo = 1,
     .hi = 1000000, .expect = "an integer in 1..1000000"},
};
#define N_ROWS ((int)(sizeof rows / sizeof *rows))
_Static_assert(sizeof rows / sizeof *rows <= XF_RECIPE_MAX_ROWS, "given is a 64-bit set");
_Static_assert(FIELD_SIZE(act.act_bits) == sizeof(int) && FIELD_SIZE(grid.clip) == sizeof(int) &&
                   FIELD_SIZE(calib_format) == sizeof(int) && FIELD_SIZE(rotate) == sizeof(int) &&
                   FIELD_SIZE(rotate_objective) == sizeof(int) &&
                   FIELD_SIZE(rotate_loss) == sizeof(int) &&
                   FIELD_SIZE(rotate_weights) == sizeof(int) &&
                   FIELD_SIZE(rotate_ste) == sizeof(int) &&
                   FIELD_SIZE(act.attn_prob_quant) == sizeof(int) &&
                   FIELD_SIZE(token_weight) == sizeof(int) &&
                   FIELD_SIZE(group) == sizeof(int64_t) && FIELD_SIZE(seed) == sizeof(int64_t),
               "the generic setters store enums as int and integers as 64 bits");

int xf_recipe_row_count(void)
{
    return N_ROWS;
}

const xf_recipe_row *xf_recipe_row_at(int i)
{
    return i >= 0 && i < N_ROWS ? &rows[i] : NULL;
}

int xf_recipe_row_find(const char *key)
{
    for (int i = 0; key && i < N_ROWS; i++)
        if (!strcmp(rows[i].key, key))
            return i;
    return -1;
}

/* the row an alias row sets (act-asym → act_sym) */
static int target_row(int i)
{
    return rows[i].alias_of ? xf_recipe_row_find(rows[i].alias_of) : i;
}

/* ---- recipes ----------------------------------------------------------------- */

void xf_quant_recipe_init(xf_quant_recipe *r, xf_quant_method method)
{
    memset(r, 0, sizeof *r);
    xf_quant_options_defaults(&r->o, method);
}

void xf_quant_recipe_free(xf_quant_recipe *r)
{
    free(r->calib_path);
    free(r->calib_field);
    for (size_t i = 0; i < XF_TENSOR_BITS_MAX_RULES; i++)
        free(r->tensor_bits[i]);
    memset(r, 0, sizeof *r);
}

int xf_quant_method_from_name(const char *name, xf_quant_method *out)
{
    if (name && !strcmp(name, "rtn"))
        *out = XF_METHOD_RTN;
    else if (name && !strcmp(name, "gptq"))
        *out = XF_METHOD_GPTQ;
    else
        return -1;
    return 0;
}

const char *xf_quant_method_name(xf_quant_method m)
{
    return m == XF_METHOD_GPTQ ? "gptq" : "rtn";
}

static unsigned method_bit(xf_quant_method m)
{
    return m == XF_METHOD_GPTQ ? XF_RO_GPTQ : XF_RO_RTN;
}

/* name: "--flag" or "'key'"; what prefixes "applies to" (CLI: "option"; JSON: "key") */
static int set_row(xf_quant_recipe *r, int i, const char *text, const char *name,
                   const char *what, xf_error *err)
{
    const xf_recipe_row *row = &rows[i];
    if (!(row->methods & method_bit(r->o.method)))
        return xf_fail(err, "%s %s applies to %s only", what, name,
                       row->methods & XF_RO_GPTQ ? "gptq" : "rtn");
    if (row->set(row, r, text, name, err) != 0)
        return -1;
    r->given |= UINT64_C(1) << target_row(i);
    return 0;
}

int xf_quant_recipe_set(xf_quant_recipe *r, const char *key, const char *value, xf_error *err)
{
    int i = xf_recipe_row_find(key);
    if (i < 0)
        return xf_fail(err, "unknown recipe key '%s'", key ? key : "");
    char name[64], quoted[72];
    snprintf(name, sizeof name, "--%s", rows[i].flag);
    snprintf(quoted, sizeof quoted, "'%s'", name);
    /* "option '--damp' applies to gptq only", as the command line always said */
    if (!(rows[i].methods & method_bit(r->o.method)))
        return set_row(r, i, value, quoted, "option", err);
    return set_row(r, i, value, name, "option", err);
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

/* A JSON value as the command-line text of row i (NULL: wrong JSON type). */
static const char *value_text(const xf_recipe_row *row, const json_t *v, char *buf, size_t cap)
{
    switch (row->type) {
    case XF_RO_BOOL: return json_is_boolean(v) ? (json_is_true(v) ? "true" : "false") : NULL;
    case XF_RO_INT:
        if (!json_is_integer(v))
            return NULL;
        snprintf(buf, cap, "%lld", (long long)json_integer_value(v));
        return buf;
    case XF_RO_FLOAT:
        /* "search" where the row takes it (its JSON form, as get_* writes it) */
        if (json_is_string(v) && ((row->uses_calib && row->set == set_or_search) ||
                                  row->set == set_smooth))
            return json_string_value(v);
        if (!json_is_number(v))
            return NULL;
        fmt_double(buf, cap, json_number_value(v));
        return buf;
    default: return json_is_string(v) ? json_string_value(v) : NULL;
    }
}

static const char *type_words(const xf_recipe_row *row)
{
    switch (row->type) {
    case XF_RO_BOOL: return "true or false";
    case XF_RO_INT: return "an integer";
    case XF_RO_FLOAT:
        return row->set == set_or_search || row->set == set_smooth ? "a number or \"search\""
                                                                   : "a number";
    case XF_RO_LIST: return "an array of strings";
    default: return "a string";
    }
}

/* the flat recipe object inside what was given: no row is named "options"
 * or "recipe", so the forms cannot be confused */
static const json_t *options_object(const json_t *j)
{
    const json_t *inner = json_object_get(j, "options");
    if (json_is_object(inner))
        return inner;
    inner = json_object_get(json_object_get(j, "recipe"), "options");
    return json_is_object(inner) ? inner : j;
}

int xf_quant_recipe_from_json(xf_quant_recipe *r, const json_t *j, const char *what,
                              char *(*resolve)(const char *path, void *user), void *user,
                              xf_error *err)
{
    if (!json_is_object(j))
        return xf_fail(err, "%s: a recipe must be a JSON object", what);
    j = options_object(j);
    const json_t *m = json_object_get(j, "method");
    xf_quant_method method;
    if (!m)
        return xf_fail(err, "%s: missing key 'method'", what);
    if (xf_quant_method_from_name(json_string_value(m), &method) != 0)
        return xf_fail(err, "%s: 'method' must be \"rtn\" or \"gptq\"", what);
    xf_quant_recipe t;
    xf_quant_recipe_init(&t, method);
    const char *key;
    const json_t *v;
    int rc = 0;
    /* rows in table order, so that a given object always builds the same recipe */
    json_object_foreach((json_t *)j, key, v) {
        if (strcmp(key, "method") && (xf_recipe_row_find(key) < 0 ||
                                      rows[xf_recipe_row_find(key)].alias_of)) {
            rc = xf_fail(err, "%s: unknown key '%s'", what, key);
            break;
        }
    }
    for (int i = 0; rc == 0 && i < N_ROWS; i++) {
        const xf_recipe_row *row = &rows[i];
        v = json_object_get(j, row->key);
        if (!v || row->alias_of)
            continue;
        char name[80];
        snprintf(name, sizeof name, "'%s'", row->key);
        if (!(row->methods & method_bit(method))) {
            rc = xf_fail(err, "%s: key %s applies to method %s only", what, name,
                         row->methods & XF_RO_GPTQ ? "gptq" : "rtn");
            break;
        }
        xf_error e = {0};
        if (row->type == XF_RO_LIST) {
            if (!json_is_array(v) || json_array_size(v) == 0) {
                rc = xf_fail(err, "%s: %s must be a non-empty array of strings", what, name);
                break;
            }
            for (size_t k = 0; rc == 0 && k < json_array_size(v); k++) {
                const json_t *el = json_array_get(v, k);
                if (!json_is_string(el))
                    rc = xf_fail(err, "%s: %s[%zu] must be a string", what, name, k);
                else if (set_row(&t, i, json_string_value(el), name, "key", &e) != 0)
                    rc = xf_fail(err, "%s: %s", what, e.msg);
            }
            continue;
        }
        char buf[64];
        const char *text = value_text(row, v, buf, sizeof buf);
        char *resolved = NULL;
        if (text && resolve && row->off == offsetof(xf_quant_options, calib_path) &&
            row->set == set_string && *text) {
            if (!(resolved = resolve(text, user))) {
                rc = xf_fail(err, "%s: out of memory", what);
                break;
            }
            text = resolved;
        }
        if (!text)
            rc = row->expect && row->type != XF_RO_BOOL
                     ? xf_fail(err, "%s: %s must be %s", what, name, row->expect)
                     : xf_fail(err, "%s: %s must be %s", what, name, type_words(row));
        else if (set_row(&t, i, text, name, "key", &e) != 0)
            rc = xf_fail(err, "%s: %s", what, e.msg);
        free(resolved);
    }
    if (rc != 0) {
        xf_quant_recipe_free(&t);
        return -1;
    }
    xf_quant_recipe_free(r);
    *r = t;
    return 0;
}

json_t *xf_quant_options_to_json(const xf_quant_options *o)
{
    xf_quant_options d;
    xf_quant_options_defaults(&d, o->method);
    json_t *j = json_object();
    if (!j || json_object_set_new(j, "method", json_string(xf_quant_method_name(o->method))))
        goto oom;
    for (int i = 0; i < N_ROWS; i++) {
        if (!rows[i].get)
            continue; /* an alias row: its target row records it */
        json_t *v = rows[i].get(&rows[i], o), *dv = rows[i].get(&rows[i], &d);
        bool same = v && dv && json_equal(v, dv);
        json_decref(dv);
        if (!v || (!same && json_object_set_new(j, rows[i].key, v) != 0))
            goto oom;
        if (same)
            json_decref(v);
    }
    return j;
oom:
    json_decref(j);
    return NULL;
}

bool xf_quant_recipe_needs_calib(const xf_quant_options *o)
{
    if (o->method == XF_METHOD_GPTQ)
        return true;
    for (int i = 0; i < N_ROWS; i++)
        if (rows[i].uses_calib && rows[i].uses_calib(o))
            return true;
    return false;
}

/* "--act-clip search, --attn-prob-base search, --smooth and --rotate klt|learned" */
static void calib_users(char *buf, size_t cap)
{
    int n = 0, total = 0;
    for (int i = 0; i < N_ROWS; i++)
        total += rows[i].needs_calib;
    buf[0] = '\0';
    for (int i = 0; i < N_ROWS; i++) {
        if (!rows[i].needs_calib)
            continue;
        n++;
        snprintf(buf + strlen(buf), cap - strlen(buf), "%s--%s%s%s",
                 n == 1 ? "" : n == total ? " and " : ", ", rows[i].flag,
                 rows[i].calib_when ? " " : "", rows[i].calib_when ? rows[i].calib_when : "");
    }
}

int xf_quant_recipe_check(const xf_quant_recipe *r, xf_error *err)
{
    const xf_quant_options *o = &r->o;
    if (o->gguf) {
        static const char *const grid_keys[] = {"bits", "group", "sym", "clip", "quantize_head"};
        for (size_t k = 0; k < sizeof grid_keys / sizeof *grid_keys; k++) {
            int i = xf_recipe_row_find(grid_keys[k]);
            if (r->given & (UINT64_C(1) << i))
                return xf_fail(err, "--%s cannot be combined with --gguf-type, which chooses "
                                    "every tensor's type",
                               rows[i].flag);
        }
    }
    if (o->method == XF_METHOD_GPTQ && !o->calib_path)
        return xf_fail(err, "--calib FILE is required");
    if (o->method != XF_METHOD_RTN)
        return 0;
    int n_calib = 0;
    bool seed = false;
    for (int i = 0; i < N_ROWS; i++)
        if (rows[i].calib_input && (r->given & (UINT64_C(1) << i))) {
            n_calib++;
            seed = seed || !strcmp(rows[i].key, "seed");
        }
    bool reads = xf_quant_recipe_needs_calib(o);
    char users[256];
    calib_users(users, sizeof users);
    /* the seed also seeds a rotation's randomized Hadamard */
    bool seed_only = seed && n_calib == 1 && o->rotate != XF_ROTATE_NONE;
    if (n_calib && !reads && !seed_only)
        return xf_fail(err, "rtn reads calibration text only for %s (and --seed only with "
                            "--rotate)",
                       users);
    if (reads && !o->calib_path)
        return xf_fail(err, "%s need --calib FILE", users);
    return 0;
}
