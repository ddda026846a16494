/* The .xfq container (docs/xfq-format.md): write + open round trips,
 * deterministic output, and every kind of corruption refused with a
 * clear one-line error (files are patched byte by byte here, CRCs fixed
 * with zlib where needed so that the specific check is the one reached). */
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include <cmocka.h>

#include "core/half.h"
#include "formats/xfq.h"
#include "formats/xfq_pack.h"
#include "tests/support/test_util.h"

/* ---------------------------------------------------------------- input */

typedef struct test_packed {
    uint8_t *codes;   /* packed */
    uint16_t *scales; /* [rows, G] */
    uint8_t *zeros;   /* [rows, G] or NULL */
    int32_t *perm;    /* [cols] or NULL */
} test_packed;

static xf_tensor make_packed(test_packed *p, const char *name, int64_t rows, int64_t cols,
                             int bits, int64_t g, bool asym, bool perm, uint64_t seed)
{
    memset(p, 0, sizeof *p);
    uint64_t rng = seed;
    int64_t G = (cols + g - 1) / g;
    size_t row_bytes = (size_t)((cols + 31) / 32) * (size_t)(4 * bits);
    uint8_t *q = malloc((size_t)cols);
    p->codes = malloc((size_t)rows * row_bytes);
    p->scales = malloc((size_t)(rows * G) * 2);
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t j = 0; j < cols; j++)
            q[j] = (uint8_t)(xf_test_rand_u64(&rng) % (1u << bits));
        xfq_pack_row(q, cols, bits, p->codes + (size_t)r * row_bytes);
    }
    free(q);
    for (int64_t i = 0; i < rows * G; i++)
        p->scales[i] = xf_f32_to_f16(0.01f + xf_test_rand_uniform(&rng));
    if (asym) {
        p->zeros = malloc((size_t)(rows * G));
        for (int64_t i = 0; i < rows * G; i++)
            p->zeros[i] = (uint8_t)(xf_test_rand_u64(&rng) % (1u << bits));
    }
    if (perm) {
        p->perm = malloc((size_t)cols * 4);
        for (int64_t j = 0; j < cols; j++)
            p->perm[j] = (int32_t)(cols - 1 - j); /* reversed */
        int32_t t = p->perm[0]; /* and not an involution: rotate the first three */
        p->perm[0] = p->perm[1];
        p->perm[1] = p->perm[2];
        p->perm[2] = t;
    }
    static const xf_dtype dt[9] = {[2] = XF_DTYPE_Q2, [3] = XF_DTYPE_Q3, [4] = XF_DTYPE_Q4,
                                   [8] = XF_DTYPE_Q8};
    xf_tensor t = {.name = name, .dtype = dt[bits], .ndim = 2, .shape = {rows, cols}};
    t.packed = (xf_packed_view){.bits = bits, .group_size = g, .n_groups = G, .asym = asym,
                                .codes = p->codes, .row_bytes = row_bytes, .scales = p->scales,
                                .zeros = p->zeros, .perm = p->perm};
    return t;
}

static void free_packed(test_packed *p)
{
    free(p->codes);
    free(p->scales);
    free(p->zeros);
    free(p->perm);
}

enum { N_TENSORS = 9 };

/* The standard model: plain tensors of each type, an empty one, a non-ASCII
 * name, and Q2/Q3/Q4/Q8 with and without asym/perm. Given unsorted. */
typedef struct fixture {
    char *dir;
    float f32[15];
    uint16_t f16[7];
    uint16_t bf16[24];
    float emb[6];
    test_packed q2, q3, q4, q8;
    xf_tensor t[N_TENSORS];
    json_t *meta;
} fixture;

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    fx->dir = xf_test_tmpdir();
    uint64_t rng = 7;
    for (int i = 0; i < 15; i++)
        fx->f32[i] = xf_test_rand_normal(&rng);
    for (int i = 0; i < 7; i++)
        fx->f16[i] = xf_f32_to_f16(xf_test_rand_normal(&rng));
    for (int i = 0; i < 24; i++)
        fx->bf16[i] = xf_f32_to_bf16(xf_test_rand_normal(&rng));
    for (int i = 0; i < 6; i++)
        fx->emb[i] = (float)i;
    int k = 0;
    /* Q3 [3, 40] g16 asym perm: codes 3*24 = 72 bytes at 0, scales 18 at 128,
     * zeros 9 at 192, perm 160 at 256 (hand-derived; used by the patches) */
    fx->t[k++] = make_packed(&fx->q3, "layers.0.q3", 3, 40, 3, 16, true, true, 3);
    /* Q4 [6, 200] g128 asym perm: codes 6*7*16 = 672 bytes, scales at 704 */
    fx->t[k++] = make_packed(&fx->q4, "layers.0.q4", 6, 200, 4, 128, true, true, 4);
    fx->t[k++] = make_packed(&fx->q2, "layers.0.q2", 4, 50, 2, 50, false, false, 2);
    fx->t[k++] = make_packed(&fx->q8, "layers.0.q8", 2, 70, 8, 32, false, true, 8);
    fx->t[k++] = (xf_tensor){.name = "c.bf16", .dtype = XF_DTYPE_BF16, .ndim = 3,
                             .shape = {2, 3, 4}, .data = fx->bf16, .nbytes = sizeof fx->bf16};
    fx->t[k++] = (xf_tensor){.name = "b.f16", .dtype = XF_DTYPE_F16, .ndim = 1, .shape = {7},
                             .data = fx->f16, .nbytes = sizeof fx->f16};
    fx->t[k++] = (xf_tensor){.name = "a.f32", .dtype = XF_DTYPE_F32, .ndim = 2, .shape = {3, 5},
                             .data = fx->f32, .nbytes = sizeof fx->f32};
    fx->t[k++] = (xf_tensor){.name = "empty", .dtype = XF_DTYPE_F32, .ndim = 2, .shape = {0, 4},
                             .data = NULL, .nbytes = 0};
    fx->t[k++] = (xf_tensor){.name = "emb.\xc3\xbc", .dtype = XF_DTYPE_F32, .ndim = 4,
                             .shape = {1, 2, 1, 3}, .data = fx->emb, .nbytes = sizeof fx->emb};
    assert_int_equal(k, N_TENSORS);
    json_error_t je;
    fx->meta = json_loads("{\"format\":\"xfq\",\"format_version\":1,"
                          "\"config\":{\"hidden_size\":64,\"name\":\"tiny\",\"eps\":1e-05},"
                          "\"recipe\":{\"method\":\"rtn\",\"bits\":4,\"sym\":false,"
                          "\"online_transforms\":[]},"
                          "\"provenance\":{\"tool\":\"xfquant\",\"command_line\":[\"a\",\"b\"]},"
                          "\"tensor_stats\":{\"layers.0.q4\":{\"qerr\":0.125}}}",
                          0, &je);
    assert_non_null(fx->meta);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    free_packed(&fx->q2);
    free_packed(&fx->q3);
    free_packed(&fx->q4);
    free_packed(&fx->q8);
    json_decref(fx->meta);
    xf_test_rmtree(fx->dir);
    free(fx->dir);
    free(fx);
    return 0;
}

