/* .xfq reader: maps the file, validates every structure the spec lists
 * (docs/xfq-format.md, "Validation done by the reader") before any view is
 * handed out, and checks CRCs. Also the bits-per-weight summaries. GGML
 * block tensors are views like plain ones (their block bytes are not
 * checked: ggml's dequantization reads any bytes safely, as it does in a
 * GGUF), with xf_tensor.ggml_type set. */
#include "formats/xfq.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/utf8.h"
#include "core/json_util.h"
#include "formats/xfq_check.h"
#include "formats/xfq_outliers.h"
#include "formats/xfq_pack.h"

static uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

/* Header fields and the exact placement of metadata, table and name pool
 * (each follows the previous one directly, with the spec's alignment). */
static int check_header(const xfq_file_header *h, size_t size, const char *path, xf_error *err)
{
    if (memcmp(h->magic, XFQ_MAGIC, 8) != 0)
        return xf_fail(err, "%s: not an .xfq file (bad magic)", path);
    if (h->version != XFQ_VERSION)
        return xf_fail(err, "%s: unsupported .xfq version %" PRIu32 " (this reader knows %u)", path,
                       h->version, XFQ_VERSION);
    if (h->flags != 0)
        return xf_fail(err, "%s: unknown header flag bits 0x%" PRIx32, path, h->flags);
    if (h->reserved != 0)
        return xf_fail(err, "%s: reserved header field is %" PRIu32 ", must be 0", path,
                       h->reserved);
    if (h->meta_offset != sizeof *h)
        return xf_fail(err, "%s: metadata offset %" PRIu64 ", expected %zu", path, h->meta_offset,
                       sizeof *h);
    if (h->meta_size > XFQ_MAX_META)
        return xf_fail(err, "%s: metadata size %" PRIu64 " exceeds the limit %u", path,
                       h->meta_size, XFQ_MAX_META);
    /* all sums below are bounded (< 2^36) by the limits just checked */
    uint64_t meta_end = h->meta_offset + h->meta_size;
    uint64_t table_offset = align_up(meta_end, 8);
    if (h->table_offset != table_offset)
        return xf_fail(err, "%s: tensor table offset %" PRIu64 ", expected %" PRIu64, path,
                       h->table_offset, table_offset);
    uint64_t names_end = table_offset + (uint64_t)h->n_tensors * sizeof(xfq_tensor_record) +
                         h->names_size;
    uint64_t data_offset = align_up(names_end, XFQ_ALIGN);
    if (h->data_offset != data_offset)
        return xf_fail(err, "%s: data offset %" PRIu64 ", expected %" PRIu64, path, h->data_offset,
                       data_offset);
    if (names_end > size)
        return xf_fail(err,
                       "%s: truncated (file is %zu bytes, header, metadata and tensor table "
                       "need %" PRIu64 ")",
                       path, size, names_end);
    return 0;
}

static int check_header_crc(const xfq_file_header *h, const uint8_t *base, const char *path,
                            xf_error *err)
{
    size_t table_bytes = (size_t)h->n_tensors * sizeof(xfq_tensor_record);
    uint32_t crc = xfq_crc32(0, base + h->meta_offset, (size_t)h->meta_size);
    crc = xfq_crc32(crc, base + h->table_offset, table_bytes);
    crc = xfq_crc32(crc, base + h->table_offset + table_bytes, h->names_size);
    if (crc != h->header_crc)
        return xf_fail(err,
                       "%s: header CRC mismatch (stored 0x%08" PRIx32 ", computed 0x%08" PRIx32
                       "): metadata or tensor table is corrupt",
                       path, h->header_crc, crc);
    return 0;
}

