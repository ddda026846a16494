/* libxfquant: the public C API of xfquant (docs/api.md).
 *
 * Opaque handles, plain functions, every exported symbol prefixed xf_.
 * Fallible functions return 0 (or a handle) on success and -1 (or NULL) on
 * failure, with one line naming the file/option and the problem in *st
 * (st may be NULL). No call changes process-wide state it does not restore
 * before returning (thread counts included); the log callback is the one
 * process-wide setting. */
#ifndef XFQUANT_H
#define XFQUANT_H

#include <stddef.h>
#include <stdint.h>

#if defined(XF_BUILDING_LIBRARY)
#define XF_API __attribute__((visibility("default")))
#else
#define XF_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status ------------------------------------------------------------ */
enum { XF_OK = 0, XF_FAIL = 1, XF_USAGE = 2 }; /* xf_status.code */

typedef struct xf_status {
    int code;           /* XF_OK, XF_FAIL (bad input, I/O), XF_USAGE (bad option or value) */
    char message[1024]; /* one line, no trailing newline; "" when code == XF_OK */
} xf_status;

XF_API const char *xf_version(void);
XF_API void xf_free(void *p); /* frees strings the library returns */

/* Reports (quantize, info, export, stats, regress) come as text or as JSON. */
enum { XF_FORMAT_TEXT = 0, XF_FORMAT_JSON = 1 };

/* ---- per-call run settings --------------------------------------------- */
/* progress: stage name ("rtn: layer", "ppl: window", ...) and done of
 * total, from the call's loops; after each loop once more with
 * done = total = -1 */
typedef void (*xf_progress_fn)(void *user, const char *stage, int64_t done, int64_t total);

/* progress_event: the same loops as structured events (docs/api.md,
 * "Progress events"). Every loop sends START, then UPDATE events (or, for
 * GPTQ's block loop, INPUT and BLOCK events), then END, also when it
 * fails. A value the loop does not know is -1 (strings: NULL). Strings and
 * the event are valid during the callback only. */
enum {
    XF_PROGRESS_START = 0, /* the loop began: done 0, total, n_blocks */
    XF_PROGRESS_UPDATE,    /* done/total moved (loops without blocks) */
    XF_PROGRESS_BLOCK,     /* decoder block `block` finished */
    XF_PROGRESS_INPUT,     /* one linear input of `block` solved (or the LM head) */
    XF_PROGRESS_END        /* the loop ended; the running totals are its totals */
};

typedef struct xf_progress_event {
    int kind;            /* XF_PROGRESS_* */
    const char *stage;   /* the loop: "gptq: layer", "rtn: layer", "ppl: window", ... */
    const char *input;   /* INPUT: "qkv", "o", "mlp", "down" or "lm_head" */
    const char *detail;  /* INPUT: its first reader ("q_proj", ...); others: a tensor, ... */
    int64_t done, total; /* units of the loop (GPTQ: blocks, + 1 for a quantized head) */
    int64_t block;       /* BLOCK, INPUT: the decoder block, 0-based */
    int64_t n_blocks;    /* decoder blocks of the loop */
    double elapsed_s;    /* since the loop began */
    double eta_s;        /* seconds left, estimated (docs/api.md); -1 before any unit */
    int64_t tokens;      /* tokens through the forward pass so far */
    double tokens_per_s; /* forward tokens per second of forward time */
    double gflop_per_s;  /* forward GFLOP per second of forward time (docs/api.md) */
    double forward_s;    /* running totals: forward pass (the calibration stream) */
    double hessian_s;    /* Hessian accumulation */
    double solve_s;      /* factorization + GPTQ sweep */
    double input_forward_s, input_hessian_s, input_solve_s; /* INPUT: this input's */
    int64_t peak_rss_bytes; /* the process's peak resident set (Linux VmHWM) */
    int64_t rss_bytes;      /* its resident set now (VmRSS) */
} xf_progress_event;

typedef void (*xf_progress_event_fn)(void *user, const xf_progress_event *ev);

