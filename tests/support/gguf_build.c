/* Test-side GGUF writer (tests/support/gguf_build.h). Byte buffers only;
 * little-endian by construction (bytes are emitted one by one). */
#include "tests/support/gguf_build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct buf {
    uint8_t *p;
    size_t n, cap;
} buf;

static void put(buf *b, const void *d, size_t n)
{
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n)
            cap *= 2;
        uint8_t *np = realloc(b->p, cap);
        if (!np)
            abort();
        b->p = np, b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->n, d, n);
    b->n += n;
}

static void put_le(buf *b, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++) {
        uint8_t c = (uint8_t)(v >> (8 * i));
        put(b, &c, 1);
    }
}

static void put_str(buf *b, const char *s, size_t n)
{
    put_le(b, n, 8);
    put(b, s, n);
}

struct xf_gguf_build {
    uint32_t alignment;
    uint64_t n_kv, n_tensors;
    buf kvs, infos, data;
};

xf_gguf_build *xf_gguf_build_new(uint32_t alignment)
{
    xf_gguf_build *b = calloc(1, sizeof *b);
    if (!b)
        abort();
    b->alignment = alignment ? alignment : 32;
    return b;
}

void xf_gguf_build_free(xf_gguf_build *b)
{
    if (!b)
        return;
    free(b->kvs.p);
    free(b->infos.p);
    free(b->data.p);
    free(b);
}

static void key(xf_gguf_build *b, const char *k, uint32_t type)
{
    put_str(&b->kvs, k, strlen(k));
    put_le(&b->kvs, type, 4);
    b->n_kv++;
}

void xf_gguf_build_u32(xf_gguf_build *b, const char *k, uint32_t v)
{
    key(b, k, 4);
    put_le(&b->kvs, v, 4);
}

void xf_gguf_build_i32(xf_gguf_build *b, const char *k, int32_t v)
{
    key(b, k, 5);
    put_le(&b->kvs, (uint32_t)v, 4);
}

static uint32_t f32_bits(float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    return u;
}

void xf_gguf_build_f32(xf_gguf_build *b, const char *k, float v)
{
    key(b, k, 6);
    put_le(&b->kvs, f32_bits(v), 4);
}

void xf_gguf_build_bool(xf_gguf_build *b, const char *k, bool v)
{
    key(b, k, 7);
    put_le(&b->kvs, v ? 1 : 0, 1);
}

void xf_gguf_build_str(xf_gguf_build *b, const char *k, const char *v)
{
    key(b, k, 8);
    put_str(&b->kvs, v, strlen(v));
}

void xf_gguf_build_str_arr(xf_gguf_build *b, const char *k, const char *const *v,
                           const size_t *lens, size_t n)
{
    key(b, k, 9);
    put_le(&b->kvs, 8, 4);
    put_le(&b->kvs, n, 8);
    for (size_t i = 0; i < n; i++)
        put_str(&b->kvs, v[i], lens ? lens[i] : strlen(v[i]));
}

void xf_gguf_build_f32_arr(xf_gguf_build *b, const char *k, const float *v, size_t n)
{
    key(b, k, 9);
    put_le(&b->kvs, 6, 4);
    put_le(&b->kvs, n, 8);
    for (size_t i = 0; i < n; i++)
        put_le(&b->kvs, f32_bits(v[i]), 4);
}

void xf_gguf_build_i32_arr(xf_gguf_build *b, const char *k, const int32_t *v, size_t n)
{
    key(b, k, 9);
    put_le(&b->kvs, 5, 4);
    put_le(&b->kvs, n, 8);
    for (size_t i = 0; i < n; i++)
        put_le(&b->kvs, (uint32_t)v[i], 4);
}

void xf_gguf_build_raw(xf_gguf_build *b, const char *k, uint32_t type, const void *v, size_t n)
{
    key(b, k, type);
    put(&b->kvs, v, n);
}

static void pad(buf *d, uint32_t a)
{
    static const uint8_t zero[256] = {0};
    while (d->n % a)
        put(d, zero, (a - d->n % a) < sizeof zero ? a - d->n % a : sizeof zero);
}

void xf_gguf_build_tensor_info(xf_gguf_build *b, const char *name, uint32_t ggml_type,
                               int n_dims, const int64_t *ne, uint64_t offset)
{
    put_str(&b->infos, name, strlen(name));
    put_le(&b->infos, (uint32_t)n_dims, 4);
    for (int d = 0; d < n_dims; d++)
        put_le(&b->infos, (uint64_t)ne[d], 8);
    put_le(&b->infos, ggml_type, 4);
    put_le(&b->infos, offset, 8);
    b->n_tensors++;
}

void xf_gguf_build_tensor(xf_gguf_build *b, const char *name, uint32_t ggml_type, int n_dims,
                          const int64_t *ne, const void *data, size_t nbytes)
{
    pad(&b->data, b->alignment);
    xf_gguf_build_tensor_info(b, name, ggml_type, n_dims, ne, b->data.n);
    put(&b->data, data, nbytes);
}

void xf_gguf_build_data(xf_gguf_build *b, const void *data, size_t n)
{
    put(&b->data, data, n);
}

int xf_gguf_build_bytes(const xf_gguf_build *b, uint8_t **out, size_t *n)
{
    buf f = {0};
    put(&f, "GGUF", 4);
    put_le(&f, 3, 4);
    put_le(&f, b->n_tensors, 8);
    put_le(&f, b->n_kv, 8);
    put(&f, b->kvs.p, b->kvs.n);
    put(&f, b->infos.p, b->infos.n);
    if (b->n_tensors) {
        pad(&f, b->alignment);
        put(&f, b->data.p, b->data.n);
        pad(&f, b->alignment); /* the last tensor is padded too */
    }
    *out = f.p;
    *n = f.n;
    return 0;
}

int xf_gguf_build_write(const xf_gguf_build *b, const char *path)
{
    uint8_t *p;
    size_t n;
    xf_gguf_build_bytes(b, &p, &n);
    FILE *fp = fopen(path, "wb");
    int rc = fp && fwrite(p, 1, n, fp) == n ? 0 : -1;
    if (fp && fclose(fp) != 0)
        rc = -1;
    free(p);
    if (rc)
        fprintf(stderr, "gguf_build: cannot write %s\n", path);
    return rc;
}
