/* xfquant info FILE [--json]: tensors, dtypes, shapes, parameter count,
 * bits per weight and (for .xfq) the recipe, as xf_info renders them. */
#include <getopt.h>
#include <stdio.h>

#include "cli/cli.h"

static const char info_help[] =
    "usage: xfquant info FILE [--json]\n\n"
    "Describes FILE: an HF model directory (also a GPTQ or compressed-tensors\n"
    "checkpoint, whose quantized linears are read and checked), a .safetensors file\n"
    "(config.json beside it is used when present), an .xfq file or a GGUF file\n"
    "(tensors under their GGUF names with their GGML types).\n\n"
    "  --json   print the description as JSON (schema in docs/cli.md)\n"
    "  --help   this text\n";

int xf_cmd_info(const xf_cli_ctx *ctx, int argc, char **argv)
{
    (void)ctx;
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'}, {0, 0, 0, 0}};
    bool as_json = false;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "jh", opts, NULL)) != -1) {
        switch (c) {
        case 'j': as_json = true; break;
        case 'h': fputs(info_help, stdout); return XF_EXIT_OK;
        default: return xf_usage_error("info", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind != argc - 1)
        return xf_usage_error("info", "expected exactly one FILE");
    xf_cli_progress prog;
    xf_run_opts run = xf_cli_run_opts(0, &prog);
    xf_status st = {0};
    char *s = xf_info(argv[optind], as_json ? XF_FORMAT_JSON : XF_FORMAT_TEXT, &run, &st);
    if (!s)
        return xf_cli_status_exit("info", &st);
    fputs(s, stdout);
    if (as_json)
        fputc('\n', stdout);
    xf_free(s);
    return XF_EXIT_OK;
}
