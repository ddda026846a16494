/* .xfq tensors holding raw GGML blocks (storage 64 + ggml type id,
 * docs/xfq-format.md "GGML blocks"): the container round trip for every
 * block type (bytes kept, storage ids as documented read from the raw
 * table, fp32 values equal to ggml's conversion and to the element-wise
 * reference decoder of tests/support/ggml_ref.c), bits per weight, the
 * writer's and the reader's refusals; then a random llama model whose
 * q/k/v/o are GGML blocks written through pipeline/xfq_out.c: the loader gives
 * the dequantized values, `info` names the types, `rtn` re-quantizes from
 * the dequantized values, `export --to gguf` copies the blocks byte for
 * byte (llama's Q/K rows interleaved per head, read back with
 * formats/gguf.h) and `--to gptq|compressed-tensors` refuse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <jansson.h>

#include "core/read_file.h"
#include "formats/ggml_dequant.h"
#include "formats/gguf.h"
#include "formats/xfq.h"
#include "formats/xfq_check.h"
#include "model/forward.h"
#include "model/loader.h"
#include "pipeline/xfq_out.h"
#include "tests/support/cli_run.h"
#include "tests/support/ggml_blocks.h"
#include "tests/support/ggml_ref.h"
#include "tests/support/random_model.h"
#include "tests/support/random_tokenizer.h"
#include "tests/support/test_util.h"

static const uint32_t k_types[] = {XF_GGML_Q4_0, XF_GGML_Q4_1,  XF_GGML_Q5_0,  XF_GGML_Q5_1,
                                   XF_GGML_Q8_0, XF_GGML_Q2_K,  XF_GGML_Q3_K,  XF_GGML_Q4_K,
                                   XF_GGML_Q5_K, XF_GGML_Q6_K,  XF_GGML_IQ4_NL, XF_GGML_IQ4_XS};
#define N_TYPES (sizeof k_types / sizeof k_types[0])

/* A GGML tensor [rows, cols] of random blocks (owned bytes in t->data). */
static xf_tensor make_ggml(const char *name, uint32_t type, int64_t rows, int64_t cols,
                           uint64_t *rng)
{
    const xf_ggml_type_traits *tt = xf_ggml_traits(type);
    assert_non_null(tt);
    const size_t rb = xf_ggml_row_bytes(tt, cols);
    assert_true(rb > 0);
    uint8_t *buf = malloc(rb * (size_t)rows);
    assert_non_null(buf);
    xf_test_ggml_random_blocks(type, rows * (cols / tt->block_size), rng, buf);
    xf_tensor t = {.name = name, .dtype = XF_DTYPE_GGML, .ggml_type = type, .ndim = 2,
                   .shape = {rows, cols}, .data = buf, .nbytes = rb * (size_t)rows};
    return t;
}

static void expect_one_line(const char *msg, const char *s1, const char *s2)
{
    if (!strstr(msg, s1) || (s2 && !strstr(msg, s2)))
        fail_msg("expected \"%s\" / \"%s\" in: %s", s1, s2 ? s2 : "", msg);
    const char *nl = strchr(msg, '\n'); /* a CLI's stderr ends with one */
    assert_true(!nl || nl[1] == '\0');
}

/* ---- the container ----------------------------------------------------- */

/* Storage id of the record named `name`, read from the raw table with the
 * offsets docs/xfq-format.md gives (header: table_offset at 32, n_tensors at
 * 40; record: name_offset 0, name_len 4, storage 8), not through xfq_open. */
static uint32_t raw_storage(const uint8_t *b, size_t n, const char *name)
{
    uint64_t table;
    uint32_t count;
    assert_true(n >= 64);
    memcpy(&table, b + 32, 8);
    memcpy(&count, b + 40, 4);
    const uint8_t *pool = b + table + (size_t)count * 80;
    for (uint32_t i = 0; i < count; i++) {
        uint32_t off, len, storage;
        memcpy(&off, b + table + i * 80, 4);
        memcpy(&len, b + table + i * 80 + 4, 4);
        memcpy(&storage, b + table + i * 80 + 8, 4);
        if (len == strlen(name) && !memcmp(pool + off, name, len))
            return storage;
    }
    fail_msg("record %s not found", name);
    return 0;
}

