/* Model -> GGUF (export/export.h): the llama.cpp names, shapes, key types
 * and tokenizer of each supported architecture (docs/export.md), tensor
 * types chosen from the .xfq grid (export/gguf_blocks.h). Every type is
 * decided and every source checked (NaN/Inf) before the file is opened, so a
 * refusal never touches the disk; the tensors are then converted one at a
 * time while the file is written (the writer's fill callback). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/half.h"
#include "core/json_util.h"
#include "core/progress.h"
#include "export/export.h"
#include "export/gguf_blocks.h"
#include "export/gguf_vocab.h"
#include "formats/ggml_types.h"
#include "formats/gguf_write.h"
#include "model/loader.h"

/* One GGUF tensor and where it comes from. */
typedef struct job {
    char name[XF_GGUF_MAX_NAME];
    const xf_tensor *t;
    bool transposed;        /* plain 2-D stored [in, out] (HF GPT-2 Conv1D) */
    int64_t rope_heads;     /* llama Q/K row permutation: heads (0: none) */
    int64_t head_dim;
    /* plan */
    int64_t rows, cols;     /* logical (1-D: rows 1) */
    uint32_t type;
    bool packed_exact;      /* packed, written as its exact (or Q4_1) block type */
    char why[XF_ERROR_MSG_MAX]; /* why a packed tensor fell back to F16 */
} job;

typedef struct plan {
    job *v;
    size_t n, cap;
} plan;

static job *push(plan *p, const xf_tensor *t, const char *fmt, int layer)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 64;
        job *nv = realloc(p->v, cap * sizeof *nv);
        if (!nv)
            return NULL;
        p->v = nv;
        p->cap = cap;
    }
    job *j = &p->v[p->n++];
    memset(j, 0, sizeof *j);
    snprintf(j->name, sizeof j->name, fmt, layer);
    j->t = t;
    return j;
}

/* Adds weight (and bias) of a linear as blk.L.<base>.weight / .bias. */
static int push_linear(plan *p, const xf_linear *lin, const char *base, int layer,
                       int64_t rope_heads, int64_t head_dim)
{
    char fmt[64];
    snprintf(fmt, sizeof fmt, "blk.%%d.%s.weight", base);
    job *j = push(p, lin->w, fmt, layer);
    if (!j)
        return -1;
    j->transposed = lin->transposed && !xf_dtype_is_packed(lin->w->dtype);
    j->rope_heads = rope_heads;
    j->head_dim = head_dim;
    if (lin->b) {
        snprintf(fmt, sizeof fmt, "blk.%%d.%s.bias", base);
        if (!(j = push(p, lin->b, fmt, layer)))
            return -1;
        j->rope_heads = rope_heads;
        j->head_dim = head_dim;
    }
    return 0;
}

static int push_norm(plan *p, const xf_norm *n, const char *base, int layer)
{
    char fmt[64];
    snprintf(fmt, sizeof fmt, "%s.weight", base);
    if (!push(p, n->w, fmt, layer))
        return -1;
    if (n->b) {
        snprintf(fmt, sizeof fmt, "%s.bias", base);
        if (!push(p, n->b, fmt, layer))
            return -1;
    }
    return 0;
}