static int check_metadata(const json_t *meta, const char *path, xf_error *err)
{
    if (!json_is_object(meta))
        return xf_fail(err, "%s: metadata is not a JSON object", path);
    const json_t *fmt = json_object_get(meta, "format");
    if (!json_is_string(fmt) || strcmp(json_string_value(fmt), "xfq") != 0)
        return xf_fail(err, "%s: metadata \"format\" must be \"xfq\"", path);
    const json_t *ver = json_object_get(meta, "format_version");
    if (!json_is_integer(ver) || json_integer_value(ver) != 1)
        return xf_fail(err, "%s: metadata \"format_version\" must be 1", path);
    const json_t *recipe = json_object_get(meta, "recipe");
    if (recipe && !json_is_null(recipe)) {
        if (!json_is_object(recipe))
            return xf_fail(err, "%s: metadata \"recipe\" must be an object", path);
        const json_t *ot = json_object_get(recipe, "online_transforms");
        /* which transforms are implemented is the evaluator's decision */
        if (ot && !json_is_array(ot))
            return xf_fail(err, "%s: metadata \"recipe.online_transforms\" must be an array",
                           path);
    }
    return 0;
}

/* Validates one record (not its data bytes) and fills the view's dtype,
 * shape and packed layout. `name` is the NUL-terminated copy. */
static int check_record(const xfq_tensor_record *r, const char *name, uint64_t data_size,
                        const char *path, xf_tensor *t, xfq_packed_layout *lay, xf_error *err)
{
    memset(t, 0, sizeof *t);
    memset(lay, 0, sizeof *lay);
    t->name = name;
    t->dtype = xfq_storage_dtype(r->storage);
    if (t->dtype == XF_DTYPE_INVALID && r->storage >= XFQ_STORAGE_GGML_BASE &&
        r->storage < XFQ_STORAGE_GGML_END) {
        const char *gn = xf_ggml_type_name(r->storage - XFQ_STORAGE_GGML_BASE);
        return xf_fail(err,
                       "%s: tensor %s: storage type %" PRIu32 " is GGML type %" PRIu32
                       " (%s), which .xfq does not store",
                       path, name, r->storage, r->storage - XFQ_STORAGE_GGML_BASE,
                       gn ? gn : "not a ggml type");
    }
    if (t->dtype == XF_DTYPE_INVALID)
        return xf_fail(err,
                       "%s: tensor %s: unknown storage type %" PRIu32
                       " (file written by a newer xfquant?)",
                       path, name, r->storage);
    if (r->ndim < 1 || r->ndim > XFQ_MAX_DIMS)
        return xf_fail(err, "%s: tensor %s: ndim %" PRIu32 " outside 1..%d", path, name, r->ndim,
                       XFQ_MAX_DIMS);
    if (r->flags & ~(uint32_t)XFQ_FLAG_KNOWN)
        return xf_fail(err, "%s: tensor %s: unknown flag bits 0x%" PRIx32, path, name,
                       r->flags & ~(uint32_t)XFQ_FLAG_KNOWN);
    if (r->reserved != 0)
        return xf_fail(err, "%s: tensor %s: reserved field is %" PRIu32 ", must be 0", path, name,
                       r->reserved);
    t->ndim = (int)r->ndim;
    int64_t numel = 1;
    for (int d = 0; d < XFQ_MAX_DIMS; d++) {
        if (d >= t->ndim) {
            if (r->shape[d] != 0)
                return xf_fail(err, "%s: tensor %s: unused dimension %d is %" PRIu64 ", must be 0",
                               path, name, d, r->shape[d]);
            continue;
        }
        if (r->shape[d] > (uint64_t)INT64_MAX ||
            __builtin_mul_overflow(numel, (int64_t)r->shape[d], &numel))
            return xf_fail(err, "%s: tensor %s: shape overflows (dimension %d is %" PRIu64 ")",
                           path, name, d, r->shape[d]);
        t->shape[d] = (int64_t)r->shape[d];
    }
    uint64_t want;
    if (xf_dtype_is_ggml(t->dtype)) {
        t->ggml_type = r->storage - XFQ_STORAGE_GGML_BASE;
        if (r->group_size != 0 || r->flags != 0)
            return xf_fail(err, "%s: tensor %s: GGML %s tensor with group size %" PRId32
                           " / flags 0x%" PRIx32 " (must be 0)",
                           path, name, xf_ggml_type_name(t->ggml_type), r->group_size, r->flags);
        const xf_ggml_type_traits *tt;
        size_t rb;
        if (xfq_check_ggml_layout(t, r->nbytes, path, &tt, &rb, err) != 0)
            return -1;
        want = r->nbytes;
    } else if (xf_dtype_is_packed(t->dtype)) {
        if (t->ndim != 2)
            return xf_fail(err, "%s: tensor %s: packed tensor must have 2 dimensions, has %d", path,
                           name, t->ndim);
        int bits = xf_dtype_packed_bits(t->dtype);
        /* the log2 grid is symmetric by construction and has no act order */
        if (xf_dtype_is_log2(t->dtype) && (r->flags & (XFQ_FLAG_ASYM | XFQ_FLAG_PERM)))
            return xf_fail(err, "%s: tensor %s: %s tensor with flags 0x%" PRIx32
                           " (ASYM and PERM are not allowed on log2-grid weights)",
                           path, name, xf_dtype_name(t->dtype), r->flags);
        char what[64 + XFQ_MAX_NAME];
        snprintf(what, sizeof what, "%s: tensor %s", path, name);
        if (xfq_packed_layout_compute(t->shape[0], t->shape[1], bits, r->group_size,
                                      r->flags & XFQ_FLAG_ASYM, r->flags & XFQ_FLAG_PERM, lay,
                                      what, err) != 0)
            return -1;
        want = lay->total_bytes;
    } else {
        if (r->group_size != 0 || r->flags != 0)
            return xf_fail(err, "%s: tensor %s: plain %s tensor with group size %" PRId32
                           " / flags 0x%" PRIx32 " (must be 0)",
                           path, name, xf_dtype_name(t->dtype), r->group_size, r->flags);
        if (__builtin_mul_overflow((uint64_t)numel, (uint64_t)xf_dtype_size(t->dtype), &want))
            return xf_fail(err, "%s: tensor %s: shape overflows", path, name);
    }
    if (r->nbytes != want)
        return xf_fail(err, "%s: tensor %s: nbytes %" PRIu64 ", but %s%s shape implies %" PRIu64,
                       path, name, r->nbytes, xf_dtype_name(t->dtype),
                       xf_dtype_is_packed(t->dtype) ? " layout for its" : "", want);
    if (r->offset % XFQ_ALIGN != 0)
        return xf_fail(err, "%s: tensor %s: offset %" PRIu64 " is not a multiple of %u", path,
                       name, r->offset, XFQ_ALIGN);
    if (r->offset > data_size || r->nbytes > data_size - r->offset)
        return xf_fail(err,
                       "%s: tensor %s: data [%" PRIu64 ", +%" PRIu64
                       ") lies outside the file (truncated?)",
                       path, name, r->offset, r->nbytes);
    return 0;
}

