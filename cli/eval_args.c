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
        {"text-binary-ok", no_argument, NULL, 'B'},
        {0, 0, 0, 0}};
    memset(a, 0, sizeof *a);
    a->protocol = XF_PROTOCOL_GPTQ;
    *done = false;
    optind = 1;
    opterr = 0;
    int c;
    int64_t v;
    while ((c = getopt_long(argc, argv, "t:p:s:c:m:j:Jh", opts, NULL)) != -1) {
        switch (c) {
        case 't': a->text = optarg; break;
        case 'p':
            if (xf_protocol_parse(optarg, &a->protocol) != 0)
                return xf_usage_error(cmd, "--protocol must be gptq or llamacpp, not '%s'", optarg);
            break;
        case 's':
            if (!xf_parse_int(optarg, 2, 1 << 20, &v))
                return xf_usage_error(cmd, "--seqlen must be an integer >= 2, not '%s'", optarg);
            a->seqlen = v;
            break;
        case 'c':
            if (!xf_parse_int(optarg, 4, 1 << 20, &v))
                return xf_usage_error(cmd, "--ctx must be an integer >= 4, not '%s'", optarg);
            a->ctx = v;
            break;
        case 'm':
            if (!xf_parse_int(optarg, 1, INT64_MAX, &v))
                return xf_usage_error(cmd, "--max-windows must be a positive integer, not '%s'",
                                      optarg);
            a->max_windows = v;
            break;
        case 'j':
            if (!xf_parse_int(optarg, 1, 4096, &v))
                return xf_usage_error(cmd, "--threads must be a positive integer, not '%s'", optarg);
            a->threads = (int)v;
            break;
        case 'J': a->json = true; break;
        case 'B': a->text_binary_ok = true; break;
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
    if (a->protocol == XF_PROTOCOL_GPTQ && a->ctx)
        return xf_usage_error(cmd, "--ctx applies to --protocol llamacpp; use --seqlen");
    if (a->protocol == XF_PROTOCOL_LLAMACPP && a->seqlen)
        return xf_usage_error(cmd, "--seqlen applies to --protocol gptq; use --ctx");
    return 0;
}

int xf_eval_window_length(const xf_eval_args *a, const xf_model_config *cfg, int64_t *out,
                          char *why, size_t why_cap)
{
    int64_t explicit_len = a->protocol == XF_PROTOCOL_GPTQ ? a->seqlen : a->ctx;
    int64_t dflt = a->protocol == XF_PROTOCOL_GPTQ ? 2048 : 512;
    if (!explicit_len) {
        *out = cfg->max_pos > 0 && cfg->max_pos < dflt ? cfg->max_pos : dflt;
        return 0;
    }
    bool learned_positions = cfg->family == XF_FAMILY_OPT || cfg->family == XF_FAMILY_GPT2;
    if (learned_positions && explicit_len > cfg->max_pos) {
        snprintf(why, why_cap,
                 "window of %lld tokens exceeds the model's %lld learned positions",
                 (long long)explicit_len, (long long)cfg->max_pos);
        return -1;
    }
    *out = explicit_len;
    return 0;
}
