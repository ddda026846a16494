/* GGML block grids (quant/weights/ggml_grid.h): traits, fits, code placement.
 *
 * Fitting a block has two levels, both minimising the importance-weighted
 * squared error sum_j imp_j (x_j - value(code_j))^2 with round-to-nearest
 * codes:
 * 1. each sub-block gets a real-valued scale (and min): a sweep of
 *    candidate scales around the range-setting one, each refined by the
 *    weighted least-squares scale (and offset) for its codes, the best kept
 *    (the idea of llama.cpp's make_qkx / make_qx searches, written anew);
 * 2. the stored integers: the super-block d (and dmin) in fp16 from the
 *    largest sub-block scale (a few candidates around it), and each
 *    sub-block's integer scale / min chosen among its two nearest integers
 *    by the exact error of the resulting grid; the 32-element types try the
 *    neighbouring fp16 values of d (and m) the same way.
 * Every candidate is scored on the values ggml will compute, so the choice
 * is made on the grid as stored. */
#include "quant/weights/ggml_grid.h"

#include <math.h>
#include <string.h>

#include "core/half.h"

#define H2F(h) xf_f16_to_f32(h)

static const xf_ggml_grid_traits grid_traits[] = {
    {XF_GGML_Q4_0, 32, 32, 16, 8, NULL, XF_GGML_FORM_SCALE, 0, true},
    {XF_GGML_Q4_1, 32, 32, 16, 0, NULL, XF_GGML_FORM_PLUS_MIN, 0, false},
    {XF_GGML_Q5_0, 32, 32, 32, 16, NULL, XF_GGML_FORM_SCALE, 0, true},
    {XF_GGML_Q5_1, 32, 32, 32, 0, NULL, XF_GGML_FORM_PLUS_MIN, 0, false},
    {XF_GGML_Q8_0, 32, 32, 256, 128, NULL, XF_GGML_FORM_SCALE, 0, true},
    {XF_GGML_IQ4_NL, 32, 32, 16, 0, xf_ggml_iq4nl_levels, XF_GGML_FORM_SCALE, 0, true},
    {XF_GGML_Q2_K, 256, 16, 4, 0, NULL, XF_GGML_FORM_MINUS_MIN, 4, false},
    {XF_GGML_Q3_K, 256, 16, 8, 4, NULL, XF_GGML_FORM_SCALE, 6, true},
    {XF_GGML_Q4_K, 256, 32, 16, 0, NULL, XF_GGML_FORM_MINUS_MIN, 6, false},
    {XF_GGML_Q5_K, 256, 32, 32, 0, NULL, XF_GGML_FORM_MINUS_MIN, 6, false},
    {XF_GGML_Q6_K, 256, 16, 64, 32, NULL, XF_GGML_FORM_SCALE, 8, true},
    {XF_GGML_IQ4_XS, 256, 32, 16, 0, xf_ggml_iq4nl_levels, XF_GGML_FORM_SCALE, 6, true},
};

const xf_ggml_grid_traits *xf_ggml_grid_traits_of(uint32_t type)
{
    for (size_t i = 0; i < sizeof grid_traits / sizeof grid_traits[0]; i++)
        if ((uint32_t)grid_traits[i].type == type)
            return &grid_traits[i];
    return NULL;
}

/* ---- codes ---------------------------------------------------------------- */

/* Nearest index in the sorted non-uniform levels. */
static int nearest_level(const int8_t *lv, int n, float v)
{
    if (!(v > (float)lv[0])) /* also NaN */
        return 0;
    if (v >= (float)lv[n - 1])
        return n - 1;
    int lo = 0, hi = n - 1; /* lv[lo] < v <= lv[hi] */
    while (hi - lo > 1) {
        const int mid = (lo + hi) / 2;
        if ((float)lv[mid] < v)
            lo = mid;
        else
            hi = mid;
    }
    return v - (float)lv[lo] <= (float)lv[hi] - v ? lo : hi;
}

