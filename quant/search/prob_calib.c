/* Attention-probability sampling and log2 base calibration (prob_calib.h). */
#include "quant/search/prob_calib.h"

#include <math.h>
#include <stdlib.h>

#include "sim/act_hooks.h"
#include "sim/log2_quant.h"

typedef struct sampler {
    float *v;
    int64_t n, cap;
    int64_t stride, counter;
} sampler;

static int sample_probs(void *user, int layer, int64_t head, float *p, int64_t T_q, int64_t T_k,
                        xf_error *err)
{
    (void)layer;
    (void)head;
    (void)err;
    sampler *s = user;
    for (int64_t i = 0; i < T_q; i++) {
        const int64_t n = T_q == T_k ? i + 1 : T_k;
        for (int64_t j = 0; j < n; j++, s->counter++)
            if (s->counter % s->stride == 0 && s->n < s->cap)
                s->v[s->n++] = p[i * T_k + j];
    }
    return 0;
}

int xf_prob_sample_collect(xf_runner *r, const int32_t *tokens, int64_t n_tokens, int64_t T,
                           int64_t max_windows, const xf_act_scheme *scheme, size_t max_samples,
                           float **sample, int64_t *n_sample, xf_error *err)
{
    *sample = NULL;
    *n_sample = 0;
    if (T < 1 || T > r->ws.max_T || n_tokens < T || max_windows < 1 || max_samples < 1)
        return xf_fail(err, "probability sample: %lld tokens, window %lld (runner max %lld), "
                            "%lld windows, %zu samples",
                       (long long)n_tokens, (long long)T, (long long)r->ws.max_T,
                       (long long)max_windows, max_samples);
    int64_t windows = n_tokens / T;
    if (windows > max_windows)
        windows = max_windows;
    const xf_model_config *c = &r->mw->cfg;
    const int64_t total = windows * c->n_layers * c->n_heads * (T * (T + 1) / 2);
    sampler s = {0};
    s.stride = (total + (int64_t)max_samples - 1) / (int64_t)max_samples;
    if (s.stride < 1)
        s.stride = 1;
    s.cap = (total + s.stride - 1) / s.stride;
    s.v = malloc((size_t)(s.cap > 0 ? s.cap : 1) * sizeof *s.v);
    float *logits = malloc((size_t)(T * c->vocab) * sizeof *logits);
    if (!s.v || !logits) {
        free(s.v);
        free(logits);
        return xf_fail(err, "probability sample: out of memory for %lld samples",
                       (long long)s.cap);
    }
    xf_forward_hooks capture = {.user = &s, .on_attn_probs = sample_probs};
    xf_act_scheme sch;
    if (scheme)
        sch = *scheme;
    else
        xf_act_scheme_default(&sch);
    sch.attn_prob_bits = 0; /* sample before any probability quantization */
    xf_act_hooks ah;
    int rc = xf_act_hooks_init(&ah, &sch, &capture, err);
    for (int64_t w = 0; w < windows && rc == 0; w++) {
        rc = xf_runner_forward_hooked(r, tokens + w * T, T, &ah.hooks, logits, err);
        if (rc > 0)
            rc = xf_fail(err, "probability sample: a hook stopped the forward pass");
    }
    xf_act_hooks_free(&ah);
    free(logits);
    if (rc != 0) {
        free(s.v);
        return -1;
    }
    *sample = s.v;
    *n_sample = s.n;
    return 0;
}

/* KL(softmax(a) || softmax(b)) of one row, log-sum-exp in double */
static double row_kl(const float *a, const float *b, int64_t n)
{
    double ma = a[0], mb = b[0];
    for (int64_t i = 1; i < n; i++) {
        ma = a[i] > ma ? a[i] : ma;
        mb = b[i] > mb ? b[i] : mb;
    }
    double za = 0.0, zb = 0.0;
    for (int64_t i = 0; i < n; i++) {
        za += exp((double)a[i] - ma);
        zb += exp((double)b[i] - mb);
    }
    const double la = ma + log(za), lb = mb + log(zb);
    double kl = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double lpa = (double)a[i] - la;
        kl += exp(lpa) * (lpa - ((double)b[i] - lb));
    }
    return kl > 0.0 ? kl : 0.0;
}

