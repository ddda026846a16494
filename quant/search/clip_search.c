/* Output-error clip search for per-token activation quantization (see
 * clip_search.h). Rows are processed in chunks so that scratch stays small
 * whatever n is. */
#include "quant/search/clip_search.h"

#include <cblas.h>

#include "core/gemm_tiled.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sim/act_quant.h"

#define XF_CLIP_CHUNK_ROWS 256

int xf_act_clip_search_init(xf_act_clip_search *s, int bits, bool sym, int64_t group,
                            const double *ratios, int n, xf_error *err)
{
    memset(s, 0, sizeof *s);
    if (bits < XF_ACT_MIN_BITS || bits > XF_ACT_MAX_BITS)
        return xf_fail(err, "act clip search: bits %d outside %d..%d", bits, XF_ACT_MIN_BITS,
                       XF_ACT_MAX_BITS);
    if (group < 0)
        return xf_fail(err, "act clip search: group %lld < 0", (long long)group);
    if (!ratios) {
        n = XF_ACT_CLIP_DEFAULT_COUNT;
        for (int i = 0; i < n; i++)
            s->ratio[i] = (double)(20 - i) / 20.0; /* nearest doubles of 1, 0.95, ... */
    } else {
        if (n < 1 || n > XF_ACT_CLIP_MAX_CANDIDATES)
            return xf_fail(err, "act clip search: %d candidates (1..%d)", n,
                           XF_ACT_CLIP_MAX_CANDIDATES);
        for (int i = 0; i < n; i++) {
            if (!(ratios[i] > 0.0 && ratios[i] <= 1.0))
                return xf_fail(err, "act clip search: ratio %g outside (0, 1]", ratios[i]);
            s->ratio[i] = ratios[i];
        }
    }
    s->n = n;
    s->bits = bits;
    s->sym = sym;
    s->group = group;
    return 0;
}

void xf_act_clip_search_free(xf_act_clip_search *s)
{
    memset(s, 0, sizeof *s);
}

int xf_act_clip_search_add(xf_act_clip_search *s, const float *X, int64_t n, int64_t d,
                           const float *W, int64_t out, const char *what, xf_error *err)
{
    if (n < 0 || d < 1 || out < 1)
        return xf_fail(err, "%s: clip search on a [%lld, %lld] input through [%lld, %lld]", what,
                       (long long)n, (long long)d, (long long)out, (long long)d);
    const int64_t g = s->group > 0 ? s->group : d;
    if (d % g != 0)
        return xf_fail(err, "%s: act_group %lld does not divide %lld channels", what,
                       (long long)g, (long long)d);
    const int64_t chunk = n < XF_CLIP_CHUNK_ROWS ? n : XF_CLIP_CHUNK_ROWS;
    if (chunk == 0)
        return 0;
    float *E = malloc((size_t)(chunk * d) * sizeof *E);
    float *Y = malloc((size_t)(chunk * out) * sizeof *Y);
    if (!E || !Y) {
        free(E);
        free(Y);
        return xf_fail(err, "%s: out of memory for the clip search", what);
    }
    int rc = 0;
    for (int64_t r0 = 0; r0 < n && rc == 0; r0 += chunk) {
        const int64_t m = n - r0 < chunk ? n - r0 : chunk;
        const float *Xc = X + r0 * d;
        for (int c = 0; c < s->n && rc == 0; c++) {
            /* E = X - Q_c(X) */
            memcpy(E, Xc, (size_t)(m * d) * sizeof *E);
            for (int64_t t = 0; t < m; t++)
                if (xf_act_quant_row(E + t * d, d, g, s->bits, s->sym, (float)s->ratio[c]) != 0) {
                    rc = xf_fail(err, "%s: non-finite activation in token %lld", what,
                                 (long long)(r0 + t));
                    break;
                }
            if (rc != 0)
                break;
            for (int64_t i = 0; i < m * d; i++)
                E[i] = Xc[i] - E[i];
            xf_sgemm_tiled(CblasNoTrans, CblasTrans, (int)m, (int)out, (int)d, 1.0f,
                        E, (int)d, W, (int)d, 0.0f, Y, (int)out);
            double e = 0.0;
            for (int64_t i = 0; i < m * out; i++)
                e += (double)Y[i] * (double)Y[i];
            s->err[c] += e;
        }
    }
    if (rc == 0)
        s->tokens += n;
    free(E);
    free(Y);
    return rc;
}

double xf_act_clip_search_best(const xf_act_clip_search *s)
{
    int best = 0;
    for (int c = 1; c < s->n; c++)
        if (s->err[c] < s->err[best])
            best = c;
    return s->n > 0 ? s->ratio[best] : 1.0;
}

int xf_act_clip_search_one(const float *X, int64_t n, int64_t d, const float *W, int64_t out,
                           int bits, bool sym, int64_t group, double *ratio, xf_error *err)
{
    xf_act_clip_search s;
    if (xf_act_clip_search_init(&s, bits, sym, group, NULL, 0, err) != 0)
        return -1;
    int rc = xf_act_clip_search_add(&s, X, n, d, W, out, "act clip search", err);
    if (rc == 0)
        *ratio = xf_act_clip_search_best(&s);
    xf_act_clip_search_free(&s);
    return rc;
}
