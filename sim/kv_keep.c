/* LogQuant and recent-window kept KV tokens (closed forms in kv_keep.h). */
#include "sim/kv_keep.h"

int64_t xf_kv_keep_log_count(int64_t i, int64_t W)
{
    const int64_t n = i + 1;
    if (n <= 2 * W)
        return n;
    const int64_t k = (n - 1) / W - 1;
    return W + (i - k * W + 1);
}

int64_t xf_kv_keep_log(int64_t i, int64_t W, int64_t *idx)
{
    const int64_t n = i + 1;
    int64_t c = 0;
    if (n <= 2 * W) {
        for (int64_t j = 0; j <= i; j++)
            idx[c++] = j;
        return c;
    }
    const int64_t k = (n - 1) / W - 1;
    /* block 0: offsets divisible by 2^(k-1) (once past 2W none but 0) */
    const int64_t step0 = k - 1 < 62 && ((int64_t)1 << (k - 1)) < 2 * W ? (int64_t)1 << (k - 1)
                                                                        : 2 * W;
    for (int64_t o = 0; o < W; o += step0)
        idx[c++] = o;
    /* blocks 1 .. k-1: W + o divisible by 2^(k-m); W + o < 2W */
    for (int64_t m = 1; m < k; m++) {
        if (k - m >= 62 || ((int64_t)1 << (k - m)) >= 2 * W)
            continue;
        const int64_t step = (int64_t)1 << (k - m);
        for (int64_t o = (step - W % step) % step; o < W; o += step)
            idx[c++] = m * W + o;
    }
    for (int64_t j = k * W; j <= i; j++)
        idx[c++] = j;
    return c;
}

int64_t xf_kv_keep_recent(int64_t i, int64_t W, int64_t *idx)
{
    const int64_t c = xf_kv_keep_log_count(i, W);
    for (int64_t j = 0; j < c; j++)
        idx[j] = i - c + 1 + j;
    return c;
}

int64_t xf_kv_keep_tokens(xf_kv_keep_kind kind, int64_t W, int64_t i, int64_t *idx)
{
    switch (kind) {
    case XF_KV_KEEP_LOG:
        return xf_kv_keep_log(i, W, idx);
    case XF_KV_KEEP_RECENT:
        return xf_kv_keep_recent(i, W, idx);
    case XF_KV_KEEP_NONE:
    default:
        return 0;
    }
}
