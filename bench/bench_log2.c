/* Uniform vs log2 quantization of post-softmax attention probabilities on
 * real attention: stories260K on the first windows of TinyStories
 * eval.txt. For each setting (4 and 3 bits; uniform, log2 base 2, log2
 * with the base searched on calib.txt windows) it reports, over every
 * causal row of every head and layer:
 *   mse  mean (p - Q(p))^2 over the causal entries;
 *   kl   mean over rows of KL(p || q^), q^ = (Q(p) + eps) / sum(Q(p) + eps)
 *        on the causal entries, eps = 1e-8 (quantized rows need not sum to
 *        1 and may be all zero);
 *   ppl  perplexity of the windows with that quantizer applied in the
 *        forward pass (everything else fp32), next to the fp32 one;
 *   logit_kl  mean KL(fp32 next-token distribution || quantized one), far
 *        more sensitive than the perplexity.
 * The searched bases are chosen on 4 calib.txt windows, by the sample MSE
 * and by the end-to-end logit KL (quant/search/prob_calib.h).
 * Skips (exit 0) when ../shared is absent.
 *
 * Usage: bench_log2 [windows [T]]   (default 8 windows of 256 tokens) */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/read_file.h"
#include "eval/nll.h"
#include "eval/text_tokens.h"
#include "model/forward.h"
#include "model/loader.h"
#include "sim/act_hooks.h"
#include "sim/log2_quant.h"
#include "quant/search/prob_calib.h"

#define N_SETTINGS 8
#define KL_EPS 1e-8

typedef struct setting {
    int bits;
    xf_prob_quant quant;
    double log2_base;
    char label[48];
    double sse, kl;
    int64_t entries, rows;
} setting;

typedef struct meter {
    setting *s;
    int n;
    float *q; /* one row */
} meter;

static int measure(void *user, int layer, int64_t head, float *p, int64_t T_q, int64_t T_k,
                   xf_error *err)
{
    (void)layer;
    (void)head;
    (void)err;
    meter *m = user;
    for (int k = 0; k < m->n; k++) {
        setting *s = &m->s[k];
        for (int64_t i = 0; i < T_q; i++) {
            const int64_t n = i + 1 < T_k ? i + 1 : T_k;
            const float *row = p + i * T_k;
            memcpy(m->q, row, (size_t)n * sizeof *row);
            if (s->quant == XF_PROB_LOG2)
                xf_prob_quant_log2(m->q, n, s->bits, s->log2_base);
            else
                xf_prob_quant_uniform(m->q, n, s->bits);
            double z = 0.0;
            for (int64_t j = 0; j < n; j++) {
                double d = (double)row[j] - m->q[j];
                s->sse += d * d;
                z += m->q[j] + KL_EPS;
            }
            double kl = 0.0;
            for (int64_t j = 0; j < n; j++)
                if (row[j] > 0.0f)
                    kl += row[j] * log(row[j] / ((m->q[j] + KL_EPS) / z));
            s->kl += kl;
            s->entries += n;
            s->rows++;
        }
    }
    return 0;
}

/* Perplexity of the windows under hooks h; with ref (fp32 logits of every
 * window, [windows * T, V]) also the mean logit KL against it, else ref is
 * filled. NAN on failure. */
static double window_ppl(xf_runner *r, const int32_t *tok, int64_t windows, int64_t T,
                         const xf_forward_hooks *h, float *ref, bool fill_ref, float *logits,
                         int64_t V, double *logit_kl, xf_error *err)
{
    double nll = 0.0, kl = 0.0;
    for (int64_t w = 0; w < windows; w++) {
        float *out = fill_ref ? ref + w * T * V : logits;
        if (xf_runner_forward_hooked(r, tok + w * T, T, h, out, err) != 0)
            return NAN;
        double s = 0.0;
        for (int64_t t = 0; t + 1 < T; t++) {
            const int32_t next = tok[w * T + t + 1];
            if (fill_ref) {
                s += xf_nll_row(out + t * V, V, next);
            } else {
                xf_kl_row k = xf_kl_row_compute(ref + (w * T + t) * V, out + t * V, V, next);
                s += k.nll_model;
                kl += k.kl;
            }
        }
        nll += s / (double)(T - 1);
    }
    *logit_kl = kl / (double)(windows * (T - 1));
    return exp(nll / (double)windows);
}

