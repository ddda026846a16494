#include "formats/tensor.h"

#include <stdlib.h>
#include <string.h>

#include "core/half.h"
#include "formats/ggml_dequant.h"
#include "formats/xfq_pack.h"

static const struct {
    const char *name;
    size_t size;
} dtype_info[XF_DTYPE_COUNT] = {
    [XF_DTYPE_INVALID] = {"?", 0},   [XF_DTYPE_F16] = {"F16", 2}, [XF_DTYPE_BF16] = {"BF16", 2},
    [XF_DTYPE_F32] = {"F32", 4},     [XF_DTYPE_F64] = {"F64", 8}, [XF_DTYPE_I8] = {"I8", 1},
    [XF_DTYPE_U8] = {"U8", 1},       [XF_DTYPE_I16] = {"I16", 2}, [XF_DTYPE_U16] = {"U16", 2},
    [XF_DTYPE_I32] = {"I32", 4},     [XF_DTYPE_U32] = {"U32", 4}, [XF_DTYPE_I64] = {"I64", 8},
    [XF_DTYPE_U64] = {"U64", 8},     [XF_DTYPE_BOOL] = {"BOOL", 1}, [XF_DTYPE_Q2] = {"Q2", 0},
    [XF_DTYPE_Q3] = {"Q3", 0},       [XF_DTYPE_Q4] = {"Q4", 0},   [XF_DTYPE_Q8] = {"Q8", 0},
    [XF_DTYPE_L2] = {"L2", 0},       [XF_DTYPE_L3] = {"L3", 0},   [XF_DTYPE_L4] = {"L4", 0},
    [XF_DTYPE_L8] = {"L8", 0},       [XF_DTYPE_GGML] = {"GGML", 0},
};

size_t xf_dtype_size(xf_dtype t)
{
    return (t > XF_DTYPE_INVALID && t < XF_DTYPE_COUNT) ? dtype_info[t].size : 0;
}

const char *xf_dtype_name(xf_dtype t)
{
    return (t > XF_DTYPE_INVALID && t < XF_DTYPE_COUNT) ? dtype_info[t].name : "?";
}

xf_dtype xf_dtype_from_name(const char *name)
{
    /* only the plain types are safetensors dtypes */
    for (int t = XF_DTYPE_F16; t <= XF_DTYPE_BOOL; t++)
        if (strcmp(dtype_info[t].name, name) == 0)
            return (xf_dtype)t;
    return XF_DTYPE_INVALID;
}

bool xf_dtype_is_packed(xf_dtype t) { return t >= XF_DTYPE_Q2 && t <= XF_DTYPE_L8; }

bool xf_dtype_is_log2(xf_dtype t) { return t >= XF_DTYPE_L2 && t <= XF_DTYPE_L8; }

bool xf_dtype_is_ggml(xf_dtype t) { return t == XF_DTYPE_GGML; }

bool xf_dtype_is_float(xf_dtype t)
{
    return t == XF_DTYPE_F16 || t == XF_DTYPE_BF16 || t == XF_DTYPE_F32 || t == XF_DTYPE_F64;
}

int xf_dtype_packed_bits(xf_dtype t)
{
    switch (t) {
    case XF_DTYPE_Q2: case XF_DTYPE_L2: return 2;
    case XF_DTYPE_Q3: case XF_DTYPE_L3: return 3;
    case XF_DTYPE_Q4: case XF_DTYPE_L4: return 4;
    case XF_DTYPE_Q8: case XF_DTYPE_L8: return 8;
    default: return 0;
    }
}

const char *xf_tensor_type_name(const xf_tensor *t)
{
    if (t->dtype != XF_DTYPE_GGML)
        return xf_dtype_name(t->dtype);
    switch (t->ggml_type) {
    case XF_GGML_Q4_0: return "GGML q4_0";
    case XF_GGML_Q4_1: return "GGML q4_1";
    case XF_GGML_Q5_0: return "GGML q5_0";
    case XF_GGML_Q5_1: return "GGML q5_1";
    case XF_GGML_Q8_0: return "GGML q8_0";
    case XF_GGML_Q2_K: return "GGML q2_K";
    case XF_GGML_Q3_K: return "GGML q3_K";
    case XF_GGML_Q4_K: return "GGML q4_K";
    case XF_GGML_Q5_K: return "GGML q5_K";
    case XF_GGML_Q6_K: return "GGML q6_K";
    case XF_GGML_IQ4_NL: return "GGML iq4_nl";
    case XF_GGML_IQ4_XS: return "GGML iq4_xs";
    default: return "GGML ?";
    }
}

