/* GGUF import: the container reader on files crafted byte by byte (every
 * hostile case a one-line error naming the file and the field), the fp32
 * conversion of all 15 GGML types against the element-wise reference of
 * tests/support/ggml_ref.c, and models written by the tests' own GGUF
 * writer (tests/support/gguf_from_hf.c) from random HF models: logits equal
 * to the HF directory's (F32, F16: exact), quantized tensors equal to the
 * tests' own decoding bit for bit, GPT-2 orientation, tied heads, qwen2
 * biases; the tokenizer from GGUF equals the tokenizer.json one on the
 * shared models' texts. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "calib/tokenizer.h"
#include "core/half.h"
#include "core/limits.h"
#include "core/read_file.h"
#include "formats/ggml_dequant.h"
#include "formats/gguf.h"
#include "model/forward.h"
#include "model/gguf_model.h"
#include "model/loader.h"
#include "tests/support/cli_run.h"
#include "tests/support/ggml_ref.h"
#include "tests/support/gguf_build.h"
#include "tests/support/gguf_from_hf.h"
#include "tests/support/random_model.h"
#include "tests/support/test_util.h"

static char *tmp;

static int setup(void **state)
{
    (void)state;
    return xf_test_tmpdir_setup(&tmp);
}

static int teardown(void **state)
{
    (void)state;
    return xf_test_tmpdir_teardown(&tmp);
}

static char *path_in(const char *name)
{
    static char buf[1024];
    snprintf(buf, sizeof buf, "%s/%s", tmp, name);
    return buf;
}

/* ---- container errors ---- */

/* Opens b written to NAME and checks the error names the file and holds
 * `needle`. */
static void open_fails(xf_gguf_build *b, const char *name, const char *needle)
{
    char *p = path_in(name);
    assert_int_equal(xf_gguf_build_write(b, p), 0);
    xf_gguf_build_free(b);
    xf_gguf_file f;
    xf_error err = {0};
    assert_int_equal(xf_gguf_open(&f, p, &err), -1);
    if (!strstr(err.msg, p) || !strstr(err.msg, needle))
        fail_msg("error \"%s\" should name %s and say \"%s\"", err.msg, p, needle);
    assert_null(strchr(err.msg, '\n'));
}

static void raw_fails(const void *bytes, size_t n, const char *name, const char *needle)
{
    char *p = xf_test_write_file(tmp, name, bytes, n);
    xf_gguf_file f;
    xf_error err = {0};
    assert_int_equal(xf_gguf_open(&f, p, &err), -1);
    if (!strstr(err.msg, p) || !strstr(err.msg, needle))
        fail_msg("error \"%s\" should name %s and say \"%s\"", err.msg, p, needle);
    free(p);
}

static void le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void test_header_errors(void **state)
{
    (void)state;
    uint8_t h[40] = {'G', 'G', 'U', 'F'};
    le(h + 4, 3, 4);
    raw_fails(h, 10, "trunc.gguf", "truncated: n_tensors");
    raw_fails("GGML", 4, "magic.gguf", "not a GGUF file");
    le(h + 4, 4, 4);
    raw_fails(h, 24, "version.gguf", "GGUF version 4");
    le(h + 4, 3, 4);
    /* 40 bytes claiming 2^60 keys or tensors: refused before any allocation */
    le(h + 8, 0, 8);
    le(h + 16, UINT64_C(1) << 60, 8);
    raw_fails(h, 40, "nkv.gguf", "n_kv = 1152921504606846976 cannot fit");
    le(h + 8, UINT64_C(1) << 60, 8);
    le(h + 16, 0, 8);
    raw_fails(h, 40, "ntensors.gguf", "n_tensors = 1152921504606846976 cannot fit");
    /* one key whose length is 2^63 */
    le(h + 8, 0, 8);
    le(h + 16, 1, 8);
    le(h + 24, UINT64_C(1) << 63, 8);
    raw_fails(h, 40, "keylen.gguf", "string length 9223372036854775808 exceeds");
}

static void test_kv_errors(void **state)
{
    (void)state;
    xf_gguf_build *b = xf_gguf_build_new(32);
    xf_gguf_build_u32(b, "a.b", 1);
    xf_gguf_build_u32(b, "a.b", 2);
    open_fails(b, "dupkey.gguf", "duplicate key \"a.b\"");

    b = xf_gguf_build_new(32);
    uint8_t v[16];
    le(v, UINT64_C(1) << 63, 8); /* a string value of length 2^63 */
    xf_gguf_build_raw(b, "general.name", 8, v, 8);
    open_fails(b, "strlen.gguf", "general.name: string length 9223372036854775808");

    b = xf_gguf_build_new(32);
    le(v, 9, 4); /* array of arrays */
    le(v + 4, 1, 8);
    xf_gguf_build_raw(b, "nested", 9, v, 12);
    open_fails(b, "nested.gguf", "key nested: nested arrays");

    b = xf_gguf_build_new(32);
    le(v, 4, 4); /* array of 2^40 u32 */
    le(v + 4, UINT64_C(1) << 40, 8);
    xf_gguf_build_raw(b, "big", 9, v, 12);
    open_fails(b, "bigarr.gguf", "key big: 1099511627776 values of u32 cannot fit");

    b = xf_gguf_build_new(32);
    le(v, 1, 4);
    xf_gguf_build_raw(b, "weird", 13, v, 4);
    open_fails(b, "vtype.gguf", "key weird: unknown value type 13");

    b = xf_gguf_build_new(32);
    xf_gguf_build_u32(b, "general.alignment", 24);
    open_fails(b, "align.gguf", "general.alignment = 24 is not a power of 2");

    b = xf_gguf_build_new(32);
    xf_gguf_build_u32(b, "", 1);
    open_fails(b, "emptykey.gguf", "empty key");
}