/* The llama.cpp tensor list of the model (src/llama-arch.cpp names). */
static int build_jobs(plan *p, const xf_model_weights *mw, bool rope_permute)
{
    const xf_model_config *c = &mw->cfg;
    const bool gpt2 = c->family == XF_FAMILY_GPT2;
    if (!push(p, mw->tok_embed, "token_embd.weight", 0))
        return -1;
    if (gpt2 && !push(p, mw->pos_embed, "position_embd.weight", 0))
        return -1;
    if (push_norm(p, &mw->final_norm, "output_norm", 0) != 0)
        return -1;
    if (!c->tie_embeddings && mw->lm_head.w && mw->lm_head.w != mw->tok_embed) {
        job *j = push(p, mw->lm_head.w, "output.weight", 0);
        if (!j)
            return -1;
        j->transposed = mw->lm_head.transposed && !xf_dtype_is_packed(j->t->dtype);
    }
    for (int l = 0; l < (int)c->n_layers; l++) {
        const xf_layer_weights *L = &mw->layers[l];
        const int64_t hq = rope_permute ? c->n_heads : 0, hk = rope_permute ? c->n_kv_heads : 0;
        if (push_norm(p, &L->attn_norm, "blk.%d.attn_norm", l) != 0 ||
            push_norm(p, &L->mlp_norm, "blk.%d.ffn_norm", l) != 0)
            return -1;
        if (gpt2) {
            if (push_linear(p, &L->lin[XF_LIN_Q], "attn_qkv", l, 0, 0) != 0)
                return -1;
        } else if (push_linear(p, &L->lin[XF_LIN_Q], "attn_q", l, hq, c->head_dim) != 0 ||
                   push_linear(p, &L->lin[XF_LIN_K], "attn_k", l, hk, c->head_dim) != 0 ||
                   push_linear(p, &L->lin[XF_LIN_V], "attn_v", l, 0, 0) != 0 ||
                   push_linear(p, &L->lin[XF_LIN_GATE], "ffn_gate", l, 0, 0) != 0) {
            return -1;
        }
        if (push_linear(p, &L->lin[XF_LIN_O], "attn_output", l, 0, 0) != 0 ||
            push_linear(p, &L->lin[XF_LIN_UP], "ffn_up", l, 0, 0) != 0 ||
            push_linear(p, &L->lin[XF_LIN_DOWN], "ffn_down", l, 0, 0) != 0)
            return -1;
    }
    return 0;
}

int xf_gguf_model_tensors(const xf_model_weights *mw, xf_gguf_tensor_ref **out, size_t *n,
                          xf_error *err)
{
    *out = NULL;
    *n = 0;
    plan p = {0};
    if (build_jobs(&p, mw, false) != 0) {
        free(p.v);
        return xf_fail(err, "out of memory listing the GGUF tensors");
    }
    xf_gguf_tensor_ref *v = calloc(p.n ? p.n : 1, sizeof *v);
    if (!v) {
        free(p.v);
        return xf_fail(err, "out of memory listing the GGUF tensors");
    }
    for (size_t k = 0; k < p.n; k++) {
        const job *j = &p.v[k];
        memcpy(v[k].name, j->name, sizeof v[k].name);
        v[k].src = j->t;
        v[k].ndim = j->t->ndim == 1 ? 1 : 2;
        if (j->t->ndim == 1) {
            v[k].ne[0] = j->t->shape[0];
            v[k].ne[1] = 1;
        } else {
            const bool tr = j->transposed;
            v[k].ne[0] = tr ? j->t->shape[0] : j->t->shape[1];
            v[k].ne[1] = tr ? j->t->shape[1] : j->t->shape[0];
        }
    }
    free(p.v);
    *out = v;
    *n = p.n;
    return 0;
}

/* Source row of GGUF row r: llama.cpp's RoPE rotates adjacent pairs, HF's
 * rotate_half the two halves of each head, so each head's rows are
 * interleaved: new[h*hd + 2i + j] = old[h*hd + j*hd/2 + i]
 * (convert_hf_to_gguf.py's LlamaModel.permute). */
static int64_t src_row(const job *j, int64_t r)
{
    if (!j->rope_heads)
        return r;
    const int64_t hd = j->head_dim, h = r / hd, i = r % hd;
    return h * hd + (i % 2) * (hd / 2) + i / 2;
}

static uint32_t float_type(const xf_tensor *t, xf_export_float f)
{
    switch (f) {
    case XF_EXPORT_FLOAT_F16: return XF_GGML_F16;
    case XF_EXPORT_FLOAT_F32: return XF_GGML_F32;
    case XF_EXPORT_FLOAT_BF16: return XF_GGML_BF16;
    default:
        return t->dtype == XF_DTYPE_F16 ? XF_GGML_F16
               : t->dtype == XF_DTYPE_BF16 ? XF_GGML_BF16
                                           : XF_GGML_F32;
    }
}

/* Whether a plain float tensor holds NaN/Inf (checked before writing);
 * branch-free per chunk so that the compiler vectorizes the scan. */
static bool has_nonfinite(const xf_tensor *t)
{
    const int64_t n = xf_tensor_numel(t);
    uint32_t bad = 0;
    if (t->dtype == XF_DTYPE_F32) {
        const uint32_t *u = t->data;
        for (int64_t i = 0; i < n; i++)
            bad |= (u[i] & 0x7f800000u) == 0x7f800000u;
    } else if (t->dtype == XF_DTYPE_F16 || t->dtype == XF_DTYPE_BF16) {
        const uint16_t *h = t->data, mask = t->dtype == XF_DTYPE_F16 ? 0x7c00 : 0x7f80;
        for (int64_t i = 0; i < n; i++)
            bad |= (h[i] & mask) == mask;
    }
    return bad != 0;
}