/* Rows [r0, r0 + nrows) of a GGML tensor to fp32. The view is checked
 * first (views may be built by hand, not only by the .xfq reader). Blocks
 * hold fp16 fields: a row at an odd address is converted from a copy. */
static int ggml_rows_to_f32(const xf_tensor *t, int64_t r0, int64_t nrows, float *dst,
                            xf_error *err)
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

int64_t xf_tensor_numel(const xf_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->shape[i];
    return n;
}

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

static void plain_to_f32(xf_dtype dt, const void *src, float *dst, size_t n)
{
    switch (dt) {
    case XF_DTYPE_F16: half_to_f32(false, src, dst, n); break;
    case XF_DTYPE_BF16: half_to_f32(true, src, dst, n); break;
    case XF_DTYPE_F32: memcpy(dst, src, n * sizeof(float)); break;
    case XF_DTYPE_F64: {
        /* safetensors offsets need not be 8-aligned: load through memcpy */
        const unsigned char *b = src;
        for (size_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, b + i * sizeof d, sizeof d);
            dst[i] = (float)d;
        }
        break;
    }
    default: break;
    }
}

int xf_tensor_to_f32(const xf_tensor *t, float *dst, xf_error *err)
{
    if (xf_dtype_is_packed(t->dtype))
        return xfq_dequantize(t, dst, err);
    if (xf_dtype_is_ggml(t->dtype))
        return ggml_rows_to_f32(t, 0, t->ndim == 2 ? t->shape[0] : 0, dst, err);
    if (!xf_dtype_is_float(t->dtype))
        return xf_fail(err, "tensor %s: dtype %s is not a floating-point type", t->name,
                       xf_dtype_name(t->dtype));
    plain_to_f32(t->dtype, t->data, dst, (size_t)xf_tensor_numel(t));
    return 0;
}

int xf_tensor_row_to_f32(const xf_tensor *t, int64_t r, float *dst, xf_error *err)
{
    if (t->ndim != 2)
        return xf_fail(err, "tensor %s: expected 2 dimensions, has %d", t->name, t->ndim);
    if (r < 0 || r >= t->shape[0])
        return xf_fail(err, "tensor %s: row %lld out of range [0, %lld)", t->name, (long long)r,
                       (long long)t->shape[0]);
    if (xf_dtype_is_packed(t->dtype))
        return xfq_dequantize_row(t, r, dst, err);
    if (xf_dtype_is_ggml(t->dtype))
        return ggml_rows_to_f32(t, r, 1, dst, err);
    if (!xf_dtype_is_float(t->dtype))
        return xf_fail(err, "tensor %s: dtype %s is not a floating-point type", t->name,
                       xf_dtype_name(t->dtype));
    size_t cols = (size_t)t->shape[1];
    const char *base = (const char *)t->data + (size_t)r * cols * xf_dtype_size(t->dtype);
    plain_to_f32(t->dtype, base, dst, cols);
    return 0;
}

static int cmp_tensor_name(const void *a, const void *b)
{
    return strcmp(((const xf_tensor *)a)->name, ((const xf_tensor *)b)->name);
}

int xf_tensor_set_init(xf_tensor_set *s, const xf_tensor *items, size_t n, const char *what,
                       xf_error *err)
{
    s->items = NULL;
    s->n = 0;
    if (n == 0)
        return 0;
    s->items = malloc(n * sizeof *items);
    if (!s->items)
        return xf_fail(err, "%s: out of memory", what);
    memcpy(s->items, items, n * sizeof *items);
    qsort(s->items, n, sizeof *items, cmp_tensor_name);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(s->items[i - 1].name, s->items[i].name) == 0) {
            xf_fail(err, "%s: tensor \"%s\" appears more than once", what, s->items[i].name);
            xf_tensor_set_free(s);
            return -1;
        }
    }
    s->n = n;
    return 0;
}

void xf_tensor_set_free(xf_tensor_set *s)
{
    free(s->items);
    s->items = NULL;
    s->n = 0;
}

const xf_tensor *xf_tensor_set_find(const xf_tensor_set *s, const char *name)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(s->items[mid].name, name);
        if (c == 0)
            return &s->items[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}
