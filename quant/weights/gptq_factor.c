/* GPTQ stage 1: from the Hessian to the sweep's factor F (in act-order
 * order): by default the normalized Cholesky factor of the damped H, or (the
 * inverse form) U, the upper Cholesky factor of the damped H^-1; with the
 * reference's dead-column rule and automatic damping retries. */
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/progress.h"
#include "core/threads.h"
#include "core/log.h"
#include "quant/weights/gptq.h"


void xf_gptq_params_default(xf_gptq_params *p)
{
    memset(p, 0, sizeof *p);
    p->grid.bits = 4;
    p->grid.sym = false;
    p->grid.clip = XF_CLIP_NONE;
    p->group = -1;
    p->damp = 0.01;
    p->block = 128;
    p->max_damp = 1.0;
}

/* Stable sort of positions by descending key (ties keep ascending index),
 * so equal diagonals give the same order on every run and platform. */
static void sort_desc_stable(const double *key, int32_t *idx, int32_t *tmp, int64_t n)
{
    for (int64_t w = 1; w < n; w *= 2) { /* bottom-up merge sort */
        for (int64_t lo = 0; lo < n; lo += 2 * w) {
            int64_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            int64_t a = lo, b = mid, k = lo;
            while (a < mid && b < hi)
                tmp[k++] = key[idx[b]] > key[idx[a]] ? idx[b++] : idx[a++];
            while (a < mid)
                tmp[k++] = idx[a++];
            while (b < hi)
                tmp[k++] = idx[b++];
        }
        memcpy(idx, tmp, (size_t)n * sizeof *idx);
    }
}

/* One factorization attempt with absolute damping lambda. A (fp64 n*n
 * scratch) receives J*P^T*H*P*J + lambda*I (J = index reversal), whose
 * Cholesky A = R^T R (LAPACK column-major 'U', R upper) gives
 * H_p = Ut Ut^T with Ut = J R^T J upper, so Ut[a][b] = R[n-1-b][n-1-a],
 * which column-major storage puts at A[(n-1-a)*n + (n-1-b)]: row a of Ut
 * is column n-1-a of A, reversed. The reference's U (H_p^-1 = U^T U, U
 * upper) is Ut^-1, so U_aa = 1 / Ut_aa.
 * - Cholesky form (inverse = false): F = -Ut diag(Ut)^-1, i.e.
 *   F[a][b] = -Ut[a][b] / Ut[b][b], formed in fp64 and stored as fp32; no
 *   inverse is computed (see the sweep in gptq.c for why it suffices).
 * - inverse form: dtrtri turns R into R^-1, and F = U = J R^-T J:
 *   U[a][b] = R^-1[n-1-b][n-1-a], at the same place in A as Ut[a][b] above.
 * d[a] = fp32(U_aa) in both forms (dtrtri forms the diagonal of R^-1 as
 * 1 / R_ii in fp64, as done here for the Cholesky form).
 * Returns 0, or -1 when H_p + lambda*I is not (numerically) positive
 * definite or F is not finite in fp32. "Numerically": dpotrf also succeeds
 * on a singular PSD matrix whose zero eigenvalues came out as +1e-16, with
 * pivots near 0 and a useless, huge U; a squared pivot R_ii^2 below
 * XF_GPTQ_MIN_PIVOT * mean(diag H) counts as a failure too, so such a
 * Hessian gets more damping (a PSD H with damp >= 1e-10 always passes:
 * every pivot^2 is >= the smallest eigenvalue >= lambda). The _work LAPACKE
 * calls skip LAPACKE's NaN scans of A: H was checked finite on entry. */
#define XF_GPTQ_MIN_PIVOT 1e-10
static int try_factor(const double *H, const int32_t *perm, const uint8_t *dead, int64_t n,
                      double mean, double lambda, bool inverse, double *A, float *F, float *d)
{
    /* A[p][q] = H[perm[n-1-p]][perm[n-1-q]], dead diagonals set to 1 */
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < n; p++) {
        const int64_t src = perm[n - 1 - p];
        const double *h = H + src * n;
        double *a = A + p * n;
        for (int64_t q = 0; q < n; q++)
            a[q] = h[perm[n - 1 - q]];
        if (dead[src])
            a[p] = 1.0;
        a[p] += lambda;
    }
    /* One BLAS thread: OpenBLAS's dpotrf gives other bits with 2 threads than
     * with 1 (even at n = 64), and the file must not depend on --threads. */
    xf_threads_saved saved;
    xf_threads_push_blas(1, &saved);
    lapack_int info = LAPACKE_dpotrf_work(LAPACK_COL_MAJOR, 'U', (lapack_int)n, A, (lapack_int)n);
    xf_threads_pop(&saved);
    if (info != 0)
        return -1;
    for (int64_t i = 0; i < n; i++)
        if (!(A[i * n + i] * A[i * n + i] >= XF_GPTQ_MIN_PIVOT * mean))
            return -1;
    /* 1 / Ut_bb by position b, before dtrtri overwrites the diagonal */
    double *rinv = malloc((size_t)n * sizeof *rinv);
    if (!rinv)
        return -2;
    for (int64_t b = 0; b < n; b++)
        rinv[b] = 1.0 / A[(n - 1 - b) * n + (n - 1 - b)];
    if (inverse) {
        xf_threads_push_blas(1, &saved);
        info = LAPACKE_dtrtri_work(LAPACK_COL_MAJOR, 'U', 'N', (lapack_int)n, A, (lapack_int)n);
        xf_threads_pop(&saved);
        if (info != 0) {
            free(rinv);
            return -1;
        }
    }
    int bad = 0;
