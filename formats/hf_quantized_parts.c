/* What the quantized-checkpoint readers (gptq_read.c, ct_read.c) share:
 * naming parts and their files in messages, marking parts consumed, adding
 * the dequantized weights, unaligned element reads. Declared in
 * formats/hf_quantized.h; kept apart from its dispatcher so that the
 * readers, which the dispatcher calls, call nothing that calls them. */
#include "formats/hf_quantized.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/half.h"

const char *xf_hfq_file_of(const xf_hf_quantized *q, const char *name)
{
    for (size_t i = 0; i < q->hf->n_shards; i++)
        if (xf_safetensors_find(&q->hf->shards[i], name))
            return q->hf->shards[i].file.path;
    return q->hf->dir;
}

int xf_hfq_fail_part(xf_error *err, const xf_hf_quantized *q, const char *module,
                     const char *suffix, const char *fmt, ...)
{
    char name[1024], msg[700];
    snprintf(name, sizeof name, "%s.%s", module, suffix);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return xf_fail(err, "%s: tensor %s: %s", xf_hfq_file_of(q, name), name, msg);
}

const xf_tensor *xf_hfq_part(const xf_hf_quantized *q, const char *module, const char *suffix)
{
    char name[1024];
    if ((size_t)snprintf(name, sizeof name, "%s.%s", module, suffix) >= sizeof name)
        return NULL;
    return xf_tensor_set_find(&q->hf->tensors, name);
}

int xf_hfq_consume(xf_hf_quantized *q, const char *module, const char *suffix, xf_error *err)
{
    if (q->n_consumed == q->cap_consumed) {
        size_t cap = q->cap_consumed ? 2 * q->cap_consumed : 64;
        char **p = realloc(q->consumed, cap * sizeof *p);
        if (!p)
            return xf_fail(err, "%s: out of memory", q->hf->dir);
        q->consumed = p;
        q->cap_consumed = cap;
    }
    size_t n = strlen(module) + strlen(suffix) + 2;
    char *s = malloc(n);
    if (!s)
        return xf_fail(err, "%s: out of memory", q->hf->dir);
    snprintf(s, n, "%s.%s", module, suffix);
    q->consumed[q->n_consumed++] = s;
    return 0;
}

int xf_hfq_add_weight(xf_hf_quantized *q, const char *module, int64_t N, int64_t K, float *W,
                      xf_error *err)
{
    if (q->n_owned == q->cap_owned) {
        size_t cap = q->cap_owned ? 2 * q->cap_owned : 64;
        xf_tensor *p = realloc(q->owned, cap * sizeof *p);
        if (!p) {
            free(W);
            return xf_fail(err, "%s: out of memory", q->hf->dir);
        }
        q->owned = p;
        q->cap_owned = cap;
    }
    size_t n = strlen(module) + 8;
    char *name = malloc(n);
    if (!name) {
        free(W);
        return xf_fail(err, "%s: out of memory", q->hf->dir);
    }
    snprintf(name, n, "%s.weight", module);
    if (xf_tensor_set_find(&q->hf->tensors, name)) {
        xf_error e = {0};
        xf_fail(&e, "%s: tensor %s is stored both plain and quantized", xf_hfq_file_of(q, name),
                name);
        free(name);
        free(W);
        *err = e;
        return -1;
    }
    const bool tr = q->conv1d_in_out && strcmp(module, "lm_head") != 0 &&
                    !(strlen(module) > 8 && !strcmp(module + strlen(module) - 8, ".lm_head"));
    if (tr) { /* HF GPT-2 Conv1D layout [in, out] */
        float *t = malloc((size_t)(N * K) * sizeof *t);
        if (!t) {
            free(name);
            free(W);
            return xf_fail(err, "%s: out of memory", q->hf->dir);
        }
        for (int64_t r = 0; r < N; r++)
            for (int64_t c = 0; c < K; c++)
                t[c * N + r] = W[r * K + c];
        free(W);
        W = t;
    }
    xf_tensor *t = &q->owned[q->n_owned++];
    memset(t, 0, sizeof *t);
    t->name = name;
    t->dtype = XF_DTYPE_F32;
    t->ndim = 2;
    t->shape[0] = tr ? K : N;
    t->shape[1] = tr ? N : K;
    t->data = W;
    t->nbytes = (size_t)(N * K) * sizeof(float);
    return 0;
}

uint32_t xf_hfq_u32(const void *data, size_t i)
{
    uint32_t v;
    memcpy(&v, (const uint8_t *)data + 4 * i, 4);
    return v;
}

float xf_hfq_scale_at(const xf_tensor *t, int64_t i)
{
    const uint8_t *p = t->data;
    uint16_t h;
    float f;
    switch (t->dtype) {
    case XF_DTYPE_F16: memcpy(&h, p + 2 * i, 2); return xf_f16_to_f32(h);
    case XF_DTYPE_BF16: memcpy(&h, p + 2 * i, 2); return xf_bf16_to_f32(h);
    case XF_DTYPE_F32: memcpy(&f, p + 4 * i, 4); return f;
    default: return 0.0f;
    }
}
