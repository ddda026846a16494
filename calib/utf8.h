/* UTF-8 helpers for the tokenizers: strict decoding (invalid bytes are
 * reported, never guessed at) and the Unicode White_Space property. */
#ifndef XF_CALIB_UTF8_H
#define XF_CALIB_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Length (1..4) of the valid UTF-8 character at s[0..n), with its code
 * point in *cp; 0 when s[0] does not start a valid character (overlong,
 * surrogate, > U+10FFFF, truncated or stray continuation byte). n > 0. */
size_t xf_utf8_char(const char *s, size_t n, uint32_t *cp);

/* Writes the UTF-8 encoding of cp (<= U+10FFFF) to out; returns 1..4. */
size_t xf_utf8_put(uint32_t cp, char out[4]);

/* Unicode White_Space (what Rust's char::is_whitespace tests). */
bool xf_unicode_is_space(uint32_t cp);

#endif
