#include "calib/calib_windows.h"

#include <stdlib.h>
#include <string.h>

#include "calib/tokenizer.h"
#include "core/log.h"

/* The whole calibration text as token ids (*ids malloc'd). */
static int tokenize(const xf_loaded_model *m, const xf_calib_text *ct, const char *path,
                    int32_t **ids, size_t *n, xf_error *err)
{
    if (!m->tokenizer_json)
        return xf_fail(err, "%s: no tokenizer.json, cannot tokenize calibration text", m->path);
    xf_tokenizer *tok = xf_tokenizer_load(m->tokenizer_json, m->tokenizer_config_json, m->path, err);
    if (!tok)
        return -1;
    int rc = xf_tokenizer_encode(tok, ct->text, ct->len, true, ids, n, err);
    xf_tokenizer_free(tok);
    if (rc != 0)
        xf_fail_prefix(err, "%s", path);
    return rc;
}

int xf_calib_windows_load(xf_calib_set *cs, const xf_loaded_model *m, const xf_calib_source *src,
                          json_t **provenance, xf_error *err)
{
    memset(cs, 0, sizeof *cs);
    if (provenance)
        *provenance = NULL;
    if (!src->path)
        return xf_fail(err, "calibration text is required (--calib FILE)");
    xf_calib_text ct;
    if (xf_calib_text_read(&ct, src->path, src->format, src->field, err) != 0)
        return -1;
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = tokenize(m, &ct, src->path, &ids, &n, err);
    /* --calib-max-tokens: the first max_tokens tokens stand for the text */
    const bool cut = rc == 0 && src->max_tokens > 0 && (int64_t)n > src->max_tokens;
    if (cut)
        n = (size_t)src->max_tokens;
    if (cut && (int64_t)n < src->seqlen + 1)
        rc = xf_fail(err,
                     "%s: --calib-max-tokens %lld leaves fewer tokens than one window of %lld "
                     "(+1): raise it or give a smaller --seqlen",
                     src->path, (long long)src->max_tokens, (long long)src->seqlen);
    else if (rc == 0) {
        rc = xf_calib_set_sample(cs, ids, (int64_t)n, src->nsamples, src->seqlen, src->seed, err);
        if (rc != 0)
            xf_fail_prefix(err, "%s", src->path);
    }
    free(ids);
    if (rc == 0) {
        xf_log_info("calibration: %s (%s, %zu documents): %zu tokens, %lld windows of %lld",
                    src->path, xf_calib_format_name(ct.format), ct.n_documents, n,
                    (long long)cs->nsamples, (long long)cs->seqlen);
        if (provenance) {
            json_t *starts = json_array();
            for (int64_t s = 0; s < cs->nsamples; s++)
                json_array_append_new(starts, json_integer(cs->starts[s]));
            *provenance = json_pack(
                "{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:o}", "file", src->path, "format",
                xf_calib_format_name(ct.format), "sha256", ct.sha256, "documents",
                (json_int_t)ct.n_documents, "tokens_available", (json_int_t)n, "nsamples",
                (json_int_t)cs->nsamples, "seqlen", (json_int_t)cs->seqlen, "seed",
                (json_int_t)cs->seed, "sample_starts", starts);
            if (*provenance && cut)
                json_object_set_new(*provenance, "max_tokens", json_integer(src->max_tokens));
            if (!*provenance) {
                xf_calib_set_free(cs);
                rc = xf_fail(err, "%s: out of memory", src->path);
            }
        }
    }
    xf_calib_text_free(&ct);
    return rc;
}