static void test_tensor_errors(void **state)
{
    (void)state;
    const int64_t ne[5] = {32, 2, 1, 1, 1};
    float data[64] = {0};

    xf_gguf_build *b = xf_gguf_build_new(32);
    xf_gguf_build_tensor_info(b, "t5", 0, 5, ne, 0);
    open_fails(b, "ndims.gguf", "tensor t5: n_dims = 5");

    b = xf_gguf_build_new(32);
    xf_gguf_build_tensor(b, "t", 99, 2, ne, data, 64);
    open_fails(b, "type99.gguf", "tensor t: unknown GGML type id 99");

    b = xf_gguf_build_new(32);
    xf_gguf_build_tensor(b, "t", 16, 2, ne, data, 64);
    open_fails(b, "iq2.gguf", "tensor t: GGML type iq2_xxs (id 16) is not supported");

    b = xf_gguf_build_new(32);
    xf_gguf_build_tensor(b, "t", 0, 2, ne, data, sizeof data);
    xf_gguf_build_tensor(b, "t", 0, 2, ne, data, sizeof data);
    open_fails(b, "dupname.gguf", "duplicate tensor name \"t\"");

    /* an empty tensor's other dims must still multiply without overflow */
    b = xf_gguf_build_new(32);
    const int64_t ne_ovf[3] = {0, INT64_C(1) << 62, 4};
    xf_gguf_build_tensor_info(b, "e", 0, 3, ne_ovf, 0);
    open_fails(b, "emptyovf.gguf", "tensor e: element count overflows");

    b = xf_gguf_build_new(32);
    const int64_t ne40[2] = {40, 1};
    xf_gguf_build_tensor(b, "q", 2, 2, ne40, data, 18);
    open_fails(b, "block.gguf", "tensor q: ne[0] = 40 is not a multiple of the q4_0 block size 32");

    b = xf_gguf_build_new(32);
    xf_gguf_build_tensor_info(b, "far", 0, 2, ne, 1 << 20);
    xf_gguf_build_data(b, data, sizeof data);
    open_fails(b, "pastend.gguf", "tensor far: data [1048576, +256) runs past the end");

    b = xf_gguf_build_new(32);
    xf_gguf_build_tensor_info(b, "mis", 0, 2, ne, 16);
    xf_gguf_build_data(b, data, sizeof data);
    open_fails(b, "misaligned.gguf", "tensor mis: offset 16 is not a multiple of the alignment 32");

    b = xf_gguf_build_new(32);
    xf_gguf_build_tensor_info(b, "a", 0, 2, ne, 0);
    xf_gguf_build_tensor_info(b, "b", 0, 2, ne, 512); /* ggml's rule gives 256 */
    static float big[256];
    xf_gguf_build_data(b, big, sizeof big);
    open_fails(b, "rule.gguf", "tensor b: offset 512, expected 256");

    b = xf_gguf_build_new(32);
    const int64_t neg[2] = {-32, 1};
    xf_gguf_build_tensor_info(b, "neg", 0, 2, neg, 0);
    open_fails(b, "neg.gguf", "tensor neg: ne[0] = 18446744073709551584 is negative");

    b = xf_gguf_build_new(32);
    char longname[80];
    memset(longname, 'x', 70);
    longname[70] = 0;
    xf_gguf_build_tensor(b, longname, 0, 2, ne, data, sizeof data);
    open_fails(b, "longname.gguf", "tensor name of 70 bytes");

    /* a good file: values, alignment and data as written */
    b = xf_gguf_build_new(64);
    xf_gguf_build_u32(b, "general.alignment", 64);
    xf_gguf_build_str(b, "s", "hello");
    const float fv[3] = {1.5f, -2.0f, 0.25f};
    xf_gguf_build_f32_arr(b, "fa", fv, 3);
    for (int i = 0; i < 64; i++)
        data[i] = (float)i;
    const int64_t ne1[1] = {3};
    xf_gguf_build_tensor(b, "v", 0, 1, ne1, data, 12);
    xf_gguf_build_tensor(b, "m", 0, 2, ne, data, 256);
    char *p = path_in("good.gguf");
    assert_int_equal(xf_gguf_build_write(b, p), 0);
    xf_gguf_build_free(b);
    xf_gguf_file f;
    xf_error err = {0};
    if (xf_gguf_open(&f, p, &err) != 0)
        fail_msg("%s", err.msg);
    assert_int_equal(f.alignment, 64);
    assert_int_equal(f.n_tensors, 2);
    const xf_gguf_tensor *m = xf_gguf_find_tensor(&f, "m");
    assert_int_equal(m->offset, 64);
    assert_int_equal(m->data - f.map.data, (long)(f.data_offset + 64));
    assert_memory_equal(m->data, data, 256);
    xf_gguf_str s;
    assert_int_equal(xf_gguf_get_str(&f, "s", true, &s, &err), 0);
    assert_int_equal(s.len, 5);
    assert_memory_equal(s.ptr, "hello", 5);
    const xf_gguf_kv *fa;
    assert_int_equal(xf_gguf_get_array(&f, "fa", true, XF_GGUF_F32, &fa, &err), 0);
    assert_true(xf_gguf_arr_f32(fa, 2) == 0.25f);
    uint64_t u;
    assert_int_equal(xf_gguf_get_uint(&f, "s", true, 0, &u, &err), -1);
    assert_non_null(strstr(err.msg, "key s: type string, expected an integer"));
    xf_gguf_close(&f);
}