int xf_ggml_grid_code(const xf_ggml_grid_traits *t, const xf_ggml_sub *s, float x, float *value)
{
    float y = x;
    if (t->form == XF_GGML_FORM_PLUS_MIN)
        y = x - s->ml;
    else if (t->form == XF_GGML_FORM_MINUS_MIN)
        y = x + s->ml;
    int code;
    if (s->dl == 0.0f) {
        /* every code has the same value; take the one of level 0 */
        code = t->levels ? nearest_level(t->levels, t->n_codes, 0.0f) : t->level_offset;
    } else if (t->levels) {
        code = nearest_level(t->levels, t->n_codes, y / s->dl);
    } else {
        float q = rintf(y / s->dl) + (float)t->level_offset;
        if (!(q >= 0.0f))
            q = 0.0f;
        if (q > (float)(t->n_codes - 1))
            q = (float)(t->n_codes - 1);
        code = (int)q;
    }
    if (value)
        *value = xf_ggml_grid_value(t, s, code);
    return code;
}

void xf_ggml_grid_put_code(const xf_ggml_grid_traits *t, void *blk, int j, int c)
{
    const unsigned u = (unsigned)c;
    switch (t->type) {
    case XF_GGML_Q4_0:
    case XF_GGML_IQ4_NL: {
        uint8_t *qs = ((xf_block_q4_0 *)blk)->qs;
        qs[j % 16] |= (uint8_t)((u & 15) << (4 * (j / 16)));
        break;
    }
    case XF_GGML_Q4_1: {
        uint8_t *qs = ((xf_block_q4_1 *)blk)->qs;
        qs[j % 16] |= (uint8_t)((u & 15) << (4 * (j / 16)));
        break;
    }
    case XF_GGML_Q5_0: {
        xf_block_q5_0 *b = blk;
        b->qs[j % 16] |= (uint8_t)((u & 15) << (4 * (j / 16)));
        b->qh[j / 8] |= (uint8_t)(((u >> 4) & 1) << (j % 8));
        break;
    }
    case XF_GGML_Q5_1: {
        xf_block_q5_1 *b = blk;
        b->qs[j % 16] |= (uint8_t)((u & 15) << (4 * (j / 16)));
        b->qh[j / 8] |= (uint8_t)(((u >> 4) & 1) << (j % 8));
        break;
    }
    case XF_GGML_Q8_0:
        ((xf_block_q8_0 *)blk)->qs[j] = (int8_t)(c - 128);
        break;
    case XF_GGML_Q2_K:
    case XF_GGML_Q3_K: {
        /* element 128n + 32k + 16h + l: bits 2k of qs[32n + 16h + l]; Q3_K's
         * third bit in hmask[16h + l] bit 4n + k */
        const int n = j / 128, k = (j % 128) / 32, h = (j % 32) / 16, l = j % 16;
        uint8_t *qs = t->type == XF_GGML_Q2_K ? ((xf_block_q2_k *)blk)->qs
                                              : ((xf_block_q3_k *)blk)->qs;
        qs[32 * n + 16 * h + l] |= (uint8_t)((u & 3) << (2 * k));
        if (t->type == XF_GGML_Q3_K)
            ((xf_block_q3_k *)blk)->hmask[16 * h + l] |= (uint8_t)(((u >> 2) & 1) << (4 * n + k));
        break;
    }
    case XF_GGML_Q4_K:
    case XF_GGML_Q5_K: {
        /* element 64p + 32h + l: nibble h of qs[32p + l]; Q5_K's fifth bit
         * is bit 2p + h of qh[l] */
        const int p = j / 64, h = (j % 64) / 32, l = j % 32;
        uint8_t *qs = t->type == XF_GGML_Q4_K ? ((xf_block_q4_k *)blk)->qs
                                              : ((xf_block_q5_k *)blk)->qs;
        qs[32 * p + l] |= (uint8_t)((u & 15) << (4 * h));
        if (t->type == XF_GGML_Q5_K)
            ((xf_block_q5_k *)blk)->qh[l] |= (uint8_t)(((u >> 4) & 1) << (2 * p + h));
        break;
    }
    case XF_GGML_Q6_K: {
        /* element 128 part + 32r + l: nibble r / 2 of ql[64 part + l + 32 (r % 2)],
         * high bits 2r of qh[32 part + l] */
        xf_block_q6_k *b = blk;
        const int part = j / 128, r = (j % 128) / 32, l = j % 32;
        b->ql[64 * part + l + 32 * (r % 2)] |= (uint8_t)((u & 15) << (4 * (r / 2)));
        b->qh[32 * part + l] |= (uint8_t)(((u >> 4) & 3) << (2 * r));
        break;
    }
    case XF_GGML_IQ4_XS: {
        uint8_t *qs = ((xf_block_iq4_xs *)blk)->qs + 16 * (j / 32);
        qs[j % 16] |= (uint8_t)((u & 15) << (4 * ((j % 32) / 16)));
        break;
    }
    default:
        break;
    }
}

