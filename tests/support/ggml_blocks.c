#include "tests/support/ggml_blocks.h"

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "core/half.h"
#include "formats/ggml_types.h"
#include "tests/support/test_util.h"

/* Offsets of d and of the second fp16 field (dmin / m; SIZE_MAX: none). */
static void fp16_fields(uint32_t type, size_t *d, size_t *m)
{
    *m = SIZE_MAX;
    switch (type) {
    case XF_GGML_Q4_0: *d = offsetof(xf_block_q4_0, d); break;
    case XF_GGML_Q4_1: *d = offsetof(xf_block_q4_1, d), *m = offsetof(xf_block_q4_1, m); break;
    case XF_GGML_Q5_0: *d = offsetof(xf_block_q5_0, d); break;
    case XF_GGML_Q5_1: *d = offsetof(xf_block_q5_1, d), *m = offsetof(xf_block_q5_1, m); break;
    case XF_GGML_Q8_0: *d = offsetof(xf_block_q8_0, d); break;
    case XF_GGML_Q2_K: *d = offsetof(xf_block_q2_k, d), *m = offsetof(xf_block_q2_k, dmin); break;
    case XF_GGML_Q3_K: *d = offsetof(xf_block_q3_k, d); break;
    case XF_GGML_Q4_K: *d = offsetof(xf_block_q4_k, d), *m = offsetof(xf_block_q4_k, dmin); break;
    case XF_GGML_Q5_K: *d = offsetof(xf_block_q5_k, d), *m = offsetof(xf_block_q5_k, dmin); break;
    case XF_GGML_Q6_K: *d = offsetof(xf_block_q6_k, d); break;
    case XF_GGML_IQ4_NL: *d = offsetof(xf_block_iq4_nl, d); break;
    case XF_GGML_IQ4_XS: *d = offsetof(xf_block_iq4_xs, d); break;
    default: *d = SIZE_MAX; break;
    }
}

size_t xf_test_ggml_d_offset(uint32_t type)
{
    size_t d, m;
    fp16_fields(type, &d, &m);
    return d;
}

static void put_f16(uint8_t *p, float v)
{
    uint16_t h = xf_f32_to_f16(v);
    memcpy(p, &h, sizeof h);
}

void xf_test_ggml_random_blocks(uint32_t type, int64_t nblocks, uint64_t *state, uint8_t *dst)
{
    const xf_ggml_type_traits *t = xf_ggml_traits(type);
    size_t d, m;
    fp16_fields(type, &d, &m);
    if (!t || d == SIZE_MAX)
        return;
    const size_t bytes = (size_t)nblocks * t->type_size;
    for (size_t i = 0; i < bytes; i++)
        dst[i] = (uint8_t)(xf_test_rand_u64(state) >> 56);
    for (int64_t b = 0; b < nblocks; b++) {
        uint8_t *blk = dst + (size_t)b * t->type_size;
        /* 2^-9 .. 2^-5 */
        put_f16(blk + d, (1.0f + xf_test_rand_uniform(state)) *
                             (float)(1u << (xf_test_rand_u64(state) % 4)) / 512.0f);
        if (m != SIZE_MAX)
            put_f16(blk + m, (2.0f * xf_test_rand_uniform(state) - 1.0f) / 32.0f);
    }
}
