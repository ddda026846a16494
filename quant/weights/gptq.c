/* GPTQ stage 2: the blocked column sweep (lazy batch updates).
 *
 * W is copied into Wp, permuted to quantization order (dead columns
 * zeroed). Column i is quantized from its current value x = Wp[i] to q, and
 * then propagates e_i F[i][j] to every column j > i: Wp[j] -= e_i F[i][j].
 * With the inverse form (F = U, the reference's upper Cholesky factor of
 * H^-1), e_i = (x - q) / U_ii: the reference's error feedback. With the
 * Cholesky form (F = -Ut diag(Ut)^-1, H = Ut Ut^T, U = Ut^-1, no inverse
 * formed), e_i = w_i - q, w_i the column's *original* weight: the two give
 * the same x for every column in exact arithmetic. Proof: the reference's
 * loop states W - Q = Err U (row vectors, Err = the scaled errors, U upper
 * with its diagonal), so Err = (W - Q) Ut, and column j's final value is
 * x_j = q_j + Err_j U_jj = w_j + sum_{k<j} (w_k - q_k) Ut[k][j] / Ut[j][j].
 * (GPTQ as Babai's nearest-plane algorithm on the Cholesky factor.) So the
 * sweep needs no triangular inverse, only Ut, and the update is a product
 * with known errors instead of a recurrence; in fp32 the x differ from the
 * inverse form's in the last bits only (a code flips where x sits on a
 * rounding boundary). The loss uses (x - q) / U_ii in both forms.
 *
 * Per block of B columns [i1, i2): every row runs the column loop on its
 * own (rows are independent), recording the propagated errors E [rows, B]
 * (and the scaled errors for the loss in L); then the columns right of the
 * block get one cblas_sgemm: Wp[:, i2:] -= E F[i1:i2, i2:] (one per block
 * and per thread's row slice, see below). Inside the block the same idea is
 * used once more with sub-blocks of SUB_BLOCK columns. All sweep arithmetic
 * is fp32 with fp32 F, as the reference; only the summation order of the
 * updates differs from the plain column-by-column algorithm.
 *
 * Group grids (non-static) are fitted when column i reaches a group start,
 * on the *current* weights of columns [i, i+g): the updates still pending
 * for columns past the sub-block / block (from the columns before i) are
 * applied to a copy first. So the result does not depend on the block size
 * (the reference reads W[:, i:i+g] there, which misses the updates of the
 * current block when g and B are not aligned).
 *
 * Outliers (dense-and-sparse, see gptq.h): chosen before the sweep from the
 * scores of outlier_scores, then carried as a [rows, n] mask in
 * quantization order that the grid fits skip and the column loop keeps. */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/progress.h"
#include "core/threads.h"
#include "core/half.h"
#include "quant/weights/gptq.h"
#include "quant/weights/outliers.h"


/* Read-only description of one solve, shared by the row workers. */
typedef struct sweep_ctx {
    int64_t n;             /* columns */
    int64_t g;             /* group size (n = per channel) */
    int64_t B;             /* block width (leading dimension of E and L) */
    const float *F;        /* [n, n] the factor (xf_gptq_factor.F) */
    const float *d;        /* [n] U_ii */
    bool inverse;          /* F's form: e = (x - q) / U_ii, else e = w - q */
    const float *W0;       /* Cholesky form: the input weights [rows, n], logical order */
    const int32_t *perm;   /* [n] logical column of position i */
    const uint8_t *dead;   /* [n] by logical column */
    bool identity;         /* perm is the identity and no column is dead */
    const float *M;        /* Cholesky form with in-sweep group fits: [n_groups, g, g]
                              (see group_inverses), else NULL */
    const int32_t *grp;    /* [n] group index of quantization position i */
    const int32_t *store;  /* [n] storage column of position i */
    const uint8_t *fit_at; /* [n] 1 where a grid is fitted (group start) */
    const uint8_t *mask;   /* [rows, n] outliers in quantization order, or NULL */
    xf_grid_config grid;
    const xf_ggml_grid_traits *gg; /* GGML block grid, or NULL */
    xf_ggml_sub *subs;     /* gg: [rows, n_groups, block / sub] decoded sub-blocks */
    const float *imp;      /* gg: [n] fit importance 1 / U_ii^2 by quantization position */
    /* QRazor (xf_gptq_params.razor_group): [rows] 8-bit base scales, the
     * kept bits, and [rows, n_groups] each run's shift, set by fit_group */
    const float *razor_base;
    int razor_keep;
    uint8_t *razor_k;
} sweep_ctx;

/* QRazor: the base integer of x (quant/weights/razor_weights.h) */
static inline int32_t razor_int(float x, float s)
{
    float v = rintf(x / s);
    return (int32_t)(v < -127.0f ? -127.0f : v > 127.0f ? 127.0f : v);
}

/* QRazor: the run's shift from its current values v[0..len) */
static xf_grid razor_fit(const sweep_ctx *c, int64_t r, int64_t gi, int64_t n_groups,
                         const float *v, int64_t len)
{
    const float s = c->razor_base[r];
    int32_t M = 0;
    for (int64_t j = 0; j < len; j++) {
        int32_t a = abs(razor_int(v[j], s));
        M = a > M ? a : M;
    }
    int p = 0;
    while (M != 0 && (M >> (p + 1)) != 0)
        p++;
    const int k = p - c->razor_keep + 1 > 0 ? p - c->razor_keep + 1 : 0;
    c->razor_k[r * n_groups + gi] = (uint8_t)k;
    xf_grid g = {.scale = ldexpf(s, k), .zero = 128, .maxq = 255};
    return g;
}

