/* The tokenizer of a model as GGUF metadata (tokenizer.ggml.*), built from
 * its tokenizer.json with calib/'s parser (the same vocab and merge table
 * xfquant tokenizes with):
 *  - SentencePiece-style BPE (byte fallback, "▁" normalizer or Metaspace)
 *    -> model "llama": tokens, scores, token_type. llama.cpp's SPM
 *    tokenizer merges the adjacent pair whose concatenation has the
 *    highest score, HF the pair of lowest merge rank, so a token's score is
 *    -(rank of the first merge producing it): the same order for merges
 *    derived from SentencePiece scores (as HF's converter makes them).
 *    Single characters and tokens no merge produces get 0 and -1e9.
 *  - byte-level BPE (a ByteLevel pre-tokenizer or decoder) -> model "gpt2":
 *    tokens, token_type, merges "a b" in rank order, and `pre` chosen by
 *    the caller from the model family ("gpt-2", "qwen2", "llama-bpe").
 * Special ids (bos, eos, unknown, padding) and add_bos/add_eos (as
 * xfquant's tokenizer applies them) follow. The token list is padded with
 * "[PAD{i}]" (type UNUSED) to the embedding's rows; a vocab larger than
 * the embedding, or two ids with the same string (llama.cpp aborts on
 * those), is refused. */
#ifndef XF_EXPORT_GGUF_VOCAB_H
#define XF_EXPORT_GGUF_VOCAB_H

#include <jansson.h>
#include <stdint.h>

#include "core/error.h"
#include "formats/gguf_write.h"

/* tokenizer_config may be NULL. bpe_pre: the tokenizer.ggml.pre of a
 * byte-level vocab. Adds a "tokenizer" object to summary (may be NULL). */
int xf_gguf_add_vocab(xf_gguf_writer *w, const json_t *tokenizer_json,
                      const json_t *tokenizer_config, const char *bpe_pre, int64_t n_rows,
                      const char *what, json_t *summary, xf_error *err);

#endif
