/* GPTQ (Frantar et al. 2023) for one linear layer: W [rows, cols] with
 * out_features = rows and in_features = cols, Hessian H [cols, cols] of its
 * inputs (quant/weights/hessian.h). See docs/methods.md, "GPTQ".
 *
 * Two stages, so that layers sharing an input (q/k/v, gate/up) can share
 * the expensive O(cols^3) part:
 *   xf_gptq_factor_init: dead columns, act-order permutation, damping and
 *     the sweep's factor (fp64 LAPACK, then stored as fp32): one Cholesky
 *     factorization of H (see xf_gptq_factor);
 *   xf_gptq_solve_factored: the blocked column sweep on W (fp32, one
 *     cblas_sgemm per block for the columns right of the block; each OpenMP
 *     thread sweeps its own slice of rows, with OpenBLAS single-threaded
 *     for the duration of the call and restored afterwards).
 * xf_gptq_solve does both.
 *
 * Layout of the result (quant/weights/qweight.h):
 * - without act-order, or per-channel: codes in logical column order, no perm;
 * - act-order with static groups: grids fitted up front on the original
 *   (dead-zeroed) weights in groups of *logical* columns, as the reference
 *   does; act-order only changes the quantization order, so codes are stored
 *   in logical order and no perm is needed (the point of static groups);
 * - act-order with (non-static) groups: the "groups in quantization order"
 *   variant: storage column j = j-th quantized column, perm recorded (unless
 *   it is the identity), groups are runs of g columns in that order — what
 *   the reference computes with g_idx, stored contiguously. */
#ifndef XF_QUANT_WEIGHTS_GPTQ_H
#define XF_QUANT_WEIGHTS_GPTQ_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"
#include "quant/weights/ggml_grid.h"
#include "quant/weights/grid.h"
#include "quant/weights/qweight.h"

typedef struct xf_gptq_params {
    xf_grid_config grid; /* bits, sym, clip */
    int64_t group;       /* columns per group; <= 0 (-1): per channel */
    bool act_order;      /* quantize columns by descending diag(H) */
    bool static_groups;  /* fit all group grids before the sweep */
    double damp;         /* lambda = damp * mean(diag H); default 0.01 */
    int64_t block;       /* columns per lazy-update block; default 128 */
    double max_damp;     /* on failure damp is multiplied by 10 while it stays
                            <= max_damp (default 1.0: 0.01 -> 0.1 -> 1.0) */
    double outliers;     /* fraction 0..1 of the weights kept in fp16 (dense-and-sparse,
                            see xf_gptq_solve_factored); default 0 */
    const xf_ggml_grid_traits *ggml; /* solve on this GGML block grid (NULL: the uniform
                            grid; see xf_gptq_solve_factored) */
    bool inverse_factor; /* factorize as the reference, into U = chol(H^-1) (one more
                            n^3/3 triangular inverse; see xf_gptq_factor); default false
                            (then also taken for groups wider than 512 fitted in the sweep) */
    int64_t razor_group; /* > 0: QRazor's razor grid (quant/weights/razor_weights.h): each
                            row's 8-bit abs-max scale from the input W, grid.bits magnitude
                            bits kept per run of razor_group quantization positions, the
                            run's shift fitted on its current weights when the sweep enters
                            it (as group grids are); stored as 8-bit symmetric codes, one
                            scale per run (>= cols: one run per row). No static groups, GGML
                            grids or outliers. 0: off */
} xf_gptq_params;

/* 4 bits, asymmetric, per channel, no act-order, damp 0.01, block 128,
 * no clip, max_damp 1.0, no outliers. */
void xf_gptq_params_default(xf_gptq_params *p);

typedef struct xf_gptq_stats {
    double damp_used;     /* relative damp that succeeded */
    int retries;          /* factorization retries (0 = first damp worked) */
    int64_t dead_columns; /* columns with H_ii == 0 (weights zeroed) */
    double loss;          /* reference loss: sum (w - q)^2 / U_ii^2 / 2 */
    double qerr;          /* ||W - Q||^2 against the input W (dead columns included) */
    /* timings (seconds) of the last factor/solve and the trailing-update GEMM work */
    double seconds_factor, seconds_sweep, seconds_gemm;
    double gemm_flops;    /* 2 * rows * block * right_cols summed over blocks */
} xf_gptq_stats;

