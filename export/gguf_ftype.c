/* GGUF file type -> per-tensor GGML types, as llama-quantize chooses them
 * (export/gguf_ftype.h). Written from the rules of llama.cpp's
 * src/llama-quant.cpp as docs/export.md ("File types: which GGML type each
 * tensor gets") states them; the section names of that text are cited
 * below. Checked against llama-quantize by tests/interop/gguf_ftype.sh. */
#include <ctype.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "export/gguf_ftype.h"
#include "formats/ggml_types.h"

typedef struct ftype_info {
    const char *name;
    uint32_t llama_id;     /* general.file_type */
    uint32_t default_type; /* xf_ggml_type */
} ftype_info;

static const ftype_info ftypes[XF_GGUF_FTYPE_COUNT] = {
    [XF_GGUF_FTYPE_Q4_0] = {"Q4_0", 2, XF_GGML_Q4_0},
    [XF_GGUF_FTYPE_Q4_1] = {"Q4_1", 3, XF_GGML_Q4_1},
    [XF_GGUF_FTYPE_Q5_0] = {"Q5_0", 8, XF_GGML_Q5_0},
    [XF_GGUF_FTYPE_Q5_1] = {"Q5_1", 9, XF_GGML_Q5_1},
    [XF_GGUF_FTYPE_Q8_0] = {"Q8_0", 7, XF_GGML_Q8_0},
    [XF_GGUF_FTYPE_Q2_K] = {"Q2_K", 10, XF_GGML_Q2_K},
    [XF_GGUF_FTYPE_Q3_K_S] = {"Q3_K_S", 11, XF_GGML_Q3_K},
    [XF_GGUF_FTYPE_Q3_K_M] = {"Q3_K_M", 12, XF_GGML_Q3_K},
    [XF_GGUF_FTYPE_Q3_K_L] = {"Q3_K_L", 13, XF_GGML_Q3_K},
    [XF_GGUF_FTYPE_Q4_K_S] = {"Q4_K_S", 14, XF_GGML_Q4_K},
    [XF_GGUF_FTYPE_Q4_K_M] = {"Q4_K_M", 15, XF_GGML_Q4_K},
    [XF_GGUF_FTYPE_Q5_K_S] = {"Q5_K_S", 16, XF_GGML_Q5_K},
    [XF_GGUF_FTYPE_Q5_K_M] = {"Q5_K_M", 17, XF_GGML_Q5_K},
    [XF_GGUF_FTYPE_Q6_K] = {"Q6_K", 18, XF_GGML_Q6_K},
    [XF_GGUF_FTYPE_IQ4_NL] = {"IQ4_NL", 25, XF_GGML_IQ4_NL},
    [XF_GGUF_FTYPE_IQ4_XS] = {"IQ4_XS", 30, XF_GGML_IQ4_XS},
};

/* llama-quantize's short names for the _M mixes */
static const struct {
    const char *name;
    xf_gguf_ftype ft;
} aliases[] = {
    {"Q3_K", XF_GGUF_FTYPE_Q3_K_M},
    {"Q4_K", XF_GGUF_FTYPE_Q4_K_M},
    {"Q5_K", XF_GGUF_FTYPE_Q5_K_M},
};

static bool valid_ftype(xf_gguf_ftype ft)
{
    return (int)ft >= 0 && ft < XF_GGUF_FTYPE_COUNT;
}

int xf_gguf_ftype_from_name(const char *name, xf_gguf_ftype *out)
{
    if (!name)
        return -1;
    for (int i = 0; i < XF_GGUF_FTYPE_COUNT; i++)
        if (!strcasecmp(name, ftypes[i].name)) {
            *out = (xf_gguf_ftype)i;
            return 0;
        }
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        if (!strcasecmp(name, aliases[i].name)) {
            *out = aliases[i].ft;
            return 0;
        }
    return -1;
}

const char *xf_gguf_ftype_name(xf_gguf_ftype ft)
{
    return valid_ftype(ft) ? ftypes[ft].name : "?";
}

uint32_t xf_gguf_ftype_llama_id(xf_gguf_ftype ft)
{
    return valid_ftype(ft) ? ftypes[ft].llama_id : 0;
}

uint32_t xf_gguf_ftype_default_type(xf_gguf_ftype ft)
{
    return valid_ftype(ft) ? ftypes[ft].default_type : XF_GGML_F32;
}

int xf_gguf_arch_from_name(const char *name, xf_gguf_arch *out)
{
    static const char *const names[] = {"llama", "qwen2", "gpt2"};
    for (int i = 0; name && i < 3; i++)
        if (!strcmp(name, names[i])) {
            *out = (xf_gguf_arch)i;
            return 0;
        }
    return -1;
}