/* QRazor: x razored with the run's shift; its code on grid gr */
static inline uint8_t razor_code(const sweep_ctx *c, int64_t r, int64_t gi, int64_t n_groups,
                                 float x)
{
    const int k = c->razor_k[r * n_groups + gi];
    const int32_t q = razor_int(x, c->razor_base[r]), top = (1 << c->razor_keep) - 1;
    int32_t a = (abs(q) + (k > 0 ? 1 << (k - 1) : 0)) >> k;
    a = a > top ? top : a;
    return (uint8_t)(128 + (q < 0 ? -a : a));
}

/* gg: the decoded sub-blocks of row r's block gi. */
static inline xf_ggml_sub *block_subs(const sweep_ctx *c, const xf_qweight *q, int64_t r,
                                      int64_t gi)
{
    return c->subs + ((size_t)r * (size_t)q->n_groups + (size_t)gi) * (size_t)(c->gg->block /
                                                                                  c->gg->sub);
}

/* Row r's original weight at quantization position i (Cholesky form). */
static inline float orig_weight(const sweep_ctx *c, int64_t r, int64_t i)
{
    if (c->identity)
        return c->W0[r * c->n + i];
    const int32_t j = c->perm[i];
    return c->dead[j] ? 0.0f : c->W0[r * c->n + j];
}

/* Cholesky form, group fits: a grid is fitted at column i on the *current*
 * weights of columns [i, i+g), i.e. with the updates of the columns before
 * i only. Those partial values differ between the forms (only the complete
 * sums, at j = i, agree): with P_j = w_j + sum_{k<i} (w_k - q_k) Ut[k][j] /
 * Ut[j][j] the Cholesky form's partial value, the inverse form's is
 * X_j = w_j + sum_{i<=l<=j} (P_l - w_l) M[l][j], M = (-F[i:i+g, i:i+g])^-1
 * (unit upper; M = diag(U)^-1 U on the block). Proof: with Err_1, Q_1 the
 * columns before i, the reference has X_2 = W_2 - Err_1 U_12 and Err_1 =
 * (W_1 - Q_1) Ut_11, and U_11^-1 U_12 = -Ut_12 U_22 (from U Ut = I), so
 * X_2 = W_2 + (W_1 - Q_1) Ut_12 U_22; (P - W)_2 = (W_1 - Q_1) Ut_12
 * diag(Ut_22)^-1 and U_22 is upper, so the block's own columns suffice.
 * V: the P of the group (len columns) of the tile's m rows in (stride g),
 * X out; e: the rows' E (stride B; the original weights of the block's
 * columns from i on); D: m * g floats scratch. One small GEMM per tile and
 * group. */
