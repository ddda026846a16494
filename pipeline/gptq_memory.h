/* The memory a GPTQ run holds, planned before it starts against the run's
 * bound (--max-memory; default 80 % of MemAvailable): what must be in
 * memory, whether the calibration states fit beside it or are spilled to
 * a temporary file (core/state_buffer.h), or a refusal up front with the
 * numbers when even spilling cannot fit.
 *
 * Counted (anonymous memory; docs/performance.md has the formulas):
 *   block    one decoder block densified to fp32 (two with --gptq-v2)
 *   solve    the widest input's Hessian accumulator, the Hessian, the
 *            factorization's work arrays and the widest weight's sweep
 *            (about 20·d²+5·r·d bytes; 40·d² with --gptq-v2's cross-covariance)
 *   head     the LM head's Hessian and its fp32 weight (--quantize-head, --gguf-type)
 *   packed   the quantized tensors collected until the file is written
 *   work     the forward's per-window workspace, plus a fixed margin
 *   states   the calibration stream: nsamples·seqlen·(hidden + widest kept
 *            input) fp32 (model/block_stream.h; x2 with --gptq-v2). Where
 *            the bound allows, the stream keeps every input, the down
 *            input (the MLP's width) too, and computes nothing twice;
 *            otherwise it keeps the narrower inputs and recomputes the down
 *            input from the MLP input (gate/up once more per window and
 *            block); otherwise the narrow states are spilled.
 * Not counted: the model's own weights, which stay memory-mapped from its
 * files (file-backed pages the kernel can drop and re-read), and a spill
 * file's pages (page cache, written back and freed under pressure). */
#ifndef XF_PIPELINE_GPTQ_MEMORY_H
#define XF_PIPELINE_GPTQ_MEMORY_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"
#include "model/config.h"
#include "pipeline/quantize_model.h"

typedef struct xf_gptq_memory {
    int64_t budget;                 /* the bound in bytes; < 0: none */
    bool budget_default;            /* 80 % of MemAvailable */
    int64_t block, solve, head, packed, work, states, spill_window;
    int64_t states_all;             /* the states keeping the down input too */
    int64_t fixed;                  /* everything but the states */
    bool keep_down;                 /* the states are states_all (in memory) */
    bool spill;                     /* the (narrow) states go to a spill file */
    int64_t planned;                /* fixed + states (in memory) or + spill_window */
} xf_gptq_memory;

/* Plans a GPTQ run of n_blocks decoder blocks over nsamples windows of T
 * tokens. max_memory as xf_quant_run.max_memory. Fails, naming `what` and
 * every figure, when fixed + one spilled window exceeds the bound. */
int xf_gptq_memory_plan(const xf_model_config *cfg, const xf_quant_options *o,
                        int64_t n_blocks, int64_t nsamples, int64_t T,
                        int64_t max_memory, xf_gptq_memory *out, const char *what,
                        xf_error *err);
/* The plan as JSON (bytes), for the run's summary. */
json_t *xf_gptq_memory_to_json(const xf_gptq_memory *m);

#endif