static void test_round_trip_all_types(void **state)
{
    (void)state;
    char *dir = xf_test_tmpdir();
    uint64_t rng = 11;
    char names[N_TYPES][32];
    xf_tensor ts[N_TYPES + 1];
    for (size_t k = 0; k < N_TYPES; k++) {
        const xf_ggml_type_traits *tt = xf_ggml_traits(k_types[k]);
        snprintf(names[k], sizeof names[k], "w.%s", tt->name);
        ts[k] = make_ggml(names[k], k_types[k], 3, 2 * tt->block_size, &rng);
    }
    float plain[4] = {1, 2, 3, 4};
    ts[N_TYPES] = (xf_tensor){.name = "norm", .dtype = XF_DTYPE_F32, .ndim = 1, .shape = {4},
                              .data = plain, .nbytes = sizeof plain};
    char path[4096];
    snprintf(path, sizeof path, "%s/g.xfq", dir);
    json_t *meta = json_object();
    xf_error err = {0};
    if (xfq_write(path, meta, ts, N_TYPES + 1, &err) != 0)
        fail_msg("%s", err.msg);

    size_t fsize;
    uint8_t *raw = NULL;
    assert_int_equal(xf_read_file(path, (char **)&raw, &fsize, &err), 0);
    xfq_file f;
    if (xfq_open(&f, path, 0, &err) != 0)
        fail_msg("%s", err.msg);
    for (size_t k = 0; k < N_TYPES; k++) {
        const xf_ggml_type_traits *tt = xf_ggml_traits(k_types[k]);
        assert_int_equal(raw_storage(raw, fsize, names[k]), 64 + k_types[k]);
        const xf_tensor *t = xf_tensor_set_find(&f.tensors, names[k]);
        assert_non_null(t);
        assert_int_equal(t->dtype, XF_DTYPE_GGML);
        assert_int_equal(t->ggml_type, k_types[k]);
        assert_int_equal(t->ndim, 2);
        assert_int_equal(t->shape[0], 3);
        assert_int_equal(t->shape[1], 2 * tt->block_size);
        assert_int_equal(t->nbytes, ts[k].nbytes);
        assert_memory_equal(t->data, ts[k].data, ts[k].nbytes);
        char want[32];
        snprintf(want, sizeof want, "GGML %s", tt->name);
        assert_string_equal(xf_tensor_type_name(t), want);

        const int64_t n = 3 * 2 * tt->block_size;
        float *got = malloc((size_t)n * sizeof *got), *ggml = malloc((size_t)n * sizeof *ggml),
              *ref = malloc((size_t)n * sizeof *ref), row[512];
        assert_int_equal(xf_tensor_to_f32(t, got, &err), 0);
        assert_int_equal(xf_ggml_dequant(tt, ts[k].data, ggml, n, "w", &err), 0);
        xf_ref_decode(k_types[k], ts[k].data, n, ref);
        assert_memory_equal(got, ggml, (size_t)n * sizeof *got);
        for (int64_t i = 0; i < n; i++)
            if (got[i] != ref[i])
                fail_msg("%s element %lld: %g, reference decoder %g", names[k], (long long)i,
                         (double)got[i], (double)ref[i]);
        bool nonzero = false;
        for (int64_t i = 0; i < n; i++)
            nonzero |= got[i] != 0.0f;
        assert_true(nonzero);
        assert_int_equal(xf_tensor_row_to_f32(t, 2, row, &err), 0);
        assert_memory_equal(row, got + 2 * 2 * tt->block_size,
                            (size_t)(2 * tt->block_size) * sizeof *row);
        free(got);
        free(ggml);
        free(ref);
    }
    xfq_close(&f);
    /* same input, same bytes */
    char path2[4096];
    snprintf(path2, sizeof path2, "%s/g2.xfq", dir);
    assert_int_equal(xfq_write(path2, meta, ts, N_TYPES + 1, &err), 0);
    assert_true(xf_test_files_equal(path, path2));
    free(raw);
    json_decref(meta);
    for (size_t k = 0; k < N_TYPES; k++)
        free((void *)ts[k].data);
    xf_test_rmtree(dir);
    free(dir);
}

