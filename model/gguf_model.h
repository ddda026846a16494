/* A GGUF file (llama.cpp, ollama) opened as a model: the hyper-parameters
 * become a config.json-equivalent object and the tokenizer.ggml.* arrays a
 * tokenizer.json-equivalent one, so that model/config.c and calib/'s
 * tokenizer parse them with every check they already make; tensors get
 * their Hugging Face names back, llama's Q/K row permutation is undone, and
 * quantized blocks are dequantized to fp32. Architectures: llama (Mistral
 * files are "llama"), qwen2, gpt2. docs/export.md ("Import") has the key
 * and name tables. */
#ifndef XF_MODEL_GGUF_MODEL_H
#define XF_MODEL_GGUF_MODEL_H

#include <jansson.h>
#include <stdbool.h>

#include "core/error.h"
#include "formats/gguf.h"
#include "formats/tensor.h"

typedef struct xf_gguf_model {
    xf_gguf_file file;
    json_t *config;            /* config.json equivalent */
    json_t *tokenizer;         /* tokenizer.json equivalent; NULL without tokenizer.ggml.model */
    json_t *tokenizer_config;  /* add_bos_token, bos/eos/unk tokens; NULL with tokenizer */
    xf_tensor_set tensors;     /* HF names: F32/F16/BF16 views into the map where no row
                                  permutation is needed, owned fp32 otherwise */
    char **names;              /* owned HF names, one per GGUF tensor */
    float **owned;             /* owned fp32 data (NULL entries for views) */
    size_t n;
    const char *quantized_tensor; /* first tensor of a quantized GGML type (its GGUF
                                     name), NULL when every tensor is F32/F16/BF16 */
} xf_gguf_model;

int xf_gguf_model_open(xf_gguf_model *m, const char *path, xf_error *err);
/* Safe on a zeroed struct and after a failed open. */
void xf_gguf_model_close(xf_gguf_model *m);

/* The config.json equivalent of f's hyper-parameters (general.architecture
 * llama, qwen2 or gpt2; others refused naming the architecture). */
json_t *xf_gguf_config_json(const xf_gguf_file *f, xf_error *err);

/* The tokenizer.json and tokenizer_config.json equivalents of f's
 * tokenizer.ggml.* keys ("llama": SentencePiece-style BPE with byte
 * fallback, merges derived from the scores as llama.cpp merges; "gpt2":
 * byte-level BPE with the merges and the pre-tokenizer named by
 * tokenizer.ggml.pre). *tok = NULL when the file has no tokenizer.
 * `vocab_rows`: rows of token_embd; a vocab of another size is refused. */
int xf_gguf_tokenizer_json(const xf_gguf_file *f, int64_t vocab_rows, json_t **tok,
                           json_t **tok_config, xf_error *err);

/* The Hugging Face name of GGUF tensor `name` in architecture `arch`;
 * -1 when the name is not one of that architecture's tensors. */
int xf_gguf_hf_name(const char *arch, const char *name, char *buf, size_t cap);

#endif
