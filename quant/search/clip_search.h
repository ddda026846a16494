/* Clip-ratio search for activation quantization (--act-clip search).
 *
 * For a linear input X [n, d] (captured tokens) read by linears W_r
 * [out_r, d], each candidate ratio c is scored by the output error
 *   sum_r || X W_r^T - Q_c(X) W_r^T ||^2 = sum_r || (X - Q_c(X)) W_r^T ||^2
 * with Q_c the per-token quantizer of the scheme (bits, sym, group) at
 * clip c (sim/act_quant.h). The best ratio is the one with the least
 * accumulated error; ties keep the earlier candidate (the larger ratio in
 * the default grid 1.0, 0.95, ..., 0.5).
 *
 * Granularity (our choice): ONE ratio per input kind (qkv, o, mlp, down)
 * for the whole model, stored in xf_act_scheme.act_clip_input[]: the caller
 * keeps one search per input kind and adds every layer's captured X with
 * every linear that reads it (q, k and v for qkv; gate and up for mlp).
 * A single (X, W) pair, or a per-layer search, is the same calls on fewer
 * data (xf_act_clip_search_one). The products are cblas_sgemm calls: do not
 * call from inside an OpenMP parallel region. */
#ifndef XF_QUANT_SEARCH_CLIP_SEARCH_H
#define XF_QUANT_SEARCH_CLIP_SEARCH_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"

#define XF_ACT_CLIP_MAX_CANDIDATES 64
/* 1.0, 0.95, ..., 0.5 */
#define XF_ACT_CLIP_DEFAULT_COUNT 11

typedef struct xf_act_clip_search {
    int bits;
    bool sym;
    int64_t group;                               /* 0: per token */
    int n;                                       /* candidates */
    double ratio[XF_ACT_CLIP_MAX_CANDIDATES];
    double err[XF_ACT_CLIP_MAX_CANDIDATES];      /* accumulated squared output error */
    int64_t tokens;                              /* rows added so far */
} xf_act_clip_search;

/* ratios NULL: the default grid (n ignored); else n in 1..64 ratios in
 * (0, 1]. bits 2..16. */
int xf_act_clip_search_init(xf_act_clip_search *s, int bits, bool sym, int64_t group,
                            const double *ratios, int n, xf_error *err);
void xf_act_clip_search_free(xf_act_clip_search *s);
/* Adds the error of X [n, d] through W [out, d] (row-major) for every
 * candidate. Fails when the group does not divide d, or on a non-finite
 * value in X (naming `what`). */
int xf_act_clip_search_add(xf_act_clip_search *s, const float *X, int64_t n, int64_t d,
                           const float *W, int64_t out, const char *what, xf_error *err);
/* The best ratio so far (the first candidate before any data). */
double xf_act_clip_search_best(const xf_act_clip_search *s);

/* One-shot: the best ratio of the default grid for X through W. */
int xf_act_clip_search_one(const float *X, int64_t n, int64_t d, const float *W, int64_t out,
                           int bits, bool sym, int64_t group, double *ratio, xf_error *err);

#endif
