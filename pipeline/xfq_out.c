#include "pipeline/xfq_out.h"

#include <stdlib.h>
#include <string.h>

#include "formats/xfq.h"
#include "formats/xfq_outliers.h"

void xf_quant_collector_init(xf_quant_collector *c)
{
    memset(c, 0, sizeof *c);
    c->stats = json_object();
}

void xf_quant_collector_free(xf_quant_collector *c)
{
    for (size_t i = 0; i < c->n; i++)
        xf_qweight_packed_free(&c->items[i]);
    free(c->items);
    json_decref(c->stats);
    memset(c, 0, sizeof *c);
}

/* Room for one more item. */
static int reserve(xf_quant_collector *c, const char *name, xf_error *err)
{
    if (c->n < c->cap)
        return 0;
    size_t cap = c->cap ? 2 * c->cap : 64;
    xf_qweight_packed *ni = realloc(c->items, cap * sizeof *ni);
    if (!ni)
        return xf_fail(err, "%s: out of memory", name);
    c->items = ni;
    c->cap = cap;
    return 0;
}

int xf_quant_collector_add(xf_quant_collector *c, const xf_qweight *q, const char *name,
                           json_t *stats, xf_error *err)
{
    if (reserve(c, name, err) != 0) {
        json_decref(stats);
        return -1;
    }
    if (xf_qweight_export(q, name, &c->items[c->n], err) != 0) {
        json_decref(stats);
        return -1;
    }
    c->n++;
    if (stats && q->outliers.nnz > 0)
        json_object_set_new(stats, "outliers", json_integer(q->outliers.nnz));
    if (stats)
        json_object_set_new(c->stats, name, stats);
    return 0;
}

/* p's pointer into the record at src, moved to the same offset in dst. */
static const void *rebase(const void *p, const void *src, void *dst)
{
    return p ? (const uint8_t *)dst + ((const uint8_t *)p - (const uint8_t *)src) : NULL;
}

/* The three side tensors of so, copied into p (names and bytes). */
static int copy_side_table(xf_qweight_packed *p, const xf_sparse_outliers *so, xf_error *err)
{
    const xf_tensor *parts[3] = {so->row_ptr, so->col, so->val};
    size_t bytes = 0, names = 0;
    for (int k = 0; k < 3; k++) {
        bytes += parts[k]->nbytes;
        names += strlen(parts[k]->name) + 1;
    }
    p->side_buf = malloc(bytes ? bytes : 1);
    p->side_names = malloc(names);
    if (!p->side_buf || !p->side_names)
        return xf_fail(err, "%s: out of memory for its outlier table", p->name);
    size_t at = 0, nat = 0;
    for (int k = 0; k < 3; k++) {
        p->side[k] = *parts[k];
        memcpy(p->side_buf + at, parts[k]->data, parts[k]->nbytes);
        p->side[k].data = p->side_buf + at;
        at += parts[k]->nbytes;
        size_t len = strlen(parts[k]->name) + 1;
        memcpy(p->side_names + nat, parts[k]->name, len);
        p->side[k].name = p->side_names + nat;
        nat += len;
    }
    p->n_side = 3;
    const xf_sparse_outliers own = {&p->side[0], &p->side[1], &p->side[2]};
    xfq_outliers_attach(&own, &p->tensor);
    return 0;
}

int xf_quant_collector_add_copy(xf_quant_collector *c, const xf_tensor *t,
                                const xf_sparse_outliers *so, json_t *stats, xf_error *err)
{
    if (!xf_dtype_is_packed(t->dtype) && !xf_dtype_is_ggml(t->dtype)) {
        json_decref(stats);
        return xf_fail(err, "%s: is %s, not a quantized tensor", t->name,
                       xf_tensor_type_name(t));
    }
    if (reserve(c, t->name, err) != 0) {
        json_decref(stats);
        return -1;
    }
    xf_qweight_packed *p = &c->items[c->n];
    memset(p, 0, sizeof *p);
    p->buf = malloc(t->nbytes ? t->nbytes : 1);
    p->name = strdup(t->name);
    if (!p->buf || !p->name) {
        xf_qweight_packed_free(p);
        json_decref(stats);
        return xf_fail(err, "%s: out of memory for %zu bytes", t->name, t->nbytes);
    }
    memcpy(p->buf, t->data, t->nbytes);
    p->tensor = *t;
    p->tensor.name = p->name;
    p->tensor.data = p->buf;
    xf_packed_view *v = &p->tensor.packed;
    if (xf_dtype_is_packed(t->dtype)) {
        v->codes = rebase(v->codes, t->data, p->buf);
        v->scales = rebase(v->scales, t->data, p->buf);
        v->zeros = rebase(v->zeros, t->data, p->buf);
        v->perm = rebase(v->perm, t->data, p->buf);
    }
    memset(&v->outliers, 0, sizeof v->outliers);
    if (so && so->row_ptr && copy_side_table(p, so, err) != 0) {
        xf_qweight_packed_free(p);
        json_decref(stats);
        return -1;
    }
    c->n++;
    if (stats)
        json_object_set_new(c->stats, p->name, stats);
    return 0;
}

static const xf_qweight_packed *find_packed(const xf_quant_collector *c, const char *name,
                                            size_t len)
{
    for (size_t i = 0; i < c->n; i++)
        if (!strncmp(c->items[i].name, name, len) && c->items[i].name[len] == '\0')
            return &c->items[i];
    return NULL;
}

