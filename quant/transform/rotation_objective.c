/* Learned rotations: the problem (terms), the fake-quantized objective and
 * its straight-through gradient. The optimiser is cayley_sgd.c.
 *
 * Threads: only the BLAS calls are threaded. The element-wise passes
 * (quantizers, their backward, the squared sums) run on the calling thread:
 * they cost O(rows * width) against the O(rows * width * n) of the SGEMMs
 * around them, and OpenMP regions alternating with the threaded BLAS make
 * both thread pools spin against each other (hadamard_rows.inc measured
 * 5-10x; here 30x at n 64 on 2 loaded cores). */
#include "quant/transform/rotation_learning.h"

#include <cblas.h>

#include "core/gemm_tiled.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


const char *xf_lrot_norm_name(xf_lrot_norm n)
{
    return n == XF_LROT_NORM_RELATIVE ? "relative" : n == XF_LROT_NORM_MEAN ? "mean" : NULL;
}

int xf_lrot_norm_from_name(const char *name, xf_lrot_norm *out)
{
    if (name && strcmp(name, "relative") == 0)
        *out = XF_LROT_NORM_RELATIVE;
    else if (name && strcmp(name, "mean") == 0)
        *out = XF_LROT_NORM_MEAN;
    else
        return -1;
    return 0;
}

void xf_lrot_quant_default(xf_lrot_quant *q)
{
    memset(q, 0, sizeof *q);
    q->act_sym = true;
    q->act_clip = 1.0f;
    q->w_sym = true;
    q->w_clip = XF_CLIP_NONE;
}

void xf_lrot_quant_from_scheme(xf_lrot_quant *q, const xf_act_scheme *s, xf_lin_input in,
                               int w_bits, bool w_sym, int64_t w_group)
{
    xf_lrot_quant_default(q);
    if (s && s->act_bits > 0 && (s->act_inputs & (1u << in))) { /* NULL: weights only */
        q->act_bits = s->act_bits;
        q->act_sym = s->act_sym;
        q->act_group = s->act_group;
        q->act_clip = (float)xf_act_scheme_clip(s, in);
    }
    q->w_bits = w_bits;
    q->w_sym = w_sym;
    q->w_group = w_group;
}

int xf_lrot_problem_init(xf_lrot_problem *p, int64_t n, xf_lrot_norm norm, xf_error *err)
{
    memset(p, 0, sizeof *p);
    if (n < 1 || n > INT32_MAX)
        return xf_fail(err, "learned rotation: size %lld out of range", (long long)n);
    if (!xf_lrot_norm_name(norm))
        return xf_fail(err, "learned rotation: unknown normalisation %d", (int)norm);
    p->n = n;
    p->norm = norm;
    return 0;
}

void xf_lrot_problem_free(xf_lrot_problem *p)
{
    free(p->terms);
    memset(p, 0, sizeof *p);
}

static int check_quant(const xf_lrot_quant *q, int64_t width, const char *name, xf_error *err)
{
    if (q->act_bits != 0) {
        if (q->act_bits < XF_ACT_MIN_BITS || q->act_bits > XF_ACT_MAX_BITS)
            return xf_fail(err, "%s: activation bits %d outside 0 or [%d, %d]", name, q->act_bits,
                           XF_ACT_MIN_BITS, XF_ACT_MAX_BITS);
        if (!(q->act_clip > 0.0f && q->act_clip <= 1.0f))
            return xf_fail(err, "%s: activation clip %g outside (0, 1]", name, (double)q->act_clip);
        if (q->act_group < 0 || (q->act_group > 0 && width % q->act_group != 0))
            return xf_fail(err, "%s: activation group %lld does not divide the width %lld", name,
                           (long long)q->act_group, (long long)width);
    }
    if (q->w_bits != 0) {
        xf_grid_config c = {.bits = q->w_bits, .sym = q->w_sym, .clip = q->w_clip};
        if (xf_grid_config_check(&c, name, err) != 0)
            return -1;
    }
    return 0;
}

/* Squared Frobenius norm of E [m, out] in fp64: per-row sums, then added
 * in row order. */
