/* xfquant export --to TARGET IN OUT: writes IN (.xfq) in the format another
 * engine loads. One row of `targets` per format, so that adding a target is
 * one line here and one function in export/. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "export/ct_ckpt.h"
#include "export/gptq_ckpt.h"

static const char export_help[] =
    "usage: xfquant export --to TARGET [options] IN.xfq OUT\n\n"
    "Writes the quantized model IN in a format other engines load (docs/export.md).\n"
    "OUT is a new directory (it must not exist; it is built under a temp name and\n"
    "renamed at the end). Anything the target cannot hold is refused before any\n"
    "write, with a one-line reason.\n\n"
    "targets:\n"
    "  gptq                GPTQ checkpoint (transformers + GPTQModel/optimum, vLLM gptq,\n"
    "                      gptq_marlin): qweight/qzeros/scales/g_idx per linear\n"
    "  compressed-tensors  compressed-tensors pack-quantized (llm-compressor, vLLM)\n\n"
    "options:\n"
    "  --to TARGET          the format (required)\n"
    "  --weights-only       export the weights of a recipe with activation/KV\n"
    "                       quantization or online transforms anyway (recorded in\n"
    "                       OUT/xfquant_export.json; an engine runs it without them)\n"
    "  --gptq-format F      GPTQ zero points: auto (default: \"gptq\" v1 when every zero\n"
    "                       point is >= 1, else \"gptq_v2\"), v1 or v2\n"
    "  --json               print the summary as JSON\n"
    "  --help               this text\n";

typedef int (*export_fn)(const char *in, const char *out, const xf_export_options *o,
                         json_t **summary, xf_error *err);

/* The dispatch table: --to NAME -> writer. */
static const struct {
    const char *name;
    export_fn run;
} targets[] = {
    {"gptq", xf_export_gptq},
    {"compressed-tensors", xf_export_compressed_tensors},
};

enum { OPT_TO = 256, OPT_WEIGHTS_ONLY, OPT_GPTQ_FORMAT, OPT_JSON, OPT_HELP };

static void print_summary(const json_t *s)
{
    const char *target = json_string_value(json_object_get(s, "target"));
    printf("%s -> %s (%s)\n", json_string_value(json_object_get(s, "input")),
           json_string_value(json_object_get(s, "output")), target);
    printf("quantized linears: %lld, plain tensors: %lld, tensor bytes: %lld\n",
           (long long)json_integer_value(json_object_get(s, "quantized_linears")),
           (long long)json_integer_value(json_object_get(s, "plain_tensors")),
           (long long)json_integer_value(json_object_get(s, "tensor_bytes")));
    if (!strcmp(target, "gptq")) {
        printf("checkpoint_format %s, bits %lld, group_size %lld, sym %s, desc_act %s\n",
               json_string_value(json_object_get(s, "checkpoint_format")),
               (long long)json_integer_value(json_object_get(s, "bits")),
               (long long)json_integer_value(json_object_get(s, "group_size")),
               json_is_true(json_object_get(s, "sym")) ? "true" : "false",
               json_is_true(json_object_get(s, "desc_act")) ? "true" : "false");
        printf("vLLM kernel: %s (%s)\n", json_string_value(json_object_get(s, "vllm_kernel")),
               json_string_value(json_object_get(s, "vllm_kernel_reason")));
    } else {
        printf("config groups: %lld, scales %s, vLLM scheme: %s\n",
               (long long)json_integer_value(json_object_get(s, "config_groups")),
               json_string_value(json_object_get(s, "scale_dtype")),
               json_string_value(json_object_get(s, "vllm_scheme")));
    }
    size_t i;
    const json_t *v;
    json_array_foreach(json_object_get(s, "kept_dtype"), i, v)
        printf("kept in its .xfq dtype (not exact in the model's): %s\n", json_string_value(v));
    json_array_foreach(json_object_get(s, "omitted"), i, v)
        printf("omitted (--weights-only): %s\n", json_string_value(v));
}

int xf_cmd_export(const xf_cli_ctx *ctx, int argc, char **argv)
{
    (void)ctx;
    static const struct option opts[] = {
        {"to", required_argument, NULL, OPT_TO},
        {"weights-only", no_argument, NULL, OPT_WEIGHTS_ONLY},
        {"gptq-format", required_argument, NULL, OPT_GPTQ_FORMAT},
        {"json", no_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, OPT_HELP},
        {0, 0, 0, 0}};
    const char *to = NULL;
    bool as_json = false;
    xf_export_options o = {0};
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case OPT_TO: to = optarg; break;
        case OPT_WEIGHTS_ONLY: o.weights_only = true; break;
        case OPT_GPTQ_FORMAT:
            if (!strcmp(optarg, "auto"))
                o.gptq_zeros = XF_GPTQ_ZEROS_AUTO;
            else if (!strcmp(optarg, "v1"))
                o.gptq_zeros = XF_GPTQ_ZEROS_V1;
            else if (!strcmp(optarg, "v2"))
                o.gptq_zeros = XF_GPTQ_ZEROS_V2;
            else
                return xf_usage_error("export", "--gptq-format must be auto, v1 or v2, not '%s'",
                                      optarg);
            break;
        case OPT_JSON: as_json = true; break;
        case OPT_HELP: fputs(export_help, stdout); return XF_EXIT_OK;
        default: return xf_usage_error("export", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (!to)
        return xf_usage_error("export", "--to TARGET is required (gptq, compressed-tensors)");
    export_fn run = NULL;
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++)
        if (!strcmp(to, targets[i].name))
            run = targets[i].run;
    if (!run)
        return xf_usage_error("export", "unknown --to target '%s'", to);
    if (optind != argc - 2)
        return xf_usage_error("export", "expected IN and OUT");
    json_t *summary = NULL;
    xf_error err = {0};
    if (run(argv[optind], argv[optind + 1], &o, &summary, &err) != 0)
        return xf_failure(err.msg);
    if (as_json) {
        char *s = json_dumps(summary, JSON_INDENT(2) | JSON_SORT_KEYS);
        puts(s ? s : "{}");
        free(s);
    } else
        print_summary(summary);
    json_decref(summary);
    return XF_EXIT_OK;
}
