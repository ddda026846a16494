/* `xfquant gptq|rtn --gguf-type FT` end to end on a small random llama whose
 * widths allow K-quants: the .xfq holds GGML block tensors of the planned
 * types, evaluates, and exports; `OUT.gguf` directly gives the same bytes as
 * the .xfq exported; same bytes for any thread count; the option
 * combinations GGUF cannot hold are refused, with nothing written. The
 * interop suite (tests/interop/gguf_gptq.sh) checks the files against
 * llama.cpp itself. */
#include <dirent.h>
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

#include "formats/ggml_types.h"
#include "formats/gguf.h"
#include "formats/xfq.h"
#include "tests/support/cli_run.h"
#include "tests/support/random_model.h"
#include "tests/support/random_tokenizer.h"
#include "tests/support/test_util.h"

typedef struct fixture {
    char *tmp, *model, *calib;
} fixture;

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    fx->tmp = xf_test_tmpdir();
    char d[4096];
    snprintf(d, sizeof d, "%s/model", fx->tmp);
    xf_random_model_spec s = {.family = "llama", .hidden = 256, .intermediate = 512,
                              .layers = 2, .heads = 4, .kv_heads = 2, .vocab = 300,
                              .max_pos = 64, .f16 = true, .seed = 5};
    fx->model = xf_random_model_write(d, &s);
    assert_non_null(fx->model);
    assert_int_equal(xf_random_tokenizer_write(fx->model, false), 0);
    char text[8192];
    size_t len = 0;
    uint64_t rng = 9;
    static const char *const words[] = {"a", "b", "ab", "ba", "aab", "bb"};
    while (len < sizeof text - 8)
        len += (size_t)snprintf(text + len, sizeof text - len, "%s ",
                                words[xf_test_rand_u64(&rng) % 6]);
    fx->calib = xf_test_write_file(fx->tmp, "calib.txt", text, len);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    xf_test_rmtree(fx->tmp);
    free(fx->tmp);
    free(fx->model);
    free(fx->calib);
    free(fx);
    return 0;
}

/* info --json: the dtype of each tensor ("GGML q4_K", "F16", ...). */
static json_t *info_tensors(const fixture *fx, const char *path)
{
    xf_cli_result r = xf_cli_run(fx->tmp, "info %s --json", path);
    assert_int_equal(r.code, 0);
    json_error_t je;
    json_t *j = json_loads(r.out, 0, &je);
    xf_cli_result_free(&r);
    assert_non_null(j);
    return j;
}

static const char *dtype_of(json_t *info, const char *name)
{
    json_t *ts = json_object_get(info, "tensors"), *t;
    size_t i;
    json_array_foreach(ts, i, t)
        if (!strcmp(json_string_value(json_object_get(t, "name")), name))
            return json_string_value(json_object_get(t, "dtype"));
    return NULL;
}

/* Every tensor of a and b has the same bytes (the metadata differs: it
 * records the command line). */
static void same_tensors(const char *a, const char *b)
{
    xfq_file fa, fb;
    xf_error err = {0};
    assert_int_equal(xfq_open(&fa, a, 0, &err), 0);
    assert_int_equal(xfq_open(&fb, b, 0, &err), 0);
    assert_int_equal(fa.tensors.n, fb.tensors.n);
    for (size_t i = 0; i < fa.tensors.n; i++) {
        const xf_tensor *x = &fa.tensors.items[i], *y = &fb.tensors.items[i];
        assert_string_equal(x->name, y->name);
        assert_int_equal(x->nbytes, y->nbytes);
        if (memcmp(x->data, y->data, x->nbytes) != 0)
            fail_msg("%s differs between --threads 2 and --threads 1", x->name);
    }
    xfq_close(&fa);
    xfq_close(&fb);
}

