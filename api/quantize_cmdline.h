/* xf_quantize with the command line that asked for it, recorded in the
 * .xfq's provenance ("command_line"): what `xfquant rtn|gptq` calls. Not
 * part of the public API (a library caller has no command line; the
 * recipe's "options" record what was asked). */
#ifndef XF_API_QUANTIZE_CMDLINE_H
#define XF_API_QUANTIZE_CMDLINE_H

#include "include/xfquant.h"

/* argv[0..argc) recorded as given (argc 0: an empty array). */
int xf_quantize_cmdline(const char *in_path, const xf_recipe *r, const char *out_path,
                        const xf_run_opts *run, int argc, char *const *argv, char **summary_json,
                        xf_status *st);

#endif
