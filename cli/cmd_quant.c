/* xfquant rtn / xfquant gptq: weight quantization of a model into .xfq.
 *
 * The options are the public option table (include/xfquant.h,
 * xf_option_get): the getopt table, --help and the recipe are generated
 * from it, each flag is xf_recipe_set(key, value), `--recipe FILE` is
 * applied first (flags override it wherever they stand). Only --recipe,
 * --threads, --json, --progress, -v, --help and the run options (--max-memory,
 * --spill-dir, --no-checkpoint, --resume: how the run is carried out, not
 * what it computes) are this file's own. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "include/xfquant.h"

static const char rtn_intro[] =
    "usage: xfquant rtn --bits N [options] IN OUT.xfq\n\n"
    "Round-to-nearest quantization of every decoder linear of IN (HF directory,\n"
    ".safetensors with config.json beside it, .xfq or GGUF) into OUT.xfq (or OUT.gguf\n"
    "with --gguf-type). rtn reads calibration text (--calib and the options after it)\n"
    "only for the options marked [needs --calib].\n";

static const char gptq_intro[] =
    "usage: xfquant gptq --bits N --calib FILE [options] IN OUT.xfq\n\n"
    "GPTQ quantization (Frantar et al. 2023) of every decoder linear of IN into\n"
    "OUT.xfq, calibrated block by block on text (true-sequential: q/k/v, then o,\n"
    "then gate/up, then down, each seeing inputs from the already quantized ones).\n";

static const char cli_help[] =
    "  --recipe FILE          a recipe JSON (the object `xfquant info --json` shows as\n"
    "                         \"recipe\".\"options\", or a .xfq's whole recipe): its keys\n"
    "                         are the [keys] above; flags given here override it\n"
    "  --threads N            threads (default: all cores)\n"
    "  --max-memory SIZE      gptq: memory the run may hold, e.g. 12G (default: 80 % of\n"
    "                         MemAvailable); calibration states that do not fit are\n"
    "                         spilled to a temporary file; refused up front, with the\n"
    "                         numbers, when even that cannot fit\n"
    "  --spill-dir DIR        gptq: where spilled states go (default: OUT's directory)\n"
    "  --no-checkpoint        gptq: keep no checkpoint (default: OUT.ckpt/ after every\n"
    "                         block, removed on success)\n"
    "  --resume               gptq: continue a killed run from OUT.ckpt/ (same command\n"
    "                         otherwise); the output is the same bytes\n"
    "  --json                 print a JSON summary\n"
    "  --progress MODE        auto (default: a bar on a terminal, else nothing), bar,\n"
    "                         json (one JSON object per event and line) or none;\n"
    "                         on stderr (docs/cli.md, \"Progress\")\n"
    "  -v, --verbose          log progress details\n";

enum {
    OPT_THREADS = 1, OPT_JSON, OPT_HELP, OPT_RECIPE, OPT_MAX_MEMORY, OPT_SPILL_DIR,
    OPT_NO_CHECKPOINT, OPT_RESUME, OPT_PROGRESS, OPT_VERBOSE = 'v', OPT_ROW = 256
};

static unsigned method_mask(const char *cmd)
{
    return strcmp(cmd, "gptq") == 0 ? XF_METHOD_MASK_GPTQ : XF_METHOD_MASK_RTN;
}

/* --help: every table row this method accepts, then the CLI's own flags. */
static void print_help(const char *cmd)
{
    fputs(strcmp(cmd, "gptq") == 0 ? gptq_intro : rtn_intro, stdout);
    fputs("\noptions ([key] in a recipe JSON):\n", stdout);
    for (int i = 0; i < xf_option_count(); i++) {
        xf_option_info o;
        if (xf_option_get(i, &o) != 0 || !(o.methods & method_mask(cmd)))
            continue;
        char head[64];
        snprintf(head, sizeof head, "--%s%s%s", o.flag, o.arg_name ? " " : "",
                 o.arg_name ? o.arg_name : "");
        printf("  %-22s ", head);
        for (const char *p = o.help; *p; p++) {
            putchar(*p);
            if (*p == '\n')
                printf("%25s", "");
        }
        if (o.default_text && o.type != XF_OPT_BOOL)
            printf(" (default %s)", o.default_text);
        if (o.needs_calib)
            fputs(" [needs --calib]", stdout);
        printf(" [%s]\n", o.key);
    }
    fputs(cli_help, stdout);
}

