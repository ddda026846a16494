/* Throughput of the forward runner (tokens/s) on a synthetic llama model of
 * novels-5m's shape (hidden 256, MLP 688, 6 layers, 8/4 heads, vocab 2048,
 * F16 weights, T = 256), against the naive scalar forward of
 * tests/support/naive_forward.c, measured in the same run.
 *
 * Usage: bench_forward [T]   One line per measurement. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/progress.h"
#include "core/half.h"
#include "core/threads.h"
#include "model/forward.h"
#include "tests/support/naive_forward.h"

#define MAX_TENSORS 128

typedef struct synth {
    xf_model_weights mw;
    xf_tensor t[MAX_TENSORS];
    uint16_t *data[MAX_TENSORS];
    int n;
    uint64_t rng;
} synth;


/* uniform in [-a, a), deterministic */
static float urand(uint64_t *s, float a)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return a * ((float)(*s >> 40) / (float)(1ULL << 24) * 2.0f - 1.0f);
}

static const xf_tensor *mk(synth *m, int64_t rows, int64_t cols, float mean, float amp)
{
    if (m->n >= MAX_TENSORS) {
        fprintf(stderr, "bench_forward: too many tensors\n");
        exit(1);
    }
    int i = m->n++;
    int64_t n = rows * (cols ? cols : 1);
    uint16_t *d = malloc((size_t)n * sizeof *d);
    if (!d) {
        fprintf(stderr, "bench_forward: out of memory\n");
        exit(1);
    }
    for (int64_t j = 0; j < n; j++)
        d[j] = xf_f32_to_f16(mean + urand(&m->rng, amp));
    xf_tensor *t = &m->t[i];
    memset(t, 0, sizeof *t);
    t->name = "synthetic";
    t->dtype = XF_DTYPE_F16;
    t->ndim = cols ? 2 : 1;
    t->shape[0] = rows;
    t->shape[1] = cols;
    t->data = d;
    t->nbytes = (size_t)n * sizeof *d;
    m->data[i] = d;
    return t;
}

static void mk_linear(synth *m, xf_linear *l, int64_t out, int64_t in)
{
    l->w = mk(m, out, in, 0.0f, 1.7f / sqrtf((float)in)); /* std ~ 1/sqrt(in) */
    l->out = out;
    l->in = in;
}

static void build(synth *m, const xf_model_config *c)
{
    memset(m, 0, sizeof *m);
    m->rng = 42;
    m->mw.cfg = *c;
    const int64_t H = c->hidden, I = c->intermediate;
    const int64_t qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
    m->mw.tok_embed = mk(m, c->vocab, H, 0.0f, 1.7f);
    m->mw.layers = calloc((size_t)c->n_layers, sizeof *m->mw.layers);
    if (!m->mw.layers)
        exit(1);
    for (int l = 0; l < c->n_layers; l++) {
        xf_layer_weights *lw = &m->mw.layers[l];
        lw->attn_norm.w = mk(m, H, 0, 1.0f, 0.2f);
        lw->mlp_norm.w = mk(m, H, 0, 1.0f, 0.2f);
        mk_linear(m, &lw->lin[XF_LIN_Q], qd, H);
        mk_linear(m, &lw->lin[XF_LIN_K], kvd, H);
        mk_linear(m, &lw->lin[XF_LIN_V], kvd, H);
        mk_linear(m, &lw->lin[XF_LIN_O], H, qd);
        mk_linear(m, &lw->lin[XF_LIN_GATE], I, H);
        mk_linear(m, &lw->lin[XF_LIN_UP], I, H);
        mk_linear(m, &lw->lin[XF_LIN_DOWN], H, I);
    }
    m->mw.final_norm.w = mk(m, H, 0, 1.0f, 0.2f);
    mk_linear(m, &m->mw.lm_head, c->vocab, H);
}

static void destroy(synth *m)
{
    for (int i = 0; i < m->n; i++)
        free(m->data[i]);
    free(m->mw.layers);
}

