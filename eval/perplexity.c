#include "eval/perplexity.h"

#include <math.h>
#include <omp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/nll.h"
#include "core/progress.h"

/* Most bytes of logits held for one group of windows. */
#define XF_PPL_GROUP_LOGIT_BYTES ((size_t)512 << 20)

/* Windows per thread in one group when the scorer leaves it open. */
#define XF_PPL_WINDOWS_PER_THREAD 8

/* Running sums of per-prediction NLLs (fp64) and per-window means. */
typedef struct nll_acc {
    double sum, sum_sq, sum_window_means;
    int64_t count, windows;
} nll_acc;

static void acc_window(nll_acc *a, const double *nll, int64_t n)
{
    double ws = 0.0;
    for (int64_t i = 0; i < n; i++) {
        ws += nll[i];
        a->sum_sq += nll[i] * nll[i];
    }
    a->sum += ws;
    a->sum_window_means += ws / (double)n;
    a->count += n;
    a->windows++;
}

static void acc_finish(const nll_acc *a, const xf_window_plan *plan, int64_t n_tokens,
                       double seconds, xf_ppl_result *r)
{
    memset(r, 0, sizeof *r);
    double mean = a->sum / (double)a->count;
    r->mean_nll = plan->protocol == XF_PROTOCOL_GPTQ ? a->sum_window_means / (double)a->windows
                                                      : mean;
    r->ppl = exp(r->mean_nll);
    double var = a->sum_sq / (double)a->count - mean * mean;
    r->ppl_stderr = (var > 0 && a->count > 1) ? r->ppl * sqrt(var / (double)(a->count - 1)) : 0.0;
    r->n_tokens = n_tokens;
    r->n_windows = a->windows;
    r->seqlen = plan->seqlen;
    r->n_scored = a->count;
    r->seconds = seconds;
    r->tokens_per_second = seconds > 0 ? (double)(a->windows * plan->seqlen) / seconds : 0.0;
}

static int check_finite(const float *logits, int64_t n, xf_error *err)
{
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(logits[i]))
            return xf_fail(err, "the model produced a non-finite logit (NaN/Inf)");
    return 0;
}

/* NLL of the ns scored predictions of each of nb windows, nll [nb, ns]:
 * window b's logits are rows first_row.. of its positions (logits
 * [nb, T - first_row, V]). Rows are independent (each a fp64 log-sum-exp of
 * its own), so spreading them over threads changes no byte. */
static void window_nlls(const xf_window_plan *plan, const int32_t *win, int64_t nb,
                        int64_t first_row, const float *logits, int64_t V, double *nll)
{
    const int64_t T = plan->seqlen, ns = xf_window_scored(plan), rows = nb * ns;
    const int64_t per = (T - first_row) * V;
#pragma omp parallel for schedule(static) if (rows * V >= ((int64_t)1 << 20))
    for (int64_t k = 0; k < rows; k++) {
        const int64_t b = k / ns, pos = plan->first_scored + k % ns;
        nll[k] = xf_nll_row(logits + b * per + (pos - first_row) * V, V, win[b * T + pos + 1]);
    }
}

