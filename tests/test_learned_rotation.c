/* quant/transform/rotation_learning: the fake-quantized rotation objective, its
 * straight-through gradient and the Cayley SGD optimiser.
 *
 * The gradient reference is independent of the library's SGEMM path: the
 * "frozen" objective of the header (rounding residuals, and the codes of
 * clamped activations under the clip mask, held at the base R; the steps
 * following their ranges under the scale flag) written out in fp64 here and differentiated by central finite differences, entry by
 * entry; the library's G must match it, in full and projected on the
 * tangent space (G R^T - R G^T), for each STE variant (identity, scale,
 * clip mask, both; the variants' gradients differ by far more than the
 * tolerance). With the quantizers off and a non-orthogonal R this is the
 * plain smooth loss. Then: rotation invariance with the quantizers off
 * (the optimiser leaves R alone), orthogonality kept by the Cayley step
 * alone over 200 steps and restored by Newton-Schulz, planted outlier
 * channels (identity > randomized Hadamard > learned, full R and R2-style
 * block-diagonal), bit-identical reruns, listed rows = a problem of those
 * rows, the callback, argument errors. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <cmocka.h>
#include <lapacke.h>

#include "sim/act_quant.h"
#include "sim/hadamard.h"
#include "quant/transform/rotation_learning.h"
#include "tests/support/test_util.h"

#define CHECK_OK(call)                                                                             \
    do {                                                                                           \
        xf_error e_ = {{0}};                                                                       \
        xf_error *err = &e_;                                                                       \
        if ((call) != 0)                                                                           \
            fail_msg("%s", e_.msg);                                                                \
    } while (0)

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    assert_non_null(p);
    return p;
}

/* ---- data ---------------------------------------------------------------- */

/* Gaussian [rows, cols] * scale */
static float *randn(int64_t rows, int64_t cols, float scale, uint64_t *st)
{
    float *x = xmalloc((size_t)(rows * cols) * sizeof *x);
    for (int64_t i = 0; i < rows * cols; i++)
        x[i] = scale * xf_test_rand_normal(st);
    return x;
}

/* A random orthogonal n x n (Q of a Gaussian's QR), not a Hadamard. */
static void rand_orthogonal(int64_t n, uint64_t *st, double *Q)
{
    double *tau = xmalloc((size_t)n * sizeof *tau);
    for (int64_t i = 0; i < n * n; i++)
        Q[i] = xf_test_rand_normal(st);
    assert_int_equal(LAPACKE_dgeqrf(LAPACK_ROW_MAJOR, (int)n, (int)n, Q, (int)n, tau), 0);
    assert_int_equal(LAPACKE_dorgqr(LAPACK_ROW_MAJOR, (int)n, (int)n, (int)n, Q, (int)n, tau), 0);
    free(tau);
}

static void identity(int64_t n, double *R)
{
    memset(R, 0, (size_t)(n * n) * sizeof *R);
    for (int64_t i = 0; i < n; i++)
        R[i * n + i] = 1.0;
}

static xf_lrot_quant quant_w4a4(void)
{
    xf_lrot_quant q;
    xf_lrot_quant_default(&q);
    q.act_bits = 4;
    q.w_bits = 4;
    return q;
}

/* ---- fp64 reference of the frozen objective ---------------------------- */

/* One fake quantizer frozen at the base R (the model of the header): per
 * value, xq = x + s r with r = (xq - x) / s fixed ("live") or, for a value
 * clamped under the clip mask, xq = s k with k = xq / s fixed; with the
 * scale flag s follows the group's range: s = s0 * range(x') / range(x0)
 * where range is |x_jhi| (symmetric) or max(x_jhi, 0) - min(x_jlo, 0) at
 * the base's extreme indices. */
typedef struct ref_q {
    int64_t rows, width, g, ng;
    bool sym, scale;
    double *r;          /* r or k */
    uint8_t *live;
    double *s0, *den;   /* [rows, ng] */
    int64_t *jhi, *jlo; /* [rows, ng], index in the row */
} ref_q;

/* range of a group of the fp64 values x at the frozen indices */
static double ref_range(const ref_q *q, const double *x, int64_t gi)
{
    if (q->sym)
        return fabs(x[q->jhi[gi]]);
    return fmax(x[q->jhi[gi]], 0.0) - fmin(x[q->jlo[gi]], 0.0);
}

/* x0 fp32 (what the quantizer saw), xq its output, xb the same values in
 * fp64 (the base of the frozen model), steps[rows, ng] the steps used;
 * clamp_lo/hi: in steps, where clamping starts (NULL: never clamps). */
