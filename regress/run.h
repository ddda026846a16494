/* Running a regression suite: select cases with the filter, skip the ones
 * whose files are missing, hand the rest to an executor callback (which
 * quantizes with the recipe and evaluates), then compare. */
#ifndef XF_REGRESS_RUN_H
#define XF_REGRESS_RUN_H

#include "core/error.h"
#include "regress/compare.h"
#include "regress/suite.h"

/* Runs one case. `out` arrives cleared (all NAN); on XF_REGRESS_EXEC_OK the
 * executor fills ppl and bits_per_weight (and kld when c->wants it;
 * seconds may stay NAN: the runner then stores its own wall time). On SKIP
 * or FAIL it fills `why` with one line (xf_fail). */
typedef xf_regress_exec (*xf_regress_executor)(const xf_regress_case *c, void *user,
                                               xf_regress_metrics *out, xf_error *why);

/* Fills *r (initialized here; free with xf_regress_results_free) by
 * running the selected cases in suite order and comparing. filter: a PCRE2
 * pattern searched (unanchored) in each case id, NULL = every case. Cases
 * whose model, eval.text or recipe.calib does not exist are SKIPped
 * without calling the executor. An executor OK with a non-finite ppl or
 * bits_per_weight becomes a FAIL. Returns -1 only for a bad filter pattern
 * or no memory; case failures are verdicts, not errors. */
int xf_regress_run(const xf_regress_suite *s, const char *filter, xf_regress_executor exec,
                   void *user, xf_regress_results *r, xf_error *err);

#endif
