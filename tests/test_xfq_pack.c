/* Bit packing of 32-code blocks, packed-tensor layout, dequantization
 * (docs/xfq-format.md, "Packed weights"). Expected values are derived
 * from the spec by hand or by straightforward scalar code written here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/half.h"
#include "formats/tensor.h"
#include "formats/xfq_check.h"
#include "formats/xfq_pack.h"
#include "tests/support/test_util.h"

/* Reference packer straight from the spec: code i of a block occupies bits
 * [b*i, b*i+b) of the block read as a little-endian integer. */
static void ref_pack(const uint8_t *codes, int64_t n, int bits, uint8_t *out)
{
    size_t bb = (size_t)XFQ_BLOCK_CODES * (size_t)bits / 8;
    size_t nblocks = (size_t)((n + 31) / 32);
    memset(out, 0, nblocks * bb);
    for (int64_t j = 0; j < n; j++) {
        uint8_t *blk = out + (size_t)(j / 32) * bb;
        int64_t bit0 = (int64_t)bits * (j % 32);
        for (int k = 0; k < bits; k++)
            if (codes[j] >> k & 1)
                blk[(bit0 + k) / 8] |= (uint8_t)(1u << ((bit0 + k) % 8));
    }
}

static void test_block_bytes(void **state)
{
    (void)state;
    assert_int_equal(xfq_block_bytes(2), 8);
    assert_int_equal(xfq_block_bytes(3), 12);
    assert_int_equal(xfq_block_bytes(4), 16);
    assert_int_equal(xfq_block_bytes(8), 32);
    assert_int_equal(xfq_block_bytes(5), 0);
    assert_int_equal(xfq_block_bytes(0), 0);
}

/* Random codes of every width and awkward lengths: pack agrees with the
 * reference bit by bit, padding is zero, unpack restores the codes. */
static void test_round_trip_random(void **state)
{
    (void)state;
    static const int widths[] = {2, 3, 4, 8};
    static const int64_t lens[] = {1, 31, 32, 33, 100, 1000};
    uint64_t rng = 12345;
    for (size_t w = 0; w < 4; w++) {
        int bits = widths[w];
        for (size_t l = 0; l < sizeof lens / sizeof lens[0]; l++) {
            int64_t n = lens[l];
            size_t nbytes = (size_t)((n + 31) / 32) * xfq_block_bytes(bits);
            uint8_t *codes = malloc((size_t)n), *back = malloc((size_t)n);
            uint8_t *packed = malloc(nbytes + 1), *ref = malloc(nbytes);
            for (int64_t i = 0; i < n; i++)
                codes[i] = (uint8_t)(xf_test_rand_u64(&rng) & ((1u << bits) - 1));
            packed[nbytes] = 0xa5; /* guard: nothing written past the blocks */
            memset(packed, 0xff, nbytes);
            xfq_pack_row(codes, n, bits, packed);
            ref_pack(codes, n, bits, ref);
            assert_memory_equal(packed, ref, nbytes);
            assert_int_equal(packed[nbytes], 0xa5);
            memset(back, 0xee, (size_t)n);
            xfq_unpack_row(packed, n, bits, back);
            assert_memory_equal(back, codes, (size_t)n);
            free(codes);
            free(back);
            free(packed);
            free(ref);
        }
    }
}

/* Q4, codes c[i] = i & 15. Byte k holds code 2k in its low nibble and code
 * 2k+1 in its high nibble: 0x10, 0x32, 0x54, ..., 0xFE, then again. */
static void test_q4_by_hand(void **state)
{
    (void)state;
    uint8_t codes[32], out[16], back[32];
    for (int i = 0; i < 32; i++)
        codes[i] = (uint8_t)(i & 15);
    static const uint8_t expect[16] = {0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe,
                                       0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe};
    xfq_pack_row(codes, 32, 4, out);
    assert_memory_equal(out, expect, 16);
    xfq_unpack_row(out, 32, 4, back);
    assert_memory_equal(back, codes, 32);

    /* 3 codes (5, 10, 15): byte 0 = 0xA5, byte 1 = 0x0F (code 3 is padding 0) */
    uint8_t three[3] = {5, 10, 15};
    memset(out, 0xff, sizeof out);
    xfq_pack_row(three, 3, 4, out);
    assert_int_equal(out[0], 0xa5);
    assert_int_equal(out[1], 0x0f);
    for (int i = 2; i < 16; i++)
        assert_int_equal(out[i], 0);
}

