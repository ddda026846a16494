#include "eval/windows.h"

#include <string.h>

int xf_window_plan_make(xf_window_plan *p, xf_protocol protocol, int64_t seqlen,
                        int64_t n_tokens, int64_t max_windows, int32_t bos_id, xf_error *err)
{
    memset(p, 0, sizeof *p);
    if (seqlen < 2)
        return xf_fail(err, "window length %lld is too short (need at least 2 tokens)",
                       (long long)seqlen);
    if (protocol == XF_PROTOCOL_LLAMACPP && seqlen < 4)
        return xf_fail(err, "llama.cpp protocol needs a context of at least 4 tokens");
    p->protocol = protocol;
    p->seqlen = seqlen;
    p->n_windows = n_tokens / seqlen;
    if (p->n_windows == 0)
        return xf_fail(err, "the text has %lld tokens, fewer than one window of %lld",
                       (long long)n_tokens, (long long)seqlen);
    if (max_windows > 0 && p->n_windows > max_windows)
        p->n_windows = max_windows;
    p->first_scored = protocol == XF_PROTOCOL_LLAMACPP ? seqlen / 2 : 0;
    p->bos_id = protocol == XF_PROTOCOL_LLAMACPP ? bos_id : -1;
    return 0;
}

void xf_window_tokens(const xf_window_plan *p, const int32_t *tokens, int64_t w, int32_t *out)
{
    memcpy(out, tokens + w * p->seqlen, (size_t)p->seqlen * sizeof *out);
    if (p->bos_id >= 0)
        out[0] = p->bos_id;
}

int64_t xf_window_scored(const xf_window_plan *p) { return p->seqlen - 1 - p->first_scored; }

const char *xf_protocol_name(xf_protocol p)
{
    return p == XF_PROTOCOL_LLAMACPP ? "llamacpp" : "gptq";
}

int xf_protocol_parse(const char *s, xf_protocol *out)
{
    if (!strcmp(s, "gptq")) {
        *out = XF_PROTOCOL_GPTQ;
        return 0;
    }
    if (!strcmp(s, "llamacpp") || !strcmp(s, "llama.cpp")) {
        *out = XF_PROTOCOL_LLAMACPP;
        return 0;
    }
    return -1;
}