int xf_perplexity_run(const xf_scorer *model, const int32_t *tokens, int64_t n_tokens,
                      const xf_window_plan *plan, xf_ppl_result *res, xf_error *err)
{
    const int64_t T = plan->seqlen, V = model->vocab, ns = xf_window_scored(plan);
    /* windows_fn: groups of windows, logits of the scored rows only */
    const bool grouped = model->windows_fn != NULL;
    const int64_t first_row = grouped ? plan->first_scored : 0;
    const size_t per = (size_t)(T - first_row) * (size_t)V;
    int64_t group = 1;
    if (grouped) {
        /* several windows per thread: the threads meet once per group, and
         * a thread slowed down by other load delays the others less */
        group = model->max_windows > 0 ? model->max_windows
                                       : XF_PPL_WINDOWS_PER_THREAD * omp_get_max_threads();
        /* the logits of a group stay within XF_PPL_GROUP_LOGIT_BYTES */
        int64_t fit = (int64_t)(XF_PPL_GROUP_LOGIT_BYTES / (per * sizeof(float)));
        if (group > fit)
            group = fit;
        if (group < 1)
            group = 1;
    }
    int32_t *win = malloc((size_t)(group * T) * sizeof *win);
    float *logits = malloc((size_t)group * per * sizeof *logits);
    double *nll = malloc((size_t)(group * ns) * sizeof *nll);
    if (!win || !logits || !nll) {
        free(win);
        free(logits);
        free(nll);
        return xf_fail(err, "out of memory for %lld x %lld x %lld logits", (long long)group,
                       (long long)T, (long long)V);
    }
    nll_acc acc = {0};
    xf_progress prog;
    xf_progress_init(&prog, "ppl: window");
    int rc = 0;
    for (int64_t w0 = 0; w0 < plan->n_windows && rc == 0; w0 += group) {
        const int64_t nb = plan->n_windows - w0 < group ? plan->n_windows - w0 : group;
        for (int64_t b = 0; b < nb; b++)
            xf_window_tokens(plan, tokens, w0 + b, win + b * T);
        int frc = grouped ? model->windows_fn(model->user, win, nb, T, first_row, logits, err)
                          : model->fn(model->user, win, T, logits, err);
        if (frc != 0 || check_finite(logits, (int64_t)((size_t)nb * per), err) != 0) {
            rc = -1;
            break;
        }
        window_nlls(plan, win, nb, first_row, logits, V, nll);
        for (int64_t b = 0; b < nb; b++) {
            acc_window(&acc, nll + b * ns, ns);
            char extra[64];
            snprintf(extra, sizeof extra, " ppl %.4f",
                     exp(acc.sum_window_means / (double)acc.windows));
            xf_progress_update(&prog, w0 + b + 1, plan->n_windows, (w0 + b + 1) * T, extra);
        }
    }
    xf_progress_finish(&prog);
    if (rc == 0)
        acc_finish(&acc, plan, n_tokens, xf_now_seconds() - prog.t_start, res);
    free(win);
    free(logits);
    free(nll);
    return rc;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted values. */
static double percentile(const double *sorted, int64_t n, double q)
{
    if (n == 0)
        return 0.0;
    int64_t k = (int64_t)ceil(q * (double)n) - 1;
    if (k < 0)
        k = 0;
    if (k >= n)
        k = n - 1;
    return sorted[k];
}

int xf_kld_run(const xf_scorer *base, const xf_scorer *model, const int32_t *tokens,
               int64_t n_tokens, const xf_window_plan *plan, xf_kld_result *res, xf_error *err)
{
    if (base->vocab != model->vocab)
        return xf_fail(err, "the models have different vocabularies (%lld vs %lld tokens)",
                       (long long)base->vocab, (long long)model->vocab);
    int64_t T = plan->seqlen, V = base->vocab, ns = xf_window_scored(plan);
    int64_t total = ns * plan->n_windows;
    int32_t *win = malloc((size_t)T * sizeof *win);
    float *lb = malloc((size_t)T * (size_t)V * sizeof *lb);
    float *lm = malloc((size_t)T * (size_t)V * sizeof *lm);
    double *nb = malloc((size_t)ns * sizeof *nb), *nm = malloc((size_t)ns * sizeof *nm);
    double *kl = malloc((size_t)total * sizeof *kl);
    int rc = 0;
    if (!win || !lb || !lm || !nb || !nm || !kl) {
        rc = xf_fail(err, "out of memory for KL divergence over %lld positions", (long long)total);
        goto out;
    }
    nll_acc ab = {0}, am = {0};
    int64_t same = 0, k = 0;
    double kl_sum = 0.0;
    xf_progress prog;
    xf_progress_init(&prog, "kld: window");
    for (int64_t w = 0; w < plan->n_windows; w++) {
        xf_window_tokens(plan, tokens, w, win);
        if (base->fn(base->user, win, T, lb, err) != 0 || check_finite(lb, T * V, err) != 0 ||
            model->fn(model->user, win, T, lm, err) != 0 || check_finite(lm, T * V, err) != 0) {
            rc = -1;
            break;
        }
        for (int64_t i = 0; i < ns; i++) {
            int64_t pos = plan->first_scored + i;
            xf_kl_row r = xf_kl_row_compute(lb + pos * V, lm + pos * V, V, win[pos + 1]);
            nb[i] = r.nll_base;
            nm[i] = r.nll_model;
            kl[k++] = r.kl;
            kl_sum += r.kl;
            same += r.same_top1;
        }
        acc_window(&ab, nb, ns);
        acc_window(&am, nm, ns);
        xf_progress_update(&prog, w + 1, plan->n_windows, (w + 1) * T, NULL);
    }
    xf_progress_finish(&prog);
    if (rc != 0)
        goto out;
    double secs = xf_now_seconds() - prog.t_start;
    memset(res, 0, sizeof *res);
    acc_finish(&ab, plan, n_tokens, secs, &res->base);
    acc_finish(&am, plan, n_tokens, secs, &res->model);
    qsort(kl, (size_t)k, sizeof *kl, cmp_double);
    res->n_scored = k;
    res->kl_mean = kl_sum / (double)k;
    res->kl_median = percentile(kl, k, 0.5);
    res->kl_p99 = percentile(kl, k, 0.99);
    res->kl_p999 = percentile(kl, k, 0.999);
    res->kl_max = kl[k - 1];
    res->same_top1 = (double)same / (double)k;
out:
    free(win);
    free(lb);
    free(lm);
    free(nb);
    free(nm);
    free(kl);
    return rc;
}