/* Q3, codes c[i] = i & 7. Eight 3-bit codes fill 24 bits: the integer is
 * sum_i i << 3i = octal 76543210 = binary 111 110 101 100 011 010 001 000
 * = 1111 1010 1100 0110 1000 1000 = 0xFAC688, little-endian bytes 88 C6 FA;
 * a block of 32 codes repeats that 4 times. Then a straddling code: code 2
 * = 5 (binary 101) sits at bits 6..8: bits 6 and 8 set -> byte 0 = 0x40,
 * byte 1 = 0x01. Code 31 = 7 sits at bits 93..95: byte 11 = 0xE0. */
static void test_q3_by_hand(void **state)
{
    (void)state;
    uint8_t codes[32], out[12], back[32];
    for (int i = 0; i < 32; i++)
        codes[i] = (uint8_t)(i & 7);
    static const uint8_t expect[12] = {0x88, 0xc6, 0xfa, 0x88, 0xc6, 0xfa,
                                       0x88, 0xc6, 0xfa, 0x88, 0xc6, 0xfa};
    xfq_pack_row(codes, 32, 3, out);
    assert_memory_equal(out, expect, 12);
    xfq_unpack_row(out, 32, 3, back);
    assert_memory_equal(back, codes, 32);

    memset(codes, 0, sizeof codes);
    codes[2] = 5;
    codes[31] = 7;
    static const uint8_t expect2[12] = {0x40, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xe0};
    xfq_pack_row(codes, 32, 3, out);
    assert_memory_equal(out, expect2, 12);
}

/* Q2: code i at bits 2i; code 31 = 3 -> byte 7 = 0xC0; code 1 = 2 -> byte 0 = 0x08.
 * Q8: a code is a byte. */
static void test_q2_q8_by_hand(void **state)
{
    (void)state;
    uint8_t codes[32] = {0}, out[32];
    codes[1] = 2;
    codes[31] = 3;
    xfq_pack_row(codes, 32, 2, out);
    static const uint8_t expect[8] = {0x08, 0, 0, 0, 0, 0, 0, 0xc0};
    assert_memory_equal(out, expect, 8);
    for (int i = 0; i < 32; i++)
        codes[i] = (uint8_t)(200 + i);
    xfq_pack_row(codes, 32, 8, out);
    assert_memory_equal(out, codes, 32);
}

/* rows 3, cols 40, Q3, group 16, asym, perm:
 * row_bytes = ceil(40/32) = 2 blocks * 12 = 24; codes = 72 bytes at 0;
 * G = ceil(40/16) = 3; scales = 3*3*2 = 18 at 128 (72 rounded up to 64s);
 * zeros = 9 at 192 (146 rounded up); perm = 40*4 = 160 at 256 (201 rounded
 * up); total = 256 + 160 = 416 (no padding after the last part). */
static void test_layout_known(void **state)
{
    (void)state;
    xfq_packed_layout l;
    xf_error err;
    assert_int_equal(xfq_packed_layout_compute(3, 40, 3, 16, true, true, &l, "t", &err), 0);
    assert_int_equal(l.row_bytes, 24);
    assert_int_equal(l.codes_offset, 0);
    assert_int_equal(l.codes_bytes, 72);
    assert_int_equal(l.scales_offset, 128);
    assert_int_equal(l.scales_bytes, 18);
    assert_int_equal(l.zeros_offset, 192);
    assert_int_equal(l.zeros_bytes, 9);
    assert_int_equal(l.perm_offset, 256);
    assert_int_equal(l.perm_bytes, 160);
    assert_int_equal(l.total_bytes, 416);

    /* symmetric, no perm: codes 72, scales at 128, total 146 */
    assert_int_equal(xfq_packed_layout_compute(3, 40, 3, 16, false, false, &l, "t", &err), 0);
    assert_int_equal(l.zeros_bytes, 0);
    assert_int_equal(l.perm_bytes, 0);
    assert_int_equal(l.total_bytes, 146);

    /* 4096 x 4096 Q4 g128 sym: codes 4096*128*16 = 8388608, scales
     * 4096*32*2 = 262144 -> 8650752 bytes = 4.125 bits per weight */
    assert_int_equal(xfq_packed_layout_compute(4096, 4096, 4, 128, false, false, &l, "t", &err),
                     0);
    assert_int_equal(l.total_bytes, 8650752);
}

