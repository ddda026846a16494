/* Bit packing of integer weight codes into 32-code blocks (see
 * docs/xfq-format.md, "Packed weights"), the packed view of a weight and
 * its conversion to fp32. Knows nothing of dtypes: formats/dtype.c's
 * traits table says which dtype is which bit width, and dispatches here. */
#ifndef XF_FORMATS_XFQ_PACK_H
#define XF_FORMATS_XFQ_PACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#define XFQ_BLOCK_CODES 32

typedef struct { uint8_t qs[XFQ_BLOCK_CODES * 2 / 8]; } xfq_block_q2;
typedef struct { uint8_t qs[XFQ_BLOCK_CODES * 3 / 8]; } xfq_block_q3;
typedef struct { uint8_t qs[XFQ_BLOCK_CODES * 4 / 8]; } xfq_block_q4;
typedef struct { uint8_t qs[XFQ_BLOCK_CODES * 8 / 8]; } xfq_block_q8;
_Static_assert(sizeof(xfq_block_q2) == 8, "Q2 block is 8 bytes");
_Static_assert(sizeof(xfq_block_q3) == 12, "Q3 block is 12 bytes");
_Static_assert(sizeof(xfq_block_q4) == 16, "Q4 block is 16 bytes");
_Static_assert(sizeof(xfq_block_q8) == 32, "Q8 block is 32 bytes");
/* Log2-grid blocks (L2..L8): the same bit packing, codes = sign + exponent
 * index (docs/xfq-format.md, "Log2-grid weights"). */
typedef xfq_block_q2 xfq_block_l2;
typedef xfq_block_q3 xfq_block_l3;
typedef xfq_block_q4 xfq_block_l4;
typedef xfq_block_q8 xfq_block_l8;
_Static_assert(sizeof(xfq_block_l2) == 8, "L2 block is 8 bytes");
_Static_assert(sizeof(xfq_block_l3) == 12, "L3 block is 12 bytes");
_Static_assert(sizeof(xfq_block_l4) == 16, "L4 block is 16 bytes");
_Static_assert(sizeof(xfq_block_l8) == 32, "L8 block is 32 bytes");

/* Value of log2-grid code c (bits 2..8) at a scale: +-scale * 2^-e, or
 * exactly 0 for the reserved code 2^bits - 1. Shared by the quantizer and
 * the reader so both compute the same float. */
static inline float xfq_log2_code_value(unsigned c, int bits, float scale)
{
    const unsigned kmax = (1u << (bits - 1)) - 1u;
    if (c == (1u << bits) - 1u)
        return 0.0f;
    const unsigned e = c & kmax;
    /* 2^-e via a double exponent: exact (e <= 127), one rounding to float */
    double m = 1.0;
    for (unsigned i = 0; i < e; i++)
        m *= 0.5;
    float v = (float)((double)scale * m);
    return (c >> (bits - 1)) ? -v : v;
}

/* Bytes of one block of 32 codes at `bits` (2, 3, 4, 8); 0 if unsupported. */
size_t xfq_block_bytes(int bits);
/* Packs n codes (each < 2^bits) of one row; writes ceil(n/32) blocks,
 * padding codes = 0. */
void xfq_pack_row(const uint8_t *codes, int64_t n, int bits, uint8_t *out);
void xfq_unpack_row(const uint8_t *packed, int64_t n, int bits, uint8_t *codes);

/* Byte layout of one packed tensor (parts at 64-byte aligned offsets). */
typedef struct xfq_packed_layout {
    size_t row_bytes;
    size_t codes_offset, codes_bytes;
    size_t scales_offset, scales_bytes;
    size_t zeros_offset, zeros_bytes;   /* 0 bytes when symmetric */
    size_t perm_offset, perm_bytes;     /* 0 bytes without perm */
    size_t total_bytes;
} xfq_packed_layout;

/* Fails (overflow, bad bits/group) with a message naming `what`. */
int xfq_packed_layout_compute(int64_t rows, int64_t cols, int bits, int64_t group_size,
                              bool asym, bool has_perm, xfq_packed_layout *out,
                              const char *what, xf_error *err);

/* The dense-and-sparse outliers of a packed weight (docs/xfq-format.md,
 * "Outlier side tables"): a CSR table over logical columns whose fp16
 * values REPLACE the dense dequantized ones. The view carries it, so that
 * every conversion to fp32 includes it. The bytes are those of the three
 * side-table tensors (little-endian, any alignment: read through memcpy),
 * checked before they are attached (xfq_outliers_attach). All NULL: none. */
typedef struct xf_packed_outliers {
    const uint8_t *row_ptr; /* I32 [rows + 1], from 0 to nnz, non-decreasing */
    const uint8_t *col;     /* I32 [nnz], strictly increasing within a row */
    const uint8_t *val;     /* F16 [nnz], finite */
    int64_t nnz;
} xf_packed_outliers;

/* The grid of a packed 2-D weight [rows, cols]. Codes are stored in
 * "storage column order": storage column j holds logical column perm[j]
 * (identity when perm == NULL). Groups are runs of group_size storage
 * columns (the last may be shorter). Dequantized value:
 *   W[r, perm[j]] = scale[r, g(j)] * (q[r, j] - zero[r, g(j)])
 * with zero = 2^(bits-1) when !asym, then the outlier entries replace
 * theirs. Log2-grid weights (dtypes L2..L8) use the same view (never asym,
 * no perm) with codes read as sign + exponent. */
typedef struct xf_packed_view {
    int bits;
    int64_t group_size;      /* columns per group; == cols for per-channel */
    int64_t n_groups;        /* ceil(cols / group_size) */
    bool asym;               /* zero points stored (else implicit 2^(bits-1)) */
    const uint8_t *codes;    /* rows * row_bytes, blocks of 32 codes */
    size_t row_bytes;
    const uint16_t *scales;  /* fp16 [rows, n_groups] */
    const uint8_t *zeros;    /* u8 [rows, n_groups] or NULL */
    const int32_t *perm;     /* [cols] or NULL */
    xf_packed_outliers outliers;
} xf_packed_view;

/* Checks that a view of `cols` columns is self-consistent before its bytes
 * are read (views may be built by hand, not only by the .xfq reader):
 * group size and count, row bytes, parts present, and for a log2 grid no
 * zero points or perm. Errors name tensor `name`. */
int xfq_packed_view_check(const xf_packed_view *p, int64_t cols, bool log2, const char *name,
                          xf_error *err);
/* Rows [r0, r0 + nrows) of a checked view to fp32, dst[nrows * cols] in
 * logical column order, outliers included. */
void xfq_packed_rows_to_f32(const xf_packed_view *p, int64_t cols, bool log2, int64_t r0,
                            int64_t nrows, float *dst);

#endif
