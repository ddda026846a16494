#include "calib/pretokenize.h"

#include <stdlib.h>
#include <string.h>

#include "calib/byte_level.h"
#include "calib/regex.h"

typedef enum { PT_METASPACE, PT_SPLIT, PT_BYTE_LEVEL } pt_kind;

typedef enum {
    SPLIT_REMOVED,
    SPLIT_ISOLATED,
    SPLIT_MERGED_WITH_PREVIOUS,
    SPLIT_MERGED_WITH_NEXT,
    SPLIT_CONTIGUOUS
} split_behavior;

typedef enum { PREPEND_ALWAYS, PREPEND_FIRST, PREPEND_NEVER } prepend_scheme;

typedef struct {
    pt_kind kind;
    xf_regex *regex; /* Split pattern; ByteLevel with use_regex; Metaspace split */
    split_behavior behavior;
    bool invert;
    /* Metaspace */
    char replacement[4];
    size_t replacement_len;
    prepend_scheme prepend;
    /* ByteLevel */
    bool add_prefix_space;
} pt_step;

struct xf_pretok {
    pt_step *steps;
    size_t n, cap;
};

void xf_pretok_free(xf_pretok *pt)
{
    if (!pt)
        return;
    for (size_t i = 0; i < pt->n; i++)
        xf_regex_free(pt->steps[i].regex);
    free(pt->steps);
    free(pt);
}

static pt_step *new_step(xf_pretok *pt, pt_kind kind)
{
    if (pt->n == pt->cap) {
        size_t cap = pt->cap ? 2 * pt->cap : 4;
        pt_step *s = realloc(pt->steps, cap * sizeof *s);
        if (!s)
            return NULL;
        pt->steps = s;
        pt->cap = cap;
    }
    pt_step *st = &pt->steps[pt->n++];
    memset(st, 0, sizeof *st);
    st->kind = kind;
    return st;
}

static int get_bool(const json_t *j, const char *key, bool dflt, bool *out, const char *what,
                    xf_error *err)
{
    const json_t *v = json_object_get(j, key);
    *out = dflt;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_boolean(v))
        return xf_fail(err, "%s: pre_tokenizer field %s must be a boolean", what, key);
    *out = json_is_true(v);
    return 0;
}

static int load_split(xf_pretok *pt, const json_t *j, const char *what, xf_error *err)
{
    const json_t *pat = json_object_get(j, "pattern");
    const json_t *lit = pat ? json_object_get(pat, "String") : NULL;
    const json_t *rx = pat ? json_object_get(pat, "Regex") : NULL;
    const char *beh = json_string_value(json_object_get(j, "behavior"));
    if (!(json_is_string(lit) || json_is_string(rx)) || !beh)
        return xf_fail(err, "%s: Split pre-tokenizer needs pattern {String|Regex} and behavior",
                       what);
    static const char *const names[] = {"Removed", "Isolated", "MergedWithPrevious",
                                        "MergedWithNext", "Contiguous"};
    int b = -1;
    for (int i = 0; i < 5; i++)
        if (strcmp(beh, names[i]) == 0)
            b = i;
    if (b < 0)
        return xf_fail(err, "%s: Split behavior %s is not supported", what, beh);
    pt_step *st = new_step(pt, PT_SPLIT);
    if (!st)
        return xf_fail(err, "%s: out of memory", what);
    st->behavior = (split_behavior)b;
    if (get_bool(j, "invert", false, &st->invert, what, err) != 0)
        return -1;
    const json_t *p = lit ? lit : rx;
    st->regex = xf_regex_compile(json_string_value(p), json_string_length(p), lit != NULL, what, err);
    return st->regex ? 0 : -1;
}

static int load_metaspace(xf_pretok *pt, const json_t *j, const char *what, xf_error *err)
{
    const json_t *rep = json_object_get(j, "replacement");
    if (!json_is_string(rep) || json_string_length(rep) == 0 || json_string_length(rep) > 4)
        return xf_fail(err, "%s: Metaspace needs a one-character replacement", what);
    pt_step *st = new_step(pt, PT_METASPACE);
    if (!st)
        return xf_fail(err, "%s: out of memory", what);
    st->replacement_len = json_string_length(rep);
    memcpy(st->replacement, json_string_value(rep), st->replacement_len);
    /* HF: add_prefix_space false means Never; otherwise prepend_scheme
     * (default "always"). split defaults to true. */
    bool add_prefix, split;
    if (get_bool(j, "add_prefix_space", true, &add_prefix, what, err) != 0 ||
        get_bool(j, "split", true, &split, what, err) != 0)
        return -1;
    const char *scheme = json_string_value(json_object_get(j, "prepend_scheme"));
    st->prepend = PREPEND_ALWAYS;
    if (scheme && strcmp(scheme, "first") == 0)
        st->prepend = PREPEND_FIRST;
    else if (scheme && strcmp(scheme, "never") == 0)
        st->prepend = PREPEND_NEVER;
    else if (scheme && strcmp(scheme, "always") != 0)
        return xf_fail(err, "%s: Metaspace prepend_scheme %s is not supported", what, scheme);
    if (!add_prefix)
        st->prepend = PREPEND_NEVER;
    if (split) {
        st->behavior = SPLIT_MERGED_WITH_NEXT;
        st->regex = xf_regex_compile(st->replacement, st->replacement_len, true, what, err);
        if (!st->regex)
            return -1;
    }
    return 0;
}

