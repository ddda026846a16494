/* The OstQuant parametrization of quant/transform/ost.h: effective weights
 * for given rotations and log-scales, and the gradients of both from the
 * effective weights' gradients (the rotations' through e2e_weights.c). */
#include "quant/transform/ost.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int xf_ost_params_init(xf_ost_params *p, const xf_model_config *cfg, bool with_r2,
                       xf_error *err)
{
    memset(p, 0, sizeof *p);
    p->H = cfg->hidden;
    p->d = cfg->head_dim;
    p->L = cfg->n_layers;
    p->kvd = cfg->n_kv_heads * cfg->head_dim;
    p->NI = cfg->intermediate;
    p->R1 = calloc((size_t)(p->H * p->H), sizeof *p->R1);
    p->R2 = with_r2 ? calloc((size_t)(p->L * p->d * p->d), sizeof *p->R2) : NULL;
    p->la = calloc((size_t)(p->L * p->H), sizeof *p->la);
    p->lm = calloc((size_t)(p->L * p->H), sizeof *p->lm);
    p->lv = calloc((size_t)(p->L * p->kvd), sizeof *p->lv);
    p->lu = calloc((size_t)(p->L * p->NI), sizeof *p->lu);
    if (!p->R1 || (with_r2 && !p->R2) || !p->la || !p->lm || !p->lv || !p->lu) {
        xf_ost_params_free(p);
        return xf_fail(err, "OstQuant: out of memory for the parameters");
    }
    for (int64_t i = 0; i < p->H; i++)
        p->R1[i * p->H + i] = 1.0;
    for (int64_t i = 0; with_r2 && i < p->L * p->d; i++)
        p->R2[(i / p->d) * p->d * p->d + (i % p->d) * p->d + i % p->d] = 1.0;
    return 0;
}

void xf_ost_params_free(xf_ost_params *p)
{
    free(p->R1);
    free(p->R2);
    free(p->la);
    free(p->lm);
    free(p->lv);
    free(p->lu);
    memset(p, 0, sizeof *p);
}

void xf_ost_params_zero(xf_ost_params *p)
{
    memset(p->R1, 0, (size_t)(p->H * p->H) * sizeof *p->R1);
    if (p->R2)
        memset(p->R2, 0, (size_t)(p->L * p->d * p->d) * sizeof *p->R2);
    memset(p->la, 0, (size_t)(p->L * p->H) * sizeof *p->la);
    memset(p->lm, 0, (size_t)(p->L * p->H) * sizeof *p->lm);
    memset(p->lv, 0, (size_t)(p->L * p->kvd) * sizeof *p->lv);
    memset(p->lu, 0, (size_t)(p->L * p->NI) * sizeof *p->lu);
}

int xf_ost_model_init(xf_ost_model *om, const xf_model_weights *mw, const xf_hadamard *down_had,
                      const char *what, xf_error *err)
{
    memset(om, 0, sizeof *om);
    if (xf_e2e_model_init(&om->m, mw, NULL, what, err) != 0)
        return -1;
    om->had = down_had;
    const xf_model_config *c = &mw->cfg;
    const int64_t L = c->n_layers, H = c->hidden, kvd = c->n_kv_heads * c->head_dim;
    om->pre = calloc((size_t)(L * XF_LIN_COUNT), sizeof *om->pre);
    om->sa = malloc((size_t)(L * H) * sizeof(float));
    om->sm = malloc((size_t)(L * H) * sizeof(float));
    om->sv = malloc((size_t)(L * kvd) * sizeof(float));
    om->su = malloc((size_t)(L * c->intermediate) * sizeof(float));
    bool ok = om->pre && om->sa && om->sm && om->sv && om->su;
    for (int l = 0; ok && l < L; l++)
        for (int r = 0; r < XF_LIN_COUNT; r++) {
            const xf_dense_layer *b = &om->m.base[l];
            if (b->w[r] && !(om->pre[l * XF_LIN_COUNT + r] =
                                 malloc((size_t)(b->out[r] * b->in[r]) * sizeof(float))))
                ok = false;
        }
    if (!ok) {
        xf_ost_model_free(om);
        return xf_fail(err, "%s: out of memory for the OstQuant objective", what);
    }
    return 0;
}

void xf_ost_model_free(xf_ost_model *om)
{
    for (int i = 0; om->pre && i < om->m.n_layers * XF_LIN_COUNT; i++)
        free(om->pre[i]);
    free(om->pre);
    free(om->sa);
    free(om->sm);
    free(om->sv);
    free(om->su);
    xf_e2e_model_free(&om->m);
    memset(om, 0, sizeof *om);
}