static double sum_squares(const float *E, int64_t m, int64_t out, double *rowsum)
{
    for (int64_t i = 0; i < m; i++) {
        double s = 0.0;
        const float *e = E + i * out;
        for (int64_t j = 0; j < out; j++)
            s += (double)e[j] * (double)e[j];
        rowsum[i] = s;
    }
    double s = 0.0;
    for (int64_t i = 0; i < m; i++)
        s += rowsum[i];
    return s;
}

/* e_t = ||X W^T||_F^2 / N, chunk by chunk. */
static int measure_energy(xf_lrot_term *t, xf_error *err)
{
    const int64_t chunk = t->N < XF_LROT_CHUNK_ROWS ? t->N : XF_LROT_CHUNK_ROWS;
    float *Y = malloc((size_t)(chunk * t->out) * sizeof *Y);
    double *rowsum = malloc((size_t)chunk * sizeof *rowsum);
    if (!Y || !rowsum) {
        free(Y);
        free(rowsum);
        return xf_fail(err, "%s: out of memory measuring the output energy", t->name);
    }
    double s = 0.0;
    for (int64_t r0 = 0; r0 < t->N; r0 += chunk) {
        const int64_t m = t->N - r0 < chunk ? t->N - r0 : chunk;
        xf_sgemm_tiled(CblasNoTrans, CblasTrans, (int)m, (int)t->out, (int)t->width,
                    1.0f, t->X + r0 * t->width, (int)t->width, t->W, (int)t->width, 0.0f, Y,
                    (int)t->out);
        s += sum_squares(Y, m, t->out, rowsum);
    }
    free(Y);
    free(rowsum);
    t->energy = s / (double)t->N;
    if (!isfinite(t->energy))
        return xf_fail(err, "%s: output X W^T overflows fp32", t->name);
    return 0;
}

int xf_lrot_add_term(xf_lrot_problem *p, const char *name, const float *X, int64_t N,
                     const float *W, int64_t out, int64_t width, const xf_lrot_quant *q,
                     double weight, xf_error *err)
{
    if (!name)
        name = "term";
    if (!X || !W || N < 1 || out < 1 || width < 1 || N > INT32_MAX || out > INT32_MAX ||
        width > INT32_MAX)
        return xf_fail(err, "%s: bad shapes X [%lld, %lld], W [%lld, %lld]", name, (long long)N,
                       (long long)width, (long long)out, (long long)width);
    if (width % p->n != 0)
        return xf_fail(err, "%s: width %lld is not a multiple of the rotation size %lld", name,
                       (long long)width, (long long)p->n);
    /* block-diagonal products read X as [N k, n]: keep that inside int too */
    if (N * (width / p->n) > INT32_MAX || out * (width / p->n) > INT32_MAX)
        return xf_fail(err, "%s: too many rows for one SGEMM", name);
    if (!(weight >= 0.0 && isfinite(weight)))
        return xf_fail(err, "%s: weight %g must be finite and >= 0", name, weight);
    if (check_quant(q, width, name, err) != 0)
        return -1;
    if (!xf_all_finite(X, N * width))
        return xf_fail(err, "%s: non-finite captured activation", name);
    if (!xf_all_finite(W, out * width))
        return xf_fail(err, "%s: non-finite weight", name);
    if (p->n_terms == p->cap) {
        int cap = p->cap ? 2 * p->cap : 8;
        xf_lrot_term *nt = realloc(p->terms, (size_t)cap * sizeof *nt);
        if (!nt)
            return xf_fail(err, "%s: out of memory", name);
        p->terms = nt;
        p->cap = cap;
    }
    xf_lrot_term *t = &p->terms[p->n_terms];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->X = X;
    t->N = N;
    t->W = W;
    t->out = out;
    t->width = width;
    t->q = *q;
    t->weight = weight;
    if (measure_energy(t, err) != 0)
        return -1;
    if (p->norm == XF_LROT_NORM_RELATIVE && t->energy == 0.0)
        return xf_fail(err, "%s: X W^T is all zero, the relative error is undefined", name);
    p->n_terms++;
    return 0;
}

