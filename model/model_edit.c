#include "model/model_edit.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

/* Binds m's config to `set` into a fresh xf_model_weights and, only when
 * that succeeds, replaces m->weights: a failed bind leaves m usable. */
static int rebind(xf_loaded_model *m, const xf_tensor_set *set, xf_error *err)
{
    xf_model_weights mw;
    if (xf_model_bind(&mw, &m->cfg, set, xf_model_conv1d_transposed(m), m->path, err) != 0)
        return -1;
    xf_model_unbind(&m->weights);
    m->weights = mw;
    return 0;
}

int xf_model_edit_init(xf_model_edit *e, xf_loaded_model *m, xf_error *err)
{
    memset(e, 0, sizeof *e);
    if (!m->tensors)
        return xf_fail(err, "%s: model is not open", m->path ? m->path : "(model)");
    if (xf_tensor_set_init(&e->set, m->tensors->items, m->tensors->n, m->path, err) != 0)
        return -1;
    e->owned = calloc(e->set.n ? e->set.n : 1, sizeof *e->owned);
    e->names = calloc(e->set.n ? e->set.n : 1, sizeof *e->names);
    if (!e->owned || !e->names) {
        free(e->owned);
        free(e->names);
        xf_tensor_set_free(&e->set);
        memset(e, 0, sizeof *e);
        return xf_fail(err, "%s: out of memory", m->path);
    }
    if (rebind(m, &e->set, err) != 0) {
        free(e->owned);
        free(e->names);
        xf_tensor_set_free(&e->set);
        memset(e, 0, sizeof *e);
        return -1;
    }
    e->m = m;
    e->orig = m->tensors;
    m->tensors = &e->set;
    return 0;
}

void xf_model_edit_free(xf_model_edit *e)
{
    xf_loaded_model *m = e->m;
    /* a closed model (zeroed by xf_model_close) or one given another set
     * since no longer refers to this edit: nothing to restore */
    if (m && m->tensors == &e->set) {
        xf_error err = {{0}};
        if (e->config) {
            m->config_json = e->orig_config;
            m->cfg = e->orig_cfg;
        }
        if (rebind(m, e->orig, &err) != 0) {
            /* cannot happen (the same set bound at open); never leave views
             * into freed memory behind */
            xf_log_warn("restoring the unedited model: %s", err.msg);
            xf_model_unbind(&m->weights);
        }
        m->tensors = e->orig;
    }
    for (size_t i = 0; i < e->set.n; i++) {
        if (e->owned)
            free(e->owned[i]);
        if (e->names)
            free(e->names[i]);
    }
    free(e->owned);
    free(e->names);
    xf_tensor_set_free(&e->set);
    json_decref(e->config);
    memset(e, 0, sizeof *e);
}

int xf_model_edit_f32(xf_model_edit *e, const xf_tensor *t, float **data, xf_error *err)
{
    *data = NULL;
    const char *name = t && t->name ? t->name : "(unnamed)";
    if (!e->m)
        return xf_fail(err, "tensor %s: the model edit is not initialized", name);
    const xf_tensor *found = t && t->name ? xf_tensor_set_find(&e->set, t->name) : NULL;
    if (!found)
        return xf_fail(err, "tensor %s: not in model %s", name, e->m->path);
    size_t i = (size_t)(found - e->set.items);
    if (e->owned[i]) {
        *data = e->owned[i];
        return 0;
    }
    xf_tensor *it = &e->set.items[i];
    if (xf_dtype_is_packed(it->dtype) || xf_dtype_is_ggml(it->dtype))
        return xf_fail(err, "tensor %s: is quantized (%s); weight transforms need the "
                            "full-precision model", name, xf_tensor_type_name(it));
    if (!xf_dtype_is_float(it->dtype))
        return xf_fail(err, "tensor %s: dtype %s is not floating point", name,
                       xf_dtype_name(it->dtype));
    int64_t n = xf_tensor_numel(it);
    float *f = malloc((size_t)(n > 0 ? n : 1) * sizeof *f);
    if (!f)
        return xf_fail(err, "tensor %s: out of memory", name);
    if (xf_tensor_to_f32(it, f, err) != 0) {
        free(f);
        return -1;
    }
    /* the view is updated in place, so m->weights (bound to this set) sees
     * the fp32 copy right away; name and shape are unchanged */
    it->dtype = XF_DTYPE_F32;
    it->data = f;
    it->nbytes = (size_t)n * sizeof *f;
    memset(&it->packed, 0, sizeof it->packed);
    e->owned[i] = f;
    e->n_edited++;
    *data = f;
    return 0;
}

