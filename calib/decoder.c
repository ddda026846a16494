#include "calib/decoder.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "calib/byte_level.h"
#include "calib/normalizer.h"
#include "calib/utf8.h"

typedef enum { D_REPLACE, D_BYTE_FALLBACK, D_FUSE, D_STRIP, D_BYTE_LEVEL, D_METASPACE } d_kind;

typedef struct {
    d_kind kind;
    xf_normalizer *replace; /* D_REPLACE: the same Replace as a normalizer */
    char ch[4];             /* D_STRIP content / D_METASPACE replacement */
    size_t ch_len;
    size_t start, stop;     /* D_STRIP */
    bool drop_first;        /* D_METASPACE: prepend scheme is not "never" */
} d_step;

struct xf_decoder {
    d_step *steps;
    size_t n, cap;
};

void xf_decoder_free(xf_decoder *dec)
{
    if (!dec)
        return;
    for (size_t i = 0; i < dec->n; i++)
        xf_normalizer_free(dec->steps[i].replace);
    free(dec->steps);
    free(dec);
}

static d_step *new_step(xf_decoder *dec, d_kind kind)
{
    if (dec->n == dec->cap) {
        size_t cap = dec->cap ? 2 * dec->cap : 4;
        d_step *s = realloc(dec->steps, cap * sizeof *s);
        if (!s)
            return NULL;
        dec->steps = s;
        dec->cap = cap;
    }
    d_step *st = &dec->steps[dec->n++];
    memset(st, 0, sizeof *st);
    st->kind = kind;
    return st;
}

/* A one-character string field into ch. */
static int get_char(const json_t *j, const char *key, d_step *st, const char *what,
                    xf_error *err)
{
    const json_t *v = json_object_get(j, key);
    uint32_t cp;
    if (!json_is_string(v) || json_string_length(v) == 0 ||
        xf_utf8_char(json_string_value(v), json_string_length(v), &cp) != json_string_length(v))
        return xf_fail(err, "%s: decoder field %s must be one character", what, key);
    st->ch_len = json_string_length(v);
    memcpy(st->ch, json_string_value(v), st->ch_len);
    return 0;
}

static int load_into(xf_decoder *dec, const json_t *j, const char *what, xf_error *err)
{
    const char *type = json_string_value(json_object_get(j, "type"));
    if (!type)
        return xf_fail(err, "%s: decoder without a type", what);
    if (strcmp(type, "Sequence") == 0) {
        const json_t *list = json_object_get(j, "decoders");
        if (!json_is_array(list))
            return xf_fail(err, "%s: Sequence decoder without a decoders list", what);
        for (size_t i = 0; i < json_array_size(list); i++)
            if (load_into(dec, json_array_get(list, i), what, err) != 0)
                return -1;
        return 0;
    }
    d_kind kind;
    if (strcmp(type, "Replace") == 0)
        kind = D_REPLACE;
    else if (strcmp(type, "ByteFallback") == 0)
        kind = D_BYTE_FALLBACK;
    else if (strcmp(type, "Fuse") == 0)
        kind = D_FUSE;
    else if (strcmp(type, "Strip") == 0)
        kind = D_STRIP;
    else if (strcmp(type, "ByteLevel") == 0)
        kind = D_BYTE_LEVEL;
    else if (strcmp(type, "Metaspace") == 0)
        kind = D_METASPACE;
    else
        return xf_fail(err, "%s: decoder type %s is not supported", what, type);
    d_step *st = new_step(dec, kind);
    if (!st)
        return xf_fail(err, "%s: out of memory", what);
    if (kind == D_REPLACE)
        return xf_normalizer_load(j, &st->replace, what, err);
    if (kind == D_STRIP) {
        const json_t *a = json_object_get(j, "start"), *b = json_object_get(j, "stop");
        if (!json_is_integer(a) || !json_is_integer(b) || json_integer_value(a) < 0 ||
            json_integer_value(b) < 0)
            return xf_fail(err, "%s: Strip decoder needs start and stop counts", what);
        st->start = (size_t)json_integer_value(a);
        st->stop = (size_t)json_integer_value(b);
        return get_char(j, "content", st, what, err);
    }
    if (kind == D_METASPACE) {
        const json_t *aps = json_object_get(j, "add_prefix_space");
        const char *scheme = json_string_value(json_object_get(j, "prepend_scheme"));
        st->drop_first = !(json_is_false(aps) || (scheme && strcmp(scheme, "never") == 0));
        return get_char(j, "replacement", st, what, err);
    }
    return 0;
}