/* ---- dequantization ---- */

static void put_f16(uint8_t *p, float v)
{
    uint16_t hv = xf_f32_to_f16(v);
    p[0] = (uint8_t)hv, p[1] = (uint8_t)(hv >> 8);
}

/* Random blocks of `type` whose fp16 fields hold finite values. */
static void random_blocks(uint32_t type, uint8_t *b, int nblk, uint64_t *rs)
{
    size_t bb = xf_ref_block_bytes(type);
    for (size_t i = 0; i < bb * (size_t)nblk; i++)
        b[i] = (uint8_t)xf_test_rand_u64(rs);
    static const struct {
        uint32_t type;
        int off[2];
    } halves[] = {{2, {0, -1}},   {3, {0, 2}},   {6, {0, -1}}, {7, {0, 2}},  {8, {0, -1}},
                  {10, {80, 82}}, {11, {108, -1}}, {12, {0, 2}}, {13, {0, 2}}, {14, {208, -1}},
                  {20, {0, -1}},  {23, {0, -1}}};
    for (int blk = 0; blk < nblk; blk++) {
        uint8_t *p = b + (size_t)blk * bb;
        if (type == 0 || type == 1 || type == 30) {
            float v = xf_test_rand_normal(rs);
            if (type == 0)
                memcpy(p, &v, 4);
            else if (type == 1)
                put_f16(p, v);
            else {
                uint16_t hv = xf_f32_to_bf16(v);
                p[0] = (uint8_t)hv, p[1] = (uint8_t)(hv >> 8);
            }
            continue;
        }
        for (size_t k = 0; k < sizeof halves / sizeof halves[0]; k++)
            if (halves[k].type == type)
                for (int j = 0; j < 2; j++)
                    if (halves[k].off[j] >= 0)
                        put_f16(p + halves[k].off[j], 0.01f * xf_test_rand_normal(rs));
    }
}

static void test_dequant_all_types(void **state)
{
    (void)state;
    static const uint32_t types[] = {0, 1, 30, 2, 3, 6, 7, 8, 10, 11, 12, 13, 14, 20, 23};
    uint64_t rs = 7;
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        const uint32_t t = types[k];
        const xf_ggml_type_traits *tr = xf_ggml_traits(t);
        assert_non_null(tr);
        assert_int_equal(tr->block_size, xf_ref_block_elems(t));
        assert_int_equal(tr->type_size, xf_ref_block_bytes(t));
        const int64_t n = 4 * 256; /* whole blocks of every type */
        const int nblk = (int)(n / tr->block_size);
        uint8_t *blocks = malloc((size_t)nblk * tr->type_size);
        float *got = malloc((size_t)n * sizeof *got), *want = malloc((size_t)n * sizeof *want);
        random_blocks(t, blocks, nblk, &rs);
        xf_error err = {0};
        assert_int_equal(xf_ggml_dequant(tr, blocks, got, n, "t", &err), 0);
        xf_ref_decode(t, blocks, n, want);
        for (int64_t i = 0; i < n; i++)
            if (memcmp(&got[i], &want[i], 4) != 0 || !isfinite(got[i]))
                fail_msg("%s element %lld: %.9g, reference %.9g", tr->name, (long long)i,
                         got[i], want[i]);
        free(blocks);
        free(got);
        free(want);
    }
    xf_error err = {0};
    float y[32];
    uint8_t blk[18] = {0};
    assert_int_equal(xf_ggml_dequant(xf_ggml_traits(2), blk, y, 33, "w", &err), -1);
    assert_non_null(strstr(err.msg, "w: 33 elements is not a multiple of the q4_0 block"));
}

/* ---- models ---- */

static float *logits_of(const char *path, const int32_t *tok, int64_t T, int64_t *vocab)
{
    xf_loaded_model m;
    xf_error err = {0};
    if (xf_model_open(&m, path, &err) != 0)
        fail_msg("%s", err.msg);
    xf_runner r;
    if (xf_runner_init(&r, &m.weights, T, 0, &err) != 0)
        fail_msg("%s", err.msg);
    *vocab = m.cfg.vocab;
    float *lg = malloc((size_t)(T * m.cfg.vocab) * sizeof *lg);
    if (xf_runner_forward(&r, tok, T, lg, &err) != 0)
        fail_msg("%s", err.msg);
    xf_runner_free(&r);
    xf_model_close(&m);
    return lg;
}

