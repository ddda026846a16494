#define PCRE2_CODE_UNIT_WIDTH 8
#include "calib/regex.h"

#include <pcre2.h>
#include <stdint.h>
#include <stdlib.h>

#include "calib/utf8.h"

struct xf_regex {
    pcre2_code *code;
};

xf_regex *xf_regex_compile(const char *pattern, size_t n, bool literal, const char *what,
                           xf_error *err)
{
    xf_regex *re = calloc(1, sizeof *re);
    if (!re) {
        xf_fail(err, "%s: out of memory", what);
        return NULL;
    }
    uint32_t opts = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF;
    /* PCRE2_LITERAL refuses PCRE2_UCP (which only matters to \p, \s, ...). */
    opts |= literal ? PCRE2_LITERAL : PCRE2_UCP;
    int code;
    PCRE2_SIZE at;
    re->code = pcre2_compile((PCRE2_SPTR)pattern, n, opts, &code, &at, NULL);
    if (!re->code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        xf_fail(err, "%s: regex /%.*s/ does not compile at offset %zu: %s", what,
                (int)(n > 200 ? 200 : n), pattern, (size_t)at, (const char *)msg);
        free(re);
        return NULL;
    }
    /* JIT is only a speed-up: when unavailable the interpreter runs. */
    (void)pcre2_jit_compile(re->code, PCRE2_JIT_COMPLETE);
    return re;
}

void xf_regex_free(xf_regex *re)
{
    if (!re)
        return;
    pcre2_code_free(re->code);
    free(re);
}

void xf_spans_free(xf_spans *s)
{
    free(s->v);
    s->v = NULL;
    s->n = s->cap = 0;
}

static int spans_push(xf_spans *s, size_t start, size_t end)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        xf_span *v = realloc(s->v, cap * sizeof *v);
        if (!v)
            return -1;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = (xf_span){start, end};
    return 0;
}

static int match_at(const xf_regex *re, pcre2_match_data *md, const char *s, size_t n,
                    size_t from)
{
    int rc = pcre2_match(re->code, (PCRE2_SPTR)s, n, from, 0, md, NULL);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT) /* deep backtracking: let the interpreter do it */
        rc = pcre2_match(re->code, (PCRE2_SPTR)s, n, from, PCRE2_NO_JIT, md, NULL);
    return rc;
}

int xf_regex_find_all(const xf_regex *re, const char *s, size_t n, xf_spans *out,
                      const char *what, xf_error *err)
{
    out->n = 0;
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re->code, NULL);
    if (!md)
        return xf_fail(err, "%s: out of memory", what);
    size_t from = 0;
    int ret = 0;
    while (from <= n) {
        int rc = match_at(re, md, s, n, from);
        if (rc == PCRE2_ERROR_NOMATCH)
            break;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            ret = xf_fail(err, "%s: regex match failed: %s", what, (const char *)msg);
            break;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ms = ov[0], me = ov[1];
        if (me < ms) /* \K in a lookahead can do this; treat as empty */
            me = ms;
        if (spans_push(out, ms, me) != 0) {
            ret = xf_fail(err, "%s: out of memory", what);
            break;
        }
        if (me > ms) {
            from = me;
        } else {
            if (ms >= n)
                break;
            uint32_t cp;
            size_t len = xf_utf8_char(s + ms, n - ms, &cp);
            from = ms + (len ? len : 1);
        }
    }
    pcre2_match_data_free(md);
    return ret;
}