/* ---- headers -------------------------------------------------------------- */

/* Integer sub-block scales and mins of a header, as stored (Q3_K and
 * IQ4_XS: the stored 6-bit value minus 32). */
typedef struct header {
    uint16_t d, dmin; /* dmin: the K mins' scale, or Q4_1/Q5_1's m */
    int sc[XF_GGML_GRID_MAX_SUB], mn[XF_GGML_GRID_MAX_SUB];
} header;

static void write_header(const xf_ggml_grid_traits *t, const header *h, void *blk)
{
    memset(blk, 0, xf_ggml_traits(t->type)->type_size);
    switch (t->type) {
    case XF_GGML_Q4_0: ((xf_block_q4_0 *)blk)->d = h->d; break;
    case XF_GGML_IQ4_NL: ((xf_block_iq4_nl *)blk)->d = h->d; break;
    case XF_GGML_Q5_0: ((xf_block_q5_0 *)blk)->d = h->d; break;
    case XF_GGML_Q8_0: ((xf_block_q8_0 *)blk)->d = h->d; break;
    case XF_GGML_Q4_1:
        ((xf_block_q4_1 *)blk)->d = h->d;
        ((xf_block_q4_1 *)blk)->m = h->dmin;
        break;
    case XF_GGML_Q5_1:
        ((xf_block_q5_1 *)blk)->d = h->d;
        ((xf_block_q5_1 *)blk)->m = h->dmin;
        break;
    case XF_GGML_Q2_K: {
        xf_block_q2_k *b = blk;
        b->d = h->d;
        b->dmin = h->dmin;
        for (int k = 0; k < 16; k++)
            b->scales[k] = (uint8_t)(h->sc[k] | h->mn[k] << 4);
        break;
    }
    case XF_GGML_Q3_K: {
        xf_block_q3_k *b = blk;
        b->d = h->d;
        for (int k = 0; k < 16; k++) { /* layout: formats/ggml_dequant.c q3_k_scales */
            const int u = h->sc[k] + 32;
            b->scales[k < 8 ? k : k - 8] |= (uint8_t)((u & 15) << (k < 8 ? 0 : 4));
            b->scales[8 + k % 4] |= (uint8_t)((u >> 4) << (2 * (k / 4)));
        }
        break;
    }
    case XF_GGML_Q4_K:
    case XF_GGML_Q5_K: {
        uint8_t *s;
        if (t->type == XF_GGML_Q4_K) {
            xf_block_q4_k *b = blk;
            b->d = h->d;
            b->dmin = h->dmin;
            s = b->scales;
        } else {
            xf_block_q5_k *b = blk;
            b->d = h->d;
            b->dmin = h->dmin;
            s = b->scales;
        }
        for (int k = 0; k < 8; k++) { /* layout: ggml_dequant.c scale_min_k4 */
            const int sc = h->sc[k], m = h->mn[k];
            if (k < 4) {
                s[k] |= (uint8_t)sc;
                s[k + 4] |= (uint8_t)m;
            } else {
                s[k + 4] = (uint8_t)((sc & 15) | (m & 15) << 4);
                s[k - 4] |= (uint8_t)((sc >> 4) << 6);
                s[k] |= (uint8_t)((m >> 4) << 6);
            }
        }
        break;
    }
    case XF_GGML_Q6_K: {
        xf_block_q6_k *b = blk;
        b->d = h->d;
        for (int k = 0; k < 16; k++)
            b->scales[k] = (int8_t)h->sc[k];
        break;
    }
    case XF_GGML_IQ4_XS: {
        xf_block_iq4_xs *b = blk;
        b->d = h->d;
        for (int k = 0; k < 8; k++) {
            const int u = h->sc[k] + 32;
            b->scales_l[k / 2] |= (uint8_t)((u & 15) << (4 * (k % 2)));
            b->scales_h |= (uint16_t)((u >> 4) << (2 * k));
        }
        break;
    }
    default:
        break;
    }
}

