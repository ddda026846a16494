/* Converting every tensor a reader accepted to fp32 (the path the model
 * loader and the quantizers take), with the total bounded so that one
 * input costs milliseconds. Shared by the safetensors and .xfq harnesses. */
#ifndef XF_TESTS_FUZZ_TENSORS_H
#define XF_TESTS_FUZZ_TENSORS_H

#include <stdlib.h>

#include "formats/tensor.h"
#include "tests/fuzz/fuzz_util.h"

/* Elements converted per tensor at most (larger tensors: first row only). */
#define XF_FUZZ_MAX_CONVERT (1 << 16)

static inline void xf_fuzz_convert_tensor(const xf_tensor *t)
{
    if (!xf_dtype_is_float(t->dtype) && !xf_dtype_is_packed(t->dtype) &&
        !xf_dtype_is_ggml(t->dtype))
        return;
    xf_error err = {0};
    int64_t n = xf_tensor_numel(t);
    if (n > 0 && n <= XF_FUZZ_MAX_CONVERT) {
        float *dst = malloc((size_t)n * sizeof *dst);
        if (dst && xf_tensor_to_f32(t, dst, &err) != 0)
            xf_fuzz_check_error(&err, "xf_tensor_to_f32");
        free(dst);
    }
    if (t->ndim == 2 && t->shape[0] > 0 && t->shape[1] > 0 && t->shape[1] <= XF_FUZZ_MAX_CONVERT) {
        float *row = malloc((size_t)t->shape[1] * sizeof *row);
        if (row && xf_tensor_row_to_f32(t, t->shape[0] - 1, row, &err) != 0)
            xf_fuzz_check_error(&err, "xf_tensor_row_to_f32");
        free(row);
    }
}

#endif