typedef struct span {
    uint64_t start, end;
    size_t index;
} span;

static int cmp_span(const void *a, const void *b)
{
    const span *x = a, *y = b;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index; /* deterministic message */
}

static int check_overlaps(const xfq_tensor_record *recs, const xf_tensor *ts, size_t n,
                          const char *path, xf_error *err)
{
    span *s = malloc((n ? n : 1) * sizeof *s);
    if (!s)
        return xf_fail(err, "%s: out of memory", path);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (recs[i].nbytes > 0) /* empty tensors occupy nothing */
            s[m++] = (span){recs[i].offset, recs[i].offset + recs[i].nbytes, i};
    qsort(s, m, sizeof *s, cmp_span);
    for (size_t i = 1; i < m; i++) {
        if (s[i].start < s[i - 1].end) {
            xf_fail(err, "%s: tensors %s and %s overlap in the data section", path,
                    ts[s[i - 1].index].name, ts[s[i].index].name);
            free(s);
            return -1;
        }
    }
    free(s);
    return 0;
}

/* Points the packed view of t into its record at `base`. */
static void fill_packed_view(xf_tensor *t, const xfq_tensor_record *r, const xfq_packed_layout *lay,
                             const uint8_t *base)
{
    xf_packed_view *p = &t->packed;
    p->bits = xf_dtype_packed_bits(t->dtype);
    p->group_size = r->group_size;
    p->n_groups = (t->shape[1] + p->group_size - 1) / p->group_size;
    p->asym = (r->flags & XFQ_FLAG_ASYM) != 0;
    p->codes = base + lay->codes_offset;
    p->row_bytes = lay->row_bytes;
    /* parts start at 64-aligned offsets of a 64-aligned record: aligned casts */
    p->scales = (const uint16_t *)(const void *)(base + lay->scales_offset);
    p->zeros = p->asym ? base + lay->zeros_offset : NULL;
    p->perm = (r->flags & XFQ_FLAG_PERM) ? (const int32_t *)(const void *)(base + lay->perm_offset)
                                         : NULL;
}