/* Whether a GGML-block tensor dequantizes to NaN/Inf anywhere (an fp16 d
 * or dmin field that is not finite; the .xfq writer refuses those, a
 * hand-made file may hold them). -1 on a conversion error. */
static int ggml_nonfinite(const xf_tensor *t, xf_error *err)
{
    const int64_t rows = t->shape[0], cols = t->shape[1];
    float *row = malloc((size_t)cols * sizeof *row);
    if (!row)
        return xf_fail(err, "tensor %s: out of memory", t->name);
    int bad = 0;
    for (int64_t r = 0; r < rows && bad == 0; r++) {
        if (xf_tensor_row_to_f32(t, r, row, err) != 0)
            bad = -1;
        else
            for (int64_t c = 0; c < cols; c++)
                bad |= !isfinite(row[c]);
    }
    free(row);
    return bad;
}

/* Decides every tensor's type; refuses (before anything is written) what
 * GGUF cannot hold. */
static int plan_types(plan *p, const xf_export_opts *o, const char *what, xf_error *err)
{
    for (size_t k = 0; k < p->n; k++) {
        job *j = &p->v[k];
        const xf_tensor *t = j->t;
        if (xf_dtype_is_ggml(t->dtype)) {
            /* llama.cpp blocks (.xfq, [out, in], never transposed): the type
             * is theirs and the rows are copied verbatim (convert); --type,
             * --gguf-asym and --fallback do not apply */
            const int bad = t->ndim == 2 ? ggml_nonfinite(t, err) : -1;
            if (bad < 0)
                return t->ndim == 2 ? xf_fail_prefix(err, "%s", what)
                                    : xf_fail(err, "%s: tensor %s: GGML tensor with %d "
                                              "dimensions", what, t->name, t->ndim);
            if (bad)
                return xf_fail(err, "%s: tensor %s (%s) holds NaN or Inf", what, t->name,
                               xf_tensor_type_name(t));
            j->transposed = false;
            j->rows = t->shape[0];
            j->cols = t->shape[1];
            j->type = t->ggml_type;
            continue;
        }
        if (!xf_dtype_is_packed(t->dtype) && has_nonfinite(t))
            return xf_fail(err, "%s: tensor %s holds NaN or Inf", what, t->name);
        if (t->ndim == 1) {
            j->rows = 1;
            j->cols = t->shape[0];
            j->type = XF_GGML_F32; /* norms and biases: F32, as llama.cpp's converter */
            continue;
        }
        if (t->ndim != 2)
            return xf_fail(err, "%s: tensor %s has %d dimensions, expected 2", what, t->name,
                           t->ndim);
        j->rows = j->transposed ? t->shape[1] : t->shape[0];
        j->cols = j->transposed ? t->shape[0] : t->shape[1];
        if (!xf_dtype_is_packed(t->dtype)) {
            if (!xf_dtype_is_float(t->dtype))
                return xf_fail(err, "%s: tensor %s: dtype %s is not a float type", what, t->name,
                               xf_dtype_name(t->dtype));
            j->type = float_type(t, o->float_type);
            continue;
        }
        bool act_order = false;
        xf_error why;
        if (t->packed.outliers.row_ptr) {
            xf_fail(&why, "tensor %s: %lld outliers in an fp16 side table, which GGUF blocks "
                    "cannot hold", t->name, (long long)t->packed.outliers.nnz);
        } else if (xf_gguf_packed_type(t, o->gguf_asym, &j->type, &act_order, &why) == 0) {
            j->packed_exact = true;
            continue;
        }
        if (act_order)
            return xf_fail(err, "%s: %s", what, why.msg);
        if (o->fallback == XF_EXPORT_FALLBACK_NONE)
            return xf_fail(err, "%s: %s (--fallback f16|f32 writes it unquantized)", what, why.msg);
        j->type = o->fallback == XF_EXPORT_FALLBACK_F32 ? XF_GGML_F32 : XF_GGML_F16;
        snprintf(j->why, sizeof j->why, "%s", why.msg);
    }
    return 0;
}