static void ref_q_init(ref_q *q, const float *x0, const float *xq, const double *xb, int64_t rows,
                       int64_t width, int64_t g, bool sym, const double *steps, const double *clamp_lo,
                       const double *clamp_hi, bool scale)
{
    q->rows = rows, q->width = width, q->g = g, q->ng = (width + g - 1) / g, q->sym = sym;
    q->scale = scale;
    q->r = xmalloc((size_t)(rows * width) * sizeof *q->r);
    q->live = xmalloc((size_t)(rows * width));
    q->s0 = xmalloc((size_t)(rows * q->ng) * sizeof *q->s0);
    q->den = xmalloc((size_t)(rows * q->ng) * sizeof *q->den);
    q->jhi = xmalloc((size_t)(rows * q->ng) * sizeof *q->jhi);
    q->jlo = xmalloc((size_t)(rows * q->ng) * sizeof *q->jlo);
    for (int64_t i = 0; i < rows; i++)
        for (int64_t gg = 0; gg < q->ng; gg++) {
            const int64_t gi = i * q->ng + gg, j0 = i * width + gg * g;
            const int64_t len = (gg + 1) * g <= width ? g : width - gg * g;
            const double st = steps[gi];
            int64_t hi = j0, lo = j0;
            for (int64_t j = j0; j < j0 + len; j++) {
                if (sym ? fabsf(x0[j]) > fabsf(x0[hi]) : x0[j] > x0[hi])
                    hi = j;
                if (x0[j] < x0[lo])
                    lo = j;
                const bool clamped = clamp_lo && st > 0.0 &&
                                     ((double)x0[j] / st < clamp_lo[gi] || (double)x0[j] / st > clamp_hi[gi]);
                q->live[j] = !clamped;
                q->r[j] = st > 0.0 ? (clamped ? (double)xq[j] / st : ((double)xq[j] - (double)x0[j]) / st) : 0.0;
            }
            q->s0[gi] = st;
            q->jhi[gi] = hi - i * width;
            q->jlo[gi] = lo - i * width;
            q->den[gi] = ref_range(q, xb + i * width, gi);
        }
}

static void ref_q_apply(const ref_q *q, const double *x, double *out)
{
    for (int64_t i = 0; i < q->rows; i++)
        for (int64_t j = 0; j < q->width; j++) {
            const int64_t gi = i * q->ng + j / q->g, e = i * q->width + j;
            double s = q->s0[gi];
            if (q->scale && q->den[gi] > 0.0)
                s *= ref_range(q, x + i * q->width, gi) / q->den[gi];
            out[e] = q->live[e] ? x[e] + s * q->r[e] : s * q->r[e];
        }
}

static void ref_q_free(ref_q *q)
{
    free(q->r);
    free(q->live);
    free(q->s0);
    free(q->den);
    free(q->jhi);
    free(q->jlo);
}

typedef struct ref_term {
    const xf_lrot_term *t;
    double c;   /* c_t / N */
    double *Y;  /* X W^T [N, out] */
    ref_q qa, qw;
} ref_term;

/* out[rows, width] = M diag(R, ..., R) */
static void blk_apply(const float *M, int64_t rows, int64_t width, const double *R, int64_t n,
                      double *out)
{
    for (int64_t r = 0; r < rows; r++)
        for (int64_t b = 0; b < width; b += n)
            for (int64_t j = 0; j < n; j++) {
                double s = 0.0;
                for (int64_t i = 0; i < n; i++)
                    s += (double)M[r * width + b + i] * R[i * n + j];
                out[r * width + b + j] = s;
            }
}

/* The quantizers applied as documented (the fp32 rotation by the same
 * SGEMM call the library makes, so both quantize the same bits), then
 * frozen. Steps: the activation formula of act_quant.h, the weight grid's
 * fp16 scale. */
static void ref_init(ref_term *rt, const xf_lrot_problem *p, int ti, const double *R, unsigned ste)
{
    const xf_lrot_term *t = &p->terms[ti];
    const int64_t n = p->n, N = t->N, out = t->out, w = t->width, k = w / n;
    const xf_lrot_quant *q = &t->q;
    rt->t = t;
    rt->c = (p->norm == XF_LROT_NORM_RELATIVE ? t->weight / t->energy : t->weight / (double)out) /
            (double)N;
    rt->Y = xmalloc((size_t)(N * out) * sizeof(double));
    for (int64_t i = 0; i < N; i++)
        for (int64_t o = 0; o < out; o++) {
            double s = 0.0;
            for (int64_t j = 0; j < w; j++)
                s += (double)t->X[i * w + j] * (double)t->W[o * w + j];
            rt->Y[i * out + o] = s;
        }
    float *Rf = xmalloc((size_t)(n * n) * sizeof *Rf);
    for (int64_t i = 0; i < n * n; i++)
        Rf[i] = (float)R[i];
    float *A0 = xmalloc((size_t)(N * w) * sizeof *A0), *Aq = xmalloc((size_t)(N * w) * sizeof *Aq);
    float *V = xmalloc((size_t)(out * w) * sizeof *V), *Bq = xmalloc((size_t)(out * w) * sizeof *Bq);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(N * k), (int)n, (int)n, 1.0f, t->X,
                (int)n, Rf, (int)n, 0.0f, A0, (int)n);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(out * k), (int)n, (int)n, 1.0f,
                t->W, (int)n, Rf, (int)n, 0.0f, V, (int)n);
    memcpy(Aq, A0, (size_t)(N * w) * sizeof *Aq);
    memcpy(Bq, V, (size_t)(out * w) * sizeof *Bq);
    double *xb = xmalloc((size_t)(N * w) * sizeof *xb), *wb = xmalloc((size_t)(out * w) * sizeof *wb);
    blk_apply(t->X, N, w, R, n, xb);
    blk_apply(t->W, out, w, R, n, wb);
    /* activations */
    const int64_t ga = q->act_group > 0 ? q->act_group : w, nga = w / ga;
    double *st = xmalloc((size_t)(N * nga) * sizeof *st), *clo = xmalloc((size_t)(N * nga) * sizeof *clo),
           *chi = xmalloc((size_t)(N * nga) * sizeof *chi);
    for (int64_t i = 0; i < N; i++) {
        for (int64_t gg = 0; gg < nga && q->act_bits > 0; gg++) {
            const float *a = A0 + i * w + gg * ga;
            float m = 0.0f, lo = 0.0f, hi = 0.0f;
            for (int64_t j = 0; j < ga; j++) {
                m = fmaxf(m, fabsf(a[j]));
                lo = fminf(lo, a[j]);
                hi = fmaxf(hi, a[j]);
            }
            const int64_t gi = i * nga + gg;
            if (q->act_sym) {
                const float qm = (float)((1 << (q->act_bits - 1)) - 1);
                st[gi] = (double)(q->act_clip * m / qm);
                clo[gi] = -qm - 1.5;
                chi[gi] = qm + 0.5;
            } else {
                const float qm = (float)((1 << q->act_bits) - 1);
                const float sc = (hi * q->act_clip - lo * q->act_clip) / qm;
                const double zero = rintf(-(lo * q->act_clip) / sc);
                st[gi] = (double)sc;
                clo[gi] = -zero - 0.5;
                chi[gi] = qm - zero + 0.5;
            }
        }
        if (q->act_bits > 0)
            assert_int_equal(xf_act_quant_row(Aq + i * w, w, q->act_group, q->act_bits, q->act_sym,
                                              q->act_clip), 0);
        else
            for (int64_t gg = 0; gg < nga; gg++)
                st[i * nga + gg] = 0.0; /* off: xq = x */
    }
    ref_q_init(&rt->qa, A0, Aq, xb, N, w, ga, q->act_sym, st,
               (ste & XF_LROT_STE_CLIP_MASK) ? clo : NULL, chi, (ste & XF_LROT_STE_SCALE) != 0);
    /* weights */
    const int64_t gw = q->w_group > 0 && q->w_group < w ? q->w_group : w, ngw = (w + gw - 1) / gw;
    double *sw = xmalloc((size_t)(out * ngw) * sizeof *sw);
    const xf_grid_config c = {.bits = q->w_bits, .sym = q->w_sym, .clip = q->w_clip};
    for (int64_t o = 0; o < out; o++)
        for (int64_t gg = 0; gg < ngw; gg++) {
            float *b = Bq + o * w + gg * gw;
            const int64_t len = (gg + 1) * gw <= w ? gw : w - gg * gw;
            sw[o * ngw + gg] = 0.0;
            if (q->w_bits == 0)
                continue;
            xf_grid gr = xf_grid_fit(&c, b, len);
            for (int64_t j = 0; j < len; j++)
                b[j] = xf_grid_dequantize(&gr, xf_grid_quantize(&gr, b[j]));
            sw[o * ngw + gg] = gr.scale;
        }
    ref_q_init(&rt->qw, V, Bq, wb, out, w, gw, q->w_sym, sw, NULL, NULL,
               (ste & XF_LROT_STE_SCALE) != 0);
    free(Rf);
    free(A0);
    free(Aq);
    free(V);
    free(Bq);
    free(xb);
    free(wb);
    free(st);
    free(clo);
    free(chi);
    free(sw);
}