/* The decoded sub-blocks of header h: ggml_dequant.c's expressions. */
static void decode_header(const xf_ggml_grid_traits *t, const header *h, xf_ggml_sub *subs)
{
    const float d = H2F(h->d), dm = H2F(h->dmin);
    const int ns = t->block / t->sub;
    for (int k = 0; k < ns; k++) {
        if (t->scale_bits == 0) {
            subs[k].dl = d;
            subs[k].ml = t->form == XF_GGML_FORM_PLUS_MIN ? dm : 0.0f;
        } else {
            subs[k].dl = d * (float)h->sc[k];
            subs[k].ml = t->form == XF_GGML_FORM_MINUS_MIN ? dm * (float)h->mn[k] : 0.0f;
        }
    }
}

/* The header of a written block (inverse of write_header). */
static void read_header(const xf_ggml_grid_traits *t, const void *blk, header *h)
{
    memset(h, 0, sizeof *h);
    switch (t->type) {
    case XF_GGML_Q4_0: h->d = ((const xf_block_q4_0 *)blk)->d; break;
    case XF_GGML_IQ4_NL: h->d = ((const xf_block_iq4_nl *)blk)->d; break;
    case XF_GGML_Q5_0: h->d = ((const xf_block_q5_0 *)blk)->d; break;
    case XF_GGML_Q8_0: h->d = ((const xf_block_q8_0 *)blk)->d; break;
    case XF_GGML_Q4_1:
        h->d = ((const xf_block_q4_1 *)blk)->d;
        h->dmin = ((const xf_block_q4_1 *)blk)->m;
        break;
    case XF_GGML_Q5_1:
        h->d = ((const xf_block_q5_1 *)blk)->d;
        h->dmin = ((const xf_block_q5_1 *)blk)->m;
        break;
    case XF_GGML_Q2_K: {
        const xf_block_q2_k *b = blk;
        h->d = b->d;
        h->dmin = b->dmin;
        for (int k = 0; k < 16; k++) {
            h->sc[k] = b->scales[k] & 15;
            h->mn[k] = b->scales[k] >> 4;
        }
        break;
    }
    case XF_GGML_Q3_K: {
        const xf_block_q3_k *b = blk;
        h->d = b->d;
        for (int k = 0; k < 16; k++) {
            const int lo = k < 8 ? b->scales[k] & 15 : b->scales[k - 8] >> 4;
            const int hi = (b->scales[8 + k % 4] >> (2 * (k / 4))) & 3;
            h->sc[k] = (lo | hi << 4) - 32;
        }
        break;
    }
    case XF_GGML_Q4_K:
    case XF_GGML_Q5_K: {
        const uint8_t *s;
        if (t->type == XF_GGML_Q4_K) {
            h->d = ((const xf_block_q4_k *)blk)->d;
            h->dmin = ((const xf_block_q4_k *)blk)->dmin;
            s = ((const xf_block_q4_k *)blk)->scales;
        } else {
            h->d = ((const xf_block_q5_k *)blk)->d;
            h->dmin = ((const xf_block_q5_k *)blk)->dmin;
            s = ((const xf_block_q5_k *)blk)->scales;
        }
        for (int k = 0; k < 8; k++) {
            if (k < 4) {
                h->sc[k] = s[k] & 63;
                h->mn[k] = s[k + 4] & 63;
            } else {
                h->sc[k] = (s[k + 4] & 15) | (s[k - 4] >> 6) << 4;
                h->mn[k] = (s[k + 4] >> 4) | (s[k] >> 6) << 4;
            }
        }
        break;
    }
    case XF_GGML_Q6_K: {
        const xf_block_q6_k *b = blk;
        h->d = b->d;
        for (int k = 0; k < 16; k++)
            h->sc[k] = b->scales[k];
        break;
    }
    case XF_GGML_IQ4_XS: {
        const xf_block_iq4_xs *b = blk;
        h->d = b->d;
        for (int k = 0; k < 8; k++)
            h->sc[k] = (((b->scales_l[k / 2] >> (4 * (k % 2))) & 15) |
                        ((b->scales_h >> (2 * k)) & 3) << 4) - 32;
        break;
    }
    default:
        break;
    }
}

