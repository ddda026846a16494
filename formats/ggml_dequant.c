/* GGML dequantization (formats/ggml_dequant.h). Each function follows the
 * block layout of formats/ggml_types.h and the formula table of
 * docs/export.md; products are written in ggml's order (the scale times the
 * integer code, minus the min term), because fp32 rounding depends on it. */
#include "formats/ggml_dequant.h"

#include <string.h>

#include "core/half.h"

#define H2F(h) xf_f16_to_f32(h)

static void deq_f32(const void *src, float *y, int64_t n)
{
    memcpy(y, src, (size_t)n * sizeof(float));
}

static void deq_f16(const void *src, float *y, int64_t n)
{
    xf_f16_to_f32_array(src, y, (size_t)n);
}

static void deq_bf16(const void *src, float *y, int64_t n)
{
    xf_bf16_to_f32_array(src, y, (size_t)n);
}

/* Q4_0: byte j holds element j (low nibble) and j + 16 (high); (q - 8) d */
static void deq_q4_0(const void *src, float *y, int64_t n)
{
    const xf_block_q4_0 *x = src;
    for (int64_t i = 0; i < n / XF_GGML_QK; i++, y += XF_GGML_QK) {
        const float d = H2F(x[i].d);
        for (int j = 0; j < XF_GGML_QK / 2; j++) {
            y[j] = (float)((x[i].qs[j] & 0x0F) - 8) * d;
            y[j + XF_GGML_QK / 2] = (float)((x[i].qs[j] >> 4) - 8) * d;
        }
    }
}

static void deq_q4_1(const void *src, float *y, int64_t n)
{
    const xf_block_q4_1 *x = src;
    for (int64_t i = 0; i < n / XF_GGML_QK; i++, y += XF_GGML_QK) {
        const float d = H2F(x[i].d), m = H2F(x[i].m);
        for (int j = 0; j < XF_GGML_QK / 2; j++) {
            y[j] = (float)(x[i].qs[j] & 0x0F) * d + m;
            y[j + XF_GGML_QK / 2] = (float)(x[i].qs[j] >> 4) * d + m;
        }
    }
}

/* Q5_0/Q5_1: the fifth bit of element e is bit e of the little-endian qh */
static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void deq_q5_0(const void *src, float *y, int64_t n)
{
    const xf_block_q5_0 *x = src;
    for (int64_t i = 0; i < n / XF_GGML_QK; i++, y += XF_GGML_QK) {
        const float d = H2F(x[i].d);
        const uint32_t qh = le32(x[i].qh);
        for (int j = 0; j < XF_GGML_QK / 2; j++) {
            const int h0 = (int)((qh >> j) & 1) << 4;
            const int h1 = (int)((qh >> (j + 16)) & 1) << 4;
            y[j] = (float)(((x[i].qs[j] & 0x0F) | h0) - 16) * d;
            y[j + XF_GGML_QK / 2] = (float)(((x[i].qs[j] >> 4) | h1) - 16) * d;
        }
    }
}

static void deq_q5_1(const void *src, float *y, int64_t n)
{
    const xf_block_q5_1 *x = src;
    for (int64_t i = 0; i < n / XF_GGML_QK; i++, y += XF_GGML_QK) {
        const float d = H2F(x[i].d), m = H2F(x[i].m);
        const uint32_t qh = le32(x[i].qh);
        for (int j = 0; j < XF_GGML_QK / 2; j++) {
            const int h0 = (int)((qh >> j) & 1) << 4;
            const int h1 = (int)((qh >> (j + 16)) & 1) << 4;
            y[j] = (float)((x[i].qs[j] & 0x0F) | h0) * d + m;
            y[j + XF_GGML_QK / 2] = (float)((x[i].qs[j] >> 4) | h1) * d + m;
        }
    }
}

static void deq_q8_0(const void *src, float *y, int64_t n)
{
    const xf_block_q8_0 *x = src;
    for (int64_t i = 0; i < n / XF_GGML_QK; i++, y += XF_GGML_QK) {
        const float d = H2F(x[i].d);
        for (int j = 0; j < XF_GGML_QK; j++)
            y[j] = (float)x[i].qs[j] * d;
    }
}

/* Q2_K: 16 sub-blocks of 16; element 128n + 32j + 16h + l has code
 * (qs[32n + 16h + l] >> 2j) & 3 and scale byte scales[8n + 2j + h]
 * (low nibble: scale, high: min) */
