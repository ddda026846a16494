/* Statistics of one linear input's activations, accumulated over
 * calibration tokens: what a user looks at before choosing a quantization
 * scheme (how heavy the tails are, which channels carry outliers, how much
 * of the energy sits in a few channels).
 *
 * The input is seen as blocks x [rows, cols] (rows = tokens, cols =
 * channels = the linear's in-features), all accumulated in double:
 *   - per channel c: absmax_c = max |x[t, c]| and energy_c = sum x[t, c]^2;
 *   - the tensor: absmax = max_c absmax_c, and the mean and central moments
 *     of ALL values x[t, c] (n = tokens * cols of them), combined block by
 *     block with Pebay's pairwise update (each block's moments are taken
 *     about the block's own mean, in two passes), so that a large mean does
 *     not cancel the 4th moment as raw power sums would.
 *
 * Definitions (population moments, m_k = (1/n) sum (x - mean)^k):
 *   kurtosis = m_4 / m_2^2, Pearson's kurtosis, NOT excess: a Gaussian gives
 *     3, a uniform distribution 1.8, a Laplace 6. NaN when m_2 == 0.
 *   std = sqrt(m_2).
 *   top channels: the k channels with the largest absmax_c (ties: lower
 *     index first), each with absmax_c / median_c(absmax_c); the median of
 *     an even count is the mean of the two middle values; the ratio is
 *     NaN when the median is 0.
 *   top-1% energy share: with p = max(1, ceil(cols / 100)) channels ranked
 *     by energy_c, (sum of the p largest energy_c) / (sum of all energy_c);
 *     NaN when all energy is 0. Uniform channels give p / cols.
 * Non-finite values (a broken model) are counted and left out of every
 * statistic, so one Inf does not hide the rest.
 *
 * Accumulation is single-threaded and in a fixed order: the same blocks
 * give the same numbers whatever the thread count. */
#ifndef XF_CALIB_ACT_STATS_H
#define XF_CALIB_ACT_STATS_H

#include <jansson.h>
#include <stdint.h>

#include "core/error.h"

#define XF_ACT_STATS_DEFAULT_TOP 5

typedef struct xf_act_stats {
    int64_t cols;
    int64_t rows;        /* rows (tokens) accumulated */
    int64_t n;           /* finite values accumulated */
    int64_t n_nonfinite; /* NaN/Inf values skipped */
    double mean;         /* of the n values */
    double m2, m3, m4;   /* sums of (x - mean)^k over the n values */
    double *ch_absmax;   /* [cols] */
    double *ch_energy;   /* [cols] sum of x^2 */
} xf_act_stats;

/* One outlier channel. */
typedef struct xf_act_channel {
    int64_t channel;
    double absmax;
    double ratio_to_median; /* absmax / median channel absmax (NaN if that is 0) */
} xf_act_channel;

/* Owning; cols >= 1. `what` names the input in errors. */
int xf_act_stats_init(xf_act_stats *s, int64_t cols, const char *what, xf_error *err);
void xf_act_stats_free(xf_act_stats *s);

/* Adds a block x [rows, cols] row-major (cols must equal s->cols; rows may
 * be 0). Never fails. */
void xf_act_stats_add(xf_act_stats *s, const float *x, int64_t rows);

double xf_act_stats_absmax(const xf_act_stats *s);
double xf_act_stats_std(const xf_act_stats *s);
double xf_act_stats_kurtosis(const xf_act_stats *s);
double xf_act_stats_median_absmax(const xf_act_stats *s);
/* p = max(1, ceil(cols / 100)). */
int64_t xf_act_stats_top_pct_channels(int64_t cols);
double xf_act_stats_top_pct_energy_share(const xf_act_stats *s);
/* Writes the min(k, cols) channels of largest absmax, largest first, into
 * top[] (room for k); returns their count, or -1 on allocation failure. */
int64_t xf_act_stats_top(const xf_act_stats *s, int64_t k, xf_act_channel *top);

/* {"width", "tokens", "values", "nonfinite", "absmax", "mean", "std",
 *  "kurtosis", "median_channel_absmax", "top1pct_channels",
 *  "top1pct_energy_share", "top_channels": [{"channel", "absmax",
 *  "ratio_to_median"}, ... k of them]}; NaN values are null. NULL on
 * allocation failure. */
json_t *xf_act_stats_json(const xf_act_stats *s, int64_t k);

#endif
