/* A Hugging Face model directory: config.json, the weights (one
 * model.safetensors, or shards listed in model.safetensors.index.json),
 * and the tokenizer files. Accepts the directory itself or the path of a
 * .safetensors file with config.json beside it. Knows files, not
 * architectures: model/weights.h maps names to roles. */
#ifndef XF_FORMATS_HF_MODEL_H
#define XF_FORMATS_HF_MODEL_H

#include <jansson.h>

#include "core/error.h"
#include "formats/safetensors.h"
#include "formats/tensor.h"

typedef struct xf_hf_model {
    char *dir;                    /* the model directory */
    json_t *config;               /* config.json */
    json_t *tokenizer;            /* tokenizer.json, or NULL if absent */
    json_t *tokenizer_config;     /* tokenizer_config.json, or NULL if absent */
    xf_safetensors *shards;
    size_t n_shards;
    xf_tensor_set tensors;        /* union over all shards */
} xf_hf_model;

/* `path`: the model directory, or a .safetensors file whose directory holds
 * config.json. Given a file: if the directory's index.json lists that file
 * as a shard, the whole indexed model is opened (a shard alone is not a
 * model); otherwise that file alone is the weights, whatever its name.
 * Given a directory: model.safetensors.index.json (preferred) or
 * model.safetensors. With an index, every distinct shard of its weight_map
 * is opened and cross-checked both ways (each mapped name is in the shard
 * named, each shard tensor is mapped to that shard). Shard names must be
 * plain file names of the same directory. Fails naming the file. */
int xf_hf_open(xf_hf_model *m, const char *path, xf_error *err);
/* Safe on a zeroed struct and after a failed open. */
void xf_hf_close(xf_hf_model *m);

#endif
