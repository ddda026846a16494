/* Export of an .xfq to a GPTQ checkpoint directory (transformers +
 * optimum/GPTQModel, vLLM gptq / gptq_marlin): per quantized linear
 * qweight / qzeros / scales / g_idx in the layout of docs/export.md
 * ("GPTQ checkpoints"), config.json with quantization_config and
 * quantize_config.json. */
#ifndef XF_EXPORT_GPTQ_CKPT_H
#define XF_EXPORT_GPTQ_CKPT_H

#include <jansson.h>

#include "core/error.h"
#include "export/hf_export_src.h"

/* `in`: an .xfq; `out_dir`: a directory that must not exist yet (built
 * under a temp name and renamed at the end). Everything the format cannot
 * hold is refused before anything is written. *summary (may be NULL) gets
 * a JSON object: format, bits, kernels, files, counts. */
int xf_export_gptq(const char *in, const char *out_dir, const xf_export_opts *o,
                   json_t **summary, xf_error *err);

/* Packs value v (< 2^bits) as element i of a little-endian bit stream of
 * 32-bit words spaced `stride` apart: bits [bits*i, bits*i + bits). For
 * bits 2/4/8 this is GPTQ's "pf values per word"; for 3 bits it is the
 * three-words-per-32-values scheme (values straddle words). */
void xf_gptq_put_bits(uint32_t *words, size_t stride, int64_t i, int bits, uint32_t v);

#endif
