/* Residual rotation, head-wise v/o rotation (Hadamard or a per-layer R2)
 * and the fused half of the online down_proj Hadamard (steps 2-4 of
 * quant/transform/rotate.h). */
#include "quant/transform/rotate.h"

#include <cblas.h>

#include "core/gemm_tiled.h"
#include <stdlib.h>
#include <string.h>

#include "sim/hadamard.h"
#include "quant/transform/rotation_learning.h"
#include "model/linear_inputs.h"
#include "quant/transform/rotate_mat.h"

static const char *const kind_names[] = {"none", "hadamard", "learned", "klt"};

const char *xf_rotate_kind_name(xf_rotate_kind k)
{
    return (unsigned)k < sizeof kind_names / sizeof *kind_names ? kind_names[k] : NULL;
}

int xf_rotate_kind_from_name(const char *name, xf_rotate_kind *out)
{
    for (size_t i = 0; i < sizeof kind_names / sizeof *kind_names; i++)
        if (!strcmp(name, kind_names[i])) {
            *out = (xf_rotate_kind)i;
            return 0;
        }
    return -1;
}

int xf_rotate_supported(const xf_model_config *cfg, bool online_down, const char *what,
                        xf_error *err)
{
    if (cfg->layer_norm && !cfg->norm_before)
        return xf_fail(err, "%s: post-LN %s (do_layer_norm_before false) cannot be rotated: its "
                            "LayerNorms sit on the residual stream, with no RMSNorm equivalent",
                       what, cfg->model_type);
    /* a LayerNorm bias folds into the reader biases (OPT enable_bias false has none) */
    if (cfg->layer_norm && (!cfg->qkv_bias || !cfg->mlp_bias))
        return xf_fail(err, "%s: %s without q/k/v and fc1 biases (enable_bias false): the "
                            "LayerNorm biases have nowhere to fold",
                       what, cfg->model_type);
    int64_t p, m;
    if (xf_hadamard_factor(cfg->hidden, &p, &m, err) != 0)
        return xf_fail_prefix(err, "%s: no Hadamard for hidden size %lld", what,
                              (long long)cfg->hidden);
    if (xf_hadamard_factor(cfg->head_dim, &p, &m, err) != 0)
        return xf_fail_prefix(err, "%s: no Hadamard for head_dim %lld", what,
                              (long long)cfg->head_dim);
    if (online_down && xf_hadamard_factor(cfg->intermediate, &p, &m, err) != 0)
        return xf_fail_prefix(err, "%s: no Hadamard for intermediate size %lld", what,
                              (long long)cfg->intermediate);
    return 0;
}

static int reader(xf_model_edit *e, const xf_linear *lin, const double *R, xf_error *err)
{
    xf_rmat w;
    if (!lin->w)
        return 0;
    if (xf_rmat_weight(&w, e, lin, err) != 0 || xf_rmat_right(&w, R, err) != 0) {
        xf_rmat_free(&w);
        return -1;
    }
    xf_rmat_put(&w);
    return 0;
}

static int writer(xf_model_edit *e, const xf_linear *lin, const double *R, xf_error *err)
{
    xf_rmat w;
    if (xf_rmat_weight(&w, e, lin, err) != 0 || xf_rmat_left_t(&w, R, err) != 0) {
        xf_rmat_free(&w);
        return -1;
    }
    xf_rmat_put(&w);
    if (lin->b) {
        if (xf_rmat_tensor(&w, e, lin->b, 1, lin->out, err) != 0 ||
            xf_rmat_right(&w, R, err) != 0) {
            xf_rmat_free(&w);
            return -1;
        }
        xf_rmat_put(&w);
    }
    return 0;
}

/* An embedding table [rows, hidden] writes the stream: E -> E R. */
static int table(xf_model_edit *e, const xf_tensor *t, const double *R, xf_error *err)
{
    xf_rmat emb;
    if (t->ndim != 2)
        return xf_fail(err, "tensor %s: expected a 2-D embedding table", t->name);
    if (xf_rmat_tensor(&emb, e, t, t->shape[0], t->shape[1], err) != 0 ||
        xf_rmat_right(&emb, R, err) != 0) {
        xf_rmat_free(&emb);
        return -1;
    }
    xf_rmat_put(&emb);
    return 0;
}

