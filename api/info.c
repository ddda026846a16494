/* xf_info: tensors, dtypes, shapes, parameter count, bits per weight and
 * (for .xfq) the recipe of any file xfquant reads (`xfquant info`). The text
 * is rendered from the same JSON object the JSON format gives, so the two
 * never disagree. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/call.h"
#include "core/json_util.h"
#include "core/read_file.h"
#include "formats/gguf.h"
#include "formats/hf_model.h"
#include "formats/hf_quantized.h"
#include "formats/safetensors.h"
#include "formats/xfq.h"
#include "formats/xfq_outliers.h"
#include "model/config.h"
#include "model/gguf_model.h"
#include "model/loader.h"

static bool has_suffix(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

/* The packed weight whose outlier side table t is part of, or NULL. */
static const xf_tensor *side_table_owner(const xf_tensor_set *set, const xf_tensor *t)
{
    size_t wlen;
    if (xfq_outliers_parse_name(t->name, &wlen) < 0)
        return NULL;
    char *name = strndup(t->name, wlen);
    const xf_tensor *w = name ? xf_tensor_set_find(set, name) : NULL;
    free(name);
    return w && xf_dtype_is_packed(w->dtype) ? w : NULL;
}

/* One entry of "tensors" and the running totals. An outlier side table's
 * bytes are its weight's (bits per weight include them); its elements are
 * not parameters. */
static json_t *describe_tensors(const xf_tensor_set *set, json_t *out)
{
    json_t *arr = json_array();
    int64_t params = 0, bytes = 0, packed_params = 0, packed_bytes = 0, outliers = 0;
    int64_t n_ggml = 0;
    json_t *ggml_types = json_object(); /* ggml name -> tensors */
    for (size_t i = 0; i < set->n; i++) {
        const xf_tensor *t = &set->items[i];
        json_t *shape = json_array();
        for (int d = 0; d < t->ndim; d++)
            json_array_append_new(shape, json_integer(t->shape[d]));
        int64_t n = xf_tensor_numel(t);
        json_t *e = json_pack("{s:s, s:s, s:o, s:I, s:I}", "name", t->name, "dtype",
                              xf_tensor_type_name(t), "shape", shape, "params", (json_int_t)n,
                              "bytes", (json_int_t)t->nbytes);
        const xf_tensor *owner = side_table_owner(set, t);
        xf_sparse_outliers ol = {0};
        if (xf_dtype_is_packed(t->dtype))
            xfq_outliers_find(set, t->name, &ol);
        const size_t side = xfq_outliers_bytes(&ol);
        if (owner)
            json_object_set_new(e, "outlier_table_of", json_string(owner->name));
        else if (n > 0)
            json_object_set_new(e, "bits_per_weight",
                                json_real(8.0 * (double)(t->nbytes + side) / (double)n));
        if (xf_dtype_is_packed(t->dtype)) {
            json_object_set_new(e, "group_size", json_integer(t->packed.group_size));
            json_object_set_new(e, "asym", json_boolean(t->packed.asym));
            json_object_set_new(e, "act_order", json_boolean(t->packed.perm != NULL));
            json_object_set_new(e, "outliers", json_integer(xfq_outliers_nnz(&ol)));
            json_object_set_new(e, "outlier_bytes", json_integer((json_int_t)side));
            packed_params += n;
            packed_bytes += (int64_t)(t->nbytes + side);
            outliers += xfq_outliers_nnz(&ol);
        }
        if (xf_dtype_is_ggml(t->dtype)) {
            /* llama.cpp blocks: quantized weights like the packed ones */
            const xf_ggml_type_traits *tt = xf_ggml_traits(t->ggml_type);
            const char *gn = tt ? tt->name : "?";
            json_object_set_new(e, "ggml_type", json_string(gn));
            json_object_set_new(e, "block_size", json_integer(tt ? tt->block_size : 0));
            json_object_set_new(ggml_types, gn,
                                json_integer(json_integer_value(json_object_get(ggml_types, gn)) +
                                             1));
            packed_params += n;
            packed_bytes += (int64_t)t->nbytes;
            n_ggml++;
        }
        if (!owner)
            params += n;
        bytes += (int64_t)t->nbytes;
        json_array_append_new(arr, e);
    }
    json_object_set_new(out, "n_tensors", json_integer((json_int_t)set->n));
    json_object_set_new(out, "n_params", json_integer(params));
    json_object_set_new(out, "tensor_bytes", json_integer(bytes));
    json_object_set_new(out, "bits_per_weight",
                        params ? json_real(8.0 * (double)bytes / (double)params) : json_null());
    json_object_set_new(out, "packed_params", json_integer(packed_params));
    json_object_set_new(out, "ggml_tensors", json_integer(n_ggml));
    json_object_set_new(out, "ggml_types", ggml_types);
    json_object_set_new(out, "outliers", json_integer(outliers));
    json_object_set_new(out, "packed_bits_per_weight",
                        packed_params ? json_real(8.0 * (double)packed_bytes / (double)packed_params)
                                      : json_null());
    json_object_set_new(out, "tensors", arr);
    return out;
}

