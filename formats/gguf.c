/* GGUF reader (formats/gguf.h). A cursor walks the mapping; every read is
 * bounds-checked, and every count is compared with the bytes left (times
 * the smallest encoding of one item) before the array that holds the items
 * is allocated. */
#include "formats/gguf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


typedef struct cursor {
    const uint8_t *p;
    size_t left;
    const char *path;
} cursor;

static uint64_t rd_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static int take(cursor *c, size_t n, const uint8_t **out, const char *field, xf_error *err)
{
    if (n > c->left)
        return xf_fail(err, "%s: truncated: %s needs %zu bytes, %zu left", c->path, field, n,
                       c->left);
    *out = c->p;
    c->p += n;
    c->left -= n;
    return 0;
}

static int rd_u32(cursor *c, uint32_t *v, const char *field, xf_error *err)
{
    const uint8_t *p = NULL;
    if (take(c, 4, &p, field, err))
        return -1;
    *v = (uint32_t)rd_le(p, 4);
    return 0;
}

static int rd_u64(cursor *c, uint64_t *v, const char *field, xf_error *err)
{
    const uint8_t *p = NULL;
    if (take(c, 8, &p, field, err))
        return -1;
    *v = rd_le(p, 8);
    return 0;
}

static int rd_str(cursor *c, xf_gguf_str *s, const char *field, xf_error *err)
{
    uint64_t len;
    if (rd_u64(c, &len, field, err))
        return -1;
    if (len > c->left)
        return xf_fail(err, "%s: %s: string length %llu exceeds the %zu bytes left in the file",
                       c->path, field, (unsigned long long)len, c->left);
    const uint8_t *p = NULL;
    take(c, (size_t)len, &p, field, err);
    s->ptr = (const char *)p;
    s->len = (size_t)len;
    return 0;
}

/* Bytes of one scalar of a fixed-size type; 0 for string/array/unknown. */
static size_t vtype_size(uint32_t t)
{
    switch (t) {
    case XF_GGUF_U8: case XF_GGUF_I8: case XF_GGUF_BOOL: return 1;
    case XF_GGUF_U16: case XF_GGUF_I16: return 2;
    case XF_GGUF_U32: case XF_GGUF_I32: case XF_GGUF_F32: return 4;
    case XF_GGUF_U64: case XF_GGUF_I64: case XF_GGUF_F64: return 8;
    default: return 0;
    }
}

const char *xf_gguf_vtype_name(xf_gguf_vtype t)
{
    static const char *const names[] = {"u8",  "i8",     "u16",   "i16", "u32", "i32", "f32",
                                        "bool", "string", "array", "u64", "i64", "f64"};
    return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "?";
}

static char *dup_str(xf_gguf_str s)
{
    char *d = malloc(s.len + 1);
    if (d) {
        memcpy(d, s.ptr, s.len);
        d[s.len] = 0;
    }
    return d;
}

/* The value of kv (type already read into kv->type). */
static int read_value(cursor *c, xf_gguf_kv *kv, xf_error *err)
{
    const char *key = kv->key;
    uint32_t et = kv->type;
    kv->n = 1;
    if (kv->type == XF_GGUF_ARRAY) {
        if (rd_u32(c, &et, key, err) || rd_u64(c, &kv->n, key, err))
            return -1;
        if (et == XF_GGUF_ARRAY)
            return xf_fail(err, "%s: key %s: nested arrays are not allowed", c->path, key);
    }
    if (et != XF_GGUF_STRING && vtype_size(et) == 0)
        return xf_fail(err, "%s: key %s: unknown value type %u", c->path, key, et);
    kv->elem = (xf_gguf_vtype)et;
    if (et == XF_GGUF_STRING) {
        /* each string takes at least its 8-byte length */
        if (kv->n > c->left / 8)
            return xf_fail(err, "%s: key %s: %llu strings cannot fit in the %zu bytes left",
                           c->path, key, (unsigned long long)kv->n, c->left);
        kv->strs = malloc((size_t)(kv->n ? kv->n : 1) * sizeof *kv->strs);
        if (!kv->strs)
            return xf_fail(err, "%s: key %s: out of memory", c->path, key);
        for (uint64_t i = 0; i < kv->n; i++)
            if (rd_str(c, &kv->strs[i], key, err))
                return -1;
        return 0;
    }
    size_t es = vtype_size(et);
    if (kv->n > c->left / es)
        return xf_fail(err, "%s: key %s: %llu values of %s cannot fit in the %zu bytes left",
                       c->path, key, (unsigned long long)kv->n, xf_gguf_vtype_name(kv->elem),
                       c->left);
    return take(c, (size_t)kv->n * es, &kv->data, key, err);
}

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Fails naming the first name that occurs twice among n names. */
static int check_unique(char **names, size_t n, const char *path, const char *what,
                        xf_error *err)
{
    if (n < 2)
        return 0;
    char **sorted = malloc(n * sizeof *sorted);
    if (!sorted)
        return xf_fail(err, "%s: out of memory", path);
    memcpy(sorted, names, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, cmp_str_ptr);
    int rc = 0;
    for (size_t i = 1; i < n && rc == 0; i++)
        if (strcmp(sorted[i - 1], sorted[i]) == 0)
            rc = xf_fail(err, "%s: duplicate %s \"%s\"", path, what, sorted[i]);
    free(sorted);
    return rc;
}

