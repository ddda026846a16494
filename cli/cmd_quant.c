/* xfquant rtn / xfquant gptq: weight quantization of a model into .xfq. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/quant_args.h"
#include "cli/scheme_args.h"
#include "core/atomic_file.h"
#include "core/log.h"
#include "export/export.h"
#include "core/threads.h"
#include "model/loader.h"
#include "pipeline/quantize_model.h"

static const char rtn_help[] =
    "usage: xfquant rtn --bits N [options] IN OUT.xfq\n\n"
    "Round-to-nearest quantization of every decoder linear of IN (HF directory,\n"
    ".safetensors with config.json beside it, or .xfq) into OUT.xfq.\n\n"
    "  --bits N          2, 3, 4 or 8 (default 4)\n"
    "  --group G         columns per group (default 128); -1: one grid per output row\n"
    "  --sym             symmetric grid (zero point 2^(bits-1)); default asymmetric\n"
    "  --clip none|mse   MSE search of the grid range (GPTQ reference: norm 2.4,\n"
    "                    100 points, max shrink 0.8); default none\n"
    "  --quantize-head   also quantize the LM head (untied models)\n"
    "  --gguf-type FT    quantize onto llama.cpp's block types instead: each tensor\n"
    "                    (token_embd and output included) gets the GGML type\n"
    "                    llama-quantize gives it for file type FT (Q4_K_M, Q4_K_S,\n"
    "                    Q3_K_M, Q3_K_S, Q3_K_L, Q5_K_M, Q5_K_S, Q6_K, Q2_K, Q4_0,\n"
    "                    Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL, IQ4_XS; docs/export.md);\n"
    "                    replaces --bits/--group/--sym/--clip/--quantize-head.\n"
    "                    OUT ending in .gguf writes the GGUF directly\n"
    "  --outliers P      keep the fraction P of each tensor's weights (those whose\n"
    "                    exclusion from the grid fit saves the most error) in fp16\n"
    "                    in a sparse side table: \"0.5%\" (percent) or \"0.005\"\n"
    "                    (fraction; 1 = all), in [0, 100%]; default 0 (none)\n"
    "  --threads N       threads (default: all cores)\n"
    "  --json            print a JSON summary\n"
    "  -v, --verbose     log progress details\n"
    "  --calib FILE, --calib-field, --calib-format, --nsamples, --seqlen, --seed\n"
    "                    as for gptq; rtn reads calibration text only for\n"
    "                    --act-clip search and --attn-prob-base search\n";

static const char gptq_help[] =
    "usage: xfquant gptq --bits N --calib FILE [options] IN OUT.xfq\n\n"
    "GPTQ quantization (Frantar et al. 2023) of every decoder linear of IN into\n"
    "OUT.xfq, calibrated block by block on text (true-sequential: q/k/v, then o,\n"
    "then gate/up, then down, each seeing inputs from the already quantized ones).\n\n"
    "  --bits N, --group G, --sym, --clip none|mse, --quantize-head   as for rtn\n"
    "  --gguf-type FT       as for rtn; GPTQ solved on the GGML block grids (each\n"
    "                       block's scales fitted when the sweep enters it), token_embd\n"
    "                       by round to nearest; --act-order needs --static-groups\n"
    "  --outliers P         as for rtn; chosen by the SpQR sensitivity\n"
    "                       ((w - q(w)) / U_jj)^2, kept exactly in the sweep\n"
    "  --calib FILE         calibration text: plain text, JSON Lines (.jsonl) or a\n"
    "                       directory of .txt files\n"
    "  --calib-field NAME   JSON Lines field holding the text (default \"text\")\n"
    "  --calib-format F     text, jsonl or dir (default: from the path)\n"
    "  --nsamples N         calibration windows (default 128)\n"
    "  --seqlen N           tokens per window (default min(2048, max_position_embeddings))\n"
    "  --seed N             window sampling seed (default 0; same windows as the\n"
    "                       reference's random.seed(N) + randint)\n"
    "  --act-order          quantize columns by descending Hessian diagonal\n"
    "  --static-groups      fit every group's grid before the sweep\n"
    "  --damp X             relative dampening of the Hessian (default 0.01)\n"
    "  --block N            lazy-batch block size (default 128)\n"
    "  --gptq-v2            asymmetric calibration (GPTQv2): match the full-precision\n"
    "                       layer outputs on full-precision inputs\n"
    "  --threads N, --json, -v   as for rtn\n";

enum {
    OPT_BITS = 256, OPT_GROUP, OPT_SYM, OPT_CLIP, OPT_HEAD, OPT_THREADS, OPT_JSON, OPT_CALIB,
    OPT_FIELD, OPT_FORMAT, OPT_NSAMPLES, OPT_SEQLEN, OPT_SEED, OPT_ACT_ORDER, OPT_STATIC,
    OPT_DAMP, OPT_BLOCK, OPT_V2, OPT_HELP, OPT_OUTLIERS, OPT_GGUF_TYPE
};

/* --outliers: "0.5%" (percent) or "0.005" (fraction), within [0, 1]. */
static bool parse_outliers(const char *s, double *out)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n >= 64)
        return false;
    char buf[64];
    memcpy(buf, s, n + 1);
    bool percent = buf[n - 1] == '%';
    if (percent)
        buf[n - 1] = '\0';
    double v;
    if (!xf_parse_double(buf, &v))
        return false;
    if (percent)
        v /= 100.0;
    if (!(v >= 0.0 && v <= 1.0))
        return false;
    *out = v;
    return true;
}

