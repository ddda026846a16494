/* RepQuant: fitted per-channel qkv/mlp input quantizers, re-parameterised
 * into static per-tensor-scale ones (repquant.h). */
#include "quant/transform/repquant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/block_stream.h"
#include "model/linear_inputs.h"

void xf_repquant_channel_quant(float *x, int64_t n, float lo, float hi, int bits)
{
    const float qmax = (float)((1 << bits) - 1);
    const float s = (hi - lo) / qmax;
    if (!(s > 0.0f)) {
        for (int64_t i = 0; i < n; i++)
            x[i] = 0.0f * x[i]; /* an all-zero channel (bounds 0, 0) */
        return;
    }
    const float z = rintf(-lo / s);
    for (int64_t i = 0; i < n; i++) {
        float q = rintf(x[i] / s) + z;
        q = q < 0.0f ? 0.0f : q > qmax ? qmax : q;
        x[i] = (q - z) * s;
    }
}

/* the candidate bound shrinks (both sides independently) */
static const float shrink[] = {1.0f, 0.95f, 0.9f, 0.85f, 0.8f, 0.7f, 0.6f, 0.5f};
#define N_SHRINK ((int)(sizeof shrink / sizeof *shrink))

/* e[t] = Q(x[t * C + c]) - x[t * C + c] for bounds (lo, hi) */
static void channel_err(const float *X, int64_t N, int64_t C, int64_t c, float lo, float hi,
                        int bits, float *buf, double *e)
{
    for (int64_t t = 0; t < N; t++)
        buf[t] = X[t * C + c];
    xf_repquant_channel_quant(buf, N, lo, hi, bits);
    for (int64_t t = 0; t < N; t++)
        e[t] = (double)buf[t] - X[t * C + c];
}

int xf_repquant_fit(const float *X, int64_t N, int64_t C, const double *G, int bits, float *lo,
                    float *hi, double *loss0, double *loss1, xf_error *err)
{
    float *mn = malloc((size_t)C * sizeof *mn), *mx = malloc((size_t)C * sizeof *mx);
    float *buf = malloc((size_t)N * sizeof *buf);
    double *E = malloc((size_t)(N * C) * sizeof *E), *R = calloc((size_t)(N * C), sizeof *R);
    double *ec = malloc((size_t)N * sizeof *ec), *cand = malloc((size_t)N * sizeof *cand);
    if (!mn || !mx || !buf || !E || !R || !ec || !cand) {
        free(mn), free(mx), free(buf), free(E), free(R), free(ec), free(cand);
        return xf_fail(err, "repquant: out of memory for %lld x %lld calibration values",
                       (long long)N, (long long)C);
    }
    for (int64_t c = 0; c < C; c++) {
        mn[c] = 0.0f;
        mx[c] = 0.0f;
        for (int64_t t = 0; t < N; t++) {
            float v = X[t * C + c];
            mn[c] = v < mn[c] ? v : mn[c];
            mx[c] = v > mx[c] ? v : mx[c];
        }
        lo[c] = mn[c];
        hi[c] = mx[c];
        channel_err(X, N, C, c, lo[c], hi[c], bits, buf, ec);
        for (int64_t t = 0; t < N; t++)
            E[t * C + c] = ec[t];
    }
    /* R = E G and the loss sum_t e_t^T G e_t */
    double loss = 0.0;
    for (int64_t t = 0; t < N; t++) {
        const double *et = E + t * C;
        double *rt = R + t * C;
        for (int64_t a = 0; a < C; a++) {
            if (et[a] == 0.0)
                continue;
            const double *ga = G + a * C;
            for (int64_t b = 0; b < C; b++)
                rt[b] += et[a] * ga[b];
        }
        for (int64_t a = 0; a < C; a++)
            loss += et[a] * rt[a];
    }
    *loss0 = loss;
    for (int sweep = 0; sweep < 2; sweep++)
        for (int64_t c = 0; c < C; c++) {
            const double gcc = G[c * C + c];
            double best = 0.0;
            float blo = lo[c], bhi = hi[c];
            for (int ia = 0; ia < N_SHRINK; ia++)
                for (int ib = 0; ib < N_SHRINK; ib++) {
                    const float l = shrink[ia] * mn[c], h = shrink[ib] * mx[c];
                    if (l == lo[c] && h == hi[c])
                        continue;
                    channel_err(X, N, C, c, l, h, bits, buf, cand);
                    double d = 0.0;
                    for (int64_t t = 0; t < N; t++) {
                        const double e = E[t * C + c], en = cand[t];
                        d += gcc * (en * en - e * e) + 2.0 * (en - e) * (R[t * C + c] - gcc * e);
                    }
                    if (d < best) {
                        best = d;
                        blo = l;
                        bhi = h;
                    }
                }
            if (best < 0.0) {
                channel_err(X, N, C, c, blo, bhi, bits, buf, cand);
                const double *gc = G + c * C;
                for (int64_t t = 0; t < N; t++) {
                    const double de = cand[t] - E[t * C + c];
                    E[t * C + c] = cand[t];
                    if (de != 0.0)
                        for (int64_t b = 0; b < C; b++)
                            R[t * C + b] += de * gc[b];
                }
                lo[c] = blo;
                hi[c] = bhi;
                loss += best;
            }
        }
    *loss1 = loss;
    free(mn), free(mx), free(buf), free(E), free(R), free(ec), free(cand);
    return 0;
}

