/* Learned rotations (SpinQuant's R1 / R2): an orthogonal R optimised on the
 * Stiefel manifold with Cayley SGD so that the fake-quantized layers that
 * read the rotated space reproduce their full-precision outputs. See
 * docs/methods.md ("SpinQuant"). This module is the optimiser
 * only: capturing the activations and fusing R into the weights are the
 * caller's job.
 *
 * ---- the objective ----
 * R is n x n (fp64, row-major) and acts on rows from the right, like the
 * Hadamard transforms (sim/hadamard.h): activations X become X R, weights
 * W [out, n] become W R, so (X R)(W R)^T = X W^T for orthogonal R. A term t
 * is one linear layer reading the rotated space: captured inputs X_t
 * [N_t, width_t] (rows = tokens, in the UN-rotated basis), its weight W_t
 * [out_t, width_t] and its quantizers. width_t is n (R1: one rotation of
 * the whole width) or k * n: then R is applied block-diagonally,
 * diag(R, ..., R), to each of the k consecutive slices of n channels (R2:
 * a head_dim rotation applied identically to every head of o_proj's
 * input). With A = Q_a(X R) (per-token activation fake quantization,
 * xf_act_quant_row) and B = Q_w(W R) (RTN fake quantization per output row
 * and group, quant/weights/grid.h's xf_grid_fit, as quant/weights/rtn.h), the error of the
 * term is E = X W^T - A B^T and
 *
 *     L(R) = sum_t c_t ||E_t||_F^2 / N_t,   c_t = w_t / out_t       (MEAN)
 *                                           c_t = w_t / e_t      (RELATIVE)
 *
 * with e_t = ||X_t W_t^T||_F^2 / N_t (the mean energy of an output row,
 * measured once on all rows when the term is added). RELATIVE, the
 * default, is the output noise-to-signal ratio: it does not change when a
 * term's X or W is scaled (the quantizers are scale-equivariant), so a
 * late layer with 10x larger activations does not drown the others, and a
 * learning rate means the same thing whatever the model's scale. MEAN is
 * the plain mean squared output error of the issue, for callers that want
 * the layers weighted by their raw output scale. A minibatch of b_t rows
 * replaces N_t by b_t (the same estimator on fewer rows).
 *
 * ---- the gradient ----
 * The quantizers are piecewise constant, so the gradient is a
 * straight-through estimator (STE). Each fake-quantized value is modelled
 * as xq = x + s r, with its rounding residual r = (xq - x) / s (in steps)
 * held fixed; then dL/dA = -2 c E B / N, dL/dB = -2 c E^T A / N are pulled
 * back to X R and W R and
 *     G = dL/dR = X^T dL/d(XR) + W^T dL/d(WR)
 * (block-diagonal terms sum the k diagonal blocks: X and W are read as
 * [N k, n] and [out k, n]). Flags (xf_lrot_options.ste):
 *   none                 dA/d(XR) = dB/d(WR) = identity: the step s is a
 *                        constant (SpinQuant's STE, scale detached);
 *   XF_LROT_STE_SCALE    (default) s also follows the range it was fitted
 *                        on: s is proportional to max |x| of the group
 *                        (symmetric) or to max(x, 0) - min(x, 0) (not;
 *                        clip ratios and the fp16 rounding of weight
 *                        scales are constant factors), so sum(dL/dxq * r)
 *                        flows into the value(s) that set the range, as in
 *                        LSQ. Without it the gradient cannot see that
 *                        shrinking a token's largest value refines the
 *                        grid of all the others, which is the point of a
 *                        rotation: on the planted-outlier test, identity
 *                        STE from the randomized Hadamard ends above its
 *                        start at lr 1.5, this one 20% below;
 *   XF_LROT_STE_CLIP_MASK  activations the quantizer clamped (moved by
 *                        more than half a step: outside the clipped
 *                        range) pass no gradient to x (xq = s k with the
 *                        code k fixed), as the STE of a true clamp; off by
 *                        default (SpinQuant passes the gradient everywhere).
 * Weights never use the mask: the min/max RTN grid does not clamp (with
 * w_clip MSE the clamped weights still pass the gradient, and the chosen
 * shrink factor counts as a constant).
 * G is the exact gradient of the "frozen" objective in which r (and k)
 * are held at the current R (tests/test_learned_rotation.c checks every
 * variant against central differences of that, written out in fp64).
 *
 * ---- precision ----
 * The data-sized products (X R, W R, E, the gradient pieces) are fp32
 * SGEMMs: X and W are fp32 and the quantizers work in fp32, so fp64 there
 * would double the cost for digits the inputs do not have. Loss sums, R,
 * G after the SGEMMs and the Cayley update are fp64.
 *
 * ---- the optimiser ----
 * Cayley SGD (Li, Fuxin, Todorovic 2020, as SpinQuant): with the skew
 * matrix S = G R^T - R G^T and (optionally) momentum M <- mu M + S,
 *     R <- (I + eta M / 2)^-1 (I - eta M / 2) R,
 * solved directly (LAPACKE_dgesv) rather than with SpinQuant's fixed-point
 * loop, so R stays orthogonal to rounding. This is docs/methods.md's
 * retraction with G the negative gradient (SpinQuant's momentum buffer
 * holds -grad): to first order the step is R - eta S R and the loss falls
 * by eta ||S||^2 / 2. eta follows a cosine decay from lr to 0 over the run,
 * eta_s = lr (1 + cos(pi s / steps)) / 2, and is capped so that
 * eta ||M||_1 <= step_cap (SpinQuant's alpha = min(lr, 1 / ||W||_1)): the
 * Cayley step then rotates by at most 2 atan(step_cap / 2) whatever the
 * scale of the gradient. Momentum lives in the Lie algebra (skew
 * matrices), so it needs no transport between steps.
 * Minibatching: with batch_tokens > 0 each step uses min(batch_tokens, N_t)
 * rows of each term drawn without replacement from splitmix64(seed, step)
 * (terms with the same N_t get the same rows: q/k/v of the same tokens);
 * the same inputs, options and thread count give the same R bit for bit.
 * Every orth_every steps and at the end, ||R^T R - I||_max is measured and
 * R is re-orthogonalised (Newton-Schulz, the nearest orthogonal matrix)
 * when it exceeds orth_tol.
 *
 * Nothing here prints: progress goes to the callback. The problem holds
 * views of X and W: the caller keeps them alive and unchanged until
 * xf_lrot_problem_free. */
