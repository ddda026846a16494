/* GGML blocks -> fp32: one function per type of formats/ggml_types.h,
 * chosen through the traits table. The arithmetic is ggml's
 * dequantize_row_* (ggml/src/ggml-quants.c) operation for operation, in
 * fp32 and in the same order, so the results equal ggml's to the bit
 * (checked against libggml's to_float by the interop-read suite). */
#ifndef XF_FORMATS_GGML_DEQUANT_H
#define XF_FORMATS_GGML_DEQUANT_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "formats/ggml_types.h"

typedef void (*xf_ggml_to_f32_fn)(const void *src, float *dst, int64_t n);

/* The converter of a type handled by the traits table (every type of
 * xf_ggml_traits has one). */
xf_ggml_to_f32_fn xf_ggml_to_f32(const xf_ggml_type_traits *t);

/* Converts n elements (n a multiple of t's block size) starting at src,
 * which holds n / block_size blocks. `what` names the tensor in errors. */
int xf_ggml_dequant(const xf_ggml_type_traits *t, const void *src, float *dst, int64_t n,
                    const char *what, xf_error *err);

#endif