static void ref_free(ref_term *rt)
{
    free(rt->Y);
    ref_q_free(&rt->qa);
    ref_q_free(&rt->qw);
}

/* The frozen objective at R'. */
static double ref_loss(const ref_term *rts, int nt, int64_t n, const double *R)
{
    double L = 0.0;
    for (int ti = 0; ti < nt; ti++) {
        const ref_term *rt = &rts[ti];
        const int64_t N = rt->t->N, out = rt->t->out, w = rt->t->width;
        double *x = xmalloc((size_t)(N * w) * sizeof *x), *A = xmalloc((size_t)(N * w) * sizeof *A);
        double *v = xmalloc((size_t)(out * w) * sizeof *v), *B = xmalloc((size_t)(out * w) * sizeof *B);
        blk_apply(rt->t->X, N, w, R, n, x);
        blk_apply(rt->t->W, out, w, R, n, v);
        ref_q_apply(&rt->qa, x, A);
        ref_q_apply(&rt->qw, v, B);
        double s = 0.0;
        for (int64_t i = 0; i < N; i++)
            for (int64_t o = 0; o < out; o++) {
                double y = 0.0;
                for (int64_t j = 0; j < w; j++)
                    y += A[i * w + j] * B[o * w + j];
                double e = rt->Y[i * out + o] - y;
                s += e * e;
            }
        L += rt->c * s;
        free(x);
        free(A);
        free(v);
        free(B);
    }
    return L;
}

/* P(G) = G R^T - R G^T: the tangent (skew) part the Cayley step uses */
static void tangent(const double *G, const double *R, int64_t n, double *P)
{
    double *T = xmalloc((size_t)(n * n) * sizeof *T);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)n, (int)n, 1.0, G, (int)n, R,
                (int)n, 0.0, T, (int)n);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++)
            P[i * n + j] = T[i * n + j] - T[j * n + i];
    free(T);
}

static double rel_diff(const double *a, const double *b, int64_t m)
{
    double d = 0.0, s = 0.0;
    for (int64_t i = 0; i < m; i++) {
        d += (a[i] - b[i]) * (a[i] - b[i]);
        s += b[i] * b[i];
    }
    return sqrt(d / s);
}

