/* safetensors reader (validating, mmap-backed) and writer (atomic,
 * deterministic bytes). See formats/safetensors.h for the layout. */
#include "formats/safetensors.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/utf8.h"
#include "core/atomic_file.h"
#include "core/json_util.h"

#define METADATA_KEY "__metadata__"
/* The data section starts at a multiple of this (header padded with spaces). */
#define DATA_ALIGNMENT 8

/* ---- shared helpers ---------------------------------------------------- */

/* Strict UTF-8 (core/utf8.h); NUL bytes allowed: safetensors names are
 * JSON strings. */
static bool utf8_valid(const char *str, size_t len) { return xf_utf8_valid(str, len, true); }

/* A name made safe to print in a one-line message: bytes outside printable
 * ASCII become \xHH, and long names are cut. */
static void printable_name(const char *name, char *out, size_t out_size)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        if (o + 8 >= out_size) {
            memcpy(out + o, "...", 4);
            return;
        }
        if (*p >= 0x20 && *p < 0x7F) {
            out[o++] = (char)*p;
        } else {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    out[o] = '\0';
}

/* "[2,3]" for the messages. */
static void format_shape(const int64_t *shape, int ndim, char *out, size_t out_size)
{
    size_t o = 0;
    o += (size_t)snprintf(out, out_size, "[");
    for (int d = 0; d < ndim && o < out_size; d++)
        o += (size_t)snprintf(out + o, out_size - o, "%s%lld", d ? "," : "", (long long)shape[d]);
    if (o < out_size)
        snprintf(out + o, out_size - o, "]");
}

/* numel * element size with overflow checks; numel must also fit int64
 * (xf_tensor_numel's type). Returns false on overflow. */
static bool checked_nbytes(const int64_t *shape, int ndim, size_t elem_size, uint64_t *nbytes)
{
    uint64_t numel = 1;
    for (int d = 0; d < ndim; d++)
        if (__builtin_mul_overflow(numel, (uint64_t)shape[d], &numel))
            return false;
    if (numel > (uint64_t)INT64_MAX)
        return false;
    uint64_t n;
    if (__builtin_mul_overflow(numel, (uint64_t)elem_size, &n) || n > (uint64_t)SIZE_MAX ||
        n > (uint64_t)INT64_MAX)
        return false;
    *nbytes = n;
    return true;
}

/* "__metadata__" must be an object whose keys and values are UTF-8 strings. */
static int check_metadata(const json_t *meta, const char *what, xf_error *err)
{
    if (!json_is_object(meta))
        return xf_fail(err, "%s: " METADATA_KEY " must be an object of strings", what);
    const char *key;
    json_t *val;
    /* jansson's iteration API takes a non-const object; nothing is modified */
    json_object_foreach ((json_t *)meta, key, val) {
        char shown[128];
        printable_name(key, shown, sizeof shown);
        if (!utf8_valid(key, strlen(key)))
            return xf_fail(err, "%s: " METADATA_KEY " key \"%s\" is not valid UTF-8", what, shown);
        if (!json_is_string(val))
            return xf_fail(err, "%s: " METADATA_KEY " value of \"%s\" is not a string", what,
                           shown);
        if (!utf8_valid(json_string_value(val), json_string_length(val)))
            return xf_fail(err, "%s: " METADATA_KEY " value of \"%s\" is not valid UTF-8", what,
                           shown);
    }
    return 0;
}

static int cmp_tensor_name(const void *a, const void *b)
{
    return strcmp(((const xf_tensor *)a)->name, ((const xf_tensor *)b)->name);
}

/* ---- reader ------------------------------------------------------------ */

/* One header entry before it becomes a view: its byte range in the data
 * section, kept for the overlap check. */
typedef struct entry_range {
    uint64_t begin, end;
    const char *name;
} entry_range;

static int cmp_range(const void *a, const void *b)
{
    const entry_range *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return 0;
}

static int parse_shape(const json_t *shape, xf_tensor *t, const char *path, const char *shown,
                       xf_error *err)
{
    if (!json_is_array(shape))
        return xf_fail(err, "%s: tensor %s: shape must be an array of non-negative integers",
                       path, shown);
    size_t nd = json_array_size(shape);
    if (nd > XF_MAX_DIMS)
        return xf_fail(err, "%s: tensor %s: shape has %zu dimensions, more than the %d supported",
                       path, shown, nd, XF_MAX_DIMS);
    for (size_t d = 0; d < nd; d++) {
        const json_t *v = json_array_get(shape, d);
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            return xf_fail(err, "%s: tensor %s: shape must be an array of non-negative integers",
                           path, shown);
        t->shape[d] = (int64_t)json_integer_value(v);
    }
    t->ndim = (int)nd;
    return 0;
}

