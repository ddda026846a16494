/* Log2-grid weights (--weight-grid log2, storage L2..L8): levels, exact
 * round trip through an .xfq against xf_log2_weight_row, bits per weight,
 * corruption, and the CLI on the shared stories260K (ppl vs uniform). */
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <setjmp.h>
#include <cmocka.h>

#include "core/half.h"
#include "formats/xfq.h"
#include "formats/xfq_pack.h"
#include "sim/log2_quant.h"
#include "quant/weights/qweight.h"
#include "quant/weights/rtn.h"
#include "support/cli_run.h"
#include "support/test_util.h"

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

enum { ROWS = 5, COLS = 100 }; /* 100: a partial last block of codes */

static void fill(float *w, uint64_t seed)
{
    uint64_t rng = seed;
    for (int i = 0; i < ROWS * COLS; i++)
        w[i] = 0.02f * xf_test_rand_normal(&rng);
    for (int j = 0; j < COLS; j++)
        w[3 * COLS + j] = 0.0f; /* an all-zero row: every code is the zero code */
    w[7] = 0.0f;
}

/* Quantizes W on the log2 grid and writes it as the only tensor of path. */
static void write_log2(const float *W, int bits, int64_t group, const char *path)
{
    xf_error err = {0};
    xf_rtn_params p = {.grid = {.bits = bits}, .group = group, .log2_grid = true};
    xf_qweight q;
    assert_int_equal(xf_rtn_quantize(W, ROWS, COLS, &p, &q, "w", &err), 0);
    assert_true(q.log2);
    xf_qweight_packed pk;
    assert_int_equal(xf_qweight_export(&q, "w", &pk, &err), 0);
    assert_int_equal(pk.tensor.dtype, xf_qweight_log2_dtype(bits));
    json_t *meta = json_object();
    assert_int_equal(xfq_write(path, meta, &pk.tensor, 1, &err), 0);
    json_decref(meta);
    xf_qweight_packed_free(&pk);
    xf_qweight_free(&q);
}

/* Every value is 0 or +-scale * 2^-e with e in the grid's range, and the
 * dequantized tensor equals xf_log2_weight_row on every row/group. */
static void test_levels_and_round_trip(void **state)
{
    (void)state;
    static float W[ROWS * COLS], got[ROWS * COLS], row[COLS], ref[COLS];
    fill(W, 11);
    const int widths[4] = {2, 3, 4, 8};
    const int64_t groups[2] = {-1, 32};
    char path[4200];
    snprintf(path, sizeof path, "%s/l.xfq", g_tmp);
    for (int bi = 0; bi < 4; bi++) {
        for (int gi = 0; gi < 2; gi++) {
            const int bits = widths[bi], K = (1 << (bits - 1)) - 1;
            const int64_t g = groups[gi] < 0 ? COLS : groups[gi];
            write_log2(W, bits, groups[gi], path);
            xfq_file f;
            xf_error err = {0};
            assert_int_equal(xfq_open(&f, path, 0, &err), 0);
            const xf_tensor *t = xf_tensor_set_find(&f.tensors, "w");
            assert_non_null(t);
            assert_int_equal(t->dtype, xf_qweight_log2_dtype(bits));
            assert_int_equal(xf_tensor_to_f32(t, got, &err), 0);
            for (int64_t r = 0; r < ROWS; r++) {
                assert_int_equal(xf_tensor_row_to_f32(t, r, row, &err), 0);
                assert_memory_equal(row, got + r * COLS, sizeof row);
                for (int64_t j0 = 0; j0 < COLS; j0 += g) {
                    int64_t n = COLS - j0 < g ? COLS - j0 : g;
                    float s = xf_log2_weight_row(W + r * COLS + j0, n, bits, ref);
                    float stored = xf_f16_to_f32(t->packed.scales[r * t->packed.n_groups + j0 / g]);
                    if (s > 0.0f)
                        assert_true(stored == s); /* the searched scale is fp16-exact */
                    for (int64_t k = 0; k < n; k++) {
                        float v = got[r * COLS + j0 + k];
                        assert_true(v == ref[k]);
                        if (v == 0.0f)
                            continue;
                        /* a power of two times the scale, in range for its sign */
                        int e = 0;
                        while (e <= K && fabsf(v) != (float)((double)stored * ldexp(1.0, -e)))
                            e++;
                        assert_true(e <= (v < 0.0f ? K - 1 : K));
                        assert_true((v < 0.0f) == (W[r * COLS + j0 + k] < 0.0f));
                    }
                }
            }
            xfq_close(&f);
        }
    }
}