/* Library G vs central differences of the frozen objective at R. */
static void gradient_check(const xf_lrot_problem *p, const double *R, unsigned ste, double tol,
                           const char *what)
{
    const int64_t n = p->n, nn = n * n;
    ref_term *rts = xmalloc((size_t)p->n_terms * sizeof *rts);
    for (int t = 0; t < p->n_terms; t++)
        ref_init(&rts[t], p, t, R, ste);
    double *G = xmalloc((size_t)nn * sizeof *G), *Gfd = xmalloc((size_t)nn * sizeof *Gfd);
    double loss;
    CHECK_OK(xf_lrot_eval(p, R, NULL, NULL, ste, NULL, &loss, NULL, G, err));
    const double L0 = ref_loss(rts, p->n_terms, n, R);
    double *Rp = xmalloc((size_t)nn * sizeof *Rp);
    memcpy(Rp, R, (size_t)nn * sizeof *Rp);
    const double h = 1e-5;
    for (int64_t i = 0; i < nn; i++) {
        Rp[i] = R[i] + h;
        double fp = ref_loss(rts, p->n_terms, n, Rp);
        Rp[i] = R[i] - h;
        double fm = ref_loss(rts, p->n_terms, n, Rp);
        Rp[i] = R[i];
        Gfd[i] = (fp - fm) / (2.0 * h);
    }
    double *P = xmalloc((size_t)nn * sizeof *P), *Pfd = xmalloc((size_t)nn * sizeof *Pfd);
    tangent(G, R, n, P);
    tangent(Gfd, R, n, Pfd);
    const double e_loss = fabs(loss - L0) / L0, e_full = rel_diff(G, Gfd, nn),
                 e_tan = rel_diff(P, Pfd, nn);
    print_message("%s: loss %.6g (ref rel diff %.2e), |G - Gfd| / |Gfd| %.2e, tangent %.2e\n",
                  what, loss, e_loss, e_full, e_tan);
    assert_true(e_loss < 1e-5);
    assert_true(e_full < tol);
    assert_true(e_tan < tol);
    for (int t = 0; t < p->n_terms; t++)
        ref_free(&rts[t]);
    free(rts);
    free(G);
    free(Gfd);
    free(Rp);
    free(P);
    free(Pfd);
}

/* n = 16: a full-width term and a block-diagonal one (width 3 n). */
typedef struct small_problem {
    xf_lrot_problem p;
    float *X1, *W1, *X2, *W2;
} small_problem;

static void small_init(small_problem *s, xf_lrot_quant q1, xf_lrot_quant q2, xf_lrot_norm norm)
{
    uint64_t st = 11;
    const int64_t n = 16, N = 96;
    s->X1 = randn(N, n, 1.0f, &st);
    s->W1 = randn(12, n, 0.3f, &st);
    s->X2 = randn(N, 3 * n, 2.0f, &st);
    s->W2 = randn(10, 3 * n, 0.1f, &st);
    for (int64_t i = 0; i < N; i++) /* an outlier channel in each */
        s->X1[i * n + 5] *= 8.0f, s->X2[i * 3 * n + 40] *= 8.0f;
    CHECK_OK(xf_lrot_problem_init(&s->p, n, norm, err));
    CHECK_OK(xf_lrot_add_term(&s->p, "full", s->X1, N, s->W1, 12, n, &q1, 1.0, err));
    CHECK_OK(xf_lrot_add_term(&s->p, "blocks", s->X2, N, s->W2, 10, 3 * n, &q2, 0.5, err));
}

static void small_free(small_problem *s)
{
    xf_lrot_problem_free(&s->p);
    free(s->X1);
    free(s->W1);
    free(s->X2);
    free(s->W2);
}

/* ---- tests --------------------------------------------------------------- */

static void test_gradient_smooth(void **state)
{
    (void)state;
    xf_lrot_quant off;
    xf_lrot_quant_default(&off);
    small_problem s;
    small_init(&s, off, off, XF_LROT_NORM_RELATIVE);
    /* quantizers off: L is smooth; a perturbed (non-orthogonal) R makes the
     * gradient non-zero (at an orthogonal R, L is 0 and flat) */
    uint64_t st = 5;
    double R[256];
    rand_orthogonal(16, &st, R);
    for (int i = 0; i < 256; i++)
        R[i] += 0.05 * xf_test_rand_normal(&st);
    gradient_check(&s.p, R, XF_LROT_STE_SCALE, 1e-5, "smooth, relative");
    small_free(&s);
    small_init(&s, off, off, XF_LROT_NORM_MEAN);
    gradient_check(&s.p, R, XF_LROT_STE_SCALE, 1e-5, "smooth, mean");
    small_free(&s);
}

static void test_gradient_ste(void **state)
{
    (void)state;
    xf_lrot_quant q1 = quant_w4a4(), q2 = quant_w4a4();
    q1.act_group = 8;
    q1.act_clip = 0.8f;
    q1.w_sym = false;
    q1.w_group = 8;
    q2.act_sym = false;
    q2.act_clip = 0.9f;
    q2.w_bits = 3;
    q2.w_group = 20; /* partial last group (48 = 20 + 20 + 8) */
    small_problem s;
    small_init(&s, q1, q2, XF_LROT_NORM_RELATIVE);
    double R[256];
    uint64_t seed = 3;
    CHECK_OK(xf_hadamard_dense(16, &seed, R, err));
    gradient_check(&s.p, R, 0, 1e-5, "STE, identity");
    gradient_check(&s.p, R, XF_LROT_STE_SCALE, 1e-5, "STE, scale");
    gradient_check(&s.p, R, XF_LROT_STE_SCALE | XF_LROT_STE_CLIP_MASK, 1e-5, "STE, scale + clip mask");
    gradient_check(&s.p, R, XF_LROT_STE_CLIP_MASK, 1e-5, "STE, clip mask");
    /* the variants differ by more than the tolerance: each check saw its own terms */
    double G[4][256], loss;
    const unsigned variants[4] = {0, XF_LROT_STE_SCALE, XF_LROT_STE_CLIP_MASK,
                                  XF_LROT_STE_SCALE | XF_LROT_STE_CLIP_MASK};
    for (int v = 0; v < 4; v++)
        CHECK_OK(xf_lrot_eval(&s.p, R, NULL, NULL, variants[v], NULL, &loss, NULL, G[v], err));
    for (int v = 1; v < 4; v++) {
        print_message("G(%u) vs G(0): %.3f\n", variants[v], rel_diff(G[v], G[0], 256));
        assert_true(rel_diff(G[v], G[0], 256) > 0.01);
    }
    small_free(&s);
}

