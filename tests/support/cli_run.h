/* Runs the xfquant binary (XFQUANT_BIN, else build/cli/xfquant) from a test
 * with stdout and stderr captured in files under a scratch directory. */
#ifndef XF_TEST_CLI_RUN_H
#define XF_TEST_CLI_RUN_H

#include <stdbool.h>

typedef struct xf_cli_result {
    int code;       /* exit status; 128 when killed by a signal */
    char *out, *err;
} xf_cli_result;

const char *xf_cli_bin(void);
/* `xfquant ARGS` (printf-style), output captured in scratch_dir. */
xf_cli_result xf_cli_run(const char *scratch_dir, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void xf_cli_result_free(xf_cli_result *r);
int xf_cli_count_lines(const char *s);

#endif
