#include "calib/sampling.h"

#include <stdlib.h>
#include <string.h>

#include "calib/pyrandom.h"

int xf_calib_set_sample(xf_calib_set *cs, const int32_t *stream, int64_t n, int64_t nsamples,
                        int64_t seqlen, uint64_t seed, xf_error *err)
{
    memset(cs, 0, sizeof *cs);
    if (nsamples < 1 || seqlen < 1)
        return xf_fail(err, "calibration needs nsamples >= 1 and seqlen >= 1");
    if (n < seqlen + 1)
        return xf_fail(err,
                       "calibration text has %lld tokens, fewer than one window of %lld (+1): "
                       "give more text or a smaller --seqlen",
                       (long long)n, (long long)seqlen);
    if (n - seqlen - 1 > (int64_t)UINT32_MAX)
        return xf_fail(err, "calibration stream of %lld tokens is too long (max 2^32)",
                       (long long)n);
    cs->starts = malloc((size_t)nsamples * sizeof *cs->starts);
    cs->tokens = malloc((size_t)nsamples * (size_t)seqlen * sizeof *cs->tokens);
    if (!cs->starts || !cs->tokens) {
        xf_calib_set_free(cs);
        return xf_fail(err, "out of memory for %lld calibration windows", (long long)nsamples);
    }
    xf_pyrandom rng;
    xf_pyrandom_seed(&rng, seed);
    for (int64_t s = 0; s < nsamples; s++) {
        int64_t i = xf_pyrandom_randint(&rng, 0, n - seqlen - 1);
        cs->starts[s] = i;
        memcpy(cs->tokens + s * seqlen, stream + i, (size_t)seqlen * sizeof *stream);
    }
    cs->nsamples = nsamples;
    cs->seqlen = seqlen;
    cs->seed = seed;
    cs->tokens_available = n;
    return 0;
}

void xf_calib_set_free(xf_calib_set *cs)
{
    free(cs->starts);
    free(cs->tokens);
    memset(cs, 0, sizeof *cs);
}