void xf_ggml_grid_decode(const xf_ggml_grid_traits *t, const void *blk, xf_ggml_sub *subs)
{
    header h;
    read_header(t, blk, &h);
    decode_header(t, &h, subs);
}

/* ---- fitting -------------------------------------------------------------- */

/* fp32 -> fp16 bits, kept finite (|v| <= 65504). */
static uint16_t to_f16(float v)
{
    if (v > 65504.0f)
        v = 65504.0f;
    if (v < -65504.0f)
        v = -65504.0f;
    return xf_f32_to_f16(v);
}

/* The neighbouring fp16 value (dir +1 / -1) of finite bits h, or h. */
static uint16_t f16_step(uint16_t h, int dir)
{
    const float v = H2F(h);
    if (v == 0.0f)
        return dir > 0 ? 0x0001 : 0x8001;
    const bool up_mag = (v > 0) == (dir > 0);
    uint16_t mag = h & 0x7fff, sign = h & 0x8000;
    if (up_mag)
        mag = mag < 0x7bff ? (uint16_t)(mag + 1) : mag;
    else
        mag = (uint16_t)(mag - 1);
    return (uint16_t)(sign | mag);
}

/* ---- search kernels ------------------------------------------------------
 * The searches score candidate grids value = s * level + b (b = +ml for
 * PLUS_MIN, -ml for MINUS_MIN, 0 otherwise) with a reciprocal multiply and
 * no branches, so the loops stay cheap: a choice may differ from the exact
 * nearest code by a rounding hair, which only changes which candidate wins,
 * never the exactness of the stored grid (the sweep's codes and values come
 * from xf_ggml_grid_code / xf_ggml_grid_value). */

typedef struct search_grid {
    float lmin, lmax;     /* level range */
    const int8_t *levels; /* non-uniform levels (sorted), or NULL */
    int n_levels;
    float mid[16];        /* non-uniform: midpoints between neighbouring levels */
} search_grid;

/* Round to nearest, ties to even, without a libm call (rintf is one on
 * baseline x86-64): exact for |v| < 2^22; larger values stay large and are
 * clamped by the caller. */
static inline float round_magic(float v)
{
    const float magic = 12582912.0f; /* 1.5 * 2^23 */
    return (v + magic) - magic;
}

typedef struct lsq_sums {
    double sw, sl, sll, sx, slx;
} lsq_sums;

static inline float search_level(const search_grid *g, float v)
{
    if (g->levels) { /* count the midpoints below v: branch-free nearest level */
        int c = 0;
        for (int k = 0; k < g->n_levels - 1; k++)
            c += v > g->mid[k];
        return (float)g->levels[c];
    }
    float l = round_magic(v);
    return l < g->lmin ? g->lmin : l > g->lmax ? g->lmax : l;
}

/* Weighted squared error of grid (s, b) on x[0..n); sums (optional) of the
 * weighted least-squares problem for its levels. */
