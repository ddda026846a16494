/* An xf_scorer backed by the forward runner of a loaded model. */
#ifndef XF_EVAL_MODEL_SCORER_H
#define XF_EVAL_MODEL_SCORER_H

#include "eval/perplexity.h"
#include "model/forward.h"

typedef struct xf_model_scorer {
    xf_runner runner;
    xf_scorer scorer;
} xf_model_scorer;

int xf_model_scorer_init(xf_model_scorer *ms, const xf_model_weights *mw, int64_t max_T,
                         xf_error *err);
void xf_model_scorer_free(xf_model_scorer *ms);

#endif