typedef struct quant_cli {
    const char *recipe_path;
    int threads;
    xf_cli_progress_mode progress;
    bool json, help;
    int64_t max_memory;    /* 0: the default bound */
    const char *spill_dir;
    bool no_checkpoint, resume;
    const char **flag_keys; /* the keys the flags set (NULL-terminated), skipped in --recipe */
    char **cmdline;         /* the command line as recorded (room for ctx->argc) */
    int n_flag_keys;
} quant_cli;

/* The getopt table: the option rows this method accepts (val OPT_ROW + row)
 * and the CLI's own; malloc'd. The rows of the other method are listed
 * too, so that they are refused with "applies to gptq only" rather than
 * "unknown option". */
static struct option *build_options(void)
{
    static const struct option own[] = {
        {"threads", required_argument, NULL, OPT_THREADS},
        {"json", no_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, OPT_HELP},
        {"recipe", required_argument, NULL, OPT_RECIPE},
        {"verbose", no_argument, NULL, OPT_VERBOSE},
        {"progress", required_argument, NULL, OPT_PROGRESS},
        {"max-memory", required_argument, NULL, OPT_MAX_MEMORY},
        {"spill-dir", required_argument, NULL, OPT_SPILL_DIR},
        {"no-checkpoint", no_argument, NULL, OPT_NO_CHECKPOINT},
        {"resume", no_argument, NULL, OPT_RESUME},
    };
    const int n_rows = xf_option_count(), n_own = (int)(sizeof own / sizeof *own);
    struct option *t = calloc((size_t)(n_rows + n_own + 1), sizeof *t);
    if (!t)
        return NULL;
    int n = 0;
    for (int i = 0; i < n_rows; i++) {
        xf_option_info o;
        if (xf_option_get(i, &o) != 0)
            continue;
        t[n++] = (struct option){o.flag, o.type == XF_OPT_BOOL ? no_argument : required_argument,
                                 NULL, OPT_ROW + i};
    }
    for (int i = 0; i < n_own; i++)
        t[n++] = own[i];
    return t;
}

/* Pass 1: the CLI's own flags; the keys of table flags go to x->flag_keys
 * (room for argc keys). */
static int first_pass(const char *cmd, int argc, char **argv, const struct option *opts,
                      quant_cli *x)
{
    int c;
    int64_t v;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "v", opts, NULL)) != -1) {
        switch (c) {
        case OPT_THREADS:
            if (!xf_parse_int(optarg, 1, 4096, &v))
                return xf_usage_error(cmd, "--threads must be a positive integer, not '%s'",
                                      optarg);
            x->threads = (int)v;
            break;
        case OPT_JSON: x->json = true; break;
        case OPT_PROGRESS:
            if (!xf_cli_progress_mode_parse(optarg, &x->progress))
                return xf_usage_error(cmd, "--progress must be auto, bar, json or none, not '%s'",
                                      optarg);
            break;
        case OPT_HELP: x->help = true; break;
        case OPT_RECIPE: x->recipe_path = optarg; break;
        case OPT_VERBOSE: xf_set_log(NULL, NULL, XF_LEVEL_INFO); break;
        case OPT_MAX_MEMORY:
            if (!xf_parse_size(optarg, &x->max_memory))
                return xf_usage_error(cmd, "--max-memory must be a size such as 12G or 512M, "
                                           "not '%s'",
                                      optarg);
            break;
        case OPT_SPILL_DIR: x->spill_dir = optarg; break;
        case OPT_NO_CHECKPOINT: x->no_checkpoint = true; break;
        case OPT_RESUME: x->resume = true; break;
        default:
            if (c >= OPT_ROW) {
                xf_option_info o;
                if (xf_option_get(c - OPT_ROW, &o) == 0)
                    x->flag_keys[x->n_flag_keys++] = o.key;
                break;
            }
            return xf_usage_error(cmd, "unknown option or missing value: '%s'", argv[optind - 1]);
        }
    }
    return 0;
}

/* The --recipe file without the keys the command line sets (a list key
 * given as a flag replaces the file's list instead of extending it). */
static xf_recipe *recipe_from_file(const char *cmd, const char *path, const char *const *skip,
                                   int *rc)
{
    xf_status st = {0};
    xf_recipe *r = xf_recipe_from_file(path, cmd, skip, &st);
    if (!r)
        *rc = st.code == XF_USAGE ? xf_usage_error(cmd, "--recipe %s", st.message)
                                  : xf_failure(st.message);
    return r;
}