typedef struct stats {
    json_t *approx;      /* [{tensor, type, max_abs_err, why}] */
    json_t *fallback_exact; /* packed tensors written F32 (exact, unquantized) */
    double q41_err, q41_dm;
    float *f16_lut;      /* fp16 -> fp32 of all 65536 values, made on first use */
} stats;

/* Converts one job into its ggml bytes at dst (the writer's buffer). */
static int convert(const job *j, uint8_t *dst, stats *st, xf_error *err)
{
    const int64_t rows = j->rows, cols = j->cols;
    const xf_ggml_type_traits *tt = xf_ggml_traits(j->type);
    const size_t row_bytes = xf_ggml_row_bytes(tt, cols);
    float *f = NULL;
    uint8_t *codes = NULL;
    int32_t *inv = NULL;
    if (j->packed_exact) {
        const xf_tensor *t = j->t;
        if (!(codes = malloc((size_t)cols + 32)))
            goto oom;
        if (t->packed.perm) {
            if (!(inv = malloc((size_t)cols * sizeof *inv)))
                goto oom;
            for (int64_t c = 0; c < cols; c++)
                inv[t->packed.perm[c]] = (int32_t)c;
        }
        double e = 0, dm = 0;
        for (int64_t r = 0; r < rows; r++)
            xf_gguf_encode_packed_row(t, src_row(j, r), j->type, inv, codes,
                                      dst + (size_t)r * row_bytes, &e, &dm);
        if (j->type == XF_GGML_Q4_1) {
            json_array_append_new(st->approx,
                                  json_pack("{s:s, s:s, s:f, s:f, s:s}", "tensor", j->name,
                                            "type", "q4_1", "max_abs_err", e, "max_abs_dmin",
                                            dm, "why", "fp16-rounded min m = -s*z"));
            if (e > st->q41_err)
                st->q41_err = e;
            if (dm > st->q41_dm)
                st->q41_dm = dm;
        }
        free(codes);
        free(inv);
        return 0;
    }
    /* same element type, rows stored contiguously: the bytes move as they
     * are (whole rows, so the Q/K interleave applies), exact by construction;
     * GGML blocks of an .xfq always take this path (no re-rounding) */
    const uint32_t same = j->t->dtype == XF_DTYPE_F16    ? XF_GGML_F16
                          : j->t->dtype == XF_DTYPE_BF16 ? XF_GGML_BF16
                          : j->t->dtype == XF_DTYPE_F32  ? XF_GGML_F32
                          : j->t->dtype == XF_DTYPE_GGML ? j->t->ggml_type
                                                         : UINT32_MAX;
    if (same == j->type && !j->transposed) {
        const uint8_t *src = j->t->data;
        for (int64_t r = 0; r < rows; r++)
            memcpy(dst + (size_t)r * row_bytes, src + (size_t)src_row(j, r) * row_bytes,
                   row_bytes);
        return 0;
    }
    /* F16/BF16 rows widened to F32 (exact), converted straight into place */
    if (j->type == XF_GGML_F32 && !j->transposed &&
        (j->t->dtype == XF_DTYPE_F16 || j->t->dtype == XF_DTYPE_BF16)) {
        const uint16_t *src = j->t->data;
        const bool bf = j->t->dtype == XF_DTYPE_BF16;
        if (!bf && !st->f16_lut) {
            /* every fp16 value once (core/half.c's conversion), then looked up */
            if (!(st->f16_lut = malloc(65536 * sizeof *st->f16_lut)))
                goto oom;
            for (uint32_t h = 0; h < 65536; h++)
                st->f16_lut[h] = xf_f16_to_f32((uint16_t)h);
        }
        for (int64_t r = 0; r < rows; r++) {
            float *d = (float *)(dst + (size_t)r * row_bytes);
            const uint16_t *sr = src + (size_t)src_row(j, r) * (size_t)cols;
            if (bf)
                xf_bf16_to_f32_array(sr, d, (size_t)cols);
            else
                for (int64_t c = 0; c < cols; c++)
                    d[c] = st->f16_lut[sr[c]];
        }
        return 0;
    }
    /* float path: the whole tensor in fp32 (dequantized for a packed
     * fallback, with the outliers its view carries), in its stored shape */
    const int64_t n = rows * cols;
    if (!(f = malloc((size_t)n * sizeof *f)))
        goto oom;
    if (xf_tensor_to_f32(j->t, f, err) != 0)
        goto fail;
    float *row = malloc((size_t)cols * sizeof *row);
    if (!row)
        goto oom;
    double maxerr = 0;
    for (int64_t r = 0; r < rows; r++) {
        const int64_t s = src_row(j, r);
        for (int64_t c = 0; c < cols; c++)
            row[c] = j->transposed ? f[c * rows + s] : f[s * cols + c];
        xf_gguf_encode_float_row(row, cols, j->type, dst + (size_t)r * row_bytes);
        if (xf_dtype_is_packed(j->t->dtype) && j->type == XF_GGML_F16) {
            const uint16_t *h = (const uint16_t *)(dst + (size_t)r * row_bytes);
            for (int64_t c = 0; c < cols; c++) {
                double d = fabs((double)xf_f16_to_f32(h[c]) - (double)row[c]);
                if (d > maxerr)
                    maxerr = d;
            }
        }
    }
    free(row);
    /* a fallback to F32 holds the dequantized values exactly */
    if (xf_dtype_is_packed(j->t->dtype) && j->type == XF_GGML_F16)
        json_array_append_new(st->approx,
                              json_pack("{s:s, s:s, s:f, s:s}", "tensor", j->name, "type", "f16",
                                        "max_abs_err", maxerr, "why", j->why));
    else if (xf_dtype_is_packed(j->t->dtype))
        json_array_append_new(st->fallback_exact, json_string(j->name));
    free(f);
    return 0;
oom:
    xf_fail(err, "tensor %s: out of memory", j->name);
fail:
    free(f);
    free(codes);
    free(inv);
    return -1;
}

