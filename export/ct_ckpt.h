/* Export of an .xfq to a compressed-tensors "pack-quantized" checkpoint
 * (llm-compressor's format, native in vLLM): per quantized linear
 * weight_packed / weight_scale / weight_zero_point (asym) / weight_g_idx
 * (act-order) / weight_shape, and config.json's quantization_config with
 * config_groups and ignore (docs/export.md, "compressed-tensors"). */
#ifndef XF_EXPORT_CT_CKPT_H
#define XF_EXPORT_CT_CKPT_H

#include <jansson.h>

#include "core/error.h"
#include "export/hf_export_src.h"

/* Same contract as xf_export_gptq (export/gptq_ckpt.h). */
int xf_export_compressed_tensors(const char *in, const char *out_dir,
                                 const xf_export_opts *o, json_t **summary, xf_error *err);

#endif