static int residual(xf_model_edit *e, const double *R, xf_error *err)
{
    const xf_model_weights *mw = &e->m->weights;
    /* learned positions (OPT, GPT-2) are added to the stream like tokens */
    if (table(e, mw->tok_embed, R, err) != 0 ||
        (mw->pos_embed && table(e, mw->pos_embed, R, err) != 0))
        return -1;
    for (int64_t l = 0; l < mw->cfg.n_layers; l++) {
        const xf_layer_weights *L = &mw->layers[l];
        /* the residual stream's readers: those of the qkv and mlp inputs */
        const xf_lin_input res[2] = {XF_IN_QKV, XF_IN_MLP};
        for (int i = 0; i < 2; i++) {
            xf_linear_role r[XF_IN_MAX_READERS];
            const int n = xf_lin_input_readers(&mw->cfg, res[i], r);
            for (int k = 0; k < n; k++)
                if (reader(e, &L->lin[r[k]], R, err) != 0)
                    return -1;
        }
        if (writer(e, &L->lin[XF_LIN_O], R, err) != 0 ||
            writer(e, &L->lin[XF_LIN_DOWN], R, err) != 0)
            return -1;
    }
    return reader(e, &mw->lm_head, R, err);
}

/* The head-wise rotation of one layer: the fast Hadamard transform (the
 * fixed H_d of --rotate hadamard/klt, kept so those stay bit-identical) or
 * a dense orthogonal R2 [d, d] (the learned R2). */
typedef struct head_rot {
    const xf_hadamard *h; /* non-NULL: x -> x H_d */
    const double *R;      /* else x -> x R */
    int64_t d;
} head_rot;

/* rows of a [rows, n*d] fp64 matrix seen as [rows*n, d]: x -> x R */
static int per_head_right(const head_rot *hr, double *a, int64_t rows, int64_t cols,
                          xf_error *err)
{
    const int64_t m = rows * (cols / hr->d), d = hr->d;
    if (hr->h)
        return xf_hadamard_rows_f64(hr->h, a, m, false, err);
    double *t = malloc((size_t)(m * d) * sizeof *t);
    if (!t)
        return xf_fail(err, "out of memory for a %lld x %lld head-wise product", (long long)m,
                       (long long)d);
    xf_dgemm_tiled(CblasNoTrans, CblasNoTrans, (int)m, (int)d, (int)d, 1.0, a,
                (int)d, hr->R, (int)d, 0.0, t, (int)d);
    memcpy(a, t, (size_t)(m * d) * sizeof *a);
    free(t);
    return 0;
}

/* v's output rows [r0, r0 + kvd) of W [out, in] (row-major): every head's
 * slice W_h -> R^T W_h, so its output y_h -> y_h R. Done as the
 * transposed block's rows from the right: transpose, transform, back. */
static int v_rows(const head_rot *hr, double *W, int64_t in, int64_t r0, int64_t kvd,
                  xf_error *err)
{
    double *blk = W + r0 * in, *t = malloc((size_t)(kvd * in) * sizeof *t);
    if (!t)
        return xf_fail(err, "out of memory for a %lld x %lld v block", (long long)kvd,
                       (long long)in);
    for (int64_t r = 0; r < kvd; r++)
        for (int64_t c = 0; c < in; c++)
            t[c * kvd + r] = blk[r * in + c];
    int rc = per_head_right(hr, t, in, kvd, err);
    for (int64_t r = 0; r < kvd && rc == 0; r++)
        for (int64_t c = 0; c < in; c++)
            blk[r * in + c] = t[c * kvd + r];
    free(t);
    return rc;
}

