/* An independent fp64 forward of a llama-family model written straight
 * from the HF definition (plain loops, no BLAS), returning the summed
 * next-token cross-entropy: the reference whose central differences
 * tests/test_backward.c, tests/test_e2e_rotation.c and tests/test_ost.c check the backward
 * pass and the rotation gradients against. Parameters are plain fp64
 * arrays the tests perturb. */
#ifndef XF_TEST_REF_LLAMA_H
#define XF_TEST_REF_LLAMA_H

#include <stdbool.h>
#include <stdint.h>

#include "model/config.h"
#include "model/linear_inputs.h"

#define XF_REF_MAX_LAYERS 8

typedef struct xf_ref_llama {
    const xf_model_config *c;
    /* [out, in] per linear; norms [hidden]; head [vocab, hidden]; embed
     * [vocab, hidden] */
    double *w[XF_REF_MAX_LAYERS][XF_LIN_COUNT], *an[XF_REF_MAX_LAYERS], *mn[XF_REF_MAX_LAYERS];
    double *head, *norm, *embed;
    double *had; /* [I, I]: the down input is multiplied by it (x -> x had), or NULL */
    double *had_qk; /* [d, d]: every head of Q and K after RoPE times it (R3), or NULL */
} xf_ref_llama;

/* An fp64 copy of x [n] (the caller frees it; aborts when out of memory:
 * test support). */
double *xf_ref_to64(const float *x, int64_t n);

/* C [m, n] = op(A) [m, k] op(B) [k, n], row-major fp64 with leading dims;
 * ta / tb: A / B stored transposed. Plain loops, the references' product. */
void xf_ref_mm64(const double *A, int64_t lda, bool ta, const double *B, int64_t ldb, bool tb,
                 double *C, int64_t ldc, int64_t m, int64_t n, int64_t k);

/* Sum over positions 0..T-2 of -log p(tok[t+1]). */
double xf_ref_llama_loss(const xf_ref_llama *r, const int32_t *tok, int64_t T);

#endif