static void to_inverse_form(const sweep_ctx *c, int64_t ra, int64_t m, int64_t i, int64_t len,
                            const float *e, int64_t i1, int64_t i2, float *restrict V,
                            float *restrict D)
{
    const int64_t g = c->g, B = c->B;
    const float *M = c->M + (size_t)(i / g) * (size_t)g * (size_t)g;
    for (int64_t t = 0; t < m; t++)
        for (int64_t l = 0; l < len; l++) {
            const int64_t j = i + l; /* E holds the block's original weights from i on */
            const float w = j < i2 ? e[t * B + (j - i1)] : orig_weight(c, ra + t, j);
            D[t * g + l] = V[t * g + l] - w;
            V[t * g + l] = w;
        }
    /* V += D M (M unit upper, zero below the diagonal) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)len, (int)len, 1.0f, D,
                (int)g, M, (int)g, 1.0f, V, (int)g);
}

/* Row r's current weights of the group [i, c1) into vals. Column i lies in
 * sub-block [s1, s2) of block [i1, i2); w: the row of Wp; e: its row of E.
 * Columns in [s2, i2) still miss the updates of columns s1..i-1, columns
 * from i2 on those of i1..i-1. */
static void group_values(const sweep_ctx *c, const float *w, const float *e, int64_t i,
                         int64_t c1, int64_t i1, int64_t s1, int64_t s2, int64_t i2,
                         float *restrict vals)
{
    const int64_t n = c->n;
    for (int64_t j = i; j < c1; j++)
        vals[j - i] = w[j];
    const int64_t blk_end = c1 < i2 ? c1 : i2;
    for (int64_t k = s1; k < i && s2 < blk_end; k++) {
        const float ek = e[k - i1];
        const float *uk = c->F + k * n;
        for (int64_t j = s2; j < blk_end; j++)
            vals[j - i] -= ek * uk[j];
    }
    for (int64_t k = i1; k < i && i2 < c1; k++) {
        const float ek = e[k - i1];
        const float *uk = c->F + k * n;
        for (int64_t j = i2; j < c1; j++)
            vals[j - i] -= ek * uk[j];
    }
}

/* Rows handled together by one thread: each row is a serial chain of
 * divisions and updates; interleaving a few independent rows column by
 * column lets the CPU overlap their latencies (and reuses each F row). */
enum { ROW_TILE = 8 };
/* Rows per independent sweep slice (sweep_all_rows): a multiple of ROW_TILE. */
enum { SWEEP_ROWS = 256 };

/* Fits the grids of rows [ra, rb) (at most ROW_TILE) for the group
 * starting at column i on the rows' current weights (outliers left out,
 * gathered in `gather`); w, e as in sweep_tile. vals: 2 * ROW_TILE * g
 * floats scratch. */
static void fit_group(const sweep_ctx *c, xf_qweight *q, int64_t ra, int64_t rb, const float *w,
                      const float *e, int64_t i, int64_t i1, int64_t s1, int64_t s2, int64_t i2,
                      float *restrict vals, float *restrict gather)
{
    const int64_t n = c->n, g = c->g, m = rb - ra;
    const int64_t c1 = i + g < n ? i + g : n;
    for (int64_t t = 0; t < m; t++)
        group_values(c, w + t * n, e + t * c->B, i, c1, i1, s1, s2, i2, vals + t * g);
    if (c->M && i > 0)
        to_inverse_form(c, ra, m, i, c1 - i, e, i1, i2, vals, vals + ROW_TILE * g);
    for (int64_t t = 0; t < m; t++) {
        const int64_t r = ra + t;
        float *v = vals + t * g;
        if (c->gg) { /* blocks are whole: n is a multiple of the block, no perm */
            xf_ggml_grid_fit(c->gg, v, c->imp + i, xf_qweight_block(q, r, c->grp[i]),
                             block_subs(c, q, r, c->grp[i]));
            continue;
        }
        xf_grid fit = c->razor_base ? razor_fit(c, r, c->grp[i], q->n_groups, v, c1 - i)
                      : c->mask     ? xf_outliers_fit(&c->grid, v, c->mask + r * n + i, c1 - i,
                                                      gather)
                                    : xf_grid_fit(&c->grid, v, c1 - i);
        xf_qweight_set_grid(q, r, c->grp[i], &fit);
    }
}

/* Columns per sub-block: inside a block, the column-by-column updates only
 * reach the end of the sub-block; a small GEMM then updates the rest of
 * the block (the same lazy-batch idea one level down; the scalar update
 * loops cost rows*cols*SUB/2 instead of rows*cols*B/2). */
enum { SUB_BLOCK = 16 };

/* The propagated error of a column quantized from x to qv; eo: its E slot
 * (the Cholesky form keeps the original weight there until then). */
static inline float prop_error(const sweep_ctx *c, float eo, float x, float qv, float d)
{
    return c->inverse ? (x - qv) / d : eo - qv;
}

/* Columns [s1, s2) (a sub-block of block [i1, i2)) of rows [ra, rb)
 * (rb - ra <= ROW_TILE): Wp rows in w (stride n), their E and L rows in e
 * and l (stride B, column k - i1 for column k). Cholesky form: e holds the
 * original weights of the block's columns not yet quantized (sweep_rows). */
static void sweep_tile(const sweep_ctx *c, xf_qweight *q, int64_t ra, int64_t rb, float *w,
                       float *e, float *l, int64_t i1, int64_t s1, int64_t s2, int64_t i2,
                       float *vals, float *gather)
{
    const int64_t n = c->n, B = c->B, m = rb - ra;
    for (int64_t i = s1; i < s2; i++) {
        const float d = c->d[i];
        const float *ui = c->F + i * n;
        const int64_t gi = c->grp[i], st = c->store[i];
        if (c->fit_at[i])
            fit_group(c, q, ra, rb, w, e, i, i1, s1, s2, i2, vals, gather);
        for (int64_t t = 0; t < m; t++) {
            const int64_t r = ra + t;
            float *restrict wr = w + t * n;
            const float x = wr[i];
            if (c->gg) {
                const int64_t j = st % c->gg->block;
                float qv;
                const int code =
                    xf_ggml_grid_code(c->gg, block_subs(c, q, r, gi) + j / c->gg->sub, x, &qv);
                xf_ggml_grid_put_code(c->gg, xf_qweight_block(q, r, gi), (int)j, code);
                const float pe = prop_error(c, e[t * B + (i - i1)], x, qv, d);
                l[t * B + (i - i1)] = (x - qv) / d;
                e[t * B + (i - i1)] = pe;
                wr[i] = qv;
                for (int64_t j2 = i + 1; j2 < s2; j2++)
                    wr[j2] -= pe * ui[j2];
                continue;
            }
            const xf_grid gr = xf_qweight_grid(q, r, gi);
            if (c->mask && c->mask[r * n + i]) {
                /* an outlier keeps its current value (fp16, as stored): no
                 * error, nothing to propagate (as if q = x); its code is the
                 * zero point */
                l[t * B + (i - i1)] = 0.0f;
                e[t * B + (i - i1)] = c->inverse ? 0.0f : e[t * B + (i - i1)] - x;
                q->codes[r * n + st] = gr.zero;
                wr[i] = xf_f16_to_f32(xf_f32_to_f16(x));
                continue;
            }
            const uint8_t code = c->razor_base ? razor_code(c, r, gi, q->n_groups, x)
                                               : xf_grid_quantize(&gr, x);
            const float qv = xf_grid_dequantize(&gr, code);
            const float pe = prop_error(c, e[t * B + (i - i1)], x, qv, d);
            l[t * B + (i - i1)] = (x - qv) / d;
            e[t * B + (i - i1)] = pe;
            q->codes[r * n + st] = code;
            wr[i] = qv;
            for (int64_t j = i + 1; j < s2; j++)
                wr[j] -= pe * ui[j];
        }
    }
}

/* SpQR sensitivities in quantization order (xf_outliers_score_group with
 * error weights 1 / U_ii^2: the GPTQ loss of each position) of the original
 * (dead-zeroed) weights, in the groups the solve fits: per channel (a whole
 * row), static groups (logical columns) or runs of g quantization
 * positions. wq: [n] 1 / U_ii^2 by position, wl: the same by logical column.
 * scratch: 3n floats per thread. */
static void outlier_scores(const float *W, int64_t rows, const xf_gptq_factor *f,
                           const xf_grid_config *gc, int64_t g, bool static_g, const int32_t *pos,
                           const float *wq, const float *wl, float *score, float *scratch)
{
    const int64_t n = f->n;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        float *y = scratch + (size_t)omp_get_thread_num() * 3 * (size_t)n; /* logical */
        float *x = y + n;       /* quantization order */
        float *sl = x + n;      /* static groups: scores by logical column */
        float *s = score + r * n;
        for (int64_t j = 0; j < n; j++)
            y[j] = f->dead[j] ? 0.0f : W[r * n + j];
        for (int64_t i = 0; i < n; i++)
            x[i] = y[f->perm[i]];
        for (int64_t k0 = 0; k0 < n; k0 += g) {
            const int64_t k1 = k0 + g < n ? k0 + g : n;
            if (static_g)
                xf_outliers_score_group(gc, y + k0, wl + k0, k1 - k0, sl + k0);
            else
                xf_outliers_score_group(gc, x + k0, wq + k0, k1 - k0, s + k0);
        }
        for (int64_t j = 0; static_g && j < n; j++)
            s[pos[j]] = sl[j];
    }
}

