/* Learned rotations: Cayley SGD on the orthogonal group (the update, the
 * schedule, minibatch sampling, orthogonality upkeep). The objective and
 * its gradient are rotation_objective.c; the maths is in the header. */
#include "quant/transform/rotation_learning.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/gemm_tiled.h"
#include "core/splitmix.h"
#include "core/threads.h"

void xf_lrot_options_default(xf_lrot_options *o)
{
    memset(o, 0, sizeof *o);
    o->steps = 100;
    o->lr = 1.5;
    o->cosine = true;
    o->momentum = 0.0;
    o->batch_tokens = 0;
    o->seed = 0;
    o->step_cap = 1.0;
    o->ste = XF_LROT_STE_SCALE;
    o->orth_every = 10;
    o->orth_tol = 1e-12;
}

int xf_lrot_options_check(const xf_lrot_options *o, xf_error *err)
{
    if (o->steps < 0)
        return xf_fail(err, "learned rotation: steps %d must be >= 0", o->steps);
    if (!(o->lr > 0.0 && isfinite(o->lr)))
        return xf_fail(err, "learned rotation: learning rate %g must be finite and > 0", o->lr);
    if (!(o->momentum >= 0.0 && o->momentum < 1.0))
        return xf_fail(err, "learned rotation: momentum %g outside [0, 1)", o->momentum);
    if (o->batch_tokens < 0)
        return xf_fail(err, "learned rotation: batch tokens %lld must be >= 0",
                       (long long)o->batch_tokens);
    if (!isfinite(o->step_cap))
        return xf_fail(err, "learned rotation: step cap must be finite");
    if (o->ste & ~(XF_LROT_STE_SCALE | XF_LROT_STE_CLIP_MASK))
        return xf_fail(err, "learned rotation: unknown STE flags 0x%x", o->ste);
    if (o->orth_every < 1)
        return xf_fail(err, "learned rotation: orthogonality check interval %d must be >= 1",
                       o->orth_every);
    if (!isfinite(o->orth_tol))
        return xf_fail(err, "learned rotation: orthogonality tolerance must be finite");
    return 0;
}

double xf_lrot_orth_error(const double *R, int64_t n)
{
    double *T = malloc((size_t)(n * n) * sizeof *T);
    if (!T)
        return -1.0;
    xf_threads_saved saved; /* one BLAS thread: the same bits for any thread count */
    xf_threads_push_blas(1, &saved);
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)n, (int)n, 1.0, R, (int)n, 0.0, T,
                (int)n);
    xf_threads_pop(&saved);
    double e = 0.0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = i; j < n; j++) {
            double d = fabs(T[i * n + j] - (i == j ? 1.0 : 0.0));
            e = d > e ? d : e;
        }
    free(T);
    return e;
}

/* Newton-Schulz toward the polar factor (the nearest orthogonal matrix):
 * R <- R (3 I - R^T R) / 2, quadratic once ||R^T R - I|| < 1; T and R2 are
 * n x n scratch. A few passes take 1e-6 to rounding. */
