#include "calib/added_tokens.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "calib/tok_buffers.h"
#include "calib/utf8.h"
#include "core/limits.h"

static void matcher_free(xf_added_matcher *m, size_t n)
{
    if (m->pattern)
        for (size_t i = 0; i < n; i++)
            free(m->pattern[i]);
    free(m->pattern);
    free(m->pat_len);
    free(m->order);
    memset(m, 0, sizeof *m);
}

void xf_added_tokens_free(xf_added_tokens *at)
{
    matcher_free(&at->raw, at->n);
    matcher_free(&at->norm, at->n);
    for (size_t i = 0; i < at->n; i++)
        free(at->v[i].content);
    free(at->v);
    free(at->index_of_id);
    memset(at, 0, sizeof *at);
}

static int get_flag(const json_t *t, const char *key, bool dflt, bool *out, size_t i,
                    const char *what, xf_error *err)
{
    const json_t *v = json_object_get(t, key);
    *out = dflt;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_boolean(v))
        return xf_fail(err, "%s: added_tokens[%zu].%s must be a boolean", what, i, key);
    *out = json_is_true(v);
    return 0;
}

/* Sorting context-free: qsort over (first byte, -length) keys. */
typedef struct {
    uint32_t index;
    unsigned first;
    size_t len;
} sort_key;

static int cmp_key(const void *a, const void *b)
{
    const sort_key *x = a, *y = b;
    if (x->first != y->first)
        return x->first < y->first ? -1 : 1;
    if (x->len != y->len)
        return x->len > y->len ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* Builds the matcher over the tokens whose `normalized` flag equals
 * want_normalized (patterns normalized by nz when given). */
static int build_matcher(xf_added_tokens *at, xf_added_matcher *m, bool want_normalized,
                         const xf_normalizer *nz, const char *what, xf_error *err)
{
    size_t n = at->n;
    m->pattern = calloc(n ? n : 1, sizeof *m->pattern);
    m->pat_len = calloc(n ? n : 1, sizeof *m->pat_len);
    m->order = calloc(n ? n : 1, sizeof *m->order);
    sort_key *keys = calloc(n ? n : 1, sizeof *keys);
    xf_tbuf tmp = {0};
    int rc = -1;
    if (!m->pattern || !m->pat_len || !m->order || !keys) {
        xf_fail(err, "%s: out of memory", what);
        goto done;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const xf_added_token *t = &at->v[i];
        if (t->normalized != want_normalized)
            continue;
        const char *p = t->content;
        size_t len = t->len;
        if (want_normalized && nz) {
            if (xf_normalizer_apply(nz, t->content, t->len, &tmp, what, err) != 0)
                goto done;
            p = tmp.p, len = tmp.n;
        }
        if (len == 0)
            continue;
        if (!(m->pattern[i] = malloc(len))) {
            xf_fail(err, "%s: out of memory", what);
            goto done;
        }
        memcpy(m->pattern[i], p, len);
        m->pat_len[i] = len;
        keys[k++] = (sort_key){(uint32_t)i, (unsigned char)p[0], len};
    }
    qsort(keys, k, sizeof *keys, cmp_key);
    size_t pos = 0;
    for (unsigned b = 0; b < 256; b++) {
        m->start[b] = (uint32_t)pos;
        while (pos < k && keys[pos].first == b) {
            m->order[pos] = keys[pos].index;
            pos++;
        }
    }
    m->start[256] = (uint32_t)pos;
    rc = 0;
done:
    free(keys);
    xf_tbuf_free(&tmp);
    return rc;
}

static int parse_token(xf_added_token *t, const json_t *j, size_t i, const char *what,
                       xf_error *err)
{
    const json_t *content = json_object_get(j, "content");
    const json_t *id = json_object_get(j, "id");
    if (!json_is_string(content) || !json_is_integer(id) || json_integer_value(id) < 0 ||
        json_integer_value(id) >= INT32_MAX)
        return xf_fail(err, "%s: added_tokens[%zu] needs a content string and an id", what, i);
    t->len = json_string_length(content);
    t->id = (int32_t)json_integer_value(id);
    if (!(t->content = malloc(t->len + 1)))
        return xf_fail(err, "%s: out of memory", what);
    memcpy(t->content, json_string_value(content), t->len + 1);
    bool special;
    if (get_flag(j, "special", false, &special, i, what, err) != 0 ||
        get_flag(j, "lstrip", false, &t->lstrip, i, what, err) != 0 ||
        get_flag(j, "rstrip", false, &t->rstrip, i, what, err) != 0 ||
        get_flag(j, "single_word", false, &t->single_word, i, what, err) != 0 ||
        /* HF's default for "normalized" is !special. */
        get_flag(j, "normalized", !special, &t->normalized, i, what, err) != 0)
        return -1;
    t->special = special;
    return 0;
}

int xf_added_tokens_load(xf_added_tokens *at, const json_t *j, const xf_normalizer *nz,
                         int32_t base_ids, const char *what, xf_error *err)
{
    memset(at, 0, sizeof *at);
    if (!j || json_is_null(j))
        j = NULL;
    else if (!json_is_array(j))
        return xf_fail(err, "%s: added_tokens must be an array", what);
    size_t n = j ? json_array_size(j) : 0;
    at->v = calloc(n ? n : 1, sizeof *at->v);
    if (!at->v)
        return xf_fail(err, "%s: out of memory", what);
    int32_t max_id = -1;
    for (size_t i = 0; i < n; i++) {
        at->n = i + 1;
        if (parse_token(&at->v[i], json_array_get(j, i), i, what, err) != 0)
            goto fail;
        if (at->v[i].id > max_id)
            max_id = at->v[i].id;
    }
    /* index_of_id is sized by the largest id: bound it before allocating */
    if ((int64_t)max_id >= (int64_t)base_ids + (int64_t)n + XF_TOKEN_ID_GAP ||
        max_id >= XF_MAX_TOKEN_IDS) {
        xf_fail(err,
                "%s: added_tokens: token id %d is far past the %d vocabulary ids and %zu added "
                "tokens (ids may exceed the count by at most %d, and stay below %d)",
                what, (int)max_id, (int)base_ids, n, XF_TOKEN_ID_GAP, XF_MAX_TOKEN_IDS);
        goto fail;
    }
    at->n_index = max_id + 1;
    at->index_of_id = malloc((size_t)(at->n_index ? at->n_index : 1) * sizeof *at->index_of_id);
    if (!at->index_of_id) {
        xf_fail(err, "%s: out of memory", what);
        goto fail;
    }
    for (int32_t i = 0; i < at->n_index; i++)
        at->index_of_id[i] = -1;
    for (size_t i = 0; i < n; i++) {
        if (at->index_of_id[at->v[i].id] >= 0) {
            xf_fail(err, "%s: added token id %d appears twice", what, (int)at->v[i].id);
            goto fail;
        }
        at->index_of_id[at->v[i].id] = (int32_t)i;
    }
    if (build_matcher(at, &at->raw, false, NULL, what, err) != 0 ||
        build_matcher(at, &at->norm, true, nz, what, err) != 0)
        goto fail;
    return 0;
fail:
    xf_added_tokens_free(at);
    return -1;
}

const xf_added_token *xf_added_token_by_id(const xf_added_tokens *at, int32_t id)
{
    if (id < 0 || id >= at->n_index || at->index_of_id[id] < 0)
        return NULL;
    return &at->v[at->index_of_id[id]];
}

const xf_added_token *xf_added_token_by_content(const xf_added_tokens *at, const char *s,
                                                size_t n)
{
    for (size_t i = 0; i < at->n; i++)
        if (at->v[i].len == n && memcmp(at->v[i].content, s, n) == 0)
            return &at->v[i];
    return NULL;
}

void xf_added_cuts_free(xf_added_cuts *c)
{
    free(c->v);
    c->v = NULL;
    c->n = c->cap = 0;
}

static int cuts_push(xf_added_cuts *c, size_t start, size_t end, int32_t id)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 16;
        xf_added_cut *v = realloc(c->v, cap * sizeof *v);
        if (!v)
            return -1;
        c->v = v;
        c->cap = cap;
    }
    c->v[c->n++] = (xf_added_cut){start, end, id};
    return 0;
}