/* Chooses the `count` outliers of W: mask [rows, n] in quantization order. */
static int choose_outliers(const float *W, int64_t rows, const xf_gptq_factor *f,
                           const xf_gptq_params *p, int64_t g, bool static_g, const int32_t *pos,
                           int64_t count, uint8_t *mask, const char *name, xf_error *err)
{
    const int64_t n = f->n;
    const size_t N = (size_t)rows * (size_t)n;
    float *score = malloc(N * sizeof *score);
    float *scratch = malloc((size_t)omp_get_max_threads() * 3 * (size_t)n * sizeof *scratch);
    float *wq = malloc(2 * (size_t)n * sizeof *wq), *wl = wq ? wq + n : NULL;
    int rc = -1;
    if (!score || !scratch || !wq) {
        xf_fail(err, "%s: out of memory scoring outliers", name);
    } else {
        for (int64_t i = 0; i < n; i++) {
            const double d = f->d[i];
            wq[i] = (float)(1.0 / (d * d));
        }
        for (int64_t j = 0; j < n; j++)
            wl[j] = wq[pos[j]];
        outlier_scores(W, rows, f, &p->grid, g, static_g, pos, wq, wl, score, scratch);
        rc = xf_outliers_select(score, (int64_t)N, count, mask, name, err);
    }
    free(score);
    free(scratch);
    free(wq);
    return rc;
}

/* Refuses what the sweep cannot do, before anything is allocated. */
static int check_solve(const float *W, int64_t rows, const xf_gptq_factor *f,
                       const xf_gptq_params *p, const char *name, xf_error *err)
{
    const int64_t n = f->n;
    if (xf_grid_config_check(&p->grid, name, err) != 0)
        return -1;
    if (rows < 1)
        return xf_fail(err, "%s: %lld rows", name, (long long)rows);
    if (p->block < 1)
        return xf_fail(err, "%s: block size %lld must be >= 1", name, (long long)p->block);
    if (p->act_order != f->act_order)
        return xf_fail(err, "%s: act-order setting differs from the factorized Hessian's", name);
    int64_t bad = xf_first_nonfinite(W, rows * n);
    if (bad >= 0)
        return xf_fail(err, "%s: non-finite weight at [%lld, %lld]", name,
                       (long long)(bad / n), (long long)(bad % n));
    const xf_ggml_grid_traits *gg = p->ggml;
    if (gg && n % gg->block != 0)
        return xf_fail(err, "%s: %lld columns are not a multiple of the %s block size %d", name,
                       (long long)n, xf_ggml_traits(gg->type)->name, gg->block);
    if (gg && p->outliers > 0)
        return xf_fail(err, "%s: outliers cannot be stored in GGML blocks", name);
    if (gg && p->act_order && !p->static_groups)
        return xf_fail(err, "%s: act-order on a GGML grid needs static groups (GGUF stores no "
                            "column permutation)", name);
    if (p->razor_group > 0 && (gg || p->outliers > 0 || p->static_groups ||
                               p->grid.bits < 2 || p->grid.bits > 7))
        return xf_fail(err, "%s: the razor grid keeps 2..7 bits, without static groups, GGML "
                            "grids or outliers", name);
    return 0;
}

/* How the columns of one solve are grouped and stored. */
typedef struct sweep_layout {
    int64_t g;        /* group size (a GGML type's block) */
    bool per_channel; /* one grid per row */
    bool static_g;    /* groups of logical columns, fitted before the sweep */
    bool identity;    /* no column permutation */
    bool store_perm;  /* act-order without static groups: the .xfq keeps the permutation */
    int64_t B;        /* block width */
} sweep_layout;