/* Runner tokens/s with n_threads, repeating the forward for >= 1.5 s. */
static double bench_runner(xf_runner *r, const int32_t *tok, int64_t T, float *logits,
                           int n_threads, double *ms_per)
{
    xf_error err = {{0}};
    xf_threads_set(n_threads);
    if (xf_runner_forward(r, tok, T, logits, &err) != 0) { /* warm-up */
        fprintf(stderr, "bench_forward: %s\n", err.msg);
        exit(1);
    }
    int reps = 0;
    double t0 = xf_now_seconds(), el;
    do {
        if (xf_runner_forward(r, tok, T, logits, &err) != 0) {
            fprintf(stderr, "bench_forward: %s\n", err.msg);
            exit(1);
        }
        reps++;
        el = xf_now_seconds() - t0;
    } while (el < 1.5 || reps < 3);
    *ms_per = 1e3 * el / reps;
    return (double)T * reps / el;
}

int main(int argc, char **argv)
{
    int64_t T = argc > 1 ? atoll(argv[1]) : 256;
    if (T < 1 || T > 65536) {
        fprintf(stderr, "usage: bench_forward [T in 1..65536]\n");
        return 2;
    }
    xf_model_config c;
    memset(&c, 0, sizeof c);
    snprintf(c.model_type, sizeof c.model_type, "llama");
    c.family = XF_FAMILY_LLAMA;
    c.hidden = 256;
    c.intermediate = 688;
    c.n_layers = 6;
    c.n_heads = 8;
    c.n_kv_heads = 4;
    c.head_dim = 32;
    c.vocab = 2048;
    c.max_pos = T;
    c.norm_eps = 1e-5;
    c.rope_theta = 10000.0;
    c.norm_before = true;
    c.act = XF_ACT_SILU;
    c.bos_id = c.eos_id = -1;

    synth m;
    build(&m, &c);
    int32_t *tok = malloc((size_t)T * sizeof *tok);
    float *lg = malloc((size_t)(T * c.vocab) * sizeof *lg);
    float *ref = malloc((size_t)(T * c.vocab) * sizeof *ref);
    if (!tok || !lg || !ref)
        return 1;
    uint64_t s = 7;
    for (int64_t i = 0; i < T; i++)
        tok[i] = (int32_t)((uint64_t)(urand(&s, 0.5f) * 4096.0f + 2048.0f) % (uint64_t)c.vocab);

    printf("bench_forward: llama hidden 256, inter 688, 6 layers, 8/4 heads, vocab 2048, F16, "
           "T=%lld, %d cores\n",
           (long long)T, xf_threads_available());
    xf_error err = {{0}};
    xf_runner r;
    double t0 = xf_now_seconds();
    if (xf_runner_init(&r, &m.mw, T, 0, &err) != 0) {
        fprintf(stderr, "bench_forward: %s\n", err.msg);
        return 1;
    }
    printf("runner init (fp32 layers + head): %.1f ms\n", 1e3 * (xf_now_seconds() - t0));

    int all = xf_threads_available();
    double ms1, msn;
    double tps1 = bench_runner(&r, tok, T, lg, 1, &ms1);
    printf("runner, 1 thread: %.0f tokens/s (%.2f ms per %lld-token forward)\n", tps1, ms1,
           (long long)T);
    double tpsn = tps1;
    msn = ms1;
    if (all > 1) {
        tpsn = bench_runner(&r, tok, T, lg, all, &msn);
        printf("runner, %d threads: %.0f tokens/s (%.2f ms per forward)\n", all, tpsn, msn);
    }

    t0 = xf_now_seconds();
    if (xf_naive_forward(&m.mw, tok, T, ref, &err) != 0) {
        fprintf(stderr, "bench_forward: naive: %s\n", err.msg);
        return 1;
    }
    double nt = xf_now_seconds() - t0;
    double tpsr = (double)T / nt;
    printf("naive scalar forward, 1 thread: %.0f tokens/s (%.2f ms per forward)\n", tpsr,
           1e3 * nt);

    double md = 0, mr = 0;
    for (int64_t i = 0; i < T * c.vocab; i++) {
        md = fmax(md, fabs((double)lg[i] - ref[i]));
        mr = fmax(mr, fabs((double)ref[i]));
    }
    printf("speedup vs naive: %.1fx (1 thread), %.1fx (%d threads); logits max rel diff %.2e\n",
           tps1 / tpsr, tpsn / tpsr, all, md / mr);

    xf_runner_free(&r);
    destroy(&m);
    free(tok);
    free(lg);
    free(ref);
    return md / mr < 1e-4 ? 0 : 1;
}