static bool is_word_byte(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

/* Start of the whitespace run that ends at s[end] (HF's lstrip). */
static size_t space_run_before(const char *s, size_t end)
{
    size_t i = end;
    while (i > 0) {
        size_t j = i - 1;
        while (j > 0 && ((unsigned char)s[j] & 0xC0) == 0x80)
            j--;
        uint32_t cp;
        size_t len = xf_utf8_char(s + j, i - j, &cp);
        if (len != i - j || !xf_unicode_is_space(cp))
            break;
        i = j;
    }
    return i;
}

/* End of the whitespace run that starts at s[start] (HF's rstrip). */
static size_t space_run_after(const char *s, size_t n, size_t start)
{
    size_t i = start;
    while (i < n) {
        uint32_t cp;
        size_t len = xf_utf8_char(s + i, n - i, &cp);
        if (!len || !xf_unicode_is_space(cp))
            break;
        i += len;
    }
    return i;
}

/* Longest token of m matching at s[i], or -1. */
static int64_t longest_at(const xf_added_matcher *m, const char *s, size_t n, size_t i)
{
    unsigned b = (unsigned char)s[i];
    for (uint32_t k = m->start[b]; k < m->start[b + 1]; k++) {
        uint32_t t = m->order[k];
        size_t len = m->pat_len[t];
        if (len <= n - i && memcmp(s + i, m->pattern[t], len) == 0)
            return t;
    }
    return -1;
}

int xf_added_tokens_split(const xf_added_tokens *at, const xf_added_matcher *m, const char *s,
                          size_t n, xf_added_cuts *out, const char *what, xf_error *err)
{
    out->n = 0;
    size_t done = 0; /* text before this is already cut */
    size_t i = 0;
    bool any = m->start[256] > 0;
    while (any && i < n) {
        int64_t t = longest_at(m, s, n, i);
        if (t < 0) {
            i++;
            continue;
        }
        const xf_added_token *tok = &at->v[t];
        size_t start = i, stop = i + m->pat_len[t];
        i = stop; /* like a non-overlapping match iterator */
        if (tok->single_word && ((start > 0 && is_word_byte((unsigned char)s[start - 1])) ||
                                 (stop < n && is_word_byte((unsigned char)s[stop]))))
            continue;
        if (tok->lstrip) {
            size_t ls = space_run_before(s, start);
            start = ls > done ? ls : done;
        }
        if (tok->rstrip)
            stop = space_run_after(s, n, stop);
        if ((start > done && cuts_push(out, done, start, -1) != 0) ||
            cuts_push(out, start, stop, tok->id) != 0)
            return xf_fail(err, "%s: out of memory", what);
        done = stop;
        if (i < stop)
            i = stop;
    }
    if (done < n && cuts_push(out, done, n, -1) != 0)
        return xf_fail(err, "%s: out of memory", what);
    return 0;
}
