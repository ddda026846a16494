/* GGUF v3 writer (formats/gguf_write.h). */
#include "formats/gguf_write.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/atomic_file.h"
#include "core/half.h"
#include "formats/ggml_types.h"

static int oom(xf_gguf_writer *w, xf_error *err)
{
    w->failed = true;
    return xf_fail(err, "%s: out of memory", w->what);
}

int xf_gguf_writer_init(xf_gguf_writer *w, uint32_t alignment, const char *what, xf_error *err)
{
    memset(w, 0, sizeof *w);
    if (alignment == 0)
        alignment = XF_GGUF_DEFAULT_ALIGNMENT;
    if ((alignment & (alignment - 1)) != 0)
        return xf_fail(err, "%s: GGUF alignment %u is not a power of two", what, alignment);
    w->alignment = alignment;
    w->what = strdup(what ? what : "gguf");
    if (!w->what)
        return xf_fail(err, "out of memory");
    /* written also at the default, so that a reader need not know it */
    return xf_gguf_add_u32(w, "general.alignment", alignment, err);
}

void xf_gguf_writer_free(xf_gguf_writer *w)
{
    for (uint64_t i = 0; i < w->n_kv; i++)
        free(w->keys[i]);
    free(w->keys);
    free(w->kv);
    for (size_t i = 0; i < w->n_tensors; i++) {
        free(w->tensors[i].name);
        free(w->tensors[i].data);
    }
    free(w->tensors);
    free(w->what);
    memset(w, 0, sizeof *w);
}

static int put(xf_gguf_writer *w, const void *p, size_t n, xf_error *err)
{
    if (w->kv_len + n > w->kv_cap) {
        size_t cap = w->kv_cap ? w->kv_cap : 4096;
        while (cap < w->kv_len + n)
            cap *= 2;
        uint8_t *nb = realloc(w->kv, cap);
        if (!nb)
            return oom(w, err);
        w->kv = nb;
        w->kv_cap = cap;
    }
    memcpy(w->kv + w->kv_len, p, n);
    w->kv_len += n;
    return 0;
}

/* GGUF is little-endian; so are the machines xfquant runs on (x86-64,
 * aarch64), so values are copied as they lie in memory. */
static int put_u32(xf_gguf_writer *w, uint32_t v, xf_error *err) { return put(w, &v, 4, err); }
static int put_u64(xf_gguf_writer *w, uint64_t v, xf_error *err) { return put(w, &v, 8, err); }
static int put_str(xf_gguf_writer *w, const char *s, size_t n, xf_error *err)
{
    return put_u64(w, n, err) || put(w, s, n, err) ? -1 : 0;
}

/* Checks the key and writes it with its value type. */
static int begin_kv(xf_gguf_writer *w, const char *key, uint32_t vtype, xf_error *err)
{
    if (!key || !*key)
        return xf_fail(err, "%s: empty GGUF key", w->what);
    for (uint64_t i = 0; i < w->n_kv; i++)
        if (!strcmp(w->keys[i], key))
            return xf_fail(err, "%s: duplicate GGUF key %s", w->what, key);
    char **nk = realloc(w->keys, (w->n_kv + 1) * sizeof *nk);
    if (!nk)
        return oom(w, err);
    w->keys = nk;
    if (!(w->keys[w->n_kv] = strdup(key)))
        return oom(w, err);
    w->n_kv++;
    return put_str(w, key, strlen(key), err) || put_u32(w, vtype, err) ? -1 : 0;
}

int xf_gguf_add_u32(xf_gguf_writer *w, const char *key, uint32_t v, xf_error *err)
{
    return begin_kv(w, key, XF_GGUF_U32, err) || put_u32(w, v, err) ? -1 : 0;
}

int xf_gguf_add_i32(xf_gguf_writer *w, const char *key, int32_t v, xf_error *err)
{
    return begin_kv(w, key, XF_GGUF_I32, err) || put(w, &v, 4, err) ? -1 : 0;
}

int xf_gguf_add_f32(xf_gguf_writer *w, const char *key, float v, xf_error *err)
{
    if (!isfinite(v))
        return xf_fail(err, "%s: GGUF key %s: value is not finite", w->what, key);
    return begin_kv(w, key, XF_GGUF_F32, err) || put(w, &v, 4, err) ? -1 : 0;
}