/* ---- "Which tensors are quantized" ---- */

static bool contains(const char *s, const char *sub)
{
    return strstr(s, sub) != NULL;
}

/* ggml_n_dims: trailing dimensions of one element do not count (a [64, 1]
 * tensor is 1-D), at least 1. */
static int ggml_dims(const xf_gguf_tensor_desc *t)
{
    for (int i = t->ndim - 1; i >= 1; i--)
        if (t->ne[i] > 1)
            return i + 1;
    return 1;
}

/* "ends with weight" as llama.cpp tests it: the last "weight" starts at
 * size - 6, computed in size_t, so that a 5-byte name (npos == 5 - 6)
 * passes too. */
static bool ends_with_weight(const char *name)
{
    const size_t len = strlen(name);
    const char *last = NULL;
    for (const char *p = strstr(name, "weight"); p; p = strstr(p + 1, "weight"))
        last = p;
    const size_t pos = last ? (size_t)(last - name) : SIZE_MAX;
    return pos == len - 6;
}

bool xf_gguf_tensor_is_quantizable(const xf_gguf_tensor_desc *t)
{
    static const char *const never[] = {
        "_norm.weight", "ffn_gate_inp.weight", "altup", "laurel", "per_layer_model_proj",
        "ssm_conv1d", "shortconv.conv.weight", "time_mix_first.weight", "time_mix_w0.weight",
        "time_mix_w1.weight", "time_mix_w2.weight", "time_mix_v0.weight", "time_mix_v1.weight",
        "time_mix_v2.weight", "time_mix_a0.weight", "time_mix_a1.weight", "time_mix_a2.weight",
        "time_mix_g1.weight", "time_mix_g2.weight", "time_mix_decay_w1.weight",
        "time_mix_decay_w2.weight", "time_mix_lerp_fused.weight", "attn_rel_b.weight",
        ".position_embd", "sam.pos_embd", "sam.neck.", "sam.net_", ".rel_pos", ".patch_embd",
        ".patch_merger",
    };
    if (ggml_dims(t) < 2 || !ends_with_weight(t->name))
        return false;
    for (size_t i = 0; i < sizeof never / sizeof never[0]; i++)
        if (contains(t->name, never[i]))
            return false;
    return strcmp(t->name, "position_embd.weight") != 0 &&
           strcmp(t->name, "token_types.weight") != 0;
}

/* ---- "Order" ---- */

/* The layer as sscanf(name, "blk.%d.", &l) reads it: "blk." then an
 * optionally signed decimal (leading white space skipped); -1 otherwise. */
static int layer_of(const char *name)
{
    if (strncmp(name, "blk.", 4) != 0)
        return -1;
    const char *p = name + 4;
    while (isspace((unsigned char)*p))
        p++;
    const char *d = p + (*p == '+' || *p == '-');
    if (!isdigit((unsigned char)*d))
        return -1;
    long v = strtol(p, NULL, 10);
    return v > INT_MAX ? INT_MAX : v < INT_MIN ? INT_MIN : (int)v;
}

int xf_gguf_quantize_order_cmp(const char *a, const char *b)
{
    const int la = layer_of(a), lb = layer_of(b);
    if (la != lb)
        return la < lb ? -1 : 1;
    return strcmp(a, b); /* unsigned bytes, as std::string's operator< */
}

typedef struct visit {
    const char *name;
    size_t idx;
} visit;

static int visit_cmp(const void *x, const void *y)
{
    return xf_gguf_quantize_order_cmp(((const visit *)x)->name, ((const visit *)y)->name);
}

/* ---- "Categories" ---- */

typedef enum category {
    CAT_OTHER,
    CAT_OUTPUT,
    CAT_TOKEN_EMBD,
    CAT_ATTN_V,   /* attn_v, attn_qkv, attn_kv_b: the attn_v rules */
    CAT_ATTN_OUT,
    CAT_FFN_DOWN,
} category;

static category category_of(const char *n)
{
    if (!strcmp(n, "output.weight"))
        return CAT_OUTPUT;
    if (!strcmp(n, "token_embd.weight") || !strcmp(n, "per_layer_token_embd.weight"))
        return CAT_TOKEN_EMBD;
    if (contains(n, "attn_qkv.weight") || contains(n, "attn_kv_b.weight") ||
        contains(n, "attn_v.weight"))
        return CAT_ATTN_V;
    /* attn_k / attn_q: no rule for these file types; ffn_up / ffn_gate are
     * tested before ffn_down, so "ffn_up..." never counts as a down */
    if (contains(n, "attn_k.weight") || contains(n, "attn_q.weight"))
        return CAT_OTHER;
    if (contains(n, "attn_output.weight"))
        return CAT_ATTN_OUT;
    if (contains(n, "ffn_up") || contains(n, "ffn_gate"))
        return CAT_OTHER;
    if (contains(n, "ffn_down"))
        return CAT_FFN_DOWN;
    return CAT_OTHER;
}

