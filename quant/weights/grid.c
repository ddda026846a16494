/* Uniform grids (see grid.h): range -> scale/zero, per-row fitting and the
 * reference MSE clip search. */
#include "quant/weights/grid.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/half.h"

/* The MSE search's filter computes every |x - dq(x)| in SIMD clones with
 * FMA available (AVX-512) and relies on getting the bits of the scalar
 * code: no contraction of a * b + c into an FMA. gcc's -std=c11 keeps it
 * off; clang contracts by default. */
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

int xf_grid_config_check(const xf_grid_config *c, const char *what, xf_error *err)
{
    if (c->bits < XF_GRID_MIN_BITS || c->bits > XF_GRID_MAX_BITS)
        return xf_fail(err, "%s: bit width %d outside [%d, %d]", what, c->bits,
                       XF_GRID_MIN_BITS, XF_GRID_MAX_BITS);
    if (c->clip != XF_CLIP_NONE && c->clip != XF_CLIP_MSE)
        return xf_fail(err, "%s: unknown clip mode %d", what, (int)c->clip);
    return 0;
}

const char *xf_clip_name(xf_clip c)
{
    switch (c) {
    case XF_CLIP_NONE: return "none";
    case XF_CLIP_MSE: return "mse";
    default: return NULL;
    }
}

int xf_clip_from_name(const char *name, xf_clip *out)
{
    if (name && strcmp(name, "none") == 0) {
        *out = XF_CLIP_NONE;
        return 0;
    }
    if (name && strcmp(name, "mse") == 0) {
        *out = XF_CLIP_MSE;
        return 0;
    }
    return -1;
}

float xf_grid_round_scale(float s)
{
    uint32_t u;
    memcpy(&u, &s, sizeof u);
    const uint32_t ex = u >> 23; /* sign bit 0: positive */
    if (ex >= 113 && ex <= 142) {
        /* a positive fp16 normal after rounding (or 2^16): round the mantissa
         * to 10 bits, to nearest even, in place (a carry moves into the
         * exponent, as in xf_f32_to_f16); the same value as the conversion
         * below, without two calls (the MSE search makes 80 grids a group) */
        u = (u + 0x0fffu + ((u >> 13) & 1u)) & 0xffffe000u;
        float r;
        memcpy(&r, &u, sizeof r);
        return r <= 65504.0f ? r : 65504.0f;
    }
    float r = xf_f16_to_f32(xf_f32_to_f16(s));
    if (r == 0.0f)
        return 5.9604644775390625e-08f; /* 2^-24, smallest fp16 subnormal */
    if (!(r <= 65504.0f))               /* Inf (or NaN from bad input) */
        return 65504.0f;
    return r;
}

xf_grid xf_grid_from_range(float xmin, float xmax, int bits, bool sym)
{
    const int maxq = (1 << bits) - 1;
    if (sym) {
        /* The reference keeps min = 0 for an all-non-negative row (so half
         * the codes are unusable and the top of the range is clipped); the
         * range here is always symmetric, as the grid's name says. */
        float m = fmaxf(-xmin, xmax);
        xmin = -m;
        xmax = m;
    }
    if (xmin == 0.0f && xmax == 0.0f) {
        xmin = -1.0f;
        xmax = 1.0f;
    }
    xf_grid g;
    g.maxq = (uint8_t)maxq;
    g.scale = xf_grid_round_scale((xmax - xmin) / (float)maxq);
    if (sym) {
        g.zero = (uint8_t)((maxq + 1) / 2);
    } else {
        float z = rintf(-xmin / g.scale);
        if (!(z >= 0.0f))
            z = 0.0f;
        if (z > (float)maxq)
            z = (float)maxq;
        g.zero = (uint8_t)z;
    }
    return g;
}

double xf_grid_error(const xf_grid *g, const float *x, int64_t n, float norm)
{
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) {
        float d = fabsf(x[i] - xf_grid_dequantize(g, xf_grid_quantize(g, x[i])));
        s += (double)powf(d, norm);
    }
    return s;
}

