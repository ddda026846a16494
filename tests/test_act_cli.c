/* The activation / KV / probability scheme and per-tensor bits end to end
 * through the CLI: flags -> .xfq recipe -> `xfquant ppl` applies the scheme
 * with no extra flags; usage errors are one line with exit code 2. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

static json_t *run_json(const char *fmt, const char *a, const char *b)
{
    xf_cli_result r = xf_cli_run(g_tmp, fmt, a, b);
    if (r.code != 0)
        fail_msg("xfquant exited %d: %s", r.code, r.err);
    json_t *j = json_loads(r.out, 0, NULL);
    xf_cli_result_free(&r);
    assert_non_null(j);
    return j;
}

static const json_t *find_tensor(const json_t *info, const char *name)
{
    const json_t *arr = json_object_get(info, "tensors");
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const json_t *t = json_array_get(arr, i);
        if (!strcmp(json_string_value(json_object_get(t, "name")), name))
            return t;
    }
    fail_msg("tensor %s not in info", name);
    return NULL;
}

/* Flags land in the recipe exactly; --tensor-bits picks each tensor's
 * storage type; bad values are usage errors naming the flag. */
static void test_recipe_and_tensor_bits(void **state)
{
    (void)state;
    char dir[4200], out[4200];
    snprintf(dir, sizeof dir, "%s/llama", g_tmp);
    snprintf(out, sizeof out, "%s/a.xfq", g_tmp);
    xf_random_model_spec s = {.family = "llama", .hidden = 64, .intermediate = 96, .layers = 2,
                              .heads = 4, .kv_heads = 2, .vocab = 80, .max_pos = 64,
                              .f16 = true, .seed = 3};
    char *d = xf_random_model_write(dir, &s);
    assert_non_null(d);
    free(d);
    xf_cli_result r = xf_cli_run(
        g_tmp,
        "rtn --bits 4 --group 32 --act-bits 6 --act-asym --act-group 16 --act-clip 0.9 "
        "--act-inputs qkv,down --kv-bits 4 --kv-group 8 --kv-clip 0.95 --attn-prob-bits 5 "
        "--attn-prob-quant log2 --attn-prob-base 0.5 --tensor-bits 'layers\\.1\\..*down_proj=8' "
        "--tensor-bits 'down_proj=3' %s %s",
        dir, out);
    assert_int_equal(r.code, 0);
    xf_cli_result_free(&r);
    json_t *info = run_json("info %s --json%s", out, "");
    const json_t *act = json_object_get(json_object_get(info, "recipe"), "activations");
    assert_non_null(act);
    assert_int_equal(json_integer_value(json_object_get(act, "act_bits")), 6);
    assert_true(json_is_false(json_object_get(act, "act_sym")));
    assert_int_equal(json_integer_value(json_object_get(act, "act_group")), 16);
    assert_true(json_real_value(json_object_get(act, "act_clip")) == 0.9);
    assert_int_equal(json_array_size(json_object_get(act, "act_inputs")), 2);
    assert_int_equal(json_integer_value(json_object_get(act, "kv_bits")), 4);
    assert_int_equal(json_integer_value(json_object_get(act, "kv_group")), 8);
    assert_true(json_real_value(json_object_get(act, "kv_clip")) == 0.95);
    assert_int_equal(json_integer_value(json_object_get(act, "attn_prob_bits")), 5);
    assert_string_equal(json_string_value(json_object_get(act, "attn_prob_quant")), "log2");
    assert_true(json_real_value(json_object_get(act, "attn_prob_log2_base")) == 0.5);
    const json_t *rules = json_object_get(json_object_get(info, "recipe"), "tensor_bits");
    assert_int_equal(json_array_size(rules), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(rules, 0), "bits")), 8);
    /* first matching rule wins: layer 1's down_proj at 8, layer 0's at 3 */
    assert_string_equal(json_string_value(json_object_get(
                            find_tensor(info, "model.layers.1.mlp.down_proj.weight"), "dtype")),
                        "Q8");
    assert_string_equal(json_string_value(json_object_get(
                            find_tensor(info, "model.layers.0.mlp.down_proj.weight"), "dtype")),
                        "Q3");
    assert_string_equal(json_string_value(json_object_get(
                            find_tensor(info, "model.layers.0.mlp.up_proj.weight"), "dtype")),
                        "Q4");
    json_decref(info);

    /* without scheme flags there is no "activations" entry */
    r = xf_cli_run(g_tmp, "rtn --bits 4 %s %s", dir, out);
    assert_int_equal(r.code, 0);
    xf_cli_result_free(&r);
    info = run_json("info %s --json%s", out, "");
    assert_null(json_object_get(json_object_get(info, "recipe"), "activations"));
    json_decref(info);

    static const char *const bad[][2] = {
        {"--act-bits 1", "--act-bits"},
        {"--act-bits 17", "--act-bits"},
        {"--act-bits 4 --act-clip 0", "--act-clip"},
        {"--act-bits 4 --act-inputs qkv,fc9", "--act-inputs"},
        {"--kv-bits 4 --kv-clip 1.5", "--kv-clip"},
        {"--attn-prob-bits 9", "--attn-prob-bits"},
        {"--attn-prob-bits 4 --attn-prob-quant cubic", "--attn-prob-quant"},
        {"--tensor-bits down_proj", "REGEX=BITS"},
        {"--tensor-bits down_proj=5", "bits must be 2, 3, 4 or 8"},
        {"--act-bits 4 --act-clip search", "need --calib"},
        {"--calib x.txt", "rtn reads calibration text only"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = xf_cli_run(g_tmp, "rtn --bits 4 %s %s %s/bad.xfq", bad[i][0], dir, g_tmp);
        if (r.code != 2 || xf_cli_count_lines(r.err) != 1 || !strstr(r.err, bad[i][1]))
            fail_msg("'%s': exit %d, stderr '%s' (want 2 and '%s')", bad[i][0], r.code, r.err,
                     bad[i][1]);
        xf_cli_result_free(&r);
    }
    /* an invalid regex fails before anything is written */
    r = xf_cli_run(g_tmp, "rtn --bits 4 --tensor-bits '(=8' %s %s/bad.xfq", dir, g_tmp);
    assert_int_not_equal(r.code, 0);
    assert_int_equal(xf_cli_count_lines(r.err), 1);
    assert_non_null(strstr(r.err, "--tensor-bits"));
    xf_cli_result_free(&r);
    /* groups must divide the model's widths (64 and 96 wide inputs,
     * head_dim 16): refused before any work */
    r = xf_cli_run(g_tmp, "rtn --bits 4 --act-bits 4 --act-group 40 %s %s/bad.xfq", dir, g_tmp);
    assert_int_equal(r.code, 1);
    assert_non_null(strstr(r.err, "--act-group 40 does not divide"));
    xf_cli_result_free(&r);
    r = xf_cli_run(g_tmp, "rtn --bits 4 --kv-bits 4 --kv-group 5 %s %s/bad.xfq", dir, g_tmp);
    assert_int_equal(r.code, 1);
    assert_non_null(strstr(r.err, "kv_group 5"));
    xf_cli_result_free(&r);
    /* none of the refused commands left an output behind */
    struct stat st;
    char bad_out[4200];
    snprintf(bad_out, sizeof bad_out, "%s/bad.xfq", g_tmp);
    assert_int_not_equal(stat(bad_out, &st), 0);
}