#ifndef XF_QUANT_TRANSFORM_ROTATION_LEARNING_H
#define XF_QUANT_TRANSFORM_ROTATION_LEARNING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "sim/act_quant.h"
#include "quant/weights/grid.h"

/* rows per SGEMM chunk: bounds the scratch memory; fixed (not derived from
 * the thread count) so the summation order never changes */
#define XF_LROT_CHUNK_ROWS 2048

/* Straight-through estimator variants (flags, see "the gradient"). */
#define XF_LROT_STE_SCALE 1u      /* the step follows the range it was fitted on */
#define XF_LROT_STE_CLIP_MASK 2u  /* clamped activations pass no gradient */

typedef enum xf_lrot_norm {
    XF_LROT_NORM_RELATIVE = 0, /* ||E||^2 / ||X W^T||^2 (default, see above) */
    XF_LROT_NORM_MEAN = 1,     /* ||E||^2 / (N out) */
} xf_lrot_norm;

/* "relative" / "mean"; parse: -1 if unknown. */
const char *xf_lrot_norm_name(xf_lrot_norm n);
int xf_lrot_norm_from_name(const char *name, xf_lrot_norm *out);

/* The quantizers of one term. */
typedef struct xf_lrot_quant {
    int act_bits;      /* 0 = off, else 2..16 (sim/act_quant.h) */
    bool act_sym;
    int64_t act_group; /* 0 = whole token row; else a divisor of width */
    float act_clip;    /* (0, 1] */
    int w_bits;        /* 0 = off, else 2..8 (quant/weights/grid.h) */
    bool w_sym;
    int64_t w_group;   /* columns per group; <= 0: one grid per output row */
    xf_clip w_clip;    /* XF_CLIP_NONE (RTN min/max, the default) or MSE */
} xf_lrot_quant;

/* Everything off (bits 0), symmetric, whole-row groups, clip 1. */
void xf_lrot_quant_default(xf_lrot_quant *q);
/* The quantizers a model run would use on input `in`: activations from the
 * scheme (off when s is NULL or `in` is not in s->act_inputs; the per-input clip), the
 * weights as given (w_bits 0: off; RTN min/max grid). */
void xf_lrot_quant_from_scheme(xf_lrot_quant *q, const xf_act_scheme *s, xf_lin_input in,
                               int w_bits, bool w_sym, int64_t w_group);

typedef struct xf_lrot_term {
    char name[64];   /* for messages, e.g. "layers.3.q" */
    const float *X;  /* [N, width] view */
    int64_t N;
    const float *W;  /* [out, width] view */
    int64_t out, width;
    xf_lrot_quant q;
    double weight;   /* w_t >= 0 */
    double energy;   /* e_t = ||X W^T||_F^2 / N (fp64) */
} xf_lrot_term;

typedef struct xf_lrot_problem {
    int64_t n;        /* R is n x n */
    xf_lrot_norm norm;
    xf_lrot_term *terms;
    int n_terms, cap;
} xf_lrot_problem;

int xf_lrot_problem_init(xf_lrot_problem *p, int64_t n, xf_lrot_norm norm, xf_error *err);
void xf_lrot_problem_free(xf_lrot_problem *p);

/* Adds a term (views, not copies). Linears reading the same input with the
 * same quantizers (q/k/v, gate/up) can be one term with their weights
 * stacked: X R and its quantization are then computed once per step. width must be a positive multiple of
 * p->n; X and W must be finite; q is range-checked (act_group must divide
 * width); weight finite and >= 0. Measures e_t (one pass over X W^T);
 * fails when it is 0 under RELATIVE. Errors name the term. */
