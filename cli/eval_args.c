#include "cli/eval_args.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

int xf_eval_args_parse(xf_eval_args *a, const char *cmd, const char *help, int n_models,
                       int argc, char **argv, bool *done)
{
    static const struct option opts[] = {
        {"text", required_argument, NULL, 't'},     {"protocol", required_argument, NULL, 'p'},
        {"seqlen", required_argument, NULL, 's'},   {"ctx", required_argument, NULL, 'c'},
        {"max-windows", required_argument, NULL, 'm'}, {"threads", required_argument, NULL, 'j'},
        {"json", no_argument, NULL, 'J'},           {"help", no_argument, NULL, 'h'},
        {"text-binary-ok", no_argument, NULL, 'B'}, {"progress", required_argument, NULL, 'P'},
        {"text-half", required_argument, NULL, 'H'},
        {0, 0, 0, 0}};
    memset(a, 0, sizeof *a);
    bool llamacpp = false;
    *done = false;
    optind = 1;
    opterr = 0;
    int c;
    int64_t v;
    while ((c = getopt_long(argc, argv, "t:p:s:c:m:j:Jh", opts, NULL)) != -1) {
        switch (c) {
        case 't': a->text = optarg; break;
        case 'p':
            /* the names eval/windows.c's protocol parser accepts */
            if (strcmp(optarg, "gptq") && strcmp(optarg, "llamacpp") && strcmp(optarg, "llama.cpp"))
                return xf_usage_error(cmd, "--protocol must be gptq or llamacpp, not '%s'", optarg);
            a->eval.protocol = optarg;
            llamacpp = strcmp(optarg, "gptq") != 0;
            break;
        case 's':
            if (!xf_parse_int(optarg, 2, 1 << 20, &v))
                return xf_usage_error(cmd, "--seqlen must be an integer >= 2, not '%s'", optarg);
            a->eval.seqlen = v;
            break;
        case 'c':
            if (!xf_parse_int(optarg, 4, 1 << 20, &v))
                return xf_usage_error(cmd, "--ctx must be an integer >= 4, not '%s'", optarg);
            a->eval.ctx = v;
            break;
        case 'm':
            if (!xf_parse_int(optarg, 1, INT64_MAX, &v))
                return xf_usage_error(cmd, "--max-windows must be a positive integer, not '%s'",
                                      optarg);
            a->eval.max_windows = v;
            break;
        case 'j':
            if (!xf_parse_int(optarg, 1, 4096, &v))
                return xf_usage_error(cmd, "--threads must be a positive integer, not '%s'", optarg);
            a->threads = (int)v;
            break;
        case 'J': a->json = true; break;
        case 'B': a->eval.text_binary_ok = 1; break;
        case 'H':
            if (!xf_parse_int(optarg, 1, 2, &v))
                return xf_usage_error(cmd, "--text-half must be 1 or 2, not '%s'", optarg);
            a->eval.text_half = (int)v;
            break;
        case 'P':
            if (!xf_cli_progress_mode_parse(optarg, &a->progress))
                return xf_usage_error(cmd, "--progress must be auto, bar, json or none, not '%s'",
                                      optarg);
            break;
        case 'h':
            fputs(help, stdout);
            *done = true;
            return XF_EXIT_OK;
        case '?':
        default:
            if (optopt)
                return xf_usage_error(cmd, "option '-%c' needs a value or is unknown", optopt);
            return xf_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        }
    }
    for (int i = optind; i < argc; i++) {
        if (a->n_positional == n_models)
            return xf_usage_error(cmd, "unexpected argument '%s'", argv[i]);
        a->positional[a->n_positional++] = argv[i];
    }
    if (a->n_positional != n_models)
        return xf_usage_error(cmd, "expected %d model argument%s", n_models, n_models > 1 ? "s" : "");
    if (!a->text)
        return xf_usage_error(cmd, "--text FILE is required");
    if (!llamacpp && a->eval.ctx)
        return xf_usage_error(cmd, "--ctx applies to --protocol llamacpp; use --seqlen");
    if (llamacpp && a->eval.seqlen)
        return xf_usage_error(cmd, "--seqlen applies to --protocol gptq; use --ctx");
    return 0;
}
