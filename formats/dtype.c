/* The dtype traits table (formats/dtype.h) and the row converters it
 * points to. Packed and GGML rows are converted by xfq_pack.c and
 * ggml_dequant.c; this file only checks that the tensor's view matches its
 * dtype and hands them the view. */
#include "formats/dtype.h"

#include <stdlib.h>
#include <string.h>

#include "core/half.h"
#include "formats/ggml_dequant.h"
#include "formats/ggml_types.h"
#include "formats/tensor.h"
#include "formats/xfq.h"
#include "formats/xfq_pack.h"

static const char *tname(const xf_tensor *t) { return t->name ? t->name : "?"; }

static int64_t row_len(const xf_tensor *t) { return t->ndim > 0 ? t->shape[t->ndim - 1] : 1; }

/* F16 / BF16 elements. safetensors offsets need not even be 2-aligned (the
 * fuzzer found odd ones): an aligned view takes the array converters, any
 * other is loaded element by element through memcpy. */
static void half_to_f32(bool bf16, const void *src, float *dst, size_t n)
{
    if ((uintptr_t)src % _Alignof(uint16_t) == 0) {
        (bf16 ? xf_bf16_to_f32_array : xf_f16_to_f32_array)(src, dst, n);
        return;
    }
    const unsigned char *b = src;
    for (size_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, b + i * sizeof h, sizeof h);
        dst[i] = bf16 ? xf_bf16_to_f32(h) : xf_f16_to_f32(h);
    }
}

/* The bytes and element count of rows [r0, r0 + nrows) of a plain tensor. */
static const void *plain_rows(const xf_tensor *t, int64_t r0, int64_t nrows, size_t elem,
                              size_t *n)
{
    const size_t cols = (size_t)row_len(t);
    *n = (size_t)nrows * cols;
    return (const char *)t->data + (size_t)r0 * cols * elem;
}

static int f16_rows(const xf_tensor *t, int64_t r0, int64_t nrows, float *dst, xf_error *err)
{
    (void)err;
    size_t n;
    const void *src = plain_rows(t, r0, nrows, 2, &n);
    half_to_f32(false, src, dst, n);
    return 0;
}

static int bf16_rows(const xf_tensor *t, int64_t r0, int64_t nrows, float *dst, xf_error *err)
{
    (void)err;
    size_t n;
    const void *src = plain_rows(t, r0, nrows, 2, &n);
    half_to_f32(true, src, dst, n);
    return 0;
}

static int f32_rows(const xf_tensor *t, int64_t r0, int64_t nrows, float *dst, xf_error *err)
{
    (void)err;
    size_t n;
    const void *src = plain_rows(t, r0, nrows, 4, &n);
    if (n > 0)
        memcpy(dst, src, n * sizeof(float));
    return 0;
}

static int f64_rows(const xf_tensor *t, int64_t r0, int64_t nrows, float *dst, xf_error *err)
{
    (void)err;
    size_t n;
    /* safetensors offsets need not be 8-aligned: load through memcpy */
    const unsigned char *b = plain_rows(t, r0, nrows, 8, &n);
    for (size_t i = 0; i < n; i++) {
        double d;
        memcpy(&d, b + i * sizeof d, sizeof d);
        dst[i] = (float)d;
    }
    return 0;
}

/* Q2..Q8 and L2..L8: the view checked against the dtype, then converted
 * (outliers included) by xfq_pack.c. */
static int packed_rows(const xf_tensor *t, int64_t r0, int64_t nrows, float *dst, xf_error *err)
{
    const xf_dtype_traits *tr = xf_dtype_traits_of(t->dtype);
    if (t->ndim != 2)
        return xf_fail(err, "tensor %s: packed tensor must have 2 dimensions, has %d", tname(t),
                       t->ndim);
    if (t->packed.bits != tr->code_bits)
        return xf_fail(err, "tensor %s: packed view has %d bits, dtype %s has %d", tname(t),
                       t->packed.bits, tr->name, tr->code_bits);
    if (xfq_packed_view_check(&t->packed, t->shape[1], tr->is_log2, tname(t), err) != 0)
        return -1;
    xfq_packed_rows_to_f32(&t->packed, t->shape[1], tr->is_log2, r0, nrows, dst);
    return 0;
}