/* Quantizers off: (X R)(W R)^T = X W^T, so L is ~0 for every orthogonal R
 * and the optimiser has nothing to do. */
static void test_rotation_invariance(void **state)
{
    (void)state;
    uint64_t st = 21;
    const int64_t n = 64, N = 512, out = 48;
    float *X = randn(N, n, 1.0f, &st), *W = randn(out, n, 0.2f, &st);
    for (int64_t i = 0; i < N; i++)
        X[i * n + 7] *= 50.0f;
    xf_lrot_quant off;
    xf_lrot_quant_default(&off);
    xf_lrot_problem p;
    CHECK_OK(xf_lrot_problem_init(&p, n, XF_LROT_NORM_RELATIVE, err));
    CHECK_OK(xf_lrot_add_term(&p, "t", X, N, W, out, n, &off, 1.0, err));
    double *Id = xmalloc(sizeof(double) * (size_t)(n * n)), *H = xmalloc(sizeof(double) * (size_t)(n * n));
    double *Q = xmalloc(sizeof(double) * (size_t)(n * n)), *R = xmalloc(sizeof(double) * (size_t)(n * n));
    identity(n, Id);
    uint64_t seed = 9;
    CHECK_OK(xf_hadamard_dense(n, &seed, H, err));
    rand_orthogonal(n, &st, Q);
    double lI, lH, lQ;
    CHECK_OK(xf_lrot_loss(&p, Id, &lI, err));
    CHECK_OK(xf_lrot_loss(&p, H, &lH, err));
    CHECK_OK(xf_lrot_loss(&p, Q, &lQ, err));
    print_message("quantizers off: L(I) %.3g, L(H) %.3g, L(Q) %.3g\n", lI, lH, lQ);
    assert_true(lI == 0.0); /* identity: X R is X exactly */
    assert_true(fabs(lH - lI) < 1e-10 && fabs(lQ - lI) < 1e-10);
    xf_lrot_options o;
    xf_lrot_options_default(&o);
    o.steps = 20;
    memcpy(R, Q, sizeof(double) * (size_t)(n * n));
    xf_lrot_report rep;
    CHECK_OK(xf_lrot_optimize(&p, &o, R, NULL, NULL, &rep, err));
    double dmax = 0.0;
    for (int64_t i = 0; i < n * n; i++)
        dmax = fmax(dmax, fabs(R[i] - Q[i]));
    print_message("after 20 steps: L %.3g -> %.3g, max |R - R0| %.2e\n", rep.loss_initial,
                  rep.loss_final, dmax);
    assert_true(fabs(rep.loss_final - lI) < 1e-10);
    assert_true(dmax < 1e-4);
    xf_lrot_problem_free(&p);
    free(X);
    free(W);
    free(Id);
    free(H);
    free(Q);
    free(R);
}

/* Outlier data: n = 64, three input channels 50x larger, W4A4. */
typedef struct outlier_problem {
    xf_lrot_problem p;
    float *X, *W1, *W2;
    int64_t n, N;
} outlier_problem;

static void outlier_init(outlier_problem *s, int64_t N)
{
    uint64_t st = 77;
    const int64_t n = 64;
    s->n = n;
    s->N = N;
    /* correlated channels (a random mixing) with planted outliers */
    float *Z = randn(N, n, 1.0f, &st), *C = randn(n, n, 1.0f / 8.0f, &st);
    s->X = xmalloc((size_t)(N * n) * sizeof *s->X);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)N, (int)n, (int)n, 1.0f, Z, (int)n,
                C, (int)n, 0.0f, s->X, (int)n);
    for (int64_t i = 0; i < N; i++) {
        s->X[i * n + 3] *= 50.0f;
        s->X[i * n + 17] *= 50.0f;
        s->X[i * n + 40] *= 50.0f;
        for (int64_t j = 0; j < n; j++)
            s->X[i * n + j] += 0.5f * Z[i * n + j];
    }
    s->W1 = randn(96, n, 0.1f, &st);
    s->W2 = randn(64, n, 0.1f, &st);
    free(Z);
    free(C);
    xf_lrot_quant q = quant_w4a4();
    CHECK_OK(xf_lrot_problem_init(&s->p, n, XF_LROT_NORM_RELATIVE, err));
    CHECK_OK(xf_lrot_add_term(&s->p, "up", s->X, N, s->W1, 96, n, &q, 1.0, err));
    CHECK_OK(xf_lrot_add_term(&s->p, "gate", s->X, N, s->W2, 64, n, &q, 1.0, err));
}

static void outlier_free(outlier_problem *s)
{
    xf_lrot_problem_free(&s->p);
    free(s->X);
    free(s->W1);
    free(s->W2);
}

static int count_cb(void *user, int step, int steps, double loss, double eta)
{
    int *c = user;
    assert_int_equal(step, *c);
    assert_true(steps > 0 && isfinite(loss) && loss > 0.0 && eta > 0.0);
    (*c)++;
    return 0;
}

