/* Smoothing: factors from the measured maxima, then one rewrite of every
 * affected tensor of a layer (see quant/transform/smooth.h for the algebra). Layers
 * are independent: an input's producer and readers live in one layer. */
#include "quant/transform/smooth.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

double xf_smooth_factor(double s, double w, double alpha, bool *guarded, bool *clamped)
{
    if (guarded)
        *guarded = false;
    if (clamped)
        *clamped = false;
    if (!(s > 0.0) || !(w > 0.0) || !isfinite(s) || !isfinite(w)) {
        if (guarded)
            *guarded = true;
        return 1.0;
    }
    double f = pow(s, alpha) / pow(w, 1.0 - alpha);
    if (!(f >= XF_SMOOTH_FACTOR_MIN) || !(f <= XF_SMOOTH_FACTOR_MAX)) {
        if (clamped)
            *clamped = true;
        f = f > XF_SMOOTH_FACTOR_MAX ? XF_SMOOTH_FACTOR_MAX : XF_SMOOTH_FACTOR_MIN;
    }
    return f;
}

const char *xf_smooth_not_exact(const xf_model_config *c, xf_lin_input in)
{
    switch (in) {
    case XF_IN_QKV:
    case XF_IN_MLP:
        return c->norm_before ? NULL
                              : "post-LN: the input is the residual stream, not a norm output";
    case XF_IN_O: return NULL;
    case XF_IN_DOWN:
        if (c->family == XF_FAMILY_LLAMA || c->act == XF_ACT_RELU)
            return NULL;
        return "the MLP activation is not ReLU or gated, so it does not commute with scaling";
    case XF_IN_COUNT: break;
    }
    return "unknown input";
}

/* ---- one layer's editable tensors ---------------------------------------- */

typedef struct lin_buf {
    float *w, *b;      /* editable fp32 (stored layout), b NULL if no bias or untouched */
    bool tr;           /* stored [in, out] */
    int64_t out, in;
    const double *col_f; /* [in] multiply columns, or NULL */
    double *row_f;       /* [out] divide rows (and bias), or NULL */
} lin_buf;

typedef struct factor_stats {
    int64_t n, guarded, clamped, layers_skipped;
    double min, max;
} factor_stats;

typedef struct smooth_ctx {
    xf_loaded_model *m;
    xf_model_edit *edit;
    const xf_act_absmax *stats;
    double alpha;
    const double *alphas; /* [n_layers * XF_IN_COUNT] per layer and input, or NULL: alpha */
    unsigned apply; /* inputs applied (mask minus the inexact ones) */
    factor_stats fs[XF_IN_COUNT];
} smooth_ctx;

static float *at(const lin_buf *L, int64_t o, int64_t i)
{
    return L->tr ? &L->w[i * L->out + o] : &L->w[o * L->in + i];
}

/* The linears reading input `in` (model/linear_inputs.h). */
static int readers(const xf_model_config *c, xf_lin_input in, xf_linear_role r[3])
{
    return xf_lin_input_readers(c, in, r);
}

/* How many bindings of mw refer to tensor t: a norm folded into must be
 * referred to once, or the factors would reach another consumer too. */
static int refs(const xf_model_weights *mw, const xf_tensor *t)
{
    int n = (mw->tok_embed == t) + (mw->pos_embed == t) + (mw->final_norm.w == t) +
            (mw->final_norm.b == t) + (mw->lm_head.w == t && mw->lm_head.w != mw->tok_embed) +
            (mw->lm_head.b == t);
    for (int64_t l = 0; l < mw->cfg.n_layers; l++) {
        const xf_layer_weights *lw = &mw->layers[l];
        n += (lw->attn_norm.w == t) + (lw->attn_norm.b == t) + (lw->mlp_norm.w == t) +
             (lw->mlp_norm.b == t);
        for (int r = 0; r < XF_LIN_COUNT; r++)
            n += (lw->lin[r].w == t) + (lw->lin[r].b == t);
    }
    return n;
}

static int edit_linear(smooth_ctx *sc, int64_t l, xf_linear_role r, lin_buf *L, xf_error *err)
{
    const xf_linear *lin = &sc->m->weights.layers[l].lin[r];
    if (L->w)
        return 0;
    if (!lin->w)
        return xf_fail(err, "layer %lld: no %s linear to smooth", (long long)l,
                       xf_linear_role_name(r));
    L->tr = lin->transposed;
    L->out = lin->out;
    L->in = lin->in;
    return xf_model_edit_f32(sc->edit, lin->w, &L->w, err);
}

