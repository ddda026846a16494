/* Writes a tiny GGUF "llama" file whose tensors use the GGML types that
 * `xfquant export` never writes (Q5_1, the K-quants, IQ4_NL, IQ4_XS, BF16),
 * with the tests' own writer (tests/support/gguf_build.h), for the GGUF
 * seed corpus (make_seeds.sh). Block bytes are a fixed pseudo-random
 * stream with every fp16 scale field set to a small finite value, so that
 * the loader dequantizes them all (weight binding then refuses the shapes:
 * the file is a seed for the reader and the dequantizers, not a model).
 * With ALIGN (general.alignment, e.g. 1), blocks land at unaligned
 * addresses: the loader's copy-per-row path.
 *   fuzz_seed_gguf_types OUT.gguf [ALIGN] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/gguf_build.h"

typedef struct kind {
    const char *name;
    uint32_t type, block, bytes; /* GGML id, elements and bytes per block */
    int64_t rows;
} kind;

int main(int argc, char **argv)
{
    if (argc != 2 && argc != 3) {
        fprintf(stderr, "usage: fuzz_seed_gguf_types OUT.gguf [ALIGN]\n");
        return 2;
    }
    static const kind kinds[] = {
        {"token_embd.weight", 7, 32, 24, 4},          /* q5_1 */
        {"blk.0.attn_q.weight", 10, 256, 84, 4},      /* q2_K (rows permuted: 2 heads) */
        {"blk.0.attn_k.weight", 11, 256, 110, 2},     /* q3_K */
        {"blk.0.attn_v.weight", 12, 256, 144, 2},     /* q4_K */
        {"blk.0.attn_output.weight", 13, 256, 176, 1}, /* q5_K */
        {"blk.0.ffn_gate.weight", 14, 256, 210, 1},   /* q6_K */
        {"blk.0.ffn_up.weight", 23, 256, 136, 1},     /* iq4_xs */
        {"blk.0.ffn_down.weight", 20, 32, 18, 8},     /* iq4_nl */
        {"blk.0.attn_norm.weight", 30, 1, 2, 0},      /* bf16, 1-D */
        {"output_norm.weight", 0, 1, 4, 0},           /* f32, 1-D */
    };
    const int64_t width = 256;
    const uint32_t align = argc == 3 ? (uint32_t)atoi(argv[2]) : 32;
    xf_gguf_build *b = xf_gguf_build_new(align);
    xf_gguf_build_str(b, "general.architecture", "llama");
    if (argc == 3)
        xf_gguf_build_u32(b, "general.alignment", align);
    xf_gguf_build_u32(b, "llama.block_count", 1);
    xf_gguf_build_u32(b, "llama.context_length", 16);
    xf_gguf_build_u32(b, "llama.embedding_length", (uint32_t)width);
    xf_gguf_build_u32(b, "llama.feed_forward_length", (uint32_t)width);
    xf_gguf_build_u32(b, "llama.attention.head_count", 2);
    xf_gguf_build_u32(b, "llama.attention.head_count_kv", 1);
    xf_gguf_build_f32(b, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    uint32_t state = 12345;
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        const kind *t = &kinds[k];
        int64_t ne[2] = {width, t->rows};
        int nd = t->rows ? 2 : 1;
        size_t n = (size_t)(width / t->block * (t->rows ? t->rows : 1)) * t->bytes;
        uint8_t *d = malloc(n);
        if (!d)
            return 1;
        for (size_t i = 0; i < n; i++) {
            state = state * 1664525u + 1013904223u;
            d[i] = (uint8_t)(state >> 24);
        }
        /* fp16 fields: 0x2c00 = 0.0625 (bf16 / f32 1-D tensors: 1.0) */
        for (size_t off = 0; off < n; off += t->bytes) {
            uint8_t *blk = d + off;
            switch (t->type) {
            case 7: case 20: blk[0] = 0x00; blk[1] = 0x2c; if (t->type == 7) { blk[2] = 0x00; blk[3] = 0xac; } break;
            case 10: blk[80] = 0x00; blk[81] = 0x2c; blk[82] = 0x00; blk[83] = 0x2c; break;
            case 11: blk[108] = 0x00; blk[109] = 0x2c; break;
            case 12: case 13: blk[0] = 0x00; blk[1] = 0x2c; blk[2] = 0x00; blk[3] = 0x2c; break;
            case 14: blk[208] = 0x00; blk[209] = 0x2c; break;
            case 23: blk[0] = 0x00; blk[1] = 0x2c; break;
            case 30: blk[0] = 0x80; blk[1] = 0x3f; break;
            case 0: blk[0] = 0; blk[1] = 0; blk[2] = 0x80; blk[3] = 0x3f; break;
            }
        }
        xf_gguf_build_tensor(b, t->name, t->type, nd, ne, d, n);
        free(d);
    }
    int rc = xf_gguf_build_write(b, argv[1]);
    xf_gguf_build_free(b);
    return rc == 0 ? 0 : 1;
}
