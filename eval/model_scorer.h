/* An xf_scorer backed by the forward runner of a loaded model, with the
 * activation / KV-cache / attention-probability simulation of the model's
 * recipe applied (sim/act_hooks.h), so that evaluating an .xfq reproduces
 * the scheme it was quantized for with no extra flags. */
#ifndef XF_EVAL_MODEL_SCORER_H
#define XF_EVAL_MODEL_SCORER_H

#include <stdbool.h>

#include "eval/perplexity.h"
#include "model/forward.h"
#include "model/loader.h"
#include "sim/act_hooks.h"
#include "sim/static_act.h"

typedef struct xf_model_scorer {
    xf_runner runner;
    xf_scorer scorer;
    xf_online_transforms online; /* the recipe's online transforms */
    xf_static_act static_act;    /* the recipe's "static_act" (RepQuant), or none */
    xf_act_hooks act;  /* online transforms + the scheme's quantizers */
    bool hooked;       /* false: the scheme quantizes nothing, plain forward */
} xf_model_scorer;

/* scheme NULL (or all off): the plain forward pass. */
int xf_model_scorer_init(xf_model_scorer *ms, const xf_model_weights *mw,
                         const xf_act_scheme *scheme, int64_t max_T, xf_error *err);
/* The same for a loaded model, with the scheme and the online transforms
 * (sim/online.h) read from its recipe (xf_model_act_scheme). */
int xf_model_scorer_open(xf_model_scorer *ms, const xf_loaded_model *m, int64_t max_T,
                         xf_error *err);
void xf_model_scorer_free(xf_model_scorer *ms);

/* The activation scheme stored in an .xfq recipe ("activations"); all off
 * for HF models and for recipes without one. A malformed entry fails,
 * naming the file: evaluating without it would give wrong numbers. */
int xf_model_act_scheme(const xf_loaded_model *m, xf_act_scheme *s, xf_error *err);

#endif