static char *path_in(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    assert_non_null(p);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* ---------------------------------------------------------- raw bytes */

typedef struct blob {
    uint8_t *b;
    size_t n;
} blob;

static blob read_blob(const char *path)
{
    blob r = {0};
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    r.n = (size_t)ftell(fp);
    fseek(fp, 0, SEEK_SET);
    r.b = malloc(r.n ? r.n : 1);
    assert_int_equal(fread(r.b, 1, r.n, fp), r.n);
    fclose(fp);
    return r;
}

static blob copy_blob(blob a)
{
    blob r = {malloc(a.n), a.n};
    memcpy(r.b, a.b, a.n);
    return r;
}

static xfq_file_header get_hdr(blob a)
{
    xfq_file_header h;
    memcpy(&h, a.b, sizeof h);
    return h;
}

static void set_hdr(blob a, const xfq_file_header *h) { memcpy(a.b, h, sizeof *h); }

static size_t rec_pos(blob a, size_t i)
{
    return (size_t)get_hdr(a).table_offset + i * sizeof(xfq_tensor_record);
}

static xfq_tensor_record get_rec(blob a, size_t i)
{
    xfq_tensor_record r;
    memcpy(&r, a.b + rec_pos(a, i), sizeof r);
    return r;
}

static void set_rec(blob a, size_t i, const xfq_tensor_record *r)
{
    memcpy(a.b + rec_pos(a, i), r, sizeof *r);
}

/* Index of the record named `name`, by scanning the name pool. */
static size_t find_rec(blob a, const char *name)
{
    xfq_file_header h = get_hdr(a);
    const uint8_t *pool = a.b + h.table_offset + (size_t)h.n_tensors * sizeof(xfq_tensor_record);
    for (size_t i = 0; i < h.n_tensors; i++) {
        xfq_tensor_record r = get_rec(a, i);
        if (r.name_len == strlen(name) && memcmp(pool + r.name_offset, name, r.name_len) == 0)
            return i;
    }
    fail_msg("no record %s", name);
    return 0;
}

static uint8_t *tensor_bytes(blob a, size_t i)
{
    return a.b + get_hdr(a).data_offset + get_rec(a, i).offset;
}

/* CRC of metadata + table + name pool, as the spec defines it. */
static void fix_header_crc(blob a)
{
    xfq_file_header h = get_hdr(a);
    size_t table = (size_t)h.n_tensors * sizeof(xfq_tensor_record);
    uLong c = crc32(0, a.b + h.meta_offset, (uInt)h.meta_size);
    c = crc32(c, a.b + h.table_offset, (uInt)table);
    c = crc32(c, a.b + h.table_offset + table, h.names_size);
    h.header_crc = (uint32_t)c;
    set_hdr(a, &h);
}

static void fix_tensor_crc(blob a, size_t i)
{
    xfq_tensor_record r = get_rec(a, i);
    r.crc32 = (uint32_t)crc32(0, tensor_bytes(a, i), (uInt)r.nbytes);
    set_rec(a, i, &r);
    fix_header_crc(a);
}

/* Writes the variant and expects xfq_open to refuse it with a message
 * containing both substrings (the second may be NULL). */
static void expect_refused(fixture *fx, blob a, const char *s1, const char *s2)
{
    char *p = path_in(fx->dir, "bad.xfq");
    FILE *fp = fopen(p, "wb");
    assert_non_null(fp);
    if (a.n)
        assert_int_equal(fwrite(a.b, 1, a.n, fp), a.n);
    fclose(fp);
    xfq_file f;
    xf_error err = {{0}};
    int rc = xfq_open(&f, p, 0, &err);
    if (rc == 0 || !strstr(err.msg, s1) || (s2 && !strstr(err.msg, s2)) || !strstr(err.msg, p))
        fail_msg("expected refusal with \"%s\"/\"%s\", got rc %d: %s", s1, s2 ? s2 : "", rc,
                 err.msg);
    assert_null(strchr(err.msg, '\n'));
    assert_null(f.meta);
    assert_null(f.tensors.items);
    free(p);
}

static blob write_good(fixture *fx, const char *name)
{
    char *p = path_in(fx->dir, name);
    xf_error err = {{0}};
    if (xfq_write(p, fx->meta, fx->t, N_TENSORS, &err) != 0)
        fail_msg("xfq_write: %s", err.msg);
    blob a = read_blob(p);
    free(p);
    return a;
}


/* ------------------------------------------------------------- round trip */

static void check_same_tensor(const xf_tensor *a, const xf_tensor *b)
{
    assert_string_equal(a->name, b->name);
    assert_int_equal(a->dtype, b->dtype);
    assert_int_equal(a->ndim, b->ndim);
    for (int d = 0; d < a->ndim; d++)
        assert_int_equal(a->shape[d], b->shape[d]);
    if (!xf_dtype_is_packed(a->dtype)) {
        assert_int_equal(a->nbytes, b->nbytes);
        if (a->nbytes)
            assert_memory_equal(a->data, b->data, a->nbytes);
        return;
    }
    const xf_packed_view *p = &a->packed, *q = &b->packed;
    int64_t rows = a->shape[0], cols = a->shape[1];
    assert_int_equal(p->bits, q->bits);
    assert_int_equal(p->group_size, q->group_size);
    assert_int_equal(p->n_groups, q->n_groups);
    assert_int_equal(p->asym, q->asym);
    assert_int_equal(p->row_bytes, q->row_bytes);
    assert_memory_equal(p->codes, q->codes, (size_t)rows * p->row_bytes);
    assert_memory_equal(p->scales, q->scales, (size_t)(rows * p->n_groups) * 2);
    if (p->asym)
        assert_memory_equal(p->zeros, q->zeros, (size_t)(rows * p->n_groups));
    else
        assert_null(q->zeros);
    if (p->perm)
        assert_memory_equal(p->perm, q->perm, (size_t)cols * 4);
    else
        assert_null(q->perm);
    /* the mapped record is 64-aligned and data/nbytes cover it */
    assert_int_equal((uintptr_t)b->data % 64, 0);
    assert_ptr_equal(q->codes, b->data);
    float *x = malloc((size_t)(rows * cols) * 4), *y = malloc((size_t)(rows * cols) * 4);
    xf_error err;
    assert_int_equal(xf_tensor_to_f32(a, x, &err), 0);
    assert_int_equal(xf_tensor_to_f32(b, y, &err), 0);
    assert_memory_equal(x, y, (size_t)(rows * cols) * 4);
    free(x);
    free(y);
}

static void test_round_trip(void **state)
{
    fixture *fx = *state;
    blob a = write_good(fx, "m.xfq");
    char *p = path_in(fx->dir, "m.xfq");
    xfq_file f;
    xf_error err = {{0}};
    if (xfq_open(&f, p, 0, &err) != 0)
        fail_msg("xfq_open: %s", err.msg);
    assert_int_equal(f.tensors.n, N_TENSORS);
    for (size_t i = 0; i < N_TENSORS; i++) {
        const xf_tensor *t = xf_tensor_set_find(&f.tensors, fx->t[i].name);
        assert_non_null(t);
        check_same_tensor(&fx->t[i], t);
    }
    for (size_t i = 1; i < f.tensors.n; i++)
        assert_true(strcmp(f.tensors.items[i - 1].name, f.tensors.items[i].name) < 0);
    assert_true(json_equal(f.meta, fx->meta));
    xfq_close(&f);

    /* Raw layout, checked against the spec independently of the reader. */
    xfq_file_header h = get_hdr(a);
    assert_memory_equal(h.magic, "XFQUANT\0", 8);
    assert_int_equal(h.version, 1);
    assert_int_equal(h.meta_offset, 64);
    assert_int_equal(h.table_offset % 8, 0);
    assert_int_equal(h.data_offset % 64, 0);
    assert_int_equal(h.n_tensors, N_TENSORS);
    char *meta_text = malloc(h.meta_size + 1);
    memcpy(meta_text, a.b + 64, h.meta_size);
    meta_text[h.meta_size] = '\0';
    assert_non_null(strstr(meta_text, "\"format\":\"xfq\""));
    free(meta_text);
    for (size_t i = 0; i < N_TENSORS; i++) {
        xfq_tensor_record r = get_rec(a, i);
        assert_int_equal(r.offset % 64, 0);
        assert_int_equal(crc32(0, tensor_bytes(a, i), (uInt)r.nbytes), r.crc32);
        assert_true(h.data_offset + r.offset + r.nbytes <= a.n);
    }
    /* Q3 record: codes at 0, scales at 128, zeros at 192, perm at 256,
     * zero padding between */
    size_t i3 = find_rec(a, "layers.0.q3");
    xfq_tensor_record r3 = get_rec(a, i3);
    assert_int_equal(r3.storage, 17);
    assert_int_equal(r3.group_size, 16);
    assert_int_equal(r3.flags, 3);
    assert_int_equal(r3.nbytes, 416);
    const uint8_t *d = tensor_bytes(a, i3);
    assert_memory_equal(d, fx->q3.codes, 72);
    for (size_t k = 72; k < 128; k++)
        assert_int_equal(d[k], 0);
    assert_memory_equal(d + 128, fx->q3.scales, 18);
    assert_memory_equal(d + 192, fx->q3.zeros, 9);
    assert_memory_equal(d + 256, fx->q3.perm, 160);
    size_t i2 = find_rec(a, "layers.0.q2");
    assert_int_equal(get_rec(a, i2).flags, 0);
    assert_int_equal(get_rec(a, i2).group_size, 50);
    free(a.b);
    free(p);
}

/* Same input => same bytes, whatever the order the tensors come in. */
static void test_deterministic(void **state)
{
    fixture *fx = *state;
    blob a = write_good(fx, "one.xfq");
    xf_tensor rev[N_TENSORS];
    for (size_t i = 0; i < N_TENSORS; i++)
        rev[i] = fx->t[N_TENSORS - 1 - i];
    char *p = path_in(fx->dir, "two.xfq");
    xf_error err;
    assert_int_equal(xfq_write(p, fx->meta, rev, N_TENSORS, &err), 0);
    blob b = read_blob(p);
    assert_int_equal(a.n, b.n);
    assert_memory_equal(a.b, b.b, a.n);
    free(a.b);
    free(b.b);
    free(p);
}

/* Metadata without the format keys gets them; an empty model is fine. */
static void test_metadata_defaults_and_empty(void **state)
{
    fixture *fx = *state;
    char *p = path_in(fx->dir, "e.xfq");
    json_t *meta = json_pack("{s:{s:i}}", "config", "n_layer", 2);
    xf_error err;
    assert_int_equal(xfq_write(p, meta, NULL, 0, &err), 0);
    xfq_file f;
    assert_int_equal(xfq_open(&f, p, 0, &err), 0);
    assert_string_equal(json_string_value(json_object_get(f.meta, "format")), "xfq");
    assert_int_equal(json_integer_value(json_object_get(f.meta, "format_version")), 1);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(f.meta, "config"),
                                                        "n_layer")),
                     2);
    assert_int_equal(f.tensors.n, 0);
    assert_true(xfq_packed_bits_per_weight(&f.tensors) == 0.0);
    xfq_close(&f);
    json_decref(meta);
    free(p);
}