int xf_gguf_add_bool(xf_gguf_writer *w, const char *key, bool v, xf_error *err)
{
    uint8_t b = v ? 1 : 0;
    return begin_kv(w, key, XF_GGUF_BOOL, err) || put(w, &b, 1, err) ? -1 : 0;
}

int xf_gguf_add_string(xf_gguf_writer *w, const char *key, const char *s, xf_error *err)
{
    return begin_kv(w, key, XF_GGUF_STRING, err) || put_str(w, s, strlen(s), err) ? -1 : 0;
}

static int begin_array(xf_gguf_writer *w, const char *key, uint32_t etype, size_t n,
                       xf_error *err)
{
    return begin_kv(w, key, XF_GGUF_ARRAY, err) || put_u32(w, etype, err) ||
                   put_u64(w, n, err)
               ? -1
               : 0;
}

int xf_gguf_add_str_array(xf_gguf_writer *w, const char *key, const char *const *s,
                          const size_t *lens, size_t n, xf_error *err)
{
    if (begin_array(w, key, XF_GGUF_STRING, n, err) != 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (put_str(w, s[i], lens ? lens[i] : strlen(s[i]), err) != 0)
            return -1;
    return 0;
}

int xf_gguf_add_f32_array(xf_gguf_writer *w, const char *key, const float *v, size_t n,
                          xf_error *err)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return xf_fail(err, "%s: GGUF key %s: element %zu is not finite", w->what, key, i);
    return begin_array(w, key, XF_GGUF_F32, n, err) || put(w, v, n * 4, err) ? -1 : 0;
}

int xf_gguf_add_i32_array(xf_gguf_writer *w, const char *key, const int32_t *v, size_t n,
                          xf_error *err)
{
    return begin_array(w, key, XF_GGUF_I32, n, err) || put(w, v, n * 4, err) ? -1 : 0;
}

size_t xf_gguf_tensor_nbytes(uint32_t type, int ndim, const int64_t *ne)
{
    const xf_ggml_type_traits *t = xf_ggml_traits(type);
    if (!t || ndim < 1 || ndim > XF_GGUF_MAX_DIMS)
        return 0;
    size_t row = xf_ggml_row_bytes(t, ne[0]);
    if (row == 0)
        return 0;
    size_t n = row;
    for (int d = 1; d < ndim; d++) {
        if (ne[d] <= 0 || n > SIZE_MAX / (size_t)ne[d])
            return 0;
        n *= (size_t)ne[d];
    }
    return n;
}

/* The first non-finite element of a float tensor, or -1. Chunks are
 * scanned branch-free (vectorizable), the element found only in a bad one. */
static int64_t first_nonfinite(uint32_t type, const void *data, size_t nbytes)
{
    enum { CHUNK = 4096 };
    if (type == XF_GGML_F32) {
        const uint32_t *u = data;
        const size_t n = nbytes / 4;
        for (size_t c0 = 0; c0 < n; c0 += CHUNK) {
            const size_t c1 = n - c0 < CHUNK ? n : c0 + CHUNK;
            uint32_t bad = 0;
            for (size_t i = c0; i < c1; i++)
                bad |= (u[i] & 0x7f800000u) == 0x7f800000u;
            if (bad)
                for (size_t i = c0; i < c1; i++)
                    if ((u[i] & 0x7f800000u) == 0x7f800000u)
                        return (int64_t)i;
        }
    } else if (type == XF_GGML_F16 || type == XF_GGML_BF16) {
        const uint16_t *h = data;
        const size_t n = nbytes / 2;
        /* both have all-ones exponents for Inf/NaN: 5 bits (F16), 8 bits (BF16) */
        const uint16_t mask = type == XF_GGML_F16 ? 0x7c00 : 0x7f80;
        for (size_t c0 = 0; c0 < n; c0 += CHUNK) {
            const size_t c1 = n - c0 < CHUNK ? n : c0 + CHUNK;
            uint16_t bad = 0;
            for (size_t i = c0; i < c1; i++)
                bad |= (uint16_t)((h[i] & mask) == mask);
            if (bad)
                for (size_t i = c0; i < c1; i++)
                    if ((h[i] & mask) == mask)
                        return (int64_t)i;
        }
    }
    return -1;
}