static int parse_offsets(const json_t *offs, uint64_t *begin, uint64_t *end, const char *path,
                         const char *shown, xf_error *err)
{
    const json_t *b = json_array_get(offs, 0), *e = json_array_get(offs, 1);
    if (!json_is_array(offs) || json_array_size(offs) != 2 || !json_is_integer(b) ||
        !json_is_integer(e) || json_integer_value(b) < 0 || json_integer_value(e) < 0 ||
        json_integer_value(b) > json_integer_value(e))
        return xf_fail(err,
                       "%s: tensor %s: data_offsets must be two non-negative integers "
                       "[begin, end] with begin <= end",
                       path, shown);
    *begin = (uint64_t)json_integer_value(b);
    *end = (uint64_t)json_integer_value(e);
    return 0;
}

/* Validates one header entry and fills the view (name set by the caller). */
static int parse_entry(const char *name, const json_t *info, const uint8_t *data,
                       uint64_t data_size, xf_tensor *t, entry_range *r, const char *path,
                       xf_error *err)
{
    char shown[160];
    printable_name(name, shown, sizeof shown);
    if (name[0] == '\0')
        return xf_fail(err, "%s: a tensor has an empty name", path);
    if (!utf8_valid(name, strlen(name)))
        return xf_fail(err, "%s: tensor name \"%s\" is not valid UTF-8", path, shown);
    if (!json_is_object(info))
        return xf_fail(err, "%s: tensor %s: header entry is not an object", path, shown);

    const json_t *dt = json_object_get(info, "dtype");
    if (!json_is_string(dt))
        return xf_fail(err, "%s: tensor %s: missing or non-string \"dtype\"", path, shown);
    t->dtype = xf_dtype_from_name(json_string_value(dt));
    if (t->dtype == XF_DTYPE_INVALID) {
        char dshown[64];
        printable_name(json_string_value(dt), dshown, sizeof dshown);
        return xf_fail(err, "%s: tensor %s: unknown dtype \"%s\"", path, shown, dshown);
    }
    if (parse_shape(json_object_get(info, "shape"), t, path, shown, err) != 0)
        return -1;
    char shape_str[XF_MAX_DIMS * 21 + 4];
    format_shape(t->shape, t->ndim, shape_str, sizeof shape_str);
    uint64_t need;
    if (!checked_nbytes(t->shape, t->ndim, xf_dtype_size(t->dtype), &need))
        return xf_fail(err, "%s: tensor %s: shape %s %s overflows the addressable size", path,
                       shown, shape_str, xf_dtype_name(t->dtype));

    uint64_t begin = 0, end = 0;
    if (parse_offsets(json_object_get(info, "data_offsets"), &begin, &end, path, shown, err) != 0)
        return -1;
    if (end > data_size)
        return xf_fail(err,
                       "%s: tensor %s: data_offsets end %llu is beyond the data section "
                       "(%llu bytes)",
                       path, shown, (unsigned long long)end, (unsigned long long)data_size);
    if (end - begin != need)
        return xf_fail(err, "%s: tensor %s: %llu bytes for shape %s %s needs %llu", path, shown,
                       (unsigned long long)(end - begin), shape_str, xf_dtype_name(t->dtype),
                       (unsigned long long)need);
    t->data = data + begin;
    t->nbytes = (size_t)need;
    r->begin = begin;
    r->end = end;
    return 0;
}

/* Sorted by begin, every non-empty range must start at or after the
 * furthest end seen so far. Empty tensors occupy no bytes. */
static int check_overlaps(entry_range *ranges, size_t n, const char *path, xf_error *err)
{
    if (n > 1)
        qsort(ranges, n, sizeof *ranges, cmp_range);
    const entry_range *furthest = NULL;
    for (size_t i = 0; i < n; i++) {
        if (ranges[i].begin == ranges[i].end)
            continue;
        if (furthest && ranges[i].begin < furthest->end) {
            char a[160], b[160];
            printable_name(furthest->name, a, sizeof a);
            printable_name(ranges[i].name, b, sizeof b);
            return xf_fail(err, "%s: tensors %s [%llu,%llu) and %s [%llu,%llu) overlap", path, a,
                           (unsigned long long)furthest->begin, (unsigned long long)furthest->end,
                           b, (unsigned long long)ranges[i].begin,
                           (unsigned long long)ranges[i].end);
        }
        if (!furthest || ranges[i].end > furthest->end)
            furthest = &ranges[i];
    }
    return 0;
}

