/* Checks shared by the .xfq reader and writer (internal to formats/):
 * name encoding, storage ids, CRCs, and the contents of a packed grid. */
#ifndef XF_FORMATS_XFQ_CHECK_H
#define XF_FORMATS_XFQ_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "formats/tensor.h"

/* The format is defined little-endian; structs are read/written by memcpy. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "xfq I/O assumes a little-endian host");

#define XFQ_MAX_NAME 4096u

/* Well-formed UTF-8 (no overlongs, surrogates or code points > U+10FFFF)
 * without NUL bytes (names are also used as C strings). */
bool xfq_utf8_valid(const uint8_t *s, size_t n);

/* zlib CRC-32 continued over n bytes (n may exceed 4 GiB). */
uint32_t xfq_crc32(uint32_t crc, const void *p, size_t n);

/* Storage id <-> dtype; XF_DTYPE_INVALID / 0 when there is none. */
xf_dtype xfq_storage_dtype(uint32_t storage);
uint32_t xfq_dtype_storage(xf_dtype t);

/* Grid contents of a packed view whose layout is already known valid:
 * scales finite and > 0, zeros <= 2^bits - 1, perm a permutation of
 * 0..cols-1. Errors read "<what>: tensor <name>: ...". */
int xfq_check_packed_grid(const xf_tensor *t, const char *what, xf_error *err);

/* First NaN/Inf element of a plain F32/F16/BF16 tensor: its index, or -1. */
int64_t xfq_find_nonfinite(xf_dtype dt, const void *data, size_t n);

#endif