/* max over the rows of the readers of |W[:, j]|, into w [in] (zeroed) */
static void col_absmax(const lin_buf *L, double *w)
{
    for (int64_t o = 0; o < L->out; o++)
        for (int64_t i = 0; i < L->in; i++) {
            double v = fabs((double)*at(L, o, i));
            if (v > w[i])
                w[i] = v;
        }
}

static void note_factor(factor_stats *fs, double f, bool guarded, bool clamped)
{
    if (guarded) {
        fs->guarded++;
        return;
    }
    fs->clamped += clamped;
    if (fs->n == 0 || f < fs->min)
        fs->min = f;
    if (fs->n == 0 || f > fs->max)
        fs->max = f;
    fs->n++;
}

/* Factors of input `in` of layer l: [width] (qkv, mlp, down) or, for o,
 * [n_kv_heads * head_dim], one per v channel (the q heads sharing a kv head
 * share its factor). L holds the layer's linears (readers made editable). */
static int input_factors(smooth_ctx *sc, int64_t l, xf_lin_input in, lin_buf *L, double *f,
                         xf_error *err)
{
    const xf_model_config *c = &sc->m->cfg;
    xf_linear_role rr[3];
    int nr = readers(c, in, rr);
    int64_t width = sc->stats->width[in];
    double *w = calloc((size_t)width, sizeof *w);
    if (!w)
        return xf_fail(err, "layer %lld %s input: out of memory", (long long)l,
                       xf_lin_input_name(in));
    for (int k = 0; k < nr; k++) {
        if (edit_linear(sc, l, rr[k], &L[rr[k]], err) != 0) {
            free(w);
            return -1;
        }
        col_absmax(&L[rr[k]], w);
    }
    const float *s = xf_act_absmax_row(sc->stats, l, in);
    factor_stats *fs = &sc->fs[in];
    const double alpha = sc->alphas ? sc->alphas[l * XF_IN_COUNT + in] : sc->alpha;
    bool g, cl;
    if (in == XF_IN_O) {
        int64_t hd = c->head_dim, group = c->n_heads / c->n_kv_heads;
        for (int64_t kv = 0; kv < c->n_kv_heads; kv++)
            for (int64_t d = 0; d < hd; d++) {
                double sm = 0.0, wm = 0.0;
                for (int64_t h = kv * group; h < (kv + 1) * group; h++) {
                    sm = fmax(sm, (double)s[h * hd + d]);
                    wm = fmax(wm, w[h * hd + d]);
                }
                f[kv * hd + d] = xf_smooth_factor(sm, wm, alpha, &g, &cl);
                note_factor(fs, f[kv * hd + d], g, cl);
            }
    } else {
        for (int64_t j = 0; j < width; j++) {
            f[j] = xf_smooth_factor((double)s[j], w[j], alpha, &g, &cl);
            note_factor(fs, f[j], g, cl);
        }
    }
    free(w);
    return 0;
}

/* norm weight (and LayerNorm bias) / f */
static int fold_norm(smooth_ctx *sc, const xf_norm *nm, const double *f, xf_error *err)
{
    const xf_tensor *t[2] = {nm->w, nm->b};
    for (int k = 0; k < 2; k++) {
        if (!t[k])
            continue;
        float *v;
        if (xf_model_edit_f32(sc->edit, t[k], &v, err) != 0)
            return -1;
        for (int64_t j = 0; j < sc->m->cfg.hidden; j++)
            v[j] = (float)((double)v[j] / f[j]);
    }
    return 0;
}

/* W[o, i] * col_f[i] / row_f[o] in fp64, one rounding to fp32 */
static void rewrite(lin_buf *L)
{
    if (!L->w || (!L->col_f && !L->row_f))
        return;
    for (int64_t o = 0; o < L->out; o++) {
        double ro = L->row_f ? L->row_f[o] : 1.0;
        for (int64_t i = 0; i < L->in; i++) {
            float *p = at(L, o, i);
            *p = (float)((double)*p * (L->col_f ? L->col_f[i] : 1.0) / ro);
        }
        if (L->b && L->row_f)
            L->b[o] = (float)((double)L->b[o] / ro);
    }
}

