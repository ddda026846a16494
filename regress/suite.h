/* Accuracy-regression suites (tests/regress/NAME.json, schema in
 * docs/regress.md): a list of cases (model + quantization recipe +
 * evaluation + expected metrics with tolerance bands) and relations between
 * cases' metrics ("ppl(gptq-w4) < ppl(rtn-w4)").
 *
 * Parsing is strict: unknown keys, keys that do not apply to the case's
 * method, missing fields and bad bands are errors, each ONE line naming the
 * file and the case (or relation), so that a typo can never silently
 * disable a check. The parsed JSON document is kept (key order preserved)
 * so that xf_regress_suite_update can rewrite the expected values in place.
 *
 * Paths in a suite (model, recipe.calib, eval.text) are relative to the
 * repository root, which the caller passes as `root`. */
#ifndef XF_REGRESS_SUITE_H
#define XF_REGRESS_SUITE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "eval/windows.h"

/* Longest case id; ids use only [A-Za-z0-9_.-] so relations can name them. */
#define XF_REGRESS_ID_MAX 64

/* The metrics a case can measure and expect. */
typedef enum xf_regress_metric {
    XF_REGRESS_PPL = 0, /* "ppl": perplexity on eval.text */
    XF_REGRESS_KLD,     /* "kld": KL(unquantized model || quantized) per token */
    XF_REGRESS_BPW,     /* "bits_per_weight": storage bits per linear weight */
    XF_REGRESS_SECONDS, /* "seconds": wall time of quantize + evaluate */
    XF_REGRESS_FILE_BYTES, /* "file_bytes": size of the GGUF file a GGUF-scored case made */
    XF_REGRESS_N_METRICS
} xf_regress_metric;

/* "ppl", "kld", "bits_per_weight", "seconds", "file_bytes". */
const char *xf_regress_metric_name(xf_regress_metric m);
/* Parses the n bytes at s; -1 when unknown. */
int xf_regress_metric_parse(const char *s, size_t n, xf_regress_metric *out);

typedef enum xf_regress_method {
    XF_REGRESS_FP16 = 0, /* no quantization: evaluate the model as stored */
    XF_REGRESS_RTN,      /* xfquant rtn */
    XF_REGRESS_GPTQ,     /* xfquant gptq */
    XF_REGRESS_LLAMA_QUANTIZE /* llama.cpp's own llama-quantize (+ llama-imatrix) */
} xf_regress_method;

/* "fp16", "rtn", "gptq", "llama-quantize". */
const char *xf_regress_method_name(xf_regress_method m);

/* Integer recipe/eval fields not given in the suite. */
#define XF_REGRESS_ABSENT INT64_MIN

struct xf_quant_recipe;

/* A case's recipe. rtn/gptq: the object is the option table's recipe
 * (pipeline/recipe_options.h: the same keys, values and rules as
 * `xfquant rtn|gptq` flags and `--recipe FILE`), held in `quant`; "bits"
 * (or "gguf_type") is required. llama-quantize: its own keys below. */
typedef struct xf_regress_recipe {
    xf_regress_method method;
    struct xf_quant_recipe *quant; /* rtn/gptq (owned, calib resolved); NULL otherwise */
    char *calib;        /* "calib" as written in the suite; NULL when absent */
    char *calib_path;   /* the same, resolved against the root */
    /* GGUF file type (a llama-quantize name: "Q4_K_M", "Q4_0", ...):
     * rtn/gptq: --gguf-type FT; llama-quantize: its FTYPE argument
     * (required). NULL when absent. */
    char *gguf_type;
    /* llama-quantize only */
    int64_t nsamples;     /* imatrix windows, or XF_REGRESS_ABSENT */
    int64_t seqlen;       /* imatrix window length, or XF_REGRESS_ABSENT */
    int imatrix;          /* --imatrix from llama-imatrix on calib (-1 absent, 0, 1) */
    char **tensor_type;   /* --tensor-type PATTERN=TYPE each; NULL-terminated */
    int n_tensor_type;
} xf_regress_recipe;

/* Who scores a case: xfquant's own evaluator (`xfquant ppl|kld` on the
 * model or .xfq), or llama.cpp's llama-perplexity on a GGUF file of the
 * case (docs/regress.md, "GGUF cases"). */
typedef enum xf_regress_scorer {
    XF_SCORER_XFQUANT = 0,
    XF_SCORER_LLAMA_PERPLEXITY
} xf_regress_scorer;

/* "xfquant", "llama-perplexity". */
const char *xf_regress_scorer_name(xf_regress_scorer s);

/* The evaluation: maps 1:1 to the options of `xfquant ppl` / `xfquant kld`. */
typedef struct xf_regress_eval {
    char *text;           /* --text FILE, as written */
    char *text_path;      /* resolved against the root */
    xf_protocol protocol; /* --protocol (default gptq) */
    int64_t seqlen;       /* --seqlen (gptq protocol only) or XF_REGRESS_ABSENT */
    int64_t ctx;          /* --ctx (llamacpp protocol only) or XF_REGRESS_ABSENT */
    int64_t max_windows;  /* --max-windows; 0 = all (the default) */
    int64_t half;         /* --text-half: 1 or 2; 0 = the whole text (the default) */
    xf_regress_scorer scorer; /* who measures the perplexity */
} xf_regress_eval;

