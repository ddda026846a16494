/* One Cayley SGD step of the learned-rotation optimiser (quant/
 * rotation_learning.h) against its cost floor measured in the same run: the
 * single SGEMM X R [N, n] x [n, n] that any step must do at least once.
 * One term per size: X [N, n] Gaussian with a few 50x outlier channels,
 * W [n, n], W4A4 (per-token activations, per-row weights), all N rows per
 * step (no minibatch).
 *
 *   step      (optimize with 10 steps - optimize with 0 steps) / 10: the
 *             loss + STE gradient over N rows, the Cayley update (dgemm +
 *             dgesv on n x n), the orthogonality checks
 *   gradient  xf_lrot_eval with G (identity-STE and scale-STE variants)
 *   loss      xf_lrot_eval without G
 *   sgemm_xr  cblas_sgemm of X R alone
 *
 * Usage: bench_lrot [--tokens N] [--threads N] [--quick]
 *   sizes 256 and 512, 4096 tokens; --quick: 64 and 128, 1024 tokens.
 * Prints one "name: value" line per number. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/progress.h"
#include "core/threads.h"
#include "sim/hadamard.h"
#include "quant/transform/rotation_learning.h"


static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p) {
        fprintf(stderr, "bench_lrot: out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}

static void check(int rc, const xf_error *err)
{
    if (rc != 0) {
        fprintf(stderr, "bench_lrot: %s\n", err->msg);
        exit(1);
    }
}

/* splitmix64 -> standard normal (Box-Muller) */
static double randn(uint64_t *s)
{
    uint64_t z[2];
    for (int i = 0; i < 2; i++) {
        uint64_t x = (*s += 0x9e3779b97f4a7c15ull);
        x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
        x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
        z[i] = x ^ (x >> 31);
    }
    double u1 = ((z[0] >> 11) + 1.0) * (1.0 / 9007199254740993.0);
    double u2 = (z[1] >> 11) * (1.0 / 9007199254740992.0);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

typedef struct ctx {
    xf_lrot_problem p;
    xf_lrot_options o;
    int64_t n, N;
    float *X, *W, *Rf, *Y;
    double *R0, *R, *G;
    unsigned ste;
    xf_lrot_work work; /* as the optimiser keeps it across steps */
} ctx;

typedef void (*bench_fn)(ctx *c);

/* Seconds per call: repeats until min_s has passed, best of three rounds. */
static double time_it(bench_fn fn, ctx *c, double min_s)
{
    double best = 1e30;
    for (int round = 0; round < 3; round++) {
        int reps = 0;
        double t0 = xf_now_seconds(), t;
        do {
            fn(c);
            reps++;
            t = xf_now_seconds() - t0;
        } while (t < min_s);
        best = t / reps < best ? t / reps : best;
    }
    return best;
}

static void run_sgemm(ctx *c)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)c->N, (int)c->n, (int)c->n, 1.0f,
                c->X, (int)c->n, c->Rf, (int)c->n, 0.0f, c->Y, (int)c->n);
}

static void run_loss(ctx *c)
{
    xf_error err;
    double loss;
    check(xf_lrot_eval(&c->p, c->R0, NULL, NULL, 0, &c->work, &loss, NULL, NULL, &err), &err);
}

static void run_grad(ctx *c)
{
    xf_error err;
    double loss;
    check(xf_lrot_eval(&c->p, c->R0, NULL, NULL, c->ste, &c->work, &loss, NULL, c->G, &err), &err);
}

static void run_opt(ctx *c)
{
    xf_error err;
    memcpy(c->R, c->R0, sizeof(double) * (size_t)(c->n * c->n));
    check(xf_lrot_optimize(&c->p, &c->o, c->R, NULL, NULL, NULL, &err), &err);
}

