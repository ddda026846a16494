/* The GGML type of every tensor of a model under a llama-quantize file type
 * (`--gguf-type Q4_K_M`): the model's GGUF tensor list as the exporter
 * writes it (export/export.h xf_gguf_model_tensors) run through
 * llama-quantize's rules (export/gguf_ftype.h), looked up by source tensor
 * while quantizing. Tensors planned as F32/F16/BF16 stay unquantized. */
#ifndef XF_PIPELINE_GGUF_PLAN_H
#define XF_PIPELINE_GGUF_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "export/export.h"
#include "export/gguf_ftype.h"
#include "model/weights.h"
#include "quant/weights/ggml_grid.h"

typedef struct xf_gguf_type_plan {
    xf_gguf_ftype ftype;
    xf_gguf_tensor_ref *refs; /* [n] */
    uint32_t *types;          /* [n] xf_ggml_type of refs[i] */
    size_t n;
} xf_gguf_type_plan;

/* imatrix: plan as llama-quantize does with an --imatrix (GPTQ's Hessians
 * play that part) or without one (RTN). Fails, naming `what` and the
 * tensor, where llama-quantize would refuse the model. */
int xf_gguf_type_plan_init(xf_gguf_type_plan *p, const xf_model_weights *mw, xf_gguf_ftype ft,
                           bool imatrix, const char *what, xf_error *err);
void xf_gguf_type_plan_free(xf_gguf_type_plan *p);

/* The grid tensor t is quantized on: NULL when the plan keeps it
 * unquantized (a float type) or does not list it (then *gguf_name is NULL). */
const xf_ggml_grid_traits *xf_gguf_type_plan_grid(const xf_gguf_type_plan *p, const xf_tensor *t,
                                                  const char **gguf_name);

/* JSON-ready counts: "q4_K x 30, q6_K x 7, f16 x 2" into buf. */
void xf_gguf_type_plan_summary(const xf_gguf_type_plan *p, char *buf, size_t cap);

#endif