void xf_repquant_reparam(const float *lo, const float *hi, int64_t C, int bits, float *scale,
                         int32_t *zero, double *r)
{
    const float qmax = (float)((1 << bits) - 1);
    double logsum = 0.0;
    int64_t n = 0;
    for (int64_t c = 0; c < C; c++) {
        const float s = (hi[c] - lo[c]) / qmax;
        if (s > 0.0f) {
            logsum += log((double)s);
            n++;
        }
    }
    const float st = n ? (float)exp(logsum / (double)n) : 1.0f;
    *scale = st;
    for (int64_t c = 0; c < C; c++) {
        const float s = (hi[c] - lo[c]) / qmax;
        if (s > 0.0f) {
            r[c] = (double)s / (double)st;
            zero[c] = (int32_t)rintf(-lo[c] / s);
        } else { /* an all-zero channel: any zero point gives 0 */
            r[c] = 1.0;
            zero[c] = 0;
        }
    }
}

/* ---- capture of the qkv / mlp inputs ---------------------------------------- */

typedef struct capture {
    int64_t C, stride, cap;
    int64_t *seen[XF_STATIC_ACT_SLOTS];  /* [n_layers] tokens seen */
    int64_t *kept[XF_STATIC_ACT_SLOTS];  /* [n_layers] tokens stored */
    float *X[XF_STATIC_ACT_SLOTS];       /* [n_layers, cap, C] */
} capture;

static int capture_hook(void *user, int layer, xf_linear_role role, float *x, int64_t rows,
                        int64_t cols, xf_error *err)
{
    capture *cp = user;
    const int k = xf_static_act_slot(xf_lin_input_of_role(role));
    if (k < 0)
        return 0;
    if (cols != cp->C)
        return xf_fail(err, "repquant: layer %d input of %lld channels, expected %lld", layer,
                       (long long)cols, (long long)cp->C);
    for (int64_t t = 0; t < rows; t++) {
        const int64_t g = cp->seen[k][layer]++;
        if (g % cp->stride != 0 || cp->kept[k][layer] >= cp->cap)
            continue;
        const float *row = x + t * cols;
        for (int64_t j = 0; j < cols; j++)
            if (!isfinite(row[j]))
                return xf_fail(err, "repquant: layer %d: non-finite activation", layer);
        memcpy(cp->X[k] + (layer * cp->cap + cp->kept[k][layer]++) * cols, row,
               (size_t)cols * sizeof *row);
    }
    return 0;
}

static void capture_free(capture *cp)
{
    for (int k = 0; k < XF_STATIC_ACT_SLOTS; k++) {
        free(cp->seen[k]);
        free(cp->kept[k]);
        free(cp->X[k]);
    }
}

