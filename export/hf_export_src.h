/* The .xfq being exported to a Hugging Face quantized checkpoint (GPTQ or
 * compressed-tensors): opened, checked for what such a checkpoint cannot
 * hold (refused before anything is written, one line each), its packed
 * linears listed, and its plain tensors converted back to the HF layout
 * and the model's dtype. Shared by export/gptq_ckpt.c and export/ct_ckpt.c. */
#ifndef XF_EXPORT_HF_EXPORT_SRC_H
#define XF_EXPORT_HF_EXPORT_SRC_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"
#include "export/export.h"
#include "model/loader.h"


/* One packed linear of the .xfq: W [N, K] = [out, in]. */
typedef struct xf_export_linear {
    const xf_tensor *t;
    char *module;   /* the tensor name without ".weight" */
    int bits;
    int64_t N, K;
    int64_t g;      /* columns per group; -1 when one group spans the row (per-channel) */
    int64_t G;      /* groups per row */
    bool asym, act_order;
} xf_export_linear;

/* A plain tensor as it goes into the checkpoint. */
typedef struct xf_export_plain {
    xf_tensor t;    /* HF name, layout and dtype; data owned when `owned` */
    void *owned;
    bool kept_dtype; /* not in the model's dtype: the conversion would not be exact */
} xf_export_plain;

typedef struct xf_export_src {
    xf_loaded_model m;
    const char *path;
    const json_t *recipe;       /* may be NULL */
    xf_dtype model_dtype;       /* config torch_dtype; INVALID when absent */
    xf_export_linear *lin;
    size_t n_lin;
    json_t *omitted;            /* array of strings: what --weights-only left out */
    json_t *linear_modules;     /* array: every linear module the model binds (HF names) */
} xf_export_src;

/* `target` names the format in messages ("GPTQ", "compressed-tensors"). */
int xf_export_src_open(xf_export_src *s, const char *path, const char *target,
                       const xf_export_opts *o, xf_error *err);
void xf_export_src_close(xf_export_src *s);

/* The plain (unquantized) tensors for the checkpoint: GPT-2 Conv1D weights
 * back to [in, out], every tensor in the model's dtype when that is exact
 * (else kept, flagged). *out is malloc'd; free with xf_export_plain_free. */
int xf_export_plain_tensors(const xf_export_src *s, xf_export_plain **out, size_t *n,
                            xf_error *err);
void xf_export_plain_free(xf_export_plain *p, size_t n);

/* Codes of row r of a packed linear in logical column order
 * (codes[i] for input column i), and the group of each logical column. */
int xf_export_row_codes(const xf_export_linear *l, int64_t r, uint8_t *storage_buf,
                        uint8_t *codes, xf_error *err);
void xf_export_group_index(const xf_export_linear *l, int32_t *g_idx);
/* Zero point of row r, group gi (2^(bits-1) when symmetric). */
int xf_export_zero(const xf_export_linear *l, int64_t r, int64_t gi);

/* config.json of the checkpoint: the model's config (the .xfq's copy) with
 * torch_dtype set and `quantization_config` (stolen). */
json_t *xf_export_config(const xf_export_src *s, json_t *quantization_config);
/* Writes tokenizer.json / tokenizer_config.json from the .xfq into dir. */
struct xf_hf_dir_out;
int xf_export_write_tokenizer(const xf_export_src *s, const struct xf_hf_dir_out *d,
                              json_t *files_written, xf_error *err);
/* The provenance file xfquant_export.json (engines ignore it): source
 * path, recipe, what was omitted and why. */
int xf_export_write_provenance(const xf_export_src *s, const struct xf_hf_dir_out *d,
                               const char *target, xf_error *err);

#endif