static double search_pass(const search_grid *g, const float *x, const float *w, int n, float s,
                          float b, lsq_sums *sums)
{
    const float inv = s != 0.0f ? 1.0f / s : 0.0f;
    double e = 0.0, sw = 0.0, sl = 0.0, sll = 0.0, sx = 0.0, slx = 0.0;
    for (int i = 0; i < n; i++) {
        const float wi = w ? w[i] : 1.0f;
        const float l = search_level(g, (x[i] - b) * inv);
        const float d = x[i] - (s * l + b);
        e += wi * d * d;
        sw += wi;
        sl += wi * l;
        sll += wi * l * l;
        sx += wi * x[i];
        slx += wi * l * x[i];
    }
    if (sums)
        *sums = (lsq_sums){sw, sl, sll, sx, slx};
    return e;
}

static search_grid search_grid_of(const xf_ggml_grid_traits *t)
{
    search_grid g = {xf_ggml_grid_level(t, 0), xf_ggml_grid_level(t, t->n_codes - 1), t->levels,
                     t->n_codes, {0}};
    for (int k = 0; t->levels && k < t->n_codes - 1; k++)
        g.mid[k] = 0.5f * ((float)t->levels[k] + (float)t->levels[k + 1]);
    return g;
}

/* Real-valued fit of one sub-block: scale s and additive offset b
 * (value ~ s * level + b; b = 0 for the scale-only forms; b <= 0 for the
 * K mins, which are stored as non-negative m = -b). Candidate scales put
 * the extreme value on one of the extreme levels, each stretched by
 * factors 1 + 0.03 k (k = -STEPS..STEPS); each candidate's codes give the
 * weighted least-squares (s, b), and the candidate or its refinement with
 * the lowest error (re-rounded) is kept. */
static void fit_sub_real(const xf_ggml_grid_traits *t, const search_grid *g, const float *x,
                         const float *w, int n, float *s_out, float *b_out)
{
    const bool affine = t->form != XF_GGML_FORM_SCALE;
    const bool mins = t->form == XF_GGML_FORM_MINUS_MIN;
    float xmin = x[0], xmax = x[0];
    for (int i = 1; i < n; i++) {
        xmin = x[i] < xmin ? x[i] : xmin;
        xmax = x[i] > xmax ? x[i] : xmax;
    }
    if (mins && xmin > 0.0f)
        xmin = 0.0f; /* the stored min is non-negative: the range holds 0 */
    /* scale-only: the value of largest magnitude, signed */
    const float xm = fabsf(xmax) >= fabsf(xmin) ? xmax : xmin;
    *s_out = 0.0f;
    *b_out = affine ? xmin : 0.0f;
    if ((affine && xmax == xmin) || (!affine && xm == 0.0f))
        return; /* constant (<= 0 for K) or all zero: every code on the offset */
    enum { STEPS = 4 };
    double best = INFINITY;
    for (int target = 0; target < (affine ? 1 : 2); target++)
        for (int k = -STEPS; k <= STEPS; k++) {
            const float f = 1.0f + 0.03f * (float)k;
            const float s = affine ? (xmax - xmin) / ((g->lmax - g->lmin) * f)
                                   : xm / ((target ? g->lmax : g->lmin) * f);
            const float b = affine ? xmin - g->lmin * s : 0.0f;
            if (!(s != 0.0f) || !isfinite(s))
                continue;
            lsq_sums q;
            double e = search_pass(g, x, w, n, s, b, &q);
            if (e < best) {
                best = e;
                *s_out = s;
                *b_out = b;
            }
            double ns = s, nb = b;
            if (affine) {
                /* all codes on one level: no 2-parameter fit (det is rounding noise) */
                const double det = q.sw * q.sll - q.sl * q.sl;
                if (det > 1e-9 * q.sw * q.sll) {
                    ns = (q.sw * q.slx - q.sl * q.sx) / det;
                    nb = (q.sll * q.sx - q.sl * q.slx) / det;
                }
                if (mins && nb > 0) {
                    nb = 0;
                    ns = q.sll > 0 ? q.slx / q.sll : ns;
                }
            } else if (q.sll > 0 && q.slx != 0) {
                ns = q.slx / q.sll;
            }
            if (!(ns > 0) && affine)
                continue;
            if ((float)ns == s && (float)nb == b)
                continue;
            e = search_pass(g, x, w, n, (float)ns, (float)nb, NULL);
            if (e < best) {
                best = e;
                *s_out = (float)ns;
                *b_out = (float)nb;
            }
        }
}

