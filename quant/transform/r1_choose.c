/* The residual rotation R1 of each --rotate kind (quant/transform/rotate.h). */
#include "quant/transform/rotate.h"

#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/threads.h"
#include "model/forward.h"
#include "sim/hadamard.h"
#include "quant/weights/hessian.h"

/* Accumulates the second moment of the residual readers' inputs (the
 * normalized stream entering q/k/v and gate/up, or fc1/c_fc for OPT and
 * GPT-2: with folded norms all see the same basis, which R1 rotates). */
typedef struct cov_ctx {
    xf_hessian hs;
    int last_layer;
} cov_ctx;

static int cov_hook(void *user, int layer, xf_linear_role role, float *x, int64_t rows,
                    int64_t cols, xf_error *err)
{
    cov_ctx *c = user;
    (void)cols; /* == hidden: the accumulator checks nothing else */
    const bool mlp = xf_lin_input_of_role(role) == XF_IN_MLP;
    if (role == XF_LIN_Q || mlp)
        if (xf_hessian_add(&c->hs, x, rows, err) != 0)
            return -1;
    /* the last layer's mlp input is the last one needed: skip the rest */
    return layer == c->last_layer && mlp ? XF_HOOK_STOP : 0;
}

/* R1 = eigenvectors of the covariance, by decreasing eigenvalue (columns),
 * so x -> x R1 is the KLT; optionally followed by the randomized Hadamard,
 * which spreads the dominant directions over all channels. */
static int klt_r1(const xf_model_weights *mw, const xf_r1_request *q, double *R1,
                  json_t *record, xf_error *err)
{
    const int64_t n = mw->cfg.hidden;
    if (!q->tokens || q->nsamples < 1)
        return xf_fail(err, "--rotate klt needs calibration text (--calib)");
    cov_ctx c = {.last_layer = (int)mw->cfg.n_layers - 1};
    if (xf_hessian_init(&c.hs, n, err) != 0)
        return -1;
    xf_runner r;
    if (xf_runner_init(&r, mw, q->T, 0, err) != 0) {
        xf_hessian_free(&c.hs);
        return -1;
    }
    xf_forward_hooks hooks = {.user = &c, .on_linear_input = cov_hook};
    int rc = 0;
    for (int64_t s = 0; s < q->nsamples && rc == 0; s++) {
        int k = xf_runner_forward_hooked(&r, q->tokens + s * q->T, q->T, &hooks, NULL, err);
        rc = k == XF_HOOK_STOP ? 0 : (k < 0 ? -1 : xf_fail(err, "klt: pass did not stop"));
    }
    xf_runner_free(&r);
    double *w = malloc((size_t)n * sizeof *w);
    if (rc == 0 && !w)
        rc = xf_fail(err, "klt: out of memory");
    if (rc == 0)
        rc = xf_hessian_finalize(&c.hs, R1, err);
    xf_hessian_free(&c.hs);
    /* dsyevd: ascending eigenvalues, eigenvectors in the columns of R1 */
    xf_threads_saved saved; /* one BLAS thread: the same bits for any thread count */
    xf_threads_push_blas(1, &saved);
    if (rc == 0 && LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', (lapack_int)n, R1, (lapack_int)n,
                                  w) != 0)
        rc = xf_fail(err, "klt: eigendecomposition of the %lld-wide covariance failed",
                     (long long)n);
    xf_threads_pop(&saved);
    if (rc == 0) {
        /* reverse the column order: largest variance first */
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < n / 2; j++) {
                double t = R1[i * n + j];
                R1[i * n + j] = R1[i * n + n - 1 - j];
                R1[i * n + n - 1 - j] = t;
            }
        json_object_set_new(record, "klt_eigenvalue_max", json_real(w[n - 1]));
        json_object_set_new(record, "klt_eigenvalue_min", json_real(w[0]));
        json_object_set_new(record, "klt_windows", json_integer(q->nsamples));
        json_object_set_new(record, "klt_hadamard", json_boolean(q->klt_hadamard));
    }
    free(w);
    if (rc == 0 && q->klt_hadamard) {
        xf_hadamard h;
        rc = xf_hadamard_init_random(&h, n, q->seed, err);
        if (rc == 0) {
            rc = xf_hadamard_rows_f64(&h, R1, n, false, err); /* R1 <- R1 H */
            xf_hadamard_free(&h);
        }
    }
    return rc;
}

int xf_rotation_r1(const xf_model_weights *mw, const xf_r1_request *q, double **R1,
                   json_t *record, xf_error *err)
{
    *R1 = NULL;
    const int64_t n = mw->cfg.hidden;
    double *R = malloc((size_t)(n * n) * sizeof *R);
    if (!R)
        return xf_fail(err, "out of memory for a %lld x %lld rotation", (long long)n,
                       (long long)n);
    int rc;
    switch (q->kind) {
    case XF_ROTATE_HADAMARD: rc = xf_hadamard_dense(n, &q->seed, R, err); break;
    case XF_ROTATE_KLT: rc = klt_r1(mw, q, R, record, err); break;
    case XF_ROTATE_LEARNED: rc = xf_learned_r1(mw, q, R, record, err); break;
    default: rc = xf_fail(err, "rotation kind %d has no R1", (int)q->kind);
    }
    if (rc != 0) {
        free(R);
        return -1;
    }
    *R1 = R;
    return 0;
}
