/* Written for clarity, not speed: every value is a double, every product a
 * plain loop over one token at a time. */
#include "tests/support/naive_forward.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "formats/tensor.h"

typedef struct nvec {
    double *v; /* NULL when the tensor is absent */
} nvec;

/* A whole tensor as doubles (NULL tensor -> NULL array, not an error). */
static int load(const xf_tensor *t, nvec *out, xf_error *err)
{
    out->v = NULL;
    if (!t)
        return 0;
    int64_t n = xf_tensor_numel(t);
    float *f = malloc((size_t)n * sizeof *f);
    double *d = malloc((size_t)n * sizeof *d);
    if (!f || !d) {
        free(f);
        free(d);
        return xf_fail(err, "naive: out of memory");
    }
    if (xf_tensor_to_f32(t, f, err) != 0) {
        free(f);
        free(d);
        return -1;
    }
    for (int64_t i = 0; i < n; i++)
        d[i] = f[i];
    free(f);
    out->v = d;
    return 0;
}

typedef struct nlinear {
    nvec w, b;
    int64_t out, in;
    bool transposed;
} nlinear;

static int load_linear(const xf_linear *l, nlinear *n, xf_error *err)
{
    memset(n, 0, sizeof *n);
    n->out = l->out;
    n->in = l->in;
    n->transposed = l->transposed;
    if (load(l->w, &n->w, err) != 0)
        return -1;
    return load(l->b, &n->b, err);
}

static void free_linear(nlinear *n)
{
    free(n->w.v);
    free(n->b.v);
}

/* y = W x + b for one token. W[o][i] lives at [o, i], or at [i, o] when the
 * tensor is stored transposed (GPT-2 Conv1D). */
static void apply(const nlinear *L, const double *x, double *y)
{
    for (int64_t o = 0; o < L->out; o++) {
        double s = L->b.v ? L->b.v[o] : 0.0;
        for (int64_t i = 0; i < L->in; i++) {
            double w = L->transposed ? L->w.v[i * L->out + o] : L->w.v[o * L->in + i];
            s += w * x[i];
        }
        y[o] = s;
    }
}

/* RMSNorm or LayerNorm of one token (out may equal x). */
static void norm(const xf_model_config *c, const double *x, double *out, const nvec *w,
                 const nvec *b)
{
    int64_t n = c->hidden;
    if (c->layer_norm) {
        double mean = 0, var = 0;
        for (int64_t i = 0; i < n; i++)
            mean += x[i];
        mean /= (double)n;
        for (int64_t i = 0; i < n; i++)
            var += (x[i] - mean) * (x[i] - mean);
        var /= (double)n;
        double r = 1.0 / sqrt(var + c->norm_eps);
        for (int64_t i = 0; i < n; i++)
            out[i] = (x[i] - mean) * r * w->v[i] + (b->v ? b->v[i] : 0.0);
    } else {
        double ms = 0;
        for (int64_t i = 0; i < n; i++)
            ms += x[i] * x[i];
        ms /= (double)n;
        double r = 1.0 / sqrt(ms + c->norm_eps);
        for (int64_t i = 0; i < n; i++)
            out[i] = x[i] * r * w->v[i];
    }
}

static double act(xf_activation a, double x)
{
    switch (a) {
    case XF_ACT_SILU: return x / (1.0 + exp(-x));
    case XF_ACT_RELU: return x > 0 ? x : 0;
    case XF_ACT_GELU_TANH:
        return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
    case XF_ACT_GELU: return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
    }
    return x;
}

/* HF rotate-half RoPE on one head vector at position p. HF computes
 * inv_freq = 1 / theta^(2i/d) and p * inv_freq in fp32, hence the floats. */
static void rope(double *x, int64_t d, int64_t p, double theta)
{
    int64_t half = d / 2;
    for (int64_t i = 0; i < half; i++) {
        float inv_freq = 1.0f / (float)pow(theta, (double)((float)(2 * i) / (float)d));
        float angle = (float)p * inv_freq;
        double c = cos((double)angle), s = sin((double)angle);
        double a = x[i], b = x[i + half];
        x[i] = a * c - b * s;        /* x * cos + (-second half) * sin */
        x[i + half] = b * c + a * s; /* x * cos + (first half) * sin */
    }
}