int xf_lrot_add_term(xf_lrot_problem *p, const char *name, const float *X, int64_t N,
                     const float *W, int64_t out, int64_t width, const xf_lrot_quant *q,
                     double weight, xf_error *err);

/* Scratch buffers reused across evaluations (grow-only, so the optimiser's
 * steps reuse pages instead of faulting fresh ones in). */
#define XF_LROT_WORK_SLOTS 16
typedef struct xf_lrot_work {
    void *buf[XF_LROT_WORK_SLOTS];
    size_t cap[XF_LROT_WORK_SLOTS];
} xf_lrot_work;

void xf_lrot_work_init(xf_lrot_work *w);
void xf_lrot_work_free(xf_lrot_work *w);

/* Loss of the rows listed for each term, and the STE gradient G [n, n]
 * (ste: XF_LROT_STE_* flags) when G != NULL (overwritten). rows[t] holds nrows[t] distinct row indices
 * of term t in ascending order; rows == NULL means all rows of every term,
 * rows[t] == NULL all rows of term t.
 * term_loss (may be NULL) receives each term's contribution (n_terms
 * values). work: scratch to reuse (NULL: allocated and freed here). R need
 * not be orthogonal (the formulas do not assume it). Fails on a non-finite
 * R or product, or out of memory. */
int xf_lrot_eval(const xf_lrot_problem *p, const double *R, const int64_t *const *rows,
                 const int64_t *nrows, unsigned ste, xf_lrot_work *work, double *loss,
                 double *term_loss, double *G, xf_error *err);

/* L(R) on all rows (xf_lrot_eval without a gradient). */
int xf_lrot_loss(const xf_lrot_problem *p, const double *R, double *loss, xf_error *err);

typedef struct xf_lrot_options {
    int steps;             /* 100 (SpinQuant) */
    double lr;             /* 1.5 (SpinQuant), the peak of the cosine schedule */
    bool cosine;           /* true: cosine decay to 0; false: constant lr */
    double momentum;       /* mu in [0, 1); 0 */
    int64_t batch_tokens;  /* rows per term and step; 0 = all rows */
    uint64_t seed;         /* minibatch sampling */
    double step_cap;       /* max eta ||M||_1; 1 (SpinQuant); <= 0: no cap */
    unsigned ste;          /* XF_LROT_STE_* flags (see "the gradient");
                              XF_LROT_STE_SCALE */
    int orth_every;        /* steps between orthogonality checks; 10 */
    double orth_tol;       /* re-orthogonalise above this ||R^T R - I||_max;
                              1e-12; <= 0: never */
} xf_lrot_options;

void xf_lrot_options_default(xf_lrot_options *o);
/* Range checks, one line naming the field. */
int xf_lrot_options_check(const xf_lrot_options *o, xf_error *err);

/* Called once per step after the update: the minibatch loss at R before
 * the update and the step size eta actually used (after the cap). Return
 * non-zero to stop after this step (the report says how many ran). */
typedef int (*xf_lrot_progress)(void *user, int step, int steps, double loss, double eta);

typedef struct xf_lrot_report {
    double loss_initial;   /* L on all rows at the start R */
    double loss_final;     /* L on all rows at the returned R */
    int steps_run;
    int steps_capped;      /* steps where step_cap reduced eta */
    int reorthogonalized;  /* Newton-Schulz passes */
    double orth_error;     /* ||R^T R - I||_max of the returned R */
    double orth_drift_max; /* largest ||R^T R - I||_max seen at a check */
} xf_lrot_report;

/* Optimises R in place (in: the start, e.g. xf_hadamard_dense with a
 * seed; out: the learned rotation). The start must be orthogonal
 * (||R^T R - I||_max <= 1e-6). The returned R is the last iterate, not the
 * best one seen: compare rep->loss_final with rep->loss_initial to decide
 * whether to keep it. cb and rep may be NULL. On failure R holds the last
 * good iterate. */
int xf_lrot_optimize(const xf_lrot_problem *p, const xf_lrot_options *o, double *R,
                     xf_lrot_progress cb, void *user, xf_lrot_report *rep, xf_error *err);

/* One Cayley step of xf_lrot_optimize on R [n, n] given its gradient G
 * (another objective's, e.g. quant/transform/e2e_learn.c), without
 * momentum: eta = lr capped so that eta ||G R^T - R G^T||_1 <= step_cap
 * (<= 0: no cap); *eta_out (may be NULL) gets the eta used. */
int xf_lrot_cayley_step(double *R, const double *G, int64_t n, double lr, double step_cap,
                        double *eta_out, xf_error *err);
/* Newton-Schulz toward the nearest orthogonal matrix (as the optimiser's
 * upkeep); *orth_error = ||R^T R - I||_max afterwards. */
int xf_lrot_reorthogonalize(double *R, int64_t n, double *orth_error, xf_error *err);

/* ||R^T R - I||_max (largest entry by magnitude), fp64. -1 when out of memory. */
double xf_lrot_orth_error(const double *R, int64_t n);

#endif
