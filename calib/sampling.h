/* Calibration windows: `nsamples` random windows of `seqlen` tokens from
 * one token stream, chosen exactly as the GPTQ reference does
 * (random.seed(seed); start = random.randint(0, n - seqlen - 1) per sample).
 * Short documents were concatenated before tokenization; nothing is padded. */
#ifndef XF_CALIB_SAMPLING_H
#define XF_CALIB_SAMPLING_H

#include <stdint.h>

#include "core/error.h"

typedef struct xf_calib_set {
    int64_t nsamples, seqlen;
    uint64_t seed;
    int64_t tokens_available;
    int64_t *starts;  /* [nsamples] window start offsets in the stream */
    int32_t *tokens;  /* [nsamples * seqlen] */
} xf_calib_set;

/* Fails, naming the token count, when the stream holds fewer than
 * seqlen + 1 tokens (the reference's randint needs n - seqlen - 1 >= 0). */
int xf_calib_set_sample(xf_calib_set *cs, const int32_t *stream, int64_t n, int64_t nsamples,
                        int64_t seqlen, uint64_t seed, xf_error *err);
void xf_calib_set_free(xf_calib_set *cs);

#endif
