/* The export targets (export/export.h). */
#include "export/export.h"

#include <string.h>

#include "export/ct_ckpt.h"
#include "export/gptq_ckpt.h"

const xf_export_target xf_export_targets[] = {
    {"gguf", xf_export_gguf, "GGUF v3 file for llama.cpp / ollama"},
    {"gptq", xf_export_gptq, "GPTQ checkpoint directory (transformers + GPTQModel, vLLM gptq/gptq_marlin)"},
    {"compressed-tensors", xf_export_compressed_tensors,
     "compressed-tensors pack-quantized directory (llm-compressor, vLLM)"},
};
const int xf_export_n_targets = (int)(sizeof xf_export_targets / sizeof xf_export_targets[0]);

const xf_export_target *xf_export_find(const char *name)
{
    for (int i = 0; i < xf_export_n_targets; i++)
        if (!strcmp(xf_export_targets[i].name, name))
            return &xf_export_targets[i];
    return NULL;
}