/* A non-empty online_transforms list opens: the evaluator decides. */
static void test_online_transforms_open(void **state)
{
    fixture *fx = *state;
    json_object_set_new(json_object_get(fx->meta, "recipe"), "online_transforms",
                        json_pack("[s]", "hadamard_down_proj"));
    blob a = write_good(fx, "ot.xfq");
    char *p = path_in(fx->dir, "ot.xfq");
    xfq_file f;
    xf_error err;
    assert_int_equal(xfq_open(&f, p, 0, &err), 0);
    json_t *ot = json_object_get(json_object_get(f.meta, "recipe"), "online_transforms");
    assert_int_equal(json_array_size(ot), 1);
    xfq_close(&f);
    free(p);
    free(a.b);
}

/* bits per weight = 8 * nbytes / (rows * cols), from the spec's layout. */
static void test_bits_per_weight(void **state)
{
    fixture *fx = *state;
    test_packed q;
    xf_tensor t[2];
    t[0] = make_packed(&q, "w", 256, 688, 4, 128, true, false, 11);
    uint16_t *h = calloc(64 * 64, 2);
    t[1] = (xf_tensor){.name = "x", .dtype = XF_DTYPE_F16, .ndim = 2, .shape = {64, 64},
                       .data = h, .nbytes = 64 * 64 * 2};
    char *p = path_in(fx->dir, "bpw.xfq");
    xf_error err;
    assert_int_equal(xfq_write(p, fx->meta, t, 2, &err), 0);
    xfq_file f;
    assert_int_equal(xfq_open(&f, p, 0, &err), 0);

    /* codes: 256 rows * ceil(688/32) blocks * 16 bytes; scales fp16 and
     * zeros u8 [256, ceil(688/128)], each part starting 64-aligned */
    uint64_t codes = 256ull * ((688 + 31) / 32) * 16;
    uint64_t G = (688 + 127) / 128;
    uint64_t scales_off = (codes + 63) / 64 * 64;
    uint64_t zeros_off = (scales_off + 256 * G * 2 + 63) / 64 * 64;
    uint64_t total = zeros_off + 256 * G;
    double want = 8.0 * (double)total / (256.0 * 688.0);
    const xf_tensor *w = xf_tensor_set_find(&f.tensors, "w");
    assert_int_equal(w->nbytes, total);
    assert_true(fabs(xfq_packed_bits_per_weight(&f.tensors) - want) < 1e-12);
    double all = 8.0 * (double)(total + 64 * 64 * 2) / (256.0 * 688.0 + 64.0 * 64.0);
    assert_true(fabs(xfq_all_bits_per_weight(&f.tensors) - all) < 1e-12);
    xfq_close(&f);
    free_packed(&q);
    free(h);
    free(p);
}

