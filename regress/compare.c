/* Bands, relations and verdicts of a regression run. */
#include "regress/compare.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

const char *xf_regress_status_name(xf_regress_status s)
{
    switch (s) {
    case XF_REGRESS_PASS: return "PASS";
    case XF_REGRESS_FAIL: return "FAIL";
    case XF_REGRESS_SKIP: return "SKIP";
    }
    return "?";
}

void xf_regress_metrics_clear(xf_regress_metrics *m)
{
    m->ppl = m->kld = m->bits_per_weight = m->seconds = m->file_bytes = NAN;
}

double xf_regress_metrics_get(const xf_regress_metrics *m, xf_regress_metric metric)
{
    switch (metric) {
    case XF_REGRESS_PPL: return m->ppl;
    case XF_REGRESS_KLD: return m->kld;
    case XF_REGRESS_BPW: return m->bits_per_weight;
    case XF_REGRESS_SECONDS: return m->seconds;
    case XF_REGRESS_FILE_BYTES: return m->file_bytes;
    case XF_REGRESS_N_METRICS: break;
    }
    return NAN;
}

void xf_regress_metrics_set(xf_regress_metrics *m, xf_regress_metric metric, double v)
{
    switch (metric) {
    case XF_REGRESS_PPL: m->ppl = v; break;
    case XF_REGRESS_KLD: m->kld = v; break;
    case XF_REGRESS_BPW: m->bits_per_weight = v; break;
    case XF_REGRESS_SECONDS: m->seconds = v; break;
    case XF_REGRESS_FILE_BYTES: m->file_bytes = v; break;
    case XF_REGRESS_N_METRICS: break;
    }
}

int xf_regress_results_init(xf_regress_results *r, const xf_regress_suite *s, xf_error *err)
{
    memset(r, 0, sizeof *r);
    r->suite = s;
    r->cases = calloc(s->n_cases ? s->n_cases : 1, sizeof *r->cases);
    r->relations = calloc(s->n_relations ? s->n_relations : 1, sizeof *r->relations);
    if (!r->cases || !r->relations) {
        xf_regress_results_free(r);
        return xf_fail(err, "%s: out of memory for results", s->path);
    }
    for (size_t i = 0; i < s->n_cases; i++) {
        xf_regress_case_result *c = &r->cases[i];
        c->selected = true;
        c->exec = XF_REGRESS_EXEC_SKIP;
        c->status = XF_REGRESS_SKIP;
        xf_regress_metrics_clear(&c->got);
        xf_fail(&c->reason, "not run");
    }
    return 0;
}

void xf_regress_results_free(xf_regress_results *r)
{
    free(r->cases);
    free(r->relations);
    memset(r, 0, sizeof *r);
}

void xf_regress_record(xf_regress_results *r, size_t i, xf_regress_exec exec,
                       const xf_regress_metrics *got, const char *why)
{
    xf_regress_case_result *c = &r->cases[i];
    c->exec = exec;
    if (got)
        c->got = *got;
    else
        xf_regress_metrics_clear(&c->got);
    xf_error_clear(&c->reason);
    if (exec != XF_REGRESS_EXEC_OK)
        xf_fail(&c->reason, "%s", why && *why ? why : "no reason given");
}

static double side_limit(double value, const xf_regress_side *side, double sign)
{
    switch (side->kind) {
    case XF_REGRESS_TOL_ABS: return value + sign * side->tol;
    case XF_REGRESS_TOL_REL: return value + sign * side->tol * fabs(value);
    case XF_REGRESS_TOL_OPEN: break;
    }
    return sign * INFINITY;
}

void xf_regress_band_limits(const xf_regress_band *b, double *lo, double *hi)
{
    *lo = side_limit(b->value, &b->floor, -1.0);
    *hi = side_limit(b->value, &b->ceiling, 1.0);
}

bool xf_regress_band_holds(const xf_regress_band *b, double v)
{
    if (!isfinite(v))
        return false;
    double lo, hi;
    xf_regress_band_limits(b, &lo, &hi);
    double slack = 1e-12 * fabs(b->value);
    return v >= lo - slack && v <= hi + slack;
}

static void compare_case(const xf_regress_case *c, xf_regress_case_result *cr)
{
    cr->n_checks = 0;
    if (cr->exec == XF_REGRESS_EXEC_SKIP) {
        cr->status = XF_REGRESS_SKIP;
        return;
    }
    if (cr->exec == XF_REGRESS_EXEC_FAIL) {
        cr->status = XF_REGRESS_FAIL;
        return;
    }
    cr->status = XF_REGRESS_PASS;
    xf_error_clear(&cr->reason);
    for (int m = 0; m < XF_REGRESS_N_METRICS; m++) {
        const xf_regress_band *b = &c->expect[m];
        if (!b->present)
            continue;
        xf_regress_check *k = &cr->checks[cr->n_checks++];
        k->metric = (xf_regress_metric)m;
        k->expected = b->value;
        k->got = xf_regress_metrics_get(&cr->got, k->metric);
        k->delta = k->got - k->expected;
        xf_regress_band_limits(b, &k->lo, &k->hi);
        k->status = xf_regress_band_holds(b, k->got) ? XF_REGRESS_PASS : XF_REGRESS_FAIL;
        if (k->status == XF_REGRESS_PASS || cr->status == XF_REGRESS_FAIL)
            continue;
        /* The first failing check is the case's reason. */
        cr->status = XF_REGRESS_FAIL;
        const char *name = xf_regress_metric_name(k->metric);
        if (b->pending)
            xf_fail(&cr->reason,
                    "%s: no baseline yet (value null; got %.6g): record it with xfquant regress "
                    "--update",
                    name, k->got);
        else if (isnan(k->got))
            xf_fail(&cr->reason, "%s not measured", name);
        else if (!isfinite(k->got))
            xf_fail(&cr->reason, "%s is %g", name, k->got);
        else if (k->got < k->lo)
            xf_fail(&cr->reason, "%s %.6g below floor %.6g (expected %.6g)", name, k->got, k->lo,
                    k->expected);
        else
            xf_fail(&cr->reason, "%s %.6g above ceiling %.6g (expected %.6g)", name, k->got, k->hi,
                    k->expected);
    }
}

