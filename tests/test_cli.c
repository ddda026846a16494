/* The xfquant binary end to end: exit codes (0 ok, 1 failure, 2 usage),
 * one-line errors, info on every input kind, rtn/gptq output that info and
 * ppl read back, determinism, no partial outputs on failure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cmocka.h>
#include <jansson.h>

#include "core/read_file.h"
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

static void test_usage_and_version(void **state)
{
    (void)state;
    xf_cli_result r = xf_cli_run(g_tmp, "--version");
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.out, "xfquant "));
    xf_cli_result_free(&r);
    r = xf_cli_run(g_tmp, "%s", ""); /* no arguments at all */
    assert_int_equal(r.code, 2);
    xf_cli_result_free(&r);
    r = xf_cli_run(g_tmp, "frobnicate");
    assert_int_equal(r.code, 2);
    assert_int_equal(xf_cli_count_lines(r.err), 1);
    assert_non_null(strstr(r.err, "frobnicate"));
    xf_cli_result_free(&r);
    const char *cmds[] = {"info", "ppl", "kld", "rtn", "gptq"};
    for (size_t i = 0; i < 5; i++) {
        r = xf_cli_run(g_tmp, "%s --help", cmds[i]);
        assert_int_equal(r.code, 0);
        assert_non_null(strstr(r.out, "usage: xfquant"));
        xf_cli_result_free(&r);
        r = xf_cli_run(g_tmp, "%s --no-such-flag x", cmds[i]);
        assert_int_equal(r.code, 2);
        assert_int_equal(xf_cli_count_lines(r.err), 1);
        xf_cli_result_free(&r);
    }
    r = xf_cli_run(g_tmp, "ppl some/model");
    assert_int_equal(r.code, 2); /* --text missing */
    xf_cli_result_free(&r);
    r = xf_cli_run(g_tmp, "rtn --bits 5 a b.xfq");
    assert_int_equal(r.code, 2);
    assert_non_null(strstr(r.err, "--bits"));
    xf_cli_result_free(&r);
    r = xf_cli_run(g_tmp, "gptq --bits 4 a b.xfq");
    assert_int_equal(r.code, 2); /* --calib missing */
    xf_cli_result_free(&r);
}

static void test_failures_are_one_line(void **state)
{
    (void)state;
    xf_cli_result r = xf_cli_run(g_tmp, "info /nonexistent/model");
    assert_int_equal(r.code, 1);
    assert_int_equal(xf_cli_count_lines(r.err), 1);
    assert_non_null(strstr(r.err, "/nonexistent/model"));
    xf_cli_result_free(&r);
    char path[4200];
    snprintf(path, sizeof path, "%s/garbage.safetensors", g_tmp);
    FILE *fp = fopen(path, "wb");
    fputs("\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":", fp);
    fclose(fp);
    r = xf_cli_run(g_tmp, "info %s", path);
    assert_int_equal(r.code, 1);
    assert_int_equal(xf_cli_count_lines(r.err), 1);
    xf_cli_result_free(&r);
}

static char *make_random_llama(const char *name)
{
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/%s", g_tmp, name);
    xf_random_model_spec s = {.family = "llama", .hidden = 64, .intermediate = 96, .layers = 2,
                              .heads = 4, .kv_heads = 2, .vocab = 80, .max_pos = 64,
                              .f16 = true, .seed = 7};
    return xf_random_model_write(dir, &s);
}

static void test_info_rtn_roundtrip(void **state)
{
    (void)state;
    char *dir = make_random_llama("llama");
    assert_non_null(dir);
    xf_cli_result r = xf_cli_run(g_tmp, "info %s --json", dir);
    assert_int_equal(r.code, 0);
    json_t *j = json_loads(r.out, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "format")), "hf");
    /* 2 layers x 9 tensors + embed + norm + head */
    assert_int_equal(json_integer_value(json_object_get(j, "n_tensors")), 21);
    json_decref(j);
    xf_cli_result_free(&r);

    char out1[4200], out2[4200];
    snprintf(out1, sizeof out1, "%s/a.xfq", g_tmp);
    snprintf(out2, sizeof out2, "%s/b.xfq", g_tmp);
    r = xf_cli_run(g_tmp, "rtn --bits 4 --group 32 %s %s", dir, out1);
    assert_int_equal(r.code, 0);
    xf_cli_result_free(&r);
    assert_int_equal(rename(out1, out2), 0);
    r = xf_cli_run(g_tmp, "rtn --bits 4 --group 32 %s %s", dir, out1);
    assert_int_equal(r.code, 0);
    xf_cli_result_free(&r);
    assert_true(xf_test_files_equal(out1, out2)); /* the same command twice: the same bytes */

    r = xf_cli_run(g_tmp, "info %s --json", out1);
    assert_int_equal(r.code, 0);
    j = json_loads(r.out, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "format")), "xfq");
    assert_int_equal(json_integer_value(json_object_get(j, "n_tensors")), 21);
    /* 14 linears of 64-wide inputs (and 96 for down) in groups of 32 */
    double bpw = json_real_value(json_object_get(j, "packed_bits_per_weight"));
    assert_true(bpw > 4.0 && bpw < 6.0);
    const json_t *recipe = json_object_get(j, "recipe");
    assert_string_equal(json_string_value(json_object_get(recipe, "method")), "rtn");
    assert_int_equal(json_integer_value(json_object_get(recipe, "group_size")), 32);
    json_decref(j);
    xf_cli_result_free(&r);

    /* a truncated .xfq: a clear failure, no crash */
    char *data;
    size_t n;
    assert_int_equal(xf_read_file(out1, &data, &n, NULL), 0);
    char cut[4200];
    snprintf(cut, sizeof cut, "%s/cut.xfq", g_tmp);
    FILE *fp = fopen(cut, "wb");
    fwrite(data, 1, n / 2, fp);
    fclose(fp);
    free(data);
    r = xf_cli_run(g_tmp, "info %s", cut);
    assert_int_equal(r.code, 1);
    assert_int_equal(xf_cli_count_lines(r.err), 1);
    assert_non_null(strstr(r.err, "cut.xfq"));
    xf_cli_result_free(&r);

    /* output into a missing directory: failure, nothing written */
    r = xf_cli_run(g_tmp, "rtn --bits 4 %s %s/missing/dir/out.xfq", dir, g_tmp);
    assert_int_equal(r.code, 1);
    assert_int_equal(xf_cli_count_lines(r.err), 1);
    xf_cli_result_free(&r);
    free(dir);
}

