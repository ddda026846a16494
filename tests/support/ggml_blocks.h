/* Random GGML blocks for tests and fuzz seeds: every byte pseudo-random
 * (so every code, sub-block scale and min takes arbitrary values) except the
 * fp16 super-scales (d, and dmin / m where the type has one), which are set
 * to random finite values, so that the blocks dequantize to finite weights.
 * Field offsets come from the block layouts of formats/ggml_types.h (the
 * GGUF layouts of docs/export.md). */
#ifndef XF_TEST_GGML_BLOCKS_H
#define XF_TEST_GGML_BLOCKS_H

#include <stddef.h>
#include <stdint.h>

/* Byte offset of the fp16 `d` field in a block of `type` (a quantized type
 * of formats/ggml_types.h). */
size_t xf_test_ggml_d_offset(uint32_t type);

/* Fills nblocks blocks of `type` at dst from the splitmix state. d lies in
 * [2^-9, 2^-5) (so values stay small, like trained weights), dmin / m
 * in (-2^-5, 2^-5). */
void xf_test_ggml_random_blocks(uint32_t type, int64_t nblocks, uint64_t *state, uint8_t *dst);

#endif