static void test_bits_per_weight(void **state)
{
    (void)state;
    uint64_t rng = 5;
    xf_tensor ts[3] = {make_ggml("a", XF_GGML_Q4_K, 4, 512, &rng),
                       make_ggml("b", XF_GGML_Q6_K, 2, 256, &rng)};
    float plain[2 * 256] = {0};
    ts[2] = (xf_tensor){.name = "c", .dtype = XF_DTYPE_F32, .ndim = 2, .shape = {2, 256},
                        .data = plain, .nbytes = sizeof plain};
    xf_tensor_set s;
    xf_error err = {0};
    assert_int_equal(xf_tensor_set_init(&s, ts, 1, "t", &err), 0);
    assert_true(xfq_packed_bits_per_weight(&s) == 4.5);
    assert_true(xfq_all_bits_per_weight(&s) == 4.5);
    xf_tensor_set_free(&s);
    assert_int_equal(xf_tensor_set_init(&s, ts, 3, "t", &err), 0);
    /* bytes: 4 * 2 * 144 + 2 * 210 = 1572 over 2560 weights; all: + 2048 over + 512 */
    assert_true(xfq_packed_bits_per_weight(&s) == 8.0 * 1572 / 2560);
    assert_true(xfq_all_bits_per_weight(&s) == 8.0 * (1572 + 2048) / 3072);
    xf_tensor_set_free(&s);
    free((void *)ts[0].data);
    free((void *)ts[1].data);
}

/* xfq_write refuses t (alone in a file) with a one-line message and leaves
 * the directory empty. */
static void expect_write_refused(const xf_tensor *t, const char *s1, const char *s2)
{
    char *dir = xf_test_tmpdir();
    char path[4096];
    snprintf(path, sizeof path, "%s/bad.xfq", dir);
    json_t *meta = json_object();
    xf_error err = {0};
    assert_int_equal(xfq_write(path, meta, t, 1, &err), -1);
    expect_one_line(err.msg, s1, s2);
    assert_int_equal(xf_test_dir_entries(dir), 0);
    json_decref(meta);
    xf_test_rmtree(dir);
    free(dir);
}

static void test_write_refusals(void **state)
{
    (void)state;
    uint64_t rng = 7;
    xf_tensor g = make_ggml("blk.w", XF_GGML_Q4_K, 2, 512, &rng);
    uint8_t *b = (uint8_t *)g.data;
    const size_t d = xf_test_ggml_d_offset(XF_GGML_Q4_K);

    /* NaN d in the second row's last block; Inf dmin in the first block */
    xf_tensor t = g;
    uint8_t *nan = malloc(g.nbytes);
    memcpy(nan, b, g.nbytes);
    const uint16_t h_nan = 0x7e00, h_inf = 0x7c00;
    memcpy(nan + g.nbytes - 144 + d, &h_nan, 2);
    t.data = nan;
    expect_write_refused(&t, "tensor blk.w: GGML q4_K element [1, 256]", "NaN or Inf");
    memcpy(nan, b, g.nbytes);
    memcpy(nan + offsetof(xf_block_q4_k, dmin), &h_inf, 2);
    expect_write_refused(&t, "tensor blk.w: GGML q4_K element [0, ", "NaN or Inf");
    free(nan);

    t = g, t.nbytes -= 144;
    expect_write_refused(&t, "tensor blk.w: nbytes 432", "implies 576");
    t = g, t.shape[1] = 500;
    expect_write_refused(&t, "tensor blk.w: GGML q4_K shape [2, 500]", "block size 256");
    t = g, t.ndim = 3, t.shape[2] = 1;
    expect_write_refused(&t, "tensor blk.w: GGML q4_K tensor must have 2 dimensions", NULL);
    t = g, t.ggml_type = 16;
    expect_write_refused(&t, "tensor blk.w: GGML type 16 (iq2_xxs) cannot be stored", NULL);
    t = g, t.ggml_type = XF_GGML_F16; /* plain types have storage ids of their own */
    expect_write_refused(&t, "tensor blk.w: GGML type 1 (f16) cannot be stored", NULL);
    t = g, t.data = NULL;
    expect_write_refused(&t, "tensor blk.w: no data", NULL);
    free(b);
}

/* ---- the reader's refusals: records patched in a good file ----------- */

typedef void (*rec_patch)(uint8_t *rec); /* an 80-byte record */