static int read_kvs(xf_gguf_file *f, cursor *c, uint64_t n_kv, xf_error *err)
{
    /* smallest KV: key length (8) + 1 key byte + type (4) + 1-byte value */
    if (n_kv > c->left / 14)
        return xf_fail(err, "%s: header: n_kv = %llu cannot fit in the %zu bytes left", f->path,
                       (unsigned long long)n_kv, c->left);
    f->kvs = calloc(n_kv ? (size_t)n_kv : 1, sizeof *f->kvs);
    char **keys = malloc((n_kv ? (size_t)n_kv : 1) * sizeof *keys);
    if (!f->kvs || !keys) {
        free(keys);
        return xf_fail(err, "%s: out of memory", f->path);
    }
    int rc = 0;
    for (uint64_t i = 0; i < n_kv && rc == 0; i++) {
        xf_gguf_kv *kv = &f->kvs[i];
        char field[64];
        snprintf(field, sizeof field, "key %llu", (unsigned long long)i);
        xf_gguf_str k;
        uint32_t t;
        if (rd_str(c, &k, field, err)) {
            rc = -1;
            break;
        }
        if (k.len == 0) {
            rc = xf_fail(err, "%s: %s: empty key", f->path, field);
            break;
        }
        if (memchr(k.ptr, 0, k.len)) {
            rc = xf_fail(err, "%s: %s: key contains a NUL byte", f->path, field);
            break;
        }
        kv->key = dup_str(k);
        f->n_kv++;
        if (!kv->key) {
            rc = xf_fail(err, "%s: out of memory", f->path);
            break;
        }
        keys[i] = kv->key;
        if (rd_u32(c, &t, kv->key, err)) {
            rc = -1;
            break;
        }
        kv->type = (xf_gguf_vtype)t;
        rc = read_value(c, kv, err);
    }
    if (rc == 0)
        rc = check_unique(keys, f->n_kv, f->path, "key", err);
    free(keys);
    return rc;
}

static int read_alignment(xf_gguf_file *f, xf_error *err)
{
    f->alignment = XF_GGUF_DEFAULT_ALIGNMENT;
    const xf_gguf_kv *kv = xf_gguf_find(f, "general.alignment");
    if (!kv)
        return 0;
    if (kv->type != XF_GGUF_U32)
        return xf_fail(err, "%s: general.alignment: type %s, must be u32", f->path,
                       xf_gguf_vtype_name(kv->type));
    uint32_t a = (uint32_t)rd_le(kv->data, 4);
    if (a == 0 || (a & (a - 1)) != 0)
        return xf_fail(err, "%s: general.alignment = %u is not a power of 2", f->path, a);
    f->alignment = a;
    return 0;
}