static int run_capture(capture *cp, const xf_model_weights *mw, const int32_t *tokens,
                       int64_t nsamples, int64_t T, xf_error *err)
{
    xf_block_stream bs;
    if (xf_block_stream_init(&bs, mw, tokens, nsamples, T, XF_STREAM_KEEP_NONE, NULL, "repquant",
                             err) != 0)
        return -1;
    const xf_forward_hooks hooks = {.user = cp, .on_linear_input = capture_hook};
    int rc = 0;
    for (int l = 0; l < mw->cfg.n_layers && rc == 0; l++) {
        xf_dense_layer dl;
        if (xf_dense_layer_init(&dl, mw, l, err) != 0) {
            rc = -1;
            break;
        }
        rc = xf_block_stream_run(&bs, &dl, XF_AT_END, &hooks, err);
        xf_dense_layer_free(&dl);
    }
    xf_block_stream_free(&bs);
    return rc;
}

/* ---- the transform ------------------------------------------------------------ */

static const xf_lin_input slot_input[XF_STATIC_ACT_SLOTS] = {XF_IN_QKV, XF_IN_MLP};

/* G = sum over readers of W^T W (fp64) for layer l, input of slot k */
static int gram(const xf_model_weights *mw, int64_t l, int k, double *G, xf_error *err)
{
    const int64_t C = mw->cfg.hidden;
    xf_linear_role roles[XF_IN_MAX_READERS];
    const int n = xf_lin_input_readers(&mw->cfg, slot_input[k], roles);
    memset(G, 0, (size_t)(C * C) * sizeof *G);
    for (int i = 0; i < n; i++) {
        const xf_linear *lin = &mw->layers[l].lin[roles[i]];
        float *W = malloc((size_t)(lin->out * lin->in) * sizeof *W);
        if (!W)
            return xf_fail(err, "repquant: out of memory");
        if (xf_tensor_to_f32(lin->w, W, err) != 0) {
            free(W);
            return -1;
        }
        for (int64_t o = 0; o < lin->out; o++) {
            const float *w = W + o * C;
            for (int64_t a = 0; a < C; a++) {
                const double wa = w[a];
                for (int64_t b = 0; b < C; b++)
                    G[a * C + b] += wa * w[b];
            }
        }
        free(W);
    }
    return 0;
}

/* norm / r and the readers' columns * r */
static int fold(xf_loaded_model *m, xf_model_edit *edit, int64_t l, int k, const double *r,
                xf_error *err)
{
    const xf_model_weights *mw = &m->weights;
    const int64_t C = mw->cfg.hidden;
    const xf_norm *nm = k == 0 ? &mw->layers[l].attn_norm : &mw->layers[l].mlp_norm;
    const xf_tensor *nt[2] = {nm->w, nm->b};
    xf_linear_role roles[XF_IN_MAX_READERS];
    const int n = xf_lin_input_readers(&mw->cfg, slot_input[k], roles);
    const xf_tensor *lw[XF_IN_MAX_READERS];
    for (int i = 0; i < n; i++)
        lw[i] = mw->layers[l].lin[roles[i]].w;
    for (int i = 0; i < 2; i++) {
        if (!nt[i])
            continue;
        float *v;
        if (xf_model_edit_f32(edit, nt[i], &v, err) != 0)
            return -1;
        for (int64_t c = 0; c < C; c++)
            v[c] = (float)((double)v[c] / r[c]);
    }
    for (int i = 0; i < n; i++) {
        const int64_t out = mw->layers[l].lin[roles[i]].out;
        float *w;
        if (xf_model_edit_f32(edit, lw[i], &w, err) != 0)
            return -1;
        for (int64_t o = 0; o < out; o++)
            for (int64_t c = 0; c < C; c++)
                w[o * C + c] = (float)((double)w[o * C + c] * r[c]);
    }
    return 0;
}