static void put_u32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put_u64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static void p_nbytes(uint8_t *r) { put_u64(r + 64, get_u64(r + 64) - 144); }
static void p_cols(uint8_t *r) { put_u64(r + 24, 500); }
static void p_iq2(uint8_t *r) { put_u32(r + 8, 64 + 16); }
static void p_f16(uint8_t *r) { put_u32(r + 8, 64 + 1); }
static void p_ndim3(uint8_t *r) { put_u32(r + 12, 3), put_u64(r + 32, 1); }
static void p_flags(uint8_t *r) { put_u32(r + 52, 1); }
static void p_group(uint8_t *r) { put_u32(r + 48, 32); }
static void p_type_q6(uint8_t *r) { put_u32(r + 8, 64 + XF_GGML_Q6_K); } /* 2 x 256 q6_K: 420 */

static void test_read_refusals(void **state)
{
    (void)state;
    char *dir = xf_test_tmpdir();
    uint64_t rng = 9;
    xf_tensor g = make_ggml("w", XF_GGML_Q4_K, 4, 256, &rng);
    char path[4096], bad[4096];
    snprintf(path, sizeof path, "%s/g.xfq", dir);
    snprintf(bad, sizeof bad, "%s/bad.xfq", dir);
    json_t *meta = json_object();
    xf_error err = {0};
    assert_int_equal(xfq_write(path, meta, &g, 1, &err), 0);
    size_t n;
    uint8_t *good = NULL;
    assert_int_equal(xf_read_file(path, (char **)&good, &n, &err), 0);
    const struct {
        rec_patch fn;
        const char *s1, *s2;
    } cases[] = {
        {p_nbytes, "tensor w: nbytes 432, but GGML q4_K shape [4, 256] implies 576", NULL},
        {p_cols, "tensor w: GGML q4_K shape [4, 500]", "multiple of the block size 256"},
        {p_iq2, "tensor w: storage type 80 is GGML type 16 (iq2_xxs)", "does not store"},
        {p_f16, "tensor w: storage type 65 is GGML type 1 (f16)", "does not store"},
        {p_ndim3, "tensor w: GGML q4_K tensor must have 2 dimensions, has 3", NULL},
        {p_flags, "tensor w: GGML q4_K tensor with group size 0 / flags 0x1", "must be 0"},
        {p_group, "tensor w: GGML q4_K tensor with group size 32", "must be 0"},
        {p_type_q6, "tensor w: nbytes 576, but GGML q6_K shape [4, 256] implies 840", NULL},
    };
    uint64_t table;
    uint32_t count;
    memcpy(&table, good + 32, 8);
    memcpy(&count, good + 40, 4);
    assert_int_equal(count, 1);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        uint8_t *a = malloc(n);
        memcpy(a, good, n);
        cases[c].fn(a + table);
        /* the header CRC covers metadata, table and names (docs/xfq-format.md) */
        uint64_t meta_off = get_u64(a + 16), meta_size = get_u64(a + 24);
        uint32_t names;
        memcpy(&names, a + 44, 4);
        uint32_t crc = xfq_crc32(0, a + meta_off, meta_size);
        crc = xfq_crc32(crc, a + table, 80u * count + names);
        put_u32(a + 56, crc);
        FILE *fp = fopen(bad, "wb");
        assert_non_null(fp);
        assert_int_equal(fwrite(a, 1, n, fp), n);
        fclose(fp);
        free(a);
        xfq_file f;
        if (xfq_open(&f, bad, 0, &err) == 0)
            fail_msg("case %zu: patched record accepted", c);
        expect_one_line(err.msg, cases[c].s1, cases[c].s2);
        assert_non_null(strstr(err.msg, bad));
    }
    free(good);
    free((void *)g.data);
    json_decref(meta);
    xf_test_rmtree(dir);
    free(dir);
}

/* ---- a model with GGML q/k/v/o ----------------------------------------- */

enum { HID = 256, HEADS = 4, KV = 2, HD = 64, INTER = 256, VOCAB = 300 };

