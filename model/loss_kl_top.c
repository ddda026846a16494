/* OstQuant's KL-Top loss (model/backward.h): the KL divergence between the
 * full-precision and the quantized model's next-token distributions
 * restricted to the full-precision model's k most likely tokens (both
 * renormalised over those k), so that the long tail of near-zero
 * probabilities, mostly noise on a small calibration set, does not steer
 * the learning. */
#include "model/backward.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void xf_kl_top_reference(const float *ref_logits, int64_t T, int64_t V, int64_t k, int32_t *idx,
                         float *logp)
{
    for (int64_t t = 0; t < T; t++) {
        const float *z = ref_logits + t * V;
        int32_t *ix = idx + t * k;
        /* insertion into a sorted top-k (descending; ties: lower id first) */
        int64_t n = 0;
        for (int64_t v = 0; v < V; v++) {
            if (n == k && !(z[v] > z[ix[k - 1]]))
                continue;
            int64_t p = n < k ? n++ : k - 1;
            while (p > 0 && z[v] > z[ix[p - 1]]) {
                ix[p] = ix[p - 1];
                p--;
            }
            ix[p] = (int32_t)v;
        }
        double mx = z[ix[0]], s = 0.0;
        for (int64_t i = 0; i < k; i++)
            s += exp((double)z[ix[i]] - mx);
        const double lse = mx + log(s);
        for (int64_t i = 0; i < k; i++)
            logp[t * k + i] = (float)((double)z[ix[i]] - lse);
    }
}

void xf_loss_kl_top(const float *logits, const int32_t *idx, const float *logp, int64_t T,
                    int64_t V, int64_t k, double scale, double *loss, float *dlogits)
{
    memset(dlogits, 0, (size_t)(T * V) * sizeof *dlogits);
    for (int64_t t = 0; t < T; t++) {
        const float *z = logits + t * V;
        const int32_t *ix = idx + t * k;
        double mx = -INFINITY, s = 0.0;
        for (int64_t i = 0; i < k; i++)
            if (z[ix[i]] > mx)
                mx = z[ix[i]];
        for (int64_t i = 0; i < k; i++)
            s += exp((double)z[ix[i]] - mx);
        const double lse = mx + log(s);
        double kl = 0.0;
        for (int64_t i = 0; i < k; i++) {
            const double lp = logp[t * k + i], p = exp(lp);
            const double lq = (double)z[ix[i]] - lse;
            kl += p * (lp - lq);
            dlogits[t * V + ix[i]] = (float)(scale * (exp(lq) - p));
        }
        *loss += scale * kl;
    }
}
