#include "eval/model_scorer.h"

#include <string.h>

static int runner_logits(void *user, const int32_t *tokens, int64_t T, float *logits,
                         xf_error *err)
{
    return xf_runner_forward(user, tokens, T, logits, err);
}

int xf_model_scorer_init(xf_model_scorer *ms, const xf_model_weights *mw, int64_t max_T,
                         xf_error *err)
{
    memset(ms, 0, sizeof *ms);
    if (xf_runner_init(&ms->runner, mw, max_T, 0, err) != 0)
        return -1;
    ms->scorer.fn = runner_logits;
    ms->scorer.user = &ms->runner;
    ms->scorer.vocab = mw->cfg.vocab;
    return 0;
}

void xf_model_scorer_free(xf_model_scorer *ms)
{
    xf_runner_free(&ms->runner);
    memset(ms, 0, sizeof *ms);
}
