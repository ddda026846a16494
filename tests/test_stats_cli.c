/* `xfquant stats` end to end on a random llama model with a byte-fallback
 * tokenizer and outlier channels planted in two norm weights: the JSON
 * report finds them at the right layer and input, has the documented
 * shape and provenance, is deterministic, and the table shows the same
 * channel; errors exit non-zero with one line naming the file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/read_file.h"
#include "tests/support/cli_run.h"
#include "tests/support/random_model.h"
#include "tests/support/test_util.h"

static char *g_tmp, *g_model, *g_calib;

/* The model's tokenizer: BPE with byte fallback and no merges, so every
 * byte is one token <0xHH> (ids 3 + byte); <unk> <s> </s> are 0 1 2. */
static char *tokenizer_json(void)
{
    size_t cap = 16384, n = 0;
    char *s = malloc(cap);
    n += (size_t)snprintf(
        s + n, cap - n,
        "{\"version\": \"1.0\", \"added_tokens\": [{\"id\": 0, \"content\": \"<unk>\", "
        "\"single_word\": false, \"lstrip\": false, \"rstrip\": false, \"normalized\": false, "
        "\"special\": true}], \"normalizer\": null, \"pre_tokenizer\": null, "
        "\"post_processor\": null, \"decoder\": null, \"model\": {\"type\": \"BPE\", "
        "\"dropout\": null, \"unk_token\": \"<unk>\", \"continuing_subword_prefix\": null, "
        "\"end_of_word_suffix\": null, \"fuse_unk\": true, \"byte_fallback\": true, "
        "\"ignore_merges\": false, \"vocab\": {\"<unk>\": 0, \"<s>\": 1, \"</s>\": 2");
    for (int b = 0; b < 256; b++)
        n += (size_t)snprintf(s + n, cap - n, ", \"<0x%02X>\": %d", b, 3 + b);
    snprintf(s + n, cap - n, "}, \"merges\": []}}");
    return s;
}

/* Sets element `channel` of F32 tensor `name` in dir/model.safetensors. */
static void plant(const char *dir, const char *name, int channel, float value)
{
    char *path = xf_path_join(dir, "model.safetensors");
    char *data;
    size_t len;
    assert_int_equal(xf_read_file(path, &data, &len, NULL), 0);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | (unsigned char)data[i];
    json_t *h = json_loadb(data + 8, (size_t)hlen, 0, NULL);
    assert_non_null(h);
    json_t *t = json_object_get(h, name);
    assert_non_null(t);
    assert_string_equal(json_string_value(json_object_get(t, "dtype")), "F32");
    size_t begin = (size_t)json_integer_value(json_array_get(json_object_get(t, "data_offsets"), 0));
    memcpy(data + 8 + hlen + begin + 4 * (size_t)channel, &value, 4);
    json_decref(h);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    free(data);
    free(path);
}

static int setup(void **state)
{
    (void)state;
    g_tmp = xf_test_tmpdir();
    if (!g_tmp)
        return -1;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/model", g_tmp);
    xf_random_model_spec spec = {.family = "llama", .hidden = 32, .intermediate = 64,
                                 .layers = 2, .heads = 4, .kv_heads = 2, .vocab = 300,
                                 .max_pos = 64, .seed = 7};
    g_model = xf_random_model_write(dir, &spec);
    if (!g_model)
        return -1;
    char *tj = tokenizer_json();
    free(xf_test_write_file(g_model, "tokenizer.json", tj, strlen(tj)));
    free(tj);
    /* RMSNorm output x_c = w_c * (normalized value ~ N(0, 1)): a weight of
     * 100 makes channel c a 100x outlier of that input */
    plant(g_model, "model.layers.0.input_layernorm.weight", 5, 100.0f);
    plant(g_model, "model.layers.1.post_attention_layernorm.weight", 20, 100.0f);
    char text[4000];
    uint64_t rng = 3;
    for (size_t i = 0; i < sizeof text - 1; i++)
        text[i] = i % 7 == 6 ? ' ' : (char)('a' + xf_test_rand_u64(&rng) % 26);
    g_calib = xf_test_write_file(g_tmp, "calib.txt", text, sizeof text - 1);
    return g_calib ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    xf_test_rmtree(g_tmp);
    free(g_tmp);
    free(g_model);
    free(g_calib);
    return 0;
}