static int layer_forward(const xf_model_weights *mw, int l, double *h, int64_t T, xf_error *err)
{
    const xf_model_config *c = &mw->cfg;
    const xf_layer_weights *lw = &mw->layers[l];
    const int64_t H = c->hidden, I = c->intermediate, hd = c->head_dim;
    const int64_t qd = c->n_heads * hd, kvd = c->n_kv_heads * hd;
    nlinear L[XF_LIN_COUNT];
    nvec n1w, n1b, n2w, n2b;
    memset(L, 0, sizeof L);
    n1w.v = n1b.v = n2w.v = n2b.v = NULL;
    double *x = malloc((size_t)(T * H) * sizeof *x);
    double *q = malloc((size_t)(T * qd) * sizeof *q);
    double *k = malloc((size_t)(T * kvd) * sizeof *k);
    double *v = malloc((size_t)(T * kvd) * sizeof *v);
    double *att = malloc((size_t)(T * qd) * sizeof *att);
    double *tmp = malloc((size_t)(qd + 2 * kvd + 2 * I + H + T) * sizeof *tmp);
    int rc = -1;
    if (!x || !q || !k || !v || !att || !tmp) {
        xf_fail(err, "naive: out of memory");
        goto done;
    }
    for (int r = 0; r < XF_LIN_COUNT; r++)
        if (load_linear(&lw->lin[r], &L[r], err) != 0)
            goto done;
    if (load(lw->attn_norm.w, &n1w, err) || load(lw->attn_norm.b, &n1b, err) ||
        load(lw->mlp_norm.w, &n2w, err) || load(lw->mlp_norm.b, &n2b, err))
        goto done;

    /* ---- attention block ---- */
    for (int64_t t = 0; t < T; t++) {
        double *xt = x + t * H;
        if (c->norm_before)
            norm(c, h + t * H, xt, &n1w, &n1b);
        else
            memcpy(xt, h + t * H, (size_t)H * sizeof *xt);
        if (c->fused_qkv) {
            apply(&L[XF_LIN_Q], xt, tmp); /* [q | k | v] */
            memcpy(q + t * qd, tmp, (size_t)qd * sizeof *tmp);
            memcpy(k + t * kvd, tmp + qd, (size_t)kvd * sizeof *tmp);
            memcpy(v + t * kvd, tmp + qd + kvd, (size_t)kvd * sizeof *tmp);
        } else {
            apply(&L[XF_LIN_Q], xt, q + t * qd);
            apply(&L[XF_LIN_K], xt, k + t * kvd);
            apply(&L[XF_LIN_V], xt, v + t * kvd);
        }
        if (c->family == XF_FAMILY_LLAMA) {
            for (int64_t hh = 0; hh < c->n_heads; hh++)
                rope(q + t * qd + hh * hd, hd, t, c->rope_theta);
            for (int64_t hh = 0; hh < c->n_kv_heads; hh++)
                rope(k + t * kvd + hh * hd, hd, t, c->rope_theta);
        }
    }
    double *p = tmp; /* [T] attention probabilities of one query */
    for (int64_t hh = 0; hh < c->n_heads; hh++) {
        int64_t kh = hh / (c->n_heads / c->n_kv_heads);
        for (int64_t i = 0; i < T; i++) {
            double mx = -INFINITY, sum = 0;
            for (int64_t j = 0; j <= i; j++) {
                double s = 0;
                for (int64_t d = 0; d < hd; d++)
                    s += q[i * qd + hh * hd + d] * k[j * kvd + kh * hd + d];
                p[j] = s / sqrt((double)hd);
                if (p[j] > mx)
                    mx = p[j];
            }
            for (int64_t j = 0; j <= i; j++) {
                p[j] = exp(p[j] - mx);
                sum += p[j];
            }
            for (int64_t d = 0; d < hd; d++) {
                double s = 0;
                for (int64_t j = 0; j <= i; j++)
                    s += p[j] / sum * v[j * kvd + kh * hd + d];
                att[i * qd + hh * hd + d] = s;
            }
        }
    }
    for (int64_t t = 0; t < T; t++) {
        double *ht = h + t * H, *o = tmp;
        apply(&L[XF_LIN_O], att + t * qd, o);
        for (int64_t i = 0; i < H; i++)
            ht[i] += o[i];
        if (!c->norm_before)
            norm(c, ht, ht, &n1w, &n1b);
    }

    /* ---- MLP block ---- */
    for (int64_t t = 0; t < T; t++) {
        double *ht = h + t * H, *xt = x + t * H;
        double *a = tmp, *u = tmp + I, *y = tmp + 2 * I;
        if (c->norm_before)
            norm(c, ht, xt, &n2w, &n2b);
        else
            memcpy(xt, ht, (size_t)H * sizeof *xt);
        if (c->family == XF_FAMILY_LLAMA) {
            apply(&L[XF_LIN_GATE], xt, a);
            apply(&L[XF_LIN_UP], xt, u);
            for (int64_t i = 0; i < I; i++)
                a[i] = act(c->act, a[i]) * u[i];
        } else {
            apply(&L[XF_LIN_UP], xt, a);
            for (int64_t i = 0; i < I; i++)
                a[i] = act(c->act, a[i]);
        }
        apply(&L[XF_LIN_DOWN], a, y);
        for (int64_t i = 0; i < H; i++)
            ht[i] += y[i];
        if (!c->norm_before)
            norm(c, ht, ht, &n2w, &n2b);
    }
    rc = 0;
done:
    for (int r = 0; r < XF_LIN_COUNT; r++)
        free_linear(&L[r]);
    free(n1w.v);
    free(n1b.v);
    free(n2w.v);
    free(n2b.v);
    free(x);
    free(q);
    free(k);
    free(v);
    free(att);
    free(tmp);
    return rc;
}