static void describe_config(const json_t *config_json, const char *what, json_t *out)
{
    xf_model_config cfg;
    xf_error err = {0};
    if (xf_model_config_parse(&cfg, config_json, what, &err) != 0) {
        json_object_set_new(out, "architecture", json_null());
        json_object_set_new(out, "config_error", json_string(err.msg));
        return;
    }
    json_object_set_new(out, "architecture",
                        json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:s}", "model_type",
                                  cfg.model_type, "hidden", (json_int_t)cfg.hidden,
                                  "intermediate", (json_int_t)cfg.intermediate, "layers",
                                  (json_int_t)cfg.n_layers, "heads", (json_int_t)cfg.n_heads,
                                  "kv_heads", (json_int_t)cfg.n_kv_heads, "vocab",
                                  (json_int_t)cfg.vocab, "max_position_embeddings",
                                  (json_int_t)cfg.max_pos, "tied_embeddings",
                                  cfg.tie_embeddings, "norm",
                                  cfg.layer_norm ? "layernorm" : "rmsnorm"));
}

static json_t *info_xfq(const char *path, xf_error *err)
{
    xfq_file f;
    if (xfq_open(&f, path, 0, err) != 0)
        return NULL;
    json_t *out = json_pack("{s:s, s:s}", "path", path, "format", "xfq");
    json_object_set(out, "format_version", json_object_get(f.meta, "format_version"));
    const json_t *config = json_object_get(f.meta, "config");
    if (json_is_object(config))
        describe_config(config, path, out);
    describe_tensors(&f.tensors, out);
    const json_t *recipe = json_object_get(f.meta, "recipe");
    json_object_set_new(out, "recipe", recipe ? json_deep_copy(recipe) : json_null());
    const json_t *prov = json_object_get(f.meta, "provenance");
    json_object_set_new(out, "provenance", prov ? json_deep_copy(prov) : json_null());
    const json_t *tok = json_object_get(f.meta, "tokenizer");
    json_object_set_new(out, "has_tokenizer",
                        json_boolean(json_is_object(tok) && json_object_get(tok, "tokenizer.json")));
    xfq_close(&f);
    return out;
}

static json_t *info_hf(const char *path, xf_error *err)
{
    xf_hf_model m;
    if (xf_hf_open(&m, path, err) != 0)
        return NULL;
    json_t *out = json_pack("{s:s, s:s, s:s, s:I}", "path", path, "format", "hf", "directory",
                            m.dir, "shards", (json_int_t)m.n_shards);
    describe_config(m.config, path, out);
    describe_tensors(&m.tensors, out);
    json_object_set_new(out, "recipe", json_null());
    if (xf_hf_quant_method(m.config)) {
        /* a GPTQ / compressed-tensors checkpoint: read (and so check) every
         * quantized linear the way ppl and kld will */
        xf_model_config cfg;
        xf_error cerr = {0};
        bool gpt2 = xf_model_config_parse(&cfg, m.config, path, &cerr) == 0 &&
                    cfg.family == XF_FAMILY_GPT2;
        xf_hf_quantized q;
        if (xf_hf_quantized_open(&q, &m, gpt2, err) != 0) {
            json_decref(out);
            xf_hf_close(&m);
            return NULL;
        }
        json_object_set_new(out, "format", json_string(xf_hf_quant_method(m.config)));
        json_object_set(out, "quantization", q.info);
        /* parameters are the model's weights, not the int32 words holding them */
        int64_t params = 0;
        for (size_t i = 0; i < q.tensors.n; i++)
            params += xf_tensor_numel(&q.tensors.items[i]);
        json_int_t bytes = json_integer_value(json_object_get(out, "tensor_bytes"));
        json_object_set_new(out, "n_params", json_integer(params));
        json_object_set_new(out, "bits_per_weight",
                            json_real(params ? 8.0 * (double)bytes / (double)params : 0.0));
        xf_hf_quantized_close(&q);
    }
    json_object_set_new(out, "has_tokenizer", json_boolean(m.tokenizer != NULL));
    xf_hf_close(&m);
    return out;
}

