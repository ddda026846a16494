/* The fp64 llama reference forward (ref_llama.h). */
#include "tests/support/ref_llama.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void rms(const double *x, double *y, int64_t n, const double *w, double eps)
{
    double ss = 0;
    for (int64_t i = 0; i < n; i++)
        ss += x[i] * x[i];
    double r = 1.0 / sqrt(ss / (double)n + eps);
    for (int64_t i = 0; i < n; i++)
        y[i] = w[i] * x[i] * r;
}

/* y [out] = W [out, in] x */
static void mv(const double *W, const double *x, double *y, int64_t out, int64_t in)
{
    for (int64_t o = 0; o < out; o++) {
        double s = 0;
        for (int64_t i = 0; i < in; i++)
            s += W[o * in + i] * x[i];
        y[o] = s;
    }
}

static void rope(double *x, int64_t t, int64_t heads, int64_t d, double theta)
{
    for (int64_t h = 0; h < heads; h++)
        for (int64_t i = 0; i < d / 2; i++) {
            double ang = (double)t / pow(theta, (double)(2 * i) / (double)d);
            double a = x[h * d + i], b = x[h * d + i + d / 2];
            x[h * d + i] = a * cos(ang) - b * sin(ang);
            x[h * d + i + d / 2] = b * cos(ang) + a * sin(ang);
        }
}

/* Sum over positions 0..T-2 of the next-token cross-entropy. */
/* each of the n heads of x (d values) -> x_h M */
static void heads_times(double *x, int64_t n, int64_t d, const double *M)
{
    double tmp[64];
    for (int64_t h = 0; h < n; h++) {
        for (int64_t j = 0; j < d; j++) {
            double acc = 0;
            for (int64_t i = 0; i < d; i++)
                acc += x[h * d + i] * M[i * d + j];
            tmp[j] = acc;
        }
        memcpy(x + h * d, tmp, (size_t)d * sizeof *tmp);
    }
}

double xf_ref_llama_loss(const xf_ref_llama *r, const int32_t *tok, int64_t T)
{
    const xf_model_config *c = r->c;
    const int64_t H = c->hidden, I = c->intermediate, nh = c->n_heads, nkv = c->n_kv_heads,
                  d = c->head_dim, qd = nh * d, kvd = nkv * d, V = c->vocab;
    double *h = calloc((size_t)(T * H), sizeof *h), *x = malloc((size_t)H * sizeof *x);
    double *q = malloc((size_t)(T * qd) * sizeof *q), *k = malloc((size_t)(T * kvd) * sizeof *k),
           *v = malloc((size_t)(T * kvd) * sizeof *v), *o = malloc((size_t)(T * qd) * sizeof *o);
    double *g = malloc((size_t)I * sizeof *g), *u = malloc((size_t)I * sizeof *u),
           *a = malloc((size_t)I * sizeof *a), *y = malloc((size_t)(H > V ? H : V) * sizeof *y);
    double *s = malloc((size_t)T * sizeof *s);
    for (int64_t t = 0; t < T; t++)
        memcpy(h + t * H, r->embed + tok[t] * H, (size_t)H * sizeof *h);
    for (int l = 0; l < c->n_layers; l++) {
        for (int64_t t = 0; t < T; t++) {
            rms(h + t * H, x, H, r->an[l], c->norm_eps);
            mv(r->w[l][XF_LIN_Q], x, q + t * qd, qd, H);
            mv(r->w[l][XF_LIN_K], x, k + t * kvd, kvd, H);
            mv(r->w[l][XF_LIN_V], x, v + t * kvd, kvd, H);
            rope(q + t * qd, t, nh, d, c->rope_theta);
            rope(k + t * kvd, t, nkv, d, c->rope_theta);
            if (r->had_qk) {
                heads_times(q + t * qd, nh, d, r->had_qk);
                heads_times(k + t * kvd, nkv, d, r->had_qk);
            }
        }
        for (int64_t hh = 0; hh < nh; hh++) {
            const int64_t kh = hh / (nh / nkv);
            for (int64_t i = 0; i < T; i++) {
                double mx = -1e300, z = 0;
                for (int64_t j = 0; j <= i; j++) {
                    double dot = 0;
                    for (int64_t e = 0; e < d; e++)
                        dot += q[i * qd + hh * d + e] * k[j * kvd + kh * d + e];
                    s[j] = dot / sqrt((double)d);
                    mx = s[j] > mx ? s[j] : mx;
                }
                for (int64_t j = 0; j <= i; j++)
                    z += (s[j] = exp(s[j] - mx));
                for (int64_t e = 0; e < d; e++) {
                    double acc = 0;
                    for (int64_t j = 0; j <= i; j++)
                        acc += s[j] / z * v[j * kvd + kh * d + e];
                    o[i * qd + hh * d + e] = acc;
                }
            }
        }
        for (int64_t t = 0; t < T; t++) {
            mv(r->w[l][XF_LIN_O], o + t * qd, y, H, qd);
            for (int64_t i = 0; i < H; i++)
                h[t * H + i] += y[i];
            rms(h + t * H, x, H, r->mn[l], c->norm_eps);
            mv(r->w[l][XF_LIN_GATE], x, g, I, H);
            mv(r->w[l][XF_LIN_UP], x, u, I, H);
            for (int64_t i = 0; i < I; i++)
                a[i] = g[i] / (1.0 + exp(-g[i])) * u[i];
            if (r->had) { /* x -> x H on the down input */
                for (int64_t j = 0; j < I; j++) {
                    double acc = 0;
                    for (int64_t i = 0; i < I; i++)
                        acc += a[i] * r->had[i * I + j];
                    g[j] = acc;
                }
                memcpy(a, g, (size_t)I * sizeof *a);
            }
            mv(r->w[l][XF_LIN_DOWN], a, y, H, I);
            for (int64_t i = 0; i < H; i++)
                h[t * H + i] += y[i];
        }
    }
    double loss = 0;
    for (int64_t t = 0; t + 1 < T; t++) {
        rms(h + t * H, x, H, r->norm, c->norm_eps);
        mv(r->head, x, y, V, H);
        double mx = y[0], z = 0;
        for (int64_t i = 1; i < V; i++)
            mx = y[i] > mx ? y[i] : mx;
        for (int64_t i = 0; i < V; i++)
            z += exp(y[i] - mx);
        loss += mx + log(z) - y[tok[t + 1]];
    }
    free(h), free(x), free(q), free(k), free(v), free(o), free(g), free(u), free(a), free(y);
    free(s);
    return loss;
}

double *xf_ref_to64(const float *x, int64_t n)
{
    double *d = malloc((size_t)(n > 0 ? n : 1) * sizeof *d);
    if (!d) {
        fprintf(stderr, "ref_llama: out of memory for %lld values\n", (long long)n);
        abort();
    }
    for (int64_t i = 0; i < n; i++)
        d[i] = x[i];
    return d;
}

void xf_ref_mm64(const double *A, int64_t lda, bool ta, const double *B, int64_t ldb, bool tb,
                 double *C, int64_t ldc, int64_t m, int64_t n, int64_t k)
{
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double s = 0;
            for (int64_t p = 0; p < k; p++)
                s += (ta ? A[p * lda + i] : A[i * lda + p]) * (tb ? B[j * ldb + p] : B[p * ldb + j]);
            C[i * ldc + j] = s;
        }
}