static const json_t *input_entry(const json_t *inputs, int64_t layer, const char *input)
{
    size_t i;
    const json_t *e;
    json_array_foreach(inputs, i, e)
        if (json_integer_value(json_object_get(e, "layer")) == layer &&
            !strcmp(json_string_value(json_object_get(e, "input")), input))
            return e;
    fail_msg("no entry for layer %lld %s", (long long)layer, input);
    return NULL;
}

static void check_outlier(const json_t *inputs, int64_t layer, const char *input, int channel)
{
    const json_t *e = input_entry(inputs, layer, input);
    const json_t *top = json_object_get(e, "top_channels");
    assert_int_equal(json_array_size(top), 3);
    const json_t *t0 = json_array_get(top, 0);
    assert_int_equal(json_integer_value(json_object_get(t0, "channel")), channel);
    double amax = json_real_value(json_object_get(t0, "absmax"));
    assert_true(amax == json_real_value(json_object_get(e, "absmax")));
    assert_true(json_real_value(json_object_get(t0, "ratio_to_median")) > 20.0);
    /* 1 % of 32 channels is one channel: the planted one holds ~all energy */
    assert_int_equal(json_integer_value(json_object_get(e, "top1pct_channels")), 1);
    assert_true(json_real_value(json_object_get(e, "top1pct_energy_share")) > 0.9);
    assert_true(json_real_value(json_object_get(e, "kurtosis")) > 10.0);
}

static void test_json_finds_planted_outliers(void **state)
{
    (void)state;
    const char *args = "--nsamples 4 --seqlen 32 --top 3 --threads 1 --json";
    xf_cli_result r = xf_cli_run(g_tmp, "stats %s --calib %s %s", g_model, g_calib, args);
    if (r.code != 0)
        print_message("stderr: %s\n", r.err);
    assert_int_equal(r.code, 0);
    json_error_t je;
    json_t *j = json_loads(r.out, 0, &je);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "model")), g_model);
    assert_string_equal(json_string_value(json_object_get(j, "model_type")), "llama");
    assert_int_equal(json_integer_value(json_object_get(j, "layers")), 2);
    assert_int_equal(json_integer_value(json_object_get(j, "hidden")), 32);
    assert_int_equal(json_integer_value(json_object_get(j, "tokens")), 128);
    assert_int_equal(json_integer_value(json_object_get(j, "top_k")), 3);
    const json_t *cal = json_object_get(j, "calibration");
    assert_string_equal(json_string_value(json_object_get(cal, "file")), g_calib);
    assert_int_equal(strlen(json_string_value(json_object_get(cal, "sha256"))), 64);
    assert_int_equal(json_integer_value(json_object_get(cal, "nsamples")), 4);
    assert_int_equal(json_integer_value(json_object_get(cal, "seqlen")), 32);
    assert_int_equal(json_integer_value(json_object_get(cal, "seed")), 0);
    assert_int_equal(json_integer_value(json_object_get(cal, "tokens_available")), 3999);
    assert_int_equal(json_array_size(json_object_get(cal, "sample_starts")), 4);
    /* one entry per layer and input, in forward order */
    const json_t *inputs = json_object_get(j, "inputs");
    assert_int_equal(json_array_size(inputs), 8);
    const char *names[] = {"qkv", "o", "mlp", "down"};
    const json_int_t widths[] = {32, 32, 32, 64};
    for (size_t i = 0; i < 8; i++) {
        const json_t *e = json_array_get(inputs, i);
        assert_int_equal(json_integer_value(json_object_get(e, "layer")), (json_int_t)(i / 4));
        assert_string_equal(json_string_value(json_object_get(e, "input")), names[i % 4]);
        assert_int_equal(json_integer_value(json_object_get(e, "width")), widths[i % 4]);
        assert_int_equal(json_integer_value(json_object_get(e, "tokens")), 128);
        assert_true(json_is_real(json_object_get(e, "kurtosis")));
    }
    check_outlier(inputs, 0, "qkv", 5);
    check_outlier(inputs, 1, "mlp", 20);
    json_decref(j);
    /* deterministic, whatever the thread count */
    char *first = strdup(r.out);
    xf_cli_result_free(&r);
    r = xf_cli_run(g_tmp, "stats %s --calib %s --nsamples 4 --seqlen 32 --top 3 --threads 2 --json",
                   g_model, g_calib);
    assert_int_equal(r.code, 0);
    assert_string_equal(r.out, first);
    free(first);
    xf_cli_result_free(&r);
}

