/* QQQ's searched smoothing strength (smooth_search.h). */
#include "quant/search/smooth_search.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/gemm_tiled.h"
#include "core/log.h"
#include "model/block_stream.h"
#include "quant/transform/input_absmax.h"
#include "quant/transform/smooth.h"
#include "quant/weights/rtn.h"

double xf_smooth_search_alpha(int k)
{
    return 0.05 * (double)(k + 1);
}

/* Y [n, out] = X [n, d] W^T */
static void product(const float *X, int64_t n, int64_t d, const float *W, int64_t out, float *Y)
{
    xf_sgemm_tiled(CblasNoTrans, CblasTrans, n, out, d, 1.0f, X, d, W, d, 0.0f, Y, out);
}

/* The squared error of one reader at factors f: X / f (quantized per
 * token) against the RTN of W diag(f); Y the full-precision output. */
static int reader_error(const float *Xq, int64_t n, int64_t d, const float *W, int64_t out,
                        const double *f, const float *Y, const xf_rtn_params *p, float *Ws,
                        float *Yq, double *e, xf_error *err)
{
    for (int64_t o = 0; o < out; o++)
        for (int64_t j = 0; j < d; j++)
            Ws[o * d + j] = (float)((double)W[o * d + j] * f[j]);
    xf_qweight q;
    if (xf_rtn_quantize(Ws, out, d, p, &q, "smoothing search", err) != 0)
        return -1;
    for (int64_t o = 0; o < out; o++)
        xf_qweight_dequantize_row(&q, o, Ws + o * d);
    xf_qweight_free(&q);
    product(Xq, n, d, Ws, out, Yq);
    double s = 0.0;
    for (int64_t i = 0; i < n * out; i++) {
        const double diff = (double)Yq[i] - (double)Y[i];
        s += diff * diff;
    }
    *e += s;
    return 0;
}

int xf_smooth_search_input(const xf_model_config *cfg, xf_lin_input in, const float *X,
                           int64_t n, const float *const *W, const int64_t *out, int n_readers,
                           const float *s, const xf_act_scheme *act, const xf_grid_config *grid,
                           int64_t group, double *err_out, int *best, xf_error *err)
{
    const int64_t d = xf_lin_input_width(cfg, in);
    int64_t max_out = 0;
    for (int r = 0; r < n_readers; r++)
        max_out = out[r] > max_out ? out[r] : max_out;
    double *w = calloc((size_t)d, sizeof *w), *f = malloc((size_t)d * sizeof *f);
    float *Xq = malloc((size_t)(n * d) * sizeof *Xq);
    float *Ws = malloc((size_t)(max_out * d) * sizeof *Ws);
    float *Yq = malloc((size_t)(n * max_out) * sizeof *Yq);
    float **Y = calloc((size_t)n_readers, sizeof *Y);
    int rc = w && f && Xq && Ws && Yq && Y ? 0 : xf_fail(err, "smoothing search: out of memory");
    for (int r = 0; r < n_readers && rc == 0; r++) {
        Y[r] = malloc((size_t)(n * out[r]) * sizeof **Y);
        if (!Y[r]) {
            rc = xf_fail(err, "smoothing search: out of memory");
            break;
        }
        product(X, n, d, W[r], out[r], Y[r]);
        for (int64_t o = 0; o < out[r]; o++)
            for (int64_t j = 0; j < d; j++)
                w[j] = fmax(w[j], fabs((double)W[r][o * d + j]));
    }
    const bool aq = act && act->act_bits > 0 && (act->act_inputs & (1u << in));
    const xf_rtn_params p = {.grid = *grid, .group = group};
    *best = 0;
    for (int k = 0; k < XF_SMOOTH_SEARCH_GRID && rc == 0; k++) {
        xf_smooth_column_factors(cfg, in, s, w, xf_smooth_search_alpha(k), f);
        for (int64_t t = 0; t < n && rc == 0; t++) {
            float *row = Xq + t * d;
            for (int64_t j = 0; j < d; j++)
                row[j] = (float)((double)X[t * d + j] / f[j]);
            if (aq && xf_act_quant_row(row, d, act->act_group, act->act_bits, act->act_sym,
                                       (float)xf_act_scheme_clip(act, in)) != 0)
                rc = xf_fail(err, "smoothing search: %s input row %lld is not finite",
                             xf_lin_input_name(in), (long long)t);
        }
        double e = 0.0;
        for (int r = 0; r < n_readers && rc == 0; r++)
            rc = reader_error(Xq, n, d, W[r], out[r], f, Y[r], &p, Ws, Yq, &e, err);
        err_out[k] = e;
        if (rc == 0 && e < err_out[*best])
            *best = k;
    }
    for (int r = 0; Y && r < n_readers; r++)
        free(Y[r]);
    free(Y);
    free(w);
    free(f);
    free(Xq);
    free(Ws);
    free(Yq);
    return rc;
}

