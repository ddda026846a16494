/* One calibration stream: the hidden states of every calibration window
 * at a block boundary ([nsamples, T, hidden] fp32), run through the model
 * one decoder block at a time, all windows through a block before the
 * next. Every stage that needs activations walks the model this way
 * (GPTQ's Hessians, activation statistics and maxima, rotation learning):
 * each block is densified once, and its linears may be replaced between
 * runs, so later blocks see the outputs of quantized ones.
 *
 * A resumable stream can stop inside a block at one of its linear inputs
 * (model/forward.h xf_layer_point) and resume from there, so true-sequential
 * GPTQ runs every part of a block that holds state (attention above all)
 * exactly once on the quantized stream: to the q/k/v input (Hessian),
 * q/k/v quantized, on through attention to o's input, o quantized, on to
 * the MLP input, and so on. The pending input of each window is readable
 * at the stop.
 *
 * Memory (XF_STREAM_KEEP_NARROW): besides h, a resumable stream keeps one input per window, no
 * wider than the widest of the q/k/v, o and MLP inputs ([nsamples, T,
 * keep_in] fp32: hidden, or n_heads * head_dim where that is wider). The
 * down input (the MLP's intermediate width, 2.7x hidden in Llamas) is not
 * kept: at the down input the stream keeps each window's MLP input, and
 * computes the down input from it (gate/up with the block's current
 * weights, the activation, the down input's hook) one window at a time
 * into the workspace, whenever it is read and once more when the stream
 * resumes to the block end. That costs the gate/up products once more per
 * window and block (attention is never recomputed) and saves [nsamples,
 * T, intermediate - keep_in] fp32; the values are the same bytes, as each
 * computation is the same operations on the same values.
 * XF_STREAM_KEEP_ALL keeps the down input too ([nsamples, T, max(hidden,
 * n_heads * head_dim, intermediate)] fp32): nothing is recomputed, for
 * runs whose memory allows it (pipeline/gptq_memory.h); the same bytes.
 *
 *   xf_block_stream bs;
 *   xf_block_stream_init(&bs, mw, tokens, nsamples, T, true, "gptq", err);
 *   for each layer l: dense layer dl;
 *       for each input in: xf_block_stream_run(&bs, &dl, xf_layer_point_at(in), hooks, err);
 *                          xf_block_stream_input(&bs, &dl, hooks, s, &x, &cols, err)
 *                              for every window s;
 *                          replace dl's readers of `in`;
 *       xf_block_stream_run(&bs, &dl, XF_AT_END, hooks, err);
 *   xf_block_stream_free(&bs);
 *
 * Results are bit-identical to running xf_forward_layer on each window
 * (the same operations on the same values; hooks are called once per
 * window and point passed, windows in order, except the down input's hook
 * of a resumable stream that stops there: it is called each time that
 * input is computed, so hooks given to such a stream must be transforms,
 * giving the same result on the same input, as activation quantizers and
 * online rotations are). */
#ifndef XF_MODEL_BLOCK_STREAM_H
#define XF_MODEL_BLOCK_STREAM_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"
#include "core/state_buffer.h"
#include "model/forward.h"

/* What a stream keeps between runs (the comment above). */
typedef enum xf_stream_keep {
    XF_STREAM_KEEP_NONE = 0, /* h only: not resumable inside a block */
    XF_STREAM_KEEP_NARROW,   /* resumable; the down input recomputed from the MLP input */
    XF_STREAM_KEEP_ALL,      /* resumable; every pending input kept, the down input too */
} xf_stream_keep;

typedef struct xf_block_stream {
    xf_workspace ws;
    int64_t ns, T, hidden;
    float *h;           /* [ns, T, hidden]: at `at` of block `layer` */
    float *pending;     /* [ns, T, keep_in] each window's kept input (at the down input:
                           the MLP input); NULL: not resumable */
    int64_t keep_in;    /* widest kept input: every linear input but down's (and down's
                           with keep_down) */
    bool keep_down;     /* XF_STREAM_KEEP_ALL */
    int layer;          /* the block in progress (at START: the next one to run) */
    xf_layer_point at;  /* where every window stands in it; never XF_AT_END */
    xf_state_buffer h_buf, pending_buf; /* the storage of h and pending */
    char *spill_dir;    /* NULL: in memory */
    int64_t touched;    /* the window whose input was last handed out; -1: none */
} xf_block_stream;

