/* libFuzzer harness: an accuracy-regression suite (regress/suite.h)
 * parsed, then the command lines of every case built from it (what
 * `xfquant regress` runs). */
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
        char **argv = xf_regress_quant_argv(&s.cases[i], "/nonexistent-root/out.xfq", &argc);
        xf_regress_argv_free(argv);
        argv = xf_regress_eval_argv(&s.cases[i], &argc);
        xf_regress_argv_free(argv);
        if (xf_regress_suite_find(&s, s.cases[i].id) != (long)i) {
            fprintf(stderr, "case '%s' not found by its id\n", s.cases[i].id);
            abort();
        }
    }
    xf_regress_suite_free(&s);
    return 0;
}
