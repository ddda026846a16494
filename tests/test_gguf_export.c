/* xfquant export --to gguf, checked with a GGUF reader written here from
 * the documented layout (docs/export.md: the GGUF layout and the block
 * formulas), not with xfquant's own code: header, KVs of every type,
 * tensor infos, alignment and offsets; Q4_0/Q4_1/Q5_0/Q8_0/F16/BF16/F32
 * dequantized from the block tables. Round trips of random models
 * quantized with RTN must give xfquant's dequantized .xfq weights bit for
 * bit (Q4_1 within the fp16 rounding of its min), with llama's Q/K rows
 * interleaved per head; refusals exit 1 and leave no file. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "core/half.h"
#include "core/read_file.h"
#include "formats/gguf_write.h"
#include "formats/safetensors.h"
#include "formats/xfq.h"
#include "tests/support/cli_run.h"
#include "tests/support/random_model.h"
#include "tests/support/random_tokenizer.h"
#include "tests/support/test_util.h"

static char *g_tmp;

/* ------------------------------------------------------------------ */
/* An independent GGUF reader                                          */

typedef struct { const uint8_t *p, *end; } cur;

static uint64_t rd(cur *c, int n)
{
    assert_true(c->p + n <= c->end);
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v |= (uint64_t)c->p[i] << (8 * i);
    c->p += n;
    return v;
}

typedef struct kv {
    char key[128];
    uint32_t type;     /* value type; arrays: 9 */
    uint32_t etype;    /* array element type */
    uint64_t n;        /* array length */
    const uint8_t *v;  /* value bytes (arrays: first element) */
} kv;

typedef struct tinfo {
    char name[80];
    uint32_t ndim, type;
    uint64_t ne[4], offset;
} tinfo;

typedef struct gguf {
    uint8_t *buf;
    size_t size;
    uint64_t n_kv, n_t;
    kv *kvs;
    tinfo *ts;
    uint64_t data;
} gguf;