typedef struct xf_run_opts {
    int threads;             /* 0: all cores; restored after the call */
    xf_progress_fn progress; /* NULL: none */
    void *progress_user;
    /* xf_quantize: the command line that asked for the file, recorded in its
     * provenance ("command_line"); argc 0: none (the recipe's "options"
     * record what was asked either way) */
    int argc;
    const char *const *argv;
    /* xf_quantize, gptq (docs/performance.md "Memory" and "Resuming"); none
     * of them changes the output's bytes */
    int64_t max_memory;    /* bytes the run may hold; 0: 80 % of MemAvailable; < 0: no bound.
                              Calibration states that do not fit are spilled to disk */
    const char *spill_dir; /* where spilled states go; NULL: the output's directory */
    int checkpoint;        /* 1: checkpoint after every block into OUT.ckpt/ (removed on
                              success) */
    int resume;            /* 1: continue from OUT.ckpt/ (a run killed part-way) */
    /* structured progress, beside or instead of `progress`; NULL: none */
    xf_progress_event_fn progress_event;
    void *progress_event_user;
} xf_run_opts;

/* ---- recipes: one option table (flag, JSON key, type, range, default,
 * methods, needs calibration, help) behind the CLI, recipe JSON and suites */
typedef struct xf_recipe xf_recipe;

enum { XF_OPT_BOOL = 0, XF_OPT_INT, XF_OPT_FLOAT, XF_OPT_STRING, XF_OPT_ENUM, XF_OPT_LIST };
enum { XF_METHOD_MASK_RTN = 1, XF_METHOD_MASK_GPTQ = 2 };

typedef struct xf_option_info {
    const char *flag;      /* long option without "--", e.g. "calib-max-tokens" */
    const char *key;       /* recipe JSON key, e.g. "calib_max_tokens" */
    int type;              /* XF_OPT_* */
    const char *arg_name;  /* "N", "F", "FILE", ... (NULL for XF_OPT_BOOL) */
    const char *default_text; /* the default as text, or NULL if none */
    const char *help;      /* one line */
    unsigned methods;      /* XF_METHOD_MASK_* accepting it */
    int needs_calib;       /* setting it needs calibration text (act_clip and
                              attn_prob_base: to "search"; rotate: to klt|learned) */
} xf_option_info;

XF_API int xf_option_count(void);
XF_API int xf_option_get(int i, xf_option_info *info); /* -1 when i is out of range */

/* method: "rtn" or "gptq"; every option at its default */
XF_API xf_recipe *xf_recipe_new(const char *method, xf_status *st);
/* the recipe object a .xfq records (and regress suites hold): a flat
 * {"method", KEY: VALUE...}, or a .xfq's whole "recipe" (its "options"), or
 * `xfquant info --json` output; keys absent keep their defaults; unknown
 * keys and bad values are errors (XF_USAGE) */
XF_API xf_recipe *xf_recipe_from_json(const char *json_text, xf_status *st);
/* A recipe file: a flat recipe object, a .xfq's recorded recipe (its
 * "options") or `xfquant info --json` output ("recipe"."options"). A file
 * without "method" gets `method`; one naming another method is refused.
 * The keys listed in skip (NULL-terminated; NULL: none) are ignored, so
 * that a caller's own settings (command-line flags) override the file.
 * XF_FAIL: the file cannot be read; XF_USAGE: its content is wrong (the
 * message starts with the path). */
XF_API xf_recipe *xf_recipe_from_file(const char *path, const char *method,
                                      const char *const *skip, xf_status *st);
/* one option by its recipe key, the value as text as on the command line
 * ("true"/"false" for booleans); a repeated list option appends */
XF_API int xf_recipe_set(xf_recipe *r, const char *key, const char *value, xf_status *st);
/* validates the whole recipe (ranges, combinations, calibration present) */
XF_API int xf_recipe_check(const xf_recipe *r, xf_status *st);
/* canonical JSON (sorted keys): "method" and every option whose value
 * differs from its default, the object a .xfq records as
 * "recipe"."options"; free with xf_free */
XF_API char *xf_recipe_to_json(const xf_recipe *r, xf_status *st);
XF_API void xf_recipe_free(xf_recipe *r);