static void exp_to(float *dst, const double *l, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        dst[i] = (float)exp(l[i]);
}

/* W [rows, cols]: row r x rs[r] (rs may be NULL), column j / cs[j] (cs NULL: none) */
static void scale_rc(float *W, int64_t rows, int64_t cols, const float *rs, const float *cs)
{
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < cols; j++)
            W[r * cols + j] = W[r * cols + j] * (rs ? rs[r] : 1.0f) / (cs ? cs[j] : 1.0f);
}

/* column c of o (q head c / d) reads v row kv(c) */
static int64_t kv_row(int64_t c, int64_t d, int64_t rep)
{
    return (c / d / rep) * d + c % d;
}

int xf_ost_build(xf_ost_model *om, const xf_ost_params *p, const xf_grid_config *c,
                 int64_t group, xf_error *err)
{
    xf_e2e_model *m = &om->m;
    if (xf_e2e_build(m, p->R1, p->R2, NULL, 0, err) != 0)
        return -1;
    const int64_t H = p->H, L = p->L, kvd = p->kvd, NI = p->NI, d = p->d;
    const int64_t qd = m->cfg.n_heads * d, rep = m->cfg.n_heads / m->cfg.n_kv_heads;
    exp_to(om->sa, p->la, L * H);
    exp_to(om->sm, p->lm, L * H);
    exp_to(om->sv, p->lv, L * kvd);
    exp_to(om->su, p->lu, L * NI);
    float *ov = malloc((size_t)qd * sizeof *ov);
    if (!ov)
        return xf_fail(err, "OstQuant: out of memory");
    for (int l = 0; l < L; l++) {
        xf_dense_layer *e = &m->eff[l];
        const xf_dense_layer *b = &m->base[l];
        const float *sa = om->sa + l * H, *sm = om->sm + l * H, *sv = om->sv + l * kvd,
                    *su = om->su + l * NI;
        for (int64_t j = 0; j < H; j++) {
            e->attn_norm_w[j] = b->attn_norm_w[j] * sa[j];
            e->mlp_norm_w[j] = b->mlp_norm_w[j] * sm[j];
        }
        for (int64_t cc = 0; cc < qd; cc++)
            ov[cc] = sv[kv_row(cc, d, rep)];
        scale_rc(e->w[XF_LIN_Q], e->out[XF_LIN_Q], H, NULL, sa);
        scale_rc(e->w[XF_LIN_K], e->out[XF_LIN_K], H, NULL, sa);
        scale_rc(e->w[XF_LIN_V], kvd, H, sv, sa);
        scale_rc(e->w[XF_LIN_O], H, qd, NULL, ov);
        scale_rc(e->w[XF_LIN_GATE], NI, H, NULL, sm);
        scale_rc(e->w[XF_LIN_UP], NI, H, su, sm);
        scale_rc(e->w[XF_LIN_DOWN], H, NI, NULL, su);
        for (int r = 0; r < XF_LIN_COUNT; r++)
            if (e->w[r])
                memcpy(om->pre[l * XF_LIN_COUNT + r], e->w[r],
                       (size_t)(e->out[r] * e->in[r]) * sizeof(float));
        if (om->had &&
            xf_hadamard_rows_f32(om->had, e->w[XF_LIN_DOWN], H, false, err) != 0) {
            free(ov);
            return xf_fail_prefix(err, "OstQuant: layer %d down", l);
        }
        for (int r = 0; r < XF_LIN_COUNT; r++) {
            if (c && c->bits > 0)
                xf_e2e_fake_quant(e->w[r], e->out[r], e->in[r], c, group);
            for (int64_t i = 0; i < e->out[r] * e->in[r]; i++)
                if (!isfinite(e->w[r][i])) {
                    free(ov);
                    return xf_fail(err, "OstQuant: layer %d %s: non-finite weight after the "
                                        "transform",
                                   l, xf_linear_role_name((xf_linear_role)r));
                }
        }
    }
    free(ov);
    return 0;
}

/* sum_i W_ij G_ij per column j, into acc[j] with sign */
static void col_dots(const float *W, const float *G, int64_t rows, int64_t cols, double sign,
                     double *acc)
{
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < cols; j++)
            acc[j] += sign * (double)W[r * cols + j] * (double)G[r * cols + j];
}