/* The producer whose rows (and bias) are divided for input `in` (o: v, or
 * the v third of GPT-2's c_attn; down: up / fc1): its role and the first
 * row of the produced slice. */
static xf_linear_role producer(const xf_model_config *c, xf_lin_input in, int64_t *row0)
{
    *row0 = 0;
    if (in == XF_IN_DOWN)
        return XF_LIN_UP;
    if (!c->fused_qkv)
        return XF_LIN_V;
    *row0 = c->n_heads * c->head_dim + c->n_kv_heads * c->head_dim;
    return XF_LIN_Q;
}

/* Inputs of layer l that are applied: the mask, minus a qkv/mlp input
 * whose norm is absent or shared (warned). */
static unsigned layer_inputs(smooth_ctx *sc, int64_t l)
{
    unsigned use = sc->apply;
    const xf_layer_weights *lw = &sc->m->weights.layers[l];
    const xf_lin_input ins[2] = {XF_IN_QKV, XF_IN_MLP};
    const xf_norm *norms[2] = {&lw->attn_norm, &lw->mlp_norm};
    for (int k = 0; k < 2; k++) {
        if (!(use & (1u << ins[k])))
            continue;
        const xf_norm *nm = norms[k];
        if (nm->w && refs(&sc->m->weights, nm->w) == 1 &&
            (!nm->b || refs(&sc->m->weights, nm->b) == 1))
            continue;
        xf_log_warn("smoothing: layer %lld %s input skipped: norm %s is %s", (long long)l,
                    xf_lin_input_name(ins[k]), nm->w ? nm->w->name : "(none)",
                    nm->w ? "shared with another weight" : "absent");
        use &= ~(1u << ins[k]);
        sc->fs[ins[k]].layers_skipped++;
    }
    return use;
}

static int smooth_layer(smooth_ctx *sc, int64_t l, double *const f[XF_IN_COUNT],
                        double *row_f[XF_LIN_COUNT], double *col_o, xf_error *err)
{
    const xf_model_config *c = &sc->m->cfg;
    const xf_layer_weights *lw = &sc->m->weights.layers[l];
    lin_buf L[XF_LIN_COUNT];
    memset(L, 0, sizeof L);
    unsigned use = layer_inputs(sc, l);
    /* all factors first, from the unedited weights of this layer */
    for (int in = 0; in < XF_IN_COUNT; in++)
        if ((use & (1u << in)) && input_factors(sc, l, (xf_lin_input)in, L, f[in], err) != 0)
            return -1;
    for (int in = 0; in < XF_IN_COUNT; in++) {
        if (!(use & (1u << in)))
            continue;
        xf_linear_role rr[3];
        int nr = readers(c, (xf_lin_input)in, rr);
        const double *cf = f[in];
        if (in == XF_IN_O) {
            /* o column (head h, d) takes the factor of v channel (h / group, d) */
            int64_t hd = c->head_dim, group = c->n_heads / c->n_kv_heads;
            for (int64_t h = 0; h < c->n_heads; h++)
                for (int64_t d = 0; d < hd; d++)
                    col_o[h * hd + d] = f[in][(h / group) * hd + d];
            cf = col_o;
        }
        for (int k = 0; k < nr; k++)
            L[rr[k]].col_f = cf;
        if (in == XF_IN_QKV || in == XF_IN_MLP) {
            if (fold_norm(sc, in == XF_IN_QKV ? &lw->attn_norm : &lw->mlp_norm, f[in], err))
                return -1;
            continue;
        }
        int64_t row0;
        xf_linear_role p = producer(c, (xf_lin_input)in, &row0);
        if (edit_linear(sc, l, p, &L[p], err) != 0)
            return -1;
        if (lw->lin[p].b && !L[p].b && xf_model_edit_f32(sc->edit, lw->lin[p].b, &L[p].b, err))
            return -1;
        if (!L[p].row_f) {
            L[p].row_f = row_f[p];
            for (int64_t o = 0; o < L[p].out; o++)
                L[p].row_f[o] = 1.0;
        }
        int64_t n = in == XF_IN_O ? c->n_kv_heads * c->head_dim : c->intermediate;
        for (int64_t j = 0; j < n; j++)
            L[p].row_f[row0 + j] = f[in][j];
    }
    for (int r = 0; r < XF_LIN_COUNT; r++)
        rewrite(&L[r]);
    return 0;
}

