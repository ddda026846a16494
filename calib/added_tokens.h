/* tokenizer.json "added_tokens": pieces of text matched before the model
 * runs (special tokens like <s>, chat markers). As in HF, tokens with
 * "normalized": false are matched on the raw text, the others on each
 * normalized piece (their patterns normalized too); at each position the
 * longest token wins (leftmost-longest). lstrip/rstrip absorb Unicode
 * whitespace next to the match; single_word requires no ASCII letter, digit
 * or '_' just before/after the match (HF uses Unicode alphanumerics). */
#ifndef XF_CALIB_ADDED_TOKENS_H
#define XF_CALIB_ADDED_TOKENS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "calib/normalizer.h"
#include "core/error.h"

typedef struct {
    char *content;
    size_t len;
    int32_t id;
    bool special, normalized, lstrip, rstrip, single_word;
} xf_added_token;

/* Tokens of one kind (raw or normalized), indexed by their first byte,
 * longest first within a bucket. */
typedef struct {
    char **pattern;  /* [n_tokens]: what is matched (normalized content or content) */
    size_t *pat_len; /* [n_tokens] */
    uint32_t *order; /* token indices grouped by first byte */
    uint32_t start[257];
} xf_added_matcher;

typedef struct {
    xf_added_token *v;
    size_t n;
    xf_added_matcher raw, norm;
    int32_t *index_of_id; /* [n_index] token index for an id, -1 if none */
    int32_t n_index;
} xf_added_tokens;

/* j: the "added_tokens" array (NULL / null = none). nz normalizes the
 * patterns of "normalized": true tokens (may be NULL). base_ids: the ids
 * the model vocabulary already numbers; added ids beyond base_ids + count +
 * XF_TOKEN_ID_GAP (core/limits.h) are refused before any table is sized. */
int xf_added_tokens_load(xf_added_tokens *at, const json_t *j, const xf_normalizer *nz,
                         int32_t base_ids, const char *what, xf_error *err);
void xf_added_tokens_free(xf_added_tokens *at);

/* The added token with this id, or NULL. */
const xf_added_token *xf_added_token_by_id(const xf_added_tokens *at, int32_t id);
/* The added token with this content, or NULL. */
const xf_added_token *xf_added_token_by_content(const xf_added_tokens *at, const char *s,
                                                size_t n);

/* A cut of a text: a token (id >= 0) or plain text (id == -1). */
typedef struct {
    size_t start, end;
    int32_t id;
} xf_added_cut;

typedef struct {
    xf_added_cut *v;
    size_t n, cap;
} xf_added_cuts;

void xf_added_cuts_free(xf_added_cuts *c);

/* out := s[0..n) cut at the tokens of matcher (&at->raw or &at->norm);
 * empty plain pieces are left out. */
int xf_added_tokens_split(const xf_added_tokens *at, const xf_added_matcher *m, const char *s,
                          size_t n, xf_added_cuts *out, const char *what, xf_error *err);

#endif