#pragma omp parallel for schedule(static) reduction(| : bad)
    for (int64_t a = 0; a < n; a++) {
        const double *src = A + (n - 1 - a) * n; /* src[n-1-b]: Ut[a][b] or U[a][b] */
        float *u = F + a * n;
        for (int64_t b = 0; b < a; b++)
            u[b] = 0.0f;
        if (inverse)
            for (int64_t b = a; b < n; b++)
                u[b] = (float)src[n - 1 - b];
        else
            for (int64_t b = a; b < n; b++)
                u[b] = (float)(-src[n - 1 - b] * rinv[b]);
        for (int64_t b = a; b < n; b++)
            bad |= !isfinite(u[b]);
        d[a] = (float)rinv[a];
        bad |= !(d[a] > 0.0f) || !isfinite(d[a]);
    }
    free(rinv);
    return bad ? -1 : 0;
}

/* The Cholesky form's sweep gives a group's grid fit the reference's
 * partial values through the inverse of the group's diagonal block of F
 * (gptq.c, to_inverse_form): n g^2 / 6 + 2 r n g more work, small next to
 * the n^3 / 3 it saves for the usual groups (32 .. 256), not for very wide
 * ones: groups fitted in the sweep wider than this take the inverse form. */
#define XF_GPTQ_CHOLESKY_MAX_GROUP 512

static bool wide_sweep_groups(const xf_gptq_params *p, int64_t n)
{
    if (p->ggml || p->static_groups) /* GGML blocks are <= 256 wide */
        return false;
    const int64_t g = xf_group_size_resolve(p->group, n);
    return g < n && g > XF_GPTQ_CHOLESKY_MAX_GROUP;
}

int xf_gptq_factor_init(xf_gptq_factor *f, const double *H, int64_t n, const xf_gptq_params *p,
                        const char *name, xf_error *err)
{
    memset(f, 0, sizeof *f);
    if (!name)
        name = "?";
    const double t0 = xf_now_seconds();
    size_t n2;
    if (n < 1 || n > INT32_MAX || __builtin_mul_overflow((size_t)n, (size_t)n, &n2) ||
        n2 > SIZE_MAX / sizeof(double))
        return xf_fail(err, "%s: invalid Hessian size %lld", name, (long long)n);
    if (!(p->damp >= 0.0 && isfinite(p->damp)) || !(p->max_damp >= 0.0) ||
        !isfinite(p->max_damp))
        return xf_fail(err, "%s: invalid damping %g (max %g)", name, p->damp, p->max_damp);
    for (size_t i = 0; i < n2; i++)
        if (!isfinite(H[i]))
            return xf_fail(err, "%s: Hessian entry [%lld, %lld] is not finite", name,
                           (long long)(i / (size_t)n), (long long)(i % (size_t)n));

    f->n = n;
    f->act_order = p->act_order;
    f->perm = malloc((size_t)n * sizeof *f->perm);
    f->dead = calloc((size_t)n, 1);
    f->inverse = p->inverse_factor || wide_sweep_groups(p, n);
    f->F = malloc(n2 * sizeof(float));
    f->d = malloc((size_t)n * sizeof *f->d);
    int32_t *tmp = malloc((size_t)n * sizeof *tmp);
    double *diag = malloc((size_t)n * sizeof *diag);
    double *A = malloc(n2 * sizeof(double));
    if (!f->perm || !f->dead || !f->F || !f->d || !tmp || !diag || !A) {
        free(tmp);
        free(diag);
        free(A);
        xf_gptq_factor_free(f);
        return xf_fail(err, "%s: out of memory factorizing a %lld x %lld Hessian", name,
                       (long long)n, (long long)n);
    }

    /* dead inputs (never active): H_ii = 1, their weights are zeroed later */
    double mean = 0.0;
    for (int64_t i = 0; i < n; i++) {
        diag[i] = H[i * n + i];
        if (diag[i] == 0.0) {
            f->dead[i] = 1;
            f->dead_columns++;
            diag[i] = 1.0;
        }
        mean += diag[i];
        f->perm[i] = (int32_t)i;
    }
    mean /= (double)n;
    if (p->act_order)
        sort_desc_stable(diag, f->perm, tmp, n);

    double damp = p->damp;
    int rc = -1;
    for (;;) {
        rc = try_factor(H, f->perm, f->dead, n, mean, damp * mean, f->inverse, A, f->F, f->d);
        if (rc != -1)
            break;
        double next = damp > 0.0 ? damp * 10.0 : 0.01;
        if (next > p->max_damp * (1.0 + 1e-9))
            break;
        xf_log_warn("%s: Hessian not positive definite with damp %g, retrying with %g", name,
                    damp, next);
        damp = next;
        f->retries++;
    }
    free(tmp);
    free(diag);
    free(A);
    if (rc == -2) {
        xf_gptq_factor_free(f);
        return xf_fail(err, "%s: out of memory factorizing a %lld x %lld Hessian", name,
                       (long long)n, (long long)n);
    }
    if (rc != 0) {
        int retries = f->retries;
        xf_gptq_factor_free(f);
        return xf_fail(err,
                       "%s: Hessian is not positive definite even with damp %g (%d retries, "
                       "max damp %g)",
                       name, damp, retries, p->max_damp);
    }
    f->damp_used = damp;
    f->seconds = xf_now_seconds() - t0;
    return 0;
}

void xf_gptq_factor_free(xf_gptq_factor *f)
{
    free(f->perm);
    free(f->dead);
    free(f->F);
    free(f->d);
    memset(f, 0, sizeof *f);
}
