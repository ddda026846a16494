/* xfquant: one binary, subcommands. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/mapped_fault.h"

typedef struct {
    const char *name;
    int (*run)(const xf_cli_ctx *, int, char **);
    const char *summary;
} xf_command;

static const xf_command commands[] = {
    {"info", xf_cmd_info, "describe a .safetensors file, an HF model directory or an .xfq file"},
    {"ppl", xf_cmd_ppl, "perplexity of a model on a text (GPTQ or llama.cpp protocol)"},
    {"kld", xf_cmd_kld, "KL divergence of a model's predictions from a base model's"},
    {"rtn", xf_cmd_rtn, "round-to-nearest weight quantization into an .xfq file"},
    {"gptq", xf_cmd_gptq, "GPTQ weight quantization with calibration text into an .xfq file"},
    {"regress", xf_cmd_regress, "run an accuracy regression suite (quantize, evaluate, compare)"},
    {"export", xf_cmd_export, "write an .xfq as a GPTQ or compressed-tensors checkpoint"},
    {"stats", xf_cmd_stats, "per-layer activation statistics (outliers, kurtosis) on calibration text"},
    {"export", xf_cmd_export, "write a model for another engine (--to gguf: llama.cpp, ollama)"},
};

static void print_help(FILE *out)
{
    fprintf(out,
            "xfquant %s - post-training quantization of transformer language models\n\n"
            "usage: xfquant [--version] [--help] COMMAND [ARGS]\n\ncommands:\n",
            xf_version());
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fprintf(out,
            "\nMODEL arguments accept an HF model directory (config.json + *.safetensors;\n"
            "also a GPTQ or compressed-tensors checkpoint), a .safetensors file with\n"
            "config.json beside it, or an .xfq file.\n"
            "Run 'xfquant COMMAND --help' for a command's options. Exit codes: 0 ok,\n"
            "1 failure, 2 usage error.\n");
}

/* Results printed on stdout (info, ppl --json, tables) are the command's
 * output too: a full disk or closed pipe behind stdout must not exit 0. */
static int finish(int code)
{
    errno = 0;
    int fr = fflush(stdout);
    int e = errno;
    if (fr != 0 || ferror(stdout)) {
        fprintf(stderr, "xfquant: standard output: write failed%s%s\n", e ? ": " : "",
                e ? strerror(e) : "");
        return code == XF_EXIT_OK ? XF_EXIT_FAIL : code;
    }
    return code;
}

int main(int argc, char **argv)
{
    xf_cli_ctx ctx = {argc, argv};
    xf_cli_catch_mapped_faults();
    if (argc < 2) {
        print_help(stderr);
        return XF_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        print_help(stdout);
        return finish(XF_EXIT_OK);
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "-V")) {
        printf("xfquant %s\n", xf_version());
        return finish(XF_EXIT_OK);
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(cmd, commands[i].name))
            return finish(commands[i].run(&ctx, argc - 1, argv + 1));
    return xf_usage_error(NULL, "unknown command '%s'", cmd);
}
