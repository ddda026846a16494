/* safetensors: writer/reader round trips, the byte layout the spec asks
 * for, every malformed-file refusal (files written byte by byte here), the
 * writer's refusals (no output left behind), and the shared models. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/read_file.h"
#include "formats/safetensors.h"
#include "tests/support/test_util.h"

/* ---- helpers ------------------------------------------------------------ */


/* u64 LE header length, the header, then data_len bytes 0,1,2,... */
static char *write_st(const char *dir, const char *name, uint64_t header_len, const char *header,
                      size_t header_bytes, size_t data_len)
{
    size_t total = 8 + header_bytes + data_len;
    uint8_t *buf = malloc(total);
    assert_non_null(buf);
    for (int b = 0; b < 8; b++)
        buf[b] = (uint8_t)(header_len >> (8 * b));
    memcpy(buf + 8, header, header_bytes);
    for (size_t i = 0; i < data_len; i++)
        buf[8 + header_bytes + i] = (uint8_t)i;
    char *path = xf_test_write_file(dir, name, buf, total);
    free(buf);
    assert_non_null(path);
    return path;
}

static char *write_header_file(const char *dir, const char *header, size_t data_len)
{
    return write_st(dir, "t.safetensors", strlen(header), header, strlen(header), data_len);
}

/* Opening must fail with one line naming the file and containing `word`,
 * and leave the struct empty. */
static void expect_open_fails(const char *path, const char *word)
{
    xf_safetensors st;
    xf_error err;
    xf_error_clear(&err);
    int rc = xf_safetensors_open(&st, path, &err);
    if (rc == 0) {
        xf_safetensors_close(&st);
        fail_msg("%s opened although \"%s\" was expected", path, word);
    }
    assert_int_equal(rc, -1);
    if (!strstr(err.msg, word) || !strstr(err.msg, path))
        fail_msg("message \"%s\" lacks \"%s\" or the path", err.msg, word);
    assert_null(strchr(err.msg, '\n'));
    assert_null(st.tensors);
    assert_null(st.names);
    assert_null(st.metadata);
    assert_null(st.file.data);
}

static xf_tensor make_tensor(const char *name, xf_dtype dt, int ndim, const int64_t *shape,
                             const void *data, size_t nbytes)
{
    xf_tensor t;
    memset(&t, 0, sizeof t);
    t.name = name;
    t.dtype = dt;
    t.ndim = ndim;
    for (int d = 0; d < ndim; d++)
        t.shape[d] = shape[d];
    t.data = data;
    t.nbytes = nbytes;
    return t;
}

/* ---- round trips -------------------------------------------------------- */

static const xf_dtype plain_types[] = {XF_DTYPE_F16, XF_DTYPE_BF16, XF_DTYPE_F32, XF_DTYPE_F64,
                                       XF_DTYPE_I8,  XF_DTYPE_U8,   XF_DTYPE_I16, XF_DTYPE_U16,
                                       XF_DTYPE_I32, XF_DTYPE_U32,  XF_DTYPE_I64, XF_DTYPE_U64,
                                       XF_DTYPE_BOOL};
/* the spec's names, written out independently of tensor.c */
static const char *const plain_names[] = {"F16", "BF16", "F32", "F64", "I8",  "U8",  "I16",
                                          "U16", "I32",  "U32", "I64", "U64", "BOOL"};
static const size_t plain_sizes[] = {2, 2, 4, 8, 1, 1, 2, 2, 4, 4, 8, 8, 1};
#define N_PLAIN (sizeof plain_types / sizeof plain_types[0])

typedef struct sample {
    char names[N_PLAIN + 2][32];
    uint8_t *bufs[N_PLAIN + 2];
    xf_tensor t[N_PLAIN + 2];
    size_t n;
} sample;

/* One [3,5] tensor per plain dtype (odd sizes, so data is not naturally
 * aligned), a 0-dim F32 and a zero-size [0,4] F16; listed out of order. */
