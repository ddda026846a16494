/* `--progress` of the CLI (docs/cli.md, "Progress"): json gives one valid
 * JSON object per stderr line and event, in order (start, then update or
 * input/block events with done counts that never go back, then end with
 * the loop's totals); bar draws the bar; none and auto off a terminal
 * print nothing; a bad mode is a usage error. GPTQ's events carry the
 * block, the input, the forward/Hessian/solve seconds, throughput and
 * memory, and its --json summary the "timing" totals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "tests/support/cli_run.h"
#include "tests/support/random_model.h"
#include "tests/support/test_util.h"

static char *g_tmp;

static int setup(void **state)
{
    (void)state;
    return xf_test_tmpdir_setup(&g_tmp);
}

static int teardown(void **state)
{
    (void)state;
    return xf_test_tmpdir_teardown(&g_tmp);
}

/* Every stderr line starting with '{' parsed (each must be one valid JSON
 * object); the events of loop `stage`, in order. */
static json_t *events_of(const char *err, const char *stage, int *n_json_lines)
{
    json_t *all = json_array();
    *n_json_lines = 0;
    const char *p = err;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len > 0 && *p == '{') {
            json_error_t je;
            json_t *j = json_loadb(p, len, JSON_REJECT_DUPLICATES, &je);
            if (!j)
                print_message("not JSON (%s): %.*s\n", je.text, (int)len, p);
            assert_non_null(j);
            assert_true(json_is_object(j));
            (*n_json_lines)++;
            if (strcmp(json_string_value(json_object_get(j, "stage")), stage) == 0)
                json_array_append(all, j);
            json_decref(j);
        }
        p += len + (nl ? 1 : 0);
    }
    return all;
}

static const char *kind(const json_t *e) { return json_string_value(json_object_get(e, "event")); }

static double num(const json_t *e, const char *key)
{
    const json_t *v = json_object_get(e, key);
    assert_true(json_is_number(v));
    return json_number_value(v);
}

static int64_t integer(const json_t *e, const char *key)
{
    const json_t *v = json_object_get(e, key);
    assert_true(json_is_integer(v));
    return (int64_t)json_integer_value(v);
}

/* Fields every event has (null where unknown), and the common rules:
 * starts with start, ends with end, done never decreases, elapsed never
 * decreases, memory known on Linux. */
static void check_common(const json_t *ev)
{
    static const char *const keys[] = {
        "event", "stage", "input", "detail", "done", "total", "block", "n_blocks",
        "elapsed_s", "eta_s", "tokens", "tokens_per_s", "gflop_per_s", "forward_s",
        "hessian_s", "solve_s", "input_forward_s", "input_hessian_s", "input_solve_s",
        "peak_rss_bytes", "rss_bytes"};
    const size_t n = json_array_size(ev);
    assert_true(n >= 2);
    assert_string_equal(kind(json_array_get(ev, 0)), "start");
    assert_string_equal(kind(json_array_get(ev, n - 1)), "end");
    assert_int_equal(integer(json_array_get(ev, 0), "done"), 0);
    const bool proc = access("/proc/self/status", R_OK) == 0;
    int64_t prev_done = 0;
    double prev_el = 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(ev, i);
        for (size_t k = 0; k < sizeof keys / sizeof *keys; k++)
            if (!json_object_get(e, keys[k])) {
                print_message("event %zu lacks \"%s\"\n", i, keys[k]);
                fail();
            }
        if (i > 0 && i + 1 < n)
            assert_true(strcmp(kind(e), "start") != 0 && strcmp(kind(e), "end") != 0);
        const int64_t done = integer(e, "done");
        assert_true(done >= prev_done);
        assert_true(done <= integer(e, "total"));
        prev_done = done;
        const double el = num(e, "elapsed_s");
        assert_true(el >= prev_el);
        prev_el = el;
        if (proc) {
            assert_true(integer(e, "rss_bytes") > 0);
            assert_true(integer(e, "peak_rss_bytes") >= integer(e, "rss_bytes"));
        }
    }
}

static char *make_random_llama(const char *name, int layers)
{
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/%s", g_tmp, name);
    xf_random_model_spec s = {.family = "llama", .hidden = 64, .intermediate = 96,
                              .layers = layers, .heads = 4, .kv_heads = 2, .vocab = 80,
                              .max_pos = 64, .f16 = true, .seed = 3};
    return xf_random_model_write(dir, &s);
}