static void test_outliers_learned(void **state)
{
    (void)state;
    outlier_problem s;
    outlier_init(&s, 1024);
    const int64_t n = s.n;
    double *Id = xmalloc(sizeof(double) * (size_t)(n * n)), *R = xmalloc(sizeof(double) * (size_t)(n * n));
    identity(n, Id);
    uint64_t seed = 1;
    CHECK_OK(xf_hadamard_dense(n, &seed, R, err));
    double lI, lH;
    CHECK_OK(xf_lrot_loss(&s.p, Id, &lI, err));
    CHECK_OK(xf_lrot_loss(&s.p, R, &lH, err));
    xf_lrot_options o;
    xf_lrot_options_default(&o);
    o.batch_tokens = 256;
    int calls = 0;
    xf_lrot_report rep;
    CHECK_OK(xf_lrot_optimize(&s.p, &o, R, count_cb, &calls, &rep, err));
    print_message("W4A4 outliers: identity %.4f, hadamard %.4f, learned %.4f (%d steps, %d capped, "
                  "orth %.1e)\n", lI, lH, rep.loss_final, rep.steps_run, rep.steps_capped,
                  rep.orth_error);
    assert_int_equal(calls, 100);
    assert_int_equal(rep.steps_run, 100);
    assert_true(fabs(rep.loss_initial - lH) <= 1e-12 * lH);
    assert_true(lH < lI);
    assert_true(rep.loss_final < 0.9 * lH);
    assert_true(rep.orth_error < 1e-12);
    double chk;
    CHECK_OK(xf_lrot_loss(&s.p, R, &chk, err));
    assert_true(chk == rep.loss_final);
    free(Id);
    free(R);
    outlier_free(&s);
}

/* The Cayley step alone (no re-orthogonalisation) keeps R orthogonal. */
static void test_orthogonality(void **state)
{
    (void)state;
    outlier_problem s;
    outlier_init(&s, 512);
    const int64_t n = s.n;
    double *R = xmalloc(sizeof(double) * (size_t)(n * n));
    uint64_t seed = 2;
    CHECK_OK(xf_hadamard_dense(n, &seed, R, err));
    xf_lrot_options o;
    xf_lrot_options_default(&o);
    o.steps = 200;
    o.batch_tokens = 64;
    o.momentum = 0.9;
    o.cosine = false;
    o.orth_tol = 0.0; /* never re-orthogonalise */
    xf_lrot_report rep;
    CHECK_OK(xf_lrot_optimize(&s.p, &o, R, NULL, NULL, &rep, err));
    print_message("200 steps, no re-orthogonalisation: |R^T R - I|_max %.2e (max seen %.2e)\n",
                  rep.orth_error, rep.orth_drift_max);
    assert_int_equal(rep.reorthogonalized, 0);
    assert_true(rep.orth_error < 1e-10);
    assert_true(xf_lrot_orth_error(R, n) == rep.orth_error);
    /* a start 1e-8 off orthogonal is pulled back by Newton-Schulz */
    uint64_t st = 4;
    for (int64_t i = 0; i < n * n; i++)
        R[i] += 1e-9 * xf_test_rand_normal(&st);
    o.steps = 1;
    o.orth_tol = 1e-12;
    CHECK_OK(xf_lrot_optimize(&s.p, &o, R, NULL, NULL, &rep, err));
    print_message("perturbed start: |R^T R - I|_max %.2e after %d pass(es)\n", rep.orth_error,
                  rep.reorthogonalized);
    assert_int_equal(rep.reorthogonalized, 1);
    assert_true(rep.orth_error < 1e-13);
    free(R);
    outlier_free(&s);
}

static void test_determinism(void **state)
{
    (void)state;
    outlier_problem s;
    outlier_init(&s, 512);
    const int64_t n = s.n;
    double *R[3];
    xf_lrot_options o;
    xf_lrot_options_default(&o);
    o.steps = 15;
    o.batch_tokens = 100;
    o.momentum = 0.5;
    o.seed = 42;
    for (int r = 0; r < 3; r++) {
        R[r] = xmalloc(sizeof(double) * (size_t)(n * n));
        uint64_t seed = 5;
        CHECK_OK(xf_hadamard_dense(n, &seed, R[r], err));
        if (r == 2)
            o.seed = 43;
        CHECK_OK(xf_lrot_optimize(&s.p, &o, R[r], NULL, NULL, NULL, err));
    }
    assert_memory_equal(R[0], R[1], sizeof(double) * (size_t)(n * n));
    assert_memory_not_equal(R[0], R[2], sizeof(double) * (size_t)(n * n));
    for (int r = 0; r < 3; r++)
        free(R[r]);
    outlier_free(&s);
}

