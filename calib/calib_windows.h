/* Calibration windows for a model in one call: read the calibration text
 * (calib_text.h), tokenize it once with the model's own tokenizer (special
 * tokens added, as the GPTQ reference does), sample the windows
 * (sampling.h), and describe where they came from. The same steps and the
 * same provenance record as the gptq pipeline, so that a `stats` report and
 * a quantization run on the same options see the same windows. */
#ifndef XF_CALIB_CALIB_WINDOWS_H
#define XF_CALIB_CALIB_WINDOWS_H

#include <jansson.h>
#include <stdint.h>

#include "calib/calib_text.h"
#include "calib/sampling.h"
#include "core/error.h"
#include "model/loader.h"

typedef struct xf_calib_source {
    const char *path;       /* required */
    const char *field;      /* JSON Lines field; NULL: "text" */
    xf_calib_format format; /* XF_CALIB_AUTO: from the path */
    int64_t nsamples, seqlen;
    uint64_t seed;
    int64_t max_tokens;     /* > 0: only the first max_tokens tokens are sampled from */
} xf_calib_source;

/* Fills cs (free with xf_calib_set_free). *provenance (may be NULL) gets
 * {"file", "format", "sha256", "documents", "tokens_available", "nsamples",
 * "seqlen", "seed", "sample_starts"}, and "max_tokens" when max_tokens cut the
 * text ("tokens_available" is then what remained). Errors name the calibration file (or
 * the model when it has no tokenizer). */
int xf_calib_windows_load(xf_calib_set *cs, const xf_loaded_model *m, const xf_calib_source *src,
                          json_t **provenance, xf_error *err);

#endif
