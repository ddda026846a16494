/* tokenizer.json "pre_tokenizer": Sequence, Metaspace, Split (String or
 * Regex pattern; behaviors Removed, Isolated, MergedWithPrevious,
 * MergedWithNext, Contiguous; invert) and ByteLevel (add_prefix_space,
 * use_regex with GPT-2's pattern; maps bytes to the byte-level alphabet).
 * Other types fail at load, naming the type. */
#ifndef XF_CALIB_PRETOKENIZE_H
#define XF_CALIB_PRETOKENIZE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "calib/tok_buffers.h"
#include "core/error.h"

typedef struct xf_pretok xf_pretok;

/* j may be NULL or JSON null: then *out = NULL (the text is one word). */
int xf_pretok_load(const json_t *j, xf_pretok **out, const char *what, xf_error *err);
void xf_pretok_free(xf_pretok *pt);

/* out := the words of s[0..n) (empty words dropped). at_origin: s starts
 * at offset 0 of the text being encoded (Metaspace prepend_scheme
 * "first" prepends only there). */
int xf_pretok_apply(const xf_pretok *pt, const char *s, size_t n, bool at_origin, xf_pieces *out,
                    const char *what, xf_error *err);

#endif
