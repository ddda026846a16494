/* The regression runner: filter (PCRE2), file pre-checks, executor calls,
 * timing, then the comparison. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "core/progress.h"
#include "regress/run.h"

#include <math.h>
#include <pcre2.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/read_file.h"

/* Marks the cases whose id matches the pattern (unanchored search). */
static int select_cases(const xf_regress_suite *s, const char *filter, xf_regress_results *r,
                        xf_error *err)
{
    if (!filter)
        return 0;
    int code;
    PCRE2_SIZE at;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)filter, PCRE2_ZERO_TERMINATED, 0, &code, &at, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        return xf_fail(err, "--filter '%s': %s at offset %zu", filter, (const char *)msg,
                       (size_t)at);
    }
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    if (!md) {
        pcre2_code_free(re);
        return xf_fail(err, "--filter '%s': out of memory", filter);
    }
    int rc = 0;
    for (size_t i = 0; i < s->n_cases; i++) {
        const char *id = s->cases[i].id;
        int m = pcre2_match(re, (PCRE2_SPTR)id, strlen(id), 0, 0, md, NULL);
        if (m < 0 && m != PCRE2_ERROR_NOMATCH) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(m, msg, sizeof msg);
            rc = xf_fail(err, "--filter '%s': matching case '%s': %s", filter, id,
                         (const char *)msg);
            break;
        }
        r->cases[i].selected = m >= 0;
    }
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    return rc;
}

/* SKIP reason for a case whose input files are missing, or false. */
static bool missing_input(const xf_regress_case *c, xf_error *why)
{
    if (!xf_path_exists(c->model_path)) {
        xf_fail(why, "model %s not found", c->model);
        return true;
    }
    if (!xf_path_exists(c->eval.text_path)) {
        xf_fail(why, "eval text %s not found", c->eval.text);
        return true;
    }
    if (c->recipe.calib_path && !xf_path_exists(c->recipe.calib_path)) {
        xf_fail(why, "calibration file %s not found", c->recipe.calib);
        return true;
    }
    return false;
}


static void run_case(const xf_regress_case *c, xf_regress_executor exec, void *user,
                     xf_regress_results *r, size_t i)
{
    xf_error why = {0};
    if (missing_input(c, &why)) {
        xf_log_info("regress: %s: SKIP (%s)", c->id, why.msg);
        xf_regress_record(r, i, XF_REGRESS_EXEC_SKIP, NULL, why.msg);
        return;
    }
    xf_log_info("regress: %s: running (%s)", c->id, xf_regress_method_name(c->recipe.method));
    xf_regress_metrics got;
    xf_regress_metrics_clear(&got);
    double t0 = xf_now_seconds();
    xf_regress_exec e = exec(c, user, &got, &why);
    double dt = xf_now_seconds() - t0;
    if (e == XF_REGRESS_EXEC_OK) {
        if (isnan(got.seconds))
            got.seconds = dt;
        /* ppl and bits per weight are always reported and plotted. */
        if (!isfinite(got.ppl) || !isfinite(got.bits_per_weight)) {
            xf_fail(&why, "executor returned ppl %g, bits_per_weight %g (need finite values)",
                    got.ppl, got.bits_per_weight);
            e = XF_REGRESS_EXEC_FAIL;
        }
    } else if (e != XF_REGRESS_EXEC_SKIP) {
        e = XF_REGRESS_EXEC_FAIL;
    }
    xf_regress_record(r, i, e, e == XF_REGRESS_EXEC_OK ? &got : NULL, why.msg);
}

int xf_regress_run(const xf_regress_suite *s, const char *filter, xf_regress_executor exec,
                   void *user, xf_regress_results *r, xf_error *err)
{
    if (xf_regress_results_init(r, s, err))
        return -1;
    if (select_cases(s, filter, r, err)) {
        xf_regress_results_free(r);
        return -1;
    }
    for (size_t i = 0; i < s->n_cases; i++)
        if (r->cases[i].selected)
            run_case(&s->cases[i], exec, user, r, i);
    xf_regress_compare(r);
    return 0;
}