static const struct {
    const char *name;
    uint32_t type;
    int64_t rows;
    const char *gguf;
    int64_t rope_heads; /* llama Q/K rows interleaved per head in GGUF */
} k_lin[] = {
    {"model.layers.0.self_attn.q_proj.weight", XF_GGML_Q4_K, HEADS * HD, "blk.0.attn_q.weight",
     HEADS},
    {"model.layers.0.self_attn.k_proj.weight", XF_GGML_Q6_K, KV * HD, "blk.0.attn_k.weight", KV},
    {"model.layers.0.self_attn.v_proj.weight", XF_GGML_Q5_0, KV * HD, "blk.0.attn_v.weight", 0},
    {"model.layers.0.self_attn.o_proj.weight", XF_GGML_IQ4_XS, HID, "blk.0.attn_output.weight",
     0},
};
#define N_LIN 4

/* The LM head is GGML blocks too (Q8_0) in the GGML file; tensors that
 * `rtn` does not quantize are copied, blocks included (pipeline/xfq_out.c). */
#define HEAD "lm_head.weight"

typedef struct fixture {
    char *tmp, *model, *ggml_xfq, *f32_xfq;
    uint8_t *blocks[N_LIN]; /* what the .xfq holds */
    size_t nbytes[N_LIN];
    float *values[N_LIN];   /* their dequantization (xf_ggml_dequant) */
    uint8_t *head;          /* the head's q8_0 blocks, [VOCAB, HID] */
    size_t head_bytes;
} fixture;

/* Writes m's .xfq with the four linears (and the head, if n is N_LIN + 1)
 * replaced by `items` (taken). */
static void write_with(const xf_loaded_model *m, xf_qweight_packed *items, size_t n,
                       const char *out)
{
    xf_quant_collector c;
    xf_quant_collector_init(&c);
    c.items = items;
    c.n = c.cap = n;
    json_t *recipe = json_pack("{s:s}", "method", "test"), *prov = json_object();
    xf_error err = {0};
    if (xf_quant_write_xfq(m, &c, recipe, prov, out, &err) != 0)
        fail_msg("%s", err.msg);
    json_decref(recipe);
    json_decref(prov);
    xf_quant_collector_free(&c);
}

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    fx->tmp = xf_test_tmpdir();
    char d[4096];
    snprintf(d, sizeof d, "%s/model", fx->tmp);
    xf_random_model_spec s = {.family = "llama", .hidden = HID, .intermediate = INTER,
                              .layers = 1, .heads = HEADS, .kv_heads = KV, .vocab = VOCAB,
                              .max_pos = 32, .seed = 3};
    fx->model = xf_random_model_write(d, &s);
    assert_non_null(fx->model);
    assert_int_equal(xf_random_tokenizer_write(fx->model, false), 0);
    assert_int_equal(asprintf(&fx->ggml_xfq, "%s/ggml.xfq", fx->tmp) > 0, 1);
    assert_int_equal(asprintf(&fx->f32_xfq, "%s/f32.xfq", fx->tmp) > 0, 1);

    xf_loaded_model m;
    xf_error err = {0};
    if (xf_model_open(&m, fx->model, &err) != 0)
        fail_msg("%s", err.msg);
    uint64_t rng = 21;
    xf_qweight_packed *g = calloc(N_LIN + 1, sizeof *g), *f = calloc(N_LIN, sizeof *f);
    for (int k = 0; k < N_LIN; k++) {
        xf_tensor t = make_ggml(k_lin[k].name, k_lin[k].type, k_lin[k].rows, HID, &rng);
        fx->blocks[k] = malloc(t.nbytes);
        memcpy(fx->blocks[k], t.data, t.nbytes);
        fx->nbytes[k] = t.nbytes;
        const int64_t n = k_lin[k].rows * HID;
        fx->values[k] = malloc((size_t)n * sizeof(float));
        assert_int_equal(xf_ggml_dequant(xf_ggml_traits(k_lin[k].type), t.data, fx->values[k],
                                         n, "w", &err), 0);
        /* the item as the quantizer hands it over (quant/weights/qweight.h) */
        g[k].buf = (uint8_t *)t.data;
        g[k].name = strdup(k_lin[k].name);
        g[k].tensor = t;
        g[k].tensor.name = g[k].name;
        /* the same values as F32: the reference for re-quantization */
        f[k].buf = malloc((size_t)n * sizeof(float));
        memcpy(f[k].buf, fx->values[k], (size_t)n * sizeof(float));
        f[k].name = strdup(k_lin[k].name);
        f[k].tensor = (xf_tensor){.name = f[k].name, .dtype = XF_DTYPE_F32, .ndim = 2,
                                  .shape = {k_lin[k].rows, HID}, .data = f[k].buf,
                                  .nbytes = (size_t)n * sizeof(float)};
    }
    xf_tensor h = make_ggml(HEAD, XF_GGML_Q8_0, VOCAB, HID, &rng);
    fx->head = malloc(h.nbytes);
    memcpy(fx->head, h.data, h.nbytes);
    fx->head_bytes = h.nbytes;
    g[N_LIN].buf = (uint8_t *)h.data;
    g[N_LIN].name = strdup(HEAD);
    g[N_LIN].tensor = h;
    g[N_LIN].tensor.name = g[N_LIN].name;
    write_with(&m, g, N_LIN + 1, fx->ggml_xfq);
    write_with(&m, f, N_LIN, fx->f32_xfq);
    xf_model_close(&m);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    for (int k = 0; k < N_LIN; k++) {
        free(fx->blocks[k]);
        free(fx->values[k]);
    }
    free(fx->head);
    xf_test_rmtree(fx->tmp);
    free(fx->tmp);
    free(fx->model);
    free(fx->ggml_xfq);
    free(fx->f32_xfq);
    free(fx);
    return 0;
}