int xf_repquant_model(xf_loaded_model *m, xf_model_edit *edit, const int32_t *tokens,
                      int64_t nsamples, int64_t T, int bits, xf_static_act *sa, json_t **record,
                      xf_error *err)
{
    const xf_model_weights *mw = &m->weights;
    const xf_model_config *cfg = &mw->cfg;
    const int64_t L = cfg->n_layers, C = cfg->hidden;
    memset(sa, 0, sizeof *sa);
    *record = NULL;
    if (!cfg->norm_before)
        return xf_fail(err, "%s: --repquant needs a pre-norm model (the qkv/mlp inputs come "
                            "from a norm)", m->path);
    for (int64_t l = 0; l < L; l++)
        for (int k = 0; k < XF_STATIC_ACT_SLOTS; k++) {
            xf_linear_role roles[XF_IN_MAX_READERS];
            const int n = xf_lin_input_readers(cfg, slot_input[k], roles);
            for (int i = 0; i < n; i++)
                if (mw->layers[l].lin[roles[i]].transposed)
                    return xf_fail(err, "%s: --repquant: transposed (Conv1D) readers are not "
                                        "supported", m->path);
        }
    if (bits < 2 || bits > 8)
        return xf_fail(err, "--repquant needs --act-bits in 2..8, not %d", bits);
    capture cp = {.C = C, .cap = XF_REPQUANT_MAX_TOKENS};
    const int64_t N = nsamples * T;
    cp.stride = N > cp.cap ? (N + cp.cap - 1) / cp.cap : 1;
    for (int k = 0; k < XF_STATIC_ACT_SLOTS; k++) {
        cp.seen[k] = calloc((size_t)L, sizeof *cp.seen[k]);
        cp.kept[k] = calloc((size_t)L, sizeof *cp.kept[k]);
        cp.X[k] = malloc((size_t)(L * cp.cap * C) * sizeof *cp.X[k]);
        if (!cp.seen[k] || !cp.kept[k] || !cp.X[k]) {
            capture_free(&cp);
            return xf_fail(err, "repquant: out of memory for the captured inputs");
        }
    }
    int rc = run_capture(&cp, mw, tokens, nsamples, T, err);
    if (rc == 0)
        rc = xf_static_act_init(sa, L, C, bits, err);
    double *G = rc == 0 ? malloc((size_t)(C * C) * sizeof *G) : NULL;
    float *lo = malloc((size_t)C * sizeof *lo), *hi = malloc((size_t)C * sizeof *hi);
    double *r = malloc((size_t)C * sizeof *r);
    if (rc == 0 && (!G || !lo || !hi || !r))
        rc = xf_fail(err, "repquant: out of memory");
    json_t *gain = json_object();
    for (int k = 0; k < XF_STATIC_ACT_SLOTS && rc == 0; k++) {
        json_t *arr = json_array();
        json_object_set_new(gain, xf_lin_input_name(slot_input[k]), arr);
        for (int64_t l = 0; l < L && rc == 0; l++) {
            double l0, l1;
            rc = gram(mw, l, k, G, err);
            if (rc == 0)
                rc = xf_repquant_fit(cp.X[k] + l * cp.cap * C, cp.kept[k][l], C, G, bits, lo, hi,
                                     &l0, &l1, err);
            if (rc != 0)
                break;
            xf_repquant_reparam(lo, hi, C, bits, &sa->scale[k][l], sa->zero[k] + l * C, r);
            rc = fold(m, edit, l, k, r, err);
            /* the fitted output error relative to min/max bounds */
            json_array_append_new(arr, json_real(l0 > 0.0 ? l1 / l0 : 1.0));
        }
    }
    free(G), free(lo), free(hi), free(r);
    capture_free(&cp);
    if (rc == 0)
        rc = xf_model_edit_commit(edit, err);
    if (rc != 0) {
        json_decref(gain);
        xf_static_act_free(sa);
        return -1;
    }
    *record = json_pack("{s:i, s:I, s:s, s:o}", "bits", bits, "tokens_per_input",
                        (json_int_t)(N < cp.cap ? N : cp.cap), "fit",
                        "per-channel dual bounds, coordinate descent on the readers' output "
                        "error, 2 sweeps", "loss_ratio", gain);
    return 0;
}