/* GGUF: tensors as stored (GGUF names, GGML types, shapes outermost
 * first like the other formats), the architecture as xfquant reads it. */
static json_t *info_gguf(const char *path, xf_error *err)
{
    xf_gguf_file f;
    if (xf_gguf_open(&f, path, err) != 0)
        return NULL;
    json_t *out = json_pack("{s:s, s:s, s:I, s:I}", "path", path, "format", "gguf",
                            "gguf_version", (json_int_t)f.version, "alignment",
                            (json_int_t)f.alignment);
    xf_error cerr = {0};
    json_t *config = xf_gguf_config_json(&f, &cerr);
    if (config)
        describe_config(config, path, out);
    else {
        json_object_set_new(out, "architecture", json_null());
        json_object_set_new(out, "config_error", json_string(cerr.msg));
    }
    json_decref(config);
    json_t *arr = json_array();
    int64_t params = 0, bytes = 0, qparams = 0, qbytes = 0;
    for (size_t i = 0; i < f.n_tensors; i++) {
        const xf_gguf_tensor *t = &f.tensors[i];
        json_t *shape = json_array();
        int64_t n = 1;
        for (uint32_t d = t->n_dims; d-- > 0;) {
            json_array_append_new(shape, json_integer(t->ne[d]));
            n *= t->ne[d];
        }
        json_array_append_new(
            arr, json_pack("{s:s, s:s, s:o, s:I, s:I, s:f}", "name", t->name, "dtype",
                           t->traits->name, "shape", shape, "params", (json_int_t)n, "bytes",
                           (json_int_t)t->nbytes, "bits_per_weight",
                           xf_ggml_bits_per_weight(t->traits)));
        params += n;
        bytes += (int64_t)t->nbytes;
        if (t->traits->quantized) {
            qparams += n;
            qbytes += (int64_t)t->nbytes;
        }
    }
    json_object_set_new(out, "n_tensors", json_integer((json_int_t)f.n_tensors));
    json_object_set_new(out, "n_params", json_integer(params));
    json_object_set_new(out, "tensor_bytes", json_integer(bytes));
    json_object_set_new(out, "bits_per_weight",
                        params ? json_real(8.0 * (double)bytes / (double)params) : json_null());
    json_object_set_new(out, "packed_params", json_integer(qparams));
    json_object_set_new(out, "outliers", json_integer(0));
    json_object_set_new(out, "packed_bits_per_weight",
                        qparams ? json_real(8.0 * (double)qbytes / (double)qparams) : json_null());
    json_object_set_new(out, "tensors", arr);
    json_object_set_new(out, "recipe", json_null());
    json_object_set_new(out, "has_tokenizer",
                        json_boolean(xf_gguf_find(&f, "tokenizer.ggml.model") != NULL));
    xf_gguf_close(&f);
    return out;
}

static json_t *info_safetensors(const char *path, xf_error *err)
{
    xf_safetensors st;
    if (xf_safetensors_open(&st, path, err) != 0)
        return NULL;
    xf_tensor_set set = {st.tensors, st.n_tensors}; /* borrowed: already sorted */
    json_t *out = json_pack("{s:s, s:s}", "path", path, "format", "safetensors");
    json_object_set_new(out, "architecture", json_null());
    describe_tensors(&set, out);
    json_object_set_new(out, "metadata", st.metadata ? json_deep_copy(st.metadata) : json_null());
    json_object_set_new(out, "recipe", json_null());
    xf_safetensors_close(&st);
    return out;
}

