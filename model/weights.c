/* Name -> role binding for the three families. Every expected tensor is
 * looked up once; the binder records what is missing, what has the wrong
 * shape or dtype, and which tensors of the set were used, so that one
 * error line can list the missing and the unexpected names. */
#include "model/weights.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/xfq_outliers.h"

/* Names listed in an error line before "(+N more)"; the text is also
 * capped so that two lists fit in one xf_error. */
#define LIST_MAX_NAMES 10
#define LIST_MAX_CHARS 400

const char *xf_linear_role_name(xf_linear_role r)
{
    static const char *const names[XF_LIN_COUNT] = {"q", "k", "v", "o", "gate", "up", "down"};
    return (r >= 0 && r < XF_LIN_COUNT) ? names[r] : "?";
}

/* ---- names ---- */

/* The module path of a role in layer `layer` under `prefix` ("model.",
 * "transformer." or ""), e.g. "model.layers.3.self_attn.q_proj"; -1 when
 * the family has no such role or buf is too small. */
static int linear_base(const xf_model_config *cfg, const char *prefix, int layer,
                       xf_linear_role role, char *buf, size_t cap)
{
    static const char *const llama[XF_LIN_COUNT] = {
        "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
        "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};
    static const char *const opt[XF_LIN_COUNT] = {
        "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj",
        NULL,               "fc1",              "fc2"};
    static const char *const gpt2[XF_LIN_COUNT] = {
        "attn.c_attn", NULL, NULL, "attn.c_proj", NULL, "mlp.c_fc", "mlp.c_proj"};
    if (role < 0 || role >= XF_LIN_COUNT || layer < 0 ||
        (cfg->n_layers > 0 && layer >= cfg->n_layers))
        return -1;
    const char *mod, *fmt;
    switch (cfg->family) {
    case XF_FAMILY_LLAMA: mod = llama[role]; fmt = "%slayers.%d.%s"; break;
    case XF_FAMILY_OPT: mod = opt[role]; fmt = "%sdecoder.layers.%d.%s"; break;
    case XF_FAMILY_GPT2: mod = gpt2[role]; fmt = "%sh.%d.%s"; break;
    default: return -1;
    }
    if (!mod)
        return -1;
    int n = snprintf(buf, cap, fmt, prefix, layer, mod);
    return (n < 0 || (size_t)n >= cap) ? -1 : 0;
}

static const char *canonical_prefix(const xf_model_config *cfg)
{
    return cfg->family == XF_FAMILY_GPT2 ? "transformer." : "model.";
}

int xf_linear_weight_name(const xf_model_config *cfg, int layer, xf_linear_role role,
                          char *buf, size_t cap)
{
    if (linear_base(cfg, canonical_prefix(cfg), layer, role, buf, cap))
        return -1;
    size_t n = strlen(buf);
    if (n + sizeof ".weight" > cap)
        return -1;
    memcpy(buf + n, ".weight", sizeof ".weight");
    return 0;
}

/* ---- the binder ---- */

typedef struct name_list {
    char text[LIST_MAX_CHARS + 64];
    size_t len;
    size_t shown, total;
} name_list;

static void list_add(name_list *l, const char *name)
{
    l->total++;
    if (l->shown >= LIST_MAX_NAMES || l->len + strlen(name) + 2 > LIST_MAX_CHARS)
        return;
    l->len += (size_t)snprintf(l->text + l->len, sizeof l->text - l->len, "%s%s",
                               l->shown ? ", " : "", name);
    l->shown++;
}

static void list_finish(name_list *l)
{
    if (l->total > l->shown)
        snprintf(l->text + l->len, sizeof l->text - l->len, "%s(+%zu more)",
                 l->shown ? " " : "", l->total - l->shown);
}

typedef struct binder {
    const xf_tensor_set *set;
    bool *used;              /* per set item */
    const char *prefix;      /* detected once: "model.", "transformer." or "" */
    bool conv1d;             /* HF GPT-2 Conv1D storage [in, out] */
    name_list missing;
    char problem[XF_ERROR_MSG_MAX]; /* first wrong shape/dtype, "" if none */
} binder;

static void shape_str(char *buf, size_t cap, int ndim, const int64_t *d)
{
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%lld", i ? ", " : "", (long long)d[i]);
    if (n < cap)
        snprintf(buf + n, cap - n, "]");
}

static void note_problem(binder *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note_problem(binder *b, const char *fmt, ...)
{
    if (b->problem[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->problem, sizeof b->problem, fmt, ap);
    va_end(ap);
}

static const xf_tensor *lookup(binder *b, const char *name)
{
    const xf_tensor *t = xf_tensor_set_find(b->set, name);
    if (t)
        b->used[t - b->set->items] = true;
    return t;
}

/* Checks dtype and shape of a found tensor against [d0] (ndim 1) or
 * [d0, d1] (ndim 2). Packed and GGML-block weights are allowed for
 * matrices only (both are dequantized by xf_tensor_to_f32). */
static void check(binder *b, const xf_tensor *t, int ndim, int64_t d0, int64_t d1)
{
    bool packed = xf_dtype_is_packed(t->dtype) || xf_dtype_is_ggml(t->dtype);
    if (!xf_dtype_is_float(t->dtype) && !(packed && ndim == 2)) {
        note_problem(b, "tensor %s: dtype %s is not %s", t->name, xf_tensor_type_name(t),
                     ndim == 2 ? "a floating-point or packed type" : "a floating-point type");
        return;
    }
    int64_t want[2] = {d0, d1};
    bool ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++)
        ok = t->shape[i] == want[i];
    if (!ok) {
        char es[64], as[160];
        shape_str(es, sizeof es, ndim, want);
        shape_str(as, sizeof as, t->ndim, t->shape);
        note_problem(b, "tensor %s: expected shape %s, got %s", t->name, es, as);
    }
}

/* A required tensor: NULL (and recorded as missing) when absent. */
static const xf_tensor *need(binder *b, const char *name, int ndim, int64_t d0, int64_t d1)
{
    const xf_tensor *t = lookup(b, name);
    if (!t) {
        list_add(&b->missing, name);
        return NULL;
    }
    check(b, t, ndim, d0, d1);
    return t;
}

static const xf_tensor *need_fmt(binder *b, int ndim, int64_t d0, int64_t d1, const char *fmt,
                                 ...) __attribute__((format(printf, 5, 6)));
static const xf_tensor *need_fmt(binder *b, int ndim, int64_t d0, int64_t d1, const char *fmt,
                                 ...)
{
    char name[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    return need(b, name, ndim, d0, d1);
}

/* The outlier side table of linear weight w (if any): looked up (so it is
 * not "unexpected"), checked against w, and it must be the table w's
 * packed view carries (the .xfq reader attaches it), since conversions of
 * w to fp32 apply the view's, not the set's. */
static void bind_outliers(binder *b, const xf_tensor *w)
{
    static const xfq_outliers_part parts[XFQ_OUTLIERS_NPARTS] = {
        XFQ_OUTLIERS_ROW_PTR, XFQ_OUTLIERS_COL, XFQ_OUTLIERS_VAL};
    xf_sparse_outliers o = {0};
    const xf_tensor **slot[XFQ_OUTLIERS_NPARTS] = {&o.row_ptr, &o.col, &o.val};
    char name[600];
    for (int p = 0; p < XFQ_OUTLIERS_NPARTS; p++)
        *slot[p] = xfq_outliers_name(w->name, parts[p], name, sizeof name) == 0
                       ? lookup(b, name) : NULL;
    xf_error e;
    if (xfq_outliers_check(&o, w, NULL, &e) != 0 ||
        (xf_dtype_is_packed(w->dtype) && xfq_outliers_check_carried(&o, w, NULL, &e) != 0))
        note_problem(b, "%s", e.msg);
}

static void bind_norm(binder *b, xf_norm *n, bool with_bias, int64_t dim, const char *base)
{
    n->w = need_fmt(b, 1, dim, 0, "%s.weight", base);
    n->b = with_bias ? need_fmt(b, 1, dim, 0, "%s.bias", base) : NULL;
}

static void bind_linear(binder *b, xf_linear *lin, const xf_model_config *cfg, int layer,
                        xf_linear_role role, bool with_bias, int64_t out, int64_t in)
{
    char base[256];
    if (linear_base(cfg, b->prefix, layer, role, base, sizeof base))
        return; /* role absent in this family: lin stays zeroed */
    char name[300];
    snprintf(name, sizeof name, "%s.weight", base);
    lin->out = out;
    lin->in = in;
    const xf_tensor *w = lookup(b, name);
    if (!w) {
        list_add(&b->missing, name);
    } else {
        /* packed and GGML-block weights (.xfq) are always [out, in] */
        lin->transposed =
            b->conv1d && !xf_dtype_is_packed(w->dtype) && !xf_dtype_is_ggml(w->dtype);
        if (lin->transposed)
            check(b, w, 2, in, out);
        else
            check(b, w, 2, out, in);
        lin->w = w;
        bind_outliers(b, w);
    }
    if (with_bias)
        lin->b = need_fmt(b, 1, out, 0, "%s.bias", base);
}

static void bind_layer(binder *b, xf_layer_weights *lw, const xf_model_config *c, int i)
{
    int64_t h = c->hidden, q_out = c->n_heads * c->head_dim, kv_out = c->n_kv_heads * c->head_dim;
    char base[256];
    switch (c->family) {
    case XF_FAMILY_LLAMA:
        snprintf(base, sizeof base, "%slayers.%d.input_layernorm", b->prefix, i);
        bind_norm(b, &lw->attn_norm, false, h, base);
        snprintf(base, sizeof base, "%slayers.%d.post_attention_layernorm", b->prefix, i);
        bind_norm(b, &lw->mlp_norm, false, h, base);
        bind_linear(b, &lw->lin[XF_LIN_Q], c, i, XF_LIN_Q, c->qkv_bias, q_out, h);
        bind_linear(b, &lw->lin[XF_LIN_K], c, i, XF_LIN_K, c->qkv_bias, kv_out, h);
        bind_linear(b, &lw->lin[XF_LIN_V], c, i, XF_LIN_V, c->qkv_bias, kv_out, h);
        bind_linear(b, &lw->lin[XF_LIN_O], c, i, XF_LIN_O, c->o_bias, h, q_out);
        bind_linear(b, &lw->lin[XF_LIN_GATE], c, i, XF_LIN_GATE, c->mlp_bias, c->intermediate, h);
        break;
    case XF_FAMILY_OPT:
        snprintf(base, sizeof base, "%sdecoder.layers.%d.self_attn_layer_norm", b->prefix, i);
        bind_norm(b, &lw->attn_norm, c->layer_norm, h, base);
        snprintf(base, sizeof base, "%sdecoder.layers.%d.final_layer_norm", b->prefix, i);
        bind_norm(b, &lw->mlp_norm, c->layer_norm, h, base);
        bind_linear(b, &lw->lin[XF_LIN_Q], c, i, XF_LIN_Q, c->qkv_bias, h, h);
        bind_linear(b, &lw->lin[XF_LIN_K], c, i, XF_LIN_K, c->qkv_bias, h, h);
        bind_linear(b, &lw->lin[XF_LIN_V], c, i, XF_LIN_V, c->qkv_bias, h, h);
        bind_linear(b, &lw->lin[XF_LIN_O], c, i, XF_LIN_O, c->o_bias, h, h);
        break;
    case XF_FAMILY_GPT2:
        snprintf(base, sizeof base, "%sh.%d.ln_1", b->prefix, i);
        bind_norm(b, &lw->attn_norm, c->layer_norm, h, base);
        snprintf(base, sizeof base, "%sh.%d.ln_2", b->prefix, i);
        bind_norm(b, &lw->mlp_norm, c->layer_norm, h, base);
        bind_linear(b, &lw->lin[XF_LIN_Q], c, i, XF_LIN_Q, c->qkv_bias, 3 * h, h);
        bind_linear(b, &lw->lin[XF_LIN_O], c, i, XF_LIN_O, c->o_bias, h, h);
        break;
    }
    bind_linear(b, &lw->lin[XF_LIN_UP], c, i, XF_LIN_UP, c->mlp_bias, c->intermediate, h);
    bind_linear(b, &lw->lin[XF_LIN_DOWN], c, i, XF_LIN_DOWN, c->mlp_bias, h, c->intermediate);
}

/* Tensors that real checkpoints legitimately carry but that are not
 * weights: GPT-2's causal-mask buffers and old Llama rotary inv_freq. */
static bool is_buffer(const xf_model_config *c, const char *prefix, const char *name)
{
    size_t pl = strlen(prefix);
    if (strncmp(name, prefix, pl) != 0)
        return false;
    name += pl;
    char tail[64];
    int layer, end = 0;
    if (c->family == XF_FAMILY_GPT2) {
        if (sscanf(name, "h.%d.%63s%n", &layer, tail, &end) != 2 || name[end] != '\0')
            return false;
        return strcmp(tail, "attn.bias") == 0 || strcmp(tail, "attn.masked_bias") == 0;
    }
    if (c->family == XF_FAMILY_LLAMA) {
        if (sscanf(name, "layers.%d.%63s%n", &layer, tail, &end) != 2 || name[end] != '\0')
            return false;
        return strcmp(tail, "self_attn.rotary_emb.inv_freq") == 0;
    }
    return false;
}

static const char *detect_prefix(const xf_model_config *c, const xf_tensor_set *set)
{
    switch (c->family) {
    case XF_FAMILY_OPT:
        /* OPTForCausalLM saves "model.decoder.*", OPTModel "decoder.*" */
        if (!xf_tensor_set_find(set, "model.decoder.embed_tokens.weight") &&
            xf_tensor_set_find(set, "decoder.embed_tokens.weight"))
            return "";
        return "model.";
    case XF_FAMILY_GPT2:
        /* GPT2LMHeadModel saves "transformer.*", the original hub files "wte.weight"... */
        if (!xf_tensor_set_find(set, "transformer.wte.weight") &&
            xf_tensor_set_find(set, "wte.weight"))
            return "";
        return "transformer.";
    default: return "model.";
    }
}

int xf_model_bind(xf_model_weights *mw, const xf_model_config *cfg, const xf_tensor_set *set,
                  bool transposed_conv1d, const char *what, xf_error *err)
{
    memset(mw, 0, sizeof *mw);
    if (cfg->n_layers <= 0 || cfg->n_layers > 100000)
        return xf_fail(err, "%s: invalid layer count %lld", what, (long long)cfg->n_layers);
    mw->cfg = *cfg;
    binder b = {.set = set, .conv1d = transposed_conv1d && cfg->family == XF_FAMILY_GPT2};
    b.used = calloc(set->n ? set->n : 1, sizeof *b.used);
    mw->layers = calloc((size_t)cfg->n_layers, sizeof *mw->layers);
    if (!b.used || !mw->layers) {
        free(b.used);
        free(mw->layers);
        mw->layers = NULL;
        return xf_fail(err, "%s: out of memory", what);
    }
    b.prefix = detect_prefix(cfg, set);
    const char *p = b.prefix;
    int64_t h = cfg->hidden;

    char base[128];
    switch (cfg->family) {
    case XF_FAMILY_LLAMA:
        mw->tok_embed = need_fmt(&b, 2, cfg->vocab, h, "%sembed_tokens.weight", p);
        snprintf(base, sizeof base, "%snorm", p);
        bind_norm(&b, &mw->final_norm, false, h, base);
        break;
    case XF_FAMILY_OPT:
        mw->tok_embed = need_fmt(&b, 2, cfg->vocab, h, "%sdecoder.embed_tokens.weight", p);
        mw->pos_embed = need_fmt(&b, 2, cfg->max_pos + cfg->pos_offset, h,
                                 "%sdecoder.embed_positions.weight", p);
        /* HF OPT has no final LayerNorm in post-LN models (opt-350m style) */
        if (cfg->norm_before) {
            snprintf(base, sizeof base, "%sdecoder.final_layer_norm", p);
            bind_norm(&b, &mw->final_norm, cfg->layer_norm, h, base);
        }
        break;
    case XF_FAMILY_GPT2:
        mw->tok_embed = need_fmt(&b, 2, cfg->vocab, h, "%swte.weight", p);
        mw->pos_embed = need_fmt(&b, 2, cfg->max_pos, h, "%swpe.weight", p);
        snprintf(base, sizeof base, "%sln_f", p);
        bind_norm(&b, &mw->final_norm, cfg->layer_norm, h, base);
        break;
    }
    for (int i = 0; i < cfg->n_layers; i++)
        bind_layer(&b, &mw->layers[i], cfg, i);

    mw->lm_head.out = cfg->vocab;
    mw->lm_head.in = h;
    if (cfg->tie_embeddings) {
        /* Tied: the head IS the embedding. Many tied checkpoints still
         * store a copy as lm_head.weight; it is accepted (shape-checked,
         * not "unexpected") but not used. */
        const xf_tensor *copy = lookup(&b, "lm_head.weight");
        if (copy)
            check(&b, copy, 2, cfg->vocab, h);
        mw->lm_head.w = mw->tok_embed;
    } else {
        mw->lm_head.w = need(&b, "lm_head.weight", 2, cfg->vocab, h);
        if (mw->lm_head.w)
            bind_outliers(&b, mw->lm_head.w);
    }
    /* folded LayerNorm models: the final norm's bias lives in the head (config.h) */
    if (cfg->head_bias)
        mw->lm_head.b = need(&b, "lm_head.bias", 1, cfg->vocab, 0);

    name_list extra = {0};
    for (size_t i = 0; i < set->n; i++)
        if (!b.used[i] && !is_buffer(cfg, p, set->items[i].name))
            list_add(&extra, set->items[i].name);
    free(b.used);

    int rc = 0;
    if (b.missing.total || extra.total) {
        list_finish(&b.missing);
        list_finish(&extra);
        if (b.missing.total && extra.total)
            rc = xf_fail(err, "%s: missing tensors for %s: %s; unexpected tensors: %s", what,
                         cfg->model_type, b.missing.text, extra.text);
        else if (b.missing.total)
            rc = xf_fail(err, "%s: missing tensors for %s: %s", what, cfg->model_type,
                         b.missing.text);
        else
            rc = xf_fail(err, "%s: unexpected tensors for %s: %s", what, cfg->model_type,
                         extra.text);
    } else if (b.problem[0]) {
        rc = xf_fail(err, "%s: %s", what, b.problem);
    }
    if (rc)
        xf_model_unbind(mw);
    return rc;
}

void xf_model_unbind(xf_model_weights *mw)
{
    free(mw->layers);
    memset(mw, 0, sizeof *mw);
}
