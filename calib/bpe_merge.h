/* BPE merging: the merge table (left id, right id) -> (rank, merged id)
 * and the merge loop of a word, in O(n log n): symbols in a doubly linked
 * list, candidate pairs in a binary min-heap keyed by (rank, position),
 * stale heap entries skipped when popped (lazy invalidation). Applying the
 * lowest (rank, position) pair first is what Hugging Face's BPE does, and
 * with pre_tokenizer null a whole text is one word, hence the heap. */
#ifndef XF_CALIB_BPE_MERGE_H
#define XF_CALIB_BPE_MERGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t key; /* (left << 32) | right; UINT64_MAX = empty slot */
    uint32_t rank;
    int32_t merged;
} xf_merge_slot; /* one cache-friendly 16-byte slot per probe */

typedef struct {
    xf_merge_slot *slots;
    size_t mask, count;
} xf_merge_map;

/* Sized for n merges; 0, or -1 when out of memory. */
int xf_merge_map_init(xf_merge_map *m, size_t n);
void xf_merge_map_free(xf_merge_map *m);
/* Inserts or replaces (a later duplicate pair wins, as in HF). */
void xf_merge_map_put(xf_merge_map *m, int32_t left, int32_t right, uint32_t rank, int32_t merged);
bool xf_merge_map_get(const xf_merge_map *m, int32_t left, int32_t right, uint32_t *rank,
                      int32_t *merged);

/* Scratch memory reused across words (zero-initialize; free with
 * xf_bpe_work_free). */
typedef struct {
    int32_t *prev, *next;
    uint64_t *heap;
    size_t cap, heap_cap;
} xf_bpe_work;

void xf_bpe_work_free(xf_bpe_work *w);

/* Merges the symbols ids[0..n) in place; *n_out = symbols left.
 * Returns 0, or -1 when out of memory. */
int xf_bpe_merge(const xf_merge_map *m, xf_bpe_work *w, int32_t *ids, size_t n, size_t *n_out);

#endif