/* ---- the record ----------------------------------------------------------- */

static json_t *num_or_null(const factor_stats *fs, double v)
{
    return fs->n ? json_real(v) : json_null();
}

static json_t *record_json(const smooth_ctx *sc, unsigned mask)
{
    json_t *inputs = json_array(), *skipped = json_object(), *per = json_object();
    factor_stats all = {0};
    for (int in = 0; in < XF_IN_COUNT; in++) {
        const char *name = xf_lin_input_name((xf_lin_input)in);
        const factor_stats *fs = &sc->fs[in];
        if ((mask & (1u << in)) && !(sc->apply & (1u << in)))
            json_object_set_new(skipped, name,
                                json_string(xf_smooth_not_exact(&sc->m->cfg, (xf_lin_input)in)));
        if (!(sc->apply & (1u << in)))
            continue;
        json_array_append_new(inputs, json_string(name));
        json_object_set_new(per, name,
                            json_pack("{s:I, s:I, s:I, s:I, s:o, s:o}", "channels",
                                      (json_int_t)fs->n, "guarded", (json_int_t)fs->guarded,
                                      "clamped", (json_int_t)fs->clamped, "layers_skipped",
                                      (json_int_t)fs->layers_skipped, "min_factor",
                                      num_or_null(fs, fs->min), "max_factor",
                                      num_or_null(fs, fs->max)));
        if (fs->n && (all.n == 0 || fs->min < all.min))
            all.min = fs->min;
        if (fs->n && (all.n == 0 || fs->max > all.max))
            all.max = fs->max;
        all.n += fs->n;
        all.guarded += fs->guarded;
        all.clamped += fs->clamped;
    }
    return json_pack("{s:f, s:o, s:o, s:I, s:I, s:I, s:o, s:o, s:[f, f], s:I, s:I, s:o}",
                     "alpha", sc->alpha, "inputs", inputs, "skipped", skipped,
                     "channels_smoothed", (json_int_t)all.n, "channels_guarded",
                     (json_int_t)all.guarded, "channels_clamped", (json_int_t)all.clamped,
                     "min_factor", num_or_null(&all, all.min), "max_factor",
                     num_or_null(&all, all.max), "factor_clamp", XF_SMOOTH_FACTOR_MIN,
                     XF_SMOOTH_FACTOR_MAX, "windows", (json_int_t)sc->stats->windows, "seqlen",
                     (json_int_t)sc->stats->T, "per_input", per);
}

/* ---- model level ----------------------------------------------------------- */

static int check_args(const xf_loaded_model *m, const xf_model_edit *edit,
                      const xf_act_absmax *st, double alpha, unsigned mask, xf_error *err)
{
    const xf_model_config *c = &m->cfg;
    if (!(alpha >= 0.0 && alpha <= 1.0))
        return xf_fail(err, "smoothing: alpha %g is not in [0, 1]", alpha);
    if (mask & ~XF_IN_ALL)
        return xf_fail(err, "smoothing: unknown inputs in mask 0x%x", mask);
    if (edit->m != m || m->tensors != &edit->set)
        return xf_fail(err, "%s: smoothing needs an xf_model_edit initialized on this model",
                       m->path);
    if (c->n_kv_heads < 1 || c->n_heads % c->n_kv_heads != 0)
        return xf_fail(err, "%s: %lld heads are not a multiple of %lld kv heads", m->path,
                       (long long)c->n_heads, (long long)c->n_kv_heads);
    bool same = st->n_layers == c->n_layers;
    for (int in = 0; in < XF_IN_COUNT; in++)
        same = same && st->width[in] == xf_lin_input_width(c, (xf_lin_input)in);
    if (!same)
        return xf_fail(err, "%s: activation maxima were measured on another architecture",
                       m->path);
    return 0;
}

