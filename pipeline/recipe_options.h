/* The one table of `xfquant rtn|gptq` options (docs/cli.md): one row per
 * option — flag, recipe JSON key, type, range, default, the methods that
 * accept it, whether it needs calibration text, help text. The command-line
 * parser and its --help (cli/cmd_quant.c through api/recipe.c), the recipe
 * JSON a .xfq records and `--recipe FILE` reads, regression suites
 * (regress/suite.c) and the "needs calibration" rule are all generated from
 * it, so one option is one row plus the code that uses its value.
 *
 * A recipe (xf_quant_recipe) is an xf_quant_options plus which rows were
 * set and the strings it owns. Values are set as text, exactly as on the
 * command line; JSON values are turned into that text first, so a value
 * means the same from a flag, a recipe file and a suite. */
#ifndef XF_PIPELINE_RECIPE_OPTIONS_H
#define XF_PIPELINE_RECIPE_OPTIONS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"
#include "pipeline/quantize_model.h"

/* Value types (the same numbers as include/xfquant.h's XF_OPT_*). */
enum { XF_RO_BOOL = 0, XF_RO_INT, XF_RO_FLOAT, XF_RO_STRING, XF_RO_ENUM, XF_RO_LIST };
/* Methods (the same bits as include/xfquant.h's XF_METHOD_MASK_*). */
enum { XF_RO_RTN = 1, XF_RO_GPTQ = 2, XF_RO_BOTH = 3 };

typedef struct xf_quant_recipe xf_quant_recipe;

typedef struct xf_recipe_row {
    const char *flag;         /* long option without "--" */
    const char *key;          /* recipe JSON key; an alias row (act-asym) names its own key,
                                 which JSON never holds */
    int type;                 /* XF_RO_* */
    const char *arg_name;     /* NULL for booleans */
    const char *default_text; /* NULL: none */
    const char *help;         /* one line; "\n" + indent continues it in --help */
    unsigned methods;         /* XF_RO_* bits */
    bool needs_calib;         /* some value of it needs calibration text (uses_calib says which) */
    bool calib_input;         /* it describes the calibration text or its windows */
    /* the setter: text as on the command line; name ("--flag" or "'key'")
     * goes into the one-line error */
    int (*set)(const struct xf_recipe_row *row, xf_quant_recipe *r, const char *text,
               const char *name, xf_error *err);
    json_t *(*get)(const struct xf_recipe_row *row, const xf_quant_options *o); /* NULL: alias */
    bool (*uses_calib)(const xf_quant_options *o); /* NULL: never */
    const char *calib_when;   /* the values that need it ("search"); NULL: any set value */
    /* parameters of the generic setters */
    size_t off;               /* field in xf_quant_options */
    double lo, hi;            /* numeric range, inclusive unless lo_open */
    bool lo_open;
    const char *expect;       /* "a positive integer": "NAME must be EXPECT, not 'V'" */
    const char *const *names; /* enums: NULL-terminated value names, index = stored value */
    const char *alias_of;     /* NULL, or the key of the row an alias row sets (act-asym:
                                 "act_sym"); JSON never holds an alias key */
} xf_recipe_row;

/* At most 64 rows: xf_quant_recipe.given is a 64-bit set. */
#define XF_RECIPE_MAX_ROWS 64

struct xf_quant_recipe {
    xf_quant_options o;  /* string fields point at the copies below */
    uint64_t given;      /* bit i: row i was set (from a flag, a file or a suite) */
    char *calib_path, *calib_field;
    char *tensor_bits[XF_TENSOR_BITS_MAX_RULES];
};

int xf_recipe_row_count(void);
const xf_recipe_row *xf_recipe_row_at(int i); /* NULL out of range */
/* The row of a JSON key (alias keys included), or -1. */
int xf_recipe_row_find(const char *key);

void xf_quant_recipe_init(xf_quant_recipe *r, xf_quant_method method);
void xf_quant_recipe_free(xf_quant_recipe *r);
/* "rtn" / "gptq"; -1 otherwise */
int xf_quant_method_from_name(const char *name, xf_quant_method *out);
const char *xf_quant_method_name(xf_quant_method m);

/* One option by key, value as command-line text ("true"/"false" for
 * booleans; a list option appends). Errors name the flag ("--damp must be
 * a number in [0, 1], not 'x'"), as the command line always has. */
int xf_quant_recipe_set(xf_quant_recipe *r, const char *key, const char *value, xf_error *err);

/* A recipe object {"method": "rtn"|"gptq", KEY: VALUE, ...}; absent keys
 * keep their defaults, unknown keys and bad values are errors naming
 * "what: 'key'". Also accepted: a .xfq's recorded recipe, whose "options"
 * member is that object, and `xfquant info --json` output (its
 * "recipe"."options"). resolve (may be NULL) maps the "calib" path (regress
 * suites: against their root); it returns a malloc'd path or NULL (out of
 * memory). */
int xf_quant_recipe_from_json(xf_quant_recipe *r, const json_t *j, const char *what,
                              char *(*resolve)(const char *path, void *user), void *user,
                              xf_error *err);
/* {"method", every row whose value differs from the method's default}:
 * canonical (the same options give the same object however they were
 * given) and the object a .xfq records as "recipe"."options" (serialize
 * with sorted keys). NULL: out of memory. */
json_t *xf_quant_options_to_json(const xf_quant_options *o);

/* Whether the recipe reads calibration text: gptq always, rtn when a set
 * row's uses_calib says so (act_clip/attn_prob_base "search", smooth,
 * rotate klt|learned). The pipeline asks this too. */
bool xf_quant_recipe_needs_calib(const xf_quant_options *o);

/* The whole-recipe rules a single value cannot check: gptq needs "calib";
 * rtn reads calibration settings only when it needs the text (seed also
 * for a rotation); the grid options do not combine with gguf_type. One
 * line naming the flags. */
int xf_quant_recipe_check(const xf_quant_recipe *r, xf_error *err);

#endif
