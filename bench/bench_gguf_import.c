/* GGUF import throughput (bench/gguf_import.sh drives it):
 *   bench_gguf_import write FILE.gguf TYPE MPARAMS   a random llama-shaped
 *       model (hidden 2048, MLP 5632, vocab 32000, layers to reach MPARAMS
 *       million parameters) with TYPE (f16, q8_0, q4_0, q4_K) matrices whose
 *       blocks are random bytes with finite fp16 scales; norms F32
 *   bench_gguf_import open FILE.gguf   xf_model_open (parse, dequantize to
 *       fp32, bind) and prints "SECONDS FILE_BYTES FP32_BYTES_WRITTEN" of the
 *       open alone.
 * The baseline (cp of the same bytes) is timed by the script in the same run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/progress.h"
#include "core/half.h"
#include "formats/ggml_types.h"
#include "model/loader.h"
#include "tests/support/gguf_build.h"


static uint64_t rs = 88172645463325252ull;
static uint64_t rnd(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return rs;
}

typedef struct spec {
    char name[64];
    int n_dims;
    int64_t ne[2];
    uint32_t type;
    size_t bytes;
} spec;

static void fill(const spec *s, uint8_t *p)
{
    const xf_ggml_type_traits *t = xf_ggml_traits(s->type);
    size_t n = s->bytes;
    for (size_t i = 0; i + 8 <= n; i += 8) {
        uint64_t v = rnd();
        memcpy(p + i, &v, 8);
    }
    if (s->type == XF_GGML_F32) {
        for (size_t i = 0; i < n / 4; i++) {
            float v = 1.0f;
            memcpy(p + 4 * i, &v, 4);
        }
        return;
    }
    /* fp16 fields: finite, small (the values do not matter, NaN would) */
    uint16_t h = xf_f32_to_f16(0.01f);
    if (s->type == XF_GGML_F16) {
        for (size_t i = 0; i < n / 2; i++)
            p[2 * i + 1] = (uint8_t)(0x20 | (p[2 * i + 1] & 0x83)); /* |x| < 2^-6 */
        return;
    }
    for (size_t b = 0; b < n / t->type_size; b++) {
        uint8_t *q = p + b * t->type_size;
        memcpy(q, &h, 2);
        if (s->type == XF_GGML_Q4_K)
            memcpy(q + 2, &h, 2);
    }
}

