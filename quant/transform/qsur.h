/* Quantization space utilisation (QSUR; OstQuant, Hu et al., ICLR 2025;
 * docs/methods.md "QSUR"): how much of the hypercube a quantizer's range
 * must span is filled by the data. For activations x in R^d with mean mu
 * and covariance Sigma = Q diag(lambda) Q^T, taken as Gaussian:
 *
 *   the data: the ellipsoid (x - mu)^T Sigma^-1 (x - mu) <= chi2, of volume
 *     V_X = pi^(d/2) / Gamma(d/2 + 1) * chi2^(d/2) * prod_i sqrt(lambda_i);
 *   the quantization space: the cube one range shared by all channels
 *     (per-token / per-tensor) must cover to hold that ellipsoid, whose
 *     extent along channel j is mu_j +- sqrt(chi2 * Sigma_jj):
 *     V_S = (max_j (mu_j + sqrt(chi2 Sigma_jj)) - min_j (mu_j - sqrt(chi2 Sigma_jj)))^d;
 *   QSUR = V_X / V_S.
 *
 * chi2 is the alpha = 0.99 quantile of the chi-square distribution with d
 * degrees of freedom (Wilson-Hilferty: d (1 - 2/(9d) + z sqrt(2/(9d)))^3,
 * z = Phi^-1(0.99)); for mu = 0 it cancels and
 *   QSUR = pi^(d/2) / (2^d Gamma(d/2 + 1)) * prod sqrt(lambda_i) / max_j Sigma_jj^(d/2),
 * largest (the ball in its cube) when Sigma is a multiple of I: rotations
 * keep prod lambda and lower max_j Sigma_jj toward the mean eigenvalue,
 * smoothing rescales the channels. Everything in fp64, as logarithms: the
 * ratio itself underflows for widths of a few hundred (a 64-wide ball fills
 * 1e-40 of its cube), so the report gives log10 QSUR and QSUR^(1/d), the
 * per-dimension utilisation, comparable across widths. */
#ifndef XF_QUANT_TRANSFORM_QSUR_H
#define XF_QUANT_TRANSFORM_QSUR_H

#include <stdint.h>

#include "core/error.h"

#define XF_QSUR_Z 2.3263478740408408 /* Phi^-1(0.99) */

typedef struct xf_qsur {
    double log10;    /* log10 QSUR; -inf when Sigma is singular (an eigenvalue <= 0) */
    double root;     /* QSUR^(1/d); 0 when singular */
    double chi2;     /* the ellipsoid's squared radius */
    double min_eig, max_eig;
} xf_qsur;

/* chi2's 0.99 quantile for d degrees of freedom (Wilson-Hilferty). */
double xf_qsur_chi2(int64_t d);

/* mean [d], cov [d, d] (symmetric, full). */
int xf_qsur_compute(const double *mean, const double *cov, int64_t d, xf_qsur *out,
                    xf_error *err);

#endif
