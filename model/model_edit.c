#include "model/model_edit.h"

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
    if (!e->owned) {
        xf_tensor_set_free(&e->set);
        return xf_fail(err, "%s: out of memory", m->path);
    }
    if (rebind(m, &e->set, err) != 0) {
        free(e->owned);
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
            m->cfg.tie_embeddings = e->orig_tied;
        }
        if (rebind(m, e->orig, &err) != 0) {
            /* cannot happen (the same set bound at open); never leave views
             * into freed memory behind */
            xf_log_warn("restoring the unedited model: %s", err.msg);
            xf_model_unbind(&m->weights);
        }
        m->tensors = e->orig;
    }
    if (e->owned)
        for (size_t i = 0; i < e->set.n; i++)
            free(e->owned[i]);
    free(e->owned);
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
    if (xf_dtype_is_packed(it->dtype))
        return xf_fail(err, "tensor %s: is quantized (%s); weight transforms need the "
                            "full-precision model", name, xf_dtype_name(it->dtype));
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

/* The name every family binds an untied head under (weights.c). */
#define HEAD_NAME "lm_head.weight"

/* Inserts an item named `name` (a string literal: it outlives the edit)
 * with the shape of `like` and owned fp32 `data` (taken) at its sorted
 * place. The items move: the caller rebinds before m->weights is used. */
static int insert_owned(xf_model_edit *e, const xf_tensor *like, const char *name, float *data,
                        xf_error *err)
{
    size_t n = e->set.n, p = 0;
    while (p < n && strcmp(e->set.items[p].name, name) < 0)
        p++;
    xf_tensor *items = malloc((n + 1) * sizeof *items);
    float **owned = malloc((n + 1) * sizeof *owned);
    if (!items || !owned) {
        free(items);
        free(owned);
        free(data);
        return xf_fail(err, "tensor %s: out of memory", name);
    }
    memcpy(items, e->set.items, p * sizeof *items);
    memcpy(items + p + 1, e->set.items + p, (n - p) * sizeof *items);
    memcpy(owned, e->owned, p * sizeof *owned);
    memcpy(owned + p + 1, e->owned + p, (n - p) * sizeof *owned);
    xf_tensor t = {.name = name, .dtype = XF_DTYPE_F32, .ndim = like->ndim, .data = data,
                   .nbytes = (size_t)xf_tensor_numel(like) * sizeof *data};
    memcpy(t.shape, like->shape, sizeof t.shape);
    items[p] = t;
    owned[p] = data;
    free(e->set.items);
    free(e->owned);
    e->set.items = items;
    e->set.n = n + 1;
    e->owned = owned;
    e->n_edited++;
    return 0;
}

int xf_model_edit_untie_head(xf_model_edit *e, xf_error *err)
{
    xf_loaded_model *m = e->m;
    if (!m || m->tensors != &e->set)
        return xf_fail(err, "model edit: not attached to an open model");
    if (!m->cfg.tie_embeddings)
        return 0;
    const xf_tensor *emb = m->weights.tok_embed;
    json_t *cfg = json_deep_copy(m->config_json);
    if (!cfg || json_object_set_new(cfg, "tie_word_embeddings", json_false()) != 0) {
        json_decref(cfg);
        return xf_fail(err, "%s: config: out of memory", m->path);
    }
    /* the new head must equal the embedding the tied model used, so a
     * stored lm_head.weight copy is overwritten rather than trusted */
    const xf_tensor *stored = xf_tensor_set_find(&e->set, HEAD_NAME);
    float *head;
    int rc;
    if (stored) {
        rc = xf_model_edit_f32(e, stored, &head, err);
        if (rc == 0)
            rc = xf_tensor_to_f32(emb, head, err);
    } else {
        int64_t n = xf_tensor_numel(emb);
        head = malloc((size_t)(n > 0 ? n : 1) * sizeof *head);
        rc = head ? 0 : xf_fail(err, "tensor %s: out of memory", HEAD_NAME);
        if (rc == 0 && xf_tensor_to_f32(emb, head, err) != 0) {
            free(head);
            rc = -1;
        }
        /* from here the items have moved: rebind whatever happens */
        if (rc == 0)
            rc = insert_owned(e, emb, HEAD_NAME, head, err);
    }
    if (rc == 0) {
        e->orig_config = m->config_json;
        e->orig_tied = true;
        e->config = cfg;
        m->config_json = cfg;
        m->cfg.tie_embeddings = false;
        if (rebind(m, &e->set, err) == 0)
            return 0;
        m->config_json = e->orig_config;
        m->cfg.tie_embeddings = true;
        e->config = NULL;
    }
    json_decref(cfg);
    /* back to the tied binding, on the (possibly moved) items */
    xf_error e2 = {{0}};
    if (rebind(m, &e->set, &e2) != 0)
        xf_model_unbind(&m->weights);
    return xf_fail_prefix(err, "%s: untying the LM head", m->path);
}

int xf_model_edit_commit(xf_model_edit *e, xf_error *err)
{
    if (!e->m || e->m->tensors != &e->set)
        return xf_fail(err, "model edit: not attached to an open model");
    return rebind(e->m, &e->set, err);
}
