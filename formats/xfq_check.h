/* Checks shared by the .xfq reader and writer (internal to formats/):
 * name encoding, storage ids, CRCs, and the contents of a packed grid. */
#ifndef XF_FORMATS_XFQ_CHECK_H
#define XF_FORMATS_XFQ_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "formats/ggml_types.h"
#include "formats/tensor.h"

/* The format is defined little-endian; structs are read/written by memcpy. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "xfq I/O assumes a little-endian host");

#define XFQ_MAX_NAME 4096u


/* zlib CRC-32 continued over n bytes (n may exceed 4 GiB). */
uint32_t xfq_crc32(uint32_t crc, const void *p, size_t n);

/* Storage id <-> dtype; XF_DTYPE_INVALID / 0 when there is none. A GGML
 * storage id (64 + a storable ggml type id) gives XF_DTYPE_GGML; the
 * reverse needs the block type: xfq_tensor_storage. */
xf_dtype xfq_storage_dtype(uint32_t storage);
uint32_t xfq_dtype_storage(xf_dtype t);
/* The traits of ggml type id `type` when .xfq stores it (a quantized type
 * of xf_ggml_traits: Q4_0..Q8_0, Q2_K..Q6_K, IQ4_NL, IQ4_XS), else NULL. */
const xf_ggml_type_traits *xfq_ggml_storable(uint32_t type);
/* The storage id of tensor t (64 + ggml_type for GGML tensors); 0 if none. */
uint32_t xfq_tensor_storage(const xf_tensor *t);

/* Grid contents of a packed view whose layout is already known valid:
 * scales finite and > 0, zeros <= 2^bits - 1, perm a permutation of
 * 0..cols-1. Errors read "<what>: tensor <name>: ...". */
int xfq_check_packed_grid(const xf_tensor *t, const char *what, xf_error *err);

/* First NaN/Inf element of a plain F32/F16/BF16 tensor: its index, or -1. */
int64_t xfq_find_nonfinite(xf_dtype dt, const void *data, size_t n);

/* Layout of a GGML tensor record/view: ndim 2, rows >= 1, cols a positive
 * multiple of the block size, `nbytes` == rows * row bytes. On success
 * *traits and *row_bytes are set. Errors read "<what>: tensor <name>: ...". */
int xfq_check_ggml_layout(const xf_tensor *t, uint64_t nbytes, const char *what,
                          const xf_ggml_type_traits **traits, size_t *row_bytes, xf_error *err);

#endif
