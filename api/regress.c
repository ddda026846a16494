/* xf_regress: an accuracy regression suite run in-process (`xfquant
 * regress`): quantize and evaluate each case, compare, render, write the
 * side reports, optionally update the expected values. */
#include <stdlib.h>
#include <string.h>

#include "api/call.h"
#include "regress/exec.h"
#include "regress/report.h"
#include "regress/run.h"

static int run_suite(const char *suite_path, const xf_regress_options *o, char **report,
                     char **diff, int *failed, xf_status *st)
{
    xf_error err = {0};
    xf_regress_suite suite;
    if (xf_regress_suite_load(&suite, suite_path, NULL, &err) != 0)
        return xf_api_fail(st, XF_FAIL, &err);
    const char *tmp = o->tmpdir ? o->tmpdir : getenv("TMPDIR");
    xf_regress_exec_ctx ectx = {.tmpdir = tmp && *tmp ? tmp : "/tmp",
                                .progress = false,
                                .llamacpp_build_script = NULL};
    xf_regress_results res;
    int run_rc = xf_regress_run(&suite, o->filter, xf_regress_execute, &ectx, &res, &err);
    xf_regress_exec_ctx_free(&ectx);
    if (run_rc != 0) {
        xf_regress_suite_free(&suite);
        return xf_api_fail(st, XF_FAIL, &err);
    }
    int rc = 0;
    char *text = xf_regress_render(&res, o->format == XF_FORMAT_JSON ? XF_REGRESS_JSON
                                                                      : XF_REGRESS_TABLE);
    if (!text)
        rc = xf_api_failf(st, XF_FAIL, "%s: out of memory for the report", suite_path);
    if (report)
        *report = text;
    else
        free(text);
    *failed = xf_regress_failed(&res) ? 1 : 0;
    struct {
        const char *path;
        xf_regress_format fmt;
    } outs[] = {{o->junit, XF_REGRESS_JUNIT},
                {o->markdown, XF_REGRESS_MARKDOWN},
                {o->plot, XF_REGRESS_SVG}};
    for (size_t i = 0; i < sizeof outs / sizeof outs[0]; i++)
        if (outs[i].path && xf_regress_write(&res, outs[i].fmt, outs[i].path, &err) != 0 &&
            rc == 0) /* the first failure is the one reported */
            rc = xf_api_fail(st, XF_FAIL, &err);
    if (o->update) {
        char *d = NULL;
        if (xf_regress_suite_update(&suite, &res, &d, &err) != 0) {
            if (rc == 0)
                rc = xf_api_fail(st, XF_FAIL, &err);
            free(d);
        } else if (diff)
            *diff = d;
        else
            free(d);
    }
    xf_regress_results_free(&res);
    xf_regress_suite_free(&suite);
    return rc;
}

XF_API int xf_regress(const char *suite_path, const xf_regress_options *o, const xf_run_opts *run,
                      char **report, char **diff, int *failed, xf_status *st)
{
    if (report)
        *report = NULL;
    if (diff)
        *diff = NULL;
    int failed_dummy;
    if (!failed)
        failed = &failed_dummy;
    *failed = 0;
    if (!suite_path || !o)
        return xf_api_fail_msg(st, XF_USAGE, "xf_regress: suite and options are required");
    xf_api_call call;
    xf_api_begin(&call, run);
    int rc = run_suite(suite_path, o, report, diff, failed, st);
    xf_api_end(&call);
    if (rc == 0)
        xf_api_ok(st);
    return rc;
}