static double ppl_of(const char *model, const char *text, char **scheme)
{
    char args[8400];
    snprintf(args, sizeof args, "%s --text %s", model, text);
    json_t *j = run_json("ppl %s --seqlen 256 --max-windows 6 --json%s", args, "");
    double p = json_real_value(json_object_get(j, "ppl"));
    if (scheme) {
        const json_t *s = json_object_get(j, "act_scheme");
        *scheme = json_is_string(s) ? strdup(json_string_value(s)) : NULL;
    }
    json_decref(j);
    return p;
}

/* On stories260K: the recipe's scheme is applied by ppl; 16-bit
 * activations and KV change nothing measurable; 4-bit ones hurt; GPTQ
 * calibrates with the scheme and records it; the clip search writes one
 * ratio per input from the candidate grid. */
static void test_scheme_applied_by_ppl(void **state)
{
    (void)state;
    XF_TEST_REQUIRE_SHARED(model_s, "models/stories260K");
    char model[4096];
    snprintf(model, sizeof model, "%s", model_s);
    XF_TEST_REQUIRE_SHARED(text_s, "data/tinystories/eval.txt");
    char text[4096];
    snprintf(text, sizeof text, "%s", text_s);
    XF_TEST_REQUIRE_SHARED(calib_s, "data/tinystories/calib.txt");
    char calib[4096];
    snprintf(calib, sizeof calib, "%s", calib_s);
    char w8[4200], a16[4200], a4[4200], g[4200], srch[4200];
    snprintf(w8, sizeof w8, "%s/w8.xfq", g_tmp);
    snprintf(a16, sizeof a16, "%s/a16.xfq", g_tmp);
    snprintf(a4, sizeof a4, "%s/a4.xfq", g_tmp);
    snprintf(g, sizeof g, "%s/g.xfq", g_tmp);
    snprintf(srch, sizeof srch, "%s/s.xfq", g_tmp);
    xf_cli_result r = xf_cli_run(g_tmp, "rtn --bits 8 %s %s", model, w8);
    assert_int_equal(r.code, 0);
    xf_cli_result_free(&r);
    r = xf_cli_run(g_tmp, "rtn --bits 8 --act-bits 16 --act-asym --kv-bits 16 %s %s", model, a16);
    assert_int_equal(r.code, 0);
    xf_cli_result_free(&r);
    r = xf_cli_run(g_tmp, "rtn --bits 8 --act-bits 4 --kv-bits 4 %s %s", model, a4);
    assert_int_equal(r.code, 0);
    xf_cli_result_free(&r);
    char *sch = NULL;
    double p8 = ppl_of(w8, text, &sch);
    assert_null(sch); /* no scheme: plain forward */
    double p16 = ppl_of(a16, text, &sch);
    assert_non_null(sch);
    assert_non_null(strstr(sch, "A16"));
    free(sch);
    double p4 = ppl_of(a4, text, &sch);
    assert_non_null(strstr(sch, "A4 sym, KV4"));
    free(sch);
    print_message("W8: ppl %.6f, W8A16KV16: %.6f, W8A4KV4: %.6f\n", p8, p16, p4);
    assert_true(fabs(p16 / p8 - 1.0) < 1e-4);
    assert_true(p4 > 1.05 * p8);

    /* GPTQ with an activation scheme: recorded, and calibrated on the
     * quantized activations (a different file than without the scheme) */
    r = xf_cli_run(g_tmp,
                   "gptq --bits 4 --group 32 --nsamples 4 --seqlen 64 --act-bits 4 --calib %s "
                   "%s %s",
                   calib, model, g);
    assert_int_equal(r.code, 0);
    xf_cli_result_free(&r);
    json_t *info = run_json("info %s --json%s", g, "");
    const json_t *act = json_object_get(json_object_get(info, "recipe"), "activations");
    assert_int_equal(json_integer_value(json_object_get(act, "act_bits")), 4);
    json_decref(info);

    r = xf_cli_run(g_tmp,
                   "rtn --bits 8 --act-bits 4 --act-clip search --nsamples 2 --seqlen 64 "
                   "--calib %s %s %s",
                   calib, model, srch);
    assert_int_equal(r.code, 0);
    xf_cli_result_free(&r);
    info = run_json("info %s --json%s", srch, "");
    act = json_object_get(json_object_get(info, "recipe"), "activations");
    const json_t *clips = json_object_get(act, "act_clip_inputs");
    const char *names[] = {"qkv", "o", "mlp", "down"};
    for (int i = 0; i < 4; i++) {
        double c = json_real_value(json_object_get(clips, names[i]));
        double steps = c * 20.0;
        assert_true(c >= 0.5 && c <= 1.0);
        assert_true(fabs(steps - round(steps)) < 1e-9); /* on the 0.05 grid */
    }
    json_decref(info);
}

