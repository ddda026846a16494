/* Whole-model weight quantization into an .xfq file: RTN (no calibration)
 * or GPTQ (calibrated, block by block, true-sequential), then the .xfq with
 * the recipe, provenance and per-tensor statistics. */
#ifndef XF_PIPELINE_QUANTIZE_MODEL_H
#define XF_PIPELINE_QUANTIZE_MODEL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "calib/calib_text.h"
#include "core/dist.h"
#include "core/error.h"
#include "model/loader.h"
#include "export/gguf_ftype.h"
#include "sim/act_quant.h"
#include "quant/weights/grid.h"
#include "quant/transform/rotate.h"
#include "pipeline/tensor_bits.h"

typedef enum xf_quant_method { XF_METHOD_RTN = 1, XF_METHOD_GPTQ } xf_quant_method;

/* --token-weight: each token's term in GPTQ's Hessians (pipeline/token_weights.h) */
typedef enum xf_token_weight {
    XF_TOKEN_WEIGHT_UNIFORM = 0,
    XF_TOKEN_WEIGHT_ATTN_CON, /* RSQ's attention concentration */
    XF_TOKEN_WEIGHT_ATTN_CON_MEAN, /* the same per query that sees the token */
} xf_token_weight;

typedef struct xf_quant_options {
    xf_quant_method method;
    xf_grid_config grid;   /* bits, sym, clip */
    int64_t group;         /* columns per group; -1: per output channel */
    bool quantize_head;    /* also the LM head (untied models only) */
    double outliers;  /* fraction 0..1 of weights kept in fp16 (dense-and-sparse) */
    bool weight_grid_log2; /* --weight-grid log2 (RTN only): L-typed weights, recipe
                              "weight_grid": "log2"; false: uniform (key absent) */
    bool weight_grid_razor; /* --weight-grid razor (RTN only): QRazor's razoring of
                              8-bit abs-max rows, act.razor_group wide groups, --bits
                              kept bits (quant/weights/razor_weights.h); recipe
                              "weight_grid": "razor" */
    bool repquant;         /* --repquant: RepQuant's per-channel qkv/mlp input
                              quantizers, re-parameterised into static per-tensor
                              ones (quant/transform/repquant.h) */
    /* --gguf-type: quantize onto llama.cpp's block types, each tensor the type
     * llama-quantize gives it for this file type (pipeline/gguf_plan.h); bits,
     * group, sym, clip and --tensor-bits do not apply */
    bool gguf;
    xf_gguf_ftype gguf_ftype;
    /* GPTQ */
    bool act_order;
    bool static_groups;
    double damp;           /* relative dampening (0.01) */
    int64_t block;         /* lazy-batch block size (128) */
    bool gptq_v2;          /* asymmetric calibration (GPTQv2) */
    int64_t max_blocks;    /* > 0: only the first N decoder blocks; 0: all */
    int token_weight;      /* xf_token_weight (int: the option table's enum setter) */
    /* calibration (GPTQ) */
    const char *calib_path;
    const char *calib_field;   /* JSONL field or NULL */
    xf_calib_format calib_format;
    int64_t nsamples;          /* 128 */
    int64_t seqlen;            /* 0: min(2048, max_position_embeddings) */
    int64_t calib_max_tokens;  /* > 0: only the first N tokens of the text; 0: all */
    uint64_t seed;             /* 0 */
    bool progress;             /* progress line on a TTY */
    /* activation / KV-cache / attention-probability simulation: recorded in
     * the recipe ("activations"), applied by the evaluator and, for GPTQ,
     * during calibration (the Hessians see the quantized activations, as in
     * QuaRot) */
    xf_act_scheme act;
    bool act_clip_search;       /* --act-clip search (needs calibration) */
    bool attn_prob_base_search; /* --attn-prob-base search (needs calibration) */
    /* SmoothQuant-style smoothing (quant/transform/smooth.h), before any rotation */
    double smooth;              /* alpha; <= 0: off */
    bool smooth_search;         /* --smooth search: alpha per layer and input searched
                                   (QQQ, quant/search/smooth_search.h) */
    unsigned smooth_inputs;     /* bit (1u << xf_lin_input); 0: the default */
    /* rotation (quant/transform/rotate.h): fold norms, rotate, record the online
     * transforms; --seed also seeds the randomized Hadamard */
    xf_rotate_kind rotate;
    bool rotate_no_online;      /* no online down_proj Hadamard */
    bool rotate_no_headwise;    /* no head-wise v/o Hadamard */
    bool rotate_qk;             /* online head_dim Hadamard on Q and K after RoPE (R3) */
    bool klt_hadamard;          /* klt: eigenbasis followed by a randomized Hadamard */
    int64_t rotate_steps;       /* learned: Cayley SGD steps */
    double rotate_lr;           /* learned: learning rate */
    /* learned: objective (e2e / local) and the e2e loss, windows, batch
     * (quant/transform/e2e_learn.c) */
    xf_rotate_objective rotate_objective;
    int rotate_ste;             /* e2e activation/KV STE: 0 identity, 1 scale */
    int rotate_weights;         /* e2e weight quantizer: 0 auto (gptq: fp, rtn: RTN), 1 rtn, 2 fp */
    xf_rotate_loss rotate_loss;
    int64_t rotate_windows;
    int64_t rotate_batch;
    /* OstQuant (quant/transform/ost.h): learned scales beside the
     * rotations; the kl-top loss's k */
    bool rotate_scales;
    int64_t kl_top_k;
    /* per-tensor bit widths (--tensor-bits REGEX=BITS), first match wins */
    const char *tensor_bits[XF_TENSOR_BITS_MAX_RULES];
    size_t n_tensor_bits;
} xf_quant_options;

void xf_quant_options_defaults(xf_quant_options *o, xf_quant_method method);

/* How a run is carried out, not what it computes: never recorded in the
 * output, whose bytes do not depend on it. {0}: the defaults. */
typedef struct xf_quant_run {
    int64_t max_memory;         /* bytes the run may hold (pipeline/gptq_memory.h);
                                   0: 80 % of MemAvailable; < 0: no bound */
    const char *spill_dir;      /* spilled calibration states; NULL: the output's directory */
    const char *checkpoint_dir; /* gptq: a checkpoint after every block
                                   (pipeline/gptq_checkpoint.h); NULL: none */
    bool resume;                /* continue from checkpoint_dir's checkpoint */
    xf_dist *dist;              /* the ranks of an MPI job (core/dist.h): gptq splits the
                                   calibration windows across them, rank 0 writes; NULL:
                                   one process */
} xf_quant_run;

/* Quantizes the linears of m and writes out_path atomically. run may be
 * NULL (the defaults). command_line (array of strings, may be NULL) goes
 * into the provenance. *summary (if non-NULL) receives a JSON object
 * describing the run (owned by caller). The checkpoint directory is left
 * in place: the caller removes it (xf_gptq_checkpoint_remove) once its
 * output is final. */
int xf_quantize_model(xf_loaded_model *m, const xf_quant_options *o, const xf_quant_run *run,
                      const char *out_path, const json_t *command_line, json_t **summary,
                      xf_error *err);

#endif
