/* The command line of `xfquant rtn|gptq` as a reusable parser, so that a
 * regression case (whose recipe keys map 1:1 to these flags, see
 * regress/argv.c) is quantized with exactly the options the CLI would
 * build: one parser, no second mapping to drift. */
#ifndef XF_CLI_QUANT_ARGS_H
#define XF_CLI_QUANT_ARGS_H

#include <stdbool.h>

#include "pipeline/quantize_model.h"

typedef struct xf_quant_cli {
    const char *in, *out; /* positional IN and OUT.xfq (borrowed from argv) */
    int threads;          /* 0: all cores */
    bool json;
    bool help;            /* --help was printed: nothing else to do */
} xf_quant_cli;

/* argv[0] is the subcommand name (getopt starts at argv[1]). Returns 0, or
 * XF_EXIT_USAGE after printing one usage line. String options in *o point
 * into argv: keep argv alive while o is used. */
int xf_quant_args_parse(xf_quant_method method, int argc, char **argv, xf_quant_options *o,
                        xf_quant_cli *x);

#endif