/* Like xf_grid_error but stops once the sum reaches `bound` (the sum only
 * grows, so the candidate cannot win any more); returns >= bound then.
 * Checked every 8 terms: the sum is formed in the same order whatever the
 * check interval, so the interval changes no choice, only how early a
 * losing candidate stops. */
static double error_bounded(const xf_grid *g, const float *x, int64_t n, double bound)
{
    double s = 0.0;
    for (int64_t i0 = 0; i0 < n; i0 += 8) {
        int64_t i1 = i0 + 8 < n ? i0 + 8 : n;
        for (int64_t i = i0; i < i1; i++) {
            float d = fabsf(x[i] - xf_grid_dequantize(g, xf_grid_quantize(g, x[i])));
            s += (double)powf(d, XF_GRID_MSE_NORM);
        }
        if (s >= bound)
            return s;
    }
    return s;
}

/* ---- The MSE clip search: a fast approximate filter, the exact choice ----
 *
 * The reference's choice is the first candidate with the strictly lowest
 * E_c = sum_i (double)powf(d_i, 2.4f) (summed in order, d_i = |x - dq(x)|),
 * which costs one powf per weight and candidate (74x a plain RTN run). Here
 * every candidate first gets an approximate sum A_c with a proven relative
 * error bound against E_c: the same d_i (the same fp32 operations), d^2.4
 * from a polynomial (xf_grid_pow24_approx: relative error <= XF_GRID_POW24_REL against
 * powf, checked by tests/test_grid.c), partial sums in fp32 lanes of 2
 * terms, then fp64. That gives bounds lb_c <= E_c <= ub_c; a candidate with
 * lb_c > min ub cannot hold the minimum. If one candidate is left it is the
 * unique minimizer, i.e. the reference's choice; otherwise (near ties, within
 * ~1e-5) the candidates left are summed exactly as the reference does, in
 * its order, so ties break the same way. Either way the chosen grid is the
 * reference's, bit for bit; only the work differs. A candidate's approximate
 * sum also stops early once its lower bound exceeds the best upper bound. */

/* d^2.4f for XF_GRID_POW24_MIN <= d < 2^20 (other d give garbage, masked by
 * the caller): d = 2^e m, m in [1, 2); e + 150 = 5a + b (b in 0..4) makes
 * 2.4 e = 2e + 2a - 60 + 0.4 b, so d^2.4 = 2^(2e + 2a - 60) * 2^(0.4 b) *
 * m^2.4, with m^2.4f = m^2 * m^(0.4 + eps) and that a degree-7 polynomial
 * in m - 1.5 (Chebyshev interpolation at 8 nodes, float coefficients).
 * Integer and select operations only, so loops over it vectorize. */
static inline __attribute__((always_inline)) float pow24_approx(float d)
{
    uint32_t u;
    memcpy(&u, &d, sizeof u);
    const int32_t e = (int32_t)(u >> 23) - 127;
    const uint32_t mu = (u & 0x007fffffu) | 0x3f800000u;
    float m;
    memcpy(&m, &mu, sizeof m);
    const float t = m - 1.5f;
    /* Estrin's scheme: a short dependency chain, so the vector loop overlaps */
    const float t2 = t * t, t4 = t2 * t2;
    const float p01 = 1.176079035e+00f + 3.136211336e-01f * t;
    const float p23 = -6.272742897e-02f + 2.230375819e-02f * t;
    const float p45 = -9.600963444e-03f + 4.603037145e-03f * t;
    const float p67 = -2.761591924e-03f + 1.485293615e-03f * t;
    const float p = (p01 + p23 * t2) + (p45 + p67 * t2) * t4;
    const float m24 = m * m * p;
    const int32_t ep = e + 150;            /* >= 23 */
    const int32_t a = (ep * 52429) >> 18;  /* ep / 5, exact for 0 <= ep < 2^14 */
    const int32_t b = ep - 5 * a;
    /* 2^(0.4 b) for b = 0..4: the interpolating quartic (within 4e-8; no
     * table or selects, which kept the loop from vectorizing) */
    const float fb = (float)b;
    float cb = 4.342253960e-04f;
    cb = cb * fb + 2.830824815e-03f;
    cb = cb * fb + 3.951060027e-02f;
    cb = cb * fb + 2.767322659e-01f;
    cb = cb * fb + 1.0f;
    const uint32_t sb = (uint32_t)(2 * e + 2 * a - 60 + 127) << 23;
    float sc;
    memcpy(&sc, &sb, sizeof sc);
    /* 2.4f is 2.4 + eps (eps = 2^-23 * 0.8): powf(d, 2.4f) = d^2.4 d^eps, and
     * 2^(eps e) = 1 + eps ln2 e to 1e-11 (m^eps is in the polynomial) */
    const float corr = 1.0f + (float)e * 6.610366636e-08f;
    return sc * (cb * m24 * corr);
}