static int load_into(xf_pretok *pt, const json_t *j, const char *what, xf_error *err)
{
    const char *type = json_string_value(json_object_get(j, "type"));
    if (!type)
        return xf_fail(err, "%s: pre_tokenizer without a type", what);
    if (strcmp(type, "Sequence") == 0) {
        const json_t *list = json_object_get(j, "pretokenizers");
        if (!json_is_array(list))
            return xf_fail(err, "%s: Sequence pre_tokenizer without a pretokenizers list", what);
        for (size_t i = 0; i < json_array_size(list); i++)
            if (load_into(pt, json_array_get(list, i), what, err) != 0)
                return -1;
        return 0;
    }
    if (strcmp(type, "Split") == 0)
        return load_split(pt, j, what, err);
    if (strcmp(type, "Metaspace") == 0)
        return load_metaspace(pt, j, what, err);
    if (strcmp(type, "ByteLevel") == 0) {
        pt_step *st = new_step(pt, PT_BYTE_LEVEL);
        if (!st)
            return xf_fail(err, "%s: out of memory", what);
        bool use_regex;
        if (get_bool(j, "add_prefix_space", true, &st->add_prefix_space, what, err) != 0 ||
            get_bool(j, "use_regex", true, &use_regex, what, err) != 0)
            return -1;
        st->behavior = SPLIT_ISOLATED;
        if (use_regex) {
            st->regex = xf_regex_compile(XF_GPT2_PATTERN, strlen(XF_GPT2_PATTERN), false, what, err);
            if (!st->regex)
                return -1;
        }
        return 0;
    }
    return xf_fail(err, "%s: pre_tokenizer type %s is not supported", what, type);
}

int xf_pretok_load(const json_t *j, xf_pretok **out, const char *what, xf_error *err)
{
    *out = NULL;
    if (!j || json_is_null(j))
        return 0;
    if (!json_is_object(j))
        return xf_fail(err, "%s: pre_tokenizer must be an object or null", what);
    xf_pretok *pt = calloc(1, sizeof *pt);
    if (!pt)
        return xf_fail(err, "%s: out of memory", what);
    if (load_into(pt, j, what, err) != 0) {
        xf_pretok_free(pt);
        return -1;
    }
    *out = pt;
    return 0;
}

/* --- splitting ---------------------------------------------------------- */

typedef struct {
    size_t start, end;
    bool match;
} seg;

typedef struct {
    seg *v;
    size_t n, cap;
} segs;

static int segs_push(segs *s, size_t start, size_t end, bool match)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        seg *v = realloc(s->v, cap * sizeof *v);
        if (!v)
            return -1;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = (seg){start, end, match};
    return 0;
}

/* The text cut into matches and the gaps between them, as HF's
 * Pattern::find_matches (an empty text is one empty gap). */
static int cut(const pt_step *st, const char *s, size_t n, xf_spans *m, segs *out)
{
    out->n = 0;
    size_t prev = 0;
    for (size_t k = 0; k < m->n; k++) {
        if (m->v[k].start > prev && segs_push(out, prev, m->v[k].start, st->invert) != 0)
            return -1;
        if (segs_push(out, m->v[k].start, m->v[k].end, !st->invert) != 0)
            return -1;
        prev = m->v[k].end;
    }
    if ((prev < n || n == 0) && segs_push(out, prev, n, st->invert) != 0)
        return -1;
    (void)s;
    return 0;
}

/* Applies the split behavior in place (HF's NormalizedString::split). */
static void apply_behavior(split_behavior b, segs *sg)
{
    size_t k = 0;
    bool prev_match = false;
    switch (b) {
    case SPLIT_ISOLATED:
        return;
    case SPLIT_REMOVED:
        for (size_t i = 0; i < sg->n; i++)
            if (!sg->v[i].match)
                sg->v[k++] = sg->v[i];
        break;
    case SPLIT_MERGED_WITH_PREVIOUS:
        for (size_t i = 0; i < sg->n; i++) {
            seg cur = sg->v[i];
            if (cur.match && !prev_match && k > 0)
                sg->v[k - 1].end = cur.end;
            else
                sg->v[k++] = cur;
            prev_match = cur.match;
        }
        break;
    case SPLIT_MERGED_WITH_NEXT: {
        /* Walk from the right, merging a match into the piece after it. */
        size_t w = sg->n;
        for (size_t i = sg->n; i-- > 0;) {
            seg cur = sg->v[i];
            if (cur.match && !prev_match && w < sg->n)
                sg->v[w].start = cur.start;
            else
                sg->v[--w] = cur;
            prev_match = cur.match;
        }
        memmove(sg->v, sg->v + w, (sg->n - w) * sizeof *sg->v);
        k = sg->n - w;
        break;
    }
    case SPLIT_CONTIGUOUS:
        for (size_t i = 0; i < sg->n; i++) {
            seg cur = sg->v[i];
            if (cur.match == prev_match && k > 0)
                sg->v[k - 1].end = cur.end;
            else
                sg->v[k++] = cur;
            prev_match = cur.match;
        }
        break;
    }
    sg->n = k;
}

