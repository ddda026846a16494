#include "model/loader.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool xf_path_is_xfq(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return false;
    char magic[8];
    bool yes = fread(magic, 1, 8, fp) == 8 && memcmp(magic, XFQ_MAGIC, 8) == 0;
    fclose(fp);
    return yes;
}

static int open_xfq(xf_loaded_model *m, const char *path, xf_error *err)
{
    if (xfq_open(&m->xfq, path, 0, err) != 0)
        return -1;
    m->source = XF_SOURCE_XFQ;
    m->config_json = json_object_get(m->xfq.meta, "config");
    if (!json_is_object(m->config_json))
        return xf_fail(err, "%s: metadata has no \"config\" object", path);
    const json_t *tok = json_object_get(m->xfq.meta, "tokenizer");
    if (json_is_object(tok)) {
        m->tokenizer_json = json_object_get(tok, "tokenizer.json");
        m->tokenizer_config_json = json_object_get(tok, "tokenizer_config.json");
    }
    m->tensors = &m->xfq.tensors;
    /* Evaluating a file without the transforms it was made with would give
     * wrong numbers: refuse kinds this build does not implement (the full
     * check, and the application, are sim/online.h's, through the hooks
     * of eval/model_scorer.h; callers that run the model otherwise must
     * refuse files with m->has_online_transforms). */
    const json_t *online = json_object_get(json_object_get(m->xfq.meta, "recipe"), "online_transforms");
    for (size_t i = 0; json_is_array(online) && i < json_array_size(online); i++) {
        const json_t *e = json_array_get(online, i);
        const char *kind = json_is_string(e) ? json_string_value(e)
                                             : json_string_value(json_object_get(e, "kind"));
        if (!kind || strcmp(kind, "hadamard") != 0)
            return xf_fail(err, "%s: needs online transform \"%s\", which this xfquant does not "
                                "implement",
                           path, kind ? kind : "?");
        m->has_online_transforms = true;
    }
    return 0;
}

static int open_gguf(xf_loaded_model *m, const char *path, xf_error *err)
{
    if (xf_gguf_model_open(&m->gguf, path, err) != 0)
        return -1;
    m->source = XF_SOURCE_GGUF;
    m->config_json = m->gguf.config;
    m->tokenizer_json = m->gguf.tokenizer;
    m->tokenizer_config_json = m->gguf.tokenizer_config;
    m->tensors = &m->gguf.tensors;
    return 0;
}

static int open_hf(xf_loaded_model *m, const char *path, xf_error *err)
{
    if (xf_hf_open(&m->hf, path, err) != 0)
        return -1;
    m->source = XF_SOURCE_HF;
    m->config_json = m->hf.config;
    m->tokenizer_json = m->hf.tokenizer;
    m->tokenizer_config_json = m->hf.tokenizer_config;
    m->tensors = &m->hf.tensors;
    return 0;
}

int xf_model_open(xf_loaded_model *m, const char *path, xf_error *err)
{
    memset(m, 0, sizeof *m);
    m->path = strdup(path);
    if (!m->path)
        return xf_fail(err, "%s: out of memory", path);
    int rc = xf_path_is_xfq(path)    ? open_xfq(m, path, err)
             : xf_path_is_gguf(path) ? open_gguf(m, path, err)
                                     : open_hf(m, path, err);
    if (rc != 0)
        goto fail;
    char what[1200];
    snprintf(what, sizeof what, "%s: config", path);
    if (xf_model_config_parse(&m->cfg, m->config_json, what, err) != 0)
        goto fail;
    if (m->source == XF_SOURCE_HF && xf_hf_quant_method(m->hf.config)) {
        if (xf_hf_quantized_open(&m->hfq, &m->hf, xf_model_conv1d_transposed(m), err) != 0)
            goto fail;
        m->tensors = &m->hfq.tensors;
    }
    if (xf_model_bind(&m->weights, &m->cfg, m->tensors, xf_model_conv1d_transposed(m), path,
                      err) != 0)
        goto fail;
    return 0;
fail:
    xf_model_close(m);
    return -1;
}

bool xf_model_conv1d_transposed(const xf_loaded_model *m)
{
    /* HF GPT-2 files store Conv1D weights [in, out]; .xfq and GGUF (ggml's
     * ne = [in, out], i.e. [out, in] row-major) always [out, in] */
    return m->source == XF_SOURCE_HF && m->cfg.family == XF_FAMILY_GPT2;
}

void xf_model_close(xf_loaded_model *m)
{
    xf_model_unbind(&m->weights);
    xf_hf_quantized_close(&m->hfq);
    if (m->source == XF_SOURCE_HF)
        xf_hf_close(&m->hf);
    else if (m->source == XF_SOURCE_XFQ)
        xfq_close(&m->xfq);
    else if (m->source == XF_SOURCE_GGUF)
        xf_gguf_model_close(&m->gguf);
    free(m->path);
    memset(m, 0, sizeof *m);
}
