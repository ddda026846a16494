/* Per-tensor mixed precision (--tensor-bits 'REGEX=BITS', repeatable):
 * rules "PATTERN=BITS" matched against a tensor's name (as stored in the
 * source, e.g. "model.layers.3.mlp.down_proj.weight") with PCRE2 search
 * semantics (like Python's re.search: a match anywhere; anchor with ^ and $
 * for a whole-name match). The FIRST matching rule wins, so specific rules
 * go before general ones; a tensor no rule matches keeps the default bits.
 * The split is at the last '=' so a pattern may itself hold '='. */
#ifndef XF_PIPELINE_TENSOR_BITS_H
#define XF_PIPELINE_TENSOR_BITS_H

#include <jansson.h>
#include <stddef.h>

#include "calib/regex.h"
#include "core/error.h"

#define XF_TENSOR_BITS_MAX_RULES 32

typedef struct xf_tensor_bits {
    size_t n;
    char *pattern[XF_TENSOR_BITS_MAX_RULES];
    int bits[XF_TENSOR_BITS_MAX_RULES];
    xf_regex *re[XF_TENSOR_BITS_MAX_RULES];
} xf_tensor_bits;

/* Splits one rule "PATTERN=BITS" (bits 2, 3, 4 or 8; pattern non-empty)
 * without compiling it; fails with one line naming the rule. */
int xf_tensor_bits_rule_split(const char *rule, char *pattern, size_t cap, int *bits,
                              xf_error *err);
/* Compiles rules[0..n) (n <= XF_TENSOR_BITS_MAX_RULES). */
int xf_tensor_bits_init(xf_tensor_bits *tb, const char *const *rules, size_t n, xf_error *err);
void xf_tensor_bits_free(xf_tensor_bits *tb);
/* The bits for `name`: the first matching rule's, else default_bits. */
int xf_tensor_bits_for(const xf_tensor_bits *tb, const char *name, int default_bits);
/* [{"pattern": ..., "bits": N}, ...] for the recipe. New reference. */
json_t *xf_tensor_bits_to_json(const xf_tensor_bits *tb);

#endif