/* Inserts an item named `name` (taken: freed with the edit) of the given
 * shape with owned fp32 `data` (taken) at its sorted place; both are freed
 * here on failure. The items move. */
static int insert_owned(xf_model_edit *e, char *name, int ndim, const int64_t *shape,
                        float *data, xf_error *err)
{
    size_t n = e->set.n, p = 0;
    while (p < n && strcmp(e->set.items[p].name, name) < 0)
        p++;
    xf_tensor *items = malloc((n + 1) * sizeof *items);
    float **owned = malloc((n + 1) * sizeof *owned);
    char **names = malloc((n + 1) * sizeof *names);
    if (!items || !owned || !names) {
        free(items);
        free(owned);
        free(names);
        free(data);
        int rc = xf_fail(err, "tensor %s: out of memory", name);
        free(name);
        return rc;
    }
    memcpy(items, e->set.items, p * sizeof *items);
    memcpy(items + p + 1, e->set.items + p, (n - p) * sizeof *items);
    memcpy(owned, e->owned, p * sizeof *owned);
    memcpy(owned + p + 1, e->owned + p, (n - p) * sizeof *owned);
    memcpy(names, e->names, p * sizeof *names);
    memcpy(names + p + 1, e->names + p, (n - p) * sizeof *names);
    xf_tensor t = {.name = name, .dtype = XF_DTYPE_F32, .ndim = ndim, .data = data};
    int64_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        t.shape[d] = shape[d];
        numel *= shape[d];
    }
    t.nbytes = (size_t)numel * sizeof *data;
    items[p] = t;
    owned[p] = data;
    names[p] = name;
    free(e->set.items);
    free(e->owned);
    free(e->names);
    e->set.items = items;
    e->set.n = n + 1;
    e->owned = owned;
    e->names = names;
    e->n_edited++;
    return 0;
}

static int attached(const xf_model_edit *e, xf_error *err)
{
    if (!e->m || e->m->tensors != &e->set)
        return xf_fail(err, "model edit: not attached to an open model");
    return 0;
}

int xf_model_edit_add_f32(xf_model_edit *e, const char *name, int ndim, const int64_t *shape,
                          float **data, xf_error *err)
{
    *data = NULL;
    if (attached(e, err) != 0)
        return -1;
    if (ndim < 1 || ndim > 2)
        return xf_fail(err, "tensor %s: %d dimensions, expected 1 or 2", name, ndim);
    if (xf_tensor_set_find(&e->set, name))
        return xf_fail(err, "tensor %s: already in model %s", name, e->m->path);
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 1 || shape[d] > (INT64_C(1) << 31))
            return xf_fail(err, "tensor %s: dimension %lld out of range", name,
                           (long long)shape[d]);
        n *= shape[d];
    }
    float *f = calloc((size_t)n, sizeof *f);
    char *nm = strdup(name);
    if (!f || !nm) {
        free(f);
        free(nm);
        return xf_fail(err, "tensor %s: out of memory", name);
    }
    if (insert_owned(e, nm, ndim, shape, f, err) != 0)
        return -1;
    *data = f;
    return 0;
}