static void print_text(FILE *out, const json_t *o)
{
    fprintf(out, "%s: %s\n", json_string_value(json_object_get(o, "path")),
           json_string_value(json_object_get(o, "format")));
    const json_t *arch = json_object_get(o, "architecture");
    if (json_is_object(arch))
        fprintf(out, "architecture: %s, hidden %lld, intermediate %lld, %lld layers, %lld heads / %lld kv, "
               "vocab %lld, max positions %lld, %s embeddings, %s\n",
               json_string_value(json_object_get(arch, "model_type")),
               (long long)json_integer_value(json_object_get(arch, "hidden")),
               (long long)json_integer_value(json_object_get(arch, "intermediate")),
               (long long)json_integer_value(json_object_get(arch, "layers")),
               (long long)json_integer_value(json_object_get(arch, "heads")),
               (long long)json_integer_value(json_object_get(arch, "kv_heads")),
               (long long)json_integer_value(json_object_get(arch, "vocab")),
               (long long)json_integer_value(json_object_get(arch, "max_position_embeddings")),
               json_is_true(json_object_get(arch, "tied_embeddings")) ? "tied" : "untied",
               json_string_value(json_object_get(arch, "norm")));
    if (json_object_get(o, "config_error"))
        fprintf(out, "config: %s\n", json_string_value(json_object_get(o, "config_error")));
    const json_t *tensors = json_object_get(o, "tensors");
    size_t i;
    const json_t *t;
    int dw = 6; /* "GGML iq4_xs" is wider than the other dtypes */
    json_array_foreach(tensors, i, t)
    {
        const char *dt = json_string_value(json_object_get(t, "dtype"));
        if (dt && (int)strlen(dt) > dw)
            dw = (int)strlen(dt);
    }
    fprintf(out, "%-56s %-*s %-16s %10s %7s\n", "tensor", dw, "dtype", "shape", "params", "bpw");
    json_array_foreach(tensors, i, t)
    {
        char shape[64] = "";
        size_t k;
        const json_t *d;
        json_array_foreach(json_object_get(t, "shape"), k, d)
        {
            char part[24];
            snprintf(part, sizeof part, "%s%lld", k ? "x" : "", (long long)json_integer_value(d));
            strncat(shape, part, sizeof shape - strlen(shape) - 1);
        }
        const json_t *bpw = json_object_get(t, "bits_per_weight");
        fprintf(out, "%-56s %-*s %-16s %10lld", json_string_value(json_object_get(t, "name")), dw,
               json_string_value(json_object_get(t, "dtype")), shape,
               (long long)json_integer_value(json_object_get(t, "params")));
        if (json_object_get(t, "outlier_table_of"))
            fprintf(out, " %7s  (outlier table)", "-"); /* its bytes are in the weight's bpw */
        else
            fprintf(out, " %7.3f", bpw ? json_real_value(bpw) : 0.0);
        if (json_object_get(t, "group_size"))
            fprintf(out, "  g%lld%s%s", (long long)json_integer_value(json_object_get(t, "group_size")),
                   json_is_true(json_object_get(t, "asym")) ? " asym" : " sym",
                   json_is_true(json_object_get(t, "act_order")) ? " act-order" : "");
        json_int_t nout = json_integer_value(json_object_get(t, "outliers"));
        if (nout > 0)
            fprintf(out, " +%lld fp16 outliers", (long long)nout);
        fprintf(out, "\n");
    }
    fprintf(out, "tensors: %lld, parameters: %lld, bits per weight (all tensors): %.4f\n",
           (long long)json_integer_value(json_object_get(o, "n_tensors")),
           (long long)json_integer_value(json_object_get(o, "n_params")),
           json_real_value(json_object_get(o, "bits_per_weight")));
    const json_t *pb = json_object_get(o, "packed_bits_per_weight");
    json_int_t nout = json_integer_value(json_object_get(o, "outliers"));
    const json_int_t n_ggml = json_integer_value(json_object_get(o, "ggml_tensors"));
    bool only_ggml = n_ggml > 0; /* no xfquant-packed tensor (those have a group size) */
    json_array_foreach(tensors, i, t)
        if (json_object_get(t, "group_size"))
            only_ggml = false;
    if (strcmp(json_string_value(json_object_get(o, "format")), "gguf") == 0)
        only_ggml = true;
    if (json_is_real(pb))
        fprintf(out, "quantized tensors: %lld parameters at %.4f bits per weight (%s%s)\n",
               (long long)json_integer_value(json_object_get(o, "packed_params")),
               json_real_value(pb),
               only_ggml    ? "GGML blocks: codes and scales"
               : n_ggml > 0 ? "codes, scales, zeros, permutations; GGML blocks"
                            : "codes, scales, zeros, permutations",
               nout > 0 ? ", outlier tables" : "");
    if (n_ggml > 0) {
        fprintf(out, "GGML block tensors: %lld (", (long long)n_ggml);
        const char *gn;
        const json_t *cnt;
        bool first = true;
        json_object_foreach(json_object_get(o, "ggml_types"), gn, cnt) {
            fprintf(out, "%s%s %lld", first ? "" : ", ", gn, (long long)json_integer_value(cnt));
            first = false;
        }
        fprintf(out, ")\n");
    }
    if (nout > 0)
        fprintf(out, "outliers: %lld weights kept in fp16 (%.4f%% of the quantized parameters)\n",
               (long long)nout,
               100.0 * (double)nout /
                   (double)json_integer_value(json_object_get(o, "packed_params")));
    const json_t *qz = json_object_get(o, "quantization");
    if (json_is_object(qz)) {
        char *s = json_dumps(qz, JSON_SORT_KEYS | JSON_COMPACT | JSON_REAL_PRECISION(6));
        fprintf(out, "quantization: %s\n", s ? s : "?");
        free(s);
    }
    const json_t *recipe = json_object_get(o, "recipe");
    if (json_is_object(recipe)) {
        char *s = json_dumps(recipe, JSON_SORT_KEYS | JSON_COMPACT);
        fprintf(out, "recipe: %s\n", s ? s : "?");
        free(s);
    }
}

