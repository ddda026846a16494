/* Tokenizers loaded from HF tokenizer.json (+ tokenizer_config.json):
 * BPE in the SentencePiece style (Prepend/Replace normalizer, byte
 * fallback, merges by rank) and GPT-2 byte-level BPE with a regex
 * pre-tokenizer (PCRE2), plus added/special tokens. */
#ifndef XF_CALIB_TOKENIZER_H
#define XF_CALIB_TOKENIZER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef struct xf_tokenizer xf_tokenizer;

/* tokenizer_config may be NULL. `what` names the source in errors.
 * Unsupported model/normalizer/pre-tokenizer types fail naming the type. */
xf_tokenizer *xf_tokenizer_load(const json_t *tokenizer_json, const json_t *tokenizer_config,
                                const char *what, xf_error *err);
void xf_tokenizer_free(xf_tokenizer *tok);

/* Encodes text (any bytes; invalid UTF-8 goes through byte fallback or
 * fails clearly). add_special: prepend BOS when the tokenizer adds it
 * (add_bos_token / post_processor). *ids is malloc'd. */
int xf_tokenizer_encode(const xf_tokenizer *tok, const char *text, size_t len, bool add_special,
                        int32_t **ids, size_t *n_ids, xf_error *err);
/* Decodes ids to text (*text malloc'd, NUL-terminated). skip_special drops
 * special tokens. */
int xf_tokenizer_decode(const xf_tokenizer *tok, const int32_t *ids, size_t n_ids,
                        bool skip_special, char **text, size_t *len, xf_error *err);

int64_t xf_tokenizer_vocab_size(const xf_tokenizer *tok);
int32_t xf_tokenizer_bos_id(const xf_tokenizer *tok); /* -1 if none */
int32_t xf_tokenizer_eos_id(const xf_tokenizer *tok); /* -1 if none */
bool xf_tokenizer_adds_bos(const xf_tokenizer *tok);

/* Line ends as Python's open() in text mode reads them: "\r\n" and a
 * lone "\r" become "\n", in place; returns the new length (the text stays
 * NUL-terminated if it was). The tokenizer itself, like HF's, encodes "\r"
 * as a token (<0x0D> with byte fallback); reference token counts and
 * perplexities of text files are computed on text read in text mode, so
 * readers of text files call this before encoding (novels/eval.txt:
 * 251,878 tokens with BOS after it, one <0x0D> more per line without).
 * A UTF-8 BOM is kept, as Python's "utf-8" codec keeps it. */
size_t xf_text_universal_newlines(char *text, size_t len);

#endif