float xf_grid_pow24_approx(float d) { return pow24_approx(d); }

/* |x - dq(q(x))| with the operations of xf_grid_quantize / dequantize, in
 * fp32 only (the code is an integer-valued float: the same value). */
static inline float grid_abs_err(float scale, float zero, float maxq, float x)
{
    const float v = x / scale, a = fabsf(v);
    const float r = a < 8388608.0f ? (a + 8388608.0f) - 8388608.0f : a;
    float q = copysignf(r, v) + zero;
    q = q >= 0.0f ? q : 0.0f;
    q = q > maxq ? maxq : q;
    return fabsf(x - scale * (q - zero));
}

/* The approximate sum A of one candidate, in blocks of 32 terms (16 fp32
 * lanes of 2, then fp64; the last block padded with zeros, whose terms are
 * 0: q(0) is the zero code); returns early (a partial sum > stop) once it
 * exceeds stop (checked per block: short blocks let a losing candidate
 * stop after a quarter of a 128-wide group). */
enum { XF_LANES = 16, XF_BLOCK = 32 };
static inline __attribute__((always_inline)) void
approx_block(float scale, float zero, float maxq, const float *x, float *lane)
{
    for (int j = 0; j < XF_BLOCK / XF_LANES; j++)
        for (int l = 0; l < XF_LANES; l++) {
            const float d = grid_abs_err(scale, zero, maxq, x[XF_LANES * j + l]);
            const float t = pow24_approx(d);
            lane[l] += d >= XF_GRID_POW24_MIN ? t : 0.0f;
        }
}

static inline __attribute__((always_inline)) double
approx_error_body(const xf_grid *g, const float *x, int64_t n, double stop)
{
    const float scale = g->scale, zero = (float)g->zero, maxq = (float)g->maxq;
    double s = 0.0;
    float tail[XF_BLOCK];
    for (int64_t i0 = 0; i0 < n; i0 += XF_BLOCK) {
        const float *xb = x + i0;
        if (i0 + XF_BLOCK > n) {
            memset(tail, 0, sizeof tail);
            memcpy(tail, x + i0, (size_t)(n - i0) * sizeof *tail);
            xb = tail;
        }
        float lane[XF_LANES] = {0};
        approx_block(scale, zero, maxq, xb, lane);
        double h[XF_LANES / 2]; /* a pairwise tree: a short chain */
        for (int l = 0; l < XF_LANES / 2; l++)
            h[l] = (double)lane[l] + (double)lane[l + XF_LANES / 2];
        for (int w = XF_LANES / 4; w >= 1; w /= 2)
            for (int l = 0; l < w; l++)
                h[l] += h[l + w];
        s += h[0];
        if (s > stop)
            return s;
    }
    return s;
}