static int read_tensor_info(xf_gguf_file *f, cursor *c, xf_gguf_tensor *t, uint64_t i,
                            xf_error *err)
{
    char field[64];
    snprintf(field, sizeof field, "tensor info %llu", (unsigned long long)i);
    xf_gguf_str name;
    if (rd_str(c, &name, field, err))
        return -1;
    if (name.len == 0)
        return xf_fail(err, "%s: %s: empty tensor name", f->path, field);
    if (name.len >= XF_GGUF_MAX_NAME)
        return xf_fail(err, "%s: %s: tensor name of %zu bytes (ggml allows at most %d)", f->path,
                       field, name.len, XF_GGUF_MAX_NAME - 1);
    if (memchr(name.ptr, 0, name.len))
        return xf_fail(err, "%s: %s: tensor name contains a NUL byte", f->path, field);
    t->name = dup_str(name);
    if (!t->name)
        return xf_fail(err, "%s: out of memory", f->path);
    if (rd_u32(c, &t->n_dims, t->name, err))
        return -1;
    if (t->n_dims > XF_GGUF_MAX_DIMS)
        return xf_fail(err, "%s: tensor %s: n_dims = %u (at most %d)", f->path, t->name,
                       t->n_dims, XF_GGUF_MAX_DIMS);
    for (int d = 0; d < XF_GGUF_MAX_DIMS; d++)
        t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        uint64_t v;
        if (rd_u64(c, &v, t->name, err))
            return -1;
        if (v > (uint64_t)INT64_MAX)
            return xf_fail(err, "%s: tensor %s: ne[%u] = %llu is negative as int64", f->path,
                           t->name, d, (unsigned long long)v);
        t->ne[d] = (int64_t)v;
    }
    uint32_t type;
    if (rd_u32(c, &type, t->name, err) || rd_u64(c, &t->offset, t->name, err))
        return -1;
    t->traits = xf_ggml_traits(type);
    if (!t->traits) {
        const char *known = xf_ggml_type_name(type);
        if (known)
            return xf_fail(err,
                           "%s: tensor %s: GGML type %s (id %u) is not supported (supported: "
                           "f32 f16 bf16 q4_0 q4_1 q5_0 q5_1 q8_0 q2_K q3_K q4_K q5_K q6_K "
                           "iq4_nl iq4_xs)",
                           f->path, t->name, known, type);
        return xf_fail(err, "%s: tensor %s: unknown GGML type id %u", f->path, t->name, type);
    }
    /* element count without overflow (ggml: INT64_MAX / ne[1..3] checks),
     * over the non-zero dims: an empty tensor's other dims must still
     * multiply without overflow in any order (xfquant info, xf_tensor_numel) */
    int64_t n = 1;
    bool empty = false;
    for (int d = 0; d < XF_GGUF_MAX_DIMS; d++) {
        if (t->ne[d] == 0) {
            empty = true;
            continue;
        }
        if (n > INT64_MAX / t->ne[d])
            return xf_fail(err, "%s: tensor %s: element count overflows", f->path, t->name);
        n *= t->ne[d];
    }
    if (empty)
        n = 0;
    if (t->ne[0] % t->traits->block_size != 0)
        return xf_fail(err,
                       "%s: tensor %s: ne[0] = %lld is not a multiple of the %s block size %lld",
                       f->path, t->name, (long long)t->ne[0], t->traits->name,
                       (long long)t->traits->block_size);
    uint64_t blocks = (uint64_t)(n / t->traits->block_size);
    if (blocks > (uint64_t)SIZE_MAX / t->traits->type_size)
        return xf_fail(err, "%s: tensor %s: byte size overflows", f->path, t->name);
    t->nbytes = (size_t)blocks * t->traits->type_size;
    return 0;
}

static uint64_t pad_to(uint64_t x, uint64_t a)
{
    return (x + a - 1) / a * a;
}

static int read_tensors(xf_gguf_file *f, cursor *c, uint64_t n_tensors, xf_error *err)
{
    /* smallest info: name length (8) + 1 byte + n_dims (4) + type (4) + offset (8) */
    if (n_tensors > c->left / 25)
        return xf_fail(err, "%s: header: n_tensors = %llu cannot fit in the %zu bytes left",
                       f->path, (unsigned long long)n_tensors, c->left);
    f->tensors = calloc(n_tensors ? (size_t)n_tensors : 1, sizeof *f->tensors);
    if (!f->tensors)
        return xf_fail(err, "%s: out of memory", f->path);
    for (uint64_t i = 0; i < n_tensors; i++) {
        f->n_tensors++;
        if (read_tensor_info(f, c, &f->tensors[i], i, err))
            return -1;
    }
    char **names = malloc((f->n_tensors ? f->n_tensors : 1) * sizeof *names);
    if (!names)
        return xf_fail(err, "%s: out of memory", f->path);
    for (size_t i = 0; i < f->n_tensors; i++)
        names[i] = f->tensors[i].name;
    int rc = check_unique(names, f->n_tensors, f->path, "tensor name", err);
    free(names);
    if (rc)
        return -1;

    uint64_t pos = (uint64_t)(c->p - f->map.data);
    f->data_offset = pad_to(pos, f->alignment);
    if (f->n_tensors && f->data_offset > f->map.size)
        return xf_fail(err, "%s: truncated: the data section starts at %llu, past the end (%zu)",
                       f->path, (unsigned long long)f->data_offset, f->map.size);
    uint64_t data_size = f->map.size > f->data_offset ? f->map.size - f->data_offset : 0;
    uint64_t expect = 0;
    for (size_t i = 0; i < f->n_tensors; i++) {
        xf_gguf_tensor *t = &f->tensors[i];
        if (t->offset % f->alignment != 0)
            return xf_fail(err, "%s: tensor %s: offset %llu is not a multiple of the alignment %u",
                           f->path, t->name, (unsigned long long)t->offset, f->alignment);
        if (t->offset > data_size || t->nbytes > data_size - t->offset)
            return xf_fail(err,
                           "%s: tensor %s: data [%llu, +%zu) runs past the end of the file "
                           "(data section of %llu bytes)",
                           f->path, t->name, (unsigned long long)t->offset, t->nbytes,
                           (unsigned long long)data_size);
        if (t->offset != expect)
            return xf_fail(err,
                           "%s: tensor %s: offset %llu, expected %llu (ggml stores tensors in "
                           "info order, each padded to the alignment)",
                           f->path, t->name, (unsigned long long)t->offset,
                           (unsigned long long)expect);
        t->data = f->map.data + f->data_offset + t->offset;
        expect = pad_to(t->offset + t->nbytes, f->alignment);
    }
    return 0;
}