int xf_model_edit_remove(xf_model_edit *e, const char *name, xf_error *err)
{
    if (attached(e, err) != 0)
        return -1;
    const xf_tensor *t = xf_tensor_set_find(&e->set, name);
    if (!t)
        return xf_fail(err, "tensor %s: not in model %s", name, e->m->path);
    size_t i = (size_t)(t - e->set.items), tail = e->set.n - i - 1;
    if (e->owned[i])
        e->n_edited--;
    free(e->owned[i]);
    free(e->names[i]); /* `name` may be this very string: not used below */
    memmove(e->set.items + i, e->set.items + i + 1, tail * sizeof *e->set.items);
    memmove(e->owned + i, e->owned + i + 1, tail * sizeof *e->owned);
    memmove(e->names + i, e->names + i + 1, tail * sizeof *e->names);
    e->set.n--;
    return 0;
}

int xf_model_edit_set_config(xf_model_edit *e, const char *key, json_t *value, xf_error *err)
{
    if (attached(e, err) != 0) {
        json_decref(value);
        return -1;
    }
    xf_loaded_model *m = e->m;
    json_t *cfg = json_deep_copy(m->config_json);
    if (!cfg) {
        json_decref(value);
        return xf_fail(err, "%s: config: out of memory", m->path);
    }
    if (json_object_set_new(cfg, key, value) != 0) { /* takes value, also on failure */
        json_decref(cfg);
        return xf_fail(err, "%s: config: cannot set \"%s\"", m->path, key);
    }
    char what[1200];
    snprintf(what, sizeof what, "%s: edited config", m->path);
    xf_model_config parsed;
    if (xf_model_config_parse(&parsed, cfg, what, err) != 0) {
        json_decref(cfg);
        return -1;
    }
    const json_t *prev_json = m->config_json;
    const xf_model_config prev_cfg = m->cfg;
    m->config_json = cfg;
    m->cfg = parsed;
    if (rebind(m, &e->set, err) != 0) {
        m->config_json = prev_json;
        m->cfg = prev_cfg;
        json_decref(cfg);
        /* the items may have moved since m->weights was bound */
        xf_error e2 = {{0}};
        if (rebind(m, &e->set, &e2) != 0)
            xf_model_unbind(&m->weights);
        return xf_fail_prefix(err, "%s: config \"%s\"", m->path, key);
    }
    if (!e->config) {
        e->orig_config = prev_json;
        e->orig_cfg = prev_cfg;
    } else {
        json_decref(e->config); /* == prev_json, no longer referenced */
    }
    e->config = cfg;
    return 0;
}

/* The name every family binds an untied head under (weights.c). */
#define HEAD_NAME "lm_head.weight"

int xf_model_edit_untie_head(xf_model_edit *e, xf_error *err)
{
    if (attached(e, err) != 0)
        return -1;
    xf_loaded_model *m = e->m;
    if (!m->cfg.tie_embeddings)
        return 0;
    /* a copy of the view: the item moves when the head is inserted, the
     * bytes it points at do not */
    const xf_tensor emb = *m->weights.tok_embed;
    /* the new head must equal the embedding the tied model used, so a
     * stored lm_head.weight copy is overwritten rather than trusted */
    const xf_tensor *stored = xf_tensor_set_find(&e->set, HEAD_NAME);
    float *head;
    int rc = stored ? xf_model_edit_f32(e, stored, &head, err)
                    : xf_model_edit_add_f32(e, HEAD_NAME, emb.ndim, emb.shape, &head, err);
    if (rc == 0)
        rc = xf_tensor_to_f32(&emb, head, err);
    /* a tied config accepts a stored head copy, so on failure the set
     * still binds as it was */
    if (rc == 0)
        rc = xf_model_edit_set_config(e, "tie_word_embeddings", json_false(), err);
    if (rc == 0)
        return 0;
    xf_error e2 = {{0}};
    if (rebind(m, &e->set, &e2) != 0)
        xf_model_unbind(&m->weights);
    return xf_fail_prefix(err, "%s: untying the LM head", m->path);
}

int xf_model_edit_commit(xf_model_edit *e, xf_error *err)
{
    if (attached(e, err) != 0)
        return -1;
    return rebind(e->m, &e->set, err);
}