/* ---- fake quantizers and their straight-through backward ---------------- */

/* W R [out, width] -> RTN fake quantized in place, per row and group; the
 * step of each group goes to scales[out, groups] when not NULL. */
static void quantize_weight(float *B, int64_t out, int64_t width, const xf_lrot_quant *q,
                            float *scales)
{
    const xf_grid_config c = {.bits = q->w_bits, .sym = q->w_sym, .clip = q->w_clip};
    const int64_t g = q->w_group <= 0 || q->w_group > width ? width : q->w_group;
    const int64_t ng = (width + g - 1) / g;
    for (int64_t r = 0; r < out; r++) {
        float *b = B + r * width;
        for (int64_t j0 = 0; j0 < width; j0 += g) {
            const int64_t len = j0 + g < width ? g : width - j0;
            const xf_grid grid = xf_grid_fit(&c, b + j0, len);
            for (int64_t j = j0; j < j0 + len; j++)
                b[j] = xf_grid_dequantize(&grid, xf_grid_quantize(&grid, b[j]));
            if (scales)
                scales[r * ng + j0 / g] = grid.scale;
        }
    }
}

/* Step of one activation group, with the arithmetic of act_quant.c; 0 when
 * the quantizer leaves the group alone. */
static float act_scale(const float *x, int64_t n, const xf_lrot_quant *q)
{
    if (q->act_sym) {
        float m = 0.0f;
        for (int64_t i = 0; i < n; i++)
            m = fabsf(x[i]) > m ? fabsf(x[i]) : m;
        return q->act_clip * m / (float)((1 << (q->act_bits - 1)) - 1);
    }
    float lo = 0.0f, hi = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
    }
    return (hi * q->act_clip - lo * q->act_clip) / (float)((1 << q->act_bits) - 1);
}

/* Backward through one fake-quantized group of len values: x0 the input,
 * xq the output, s the step used (0: the group was left alone), d the
 * gradient w.r.t. xq on entry and w.r.t. x0 on return. The model of the
 * quantizer (header, "the gradient"): xq = x0 + s r with the residual r =
 * (xq - x0) / s frozen; a clamped value under `mask` is xq = s k with its
 * code k frozen and passes nothing to x0. With `scale`, s follows the
 * range it was fitted on (s proportional to max |x| when symmetric, to
 * max(x, 0) - min(x, 0) when not: clip ratios and fp16 rounding are
 * constant factors), so the sum of d * ds-coefficients flows into the
 * element(s) that set the range. A value is clamped when it moved by more
 * than half a step (in range, rounding moves it by at most s / 2; the 1e-4
 * absorbs the rounding of x / s). */
static void group_backward(const float *x0, const float *xq, float *d, int64_t len, float s, bool sym,
                           bool mask, bool scale)
{
    if (!(s > 0.0f) || (!mask && !scale))
        return;
    const float half = 0.5f * 1.0001f * s;
    double gs = 0.0;
    for (int64_t j = 0; j < len; j++) {
        const float moved = xq[j] - x0[j];
        if (mask && fabsf(moved) > half) {
            gs += (double)d[j] * (double)(xq[j] / s);
            d[j] = 0.0f;
        } else {
            gs += (double)d[j] * (double)(moved / s);
        }
    }
    if (!scale)
        return;
    if (sym) {
        int64_t jm = 0;
        for (int64_t j = 1; j < len; j++)
            jm = fabsf(x0[j]) > fabsf(x0[jm]) ? j : jm;
        const float m = fabsf(x0[jm]);
        if (m > 0.0f)
            d[jm] += (float)(gs * (double)s / (double)m) * (x0[jm] > 0.0f ? 1.0f : -1.0f);
        return;
    }
    int64_t jlo = 0, jhi = 0;
    for (int64_t j = 1; j < len; j++) {
        jlo = x0[j] < x0[jlo] ? j : jlo;
        jhi = x0[j] > x0[jhi] ? j : jhi;
    }
    const float lo = x0[jlo] < 0.0f ? x0[jlo] : 0.0f, hi = x0[jhi] > 0.0f ? x0[jhi] : 0.0f;
    if (!(hi - lo > 0.0f))
        return;
    const float ds = (float)(gs * (double)s / (double)(hi - lo));
    if (hi > 0.0f)
        d[jhi] += ds;
    if (lo < 0.0f)
        d[jlo] -= ds;
}

