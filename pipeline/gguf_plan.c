#include "pipeline/gguf_plan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint32_t input_type(const xf_tensor *t)
{
    switch (t->dtype) {
    case XF_DTYPE_F16: return XF_GGML_F16;
    case XF_DTYPE_BF16: return XF_GGML_BF16;
    default: return XF_GGML_F32;
    }
}

int xf_gguf_type_plan_init(xf_gguf_type_plan *p, const xf_model_weights *mw, xf_gguf_ftype ft,
                           bool imatrix, const char *what, xf_error *err)
{
    memset(p, 0, sizeof *p);
    p->ftype = ft;
    const xf_model_config *c = &mw->cfg;
    xf_gguf_model_desc md = {.arch = XF_GGUF_ARCH_LLAMA, .n_layer = (int)c->n_layers,
                             .n_head = (int)c->n_heads, .n_head_kv = (int)c->n_kv_heads,
                             .imatrix = imatrix};
    if (c->family == XF_FAMILY_GPT2)
        md.arch = XF_GGUF_ARCH_GPT2;
    else if (!strcmp(c->model_type, "qwen2"))
        md.arch = XF_GGUF_ARCH_QWEN2;
    else if (c->family != XF_FAMILY_LLAMA)
        return xf_fail(err, "%s: --gguf-type: model type %s has no GGUF export", what,
                       c->model_type);
    if (xf_gguf_model_tensors(mw, &p->refs, &p->n, err) != 0)
        return -1;
    xf_gguf_tensor_desc *d = calloc(p->n ? p->n : 1, sizeof *d);
    p->types = calloc(p->n ? p->n : 1, sizeof *p->types);
    if (!d || !p->types) {
        free(d);
        xf_gguf_type_plan_free(p);
        return xf_fail(err, "%s: out of memory planning GGUF types", what);
    }
    for (size_t i = 0; i < p->n; i++) {
        d[i].name = p->refs[i].name;
        d[i].ndim = p->refs[i].ndim;
        d[i].ne[0] = p->refs[i].ne[0];
        d[i].ne[1] = p->refs[i].ne[1];
        d[i].ne[2] = d[i].ne[3] = 1;
        d[i].type = input_type(p->refs[i].src);
    }
    int rc = xf_gguf_ftype_plan(ft, &md, d, p->n, p->types, err);
    free(d);
    if (rc != 0) {
        xf_fail_prefix(err, "%s: --gguf-type %s", what, xf_gguf_ftype_name(ft));
        xf_gguf_type_plan_free(p);
        return -1;
    }
    return 0;
}

void xf_gguf_type_plan_free(xf_gguf_type_plan *p)
{
    free(p->refs);
    free(p->types);
    memset(p, 0, sizeof *p);
}

const xf_ggml_grid_traits *xf_gguf_type_plan_grid(const xf_gguf_type_plan *p, const xf_tensor *t,
                                                  const char **gguf_name)
{
    if (gguf_name)
        *gguf_name = NULL;
    for (size_t i = 0; i < p->n; i++)
        if (p->refs[i].src == t || (t->name && p->refs[i].src->name &&
                                    !strcmp(p->refs[i].src->name, t->name))) {
            if (gguf_name)
                *gguf_name = p->refs[i].name;
            return xf_ggml_grid_traits_of(p->types[i]);
        }
    return NULL;
}

void xf_gguf_type_plan_summary(const xf_gguf_type_plan *p, char *buf, size_t cap)
{
    int count[64] = {0};
    for (size_t i = 0; i < p->n; i++)
        if (p->refs[i].ndim == 2 && p->types[i] < 64)
            count[p->types[i]]++;
    size_t len = 0;
    buf[0] = '\0';
    for (int ty = 0; ty < 64; ty++) {
        if (!count[ty])
            continue;
        const xf_ggml_type_traits *t = xf_ggml_traits((uint32_t)ty);
        int w = snprintf(buf + len, cap - len, "%s%s x %d", len ? ", " : "", t ? t->name : "?",
                         count[ty]);
        if (w < 0 || (size_t)w >= cap - len)
            break;
        len += (size_t)w;
    }
}