static void sample_init(sample *s)
{
    memset(s, 0, sizeof *s);
    uint64_t rng = 42;
    int64_t shape[2] = {3, 5};
    for (size_t i = 0; i < N_PLAIN; i++) {
        size_t k = N_PLAIN - 1 - i; /* reverse of name order for most */
        snprintf(s->names[i], sizeof s->names[i], "w.%s", plain_names[k]);
        size_t nb = 15 * plain_sizes[k];
        s->bufs[i] = malloc(nb);
        assert_non_null(s->bufs[i]);
        for (size_t b = 0; b < nb; b++)
            s->bufs[i][b] = (uint8_t)xf_test_rand_u64(&rng);
        if (plain_types[k] == XF_DTYPE_BOOL)
            for (size_t b = 0; b < nb; b++)
                s->bufs[i][b] &= 1;
        s->t[i] = make_tensor(s->names[i], plain_types[k], 2, shape, s->bufs[i], nb);
    }
    size_t i = N_PLAIN;
    snprintf(s->names[i], sizeof s->names[i], "scalar");
    s->bufs[i] = malloc(4);
    assert_non_null(s->bufs[i]);
    float v = 3.25f;
    memcpy(s->bufs[i], &v, 4);
    s->t[i] = make_tensor(s->names[i], XF_DTYPE_F32, 0, NULL, s->bufs[i], 4);
    i++;
    int64_t zshape[2] = {0, 4};
    snprintf(s->names[i], sizeof s->names[i], "empty");
    s->t[i] = make_tensor(s->names[i], XF_DTYPE_F16, 2, zshape, NULL, 0);
    s->n = i + 1;
}

static void sample_free(sample *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->bufs[i]);
}

static void test_roundtrip_all_dtypes(void **state)
{
    (void)state;
    char *dir = xf_test_tmpdir();
    assert_non_null(dir);
    sample s;
    sample_init(&s);
    json_t *meta = json_pack("{s:s, s:s}", "format", "pt", "note", "caf\xc3\xa9 \"quoted\"");
    char *path = xf_path_join(dir, "m.safetensors");
    xf_error err;
    assert_int_equal(xf_safetensors_write(path, s.t, s.n, meta, &err), 0);
    assert_int_equal(xf_test_dir_entries(dir), 1); /* no temp file left */

    xf_safetensors st;
    if (xf_safetensors_open(&st, path, &err) != 0)
        fail_msg("%s", err.msg);
    assert_int_equal(st.n_tensors, s.n);
    for (size_t i = 1; i < st.n_tensors; i++)
        assert_true(strcmp(st.tensors[i - 1].name, st.tensors[i].name) < 0);
    for (size_t i = 0; i < s.n; i++) {
        const xf_tensor *t = xf_safetensors_find(&st, s.t[i].name);
        assert_non_null(t);
        assert_string_equal(t->name, s.t[i].name);
        assert_int_equal(t->dtype, s.t[i].dtype);
        assert_int_equal(t->ndim, s.t[i].ndim);
        for (int d = 0; d < t->ndim; d++)
            assert_int_equal(t->shape[d], s.t[i].shape[d]);
        assert_int_equal(t->nbytes, s.t[i].nbytes);
        if (t->nbytes)
            assert_memory_equal(t->data, s.t[i].data, t->nbytes);
        /* views point into the mapping */
        assert_true((const uint8_t *)t->data >= st.file.data &&
                    (const uint8_t *)t->data + t->nbytes <= st.file.data + st.file.size);
    }
    const xf_tensor *scalar = xf_safetensors_find(&st, "scalar");
    assert_int_equal(xf_tensor_numel(scalar), 1);
    assert_int_equal(xf_tensor_numel(xf_safetensors_find(&st, "empty")), 0);
    assert_null(xf_safetensors_find(&st, "missing"));
    assert_null(xf_safetensors_find(&st, "__metadata__"));
    assert_non_null(st.metadata);
    assert_true(json_equal(st.metadata, meta));
    xf_safetensors_close(&st);
    assert_null(st.tensors);

    json_decref(meta);
    sample_free(&s);
    free(path);
    xf_test_rmtree(dir);
    free(dir);
}

/* The written bytes, checked against the spec with jansson directly: the
 * header length, the 8-byte aligned data start (space padding), dtype
 * names, and contiguous data in name order covering the whole section. */
