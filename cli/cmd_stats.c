/* xfquant stats IN --calib FILE: activation statistics of every layer's
 * linear inputs on calibration windows (calib/act_capture.h), the numbers
 * to look at before choosing a quantization scheme. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calib/act_capture.h"
#include "calib/calib_windows.h"
#include "cli/cli.h"
#include "core/log.h"
#include "core/threads.h"
#include "model/loader.h"

#define STATS_DEFAULT_NSAMPLES 32

static const char stats_help[] =
    "usage: xfquant stats IN --calib FILE [options]\n\n"
    "Runs IN (HF directory, .safetensors with config.json beside it, or .xfq) on\n"
    "calibration windows and prints, per layer and linear input (qkv, o, mlp, down):\n"
    "the activation abs-max, the kurtosis of all values (Pearson, Gaussian = 3),\n"
    "the share of sum x^2 in the top 1% of channels by energy, the largest channel\n"
    "abs-max over the median one, and the top channels by abs-max (ch:absmax).\n\n"
    "  --calib FILE         calibration text: plain text, JSON Lines (.jsonl) or a\n"
    "                       directory of .txt files (as for gptq)\n"
    "  --calib-field NAME   JSON Lines field holding the text (default \"text\")\n"
    "  --calib-format F     text, jsonl or dir (default: from the path)\n"
    "  --nsamples N         calibration windows (default 32)\n"
    "  --seqlen N           tokens per window (default min(2048, max_position_embeddings))\n"
    "  --seed N             window sampling seed (default 0; the windows gptq would use)\n"
    "  --top K              outlier channels listed per input (default 5)\n"
    "  --threads N          threads (default: all cores)\n"
    "  --json               print a JSON object instead of the table\n"
    "  -v, --verbose        log progress details\n";

enum {
    OPT_CALIB = 256, OPT_FIELD, OPT_FORMAT, OPT_NSAMPLES, OPT_SEQLEN, OPT_SEED, OPT_TOP,
    OPT_THREADS, OPT_JSON, OPT_HELP
};

typedef struct stats_args {
    xf_calib_source src;
    int64_t top;
    int threads;
    bool json;
    const char *in;
} stats_args;

/* 0: parsed; otherwise the exit code (help printed: *done). */
static int parse(stats_args *a, int argc, char **argv, bool *done)
{
    static const struct option opts[] = {
        {"calib", required_argument, NULL, OPT_CALIB},
        {"calib-field", required_argument, NULL, OPT_FIELD},
        {"calib-format", required_argument, NULL, OPT_FORMAT},
        {"nsamples", required_argument, NULL, OPT_NSAMPLES},
        {"seqlen", required_argument, NULL, OPT_SEQLEN},
        {"seed", required_argument, NULL, OPT_SEED},
        {"top", required_argument, NULL, OPT_TOP},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"json", no_argument, NULL, OPT_JSON},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, OPT_HELP},
        {0, 0, 0, 0}};
    memset(a, 0, sizeof *a);
    a->src.nsamples = STATS_DEFAULT_NSAMPLES;
    a->top = XF_ACT_STATS_DEFAULT_TOP;
    *done = false;
    int64_t v;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "v", opts, NULL)) != -1) {
        switch (c) {
        case OPT_CALIB: a->src.path = optarg; break;
        case OPT_FIELD: a->src.field = optarg; break;
        case OPT_FORMAT:
            if (!strcmp(optarg, "text"))
                a->src.format = XF_CALIB_TEXT;
            else if (!strcmp(optarg, "jsonl"))
                a->src.format = XF_CALIB_JSONL;
            else if (!strcmp(optarg, "dir"))
                a->src.format = XF_CALIB_DIR;
            else
                return xf_usage_error("stats", "--calib-format must be text, jsonl or dir, not '%s'",
                                      optarg);
            break;
        case OPT_NSAMPLES:
            if (!xf_parse_int(optarg, 1, 1 << 20, &v))
                return xf_usage_error("stats", "--nsamples must be a positive integer, not '%s'",
                                      optarg);
            a->src.nsamples = v;
            break;
        case OPT_SEQLEN:
            if (!xf_parse_int(optarg, 1, 1 << 20, &v))
                return xf_usage_error("stats", "--seqlen must be a positive integer, not '%s'",
                                      optarg);
            a->src.seqlen = v;
            break;
        case OPT_SEED:
            if (!xf_parse_int(optarg, 0, INT64_MAX, &v))
                return xf_usage_error("stats", "--seed must be a non-negative integer, not '%s'",
                                      optarg);
            a->src.seed = (uint64_t)v;
            break;
        case OPT_TOP:
            if (!xf_parse_int(optarg, 1, 4096, &v))
                return xf_usage_error("stats", "--top must be an integer in [1, 4096], not '%s'",
                                      optarg);
            a->top = v;
            break;
        case OPT_THREADS:
            if (!xf_parse_int(optarg, 1, 4096, &v))
                return xf_usage_error("stats", "--threads must be a positive integer, not '%s'",
                                      optarg);
            a->threads = (int)v;
            break;
        case OPT_JSON: a->json = true; break;
        case 'v': xf_log_set_level(XF_LOG_INFO); break;
        case OPT_HELP:
            fputs(stats_help, stdout);
            *done = true;
            return XF_EXIT_OK;
        default:
            return xf_usage_error("stats", "unknown option or missing value: '%s'",
                                  argv[optind - 1]);
        }
    }
    if (argc - optind != 1)
        return xf_usage_error("stats", "expected one model IN");
    if (!a->src.path)
        return xf_usage_error("stats", "--calib FILE is required");
    a->in = argv[optind];
    return 0;
}