int xf_quant_args_parse(xf_quant_method method, int argc, char **argv, xf_quant_options *o_out,
                        xf_quant_cli *x)
{
    const char *cmd = method == XF_METHOD_GPTQ ? "gptq" : "rtn";
    static const struct option opts[] = {
        {"bits", required_argument, NULL, OPT_BITS},
        {"group", required_argument, NULL, OPT_GROUP},
        {"sym", no_argument, NULL, OPT_SYM},
        {"clip", required_argument, NULL, OPT_CLIP},
        {"quantize-head", no_argument, NULL, OPT_HEAD},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"json", no_argument, NULL, OPT_JSON},
        {"calib", required_argument, NULL, OPT_CALIB},
        {"calib-field", required_argument, NULL, OPT_FIELD},
        {"calib-format", required_argument, NULL, OPT_FORMAT},
        {"nsamples", required_argument, NULL, OPT_NSAMPLES},
        {"seqlen", required_argument, NULL, OPT_SEQLEN},
        {"seed", required_argument, NULL, OPT_SEED},
        {"act-order", no_argument, NULL, OPT_ACT_ORDER},
        {"static-groups", no_argument, NULL, OPT_STATIC},
        {"damp", required_argument, NULL, OPT_DAMP},
        {"block", required_argument, NULL, OPT_BLOCK},
        {"gptq-v2", no_argument, NULL, OPT_V2},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, OPT_HELP},
        {"outliers", required_argument, NULL, OPT_OUTLIERS},
        {"gguf-type", required_argument, NULL, OPT_GGUF_TYPE},
        {0, 0, 0, 0}};
    /* this command's options followed by the shared scheme options */
    enum { N_OWN = sizeof opts / sizeof *opts - 1, N_ALL = N_OWN + XF_SCHEME_MAX_OPTIONS };
    struct option all[N_ALL + 1];
    size_t n_all = 0;
    for (size_t i = 0; i < N_OWN; i++)
        all[n_all++] = opts[i];
    for (size_t i = 0; xf_scheme_options[i].name; i++) /* fits: scheme_args.c asserts it */
        all[n_all++] = xf_scheme_options[i];
    all[n_all] = (struct option){0, 0, 0, 0};
    memset(x, 0, sizeof *x);
    xf_quant_options o;
    xf_quant_options_defaults(&o, method);
    int threads = 0;
    bool json = false;
    int64_t v;
    double d;
    optind = 1;
    opterr = 0;
    int c;
    int calib_given = 0; /* calibration options given */
    const char *grid_opt = NULL; /* an option --gguf-type replaces */
    bool seed_given = false;
    while ((c = getopt_long(argc, argv, "v", all, NULL)) != -1) {
        int src;
        if (xf_scheme_option(c, optarg, &o, cmd, &src)) {
            if (src != 0)
                return src;
            continue;
        }
        calib_given += c >= OPT_CALIB && c <= OPT_SEED;
        seed_given = seed_given || c == OPT_SEED;
        bool gptq_only = c >= OPT_ACT_ORDER && c <= OPT_V2;
        if (gptq_only && method != XF_METHOD_GPTQ)
            return xf_usage_error(cmd, "option '%s' applies to gptq only", argv[optind - 1]);
        if (c == OPT_BITS || c == OPT_GROUP || c == OPT_SYM || c == OPT_CLIP || c == OPT_HEAD)
            for (size_t i = 0; i < N_OWN; i++)
                if (opts[i].val == c)
                    grid_opt = opts[i].name;
        switch (c) {
        case OPT_GGUF_TYPE:
            if (xf_gguf_ftype_from_name(optarg, &o.gguf_ftype) != 0)
                return xf_usage_error(cmd, "--gguf-type must be one of Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 "
                                           "Q2_K Q3_K_S Q3_K_M Q3_K_L Q4_K_S Q4_K_M Q5_K_S "
                                           "Q5_K_M Q6_K IQ4_NL IQ4_XS, not '%s'", optarg);
            o.gguf = true;
            break;
        case OPT_BITS:
            if (!xf_parse_int(optarg, 2, 8, &v) || (v != 2 && v != 3 && v != 4 && v != 8))
                return xf_usage_error(cmd, "--bits must be 2, 3, 4 or 8, not '%s'", optarg);
            o.grid.bits = (int)v;
            break;
        case OPT_GROUP:
            if (!xf_parse_int(optarg, -1, INT32_MAX, &v) || v == 0)
                return xf_usage_error(cmd, "--group must be a positive integer or -1, not '%s'",
                                      optarg);
            o.group = v;
            break;
        case OPT_SYM: o.grid.sym = true; break;
        case OPT_CLIP:
            if (xf_clip_from_name(optarg, &o.grid.clip) != 0)
                return xf_usage_error(cmd, "--clip must be none or mse, not '%s'", optarg);
            break;
        case OPT_HEAD: o.quantize_head = true; break;
        case OPT_OUTLIERS:
            if (!parse_outliers(optarg, &o.outliers))
                return xf_usage_error(cmd, "--outliers must be a percentage in [0%%, 100%%] "
                                           "(\"0.5%%\") or a fraction in [0, 1], not '%s'", optarg);
            break;
        case OPT_THREADS:
            if (!xf_parse_int(optarg, 1, 4096, &v))
                return xf_usage_error(cmd, "--threads must be a positive integer, not '%s'", optarg);
            threads = (int)v;
            break;
        case OPT_JSON: json = true; break;
        case OPT_CALIB: o.calib_path = optarg; break;
        case OPT_FIELD: o.calib_field = optarg; break;
        case OPT_FORMAT:
            if (!strcmp(optarg, "text"))
                o.calib_format = XF_CALIB_TEXT;
            else if (!strcmp(optarg, "jsonl"))
                o.calib_format = XF_CALIB_JSONL;
            else if (!strcmp(optarg, "dir"))
                o.calib_format = XF_CALIB_DIR;
            else
                return xf_usage_error(cmd, "--calib-format must be text, jsonl or dir, not '%s'",
                                      optarg);
            break;
        case OPT_NSAMPLES:
            if (!xf_parse_int(optarg, 1, 1 << 20, &v))
                return xf_usage_error(cmd, "--nsamples must be a positive integer, not '%s'", optarg);
            o.nsamples = v;
            break;
        case OPT_SEQLEN:
            if (!xf_parse_int(optarg, 1, 1 << 20, &v))
                return xf_usage_error(cmd, "--seqlen must be a positive integer, not '%s'", optarg);
            o.seqlen = v;
            break;
        case OPT_SEED:
            if (!xf_parse_int(optarg, 0, INT64_MAX, &v))
                return xf_usage_error(cmd, "--seed must be a non-negative integer, not '%s'", optarg);
            o.seed = (uint64_t)v;
            break;
        case OPT_ACT_ORDER: o.act_order = true; break;
        case OPT_STATIC: o.static_groups = true; break;
        case OPT_DAMP:
            if (!xf_parse_double(optarg, &d) || d < 0 || d > 1)
                return xf_usage_error(cmd, "--damp must be a number in [0, 1], not '%s'", optarg);
            o.damp = d;
            break;
        case OPT_BLOCK:
            if (!xf_parse_int(optarg, 1, 1 << 16, &v))
                return xf_usage_error(cmd, "--block must be a positive integer, not '%s'", optarg);
            o.block = v;
            break;
        case OPT_V2: o.gptq_v2 = true; break;
        case 'v': xf_log_set_level(XF_LOG_INFO); break;
        case OPT_HELP:
            fputs(method == XF_METHOD_GPTQ ? gptq_help : rtn_help, stdout);
            fputs(xf_scheme_help, stdout);
            x->help = true;
            return 0;
        default: return xf_usage_error(cmd, "unknown option or missing value: '%s'", argv[optind - 1]);
        }
    }
    if (argc - optind != 2)
        return xf_usage_error(cmd, "expected IN and OUT.xfq");
    if (o.gguf && grid_opt)
        return xf_usage_error(cmd, "--%s cannot be combined with --gguf-type, which chooses every "
                                   "tensor's type", grid_opt);
    if (method == XF_METHOD_GPTQ && !o.calib_path)
        return xf_usage_error(cmd, "--calib FILE is required");
    bool rtn_reads_calib = o.act_clip_search || o.attn_prob_base_search || o.smooth > 0 ||
                           o.rotate == XF_ROTATE_LEARNED || o.rotate == XF_ROTATE_KLT;
    bool seed_only = seed_given && calib_given == 1 && o.rotate != XF_ROTATE_NONE;
    if (method == XF_METHOD_RTN && calib_given && !rtn_reads_calib && !seed_only)
        return xf_usage_error(cmd, "rtn reads calibration text only for --act-clip search, "
                                   "--attn-prob-base search, --smooth and --rotate klt|learned "
                                   "(and --seed only with --rotate)");
    if (method == XF_METHOD_RTN && rtn_reads_calib && !o.calib_path)
        return xf_usage_error(cmd, "--act-clip search, --attn-prob-base search, --smooth and "
                                   "--rotate klt|learned need --calib FILE");
    x->in = argv[optind];
    x->out = argv[optind + 1];
    x->threads = threads;
    x->json = json;
    *o_out = o;
    return 0;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* OUT.gguf: the .xfq goes to a temp name beside OUT (the stale-temp sweep
 * of OUT removes it if this process dies), is exported with the default
 * options (its GGML blocks copied exactly) and removed. */