/* ---- "The rules" ---- */

typedef struct plan_state {
    xf_gguf_ftype ft;
    const xf_gguf_model_desc *m;
    bool tied;        /* no output.weight */
    bool is_70b;      /* llama.cpp's LLM_TYPE_70B */
    int n_gqa;
    int n_attn_v, i_attn_v, i_ffn_down;
} plan_state;

static bool use_more_bits(int i, int n)
{
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

static int64_t block_of(uint32_t type)
{
    const xf_ggml_type_traits *tt = xf_ggml_traits(type);
    return tt ? tt->block_size : 1;
}

/* The type the mix asks for, before the row-length fallback. */
static uint32_t rule_type(plan_state *s, const xf_gguf_tensor_desc *t, category cat)
{
    const xf_gguf_ftype ft = s->ft;
    uint32_t type = ftypes[ft].default_type;
    if (cat == CAT_OUTPUT || (s->tied && cat == CAT_TOKEN_EMBD)) {
        if (t->ne[0] % block_of(type) != 0)
            return XF_GGML_Q8_0;
        return type == XF_GGML_Q8_0 ? type : XF_GGML_Q6_K;
    }
    if (cat == CAT_TOKEN_EMBD)
        return type;
    if (cat == CAT_ATTN_V) {
        const int i = s->i_attn_v++;
        if (ft == XF_GGUF_FTYPE_Q2_K)
            type = s->n_gqa >= 4 ? XF_GGML_Q4_K : XF_GGML_Q3_K;
        else if (ft == XF_GGUF_FTYPE_Q3_K_M)
            type = i < 2 ? XF_GGML_Q5_K : XF_GGML_Q4_K;
        else if (ft == XF_GGUF_FTYPE_Q3_K_L)
            type = XF_GGML_Q5_K;
        else if ((ft == XF_GGUF_FTYPE_IQ4_NL || ft == XF_GGUF_FTYPE_IQ4_XS) && s->n_gqa >= 4)
            type = XF_GGML_Q5_K;
        else if ((ft == XF_GGUF_FTYPE_Q4_K_M || ft == XF_GGUF_FTYPE_Q5_K_M) &&
                 use_more_bits(i, s->n_attn_v))
            type = XF_GGML_Q6_K;
        else if (ft == XF_GGUF_FTYPE_Q4_K_S && i < 4)
            type = XF_GGML_Q5_K;
        if (s->is_70b && (type == XF_GGML_Q3_K || type == XF_GGML_Q4_K))
            type = XF_GGML_Q5_K;
        return type;
    }
    if (cat == CAT_FFN_DOWN) {
        const int i = s->i_ffn_down++, n = s->m->n_layer;
        if (ft == XF_GGUF_FTYPE_Q2_K)
            type = XF_GGML_Q3_K;
        else if (ft == XF_GGUF_FTYPE_Q3_K_M)
            type = i < n / 16 ? XF_GGML_Q5_K : XF_GGML_Q4_K;
        else if (ft == XF_GGUF_FTYPE_Q3_K_L)
            type = XF_GGML_Q5_K;
        else if (ft == XF_GGUF_FTYPE_Q4_K_M) {
            if (use_more_bits(i, n))
                type = XF_GGML_Q6_K;
        } else if (i < n / 8 && (ft == XF_GGUF_FTYPE_IQ4_NL || ft == XF_GGUF_FTYPE_IQ4_XS) &&
                   !s->m->imatrix)
            type = XF_GGML_Q5_K;
        else if (ft == XF_GGUF_FTYPE_Q5_K_M && use_more_bits(i, n))
            type = XF_GGML_Q6_K;
        else if (ft == XF_GGUF_FTYPE_Q4_K_S && i < n / 8)
            type = XF_GGML_Q5_K;
        else if ((ft == XF_GGUF_FTYPE_Q4_0 || ft == XF_GGUF_FTYPE_Q5_0) && s->m->imatrix &&
                 i < n / 8)
            type = ft == XF_GGUF_FTYPE_Q4_0 ? XF_GGML_Q4_1 : XF_GGML_Q5_1;
        return type;
    }
    if (cat == CAT_ATTN_OUT) {
        if (ft == XF_GGUF_FTYPE_Q2_K)
            return XF_GGML_Q3_K;
        if (ft == XF_GGUF_FTYPE_Q3_K_M)
            return XF_GGML_Q4_K;
        if (ft == XF_GGUF_FTYPE_Q3_K_L)
            return XF_GGML_Q5_K;
    }
    return type;
}

/* ---- "Row lengths the block size does not divide" ---- */

static int fallback(const xf_gguf_tensor_desc *t, uint32_t type, uint32_t *out, xf_error *err)
{
    const int64_t cols = t->ne[0];
    *out = type;
    if (cols % block_of(type) == 0)
        return 0;
    uint32_t fb;
    switch (type) {
    case XF_GGML_IQ4_XS: fb = XF_GGML_IQ4_NL; break;
    case XF_GGML_Q2_K:
    case XF_GGML_Q3_K: fb = XF_GGML_Q4_0; break;
    case XF_GGML_Q4_K: fb = XF_GGML_Q5_0; break;
    case XF_GGML_Q5_K: fb = XF_GGML_Q5_1; break;
    case XF_GGML_Q6_K: fb = XF_GGML_Q8_0; break;
    default:
        return xf_fail(err, "tensor %s: row length %lld is not a multiple of %lld, which %s "
                       "needs, and llama-quantize has no fallback for %s (it refuses the file)",
                       t->name, (long long)cols, (long long)block_of(type),
                       xf_ggml_type_name(type), xf_ggml_type_name(type));
    }
    *out = cols % block_of(fb) == 0 ? fb : XF_GGML_F16;
    return 0;
}

static int check_desc(const xf_gguf_tensor_desc *t, xf_error *err)
{
    if (!t->name || !*t->name)
        return xf_fail(err, "GGUF file type plan: a tensor has no name");
    if (t->ndim < 1 || t->ndim > 4)
        return xf_fail(err, "tensor %s: %d dimensions (1 to 4 expected)", t->name, t->ndim);
    for (int d = 0; d < t->ndim; d++)
        if (t->ne[d] < 1)
            return xf_fail(err, "tensor %s: ne[%d] = %lld", t->name, d, (long long)t->ne[d]);
    if (!xf_ggml_type_name(t->type))
        return xf_fail(err, "tensor %s: type %u is not a ggml type", t->name, t->type);
    return 0;
}

int xf_gguf_ftype_plan(xf_gguf_ftype ft, const xf_gguf_model_desc *m,
                       const xf_gguf_tensor_desc *t, size_t n, uint32_t *types, xf_error *err)
{
    if (!valid_ftype(ft))
        return xf_fail(err, "GGUF file type plan: file type %d is not one xfquant plans", (int)ft);
    if (m->n_layer < 1 || m->n_head < 1 || m->n_head_kv < 0 ||
        (unsigned)m->arch > (unsigned)XF_GGUF_ARCH_GPT2)
        return xf_fail(err, "GGUF file type plan: bad model (arch %d, %d layers, %d heads, %d "
                       "kv heads)", (int)m->arch, m->n_layer, m->n_head, m->n_head_kv);
    plan_state s = {.ft = ft, .m = m, .tied = true};
    const int n_head_kv = m->n_head_kv ? m->n_head_kv : m->n_head;
    s.n_gqa = m->n_head / n_head_kv;
    /* src/llama-model.cpp's model types: only LLM_TYPE_70B matters here */
    s.is_70b = m->n_layer == 80 && ((m->arch == XF_GGUF_ARCH_LLAMA && m->n_head != n_head_kv) ||
                                    m->arch == XF_GGUF_ARCH_QWEN2);
    visit *order = malloc((n ? n : 1) * sizeof *order);
    if (!order)
        return xf_fail(err, "GGUF file type plan: out of memory");
    for (size_t i = 0; i < n; i++) {
        if (check_desc(&t[i], err) != 0) {
            free(order);
            return -1;
        }
        order[i] = (visit){t[i].name, i};
        const category c = category_of(t[i].name);
        s.tied &= c != CAT_OUTPUT;
        s.n_attn_v += c == CAT_ATTN_V;
    }
    qsort(order, n, sizeof *order, visit_cmp);
    for (size_t k = 0; k < n; k++) {
        const xf_gguf_tensor_desc *d = &t[order[k].idx];
        if (k > 0 && !strcmp(order[k - 1].name, d->name)) {
            free(order);
            return xf_fail(err, "tensor %s: duplicate name (llama.cpp refuses the file)", d->name);
        }
        uint32_t *out = &types[order[k].idx];
        if (!xf_gguf_tensor_is_quantizable(d)) {
            *out = d->type;
            continue;
        }
        if (fallback(d, rule_type(&s, d, category_of(d->name)), out, err) != 0) {
            free(order);
            return -1;
        }
    }
    free(order);
    return 0;
}