static void test_model_load(void **state)
{
    fixture *fx = *state;
    xf_loaded_model m;
    xf_error err = {0};
    if (xf_model_open(&m, fx->ggml_xfq, &err) != 0)
        fail_msg("%s", err.msg);
    xf_dense_layer dl;
    if (xf_dense_layer_init(&dl, &m.weights, 0, &err) != 0)
        fail_msg("%s", err.msg);
    for (int k = 0; k < N_LIN; k++) {
        const xf_linear *lin = &m.weights.layers[0].lin[XF_LIN_Q + k];
        assert_int_equal(lin->w->dtype, XF_DTYPE_GGML);
        assert_int_equal(lin->w->ggml_type, k_lin[k].type);
        assert_false(lin->transposed);
        assert_memory_equal(lin->w->data, fx->blocks[k], fx->nbytes[k]);
        assert_memory_equal(dl.w[XF_LIN_Q + k], fx->values[k],
                            (size_t)k_lin[k].rows * HID * sizeof(float));
    }
    xf_dense_layer_free(&dl);
    /* the head, read as the forward pass reads it */
    const xf_tensor *h = m.weights.lm_head.w;
    assert_int_equal(h->dtype, XF_DTYPE_GGML);
    float *got = malloc((size_t)VOCAB * HID * sizeof *got),
          *want = malloc((size_t)VOCAB * HID * sizeof *want);
    assert_int_equal(xf_tensor_to_f32(h, got, &err), 0);
    assert_int_equal(xf_ggml_dequant(xf_ggml_traits(XF_GGML_Q8_0), fx->head, want, VOCAB * HID,
                                     "head", &err), 0);
    assert_memory_equal(got, want, (size_t)VOCAB * HID * sizeof *got);
    free(got);
    free(want);
    xf_model_close(&m);
}

static void test_info(void **state)
{
    fixture *fx = *state;
    xf_cli_result r = xf_cli_run(fx->tmp, "info --json %s", fx->ggml_xfq);
    assert_int_equal(r.code, 0);
    json_error_t je;
    json_t *o = json_loads(r.out, 0, &je);
    assert_non_null(o);
    assert_int_equal(json_integer_value(json_object_get(o, "ggml_tensors")), N_LIN + 1);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "ggml_types"), "q4_K")),
                     1);
    int64_t qparams = 0;
    size_t i;
    json_t *t;
    int seen = 0;
    json_array_foreach(json_object_get(o, "tensors"), i, t)
    {
        const char *name = json_string_value(json_object_get(t, "name"));
        for (int k = 0; k < N_LIN; k++) {
            if (strcmp(name, k_lin[k].name) != 0)
                continue;
            const xf_ggml_type_traits *tt = xf_ggml_traits(k_lin[k].type);
            char want[32];
            snprintf(want, sizeof want, "GGML %s", tt->name);
            assert_string_equal(json_string_value(json_object_get(t, "dtype")), want);
            assert_string_equal(json_string_value(json_object_get(t, "ggml_type")), tt->name);
            /* q4_K 4.5, q6_K 6.5625, q5_0 5.5, iq4_xs 4.25 */
            assert_true(json_real_value(json_object_get(t, "bits_per_weight")) ==
                        xf_ggml_bits_per_weight(tt));
            qparams += k_lin[k].rows * HID;
            seen++;
        }
    }
    assert_int_equal(seen, N_LIN);
    assert_int_equal(json_integer_value(json_object_get(o, "packed_params")),
                     qparams + VOCAB * HID);
    json_decref(o);
    xf_cli_result_free(&r);
    r = xf_cli_run(fx->tmp, "info %s", fx->ggml_xfq);
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.out, "GGML q4_K"));
    assert_non_null(strstr(r.out, "GGML block tensors: 5 ("));
    xf_cli_result_free(&r);
}