static size_t vsize(uint32_t t)
{
    static const size_t s[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    assert_true(t <= 12 && t != 8 && t != 9);
    return s[t];
}

static void skip_value(cur *c, uint32_t t)
{
    if (t == 8) {
        uint64_t n = rd(c, 8);
        assert_true(c->p + n <= c->end);
        c->p += n;
    } else
        c->p += vsize(t);
    assert_true(c->p <= c->end);
}

/* block size and bytes per block from the spec table */
static void type_block(uint32_t t, uint64_t *blk, uint64_t *bytes)
{
    switch (t) {
    case 0: *blk = 1; *bytes = 4; return;
    case 1: case 30: *blk = 1; *bytes = 2; return;
    case 2: *blk = 32; *bytes = 18; return;
    case 3: *blk = 32; *bytes = 20; return;
    case 6: *blk = 32; *bytes = 22; return;
    case 8: *blk = 32; *bytes = 34; return;
    default: fail_msg("unexpected ggml type %u", t);
    }
}

static uint64_t tensor_bytes(const tinfo *t)
{
    uint64_t blk = 1, bytes = 0;
    type_block(t->type, &blk, &bytes);
    assert_int_equal(t->ne[0] % blk, 0);
    uint64_t n = t->ne[0] / blk * bytes;
    for (uint32_t d = 1; d < t->ndim; d++)
        n *= t->ne[d];
    return n;
}

static void gguf_read(gguf *g, const char *path)
{
    memset(g, 0, sizeof *g);
    assert_int_equal(xf_read_file(path, (char **)&g->buf, &g->size, NULL), 0);
    cur c = {g->buf, g->buf + g->size};
    assert_memory_equal(c.p, "GGUF", 4);
    c.p += 4;
    assert_int_equal(rd(&c, 4), 3);
    g->n_t = rd(&c, 8);
    g->n_kv = rd(&c, 8);
    g->kvs = calloc(g->n_kv + 1, sizeof *g->kvs);
    g->ts = calloc(g->n_t + 1, sizeof *g->ts);
    uint64_t align = 32;
    for (uint64_t i = 0; i < g->n_kv; i++) {
        kv *k = &g->kvs[i];
        uint64_t n = rd(&c, 8);
        assert_true(n > 0 && n < sizeof k->key);
        memcpy(k->key, c.p, n);
        c.p += n;
        for (uint64_t j = 0; j < i; j++)
            assert_string_not_equal(g->kvs[j].key, k->key);
        k->type = (uint32_t)rd(&c, 4);
        if (k->type == 9) {
            k->etype = (uint32_t)rd(&c, 4);
            assert_true(k->etype != 9);
            k->n = rd(&c, 8);
            k->v = c.p;
            for (uint64_t e = 0; e < k->n; e++)
                skip_value(&c, k->etype);
        } else {
            k->v = c.p;
            skip_value(&c, k->type);
        }
        if (!strcmp(k->key, "general.alignment")) {
            assert_int_equal(k->type, 4);
            cur a = {k->v, c.end};
            align = rd(&a, 4);
        }
    }
    for (uint64_t i = 0; i < g->n_t; i++) {
        tinfo *t = &g->ts[i];
        uint64_t n = rd(&c, 8);
        assert_true(n > 0 && n < 64);
        memcpy(t->name, c.p, n);
        c.p += n;
        t->ndim = (uint32_t)rd(&c, 4);
        assert_true(t->ndim >= 1 && t->ndim <= 4);
        for (uint32_t d = 0; d < 4; d++)
            t->ne[d] = d < t->ndim ? rd(&c, 8) : 1;
        t->type = (uint32_t)rd(&c, 4);
        t->offset = rd(&c, 8);
    }
    /* data starts at the next multiple of the alignment, zero padding */
    uint64_t pos = (uint64_t)(c.p - g->buf);
    g->data = (pos + align - 1) / align * align;
    for (uint64_t i = pos; i < g->data; i++)
        assert_int_equal(g->buf[i], 0);
    /* offset_i = sum of the padded sizes before i; the file ends padded */
    uint64_t off = 0;
    for (uint64_t i = 0; i < g->n_t; i++) {
        assert_int_equal(g->ts[i].offset, off);
        assert_int_equal(g->ts[i].offset % align, 0);
        off += (tensor_bytes(&g->ts[i]) + align - 1) / align * align;
    }
    assert_int_equal(g->data + off, g->size);
}

static void gguf_free(gguf *g)
{
    free(g->buf);
    free(g->kvs);
    free(g->ts);
}

static const kv *find_kv(const gguf *g, const char *key)
{
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (!strcmp(g->kvs[i].key, key))
            return &g->kvs[i];
    return NULL;
}

static uint32_t kv_u32(const gguf *g, const char *key)
{
    const kv *k = find_kv(g, key);
    assert_non_null(k);
    assert_int_equal(k->type, 4); /* llama.cpp demands u32, not u64 */
    cur c = {k->v, g->buf + g->size};
    return (uint32_t)rd(&c, 4);
}

static float kv_f32(const gguf *g, const char *key)
{
    const kv *k = find_kv(g, key);
    assert_non_null(k);
    assert_int_equal(k->type, 6);
    float f;
    memcpy(&f, k->v, 4);
    return f;
}

static bool kv_bool(const gguf *g, const char *key)
{
    const kv *k = find_kv(g, key);
    assert_non_null(k);
    assert_int_equal(k->type, 7);
    return k->v[0] != 0;
}

static char *kv_str(const gguf *g, const char *key)
{
    const kv *k = find_kv(g, key);
    assert_non_null(k);
    assert_int_equal(k->type, 8);
    cur c = {k->v, g->buf + g->size};
    uint64_t n = rd(&c, 8);
    return strndup((const char *)c.p, n);
}

/* Element e of a string array (malloc'd). */
static char *kv_arr_str(const gguf *g, const kv *k, uint64_t e)
{
    assert_int_equal(k->etype, 8);
    cur c = {k->v, g->buf + g->size};
    for (uint64_t i = 0; i < e; i++)
        skip_value(&c, 8);
    uint64_t n = rd(&c, 8);
    return strndup((const char *)c.p, n);
}

static const tinfo *find_t(const gguf *g, const char *name)
{
    for (uint64_t i = 0; i < g->n_t; i++)
        if (!strcmp(g->ts[i].name, name))
            return &g->ts[i];
    return NULL;
}

static float h2f(const uint8_t *p)
{
    uint16_t h = (uint16_t)(p[0] | p[1] << 8);
    /* binary16 decoded from its fields (not core/half.c) */
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    float v = e == 0 ? ldexpf((float)m, -24) : e == 31 ? (m ? NAN : INFINITY)
                                                       : ldexpf((float)(m | 1024), e - 25);
    return s ? -v : v;
}

/* Dequantizes a tensor (ne[0] x rows) into a malloc'd array, rows-major. */
static float *dequant(const gguf *g, const tinfo *t)
{
    uint64_t n = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
    float *y = malloc(n * sizeof *y);
    const uint8_t *x = g->buf + g->data + t->offset;
    switch (t->type) {
    case 0: memcpy(y, x, n * 4); break;
    case 1: for (uint64_t i = 0; i < n; i++) y[i] = h2f(x + 2 * i); break;
    case 30:
        for (uint64_t i = 0; i < n; i++) {
            uint32_t u = (uint32_t)(x[2 * i] | x[2 * i + 1] << 8) << 16;
            memcpy(&y[i], &u, 4);
        }
        break;
    default:
        for (uint64_t b = 0; b < n / 32; b++) {
            float *o = y + b * 32;
            if (t->type == 2) { /* Q4_0: d, qs[16]; byte j = e j (low), e j+16 (high) */
                const uint8_t *p = x + b * 18;
                float d = h2f(p);
                for (int j = 0; j < 16; j++) {
                    o[j] = (float)((p[2 + j] & 15) - 8) * d;
                    o[j + 16] = (float)((p[2 + j] >> 4) - 8) * d;
                }
            } else if (t->type == 3) { /* Q4_1: d, m, qs[16]; q*d + m */
                const uint8_t *p = x + b * 20;
                float d = h2f(p), m = h2f(p + 2);
                for (int j = 0; j < 16; j++) {
                    o[j] = (float)(p[4 + j] & 15) * d + m;
                    o[j + 16] = (float)(p[4 + j] >> 4) * d + m;
                }
            } else if (t->type == 6) { /* Q5_0: d, qh u32, qs[16] */
                const uint8_t *p = x + b * 22;
                float d = h2f(p);
                uint32_t qh = (uint32_t)p[2] | (uint32_t)p[3] << 8 | (uint32_t)p[4] << 16 |
                              (uint32_t)p[5] << 24;
                for (int j = 0; j < 16; j++) {
                    int lo = (p[6 + j] & 15) | (int)((qh >> j) & 1) << 4;
                    int hi = (p[6 + j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
                    o[j] = (float)(lo - 16) * d;
                    o[j + 16] = (float)(hi - 16) * d;
                }
            } else if (t->type == 8) { /* Q8_0: d, i8 qs[32] */
                const uint8_t *p = x + b * 34;
                float d = h2f(p);
                for (int j = 0; j < 32; j++)
                    o[j] = (float)(int8_t)p[2 + j] * d;
            } else
                fail_msg("type %u", t->type);
        }
    }
    return y;
}

/* ------------------------------------------------------------------ */
/* Test inputs                                                         */

/* A random model directory with a tokenizer; returns its path. */
static char *make_model(const char *name, xf_random_model_spec s)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s", g_tmp, name);
    char *d = xf_random_model_write(dir, &s);
    assert_non_null(d);
    if (!strcmp(s.family, "gpt2") || !strcmp(s.family, "qwen2"))
        assert_int_equal(xf_random_tokenizer_write(d, true), 0);
    else
        assert_int_equal(xf_random_tokenizer_write(d, false), 0);
    return d;
}

static const xf_random_model_spec llama_spec = {
    .family = "llama", .hidden = 64, .intermediate = 96, .layers = 2, .heads = 4,
    .kv_heads = 2, .vocab = 272, .max_pos = 64, .f16 = true, .seed = 7};

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static char *path_in(const char *name)
{
    char *p = NULL;
    assert_true(asprintf(&p, "%s/%s", g_tmp, name) > 0);
    return p;
}

/* Runs `xfquant ARGS`, expecting exit code `code`. */
static json_t *run_ok_json(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static json_t *run_ok_json(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    xf_cli_result r = xf_cli_run(g_tmp, "%s", cmd);
    if (r.code != 0)
        fail_msg("xfquant %s: exit %d: %s", cmd, r.code, r.err);
    json_t *j = json_loads(r.out, 0, NULL);
    xf_cli_result_free(&r);
    return j;
}

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

/* ------------------------------------------------------------------ */
/* Tests                                                               */

/* The container alone: KVs of every type the writer has, tensors of odd
 * byte sizes (padding), determinism, and its refusals. */
static void test_writer_layout(void **state)
{
    (void)state;
    xf_error err;
    xf_gguf_writer w;
    char *path = path_in("w.gguf");
    for (int round = 0; round < 2; round++) {
        assert_int_equal(xf_gguf_writer_init(&w, 0, path, &err), 0);
        const char *strs[] = {"x", "", "y z"};
        const float fa[] = {1.5f, -2.0f};
        const int32_t ia[] = {-3, 4, 5};
        assert_int_equal(xf_gguf_add_u32(&w, "a.u32", 4000000000u, &err), 0);
        assert_int_equal(xf_gguf_add_i32(&w, "a.i32", -7, &err), 0);
        assert_int_equal(xf_gguf_add_f32(&w, "a.f32", 0.25f, &err), 0);
        assert_int_equal(xf_gguf_add_bool(&w, "a.bool", true, &err), 0);
        assert_int_equal(xf_gguf_add_string(&w, "a.str", "hello", &err), 0);
        assert_int_equal(xf_gguf_add_str_array(&w, "a.strs", strs, NULL, 3, &err), 0);
        assert_int_equal(xf_gguf_add_f32_array(&w, "a.fa", fa, 2, &err), 0);
        assert_int_equal(xf_gguf_add_i32_array(&w, "a.ia", ia, 3, &err), 0);
        /* refusals */
        assert_int_equal(xf_gguf_add_u32(&w, "a.u32", 1, &err), -1);
        assert_non_null(strstr(err.msg, "duplicate"));
        assert_int_equal(xf_gguf_add_f32(&w, "a.nan", NAN, &err), -1);
        int64_t ne1[1] = {3};
        float *f = malloc(12);
        f[0] = 1, f[1] = 2, f[2] = 3;
        assert_int_equal(xf_gguf_add_tensor(&w, "t1", 1, ne1, 0, f, 12, &err), 0);
        int64_t ne2[2] = {32, 3};
        uint8_t *q = calloc(3, 18);
        assert_int_equal(xf_gguf_add_tensor(&w, "t2", 2, ne2, 2, q, 54, &err), 0);
        int64_t bad[2] = {48, 1};
        assert_int_equal(xf_gguf_add_tensor(&w, "t3", 2, bad, 2, calloc(1, 27), 27, &err), -1);
        assert_non_null(strstr(err.msg, "t3"));
        char longname[80];
        memset(longname, 'n', 64);
        longname[64] = 0;
        assert_int_equal(xf_gguf_add_tensor(&w, longname, 1, ne1, 0, calloc(1, 12), 12, &err), -1);
        assert_int_equal(xf_gguf_add_tensor(&w, "t1", 1, ne1, 0, calloc(1, 12), 12, &err), -1);
        assert_int_equal(xf_gguf_write(&w, path, &err), 0);
        assert_int_equal(xf_gguf_file_size(&w), (uint64_t)0 + 0 + ({
            struct stat st;
            stat(path, &st);
            (uint64_t)st.st_size;
        }));
        xf_gguf_writer_free(&w);
        if (round == 0) {
            char *p2 = path_in("w0.gguf");
            assert_int_equal(rename(path, p2), 0);
            free(p2);
        }
    }
    char *p0 = path_in("w0.gguf");
    assert_true(xf_test_files_equal(path, p0)); /* same calls, same bytes */
    free(p0);
    gguf g;
    gguf_read(&g, path);
    assert_int_equal(g.n_kv, 9); /* general.alignment + 8 */
    assert_int_equal(kv_u32(&g, "general.alignment"), 32);
    assert_int_equal(kv_u32(&g, "a.u32"), 4000000000u);
    assert_int_equal(find_kv(&g, "a.i32")->type, 5);
    assert_true(kv_f32(&g, "a.f32") == 0.25f);
    assert_true(kv_bool(&g, "a.bool"));
    char *s = kv_str(&g, "a.str");
    assert_string_equal(s, "hello");
    free(s);
    const kv *k = find_kv(&g, "a.strs");
    assert_int_equal(k->n, 3);
    s = kv_arr_str(&g, k, 2);
    assert_string_equal(s, "y z");
    free(s);
    k = find_kv(&g, "a.fa");
    assert_int_equal(k->etype, 6);
    assert_int_equal(k->n, 2);
    k = find_kv(&g, "a.ia");
    assert_int_equal(k->etype, 5);
    assert_int_equal(g.n_t, 2);
    assert_int_equal(g.ts[1].offset, 32); /* 12 bytes padded to 32 */
    float *y = dequant(&g, &g.ts[0]);
    assert_true(y[2] == 3.0f);
    free(y);
    gguf_free(&g);
    free(path);
}

static int fill_inf_f16(void *ctx, void *buf, size_t nbytes, xf_error *err)
{
    (void)ctx;
    (void)err;
    memset(buf, 0, nbytes);
    ((uint16_t *)buf)[5] = 0x7c00; /* +Inf */
    return 0;
}

/* Non-finite values are refused: given at add time, or produced by a fill
 * callback while writing (then the write fails and leaves nothing). */
static void test_writer_nonfinite(void **state)
{
    (void)state;
    xf_error err;
    xf_gguf_writer w;
    char *path = path_in("nan.gguf");
    assert_int_equal(xf_gguf_writer_init(&w, 0, path, &err), 0);
    int64_t ne[1] = {8};
    uint16_t *h = calloc(8, 2);
    h[3] = 0x7e00; /* NaN */
    assert_int_equal(xf_gguf_add_tensor(&w, "a", 1, ne, 1, h, 16, &err), -1);
    assert_non_null(strstr(err.msg, "element 3"));
    assert_int_equal(xf_gguf_add_tensor_fill(&w, "b", 1, ne, 1, 16, fill_inf_f16, NULL, &err), 0);
    int before = xf_test_dir_entries(g_tmp);
    assert_int_equal(xf_gguf_write(&w, path, &err), -1);
    assert_non_null(strstr(err.msg, "element 5"));
    assert_false(exists(path));
    assert_int_equal(xf_test_dir_entries(g_tmp), before);
    xf_gguf_writer_free(&w);
    free(path);
}

/* new row r of a permuted Q/K weight = old row src (per head of hd) */
static int64_t qk_src(int64_t r, int64_t hd)
{
    int64_t h = r / hd, i = r % hd;
    return h * hd + (i % 2) * (hd / 2) + i / 2;
}

typedef struct name_map {
    const char *gguf, *hf; /* %d = layer */
    int rope;              /* 1: q heads, 2: kv heads */
} name_map;

static const name_map llama_names[] = {
    {"token_embd.weight", "model.embed_tokens.weight", 0},
    {"output_norm.weight", "model.norm.weight", 0},
    {"output.weight", "lm_head.weight", 0},
    {"blk.%d.attn_norm.weight", "model.layers.%d.input_layernorm.weight", 0},
    {"blk.%d.ffn_norm.weight", "model.layers.%d.post_attention_layernorm.weight", 0},
    {"blk.%d.attn_q.weight", "model.layers.%d.self_attn.q_proj.weight", 1},
    {"blk.%d.attn_k.weight", "model.layers.%d.self_attn.k_proj.weight", 2},
    {"blk.%d.attn_v.weight", "model.layers.%d.self_attn.v_proj.weight", 0},
    {"blk.%d.attn_output.weight", "model.layers.%d.self_attn.o_proj.weight", 0},
    {"blk.%d.ffn_gate.weight", "model.layers.%d.mlp.gate_proj.weight", 0},
    {"blk.%d.ffn_up.weight", "model.layers.%d.mlp.up_proj.weight", 0},
    {"blk.%d.ffn_down.weight", "model.layers.%d.mlp.down_proj.weight", 0},
};

/* Every tensor of the GGUF equals xfquant's dequantization of the .xfq
 * (bit for bit, or within Q4_1's bound), after undoing the Q/K
 * interleave. Returns the largest |difference| seen on Q4_1 tensors. */
static double compare_llama(const char *gguf_path, const char *xfq_path, int layers, int hd,
                            bool permute, int expect_type, double *q41_bound_ratio)
{
    gguf g;
    gguf_read(&g, gguf_path);
    xfq_file x;
    xf_error err;
    assert_int_equal(xfq_open(&x, xfq_path, 0, &err), 0);
    double q41 = 0, ratio = 0;
    int seen_expect = 0;
    for (size_t m = 0; m < sizeof llama_names / sizeof llama_names[0]; m++) {
        for (int l = 0; l < (strchr(llama_names[m].gguf, '%') ? layers : 1); l++) {
            char gn[128], hn[256];
            snprintf(gn, sizeof gn, llama_names[m].gguf, l);
            snprintf(hn, sizeof hn, llama_names[m].hf, l);
            const tinfo *t = find_t(&g, gn);
            const xf_tensor *xt = xf_tensor_set_find(&x.tensors, hn);
            assert_non_null(t);
            assert_non_null(xt);
            int64_t rows = xt->ndim == 2 ? xt->shape[0] : 1;
            int64_t cols = xt->ndim == 2 ? xt->shape[1] : xt->shape[0];
            assert_int_equal(t->ne[0], cols);
            assert_int_equal(t->ndim == 1 ? 1 : t->ne[1], rows);
            if (xt->ndim == 1)
                assert_int_equal(t->type, 0); /* 1-D: F32 */
            if ((int)t->type == expect_type)
                seen_expect++;
            float *y = dequant(&g, t);
            float *ref = malloc((size_t)(rows * cols) * sizeof *ref);
            assert_int_equal(xf_tensor_to_f32(xt, ref, &err), 0);
            for (int64_t r = 0; r < rows; r++) {
                int64_t s = permute && llama_names[m].rope ? qk_src(r, hd) : r;
                for (int64_t c = 0; c < cols; c++) {
                    float a = y[r * cols + c], b = ref[s * cols + c];
                    if (t->type == 3) {
                        double d = fabs((double)a - (double)b);
                        if (d > q41)
                            q41 = d;
                        /* fp16 rounding of m ~ 2^-11 |m| plus fp32 rounding */
                        const uint8_t *blk = g.buf + g.data + t->offset +
                                             (size_t)((r * cols + c) / 32) * 20;
                        double mm = fabs(h2f(blk + 2)), qd = fabs((double)a - h2f(blk + 2));
                        double bound = ldexp(mm, -11) * 1.001 + ldexp(qd + mm, -22);
                        if (d / bound > ratio)
                            ratio = d / bound;
                    } else if (memcmp(&a, &b, 4) != 0) {
                        fail_msg("%s [%lld, %lld]: gguf %.9g != xfq %.9g", gn, (long long)r,
                                 (long long)c, a, b);
                    }
                }
            }
            free(y);
            free(ref);
        }
    }
    assert_true(seen_expect > 0);
    if (q41_bound_ratio)
        *q41_bound_ratio = ratio;
    xfq_close(&x);
    gguf_free(&g);
    return q41;
}

/* Every GGUF tensor of `names` equals the HF tensor (dir/model.safetensors,
 * fp16 or fp32) bit for bit as fp32: rows permuted (rope 1/2) when
 * `permute`, Conv1D [in, out] weights (rope 3) transposed. */
static void compare_to_hf(const char *gguf_path, const char *dir, const name_map *names,
                          size_t n_names, int layers, int hd, bool permute)
{
    gguf g;
    gguf_read(&g, gguf_path);
    char st_path[1200];
    snprintf(st_path, sizeof st_path, "%s/model.safetensors", dir);
    xf_safetensors st;
    xf_error err;
    assert_int_equal(xf_safetensors_open(&st, st_path, &err), 0);
    size_t seen = 0;
    for (size_t m = 0; m < n_names; m++) {
        for (int l = 0; l < (strchr(names[m].gguf, '%') ? layers : 1); l++) {
            char gn[128], hn[256];
            snprintf(gn, sizeof gn, names[m].gguf, l);
            snprintf(hn, sizeof hn, names[m].hf, l);
            const tinfo *t = find_t(&g, gn);
            const xf_tensor *ht = xf_safetensors_find(&st, hn);
            if (!t || !ht)
                fail_msg("missing %s / %s", gn, hn);
            seen++;
            const bool tr = names[m].rope == 3;
            int64_t rows = ht->ndim == 2 ? ht->shape[tr ? 1 : 0] : 1;
            int64_t cols = ht->ndim == 2 ? ht->shape[tr ? 0 : 1] : ht->shape[0];
            assert_int_equal(t->ne[0], cols);
            if (ht->ndim == 2)
                assert_int_equal(t->ne[1], rows);
            float *y = dequant(&g, t);
            float *ref = malloc((size_t)(rows * cols) * sizeof *ref);
            assert_int_equal(xf_tensor_to_f32(ht, ref, &err), 0);
            const int64_t n = rows * cols;
            for (int64_t i = 0; i < n; i++) {
                int64_t r = i / cols, c = i % cols;
                int64_t src = r;
                if (permute && (names[m].rope == 1 || names[m].rope == 2))
                    src = ht->ndim == 2 ? qk_src(r, hd) : r;
                float b;
                if (ht->ndim == 1)
                    b = permute && (names[m].rope == 1 || names[m].rope == 2) ? ref[qk_src(c, hd)]
                                                                             : ref[c];
                else
                    b = tr ? ref[c * rows + r] : ref[src * cols + c];
                if (memcmp(&y[i], &b, 4) != 0)
                    fail_msg("%s [%lld, %lld]: gguf %.9g != hf %.9g", gn, (long long)r,
                             (long long)c, y[i], b);
            }
            free(y);
            free(ref);
        }
    }
    assert_true(seen > 0);
    xf_safetensors_close(&st);
    gguf_free(&g);
}

/* RTN grids -> their exact GGML types; the summary's type counts and
 * exactness; Q4_1 within its measured bound. */
static void test_roundtrip_rtn(void **state)
{
    (void)state;
    char *dir = make_model("llama", llama_spec);
    struct {
        const char *rtn, *exp;
        int type;
        bool exact;
    } cases[] = {
        {"--bits 4 --group 32 --sym", "", 2, true},
        {"--bits 4 --group 64", "", 6, true},
        {"--bits 4 --group 64", "--gguf-asym q4_1", 3, false},
        {"--bits 3 --group 32", "", 2, true},
        {"--bits 2 --group -1 --sym", "", 2, true},
        {"--bits 8 --group 32 --sym", "", 8, true},
        {"--bits 8 --group -1 --sym", "", 8, true},
        {"--bits 4 --group -1", "", 6, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *xq = path_in("m.xfq"), *out = path_in("m.gguf");
        json_t *j = run_ok_json("rtn %s %s %s", cases[i].rtn, dir, xq);
        json_decref(j);
        j = run_ok_json("export --to gguf --json %s %s %s", cases[i].exp, xq, out);
        assert_non_null(j);
        assert_int_equal(json_is_true(json_object_get(j, "exact")), cases[i].exact);
        const char *tname = cases[i].type == 2 ? "q4_0" : cases[i].type == 3 ? "q4_1"
                            : cases[i].type == 6                             ? "q5_0"
                                                                             : "q8_0";
        json_t *tj = json_object_get(json_object_get(j, "types"), tname);
        assert_non_null(tj);
        /* 7 linears per layer */
        assert_int_equal(json_integer_value(json_object_get(tj, "tensors")), 7 * 2);
        double ratio = 0;
        double q41 = compare_llama(out, xq, 2, 16, true, cases[i].type, &ratio);
        if (cases[i].type == 3) {
            /* the summary reports the same largest error the reader sees */
            double rep = json_real_value(json_object_get(j, "q4_1_max_abs_err"));
            assert_true(q41 > 0);
            assert_true(fabs(rep - q41) <= 1e-12);
            assert_true(ratio <= 1.0);
            print_message("q4_1: max |dw| %.3g, max |dmin| %.3g (bound ratio %.3f)\n", q41,
                          json_real_value(json_object_get(j, "q4_1_max_abs_dmin")), ratio);
        }
        json_decref(j);
        free(xq);
        free(out);
    }
    free(dir);
}

/* Hyper-parameter key types, the tokenizer, padding, Q/K permutation on
 * the fp model (F32 export against the HF values directly). */
static void test_metadata_and_permutation(void **state)
{
    (void)state;
    char *dir = make_model("llama_meta", llama_spec);
    char *out = path_in("meta.gguf");
    json_t *j = run_ok_json("export --to gguf --type f32 --json %s %s", dir, out);
    assert_true(json_is_true(json_object_get(j, "exact")));
    json_decref(j);
    gguf g;
    gguf_read(&g, out);
    char *arch = kv_str(&g, "general.architecture");
    assert_string_equal(arch, "llama");
    free(arch);
    assert_int_equal(kv_u32(&g, "llama.context_length"), 64);
    assert_int_equal(kv_u32(&g, "llama.embedding_length"), 64);
    assert_int_equal(kv_u32(&g, "llama.block_count"), 2);
    assert_int_equal(kv_u32(&g, "llama.feed_forward_length"), 96);
    assert_int_equal(kv_u32(&g, "llama.attention.head_count"), 4);
    assert_int_equal(kv_u32(&g, "llama.attention.head_count_kv"), 2);
    assert_int_equal(kv_u32(&g, "llama.rope.dimension_count"), 16);
    assert_true(kv_f32(&g, "llama.attention.layer_norm_rms_epsilon") > 0);
    assert_true(kv_f32(&g, "llama.rope.freq_base") > 0);
    assert_int_equal(kv_u32(&g, "general.file_type"), 0);
    char *tm = kv_str(&g, "tokenizer.ggml.model");
    assert_string_equal(tm, "llama");
    free(tm);
    const kv *tok = find_kv(&g, "tokenizer.ggml.tokens");
    assert_int_equal(tok->n, 272); /* = embedding rows: 264 tokens + 8 pads */
    char *s = kv_arr_str(&g, tok, 262);
    assert_string_equal(s, "\xe2\x96\x81" "a");
    free(s);
    s = kv_arr_str(&g, tok, 271);
    assert_string_equal(s, "[PAD271]");
    free(s);
    const kv *sc = find_kv(&g, "tokenizer.ggml.scores");
    assert_int_equal(sc->etype, 6);
    float s262, s263;
    memcpy(&s262, sc->v + 4 * 262, 4);
    memcpy(&s263, sc->v + 4 * 263, 4);
    assert_true(s262 > s263); /* merge rank 0 beats rank 1 */
    const kv *tt = find_kv(&g, "tokenizer.ggml.token_type");
    assert_int_equal(tt->etype, 5);
    int32_t t0, t1, t3, t260, t271;
    memcpy(&t0, tt->v, 4);
    memcpy(&t1, tt->v + 4, 4);
    memcpy(&t3, tt->v + 12, 4);
    memcpy(&t260, tt->v + 4 * 260, 4);
    memcpy(&t271, tt->v + 4 * 271, 4);
    assert_int_equal(t0, 2);   /* unknown */
    assert_int_equal(t1, 3);   /* control */
    assert_int_equal(t3, 6);   /* byte */
    assert_int_equal(t260, 1); /* normal */
    assert_int_equal(t271, 5); /* unused pad */
    assert_int_equal(kv_u32(&g, "tokenizer.ggml.bos_token_id"), 1);
    assert_int_equal(kv_u32(&g, "tokenizer.ggml.eos_token_id"), 2);
    assert_true(kv_bool(&g, "tokenizer.ggml.add_bos_token"));
    gguf_free(&g);
    /* every tensor = the HF value, Q/K rows interleaved per head */
    compare_to_hf(out, dir, llama_names, sizeof llama_names / sizeof llama_names[0], 2, 16, true);
    /* --type bf16: 2-D tensors BF16 (rounded, within 2^-8 relative), 1-D F32 */
    json_decref(run_ok_json("export --to gguf --type bf16 --json %s %s", dir, out));
    gguf_read(&g, out);
    assert_int_equal(kv_u32(&g, "general.file_type"), 32);
    const tinfo *e16 = find_t(&g, "token_embd.weight");
    assert_int_equal(e16->type, 30);
    assert_int_equal(find_t(&g, "output_norm.weight")->type, 0);
    float *yb = dequant(&g, e16);
    xf_safetensors st;
    char stp[1200];
    snprintf(stp, sizeof stp, "%s/model.safetensors", dir);
    xf_error err;
    assert_int_equal(xf_safetensors_open(&st, stp, &err), 0);
    const xf_tensor *he = xf_safetensors_find(&st, "model.embed_tokens.weight");
    float *ref = malloc((size_t)xf_tensor_numel(he) * sizeof *ref);
    assert_int_equal(xf_tensor_to_f32(he, ref, &err), 0);
    for (int64_t i = 0; i < xf_tensor_numel(he); i++)
        assert_true(fabsf(yb[i] - ref[i]) <= ldexpf(fabsf(ref[i]), -8));
    free(ref);
    free(yb);
    xf_safetensors_close(&st);
    gguf_free(&g);
    free(out);
    free(dir);
}

static const name_map qwen2_extra[] = {
    {"blk.%d.attn_q.bias", "model.layers.%d.self_attn.q_proj.bias", 1},
    {"blk.%d.attn_k.bias", "model.layers.%d.self_attn.k_proj.bias", 2},
    {"blk.%d.attn_v.bias", "model.layers.%d.self_attn.v_proj.bias", 0},
};

static const name_map gpt2_names[] = {
    {"token_embd.weight", "transformer.wte.weight", 0},
    {"position_embd.weight", "transformer.wpe.weight", 0},
    {"output_norm.weight", "transformer.ln_f.weight", 0},
    {"output_norm.bias", "transformer.ln_f.bias", 0},
    {"blk.%d.attn_norm.weight", "transformer.h.%d.ln_1.weight", 0},
    {"blk.%d.attn_norm.bias", "transformer.h.%d.ln_1.bias", 0},
    {"blk.%d.ffn_norm.weight", "transformer.h.%d.ln_2.weight", 0},
    {"blk.%d.ffn_norm.bias", "transformer.h.%d.ln_2.bias", 0},
    {"blk.%d.attn_qkv.weight", "transformer.h.%d.attn.c_attn.weight", 3},
    {"blk.%d.attn_qkv.bias", "transformer.h.%d.attn.c_attn.bias", 0},
    {"blk.%d.attn_output.weight", "transformer.h.%d.attn.c_proj.weight", 3},
    {"blk.%d.attn_output.bias", "transformer.h.%d.attn.c_proj.bias", 0},
    {"blk.%d.ffn_up.weight", "transformer.h.%d.mlp.c_fc.weight", 3},
    {"blk.%d.ffn_up.bias", "transformer.h.%d.mlp.c_fc.bias", 0},
    {"blk.%d.ffn_down.weight", "transformer.h.%d.mlp.c_proj.weight", 3},
    {"blk.%d.ffn_down.bias", "transformer.h.%d.mlp.c_proj.bias", 0},
};

/* qwen2: llama names and keys under qwen2., q/k/v biases, no Q/K
 * permutation, byte-level vocab with pre "qwen2". */
static void test_qwen2(void **state)
{
    (void)state;
    xf_random_model_spec s = llama_spec;
    s.family = "qwen2";
    s.tied = true;
    char *dir = make_model("qwen2", s);
    char *out = path_in("qwen2.gguf");
    json_decref(run_ok_json("export --to gguf --type f32 --json %s %s", dir, out));
    gguf g;
    gguf_read(&g, out);
    char *a = kv_str(&g, "general.architecture");
    assert_string_equal(a, "qwen2");
    free(a);
    assert_int_equal(kv_u32(&g, "qwen2.attention.head_count_kv"), 2);
    a = kv_str(&g, "tokenizer.ggml.model");
    assert_string_equal(a, "gpt2");
    free(a);
    a = kv_str(&g, "tokenizer.ggml.pre");
    assert_string_equal(a, "qwen2");
    free(a);
    const kv *m = find_kv(&g, "tokenizer.ggml.merges");
    assert_int_equal(m->n, 2);
    a = kv_arr_str(&g, m, 0);
    assert_string_equal(a, "\xc4\xa0 a");
    free(a);
    assert_null(find_t(&g, "output.weight")); /* tied */
    assert_null(find_kv(&g, "tokenizer.ggml.scores"));
    gguf_free(&g);
    /* no output.weight in a tied model: compare the rest */
    name_map names[32];
    size_t n = 0;
    for (size_t i = 0; i < sizeof llama_names / sizeof llama_names[0]; i++)
        if (strcmp(llama_names[i].gguf, "output.weight") != 0)
            names[n++] = llama_names[i];
    for (size_t i = 0; i < 3; i++)
        names[n++] = qwen2_extra[i];
    compare_to_hf(out, dir, names, n, 2, 16, false);
    free(out);
    free(dir);
}

/* gpt2: fused attn_qkv, Conv1D weights transposed to [out, in] (ne =
 * [in, out]), position_embd, LayerNorm biases, pre "gpt-2". */
static void test_gpt2(void **state)
{
    (void)state;
    xf_random_model_spec s = {.family = "gpt2", .hidden = 64, .layers = 2, .heads = 4,
                              .vocab = 272, .max_pos = 64, .f16 = true, .seed = 3};
    char *dir = make_model("gpt2", s);
    char *out = path_in("gpt2.gguf");
    json_decref(run_ok_json("export --to gguf --json %s %s", dir, out));
    gguf g;
    gguf_read(&g, out);
    char *a = kv_str(&g, "tokenizer.ggml.pre");
    assert_string_equal(a, "gpt-2");
    free(a);
    assert_int_equal(kv_u32(&g, "gpt2.context_length"), 64);
    assert_int_equal(kv_u32(&g, "gpt2.feed_forward_length"), 256);
    assert_true(kv_f32(&g, "gpt2.attention.layer_norm_epsilon") > 0);
    assert_false(kv_bool(&g, "tokenizer.ggml.add_bos_token"));
    assert_int_equal(kv_u32(&g, "tokenizer.ggml.eos_token_id"), 258);
    const tinfo *qkv = find_t(&g, "blk.0.attn_qkv.weight");
    assert_int_equal(qkv->ne[0], 64);
    assert_int_equal(qkv->ne[1], 192);
    assert_int_equal(qkv->type, 1); /* F16 kept */
    gguf_free(&g);
    compare_to_hf(out, dir, gpt2_names, sizeof gpt2_names / sizeof gpt2_names[0], 2, 16, false);
    free(out);
    free(dir);
}

/* mistral runs as llama.cpp's llama architecture, Q/K interleaved. */
static void test_mistral(void **state)
{
    (void)state;
    xf_random_model_spec s = llama_spec;
    s.family = "mistral";
    char *dir = make_model("mistral", s);
    char *out = path_in("mistral.gguf");
    json_t *j = run_ok_json("export --to gguf --type f32 --json %s %s", dir, out);
    assert_true(json_is_true(json_object_get(j, "rope_permuted")));
    json_decref(j);
    gguf g;
    gguf_read(&g, out);
    char *a = kv_str(&g, "general.architecture");
    assert_string_equal(a, "llama");
    free(a);
    gguf_free(&g);
    compare_to_hf(out, dir, llama_names, sizeof llama_names / sizeof llama_names[0], 2, 16, true);
    free(out);
    free(dir);
}

/* Exit 1, one line naming the cause, no output file. */
static void expect_refusal(const char *args, const char *out, const char *needle)
{
    /* stdout/stderr capture files exist from earlier runs: the count of
     * entries must not change (no output, no temp file) */
    int before = xf_test_dir_entries(g_tmp);
    xf_cli_result r = xf_cli_run(g_tmp, "export --to gguf %s %s", args, out);
    if (r.code != 1 || xf_cli_count_lines(r.err) != 1 || !strstr(r.err, needle))
        fail_msg("export %s: exit %d, stderr '%s' (want '%s')", args, r.code, r.err, needle);
    assert_false(exists(out));
    xf_cli_result_free(&r);
    /* nor a temp file beside it */
    assert_int_equal(xf_test_dir_entries(g_tmp), before);
}

static void test_refusals(void **state)
{
    (void)state;
    char *out = path_in("refused.gguf");
    /* OPT: no llama.cpp architecture */
    xf_random_model_spec so = {.family = "opt", .hidden = 64, .layers = 1, .heads = 4,
                               .vocab = 272, .max_pos = 64, .seed = 5};
    char *opt = make_model("opt", so);
    char args[2048];
    snprintf(args, sizeof args, "%s", opt);
    expect_refusal(args, out, "OPT");
    /* widths not a multiple of 32: named; --fallback writes F16 / F32 */
    xf_random_model_spec sw = llama_spec;
    sw.intermediate = 80;
    char *wdir = make_model("wide", sw);
    char *wx = path_in("wide.xfq");
    json_decref(run_ok_json("rtn --bits 4 --group 32 --sym %s %s", wdir, wx));
    snprintf(args, sizeof args, "%s", wx);
    expect_refusal(args, out, "down_proj");
    json_t *j = run_ok_json("export --to gguf --fallback f16 --json %s %s", wx, out);
    assert_false(json_is_true(json_object_get(j, "exact")));
    assert_true(json_array_size(json_object_get(j, "approximate")) >= 2);
    json_decref(j);
    unlink(out);
    j = run_ok_json("export --to gguf --fallback f32 --json %s %s", wx, out);
    assert_true(json_is_true(json_object_get(j, "exact")));
    json_decref(j);
    unlink(out);
    /* an activation scheme: refused, --weights-only records the omission */
    char *ax = path_in("act.xfq");
    json_decref(run_ok_json("rtn --bits 4 --group 32 --sym --act-bits 8 %s %s", wdir, ax));
    snprintf(args, sizeof args, "--fallback f16 %s", ax);
    expect_refusal(args, out, "activation");
    j = run_ok_json("export --to gguf --fallback f16 --weights-only --json %s %s", ax, out);
    assert_true(json_is_string(json_object_get(j, "omitted")));
    json_decref(j);
    gguf g;
    gguf_read(&g, out);
    char *om = kv_str(&g, "xfquant.omitted");
    assert_non_null(strstr(om, "activation"));
    free(om);
    gguf_free(&g);
    unlink(out);
    /* act-order without static groups: the group changes inside blocks */
    char *calib = xf_test_write_file(g_tmp, "calib.txt", "", 0);
    FILE *f = fopen(calib, "w");
    for (int i = 0; i < 400; i++)
        fputs(i % 3 ? "ab a b ba " : "a ab\n", f);
    fclose(f);
    char *gx = path_in("act_order.xfq");
    json_decref(run_ok_json("gptq --bits 4 --group 32 --sym --act-order --calib %s --nsamples 4 "
                            "--seqlen 32 %s %s",
                            calib, wdir, gx));
    snprintf(args, sizeof args, "--fallback f16 %s", gx);
    expect_refusal(args, out, "act-order");
    /* with static groups the groups stay aligned: exported, bit-exact */
    char *sx = path_in("static_groups.xfq");
    json_decref(run_ok_json("gptq --bits 4 --group 32 --sym --act-order --static-groups --calib %s "
                            "--nsamples 4 --seqlen 32 %s %s",
                            calib, wdir, sx));
    json_decref(run_ok_json("export --to gguf --fallback f32 --json %s %s", sx, out));
    compare_llama(out, sx, 2, 16, true, 2, NULL);
    unlink(out);
    free(sx);
    /* usage errors: exit 2 */
    xf_cli_result r = xf_cli_run(g_tmp, "export --to nosuch %s %s", wx, out);
    assert_int_equal(r.code, 2);
    xf_cli_result_free(&r);
    r = xf_cli_run(g_tmp, "export --to gguf --gguf-asym q4_2 %s %s", wx, out);
    assert_int_equal(r.code, 2);
    xf_cli_result_free(&r);
    assert_false(exists(out));
    free(gx);
    free(calib);
    free(ax);
    free(wx);
    free(wdir);
    free(opt);
    free(out);
}

/* An export killed (SIGKILL) at some point of its write never leaves a
 * partial OUT: OUT is absent or a complete, valid GGUF. (A SIGKILL cannot
 * be cleaned up after: the hidden temp file ".NAME.tmp.XXXXXX" may stay.) */
static void test_killed_export(void **state)
{
    (void)state;
    xf_random_model_spec s = {.family = "llama", .hidden = 256, .intermediate = 704,
                              .layers = 4, .heads = 8, .kv_heads = 4, .vocab = 4096,
                              .max_pos = 64, .f16 = false, .seed = 9};
    char *dir = make_model("big", s);
    char *out = path_in("killed.gguf");
    for (int delay_ms = 1; delay_ms <= 64; delay_ms *= 4) {
        char cmd[4096];
        snprintf(cmd, sizeof cmd,
                 "'%s' export --to gguf --type f32 '%s' '%s' >/dev/null 2>&1 & p=$!; "
                 "sleep %d.%03d; kill -9 $p 2>/dev/null; wait $p 2>/dev/null; exit 0",
                 xf_cli_bin(), dir, out, delay_ms / 1000, delay_ms % 1000);
        assert_int_equal(system(cmd), 0);
        if (exists(out)) {
            gguf g;
            gguf_read(&g, out); /* complete: every offset and the file size check out */
            assert_int_equal(g.n_t, 3 + 9 * 4);
            gguf_free(&g);
            unlink(out);
        }
    }
    /* left alone, the same export completes */
    json_decref(run_ok_json("export --to gguf --type f32 --json %s %s", dir, out));
    gguf g;
    gguf_read(&g, out);
    assert_int_equal(g.n_t, 3 + 9 * 4);
    gguf_free(&g);
    free(out);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_writer_layout),
        cmocka_unit_test(test_writer_nonfinite),
        cmocka_unit_test(test_roundtrip_rtn),
        cmocka_unit_test(test_metadata_and_permutation),
        cmocka_unit_test(test_qwen2),
        cmocka_unit_test(test_gpt2),
        cmocka_unit_test(test_mistral),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_killed_export),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
