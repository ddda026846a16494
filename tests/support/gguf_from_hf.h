/* An HF model directory (llama, qwen2, gpt2) written as GGUF by the tests'
 * own writer (tests/support/gguf_build.h), following the conventions of
 * docs/export.md (the GGUF layout) the way llama.cpp's
 * convert_hf_to_gguf.py applies them: llama.cpp's key names and types (u32,
 * f32), tensor names, llama's Q/K row permutation, GPT-2's Conv1D weights
 * transposed, 1-D tensors F32, and the tokenizer.json vocabulary as
 * tokenizer.ggml.* arrays (SentencePiece-style "llama": each merged token
 * scored minus the rank of the merge that makes it, so that merging by
 * score is merging by rank). Independent of xfquant's GGUF reader. */
#ifndef XF_TEST_GGUF_FROM_HF_H
#define XF_TEST_GGUF_FROM_HF_H

#include <stdbool.h>
#include <stdint.h>

typedef struct xf_gguf_from_hf_opts {
    uint32_t matrix_type;   /* GGML type of 2-D tensors: 0 F32, 1 F16, 2 Q4_0, 8 Q8_0; rows
                               whose length is not a multiple of 32 fall back to F16 */
    bool tokenizer;         /* write tokenizer.ggml.* (needs tokenizer.json) */
    bool omit_head;         /* write no output.weight (tied) even if the HF model has one */
    uint32_t alignment;     /* general.alignment (0: the default 32, not written) */
} xf_gguf_from_hf_opts;

/* 0 on success; prints the reason and returns -1 otherwise. */
int xf_gguf_from_hf(const char *hf_dir, const char *out_path, const xf_gguf_from_hf_opts *o);

#endif