static void reorthogonalize(double *R, int64_t n, double *T, double *R2)
{
    for (int it = 0; it < 4; it++) {
        xf_dgemm_tiled(CblasTrans, CblasNoTrans, (int)n, (int)n, (int)n, -0.5, R,
                    (int)n, R, (int)n, 0.0, T, (int)n);
        for (int64_t i = 0; i < n; i++)
            T[i * n + i] += 1.5;
        xf_dgemm_tiled(CblasNoTrans, CblasNoTrans, (int)n, (int)n, (int)n, 1.0, R,
                    (int)n, T, (int)n, 0.0, R2, (int)n);
        memcpy(R, R2, (size_t)(n * n) * sizeof *R);
    }
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* b of the N rows without replacement (partial Fisher-Yates over perm[N]),
 * from a stream that depends only on (seed, step), then sorted so the rows
 * are gathered in memory order. The modulo's bias is below N / 2^64. */
static void sample_rows(uint64_t seed, int step, int64_t N, int64_t b, int64_t *perm, int64_t *out)
{
    uint64_t s = seed;
    s = xf_splitmix64(&s) ^ (0xd1b54a32d192ed03ull * (uint64_t)(step + 1));
    for (int64_t i = 0; i < N; i++)
        perm[i] = i;
    for (int64_t i = 0; i < b; i++) {
        int64_t j = i + (int64_t)(xf_splitmix64(&s) % (uint64_t)(N - i));
        int64_t tmp = perm[i];
        perm[i] = perm[j];
        perm[j] = tmp;
        out[i] = perm[i];
    }
    qsort(out, (size_t)b, sizeof *out, cmp_i64);
}

typedef struct cayley_ws {
    double *G, *M, *T, *L, *Rn; /* n x n */
    lapack_int *ipiv;
    int64_t **rows, *nrows, *perm;
    xf_lrot_work work;
} cayley_ws;

static void ws_free(cayley_ws *w, int n_terms)
{
    free(w->G);
    free(w->M);
    free(w->T);
    free(w->L);
    free(w->Rn);
    free(w->ipiv);
    for (int t = 0; w->rows && t < n_terms; t++)
        free(w->rows[t]);
    free(w->rows);
    free(w->nrows);
    free(w->perm);
    xf_lrot_work_free(&w->work);
    memset(w, 0, sizeof *w);
}

static int ws_init(cayley_ws *w, const xf_lrot_problem *p, const xf_lrot_options *o, xf_error *err)
{
    memset(w, 0, sizeof *w);
    const size_t nn = (size_t)(p->n * p->n);
    bool ok = (w->G = malloc(nn * sizeof *w->G)) && (w->M = calloc(nn, sizeof *w->M)) &&
              (w->T = malloc(nn * sizeof *w->T)) && (w->L = malloc(nn * sizeof *w->L)) &&
              (w->Rn = malloc(nn * sizeof *w->Rn)) &&
              (w->ipiv = malloc((size_t)p->n * sizeof *w->ipiv));
    if (ok && o->batch_tokens > 0) {
        int64_t maxN = 0;
        ok = (w->rows = calloc((size_t)p->n_terms, sizeof *w->rows)) &&
             (w->nrows = malloc((size_t)p->n_terms * sizeof *w->nrows));
        for (int t = 0; ok && t < p->n_terms; t++) {
            const int64_t N = p->terms[t].N;
            if (o->batch_tokens >= N) { /* all rows: rows[t] stays NULL, nothing gathered */
                w->nrows[t] = N;
                continue;
            }
            w->nrows[t] = o->batch_tokens;
            ok = (w->rows[t] = malloc((size_t)w->nrows[t] * sizeof **w->rows)) != NULL;
            maxN = N > maxN ? N : maxN;
        }
        ok = ok && (maxN == 0 || (w->perm = malloc((size_t)maxN * sizeof *w->perm)));
    }
    if (!ok) {
        ws_free(w, p->n_terms);
        return xf_fail(err, "learned rotation: out of memory for the optimiser (n %lld)",
                       (long long)p->n);
    }
    return 0;
}

/* One Cayley step R <- (I + eta M / 2)^-1 (I - eta M / 2) R with
 * M <- mu M + (G R^T - R G^T); eta is capped (header). */
static int cayley_step(double *R, int64_t n, double lr, const xf_lrot_options *o, cayley_ws *w,
                       double *eta_out, bool *capped, xf_error *err)
{
    const int ni = (int)n;
    xf_dgemm_tiled(CblasNoTrans, CblasTrans, ni, ni, ni, 1.0, w->G, ni, R, ni, 0.0,
                w->T, ni);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++)
            w->M[i * n + j] = o->momentum * w->M[i * n + j] + (w->T[i * n + j] - w->T[j * n + i]);
    double norm1 = 0.0; /* max column sum */
    memset(w->T, 0, (size_t)n * sizeof *w->T);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++)
            w->T[j] += fabs(w->M[i * n + j]);
    for (int64_t j = 0; j < n; j++)
        norm1 = w->T[j] > norm1 ? w->T[j] : norm1;
    double eta = lr;
    *capped = o->step_cap > 0.0 && eta * norm1 > o->step_cap;
    if (*capped)
        eta = o->step_cap / norm1;
    *eta_out = eta;
    for (int64_t i = 0; i < n * n; i++)
        w->L[i] = 0.5 * eta * w->M[i];
    for (int64_t i = 0; i < n; i++)
        w->L[i * n + i] += 1.0;
    memcpy(w->Rn, R, (size_t)(n * n) * sizeof *R);
    xf_dgemm_tiled(CblasNoTrans, CblasNoTrans, ni, ni, ni, -0.5 * eta, w->M, ni, R, ni,
                1.0, w->Rn, ni);
    /* I + skew is never singular (eigenvalues 1 + i lambda); info != 0
     * means NaN got in */
    xf_threads_saved saved; /* one BLAS thread: the same bits for any thread count */
    xf_threads_push_blas(1, &saved);
    lapack_int info = LAPACKE_dgesv(LAPACK_ROW_MAJOR, ni, ni, w->L, ni, w->ipiv, w->Rn, ni);
    xf_threads_pop(&saved);
    if (info != 0)
        return xf_fail(err, "learned rotation: Cayley solve failed (dgesv info %d)", (int)info);
    for (int64_t i = 0; i < n * n; i++)
        if (!isfinite(w->Rn[i]))
            return xf_fail(err, "learned rotation: non-finite rotation after a step");
    memcpy(R, w->Rn, (size_t)(n * n) * sizeof *R);
    return 0;
}

