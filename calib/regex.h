/* PCRE2 (8-bit, UTF + UCP) patterns for the tokenizers' Split and ByteLevel
 * pre-tokenizers and Replace normalizers/decoders. Compiled with
 * PCRE2_MATCH_INVALID_UTF so that text with invalid UTF-8 can be searched:
 * invalid bytes never match and end up between matches. JIT-compiled when
 * the library supports it. */
#ifndef XF_CALIB_REGEX_H
#define XF_CALIB_REGEX_H

#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"

typedef struct xf_regex xf_regex;

/* literal: the pattern is a plain string (HF's {"String": ...}). */
xf_regex *xf_regex_compile(const char *pattern, size_t n, bool literal, const char *what,
                           xf_error *err);
void xf_regex_free(xf_regex *re);

typedef struct {
    size_t start, end;
} xf_span;

typedef struct {
    xf_span *v;
    size_t n, cap;
} xf_spans;

void xf_spans_free(xf_spans *s);

/* Replaces out's content by the non-overlapping matches in s[0..n), left to
 * right. An empty match is kept (it is a split point) and the search goes
 * on one character further. */
int xf_regex_find_all(const xf_regex *re, const char *s, size_t n, xf_spans *out,
                      const char *what, xf_error *err);

#endif
