/* Dispatch on quant_method, and the owned tensor set the readers fill. */
#include "formats/hf_quantized.h"

#include <stdlib.h>
#include <string.h>

const char *xf_hf_quant_method(const json_t *config)
{
    const json_t *qc = json_object_get(config, "quantization_config");
    if (!json_is_object(qc))
        return NULL;
    const char *m = json_string_value(json_object_get(qc, "quant_method"));
    return m ? m : "?";
}

static bool is_consumed(const xf_hf_quantized *q, const char *name)
{
    for (size_t i = 0; i < q->n_consumed; i++)
        if (!strcmp(q->consumed[i], name))
            return true;
    return false;
}

static int build_set(xf_hf_quantized *q, xf_error *err)
{
    const xf_tensor_set *src = &q->hf->tensors;
    xf_tensor *all = malloc((src->n + q->n_owned + 1) * sizeof *all);
    if (!all)
        return xf_fail(err, "%s: out of memory", q->hf->dir);
    size_t n = 0;
    for (size_t i = 0; i < src->n; i++)
        if (!is_consumed(q, src->items[i].name))
            all[n++] = src->items[i];
    for (size_t i = 0; i < q->n_owned; i++)
        all[n++] = q->owned[i];
    int rc = xf_tensor_set_init(&q->tensors, all, n, q->hf->dir, err);
    free(all);
    return rc;
}

int xf_hf_quantized_open(xf_hf_quantized *q, const xf_hf_model *hf, bool conv1d_in_out,
                         xf_error *err)
{
    memset(q, 0, sizeof *q);
    q->hf = hf;
    q->conv1d_in_out = conv1d_in_out;
    const char *method = xf_hf_quant_method(hf->config);
    const json_t *qc = json_object_get(hf->config, "quantization_config");
    int rc;
    if (!method)
        rc = xf_fail(err, "%s/config.json: no quantization_config", hf->dir);
    else if (!strcmp(method, "gptq"))
        rc = xf_gptq_read(q, qc, err);
    else if (!strcmp(method, "compressed-tensors"))
        rc = xf_ct_read(q, qc, err);
    else
        rc = xf_fail(err, "%s/config.json: quantization_config.quant_method \"%s\" is not "
                          "supported (gptq and compressed-tensors are)",
                     hf->dir, method);
    if (rc == 0 && q->n_owned == 0)
        rc = xf_fail(err, "%s: quantization_config says %s but no quantized linear was found",
                     hf->dir, method);
    if (rc == 0)
        rc = build_set(q, err);
    if (rc != 0)
        xf_hf_quantized_close(q);
    return rc;
}

void xf_hf_quantized_close(xf_hf_quantized *q)
{
    xf_tensor_set_free(&q->tensors);
    for (size_t i = 0; i < q->n_owned; i++) {
        free((void *)q->owned[i].name);
        free((void *)q->owned[i].data);
    }
    free(q->owned);
    for (size_t i = 0; i < q->n_consumed; i++)
        free(q->consumed[i]);
    free(q->consumed);
    json_decref(q->info);
    memset(q, 0, sizeof *q);
}
