/* xfquant stats IN --calib FILE: activation statistics of every layer's
 * linear inputs on calibration windows, the numbers to look at before
 * choosing a quantization scheme (rendered by xf_stats). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

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
    "  --qsur               also the quantization space utilisation (OstQuant) of each\n"
    "                       input from its covariance (column qsur^(1/d)); memory:\n"
    "                       8 * width^2 bytes per input and layer. Before/after a\n"
    "                       transform: run it on the original model and on the .xfq\n"
    "                       the transform made (its online transforms are applied)\n"
    "  --threads N          threads (default: all cores)\n"
    "  --json               print a JSON object instead of the table\n"
    "  --progress MODE      auto (default: a bar on a terminal, else nothing), bar,\n"
    "                       json (one JSON object per event and line) or none\n"
    "  -v, --verbose        log progress details\n";

enum {
    OPT_CALIB = 256, OPT_FIELD, OPT_FORMAT, OPT_NSAMPLES, OPT_SEQLEN, OPT_SEED, OPT_TOP,
    OPT_THREADS, OPT_JSON, OPT_HELP, OPT_PROGRESS, OPT_QSUR
};

typedef struct stats_args {
    xf_stats_options o;
    int threads;
    xf_cli_progress_mode progress;
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
        {"qsur", no_argument, NULL, OPT_QSUR},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"json", no_argument, NULL, OPT_JSON},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, OPT_HELP},
        {"progress", required_argument, NULL, OPT_PROGRESS},
        {0, 0, 0, 0}};
    memset(a, 0, sizeof *a);
    *done = false;
    int64_t v;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "v", opts, NULL)) != -1) {
        switch (c) {
        case OPT_CALIB: a->o.calib = optarg; break;
        case OPT_FIELD: a->o.calib_field = optarg; break;
        case OPT_FORMAT:
            if (!strcmp(optarg, "text") || !strcmp(optarg, "jsonl") || !strcmp(optarg, "dir"))
                a->o.calib_format = optarg;
            else
                return xf_usage_error("stats", "--calib-format must be text, jsonl or dir, not '%s'",
                                      optarg);
            break;
        case OPT_NSAMPLES:
            if (!xf_parse_int(optarg, 1, 1 << 20, &v))
                return xf_usage_error("stats", "--nsamples must be a positive integer, not '%s'",
                                      optarg);
            a->o.nsamples = v;
            break;
        case OPT_SEQLEN:
            if (!xf_parse_int(optarg, 1, 1 << 20, &v))
                return xf_usage_error("stats", "--seqlen must be a positive integer, not '%s'",
                                      optarg);
            a->o.seqlen = v;
            break;
        case OPT_SEED:
            if (!xf_parse_int(optarg, 0, INT64_MAX, &v))
                return xf_usage_error("stats", "--seed must be a non-negative integer, not '%s'",
                                      optarg);
            a->o.seed = (uint64_t)v;
            break;
        case OPT_TOP:
            if (!xf_parse_int(optarg, 1, 4096, &v))
                return xf_usage_error("stats", "--top must be an integer in [1, 4096], not '%s'",
                                      optarg);
            a->o.top = v;
            break;
        case OPT_THREADS:
            if (!xf_parse_int(optarg, 1, 4096, &v))
                return xf_usage_error("stats", "--threads must be a positive integer, not '%s'",
                                      optarg);
            a->threads = (int)v;
            break;
        case OPT_JSON: a->json = true; break;
        case OPT_QSUR: a->o.qsur = true; break;
        case OPT_PROGRESS:
            if (!xf_cli_progress_mode_parse(optarg, &a->progress))
                return xf_usage_error("stats",
                                      "--progress must be auto, bar, json or none, not '%s'",
                                      optarg);
            break;
        case 'v': xf_set_log(NULL, NULL, XF_LEVEL_INFO); break;
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
    if (!a->o.calib)
        return xf_usage_error("stats", "--calib FILE is required");
    a->in = argv[optind];
    return 0;
}

int xf_cmd_stats(const xf_cli_ctx *ctx, int argc, char **argv)
{
    (void)ctx;
    stats_args a;
    bool done;
    int rc = parse(&a, argc, argv, &done);
    if (rc != 0 || done)
        return rc;
    xf_cli_progress prog;
    xf_run_opts run = xf_cli_run_opts_mode(a.threads, a.progress, &prog);
    xf_status st = {0};
    xf_model *m = xf_open_model(a.in, &run, &st);
    if (!m)
        return xf_cli_status_exit("stats", &st);
    char *report = NULL;
    rc = xf_stats(m, &a.o, &run, a.json ? XF_FORMAT_JSON : XF_FORMAT_TEXT, &report, &st);
    xf_close_model(m);
    if (rc != 0)
        return xf_cli_status_exit("stats", &st);
    fputs(report, stdout);
    if (a.json)
        fputc('\n', stdout);
    xf_free(report);
    return XF_EXIT_OK;
}