bool xf_path_is_gguf(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return false;
    char magic[4];
    bool yes = fread(magic, 1, 4, fp) == 4 && memcmp(magic, XF_GGUF_MAGIC, 4) == 0;
    fclose(fp);
    return yes;
}

int xf_gguf_open(xf_gguf_file *f, const char *path, xf_error *err)
{
    memset(f, 0, sizeof *f);
    f->path = strdup(path);
    if (!f->path)
        return xf_fail(err, "%s: out of memory", path);
    if (xf_mapped_open(&f->map, path, err))
        goto fail;
    cursor c = {f->map.data, f->map.size, f->path};
    const uint8_t *magic = NULL;
    if (take(&c, 4, &magic, "magic", err))
        goto fail;
    if (memcmp(magic, XF_GGUF_MAGIC, 4) != 0) {
        xf_fail(err, "%s: not a GGUF file (magic is not \"GGUF\")", path);
        goto fail;
    }
    uint64_t n_tensors, n_kv;
    if (rd_u32(&c, &f->version, "version", err))
        goto fail;
    /* v2 has v3's layout (v3 only adds big-endian files, marked by version) */
    if (f->version != 2 && f->version != XF_GGUF_VERSION) {
        xf_fail(err, "%s: GGUF version %u is not supported (2 or 3, little-endian)", path,
                f->version);
        goto fail;
    }
    if (rd_u64(&c, &n_tensors, "n_tensors", err) || rd_u64(&c, &n_kv, "n_kv", err) ||
        read_kvs(f, &c, n_kv, err) || read_alignment(f, err) ||
        read_tensors(f, &c, n_tensors, err))
        goto fail;
    return 0;
fail:
    xf_gguf_close(f);
    return -1;
}

void xf_gguf_close(xf_gguf_file *f)
{
    for (size_t i = 0; f->kvs && i < f->n_kv; i++) {
        free(f->kvs[i].key);
        free(f->kvs[i].strs);
    }
    free(f->kvs);
    for (size_t i = 0; f->tensors && i < f->n_tensors; i++)
        free(f->tensors[i].name);
    free(f->tensors);
    xf_mapped_close(&f->map);
    free(f->path);
    memset(f, 0, sizeof *f);
}

const xf_gguf_kv *xf_gguf_find(const xf_gguf_file *f, const char *key)
{
    for (size_t i = 0; i < f->n_kv; i++)
        if (f->kvs[i].key && strcmp(f->kvs[i].key, key) == 0)
            return &f->kvs[i];
    return NULL;
}

const xf_gguf_tensor *xf_gguf_find_tensor(const xf_gguf_file *f, const char *name)
{
    for (size_t i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0)
            return &f->tensors[i];
    return NULL;
}

static int find_scalar(const xf_gguf_file *f, const char *key, bool required,
                       const xf_gguf_kv **kv, xf_error *err)
{
    *kv = xf_gguf_find(f, key);
    if (!*kv)
        return required ? xf_fail(err, "%s: missing key %s", f->path, key) : 0;
    if ((*kv)->type == XF_GGUF_ARRAY)
        return xf_fail(err, "%s: key %s: is an array, expected a single value", f->path, key);
    return 0;
}