static void test_layout_errors(void **state)
{
    (void)state;
    xfq_packed_layout l;
    xf_error err;
    assert_int_equal(xfq_packed_layout_compute(3, 40, 5, 16, false, false, &l, "w", &err), -1);
    assert_non_null(strstr(err.msg, "w: unsupported bit width 5"));
    assert_int_equal(xfq_packed_layout_compute(3, 40, 4, 0, false, false, &l, "w", &err), -1);
    assert_non_null(strstr(err.msg, "group size"));
    assert_int_equal(xfq_packed_layout_compute(3, 40, 4, 41, false, false, &l, "w", &err), -1);
    assert_int_equal(xfq_packed_layout_compute(0, 40, 4, 40, false, false, &l, "w", &err), -1);
    assert_int_equal(xfq_packed_layout_compute(INT64_MAX / 2, 4096, 4, 128, true, true, &l, "w",
                                               &err),
                     -1);
    assert_non_null(strstr(err.msg, "overflow"));
    assert_int_equal(xfq_packed_layout_compute(1, (int64_t)INT32_MAX + 1, 8, 128, false, false,
                                               &l, "w", &err),
                     -1);
}

/* A packed tensor built in memory for the dequantization tests. */
typedef struct test_packed {
    uint8_t *q;        /* [rows, cols] codes, storage order */
    uint8_t *codes;    /* packed */
    uint16_t *scales;  /* [rows, G] */
    uint8_t *zeros;    /* [rows, G] or NULL */
    int32_t *perm;     /* [cols] or NULL */
    xf_tensor t;
} test_packed;

static void make_packed(test_packed *p, int64_t rows, int64_t cols, int bits, int64_t g,
                        bool asym, bool perm, uint64_t seed)
{
    memset(p, 0, sizeof *p);
    uint64_t rng = seed;
    int64_t G = (cols + g - 1) / g;
    size_t row_bytes = (size_t)((cols + 31) / 32) * xfq_block_bytes(bits);
    p->q = malloc((size_t)(rows * cols));
    p->codes = malloc((size_t)rows * row_bytes);
    p->scales = malloc((size_t)(rows * G) * 2);
    for (int64_t i = 0; i < rows * cols; i++)
        p->q[i] = (uint8_t)(xf_test_rand_u64(&rng) % (1u << bits));
    for (int64_t r = 0; r < rows; r++)
        xfq_pack_row(p->q + r * cols, cols, bits, p->codes + (size_t)r * row_bytes);
    for (int64_t i = 0; i < rows * G; i++)
        p->scales[i] = xf_f32_to_f16(0.001f + xf_test_rand_uniform(&rng));
    if (asym) {
        p->zeros = malloc((size_t)(rows * G));
        for (int64_t i = 0; i < rows * G; i++)
            p->zeros[i] = (uint8_t)(xf_test_rand_u64(&rng) % (1u << bits));
    }
    if (perm) {
        p->perm = malloc((size_t)cols * 4);
        for (int64_t j = 0; j < cols; j++)
            p->perm[j] = (int32_t)j;
        for (int64_t j = cols - 1; j > 0; j--) { /* Fisher-Yates */
            int64_t k = (int64_t)(xf_test_rand_u64(&rng) % (uint64_t)(j + 1));
            int32_t tmp = p->perm[j];
            p->perm[j] = p->perm[k];
            p->perm[k] = tmp;
        }
    }
    static const xf_dtype dt[9] = {[2] = XF_DTYPE_Q2, [3] = XF_DTYPE_Q3, [4] = XF_DTYPE_Q4,
                                   [8] = XF_DTYPE_Q8};
    p->t.name = "w";
    p->t.dtype = dt[bits];
    p->t.ndim = 2;
    p->t.shape[0] = rows;
    p->t.shape[1] = cols;
    p->t.packed = (xf_packed_view){.bits = bits, .group_size = g, .n_groups = G, .asym = asym,
                                   .codes = p->codes, .row_bytes = row_bytes,
                                   .scales = p->scales, .zeros = p->zeros, .perm = p->perm};
}

static void free_packed(test_packed *p)
{
    free(p->q);
    free(p->codes);
    free(p->scales);
    free(p->zeros);
    free(p->perm);
}

/* The spec's formula, one element at a time. */
static void ref_dequant(const test_packed *p, float *out)
{
    const xf_tensor *t = &p->t;
    int64_t rows = t->shape[0], cols = t->shape[1], g = t->packed.group_size;
    int64_t G = t->packed.n_groups;
    int bits = t->packed.bits;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < cols; j++) {
            float s = xf_f16_to_f32(p->scales[r * G + j / g]);
            int z = p->zeros ? p->zeros[r * G + j / g] : (1 << (bits - 1));
            int64_t col = p->perm ? p->perm[j] : j;
            out[r * cols + col] = s * (float)((int)p->q[r * cols + j] - z);
        }
}