/* A source tensor that is the outlier side table of a weight quantized in
 * this run: dropped, the new weight brings its own (or none). */
static bool is_replaced_side_table(const xf_quant_collector *c, const char *name)
{
    size_t wlen;
    return xfq_outliers_parse_name(name, &wlen) >= 0 && find_packed(c, name, wlen);
}

/* Is tensor t a linear weight the model binding marked as stored [in, out]? */
static bool is_transposed_weight(const xf_model_weights *mw, const xf_tensor *t)
{
    for (int64_t l = 0; l < mw->cfg.n_layers; l++)
        for (int r = 0; r < XF_LIN_COUNT; r++)
            if (mw->layers[l].lin[r].w == t && mw->layers[l].lin[r].transposed)
                return true;
    return mw->lm_head.w == t && mw->lm_head.transposed;
}

/* A plain copy of t for the .xfq; *owned receives a buffer to free when the
 * bytes had to be converted (F64 -> F32) or transposed. */
static int plain_copy(const xf_model_weights *mw, const xf_tensor *t, xfq_write_tensor *out,
                      void **owned, xf_error *err)
{
    *owned = NULL;
    *out = *t;
    bool transpose = is_transposed_weight(mw, t);
    if (t->dtype == XF_DTYPE_F64 || transpose) {
        int64_t n = xf_tensor_numel(t);
        float *f = malloc((size_t)(n ? n : 1) * sizeof *f);
        if (!f)
            return xf_fail(err, "tensor %s: out of memory", t->name);
        if (xf_tensor_to_f32(t, f, err) != 0) {
            free(f);
            return -1;
        }
        if (transpose) {
            int64_t rows = t->shape[0], cols = t->shape[1]; /* stored [in, out] */
            float *tr = malloc((size_t)n * sizeof *tr);
            if (!tr) {
                free(f);
                return xf_fail(err, "tensor %s: out of memory", t->name);
            }
            for (int64_t i = 0; i < rows; i++)
                for (int64_t j = 0; j < cols; j++)
                    tr[j * rows + i] = f[i * cols + j];
            free(f);
            f = tr;
            out->shape[0] = cols;
            out->shape[1] = rows;
        }
        out->dtype = XF_DTYPE_F32;
        out->data = f;
        out->nbytes = (size_t)n * sizeof(float);
        *owned = f;
    }
    return 0;
}

int xf_quant_write_xfq(const xf_loaded_model *m, const xf_quant_collector *c,
                       const json_t *recipe, const json_t *provenance, const char *out_path,
                       xf_error *err)
{
    const xf_tensor_set *set = m->tensors;
    const size_t cap = set->n + 3 * c->n + 1; /* + every quantized weight's side table */
    xfq_write_tensor *list = calloc(cap, sizeof *list);
    void **owned = calloc(cap, sizeof *owned);
    json_t *meta = json_object();
    size_t n = 0;
    int rc = 0;
    if (!list || !owned || !meta) {
        rc = xf_fail(err, "%s: out of memory", out_path);
        goto out;
    }
    for (size_t i = 0; i < set->n && rc == 0; i++) {
        const xf_tensor *t = &set->items[i];
        const xf_qweight_packed *q = find_packed(c, t->name, strlen(t->name));
        size_t wlen;
        if (q) {
            list[n++] = q->tensor;
            for (int k = 0; k < q->n_side; k++) /* xfq_write sorts them into place */
                list[n++] = q->side[k];
        } else if (is_replaced_side_table(c, t->name)) {
            continue;
        } else if (xfq_outliers_parse_name(t->name, &wlen) >= 0) {
            list[n++] = *t; /* the table of a packed weight copied as it is */
        } else if (xf_dtype_is_float(t->dtype) || xf_dtype_is_packed(t->dtype) ||
                   xf_dtype_is_ggml(t->dtype)) {
            /* GGML blocks are [out, in] like packed ones: copied verbatim */
            rc = plain_copy(&m->weights, t, &list[n], &owned[n], err);
            n++;
        }
        /* non-float buffers (e.g. GPT-2 attention masks) are not model weights: dropped */
    }
    if (rc != 0)
        goto out;
    json_object_set_new(meta, "format", json_string("xfq"));
    json_object_set_new(meta, "format_version", json_integer(XFQ_VERSION));
    json_object_set_new(meta, "config", json_deep_copy(m->config_json));
    json_t *tok = json_object();
    if (m->tokenizer_json)
        json_object_set_new(tok, "tokenizer.json", json_deep_copy(m->tokenizer_json));
    if (m->tokenizer_config_json)
        json_object_set_new(tok, "tokenizer_config.json", json_deep_copy(m->tokenizer_config_json));
    json_object_set_new(meta, "tokenizer", tok);
    json_object_set_new(meta, "recipe", json_deep_copy(recipe));
    json_object_set_new(meta, "provenance", json_deep_copy(provenance));
    json_object_set_new(meta, "tensor_stats", json_deep_copy(c->stats));
    rc = xfq_write(out_path, meta, list, n, err);
out:
    for (size_t i = 0; i < n; i++)
        free(owned[i]);
    free(owned);
    free(list);
    json_decref(meta);
    return rc;
}