/* The window length: the explicit one or min(2048, max_pos), as gptq. */
static int window_length(const stats_args *a, const xf_model_config *cfg, int64_t *T)
{
    if (!a->src.seqlen) {
        *T = cfg->max_pos > 0 && cfg->max_pos < 2048 ? cfg->max_pos : 2048;
        return 0;
    }
    bool learned_positions = cfg->family == XF_FAMILY_OPT || cfg->family == XF_FAMILY_GPT2;
    if (learned_positions && a->src.seqlen > cfg->max_pos)
        return xf_usage_error("stats", "window of %lld tokens exceeds the model's %lld learned "
                                       "positions", (long long)a->src.seqlen,
                              (long long)cfg->max_pos);
    if (a->src.seqlen > cfg->max_pos)
        xf_log_warn("window of %lld tokens is longer than the model's max_position_embeddings %lld",
                    (long long)a->src.seqlen, (long long)cfg->max_pos);
    *T = a->src.seqlen;
    return 0;
}

static json_t *report_json(const stats_args *a, const xf_loaded_model *m,
                           const xf_model_act_stats *st, json_t *calib)
{
    json_t *rows = json_array();
    for (int64_t l = 0; l < st->n_layers; l++)
        for (int in = 0; in < XF_IN_COUNT; in++) {
            json_t *o = xf_act_stats_json(xf_model_act_stats_at(st, l, in), a->top);
            if (!o) {
                json_decref(rows);
                return NULL;
            }
            json_object_set_new(o, "layer", json_integer(l));
            json_object_set_new(o, "input", json_string(xf_lin_input_name(in)));
            json_array_append_new(rows, o);
        }
    return json_pack("{s:s, s:s, s:I, s:I, s:O, s:I, s:I, s:o}", "model", a->in, "model_type",
                     m->cfg.model_type, "layers", (json_int_t)m->cfg.n_layers, "hidden",
                     (json_int_t)m->cfg.hidden, "calibration", calib, "tokens",
                     (json_int_t)st->tokens, "top_k", (json_int_t)a->top, "inputs", rows);
}

/* The number with `prec` decimals and `suffix`, or "-" for a NaN. */
static const char *fmt_num(char *buf, size_t cap, double v, int prec, const char *suffix)
{
    if (isfinite(v))
        snprintf(buf, cap, "%.*f%s", prec, v, suffix);
    else
        snprintf(buf, cap, "-");
    return buf;
}

#define ROW_FORMAT "%5s  %-5s %6s %10s %9s %7s %8s  "

/* One table row: layer, input, width, absmax, kurtosis, top-1% energy
 * share, largest/median channel absmax, top channels as ch:absmax. */
static int print_row(int64_t layer, xf_lin_input in, const xf_act_stats *s, int64_t k,
                     xf_act_channel *top)
{
    int64_t nt = xf_act_stats_top(s, k, top);
    if (nt < 0)
        return -1;
    char l[24], w[24], amax[32], kurt[32], share[32], ratio[32];
    snprintf(l, sizeof l, "%lld", (long long)layer);
    snprintf(w, sizeof w, "%lld", (long long)s->cols);
    printf(ROW_FORMAT, l, xf_lin_input_name(in), w,
           fmt_num(amax, sizeof amax, xf_act_stats_absmax(s), 3, ""),
           fmt_num(kurt, sizeof kurt, xf_act_stats_kurtosis(s), 2, ""),
           fmt_num(share, sizeof share, 100.0 * xf_act_stats_top_pct_energy_share(s), 1, "%"),
           fmt_num(ratio, sizeof ratio, nt > 0 ? top[0].ratio_to_median : NAN, 1, "x"));
    for (int64_t i = 0; i < nt; i++)
        printf("%s%lld:%.3g", i ? " " : "", (long long)top[i].channel, top[i].absmax);
    printf("\n");
    return 0;
}