static int add_tensor(xf_gguf_writer *w, const char *name, int ndim, const int64_t *ne,
                      uint32_t type, void *data, size_t nbytes, xf_gguf_fill_fn fill, void *ctx,
                      xf_error *err)
{
    const xf_ggml_type_traits *tt = xf_ggml_traits(type);
    int rc = -1;
    if (!name || !*name || strlen(name) >= XF_GGUF_MAX_NAME) {
        xf_fail(err, "%s: tensor name '%s' is empty or longer than %d bytes", w->what,
                name ? name : "", XF_GGUF_MAX_NAME - 1);
        goto out;
    }
    if (!tt) {
        xf_fail(err, "%s: tensor %s: unknown GGML type %u", w->what, name, type);
        goto out;
    }
    if (ndim < 1 || ndim > XF_GGUF_MAX_DIMS) {
        xf_fail(err, "%s: tensor %s: %d dimensions (1..4)", w->what, name, ndim);
        goto out;
    }
    if (ne[0] % tt->block_size != 0) {
        xf_fail(err, "%s: tensor %s: row length %lld is not a multiple of the %s block (%lld)",
                w->what, name, (long long)ne[0], tt->name, (long long)tt->block_size);
        goto out;
    }
    size_t want = xf_gguf_tensor_nbytes(type, ndim, ne);
    if (want == 0 || want != nbytes) {
        xf_fail(err, "%s: tensor %s: %zu bytes given, %s of this shape needs %zu", w->what,
                name, nbytes, tt->name, want);
        goto out;
    }
    int64_t bad = data ? first_nonfinite(type, data, nbytes) : -1;
    if (bad >= 0) {
        xf_fail(err, "%s: tensor %s: element %lld is not finite", w->what, name,
                (long long)bad);
        goto out;
    }
    for (size_t i = 0; i < w->n_tensors; i++)
        if (!strcmp(w->tensors[i].name, name)) {
            xf_fail(err, "%s: duplicate tensor name %s", w->what, name);
            goto out;
        }
    if (w->n_tensors == w->cap_tensors) {
        size_t cap = w->cap_tensors ? 2 * w->cap_tensors : 64;
        xf_gguf_tensor_info *nt = realloc(w->tensors, cap * sizeof *nt);
        if (!nt) {
            oom(w, err);
            goto out;
        }
        w->tensors = nt;
        w->cap_tensors = cap;
    }
    xf_gguf_tensor_info *ti = &w->tensors[w->n_tensors];
    memset(ti, 0, sizeof *ti);
    if (!(ti->name = strdup(name))) {
        oom(w, err);
        goto out;
    }
    ti->ndim = ndim;
    for (int d = 0; d < XF_GGUF_MAX_DIMS; d++)
        ti->ne[d] = d < ndim ? ne[d] : 1;
    ti->type = type;
    ti->data = data;
    ti->fill = fill;
    ti->fill_ctx = ctx;
    ti->nbytes = nbytes;
    data = NULL;
    w->n_tensors++;
    rc = 0;
out:
    free(data);
    return rc;
}

int xf_gguf_add_tensor(xf_gguf_writer *w, const char *name, int ndim, const int64_t *ne,
                       uint32_t type, void *data, size_t nbytes, xf_error *err)
{
    return add_tensor(w, name, ndim, ne, type, data, nbytes, NULL, NULL, err);
}

int xf_gguf_add_tensor_fill(xf_gguf_writer *w, const char *name, int ndim, const int64_t *ne,
                            uint32_t type, size_t nbytes, xf_gguf_fill_fn fill, void *ctx,
                            xf_error *err)
{
    if (!fill)
        return xf_fail(err, "%s: tensor %s: no data and no fill function", w->what,
                       name ? name : "");
    return add_tensor(w, name, ndim, ne, type, NULL, nbytes, fill, ctx, err);
}