/* The factorized Hessian of one layer input. */
typedef struct xf_gptq_factor {
    int64_t n;            /* cols */
    bool act_order;
    int32_t *perm;        /* [n] quantization order: position i is column perm[i] */
    uint8_t *dead;        /* [n] by logical column */
    int64_t dead_columns;
    bool inverse;         /* the form of F: params.inverse_factor, or sweep-fitted
                             groups wider than 512 */
    float *F;             /* [n, n] row-major in quantization order, lower
                             triangle 0; the sweep uses its strict upper
                             triangle. With H_p = H (permuted, damped) =
                             Ut Ut^T, Ut upper, and U = Ut^-1 (H_p^-1 = U^T U,
                             the reference's U):
                             Cholesky form: F = -Ut diag(Ut)^-1;
                             inverse form: F = U */
    float *d;             /* [n] U_ii = 1 / Ut_ii (both forms): the GPTQ loss of
                             column i is ((w - q) / U_ii)^2 */
    double damp_used;
    int retries;
    double seconds;
} xf_gptq_factor;

/* H: fp64 [n, n], symmetric (only read). Uses p->act_order, p->damp,
 * p->max_damp and p->inverse_factor. The damped H is factorized with the
 * reverse-order Cholesky (H = Ut Ut^T, Ut upper: one dpotrf, n^3/3). The
 * Cholesky form stops there (F from Ut); the inverse form adds U = Ut^-1
 * (dtrtri, n^3/3 more), the same U as chol(inverse(chol(H)), upper) of the
 * reference at half its O(n^3) cost and without forming H^-1. A failed
 * dpotrf/dtrtri, a tiny pivot or a non-finite F retries with damp*10
 * (logged as a warning); past max_damp it fails naming `name`. */
int xf_gptq_factor_init(xf_gptq_factor *f, const double *H, int64_t n, const xf_gptq_params *p,
                        const char *name, xf_error *err);
void xf_gptq_factor_free(xf_gptq_factor *f);

/* W: fp32 [rows, f->n] row-major. On success W is overwritten with the
 * dequantized result Q (logical order; exactly what xf_qweight_dequantize
 * gives), *out holds the codes/grids (free with xf_qweight_free) and *st
 * (optional) the statistics. On failure W and *out are left untouched /
 * empty. p->act_order must match the factor's. Deterministic for a given
 * thread count.
 *
 * Outliers (p->outliers > 0, SpQR): before the sweep, every weight gets the
 * sensitivity ((w - dq(q(w))) / U_jj)^2 (U_jj: the diagonal of the factor at
 * its quantization position, so this is the GPTQ loss of quantizing it
 * alone), with the grids fitted on the original (dead-zeroed) weights in
 * the solve's group layout, plus for the range-setting weights the loss
 * the others save when the grid is fitted without them (the leave-one-out
 * criterion, xf_outliers_score_group); the round(outliers * rows * cols)
 * largest go to out->outliers. They are left out of every grid fit, and when the sweep
 * reaches one it is "quantized" to fp16 of its current value with error 0:
 * nothing is propagated from it (the fp16 rounding, < 2^-11 relative, is
 * not compensated, so 100 % outliers gives exactly fp16(W)); its code is the
 * group's zero point. Dead columns hold 0 (an outlier there stores 0).
 * With 0 outliers the result is bit-identical to the plain solve.
 *
 * GGML block grids (p->ggml): the groups are the type's blocks (32 or 256
 * columns; p->group and p->grid are not used, f->n must be a multiple of
 * the block). A block's grid (d/dmin and the integer sub-block scales and
 * mins, quant/weights/ggml_grid.h) is fitted when the sweep enters it, on the
 * already-updated weights, minimising sum_i (x_i - q_i)^2 / U_ii^2 (each
 * column's error weighted by its GPTQ loss weight); act-order only with
 * static groups (grids fitted up front on the original weights of each
 * logical block; GGUF has no column permutation). *out is a GGML-block
 * weight (out->ggml set) whose bytes dequantize in ggml to exactly the
 * returned W. Outliers are refused. */
int xf_gptq_solve_factored(float *W, int64_t rows, const xf_gptq_factor *f,
                           const xf_gptq_params *p, xf_qweight *out, xf_gptq_stats *st,
                           const char *name, xf_error *err);

/* factor_init + solve_factored + factor_free. */
int xf_gptq_solve(float *W, int64_t rows, int64_t cols, const double *H, const xf_gptq_params *p,
                  xf_qweight *out, xf_gptq_stats *st, const char *name, xf_error *err);

#endif