/* The writer's fill callback: one job converted while the file is written,
 * so only one tensor is in memory at a time. */
typedef struct fill_ctx {
    const job *j;
    stats *st;
    xf_progress *prog;
    int64_t index, total;
} fill_ctx;

static int fill_job(void *ctx, void *buf, size_t nbytes, xf_error *err)
{
    fill_ctx *c = ctx;
    (void)nbytes;
    if (convert(c->j, buf, c->st, err) != 0)
        return -1;
    xf_progress_update(c->prog, c->index + 1, c->total, 0, c->j->name);
    return 0;
}

/* llama_ftype of the type holding most weights of the 2-D tensors
 * (general.file_type; informational for llama.cpp). */
static uint32_t llama_ftype(uint32_t t)
{
    switch (t) {
    case XF_GGML_F32: return 0;
    case XF_GGML_F16: return 1;
    case XF_GGML_Q4_0: return 2;
    case XF_GGML_Q4_1: return 3;
    case XF_GGML_Q8_0: return 7;
    case XF_GGML_Q5_0: return 8;
    case XF_GGML_Q5_1: return 9;
    /* the K-quant mixes are named after their main type; the medium mix
     * where llama.cpp has several (informational: GGML blocks from .xfq) */
    case XF_GGML_Q2_K: return 10;
    case XF_GGML_Q3_K: return 12;
    case XF_GGML_Q4_K: return 15;
    case XF_GGML_Q5_K: return 17;
    case XF_GGML_Q6_K: return 18;
    case XF_GGML_IQ4_NL: return 25;
    case XF_GGML_IQ4_XS: return 30;
    case XF_GGML_BF16: return 32;
    default: return 0;
    }
}

static int add_hparams(xf_gguf_writer *w, const xf_model_config *c, const char *arch,
                       int64_t n_vocab, xf_error *err)
{
    char k[128];
#define KEY(s) (snprintf(k, sizeof k, "%s.%s", arch, s), k)
    if (xf_gguf_add_u32(w, KEY("context_length"), (uint32_t)c->max_pos, err) ||
        xf_gguf_add_u32(w, KEY("embedding_length"), (uint32_t)c->hidden, err) ||
        xf_gguf_add_u32(w, KEY("block_count"), (uint32_t)c->n_layers, err) ||
        xf_gguf_add_u32(w, KEY("feed_forward_length"), (uint32_t)c->intermediate, err) ||
        xf_gguf_add_u32(w, KEY("attention.head_count"), (uint32_t)c->n_heads, err))
        return -1;
    if (c->family == XF_FAMILY_GPT2)
        return xf_gguf_add_f32(w, KEY("attention.layer_norm_epsilon"), (float)c->norm_eps, err);
    if (xf_gguf_add_u32(w, KEY("attention.head_count_kv"), (uint32_t)c->n_kv_heads, err) ||
        xf_gguf_add_u32(w, KEY("rope.dimension_count"), (uint32_t)c->head_dim, err) ||
        xf_gguf_add_u32(w, KEY("vocab_size"), (uint32_t)n_vocab, err) ||
        xf_gguf_add_f32(w, KEY("attention.layer_norm_rms_epsilon"), (float)c->norm_eps, err) ||
        xf_gguf_add_f32(w, KEY("rope.freq_base"), (float)c->rope_theta, err))
        return -1;
    /* llama.cpp assumes head_dim = hidden / heads unless told */
    if (c->head_dim * c->n_heads != c->hidden &&
        (xf_gguf_add_u32(w, KEY("attention.key_length"), (uint32_t)c->head_dim, err) ||
         xf_gguf_add_u32(w, KEY("attention.value_length"), (uint32_t)c->head_dim, err)))
        return -1;
#undef KEY
    return 0;
}

