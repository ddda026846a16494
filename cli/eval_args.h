/* Options shared by `ppl` and `kld`: the text, the protocol and its window
 * length, a cap on windows, threads, JSON output. */
#ifndef XF_CLI_EVAL_ARGS_H
#define XF_CLI_EVAL_ARGS_H

#include <stdbool.h>
#include <stdint.h>

#include "eval/windows.h"
#include "model/config.h"

typedef struct xf_eval_args {
    const char *text;
    xf_protocol protocol;
    int64_t seqlen;      /* 0: default */
    int64_t ctx;         /* 0: default */
    int64_t max_windows; /* 0: all */
    int threads;         /* 0: all cores */
    bool json;
    bool text_binary_ok; /* --text-binary-ok: score a text that is not UTF-8 */
    const char *positional[2];
    int n_positional;
} xf_eval_args;

/* Returns 0, or an exit code (help printed: XF_EXIT_OK + 100 sentinel is
 * not used: *done set instead). n_models: positional arguments expected. */
int xf_eval_args_parse(xf_eval_args *a, const char *cmd, const char *help, int n_models,
                       int argc, char **argv, bool *done);

/* Window length for cfg under the chosen protocol: the explicit value, or
 * min(2048, max_pos) for gptq and min(512, max_pos) for llama.cpp. Fails
 * (usage) when an explicit value exceeds what learned position tables hold. */
int xf_eval_window_length(const xf_eval_args *a, const xf_model_config *cfg, int64_t *out,
                          char *why, size_t why_cap);

#endif