int xf_gguf_get_uint(const xf_gguf_file *f, const char *key, bool required, uint64_t dflt,
                     uint64_t *out, xf_error *err)
{
    const xf_gguf_kv *kv;
    *out = dflt;
    if (find_scalar(f, key, required, &kv, err))
        return -1;
    if (!kv)
        return 0;
    size_t es = vtype_size(kv->type);
    bool is_signed = kv->type == XF_GGUF_I8 || kv->type == XF_GGUF_I16 ||
                     kv->type == XF_GGUF_I32 || kv->type == XF_GGUF_I64;
    bool is_int = is_signed || kv->type == XF_GGUF_U8 || kv->type == XF_GGUF_U16 ||
                  kv->type == XF_GGUF_U32 || kv->type == XF_GGUF_U64;
    if (!is_int)
        return xf_fail(err, "%s: key %s: type %s, expected an integer", f->path, key,
                       xf_gguf_vtype_name(kv->type));
    uint64_t v = rd_le(kv->data, (int)es);
    if (is_signed && es < 8 && (v >> (8 * es - 1)) & 1)
        v |= ~UINT64_C(0) << (8 * es); /* sign-extend */
    if (is_signed && (int64_t)v < 0)
        return xf_fail(err, "%s: key %s: negative value %lld", f->path, key, (long long)v);
    *out = v;
    return 0;
}

int xf_gguf_get_float(const xf_gguf_file *f, const char *key, bool required, double dflt,
                      double *out, xf_error *err)
{
    const xf_gguf_kv *kv;
    *out = dflt;
    if (find_scalar(f, key, required, &kv, err))
        return -1;
    if (!kv)
        return 0;
    if (kv->type == XF_GGUF_F32) {
        uint32_t b = (uint32_t)rd_le(kv->data, 4);
        float v;
        memcpy(&v, &b, 4);
        *out = v;
    } else if (kv->type == XF_GGUF_F64) {
        uint64_t b = rd_le(kv->data, 8);
        memcpy(out, &b, 8);
    } else {
        return xf_fail(err, "%s: key %s: type %s, expected f32", f->path, key,
                       xf_gguf_vtype_name(kv->type));
    }
    return 0;
}

int xf_gguf_get_bool(const xf_gguf_file *f, const char *key, bool required, bool dflt, bool *out,
                     xf_error *err)
{
    const xf_gguf_kv *kv;
    *out = dflt;
    if (find_scalar(f, key, required, &kv, err))
        return -1;
    if (!kv)
        return 0;
    if (kv->type != XF_GGUF_BOOL)
        return xf_fail(err, "%s: key %s: type %s, expected bool", f->path, key,
                       xf_gguf_vtype_name(kv->type));
    *out = kv->data[0] != 0;
    return 0;
}

int xf_gguf_get_str(const xf_gguf_file *f, const char *key, bool required, xf_gguf_str *out,
                    xf_error *err)
{
    const xf_gguf_kv *kv;
    out->ptr = NULL;
    out->len = 0;
    if (find_scalar(f, key, required, &kv, err))
        return -1;
    if (!kv)
        return 0;
    if (kv->type != XF_GGUF_STRING)
        return xf_fail(err, "%s: key %s: type %s, expected string", f->path, key,
                       xf_gguf_vtype_name(kv->type));
    *out = kv->strs[0];
    return 0;
}

int xf_gguf_get_array(const xf_gguf_file *f, const char *key, bool required, xf_gguf_vtype elem,
                      const xf_gguf_kv **kv_out, xf_error *err)
{
    const xf_gguf_kv *kv = xf_gguf_find(f, key);
    *kv_out = NULL;
    if (!kv)
        return required ? xf_fail(err, "%s: missing key %s", f->path, key) : 0;
    if (kv->type != XF_GGUF_ARRAY || kv->elem != elem)
        return xf_fail(err, "%s: key %s: type %s%s%s%s, expected array[%s]", f->path, key,
                       xf_gguf_vtype_name(kv->type), kv->type == XF_GGUF_ARRAY ? "[" : "",
                       kv->type == XF_GGUF_ARRAY ? xf_gguf_vtype_name(kv->elem) : "",
                       kv->type == XF_GGUF_ARRAY ? "]" : "", xf_gguf_vtype_name(elem));
    *kv_out = kv;
    return 0;
}

int32_t xf_gguf_arr_i32(const xf_gguf_kv *kv, uint64_t i)
{
    return (int32_t)(uint32_t)rd_le(kv->data + 4 * i, 4);
}

float xf_gguf_arr_f32(const xf_gguf_kv *kv, uint64_t i)
{
    uint32_t b = (uint32_t)rd_le(kv->data + 4 * i, 4);
    float v;
    memcpy(&v, &b, 4);
    return v;
}
