/* xfquant export --to TARGET [options] IN OUT: writes a model (an .xfq or
 * an fp HF directory) in another engine's format. The targets live in
 * export/export.h's table; this file only parses flags and prints the
 * summary. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "export/export.h"

static void print_help(void)
{
    printf("usage: xfquant export --to TARGET [options] IN OUT\n\n"
           "Writes IN (an .xfq file, or an fp HF model directory) as OUT for another\n"
           "engine. Anything the target cannot hold is refused before any write, with\n"
           "a one-line reason; docs/export.md lists what is exact and what is not.\n\n"
           "targets:\n");
    for (int i = 0; i < xf_export_n_targets; i++)
        printf("  %-20s %s\n", xf_export_targets[i].name, xf_export_targets[i].what);
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

static void print_text(const json_t *s)
{
    printf("wrote %s (%s, %s): %lld tensors, %lld bytes, %.4f bits per weight\n",
           json_string_value(json_object_get(s, "output")),
           json_string_value(json_object_get(s, "to")),
           json_string_value(json_object_get(s, "architecture")),
           (long long)json_integer_value(json_object_get(s, "tensors")),
           (long long)json_integer_value(json_object_get(s, "bytes")),
           json_real_value(json_object_get(s, "bits_per_weight")));
    const char *k;
    const json_t *e;
    json_object_foreach((json_t *)json_object_get(s, "types"), k, e)
        printf("  %-6s %4lld tensors %12lld weights %.4f bits per weight\n", k,
               (long long)json_integer_value(json_object_get(e, "tensors")),
               (long long)json_integer_value(json_object_get(e, "params")),
               json_real_value(json_object_get(e, "bits_per_weight")));
    const json_t *ap = json_object_get(s, "approximate");
    if (json_array_size(ap) == 0)
        printf("every quantized weight is exact\n");
    size_t i;
    json_array_foreach(ap, i, e)
        printf("  approximate: %s as %s, max |error| %.3g (%s)\n",
               json_string_value(json_object_get(e, "tensor")),
               json_string_value(json_object_get(e, "type")),
               json_real_value(json_object_get(e, "max_abs_err")),
               json_string_value(json_object_get(e, "why")));
    const char *om = json_string_value(json_object_get(s, "omitted"));
    if (om)
        printf("note: %s\n", om);
}

/* GPTQ / compressed-tensors summary */
static void print_checkpoint_summary(const json_t *s)
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
    static const struct option opts[] = {{"to", required_argument, NULL, 't'},
                                         {"type", required_argument, NULL, 'T'},
                                         {"gguf-asym", required_argument, NULL, 'a'},
                                         {"fallback", required_argument, NULL, 'f'},
                                         {"weights-only", no_argument, NULL, 'w'},
                                         {"gptq-format", required_argument, NULL, 'g'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0, 0, 0, 0}};
    xf_export_opts o = {0};
    const char *to = NULL;
    bool as_json = false;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 't': to = optarg; break;
        case 'T':
            if (!strcmp(optarg, "f16"))
                o.float_type = XF_EXPORT_FLOAT_F16;
            else if (!strcmp(optarg, "f32"))
                o.float_type = XF_EXPORT_FLOAT_F32;
            else if (!strcmp(optarg, "bf16"))
                o.float_type = XF_EXPORT_FLOAT_BF16;
            else
                return xf_usage_error("export", "--type must be f16, f32 or bf16, not '%s'",
                                      optarg);
            break;
        case 'a':
            if (!strcmp(optarg, "q5_0"))
                o.gguf_asym = XF_GGUF_ASYM_Q5_0;
            else if (!strcmp(optarg, "q4_1"))
                o.gguf_asym = XF_GGUF_ASYM_Q4_1;
            else
                return xf_usage_error("export", "--gguf-asym must be q5_0 or q4_1, not '%s'",
                                      optarg);
            break;
        case 'f':
            if (!strcmp(optarg, "f16"))
                o.fallback = XF_EXPORT_FALLBACK_F16;
            else if (!strcmp(optarg, "f32"))
                o.fallback = XF_EXPORT_FALLBACK_F32;
            else
                return xf_usage_error("export", "--fallback must be f16 or f32, not '%s'",
                                      optarg);
            break;
        case 'w': o.weights_only = true; break;
        case 'g':
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
        case 'j': as_json = true; break;
        case 'h': print_help(); return XF_EXIT_OK;
        default: return xf_usage_error("export", "unknown option or missing value '%s'",
                                       argv[optind - 1]);
        }
    }
    if (!to)
        return xf_usage_error("export", "--to TARGET is required");
    const xf_export_target *t = xf_export_find(to);
    if (!t)
        return xf_usage_error("export", "unknown target '%s'", to);
    if (argc - optind != 2)
        return xf_usage_error("export", "expected IN and OUT");
    o.progress = isatty(STDERR_FILENO);
    xf_error err = {0};
    json_t *summary = NULL;
    if (t->run(argv[optind], argv[optind + 1], &o, &summary, &err) != 0)
        return xf_failure(err.msg);
    if (as_json) {
        char *s = json_dumps(summary, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(10));
        puts(s ? s : "{}");
        free(s);
    } else if (!strcmp(t->name, "gguf"))
        print_text(summary);
    else
        print_checkpoint_summary(summary);
    json_decref(summary);
    return XF_EXIT_OK;
}
