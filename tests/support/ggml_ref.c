/* Element-wise GGML reference codecs (tests/support/ggml_ref.h). Offsets
 * into a block are spelled out as byte positions (fp16 fields read little-
 * endian), so that this file does not share the struct layouts of
 * formats/ggml_types.h either. Products are in ggml's order: scale, then
 * the integer, then the min term. */
#include "tests/support/ggml_ref.h"

#include <math.h>
#include <string.h>

#include "core/half.h"

static const int8_t kv[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                              1,    13,   25,  38,  53,  69,  89,  113};

static float h(const uint8_t *p)
{
    return xf_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
}

int xf_ref_block_elems(uint32_t t)
{
    switch (t) {
    case 0: case 1: case 30: return 1;
    case 2: case 3: case 6: case 7: case 8: case 20: return 32;
    case 10: case 11: case 12: case 13: case 14: case 23: return 256;
    default: return 0;
    }
}

size_t xf_ref_block_bytes(uint32_t t)
{
    switch (t) {
    case 0: return 4;
    case 1: case 30: return 2;
    case 2: case 20: return 18;
    case 3: return 20;
    case 6: return 22;
    case 7: return 24;
    case 8: return 34;
    case 10: return 84;
    case 11: return 110;
    case 12: return 144;
    case 13: return 176;
    case 14: return 210;
    case 23: return 136;
    default: return 0;
    }
}

/* nibble of element e (0..31) in a 16-byte Q4_0-style array: byte e % 16,
 * low nibble for e < 16 */
static int nib32(const uint8_t *qs, int e)
{
    return e < 16 ? qs[e] & 15 : qs[e - 16] >> 4;
}