/* The (search) error of sub-block values on decoded sub-block sb. */
static double sub_error(const xf_ggml_grid_traits *t, const search_grid *g, const xf_ggml_sub *sb,
                        const float *x, const float *w, int n)
{
    const float b = t->form == XF_GGML_FORM_PLUS_MIN    ? sb->ml
                    : t->form == XF_GGML_FORM_MINUS_MIN ? -sb->ml
                                                        : 0.0f;
    return search_pass(g, x, w, n, sb->dl, b, NULL);
}

/* Blocks of 32 (one sub-block): d (and m) in fp16 from the real fit, then
 * the neighbouring fp16 values tried on the exact grid. */
static void fit_legacy(const xf_ggml_grid_traits *t, const search_grid *sg, const float *x,
                       const float *w, header *h)
{
    float s, b;
    fit_sub_real(t, sg, x, w, t->block, &s, &b);
    memset(h, 0, sizeof *h);
    const uint16_t d0 = to_f16(s), m0 = to_f16(b);
    const bool plus = t->form == XF_GGML_FORM_PLUS_MIN;
    double best = INFINITY;
    for (int dd = -1; dd <= 1; dd++)
        for (int dm = plus ? -1 : 0; dm <= (plus ? 1 : 0); dm++) {
            const uint16_t d = dd ? f16_step(d0, dd) : d0;
            const uint16_t m = dm ? f16_step(m0, dm) : m0;
            xf_ggml_sub g = {H2F(d), plus ? H2F(m) : 0.0f};
            const double e = sub_error(t, sg, &g, x, w, t->block);
            if (e < best) {
                best = e;
                h->d = d;
                h->dmin = plus ? m : 0;
            }
        }
}

/* Error of sub-block k with integer scale sc and min mn under d, dmin. */
static double sub_int_error(const xf_ggml_grid_traits *t, const search_grid *sg, float d,
                            float dmin, int sc, int mn, const float *x, const float *w)
{
    xf_ggml_sub g = {d * (float)sc, t->form == XF_GGML_FORM_MINUS_MIN ? dmin * (float)mn : 0.0f};
    return sub_error(t, sg, &g, x, w, t->sub);
}

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Super-blocks: the integer sub-block scales/mins for fp16 d/dmin, each
 * the best of its two nearest integers; returns the total error. */
static double quantize_subs(const xf_ggml_grid_traits *t, const search_grid *sg, const float *x,
                            const float *w, const float *s, const float *m, uint16_t dh,
                            uint16_t mh, header *h)
{
    const int ns = t->block / t->sub;
    const bool mins = t->form == XF_GGML_FORM_MINUS_MIN;
    const int smax = t->signed_scale ? (1 << (t->scale_bits - 1)) - 1 : (1 << t->scale_bits) - 1;
    const int smin = t->signed_scale ? -(1 << (t->scale_bits - 1)) : 0;
    const int mmax = (1 << t->scale_bits) - 1;
    const float d = H2F(dh), dmin = H2F(mh);
    double total = 0.0;
    h->d = dh;
    h->dmin = mins ? mh : 0;
    for (int k = 0; k < ns; k++) {
        const float *xk = x + k * t->sub, *wk = w ? w + k * t->sub : NULL;
        const float rs = d != 0.0f ? s[k] / d : 0.0f;
        const float rm = mins && dmin != 0.0f ? m[k] / dmin : 0.0f;
        const int s0 = clampi((int)floorf(rs), smin, smax), s1 = clampi(s0 + 1, smin, smax);
        const int m0 = clampi((int)floorf(rm), 0, mmax), m1 = clampi(m0 + 1, 0, mmax);
        double best = INFINITY;
        for (int a = 0; a < 2; a++)
            for (int c = 0; c < (mins ? 2 : 1); c++) {
                const int sc = a ? s1 : s0, mn = c ? m1 : m0;
                if ((a && s1 == s0) || (c && m1 == m0))
                    continue;
                const double e = sub_int_error(t, sg, d, dmin, sc, mn, xk, wk);
                if (e < best) {
                    best = e;
                    h->sc[k] = sc;
                    h->mn[k] = mins ? mn : 0;
                }
            }
        total += best;
    }
    return total;
}

