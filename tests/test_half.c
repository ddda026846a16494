/* fp16/bf16 <-> fp32: exhaustive round trips, rounding ties, NaN/Inf. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/half.h"

static uint32_t bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Every fp16 value survives fp16 -> fp32 -> fp16 bit-exactly (NaNs stay NaN). */
static void test_f16_exhaustive_roundtrip(void **state)
{
    (void)state;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = xf_f16_to_f32((uint16_t)h);
        uint16_t back = xf_f32_to_f16(f);
        if ((h & 0x7c00u) == 0x7c00u && (h & 0x3ffu)) {
            assert_true(isnan(f));
            assert_true((back & 0x7c00u) == 0x7c00u && (back & 0x3ffu));
            assert_int_equal(back & 0x8000u, h & 0x8000u);
        } else {
            assert_int_equal(back, h);
        }
    }
}

/* The branch-free array conversion gives the scalar one's bits for every
 * fp16 value (NaN payloads included), at every offset of a vector loop. */
static void test_f16_array_matches_scalar(void **state)
{
    (void)state;
    static uint16_t h[65536 + 7];
    static float f[65536 + 7];
    for (uint32_t i = 0; i < 65536 + 7; i++)
        h[i] = (uint16_t)(i * 40503u + 17u); /* every value once per 65536, shuffled */
    for (size_t off = 0; off < 7; off += 3) {
        xf_f16_to_f32_array(h + off, f, 65536);
        for (uint32_t i = 0; i < 65536; i++)
            assert_int_equal(bits(f[i]), bits(xf_f16_to_f32(h[off + i])));
    }
}

/* fp32 -> fp16 is round-to-nearest-even: compare with a double-precision
 * nearest search over all fp16 values for many random floats. */
static double f16_value(uint16_t h) { return (double)xf_f16_to_f32(h); }

static void test_f16_rounding_nearest_even(void **state)
{
    (void)state;
    /* exact ties */
    assert_int_equal(xf_f32_to_f16(1.0f + 1.0f / 2048.0f), 0x3c00); /* tie -> even (down) */
    assert_int_equal(xf_f32_to_f16(1.0f + 3.0f / 2048.0f), 0x3c02); /* tie -> even (up) */
    assert_int_equal(xf_f32_to_f16(65504.0f), 0x7bff);
    assert_int_equal(xf_f32_to_f16(65520.0f), 0x7c00); /* halfway to 2^16 rounds to Inf */
    assert_int_equal(xf_f32_to_f16(65519.0f), 0x7bff);
    assert_int_equal(xf_f32_to_f16(1e10f), 0x7c00);
    assert_int_equal(xf_f32_to_f16(-1e10f), 0xfc00);
    assert_int_equal(xf_f32_to_f16(INFINITY), 0x7c00);
    assert_int_equal(xf_f32_to_f16(-INFINITY), 0xfc00);
    assert_int_equal(xf_f32_to_f16(5.9604644775390625e-08f), 0x0001); /* min subnormal */
    assert_int_equal(xf_f32_to_f16(2.98023223876953125e-08f), 0x0000); /* tie -> even 0 */
    assert_int_equal(xf_f32_to_f16(2.99e-08f), 0x0001);
    assert_int_equal(xf_f32_to_f16(-0.0f), 0x8000);
    uint64_t s = 12345;
    for (int i = 0; i < 200000; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        uint32_t u = (uint32_t)(s >> 32);
        /* restrict to the fp16 range so the answer is finite */
        u = (u & 0x80000000u) | (0x33000000u + (u & 0x7fffffffu) % (0x477fe000u - 0x33000000u));
        float f = from_bits(u);
        uint16_t h = xf_f32_to_f16(f);
        double err = fabs(f16_value(h) - (double)f);
        /* neighbours must not be closer; on a tie the code must be even */
        uint16_t up = (uint16_t)(h + 1), dn = (uint16_t)(h - 1);
        if ((h & 0x7fffu) != 0x7bffu) {
            double e_up = fabs(f16_value(up) - (double)f);
            assert_true(err < e_up || (err == e_up && (h & 1u) == 0));
        }
        if ((h & 0x7fffu) != 0) {
            double e_dn = fabs(f16_value(dn) - (double)f);
            assert_true(err < e_dn || (err == e_dn && (h & 1u) == 0));
        }
    }
}

static void test_f16_nan_preserved(void **state)
{
    (void)state;
    assert_true(isnan(xf_f16_to_f32(0x7e00)));
    assert_true(isnan(xf_f16_to_f32(0x7c01))); /* signalling NaN stays NaN */
    uint16_t h = xf_f32_to_f16(from_bits(0x7f800001u)); /* payload only in low bits */
    assert_true((h & 0x7c00u) == 0x7c00u && (h & 0x3ffu) != 0);
    assert_true(isinf(xf_f16_to_f32(0x7c00)));
    assert_true(isinf(xf_f16_to_f32(0xfc00)) && xf_f16_to_f32(0xfc00) < 0);
}

static void test_bf16(void **state)
{
    (void)state;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = xf_bf16_to_f32((uint16_t)h);
        uint16_t back = xf_f32_to_bf16(f);
        if (isnan(f))
            assert_true(isnan(xf_bf16_to_f32(back)));
        else
            assert_int_equal(back, h);
    }
    /* ties to even */
    assert_int_equal(xf_f32_to_bf16(from_bits(0x3f808000u)), 0x3f80);
    assert_int_equal(xf_f32_to_bf16(from_bits(0x3f818000u)), 0x3f82);
    assert_int_equal(xf_f32_to_bf16(from_bits(0x3f808001u)), 0x3f81);
    /* NaN with payload only in the low 16 bits must not become Inf */
    assert_true(isnan(xf_bf16_to_f32(xf_f32_to_bf16(from_bits(0x7f800001u)))));
    assert_int_equal(xf_f32_to_bf16(INFINITY), 0x7f80);
    assert_int_equal(bits(xf_bf16_to_f32(0x8000)), 0x80000000u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_f16_exhaustive_roundtrip),
        cmocka_unit_test(test_f16_rounding_nearest_even),
        cmocka_unit_test(test_f16_nan_preserved),
        cmocka_unit_test(test_f16_array_matches_scalar),
        cmocka_unit_test(test_bf16),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