/* ---------------------------------------------------------- corruption */

static void test_flipped_data_bit(void **state)
{
    fixture *fx = *state;
    blob good = write_good(fx, "g.xfq");
    blob a = copy_blob(good);
    tensor_bytes(a, find_rec(a, "layers.0.q4"))[100] ^= 0x10;
    expect_refused(fx, a, "tensor layers.0.q4: data CRC mismatch", NULL);
    /* ... but without CRC checks it opens (the bit is in the codes) */
    char *p = path_in(fx->dir, "bad.xfq");
    xfq_file f;
    xf_error err;
    assert_int_equal(xfq_open(&f, p, XFQ_OPEN_NO_CRC, &err), 0);
    xfq_close(&f);
    memcpy(a.b, good.b, a.n);
    tensor_bytes(a, find_rec(a, "b.f16"))[3] ^= 1;
    expect_refused(fx, a, "tensor b.f16: data CRC mismatch", NULL);
    free(p);
    free(a.b);
    free(good.b);
}

static void test_flipped_header_bits(void **state)
{
    fixture *fx = *state;
    blob good = write_good(fx, "g.xfq");
    blob a = copy_blob(good);
    a.b[64 + 5] ^= 0x01; /* metadata */
    expect_refused(fx, a, "header CRC mismatch", NULL);
    memcpy(a.b, good.b, a.n);
    a.b[rec_pos(a, 2) + 17] ^= 0x40; /* a shape byte in the table */
    expect_refused(fx, a, "header CRC mismatch", NULL);
    memcpy(a.b, good.b, a.n);
    a.b[rec_pos(a, N_TENSORS) + 2] ^= 2; /* the name pool follows the table */
    expect_refused(fx, a, "header CRC mismatch", NULL);
    free(a.b);
    free(good.b);
}