/* Everything after the header: names, records, data. */
static int load_tensors(xfq_file *f, const xfq_file_header *h, int open_flags, xf_error *err)
{
    const char *path = f->file.path;
    const uint8_t *map = f->file.data;
    size_t n = h->n_tensors;
    const uint8_t *pool = map + h->table_offset + n * sizeof(xfq_tensor_record);
    if (h->data_offset > f->file.size)
        return xf_fail(err, "%s: truncated (data section starts at %" PRIu64 ", file is %zu bytes)",
                       path, h->data_offset, f->file.size);
    uint64_t data_size = f->file.size - h->data_offset;
    if (n == 0)
        return 0;

    xfq_tensor_record *recs = malloc(n * sizeof *recs);
    xf_tensor *ts = calloc(n, sizeof *ts);
    f->names = malloc((size_t)h->names_size + n);
    if (!recs || !ts || !f->names) {
        free(recs);
        free(ts);
        return xf_fail(err, "%s: out of memory", path);
    }
    memcpy(recs, map + h->table_offset, n * sizeof *recs);
    int rc = -1;
    char *dst = f->names;
    for (size_t i = 0; i < n; i++) {
        const xfq_tensor_record *r = &recs[i];
        if (r->name_len < 1 || r->name_len > XFQ_MAX_NAME ||
            (uint64_t)r->name_offset + r->name_len > h->names_size) {
            xf_fail(err, "%s: tensor record %zu: name [%" PRIu32 ", +%" PRIu32
                    ") invalid or outside the name pool (%" PRIu32 " bytes)",
                    path, i, r->name_offset, r->name_len, h->names_size);
            goto out;
        }
        if (!xf_utf8_valid(pool + r->name_offset, r->name_len, false) /* names are C strings too */) {
            xf_fail(err, "%s: tensor record %zu: name is not valid UTF-8", path, i);
            goto out;
        }
        /* Each name takes name_len + 1 bytes of the buffer (sized names_size + n):
         * records whose names overlap or reuse pool bytes would overrun it. */
        size_t used = (size_t)(dst - f->names);
        if ((uint64_t)used + r->name_len + 1 > (uint64_t)h->names_size + n) {
            xf_fail(err, "%s: tensor record %zu: names overlap in the name pool (%" PRIu32
                    " bytes hold fewer names than the records claim)",
                    path, i, h->names_size);
            goto out;
        }
        memcpy(dst, pool + r->name_offset, r->name_len);
        dst[r->name_len] = '\0';
        if (i > 0 && strcmp(ts[i - 1].name, dst) >= 0) {
            xf_fail(err, "%s: tensor %s: %s", path, dst,
                    strcmp(ts[i - 1].name, dst) == 0 ? "name appears more than once"
                                                     : "tensor table is not sorted by name");
            goto out;
        }
        xfq_packed_layout lay;
        if (check_record(r, dst, data_size, path, &ts[i], &lay, err) != 0)
            goto out;
        dst += r->name_len + 1;
        const uint8_t *base = map + h->data_offset + r->offset;
        ts[i].data = base;
        ts[i].nbytes = (size_t)r->nbytes;
        if (xf_dtype_is_packed(ts[i].dtype))
            fill_packed_view(&ts[i], r, &lay, base);
    }
    if (check_overlaps(recs, ts, n, path, err) != 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        if (!(open_flags & XFQ_OPEN_NO_CRC)) {
            uint32_t crc = xfq_crc32(0, ts[i].data, ts[i].nbytes);
            if (crc != recs[i].crc32) {
                xf_fail(err,
                        "%s: tensor %s: data CRC mismatch (stored 0x%08" PRIx32
                        ", computed 0x%08" PRIx32 "): file is corrupt",
                        path, ts[i].name, recs[i].crc32, crc);
                goto out;
            }
        }
        /* grid contents are checked even without CRCs: dequantization trusts them */
        if (xf_dtype_is_packed(ts[i].dtype) && xfq_check_packed_grid(&ts[i], path, err) != 0)
            goto out;
    }
    rc = xf_tensor_set_init(&f->tensors, ts, n, path, err);
    /* side tables are checked always: dequantization trusts them too; then
     * each packed view carries its weight's, so conversions include them */
    if (rc == 0)
        rc = xfq_outliers_check_set(&f->tensors, path, err);
    if (rc == 0)
        xfq_outliers_attach_set(&f->tensors);
out:
    free(recs);
    free(ts);
    return rc;
}

