#include "calib/normalizer.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "calib/regex.h"
#include "calib/utf8.h"

typedef enum { NZ_PREPEND, NZ_REPLACE, NZ_NFC } nz_kind;

typedef struct {
    nz_kind kind;
    char *text; /* Prepend: prefix; Replace: content */
    size_t text_len;
    char *literal; /* Replace with a String pattern */
    size_t literal_len;
    xf_regex *regex; /* Replace with a Regex pattern */
} nz_step;

struct xf_normalizer {
    nz_step *steps;
    size_t n, cap;
};

void xf_normalizer_free(xf_normalizer *nz)
{
    if (!nz)
        return;
    for (size_t i = 0; i < nz->n; i++) {
        free(nz->steps[i].text);
        free(nz->steps[i].literal);
        xf_regex_free(nz->steps[i].regex);
    }
    free(nz->steps);
    free(nz);
}

static char *dup_bytes(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}

static nz_step *new_step(xf_normalizer *nz, nz_kind kind)
{
    if (nz->n == nz->cap) {
        size_t cap = nz->cap ? 2 * nz->cap : 4;
        nz_step *s = realloc(nz->steps, cap * sizeof *s);
        if (!s)
            return NULL;
        nz->steps = s;
        nz->cap = cap;
    }
    nz_step *st = &nz->steps[nz->n++];
    memset(st, 0, sizeof *st);
    st->kind = kind;
    return st;
}

/* {"String": "..."} or {"Regex": "..."}, shared with the decoders. */
static int load_replace(xf_normalizer *nz, const json_t *j, const char *what, xf_error *err)
{
    const json_t *pat = json_object_get(j, "pattern");
    const json_t *content = json_object_get(j, "content");
    const json_t *lit = pat ? json_object_get(pat, "String") : NULL;
    const json_t *rx = pat ? json_object_get(pat, "Regex") : NULL;
    if (!json_is_string(content) || !(json_is_string(lit) || json_is_string(rx)))
        return xf_fail(err, "%s: Replace normalizer needs pattern {String|Regex} and content", what);
    nz_step *st = new_step(nz, NZ_REPLACE);
    if (!st)
        return xf_fail(err, "%s: out of memory", what);
    st->text = dup_bytes(json_string_value(content), json_string_length(content));
    st->text_len = json_string_length(content);
    if (!st->text)
        return xf_fail(err, "%s: out of memory", what);
    if (json_is_string(lit)) {
        if (json_string_length(lit) == 0)
            return xf_fail(err, "%s: Replace normalizer with an empty pattern", what);
        st->literal = dup_bytes(json_string_value(lit), json_string_length(lit));
        st->literal_len = json_string_length(lit);
        if (!st->literal)
            return xf_fail(err, "%s: out of memory", what);
    } else {
        st->regex = xf_regex_compile(json_string_value(rx), json_string_length(rx), false, what, err);
        if (!st->regex)
            return -1;
    }
    return 0;
}

static int load_into(xf_normalizer *nz, const json_t *j, const char *what, xf_error *err)
{
    const char *type = json_string_value(json_object_get(j, "type"));
    if (!type)
        return xf_fail(err, "%s: normalizer without a type", what);
    if (strcmp(type, "Sequence") == 0) {
        const json_t *list = json_object_get(j, "normalizers");
        if (!json_is_array(list))
            return xf_fail(err, "%s: Sequence normalizer without a normalizers list", what);
        for (size_t i = 0; i < json_array_size(list); i++)
            if (load_into(nz, json_array_get(list, i), what, err) != 0)
                return -1;
        return 0;
    }
    if (strcmp(type, "Prepend") == 0) {
        const json_t *p = json_object_get(j, "prepend");
        if (!json_is_string(p))
            return xf_fail(err, "%s: Prepend normalizer without a prepend string", what);
        nz_step *st = new_step(nz, NZ_PREPEND);
        if (!st || !(st->text = dup_bytes(json_string_value(p), json_string_length(p))))
            return xf_fail(err, "%s: out of memory", what);
        st->text_len = json_string_length(p);
        return 0;
    }
    if (strcmp(type, "Replace") == 0)
        return load_replace(nz, j, what, err);
    if (strcmp(type, "NFC") == 0)
        return new_step(nz, NZ_NFC) ? 0 : xf_fail(err, "%s: out of memory", what);
    return xf_fail(err, "%s: normalizer type %s is not supported", what, type);
}