/* sum_j W_ij G_ij per row i */
static void row_dots(const float *W, const float *G, int64_t rows, int64_t cols, double *acc)
{
    for (int64_t r = 0; r < rows; r++) {
        double s = 0.0;
        for (int64_t j = 0; j < cols; j++)
            s += (double)W[r * cols + j] * (double)G[r * cols + j];
        acc[r] += s;
    }
}

void xf_ost_grad(xf_ost_model *om, xf_grads *g, xf_ost_params *gp, xf_error *err)
{
    xf_e2e_model *m = &om->m;
    const int64_t H = gp->H, L = gp->L, kvd = gp->kvd, NI = gp->NI, d = gp->d;
    const int64_t qd = m->cfg.n_heads * d, rep = m->cfg.n_heads / m->cfg.n_kv_heads;
    double *oacc = malloc((size_t)qd * sizeof *oacc);
    float *ov = malloc((size_t)qd * sizeof *ov);
    if (!oacc || !ov) {
        free(oacc);
        free(ov);
        xf_fail(err, "OstQuant: out of memory");
        return;
    }
    for (int l = 0; l < L; l++) {
        xf_layer_grads *lg = &g->layers[l];
        const xf_dense_layer *b = &m->base[l];
        float *const *pre = om->pre + l * XF_LIN_COUNT;
        const float *sa = om->sa + l * H, *sm = om->sm + l * H, *sv = om->sv + l * kvd,
                    *su = om->su + l * NI;
        double *ga = gp->la + l * H, *gm = gp->lm + l * H, *gv = gp->lv + l * kvd,
               *gu = gp->lu + l * NI;
        /* the norms: d(norm_w)/dl = norm_w */
        for (int64_t j = 0; j < H; j++) {
            ga[j] += (double)sa[j] * (double)b->attn_norm_w[j] * (double)lg->attn_norm_w[j];
            gm[j] += (double)sm[j] * (double)b->mlp_norm_w[j] * (double)lg->mlp_norm_w[j];
        }
        /* down: G H^T first (the scale sits before the Hadamard) */
        if (om->had)
            (void)xf_hadamard_rows_f32(om->had, lg->w[XF_LIN_DOWN], H, true, err);
        col_dots(pre[XF_LIN_Q], lg->w[XF_LIN_Q], lg->out[XF_LIN_Q], H, -1.0, ga);
        col_dots(pre[XF_LIN_K], lg->w[XF_LIN_K], lg->out[XF_LIN_K], H, -1.0, ga);
        col_dots(pre[XF_LIN_V], lg->w[XF_LIN_V], kvd, H, -1.0, ga);
        row_dots(pre[XF_LIN_V], lg->w[XF_LIN_V], kvd, H, gv);
        memset(oacc, 0, (size_t)qd * sizeof *oacc);
        col_dots(pre[XF_LIN_O], lg->w[XF_LIN_O], H, qd, -1.0, oacc);
        for (int64_t cc = 0; cc < qd; cc++) {
            gv[kv_row(cc, d, rep)] += oacc[cc];
            ov[cc] = sv[kv_row(cc, d, rep)];
        }
        col_dots(pre[XF_LIN_GATE], lg->w[XF_LIN_GATE], NI, H, -1.0, gm);
        col_dots(pre[XF_LIN_UP], lg->w[XF_LIN_UP], NI, H, -1.0, gm);
        row_dots(pre[XF_LIN_UP], lg->w[XF_LIN_UP], NI, H, gu);
        col_dots(pre[XF_LIN_DOWN], lg->w[XF_LIN_DOWN], H, NI, -1.0, gu);
        /* pull back to the rotated, unscaled weights: W' = S W_r D^-1 gives
         * dL/dW_r = S G D^-1 */
        scale_rc(lg->w[XF_LIN_Q], lg->out[XF_LIN_Q], H, NULL, sa);
        scale_rc(lg->w[XF_LIN_K], lg->out[XF_LIN_K], H, NULL, sa);
        scale_rc(lg->w[XF_LIN_V], kvd, H, sv, sa);
        scale_rc(lg->w[XF_LIN_O], H, qd, NULL, ov);
        scale_rc(lg->w[XF_LIN_GATE], NI, H, NULL, sm);
        scale_rc(lg->w[XF_LIN_UP], NI, H, su, sm);
        scale_rc(lg->w[XF_LIN_DOWN], H, NI, NULL, su);
    }
    free(oacc);
    free(ov);
    xf_e2e_grad_weights(m, g, gp->R1, gp->R2);
}