static void test_truncated(void **state)
{
    fixture *fx = *state;
    blob good = write_good(fx, "g.xfq");
    xfq_file_header h = get_hdr(good);
    size_t cuts[] = {0,
                     1,
                     63,
                     64,
                     64 + (size_t)h.meta_size / 2,
                     (size_t)h.table_offset + 100,
                     (size_t)h.data_offset - 1,
                     (size_t)h.data_offset,
                     (size_t)h.data_offset + 70,
                     good.n / 2,
                     good.n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        blob a = {good.b, cuts[i]};
        expect_refused(fx, a, "truncated", NULL);
    }
    free(good.b);
}

static void test_header_fields(void **state)
{
    fixture *fx = *state;
    blob good = write_good(fx, "g.xfq");
    blob a = copy_blob(good);
    xfq_file_header h;

    a.b[6] = 'X';
    expect_refused(fx, a, "bad magic", NULL);
    memcpy(a.b, good.b, a.n);
    h = get_hdr(a), h.version = 2, set_hdr(a, &h);
    expect_refused(fx, a, "unsupported .xfq version 2", NULL);
    memcpy(a.b, good.b, a.n);
    h = get_hdr(a), h.flags = 4, set_hdr(a, &h);
    expect_refused(fx, a, "unknown header flag bits 0x4", NULL);
    memcpy(a.b, good.b, a.n);
    h = get_hdr(a), h.reserved = 1, set_hdr(a, &h);
    expect_refused(fx, a, "reserved", NULL);
    memcpy(a.b, good.b, a.n);
    h = get_hdr(a), h.data_offset += 64, set_hdr(a, &h);
    expect_refused(fx, a, "data offset", NULL);
    memcpy(a.b, good.b, a.n);
    h = get_hdr(a), h.meta_size = (uint64_t)1 << 40, set_hdr(a, &h);
    expect_refused(fx, a, "metadata size", NULL);
    memcpy(a.b, good.b, a.n);
    h = get_hdr(a), h.n_tensors = 0xffffffffu, set_hdr(a, &h);
    expect_refused(fx, a, "data offset", NULL); /* placement no longer adds up */
    free(a.b);
    free(good.b);
}

/* Patches a record field, fixes the header CRC, expects the refusal. */
typedef void (*rec_patch)(xfq_tensor_record *r);

static void patch_record(fixture *fx, blob good, const char *name, rec_patch fn, const char *s1,
                         const char *s2)
{
    blob a = copy_blob(good);
    size_t i = find_rec(a, name);
    xfq_tensor_record r = get_rec(a, i);
    fn(&r);
    set_rec(a, i, &r);
    fix_header_crc(a);
    expect_refused(fx, a, s1, s2);
    free(a.b);
}

/* 200: outside the GGML range 64..127 (tested in test_xfq_ggml.c) */
static void p_storage200(xfq_tensor_record *r) { r->storage = 200; }
static void p_flags(xfq_tensor_record *r) { r->flags |= 8; }
static void p_plain_flags(xfq_tensor_record *r) { r->flags = 1; }
static void p_offset(xfq_tensor_record *r) { r->offset += 8; }
static void p_nbytes(xfq_tensor_record *r) { r->nbytes += 4; }
static void p_shape_huge(xfq_tensor_record *r)
{
    r->shape[0] = (uint64_t)1 << 40;
    r->shape[1] = (uint64_t)1 << 40;
}
static void p_shape_bytes(xfq_tensor_record *r) { r->shape[0] = (uint64_t)1 << 61, r->shape[1] = 2; }
static void p_shape_neg(xfq_tensor_record *r) { r->shape[0] = UINT64_MAX; }
static void p_packed_rows(xfq_tensor_record *r) { r->shape[0] = (uint64_t)1 << 60; }
static void p_ndim0(xfq_tensor_record *r) { r->ndim = 0; }
static void p_ndim5(xfq_tensor_record *r) { r->ndim = 5; }
static void p_unused_dim(xfq_tensor_record *r) { r->shape[3] = 1; }
static void p_group0(xfq_tensor_record *r) { r->group_size = 0; }
static void p_group_big(xfq_tensor_record *r) { r->group_size = 201; }
static void p_packed_ndim(xfq_tensor_record *r) { r->ndim = 3, r->shape[2] = 1; }
static void p_far(xfq_tensor_record *r) { r->offset = (uint64_t)1 << 40; }
static void p_wrap(xfq_tensor_record *r) { r->offset = UINT64_MAX - 63; }
static void p_name_out(xfq_tensor_record *r) { r->name_offset = 1u << 30; }
static void p_name_empty(xfq_tensor_record *r) { r->name_len = 0; }
static void p_reserved(xfq_tensor_record *r) { r->reserved = 5; }