/* R2-style: one 16 x 16 rotation shared by the 4 heads of a 64-wide input. */
static void test_block_diagonal(void **state)
{
    (void)state;
    uint64_t st = 31;
    const int64_t hd = 16, heads = 4, N = 512, out = 64, w = hd * heads;
    float *X = randn(N, w, 1.0f, &st), *W = randn(out, w, 0.1f, &st);
    for (int64_t i = 0; i < N; i++)
        for (int64_t h = 0; h < heads; h++)
            X[i * w + h * hd + 2] *= 30.0f; /* the same outlier dim in every head */
    xf_lrot_quant q = quant_w4a4();
    q.act_group = hd;
    xf_lrot_problem p;
    CHECK_OK(xf_lrot_problem_init(&p, hd, XF_LROT_NORM_RELATIVE, err));
    CHECK_OK(xf_lrot_add_term(&p, "o_proj", X, N, W, out, w, &q, 1.0, err));
    double Id[256], R[256];
    identity(hd, Id);
    uint64_t seed = 8;
    CHECK_OK(xf_hadamard_dense(hd, &seed, R, err));
    double lI, lH;
    CHECK_OK(xf_lrot_loss(&p, Id, &lI, err));
    CHECK_OK(xf_lrot_loss(&p, R, &lH, err));
    xf_lrot_options o;
    xf_lrot_options_default(&o);
    o.lr = 5.0; /* this small problem's gradients are weaker than the outlier one's */
    xf_lrot_report rep;
    CHECK_OK(xf_lrot_optimize(&p, &o, R, NULL, NULL, &rep, err));
    print_message("block-diagonal (4 heads x 16): identity %.4f, hadamard %.4f, learned %.4f\n", lI,
                  lH, rep.loss_final);
    assert_true(lH < lI && rep.loss_final < 0.9 * lH);
    /* the same R applied as the explicit 64 x 64 block-diagonal matrix */
    xf_lrot_problem pf;
    CHECK_OK(xf_lrot_problem_init(&pf, w, XF_LROT_NORM_RELATIVE, err));
    CHECK_OK(xf_lrot_add_term(&pf, "o_proj", X, N, W, out, w, &q, 1.0, err));
    double *Rf = calloc((size_t)(w * w), sizeof *Rf);
    assert_non_null(Rf);
    for (int64_t h = 0; h < heads; h++)
        for (int64_t i = 0; i < hd; i++)
            for (int64_t j = 0; j < hd; j++)
                Rf[(h * hd + i) * w + h * hd + j] = R[i * hd + j];
    double lf;
    CHECK_OK(xf_lrot_loss(&pf, Rf, &lf, err));
    assert_true(fabs(lf - rep.loss_final) < 1e-6 * lf);
    free(Rf);
    xf_lrot_problem_free(&pf);
    xf_lrot_problem_free(&p);
    free(X);
    free(W);
}

static void expect_fail(int rc, const xf_error *err, const char *needle);

/* Listed rows = a problem holding only those rows (MEAN: the same c_t);
 * a batch at least N = all rows, bit for bit. */
static void test_rows_subset(void **state)
{
    (void)state;
    uint64_t st = 13;
    const int64_t n = 16, N = 300, out = 20;
    float *X = randn(N, n, 1.0f, &st), *W = randn(out, n, 0.3f, &st);
    static const int64_t pick[] = {3, 10, 11, 200, 299};
    const int64_t m = 5;
    float *Xs = xmalloc(sizeof(float) * (size_t)(m * n));
    for (int64_t i = 0; i < m; i++)
        memcpy(Xs + i * n, X + pick[i] * n, sizeof(float) * (size_t)n);
    xf_lrot_quant q = quant_w4a4();
    q.act_group = 8;
    xf_lrot_problem p, ps;
    CHECK_OK(xf_lrot_problem_init(&p, n, XF_LROT_NORM_MEAN, err));
    CHECK_OK(xf_lrot_add_term(&p, "all", X, N, W, out, n, &q, 1.0, err));
    CHECK_OK(xf_lrot_problem_init(&ps, n, XF_LROT_NORM_MEAN, err));
    CHECK_OK(xf_lrot_add_term(&ps, "some", Xs, m, W, out, n, &q, 1.0, err));
    double R[256], G1[256], G2[256], l1, l2;
    uint64_t seed = 4;
    CHECK_OK(xf_hadamard_dense(n, &seed, R, err));
    const int64_t *rows[1] = {pick};
    const int64_t nrows[1] = {m};
    CHECK_OK(xf_lrot_eval(&p, R, rows, nrows, XF_LROT_STE_SCALE, NULL, &l1, NULL, G1, err));
    CHECK_OK(xf_lrot_eval(&ps, R, NULL, NULL, XF_LROT_STE_SCALE, NULL, &l2, NULL, G2, err));
    assert_true(l1 == l2);
    assert_memory_equal(G1, G2, sizeof G1);
    xf_error e = {{0}};
    const int64_t bad[1] = {300};
    const int64_t *brows[1] = {bad};
    const int64_t one[1] = {1};
    expect_fail(xf_lrot_eval(&p, R, brows, one, 0, NULL, &l1, NULL, NULL, &e), &e,
                "all: row 300 outside [0, 300)");
    /* batch >= N runs the full-batch path */
    double Ra[256], Rb[256];
    memcpy(Ra, R, sizeof R);
    memcpy(Rb, R, sizeof R);
    xf_lrot_options o;
    xf_lrot_options_default(&o);
    o.steps = 5;
    CHECK_OK(xf_lrot_optimize(&p, &o, Ra, NULL, NULL, NULL, err));
    o.batch_tokens = N;
    CHECK_OK(xf_lrot_optimize(&p, &o, Rb, NULL, NULL, NULL, err));
    assert_memory_equal(Ra, Rb, sizeof Ra);
    /* the scheme helper: an input outside act_inputs keeps activations off */
    xf_act_scheme sc;
    xf_act_scheme_quarot(&sc, 4, 0);
    sc.act_clip_input[XF_IN_DOWN] = 0.75;
    sc.act_inputs &= ~(1u << XF_IN_O);
    xf_lrot_quant_from_scheme(&q, &sc, XF_IN_DOWN, 3, false, 128);
    assert_int_equal(q.act_bits, 4);
    assert_true(q.act_sym && q.act_clip == 0.75f && q.w_bits == 3 && !q.w_sym && q.w_group == 128);
    xf_lrot_quant_from_scheme(&q, &sc, XF_IN_O, 4, true, 0);
    assert_int_equal(q.act_bits, 0);
    xf_lrot_problem_free(&p);
    xf_lrot_problem_free(&ps);
    free(X);
    free(Xs);
    free(W);
}

