/* Reading quantized Hugging Face checkpoints written by other tools: a
 * model directory whose config.json has a quantization_config with
 * quant_method "gptq" (GPTQ checkpoints: qweight/qzeros/scales/g_idx) or
 * "compressed-tensors" (format pack-quantized). Each quantized linear is
 * dequantized into an owned fp32 "<module>.weight" (the value the format
 * defines, computed as scale * (q - z) in fp32 like .xfq weights), every
 * other tensor stays a view of the shards. Layouts: docs/export.md. */
#ifndef XF_FORMATS_HF_QUANTIZED_H
#define XF_FORMATS_HF_QUANTIZED_H

#include <jansson.h>
#include <stdbool.h>

#include "core/error.h"
#include "formats/hf_model.h"
#include "formats/tensor.h"

typedef struct xf_hf_quantized {
    xf_tensor_set tensors;  /* what a model binds: plain views + dequantized weights */
    xf_tensor *owned;       /* the dequantized weights (data owned) */
    size_t n_owned, cap_owned;
    char **consumed;        /* names of the quantized parts replaced by them */
    size_t n_consumed, cap_consumed;
    bool conv1d_in_out;     /* write weights [in, out] (HF GPT-2 Conv1D) except lm_head */
    json_t *info;           /* method, bits, group size, counts, packed bits per weight */
    const xf_hf_model *hf;
} xf_hf_quantized;

/* The quant_method of config.json's quantization_config, or NULL when the
 * config has none. */
const char *xf_hf_quant_method(const json_t *config);

/* Dequantizes every quantized linear of hf (which must outlive q). Fails
 * with one line naming the file and field on any inconsistency (shapes
 * contradicting bits / group_size, g_idx out of range, missing parts,
 * unknown checkpoint_format or quant_method). */
int xf_hf_quantized_open(xf_hf_quantized *q, const xf_hf_model *hf, bool conv1d_in_out,
                         xf_error *err);
/* Safe on a zeroed struct. */
void xf_hf_quantized_close(xf_hf_quantized *q);

/* ---- shared by the readers (formats/gptq_read.c, formats/ct_read.c), in
 * formats/hf_quantized_parts.c ---- */

/* The shard file holding `name` (for messages), or the directory. */
const char *xf_hfq_file_of(const xf_hf_quantized *q, const char *name);
/* Fails with "FILE: tensor MODULE.SUFFIX: message" (FILE: the shard holding
 * it); returns -1. */
int xf_hfq_fail_part(xf_error *err, const xf_hf_quantized *q, const char *module,
                     const char *suffix, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* "<module>.<suffix>" in the model, or NULL. */
const xf_tensor *xf_hfq_part(const xf_hf_quantized *q, const char *module, const char *suffix);
/* Marks "<module>.<suffix>" as replaced by the module's weight. */
int xf_hfq_consume(xf_hf_quantized *q, const char *module, const char *suffix, xf_error *err);
/* Takes W [N, K] (malloc'd) as "<module>.weight" ([K, N] when stored
 * transposed); frees W on failure. */
int xf_hfq_add_weight(xf_hf_quantized *q, const char *module, int64_t N, int64_t K, float *W,
                      xf_error *err);
/* Element i of an I32 tensor's bytes, read without assuming alignment
 * (safetensors from other writers need not align data to 4 bytes). */
uint32_t xf_hfq_u32(const void *data, size_t i);
/* fp32 value of element i of a F16/BF16/F32 tensor. */
float xf_hfq_scale_at(const xf_tensor *t, int64_t i);

int xf_gptq_read(xf_hf_quantized *q, const json_t *qc, xf_error *err);
int xf_ct_read(xf_hf_quantized *q, const json_t *qc, xf_error *err);

#endif
