/* Writes the .xfq seeds with GGML block tensors (storage 64 + ggml type,
 * docs/xfq-format.md) for the .xfq corpus (make_seeds.sh):
 *  - MODEL_OUT: the model of MODEL_DIR (a fuzz_seed_model_sized llama of
 *    hidden 32, with a tokenizer) whose seven linears are random blocks of
 *    the 32-element types (q4_0, q4_1, q5_0, q5_1, q8_0, iq4_nl, q4_0),
 *    written through pipeline/xfq_out.c as the quantizer writes them, so the
 *    loader binds and dequantizes them;
 *  - TYPES_OUT: a bare container (no config) with one tensor of each
 *    256-element type (q2_K..q6_K, iq4_xs), for the reader and the
 *    dequantizers.
 * Blocks: tests/support/ggml_blocks.h (random codes, finite fp16 scales).
 *   fuzz_seed_xfq_ggml MODEL_DIR MODEL_OUT.xfq TYPES_OUT.xfq */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/ggml_types.h"
#include "formats/xfq.h"
#include "model/loader.h"
#include "pipeline/xfq_out.h"
#include "tests/support/ggml_blocks.h"

static xf_tensor blocks(const char *name, uint32_t type, int64_t rows, int64_t cols,
                        uint64_t *rng)
{
    const xf_ggml_type_traits *tt = xf_ggml_traits(type);
    const size_t rb = xf_ggml_row_bytes(tt, cols);
    uint8_t *buf = malloc(rb * (size_t)rows);
    if (buf)
        xf_test_ggml_random_blocks(type, rows * (cols / tt->block_size), rng, buf);
    return (xf_tensor){.name = name, .dtype = XF_DTYPE_GGML, .ggml_type = type, .ndim = 2,
                       .shape = {rows, cols}, .data = buf, .nbytes = rb * (size_t)rows};
}

static int model_seed(const char *dir, const char *out, uint64_t *rng)
{
    static const uint32_t types[] = {XF_GGML_Q4_0, XF_GGML_Q4_1,  XF_GGML_Q5_0, XF_GGML_Q5_1,
                                     XF_GGML_Q8_0, XF_GGML_IQ4_NL, XF_GGML_Q4_0};
    xf_loaded_model m;
    xf_error err = {0};
    if (xf_model_open(&m, dir, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    xf_quant_collector c;
    xf_quant_collector_init(&c);
    c.items = calloc(XF_LIN_COUNT, sizeof *c.items);
    c.cap = XF_LIN_COUNT;
    for (int r = 0; r < XF_LIN_COUNT && c.items; r++) {
        const xf_tensor *w = m.weights.layers[0].lin[r].w;
        if (!w)
            continue;
        xf_qweight_packed *p = &c.items[c.n++];
        p->name = strdup(w->name);
        p->tensor = blocks(p->name, types[r % 7], w->shape[0], w->shape[1], rng);
        p->buf = (uint8_t *)p->tensor.data;
    }
    json_t *recipe = json_pack("{s:s}", "method", "none"), *prov = json_object();
    int rc = c.items ? xf_quant_write_xfq(&m, &c, recipe, prov, out, &err) : -1;
    if (rc != 0)
        fprintf(stderr, "%s\n", err.msg);
    json_decref(recipe);
    json_decref(prov);
    xf_quant_collector_free(&c);
    xf_model_close(&m);
    return rc != 0;
}

static int types_seed(const char *out, uint64_t *rng)
{
    static const uint32_t types[] = {XF_GGML_Q2_K, XF_GGML_Q3_K, XF_GGML_Q4_K,
                                     XF_GGML_Q5_K, XF_GGML_Q6_K, XF_GGML_IQ4_XS};
    static const char *const names[] = {"w.q2_K", "w.q3_K", "w.q4_K", "w.q5_K", "w.q6_K",
                                        "w.iq4_xs"};
    xf_tensor ts[6];
    for (int k = 0; k < 6; k++)
        ts[k] = blocks(names[k], types[k], 1 + k % 2, 256, rng);
    json_t *meta = json_object();
    xf_error err = {0};
    int rc = xfq_write(out, meta, ts, 6, &err);
    if (rc != 0)
        fprintf(stderr, "%s\n", err.msg);
    json_decref(meta);
    for (int k = 0; k < 6; k++)
        free((void *)ts[k].data);
    return rc != 0;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: fuzz_seed_xfq_ggml MODEL_DIR MODEL_OUT.xfq TYPES_OUT.xfq\n");
        return 2;
    }
    uint64_t rng = 77;
    return model_seed(argv[1], argv[2], &rng) || types_seed(argv[3], &rng);
}