static void test_written_layout(void **state)
{
    (void)state;
    char *dir = xf_test_tmpdir();
    sample s;
    sample_init(&s);
    char *path = xf_path_join(dir, "m.safetensors");
    xf_error err;
    assert_int_equal(xf_safetensors_write(path, s.t, s.n, NULL, &err), 0);

    char *bytes;
    size_t len;
    assert_int_equal(xf_read_file(path, &bytes, &len, &err), 0);
    assert_true(len >= 8);
    uint64_t n = 0;
    for (int b = 7; b >= 0; b--)
        n = (n << 8) | (uint8_t)bytes[b];
    assert_true(8 + n <= len);
    assert_int_equal((8 + n) % 8, 0);
    assert_int_equal(bytes[8], '{');
    json_error_t je;
    json_t *h = json_loadb(bytes + 8, n, 0, &je);
    assert_non_null(h);
    assert_null(json_object_get(h, "__metadata__")); /* none given */
    assert_int_equal(json_object_size(h), s.n);

    /* sort the names ourselves; data must follow in that order, back to back */
    const char *names[N_PLAIN + 2];
    for (size_t i = 0; i < s.n; i++)
        names[i] = s.names[i];
    for (size_t i = 0; i < s.n; i++)
        for (size_t j = i + 1; j < s.n; j++)
            if (strcmp(names[j], names[i]) < 0) {
                const char *tmp = names[i];
                names[i] = names[j];
                names[j] = tmp;
            }
    json_int_t expect_begin = 0;
    for (size_t i = 0; i < s.n; i++) {
        json_t *e = json_object_get(h, names[i]);
        assert_non_null(e);
        json_t *offs = json_object_get(e, "data_offsets");
        assert_int_equal(json_array_size(offs), 2);
        json_int_t b = json_integer_value(json_array_get(offs, 0));
        json_int_t end = json_integer_value(json_array_get(offs, 1));
        assert_int_equal(b, expect_begin);
        expect_begin = end;
        const xf_tensor *src = NULL;
        for (size_t k = 0; k < s.n; k++)
            if (!strcmp(s.t[k].name, names[i]))
                src = &s.t[k];
        assert_int_equal((size_t)(end - b), src->nbytes);
        if (src->nbytes)
            assert_memory_equal(bytes + 8 + n + b, src->data, src->nbytes);
        const char *dt = json_string_value(json_object_get(e, "dtype"));
        assert_non_null(dt);
        if (!strcmp(names[i], "scalar") || !strcmp(names[i], "empty")) {
            assert_int_equal(json_array_size(json_object_get(e, "shape")), src->ndim);
        } else {
            assert_string_equal(dt, names[i] + 2); /* "w.BF16" -> "BF16" */
        }
    }
    assert_int_equal((size_t)expect_begin, len - 8 - n); /* no trailing bytes */
    for (uint64_t i = 0; i < n; i++) /* padding is spaces only, after the JSON */
        assert_true(bytes[8 + i] != '\0');
    json_decref(h);
    free(bytes);

    /* deterministic: other input order, same bytes */
    xf_tensor rev[N_PLAIN + 2];
    for (size_t i = 0; i < s.n; i++)
        rev[i] = s.t[s.n - 1 - i];
    char *path2 = xf_path_join(dir, "m2.safetensors");
    assert_int_equal(xf_safetensors_write(path2, rev, s.n, NULL, &err), 0);
    char *a, *b;
    size_t la, lb;
    assert_int_equal(xf_read_file(path, &a, &la, &err), 0);
    assert_int_equal(xf_read_file(path2, &b, &lb, &err), 0);
    assert_int_equal(la, lb);
    assert_memory_equal(a, b, la);
    free(a);
    free(b);

    sample_free(&s);
    free(path);
    free(path2);
    xf_test_rmtree(dir);
    free(dir);
}

/* A hand-written file another writer could produce: data stored in a
 * different order than names, header padded with spaces, odd data start,
 * an empty file of tensors, Unicode names. */
static void test_read_handwritten(void **state)
{
    (void)state;
    char *dir = xf_test_tmpdir();
    const char *h = "{\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
                    "\"a\":{\"dtype\":\"I16\",\"shape\":[],\"data_offsets\":[2,4]},"
                    "\"z\\u00e9\":{\"dtype\":\"BOOL\",\"shape\":[0],\"data_offsets\":[4,4]},"
                    "\"__metadata__\":{}}     ";
    char *path = write_header_file(dir, h, 5);
    xf_safetensors st;
    xf_error err;
    if (xf_safetensors_open(&st, path, &err) != 0)
        fail_msg("%s", err.msg);
    assert_int_equal(st.n_tensors, 3);
    assert_string_equal(st.tensors[0].name, "a");
    assert_string_equal(st.tensors[1].name, "b");
    assert_string_equal(st.tensors[2].name, "z\xc3\xa9");
    const uint8_t *data = st.file.data + 8 + strlen(h);
    const xf_tensor *a = xf_safetensors_find(&st, "a");
    assert_ptr_equal(a->data, data + 2);
    assert_int_equal(a->ndim, 0);
    assert_int_equal(a->nbytes, 2);
    assert_int_equal(((const uint8_t *)a->data)[0], 2);
    const xf_tensor *b = xf_safetensors_find(&st, "b");
    assert_ptr_equal(b->data, data);
    assert_int_equal(xf_safetensors_find(&st, "z\xc3\xa9")->nbytes, 0);
    assert_non_null(st.metadata);
    assert_int_equal(json_object_size(st.metadata), 0);
    xf_safetensors_close(&st);
    free(path);

    /* no tensors at all is a valid (empty) file */
    path = write_header_file(dir, "{}", 0);
    assert_int_equal(xf_safetensors_open(&st, path, &err), 0);
    assert_int_equal(st.n_tensors, 0);
    assert_null(xf_safetensors_find(&st, "a"));
    assert_null(st.metadata);
    xf_safetensors_close(&st);
    free(path);
    xf_test_rmtree(dir);
    free(dir);
}