/* What the recipe asks of the engine beyond the weights: refused unless
 * weights_only, then recorded. *omitted: malloc'd text or NULL. */
static int check_recipe(const xf_loaded_model *m, const xf_export_opts *o, char **omitted,
                        xf_error *err)
{
    *omitted = NULL;
    if (m->source != XF_SOURCE_XFQ)
        return 0;
    const json_t *recipe = json_object_get(m->xfq.meta, "recipe");
    const json_t *act = json_object_get(recipe, "activations");
    const json_t *online = json_object_get(recipe, "online_transforms");
    const bool has_act = act && !json_is_null(act);
    const bool has_online = json_is_array(online) && json_array_size(online) > 0;
    if (!has_act && !has_online)
        return 0;
    const char *text = has_act && has_online
                           ? "activation/KV quantization and online transforms"
                       : has_act ? "activation/KV quantization"
                                 : "online transforms (rotations applied at run time)";
    if (!o->weights_only)
        return xf_fail(err,
                       "%s: the recipe has %s, which a GGUF engine would not run (it would run "
                       "the weights without them); --weights-only exports the weights anyway",
                       m->path, text);
    if (asprintf(omitted, "xfquant export --weights-only: the recipe's %s are not in this file",
                 text) < 0)
        *omitted = NULL;
    return 0;
}

/* llama.cpp's architecture for the model, its tokenizer pre-type and
 * whether Q/K rows are interleaved for llama's RoPE. */
static int gguf_arch_of(const xf_model_config *c, const char *in, const char **arch,
                        const char **pre, bool *rope_permute, xf_error *err)
{
    *pre = "gpt-2";
    *rope_permute = false;
    if (c->family == XF_FAMILY_OPT)
        return xf_fail(err, "%s: OPT has no llama.cpp architecture; GGUF export supports llama, "
                            "mistral, qwen2 and gpt2", in);
    if (c->family == XF_FAMILY_GPT2) {
        *arch = "gpt2";
        if (!c->layer_norm || c->head_bias)
            return xf_fail(err, "%s: GPT-2 with folded norms (%s) has no llama.cpp form: its "
                                "gpt2 graph needs LayerNorm biases and no head bias",
                           in, XF_CONFIG_NORM_KEY);
    } else if (!strcmp(c->model_type, "qwen2")) {
        *arch = "qwen2"; /* NEOX RoPE: no Q/K permutation */
        *pre = "qwen2";
    } else {
        *arch = "llama"; /* llama, mistral */
        *rope_permute = true;
        *pre = "llama-bpe";
    }
    return 0;
}

/* The GGML type holding most matrix weights (general.file_type). */
static uint32_t main_type_of(const plan *p)
{
    int64_t by_type[64] = {0};
    for (size_t k = 0; k < p->n; k++)
        if (p->v[k].t->ndim == 2 && p->v[k].type < 64)
            by_type[p->v[k].type] += p->v[k].rows * p->v[k].cols;
    uint32_t main_type = 0;
    for (uint32_t t = 0; t < 64; t++)
        if (by_type[t] > by_type[main_type])
            main_type = t;
    return main_type;
}

