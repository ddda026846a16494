#include "calib/vocab.h"

#include <stdlib.h>
#include <string.h>

static uint64_t hash_bytes(const char *s, size_t n)
{
    /* FNV-1a, then a final mix so the low bits used as index are good. */
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    return h ^ (h >> 32);
}

int xf_vocab_init(xf_vocab *v, size_t n_entries, int32_t n_ids, const char *what, xf_error *err)
{
    memset(v, 0, sizeof *v);
    size_t size = 16;
    while (size < 2 * n_entries + 1)
        size *= 2;
    v->n_ids = n_ids;
    v->off = malloc((size_t)(n_ids > 0 ? n_ids : 1) * sizeof *v->off);
    v->len = malloc((size_t)(n_ids > 0 ? n_ids : 1) * sizeof *v->len);
    v->slots = malloc(size * sizeof *v->slots);
    if (!v->off || !v->len || !v->slots) {
        xf_vocab_free(v);
        return xf_fail(err, "%s: out of memory for a vocabulary of %zu tokens", what, n_entries);
    }
    for (int32_t i = 0; i < n_ids; i++)
        v->len[i] = UINT32_MAX;
    for (size_t i = 0; i < size; i++)
        v->slots[i] = -1;
    v->mask = size - 1;
    v->max_count = size / 2;
    return 0;
}

void xf_vocab_free(xf_vocab *v)
{
    xf_tbuf_free(&v->arena);
    free(v->off);
    free(v->len);
    free(v->slots);
    memset(v, 0, sizeof *v);
}

const char *xf_vocab_str(const xf_vocab *v, int32_t id, size_t *n)
{
    if (id < 0 || id >= v->n_ids || v->len[id] == UINT32_MAX)
        return NULL;
    *n = v->len[id];
    return v->arena.p + v->off[id];
}

/* Slot holding s, or the empty slot where it would go. */
static size_t probe(const xf_vocab *v, const char *s, size_t n)
{
    size_t i = (size_t)hash_bytes(s, n) & v->mask;
    for (;;) {
        int32_t id = v->slots[i];
        if (id < 0)
            return i;
        if (v->len[id] == n && memcmp(v->arena.p + v->off[id], s, n) == 0)
            return i;
        i = (i + 1) & v->mask;
    }
}

int32_t xf_vocab_find(const xf_vocab *v, const char *s, size_t n)
{
    return v->slots[probe(v, s, n)];
}

int xf_vocab_add(xf_vocab *v, const char *s, size_t n, int32_t id, const char *what,
                 xf_error *err)
{
    if (id < 0 || id >= v->n_ids)
        return xf_fail(err, "%s: token id %d out of range", what, (int)id);
    if (v->len[id] != UINT32_MAX)
        return xf_fail(err, "%s: token id %d is given to two tokens", what, (int)id);
    if (n >= UINT32_MAX)
        return xf_fail(err, "%s: token %d is too long", what, (int)id);
    if (v->count >= v->max_count)
        return xf_fail(err, "%s: more tokens than announced", what);
    size_t slot = probe(v, s, n);
    if (v->slots[slot] >= 0)
        return xf_fail(err, "%s: token \"%.*s\" appears twice", what, (int)(n > 64 ? 64 : n), s);
    size_t off = v->arena.n;
    if (xf_tbuf_append(&v->arena, s, n) != 0)
        return xf_fail(err, "%s: out of memory", what);
    v->off[id] = off;
    v->len[id] = (uint32_t)n;
    v->slots[slot] = id;
    v->count++;
    return 0;
}
