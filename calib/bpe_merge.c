#include "calib/bpe_merge.h"

#include <stdlib.h>
#include <string.h>

static uint64_t pair_key(int32_t left, int32_t right)
{
    return ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
}

static size_t key_slot(uint64_t key, size_t mask)
{
    key ^= key >> 31;
    key *= 0x9e3779b97f4a7c15ull;
    key ^= key >> 29;
    return (size_t)key & mask;
}

int xf_merge_map_init(xf_merge_map *m, size_t n)
{
    memset(m, 0, sizeof *m);
    size_t size = 16;
    while (size < 2 * n + 1)
        size *= 2;
    m->slots = malloc(size * sizeof *m->slots);
    if (!m->slots)
        return -1;
    for (size_t i = 0; i < size; i++)
        m->slots[i].key = UINT64_MAX;
    m->mask = size - 1;
    return 0;
}

void xf_merge_map_free(xf_merge_map *m)
{
    free(m->slots);
    memset(m, 0, sizeof *m);
}

void xf_merge_map_put(xf_merge_map *m, int32_t left, int32_t right, uint32_t rank, int32_t merged)
{
    uint64_t key = pair_key(left, right);
    size_t i = key_slot(key, m->mask);
    while (m->slots[i].key != UINT64_MAX && m->slots[i].key != key)
        i = (i + 1) & m->mask;
    if (m->slots[i].key == UINT64_MAX)
        m->count++;
    m->slots[i] = (xf_merge_slot){key, rank, merged};
}

bool xf_merge_map_get(const xf_merge_map *m, int32_t left, int32_t right, uint32_t *rank,
                      int32_t *merged)
{
    if (!m->count)
        return false;
    uint64_t key = pair_key(left, right);
    for (size_t i = key_slot(key, m->mask);; i = (i + 1) & m->mask) {
        const xf_merge_slot *s = &m->slots[i];
        if (s->key == key) {
            *rank = s->rank;
            *merged = s->merged;
            return true;
        }
        if (s->key == UINT64_MAX)
            return false;
    }
}

void xf_bpe_work_free(xf_bpe_work *w)
{
    free(w->prev);
    free(w->next);
    free(w->heap);
    memset(w, 0, sizeof *w);
}

/* Min-heap of (rank << 32 | position): smallest rank first, then the
 * leftmost position, as HF orders its merge queue. */
static void heap_push(uint64_t *h, size_t *n, uint64_t v)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (h[parent] <= v)
            break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = v;
}

static uint64_t heap_pop(uint64_t *h, size_t *n)
{
    uint64_t top = h[0];
    uint64_t last = h[--(*n)];
    size_t i = 0, count = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= count)
            break;
        if (c + 1 < count && h[c + 1] < h[c])
            c++;
        if (h[c] >= last)
            break;
        h[i] = h[c];
        i = c;
    }
    if (count)
        h[i] = last;
    return top;
}

static int reserve(xf_bpe_work *w, size_t n)
{
    if (n > w->cap) {
        int32_t *p = realloc(w->prev, n * sizeof *p);
        if (!p)
            return -1;
        w->prev = p;
        int32_t *q = realloc(w->next, n * sizeof *q);
        if (!q)
            return -1;
        w->next = q;
        w->cap = n;
    }
    /* Each merge pushes at most two pairs, and there are < n merges. */
    size_t heap_need = 3 * n;
    if (heap_need > w->heap_cap) {
        uint64_t *h = realloc(w->heap, heap_need * sizeof *h);
        if (!h)
            return -1;
        w->heap = h;
        w->heap_cap = heap_need;
    }
    return 0;
}

/* A dead symbol (merged into its left neighbour) has prev == DEAD. */
#define DEAD (-2)

int xf_bpe_merge(const xf_merge_map *m, xf_bpe_work *w, int32_t *ids, size_t n, size_t *n_out)
{
    *n_out = n;
    if (n < 2 || !m->count)
        return 0;
    if (n > INT32_MAX || reserve(w, n) != 0)
        return -1;
    int32_t *prev = w->prev, *next = w->next;
    uint64_t *heap = w->heap;
    size_t hn = 0;
    uint32_t rank;
    int32_t merged;
    const int32_t end = (int32_t)n;

    for (size_t i = 0; i < n; i++) {
        prev[i] = (int32_t)i - 1;
        next[i] = (int32_t)i + 1;
        if (i + 1 < n && xf_merge_map_get(m, ids[i], ids[i + 1], &rank, &merged))
            heap_push(heap, &hn, (uint64_t)rank << 32 | i);
    }
    while (hn) {
        uint64_t top = heap_pop(heap, &hn);
        int32_t pos = (int32_t)(top & 0xffffffffu);
        uint32_t want = (uint32_t)(top >> 32);
        if (prev[pos] == DEAD)
            continue;
        int32_t right = next[pos];
        if (right == end)
            continue;
        /* Stale entry: the pair at pos changed since it was pushed. */
        if (!xf_merge_map_get(m, ids[pos], ids[right], &rank, &merged) || rank != want)
            continue;
        ids[pos] = merged;
        prev[right] = DEAD;
        next[pos] = next[right];
        if (next[pos] != end)
            prev[next[pos]] = pos;
        if (prev[pos] >= 0 && xf_merge_map_get(m, ids[prev[pos]], ids[pos], &rank, &merged))
            heap_push(heap, &hn, (uint64_t)rank << 32 | (uint32_t)prev[pos]);
        if (next[pos] != end && xf_merge_map_get(m, ids[pos], ids[next[pos]], &rank, &merged))
            heap_push(heap, &hn, (uint64_t)rank << 32 | (uint32_t)pos);
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (prev[i] != DEAD)
            ids[k++] = ids[i];
    *n_out = k;
    return 0;
}
