#include "formats/tensor.h"

#include <stdlib.h>
#include <string.h>

#include "formats/ggml_types.h"

const char *xf_tensor_type_name(const xf_tensor *t)
{
    if (t->dtype != XF_DTYPE_GGML)
        return xf_dtype_name(t->dtype);
    const xf_ggml_type_traits *tt = xf_ggml_traits(t->ggml_type);
    return tt && tt->quantized ? tt->tensor_type_name : "GGML ?";
}

int64_t xf_tensor_numel(const xf_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->shape[i];
    return n;
}

/* The row converter of t's dtype, or NULL (then err is filled). */
static xf_rows_to_f32_fn converter(const xf_tensor *t, xf_error *err)
{
    const xf_dtype_traits *tr = xf_dtype_traits_of(t->dtype);
    if (!tr || !tr->rows_to_f32) {
        xf_fail(err, "tensor %s: dtype %s is not a floating-point type", t->name,
                xf_dtype_name(t->dtype));
        return NULL;
    }
    return tr->rows_to_f32;
}

int xf_tensor_to_f32(const xf_tensor *t, float *dst, xf_error *err)
{
    xf_rows_to_f32_fn fn = converter(t, err);
    if (!fn)
        return -1;
    /* rows of the last dimension; packed and GGML converters want 2-D and
     * check it before they read the count */
    const int64_t cols = t->ndim > 0 ? t->shape[t->ndim - 1] : 1;
    const int64_t rows = cols > 0 ? xf_tensor_numel(t) / cols : 0;
    return fn(t, 0, rows, dst, err);
}

int xf_tensor_row_to_f32(const xf_tensor *t, int64_t r, float *dst, xf_error *err)
{
    if (t->ndim != 2)
        return xf_fail(err, "tensor %s: expected 2 dimensions, has %d", t->name, t->ndim);
    if (r < 0 || r >= t->shape[0])
        return xf_fail(err, "tensor %s: row %lld out of range [0, %lld)", t->name, (long long)r,
                       (long long)t->shape[0]);
    xf_rows_to_f32_fn fn = converter(t, err);
    return fn ? fn(t, r, 1, dst, err) : -1;
}

static int cmp_tensor_name(const void *a, const void *b)
{
    return strcmp(((const xf_tensor *)a)->name, ((const xf_tensor *)b)->name);
}

int xf_tensor_set_init(xf_tensor_set *s, const xf_tensor *items, size_t n, const char *what,
                       xf_error *err)
{
    s->items = NULL;
    s->n = 0;
    if (n == 0)
        return 0;
    s->items = malloc(n * sizeof *items);
    if (!s->items)
        return xf_fail(err, "%s: out of memory", what);
    memcpy(s->items, items, n * sizeof *items);
    qsort(s->items, n, sizeof *items, cmp_tensor_name);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(s->items[i - 1].name, s->items[i].name) == 0) {
            xf_fail(err, "%s: tensor \"%s\" appears more than once", what, s->items[i].name);
            xf_tensor_set_free(s);
            return -1;
        }
    }
    s->n = n;
    return 0;
}

void xf_tensor_set_free(xf_tensor_set *s)
{
    free(s->items);
    s->items = NULL;
    s->n = 0;
}

const xf_tensor *xf_tensor_set_find(const xf_tensor_set *s, const char *name)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(s->items[mid].name, name);
        if (c == 0)
            return &s->items[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}
