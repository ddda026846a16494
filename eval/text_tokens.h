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

/* Same, for one half of the file (half 1 or 2; 0 = the whole file): the
 * file's bytes are cut after the first LF at or after byte len / 2 (half 1
 * ends with that LF), so both halves are whole lines and each is a text the
 * other never contains: a recipe tuned on nothing but calibration text can
 * be checked on two disjoint held-out texts. The hash, the UTF-8 check and
 * the tokens are those of the half's bytes, as if it were its own file. A
 * file with no LF at or after its midpoint has no halves: an error. */
int xf_text_tokens_load_half(xf_text_tokens *tt, const char *path, const xf_tokenizer *tok,
                             bool binary_ok, int half, xf_error *err);

/* The byte range [*off, *off + *n) of half 1 or 2 of text[0, len) (the cut
 * above); -1 when there is no LF at or after len / 2. */
int xf_text_half_range(const char *text, size_t len, int half, size_t *off, size_t *n);

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
