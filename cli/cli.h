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

/* --progress: how the library's progress events are shown on stderr
 * (cli/progress_line.c, docs/cli.md "Progress"): auto a bar on a terminal
 * and nothing otherwise; bar the one-line bar; json one JSON object per
 * line and event; none nothing. */
typedef enum xf_cli_progress_mode {
    XF_CLI_PROGRESS_AUTO = 0,
    XF_CLI_PROGRESS_BAR,
    XF_CLI_PROGRESS_JSON,
    XF_CLI_PROGRESS_NONE
} xf_cli_progress_mode;

typedef struct xf_cli_progress {
    xf_cli_progress_mode mode; /* AUTO resolved to BAR or NONE */
    bool drawn;                /* the bar line holds text */
} xf_cli_progress;

/* false for a name that is none of auto, bar, json, none */
bool xf_cli_progress_mode_parse(const char *s, xf_cli_progress_mode *out);

/* Run options for a library call: threads (0: all cores) and progress
 * shown as `mode` says through p (which must outlive the call). */
xf_run_opts xf_cli_run_opts_mode(int threads, xf_cli_progress_mode mode, xf_cli_progress *p);
/* The same with mode auto. */
xf_run_opts xf_cli_run_opts(int threads, xf_cli_progress *p);

/* Strict number parsing for option values; false on garbage/overflow. */
bool xf_parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out);
bool xf_parse_double(const char *s, double *out);
/* A size: digits with an optional unit K, M, G, T (powers of 1024; "KiB",
 * "MB", "GiB" ... accepted, all binary), or a plain byte count. False on
 * anything else, on 0 and on overflow. */
bool xf_parse_size(const char *text, int64_t *bytes);

#endif