static void test_gptq_q4_k_m(void **state)
{
    fixture *fx = *state;
    char xfq[4096], gguf[4096], direct[4096], xfq1[4096];
    snprintf(xfq, sizeof xfq, "%s/m.xfq", fx->tmp);
    snprintf(xfq1, sizeof xfq1, "%s/m1.xfq", fx->tmp);
    snprintf(gguf, sizeof gguf, "%s/m.gguf", fx->tmp);
    snprintf(direct, sizeof direct, "%s/direct.gguf", fx->tmp);
    const char *opts = "--gguf-type Q4_K_M --nsamples 4 --seqlen 32";
    xf_cli_result r = xf_cli_run(fx->tmp, "gptq %s --calib %s --threads 2 %s %s", opts,
                                 fx->calib, fx->model, xfq);
    if (r.code != 0)
        fail_msg("gptq: %s", r.err);
    xf_cli_result_free(&r);
    json_t *info = info_tensors(fx, xfq);
    /* llama-quantize's Q4_K_M: q4_K by default, q6_K for the output and for
     * attn_v / ffn_down of the "more bits" layers (of 2 layers: layer 1,
     * i >= 7 n / 8) */
    assert_string_equal(dtype_of(info, "model.layers.0.self_attn.q_proj.weight"), "GGML q4_K");
    assert_string_equal(dtype_of(info, "model.layers.1.mlp.up_proj.weight"), "GGML q4_K");
    assert_string_equal(dtype_of(info, "model.layers.0.self_attn.v_proj.weight"), "GGML q4_K");
    assert_string_equal(dtype_of(info, "model.layers.1.self_attn.v_proj.weight"), "GGML q6_K");
    assert_string_equal(dtype_of(info, "model.layers.0.mlp.down_proj.weight"), "GGML q4_K");
    assert_string_equal(dtype_of(info, "model.layers.1.mlp.down_proj.weight"), "GGML q6_K");
    assert_string_equal(dtype_of(info, "lm_head.weight"), "GGML q6_K");
    assert_string_equal(dtype_of(info, "model.embed_tokens.weight"), "GGML q4_K");
    assert_string_equal(dtype_of(info, "model.norm.weight"), "F16");
    json_decref(info);
    /* same bytes with one thread */
    r = xf_cli_run(fx->tmp, "gptq %s --calib %s --threads 1 %s %s", opts, fx->calib, fx->model,
                   xfq1);
    assert_int_equal(r.code, 0);
    xf_cli_result_free(&r);
    same_tensors(xfq, xfq1);
    /* it evaluates */
    r = xf_cli_run(fx->tmp, "ppl %s --text %s --seqlen 32 --json", xfq, fx->calib);
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.out, "\"ppl\""));
    xf_cli_result_free(&r);
    /* export, and OUT.gguf directly: the same file */
    r = xf_cli_run(fx->tmp, "export --to gguf %s %s", xfq, gguf);
    assert_int_equal(r.code, 0);
    xf_cli_result_free(&r);
    r = xf_cli_run(fx->tmp, "gptq %s --calib %s %s %s", opts, fx->calib, fx->model, direct);
    if (r.code != 0)
        fail_msg("gptq to .gguf: %s", r.err);
    xf_cli_result_free(&r);
    assert_true(xf_test_files_equal(gguf, direct));
    /* no intermediate .xfq (a temp name beside OUT) left behind */
    DIR *dir = opendir(fx->tmp);
    for (struct dirent *e; dir && (e = readdir(dir));)
        if (strstr(e->d_name, ".tmp."))
            fail_msg("left behind: %s", e->d_name);
    closedir(dir);
    xf_gguf_file f;
    xf_error err = {0};
    assert_int_equal(xf_gguf_open(&f, direct, &err), 0);
    const xf_gguf_tensor *t = xf_gguf_find_tensor(&f, "blk.1.attn_q.weight");
    assert_non_null(t);
    assert_int_equal(t->traits->type, XF_GGML_Q4_K);
    uint64_t ft = 0;
    assert_int_equal(xf_gguf_get_uint(&f, "general.file_type", true, 0, &ft, &err), 0);
    assert_int_equal(ft, 15); /* LLAMA_FTYPE_MOSTLY_Q4_K_M */
    xf_gguf_close(&f);
    unlink(xfq1);
    unlink(gguf);
    unlink(direct);
}

/* GPTQv2 and static-group act-order run on the GGML grids too. */
static void test_gptq_v2_act_order(void **state)
{
    fixture *fx = *state;
    char out[4096];
    snprintf(out, sizeof out, "%s/v2.xfq", fx->tmp);
    xf_cli_result r = xf_cli_run(fx->tmp, "gptq --gguf-type Q3_K_M --gptq-v2 --act-order "
                                 "--static-groups --calib %s --nsamples 4 --seqlen 32 %s %s",
                                 fx->calib, fx->model, out);
    if (r.code != 0)
        fail_msg("gptq: %s", r.err);
    xf_cli_result_free(&r);
    json_t *info = info_tensors(fx, out);
    assert_string_equal(dtype_of(info, "model.layers.0.self_attn.q_proj.weight"), "GGML q3_K");
    json_decref(info);
    unlink(out);
}

static void test_rtn_q4_0(void **state)
{
    fixture *fx = *state;
    char out[4096];
    snprintf(out, sizeof out, "%s/r.xfq", fx->tmp);
    xf_cli_result r = xf_cli_run(fx->tmp, "rtn --gguf-type q4_0 %s %s", fx->model, out);
    if (r.code != 0)
        fail_msg("rtn: %s", r.err);
    xf_cli_result_free(&r);
    json_t *info = info_tensors(fx, out);
    assert_string_equal(dtype_of(info, "model.layers.0.self_attn.k_proj.weight"), "GGML q4_0");
    assert_string_equal(dtype_of(info, "lm_head.weight"), "GGML q6_K");
    json_decref(info);
    unlink(out);
}

static void test_refusals(void **state)
{
    fixture *fx = *state;
    char out[4096];
    snprintf(out, sizeof out, "%s/bad.xfq", fx->tmp);
    const int before = xf_test_dir_entries(fx->tmp);
    static const struct {
        const char *args;
        int code;
        const char *msg;
    } cases[] = {
        {"--gguf-type Q9_K", 2, "--gguf-type must be one of"},
        {"--gguf-type Q4_K_M --bits 4", 2, "--bits cannot be combined with --gguf-type"},
        {"--gguf-type Q4_K_M --quantize-head", 2, "--quantize-head cannot be combined"},
        {"--gguf-type Q4_K_M --outliers 1%", 1, "outlier"},
        {"--gguf-type Q4_K_M --act-order", 1, "needs --static-groups"},
        {"--gguf-type Q4_K_M --tensor-bits down=8", 1, "--tensor-bits"},
        {"--gguf-type Q4_K_M --rotate hadamard", 1, "--rotate-no-online"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        xf_cli_result r = xf_cli_run(fx->tmp, "gptq %s --calib %s --nsamples 2 --seqlen 16 %s %s",
                                     cases[i].args, fx->calib, fx->model, out);
        if (r.code != cases[i].code || !strstr(r.err, cases[i].msg))
            fail_msg("'%s': exit %d, stderr: %s", cases[i].args, r.code, r.err);
        xf_cli_result_free(&r);
        assert_int_equal(xf_test_dir_entries(fx->tmp), before);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gptq_q4_k_m),
        cmocka_unit_test(test_gptq_v2_act_order),
        cmocka_unit_test(test_rtn_q4_0),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
