/* The real executor of regression cases: quantizes the case's model with its
 * recipe (in-process, into a temporary .xfq), then measures perplexity (and
 * KL divergence from the unquantized model when the case wants it) with the
 * case's evaluation settings, exactly as `xfquant rtn|gptq` + `xfquant ppl`
 * would.
 *
 * GGUF cases (scorer llama-perplexity, method llama-quantize;
 * docs/regress.md "GGUF cases") work in a temporary directory of their own:
 * the model (fp16: F32; rtn/gptq: the .xfq) is exported to GGUF as
 * `xfquant export --to gguf` would, or llama-quantize makes the file from an
 * F32 export (after llama-imatrix on the calibration text), and
 * llama-perplexity scores it (regress/llamacpp.h). Without the
 * llama.cpp tools those cases are SKIPped with the reason. */
#ifndef XF_REGRESS_EXEC_H
#define XF_REGRESS_EXEC_H

#include "regress/run.h"

#include "regress/llamacpp.h"
#include "pipeline/quantize_model.h"

typedef struct xf_regress_exec_ctx {
    const char *tmpdir; /* where temporary .xfq files go (removed after each case) */
    bool progress;
    /* GGUF cases: the script printing llama.cpp's bin directory (NULL:
     * XF_LLAMACPP_BUILD_SCRIPT, relative to the working directory) unless
     * $XF_LLAMACPP_BIN names it; `tools` is filled on the first GGUF case
     * (zero-initialize it). */
    const char *llamacpp_build_script;
    xf_llamacpp_tools tools;
    /* The last quantized case's file, kept for the next case when that one
     * quantizes the same model with the same recipe (canonical recipe JSON:
     * pipeline/recipe_options.h) and differs only in its evaluation, e.g.
     * the two halves of a text: quantizing is deterministic, so the file
     * would be the same bytes. Such a case's "seconds" counts its
     * evaluation only. Zero-initialize; xf_regress_exec_ctx_free removes
     * the file. */
    char *reuse_key;       /* model path + recipe, or NULL */
    char *reuse_path;
    double reuse_bpw;
    int reused;            /* cases that reused a file (for tests and logs) */
} xf_regress_exec_ctx;

void xf_regress_exec_ctx_free(xf_regress_exec_ctx *ctx);

/* An xf_regress_executor; user = xf_regress_exec_ctx* (its `tools` is
 * written: not shared between threads). */
xf_regress_exec xf_regress_execute(const xf_regress_case *c, void *user, xf_regress_metrics *out,
                                   xf_error *why);

#endif
