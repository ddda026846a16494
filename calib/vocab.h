/* A token vocabulary: string -> id (open-addressing hash table) and
 * id -> string (dense table). Ids are 0..n_ids-1; some may be unassigned. */
#ifndef XF_CALIB_VOCAB_H
#define XF_CALIB_VOCAB_H

#include <stddef.h>
#include <stdint.h>

#include "calib/tok_buffers.h"
#include "core/error.h"

typedef struct {
    xf_tbuf arena;   /* all token strings, back to back */
    size_t *off;     /* [n_ids] offset in arena */
    uint32_t *len;   /* [n_ids] byte length, UINT32_MAX = unassigned id */
    int32_t n_ids;   /* largest id + 1 */
    int32_t *slots;  /* hash table of ids, -1 = empty */
    size_t mask;     /* table size - 1 (a power of two) */
    size_t count, max_count; /* strings stored / allowed (keeps the table half empty) */
} xf_vocab;

/* Sizes the table for n_entries strings with ids in [0, n_ids). */
int xf_vocab_init(xf_vocab *v, size_t n_entries, int32_t n_ids, const char *what, xf_error *err);
void xf_vocab_free(xf_vocab *v);
/* Fails on an id out of range, an id given twice, or a string given twice. */
int xf_vocab_add(xf_vocab *v, const char *s, size_t n, int32_t id, const char *what,
                 xf_error *err);
int32_t xf_vocab_find(const xf_vocab *v, const char *s, size_t n); /* -1 if absent */
/* The string of id (not NUL-terminated), or NULL when unassigned. */
const char *xf_vocab_str(const xf_vocab *v, int32_t id, size_t *n);

#endif