/* ---- capture of one block's inputs ------------------------------------------ */

typedef struct capture {
    int layer;
    float *x[XF_IN_COUNT];    /* [n, width] each */
    int64_t rows[XF_IN_COUNT]; /* rows filled */
    int64_t cap[XF_IN_COUNT];
} capture;

static int on_input(void *user, int layer, xf_linear_role role, float *x, int64_t rows,
                    int64_t cols, xf_error *err)
{
    capture *c = user;
    if (layer != c->layer)
        return 0;
    const xf_lin_input in = xf_lin_input_of_role(role);
    if (in >= XF_IN_COUNT || c->rows[in] + rows > c->cap[in])
        return xf_fail(err, "smoothing search: unexpected input of layer %d", layer);
    memcpy(c->x[in] + c->rows[in] * cols, x, (size_t)(rows * cols) * sizeof *x);
    c->rows[in] += rows;
    return 0;
}

/* alphas[l * XF_IN_COUNT + in] for the inputs in `use` (others 0.5, unused) */
static int search_layers(const xf_model_weights *mw, const xf_act_absmax *st,
                         const int32_t *tokens, int64_t K, int64_t T, const xf_act_scheme *act,
                         const xf_grid_config *grid, int64_t group, unsigned use, double *alphas,
                         xf_error *err)
{
    const xf_model_config *cfg = &mw->cfg;
    for (int64_t i = 0; i < cfg->n_layers * XF_IN_COUNT; i++)
        alphas[i] = 0.5;
    capture c = {0};
    for (int in = 0; in < XF_IN_COUNT; in++) {
        c.cap[in] = K * T;
        c.x[in] = malloc((size_t)(K * T * xf_lin_input_width(cfg, (xf_lin_input)in)) *
                         sizeof(float));
        if (!c.x[in]) {
            for (int k = 0; k < in; k++)
                free(c.x[k]);
            return xf_fail(err, "smoothing search: out of memory for the captured inputs");
        }
    }
    xf_block_stream bs;
    int rc = xf_block_stream_init(&bs, mw, tokens, K, T, XF_STREAM_KEEP_NONE, NULL,
                                  cfg->model_type, err);
    const bool stream = rc == 0;
    const xf_forward_hooks hooks = {.user = &c, .on_linear_input = on_input};
    for (int l = 0; l < cfg->n_layers && rc == 0; l++) {
        xf_dense_layer dl;
        if (xf_dense_layer_init(&dl, mw, l, err) != 0) {
            rc = -1;
            break;
        }
        c.layer = l;
        memset(c.rows, 0, sizeof c.rows);
        rc = xf_block_stream_run(&bs, &dl, XF_AT_END, &hooks, err);
        for (int in = 0; in < XF_IN_COUNT && rc == 0; in++) {
            if (!(use & (1u << in)))
                continue;
            xf_linear_role roles[XF_IN_MAX_READERS];
            const int nr = xf_lin_input_readers(cfg, (xf_lin_input)in, roles);
            const float *W[XF_IN_MAX_READERS];
            int64_t out[XF_IN_MAX_READERS];
            for (int r = 0; r < nr; r++) {
                W[r] = dl.w[roles[r]];
                out[r] = dl.out[roles[r]];
            }
            double e[XF_SMOOTH_SEARCH_GRID];
            int best;
            rc = xf_smooth_search_input(cfg, (xf_lin_input)in, c.x[in], c.rows[in], W, out, nr,
                                        xf_act_absmax_row(st, l, (xf_lin_input)in), act, grid,
                                        group, e, &best, err);
            if (rc == 0) {
                alphas[l * XF_IN_COUNT + in] = xf_smooth_search_alpha(best);
                xf_log_info("smoothing search: layer %d %s input: alpha %.2f (error %.4g; "
                            "alpha 0.5: %.4g)",
                            l, xf_lin_input_name((xf_lin_input)in), xf_smooth_search_alpha(best),
                            e[best], e[9]);
            }
        }
        xf_dense_layer_free(&dl);
    }
    if (stream)
        xf_block_stream_free(&bs);
    for (int in = 0; in < XF_IN_COUNT; in++)
        free(c.x[in]);
    return rc;
}