/* GGML blocks, row by row through ggml_dequant.c. Blocks hold fp16 fields:
 * a row at an odd address is converted from a copy. */
static int ggml_rows(const xf_tensor *t, int64_t r0, int64_t nrows, float *dst, xf_error *err)
{
    const xf_ggml_type_traits *tt = xf_ggml_traits(t->ggml_type);
    if (!tt || !tt->quantized)
        return xf_fail(err, "tensor %s: GGML type %u is not a block type xfquant reads", t->name,
                       (unsigned)t->ggml_type);
    if (t->ndim != 2)
        return xf_fail(err, "tensor %s: GGML tensor with %d dimensions (must be 2)", t->name,
                       t->ndim);
    const int64_t rows = t->shape[0], cols = t->shape[1];
    const size_t rb = xf_ggml_row_bytes(tt, cols);
    if (rows < 0 || rb == 0 || t->nbytes % rb != 0 || t->nbytes / rb != (size_t)rows || !t->data)
        return xf_fail(err, "tensor %s: %zu bytes are not %lld rows of %lld %s elements", t->name,
                       t->nbytes, (long long)rows, (long long)cols, tt->name);
    void *copy = NULL;
    int rc = 0;
    for (int64_t r = r0; r < r0 + nrows && rc == 0; r++) {
        const uint8_t *src = (const uint8_t *)t->data + (size_t)r * rb;
        if ((uintptr_t)src % _Alignof(uint16_t) != 0) {
            if (!copy && !(copy = malloc(rb))) {
                rc = xf_fail(err, "tensor %s: out of memory", t->name);
                break;
            }
            memcpy(copy, src, rb);
            src = copy;
        }
        rc = xf_ggml_dequant(tt, src, dst + (size_t)(r - r0) * (size_t)cols, cols, t->name, err);
    }
    free(copy);
    return rc;
}

/* Rows in enum order: the _Static_assert below and test_xfq_pack's
 * traits test (row i has dtype i) keep every dtype covered. */
#define PLAIN(id, nm, sz, flt, fn) {id, nm, sz, 0, 1, sz, flt, false, false, false, true, 0, fn}
#define PLAIN_XFQ(id, nm, sz, st, fn) {id, nm, sz, 0, 1, sz, true, false, false, false, true, st, fn}
#define PACKED(id, nm, bits, log2, blk, st) \
    {id, nm, 0, bits, XFQ_BLOCK_CODES, sizeof(blk), false, true, log2, false, false, st, packed_rows}

