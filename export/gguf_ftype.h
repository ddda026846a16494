/* GGUF file types (llama-quantize's Q4_K_M, Q3_K_S, IQ4_XS, ...) and the
 * GGML type llama-quantize gives each tensor of a model for one of them, so
 * that xfquant can quantize straight onto llama.cpp's block types and
 * produce a file of the same tensor types (and data size) as
 * `llama-quantize IN.gguf OUT.gguf FTYPE` without an imatrix (or with one,
 * imatrix = true). The rules are written from reading llama.cpp's
 * src/llama-quant.cpp; docs/export.md ("File types: which GGML type each
 * tensor gets") states every one of them and where it comes from, and the
 * interop suite (tests/interop/gguf_ftype.sh) checks them against
 * llama-quantize itself. Dense models of the architectures xfquant exports
 * (llama/mistral, qwen2, gpt2); MoE and other architectures have rules this
 * does not model. */
#ifndef XF_EXPORT_GGUF_FTYPE_H
#define XF_EXPORT_GGUF_FTYPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef enum xf_gguf_ftype {
    XF_GGUF_FTYPE_Q4_0 = 0,
    XF_GGUF_FTYPE_Q4_1,
    XF_GGUF_FTYPE_Q5_0,
    XF_GGUF_FTYPE_Q5_1,
    XF_GGUF_FTYPE_Q8_0,
    XF_GGUF_FTYPE_Q2_K,
    XF_GGUF_FTYPE_Q3_K_S,
    XF_GGUF_FTYPE_Q3_K_M,
    XF_GGUF_FTYPE_Q3_K_L,
    XF_GGUF_FTYPE_Q4_K_S,
    XF_GGUF_FTYPE_Q4_K_M,
    XF_GGUF_FTYPE_Q5_K_S,
    XF_GGUF_FTYPE_Q5_K_M,
    XF_GGUF_FTYPE_Q6_K,
    XF_GGUF_FTYPE_IQ4_NL,
    XF_GGUF_FTYPE_IQ4_XS,
    XF_GGUF_FTYPE_COUNT
} xf_gguf_ftype;

/* llama-quantize's name, case-insensitive ("q4_k_m"); also its aliases
 * Q3_K (= Q3_K_M), Q4_K (= Q4_K_M), Q5_K (= Q5_K_M). -1 for any other
 * name (including file types llama-quantize has but xfquant does not
 * plan: the IQ1/IQ2/IQ3 types, Q2_K_S, TQ*, MXFP4, F16/BF16/F32). */
int xf_gguf_ftype_from_name(const char *name, xf_gguf_ftype *out);
/* Canonical name ("Q4_K_M"); "?" for a value outside the enum. */
const char *xf_gguf_ftype_name(xf_gguf_ftype ft);
/* The general.file_type llama-quantize writes (llama.h's
 * LLAMA_FTYPE_MOSTLY_*: Q4_0 = 2, Q4_K_M = 15, IQ4_XS = 30, ...); 0 for a
 * value outside the enum. */
uint32_t xf_gguf_ftype_llama_id(xf_gguf_ftype ft);
/* The file type's default tensor type (xf_ggml_type): the one every
 * quantized tensor gets unless a rule says otherwise (Q4_K for Q4_K_M). */
uint32_t xf_gguf_ftype_default_type(xf_gguf_ftype ft);

/* The llama.cpp architectures whose rules are modelled. */
typedef enum xf_gguf_arch {
    XF_GGUF_ARCH_LLAMA = 0, /* "llama" (also what xfquant writes for mistral) */
    XF_GGUF_ARCH_QWEN2,     /* "qwen2" */
    XF_GGUF_ARCH_GPT2,      /* "gpt2" */
} xf_gguf_arch;

/* general.architecture -> arch; -1 for any other. */
int xf_gguf_arch_from_name(const char *name, xf_gguf_arch *out);

/* The hyper-parameters the rules read (GGUF keys as llama.cpp reads them). */
typedef struct xf_gguf_model_desc {
    xf_gguf_arch arch;
    int n_layer;   /* {arch}.block_count */
    int n_head;    /* {arch}.attention.head_count */
    int n_head_kv; /* {arch}.attention.head_count_kv; 0: absent (= n_head) */
    bool imatrix;  /* llama-quantize was given an --imatrix (changes Q4_0,
                      Q5_0, IQ4_NL, IQ4_XS rules; no tensor is refused) */
} xf_gguf_model_desc;

/* One tensor as llama-quantize sees it: GGUF name ("blk.3.attn_v.weight",
 * "token_embd.weight", "output.weight"), ne[0] = row length (in_features),
 * ne[1] = rows; dims from ndim on are taken as 1. type: its xf_ggml_type in
 * the input file (0 = F32, 1 = F16, 30 = BF16), which the tensors
 * llama-quantize does not quantize keep. */
typedef struct xf_gguf_tensor_desc {
    const char *name;
    int ndim;
    int64_t ne[4];
    uint32_t type;
} xf_gguf_tensor_desc;

/* types[i] = the xf_ggml_type llama-quantize gives t[i] for file type ft:
 *  - tensors it does not quantize (fewer than 2 dimensions with more than
 *    one element, names not ending in "weight", norms, position_embd, ...)
 *    keep t[i].type (for xfquant's F16 export: norms F32, everything else
 *    quantized);
 *  - the others get ft's rules (output / tied token_embd, attn_v, ffn_down,
 *    attn_output, the layer counters), then the fallback for a row length
 *    the block size does not divide; F16 when even the fallback's does not.
 * t may be in any order: llama-quantize visits the tensors in its own order
 * (xf_gguf_quantize_order_cmp), which the layer counters follow, and this
 * does the same. A model with no "output.weight" has tied embeddings:
 * "token_embd.weight" then gets the output rule. Fails (one line naming the
 * tensor) where llama-quantize refuses the file: a row length no type of
 * the rules' chain can hold (e.g. 172 under Q4_0, which has no fallback),
 * and a duplicate name; also for a bad desc (ndim, ne, name, n_layer). The
 * first failing tensor in llama-quantize's order is the one named. */
int xf_gguf_ftype_plan(xf_gguf_ftype ft, const xf_gguf_model_desc *m,
                       const xf_gguf_tensor_desc *t, size_t n, uint32_t *types, xf_error *err);

/* Whether llama-quantize quantizes a tensor at all (for any quantized file
 * type, default options); the others are copied with their type. */
bool xf_gguf_tensor_is_quantizable(const xf_gguf_tensor_desc *t);

/* llama-quantize's visiting order (its model loader's sorted tensor map):
 * by layer number (the integer after "blk."; -1 for names without it, so
 * token_embd / output / output_norm come first), then by name, byte-wise.
 * <0, 0, >0 like strcmp. */
int xf_gguf_quantize_order_cmp(const char *a, const char *b);

#endif
