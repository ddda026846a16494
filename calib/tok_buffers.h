/* Growable buffers shared by the tokenizer stages: bytes, id lists and
 * "piece lists" (strings living in one byte buffer, each with a flag that
 * says whether it starts at offset 0 of the original text, which the
 * Metaspace "first" prepend scheme needs). Functions return 0, or -1 when
 * memory runs out. */
#ifndef XF_CALIB_TOK_BUFFERS_H
#define XF_CALIB_TOK_BUFFERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *p;
    size_t n, cap;
} xf_tbuf;

int xf_tbuf_reserve(xf_tbuf *b, size_t extra);
int xf_tbuf_append(xf_tbuf *b, const void *s, size_t n);
void xf_tbuf_free(xf_tbuf *b);

typedef struct {
    size_t off, len; /* into xf_pieces.bytes */
    bool at_origin;
} xf_piece;

typedef struct {
    xf_tbuf bytes;
    xf_piece *v;
    size_t n, cap;
} xf_pieces;

/* Records bytes[off, off+len) as a piece (the bytes are already there). */
int xf_pieces_add(xf_pieces *p, size_t off, size_t len, bool at_origin);
/* Appends s[0..n) to the byte buffer and records it as a piece. */
int xf_pieces_add_copy(xf_pieces *p, const char *s, size_t n, bool at_origin);
void xf_pieces_clear(xf_pieces *p); /* keeps the capacity */
void xf_pieces_free(xf_pieces *p);

typedef struct {
    int32_t *v;
    size_t n, cap;
} xf_ids;

int xf_ids_push(xf_ids *ids, int32_t id);
int xf_ids_append(xf_ids *ids, const int32_t *v, size_t n);

#endif
