/* Outlier side tables: names, validation, attachment to the packed view (spec:
 * docs/xfq-format.md, "Outlier side tables"). Element reads go through
 * memcpy: views from a .safetensors file need not be 4-byte aligned. */
#include "formats/xfq_outliers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/xfq_check.h"

/* "what: " before a message, or nothing when what is NULL. */
#define PRE(what) (what) ? (what) : "", (what) ? ": " : ""

static const char *const part_names[XFQ_OUTLIERS_NPARTS] = {"row_ptr", "col", "val"};

const char *xfq_outliers_part_name(xfq_outliers_part p)
{
    return (p >= 0 && p < XFQ_OUTLIERS_NPARTS) ? part_names[p] : "?";
}

int xfq_outliers_name(const char *weight, xfq_outliers_part p, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "%s" XFQ_OUTLIERS_INFIX "%s", weight, xfq_outliers_part_name(p));
    return (n < 0 || (size_t)n >= cap) ? -1 : 0;
}

int xfq_outliers_parse_name(const char *name, size_t *weight_len)
{
    const size_t n = strlen(name), infix = strlen(XFQ_OUTLIERS_INFIX);
    for (int p = 0; p < XFQ_OUTLIERS_NPARTS; p++) {
        const size_t suffix = infix + strlen(part_names[p]);
        if (n > suffix && !memcmp(name + n - suffix, XFQ_OUTLIERS_INFIX, infix) &&
            !strcmp(name + n - suffix + infix, part_names[p])) {
            *weight_len = n - suffix;
            return p;
        }
    }
    return -1;
}

void xfq_outliers_find(const xf_tensor_set *s, const char *weight, xf_sparse_outliers *out)
{
    const xf_tensor **slot[XFQ_OUTLIERS_NPARTS] = {&out->row_ptr, &out->col, &out->val};
    memset(out, 0, sizeof *out);
    size_t len = strlen(weight) + sizeof XFQ_OUTLIERS_INFIX + 8;
    char *name = malloc(len);
    if (!name)
        return; /* treated as "no table": callers' later checks still hold */
    for (int p = 0; p < XFQ_OUTLIERS_NPARTS; p++)
        if (xfq_outliers_name(weight, (xfq_outliers_part)p, name, len) == 0)
            *slot[p] = xf_tensor_set_find(s, name);
    free(name);
}

static int32_t i32_at(const xf_tensor *t, int64_t i)
{
    int32_t v;
    memcpy(&v, (const uint8_t *)t->data + 4 * (size_t)i, sizeof v);
    return v;
}

/* Storage type and rank of one part; its length in *len. */
static int check_part(const xf_tensor *t, xf_dtype want, const char *what, int64_t *len,
                      xf_error *err)
{
    if (t->dtype != want)
        return xf_fail(err, "%s%stensor %s: outlier table part must be %s, is %s", PRE(what), t->name,
                       xf_dtype_name(want), xf_dtype_name(t->dtype));
    if (t->ndim != 1)
        return xf_fail(err, "%s%stensor %s: outlier table part must have 1 dimension, has %d",
                       PRE(what), t->name, t->ndim);
    if ((size_t)t->shape[0] * xf_dtype_size(want) != t->nbytes || (t->shape[0] > 0 && !t->data))
        return xf_fail(err, "%s%stensor %s: %zu bytes for %lld elements", PRE(what), t->name,
                       t->nbytes, (long long)t->shape[0]);
    *len = t->shape[0];
    return 0;
}

/* Which part is missing, for the error line. */
static int missing_part(const xf_sparse_outliers *o, const char *what, xf_error *err)
{
    const xf_tensor *have = o->row_ptr ? o->row_ptr : o->col ? o->col : o->val;
    size_t wlen = 0;
    if (xfq_outliers_parse_name(have->name, &wlen) < 0)
        wlen = strlen(have->name);
    const char *miss = !o->row_ptr ? "row_ptr" : !o->col ? "col" : "val";
    return xf_fail(err, "%s%stensor %s: outlier side table is incomplete (%.*s" XFQ_OUTLIERS_INFIX
                   "%s is missing)", PRE(what), have->name, (int)wlen, have->name, miss);
}

