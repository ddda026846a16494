/* A deliberately naive, scalar reference of the transformer forward pass
 * (llama family, OPT pre/post-LN, GPT-2), written straight from the Hugging
 * Face definitions: plain loops, double accumulation, no BLAS, no caching.
 * Reference for tests/test_forward.c and the baseline of
 * bench/bench_forward.c. */
#ifndef XF_TEST_NAIVE_FORWARD_H
#define XF_TEST_NAIVE_FORWARD_H

#include <stdint.h>

#include "core/error.h"
#include "model/weights.h"

/* logits [T, vocab] for tokens at positions 0..T-1. */
int xf_naive_forward(const xf_model_weights *mw, const int32_t *tokens, int64_t T, float *logits,
                     xf_error *err);

#endif