static void deq_q2_k(const void *src, float *y, int64_t n)
{
    const xf_block_q2_k *x = src;
    for (int64_t i = 0; i < n / XF_GGML_QK_K; i++) {
        const float d = H2F(x[i].d), dmin = H2F(x[i].dmin);
        const uint8_t *q = x[i].qs;
        int is = 0;
        for (int half = 0; half < 2; half++, q += 32)
            for (int j = 0; j < 4; j++)
                for (int h = 0; h < 2; h++) {
                    const uint8_t sc = x[i].scales[is++];
                    const float dl = d * (float)(sc & 0xF), ml = dmin * (float)(sc >> 4);
                    for (int l = 0; l < 16; l++)
                        *y++ = dl * (float)((q[16 * h + l] >> (2 * j)) & 3) - ml;
                }
    }
}

/* The 16 6-bit scales of Q3_K, unpacked from 12 bytes: scale k has its low
 * 4 bits in byte k (k < 8, low nibble) or k - 8 (high nibble), and its
 * high 2 bits in byte 8 + k % 4 at bit 2 * (k / 4). */
static void q3_k_scales(const uint8_t *sc, int *out)
{
    for (int k = 0; k < 16; k++) {
        const int lo = k < 8 ? sc[k] & 15 : sc[k - 8] >> 4;
        const int hi = (sc[8 + k % 4] >> (2 * (k / 4))) & 3;
        out[k] = (lo | hi << 4) - 32;
    }
}

/* Q3_K: Q2_K's 2-bit codes; a clear hmask bit (hmask[16h + l] bit 4n + j)
 * subtracts 4 */
static void deq_q3_k(const void *src, float *y, int64_t n)
{
    const xf_block_q3_k *x = src;
    for (int64_t i = 0; i < n / XF_GGML_QK_K; i++) {
        const float d = H2F(x[i].d);
        int scales[16];
        q3_k_scales(x[i].scales, scales);
        const uint8_t *q = x[i].qs;
        int is = 0;
        uint8_t m = 1;
        for (int half = 0; half < 2; half++, q += 32)
            for (int j = 0; j < 4; j++, m <<= 1)
                for (int h = 0; h < 2; h++) {
                    const float dl = d * (float)scales[is++];
                    for (int l = 0; l < 16; l++) {
                        const int v = ((q[16 * h + l] >> (2 * j)) & 3) -
                                      ((x[i].hmask[16 * h + l] & m) ? 0 : 4);
                        *y++ = dl * (float)v;
                    }
                }
    }
}

