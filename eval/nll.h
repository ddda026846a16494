/* Per-position scoring of logits: negative log-likelihood and KL
 * divergence, via a numerically stable log-sum-exp accumulated in fp64. */
#ifndef XF_EVAL_NLL_H
#define XF_EVAL_NLL_H

#include <stdint.h>

/* -log softmax(logits)[target] for one row of `vocab` logits. */
double xf_nll_row(const float *logits, int64_t vocab, int32_t target);

typedef struct xf_kl_row {
    double kl;        /* KL(P_base || P_model) in nats */
    double nll_base;  /* -log P_base(target) */
    double nll_model; /* -log P_model(target) */
    int same_top1;    /* argmax equal */
} xf_kl_row;

/* One position: base and model logits rows, target token. */
xf_kl_row xf_kl_row_compute(const float *base, const float *model, int64_t vocab, int32_t target);

#endif