static sweep_layout layout_of(const xf_gptq_factor *f, const xf_gptq_params *p)
{
    const int64_t n = f->n;
    sweep_layout l;
    l.g = p->ggml            ? p->ggml->block
          : p->razor_group > 0 ? xf_group_size_resolve(p->razor_group, n)
                               : xf_group_size_resolve(p->group, n);
    l.per_channel = l.g == n && !p->ggml;
    l.static_g = p->static_groups && !l.per_channel;
    l.identity = true;
    for (int64_t i = 0; i < n && l.identity; i++)
        l.identity = f->perm[i] == i;
    l.store_perm = f->act_order && !l.per_channel && !l.static_g && !l.identity;
    l.B = p->block < n ? p->block : n;
    return l;
}

/* The working memory of one solve (sweep_buffers_alloc / sweep_buffers_free). */
typedef struct sweep_buffers {
    int nthreads;
    int64_t scratch_len;   /* per-thread scratch: a group of ROW_TILE rows, or a row with
                              static groups */
    float *Wp;             /* [rows, n] W in quantization order, updated by the sweep */
    float *E;              /* [rows, B] propagated errors of the current block */
    float *L;              /* [rows, B] its scaled errors (x - q) / U_ii, for the loss */
    float *scratch;        /* [nthreads, 2 * scratch_len] */
    float *M;              /* Cholesky form with in-sweep group fits: group_inverses */
    int32_t *grp, *store;  /* [n] group and storage column of each position */
    uint8_t *fit_at;       /* [n] */
    double *row_loss, *row_qerr; /* [rows] */
    double *thread_gemm_s; /* [nthreads] */
    /* outliers only: the mask, the inverse permutation (position of each
     * logical column), per-thread gather buffers and logical row masks */
    uint8_t *mask;
    int32_t *pos;
    float *gather;
    uint8_t *lmask;
    /* GGML grids: decoded sub-blocks, fit importance by position and (static
     * groups) by logical column */
    xf_ggml_sub *subs;
    float *imp;
} sweep_buffers;

static void sweep_buffers_free(sweep_buffers *b)
{
    free(b->Wp);
    free(b->E);
    free(b->L);
    free(b->scratch);
    free(b->M);
    free(b->grp);
    free(b->store);
    free(b->fit_at);
    free(b->row_loss);
    free(b->row_qerr);
    free(b->thread_gemm_s);
    free(b->mask);
    free(b->pos);
    free(b->gather);
    free(b->lmask);
    free(b->subs);
    free(b->imp);
    memset(b, 0, sizeof *b);
}

static int sweep_buffers_alloc(sweep_buffers *b, int64_t rows, int64_t n, const sweep_layout *l,
                               const xf_ggml_grid_traits *gg, int64_t n_out, bool need_M,
                               const char *name, xf_error *err)
{
    memset(b, 0, sizeof *b);
    b->nthreads = omp_get_max_threads();
    b->scratch_len = l->static_g ? n : ROW_TILE * l->g;
    const size_t per_thread = (size_t)b->nthreads * (size_t)b->scratch_len;
    if (n_out) {
        b->mask = malloc((size_t)rows * (size_t)n);
        b->pos = malloc((size_t)n * sizeof *b->pos);
        b->gather = malloc(per_thread * sizeof *b->gather);
        if (l->static_g)
            b->lmask = malloc((size_t)b->nthreads * (size_t)n);
    }
    b->Wp = malloc((size_t)rows * (size_t)n * sizeof *b->Wp);
    b->E = malloc((size_t)rows * (size_t)l->B * sizeof *b->E);
    b->L = malloc((size_t)rows * (size_t)l->B * sizeof *b->L);
    b->scratch = malloc(2 * per_thread * sizeof *b->scratch);
    if (need_M)
        b->M = malloc((size_t)((n + l->g - 1) / l->g) * (size_t)l->g * (size_t)l->g *
                      sizeof *b->M);
    b->grp = malloc((size_t)n * sizeof *b->grp);
    b->store = malloc((size_t)n * sizeof *b->store);
    b->fit_at = calloc((size_t)n, 1);
    b->row_loss = calloc((size_t)rows, sizeof *b->row_loss);
    b->row_qerr = calloc((size_t)rows, sizeof *b->row_qerr);
    b->thread_gemm_s = calloc((size_t)b->nthreads, sizeof *b->thread_gemm_s);
    if (gg) {
        b->subs = malloc((size_t)rows * (size_t)(n / gg->sub) * sizeof *b->subs);
        b->imp = malloc(2 * (size_t)n * sizeof *b->imp);
    }
    if (!b->Wp || !b->E || !b->L || !b->scratch || (need_M && !b->M) || !b->grp || !b->store ||
        !b->fit_at || !b->row_loss || !b->row_qerr || !b->thread_gemm_s || (gg && (!b->subs || !b->imp)) ||
        (n_out && (!b->mask || !b->pos || !b->gather || (l->static_g && !b->lmask)))) {
        sweep_buffers_free(b);
        return xf_fail(err, "%s: out of memory for the GPTQ sweep of a [%lld, %lld] weight", name,
                       (long long)rows, (long long)n);
    }
    return 0;
}

/* Cholesky form, in-sweep group fits (see to_inverse_form): for every group
 * [s, s+len) after the first, M = (-F[s:s+len, s:s+len])^-1, unit upper,
 * row-major with stride g, by back substitution in fp64 from the fp32 F:
 * M[l][j] = sum_{l<k<=j} F[l][k] M[k][j]. n g^2 / 6 multiply-adds. */
