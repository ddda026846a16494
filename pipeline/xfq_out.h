/* Collects quantized tensors (packed, with their statistics) while a model
 * is being quantized, then writes the .xfq: every tensor of the source model
 * in name order, quantized ones packed, the rest copied (GPT-2 Conv1D
 * weights transposed to [out, in]; F64 narrowed to F32), plus metadata. */
#ifndef XF_PIPELINE_XFQ_OUT_H
#define XF_PIPELINE_XFQ_OUT_H

#include <jansson.h>
#include <stddef.h>

#include "core/error.h"
#include "formats/xfq_outliers.h"
#include "model/loader.h"
#include "quant/weights/qweight.h"

typedef struct xf_quant_collector {
    xf_qweight_packed *items;
    size_t n, cap;
    json_t *stats; /* object: tensor name -> statistics object */
} xf_quant_collector;

void xf_quant_collector_init(xf_quant_collector *c);
void xf_quant_collector_free(xf_quant_collector *c);
/* Packs q under `name` and records `stats` (reference stolen; may be NULL). */
int xf_quant_collector_add(xf_quant_collector *c, const xf_qweight *q, const char *name,
                           json_t *stats, xf_error *err);

/* Adds a copy of an already packed tensor t (packed, log2 or GGML, as an
 * .xfq reader returns it; its outlier side table `so` may be NULL) under
 * t's name with `stats` (reference stolen; may be NULL): a checkpointed
 * run's earlier blocks (pipeline/gptq_checkpoint.h). */
int xf_quant_collector_add_copy(xf_quant_collector *c, const xf_tensor *t,
                                const xf_sparse_outliers *so, json_t *stats, xf_error *err);

/* Writes the .xfq. recipe and provenance are borrowed JSON objects. */
int xf_quant_write_xfq(const xf_loaded_model *m, const xf_quant_collector *c,
                       const json_t *recipe, const json_t *provenance, const char *out_path,
                       xf_error *err);

#endif