int main(int argc, char **argv)
{
    int64_t windows = argc > 1 ? atoll(argv[1]) : 8, T = argc > 2 ? atoll(argv[2]) : 256;
    const char *model = "../shared/models/stories260K";
    const char *eval = "../shared/data/tinystories/eval.txt";
    const char *calib = "../shared/data/tinystories/calib.txt";
    if (!xf_path_exists(model) || !xf_path_exists(eval)) {
        printf("SKIP: %s or %s not found (shared material absent)\n", model, eval);
        return 0;
    }
    if (windows < 1 || T < 2) {
        fprintf(stderr, "bench_log2: need windows >= 1 and T >= 2\n");
        return 2;
    }
    xf_error err = {{0}};
    xf_loaded_model m;
    if (xf_model_open(&m, model, &err) != 0) {
        fprintf(stderr, "bench_log2: %s\n", err.msg);
        return 1;
    }
    int rc = 1;
    xf_tokenizer *tok = xf_model_tokenizer(&m, &err);
    xf_text_tokens ev = {0}, ca = {0};
    xf_runner r;
    bool runner_ok = false;
    float *logits = NULL, *ref = NULL, *qrow = NULL;
    if (!tok || xf_text_tokens_load(&ev, eval, tok, false, &err) != 0)
        goto out;
    if (xf_path_exists(calib) && xf_text_tokens_load(&ca, calib, tok, false, &err) != 0)
        goto out;
    if ((int64_t)ev.n < windows * T)
        windows = (int64_t)ev.n / T;
    if (windows < 1) {
        fprintf(stderr, "bench_log2: %s has fewer than %lld tokens\n", eval, (long long)T);
        goto out;
    }
    if (xf_runner_init(&r, &m.weights, T, 0, &err) != 0)
        goto out;
    runner_ok = true;
    const int64_t V = m.weights.cfg.vocab;
    logits = malloc((size_t)(T * V) * sizeof *logits);
    ref = malloc((size_t)(windows * T * V) * sizeof *ref);
    qrow = malloc((size_t)T * sizeof *qrow);
    if (!logits || !ref || !qrow) {
        fprintf(stderr, "bench_log2: out of memory\n");
        goto out;
    }

    /* the searched base: calibration windows (calib.txt, else eval's) */
    const xf_text_tokens *cal = ca.n >= (size_t)T ? &ca : &ev;
    float *sample;
    int64_t ns;
    if (xf_prob_sample_collect(&r, cal->ids, (int64_t)cal->n, T, 4, NULL, 200000, &sample, &ns,
                               &err) != 0)
        goto out;
    setting s[N_SETTINGS];
    memset(s, 0, sizeof s);
    for (int b = 0; b < 2; b++) {
        const int bits = 4 - b;
        double L;
        if (xf_log2_base_search(sample, ns, bits, NULL, 0, &L, NULL, &err) != 0) {
            free(sample);
            goto out;
        }
        double Lkl;
        if (xf_log2_base_calibrate(&r, cal->ids, (int64_t)cal->n, T, 4, NULL, bits,
                                   XF_LOG2_FIT_LOGIT_KL, 0, &Lkl, NULL, &err) != 0) {
            free(sample);
            goto out;
        }
        setting *k = s + 4 * b;
        k[0] = (setting){.bits = bits, .quant = XF_PROB_UNIFORM, .log2_base = 1.0};
        k[1] = (setting){.bits = bits, .quant = XF_PROB_LOG2, .log2_base = 1.0};
        k[2] = (setting){.bits = bits, .quant = XF_PROB_LOG2, .log2_base = L};
        k[3] = (setting){.bits = bits, .quant = XF_PROB_LOG2, .log2_base = Lkl};
        snprintf(k[0].label, sizeof k[0].label, "uniform");
        snprintf(k[1].label, sizeof k[1].label, "log2 base 2");
        snprintf(k[2].label, sizeof k[2].label, "log2 base 2^%g (sample MSE)", L);
        snprintf(k[3].label, sizeof k[3].label, "log2 base 2^%g (logit KL)", Lkl);
    }
    free(sample);

    /* errors of every setting on the fp32 attention of the eval windows */
    meter mt = {s, N_SETTINGS, qrow};
    xf_forward_hooks mh = {.user = &mt, .on_attn_probs = measure};
    double kl_fp;
    double ppl_fp = window_ppl(&r, ev.ids, windows, T, &mh, ref, true, logits, V, &kl_fp, &err);
    if (isnan(ppl_fp))
        goto out;
    printf("bench_log2: stories260K, %lld windows x %lld tokens of eval.txt, base searched on "
           "%s, fp32 ppl %.4f\n",
           (long long)windows, (long long)T, cal == &ca ? "calib.txt" : "eval.txt", ppl_fp);
    for (int k = 0; k < N_SETTINGS; k++) {
        xf_act_scheme sch;
        xf_act_scheme_default(&sch);
        sch.attn_prob_bits = s[k].bits;
        sch.attn_prob_quant = s[k].quant;
        sch.attn_prob_log2_base = s[k].log2_base;
        xf_act_hooks ah;
        if (xf_act_hooks_init(&ah, &sch, NULL, &err) != 0)
            goto out;
        double lkl;
        double ppl = window_ppl(&r, ev.ids, windows, T, &ah.hooks, ref, false, logits, V, &lkl,
                                &err);
        xf_act_hooks_free(&ah);
        if (isnan(ppl))
            goto out;
        printf("bits %d  %-32s mse %.4e  kl %.4e  ppl %.4f (fp32 %.4f)  logit_kl %.4e\n",
               s[k].bits, s[k].label, s[k].sse / (double)s[k].entries,
               s[k].kl / (double)s[k].rows, ppl, ppl_fp, lkl);
    }
    rc = 0;
out:
    if (rc != 0 && err.msg[0])
        fprintf(stderr, "bench_log2: %s\n", err.msg);
    free(logits);
    free(ref);
    free(qrow);
    if (runner_ok)
        xf_runner_free(&r);
    xf_text_tokens_free(&ev);
    xf_text_tokens_free(&ca);
    xf_tokenizer_free(tok);
    xf_model_close(&m);
    return rc;
}
