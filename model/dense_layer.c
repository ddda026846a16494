/* fp32 copies of a layer's weights (and of the final norm + LM head), with
 * every tensor's shape checked against the config. */
#include "model/forward.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "model/ops.h"

/* A weight matrix's fp32 array (free()-able like malloc's). Large ones are
 * 2 MiB aligned and asked to be backed by transparent huge pages: a 1B
 * model's 4 GB of fp32 layers then cost ~2,000 page faults instead of
 * ~1,000,000 when first written, and the products' walks over them fewer
 * TLB misses. Only a hint: the kernel may ignore it (THP "never"). */
#define XF_HUGE_PAGE ((size_t)2 << 20)

static float *alloc_weights(size_t n)
{
    const size_t bytes = n * sizeof(float);
    if (bytes < XF_HUGE_PAGE)
        return malloc(bytes);
    void *p = NULL;
    if (posix_memalign(&p, XF_HUGE_PAGE, bytes) != 0)
        return NULL;
#ifdef MADV_HUGEPAGE
    (void)madvise(p, bytes, MADV_HUGEPAGE);
#endif
    return p;
}

static const char *tname(const xf_tensor *t) { return (t && t->name) ? t->name : "(unnamed)"; }

bool xf_forward_role_shape(const xf_model_config *c, xf_linear_role r, int64_t *out, int64_t *in)
{
    const int64_t H = c->hidden, I = c->intermediate;
    const int64_t q_dim = c->n_heads * c->head_dim, kv_dim = c->n_kv_heads * c->head_dim;
    switch (r) {
    case XF_LIN_Q:
        *out = c->fused_qkv ? q_dim + 2 * kv_dim : q_dim;
        *in = H;
        return true;
    case XF_LIN_K:
    case XF_LIN_V:
        *out = kv_dim;
        *in = H;
        return !c->fused_qkv;
    case XF_LIN_O:
        *out = H;
        *in = q_dim;
        return true;
    case XF_LIN_GATE:
        *out = I;
        *in = H;
        return c->family == XF_FAMILY_LLAMA;
    case XF_LIN_UP:
        *out = I;
        *in = H;
        return true;
    case XF_LIN_DOWN:
        *out = H;
        *in = I;
        return true;
    case XF_LIN_COUNT: break;
    }
    *out = *in = 0;
    return false;
}

/* A 1-D (or any-shape) vector of n values to a new fp32 array. */
static int load_vector(const xf_tensor *t, int64_t n, float **dst, const char *ctx, xf_error *err)
{
    if (xf_tensor_numel(t) != n)
        return xf_fail(err, "%s: tensor %s has %lld values, expected %lld", ctx, tname(t),
                       (long long)xf_tensor_numel(t), (long long)n);
    float *a = malloc((size_t)n * sizeof *a);
    if (!a)
        return xf_fail(err, "%s: tensor %s: out of memory", ctx, tname(t));
    if (xf_tensor_to_f32(t, a, err) != 0) {
        free(a);
        return xf_fail_prefix(err, "%s", ctx);
    }
    *dst = a;
    return 0;
}

/* A weight matrix to a new fp32 [out, in] array; `transposed` tensors are
 * stored [in, out] and get transposed here. A packed weight's outliers come
 * with its view (xf_tensor_to_f32 applies them). */
static int load_matrix(const xf_tensor *t, bool transposed, int64_t out, int64_t in, float **dst,
                       const char *ctx, xf_error *err)
{
    const int64_t r = transposed ? in : out, c = transposed ? out : in;
    if (t->ndim != 2 || t->shape[0] != r || t->shape[1] != c) {
        char shape[96] = "";
        size_t len = 0;
        for (int i = 0; i < t->ndim && i < XF_MAX_DIMS && len < sizeof shape - 24; i++)
            len += (size_t)snprintf(shape + len, sizeof shape - len, "%s%lld", i ? ", " : "",
                                    (long long)t->shape[i]);
        return xf_fail(err, "%s: tensor %s has shape [%s], expected [%lld, %lld]", ctx, tname(t),
                       shape, (long long)r, (long long)c);
    }
    const size_t n = (size_t)out * (size_t)in;
    float *a = alloc_weights(n);
    if (!a)
        return xf_fail(err, "%s: tensor %s: out of memory", ctx, tname(t));
    if (!transposed) {
        if (xf_tensor_to_f32(t, a, err) != 0) {
            free(a);
            return xf_fail_prefix(err, "%s", ctx);
        }
        *dst = a;
        return 0;
    }
    float *tmp = malloc(n * sizeof *tmp);
    if (!tmp) {
        free(a);
        return xf_fail(err, "%s: tensor %s: out of memory", ctx, tname(t));
    }
    if (xf_tensor_to_f32(t, tmp, err) != 0) {
        free(tmp);
        free(a);
        return xf_fail_prefix(err, "%s", ctx);
    }
    /* tmp [in, out] -> a [out, in], in cache-friendly tiles */
    const int64_t B = 64;
    for (int64_t i0 = 0; i0 < in; i0 += B)
        for (int64_t o0 = 0; o0 < out; o0 += B)
            for (int64_t i = i0; i < in && i < i0 + B; i++)
                for (int64_t o = o0; o < out && o < o0 + B; o++)
                    a[o * in + i] = tmp[i * out + o];
    free(tmp);
    *dst = a;
    return 0;
}