static void fit_super(const xf_ggml_grid_traits *t, const search_grid *sg, const float *x,
                      const float *w, header *h)
{
    const int ns = t->block / t->sub;
    float s[XF_GGML_GRID_MAX_SUB], m[XF_GGML_GRID_MAX_SUB];
    float smax_abs = 0.0f, s_ext = 0.0f, mmax = 0.0f;
    for (int k = 0; k < ns; k++) {
        float b;
        fit_sub_real(t, sg, x + k * t->sub, w ? w + k * t->sub : NULL, t->sub, &s[k], &b);
        m[k] = t->form == XF_GGML_FORM_MINUS_MIN ? -b : 0.0f;
        if (fabsf(s[k]) > smax_abs) {
            smax_abs = fabsf(s[k]);
            s_ext = s[k];
        }
        mmax = m[k] > mmax ? m[k] : mmax;
    }
    const int qpos = t->signed_scale ? (1 << (t->scale_bits - 1)) - 1 : (1 << t->scale_bits) - 1;
    const int qneg = t->signed_scale ? -(1 << (t->scale_bits - 1)) : 0;
    const int qm = (1 << t->scale_bits) - 1;
    /* d candidates: the extreme scale on the most negative integer (signed
     * types: one more step of range) or on the largest, stretched a little */
    static const float stretch[3] = {1.0f, 0.97f, 1.03f};
    float dc[6];
    int nd = 0;
    for (int i = 0; i < 3; i++) {
        dc[nd++] = s_ext / ((float)qpos * stretch[i]);
        if (t->signed_scale)
            dc[nd++] = s_ext / ((float)qneg * stretch[i]);
    }
    const bool mins = t->form == XF_GGML_FORM_MINUS_MIN;
    double best = INFINITY;
    header cand;
    for (int i = 0; i < nd; i++)
        for (int j = 0; j < (mins ? 2 : 1); j++) {
            memset(&cand, 0, sizeof cand);
            const uint16_t dh = to_f16(dc[i]);
            const uint16_t mh = mins ? to_f16(mmax / ((float)qm * stretch[j])) : 0;
            const double e = quantize_subs(t, sg, x, w, s, m, dh, mh, &cand);
            if (e < best) {
                best = e;
                *h = cand;
            }
        }
    if (!(best < INFINITY)) /* all-zero block (every candidate d was 0) */
        memset(h, 0, sizeof *h);
}

void xf_ggml_grid_fit(const xf_ggml_grid_traits *t, const float *x, const float *imp, void *blk,
                      xf_ggml_sub *subs)
{
    header h;
    const search_grid sg = search_grid_of(t);
    if (t->scale_bits == 0)
        fit_legacy(t, &sg, x, imp, &h);
    else
        fit_super(t, &sg, x, imp, &h);
    write_header(t, &h, blk);
    decode_header(t, &h, subs);
}

void xf_ggml_grid_quantize_row(const xf_ggml_grid_traits *t, const float *x, const float *imp,
                               int64_t n, void *dst, float *dq)
{
    const size_t bs = xf_ggml_traits(t->type)->type_size;
    xf_ggml_sub subs[XF_GGML_GRID_MAX_SUB];
    for (int64_t b = 0; b < n / t->block; b++) {
        uint8_t *blk = (uint8_t *)dst + (size_t)b * bs;
        const float *xb = x + b * t->block;
        xf_ggml_grid_fit(t, xb, imp ? imp + b * t->block : NULL, blk, subs);
        for (int j = 0; j < t->block; j++) {
            float v;
            const int c = xf_ggml_grid_code(t, &subs[j / t->sub], xb[j], &v);
            xf_ggml_grid_put_code(t, blk, j, c);
            if (dq)
                dq[b * t->block + j] = v;
        }
    }
}