static void scale_min_k4(int j, const uint8_t *q, int *s, int *m)
{
    if (j < 4) {
        *s = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *s = (q[j + 4] & 15) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

static float elem(uint32_t t, const uint8_t *b, int e)
{
    switch (t) {
    case 0: { float v; memcpy(&v, b, 4); return v; }
    case 1: return h(b);
    case 30: return xf_bf16_to_f32((uint16_t)(b[0] | b[1] << 8));
    case 2: return (float)(nib32(b + 2, e) - 8) * h(b);
    case 3: return (float)nib32(b + 4, e) * h(b) + h(b + 2);
    case 6: {
        uint32_t qh = (uint32_t)b[2] | (uint32_t)b[3] << 8 | (uint32_t)b[4] << 16 |
                      (uint32_t)b[5] << 24;
        return (float)((nib32(b + 6, e) | (int)((qh >> e) & 1) << 4) - 16) * h(b);
    }
    case 7: {
        uint32_t qh = (uint32_t)b[4] | (uint32_t)b[5] << 8 | (uint32_t)b[6] << 16 |
                      (uint32_t)b[7] << 24;
        return (float)(nib32(b + 8, e) | (int)((qh >> e) & 1) << 4) * h(b) + h(b + 2);
    }
    case 8: return (float)(int8_t)b[2 + e] * h(b);
    case 20: return h(b) * (float)kv[nib32(b + 2, e)];
    case 10: { /* scales[16] qs[64] d dmin */
        int n = e / 128, j = (e % 128) / 32, hh = (e % 32) / 16, l = e % 16;
        int q = (b[16 + 32 * n + 16 * hh + l] >> (2 * j)) & 3;
        int s = b[8 * n + 2 * j + hh];
        return h(b + 80) * (float)(s & 15) * (float)q - h(b + 82) * (float)(s >> 4);
    }
    case 11: { /* hmask[32] qs[64] scales[12] d */
        int n = e / 128, j = (e % 128) / 32, hh = (e % 32) / 16, l = e % 16;
        int q = (b[32 + 32 * n + 16 * hh + l] >> (2 * j)) & 3;
        int hb = (b[16 * hh + l] >> (4 * n + j)) & 1;
        int v = q - (hb ? 0 : 4);
        int k = 8 * n + 2 * j + hh;
        const uint8_t *sc = b + 96;
        int lo = k < 8 ? sc[k] & 15 : sc[k - 8] >> 4;
        int hi = (sc[8 + k % 4] >> (2 * (k / 4))) & 3;
        return h(b + 108) * (float)((lo | hi << 4) - 32) * (float)v;
    }
    case 12: case 13: { /* d dmin scales[12] (qh[32]) qs[128] */
        int p = e / 64, hh = (e % 64) / 32, l = e % 32;
        const uint8_t *qs = b + (t == 12 ? 16 : 48);
        int q = (qs[32 * p + l] >> (4 * hh)) & 15;
        if (t == 13)
            q += 16 * ((b[16 + l] >> (2 * p + hh)) & 1);
        int s, m;
        scale_min_k4(2 * p + hh, b + 4, &s, &m);
        return h(b) * (float)s * (float)q - h(b + 2) * (float)m;
    }
    case 14: { /* ql[128] qh[64] scales[16] d */
        int c = e / 128, r = (e % 128) / 32, l = e % 32;
        int lo = (b[64 * c + l + 32 * (r & 1)] >> (4 * (r >> 1))) & 15;
        int hi = (b[128 + 32 * c + l] >> (2 * r)) & 3;
        int q = (lo | hi << 4) - 32;
        int8_t s = (int8_t)b[192 + 8 * c + l / 16 + 2 * r];
        return h(b + 208) * (float)s * (float)q;
    }
    case 23: { /* d scales_h scales_l[4] qs[128] */
        int k = e / 32;
        int sh = b[2] | b[3] << 8;
        int ls = ((b[4 + k / 2] >> (4 * (k % 2))) & 15) | ((sh >> (2 * k)) & 3) << 4;
        return h(b) * (float)(ls - 32) * (float)kv[nib32(b + 8 + 16 * k, e % 32)];
    }
    default: return NAN;
    }
}

void xf_ref_decode(uint32_t type, const uint8_t *src, int64_t n, float *dst)
{
    int be = xf_ref_block_elems(type);
    size_t bb = xf_ref_block_bytes(type);
    for (int64_t i = 0; i < n; i++)
        dst[i] = elem(type, src + (size_t)(i / be) * bb, (int)(i % be));
}

void xf_ref_encode(uint32_t type, const float *x, int64_t n, uint8_t *dst)
{
    for (int64_t blk = 0; blk < n / 32; blk++, x += 32) {
        uint8_t *b = dst + (size_t)blk * (type == 8 ? 34 : 18);
        if (type == 8) {
            float amax = 0;
            for (int i = 0; i < 32; i++)
                amax = fmaxf(amax, fabsf(x[i]));
            uint16_t d = xf_f32_to_f16(amax / 127.0f);
            float df = xf_f16_to_f32(d);
            b[0] = (uint8_t)d, b[1] = (uint8_t)(d >> 8);
            for (int i = 0; i < 32; i++) {
                long q = df > 0 ? lroundf(x[i] / df) : 0;
                b[2 + i] = (uint8_t)(int8_t)(q > 127 ? 127 : q < -127 ? -127 : q);
            }
        } else { /* Q4_0: the signed value of largest magnitude maps to -8 */
            float m = 0;
            for (int i = 0; i < 32; i++)
                if (fabsf(x[i]) > fabsf(m))
                    m = x[i];
            uint16_t d = xf_f32_to_f16(m / -8.0f);
            float df = xf_f16_to_f32(d);
            b[0] = (uint8_t)d, b[1] = (uint8_t)(d >> 8);
            memset(b + 2, 0, 16);
            for (int i = 0; i < 32; i++) {
                long q = df != 0 ? lroundf(x[i] / df) + 8 : 8;
                q = q < 0 ? 0 : q > 15 ? 15 : q;
                b[2 + i % 16] |= (uint8_t)(q << (i < 16 ? 0 : 4));
            }
        }
    }
}