/* dL/dA -> dL/d(X R) for one token row. */
static void act_backward(const float *x0, const float *xq, float *d, int64_t width,
                         const xf_lrot_quant *q, unsigned ste)
{
    const int64_t g = q->act_group > 0 ? q->act_group : width;
    for (int64_t j0 = 0; j0 < width; j0 += g)
        group_backward(x0 + j0, xq + j0, d + j0, g, act_scale(x0 + j0, g, q), q->act_sym,
                       (ste & XF_LROT_STE_CLIP_MASK) != 0, (ste & XF_LROT_STE_SCALE) != 0);
}

/* dL/dB -> dL/d(W R) for all rows (the min/max grid does not clamp). */
static void weight_backward(const float *V, const float *B, float *d, int64_t out, int64_t width,
                            const xf_lrot_quant *q, const float *scales)
{
    const int64_t g = q->w_group <= 0 || q->w_group > width ? width : q->w_group;
    const int64_t ng = (width + g - 1) / g;
    for (int64_t r = 0; r < out; r++)
        for (int64_t j0 = 0; j0 < width; j0 += g) {
            const int64_t o = r * width + j0, len = j0 + g < width ? g : width - j0;
            group_backward(V + o, B + o, d + o, len, scales[r * ng + j0 / g], q->w_sym, false, true);
        }
}

/* ---- one term ----------------------------------------------------------- */

/* ---- scratch ------------------------------------------------------------ */

void xf_lrot_work_init(xf_lrot_work *w) { memset(w, 0, sizeof *w); }

void xf_lrot_work_free(xf_lrot_work *w)
{
    for (int i = 0; i < XF_LROT_WORK_SLOTS; i++)
        free(w->buf[i]);
    memset(w, 0, sizeof *w);
}

enum { S_RF, S_B, S_V, S_WSCALE, S_DB, S_GT, S_XC, S_A, S_A0, S_E, S_DA, S_ROWSUM };
_Static_assert(S_ROWSUM < XF_LROT_WORK_SLOTS, "xf_lrot_work has too few slots");

/* Slot i with room for count elements of size bytes (grow-only: the
 * optimiser's steps reuse the pages instead of faulting fresh ones in);
 * NULL when !want; *ok cleared on allocation failure. */
static void *slot(xf_lrot_work *w, int i, int64_t count, size_t size, bool want, bool *ok)
{
    if (!want || !*ok)
        return NULL;
    const size_t bytes = (size_t)count * size;
    if (bytes > w->cap[i]) {
        free(w->buf[i]); /* contents need not survive: no realloc copy */
        w->buf[i] = malloc(bytes);
        w->cap[i] = w->buf[i] ? bytes : 0;
    }
    *ok = w->buf[i] != NULL;
    return w->buf[i];
}

typedef struct term_buf {
    float *B, *V, *wscale, *dB, *Gt; /* [out, width] x 2, [out, groups], [out, width], [n, n] */
    float *Xc, *A, *A0, *E, *dA;     /* chunk rows */
    double *rowsum;
} term_buf;

