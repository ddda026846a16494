/* The recipe keys of the activation / KV / attention-probability scheme,
 * per-tensor bits, smoothing and outliers (docs/regress.md), checked and
 * rendered as the `xfquant rtn|gptq` flags they stand for, in key-table
 * order. The CLI parser validates values once more when the case runs. */
#ifndef XF_REGRESS_SCHEME_KEYS_H
#define XF_REGRESS_SCHEME_KEYS_H

#include <jansson.h>
#include <stdbool.h>

#include "core/error.h"

/* NULL-terminated list of the keys handled here. */
extern const char *const xf_regress_scheme_keys[];

/* Renders the keys of recipe object j into *flags (malloc'd, NULL
 * terminated; *n entries). *wants_calib: some key needs calibration text
 * with method rtn (act_clip or attn_prob_base "search", smooth, rotate klt
 * or learned). Errors name ctx and the key. */
int xf_regress_scheme_flags(const json_t *j, char ***flags, int *n, bool *wants_calib,
                            const char *ctx, xf_error *err);
void xf_regress_scheme_flags_free(char **flags);

#endif