/* general.*, xfquant.*, the hyper-parameters and the vocabulary. */
static int add_metadata(xf_gguf_writer *w, const xf_loaded_model *m, const char *in,
                        const char *arch, const char *pre, uint32_t main_type,
                        const char *omitted, json_t *sum, xf_error *err)
{
    const int64_t n_vocab = m->weights.tok_embed->shape[0];
    if (xf_gguf_add_string(w, "general.architecture", arch, err) ||
        xf_gguf_add_u32(w, "general.file_type", llama_ftype(main_type), err) ||
        xf_gguf_add_u32(w, "general.quantization_version", 2, err))
        return -1;
    if (omitted && (xf_gguf_add_string(w, "general.description", omitted, err) ||
                    xf_gguf_add_string(w, "xfquant.omitted", omitted, err)))
        return -1;
    if (m->source == XF_SOURCE_XFQ) {
        /* the recipe as done, without "options" (what was asked, calibration
         * file paths included): the GGUF's bytes do not depend on where the
         * calibration text lay */
        json_t *recipe = json_deep_copy(json_object_get(m->xfq.meta, "recipe"));
        if (json_is_object(recipe))
            json_object_del(recipe, "options");
        char *s = recipe ? xf_json_dump_sorted(recipe) : NULL;
        json_decref(recipe);
        int bad = s && xf_gguf_add_string(w, "xfquant.recipe", s, err);
        free(s);
        if (bad)
            return -1;
    }
    if (add_hparams(w, &m->cfg, arch, n_vocab, err) != 0)
        return -1;
    return xf_gguf_add_vocab(w, m->tokenizer_json, m->tokenizer_config_json, pre, n_vocab, in,
                             sum, err);
}

/* Parameter and byte counts of the written tensors. */
typedef struct tensor_totals {
    int64_t params, qparams;
    uint64_t qbytes;
} tensor_totals;

/* Adds one tensor of nb bytes to the per-type counts of the summary. */
static void count_type(json_t *types, const char *tn, int64_t params, size_t nb)
{
    json_t *e = json_object_get(types, tn);
    if (!e) {
        e = json_pack("{s:i, s:I, s:I}", "tensors", 0, "params", (json_int_t)0, "bytes",
                      (json_int_t)0);
        json_object_set_new(types, tn, e);
    }
    json_object_set_new(e, "tensors",
                        json_integer(json_integer_value(json_object_get(e, "tensors")) + 1));
    json_object_set_new(e, "params",
                        json_integer(json_integer_value(json_object_get(e, "params")) + params));
    json_object_set_new(e, "bytes", json_integer(json_integer_value(json_object_get(e, "bytes")) +
                                                 (json_int_t)nb));
}

/* Declares every tensor (each filled by fill_job while the file is
 * written, from fc[k]); counts them into types and tot. */
static int add_tensors(xf_gguf_writer *w, const plan *p, stats *st, xf_progress *prog,
                       fill_ctx *fc, json_t *types, tensor_totals *tot, xf_error *err)
{
    for (size_t k = 0; k < p->n; k++) {
        const job *j = &p->v[k];
        int64_t ne[2] = {j->cols, j->rows};
        const size_t nb = xf_ggml_row_bytes(xf_ggml_traits(j->type), j->cols) * (size_t)j->rows;
        fc[k] = (fill_ctx){j, st, prog, (int64_t)k, (int64_t)p->n};
        if (xf_gguf_add_tensor_fill(w, j->name, j->t->ndim == 1 ? 1 : 2, ne, j->type, nb,
                                    fill_job, &fc[k], err) != 0)
            return -1;
        count_type(types, xf_ggml_traits(j->type)->name, j->rows * j->cols, nb);
        tot->params += j->rows * j->cols;
        if (xf_ggml_traits(j->type)->quantized) {
            tot->qparams += j->rows * j->cols;
            tot->qbytes += nb;
        }
    }
    return 0;
}

