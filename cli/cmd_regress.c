/* xfquant regress SUITE.json: runs an accuracy regression suite (quantize
 * with each case's recipe, evaluate, compare against recorded bands and
 * relations). Schema: docs/regress.md. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/threads.h"
#include "regress/exec.h"
#include "regress/report.h"
#include "regress/run.h"

static const char regress_help[] =
    "usage: xfquant regress SUITE.json [options]\n\n"
    "Runs every case of an accuracy regression suite (quantize with the case's\n"
    "recipe, evaluate), compares with the expected values and their bands and the\n"
    "suite's relations, prints a table and exits 1 on any failure. Cases whose\n"
    "model, text or calibration file is missing are SKIPped with the reason.\n"
    "Relative paths in the suite are resolved against the current directory\n"
    "(run it from the repository root).\n\n"
    "  --filter REGEX   only the cases whose id matches (PCRE2, unanchored)\n"
    "  --update         rewrite the expected values in SUITE.json with the measured\n"
    "                   ones (bands kept) and print the diff; refused when CI is set\n"
    "  --junit FILE     also write JUnit XML\n"
    "  --report FILE    also write a Markdown table\n"
    "  --plot FILE      also write an SVG chart (bits per weight vs perplexity)\n"
    "  --json           print the results as JSON instead of the table\n"
    "  --threads N      threads (default: all cores)\n";

int xf_cmd_regress(const xf_cli_ctx *ctx, int argc, char **argv)
{
    (void)ctx;
    static const struct option opts[] = {
        {"filter", required_argument, NULL, 'f'}, {"update", no_argument, NULL, 'u'},
        {"junit", required_argument, NULL, 'x'},  {"report", required_argument, NULL, 'r'},
        {"plot", required_argument, NULL, 'p'},   {"json", no_argument, NULL, 'J'},
        {"threads", required_argument, NULL, 't'}, {"help", no_argument, NULL, 'h'},
        {0, 0, 0, 0}};
    const char *filter = NULL, *junit = NULL, *report = NULL, *plot = NULL;
    bool update = false, json = false;
    int threads = 0;
    int64_t v;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "f:ux:r:p:Jt:h", opts, NULL)) != -1) {
        switch (c) {
        case 'f': filter = optarg; break;
        case 'u': update = true; break;
        case 'x': junit = optarg; break;
        case 'r': report = optarg; break;
        case 'p': plot = optarg; break;
        case 'J': json = true; break;
        case 't':
            if (!xf_parse_int(optarg, 1, 4096, &v))
                return xf_usage_error("regress", "--threads must be a positive integer, not '%s'",
                                      optarg);
            threads = (int)v;
            break;
        case 'h': fputs(regress_help, stdout); return XF_EXIT_OK;
        default: return xf_usage_error("regress", "unknown option or missing value: '%s'", argv[optind - 1]);
        }
    }
    if (argc - optind != 1)
        return xf_usage_error("regress", "expected one SUITE.json");
    const char *ci = getenv("CI");
    if (update && ci && *ci && strcmp(ci, "0") && strcmp(ci, "false"))
        return xf_usage_error("regress", "--update rewrites baselines and never runs in CI (CI=%s)", ci);
    xf_threads_set(threads);
    xf_error err = {0};
    xf_regress_suite suite;
    if (xf_regress_suite_load(&suite, argv[optind], NULL, &err) != 0)
        return xf_failure(err.msg);
    const char *tmp = getenv("TMPDIR");
    xf_regress_exec_ctx ectx = {.tmpdir = tmp && *tmp ? tmp : "/tmp",
                                .progress = false,
                                .llamacpp_build_script = NULL};
    xf_regress_results res;
    if (xf_regress_run(&suite, filter, xf_regress_execute, &ectx, &res, &err) != 0) {
        xf_regress_suite_free(&suite);
        return xf_failure(err.msg);
    }
    char *text = xf_regress_render(&res, json ? XF_REGRESS_JSON : XF_REGRESS_TABLE);
    fputs(text ? text : "", stdout);
    free(text);
    int exit_code = xf_regress_failed(&res) ? XF_EXIT_FAIL : XF_EXIT_OK;
    struct {
        const char *path;
        xf_regress_format fmt;
    } outs[] = {{junit, XF_REGRESS_JUNIT}, {report, XF_REGRESS_MARKDOWN}, {plot, XF_REGRESS_SVG}};
    for (size_t i = 0; i < 3; i++)
        if (outs[i].path && xf_regress_write(&res, outs[i].fmt, outs[i].path, &err) != 0)
            exit_code = xf_failure(err.msg);
    if (update) {
        char *diff = NULL;
        if (xf_regress_suite_update(&suite, &res, &diff, &err) != 0)
            exit_code = xf_failure(err.msg);
        else
            fprintf(stderr, "%s", diff ? diff : "");
        free(diff);
    }
    xf_regress_results_free(&res);
    xf_regress_suite_free(&suite);
    return exit_code;
}