/* F64 data at an offset that is not a multiple of 8 (safetensors does not
 * align tensors): converted through memcpy, no misaligned load (UBSan
 * flagged the old path when the fuzzer produced such a file). */
static void test_unaligned_f64(void **state)
{
    (void)state;
    char *dir = xf_test_tmpdir();
    const char *h = "{\"p\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,3]},"
                    "\"x\":{\"dtype\":\"F64\",\"shape\":[3],\"data_offsets\":[3,27]}}";
    size_t hn = strlen(h), total = 8 + hn + 27;
    uint8_t *buf = calloc(1, total);
    assert_non_null(buf);
    for (int b = 0; b < 8; b++)
        buf[b] = (uint8_t)((uint64_t)hn >> (8 * b));
    memcpy(buf + 8, h, hn);
    const double want[3] = {1.5, -0.25, 1e-3};
    memcpy(buf + 8 + hn + 3, want, sizeof want);
    char *path = xf_test_write_file(dir, "u.safetensors", buf, total);
    xf_safetensors st;
    xf_error err;
    if (xf_safetensors_open(&st, path, &err) != 0)
        fail_msg("%s", err.msg);
    const xf_tensor *x = xf_safetensors_find(&st, "x");
    assert_non_null(x);
    assert_int_not_equal((uintptr_t)x->data % 8, 0);
    float got[3];
    assert_int_equal(xf_tensor_to_f32(x, got, &err), 0);
    for (int i = 0; i < 3; i++)
        assert_true(got[i] == (float)want[i]);
    xf_safetensors_close(&st);
    free(buf);
    free(path);
    xf_test_rmtree(dir);
    free(dir);
}

/* F16 and BF16 data at odd offsets: loaded through memcpy, no misaligned
 * uint16_t load (UBSan flagged it on a file the fuzzer made,
 * tests/fuzz/regressions/safetensors/f16-odd-offset.safetensors). */
static void test_unaligned_f16_bf16(void **state)
{
    (void)state;
    char *dir = xf_test_tmpdir();
    const char *h = "{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[1,5]},"
                    "\"b\":{\"dtype\":\"BF16\",\"shape\":[1,2],\"data_offsets\":[5,9]},"
                    "\"p\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}";
    size_t hn = strlen(h), total = 8 + hn + 9;
    uint8_t *buf = calloc(1, total);
    assert_non_null(buf);
    for (int b = 0; b < 8; b++)
        buf[b] = (uint8_t)((uint64_t)hn >> (8 * b));
    memcpy(buf + 8, h, hn);
    const uint16_t f16[2] = {0x3C00, 0xC000};  /* 1, -2 */
    const uint16_t bf16[2] = {0x3F00, 0x4040}; /* 0.5, 3 */
    memcpy(buf + 8 + hn + 1, f16, sizeof f16);
    memcpy(buf + 8 + hn + 5, bf16, sizeof bf16);
    char *path = xf_test_write_file(dir, "u.safetensors", buf, total);
    xf_safetensors st;
    xf_error err;
    if (xf_safetensors_open(&st, path, &err) != 0)
        fail_msg("%s", err.msg);
    const xf_tensor *a = xf_safetensors_find(&st, "a"), *b = xf_safetensors_find(&st, "b");
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal((uintptr_t)a->data % 2 + (uintptr_t)b->data % 2, 2);
    float got[2];
    assert_int_equal(xf_tensor_to_f32(a, got, &err), 0);
    assert_true(got[0] == 1.0f && got[1] == -2.0f);
    assert_int_equal(xf_tensor_row_to_f32(b, 0, got, &err), 0);
    assert_true(got[0] == 0.5f && got[1] == 3.0f);
    xf_safetensors_close(&st);
    free(buf);
    free(path);
    xf_test_rmtree(dir);
    free(dir);
}