int xfq_open(xfq_file *f, const char *path, int open_flags, xf_error *err)
{
    memset(f, 0, sizeof *f);
    if (xf_mapped_open(&f->file, path, err) != 0)
        return -1;
    xfq_file_header h;
    if (f->file.size < sizeof h) {
        xf_fail(err, "%s: truncated (file is %zu bytes, the header alone is %zu)", path,
                f->file.size, sizeof h);
        goto fail;
    }
    memcpy(&h, f->file.data, sizeof h);
    if (check_header(&h, f->file.size, path, err) != 0 ||
        check_header_crc(&h, f->file.data, path, err) != 0)
        goto fail;
    char what[4096];
    snprintf(what, sizeof what, "%s: metadata", path);
    f->meta = xf_json_load_buffer((const char *)f->file.data + h.meta_offset,
                                  (size_t)h.meta_size, what, err);
    if (!f->meta)
        goto fail;
    if (check_metadata(f->meta, path, err) != 0 || load_tensors(f, &h, open_flags, err) != 0)
        goto fail;
    return 0;
fail:
    xfq_close(f);
    return -1;
}

void xfq_close(xfq_file *f)
{
    xf_tensor_set_free(&f->tensors);
    json_decref(f->meta);
    free(f->names);
    xf_mapped_close(&f->file);
    memset(f, 0, sizeof *f);
}

/* Bytes of t's outlier side table (0 without one). */
static double side_bytes(const xf_tensor_set *s, const xf_tensor *t)
{
    xf_sparse_outliers o;
    xfq_outliers_find(s, t->name, &o);
    return (double)xfq_outliers_bytes(&o);
}

double xfq_packed_bits_per_weight(const xf_tensor_set *s)
{
    double bytes = 0, weights = 0;
    for (size_t i = 0; i < s->n; i++) {
        const xf_tensor *t = &s->items[i];
        if (xf_dtype_is_packed(t->dtype) || xf_dtype_is_ggml(t->dtype)) {
            bytes += (double)t->nbytes + side_bytes(s, t);
            weights += (double)xf_tensor_numel(t);
        }
    }
    return weights > 0 ? 8.0 * bytes / weights : 0.0;
}

double xfq_all_bits_per_weight(const xf_tensor_set *s)
{
    double bytes = 0, weights = 0;
    for (size_t i = 0; i < s->n; i++) {
        const xf_tensor *t = &s->items[i];
        if (t->ndim >= 2 && (xf_dtype_is_packed(t->dtype) || xf_dtype_is_ggml(t->dtype) ||
                             xf_dtype_is_float(t->dtype))) {
            bytes += (double)t->nbytes + (xf_dtype_is_packed(t->dtype) ? side_bytes(s, t) : 0.0);
            weights += (double)xf_tensor_numel(t);
        }
    }
    return weights > 0 ? 8.0 * bytes / weights : 0.0;
}
