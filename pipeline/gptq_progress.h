/* Where the time of a GPTQ run goes, and its progress events: the block
 * loop of pipeline/quantize_model.c measures its three kinds of work and
 * reports at each linear input and each block; this file keeps the running
 * totals and builds the events (core/progress.h) from them.
 *
 * The three kinds (seconds, wall clock):
 *   forward  the calibration stream run through a block (xf_block_stream_run:
 *            both streams with --gptq-v2)
 *   hessian  the Hessian (and GPTQv2 cross-covariance) of a pending input
 *            over all windows; for the down input this includes the gate/up
 *            products that rebuild the input from the kept MLP input
 *   solve    the factorization and the GPTQ sweep of the input's readers
 *            (with --gptq-v2 also the weight correction)
 * Their sum is less than the stage's total: the rest is reading each
 * block's weights into fp32, the stream's embedding, output bookkeeping.
 *
 * Throughput counts the forward pass only, per completed block:
 *   tokens = windows x window length x streams
 *   FLOPs  = streams x windows x (2 T P + 2 n_heads head_dim T (T + 1))
 * with P the parameters of the block's linears (each multiply-add two
 * FLOPs, every linear run once per token) and the second term causal
 * attention (scores and the weighted sum of values over the i + 1 keys of
 * query i); norms, activations and the residual are left out.
 *
 * ETA: the decoder blocks cost the same, so the time left is the mean time
 * of a completed block (since the loop began) times the units left, the
 * LM head (when quantized) counted as one more unit, less the time the
 * unit in progress has already taken (not below 0). Unknown (-1) until
 * the first block completes. */
#ifndef XF_PIPELINE_GPTQ_PROGRESS_H
#define XF_PIPELINE_GPTQ_PROGRESS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/progress.h"
#include "model/config.h"

/* Running totals of a GPTQ stage. */
typedef struct xf_gptq_timing {
    double forward_s, hessian_s, solve_s;
    double total_s;     /* the whole stage, streams set up to the head */
    int64_t tokens;     /* forward tokens of the completed blocks */
    double flops;       /* their forward FLOPs */
    double forward_done_s; /* forward seconds of the completed blocks */
} xf_gptq_timing;

typedef struct xf_gptq_progress {
    xf_progress prog;
    xf_gptq_timing t;
    int64_t n_blocks, total, done; /* units: blocks, + 1 for the head */
    int64_t done_before;           /* of them, done by a run this one resumes */
    int64_t block_tokens;
    double block_flops;
    double t_begin, t_loop, t_unit; /* the stage began, its loop, the last unit done */
    /* the input in progress: its seconds so far */
    double in_forward_s, in_hessian_s, in_solve_s;
} xf_gptq_progress;

/* n_blocks decoder blocks of cfg (fewer with --max-blocks), ns windows of
 * T tokens, streams 1 or 2 (--gptq-v2), head: the LM head is solved after
 * the blocks. Sends the START event. */
void xf_gptq_progress_begin(xf_gptq_progress *g, const xf_model_config *cfg, int64_t n_blocks,
                            int64_t ns, int64_t T, int streams, bool head);
/* Blocks before `start` were done by the run this one resumes: they count
 * as done, but not in this run's times, throughput or ETA. */
void xf_gptq_progress_resumed(xf_gptq_progress *g, int64_t start);

/* Time of one piece of work since t0 (xf_now_seconds()), added to the
 * input in progress and to the totals. */
void xf_gptq_progress_forward(xf_gptq_progress *g, double t0);
void xf_gptq_progress_hessian(xf_gptq_progress *g, double t0);
void xf_gptq_progress_solve(xf_gptq_progress *g, double t0);

/* Input `input` of block `block` (detail: its first reader) is solved:
 * the INPUT event with its seconds; the input's counters restart. */
void xf_gptq_progress_input(xf_gptq_progress *g, int64_t block, const char *input,
                            const char *detail);
/* Block `block` completed: its tokens and FLOPs count, the BLOCK event. */
void xf_gptq_progress_block(xf_gptq_progress *g, int64_t block);
/* The LM head solved: an INPUT event ("lm_head"), one more unit done. */
void xf_gptq_progress_head(xf_gptq_progress *g);
/* The END event with the totals (also after a failure); fills g->t.total_s. */
void xf_gptq_progress_end(xf_gptq_progress *g);

/* {"forward_s", "hessian_s", "solve_s", "total_s"} for the run summary. */
json_t *xf_gptq_timing_json(const xf_gptq_timing *t);

#endif