/* info's bits per weight, by hand: L4 per-channel [5, 100]: 4 blocks of 16
 * bytes a row = 320 code bytes at 0, 5 fp16 scales at 320, 330 bytes:
 * 8 * 330 / 500 = 5.28. L3 group 32: 4 * 12 = 48 a row, 240 code bytes,
 * scales [5, 4] = 40 bytes at 256, 296 bytes: 4.736. */
static void test_bits_per_weight(void **state)
{
    (void)state;
    static float W[ROWS * COLS];
    fill(W, 5);
    char path[4200];
    snprintf(path, sizeof path, "%s/b.xfq", g_tmp);
    const struct { int bits; int64_t group; size_t nbytes; double bpw; } cases[2] = {
        {4, -1, 330, 5.28}, {3, 32, 296, 4.736}};
    for (int c = 0; c < 2; c++) {
        write_log2(W, cases[c].bits, cases[c].group, path);
        xfq_file f;
        xf_error err = {0};
        assert_int_equal(xfq_open(&f, path, 0, &err), 0);
        assert_int_equal(f.tensors.items[0].nbytes, cases[c].nbytes);
        assert_true(fabs(xfq_packed_bits_per_weight(&f.tensors) - cases[c].bpw) < 1e-12);
        xfq_close(&f);
        xf_cli_result r = xf_cli_run(g_tmp, "info %s --json", path);
        assert_int_equal(r.code, 0);
        json_t *j = json_loads(r.out, 0, NULL);
        assert_non_null(j);
        assert_true(fabs(json_real_value(json_object_get(j, "packed_bits_per_weight")) -
                         cases[c].bpw) < 1e-9);
        json_decref(j);
        assert_non_null(strstr(r.out, cases[c].bits == 4 ? "\"L4\"" : "\"L3\""));
        xf_cli_result_free(&r);
    }
}

static void patch_byte(const char *path, long off, uint8_t xor_mask, uint8_t *set)
{
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, off, SEEK_SET), 0);
    int c = fgetc(fp);
    assert_true(c != EOF);
    assert_int_equal(fseek(fp, off, SEEK_SET), 0);
    fputc(set ? *set : (c ^ xor_mask), fp);
    fclose(fp);
}

/* A flipped code is caught by the tensor CRC; a negative scale is refused
 * also without CRCs (dequantization trusts the grid); one line each,
 * naming the tensor. */
static void test_corrupt_block(void **state)
{
    (void)state;
    static float W[ROWS * COLS];
    fill(W, 7);
    char path[4200];
    snprintf(path, sizeof path, "%s/c.xfq", g_tmp);
    write_log2(W, 4, -1, path);
    xfq_file f;
    xf_error err = {0};
    assert_int_equal(xfq_open(&f, path, 0, &err), 0);
    const uint8_t *base = f.file.data;
    long codes = (long)((const uint8_t *)f.tensors.items[0].packed.codes - base);
    long scales = (long)((const uint8_t *)f.tensors.items[0].packed.scales - base);
    xfq_close(&f);

    patch_byte(path, codes + 17, 0x10, NULL); /* a code of the second block of row 0 */
    assert_int_equal(xfq_open(&f, path, 0, &err), -1);
    assert_non_null(strstr(err.msg, "w"));
    assert_non_null(strstr(err.msg, "CRC"));
    assert_null(strchr(err.msg, '\n'));
    patch_byte(path, codes + 17, 0x10, NULL); /* restore */
    assert_int_equal(xfq_open(&f, path, 0, &err), 0);
    xfq_close(&f);

    uint8_t hi = 0xbc; /* fp16 sign bit set: a negative scale */
    patch_byte(path, scales + 1, 0, &hi);
    assert_int_equal(xfq_open(&f, path, XFQ_OPEN_NO_CRC, &err), -1);
    assert_non_null(strstr(err.msg, "tensor w"));
    assert_non_null(strstr(err.msg, "negative"));
    assert_null(strchr(err.msg, '\n'));
}

