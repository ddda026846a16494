/* Model handles: open/close and the architecture at a glance. */
#include "api/model.h"

#include <stdlib.h>
#include <string.h>

#include "api/call.h"
#include "formats/hf_quantized.h"

XF_API xf_model *xf_open_model(const char *path, const xf_run_opts *run, xf_status *st)
{
    if (!path) {
        xf_api_fail_msg(st, XF_USAGE, "xf_open_model: no path");
        return NULL;
    }
    xf_model *h = calloc(1, sizeof *h);
    if (!h) {
        xf_api_failf(st, XF_FAIL, "%s: out of memory", path);
        return NULL;
    }
    xf_api_call call;
    xf_api_begin(&call, run);
    xf_error err = {0};
    int rc = xf_model_open(&h->m, path, &err);
    xf_api_end(&call);
    if (rc != 0) {
        free(h);
        xf_api_fail(st, XF_FAIL, &err);
        return NULL;
    }
    xf_api_ok(st);
    return h;
}

XF_API void xf_close_model(xf_model *m)
{
    if (!m)
        return;
    xf_model_close(&m->m);
    free(m);
}

static const char *format_name(const xf_loaded_model *m)
{
    switch (m->source) {
    case XF_SOURCE_XFQ: return "xfq";
    case XF_SOURCE_GGUF: return "gguf";
    case XF_SOURCE_HF: {
        const char *q = xf_hf_quant_method(m->config_json);
        return q ? q : "hf";
    }
    }
    return "?";
}

XF_API int xf_model_get_info(const xf_model *h, xf_model_info *info)
{
    if (!h || !info)
        return -1;
    const xf_model_config *c = &h->m.cfg;
    memset(info, 0, sizeof *info);
    snprintf(info->format, sizeof info->format, "%s", format_name(&h->m));
    snprintf(info->model_type, sizeof info->model_type, "%s", c->model_type);
    info->layers = c->n_layers;
    info->hidden = c->hidden;
    info->intermediate = c->intermediate;
    info->heads = c->n_heads;
    info->kv_heads = c->n_kv_heads;
    info->vocab = c->vocab;
    info->max_position_embeddings = c->max_pos;
    info->tied_embeddings = c->tie_embeddings ? 1 : 0;
    info->has_online_transforms = h->m.has_online_transforms ? 1 : 0;
    return 0;
}