static void test_bad_records(void **state)
{
    fixture *fx = *state;
    blob good = write_good(fx, "g.xfq");
    patch_record(fx, good, "a.f32", p_storage200,
                 "tensor a.f32: unknown storage type 200 (file written by a newer xfquant?)", NULL);
    patch_record(fx, good, "layers.0.q4", p_flags, "tensor layers.0.q4: unknown flag bits 0x8",
                 NULL);
    patch_record(fx, good, "a.f32", p_plain_flags, "tensor a.f32", "flags");
    patch_record(fx, good, "c.bf16", p_offset, "tensor c.bf16: offset", "not a multiple of 64");
    patch_record(fx, good, "a.f32", p_nbytes, "tensor a.f32: nbytes 64", "implies 60");
    patch_record(fx, good, "layers.0.q3", p_nbytes, "tensor layers.0.q3: nbytes 420",
                 "implies 416");
    patch_record(fx, good, "a.f32", p_shape_huge, "tensor a.f32: shape overflows", NULL);
    patch_record(fx, good, "a.f32", p_shape_bytes, "tensor a.f32: shape overflows", NULL);
    patch_record(fx, good, "a.f32", p_shape_neg, "tensor a.f32: shape overflows", NULL);
    patch_record(fx, good, "layers.0.q4", p_packed_rows, "tensor layers.0.q4", "overflow");
    patch_record(fx, good, "a.f32", p_ndim0, "tensor a.f32: ndim 0", NULL);
    patch_record(fx, good, "a.f32", p_ndim5, "tensor a.f32: ndim 5", NULL);
    patch_record(fx, good, "a.f32", p_unused_dim, "tensor a.f32: unused dimension 3", NULL);
    patch_record(fx, good, "layers.0.q4", p_group0, "tensor layers.0.q4: group size 0", NULL);
    patch_record(fx, good, "layers.0.q4", p_group_big, "tensor layers.0.q4: group size 201",
                 NULL);
    patch_record(fx, good, "layers.0.q4", p_packed_ndim, "tensor layers.0.q4", "2 dimensions");
    patch_record(fx, good, "a.f32", p_far, "tensor a.f32", "outside the file");
    patch_record(fx, good, "a.f32", p_wrap, "tensor a.f32", "outside the file");
    patch_record(fx, good, "a.f32", p_name_out, "tensor record 0", "name pool");
    patch_record(fx, good, "a.f32", p_name_empty, "tensor record 0", "name pool");
    patch_record(fx, good, "b.f16", p_reserved, "tensor b.f16: reserved", NULL);
    free(good.b);
}

static void test_overlap_and_names(void **state)
{
    fixture *fx = *state;
    blob good = write_good(fx, "g.xfq");
    blob a = copy_blob(good);

    /* b.f16 moved onto a.f32's bytes (both fit; offsets aligned) */
    xfq_tensor_record ra = get_rec(a, find_rec(a, "a.f32"));
    size_t ib = find_rec(a, "b.f16");
    xfq_tensor_record rb = get_rec(a, ib);
    rb.offset = ra.offset;
    set_rec(a, ib, &rb);
    fix_header_crc(a);
    expect_refused(fx, a, "tensors a.f32 and b.f16 overlap", NULL);

    /* name pool edits: "a.f32" -> "z.f32" breaks the order */
    memcpy(a.b, good.b, a.n);
    xfq_file_header h = get_hdr(a);
    uint8_t *pool = a.b + h.table_offset + (size_t)h.n_tensors * 80;
    ra = get_rec(a, 0);
    assert_int_equal(pool[ra.name_offset], 'a');
    pool[ra.name_offset] = 'z';
    fix_header_crc(a);
    expect_refused(fx, a, "not sorted", NULL);
    /* invalid UTF-8 */
    pool[ra.name_offset] = 0xff;
    fix_header_crc(a);
    expect_refused(fx, a, "tensor record 0: name is not valid UTF-8", NULL);
    /* a NUL inside a name */
    pool[ra.name_offset] = 0;
    fix_header_crc(a);
    expect_refused(fx, a, "not valid UTF-8", NULL);
    /* the same name twice */
    memcpy(a.b, good.b, a.n);
    xfq_tensor_record r1 = get_rec(a, 1);
    ra = get_rec(a, 0);
    r1.name_offset = ra.name_offset;
    r1.name_len = ra.name_len;
    set_rec(a, 1, &r1);
    fix_header_crc(a);
    expect_refused(fx, a, "name appears more than once", NULL);
    /* distinct, sorted names that share pool bytes: record i names the
     * (11 + i)-byte run starting at "layers.0.q2" ("layers.0.q2", "layers.0.q2l",
     * ...), so the copies need 135 + 9 bytes of a buffer sized 71 + 9 (the
     * heap overflow the fuzzer found, reached before the duplicate check) */
    memcpy(a.b, good.b, a.n);
    h = get_hdr(a);
    xfq_tensor_record rl = get_rec(a, find_rec(a, "layers.0.q2"));
    assert_true(rl.name_offset + 11 + h.n_tensors - 1 <= h.names_size);
    for (size_t i = 0; i < h.n_tensors; i++) {
        xfq_tensor_record r = get_rec(a, i);
        r.name_offset = rl.name_offset;
        r.name_len = 11 + (uint32_t)i;
        set_rec(a, i, &r);
    }
    fix_header_crc(a);
    expect_refused(fx, a, "names overlap in the name pool", NULL);
    free(a.b);
    free(good.b);
}

/* Patches bytes of a packed record and fixes both CRCs, so the grid
 * check itself must catch the problem. */
static void patch_grid(fixture *fx, blob good, const char *name, size_t at, const void *bytes,
                       size_t n, const char *s1, const char *s2)
{
    blob a = copy_blob(good);
    size_t i = find_rec(a, name);
    memcpy(tensor_bytes(a, i) + at, bytes, n);
    fix_tensor_crc(a, i);
    expect_refused(fx, a, s1, s2);
    /* and with XFQ_OPEN_NO_CRC too: dequantization relies on the grid */
    char *p = path_in(fx->dir, "bad.xfq");
    xfq_file f;
    xf_error err;
    assert_int_equal(xfq_open(&f, p, XFQ_OPEN_NO_CRC, &err), -1);
    assert_non_null(strstr(err.msg, s1));
    free(p);
    free(a.b);
}

