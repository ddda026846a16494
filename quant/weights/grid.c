/* Uniform grids (see grid.h): range -> scale/zero, per-row fitting and the
 * reference MSE clip search. */
#include "quant/weights/grid.h"

#include <float.h>
#include <string.h>

#include "core/half.h"

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
    xf_grid best = xf_grid_from_range(xmin, xmax, c->bits, c->sym);
    if (c->clip != XF_CLIP_MSE)
        return best;
    double best_err = DBL_MAX;
    for (int i = 0; i < XF_GRID_MSE_STEPS; i++) {
        float p = (float)(1.0 - (double)i / XF_GRID_MSE_GRID);
        xf_grid g = xf_grid_from_range(p * xmin, p * xmax, c->bits, c->sym);
        double e = error_bounded(&g, x, n, best_err);
        if (e < best_err) {
            best_err = e;
            best = g;
        }
    }
    return best;
}

void xf_grid_fit_rows(const xf_grid_config *c, const float *x, int64_t rows, int64_t n,
                      int64_t ld, xf_grid *out)
{
#pragma omp parallel for schedule(dynamic, 16)
    for (int64_t r = 0; r < rows; r++)
        out[r] = xf_grid_fit(c, x + r * ld, n);
}