static int quantize_to_gguf(xf_loaded_model *m, const xf_quant_options *o, const char *out,
                            const json_t *cmdline, json_t **summary, xf_error *err)
{
    char *prefix = xf_atomic_temp_prefix(out, (long)getpid());
    size_t len = prefix ? strlen(prefix) + 8 : 0;
    char *tmp = prefix ? malloc(len) : NULL;
    if (!tmp) {
        free(prefix);
        return xf_fail(err, "%s: out of memory", out);
    }
    snprintf(tmp, len, "%sxfqint", prefix);
    free(prefix);
    xf_atomic_remove_stale(out);
    int rc = xf_quantize_model(m, o, tmp, cmdline, summary, err);
    if (rc == 0) {
        xf_export_opts eo = {0};
        json_t *es = NULL;
        rc = xf_export_gguf(tmp, out, &eo, &es, err);
        if (rc == 0 && *summary) {
            json_object_set_new(*summary, "gguf_export", es);
            json_object_set_new(*summary, "output", json_string(out));
        } else {
            json_decref(es);
        }
    }
    unlink(tmp);
    free(tmp);
    return rc;
}

static int run_quant(const xf_cli_ctx *ctx, xf_quant_method method, int argc, char **argv)
{
    xf_quant_options o;
    xf_quant_cli x;
    int prc = xf_quant_args_parse(method, argc, argv, &o, &x);
    if (prc != 0 || x.help)
        return prc;
    const char *in = x.in, *out = x.out;
    bool json = x.json;
    xf_threads_set(x.threads);
    xf_error err = {0};
    xf_loaded_model m;
    if (xf_model_open(&m, in, &err) != 0)
        return xf_failure(err.msg);
    json_t *cmdline = json_array();
    for (int i = 0; i < ctx->argc; i++)
        json_array_append_new(cmdline, json_string(ctx->argv[i]));
    json_t *summary = NULL;
    int rc = ends_with(out, ".gguf")
                 ? quantize_to_gguf(&m, &o, out, cmdline, &summary, &err)
                 : xf_quantize_model(&m, &o, out, cmdline, &summary, &err);
    json_decref(cmdline);
    xf_model_close(&m);
    if (rc != 0)
        return xf_failure(err.msg);
    if (json) {
        char *s = json_dumps(summary, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(10));
        puts(s ? s : "{}");
        free(s);
    } else {
        printf("%s: %lld tensors quantized (%lld parameters) at %.4f bits per weight in %.1f s\n",
               out, (long long)json_integer_value(json_object_get(summary, "quantized_tensors")),
               (long long)json_integer_value(json_object_get(summary, "quantized_params")),
               json_real_value(json_object_get(summary, "bits_per_weight")),
               json_real_value(json_object_get(summary, "seconds")));
    }
    json_decref(summary);
    return XF_EXIT_OK;
}

int xf_cmd_rtn(const xf_cli_ctx *ctx, int argc, char **argv)
{
    return run_quant(ctx, XF_METHOD_RTN, argc, argv);
}

int xf_cmd_gptq(const xf_cli_ctx *ctx, int argc, char **argv)
{
    return run_quant(ctx, XF_METHOD_GPTQ, argc, argv);
}
