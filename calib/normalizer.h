/* tokenizer.json "normalizer": Sequence, Prepend, Replace (String or Regex
 * pattern) and NFC. NFC is accepted for text that is already in NFC by
 * construction (every character in ranges that NFC leaves alone: below
 * U+0300, U+2002-U+206F, CJK U+4E00-U+9FFF, Hangul syllables); other text
 * fails naming NFC, since Unicode normalization tables are not carried.
 * Other types fail at load, naming the type. */
#ifndef XF_CALIB_NORMALIZER_H
#define XF_CALIB_NORMALIZER_H

#include <jansson.h>
#include <stddef.h>

#include "calib/tok_buffers.h"
#include "core/error.h"

typedef struct xf_normalizer xf_normalizer;

/* j may be NULL or JSON null: then *out = NULL (no normalization). */
int xf_normalizer_load(const json_t *j, xf_normalizer **out, const char *what, xf_error *err);
void xf_normalizer_free(xf_normalizer *nz);

/* out := normalized s[0..n) (out's previous content is dropped). An empty
 * input stays empty (Prepend adds nothing to an empty string, as in HF). */
int xf_normalizer_apply(const xf_normalizer *nz, const char *s, size_t n, xf_tbuf *out,
                        const char *what, xf_error *err);

#endif