static void test_bad_grid(void **state)
{
    fixture *fx = *state;
    blob good = write_good(fx, "g.xfq");
    uint16_t nan = 0x7e00, inf = 0x7c00, zero = 0, negzero = 0x8000, neg = 0xbc00;
    /* layers.0.q4 scales at 704; layers.0.q3 scales at 128 ([3, 3] fp16),
     * zeros at 192, perm at 256 */
    patch_grid(fx, good, "layers.0.q4", 704, &nan, 2, "tensor layers.0.q4: scale [0, 0] is NaN",
               NULL);
    patch_grid(fx, good, "layers.0.q4", 704 + 2 * 3, &inf, 2,
               "tensor layers.0.q4: scale [1, 1] is infinite", NULL);
    patch_grid(fx, good, "layers.0.q3", 128 + 2 * 8, &zero, 2,
               "tensor layers.0.q3: scale [2, 2] is zero", NULL);
    patch_grid(fx, good, "layers.0.q3", 128, &negzero, 2, "scale [0, 0] is zero", NULL);
    patch_grid(fx, good, "layers.0.q3", 128, &neg, 2, "scale [0, 0] is negative", NULL);
    uint8_t z = 8; /* Q3 codes are 0..7 */
    patch_grid(fx, good, "layers.0.q3", 192 + 4, &z, 1,
               "tensor layers.0.q3: zero point [1, 1] is 8, above 7", NULL);
    int32_t p0;
    memcpy(&p0, tensor_bytes(good, find_rec(good, "layers.0.q3")) + 256, 4);
    patch_grid(fx, good, "layers.0.q3", 256 + 4 * 5, &p0, 4,
               "tensor layers.0.q3: perm is not a permutation", "a repeat");
    int32_t big = 40, negp = -1;
    patch_grid(fx, good, "layers.0.q3", 256, &big, 4, "perm is not a permutation",
               "out of range");
    patch_grid(fx, good, "layers.0.q3", 256, &negp, 4, "perm is not a permutation",
               "out of range");
    free(good.b);
}

/* Replaces `from` with `to` (same length) in the metadata, fixes the CRC. */
static void patch_meta(fixture *fx, blob good, const char *from, const char *to, const char *s1)
{
    blob a = copy_blob(good);
    xfq_file_header h = get_hdr(a);
    char *m = malloc(h.meta_size + 1);
    memcpy(m, a.b + 64, h.meta_size);
    m[h.meta_size] = '\0';
    char *at = strstr(m, from);
    assert_non_null(at);
    assert_int_equal(strlen(from), strlen(to));
    memcpy(a.b + 64 + (at - m), to, strlen(to));
    fix_header_crc(a);
    expect_refused(fx, a, s1, NULL);
    free(m);
    free(a.b);
}

static void test_bad_metadata(void **state)
{
    fixture *fx = *state;
    json_object_set_new(json_object_get(fx->meta, "recipe"), "online_transforms",
                        json_pack("[s]", "ab"));
    blob good = write_good(fx, "g.xfq");
    patch_meta(fx, good, "\"format\":\"xfq\"", "\"format\":\"xfr\"", "\"format\" must be \"xfq\"");
    patch_meta(fx, good, "\"format_version\":1", "\"format_version\":2",
               "\"format_version\" must be 1");
    patch_meta(fx, good, "\"format_version\":1", "\"format_version\":x", "metadata: invalid JSON");
    patch_meta(fx, good, "[\"ab\"]", "\"abcd\"", "\"recipe.online_transforms\" must be an array");
    patch_meta(fx, good, "\"recipe\":{", "\"recipe\":[", "metadata: invalid JSON");
    free(good.b);
    /* valid JSON, but not an object: "[1   ...   ]" */
    blob a = write_good(fx, "g.xfq");
    xfq_file_header h = get_hdr(a);
    memset(a.b + 64, ' ', h.meta_size);
    memcpy(a.b + 64, "[1", 2);
    a.b[64 + h.meta_size - 1] = ']';
    fix_header_crc(a);
    expect_refused(fx, a, "metadata is not a JSON object", NULL);
    free(a.b);
}

/* ---------------------------------------------------------------- writer */

/* xfq_write must refuse, naming `s1`, leave no file (not even a temp file)
 * in a fresh directory, and leave an existing file untouched. */
static void expect_write_refused(fixture *fx, const json_t *meta, const xf_tensor *t, size_t n,
                                 const char *s1, const char *s2)
{
    char *sub = path_in(fx->dir, "w");
    xf_test_rmtree(sub);
    assert_int_equal(mkdir(sub, 0700), 0);
    char *p = path_in(sub, "out.xfq");
    xf_error err = {{0}};
    int rc = xfq_write(p, meta, t, n, &err);
    if (rc == 0 || !strstr(err.msg, s1) || (s2 && !strstr(err.msg, s2)))
        fail_msg("expected write refusal \"%s\"/\"%s\", got rc %d: %s", s1, s2 ? s2 : "", rc,
                 err.msg);
    assert_int_equal(xf_test_dir_entries(sub), 0);
    /* an existing output survives a refused write */
    FILE *fp = fopen(p, "wb");
    fputs("old", fp);
    fclose(fp);
    assert_int_equal(xfq_write(p, meta, t, n, &err), -1);
    assert_int_equal(xf_test_dir_entries(sub), 1);
    blob b = read_blob(p);
    assert_int_equal(b.n, 3);
    assert_memory_equal(b.b, "old", 3);
    free(b.b);
    free(p);
    xf_test_rmtree(sub);
    free(sub);
}