/* rtn: start, one update per layer (done 1..n), end; the modes. */
static void test_rtn_progress_modes(void **state)
{
    (void)state;
    char *dir = make_random_llama("llama", 3);
    assert_non_null(dir);
    char out[4200];
    snprintf(out, sizeof out, "%s/a.xfq", g_tmp);
    xf_cli_result r = xf_cli_run(g_tmp, "rtn --bits 4 --group 32 --progress json %s %s", dir, out);
    assert_int_equal(r.code, 0);
    int lines;
    json_t *ev = events_of(r.err, "rtn: layer", &lines);
    assert_int_equal(lines, (int)json_array_size(ev)); /* no other loop runs */
    assert_int_equal(json_array_size(ev), 5);
    check_common(ev);
    for (int i = 1; i <= 3; i++) {
        const json_t *e = json_array_get(ev, (size_t)i);
        assert_string_equal(kind(e), "update");
        assert_int_equal(integer(e, "done"), i);
        assert_int_equal(integer(e, "total"), 3);
        assert_true(num(e, "eta_s") >= 0);
        assert_true(json_is_null(json_object_get(e, "forward_s"))); /* not measured by rtn */
    }
    const json_t *end = json_array_get(ev, 4);
    assert_int_equal(integer(end, "done"), 3);
    json_decref(ev);
    xf_cli_result_free(&r);

    /* none, and auto off a terminal (the test's stderr is a file): nothing */
    const char *quiet[] = {"none", "auto"};
    for (int i = 0; i < 2; i++) {
        r = xf_cli_run(g_tmp, "rtn --bits 4 --group 32 --progress %s %s %s", quiet[i], dir, out);
        assert_int_equal(r.code, 0);
        assert_string_equal(r.err, "");
        xf_cli_result_free(&r);
    }
    r = xf_cli_run(g_tmp, "rtn --bits 4 --group 32 %s %s", dir, out); /* default: auto */
    assert_int_equal(r.code, 0);
    assert_string_equal(r.err, "");
    xf_cli_result_free(&r);

    /* bar: drawn in place even off a terminal, cleared at the end */
    r = xf_cli_run(g_tmp, "rtn --bits 4 --group 32 --progress bar %s %s", dir, out);
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.err, "\rrtn: layer [####################] 100%  3/3  ETA 0s"));
    assert_non_null(strstr(r.err, "peak "));
    assert_non_null(strstr(r.err, "\r\033[K")); /* the line cleared */
    assert_null(strchr(r.err, '\n'));
    xf_cli_result_free(&r);

    /* a bad mode: usage error, one line naming the flag, nothing written */
    char out2[4200];
    snprintf(out2, sizeof out2, "%s/b.xfq", g_tmp);
    r = xf_cli_run(g_tmp, "rtn --bits 4 --progress fancy %s %s", dir, out2);
    assert_int_equal(r.code, 2);
    assert_int_equal(xf_cli_count_lines(r.err), 1);
    assert_non_null(strstr(r.err, "--progress"));
    assert_non_null(strstr(r.err, "fancy"));
    xf_cli_result_free(&r);
    assert_int_not_equal(access(out2, F_OK), 0);
    free(dir);
}

/* gptq on stories260K: input events q/k/v, o, mlp, down per block with
 * their seconds, a block event per block, the end with the totals, which
 * equal the --json summary's "timing". */
