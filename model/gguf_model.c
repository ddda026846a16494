/* A GGUF file as a model (model/gguf_model.h): tensors renamed, llama's
 * Q/K rows put back in HF order, blocks dequantized. */
#include "model/gguf_model.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/ggml_dequant.h"

/* convert_hf_to_gguf.py reorders the rows of llama's q_proj (n = heads)
 * and k_proj (n = kv heads), weights and biases, for ggml's adjacent-pair
 * RoPE: per head of size hd, gguf_row[h hd + 2i + j] = hf_row[h hd +
 * j hd/2 + i]. This puts the rows back: rows = n hd rows of `len` floats. */
static int unpermute_rows(float *x, int64_t rows, int64_t len, int64_t n, const char *what,
                          xf_error *err)
{
    if (n <= 0 || rows % n != 0 || (rows / n) % 2 != 0)
        return xf_fail(err, "%s: %lld rows cannot be %lld heads of an even size", what,
                       (long long)rows, (long long)n);
    const int64_t hd = rows / n;
    float *tmp = malloc((size_t)(rows * len) * sizeof *tmp);
    if (!tmp)
        return xf_fail(err, "%s: out of memory", what);
    for (int64_t h = 0; h < n; h++)
        for (int64_t i = 0; i < hd / 2; i++)
            for (int64_t j = 0; j < 2; j++)
                memcpy(tmp + (h * hd + j * hd / 2 + i) * len, x + (h * hd + 2 * i + j) * len,
                       (size_t)len * sizeof *x);
    memcpy(x, tmp, (size_t)(rows * len) * sizeof *x);
    free(tmp);
    return 0;
}

/* Heads whose rows tensor `name` (GGUF) permutes; 0 when it is not permuted. */
static int permute_heads(const xf_gguf_file *f, const char *arch, const char *name, int64_t *n,
                         xf_error *err)
{
    *n = 0;
    if (strcmp(arch, "llama") != 0 || strncmp(name, "blk.", 4) != 0)
        return 0;
    const char *dot = strchr(name + 4, '.');
    if (!dot)
        return 0;
    bool q = strncmp(dot, ".attn_q.", 8) == 0, k = strncmp(dot, ".attn_k.", 8) == 0;
    if (!q && !k)
        return 0;
    uint64_t heads, kv;
    if (xf_gguf_get_uint(f, "llama.attention.head_count", true, 0, &heads, err) ||
        xf_gguf_get_uint(f, "llama.attention.head_count_kv", false, heads, &kv, err))
        return -1;
    *n = (int64_t)(q ? heads : kv);
    return 0;
}

/* The whole tensor to fp32, rows in parallel. */
static int dequant_tensor(const xf_gguf_tensor *t, float *dst, const char *what, xf_error *err)
{
    if (t->nbytes == 0)
        return 0; /* empty (a zero dim): ne[0] may be anything, its row size even 0 or huge */
    const int64_t ne0 = t->ne[0];
    const int64_t rows = ne0 ? (int64_t)(t->nbytes / xf_ggml_row_bytes(t->traits, ne0)) : 0;
    const size_t rb = ne0 ? xf_ggml_row_bytes(t->traits, ne0) : 0;
    xf_ggml_to_f32_fn fn = xf_ggml_to_f32(t->traits);
    if (!fn)
        return xf_fail(err, "%s: GGML type %s has no fp32 conversion", what, t->traits->name);
    if ((uintptr_t)t->data % 8 == 0 && rb % 8 == 0) {
#pragma omp parallel for schedule(static)
        for (int64_t r = 0; r < rows; r++)
            fn(t->data + (size_t)r * rb, dst + r * ne0, ne0);
        return 0;
    }
    /* general.alignment < 8 (ggml allows 1): blocks hold fp16 fields, so
     * convert from an aligned copy of each row */
    void *row = malloc(rb ? rb : 1);
    if (!row)
        return xf_fail(err, "%s: out of memory", what);
    for (int64_t r = 0; r < rows; r++) {
        memcpy(row, t->data + (size_t)r * rb, rb);
        fn(row, dst + r * ne0, ne0);
    }
    free(row);
    return 0;
}