static void test_write_refuses_nonfinite(void **state)
{
    fixture *fx = *state;
    xf_tensor t[N_TENSORS];
    memcpy(t, fx->t, sizeof t);
    size_t ia = 6, ib = 5, ic = 4; /* a.f32, b.f16, c.bf16 in setup order */
    float f[15];
    memcpy(f, fx->f32, sizeof f);
    f[7] = NAN;
    t[ia].data = f;
    expect_write_refused(fx, fx->meta, t, N_TENSORS, "tensor a.f32: element 7 is NaN", NULL);
    f[7] = -INFINITY;
    expect_write_refused(fx, fx->meta, t, N_TENSORS, "tensor a.f32: element 7", "infinite");
    t[ia] = fx->t[ia];
    uint16_t h[7];
    memcpy(h, fx->f16, sizeof h);
    h[6] = 0x7c00; /* +Inf */
    t[ib].data = h;
    expect_write_refused(fx, fx->meta, t, N_TENSORS, "tensor b.f16: element 6", NULL);
    t[ib] = fx->t[ib];
    uint16_t bf[24];
    memcpy(bf, fx->bf16, sizeof bf);
    bf[0] = 0xffc1; /* NaN */
    t[ic].data = bf;
    expect_write_refused(fx, fx->meta, t, N_TENSORS, "tensor c.bf16: element 0", NULL);
    t[ic] = fx->t[ic];
    /* scales */
    uint16_t sc[6 * 2];
    memcpy(sc, fx->q4.scales, sizeof sc);
    sc[5] = 0x7e00;
    t[1].packed.scales = sc;
    expect_write_refused(fx, fx->meta, t, N_TENSORS, "tensor layers.0.q4: scale [2, 1] is NaN",
                         NULL);
    sc[5] = 0;
    expect_write_refused(fx, fx->meta, t, N_TENSORS, "tensor layers.0.q4: scale [2, 1] is zero",
                         NULL);
}

static void test_write_refuses_bad_input(void **state)
{
    fixture *fx = *state;
    xf_tensor t[N_TENSORS];
    memcpy(t, fx->t, sizeof t);
    t[5].name = "a.f32";
    expect_write_refused(fx, fx->meta, t, N_TENSORS, "tensor a.f32: name appears more than once",
                         NULL);
    t[5].name = "";
    expect_write_refused(fx, fx->meta, t, N_TENSORS, "empty name", NULL);
    t[5].name = NULL;
    expect_write_refused(fx, fx->meta, t, N_TENSORS, "empty name", NULL);
    t[5].name = "bad\xc0\xaf"; /* overlong "/" */
    expect_write_refused(fx, fx->meta, t, N_TENSORS, "not valid UTF-8", NULL);
    t[5] = fx->t[5];
    t[6].nbytes = 56;
    expect_write_refused(fx, fx->meta, t, N_TENSORS, "tensor a.f32: nbytes 56", "implies 60");
    t[6] = fx->t[6];
    t[6].dtype = XF_DTYPE_U32; /* I32 is storable (outlier side tables), U32 is not */
    expect_write_refused(fx, fx->meta, t, N_TENSORS, "tensor a.f32: dtype U32 cannot be stored",
                         NULL);
    t[6] = fx->t[6];
    t[6].ndim = 5;
    expect_write_refused(fx, fx->meta, t, N_TENSORS, "tensor a.f32: ndim 5", NULL);
    t[6] = fx->t[6];
    t[1].packed.row_bytes = 96;
    expect_write_refused(fx, fx->meta, t, N_TENSORS, "tensor layers.0.q4: row_bytes", NULL);
    t[1] = fx->t[1];
    t[1].packed.n_groups = 1;
    expect_write_refused(fx, fx->meta, t, N_TENSORS, "tensor layers.0.q4: n_groups", NULL);
    t[1] = fx->t[1];
    t[1].packed.group_size = 0;
    expect_write_refused(fx, fx->meta, t, N_TENSORS, "tensor layers.0.q4: group size 0", NULL);
    t[1] = fx->t[1];
    t[1].packed.bits = 3;
    expect_write_refused(fx, fx->meta, t, N_TENSORS, "tensor layers.0.q4: packed view has 3 bits",
                         NULL);
    t[1] = fx->t[1];
    t[1].packed.zeros = NULL;
    expect_write_refused(fx, fx->meta, t, N_TENSORS, "tensor layers.0.q4", "zero points");
    t[1] = fx->t[1];
    uint8_t z[9];
    memcpy(z, fx->q3.zeros, sizeof z);
    z[8] = 200;
    t[0].packed.zeros = z;
    expect_write_refused(fx, fx->meta, t, N_TENSORS, "tensor layers.0.q3: zero point [2, 2] is 200",
                         NULL);
    t[0] = fx->t[0];
    int32_t perm[40];
    memcpy(perm, fx->q3.perm, sizeof perm);
    perm[39] = perm[0];
    t[0].packed.perm = perm;
    expect_write_refused(fx, fx->meta, t, N_TENSORS, "tensor layers.0.q3: perm", NULL);
    t[0] = fx->t[0];

    json_t *arr = json_array();
    expect_write_refused(fx, arr, t, N_TENSORS, "metadata must be a JSON object", NULL);
    json_decref(arr);
    json_t *m = json_deep_copy(fx->meta);
    json_object_set_new(m, "format", json_string("gguf"));
    expect_write_refused(fx, m, t, N_TENSORS, "\"format\" must be \"xfq\"", NULL);
    json_object_set_new(m, "format", json_string("xfq"));
    json_object_set_new(m, "format_version", json_integer(2));
    expect_write_refused(fx, m, t, N_TENSORS, "\"format_version\" must be 1", NULL);
    json_object_set_new(m, "format_version", json_integer(1));
    json_object_set_new(json_object_get(m, "recipe"), "online_transforms", json_string("x"));
    expect_write_refused(fx, m, t, N_TENSORS, "online_transforms\" must be an array", NULL);
    json_decref(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deterministic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metadata_defaults_and_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_online_transforms_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bits_per_weight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flipped_data_bit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flipped_header_bits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_header_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overlap_and_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_grid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_metadata, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_refuses_nonfinite, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_refuses_bad_input, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