/* The 6-bit scale and min of sub-block j (0..7) of Q4_K/Q5_K */
static void scale_min_k4(int j, const uint8_t *q, uint8_t *s, uint8_t *m)
{
    if (j < 4) {
        *s = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *s = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* Q4_K: 8 sub-blocks of 32; element 64p + 32h + l is nibble h of
 * qs[32p + l], sub-block 2p + h */
static void deq_q4_k(const void *src, float *y, int64_t n)
{
    const xf_block_q4_k *x = src;
    for (int64_t i = 0; i < n / XF_GGML_QK_K; i++) {
        const float d = H2F(x[i].d), dmin = H2F(x[i].dmin);
        const uint8_t *q = x[i].qs;
        for (int p = 0; p < 4; p++, q += 32)
            for (int h = 0; h < 2; h++) {
                uint8_t sc, mn;
                scale_min_k4(2 * p + h, x[i].scales, &sc, &mn);
                const float dl = d * (float)sc, ml = dmin * (float)mn;
                for (int l = 0; l < 32; l++)
                    *y++ = dl * (float)((q[l] >> (4 * h)) & 0xF) - ml;
            }
    }
}

/* Q5_K: Q4_K plus a fifth bit, bit 2p + h of qh[l] */
static void deq_q5_k(const void *src, float *y, int64_t n)
{
    const xf_block_q5_k *x = src;
    for (int64_t i = 0; i < n / XF_GGML_QK_K; i++) {
        const float d = H2F(x[i].d), dmin = H2F(x[i].dmin);
        const uint8_t *q = x[i].qs;
        for (int p = 0; p < 4; p++, q += 32)
            for (int h = 0; h < 2; h++) {
                uint8_t sc, mn;
                scale_min_k4(2 * p + h, x[i].scales, &sc, &mn);
                const float dl = d * (float)sc, ml = dmin * (float)mn;
                const uint8_t bit = (uint8_t)(1u << (2 * p + h));
                for (int l = 0; l < 32; l++) {
                    const int v = ((q[l] >> (4 * h)) & 0xF) + ((x[i].qh[l] & bit) ? 16 : 0);
                    *y++ = dl * (float)v - ml;
                }
            }
    }
}

/* Q6_K: per 128 elements, ql (64 bytes) holds the low nibbles, qh (32) the
 * high 2 bits; element 32r + l (r = 0..3) takes nibble r / 2 of
 * ql[l + 32 (r % 2)] and bits 2r of qh[l]; int8 scale per 16 elements */
static void deq_q6_k(const void *src, float *y, int64_t n)
{
    const xf_block_q6_k *x = src;
    for (int64_t i = 0; i < n / XF_GGML_QK_K; i++) {
        const float d = H2F(x[i].d);
        const uint8_t *ql = x[i].ql, *qh = x[i].qh;
        const int8_t *sc = x[i].scales;
        for (int part = 0; part < 2; part++, y += 128, ql += 64, qh += 32, sc += 8)
            for (int l = 0; l < 32; l++) {
                const int is = l / 16;
                for (int r = 0; r < 4; r++) {
                    const int lo = (ql[l + 32 * (r % 2)] >> (4 * (r / 2))) & 0xF;
                    const int q = (lo | ((qh[l] >> (2 * r)) & 3) << 4) - 32;
                    y[l + 32 * r] = d * (float)sc[is + 2 * r] * (float)q;
                }
            }
    }
}

static void deq_iq4_nl(const void *src, float *y, int64_t n)
{
    const xf_block_iq4_nl *x = src;
    for (int64_t i = 0; i < n / XF_GGML_QK; i++, y += XF_GGML_QK) {
        const float d = H2F(x[i].d);
        for (int j = 0; j < XF_GGML_QK / 2; j++) {
            y[j] = d * (float)xf_ggml_iq4nl_levels[x[i].qs[j] & 0xF];
            y[j + XF_GGML_QK / 2] = d * (float)xf_ggml_iq4nl_levels[x[i].qs[j] >> 4];
        }
    }
}

/* IQ4_XS: 8 sub-blocks of 32 laid out as IQ4_NL, each with a 6-bit scale
 * (low 4 bits in scales_l, high 2 in scales_h) offset by 32 */
static void deq_iq4_xs(const void *src, float *y, int64_t n)
{
    const xf_block_iq4_xs *x = src;
    for (int64_t i = 0; i < n / XF_GGML_QK_K; i++) {
        const float d = H2F(x[i].d);
        const uint8_t *qs = x[i].qs;
        for (int ib = 0; ib < XF_GGML_QK_K / 32; ib++, y += 32, qs += 16) {
            const int ls = ((x[i].scales_l[ib / 2] >> (4 * (ib % 2))) & 0xF) |
                           ((x[i].scales_h >> (2 * ib)) & 3) << 4;
            const float dl = d * (float)(ls - 32);
            for (int j = 0; j < 16; j++) {
                y[j] = dl * (float)xf_ggml_iq4nl_levels[qs[j] & 0xF];
                y[j + 16] = dl * (float)xf_ggml_iq4nl_levels[qs[j] >> 4];
            }
        }
    }
}

static const struct {
    xf_ggml_type type;
    xf_ggml_to_f32_fn fn;
} converters[] = {
    {XF_GGML_F32, deq_f32},       {XF_GGML_F16, deq_f16},       {XF_GGML_BF16, deq_bf16},
    {XF_GGML_Q4_0, deq_q4_0},     {XF_GGML_Q4_1, deq_q4_1},     {XF_GGML_Q5_0, deq_q5_0},
    {XF_GGML_Q5_1, deq_q5_1},     {XF_GGML_Q8_0, deq_q8_0},     {XF_GGML_Q2_K, deq_q2_k},
    {XF_GGML_Q3_K, deq_q3_k},     {XF_GGML_Q4_K, deq_q4_k},     {XF_GGML_Q5_K, deq_q5_k},
    {XF_GGML_Q6_K, deq_q6_k},     {XF_GGML_IQ4_NL, deq_iq4_nl}, {XF_GGML_IQ4_XS, deq_iq4_xs},
};

xf_ggml_to_f32_fn xf_ggml_to_f32(const xf_ggml_type_traits *t)
{
    for (size_t i = 0; t && i < sizeof converters / sizeof converters[0]; i++)
        if (converters[i].type == t->type)
            return converters[i].fn;
    return NULL;
}

int xf_ggml_dequant(const xf_ggml_type_traits *t, const void *src, float *dst, int64_t n,
                    const char *what, xf_error *err)
{
    xf_ggml_to_f32_fn fn = xf_ggml_to_f32(t);
    if (!fn)
        return xf_fail(err, "%s: GGML type %s has no fp32 conversion", what, t ? t->name : "?");
    if (n < 0 || n % t->block_size != 0)
        return xf_fail(err, "%s: %lld elements is not a multiple of the %s block size %lld", what,
                       (long long)n, t->name, (long long)t->block_size);
    fn(src, dst, n);
    return 0;
}