static int report_text(const stats_args *a, const xf_loaded_model *m,
                       const xf_model_act_stats *st, const json_t *calib)
{
    printf("model:       %s (%s, %lld layers, hidden %lld)\n", a->in, m->cfg.model_type,
           (long long)m->cfg.n_layers, (long long)m->cfg.hidden);
    printf("calibration: %s (%s, sha256 %.12s...): %lld window%s x %lld tokens = %lld tokens "
           "(seed %lld, %lld tokens available)\n",
           a->src.path, json_string_value(json_object_get(calib, "format")),
           json_string_value(json_object_get(calib, "sha256")), (long long)st->windows,
           st->windows == 1 ? "" : "s", (long long)(st->windows ? st->tokens / st->windows : 0), (long long)st->tokens,
           (long long)json_integer_value(json_object_get(calib, "seed")),
           (long long)json_integer_value(json_object_get(calib, "tokens_available")));
    printf("kurtosis: Pearson over all values (Gaussian = 3); top1%%: share of sum x^2 in the\n"
           "ceil(1%%) channels with the most energy; max/med: largest channel abs-max over\n"
           "the median channel abs-max; top channels by abs-max as ch:absmax.\n\n");
    printf(ROW_FORMAT "%s\n", "layer", "input", "width", "absmax", "kurtosis", "top1%",
           "max/med", "top channels (ch:absmax)");
    xf_act_channel *top = malloc((size_t)a->top * sizeof *top);
    if (!top)
        return -1;
    int rc = 0;
    for (int64_t l = 0; l < st->n_layers && rc == 0; l++)
        for (int in = 0; in < XF_IN_COUNT && rc == 0; in++)
            rc = print_row(l, in, xf_model_act_stats_at(st, l, in), a->top, top);
    free(top);
    return rc;
}

int xf_cmd_stats(const xf_cli_ctx *ctx, int argc, char **argv)
{
    (void)ctx;
    stats_args a;
    bool done;
    int rc = parse(&a, argc, argv, &done);
    if (rc != 0 || done)
        return rc;
    xf_threads_set(a.threads);
    xf_error err = {0};
    xf_loaded_model m;
    if (xf_model_open(&m, a.in, &err) != 0)
        return xf_failure(err.msg);
    if (m.has_online_transforms) {
        /* its activations exist only with the online transforms applied:
         * statistics of the plain forward pass would describe no real model */
        xf_fail(&err, "%s: is a rotated .xfq (online transforms); run stats on the original model",
                a.in);
        xf_model_close(&m);
        return xf_failure(err.msg);
    }
    int64_t T = 0;
    if ((rc = window_length(&a, &m.cfg, &T)) != 0) {
        xf_model_close(&m);
        return rc;
    }
    a.src.seqlen = T;
    xf_calib_set cs;
    json_t *calib = NULL;
    xf_model_act_stats st = {0};
    int exit_code = XF_EXIT_FAIL;
    if (xf_calib_windows_load(&cs, &m, &a.src, &calib, &err) != 0)
        goto out;
    rc = xf_model_act_stats_collect(&st, &m.weights, cs.tokens, cs.nsamples, cs.seqlen, &err);
    xf_calib_set_free(&cs);
    if (rc != 0) {
        xf_fail_prefix(&err, "%s", a.in);
        goto out;
    }
    if (a.json) {
        json_t *j = report_json(&a, &m, &st, calib);
        char *s = j ? json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(10))
                    : NULL;
        json_decref(j);
        if (!s) {
            xf_fail(&err, "%s: out of memory for the JSON report", a.in);
            goto out;
        }
        puts(s);
        free(s);
    } else if (report_text(&a, &m, &st, calib) != 0) {
        xf_fail(&err, "%s: out of memory for the report", a.in);
        goto out;
    }
    exit_code = XF_EXIT_OK;
out:
    if (exit_code != XF_EXIT_OK)
        xf_failure(err.msg);
    xf_model_act_stats_free(&st);
    json_decref(calib);
    xf_model_close(&m);
    return exit_code;
}