/* The summary's totals and conversion notes (st's arrays move into sum). */
static void finish_summary(json_t *sum, json_t *types, const char *in, const char *out,
                           const char *arch, uint32_t main_type, size_t n_tensors,
                           const tensor_totals *tot, uint64_t fsize, bool rope_permute,
                           stats *st, const char *omitted)
{
    const char *kname;
    json_t *e;
    json_object_foreach(types, kname, e) {
        double b = (double)json_integer_value(json_object_get(e, "bytes"));
        double n = (double)json_integer_value(json_object_get(e, "params"));
        json_object_set_new(e, "bits_per_weight", json_real(n > 0 ? 8.0 * b / n : 0.0));
    }
    json_object_set_new(sum, "to", json_string("gguf"));
    json_object_set_new(sum, "input", json_string(in));
    json_object_set_new(sum, "output", json_string(out));
    json_object_set_new(sum, "architecture", json_string(arch));
    json_object_set_new(sum, "file_type", json_integer(llama_ftype(main_type)));
    json_object_set_new(sum, "tensors", json_integer((json_int_t)n_tensors));
    json_object_set_new(sum, "params", json_integer(tot->params));
    json_object_set_new(sum, "bytes", json_integer((json_int_t)fsize));
    json_object_set_new(sum, "bits_per_weight",
                        json_real(tot->params > 0 ? 8.0 * (double)fsize / (double)tot->params
                                                  : 0.0));
    json_object_set_new(sum, "quantized_bits_per_weight",
                        json_real(tot->qparams > 0
                                      ? 8.0 * (double)tot->qbytes / (double)tot->qparams
                                      : 0.0));
    json_object_set_new(sum, "rope_permuted", json_boolean(rope_permute));
    json_object_set_new(sum, "exact", json_boolean(json_array_size(st->approx) == 0));
    json_object_set_new(sum, "approximate", st->approx);
    json_object_set_new(sum, "fallback_f32", st->fallback_exact);
    st->approx = st->fallback_exact = NULL;
    if (st->q41_err > 0 || st->q41_dm > 0) {
        json_object_set_new(sum, "q4_1_max_abs_err", json_real(st->q41_err));
        json_object_set_new(sum, "q4_1_max_abs_dmin", json_real(st->q41_dm));
    }
    json_object_set_new(sum, "omitted", omitted ? json_string(omitted) : json_null());
}

int xf_export_gguf(const char *in, const char *out, const xf_export_opts *o, json_t **summary,
                   xf_error *err)
{
    xf_loaded_model m;
    xf_gguf_writer w;
    plan p = {0};
    char *omitted = NULL;
    fill_ctx *fc = NULL;
    stats st = {.approx = json_array(), .fallback_exact = json_array()};
    json_t *sum = json_object();
    int rc = -1;
    memset(&w, 0, sizeof w);
    if (xf_model_open(&m, in, err) != 0) {
        json_decref(sum);
        json_decref(st.approx);
        json_decref(st.fallback_exact);
        return -1;
    }
    const char *arch = NULL, *pre = NULL;
    bool rope_permute = false;
    if (gguf_arch_of(&m.cfg, in, &arch, &pre, &rope_permute, err) != 0)
        goto out;
    if (check_recipe(&m, o, &omitted, err) != 0)
        goto out;
    if (build_jobs(&p, &m.weights, rope_permute) != 0) {
        xf_fail(err, "%s: out of memory", in);
        goto out;
    }
    if (plan_types(&p, o, in, err) != 0)
        goto out;
    const uint32_t main_type = main_type_of(&p);
    if (xf_gguf_writer_init(&w, XF_GGUF_DEFAULT_ALIGNMENT, out, err) != 0 ||
        add_metadata(&w, &m, in, arch, pre, main_type, omitted, sum, err) != 0)
        goto out;

    xf_progress prog;
    xf_progress_init(&prog, "export");
    if (!o->progress)
        prog.enabled = false;
    json_t *types = json_object();
    json_object_set_new(sum, "types", types);
    tensor_totals tot = {0};
    fc = calloc(p.n ? p.n : 1, sizeof *fc);
    if (!fc) {
        xf_fail(err, "%s: out of memory", in);
        goto out;
    }
    if (add_tensors(&w, &p, &st, &prog, fc, types, &tot, err) != 0)
        goto out;
    /* the tensors are converted while the file is written */
    const int wrc = xf_gguf_write(&w, out, err);
    xf_progress_finish(&prog);
    if (wrc != 0)
        goto out;
    finish_summary(sum, types, in, out, arch, main_type, p.n, &tot, xf_gguf_file_size(&w),
                   rope_permute, &st, omitted);
    *summary = sum;
    sum = NULL;
    rc = 0;
out:
    free(fc);
    json_decref(sum);
    json_decref(st.approx);
    json_decref(st.fallback_exact);
    free(st.f16_lut);
    free(omitted);
    free(p.v);
    xf_gguf_writer_free(&w);
    xf_model_close(&m);
    return rc;
}