static void same_logits(const char *hf, const char *gguf, uint64_t seed)
{
    const int64_t T = 12;
    int64_t v1, v2;
    int32_t *tok = xf_test_random_tokens(T, 64, seed);
    float *a = logits_of(hf, tok, T, &v1), *b = logits_of(gguf, tok, T, &v2);
    assert_int_equal(v1, v2);
    for (int64_t i = 0; i < T * v1; i++)
        if (memcmp(&a[i], &b[i], 4) != 0)
            fail_msg("%s: logit %lld: %.9g vs HF %.9g", gguf, (long long)i, b[i], a[i]);
    free(tok);
    free(a);
    free(b);
}

static void fp_case_aligned(const char *family, bool tied, bool f16, int kv_heads, uint32_t type,
                            uint32_t alignment)
{
    xf_random_model_spec s = {.family = family, .hidden = 64, .intermediate = 96, .layers = 2,
                              .heads = 4, .kv_heads = kv_heads, .vocab = 64, .max_pos = 32,
                              .tied = tied, .f16 = f16, .seed = 11};
    char dir[1024], out[1100];
    snprintf(dir, sizeof dir, "%s/%s-%d-%d-%u", tmp, family, tied, f16, alignment);
    snprintf(out, sizeof out, "%s.gguf", dir);
    char *d = xf_random_model_write(dir, &s);
    assert_non_null(d);
    xf_gguf_from_hf_opts o = {.matrix_type = type, .alignment = alignment};
    assert_int_equal(xf_gguf_from_hf(dir, out, &o), 0);
    same_logits(dir, out, 5);
    free(d);
}

static void fp_case(const char *family, bool tied, bool f16, int kv_heads, uint32_t type)
{
    fp_case_aligned(family, tied, f16, kv_heads, type, 32);
}

static void test_model_fp(void **state)
{
    (void)state;
    fp_case("llama", false, false, 2, 0); /* GQA: q and k permuted with their own heads */
    fp_case("llama", true, false, 0, 0);
    fp_case("llama", false, true, 2, 1);  /* F16 views */
    fp_case("mistral", false, false, 2, 0);
    fp_case("qwen2", true, false, 2, 0);  /* q/k/v biases, no permutation */
    fp_case("gpt2", true, false, 0, 0);   /* Conv1D transposed, position table, tied */
    fp_case("gpt2", true, true, 0, 1);
    /* general.alignment 1 (ggml allows it): tensors at odd addresses are
     * converted from aligned copies, never read through misaligned pointers */
    fp_case_aligned("llama", false, true, 2, 1, 1);
}

/* Quantized: every tensor of the GGUF model equals the tests' own
 * decoding of the blocks the tests' own encoder wrote (q/k rows moved
 * back: rows move whole, so decode(encode(x)) per row is the expectation
 * in HF order too). */
static void quant_case(const char *family, uint32_t type)
{
    xf_random_model_spec s = {.family = family, .hidden = 64, .intermediate = 96, .layers = 2,
                              .heads = 4, .kv_heads = 0, .vocab = 64, .max_pos = 32,
                              .seed = 3};
    char dir[1024], out[1100];
    snprintf(dir, sizeof dir, "%s/q%u-%s", tmp, type, family);
    snprintf(out, sizeof out, "%s.gguf", dir);
    char *d = xf_random_model_write(dir, &s);
    assert_non_null(d);
    xf_gguf_from_hf_opts o = {.matrix_type = type};
    assert_int_equal(xf_gguf_from_hf(dir, out, &o), 0);
    xf_loaded_model hf, g;
    xf_error err = {0};
    if (xf_model_open(&hf, dir, &err) != 0 || xf_model_open(&g, out, &err) != 0)
        fail_msg("%s", err.msg);
    assert_non_null(g.gguf.quantized_tensor);
    bool gpt2 = strcmp(family, "gpt2") == 0;
    int checked = 0;
    for (size_t i = 0; i < hf.tensors->n; i++) {
        const xf_tensor *t = &hf.tensors->items[i];
        const xf_tensor *u = xf_tensor_set_find(g.tensors, t->name);
        if (!u)
            continue; /* GPT-2's attn.bias buffers */
        int64_t n = xf_tensor_numel(t);
        float *x = malloc((size_t)n * sizeof *x), *want = malloc((size_t)n * sizeof *x);
        assert_int_equal(xf_tensor_to_f32(t, x, &err), 0);
        int64_t rows = t->ndim == 2 ? t->shape[0] : 1, cols = n / rows;
        bool conv1d = gpt2 && t->ndim == 2 && strstr(t->name, ".h.") != NULL;
        if (conv1d) {
            float *tr = malloc((size_t)n * sizeof *tr);
            for (int64_t r = 0; r < rows; r++)
                for (int64_t c = 0; c < cols; c++)
                    tr[c * rows + r] = x[r * cols + c];
            free(x);
            x = tr;
            int64_t sw = rows;
            rows = cols, cols = sw;
        }
        if (t->ndim == 2 && cols % 32 == 0) {
            uint8_t *blk = malloc((size_t)(n / 32) * 34);
            xf_ref_encode(type, x, n, blk);
            xf_ref_decode(type, blk, n, want);
            free(blk);
            checked++;
        } else if (t->ndim == 2) { /* the writer's F16 fallback */
            for (int64_t k = 0; k < n; k++)
                want[k] = xf_f16_to_f32(xf_f32_to_f16(x[k]));
        } else {
            memcpy(want, x, (size_t)n * sizeof *x);
        }
        float *got = malloc((size_t)n * sizeof *got);
        assert_int_equal(xf_tensor_to_f32(u, got, &err), 0);
        for (int64_t k = 0; k < n; k++)
            if (memcmp(&got[k], &want[k], 4) != 0)
                fail_msg("%s %s[%lld]: %.9g, the tests' decoding %.9g", out, t->name,
                         (long long)k, got[k], want[k]);
        free(x);
        free(want);
        free(got);
    }
    assert_true(checked >= 2 * 4); /* every linear of both layers at least */
    xf_model_close(&hf);
    xf_model_close(&g);
    free(d);
}