static void test_gptq_progress_json_shared(void **state)
{
    (void)state;
    XF_TEST_REQUIRE_SHARED(model_s, "models/stories260K");
    char model[4096];
    snprintf(model, sizeof model, "%s", model_s);
    XF_TEST_REQUIRE_SHARED(calib, "data/tinystories/calib.txt");
    char out[4200];
    snprintf(out, sizeof out, "%s/g.xfq", g_tmp);
    enum { NS = 4, T = 64, BLOCKS = 5 }; /* stories260K: 5 layers, tied head */
    xf_cli_result r = xf_cli_run(g_tmp,
                                 "gptq --bits 3 --group 32 --nsamples %d --seqlen %d --threads 2 "
                                 "--calib %s %s %s --json --progress json",
                                 NS, T, calib, model, out);
    if (r.code != 0)
        print_message("%s\n", r.err);
    assert_int_equal(r.code, 0);
    int lines;
    json_t *ev = events_of(r.err, "gptq: layer", &lines);
    check_common(ev);
    const size_t n = json_array_size(ev);
    assert_int_equal(n, 1 + BLOCKS * 4 + BLOCKS + 1); /* start, 4 inputs + block each, end */
    static const char *const inputs[] = {"qkv", "o", "mlp", "down"};
    static const char *const details[] = {"q", "o", "gate", "down"};
    double prev_fw = 0, prev_solve = 0;
    size_t i = 1;
    for (int b = 0; b < BLOCKS; b++) {
        for (int k = 0; k < 4; k++, i++) {
            const json_t *e = json_array_get(ev, i);
            assert_string_equal(kind(e), "input");
            assert_string_equal(json_string_value(json_object_get(e, "input")), inputs[k]);
            assert_string_equal(json_string_value(json_object_get(e, "detail")), details[k]);
            assert_int_equal(integer(e, "block"), b);
            assert_int_equal(integer(e, "n_blocks"), BLOCKS);
            assert_int_equal(integer(e, "done"), b);
            assert_true(num(e, "input_solve_s") > 0);
            assert_true(num(e, "input_hessian_s") > 0);
            assert_true(num(e, "input_forward_s") >= 0);
            /* the running totals grow by the input's own seconds (printed
             * with 9 digits) */
            assert_true(num(e, "solve_s") >= prev_solve + num(e, "input_solve_s") - 1e-7);
            prev_solve = num(e, "solve_s");
            assert_true(num(e, "forward_s") >= prev_fw);
            prev_fw = num(e, "forward_s");
            /* no block finished yet: no ETA, no throughput */
            if (b == 0) {
                assert_true(json_is_null(json_object_get(e, "eta_s")));
                assert_true(json_is_null(json_object_get(e, "tokens_per_s")));
            }
        }
        const json_t *e = json_array_get(ev, i++);
        assert_string_equal(kind(e), "block");
        assert_int_equal(integer(e, "block"), b);
        assert_int_equal(integer(e, "done"), b + 1);
        assert_int_equal(integer(e, "tokens"), (int64_t)(b + 1) * NS * T);
        assert_true(num(e, "eta_s") >= 0);
        assert_true(num(e, "tokens_per_s") > 0);
        assert_true(num(e, "gflop_per_s") > 0);
        assert_true(json_is_null(json_object_get(e, "input_solve_s")));
    }
    const json_t *end = json_array_get(ev, n - 1);
    assert_int_equal(integer(end, "done"), BLOCKS);
    assert_int_equal(integer(end, "total"), BLOCKS);
    assert_int_equal(integer(end, "tokens"), (int64_t)BLOCKS * NS * T);
    assert_true(num(end, "eta_s") == 0);
    const double fw = num(end, "forward_s"), hs = num(end, "hessian_s"),
                 sv = num(end, "solve_s");
    assert_true(fw > 0 && hs > 0 && sv > 0);
    assert_true(fw + hs + sv <= num(end, "elapsed_s") * 1.0001);
    /* tokens/s and GFLOP/s are over the forward seconds */
    assert_true(num(end, "tokens_per_s") * fw > 0.999 * BLOCKS * NS * T);
    assert_true(num(end, "tokens_per_s") * fw < 1.001 * BLOCKS * NS * T);

    /* the summary's totals: the end event's (printed with 9 digits) */
    json_t *j = json_loads(r.out, 0, NULL);
    assert_non_null(j);
    const json_t *tm = json_object_get(j, "timing");
    assert_true(json_is_object(tm));
    assert_int_equal(json_object_size(tm), 6);
    assert_int_equal(integer(tm, "blocks"), BLOCKS);
    assert_true(num(tm, "checkpoint_s") > 0); /* checkpoints are on by default */
    const char *keys[] = {"forward_s", "hessian_s", "solve_s"};
    const double ev_vals[] = {fw, hs, sv};
    for (int k = 0; k < 3; k++) {
        const double v = num(tm, keys[k]);
        assert_true(v > 0 && v < num(tm, "total_s"));
        assert_true(v > ev_vals[k] * 0.999999 && v < ev_vals[k] * 1.000001);
    }
    assert_true(num(tm, "total_s") <= num(j, "seconds"));
    json_decref(j);
    json_decref(ev);
    xf_cli_result_free(&r);
}

/* ppl's windows: start, one update per window with tokens/s, end. */
static void test_ppl_progress_json_shared(void **state)
{
    (void)state;
    XF_TEST_REQUIRE_SHARED(model_s, "models/stories260K");
    char model[4096];
    snprintf(model, sizeof model, "%s", model_s);
    XF_TEST_REQUIRE_SHARED(text, "data/tinystories/eval.txt");
    xf_cli_result r = xf_cli_run(g_tmp, "ppl %s --text %s --seqlen 64 --max-windows 3 "
                                        "--threads 2 --progress json",
                                 model, text);
    assert_int_equal(r.code, 0);
    int lines;
    json_t *ev = events_of(r.err, "ppl: window", &lines);
    check_common(ev);
    assert_int_equal(json_array_size(ev), 5);
    for (int w = 1; w <= 3; w++) {
        const json_t *e = json_array_get(ev, (size_t)w);
        assert_string_equal(kind(e), "update");
        assert_int_equal(integer(e, "done"), w);
        assert_int_equal(integer(e, "tokens"), (int64_t)w * 64);
        assert_true(num(e, "tokens_per_s") > 0);
    }
    json_decref(ev);
    xf_cli_result_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rtn_progress_modes),
        cmocka_unit_test(test_gptq_progress_json_shared),
        cmocka_unit_test(test_ppl_progress_json_shared),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