static int stop_cb(void *user, int step, int steps, double loss, double eta)
{
    (void)steps, (void)loss, (void)eta;
    return step == *(int *)user;
}

static void test_callback_stop(void **state)
{
    (void)state;
    outlier_problem s;
    outlier_init(&s, 256);
    double *R = xmalloc(sizeof(double) * (size_t)(s.n * s.n));
    uint64_t seed = 1;
    CHECK_OK(xf_hadamard_dense(s.n, &seed, R, err));
    xf_lrot_options o;
    xf_lrot_options_default(&o);
    int stop_at = 4;
    xf_lrot_report rep;
    CHECK_OK(xf_lrot_optimize(&s.p, &o, R, stop_cb, &stop_at, &rep, err));
    assert_int_equal(rep.steps_run, 5);
    assert_true(rep.orth_error < 1e-12);
    /* steps 0: both losses on all rows, R untouched */
    double R0[64 * 64];
    memcpy(R0, R, sizeof R0);
    o.steps = 0;
    CHECK_OK(xf_lrot_optimize(&s.p, &o, R, NULL, NULL, &rep, err));
    assert_int_equal(rep.steps_run, 0);
    assert_true(rep.loss_initial == rep.loss_final && rep.loss_initial > 0.0);
    assert_memory_equal(R, R0, sizeof R0);
    free(R);
    outlier_free(&s);
}

static void expect_fail(int rc, const xf_error *err, const char *needle)
{
    assert_int_equal(rc, -1);
    if (!strstr(err->msg, needle))
        fail_msg("message \"%s\" lacks \"%s\"", err->msg, needle);
    assert_null(strchr(err->msg, '\n'));
}

static void test_errors(void **state)
{
    (void)state;
    uint64_t st = 1;
    float *X = randn(8, 16, 1.0f, &st), *W = randn(4, 16, 1.0f, &st);
    xf_lrot_problem p;
    xf_error e = {{0}};
    xf_lrot_quant q = quant_w4a4();
    expect_fail(xf_lrot_problem_init(&p, 0, XF_LROT_NORM_MEAN, &e), &e, "size 0");
    CHECK_OK(xf_lrot_problem_init(&p, 16, XF_LROT_NORM_RELATIVE, err));
    expect_fail(xf_lrot_add_term(&p, "q", X, 8, W, 4, 12, &q, 1.0, &e), &e,
                "q: width 12 is not a multiple of the rotation size 16");
    q.act_bits = 17;
    expect_fail(xf_lrot_add_term(&p, "k", X, 8, W, 4, 16, &q, 1.0, &e), &e, "k: activation bits 17");
    q = quant_w4a4();
    q.act_group = 5;
    expect_fail(xf_lrot_add_term(&p, "v", X, 8, W, 4, 16, &q, 1.0, &e), &e, "does not divide");
    q = quant_w4a4();
    q.w_bits = 9;
    expect_fail(xf_lrot_add_term(&p, "v", X, 8, W, 4, 16, &q, 1.0, &e), &e, "v");
    q = quant_w4a4();
    expect_fail(xf_lrot_add_term(&p, "o", X, 8, W, 4, 16, &q, -1.0, &e), &e, "o: weight");
    X[17] = NAN;
    expect_fail(xf_lrot_add_term(&p, "up", X, 8, W, 4, 16, &q, 1.0, &e), &e,
                "up: non-finite captured activation");
    X[17] = 0.0f;
    float Wz[64] = {0};
    expect_fail(xf_lrot_add_term(&p, "zero", X, 8, Wz, 4, 16, &q, 1.0, &e), &e, "all zero");
    double R[256];
    identity(16, R);
    xf_lrot_options o;
    xf_lrot_options_default(&o);
    expect_fail(xf_lrot_optimize(&p, &o, R, NULL, NULL, NULL, &e), &e, "no terms");
    CHECK_OK(xf_lrot_add_term(&p, "down", X, 8, W, 4, 16, &q, 1.0, err));
    assert_int_equal(p.n_terms, 1);
    o.lr = 0.0;
    expect_fail(xf_lrot_optimize(&p, &o, R, NULL, NULL, NULL, &e), &e, "learning rate");
    xf_lrot_options_default(&o);
    o.momentum = 1.0;
    expect_fail(xf_lrot_optimize(&p, &o, R, NULL, NULL, NULL, &e), &e, "momentum");
    xf_lrot_options_default(&o);
    R[1] = 0.01;
    expect_fail(xf_lrot_optimize(&p, &o, R, NULL, NULL, NULL, &e), &e, "not orthogonal");
    R[1] = NAN;
    double loss;
    expect_fail(xf_lrot_loss(&p, R, &loss, &e), &e, "non-finite rotation");
    xf_lrot_norm nm;
    assert_int_equal(xf_lrot_norm_from_name("mean", &nm), 0);
    assert_int_equal(nm, XF_LROT_NORM_MEAN);
    assert_string_equal(xf_lrot_norm_name(XF_LROT_NORM_RELATIVE), "relative");
    assert_int_equal(xf_lrot_norm_from_name("rms", &nm), -1);
    xf_lrot_problem_free(&p);
    free(X);
    free(W);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradient_smooth),
        cmocka_unit_test(test_gradient_ste),
        cmocka_unit_test(test_rotation_invariance),
        cmocka_unit_test(test_outliers_learned),
        cmocka_unit_test(test_orthogonality),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_block_diagonal),
        cmocka_unit_test(test_rows_subset),
        cmocka_unit_test(test_callback_stop),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