static int group_inverses(const xf_gptq_factor *f, int64_t g, float *M)
{
    const int64_t n = f->n, groups = (n + g - 1) / g;
    double *cols = malloc((size_t)omp_get_max_threads() * (size_t)g * sizeof *cols);
    if (!cols)
        return -1;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t G = 1; G < groups; G++) {
        double *col = cols + (size_t)omp_get_thread_num() * (size_t)g;
        const int64_t s0 = G * g, len = s0 + g < n ? g : n - s0;
        float *m = M + (size_t)G * (size_t)g * (size_t)g;
        for (int64_t j = 0; j < len; j++) { /* column j of M */
            for (int64_t l = 0; l < g; l++) /* below the diagonal stays 0 */
                m[l * g + j] = 0.0f;
            m[j * g + j] = 1.0f;
            col[j] = 1.0;
            for (int64_t l = j - 1; l >= 0; l--) {
                const float *fl = f->F + (s0 + l) * n + s0;
                double a = 0.0;
                for (int64_t k = l + 1; k <= j; k++)
                    a += (double)fl[k] * col[k];
                col[l] = a;
                m[l * g + j] = (float)a;
            }
        }
    }
    free(cols);
    return 0;
}

/* Group, storage column and grid-fit points of each quantization position. */
static void plan_columns(const xf_gptq_factor *f, const sweep_layout *l, sweep_buffers *b)
{
    for (int64_t i = 0; i < f->n; i++) {
        const int32_t orig = f->perm[i];
        if (l->per_channel) {
            b->grp[i] = 0;
            b->store[i] = orig;
            b->fit_at[i] = i == 0;
        } else if (l->static_g) {
            b->grp[i] = (int32_t)(orig / l->g);
            b->store[i] = orig;
        } else {
            b->grp[i] = (int32_t)(i / l->g);
            b->store[i] = l->store_perm ? (int32_t)i : orig; /* orig == i without a perm */
            b->fit_at[i] = i % l->g == 0;
        }
    }
}

/* Rows [r0, r1) of Wp: W in quantization order, dead columns zeroed. */
static void permute_rows(const float *W, const xf_gptq_factor *f, bool identity, float *Wp,
                         int64_t r0, int64_t r1)
{
    const int64_t n = f->n;
    for (int64_t r = r0; r < r1; r++)
        if (identity && f->dead_columns == 0)
            memcpy(Wp + r * n, W + r * n, (size_t)n * sizeof *Wp);
        else
            for (int64_t i = 0; i < n; i++)
                Wp[r * n + i] = f->dead[f->perm[i]] ? 0.0f : W[r * n + f->perm[i]];
}

/* Static groups: rows [r0, r1)'s grids of logical column groups, fitted on
 * the original weights before the sweep. vals: n floats; lm: n bytes or NULL. */
static void fit_static_groups(const sweep_ctx *c, const xf_gptq_factor *f, xf_qweight *out,
                              const float *Wp, const float *imp_l, int64_t r0, int64_t r1,
                              float *vals, uint8_t *lm, float *gat)
{
    const int64_t n = c->n, g = c->g;
    for (int64_t r = r0; r < r1; r++) {
        for (int64_t i = 0; i < n; i++)
            vals[f->perm[i]] = Wp[r * n + i];
        for (int64_t i = 0; lm && i < n; i++)
            lm[f->perm[i]] = c->mask[r * n + i];
        for (int64_t gi = 0; gi < out->n_groups; gi++) {
            int64_t j0 = gi * g, j1 = j0 + g < n ? j0 + g : n;
            if (c->gg) {
                xf_ggml_grid_fit(c->gg, vals + j0, imp_l + j0, xf_qweight_block(out, r, gi),
                                 block_subs(c, out, r, gi));
                continue;
            }
            xf_grid fit = lm ? xf_outliers_fit(&c->grid, vals + j0, lm + j0, j1 - j0, gat)
                             : xf_grid_fit(&c->grid, vals + j0, j1 - j0);
            xf_qweight_set_grid(out, r, gi, &fit);
        }
    }
}

/* The blocked sweep of rows [r0, r1): quantizes Wp in place, accumulates
 * each row's loss; returns the seconds spent in the trailing GEMMs. */