/* --rotate through the CLI: the recipe records the rotation and the online
 * transform; a rotated file evaluates like the unrotated one at 8 bits; it
 * cannot be re-quantized or profiled; bad flags are usage errors. */
static void test_rotate_cli(void **state)
{
    (void)state;
    char dir[4200], out[4200], out2[4200];
    snprintf(dir, sizeof dir, "%s/llama_r", g_tmp);
    snprintf(out, sizeof out, "%s/r.xfq", g_tmp);
    snprintf(out2, sizeof out2, "%s/r2.xfq", g_tmp);
    xf_random_model_spec s = {.family = "llama", .hidden = 64, .intermediate = 96, .layers = 2,
                              .heads = 4, .kv_heads = 2, .vocab = 80, .max_pos = 64,
                              .f16 = true, .seed = 4};
    char *d = xf_random_model_write(dir, &s);
    assert_non_null(d);
    free(d);
    xf_cli_result r = xf_cli_run(g_tmp, "rtn --bits 4 --rotate hadamard --seed 3 %s %s", dir, out);
    assert_int_equal(r.code, 0);
    xf_cli_result_free(&r);
    json_t *info = run_json("info %s --json%s", out, "");
    const json_t *recipe = json_object_get(info, "recipe");
    const json_t *rot = json_object_get(recipe, "rotation");
    assert_string_equal(json_string_value(json_object_get(rot, "kind")), "hadamard");
    assert_int_equal(json_integer_value(json_object_get(rot, "seed")), 3);
    const json_t *online = json_object_get(recipe, "online_transforms");
    assert_int_equal(json_array_size(online), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(online, 0), "n")), 96);
    json_decref(info);
    /* the same command twice gives the same bytes (same output name: the
     * command line is part of the provenance) */
    assert_int_equal(rename(out, out2), 0);
    r = xf_cli_run(g_tmp, "rtn --bits 4 --rotate hadamard --seed 3 %s %s", dir, out);
    assert_int_equal(r.code, 0);
    xf_cli_result_free(&r);
    char *x, *y;
    size_t nx, ny;
    assert_int_equal(xf_read_file(out, &x, &nx, NULL), 0);
    assert_int_equal(xf_read_file(out2, &y, &ny, NULL), 0);
    assert_true(nx == ny && memcmp(x, y, nx) == 0);
    free(x);
    free(y);
    /* a rotated file is not a valid input for quantization */
    r = xf_cli_run(g_tmp, "rtn --bits 4 %s %s/again.xfq", out, g_tmp);
    assert_int_equal(r.code, 1);
    assert_non_null(strstr(r.err, "rotated"));
    xf_cli_result_free(&r);
    static const char *const bad[][2] = {
        {"--rotate spin", "--rotate must be"},
        {"--rotate klt", "need --calib"},
        {"--seed 3", "--seed only with --rotate"},
        {"--rotate hadamard --rotate-steps -1", "--rotate-steps"},
        {"--smooth 0", "--smooth"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = xf_cli_run(g_tmp, "rtn --bits 4 %s %s %s/bad.xfq", bad[i][0], dir, g_tmp);
        if (r.code != 2 || xf_cli_count_lines(r.err) != 1 || !strstr(r.err, bad[i][1]))
            fail_msg("'%s': exit %d, stderr '%s' (want 2 and '%s')", bad[i][0], r.code, r.err,
                     bad[i][1]);
        xf_cli_result_free(&r);
    }

    XF_TEST_REQUIRE_SHARED(model_s, "models/stories260K");
    char model[4096];
    snprintf(model, sizeof model, "%s", model_s);
    XF_TEST_REQUIRE_SHARED(text_s, "data/tinystories/eval.txt");
    char text[4096];
    snprintf(text, sizeof text, "%s", text_s);
    char w8[4200], w8r[4200];
    snprintf(w8, sizeof w8, "%s/w8.xfq", g_tmp);
    snprintf(w8r, sizeof w8r, "%s/w8r.xfq", g_tmp);
    r = xf_cli_run(g_tmp, "rtn --bits 8 %s %s", model, w8);
    assert_int_equal(r.code, 0);
    xf_cli_result_free(&r);
    r = xf_cli_run(g_tmp, "rtn --bits 8 --rotate hadamard %s %s", model, w8r);
    assert_int_equal(r.code, 0);
    xf_cli_result_free(&r);
    double p8 = ppl_of(w8, text, NULL), p8r = ppl_of(w8r, text, NULL);
    print_message("W8 %.6f, W8 rotated %.6f\n", p8, p8r);
    /* both are within 8-bit rounding of the fp model: a broken rotation
     * (e.g. a missing online transform) gives a far larger change */
    assert_true(fabs(p8r / p8 - 1.0) < 0.01);
    /* stats runs a rotated file with its online transforms (the rotated
     * basis the quantizers see): every layer and input, as for the plain one */
    r = xf_cli_run(g_tmp, "stats %s --calib %s", w8r, text);
    assert_int_equal(r.code, 0);
    xf_cli_result rp = xf_cli_run(g_tmp, "stats %s --calib %s", w8, text);
    assert_int_equal(rp.code, 0);
    assert_int_equal(xf_cli_count_lines(r.out), xf_cli_count_lines(rp.out));
    assert_string_not_equal(r.out, rp.out);
    xf_cli_result_free(&rp);
    xf_cli_result_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recipe_and_tensor_bits),
        cmocka_unit_test(test_scheme_applied_by_ppl),
        cmocka_unit_test(test_rotate_cli),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
