/* .xfq writer: validates every tensor before anything is written (so a
 * refused input leaves no file behind), then writes header, metadata,
 * table, name pool and data in one pass through core/atomic_file.h.
 * The CRCs go in the table, before the data, so tensor bytes are streamed
 * twice: once into the CRC, once into the file. Deterministic: same input,
 * same bytes. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "core/utf8.h"
#include "core/atomic_file.h"
#include "core/json_util.h"
#include "formats/ggml_dequant.h"
#include "formats/xfq.h"
#include "formats/xfq_check.h"
#include "formats/xfq_outliers.h"
#include "formats/xfq_pack.h"

/* One tensor as it will be written. */
typedef struct planned {
    const xf_tensor *t;
    uint32_t storage;
    size_t name_len;
    xfq_packed_layout lay; /* packed only */
    uint64_t offset;       /* relative to the data section */
    uint64_t nbytes;
    uint32_t crc;
} planned;

/* Where emitted bytes go: into a running CRC, or into the file. */
typedef struct sink {
    xf_atomic_file *af; /* NULL: CRC only */
    uint32_t crc;
} sink;

static int sink_put(sink *s, const void *p, size_t n, xf_error *err)
{
    if (s->af)
        return xf_atomic_write(s->af, p, n, err);
    s->crc = xfq_crc32(s->crc, p, n);
    return 0;
}

static int sink_zeros(sink *s, size_t n, xf_error *err)
{
    static const uint8_t zeros[256];
    while (n > 0) {
        size_t k = n < sizeof zeros ? n : sizeof zeros;
        if (sink_put(s, zeros, k, err) != 0)
            return -1;
        n -= k;
    }
    return 0;
}

/* Puts one part of a packed record at its offset, zero-padding up to it. */
static int put_part(sink *s, size_t *pos, size_t offset, const void *p, size_t n, xf_error *err)
{
    if (sink_zeros(s, offset - *pos, err) != 0 || sink_put(s, p, n, err) != 0)
        return -1;
    *pos = offset + n;
    return 0;
}

static int emit_tensor(sink *s, const planned *pl, xf_error *err)
{
    const xf_tensor *t = pl->t;
    if (!xf_dtype_is_packed(t->dtype))
        return sink_put(s, t->data, (size_t)pl->nbytes, err);
    const xf_packed_view *p = &t->packed;
    const xfq_packed_layout *l = &pl->lay;
    size_t pos = 0;
    if (put_part(s, &pos, l->codes_offset, p->codes, l->codes_bytes, err) != 0 ||
        put_part(s, &pos, l->scales_offset, p->scales, l->scales_bytes, err) != 0)
        return -1;
    if (p->asym && put_part(s, &pos, l->zeros_offset, p->zeros, l->zeros_bytes, err) != 0)
        return -1;
    if (p->perm && put_part(s, &pos, l->perm_offset, p->perm, l->perm_bytes, err) != 0)
        return -1;
    return 0;
}

static int check_packed(const xf_tensor *t, const char *path, xfq_packed_layout *lay,
                        xf_error *err)
{
    const xf_packed_view *p = &t->packed;
    int bits = xf_dtype_packed_bits(t->dtype);
    if (t->ndim != 2)
        return xf_fail(err, "%s: tensor %s: packed tensor must have 2 dimensions, has %d", path,
                       t->name, t->ndim);
    if (p->bits != bits)
        return xf_fail(err, "%s: tensor %s: packed view has %d bits, dtype %s has %d", path,
                       t->name, p->bits, xf_dtype_name(t->dtype), bits);
    if (xf_dtype_is_log2(t->dtype) && (p->asym || p->perm))
        return xf_fail(err, "%s: tensor %s: %s weights cannot have zero points or a perm", path,
                       t->name, xf_dtype_name(t->dtype));
    char what[4096];
    snprintf(what, sizeof what, "%s: tensor %s", path, t->name);
    if (xfq_packed_layout_compute(t->shape[0], t->shape[1], bits, p->group_size, p->asym,
                                  p->perm != NULL, lay, what, err) != 0)
        return -1;
    int64_t groups = (t->shape[1] + p->group_size - 1) / p->group_size;
    if (p->n_groups != groups)
        return xf_fail(err, "%s: n_groups is %lld, expected %lld", what, (long long)p->n_groups,
                       (long long)groups);
    if (p->row_bytes != lay->row_bytes)
        return xf_fail(err, "%s: row_bytes is %zu, expected %zu", what, p->row_bytes,
                       lay->row_bytes);
    if (!p->codes || !p->scales || (p->asym && !p->zeros))
        return xf_fail(err, "%s: packed view is missing codes, scales or zero points", what);
    return xfq_check_packed_grid(t, path, err);
}

