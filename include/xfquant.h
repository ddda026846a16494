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

/* ---- per-call run settings --------------------------------------------- */
/* progress: stage name and done of total; xf_quantize reports stage
 * "quantize" at 0 of 1 and 1 of 1 (finer stages are not reported yet) */
typedef void (*xf_progress_fn)(void *user, const char *stage, int64_t done, int64_t total);

typedef struct xf_run_opts {
    int threads;             /* 0: all cores; restored after the call */
    xf_progress_fn progress; /* NULL: none */
    void *progress_user;
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
 * atomically. summary_json (may be NULL) receives the run summary (xf_free). */
XF_API int xf_quantize(const char *in_path, const xf_recipe *r, const char *out_path,
                       const xf_run_opts *run, char **summary_json, xf_status *st);

/* ---- the rest (models, info, evaluation, export, stats, regress, log) is
 * declared below by the library's owner of those parts. ------------------- */

#ifdef __cplusplus
}
#endif

#endif
