/* Strict UTF-8, shared by every layer: well-formed sequences only (no
 * overlong forms, surrogates, code points above U+10FFFF, truncated or stray
 * continuation bytes); invalid bytes are reported, never guessed at. */
#ifndef XF_CORE_UTF8_H
#define XF_CORE_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Length (1..4) of the valid UTF-8 character at s[0..n), with its code
 * point in *cp; 0 when s[0] does not start a valid character. n > 0. */
size_t xf_utf8_char(const char *s, size_t n, uint32_t *cp);

/* Writes the UTF-8 encoding of cp (<= U+10FFFF) to out; returns 1..4. */
size_t xf_utf8_put(uint32_t cp, char out[4]);

/* Offset of the first byte of s[0..n) that is not valid UTF-8 (or a NUL
 * byte, unless allow_nul); n when all of it is. */
size_t xf_utf8_scan(const void *s, size_t n, bool allow_nul);

static inline bool xf_utf8_valid(const void *s, size_t n, bool allow_nul)
{
    return xf_utf8_scan(s, n, allow_nul) == n;
}

#endif