static int term_buf_init(term_buf *b, xf_lrot_work *w, const xf_lrot_term *t, int64_t n,
                         int64_t chunk, bool gather, bool grad, unsigned ste, xf_error *err)
{
    bool ok = true;
    const int64_t ow = t->out * t->width, cw = chunk * t->width;
    const int64_t wg = t->q.w_group <= 0 || t->q.w_group > t->width ? t->width : t->q.w_group;
    const bool wback = grad && t->q.w_bits > 0 && (ste & XF_LROT_STE_SCALE);
    const size_t f = sizeof(float);
    b->B = slot(w, S_B, ow, f, true, &ok);
    b->V = slot(w, S_V, ow, f, wback, &ok);
    b->wscale = slot(w, S_WSCALE, t->out * ((t->width + wg - 1) / wg), f, wback, &ok);
    b->dB = slot(w, S_DB, ow, f, grad, &ok);
    b->Gt = slot(w, S_GT, n * n, f, grad, &ok);
    b->Xc = slot(w, S_XC, cw, f, gather, &ok);
    b->A = slot(w, S_A, cw, f, true, &ok);
    b->A0 = slot(w, S_A0, cw, f, grad && t->q.act_bits > 0 && ste != 0, &ok);
    b->E = slot(w, S_E, chunk * t->out, f, true, &ok);
    b->dA = slot(w, S_DA, cw, f, grad, &ok);
    b->rowsum = slot(w, S_ROWSUM, chunk, sizeof(double), true, &ok);
    if (!ok)
        return xf_fail(err, "%s: out of memory for the rotation objective", t->name);
    return 0;
}

/* Adds term t's loss (c_t ||E||^2 / m over the m listed rows) to *loss and,
 * when G != NULL, its gradient to G. Rf is R in fp32. */
static int term_eval(const xf_lrot_problem *p, const xf_lrot_term *t, const float *Rf,
                     const int64_t *rows, int64_t nrows, unsigned ste, xf_lrot_work *w,
                     double *loss, double *G, xf_error *err)
{
    const int n = (int)p->n, k = (int)(t->width / p->n), out = (int)t->out, width = (int)t->width;
    const int64_t total = rows ? nrows : t->N;
    const int64_t chunk = total < XF_LROT_CHUNK_ROWS ? total : XF_LROT_CHUNK_ROWS;
    term_buf b;
    if (total < 1)
        return xf_fail(err, "%s: no rows selected", t->name);
    for (int64_t i = 0; rows && i < total; i++)
        if (rows[i] < 0 || rows[i] >= t->N)
            return xf_fail(err, "%s: row %lld outside [0, %lld)", t->name, (long long)rows[i],
                           (long long)t->N);
    if (term_buf_init(&b, w, t, p->n, chunk, rows != NULL, G != NULL, ste, err) != 0)
        return -1;
    /* B = Q_w(W R): W read as [out k, n] applies R to each slice */
    xf_sgemm_tiled(CblasNoTrans, CblasNoTrans, out * k, n, n, 1.0f, t->W, n, Rf, n,
                0.0f, b.B, n);
    if (!xf_all_finite(b.B, t->out * t->width)) {
        return xf_fail(err, "%s: non-finite rotated weight", t->name);
    }
    if (b.V)
        memcpy(b.V, b.B, (size_t)t->out * (size_t)width * sizeof *b.V);
    if (t->q.w_bits > 0)
        quantize_weight(b.B, t->out, t->width, &t->q, b.wscale);
    double sq = 0.0;
    for (int64_t r0 = 0; r0 < total; r0 += chunk) {
        const int m = (int)(total - r0 < chunk ? total - r0 : chunk);
        const float *Xc = t->X + r0 * t->width;
        if (rows) {
            for (int i = 0; i < m; i++)
                memcpy(b.Xc + (int64_t)i * width, t->X + rows[r0 + i] * t->width,
                       (size_t)width * sizeof *b.Xc);
            Xc = b.Xc;
        }
        /* A = Q_a(X R) */
        xf_sgemm_tiled(CblasNoTrans, CblasNoTrans, m * k, n, n, 1.0f, Xc, n, Rf, n,
                    0.0f, b.A, n);
        if (b.A0)
            memcpy(b.A0, b.A, (size_t)m * (size_t)width * sizeof *b.A0);
        int bad = 0;
        if (t->q.act_bits > 0) {
            for (int i = 0; i < m; i++)
                bad |= xf_act_quant_row(b.A + (int64_t)i * width, width, t->q.act_group,
                                        t->q.act_bits, t->q.act_sym, t->q.act_clip) != 0;
        } else {
            bad = !xf_all_finite(b.A, (int64_t)m * width);
        }
        if (bad) {
            return xf_fail(err, "%s: non-finite rotated activation", t->name);
        }
        /* E = X W^T - A B^T */
        xf_sgemm_tiled(CblasNoTrans, CblasTrans, m, out, width, 1.0f, Xc, width, t->W,
                    width, 0.0f, b.E, out);
        xf_sgemm_tiled(CblasNoTrans, CblasTrans, m, out, width, -1.0f, b.A, width, b.B,
                    width, 1.0f, b.E, out);
        sq += sum_squares(b.E, m, out, b.rowsum);
        if (!G)
            continue;
        const float beta = r0 == 0 ? 0.0f : 1.0f;
        /* dL/dA ~ E B, dL/dB ~ E^T A (the factor -2 c_t / total comes last) */
        xf_sgemm_tiled(CblasNoTrans, CblasNoTrans, m, width, out, 1.0f, b.E, out, b.B,
                    width, 0.0f, b.dA, width);
        xf_sgemm_tiled(CblasTrans, CblasNoTrans, out, width, m, 1.0f, b.E, out, b.A,
                    width, beta, b.dB, width);
        if (b.A0) {
            for (int i = 0; i < m; i++)
                act_backward(b.A0 + (int64_t)i * width, b.A + (int64_t)i * width,
                             b.dA + (int64_t)i * width, width, &t->q, ste);
        }
        /* X^T dL/d(XR) summed over the k diagonal blocks */
        xf_sgemm_tiled(CblasTrans, CblasNoTrans, n, n, m * k, 1.0f, Xc, n, b.dA, n,
                    beta, b.Gt, n);
    }
    const double c = (p->norm == XF_LROT_NORM_RELATIVE ? t->weight / t->energy
                                                       : t->weight / (double)t->out) /
                     (double)total;
    if (!isfinite(sq)) {
        return xf_fail(err, "%s: non-finite output error", t->name);
    }
    *loss += c * sq;
    if (G) {
        if (b.V)
            weight_backward(b.V, b.B, b.dB, t->out, t->width, &t->q, b.wscale);
        xf_sgemm_tiled(CblasTrans, CblasNoTrans, n, n, out * k, 1.0f, t->W, n, b.dB, n,
                    1.0f, b.Gt, n);
        for (int64_t i = 0; i < p->n * p->n; i++)
            G[i] += -2.0 * c * (double)b.Gt[i];
    }
    return 0;
}