static int check_plain(const xf_tensor *t, const char *path, uint64_t *nbytes, xf_error *err)
{
    if (t->ndim < 1 || t->ndim > XFQ_MAX_DIMS)
        return xf_fail(err, "%s: tensor %s: ndim %d outside 1..%d", path, t->name, t->ndim,
                       XFQ_MAX_DIMS);
    int64_t numel = 1;
    for (int d = 0; d < t->ndim; d++)
        if (t->shape[d] < 0 || __builtin_mul_overflow(numel, t->shape[d], &numel))
            return xf_fail(err, "%s: tensor %s: invalid shape (dimension %d is %lld)", path,
                           t->name, d, (long long)t->shape[d]);
    uint64_t want;
    if (__builtin_mul_overflow((uint64_t)numel, (uint64_t)xf_dtype_size(t->dtype), &want))
        return xf_fail(err, "%s: tensor %s: shape overflows", path, t->name);
    if (t->nbytes != want)
        return xf_fail(err, "%s: tensor %s: nbytes %zu, but %s shape implies %" PRIu64, path,
                       t->name, t->nbytes, xf_dtype_name(t->dtype), want);
    if (want > 0 && !t->data)
        return xf_fail(err, "%s: tensor %s: no data", path, t->name);
    int64_t bad = xfq_find_nonfinite(t->dtype, t->data, (size_t)numel);
    if (bad >= 0)
        return xf_fail(err, "%s: tensor %s: element %lld is NaN or infinite; refusing to write it",
                       path, t->name, (long long)bad);
    *nbytes = want;
    return 0;
}

/* A GGML tensor: its layout, then every row dequantized (ggml's own
 * conversion) and checked finite, since an fp16 d or dmin field may be
 * Inf/NaN and a reader would turn them into non-finite weights. */
static int check_ggml(const xf_tensor *t, const char *path, uint64_t *nbytes, xf_error *err)
{
    const xf_ggml_type_traits *tt;
    size_t rb;
    if (xfq_check_ggml_layout(t, t->nbytes, path, &tt, &rb, err) != 0)
        return -1;
    if (!t->data)
        return xf_fail(err, "%s: tensor %s: no data", path, t->name);
    const int64_t rows = t->shape[0], cols = t->shape[1];
    float *row = malloc((size_t)cols * sizeof *row);
    void *copy = malloc(rb); /* blocks hold fp16 fields: convert from an aligned copy */
    if (!row || !copy) {
        free(row);
        free(copy);
        return xf_fail(err, "%s: tensor %s: out of memory", path, t->name);
    }
    char what[128 + XFQ_MAX_NAME];
    snprintf(what, sizeof what, "%s: tensor %s", path, t->name);
    int rc = 0;
    for (int64_t r = 0; r < rows && rc == 0; r++) {
        memcpy(copy, (const uint8_t *)t->data + (size_t)r * rb, rb);
        rc = xf_ggml_dequant(tt, copy, row, cols, what, err);
        int64_t bad = rc == 0 ? xfq_find_nonfinite(XF_DTYPE_F32, row, (size_t)cols) : -1;
        if (bad >= 0)
            rc = xf_fail(err, "%s: GGML %s element [%lld, %lld] dequantizes to NaN or Inf "
                         "(a non-finite fp16 scale); refusing to write it",
                         what, tt->name, (long long)r, (long long)bad);
    }
    free(row);
    free(copy);
    *nbytes = t->nbytes;
    return rc;
}