/* rtn on the GGML .xfq quantizes the dequantized values: the same codes as
 * rtn on an .xfq holding those values as F32. */
static void test_rtn_requantizes(void **state)
{
    fixture *fx = *state;
    char a[4096], b[4096];
    snprintf(a, sizeof a, "%s/rq-ggml.xfq", fx->tmp);
    snprintf(b, sizeof b, "%s/rq-f32.xfq", fx->tmp);
    xf_cli_result r = xf_cli_run(fx->tmp, "rtn --bits 4 --group 32 --threads 1 %s %s",
                                 fx->ggml_xfq, a);
    if (r.code != 0)
        fail_msg("rtn: %s", r.err);
    xf_cli_result_free(&r);
    r = xf_cli_run(fx->tmp, "rtn --bits 4 --group 32 --threads 1 %s %s", fx->f32_xfq, b);
    assert_int_equal(r.code, 0);
    xf_cli_result_free(&r);
    xfq_file fa, fb;
    xf_error err = {0};
    assert_int_equal(xfq_open(&fa, a, 0, &err), 0);
    assert_int_equal(xfq_open(&fb, b, 0, &err), 0);
    assert_int_equal(fa.tensors.n, fb.tensors.n);
    for (size_t i = 0; i < fa.tensors.n; i++) {
        const xf_tensor *x = &fa.tensors.items[i], *y = &fb.tensors.items[i];
        if (!strcmp(x->name, HEAD)) { /* not quantized by rtn: the GGML head copied */
            assert_int_equal(x->dtype, XF_DTYPE_GGML);
            assert_int_equal(x->ggml_type, XF_GGML_Q8_0);
            assert_int_equal(x->nbytes, fx->head_bytes);
            assert_memory_equal(x->data, fx->head, fx->head_bytes);
            continue;
        }
        assert_string_equal(x->name, y->name);
        assert_int_equal(x->dtype, y->dtype);
        assert_int_equal(x->nbytes, y->nbytes);
        assert_memory_equal(x->data, y->data, x->nbytes);
    }
    const xf_tensor *q = xf_tensor_set_find(&fa.tensors, k_lin[0].name);
    assert_non_null(q);
    assert_int_equal(q->dtype, XF_DTYPE_Q4);
    xfq_close(&fa);
    xfq_close(&fb);
}

/* GGUF row r of a llama Q/K weight comes from HF row src (per head,
 * new[h*hd + 2i + j] = old[h*hd + j*hd/2 + i], docs/export.md). */
static int64_t hf_row(int64_t r, int64_t heads)
{
    if (!heads)
        return r;
    const int64_t h = r / HD, i = r % HD;
    return h * HD + (i % 2) * (HD / 2) + i / 2;
}

