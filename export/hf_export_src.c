/* Opening and checking the .xfq of an HF quantized-checkpoint export, and
 * the parts every such checkpoint shares (plain tensors, config,
 * tokenizer, provenance). */
#include "export/hf_export_src.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/half.h"
#include "core/read_file.h"
#include "export/hf_dir_out.h"
#include "formats/xfq_outliers.h"
#include "formats/xfq_pack.h"

static bool has_suffix(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

static xf_dtype dtype_of_config(const json_t *cfg)
{
    const char *s = json_string_value(json_object_get(cfg, "torch_dtype"));
    if (!s)
        s = json_string_value(json_object_get(cfg, "dtype")); /* newer transformers */
    if (!s)
        return XF_DTYPE_INVALID;
    if (!strcmp(s, "float16"))
        return XF_DTYPE_F16;
    if (!strcmp(s, "bfloat16"))
        return XF_DTYPE_BF16;
    if (!strcmp(s, "float32"))
        return XF_DTYPE_F32;
    return XF_DTYPE_INVALID;
}

/* The module name of a linear weight tensor ("….weight" -> "…"). */
static char *module_of(const char *weight_name)
{
    size_t n = strlen(weight_name);
    return has_suffix(weight_name, ".weight") ? strndup(weight_name, n - 7) : NULL;
}

static void list_linear_modules(xf_export_src *s)
{
    const xf_model_weights *mw = &s->m.weights;
    s->linear_modules = json_array();
    for (int64_t l = 0; l < mw->cfg.n_layers; l++)
        for (int r = 0; r < XF_LIN_COUNT; r++) {
            const xf_tensor *w = mw->layers[l].lin[r].w;
            char *mod = w ? module_of(w->name) : NULL;
            if (mod)
                json_array_append_new(s->linear_modules, json_string(mod));
            free(mod);
        }
    if (mw->lm_head.w && mw->lm_head.w != mw->tok_embed) {
        char *mod = module_of(mw->lm_head.w->name);
        if (mod)
            json_array_append_new(s->linear_modules, json_string(mod));
        free(mod);
    }
}

static bool is_linear_module(const xf_export_src *s, const char *module)
{
    size_t i;
    const json_t *v;
    json_array_foreach(s->linear_modules, i, v) if (!strcmp(json_string_value(v), module)) return true;
    return false;
}

/* Recipe parts an engine would not run: refused unless --weights-only. */
static int check_recipe(xf_export_src *s, const char *target, const xf_export_opts *o,
                        xf_error *err)
{
    const json_t *act = json_object_get(s->recipe, "activations");
    if (act && !json_is_null(act)) {
        if (!o->weights_only)
            return xf_fail(err, "%s: the recipe quantizes activations/KV (recipe.activations); a "
                                "%s checkpoint holds weights only and an engine would run it "
                                "without them (--weights-only exports the weights anyway)",
                           s->path, target);
        json_array_append_new(s->omitted, json_string("recipe.activations (activation/KV "
                                                      "quantization)"));
    }
    const json_t *online = json_object_get(s->recipe, "online_transforms");
    if (json_is_array(online) && json_array_size(online) > 0) {
        if (!o->weights_only)
            return xf_fail(err, "%s: the recipe has online transforms (recipe.online_transforms, "
                                "rotations); a %s checkpoint cannot express them and an engine "
                                "would run the rotated weights without them (--weights-only "
                                "exports the weights anyway)",
                           s->path, target);
        json_array_append_new(s->omitted, json_string("recipe.online_transforms (online "
                                                      "rotations)"));
    }
    if (json_object_get(s->m.config_json, "xfquant_norm"))
        return xf_fail(err, "%s: config.xfquant_norm: the LayerNorms were folded into RMSNorms "
                            "by a rotation, which the HF %s architecture cannot express",
                       s->path, s->m.cfg.model_type);
    return 0;
}

static int add_linear(xf_export_src *s, const xf_tensor *t, const char *target, xf_error *err)
{
    if (xf_dtype_is_log2(t->dtype))
        return xf_fail(err, "%s: tensor %s is on a log2 grid (%s); a %s checkpoint holds "
                            "uniform integer grids only",
                       s->path, t->name, xf_dtype_name(t->dtype), target);
    if (t->packed.outliers.row_ptr) /* the view carries its side table (formats/xfq_outliers.h) */
        return xf_fail(err, "%s: tensor %s has an fp16 outlier side table (--outliers); a %s "
                            "checkpoint has no place for it",
                       s->path, t->name, target);
    char *mod = module_of(t->name);
    if (!mod || !is_linear_module(s, mod)) {
        free(mod);
        return xf_fail(err, "%s: packed tensor %s is not the weight of a linear layer; a %s "
                            "checkpoint quantizes linears only",
                       s->path, t->name, target);
    }
    xf_export_linear *l = &s->lin[s->n_lin++];
    l->t = t;
    l->module = mod;
    l->bits = t->packed.bits;
    l->N = t->shape[0];
    l->K = t->shape[1];
    l->g = t->packed.group_size >= l->K ? -1 : t->packed.group_size;
    l->G = t->packed.n_groups;
    l->asym = t->packed.asym;
    l->act_order = t->packed.perm != NULL;
    return 0;
}

int xf_export_src_open(xf_export_src *s, const char *path, const char *target,
                       const xf_export_opts *o, xf_error *err)
{
    memset(s, 0, sizeof *s);
    s->path = path;
    if (!xf_path_is_xfq(path))
        return xf_fail(err, "%s: not an .xfq file (export to %s takes a quantized .xfq)", path,
                       target);
    if (xf_model_open(&s->m, path, err) != 0)
        return -1;
    s->recipe = json_object_get(s->m.xfq.meta, "recipe");
    s->model_dtype = dtype_of_config(s->m.config_json);
    s->omitted = json_array();
    const xf_tensor_set *set = s->m.tensors;
    s->lin = calloc(set->n ? set->n : 1, sizeof *s->lin);
    if (!s->omitted || !s->lin) {
        xf_export_src_close(s);
        return xf_fail(err, "%s: out of memory", path);
    }
    list_linear_modules(s);
    int rc = check_recipe(s, target, o, err);
    for (size_t i = 0; rc == 0 && i < set->n; i++) {
        const xf_tensor *t = &set->items[i];
        size_t wl;
        if (xfq_outliers_parse_name(t->name, &wl) >= 0)
            continue; /* reported with its weight */
        if (xf_dtype_is_ggml(t->dtype))
            /* blocks with per-block (K-quants: per-sub-block) scales and mins have
             * no qweight/scales/zeros form; re-rounding them would change the model */
            rc = xf_fail(err, "%s: tensor %s holds llama.cpp blocks (%s), which a %s checkpoint "
                         "cannot hold; export it with --to gguf (blocks copied exactly)",
                         path, t->name, xf_tensor_type_name(t), target);
        else if (xf_dtype_is_packed(t->dtype))
            rc = add_linear(s, t, target, err);
    }
    if (rc == 0 && s->n_lin == 0)
        rc = xf_fail(err, "%s: no quantized tensors (nothing to write as a %s checkpoint)", path,
                     target);
    if (rc != 0)
        xf_export_src_close(s);
    return rc;
}

void xf_export_src_close(xf_export_src *s)
{
    for (size_t i = 0; i < s->n_lin; i++)
        free(s->lin[i].module);
    free(s->lin);
    json_decref(s->omitted);
    json_decref(s->linear_modules);
    xf_model_close(&s->m);
    memset(s, 0, sizeof *s);
}

/* ---- plain tensors ---------------------------------------------------- */

static bool is_gpt2_conv1d(const xf_export_src *s, const xf_tensor *t)
{
    const xf_model_weights *mw = &s->m.weights;
    if (s->m.cfg.family != XF_FAMILY_GPT2)
        return false;
    for (int64_t l = 0; l < mw->cfg.n_layers; l++)
        for (int r = 0; r < XF_LIN_COUNT; r++)
            if (mw->layers[l].lin[r].w == t)
                return true;
    return false;
}

/* n values of f into dst as `to`; false when some value does not survive. */
static bool narrow_exact(const float *f, size_t n, xf_dtype to, void *dst)
{
    if (to == XF_DTYPE_F32) {
        memcpy(dst, f, n * sizeof *f);
        return true;
    }
    uint16_t *h = dst;
    for (size_t i = 0; i < n; i++) {
        h[i] = to == XF_DTYPE_F16 ? xf_f32_to_f16(f[i]) : xf_f32_to_bf16(f[i]);
        float back = to == XF_DTYPE_F16 ? xf_f16_to_f32(h[i]) : xf_bf16_to_f32(h[i]);
        if (memcmp(&back, &f[i], sizeof back) != 0)
            return false;
    }
    return true;
}

static int plain_one(const xf_export_src *s, const xf_tensor *t, xf_export_plain *p,
                     xf_error *err)
{
    p->t = *t;
    const bool transpose = is_gpt2_conv1d(s, t) && t->ndim == 2;
    const xf_dtype want = s->model_dtype;
    const bool convert = xf_dtype_is_float(t->dtype) && want != XF_DTYPE_INVALID &&
                         t->dtype != want;
    if (!transpose && !convert)
        return 0; /* a view of the .xfq's bytes */
    const int64_t n = xf_tensor_numel(t);
    float *f = malloc((size_t)(n ? n : 1) * sizeof *f);
    if (!f)
        return xf_fail(err, "%s: tensor %s: out of memory", s->path, t->name);
    if (xf_tensor_to_f32(t, f, err) != 0) {
        free(f);
        return xf_fail_prefix(err, "%s", s->path);
    }
    if (transpose) { /* .xfq [out, in] -> HF Conv1D [in, out] */
        float *tr = malloc((size_t)n * sizeof *tr);
        if (!tr) {
            free(f);
            return xf_fail(err, "%s: tensor %s: out of memory", s->path, t->name);
        }
        const int64_t rows = t->shape[0], cols = t->shape[1];
        for (int64_t i = 0; i < rows; i++)
            for (int64_t j = 0; j < cols; j++)
                tr[j * rows + i] = f[i * cols + j];
        free(f);
        f = tr;
        p->t.shape[0] = cols;
        p->t.shape[1] = rows;
    }
    xf_dtype to = convert ? want : t->dtype;
    void *buf = malloc((size_t)(n ? n : 1) * xf_dtype_size(to));
    if (!buf) {
        free(f);
        return xf_fail(err, "%s: tensor %s: out of memory", s->path, t->name);
    }
    if (!narrow_exact(f, (size_t)n, to, buf)) {
        /* keep the .xfq's dtype (an exact transform's F32), values unchanged */
        p->kept_dtype = true;
        to = t->dtype;
        if (!narrow_exact(f, (size_t)n, to, buf)) { /* cannot happen: f came from `to` */
            free(buf);
            free(f);
            return xf_fail(err, "%s: tensor %s: values do not round-trip through %s", s->path,
                           t->name, xf_dtype_name(to));
        }
    }
    free(f);
    p->t.dtype = to;
    p->t.data = buf;
    p->t.nbytes = (size_t)n * xf_dtype_size(to);
    p->owned = buf;
    return 0;
}

int xf_export_plain_tensors(const xf_export_src *s, xf_export_plain **out, size_t *n,
                            xf_error *err)
{
    const xf_tensor_set *set = s->m.tensors;
    xf_export_plain *p = calloc(set->n ? set->n : 1, sizeof *p);
    if (!p)
        return xf_fail(err, "%s: out of memory", s->path);
    size_t k = 0;
    for (size_t i = 0; i < set->n; i++) {
        const xf_tensor *t = &set->items[i];
        if (xf_dtype_is_packed(t->dtype))
            continue;
        if (plain_one(s, t, &p[k], err) != 0) {
            xf_export_plain_free(p, k);
            return -1;
        }
        k++;
    }
    *out = p;
    *n = k;
    return 0;
}

void xf_export_plain_free(xf_export_plain *p, size_t n)
{
    for (size_t i = 0; p && i < n; i++)
        free(p[i].owned);
    free(p);
}

/* ---- packed codes ----------------------------------------------------- */

int xf_export_row_codes(const xf_export_linear *l, int64_t r, uint8_t *storage_buf,
                        uint8_t *codes, xf_error *err)
{
    const xf_packed_view *p = &l->t->packed;
    if (r < 0 || r >= l->N)
        return xf_fail(err, "tensor %s: row %lld out of range", l->t->name, (long long)r);
    if (!p->perm) {
        xfq_unpack_row(p->codes + (size_t)r * p->row_bytes, l->K, l->bits, codes);
        return 0;
    }
    xfq_unpack_row(p->codes + (size_t)r * p->row_bytes, l->K, l->bits, storage_buf);
    for (int64_t j = 0; j < l->K; j++)
        codes[p->perm[j]] = storage_buf[j];
    return 0;
}

void xf_export_group_index(const xf_export_linear *l, int32_t *g_idx)
{
    const xf_packed_view *p = &l->t->packed;
    for (int64_t j = 0; j < l->K; j++)
        g_idx[p->perm ? p->perm[j] : j] = (int32_t)(j / p->group_size);
}

int xf_export_zero(const xf_export_linear *l, int64_t r, int64_t gi)
{
    const xf_packed_view *p = &l->t->packed;
    return p->asym ? p->zeros[r * p->n_groups + gi] : 1 << (l->bits - 1);
}

/* ---- config, tokenizer, provenance ------------------------------------ */

json_t *xf_export_config(const xf_export_src *s, json_t *quantization_config)
{
    json_t *cfg = json_deep_copy(s->m.config_json);
    if (!cfg) {
        json_decref(quantization_config);
        return NULL;
    }
    json_object_set_new(cfg, "quantization_config", quantization_config);
    return cfg;
}

/* Small files of the source model directory an HF checkpoint carries
 * besides config, weights and the tokenizer JSON the .xfq holds itself. */
static const char *const extra_files[] = {
    "generation_config.json", "special_tokens_map.json", "tokenizer.model", "vocab.json",
    "merges.txt", "added_tokens.json", "chat_template.jinja",
};

int xf_export_write_tokenizer(const xf_export_src *s, const xf_hf_dir_out *d,
                              json_t *files_written, xf_error *err)
{
    const json_t *tok = json_object_get(s->m.xfq.meta, "tokenizer");
    static const char *const names[] = {"tokenizer.json", "tokenizer_config.json"};
    for (size_t i = 0; i < 2; i++) {
        const json_t *j = json_object_get(tok, names[i]);
        if (!json_is_object(j))
            continue;
        if (xf_hf_dir_out_json(d, names[i], j, err) != 0)
            return -1;
        json_array_append_new(files_written, json_string(names[i]));
    }
    /* the source directory recorded in the provenance, when it is still there */
    const char *src = json_string_value(
        json_object_get(json_object_get(s->m.xfq.meta, "provenance"), "source"));
    if (!src || !xf_path_is_dir(src))
        return 0;
    for (size_t i = 0; i < sizeof extra_files / sizeof extra_files[0]; i++) {
        char *p = xf_path_join(src, extra_files[i]);
        if (!p)
            return xf_fail(err, "%s: out of memory", src);
        int rc = 0;
        if (xf_path_exists(p) && !xf_path_is_dir(p)) {
            rc = xf_hf_dir_out_copy(d, p, extra_files[i], err);
            if (rc == 0)
                json_array_append_new(files_written, json_string(extra_files[i]));
        }
        free(p);
        if (rc != 0)
            return -1;
    }
    return 0;
}

int xf_export_write_provenance(const xf_export_src *s, const xf_hf_dir_out *d,
                               const char *target, xf_error *err)
{
    const json_t *prov = json_object_get(s->m.xfq.meta, "provenance");
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:O, s:O, s:O}", "tool", "xfquant",
                          "tool_version", XF_VERSION, "target", target, "source", s->path,
                          "recipe", s->recipe ? (json_t *)s->recipe : json_null(), "omitted",
                          s->omitted, "source_provenance", prov ? (json_t *)prov : json_null());
    if (!j)
        return xf_fail(err, "%s: out of memory", s->path);
    int rc = xf_hf_dir_out_json(d, "xfquant_export.json", j, err);
    json_decref(j);
    return rc;
}