/* Quantizes the model at in_path (HF directory, .safetensors, .xfq, GGUF)
 * with recipe r into out_path (.xfq, or .gguf with a gguf type), written
 * atomically. report (may be NULL) receives the run summary (xf_free):
 * XF_FORMAT_TEXT one line ("OUT: N tensors quantized ..."), XF_FORMAT_JSON
 * the summary object (sorted keys, indented). In a process launched by
 * mpirun/srun in an MPI build, the call is one rank of a distributed job
 * (docs/distributed.md): rank 0 writes out_path and gets the report, the
 * other ranks get *report = NULL and log only warnings. */
XF_API int xf_quantize(const char *in_path, const xf_recipe *r, const char *out_path,
                       const xf_run_opts *run, int format, char **report, xf_status *st);

/* ---- the rest (models, info, evaluation, export, stats, regress, log) is
 * declared below by the library's owner of those parts. ------------------- */

/* ---- log ---------------------------------------------------------------- */
/* The one process-wide setting. level: XF_LEVEL_QUIET (nothing), _WARN (the
 * default), _INFO, _DEBUG. fn NULL: lines go to stderr as
 * "xfquant: warning: MESSAGE"; otherwise fn gets each line (no prefix, no
 * newline) on the thread that logged it. */
enum { XF_LEVEL_QUIET = 0, XF_LEVEL_WARN = 1, XF_LEVEL_INFO = 2, XF_LEVEL_DEBUG = 3 };
typedef void (*xf_log_fn)(void *user, int level, const char *message);
XF_API void xf_set_log(xf_log_fn fn, void *user, int level);


/* ---- models ------------------------------------------------------------- */
/* Any model xfquant reads: an HF directory (fp16/bf16/fp32, or a GPTQ or
 * compressed-tensors checkpoint), a .safetensors file with config.json
 * beside it, an .xfq file, a GGUF file. Weights stay memory-mapped; the
 * handle is read-only and may be evaluated many times. */
typedef struct xf_model xf_model;

typedef struct xf_model_info {
    char format[32];     /* "hf", "xfq", "gguf", "gptq", "compressed-tensors" */
    char model_type[32]; /* "llama", "mistral", "qwen2", "opt", "gpt2" */
    int64_t layers, hidden, intermediate, heads, kv_heads, vocab, max_position_embeddings;
    int tied_embeddings;       /* 0 or 1 */
    int has_online_transforms; /* a rotated .xfq: evaluated with its online transforms */
} xf_model_info;

XF_API xf_model *xf_open_model(const char *path, const xf_run_opts *run, xf_status *st);
XF_API void xf_close_model(xf_model *m); /* NULL: nothing */
XF_API int xf_model_get_info(const xf_model *m, xf_model_info *info);

/* What `xfquant info` prints: tensors, dtypes, shapes, bits per weight and
 * (.xfq) the recipe, of any of the above or of a bare .safetensors file.
 * Returns a string to xf_free (JSON: the schema of docs/cli.md). */
XF_API char *xf_info(const char *path, int format, const xf_run_opts *run, xf_status *st);

/* ---- evaluation ---------------------------------------------------------- */
/* All zero: the GPTQ protocol with windows of min(2048, max positions). */
typedef struct xf_eval_opts {
    const char *protocol; /* "gptq" (NULL) or "llamacpp" */
    int64_t seqlen;       /* gptq window (0: default) */
    int64_t ctx;          /* llamacpp chunk (0: default, min(512, max positions)) */
    int64_t max_windows;  /* 0: all */
    int text_binary_ok;   /* score a text that is not UTF-8 */
    int text_half;        /* 0: the whole text; 1 or 2: that half of the file, cut after
                             the first LF at or after its middle byte (held-out checks) */
} xf_eval_opts;

typedef struct xf_ppl_stats {
    double ppl, nll, ppl_stderr; /* stderr: llama.cpp protocol's +/- */
    int64_t n_tokens, n_windows, seqlen, n_scored;
    double seconds, tokens_per_second;
    int threads;             /* threads the call ran with */
    char protocol[16];       /* "gptq" or "llamacpp" */
    char text_sha256[65];     /* of the bytes scored (the half, with text_half) */
    int text_half;           /* as xf_eval_opts.text_half */
    char act_scheme[256];    /* "" or the .xfq's activation scheme, described */
} xf_ppl_stats;

