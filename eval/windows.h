/* The evaluation protocols, as plans of windows over a token stream.
 *  - GPTQ/AWQ/QuaRot: non-overlapping windows of seqlen tokens from the
 *    start, tail dropped, every position but the last of a window predicts
 *    the next token (seqlen-1 predictions per window).
 *  - llama.cpp `perplexity`: chunks of ctx tokens, the first token of each
 *    chunk replaced by BOS, only predictions of the second half scored
 *    (positions ctx/2 .. ctx-2 predict ctx/2+1 .. ctx-1). */
#ifndef XF_EVAL_WINDOWS_H
#define XF_EVAL_WINDOWS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef enum xf_protocol { XF_PROTOCOL_GPTQ = 1, XF_PROTOCOL_LLAMACPP } xf_protocol;

typedef struct xf_window_plan {
    xf_protocol protocol;
    int64_t seqlen;      /* window length (ctx for llama.cpp) */
    int64_t n_windows;
    int64_t first_scored; /* first position whose prediction is scored */
    int32_t bos_id;       /* llama.cpp: replaces each chunk's first token (-1: keep) */
} xf_window_plan;

/* Plans windows over n_tokens; max_windows > 0 caps them. Fails when the
 * text has fewer tokens than one window (naming both numbers). */
int xf_window_plan_make(xf_window_plan *p, xf_protocol protocol, int64_t seqlen,
                        int64_t n_tokens, int64_t max_windows, int32_t bos_id, xf_error *err);

/* Copies window w's tokens into out[seqlen] (with the BOS substitution). */
void xf_window_tokens(const xf_window_plan *p, const int32_t *tokens, int64_t w, int32_t *out);

/* Number of scored predictions per window. */
int64_t xf_window_scored(const xf_window_plan *p);

const char *xf_protocol_name(xf_protocol p);
/* "gptq" / "llamacpp"; -1 when unknown. */
int xf_protocol_parse(const char *s, xf_protocol *out);

#endif
