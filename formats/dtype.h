/* The element and storage types of tensors (xf_dtype) and their traits
 * table, one row per dtype (as ggml's type_traits): name, element or block
 * size, kind, .xfq storage id and the function converting rows to fp32.
 * Everything that asks "what is this dtype" reads the table; tensor.c
 * dispatches conversions through it to the per-format code (xfq_pack.c,
 * ggml_dequant.c), which knows nothing of dtypes. */
#ifndef XF_FORMATS_DTYPE_H
#define XF_FORMATS_DTYPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef enum xf_dtype {
    XF_DTYPE_INVALID = 0,
    /* plain element types (safetensors names in xf_dtype_name) */
    XF_DTYPE_F16,
    XF_DTYPE_BF16,
    XF_DTYPE_F32,
    XF_DTYPE_F64,
    XF_DTYPE_I8,
    XF_DTYPE_U8,
    XF_DTYPE_I16,
    XF_DTYPE_U16,
    XF_DTYPE_I32,
    XF_DTYPE_U32,
    XF_DTYPE_I64,
    XF_DTYPE_U64,
    XF_DTYPE_BOOL,
    /* packed integer weights, only in .xfq (see docs/xfq-format.md) */
    XF_DTYPE_Q2,
    XF_DTYPE_Q3,
    XF_DTYPE_Q4,
    XF_DTYPE_Q8,
    /* packed log2-grid weights (sign + exponent codes), only in .xfq */
    XF_DTYPE_L2,
    XF_DTYPE_L3,
    XF_DTYPE_L4,
    XF_DTYPE_L8,
    /* GGML blocks (formats/ggml_types.h) as llama.cpp stores them, only in
     * .xfq: xf_tensor.ggml_type says which block type (docs/xfq-format.md) */
    XF_DTYPE_GGML,
    XF_DTYPE_COUNT
} xf_dtype;

struct xf_tensor;

/* Rows [r0, r0 + nrows) of t to fp32 (dst[nrows * row length]); a row is
 * the last dimension (the whole tensor is its numel / row length rows).
 * Checks the view first: views may be built by hand. */
typedef int (*xf_rows_to_f32_fn)(const struct xf_tensor *t, int64_t r0, int64_t nrows,
                                 float *dst, xf_error *err);

typedef struct xf_dtype_traits {
    xf_dtype dtype;          /* the row's own id (rows are in enum order) */
    const char *name;        /* "F16", "BF16", ..., "Q4", "L4", "GGML" */
    size_t elem_bytes;       /* plain types: bytes per element; else 0 */
    int code_bits;           /* Q2..Q8, L2..L8: bits per code; else 0 */
    int64_t block_elems;     /* elements per block: 1 plain, 32 Q/L (XFQ_BLOCK_CODES);
                                GGML: per block type (formats/ggml_types.h), 0 here */
    size_t block_bytes;      /* bytes per block: elem_bytes plain, the packed block of
                                formats/xfq_pack.h for Q/L; GGML: per block type, 0 here */
    bool is_float;           /* F16, BF16, F32, F64 */
    bool is_packed;          /* Q and L: codes + grid (xf_packed_view) */
    bool is_log2;            /* L: codes on the log2 grid */
    bool is_ggml;            /* rows of GGML blocks (not "packed": no codes/scales view) */
    bool safetensors;        /* a safetensors dtype (xf_dtype_from_name parses it) */
    uint32_t xfq_storage;    /* .xfq storage id (formats/xfq.h); GGML: the base, to which
                                the ggml type id is added; 0: not stored in .xfq */
    xf_rows_to_f32_fn rows_to_f32; /* NULL: no fp32 conversion (integer types) */
} xf_dtype_traits;

/* The row of t; NULL for XF_DTYPE_INVALID and ids outside the enum. */
const xf_dtype_traits *xf_dtype_traits_of(xf_dtype t);

/* Bytes per element for plain types; 0 for packed/invalid. */
size_t xf_dtype_size(xf_dtype t);
/* "F16", "BF16", ..., "Q4"; "?" for invalid. */
const char *xf_dtype_name(xf_dtype t);
/* Parses a safetensors dtype string; XF_DTYPE_INVALID if unknown. */
xf_dtype xf_dtype_from_name(const char *name);
bool xf_dtype_is_packed(xf_dtype t);
/* L2..L8: packed codes on the log2 grid (docs/xfq-format.md). */
bool xf_dtype_is_log2(xf_dtype t);
bool xf_dtype_is_float(xf_dtype t);
/* XF_DTYPE_GGML: rows of GGML blocks (not "packed": no codes/scales view). */
bool xf_dtype_is_ggml(xf_dtype t);
/* Bits of one code for packed types (2, 3, 4, 8; Q and L); 0 otherwise. */
int xf_dtype_packed_bits(xf_dtype t);
/* The packed dtype of `bits`-bit codes: Q2..Q8, or L2..L8 when log2;
 * XF_DTYPE_INVALID for a width without one (5, 6, 7). */
xf_dtype xf_dtype_packed_for_bits(int bits, bool log2);
/* The dtype of .xfq storage id `storage` (XF_DTYPE_GGML for the whole GGML
 * range 64..127: which ggml types .xfq stores is formats/xfq_check.h's
 * business); XF_DTYPE_INVALID when none. */
xf_dtype xf_dtype_from_xfq_storage(uint32_t storage);

#endif
