/* Opens "a model" the way users name one: an HF directory, a .safetensors
 * file with config.json beside it, an .xfq file, or a GGUF file
 * (model/gguf_model.h: dequantized to fp32, HF names and row order). Gives the config, the
 * role-bound weights and the tokenizer JSON, whatever the source. */
#ifndef XF_MODEL_LOADER_H
#define XF_MODEL_LOADER_H

#include <jansson.h>
#include <stdbool.h>

#include "core/error.h"
#include "formats/hf_model.h"
#include "formats/hf_quantized.h"
#include "formats/xfq.h"
#include "model/gguf_model.h"
#include "model/config.h"
#include "model/weights.h"

typedef enum xf_model_source { XF_SOURCE_HF = 1, XF_SOURCE_XFQ, XF_SOURCE_GGUF } xf_model_source;

typedef struct xf_loaded_model {
    xf_model_source source;
    char *path;
    xf_hf_model hf;               /* when source == HF */
    xf_hf_quantized hfq;          /* HF GPTQ / compressed-tensors checkpoint: dequantized
                                     linears (m->tensors points at hfq.tensors) */
    xfq_file xfq;                 /* when source == XFQ */
    xf_gguf_model gguf;           /* when source == GGUF */
    const json_t *config_json;    /* borrowed from hf/xfq */
    const json_t *tokenizer_json; /* may be NULL */
    const json_t *tokenizer_config_json; /* may be NULL */
    const xf_tensor_set *tensors;
    xf_model_config cfg;
    xf_model_weights weights;
    bool has_online_transforms;   /* .xfq recipe lists online transforms (rotations):
                                     run it through eval/model_scorer.h's hooks */
} xf_loaded_model;

/* An HF directory may be a quantized checkpoint (config.json
 * quantization_config, quant_method gptq or compressed-tensors): its linears
 * are dequantized to fp32 on open (formats/hf_quantized.h).
 * True when the file starts with the .xfq magic. */
bool xf_path_is_xfq(const char *path);

int xf_model_open(xf_loaded_model *m, const char *path, xf_error *err);
void xf_model_close(xf_loaded_model *m);

/* The `transposed_conv1d` flag m's tensors are bound with (xf_model_bind):
 * true for HF GPT-2 files, whose Conv1D weights are stored [in, out].
 * Whoever rebinds m->weights (model/model_edit.h) must pass the same. */
bool xf_model_conv1d_transposed(const xf_loaded_model *m);

#endif