static int write_model(const char *path, const char *type_name, long mparams)
{
    uint32_t mt = !strcmp(type_name, "f16")    ? XF_GGML_F16
                  : !strcmp(type_name, "q8_0") ? XF_GGML_Q8_0
                  : !strcmp(type_name, "q4_0") ? XF_GGML_Q4_0
                  : !strcmp(type_name, "q4_K") ? XF_GGML_Q4_K
                                               : 999;
    if (mt == 999) {
        fprintf(stderr, "type must be f16, q8_0, q4_0 or q4_K\n");
        return 2;
    }
    const int64_t h = 2048, ff = 5632, vocab = 32000, heads = 16;
    const int64_t per_layer = 4 * h * h + 3 * h * ff;
    long layers = (mparams * 1000000L - 2 * vocab * h) / per_layer;
    if (layers < 1)
        layers = 1;
    spec *sp = calloc((size_t)(9 * layers + 3), sizeof *sp);
    size_t ns = 0;
#define ADD(nd, a, b, ty, ...)                                                                  \
    do {                                                                                        \
        spec *s = &sp[ns++];                                                                    \
        snprintf(s->name, sizeof s->name, __VA_ARGS__);                                         \
        s->n_dims = nd, s->ne[0] = a, s->ne[1] = b, s->type = ty;                               \
        s->bytes = xf_ggml_row_bytes(xf_ggml_traits(ty), a) * (size_t)b;                        \
    } while (0)
    ADD(2, h, vocab, mt, "token_embd.weight");
    ADD(1, h, 1, XF_GGML_F32, "output_norm.weight");
    ADD(2, h, vocab, mt, "output.weight");
    for (long l = 0; l < layers; l++) {
        ADD(1, h, 1, XF_GGML_F32, "blk.%ld.attn_norm.weight", l);
        ADD(2, h, h, mt, "blk.%ld.attn_q.weight", l);
        ADD(2, h, h, mt, "blk.%ld.attn_k.weight", l);
        ADD(2, h, h, mt, "blk.%ld.attn_v.weight", l);
        ADD(2, h, h, mt, "blk.%ld.attn_output.weight", l);
        ADD(1, h, 1, XF_GGML_F32, "blk.%ld.ffn_norm.weight", l);
        ADD(2, h, ff, mt, "blk.%ld.ffn_gate.weight", l);
        ADD(2, h, ff, mt, "blk.%ld.ffn_up.weight", l);
        /* ffn_down rows of 5632 = 22 * 256 */
        ADD(2, ff, h, mt, "blk.%ld.ffn_down.weight", l);
    }
    xf_gguf_build *b = xf_gguf_build_new(32);
    xf_gguf_build_str(b, "general.architecture", "llama");
    xf_gguf_build_u32(b, "llama.context_length", 2048);
    xf_gguf_build_u32(b, "llama.embedding_length", (uint32_t)h);
    xf_gguf_build_u32(b, "llama.block_count", (uint32_t)layers);
    xf_gguf_build_u32(b, "llama.feed_forward_length", (uint32_t)ff);
    xf_gguf_build_u32(b, "llama.attention.head_count", (uint32_t)heads);
    xf_gguf_build_u32(b, "llama.attention.head_count_kv", (uint32_t)heads);
    xf_gguf_build_u32(b, "llama.rope.dimension_count", (uint32_t)(h / heads));
    xf_gguf_build_f32(b, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    uint64_t off = 0;
    for (size_t i = 0; i < ns; i++) {
        xf_gguf_build_tensor_info(b, sp[i].name, sp[i].type, sp[i].n_dims, sp[i].ne, off);
        off = (off + sp[i].bytes + 31) / 32 * 32;
    }
    uint8_t *head;
    size_t nh;
    xf_gguf_build_bytes(b, &head, &nh); /* header, padded: the data section starts here */
    xf_gguf_build_free(b);
    FILE *fp = fopen(path, "wb");
    if (!fp || fwrite(head, 1, nh, fp) != nh)
        return 1;
    free(head);
    static const uint8_t zero[32];
    for (size_t i = 0; i < ns; i++) {
        uint8_t *p = malloc(sp[i].bytes);
        fill(&sp[i], p);
        if (fwrite(p, 1, sp[i].bytes, fp) != sp[i].bytes)
            return 1;
        free(p);
        size_t pad = (32 - sp[i].bytes % 32) % 32;
        if (fwrite(zero, 1, pad, fp) != pad)
            return 1;
    }
    if (fclose(fp) != 0)
        return 1;
    printf("%s: %ld layers, %s\n", path, layers, type_name);
    free(sp);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 5 && !strcmp(argv[1], "write"))
        return write_model(argv[2], argv[3], atol(argv[4]));
    if (argc != 3 || strcmp(argv[1], "open") != 0) {
        fprintf(stderr, "usage: bench_gguf_import write FILE TYPE MPARAMS | open FILE\n");
        return 2;
    }
    xf_loaded_model m;
    xf_error err = {0};
    double t0 = xf_now_seconds();
    if (xf_model_open(&m, argv[2], &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    double t = xf_now_seconds() - t0;
    /* fp32 bytes written: the tensors that are not views into the file */
    size_t written = 0;
    const uint8_t *lo = m.gguf.file.map.data, *hi = lo + m.gguf.file.map.size;
    for (size_t i = 0; i < m.tensors->n; i++) {
        const uint8_t *d = m.tensors->items[i].data;
        if (d < lo || d >= hi)
            written += m.tensors->items[i].nbytes;
    }
    printf("%.4f %zu %zu\n", t, m.gguf.file.map.size, written);
    xf_model_close(&m);
    return 0;
}