/* Parses the JSON header and builds the views; st->file is mapped. */
static int load_header(xf_safetensors *st, const char *path, uint64_t header_len, xf_error *err)
{
    const uint8_t *base = st->file.data;
    const char *text = (const char *)base + 8;
    const uint8_t *data = base + 8 + header_len;
    uint64_t data_size = (uint64_t)st->file.size - 8 - header_len;

    /* the spec requires the header to start with '{' (padding only trails) */
    if (header_len == 0 || text[0] != '{')
        return xf_fail(err, "%s: header is not a JSON object (does not start with '{')", path);
    json_error_t je;
    json_t *root = json_loadb(text, (size_t)header_len, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return xf_fail(err, "%s: header is not valid JSON (column %d): %s", path, je.column,
                       je.text);
    int rc = -1;
    entry_range *ranges = NULL;
    if (!json_is_object(root)) {
        xf_fail(err, "%s: header is not a JSON object", path);
        goto done;
    }

    json_t *meta = json_object_get(root, METADATA_KEY);
    if (meta) {
        if (check_metadata(meta, path, err) != 0)
            goto done;
        st->metadata = json_incref(meta);
    }

    size_t n = json_object_size(root) - (meta ? 1 : 0);
    size_t names_len = 0;
    const char *key;
    json_t *val;
    json_object_foreach (root, key, val)
        if (val != meta)
            names_len += strlen(key) + 1;
    if (n > 0) {
        st->tensors = calloc(n, sizeof *st->tensors);
        st->names = malloc(names_len);
        ranges = malloc(n * sizeof *ranges);
        if (!st->tensors || !st->names || !ranges) {
            xf_fail(err, "%s: out of memory for %zu tensors", path, n);
            goto done;
        }
    }

    size_t i = 0;
    char *name_at = st->names;
    json_object_foreach (root, key, val) {
        if (val == meta)
            continue;
        size_t len = strlen(key);
        memcpy(name_at, key, len + 1);
        st->tensors[i].name = name_at;
        name_at += len + 1;
        if (parse_entry(key, val, data, data_size, &st->tensors[i], &ranges[i], path, err) != 0)
            goto done;
        ranges[i].name = st->tensors[i].name;
        i++;
    }
    st->n_tensors = n;
    if (check_overlaps(ranges, n, path, err) != 0)
        goto done;
    if (n > 1)
        qsort(st->tensors, n, sizeof *st->tensors, cmp_tensor_name);
    rc = 0;
done:
    free(ranges);
    json_decref(root);
    return rc;
}

int xf_safetensors_open(xf_safetensors *st, const char *path, xf_error *err)
{
    memset(st, 0, sizeof *st);
    if (xf_mapped_open(&st->file, path, err) != 0)
        return -1;
    size_t size = st->file.size;
    if (size < 8) {
        xf_fail(err, "%s: file of %zu bytes is too short for the 8-byte header length", path,
                size);
        xf_safetensors_close(st);
        return -1;
    }
    uint64_t header_len = 0;
    for (int b = 7; b >= 0; b--)
        header_len = (header_len << 8) | st->file.data[b];
    if (header_len > XF_SAFETENSORS_MAX_HEADER) {
        xf_fail(err, "%s: header of %llu bytes exceeds the 100 MiB limit", path,
                (unsigned long long)header_len);
        xf_safetensors_close(st);
        return -1;
    }
    if (header_len > (uint64_t)size - 8) {
        xf_fail(err, "%s: header of %llu bytes runs past the end of the file (%zu bytes)", path,
                (unsigned long long)header_len, size);
        xf_safetensors_close(st);
        return -1;
    }
    if (load_header(st, path, header_len, err) != 0) {
        xf_safetensors_close(st);
        return -1;
    }
    return 0;
}

void xf_safetensors_close(xf_safetensors *st)
{
    xf_mapped_close(&st->file);
    free(st->tensors);
    free(st->names);
    json_decref(st->metadata);
    memset(st, 0, sizeof *st);
}

const xf_tensor *xf_safetensors_find(const xf_safetensors *st, const char *name)
{
    size_t lo = 0, hi = st->n_tensors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(st->tensors[mid].name, name);
        if (c == 0)
            return &st->tensors[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* ---- writer ------------------------------------------------------------ */

/* Everything the reader would refuse is refused here, before any output. */
static int check_tensor_for_write(const xf_tensor *t, const char *path, bool filled,
                                  xf_error *err)
{
    if (!t->name || t->name[0] == '\0')
        return xf_fail(err, "%s: a tensor has an empty name", path);
    char shown[160];
    printable_name(t->name, shown, sizeof shown);
    if (!utf8_valid(t->name, strlen(t->name)))
        return xf_fail(err, "%s: tensor name \"%s\" is not valid UTF-8", path, shown);
    if (strcmp(t->name, METADATA_KEY) == 0)
        return xf_fail(err, "%s: tensor name \"" METADATA_KEY "\" is reserved", path);
    if (xf_dtype_is_packed(t->dtype) || xf_dtype_size(t->dtype) == 0)
        return xf_fail(err, "%s: tensor %s: dtype %s cannot be stored in safetensors", path,
                       shown, xf_dtype_name(t->dtype));
    if (t->ndim < 0 || t->ndim > XF_MAX_DIMS)
        return xf_fail(err, "%s: tensor %s: %d dimensions is outside [0, %d]", path, shown,
                       t->ndim, XF_MAX_DIMS);
    for (int d = 0; d < t->ndim; d++)
        if (t->shape[d] < 0)
            return xf_fail(err, "%s: tensor %s: negative dimension %lld", path, shown,
                           (long long)t->shape[d]);
    char shape_str[XF_MAX_DIMS * 21 + 4];
    format_shape(t->shape, t->ndim, shape_str, sizeof shape_str);
    uint64_t need;
    if (!checked_nbytes(t->shape, t->ndim, xf_dtype_size(t->dtype), &need))
        return xf_fail(err, "%s: tensor %s: shape %s %s overflows the addressable size", path,
                       shown, shape_str, xf_dtype_name(t->dtype));
    if ((uint64_t)t->nbytes != need)
        return xf_fail(err, "%s: tensor %s: %zu bytes for shape %s %s needs %llu", path, shown,
                       t->nbytes, shape_str, xf_dtype_name(t->dtype), (unsigned long long)need);
    if (need > 0 && !t->data && !filled)
        return xf_fail(err, "%s: tensor %s: no data", path, shown);
    return 0;
}

/* {"data_offsets": [begin, end], "dtype": ..., "shape": [...]}, or NULL
 * when out of memory. */
static json_t *tensor_entry(const xf_tensor *t, uint64_t begin)
{
    json_t *e = json_object();
    json_t *shape = json_array();
    json_t *offs = json_array();
    bool ok = e && shape && offs;
    for (int d = 0; ok && d < t->ndim; d++)
        ok = json_array_append_new(shape, json_integer((json_int_t)t->shape[d])) == 0;
    ok = ok && json_array_append_new(offs, json_integer((json_int_t)begin)) == 0 &&
         json_array_append_new(offs, json_integer((json_int_t)(begin + t->nbytes))) == 0 &&
         json_object_set_new(e, "dtype", json_string(xf_dtype_name(t->dtype))) == 0 &&
         json_object_set(e, "shape", shape) == 0 && json_object_set(e, "data_offsets", offs) == 0;
    json_decref(shape);
    json_decref(offs);
    if (!ok) {
        json_decref(e);
        return NULL;
    }
    return e;
}

/* The header text, padded with spaces so that 8 + length is a multiple of
 * DATA_ALIGNMENT. `order` lists the tensors sorted by name. */
static char *build_header(const xf_tensor *const *order, size_t n, const json_t *metadata,
                          size_t *len_out)
{
    json_t *root = json_object();
    if (!root)
        return NULL;
    if (metadata && json_object_set_new(root, METADATA_KEY, json_deep_copy(metadata)) != 0)
        goto fail;
    uint64_t offset = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *e = tensor_entry(order[i], offset);
        if (!e || json_object_set_new(root, order[i]->name, e) != 0)
            goto fail;
        offset += order[i]->nbytes;
    }
    char *text = xf_json_dump_sorted(root);
    json_decref(root);
    if (!text)
        return NULL;
    size_t len = strlen(text);
    size_t padded = len + (DATA_ALIGNMENT - (8 + len) % DATA_ALIGNMENT) % DATA_ALIGNMENT;
    char *out = realloc(text, padded + 1);
    if (!out) {
        free(text);
        return NULL;
    }
    memset(out + len, ' ', padded - len);
    out[padded] = '\0';
    *len_out = padded;
    return out;
fail:
    json_decref(root);
    return NULL;
}

static int cmp_tensor_ptr_name(const void *a, const void *b)
{
    return strcmp((*(const xf_tensor *const *)a)->name, (*(const xf_tensor *const *)b)->name);
}

static void put_u64_le(uint8_t out[8], uint64_t v)
{
    for (int b = 0; b < 8; b++)
        out[b] = (uint8_t)(v >> (8 * b));
}

/* Produces the bytes of tensors without data (xf_safetensors_write_filled). */
typedef struct fill_source {
    xf_safetensors_fill_fn fill;
    void *ctx;
    const xf_tensor *base; /* the caller's array: index = order[i] - base */
} fill_source;

/* Writes the header and the data; `order` is sorted by name. */
static int write_file(const char *path, const xf_tensor *const *order, size_t n,
                      const json_t *metadata, const fill_source *fs, xf_error *err)
{
    size_t header_len = 0;
    char *header = build_header(order, n, metadata, &header_len);
    if (!header)
        return xf_fail(err, "%s: cannot build the header (out of memory)", path);
    if (header_len > XF_SAFETENSORS_MAX_HEADER) {
        free(header);
        return xf_fail(err, "%s: header of %zu bytes exceeds the 100 MiB limit", path,
                       header_len);
    }
    xf_atomic_file f;
    if (xf_atomic_open(&f, path, err) != 0) {
        free(header);
        return -1;
    }
    uint8_t len_bytes[8];
    put_u64_le(len_bytes, header_len);
    int rc = xf_atomic_write(&f, len_bytes, sizeof len_bytes, err);
    if (rc == 0)
        rc = xf_atomic_write(&f, header, header_len, err);
    free(header);
    void *buf = NULL; /* one filled tensor at a time */
    size_t cap = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const xf_tensor *t = order[i];
        if (t->nbytes == 0)
            continue;
        if (t->data || !fs) {
            rc = xf_atomic_write(&f, t->data, t->nbytes, err);
            continue;
        }
        if (t->nbytes > cap) {
            free(buf);
            cap = t->nbytes;
            buf = malloc(cap);
            if (!buf) {
                rc = xf_fail(err, "%s: tensor %s: out of memory", path, t->name);
                break;
            }
        }
        memset(buf, 0, t->nbytes);
        rc = fs->fill(fs->ctx, (size_t)(t - fs->base), buf, err);
        if (rc == 0)
            rc = xf_atomic_write(&f, buf, t->nbytes, err);
    }
    free(buf);
    if (rc == 0)
        rc = xf_atomic_commit(&f, err);
    if (rc != 0)
        xf_atomic_abort(&f); /* no-op when the failing call already cleaned up */
    return rc;
}

static int write_sorted(const char *path, const xf_tensor *tensors, size_t n,
                        const json_t *metadata, const fill_source *fs, xf_error *err)
{
    if (metadata && check_metadata(metadata, path, err) != 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (check_tensor_for_write(&tensors[i], path, fs != NULL, err) != 0)
            return -1;
    const xf_tensor **order = NULL;
    if (n > 0) {
        order = malloc(n * sizeof *order);
        if (!order)
            return xf_fail(err, "%s: out of memory for %zu tensors", path, n);
        for (size_t i = 0; i < n; i++)
            order[i] = &tensors[i];
        qsort(order, n, sizeof *order, cmp_tensor_ptr_name);
    }
    for (size_t i = 1; i < n; i++) {
        if (strcmp(order[i - 1]->name, order[i]->name) == 0) {
            char shown[160];
            printable_name(order[i]->name, shown, sizeof shown);
            free(order);
            return xf_fail(err, "%s: tensor %s appears more than once", path, shown);
        }
    }
    int rc = write_file(path, order, n, metadata, fs, err);
    free(order);
    return rc;
}

int xf_safetensors_write(const char *path, const xf_tensor *tensors, size_t n,
                         const json_t *metadata, xf_error *err)
{
    return write_sorted(path, tensors, n, metadata, NULL, err);
}

int xf_safetensors_write_filled(const char *path, const xf_tensor *tensors, size_t n,
                                const json_t *metadata, xf_safetensors_fill_fn fill, void *ctx,
                                xf_error *err)
{
    const fill_source fs = {fill, ctx, tensors};
    return write_sorted(path, tensors, n, metadata, &fs, err);
}