static double sweep_rows(const sweep_ctx *c, xf_qweight *out, float *Wp, float *E, float *L,
                         double *row_loss, int64_t r0, int64_t r1, float *vals, float *gat)
{
    const int64_t n = c->n, B = c->B, m = r1 - r0;
    double gs = 0.0;
    for (int64_t i1 = 0; i1 < n && m > 0; i1 += B) {
        const int64_t i2 = i1 + B < n ? i1 + B : n;
        /* Cholesky form: the block's original weights, in E until each column
         * replaces its own with its propagated error (compact rows: read
         * from W0 in place, column by column, they were cache misses) */
        for (int64_t r = r0; r < r1 && !c->inverse; r++) {
            if (c->identity)
                memcpy(E + r * B, c->W0 + r * n + i1, (size_t)(i2 - i1) * sizeof *E);
            else
                for (int64_t k = i1; k < i2; k++)
                    E[r * B + (k - i1)] = orig_weight(c, r, k);
        }
        for (int64_t s1 = i1; s1 < i2; s1 += SUB_BLOCK) {
            const int64_t s2 = s1 + SUB_BLOCK < i2 ? s1 + SUB_BLOCK : i2;
            for (int64_t ra = r0; ra < r1; ra += ROW_TILE) {
                const int64_t rb = ra + ROW_TILE < r1 ? ra + ROW_TILE : r1;
                sweep_tile(c, out, ra, rb, Wp + ra * n, E + ra * B, L + ra * B, i1, s1, s2, i2,
                           vals, gat);
            }
            if (s2 < i2) /* Wp[rows, s2:i2] -= E[rows, s1:s2] F[s1:s2, s2:i2] */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)(i2 - s2),
                            (int)(s2 - s1), -1.0f, E + r0 * B + (s1 - i1), (int)B,
                            c->F + s1 * n + s2, (int)n, 1.0f, Wp + r0 * n + s2, (int)n);
        }
        /* loss (w - q)^2 / d^2 = err^2, summed off the serial chain */
        for (int64_t r = r0; r < r1; r++) {
            double l = 0.0;
            for (int64_t k = 0; k < i2 - i1; k++)
                l += (double)L[r * B + k] * L[r * B + k];
            row_loss[r] += l;
        }
        if (i2 < n) { /* Wp[rows, i2:] -= E[rows, :] F[i1:i2, i2:] */
            const double tg = xf_now_seconds();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)(n - i2),
                        (int)(i2 - i1), -1.0f, E + r0 * B, (int)B, c->F + i1 * n + i2, (int)n,
                        1.0f, Wp + r0 * n + i2, (int)n);
            gs += xf_now_seconds() - tg;
        }
    }
    return gs;
}

/* Rows are independent in GPTQ, so every OpenMP thread runs the whole
 * sweep on its own slices of rows, with its own per-block cblas_sgemm for
 * a slice's trailing update, and the threads never synchronize. The slices
 * are fixed by the row count alone (SWEEP_ROWS rows, or fewer for a small
 * matrix), never by the thread count: a GEMM's sums can depend on its row
 * count, and the file must not depend on --threads. The
 * caller has set OpenBLAS to one thread meanwhile: alternating OpenMP
 * regions with multi-threaded BLAS calls on the same cores lets the idle
 * side spin-wait against the busy one (measured 1.5-50x slower here). */
static void sweep_all_rows(const sweep_ctx *c, const xf_gptq_factor *f, const sweep_layout *l,
                           const float *W, int64_t rows, xf_qweight *out, sweep_buffers *b)
{
    const float *imp_l = b->imp ? b->imp + c->n : NULL;
    const int64_t slices = (rows + SWEEP_ROWS - 1) / SWEEP_ROWS;
#pragma omp parallel num_threads(b->nthreads)
    {
        const int t = omp_get_thread_num();
        float *vals = b->scratch + (size_t)t * 2 * (size_t)b->scratch_len;
        float *gat = b->gather ? b->gather + (size_t)t * (size_t)b->scratch_len : NULL;
        uint8_t *lm = b->lmask ? b->lmask + (size_t)t * (size_t)c->n : NULL;
        b->thread_gemm_s[t] = 0.0;
#pragma omp for schedule(dynamic, 1)
        for (int64_t s = 0; s < slices; s++) {
            const int64_t r0 = s * SWEEP_ROWS, r1 = r0 + SWEEP_ROWS < rows ? r0 + SWEEP_ROWS : rows;
            permute_rows(W, f, l->identity, b->Wp, r0, r1);
            if (l->static_g)
                fit_static_groups(c, f, out, b->Wp, imp_l, r0, r1, vals, lm, gat);
            b->thread_gemm_s[t] +=
                sweep_rows(c, out, b->Wp, b->E, b->L, b->row_loss, r0, r1, vals, gat);
        }
    }
}

/* Q back to logical order into W; each row's ||W - Q||^2 on the way. */
static void store_result(float *W, int64_t rows, const xf_gptq_factor *f, const float *Wp,
                         double *row_qerr)
{
    const int64_t n = f->n;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        double s = 0.0;
        for (int64_t i = 0; i < n; i++) {
            float *dst = W + r * n + f->perm[i];
            double d = (double)*dst - Wp[r * n + i];
            s += d * d;
            *dst = Wp[r * n + i];
        }
        row_qerr[r] = s;
    }
}

static void fill_stats(xf_gptq_stats *st, const xf_gptq_factor *f, const sweep_buffers *b,
                       int64_t rows, int64_t B, double loss, double t0)
{
    const int64_t n = f->n;
    double gemm_s = 0.0, gemm_flops = 0.0;
    for (int t = 0; t < b->nthreads; t++) /* the threads' GEMMs ran side by side */
        gemm_s = b->thread_gemm_s[t] > gemm_s ? b->thread_gemm_s[t] : gemm_s;
    for (int64_t i2 = B; i2 < n; i2 += B)
        gemm_flops += 2.0 * (double)rows * (double)B * (double)(n - i2);
    memset(st, 0, sizeof *st);
    st->damp_used = f->damp_used;
    st->retries = f->retries;
    st->dead_columns = f->dead_columns;
    st->loss = loss / 2.0; /* the reference stores Losses1 / 2 */
    for (int64_t r = 0; r < rows; r++)
        st->qerr += b->row_qerr[r];
    st->seconds_factor = f->seconds;
    st->seconds_sweep = xf_now_seconds() - t0;
    st->seconds_gemm = gemm_s;
    st->gemm_flops = gemm_flops;
}

