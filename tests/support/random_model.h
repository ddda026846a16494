/* Small random Hugging Face model directories for tests, in the real HF
 * layout of each family: config.json written like the HF configs, tensor
 * names of save_pretrained ("model." for llama/mistral/qwen2/opt,
 * "transformer." for gpt2), GPT-2 Conv1D weights stored [in, out] plus its
 * causal-mask buffer h.N.attn.bias, OPT embed_positions with max_pos + 2
 * rows, qwen2 q/k/v biases. No tokenizer files are written.
 *
 * Values: linear weights and embeddings ~ N(0, 0.02); norm weights
 * 1 + N(0, 0.05); biases (and LayerNorm biases) N(0, 0.01). Each tensor's
 * values depend only on (seed, tensor name), so the same spec gives the same
 * tensors whether sharded or not, and F16 files hold the F32 values rounded.
 *
 * Usage:
 *   xf_random_model_spec s = {.family = "llama", .hidden = 32, .intermediate = 64,
 *                             .layers = 2, .heads = 4, .kv_heads = 2, .vocab = 64,
 *                             .max_pos = 32, .seed = 1};
 *   char *dir = xf_random_model_write("/tmp/x/llama", &s);  // ... free(dir)
 */
#ifndef XF_TEST_RANDOM_MODEL_H
#define XF_TEST_RANDOM_MODEL_H

#include <stdbool.h>
#include <stdint.h>

typedef struct xf_random_model_spec {
    const char *family; /* "llama", "mistral", "qwen2", "opt", "gpt2" */
    int hidden;
    int intermediate;   /* 0: 4 * hidden (opt ffn_dim, gpt2 n_inner); required for llama family */
    int layers;
    int heads;
    int kv_heads;       /* 0: = heads; llama family only (opt/gpt2 must leave 0 or = heads) */
    int head_dim;       /* 0: hidden / heads; llama family only (written as "head_dim") */
    int vocab;
    int max_pos;
    bool tied;          /* tie_word_embeddings: no lm_head.weight written */
    bool f16;           /* F16 tensors, else F32 */
    int shards;         /* 0 or 1: model.safetensors; N >= 2: N shards of about equal
                         * bytes (model-0000i-of-0000N.safetensors) + index.json */
    uint64_t seed;
} xf_random_model_spec;

/* Writes the model into directory `dir` (created if missing; existing files
 * of the same names are replaced) and returns a malloc'd copy of `dir`, or
 * NULL on failure after printing the reason to stderr. */
char *xf_random_model_write(const char *dir, const xf_random_model_spec *spec);

#endif
