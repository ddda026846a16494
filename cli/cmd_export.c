/* xfquant export --to TARGET [options] IN OUT: writes a model (an .xfq or
 * an fp HF directory) in another engine's format. The targets are the
 * library's (xf_export_target_info); this file only parses flags and
 * prints the summary xf_export renders. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static void print_help(void)
{
    printf("usage: xfquant export --to TARGET [options] IN OUT\n\n"
           "Writes IN (an .xfq file, or an fp HF model directory) as OUT for another\n"
           "engine. Anything the target cannot hold is refused before any write, with\n"
           "a one-line reason; docs/export.md lists what is exact and what is not.\n\n"
           "targets:\n");
    const char *name, *what;
    for (int i = 0; xf_export_target_info(i, &name, &what) == 0; i++)
        printf("  %-20s %s\n", name, what);
    printf("\n"
           "  --to TARGET          the output format (required)\n"
           "  --type f16|f32|bf16  unquantized 2-D tensors (default: keep their dtype);\n"
           "                       1-D tensors (norms, biases) are always F32\n"
           "  --gguf-asym q5_0|q4_1  4-bit asymmetric weights: Q5_0 (exact, default) or\n"
           "                       Q4_1 (smaller; its fp16 min is rounded: the summary\n"
           "                       reports the largest error)\n"
           "  --fallback f16|f32   write packed tensors with no exact block type (width\n"
           "                       not a multiple of 32, unaligned groups, log2 grids,\n"
           "                       outlier tables) unquantized instead of refusing: F16\n"
           "                       (as llama-quantize does; rounded) or F32 (exact)\n"
           "  --gptq-format F      GPTQ zero points: auto (default: \"gptq\" v1 when every\n"
           "                       zero point is >= 1, else \"gptq_v2\"), v1 or v2\n"
           "  --weights-only       export although the recipe has activation/KV\n"
           "                       quantization or online transforms (recorded in the\n"
           "                       file's general.description and xfquant.omitted)\n"
           "  --json               print the summary as JSON\n"
           "  --help               this text\n");
}

/* value is one of the (up to three; NULL-padded) names */
static bool one_of(const char *value, const char *a, const char *b, const char *c)
{
    return !strcmp(value, a) || !strcmp(value, b) || (c && !strcmp(value, c));
}

static bool known_target(const char *to)
{
    const char *name;
    for (int i = 0; xf_export_target_info(i, &name, NULL) == 0; i++)
        if (!strcmp(name, to))
            return true;
    return false;
}

int xf_cmd_export(const xf_cli_ctx *ctx, int argc, char **argv)
{
    (void)ctx;
    static const struct option opts[] = {{"to", required_argument, NULL, 't'},
                                         {"type", required_argument, NULL, 'T'},
                                         {"gguf-asym", required_argument, NULL, 'a'},
                                         {"fallback", required_argument, NULL, 'f'},
                                         {"weights-only", no_argument, NULL, 'w'},
                                         {"gptq-format", required_argument, NULL, 'g'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0, 0, 0, 0}};
    xf_export_options o = {0};
    const char *to = NULL;
    bool as_json = false;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 't': to = optarg; break;
        case 'T':
            if (one_of(optarg, "f16", "f32", "bf16"))
                o.float_type = optarg;
            else
                return xf_usage_error("export", "--type must be f16, f32 or bf16, not '%s'",
                                      optarg);
            break;
        case 'a':
            if (one_of(optarg, "q5_0", "q4_1", NULL))
                o.gguf_asym = optarg;
            else
                return xf_usage_error("export", "--gguf-asym must be q5_0 or q4_1, not '%s'",
                                      optarg);
            break;
        case 'f':
            if (one_of(optarg, "f16", "f32", NULL))
                o.fallback = optarg;
            else
                return xf_usage_error("export", "--fallback must be f16 or f32, not '%s'",
                                      optarg);
            break;
        case 'w': o.weights_only = 1; break;
        case 'g':
            if (one_of(optarg, "auto", "v1", "v2"))
                o.gptq_format = optarg;
            else
                return xf_usage_error("export", "--gptq-format must be auto, v1 or v2, not '%s'",
                                      optarg);
            break;
        case 'j': as_json = true; break;
        case 'h': print_help(); return XF_EXIT_OK;
        default: return xf_usage_error("export", "unknown option or missing value '%s'",
                                       argv[optind - 1]);
        }
    }
    if (!to)
        return xf_usage_error("export", "--to TARGET is required");
    if (!known_target(to))
        return xf_usage_error("export", "unknown target '%s'", to);
    if (argc - optind != 2)
        return xf_usage_error("export", "expected IN and OUT");
    o.to = to;
    xf_cli_progress prog;
    xf_run_opts run = xf_cli_run_opts(0, &prog);
    xf_status st = {0};
    char *report = NULL;
    if (xf_export(argv[optind], argv[optind + 1], &o, &run,
                  as_json ? XF_FORMAT_JSON : XF_FORMAT_TEXT, &report, &st) != 0)
        return xf_cli_status_exit("export", &st);
    fputs(report, stdout);
    if (as_json)
        fputc('\n', stdout);
    xf_free(report);
    return XF_EXIT_OK;
}