/* ---- malformed files ---------------------------------------------------- */

static void test_short_and_oversize(void **state)
{
    (void)state;
    char *dir = xf_test_tmpdir();
    char *p = xf_test_write_file(dir, "short", "\x10\0\0\0\0", 5);
    expect_open_fails(p, "too short");
    free(p);
    p = xf_test_write_file(dir, "empty", "", 0);
    expect_open_fails(p, "too short");
    free(p);
    /* only the 8-byte length, claiming 200 MiB */
    p = write_st(dir, "huge", 200ull << 20, "", 0, 0);
    expect_open_fails(p, "exceeds the 100 MiB limit");
    free(p);
    p = write_st(dir, "huge2", UINT64_MAX, "", 0, 0);
    expect_open_fails(p, "100 MiB");
    free(p);
    /* header length past EOF */
    const char *h = "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}";
    p = write_st(dir, "trunc", strlen(h) + 10, h, strlen(h), 3);
    expect_open_fails(p, "past the end");
    free(p);
    p = xf_path_join(dir, "does-not-exist");
    expect_open_fails(p, "cannot open");
    free(p);
    xf_test_rmtree(dir);
    free(dir);
}

typedef struct bad_case {
    const char *header;
    size_t data_len;
    const char *word; /* must appear in the message */
} bad_case;

#define ENTRY(name, dt, shape, offs) \
    "\"" name "\":{\"dtype\":\"" dt "\",\"shape\":" shape ",\"data_offsets\":" offs "}"