static double ppl_of(const char *model, const char *text)
{
    xf_cli_result r = xf_cli_run(g_tmp, "ppl %s --text %s --seqlen 128 --max-windows 8 --json",
                                 model, text);
    assert_int_equal(r.code, 0);
    json_t *j = json_loads(r.out, 0, NULL);
    assert_non_null(j);
    double p = json_real_value(json_object_get(j, "ppl"));
    json_decref(j);
    xf_cli_result_free(&r);
    return p;
}

/* The CLI end to end: recipe key, L4 tensors, ppl against uniform 4-bit
 * per-channel RTN and the fp model; gptq refuses the grid. */
static void test_cli_stories(void **state)
{
    (void)state;
    XF_TEST_REQUIRE_SHARED(model_s, "models/stories260K");
    char model[4096];
    snprintf(model, sizeof model, "%s", model_s);
    XF_TEST_REQUIRE_SHARED(text_s, "data/tinystories/eval.txt");
    char text[4096];
    snprintf(text, sizeof text, "%s", text_s);
    char lg[4200], un[4200];
    snprintf(lg, sizeof lg, "%s/log2.xfq", g_tmp);
    snprintf(un, sizeof un, "%s/uni.xfq", g_tmp);
    xf_cli_result r = xf_cli_run(g_tmp, "rtn --weight-grid log2 --bits 4 %s %s", model, lg);
    assert_int_equal(r.code, 0);
    xf_cli_result_free(&r);
    r = xf_cli_run(g_tmp, "rtn --bits 4 --group -1 %s %s", model, un);
    assert_int_equal(r.code, 0);
    xf_cli_result_free(&r);

    xfq_file f;
    xf_error err = {0};
    assert_int_equal(xfq_open(&f, lg, 0, &err), 0);
    const json_t *recipe = json_object_get(f.meta, "recipe");
    assert_string_equal(json_string_value(json_object_get(recipe, "weight_grid")), "log2");
    size_t n_l4 = 0;
    for (size_t i = 0; i < f.tensors.n; i++) {
        assert_false(f.tensors.items[i].dtype == XF_DTYPE_Q4);
        n_l4 += f.tensors.items[i].dtype == XF_DTYPE_L4;
    }
    assert_true(n_l4 > 0);
    xfq_close(&f);
    assert_int_equal(xfq_open(&f, un, 0, &err), 0);
    assert_null(json_object_get(json_object_get(f.meta, "recipe"), "weight_grid"));
    xfq_close(&f);

    double p_fp = ppl_of(model, text), p_log2 = ppl_of(lg, text), p_uni = ppl_of(un, text);
    print_message("stories260K ppl (8 windows of 128): fp %.4f, uniform 4-bit per-channel "
                  "%.4f, log2 4-bit %.4f\n", p_fp, p_uni, p_log2);
    assert_true(isfinite(p_log2) && p_log2 > p_fp && p_log2 < 20.0 * p_fp);

    char bad[4200];
    snprintf(bad, sizeof bad, "%s/bad.xfq", g_tmp);
    r = xf_cli_run(g_tmp, "gptq --weight-grid log2 --calib %s %s %s", text, model, bad);
    assert_int_equal(r.code, 2);
    assert_non_null(strstr(r.err, "--weight-grid log2 applies to rtn only"));
    xf_cli_result_free(&r);
    r = xf_cli_run(g_tmp, "rtn --weight-grid log4 %s %s", model, bad);
    assert_int_equal(r.code, 2);
    xf_cli_result_free(&r);
    struct stat st;
    assert_int_not_equal(stat(bad, &st), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_levels_and_round_trip),
        cmocka_unit_test(test_bits_per_weight),
        cmocka_unit_test(test_corrupt_block),
        cmocka_unit_test(test_cli_stories),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