/* GPTQ through the CLI on the shared stories260K, tiny calibration. */
static void test_gptq_shared_deterministic(void **state)
{
    (void)state;
    XF_TEST_REQUIRE_SHARED(model, "models/stories260K");
    char model_dir[4096];
    snprintf(model_dir, sizeof model_dir, "%s", model);
    XF_TEST_REQUIRE_SHARED(calib, "data/tinystories/calib.txt");
    char calib_path[4096];
    snprintf(calib_path, sizeof calib_path, "%s", calib);
    char out1[4200], out2[4200];
    snprintf(out1, sizeof out1, "%s/g1.xfq", g_tmp);
    snprintf(out2, sizeof out2, "%s/g2.xfq", g_tmp);
    const char *args = "gptq --bits 3 --group 32 --nsamples 4 --seqlen 64 --threads 2";
    xf_cli_result r = xf_cli_run(g_tmp, "%s --calib %s %s %s --json", args, calib_path, model_dir, out1);
    assert_int_equal(r.code, 0);
    json_t *j = json_loads(r.out, 0, NULL);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "quantized_tensors")), 35);
    const json_t *cal = json_object_get(j, "calibration");
    assert_int_equal(json_array_size(json_object_get(cal, "sample_starts")), 4);
    json_decref(j);
    xf_cli_result_free(&r);
    assert_int_equal(rename(out1, out2), 0);
    r = xf_cli_run(g_tmp, "%s --calib %s %s %s --json", args, calib_path, model_dir, out1);
    assert_int_equal(r.code, 0);
    xf_cli_result_free(&r);
    assert_true(xf_test_files_equal(out1, out2)); /* the same command twice: the same bytes */

    /* calibration too short for one window: refused, no output */
    char shortf[4200], out3[4200];
    snprintf(shortf, sizeof shortf, "%s/short.txt", g_tmp);
    snprintf(out3, sizeof out3, "%s/g3.xfq", g_tmp);
    FILE *fp = fopen(shortf, "w");
    fputs("Once upon a time.", fp);
    fclose(fp);
    r = xf_cli_run(g_tmp, "%s --calib %s %s %s", args, shortf, model_dir, out3);
    assert_int_equal(r.code, 1);
    assert_non_null(strstr(r.err, "fewer than one window"));
    xf_cli_result_free(&r);
    struct stat st;
    assert_int_not_equal(stat(out3, &st), 0);

    /* kld of the model against itself is exactly 0; against the 3-bit file it is not */
    XF_TEST_REQUIRE_SHARED(evalt, "data/tinystories/eval.txt");
    char eval_path[4096];
    snprintf(eval_path, sizeof eval_path, "%s", evalt);
    r = xf_cli_run(g_tmp, "kld %s %s --text %s --seqlen 128 --max-windows 2 --json", model_dir, model_dir,
            eval_path);
    assert_int_equal(r.code, 0);
    j = json_loads(r.out, 0, NULL);
    assert_non_null(j);
    assert_true(json_real_value(json_object_get(j, "kl_mean")) == 0.0);
    assert_true(json_real_value(json_object_get(j, "kl_max")) == 0.0);
    assert_true(json_real_value(json_object_get(j, "same_top1")) == 1.0);
    json_decref(j);
    xf_cli_result_free(&r);
    r = xf_cli_run(g_tmp, "kld %s %s --text %s --seqlen 128 --max-windows 2 --json", model_dir, out1, eval_path);
    assert_int_equal(r.code, 0);
    j = json_loads(r.out, 0, NULL);
    assert_non_null(j);
    assert_true(json_real_value(json_object_get(j, "kl_mean")) > 0.0);
    json_decref(j);
    xf_cli_result_free(&r);
    /* llama.cpp protocol: ppl with a standard error */
    r = xf_cli_run(g_tmp, "ppl %s --text %s --protocol llamacpp --ctx 128 --max-windows 3 --json", model_dir,
            eval_path);
    assert_int_equal(r.code, 0);
    j = json_loads(r.out, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "protocol")), "llamacpp");
    assert_int_equal(json_integer_value(json_object_get(j, "n_scored")), 3 * 63);
    assert_true(json_real_value(json_object_get(j, "ppl_stderr")) > 0.0);
    json_decref(j);
    xf_cli_result_free(&r);

    /* empty evaluation text */
    char empty[4200];
    snprintf(empty, sizeof empty, "%s/empty.txt", g_tmp);
    fp = fopen(empty, "w");
    fclose(fp);
    r = xf_cli_run(g_tmp, "ppl %s --text %s", out1, empty);
    assert_int_equal(r.code, 1);
    assert_non_null(strstr(r.err, "empty"));
    xf_cli_result_free(&r);

    /* a binary file is not scored unless asked for: invalid UTF-8, then a NUL */
    static const char *const binaries[][2] = {
        {"Once upon a time \xff\xfe there was", "invalid UTF-8 at byte 17"},
        {"Once upon a time\0 there was", "NUL byte at byte 16"}};
    for (int b = 0; b < 2; b++) {
        char bin[4200];
        snprintf(bin, sizeof bin, "%s/bin%d.txt", g_tmp, b);
        fp = fopen(bin, "wb");
        fwrite(binaries[b][0], 1, b == 0 ? strlen(binaries[b][0]) : 28, fp);
        fclose(fp);
        r = xf_cli_run(g_tmp, "ppl %s --text %s --seqlen 4", model_dir, bin);
        assert_int_equal(r.code, 1);
        if (!strstr(r.err, "not a UTF-8 text file") || !strstr(r.err, binaries[b][1]) ||
            !strstr(r.err, bin))
            fail_msg("unexpected message: %s", r.err);
        xf_cli_result_free(&r);
        r = xf_cli_run(g_tmp, "kld %s %s --text %s --seqlen 4", model_dir, model_dir, bin);
        assert_int_equal(r.code, 1);
        assert_non_null(strstr(r.err, "not a UTF-8 text file"));
        xf_cli_result_free(&r);
        r = xf_cli_run(g_tmp, "ppl %s --text %s --seqlen 4 --text-binary-ok", model_dir, bin);
        assert_int_equal(r.code, 0);
        xf_cli_result_free(&r);
    }
}

static void test_info_shared(void **state)
{
    (void)state;
    XF_TEST_REQUIRE_SHARED(model, "models/novels-5m");
    xf_cli_result r = xf_cli_run(g_tmp, "info %s --json", model);
    assert_int_equal(r.code, 0);
    json_t *j = json_loads(r.out, 0, NULL);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "n_tensors")), 57);
    assert_int_equal(json_integer_value(json_object_get(j, "n_params")), 5401856);
    json_decref(j);
    xf_cli_result_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usage_and_version),
        cmocka_unit_test(test_failures_are_one_line),
        cmocka_unit_test(test_info_rtn_roundtrip),
        cmocka_unit_test(test_info_shared),
        cmocka_unit_test(test_gptq_shared_deterministic),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