int xfq_outliers_check(const xf_sparse_outliers *o, const xf_tensor *w, const char *what,
                       xf_error *err)
{
    if (!xfq_outliers_any(o))
        return 0;
    if (!o->row_ptr || !o->col || !o->val)
        return missing_part(o, what, err);
    if (!w) {
        size_t wlen = 0;
        xfq_outliers_parse_name(o->row_ptr->name, &wlen);
        return xf_fail(err, "%s%stensor %s: outlier side table of %.*s, which is not in the file",
                       PRE(what), o->row_ptr->name, (int)wlen, o->row_ptr->name);
    }
    if (!xf_dtype_is_packed(w->dtype) || w->ndim != 2)
        return xf_fail(err, "%s%stensor %s: outlier side table of %s, which is not a packed "
                       "weight (%s)", PRE(what), o->row_ptr->name, w->name, xf_dtype_name(w->dtype));
    const int64_t rows = w->shape[0], cols = w->shape[1];
    int64_t n_ptr, n_col, n_val;
    if (check_part(o->row_ptr, XF_DTYPE_I32, what, &n_ptr, err) != 0 ||
        check_part(o->col, XF_DTYPE_I32, what, &n_col, err) != 0 ||
        check_part(o->val, XF_DTYPE_F16, what, &n_val, err) != 0)
        return -1;
    if (n_ptr != rows + 1)
        return xf_fail(err, "%s%stensor %s: has %lld entries, weight %s has %lld rows (needs %lld)",
                       PRE(what), o->row_ptr->name, (long long)n_ptr, w->name, (long long)rows,
                       (long long)rows + 1);
    if (n_col > INT32_MAX)
        return xf_fail(err, "%s%stensor %s: %lld entries exceed the I32 index range", PRE(what),
                       o->col->name, (long long)n_col);
    if (n_val != n_col)
        return xf_fail(err, "%s%stensor %s: has %lld values, %s has %lld columns", PRE(what),
                       o->val->name, (long long)n_val, o->col->name, (long long)n_col);
    if (i32_at(o->row_ptr, 0) != 0)
        return xf_fail(err, "%s%stensor %s: row_ptr[0] is %d, must be 0", PRE(what), o->row_ptr->name,
                       (int)i32_at(o->row_ptr, 0));
    /* row_ptr whole first, so that a bad one is reported as such */
    for (int64_t r = 0; r < rows; r++) {
        const int32_t a = i32_at(o->row_ptr, r), b = i32_at(o->row_ptr, r + 1);
        if (b < a || b > n_col)
            return xf_fail(err, "%s%stensor %s: row_ptr[%lld] = %d %s", PRE(what), o->row_ptr->name,
                           (long long)r + 1, (int)b,
                           b < a ? "decreases (row_ptr must be non-decreasing)"
                                 : "exceeds the number of entries");
    }
    if (i32_at(o->row_ptr, rows) != n_col)
        return xf_fail(err, "%s%stensor %s: row_ptr[%lld] is %d, must equal the %lld entries",
                       PRE(what), o->row_ptr->name, (long long)rows, (int)i32_at(o->row_ptr, rows),
                       (long long)n_col);
    for (int64_t r = 0; r < rows; r++) {
        const int32_t a = i32_at(o->row_ptr, r), b = i32_at(o->row_ptr, r + 1);
        for (int32_t k = a; k < b; k++) {
            const int32_t c = i32_at(o->col, k);
            if (c < 0 || c >= cols)
                return xf_fail(err, "%s%stensor %s: entry %d (row %lld) has column %d outside "
                               "[0, %lld)", PRE(what), o->col->name, (int)k, (long long)r, (int)c,
                               (long long)cols);
            if (k > a && c <= i32_at(o->col, k - 1))
                return xf_fail(err, "%s%stensor %s: columns of row %lld are not strictly "
                               "increasing (entry %d: %d after %d)", PRE(what), o->col->name,
                               (long long)r, (int)k, (int)c, (int)i32_at(o->col, k - 1));
        }
    }
    int64_t bad = xfq_find_nonfinite(XF_DTYPE_F16, o->val->data, (size_t)n_val);
    if (bad >= 0)
        return xf_fail(err, "%s%stensor %s: value %lld is NaN or infinite", PRE(what), o->val->name,
                       (long long)bad);
    return 0;
}