static void check_dequant(int64_t rows, int64_t cols, int bits, int64_t g, bool asym, bool perm)
{
    test_packed p;
    make_packed(&p, rows, cols, bits, g, asym, perm,
                (uint64_t)(rows * 1000003 + cols * 101 + bits * 7 + g) * 2 + asym * 5 + perm);
    size_t n = (size_t)(rows * cols);
    float *want = malloc(n * sizeof(float)), *got = malloc(n * sizeof(float));
    float *row = malloc((size_t)cols * sizeof(float));
    ref_dequant(&p, want);
    xf_error err;
    memset(got, 0xff, n * sizeof(float));
    assert_int_equal(xf_tensor_to_f32(&p.t, got, &err), 0); /* through the dtype table */
    assert_memory_equal(got, want, n * sizeof(float));
    memset(got, 0xff, n * sizeof(float)); /* the view-level converter, directly */
    xfq_packed_rows_to_f32(&p.t.packed, cols, false, 0, rows, got);
    assert_memory_equal(got, want, n * sizeof(float));
    for (int64_t r = 0; r < rows; r += (rows > 3 ? rows / 3 : 1)) {
        assert_int_equal(xf_tensor_row_to_f32(&p.t, r, row, &err), 0);
        assert_memory_equal(row, want + r * cols, (size_t)cols * sizeof(float));
    }
    free(want);
    free(got);
    free(row);
    free_packed(&p);
}

static void test_dequant_all(void **state)
{
    (void)state;
    static const int widths[] = {2, 3, 4, 8};
    for (size_t w = 0; w < 4; w++) {
        for (int asym = 0; asym < 2; asym++) {
            for (int perm = 0; perm < 2; perm++) {
                check_dequant(5, 688, widths[w], 688, asym, perm); /* per channel */
                check_dequant(5, 688, widths[w], 128, asym, perm); /* last group 48 */
                check_dequant(3, 33, widths[w], 7, asym, perm);
                check_dequant(2, 2100, widths[w], 100, asym, perm); /* > one unpack chunk */
                check_dequant(2, 40, widths[w], 1, asym, perm);
            }
        }
    }
}

/* The symmetric zero is 2^(b-1): code 8 of Q4 is exactly 0, code 0 is -8*s. */
static void test_dequant_symmetric_zero(void **state)
{
    (void)state;
    test_packed p;
    make_packed(&p, 1, 32, 4, 32, false, false, 1);
    p.q[0] = 8;
    p.q[1] = 0;
    p.q[2] = 15;
    xfq_pack_row(p.q, 32, 4, p.codes);
    p.scales[0] = xf_f32_to_f16(0.5f);
    float out[32];
    xf_error err;
    assert_int_equal(xf_tensor_row_to_f32(&p.t, 0, out, &err), 0);
    assert_true(out[0] == 0.0f);
    assert_true(out[1] == -4.0f);
    assert_true(out[2] == 3.5f);
    free_packed(&p);
}

static void test_dequant_bad_view(void **state)
{
    (void)state;
    test_packed p;
    make_packed(&p, 2, 64, 4, 32, false, false, 2);
    float out[128];
    xf_error err;
    p.t.packed.row_bytes = 16;
    assert_int_equal(xf_tensor_to_f32(&p.t, out, &err), -1);
    assert_non_null(strstr(err.msg, "tensor w: row_bytes"));
    p.t.packed.row_bytes = 32;
    p.t.packed.n_groups = 3;
    assert_int_equal(xf_tensor_to_f32(&p.t, out, &err), -1);
    p.t.packed.n_groups = 2;
    p.t.packed.bits = 3;
    assert_int_equal(xf_tensor_to_f32(&p.t, out, &err), -1);
    p.t.packed.bits = 4;
    assert_int_equal(xf_tensor_row_to_f32(&p.t, 2, out, &err), -1);
    assert_non_null(strstr(err.msg, "out of range"));
    assert_int_equal(xf_tensor_to_f32(&p.t, out, &err), 0);
    free_packed(&p);
}

/* The dtype traits table (formats/dtype.c): one row per dtype in enum
 * order, sizes from the block layouts, .xfq storage ids as
 * docs/xfq-format.md lists them, round trips of every lookup. */