/* Measures ||R^T R - I||_max, re-orthogonalises above tol (tol > 0). */
static int orth_upkeep(double *R, int64_t n, const xf_lrot_options *o, cayley_ws *w,
                       xf_lrot_report *rep, xf_error *err)
{
    double e = xf_lrot_orth_error(R, n);
    if (e < 0.0)
        return xf_fail(err, "learned rotation: out of memory");
    rep->orth_drift_max = e > rep->orth_drift_max ? e : rep->orth_drift_max;
    if (o->orth_tol > 0.0 && e > o->orth_tol) {
        reorthogonalize(R, n, w->T, w->Rn);
        rep->reorthogonalized++;
        if ((e = xf_lrot_orth_error(R, n)) < 0.0)
            return xf_fail(err, "learned rotation: out of memory");
    }
    rep->orth_error = e;
    return 0;
}

int xf_lrot_optimize(const xf_lrot_problem *p, const xf_lrot_options *o, double *R,
                     xf_lrot_progress cb, void *user, xf_lrot_report *rep_out, xf_error *err)
{
    xf_lrot_report rep;
    memset(&rep, 0, sizeof rep);
    if (xf_lrot_options_check(o, err) != 0)
        return -1;
    if (p->n_terms == 0)
        return xf_fail(err, "learned rotation: no terms to optimise");
    const int64_t n = p->n;
    for (int64_t i = 0; i < n * n; i++)
        if (!isfinite(R[i]))
            return xf_fail(err, "learned rotation: non-finite start rotation");
    const double e0 = xf_lrot_orth_error(R, n);
    if (e0 < 0.0)
        return xf_fail(err, "learned rotation: out of memory");
    if (e0 > 1e-6)
        return xf_fail(err, "learned rotation: start is not orthogonal (|R^T R - I|_max %.3g)", e0);
    rep.orth_error = rep.orth_drift_max = e0;
    cayley_ws w;
    if (ws_init(&w, p, o, err) != 0)
        return -1;
    int rc = -1;
    /* with full batches step 0's loss is the initial loss: skip the pass */
    const bool full = o->batch_tokens == 0;
    if (!(full && o->steps > 0) &&
        xf_lrot_eval(p, R, NULL, NULL, 0, &w.work, &rep.loss_initial, NULL, NULL, err) != 0)
        goto out;
    for (int s = 0; s < o->steps; s++) {
        if (!full)
            for (int t = 0; t < p->n_terms; t++)
                if (w.rows[t])
                    sample_rows(o->seed, s, p->terms[t].N, w.nrows[t], w.perm, w.rows[t]);
        double loss;
        if (xf_lrot_eval(p, R, full ? NULL : (const int64_t *const *)w.rows, w.nrows, o->ste,
                         &w.work, &loss, NULL, w.G, err) != 0)
            goto out;
        if (s == 0 && full)
            rep.loss_initial = loss;
        const double lr = o->cosine ? 0.5 * o->lr * (1.0 + cos(M_PI * (double)s / o->steps)) : o->lr;
        double eta;
        bool capped;
        if (cayley_step(R, n, lr, o, &w, &eta, &capped, err) != 0)
            goto out;
        rep.steps_capped += capped;
        rep.steps_run = s + 1;
        if (((s + 1) % o->orth_every == 0 || s + 1 == o->steps) && orth_upkeep(R, n, o, &w, &rep, err) != 0)
            goto out;
        if (cb && cb(user, s, o->steps, loss, eta) != 0)
            break;
    }
    if (rep.steps_run > 0 && rep.steps_run % o->orth_every != 0 && rep.steps_run != o->steps &&
        orth_upkeep(R, n, o, &w, &rep, err) != 0)
        goto out;
    if (rep.steps_run == 0)
        rep.loss_final = rep.loss_initial;
    else if (xf_lrot_eval(p, R, NULL, NULL, 0, &w.work, &rep.loss_final, NULL, NULL, err) != 0)
        goto out;
    rc = 0;
out:
    ws_free(&w, p->n_terms);
    if (rep_out)
        *rep_out = rep;
    return rc;
}