static double approx_error_base(const xf_grid *g, const float *x, int64_t n, double stop)
{
    return approx_error_body(g, x, n, stop);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define XF_GRID_SIMD 1
/* The same code compiled for AVX2 (8 lanes) and AVX-512 (16), chosen at run
 * time. No FMA: the d_i must round exactly as the reference's scalar code
 * (and the build's -std=c11 keeps contraction off anyway). */
__attribute__((target("avx2"))) static double approx_error_avx2(const xf_grid *g,
                                                                const float *x, int64_t n,
                                                                double stop)
{
    return approx_error_body(g, x, n, stop);
}
__attribute__((target("avx512f"))) static double approx_error_avx512(const xf_grid *g,
                                                                    const float *x, int64_t n,
                                                                    double stop)
{
    return approx_error_body(g, x, n, stop);
}
#endif

static double approx_error(const xf_grid *g, const float *x, int64_t n, double stop)
{
#ifdef XF_GRID_SIMD
    if (__builtin_cpu_supports("avx512f"))
        return approx_error_avx512(g, x, n, stop);
    if (__builtin_cpu_supports("avx2"))
        return approx_error_avx2(g, x, n, stop);
#endif
    return approx_error_base(g, x, n, stop);
}

/* The reference's loop over the candidates with keep[i] set, in order. */
static xf_grid exact_search(const xf_grid *cand, const uint8_t *keep, const float *x, int64_t n)
{
    xf_grid best = cand[0];
    double best_err = DBL_MAX;
    for (int i = 0; i < XF_GRID_MSE_STEPS; i++) {
        if (!keep[i])
            continue;
        double e = error_bounded(&cand[i], x, n, best_err);
        if (e < best_err) {
            best_err = e;
            best = cand[i];
        }
    }
    return best;
}

static xf_grid mse_search(const xf_grid_config *c, const float *x, int64_t n, float xmin,
                          float xmax)
{
    xf_grid cand[XF_GRID_MSE_STEPS];
    uint8_t keep[XF_GRID_MSE_STEPS];
    for (int i = 0; i < XF_GRID_MSE_STEPS; i++) {
        float p = (float)(1.0 - (double)i / XF_GRID_MSE_GRID);
        cand[i] = xf_grid_from_range(p * xmin, p * xmax, c->bits, c->sym);
        keep[i] = 1;
    }
    const float amax = fmaxf(-xmin, xmax);
    if (!(amax < XF_GRID_POW24_MAX))
        return exact_search(cand, keep, x, n);
    /* The approximate sums see the weights of magnitude >= amax / 2 first
     * (the ones the clipping candidates clip), so those exceed the bound
     * after their first block (the sums' order does not enter the bounds). */
    float local[1024], *xs = n <= 1024 ? local : malloc((size_t)n * sizeof *xs);
    if (!xs)
        return exact_search(cand, keep, x, n);
    int64_t front = 0;
    for (int64_t j = 0; j < n; j++)
        if (fabsf(x[j]) >= 0.5f * amax)
            xs[front++] = x[j];
    for (int64_t j = 0; j < n; j++)
        if (!(fabsf(x[j]) >= 0.5f * amax))
            xs[front++] = x[j];
    /* E >= (A (1 - gam) - tau)(1 - del)(1 - gex), E <= (A (1 + 2 gam) + tau)
     * (1 + 2 del)(1 + gex): gam the fp32 lane sums (one addition, 2^-24)
     * and the fp64 ones, tau the terms counted as 0, del the per-term bound,
     * gex the reference's own fp64 summation (n 2^-53). Every factor is
     * rounded outward by a wide margin (fp64 products here: ~1e-16). */
    const double nd = (double)n;
    const double gam = 0x1p-20 + nd * 0x1p-50, gex = nd * 0x1p-50, del = XF_GRID_POW24_REL;
    const double tau = nd * 0x1p-96;
    const double lo = (1.0 - gam) * (1.0 - del) * (1.0 - gex);
    const double hi = (1.0 + 2.0 * gam) * (1.0 + 2.0 * del) * (1.0 + gex);
    /* lb = (A (1 - gam) - tau) lo / (1 - gam) = A lo - tl, ub = A hi + th;
     * a candidate is out once A > stop = (ub_min + tl) / lo (rounded up):
     * multiplications only in the loop */
    const double tl = tau * lo / (1.0 - gam), th = tau * hi / (1.0 + 2.0 * gam);
    const double inv_lo = 1.0 / lo * (1.0 + 1e-12);
    /* The order changes no choice (only bounds are compared), only how much
     * work the early exits save: a coarse pass over every 8th candidate
     * finds a good upper bound early, then the others go outward from the
     * best coarse one, so most stop after a few blocks. */
    int order[XF_GRID_MSE_STEPS], no = 0, coarse = 0;
    double coarse_ub = INFINITY;
    double lb[XF_GRID_MSE_STEPS], ub_min = INFINITY;
    for (int i = 0; i < XF_GRID_MSE_STEPS; i += 8)
        order[no++] = i;
    for (int k = 0; k < XF_GRID_MSE_STEPS; k++) {
        if (k == no) { /* the coarse pass is done: the rest, outward from its best */
            for (int dist = 1; dist < XF_GRID_MSE_STEPS; dist++)
                for (int sgn = -1; sgn <= 1; sgn += 2) {
                    const int i = coarse + sgn * dist;
                    if (i >= 0 && i < XF_GRID_MSE_STEPS && i % 8 != 0)
                        order[no++] = i;
                }
        }
        const int i = order[k];
        const double stop = (ub_min + tl) * inv_lo; /* INFINITY while ub_min is */
        const double A = approx_error(&cand[i], xs, n, stop);
        /* (a candidate whose lb rounds to <= ub_min after an early stop is
         * only summed exactly below: never a wrong choice) */
        lb[i] = A * lo - tl;
        /* a partial A (stopped early) has lb > ub_min, so its ub (not an
         * upper bound then) is > ub_min too and changes nothing */
        const double ub = A * hi + th;
        if (ub < ub_min)
            ub_min = ub;
        if (i % 8 == 0 && ub < coarse_ub) {
            coarse_ub = ub;
            coarse = i;
        }
    }
    if (xs != local)
        free(xs);
    int left = 0, last = 0;
    for (int i = 0; i < XF_GRID_MSE_STEPS; i++) {
        keep[i] = lb[i] <= ub_min;
        left += keep[i];
        last = keep[i] ? i : last;
    }
    return left == 1 ? cand[last] : exact_search(cand, keep, x, n);
}

xf_grid xf_grid_fit(const xf_grid_config *c, const float *x, int64_t n)
{
    /* the range always includes 0; plain compares (inputs are finite) in 8
     * lanes so the loop vectorizes: the min and max of finite values do not
     * depend on the order, and a -0.0 never replaces the initial +0.0 */
    float mn[8] = {0}, mx[8] = {0};
    int64_t i0 = 0;
    for (; i0 + 8 <= n; i0 += 8)
        for (int k = 0; k < 8; k++) {
            mn[k] = x[i0 + k] < mn[k] ? x[i0 + k] : mn[k];
            mx[k] = x[i0 + k] > mx[k] ? x[i0 + k] : mx[k];
        }
    float xmin = 0.0f, xmax = 0.0f;
    for (int k = 0; k < 8; k++) {
        xmin = mn[k] < xmin ? mn[k] : xmin;
        xmax = mx[k] > xmax ? mx[k] : xmax;
    }
    for (; i0 < n; i0++) {
        xmin = x[i0] < xmin ? x[i0] : xmin;
        xmax = x[i0] > xmax ? x[i0] : xmax;
    }
    if (c->sym) { /* symmetric before the shrink, as the reference */
        float m = fmaxf(-xmin, xmax);
        xmin = -m;
        xmax = m;
    }
    if (xmin == 0.0f && xmax == 0.0f) {
        xmin = -1.0f;
        xmax = 1.0f;
    }
    if (c->clip != XF_CLIP_MSE)
        return xf_grid_from_range(xmin, xmax, c->bits, c->sym);
    return mse_search(c, x, n, xmin, xmax);
}

void xf_grid_fit_rows(const xf_grid_config *c, const float *x, int64_t rows, int64_t n,
                      int64_t ld, xf_grid *out)
{
#pragma omp parallel for schedule(dynamic, 16)
    for (int64_t r = 0; r < rows; r++)
        out[r] = xf_grid_fit(c, x + r * ld, n);
}
