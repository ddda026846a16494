/* Which K/V tokens a query reads in full precision when the KV cache is
 * quantized: LogQuant's log-distributed selection, and the recent-window
 * baseline at the same memory. See docs/methods.md ("LogQuant").
 *
 * LogQuant (window W) as a decoder runs it, one token appended at a time:
 * a full-precision list L (log-sparse) and a recent list R, both empty at
 * first; after appending token t to R, when |R| > 2W:
 *     L = R[0:W]                    if L is empty,
 *     L = (L + R[0:W])[0::2]        otherwise (every other one of the 2W),
 *     R = R[W:].
 * Everything outside L + R is quantized. Our evaluation has no KV cache:
 * query i reads keys 0..i, and reads in full precision exactly the tokens
 * of L + R after token i was appended (the state the decoder would have
 * when producing the token after i), so the kept set moves with the query.
 *
 * Closed form used here (derived from those updates; tests compare it with
 * the list simulation): n = i + 1; n <= 2W keeps all. Otherwise the update
 * ran k = floor((n - 1) / W) - 1 times, R = [kW, i], and L holds, with
 * block m = [mW, (m+1)W): offset o of block 0 when o % 2^(k-1) == 0, offset
 * o of block m (1 <= m < k) when (W + o) % 2^(k-m) == 0 (it entered the
 * merged list at position W + o and was halved k - m times). |L| = W, so a
 * query keeps between 2W + 1 and 3W tokens (all of them while n <= 2W);
 * token 0 (the attention sink) is always kept.
 *
 * Recent window: the same number of tokens as LogQuant keeps for that
 * query, the most recent ones: equal full-precision memory per query. */
#ifndef XF_SIM_KV_KEEP_H
#define XF_SIM_KV_KEEP_H

#include <stdint.h>

#include "sim/act_quant.h"

/* LogQuant's kept tokens of query i, ascending, into idx (capacity
 * min(i + 1, 3W)); returns their count. */
int64_t xf_kv_keep_log(int64_t i, int64_t W, int64_t *idx);
/* The count alone (no list). */
int64_t xf_kv_keep_log_count(int64_t i, int64_t W);
/* The same count of most recent tokens, ascending. */
int64_t xf_kv_keep_recent(int64_t i, int64_t W, int64_t *idx);
/* Dispatch on the kind (NONE: 0 tokens). */
int64_t xf_kv_keep_tokens(xf_kv_keep_kind kind, int64_t W, int64_t i, int64_t *idx);

#endif