/* The widest input a stream keeping `keep` holds per token besides h (0
 * for XF_STREAM_KEEP_NONE): what its memory is planned with
 * (pipeline/gptq_memory.h). */
int64_t xf_block_stream_kept_width(const xf_model_config *cfg, xf_stream_keep keep);

/* Embeds windows 0..nsamples-1 of tokens ([nsamples, T], contiguous) at
 * positions 0..T-1; the stream then stands before block 0. keep (not
 * NONE): keep the pending inputs, so that runs may stop at an input and
 * resume; a stream that does not may still stop at an input (the
 * statistics stop at the last block's down input), but not resume from it. spill_dir: NULL
 * keeps the states in memory; a directory puts them in a spill file there
 * (core/state_buffer.h), each window's pages leaving the resident set as
 * soon as the stream is done with it; the numbers are the same. `what`
 * names the model in errors. */
int xf_block_stream_init(xf_block_stream *bs, const xf_model_weights *mw, const int32_t *tokens,
                         int64_t nsamples, int64_t T, xf_stream_keep keep,
                         const char *spill_dir, const char *what, xf_error *err);
/* A second stream standing where src stands, with the same hidden states
 * (GPTQv2's full-precision stream starts as a copy of the quantized one),
 * spilled where src is. */
int xf_block_stream_copy(xf_block_stream *dst, const xf_block_stream *src, xf_error *err);
void xf_block_stream_free(xf_block_stream *bs);

/* Runs every window through block dl (dl->layer must be the block in
 * progress) from where the stream stands to `to`, calling hooks (may be
 * NULL) once per window and point passed, windows in order (a resumable
 * stream calls the down input's hook when it computes that input: not on
 * the way to it, and again on the way from it). At XF_AT_END the stream
 * moves to the start of the next block. A hook may not stop
 * the pass (XF_HOOK_STOP fails: the windows would be left apart). */
int xf_block_stream_run(xf_block_stream *bs, const xf_dense_layer *dl, xf_layer_point to,
                        const xf_forward_hooks *hooks, xf_error *err);

/* Window s's input pending at the point the stream stands at, [T, *cols]
 * row-major, into *x (resumable streams; dl: the block in progress). At
 * the down input it is computed from the kept MLP input with dl's current
 * gate/up (fc1) weights and `hooks` (those of the run that stopped there)
 * into the workspace: *x is valid until the next call on the stream. Fails
 * at a block start, on a stream that is not resumable, or when a hook
 * fails. */
int xf_block_stream_input(xf_block_stream *bs, const xf_dense_layer *dl,
                          const xf_forward_hooks *hooks, int64_t s, const float **x,
                          int64_t *cols, xf_error *err);
/* Runs window s of a stream standing at a block start through block dl to
 * point `to` on a copy of its hidden states (scratch [T, hidden]), calling
 * hooks, without moving the stream: a look ahead at what the block computes
 * from its current input with its current weights (RSQ's token weights need
 * the block's attention before its q/k/v linears are quantized). Uses the
 * stream's workspace, which holds nothing between runs at a block start. */
int xf_block_stream_peek(xf_block_stream *bs, const xf_dense_layer *dl, int64_t s,
                         xf_layer_point to, const xf_forward_hooks *hooks, float *scratch,
                         xf_error *err);

/* Window s's hidden states [T, hidden]: at a block start, that block's
 * input (after the last block: the final norm's input). */
const float *xf_block_stream_hidden(const xf_block_stream *bs, int64_t s);

/* Puts the stream at the start of block `layer` with hidden states h
 * ([nsamples, T, hidden], copied): a checkpointed run resuming
 * (pipeline/gptq_checkpoint.h). */
int xf_block_stream_restore(xf_block_stream *bs, int layer, const float *h, xf_error *err);

#endif
