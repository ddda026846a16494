/* Weight grids compared (--weight-grid log2 vs uniform): the squared error
 * of per-row (per output channel) grids on the 2-D ".weight" matrices of
 * a model (default ../shared/models/stories260K), at 3 and 4 bits:
 *   uniform asym  RTN, min/max grid per row (xfquant rtn --group -1)
 *   uniform sym   RTN, symmetric per row (--sym --group -1)
 *   log2          xf_log2_weight_row_codes (the stored L3/L4 grid)
 * Reported: mse = sum (w - q)^2 / #weights over all matrices, and the
 * relative error sum (w - q)^2 / sum w^2. Skips (exit 0) when the model
 * is absent. Usage: bench_log2_weights [MODEL_DIR] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "formats/hf_model.h"
#include "sim/log2_quant.h"
#include "quant/weights/qweight.h"
#include "quant/weights/rtn.h"

enum { N_GRIDS = 3 };
static const char *const grid_names[N_GRIDS] = {"uniform asym", "uniform sym", "log2"};

/* sum (w - q)^2 of one [rows, cols] matrix on grid gi; -1 on failure. */
static double matrix_sse(const float *W, int64_t rows, int64_t cols, int bits, int gi, float *q)
{
    if (gi == 2) {
        for (int64_t r = 0; r < rows; r++)
            xf_log2_weight_row_codes(W + r * cols, cols, bits, NULL, q + r * cols);
    } else {
        xf_rtn_params p = {.grid = {.bits = bits, .sym = gi == 1}, .group = -1};
        xf_qweight qw;
        xf_error err = {0};
        if (xf_rtn_quantize(W, rows, cols, &p, &qw, "bench", &err) != 0) {
            fprintf(stderr, "bench_log2_weights: %s\n", err.msg);
            return -1.0;
        }
        xf_qweight_dequantize(&qw, q);
        xf_qweight_free(&qw);
    }
    double e = 0.0;
    for (int64_t i = 0; i < rows * cols; i++)
        e += ((double)W[i] - q[i]) * ((double)W[i] - q[i]);
    return e;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "../shared/models/stories260K";
    struct stat st;
    if (stat(dir, &st) != 0) {
        printf("bench_log2_weights: %s not found, skipped\n", dir);
        return 0;
    }
    xf_hf_model m = {0};
    xf_error err = {0};
    if (xf_hf_open(&m, dir, &err) != 0) {
        fprintf(stderr, "bench_log2_weights: %s\n", err.msg);
        return 1;
    }
    double sse[2][N_GRIDS] = {{0}}, ssw = 0.0;
    int64_t n_w = 0, n_mat = 0;
    int rc = 0;
    for (size_t k = 0; k < m.tensors.n && rc == 0; k++) {
        const xf_tensor *t = &m.tensors.items[k];
        size_t len = strlen(t->name);
        if (t->ndim != 2 || len < 7 || strcmp(t->name + len - 7, ".weight") != 0)
            continue;
        const int64_t rows = t->shape[0], cols = t->shape[1];
        float *W = malloc((size_t)(rows * cols) * sizeof *W);
        float *q = malloc((size_t)(rows * cols) * sizeof *q);
        if (!W || !q || xf_tensor_to_f32(t, W, &err) != 0) {
            fprintf(stderr, "bench_log2_weights: %s: %s\n", t->name,
                    W && q ? err.msg : "out of memory");
            rc = 1;
        }
        for (int b = 0; b < 2 && rc == 0; b++)
            for (int gi = 0; gi < N_GRIDS && rc == 0; gi++) {
                double e = matrix_sse(W, rows, cols, 4 - b, gi, q);
                rc = e < 0.0;
                sse[b][gi] += e;
            }
        for (int64_t i = 0; rc == 0 && i < rows * cols; i++)
            ssw += (double)W[i] * W[i];
        n_w += rows * cols;
        n_mat++;
        free(W);
        free(q);
    }
    if (rc == 0) {
        printf("%s: %lld matrices, %lld weights, per-row grids\n", dir, (long long)n_mat,
               (long long)n_w);
        printf("%-5s %-13s %14s %12s\n", "bits", "grid", "mse", "rel_err");
        for (int b = 0; b < 2; b++)
            for (int gi = 0; gi < N_GRIDS; gi++)
                printf("%-5d %-13s %14.6e %12.6f\n", 4 - b, grid_names[gi],
                       sse[b][gi] / (double)n_w, sse[b][gi] / ssw);
    }
    xf_hf_close(&m);
    return rc;
}
