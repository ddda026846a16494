/* A solved weight from one rank of an MPI job to another (core/dist.h):
 * GPTQ's independent solves of a block (q/k/v, gate/up) run on different
 * ranks (pipeline/quantize_model.c), and rank 0, which writes the .xfq,
 * gets each result as the solver had it and packs it itself, so the file
 * holds the bytes one process would write. Uniform and GGML-block weights;
 * not outlier tables (runs with --outliers solve on every rank). */
#ifndef XF_PIPELINE_DIST_QWEIGHT_H
#define XF_PIPELINE_DIST_QWEIGHT_H

#include "core/dist.h"
#include "core/error.h"
#include "quant/weights/gptq.h"
#include "quant/weights/qweight.h"

/* q and its solve's statistics to rank peer. */
int xf_dist_send_qweight(xf_dist *d, int peer, const xf_qweight *q, const xf_gptq_stats *st,
                         xf_error *err);
/* The same from rank peer into *q (initialised here; xf_qweight_free) and
 * *st; ggml: the grid the receiver planned for this tensor (NULL:
 * uniform), `what` names it in errors. */
int xf_dist_recv_qweight(xf_dist *d, int peer, xf_qweight *q, xf_gptq_stats *st,
                         const xf_ggml_grid_traits *ggml, const char *what, xf_error *err);

#endif