int xfq_outliers_check_set(const xf_tensor_set *s, const char *what, xf_error *err)
{
    for (size_t i = 0; i < s->n; i++) {
        const xf_tensor *t = &s->items[i];
        size_t wlen;
        int part = xfq_outliers_parse_name(t->name, &wlen);
        if (part < 0)
            continue;
        char *weight = strndup(t->name, wlen);
        if (!weight)
            return xf_fail(err, "%s: out of memory", what);
        xf_sparse_outliers o;
        xfq_outliers_find(s, weight, &o);
        const xf_tensor *w = xf_tensor_set_find(s, weight);
        free(weight);
        /* a complete table is checked once, when its row_ptr comes by */
        if (o.row_ptr && part != XFQ_OUTLIERS_ROW_PTR)
            continue;
        if (!xfq_outliers_any(&o)) /* strndup/find failed to allocate */
            return xf_fail(err, "%s: out of memory", what);
        if (xfq_outliers_check(&o, w, what, err) != 0)
            return -1;
    }
    return 0;
}

int64_t xfq_outliers_nnz(const xf_sparse_outliers *o)
{
    return o->col ? o->col->shape[0] : 0;
}

size_t xfq_outliers_bytes(const xf_sparse_outliers *o)
{
    return (o->row_ptr ? o->row_ptr->nbytes : 0) + (o->col ? o->col->nbytes : 0) +
           (o->val ? o->val->nbytes : 0);
}

void xfq_outliers_attach(const xf_sparse_outliers *o, xf_tensor *w)
{
    xf_packed_outliers *p = &w->packed.outliers;
    memset(p, 0, sizeof *p);
    if (!o->row_ptr || !o->col || !o->val)
        return;
    p->row_ptr = o->row_ptr->data;
    p->col = o->col->data;
    p->val = o->val->data;
    p->nnz = o->col->shape[0];
}

void xfq_outliers_attach_set(xf_tensor_set *s)
{
    for (size_t i = 0; i < s->n; i++) {
        xf_tensor *w = &s->items[i];
        if (!xf_dtype_is_packed(w->dtype))
            continue;
        xf_sparse_outliers o;
        xfq_outliers_find(s, w->name, &o);
        xfq_outliers_attach(&o, w);
    }
}

int xfq_outliers_check_carried(const xf_sparse_outliers *o, const xf_tensor *w, const char *what,
                               xf_error *err)
{
    const xf_packed_outliers *c = &w->packed.outliers;
    const bool table = o->row_ptr && o->col && o->val, carried = c->row_ptr != NULL;
    if (!table && !carried)
        return 0;
    if (!table)
        return xf_fail(err, "%s%stensor %s: its packed view carries %lld outliers, but there is "
                       "no outlier side table %s" XFQ_OUTLIERS_INFIX "* to hold them", PRE(what),
                       w->name, (long long)c->nnz, w->name);
    const int64_t rows = w->shape[0], nnz = xfq_outliers_nnz(o);
    if (!carried || c->nnz != nnz || !c->col || !c->val ||
        memcmp(c->row_ptr, o->row_ptr->data, (size_t)(rows + 1) * 4) != 0 ||
        (nnz > 0 && (memcmp(c->col, o->col->data, (size_t)nnz * 4) != 0 ||
                     memcmp(c->val, o->val->data, (size_t)nnz * 2) != 0)))
        return xf_fail(err, "%s%stensor %s: outlier side table is not the one its packed view "
                       "carries", PRE(what), o->row_ptr->name);
    return 0;
}

int xfq_outliers_check_carried_set(const xf_tensor_set *s, const char *what, xf_error *err)
{
    for (size_t i = 0; i < s->n; i++) {
        const xf_tensor *w = &s->items[i];
        if (!xf_dtype_is_packed(w->dtype))
            continue;
        xf_sparse_outliers o;
        xfq_outliers_find(s, w->name, &o);
        if (xfq_outliers_check_carried(&o, w, what, err) != 0)
            return -1;
    }
    return 0;
}