static int check_tensor(const xf_tensor *t, const char *path, planned *pl, xf_error *err)
{
    memset(pl, 0, sizeof *pl);
    pl->t = t;
    if (!t->name || !t->name[0])
        return xf_fail(err, "%s: a tensor has an empty name", path);
    pl->name_len = strlen(t->name);
    if (pl->name_len > XFQ_MAX_NAME)
        return xf_fail(err, "%s: tensor %.100s...: name of %zu bytes exceeds the limit %u", path,
                       t->name, pl->name_len, XFQ_MAX_NAME);
    if (!xf_utf8_valid(t->name, pl->name_len, false))
        return xf_fail(err, "%s: tensor %s: name is not valid UTF-8", path, t->name);
    pl->storage = xfq_tensor_storage(t);
    if (pl->storage == 0 && xf_dtype_is_ggml(t->dtype)) {
        const char *gn = xf_ggml_type_name(t->ggml_type);
        return xf_fail(err, "%s: tensor %s: GGML type %u (%s) cannot be stored in .xfq (block "
                       "types: q4_0 q4_1 q5_0 q5_1 q8_0 q2_K..q6_K iq4_nl iq4_xs)",
                       path, t->name, (unsigned)t->ggml_type, gn ? gn : "not a ggml type");
    }
    if (pl->storage == 0)
        return xf_fail(err, "%s: tensor %s: dtype %s cannot be stored in .xfq", path, t->name,
                       xf_dtype_name(t->dtype));
    if (xf_dtype_is_ggml(t->dtype))
        return check_ggml(t, path, &pl->nbytes, err);
    if (xf_dtype_is_packed(t->dtype)) {
        if (check_packed(t, path, &pl->lay, err) != 0)
            return -1;
        pl->nbytes = pl->lay.total_bytes;
        return 0;
    }
    return check_plain(t, path, &pl->nbytes, err);
}

static int cmp_planned(const void *a, const void *b)
{
    return strcmp(((const planned *)a)->t->name, ((const planned *)b)->t->name);
}

/* The metadata as written: a copy with "format"/"format_version" added
 * when absent; wrong values or a malformed recipe are refused. */
static char *metadata_text(const json_t *meta, const char *path, xf_error *err)
{
    if (!json_is_object(meta)) {
        xf_fail(err, "%s: metadata must be a JSON object", path);
        return NULL;
    }
    json_t *m = json_deep_copy(meta);
    if (!m) {
        xf_fail(err, "%s: out of memory", path);
        return NULL;
    }
    char *text = NULL;
    const json_t *fmt = json_object_get(m, "format");
    const json_t *ver = json_object_get(m, "format_version");
    const json_t *recipe = json_object_get(m, "recipe");
    const json_t *ot = json_is_object(recipe) ? json_object_get(recipe, "online_transforms") : NULL;
    if (fmt && !(json_is_string(fmt) && strcmp(json_string_value(fmt), "xfq") == 0))
        xf_fail(err, "%s: metadata \"format\" must be \"xfq\"", path);
    else if (ver && !(json_is_integer(ver) && json_integer_value(ver) == 1))
        xf_fail(err, "%s: metadata \"format_version\" must be 1", path);
    else if (recipe && !json_is_null(recipe) && !json_is_object(recipe))
        xf_fail(err, "%s: metadata \"recipe\" must be an object", path);
    else if (ot && !json_is_array(ot))
        xf_fail(err, "%s: metadata \"recipe.online_transforms\" must be an array", path);
    else if ((!fmt && json_object_set_new(m, "format", json_string("xfq")) != 0) ||
             (!ver && json_object_set_new(m, "format_version", json_integer(1)) != 0) ||
             !(text = xf_json_dump_sorted(m)))
        xf_fail(err, "%s: cannot serialize metadata (out of memory?)", path);
    json_decref(m);
    return text;
}

static int write_all(const char *path, const char *meta_text, const planned *pl, size_t n,
                     xf_error *err)
{
    const size_t meta_size = strlen(meta_text);
    if (meta_size > XFQ_MAX_META || n > UINT32_MAX)
        return xf_fail(err, "%s: metadata (%zu bytes) or tensor count (%zu) too large", path,
                       meta_size, n);
    uint64_t names_size = 0, data_size = 0;
    for (size_t i = 0; i < n; i++)
        names_size += pl[i].name_len; /* each <= 4096, n < 2^32: no overflow */
    if (names_size > UINT32_MAX)
        return xf_fail(err, "%s: tensor names total %" PRIu64 " bytes, above the limit", path,
                       names_size);
    xfq_file_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, XFQ_MAGIC, 8);
    h.version = XFQ_VERSION;
    h.meta_offset = sizeof h;
    h.meta_size = meta_size;
    h.table_offset = (h.meta_offset + meta_size + 7) / 8 * 8;
    h.n_tensors = (uint32_t)n;
    h.names_size = (uint32_t)names_size;
    uint64_t names_end = h.table_offset + n * sizeof(xfq_tensor_record) + names_size;
    h.data_offset = (names_end + XFQ_ALIGN - 1) / XFQ_ALIGN * XFQ_ALIGN;

    xfq_tensor_record *recs = calloc(n ? n : 1, sizeof *recs);
    char *pool = malloc(names_size ? names_size : 1);
    if (!recs || !pool) {
        free(recs);
        free(pool);
        return xf_fail(err, "%s: out of memory", path);
    }
    int rc = -1;
    uint32_t name_pos = 0;
    /* the tensors' CRCs (the CRC sink cannot fail), one tensor per thread:
     * a pass over every data byte before any is written */
