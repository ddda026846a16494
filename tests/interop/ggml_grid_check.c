/* ggml_grid_check: GPTQ solved on every GGML block grid xfquant supports
 * (quant/weights/ggml_grid.h), checked against ggml itself (libggml-base of the
 * llama.cpp build): for random weights of width 256 k and a correlated
 * Hessian, the blocks GPTQ writes, converted by ggml's own to_float, equal
 * the values the solver used (the W it returns) bit for bit: max |delta| = 0.
 * Also with static-group act-order. Prints one line per type; exit 1 on any
 * difference.
 *
 * ggml_grid_check --same-types A.gguf B.gguf: the two files hold the same
 * tensor names with the same GGML types and the same tensor bytes in total
 * (xfquant's --gguf-type file against llama-quantize's); prints both sizes.
 *
 * Compiled by gguf_gptq.sh against the llama.cpp build (the meson build does
 * not depend on llama.cpp). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml.h"

#include "formats/gguf.h"
#include "quant/weights/ggml_grid.h"
#include "quant/weights/gptq.h"

static uint64_t rng = 0x2545f4914f6cdd1dull;
static double nrand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    double u = ((double)(rng >> 11) + 0.5) / 9007199254740992.0;
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    double v = (double)(rng >> 11) / 9007199254740992.0;
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

static int check_grids(void)
{
    static const uint32_t types[] = {2, 3, 6, 7, 8, 20, 10, 11, 12, 13, 14, 23};
    const int64_t rows = 48, n = 768, T = 1024;
    double *H = calloc((size_t)(n * n), sizeof *H);
    float *X = malloc((size_t)(T * n) * sizeof *X);
    float *W0 = malloc((size_t)(rows * n) * sizeof *W0), *W = malloc((size_t)(rows * n) * sizeof *W);
    float *g = malloc((size_t)(rows * n) * sizeof *g);
    for (int64_t t = 0; t < T; t++) {
        const double c = nrand();
        for (int64_t j = 0; j < n; j++)
            X[t * n + j] = (float)((0.5 * c + nrand()) * (j % 13 == 0 ? 5.0 : 1.0));
    }
    for (int64_t a = 0; a < n; a++)
        for (int64_t b = 0; b <= a; b++) {
            double s = 0.0;
            for (int64_t t = 0; t < T; t++)
                s += (double)X[t * n + a] * X[t * n + b];
            H[a * n + b] = H[b * n + a] = s / (double)T;
        }
    for (int64_t i = 0; i < rows * n; i++)
        W0[i] = (float)(0.02 * nrand() * (i % 97 == 0 ? 8.0 : 1.0));
    int bad = 0;
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++)
        for (int ao = 0; ao < 2; ao++) {
            xf_gptq_params p;
            xf_gptq_params_default(&p);
            p.ggml = xf_ggml_grid_traits_of(types[k]);
            p.act_order = p.static_groups = ao;
            memcpy(W, W0, (size_t)(rows * n) * sizeof *W);
            xf_qweight q;
            xf_error err = {0};
            if (!p.ggml || xf_gptq_solve(W, rows, n, H, &p, &q, NULL, "w", &err) != 0) {
                printf("type %u: %s\n", types[k], p.ggml ? err.msg : "no grid");
                bad = 1;
                continue;
            }
            const struct ggml_type_traits *tr = ggml_get_type_traits((enum ggml_type)types[k]);
            tr->to_float(q.blocks, g, rows * n);
            long long diff = 0;
            double maxd = 0.0;
            for (int64_t i = 0; i < rows * n; i++)
                if (memcmp(&g[i], &W[i], 4) != 0) {
                    diff++;
                    maxd = fmax(maxd, fabs((double)g[i] - W[i]));
                }
            printf("%-7s %s [%lld x %lld]: %lld of %lld values differ from ggml's to_float, "
                   "max |delta| %g\n",
                   ggml_type_name((enum ggml_type)types[k]),
                   ao ? "act-order+static" : "plain           ", (long long)rows, (long long)n,
                   diff, (long long)(rows * n), maxd);
            bad |= diff != 0;
            xf_qweight_free(&q);
        }
    free(H);
    free(X);
    free(W0);
    free(W);
    free(g);
    return bad;
}

static int same_types(const char *a, const char *b)
{
    xf_gguf_file fa, fb;
    xf_error err = {0};
    if (xf_gguf_open(&fa, a, &err) != 0 || xf_gguf_open(&fb, b, &err) != 0) {
        printf("%s\n", err.msg);
        return 1;
    }
    int bad = fa.n_tensors != fb.n_tensors;
    unsigned long long sa = 0, sb = 0;
    for (size_t i = 0; i < fa.n_tensors; i++) {
        const xf_gguf_tensor *ta = &fa.tensors[i], *tb = xf_gguf_find_tensor(&fb, ta->name);
        sa += ta->nbytes;
        if (!tb || tb->traits->type != ta->traits->type) {
            printf("%s: %s in %s, %s in %s\n", ta->name, ta->traits->name, a,
                   tb ? tb->traits->name : "absent", b);
            bad = 1;
        }
    }
    for (size_t i = 0; i < fb.n_tensors; i++)
        sb += fb.tensors[i].nbytes;
    printf("tensor bytes: %llu (%s), %llu (%s); file bytes %zu, %zu\n", sa, a, sb, b, fa.map.size,
           fb.map.size);
    bad |= sa != sb;
    xf_gguf_close(&fa);
    xf_gguf_close(&fb);
    return bad;
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "--same-types"))
        return same_types(argv[2], argv[3]);
    return check_grids();
}