int xf_lrot_eval(const xf_lrot_problem *p, const double *R, const int64_t *const *rows,
                 const int64_t *nrows, unsigned ste, xf_lrot_work *work, double *loss,
                 double *term_loss, double *G, xf_error *err)
{
    xf_lrot_work local;
    xf_lrot_work *w = work ? work : &local;
    if (!work)
        xf_lrot_work_init(&local);
    const int64_t nn = p->n * p->n;
    bool ok = true;
    float *Rf = slot(w, S_RF, nn, sizeof *Rf, true, &ok);
    int rc = -1;
    if (!ok) {
        xf_fail(err, "learned rotation: out of memory");
        goto out;
    }
    for (int64_t i = 0; i < nn; i++)
        Rf[i] = (float)R[i];
    if (!xf_all_finite(Rf, nn)) {
        xf_fail(err, "learned rotation: non-finite rotation");
        goto out;
    }
    if (G)
        memset(G, 0, (size_t)nn * sizeof *G);
    *loss = 0.0;
    for (int t = 0; t < p->n_terms; t++) {
        double lt = 0.0;
        const int64_t *rt = rows ? rows[t] : NULL;
        if (term_eval(p, &p->terms[t], Rf, rt, rt ? nrows[t] : 0, ste, w, &lt, G, err) != 0)
            goto out;
        *loss += lt;
        if (term_loss)
            term_loss[t] = lt;
    }
    rc = 0;
out:
    if (!work)
        xf_lrot_work_free(&local);
    return rc;
}

int xf_lrot_loss(const xf_lrot_problem *p, const double *R, double *loss, xf_error *err)
{
    return xf_lrot_eval(p, R, NULL, NULL, 0, NULL, loss, NULL, NULL, err);
}
