#include "eval/nll.h"

#include <math.h>
#include <stddef.h>

static double log_sum_exp(const float *x, int64_t n, double *max_out, int64_t *argmax)
{
    double m = -INFINITY;
    int64_t am = 0;
    for (int64_t i = 0; i < n; i++)
        if (x[i] > m) {
            m = x[i];
            am = i;
        }
    double s = 0.0;
    for (int64_t i = 0; i < n; i++)
        s += exp((double)x[i] - m);
    if (max_out)
        *max_out = m;
    if (argmax)
        *argmax = am;
    return m + log(s);
}

double xf_nll_row(const float *logits, int64_t vocab, int32_t target)
{
    return log_sum_exp(logits, vocab, NULL, NULL) - (double)logits[target];
}

xf_kl_row xf_kl_row_compute(const float *base, const float *model, int64_t vocab, int32_t target)
{
    int64_t am_b, am_m;
    double lse_b = log_sum_exp(base, vocab, NULL, &am_b);
    double lse_m = log_sum_exp(model, vocab, NULL, &am_m);
    double kl = 0.0;
    for (int64_t i = 0; i < vocab; i++) {
        double lp_b = (double)base[i] - lse_b;
        double lp_m = (double)model[i] - lse_m;
        kl += exp(lp_b) * (lp_b - lp_m);
    }
    xf_kl_row r;
    /* KL is >= 0 mathematically; rounding can give -1e-17 for identical rows */
    r.kl = kl > 0.0 ? kl : 0.0;
    r.nll_base = lse_b - (double)base[target];
    r.nll_model = lse_m - (double)model[target];
    r.same_top1 = am_b == am_m;
    return r;
}
