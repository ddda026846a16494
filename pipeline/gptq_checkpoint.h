/* Checkpoints of a GPTQ run, so that a run killed at block 30 of 32
 * continues there (`gptq --resume`) and writes the same bytes as a run
 * never interrupted.
 *
 * A directory beside the output (OUT.ckpt/) holds, after block l:
 *   block-NNNNN.xfq  block l's quantized tensors (packed, with their
 *                    outlier tables) and statistics, one file per block
 *   stream.xfq       the calibration stream's hidden states at the start
 *                    of block l+1 (fp32, [nsamples, seqlen, hidden]; with
 *                    --gptq-v2 the full-precision stream's too) and
 *                    "next_block": l+1
 * Every file is written atomically (temp name, fsync, rename, directory
 * fsync: core/atomic_file.h), the block's file before the stream's, so
 * stream.xfq is the commit point: whatever it says is done, is on disk. A
 * kill at any instant leaves either the previous checkpoint or the new
 * one. Files carry CRCs (checked when read back).
 *
 * What is saved is exactly what the rest of the run reads (the stream at a
 * block boundary is the whole state that flows forward; earlier blocks'
 * results only wait for the file), so resuming is bit-identical. What runs
 * before the blocks (calibration sampling, smoothing, rotations, searches)
 * is deterministic and simply runs again.
 *
 * Each file records a fingerprint of the run (SHA-256 of the recipe's
 * options, the model's config and tensor table with each tensor's first
 * bytes, and the calibration tokens); a checkpoint of another run is
 * refused, never mixed in. */
#ifndef XF_PIPELINE_GPTQ_CHECKPOINT_H
#define XF_PIPELINE_GPTQ_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>

#include "calib/sampling.h"
#include "core/error.h"
#include "model/block_stream.h"
#include "model/loader.h"
#include "pipeline/quantize_model.h"
#include "pipeline/xfq_out.h"

typedef struct xf_gptq_checkpoint {
    char *dir;
    char fingerprint[65];
} xf_gptq_checkpoint;

/* Creates dir if absent (its parent must exist) and computes the
 * fingerprint of this run. */
int xf_gptq_checkpoint_init(xf_gptq_checkpoint *c, const char *dir, const xf_loaded_model *m,
                            const xf_quant_options *o, const xf_calib_set *cs, xf_error *err);
void xf_gptq_checkpoint_free(xf_gptq_checkpoint *c);

/* Whether dir holds a checkpoint (its stream.xfq). */
bool xf_gptq_checkpoint_present(const char *dir);

/* After block `block`: its tensors, collector items [first, col->n), then
 * the streams (fp: NULL unless --gptq-v2), standing at block + 1. */
int xf_gptq_checkpoint_save(const xf_gptq_checkpoint *c, int block, const xf_quant_collector *col,
                            size_t first, const xf_block_stream *q, const xf_block_stream *fp,
                            xf_error *err);

/* The same from hidden states [ns, T, hidden] (hfp: NULL unless
 * --gptq-v2): an MPI job's rank 0 with every rank's windows gathered
 * (pipeline/dist_sums.h). */
int xf_gptq_checkpoint_save_states(const xf_gptq_checkpoint *c, int block,
                                   const xf_quant_collector *col, size_t first, const float *hq,
                                   const float *hfp, int64_t ns, int64_t T, int64_t hidden,
                                   xf_error *err);

/* Resumes: checks the fingerprint, adds blocks 0..next-1's tensors to col
 * and restores the streams (fp: NULL unless --gptq-v2) at the start of
 * block *next. */
int xf_gptq_checkpoint_load(const xf_gptq_checkpoint *c, xf_quant_collector *col,
                            xf_block_stream *q, xf_block_stream *fp, int *next, xf_error *err);

/* The same into arrays [ns, T, hidden] (hfp: NULL unless --gptq-v2),
 * for rank 0 of an MPI job to deal out; n_layers bounds the block. */
int xf_gptq_checkpoint_load_states(const xf_gptq_checkpoint *c, xf_quant_collector *col,
                                   float *hq, float *hfp, int64_t ns, int64_t T, int64_t hidden,
                                   int64_t n_layers, int *next, xf_error *err);

/* Removes dir's checkpoint files (and their stale temps) and dir itself,
 * once the output is final. A directory that holds other files is left,
 * with a warning. Absent: nothing to do. */
int xf_gptq_checkpoint_remove(const char *dir, xf_error *err);

#endif
