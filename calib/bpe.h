/* The BPE model of a tokenizer.json ("model": {"type": "BPE", ...}): vocab,
 * merges (as "a b" strings or ["a", "b"] pairs), unk_token, fuse_unk,
 * byte_fallback, ignore_merges. Encodes one pre-tokenized word as HF's
 * BPE::merge_word + Word::merge_all do. */
#ifndef XF_CALIB_BPE_H
#define XF_CALIB_BPE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "calib/bpe_merge.h"
#include "calib/tok_buffers.h"
#include "calib/vocab.h"
#include "core/error.h"

typedef struct {
    xf_vocab vocab;
    xf_merge_map merges;
    int32_t unk_id; /* -1 without unk_token */
    bool byte_fallback, fuse_unk, ignore_merges;
    int32_t byte_ids[256]; /* id of "<0xHH>", -1 if absent */
    int32_t ascii_ids[128]; /* id of each one-byte character (a lookup cache), -1 if absent */
} xf_bpe;

int xf_bpe_load(xf_bpe *bpe, const json_t *model, const char *what, xf_error *err);
void xf_bpe_free(xf_bpe *bpe);

/* Splits a word into its initial symbols (one per character; a character
 * missing from the vocab becomes its bytes' "<0xHH>" ids with byte_fallback,
 * else unk, consecutive unks fused when fuse_unk). Bytes that are not valid
 * UTF-8 are treated as one-byte characters missing from the vocab.
 * Appends to out; fails when a character has neither byte fallback nor unk. */
int xf_bpe_initial_symbols(const xf_bpe *bpe, const char *w, size_t n, xf_ids *out,
                           const char *what, xf_error *err);

/* Appends the ids of the word w[0..n). */
int xf_bpe_encode_word(const xf_bpe *bpe, xf_bpe_work *work, const char *w, size_t n,
                       xf_ids *out, const char *what, xf_error *err);

#endif
