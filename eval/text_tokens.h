/* A text file turned into the token stream a model sees: read, hashed
 * (SHA-256, for provenance and --json) and encoded once with the model's
 * own tokenizer, BOS included when the tokenizer adds it. */
#ifndef XF_EVAL_TEXT_TOKENS_H
#define XF_EVAL_TEXT_TOKENS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "calib/tokenizer.h"
#include "core/error.h"
#include "model/loader.h"

typedef struct xf_text_tokens {
    int32_t *ids;
    size_t n;
    size_t text_bytes;
    char sha256[65];
} xf_text_tokens;

/* Fails on an unreadable or empty file, when the text encodes to no token
 * besides BOS, and, unless binary_ok, on a file that is not text: invalid
 * UTF-8 or a NUL byte (Python's text mode, which the reference evaluations
 * read with, refuses the first; a binary file scored silently would give a
 * meaningless number). */
int xf_text_tokens_load(xf_text_tokens *tt, const char *path, const xf_tokenizer *tok,
                        bool binary_ok, xf_error *err);

void xf_text_tokens_free(xf_text_tokens *tt);

/* The token llama.cpp's perplexity puts at the start of every chunk: BOS
 * when the tokenizer adds BOS to a text (llama_vocab_get_add_bos), else none
 * (-1): GPT-2 and Qwen2 tokenizers have a BOS token but do not add it, and
 * llama.cpp then scores the chunks as they are. */
int32_t xf_llamacpp_chunk_bos(const xf_tokenizer *tok);

/* The tokenizer of a loaded model (HF dir or .xfq); fails naming the model
 * when it has none. */
xf_tokenizer *xf_model_tokenizer(const xf_loaded_model *m, xf_error *err);

#endif