static int load_norm(const xf_model_config *cfg, const xf_norm *nm, float **w, float **b,
                     const char *ctx, xf_error *err)
{
    if (!nm->w)
        return xf_fail(err, "%s: norm weight missing", ctx);
    if (nm->b && !cfg->layer_norm)
        return xf_fail(err, "%s: tensor %s: RMSNorm has no bias", ctx, tname(nm->b));
    if (load_vector(nm->w, cfg->hidden, w, ctx, err) != 0)
        return -1;
    if (nm->b && load_vector(nm->b, cfg->hidden, b, ctx, err) != 0)
        return -1;
    return 0;
}

int xf_dense_layer_init(xf_dense_layer *dl, const xf_model_weights *mw, int layer, xf_error *err)
{
    memset(dl, 0, sizeof *dl);
    dl->layer = layer;
    const xf_model_config *cfg = &mw->cfg;
    if (layer < 0 || layer >= cfg->n_layers)
        return xf_fail(err, "layer %d: out of range [0, %lld)", layer, (long long)cfg->n_layers);
    const xf_layer_weights *lw = &mw->layers[layer];
    char ctx[64];
    snprintf(ctx, sizeof ctx, "layer %d", layer);

    for (int r = 0; r < XF_LIN_COUNT; r++) {
        const xf_linear *lin = &lw->lin[r];
        int64_t out, in;
        bool present = xf_forward_role_shape(cfg, (xf_linear_role)r, &out, &in);
        if (!present) {
            if (lin->w) {
                xf_fail(err, "%s: tensor %s is unexpected for model_type %s", ctx, tname(lin->w),
                        cfg->model_type);
                goto fail;
            }
            continue;
        }
        if (!lin->w) {
            xf_fail(err, "%s: linear %s missing for model_type %s", ctx, xf_op_role_name(r),
                    cfg->model_type);
            goto fail;
        }
        char rctx[64];
        snprintf(rctx, sizeof rctx, "layer %d %s", layer, xf_op_role_name(r));
        if (load_matrix(lin->w, lin->transposed, out, in, &dl->w[r], rctx, err) != 0)
            goto fail;
        if (lin->b && load_vector(lin->b, out, &dl->b[r], rctx, err) != 0)
            goto fail;
        dl->out[r] = out;
        dl->in[r] = in;
    }
    if (load_norm(cfg, &lw->attn_norm, &dl->attn_norm_w, &dl->attn_norm_b, ctx, err) != 0 ||
        load_norm(cfg, &lw->mlp_norm, &dl->mlp_norm_w, &dl->mlp_norm_b, ctx, err) != 0)
        goto fail;
    return 0;
fail:
    xf_dense_layer_free(dl);
    dl->layer = layer;
    return -1;
}

void xf_dense_layer_free(xf_dense_layer *dl)
{
    for (int r = 0; r < XF_LIN_COUNT; r++) {
        free(dl->w[r]);
        free(dl->b[r]);
    }
    free(dl->attn_norm_w);
    free(dl->attn_norm_b);
    free(dl->mlp_norm_w);
    free(dl->mlp_norm_b);
    memset(dl, 0, sizeof *dl);
}

size_t xf_dense_layer_bytes(const xf_model_weights *mw, int layer)
{
    const xf_model_config *cfg = &mw->cfg;
    if (layer < 0 || layer >= cfg->n_layers)
        return 0;
    const xf_layer_weights *lw = &mw->layers[layer];
    size_t n = 4 * (size_t)cfg->hidden; /* two norms, weights and biases */
    for (int r = 0; r < XF_LIN_COUNT; r++) {
        int64_t out, in;
        if (xf_forward_role_shape(cfg, (xf_linear_role)r, &out, &in) && lw->lin[r].w)
            n += (size_t)out * (size_t)in + (lw->lin[r].b ? (size_t)out : 0);
    }
    return n * sizeof(float);
}

int xf_dense_head_init(xf_dense_head *hd, const xf_model_weights *mw, xf_error *err)
{
    memset(hd, 0, sizeof *hd);
    const xf_model_config *cfg = &mw->cfg;
    hd->vocab = cfg->vocab;
    hd->hidden = cfg->hidden;
    if (mw->final_norm.w) {
        if (load_norm(cfg, &mw->final_norm, &hd->norm_w, &hd->norm_b, "final norm", err) != 0)
            goto fail;
    } else if (cfg->norm_before) {
        xf_fail(err, "final norm: weight missing (model_type %s is pre-norm)", cfg->model_type);
        goto fail;
    }
    /* a tied head reads the embedding (lm_head.w == tok_embed, or unset) */
    const xf_tensor *w = mw->lm_head.w ? mw->lm_head.w : mw->tok_embed;
    if (!w) {
        xf_fail(err, "lm head: neither lm_head nor the token embedding is bound");
        goto fail;
    }
    bool transposed = mw->lm_head.w ? mw->lm_head.transposed : false;
    if (load_matrix(w, transposed, cfg->vocab, cfg->hidden, &hd->w, "lm head", err) != 0)
        goto fail;
    if (mw->lm_head.b && load_vector(mw->lm_head.b, cfg->vocab, &hd->b, "lm head", err) != 0)
        goto fail;
    return 0;
fail:
    xf_dense_head_free(hd);
    return -1;
}

void xf_dense_head_free(xf_dense_head *hd)
{
    free(hd->norm_w);
    free(hd->norm_b);
    free(hd->w);
    free(hd->b);
    memset(hd, 0, sizeof *hd);
}