int xf_lrot_cayley_step(double *R, const double *G, int64_t n, double lr, double step_cap,
                        double *eta_out, xf_error *err)
{
    cayley_ws w;
    memset(&w, 0, sizeof w);
    const size_t nn = (size_t)(n * n);
    bool ok = (w.G = malloc(nn * sizeof *w.G)) && (w.M = calloc(nn, sizeof *w.M)) &&
              (w.T = malloc(nn * sizeof *w.T)) && (w.L = malloc(nn * sizeof *w.L)) &&
              (w.Rn = malloc(nn * sizeof *w.Rn)) && (w.ipiv = malloc((size_t)n * sizeof *w.ipiv));
    int rc = -1;
    if (!ok) {
        xf_fail(err, "learned rotation: out of memory for a Cayley step (n %lld)", (long long)n);
    } else {
        memcpy(w.G, G, nn * sizeof *w.G);
        xf_lrot_options o;
        xf_lrot_options_default(&o);
        o.step_cap = step_cap;
        bool capped;
        double eta;
        rc = cayley_step(R, n, lr, &o, &w, &eta, &capped, err);
        if (rc == 0 && eta_out)
            *eta_out = eta;
    }
    ws_free(&w, 0);
    return rc;
}

int xf_lrot_reorthogonalize(double *R, int64_t n, double *orth_error, xf_error *err)
{
    double *T = malloc((size_t)(n * n) * sizeof *T), *R2 = malloc((size_t)(n * n) * sizeof *R2);
    if (!T || !R2) {
        free(T);
        free(R2);
        return xf_fail(err, "learned rotation: out of memory");
    }
    reorthogonalize(R, n, T, R2);
    free(T);
    free(R2);
    *orth_error = xf_lrot_orth_error(R, n);
    return 0;
}