XF_API char *xf_info(const char *path, int format, const xf_run_opts *run, xf_status *st)
{
    if (!path) {
        xf_api_fail_msg(st, XF_USAGE, "xf_info: no path");
        return NULL;
    }
    if (format != XF_FORMAT_TEXT && format != XF_FORMAT_JSON) {
        xf_api_failf(st, XF_USAGE, "xf_info: unknown format %d", format);
        return NULL;
    }
    xf_api_call call;
    xf_api_begin(&call, run);
    xf_error err = {0};
    json_t *out;
    if (xf_path_is_xfq(path))
        out = info_xfq(path, &err);
    else if (xf_path_is_gguf(path))
        out = info_gguf(path, &err);
    else if (has_suffix(path, ".safetensors") && !xf_path_is_dir(path)) {
        /* with config.json beside it: a model; else just the tensors */
        char *dup = strdup(path);
        char *slash = dup ? strrchr(dup, '/') : NULL;
        char *cfg = NULL;
        if (dup) {
            if (slash)
                *slash = '\0';
            cfg = xf_path_join(slash ? dup : ".", "config.json");
        }
        out = cfg && xf_path_exists(cfg) ? info_hf(path, &err) : info_safetensors(path, &err);
        free(cfg);
        free(dup);
    } else
        out = info_hf(path, &err);
    xf_api_end(&call);
    if (!out) {
        xf_api_fail(st, XF_FAIL, &err);
        return NULL;
    }
    char *s = NULL;
    if (format == XF_FORMAT_JSON)
        s = json_dumps(out, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
    else {
        xf_api_text t;
        if (xf_api_text_open(&t) == 0) {
            print_text(t.f, out);
            s = xf_api_text_take(&t);
        }
    }
    json_decref(out);
    if (!s) {
        xf_api_failf(st, XF_FAIL, "%s: out of memory for the description", path);
        return NULL;
    }
    xf_api_ok(st);
    return s;
}