#pragma omp parallel for schedule(dynamic, 1)
    for (size_t i = 0; i < n; i++) {
        sink c = {NULL, 0};
        emit_tensor(&c, &pl[i], NULL);
        recs[i].crc32 = c.crc;
    }
    for (size_t i = 0; i < n; i++) {
        const xf_tensor *t = pl[i].t;
        xfq_tensor_record *r = &recs[i];
        if (data_size > UINT64_MAX - XFQ_ALIGN - pl[i].nbytes) {
            xf_fail(err, "%s: data section too large", path);
            goto out;
        }
        uint64_t offset = (data_size + XFQ_ALIGN - 1) / XFQ_ALIGN * XFQ_ALIGN;
        r->name_offset = name_pos;
        r->name_len = (uint32_t)pl[i].name_len;
        r->storage = pl[i].storage;
        r->ndim = (uint32_t)t->ndim;
        for (int d = 0; d < t->ndim; d++)
            r->shape[d] = (uint64_t)t->shape[d];
        if (xf_dtype_is_packed(t->dtype)) {
            r->group_size = (int32_t)t->packed.group_size; /* <= cols <= INT32_MAX */
            r->flags = (t->packed.asym ? XFQ_FLAG_ASYM : 0u) | (t->packed.perm ? XFQ_FLAG_PERM : 0u);
        }
        r->offset = offset;
        r->nbytes = pl[i].nbytes;
        memcpy(pool + name_pos, t->name, pl[i].name_len);
        name_pos += r->name_len;
        data_size = offset + pl[i].nbytes;
    }
    uint32_t hcrc = xfq_crc32(0, meta_text, meta_size);
    hcrc = xfq_crc32(hcrc, recs, n * sizeof *recs);
    h.header_crc = xfq_crc32(hcrc, pool, names_size);

    xf_atomic_file af;
    if (xf_atomic_open(&af, path, err) != 0)
        goto out;
    sink file = {&af, 0};
    /* xf_atomic_* remove the temp file themselves when a write fails */
    if (xf_atomic_write(&af, &h, sizeof h, err) != 0 ||
        xf_atomic_write(&af, meta_text, meta_size, err) != 0 || xf_atomic_pad(&af, 8, err) != 0 ||
        xf_atomic_write(&af, recs, n * sizeof *recs, err) != 0 ||
        xf_atomic_write(&af, pool, names_size, err) != 0)
        goto abort;
    for (size_t i = 0; i < n; i++)
        if (xf_atomic_pad(&af, XFQ_ALIGN, err) != 0 || emit_tensor(&file, &pl[i], err) != 0)
            goto abort;
    if (xf_atomic_commit(&af, err) != 0)
        goto out;
    rc = 0;
    goto out;
abort:
    xf_atomic_abort(&af);
out:
    free(recs);
    free(pool);
    return rc;
}

int xfq_write(const char *path, const json_t *meta, const xfq_write_tensor *tensors, size_t n,
              xf_error *err)
{
    planned *pl = calloc(n ? n : 1, sizeof *pl);
    if (!pl)
        return xf_fail(err, "%s: out of memory", path);
    int rc = -1;
    char *meta_text = NULL;
    for (size_t i = 0; i < n; i++)
        if (check_tensor(&tensors[i], path, &pl[i], err) != 0)
            goto out;
    qsort(pl, n, sizeof *pl, cmp_planned);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(pl[i - 1].t->name, pl[i].t->name) == 0) {
            xf_fail(err, "%s: tensor %s: name appears more than once", path, pl[i].t->name);
            goto out;
        }
    }
    xf_tensor_set set; /* side tables are checked against their weights, as on open, and
                          must be the ones the packed views carry (or none is lost) */
    if (xf_tensor_set_init(&set, tensors, n, path, err) != 0)
        goto out;
    int side_rc = xfq_outliers_check_set(&set, path, err);
    if (side_rc == 0)
        side_rc = xfq_outliers_check_carried_set(&set, path, err);
    xf_tensor_set_free(&set);
    if (side_rc != 0)
        goto out;
    meta_text = metadata_text(meta, path, err);
    if (meta_text)
        rc = write_all(path, meta_text, pl, n, err);
out:
    free(meta_text);
    free(pl);
    return rc;
}