static void bench_size(int64_t n, int64_t N)
{
    ctx c;
    memset(&c, 0, sizeof c);
    c.n = n;
    c.N = N;
    c.X = xmalloc(sizeof(float) * (size_t)(N * n));
    c.W = xmalloc(sizeof(float) * (size_t)(n * n));
    c.Y = xmalloc(sizeof(float) * (size_t)(N * n));
    c.Rf = xmalloc(sizeof(float) * (size_t)(n * n));
    c.R0 = xmalloc(sizeof(double) * (size_t)(n * n));
    c.R = xmalloc(sizeof(double) * (size_t)(n * n));
    c.G = xmalloc(sizeof(double) * (size_t)(n * n));
    uint64_t s = 1;
    for (int64_t i = 0; i < N * n; i++)
        c.X[i] = (float)randn(&s) * ((i % n) % 61 == 3 ? 50.0f : 1.0f);
    for (int64_t i = 0; i < n * n; i++)
        c.W[i] = (float)(0.05 * randn(&s));
    xf_error err;
    uint64_t seed = 1;
    check(xf_hadamard_dense(n, &seed, c.R0, &err), &err);
    for (int64_t i = 0; i < n * n; i++)
        c.Rf[i] = (float)c.R0[i];
    xf_lrot_quant q;
    xf_lrot_quant_default(&q);
    q.act_bits = 4;
    q.w_bits = 4;
    check(xf_lrot_problem_init(&c.p, n, XF_LROT_NORM_RELATIVE, &err), &err);
    check(xf_lrot_add_term(&c.p, "bench", c.X, N, c.W, n, n, &q, 1.0, &err), &err);
    xf_lrot_options_default(&c.o);
    xf_lrot_work_init(&c.work);

    const double t_gemm = time_it(run_sgemm, &c, 0.2);
    const double t_loss = time_it(run_loss, &c, 0.3);
    c.ste = 0;
    const double t_grad0 = time_it(run_grad, &c, 0.3);
    c.ste = XF_LROT_STE_SCALE;
    const double t_grad = time_it(run_grad, &c, 0.3);
    const int S = 10;
    c.o.steps = 0;
    const double t_opt0 = time_it(run_opt, &c, 0.3);
    c.o.steps = S;
    const double t_optS = time_it(run_opt, &c, 0.5);
    const double t_step = (t_optS - t_opt0) / S;

    printf("n%lld_N%lld_sgemm_xr_ms: %.3f\n", (long long)n, (long long)N, 1e3 * t_gemm);
    printf("n%lld_N%lld_loss_ms: %.3f\n", (long long)n, (long long)N, 1e3 * t_loss);
    printf("n%lld_N%lld_gradient_identity_ste_ms: %.3f\n", (long long)n, (long long)N, 1e3 * t_grad0);
    printf("n%lld_N%lld_gradient_ms: %.3f\n", (long long)n, (long long)N, 1e3 * t_grad);
    printf("n%lld_N%lld_step_ms: %.3f\n", (long long)n, (long long)N, 1e3 * t_step);
    printf("n%lld_N%lld_step_over_sgemm_xr: %.2f\n", (long long)n, (long long)N, t_step / t_gemm);
    xf_lrot_work_free(&c.work);
    xf_lrot_problem_free(&c.p);
    free(c.X);
    free(c.W);
    free(c.Y);
    free(c.Rf);
    free(c.R0);
    free(c.R);
    free(c.G);
}

int main(int argc, char **argv)
{
    int64_t tokens = 4096;
    int threads = 0, quick = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--tokens") && i + 1 < argc)
            tokens = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else {
            fprintf(stderr, "usage: bench_lrot [--tokens N] [--threads N] [--quick]\n");
            return 2;
        }
    }
    if (tokens < 1) {
        fprintf(stderr, "bench_lrot: --tokens must be >= 1\n");
        return 2;
    }
    xf_threads_set(threads);
    printf("threads: %d\n", xf_threads_get());
    if (quick) {
        bench_size(64, 1024);
        bench_size(128, 1024);
    } else {
        bench_size(256, tokens);
        bench_size(512, tokens);
    }
    return 0;
}