static const xf_dtype_traits table[] = {
    {XF_DTYPE_INVALID, "?", 0, 0, 0, 0, false, false, false, false, false, 0, NULL},
    PLAIN_XFQ(XF_DTYPE_F16, "F16", 2, XFQ_STORAGE_F16, f16_rows),
    PLAIN_XFQ(XF_DTYPE_BF16, "BF16", 2, XFQ_STORAGE_BF16, bf16_rows),
    PLAIN_XFQ(XF_DTYPE_F32, "F32", 4, XFQ_STORAGE_F32, f32_rows),
    PLAIN(XF_DTYPE_F64, "F64", 8, true, f64_rows),
    PLAIN(XF_DTYPE_I8, "I8", 1, false, NULL),
    PLAIN(XF_DTYPE_U8, "U8", 1, false, NULL),
    PLAIN(XF_DTYPE_I16, "I16", 2, false, NULL),
    PLAIN(XF_DTYPE_U16, "U16", 2, false, NULL),
    {XF_DTYPE_I32, "I32", 4, 0, 1, 4, false, false, false, false, true, XFQ_STORAGE_I32, NULL},
    PLAIN(XF_DTYPE_U32, "U32", 4, false, NULL),
    PLAIN(XF_DTYPE_I64, "I64", 8, false, NULL),
    PLAIN(XF_DTYPE_U64, "U64", 8, false, NULL),
    PLAIN(XF_DTYPE_BOOL, "BOOL", 1, false, NULL),
    PACKED(XF_DTYPE_Q2, "Q2", 2, false, xfq_block_q2, XFQ_STORAGE_Q2),
    PACKED(XF_DTYPE_Q3, "Q3", 3, false, xfq_block_q3, XFQ_STORAGE_Q3),
    PACKED(XF_DTYPE_Q4, "Q4", 4, false, xfq_block_q4, XFQ_STORAGE_Q4),
    PACKED(XF_DTYPE_Q8, "Q8", 8, false, xfq_block_q8, XFQ_STORAGE_Q8),
    PACKED(XF_DTYPE_L2, "L2", 2, true, xfq_block_l2, XFQ_STORAGE_L2),
    PACKED(XF_DTYPE_L3, "L3", 3, true, xfq_block_l3, XFQ_STORAGE_L3),
    PACKED(XF_DTYPE_L4, "L4", 4, true, xfq_block_l4, XFQ_STORAGE_L4),
    PACKED(XF_DTYPE_L8, "L8", 8, true, xfq_block_l8, XFQ_STORAGE_L8),
    {XF_DTYPE_GGML, "GGML", 0, 0, 0, 0, false, false, false, true, false, XFQ_STORAGE_GGML_BASE,
     ggml_rows},
};
_Static_assert(sizeof table / sizeof table[0] == XF_DTYPE_COUNT,
               "formats/dtype.c: every xf_dtype needs its row in the traits table");

const xf_dtype_traits *xf_dtype_traits_of(xf_dtype t)
{
    return (t > XF_DTYPE_INVALID && t < XF_DTYPE_COUNT) ? &table[t] : NULL;
}

size_t xf_dtype_size(xf_dtype t)
{
    const xf_dtype_traits *tr = xf_dtype_traits_of(t);
    return tr ? tr->elem_bytes : 0;
}

const char *xf_dtype_name(xf_dtype t)
{
    const xf_dtype_traits *tr = xf_dtype_traits_of(t);
    return tr ? tr->name : "?";
}

xf_dtype xf_dtype_from_name(const char *name)
{
    for (int t = 1; t < XF_DTYPE_COUNT; t++)
        if (table[t].safetensors && strcmp(table[t].name, name) == 0)
            return (xf_dtype)t;
    return XF_DTYPE_INVALID;
}

bool xf_dtype_is_packed(xf_dtype t)
{
    const xf_dtype_traits *tr = xf_dtype_traits_of(t);
    return tr && tr->is_packed;
}

bool xf_dtype_is_log2(xf_dtype t)
{
    const xf_dtype_traits *tr = xf_dtype_traits_of(t);
    return tr && tr->is_log2;
}

bool xf_dtype_is_ggml(xf_dtype t)
{
    const xf_dtype_traits *tr = xf_dtype_traits_of(t);
    return tr && tr->is_ggml;
}

bool xf_dtype_is_float(xf_dtype t)
{
    const xf_dtype_traits *tr = xf_dtype_traits_of(t);
    return tr && tr->is_float;
}

int xf_dtype_packed_bits(xf_dtype t)
{
    const xf_dtype_traits *tr = xf_dtype_traits_of(t);
    return tr ? tr->code_bits : 0;
}

xf_dtype xf_dtype_packed_for_bits(int bits, bool log2)
{
    for (int t = 1; t < XF_DTYPE_COUNT; t++)
        if (table[t].is_packed && table[t].is_log2 == log2 && table[t].code_bits == bits)
            return (xf_dtype)t;
    return XF_DTYPE_INVALID;
}

xf_dtype xf_dtype_from_xfq_storage(uint32_t storage)
{
    if (storage >= XFQ_STORAGE_GGML_BASE && storage < XFQ_STORAGE_GGML_END)
        return XF_DTYPE_GGML;
    for (int t = 1; t < XF_DTYPE_COUNT; t++)
        if (storage != 0 && table[t].xfq_storage == storage)
            return (xf_dtype)t;
    return XF_DTYPE_INVALID;
}