int xf_normalizer_load(const json_t *j, xf_normalizer **out, const char *what, xf_error *err)
{
    *out = NULL;
    if (!j || json_is_null(j))
        return 0;
    if (!json_is_object(j))
        return xf_fail(err, "%s: normalizer must be an object or null", what);
    xf_normalizer *nz = calloc(1, sizeof *nz);
    if (!nz)
        return xf_fail(err, "%s: out of memory", what);
    if (load_into(nz, j, what, err) != 0) {
        xf_normalizer_free(nz);
        return -1;
    }
    *out = nz;
    return 0;
}

/* True for characters that are NFC-stable on their own and never combine
 * with a neighbour (canonical combining class 0, NFC_Quick_Check = Yes,
 * not a second element of a composition). */
static bool nfc_inert(uint32_t cp)
{
    return cp < 0x300 || (cp >= 0x2002 && cp <= 0x206F) || (cp >= 0x4E00 && cp <= 0x9FFF) ||
           (cp >= 0xAC00 && cp <= 0xD7A3);
}

static int check_nfc(const char *s, size_t n, const char *what, xf_error *err)
{
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t len = xf_utf8_char(s + i, n - i, &cp);
        if (!len)
            return xf_fail(err, "%s: NFC normalizer: text is not valid UTF-8 (byte 0x%02X)", what,
                           (unsigned char)s[i]);
        if (!nfc_inert(cp))
            return xf_fail(err, "%s: NFC normalizer: character U+%04X may need Unicode "
                                "normalization, which is not supported", what, (unsigned)cp);
        i += len;
    }
    return 0;
}

static int replace_literal(const nz_step *st, const char *s, size_t n, xf_tbuf *out)
{
    size_t i = 0;
    while (i < n) {
        const char *hit = memmem(s + i, n - i, st->literal, st->literal_len);
        size_t stop = hit ? (size_t)(hit - s) : n;
        if (xf_tbuf_append(out, s + i, stop - i) != 0)
            return -1;
        if (!hit)
            return 0;
        if (xf_tbuf_append(out, st->text, st->text_len) != 0)
            return -1;
        i = stop + st->literal_len;
    }
    return 0;
}

static int replace_regex(const nz_step *st, const char *s, size_t n, xf_tbuf *out,
                         const char *what, xf_error *err)
{
    xf_spans m = {0};
    if (xf_regex_find_all(st->regex, s, n, &m, what, err) != 0)
        return -1;
    size_t i = 0;
    int rc = 0;
    for (size_t k = 0; k < m.n && rc == 0; k++) {
        if (xf_tbuf_append(out, s + i, m.v[k].start - i) != 0 ||
            xf_tbuf_append(out, st->text, st->text_len) != 0)
            rc = -1;
        i = m.v[k].end;
    }
    if (rc == 0 && xf_tbuf_append(out, s + i, n - i) != 0)
        rc = -1;
    xf_spans_free(&m);
    return rc == 0 ? 0 : xf_fail(err, "%s: out of memory", what);
}

int xf_normalizer_apply(const xf_normalizer *nz, const char *s, size_t n, xf_tbuf *out,
                        const char *what, xf_error *err)
{
    out->n = 0;
    xf_tbuf tmp = {0};
    int rc = 0;
    if (xf_tbuf_append(out, s, n) != 0)
        return xf_fail(err, "%s: out of memory", what);
    for (size_t i = 0; i < nz->n && rc == 0; i++) {
        const nz_step *st = &nz->steps[i];
        if (st->kind == NZ_NFC) {
            rc = check_nfc(out->p, out->n, what, err);
            continue;
        }
        if (st->kind == NZ_PREPEND && out->n == 0)
            continue;
        tmp.n = 0;
        if (st->kind == NZ_PREPEND) {
            if (xf_tbuf_append(&tmp, st->text, st->text_len) != 0 ||
                xf_tbuf_append(&tmp, out->p, out->n) != 0)
                rc = xf_fail(err, "%s: out of memory", what);
        } else if (st->literal) {
            if (replace_literal(st, out->p, out->n, &tmp) != 0)
                rc = xf_fail(err, "%s: out of memory", what);
        } else {
            rc = replace_regex(st, out->p, out->n, &tmp, what, err);
        }
        if (rc == 0) {
            xf_tbuf swap = *out;
            *out = tmp;
            tmp = swap;
        }
    }
    xf_tbuf_free(&tmp);
    return rc;
}
