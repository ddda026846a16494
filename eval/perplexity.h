/* Perplexity and KL divergence over a window plan. The model is a
 * callback that fills logits [T, vocab] for T tokens, so the evaluator is
 * independent of where logits come from (the forward runner, a test's
 * naive model, ...). */
#ifndef XF_EVAL_PERPLEXITY_H
#define XF_EVAL_PERPLEXITY_H

#include <stdint.h>

#include "core/error.h"
#include "eval/windows.h"

typedef int (*xf_logits_fn)(void *user, const int32_t *tokens, int64_t T, float *logits,
                            xf_error *err);

/* Optional: logits of n windows at once (tokens [n, T]), rows
 * first_row..T-1 of each: logits [n, T - first_row, vocab]. Each window's
 * rows must be the same bytes as fn's rows for that window alone, so that
 * results do not depend on how windows are grouped. */
typedef int (*xf_logits_windows_fn)(void *user, const int32_t *tokens, int64_t n, int64_t T,
                                    int64_t first_row, float *logits, xf_error *err);

typedef struct xf_scorer {
    xf_logits_fn fn;
    void *user;
    int64_t vocab;
    xf_logits_windows_fn windows_fn; /* NULL: fn, one window at a time */
    int64_t max_windows;             /* windows per windows_fn call; 0: 8 per OpenMP thread */
} xf_scorer;

typedef struct xf_ppl_result {
    double ppl;
    double mean_nll;      /* GPTQ: mean of window means; llama.cpp: mean over predictions */
    double ppl_stderr;    /* ppl * standard error of the mean NLL (llama.cpp's ±) */
    int64_t n_tokens;     /* tokens in the whole text (BOS included) */
    int64_t n_windows;
    int64_t seqlen;
    int64_t n_scored;     /* predictions scored */
    double seconds;
    double tokens_per_second; /* window tokens run through the model per second */
} xf_ppl_result;

int xf_perplexity_run(const xf_scorer *model, const int32_t *tokens, int64_t n_tokens,
                      const xf_window_plan *plan, xf_ppl_result *res, xf_error *err);

typedef struct xf_kld_result {
    xf_ppl_result base, model;
    double kl_mean, kl_median, kl_p99, kl_p999, kl_max;
    double same_top1;     /* fraction of scored positions with equal argmax */
    int64_t n_scored;
} xf_kld_result;

int xf_kld_run(const xf_scorer *base, const xf_scorer *model, const int32_t *tokens,
               int64_t n_tokens, const xf_window_plan *plan, xf_kld_result *res, xf_error *err);

#endif
