/* Verdicts of a regression run: what each case measured (or why it did not
 * run), checked against its bands, and the suite's relations checked
 * against the measured values.
 *
 * Case verdicts: SKIP when the case was skipped (missing model/text/calib
 * file, or the executor said so) — never PASS; FAIL when the executor
 * failed, an expected metric was not measured, or a value lies outside its
 * band; PASS otherwise.
 * Relation verdicts: SKIP when one of its cases was filtered out, skipped
 * or failed to run (that case's own FAIL already fails the run); FAIL when
 * a metric it names was not measured or the comparison does not hold. */
#ifndef XF_REGRESS_COMPARE_H
#define XF_REGRESS_COMPARE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"
#include "regress/suite.h"

typedef enum xf_regress_status {
    XF_REGRESS_PASS = 0,
    XF_REGRESS_FAIL,
    XF_REGRESS_SKIP
} xf_regress_status;

/* "PASS", "FAIL", "SKIP". */
const char *xf_regress_status_name(xf_regress_status s);

/* What an executor measured. NAN = not measured (xf_regress_metrics_clear
 * sets every field to NAN before the executor is called). */
typedef struct xf_regress_metrics {
    double ppl;
    double kld; /* only needed when case->wants[XF_REGRESS_KLD] */
    double bits_per_weight;
    double seconds; /* left NAN: the runner fills in its own timing */
    double file_bytes; /* GGUF cases: bytes of the file scored */
} xf_regress_metrics;

void xf_regress_metrics_clear(xf_regress_metrics *m);
double xf_regress_metrics_get(const xf_regress_metrics *m, xf_regress_metric metric);
void xf_regress_metrics_set(xf_regress_metrics *m, xf_regress_metric metric, double v);

/* How running a case ended (the executor's return value). */
typedef enum xf_regress_exec {
    XF_REGRESS_EXEC_OK = 0, /* metrics filled */
    XF_REGRESS_EXEC_SKIP,   /* could not run here; `why` says why */
    XF_REGRESS_EXEC_FAIL    /* an error; `why` holds it */
} xf_regress_exec;

/* The band check of one expected metric. */
typedef struct xf_regress_check {
    xf_regress_metric metric;
    double expected, got, delta; /* delta = got - expected; got NAN: not measured */
    double lo, hi;               /* band limits, -INFINITY / INFINITY for open sides */
    xf_regress_status status;
} xf_regress_check;

typedef struct xf_regress_case_result {
    bool selected; /* matched the filter (others are not reported) */
    xf_regress_exec exec;
    xf_regress_metrics got;
    xf_regress_status status;
    xf_error reason; /* why SKIP/FAIL (first failing check); empty on PASS */
    xf_regress_check checks[XF_REGRESS_N_METRICS]; /* expected metrics, in enum order */
    size_t n_checks;
} xf_regress_case_result;

typedef struct xf_regress_relation_result {
    bool selected; /* at least one of its cases selected */
    xf_regress_status status;
    double lhs, rhs; /* factor * metric of each side (the mean over a pattern's
                        cases); NAN when not evaluated */
    double lhs_min, lhs_max, rhs_min, rhs_max; /* factor * the range over the cases */
    size_t lhs_n, rhs_n; /* cases averaged on each side (1: a plain id) */
    xf_error reason;
} xf_regress_relation_result;

typedef struct xf_regress_results {
    const xf_regress_suite *suite;         /* borrowed */
    xf_regress_case_result *cases;         /* [suite->n_cases] */
    xf_regress_relation_result *relations; /* [suite->n_relations] */
    size_t n_pass, n_fail, n_skip;         /* over selected cases + relations */
} xf_regress_results;

/* Every case selected, none run yet (exec SKIP "not run"). */
int xf_regress_results_init(xf_regress_results *r, const xf_regress_suite *s, xf_error *err);
void xf_regress_results_free(xf_regress_results *r);

/* Stores what running case i produced (why: the reason for SKIP/FAIL,
 * ignored for OK; NULL allowed). */
void xf_regress_record(xf_regress_results *r, size_t i, xf_regress_exec exec,
                       const xf_regress_metrics *got, const char *why);

/* The band [lo, hi] of b (open sides are -INFINITY / INFINITY). */
void xf_regress_band_limits(const xf_regress_band *b, double *lo, double *hi);
/* Whether v lies in the band. Limits are widened by 1e-12 * |value| so a
 * value written back by --update with 15 significant digits still passes
 * a zero-width band. */
bool xf_regress_band_holds(const xf_regress_band *b, double v);

/* Computes every verdict and the counts from the recorded outcomes. */
void xf_regress_compare(xf_regress_results *r);

/* True when any selected case or relation FAILed (the exit status). */
bool xf_regress_failed(const xf_regress_results *r);

#endif
