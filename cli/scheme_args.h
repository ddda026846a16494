/* The activation / KV-cache / attention-probability and per-tensor-bits
 * options shared by `xfquant rtn` and `xfquant gptq` (their values land in
 * xf_quant_options; sim/act_quant.h defines the scheme). Kept apart from
 * cmd_quant.c so the option table, its parser and its help text stay in
 * one place. */
#ifndef XF_CLI_SCHEME_ARGS_H
#define XF_CLI_SCHEME_ARGS_H

#include <getopt.h>

#include "pipeline/quantize_model.h"

/* getopt_long values of these options: XF_SCHEME_OPT_BASE and up. */
#define XF_SCHEME_OPT_BASE 1000
/* Terminated by a zero entry. */
/* Terminated by a zero entry; at most XF_SCHEME_MAX_OPTIONS options
 * (_Static_asserted in scheme_args.c), so parsers can size their combined
 * tables at compile time. */
#define XF_SCHEME_MAX_OPTIONS 48
extern const struct option xf_scheme_options[];
extern const char xf_scheme_help[];

/* Handles option value c with argument arg: returns 1 when c is one of
 * these options (then *rc is 0, or the usage-error exit code already
 * printed), 0 when it is not. */
int xf_scheme_option(int c, const char *arg, xf_quant_options *o, const char *cmd, int *rc);

#endif