int xf_smooth_search_model(xf_loaded_model *m, xf_model_edit *edit, const int32_t *tokens,
                           int64_t nsamples, int64_t T, const xf_act_scheme *act,
                           const xf_grid_config *grid, int64_t group, unsigned inputs_mask,
                           json_t **record, xf_error *err)
{
    if (record)
        *record = NULL;
    const xf_model_config *cfg = &m->cfg;
    unsigned use = 0;
    for (int in = 0; in < XF_IN_COUNT; in++)
        if ((inputs_mask & (1u << in)) && !xf_smooth_not_exact(cfg, (xf_lin_input)in))
            use |= 1u << in;
    xf_act_absmax st;
    if (xf_act_absmax_measure(&st, &m->weights, tokens, nsamples, T, err) != 0)
        return xf_fail_prefix(err, "%s: smoothing", m->path);
    const int64_t K = nsamples < XF_SMOOTH_SEARCH_WINDOWS ? nsamples : XF_SMOOTH_SEARCH_WINDOWS;
    double *alphas = malloc((size_t)(cfg->n_layers * XF_IN_COUNT) * sizeof *alphas);
    int rc = alphas ? search_layers(&m->weights, &st, tokens, K, T, act, grid, group, use, alphas,
                                    err)
                    : xf_fail(err, "out of memory");
    json_t *rec = NULL;
    if (rc == 0)
        rc = xf_smooth_apply_alphas(m, edit, &st, 0.5, alphas, inputs_mask, &rec, err);
    else
        xf_fail_prefix(err, "%s", m->path);
    if (rc == 0 && rec) {
        json_t *per = json_object(), *g = json_array();
        for (int in = 0; in < XF_IN_COUNT; in++) {
            if (!(use & (1u << in)))
                continue;
            json_t *a = json_array();
            for (int64_t l = 0; l < cfg->n_layers; l++)
                json_array_append_new(a, json_real(alphas[l * XF_IN_COUNT + in]));
            json_object_set_new(per, xf_lin_input_name((xf_lin_input)in), a);
        }
        for (int k = 0; k < XF_SMOOTH_SEARCH_GRID; k++)
            json_array_append_new(g, json_real(xf_smooth_search_alpha(k)));
        json_object_set_new(rec, "alpha", json_string("search"));
        json_object_set_new(rec, "alphas", per);
        json_object_set_new(rec, "search",
                            json_pack("{s:o, s:I, s:i, s:I, s:i}", "grid", g, "windows",
                                      (json_int_t)K, "weight_bits", grid->bits, "weight_group",
                                      (json_int_t)group, "act_bits", act ? act->act_bits : 0));
    }
    if (rc == 0 && record)
        *record = rec;
    else
        json_decref(rec);
    free(alphas);
    xf_act_absmax_free(&st);
    return rc;
}