static int add_tensor(xf_gguf_model *m, const char *arch, size_t i, xf_tensor *view,
                      xf_error *err)
{
    const xf_gguf_file *f = &m->file;
    const xf_gguf_tensor *t = &f->tensors[i];
    char hf[256], what[512];
    if (xf_gguf_hf_name(arch, t->name, hf, sizeof hf) != 0)
        return xf_fail(err, "%s: tensor %s is not a tensor of a %s model", f->path, t->name, arch);
    snprintf(what, sizeof what, "%s: tensor %s", f->path, t->name);
    m->names[i] = strdup(hf);
    if (!m->names[i])
        return xf_fail(err, "%s: out of memory", what);
    view->name = m->names[i];
    view->ndim = t->n_dims ? (int)t->n_dims : 1;
    for (int d = 0; d < view->ndim; d++)
        view->shape[d] = t->ne[view->ndim - 1 - d]; /* ne[0] is the contiguous (last) dim */
    if (t->traits->quantized && !m->quantized_tensor)
        m->quantized_tensor = t->name;

    int64_t heads;
    if (permute_heads(f, arch, t->name, &heads, err))
        return -1;
    xf_ggml_type ty = t->traits->type;
    /* views need the element alignment (a file with general.alignment 1 or 2
     * may not give it): else an fp32 copy */
    bool aligned = (uintptr_t)t->data % 4 == 0;
    if (!heads && aligned && (ty == XF_GGML_F32 || ty == XF_GGML_F16 || ty == XF_GGML_BF16)) {
        view->dtype = ty == XF_GGML_F32 ? XF_DTYPE_F32 : ty == XF_GGML_F16 ? XF_DTYPE_F16
                                                                           : XF_DTYPE_BF16;
        view->data = t->data;
        view->nbytes = t->nbytes;
        return 0;
    }
    int64_t numel = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
    float *buf = malloc((size_t)(numel ? numel : 1) * sizeof *buf);
    if (!buf)
        return xf_fail(err, "%s: out of memory for %lld floats", what, (long long)numel);
    m->owned[i] = buf;
    if (dequant_tensor(t, buf, what, err))
        return -1;
    /* a weight [rows, ne0] moves whole rows; a bias [rows] single values */
    if (heads && numel > 0 && unpermute_rows(buf, view->ndim == 1 ? numel : numel / t->ne[0],
                                view->ndim == 1 ? 1 : t->ne[0], heads, what, err))
        return -1;
    view->dtype = XF_DTYPE_F32;
    view->data = buf;
    view->nbytes = (size_t)numel * sizeof *buf;
    return 0;
}

int xf_gguf_model_open(xf_gguf_model *m, const char *path, xf_error *err)
{
    memset(m, 0, sizeof *m);
    if (xf_gguf_open(&m->file, path, err))
        return -1;
    xf_tensor *views = NULL;
    m->config = xf_gguf_config_json(&m->file, err);
    if (!m->config)
        goto fail;
    const char *arch = json_string_value(json_object_get(m->config, "model_type"));
    int64_t rows = json_integer_value(json_object_get(m->config, "vocab_size"));
    if (xf_gguf_tokenizer_json(&m->file, rows, &m->tokenizer, &m->tokenizer_config, err))
        goto fail;
    m->n = m->file.n_tensors;
    m->names = calloc(m->n ? m->n : 1, sizeof *m->names);
    m->owned = calloc(m->n ? m->n : 1, sizeof *m->owned);
    views = calloc(m->n ? m->n : 1, sizeof *views);
    if (!m->names || !m->owned || !views) {
        xf_fail(err, "%s: out of memory", path);
        goto fail;
    }
    for (size_t i = 0; i < m->n; i++)
        if (add_tensor(m, arch, i, &views[i], err))
            goto fail;
    if (xf_tensor_set_init(&m->tensors, views, m->n, path, err))
        goto fail;
    free(views);
    return 0;
fail:
    free(views);
    xf_gguf_model_close(m);
    return -1;
}

void xf_gguf_model_close(xf_gguf_model *m)
{
    xf_tensor_set_free(&m->tensors);
    for (size_t i = 0; i < m->n; i++) {
        if (m->names)
            free(m->names[i]);
        if (m->owned)
            free(m->owned[i]);
    }
    free(m->names);
    free(m->owned);
    json_decref(m->config);
    json_decref(m->tokenizer);
    json_decref(m->tokenizer_config);
    xf_gguf_close(&m->file);
    memset(m, 0, sizeof *m);
}
