/* xfquant rtn / xfquant gptq: weight quantization of a model into .xfq.
 *
 * The options are the public option table (include/xfquant.h,
 * xf_option_get): the getopt table, --help and the recipe are generated
 * from it, each flag is xf_recipe_set(key, value), `--recipe FILE` is
 * applied first (flags override it wherever they stand). Only --recipe,
 * --threads, --json, -v and --help are this file's own. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api/quantize_cmdline.h"
#include "cli/cli.h"
#include "core/log.h"
#include "core/read_file.h"
#include "include/xfquant.h"

static const char rtn_intro[] =
    "usage: xfquant rtn --bits N [options] IN OUT.xfq\n\n"
    "Round-to-nearest quantization of every decoder linear of IN (HF directory,\n"
    ".safetensors with config.json beside it, .xfq or GGUF) into OUT.xfq (or OUT.gguf\n"
    "with --gguf-type). rtn reads calibration text (--calib and the options after it)\n"
    "only for the options marked [needs --calib].\n";

static const char gptq_intro[] =
    "usage: xfquant gptq --bits N --calib FILE [options] IN OUT.xfq\n\n"
    "GPTQ quantization (Frantar et al. 2023) of every decoder linear of IN into\n"
    "OUT.xfq, calibrated block by block on text (true-sequential: q/k/v, then o,\n"
    "then gate/up, then down, each seeing inputs from the already quantized ones).\n";

static const char cli_help[] =
    "  --recipe FILE          a recipe JSON (the object `xfquant info --json` shows as\n"
    "                         \"recipe\".\"options\", or a .xfq's whole recipe): its keys\n"
    "                         are the [keys] above; flags given here override it\n"
    "  --threads N            threads (default: all cores)\n"
    "  --json                 print a JSON summary\n"
    "  -v, --verbose          log progress details\n";

enum { OPT_THREADS = 1, OPT_JSON, OPT_HELP, OPT_RECIPE, OPT_VERBOSE = 'v', OPT_ROW = 256 };

static unsigned method_mask(const char *cmd)
{
    return strcmp(cmd, "gptq") == 0 ? XF_METHOD_MASK_GPTQ : XF_METHOD_MASK_RTN;
}

/* --help: every table row this method accepts, then the CLI's own flags. */
static void print_help(const char *cmd)
{
    fputs(strcmp(cmd, "gptq") == 0 ? gptq_intro : rtn_intro, stdout);
    fputs("\noptions ([key] in a recipe JSON):\n", stdout);
    for (int i = 0; i < xf_option_count(); i++) {
        xf_option_info o;
        if (xf_option_get(i, &o) != 0 || !(o.methods & method_mask(cmd)))
            continue;
        char head[64];
        snprintf(head, sizeof head, "--%s%s%s", o.flag, o.arg_name ? " " : "",
                 o.arg_name ? o.arg_name : "");
        printf("  %-22s ", head);
        for (const char *p = o.help; *p; p++) {
            putchar(*p);
            if (*p == '\n')
                printf("%25s", "");
        }
        if (o.default_text && o.type != XF_OPT_BOOL)
            printf(" (default %s)", o.default_text);
        if (o.needs_calib)
            fputs(" [needs --calib]", stdout);
        printf(" [%s]\n", o.key);
    }
    fputs(cli_help, stdout);
}

typedef struct quant_cli {
    const char *recipe_path;
    int threads;
    bool json, help;
} quant_cli;

/* The getopt table: the option rows this method accepts (val OPT_ROW + row)
 * and the CLI's own; malloc'd. The rows of the other method are listed
 * too, so that they are refused with "applies to gptq only" rather than
 * "unknown option". */
static struct option *build_options(void)
{
    static const struct option own[] = {
        {"threads", required_argument, NULL, OPT_THREADS},
        {"json", no_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, OPT_HELP},
        {"recipe", required_argument, NULL, OPT_RECIPE},
        {"verbose", no_argument, NULL, OPT_VERBOSE},
    };
    const int n_rows = xf_option_count(), n_own = (int)(sizeof own / sizeof *own);
    struct option *t = calloc((size_t)(n_rows + n_own + 1), sizeof *t);
    if (!t)
        return NULL;
    int n = 0;
    for (int i = 0; i < n_rows; i++) {
        xf_option_info o;
        if (xf_option_get(i, &o) != 0)
            continue;
        t[n++] = (struct option){o.flag, o.type == XF_OPT_BOOL ? no_argument : required_argument,
                                 NULL, OPT_ROW + i};
    }
    for (int i = 0; i < n_own; i++)
        t[n++] = own[i];
    return t;
}

/* Pass 1: the CLI's own flags; the keys of table flags go to *keys. */
static int first_pass(const char *cmd, int argc, char **argv, const struct option *opts,
                      quant_cli *x, json_t *keys)
{
    int c;
    int64_t v;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "v", opts, NULL)) != -1) {
        switch (c) {
        case OPT_THREADS:
            if (!xf_parse_int(optarg, 1, 4096, &v))
                return xf_usage_error(cmd, "--threads must be a positive integer, not '%s'",
                                      optarg);
            x->threads = (int)v;
            break;
        case OPT_JSON: x->json = true; break;
        case OPT_HELP: x->help = true; break;
        case OPT_RECIPE: x->recipe_path = optarg; break;
        case OPT_VERBOSE: xf_log_set_level(XF_LOG_INFO); break;
        default:
            if (c >= OPT_ROW) {
                xf_option_info o;
                if (xf_option_get(c - OPT_ROW, &o) == 0)
                    json_array_append_new(keys, json_string(o.key));
                break;
            }
            return xf_usage_error(cmd, "unknown option or missing value: '%s'", argv[optind - 1]);
        }
    }
    return 0;
}