static bool op_holds(xf_regress_op op, double a, double b)
{
    switch (op) {
    case XF_REGRESS_LT: return a < b;
    case XF_REGRESS_LE: return a <= b;
    case XF_REGRESS_GT: return a > b;
    case XF_REGRESS_GE: return a >= b;
    }
    return false;
}

/* True (with the SKIP reason in why) when one of the term's cases has no values. */
static bool term_unavailable(const xf_regress_results *r, const xf_regress_term *t, xf_error *why)
{
    for (size_t m = 0; m < t->n_cases; m++) {
        const xf_regress_case_result *cr = &r->cases[t->cases[m]];
        const char *id = r->suite->cases[t->cases[m]].id;
        if (!cr->selected) {
            xf_fail(why, "case '%s' not selected by the filter", id);
            return true;
        }
        if (cr->exec == XF_REGRESS_EXEC_SKIP) {
            xf_fail(why, "case '%s' skipped: %s", id, cr->reason.msg);
            return true;
        }
        if (cr->exec == XF_REGRESS_EXEC_FAIL) {
            xf_fail(why, "case '%s' did not run: %s", id, cr->reason.msg);
            return true;
        }
    }
    return false;
}

static bool term_selected(const xf_regress_results *r, const xf_regress_term *t)
{
    for (size_t m = 0; m < t->n_cases; m++)
        if (r->cases[t->cases[m]].selected)
            return true;
    return false;
}

/* The term's value (mean over its cases, in suite order) and range, times
 * its factor; the index of a case that did not measure the metric in
 * *missing (the value is then NAN). */
static double term_value(const xf_regress_results *r, const xf_regress_term *t, double *lo,
                         double *hi, size_t *missing)
{
    double sum = 0;
    *lo = INFINITY;
    *hi = -INFINITY;
    for (size_t m = 0; m < t->n_cases; m++) {
        double v = xf_regress_metrics_get(&r->cases[t->cases[m]].got, t->metric);
        if (!isfinite(v)) {
            *missing = t->cases[m];
            *lo = *hi = NAN;
            return NAN;
        }
        sum += v;
        *lo = fmin(*lo, v * t->factor);
        *hi = fmax(*hi, v * t->factor);
    }
    return sum / (double)t->n_cases * t->factor;
}

static void compare_relation(const xf_regress_results *r, const xf_regress_relation *rl,
                             xf_regress_relation_result *rr)
{
    rr->selected = term_selected(r, &rl->lhs) || term_selected(r, &rl->rhs);
    rr->lhs = rr->rhs = rr->lhs_min = rr->lhs_max = rr->rhs_min = rr->rhs_max = NAN;
    rr->lhs_n = rl->lhs.n_cases;
    rr->rhs_n = rl->rhs.n_cases;
    xf_error_clear(&rr->reason);
    rr->status = XF_REGRESS_SKIP;
    if (term_unavailable(r, &rl->lhs, &rr->reason) || term_unavailable(r, &rl->rhs, &rr->reason))
        return;
    size_t miss = SIZE_MAX;
    rr->lhs = term_value(r, &rl->lhs, &rr->lhs_min, &rr->lhs_max, &miss);
    const xf_regress_term *missing = miss != SIZE_MAX ? &rl->lhs : NULL;
    if (!missing) {
        rr->rhs = term_value(r, &rl->rhs, &rr->rhs_min, &rr->rhs_max, &miss);
        missing = miss != SIZE_MAX ? &rl->rhs : NULL;
    }
    if (missing) {
        rr->status = XF_REGRESS_FAIL;
        xf_fail(&rr->reason, "%s(%s) not measured", xf_regress_metric_name(missing->metric),
                r->suite->cases[miss].id);
        return;
    }
    if (op_holds(rl->op, rr->lhs, rr->rhs)) {
        rr->status = XF_REGRESS_PASS;
        return;
    }
    rr->status = XF_REGRESS_FAIL;
    xf_fail(&rr->reason, "%.6g %s %.6g does not hold", rr->lhs, xf_regress_op_name(rl->op),
            rr->rhs);
}

static void count(xf_regress_results *r, xf_regress_status s)
{
    if (s == XF_REGRESS_PASS)
        r->n_pass++;
    else if (s == XF_REGRESS_FAIL)
        r->n_fail++;
    else
        r->n_skip++;
}

void xf_regress_compare(xf_regress_results *r)
{
    const xf_regress_suite *s = r->suite;
    r->n_pass = r->n_fail = r->n_skip = 0;
    for (size_t i = 0; i < s->n_cases; i++) {
        compare_case(&s->cases[i], &r->cases[i]);
        if (r->cases[i].selected)
            count(r, r->cases[i].status);
    }
    for (size_t i = 0; i < s->n_relations; i++) {
        compare_relation(r, &s->relations[i], &r->relations[i]);
        if (r->relations[i].selected)
            count(r, r->relations[i].status);
    }
}

bool xf_regress_failed(const xf_regress_results *r)
{
    return r->n_fail > 0;
}