static const bad_case bad_cases[] = {
    {"{\"a\": ", 0, "not valid JSON"},
    {"", 0, "not a JSON object"},
    {"[1,2]", 0, "not a JSON object"},
    {"  {}", 0, "not a JSON object"},
    {"{} x", 0, "not valid JSON"},
    {"{" ENTRY("a", "F8", "[1]", "[0,1]") "}", 1, "unknown dtype \"F8\""},
    {"{" ENTRY("a", "f32", "[1]", "[0,4]") "}", 4, "unknown dtype"},
    {"{\"a\":{\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "dtype"},
    {"{\"a\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "dtype"},
    {"{\"a\":5}", 0, "not an object"},
    {"{" ENTRY("a", "U8", "3", "[0,3]") "}", 3, "shape"},
    {"{\"a\":{\"dtype\":\"U8\",\"data_offsets\":[0,3]}}", 3, "shape"},
    {"{" ENTRY("a", "U8", "[-1]", "[0,0]") "}", 0, "non-negative"},
    {"{" ENTRY("a", "U8", "[2.0]", "[0,2]") "}", 2, "shape"},
    {"{" ENTRY("a", "U8", "[\"2\"]", "[0,2]") "}", 2, "shape"},
    {"{" ENTRY("a", "U8", "[1,1,1,1,1,1,1,1,1]", "[0,1]") "}", 1, "dimensions"},
    {"{" ENTRY("a", "F32", "[1099511627776,1099511627776]", "[0,4]") "}", 4, "overflow"},
    {"{" ENTRY("a", "U8", "[4294967296,4294967296]", "[0,4]") "}", 4, "overflow"},
    {"{" ENTRY("a", "U8", "[1]", "[0]") "}", 1, "data_offsets"},
    {"{" ENTRY("a", "U8", "[1]", "[0,1,2]") "}", 1, "data_offsets"},
    {"{" ENTRY("a", "U8", "[1]", "[8,0]") "}", 8, "data_offsets"},
    {"{" ENTRY("a", "U8", "[1]", "[-1,0]") "}", 8, "data_offsets"},
    {"{" ENTRY("a", "U8", "[1]", "[0.0,1]") "}", 8, "data_offsets"},
    {"{\"a\":{\"dtype\":\"U8\",\"shape\":[1]}}", 1, "data_offsets"},
    {"{" ENTRY("a", "F32", "[4]", "[0,16]") "}", 8, "beyond the data section"},
    {"{" ENTRY("a", "F32", "[2,3]", "[0,12]") "}", 12, "tensor a: 12 bytes for shape [2,3] F32 needs 24"},
    {"{" ENTRY("a", "F32", "[]", "[0,0]") "}", 4, "needs 4"},
    {"{" ENTRY("a", "F16", "[0,7]", "[0,2]") "}", 4, "needs 0"},
    {"{" ENTRY("a", "F32", "[2]", "[0,8]") "," ENTRY("b", "F32", "[2]", "[4,12]") "}", 12,
     "overlap"},
    {"{" ENTRY("a", "U8", "[8]", "[0,8]") "," ENTRY("b", "U8", "[1]", "[3,4]") "}", 8, "overlap"},
    {"{" ENTRY("a", "U8", "[1]", "[0,1]") "," ENTRY("a", "U8", "[1]", "[1,2]") "}", 2,
     "duplicate"},
    {"{" ENTRY("", "U8", "[1]", "[0,1]") "}", 1, "empty"},
    {"{\"__metadata__\":[1]}", 0, "__metadata__"},
    {"{\"__metadata__\":\"x\"}", 0, "__metadata__"},
    {"{\"__metadata__\":{\"k\":1}}", 0, "__metadata__"},
    {"{\"__metadata__\":{\"k\":{\"x\":\"y\"}}}", 0, "__metadata__"},
};

static void test_malformed_headers(void **state)
{
    (void)state;
    char *dir = xf_test_tmpdir();
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        char *p = write_header_file(dir, bad_cases[i].header, bad_cases[i].data_len);
        expect_open_fails(p, bad_cases[i].word);
        free(p);
    }
    xf_test_rmtree(dir);
    free(dir);
}

/* Names whose bytes are not UTF-8: invalid bytes, an overlong NUL, an
 * encoded surrogate, a code point above U+10FFFF, a truncated sequence.
 * jansson may refuse the JSON text itself; either way a clean error. */
static void test_non_utf8_names(void **state)
{
    (void)state;
    static const char *const bad[] = {"\xff\xfe", "a\xc0\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                                      "x\xe2\x82", "\x80"};
    char *dir = xf_test_tmpdir();
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char header[256];
        snprintf(header, sizeof header,
                 "{\"%s\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", bad[i]);
        char *p = write_header_file(dir, header, 1);
        xf_safetensors st;
        xf_error err;
        assert_int_equal(xf_safetensors_open(&st, p, &err), -1);
        assert_true(strstr(err.msg, "UTF-8") || strstr(err.msg, "JSON"));
        assert_non_null(strstr(err.msg, p));
        free(p);
    }
    /* an escaped lone surrogate is not a valid name either */
    char *p = write_header_file(
        dir, "{\"\\udc00\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1);
    xf_safetensors st;
    xf_error err;
    assert_int_equal(xf_safetensors_open(&st, p, &err), -1);
    free(p);
    xf_test_rmtree(dir);
    free(dir);
}

/* ---- writer refusals ---------------------------------------------------- */

/* The write must fail with `word` in the message and leave dir empty. */
static void expect_write_fails(const char *dir, const xf_tensor *t, size_t n, const json_t *meta,
                               const char *word)
{
    char *path = xf_path_join(dir, "out.safetensors");
    xf_error err;
    xf_error_clear(&err);
    assert_int_equal(xf_safetensors_write(path, t, n, meta, &err), -1);
    if (!strstr(err.msg, word) || !strstr(err.msg, path))
        fail_msg("message \"%s\" lacks \"%s\" or the path", err.msg, word);
    assert_int_equal(xf_test_dir_entries(dir), 0);
    free(path);
}

static void test_writer_refusals(void **state)
{
    (void)state;
    char *dir = xf_test_tmpdir();
    float buf[6] = {1, 2, 3, 4, 5, 6};
    int64_t shape[2] = {2, 3};
    xf_tensor ok = make_tensor("ok", XF_DTYPE_F32, 2, shape, buf, sizeof buf);

    xf_tensor t[2] = {ok, make_tensor("bad", XF_DTYPE_F32, 2, shape, buf, 12)};
    expect_write_fails(dir, t, 2, NULL, "12 bytes for shape [2,3] F32 needs 24");
    t[1] = make_tensor("q", XF_DTYPE_Q4, 2, shape, buf, sizeof buf);
    expect_write_fails(dir, t, 2, NULL, "Q4");
    t[1] = make_tensor("x", XF_DTYPE_INVALID, 2, shape, buf, sizeof buf);
    expect_write_fails(dir, t, 2, NULL, "dtype");
    t[1] = make_tensor("ok", XF_DTYPE_F32, 2, shape, buf, sizeof buf);
    expect_write_fails(dir, t, 2, NULL, "more than once");
    t[1] = make_tensor("", XF_DTYPE_F32, 2, shape, buf, sizeof buf);
    expect_write_fails(dir, t, 2, NULL, "empty");
    t[1] = make_tensor("__metadata__", XF_DTYPE_F32, 2, shape, buf, sizeof buf);
    expect_write_fails(dir, t, 2, NULL, "reserved");
    int64_t neg[1] = {-2};
    t[1] = make_tensor("n", XF_DTYPE_F32, 1, neg, buf, 0);
    expect_write_fails(dir, t, 2, NULL, "negative");
    int64_t huge[2] = {INT64_C(1) << 40, INT64_C(1) << 40};
    t[1] = make_tensor("h", XF_DTYPE_F32, 2, huge, buf, sizeof buf);
    expect_write_fails(dir, t, 2, NULL, "overflow");
    t[1] = make_tensor("d", XF_DTYPE_F32, 2, shape, NULL, sizeof buf);
    expect_write_fails(dir, t, 2, NULL, "no data");

    /* the UTF-8 check itself (the reader's jansson may catch these first) */
    static const char *const bad_names[] = {"\xff\xfe", "a\xc0\x80", "\xed\xa0\x80",
                                            "\xf4\x90\x80\x80", "x\xe2\x82", "\xe0\x80\xaf",
                                            "\xf0\x8f\xbf\xbf"};
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
        t[1] = make_tensor(bad_names[i], XF_DTYPE_F32, 2, shape, buf, sizeof buf);
        expect_write_fails(dir, t, 2, NULL, "UTF-8");
    }

    json_t *meta = json_pack("{s:s, s:i}", "ok", "x", "n", 3);
    expect_write_fails(dir, &ok, 1, meta, "__metadata__");
    json_decref(meta);
    meta = json_array();
    expect_write_fails(dir, &ok, 1, meta, "__metadata__");
    json_decref(meta);

    /* a directory that does not exist: clean error, nothing created */
    char *missing = xf_path_join(dir, "no/such/dir/out.safetensors");
    xf_error err;
    assert_int_equal(xf_safetensors_write(missing, &ok, 1, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "no/such/dir"));
    assert_int_equal(xf_test_dir_entries(dir), 0);
    free(missing);

    /* valid multi-byte names (2, 3 and 4 bytes) are accepted and kept */
    const char *good[] = {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xf4\x8f\xbf\xbf"};
    xf_tensor g[4];
    for (int i = 0; i < 4; i++)
        g[i] = make_tensor(good[i], XF_DTYPE_F32, 2, shape, buf, sizeof buf);
    char *path = xf_path_join(dir, "good.safetensors");
    if (xf_safetensors_write(path, g, 4, NULL, &err) != 0)
        fail_msg("%s", err.msg);
    xf_safetensors st;
    assert_int_equal(xf_safetensors_open(&st, path, &err), 0);
    for (int i = 0; i < 4; i++)
        assert_non_null(xf_safetensors_find(&st, good[i]));
    xf_safetensors_close(&st);
    free(path);

    xf_test_rmtree(dir);
    free(dir);
}

/* ---- the shared models -------------------------------------------------- */

static void check_model(const char *path, size_t n_tensors, int64_t n_params)
{
    xf_safetensors st;
    xf_error err;
    if (xf_safetensors_open(&st, path, &err) != 0)
        fail_msg("%s", err.msg);
    assert_int_equal(st.n_tensors, n_tensors);
    int64_t total = 0;
    for (size_t i = 0; i < st.n_tensors; i++) {
        assert_int_equal(st.tensors[i].dtype, XF_DTYPE_F16);
        total += xf_tensor_numel(&st.tensors[i]);
    }
    assert_int_equal(total, n_params);
    const xf_tensor *emb = xf_safetensors_find(&st, "model.embed_tokens.weight");
    assert_non_null(emb);
    assert_int_equal(emb->ndim, 2);
    assert_string_equal(json_string_value(json_object_get(st.metadata, "format")), "pt");

    /* rewrite with the writer and read back: same tensors, same bytes */
    char *dir = xf_test_tmpdir();
    char *out = xf_path_join(dir, "copy.safetensors");
    if (xf_safetensors_write(out, st.tensors, st.n_tensors, st.metadata, &err) != 0)
        fail_msg("%s", err.msg);
    xf_safetensors copy;
    assert_int_equal(xf_safetensors_open(&copy, out, &err), 0);
    assert_int_equal(copy.n_tensors, st.n_tensors);
    for (size_t i = 0; i < st.n_tensors; i++) {
        assert_string_equal(copy.tensors[i].name, st.tensors[i].name);
        assert_int_equal(copy.tensors[i].nbytes, st.tensors[i].nbytes);
        assert_memory_equal(copy.tensors[i].data, st.tensors[i].data, st.tensors[i].nbytes);
    }
    assert_true(json_equal(copy.metadata, st.metadata));
    xf_safetensors_close(&copy);
    xf_safetensors_close(&st);
    free(out);
    xf_test_rmtree(dir);
    free(dir);
}

/* xf_safetensors_write_filled: tensors without data are produced by the
 * callback (in a zeroed buffer, in file order) and the file equals the one
 * written from memory; a failing callback leaves no file. */
static int fill_iota(void *ctx, size_t index, void *buf, xf_error *err)
{
    int *calls = ctx;
    (*calls)++;
    if (index == 2)
        return xf_fail(err, "fill %zu refused", index);
    int32_t *v = buf;
    for (int i = 0; i < 6; i++) {
        assert_int_equal(v[i], 0); /* zeroed */
        v[i] = (int32_t)(10 * index + (size_t)i);
    }
    return 0;
}

static void test_write_filled(void **state)
{
    (void)state;
    char *dir = xf_test_tmpdir();
    int32_t a[6], b[6];
    for (int i = 0; i < 6; i++) {
        a[i] = i;      /* index 0 filled: 10*0 + i */
        b[i] = 10 + i; /* index 1 */
    }
    float c[2] = {1.5f, -2.0f};
    xf_tensor mem[3] = {
        {.name = "b.x", .dtype = XF_DTYPE_I32, .ndim = 2, .shape = {2, 3}, .data = a, .nbytes = 24},
        {.name = "a.y", .dtype = XF_DTYPE_I32, .ndim = 1, .shape = {6}, .data = b, .nbytes = 24},
        {.name = "c", .dtype = XF_DTYPE_F32, .ndim = 1, .shape = {2}, .data = c, .nbytes = 8}};
    xf_tensor lazy[3];
    memcpy(lazy, mem, sizeof lazy);
    lazy[0].data = lazy[1].data = NULL;
    char p1[4096], p2[4096], p3[4096];
    snprintf(p1, sizeof p1, "%s/mem.safetensors", dir);
    snprintf(p2, sizeof p2, "%s/filled.safetensors", dir);
    snprintf(p3, sizeof p3, "%s/failed.safetensors", dir);
    xf_error err = {0};
    assert_int_equal(xf_safetensors_write(p1, mem, 3, NULL, &err), 0);
    int calls = 0;
    assert_int_equal(xf_safetensors_write_filled(p2, lazy, 3, NULL, fill_iota, &calls, &err), 0);
    assert_int_equal(calls, 2);
    assert_true(xf_test_files_equal(p1, p2));
    /* a NULL-data tensor the callback refuses: no file, no temp file */
    lazy[2].data = NULL;
    const int before = xf_test_dir_entries(dir);
    assert_int_equal(xf_safetensors_write_filled(p3, lazy, 3, NULL, fill_iota, &calls, &err), -1);
    assert_non_null(strstr(err.msg, "fill 2 refused"));
    assert_int_equal(xf_test_dir_entries(dir), before);
    /* without a callback, NULL data stays an error */
    assert_int_equal(xf_safetensors_write(p3, lazy, 3, NULL, &err), -1);
    xf_test_rmtree(dir);
    free(dir);
}

static void test_shared_stories260k(void **state)
{
    (void)state;
    XF_TEST_REQUIRE_SHARED(path, "models/stories260K/model.safetensors");
    check_model(path, 47, 260032);
}

static void test_shared_novels5m(void **state)
{
    (void)state;
    XF_TEST_REQUIRE_SHARED(path, "models/novels-5m/model.safetensors");
    check_model(path, 57, 5401856);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_all_dtypes),
        cmocka_unit_test(test_written_layout),
        cmocka_unit_test(test_read_handwritten),
        cmocka_unit_test(test_unaligned_f64),
        cmocka_unit_test(test_unaligned_f16_bf16),
        cmocka_unit_test(test_short_and_oversize),
        cmocka_unit_test(test_malformed_headers),
        cmocka_unit_test(test_non_utf8_names),
        cmocka_unit_test(test_writer_refusals),
        cmocka_unit_test(test_write_filled),
        cmocka_unit_test(test_shared_stories260k),
        cmocka_unit_test(test_shared_novels5m),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