static void test_text_table(void **state)
{
    (void)state;
    xf_cli_result r = xf_cli_run(g_tmp, "stats %s --calib %s --nsamples 2 --seqlen 16", g_model,
                                 g_calib);
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.out, "model:"));
    assert_non_null(strstr(r.out, "32 tokens"));
    assert_non_null(strstr(r.out, "top channels"));
    /* header + 2 layers x 4 inputs; layer 0's qkv row starts with channel 5 */
    const char *row = strstr(r.out, "    0  qkv ");
    assert_non_null(row);
    const char *eol = strchr(row, '\n');
    const char *first = strstr(row, "x  5:");
    assert_true(first && first < eol);
    assert_non_null(strstr(r.out, "    1  down "));
    xf_cli_result_free(&r);
}

static void expect_error(int code, const char *needle, const char *fmt, const char *a,
                         const char *b)
{
    xf_cli_result r = xf_cli_run(g_tmp, fmt, a, b);
    if (r.code != code || xf_cli_count_lines(r.err) != 1 || (needle && !strstr(r.err, needle)))
        print_message("'%s': exit %d, stderr: %s\n", fmt, r.code, r.err);
    assert_int_equal(r.code, code);
    assert_int_equal(xf_cli_count_lines(r.err), 1);
    if (needle)
        assert_non_null(strstr(r.err, needle));
    assert_string_equal(r.out, "");
    xf_cli_result_free(&r);
}

static void test_errors(void **state)
{
    (void)state;
    expect_error(2, "--calib", "stats %s%s", g_model, "");
    expect_error(2, "--top", "stats %s --calib %s --top 0", g_model, g_calib);
    expect_error(2, "--nsamples", "stats %s --calib %s --nsamples x", g_model, g_calib);
    expect_error(2, NULL, "stats --calib %s%s", g_calib, "");
    char *empty = xf_test_write_file(g_tmp, "empty.txt", "", 0);
    expect_error(1, empty, "stats %s --calib %s", g_model, empty);
    char *shortf = xf_test_write_file(g_tmp, "short.txt", "tiny", 4);
    expect_error(1, shortf, "stats %s --calib %s --seqlen 32", g_model, shortf);
    char missing[4200];
    snprintf(missing, sizeof missing, "%s/no-such-model", g_tmp);
    expect_error(1, missing, "stats %s --calib %s", missing, g_calib);
    snprintf(missing, sizeof missing, "%s/no-such-calib.txt", g_tmp);
    expect_error(1, missing, "stats %s --calib %s", g_model, missing);
    /* a model without tokenizer.json cannot tokenize the calibration text */
    char bare[4200];
    snprintf(bare, sizeof bare, "%s/bare", g_tmp);
    xf_random_model_spec spec = {.family = "gpt2", .hidden = 16, .layers = 1, .heads = 2,
                                 .vocab = 40, .max_pos = 32, .seed = 1};
    char *bare_dir = xf_random_model_write(bare, &spec);
    assert_non_null(bare_dir);
    expect_error(1, "tokenizer", "stats %s --calib %s", bare_dir, g_calib);
    /* GPT-2 learns 32 positions: a longer window is a usage error */
    expect_error(2, "positions", "stats %s --calib %s --seqlen 64", bare_dir, g_calib);
    free(bare_dir);
    free(empty);
    free(shortf);
    xf_cli_result r = xf_cli_run(g_tmp, "stats --help");
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.out, "usage: xfquant stats"));
    xf_cli_result_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_finds_planted_outliers),
        cmocka_unit_test(test_text_table),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