static void test_model_quantized(void **state)
{
    (void)state;
    quant_case("llama", 8);
    quant_case("llama", 2);
    quant_case("qwen2", 2);
    quant_case("gpt2", 8);
}

/* Model-level refusals: vocab vs embedding, architecture, unknown tensor. */
static void test_model_errors(void **state)
{
    (void)state;
    xf_error err = {0};
    /* a 15-token vocabulary for a 16-row embedding */
    xf_gguf_build *b = xf_gguf_build_new(32);
    xf_gguf_build_str(b, "general.architecture", "llama");
    xf_gguf_build_str(b, "tokenizer.ggml.model", "llama");
    const char *toks[15];
    char names[15][8];
    for (int i = 0; i < 15; i++) {
        snprintf(names[i], sizeof names[i], "t%d", i);
        toks[i] = names[i];
    }
    xf_gguf_build_str_arr(b, "tokenizer.ggml.tokens", toks, NULL, 15);
    static float emb[16 * 32];
    const int64_t ne[2] = {32, 16};
    xf_gguf_build_tensor(b, "token_embd.weight", 0, 2, ne, emb, sizeof emb);
    xf_gguf_build_u32(b, "llama.embedding_length", 32);
    xf_gguf_build_u32(b, "llama.feed_forward_length", 64);
    xf_gguf_build_u32(b, "llama.block_count", 1);
    xf_gguf_build_u32(b, "llama.attention.head_count", 4);
    xf_gguf_build_u32(b, "llama.context_length", 16);
    xf_gguf_build_f32(b, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    char *vp = path_in("vocab.gguf");
    assert_int_equal(xf_gguf_build_write(b, vp), 0);
    xf_gguf_build_free(b);
    xf_loaded_model m;
    assert_int_equal(xf_model_open(&m, vp, &err), -1);
    if (!strstr(err.msg, vp) ||
        !strstr(err.msg, "tokenizer.ggml.tokens has 15 tokens but token_embd.weight has 16 rows"))
        fail_msg("%s", err.msg);

    /* a token longer than XF_MAX_GGUF_TOKEN_BYTES (the merge search is
     * quadratic in a token's length) */
    b = xf_gguf_build_new(32);
    xf_gguf_build_str(b, "general.architecture", "llama");
    xf_gguf_build_str(b, "tokenizer.ggml.model", "llama");
    const char *toks16[16];
    char *longtok = malloc(XF_MAX_GGUF_TOKEN_BYTES + 2);
    assert_non_null(longtok);
    memset(longtok, 'a', XF_MAX_GGUF_TOKEN_BYTES + 1);
    longtok[XF_MAX_GGUF_TOKEN_BYTES + 1] = 0;
    for (int i = 0; i < 15; i++)
        toks16[i] = names[i];
    toks16[15] = longtok;
    xf_gguf_build_str_arr(b, "tokenizer.ggml.tokens", toks16, NULL, 16);
    free(longtok);
    xf_gguf_build_tensor(b, "token_embd.weight", 0, 2, ne, emb, sizeof emb);
    xf_gguf_build_u32(b, "llama.embedding_length", 32);
    xf_gguf_build_u32(b, "llama.feed_forward_length", 64);
    xf_gguf_build_u32(b, "llama.block_count", 1);
    xf_gguf_build_u32(b, "llama.attention.head_count", 4);
    xf_gguf_build_u32(b, "llama.context_length", 16);
    xf_gguf_build_f32(b, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    char *lp = path_in("longtoken.gguf");
    assert_int_equal(xf_gguf_build_write(b, lp), 0);
    xf_gguf_build_free(b);
    assert_int_equal(xf_model_open(&m, lp, &err), -1);
    if (!strstr(err.msg, lp) || !strstr(err.msg, "tokenizer.ggml.tokens: token 15 is 4097 bytes long"))
        fail_msg("%s", err.msg);

    b = xf_gguf_build_new(32);
    xf_gguf_build_str(b, "general.architecture", "falcon");
    xf_gguf_build_tensor(b, "token_embd.weight", 0, 2, ne, emb, sizeof emb);
    char *ap = path_in("arch.gguf");
    assert_int_equal(xf_gguf_build_write(b, ap), 0);
    xf_gguf_build_free(b);
    assert_int_equal(xf_model_open(&m, ap, &err), -1);
    assert_non_null(strstr(err.msg, "general.architecture \"falcon\" is not supported"));

    /* a missing required hyper-parameter names the key */
    b = xf_gguf_build_new(32);
    xf_gguf_build_str(b, "general.architecture", "llama");
    xf_gguf_build_tensor(b, "token_embd.weight", 0, 2, ne, emb, sizeof emb);
    char *kp = path_in("key.gguf");
    assert_int_equal(xf_gguf_build_write(b, kp), 0);
    xf_gguf_build_free(b);
    assert_int_equal(xf_model_open(&m, kp, &err), -1);
    assert_non_null(strstr(err.msg, "missing key llama.embedding_length"));
}

/* The CLI: info lists GGML types; rtn takes an fp GGUF, refuses a
 * quantized one. */
static void test_cli(void **state)
{
    (void)state;
    xf_random_model_spec s = {.family = "llama", .hidden = 64, .intermediate = 96, .layers = 1,
                              .heads = 4, .vocab = 64, .max_pos = 32, .seed = 9};
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/cli", tmp);
    free(xf_random_model_write(dir, &s));
    char *f32 = strdup(path_in("cli-f32.gguf")), *q8 = strdup(path_in("cli-q8.gguf"));
    xf_gguf_from_hf_opts o = {.matrix_type = 0};
    assert_int_equal(xf_gguf_from_hf(dir, f32, &o), 0);
    o.matrix_type = 8;
    assert_int_equal(xf_gguf_from_hf(dir, q8, &o), 0);

    char pa0[1100];
    xf_cli_result r = xf_cli_run(tmp, "info %s", q8);
    assert_int_equal(r.code, 0);
    if (!strstr(r.out, "blk.0.attn_q.weight") || !strstr(r.out, "q8_0") ||
        !strstr(r.out, "8.500"))
        fail_msg("info output: %s", r.out);
    xf_cli_result_free(&r);

    r = xf_cli_run(tmp, "info %s --json", q8);
    assert_int_equal(r.code, 0);
    json_t *j = json_loads(r.out, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "format")), "gguf");
    json_decref(j);
    xf_cli_result_free(&r);

    /* a broken file: exit 1, one line naming the file and the field, nothing written */
    char *broken = strdup(path_in("broken.gguf"));
    xf_gguf_build *bb = xf_gguf_build_new(32);
    const int64_t ne5[5] = {32, 1, 1, 1, 1};
    xf_gguf_build_tensor_info(bb, "t", 0, 5, ne5, 0);
    assert_int_equal(xf_gguf_build_write(bb, broken), 0);
    xf_gguf_build_free(bb);
    const char *cmds[] = {"info %s", "ppl %s --text %s/none.txt", "rtn %s %s/broken.xfq --bits 4"};
    for (int k = 0; k < 3; k++) {
        char cmd[3000];
        snprintf(cmd, sizeof cmd, cmds[k], broken, tmp);
        r = xf_cli_run(tmp, "%s", cmd);
        assert_int_equal(r.code, 1);
        if (!strstr(r.err, broken) || !strstr(r.err, "tensor t: n_dims = 5") ||
            xf_cli_count_lines(r.err) != 1)
            fail_msg("%s: %s", cmd, r.err);
        xf_cli_result_free(&r);
    }
    snprintf(pa0, sizeof pa0, "%s/broken.xfq", tmp);
    assert_false(access(pa0, F_OK) == 0);
    free(broken);

    r = xf_cli_run(tmp, "rtn %s %s/out.xfq --bits 4", q8, tmp);
    assert_int_equal(r.code, 1);
    if (!strstr(r.err, "is a quantized GGUF (tensor") || !strstr(r.err, "q8_0"))
        fail_msg("rtn on a quantized GGUF: %s", r.err);
    xf_cli_result_free(&r);

    r = xf_cli_run(tmp, "rtn %s %s/out.xfq --bits 4", f32, tmp);
    if (r.code != 0)
        fail_msg("rtn on an F32 GGUF: %s", r.err);
    xf_cli_result_free(&r);
    r = xf_cli_run(tmp, "rtn %s %s/ref.xfq --bits 4", dir, tmp);
    assert_int_equal(r.code, 0);
    xf_cli_result_free(&r);
    /* same quantized weights from the GGUF and from the HF directory */
    xf_loaded_model a, b;
    xf_error err = {0};
    char pa[1100], pb[1100];
    snprintf(pa, sizeof pa, "%s/out.xfq", tmp);
    snprintf(pb, sizeof pb, "%s/ref.xfq", tmp);
    if (xf_model_open(&a, pa, &err) || xf_model_open(&b, pb, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(a.tensors->n, b.tensors->n);
    for (size_t i = 0; i < a.tensors->n; i++) {
        const xf_tensor *x = &a.tensors->items[i], *y = &b.tensors->items[i];
        assert_string_equal(x->name, y->name);
        assert_int_equal(x->nbytes, y->nbytes);
        assert_memory_equal(x->data, y->data, x->nbytes);
    }
    xf_model_close(&a);
    xf_model_close(&b);
    free(f32);
    free(q8);
}

/* ---- tokenizer ---- */

static void tokenizer_case(const char *model, const char *text_rel)
{
    char rel[256];
    snprintf(rel, sizeof rel, "models/%s", model);
    XF_TEST_REQUIRE_SHARED(dir_s, rel);
    char *dir = strdup(dir_s);
    XF_TEST_REQUIRE_SHARED(text_path, text_rel);
    char *out = strdup(path_in("tok.gguf"));
    xf_gguf_from_hf_opts o = {.matrix_type = 1, .tokenizer = true};
    assert_int_equal(xf_gguf_from_hf(dir, out, &o), 0);
    xf_loaded_model hf, g;
    xf_error err = {0};
    if (xf_model_open(&hf, dir, &err) || xf_model_open(&g, out, &err))
        fail_msg("%s", err.msg);
    xf_tokenizer *a = xf_tokenizer_load(hf.tokenizer_json, hf.tokenizer_config_json, dir, &err);
    xf_tokenizer *b = xf_tokenizer_load(g.tokenizer_json, g.tokenizer_config_json, out, &err);
    if (!a || !b)
        fail_msg("%s", err.msg);
    char *text;
    size_t len;
    assert_int_equal(xf_read_file(text_path, &text, &len, &err), 0);
    len = len > 300000 ? 300000 : len; /* a few seconds under the sanitizers */
    while (len > 0 && ((unsigned char)text[len] & 0xC0) == 0x80)
        len--; /* whole characters */
    len = xf_text_universal_newlines(text, len);
    int32_t *ia, *ib;
    size_t na, nb;
    assert_int_equal(xf_tokenizer_encode(a, text, len, true, &ia, &na, &err), 0);
    assert_int_equal(xf_tokenizer_encode(b, text, len, true, &ib, &nb, &err), 0);
    print_message("%s: %zu tokens from tokenizer.json, %zu from GGUF\n", model, na, nb);
    for (size_t i = 0; i < na && i < nb; i++)
        if (ia[i] != ib[i])
            fail_msg("%s: token %zu: GGUF %d, tokenizer.json %d", model, i, ib[i], ia[i]);
    assert_int_equal(na, nb);
    assert_true(na > 1000);
    char *back;
    assert_int_equal(xf_tokenizer_decode(b, ib + 1, nb - 1, false, &back, NULL, &err), 0);
    assert_memory_equal(back, text, len); /* decode(encode(x)) == x through the GGUF vocab */
    free(back);
    free(ia);
    free(ib);
    free(text);
    xf_tokenizer_free(a);
    xf_tokenizer_free(b);
    xf_model_close(&hf);
    xf_model_close(&g);
    free(out);
    free(dir);
}

static void test_tokenizer_stories(void **state)
{
    (void)state;
    tokenizer_case("stories260K", "data/tinystories/eval.txt");
}

static void test_tokenizer_novels(void **state)
{
    (void)state;
    tokenizer_case("novels-5m", "data/novels/eval.txt");
}

/* A byte-level ("gpt2") vocabulary: the 256 byte symbols of GPT-2's
 * byte-to-unicode map plus three merges. The GGUF tokenizer must equal a
 * hand-written tokenizer.json of the same BPE for each tokenizer.ggml.pre. */
static size_t byte_symbol(int b, char *out)
{
    int cp = b;
    if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))) {
        int n = 0;
        for (int k = 0; k < b; k++)
            if (!((k >= 33 && k <= 126) || (k >= 161 && k <= 172) || (k >= 174 && k <= 255)))
                n++;
        cp = 256 + n;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
}

