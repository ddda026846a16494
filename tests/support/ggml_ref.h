/* Reference GGML block codecs for tests, written element by element from
 * the formula table of docs/export.md (the GGML block formulas) (not from
 * xfquant's formats/ggml_dequant.c, which loops over sub-blocks): the value
 * of element e of a block, and encoders for Q8_0 and Q4_0 (any valid
 * encoding will do: tests compare decoders on the bytes written). */
#ifndef XF_TEST_GGML_REF_H
#define XF_TEST_GGML_REF_H

#include <stddef.h>
#include <stdint.h>

/* Elements per block and bytes per block of a GGML type id (0 if the
 * type is not one of the 15 xfquant reads). */
int xf_ref_block_elems(uint32_t type);
size_t xf_ref_block_bytes(uint32_t type);

/* Decodes n elements (whole blocks) of `type` from src. */
void xf_ref_decode(uint32_t type, const uint8_t *src, int64_t n, float *dst);

/* Encodes n floats (n % 32 == 0) as Q8_0 (type 8) or Q4_0 (type 2);
 * dst holds n / 32 blocks. */
void xf_ref_encode(uint32_t type, const float *x, int64_t n, uint8_t *dst);

#endif
