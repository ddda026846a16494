/* Tokenizers loaded from HF tokenizer.json (+ tokenizer_config.json):
 * BPE in the SentencePiece style (Prepend/Replace normalizer or Metaspace,
 * byte fallback, merges by rank) and GPT-2 byte-level BPE with a regex
 * pre-tokenizer (PCRE2), plus added/special tokens. The ids are those of
 * the Hugging Face `tokenizers` library for the supported configurations:
 *   model: BPE (vocab, merges as "a b" or ["a","b"], unk_token, fuse_unk,
 *     byte_fallback, ignore_merges); normalizer: Sequence, Prepend,
 *     Replace, NFC (text already NFC by construction only, see
 *     normalizer.h); pre_tokenizer: Sequence, Metaspace, Split, ByteLevel;
 *     decoder: Sequence, Replace, ByteFallback, Fuse, Strip, ByteLevel,
 *     Metaspace; post_processor: TemplateProcessing, Bert/RobertaProcessing,
 *     ByteLevel, Sequence. Anything else fails at load, naming the type.
 * Pipeline (as HF): added tokens are cut out of the raw text first
 * (leftmost-longest), the normalizer runs on each remaining piece
 * separately, then the pre-tokenizer, then BPE on each word (the whole
 * piece when pre_tokenizer is null; merging is O(n log n)).
 * Differences from HF, all on inputs HF cannot express or would mangle:
 * text bytes that are not valid UTF-8 are accepted (byte fallback gives
 * their <0xHH> tokens, byte-level maps them like any byte); decode outputs
 * raw bytes where HF would write U+FFFD, so decode(encode(x)) == x for any
 * bytes x (except special-token text and a literal U+2581, which decode to
 * the token / a space, as in HF); a character with no vocab entry, no byte
 * fallback and no unk fails (HF drops it silently); added tokens'
 * single_word tests ASCII word characters only; "truncation" and
 * "padding" are ignored (whole texts are encoded).
 * The encoder is read-only after load: one tokenizer may serve several
 * threads. */
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
 * fails clearly). add_special: add the special tokens around the text:
 * BOS (EOS) when tokenizer_config.json says add_bos_token (add_eos_token)
 * true; when it does not state them, those of the post_processor
 * (TemplateProcessing "single": special tokens before / after the
 * sequence). *ids is malloc'd (also when empty). */
int xf_tokenizer_encode(const xf_tokenizer *tok, const char *text, size_t len, bool add_special,
                        int32_t **ids, size_t *n_ids, xf_error *err);
/* Decodes ids to text (*text malloc'd, NUL-terminated; len may be NULL).
 * skip_special drops special tokens; otherwise they go through the decoder
 * like any token (as HF does). Unknown ids fail. */
int xf_tokenizer_decode(const xf_tokenizer *tok, const int32_t *ids, size_t n_ids,
                        bool skip_special, char **text, size_t *len, xf_error *err);

/* Largest id (model vocab or added token) + 1. */
int64_t xf_tokenizer_vocab_size(const xf_tokenizer *tok);
/* bos_token / eos_token of tokenizer_config.json, else the first / last
 * special token of the post-processor template; -1 if none. */
int32_t xf_tokenizer_bos_id(const xf_tokenizer *tok); /* -1 if none */
int32_t xf_tokenizer_eos_id(const xf_tokenizer *tok); /* -1 if none */
/* True when add_special puts at least one token before the text. */
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