static void bpe_case(const char *pre, json_t *pretok, json_t *norm)
{
    static char store[259][8];
    const char *toks[259];
    json_t *vocab = json_object();
    for (int b = 0; b < 256; b++) {
        size_t n = byte_symbol(b, store[b]);
        store[b][n] = 0;
        toks[b] = store[b];
        json_object_set_new(vocab, store[b], json_integer(b));
    }
    const char *extra[3] = {"\xc4\xa0t", "he", "\xc4\xa0the"}; /* Ġt, he, Ġthe */
    const char *merges[3] = {"\xc4\xa0 t", "h e", "\xc4\xa0t he"};
    for (int i = 0; i < 3; i++) {
        toks[256 + i] = extra[i];
        json_object_set_new(vocab, extra[i], json_integer(256 + i));
    }
    json_t *mj = json_array();
    for (int i = 0; i < 3; i++)
        json_array_append_new(mj, json_string(merges[i]));
    json_t *hf = json_pack("{s:{s:s, s:o, s:o}, s:o, s:o, s:{s:s}}", "model", "type", "BPE", "vocab",
                           vocab, "merges", mj, "normalizer", norm,
                           "pre_tokenizer", pretok, "decoder", "type",
                           "ByteLevel");
    assert_non_null(hf);

    xf_gguf_build *b = xf_gguf_build_new(32);
    xf_gguf_build_str(b, "general.architecture", "gpt2");
    xf_gguf_build_u32(b, "gpt2.embedding_length", 32);
    xf_gguf_build_u32(b, "gpt2.block_count", 1);
    xf_gguf_build_u32(b, "gpt2.attention.head_count", 4);
    xf_gguf_build_u32(b, "gpt2.context_length", 16);
    xf_gguf_build_f32(b, "gpt2.attention.layer_norm_epsilon", 1e-5f);
    xf_gguf_build_str(b, "tokenizer.ggml.model", "gpt2");
    xf_gguf_build_str(b, "tokenizer.ggml.pre", pre);
    xf_gguf_build_str_arr(b, "tokenizer.ggml.tokens", toks, NULL, 259);
    xf_gguf_build_str_arr(b, "tokenizer.ggml.merges", merges, NULL, 3);
    static float emb[259 * 32];
    const int64_t ne[2] = {32, 259};
    xf_gguf_build_tensor(b, "token_embd.weight", 0, 2, ne, emb, sizeof emb);
    char *p = path_in("bpe.gguf");
    assert_int_equal(xf_gguf_build_write(b, p), 0);
    xf_gguf_build_free(b);
    xf_gguf_file f;
    xf_error err = {0};
    json_t *tj, *tc;
    if (xf_gguf_open(&f, p, &err) != 0 || xf_gguf_tokenizer_json(&f, 259, &tj, &tc, &err) != 0)
        fail_msg("%s", err.msg);
    xf_tokenizer *a = xf_tokenizer_load(hf, NULL, "hand-written", &err);
    xf_tokenizer *g = xf_tokenizer_load(tj, tc, p, &err);
    if (!a || !g)
        fail_msg("%s", err.msg);
    const char text[] = "the cat said: the end, then 42 Caf\xc3\xa9s!\n\n  the";
    int32_t *ia, *ib;
    size_t na, nb;
    assert_int_equal(xf_tokenizer_encode(a, text, sizeof text - 1, false, &ia, &na, &err), 0);
    assert_int_equal(xf_tokenizer_encode(g, text, sizeof text - 1, false, &ib, &nb, &err), 0);
    assert_int_equal(na, nb);
    assert_memory_equal(ia, ib, na * sizeof *ia);
    int thes = 0;
    for (size_t i = 0; i < nb; i++)
        thes += ib[i] == 258; /* " the" merged */
    assert_int_equal(thes, 3); /* " the end", " then", the last " the" */
    free(ia);
    free(ib);
    xf_tokenizer_free(a);
    xf_tokenizer_free(g);
    json_decref(tj);
    json_decref(tc);
    json_decref(hf);
    xf_gguf_close(&f);
}

