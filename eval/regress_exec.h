/* The real executor of regression cases: quantizes the case's model with its
 * recipe (in-process, into a temporary .xfq), then measures perplexity (and
 * KL divergence from the unquantized model when the case wants it) with the
 * case's evaluation settings, exactly as `xfquant rtn|gptq` + `xfquant ppl`
 * would. */
#ifndef XF_EVAL_REGRESS_EXEC_H
#define XF_EVAL_REGRESS_EXEC_H

#include "eval/regress_run.h"

typedef struct xf_regress_exec_ctx {
    const char *tmpdir; /* where temporary .xfq files go (removed after each case) */
    bool progress;
} xf_regress_exec_ctx;

/* An xf_regress_executor; user = xf_regress_exec_ctx*. */
xf_regress_exec xf_regress_execute(const xf_regress_case *c, void *user, xf_regress_metrics *out,
                                   xf_error *why);

#endif