void xf_smooth_column_factors(const xf_model_config *c, xf_lin_input in, const float *s,
                              const double *w, double alpha, double *f)
{
    const int64_t width = xf_lin_input_width(c, in);
    if (in != XF_IN_O) {
        for (int64_t j = 0; j < width; j++)
            f[j] = xf_smooth_factor((double)s[j], w[j], alpha, NULL, NULL);
        return;
    }
    const int64_t hd = c->head_dim, group = c->n_heads / c->n_kv_heads;
    for (int64_t kv = 0; kv < c->n_kv_heads; kv++)
        for (int64_t d = 0; d < hd; d++) {
            double sm = 0.0, wm = 0.0;
            for (int64_t h = kv * group; h < (kv + 1) * group; h++) {
                sm = fmax(sm, (double)s[h * hd + d]);
                wm = fmax(wm, w[h * hd + d]);
            }
            const double fv = xf_smooth_factor(sm, wm, alpha, NULL, NULL);
            for (int64_t h = kv * group; h < (kv + 1) * group; h++)
                f[h * hd + d] = fv;
        }
}

int xf_smooth_apply(xf_loaded_model *m, xf_model_edit *edit, const xf_act_absmax *stats,
                    double alpha, unsigned inputs_mask, json_t **record, xf_error *err)
{
    return xf_smooth_apply_alphas(m, edit, stats, alpha, NULL, inputs_mask, record, err);
}

int xf_smooth_apply_alphas(xf_loaded_model *m, xf_model_edit *edit, const xf_act_absmax *stats,
                           double alpha, const double *alphas, unsigned inputs_mask,
                           json_t **record, xf_error *err)
{
    if (record)
        *record = NULL;
    if (check_args(m, edit, stats, alpha, inputs_mask, err) != 0)
        return -1;
    for (int64_t i = 0; alphas && i < m->cfg.n_layers * XF_IN_COUNT; i++)
        if (check_args(m, edit, stats, alphas[i], inputs_mask, err) != 0)
            return -1;
    const xf_model_config *c = &m->cfg;
    smooth_ctx sc = {.m = m, .edit = edit, .stats = stats, .alpha = alpha, .alphas = alphas};
    for (int in = 0; in < XF_IN_COUNT; in++) {
        if (!(inputs_mask & (1u << in)))
            continue;
        const char *why = xf_smooth_not_exact(c, (xf_lin_input)in);
        if (why)
            xf_log_warn("smoothing: %s input skipped for %s: %s",
                        xf_lin_input_name((xf_lin_input)in), c->model_type, why);
        else
            sc.apply |= 1u << in;
    }
    /* scratch: factors per input, row factors per producer, expanded o factors */
    int64_t wide = c->hidden > c->intermediate ? c->hidden : c->intermediate;
    int64_t q_dim = c->n_heads * c->head_dim, fused = q_dim + 2 * c->n_kv_heads * c->head_dim;
    if (q_dim > wide)
        wide = q_dim;
    if (fused > wide)
        wide = fused;
    double *scratch = malloc((size_t)(XF_IN_COUNT + XF_LIN_COUNT + 1) * (size_t)wide *
                             sizeof *scratch);
    if (!scratch)
        return xf_fail(err, "%s: smoothing: out of memory", m->path);
    double *f[XF_IN_COUNT], *row_f[XF_LIN_COUNT];
    for (int k = 0; k < XF_IN_COUNT; k++)
        f[k] = scratch + (size_t)k * (size_t)wide;
    for (int k = 0; k < XF_LIN_COUNT; k++)
        row_f[k] = scratch + (size_t)(XF_IN_COUNT + k) * (size_t)wide;
    double *col_o = scratch + (size_t)(XF_IN_COUNT + XF_LIN_COUNT) * (size_t)wide;
    int rc = 0;
    for (int64_t l = 0; l < c->n_layers && rc == 0; l++)
        rc = smooth_layer(&sc, l, f, row_f, col_o, err);
    free(scratch);
    if (rc == 0)
        rc = xf_model_edit_commit(edit, err);
    if (rc != 0)
        return xf_fail_prefix(err, "%s: smoothing", m->path);
    if (record)
        *record = record_json(&sc, inputs_mask);
    return 0;
}

int xf_smooth_model(xf_loaded_model *m, xf_model_edit *edit, const int32_t *tokens,
                    int64_t nsamples, int64_t T, double alpha, unsigned inputs_mask,
                    json_t **record, xf_error *err)
{
    if (record)
        *record = NULL;
    xf_act_absmax st;
    if (xf_act_absmax_measure(&st, &m->weights, tokens, nsamples, T, err) != 0)
        return xf_fail_prefix(err, "%s: smoothing", m->path);
    int rc = xf_smooth_apply(m, edit, &st, alpha, inputs_mask, record, err);
    xf_act_absmax_free(&st);
    return rc;
}