static void test_tokenizer_bpe(void **state)
{
    (void)state;
    /* as in GPT-2's and Qwen2's tokenizer.json files */
    bpe_case("gpt-2",
             json_pack("{s:s, s:b, s:b}", "type", "ByteLevel", "add_prefix_space", 0,
                       "use_regex", 1),
             json_null());
    static const char qwen2_rx[] =
        "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+"
        "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    bpe_case("qwen2",
             json_pack("{s:s, s:[{s:s, s:{s:s}, s:s, s:b}, {s:s, s:b, s:b}]}", "type", "Sequence",
                       "pretokenizers", "type", "Split", "pattern", "Regex", qwen2_rx, "behavior",
                       "Isolated", "invert", 0, "type", "ByteLevel", "add_prefix_space", 0,
                       "use_regex", 0),
             json_pack("{s:s}", "type", "NFC"));
    /* an unknown pre-tokenizer is refused by name */
    xf_gguf_build *b = xf_gguf_build_new(32);
    const char *t1[1] = {"a"};
    xf_gguf_build_str(b, "tokenizer.ggml.model", "gpt2");
    xf_gguf_build_str(b, "tokenizer.ggml.pre", "deepseek-coder");
    xf_gguf_build_str_arr(b, "tokenizer.ggml.tokens", t1, NULL, 1);
    xf_gguf_build_str_arr(b, "tokenizer.ggml.merges", t1, NULL, 0);
    char *p = path_in("pre.gguf");
    assert_int_equal(xf_gguf_build_write(b, p), 0);
    xf_gguf_build_free(b);
    xf_gguf_file f;
    xf_error err = {0};
    json_t *tj, *tc;
    assert_int_equal(xf_gguf_open(&f, p, &err), 0);
    assert_int_equal(xf_gguf_tokenizer_json(&f, 1, &tj, &tc, &err), -1);
    assert_non_null(strstr(err.msg, "tokenizer.ggml.pre \"deepseek-coder\" is not supported"));
    xf_gguf_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_header_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kv_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tensor_errors, setup, teardown),
        cmocka_unit_test(test_dequant_all_types),
        cmocka_unit_test_setup_teardown(test_model_fp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_model_quantized, setup, teardown),
        cmocka_unit_test_setup_teardown(test_model_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tokenizer_stories, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tokenizer_novels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tokenizer_bpe, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
