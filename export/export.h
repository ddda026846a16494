/* Export of a model (an .xfq, or an fp HF directory) to the files other
 * engines load. One function per target, all with the same signature, in
 * one table (xf_export_targets): `xfquant export --to NAME` looks the name
 * up there, so a new target is one line in export/export.c. Every target
 * checks everything it can before it writes, writes atomically, and fills
 * a JSON summary (docs/cli.md, "export"). docs/export.md says what each
 * target holds exactly, approximately, or refuses. */
#ifndef XF_EXPORT_EXPORT_H
#define XF_EXPORT_EXPORT_H

#include <jansson.h>
#include <stdbool.h>

#include "core/error.h"
#include "export/gguf_blocks.h"
#include "formats/ggml_types.h"
#include "model/weights.h"

typedef enum xf_export_float {
    XF_EXPORT_FLOAT_KEEP = 0, /* unquantized 2-D tensors keep their dtype (F64 -> F32) */
    XF_EXPORT_FLOAT_F16,
    XF_EXPORT_FLOAT_F32,
    XF_EXPORT_FLOAT_BF16,
} xf_export_float;

typedef enum xf_export_fallback {
    XF_EXPORT_FALLBACK_NONE = 0, /* refuse them */
    XF_EXPORT_FALLBACK_F16,      /* F16, as llama-quantize does (rounded) */
    XF_EXPORT_FALLBACK_F32,      /* F32 (exact) */
} xf_export_fallback;

/* How GPTQ zero points are stored (docs/export.md, "GPTQ checkpoints"). */
typedef enum xf_gptq_zero_format {
    XF_GPTQ_ZEROS_AUTO = 0, /* v1 ("gptq") when every zero point is >= 1, else v2 */
    XF_GPTQ_ZEROS_V1,       /* "gptq": stored z - 1 (refused when some z = 0) */
    XF_GPTQ_ZEROS_V2,       /* "gptq_v2": stored z */
} xf_gptq_zero_format;

typedef struct xf_export_opts {
    xf_export_float float_type; /* --type */
    xf_gguf_asym gguf_asym;     /* --gguf-asym */
    xf_export_fallback fallback; /* --fallback: packed tensors with no block type */
    bool weights_only;          /* --weights-only: export despite an activation scheme /
                                   online transforms, recording the omission */
    bool progress;              /* TTY progress line */
    xf_gptq_zero_format gptq_zeros; /* --gptq-format */
} xf_export_opts;

/* in: .xfq file or HF directory; out: the target's file or directory.
 * *summary (new reference) is set on success. */
typedef int (*xf_export_fn)(const char *in, const char *out, const xf_export_opts *opts,
                            json_t **summary, xf_error *err);

typedef struct xf_export_target {
    const char *name;  /* --to NAME */
    xf_export_fn run;
    const char *what;  /* one line for --help */
} xf_export_target;

extern const xf_export_target xf_export_targets[];
extern const int xf_export_n_targets;
/* The target called name, or NULL. */
const xf_export_target *xf_export_find(const char *name);

/* One tensor of the GGUF a model exports to, in the order the exporter
 * writes them (the order llama-quantize visits them): its llama.cpp name,
 * its source tensor and its GGUF shape (ne[0] = row length, ne[1] = rows;
 * 1-D: ndim 1, ne[1] = 1). */
typedef struct xf_gguf_tensor_ref {
    char name[XF_GGUF_MAX_NAME];
    const xf_tensor *src;
    int ndim;
    int64_t ne[2];
} xf_gguf_tensor_ref;

/* The GGUF tensor list of mw (*out: malloc'ed, *n entries). */
int xf_gguf_model_tensors(const xf_model_weights *mw, xf_gguf_tensor_ref **out, size_t *n,
                          xf_error *err);

/* GGUF v3 for llama.cpp / ollama (export/gguf_export.c). */
int xf_export_gguf(const char *in, const char *out, const xf_export_opts *opts,
                   json_t **summary, xf_error *err);

#endif