typedef struct xf_kld_stats {
    xf_ppl_stats base, model;
    double kl_mean, kl_median, kl_p99, kl_p999, kl_max;
    double same_top1; /* fraction of scored positions with equal argmax */
    int64_t n_scored;
} xf_kld_stats;

/* Perplexity of m on the text file text_path (tokenized with m's tokenizer).
 * json (may be NULL) receives the line `xfquant ppl --json` prints. */
XF_API int xf_perplexity(const xf_model *m, const char *text_path, const xf_eval_opts *eo,
                         const xf_run_opts *run, xf_ppl_stats *out, char **json, xf_status *st);
/* KL(P_base || P_model) per scored token, tokenized with base's tokenizer. */
XF_API int xf_kld(const xf_model *base, const xf_model *model, const char *text_path,
                  const xf_eval_opts *eo, const xf_run_opts *run, xf_kld_stats *out,
                  char **json, xf_status *st);

/* ---- export -------------------------------------------------------------- */
typedef struct xf_export_options {
    const char *to;          /* a target name (xf_export_target_info) */
    const char *float_type;  /* NULL: keep; "f16", "f32", "bf16" */
    const char *gguf_asym;   /* NULL: "q5_0"; or "q4_1" */
    const char *fallback;    /* NULL: refuse; "f16", "f32" */
    const char *gptq_format; /* NULL: "auto"; "v1", "v2" */
    int weights_only;        /* export without the activation scheme / online transforms */
} xf_export_options;

/* Target i's name and one-line description; -1 when i is out of range. */
XF_API int xf_export_target_info(int i, const char **name, const char **what);
/* Writes in (.xfq or fp HF directory) as out for another engine, atomically;
 * report (may be NULL) receives the summary (xf_free). */
XF_API int xf_export(const char *in, const char *out, const xf_export_options *o,
                     const xf_run_opts *run, int format, char **report, xf_status *st);

/* ---- activation statistics ---------------------------------------------- */
typedef struct xf_stats_options {
    const char *calib;        /* calibration text, JSON Lines or directory (required) */
    const char *calib_field;  /* JSON Lines field (NULL: "text") */
    const char *calib_format; /* NULL: from the path; "text", "jsonl", "dir" */
    int64_t nsamples;         /* 0: 32 */
    int64_t seqlen;           /* 0: min(2048, max positions) */
    uint64_t seed;
    int64_t top;              /* outlier channels listed per input; 0: 5 */
    int qsur;                 /* nonzero: also each input's QSUR (OstQuant) from its fp64
                                 covariance: 8 * width^2 bytes per input and layer */
} xf_stats_options;

/* Per-layer statistics of the linear inputs (docs/cli.md, "stats"). */
XF_API int xf_stats(const xf_model *m, const xf_stats_options *o, const xf_run_opts *run,
                    int format, char **report, xf_status *st);

/* ---- accuracy regression suites ----------------------------------------- */
typedef struct xf_regress_options {
    const char *filter;   /* PCRE2 on case ids (NULL: all) */
    int update;           /* rewrite the suite's expected values; *diff gets the change */
    const char *junit;    /* also write JUnit XML there (NULL: no) */
    const char *markdown; /* also a Markdown table */
    const char *plot;     /* also an SVG chart */
    int format;           /* of *report: XF_FORMAT_TEXT (table) or XF_FORMAT_JSON */
    const char *tmpdir;   /* temporary .xfq files (NULL: $TMPDIR or /tmp) */
} xf_regress_options;

/* Runs suite_path (docs/regress.md). *report (xf_free) is set whenever the
 * cases ran, also when writing junit/markdown/plot or the update then
 * failed (-1); *failed: 1 when a case or relation failed. */
XF_API int xf_regress(const char *suite_path, const xf_regress_options *o, const xf_run_opts *run,
                      char **report, char **diff, int *failed, xf_status *st);

#ifdef __cplusplus
}
#endif

#endif