int xf_gptq_solve_factored(float *W, int64_t rows, const xf_gptq_factor *f,
                           const xf_gptq_params *p, xf_qweight *out, xf_gptq_stats *st,
                           const char *name, xf_error *err)
{
    memset(out, 0, sizeof *out);
    if (!name)
        name = "?";
    const double t0 = xf_now_seconds();
    const int64_t n = f->n;
    if (check_solve(W, rows, f, p, name, err) != 0)
        return -1;
    const xf_ggml_grid_traits *gg = p->ggml;
    const sweep_layout l = layout_of(f, p);
    const bool razor = p->razor_group > 0;
    if (gg ? xf_qweight_init_ggml(out, rows, n, gg, name, err)
           : xf_qweight_init(out, rows, n, razor ? 8 : p->grid.bits, l.g,
                             !razor && !p->grid.sym, l.store_perm, name, err))
        return -1;
    /* QRazor: each row's fp16 abs-max / 127 over its live columns */
    float *razor_base = razor ? malloc((size_t)rows * sizeof *razor_base) : NULL;
    uint8_t *razor_k = razor ? calloc((size_t)(rows * out->n_groups), 1) : NULL;
    if (razor && (!razor_base || !razor_k)) {
        free(razor_base);
        free(razor_k);
        xf_qweight_free(out);
        return xf_fail(err, "%s: out of memory", name);
    }
    for (int64_t r = 0; razor && r < rows; r++) {
        float m = 0.0f;
        for (int64_t j = 0; j < n; j++)
            if (!f->dead[j])
                m = fabsf(W[r * n + j]) > m ? fabsf(W[r * n + j]) : m;
        const float s = xf_f16_to_f32(xf_f32_to_f16(m / 127.0f));
        razor_base[r] = s > 0.0f ? s : 1.0f;
    }
    if (l.store_perm)
        memcpy(out->perm, f->perm, (size_t)n * sizeof *f->perm);

    const int64_t n_out = xf_outliers_count(p->outliers, rows * n);
    sweep_buffers b;
    const bool need_M = !f->inverse && !l.per_channel && !l.static_g;
    if (sweep_buffers_alloc(&b, rows, n, &l, gg, n_out, need_M, name, err) != 0) {
        free(razor_base);
        free(razor_k);
        xf_qweight_free(out);
        return -1;
    }
    plan_columns(f, &l, &b);
    if (need_M && group_inverses(f, l.g, b.M) != 0) {
        sweep_buffers_free(&b);
        free(razor_base);
        free(razor_k);
        xf_qweight_free(out);
        return xf_fail(err, "%s: out of memory for the GPTQ group inverses", name);
    }
    for (int64_t i = 0; gg && i < n; i++) { /* GGML fit importance 1 / U_ii^2 */
        const double d = f->d[i];
        b.imp[i] = (float)(1.0 / (d * d));
        b.imp[n + f->perm[i]] = b.imp[i];
    }
    const sweep_ctx ctx = {.n = n, .g = l.g, .B = l.B, .F = f->F, .d = f->d,
                           .inverse = f->inverse, .W0 = W, .perm = f->perm, .dead = f->dead,
                           .identity = l.identity && f->dead_columns == 0, .M = b.M,
                           .grp = b.grp,
                           .store = b.store, .fit_at = b.fit_at, .mask = b.mask,
                           .grid = p->grid, .gg = gg, .subs = b.subs, .imp = b.imp,
                           .razor_base = razor_base, .razor_keep = p->grid.bits,
                           .razor_k = razor_k};
    int rc = -1;
    /* OpenBLAS single-threaded for the call's OpenMP regions (see
     * sweep_all_rows), restored before returning */
    xf_threads_saved blas_threads;
    xf_threads_push_blas(1, &blas_threads);
    if (n_out) {
        for (int64_t i = 0; i < n; i++)
            b.pos[f->perm[i]] = (int32_t)i;
        if (choose_outliers(W, rows, f, p, l.g, l.static_g, b.pos, n_out, b.mask, name, err))
            goto done;
    }
    sweep_all_rows(&ctx, f, &l, W, rows, out, &b);
    double loss = 0.0;
    for (int64_t r = 0; r < rows; r++)
        loss += b.row_loss[r];
    if (!isfinite(loss)) { /* Q itself is always finite: scales are */
        xf_fail(err, "%s: GPTQ sweep broke down numerically (loss %g, damp %g)", name, loss,
                f->damp_used);
        goto done;
    }
    /* the kept values are in Wp (fp16 already); built before W is touched */
    if (n_out && xf_outliers_init_from_mask(&out->outliers, b.mask, b.Wp, b.pos, rows, n, name,
                                            err))
        goto done;
    store_result(W, rows, f, b.Wp, b.row_qerr);
    if (st)
        fill_stats(st, f, &b, rows, l.B, loss, t0);
    rc = 0;
done:
    xf_threads_pop(&blas_threads);
    sweep_buffers_free(&b);
    free(razor_base);
    free(razor_k);
    if (rc != 0)
        xf_qweight_free(out);
    return rc;
}

int xf_gptq_solve(float *W, int64_t rows, int64_t cols, const double *H, const xf_gptq_params *p,
                  xf_qweight *out, xf_gptq_stats *st, const char *name, xf_error *err)
{
    memset(out, 0, sizeof *out);
    xf_gptq_factor f;
    if (xf_gptq_factor_init(&f, H, cols, p, name, err) != 0)
        return -1;
    int rc = xf_gptq_solve_factored(W, rows, &f, p, out, st, name, err);
    xf_gptq_factor_free(&f);
    return rc;
}