/* Pass 2: every table flag, in order, onto the recipe. */
static int second_pass(const char *cmd, int argc, char **argv, const struct option *opts,
                       xf_recipe *r)
{
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "v", opts, NULL)) != -1) {
        xf_option_info o;
        if (c < OPT_ROW || xf_option_get(c - OPT_ROW, &o) != 0)
            continue;
        xf_status st = {0};
        if (xf_recipe_set(r, o.key, o.type == XF_OPT_BOOL ? "true" : optarg, &st) != 0)
            return xf_usage_error(cmd, "%s", st.message);
    }
    return 0;
}

static int run_quant(const xf_cli_ctx *ctx, const char *cmd, int argc, char **argv)
{
    struct option *opts = build_options();
    quant_cli x = {0};
    x.flag_keys = calloc((size_t)argc + 1, sizeof *x.flag_keys);
    x.cmdline = calloc((size_t)ctx->argc + 1, sizeof *x.cmdline);
    if (!opts || !x.flag_keys || !x.cmdline) {
        free(opts);
        free(x.flag_keys);
        free(x.cmdline);
        return xf_failure("out of memory");
    }
    xf_recipe *r = NULL;
    int rc = first_pass(cmd, argc, argv, opts, &x);
    if (rc == 0 && x.help) {
        print_help(cmd);
        goto out;
    }
    if (rc == 0 && x.recipe_path)
        r = recipe_from_file(cmd, x.recipe_path, x.flag_keys, &rc);
    else if (rc == 0 && !(r = xf_recipe_new(cmd, NULL)))
        rc = xf_failure("out of memory");
    if (rc == 0)
        rc = second_pass(cmd, argc, argv, opts, r);
    if (rc == 0 && argc - optind != 2)
        rc = xf_usage_error(cmd, "expected IN and OUT.xfq");
    if (rc == 0 && strcmp(cmd, "gptq") != 0 &&
        (x.max_memory || x.spill_dir || x.no_checkpoint || x.resume))
        rc = xf_usage_error(cmd, "--max-memory, --spill-dir, --no-checkpoint and --resume "
                                 "apply to gptq only");
    if (rc == 0 && x.resume && x.no_checkpoint)
        rc = xf_usage_error(cmd, "--resume continues from a checkpoint: not with "
                                 "--no-checkpoint");
    xf_status st = {0};
    if (rc == 0 && xf_recipe_check(r, &st) != 0)
        rc = xf_usage_error(cmd, "%s", st.message);
    if (rc == 0) {
        const char *in = argv[optind], *out = argv[optind + 1];
        xf_cli_progress prog;
        xf_run_opts run = xf_cli_run_opts_mode(x.threads, x.progress, &prog);
        /* recorded in the provenance, without --resume: a resumed run
         * writes the bytes of the run it continues */
        int kept = 0;
        for (int i = 0; i < ctx->argc; i++)
            if (strcmp(ctx->argv[i], "--resume") != 0)
                x.cmdline[kept++] = ctx->argv[i];
        run.argc = kept;
        run.argv = (const char *const *)x.cmdline;
        run.max_memory = x.max_memory;
        run.spill_dir = x.spill_dir;
        run.checkpoint = strcmp(cmd, "gptq") == 0 && !x.no_checkpoint;
        run.resume = x.resume;
        char *report = NULL;
        if (xf_quantize(in, r, out, &run, x.json ? XF_FORMAT_JSON : XF_FORMAT_TEXT, &report,
                        &st) != 0)
            rc = st.code == XF_USAGE ? xf_usage_error(cmd, "%s", st.message)
                                     : xf_failure(st.message);
        else if (report) /* NULL on the ranks other than 0 of an MPI job */
            puts(report);
        xf_free(report);
    }
out:
    xf_recipe_free(r);
    free(x.flag_keys);
    free(x.cmdline);
    free(opts);
    return rc;
}

int xf_cmd_rtn(const xf_cli_ctx *ctx, int argc, char **argv)
{
    return run_quant(ctx, "rtn", argc, argv);
}

int xf_cmd_gptq(const xf_cli_ctx *ctx, int argc, char **argv)
{
    return run_quant(ctx, "gptq", argc, argv);
}