/* Writes tensor t's bytes: its own, or filled into a scratch buffer
 * (grown as needed, kept across tensors) and checked. */
static int write_data(const xf_gguf_writer *w, const xf_gguf_tensor_info *t, xf_atomic_file *f,
                      void **scratch, size_t *cap, xf_error *err)
{
    if (t->data)
        return xf_atomic_write(f, t->data, t->nbytes, err);
    if (t->nbytes > *cap) {
        void *nb = realloc(*scratch, t->nbytes);
        if (!nb)
            return xf_fail(err, "%s: tensor %s: out of memory", w->what, t->name);
        *scratch = nb;
        *cap = t->nbytes;
    }
    if (t->fill(t->fill_ctx, *scratch, t->nbytes, err) != 0)
        return -1;
    int64_t bad = first_nonfinite(t->type, *scratch, t->nbytes);
    if (bad >= 0)
        return xf_fail(err, "%s: tensor %s: element %lld is not finite", w->what, t->name,
                       (long long)bad);
    return xf_atomic_write(f, *scratch, t->nbytes, err);
}

static uint64_t pad_to(uint64_t n, uint64_t a) { return (n + a - 1) / a * a; }

/* Bytes of the header, KVs and tensor infos (before the padding). */
static uint64_t meta_bytes(const xf_gguf_writer *w)
{
    uint64_t n = 4 + 4 + 8 + 8 + w->kv_len;
    for (size_t i = 0; i < w->n_tensors; i++)
        n += 8 + strlen(w->tensors[i].name) + 4 + 8 * (uint64_t)w->tensors[i].ndim + 4 + 8;
    return n;
}

uint64_t xf_gguf_file_size(const xf_gguf_writer *w)
{
    uint64_t n = pad_to(meta_bytes(w), w->alignment);
    for (size_t i = 0; i < w->n_tensors; i++)
        n += pad_to(w->tensors[i].nbytes, w->alignment);
    return n;
}

int xf_gguf_write(const xf_gguf_writer *w, const char *path, xf_error *err)
{
    if (w->failed)
        return xf_fail(err, "%s: an earlier GGUF add failed", path);
    /* the header and the infos are assembled in memory, the data streamed */
    xf_gguf_writer hdr = {.alignment = w->alignment, .what = w->what};
    uint32_t version = XF_GGUF_VERSION;
    uint64_t n_tensors = w->n_tensors, n_kv = w->n_kv, offset = 0;
    void *scratch = NULL;
    size_t scratch_cap = 0;
    int rc = -1;
    if (put(&hdr, XF_GGUF_MAGIC, 4, err) || put_u32(&hdr, version, err) ||
        put_u64(&hdr, n_tensors, err) || put_u64(&hdr, n_kv, err) ||
        put(&hdr, w->kv, w->kv_len, err))
        goto out;
    for (size_t i = 0; i < w->n_tensors; i++) {
        const xf_gguf_tensor_info *t = &w->tensors[i];
        if (put_str(&hdr, t->name, strlen(t->name), err) || put_u32(&hdr, (uint32_t)t->ndim, err))
            goto out;
        for (int d = 0; d < t->ndim; d++)
            if (put_u64(&hdr, (uint64_t)t->ne[d], err))
                goto out;
        if (put_u32(&hdr, t->type, err) || put_u64(&hdr, offset, err))
            goto out;
        offset += pad_to(t->nbytes, w->alignment);
    }
    xf_atomic_file f;
    if (xf_atomic_open(&f, path, err) != 0)
        goto out;
    if (xf_atomic_write(&f, hdr.kv, hdr.kv_len, err) || xf_atomic_pad(&f, w->alignment, err))
        goto fail;
    for (size_t i = 0; i < w->n_tensors; i++)
        if (write_data(w, &w->tensors[i], &f, &scratch, &scratch_cap, err) ||
            xf_atomic_pad(&f, w->alignment, err))
            goto fail;
    if (xf_atomic_commit(&f, err) != 0)
        goto fail;
    xf_atomic_abort(&f);
    rc = 0;
    goto out;
fail:
    xf_atomic_abort(&f);
out:
    free(scratch);
    free(hdr.kv);
    return rc;
}