static void test_export_gguf_verbatim(void **state)
{
    fixture *fx = *state;
    char out[4096];
    snprintf(out, sizeof out, "%s/m.gguf", fx->tmp);
    /* --type converts the unquantized tensors only */
    xf_cli_result r = xf_cli_run(fx->tmp, "export --to gguf --type f16 --json %s %s",
                                 fx->ggml_xfq, out);
    if (r.code != 0)
        fail_msg("export: %s", r.err);
    json_error_t je;
    json_t *sum = json_loads(r.out, 0, &je);
    assert_non_null(sum);
    assert_true(json_is_true(json_object_get(sum, "exact")));
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(json_object_get(sum, "types"), "q6_K"), "tensors")),
                     1);
    json_decref(sum);
    xf_cli_result_free(&r);
    xf_gguf_file g;
    xf_error err = {0};
    if (xf_gguf_open(&g, out, &err) != 0)
        fail_msg("%s", err.msg);
    for (int k = 0; k < N_LIN; k++) {
        const xf_gguf_tensor *t = xf_gguf_find_tensor(&g, k_lin[k].gguf);
        assert_non_null(t);
        assert_int_equal(t->traits->type, k_lin[k].type);
        assert_int_equal(t->ne[0], HID);
        assert_int_equal(t->ne[1], k_lin[k].rows);
        assert_int_equal(t->nbytes, fx->nbytes[k]);
        const size_t rb = fx->nbytes[k] / (size_t)k_lin[k].rows;
        for (int64_t row = 0; row < k_lin[k].rows; row++)
            if (memcmp(t->data + (size_t)row * rb,
                       fx->blocks[k] + (size_t)hf_row(row, k_lin[k].rope_heads) * rb, rb) != 0)
                fail_msg("%s: GGUF row %lld differs from the .xfq's row %lld", k_lin[k].gguf,
                         (long long)row, (long long)hf_row(row, k_lin[k].rope_heads));
    }
    const xf_gguf_tensor *out_w = xf_gguf_find_tensor(&g, "output.weight");
    assert_non_null(out_w);
    assert_int_equal(out_w->traits->type, XF_GGML_Q8_0);
    assert_int_equal(out_w->nbytes, fx->head_bytes);
    assert_memory_equal(out_w->data, fx->head, fx->head_bytes);
    const xf_gguf_tensor *emb = xf_gguf_find_tensor(&g, "token_embd.weight");
    assert_non_null(emb);
    assert_int_equal(emb->traits->type, XF_GGML_F16);
    xf_gguf_close(&g);
}

/* weight transforms need fp weights: the GGML file is refused by name */
static void test_rotate_refused(void **state)
{
    fixture *fx = *state;
    char out[4096];
    snprintf(out, sizeof out, "%s/rot.xfq", fx->tmp);
    xf_cli_result r = xf_cli_run(fx->tmp, "rtn --bits 4 --group 32 --rotate hadamard %s %s",
                                 fx->ggml_xfq, out);
    assert_int_equal(r.code, 1);
    expect_one_line(r.err, "is quantized (GGML ", "weight transforms need the full-precision");
    struct stat st;
    assert_int_equal(stat(out, &st), -1);
    xf_cli_result_free(&r);
}

static void test_export_hf_refused(void **state)
{
    fixture *fx = *state;
    const char *targets[] = {"gptq", "compressed-tensors"};
    for (int i = 0; i < 2; i++) {
        char out[4096];
        snprintf(out, sizeof out, "%s/out-%s", fx->tmp, targets[i]);
        xf_cli_result r = xf_cli_run(fx->tmp, "export --to %s %s %s", targets[i], fx->ggml_xfq,
                                     out);
        assert_int_equal(r.code, 1);
        /* the first GGML tensor in name order: the head (q8_0) */
        expect_one_line(r.err, "ggml.xfq: tensor lm_head.weight holds llama.cpp blocks (GGML "
                               "q8_0), which a",
                        "--to gguf");
        struct stat st;
        assert_int_equal(stat(out, &st), -1);
        xf_cli_result_free(&r);
    }
}

int main(void)
{
    const struct CMUnitTest container[] = {
        cmocka_unit_test(test_round_trip_all_types),
        cmocka_unit_test(test_bits_per_weight),
        cmocka_unit_test(test_write_refusals),
        cmocka_unit_test(test_read_refusals),
    };
    const struct CMUnitTest model[] = {
        cmocka_unit_test(test_model_load),
        cmocka_unit_test(test_info),
        cmocka_unit_test(test_rtn_requantizes),
        cmocka_unit_test(test_export_gguf_verbatim),
        cmocka_unit_test(test_export_hf_refused),
        cmocka_unit_test(test_rotate_refused),
    };
    int rc = cmocka_run_group_tests(container, NULL, NULL);
    return rc + cmocka_run_group_tests(model, setup, teardown);
}
