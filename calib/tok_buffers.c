#include "calib/tok_buffers.h"

#include <stdlib.h>
#include <string.h>

/* Grows *buf (elements of `size` bytes) to hold at least `need`. */
static int grow(void **buf, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 16;
    while (c < need) {
        if (c > SIZE_MAX / 2 / size)
            return -1;
        c *= 2;
    }
    void *p = realloc(*buf, c * size);
    if (!p)
        return -1;
    *buf = p;
    *cap = c;
    return 0;
}

int xf_tbuf_reserve(xf_tbuf *b, size_t extra)
{
    if (extra > SIZE_MAX - b->n - 1)
        return -1;
    /* +1 keeps room for a NUL terminator that decode adds. */
    return grow((void **)&b->p, &b->cap, b->n + extra + 1, 1);
}

int xf_tbuf_append(xf_tbuf *b, const void *s, size_t n)
{
    if (xf_tbuf_reserve(b, n) != 0)
        return -1;
    if (n)
        memcpy(b->p + b->n, s, n);
    b->n += n;
    return 0;
}

void xf_tbuf_free(xf_tbuf *b)
{
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

int xf_pieces_add(xf_pieces *p, size_t off, size_t len, bool at_origin)
{
    if (grow((void **)&p->v, &p->cap, p->n + 1, sizeof *p->v) != 0)
        return -1;
    p->v[p->n++] = (xf_piece){.off = off, .len = len, .at_origin = at_origin};
    return 0;
}

int xf_pieces_add_copy(xf_pieces *p, const char *s, size_t n, bool at_origin)
{
    size_t off = p->bytes.n;
    if (xf_tbuf_append(&p->bytes, s, n) != 0)
        return -1;
    return xf_pieces_add(p, off, n, at_origin);
}

void xf_pieces_clear(xf_pieces *p)
{
    p->bytes.n = 0;
    p->n = 0;
}

void xf_pieces_free(xf_pieces *p)
{
    xf_tbuf_free(&p->bytes);
    free(p->v);
    p->v = NULL;
    p->n = p->cap = 0;
}

int xf_ids_push(xf_ids *ids, int32_t id)
{
    if (grow((void **)&ids->v, &ids->cap, ids->n + 1, sizeof *ids->v) != 0)
        return -1;
    ids->v[ids->n++] = id;
    return 0;
}

int xf_ids_append(xf_ids *ids, const int32_t *v, size_t n)
{
    if (grow((void **)&ids->v, &ids->cap, ids->n + n, sizeof *ids->v) != 0)
        return -1;
    if (n)
        memcpy(ids->v + ids->n, v, n * sizeof *v);
    ids->n += n;
    return 0;
}