static int headwise_layer(xf_model_edit *e, const head_rot *hr, const xf_layer_weights *L,
                          xf_error *err)
{
    const xf_model_config *cfg = &e->m->weights.cfg;
    const int64_t kvd = cfg->n_kv_heads * cfg->head_dim;
    /* GPT-2's fused c_attn: v is the last third of its outputs (q | k | v) */
    const xf_linear *v = cfg->fused_qkv ? &L->lin[XF_LIN_Q] : &L->lin[XF_LIN_V];
    const xf_linear *o = &L->lin[XF_LIN_O];
    const int64_t r0 = cfg->fused_qkv ? v->out - kvd : 0;
    xf_rmat w;
    if (xf_rmat_weight(&w, e, v, err) != 0 || v_rows(hr, w.a, w.cols, r0, kvd, err) != 0) {
        xf_rmat_free(&w);
        return -1;
    }
    xf_rmat_put(&w);
    if (v->b) {
        if (xf_rmat_tensor(&w, e, v->b, 1, v->out, err) != 0 ||
            per_head_right(hr, w.a + r0, 1, kvd, err) != 0) {
            xf_rmat_free(&w);
            return -1;
        }
        xf_rmat_put(&w);
    }
    /* o: the matching input columns of every q head, W_o -> W_o R per
     * slice (a kv head shared by several q heads under GQA meets the same
     * R in each: one R per layer keeps GQA exact) */
    if (xf_rmat_weight(&w, e, o, err) != 0 || per_head_right(hr, w.a, w.rows, w.cols, err) != 0) {
        xf_rmat_free(&w);
        return -1;
    }
    xf_rmat_put(&w);
    return 0;
}

static int headwise_vo(xf_model_edit *e, xf_error *err)
{
    const xf_model_weights *mw = &e->m->weights;
    xf_hadamard h;
    if (xf_hadamard_init(&h, mw->cfg.head_dim, err) != 0)
        return -1;
    const head_rot hr = {.h = &h, .d = mw->cfg.head_dim};
    int rc = 0;
    for (int64_t l = 0; l < mw->cfg.n_layers && rc == 0; l++)
        rc = headwise_layer(e, &hr, &mw->layers[l], err);
    xf_hadamard_free(&h);
    return rc;
}

int xf_rotate_headwise(xf_model_edit *e, const double *const *R2, xf_error *err)
{
    const xf_model_weights *mw = &e->m->weights;
    const int64_t d = mw->cfg.head_dim;
    /* exactness rests on R2 R2^T = I: refuse anything far from it */
    for (int64_t l = 0; l < mw->cfg.n_layers; l++) {
        double oe = xf_lrot_orth_error(R2[l], d);
        if (oe < 0 || oe > 1e-6)
            return xf_fail(err, "head-wise rotation of layer %lld is not orthogonal "
                                "(|R'R - I| = %.3g)", (long long)l, oe);
    }
    for (int64_t l = 0; l < mw->cfg.n_layers; l++) {
        const head_rot hr = {.R = R2[l], .d = d};
        if (headwise_layer(e, &hr, &mw->layers[l], err) != 0)
            return -1;
    }
    return xf_model_edit_commit(e, err);
}

static int online_down(xf_model_edit *e, xf_online_transforms *online, xf_error *err)
{
    const xf_model_weights *mw = &e->m->weights;
    if (xf_online_enable_down(online, &mw->cfg, err) != 0)
        return -1;
    for (int64_t l = 0; l < mw->cfg.n_layers; l++) {
        xf_rmat w;
        if (xf_rmat_weight(&w, e, &mw->layers[l].lin[XF_LIN_DOWN], err) != 0 ||
            xf_hadamard_rows_f64(&online->down_had, w.a, w.rows, false, err) != 0) {
            xf_rmat_free(&w);
            return -1;
        }
        xf_rmat_put(&w);
    }
    return 0;
}

int xf_rotate_apply(xf_model_edit *e, const double *R1, bool headwise, xf_online_transforms *online,
                    xf_error *err)
{
    if (xf_rotate_supported(&e->m->cfg, online != NULL, e->m->path, err) != 0)
        return -1;
    if (R1 && residual(e, R1, err) != 0)
        return -1;
    if (headwise && headwise_vo(e, err) != 0)
        return -1;
    if (online && online_down(e, online, err) != 0)
        return -1;
    return xf_model_edit_commit(e, err);
}
