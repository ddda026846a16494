/* Options shared by `ppl` and `kld`: the text, the protocol and its window
 * length, a cap on windows, threads, JSON output. */
#ifndef XF_CLI_EVAL_ARGS_H
#define XF_CLI_EVAL_ARGS_H

#include <stdbool.h>
#include <stdint.h>

#include "cli/cli.h"
#include "include/xfquant.h"

typedef struct xf_eval_args {
    const char *text;
    xf_eval_opts eval; /* protocol, seqlen, ctx, max_windows, text_binary_ok */
    int threads;       /* 0: all cores */
    xf_cli_progress_mode progress;
    bool json;
    const char *positional[2];
    int n_positional;
} xf_eval_args;

/* Returns 0, or an exit code (help printed: *done set instead). n_models:
 * positional arguments expected. */
int xf_eval_args_parse(xf_eval_args *a, const char *cmd, const char *help, int n_models,
                       int argc, char **argv, bool *done);

#endif
