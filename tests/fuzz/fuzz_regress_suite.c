/* libFuzzer harness: an accuracy-regression suite (regress/suite.h)
 * parsed, then what every case runs built from it: the recipe's JSON (which
 * must parse back to the same recipe) and the evaluation's options. */
#include <stdlib.h>

#include "pipeline/recipe_options.h"
#include "regress/suite.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    xf_regress_suite s;
    xf_error err = {0};
    if (xf_regress_suite_parse(&s, (const char *)data, size, "suite.json", "/nonexistent-root",
                               &err) != 0) {
        xf_fuzz_check_error(&err, "suite.json");
        xf_regress_suite_free(&s);
        return 0;
    }
    for (size_t i = 0; i < s.n_cases; i++) {
        int argc = 0;
        if (s.cases[i].recipe.quant) {
            json_t *j = xf_quant_options_to_json(&s.cases[i].recipe.quant->o);
            xf_quant_recipe back = {0};
            json_t *k = NULL;
            if (j && xf_quant_recipe_from_json(&back, j, "recipe", NULL, NULL, &err) != 0) {
                fprintf(stderr, "a recipe's own JSON is refused: %s\n", err.msg);
                abort();
            }
            if (j && (!(k = xf_quant_options_to_json(&back.o)) || !json_equal(j, k))) {
                fprintf(stderr, "a recipe's JSON does not read back the same\n");
                abort();
            }
            json_decref(k);
            json_decref(j);
            xf_quant_recipe_free(&back);
        }
        char **argv = xf_regress_eval_argv(&s.cases[i], &argc);
        xf_regress_argv_free(argv);
        if (xf_regress_suite_find(&s, s.cases[i].id) != (long)i) {
            fprintf(stderr, "case '%s' not found by its id\n", s.cases[i].id);
            abort();
        }
    }
    xf_regress_suite_free(&s);
    return 0;
}