int xf_decoder_load(const json_t *j, xf_decoder **out, const char *what, xf_error *err)
{
    *out = NULL;
    if (!j || json_is_null(j))
        return 0;
    if (!json_is_object(j))
        return xf_fail(err, "%s: decoder must be an object or null", what);
    xf_decoder *dec = calloc(1, sizeof *dec);
    if (!dec)
        return xf_fail(err, "%s: out of memory", what);
    if (load_into(dec, j, what, err) != 0) {
        xf_decoder_free(dec);
        return -1;
    }
    *out = dec;
    return 0;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The byte of a "<0xHH>" token, or -1. */
static int fallback_byte(const char *s, size_t n)
{
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>')
        return -1;
    int hi = hex_digit(s[3]), lo = hex_digit(s[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

/* Per-token rewrite for Strip and Metaspace. */
static int rewrite_token(const d_step *st, size_t index, const char *s, size_t n, xf_pieces *out)
{
    size_t off = out->bytes.n;
    if (st->kind == D_STRIP) {
        size_t a = 0, b = n;
        for (size_t k = 0; k < st->start && b - a >= st->ch_len &&
                           memcmp(s + a, st->ch, st->ch_len) == 0; k++)
            a += st->ch_len;
        for (size_t k = 0; k < st->stop && b - a >= st->ch_len &&
                           memcmp(s + b - st->ch_len, st->ch, st->ch_len) == 0; k++)
            b -= st->ch_len;
        return xf_pieces_add_copy(out, s + a, b - a, false);
    }
    for (size_t i = 0; i < n;) {
        if (n - i >= st->ch_len && memcmp(s + i, st->ch, st->ch_len) == 0) {
            if (!(index == 0 && st->drop_first) && xf_tbuf_append(&out->bytes, " ", 1) != 0)
                return -1;
            i += st->ch_len;
        } else {
            if (xf_tbuf_append(&out->bytes, s + i, 1) != 0)
                return -1;
            i++;
        }
    }
    return xf_pieces_add(out, off, out->bytes.n - off, false);
}

/* Byte-level characters of one token back to bytes; the token's own bytes
 * when one of its characters is outside the alphabet (as HF does). */
static int byte_level_token(const char *s, size_t n, xf_tbuf *out)
{
    size_t mark = out->n;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t len = xf_utf8_char(s + i, n - i, &cp);
        int b = len ? xf_byte_level_byte(cp) : -1;
        if (b < 0) {
            out->n = mark;
            return xf_tbuf_append(out, s, n);
        }
        char c = (char)b;
        if (xf_tbuf_append(out, &c, 1) != 0)
            return -1;
        i += len;
    }
    return 0;
}

/* Bytes of piece i. A list whose pieces are all empty has no byte buffer
 * (p == NULL), and NULL + 0 is undefined: give those pieces "". */
static const char *piece_bytes(const xf_pieces *ps, size_t i)
{
    return ps->bytes.p ? ps->bytes.p + ps->v[i].off : "";
}

static int run_step(const d_step *st, const xf_pieces *in, xf_pieces *out, xf_tbuf *tmp,
                    const char *what, xf_error *err)
{
    xf_pieces_clear(out);
    if (st->kind == D_FUSE || st->kind == D_BYTE_LEVEL) {
        for (size_t i = 0; i < in->n; i++) {
            const char *s = piece_bytes(in, i);
            int rc = st->kind == D_FUSE ? xf_tbuf_append(&out->bytes, s, in->v[i].len)
                                        : byte_level_token(s, in->v[i].len, &out->bytes);
            if (rc != 0)
                goto oom;
        }
        if (xf_pieces_add(out, 0, out->bytes.n, false) != 0)
            goto oom;
        return 0;
    }
    size_t run_start = SIZE_MAX; /* start in out->bytes of a pending run of <0xHH> bytes */
    for (size_t i = 0; i < in->n; i++) {
        const char *s = piece_bytes(in, i);
        size_t n = in->v[i].len;
        if (st->kind == D_BYTE_FALLBACK) {
            int b = fallback_byte(s, n);
            if (b >= 0) {
                char c = (char)b;
                if (run_start == SIZE_MAX)
                    run_start = out->bytes.n;
                if (xf_tbuf_append(&out->bytes, &c, 1) != 0)
                    goto oom;
                continue;
            }
            if (run_start != SIZE_MAX &&
                xf_pieces_add(out, run_start, out->bytes.n - run_start, false) != 0)
                goto oom;
            run_start = SIZE_MAX;
            if (xf_pieces_add_copy(out, s, n, false) != 0)
                goto oom;
        } else if (st->kind == D_REPLACE) {
            if (xf_normalizer_apply(st->replace, s, n, tmp, what, err) != 0)
                return -1;
            if (xf_pieces_add_copy(out, tmp->p, tmp->n, false) != 0)
                goto oom;
        } else if (rewrite_token(st, i, s, n, out) != 0) {
            goto oom;
        }
    }
    if (run_start != SIZE_MAX && xf_pieces_add(out, run_start, out->bytes.n - run_start, false) != 0)
        goto oom;
    return 0;
oom:
    return xf_fail(err, "%s: out of memory", what);
}

int xf_decoder_apply(const xf_decoder *dec, xf_pieces *tokens, xf_tbuf *text, const char *what,
                     xf_error *err)
{
    text->n = 0;
    int rc = 0;
    if (dec) {
        xf_pieces other = {0};
        xf_tbuf tmp = {0};
        for (size_t i = 0; i < dec->n && rc == 0; i++) {
            rc = run_step(&dec->steps[i], tokens, &other, &tmp, what, err);
            xf_pieces swap = *tokens;
            *tokens = other;
            other = swap;
        }
        xf_pieces_free(&other);
        xf_tbuf_free(&tmp);
        if (rc != 0)
            return -1;
    }
    for (size_t i = 0; i < tokens->n; i++) {
        if ((!dec && i > 0 && xf_tbuf_append(text, " ", 1) != 0) ||
            xf_tbuf_append(text, piece_bytes(tokens, i), tokens->v[i].len) != 0)
            return xf_fail(err, "%s: out of memory", what);
    }
    if (xf_tbuf_reserve(text, 0) != 0)
        return xf_fail(err, "%s: out of memory", what);
    text->p[text->n] = 0;
    return 0;
}