/* Metaspace's rewrite of one piece: spaces -> replacement, then the
 * replacement prepended per the scheme unless already there. */
static int metaspace_rewrite(const pt_step *st, const char *s, size_t n, bool at_origin,
                             xf_tbuf *out)
{
    out->n = 0;
    bool starts = n > 0 && (s[0] == ' ' || (n >= st->replacement_len &&
                                            memcmp(s, st->replacement, st->replacement_len) == 0));
    bool prepend = !starts && (st->prepend == PREPEND_ALWAYS ||
                               (st->prepend == PREPEND_FIRST && at_origin));
    if (prepend && xf_tbuf_append(out, st->replacement, st->replacement_len) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        int rc = s[i] == ' ' ? xf_tbuf_append(out, st->replacement, st->replacement_len)
                             : xf_tbuf_append(out, s + i, 1);
        if (rc != 0)
            return -1;
    }
    return 0;
}

/* One step over every piece of in, into out. */
static int run_step(const pt_step *st, const xf_pieces *in, xf_pieces *out, xf_spans *m,
                    segs *sg, xf_tbuf *tmp, const char *what, xf_error *err)
{
    xf_pieces_clear(out);
    for (size_t p = 0; p < in->n; p++) {
        const char *s = in->bytes.p + in->v[p].off;
        size_t n = in->v[p].len;
        bool origin = in->v[p].at_origin;
        if (st->kind == PT_METASPACE) {
            if (metaspace_rewrite(st, s, n, origin, tmp) != 0)
                goto oom;
            s = tmp->p, n = tmp->n;
        } else if (st->kind == PT_BYTE_LEVEL && st->add_prefix_space && !(n > 0 && s[0] == ' ')) {
            tmp->n = 0;
            if (xf_tbuf_append(tmp, " ", 1) != 0 || xf_tbuf_append(tmp, s, n) != 0)
                goto oom;
            s = tmp->p, n = tmp->n;
        }
        if (st->regex) {
            if (xf_regex_find_all(st->regex, s, n, m, what, err) != 0)
                return -1;
            if (cut(st, s, n, m, sg) != 0)
                goto oom;
            apply_behavior(st->behavior, sg);
        } else {
            sg->n = 0;
            if (segs_push(sg, 0, n, false) != 0)
                goto oom;
        }
        for (size_t k = 0; k < sg->n; k++) {
            const seg *g = &sg->v[k];
            if (g->end == g->start)
                continue;
            bool at_origin = origin && g->start == 0;
            if (st->kind == PT_BYTE_LEVEL) {
                size_t off = out->bytes.n;
                if (xf_byte_level_encode(s + g->start, g->end - g->start, &out->bytes) != 0 ||
                    xf_pieces_add(out, off, out->bytes.n - off, at_origin) != 0)
                    goto oom;
            } else if (xf_pieces_add_copy(out, s + g->start, g->end - g->start, at_origin) != 0) {
                goto oom;
            }
        }
    }
    return 0;
oom:
    return xf_fail(err, "%s: out of memory", what);
}

int xf_pretok_apply(const xf_pretok *pt, const char *s, size_t n, bool at_origin, xf_pieces *out,
                    const char *what, xf_error *err)
{
    xf_pieces_clear(out);
    if (xf_pieces_add_copy(out, s, n, at_origin) != 0)
        return xf_fail(err, "%s: out of memory", what);
    if (!pt)
        return 0;
    xf_pieces tmp_pieces = {0};
    xf_spans m = {0};
    segs sg = {0};
    xf_tbuf tmp = {0};
    int rc = 0;
    for (size_t i = 0; i < pt->n && rc == 0; i++) {
        rc = run_step(&pt->steps[i], out, &tmp_pieces, &m, &sg, &tmp, what, err);
        xf_pieces swap = *out;
        *out = tmp_pieces;
        tmp_pieces = swap;
    }
    xf_pieces_free(&tmp_pieces);
    xf_spans_free(&m);
    free(sg.v);
    xf_tbuf_free(&tmp);
    return rc;
}