int xf_naive_forward(const xf_model_weights *mw, const int32_t *tokens, int64_t T, float *logits,
                     xf_error *err)
{
    const xf_model_config *c = &mw->cfg;
    const int64_t H = c->hidden;
    double *h = calloc((size_t)(T * H), sizeof *h);
    float *row = malloc((size_t)H * sizeof *row);
    double *x = malloc((size_t)H * sizeof *x);
    double *y = malloc((size_t)c->vocab * sizeof *y);
    nvec fw = {NULL}, fb = {NULL};
    nlinear head;
    memset(&head, 0, sizeof head);
    int rc = -1;
    if (!h || !row || !x || !y) {
        xf_fail(err, "naive: out of memory");
        goto done;
    }
    for (int64_t t = 0; t < T; t++) {
        if (xf_tensor_row_to_f32(mw->tok_embed, tokens[t], row, err) != 0)
            goto done;
        for (int64_t i = 0; i < H; i++)
            h[t * H + i] = row[i];
        if (mw->pos_embed) {
            if (xf_tensor_row_to_f32(mw->pos_embed, t + c->pos_offset, row, err) != 0)
                goto done;
            for (int64_t i = 0; i < H; i++)
                h[t * H + i] += row[i];
        }
    }
    for (int l = 0; l < c->n_layers; l++)
        if (layer_forward(mw, l, h, T, err) != 0)
            goto done;
    if (load(mw->final_norm.w, &fw, err) || load(mw->final_norm.b, &fb, err))
        goto done;
    xf_linear hl = mw->lm_head;
    if (!hl.w) {
        hl.w = mw->tok_embed;
        hl.transposed = false;
    }
    hl.out = c->vocab;
    hl.in = H;
    if (load_linear(&hl, &head, err) != 0)
        goto done;
    for (int64_t t = 0; t < T; t++) {
        if (fw.v)
            norm(c, h + t * H, x, &fw, &fb);
        else
            memcpy(x, h + t * H, (size_t)H * sizeof *x);
        apply(&head, x, y);
        for (int64_t o = 0; o < c->vocab; o++)
            logits[t * c->vocab + o] = (float)y[o];
    }
    rc = 0;
done:
    free_linear(&head);
    free(fw.v);
    free(fb.v);
    free(h);
    free(row);
    free(x);
    free(y);
    return rc;
}