/* One side of a tolerance band. */
typedef enum xf_regress_tol {
    XF_REGRESS_TOL_OPEN = 0, /* side not bounded */
    XF_REGRESS_TOL_ABS,      /* limit = value -/+ tol */
    XF_REGRESS_TOL_REL       /* limit = value -/+ tol * |value| */
} xf_regress_tol;

typedef struct xf_regress_side {
    xf_regress_tol kind;
    double tol; /* >= 0, finite */
} xf_regress_side;

/* An expected metric: value with a floor side and a ceiling side (at least
 * one bounded). */
typedef struct xf_regress_band {
    bool present;
    double value;
    xf_regress_side floor, ceiling;
    /* "value": null in the file: no baseline recorded yet (the case FAILs
     * with "no baseline" until `--update` writes the measured value);
     * value is NAN then. */
    bool pending;
} xf_regress_band;

typedef struct xf_regress_case {
    char *id;
    char *description; /* NULL when absent */
    char *model;       /* as written */
    char *model_path;  /* resolved against the root */
    xf_regress_recipe recipe;
    xf_regress_eval eval;
    xf_regress_band expect[XF_REGRESS_N_METRICS];
    /* Metrics the executor must measure: expected here or named by a
     * relation (kld is the one that costs extra: skip it when false). */
    bool wants[XF_REGRESS_N_METRICS];
} xf_regress_case;

typedef enum xf_regress_op {
    XF_REGRESS_LT = 0,
    XF_REGRESS_LE,
    XF_REGRESS_GT,
    XF_REGRESS_GE
} xf_regress_op;

/* "<", "<=", ">", ">=". */
const char *xf_regress_op_name(xf_regress_op op);

/* metric(case) [* factor]; the case may be a pattern with '*' (any run of
 * id characters): the term is then the mean of the metric over every case
 * the pattern matches, e.g. ppl(stories-learned-h1-s*) over the seeds. */
typedef struct xf_regress_term {
    xf_regress_metric metric;
    size_t case_index;  /* the first case matched */
    size_t *cases;      /* every case matched, in suite order [n_cases] */
    size_t n_cases;     /* 1 for a plain id */
    double factor;      /* 1 when the term has no "* NUMBER" */
} xf_regress_term;

typedef struct xf_regress_relation {
    char *id;          /* the "id" key, or the expression itself */
    char *expr;        /* the "expect" string */
    char *description; /* NULL when absent */
    xf_regress_term lhs, rhs;
    xf_regress_op op;
} xf_regress_relation;

typedef struct xf_regress_suite {
    char *path; /* the suite file (names it in every message) */
    char *root; /* what relative paths were resolved against */
    char *name; /* "name" key, or the file name without .json */
    char *description;
    xf_regress_case *cases;
    size_t n_cases;
    xf_regress_relation *relations;
    size_t n_relations;
    json_t *doc; /* the parsed file, for update */
} xf_regress_suite;

/* Loads and validates the suite at path; relative paths in it are resolved
 * against root (NULL: the current directory). On failure *s is left empty
 * (safe to free) and err holds one line "PATH: case 'ID': problem". */
int xf_regress_suite_load(xf_regress_suite *s, const char *path, const char *root, xf_error *err);
/* The same from a buffer; `path` only names it in messages and is kept as
 * the file update would write. */
int xf_regress_suite_parse(xf_regress_suite *s, const char *text, size_t len, const char *path,
                           const char *root, xf_error *err);
void xf_regress_suite_free(xf_regress_suite *s);

/* Whether the case's perplexity comes from a GGUF file (scorer
 * llama-perplexity; method llama-quantize always is): its bits_per_weight
 * and file_bytes are then the GGUF's (docs/regress.md). */
bool xf_regress_case_is_gguf(const xf_regress_case *c);

/* Index of the case with that id, or -1. */
long xf_regress_suite_find(const xf_regress_suite *s, const char *id);

/* The evaluation options a case stands for, shared by `xfquant ppl MODEL`
 * and `xfquant kld BASE MODEL`: {"--text", FILE, "--protocol", P,
 * ["--seqlen"|"--ctx", N], ["--max-windows", N]}, NULL-terminated and
 * malloc'd (free with xf_regress_argv_free); NULL when out of memory. */
char **xf_regress_eval_argv(const xf_regress_case *c, int *argc);
void xf_regress_argv_free(char **argv);

struct xf_regress_results;

/* --update: for every case that ran (selected and executed), sets each
 * expected metric's "value" to the measured one, keeping the bands and every
 * other key and the key order; the file is re-serialized (2-space indent,
 * reals with 15 significant digits, which reproduces every decimal a person
 * writes), validated by parsing it again, and written atomically over
 * s->path. *diff (malloc'd, may be NULL) gets one line per changed value,
 * "CASE METRIC: OLD -> NEW (+x.xx%)", or "no expected value changed\n"
 * (then nothing is written). The in-memory suite gets the new values too. */
int xf_regress_suite_update(xf_regress_suite *s, const struct xf_regress_results *r, char **diff,
                            xf_error *err);

#endif