/* The --recipe file without the keys the command line sets (a list key
 * given as a flag replaces the file's list instead of extending it). */
static xf_recipe *recipe_from_file(const char *cmd, const char *path, const json_t *flag_keys,
                                   int *rc)
{
    char *text = NULL;
    size_t len = 0;
    xf_error err = {0};
    *rc = 0;
    if (xf_read_file(path, &text, &len, &err) != 0) {
        *rc = xf_failure(err.msg);
        return NULL;
    }
    json_error_t je;
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    free(text);
    if (!j) {
        *rc = xf_usage_error(cmd, "--recipe %s: line %d: %s", path, je.line, je.text);
        return NULL;
    }
    /* the keys may sit in "options" (a .xfq's recipe) or "recipe"."options" (info --json) */
    json_t *obj = j, *inner;
    if (json_is_object(inner = json_object_get(j, "options")))
        obj = inner;
    else if (json_is_object(inner = json_object_get(json_object_get(j, "recipe"), "options")))
        obj = inner;
    size_t i;
    json_t *k;
    json_array_foreach(flag_keys, i, k) if (json_is_object(obj))
        json_object_del(obj, json_string_value(k));
    /* a recipe without "method" is this command's */
    if (json_is_object(obj) && !json_object_get(obj, "method"))
        json_object_set_new(obj, "method", json_string(cmd));
    char *s = json_dumps(obj, JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(j);
    xf_status st = {0};
    xf_recipe *r = s ? xf_recipe_from_json(s, &st) : NULL;
    free(s);
    if (!r) {
        *rc = xf_usage_error(cmd, "--recipe %s: %s", path, st.message[0] ? st.message : "out of memory");
        return NULL;
    }
    char *back = xf_recipe_to_json(r, &st);
    json_t *bj = back ? json_loads(back, 0, NULL) : NULL;
    const char *method = json_string_value(json_object_get(bj, "method"));
    if (!method || strcmp(method, cmd) != 0) {
        *rc = xf_usage_error(cmd, "--recipe %s: the recipe's method is '%s', not %s", path,
                             method ? method : "?", cmd);
        xf_recipe_free(r);
        r = NULL;
    }
    json_decref(bj);
    xf_free(back);
    return r;
}

/* Pass 2: every table flag, in order, onto the recipe. */
static int second_pass(const char *cmd, int argc, char **argv, const struct option *opts,
                       xf_recipe *r)
{
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "v", opts, NULL)) != -1) {
        xf_option_info o;
        if (c < OPT_ROW || xf_option_get(c - OPT_ROW, &o) != 0)
            continue;
        xf_status st = {0};
        if (xf_recipe_set(r, o.key, o.type == XF_OPT_BOOL ? "true" : optarg, &st) != 0)
            return xf_usage_error(cmd, "%s", st.message);
    }
    return 0;
}

static void print_summary(const char *out, const char *summary_text, bool json)
{
    json_t *summary = json_loads(summary_text ? summary_text : "{}", 0, NULL);
    if (json) {
        char *s = json_dumps(summary, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(10));
        puts(s ? s : "{}");
        free(s);
    } else {
        printf("%s: %lld tensors quantized (%lld parameters) at %.4f bits per weight in %.1f s\n",
               out, (long long)json_integer_value(json_object_get(summary, "quantized_tensors")),
               (long long)json_integer_value(json_object_get(summary, "quantized_params")),
               json_number_value(json_object_get(summary, "bits_per_weight")),
               json_number_value(json_object_get(summary, "seconds")));
    }
    json_decref(summary);
}

static int run_quant(const xf_cli_ctx *ctx, const char *cmd, int argc, char **argv)
{
    struct option *opts = build_options();
    json_t *flag_keys = json_array();
    if (!opts || !flag_keys) {
        free(opts);
        json_decref(flag_keys);
        return xf_failure("out of memory");
    }
    quant_cli x = {0};
    xf_recipe *r = NULL;
    int rc = first_pass(cmd, argc, argv, opts, &x, flag_keys);
    if (rc == 0 && x.help) {
        print_help(cmd);
        goto out;
    }
    if (rc == 0 && x.recipe_path)
        r = recipe_from_file(cmd, x.recipe_path, flag_keys, &rc);
    else if (rc == 0 && !(r = xf_recipe_new(cmd, NULL)))
        rc = xf_failure("out of memory");
    if (rc == 0)
        rc = second_pass(cmd, argc, argv, opts, r);
    if (rc == 0 && argc - optind != 2)
        rc = xf_usage_error(cmd, "expected IN and OUT.xfq");
    xf_status st = {0};
    if (rc == 0 && xf_recipe_check(r, &st) != 0)
        rc = xf_usage_error(cmd, "%s", st.message);
    if (rc == 0) {
        const char *in = argv[optind], *out = argv[optind + 1];
        xf_cli_progress prog; /* the TTY line, as for the other commands */
        xf_run_opts run = xf_cli_run_opts(x.threads, &prog);
        char *summary = NULL;
        if (xf_quantize_cmdline(in, r, out, &run, ctx->argc, ctx->argv, &summary, &st) != 0)
            rc = st.code == XF_USAGE ? xf_usage_error(cmd, "%s", st.message)
                                     : xf_failure(st.message);
        else
            print_summary(out, summary, x.json);
        xf_free(summary);
    }
out:
    xf_recipe_free(r);
    json_decref(flag_keys);
    free(opts);
    return rc;
}

int xf_cmd_rtn(const xf_cli_ctx *ctx, int argc, char **argv)
{
    return run_quant(ctx, "rtn", argc, argv);
}

int xf_cmd_gptq(const xf_cli_ctx *ctx, int argc, char **argv)
{
    return run_quant(ctx, "gptq", argc, argv);
}