static void test_dtype_traits(void **state)
{
    (void)state;
    assert_null(xf_dtype_traits_of(XF_DTYPE_INVALID));
    assert_null(xf_dtype_traits_of(XF_DTYPE_COUNT));
    for (int t = 1; t < XF_DTYPE_COUNT; t++) {
        const xf_dtype_traits *tr = xf_dtype_traits_of((xf_dtype)t);
        assert_non_null(tr);
        assert_int_equal(tr->dtype, t);
        assert_non_null(tr->name);
        for (int u = 1; u < t; u++)
            assert_string_not_equal(tr->name, xf_dtype_name((xf_dtype)u));
        if (tr->safetensors)
            assert_int_equal(xf_dtype_from_name(tr->name), t);
        else
            assert_int_equal(xf_dtype_from_name(tr->name), XF_DTYPE_INVALID);
        if (tr->is_packed) {
            assert_int_equal(tr->block_elems, XFQ_BLOCK_CODES);
            assert_int_equal(tr->block_bytes, xfq_block_bytes(tr->code_bits));
            assert_int_equal(xf_dtype_packed_for_bits(tr->code_bits, tr->is_log2), t);
            assert_int_equal(tr->elem_bytes, 0);
        } else if (!tr->is_ggml) {
            assert_int_equal(tr->block_elems, 1);
            assert_int_equal(tr->block_bytes, tr->elem_bytes);
            assert_true(tr->elem_bytes > 0);
        }
        /* every float converts, nothing else that is plain does */
        if (!tr->is_packed && !tr->is_ggml)
            assert_int_equal(tr->rows_to_f32 != NULL, tr->is_float);
        else
            assert_non_null(tr->rows_to_f32);
        if (tr->xfq_storage && !tr->is_ggml)
            assert_int_equal(xfq_storage_dtype(tr->xfq_storage), t);
        assert_int_equal(xfq_dtype_storage((xf_dtype)t), tr->is_ggml ? 0 : tr->xfq_storage);
    }
    /* docs/xfq-format.md, "Storage types" */
    static const struct { xf_dtype t; uint32_t id; } ids[] = {
        {XF_DTYPE_F32, 1}, {XF_DTYPE_F16, 2}, {XF_DTYPE_BF16, 3}, {XF_DTYPE_I32, 8},
        {XF_DTYPE_Q2, 16}, {XF_DTYPE_Q3, 17}, {XF_DTYPE_Q4, 18}, {XF_DTYPE_Q8, 20},
        {XF_DTYPE_L2, 24}, {XF_DTYPE_L3, 25}, {XF_DTYPE_L4, 26}, {XF_DTYPE_L8, 28}};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        assert_int_equal(xfq_dtype_storage(ids[i].t), ids[i].id);
        assert_int_equal(xfq_storage_dtype(ids[i].id), ids[i].t);
    }
    assert_int_equal(xfq_storage_dtype(64 + 2), XF_DTYPE_GGML);  /* q4_0 */
    assert_int_equal(xfq_storage_dtype(64 + 0), XF_DTYPE_INVALID); /* f32 is not a block type */
    assert_int_equal(xfq_storage_dtype(0), XF_DTYPE_INVALID);
    assert_int_equal(xfq_storage_dtype(19), XF_DTYPE_INVALID);
    assert_int_equal(xf_dtype_packed_for_bits(5, false), XF_DTYPE_INVALID);
    assert_int_equal(xf_dtype_packed_bits(XF_DTYPE_L3), 3);
    assert_int_equal(xf_dtype_size(XF_DTYPE_BF16), 2);
    assert_int_equal(xf_dtype_size(XF_DTYPE_Q4), 0);
    assert_string_equal(xf_dtype_name(XF_DTYPE_INVALID), "?");
    xf_tensor g = {.name = "g", .dtype = XF_DTYPE_GGML, .ggml_type = 12};
    assert_string_equal(xf_tensor_type_name(&g), "GGML q4_K");
    g.ggml_type = 1; /* f16 is no block type */
    assert_string_equal(xf_tensor_type_name(&g), "GGML ?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dtype_traits),
        cmocka_unit_test(test_block_bytes),
        cmocka_unit_test(test_round_trip_random),
        cmocka_unit_test(test_q4_by_hand),
        cmocka_unit_test(test_q3_by_hand),
        cmocka_unit_test(test_q2_q8_by_hand),
        cmocka_unit_test(test_layout_known),
        cmocka_unit_test(test_layout_errors),
        cmocka_unit_test(test_dequant_all),
        cmocka_unit_test(test_dequant_symmetric_zero),
        cmocka_unit_test(test_dequant_bad_view),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
