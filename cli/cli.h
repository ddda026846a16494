/* Subcommands of the xfquant binary and the conventions they share:
 * usage errors exit 2, failures exit 1, each with ONE line on stderr. */
#ifndef XF_CLI_H
#define XF_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "include/xfquant.h"

#define XF_EXIT_OK 0
#define XF_EXIT_FAIL 1
#define XF_EXIT_USAGE 2

typedef struct xf_cli_ctx {
    int argc;      /* the whole command line, for provenance */
    char **argv;
} xf_cli_ctx;

int xf_cmd_info(const xf_cli_ctx *ctx, int argc, char **argv);
int xf_cmd_ppl(const xf_cli_ctx *ctx, int argc, char **argv);
int xf_cmd_kld(const xf_cli_ctx *ctx, int argc, char **argv);
int xf_cmd_rtn(const xf_cli_ctx *ctx, int argc, char **argv);
int xf_cmd_gptq(const xf_cli_ctx *ctx, int argc, char **argv);
int xf_cmd_regress(const xf_cli_ctx *ctx, int argc, char **argv);
int xf_cmd_stats(const xf_cli_ctx *ctx, int argc, char **argv);
int xf_cmd_export(const xf_cli_ctx *ctx, int argc, char **argv);

/* Prints "xfquant CMD: message" and returns XF_EXIT_USAGE. */
int xf_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints "xfquant: message" and returns XF_EXIT_FAIL. */
int xf_failure(const char *msg);

/* A failed library call as the exit code: XF_USAGE -> xf_usage_error(cmd,
 * message), anything else -> xf_failure(message). */
int xf_cli_status_exit(const char *cmd, const xf_status *st);

/* The TTY progress line the CLI draws from the library's progress callback
 * (nothing when stderr is not a terminal). */
typedef struct xf_cli_progress {
    double t_start;
    bool started;
    bool tty;
} xf_cli_progress;

/* Run options for a library call: threads (0: all cores) and p's line. */
xf_run_opts xf_cli_run_opts(int threads, xf_cli_progress *p);

/* Strict number parsing for option values; false on garbage/overflow. */
bool xf_parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out);
bool xf_parse_double(const char *s, double *out);
/* A size: digits with an optional unit K, M, G, T (powers of 1024; "KiB",
 * "MB", "GiB" ... accepted, all binary), or a plain byte count. False on
 * anything else, on 0 and on overflow. */
bool xf_parse_size(const char *text, int64_t *bytes);

#endif