static int calibrate_logit_kl(xf_runner *r, const int32_t *tokens, int64_t n_tokens, int64_t T,
                              int64_t max_windows, const xf_act_scheme *scheme, int bits,
                              double *log2_base, double *score, xf_error *err)
{
    if (T < 1 || T > r->ws.max_T || n_tokens < T || max_windows < 1)
        return xf_fail(err, "log2 base calibration: %lld tokens, window %lld (runner max %lld), "
                            "%lld windows",
                       (long long)n_tokens, (long long)T, (long long)r->ws.max_T,
                       (long long)max_windows);
    int64_t windows = n_tokens / T;
    if (windows > max_windows)
        windows = max_windows;
    const int64_t V = r->mw->cfg.vocab;
    /* window by window (memory: two [T, vocab] logit buffers), every
     * candidate against the fp32 logits of the same window */
    float *ref = malloc((size_t)(T * V) * sizeof *ref);
    float *lg = malloc((size_t)(T * V) * sizeof *lg);
    xf_act_hooks *ah = calloc(XF_LOG2_BASE_DEFAULT_COUNT, sizeof *ah);
    double kl[XF_LOG2_BASE_DEFAULT_COUNT] = {0};
    if (!ref || !lg || !ah) {
        free(ref);
        free(lg);
        free(ah);
        return xf_fail(err, "log2 base calibration: out of memory for %lld x %lld logits",
                       (long long)T, (long long)V);
    }
    xf_act_scheme sch;
    if (scheme)
        sch = *scheme;
    else
        xf_act_scheme_default(&sch);
    sch.attn_prob_bits = bits;
    sch.attn_prob_quant = XF_PROB_LOG2;
    int rc = 0, n_init = 0;
    for (; n_init < XF_LOG2_BASE_DEFAULT_COUNT && rc == 0; n_init++) {
        sch.attn_prob_log2_base = xf_log2_base_default[n_init];
        rc = xf_act_hooks_init(&ah[n_init], &sch, NULL, err);
    }
    for (int64_t w = 0; w < windows && rc == 0; w++) {
        const int32_t *tw = tokens + w * T;
        rc = xf_runner_forward(r, tw, T, ref, err) == 0 ? 0 : -1;
        for (int c = 0; c < XF_LOG2_BASE_DEFAULT_COUNT && rc == 0; c++) {
            rc = xf_runner_forward_hooked(r, tw, T, &ah[c].hooks, lg, err) == 0 ? 0 : -1;
            for (int64_t t = 0; t < T && rc == 0; t++)
                kl[c] += row_kl(ref + t * V, lg + t * V, V);
        }
    }
    if (rc == 0) {
        int best = 0;
        for (int c = 1; c < XF_LOG2_BASE_DEFAULT_COUNT; c++)
            if (kl[c] < kl[best])
                best = c;
        *log2_base = xf_log2_base_default[best];
        if (score)
            *score = kl[best] / (double)(windows * T);
    }
    for (int c = 0; c < n_init; c++)
        xf_act_hooks_free(&ah[c]);
    free(ah);
    free(ref);
    free(lg);
    return rc;
}

int xf_log2_base_calibrate(xf_runner *r, const int32_t *tokens, int64_t n_tokens, int64_t T,
                           int64_t max_windows, const xf_act_scheme *scheme, int bits,
                           xf_log2_fit fit, size_t max_samples, double *log2_base, double *score,
                           xf_error *err)
{
    if (bits < XF_ACT_MIN_BITS || bits > 8)
        return xf_fail(err, "log2 base calibration: bits %d outside %d..8", bits,
                       XF_ACT_MIN_BITS);
    if (fit == XF_LOG2_FIT_LOGIT_KL)
        return calibrate_logit_kl(r, tokens, n_tokens, T, max_windows, scheme, bits, log2_base,
                                  score, err);
    if (fit != XF_LOG2_FIT_MSE)
        return xf_fail(err, "log2 base calibration: unknown objective %d", (int)fit);
    float *v;
    int64_t n;
    if (xf_prob_sample_collect(r, tokens, n_tokens, T, max_windows, scheme, max_samples, &v, &n,
                               err) != 0)
        return -1;
    int rc = xf_log2_base_search(v, n, bits, NULL, 0, log2_base, score, err);
    free(v);
    return rc;
}
