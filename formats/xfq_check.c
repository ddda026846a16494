#include "formats/xfq_check.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "formats/xfq.h"

uint32_t xfq_crc32(uint32_t crc, const void *p, size_t n)
{
    const Bytef *b = p;
    uLong c = crc;
    while (n > 0) {
        uInt chunk = n > (1u << 30) ? (1u << 30) : (uInt)n; /* zlib takes 32-bit lengths */
        c = crc32(c, b, chunk);
        b += chunk;
        n -= chunk;
    }
    return (uint32_t)c;
}

xf_dtype xfq_storage_dtype(uint32_t storage)
{
    /* the ids are the dtype traits' (formats/dtype.c); of the GGML range,
     * only the block types xfq_ggml_storable names */
    xf_dtype t = xf_dtype_from_xfq_storage(storage);
    if (t == XF_DTYPE_GGML && !xfq_ggml_storable(storage - XFQ_STORAGE_GGML_BASE))
        return XF_DTYPE_INVALID;
    return t;
}

const xf_ggml_type_traits *xfq_ggml_storable(uint32_t type)
{
    const xf_ggml_type_traits *t = xf_ggml_traits(type);
    /* only block types: F32/F16/BF16 have storage ids of their own */
    return t && t->quantized ? t : NULL;
}

uint32_t xfq_tensor_storage(const xf_tensor *t)
{
    if (t->dtype != XF_DTYPE_GGML)
        return xfq_dtype_storage(t->dtype);
    return xfq_ggml_storable(t->ggml_type) ? XFQ_STORAGE_GGML_BASE + t->ggml_type : 0;
}

uint32_t xfq_dtype_storage(xf_dtype t)
{
    const xf_dtype_traits *tr = xf_dtype_traits_of(t);
    return tr && !tr->is_ggml ? tr->xfq_storage : 0;
}

static const char *scale_problem(uint16_t h)
{
    if ((h & 0x7c00u) == 0x7c00u)
        return (h & 0x3ffu) ? "NaN" : "infinite";
    if ((h & 0x7fffu) == 0)
        return "zero";
    if (h & 0x8000u)
        return "negative";
    return NULL;
}

int xfq_check_packed_grid(const xf_tensor *t, const char *what, xf_error *err)
{
    const xf_packed_view *p = &t->packed;
    const int64_t rows = t->shape[0], cols = t->shape[1], G = p->n_groups;
    const size_t grid = (size_t)rows * (size_t)G;
    for (size_t i = 0; i < grid; i++) {
        uint16_t h;
        memcpy(&h, &p->scales[i], sizeof h);
        const char *bad = scale_problem(h);
        if (bad)
            return xf_fail(err, "%s: tensor %s: scale [%lld, %lld] is %s (must be finite and > 0)",
                           what, t->name, (long long)(i / (size_t)G), (long long)(i % (size_t)G),
                           bad);
    }
    if (p->asym) {
        unsigned maxq = (1u << p->bits) - 1u;
        for (size_t i = 0; i < grid; i++)
            if (p->zeros[i] > maxq)
                return xf_fail(err, "%s: tensor %s: zero point [%lld, %lld] is %u, above %u", what,
                               t->name, (long long)(i / (size_t)G), (long long)(i % (size_t)G),
                               p->zeros[i], maxq);
    }
    if (p->perm) {
        uint8_t *seen = calloc((size_t)cols, 1);
        if (!seen)
            return xf_fail(err, "%s: tensor %s: out of memory", what, t->name);
        for (int64_t j = 0; j < cols; j++) {
            int32_t v;
            memcpy(&v, &p->perm[j], sizeof v);
            if (v < 0 || v >= cols || seen[v]) {
                free(seen);
                return xf_fail(err,
                               "%s: tensor %s: perm is not a permutation of 0..%lld (entry %lld "
                               "is %d%s)",
                               what, t->name, (long long)cols - 1, (long long)j, (int)v,
                               (v >= 0 && v < cols) ? ", a repeat" : ", out of range");
            }
            seen[v] = 1;
        }
        free(seen);
    }
    return 0;
}

int64_t xfq_find_nonfinite(xf_dtype dt, const void *data, size_t n)
{
    const uint8_t *b = data;
    switch (dt) {
    case XF_DTYPE_F32:
        for (size_t i = 0; i < n; i++) {
            uint32_t u;
            memcpy(&u, b + 4 * i, 4);
            if ((u & 0x7f800000u) == 0x7f800000u)
                return (int64_t)i;
        }
        return -1;
    case XF_DTYPE_F16:
    case XF_DTYPE_BF16: {
        uint16_t mask = dt == XF_DTYPE_F16 ? 0x7c00u : 0x7f80u;
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, b + 2 * i, 2);
            if ((h & mask) == mask)
                return (int64_t)i;
        }
        return -1;
    }
    default: return -1;
    }
}

int xfq_check_ggml_layout(const xf_tensor *t, uint64_t nbytes, const char *what,
                          const xf_ggml_type_traits **traits, size_t *row_bytes, xf_error *err)
{
    const xf_ggml_type_traits *tt = xfq_ggml_storable(t->ggml_type);
    if (!tt) {
        const char *n = xf_ggml_type_name(t->ggml_type);
        return xf_fail(err, "%s: tensor %s: GGML type %u%s%s%s is not a block type .xfq stores",
                       what, t->name, (unsigned)t->ggml_type, n ? " (" : "", n ? n : "",
                       n ? ")" : "");
    }
    if (t->ndim != 2)
        return xf_fail(err, "%s: tensor %s: GGML %s tensor must have 2 dimensions, has %d", what,
                       t->name, tt->name, t->ndim);
    const int64_t rows = t->shape[0], cols = t->shape[1];
    if (rows < 1 || cols < 1 || cols % tt->block_size != 0)
        return xf_fail(err, "%s: tensor %s: GGML %s shape [%lld, %lld]: rows must be >= 1 and "
                       "cols a positive multiple of the block size %lld",
                       what, t->name, tt->name, (long long)rows, (long long)cols,
                       (long long)tt->block_size);
    const size_t rb = xf_ggml_row_bytes(tt, cols);
    uint64_t want;
    if (rb == 0 || __builtin_mul_overflow((uint64_t)rows, (uint64_t)rb, &want) ||
        want > (uint64_t)SIZE_MAX)
        return xf_fail(err, "%s: tensor %s: GGML %s shape [%lld, %lld] overflows", what, t->name,
                       tt->name, (long long)rows, (long long)cols);
    if (nbytes != want)
        return xf_fail(err, "%s: tensor %s: nbytes %llu, but GGML %s shape [%lld, %lld] implies "
                       "%llu (%lld rows of %zu bytes)",
                       what, t->name, (unsigned long long)nbytes, tt->name, (long long)rows,
                       (long long)cols, (unsigned long long)want, (long long)rows, rb);
    *traits = tt;
    *row_bytes = rb;
    return 0;
}
