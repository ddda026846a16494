#include "core/half.h"

#include <string.h>

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float xf_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    if (exp == 0x1f) /* Inf / NaN: keep payload, keep quiet bit */
        return bits_f32(sign | 0x7f800000u | (man << 13));
    if (exp == 0) {
        if (man == 0)
            return bits_f32(sign);
        /* subnormal: value = man * 2^-24, exactly representable in fp32 */
        float v = (float)man * 5.9604644775390625e-08f;
        return sign ? -v : v;
    }
    return bits_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

uint16_t xf_f32_to_f16(float f)
{
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t exp = (u >> 23) & 0xffu;
    uint32_t man = u & 0x7fffffu;
    if (exp == 0xff) {
        if (man == 0)
            return sign | 0x7c00u;
        /* NaN: keep the top payload bits, force quiet so it never becomes Inf */
        return sign | 0x7e00u | (uint16_t)(man >> 13);
    }
    int32_t e = (int32_t)exp - 127 + 15;
    if (e >= 0x1f)
        return sign | 0x7c00u; /* overflow -> Inf */
    if (e <= 0) {
        /* subnormal or zero in fp16 */
        if (e < -10)
            return sign; /* below half the smallest subnormal: rounds to 0 */
        uint32_t m = man | 0x800000u; /* implicit bit */
        uint32_t shift = (uint32_t)(14 - e);
        uint32_t half_bits = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1u);
        uint32_t halfway = 1u << (shift - 1);
        if (rem > halfway || (rem == halfway && (half_bits & 1u)))
            half_bits++;
        return sign | (uint16_t)half_bits;
    }
    uint32_t half_bits = ((uint32_t)e << 10) | (man >> 13);
    uint32_t rem = man & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (half_bits & 1u)))
        half_bits++; /* may carry into the exponent, up to Inf: correct */
    return sign | (uint16_t)half_bits;
}

float xf_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t xf_f32_to_bf16(float f)
{
    uint32_t u = f32_bits(f);
    if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x7fffffu))
        return (uint16_t)((u >> 16) | 0x0040u); /* quiet NaN, never Inf */
    uint32_t lsb = (u >> 16) & 1u;
    u += 0x7fffu + lsb; /* round to nearest even */
    return (uint16_t)(u >> 16);
}

/* xf_f16_to_f32 without branches, so the loop vectorizes (model loading
 * and RTN convert every weight through it): the exponent is rebiased in
 * the integer domain; Inf/NaN get the rest of the fp32 exponent; a
 * subnormal (or zero) h becomes 2^-14 + man * 2^-24 exactly, from which
 * 2^-14 is subtracted exactly, giving xf_f16_to_f32's man * 2^-24. The
 * same bits as xf_f16_to_f32 for every h (checked for all 65536 by tests/test_half.c). */
void xf_f16_to_f32_array(const uint16_t *src, float *dst, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const uint32_t h = src[i];
        const uint32_t sign = (h & 0x8000u) << 16;
        const uint32_t exp = h & 0x7c00u;
        const uint32_t inf = (uint32_t)(exp == 0x7c00u), sub = (uint32_t)(exp == 0u); /* 0/1 */
        uint32_t o = (h & 0x7fffu) << 13;           /* exponent and mantissa in place */
        o += (uint32_t)(127 - 15) << 23;            /* rebias */
        o += inf * ((uint32_t)(128 - 16) << 23);    /* Inf/NaN: exponent all ones */
        o += sub << 23;                             /* subnormal: 2^-14 (1 + man/1024) ... */
        float f;
        memcpy(&f, &o, sizeof f);
        f -= 6.103515625e-05f; /* ... minus 2^-14: man * 2^-24, exact (kept for subnormals only) */
        uint32_t os;
        memcpy(&os, &f, sizeof os);
        const uint32_t m = 0u - sub; /* masks instead of branches: NaN payloads pass untouched */
        const uint32_t u = ((o & ~m) | (os & m)) | sign;
        memcpy(&dst[i], &u, sizeof u);
    }
}

void xf_f32_to_f16_array(const float *src, uint16_t *dst, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = xf_f32_to_f16(src[i]);
}

void xf_bf16_to_f32_array(const uint16_t *src, float *dst, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = xf_bf16_to_f32(src[i]);
}

void xf_f32_to_bf16_array(const float *src, uint16_t *dst, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = xf_f32_to_bf16(src[i]);
}
